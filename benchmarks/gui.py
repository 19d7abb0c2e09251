"""Companion responsiveness: does the UI thread stay free while the engine works, and does the
token grid stay fluid on a 10-minute clip?

    python benchmarks/gui.py [--sizes tiny small] [--steps 12] [--variations 4]

For each weight size (random weights, made on the fly) it opens the real window with its embedded
service, starts a job from the window and, while the job runs, measures how late a 10 ms timer on
the UI thread fires: that lateness is how long a click or a repaint would wait. The bar: every
tick within 50 ms. It also times how long the first variation takes to appear in the list (the
CPU makes them one at a time) against the same job run as one batch. Then the grid on a 10-minute
clip (34 453 frames): a full repaint, one brush move (model update + dirty-rect repaint), a
generator, an invert and its undo.

Prints a table and writes benchmarks/results/gui.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BAR_MS = 50.0
TICK_MS = 10
TEN_MINUTES_FRAMES = 34_453  # ceil(600 s * 44100 / 768)


class LatencyProbe:
    """A precise 10 ms timer on the UI thread; records how late each tick came."""

    def __init__(self):
        from PyQt6.QtCore import Qt, QTimer

        self.late_ms: list[float] = []
        self._last = None
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def start(self):
        self.late_ms.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self):
        self.timer.stop()

    def _tick(self):
        now = time.perf_counter()
        self.late_ms.append(max(0.0, (now - self._last) * 1000 - TICK_MS))
        self._last = now

    def summary(self) -> dict:
        xs = sorted(self.late_ms) or [0.0]
        return {"ticks": len(self.late_ms), "p50_ms": round(statistics.median(xs), 2),
                "p99_ms": round(xs[min(len(xs) - 1, int(0.99 * len(xs)))], 2), "max_ms": round(xs[-1], 2),
                "over_bar": sum(1 for x in xs if x > BAR_MS)}


def pump(app, condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark: no {what} within {timeout_s} s")
        app.processEvents()
        time.sleep(0.001)


def bench_job(app, size: str, scratch: Path, clip_path: Path, steps: int, variations: int) -> dict:
    from bridge.engine import make_random
    from gui.app import _preimport
    from gui.engine_bridge import EngineBridge
    from gui.main_window import MainWindow
    from gui.settings import Settings

    models = make_random(scratch / size, size=size, seed=0)
    _preimport()  # as `vampbridge gui` does before its window appears
    probe = LatencyProbe()
    probe.start()  # the machine's own noise: nothing else runs in this process
    pump(app, lambda: len(probe.late_ms) >= 300, 60, "idle ticks")
    probe.stop()
    idle = probe.summary()
    # The window is built and painted first: its first paint is the UI's own work, not a wait on
    # the engine. Then the service starts and loads the models on its worker thread.
    bridge = EngineBridge(models, "cpu", osc_port=0, store_path=scratch / f"jobs-{size}.sqlite3")
    window = MainWindow(bridge, Settings(scratch / f"{size}.ini"))
    window.show()
    deadline = time.monotonic() + 1.0
    pump(app, lambda: time.monotonic() > deadline, 5, "first paint")
    ready = []
    bridge.ready.connect(ready.append)
    try:
        t = time.perf_counter()
        probe.start()  # the models load on the service's worker thread: the UI must not notice
        bridge.start()
        pump(app, lambda: ready, 300, "model load")
        load_s = time.perf_counter() - t
        probe.stop()
        during_load = probe.summary()

        window.open_file(clip_path)
        pump(app, lambda: window.clip is not None, 60, "clip")
        sp = window.sampling_panel
        sp.set_sampling({"sampling_steps": steps, "c2f_sampling_steps": 2})
        sp.variations.setValue(variations)
        sp.output_dir.setText(str(scratch / f"renders-{size}"))
        pump(app, lambda: window.mask_model.n_frames == window.clip.n_frames, 30, "mask")
        probe.start()
        first_result_s, job_s, state = run_job(app, window)
        probe.stop()
        during_job = probe.summary()
        # The same job as one batch (what the pipeline does on an accelerator), for comparison.
        bridge.pipeline.variations_per_batch = variations
        batch_first_s, batch_job_s, _ = run_job(app, window)
        bridge.pipeline.variations_per_batch = None
    finally:
        window.bridge.close()
        window.close()
    return {"size": size, "idle": idle, "model_load_s": round(load_s, 2), "during_load": during_load,
            "job_s": round(job_s, 2), "job_state": state, "during_job": during_job,
            "first_result_s": round(first_result_s, 2),
            "one_batch": {"first_result_s": round(batch_first_s, 2), "job_s": round(batch_job_s, 2)},
            "clip_s": window.clip.duration_s, "steps": steps, "variations": variations}


def run_job(app, window) -> tuple[float, float, str]:
    """Vamp from the window: (seconds to the first variation listed, to the job's end, its state)."""
    before = len(window.variations_panel.variations())
    t = time.perf_counter()
    job_id = window.vamp()
    if job_id is None:
        raise RuntimeError(f"benchmark: the job did not start: {window.notice.label.text()}")
    pump(app, lambda: len(window.variations_panel.variations()) > before, 1800, "first result")
    first_s = time.perf_counter() - t
    pump(app, lambda: window.jobs_panel.rows[job_id].state not in ("queued", "running"), 1800, "job end")
    return first_s, time.perf_counter() - t, window.jobs_panel.rows[job_id].state


def bench_grid(app) -> dict:
    """The grid on a 10-minute clip, without loading audio (the grid only needs T)."""
    import numpy as np
    from PyQt6.QtCore import QPoint, Qt
    from PyQt6.QtTest import QTest

    from bridge.engine.prompts import preset
    from gui.mask_grid import MaskGridWidget, MaskModel, build_recipe_mask
    from gui.time_view import TimeView

    n = TEN_MINUTES_FRAMES
    model, view = MaskModel(), TimeView()
    widget = MaskGridWidget(model, view)
    widget.resize(1400, 320)
    widget.show()
    app.processEvents()
    model.reset(n)
    view.reset(n)
    app.processEvents()

    def timed(fn, repeat=20):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            app.processEvents()
            times.append((time.perf_counter() - t) * 1000)
        return round(statistics.median(times), 2), round(max(times), 2)

    results = {"frames": n}
    results["full_repaint_ms"] = timed(widget.repaint)
    widget.brush_radius_px = 4
    y = int(widget.row_top(6) + 4)
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, pos=QPoint(200, y))
    xs = iter(range(201, 1300))
    results["brush_move_ms"] = timed(lambda: (QTest.mouseMove(widget, QPoint(next(xs), y)), widget.repaint()), 200)
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=QPoint(1300, y))
    view.set_range(1000, 1400)  # zoomed in: 400 frames on screen
    app.processEvents()
    results["zoomed_repaint_ms"] = timed(widget.repaint)
    view.fit()
    results["generate_balanced_ms"] = timed(lambda: model.replace(build_recipe_mask(preset("balanced"), n, 1),
                                                                  preset("balanced"), "g"), 5)
    results["invert_ms"] = timed(model.invert, 10)
    results["undo_ms"] = timed(model.undo_stack.undo, 10)
    results["cells_regenerated"] = round(float(model.cells.mean()), 4)
    widget.close()
    assert np.isfinite(results["cells_regenerated"])
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--variations", type=int, default=4)
    p.add_argument("--clip", default=str(REPO / "assets" / "demo.wav"))
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for the engine (0: the companion's default)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gui.json"))
    args = p.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="vampbridge-bench-gui-"))
    os.environ["VAMPBRIDGE_DATA_DIR"] = str(scratch / "data")
    from gui.app import create_application

    app = create_application()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    jobs = [bench_job(app, size, scratch, Path(args.clip), args.steps, args.variations) for size in args.sizes]
    grid = bench_grid(app)

    print(f"\nUI thread lateness (10 ms timer; bar: every tick within {BAR_MS:.0f} ms), clip {Path(args.clip).name}")
    print(f"{'weights':<8} {'phase':<12} {'secs':>7} {'ticks':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'>50ms':>6}")
    for r in jobs:
        for phase, secs, s in (("idle", 3.0, r["idle"]), ("model load", r["model_load_s"], r["during_load"]),
                               (f"job ({r['job_state']})", r["job_s"], r["during_job"])):
            print(f"{r['size']:<8} {phase:<12} {secs:>7.2f} {s['ticks']:>6} {s['p50_ms']:>7.2f} "
                  f"{s['p99_ms']:>7.2f} {s['max_ms']:>7.2f} {s['over_bar']:>6}")
    print(f"\nTime to the first variation, {jobs[0]['variations']} variations, {jobs[0]['steps']} steps "
          "(one at a time on the CPU vs one batch)")
    print(f"{'weights':<8} {'first s':>8} {'job s':>7} {'batch first s':>14} {'batch job s':>12}")
    for r in jobs:
        print(f"{r['size']:<8} {r['first_result_s']:>8.2f} {r['job_s']:>7.2f} {r['one_batch']['first_result_s']:>14.2f} "
              f"{r['one_batch']['job_s']:>12.2f}")
    print(f"\nToken grid, 10-minute clip ({grid['frames']} frames, 1400 px wide): median / max ms")
    for key in ("full_repaint_ms", "zoomed_repaint_ms", "brush_move_ms", "generate_balanced_ms", "invert_ms",
                "undo_ms"):
        median, worst = grid[key]
        print(f"  {key:<22} {median:>8.2f} {worst:>8.2f}")

    passed = all(r["during_job"]["max_ms"] <= BAR_MS and r["during_load"]["max_ms"] <= BAR_MS for r in jobs)
    out = {"benchmark": "gui", "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "bar_ms": BAR_MS,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
           "jobs": jobs, "grid": grid, "event_loop_within_bar": passed}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nevent loop within {BAR_MS:.0f} ms throughout: {'yes' if passed else 'NO'}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
