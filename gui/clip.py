"""The clip the companion edits: a region of an audio file, read and analysed once, without Qt.

`load_clip` runs in a worker thread (a 10-minute file takes a while to read and analyse) and
returns a `Clip` holding everything the views and the mask generators need:

- `source_audio` (channels, n) at the file's rate, for the waveform and A/B playback;
- `engine_audio` (n',) mono at 44.1 kHz, loudness-normalised exactly as the pipeline does it,
  because the onset- and beat-driven mask recipes must see the signal the engine sees;
- `n_frames`: the token grid's width T = ceil(n' / 768), the same T the codec will produce;
- a min/max waveform envelope and a log-frequency spectrogram with one column per token frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge.audio import probe, read_region
from bridge.dsp import resample
from bridge.engine.interface import Interface
from bridge.engine.prompts import HOP_LENGTH, SAMPLE_RATE

N_CODEBOOKS = 14
N_COARSE = 4  # codebooks 0-3 are the coarse model's; 4-13 the coarse-to-fine model's
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 57.42 token frames per second

SPECTROGRAM_BANDS = 160
SPECTROGRAM_FFT = 2048
SPECTROGRAM_MIN_HZ = 40.0
SPECTROGRAM_MAX_HZ = 16000.0
ENVELOPE_BLOCK = 96  # waveform samples per min/max pair: 8 pairs per token frame at 44.1 kHz
CHANGE_RANGE_DB = 80.0  # the change view compares spectra down to this far below the loudest


class _EngineRate:
    """Stands in for a loaded `Interface`: `preprocess_audio` only reads `codec.sample_rate`, so
    calling it with this keeps the companion's signal identical to the pipeline's without
    loading a model on the UI side."""

    class codec:  # noqa: N801 - mirrors Interface.codec
        sample_rate = SAMPLE_RATE


def engine_audio_of(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(channels, n) at any rate -> (n',) what the engine encodes (44.1 kHz mono, -24 LUFS)."""
    return Interface.preprocess_audio(_EngineRate, audio, sample_rate)[0]


def seconds_to_frame(seconds: float) -> float:
    return seconds * FRAMES_PER_SECOND


def frame_to_seconds(frame: float) -> float:
    return frame / FRAMES_PER_SECOND


@dataclass
class Clip:
    path: str
    start_s: float
    length_s: float | None  # None: to the end of the file (as requested)
    sample_rate: int
    source_audio: np.ndarray  # (channels, n) float32
    engine_audio: np.ndarray  # (n',) float32 at 44.1 kHz
    n_frames: int  # token frames T
    envelope_x_frames: np.ndarray  # (m,) x of each min/max pair, in token frames
    envelope_min: np.ndarray  # (m,)
    envelope_max: np.ndarray  # (m,)
    spectrogram_db: np.ndarray  # (T, SPECTROGRAM_BANDS) float32, dB, low bands first
    playrate: float = 1.0
    item_guid: str = ""  # set when Reaper opened the clip: where takes go back to
    take_guid: str = ""
    client: str = ""
    # Reaper's tempo-map beats and bar starts, seconds from the clip's start (None: detect them)
    beats_s: tuple[float, ...] | None = None
    downbeats_s: tuple[float, ...] | None = None
    extra: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.source_audio.shape[1] / self.sample_rate

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def from_reaper(self) -> bool:
        return bool(self.item_guid)

    def describe(self) -> str:
        region = "" if self.start_s == 0 and self.length_s is None else \
            f" @ {self.start_s:.2f}–{self.start_s + self.duration_s:.2f} s"
        return (f"{self.name}{region} · {self.duration_s:.2f} s · {self.sample_rate} Hz · "
                f"{self.source_audio.shape[0]} ch · {self.n_frames} frames")


def load_clip(path, start_s: float = 0.0, length_s: float | None = None, **reaper_fields) -> Clip:
    """Read and analyse a region. Raises `bridge.audio.AudioError` (a ValueError) with a message
    for a person when the file or region is unusable."""
    path = str(Path(path).expanduser())
    info = probe(path)
    if length_s is not None and length_s <= 0:
        length_s = None  # Reaper sends <= 0 for "to the end"
    if length_s is not None:  # Reaper's item may run a hair past the file's end
        length_s = min(length_s, max(1e-3, info.duration_s - start_s))
    audio, rate = read_region(path, start_s, length_s)
    engine = engine_audio_of(audio, rate)
    n_frames = max(1, math.ceil(len(engine) / HOP_LENGTH))
    x, lo, hi = _envelope(audio, rate)
    return Clip(path=path, start_s=float(start_s), length_s=length_s, sample_rate=int(rate),
                source_audio=audio, engine_audio=engine, n_frames=n_frames, envelope_x_frames=x,
                envelope_min=lo, envelope_max=hi, spectrogram_db=spectrogram(engine, n_frames),
                **reaper_fields)


def _envelope(audio: np.ndarray, sample_rate: int):
    """Min and max of the mono mix over blocks, so a 10-minute clip draws as ~300 k points."""
    mono = audio.mean(axis=0)
    block = max(1, int(round(ENVELOPE_BLOCK * sample_rate / SAMPLE_RATE)))
    n_blocks = max(1, len(mono) // block)
    body = mono[:n_blocks * block].reshape(n_blocks, block)
    x = (np.arange(n_blocks) + 0.5) * block / sample_rate * FRAMES_PER_SECOND
    return x.astype(np.float64), body.min(axis=1), body.max(axis=1)


def _band_matrix(n_bins: int) -> np.ndarray:
    """(bins, bands) averaging weights over log-spaced bands: musicians read pitch logarithmically."""
    freqs = np.linspace(0, SAMPLE_RATE / 2, n_bins)
    edges = np.geomspace(SPECTROGRAM_MIN_HZ, SPECTROGRAM_MAX_HZ, SPECTROGRAM_BANDS + 1)
    weights = np.zeros((n_bins, SPECTROGRAM_BANDS), dtype=np.float32)
    for b in range(SPECTROGRAM_BANDS):
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not inside.any():  # narrow low bands: take the nearest bin
            inside = np.abs(freqs - math.sqrt(edges[b] * edges[b + 1])) == \
                np.abs(freqs - math.sqrt(edges[b] * edges[b + 1])).min()
        weights[inside, b] = 1.0 / inside.sum()
    return weights


def spectrogram(engine_audio: np.ndarray, n_frames: int, chunk_frames: int = 2048) -> np.ndarray:
    """(T, bands) dB, one column per token frame (hop 768), computed in chunks to bound memory."""
    n_fft = SPECTROGRAM_FFT
    padded = np.pad(engine_audio, (n_fft // 2, n_fft // 2 + n_frames * HOP_LENGTH))
    window = np.hanning(n_fft).astype(np.float32)
    bands = _band_matrix(n_fft // 2 + 1)
    out = np.empty((n_frames, SPECTROGRAM_BANDS), dtype=np.float32)
    for first in range(0, n_frames, chunk_frames):
        starts = np.arange(first, min(n_frames, first + chunk_frames)) * HOP_LENGTH
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[starts] * window
        power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2  # (chunk, bins)
        out[first:first + len(starts)] = 10 * np.log10(power @ bands + 1e-10)
    return out


@dataclass
class VariationView:
    """A variation drawn under its clip: its waveform envelope and how much it changed per token
    frame (`change_db`: mean absolute log-spectrum difference from the original, in dB, at the
    files' own levels; spectra, not samples, because the codec re-synthesises kept stretches too,
    with other phases)."""

    path: str
    envelope_x_frames: np.ndarray
    envelope_min: np.ndarray
    envelope_max: np.ndarray
    change_db: np.ndarray  # (T,)


def load_variation_view(path, clip: Clip) -> VariationView:
    """Read a variation of `clip` (same region, any rate) and compare it with the original."""
    audio, rate = read_region(str(path), 0.0, None)
    x, lo, hi = _envelope(audio, rate)
    return VariationView(str(path), x, lo, hi, change_db(audio, rate, clip))


def change_db(audio: np.ndarray, sample_rate: int, clip: Clip) -> np.ndarray:
    """(T,) mean |dB difference| over the spectrogram bands, per token frame of the clip. Both
    signals as they are (mono, 44.1 kHz, not loudness-normalised): a level change shows."""
    def level_spectrum(x, rate):
        mono = resample(x.mean(axis=0, keepdims=True), rate, SAMPLE_RATE)[0] if rate != SAMPLE_RATE else x.mean(axis=0)
        return spectrogram(mono.astype(np.float32), clip.n_frames)

    ours, theirs = level_spectrum(audio, sample_rate), level_spectrum(clip.source_audio, clip.sample_rate)
    floor = float(theirs.max()) - CHANGE_RANGE_DB  # ignore differences in near-silence
    diff = np.abs(np.maximum(ours, floor) - np.maximum(theirs, floor))
    return diff.mean(axis=1).astype(np.float32)
