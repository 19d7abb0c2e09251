"""The study numbers, from their definitions (docs/studies.md), and the study settings."""

import math

import numpy as np
import pytest

from bridge.engine.prompts import PRESETS, MaskRecipe
from bridge.studies.metrics import (MEL_HOP, N_FFT, N_MELS, changed_fraction, hz_to_mel, log_mel_db,
                                    masked_fraction, mel_distance_db, mel_filterbank, mel_to_hz)
from bridge.studies.settings import DEFAULT_VALUES, KINDS, parse_values, pattern_mask, study_settings

SR = 44100


def noise(seconds=0.5, seed=0):
    return np.random.default_rng(seed).standard_normal(int(seconds * SR)).astype(np.float32) * 0.1


def test_mel_distance_of_a_signal_to_itself_is_zero():
    x = noise()
    assert mel_distance_db(x, x) == 0.0


def test_doubling_the_level_is_six_db_of_mel_distance():
    x = noise()
    assert mel_distance_db(x, 2 * x) == pytest.approx(20 * math.log10(2), abs=1e-6)


def test_mel_distance_is_symmetric_and_uses_the_shorter_length():
    a, b = noise(0.5, 1), noise(0.7, 2)
    assert mel_distance_db(a, b) == pytest.approx(mel_distance_db(b, a))
    assert mel_distance_db(a, b) == pytest.approx(mel_distance_db(a, b[:len(a)]))


def test_log_mel_has_80_bands_and_one_frame_per_hop_plus_one():
    x = noise(0.3)
    spectrogram = log_mel_db(x)
    assert spectrogram.shape == (N_MELS, 1 + len(x) // MEL_HOP)
    assert np.isfinite(spectrogram).all()
    assert spectrogram.min() >= -100.0  # the 1e-5 amplitude floor


def test_every_mel_band_sees_some_frequency_and_peaks_at_one():
    bank = mel_filterbank(SR, N_FFT, N_MELS)
    assert bank.shape == (N_MELS, N_FFT // 2 + 1)
    assert (bank.sum(axis=1) > 0).all()
    assert bank.max() <= 1.0
    assert mel_to_hz(hz_to_mel(1000.0)) == pytest.approx(1000.0)


def test_a_sine_lands_in_the_band_around_its_frequency():
    t = np.arange(SR // 2) / SR
    spectrogram = log_mel_db(0.5 * np.sin(2 * np.pi * 1000 * t))
    centres = mel_to_hz(np.linspace(0, hz_to_mel(SR / 2), N_MELS + 2))[1:-1]
    loudest = int(np.argmax(spectrogram[:, 5]))
    assert abs(centres[loudest] - 1000) < 60


def test_fractions_count_cells_in_the_chosen_codebooks():
    mask = np.zeros((14, 10), np.uint8)
    mask[:2, :5] = 1  # 10 cells of 40 coarse, of 140 in all
    assert masked_fraction(mask, slice(0, 4)) == pytest.approx(10 / 40)
    assert masked_fraction(mask) == pytest.approx(10 / 140)
    original = np.arange(140).reshape(14, 10)
    codes = original.copy()
    codes[3, :4] += 1
    assert changed_fraction(codes, original, slice(0, 4)) == pytest.approx(4 / 40)
    assert changed_fraction(codes, original) == pytest.approx(4 / 140)


@pytest.mark.parametrize("kind", KINDS)
def test_each_study_has_one_valid_setting_per_default_value(kind):
    settings = study_settings(kind, clip_s=2.0)
    assert [s.value for s in settings] == DEFAULT_VALUES[kind]
    assert len({s.slug for s in settings}) == len(settings)
    for s in settings:
        MaskRecipe.from_json(s.mask)  # a complete, valid recipe


def test_the_studies_cover_the_papers_ranges():
    assert DEFAULT_VALUES["density"][0] == 0.1 and DEFAULT_VALUES["density"][-1] == 0.95
    assert DEFAULT_VALUES["periodic"] == [2, 3, 5, 7, 10, 16, 25, 50, 100]
    assert DEFAULT_VALUES["depth"] == [0, 1, 2, 3, 4]
    assert DEFAULT_VALUES["presets"] == list(PRESETS)


def test_studies_change_only_their_parameter():
    for s in study_settings("density"):
        assert (s.mask["periodic_prompt"], s.mask["upper_codebook_mask"]) == (7, 3)
    for s in study_settings("periodic"):
        assert (s.mask["rand_mask_intensity"], s.mask["upper_codebook_mask"]) == (1.0, 3)
    for s in study_settings("depth"):
        assert (s.mask["rand_mask_intensity"], s.mask["periodic_prompt"]) == (1.0, 7)


@pytest.mark.parametrize("pattern", ["random", "periodic", "block", "strided"])
def test_patterns_regenerate_about_the_asked_share_of_frames(pattern):
    T = 400
    recipe = MaskRecipe.from_json(pattern_mask(pattern, 0.8, clip_s=T / (SR / 768)))
    import torch

    mask = recipe.build((1, 14, T), torch.Generator().manual_seed(0))
    assert mask[0, :3].float().mean().item() == pytest.approx(0.8, abs=0.03)


@pytest.mark.parametrize("kind, text, message", [
    ("density", "0.2,1.5", "(0, 1]"),
    ("periodic", "7,x", "whole number"),
    ("depth", "2,2", "repeats"),
    ("patterns", "random,zigzag", "unknown patterns"),
    ("presets", "loud", "unknown presets"),
])
def test_bad_values_are_refused_with_the_reason(kind, text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("]", r"\]")):
        parse_values(kind, text)


def test_values_override_the_defaults():
    assert parse_values("periodic", "3, 13") == [3, 13]
    assert parse_values("density", None) == DEFAULT_VALUES["density"]
