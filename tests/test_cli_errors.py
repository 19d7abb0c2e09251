"""Every bad input to `vampbridge vamp` is one line on stderr, a non-zero exit, no traceback,
and no file in the output folder. A few run as real processes to check the exit code."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_wav
from pedalboard.io import AudioFile

from bridge.cli import main

ROOT = Path(__file__).resolve().parent.parent
VAMPBRIDGE = ROOT / ".venv" / "bin" / "vampbridge"


def nan_wav(path):
    audio = tone(0.5)
    audio[0, 100] = np.nan
    with AudioFile(str(path), "w", samplerate=44100, num_channels=1, bit_depth=32) as f:
        f.write(audio)
    return path


def truncated_wav(path):
    data = write_wav(path, tone(0.5), 44100).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


SOURCES = {  # name: (make the source in a folder, extra arguments, words the error must contain)
    "missing file": (lambda d: d / "nowhere.wav", [], "not found"),
    "not audio": (lambda d: (d / "notes.wav").write_text("lyrics, not audio") and d / "notes.wav", [],
                  "cannot read"),
    "truncated wav": (lambda d: truncated_wav(d / "cut.wav"), [], "truncated"),
    "zero-length wav": (lambda d: write_wav(d / "empty.wav", np.zeros((1, 0), np.float32), 44100), [],
                        "no samples"),
    "shorter than a token frame": (lambda d: write_wav(d / "blip.wav", tone(0.5)[:, :100], 44100), [],
                                   "shorter than one token frame"),
    "nan samples": (lambda d: nan_wav(d / "nan.wav"), [], "NaN"),
    "region past the end": (lambda d: write_wav(d / "clip.wav", tone(0.5), 44100), ["--start", "2"],
                            "past the end"),
    "region running off the end": (lambda d: write_wav(d / "clip.wav", tone(0.5), 44100),
                                   ["--start", "0.25", "--length", "1"], "past the end"),
    "unknown preset": (lambda d: write_wav(d / "clip.wav", tone(0.5), 44100), ["--preset", "loud"],
                       "unknown mask preset 'loud'"),
    "malformed mask json": (lambda d: write_wav(d / "clip.wav", tone(0.5), 44100), ["--mask", "{periodic: 7"],
                            "mask is not valid JSON"),
    "unknown fx plugin": (lambda d: write_wav(d / "clip.wav", tone(0.5), 44100),
                          ["--fx", '[{"plugin": "Reverb"}, {"plugin": "Reverbb"}]'], "effect chain entry 1 (Reverbb)"),
}


@pytest.mark.parametrize("case", sorted(SOURCES))
def test_bad_input_is_one_line_and_writes_nothing(case, tiny_models, tmp_path, capsys):
    make, extra, words = SOURCES[case]
    source = make(tmp_path)
    out = tmp_path / "out"
    code = main(["vamp", str(source), "-o", str(out), "-n", "1", "--steps", "2", "--model", str(tiny_models), *extra])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2
    assert len(errors) == 1 and words in errors[0]
    assert "Traceback" not in err
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []


def test_unknown_fx_fails_before_any_model_loads(tmp_path, capsys):
    source = write_wav(tmp_path / "clip.wav", tone(0.5), 44100)
    (tmp_path / "not-a-model").mkdir()  # loading from here would fail with a model error instead
    code = main(["vamp", str(source), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "not-a-model"),
                 "--fx", '[{"plugin": "Compressor"}, {"plugin": "Flanger"}]'])
    assert code == 2
    err = capsys.readouterr().err
    assert "effect chain entry 1 (Flanger)" in err and "model" not in err


def test_digital_silence_fully_regenerated_renders_finite_audio(tiny_models, tmp_path):
    # with a mask that keeps some of it, silence has nothing to vary (tests/test_security_data_levels.py)
    source = write_wav(tmp_path / "silence.wav", np.zeros((2, 22050), np.float32), 44100)
    assert main(["vamp", str(source), "-o", str(tmp_path / "out"), "-n", "1", "--steps", "2",
                 "--mask", '{"rand_mask_intensity": 1, "periodic_prompt": 0}', "--model", str(tiny_models)]) == 0
    (wav,) = (tmp_path / "out").glob("*.wav")
    with AudioFile(str(wav)) as f:
        audio = f.read(f.frames)
    assert audio.shape == (2, 22050) and np.isfinite(audio).all()


def test_an_unavailable_device_is_one_line(tiny_models, tmp_path, capsys):
    source = write_wav(tmp_path / "clip.wav", tone(0.5), 44100)
    code = main(["vamp", str(source), "-o", str(tmp_path / "out"), "--model", str(tiny_models), "--device", "tpu9"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: --device tpu9")


def run_vampbridge(args, tmp_path):
    env = dict(os.environ, VAMPBRIDGE_DATA_DIR=str(tmp_path / "data"))
    return subprocess.run([str(VAMPBRIDGE) if VAMPBRIDGE.exists() else sys.executable, *([] if VAMPBRIDGE.exists()
                          else ["-m", "bridge.cli"]), *args], env=env, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


def test_the_installed_command_exits_non_zero_without_a_traceback(tiny_models, tmp_path):
    truncated = truncated_wav(tmp_path / "cut.wav")
    done = run_vampbridge(["vamp", str(truncated), "-o", str(tmp_path / "out"), "--model", str(tiny_models)],
                          tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    missing_model = run_vampbridge(["vamp", str(truncated), "-o", str(tmp_path / "out"),
                                    "--model", str(tmp_path / "nowhere")], tmp_path)
    assert missing_model.returncode == 2 and "Traceback" not in missing_model.stderr


def test_the_installed_command_runs_a_vamp_and_exits_zero(tiny_models, tmp_path):
    source = write_wav(tmp_path / "clip.wav", tone(0.5), 44100)
    done = run_vampbridge(["vamp", str(source), "-o", str(tmp_path / "out"), "-n", "1", "--steps", "2",
                           "--model", str(tiny_models)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "%" in done.stderr
    assert len(list((tmp_path / "out").glob("*.wav"))) == 1


@pytest.mark.parametrize("command, target", [("serve", "bridge.osc.server.serve"), ("gui", "gui.app.main")])
def test_serve_and_gui_pass_the_fine_tune_on(monkeypatch, command, target):
    """--finetune is a model option of every command; serve and gui once accepted and dropped it."""
    import importlib

    module_name, name = target.rsplit(".", 1)
    calls = []
    monkeypatch.setattr(importlib.import_module(module_name), name, lambda *a, **kw: calls.append(kw) or 0)
    assert main([command, "--finetune", "jazz", "--device", "cpu"]) == 0
    assert calls[0]["finetune"] == "jazz" and calls[0]["device"] == "cpu"
