"""`vampbridge study seams` and its seam measure (bridge/studies/seams.py)."""

import json

import numpy as np
from conftest import write_wav

from bridge.studies.seams import seam_ratios

SR = 44100


def test_the_seam_measure_finds_a_break_and_not_a_steady_tone():
    t = np.arange(4 * SR) / SR
    steady = 0.3 * np.sin(2 * np.pi * 440 * t)
    broken = steady.copy()
    broken[2 * SR:] = 0.3 * np.sin(2 * np.pi * 620 * t[2 * SR:])  # the tone jumps at 2 s
    calm = seam_ratios(steady, [1.0, 2.0, 3.0])
    assert all(b["ratio"] < 3 for b in calm["boundaries"])
    found = seam_ratios(broken, [1.0, 2.0, 3.0])
    ratios = [b["ratio"] for b in found["boundaries"]]
    assert ratios[1] > 10 * max(ratios[0], ratios[2])


def test_the_seams_study_reports_every_boundary_of_chunks_and_windows(tiny_models, tmp_path):
    from bridge.cli import main

    t = np.arange(int(7 * SR)) / SR
    clicks = np.zeros_like(t)
    clicks[::SR // 4] = 0.8  # a click track at 240 BPM
    source = write_wav(tmp_path / "clicks.wav", (clicks + 0.1 * np.sin(2 * np.pi * 220 * t))[None], SR)
    code = main(["study", "seams", str(source), "-o", str(tmp_path / "study"), "--model", str(tiny_models),
                 "--device", "cpu", "--steps", "2", "--c2f-steps", "1"])
    assert code == 0
    report = json.loads((tmp_path / "study" / "seams.json").read_text())
    c2f = report["results"]["c2f"]
    assert [round(b["time_s"], 2) for b in c2f["chunked_at_chunk_boundaries"]["boundaries"]] == [3.01, 6.03]
    assert len(c2f["windowed_at_window_boundaries"]["boundaries"]) >= 2
    for result in c2f.values():
        assert all(np.isfinite(b["ratio"]) for b in result["boundaries"])
    assert (tmp_path / "study" / report["files"]["chunked"]).is_file()
    assert "c2f boundaries" in (tmp_path / "study" / "report.html").read_text()
