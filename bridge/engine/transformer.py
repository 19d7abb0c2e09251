"""The VampNet masked-token transformer (the `coarse.pth` and `c2f.pth` models).

Both files hold the same architecture with different sizes (docs/ARCHITECTURE.md, "Transformer"):
codes -> codec-codebook embedding -> pre-norm bidirectional transformer with a T5 relative
position bias shared by all layers -> a 1x1 convolution head predicting `vocab_size` logits for
each non-conditioning codebook. Parameter names match the released state dicts.

Inference shortcuts, each local and commented below: Q/K/V projections fused into one matrix,
projections through oneDNN on x86 CPUs (`linear`) with the residual added inside the matrix
product, attention through `scaled_dot_product_attention`, the position bias computed once per
length, and the codebook embedding folded into one table per codebook.
"""

import math
import platform
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layers import RMSNorm, WNConv1d


@dataclass
class TransformerConfig:
    n_codebooks: int = 4
    n_conditioning_codebooks: int = 0
    n_layers: int = 20
    n_heads: int = 20
    embedding_dim: int = 1280
    vocab_size: int = 1024
    latent_dim: int = 8

    @property
    def n_predict_codebooks(self) -> int:
        return self.n_codebooks - self.n_conditioning_codebooks


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}  # of the projections (`prepare`)

# Relative position bias (T5, bidirectional): 32 buckets, 16 per direction, max distance 128.
N_BUCKETS = 32
MAX_DISTANCE = 128


def relative_position_buckets(length: int, circular: bool = False) -> torch.Tensor:  # -> (T_query, T_key) long
    """Bucket of rel = key_pos - query_pos: exact below 8, log-spaced up to 128, +16 for rel > 0.

    `circular`: positions on a ring of `length` (loops), rel taken the short way round, in
    [-length/2, length/2), so the bias depends only on (key - query) mod length."""
    pos = torch.arange(length)
    rel = pos[None, :] - pos[:, None]
    if circular:
        rel = (rel + length // 2) % length - length // 2
    half = N_BUCKETS // 2  # 16 per direction
    exact = half // 2  # 8
    bucket = (rel > 0).long() * half
    n = rel.abs()
    # float32 like the reference; n is clamped to 1 only to keep log() finite where n < exact
    log_bucket = exact + (
        torch.log(n.clamp(min=1).float() / exact) / math.log(MAX_DISTANCE / exact) * (half - exact)
    ).long()
    log_bucket = log_bucket.clamp(max=half - 1)
    return bucket + torch.where(n < exact, n, log_bucket)


def _onednn_linear_op():
    """oneDNN's fused linear (the kernel torch.compile uses for CPU linears), where it is worth using."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):  # a build without the op
        return None


_ONEDNN_LINEAR = _onednn_linear_op()


def _cpu_autocast_enabled() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def linear(x, weight, residual=None):  # x (..., d_in), weight (d_out, d_in) -> (..., d_out)
    """`x @ weight.T`, plus `residual` (same shape as the output) when given.

    bf16 weights (precision "bf16", `VampNetTransformer.prepare`): `x` is rounded to bf16 and the
    product (float32 accumulation) is bf16, or float32 when added to a float32 `residual`: the
    residual stream, the norms and the head stay float32.

    Float32 on an x86 CPU goes straight to oneDNN: `F.linear` calls MKL's sgemm there, which runs
    a generic code path on AMD processors at about half of oneDNN's speed (benchmarks/README.md).
    The residual is added to the float32 accumulator inside the product, the same rounding as a
    separate add, one pass over the activations fewer. Results equal `F.linear` to float32
    rounding, and each row's result does not depend on the other rows in the call (batch items
    equal single runs), as with MKL. Anything else (CUDA, bf16 autocast, gradients,
    `torch.backends.mkldnn.enabled = False`, tracing by torch.compile) takes the plain path.
    """
    if (_ONEDNN_LINEAR is not None and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and torch.backends.mkldnn.enabled and not _cpu_autocast_enabled()
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
            and not torch.compiler.is_compiling()):  # torch.compile picks its own kernels
        if residual is None:
            return _ONEDNN_LINEAR(x, weight, None, "none", [], "")
        return _ONEDNN_LINEAR.binary(x, residual, weight, None, "add")
    if weight.dtype == torch.bfloat16 and x.dtype != weight.dtype:
        x = x.to(weight.dtype)
        if _ONEDNN_LINEAR is not None and x.device.type == "cpu" and not torch.compiler.is_compiling():
            y = _ONEDNN_LINEAR(x, weight, None, "none", [], "")  # AVX512_BF16 / AMX kernels
            return y if residual is None else residual + y
    y = F.linear(x, weight)
    return y if residual is None else residual + y


class CodebookEmbedding(nn.Module):
    """Codes (B, C, T) -> (B, T, d) through the codec's codebooks plus a learned MASK vector.

    The reference's two steps are here too: `from_codes(codes, codec)` -> the concatenated 8-d
    vectors (B, 8C, T), and calling the module on those -> `out_proj` (B, d, T)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_codebooks = config.n_codebooks
        self.vocab_size = config.vocab_size
        self.special_idxs = {"MASK": config.vocab_size}  # token name -> id, as the reference spells it
        self.special = nn.ParameterDict(
            {"MASK": nn.Parameter(torch.zeros(config.n_codebooks, config.latent_dim))}
        )
        self.out_proj = nn.Conv1d(config.latent_dim * config.n_codebooks, config.embedding_dim, 1)

    def from_codebooks(self, codes, codec_codebooks):  # (B, C, T), C x (vocab, latent) -> (B, latent * C, T)
        vectors = []
        for i in range(codes.shape[1]):
            rows = torch.cat([codec_codebooks[i], self.special["MASK"][i:i + 1]])  # (vocab + 1, latent)
            vectors.append(F.embedding(codes[:, i], rows).transpose(1, 2))  # (B, latent, T)
        return torch.cat(vectors, dim=1)  # codebook-major channels

    def from_codes(self, codes, codec):  # (B, C, T) with MASK -> (B, latent * C, T)
        """The reference's look-up: codebook i of `codec`, extended by the MASK row."""
        return self.from_codebooks(codes, [q.codebook.weight for q in codec.quantizer.quantizers])

    def forward(self, latents):  # (B, latent * C, T) -> (B, d, T)
        return self.out_proj(latents)

    def tables(self, codec_codebooks):  # list of (vocab, latent) -> (C, vocab + 1, d)
        """Fold `out_proj` into one (vocab + 1, d) table per codebook; row `vocab` is MASK.

        out_proj is linear over the concatenated 8-d vectors (codebook-major channels), so its
        output is the sum over codebooks of each codebook's slice of the weight applied to that
        codebook's vector: one look-up per codebook and a sum replace the concat + conv.
        """
        latent = self.special["MASK"].shape[1]
        weight = self.out_proj.weight[:, :, 0]  # (d, latent * C)
        tables = []
        for i in range(self.n_codebooks):
            rows = torch.cat([codec_codebooks[i], self.special["MASK"][i:i + 1]])  # (vocab + 1, latent)
            tables.append(rows @ weight[:, i * latent:(i + 1) * latent].t())
        return torch.stack(tables)


class MultiHeadRelativeAttention(nn.Module):
    def __init__(self, config: TransformerConfig, has_relative_attention_bias: bool):
        super().__init__()
        d = config.embedding_dim
        self.n_heads = config.n_heads
        self.w_qs = nn.Linear(d, d, bias=False)
        self.w_ks = nn.Linear(d, d, bias=False)
        self.w_vs = nn.Linear(d, d, bias=False)
        self.fc = nn.Linear(d, d, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(N_BUCKETS, config.n_heads)
        # fused (3d, d) weight and fc's weight in the projections' precision, built by prepare();
        # buffers, so that .to() moves them with the weights
        self.register_buffer("w_qkv", None, persistent=False)
        self.register_buffer("w_out", None, persistent=False)

    def prepare(self, dtype=torch.float32):
        with torch.no_grad():
            self.w_qkv = torch.cat([self.w_qs.weight, self.w_ks.weight, self.w_vs.weight]).to(dtype)
            self.w_out = self.fc.weight.detach().to(dtype)

    def forward(self, x, position_bias, residual=None):  # x (B, T, d), position_bias (1, H, T, T)
        """Attention output projected by `fc`, plus `residual` when given (added inside the product)."""
        B, T, d = x.shape
        prepared = self.w_qkv is not None and not _tracks_gradients(self.w_qs.weight)
        if prepared:
            q, k, v = linear(x, self.w_qkv).split(d, dim=-1)
        else:
            q, k, v = self.w_qs(x), self.w_ks(x), self.w_vs(x)
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        # (B, H, T, d_head); logits scaled by 1/sqrt(d_head), plus the position bias
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=position_bias.to(q.dtype))
        y = y.transpose(1, 2).reshape(B, T, d)  # (B, T, d)
        return linear(y, self.w_out if prepared else self.fc.weight, residual)


class FeedForward(nn.Module):
    """w_1 (d -> 4d), GEGLU (a * gelu_tanh(b) over the two halves), w_2 (2d -> d)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        d = config.embedding_dim
        self.w_1 = nn.Linear(d, 4 * d, bias=False)
        self.w_2 = nn.Linear(2 * d, d, bias=False)
        # w_1, w_2 weights in the projections' precision, built by prepare(); buffers so .to() moves them
        self.register_buffer("w_in", None, persistent=False)
        self.register_buffer("w_out", None, persistent=False)

    def prepare(self, dtype=torch.float32):
        with torch.no_grad():
            self.w_in, self.w_out = self.w_1.weight.detach().to(dtype), self.w_2.weight.detach().to(dtype)

    def forward(self, x, residual=None):  # x (B, T, d); `residual` is added inside the last product
        prepared = self.w_in is not None and not _tracks_gradients(self.w_1.weight)
        w_in, w_out = (self.w_in, self.w_out) if prepared else (self.w_1.weight, self.w_2.weight)
        if w_in.dtype == torch.bfloat16 and _ONEDNN_LINEAR is not None and x.device.type == "cpu":
            # bf16 on the CPU: GELU and the product inside the two half products (oneDNN post-ops);
            # in bf16 the elementwise passes would cost as much as the matrix products
            x = x.to(torch.bfloat16)
            a_weight, b_weight = w_in.chunk(2)
            gelu_b = _ONEDNN_LINEAR(x, b_weight, None, "gelu", [], "tanh")
            return linear(_ONEDNN_LINEAR.binary(x, gelu_b, a_weight, None, "mul"), w_out, residual)
        a, b = linear(x, w_in).chunk(2, dim=-1)  # (B, T, 2d) each
        return linear(a * gelu_tanh(b), w_out, residual)


def _tracks_gradients(parameter) -> bool:
    """True where autograd must see the parameters themselves (training, gradient probes): the
    precomputed inference tables are constants to autograd, so those calls take the plain path."""
    return torch.is_grad_enabled() and parameter.requires_grad


def gelu_tanh(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), term by term as the reference writes it:
    F.gelu(approximate="tanh") differs from it in the last bit for about 1 % of values."""
    if torch.is_grad_enabled() and x.requires_grad:  # the same operations, out of place for autograd
        return (torch.pow(x, 3.0) * 0.044715 + x).mul(math.sqrt(2.0 / math.pi)).tanh().add(1.0) * (0.5 * x)
    t = torch.pow(x, 3.0).mul_(0.044715).add_(x).mul_(math.sqrt(2.0 / math.pi)).tanh_().add_(1.0)
    return t.mul_(0.5 * x)


class TransformerLayer(nn.Module):
    def __init__(self, config: TransformerConfig, has_relative_attention_bias: bool):
        super().__init__()
        self.norm_1 = RMSNorm(config.embedding_dim)
        self.self_attn = MultiHeadRelativeAttention(config, has_relative_attention_bias)
        self.norm_3 = RMSNorm(config.embedding_dim)
        self.feed_forward = FeedForward(config)

    def forward(self, x, position_bias):
        x = self.self_attn(self.norm_1(x), position_bias, residual=x)  # x + attention
        return self.feed_forward(self.norm_3(x), residual=x)  # x + feed-forward


class TransformerStack(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        # Only layer 0 owns the bias table; its bias is shared by every layer.
        self.layers = nn.ModuleList([TransformerLayer(config, i == 0) for i in range(config.n_layers)])
        self.norm = RMSNorm(config.embedding_dim)

    def forward(self, x, position_bias):
        for layer in self.layers:
            x = layer(x, position_bias)
        return self.norm(x)


class Classifier(nn.Module):
    """Weight-normed 1x1 conv d -> vocab * n_predict; output channel = vocab_index * n_predict + c."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        n_out = config.vocab_size * config.n_predict_codebooks
        self.layers = nn.ModuleList([WNConv1d(config.embedding_dim, n_out, kernel_size=1)])


def _reprepare_after_loading(module, incompatible_keys):
    """`load_state_dict` changes weights the inference tables were computed from: recompute them
    (with the codec codebooks they were built with), so loaded weights are the ones that run."""
    if module._codec_codebooks is not None:
        module.prepare(module._codec_codebooks)


class VampNetTransformer(nn.Module):
    """The model. Two doors into the same modules:

    - the engine's: `hidden(codes)` and `cell_logits(hidden)` (the head at every cell, a static
      shape for the sampler's step), on tables precomputed by `prepare(codec_codebooks)`;
    - the reference's: `forward(latents)` (or codes) -> logits (B, vocab, T * n_predict),
      `embedding.from_codes(codes, codec)`, `generate(codec=..., start_tokens=..., mask=...)`,
      `to_signal(z, codec)` / `decode(z, codec)`.

    The precomputed tables are non-persistent buffers (not in `state_dict`, but moved and cast by
    `.to()`); the position-bias cache is emptied on every `.to()`. With gradients enabled and
    parameters that require them, every call takes the plain layers, so autograd sees the weights.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.n_codebooks = config.n_codebooks
        self.n_conditioning_codebooks = config.n_conditioning_codebooks
        self.n_predict_codebooks = config.n_predict_codebooks
        self.vocab_size = config.vocab_size
        self.mask_token = config.vocab_size
        self.chunk_size_s = 10.0  # set by the Interface: 10 s coarse, 3 s coarse-to-fine
        self.embedding = CodebookEmbedding(config)
        self.transformer = TransformerStack(config)
        self.classifier = Classifier(config)
        self.register_buffer("_codec_codebooks", None, persistent=False)  # (C, vocab, latent)
        self.register_buffer("_embedding_tables", None, persistent=False)  # (C, vocab + 1, d)
        self.register_buffer("_head_weight", None, persistent=False)  # (n_predict, vocab, d), codebook-major
        self.register_buffer("_head_bias", None, persistent=False)  # (n_predict, vocab)
        self._bias_cache = {}  # length -> (1, H, T, T); emptied by _apply (every .to())
        self.precision = "fp32"
        self.register_load_state_dict_post_hook(_reprepare_after_loading)

    @property
    def stage(self) -> str:
        """'coarse' or 'c2f': the name the per-chunk seeds are derived under."""
        return "c2f" if self.n_conditioning_codebooks else "coarse"

    def _apply(self, fn, *args, **kwargs):
        self._bias_cache = {}  # rebuilt lazily on the new device / dtype
        return super()._apply(fn, *args, **kwargs)

    def prepare(self, codec_codebooks, precision: str = "fp32"):
        """Precompute everything inference reuses. `codec_codebooks`: n_codebooks (vocab, latent) tensors;
        `precision`: see `set_precision`."""
        if len(codec_codebooks) < self.n_codebooks:
            raise ValueError(
                f"the codec has {len(codec_codebooks)} codebooks but this transformer embeds "
                f"{self.n_codebooks}: use the codec these weights were trained with"
            )
        with torch.no_grad():
            device = self.embedding.out_proj.weight.device
            self._codec_codebooks = torch.stack(list(codec_codebooks[:self.n_codebooks])).to(device)
            self._embedding_tables = self.embedding.tables(self._codec_codebooks)
            self.set_precision(precision)
            head = self.classifier.layers[0]
            n_p, vocab = self.n_predict_codebooks, self.vocab_size
            # channel = v * n_p + c  ->  (c, v): regroup so each codebook's rows are contiguous
            self._head_weight = head.weight[:, :, 0].view(vocab, n_p, -1).transpose(0, 1).contiguous()
            self._head_bias = head.bias.view(vocab, n_p).t().contiguous()
        self._bias_cache = {}
        return self

    def _bias_from_table(self, table, length: int, circular: bool = False):  # (32, H) -> (1, H, T, T)
        buckets = relative_position_buckets(length, circular).to(table.device)
        return table[buckets].permute(2, 0, 1).unsqueeze(0).contiguous()

    def set_precision(self, precision: str):
        """"bf16": the projections (QKV, attention output, feed-forward) hold bf16 copies of their
        weights and run in bf16, attention too (on their bf16 outputs); the residual stream, the
        norms, the embedding and the head stay float32. "fp32": everything float32."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {sorted(PRECISIONS)}")
        for layer in self.transformer.layers:
            layer.self_attn.prepare(PRECISIONS[precision])
            layer.feed_forward.prepare(PRECISIONS[precision])
        for norm in self.transformer.modules():
            if isinstance(norm, RMSNorm):  # bit-exact (the reference's arithmetic) in fp32 only
                norm.exact = precision == "fp32"
        self.precision = precision
        return self

    def position_bias(self, length: int, circular: bool = False) -> torch.Tensor:  # -> (1, H, T, T)
        """The relative-position bias for a sequence length (on a ring if `circular`, for loops),
        computed once and cached.

        The cached tensor is built outside inference mode and without autograd history, so it
        serves calls in and out of `inference_mode` alike; where gradients are wanted it is
        computed afresh from the table."""
        table = self.transformer.layers[0].self_attn.relative_attention_bias.weight  # (32, H)
        if _tracks_gradients(table):
            return self._bias_from_table(table, length, circular)
        bias = self._bias_cache.get((length, circular))
        if bias is None:
            with torch.inference_mode(False), torch.no_grad():
                bias = self._bias_from_table(table.detach(), length, circular)
            if len(self._bias_cache) > 8:
                self._bias_cache.clear()
            self._bias_cache[(length, circular)] = bias
        return bias

    def embed(self, codes):  # (B, C, T) with MASK = vocab_size -> (B, T, d)
        tables = self._embedding_tables
        if tables is None:
            raise RuntimeError("call prepare(codec_codebooks) before running the transformer")
        if _tracks_gradients(self.embedding.out_proj.weight):
            return self.embedding(self.embedding.from_codebooks(codes, self._codec_codebooks)).transpose(1, 2)
        x = tables[0][codes[:, 0]]
        for i in range(1, self.n_codebooks):
            x = x + tables[i][codes[:, i]]
        return x + self.embedding.out_proj.bias

    def hidden(self, codes, circular: bool = False):  # (B, C, T) -> (B, T, d)
        """Everything up to the head: the transformer's final normalised activations
        (`circular`: the sequence is a ring, for loops)."""
        x = self.embed(codes)
        bias = self.position_bias(codes.shape[-1], circular)
        return self.transformer(x, bias if self.precision == "fp32" else self.position_bias_bf16(bias, circular))

    def position_bias_bf16(self, bias, circular: bool = False):  # in attention's precision, cast once per length
        key = ("bf16", bias.shape[-1], circular)
        if key not in self._bias_cache:
            self._bias_cache[key] = bias.to(torch.bfloat16)
        return self._bias_cache[key]

    def cell_logits(self, hidden):  # (B, T, d) -> (B, n_predict, T, vocab) float32
        """Head logits for every (predicted codebook, time) cell: a static shape, whatever is masked.

        On the CPU one product per item and codebook: MKL picks its kernel by the row count, and a
        row's result must not depend on the batch it is computed in (batch items equal single runs).
        """
        if hidden.device.type == "cpu":
            return torch.stack([torch.stack([F.linear(h, w, b) for w, b in zip(self._head_weight, self._head_bias)])
                                for h in hidden]).float()
        logits = torch.einsum("btd,cvd->bctv", hidden, self._head_weight) + self._head_bias[None, :, None, :]
        return logits.float()

    def forward(self, x):  # latents (B, latent * C, T) or codes (B, C, T) -> (B, vocab, T * n_predict)
        """The reference's forward: the latents of `embedding.from_codes(codes, codec)` in, full
        logits out in its layout (flat position t * n_predict + c). Integer codes are accepted
        as well (embedded through the same codec codebooks)."""
        if x.is_floating_point():
            h = self.embedding(x).transpose(1, 2)  # (B, T, d)
            h = self.transformer(h, self.position_bias(x.shape[-1]))
        else:
            h = self.hidden(x)
        head = self.classifier.layers[0]
        B, T, _ = h.shape
        logits = F.linear(h, head.weight[:, :, 0], head.bias)  # (B, T, vocab * n_p), channel v * n_p + c
        logits = logits.view(B, T, self.vocab_size, self.n_predict_codebooks).permute(0, 2, 1, 3)
        return logits.reshape(B, self.vocab_size, T * self.n_predict_codebooks)

    @torch.no_grad()
    def generate(self, codec=None, time_steps: int = 300, _sampling_steps=None, start_tokens=None, mask=None,
                 return_signal: bool = True, seed: int | None = None, generators=None, cfg_guidance=None,
                 causal_weight: float = 0.0, debug: bool = False, **options):
        """The reference's `generate`: regenerate the cells of `start_tokens` (B, C, T) where `mask`
        is 1 (None: every cell but the conditioning codebooks; a (B, T) mask covers every
        codebook). Without `start_tokens`, `time_steps` frames of MASK are generated.

        `options` are SamplingOptions fields; `_sampling_steps` (an int, or the reference's list,
        summed) is the step count. `debug` is accepted and ignored; `causal_weight` and
        `cfg_guidance` must keep their off values. `seed` gives item k the generator that
        `Interface.vamp` gives variation seed + k on a single chunk (no seed: one drawn from
        torch's global generator). Returns codes, or an AudioSignal when `return_signal` (which
        needs `codec`)."""
        from .sampler import SamplingOptions, generate
        from .seeds import chunk_generator, seed_from_global_rng

        if isinstance(codec, torch.Tensor):
            raise TypeError("generate's first argument is the codec, as in the reference: "
                            "generate(codec=interface.codec, start_tokens=codes, mask=mask, return_signal=False)")
        if cfg_guidance is not None:
            raise ValueError("cfg_guidance is not supported: the released models have no conditioning input")
        if causal_weight:
            raise ValueError(f"causal_weight={causal_weight!r} is not supported: only 0 (parallel decoding)")
        # `debug` only made the reference print its steps; a `sampler.Trace` records them here
        if _sampling_steps is not None:
            options["sampling_steps"] = int(sum(_sampling_steps) if isinstance(_sampling_steps, (list, tuple))
                                            else _sampling_steps)
        device = self.embedding.out_proj.weight.device
        if start_tokens is None:
            start_tokens = torch.full((1, self.n_codebooks, int(time_steps)), self.mask_token, device=device)
        z = start_tokens.to(device).long()
        if mask is None:
            mask = torch.ones_like(z)
        mask = mask.to(device).long()
        if mask.dim() == 2:
            mask = mask[:, None, :].expand(-1, z.shape[1], -1)
        mask = mask.expand(z.shape[0], -1, -1)
        if generators is None and seed is None:
            seed = seed_from_global_rng()  # repeatable after torch.manual_seed, as in the reference
        if generators is None:
            generators = [chunk_generator(int(seed) + k, self.stage, 0) for k in range(len(z))]
        out = generate(self, z, mask, SamplingOptions.from_dict(options), generators)
        return self.to_signal(out, codec) if return_signal else out

    def to_signal(self, z, codec):
        """Codes (B, C, T) -> AudioSignal through `codec`: frames where every codebook is MASK are
        silent, other MASK cells decode as code 0 (`Codec.decode_codes`)."""
        from .codec import audio_signal

        if codec is None:
            raise ValueError("to_signal needs the codec: model.to_signal(z, interface.codec)")
        return audio_signal(codec.decode_codes(z.to(codec.device)).float().cpu(), codec.sample_rate)

    decode = to_signal
