"""The companion's main window: clip view and token grid in the middle, mask generators and
sampling on the right, jobs and variations below.

The window wires panels together and turns their requests into work; the work itself runs
elsewhere: clip analysis and mask building on the thread pool (`workers.py`), engine jobs on the
job service's worker (`engine_bridge.py`). Every failure ends in `show_notice`, a banner at the
top of the window that says what went wrong and what to do.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, QUrl, pyqtSignal
from PyQt6.QtGui import QAction, QActionGroup, QDesktopServices, QKeySequence
from PyQt6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QPushButton,
                             QScrollArea,
                             QScrollBar, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from bridge.engine.prompts import detect_beats
from bridge.request import VampRequest

from .clip import Clip, frame_to_seconds, load_clip, load_variation_view, seconds_to_frame
from .clip_view import ClipView
from .jobs_panel import JobsPanel
from .mask_grid import TOOL_BRUSH, TOOL_ERASER, TOOL_RECT, MaskGridWidget, MaskModel, build_recipe_mask
from .notice import NoticeBar
from .playback import Player
from .recipe_io import EditorSettings, load_settings, save_settings
from .recipe_panel import RecipePanel
from .sampling_panel import REQUEST_FIELDS, SamplingPanel
from .settings import ConnectionSettings, Settings
from .settings_dialog import SettingsDialog
from .take_sender import TakeSender
from .time_view import TimeView
from .variations_panel import Variation, VariationsPanel, changed_tokens, clip_key, variations_on_disk
from .workers import run_in_background

AUDIO_FILTER = "Audio (*.wav *.wave *.flac *.aif *.aiff *.mp3 *.ogg);;All files (*)"
GENERATE_MERGE_ID = 1
LIVE_MERGE_WINDOW_S = 2.0  # live edits closer together than this are one undo step

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    clip_loaded = pyqtSignal(object)  # Clip
    mask_generated = pyqtSignal()
    notice_shown = pyqtSignal(str, str)  # text, level
    takes_sent = pyqtSignal(list)
    variations_reloaded = pyqtSignal(int)  # how many variations of the opened clip were found on disk
    beats_found = pyqtSignal(list)  # beat frames of the opened clip (the ruler and snapping use them)
    variation_shown = pyqtSignal(object)  # VariationView: the selected variation drawn under the clip

    def __init__(self, bridge=None, settings: Settings | None = None, player: Player | None = None, parent=None):
        super().__init__(parent)
        self.bridge = bridge
        self.settings = settings or Settings()
        self.player = player or Player(self)
        self.clip: Clip | None = None
        self._last_request: dict | None = None  # the previous Vamp's request: an identical one is refused
        self._job_sources: dict[str, str] = {}
        self._generation = 0
        self._last_live_generate_s = 0.0
        self._loading_path = ""
        self._painting_choice: str | None = None  # "replace" or "combine" until the next hand edit
        self._pending_generated = None
        self._hand_edits = 0  # counts strokes and boxes: a mask asked for before one is stale
        self.painting_prompt: QMessageBox | None = None
        self.quit_prompt: QMessageBox | None = None
        self._quit_confirmed = False
        self.painting_prompt_buttons: dict = {}
        self.setWindowTitle("VampBridge")
        self.setAcceptDrops(True)

        self.time_view = TimeView(self)
        self.mask_model = MaskModel(self)
        self.clip_view = ClipView(self.time_view)
        self.grid = MaskGridWidget(self.mask_model, self.time_view)
        self.scrollbar = QScrollBar(Qt.Orientation.Horizontal)
        self.readout = QLabel("Open a clip: File > Open, drop a file here, or “Open in editor” in Reaper")
        self.readout.setObjectName("readout")
        self.readout.setWordWrap(True)  # a long summary wraps instead of widening the window
        self.recipe_panel = RecipePanel()
        self.sampling_panel = SamplingPanel()
        self.jobs_panel = JobsPanel()
        self.variations_panel = VariationsPanel()
        self.notice = NoticeBar()
        self.vamp_button = QPushButton("Vamp")
        self.vamp_button.setObjectName("vamp")
        self.vamp_button.setToolTip("Make variations of the clip with this mask and these settings (Ctrl+Return)")

        self._build_actions()
        self._build_layout()
        self.grid.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.grid.setFocus()  # the tool keys work from the start
        self._connect()
        self._restore_settings()
        self._update_vamp_button()
        self.variations_panel.set_playback(self.player.available, self.player.reason)
        self.variations_panel.set_send_enabled(False, "Open the clip from Reaper (VampBridge: Open in editor) "
                                                      "to send takes back to its item")
        self._open_url = QDesktopServices.openUrl  # the system player / file manager (tests replace it)
        self.take_sender = TakeSender(self)
        self.take_sender.notice.connect(self.show_notice)
        self.take_sender.finished.connect(self.takes_sent.emit)
        if bridge is not None:
            self._connect_bridge(bridge)

    # -- construction ----------------------------------------------------------------------------

    def _build_actions(self):
        def action(text, slot, shortcut=None, tip=""):
            a = QAction(text, self)
            if shortcut:
                a.setShortcut(QKeySequence(shortcut))
            a.setToolTip(tip or text)
            a.triggered.connect(slot)
            return a

        self.open_action = action("Open…", self.choose_file, QKeySequence.StandardKey.Open, "Open an audio file")
        self.save_action = action("Save recipe…", self.choose_save_recipe, QKeySequence.StandardKey.Save,
                                  "Save mask and sampling settings as JSON (the command line's format)")
        self.load_action = action("Load recipe…", self.choose_load_recipe, "Ctrl+L",
                                  "Load a saved recipe, a mask JSON or a variation's recipe")
        self.quit_action = action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.settings_action = action("Settings…", self.choose_settings, QKeySequence.StandardKey.Preferences,
                                      "OSC port and token, Reaper listener port")
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        # Fixed labels (the stack's own actions rename themselves "Undo Brush", which makes the
        # toolbar jump); the status tip names the step. Only bound methods of the actions are
        # connected: the stack emits while it is destroyed, and a lambda holding the window could
        # then run on a half-destroyed window.
        stack = self.mask_model.undo_stack
        self.undo_action = action("Undo", stack.undo, QKeySequence.StandardKey.Undo)
        self.redo_action = action("Redo", stack.redo, QKeySequence.StandardKey.Redo)
        stack.canUndoChanged.connect(self.undo_action.setEnabled)
        stack.canRedoChanged.connect(self.redo_action.setEnabled)
        stack.undoTextChanged.connect(self.undo_action.setStatusTip)
        stack.redoTextChanged.connect(self.redo_action.setStatusTip)
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)
        self.invert_action = action("Invert", self.mask_model.invert, "Ctrl+I", "Swap kept and regenerated tokens")
        self.clear_action = action("Keep all", self.mask_model.clear, "Ctrl+K", "Clear the mask: keep every token")
        self.fit_action = action("Fit", self.time_view.fit, "Ctrl+0", "Show the whole clip")
        self.zoom_in_action = action("Zoom in", lambda: self.time_view.zoom(0.5), "Ctrl+=")
        self.zoom_out_action = action("Zoom out", lambda: self.time_view.zoom(2.0), "Ctrl+-")
        self.vamp_action = action("Vamp", self.vamp, "Ctrl+Return", "Make variations")
        # Listening keys: single keys like the tools (a focused text field keeps its own typing).
        self.play_action = action("Play / stop", self.play_or_stop, "Space", "Play the selected variation, or stop")
        self.ab_action = action("A/B", self.toggle_ab, "A", "Switch between the variation and the original")
        self.roll_action = action("Roll seed", self.sampling_panel.roll_seed, "D", "A new random seed")
        self.snap_action = action("Snap to beats", lambda on: setattr(self.time_view, "snap", bool(on)), "S",
                                  "The rectangle, the brush and the time selection snap to the clip's beats")
        self.snap_action.setCheckable(True)

        self.tool_group = QActionGroup(self)
        self.tool_actions = {}
        for tool, text, key, tip in ((TOOL_BRUSH, "Brush", "B", "Paint tokens to regenerate (right drag erases)"),
                                     (TOOL_ERASER, "Eraser", "E", "Paint tokens to keep"),
                                     (TOOL_RECT, "Rectangle", "R", "Drag a time × codebook box to regenerate "
                                                                   "(right drag or Shift+drag: keep; Alt too)")):
            a = QAction(text, self)
            a.setCheckable(True)
            a.setShortcut(QKeySequence(key))
            a.setToolTip(f"{tip} ({key})")
            a.triggered.connect(lambda _=False, t=tool: self.set_tool(t))
            self.tool_group.addAction(a)
            self.tool_actions[tool] = a
        self.brush_size = QSpinBox()
        self.brush_size.setRange(0, 60)
        self.brush_size.setSuffix(" px")
        self.brush_size.setPrefix("size ")
        self.brush_size.setToolTip("Brush radius in screen pixels (0 = one pixel: exact single cells when zoomed in)")
        # The tool keys (B/E/R) must reach the window at start: the size field takes the keyboard
        # only when clicked, and gives it back to the grid when its edit is done.
        self.brush_size.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.brush_size.editingFinished.connect(lambda: self.grid.setFocus())

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (self.open_action, self.load_action, self.save_action):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit = menu.addMenu("&Edit")
        for a in (self.undo_action, self.redo_action):
            edit.addAction(a)
        edit.addSeparator()
        for a in list(self.tool_actions.values()) + [self.invert_action, self.clear_action]:
            edit.addAction(a)
        edit.addSeparator()
        edit.addAction(self.settings_action)
        view = menu.addMenu("&View")
        for a in (self.zoom_in_action, self.zoom_out_action, self.fit_action, self.snap_action):
            view.addAction(a)
        vamp_menu = menu.addMenu("&Vamp")
        for a in (self.vamp_action, self.roll_action):
            vamp_menu.addAction(a)
        listen = menu.addMenu("&Listen")
        for a in (self.play_action, self.ab_action):
            listen.addAction(a)

        bar = self.addToolBar("Edit")
        bar.setObjectName("editToolbar")
        bar.setMovable(False)
        bar.addAction(self.open_action)
        bar.addSeparator()
        for a in self.tool_actions.values():
            bar.addAction(a)
        bar.addWidget(self.brush_size)
        bar.addSeparator()
        for a in (self.undo_action, self.redo_action, self.invert_action, self.clear_action):
            bar.addAction(a)
        bar.addSeparator()
        for a in (self.zoom_in_action, self.zoom_out_action, self.fit_action):
            bar.addAction(a)
        bar.addSeparator()
        bar.addAction(self.snap_action)

    def _build_layout(self):
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.setSpacing(2)
        grid_layout.addWidget(self.grid, 1)
        grid_layout.addWidget(self.scrollbar)
        grid_layout.addWidget(self.readout)
        grid_layout.addWidget(self.variations_panel.legend)  # it explains the grid's colours: under the grid

        self.editor_split = QSplitter(Qt.Orientation.Vertical)
        self.editor_split.addWidget(self.clip_view)
        self.editor_split.addWidget(grid_box)
        self.editor_split.setSizes([300, 260])

        self.bottom_split = QSplitter(Qt.Orientation.Horizontal)
        self.bottom_split.addWidget(_padded(self.jobs_panel))
        self.bottom_split.addWidget(_padded(self.variations_panel))
        self.bottom_split.setSizes([300, 700])

        self.main_split = QSplitter(Qt.Orientation.Vertical)
        self.main_split.addWidget(self.editor_split)
        self.main_split.addWidget(self.bottom_split)
        self.main_split.setSizes([520, 300])

        side = QWidget()
        side.setObjectName("side")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(8, 6, 8, 8)
        for title, panel in (("Mask", self.recipe_panel), ("Sampling", self.sampling_panel)):
            label = QLabel(title)
            label.setObjectName("panelTitle")
            side_layout.addWidget(label)
            side_layout.addWidget(panel)
        side_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(side)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(side.minimumSizeHint().width() + 16)  # never cut the fields off
        self.side_scroll = scroll
        # The panels scroll; the Vamp button stays below them, always in view.
        side_column = QWidget()
        side_column.setObjectName("side")
        column = QVBoxLayout(side_column)
        column.setContentsMargins(0, 0, 0, 6)
        column.setSpacing(4)
        column.addWidget(scroll, 1)
        vamp_row = QHBoxLayout()
        vamp_row.setContentsMargins(8, 0, 8, 0)
        vamp_row.addWidget(self.vamp_button)
        column.addLayout(vamp_row)

        self.side_split = QSplitter(Qt.Orientation.Horizontal)
        self.side_split.addWidget(self.main_split)
        self.side_split.addWidget(side_column)
        self.side_split.setStretchFactor(0, 1)
        self.side_split.setSizes([1000, 340])
        for split in (self.editor_split, self.bottom_split, self.main_split, self.side_split):
            split.setChildrenCollapsible(False)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(4, 4, 4, 0)
        layout.setSpacing(4)
        layout.addWidget(self.side_split, 1)
        self.setCentralWidget(central)
        self.notice.setParent(central)  # floats over the content: no layout shift (see NoticeBar)
        self.notice.hide()

        self.osc_label = QLabel("OSC: starting…")
        self.engine_label = QLabel("engine: loading models…")
        self.statusBar().addPermanentWidget(self.engine_label)
        self.statusBar().addPermanentWidget(self.osc_label)

    def _connect(self):
        self.mask_model.changed.connect(self._update_readout)
        self.mask_model.hand_edited.connect(self._on_hand_edit)
        self.mask_model.fields_restored.connect(self._on_fields_restored)
        self.recipe_panel.fields_edited.connect(self._check_fields)
        self.recipe_panel.undo_requested.connect(self.mask_model.undo_stack.undo)
        self.recipe_panel.redo_requested.connect(self.mask_model.undo_stack.redo)
        self.mask_model.reset_done.connect(self._update_readout)
        self.time_view.changed.connect(self._sync_scrollbar)
        self.time_view.selection_changed.connect(self._on_selection)
        self.sampling_panel.clear_selection.clicked.connect(lambda: self.time_view.set_selection(None))
        self.scrollbar.valueChanged.connect(self._on_scrollbar)
        self.grid.hovered.connect(lambda text: self.statusBar().showMessage(text, 4000) if text else None)
        self.brush_size.valueChanged.connect(lambda v: setattr(self.grid, "brush_radius_px", v))
        self.recipe_panel.recipe_edited.connect(lambda: self.generate_mask(live=True))
        self.recipe_panel.generate_clicked.connect(lambda: self.generate_mask(live=False))
        self.sampling_panel.seed_changed.connect(self._on_seed_changed)
        self.sampling_panel.variations.valueChanged.connect(self._update_vamp_button)
        self.vamp_button.clicked.connect(self.vamp)
        self.jobs_panel.cancel_requested.connect(self.cancel_job)
        self.jobs_panel.resume_requested.connect(self.resume_job)
        vp = self.variations_panel
        vp.play_clicked.connect(self.play_variation)
        vp.stop_clicked.connect(self.player.stop)
        vp.ab_clicked.connect(self.toggle_ab)
        vp.loop.toggled.connect(lambda *_: self._apply_loop())
        vp.changes_toggled.connect(self.show_variation_tokens)
        vp.tree.currentItemChanged.connect(self._on_current_variation)  # bound: the tree emits as it goes
        vp.send_clicked.connect(self.send_to_reaper)
        vp.export_clicked.connect(self.choose_export)
        vp.load_recipe_clicked.connect(lambda v: self.load_recipe(v.recipe_path))
        vp.open_external_clicked.connect(lambda v: self._open_url(QUrl.fromLocalFile(v.audio_path)))
        vp.reveal_clicked.connect(lambda v: self._open_url(QUrl.fromLocalFile(str(Path(v.audio_path).parent))))
        self.player.playing_changed.connect(self._on_playing_changed)

    def _connect_bridge(self, bridge):
        bridge.progress.connect(self.jobs_panel.on_progress)
        bridge.done.connect(self._on_job_done)
        bridge.failed.connect(self._on_job_failed)
        bridge.result.connect(self._on_result)
        bridge.jobs_listed.connect(self.jobs_panel.on_jobs_listed)
        bridge.open_requested.connect(self._on_open_request)
        bridge.ready.connect(self._on_engine_ready)
        bridge.osc_failed.connect(lambda message: (self.osc_label.setText("OSC: off"), self.show_notice(message)))
        self._update_osc_label()
        for record in bridge.pending():  # finished while no window showed them (closed or killed)
            self._on_result(record.job_id, record)

    def _update_osc_label(self):
        port = self.bridge.osc_port if self.bridge is not None else None
        listener = self.listener_port()
        self.osc_label.setText(f"OSC :{port} · Reaper listener :{listener}" if port else "OSC: off")
        self.osc_label.setToolTip("Reaper's VampBridge scripts reach the companion on this UDP port "
                                  "(the same protocol as `vampbridge serve`)")

    # -- settings ------------------------------------------------------------------------------

    def listener_port(self) -> int:
        return ConnectionSettings.read(self.settings).listener_port

    def osc_token(self) -> str:
        """The token the running service checks (Reaper's Listener expects the same one)."""
        if self.bridge is not None:
            return self.bridge.checked_token
        from bridge.secret import read_secret
        return ConnectionSettings.read(self.settings).token or read_secret()

    def choose_settings(self) -> SettingsDialog:
        """Edit > Settings…: a window-modal dialog; the ports and token are saved on OK."""
        running = self.bridge is not None
        dialog = SettingsDialog(self.settings, self.bridge.osc_port if running else None,
                                self.bridge.token if running else None, self)
        dialog.accepted.connect(self._on_settings_saved)
        dialog.finished.connect(dialog.deleteLater)
        self.settings_dialog = dialog
        dialog.open()
        return dialog

    def _on_settings_saved(self):
        self._update_osc_label()
        saved = ConnectionSettings.read(self.settings)
        running_port = self.bridge.osc_port if self.bridge is not None else None
        if self.bridge is not None and (saved.osc_port != running_port or saved.token != self.bridge.token):
            self.show_notice(f"Settings saved. The companion listens on OSC port {saved.osc_port}"
                             f"{' with the new token' if saved.token != self.bridge.token else ''} from its next "
                             "start: close it and open it again.", "info")
        else:
            self.show_notice("Settings saved.", "info")

    def _restore_settings(self):
        s = self.settings
        geometry = s.get_bytes("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            screen = self.screen().availableGeometry() if self.screen() is not None else None
            self.resize(min(1440, screen.width()) if screen else 1440, min(900, screen.height()) if screen else 900)
        for name in ("editor_split", "bottom_split", "main_split", "side_split"):
            state = s.get_bytes(f"window/{name}")
            if state is not None:
                getattr(self, name).restoreState(state)
        self.sampling_panel.restore(s)
        self.set_tool(str(s.get("editor/tool", TOOL_BRUSH)))
        self.brush_size.setValue(s.get_int("editor/brush_radius_px", 3))
        recipe = s.get_json("editor/recipe", None)
        if recipe:
            try:
                from bridge.engine.prompts import MaskRecipe

                self.recipe_panel.set_recipe(MaskRecipe.from_json(recipe))
            except ValueError:
                pass  # an old or hand-edited file: keep the defaults
        self._last_dir = str(s.get("editor/last_dir", str(Path.home())))

    def save_settings(self):
        s = self.settings
        s.set("window/geometry", self.saveGeometry())
        for name in ("editor_split", "bottom_split", "main_split", "side_split"):
            s.set(f"window/{name}", getattr(self, name).saveState())
        self.sampling_panel.save(s)
        s.set("editor/tool", self.grid.tool)
        s.set("editor/brush_radius_px", self.brush_size.value())
        s.set("editor/last_dir", self._last_dir)
        try:
            s.set_json("editor/recipe", self.recipe_panel.recipe().to_json())
        except ValueError:
            pass
        s.sync()

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        if not self.notice.isHidden():
            self.notice.place()

    def closeEvent(self, event):  # noqa: N802
        """Quitting while jobs run asks first (they would be left interrupted, to resume later)."""
        active = self.jobs_panel.active_jobs()
        if active and self.isVisible() and not self._quit_confirmed:
            event.ignore()
            self._ask_to_quit(len(active))
            return
        self.save_settings()
        self.player.stop()
        super().closeEvent(event)

    def _ask_to_quit(self, n_active: int):
        if self.quit_prompt is not None:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Quit VampBridge?",
                          f"{n_active} job(s) are queued or running. Quit anyway? They stop now and are "
                          "listed as interrupted at the next start, where Resume finishes them.", parent=self)
        self.quit_prompt_button = box.addButton("Quit", QMessageBox.ButtonRole.DestructiveRole)
        keep = box.addButton("Keep working", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(keep)
        box.setWindowModality(Qt.WindowModality.WindowModal)

        def chosen(button):
            self.quit_prompt = None
            if button is self.quit_prompt_button:
                self._quit_confirmed = True
                self.close()

        box.buttonClicked.connect(chosen)
        box.finished.connect(box.deleteLater)
        self.quit_prompt = box
        box.open()

    # -- notices -------------------------------------------------------------------------------

    def show_notice(self, text: str, level: str = "error", key: str = "", action=None):
        """A banner; `key` names the problem so that fixing it clears the banner (`clear_notice`)."""
        self.notice.show_message(text, level, key, action)
        self.statusBar().showMessage(text.split("\n")[0], 10000)
        self.notice_shown.emit(text, level)

    def clear_notice(self, key: str):
        self.notice.clear(key)

    # -- opening clips -------------------------------------------------------------------------

    def choose_file(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open audio", self._last_dir, AUDIO_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path, start_s: float = 0.0, length_s: float | None = None, **reaper_fields):
        """Read and analyse the region in the background; `clip_loaded` fires when it is shown."""
        self._loading_path = str(path)
        self.statusBar().showMessage(f"Opening {Path(path).name}…")
        self._last_dir = str(Path(path).parent)
        run_in_background(load_clip, path, start_s, length_s, **reaper_fields,
                          owner=self, on_result=self._on_clip_loaded,
                          on_error=lambda e, p=str(path): self._on_clip_failed(p, e))

    def _on_clip_failed(self, path, error):
        self.show_notice(f"Could not open {Path(path).name}: {error}. Choose a WAV, FLAC, AIFF, MP3 or OGG file "
                         "that plays in your DAW.")

    def _on_clip_loaded(self, clip: Clip):
        if clip.path != str(Path(self._loading_path).expanduser()):
            return  # another file was asked for while this one loaded
        self.clip = clip
        self.time_view.reset(clip.n_frames)
        self.clip_view.set_clip(clip)
        self.mask_model.reset(clip.n_frames)
        self.grid.set_overlay(None)
        self._sync_scrollbar()
        self.setWindowTitle(f"VampBridge — {clip.name}")
        origin = " (from Reaper)" if clip.from_reaper else ""
        self.statusBar().showMessage(f"Opened {clip.describe()}{origin}", 6000)
        self.variations_panel.set_tokens_shown(False)  # the tokens of another clip's variation
        self.variations_panel.set_open_clip(self.open_clip_key(), clip.from_reaper,
                                            "" if clip.from_reaper else
                                            "This clip was opened from a file: open it from Reaper "
                                            "(VampBridge: Open in editor) to send takes back")
        self._last_request = None
        self._update_vamp_button()
        self.clip_loaded.emit(clip)
        self.generate_mask(live=False, first=True)
        self._reload_variations(clip)
        if clip.beats_s is not None:  # Reaper's tempo map knows the beats and the metre
            self._on_beats(clip, [seconds_to_frame(t) for t in clip.beats_s],
                           [seconds_to_frame(t) for t in clip.downbeats_s or ()])
            return
        run_in_background(detect_beats, clip.engine_audio, owner=self,
                          on_result=lambda beats, c=clip: self._on_beats(c, beats),
                          on_error=lambda e: log.warning("beat detection failed: %s", e))

    def _on_beats(self, clip: Clip, beats, downbeats=None):
        """The ruler's bars and beats, and what snapping snaps to (Reaper's or the detector's)."""
        if clip is not self.clip:
            return
        self.time_view.set_beats(beats, downbeats)
        self.beats_found.emit(list(beats))

    def _reload_variations(self, clip: Clip):
        """List the clip's variations found in its render folder (after a restart, or made by
        another run), from their recipes."""
        from bridge.paths import default_render_dir

        folder = self.sampling_panel.output_dir.text().strip() or str(default_render_dir())
        key = self.open_clip_key()

        def show(found):
            if clip is not self.clip:
                return
            for variation in found:
                self.variations_panel.add(variation)
            self.variations_reloaded.emit(len(found))

        run_in_background(variations_on_disk, folder, key, owner=self, on_result=show,
                          on_error=lambda e: log.warning("could not list %s: %s", folder, e))

    def _on_open_request(self, request):
        """Reaper's "open in editor": load that region, remember the item for sending takes back."""
        self.open_file(request.source_path, request.start_s, request.length_s, playrate=request.playrate,
                       item_guid=request.item_guid, take_guid=request.take_guid, client=request.client,
                       beats_s=request.beats_s, downbeats_s=request.downbeats_s)
        self.show_notice(f"Reaper opened {Path(request.source_path).name} for editing", "info")
        self.raise_()
        self.activateWindow()

    def dragEnterEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if not files:
            return
        if files[0].lower().endswith(".json"):
            self.load_recipe(files[0])
        else:
            self.open_file(files[0])
        event.acceptProposedAction()

    # -- the mask ------------------------------------------------------------------------------

    def set_tool(self, tool: str):
        if tool not in self.tool_actions:
            tool = TOOL_BRUSH
        self.grid.tool = tool
        self.tool_actions[tool].setChecked(True)

    def generate_mask(self, live: bool = False, first: bool = False):
        """Build the recipe's mask for variation 1 (the seed) on the thread pool, then apply it as
        one undo step (live edits in quick succession merge into one). A live edit over a
        hand-painted mask asks first whether to replace the painting or combine with it."""
        if self.clip is None:
            return
        try:
            recipe = self.recipe_panel.recipe()
        except ValueError as e:
            self.show_notice(f"The mask settings are not valid: {e}", key="mask_fields")
            return
        self.clear_notice("mask_fields")
        if recipe.beat_after_s > 0 and self.clip.beats_s is not None:
            # The clip's region is the job's region, so Reaper's beats need no shift.
            recipe = dataclasses.replace(recipe, beats_s=list(self.clip.beats_s),
                                         downbeats_s=list(self.clip.downbeats_s or ()))
        self._generation += 1
        generation, clip, seed = self._generation, self.clip, self.sampling_panel.seed.value()
        hand_edits = self._hand_edits

        def apply(cells):
            if generation != self._generation or clip is not self.clip or hand_edits != self._hand_edits:
                return  # a newer edit, painting or clip superseded this one
            if live and self.mask_model.is_hand_painted():
                if self._painting_choice is None:
                    self._ask_about_painting(cells, recipe)
                else:
                    self._apply_over_painting(cells, recipe, self._painting_choice)
                return
            name = recipe.preset or "custom"
            if first:
                self.mask_model.reset(clip.n_frames, cells, recipe)
            else:
                self.mask_model.replace(cells, recipe, f"Generate mask ({name})", merge_id=self._merge_id(live))
            self._after_generate()

        run_in_background(build_recipe_mask, recipe, clip.n_frames, seed, clip.engine_audio,
                          owner=self, on_result=apply,
                          on_error=lambda e: self.show_notice(f"Could not build the mask: {e}"))

    def _merge_id(self, live: bool) -> int:
        now = time.monotonic()
        merge = GENERATE_MERGE_ID if live and now - self._last_live_generate_s < LIVE_MERGE_WINDOW_S else -1
        self._last_live_generate_s = now if live else 0.0
        return merge

    def _after_generate(self):
        self.variations_panel.set_tokens_shown(False)  # another mask: an old variation's tint misleads
        self.mask_generated.emit()

    def _ask_about_painting(self, cells, recipe):
        """A live edit's mask waits while the musician decides what happens to their painting."""
        self._pending_generated = (cells, recipe, self.clip)
        if self.painting_prompt is not None:
            return  # asked already; the newest edit's mask is the one applied
        box = QMessageBox(QMessageBox.Icon.Question, "Painted mask",
                          "The mask has cells painted by hand. Replace the painting with the generator's "
                          "mask, or combine them (painted cells stay as painted, the generator decides "
                          "the rest)? The choice holds until you paint again; Undo brings the painting back.",
                          parent=self)
        buttons = {"replace": box.addButton("Replace painting", QMessageBox.ButtonRole.DestructiveRole),
                   "combine": box.addButton("Combine", QMessageBox.ButtonRole.AcceptRole),
                   "keep": box.addButton("Keep painting", QMessageBox.ButtonRole.RejectRole)}
        box.setDefaultButton(buttons["combine"])
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.buttonClicked.connect(lambda button: self._on_painting_choice(
            next(name for name, b in buttons.items() if b is button)))
        box.finished.connect(box.deleteLater)
        self.painting_prompt, self.painting_prompt_buttons = box, buttons
        box.open()

    def _on_painting_choice(self, choice: str):
        self.painting_prompt = None
        pending, self._pending_generated = self._pending_generated, None
        if choice == "keep":  # the fields go back to the mask they describe
            fields = self.mask_model.state.fields
            if fields is not None:
                self.recipe_panel.set_recipe(fields)
            return
        self._painting_choice = choice
        if pending is not None and pending[2] is self.clip:
            self._apply_over_painting(pending[0], pending[1], choice)

    def _apply_over_painting(self, cells, recipe, choice: str):
        model = self.mask_model
        name = recipe.preset or "custom"
        if choice == "combine":
            hand = model.hand_edits()
            combined = np.where(hand, model.cells, cells)
            model.replace(combined, None, f"Combine mask ({name}) with painting", merge_id=self._merge_id(True),
                          hand=hand.copy(), fields=recipe)
        else:
            model.replace(cells, recipe, f"Generate mask ({name}) over painting", merge_id=self._merge_id(True))
        self._after_generate()

    def _on_hand_edit(self):
        self._hand_edits += 1
        self._painting_choice = None  # new painting: ask again before a generator touches it

    def _on_fields_restored(self, fields):
        self.recipe_panel.set_recipe(fields)
        try:
            self.recipe_panel.recipe()
            self.clear_notice("mask_fields")
        except ValueError:
            pass

    def _check_fields(self):
        """Every field edit: a banner about invalid fields goes as soon as they are valid again."""
        try:
            self.recipe_panel.recipe()
        except ValueError as e:
            if not self.recipe_panel.live.isChecked():
                return  # said when Generate is pressed
            self.show_notice(f"The mask settings are not valid: {e}", key="mask_fields")
            return
        self.clear_notice("mask_fields")

    def _on_seed_changed(self, _seed):
        # The grid shows variation 1's mask, which a random recipe draws from the seed.
        if self.mask_model.recipe is not None:
            self.generate_mask(live=True)

    def _update_readout(self, *_):
        if self.clip is None:
            return
        model = self.mask_model
        fraction = model.fraction_regenerated()
        coarse, fine = model.group_fractions()
        kept_s = (1 - fraction) * self.clip.duration_s
        if model.recipe is not None:
            origin = f"recipe “{model.recipe.preset or 'custom'}” (each variation draws its own from seed + k)"
        else:
            origin = "painted (every variation uses exactly this mask)"
        self.readout.setText(f"<b>Regenerate {fraction:.1%}</b> of tokens (coarse {coarse:.0%}, fine {fine:.0%}) · "
                             f"keeps {kept_s:.2f} s worth of {self.clip.duration_s:.2f} s · mask: {origin}")

    # -- zoom and scroll -----------------------------------------------------------------------

    def _sync_scrollbar(self, *_):
        tv = self.time_view
        self.scrollbar.blockSignals(True)
        self.scrollbar.setRange(0, max(0, int(tv.n_frames - tv.visible_frames)))
        self.scrollbar.setPageStep(max(1, int(tv.visible_frames)))
        self.scrollbar.setValue(int(tv.start_frame))
        self.scrollbar.blockSignals(False)

    def _on_scrollbar(self, value: int):
        self.time_view.scroll_to(float(value))

    # -- recipes on disk -----------------------------------------------------------------------

    def current_settings(self) -> EditorSettings:
        return EditorSettings(mask=self.mask_model.to_recipe() if self.clip else self.recipe_panel.recipe(),
                              sampling=self.sampling_panel.sampling(), fx=self.sampling_panel.fx_value(),
                              n_variations=self.sampling_panel.variations.value(),
                              seed=self.sampling_panel.seed.value())

    def choose_save_recipe(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", str(Path(self._last_dir) / "recipe.json"),
                                              "JSON (*.json)")
        if path:
            self.save_recipe(path)

    def save_recipe(self, path):
        try:
            save_settings(path, self.current_settings())
        except (OSError, ValueError) as e:
            self.show_notice(f"Could not save {path}: {e}. Choose a folder you can write to.")
            return
        self.show_notice(f"Saved recipe to {path}", "info")

    def choose_load_recipe(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load recipe", self._last_dir, "JSON (*.json)")
        if path:
            self.load_recipe(path)

    def load_recipe(self, path):
        try:
            loaded = load_settings(path)
        except ValueError as e:
            self.show_notice(f"Could not load the recipe: {e}")
            return
        if loaded.sampling:
            self.sampling_panel.set_sampling(loaded.sampling)
        if loaded.fx is not None:
            self.sampling_panel.set_fx(loaded.fx)
        if loaded.n_variations:
            self.sampling_panel.variations.setValue(int(loaded.n_variations))
        if loaded.seed is not None:
            self.sampling_panel.seed.blockSignals(True)  # the mask below is rebuilt once, not twice
            self.sampling_panel.seed.setValue(int(loaded.seed))
            self.sampling_panel.seed.blockSignals(False)
        if loaded.mask is not None:
            self.apply_mask_recipe(loaded.mask)
        self.show_notice(f"Loaded {Path(path).name}", "info")

    def apply_mask_recipe(self, recipe):
        """A painted mask replaces the grid (it must fit this clip); a recipe fills the generator
        fields and is built with the current seed."""
        if recipe.grid is not None or recipe.grid_rle is not None:
            if self.clip is None:
                self.show_notice("This recipe holds a painted mask: open its clip first, then load it again.")
                return
            try:
                cells = build_recipe_mask(recipe, self.clip.n_frames, 0)
            except ValueError as e:
                self.show_notice(f"The painted mask does not fit this clip: {e}")
                return
            self.mask_model.replace(cells, None, "Load painted mask")
            self.mask_generated.emit()
            return
        self.recipe_panel.set_recipe(recipe)
        self.generate_mask(live=False)

    # -- jobs ----------------------------------------------------------------------------------

    def _update_vamp_button(self, *_):
        n = self.sampling_panel.variations.value()
        self.vamp_button.setText(f"Vamp  ×{n}")
        self.vamp_button.setEnabled(self.clip is not None and self.bridge is not None)

    def time_options(self) -> dict:
        """The time-aware options of the next Vamp (common contract): the selection to regenerate
        in context as `regen_start_s`/`regen_length_s` in SOURCE-file seconds, `loop`, `stereo`."""
        options = self.sampling_panel.time_options()
        selection = self.time_view.selection
        if selection is not None and self.clip is not None:
            start_s = frame_to_seconds(selection[0])
            end_s = min(frame_to_seconds(selection[1]), self.clip.duration_s)
            options["regen_start_s"] = round(self.clip.start_s + start_s, 6)
            options["regen_length_s"] = round(end_s - start_s, 6)
        return options

    def build_request(self) -> VampRequest:
        clip, sp = self.clip, self.sampling_panel
        # Only the options this engine's request takes (all of them once the time-aware engine is in).
        extra = {k: v for k, v in self.time_options().items() if k in REQUEST_FIELDS}
        return VampRequest(source_path=clip.path, start_s=clip.start_s, length_s=clip.length_s,
                           playrate=clip.playrate, mask=self.mask_model.to_recipe().to_json(),
                           sampling=sp.sampling(), fx=sp.fx_value(), n_variations=sp.variations.value(),
                           seed=sp.seed.value(), output_dir=sp.output_dir.text().strip() or None,
                           item_guid=clip.item_guid, take_guid=clip.take_guid, **extra)

    def _on_selection(self, start_frame: float, end_frame: float):
        self._apply_loop()
        if start_frame < 0:
            self.sampling_panel.show_selection(None)
        else:
            self.sampling_panel.show_selection(frame_to_seconds(start_frame), frame_to_seconds(end_frame))

    def vamp(self) -> str | None:
        """Queue a job with the current clip, mask and settings; returns its id (None on error, or
        when the request is identical to the previous one). Afterwards the seed moves on past the
        seeds used, unless it is locked, so the next Vamp makes new variations."""
        if self.clip is None or self.bridge is None:
            self.show_notice("Open a clip first (File > Open, or drop an audio file on the window).")
            return None
        try:
            request = self.build_request()
        except Exception as e:  # RequestError carries a message for a person
            self.show_notice(f"Could not start the job: {e}")
            return None
        if self._last_request is not None and request.to_dict() == self._last_request:
            self.show_notice(f"This Vamp is identical to the previous one (seed {request.seed}, same mask and "
                             "settings): its variations are listed already. Unlock the seed or change a setting "
                             "for new ones.", "info", key="identical")
            return None
        try:
            job_id = self.bridge.submit(request)
        except Exception as e:  # RequestError/JobError carry a message for a person
            self.show_notice(f"Could not start the job: {e}")
            return None
        self._last_request = request.to_dict()
        self._job_sources[job_id] = self.clip.path
        self.jobs_panel.add_job(job_id, self.clip.path, "gui", request.n_variations)
        self.statusBar().showMessage(f"Queued {request.n_variations} variation(s) of {self.clip.name} "
                                     f"(seeds {request.seed}–{request.seed + request.n_variations - 1})", 4000)
        self.sampling_panel.advance_seed(request.n_variations)
        return job_id

    def cancel_job(self, job_id: str):
        try:
            self.bridge.cancel(job_id)
        except Exception as e:
            self.show_notice(f"Could not cancel: {e}")

    def resume_job(self, job_id: str):
        """Queue an interrupted (or cancelled, or failed) job again: its missing variations are
        made with the seeds they would have had, so they come out as they would have."""
        try:
            self.bridge.resume(job_id)
        except Exception as e:  # JobError: done already, or unknown (the store was replaced)
            self.show_notice(f"Could not resume the job: {e}")
            return
        row = self.jobs_panel.rows.get(job_id)
        if row is not None:
            row.set_resumed()
        self.statusBar().showMessage("Job queued again for its missing variations", 4000)

    def _on_job_done(self, job_id, state, n_finished, n_failed):
        self.jobs_panel.on_done(job_id, state, n_finished, n_failed)
        if state == "done":
            self.statusBar().showMessage(f"Job finished: {n_finished} variation(s)", 5000)

    def _on_job_failed(self, job_id, code, message):
        self.show_notice(f"A job failed ({code}): {message}")

    def _on_result(self, job_id, record):
        source = self._job_sources.get(job_id)
        if source is None:
            try:
                source = self.bridge.job(job_id).source_path
            except Exception:
                source = ""
        self.variations_panel.add(Variation.from_record(record, source))
        if record.client == "gui":
            self.bridge.ack(job_id, record.index)

    def _on_engine_ready(self, info: dict):
        if info.get("device") == "failed":  # the service reports it; so must the companion
            self.engine_label.setText("engine: models failed to load")
            self.show_notice(f"The models could not be loaded: {info.get('load_error')}. Fix or reinstall "
                             "the model set (vampbridge models verify), then restart the companion.")
            return
        models = ", ".join(info.get("models", [])) or "?"
        self.engine_label.setText(f"engine: {models} on {info.get('device', '?')}")
        self._update_osc_label()

    # -- variations ----------------------------------------------------------------------------

    def play_variation(self, variation: Variation):
        if not self.player.available:
            self.show_notice(self.player.reason)
            return
        self._ab_original = False
        self._apply_loop()
        self.player.play(variation.audio_path)

    def _apply_loop(self):
        """The Loop button loops the time selection when there is one, else the whole file."""
        selection = self.time_view.selection if self.clip is not None else None
        if self.variations_panel.loop.isChecked() and selection is not None:
            self.player.set_loop(True, frame_to_seconds(selection[0]), frame_to_seconds(selection[1]))
        else:
            self.player.set_loop(self.variations_panel.loop.isChecked())

    def play_or_stop(self):
        """Space: stop what plays, or play the selected variation."""
        if self.player.current_path:
            self.player.stop()
            return
        variation = self.variations_panel.current()
        if variation is not None:
            self.play_variation(variation)

    def toggle_ab(self):
        """Switch between the selected variation (B) and the original region (A), same position."""
        variation = self.variations_panel.current()
        if variation is None or not self.player.available:
            if not self.player.available:
                self.show_notice(self.player.reason)
            return
        if getattr(self, "_ab_original", False):
            self._ab_original = False
            self.player.switch_to(variation.audio_path)
        else:
            recipe = variation.recipe().get("input", {})
            self._ab_original = True
            self.player.switch_to(recipe.get("path", variation.source_path), float(recipe.get("start_s", 0.0)))

    def _on_playing_changed(self, path: str):
        if path:
            side = "A (original)" if getattr(self, "_ab_original", False) else "B"
            self.statusBar().showMessage(f"Playing {side}: {Path(path).name}")

    def _on_current_variation(self, _current, _previous):
        self.show_variation_audio(self.variations_panel.current())

    def show_variation_audio(self, variation: Variation | None):
        """The selected variation's waveform and its change from the original, under the clip
        (only a variation of the open clip: another clip's would not line up)."""
        clip = self.clip
        if variation is None or clip is None or variation.clip_key != self.open_clip_key():
            self.clip_view.show_variation(None)
            return

        def show(view):
            if clip is self.clip and self.variations_panel.current() is variation:
                self.clip_view.show_variation(view)
                self.variation_shown.emit(view)

        run_in_background(load_variation_view, variation.audio_path, clip, owner=self, on_result=show,
                          on_error=lambda e: self.clip_view.show_variation(None))

    def show_variation_tokens(self, variation: Variation | None):
        if variation is None:
            self.grid.set_overlay(None)
            return
        run_in_background(changed_tokens, variation.recipe_path,
                          owner=self, on_result=self._show_overlay,
                          on_error=lambda e: self.show_notice(f"No token file for this variation ({e}); "
                                                              "re-render it to see its tokens."))

    def _show_overlay(self, overlay):
        if overlay is None or overlay.shape != self.mask_model.cells.shape:
            self.show_notice("This variation was made from another clip or region: open that clip to see its tokens.",
                             "info")
            return
        self.grid.set_overlay(overlay)

    def choose_export(self, variations):
        if not variations:
            self.show_notice("Tick the variations to export first.", "info")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export variations to", self._last_dir)
        if folder:
            self.export_variations(variations, folder)

    def export_variations(self, variations, folder) -> list[Path]:
        copied = []
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            for v in variations:
                for path in (v.audio_path, v.recipe_path):
                    copied.append(Path(shutil.copy2(path, folder)))
        except OSError as e:
            self.show_notice(f"Export stopped: {e}. Check that {folder} exists and has room.")
            return copied
        self.show_notice(f"Exported {len(variations)} variation(s) to {folder}", "info")
        return copied

    def open_clip_key(self) -> tuple | None:
        clip = self.clip
        return None if clip is None else clip_key(clip.path, clip.start_s, clip.length_s, clip.item_guid)

    def send_to_reaper(self, variations):
        """Add the open clip's variations among `variations` as takes of its Reaper item."""
        self.take_sender.send(self.clip, variations, port=self.listener_port(), token=self.osc_token())


def _padded(widget: QWidget) -> QWidget:
    holder = QWidget()
    layout = QVBoxLayout(holder)
    layout.setContentsMargins(6, 4, 6, 4)
    layout.addWidget(widget)
    return holder

