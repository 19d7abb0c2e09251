"""The companion's persistent settings: one INI file beside the job database.

A file in `bridge.paths.data_dir()` (not the platform registry) so that `VAMPBRIDGE_DATA_DIR`
isolates tests and studios, and a person can read or delete it. Values round-trip as text; the
`get_*` helpers convert them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings

from bridge.osc.server import DEFAULT_PORT as DEFAULT_OSC_PORT  # the port `vampbridge serve` uses

from .reaper_link import DEFAULT_LISTENER_PORT  # the Reaper Listener script's port


def default_settings_path() -> Path:
    from bridge.paths import data_dir

    return data_dir() / "companion.ini"


class Settings:
    def __init__(self, path=None):
        self.path = Path(path) if path else default_settings_path()
        self.qsettings = QSettings(str(self.path), QSettings.Format.IniFormat)

    def get(self, key: str, default=None):
        value = self.qsettings.value(key, default)
        return default if value is None else value

    def get_int(self, key: str, default: int) -> int:
        try:
            return int(self.get(key, default))
        except (TypeError, ValueError):
            return default

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")

    def set(self, key: str, value):
        self.qsettings.setValue(key, value)

    def get_json(self, key: str, default):
        try:
            return json.loads(self.get(key, "")) if self.get(key, "") else default
        except (TypeError, ValueError):
            return default

    def set_json(self, key: str, value):
        self.set(key, json.dumps(value))

    def get_bytes(self, key: str) -> QByteArray | None:
        value = self.get(key)
        return value if isinstance(value, QByteArray) else None

    def sync(self):
        self.qsettings.sync()


@dataclass(frozen=True)
class ConnectionSettings:
    """How Reaper and the companion reach each other (Edit > Settings…, keys under `osc/` and
    `reaper/`). The OSC port and token are read once, when the companion starts its service; the
    Reaper listener port at every Send to Reaper."""

    osc_port: int = DEFAULT_OSC_PORT
    token: str = ""
    listener_port: int = DEFAULT_LISTENER_PORT

    @classmethod
    def read(cls, settings: Settings) -> "ConnectionSettings":
        return cls(osc_port=settings.get_int("osc/port", DEFAULT_OSC_PORT),
                   token=str(settings.get("osc/token", "")),
                   listener_port=settings.get_int("reaper/listener_port", DEFAULT_LISTENER_PORT))

    def write(self, settings: Settings):
        settings.set("osc/port", int(self.osc_port))
        settings.set("osc/token", self.token)
        settings.set("reaper/listener_port", int(self.listener_port))
        settings.sync()
