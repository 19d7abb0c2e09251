"""Make the companion's screenshots for the docs: `python -m gui.screenshots [OUT_DIR]`.

Runs the real window on random `tiny` weights (no download) with the bundled demo groove:
opens it as if Reaper asked ("open in editor"), builds the rhythm preset, paints a block by
hand, vamps three variations, shows one variation's tokens, and grabs

- `companion_1280x720.png` and `companion_1920x1080.png`: the whole window at a laptop's and a
  desktop's size, with the clip, a painted mask, a time selection, finished variations grouped
  per clip and one variation's changed tokens shown;
- `companion_grid.png`: the token grid zoomed in, cells and the coarse/fine split readable.

Works offscreen (QT_QPA_PLATFORM=offscreen, the default here) or under Xvfb
(`xvfb-run -s "-screen 0 1920x1080x24" python -m gui.screenshots`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "assets" / "demo.wav"


def _wait(app, condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"screenshots: gave up waiting for {what} after {timeout_s} s")
        app.processEvents()
        time.sleep(0.01)


def main(out_dir=None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="vampbridge-shots-"))
    os.environ["VAMPBRIDGE_DATA_DIR"] = str(scratch / "data")  # keep the user's settings out of it
    out_dir = Path(out_dir or REPO / "docs" / "images")
    out_dir.mkdir(parents=True, exist_ok=True)

    from bridge.engine import make_random
    from bridge.osc.protocol import OpenRequest

    from .app import create_application, create_window
    from .settings import Settings

    models = make_random(scratch / "tiny", size="tiny", seed=0)
    app = create_application()
    window = create_window(None, models, "cpu", settings=Settings(scratch / "companion.ini"), osc_port=0)
    window.resize(1920, 1080)
    window.show()
    sp = window.sampling_panel
    sp.set_sampling({"sampling_steps": 8, "c2f_sampling_steps": 1})
    sp.variations.setValue(3)
    sp.seed.setValue(2024)
    sp.fx.setCurrentText("glue")
    sp.output_dir.setText(str(scratch / "renders"))

    # As if Reaper's "VampBridge: Open in editor" sent /vampbridge/open for bars 1-2 of an item.
    window._on_open_request(OpenRequest(client="reaper:demo.rpp", source_path=str(DEMO), start_s=0.0,
                                        length_s=4.0, playrate=1.0, sample_rate=None, channels=None,
                                        item_guid="{6F1C2A4E-DEMO}", take_guid="{TAKE-DEMO}"))
    _wait(app, lambda: window.clip is not None, 60, "the clip")
    generated = []
    window.mask_generated.connect(lambda: generated.append(1))
    window.recipe_panel.live.setChecked(False)
    window.recipe_panel.preset_box.setCurrentText("rhythm")
    window.generate_mask()
    _wait(app, lambda: generated, 60, "the rhythm mask")
    # A hand-painted touch: let the fine codebooks of bar 2's second half be regenerated freely,
    # and keep the first beat untouched.
    n = window.clip.n_frames
    window.mask_model.fill(int(n * 0.75), n, 4, 14, 1, "Rectangle: regenerate")
    window.mask_model.fill(0, int(n * 0.06), 0, 14, 0, "Rectangle: keep")

    window.time_view.set_selection(n * 0.5, n * 0.75)  # bar 2's first half: "regenerate in context"
    window.vamp()
    _wait(app, lambda: len(window.variations_panel.variations()) >= 3, 600, "three variations")
    _wait(app, lambda: not window.jobs_panel.active_jobs(), 60, "the job to finish")
    panel = window.variations_panel
    panel.select(panel.variations()[1])
    panel.changes.setChecked(True)
    _wait(app, lambda: window.grid.overlay is not None, 60, "the variation's tokens")
    window.notice.dismiss()
    shots = []
    for width, height in ((1280, 720), (1920, 1080)):
        window.resize(width, height)
        window.statusBar().showMessage("Opened demo.wav · 4.00 s from Reaper — vamped 3 variations")
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        shot = out_dir / f"companion_{width}x{height}.png"
        window.grab().save(str(shot))
        shots.append(shot)

    window.time_view.set_range(0, 90)
    for _ in range(10):
        app.processEvents()
        time.sleep(0.02)
    editor = window.editor_split
    grid_png = out_dir / "companion_grid.png"
    editor.grab().save(str(grid_png))
    print(f"wrote {', '.join(map(str, shots))} and {grid_png}")
    window.bridge.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
