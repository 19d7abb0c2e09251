"""Finished variations: listen (A/B against the original), see which tokens they regenerated and
their recipe, then send the chosen ones to Reaper as takes or export them to a folder.

Ticked items are "chosen" (Send / Export act on them); the selected item is the one played and
shown. The panel only shows and asks; the window does the work (playback, files, OSC).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton,
                             QSplitter, QVBoxLayout, QWidget)


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

    @classmethod
    def from_record(cls, record, source_path: str = "") -> "Variation":
        return cls(record.job_id, int(record.index), int(record.seed), record.audio_path, record.recipe_path,
                   record.take_name, record.item_guid, source_path)

    def recipe(self) -> dict:
        try:
            return json.loads(Path(self.recipe_path).read_text())
        except (OSError, ValueError):
            return {}


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


class VariationsPanel(QWidget):
    play_clicked = pyqtSignal(object)  # Variation
    stop_clicked = pyqtSignal()
    ab_clicked = pyqtSignal()
    changes_toggled = pyqtSignal(object)  # Variation or None
    send_clicked = pyqtSignal(list)
    export_clicked = pyqtSignal(list)
    load_recipe_clicked = pyqtSignal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAlternatingRowColors(True)
        self.list.setToolTip("Tick variations to send or export; select one to play it and see its tokens")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setPlaceholderText("Select a variation to see its recipe")
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSizeF(8.5)
        self.details.setFont(mono)

        self.play = QPushButton("▶ Play")
        self.stop = QPushButton("■ Stop")
        self.ab = QPushButton("A/B")
        self.ab.setToolTip("Switch between this variation (B) and the original clip (A) at the same position")
        self.changes = QPushButton("Show tokens")
        self.changes.setCheckable(True)
        self.changes.setToolTip("Tint the grid where this variation regenerated tokens")
        self.use_recipe = QPushButton("Use recipe")
        self.use_recipe.setToolTip("Load this variation's mask, sampling and effects into the editor")
        self.send = QPushButton("Send to Reaper")
        self.send.setObjectName("accent")
        self.export = QPushButton("Export…")

        title = QLabel("Variations")
        title.setObjectName("panelTitle")
        header = QHBoxLayout()
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(self.send)
        header.addWidget(self.export)
        transport = QHBoxLayout()
        for button in (self.play, self.stop, self.ab, self.changes, self.use_recipe):
            transport.addWidget(button)
        transport.addStretch(1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.list)
        split.addWidget(self.details)
        split.setSizes([260, 340])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(split, 1)
        layout.addLayout(transport)

        self.play.clicked.connect(lambda: self.current() and self.play_clicked.emit(self.current()))
        self.stop.clicked.connect(self.stop_clicked.emit)
        self.ab.clicked.connect(self.ab_clicked.emit)
        self.changes.toggled.connect(lambda on: self.changes_toggled.emit(self.current() if on else None))
        self.use_recipe.clicked.connect(lambda: self.current() and self.load_recipe_clicked.emit(self.current()))
        self.send.clicked.connect(lambda: self.send_clicked.emit(self.chosen()))
        self.export.clicked.connect(lambda: self.export_clicked.emit(self.chosen()))
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemDoubleClicked.connect(lambda item: self.play_clicked.emit(item.data(Qt.ItemDataRole.UserRole)))
        self._update_buttons()

    # -- content ----------------------------------------------------------------------------

    def add(self, variation: Variation) -> QListWidgetItem:
        for i in range(self.list.count()):  # a result re-sent (pending/resume) is shown once
            v = self.list.item(i).data(Qt.ItemDataRole.UserRole)
            if (v.job_id, v.index) == (variation.job_id, variation.index):
                return self.list.item(i)
        item = QListWidgetItem(f"{variation.take_name}  ·  {Path(variation.source_path or variation.audio_path).name}")
        item.setData(Qt.ItemDataRole.UserRole, variation)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
        item.setCheckState(Qt.CheckState.Checked)
        item.setToolTip(variation.audio_path)
        self.list.addItem(item)
        if self.list.currentItem() is None:
            self.list.setCurrentItem(item)
        self._update_buttons()
        return item

    def variations(self) -> list[Variation]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]

    def current(self) -> Variation | None:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def chosen(self) -> list[Variation]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def set_send_enabled(self, enabled: bool, why: str = ""):
        self._send_allowed = enabled
        self.send.setToolTip("Add the ticked variations as takes of the Reaper item they came from"
                             if enabled else why)
        self._update_buttons()

    def set_playback(self, available: bool, why: str = ""):
        self._playback = available
        for button in (self.play, self.stop, self.ab):
            button.setToolTip(button.toolTip() if available else why)
        self._update_buttons()

    def _update_buttons(self):
        has = self.list.count() > 0
        playback = getattr(self, "_playback", True)
        for button in (self.play, self.stop, self.ab):
            button.setEnabled(has and playback)
        for button in (self.changes, self.use_recipe, self.export):
            button.setEnabled(has)
        self.send.setEnabled(has and getattr(self, "_send_allowed", False))

    def _on_current(self, item, _previous):
        variation = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.details.setPlainText(recipe_summary(variation.recipe()) if variation else "")
        if self.changes.isChecked():
            self.changes_toggled.emit(variation)
