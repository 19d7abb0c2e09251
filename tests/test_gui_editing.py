"""Editing as a musician does (issue 14, defects 4, 5, 11 and 13): a live generator edit over a
painted mask asks (replace or combine) and one undo restores both the painting and the fields;
the tool keys work from the start; Shift+drag keeps a box; quitting during a job asks; the
prefix label says which codebooks it keeps."""

import numpy as np
import pytest

pytest.importorskip("pytestqt")
from PyQt6.QtCore import QPoint, Qt  # noqa: E402
from PyQt6.QtWidgets import QApplication  # noqa: E402

from gui.main_window import MainWindow  # noqa: E402
from gui.mask_grid import TOOL_ERASER, TOOL_RECT, build_recipe_mask  # noqa: E402
from gui.settings import Settings  # noqa: E402

from conftest import tone, write_wav  # noqa: E402


@pytest.fixture
def editor(qtbot, tmp_path):
    w = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.mask_generated, timeout=20000):
        w.open_file(write_wav(tmp_path / "clip.wav", tone(1.5), 44100))
    with qtbot.waitSignal(w.mask_generated, timeout=20000):
        w.sampling_panel.seed.setValue(99)  # the grid shows variation 1's mask: rebuilt for this seed
    yield w
    w.close()
    w.deleteLater()


def paint_box(editor):
    """A hand-painted box over the generated mask (kept cells in the middle of the coarse rows)."""
    editor.mask_model.fill(10, 30, 0, 4, 0, "Rectangle: keep")
    return editor.mask_model.cells.copy()


def live_edit_periodic(qtbot, editor, value):
    field = editor.recipe_panel.w["periodic_prompt"]
    field.setFocus()
    field.setValue(value)  # as typing does: valueChanged, then the debounced live rebuild
    qtbot.waitUntil(lambda: editor.painting_prompt is not None, timeout=5000)


def test_live_edit_over_painting_asks_and_replace_then_one_undo_restores_painting_and_fields(qtbot, editor):
    editor.recipe_panel.live.setChecked(True)
    old_p = editor.recipe_panel.w["periodic_prompt"].value()
    painted = paint_box(editor)
    live_edit_periodic(qtbot, editor, old_p + 3)
    np.testing.assert_array_equal(editor.mask_model.cells, painted)  # nothing lost while it asks
    with qtbot.waitSignal(editor.mask_generated, timeout=5000):
        editor.painting_prompt_buttons["replace"].click()
    recipe = editor.recipe_panel.recipe()
    np.testing.assert_array_equal(editor.mask_model.cells,
                                  build_recipe_mask(recipe, editor.clip.n_frames, 99, editor.clip.engine_audio))
    # Ctrl+Z where the musician typed: the mask AND the field go back, in one step
    field = editor.recipe_panel.w["periodic_prompt"]
    qtbot.keyClick(field, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_array_equal(editor.mask_model.cells, painted)
    assert field.value() == old_p
    assert editor.mask_model.recipe is None  # painted again
    # and redo brings the replacement and its fields back
    qtbot.keyClick(field, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert field.value() == old_p + 3 and editor.mask_model.recipe == recipe


def test_combine_keeps_the_painted_cells_and_takes_the_generator_elsewhere(qtbot, editor):
    editor.recipe_panel.live.setChecked(True)
    painted = paint_box(editor)
    hand = np.zeros(painted.shape, dtype=bool)
    hand[0:4, 10:30] = True  # the box set by hand, every cell of it
    live_edit_periodic(qtbot, editor, editor.recipe_panel.w["periodic_prompt"].value() + 2)
    with qtbot.waitSignal(editor.mask_generated, timeout=5000):
        editor.painting_prompt_buttons["combine"].click()
    generated = build_recipe_mask(editor.recipe_panel.recipe(), editor.clip.n_frames, 99, editor.clip.engine_audio)
    np.testing.assert_array_equal(editor.mask_model.cells, np.where(hand, painted, generated))
    # the choice holds for the next edit of the same painting: no second question
    with qtbot.waitSignal(editor.mask_generated, timeout=5000):
        editor.recipe_panel.w["periodic_prompt"].setValue(editor.recipe_panel.w["periodic_prompt"].value() + 1)
    assert editor.painting_prompt is None
    generated = build_recipe_mask(editor.recipe_panel.recipe(), editor.clip.n_frames, 99, editor.clip.engine_audio)
    np.testing.assert_array_equal(editor.mask_model.cells, np.where(hand, painted, generated))


def test_keep_painting_puts_the_fields_back(qtbot, editor):
    editor.recipe_panel.live.setChecked(True)
    old_p = editor.recipe_panel.w["periodic_prompt"].value()
    painted = paint_box(editor)
    live_edit_periodic(qtbot, editor, old_p + 4)
    editor.painting_prompt_buttons["keep"].click()
    np.testing.assert_array_equal(editor.mask_model.cells, painted)
    assert editor.recipe_panel.w["periodic_prompt"].value() == old_p


def test_tool_keys_work_as_soon_as_the_window_opens(qtbot, tmp_path):
    w = MainWindow(None, Settings(tmp_path / "fresh.ini"))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    QApplication.processEvents()
    focused = QApplication.focusWidget() or w
    assert focused is not w.brush_size
    qtbot.keyClick(focused, Qt.Key.Key_E)
    assert w.grid.tool == TOOL_ERASER
    qtbot.keyClick(QApplication.focusWidget() or w, Qt.Key.Key_R)
    assert w.grid.tool == TOOL_RECT
    w.close()


def test_shift_drag_keeps_a_box_like_right_drag(qtbot, editor):
    editor.mask_model.replace(np.ones_like(editor.mask_model.cells), None, "all")
    editor.set_tool(TOOL_RECT)
    editor.resize(1280, 720)
    editor.show()
    qtbot.waitExposed(editor)
    editor.time_view.set_range(0, 40)
    grid = editor.grid
    a, b = grid.cell_centre(5, 1), grid.cell_centre(9, 2)
    qtbot.mousePress(grid, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, a)
    qtbot.mouseMove(grid, QPoint((a.x() + b.x()) // 2, b.y()))
    qtbot.mouseMove(grid, b)
    qtbot.mouseRelease(grid, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, b)
    cells = editor.mask_model.cells
    assert not cells[1:3, 5:10].any() and cells[0].all() and cells[3:].all()


def test_quitting_while_a_job_runs_asks_first(qtbot, editor):
    editor.show()
    qtbot.waitExposed(editor)
    editor.jobs_panel.add_job("gui-1", editor.clip.path, "gui", 3)  # queued: a job still to come
    assert editor.close() is False and editor.isVisible()
    qtbot.waitUntil(lambda: editor.quit_prompt is not None and editor.quit_prompt.isVisible(), timeout=3000)
    assert "1 job(s) are queued or running" in editor.quit_prompt.text()
    editor.quit_prompt_button.click()
    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=3000)


def test_prefix_label_names_the_codebooks_it_keeps_and_the_grid_agrees(qtbot, editor):
    panel = editor.recipe_panel
    panel.live.setChecked(False)
    panel.w["rand_mask_intensity"].setValue(1.0)
    panel.w["periodic_prompt"].setValue(0)
    panel.w["prefix_s"].setValue(0.5)
    panel.w["upper_codebook_mask"].setValue(3)
    assert panel.prefix_label.text() == "Keep codebooks 0–2 of start / end"
    with qtbot.waitSignal(editor.mask_generated, timeout=5000):
        panel.generate_button.click()
    prefix = editor.mask_model.cells[:, :int(0.5 * 44100 / 768)]
    assert not prefix[:3].any() and prefix[3:].all()  # 3-13 regenerated inside the "kept" prefix
    panel.w["upper_codebook_mask"].setValue(5)
    assert panel.prefix_label.text() == "Keep codebooks 0–4 of start / end"
