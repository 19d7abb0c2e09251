"""Specification of bridge.render: engine output -> variation of the source region."""

import math

import numpy as np
import pytest

from bridge.dsp import AudioError, integrated_loudness
from bridge.render import ENGINE_SAMPLE_RATE, PEAK_CEILING, render_variation


def sine(freq_hz, duration_s, sample_rate, peak):
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    return (peak * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def engine_noise(duration_s, level=0.3, seed=0):
    """Stand-in for model output: mono noise at the engine rate, shape (n,)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(duration_s * ENGINE_SAMPLE_RATE)) * level).astype(np.float32)


def stereo_source(duration_s, sample_rate, peak=0.2):
    return np.vstack([sine(220, duration_s, sample_rate, peak), sine(330, duration_s, sample_rate, peak / 2)])


def test_engine_sample_rate_is_44100():
    assert ENGINE_SAMPLE_RATE == 44100


@pytest.mark.parametrize("fx", [None, "glue", "space", "lofi", "wide"])
def test_variation_matches_the_source_loudness_within_half_an_lu(fx):
    source = stereo_source(2.0, 48000)
    out = render_variation(engine_noise(2.0, level=0.05), source_audio=source, source_sample_rate=48000, fx=fx)
    assert integrated_loudness(out, 48000) == pytest.approx(integrated_loudness(source, 48000), abs=0.5)


@pytest.mark.parametrize("sample_rate", [8000, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_variation_has_the_source_length_rate_and_channels(sample_rate, channels):
    n_source = int(0.7 * sample_rate) + 3
    source = np.tile(sine(440, n_source / sample_rate, sample_rate, 0.3), (channels, 1))[:, :n_source]
    out = render_variation(engine_noise(0.75), source_audio=source, source_sample_rate=sample_rate)
    assert out.shape == (channels, n_source) and out.dtype == np.float32


def test_engine_output_shorter_than_the_region_is_padded_to_its_length():
    source = stereo_source(1.0, 48000)
    out = render_variation(engine_noise(0.5), source_audio=source, source_sample_rate=48000)
    assert out.shape == (2, 48000)
    assert not np.any(out[:, 24100:])  # the padding is silence


def test_fx_tail_is_added_after_the_region():
    source = stereo_source(1.0, 96000)
    out = render_variation(engine_noise(1.0), source_audio=source, source_sample_rate=96000, fx="space")
    assert out.shape == (2, 96000 + round(3.0 * 96000))


def test_fx_can_be_given_as_a_chain():
    chain = {"chain": [{"plugin": "Delay", "delay_seconds": 0.1, "mix": 0.5}], "tail_s": 0.5}
    out = render_variation(engine_noise(1.0), source_audio=stereo_source(1.0, 44100), source_sample_rate=44100, fx=chain)
    assert out.shape == (2, 44100 + 22050)


def test_peak_never_exceeds_minus_0_1_dbfs():
    loud_source = np.vstack([sine(100, 1.0, 44100, 1.0)] * 2)  # -3 LUFS: matching it needs overs
    engine = np.sign(sine(50, 1.0, 44100, 1.0)) * 0.9  # square wave, crest factor 1
    engine[::7] = 1.0
    out = render_variation(engine, source_audio=loud_source, source_sample_rate=44100, fx="glue")
    assert float(np.max(np.abs(out))) <= PEAK_CEILING
    assert PEAK_CEILING == pytest.approx(10 ** (-0.1 / 20))


def test_silent_source_gives_a_finite_render_at_the_models_level():
    # the pipeline renders a silent region only when the mask regenerates all of it
    engine = engine_noise(1.0, level=0.9)
    out = render_variation(engine, source_audio=np.zeros((2, 44100), np.float32), source_sample_rate=44100)
    assert np.isfinite(out).all()
    assert integrated_loudness(out, 44100) == pytest.approx(-24.0, abs=0.5)


def test_silent_engine_output_gives_silence_not_nan():
    source = stereo_source(1.0, 48000)
    out = render_variation(np.zeros(44100, np.float32), source_audio=source, source_sample_rate=48000, fx="space")
    assert np.isfinite(out).all() and not np.any(out)


def test_silent_source_and_silent_engine_give_silence():
    out = render_variation(np.zeros((1, 4410)), source_audio=np.zeros((2, 4800)), source_sample_rate=48000)
    assert np.isfinite(out).all() and not np.any(out) and out.shape == (2, 4800)


def test_without_loudness_match_the_level_is_kept():
    engine = engine_noise(1.0, level=0.05)
    out = render_variation(engine, source_audio=stereo_source(1.0, 44100, peak=0.9),
                           source_sample_rate=44100, loudness_match=False)
    np.testing.assert_allclose(out[1], engine, atol=1e-6)


def test_mono_engine_output_goes_on_every_channel():
    out = render_variation(engine_noise(0.5), source_audio=np.tile(sine(440, 0.5, 48000, 0.2), (4, 1)),
                           source_sample_rate=48000)
    for channel in out[1:]:
        assert np.array_equal(channel, out[0])


def test_per_channel_engine_outputs_go_on_their_own_channels():
    left = sine(300, 1.0, ENGINE_SAMPLE_RATE, 0.3)
    right = sine(1200, 1.0, ENGINE_SAMPLE_RATE, 0.3)
    out = render_variation(None, source_audio=stereo_source(1.0, 48000), source_sample_rate=48000,
                           per_channel_audio=[left, right[np.newaxis, :]])
    peak_hz = [np.argmax(np.abs(np.fft.rfft(channel))) * 48000 / channel.size for channel in out]
    assert peak_hz == pytest.approx([300, 1200], abs=2)


def test_per_channel_outputs_must_match_the_channel_count():
    with pytest.raises(AudioError, match="per_channel_audio has 1 engine outputs but the source has 2 channels"):
        render_variation(None, source_audio=stereo_source(0.5, 48000), source_sample_rate=48000,
                         per_channel_audio=[engine_noise(0.5)])


def test_engine_output_with_nan_is_refused():
    engine = engine_noise(0.5)
    engine[10] = np.nan
    with pytest.raises(AudioError, match="engine audio contains 1 NaN/inf"):
        render_variation(engine, source_audio=stereo_source(0.5, 48000), source_sample_rate=48000)


def test_stereo_engine_output_is_refused_with_advice():
    with pytest.raises(AudioError, match=r"engine audio has shape \(2, 100\); expected mono"):
        render_variation(np.zeros((2, 100)), source_audio=stereo_source(0.5, 48000), source_sample_rate=48000)


def test_loudness_of_a_render_is_never_nan():
    out = render_variation(engine_noise(0.1, level=1e-9), source_audio=stereo_source(0.1, 48000),
                           source_sample_rate=48000)
    loudness = integrated_loudness(out, 48000)
    assert not math.isnan(loudness)
