"""Edit > Settings…: how Reaper and the companion reach each other.

The OSC port and token of the embedded service, and the port of Reaper's Listener script, kept
in `companion.ini` (`osc/port`, `osc/token`, `reaper/listener_port`) through `Settings`. The
service opens its port once, at start-up, so the OSC port and token take effect the next time the
companion starts; the listener port is read at every Send to Reaper.
"""

from __future__ import annotations

from PyQt6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLayout, QLineEdit, QSpinBox,
                             QVBoxLayout)

from .settings import ConnectionSettings, Settings

MIN_PORT, MAX_PORT = 1024, 65535  # below 1024 needs root on Linux and macOS


class SettingsDialog(QDialog):
    """Shows the stored connection settings; OK writes them (and syncs the file)."""

    def __init__(self, settings: Settings, running_port: int | None = None, running_token: str | None = None,
                 parent=None):
        super().__init__(parent)
        self.setWindowTitle("VampBridge settings")
        self.settings = settings
        stored = ConnectionSettings.read(settings)

        self.osc_port = QSpinBox()
        self.osc_port.setRange(MIN_PORT, MAX_PORT)
        self.osc_port.setValue(min(max(stored.osc_port, MIN_PORT), MAX_PORT))
        self.osc_port.setToolTip("UDP port the companion's service listens on; Reaper's "
                                 "“VampBridge - Settings” must name the same port")
        self.token = QLineEdit(stored.token)
        self.token.setPlaceholderText("the per-user secret (only this user can reach the companion)")
        self.token.setToolTip("Shared token every OSC request must carry; Reaper's “VampBridge - Settings” "
                              "must hold the same token. Empty: the secret file the service keeps for this user")
        self.listener_port = QSpinBox()
        self.listener_port.setRange(MIN_PORT, MAX_PORT)
        self.listener_port.setValue(min(max(stored.listener_port, MIN_PORT), MAX_PORT))
        self.listener_port.setToolTip("UDP port of Reaper's “VampBridge - Listener” script (Send to Reaper)")

        form = QFormLayout()
        form.addRow("OSC port", self.osc_port)
        form.addRow("OSC token", self.token)
        form.addRow("Reaper listener port", self.listener_port)
        now = ""
        if running_port is not None:
            token = "" if running_token is None else (" with its own token" if running_token else " with the per-user secret")
            now = f" It runs on port {running_port}{token} now."
        self.note = QLabel("The OSC port and token take effect the next time the companion starts: close it and "
                           f"open it again.{now} The Reaper listener port is used from the next Send to Reaper. "
                           "Reaper's “VampBridge - Settings” script must use the same ports and token.")
        self.note.setWordWrap(True)
        self.note.setObjectName("dim")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.hide()

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                        | QDialogButtonBox.StandardButton.RestoreDefaults)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)
        layout = QVBoxLayout(self)
        # The dialog is never smaller than its content: when the problem line appears it grows
        # instead of squeezing the fields.
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)

        self.osc_port.valueChanged.connect(self._check)
        self.listener_port.valueChanged.connect(self._check)
        self._check()

    def values(self) -> ConnectionSettings:
        return ConnectionSettings(osc_port=self.osc_port.value(), token=self.token.text().strip(),
                                  listener_port=self.listener_port.value())

    def restore_defaults(self):
        defaults = ConnectionSettings()
        self.osc_port.setValue(defaults.osc_port)
        self.token.setText(defaults.token)
        self.listener_port.setValue(defaults.listener_port)

    def _check(self, *_):
        clash = self.osc_port.value() == self.listener_port.value()
        self.problem.setText(f"The OSC port and the Reaper listener port are both {self.osc_port.value()}: "
                             "the companion and Reaper's Listener script cannot both listen there. "
                             "Choose two different ports." if clash else "")
        self.problem.setVisible(clash)
        self.layout().activate()
        if self.height() < self.sizeHint().height():
            self.resize(self.width(), self.sizeHint().height())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(not clash)

    def accept(self):
        if self.osc_port.value() == self.listener_port.value():
            return
        self.values().write(self.settings)
        super().accept()
