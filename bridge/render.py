"""Rendering after the engine: from the model's mono 44.1 kHz output to a file-ready variation.

Steps, in order (`render_variation`):
  1. resample the engine output to the source's sample rate;
  2. trim or pad it to exactly the source region's length;
  3. put it on every source channel (or one engine output per channel);
  4. run the effect chain, which appends its tail (`tail_s`) of ring-out;
  5. match the level of the source region by the rule `loudness_rule` picks: its integrated
     loudness (BS.1770) when it can be measured, its RMS when it is quieter than the BS.1770
     gate (-70 LUFS), -24 LUFS (the model's working level) when it is silent, so a variation is
     never far louder than its source;
  6. scale down, if needed, so the sample peak is at most -0.1 dBFS.
"""

import math

import numpy as np

from bridge.dsp import (
    AudioError,
    check_finite,
    integrated_loudness,
    match_length,
    peak_limit,
    resample,
)
from bridge.fx import FxChain

ENGINE_SAMPLE_RATE = 44100  # Hz; VampNet's codec works at this rate, mono
PEAK_CEILING_DB = -0.1  # dBFS, sample peak of every render
PEAK_CEILING = 10.0 ** (PEAK_CEILING_DB / 20.0)  # linear, about 0.98855
SILENCE_PEAK_DB = -120.0  # dBFS; a region whose sample peak is below this is silent
SILENT_REGION_LUFS = -24.0  # a variation of a silent region (all regenerated) gets the model's level


def is_silent(audio) -> bool:
    """True when every sample is below SILENCE_PEAK_DB (digital silence, a few LSBs of dither)."""
    audio = np.asarray(audio)
    return audio.size == 0 or float(np.max(np.abs(audio))) < 10.0 ** (SILENCE_PEAK_DB / 20.0)


def loudness_rule(source_audio, sample_rate) -> str:
    """How a variation's level follows its source region: "lufs" (integrated loudness matched),
    "rms" (the source is below the BS.1770 gate, so its RMS is matched) or "silent" (the source
    is silent: the variation is set to SILENT_REGION_LUFS). Recorded in every recipe."""
    if is_silent(source_audio):
        return "silent"
    if integrated_loudness(source_audio, sample_rate) == -math.inf:
        return "rms"
    return "lufs"


def _engine_mono(audio, what):
    """Engine output as float32 (1, n); accepts (n,) or (1, n)."""
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[0] != 1:
        raise AudioError(f"{what} has shape {np.shape(audio)}; expected mono (n,) or (1, n) at 44100 Hz")
    check_finite(array, what)
    return array


def _fit_to_source(engine_mono, source_sample_rate, n_samples):
    """Engine output resampled to the source rate and made exactly `n_samples` long: (1, n)."""
    at_source_rate = resample(engine_mono, ENGINE_SAMPLE_RATE, source_sample_rate)
    return match_length(at_source_rate, n_samples)


def _channels_from_engine(engine_audio, per_channel_audio, n_channels, source_sample_rate, n_samples):
    """(channels, n_samples) float32: the engine output on each source channel."""
    if per_channel_audio is None:
        mono = _fit_to_source(_engine_mono(engine_audio, "engine audio"), source_sample_rate, n_samples)
        return np.repeat(mono, n_channels, axis=0)
    if len(per_channel_audio) != n_channels:
        raise AudioError(
            f"per_channel_audio has {len(per_channel_audio)} engine outputs but the source has "
            f"{n_channels} channels; pass one per channel, or None to share engine_audio"
        )
    return np.concatenate([
        _fit_to_source(_engine_mono(audio, f"engine audio for channel {index}"), source_sample_rate, n_samples)
        for index, audio in enumerate(per_channel_audio)
    ])


def _rms(audio) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def match_level(rendered, source_audio, sample_rate):
    """`rendered` with the gain `loudness_rule(source_audio)` asks for. A render that cannot be
    measured the same way (silent, or below the gate where LUFS are matched) is matched by RMS
    over the region (not the effect tail), and a silent render stays silent."""
    if is_silent(rendered):
        return rendered
    rule = loudness_rule(source_audio, sample_rate)
    rendered_lufs = integrated_loudness(rendered, sample_rate)
    if rule == "silent":
        target_lufs = SILENT_REGION_LUFS
    elif rule == "lufs":
        target_lufs = integrated_loudness(source_audio, sample_rate)
    if rule != "rms" and rendered_lufs != -math.inf:
        gain = 10.0 ** ((target_lufs - rendered_lufs) / 20.0)
    else:
        region_rms = _rms(rendered[:, :source_audio.shape[1]])
        source_rms = _rms(source_audio) if rule != "silent" else 10.0 ** (SILENT_REGION_LUFS / 20.0)
        gain = source_rms / region_rms if region_rms > 0 else 1.0
    return (rendered.astype(np.float64) * gain).astype(np.float32)


def render_variation(
    engine_audio,
    *,
    source_audio,
    source_sample_rate,
    fx=None,
    per_channel_audio=None,
    loudness_match=True,
):
    """Turn one engine output into a variation of the source region, ready to write.

    engine_audio: model output, mono float at ENGINE_SAMPLE_RATE, shape (n,) or (1, n).
    source_audio: the source region as read from the file, (channels, n_src).
    source_sample_rate: Hz of `source_audio`; the result has the same rate.
    fx: an FxChain, or anything `FxChain.from_json` takes (preset name, JSON, list); None = no fx.
    per_channel_audio: optional list with one engine output per source channel, used instead
        of putting `engine_audio` on every channel.
    loudness_match: scale to the source region's level by `loudness_rule` (LUFS, RMS below the
        BS.1770 gate, a fixed -24 LUFS for a silent region). The -0.1 dBFS peak ceiling wins.

    Returns float32 (channels, n_src + round(tail_s * source_sample_rate)).
    """
    source_audio = np.asarray(source_audio)
    if source_audio.ndim != 2 or source_audio.shape[0] == 0:
        raise AudioError(f"source audio has shape {source_audio.shape}; expected (channels, samples)")
    check_finite(source_audio, "source audio")
    n_channels, n_source = source_audio.shape
    chain = FxChain.from_json(fx)

    rendered = _channels_from_engine(
        engine_audio, per_channel_audio, n_channels, source_sample_rate, n_source
    )
    rendered = chain.process(rendered, source_sample_rate)  # adds the tail
    check_finite(rendered, f"render after the effect chain {chain!r}")
    if loudness_match:
        rendered = match_level(rendered, source_audio, source_sample_rate)
    return peak_limit(rendered, PEAK_CEILING).astype(np.float32)


__all__ = ["ENGINE_SAMPLE_RATE", "PEAK_CEILING", "PEAK_CEILING_DB", "SILENCE_PEAK_DB", "SILENT_REGION_LUFS",
           "is_silent", "loudness_rule", "match_level", "render_variation"]
