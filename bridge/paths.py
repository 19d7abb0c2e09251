"""Where VampBridge keeps its files: one per-user data folder, overridable for tests and studios.

- `data_dir()`: $VAMPBRIDGE_DATA_DIR, else the platform's per-user data folder
  (~/.local/share/vampbridge, ~/Library/Application Support/VampBridge, %APPDATA%/VampBridge);
- `models_dir()`: $VAMPBRIDGE_MODELS_DIR, else data_dir()/models (one sub-folder per model set);
- `default_render_dir()`: data_dir()/renders, used when a request names no output folder;
- `jobs_db_path()`: data_dir()/jobs.sqlite3;
- `secret_path()`: data_dir()/secret, the per-user OSC secret (`bridge.secret`).
"""

import os
import sys
from pathlib import Path


def data_dir() -> Path:
    override = os.environ.get("VAMPBRIDGE_DATA_DIR")
    if override:
        path = Path(override).expanduser()
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "VampBridge"
    elif os.name == "nt":
        path = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "VampBridge"
    else:
        path = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "vampbridge"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    override = os.environ.get("VAMPBRIDGE_MODELS_DIR")
    path = Path(override).expanduser() if override else data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_render_dir() -> Path:
    path = data_dir() / "renders"
    path.mkdir(parents=True, exist_ok=True)
    return path


def jobs_db_path() -> Path:
    return data_dir() / "jobs.sqlite3"


def secret_path() -> Path:
    return data_dir() / "secret"
