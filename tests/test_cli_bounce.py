"""`vampbridge bounce`: files, folders and job lists; keeps going past failures; resumable."""

import json
import os
from pathlib import Path

from conftest import tone, write_wav

from bridge.cli import main

STEPS = ["--steps", "2", "--c2f-steps", "1"]


def test_bounce_takes_files_folders_and_job_lists_and_reports_failures(tiny_models, tmp_path, capsys):
    (tmp_path / "session" / "drums").mkdir(parents=True)
    write_wav(tmp_path / "loose.wav", tone(0.5), 44100)
    write_wav(tmp_path / "session" / "bass.wav", tone(0.5, freq_hz=110), 44100)
    write_wav(tmp_path / "session" / "drums" / "kick.wav", tone(0.5, freq_hz=60), 48000)  # found recursively
    (tmp_path / "session" / "notes.txt").write_text("not audio, not picked up")
    (tmp_path / "broken.wav").write_text("not audio either")
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"jobs": [{"source_path": "loose.wav", "start_s": 0.1, "length_s": 0.3, "seed": 5}]}))
    out = tmp_path / "out"
    code = main(["bounce", str(tmp_path / "loose.wav"), str(tmp_path / "broken.wav"), str(tmp_path / "session"),
                 str(jobs), "-o", str(out), "-n", "1", "--seed", "1", "--model", str(tiny_models), *STEPS])
    captured = capsys.readouterr()
    assert code == 1  # one input failed, the others were done
    names = sorted(p.name.split("_s")[0] for p in out.glob("*.wav"))
    assert names == ["bass", "kick", "loose", "loose"]
    assert "error: " in captured.err and "broken.wav" in captured.err
    assert "[2/5] broken.wav" not in captured.err  # the bar is only drawn for inputs that start
    assert "%" in captured.err and "[5/5] loose.wav" in captured.err  # progress bars
    summary = captured.out[captured.out.index("input"):]
    assert summary.count(" ok ") == 4 and summary.count("FAILED") == 1
    assert "4 of 5 inputs done, 1 failed" in summary
    regions = sorted((r["input"]["start_s"], r["input"]["length_s"])
                     for r in (json.loads(p.read_text()) for p in out.glob("loose*.json")))
    assert regions == [(0.0, None), (0.1, 0.3)]


def test_a_second_bounce_keeps_finished_variations_untouched(tiny_models, tmp_path, capsys):
    write_wav(tmp_path / "a.wav", tone(0.5), 44100)
    argv = ["bounce", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "-n", "2", "--seed", "3",
            "--model", str(tiny_models), *STEPS]
    assert main(argv) == 0
    files = sorted((tmp_path / "out").glob("a_*"))
    assert len(files) == 4
    before = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert "0 new, 2 kept" in capsys.readouterr().out
    # one variation lost: only it is made again
    lost = next(p for p in files if p.suffix == ".wav")
    os.remove(lost)
    assert main(argv) == 0
    assert "1 new, 1 kept" in capsys.readouterr().out
    assert Path(lost).is_file()


def test_a_bad_job_list_is_one_line_and_nothing_runs(tiny_models, tmp_path, capsys):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"start_s": 1}]))
    code = main(["bounce", str(jobs), "-o", str(tmp_path / "out"), "--model", str(tiny_models)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "entry 0 needs a source_path" in err
    assert not (tmp_path / "out").exists()
