"""Finished variations: listen (A/B against the original), see which tokens they regenerated and
their recipe, then send the chosen ones to Reaper as takes or export them to a folder.

Variations are grouped by the clip they were made from (its Reaper item, or else its file and
region), newest first. Ticked items are "chosen": Export acts on all of them, Send to Reaper only
on those of the open clip. The selected item is the one played and shown. The panel only shows
and asks; the window does the work (playback, files, OSC).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import (QGridLayout, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QPushButton, QSplitter,
                             QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)


def clip_key(path: str, start_s: float = 0.0, length_s: float | None = None, item_guid: str = "") -> tuple:
    """What a variation belongs to: the Reaper item it was made from, or else the file region.
    Variations go back to Reaper only as takes of the item of their own clip."""
    if item_guid:
        return ("item", item_guid)
    try:
        path = str(Path(path).expanduser().resolve())
    except OSError:
        path = str(path)
    length = None if length_s is None or length_s <= 0 else round(float(length_s), 3)
    return ("file", path, round(float(start_s or 0.0), 3), length)


def clip_label(path: str, start_s: float = 0.0, length_s: float | None = None, item_guid: str = "") -> str:
    region = ""
    if start_s or (length_s is not None and length_s > 0):
        end = f"{start_s + length_s:.2f}" if length_s is not None and length_s > 0 else "end"
        region = f" @ {start_s:.2f}–{end} s"
    return f"{Path(path).name}{region}" + (" · Reaper item" if item_guid else "")


@dataclass
class Variation:
    job_id: str
    index: int
    seed: int
    audio_path: str
    recipe_path: str
    take_name: str
    item_guid: str = ""
    source_path: str = ""
    start_s: float = 0.0
    length_s: float | None = None
    created_s: float = 0.0  # when it was made (file time for variations found on disk)

    @classmethod
    def from_record(cls, record, source_path: str = "") -> "Variation":
        """A finished job's variation; its clip (file, region) comes from its recipe file."""
        variation = cls(record.job_id, int(record.index), int(record.seed), record.audio_path, record.recipe_path,
                        record.take_name, record.item_guid, source_path, created_s=time.time())
        recipe = variation.recipe()
        source = recipe.get("input", {})
        variation.source_path = source.get("path") or source_path
        variation.start_s = float(source.get("start_s") or 0.0)
        variation.length_s = source.get("length_s")
        return variation

    @classmethod
    def from_recipe_file(cls, recipe_path) -> "Variation | None":
        """A variation written by the pipeline, found on disk (None if the file is not one)."""
        try:
            recipe = json.loads(Path(recipe_path).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(recipe, dict) or recipe.get("kind") != "vampbridge.variation":
            return None
        try:
            source, request = recipe["input"], recipe.get("request", {})
            audio = recipe["output"]["path"]
            created = Path(recipe_path).stat().st_mtime
            return cls(f"disk:{recipe.get('fingerprint', '')}", int(recipe["variation"]), int(recipe["seed"]),
                       audio, str(recipe_path), str(recipe.get("take_name", "")), str(request.get("item_guid") or ""),
                       source["path"], float(source.get("start_s") or 0.0), source.get("length_s"), created)
        except (KeyError, TypeError, ValueError, OSError):
            return None

    @property
    def clip_key(self) -> tuple:
        return clip_key(self.source_path or self.audio_path, self.start_s, self.length_s, self.item_guid)

    @property
    def clip_label(self) -> str:
        return clip_label(self.source_path or self.audio_path, self.start_s, self.length_s, self.item_guid)

    def recipe(self) -> dict:
        try:
            return json.loads(Path(self.recipe_path).read_text())
        except (OSError, ValueError):
            return {}


def variations_on_disk(folder, key: tuple) -> list[Variation]:
    """The variations of the clip `key` in a render folder whose audio is still there (after a
    restart the list is rebuilt from the files, not from memory)."""
    found = []
    try:
        candidates = sorted(Path(folder).glob("*.json"))
    except OSError:
        return found
    for path in candidates:
        variation = Variation.from_recipe_file(path)
        if variation is not None and variation.clip_key == key and Path(variation.audio_path).is_file():
            found.append(variation)
    return found


def changed_tokens(recipe_path: str, recipe: dict | None = None) -> np.ndarray | None:
    """(14, T) 1 where the variation's tokens differ from the source's, from the pipeline's token
    file (`tokens` in the recipe: `codes` and the source's `original` codes). Files written before
    `original` was stored give the cells that were regenerated instead (`masked` == MASK id)."""
    recipe = recipe if recipe is not None else json.loads(Path(recipe_path).read_text())
    relative = recipe.get("tokens")
    if not relative:
        return None
    path = Path(recipe_path).parent / relative
    with np.load(path) as data:
        if "original" in data:
            return (data["codes"][0] != data["original"][0]).astype(np.uint8)  # first input channel
        mask_token = 1024  # the codec's codebook size: the engine's MASK id
        return (data["masked"][0] == mask_token).astype(np.uint8)


def _changed_fields(mask: dict) -> str:
    """A mask recipe as the fields that differ from the defaults: what a person set."""
    from bridge.engine.prompts import MaskRecipe

    if mask.get("grid_rle") is not None or mask.get("grid") is not None:
        return "painted by hand"
    defaults = MaskRecipe().to_json()
    parts = [f"{k}={v}" for k, v in mask.items() if k != "preset" and defaults.get(k, object()) != v]
    origin = mask.get("preset") or "custom"
    return f"{origin}" + (f" ({', '.join(parts)})" if parts else "")


def recipe_summary(recipe: dict) -> str:
    if not recipe:
        return "(recipe not readable)"
    stats = recipe.get("stats", {})
    sampling = recipe.get("sampling", {})
    chain = [entry.get("plugin", "?") for entry in recipe.get("fx", {}).get("chain", [])]
    source = recipe.get("input", {})
    lines = [f"{recipe.get('take_name', '')}",
             f"seed {recipe.get('seed')} · regenerated {stats.get('masked_fraction', 0):.1%} of tokens · "
             f"{stats.get('changed_fraction', 0):.1%} differ from the original",
             f"mask: {_changed_fields(recipe.get('mask', {}))}",
             f"sampling: {sampling.get('sampling_steps')} + {sampling.get('c2f_sampling_steps')} steps, "
             f"temperature {sampling.get('temperature')}, top-p {sampling.get('top_p')}, "
             f"typical {sampling.get('typical_filtering')}, mask temperature {sampling.get('mask_temperature')}",
             f"effects: {' > '.join(chain) or 'none'}",
             f"from: {Path(source.get('path', '')).name} @ {source.get('start_s', 0):.2f} s",
             f"file: {recipe.get('output', {}).get('path', '')}"]
    return "\n".join(lines)


ROLE = Qt.ItemDataRole.UserRole
LEGEND = ("<span style='color:#2fd0c0'>■</span> changed by this variation · "
          "<span style='color:#f2a33a'>■</span> regenerated, unchanged · "
          "<span style='color:#59626f'>■</span> kept")


class VariationsPanel(QWidget):
    """Variations grouped by the clip they were made from (the newest clip and variation on top).

    Send to Reaper acts on the ticked variations of the open clip only: the takes go to that
    clip's Reaper item, and a variation of another clip never lands there."""

    play_clicked = pyqtSignal(object)  # Variation
    stop_clicked = pyqtSignal()
    ab_clicked = pyqtSignal()
    changes_toggled = pyqtSignal(object)  # Variation or None
    send_clicked = pyqtSignal(list)  # the ticked variations of the open clip
    export_clicked = pyqtSignal(list)
    load_recipe_clicked = pyqtSignal(object)
    open_external_clicked = pyqtSignal(object)  # Variation: open in the system's player
    reveal_clicked = pyqtSignal(object)  # Variation: show its file in the file manager

    def __init__(self, parent=None):
        super().__init__(parent)
        self._groups: dict[tuple, QTreeWidgetItem] = {}
        self._open_key: tuple | None = None
        self._send_allowed = False
        self._send_why = ""
        self._playback = True
        self.tree = QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.header().setStretchLastSection(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)  # full names; the list scrolls sideways
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.tree.setToolTip("Variations per clip, newest first. Tick variations to send or export; "
                             "select one to play it and see its tokens")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Select a variation to see its recipe")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(8.5)
        self.details.setFont(mono)

        self.play = QPushButton("▶ Play")
        self.play.setToolTip("Play the selected variation (Space: play/stop)")
        self.stop = QPushButton("■ Stop")
        self.ab = QPushButton("A/B")
        self.ab.setToolTip("Switch between this variation (B) and the original clip (A) at the same position (A)")
        self.loop = QPushButton("Loop")
        self.loop.setCheckable(True)
        self.loop.setToolTip("Loop playback (of the time selection, when there is one)")
        self.changes = QPushButton("Show tokens")
        self.changes.setCheckable(True)
        self.changes.setToolTip("Tint the grid where this variation changed tokens")
        self.use_recipe = QPushButton("Use recipe")
        self.use_recipe.setToolTip("Load this variation's mask, sampling and effects into the editor")
        self.open_external = QPushButton("Open in player")
        self.open_external.setToolTip("Open the selected variation in the system's audio player")
        self.reveal = QPushButton("Reveal file")
        self.reveal.setToolTip("Show the selected variation's file in the file manager")
        self.send = QPushButton("Send to Reaper")
        self.send.setObjectName("accent")
        self.export = QPushButton("Export…")
        self.legend = QLabel(LEGEND)  # the window shows it under the grid
        self.legend.setObjectName("dim")
        self.legend.setWordWrap(True)
        self.legend.hide()
        self.no_audio = QLabel()
        self.no_audio.setObjectName("warning")
        self.no_audio.setWordWrap(True)
        self.no_audio.hide()

        title = QLabel("Variations")
        title.setObjectName("panelTitle")
        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.send)
        header.addWidget(self.export)
        transport = QGridLayout()  # two rows, so the panel fits a narrow window
        transport.setContentsMargins(0, 0, 0, 0)
        for i, button in enumerate((self.play, self.stop, self.ab, self.loop)):
            transport.addWidget(button, 0, i)
        for i, button in enumerate((self.changes, self.use_recipe, self.open_external, self.reveal)):
            transport.addWidget(button, 1, i)
        transport.setColumnStretch(4, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.tree)
        split.addWidget(self.details)
        split.setSizes([380, 220])
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(split, 1)
        layout.addWidget(self.no_audio)
        layout.addLayout(transport)

        self.play.clicked.connect(lambda: self.current() and self.play_clicked.emit(self.current()))
        self.stop.clicked.connect(self.stop_clicked.emit)
        self.ab.clicked.connect(self.ab_clicked.emit)
        self.changes.toggled.connect(self._on_changes_toggled)
        self.use_recipe.clicked.connect(lambda: self.current() and self.load_recipe_clicked.emit(self.current()))
        self.open_external.clicked.connect(lambda: self.current() and self.open_external_clicked.emit(self.current()))
        self.reveal.clicked.connect(lambda: self.current() and self.reveal_clicked.emit(self.current()))
        self.send.clicked.connect(lambda: self.send_clicked.emit(self.sendable()))
        self.export.clicked.connect(lambda: self.export_clicked.emit(self.chosen()))
        self.tree.currentItemChanged.connect(self._on_current)
        self.tree.itemChanged.connect(lambda *_: self._update_buttons())
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self._update_buttons()

    # -- content ----------------------------------------------------------------------------

    def add(self, variation: Variation) -> QTreeWidgetItem:
        """Show a variation under its clip's group (newest first). A variation shown already (a
        result re-sent, or the same files reused by an identical request) is shown once."""
        for item in self._variation_items():
            v = item.data(0, ROLE)
            if (v.job_id, v.index) == (variation.job_id, variation.index) or _same_file(v.audio_path,
                                                                                        variation.audio_path):
                return item
        group = self._group(variation)
        made = time.strftime("%H:%M", time.localtime(variation.created_s or time.time()))
        item = QTreeWidgetItem([f"{variation.take_name}  ·  {made}"])
        item.setData(0, ROLE, variation)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setToolTip(0, f"{variation.take_name}\n{variation.clip_label}\n{variation.audio_path}")
        self.tree.blockSignals(True)
        item.setCheckState(0, Qt.CheckState.Checked)
        position = 0
        while position < group.childCount() and group.child(position).data(0, ROLE).created_s > variation.created_s:
            position += 1
        group.insertChild(position, item)
        self._move_group_to_top(group)
        self.tree.blockSignals(False)
        self._label_group(group)
        if self.tree.currentItem() is None or self.tree.currentItem().data(0, ROLE) is None:
            self.tree.setCurrentItem(item)
        self._update_buttons()
        return item

    def _group(self, variation: Variation) -> QTreeWidgetItem:
        key = variation.clip_key
        group = self._groups.get(key)
        if group is None:
            group = QTreeWidgetItem([variation.clip_label])
            group.setData(0, ROLE, None)
            group.setData(0, ROLE + 1, key)
            group.setFlags(Qt.ItemFlag.ItemIsEnabled)
            font = group.font(0)
            font.setBold(True)
            group.setFont(0, font)
            group.setToolTip(0, variation.source_path)
            self._groups[key] = group
            self.tree.insertTopLevelItem(0, group)
            group.setExpanded(True)
        return group

    def _move_group_to_top(self, group: QTreeWidgetItem):
        index = self.tree.indexOfTopLevelItem(group)
        if index > 0:
            current = self.tree.currentItem()
            expanded = group.isExpanded()
            self.tree.takeTopLevelItem(index)
            self.tree.insertTopLevelItem(0, group)
            group.setExpanded(expanded)
            if current is not None:
                self.tree.setCurrentItem(current)

    def _label_group(self, group: QTreeWidgetItem):
        key = group.data(0, ROLE + 1)
        first = group.child(0).data(0, ROLE) if group.childCount() else None
        label = first.clip_label if first is not None else group.text(0)
        is_open = key == self._open_key
        group.setText(0, f"{label}  ({group.childCount()})" + ("  · open clip" if is_open else ""))
        group.setForeground(0, QBrush(QColor("#f2a33a" if is_open else "#aeb8c6")))

    def _variation_items(self) -> list[QTreeWidgetItem]:
        items = []
        for g in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(g)
            items.extend(group.child(i) for i in range(group.childCount()))
        return items

    def variations(self) -> list[Variation]:
        """Every shown variation, in list order (newest clip first, newest variation first)."""
        return [item.data(0, ROLE) for item in self._variation_items()]

    def group_keys(self) -> list[tuple]:
        return [self.tree.topLevelItem(g).data(0, ROLE + 1) for g in range(self.tree.topLevelItemCount())]

    def current(self) -> Variation | None:
        item = self.tree.currentItem()
        return item.data(0, ROLE) if item is not None else None

    def select(self, variation: Variation):
        for item in self._variation_items():
            if item.data(0, ROLE) is variation:
                self.tree.setCurrentItem(item)
                return

    def chosen(self) -> list[Variation]:
        """Every ticked variation, of any clip (Export)."""
        return [item.data(0, ROLE) for item in self._variation_items()
                if item.checkState(0) == Qt.CheckState.Checked]

    def sendable(self) -> list[Variation]:
        """The ticked variations of the open clip: the only ones Send to Reaper may send."""
        return [v for v in self.chosen() if self._open_key is not None and v.clip_key == self._open_key]

    def set_ticked(self, variation: Variation, ticked: bool):
        for item in self._variation_items():
            if item.data(0, ROLE) is variation:
                item.setCheckState(0, Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)

    def set_open_clip(self, key: tuple | None, can_send: bool, why: str = ""):
        """The clip in the editor: its group is marked and expanded, the others collapse."""
        self._open_key = key
        self._send_allowed = can_send
        self._send_why = why
        for group in self._groups.values():
            group.setExpanded(group.data(0, ROLE + 1) == key)
            self._label_group(group)
        self._update_buttons()

    def set_send_enabled(self, enabled: bool, why: str = ""):
        self.set_open_clip(self._open_key, enabled, why)

    def set_playback(self, available: bool, why: str = ""):
        """Without an audio device the reason is shown, with the system player as a fallback."""
        self._playback = available
        for button in (self.play, self.stop, self.ab, self.loop):
            if not available:
                button.setToolTip(why)
        short = why.split(";")[0].split(" (")[0].strip() or "no audio output"
        self.no_audio.setText(f"Can't play here: {short} (see the tooltip). Open in player or Reveal file instead.")
        self.no_audio.setToolTip(why)  # the whole reason, with what to install
        self.no_audio.setVisible(not available)
        self._update_buttons()

    def set_tokens_shown(self, shown: bool):
        self.changes.setChecked(shown)

    def _update_buttons(self):
        has = bool(self._variation_items())
        current = self.current() is not None
        for button in (self.play, self.stop, self.ab, self.loop):
            button.setEnabled(has and self._playback)
        for button in (self.changes, self.use_recipe, self.open_external, self.reveal):
            button.setEnabled(current)
        self.export.setEnabled(has)
        n = len(self.sendable())
        self.send.setText(f"Send {n} to Reaper" if n else "Send to Reaper")
        self.send.setEnabled(self._send_allowed and n > 0)
        if not self._send_allowed:
            self.send.setToolTip(self._send_why)
        elif n:
            self.send.setToolTip("Add the ticked variations of the open clip as takes of its Reaper item")
        else:
            self.send.setToolTip("Tick variations of the open clip (its group is marked “open clip”) to send them")

    def _on_changes_toggled(self, on: bool):
        self.legend.setVisible(on)
        self.changes_toggled.emit(self.current() if on else None)

    def _on_double_click(self, item, _column):
        variation = item.data(0, ROLE)
        if variation is not None:
            self.play_clicked.emit(variation)

    def _on_current(self, item, _previous):
        variation = item.data(0, ROLE) if item is not None else None
        self.details.setPlainText(recipe_summary(variation.recipe()) if variation else "")
        if self.changes.isChecked():
            self.changes_toggled.emit(variation)
        self._update_buttons()


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b
