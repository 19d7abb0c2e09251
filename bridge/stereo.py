"""Channels: which source channels are vamped, and how a stereo source becomes mono engine rows.

VampNet is mono. Each mode turns the (channels, n) source into engine rows and the decoded rows
back into channels (docs/formats.md, "stereo"; the measurements behind the default are in
benchmarks/README.md, "Stereo"):

- `mid_side` (default): rows mid (L+R)/2 and side (L-R)/2, vamped with the same mask and the same
  random draws; back as L = M + S, R = M - S. Each row's level is restored (the engine works at
  -24 LUFS), so a narrow source (little side) stays narrow and a wide one stays wide.
- `coupled`: the channels themselves as rows, same mask and the same draws.
- `per_channel`: the channels as rows with their own masks and draws (unrelated variations).
- `mono`: the channels' mean, one row, on every channel.
"""

import numpy as np

from .dsp import match_length, resample
from .engine.seeds import derive_seed
from .selection import engine_ring_samples, ring_resample


def select_channels(audio, channel: str) -> np.ndarray:
    """The channel(s) the take plays: "all", "left", "right" (the left of a mono file) or "mono"."""
    if channel == "left" or (channel == "right" and audio.shape[0] == 1):
        return np.ascontiguousarray(audio[:1])
    if channel == "right":
        return np.ascontiguousarray(audio[1:2])
    if channel == "mono":
        return audio.mean(axis=0, keepdims=True).astype(np.float32)
    return audio


def effective_mode(mode: str, n_channels: int) -> str:
    """One channel is always `mono`; mid/side needs exactly two (others fall back to `coupled`)."""
    if n_channels == 1:
        return "mono"
    if mode == "mid_side" and n_channels != 2:
        return "coupled"
    return mode


def to_rows(audio, mode: str) -> np.ndarray:
    """(channels, n) -> (rows, n) engine rows for `mode` (already an effective mode)."""
    if mode == "mono":
        return audio.mean(axis=0, keepdims=True).astype(np.float32)
    if mode == "mid_side":
        left, right = audio[0], audio[1]
        return np.stack([(left + right) / 2, (left - right) / 2]).astype(np.float32)
    return np.asarray(audio, dtype=np.float32)


def to_channels(rows, mode: str, n_channels: int) -> np.ndarray:
    """Decoded rows (rows, n) -> (n_channels, n)."""
    if mode == "mono":
        return np.repeat(rows[:1], n_channels, axis=0)
    if mode == "mid_side":
        return np.stack([rows[0] + rows[1], rows[0] - rows[1]])
    return rows


def row_seeds(seed: int, mode: str, n_rows: int) -> list[int]:
    """Seeds of a variation's rows: the same for all rows, except per_channel (its own per row)."""
    if mode != "per_channel":
        return [seed] * n_rows
    return [seed] + [derive_seed(seed, "channel", c) & 0x7FFFFFFF for c in range(1, n_rows)]


def engine_rows(interface, audio, mode: str, sample_rate: int, loop: bool):
    """Channels (channels, n) at the source rate -> (model input (rows, 1, n_engine), level gains (rows,)).

    Resampled first, then split into `mode`'s rows (for `mono` exactly the reference's order:
    resample, mix, normalise). The model input is 44.1 kHz, -24 LUFS, peak <= 1 (a loop: exactly
    a whole number of token frames); a gain says how much louder the model input is than the
    row, to undo after decoding."""
    engine_rate, hop = interface.codec.sample_rate, interface.codec.hop_length
    if loop:
        at_rate = ring_resample(audio, engine_ring_samples(audio.shape[-1], sample_rate, engine_rate, hop))
    else:
        at_rate = resample(audio, sample_rate, engine_rate)
    inputs, gains = [], []
    for row in to_rows(at_rate, mode):
        model_input = interface.preprocess_audio(row[None], engine_rate)
        row = row.astype(np.float64)
        energy = float(np.dot(row, row))
        # a silent row (the side of a mono-compatible source) decodes to model-level noise: its
        # infinite gain turns that back into silence
        gains.append(float(np.dot(model_input[0], row)) / energy if energy > 0 else np.inf)
        inputs.append(model_input)
    return np.stack(inputs), np.asarray(gains)


def channels_from_engine(decoded, gains, mode: str, n_channels: int, sample_rate: int, n_samples: int,
                         engine_rate: int, loop: bool) -> np.ndarray:
    """Decoded rows (rows, n_engine) -> (n_channels, n_samples) at the source rate, at source level."""
    rows = decoded / np.maximum(np.asarray(gains, dtype=np.float64)[:, None], 1e-12)
    channels = to_channels(rows.astype(np.float32), mode, n_channels)
    if loop:
        return ring_resample(channels, n_samples)
    return match_length(resample(channels, engine_rate, sample_rate), n_samples)


def image(audio) -> dict:
    """Stereo image of (2, n) audio: inter-channel correlation and side/mid energy in dB."""
    left, right = np.asarray(audio[0], np.float64), np.asarray(audio[1], np.float64)
    denominator = np.sqrt(np.dot(left, left) * np.dot(right, right))
    mid, side = (left + right) / 2, (left - right) / 2
    return {"correlation": float(np.dot(left, right) / denominator) if denominator > 0 else 1.0,
            "side_to_mid_db": float(10 * np.log10((np.dot(side, side) + 1e-20) / (np.dot(mid, mid) + 1e-20)))}
