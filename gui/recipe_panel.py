"""The mask generators: a form over every `MaskRecipe` field, with the named presets as starting
points. The panel only edits a recipe; the window builds the mask with the engine's own
`MaskRecipe.build` (see `mask_grid.build_recipe_mask`), so what you see is what the engine uses.
"""

from __future__ import annotations

from PyQt6.QtCore import QEvent, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QKeySequence
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout,
                             QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from bridge.engine.prompts import DEFAULT_PRESET, PRESETS, MaskRecipe, preset

CUSTOM = "custom"
LIVE_DELAY_MS = 120  # regenerate this long after the last edit, so dragging a spin box stays smooth


def _spin(lo, hi, value, suffix="", tip=""):
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


def _dspin(lo, hi, value, step, decimals=2, suffix="", tip=""):
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    if suffix:
        box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


def parse_blocks(text: str) -> list:
    """'1.0-2.5, 4-5' -> [[1.0, 2.5], [4.0, 5.0]]; raises ValueError with the bad part."""
    blocks = []
    for part in (p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        try:
            start, end = (float(v) for v in part.split("-", 1))
        except ValueError:
            raise ValueError(f"block {part!r} should be START-END in seconds, e.g. 1.5-3") from None
        blocks.append([start, end])
    return blocks


def format_blocks(blocks) -> str:
    return ", ".join(f"{a:g}-{b:g}" for a, b in blocks)


class RecipePanel(QWidget):
    """Emits `recipe_edited` (debounced) when any field changes and `generate_clicked`."""

    recipe_edited = pyqtSignal()
    generate_clicked = pyqtSignal()
    fields_edited = pyqtSignal()  # every edit, not debounced (the window re-checks the fields)
    undo_requested = pyqtSignal()  # Ctrl+Z in a field: the mask's undo, not the field's text undo
    redo_requested = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._loading = False
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(LIVE_DELAY_MS)
        self._debounce.timeout.connect(self.recipe_edited.emit)

        self.preset_box = QComboBox()
        self.preset_box.addItems(sorted(PRESETS) + [CUSTOM])
        self.preset_box.setToolTip("A named starting point; changing any field below keeps its name "
                                   "as the recipe's origin")
        self.live = QCheckBox("Live")
        self.live.setChecked(True)
        self.live.setToolTip("Regenerate the mask as you edit the fields (one undo step per edit burst)")
        self.generate_button = QPushButton("Generate mask")
        self.generate_button.setToolTip("Build the mask from these settings with the seed of the Sampling panel")

        # Each field is named after the MaskRecipe field it edits (units in the labels).
        self.w = {
            "rand_mask_intensity": _dspin(0, 1, 1.0, 0.05, tip="Share of tokens regenerated at random (1 = all)"),
            "periodic_prompt": _spin(0, 200, 7, tip="Keep every P-th frame (0 = off)"),
            "periodic_prompt_width": _spin(1, 50, 1, " fr", "Frames kept around each periodic frame"),
            "periodic_offset": _spin(-1, 199, -1, tip="Shift of the periodic frames; 'random' draws it from the seed"),
            "prefix_s": _dspin(0, 600, 0, 0.25, 2, " s", "Prompt with this many seconds at the start: their "
                               "codebooks below Depth are kept, the ones from Depth up are still regenerated "
                               "(as in VampNet)"),
            "suffix_s": _dspin(0, 600, 0, 0.25, 2, " s", "Prompt with this many seconds at the end (codebooks "
                               "below Depth kept, the rest regenerated)"),
            "onset_mask_width": _spin(0, 50, 0, " fr", "Keep this many frames around each detected onset (0 = off)"),
            "beat_after_s": _dspin(0, 2, 0, 0.025, 3, " s", "Keep this long after each detected beat (0 = off)"),
            "beat_before_s": _dspin(0, 2, 0, 0.025, 3, " s", "Keep this long before each detected beat"),
            "strided": _spin(0, 200, 0, tip="Keep exactly every n-th frame (0 = off)"),
            "strided_offset": _spin(0, 199, 0, tip="First kept frame of the stride"),
            "dropout": _dspin(0, 1, 0, 0.05, tip="Re-mask each kept token with this probability"),
            "keep_lowest": _spin(0, 14, 0, tip="Always keep the lowest N codebooks entirely"),
            "upper_codebook_mask": _spin(0, 14, 3, tip="Codebook depth: regenerate every codebook >= N entirely"),
        }
        self.w["periodic_offset"].setSpecialValueText("random")
        self.blocks = QLineEdit()
        self.blocks.setPlaceholderText("e.g. 1.5-3, 6-8")
        self.blocks.setToolTip("Regenerate only inside these time ranges (seconds); empty = everywhere")
        self.compression_on = QCheckBox("Compression: keep only lowest")
        self.compression = _spin(0, 14, 2, " cb", "Keep only the lowest N codebooks at every frame "
                                 "(replaces everything above)")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Preset"))
        top.addWidget(self.preset_box, 1)
        top.addWidget(self.live)
        layout.addLayout(top)

        def group(title, rows):
            box = QGroupBox(title)
            form = QFormLayout(box)
            form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
            form.setContentsMargins(8, 4, 8, 4)
            form.setVerticalSpacing(3)
            for label, widget in rows:
                form.addRow(label, widget)
            layout.addWidget(box)

        def pair(a, b, between=""):
            row = QWidget()
            h = QHBoxLayout(row)
            h.setContentsMargins(0, 0, 0, 0)
            h.addWidget(a, 1)
            if between:
                h.addWidget(QLabel(between))
            h.addWidget(b, 1)
            return row

        w = self.w
        group("Random", [("Regenerate ratio", w["rand_mask_intensity"]), ("Dropout", w["dropout"])])
        group("Rhythm", [("Periodic P / width", pair(w["periodic_prompt"], w["periodic_prompt_width"])),
                         ("Periodic offset", w["periodic_offset"]),
                         ("Strided n / offset", pair(w["strided"], w["strided_offset"])),
                         ("Onset width", w["onset_mask_width"]),
                         ("Beat after / before", pair(w["beat_after_s"], w["beat_before_s"]))])
        self.prefix_label = QLabel()
        self.prefix_label.setToolTip(w["prefix_s"].toolTip())
        group("Time", [(self.prefix_label, pair(w["prefix_s"], w["suffix_s"])),
                       ("Blocks", self.blocks)])
        group("Codebooks", [("Depth (regen ≥)", w["upper_codebook_mask"]),
                            ("Keep lowest", w["keep_lowest"]),
                            (self.compression_on, self.compression)])
        layout.addWidget(self.generate_button)

        for widget in list(self.w.values()) + [self.blocks, self.compression]:
            widget.installEventFilter(self)
        self.w["upper_codebook_mask"].valueChanged.connect(self._update_prefix_label)
        for widget in self.w.values():
            widget.valueChanged.connect(self._edited)
        self.blocks.textEdited.connect(self._edited)
        self.compression_on.toggled.connect(self._edited)
        self.compression.valueChanged.connect(self._edited)
        self.preset_box.currentTextChanged.connect(self._preset_chosen)
        self.generate_button.clicked.connect(self.generate_clicked.emit)
        self.set_recipe(preset(DEFAULT_PRESET))
        self._update_prefix_label()

    def _update_prefix_label(self, *_):
        """Name what the prefix/suffix prompt keeps: only the codebooks below Depth."""
        depth = self.w["upper_codebook_mask"].value()
        kept = "no codebook" if depth <= 0 else "codebook 0" if depth == 1 else \
            "all codebooks" if depth >= 14 else f"codebooks 0–{depth - 1}"
        self.prefix_label.setText(f"Keep {kept} of start / end")

    def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
        """Ctrl+Z / Ctrl+Shift+Z in a field undo the mask edit (with its fields), in one step."""
        if event.type() in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress):
            for key, signal in ((QKeySequence.StandardKey.Undo, self.undo_requested),
                                (QKeySequence.StandardKey.Redo, self.redo_requested)):
                if event.matches(key):
                    event.accept()
                    if event.type() == QEvent.Type.KeyPress:
                        self._debounce.stop()  # an edit still waiting must not re-apply after the undo
                        signal.emit()
                    return True
        return super().eventFilter(watched, event)

    # -- recipe <-> fields ----------------------------------------------------------------------

    def recipe(self) -> MaskRecipe:
        """The recipe in the fields; raises ValueError (with the field) when one is invalid."""
        values = {name: widget.value() for name, widget in self.w.items()}
        values["periodic_offset"] = None if values["periodic_offset"] < 0 else values["periodic_offset"]
        for name in ("rand_mask_intensity", "dropout", "prefix_s", "suffix_s", "beat_after_s", "beat_before_s"):
            values[name] = round(float(values[name]), 6)
        values["blocks_s"] = parse_blocks(self.blocks.text())
        values["compression"] = self.compression.value() if self.compression_on.isChecked() else None
        origin = self.preset_box.currentText()
        values["preset"] = None if origin == CUSTOM else origin
        return MaskRecipe(**values)

    def set_recipe(self, recipe: MaskRecipe):
        """Show a recipe's fields (a painted grid keeps the fields as they were)."""
        self._loading = True
        try:
            for name, widget in self.w.items():
                value = getattr(recipe, name)
                widget.setValue(-1 if value is None else value)
            self.blocks.setText(format_blocks(recipe.blocks_s))
            self.compression_on.setChecked(recipe.compression is not None)
            if recipe.compression is not None:
                self.compression.setValue(recipe.compression)
            self.preset_box.setCurrentText(recipe.preset if recipe.preset in PRESETS else CUSTOM)
        finally:
            self._loading = False

    def _preset_chosen(self, name: str):
        if self._loading or name == CUSTOM:
            return
        self.set_recipe(preset(name))
        self._edited()

    def _edited(self, *_):
        if self._loading:
            return
        self.fields_edited.emit()
        if self.live.isChecked():
            self._debounce.start()
