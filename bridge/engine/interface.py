"""`Interface`: the engine's public API, mirroring the reference `vampnet.interface.Interface`.

Code written for VampNet runs by changing its import (`import bridge.engine as vampnet`):

    interface = vampnet.interface.Interface.default()  # or Interface(coarse_ckpt=..., codec_ckpt=...)
    z = interface.encode(signal)                        # audiotools AudioSignal -> (1, 14, T)
    mask = interface.build_mask(z, signal, periodic_prompt=7, upper_codebook_mask=3)
    zv = interface.vamp(z, mask, batch_size=4, temperature=1.0, typical_filtering=True, seed=1)
    out = interface.decode(zv)                          # -> AudioSignal at 44.1 kHz

Besides the reference's methods, `preprocess_audio`, `encode_audio` and `decode_codes` work on
plain arrays; the rendering pipeline uses them so that audiotools stays off the hot path.
"""

import math
import os
from pathlib import Path

import numpy as np
import torch

from .. import dsp
from .checkpoint import check_compatible, load_codec, load_transformer
from .codec import audio_signal
from .mask import *  # noqa: F401,F403 - the reference's interface module re-exports its mask functions
from .model_sets import ModelSetMethods
from .precision import use_bf16
from .prompts import MaskRecipe, detect_beats
from .sampler import SamplingOptions, generate
from .transformer import PRECISIONS
from .seeds import chunk_generator, seed_from_global_rng

LOUDNESS_TARGET_LUFS = -24.0


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA, then Apple MPS, then CPU; `requested` (or $VAMPBRIDGE_DEVICE) overrides."""
    requested = requested or os.environ.get("VAMPBRIDGE_DEVICE") or None
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} was asked for but CUDA is not available here; use 'cpu'")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {requested!r} was asked for but Apple MPS is not available here; use 'cpu'")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def signal_concat(audio_signals: list):
    """AudioSignals (same rate) joined along time, as the reference's `signal_concat`."""
    if not audio_signals:
        raise ValueError("signal_concat needs at least one AudioSignal")
    rates = {s.sample_rate for s in audio_signals}
    if len(rates) != 1:
        raise ValueError(f"signal_concat needs signals at one sample rate, got {sorted(rates)}: resample them first")
    return audio_signal(torch.cat([s.audio_data for s in audio_signals], dim=-1), audio_signals[0].sample_rate)


def _ensure_max_of_audio(audio):
    """Scale (channels, n) float32 audio down to a peak of 1.0, in float32 as audiotools does."""
    peak = np.float32(np.abs(audio).max()) if audio.size else np.float32(0)
    return audio * (np.float32(1.0) / peak) if peak > 1.0 else audio


class Interface(ModelSetMethods, torch.nn.Module):
    """A torch Module (`to`, `eval`, `parameters`, `state_dict`) holding `codec`, `coarse` and
    `c2f`; positional arguments in the reference's order."""

    def __init__(self, coarse_ckpt=None, coarse_lora_ckpt=None, coarse2fine_ckpt=None, coarse2fine_lora_ckpt=None,
                 codec_ckpt=None, wavebeat_ckpt=None, device=None, coarse_chunk_size_s: float = 10,
                 coarse2fine_chunk_size_s: float = 3, compile: bool | None = None,
                 precision: str = "fp32"):
        """`device` None picks the best available (`pick_device`). `precision` "bf16" runs the
        transformers' projections and attention in bf16 (CUDA, or a CPU with AVX512_BF16 / AMX),
        after a check that their logits agree with float32 (`bridge.engine.precision`; the reports
        are in `precision_reports`); "fp32", the default, is the reference's arithmetic. `compile` runs the transformers'
        layer stacks through `torch.compile` (None: on when the environment sets
        VAMPBRIDGE_COMPILE=1). Meant for CUDA, where it fuses the normalisation, activation and
        bf16 casts around the matrix products; it costs tens of seconds per new (batch, length)
        shape, and on a CPU it is slower than the eager oneDNN path (measured)."""
        if codec_ckpt is None:
            raise ValueError("must provide a codec checkpoint (codec_ckpt=.../codec.pth)")
        if coarse_ckpt is None:
            raise ValueError("must provide a coarse checkpoint (coarse_ckpt=.../coarse.pth)")
        codec = load_codec(codec_ckpt)
        coarse = load_transformer(coarse_ckpt, coarse_lora_ckpt)
        c2f = load_transformer(coarse2fine_ckpt, coarse2fine_lora_ckpt) if coarse2fine_ckpt else None
        self._setup(codec, coarse, c2f, device=device, compile=compile, coarse_chunk_size_s=coarse_chunk_size_s,
                    coarse2fine_chunk_size_s=coarse2fine_chunk_size_s, precision=precision)
        self.codec_path = Path(codec_ckpt)
        self.coarse_path = Path(coarse_ckpt)
        self.c2f_path = Path(coarse2fine_ckpt) if coarse2fine_ckpt else None
        self._lora_paths = {"coarse": coarse_lora_ckpt, "c2f": coarse2fine_lora_ckpt}

    def _setup(self, codec, coarse, c2f, device=None, compile=None, coarse_chunk_size_s: float = 10,
               coarse2fine_chunk_size_s: float = 3, precision: str = "fp32"):
        torch.nn.Module.__init__(self)
        self.device = pick_device(device)
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {sorted(PRECISIONS)}")
        self.precision = precision
        self.precision_reports = {}  # per model name: the bf16 agreement check (precision "bf16")
        self.step_fn = None  # a stand-in for the sampler's decode_step (bridge.engine.graphs), or None
        self.compile_layers = (os.environ.get("VAMPBRIDGE_COMPILE", "") == "1" if compile is None
                               else bool(compile))
        self.loudness = LOUDNESS_TARGET_LUFS  # what `_preprocess` normalises to, as in the reference
        check_compatible(codec, coarse, c2f)
        self.codec = codec.prepare()
        self.coarse = coarse
        self.c2f = c2f
        self.coarse.chunk_size_s = coarse_chunk_size_s
        if self.c2f is not None:
            self.c2f.chunk_size_s = coarse2fine_chunk_size_s
        # The wavebeat tracker is not part of this engine: beat-driven prompts use our own detector.
        self.beat_tracker = None
        self.codec_path = self.coarse_path = self.c2f_path = None
        self._lora_paths = {"coarse": None, "c2f": None}
        for name, model in (("coarse", self.coarse), ("c2f", self.c2f)):
            if model is not None:
                self._ready(model, name)
        self.to(self.device)
        self.eval()
        self.register_load_state_dict_post_hook(Interface._reprepare_after_loading)

    def _reprepare_after_loading(self, incompatible_keys):
        """New codec codebooks change the transformers' embedding tables: rebuild them."""
        codebooks = [q.codebook.weight for q in self.codec.quantizer.quantizers]
        for model in (self.coarse, self.c2f):
            if model is not None:
                model.prepare(codebooks)

    @classmethod
    def from_modules(cls, codec, coarse, c2f=None, device=None, compile: bool | None = None,
                     coarse_chunk_size_s: float = 10, coarse2fine_chunk_size_s: float = 3,
                     precision: str = "fp32") -> "Interface":
        """An Interface around models already in memory (benchmarks, tools), set up as loading does."""
        interface = cls.__new__(cls)
        interface._setup(codec, coarse, c2f, device=device, compile=compile, coarse_chunk_size_s=coarse_chunk_size_s,
                         coarse2fine_chunk_size_s=coarse2fine_chunk_size_s, precision=precision)
        return interface

    def set_chunk_size(self, chunk_size_s: float):
        """Seconds of audio the coarse model sees at once (the reference's `set_chunk_size`)."""
        if not isinstance(chunk_size_s, (int, float)) or not math.isfinite(chunk_size_s) or self.s2t(chunk_size_s) < 1:
            raise ValueError(f"chunk_size_s={chunk_size_s!r} is invalid: must be a positive number of seconds")
        self.coarse.chunk_size_s = chunk_size_s

    # --- devices and units --------------------------------------------------------------------

    def to(self, *args, **kwargs):
        """torch's `Module.to`; the interface's `device` follows, and generation runs there."""
        device, _, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        super().to(*args, **kwargs)
        if device is not None:
            self.device = torch.device(device)
        return self

    def _ready(self, model, name: str):
        """Move a transformer to the device, precompute its tables, set its precision, compile it if asked."""
        model.to(self.device).prepare([q.codebook.weight for q in self.codec.quantizer.quantizers])
        if self.precision == "bf16":
            self.precision_reports[name] = use_bf16(model)
        if self.compile_layers:
            model.transformer.compile(dynamic=False)  # one graph per (batch, length); the head stays eager
        return model.eval()

    def s2t(self, seconds):
        """Seconds to token frames: ceil(seconds * sample_rate / hop)."""
        if isinstance(seconds, np.ndarray):
            return np.ceil(seconds * self.codec.sample_rate / self.codec.hop_length)
        return math.ceil(seconds * self.codec.sample_rate / self.codec.hop_length)

    def t2s(self, tokens):
        """Token frames to seconds."""
        return tokens * self.codec.hop_length / self.codec.sample_rate

    def s2t2s(self, seconds):
        return self.t2s(self.s2t(seconds))

    # --- audio in and out ---------------------------------------------------------------------

    def preprocess_audio(self, audio, sample_rate: int) -> np.ndarray:
        """(channels, n) float at any rate -> (1, n') at 44.1 kHz, mono, -24 LUFS, peak <= 1.

        Loudness and peak as the reference measures and applies them (`dsp.normalize_for_model`);
        resampling is pedalboard's, where the reference uses julius (see _preprocess)."""
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        dsp.check_finite(audio, "input audio")
        audio = dsp.to_mono(dsp.resample(audio, sample_rate, self.codec.sample_rate))
        # (the companion calls this with a stand-in `self` that has only codec.sample_rate)
        loudness = getattr(self, "loudness", LOUDNESS_TARGET_LUFS)
        return _ensure_max_of_audio(dsp.normalize_for_model(audio, self.codec.sample_rate, loudness))

    def encode_audio(self, audio) -> torch.Tensor:
        """Preprocessed mono audio (1, n) or (B, 1, n) at 44.1 kHz -> codes (B, n_codebooks, T)."""
        x = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
        x = x.reshape(-1, 1, x.shape[-1])
        return self.codec.encode_codes(x)

    def decode_codes(self, codes, length: int | None = None) -> torch.Tensor:
        """Codes (B, C, T) -> audio (B, 1, n) at 44.1 kHz. Frames where every codebook is MASK are
        silent; other MASK cells decode as code 0, like the reference."""
        return self.codec.decode_codes(codes.to(self.device), length)

    def _preprocess(self, signal):
        """The reference's preprocessing of an AudioSignal: resample, mono, `loudness` LUFS (-24),
        peak <= 1, then right-padded with silence to a whole number of hops.

        Resampling, mixing and the peak step are audiotools' own, as in the reference; the
        loudness gain comes from `dsp.normalize_for_model`, which reproduces audiotools'
        meter without its IIR path (a per-sample Python loop, about 1 s per second of audio,
        where torchaudio's extension is unavailable).
        """
        signal = signal.clone().resample(self.codec.sample_rate).to_mono()
        data = signal.audio_data.detach().cpu().float().numpy()  # (B, 1, n)
        for b in range(data.shape[0]):
            data[b] = dsp.normalize_for_model(data[b], signal.sample_rate, self.loudness)
        signal.audio_data = torch.from_numpy(data)
        signal = signal.ensure_max_of_audio(1.0)
        signal.audio_data, _ = self.codec.preprocess(signal.audio_data, signal.sample_rate)
        return signal

    preprocess = _preprocess

    @torch.inference_mode()
    def encode(self, signal) -> torch.Tensor:
        """AudioSignal -> codes (B, n_codebooks, T) on this interface's device."""
        signal = self._preprocess(signal)
        return self.encode_audio(signal.audio_data.numpy())

    @torch.inference_mode()
    def decode(self, z):
        """Codes (B, C, T) -> AudioSignal at 44.1 kHz."""
        return audio_signal(self.decode_codes(z).float().cpu(), self.codec.sample_rate)

    to_signal = decode

    def visualize_codes(self, z, mask=None):
        """A matplotlib Figure of item 0 of codes `z` (B, C, T): one row per codebook over time in
        seconds, MASK cells blank; with `mask`, a second panel shows it (1 = regenerate)."""
        from matplotlib.figure import Figure

        codes = z[0].detach().cpu().numpy()
        n_rows = 2 if mask is not None else 1
        figure = Figure(figsize=(10, 3.5 * n_rows))
        extent = (0.0, self.t2s(codes.shape[-1]), -0.5, codes.shape[0] - 0.5)
        ax = figure.add_subplot(n_rows, 1, 1)
        shown = np.ma.masked_equal(codes, self.codec.codebook_size)  # MASK cells stay blank
        ax.imshow(shown, aspect="auto", origin="lower", cmap="tab20", interpolation="nearest", extent=extent)
        ax.set_title("codes")
        ax.set_ylabel("codebook")
        if mask is not None:
            ax = figure.add_subplot(n_rows, 1, 2)
            ax.imshow(mask[0].detach().cpu().numpy(), aspect="auto", origin="lower", cmap="gray_r",
                      interpolation="nearest", extent=extent, vmin=0, vmax=1)
            ax.set_title("mask (dark = regenerate)")
            ax.set_ylabel("codebook")
        ax.set_xlabel("time (s)")
        figure.tight_layout()
        return figure

    # --- masks ----------------------------------------------------------------------------------

    def build_mask(self, z, sig=None, rand_mask_intensity: float = 1.0, prefix_s: float = 0.0,
                   suffix_s: float = 0.0, periodic_prompt: int = 7, periodic_prompt_width: int = 1,
                   onset_mask_width: int = 0, _dropout: float = 0.0, upper_codebook_mask: int = 3,
                   ncc: int = 0, seed: int | None = None, generator=None):
        """The reference's mask builder (same keyword names); `seed` or `generator` makes it repeatable."""
        recipe = MaskRecipe(rand_mask_intensity=rand_mask_intensity, prefix_s=prefix_s, suffix_s=suffix_s,
                            periodic_prompt=int(periodic_prompt), periodic_prompt_width=int(periodic_prompt_width),
                            onset_mask_width=int(onset_mask_width), dropout=_dropout,
                            upper_codebook_mask=int(upper_codebook_mask), keep_lowest=int(ncc))
        audio = None
        if recipe.uses_audio:
            if sig is None:
                raise ValueError("onset_mask_width > 0 needs the signal: build_mask(z, sig, ...)")
            audio = self._preprocess(sig).audio_data[0, 0].numpy()
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        return self.build_mask_from_recipe(recipe, z.shape, generator, audio)

    def build_mask_from_recipe(self, recipe, shape, generator=None, audio=None) -> torch.Tensor:
        recipe = MaskRecipe.from_json(recipe)
        mask = recipe.build(tuple(shape), generator, audio, self.codec.sample_rate, self.codec.hop_length)
        return mask.to(self.device)

    def _beat_frames(self, signal) -> list[int]:
        """Beat frames of an AudioSignal on the token grid, from our detector (no WaveBeat)."""
        audio = self._preprocess(signal).audio_data[0, 0].numpy()
        return detect_beats(audio, self.codec.sample_rate, self.codec.hop_length)

    def snap_to_beats(self, signal):
        """The signal trimmed to start on its first detected beat and end on its last."""
        beats = self._beat_frames(signal)
        if len(beats) < 2:
            raise ValueError(f"found {len(beats)} beat(s) in the signal; snapping needs at least two "
                             "(use a longer or more rhythmic clip)")
        begin = min(int(self.t2s(beats[0]) * signal.sample_rate), signal.signal_length)
        end = min(int(self.t2s(beats[-1]) * signal.sample_rate), signal.signal_length)
        return signal.clone().trim(begin, signal.signal_length - end)

    def make_beat_mask(self, signal, before_beat_s: float = 0.0, after_beat_s: float = 0.02,
                       mask_downbeats: bool = True, mask_upbeats: bool = True,
                       downbeat_downsample_factor: int | None = None, beat_downsample_factor: int | None = None,
                       dropout: float = 0.0, invert: bool = True, seed: int | None = None):
        """The reference's beat-synced mask (same defaults): 1 around the beats and 0 elsewhere,
        inverted by default (so the beats are kept). Beats come from our detector; every 4th beat
        counts as a downbeat (the reference's WaveBeat tracker finds downbeats itself)."""
        for name, factor in (("downbeat_downsample_factor", downbeat_downsample_factor),
                             ("beat_downsample_factor", beat_downsample_factor)):
            if factor is not None and factor < 1:
                raise ValueError(f"{name}={factor!r} is invalid: must be >= 1, or None")
        n_frames = self.s2t(signal.duration)
        beats = self._beat_frames(signal)
        downbeats = beats[::4][::downbeat_downsample_factor or 1]
        upbeats = [b for b in beats if b not in set(beats[::4])][::beat_downsample_factor or 1]
        chosen = (downbeats if mask_downbeats else []) + (upbeats if mask_upbeats else [])
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        around = torch.zeros(n_frames, dtype=torch.long)
        before, after = self.s2t(before_beat_s), self.s2t(after_beat_s)
        for beat in chosen:
            span = around[max(0, beat - before):beat + after]
            span[:] = torch.bernoulli(torch.full(span.shape, 1.0 - dropout), generator=generator).long()
        mask = 1 - around if invert else around
        n = self.c2f.n_codebooks if self.c2f is not None else self.coarse.n_codebooks
        return mask[None, None, :].repeat(1, n, 1).to(self.device)

    # --- generation -----------------------------------------------------------------------------

    def _generators(self, seeds, stage: str, n_chunks: int):
        """Row generators in item-major order: one per (variation seed, chunk). CPU generators on
        every device: the sampler draws up front and moves the draws, so a seed gives the same
        random numbers everywhere, and devices without generators of their own (MPS) work."""
        return [chunk_generator(seed, stage, chunk) for seed in seeds for chunk in range(n_chunks)]

    def _seeds(self, batch_size: int, seed, seeds):
        if seeds is not None:
            if len(seeds) != batch_size:
                raise ValueError(f"got {len(seeds)} seeds for a batch of {batch_size}")
            return [int(s) for s in seeds]
        if seed is None:
            seed = seed_from_global_rng()  # repeatable after torch.manual_seed, as in the reference
        return [int(seed) + k for k in range(batch_size)]

    def _run_chunks(self, model, z, mask, chunk_len: int, stage: str, seeds, options, pad: bool,
                    on_step=None, trace=None, max_rows: int | None = None):
        """Generate chunk by chunk along time, all chunks of all items of one length as one batch."""
        B, C, T = z.shape
        if pad and T % chunk_len:
            extra = chunk_len - T % chunk_len
            z = torch.nn.functional.pad(z, (0, extra))
            mask = torch.nn.functional.pad(mask, (0, extra), value=1)
        n_chunks = math.ceil(z.shape[-1] / chunk_len)
        out = z.clone()
        generators = self._generators(seeds, stage, n_chunks)
        # group the chunk indices by length: the full ones together, a short last one apart
        groups = {}
        for i in range(n_chunks):
            length = min(chunk_len, z.shape[-1] - i * chunk_len)
            groups.setdefault(length, []).append(i)
        max_rows = max_rows or (64 if self.device.type == "cuda" else 16)
        total_rows = B * n_chunks
        done_rows = 0
        for length, chunk_ids in groups.items():
            rows = [(b, i) for b in range(B) for i in chunk_ids]
            for start in range(0, len(rows), max_rows):
                part = rows[start:start + max_rows]
                zc = torch.stack([z[b, :, i * chunk_len:i * chunk_len + length] for b, i in part])
                mc = torch.stack([mask[b, :, i * chunk_len:i * chunk_len + length] for b, i in part])
                gens = [generators[b * n_chunks + i] for b, i in part]

                def step_done(step, n_steps, _done=done_rows, _n=len(part)):
                    if on_step is not None:
                        on_step(stage, (_done + _n * (step + 1) / n_steps) / total_rows)

                if trace is not None:
                    trace.label(stage, [(b, i * chunk_len) for b, i in part])
                result = generate(model, zc, mc, options, gens, on_step=step_done, trace=trace,
                                  step_fn=self.step_fn)
                for (b, i), row in zip(part, result):
                    out[b, :, i * chunk_len:i * chunk_len + length] = row
                done_rows += len(part)
        return out[..., :T]

    def _options(self, options=None, **kwargs) -> SamplingOptions:
        if options is not None:
            return options
        if "_sampling_steps" in kwargs:  # the reference's spelling of the step count (an int or a list)
            steps = kwargs.pop("_sampling_steps")
            kwargs["sampling_steps"] = int(sum(steps) if isinstance(steps, (list, tuple)) else steps)
        return SamplingOptions.from_dict(kwargs)

    @torch.inference_mode()
    def coarse_vamp(self, z, mask, return_mask=False, gen_fn=None, seed=None, seeds=None,
                    options: SamplingOptions | None = None, on_step=None, trace=None, **kwargs):
        """Regenerate the masked coarse cells in chunks of `coarse.chunk_size_s`; fine codes pass through.

        A chunk whose mask keeps anything also keeps its first and last frame (avoids seams).
        `gen_fn` is accepted for compatibility and must be None or `interface.coarse.generate`.
        """
        if gen_fn is not None and getattr(gen_fn, "__self__", None) is not self.coarse:
            raise ValueError("gen_fn must be None or interface.coarse.generate")
        options = self._options(options, **kwargs)
        n = self.coarse.n_codebooks
        z = z.to(self.device)
        mask = mask.to(self.device).long().expand(z.shape[0], -1, -1)  # one mask may serve a batch
        cz, cmask = z[:, :n].clone(), mask[:, :n].clone()
        seeds = self._seeds(z.shape[0], seed, seeds)
        chunk_len = self.s2t(self.coarse.chunk_size_s)
        for start in range(0, cz.shape[-1], chunk_len):
            end = min(cz.shape[-1], start + chunk_len)
            keeps_something = (cmask[:, :, start:end] == 0).flatten(1).any(dim=1)  # per item
            cmask[keeps_something, :, start] = 0
            cmask[keeps_something, :, end - 1] = 0
        vamped = self._run_chunks(self.coarse, cz, cmask, chunk_len, "coarse", seeds, options, pad=False,
                                  on_step=on_step, trace=trace)
        out = torch.cat([vamped, z[:, n:]], dim=1)
        if return_mask:
            return out, cz.masked_fill(cmask.bool(), self.coarse.mask_token)
        return out

    @torch.inference_mode()
    def coarse_to_fine(self, z, mask=None, return_mask=False, seed=None, seeds=None,
                       options: SamplingOptions | None = None, on_step=None, trace=None, **kwargs):
        """Generate the fine codebooks from the coarse ones in chunks of `c2f.chunk_size_s`.

        Called on its own it samples with the sampler's defaults (12 steps), as the reference does;
        `vamp` passes its `c2f_sampling_steps` (2). Unlike the reference's `vamp` (which fixes 2
        steps and ignores temperature and seed), every sampling option applies.
        """
        if self.c2f is None:
            raise RuntimeError("no coarse-to-fine model loaded (coarse2fine_ckpt=.../c2f.pth)")
        options = self._options(options, **kwargs)
        z = z.to(self.device)
        B, C, T = z.shape
        n = self.c2f.n_codebooks
        if C < n:
            z = torch.cat([z, torch.zeros(B, n - C, T, dtype=z.dtype, device=z.device)], dim=1)
        if mask is None:
            mask = torch.ones(B, n, T, dtype=torch.long, device=self.device)
        mask = mask.to(self.device).long().expand(B, -1, -1)[:, :n].clone()
        mask[:, :self.c2f.n_conditioning_codebooks] = 0
        seeds = self._seeds(B, seed, seeds)
        chunk_len = self.s2t(self.c2f.chunk_size_s)
        out = self._run_chunks(self.c2f, z[:, :n], mask, chunk_len, "c2f", seeds, options, pad=True,
                               on_step=on_step, trace=trace)
        if return_mask:
            return out, z[:, :n].masked_fill(mask.bool(), self.c2f.mask_token)
        return out

    @torch.inference_mode()
    def vamp(self, codes, mask, batch_size: int = 1, feedback_steps: int = 1, time_stretch_factor: int = 1,
             return_mask: bool = False, seed=None, seeds=None, c2f_sampling_steps: int = 2,
             on_step=None, trace=None, **kwargs):
        """Coarse vamp then coarse-to-fine: `batch_size` variations of `codes` under `mask`.

        Sampling keywords are the reference's (`sampling_steps`, `temperature`, `top_k`, `top_p`,
        `typical_filtering`, `typical_mass`, `typical_min_tokens`, `mask_temperature`,
        `sample_cutoff`). Variation k uses seed `seed + k` (or `seeds[k]`); the process-global RNG
        is never re-seeded (with no seed, `seed` is drawn from it). Returns codes (batch, 14, T), and the masked codes when `return_mask`.
        """
        options = self._options(**kwargs)
        z = codes.to(self.device).expand(batch_size, -1, -1)
        mask = mask.to(self.device).long().expand(batch_size, -1, -1)
        if time_stretch_factor > 1:
            z = z.repeat_interleave(time_stretch_factor, dim=-1)
            mask = mask.repeat_interleave(time_stretch_factor, dim=-1)
            added = torch.ones_like(mask)
            added[:, :, ::time_stretch_factor] = 0
            mask = mask | added
        seeds = self._seeds(batch_size, seed, seeds)
        zv = z
        # Feedback: like the reference, each pass re-vamps the previous pass's output under the same
        # mask (the reference rolls only the masked codes it returns, by 0 after the last pass).
        for i in range(feedback_steps):
            zv, mask_z = self.coarse_vamp(zv, mask, return_mask=True, seeds=[s + 7919 * i for s in seeds],
                                          options=options, on_step=on_step, trace=trace)
        if self.c2f is not None:
            c2f_options = SamplingOptions(**{**options.to_dict(), "sampling_steps": c2f_sampling_steps})
            zv, fine_mask = self.coarse_to_fine(zv, mask, return_mask=True, seeds=seeds, options=c2f_options,
                                                on_step=on_step, trace=trace)
            mask_z = torch.cat([mask_z, fine_mask[:, self.coarse.n_codebooks:]], dim=1)
        return (zv, mask_z) if return_mask else zv

