"""Time in the pipeline: which audio the model hears, which part it regenerates, splicing, loops.

A request names a region (`start_s`, `length_s`) and optionally a selection inside it
(`regen_start_s`, `regen_length_s`). The model hears the selection plus up to
`SELECTION_CONTEXT_S` of the region on each side (kept tokens), and regenerates only the
selection's frames. The variation file covers the whole region: outside the selection it is the
source sample for sample, inside it the decoded variation, joined by equal-power crossfades of
`CROSSFADE_MS` that lie inside the selection (so they never reach into the kept audio).

A loop (`loop`) is the whole region as a ring: the engine works on a whole number of token
frames (the region is resampled to exactly that many samples and back, a rate change under
0.5 frame per loop, i.e. under 0.1 % for loops over 1 s), every resampling and the effect chain
wrap around, so the variation is exactly as long as the region and runs into its own start
without a click.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from .dsp import check_finite, peak_limit, resample
from .render import match_level

SELECTION_CONTEXT_S = 5.0  # heard on each side of a selection: half the coarse window
CROSSFADE_MS = 5.0  # equal-power crossfade at each selection edge, inside the selection
WRAP_PAD_SAMPLES = 4096  # ring context around resampling (the resampler's filter is far shorter)


@dataclass(frozen=True)
class ClipPlan:
    """Sample ranges relative to the region start, at the source rate."""

    n_region: int
    heard: tuple[int, int]  # what the model hears
    selection: tuple[int, int] | None  # what is regenerated; None: all it hears
    loop: bool
    sample_rate: int

    @property
    def heard_offset_s(self) -> float:
        return self.heard[0] / self.sample_rate

    def selection_frames(self, n_frames: int) -> tuple[int, int]:
        """[first, last) token frames of the heard clip that hold selected audio."""
        if self.selection is None:
            return 0, n_frames
        n_heard = self.heard[1] - self.heard[0]
        first = math.floor((self.selection[0] - self.heard[0]) / n_heard * n_frames)
        last = math.ceil((self.selection[1] - self.heard[0]) / n_heard * n_frames)
        return max(0, first), min(n_frames, max(last, first + 1))

    def to_dict(self) -> dict:
        rate = self.sample_rate
        selection = None if self.selection is None else {
            "start_s": self.selection[0] / rate, "length_s": (self.selection[1] - self.selection[0]) / rate}
        return {"heard": {"start_s": self.heard[0] / rate, "length_s": (self.heard[1] - self.heard[0]) / rate},
                "selection": selection, "loop": self.loop, "context_limit_s": SELECTION_CONTEXT_S,
                "crossfade_ms": CROSSFADE_MS if selection else 0.0}


def plan_clip(request, n_region: int, sample_rate: int) -> ClipPlan:
    """The heard range and the selection of a request whose region holds `n_region` samples."""
    selection = request.selection_s
    if selection is None:
        return ClipPlan(n_region, (0, n_region), None, request.loop, sample_rate)
    s0 = min(n_region - 1, max(0, round((selection[0] - request.start_s) * sample_rate)))
    s1 = min(n_region, max(s0 + 1, round((selection[1] - request.start_s) * sample_rate)))
    if (s0, s1) == (0, n_region):
        return ClipPlan(n_region, (0, n_region), None, request.loop, sample_rate)
    if request.loop:
        return ClipPlan(n_region, (0, n_region), (s0, s1), True, sample_rate)
    context = round(SELECTION_CONTEXT_S * sample_rate)
    return ClipPlan(n_region, (max(0, s0 - context), min(n_region, s1 + context)), (s0, s1), False, sample_rate)


def recipe_for_clip(recipe, offset_s: float):
    """The mask recipe with its region-relative times (beats, downbeats, blocks) moved to the heard
    clip, which starts `offset_s` into the region."""
    if offset_s == 0:
        return recipe
    shift = lambda times: None if times is None else [t - offset_s for t in times]  # noqa: E731
    return replace(recipe, beats_s=shift(recipe.beats_s), downbeats_s=shift(recipe.downbeats_s),
                   blocks_s=[[a - offset_s, b - offset_s] for a, b in recipe.blocks_s])


def restrict_mask(mask, first: int, last: int):
    """Regenerate nothing outside token frames [first, last)."""
    mask = mask.clone()
    mask[..., :first] = 0
    mask[..., last:] = 0
    return mask


# --- resampling for rings --------------------------------------------------------------------

def ring_resample(audio, n_out: int) -> np.ndarray:
    """(channels, n) ring -> (channels, n_out) ring, the filter seeing the ring around each end."""
    audio = np.asarray(audio, dtype=np.float32)
    n = audio.shape[-1]
    if n == n_out:
        return audio.copy()
    pad = min(WRAP_PAD_SAMPLES, n)
    reps = math.ceil(pad / n) + 1
    tiled = np.tile(audio, (1, reps))
    wrapped = np.concatenate([tiled[:, -pad:], audio, tiled[:, :pad]], axis=1)
    out = resample(wrapped, n, n_out)
    pad_out = round(pad * n_out / n)
    return np.ascontiguousarray(out[:, pad_out:pad_out + n_out])


def engine_ring_samples(n_samples: int, sample_rate: int, engine_rate: int, hop: int) -> int:
    """Samples of a loop at the engine rate: the nearest whole number of token frames."""
    return max(1, round(n_samples * engine_rate / sample_rate / hop)) * hop


# --- rendering -----------------------------------------------------------------------------

def process_ring(chain, audio, sample_rate) -> np.ndarray:
    """The effect chain on a loop as it plays repeated: run two turns, keep the second, whose start
    holds the first turn's ring-out. Exactly the loop's length."""
    n = audio.shape[-1]
    twice = chain.process(np.concatenate([audio, audio], axis=1), sample_rate)
    out = twice[:, n:2 * n].copy()
    # anything still ringing after the second turn (a tail longer than the loop) folds back in
    rest = twice[:, 2 * n:]
    for start in range(0, rest.shape[-1], n):
        piece = rest[:, start:start + n]
        out[:, :piece.shape[-1]] += piece
    return out


def equal_power_fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fade in, fade out) of n samples: sin and cos of a quarter turn, in^2 + out^2 = 1."""
    phase = (np.arange(n, dtype=np.float64) + 0.5) / n * (np.pi / 2)
    return np.sin(phase).astype(np.float32), np.cos(phase).astype(np.float32)


def splice(source, variation, plan: ClipPlan, peak_ceiling: float) -> np.ndarray:
    """The region: `source` (channels, n_region) with the selection replaced by `variation`
    (channels, heard length). Crossfades of CROSSFADE_MS lie inside the selection, so every sample
    outside it is the source's own. The variation's gain is lowered if the selection would peak
    above `peak_ceiling`."""
    s0, s1 = plan.selection
    h0 = plan.heard[0]
    fade = max(1, min(round(CROSSFADE_MS / 1000 * plan.sample_rate), (s1 - s0) // 2))
    fade_in, fade_out = equal_power_fades(fade)
    gain_in = np.ones(s1 - s0, np.float32)  # of the variation; the source gets the complement
    gain_in[:fade] = fade_in
    gain_in[s1 - s0 - fade:] = fade_out
    gain_source = np.zeros(s1 - s0, np.float32)
    gain_source[:fade] = fade_out
    gain_source[s1 - s0 - fade:] = fade_in
    inside = variation[:, s0 - h0:s1 - h0]
    mixed_source = source[:, s0:s1] * gain_source
    peak = float(np.max(np.abs(inside * gain_in + mixed_source))) if inside.size else 0.0
    if peak > peak_ceiling:
        inside = inside * np.float32(peak_ceiling / peak)
    out = source.astype(np.float32, copy=True)
    out[:, s0:s1] = inside * gain_in + mixed_source
    return out


def render_time_variation(channels, *, source_audio, plan: ClipPlan, fx_chain, peak_ceiling: float) -> np.ndarray:
    """Render a loop and/or a selection variation: `channels` (channels, heard length) at the source
    rate -> (channels, n_region). The effect chain runs on the variation alone (wrapped for a
    loop, without a tail); its loudness is matched to the source audio it replaces (the heard part)."""
    check_finite(channels, "engine audio")
    h0, h1 = plan.heard
    heard_source = source_audio[:, h0:h1]
    if plan.loop:
        rendered = process_ring(fx_chain, channels, plan.sample_rate)
    else:
        rendered = fx_chain.process(channels, plan.sample_rate)[:, :h1 - h0]
    rendered = match_level(rendered, heard_source, plan.sample_rate)  # render.py's one level rule
    if plan.selection is None:
        return peak_limit(rendered, peak_ceiling).astype(np.float32)
    return splice(source_audio, rendered, plan, peak_ceiling)
