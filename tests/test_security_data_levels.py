"""Issue 10 item 13: a variation is never far louder than its source, even below the loudness gate.

A -80 dBFS tone is below BS.1770's -70 LUFS gate, so its integrated loudness is -inf and cannot
be matched: the level follows its RMS instead, and the recipe says which rule was used. A
silent region has nothing to vary and is refused, unless the mask regenerates all of it.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_wav
from pedalboard.io import AudioFile

from bridge.cli import main
from bridge.dsp import integrated_loudness
from bridge.pipeline import Pipeline
from bridge.render import ENGINE_SAMPLE_RATE, render_variation
from bridge.request import RequestError, VampRequest

FAST = {"sampling_steps": 2, "c2f_sampling_steps": 1}
EVERYTHING = {"rand_mask_intensity": 1, "periodic_prompt": 0}


def rms_db(audio):
    return 20 * np.log10(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def tone_at(peak_db, seconds=1.0, sample_rate=44100, channels=2):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    mono = 10 ** (peak_db / 20) * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.tile(mono.astype(np.float32), (channels, 1))


def read(path):
    with AudioFile(str(path)) as f:
        return f.read(f.frames)


@pytest.fixture(scope="module")
def pipeline(tiny_models):
    return Pipeline(model_dir=tiny_models, device="cpu")


def run(pipeline, source, out, mask="balanced"):
    request = VampRequest(source_path=str(source), output_dir=str(out), n_variations=2, seed=3,
                          sampling=dict(FAST), mask=mask)
    results = pipeline.run(request)
    return [(read(r.audio_path), json.loads(Path(r.recipe_path).read_text())) for r in results]


@pytest.mark.parametrize("peak_db", [-80.0, -100.0])
def test_a_source_below_the_gate_gives_variations_at_its_rms(pipeline, tmp_path, peak_db):
    source_audio = tone_at(peak_db)
    assert integrated_loudness(source_audio, 44100) == -np.inf  # below the gate: LUFS cannot be matched
    source = write_wav(tmp_path / "quiet.wav", source_audio, 44100)
    for audio, recipe in run(pipeline, source, tmp_path / "out"):
        assert abs(rms_db(audio) - rms_db(read(source))) < 1.0
        assert np.max(np.abs(audio)) < 10 ** ((peak_db + 12) / 20)  # nowhere near full scale
        assert recipe["loudness_rule"] == "rms"


def test_a_measurable_source_records_the_lufs_rule(pipeline, tmp_path):
    source = write_wav(tmp_path / "normal.wav", tone_at(-12.0), 44100)
    for audio, recipe in run(pipeline, source, tmp_path / "out"):
        assert recipe["loudness_rule"] == "lufs"
        assert integrated_loudness(audio, 44100) == pytest.approx(integrated_loudness(read(source), 44100), abs=0.5)


def test_a_silent_region_is_refused_as_nothing_to_vary(pipeline, tmp_path):
    source = write_wav(tmp_path / "silence.wav", np.zeros((2, 44100), np.float32), 44100)
    with pytest.raises(RequestError) as e:
        run(pipeline, source, tmp_path / "out")
    assert e.value.code == "bad_region"
    assert "silent" in str(e.value) and "nothing to vary" in str(e.value) and str(source) in str(e.value)
    assert not list((tmp_path / "out").glob("*.wav"))


def test_a_silent_region_in_a_loud_file_is_refused_too(pipeline, tmp_path):
    audio = tone_at(-6.0, seconds=2.0)
    audio[:, 44100:] = 0.0
    source = write_wav(tmp_path / "ends_silent.wav", audio, 44100)
    request = VampRequest(source_path=str(source), output_dir=str(tmp_path / "out"), start_s=1.0, length_s=1.0,
                          sampling=dict(FAST), seed=1)
    with pytest.raises(RequestError, match="nothing to vary"):
        pipeline.run(request)


def test_the_cli_says_a_silent_region_has_nothing_to_vary(tiny_models, tmp_path, capsys):
    source = write_wav(tmp_path / "silence.wav", np.zeros((1, 22050), np.float32), 44100)
    code = main(["vamp", str(source), "-o", str(tmp_path / "out"), "-n", "1", "--model", str(tiny_models),
                 "--steps", "2", "--c2f-steps", "1"])
    assert code == 2
    assert "nothing to vary" in capsys.readouterr().err


def test_a_silent_region_fully_regenerated_comes_back_at_the_models_level_not_full_scale(pipeline, tmp_path):
    source = write_wav(tmp_path / "silence.wav", np.zeros((2, 44100), np.float32), 44100)
    for audio, recipe in run(pipeline, source, tmp_path / "out", mask=EVERYTHING):
        if np.any(audio):
            assert integrated_loudness(audio, 44100) <= -23.0
            assert np.mean(np.abs(audio) > 0.9) < 0.001
        assert recipe["loudness_rule"] == "silent"


def test_render_follows_the_rms_of_a_source_below_the_gate_whatever_the_engine_gives():
    from bridge.render import loudness_rule

    source = tone_at(-80.0, sample_rate=48000)
    loud_engine = (np.random.default_rng(0).standard_normal(ENGINE_SAMPLE_RATE) * 0.9).astype(np.float32)
    out = render_variation(loud_engine, source_audio=source, source_sample_rate=48000, fx="space")
    assert loudness_rule(source, 48000) == "rms"
    assert abs(rms_db(out[:, :48000]) - rms_db(source)) < 0.5


def test_a_selection_heard_in_silence_is_refused_even_when_the_region_has_sound(pipeline, tmp_path):
    # 2 s of tone, then 12 s of silence; the selection (9-10 s) and its 5 s of context each side
    # are silent: the model would hear nothing, and matching "silence" would insert noise.
    audio = np.concatenate([tone_at(-12.0, seconds=2.0), np.zeros((2, 12 * 44100), np.float32)], axis=1)
    source = write_wav(tmp_path / "gap.wav", audio, 44100)
    request = VampRequest(source_path=str(source), output_dir=str(tmp_path / "out"), seed=3,
                          sampling=dict(FAST), regen_start_s=9.0, regen_length_s=1.0)
    with pytest.raises(RequestError) as e:
        pipeline.run(request)
    assert e.value.code == "bad_region" and "nothing to vary" in str(e.value)
    assert not any((tmp_path / "out").glob("*.wav"))
