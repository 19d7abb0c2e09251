"""The visible stretch of time, shared by the waveform, the spectrogram and the token grid.

Every view draws x in token frames (57.42 per second) and follows one `TimeView`, so zooming or
scrolling any of them moves all of them and grid cells stay exactly under the audio they encode.
"""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

MIN_VISIBLE_FRAMES = 8.0


class TimeView(QObject):
    """[start_frame, end_frame) of a clip `n_frames` long; `changed` after every move.

    Also the time selection (right drag on the waveform): the stretch to regenerate in context
    and to loop; `selection_changed(start_frame, end_frame)`, (-1, -1) when cleared. And the
    clip's beats (the ruler's bars and beats; with `snap`, edits snap to them)."""

    changed = pyqtSignal(float, float)
    selection_changed = pyqtSignal(float, float)
    beats_changed = pyqtSignal()

    BEATS_PER_BAR = 4  # the detector finds beats, not metre: its bars are drawn as 4/4

    def __init__(self, parent=None):
        super().__init__(parent)
        self.n_frames = 1
        self.start_frame = 0.0
        self.end_frame = 1.0
        self.selection: tuple[float, float] | None = None
        self.beats_frames = np.zeros(0, dtype=np.float64)  # beat positions in frames (ruler, snapping)
        self.downbeats_frames: np.ndarray | None = None  # bar starts when known (Reaper's tempo map)
        self.snap = False  # the rectangle, the brush and the selection snap to the beats

    def set_beats(self, beats_frames, downbeats_frames=None) -> None:
        """The beats; with `downbeats_frames` (a bar's first beats) the metre is known, else
        every BEATS_PER_BAR-th beat starts a bar."""
        self.beats_frames = np.asarray(sorted({*beats_frames, *(downbeats_frames or [])}), dtype=np.float64)
        self.downbeats_frames = (None if downbeats_frames is None
                                 else np.asarray(sorted(downbeats_frames), dtype=np.float64))
        self.beats_changed.emit()

    def bar_frames(self) -> np.ndarray:
        """The frames where bars start: the downbeats when known, else every BEATS_PER_BAR-th beat."""
        if self.downbeats_frames is not None:
            return self.downbeats_frames
        return self.beats_frames[::self.BEATS_PER_BAR]

    def snap_frame(self, frame: float) -> float:
        """The nearest beat (or the clip's start or end) when snapping is on, else `frame`."""
        if not self.snap or len(self.beats_frames) == 0:
            return frame
        marks = np.concatenate([[0.0], self.beats_frames, [float(self.n_frames)]])
        return float(marks[np.argmin(np.abs(marks - frame))])

    def beat_span(self, frame: float) -> tuple[int, int] | None:
        """[start, end) frames of the beat that holds `frame` (None without beats or snapping)."""
        if not self.snap or len(self.beats_frames) == 0:
            return None
        marks = np.concatenate([[0.0], self.beats_frames, [float(self.n_frames)]])
        i = int(np.clip(np.searchsorted(marks, frame, side="right") - 1, 0, len(marks) - 2))
        return int(marks[i]), int(marks[i + 1])

    def set_selection(self, start_frame: float | None, end_frame: float | None = None) -> None:
        """Select [start, end) frames inside the clip (None, or less than a frame, clears it)."""
        if start_frame is None or end_frame is None:
            selection = None
        else:
            a, b = sorted((min(max(0.0, self.snap_frame(start_frame)), self.n_frames),
                           min(max(0.0, self.snap_frame(end_frame)), self.n_frames)))
            selection = (a, b) if b - a >= 1.0 else None
        if selection == self.selection:
            return
        self.selection = selection
        self.selection_changed.emit(*(selection or (-1.0, -1.0)))

    @property
    def visible_frames(self) -> float:
        return self.end_frame - self.start_frame

    def reset(self, n_frames: int) -> None:
        self.n_frames = max(1, int(n_frames))
        self.set_selection(None)
        self.set_beats([])
        self.set_range(0.0, float(self.n_frames))

    def set_range(self, start_frame: float, end_frame: float) -> None:
        """Clamp to the clip (keeping the width when possible) and announce if it moved."""
        width = min(max(MIN_VISIBLE_FRAMES, end_frame - start_frame), float(self.n_frames))
        start = min(max(0.0, start_frame), self.n_frames - width)
        end = start + width
        if abs(start - self.start_frame) < 1e-6 and abs(end - self.end_frame) < 1e-6:
            return
        self.start_frame, self.end_frame = start, end
        self.changed.emit(start, end)

    def zoom(self, factor: float, anchor_frame: float | None = None) -> None:
        """factor < 1 zooms in; the anchor (default: the middle) stays where it is on screen."""
        if anchor_frame is None:
            anchor_frame = (self.start_frame + self.end_frame) / 2
        left = (anchor_frame - self.start_frame) * factor
        right = (self.end_frame - anchor_frame) * factor
        self.set_range(anchor_frame - left, anchor_frame + right)

    def scroll_to(self, start_frame: float) -> None:
        self.set_range(start_frame, start_frame + self.visible_frames)

    def fit(self) -> None:
        self.set_range(0.0, float(self.n_frames))
