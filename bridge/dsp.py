"""Array DSP for the audio layer: loudness, gain, resampling, channel and length handling.

Everything here works on numpy arrays shaped (channels, samples) and never touches files; file
I/O lives in `bridge.audio`. Functions return new arrays and leave their inputs untouched.

Loudness follows ITU-R BS.1770-4: a K-weighting pre-filter (a high shelf and the "RLB" high-pass),
mean square over 400 ms blocks overlapping by 75 %, an absolute gate at -70 LUFS and a relative
gate 10 LU below the loudness of the blocks that passed the absolute gate.
"""

import math

import numpy as np
from scipy import signal


class AudioError(ValueError):
    """Bad audio: a file that cannot be read or written, or samples that cannot be used.

    Messages are one line: what was wrong, with the value or path, and what to do next.
    """


# --- BS.1770 constants ---------------------------------------------------------------------

# Analogue prototypes of the two K-weighting stages. The standard only tabulates 48 kHz
# coefficients; these parameters reproduce that table through the bilinear transform
# (pre-warped at the corner frequency), so the filters can be built for any sample rate.
_SHELF_CORNER_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
# Exponent giving the shelf's mid-band gain (the s^1 numerator term) relative to its top gain.
_SHELF_MID_EXPONENT = 0.4996667741545416
_HIGHPASS_CORNER_HZ = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773

_BLOCK_S = 0.400  # gating block length
_HOP_S = 0.100  # 75 % overlap between consecutive blocks
_LOUDNESS_OFFSET_DB = -0.691  # calibrates a 997 Hz full-scale sine in one channel to -3.01 LUFS
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0
_SURROUND_WEIGHT = 1.41  # channels 4 and 5 (Ls, Rs) of a 5+ channel signal

# Quality of `resample`: 128-tap windowed sinc. Aliasing of a tone just above the new Nyquist
# is about -59 dB (the 32-tap default gives about -39 dB), at roughly four times the cost.
RESAMPLE_QUALITY = "WindowedSinc128"  # a pedalboard Resample.Quality


# --- checks and shape helpers --------------------------------------------------------------

def _as_channels_first(audio, what="audio"):
    """Return `audio` as a float ndarray shaped (channels, samples); 1-D input becomes (1, n)."""
    array = np.asarray(audio)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise AudioError(
            f"{what} has shape {array.shape}; expected (channels, samples) or (samples,)"
        )
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    return array


def check_finite(audio, what):
    """Raise AudioError naming `what` if `audio` holds any NaN or infinite sample."""
    array = np.asarray(audio)
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad)), array.shape)
    where = f"channel {first[0]}, sample {first[1]}" if array.ndim == 2 else f"index {first}"
    raise AudioError(
        f"{what} contains {int(bad.sum())} NaN/inf samples (first at {where}); "
        "re-export the audio or check the effect chain that produced it"
    )


def _check_sample_rate(sample_rate, what="sample_rate"):
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.number)):
        raise AudioError(f"{what} must be a number in Hz, got {sample_rate!r}")
    if not math.isfinite(sample_rate) or sample_rate <= 0:
        raise AudioError(f"{what} must be a positive number of Hz, got {sample_rate!r}")


# --- loudness ------------------------------------------------------------------------------

def k_weighting_sos(sample_rate):
    """K-weighting filter for `sample_rate` (Hz) as second-order sections, shape (2, 6).

    Section 0 is the high shelf (+4 dB above ~1.7 kHz, modelling the head), section 1 the RLB
    high-pass (~38 Hz). Both are bilinear transforms of analogue prototypes, pre-warped so the
    corner frequencies land where they do at 48 kHz. As in the standard's 48 kHz table, the
    high-pass numerator is left as [1, -2, 1] rather than normalised to unity pass-band gain.
    """
    _check_sample_rate(sample_rate)
    shelf_b, shelf_a = _bilinear_prewarped(_shelf_prototype, _SHELF_CORNER_HZ, sample_rate)
    highpass_b, highpass_a = _bilinear_prewarped(
        _highpass_prototype, _HIGHPASS_CORNER_HZ, sample_rate
    )
    highpass_b = highpass_b / highpass_b[0]  # -> [1, -2, 1], matching the standard's table
    return np.array([np.concatenate([shelf_b, shelf_a]), np.concatenate([highpass_b, highpass_a])])


def _shelf_prototype(corner_rad_s):
    """Analogue high shelf (b, a) in s: gain 1 at DC, 10^(G/20) at high frequencies."""
    top_gain = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    mid_gain = top_gain ** _SHELF_MID_EXPONENT
    w0 = corner_rad_s
    b = [top_gain, mid_gain * w0 / _SHELF_Q, w0 * w0]
    a = [1.0, w0 / _SHELF_Q, w0 * w0]
    return b, a


def _highpass_prototype(corner_rad_s):
    """Analogue second-order high-pass (b, a) in s."""
    w0 = corner_rad_s
    return [1.0, 0.0, 0.0], [1.0, w0 / _HIGHPASS_Q, w0 * w0]


def _bilinear_prewarped(prototype, corner_hz, sample_rate):
    """Digital biquad (b, a) from an analogue prototype, pre-warped at `corner_hz`."""
    corner_rad_s = 2.0 * sample_rate * math.tan(math.pi * corner_hz / sample_rate)
    b, a = prototype(corner_rad_s)
    return signal.bilinear(b, a, fs=sample_rate)


def _channel_weights(n_channels):
    """BS.1770 weights: 1.0, except 1.41 on channels 4 and 5 when there are 5 or more.

    The standard's weights assume the order L, R, C, Ls, Rs; channels beyond the fifth get 1.0.
    """
    weights = np.ones(n_channels)
    if n_channels >= 5:
        weights[3:5] = _SURROUND_WEIGHT
    return weights


def _block_mean_squares(weighted, sample_rate):
    """Mean square of each 400 ms block (hop 100 ms) per channel: shape (channels, blocks).

    A clip shorter than one block is measured as a single block spanning the whole clip.
    """
    n_samples = weighted.shape[1]
    block_len = int(round(_BLOCK_S * sample_rate))
    hop_len = int(round(_HOP_S * sample_rate))
    if n_samples < block_len:
        return np.mean(weighted ** 2, axis=1, keepdims=True)
    # Running sum of squares with a leading zero: sum over [i, j) is cum[j] - cum[i].
    cumulative = np.zeros((weighted.shape[0], n_samples + 1))
    np.cumsum(weighted ** 2, axis=1, out=cumulative[:, 1:])
    starts = np.arange(0, n_samples - block_len + 1, hop_len)
    return (cumulative[:, starts + block_len] - cumulative[:, starts]) / block_len


def _power_to_lufs(power):
    with np.errstate(divide="ignore"):
        return _LOUDNESS_OFFSET_DB + 10.0 * np.log10(power)


def integrated_loudness(audio, sample_rate):
    """Integrated loudness of `audio` (channels, samples) at `sample_rate` Hz, in LUFS.

    ITU-R BS.1770-4 with both gates. Returns -math.inf when nothing passes the gates (digital
    silence, empty input, or audio quieter than -70 LUFS throughout). Audio shorter than one
    400 ms block is not silently called -inf: it is measured as one block spanning the whole
    clip (the standard does not define this case; one block is the closest reading). Raises
    AudioError for NaN/inf samples. Never returns NaN.
    """
    _check_sample_rate(sample_rate)
    audio = _as_channels_first(audio)
    check_finite(audio, "audio for loudness measurement")
    if audio.shape[1] == 0 or not np.any(audio):
        return -math.inf

    weighted = signal.sosfilt(k_weighting_sos(sample_rate), audio.astype(np.float64), axis=1)
    block_power = _channel_weights(audio.shape[0]) @ _block_mean_squares(weighted, sample_rate)
    block_lufs = _power_to_lufs(block_power)

    above_absolute = block_lufs > _ABSOLUTE_GATE_LUFS
    if not above_absolute.any():
        return -math.inf
    relative_gate_lufs = _power_to_lufs(block_power[above_absolute].mean()) + _RELATIVE_GATE_LU
    gated = above_absolute & (block_lufs > relative_gate_lufs)
    if not gated.any():
        return -math.inf
    return float(_power_to_lufs(block_power[gated].mean()))


# --- the meter VampNet's preprocessing uses ------------------------------------------------
# descript-audiotools (through pyloudnorm's filters) measures loudness a little differently from
# the standard: cookbook biquads for the K-weighting (4 dB shelf at 1500 Hz, Q 1/sqrt(2); 38 Hz
# high-pass, Q 0.5), which read about 0.05 dB off at 44.1 kHz; the last block zero-padded; clips
# under 0.5 s zero-padded to 0.5 s; and a floor of -70 LUFS instead of -inf. The models were
# trained on audio normalised with it, and the reference encodes through it, so the encoder's
# input uses this meter (codes then match the reference's), while renders use the standard one.

_AUDIOTOOLS_MIN_S = 0.5
_AUDIOTOOLS_FLOOR_LUFS = -70.0
_AUDIOTOOLS_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)


def _cookbook_biquads(sample_rate):
    """(b, a) of the high shelf, then the high-pass, from the audio-EQ cookbook formulas."""
    shelf_gain = 10.0 ** (4.0 / 40.0)
    w0 = 2.0 * math.pi * 1500.0 / sample_rate
    alpha = math.sin(w0) / (2.0 / math.sqrt(2.0))
    cos_w0, root = math.cos(w0), 2.0 * math.sqrt(shelf_gain) * alpha
    g = shelf_gain
    shelf = ([g * ((g + 1) + (g - 1) * cos_w0 + root), -2 * g * ((g - 1) + (g + 1) * cos_w0),
              g * ((g + 1) + (g - 1) * cos_w0 - root)],
             [(g + 1) - (g - 1) * cos_w0 + root, 2 * ((g - 1) - (g + 1) * cos_w0),
              (g + 1) - (g - 1) * cos_w0 - root])
    w0 = 2.0 * math.pi * 38.0 / sample_rate
    alpha, cos_w0 = math.sin(w0) / (2.0 * 0.5), math.cos(w0)
    highpass = ([(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2], [1 + alpha, -2 * cos_w0, 1 - alpha])
    return shelf, highpass


def audiotools_loudness(audio, sample_rate):
    """Loudness of `audio` (channels, samples) in LUFS as descript-audiotools measures it (see above).

    Agrees with `AudioSignal.loudness()` to about 1e-4 dB (it filters in float32), at a fraction
    of its cost where torchaudio's compiled extension is unavailable. Never below -70.
    """
    _check_sample_rate(sample_rate)
    audio = _as_channels_first(audio)
    check_finite(audio, "audio for loudness measurement")
    n_channels, n_samples = audio.shape
    if n_channels > len(_AUDIOTOOLS_WEIGHTS):
        raise AudioError(f"audiotools' meter takes at most 5 channels, got {n_channels}")
    data = audio.astype(np.float64)
    duration_s = n_samples / sample_rate
    if duration_s < _AUDIOTOOLS_MIN_S:
        data = np.pad(data, ((0, 0), (0, int((_AUDIOTOOLS_MIN_S - duration_s) * sample_rate))))
    for b, a in _cookbook_biquads(sample_rate):
        data = signal.lfilter(b, a, data, axis=1)
    block_len, hop_len = int(_BLOCK_S * sample_rate), int(_BLOCK_S * sample_rate * 0.25)
    n_blocks = math.ceil((max(data.shape[1], block_len) - block_len) / hop_len) + 1
    data = np.pad(data, ((0, 0), (0, (n_blocks - 1) * hop_len + block_len - data.shape[1])))
    cumulative = np.zeros((n_channels, data.shape[1] + 1))
    np.cumsum(data ** 2, axis=1, out=cumulative[:, 1:])
    starts = np.arange(n_blocks) * hop_len
    block_power = (cumulative[:, starts + block_len] - cumulative[:, starts]) / (_BLOCK_S * sample_rate)
    weights = np.array(_AUDIOTOOLS_WEIGHTS[:n_channels])[:, None]
    block_lufs = _power_to_lufs((weights * block_power).sum(axis=0))  # (blocks,)

    def gated_power(passed):  # per-channel mean power of the passing blocks, 0 when none pass
        count = passed.sum()
        return block_power[:, passed].sum(axis=1) / count if count else np.zeros(n_channels)

    above_absolute = block_lufs > _ABSOLUTE_GATE_LUFS
    relative_gate = _power_to_lufs((weights[:, 0] * gated_power(above_absolute)).sum()) + _RELATIVE_GATE_LU
    power = gated_power(above_absolute & (block_lufs > relative_gate))
    return max(float(_power_to_lufs((weights[:, 0] * power).sum())), _AUDIOTOOLS_FLOOR_LUFS)


def normalize_for_model(audio, sample_rate, target_lufs):
    """`audio` scaled to `target_lufs` as audiotools' `AudioSignal.normalize` does: the gain from
    `audiotools_loudness`, applied in float32 (audio at -70 LUFS or below gets the full gain)."""
    audio = _as_channels_first(audio)
    gain_db = np.float32(target_lufs) - np.float32(audiotools_loudness(audio, sample_rate))
    gain = np.exp(gain_db * np.float32(math.log(10) / 20))
    return audio.astype(np.float32) * gain


def normalize_loudness(audio, sample_rate, target_lufs):
    """Return `audio` scaled so its integrated loudness is `target_lufs` (LUFS); gain only.

    Silent audio (loudness -inf) is returned unchanged. No limiting: the result can exceed
    full scale; follow with `peak_limit` where that matters.
    """
    if not math.isfinite(target_lufs):
        raise AudioError(f"target_lufs must be a finite loudness in LUFS, got {target_lufs!r}")
    audio = _as_channels_first(audio)
    measured_lufs = integrated_loudness(audio, sample_rate)
    if measured_lufs == -math.inf:
        return audio.copy()
    gain = 10.0 ** ((target_lufs - measured_lufs) / 20.0)
    return (audio * gain).astype(audio.dtype)


def peak_limit(audio, ceiling=1.0):
    """Return `audio` scaled down so its sample peak is at most `ceiling` (linear); never up.

    This is a plain gain change, not a limiter: the whole clip gets the same gain.
    """
    if not (isinstance(ceiling, (int, float, np.number)) and math.isfinite(ceiling) and ceiling > 0):
        raise AudioError(f"peak ceiling must be a positive linear level, got {ceiling!r}")
    audio = _as_channels_first(audio)
    check_finite(audio, "audio to peak-limit")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= ceiling:
        return audio.copy()
    scaled = (audio.astype(np.float64) * (ceiling / peak)).astype(audio.dtype)
    # Rounding to the output dtype can land one step above the ceiling; clamp that last step.
    limit = _largest_value_at_most(ceiling, audio.dtype)
    return np.clip(scaled, -limit, limit)


def _largest_value_at_most(value, dtype):
    """Largest number representable in `dtype` that is <= `value`."""
    rounded = np.asarray(value, dtype=dtype)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.asarray(0, dtype=dtype))
    return rounded


# --- rate, channels, length ----------------------------------------------------------------

def resample(audio, from_rate, to_rate):
    """Resample `audio` (channels, samples) from `from_rate` to `to_rate` Hz.

    Uses pedalboard's streaming windowed-sinc resampler and returns exactly
    round(n * to_rate / from_rate) samples as float32. pedalboard compensates the filter's
    latency in whole samples, so the output may lag or lead by a fraction of a sample (under
    0.5 output samples). Equal rates return a copy.
    """
    _check_sample_rate(from_rate, "from_rate")
    _check_sample_rate(to_rate, "to_rate")
    audio = _as_channels_first(audio)
    if from_rate == to_rate:
        return audio.copy()
    n_out = int(round(audio.shape[1] * to_rate / from_rate))
    if audio.shape[1] == 0:
        return np.zeros((audio.shape[0], 0), np.float32)
    # imported here: the engine imports this module and must run where only torch, numpy and
    # scipy are installed (a bare GPU machine, benchmarks/gpu.sh)
    from pedalboard import Resample
    from pedalboard.io import StreamResampler

    resampler = StreamResampler(
        float(from_rate), float(to_rate), audio.shape[0], getattr(Resample.Quality, RESAMPLE_QUALITY)
    )
    body = resampler.process(np.ascontiguousarray(audio, dtype=np.float32))
    rest = resampler.process()  # flush: the samples still inside the filter
    return match_length(np.concatenate([body, rest], axis=1), n_out)


def to_mono(audio):
    """Mean of all channels, shape (1, samples)."""
    audio = _as_channels_first(audio)
    return audio.mean(axis=0, keepdims=True).astype(audio.dtype)


def match_length(audio, n_samples):
    """Trim, or pad with silence at the end, so `audio` is exactly `n_samples` long."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
        raise AudioError(f"n_samples must be a whole number >= 0, got {n_samples!r}")
    audio = _as_channels_first(audio)
    n_have = audio.shape[1]
    if n_have >= n_samples:
        return audio[:, :n_samples].copy()
    padding = np.zeros((audio.shape[0], n_samples - n_have), dtype=audio.dtype)
    return np.concatenate([audio, padding], axis=1)
