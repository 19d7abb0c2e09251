"""Is a compressed audio file complete? Container-level checks for FLAC, MP3 and Ogg.

Decoders pad what is missing with silence instead of failing (pedalboard reads a FLAC cut in
half as all silence, an MP3 cut in half with a silent second half), and the frame count they
report comes from the header, so a cut file looks whole. These checks compare what the file's
header promises with what is on disk, reading only headers and the file's last frames:

- FLAC: STREAMINFO's total sample count against the last frame, which must end the file with a
  valid CRC-16 and reach that count; metadata blocks must fit in the file.
- MP3: the Xing/Info/VBRI header's byte (or frame) count against the frames on disk; without
  such a header, the last frame must be whole.
- Ogg (Vorbis, Opus): the last page must end the file, with a valid CRC and the end-of-stream
  flag.

`find_problem(path)` returns None for a complete file (or a format it does not know), else a
sentence saying what is missing; `bridge.audio` turns it into an AudioError naming the file.

A FLAC frame damaged in the middle of a file decodes as one block of digital silence. Where a
region read from a FLAC holds such a block, `flac_checksum_problem` decodes the whole file
once and compares it with the MD5 that STREAMINFO keeps of the original samples.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import threading

import numpy as np

_TAIL_BYTES = 1 << 18  # how much of a FLAC's end is searched for its last frame, when its header
# does not give the largest frame size


def find_problem(path) -> str | None:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(16)
        start = _id3v2_length(head)
        if start:
            f.seek(start)
            head = f.read(16)
        if head[:4] == b"fLaC":
            return _flac_problem(f, size, start)
        if head[:4] == b"OggS":
            return _ogg_problem(f, size)
        if len(head) >= 4 and _mp3_header(head[:4]) is not None:
            return _mp3_problem(f, size, start)
    return None


def _id3v2_length(head: bytes) -> int:
    """Bytes of an ID3v2 tag at the start (some FLAC and most MP3 files have one), else 0."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _trailing_tags(f, size: int) -> int:
    """Bytes of an ID3v1 tag at the end of the file (128, "TAG"), else 0."""
    if size >= 128:
        f.seek(size - 128)
        if f.read(3) == b"TAG":
            return 128
    return 0


# --- FLAC ----------------------------------------------------------------------------------

def _crc_table(poly: int, bits: int):
    """Table of a most-significant-bit-first CRC (FLAC's CRC-8 and CRC-16, Ogg's CRC-32)."""
    top, mask = 1 << (bits - 1), (1 << bits) - 1
    table = []
    for n in range(256):
        crc = n << (bits - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) if crc & top else (crc << 1)
        table.append(crc & mask)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)
_CRC32_OGG = _crc_table(0x04C11DB7, 32)


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[(crc >> 8) ^ byte]
    return crc


def _flac_metadata(f, size: int, start: int):
    """(STREAMINFO bytes or None, where the audio frames start), or a problem sentence."""
    position = start + 4
    streaminfo = None
    while True:
        f.seek(position)
        header = f.read(4)
        if len(header) < 4:
            return "its metadata ends before the audio starts (the file was cut inside its header)"
        last, kind, length = header[0] & 0x80, header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        if position + 4 + length > size:
            return f"its metadata block at byte {position} runs past the end of the file ({size} bytes)"
        if kind == 0:
            streaminfo = f.read(34)
        position += 4 + length
        if last:
            return streaminfo, position


def _flac_problem(f, size: int, start: int) -> str | None:
    metadata = _flac_metadata(f, size, start)
    if isinstance(metadata, str):
        return metadata
    streaminfo, position = metadata
    if streaminfo is None or len(streaminfo) < 34:
        return "it has no STREAMINFO block"
    max_block = int.from_bytes(streaminfo[2:4], "big")
    max_frame = int.from_bytes(streaminfo[7:10], "big")
    total = int.from_bytes(streaminfo[13:18], "big") & 0xFFFFFFFFF  # 36 bits
    audio_start = position
    end = size - _trailing_tags(f, size)
    if audio_start >= end:
        return f"its header promises {total} frames but the file holds no audio after it" if total else None
    window_start = max(audio_start, end - (2 * max_frame + 64 if max_frame else _TAIL_BYTES))
    f.seek(window_start)
    tail = f.read(end - window_start)
    # The last frame is the one whose header (valid CRC-8) starts a run to the end of the file
    # that its CRC-16 closes; searched from the end, so a false sync in audio data is passed over.
    at = len(tail)
    while True:
        at = tail.rfind(b"\xff", 0, at)
        if at < 0:
            return ("its last audio frame is incomplete or damaged (no whole frame ends the file); "
                    f"the header promises {total} frames")
        frame = _flac_frame_header(tail[at:at + 16])
        if frame is None:
            continue
        if _crc16(tail[at:-2]) != int.from_bytes(tail[-2:], "big"):
            continue
        number, block_size, variable = frame
        first_sample = number if variable else number * max_block
        reached = first_sample + block_size
        if total and reached < total:
            return f"it ends after frame {reached} of the {total} its header promises"
        return None


def _flac_frame_header(data: bytes):
    """(frame or sample number, block size, variable blocking) of a FLAC frame header whose
    CRC-8 is valid, else None."""
    if len(data) < 6 or data[0] != 0xFF or data[1] & 0xFE != 0xF8:
        return None
    variable = data[1] & 1
    size_code, rate_code = data[2] >> 4, data[2] & 0x0F
    channels, sample_size, reserved = data[3] >> 4, (data[3] >> 1) & 7, data[3] & 1
    if size_code == 0 or rate_code == 15 or channels > 10 or sample_size == 3 or reserved:
        return None
    # the frame/sample number, UTF-8 coded (1 to 7 bytes)
    lead = data[4]
    n_bytes = 1 if lead < 0x80 else next((k for k in range(2, 8) if lead >> (7 - k) == (0xFF >> (7 - k)) - 1), 0)
    if not n_bytes or (n_bytes == 1 and lead >= 0x80):
        return None
    number = lead & (0x7F >> n_bytes) if n_bytes > 1 else lead
    position = 5
    for _ in range(n_bytes - 1):
        if position >= len(data) or data[position] & 0xC0 != 0x80:
            return None
        number = (number << 6) | (data[position] & 0x3F)
        position += 1
    extra = {6: 1, 7: 2}.get(size_code, 0)
    if position + extra >= len(data):
        return None
    if size_code == 1:
        block_size = 192
    elif size_code <= 5:
        block_size = 576 << (size_code - 2)
    elif size_code >= 8:
        block_size = 256 << (size_code - 8)
    else:
        block_size = int.from_bytes(data[position:position + extra], "big") + 1
    position += extra
    position += {12: 1, 13: 2, 14: 2}.get(rate_code, 0)
    if position >= len(data) or _crc8(data[:position]) != data[position]:
        return None
    return number, block_size, variable


# --- MP3 -----------------------------------------------------------------------------------

_BITRATES_KBPS = {
    (1, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (1, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (1, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (2, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (2, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES_KBPS[(2, 3)] = _BITRATES_KBPS[(2, 2)]
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_header(data: bytes):
    """(frame length in bytes, MPEG version bits, mono, CRC-protected) of an MPEG audio frame
    header, else None (free-format frames, whose length is not in the header, also give None)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[1] >> 3) & 3, (data[1] >> 1) & 3
    bitrate_index, rate_index, padding = data[2] >> 4, (data[2] >> 2) & 3, (data[2] >> 1) & 1
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    layer = 4 - layer_bits
    bitrate = _BITRATES_KBPS[(1 if version == 3 else 2, layer)][bitrate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][rate_index]
    if layer == 1:
        length = (12 * bitrate // sample_rate + padding) * 4
    elif layer == 3 and version != 3:
        length = 72 * bitrate // sample_rate + padding
    else:
        length = 144 * bitrate // sample_rate + padding
    return length, version, (data[3] >> 6) == 3, not (data[1] & 1)


def _mp3_problem(f, size: int, start: int) -> str | None:
    end = size - _trailing_tags(f, size)
    f.seek(start)
    first = f.read(200)
    header = _mp3_header(first)
    if header is None:
        return None
    length, version, mono, protected = header
    side_info = (17 if mono else 32) if version == 3 else (9 if mono else 17)
    declared_bytes = declared_frames = None
    for offset in (4 + side_info, 6 + side_info):  # after the side info (and a CRC, if any)
        tag = first[offset:offset + 4]
        if tag in (b"Xing", b"Info"):
            flags = int.from_bytes(first[offset + 4:offset + 8], "big")
            fields = first[offset + 8:offset + 16]
            if flags & 1:
                declared_frames, fields = int.from_bytes(fields[:4], "big"), fields[4:]
            if flags & 2 and len(fields) >= 4:
                declared_bytes = int.from_bytes(fields[:4], "big")
            break
    if first[36:40] == b"VBRI":
        declared_bytes = int.from_bytes(first[46:50], "big")
        declared_frames = int.from_bytes(first[50:54], "big")
    # Encoders differ on whether the byte count includes a leading ID3v2 tag: the lenient reading.
    if declared_bytes and end < declared_bytes:
        return (f"it holds {end} bytes where its header says the audio alone takes {declared_bytes}; "
                "the end is missing")
    # Walk the frames by their headers (mapped, not read: an hour of MP3 is 140 000 frames).
    frames, position = 0, start
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        while position + 4 <= end:
            frame = _mp3_header(data[position:position + 4])
            if frame is None:
                break
            if position + frame[0] > end:
                return f"its last frame, at byte {position}, is cut off ({end - position} of {frame[0]} bytes)"
            frames += 1
            position += frame[0]
    if declared_frames and frames + 1 < declared_frames:
        return (f"its frames stop at byte {position} after {frames} of the {declared_frames} its header "
                "counts; the rest is missing or damaged")
    return None


# --- Ogg -----------------------------------------------------------------------------------

def _ogg_crc(page: bytes) -> int:
    crc = 0
    for byte in page[:22] + b"\0\0\0\0" + page[26:]:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC32_OGG[(crc >> 24) ^ byte]
    return crc


def _ogg_problem(f, size: int) -> str | None:
    window_start = max(0, size - 2 * 65307)  # two of the largest pages
    f.seek(window_start)
    tail = f.read()
    at = len(tail)
    while True:
        at = tail.rfind(b"OggS", 0, at)
        if at < 0:
            return "its last page is incomplete or damaged (no whole page ends the file)"
        if at + 27 > len(tail):
            continue
        n_segments = tail[at + 26]
        if at + 27 + n_segments > len(tail):
            continue
        length = 27 + n_segments + sum(tail[at + 27:at + 27 + n_segments])
        page = tail[at:at + length]
        if at + length != len(tail) or _ogg_crc(page) != struct.unpack("<I", page[22:26])[0]:
            continue
        if not page[5] & 0x04:
            return "it stops before the end of its stream (the last page lacks the end-of-stream mark)"
        return None


# --- FLAC checksum -------------------------------------------------------------------------

def flac_block_size(path) -> int | None:
    """The fixed block size of a FLAC file (frames per block), None if not FLAC or variable."""
    with open(path, "rb") as f:
        start = _id3v2_length(f.read(16))
        f.seek(start)
        if f.read(4) != b"fLaC":
            return None
        metadata = _flac_metadata(f, os.fstat(f.fileno()).st_size, start)
    if isinstance(metadata, str) or metadata[0] is None:
        return None
    min_block, max_block = struct.unpack(">HH", metadata[0][:4])
    return max_block if min_block == max_block else None


_checked: dict = {}  # (path, device, inode, size, mtime_ns) -> problem or None, once per process
_checked_lock = threading.Lock()


def flac_checksum_problem(path, read_blocks) -> str | None:
    """None when the FLAC's decoded samples match STREAMINFO's MD5 (or it records none), else a
    sentence. `read_blocks()` yields the whole file decoded, (channels, n) float blocks as
    pedalboard gives them (integer / (2^(bits-1) - 1)). Remembered per file version."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _checked_lock:
        if key in _checked:
            return _checked[key]
    with open(path, "rb") as f:
        start = _id3v2_length(f.read(16))
        metadata = _flac_metadata(f, st.st_size, start)
    if isinstance(metadata, str):
        return metadata
    streaminfo = metadata[0]
    expected = streaminfo[18:34]
    if expected == bytes(16):
        return None  # the encoder did not record a checksum
    bits = (((streaminfo[12] & 1) << 4) | (streaminfo[13] >> 4)) + 1
    scale, width = 2 ** (bits - 1) - 1, (bits + 7) // 8
    digest = hashlib.md5()
    for block in read_blocks():
        ints = np.clip(np.round(block.T.astype(np.float64) * scale), -scale - 1, scale).astype("<i4")
        # interleaved little-endian samples of `width` bytes, as the checksum was taken
        digest.update(ints.reshape(-1).view(np.uint8).reshape(-1, 4)[:, :width].tobytes())
    problem = None if digest.digest() == expected else (
        "its decoded audio does not match the checksum in its header: damaged frames decode as "
        "silence")
    with _checked_lock:
        _checked[key] = problem
    return problem
