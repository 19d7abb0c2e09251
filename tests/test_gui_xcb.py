"""The real window on a real X server (issue 14, defect 14): the offscreen tests cannot notice a
missing Qt xcb library, so this one starts Xvfb, opens the companion with Qt's xcb platform
plugin, grabs the X screen and checks that the window is there and drawn (not blank)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r'''
import json, sys, time
from pathlib import Path
from gui.app import create_application
from gui.main_window import MainWindow
from gui.settings import Settings

app = create_application()
window = MainWindow(None, Settings(Path(sys.argv[1]) / "companion.ini"))
window.resize(1280, 720)
window.move(0, 0)
window.show()
loaded = []
window.mask_generated.connect(lambda: loaded.append(1))
window.open_file(sys.argv[2])
deadline = time.monotonic() + 60
while not loaded and time.monotonic() < deadline:
    app.processEvents()
    time.sleep(0.01)
for _ in range(50):
    app.processEvents()
    time.sleep(0.01)
shot = app.primaryScreen().grabWindow(0)  # the X server's framebuffer, not the widget's own paint
shot.save(sys.argv[3])
print(json.dumps({"platform": app.platformName(), "loaded": bool(loaded),
                  "window": [window.x(), window.y(), window.width(), window.height()]}))
window.close()
'''


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (apt-get install xvfb)")
def test_the_real_window_opens_under_xvfb_and_is_drawn(tmp_path):
    from PyQt6.QtGui import QImage

    script = tmp_path / "open_window.py"
    script.write_text(SCRIPT)
    shot = tmp_path / "screen.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(REPO), "VAMPBRIDGE_DATA_DIR": str(tmp_path)}
    env.pop("DISPLAY", None)
    done = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x760x24", sys.executable, str(script),
                           str(tmp_path), str(REPO / "assets" / "demo.wav"), str(shot)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"the companion did not start on xcb:\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["platform"] == "xcb" and report["loaded"]
    image = QImage(str(shot)).convertToFormat(QImage.Format.Format_RGB32)
    assert (image.width(), image.height()) == (1280, 760)
    pixels = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), dtype=np.uint32)
    pixels = pixels.reshape(image.height(), image.bytesPerLine() // 4)[:, :image.width()] & 0xFFFFFF
    x, y, w, h = report["window"]
    window = pixels[y:y + h, x:x + w]
    assert len(np.unique(window)) > 200  # waveform, spectrogram, grid, text: not one flat colour
    background = np.bincount(np.unique(window, return_inverse=True)[1].ravel()).max() / window.size
    assert background < 0.6  # no colour fills most of the window
