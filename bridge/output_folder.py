"""Output folders: the one rule for where renders may go, and writing into one without surprises.

The rule (`check_output_dir`), the same for vamp, rerender, studies, the CLI, the service and the
companion: the folder is absolute; neither the path as given nor the path it resolves to is a
system folder (`/etc`, `/usr/...`, `/dev/...`, `C:\\Windows`, ...) or one of the shared roots that
only hold other folders (`/`, `/tmp`, `/home`, the home folder itself, a drive root, ...). All of
this is decided BEFORE anything is created; then the missing folders are made one by one, each
opened without following links, so a link planted meanwhile is refused, not followed.

Writing (`OutputFolder`): the checked folder is held open as a directory descriptor for the whole
job, files are written there under a hidden temporary name and published with a hard link to the
final name, which fails if that name exists, so a file VampBridge did not create is never
replaced. Right before each publish the folder's path is walked again without following links and
must still lead to the folder that was checked: swapping it (or a parent) for a link to
somewhere else mid-job stops the job with `bad_output_dir`. Every published file is entered in
`CreatedFiles`, the per-user record that lets a later run reuse its own earlier outputs and
nothing else.
"""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import stat
from pathlib import Path, PureWindowsPath

from .request import RequestError

# Folders that are never an output folder: neither they nor anything inside them.
_SYSTEM_TREES_POSIX = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot",
                       "/dev", "/proc", "/sys", "/var/lib", "/var/log", "/var/run", "/var/db", "/var/spool",
                       "/var/cache", "/var/mail", "/System", "/Library", "/Applications",
                       "/private/etc", "/private/var/db")
# Folders that may contain an output folder but are not one themselves.
_SHARED_ROOTS_POSIX = ("/", "/var", "/var/tmp", "/home", "/Users", "/Volumes", "/mnt", "/media", "/opt",
                       "/private", "/private/tmp", "/private/var", "/root", "/srv", "/tmp", "/run")
_SYSTEM_TREES_WINDOWS = ("c:\\windows", "c:\\program files", "c:\\program files (x86)",
                         "c:\\programdata")

# Where directory descriptors work (Linux, macOS, BSD); elsewhere (Windows) paths are used and the
# folder is re-resolved before each publish instead.
_FD_BASED = os.open in os.supports_dir_fd and os.link in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")
# O_PATH (Linux) opens a folder for *at() calls without needing read permission on it, so a path
# through an execute-only parent (mode 0711) works as it does for plain open().
_DIR_FLAGS = (getattr(os, "O_PATH", os.O_RDONLY) | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0))
# link() is missing on some file systems (FAT, some network shares): publish by rename instead.
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS}


def _error(message: str) -> RequestError:
    return RequestError("output_dir", message, "bad_output_dir")


def is_system_folder(path: Path) -> bool:
    """True for `/`, `/etc`, `/usr/...`, `/tmp`, `C:\\Windows`, a drive root, the home folder itself...

    `path` must be absolute and normalised (no `..`).
    """
    text = str(path)
    try:
        if path == Path.home().resolve():
            return True
    except RuntimeError:  # no home folder known
        pass
    if PureWindowsPath(text).drive:
        p = PureWindowsPath(text)
        low = str(p).lower().rstrip("\\")
        if p == PureWindowsPath(p.anchor) or low == "c:\\users":
            return True
        return any(low == t or low.startswith(t + "\\") for t in _SYSTEM_TREES_WINDOWS)
    if text in _SHARED_ROOTS_POSIX:
        return True
    return any(text == t or text.startswith(t + "/") for t in _SYSTEM_TREES_POSIX)


def check_output_dir(path) -> Path:
    """The resolved output folder `path`, refused by the rule above, created (when missing) only
    after it passed. Raises RequestError `bad_output_dir` naming the folder and what to do."""
    if not path:
        raise _error("output folder is empty")
    if "\x00" in str(path):
        raise _error(f"output folder {str(path)!r} contains a NUL character")
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute():
        raise _error(f"output folder must be an absolute path, got {str(path)!r}")
    try:
        given, resolved = Path(os.path.abspath(p)), p.resolve()
    except (OSError, RuntimeError) as e:  # a link loop, a name too long
        raise _error(f"cannot use output folder {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    # Both spellings are checked: /bin is a link to /usr/bin on merged-/usr systems, and a link in
    # the user's home may point into a system folder. The message names both when they differ.
    named = str(given) if given == resolved else f"{given} (which is {resolved})"
    if is_system_folder(given) or is_system_folder(resolved):
        raise _error(f"refusing to write into {named}: it is a system or shared folder; choose a "
                     "folder of your own, e.g. inside your project")
    if resolved.exists() and not resolved.is_dir():
        raise _error(f"output path {resolved} exists and is not a folder")
    if _FD_BASED:
        os.close(_walk(resolved, create=True))
    else:
        try:
            resolved.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _error(f"cannot create output folder {resolved}: {e.strerror}") from None
    if not os.access(resolved, os.W_OK):
        raise _error(f"output folder {resolved} is not writable")
    return resolved


def check_report_folder(path, *, marker: str, what: str) -> Path:
    """The folder of a study or trace report: an output folder (the rule above) that is new,
    empty, or holds an earlier report of the same kind. Reports write fixed names (report.html,
    original.wav, figures/...), so any other folder could hold a user's files of those names.
    An empty folder gets the hidden file `.vampbridge-<what>` first, so a run stopped halfway
    can be run again; `marker` (study.json, trace.npz) also counts, for older reports."""
    folder = check_output_dir(path)
    own = folder / f".vampbridge-{what}"
    entries = sorted(os.listdir(folder))
    if not entries:
        with open(own, "x") as f:  # exclusive: never a file someone else made
            f.write(f"a VampBridge {what} report is written in this folder\n")
        return folder
    if any(os.path.isfile(p) and not os.path.islink(p) for p in (own, folder / marker)):
        return folder
    shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise _error(f"{folder} already holds files ({shown}) and no earlier {what}; a {what} writes report.html "
                 "and more there, which would replace files of those names. Choose a new or empty folder")


def _walk(folder: Path, *, create: bool) -> int:
    """A descriptor of `folder` (absolute, resolved) reached from `/` one name at a time without
    following any link; missing folders are made on the way when `create`."""
    fd = os.open(folder.anchor, _DIR_FLAGS)
    try:
        for name in folder.parts[1:]:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise _error(f"output folder {folder} is gone (its part {name!r} is missing)") from None
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile by someone else: opened (and checked) below
                except OSError as e:
                    raise _error(f"cannot create output folder {folder}: {e.strerror}") from None
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise _error(f"output folder {folder} changed: its part {name!r} is now a link or "
                                 "not a folder; nothing is written there") from None
                raise _error(f"cannot open output folder {folder}: {e.strerror}") from None
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


class OutputFolder:
    """A checked output folder, held open while a job writes into it (see the module docstring).

        with OutputFolder.open(path) as folder:
            temporary = folder.write_temporary("take.wav", write)
            if not folder.publish(temporary, "take.wav"):  # the name is taken: try another
                ...
    """

    def __init__(self, path: Path, fd: int | None):
        self.path = path  # resolved
        self._fd = fd
        self._identity = _identity(os.fstat(fd)) if fd is not None else None

    @classmethod
    def open(cls, path) -> OutputFolder:
        folder = check_output_dir(path)
        return cls(folder, _walk(folder, create=False) if _FD_BASED else None)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def subfolder(self, name: str) -> OutputFolder:
        """The folder `name` inside this one (made if missing), held open the same way."""
        self.verify()
        path = self.path / name
        if self._fd is None:
            path.mkdir(exist_ok=True)
            return OutputFolder(path, None)
        try:
            os.mkdir(name, 0o777, dir_fd=self._fd)
        except FileExistsError:
            pass
        try:
            return OutputFolder(path, os.open(name, _DIR_FLAGS, dir_fd=self._fd))
        except OSError as e:
            raise _error(f"cannot use {path} as a folder for outputs ({e.strerror}); "
                         "it must be a plain folder, not a link") from None

    def verify(self):
        """Raise `bad_output_dir` unless this folder's path still leads, with no link on the way,
        to the folder that was checked when the job started."""
        if self._fd is None:
            if os.path.realpath(self.path) != str(self.path) or not self.path.is_dir():
                raise self._replaced()
            return
        try:
            now = _walk(self.path, create=False)
        except RequestError:
            raise self._replaced() from None
        try:
            if _identity(os.fstat(now)) != self._identity:
                raise self._replaced()
        finally:
            os.close(now)

    def _replaced(self) -> RequestError:
        try:
            now = f"; it now leads to {os.path.realpath(self.path)}"
        except OSError:
            now = ""
        return _error(f"output folder {self.path} was replaced while the job ran{now}; nothing more "
                      "is written there. Keep the output folder in place while a job runs, then run the job again")

    # -- reading what is there ------------------------------------------------------------------

    def lstat(self, name: str):
        """os.stat_result of `name` in this folder (not following a link), or None."""
        try:
            if self._fd is None:
                return os.lstat(self.path / name)
            return os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def created_here(self, name: str) -> bool:
        """True when `name` is a file VampBridge published here and nobody replaced since."""
        st = self.lstat(name)
        return st is not None and stat.S_ISREG(st.st_mode) and CreatedFiles().knows(self.path / name, st)

    def read_bytes(self, name: str) -> bytes:
        """The content of the file `name` here (never through a link)."""
        if self._fd is None:
            return (self.path / name).read_bytes()
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), dir_fd=self._fd)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    # -- writing --------------------------------------------------------------------------------

    def write_temporary(self, name: str, write) -> str:
        """A new hidden file beside `name`, filled by `write(binary file)` and flushed to disk;
        returns its name, to `publish` or `discard`. Without directory descriptors (Windows) the
        folder is verified first, so a swapped folder gets not even the temporary file."""
        if self._fd is None:
            self.verify()
        temporary = f".{name}.{secrets.token_hex(6)}.tmp"
        flags = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))
        if self._fd is None:
            fd = os.open(self.path / temporary, flags, 0o666)
        else:
            fd = os.open(temporary, flags, 0o666, dir_fd=self._fd)  # 0o666 less the umask, as open() gives
        try:
            with os.fdopen(fd, "w+b") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            self.discard(temporary)
            raise
        return temporary

    def discard(self, temporary: str):
        try:
            if self._fd is None:
                os.unlink(self.path / temporary)
            else:
                os.unlink(temporary, dir_fd=self._fd)
        except FileNotFoundError:
            pass

    def publish(self, temporary: str, name: str, *, overwrite: bool = False, source: OutputFolder | None = None,
                keep_temporary: bool = False) -> bool:
        """Give the file `temporary` (in `source`, default this folder) the final `name` here.

        Without `overwrite` this never replaces anything: False when `name` exists (the
        temporary file stays, to publish under another name). With `overwrite` an existing
        `name` is replaced in one step (rename; a link at `name` is replaced, not followed).
        `keep_temporary`: leave `temporary` in place too (a second link), when it may have to go
        under another name after all; where links are missing it is consumed anyway.
        The folder (and `source`) are verified first; the new file is entered in CreatedFiles.
        """
        source = source or self
        self.verify()
        if source is not self:
            source.verify()
        src_fd, dst_fd = source._fd, self._fd
        src = temporary if src_fd is not None else source.path / temporary
        dst = name if dst_fd is not None else self.path / name
        fds = {"src_dir_fd": src_fd, "dst_dir_fd": dst_fd} if dst_fd is not None else {}
        if overwrite:
            os.replace(src, dst, **fds)
        else:
            try:
                os.link(src, dst, follow_symlinks=False, **fds) if fds else os.link(src, dst)
            except FileExistsError:
                return False
            except OSError as e:
                if e.errno not in _NO_LINK_ERRNOS:
                    raise
                if not self._claim(name):
                    return False
                os.replace(src, dst, **fds)  # onto the empty placeholder we just created
            else:
                if not keep_temporary:
                    source.discard(temporary)
        st = self.lstat(name)
        if st is not None:
            CreatedFiles().add(self.path / name, st)
        return True

    def _claim(self, name: str) -> bool:
        """Create `name` empty and exclusively (the fallback where hard links are missing)."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(name, flags, 0o666, dir_fd=self._fd) if self._fd is not None else \
                os.open(self.path / name, flags, 0o666)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    def remove_own(self, name: str):
        """Remove `name` if it is a file VampBridge created here (undoing half a publish)."""
        if self.created_here(name):
            self.discard(name)


def candidate_names(stem: str, suffixes, limit: int = 1000):
    """[`stem.suffix`, ...], then with `stem-2`, `stem-3`, ...: the names an output may take, in
    order (a collision with someone else's file moves it to the next)."""
    for n in range(1, limit + 1):
        base = stem if n == 1 else f"{stem}-{n}"
        yield [base + s for s in suffixes]


def _identity(st) -> tuple:
    return st.st_dev, st.st_ino


class CreatedFiles:
    """The per-user record of the files VampBridge created: path, device, inode, size and
    modification time, in `<data_dir>/created-files.sqlite3`. A file whose path is known but
    whose identity differs (someone replaced it) is not ours. A data folder that cannot be
    written only costs the record: nothing is then reused, and still nothing is overwritten."""

    def __init__(self, path: Path | None = None):
        self.path = path

    def _run(self, sql: str, values: tuple):
        if self.path is None:
            from .paths import data_dir

            self.path = data_dir() / "created-files.sqlite3"
        db = sqlite3.connect(self.path, timeout=10)
        try:
            with db:  # one transaction, committed on leaving
                db.execute("CREATE TABLE IF NOT EXISTS created (path TEXT PRIMARY KEY, dev INTEGER, "
                           "ino INTEGER, size INTEGER, mtime_ns INTEGER)")
                return db.execute(sql, values).fetchone()
        finally:
            db.close()

    def add(self, path: Path, st):
        try:
            self._run("INSERT OR REPLACE INTO created VALUES (?, ?, ?, ?, ?)",
                      (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        except (sqlite3.Error, OSError):
            pass

    def knows(self, path: Path, st) -> bool:
        try:
            row = self._run("SELECT dev, ino, size, mtime_ns FROM created WHERE path = ?", (str(path),))
        except (sqlite3.Error, OSError):
            return False
        return row is not None and tuple(row) == (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
