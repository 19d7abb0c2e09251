"""The token grid and its mask: the model (numpy, undoable) and the widget that paints it.

The mask is a (14, T) array of 0/1, 1 = regenerate, exactly what the engine's recipes build for
one batch row. `MaskModel` owns it, announces every change with the changed cells' bounding box
and records every edit on a `QUndoStack` as the before/after values of that box only, so undo
stays cheap on a 10-minute clip (~34 000 frames).

`MaskGridWidget` draws the grid from the array without Qt items per cell: each paint event turns
the columns it must redraw into a tiny (14, width) image, averaging the frames under a pixel when
zoomed out, and only the changed cells' rectangle is invalidated after an edit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PyQt6.QtCore import QObject, QPoint, QRect, QRectF, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPen, QUndoCommand, QUndoStack
from PyQt6.QtWidgets import QSizePolicy, QWidget

from bridge.engine.prompts import MaskRecipe, grid_to_rle

from .clip import FRAMES_PER_SECOND, N_CODEBOOKS, N_COARSE
from .time_view import TimeView

KEEP_RGB = np.array([0x23, 0x2a, 0x35], dtype=np.float32)
REGENERATE_RGB = np.array([0xf2, 0xa3, 0x3a], dtype=np.float32)
CHANGED_RGB = np.array([0x2f, 0xd0, 0xc0], dtype=np.float32)
UNDO_LIMIT = 100


# --- the model ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskState:
    """What an undo step restores besides the cells: the recipe that generated them (None once
    painted), which cells were set by hand (`hand`, (14, T) bool, None = none), and the generator
    fields shown in the Mask panel (`fields`)."""

    recipe: MaskRecipe | None = None
    hand: np.ndarray | None = None
    fields: MaskRecipe | None = None


class MaskModel(QObject):
    """The editable mask. `recipe` is the recipe that generated the current cells, or None once
    they were painted by hand (then the mask travels as a painted `grid_rle`)."""

    changed = pyqtSignal(int, int, int, int)  # t0, t1, c0, c1 (end-exclusive) of changed cells
    reset_done = pyqtSignal()
    hand_edited = pyqtSignal()  # a stroke, box, invert or clear (not a generator)
    fields_restored = pyqtSignal(object)  # MaskRecipe: undo/redo went back to these generator fields

    def __init__(self, parent=None):
        super().__init__(parent)
        self.cells = np.zeros((N_CODEBOOKS, 1), dtype=np.uint8)
        self.state = MaskState()
        self.seed = 0
        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(UNDO_LIMIT)
        self._stroke_before: np.ndarray | None = None
        self._stroke_box: list[int] | None = None

    @property
    def recipe(self) -> MaskRecipe | None:
        return self.state.recipe

    @property
    def n_frames(self) -> int:
        return self.cells.shape[1]

    def hand_edits(self) -> np.ndarray:
        """(14, T) bool: the cells set by hand (strokes, boxes; everything after invert or clear)."""
        hand = self.state.hand
        if hand is None or hand.shape != self.cells.shape:
            return np.zeros(self.cells.shape, dtype=bool)
        return hand

    def is_hand_painted(self) -> bool:
        """True when the cells hold painting a generator would throw away."""
        return self.state.recipe is None and bool(self.hand_edits().any())

    # -- whole-grid changes ------------------------------------------------------------------

    def reset(self, n_frames: int, cells: np.ndarray | None = None, recipe: MaskRecipe | None = None):
        """A new clip: a fresh grid and an empty undo history (edits of another clip can't apply)."""
        self.cells = np.ones((N_CODEBOOKS, n_frames), dtype=np.uint8) if cells is None else \
            np.ascontiguousarray(cells, dtype=np.uint8)
        self.state = MaskState(recipe, None, recipe)
        self.undo_stack.clear()
        self.reset_done.emit()
        self.changed.emit(0, self.n_frames, 0, N_CODEBOOKS)

    def replace(self, cells: np.ndarray, recipe: MaskRecipe | None, text: str, merge_id: int = -1,
                hand: np.ndarray | None = None, fields: MaskRecipe | None = None):
        """Undoable: set every cell (generators, invert, clear, loading a painted mask). `hand`:
        the cells set by hand afterwards (default: none for a recipe, every cell otherwise);
        `fields`: the generator fields that go with this step."""
        cells = np.ascontiguousarray(cells, dtype=np.uint8)
        if cells.shape != self.cells.shape:
            raise ValueError(f"mask is {cells.shape[0]} x {cells.shape[1]} but the clip's grid is "
                             f"{self.cells.shape[0]} x {self.cells.shape[1]}")
        if hand is None and recipe is None:
            hand = np.ones(cells.shape, dtype=bool)
        after = MaskState(recipe, hand, fields if fields is not None else (recipe or self.state.fields))
        self.undo_stack.push(CellsCommand(self, 0, self.n_frames, 0, N_CODEBOOKS, self.cells.copy(),
                                          cells, self.state, after, text, merge_id=merge_id))

    def invert(self):
        self.replace(1 - self.cells, None, "Invert mask")
        self.hand_edited.emit()

    def clear(self):
        self.replace(np.zeros_like(self.cells), None, "Clear mask (keep everything)")
        self.hand_edited.emit()

    def fill(self, t0: int, t1: int, c0: int, c1: int, value: int, text: str = "Rectangle"):
        """Undoable: frames [t0, t1) of codebooks [c0, c1) set to `value`."""
        t0, t1 = max(0, t0), min(self.n_frames, t1)
        c0, c1 = max(0, c0), min(N_CODEBOOKS, c1)
        if t1 <= t0 or c1 <= c0:
            return
        before = self.cells[c0:c1, t0:t1].copy()
        after = np.full_like(before, value)
        self.undo_stack.push(CellsCommand(self, t0, t1, c0, c1, before, after, self.state,
                                          self._painted(t0, t1, c0, c1, None), text))
        self.hand_edited.emit()

    def _painted(self, t0, t1, c0, c1, touched) -> MaskState:
        """The state after hand-setting the box (all of it, or the `touched` cells of it)."""
        hand = self.hand_edits().copy()
        hand[c0:c1, t0:t1] |= True if touched is None else touched
        return MaskState(None, hand, self.state.fields)

    # -- strokes: painted live, recorded as one undo step when the mouse is released ---------

    def begin_stroke(self):
        self._stroke_before = self.cells.copy()
        self._stroke_box = None

    def paint_spans(self, spans, value: int):
        """Set cells of (codebook, t0, t1) spans during a stroke; one `changed` for all of them."""
        box = None
        for c, t0, t1 in spans:
            t0, t1 = max(0, t0), min(self.n_frames, t1)
            if t1 <= t0 or not 0 <= c < N_CODEBOOKS:
                continue
            self.cells[c, t0:t1] = value
            box = [t0, t1, c, c + 1] if box is None else \
                [min(box[0], t0), max(box[1], t1), min(box[2], c), max(box[3], c + 1)]
        if box is None:
            return
        if self._stroke_box is not None:
            b = self._stroke_box
            self._stroke_box = [min(b[0], box[0]), max(b[1], box[1]), min(b[2], box[2]), max(b[3], box[3])]
        else:
            self._stroke_box = box
        self.changed.emit(*box)

    def end_stroke(self, text: str):
        before, box = self._stroke_before, self._stroke_box
        self._stroke_before = self._stroke_box = None
        if before is None or box is None:
            return
        t0, t1, c0, c1 = box
        old = before[c0:c1, t0:t1]
        new = self.cells[c0:c1, t0:t1].copy()
        if np.array_equal(old, new):
            return
        self.undo_stack.push(CellsCommand(self, t0, t1, c0, c1, old.copy(), new, self.state,
                                          self._painted(t0, t1, c0, c1, old != new), text, already_applied=True))
        self.hand_edited.emit()

    # -- used by the commands --------------------------------------------------------------

    def _write(self, t0, t1, c0, c1, values, state: MaskState, restoring: bool = False):
        self.cells[c0:c1, t0:t1] = values
        fields_changed = state.fields is not None and state.fields != self.state.fields
        self.state = state
        self.changed.emit(t0, t1, c0, c1)
        if restoring and fields_changed:
            self.fields_restored.emit(state.fields)

    # -- readouts and export ---------------------------------------------------------------

    def fraction_regenerated(self) -> float:
        return float(self.cells.mean())

    def group_fractions(self) -> tuple[float, float]:
        """(coarse, fine) fractions regenerated."""
        return float(self.cells[:N_COARSE].mean()), float(self.cells[N_COARSE:].mean())

    def to_recipe(self) -> MaskRecipe:
        """What a job should use: the generating recipe (each variation then draws its own random
        mask from its seed, like the command line), or the painted cells as `grid_rle`."""
        if self.recipe is not None:
            return self.recipe
        return MaskRecipe(grid_rle=[grid_to_rle(row) for row in self.cells])


class CellsCommand(QUndoCommand):
    """One edit: the before and after values of a box of cells, and the model's state."""

    def __init__(self, model: MaskModel, t0, t1, c0, c1, before, after, state_before: MaskState,
                 state_after: MaskState, text: str, already_applied: bool = False, merge_id: int = -1):
        super().__init__(text)
        self.model = model
        self.box = (t0, t1, c0, c1)
        self.before, self.after = before, after
        self.state_before, self.state_after = state_before, state_after
        self._skip_first_redo = already_applied
        self._first_redo = True
        self._merge_id = merge_id

    def id(self) -> int:  # noqa: A003 - Qt's name
        return self._merge_id

    def mergeWith(self, other) -> bool:  # noqa: N802 - Qt's name
        """Live re-generation while a recipe field is dragged collapses into one undo step."""
        if other.id() != self.id() or other.box != self.box:
            return False
        self.after, self.state_after = other.after, other.state_after
        self.setText(other.text())
        return True

    def redo(self):
        first, self._first_redo = self._first_redo, False
        if self._skip_first_redo:
            self._skip_first_redo = False
            self.model.state = self.state_after
            return
        self.model._write(*self.box, self.after, self.state_after, restoring=not first)

    def undo(self):
        self.model._write(*self.box, self.before, self.state_before, restoring=True)


def build_recipe_mask(recipe: MaskRecipe, n_frames: int, seed: int, engine_audio=None) -> np.ndarray:
    """The (14, T) mask the engine builds for the first variation (seed) of a job: the very call
    the pipeline makes, `recipe.build(shape, torch.Generator().manual_seed(seed), audio)`."""
    shape = (1, N_CODEBOOKS, n_frames)
    generator = torch.Generator().manual_seed(int(seed))
    audio = engine_audio if recipe.uses_audio else None
    return recipe.build(shape, generator, audio)[0].numpy().astype(np.uint8)


# --- the widget ---------------------------------------------------------------------------------

TOOL_BRUSH, TOOL_ERASER, TOOL_RECT = "brush", "eraser", "rectangle"


class MaskGridWidget(QWidget):
    """14 rows (coarse 0-3 on top, a gap, fine 4-13) by the visible frames of the clip."""

    LEFT_GUTTER = 64  # px of row labels; the clip view's plots reserve the same width
    MARGIN_Y = 4
    COARSE_GAP = 10

    hovered = pyqtSignal(str)

    def __init__(self, model: MaskModel, time_view: TimeView, parent=None):
        super().__init__(parent)
        self.model = model
        self.time_view = time_view
        self.tool = TOOL_BRUSH
        self.brush_radius_px = 3
        self.overlay: np.ndarray | None = None  # (14, T) 1 where a chosen variation regenerated
        self._cumsum: np.ndarray | None = None
        self._overlay_cumsum: np.ndarray | None = None
        self._drag_value: int | None = None
        self._last_pos: QPoint | None = None
        self._rect_anchor: tuple[int, int] | None = None
        self._rect_current: tuple[int, int] | None = None
        self.setMinimumHeight(130)  # 14 rows of 8 px: still paintable on a 720 px screen
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setToolTip("Paint the tokens to regenerate (orange) or keep (dark). Left drag: current tool; "
                        "right drag or Shift+drag: keep; wheel: zoom; Shift+wheel: scroll")
        model.changed.connect(self._on_cells_changed)
        model.reset_done.connect(self._on_reset)
        time_view.changed.connect(lambda *_: self.update())
        time_view.beats_changed.connect(self.update)

    # -- geometry (public: the tests compute expected cells from it) ---------------------------

    @property
    def data_left(self) -> int:
        return self.LEFT_GUTTER

    @property
    def data_width(self) -> int:
        return max(1, self.width() - self.LEFT_GUTTER)

    @property
    def row_height(self) -> float:
        return max(2.0, (self.height() - 2 * self.MARGIN_Y - self.COARSE_GAP) / N_CODEBOOKS)

    def frames_per_pixel(self) -> float:
        return self.time_view.visible_frames / self.data_width

    def row_top(self, codebook: int) -> float:
        gap = self.COARSE_GAP if codebook >= N_COARSE else 0
        return self.MARGIN_Y + codebook * self.row_height + gap

    def frame_at_x(self, x: float) -> float:
        return self.time_view.start_frame + (x - self.data_left) * self.frames_per_pixel()

    def x_of_frame(self, frame: float) -> float:
        return self.data_left + (frame - self.time_view.start_frame) / self.frames_per_pixel()

    def codebook_at_y(self, y: float, clamp: bool = False) -> int | None:
        for c in range(N_CODEBOOKS):
            if self.row_top(c) <= y < self.row_top(c) + self.row_height:
                return c
        if not clamp:
            return None
        centres = [self.row_top(c) + self.row_height / 2 for c in range(N_CODEBOOKS)]
        return int(np.argmin([abs(y - m) for m in centres]))

    def cell_at(self, pos, clamp: bool = False) -> tuple[int, int] | None:
        """(frame, codebook) under a widget position, or None outside the cells."""
        c = self.codebook_at_y(pos.y(), clamp)
        if c is None or (not clamp and pos.x() < self.data_left):
            return None
        t = int(math.floor(self.frame_at_x(max(pos.x(), self.data_left))))
        if not clamp and not 0 <= t < self.model.n_frames:
            return None
        return min(max(0, t), self.model.n_frames - 1), c

    def cell_centre(self, frame: int, codebook: int) -> QPoint:
        """A widget position inside the cell (its centre, or the middle of its pixel when zoomed out)."""
        x = self.x_of_frame(frame + 0.5)
        return QPoint(int(math.floor(x)), int(self.row_top(codebook) + self.row_height / 2))

    # -- change tracking ---------------------------------------------------------------------

    def _on_reset(self):
        self._cumsum = None
        self.overlay = None
        self._overlay_cumsum = None
        self.update()

    def _on_cells_changed(self, t0, t1, c0, c1):
        self._cumsum = None
        x0 = math.floor(self.x_of_frame(t0)) - 1
        x1 = math.ceil(self.x_of_frame(t1)) + 1
        y0 = math.floor(self.row_top(c0)) - 1
        y1 = math.ceil(self.row_top(c1 - 1) + self.row_height) + 1
        self.update(QRect(x0, y0, x1 - x0, y1 - y0))

    def set_overlay(self, overlay: np.ndarray | None):
        if overlay is not None and overlay.shape != self.model.cells.shape:
            overlay = None  # tokens of another clip: nothing sensible to show
        self.overlay = None if overlay is None else overlay.astype(np.uint8)
        self._overlay_cumsum = None
        self.update()

    # -- painting ----------------------------------------------------------------------------

    def _column_means(self, cells: np.ndarray, cumsum_attr: str, px0: int, px1: int) -> np.ndarray:
        """(14, px1 - px0) fraction of ones under each pixel column [px0, px1) of the data area."""
        i = np.arange(px0, px1, dtype=np.float64) - self.data_left
        fpp = self.frames_per_pixel()
        start = np.floor(self.time_view.start_frame + i * fpp).astype(np.int64)
        start = np.clip(start, 0, cells.shape[1] - 1)
        if fpp <= 1.0:
            return cells[:, start].astype(np.float32)
        end = np.floor(self.time_view.start_frame + (i + 1) * fpp).astype(np.int64)
        end = np.clip(np.maximum(end, start + 1), 1, cells.shape[1])
        cumsum = getattr(self, cumsum_attr)
        if cumsum is None:  # recomputed after a change: ~0.3 ms for 34 000 frames
            cumsum = np.zeros((cells.shape[0], cells.shape[1] + 1), dtype=np.int32)
            np.cumsum(cells, axis=1, out=cumsum[:, 1:])
            setattr(self, cumsum_attr, cumsum)
        return (cumsum[:, end] - cumsum[:, start]) / (end - start).astype(np.float32)

    def _column_image(self, px0: int, px1: int) -> QImage:
        """A (14 x width) RGB image of the columns [px0, px1): keep/regenerate blended by the share
        of regenerated frames under each pixel, tinted where the shown variation changed tokens."""
        means = self._column_means(self.model.cells, "_cumsum", px0, px1)[..., None]  # (14, w, 1)
        rgb = KEEP_RGB + (REGENERATE_RGB - KEEP_RGB) * means
        if self.overlay is not None:
            changed = self._column_means(self.overlay, "_overlay_cumsum", px0, px1)[..., None]
            rgb = rgb + (CHANGED_RGB - rgb) * (0.85 * changed)
        pixels = np.empty(rgb.shape[:2], dtype=np.uint32)
        rgb = rgb.astype(np.uint32)
        pixels[:] = 0xFF000000 | (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        image = QImage(pixels.data, pixels.shape[1], pixels.shape[0], pixels.strides[0],
                       QImage.Format.Format_RGB32)
        return image.copy()  # detach from the numpy buffer before it goes away

    def paintEvent(self, event):  # noqa: N802 - Qt's name
        painter = QPainter(self)
        dirty = event.rect()
        painter.fillRect(dirty, QColor("#161a20"))
        px0 = max(self.data_left, dirty.left())
        px1 = min(self.data_left + self.data_width, dirty.right() + 1)
        data_end = math.ceil(self.x_of_frame(self.model.n_frames))
        px1 = min(px1, max(px0, data_end))
        if px1 > px0:
            image = self._column_image(px0, px1)
            h = self.row_height
            for first, last in ((0, N_COARSE), (N_COARSE, N_CODEBOOKS)):
                target = QRectF(px0, self.row_top(first), px1 - px0, h * (last - first))
                painter.drawImage(target, image, QRectF(0, first, px1 - px0, last - first))
            self._draw_cell_lines(painter, px0, px1)
            self._draw_beats(painter, px0, px1)
        if dirty.left() < self.data_left:
            self._draw_labels(painter)
        self._draw_rubber_band(painter)
        painter.end()

    def _draw_cell_lines(self, painter: QPainter, px0: int, px1: int):
        painter.setPen(QPen(QColor(0, 0, 0, 110), 1))
        for c in range(1, N_CODEBOOKS):
            if c != N_COARSE:
                y = int(round(self.row_top(c)))
                painter.drawLine(px0, y, px1, y)
        px_per_frame = 1.0 / self.frames_per_pixel()
        if px_per_frame >= 6:  # frame boundaries only once cells are wide enough to aim at
            first = math.ceil(self.frame_at_x(px0))
            last = math.floor(self.frame_at_x(px1))
            for t in range(first, last + 1):
                x = int(round(self.x_of_frame(t)))
                painter.drawLine(x, int(self.row_top(0)), x, int(self.row_top(N_COARSE - 1) + self.row_height))
                painter.drawLine(x, int(self.row_top(N_COARSE)), x, int(self.row_top(N_CODEBOOKS - 1) + self.row_height))

    def _draw_beats(self, painter: QPainter, px0: int, px1: int):
        """The beats as thin lines over the cells, every bar's first beat brighter."""
        beats = self.time_view.beats_frames
        if len(beats) == 0:
            return
        first, last = self.frame_at_x(px0), self.frame_at_x(px1)
        lo, hi = np.searchsorted(beats, first), np.searchsorted(beats, last, side="right")
        px_per_beat = (self.x_of_frame(beats[-1]) - self.x_of_frame(beats[0])) / max(1, len(beats) - 1)
        bottom = int(self.row_top(N_CODEBOOKS - 1) + self.row_height)
        for i in range(lo, hi):
            bar = i % self.time_view.BEATS_PER_BAR == 0
            if not bar and px_per_beat < 6:  # beats closer than this are noise: bars only
                continue
            painter.setPen(QPen(QColor(255, 255, 255, 150 if bar else 60), 1))
            x = int(round(self.x_of_frame(beats[i])))
            painter.drawLine(x, int(self.row_top(0)), x, bottom)

    def _snapped(self, t_first: int, t_last: int) -> tuple[int, int]:
        """[start, end) frames of a box over frames t_first..t_last, snapped to the beats when on."""
        t0, t1 = min(t_first, t_last), max(t_first, t_last) + 1
        if not self.time_view.snap or len(self.time_view.beats_frames) == 0:
            return t0, t1
        s0, s1 = int(round(self.time_view.snap_frame(t0))), int(round(self.time_view.snap_frame(t1)))
        if s1 <= s0:  # inside one beat: that beat
            s0, s1 = self.time_view.beat_span(t0)
        return s0, s1

    def _draw_labels(self, painter: QPainter):
        painter.fillRect(0, 0, self.data_left, self.height(), QColor("#1b2027"))
        font = QFont(self.font())
        font.setPointSizeF(max(6.5, min(9.0, self.row_height * 0.55)))
        painter.setFont(font)
        painter.setPen(QColor("#8f9bab"))
        for c in range(N_CODEBOOKS):
            rect = QRectF(24, self.row_top(c), self.data_left - 28, self.row_height)
            painter.drawText(rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, str(c))
        painter.setPen(QColor("#c9d2de"))
        for (first, last), name in (((0, N_COARSE), "coarse"), ((N_COARSE, N_CODEBOOKS), "fine")):
            top, bottom = self.row_top(first), self.row_top(last - 1) + self.row_height
            painter.save()
            painter.translate(14, (top + bottom) / 2)
            painter.rotate(-90)
            painter.drawText(QRectF(-(bottom - top) / 2, -8, bottom - top, 16), Qt.AlignmentFlag.AlignCenter, name)
            painter.restore()
            painter.drawLine(20, int(top) + 1, 20, int(bottom) - 1)

    def _draw_rubber_band(self, painter: QPainter):
        if self._rect_anchor is None or self._rect_current is None:
            return
        (ta, ca), (tb, cb) = self._rect_anchor, self._rect_current
        t0, t1 = self._snapped(ta, tb)
        c0, c1 = min(ca, cb), max(ca, cb)
        rect = QRectF(self.x_of_frame(t0), self.row_top(c0), self.x_of_frame(t1) - self.x_of_frame(t0),
                      self.row_top(c1) + self.row_height - self.row_top(c0))
        painter.setPen(QPen(QColor("#ffffff"), 1, Qt.PenStyle.DashLine))
        painter.setBrush(QColor(255, 255, 255, 40))
        painter.drawRect(rect)

    def _update_rubber_band(self):
        self.update()  # the band is small and short-lived; a full repaint keeps the code simple

    # -- mouse -------------------------------------------------------------------------------

    def _value_for(self, event) -> int:
        """Keep (0) with the eraser, a right drag or Shift+drag (Alt+drag too, where the window
        manager leaves Alt to the application); regenerate (1) otherwise."""
        keep_modifiers = Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier
        erase = (self.tool == TOOL_ERASER or event.button() == Qt.MouseButton.RightButton
                 or bool(event.modifiers() & keep_modifiers))
        return 0 if erase else 1

    def mousePressEvent(self, event):  # noqa: N802
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        if self.model.n_frames <= 1 or event.position().x() < self.data_left:
            return
        self._drag_value = self._value_for(event)
        pos = event.position().toPoint()
        if self.tool == TOOL_RECT:
            self._rect_anchor = self._rect_current = self.cell_at(pos, clamp=True)
            self._update_rubber_band()
            return
        self.model.begin_stroke()
        self._last_pos = pos
        self._paint_segment(pos, pos)

    def mouseMoveEvent(self, event):  # noqa: N802
        pos = event.position().toPoint()
        cell = self.cell_at(pos)
        if cell is not None:
            t, c = cell
            group = "coarse" if c < N_COARSE else "fine"
            self.hovered.emit(f"frame {t} · {t / FRAMES_PER_SECOND:.3f} s · codebook {c} ({group}) · "
                              f"{'regenerate' if self.model.cells[c, t] else 'keep'}")
        if self._drag_value is None:
            return
        if self.tool == TOOL_RECT:
            self._rect_current = self.cell_at(pos, clamp=True)
            self._update_rubber_band()
            return
        self._paint_segment(self._last_pos, pos)
        self._last_pos = pos

    def mouseReleaseEvent(self, event):  # noqa: N802
        if self._drag_value is None:
            return
        value, self._drag_value = self._drag_value, None
        if self.tool == TOOL_RECT:
            anchor, current = self._rect_anchor, self.cell_at(event.position().toPoint(), clamp=True)
            self._rect_anchor = self._rect_current = None
            self._update_rubber_band()
            if anchor is not None and current is not None:
                (ta, ca), (tb, cb) = anchor, current
                t0, t1 = self._snapped(ta, tb)
                self.model.fill(t0, t1, min(ca, cb), max(ca, cb) + 1, value,
                                "Rectangle: regenerate" if value else "Rectangle: keep")
            return
        self.model.end_stroke("Brush" if value else "Erase")
        self._last_pos = None

    def _paint_segment(self, a: QPoint, b: QPoint):
        """Paint along a -> b one pixel at a time so fast drags leave no gaps: at each point the
        codebook row under it, frames under [x - radius, x + radius]."""
        n = max(abs(b.x() - a.x()), abs(b.y() - a.y()), 1)
        spans = {}
        for k in range(n + 1):
            x = a.x() + (b.x() - a.x()) * k / n
            y = a.y() + (b.y() - a.y()) * k / n
            c = self.codebook_at_y(y, clamp=True)
            lo = math.floor(self.frame_at_x(max(self.data_left, x - self.brush_radius_px)))
            hi = math.floor(self.frame_at_x(max(self.data_left, x + self.brush_radius_px)))
            span = self.time_view.beat_span(self.frame_at_x(max(self.data_left, x)))
            if span is not None:  # snapping: the brush paints whole beats
                lo, hi = min(lo, span[0]), max(hi, span[1] - 1)
            old = spans.get(c)
            spans[c] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
        self.model.paint_spans([(c, lo, hi + 1) for c, (lo, hi) in spans.items()], self._drag_value)

    def wheelEvent(self, event):  # noqa: N802
        steps = event.angleDelta().y() / 120.0 or event.angleDelta().x() / 120.0
        if not steps:
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.time_view.scroll_to(self.time_view.start_frame - steps * 0.1 * self.time_view.visible_frames)
        else:
            self.time_view.zoom(0.8 ** steps, self.frame_at_x(event.position().x()))
        event.accept()

    def leaveEvent(self, event):  # noqa: N802
        self.hovered.emit("")
