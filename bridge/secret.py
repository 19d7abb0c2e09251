"""The per-user secret that every OSC request carries as its `token` (docs/osc.md, Transport).

The service creates it on its first start: `bridge.paths.secret_path()` (`<data folder>/secret`),
mode 0600, one line of URL-safe text. Clients of the same user (the CLI's OSC client, the
companion, the ReaScripts) read the file themselves, so nobody types it, and another local
user, who cannot read the file, cannot send requests.

    secret = ensure_secret()   # the service
    token = read_secret()      # a client: "" when no service ever started for this user
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from bridge.inputs import InputError, read_small_file

_SECRET_BYTES = 32  # 256 bits, 43 URL-safe characters
_MAX_FILE_BYTES = 1000


class SecretError(ValueError):
    """The secret file cannot be made, trusted or read; the message says what to do. (A
    ValueError, as BridgeServer's other refusals, so front ends report it the same way.)"""


def _default_path() -> Path:
    from bridge.paths import secret_path

    return secret_path()


def ensure_secret(path: str | Path | None = None) -> str:
    """The secret in `path` (default `secret_path()`), created (mode 0600) if there is none.

    Refuses (SecretError) a file that other users can read or write, or that is not a regular
    file of ours: the service would otherwise accept requests from whoever planted or read it.
    """
    path = Path(path) if path is not None else _default_path()
    if os.path.lexists(path):
        return _read(path, check_owner=True)
    # Written whole under a temporary name, then linked into place: a client never reads half
    # a secret, and two services starting at once agree on one (the second link fails).
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_urlsafe(_SECRET_BYTES) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    except OSError as e:
        raise SecretError(f"cannot create the OSC secret {path}: {e.strerror}") from None
    finally:
        try:
            os.unlink(temporary)
        except OSError:
            pass
    return _read(path, check_owner=True)


def read_secret(path: str | Path | None = None) -> str:
    """The secret for a client, or "" when the file does not exist (no service has started)."""
    path = Path(path) if path is not None else _default_path()
    if not path.exists():
        return ""
    return _read(path, check_owner=False)


def _read(path: Path, *, check_owner: bool) -> str:
    if check_owner and os.name == "posix":
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            raise SecretError(f"the OSC secret {path} is not a regular file of this user; remove "
                              "it and start the service again to make a new one")
        if info.st_mode & 0o077:
            raise SecretError(f"the OSC secret {path} can be read or changed by other users "
                              f"(mode {stat.S_IMODE(info.st_mode):o}); remove it and start the "
                              "service again to make a new one")
    try:
        text = read_small_file(path, "OSC secret", max_bytes=_MAX_FILE_BYTES).decode("ascii")
    except (InputError, UnicodeDecodeError) as e:
        raise SecretError(f"cannot read the OSC secret {path} ({e}); remove it and start the "
                          "service again") from None
    secret = text.strip()
    if not secret or any(c not in _URL_SAFE for c in secret):
        raise SecretError(f"the OSC secret {path} is not one line of URL-safe text; remove it and "
                          "start the service again")
    return secret


_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
