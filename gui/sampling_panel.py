"""Sampling settings, seed, number of variations, effect chain and output folder.

`sampling()` gives the same JSON object the command line's `--sampling` and OSC's `sampling`
argument take; `fx()` a preset name from `bridge.fx.fx_presets()` or a loaded chain as a dict.
"""

from __future__ import annotations

import json
import random

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                             QLineEdit, QSpinBox, QToolButton, QVBoxLayout, QWidget)

import dataclasses

import bridge.request
from bridge.jobs.service import MAX_SEED, MAX_VARIATIONS_SPAN
from bridge.request import C2F_STEPS_DEFAULT, SAMPLING_DEFAULTS, VampRequest

from .settings import Settings

DEFAULTS = {"sampling_steps": SAMPLING_DEFAULTS["sampling_steps"], "c2f_sampling_steps": C2F_STEPS_DEFAULT,
            "temperature": 1.0, "top_p": None, "typical_filtering": True, "typical_mass": 0.15,
            "mask_temperature": 10.5}
CUSTOM_FX = "custom (loaded)"
#: The time-aware request fields (common contract: regen_start_s/regen_length_s, loop, stereo);
#: the panel offers them as far as this engine's VampRequest has them.
REQUEST_FIELDS = {f.name for f in dataclasses.fields(VampRequest)}
TIME_FIELDS = {"regen_start_s", "regen_length_s", "loop", "stereo"}
STEREO_MODES = tuple(getattr(bridge.request, "STEREO_MODES", ()))
STEREO_DEFAULT_LABEL = "stereo: default"


class SamplingPanel(QWidget):
    seed_changed = pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._custom_fx = None
        self.steps = QSpinBox(); self.steps.setRange(1, 1000)
        self.steps.setToolTip("Coarse sampling steps: more is slower and usually cleaner (36 in the authors' app)")
        self.c2f_steps = QSpinBox(); self.c2f_steps.setRange(1, 100)
        self.c2f_steps.setToolTip("Coarse-to-fine steps for the fine codebooks 4-13")
        self.temperature = QDoubleSpinBox(); self.temperature.setRange(0, 10); self.temperature.setSingleStep(0.05)
        self.temperature.setToolTip("Higher = wilder token choices")
        self.top_p_on = QCheckBox("Top-p")
        self.top_p = QDoubleSpinBox(); self.top_p.setRange(0.01, 1.0); self.top_p.setSingleStep(0.05); self.top_p.setValue(0.9)
        self.top_p.setToolTip("Sample only from the most likely tokens whose probabilities add up to p")
        self.typical = QCheckBox("Typical filtering")
        self.typical_mass = QDoubleSpinBox(); self.typical_mass.setRange(0.01, 1.0); self.typical_mass.setSingleStep(0.05)
        self.typical_mass.setToolTip("Typical-sampling mass (smaller = safer)")
        self.mask_temperature = QDoubleSpinBox(); self.mask_temperature.setRange(0, 100); self.mask_temperature.setSingleStep(0.5)
        self.mask_temperature.setToolTip("Randomness of which tokens are committed first at each step")
        self.seed = QSpinBox(); self.seed.setRange(0, MAX_SEED - MAX_VARIATIONS_SPAN)
        self.seed.setToolTip("Variation k uses seed + k; the mask shown is variation 1's")
        self.dice = QToolButton(); self.dice.setText("Roll"); self.dice.setToolTip("New random seed (D)")
        self.seed_lock = QCheckBox("Lock")
        self.seed_lock.setToolTip("Keep this seed for the next Vamp; unlocked, every Vamp moves the seed on "
                                  "past the variations it made, so the next Vamp makes new ones")
        self.variations = QSpinBox(); self.variations.setRange(1, 16)
        self.variations.setToolTip("How many variations one Vamp makes")
        self.fx = QComboBox()
        self.fx.setToolTip("Effect chain rendered after the engine (bridge/presets/fx)")
        self.output_dir = QLineEdit(); self.output_dir.setPlaceholderText("default render folder")
        self.output_dir.setToolTip("Where variations are written; empty = VampBridge's render folder")
        browse = QToolButton(); browse.setText("…"); browse.setToolTip("Choose the output folder")
        browse.clicked.connect(self._browse)
        self._fill_fx()
        # Time-aware generation (docs/formats.md): the selection to regenerate in context, the
        # region as a loop, the stereo mode. Shown when the engine's request takes them.
        self.selection_label = QLabel("whole clip")
        self.selection_label.setToolTip("Right drag on the waveform selects the part to regenerate in context "
                                        "(the rest is kept sample for sample); right click clears it")
        self.clear_selection = QToolButton(); self.clear_selection.setText("✕")
        self.clear_selection.setToolTip("Regenerate the whole clip again")
        self.clear_selection.setEnabled(False)
        self.loop = QCheckBox("Loop")
        self.loop.setToolTip("Treat the region as a loop: its end flows into its start without a seam")
        self.stereo = QComboBox()
        self.stereo.addItem(STEREO_DEFAULT_LABEL)
        self.stereo.addItems(list(STEREO_MODES))
        self.stereo.setToolTip("How a stereo source becomes the model's mono rows and back")

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.setVerticalSpacing(3)
        form.addRow("Steps / fine steps", _row(self.steps, self.c2f_steps))
        form.addRow("Temperature", self.temperature)
        form.addRow(self.top_p_on, self.top_p)
        form.addRow(self.typical, self.typical_mass)
        form.addRow("Mask temperature", self.mask_temperature)
        form.addRow("Seed", _row(self.seed, self.dice, self.seed_lock, stretch_first=True))
        form.addRow("Variations", self.variations)
        form.addRow("Effects", self.fx)
        form.addRow("Output", _row(self.output_dir, browse, stretch_first=True))
        if TIME_FIELDS & REQUEST_FIELDS:
            form.addRow("Regenerate", _row(self.selection_label, self.clear_selection, stretch_first=True))
            form.addRow(self.loop, self.stereo)
        self.loop.setVisible("loop" in REQUEST_FIELDS)
        self.stereo.setVisible(bool(STEREO_MODES) and "stereo" in REQUEST_FIELDS)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)

        self.top_p_on.toggled.connect(self.top_p.setEnabled)
        self.typical.toggled.connect(self.typical_mass.setEnabled)
        self.dice.clicked.connect(self.roll_seed)
        self.seed.valueChanged.connect(self.seed_changed.emit)
        self.set_sampling(DEFAULTS)
        self.variations.setValue(3)
        self.roll_seed()

    def _fill_fx(self):
        try:
            from bridge.fx import fx_presets

            names = sorted(fx_presets())
        except Exception:  # a broken preset file must not stop the window; "none" always works
            names = ["none"]
        self.fx.addItems(names)
        self.fx.setCurrentText("none")

    def _browse(self):
        folder = QFileDialog.getExistingDirectory(self, "Folder for variations", self.output_dir.text())
        if folder:
            self.output_dir.setText(folder)

    def roll_seed(self):
        self.seed.setValue(random.randrange(0, self.seed.maximum()))

    def advance_seed(self, n_variations: int):
        """After a Vamp: the next one starts past the seeds just used (seed + k), unless locked."""
        if self.seed_lock.isChecked():
            return
        following = self.seed.value() + n_variations
        self.seed.setValue(following if following <= self.seed.maximum() else 0)

    def show_selection(self, start_s: float | None, end_s: float | None = None):
        """The selection in clip seconds (None: the whole clip)."""
        self.selection_label.setText("whole clip" if start_s is None else f"selection {start_s:.2f}–{end_s:.2f} s")
        self.clear_selection.setEnabled(start_s is not None)

    def time_options(self) -> dict:
        """`loop` and `stereo` as the request's fields (the selection is added by the window)."""
        options = {"loop": self.loop.isChecked()}
        if self.stereo.currentText() != STEREO_DEFAULT_LABEL:
            options["stereo"] = self.stereo.currentText()
        return options

    # -- values -----------------------------------------------------------------------------

    def sampling(self) -> dict:
        return {"sampling_steps": self.steps.value(), "c2f_sampling_steps": self.c2f_steps.value(),
                "temperature": round(self.temperature.value(), 4),
                "top_p": round(self.top_p.value(), 4) if self.top_p_on.isChecked() else None,
                "typical_filtering": self.typical.isChecked(),
                "typical_mass": round(self.typical_mass.value(), 4),
                "mask_temperature": round(self.mask_temperature.value(), 4)}

    def set_sampling(self, values: dict):
        merged = {**DEFAULTS, **{k: v for k, v in values.items() if k in DEFAULTS}}
        self.steps.setValue(int(merged["sampling_steps"]))
        self.c2f_steps.setValue(int(merged["c2f_sampling_steps"]))
        self.temperature.setValue(float(merged["temperature"]))
        self.top_p_on.setChecked(merged["top_p"] is not None)
        self.top_p.setEnabled(merged["top_p"] is not None)
        if merged["top_p"] is not None:
            self.top_p.setValue(float(merged["top_p"]))
        self.typical.setChecked(bool(merged["typical_filtering"]))
        self.typical_mass.setValue(float(merged["typical_mass"]))
        self.typical_mass.setEnabled(bool(merged["typical_filtering"]))
        self.mask_temperature.setValue(float(merged["mask_temperature"]))

    def fx_value(self):
        if self.fx.currentText() == CUSTOM_FX:
            return self._custom_fx
        return self.fx.currentText()

    def set_fx(self, value):
        """A preset name, or a chain (dict/list) loaded from a recipe file."""
        if isinstance(value, str) and self.fx.findText(value) >= 0:
            self.fx.setCurrentText(value)
            return
        if isinstance(value, str):
            value = json.loads(value) if value.strip()[:1] in "[{" else value
        self._custom_fx = value
        if self.fx.findText(CUSTOM_FX) < 0:
            self.fx.addItem(CUSTOM_FX)
        self.fx.setCurrentText(CUSTOM_FX)

    # -- persistence ------------------------------------------------------------------------

    def save(self, settings: Settings):
        settings.set_json("sampling/values", self.sampling())
        settings.set("sampling/seed", self.seed.value())
        settings.set("sampling/variations", self.variations.value())
        settings.set("sampling/fx", self.fx.currentText() if self.fx.currentText() != CUSTOM_FX else "none")
        settings.set("sampling/output_dir", self.output_dir.text())
        settings.set("sampling/seed_locked", self.seed_lock.isChecked())

    def restore(self, settings: Settings):
        self.set_sampling(settings.get_json("sampling/values", {}))
        self.seed.setValue(int(settings.get("sampling/seed", self.seed.value())))
        self.variations.setValue(int(settings.get("sampling/variations", 3)))
        fx = str(settings.get("sampling/fx", "none"))
        if self.fx.findText(fx) >= 0:
            self.fx.setCurrentText(fx)
        self.output_dir.setText(str(settings.get("sampling/output_dir", "")))
        self.seed_lock.setChecked(settings.get_bool("sampling/seed_locked", False))


def _row(*widgets, stretch_first=False):
    row = QWidget()
    h = QHBoxLayout(row)
    h.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        h.addWidget(widget, 1 if (not stretch_first or i == 0) else 0)
    return row
