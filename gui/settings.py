"""The companion's persistent settings: one INI file beside the job database.

A file in `bridge.paths.data_dir()` (not the platform registry) so that `VAMPBRIDGE_DATA_DIR`
isolates tests and studios, and a person can read or delete it. Values round-trip as text; the
`get_*` helpers convert them back.
"""

from __future__ import annotations

import json
from pathlib import Path

from PyQt6.QtCore import QByteArray, QSettings


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
