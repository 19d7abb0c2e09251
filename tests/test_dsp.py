"""Specification of bridge.dsp: BS.1770 loudness, gain, resampling, channels and lengths."""

import math

import numpy as np
import pytest

from bridge.dsp import (
    AudioError,
    audiotools_loudness,
    check_finite,
    integrated_loudness,
    k_weighting_sos,
    match_length,
    normalize_for_model,
    normalize_loudness,
    peak_limit,
    resample,
    to_mono,
)


def sine(freq_hz, duration_s, sample_rate, peak=1.0):
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    return peak * np.sin(2 * np.pi * freq_hz * t)


def db_to_gain(db):
    return 10.0 ** (db / 20.0)


# --- loudness ------------------------------------------------------------------------------

def test_k_weighting_at_48k_matches_the_standard_table():
    sos = k_weighting_sos(48000)
    shelf = [1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585]
    highpass = [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621]
    np.testing.assert_allclose(sos[0], shelf, atol=1e-10)
    np.testing.assert_allclose(sos[1], highpass, atol=1e-10)


def test_full_scale_997hz_sine_in_one_channel_at_48k_reads_minus_3_01_lufs():
    assert integrated_loudness(sine(997, 5, 48000)[None], 48000) == pytest.approx(-3.01, abs=0.01)


@pytest.mark.parametrize("sample_rate", [8000, 44100, 96000, 192000])
def test_full_scale_997hz_sine_reads_minus_3_01_lufs_at_any_sample_rate(sample_rate):
    loudness = integrated_loudness(sine(997, 3, sample_rate)[None], sample_rate)
    assert loudness == pytest.approx(-3.01, abs=0.1)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_1khz_sine_at_minus_20_dbfs_peak_reads_minus_23_lufs(sample_rate):
    audio = sine(1000, 3, sample_rate, peak=db_to_gain(-20))[None]
    assert integrated_loudness(audio, sample_rate) == pytest.approx(-23.0, abs=0.1)


def test_the_same_sine_in_two_channels_reads_3_lu_louder_than_in_one():
    mono = sine(997, 3, 48000, peak=db_to_gain(-23))[None]
    stereo = np.vstack([mono, mono])
    difference = integrated_loudness(stereo, 48000) - integrated_loudness(mono, 48000)
    assert difference == pytest.approx(10 * math.log10(2), abs=0.01)


def test_surround_channels_4_and_5_weigh_1_41_when_there_are_five_channels():
    tone = sine(997, 2, 48000, peak=0.1)
    front = np.zeros((5, tone.size))
    front[0] = tone
    surround = np.zeros((5, tone.size))
    surround[3] = tone
    difference = integrated_loudness(surround, 48000) - integrated_loudness(front, 48000)
    assert difference == pytest.approx(10 * math.log10(1.41), abs=0.01)


def test_fourth_channel_weighs_1_0_with_fewer_than_five_channels():
    tone = sine(997, 2, 48000, peak=0.1)
    four = np.zeros((4, tone.size))
    four[3] = tone
    assert integrated_loudness(four, 48000) == pytest.approx(integrated_loudness(tone[None], 48000), abs=1e-9)


def test_relative_gate_ignores_quiet_passages_as_in_ebu_tech_3341_case_4():
    # -36 / -23 / -36 dBFS stereo 1 kHz for 10 / 60 / 10 s reads -23 LUFS: the quiet parts are gated.
    sample_rate = 8000
    parts = [sine(1000, seconds, sample_rate, peak=db_to_gain(level_db))
             for level_db, seconds in ((-36, 10), (-23, 60), (-36, 10))]
    mono = np.concatenate(parts)
    assert integrated_loudness(np.vstack([mono, mono]), sample_rate) == pytest.approx(-23.0, abs=0.1)


def test_absolute_gate_ignores_silence_after_a_sound():
    # Only the three blocks straddling the edge count part silence: 1.5 of 200 blocks' power.
    tone = sine(1000, 20, 8000, peak=db_to_gain(-20))
    with_silence = np.concatenate([tone, np.zeros(tone.size * 3)])
    assert integrated_loudness(with_silence[None], 8000) == pytest.approx(
        integrated_loudness(tone[None], 8000), abs=0.05
    )


def test_digital_silence_reads_minus_infinity():
    assert integrated_loudness(np.zeros((2, 48000)), 48000) == -math.inf


def test_empty_audio_reads_minus_infinity():
    assert integrated_loudness(np.zeros((2, 0)), 48000) == -math.inf


def test_audio_below_the_absolute_gate_reads_minus_infinity():
    assert integrated_loudness(sine(1000, 2, 48000, peak=db_to_gain(-80))[None], 48000) == -math.inf


def test_clip_shorter_than_one_block_is_measured_as_one_block():
    short = sine(1000, 0.2, 48000, peak=db_to_gain(-20))[None]
    assert integrated_loudness(short, 48000) == pytest.approx(-23.0, abs=0.2)


def test_loudness_refuses_nan_samples_instead_of_returning_nan():
    audio = sine(1000, 1, 48000)[None]
    audio[0, 100] = np.nan
    with pytest.raises(AudioError, match="loudness"):
        integrated_loudness(audio, 48000)


def test_loudness_accepts_a_one_dimensional_array_as_mono():
    tone = sine(997, 1, 48000)
    assert integrated_loudness(tone, 48000) == integrated_loudness(tone[None], 48000)


# --- gain ----------------------------------------------------------------------------------

def test_normalize_loudness_reaches_the_target():
    audio = np.random.default_rng(1).standard_normal((2, 48000)) * 0.05
    normalized = normalize_loudness(audio, 48000, -16.0)
    assert integrated_loudness(normalized, 48000) == pytest.approx(-16.0, abs=0.01)


def test_normalize_loudness_returns_silence_unchanged():
    silence = np.zeros((2, 48000), np.float32)
    result = normalize_loudness(silence, 48000, -16.0)
    assert np.array_equal(result, silence) and np.isfinite(result).all()


def test_peak_limit_scales_a_loud_clip_down_to_the_ceiling():
    audio = np.array([[0.5, -2.0, 1.0]], np.float32)
    limited = peak_limit(audio, ceiling=db_to_gain(-0.1))
    assert np.max(np.abs(limited)) <= db_to_gain(-0.1)
    assert np.max(np.abs(limited)) == pytest.approx(db_to_gain(-0.1), rel=1e-6)
    np.testing.assert_allclose(limited / limited[0, 1], audio / audio[0, 1], rtol=1e-6)  # one gain


def test_peak_limit_never_turns_a_quiet_clip_up():
    audio = np.array([[0.1, -0.2]], np.float32)
    assert np.array_equal(peak_limit(audio), audio)


def test_peak_limit_keeps_float32_samples_at_or_below_the_ceiling():
    audio = np.random.default_rng(2).standard_normal((2, 10000)).astype(np.float32) * 3
    ceiling = db_to_gain(-0.1)
    limited = peak_limit(audio, ceiling)
    assert limited.dtype == np.float32
    assert float(np.max(np.abs(limited))) <= ceiling


# --- resampling ----------------------------------------------------------------------------

@pytest.mark.parametrize("from_rate, to_rate", [
    (44100, 48000), (48000, 44100), (44100, 8000), (8000, 44100), (44100, 96000), (44100, 192000),
    (22050, 44100),
])
def test_resample_output_length_is_exact(from_rate, to_rate):
    n_samples = 12345
    out = resample(np.zeros((2, n_samples), np.float32), from_rate, to_rate)
    assert out.shape == (2, round(n_samples * to_rate / from_rate))


@pytest.mark.parametrize("from_rate, to_rate", [(44100, 48000), (48000, 44100), (44100, 8000)])
def test_resample_keeps_a_tone_in_time_within_one_sample_and_in_level(from_rate, to_rate):
    # pedalboard compensates its resampler's latency to whole samples; a fraction may remain.
    out = resample(sine(997, 1, from_rate, peak=0.5)[None], from_rate, to_rate)[0]
    expected = sine(997, 1, to_rate, peak=0.5)
    middle = slice(to_rate // 10, to_rate - to_rate // 10)  # away from the edges
    lags = range(-3, 4)
    errors = [np.max(np.abs(np.roll(out, -lag)[middle] - expected[middle])) for lag in lags]
    assert list(lags)[int(np.argmin(errors))] == 0
    level_db = 20 * np.log10(np.std(out[middle]) / np.std(expected[middle]))
    assert abs(level_db) < 0.05


def test_resample_with_equal_rates_is_identity():
    audio = np.random.default_rng(3).standard_normal((3, 1000)).astype(np.float32)
    assert np.array_equal(resample(audio, 44100, 44100), audio)


# --- channels, length, finiteness ----------------------------------------------------------

def test_to_mono_is_the_mean_of_the_channels():
    audio = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(to_mono(audio), [[0.5, 0.5]])


def test_match_length_trims_long_audio():
    assert match_length(np.ones((2, 10)), 4).shape == (2, 4)


def test_match_length_pads_short_audio_with_silence():
    padded = match_length(np.ones((2, 3)), 5)
    assert padded.shape == (2, 5) and np.all(padded[:, 3:] == 0) and np.all(padded[:, :3] == 1)


def test_match_length_refuses_a_negative_length():
    with pytest.raises(AudioError, match="-1"):
        match_length(np.ones((1, 3)), -1)


def test_check_finite_names_what_was_checked_and_where():
    audio = np.zeros((2, 10))
    audio[1, 7] = np.inf
    with pytest.raises(AudioError, match=r"engine output contains 1 NaN/inf samples \(first at channel 1, sample 7\)"):
        check_finite(audio, "engine output")


# --- the meter of VampNet's preprocessing (descript-audiotools) ------------------------------

@pytest.mark.parametrize("sample_rate, channels, seconds, level", [
    (44100, 1, 1.3, 0.1),    # whole blocks and a zero-padded last one
    (44100, 1, 0.3, 0.1),    # under 0.5 s: audiotools pads to 0.5 s before measuring
    (48000, 2, 0.9, 0.05),   # other rate, two channels
    (44100, 1, 1.0, 1e-5),   # below -70 LUFS: audiotools floors at -70 (the standard says -inf)
])
def test_audiotools_loudness_reads_what_audiotools_reads(sample_rate, channels, seconds, level):
    torch = pytest.importorskip("torch")
    from audiotools import AudioSignal

    rng = np.random.default_rng(3)
    n = int(seconds * sample_rate)
    audio = (rng.standard_normal((channels, n)) * level * np.linspace(0.2, 1.0, n) ** 2).astype(np.float32)
    expected = float(AudioSignal(torch.from_numpy(audio)[None], sample_rate).loudness())
    assert audiotools_loudness(audio, sample_rate) == pytest.approx(expected, abs=2e-4)
    if level > 1e-4:  # the two meters differ measurably: K-weighting from cookbook biquads
        assert abs(integrated_loudness(audio, sample_rate) - expected) > 0.01


def test_normalize_for_model_applies_audiotools_gain():
    torch = pytest.importorskip("torch")
    from audiotools import AudioSignal

    audio = (np.random.default_rng(4).standard_normal((1, 30000)) * 0.01).astype(np.float32)
    expected = AudioSignal(torch.from_numpy(audio)[None], 44100).normalize(-24.0).audio_data[0].numpy()
    out = normalize_for_model(audio, 44100, -24.0)
    assert out.dtype == np.float32 and np.allclose(out, expected, rtol=1e-5, atol=0)
    assert audiotools_loudness(out, 44100) == pytest.approx(-24.0, abs=1e-3)
