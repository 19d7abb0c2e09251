"""Files that a request names (a source, an `@file` argument, a recipe): checked before use.

A request may come from anyone who can reach the service, so every path it names is treated as
hostile until checked:

- `check_path_text(text, field)`: a usable absolute path (no NUL, no over-long names, no
  relative path that would be resolved against the service's working folder);
- `check_source_file(text, field)`: that, naming an existing regular file outside the system's
  pseudo-file folders (`/proc`, `/dev`, `/sys`), symlinks resolved, that starts like an audio
  file (a decoder handed gigabytes of something else scans all of it, for a minute);
- `read_small_file(path, field)`: the bytes of a regular file of at most `MAX_ARGUMENT_FILE_BYTES`,
  opened non-blocking (a FIFO or a device never blocks or floods the reader) and checked with
  `fstat` on the open descriptor, so the file checked is the file read;
- `read_json_file(path, field)`: that, parsed as UTF-8 JSON.

Every refusal is an `InputError` with the field, a stable error code of `docs/osc.md`, and a
message naming the file and what is wrong with it; never the file's content.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

#: `@file` arguments and recipes larger than this are refused before they are read.
MAX_ARGUMENT_FILE_BYTES = 1_000_000
#: The longest file name (one path component) most file systems store, in bytes.
MAX_NAME_BYTES = 255
#: The longest path Linux and macOS accept, in bytes.
MAX_PATH_BYTES = 4096
#: Folders of pseudo-files (processes, devices, kernel state): never media, never read.
PSEUDO_FILE_FOLDERS = tuple(Path(p) for p in ("/proc", "/dev", "/sys"))


class InputError(ValueError):
    """A path or file a request names that cannot be used; `code` is a docs/osc.md error code."""

    def __init__(self, field: str, message: str, code: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


def check_path_text(text, field: str, *, code: str = "bad_argument",
                    absolute: bool = True) -> Path:
    """`text` as a Path, refused (`InputError` with `code`) if it cannot name a file, or, with
    `absolute`, if it is relative."""
    if not isinstance(text, str) or not text:
        raise InputError(field, f"{field} must be a non-empty absolute path", code)
    if "\x00" in text:
        raise InputError(field, f"{field} contains a NUL character; send the file's path as it "
                         "is", code)
    try:
        encoded = os.fsencode(text)
    except UnicodeError:
        raise InputError(field, f"{field} is not valid text for a file name", code) from None
    shown = _shown(text)
    if len(encoded) > MAX_PATH_BYTES:
        raise InputError(field, f"{field} is {len(encoded)} bytes long, more than the "
                         f"{MAX_PATH_BYTES} a path may have", code)
    longest = max((len(part) for part in encoded.split(os.sep.encode())), default=0)
    if longest > MAX_NAME_BYTES:
        raise InputError(field, f"{field} {shown} has a name of {longest} bytes, more than the "
                         f"{MAX_NAME_BYTES} a file system stores; rename the file", code)
    path = Path(text)
    if absolute and not path.is_absolute():
        raise InputError(field, f"{field} {shown} is a relative path; send the absolute path "
                         "(the service does not guess which folder it is relative to)", code)
    return path


def check_source_file(text, field: str = "source_path") -> Path:
    """An absolute path naming an existing regular file (symlinks followed) outside /proc, /dev
    and /sys; returns the resolved path. Codes: `bad_argument` (the path itself),
    `source_missing`, `source_unreadable`."""
    path = check_path_text(text, field)
    try:
        resolved = path.resolve()
        info = os.stat(resolved)
    except FileNotFoundError:
        raise InputError(field, f"source file not found: {_shown(text)}", "source_missing") from None
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop on older Pythons
        raise InputError(field, f"cannot use {field} {_shown(text)}: {_reason(e)}",
                         "source_unreadable") from None
    for folder in PSEUDO_FILE_FOLDERS:
        if resolved == folder or folder in resolved.parents:
            raise InputError(field, f"{field} {_shown(text)} is in {folder}, which holds no media",
                             "source_unreadable")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(field, f"{field} {_shown(text)} is {_kind(info.st_mode)}, not an audio "
                         "file", "source_unreadable")
    if not os.access(resolved, os.R_OK):
        raise InputError(field, f"source file {_shown(text)} is not readable (permissions)",
                         "source_unreadable")
    if info.st_size > 0:  # an empty file gets the audio reader's own, clearer message
        head = read_small_file(resolved, field, max_bytes=_HEAD_BYTES, code="source_unreadable",
                               whole=False)
        if not looks_like_audio(head):
            raise InputError(field, f"cannot read {_shown(text)} as audio: it does not start like "
                             "a WAV, AIFF, FLAC, MP3 or Ogg file; re-export it in one of those "
                             "formats", "source_unreadable")
    return resolved


_HEAD_BYTES = 64
_OGG_CODECS = (b"\x01vorbis", b"OpusHead", b"\x7fFLAC", b"Speex")


def looks_like_audio(head: bytes) -> bool:
    """True if `head` (a file's first 64 bytes) starts like a container or stream an audio
    decoder reads: RIFF/RF64/BW64 WAVE, AIFF/AIFC, FLAC with its STREAMINFO, Ogg with a codec
    header in its first page, CAF, MP4 (`ftyp`), an ID3 tag, or an MPEG audio / ADTS frame
    sync. Only a first check: the decoder still decides."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64"):
        return head[8:12] == b"WAVE"
    if head[:4] == b"FORM":
        return head[8:12] in (b"AIFF", b"AIFC")
    if head[:4] == b"fLaC":  # then the STREAMINFO block: type 0 (maybe marked last), 34 bytes
        return head[4] & 0x7F == 0 and head[5:8] == b"\x00\x00\x22"
    if head[:4] == b"OggS":  # the first page holds the codec's identification header
        return head[4] == 0 and any(codec in head[26:] for codec in _OGG_CODECS)
    if head[:4] in (b"caff", b".snd") or head[:3] == b"ID3":
        return True
    if head[4:8] == b"ftyp":
        return True
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def read_small_file(path, field: str, *, max_bytes: int = MAX_ARGUMENT_FILE_BYTES,
                    code: str = "bad_request", whole: bool = True) -> bytes:
    """The bytes of the regular file at `path` (at most `max_bytes`); `InputError` otherwise.
    With `whole` False, the first `max_bytes` of a file of any size.

    A relative `path` is taken as the caller gives it (the CLI's working folder); the service
    refuses relative paths before it calls this. The file is opened with O_NONBLOCK (a FIFO with no writer does not block the open) and
    checked with fstat on that descriptor before one byte is read."""
    text = os.fspath(path)
    check_path_text(text, field, code=code, absolute=False)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(text, flags)
    except OSError as e:
        raise InputError(field, f"cannot read {field} file {_shown(text)}: {_reason(e)}",
                         code) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(field, f"{field} file {_shown(text)} is {_kind(info.st_mode)}, not a "
                             "regular file", code)
        if whole and info.st_size > max_bytes:
            raise InputError(field, f"{field} file {_shown(text)} is {info.st_size} bytes, more "
                             f"than the {max_bytes} allowed", code)
        chunks, size = [], 0
        while size <= max_bytes:  # the file may grow after fstat: stop one byte past the cap
            try:
                chunk = os.read(fd, max_bytes + 1 - size)
            except OSError as e:
                raise InputError(field, f"cannot read {field} file {_shown(text)}: {_reason(e)}",
                                 code) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if not whole:
            return b"".join(chunks)[:max_bytes]
        if size > max_bytes:
            raise InputError(field, f"{field} file {_shown(text)} grew past the {max_bytes} bytes "
                             "allowed while it was read", code)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json_file(path, field: str, *, max_bytes: int = MAX_ARGUMENT_FILE_BYTES,
                   code: str = "bad_request"):
    """The JSON value in the regular file at `path` (see `read_small_file`). Errors name the file
    and the line of a syntax error, never what the file holds."""
    data = read_small_file(path, field, max_bytes=max_bytes, code=code)
    shown = _shown(os.fspath(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(field, f"{field} file {shown} is not UTF-8 text", code) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(field, f"{field} file {shown} is not valid JSON (line {e.lineno}); it "
                         "must hold a JSON object or list", code) from None
    except RecursionError:
        raise InputError(field, f"{field} file {shown} nests JSON too deeply", code) from None


def _shown(text: str, limit: int = 200) -> str:
    """A path for a message: quoted, shortened, control characters escaped."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 4] + "...'"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _reason(error: Exception) -> str:
    if isinstance(error, OSError):
        if error.errno == errno.ENAMETOOLONG:
            return "the path or a name in it is too long"
        if error.errno == errno.ELOOP:
            return "too many symbolic links"
        return error.strerror or type(error).__name__
    return "symbolic link loop" if isinstance(error, RuntimeError) else type(error).__name__
