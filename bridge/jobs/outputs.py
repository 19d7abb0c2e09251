"""Where the service may write: the request's output folder, checked, or the default render folder.

The service never writes anywhere else, never deletes, and never writes over a file it did not
create (the pipeline names its files deterministically and only rewrites its own outputs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PureWindowsPath

from bridge.jobs.errors import JobError

# Folders that are never an output folder: neither they nor anything inside them.
_SYSTEM_TREES_POSIX = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot",
                       "/dev", "/proc", "/sys", "/System", "/Library", "/Applications",
                       "/private/etc", "/private/var/db")
# Folders that may contain an output folder but are not one themselves.
_SYSTEM_ROOTS_POSIX = ("/", "/var", "/home", "/Users", "/Volumes", "/mnt", "/media", "/opt",
                       "/private", "/root", "/srv", "/tmp")
_SYSTEM_TREES_WINDOWS = ("c:\\windows", "c:\\program files", "c:\\program files (x86)",
                         "c:\\programdata")


def is_system_folder(path: Path) -> bool:
    """True for `/`, `/etc`, `/usr/...`, `C:\\Windows`, a drive root, the home folder itself, ...

    `path` must be absolute and resolved.
    """
    text = str(path)
    if path == Path.home():
        return True
    if sys.platform == "win32" or PureWindowsPath(text).drive:
        p = PureWindowsPath(text)
        low = str(p).lower().rstrip("\\")
        if p == PureWindowsPath(p.anchor) or low in ("c:\\users",):
            return True
        return any(low == t or low.startswith(t + "\\") for t in _SYSTEM_TREES_WINDOWS)
    if text in _SYSTEM_ROOTS_POSIX:
        return True
    return any(text == t or text.startswith(t + "/") for t in _SYSTEM_TREES_POSIX)


def check_output_dir(output_dir: str | None, default_dir: Path) -> Path:
    """The folder a job writes into, created if needed. Raises JobError(`bad_output_dir`).

    `output_dir` None or "" means `default_dir` (the default render folder). Otherwise it must be
    an absolute path that exists or can be created, is writable and is not a system folder.
    """
    if not output_dir:
        target = Path(default_dir)
    else:
        if "\x00" in output_dir:
            raise JobError("bad_output_dir", f"output_dir {output_dir!r} contains a NUL byte")
        target = Path(output_dir).expanduser()
        if not target.is_absolute():
            raise JobError("bad_output_dir",
                           f"output_dir {output_dir!r} is not an absolute path; send a full "
                           "path, or \"\" for the default render folder")
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError) as e:
        raise JobError("bad_output_dir", f"output_dir {str(target)!r} cannot be resolved: {e}")
    if is_system_folder(resolved):
        raise JobError("bad_output_dir",
                       f"output_dir {str(resolved)!r} is a system folder; choose a folder of "
                       "your own, e.g. inside your project")
    try:
        resolved.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise JobError("bad_output_dir",
                       f"output_dir {str(resolved)!r} cannot be created: {e.strerror or e}")
    if not resolved.is_dir() or not os.access(resolved, os.W_OK | os.X_OK):
        raise JobError("bad_output_dir", f"output_dir {str(resolved)!r} is not a writable folder")
    return resolved
