"""The remote service's store of uploaded source regions, addressed by the SHA-256 of their bytes.

A client uploads each region (a WAV file holding exactly the samples it wants vamped) once; jobs
then name it by its hash. Nothing a client sends becomes a path: the file name is the hash, which
the store checks against the bytes it received, and the folder is the service's own.

    regions = RegionStore(data_dir / "remote" / "regions", max_bytes=256 * 2**20)
    regions.has(sha)                          # HEAD
    regions.add(sha, chunks)                  # PUT: streamed, size-limited, hash-checked, probed
    regions.path(sha)                         # for the job's source_path
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable

from bridge.jobs.errors import JobError

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_MAX_BYTES = 512 * 2**20  # 512 MiB: about 25 minutes of 48 kHz stereo float32


class RegionStore:
    """Content-addressed WAV files in one folder: `<sha256>.wav`, written atomically."""

    def __init__(self, folder: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)

    def path(self, sha256: str) -> Path:
        """The file of a stored region; JobError `unknown_region` if it was never uploaded."""
        path = self.folder / f"{check_sha256(sha256)}.wav"
        if not path.is_file():
            raise JobError("unknown_region", f"no region with sha256 {sha256}; upload it first "
                           "(PUT /v1/regions/<sha256>)")
        return path

    def has(self, sha256: str) -> bool:
        return (self.folder / f"{check_sha256(sha256)}.wav").is_file()

    def add(self, sha256: str, chunks: Iterable[bytes], *, declared_bytes: int | None = None) -> bool:
        """Store the WAV whose bytes are `chunks` under `sha256`; False if it was already there.

        See `upload` for what is refused."""
        if self.has(sha256):
            return False
        upload = self.upload(sha256, declared_bytes=declared_bytes)
        try:
            for chunk in chunks:
                upload.write(chunk)
        except BaseException:
            upload.abort()
            raise
        upload.commit()
        return True

    def upload(self, sha256: str, *, declared_bytes: int | None) -> "Upload":
        """Start receiving the region `sha256`: `write()` its bytes, then `commit()` (or `abort()`).

        Refuses (JobError) a body over `max_bytes` (`too_large`, up front when `declared_bytes`
        says so), bytes whose hash is not `sha256` (`bad_request`) and anything that is not a
        readable WAV file (`bad_audio`). A refused upload leaves nothing behind.
        """
        sha256 = check_sha256(sha256)
        if declared_bytes is not None and declared_bytes > self.max_bytes:
            raise _too_large(declared_bytes, self.max_bytes)
        return Upload(self, sha256)


class Upload:
    """One region arriving: a hidden temporary file, hashed as it is written."""

    def __init__(self, store: RegionStore, sha256: str) -> None:
        self._store = store
        self.sha256 = sha256
        fd, tmp = tempfile.mkstemp(prefix=f".upload-{sha256[:12]}-", suffix=".wav", dir=store.folder)
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(tmp)
        self._digest = hashlib.sha256()
        self.n_bytes = 0

    def write(self, chunk: bytes) -> None:
        self.n_bytes += len(chunk)
        if self.n_bytes > self._store.max_bytes:
            self.abort()
            raise _too_large(self.n_bytes, self._store.max_bytes)
        self._digest.update(chunk)
        self._file.write(chunk)

    def commit(self) -> Path:
        """Check the hash and the WAV, then move the file into place; JobError if either fails."""
        final = self._store.folder / f"{self.sha256}.wav"
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if self._digest.hexdigest() != self.sha256:
                raise JobError("bad_request", f"the uploaded bytes have sha256 "
                               f"{self._digest.hexdigest()}, not {self.sha256}; send the region's own hash")
            check_wav(self._tmp)
            os.replace(self._tmp, final)
        finally:
            self.abort()
        return final

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


def check_sha256(text: str) -> str:
    if not isinstance(text, str) or not SHA256_PATTERN.match(text):
        raise JobError("bad_request", f"{str(text)[:80]!r} is not a sha256 (64 lower-case hex digits)")
    return text


def check_wav(path: Path) -> None:
    """A RIFF/RF64 WAVE file that `bridge.audio` can read, with samples; JobError `bad_audio`."""
    from bridge.audio import AudioError, probe

    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise JobError("bad_audio", "the upload is not a WAV file (no RIFF/WAVE header); "
                       "send the region as WAV")
    try:
        probe(path)
    except AudioError as e:
        reason = str(e).replace(str(path), "the upload")
        raise JobError("bad_audio", f"the uploaded WAV cannot be read: {reason}") from None


def _too_large(n: int, limit: int) -> JobError:
    return JobError("too_large", f"the upload is {n} bytes, more than this service's limit of "
                    f"{limit} bytes; vamp a shorter region (or raise --max-upload-mb)")
