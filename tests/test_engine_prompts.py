"""Specification of bridge.engine.prompts: masks over the token grid (1 = regenerate, 0 = keep)."""

import json

import numpy as np
import pytest
import torch

from bridge.engine import PRESETS, MaskRecipe
from bridge.engine.prompts import (
    block_mask,
    codebook_mask,
    compression_mask,
    detect_beats,
    detect_onsets,
    dropout_mask,
    empty_mask,
    full_mask,
    grid_to_rle,
    inpaint_mask,
    keep_lowest_codebooks,
    mask_and,
    mask_or,
    periodic_mask,
    random_mask,
    seconds_to_frames,
    strided_mask,
)

SR = 44100
HOP = 768


def row(mask):
    """The time pattern of a mask that is the same for every batch item and codebook."""
    assert (mask == mask[:1, :1]).all(), "expected the same pattern on every codebook"
    return mask[0, 0].tolist()


# --- time recipes ----------------------------------------------------------------------------------


def test_periodic_keeps_every_pth_frame():
    assert row(periodic_mask((1, 14, 12), 4, 1, offset=0)) == [0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1]


def test_periodic_offset_shifts_the_kept_frames():
    assert row(periodic_mask((1, 14, 12), 4, 1, offset=1)) == [1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]


def test_periodic_width_3_keeps_a_frame_each_side():
    assert row(periodic_mask((1, 14, 12), 4, 3, offset=0)) == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1]
    # rolled by 2 (wrapping around, like the reference's random roll)
    assert row(periodic_mask((1, 14, 12), 4, 3, offset=2)) == [1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]


def test_periodic_even_width_2_keeps_3_frames_like_the_reference():
    assert row(periodic_mask((1, 14, 12), 4, 2, offset=0)) == [0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1]


def test_periodic_period_0_keeps_nothing():
    assert row(periodic_mask((1, 14, 6), 0, 1, offset=0)) == [1] * 6


def test_periodic_random_offset_comes_from_the_generator():
    a = periodic_mask((1, 1, 40), 7, generator=torch.Generator().manual_seed(5))
    b = periodic_mask((1, 1, 40), 7, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    offsets = {row(periodic_mask((1, 1, 42), 7, generator=torch.Generator().manual_seed(s))).index(0)
               for s in range(40)}
    assert offsets == set(range(7))


def test_inpaint_keeps_prefix_and_suffix():
    assert row(inpaint_mask((1, 14, 10), 3, 2)) == [0, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert row(inpaint_mask((1, 14, 10), 0, 0)) == [1] * 10
    assert row(inpaint_mask((1, 14, 4), 9, 9)) == [0] * 4


def test_block_regenerates_a_frame_range_and_keeps_the_rest():
    assert row(block_mask((1, 14, 10), 3, 7)) == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]


def test_strided_keeps_exactly_the_frames_at_the_stride_from_the_offset():
    assert row(strided_mask((1, 14, 10), 3, offset=1)) == [1, 0, 1, 1, 0, 1, 1, 0, 1, 1]
    assert row(strided_mask((1, 14, 10), 3, offset=0)) == [0, 1, 1, 0, 1, 1, 0, 1, 1, 0]


def test_and_is_min_and_or_is_max():
    a = torch.tensor([[[0, 0, 1, 1]]])
    b = torch.tensor([[[0, 1, 0, 1]]])
    assert mask_and(a, b).tolist() == [[[0, 0, 0, 1]]]
    assert mask_or(a, b).tolist() == [[[0, 1, 1, 1]]]


# --- codebook recipes ------------------------------------------------------------------------------


def test_codebook_mask_regenerates_codebooks_from_k_up():
    mask = codebook_mask(empty_mask((1, 14, 5)), 3)
    expected = [[0] * 5] * 3 + [[1] * 5] * 11
    assert mask[0].tolist() == expected


def test_keep_lowest_codebooks_keeps_rows_0_to_n_minus_1():
    mask = keep_lowest_codebooks(full_mask((1, 14, 3)), 2)
    assert mask[0].tolist() == [[0] * 3] * 2 + [[1] * 3] * 12


def test_compression_keeps_only_the_lowest_codebooks_at_every_frame():
    mask = compression_mask((2, 14, 4), 4)
    assert mask.shape == (2, 14, 4)
    assert mask[1].tolist() == [[0] * 4] * 4 + [[1] * 4] * 10


# --- randomness ------------------------------------------------------------------------------------


def test_dropout_0_changes_nothing_and_dropout_1_draws_t_frames_with_replacement():
    mask = periodic_mask((1, 14, 12), 4, 1, offset=0)
    assert torch.equal(dropout_mask(mask, 0.0), mask)
    dropped = dropout_mask(mask, 1.0, torch.Generator().manual_seed(0))
    newly = ((dropped == 1) & (mask == 0)).any(dim=1)[0]  # frames re-masked
    assert 0 < int(newly.sum()) <= 3  # 12 draws with replacement among 12 frames, 3 of them kept


def test_dropout_regenerates_int_t_times_p_whole_frames_like_the_reference():
    """Periodic 7, depth 3, p 0.2 on 82 frames: int(82 * 0.2) = 16 frames drawn; every frame is
    then wholly kept or wholly regenerated in the codebooks below the depth, in every batch item."""
    shape = (2, 14, 82)
    mask = codebook_mask(periodic_mask(shape, 7, 1, offset=0), 3)
    dropped = codebook_mask(dropout_mask(periodic_mask(shape, 7, 1, offset=0), 0.2, torch.Generator().manual_seed(1)), 3)
    assert (dropped >= mask).all()  # dropout only ever adds regenerated cells
    lower = dropped[:, :3]
    partly_kept = (lower.min(dim=1).values != lower.max(dim=1).values)
    assert int(partly_kept.sum()) == 0
    assert torch.equal(dropped[0], dropped[1])  # the same frames for the whole batch
    newly = int(((dropped[0, 0] == 1) & (mask[0, 0] == 0)).sum())
    assert 0 <= newly <= 12  # at most the 12 kept frames, from 16 draws


def test_dropout_draws_from_the_generator_it_is_given():
    mask = periodic_mask((1, 14, 200), 2, 1, offset=0)  # half kept
    a = dropout_mask(mask, 0.5, torch.Generator().manual_seed(0))
    b = dropout_mask(mask, 0.5, torch.Generator().manual_seed(0))
    c = dropout_mask(mask, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a >= mask).all()
    # 100 draws among 200 frames re-mask about 200 * (1 - (199/200)^100) / 2 = 39 of the 100 kept frames
    kept_before, kept_after = int((mask[0, 0] == 0).sum()), int((a[0, 0] == 0).sum())
    assert 0.45 < kept_after / kept_before < 0.75


def test_random_ratio_0_keeps_all_and_1_regenerates_all():
    assert torch.equal(random_mask((2, 14, 9), 0.0), empty_mask((2, 14, 9)))
    assert torch.equal(random_mask((2, 14, 9), 1.0), full_mask((2, 14, 9)))


def test_random_mask_is_reproducible_with_a_seeded_generator():
    a = random_mask((1, 14, 100), 0.3, torch.Generator().manual_seed(9))
    b = random_mask((1, 14, 100), 0.3, torch.Generator().manual_seed(9))
    c = random_mask((1, 14, 100), 0.3, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0.25 < float(a.float().mean()) < 0.35


# --- the declarative recipe ----------------------------------------------------------------------


def test_recipe_json_round_trip():
    recipe = MaskRecipe(rand_mask_intensity=0.4, prefix_s=0.5, periodic_prompt=5, periodic_offset=2,
                        blocks_s=[[0.1, 0.3]], strided=3, strided_offset=1, dropout=0.2, keep_lowest=1,
                        upper_codebook_mask=4)
    text = json.dumps(recipe.to_json())
    assert MaskRecipe.from_json(text) == recipe
    assert MaskRecipe.from_json(json.loads(text)) == recipe
    assert "compression" not in recipe.to_json()  # unset optional fields are left out


@pytest.mark.parametrize("name,intensity,period,depth", [
    ("subtle", 0.3, 7, 2), ("balanced", 0.5, 7, 3), ("creative", 0.7, 10, 4),
])
def test_presets_have_the_seed_notebooks_values(name, intensity, period, depth):
    recipe = MaskRecipe.from_json(name)
    assert (recipe.rand_mask_intensity, recipe.periodic_prompt, recipe.upper_codebook_mask) == (intensity, period, depth)
    assert PRESETS[name] == recipe


def test_rhythm_preset_is_beat_driven_with_depth_3():
    recipe = MaskRecipe.from_json("rhythm")
    assert recipe.beat_after_s > 0 and recipe.uses_audio
    assert recipe.upper_codebook_mask == 3
    assert recipe.periodic_prompt == 0  # the beats replace the fixed period
    with pytest.raises(ValueError, match="needs the audio"):
        recipe.build((1, 14, 50))


def test_preset_with_overrides():
    recipe = MaskRecipe.from_json({"preset": "creative", "upper_codebook_mask": 2, "dropout": 0.1})
    assert (recipe.rand_mask_intensity, recipe.periodic_prompt) == (0.7, 10)
    assert (recipe.upper_codebook_mask, recipe.dropout, recipe.preset) == (2, 0.1, "creative")


def test_presets_are_not_changed_by_using_them():
    recipe = MaskRecipe.from_json("subtle")
    recipe.rand_mask_intensity = 0.9
    assert PRESETS["subtle"].rand_mask_intensity == 0.3


def test_unknown_recipe_fields_are_rejected_by_name():
    with pytest.raises(ValueError, match=r"unknown mask recipe field\(s\) \['periodic_promt'\]"):
        MaskRecipe.from_json({"periodic_promt": 7})
    with pytest.raises(ValueError, match="unknown mask preset 'wild'"):
        MaskRecipe.from_json("wild")


@pytest.mark.parametrize("field,value", [
    ("rand_mask_intensity", 1.5), ("dropout", -0.1), ("prefix_s", -1.0), ("suffix_s", float("inf")),
    ("periodic_prompt", -7), ("periodic_prompt", 2.5), ("periodic_prompt_width", -1),
    ("upper_codebook_mask", "three"), ("periodic_offset", -1), ("compression", -2), ("blocks_s", [[2.0, 1.0]]),
])
def test_bad_recipe_values_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"mask recipe: {field}="):
        MaskRecipe.from_json({field: value})


def test_recipe_combines_terms_like_the_reference_build_mask():
    # no randomness: everything regenerated, keep prefix 2 frames, periodic P=4 offset 1, codebooks >= 2 regenerated
    recipe = MaskRecipe(rand_mask_intensity=1.0, prefix_s=2 * HOP / SR, periodic_prompt=4, periodic_offset=1,
                        upper_codebook_mask=2)
    mask = recipe.build((1, 14, 12))
    expected_low = [0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    assert mask[0, 0].tolist() == mask[0, 1].tolist() == expected_low
    assert mask[0, 2:].tolist() == [[1] * 12] * 12


def test_recipe_blocks_and_strided_and_keep_lowest():
    recipe = MaskRecipe(periodic_prompt=0, blocks_s=[[2 * HOP / SR, 6 * HOP / SR]], strided=2, strided_offset=1,
                        keep_lowest=1, upper_codebook_mask=3)
    mask = recipe.build((1, 14, 8))
    # block regenerates frames 2..5; strided keeps the odd frames; AND -> regenerate 2 and 4 only
    assert mask[0, 0].tolist() == [0] * 8  # keep_lowest 1
    assert mask[0, 1].tolist() == mask[0, 2].tolist() == [0, 0, 1, 0, 1, 0, 0, 0]
    assert mask[0, 3:].tolist() == [[1] * 8] * 11


def test_compression_recipe_replaces_the_other_terms():
    mask = MaskRecipe(compression=2, prefix_s=1.0).build((1, 14, 6))
    assert mask[0].tolist() == [[0] * 6] * 2 + [[1] * 6] * 12


def test_painted_grid_and_run_length_grid():
    rows = ["0110"] * 4 + [[1, 1, 1, 1]] * 10
    assert MaskRecipe(grid=rows).build((2, 14, 4))[1].tolist() == [[0, 1, 1, 0]] * 4 + [[1] * 4] * 10
    rle = [[[1, 0], [2, 1], [1, 0]]] * 4 + [[[4, 1]]] * 10
    assert torch.equal(MaskRecipe(grid_rle=rle).build((2, 14, 4)), MaskRecipe(grid=rows).build((2, 14, 4)))
    assert grid_to_rle([0, 1, 1, 0]) == [[1, 0], [2, 1], [1, 0]]


def test_painted_grid_of_the_wrong_size_is_an_error_giving_both_sizes():
    with pytest.raises(ValueError, match=r"painted mask is 14 x \[4\] but the clip's token grid is 14 x 5"):
        MaskRecipe(grid=["0110"] * 14).build((1, 14, 5))
    with pytest.raises(ValueError, match="must be 0 .keep. or 1"):
        MaskRecipe(grid=["0120"] * 14).build((1, 14, 4))


def test_seconds_to_frames_rounds_up():
    assert seconds_to_frames(10) == 575
    assert seconds_to_frames(3) == 173
    assert seconds_to_frames(0) == 0
    assert seconds_to_frames(HOP / SR) == 1


# --- onsets and beats ------------------------------------------------------------------------------


def click_track(click_samples, seconds, seed=0):
    rng = np.random.default_rng(seed)
    audio = 0.001 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
    burst = (0.8 * np.exp(-np.arange(400) / 60) * rng.standard_normal(400)).astype(np.float32)
    for s in click_samples:
        audio[s:s + 400] += burst[: len(audio) - s]
    return audio


def test_onsets_of_a_click_track_are_found_within_one_frame():
    click_frames = [10, 30, 55, 80, 110, 150]
    audio = click_track([f * HOP + 100 for f in click_frames], 3.0)
    found = detect_onsets(audio)
    assert len(found) == len(click_frames)
    for expected, got in zip(click_frames, found):
        assert abs(got - expected) <= 1


def test_beats_of_a_120_bpm_click_track_are_28_or_29_frames_apart():
    audio = click_track([int(k * 0.5 * SR) + 300 for k in range(16)], 8.0)  # 120 BPM: a click every 0.5 s
    beats = detect_beats(audio)
    assert set(np.diff(beats).tolist()) <= {28, 29}  # 0.5 s * 57.42 frames/s = 28.71
    assert np.mean(np.diff(beats)) == pytest.approx(28.71, abs=0.05)  # no drift from a whole-frame period
    clicks = [(k * 0.5 * SR + 300) / HOP for k in range(16)]  # frames 0.4, 29.1, 57.8, ...
    assert len(beats) == 16
    for beat, click in zip(beats, clicks):
        assert abs(beat - click) <= 1.2


def test_onset_driven_recipe_keeps_frames_around_each_onset():
    audio = click_track([20 * HOP, 60 * HOP], 1.5)
    recipe = MaskRecipe(periodic_prompt=0, onset_mask_width=2, upper_codebook_mask=14)
    mask = recipe.build((1, 14, seconds_to_frames(1.5)), audio=audio)
    kept = (mask[0, 0] == 0).nonzero().flatten().tolist()
    onsets = detect_onsets(audio)
    assert len(onsets) == 2
    assert kept == [t for e in onsets for t in range(e - 2, e + 2)]


# --- the reference's keyword API -----------------------------------------------------------------


def test_interface_build_mask_with_reference_keywords_equals_the_recipe(tiny_interface):
    from audiotools import AudioSignal

    audio = click_track([k * 10 * HOP for k in range(1, 6)], 1.2)
    signal = AudioSignal(audio[None], SR)
    z = tiny_interface.encode(signal)
    kwargs = dict(rand_mask_intensity=0.8, prefix_s=0.1, suffix_s=0.05, periodic_prompt=5,
                  periodic_prompt_width=3, onset_mask_width=2, _dropout=0.1, upper_codebook_mask=4, ncc=1)
    mask = tiny_interface.build_mask(z, signal, seed=3, **kwargs)
    recipe = MaskRecipe(rand_mask_intensity=0.8, prefix_s=0.1, suffix_s=0.05, periodic_prompt=5,
                        periodic_prompt_width=3, onset_mask_width=2, dropout=0.1, upper_codebook_mask=4,
                        keep_lowest=1)
    expected = recipe.build(tuple(z.shape), torch.Generator().manual_seed(3),
                            audio=tiny_interface.preprocess(signal).audio_data[0, 0].numpy())
    assert torch.equal(mask.cpu(), expected)
    assert mask.shape == z.shape
    assert (mask[0, 0] == 0).all()  # ncc=1
    assert (mask[0, 4:] == 1).all()  # upper_codebook_mask=4
    assert 0 < float(mask[0, 1:4].float().mean()) < 1
    no_dropout = tiny_interface.build_mask(z, signal, seed=3, **{**kwargs, "_dropout": 0.0})
    assert (no_dropout[0, 1:4, :6] == 0).all()  # prefix 0.1 s = ceil(5.74) = 6 frames
    assert (no_dropout[0, 1:4, -3:] == 0).all()  # suffix 0.05 s = ceil(2.87) = 3 frames
    assert (mask >= no_dropout).all()  # dropout only regenerates more
    # the same seed gives the same mask, another seed another
    assert torch.equal(tiny_interface.build_mask(z, signal, seed=3, **kwargs), mask)
    assert not torch.equal(tiny_interface.build_mask(z, signal, seed=4, **kwargs), mask)


def test_rhythm_preset_keeps_about_75_ms_after_every_beat():
    clicks = [int(k * 0.5 * SR) + 300 for k in range(8)]
    audio = click_track(clicks, 4.0)
    T = seconds_to_frames(4.0)
    mask = MaskRecipe.from_json("rhythm").build((1, 14, T), audio=audio)
    beats = detect_beats(audio)
    kept = (mask[0, 0] == 0).nonzero().flatten().tolist()
    assert kept == [t for b in beats for t in range(b, min(T, b + 5))]  # 0.075 s -> ceil(4.31) = 5 frames
    for s in clicks:
        assert mask[0, 0, s // HOP] == 0  # every click's frame is kept
    assert (mask[0, 3:] == 1).all()
