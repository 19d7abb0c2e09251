"""The VampNet masked-token transformer (the `coarse.pth` and `c2f.pth` models).

Both files hold the same architecture with different sizes (docs/ARCHITECTURE.md, "Transformer"):
codes -> codec-codebook embedding -> pre-norm bidirectional transformer with a T5 relative
position bias shared by all layers -> a 1x1 convolution head predicting `vocab_size` logits for
each non-conditioning codebook. Parameter names match the released state dicts.

Inference shortcuts, each local and commented below: Q/K/V projections fused into one matrix,
projections through oneDNN on x86 CPUs (`linear`) with the residual added inside the matrix
product, attention through `scaled_dot_product_attention`, the position bias computed once per
length, the codebook embedding folded into one table per codebook, and the head evaluated only at
the (position, codebook) cells the sampler still needs.
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
    y = F.linear(x, weight)
    return y if residual is None else residual + y


class CodebookEmbedding(nn.Module):
    """Codes (B, C, T) -> (B, T, d) through the codec's codebooks plus a learned MASK vector."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_codebooks = config.n_codebooks
        self.vocab_size = config.vocab_size
        self.special = nn.ParameterDict(
            {"MASK": nn.Parameter(torch.zeros(config.n_codebooks, config.latent_dim))}
        )
        self.out_proj = nn.Conv1d(config.latent_dim * config.n_codebooks, config.embedding_dim, 1)

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
        self.w_qkv = None  # fused (3d, d) weight, built by prepare()

    def prepare(self):
        self.w_qkv = torch.cat([self.w_qs.weight, self.w_ks.weight, self.w_vs.weight])

    def forward(self, x, position_bias, residual=None):  # x (B, T, d), position_bias (1, H, T, T)
        """Attention output projected by `fc`, plus `residual` when given (added inside the product)."""
        B, T, d = x.shape
        if self.w_qkv is not None:
            q, k, v = linear(x, self.w_qkv).split(d, dim=-1)
        else:
            q, k, v = self.w_qs(x), self.w_ks(x), self.w_vs(x)
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        # (B, H, T, d_head); logits scaled by 1/sqrt(d_head), plus the position bias
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=position_bias.to(q.dtype))
        y = y.transpose(1, 2).reshape(B, T, d)  # (B, T, d)
        return linear(y, self.fc.weight, residual)


class FeedForward(nn.Module):
    """w_1 (d -> 4d), GEGLU (a * gelu_tanh(b) over the two halves), w_2 (2d -> d)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        d = config.embedding_dim
        self.w_1 = nn.Linear(d, 4 * d, bias=False)
        self.w_2 = nn.Linear(2 * d, d, bias=False)

    def forward(self, x, residual=None):  # x (B, T, d); `residual` is added inside the last product
        a, b = linear(x, self.w_1.weight).chunk(2, dim=-1)  # (B, T, 2d) each
        return linear(a * gelu_tanh(b), self.w_2.weight, residual)


def gelu_tanh(x):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), term by term as the reference writes it:
    F.gelu(approximate="tanh") differs from it in the last bit for about 1 % of values."""
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


class VampNetTransformer(nn.Module):
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
        self._embedding_tables = None  # (C, vocab + 1, d), built by prepare()
        self._head_weight = None  # (n_predict, vocab, d), codebook-major
        self._head_bias = None  # (n_predict, vocab)
        self._bias_cache = {}

    def prepare(self, codec_codebooks):
        """Precompute everything inference reuses. `codec_codebooks`: n_codebooks (vocab, latent) tensors."""
        if len(codec_codebooks) < self.n_codebooks:
            raise ValueError(
                f"the codec has {len(codec_codebooks)} codebooks but this transformer embeds "
                f"{self.n_codebooks}: use the codec these weights were trained with"
            )
        self._embedding_tables = self.embedding.tables(codec_codebooks[:self.n_codebooks])
        for layer in self.transformer.layers:
            layer.self_attn.prepare()
        head = self.classifier.layers[0]
        n_p, vocab = self.n_predict_codebooks, self.vocab_size
        # channel = v * n_p + c  ->  (c, v): regroup so each codebook's rows are contiguous
        self._head_weight = head.weight[:, :, 0].view(vocab, n_p, -1).transpose(0, 1).contiguous()
        self._head_bias = head.bias.view(vocab, n_p).t().contiguous()
        self._bias_cache = {}
        return self

    def position_bias(self, length: int, circular: bool = False) -> torch.Tensor:  # -> (1, H, T, T)
        """The relative-position bias for a sequence length (on a ring if `circular`), cached."""
        bias = self._bias_cache.get((length, circular))
        if bias is None:
            table = self.transformer.layers[0].self_attn.relative_attention_bias.weight  # (32, H)
            buckets = relative_position_buckets(length, circular).to(table.device)
            bias = table[buckets].permute(2, 0, 1).unsqueeze(0).contiguous()  # (1, H, T, T)
            if len(self._bias_cache) > 8:
                self._bias_cache.clear()
            self._bias_cache[(length, circular)] = bias
        return bias

    def embed(self, codes):  # (B, C, T) with MASK = vocab_size -> (B, T, d)
        tables = self._embedding_tables
        if tables is None:
            raise RuntimeError("call prepare(codec_codebooks) before running the transformer")
        x = tables[0][codes[:, 0]]
        for i in range(1, self.n_codebooks):
            x = x + tables[i][codes[:, i]]
        return x + self.embedding.out_proj.bias

    def hidden(self, codes, circular: bool = False):  # (B, C, T) -> (B, T, d)
        """Everything up to the head: the transformer's final normalised activations
        (`circular`: the sequence is a ring, for loops)."""
        x = self.embed(codes)
        return self.transformer(x, self.position_bias(codes.shape[-1], circular))

    def logits_at(self, hidden, batch_idx, codebook_idx, time_idx):  # -> (N, vocab) float32
        """Head logits only for the N cells (batch, predicted codebook, time) that are asked for."""
        out = torch.empty(len(batch_idx), self.vocab_size, dtype=torch.float32, device=hidden.device)
        for c in range(self.n_predict_codebooks):
            rows = (codebook_idx == c).nonzero(as_tuple=True)[0]
            if len(rows):
                h = hidden[batch_idx[rows], time_idx[rows]]  # (n_c, d)
                out[rows] = F.linear(h, self._head_weight[c], self._head_bias[c]).float()
        return out

    def generate(self, codes, mask=None, seed: int | None = None, generators=None, **options):
        """The reference's `generate`: fill the MASK cells of `codes` (or the cells where `mask` is 1).

        `options` are SamplingOptions fields; `seed` seeds one generator per batch item (seed + k).
        """
        from .sampler import SamplingOptions, generate

        if mask is None:
            mask = codes == self.mask_token
        if generators is None and seed is not None:
            generators = [torch.Generator(device=codes.device).manual_seed(int(seed) + k) for k in range(len(codes))]
        return generate(self, codes, mask, SamplingOptions.from_dict(options), generators)

    def forward(self, codes):  # (B, C, T) -> (B, vocab, T * n_predict), the reference's layout
        """Full logits in the reference layout (flat position t * n_predict + c); for tests and tools."""
        h = self.hidden(codes)  # (B, T, d)
        logits = torch.einsum("btd,cvd->bvtc", h, self._head_weight) + self._head_bias.t()[None, :, None, :]
        return logits.reshape(codes.shape[0], self.vocab_size, -1)
