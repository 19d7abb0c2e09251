"""The time selection (issue 14, beyond, and defect 9's looped playback): a right drag on the
waveform selects the stretch to regenerate in context, sent as the request's `regen_start_s` /
`regen_length_s` in source-file seconds (common `options` contract), and the Loop button loops it."""

import pytest

pytest.importorskip("pytestqt")
from PyQt6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from gui.clip import FRAMES_PER_SECOND  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.playback import loop_jump_ms  # noqa: E402
from gui.sampling_panel import REQUEST_FIELDS  # noqa: E402
from gui.settings import Settings  # noqa: E402

from conftest import tone, write_wav  # noqa: E402


@pytest.fixture
def editor(qtbot, tmp_path):
    w = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.mask_generated, timeout=20000):
        w.open_file(write_wav(tmp_path / "song.wav", tone(4.0), 44100), 2.0, 2.0)  # a region from 2 s
    w.resize(1280, 720)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()
    w.deleteLater()


def x_of_seconds(editor, seconds):
    """A viewport x for clip seconds, from the waveform plot's own mapping."""
    vb = editor.clip_view.wave_plot.getViewBox()
    scene = vb.mapViewToScene(QPointF(seconds * FRAMES_PER_SECOND, 0.0))
    return editor.clip_view.graphics.mapFromScene(scene)


def test_a_right_drag_on_the_waveform_selects_the_part_to_regenerate(qtbot, editor):
    view = editor.clip_view.graphics.viewport()
    a, b = x_of_seconds(editor, 0.5), x_of_seconds(editor, 1.25)
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=a)
    for k in range(1, 11):
        qtbot.mouseMove(view, QPoint(a.x() + (b.x() - a.x()) * k // 10, a.y()))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=b)
    QApplication.processEvents()
    selection = editor.time_view.selection
    assert selection is not None
    start_s, end_s = selection[0] / FRAMES_PER_SECOND, selection[1] / FRAMES_PER_SECOND
    assert abs(start_s - 0.5) < 0.05 and abs(end_s - 1.25) < 0.05
    options = editor.time_options()  # source-file seconds: the region starts at 2 s
    assert abs(options["regen_start_s"] - (2.0 + start_s)) < 1e-6
    assert abs(options["regen_length_s"] - (end_s - start_s)) < 1e-6
    assert editor.sampling_panel.selection_label.text() == f"selection {start_s:.2f}–{end_s:.2f} s"
    for name in ("regen_start_s", "regen_length_s"):  # the request carries it where the engine takes it
        if name in REQUEST_FIELDS:
            assert getattr(editor.build_request(), name) == options[name]
    editor.sampling_panel.clear_selection.click()
    assert editor.time_view.selection is None and "regen_start_s" not in editor.time_options()
    assert editor.sampling_panel.selection_label.text() == "whole clip"


def test_loop_plays_the_selection_over_and_over(qtbot, editor):
    editor.time_view.set_selection(0.5 * FRAMES_PER_SECOND, 1.5 * FRAMES_PER_SECOND)
    editor.variations_panel.loop.setChecked(True)
    assert editor.player.loop and editor.player.loop_range_s == pytest.approx((0.5, 1.5))
    editor.time_view.set_selection(None)
    assert editor.player.loop and editor.player.loop_range_s is None  # the whole file, then
    editor.variations_panel.loop.setChecked(False)
    assert not editor.player.loop


def test_a_selection_loop_jumps_back_at_its_end():
    assert loop_jump_ms(1_400, 0.0, (0.5, 1.5)) is None
    assert loop_jump_ms(1_500, 0.0, (0.5, 1.5)) == 500
    assert loop_jump_ms(3_600, 2.0, (0.5, 1.5)) == 2_500  # the original: the region starts at 2 s
    assert loop_jump_ms(9_999, 0.0, None) is None


def test_the_selected_variation_shows_under_the_clip_with_where_it_changed(qtbot, editor, tmp_path):
    """A "variation" that differs from the original only in 0.5-1.0 s of the region: the change
    view is high there and near zero elsewhere."""
    import numpy as np

    from bridge.audio import read_region
    from gui.variations_panel import Variation

    clip = editor.clip
    audio, rate = read_region(clip.path, clip.start_s, clip.length_s)
    changed = audio.copy()
    a, b = int(0.5 * rate), int(1.0 * rate)
    changed[:, a:b] = np.random.default_rng(0).normal(0, 0.3, (audio.shape[0], b - a)).astype(np.float32)
    path = write_wav(tmp_path / "variation.wav", changed, rate)
    variation = Variation("job", 0, 1, str(path), str(tmp_path / "variation.json"), "vamp 1 custom s1", "",
                          clip.path, clip.start_s, clip.length_s, 1.0)
    with qtbot.waitSignal(editor.variation_shown, timeout=20000) as shown:
        editor.variations_panel.add(variation)
    view = shown.args[0]
    assert editor.clip_view.variation is view and len(view.change_db) == clip.n_frames
    inside = view.change_db[int(0.6 * FRAMES_PER_SECOND):int(0.9 * FRAMES_PER_SECOND)]
    outside = np.concatenate([view.change_db[:int(0.4 * FRAMES_PER_SECOND)],
                              view.change_db[int(1.1 * FRAMES_PER_SECOND):]])
    assert inside.min() > 5.0 and outside.max() < 1.0
    assert editor.clip_view.variation_plot in editor.clip_view.graphics.ci.items
    editor.variations_panel.tree.setCurrentItem(None)
    assert editor.clip_view.variation is None


def click_track(path, bpm=120.0, seconds=4.0, rate=44100):
    """Short decaying clicks on every beat: a clear tempo for the detector."""
    import numpy as np

    audio = np.zeros((1, int(seconds * rate)), dtype=np.float32)
    period = int(round(60.0 / bpm * rate))
    click = (np.exp(-np.arange(2000) / 200.0) * np.sin(np.arange(2000) * 0.3)).astype(np.float32) * 0.8
    for start in range(0, audio.shape[1] - 2000, period):
        audio[0, start:start + 2000] += click
    return write_wav(path, audio, rate)


@pytest.fixture
def clicks(qtbot, tmp_path):
    w = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.beats_found, timeout=30000) as found:
        w.open_file(click_track(tmp_path / "clicks.wav"))
    qtbot.waitUntil(lambda: w.mask_model.n_frames == w.clip.n_frames, timeout=20000)
    w.resize(1280, 720)
    w.show()
    qtbot.waitExposed(w)
    yield w, found.args[0]
    w.close()
    w.deleteLater()


def test_the_ruler_shows_bars_from_the_detected_beats(qtbot, clicks):
    import numpy as np

    window, beats = clicks
    period = np.median(np.diff(beats))
    assert abs(period - 0.5 * FRAMES_PER_SECOND) < 1.0  # 120 BPM: a beat every 28.7 frames
    axis = window.clip_view.bar_axis
    levels = axis.tickValues(0.0, float(window.clip.n_frames), 700.0)
    bars = levels[0][1]
    assert list(axis.tickStrings(bars, 1.0, 1.0))[:2] == ["1", "2"]
    assert bars[1] - bars[0] == pytest.approx(4 * period, abs=1.0)  # 4 beats to a bar
    assert "bars" in axis.labelText


def test_with_snap_the_rectangle_and_the_selection_land_on_beats(qtbot, clicks):
    import numpy as np

    window, beats = clicks
    window.mask_model.clear()
    window.snap_action.trigger()
    assert window.time_view.snap
    window.set_tool("rectangle")
    grid = window.grid
    a, b = grid.cell_centre(beats[1] + 3, 0), grid.cell_centre(beats[3] - 4, 3)
    qtbot.mousePress(grid, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(grid, QPoint((a.x() + b.x()) // 2, b.y()))
    qtbot.mouseMove(grid, b)
    qtbot.mouseRelease(grid, Qt.MouseButton.LeftButton, pos=b)
    cols = np.flatnonzero(window.mask_model.cells[0])
    assert (cols.min(), cols.max() + 1) == (beats[1], beats[3])
    window.time_view.set_selection(beats[2] - 5, beats[4] + 4)
    assert window.time_view.selection == (float(beats[2]), float(beats[4]))


def test_a_clip_from_reaper_shows_reapers_bars_and_beats_not_the_detectors(qtbot, tmp_path):
    """`open` with the tempo map's beats: 3/4 at 80 BPM over a 120 BPM click track. The ruler,
    snapping and the beat-driven recipe follow Reaper's beats; the detector is not consulted."""
    import numpy as np

    from bridge.osc.protocol import OpenRequest

    beats_s = [round(k * 0.75, 6) for k in range(5)]  # 80 BPM
    downbeats_s = [0.0, 2.25]  # 3/4: a bar every 3 beats
    w = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    found = []
    w.beats_found.connect(lambda beats: found.append(list(beats)))
    path = click_track(tmp_path / "clicks.wav")
    with qtbot.waitSignal(w.mask_generated, timeout=20000):
        w._on_open_request(OpenRequest(client="reaper:song", source_path=str(path), start_s=0.0, length_s=4.0,
                                       playrate=1.0, sample_rate=44100, channels=1, item_guid="{i}",
                                       take_guid="{t}", beats_s=tuple(beats_s), downbeats_s=tuple(downbeats_s)))
    expected = [b * FRAMES_PER_SECOND for b in beats_s]
    assert list(w.time_view.beats_frames) == pytest.approx(expected)
    assert found == [pytest.approx(expected)]
    axis = w.clip_view.bar_axis
    bars, minor = axis.tickValues(0.0, float(w.clip.n_frames), 700.0)
    assert bars[1] == pytest.approx([d * FRAMES_PER_SECOND for d in downbeats_s])  # Reaper's bars, not 4/4
    assert list(axis.tickStrings(bars[1], 1.0, 1.0)) == ["1", "2"]
    assert minor[1] == pytest.approx([b * FRAMES_PER_SECOND for b in (0.75, 1.5, 3.0)])
    assert "Reaper" in axis.labelText
    w.time_view.snap = True
    assert w.time_view.snap_frame(0.8 * FRAMES_PER_SECOND) == pytest.approx(0.75 * FRAMES_PER_SECOND)
    # A beat-driven recipe carries Reaper's beats to the engine (the grid and the job alike).
    with qtbot.waitSignal(w.mask_generated, timeout=20000):
        w.recipe_panel.preset_box.setCurrentText("rhythm")
        w.generate_mask()
    recipe = w.mask_model.to_recipe()
    assert recipe.beat_after_s > 0 and recipe.beats_source == "given"
    assert recipe.beats_s == beats_s and recipe.downbeats_s == downbeats_s
    qtbot.wait(300)
    assert len(found) == 1 and np.allclose(w.time_view.beats_frames, expected)  # no detector result came after
    w.close()
    w.deleteLater()
