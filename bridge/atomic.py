"""All-or-nothing file writes: a temporary file beside the target, flushed, then renamed onto it.

Readers never see a half-written file, a crash leaves the previous file (or none), and the result
gets the permissions a plainly created file would have (mkstemp's files are owner-only).
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def give_normal_permissions(path):
    """rw for everyone the umask allows, like open(path, "w") would give."""
    os.chmod(path, 0o666 & ~_UMASK)


def temporary_path_beside(path: Path, suffix: str = ".tmp") -> str:
    """A new empty file in `path`'s folder, hidden, named after it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return tmp


@contextmanager
def atomic_file(path, mode: str = "wb"):
    """`with atomic_file(p, "w") as f: f.write(...)` replaces `p` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path_beside(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        give_normal_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
