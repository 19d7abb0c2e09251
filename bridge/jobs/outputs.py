"""Where the service may write: the request's output folder, checked, or the default render folder.

The folder check of `bridge.request.check_output_dir` applies (absolute, creatable, writable, not
a system folder); the service adds its own refusals on top: the home folder itself, the shared
roots that hold users' folders (`/home`, `/Users`, `/tmp`, ...), macOS's `/private/etc`, and
Windows' program folders. The service never deletes, and never writes over a file it did not
create (the pipeline names its files deterministically and only rewrites its own outputs).
"""

from __future__ import annotations

from pathlib import Path, PureWindowsPath

from bridge.jobs.errors import JobError

# Folders that are never an output folder: neither they nor anything inside them.
_SYSTEM_TREES_POSIX = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/boot",
                       "/dev", "/proc", "/sys", "/System", "/Library", "/Applications",
                       "/private/etc", "/private/var/db")
# Folders that may contain an output folder but are not one themselves.
_SHARED_ROOTS_POSIX = ("/", "/var", "/home", "/Users", "/Volumes", "/mnt", "/media", "/opt",
                       "/private", "/private/tmp", "/root", "/srv", "/tmp")
_SYSTEM_TREES_WINDOWS = ("c:\\windows", "c:\\program files", "c:\\program files (x86)",
                         "c:\\programdata")


def is_system_folder(path: Path) -> bool:
    """True for `/`, `/etc`, `/usr/...`, `C:\\Windows`, a drive root, the home folder itself, ...

    `path` must be absolute and resolved.
    """
    text = str(path)
    if path == Path.home().resolve():
        return True
    if PureWindowsPath(text).drive:
        p = PureWindowsPath(text)
        low = str(p).lower().rstrip("\\")
        if p == PureWindowsPath(p.anchor) or low == "c:\\users":
            return True
        return any(low == t or low.startswith(t + "\\") for t in _SYSTEM_TREES_WINDOWS)
    if text in _SHARED_ROOTS_POSIX:
        return True
    return any(text == t or text.startswith(t + "/") for t in _SYSTEM_TREES_POSIX)


def check_output_dir(output_dir: str | None, default_dir: Path) -> Path:
    """The folder a job writes into, created if needed.

    `output_dir` None or "" means `default_dir` (the default render folder). Raises
    `bridge.request.RequestError` or JobError, both with code `bad_output_dir`.
    """
    from bridge.request import check_output_dir as check_folder

    if output_dir and "\x00" in output_dir:
        raise JobError("bad_output_dir", f"output_dir {output_dir!r} contains a NUL character")
    folder = check_folder(output_dir or str(default_dir))
    if is_system_folder(folder):
        raise JobError("bad_output_dir",
                       f"output_dir {str(folder)!r} is a system or shared folder; choose a folder "
                       "of your own, e.g. inside your project")
    return folder
