"""The token grid and mask painter: mouse drags paint exactly the cells under them, every edit
undoes and redoes, and every generator builds exactly the engine's mask."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
from PyQt6.QtCore import QPoint, Qt  # noqa: E402

from bridge.audio import read_region  # noqa: E402
from bridge.engine.prompts import PRESETS, MaskRecipe, preset  # noqa: E402
from gui.mask_grid import TOOL_ERASER, TOOL_RECT, MaskGridWidget, MaskModel  # noqa: E402
from gui.time_view import TimeView  # noqa: E402

from conftest import tone, write_wav  # noqa: E402

N_FRAMES = 100


@pytest.fixture
def grid(qtbot):
    """A 100-frame grid at 4 px per frame, starting empty (everything kept)."""
    model = MaskModel()
    view = TimeView()
    widget = MaskGridWidget(model, view)
    widget.resize(MaskGridWidget.LEFT_GUTTER + 400, 240)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    model.reset(N_FRAMES, np.zeros((14, N_FRAMES), dtype=np.uint8))
    view.reset(N_FRAMES)
    widget.brush_radius_px = 0
    return widget


def drag(qtbot, widget, points, button=Qt.MouseButton.LeftButton):
    qtbot.mousePress(widget, button, pos=points[0])
    for p in points[1:]:
        qtbot.mouseMove(widget, p)
    qtbot.mouseRelease(widget, button, pos=points[-1])


def expected_brush_cells(widget, a: QPoint, b: QPoint):
    """The cells a straight horizontal drag covers, from the widget's own geometry: every pixel
    column between the two points, widened by the brush radius, on the row under the pointer."""
    c = widget.codebook_at_y(a.y())
    r = widget.brush_radius_px
    lo = math.floor(widget.frame_at_x(min(a.x(), b.x()) - r))
    hi = math.floor(widget.frame_at_x(max(a.x(), b.x()) + r))
    cells = np.zeros((14, widget.model.n_frames), dtype=np.uint8)
    cells[c, max(0, lo):hi + 1] = 1
    return cells


def test_brush_drag_paints_exactly_the_cells_under_the_pointer(qtbot, grid):
    a, b = grid.cell_centre(10, 2), grid.cell_centre(30, 2)
    drag(qtbot, grid, [a, QPoint((a.x() + b.x()) // 2, a.y()), b])
    np.testing.assert_array_equal(grid.model.cells, expected_brush_cells(grid, a, b))
    assert grid.model.cells[2, 10:31].all() and grid.model.cells.sum() == 21


def test_fast_drag_leaves_no_gaps_and_brush_radius_widens_it(qtbot, grid):
    grid.brush_radius_px = 6
    a, b = grid.cell_centre(20, 9), grid.cell_centre(70, 9)
    drag(qtbot, grid, [a, b])  # one jump of 200 px
    np.testing.assert_array_equal(grid.model.cells, expected_brush_cells(grid, a, b))


def test_vertical_drag_crosses_the_coarse_fine_gap(qtbot, grid):
    drag(qtbot, grid, [grid.cell_centre(40, 1), grid.cell_centre(40, 8)])
    expected = np.zeros((14, N_FRAMES), dtype=np.uint8)
    expected[1:9, 40] = 1
    np.testing.assert_array_equal(grid.model.cells, expected)


def test_eraser_and_right_drag_keep_tokens(qtbot, grid):
    grid.model.reset(N_FRAMES)  # all regenerate
    grid.tool = TOOL_ERASER
    drag(qtbot, grid, [grid.cell_centre(5, 0), grid.cell_centre(9, 0)])
    grid.tool = "brush"
    drag(qtbot, grid, [grid.cell_centre(50, 13), grid.cell_centre(52, 13)], Qt.MouseButton.RightButton)
    kept = np.argwhere(grid.model.cells == 0)
    assert sorted(map(tuple, kept)) == [(0, t) for t in range(5, 10)] + [(13, t) for t in range(50, 53)]


def test_rectangle_covers_a_time_range_and_a_codebook_range(qtbot, grid):
    grid.tool = TOOL_RECT
    drag(qtbot, grid, [grid.cell_centre(60, 11), grid.cell_centre(45, 6), grid.cell_centre(35, 3)])
    expected = np.zeros((14, N_FRAMES), dtype=np.uint8)
    expected[3:12, 35:61] = 1
    np.testing.assert_array_equal(grid.model.cells, expected)


def test_every_edit_undoes_and_redoes(qtbot, grid):
    model = grid.model
    states = [model.cells.copy()]
    drag(qtbot, grid, [grid.cell_centre(10, 2), grid.cell_centre(20, 2)])
    states.append(model.cells.copy())
    model.fill(50, 60, 0, 4, 1)
    states.append(model.cells.copy())
    model.invert()
    states.append(model.cells.copy())
    model.clear()
    states.append(model.cells.copy())
    assert model.undo_stack.count() == 4
    for state in reversed(states[:-1]):
        model.undo_stack.undo()
        np.testing.assert_array_equal(model.cells, state)
    for state in states[1:]:
        model.undo_stack.redo()
        np.testing.assert_array_equal(model.cells, state)


def test_painting_turns_a_recipe_mask_into_a_painted_one_and_undo_restores_the_recipe(qtbot, grid):
    recipe = preset("subtle")
    cells = recipe.build((1, 14, N_FRAMES), torch.Generator().manual_seed(3))[0].numpy()
    grid.model.replace(cells, recipe, "Generate")
    drag(qtbot, grid, [grid.cell_centre(1, 1), grid.cell_centre(2, 1)])
    painted = grid.model.to_recipe()
    assert grid.model.recipe is None and painted.grid_rle is not None
    np.testing.assert_array_equal(painted.build((1, 14, N_FRAMES))[0].numpy(), grid.model.cells)
    grid.model.undo_stack.undo()
    assert grid.model.to_recipe() is recipe


def test_zoomed_out_ten_minute_grid_paints_whole_pixels(qtbot, grid):
    """At ~34 000 frames on 400 px one pixel covers ~86 frames; a click paints every frame under it."""
    n = 34_453  # 10 minutes
    grid.model.reset(n, np.zeros((14, n), dtype=np.uint8))
    grid.time_view.reset(n)
    grid.brush_radius_px = 2
    p = QPoint(grid.data_left + 123, int(grid.row_top(5) + 3))
    drag(qtbot, grid, [p])
    lo = math.floor(grid.frame_at_x(p.x() - 2))
    hi = math.floor(grid.frame_at_x(p.x() + 2))
    expected = np.zeros((14, n), dtype=np.uint8)
    expected[5, lo:hi + 1] = 1
    np.testing.assert_array_equal(grid.model.cells, expected)
    assert hi - lo > 300


# --- generators: the window's mask equals the engine's for every recipe and preset -------------

GENERATORS = {
    "random ratio": dict(rand_mask_intensity=0.35, periodic_prompt=0),
    "periodic P and width": dict(periodic_prompt=5, periodic_prompt_width=3),
    "periodic fixed offset": dict(periodic_prompt=6, periodic_offset=2),
    "prefix and suffix": dict(prefix_s=0.3, suffix_s=0.2, periodic_prompt=0),
    "block": dict(blocks_s=[[0.2, 0.5], [0.8, 1.1]], periodic_prompt=0),
    "codebook depth": dict(upper_codebook_mask=6, keep_lowest=1),
    "onsets": dict(onset_mask_width=2, periodic_prompt=0),
    "beats": dict(beat_after_s=0.05, beat_before_s=0.02, periodic_prompt=0),
    "strided": dict(strided=4, strided_offset=1, periodic_prompt=0),
    "dropout": dict(dropout=0.3),
    "compression": dict(compression=2),
}


@pytest.fixture(scope="module")
def groove(tmp_path_factory):
    """1.5 s of decaying tones at 48 kHz stereo: onsets and beats to find, a rate to convert."""
    path = tmp_path_factory.mktemp("groove") / "groove.wav"
    return write_wav(path, tone(1.5, sample_rate=48000, channels=2, freq_hz=330), 48000)


@pytest.fixture
def editor(qtbot, tmp_path, groove):
    from gui.main_window import MainWindow
    from gui.settings import Settings

    window = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.open_file(groove)
    yield window
    window.close()
    window.deleteLater()  # deleted by the event loop now, not by the garbage collector at random


def engine_mask(tiny_interface, recipe, clip, seed):
    """What the pipeline builds for variation 1: its audio path and its call, with the real Interface."""
    audio, rate = read_region(clip.path, clip.start_s, clip.length_s)
    engine_audio = tiny_interface.preprocess_audio(audio, rate)[0]
    shape = (1, 14, clip.n_frames)
    mask = tiny_interface.build_mask_from_recipe(recipe, shape, torch.Generator().manual_seed(seed), engine_audio)
    return mask[0].cpu().numpy()


def set_fields(panel, values):
    """Type the values into the generator form, as a person would."""
    base = preset("balanced")
    for name, widget in panel.w.items():
        value = values.get(name, getattr(base, name))
        widget.setValue(-1 if value is None else value)
    panel.blocks.setText(", ".join(f"{a}-{b}" for a, b in values.get("blocks_s", [])))
    panel.compression_on.setChecked(values.get("compression") is not None)
    if values.get("compression") is not None:
        panel.compression.setValue(values["compression"])


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_builds_the_engines_mask(qtbot, editor, tiny_interface, name):
    editor.recipe_panel.live.setChecked(False)
    set_fields(editor.recipe_panel, GENERATORS[name])
    editor.sampling_panel.seed.setValue(1234)
    with qtbot.waitSignal(editor.mask_generated, timeout=20000):
        editor.recipe_panel.generate_button.click()
    recipe = MaskRecipe(**{**preset("balanced").to_json(), **GENERATORS[name]})
    np.testing.assert_array_equal(editor.mask_model.cells, engine_mask(tiny_interface, recipe, editor.clip, 1234))
    assert editor.mask_model.to_recipe().to_json() == recipe.to_json()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_builds_the_engines_mask(qtbot, editor, tiny_interface, name):
    editor.recipe_panel.live.setChecked(False)
    editor.sampling_panel.seed.setValue(77)
    editor.recipe_panel.preset_box.setCurrentText(name)
    with qtbot.waitSignal(editor.mask_generated, timeout=20000):
        editor.recipe_panel.generate_button.click()
    np.testing.assert_array_equal(editor.mask_model.cells, engine_mask(tiny_interface, preset(name), editor.clip, 77))
    assert editor.mask_model.recipe.to_json() == preset(name).to_json()


def test_readout_follows_the_mask(qtbot, editor):
    editor.mask_model.clear()
    assert "Regenerate 0.0%" in editor.readout.text()
    editor.mask_model.fill(0, editor.clip.n_frames, 0, 7, 1)
    assert "Regenerate 50.0%" in editor.readout.text() and "painted" in editor.readout.text()
