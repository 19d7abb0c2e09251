"""Audio file I/O: probe a source, read a region of it, write a render atomically.

All reading and writing goes through `pedalboard.io.AudioFile`, which handles WAV, FLAC, AIFF,
MP3 and Ogg Vorbis (see `pedalboard.io.get_supported_read_formats()`). Arrays are float32 shaped
(channels, samples). Every failure is an `AudioError` whose message says what was wrong, with the
path or value, and what to do.
"""

import hashlib
import math
import os
import struct
import tempfile
from dataclasses import dataclass

import numpy as np
from pedalboard.io import AudioFile

from bridge.atomic import give_normal_permissions
from bridge.dsp import AudioError, check_finite
from bridge.truncation import find_problem as find_truncation
from bridge.truncation import flac_block_size, flac_checksum_problem

__all__ = [
    "AudioError",
    "SourceInfo",
    "probe",
    "read_region",
    "write_audio_atomic",
    "write_wav",
    "sha256_file",
]

_HASH_CHUNK_BYTES = 1 << 20


@dataclass
class SourceInfo:
    """What `probe` found in an audio file."""

    path: str
    sample_rate: float  # Hz; an int when the file's rate is whole (it nearly always is)
    channels: int
    n_samples: int  # frames per channel
    duration_s: float
    format: str  # container, from the file name: "wav", "flac", "aiff", "mp3", "ogg", ...


# --- opening -------------------------------------------------------------------------------

def _check_is_file(path):
    """Refuse a missing path, a folder, or an empty (0-byte) file before pedalboard sees it."""
    if not os.path.exists(path):
        raise AudioError(f"audio file not found: {path}; check the path (is the media offline?)")
    if not os.path.isfile(path):
        raise AudioError(f"not a file: {path}; pass the path of an audio file, not a folder")
    if os.path.getsize(path) == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}; re-export or re-record it")


def _open_for_reading(path):
    """Open `path` with pedalboard, turning its errors into AudioError."""
    _check_is_file(path)
    try:
        return AudioFile(str(path))
    except Exception as error:  # pedalboard raises ValueError/RuntimeError with varied text
        raise AudioError(
            f"cannot read {path} as audio ({error}); supported formats are WAV, FLAC, AIFF, "
            "MP3 and Ogg Vorbis; re-export the file in one of them"
        ) from error


def _whole_rate(sample_rate):
    return int(sample_rate) if float(sample_rate).is_integer() else float(sample_rate)


def _file_format(path):
    extension = os.path.splitext(str(path))[1].lower().lstrip(".")
    return {"aif": "aiff", "wave": "wav"}.get(extension, extension)


def probe(path):
    """Describe the audio file at `path` without decoding its samples (SourceInfo)."""
    path = os.fspath(path)
    with _open_for_reading(path) as source:
        return _checked_info(path, source)


def _checked_info(path, source):
    """SourceInfo of an open file, refusing truncated and empty files."""
    info = _info_from_open_file(path, source)
    _check_not_truncated(path)
    if info.n_samples == 0:
        raise AudioError(f"audio file holds no samples (0 frames): {path}; re-export or re-record it")
    return info


def _info_from_open_file(path, source):
    sample_rate = _whole_rate(source.samplerate)
    n_samples = int(source.frames)
    return SourceInfo(
        path=path,
        sample_rate=sample_rate,
        channels=int(source.num_channels),
        n_samples=n_samples,
        duration_s=n_samples / sample_rate,
        format=_file_format(path),
    )


# --- truncation ----------------------------------------------------------------------------

def _check_not_truncated(path):
    """Refuse a file whose audio is shorter than its header says, or whose last frame is damaged.

    pedalboard pads a truncated file with silence instead of failing, and reports the length its
    header promises, so this compares the header with what is on disk: for WAV and AIFF the data
    chunk's declared size with the bytes there, for FLAC, MP3 and Ogg the checks of
    `bridge.truncation` (last frame or page, frame and byte counts, CRCs).
    """
    declared_end, actual_end = _data_chunk_extent(path)
    if declared_end is not None and declared_end > actual_end:
        raise AudioError(
            f"audio file is truncated: the header of {path} says its audio data ends at byte "
            f"{declared_end} but the file has {actual_end} bytes; the copy or recording was cut "
            "short, so copy or export it again"
        )
    try:
        problem = find_truncation(path)
    except OSError as error:
        raise AudioError(f"cannot read {path} to check it is complete ({error.strerror})") from error
    if problem:
        raise AudioError(
            f"audio file is truncated or damaged: {path}: {problem}; the copy or export was cut "
            "short or corrupted, so copy or export it again"
        )


def _data_chunk_extent(path):
    """(declared end, file size) in bytes of the sample data of a RIFF WAV or AIFF file.

    Returns (None, size) for other formats, and for headers that do not state a usable size
    (RF64, or streaming writers that leave 0 or 0xFFFFFFFF).
    """
    file_size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12:
            return None, file_size
        if header[:4] == b"RIFF" and header[8:12] == b"WAVE":
            byte_order, data_id = "<", b"data"
        elif header[:4] == b"FORM" and header[8:12] in (b"AIFF", b"AIFC"):
            byte_order, data_id = ">", b"SSND"
        else:
            return None, file_size
        position = 12
        while position + 8 <= file_size:
            f.seek(position)
            chunk_id, chunk_size = struct.unpack(byte_order + "4sI", f.read(8))
            if chunk_id == data_id:
                if chunk_size in (0, 0xFFFFFFFF):
                    return None, file_size
                return position + 8 + chunk_size, file_size
            position += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
        # No sample data found: a file cut inside its header still declares its whole size.
        form_size = struct.unpack(byte_order + "I", header[4:8])[0]
        if form_size not in (0, 0xFFFFFFFF) and 8 + form_size > file_size:
            return 8 + form_size, file_size
    return None, file_size


# --- reading -------------------------------------------------------------------------------

def _region_in_samples(path, info, start_s, length_s):
    """Convert a region in seconds to (start, count) in samples, refusing regions off the file."""
    for name, value in (("start_s", start_s), ("length_s", length_s)):
        if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
            raise AudioError(f"{name} must be a finite number of seconds, got {value!r}")
    if start_s < 0:
        raise AudioError(f"region start_s={start_s} is negative in {path}; use a start >= 0 s")
    if length_s is not None and length_s <= 0:
        raise AudioError(
            f"region length_s={length_s} in {path} must be positive; "
            "pass None to read to the end of the file"
        )
    start = int(round(start_s * info.sample_rate))
    if start >= info.n_samples:
        raise AudioError(
            f"region start_s={start_s} is at or past the end of {path} "
            f"({info.duration_s:.3f} s long); choose a start before the end"
        )
    if length_s is None:
        return start, info.n_samples - start
    count = max(1, int(round(length_s * info.sample_rate)))
    if start + count > info.n_samples:
        available_s = (info.n_samples - start) / info.sample_rate
        raise AudioError(
            f"region start_s={start_s} length_s={length_s} runs past the end of {path} "
            f"({info.duration_s:.3f} s long); use length_s <= {available_s:.6f}"
        )
    return start, count


def read_region(path, start_s=0.0, length_s=None):
    """Read `length_s` seconds from `start_s` of the file at `path` (None: to the end).

    Seeks to the region and decodes only it. Seconds become samples with round(seconds *
    sample_rate). Returns (audio float32 (channels, n), sample_rate in Hz).
    """
    path = os.fspath(path)
    with _open_for_reading(path) as source:
        info = _checked_info(path, source)
        start, count = _region_in_samples(path, info, start_s, length_s)
        try:
            source.seek(start)
            audio = source.read(count)
        except Exception as error:
            raise AudioError(
                f"cannot decode {path} at {start_s} s ({error}); the file may be damaged, "
                "re-export it"
            ) from error
    if audio.shape[1] != count:
        raise AudioError(
            f"{path} ended early: read {audio.shape[1]} of {count} samples from {start_s} s; "
            "the file may be truncated or its length estimate (MP3) wrong, re-export it"
        )
    check_finite(audio, f"audio in {path}")
    if info.format == "flac":
        _check_flac_silence(path, audio, start)
    return np.ascontiguousarray(audio, dtype=np.float32), info.sample_rate


def _check_flac_silence(path, audio, start):
    """A damaged FLAC frame decodes as exactly one block of digital silence: where the region
    holds a whole block of it, the file's checksum decides whether it is real silence."""
    block = flac_block_size(path)
    if not block:
        return
    silent = ~np.any(audio != 0, axis=0)
    first = -(-start // block) * block  # blocks that lie wholly inside the region
    for block_start in range(first - start, audio.shape[1] - block + 1, block):
        if silent[block_start:block_start + block].all():
            break
    else:
        return

    def read_blocks():
        with _open_for_reading(path) as source:
            while source.tell() < source.frames:
                chunk = source.read(1 << 18)
                if chunk.shape[1] == 0:
                    return
                yield chunk

    problem = flac_checksum_problem(path, read_blocks)
    if problem:
        raise AudioError(f"audio file is damaged: {path}: {problem}; copy or export it again")


# --- writing -------------------------------------------------------------------------------

_WRITE_BIT_DEPTHS = {24: 24, "float32": 32}


def _refuse_protected(path, protect):
    """Refuse to write onto any of the `protect` paths (source media)."""
    target = os.path.realpath(path)
    for protected in protect:
        protected = os.fspath(protected)
        same = os.path.realpath(protected) == target
        if not same and os.path.exists(path) and os.path.exists(protected):
            same = os.path.samefile(path, protected)  # hard links and case-insensitive disks
        if same:
            raise AudioError(
                f"refusing to overwrite source media {protected} with a render; "
                "choose another output path"
            )


def _check_writable_audio(audio, sample_rate, bit_depth):
    if bit_depth not in _WRITE_BIT_DEPTHS:
        raise AudioError(f"bit_depth must be 24 or 'float32', got {bit_depth!r}")
    if isinstance(sample_rate, bool) or not (
        isinstance(sample_rate, (int, float, np.number)) and math.isfinite(sample_rate) and sample_rate > 0
    ):
        raise AudioError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    audio = np.asarray(audio)
    if audio.ndim != 2 or audio.shape[0] == 0:
        raise AudioError(f"audio to write has shape {audio.shape}; expected (channels, samples)")
    check_finite(audio, "audio to write")
    return np.ascontiguousarray(audio, dtype=np.float32)


def write_wav(file, audio, sample_rate, *, bit_depth=24):
    """Write `audio` (channels, samples) as WAV into the open binary `file` (seekable).

    `bit_depth` is 24 (PCM, samples clipped to [-1, 1]) or "float32". For files created through
    `bridge.output_folder.OutputFolder`, which decides where and under which name they appear."""
    audio = _check_writable_audio(audio, sample_rate, bit_depth)
    try:
        with AudioFile(file, "w", samplerate=sample_rate, num_channels=audio.shape[0],
                       bit_depth=_WRITE_BIT_DEPTHS[bit_depth], format="wav") as output:
            output.write(audio)
    except (OSError, RuntimeError, ValueError) as error:
        raise AudioError(f"cannot write WAV audio ({error}); check the folder is writable and has space") from error


def write_audio_atomic(path, audio, sample_rate, *, bit_depth=24, protect=()):
    """Write `audio` (channels, samples) to the WAV file `path`, all or nothing.

    `bit_depth` is 24 (PCM, samples clipped to [-1, 1]) or "float32". The audio goes to a
    temporary file in the same folder, which then replaces `path` in one step (os.replace), so
    readers never see a half-written file; on failure the temporary file is removed and an
    existing `path` is left as it was. `protect` lists paths (the source media) that must never
    be overwritten.
    """
    path = os.fspath(path)
    if not path.lower().endswith((".wav", ".wave")):
        raise AudioError(f"output path {path} must end in .wav; renders are written as WAV")
    _refuse_protected(path, protect)
    audio = _check_writable_audio(audio, sample_rate, bit_depth)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise AudioError(f"output folder does not exist: {folder}; create it first")

    handle, temp_path = tempfile.mkstemp(
        dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp.wav"
    )
    os.close(handle)
    try:
        with AudioFile(
            temp_path, "w", samplerate=sample_rate, num_channels=audio.shape[0],
            bit_depth=_WRITE_BIT_DEPTHS[bit_depth],
        ) as output:
            output.write(audio)
        _flush_to_disk(temp_path)
        give_normal_permissions(temp_path)
        os.replace(temp_path, path)
    except BaseException as error:
        _remove_quietly(temp_path)
        if isinstance(error, (AudioError, KeyboardInterrupt, SystemExit)):
            raise
        raise AudioError(f"cannot write {path} ({error}); check the folder is writable and has space") from error


def _flush_to_disk(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def sha256_file(path):
    """Hex SHA-256 of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(_HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError as error:
        raise AudioError(f"cannot read {path} to hash it ({error.strerror}); check the path") from error
    return digest.hexdigest()
