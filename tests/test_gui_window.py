"""The companion window with its embedded service: jobs on tiny weights, cancel, Reaper's "open in
editor" over OSC, takes sent back to Reaper, files dropped on the window, recipes saved and loaded
(and a variation's recipe used again), settings kept."""

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl  # noqa: E402
from PyQt6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from bridge.engine.prompts import MaskRecipe, preset  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.mask_grid import build_recipe_mask  # noqa: E402
from gui.settings import Settings  # noqa: E402

from conftest import tone, write_wav  # noqa: E402

JOB_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("clips") / "short.wav", tone(0.5), 44100)


@pytest.fixture
def window(qtbot, tmp_path, engine):
    w = MainWindow(engine, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    w.sampling_panel.output_dir.setText(str(tmp_path / "renders"))
    w.sampling_panel.set_sampling({"sampling_steps": 2, "c2f_sampling_steps": 1})
    w.sampling_panel.variations.setValue(1)
    yield w
    w.close()
    w.deleteLater()  # deleted by the event loop now, not by the garbage collector at random


def open_clip(qtbot, window, path):
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.open_file(path)


def test_job_on_tiny_weights_shows_its_variation_and_which_tokens_changed(qtbot, window, short_clip):
    open_clip(qtbot, window, short_clip)
    window.mask_model.clear()
    window.mask_model.fill(5, 20, 0, 14, 1)  # a painted mask: every variation uses exactly it
    job_id = window.vamp()
    assert job_id in window.jobs_panel.rows
    qtbot.waitUntil(lambda: len(window.variations_panel.variations()) == 1, timeout=JOB_TIMEOUT_MS)
    variation = window.variations_panel.variations()[0]
    assert variation.job_id == job_id and variation.take_name.startswith("vamp 1")
    recipe = json.loads(open(variation.recipe_path).read())
    assert recipe["mask"]["grid_rle"] is not None
    qtbot.waitUntil(lambda: window.jobs_panel.rows[job_id].state == "done", timeout=10000)
    assert window.jobs_panel.rows[job_id].bar.value() == 1000
    window.variations_panel.changes.setChecked(True)  # the token view of the selected variation
    qtbot.waitUntil(lambda: window.grid.overlay is not None, timeout=10000)
    with np.load(Path(variation.recipe_path).parent / recipe["tokens"]) as tokens:
        changed = (tokens["codes"][0] != tokens["original"][0]).astype(np.uint8)
    np.testing.assert_array_equal(window.grid.overlay, changed)
    assert changed.sum() > 0
    assert not (changed & (1 - window.mask_model.cells)).any()  # only painted cells can change


def test_cancel_stops_the_running_job_and_the_queued_one(qtbot, window, short_clip):
    open_clip(qtbot, window, short_clip)
    window.sampling_panel.set_sampling({"sampling_steps": 1000})  # long enough to still be running
    running, queued = window.vamp(), window.vamp()
    qtbot.waitUntil(lambda: window.jobs_panel.rows[running].state == "running", timeout=JOB_TIMEOUT_MS)
    window.jobs_panel.rows[queued].cancel.click()
    window.jobs_panel.rows[running].cancel.click()
    qtbot.waitUntil(lambda: window.jobs_panel.rows[running].state == "cancelled"
                    and window.jobs_panel.rows[queued].state == "cancelled", timeout=JOB_TIMEOUT_MS)
    assert not window.jobs_panel.rows[running].cancel.isEnabled()
    assert not window.jobs_panel.rows[running].resume.isHidden()  # the service resumes cancelled jobs


def test_open_in_editor_over_osc_loads_the_region_and_remembers_the_item(qtbot, window, tmp_path):
    from bridge.osc.client import OscClient

    source = write_wav(tmp_path / "song.wav", tone(3.0, channels=2), 44100)
    with OscClient(port=window.bridge.osc_port, name="reaper") as reaper:
        with qtbot.waitSignal(window.clip_loaded, timeout=20000) as loaded:
            rid = reaper.request("open", "reaper:test.rpp", str(source), 1.0, 1.5, 1.0, 0, 0, "{ITEM-GUID}",
                                 "{TAKE-GUID}")
            assert reaper.wait_for("opened", rid, timeout_s=5).id == rid
    clip = loaded.args[0]
    assert (clip.start_s, clip.item_guid, clip.take_guid) == (1.0, "{ITEM-GUID}", "{TAKE-GUID}")
    assert clip.source_audio.shape == (2, int(1.5 * 44100))
    assert window.clip is clip and window.variations_panel._send_allowed


@pytest.mark.parametrize("token", ["", "studio-b"])
def test_send_to_reaper_sends_a_take_per_chosen_variation_with_the_token(qtbot, window, tmp_path, short_clip,
                                                                         token):
    """A stand-in for Reaper's Listener script (test_gui_takes.FakeListener) answers ping and
    /vampbridge/take. The Listener drops requests without Reaper's token, the service's token."""
    from gui.variations_panel import Variation
    from test_gui_takes import FakeListener

    if token:  # a companion with a token set (without a running service, read from its settings)
        window = MainWindow(None, Settings(tmp_path / "with-token.ini"))
        qtbot.addWidget(window)
        window.settings.set("osc/token", token)
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.open_file(short_clip, item_guid="{ITEM}")
    with FakeListener() as listener:
        window.settings.set("reaper/listener_port", listener.port)
        takes = [Variation("job", k, 10 + k, f"/tmp/v{k}.wav", f"/tmp/v{k}.json", f"vamp {k + 1} custom s{10 + k}",
                           "{ITEM}") for k in range(2)]
        with qtbot.waitSignal(window.takes_sent, timeout=10000) as sent:
            window.send_to_reaper(takes)
    assert [o.ok for o in sent.args[0]] == [True, True]
    assert [r[0] for r in listener.received] == ["/vampbridge/ping"] + ["/vampbridge/take"] * 2
    from bridge.secret import read_secret  # no token set: the per-user secret, as the Listener reads it
    expected_token = token or read_secret()
    assert expected_token
    assert listener.received[2][1][2:] == (expected_token, "{ITEM}", "/tmp/v1.wav", "/tmp/v1.json", "vamp 2 custom s11")


def drop_files(widget, *paths):
    """Drag local files over `widget` and drop them, as a file manager does: a QDragEnterEvent,
    then a QDropEvent, through QApplication (which hands them up to the widget accepting drops)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = widget.rect().center()
    enter = QDragEnterEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return enter, drop


def test_dropping_a_wav_on_the_window_loads_it(qtbot, window, tmp_path):
    dropped = write_wav(tmp_path / "dropped loop.wav", tone(0.75, freq_hz=330.0), 44100)
    with qtbot.waitSignal(window.clip_loaded, timeout=20000) as loaded:
        enter, drop = drop_files(window.grid, dropped)  # over the token grid, a child of the window
    assert enter.isAccepted() and drop.isAccepted()
    clip = loaded.args[0]
    assert window.clip is clip and clip.path == str(dropped)
    assert clip.source_audio.shape == (1, int(0.75 * 44100))
    assert window.windowTitle() == "VampBridge — dropped loop.wav"


def test_dropping_a_file_that_is_not_audio_shows_a_notice_in_the_window(qtbot, window, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio\n")
    with qtbot.waitSignal(window.notice_shown, timeout=10000) as shown:
        drop_files(window.grid, notes)
    text, level = shown.args
    assert level == "error" and "Could not open notes.txt" in text and "Choose a WAV" in text
    assert window.notice.label.text() == text and not window.notice.isHidden()
    assert window.clip is None  # nothing half-loaded; pytest-qt fails the test on any slot exception


def test_use_recipe_restores_the_variations_mask_sampling_and_seed(qtbot, window, short_clip):
    open_clip(qtbot, window, short_clip)
    window.recipe_panel.live.setChecked(False)
    window.recipe_panel.preset_box.setCurrentText("rhythm")
    window.recipe_panel.w["periodic_prompt"].setValue(5)
    window.recipe_panel.w["dropout"].setValue(0.1)
    window.recipe_panel.blocks.setText("0.1-0.3")
    window.sampling_panel.set_sampling({"sampling_steps": 3, "c2f_sampling_steps": 1, "temperature": 0.9,
                                        "top_p": 0.8})
    window.sampling_panel.seed.setValue(2024)
    window.sampling_panel.variations.setValue(2)
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.generate_mask()
    window.vamp()
    qtbot.waitUntil(lambda: len(window.variations_panel.variations()) == 2, timeout=JOB_TIMEOUT_MS)
    second = next(v for v in window.variations_panel.variations() if v.index == 1)
    recipe = json.loads(Path(second.recipe_path).read_text())

    # Move every field away from the recipe, then use it again.
    window.recipe_panel.set_recipe(preset("subtle"))
    window.sampling_panel.set_sampling({"sampling_steps": 40, "c2f_sampling_steps": 5, "temperature": 1.3})
    window.sampling_panel.seed.setValue(7)
    window.variations_panel.select(second)
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.variations_panel.use_recipe.click()

    assert window.recipe_panel.recipe().to_json() == recipe["mask"]
    assert recipe["mask"]["periodic_prompt"] == 5 and recipe["mask"]["blocks_s"] == [[0.1, 0.3]]
    assert window.sampling_panel.seed.value() == recipe["seed"] == 2025  # variation 2's own seed
    sampling = window.sampling_panel.sampling()
    assert sampling == {key: recipe["sampling"][key] for key in sampling}
    assert (sampling["sampling_steps"], sampling["c2f_sampling_steps"], sampling["top_p"]) == (3, 1, 0.8)
    # The grid shows the mask that variation drew: the recipe built with its seed.
    expected = build_recipe_mask(MaskRecipe.from_json(recipe["mask"]), window.clip.n_frames, recipe["seed"],
                                 window.clip.engine_audio)
    np.testing.assert_array_equal(window.mask_model.cells, expected)
    with np.load(Path(second.recipe_path).parent / recipe["tokens"]) as tokens:
        engine_masked = (tokens["masked"][0] == 1024).astype(np.uint8)
    # The engine regenerated only cells the grid shows (it may keep a coarse chunk's edge frames).
    assert engine_masked.sum() > 0 and not (engine_masked & (1 - window.mask_model.cells)).any()


def test_saved_recipe_loads_back_identically(qtbot, window, short_clip, tmp_path):
    open_clip(qtbot, window, short_clip)
    window.recipe_panel.live.setChecked(False)
    window.recipe_panel.preset_box.setCurrentText("creative")
    window.recipe_panel.w["prefix_s"].setValue(0.1)
    window.sampling_panel.set_sampling({"temperature": 0.8, "top_p": 0.9, "sampling_steps": 12})
    window.sampling_panel.fx.setCurrentText("glue")
    window.sampling_panel.seed.setValue(4321)
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.generate_mask()
    path = tmp_path / "recipe.json"
    window.save_recipe(path)
    saved = json.loads(path.read_text())
    assert MaskRecipe.from_json(saved["mask"]) == MaskRecipe(**{**preset("creative").to_json(), "prefix_s": 0.1})
    cells = window.mask_model.cells.copy()

    other = MainWindow(None, Settings(tmp_path / "other.ini"))
    qtbot.addWidget(other)
    open_clip(qtbot, other, short_clip)
    with qtbot.waitSignal(other.mask_generated, timeout=20000):
        other.load_recipe(path)
    assert other.current_settings().to_json() == saved
    np.testing.assert_array_equal(other.mask_model.cells, cells)


def test_painted_mask_round_trips_as_grid_rle(qtbot, window, short_clip, tmp_path):
    open_clip(qtbot, window, short_clip)
    window.mask_model.invert()
    window.mask_model.fill(3, 9, 2, 6, 1)
    path = tmp_path / "painted.json"
    window.save_recipe(path)
    assert "grid_rle" in json.loads(path.read_text())["mask"]
    painted = window.mask_model.cells.copy()
    window.mask_model.clear()
    with qtbot.waitSignal(window.mask_generated, timeout=5000):
        window.load_recipe(path)
    np.testing.assert_array_equal(window.mask_model.cells, painted)


def test_bad_file_shows_what_to_do_instead_of_a_traceback(qtbot, window, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    with qtbot.waitSignal(window.notice_shown, timeout=10000) as shown:
        window.open_file(broken)
    assert "Could not open broken.wav" in shown.args[0] and window.notice.isVisible() is not None


def test_settings_persist_between_sessions(qtbot, tmp_path):
    settings_path = tmp_path / "companion.ini"
    first = MainWindow(None, Settings(settings_path))
    qtbot.addWidget(first)
    first.sampling_panel.variations.setValue(5)
    first.sampling_panel.seed.setValue(999)
    first.brush_size.setValue(11)
    first.set_tool("rectangle")
    first.close()
    second = MainWindow(None, Settings(settings_path))
    qtbot.addWidget(second)
    assert (second.sampling_panel.variations.value(), second.sampling_panel.seed.value()) == (5, 999)
    assert (second.grid.brush_radius_px, second.grid.tool) == (11, "rectangle")


def test_playback_degrades_gracefully_without_audio(qtbot, window):
    if window.player.available:
        pytest.skip("this machine can play audio")
    assert not window.variations_panel.play.isEnabled()
    assert window.player.reason
    window.player.play("/nonexistent.wav")  # a no-op, not an exception
    assert Qt  # keep the import used
