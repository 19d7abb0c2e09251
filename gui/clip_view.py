"""Waveform and spectrogram of the loaded clip, over a ruler in seconds (below) and token frames
(above), zoomed and scrolled together with the token grid through the shared `TimeView`.

x is in token frames everywhere; the seconds ruler is the same axis scaled by 1/57.42.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from .clip import FRAMES_PER_SECOND, SPECTROGRAM_BANDS, SPECTROGRAM_MAX_HZ, SPECTROGRAM_MIN_HZ, Clip, VariationView
from .mask_grid import MaskGridWidget
from .time_view import TimeView

WAVE_COLOR = "#7fb2ff"
AXIS_COLOR = "#9aa6b5"
SELECTION_COLOR = "#ffffff"
VARIATION_COLOR = "#f2a33a"
CHANGE_COLOR = "#2fd0c0"
CHANGE_FULL_SCALE_DB = 20.0  # the change plot's top: a 20 dB average spectral difference


class _TimeViewBox(pg.ViewBox):
    """Wheel zooms time only (around the pointer); drag pans time. Amplitude and frequency stay put."""

    def __init__(self, time_view: TimeView):
        super().__init__(enableMenu=False)
        self.time_view = time_view
        self.setMouseEnabled(x=True, y=False)

    def wheelEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph's name
        steps = ev.delta() / 120.0
        anchor = self.mapSceneToView(ev.scenePos()).x()
        self.time_view.zoom(0.8 ** steps, anchor)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 - pyqtgraph's name
        """Right drag selects a stretch of time (the part to regenerate in context, and loop)."""
        if ev.button() != Qt.MouseButton.RightButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        a = self.mapSceneToView(ev.buttonDownScenePos()).x()
        b = self.mapSceneToView(ev.scenePos()).x()
        self.time_view.set_selection(a, b)

    def mouseClickEvent(self, ev):  # noqa: N802 - pyqtgraph's name
        if ev.button() == Qt.MouseButton.RightButton:  # a right click without a drag clears it
            ev.accept()
            self.time_view.set_selection(None)
            return
        super().mouseClickEvent(ev)


class BarAxis(pg.AxisItem):
    """The top ruler: bars (numbered) and beats once the clip's beats are known (Reaper's bars,
    or every 4th detected beat), token frames before. Bars are thinned so their numbers never overlap; beats show as minor ticks when there
    is room."""

    MIN_LABEL_PX = 36
    MIN_BEAT_PX = 6

    def __init__(self, time_view: TimeView, **kwargs):
        super().__init__(**kwargs)
        self.time_view = time_view

    def tickValues(self, minVal, maxVal, size):  # noqa: N802, N803 - pyqtgraph's names
        beats, bars = self.time_view.beats_frames, self.time_view.bar_frames()
        if len(beats) < 2 or len(bars) == 0 or size <= 0:
            return super().tickValues(minVal, maxVal, size)
        px_per_frame = size / max(1e-9, maxVal - minVal)
        beat_frames = float(np.median(np.diff(beats)))
        bar_frames = float(np.median(np.diff(bars))) if len(bars) >= 2 else beat_frames * self.time_view.BEATS_PER_BAR
        bar_step = max(1, int(np.ceil(self.MIN_LABEL_PX / max(1e-9, bar_frames * px_per_frame))))
        index = np.arange(len(bars))
        shown = bars[(bars >= minVal) & (bars <= maxVal) & (index % bar_step == 0)]
        minor = []
        if beat_frames * px_per_frame >= self.MIN_BEAT_PX:
            minor = beats[(beats >= minVal) & (beats <= maxVal) & ~np.isin(beats, bars)]
        return [(bar_frames * bar_step, list(shown)), (beat_frames, list(minor))]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        beats, bars = self.time_view.beats_frames, self.time_view.bar_frames()
        if len(beats) < 2 or len(bars) == 0:
            return super().tickStrings(values, scale, spacing)
        values = np.asarray(values, dtype=np.float64)
        index = np.clip(np.searchsorted(bars, values - 1e-6), 0, len(bars) - 1)
        on_bar = np.abs(bars[index] - values) < 1e-6
        return [str(int(i) + 1) if bar else "" for i, bar in zip(index, on_bar)]


class ClipView(QWidget):
    def __init__(self, time_view: TimeView, parent=None):
        super().__init__(parent)
        self.time_view = time_view
        self.clip: Clip | None = None
        self._syncing = False
        pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#161a20")
        self.graphics.ci.layout.setContentsMargins(0, 0, 0, 0)
        self.graphics.ci.layout.setSpacing(0)

        self.wave_plot = self._make_plot(row=0)
        self.spec_plot = self._make_plot(row=1)
        self.spec_plot.setXLink(self.wave_plot)
        self.graphics.ci.layout.setRowStretchFactor(0, 2)
        self.graphics.ci.layout.setRowStretchFactor(1, 3)

        self.bar_axis = BarAxis(time_view, orientation="top")
        self.wave_plot.setAxisItems({"top": self.bar_axis})
        self.bar_axis.setPen(pg.mkPen(AXIS_COLOR))
        self.bar_axis.setTextPen(pg.mkPen(AXIS_COLOR))
        self.bar_axis.setLabel("token frames", color=AXIS_COLOR)
        self.wave_plot.showAxis("top")
        time_view.beats_changed.connect(self._on_beats)
        self.wave_plot.getAxis("bottom").setStyle(showValues=False)
        self.wave_plot.getAxis("bottom").setHeight(2)
        bottom = self.spec_plot.getAxis("bottom")
        bottom.setScale(1.0 / FRAMES_PER_SECOND)  # same x, labelled in seconds
        bottom.setLabel("seconds", color=AXIS_COLOR)
        self.wave_plot.getAxis("left").setLabel("wave")
        self.spec_plot.getAxis("left").setLabel("Hz")
        self.wave_plot.setYRange(-1.05, 1.05, padding=0)

        # The curves hold only the visible stretch at about one point per pixel (`_update_wave`):
        # filling between two 300 000-point curves of a 10-minute clip would stall every repaint.
        self.wave_upper = pg.PlotDataItem(pen=pg.mkPen(WAVE_COLOR, width=1))
        self.wave_lower = pg.PlotDataItem(pen=pg.mkPen(WAVE_COLOR, width=1))
        self._wave_peak = 1.0
        self.wave_fill = pg.FillBetweenItem(self.wave_upper, self.wave_lower, brush=pg.mkBrush(WAVE_COLOR))
        self.wave_plot.addItem(self.wave_fill)
        self.wave_plot.addItem(self.wave_upper)
        self.wave_plot.addItem(self.wave_lower)

        # The selected variation under the original: its waveform, and how much it changed per
        # frame. In the layout only while a variation of this clip is shown.
        self.variation = None
        self.variation_plot = self._make_plot(row=2)
        self.change_plot = self._make_plot(row=3)
        for plot in (self.variation_plot, self.change_plot):
            plot.setXLink(self.wave_plot)
            plot.getAxis("bottom").setStyle(showValues=False)
            plot.getAxis("bottom").setHeight(2)
            self.graphics.ci.removeItem(plot)
        self.variation_plot.getAxis("left").setLabel("variation")
        self.variation_plot.setYRange(-1.05, 1.05, padding=0)
        self.change_plot.getAxis("left").setLabel("change")
        self.change_plot.setYRange(0, CHANGE_FULL_SCALE_DB, padding=0)
        self.var_upper = pg.PlotDataItem(pen=pg.mkPen(VARIATION_COLOR, width=1))
        self.var_lower = pg.PlotDataItem(pen=pg.mkPen(VARIATION_COLOR, width=1))
        fill = pg.FillBetweenItem(self.var_upper, self.var_lower, brush=pg.mkBrush(VARIATION_COLOR))
        self.variation_plot.addItem(fill)
        self.variation_plot.addItem(self.var_upper)
        self.variation_plot.addItem(self.var_lower)
        self.change_curve = pg.PlotDataItem(pen=pg.mkPen(CHANGE_COLOR, width=1), fillLevel=0,
                                            brush=pg.mkBrush(CHANGE_COLOR + "88"), stepMode="center")
        self.change_plot.addItem(self.change_curve)

        self.spec_image = pg.ImageItem()
        self.spec_image.setColorMap(pg.colormap.get("inferno"))
        self.spec_plot.addItem(self.spec_image)
        self._set_frequency_ticks()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.setMinimumHeight(120)  # small screens: the splitter gives it more when there is room

        # The time selection, drawn on both plots; its edges can be dragged.
        self.selection_items = []
        for plot in (self.wave_plot, self.spec_plot):
            region = pg.LinearRegionItem(brush=pg.mkBrush(255, 255, 255, 40), pen=pg.mkPen(SELECTION_COLOR, width=1))
            region.setZValue(10)
            region.hide()
            region.sigRegionChangeFinished.connect(self._on_region_moved)
            plot.addItem(region)
            self.selection_items.append(region)

        self.wave_plot.sigXRangeChanged.connect(self._on_plot_range)
        time_view.changed.connect(self._on_time_view)
        time_view.selection_changed.connect(self._on_selection)

    def _on_beats(self):
        known = len(self.time_view.beats_frames) >= 2
        origin = "Reaper's tempo map" if self.time_view.downbeats_frames is not None else "detected beats, 4/4"
        self.bar_axis.setLabel(f"bars ({origin})" if known else "token frames", color=AXIS_COLOR)
        self.bar_axis.picture = None  # pyqtgraph caches the drawn ticks
        self.bar_axis.update()

    def _on_selection(self, start_frame: float, end_frame: float):
        for region in self.selection_items:
            region.blockSignals(True)
            if start_frame < 0:
                region.hide()
            else:
                region.setRegion((start_frame, end_frame))
                region.show()
            region.blockSignals(False)

    def _on_region_moved(self, region):
        a, b = region.getRegion()
        self.time_view.set_selection(a, b)

    def _make_plot(self, row: int) -> pg.PlotItem:
        plot = self.graphics.addPlot(row=row, col=0, viewBox=_TimeViewBox(self.time_view))
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.layout.setContentsMargins(0, 0, 0, 0)
        plot.getViewBox().setDefaultPadding(0.0)
        for name in ("left", "bottom", "top"):
            axis = plot.getAxis(name)
            axis.setPen(pg.mkPen(AXIS_COLOR))
            axis.setTextPen(pg.mkPen(AXIS_COLOR))
        # Same width as the token grid's row labels, so x lines up in all three views.
        plot.getAxis("left").setWidth(MaskGridWidget.LEFT_GUTTER)
        plot.getAxis("left").setStyle(showValues=row == 1)
        return plot

    def _set_frequency_ticks(self):
        """The spectrogram's rows are log-spaced bands: label them in Hz."""
        edges = np.geomspace(SPECTROGRAM_MIN_HZ, SPECTROGRAM_MAX_HZ, SPECTROGRAM_BANDS + 1)
        ticks = []
        for hz, label in ((100, "100"), (1000, "1k"), (10000, "10k")):
            row = float(np.interp(np.log(hz), np.log(edges), np.arange(len(edges))))
            ticks.append((row, label))
        self.spec_plot.getAxis("left").setTicks([ticks, []])
        self.spec_plot.setYRange(0, SPECTROGRAM_BANDS, padding=0)

    def show_variation(self, view: VariationView | None):
        """Draw a variation of this clip under it (None: take the variation rows away)."""
        shown = self.variation is not None
        self.variation = view
        if view is None:
            if shown:
                self.graphics.ci.removeItem(self.variation_plot)
                self.graphics.ci.removeItem(self.change_plot)
                self._seconds_axis_on(self.spec_plot)
            return
        if not shown:
            self.graphics.ci.addItem(self.variation_plot, row=2, col=0)
            self.graphics.ci.addItem(self.change_plot, row=3, col=0)
            self.graphics.ci.layout.setRowStretchFactor(2, 1)
            self.graphics.ci.layout.setRowStretchFactor(3, 1)
            self._seconds_axis_on(self.change_plot)
        n = len(view.change_db)
        self.change_curve.setData(np.arange(n + 1, dtype=np.float64), np.minimum(view.change_db, CHANGE_FULL_SCALE_DB))
        self._on_time_view(self.time_view.start_frame, self.time_view.end_frame)

    def _seconds_axis_on(self, plot: pg.PlotItem):
        """The seconds ruler belongs under the lowest plot shown."""
        for other in (self.spec_plot, self.change_plot):
            axis = other.getAxis("bottom")
            if other is plot:
                axis.setScale(1.0 / FRAMES_PER_SECOND)
                axis.setLabel("seconds", color=AXIS_COLOR)
                axis.setStyle(showValues=True)
                axis.setHeight(None)
                axis.showLabel(True)
            else:
                axis.setStyle(showValues=False)
                axis.showLabel(False)
                axis.setHeight(2)

    def set_clip(self, clip: Clip | None):
        self.show_variation(None)
        self.clip = clip
        if clip is None:
            self.wave_upper.setData([], [])
            self.wave_lower.setData([], [])
            self.spec_image.clear()
            return
        self._wave_peak = max(1e-3, float(np.abs(clip.envelope_max).max()), float(np.abs(clip.envelope_min).max()))
        spec = clip.spectrogram_db.T  # (bands, T), row 0 = lowest band
        top = float(np.percentile(spec, 99.5))
        self.spec_image.setImage(spec, levels=(top - 80.0, top), autoLevels=False)
        self.spec_image.setRect(0, 0, clip.n_frames, SPECTROGRAM_BANDS)
        self._on_time_view(self.time_view.start_frame, self.time_view.end_frame)

    # -- keeping the plots and the TimeView in step ---------------------------------------------

    def _on_plot_range(self, _view, x_range):
        if self._syncing:
            return
        self.time_view.set_range(float(x_range[0]), float(x_range[1]))

    def _on_time_view(self, start_frame: float, end_frame: float):
        self._syncing = True
        try:
            self.wave_plot.setXRange(start_frame, end_frame, padding=0)
        finally:
            self._syncing = False
        self._update_wave(start_frame, end_frame)

    def _update_wave(self, start_frame: float, end_frame: float):
        if self.clip is None:
            return
        self._draw_envelope(self.clip, self.wave_upper, self.wave_lower, start_frame, end_frame)
        if self.variation is not None:
            self._draw_envelope(self.variation, self.var_upper, self.var_lower, start_frame, end_frame)

    def _draw_envelope(self, source, upper, lower, start_frame: float, end_frame: float):
        """Min/max of the visible envelope blocks, grouped to ~1 pair per pixel (plus a margin).
        The variation is drawn at the original's scale, so louder or quieter shows as such."""
        x = source.envelope_x_frames
        width = end_frame - start_frame
        lo = max(0, int(np.searchsorted(x, start_frame - 0.1 * width)) - 1)
        hi = min(len(x), int(np.searchsorted(x, end_frame + 0.1 * width)) + 1)
        pixels = max(100, self.graphics.width())
        group = max(1, (hi - lo) // pixels)
        n = max(1, (hi - lo) // group)
        hi = min(len(x), lo + n * group)
        n = (hi - lo) // group
        if n < 1:
            return
        peak = self._wave_peak
        xs = x[lo:lo + n * group].reshape(n, group).mean(axis=1)
        top = source.envelope_max[lo:lo + n * group].reshape(n, group).max(axis=1) / peak
        bottom = source.envelope_min[lo:lo + n * group].reshape(n, group).min(axis=1) / peak
        upper.setData(xs, top)
        lower.setData(xs, bottom)

    def keyPressEvent(self, event):  # noqa: N802
        if event.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.time_view.zoom(0.5)
        elif event.key() == Qt.Key.Key_Minus:
            self.time_view.zoom(2.0)
        else:
            super().keyPressEvent(event)
