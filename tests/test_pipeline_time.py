"""Time and channels in the pipeline (bridge/selection.py, bridge/stereo.py): selections spliced
into the untouched source, loops of exact length without a seam, stereo modes, channel choice,
given beats, recipes and fingerprints. Tiny random weights, a few sampling steps."""

import json

import numpy as np
import pytest
from conftest import tone, write_wav
from pedalboard.io import AudioFile

from bridge.pipeline import Pipeline, fingerprints, request_from_recipe
from bridge.request import VampRequest
from bridge.selection import CROSSFADE_MS, SELECTION_CONTEXT_S
from bridge.stereo import image

SR = 44100
FAST = {"sampling_steps": 2, "c2f_sampling_steps": 1}


@pytest.fixture(scope="module")
def pipeline(tiny_models):
    return Pipeline(model_dir=str(tiny_models), device="cpu")


def write_float_wav(path, audio):
    with AudioFile(str(path), "w", samplerate=SR, num_channels=audio.shape[0], bit_depth=32) as f:
        f.write(np.asarray(audio, np.float32))
    return path


def read(path):
    with AudioFile(str(path)) as f:
        return f.read(f.frames)


def run(pipeline, tmp_path, source, name="out", **fields):
    request = VampRequest(source_path=str(source), sampling=FAST, seed=3, n_variations=1, bit_depth="float32",
                          output_dir=str(tmp_path / name), **fields)
    (result,) = pipeline.run(request)
    return result, read(result.audio_path), json.loads(open(result.recipe_path).read())


def test_outside_the_selection_the_variation_is_the_source_sample_for_sample(pipeline, tmp_path):
    audio = tone(14.0, channels=2)
    source = write_wav(tmp_path / "long.wav", audio, SR)
    stored = read(source)  # the source as the file holds it (24-bit)
    start_s, length_s = 1.0, 12.0
    sel_start, sel_length = 8.0, 1.2  # heard: 5 s before, to the region's end after
    result, out, recipe = run(pipeline, tmp_path, source, start_s=start_s, length_s=length_s,
                              regen_start_s=sel_start, regen_length_s=sel_length)
    region = stored[:, round(start_s * SR):round((start_s + length_s) * SR)]
    assert out.shape == region.shape
    s0, s1 = round((sel_start - start_s) * SR), round((sel_start + sel_length - start_s) * SR)
    assert np.array_equal(out[:, :s0], region[:, :s0]) and np.array_equal(out[:, s1:], region[:, s1:])
    fade = round(CROSSFADE_MS / 1000 * SR)
    inside = slice(s0 + fade, s1 - fade)
    assert np.abs(out[:, inside] - region[:, inside]).max() > 0.01  # the selection was regenerated
    # at the edges the crossfade starts from the source: the first sample is nearly the source's
    assert np.abs(out[:, s0] - region[:, s0]).max() < np.abs(region[:, s0 - 1000:s0]).max() * 0.1 + 1e-3
    # the model heard the selection plus at most the context limit on each side
    heard = recipe["time"]["heard"]
    assert heard["start_s"] == pytest.approx(sel_start - start_s - SELECTION_CONTEXT_S, abs=1e-4)
    assert heard["start_s"] + heard["length_s"] == pytest.approx(length_s, abs=1e-4)  # clipped at the end
    assert recipe["time"]["selection"] == {"start_s": pytest.approx(sel_start - start_s),
                                           "length_s": pytest.approx(sel_length)}
    assert recipe["request"]["regen_start_s"] == sel_start


def test_only_the_selections_frames_are_regenerated(pipeline, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(4.0), SR)
    result, out, recipe = run(pipeline, tmp_path, source, regen_start_s=1.0, regen_length_s=1.0)
    with np.load(tmp_path / "out" / recipe["tokens"]) as tokens:
        changed = (tokens["codes"][0] != tokens["original"][0]).any(axis=0)
    frames = np.nonzero(changed)[0]
    assert len(frames) and frames.min() >= int(1.0 * SR / 768) and frames.max() <= int(2.0 * SR / 768) + 1


def test_a_loop_is_exactly_as_long_and_has_no_seam_at_the_wrap(pipeline, tmp_path):
    n = 88200 + 333  # not a whole number of token frames
    source = write_wav(tmp_path / "loop.wav", tone(3.0)[:, :n], SR)
    result, out, recipe = run(pipeline, tmp_path, source, loop=True)
    assert out.shape == (1, n) and recipe["time"]["loop"] is True
    steps = np.abs(np.diff(np.concatenate([out[0], out[0, :1]])))
    assert steps[-1] <= 4 * np.percentile(steps, 99.9)  # the wrap is a step like any other
    plain_result, plain, _ = run(pipeline, tmp_path, source, name="plain")
    assert not np.array_equal(plain, out)


def test_loop_with_an_effect_tail_stays_exactly_the_loops_length(pipeline, tmp_path):
    source = write_wav(tmp_path / "loop.wav", tone(1.5), SR)
    _, out, _ = run(pipeline, tmp_path, source, loop=True, fx="space")
    assert out.shape == (1, round(1.5 * SR))


def test_mid_side_keeps_a_mono_compatible_source_narrow_and_a_wide_one_wide(pipeline, tmp_path):
    narrow = write_wav(tmp_path / "narrow.wav", np.repeat(tone(2.0)[:1], 2, axis=0), SR)
    _, out, recipe = run(pipeline, tmp_path, narrow, name="narrow")
    assert recipe["time"]["stereo"] == "mid_side"
    assert np.abs(out[0] - out[1]).max() < 1e-6  # no side in, no side out
    left, right = tone(2.0, freq_hz=220)[0], tone(2.0, freq_hz=330, seed=1)[0]
    wide_audio = np.stack([left, 0.2 * left + right])
    wide = write_wav(tmp_path / "wide.wav", wide_audio, SR)
    _, out, _ = run(pipeline, tmp_path, wide, name="wide")
    source_side = image(read(wide))["side_to_mid_db"]
    assert abs(image(out)["side_to_mid_db"] - source_side) < 6  # the side keeps its level against the mid
    _, mono, _ = run(pipeline, tmp_path, wide, name="mono", stereo="mono")
    assert np.abs(mono[0] - mono[1]).max() < 1e-6


def test_coupled_and_per_channel_draw_alike_and_apart(pipeline, tmp_path):
    same = write_wav(tmp_path / "same.wav", np.repeat(tone(1.0)[:1], 2, axis=0), SR)
    _, coupled, _ = run(pipeline, tmp_path, same, name="coupled", stereo="coupled")
    _, apart, _ = run(pipeline, tmp_path, same, name="apart", stereo="per_channel")
    assert np.abs(coupled[0] - coupled[1]).max() < 1e-6  # the same input and draws: the same output
    assert np.abs(apart[0] - apart[1]).max() > 1e-3  # own draws: unrelated


def test_channel_left_vamps_the_left_channel_alone(pipeline, tmp_path):
    audio = np.stack([tone(1.0)[0], tone(1.0, freq_hz=523, seed=2)[0]])
    source = write_float_wav(tmp_path / "two.wav", audio)
    left_only = write_float_wav(tmp_path / "left.wav", audio[:1])
    _, left, recipe = run(pipeline, tmp_path, source, name="left", channel="left")
    _, alone, _ = run(pipeline, tmp_path, left_only, name="alone")
    assert left.shape == (1, SR) and recipe["time"]["channel"] == "left"
    assert np.array_equal(left, alone)
    _, right, _ = run(pipeline, tmp_path, source, name="right", channel="right")
    assert right.shape == (1, SR) and not np.array_equal(right, left)


def test_given_beats_replace_detection_and_are_recorded(pipeline, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(12.0), SR)
    beats = [0.5, 1.5, 2.5]
    mask = {"preset": "rhythm", "beats_s": beats, "downbeats_s": [3.5]}
    _, _, recipe = run(pipeline, tmp_path, source, start_s=2.0, length_s=8.0, mask=mask,
                       regen_start_s=8.0, regen_length_s=1.0)
    assert recipe["mask"]["beats_source"] == "given" and recipe["time"]["beats_source"] == "given"
    with np.load(tmp_path / "out" / recipe["tokens"]) as tokens:
        kept = (tokens["masked"][0, :4] != 1024).all(axis=0)
    # the heard clip starts 5 s before the selection, 1 s into the region: beats move with it
    offset_s = recipe["time"]["heard"]["start_s"]
    for beat in beats + [3.5]:
        frame = int((beat - offset_s) * SR / 768)
        if frame >= 0:
            assert kept[frame]
    again, _ = request_from_recipe(recipe["output"]["path"].replace(".wav", ".json"))
    assert again.mask_recipe().beats_s == beats


def test_rerenders_of_loops_and_selections_are_bit_exact(pipeline, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(3.0, channels=2), SR)
    for name, fields in (("loop", {"loop": True}), ("sel", {"regen_start_s": 1.0, "regen_length_s": 0.7})):
        result, out, _ = run(pipeline, tmp_path, source, name=name, **fields)
        again = pipeline.rerender(result.recipe_path, output_path=tmp_path / f"{name}-again.wav")
        assert np.array_equal(read(again.audio_path), out)


def test_token_fingerprints_change_with_time_and_channel_settings(pipeline, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(2.0, channels=2), SR)
    base = VampRequest(source_path=str(source), seed=1)
    recipe = base.mask_recipe()
    options, c2f = base.sampling_options()
    pipeline.interface  # noqa: B018 - loads the model info the fingerprint names
    seen = set()
    for fields in ({}, {"loop": True}, {"regen_start_s": 0.5, "regen_length_s": 0.5}, {"stereo": "coupled"},
                   {"channel": "left"}):
        request = VampRequest(source_path=str(source), seed=1, **fields)
        tokens, _ = fingerprints(request, recipe, options, c2f, request.fx_chain(), source_sha="sha", seed=1,
                                 model_files=pipeline._model_info["files"], precision="fp32",
                                 windows=pipeline.windows)
        seen.add(tokens)
    assert len(seen) == 5


def test_a_rerender_uses_the_windows_its_recipe_recorded(tiny_models, pipeline, tmp_path):
    from bridge.engine.windows import WindowSettings

    source = write_wav(tmp_path / "clip.wav", tone(1.5), SR)
    other = Pipeline(model_dir=str(tiny_models), device="cpu",
                     windows=WindowSettings(window_s=0.4, overlap_s=0.12, c2f_window_s=0.4, c2f_overlap_s=0.12))
    result, out, recipe = run(other, tmp_path, source)
    assert recipe["time"]["windows"]["window_s"] == 0.4
    _, default_out, _ = run(pipeline, tmp_path, source, name="default")
    assert not np.array_equal(default_out, out)  # the windows matter for this clip
    again = pipeline.rerender(result.recipe_path, output_path=tmp_path / "again.wav")
    assert np.array_equal(read(again.audio_path), out) and pipeline.windows == WindowSettings()


def test_recipes_from_before_windows_rerender_as_they_were_made(tiny_models, tmp_path):
    """A recipe without "time" was made with the reference's chunks and the mono mix."""
    source = write_wav(tmp_path / "clip.wav", tone(4.0, channels=2), SR)
    chunked = Pipeline(model_dir=str(tiny_models), device="cpu", windows=None)
    result, out, recipe = run(chunked, tmp_path, source, stereo="mono")
    del recipe["time"]
    del recipe["request"]["stereo"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(recipe))
    again = Pipeline(model_dir=str(tiny_models), device="cpu").rerender(old, output_path=tmp_path / "again.wav")
    assert np.array_equal(read(again.audio_path), out)


def test_a_loop_written_at_another_rate_stays_seamless_and_exact(pipeline, tmp_path):
    source = write_wav(tmp_path / "loop.wav", tone(2.0, sample_rate=48000), 48000)
    _, out, recipe = run(pipeline, tmp_path, source, loop=True, sample_rate=44100)
    assert out.shape == (1, 88200) and recipe["output"]["sample_rate"] == 44100
    steps = np.abs(np.diff(np.concatenate([out[0], out[0, :1]])))
    assert steps[-1] <= 4 * np.percentile(steps, 99.9)


def test_given_beats_need_no_audio_and_bad_ones_are_named():
    from bridge.engine.prompts import MaskRecipe

    recipe = MaskRecipe.from_json({"preset": "rhythm", "beats_s": [0.0, 0.5], "downbeats_s": [0.0]})
    assert not recipe.uses_audio and recipe.to_json()["beats_source"] == "given"
    mask = recipe.build((1, 14, 60))  # no audio: the beats are given
    assert (mask[0, :3, 0] == 0).all() and (mask[0, :3, int(0.5 * SR / 768)] == 0).all()
    assert MaskRecipe.from_json(recipe.to_json()) == recipe  # beats_source is derived, read back as given
    assert MaskRecipe.from_json("rhythm").to_json()["beats_source"] == "detected"
    with pytest.raises(ValueError, match="beats_s"):
        MaskRecipe.from_json({"beats_s": ["one"]})
