"""`vampbridge vamp`, `rerender` and `demo` on tiny random weights, through `bridge.cli.main`.

Small clips and 2-4 sampling steps keep each run to seconds; what is checked is the contract
around the engine: files, recipes, exact lengths and rates, channels, loudness, formats.
"""

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_wav
from pedalboard.io import AudioFile

import bridge
from bridge import models
from bridge.audio import sha256_file
from bridge.cli import main
from bridge.dsp import integrated_loudness

STEPS = ["--steps", "2", "--c2f-steps", "1"]


def vamp(tiny_models, source, out, *extra):
    return main(["vamp", str(source), "-o", str(out), "--model", str(tiny_models), *STEPS, *extra])


def read(path):
    with AudioFile(str(path)) as f:
        return f.read(f.frames), f.samplerate


def wav_format(path):
    """(format tag, bits per sample) from a WAV's fmt chunk; tag 3 is IEEE float, 0xFFFE extensible."""
    data = Path(path).read_bytes()
    position = 12
    while position + 8 <= len(data):
        chunk_id, size = struct.unpack("<4sI", data[position:position + 8])
        if chunk_id == b"fmt ":
            tag, _, _, _, _, bits = struct.unpack("<HHIIHH", data[position + 8:position + 24])
            if tag == 0xFFFE:
                tag = struct.unpack("<H", data[position + 32:position + 34])[0]  # the sub-format's first field
            return tag, bits
        position += 8 + size + (size & 1)
    raise AssertionError(f"{path} has no fmt chunk")


def outputs(folder):
    return sorted(Path(folder).glob("*.wav")), sorted(Path(folder).glob("*.json"))


def test_vamp_writes_each_variation_with_a_complete_recipe(tiny_models, tmp_path, capsys):
    source = write_wav(tmp_path / "clip.wav", tone(1.0, channels=2), 44100)
    assert vamp(tiny_models, source, tmp_path / "out", "-n", "2", "--seed", "7", "--fx", "glue") == 0
    wavs, recipes = outputs(tmp_path / "out")
    assert len(wavs) == len(recipes) == 2
    printed = capsys.readouterr().out
    assert all(str(w) in printed for w in wavs)
    recipe = json.loads(recipes[0].read_text())
    assert recipe["vampbridge_version"] == bridge.__version__
    assert recipe["input"]["path"] == str(source.resolve())
    assert recipe["input"]["sha256"] == sha256_file(source)
    assert (recipe["input"]["start_s"], recipe["input"]["length_s"]) == (0.0, None)
    assert recipe["models"]["dir"] == str(tiny_models)
    for name in ("codec.pth", "coarse.pth", "c2f.pth"):
        assert recipe["models"]["files"][name]["sha256"] == sha256_file(tiny_models / name)
    assert recipe["mask"]["preset"] == "balanced" and recipe["mask"]["periodic_prompt"] == 7
    assert recipe["sampling"]["sampling_steps"] == 2 and recipe["sampling"]["c2f_sampling_steps"] == 1
    assert {r["seed"] for r in map(json.loads, (p.read_text() for p in recipes))} == {7, 8}
    assert recipe["fx"]["chain"][0]["plugin"] and "tail_s" in recipe["fx"]
    assert {"load_s", "encode_s", "generate_s", "decode_s", "render_s"} <= set(recipe["timings"])
    assert recipe["output"]["path"] in {str(w) for w in wavs}


def test_region_output_is_exactly_the_region_in_source_samples(tiny_models, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(1.5, sample_rate=48000), 48000)
    assert vamp(tiny_models, source, tmp_path / "out", "-n", "1", "--start", "0.25", "--length", "0.6") == 0
    wavs, recipes = outputs(tmp_path / "out")
    audio, rate = read(wavs[0])
    assert rate == 48000 and audio.shape == (1, 28800)
    recipe = json.loads(recipes[0].read_text())
    assert (recipe["input"]["start_s"], recipe["input"]["length_s"]) == (0.25, 0.6)


@pytest.mark.parametrize("sample_rate, channels", [(8000, 1), (44100, 2), (48000, 6), (96000, 1)])
def test_round_trip_keeps_rate_length_channels_and_loudness(tiny_models, tmp_path, sample_rate, channels):
    source_audio = tone(1.0, sample_rate=sample_rate, channels=channels)
    source = write_wav(tmp_path / "clip.wav", source_audio, sample_rate)
    assert vamp(tiny_models, source, tmp_path / "out", "-n", "1") == 0
    audio, rate = read(outputs(tmp_path / "out")[0][0])
    assert rate == sample_rate
    assert audio.shape == source_audio.shape
    assert np.isfinite(audio).all()
    source_lufs = integrated_loudness(source_audio, sample_rate)
    assert abs(integrated_loudness(audio, sample_rate) - source_lufs) < 0.5


def test_per_channel_vamps_each_channel_on_its_own(tiny_models, tmp_path):
    two_parts = np.concatenate([tone(1.0, freq_hz=220), tone(1.0, freq_hz=523, seed=1)])  # (2, n), unrelated
    source = write_wav(tmp_path / "clip.wav", two_parts, 44100)
    assert vamp(tiny_models, source, tmp_path / "shared", "-n", "1", "--seed", "3", "--stereo", "mono") == 0
    assert vamp(tiny_models, source, tmp_path / "split", "-n", "1", "--seed", "3", "--per-channel") == 0
    shared, _ = read(outputs(tmp_path / "shared")[0][0])
    split, _ = read(outputs(tmp_path / "split")[0][0])
    assert shared.shape == split.shape == (2, 44100)
    assert np.abs(shared[0] - shared[1]).max() < 1e-6  # one engine output on both channels
    assert np.abs(split[0] - split[1]).max() > 1e-3  # each channel its own
    assert json.loads(outputs(tmp_path / "split")[1][0].read_text())["request"]["per_channel"] is True


def test_float32_writes_ieee_float_and_the_default_is_24_bit(tiny_models, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(0.5), 44100)
    assert vamp(tiny_models, source, tmp_path / "float", "-n", "1", "--float32", "--seed", "1") == 0
    assert vamp(tiny_models, source, tmp_path / "pcm", "-n", "1", "--seed", "1") == 0
    assert wav_format(outputs(tmp_path / "float")[0][0]) == (3, 32)
    assert wav_format(outputs(tmp_path / "pcm")[0][0]) == (1, 24)


def test_rerender_reproduces_the_audio_bit_for_bit_and_fx_adds_the_tail(tiny_models, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(1.0, sample_rate=48000, channels=2), 48000)
    assert vamp(tiny_models, source, tmp_path / "out", "-n", "1", "--seed", "11") == 0
    (original,), (recipe,) = outputs(tmp_path / "out")
    again = tmp_path / "again" / "take.wav"
    again.parent.mkdir()
    assert main(["rerender", str(recipe), "-o", str(again), "--model", str(tiny_models)]) == 0
    assert np.array_equal(read(again)[0], read(original)[0])
    spaced = tmp_path / "again" / "space.wav"
    assert main(["rerender", str(recipe), "-o", str(spaced), "--fx", "space", "--model", str(tiny_models)]) == 0
    audio, rate = read(spaced)
    assert rate == 48000 and audio.shape == (2, 48000 + 3 * 48000)  # space.json: tail_s 3.0
    assert json.loads(spaced.with_suffix(".json").read_text())["fx"]["tail_s"] == 3.0


def test_without_installed_weights_the_bundled_default_runs_and_says_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VAMPBRIDGE_DATA_DIR", str(tmp_path / "empty-data"))
    monkeypatch.delenv("VAMPBRIDGE_MODEL", raising=False)
    monkeypatch.delenv("VAMPBRIDGE_MODELS_DIR", raising=False)
    monkeypatch.setattr(models, "_warned_bundled", False)
    (tmp_path / "in").mkdir()
    write_wav(tmp_path / "in" / "a.wav", tone(0.5), 44100)
    write_wav(tmp_path / "in" / "b.wav", tone(0.5, freq_hz=330), 44100)
    assert main(["bounce", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-n", "1", *STEPS]) == 0
    err = capsys.readouterr().err
    assert err.count("untrained") == 1 and "vampbridge models fetch" in err
    recipe = json.loads(outputs(tmp_path / "out")[1][0].read_text())
    assert recipe["models"]["dir"] == str(tmp_path / "empty-data" / "models" / "bundled-tiny")


def test_demo_runs_and_says_where_the_files_went(tiny_models, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "-n", "1", "--steps", "2", "--model", str(tiny_models)]) == 0
    assert len(outputs(out)[0]) == 1
    assert f"are in {out}" in capsys.readouterr().out
