"""The VampNet audio codec: 44.1 kHz mono audio <-> a grid of 14 x T tokens (57.42 frames/s).

Structure and state-dict names follow the released `codec.pth` (docs/ARCHITECTURE.md, "Codec"):
an encoder of strided convolution blocks, a residual vector quantizer with L2-normalised
codebook search, and a HiFi-GAN style decoder of transposed convolutions and multi-receptive-field
residual blocks. Long audio is encoded and decoded in chunks with enough context on each side that
the result equals whole-file processing, so memory stays bounded for any length.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Snake1d, WNConv1d, WNConvTranspose1d


@dataclass
class CodecConfig:
    sample_rate: int = 44100
    encoder_dim: int = 64
    encoder_rates: list = field(default_factory=lambda: [2, 6, 8, 8])
    decoder_dim: int = 1536
    decoder_rates: list = field(default_factory=lambda: [6, 4, 4, 2, 2, 2])
    n_codebooks: int = 14
    codebook_size: int = 1024
    codebook_dim: int = 8

    @property
    def hop_length(self) -> int:
        return math.prod(self.decoder_rates)

    @property
    def latent_dim(self) -> int:
        return self.encoder_dim * 2 ** len(self.encoder_rates)


# ---------------------------------------------------------------------------------------------
# Encoder


class EncoderLayer(nn.Module):
    """Residual unit: x + Conv1x1(Snake(Conv7_dilated(Snake(x))))."""

    def __init__(self, dim: int, dilation: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=7, dilation=dilation, padding=3 * dilation),
            Snake1d(dim),
            WNConv1d(dim, dim, kernel_size=1),
        )

    def forward(self, x):
        return x + self.block(x)


class EncoderBlock(nn.Module):
    """Three residual units, then a strided convolution that doubles the channels."""

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            EncoderLayer(dim // 2, 1),
            EncoderLayer(dim // 2, 3),
            EncoderLayer(dim // 2, 9),
            Snake1d(dim // 2),
            WNConv1d(dim // 2, dim, kernel_size=2 * stride, stride=stride, padding=stride // 2),
        )

    def forward(self, x):
        return self.block(x)


class Encoder(nn.Module):
    def __init__(self, dim: int, rates: list):
        super().__init__()
        layers = [WNConv1d(1, dim, kernel_size=7, padding=3)]
        for stride in rates:
            dim *= 2
            layers.append(EncoderBlock(dim, stride))
        layers += [Snake1d(dim), WNConv1d(dim, dim, kernel_size=3, padding=1)]
        self.block = nn.Sequential(*layers)

    def forward(self, x):  # (B, 1, N) -> (B, latent_dim, N / hop)
        return self.block(x)


# ---------------------------------------------------------------------------------------------
# Residual vector quantizer


class VectorQuantize(nn.Module):
    def __init__(self, input_dim: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.in_proj = WNConv1d(input_dim, codebook_dim, kernel_size=1)
        self.out_proj = WNConv1d(codebook_dim, input_dim, kernel_size=1)
        self.codebook = nn.Embedding(codebook_size, codebook_dim)

    def nearest_codes(self, latents):  # (B, codebook_dim, T) -> (B, T)
        """Index of the codebook row with the highest cosine similarity to each latent vector.

        Computed as the reference does, as the smallest squared distance between L2-normalised
        vectors, term by term: mathematically the same as the largest cosine, but near-ties
        then round the same way and pick the same row."""
        b, d, t = latents.shape
        z = F.normalize(latents.transpose(1, 2).reshape(b * t, d), dim=1)  # (B*T, D)
        codebook = F.normalize(self.codebook.weight, dim=1)  # (K, D)
        distance = (z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t()
                    + codebook.pow(2).sum(1, keepdim=True).t())  # (B*T, K)
        return (-distance).max(dim=1).indices.view(b, t)

    def encode(self, residual):  # (B, latent, T) -> codes (B, T), quantized (B, latent, T), projected, rows
        projected = self.in_proj(residual)  # (B, D, T)
        codes = self.nearest_codes(projected)
        rows = self.codebook(codes).transpose(1, 2)  # raw (un-normalised) rows, (B, D, T)
        # The reference's straight-through form: in floating point not exactly `rows`, and the
        # residual of the next level depends on it.
        quantized = self.out_proj(projected + (rows - projected))
        return codes, quantized, projected, rows

    def decode_code(self, codes):  # (B, T) -> raw codebook rows (B, D, T)
        return self.codebook(codes).transpose(1, 2)

    def decode_latents(self, latents):  # (B, D, T) -> nearest raw rows (B, D, T), codes (B, T)
        codes = self.nearest_codes(latents)
        return self.decode_code(codes), codes


class ResidualVectorQuantize(nn.Module):
    def __init__(self, input_dim: int, n_codebooks: int, codebook_size: int, codebook_dim: int):
        super().__init__()
        self.quantizers = nn.ModuleList(
            [VectorQuantize(input_dim, codebook_size, codebook_dim) for _ in range(n_codebooks)]
        )

    def encode(self, z):  # (B, latent, T) -> (B, n_codebooks, T)
        return self.forward(z)["codes"]

    def forward(self, z, n_quantizers: int | None = None) -> dict:
        """The reference's quantizer call: {"z": quantized (B, latent, T), "codes" (B, n, T),
        "latents": the projected vectors before quantisation (B, n * D, T), and the two VQ losses
        (training terms, reported as the reference computes them)}."""
        n = len(self.quantizers) if n_quantizers is None else int(n_quantizers)
        residual, quantized_sum = z, 0
        codes, latents = [], []
        commitment = codebook_term = 0
        for i, quantizer in enumerate(self.quantizers):
            level_codes, quantized, projected, rows = quantizer.encode(residual)
            residual = residual - quantized
            if i < n:  # the reference still runs every level, but sums only the first n
                quantized_sum = quantized_sum + quantized
                error = F.mse_loss(projected, rows, reduction="none").mean([1, 2])  # (B,)
                commitment = commitment + error.mean()
                codebook_term = codebook_term + error.mean()
            codes.append(level_codes)
            latents.append(projected)
        return {"z": quantized_sum, "codes": torch.stack(codes, dim=1), "latents": torch.cat(latents, dim=1),
                "vq/commitment_loss": commitment, "vq/codebook_loss": codebook_term}

    def from_codes(self, codes):  # (B, n, T) -> (quantized (B, latent, T), rows (B, n * D, T), codes)
        """The continuous representation of codes: out_proj of each level's raw row, summed."""
        rows = [q.decode_code(codes[:, i]) for i, q in enumerate(self.quantizers[:codes.shape[1]])]
        quantized = sum(q.out_proj(r) for q, r in zip(self.quantizers, rows))
        return quantized, torch.cat(rows, dim=1), codes

    def from_latents(self, latents):  # (B, n * D, T) -> (quantized, rows, codes (B, n, T))
        """Re-quantise concatenated per-level vectors (the transformer's embeddings of codes):
        each level's nearest L2-normalised row, then out_proj, summed."""
        d = self.quantizers[0].codebook.embedding_dim
        n = latents.shape[1] // d
        rows, codes = zip(*[q.decode_latents(latents[:, i * d:(i + 1) * d]) for i, q in enumerate(self.quantizers[:n])])
        quantized = sum(q.out_proj(r) for q, r in zip(self.quantizers, rows))
        return quantized, torch.cat(rows, dim=1), torch.stack(codes, dim=1)

    def latent_tables(self):  # -> (n_codebooks, codebook_size, latent)
        """out_proj(codebook row) for every row of every level: decoding becomes table look-ups."""
        tables = []
        for q in self.quantizers:
            rows = q.codebook.weight  # (K, D)
            tables.append(F.linear(rows, q.out_proj.weight[:, :, 0], q.out_proj.bias))
        return torch.stack(tables)

    def requantize(self, rows):  # (B, n_codebooks * D, T) codebook rows -> (B, n_codebooks, T)
        """The reference decodes by re-quantising looked-up rows; that gives back the same codes."""
        d = self.quantizers[0].codebook.embedding_dim
        return torch.stack(
            [q.nearest_codes(rows[:, i * d:(i + 1) * d]) for i, q in enumerate(self.quantizers)], dim=1
        )


# ---------------------------------------------------------------------------------------------
# Decoder


class ResidualLayer(nn.Module):
    """x + Conv(k, dil 1)(Snake(Conv(k, dil d)(Snake(x)))), lengths kept ("same" padding)."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.layer = nn.Sequential(
            Snake1d(channels),
            WNConv1d(channels, channels, kernel_size, dilation=dilation,
                     padding=(kernel_size - 1) * dilation // 2),
            Snake1d(channels),
            WNConv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2),
        )

    def forward(self, x):
        return x + self.layer(x)


class ResidualStack(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilations=(1, 3, 5)):
        super().__init__()
        self.block = nn.Sequential(*[ResidualLayer(channels, kernel_size, d) for d in dilations])

    def forward(self, x):
        return self.block(x)


class MRFBlock(nn.Module):
    """Multi-receptive-field block: the mean of residual stacks with kernels 3, 7 and 11."""

    def __init__(self, channels: int, kernel_sizes=(3, 7, 11)):
        super().__init__()
        self.mrf_blocks = nn.ModuleList([ResidualStack(channels, k) for k in kernel_sizes])

    def forward(self, x):
        total = self.mrf_blocks[0](x)
        for stack in self.mrf_blocks[1:]:
            total = total + stack(x)
        return total / len(self.mrf_blocks)


class DecoderBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(in_dim),
            WNConvTranspose1d(in_dim, out_dim, kernel_size=2 * stride, stride=stride,
                              padding=stride // 2),
            MRFBlock(out_dim),
        )

    def forward(self, x):
        return self.block(x)


class Decoder(nn.Module):
    def __init__(self, latent_dim: int, dim: int, rates: list):
        super().__init__()
        layers = [WNConv1d(latent_dim, dim, kernel_size=7, padding=3)]
        for i, stride in enumerate(rates):
            layers.append(DecoderBlock(dim // 2**i, dim // 2 ** (i + 1), stride))
        layers += [Snake1d(dim // 2 ** len(rates)), WNConv1d(dim // 2 ** len(rates), 1, 7, padding=3),
                   nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z):  # (B, latent, T) -> (B, 1, T * hop)
        return self.model(z)


# ---------------------------------------------------------------------------------------------
# The codec


def _reprepare_after_loading(codec, incompatible_keys):
    """New weights from `load_state_dict`: recompute the decoding tables where they were built."""
    if codec._latent_tables is not None:
        codec.prepare()


class Codec(nn.Module):
    """Encode mono audio at `sample_rate` to codes (B, n_codebooks, T) and decode them back.

    Two doors into the same modules:
    - the fast paths the engine uses, `encode_codes(audio)` -> codes and `decode_codes(codes)` ->
      audio, which work in chunks of `chunk_frames` token frames with `*_context_frames` of extra
      context on each side, chosen larger than the receptive fields (about 8 frames for the
      encoder, 20 for the decoder), so chunked output equals whole-input output up to float
      rounding while memory stays proportional to the chunk, not to the input;
    - the reference's `encode(audio_data, sample_rate)` -> dict ("codes", "z", "latents",
      "length", the VQ losses), `decode(z)` -> {"audio"} on the continuous representation, and
      `preprocess(audio_data, sample_rate)` -> (right-padded audio, original length).
    """

    encode_context_frames = 12
    decode_context_frames = 24
    # Frames per chunk by device type: about 5 s where memory is tight, 30 s on CUDA GPUs
    # (they have the memory, and fewer chunks are faster).
    CHUNK_FRAMES = {"cuda": 1723}
    DEFAULT_CHUNK_FRAMES = 287

    def __init__(self, config: CodecConfig):
        super().__init__()
        self.config = config
        self.sample_rate = config.sample_rate
        self.hop_length = config.hop_length
        self.n_codebooks = config.n_codebooks
        self.codebook_size = config.codebook_size
        self.encoder = Encoder(config.encoder_dim, config.encoder_rates)
        self.quantizer = ResidualVectorQuantize(
            config.latent_dim, config.n_codebooks, config.codebook_size, config.codebook_dim
        )
        self.decoder = Decoder(config.latent_dim, config.decoder_dim, config.decoder_rates)
        self._chunk_frames = None  # None: by device (CHUNK_FRAMES)
        # A buffer, not a plain attribute, so that .to(device / dtype) moves it with the weights.
        self.register_buffer("_latent_tables", None, persistent=False)
        self.register_load_state_dict_post_hook(_reprepare_after_loading)

    @property
    def device(self) -> torch.device:
        return self.decoder.model[0].weight.device

    @property
    def chunk_frames(self) -> int:
        """Token frames per chunk: set explicitly, or chosen by the device the codec is on now."""
        if self._chunk_frames is not None:
            return self._chunk_frames
        return self.CHUNK_FRAMES.get(self.device.type, self.DEFAULT_CHUNK_FRAMES)

    @chunk_frames.setter
    def chunk_frames(self, value):
        """An explicit chunk size in frames (None: back to the device's default)."""
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"chunk_frames={value!r} is invalid: must be a whole number of frames >= 1, or None")
        self._chunk_frames = value

    def prepare(self):
        """Precompute what inference reuses; call after loading weights."""
        with torch.no_grad():
            self._latent_tables = self.quantizer.latent_tables()  # (n_codebooks, K, latent)
        return self

    def n_frames(self, n_samples: int) -> int:
        return math.ceil(n_samples / self.hop_length)

    # --- the reference's surface ----------------------------------------------------------------

    def preprocess(self, audio_data, sample_rate: int | None = None):
        """(B, 1, N) at the codec's rate -> (audio right-padded to a multiple of the hop, N)."""
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            raise ValueError(f"audio at {sample_rate} Hz given to a codec that works at {self.sample_rate} Hz: "
                             "resample it first (AudioSignal.resample, or Interface.preprocess)")
        length = audio_data.shape[-1]
        return F.pad(audio_data, (0, self.n_frames(length) * self.hop_length - length)), length

    def encode(self, audio_data, sample_rate: int | None = None, n_quantizers: int | None = None) -> dict:
        """The reference's encode: {"codes" (B, n_codebooks, T), "z" quantized (B, latent, T),
        "latents" projected (B, n_codebooks * codebook_dim, T), "length" (samples before
        padding), "vq/commitment_loss", "vq/codebook_loss"}. Runs in chunks like `encode_codes`."""
        audio_data, length = self.preprocess(audio_data, sample_rate)
        parts = [self.quantizer(latents, n_quantizers) for latents in self._encoded_chunks(audio_data)]
        out = {key: torch.cat([p[key] for p in parts], dim=-1) for key in ("z", "codes", "latents")}
        weights = [p["codes"].shape[-1] / out["codes"].shape[-1] for p in parts]  # losses are means over time
        for key in ("vq/commitment_loss", "vq/codebook_loss"):
            out[key] = sum(w * p[key] for w, p in zip(weights, parts))
        out["length"] = length
        return out

    def decode(self, z, length: int | None = None) -> dict:
        """The reference's decode: continuous `z` (B, latent, T) -> {"audio": (B, 1, T * hop)}."""
        return {"audio": self._decode_latents(z, length)}

    # --- the fast paths -------------------------------------------------------------------------

    def _encoded_chunks(self, audio):  # padded (B, 1, T * hop) -> encoder outputs per chunk
        n_frames = audio.shape[-1] // self.hop_length
        for first, last in _chunks(n_frames, self.chunk_frames):
            lo = max(0, first - self.encode_context_frames)
            hi = min(n_frames, last + self.encode_context_frames)
            latents = self.encoder(audio[..., lo * self.hop_length:hi * self.hop_length])
            yield latents[..., first - lo:last - lo]

    @torch.inference_mode()
    def encode_codes(self, audio):  # (B, 1, N) -> (B, n_codebooks, ceil(N / hop))
        audio, _ = self.preprocess(audio)
        return torch.cat([self.quantizer.encode(latents) for latents in self._encoded_chunks(audio)], dim=-1)

    def latents_from_codes(self, codes):  # (B, n_codebooks, T) -> (B, latent, T)
        tables = self._latent_tables if self._latent_tables is not None else self.quantizer.latent_tables()
        n = codes.shape[1]
        latents = tables[0][codes[:, 0]]
        for i in range(1, n):
            latents = latents + tables[i][codes[:, i]]  # (B, T, latent)
        return latents.transpose(1, 2)

    def _decode_latents(self, latents, length: int | None = None):  # (B, latent, T) -> (B, 1, T * hop)
        n_frames = latents.shape[-1]
        audio = []
        for first, last in _chunks(n_frames, self.chunk_frames):
            lo = max(0, first - self.decode_context_frames)
            hi = min(n_frames, last + self.decode_context_frames)
            chunk = self.decoder(latents[..., lo:hi])
            audio.append(chunk[..., (first - lo) * self.hop_length:(last - lo) * self.hop_length])
        audio = torch.cat(audio, dim=-1)
        return audio if length is None else audio[..., :length]

    @torch.inference_mode()
    def decode_codes(self, codes, length: int | None = None):  # (B, n_codebooks, T) -> (B, 1, T * hop)
        """Decode codes to audio, trimmed to `length` samples if given. MASK cells (the id
        `codebook_size`) decode as code 0, and frames where every codebook is MASK are silent.

        One item at a time: convolution kernels pick algorithms by batch size, and a variation
        must decode to the same samples whether it was made alone or in a batch."""
        mask_id = self.codebook_size
        all_masked = (codes == mask_id).all(dim=1)  # (B, T)
        codes = codes.masked_fill(codes == mask_id, 0)
        audio = torch.cat([self._decode_latents(self.latents_from_codes(codes[b:b + 1]))
                           for b in range(codes.shape[0])])
        if all_masked.any():
            silence = all_masked.repeat_interleave(self.hop_length, dim=-1)[:, None, :]
            audio = audio.masked_fill(silence, 0.0)
        return audio if length is None else audio[..., :length]


def audio_signal(audio, sample_rate: int):
    """An audiotools AudioSignal of (B, 1, n) audio, with a clear message where audiotools is missing."""
    try:
        from audiotools import AudioSignal
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the AudioSignal API needs descript-audiotools: pip install 'vampbridge[audiotools]' "
            "(or use encode_audio / decode_codes with numpy arrays)"
        ) from e
    return AudioSignal(audio, sample_rate)


def _chunks(n: int, size: int):
    """[first, last) ranges of at most `size` covering 0..n."""
    return [(start, min(n, start + size)) for start in range(0, n, size)]
