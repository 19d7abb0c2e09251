"""The seams study: one long clip vamped with the reference's independent chunks and with
overlapping windows (bridge/engine/windows.py), and how much each boundary shows.

    vampbridge study seams INPUT -o DIR [--length S] [--seed N] [--steps N]

Seam measure (also used by benchmarks/windows.py): the log-mel step between neighbouring mel
frames, d[f] = mean over 80 bands of |M[:, f] - M[:, f - 1]| in dB (`metrics.log_mel_db`). At a
boundary it is the largest d within `NEAR_S` of the boundary; elsewhere, the median d of all frames
farther than `NEAR_S` from every boundary. A boundary's seam ratio is the first over the second:
about 1 means the boundary looks like any other moment of the clip, well above 1 a break. On a
steady tone or a click track, the source's own d is small and even, so breaks stand out.

Output folder: chunked.wav, windowed.wav (the pipeline's variation files), seams.json (every
number), report.html (a table per boundary).
"""

import html as html_text
import json
import math
from pathlib import Path

import numpy as np

from ..audio import read_region
from ..request import VampRequest, check_output_dir
from .metrics import MEL_HOP, SAMPLE_RATE, log_mel_db

NEAR_S = 0.05  # a boundary's neighbourhood: the mel frames whose steps it may cause
SEAMS_KIND = "vampbridge.study.seams"


def mel_steps_db(audio, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """d[f] for f >= 1 (d[0] = 0): the mean absolute log-mel change from frame f - 1 to f, in dB."""
    mel = log_mel_db(np.asarray(audio, dtype=np.float64).reshape(-1), sample_rate)
    steps = np.zeros(mel.shape[1])
    steps[1:] = np.abs(np.diff(mel, axis=1)).mean(axis=0)
    return steps


def seam_ratios(audio, boundaries_s, sample_rate: int = SAMPLE_RATE) -> dict:
    """{"boundaries": [{"time_s", "step_db", "ratio"}], "elsewhere_db"} of mono audio (see the module)."""
    steps = mel_steps_db(audio, sample_rate)
    times = np.arange(len(steps)) * MEL_HOP / sample_rate
    near_any = np.zeros(len(steps), bool)
    rows = []
    for b in boundaries_s:
        near = np.abs(times - b) <= NEAR_S
        near_any |= near
        rows.append({"time_s": float(b), "step_db": float(steps[near].max()) if near.any() else math.nan})
    rest = steps[1:][~near_any[1:]]
    elsewhere = float(np.median(rest)) if len(rest) else math.nan
    for row in rows:
        row["ratio"] = row["step_db"] / elsewhere if elsewhere > 0 else math.nan
    return {"boundaries": rows, "elsewhere_db": elsewhere}


def chunk_boundaries_s(n_frames: int, chunk_s: float, frame_rate_hz: float) -> list[float]:
    """Where the reference's chunks of `chunk_s` meet, in seconds."""
    chunk = math.ceil(chunk_s * frame_rate_hz)
    return [k * chunk / frame_rate_hz for k in range(1, math.ceil(n_frames / chunk))]


def window_boundaries_s(interface, settings, stage: str, n_frames: int) -> list[float]:
    """Where each window after the first starts committing, in seconds."""
    from ..engine.windows import plan_windows

    model = interface.coarse if stage == "coarse" else interface.c2f
    window, context, lookahead = settings.frames(stage, interface.s2t, model.chunk_size_s)
    plan = plan_windows(n_frames, window, context, lookahead)
    return [interface.t2s(w.start + w.commit_from) for w in plan[1:]]


def run_seams(pipeline, input_path, output_dir, *, seed: int = 0, steps: int | None = None,
              c2f_steps: int | None = None, start_s: float = 0.0, length_s: float | None = None,
              log=print) -> dict:
    root = check_output_dir(str(Path(output_dir).expanduser().resolve()))
    sampling = {} if steps is None else {"sampling_steps": int(steps)}
    if c2f_steps is not None:
        sampling["c2f_sampling_steps"] = int(c2f_steps)
    interface = pipeline.interface
    windows = pipeline.windows
    if windows is None:
        raise ValueError("the seams study compares windows with chunks; give it a windowed pipeline")
    outputs = {}
    for name, setting in (("chunked", None), ("windowed", windows)):
        pipeline.windows = setting
        try:
            request = VampRequest(source_path=str(input_path), start_s=start_s, length_s=length_s, seed=seed,
                                  n_variations=1, sampling=sampling, stereo="mono", output_dir=str(root / name))
            (result,) = pipeline.run(request)
        finally:
            pipeline.windows = windows
        audio, rate = read_region(result.audio_path)
        outputs[name] = (result.audio_path, interface.preprocess_audio(audio, rate)[0])
        log(f"{name}: {result.audio_path}")
    n_frames = interface.s2t(len(outputs["chunked"][1]) / SAMPLE_RATE)
    frame_rate = SAMPLE_RATE / interface.codec.hop_length
    chunk_b = {"coarse": chunk_boundaries_s(n_frames, interface.coarse.chunk_size_s, frame_rate),
               "c2f": chunk_boundaries_s(n_frames, interface.c2f.chunk_size_s, frame_rate)}
    window_b = {stage: window_boundaries_s(interface, windows, stage, n_frames) for stage in ("coarse", "c2f")}
    source, rate = read_region(input_path, start_s, length_s)
    source = interface.preprocess_audio(source, rate)[0]
    report = {"kind": SEAMS_KIND, "input": str(Path(input_path).resolve()), "seed": seed,
              "windows": windows.to_dict(), "near_s": NEAR_S, "results": {}}
    for stage in ("coarse", "c2f"):
        report["results"][stage] = {
            "chunked_at_chunk_boundaries": seam_ratios(outputs["chunked"][1], chunk_b[stage]),
            "windowed_at_window_boundaries": seam_ratios(outputs["windowed"][1], window_b[stage]),
            "windowed_at_chunk_boundaries": seam_ratios(outputs["windowed"][1], chunk_b[stage]),
            "source_at_chunk_boundaries": seam_ratios(source, chunk_b[stage]),
        }
    report["files"] = {name: Path(path).resolve().relative_to(root).as_posix() for name, (path, _) in outputs.items()}
    (root / "seams.json").write_text(json.dumps(report, indent=2))
    (root / "report.html").write_text(_html(report))
    log(f"report: {root / 'report.html'}")
    return report


def _html(report: dict) -> str:
    def mean_ratio(result):
        ratios = [b["ratio"] for b in result["boundaries"] if math.isfinite(b["ratio"])]
        return f"{np.mean(ratios):.2f}" if ratios else "-"

    parts = ["<!doctype html><meta charset='utf-8'><title>Seams</title>",
             f"<h1>Seams: {html_text.escape(Path(report['input']).name)}</h1>",
             "<p>Seam ratio: the largest log-mel step near a boundary over the median step elsewhere "
             "(about 1: no seam). Files: " + ", ".join(
                 f"<a href='{html_text.escape(p)}'>{html_text.escape(n)}</a>" for n, p in report["files"].items())
             + "</p>"]
    for stage, results in report["results"].items():
        parts.append(f"<h2>{stage} boundaries</h2><table border='1' cellpadding='4'>"
                     "<tr><th>what</th><th>mean ratio</th><th>per boundary (time s: ratio)</th></tr>")
        for name, result in results.items():
            cells = ", ".join(f"{b['time_s']:.2f}: {b['ratio']:.2f}" for b in result["boundaries"])
            parts.append(f"<tr><td>{html_text.escape(name)}</td><td>{mean_ratio(result)}</td>"
                         f"<td>{html_text.escape(cells)}</td></tr>")
        parts.append("</table>")
    return "\n".join(parts) + "\n"
