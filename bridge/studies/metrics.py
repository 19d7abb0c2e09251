"""The numbers a study reports, each defined exactly (docs/studies.md repeats the definitions).

- masked fraction: cells with mask 1 (regenerated) / all cells, over the coarse codebooks 0-3
  (what the prompt decides) and over all 14;
- changed fraction: cells whose final token differs from the original clip's token, same two scopes;
- mel distance: mean absolute difference, in dB, of two 80-band log-mel spectrograms (below).
numpy only, so no slow imports.
"""

import math

import numpy as np

SAMPLE_RATE = 44100
HOP_LENGTH = 768
FRAME_RATE_HZ = SAMPLE_RATE / HOP_LENGTH  # 57.421875 token frames per second
N_COARSE_CODEBOOKS = 4

# log-mel features
N_MELS = 80
N_FFT = 2048
MEL_HOP = 512
MEL_FLOOR = 1e-5  # amplitude floor: -100 dB


def masked_fraction(mask, codebooks: slice = slice(None)) -> float:
    """Share of the cells of a (C, T) 0/1 mask (or its `codebooks` rows) that are regenerated."""
    part = np.asarray(mask)[codebooks]
    return float(part.mean()) if part.size else math.nan


def changed_fraction(codes, original, codebooks: slice = slice(None)) -> float:
    """Share of the cells of (C, T) `codes` (or their `codebooks` rows) that differ from `original`."""
    codes, original = np.asarray(codes)[codebooks], np.asarray(original)[codebooks]
    if codes.shape != original.shape:
        raise ValueError(f"codes {codes.shape} and original {original.shape} differ in shape")
    return float((codes != original).mean()) if codes.size else math.nan


def hz_to_mel(hz):
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters with peak 1, centres equally spaced on the HTK
    mel scale from 0 Hz to sample_rate / 2 (n_mels + 2 edge points), not area-normalised."""
    edges_hz = mel_to_hz(np.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2))
    bins_hz = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (bins_hz - lower) / (centre - lower)
    falling = (upper - bins_hz) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel_db(audio, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(N_MELS, frames) log-mel spectrogram in dB of mono `audio` (n,).

    Frames of N_FFT samples every MEL_HOP samples, centred (the signal is zero-padded by
    N_FFT / 2 on both sides, so frame k is centred on sample k * MEL_HOP; 1 + n // MEL_HOP
    frames); periodic Hann window; magnitude |rfft| divided by the window's sum (a full-scale
    sine reads about 0.5); the mel filterbank above applied to the magnitudes; then
    20 * log10(max(value, 1e-5)).
    """
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    padded = np.pad(audio, (N_FFT // 2, N_FFT // 2))
    n_frames = 1 + len(audio) // MEL_HOP
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::MEL_HOP][:n_frames]  # (frames, N_FFT)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=-1)) / window.sum()  # (frames, bins)
    mel = mel_filterbank(sample_rate) @ magnitude.T  # (N_MELS, frames)
    return 20.0 * np.log10(np.maximum(mel, MEL_FLOOR))


def mel_distance_db(a, b, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean over bands and frames of |log_mel_db(a) - log_mel_db(b)|, both cut to the shorter.

    Give it preprocessed audio (44.1 kHz mono at -24 LUFS, as the engine sees it), so that
    loudness and channel layout do not count as differences.
    """
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    n = min(len(a), len(b))
    if n == 0:
        raise ValueError("cannot compare empty audio")
    return float(np.abs(log_mel_db(a[:n], sample_rate) - log_mel_db(b[:n], sample_rate)).mean())


def mel_frame_seconds(n_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Centre time in seconds of each log-mel frame."""
    return np.arange(n_frames) * MEL_HOP / sample_rate
