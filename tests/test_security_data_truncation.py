"""Issue 10 item 14: truncated or damaged audio files are refused with an error naming the file.

pedalboard pads what a cut file is missing with silence (a FLAC cut in half reads as all
silence, an MP3 cut in half has a silent second half) and reports the length the header
promises, so a cut file looks whole. Every broken file here is made with pedalboard, then cut
or damaged the way a failed copy, download or export would.
"""

import numpy as np
import pytest
from conftest import tone
from pedalboard.io import AudioFile

from bridge.audio import AudioError, probe, read_region
from bridge.cli import main


def encode(path, seconds=2.0, sample_rate=44100, channels=2, **options):
    audio = np.tile(tone(seconds, sample_rate=sample_rate), (channels, 1))
    with AudioFile(str(path), "w", samplerate=sample_rate, num_channels=channels, **options) as f:
        f.write(audio)
    return path.read_bytes()


def mp3_frame_length(header: bytes) -> int:
    """Length of an MPEG-1 Layer III frame (what pedalboard writes at 44.1/48 kHz)."""
    bitrates = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    rates = (44100, 48000, 32000)
    return 144 * bitrates[header[2] >> 4] * 1000 // rates[(header[2] >> 2) & 3] + ((header[2] >> 1) & 1)


def half(data):
    return data[:len(data) // 2]


def without_info_frame(data):
    """The MP3 minus its first frame (LAME's Info header), as encoders without one write it."""
    return data[mp3_frame_length(data[:4]):]


def without_last_page(data):
    """An Ogg file cut exactly before its last page: every page whole, the stream's end missing."""
    return data[:data.rfind(b"OggS")]


def flip_a_byte_near_the_end(data):
    damaged = bytearray(data)
    damaged[-40] ^= 0x5A
    return bytes(damaged)


def damage_the_middle(data):
    """A run of bytes in the middle overwritten, as a bad sector or a broken download does."""
    damaged = bytearray(data)
    middle = len(data) // 2
    damaged[middle:middle + 2000] = bytes(2000)
    return bytes(damaged)


CASES = {
    "mp3 damaged in the middle": ("mp3", damage_the_middle),
    "flac cut in half": ("flac", half),
    "flac 100-byte header": ("flac", lambda d: d[:100]),
    "flac one byte short": ("flac", lambda d: d[:-1]),
    "flac last frame damaged": ("flac", flip_a_byte_near_the_end),
    "mp3 cut in half": ("mp3", half),
    "mp3 one byte short": ("mp3", lambda d: d[:-1]),
    "mp3 without info header cut mid-frame": ("mp3", lambda d: half(without_info_frame(d))[:-7]),
    "ogg cut in half": ("ogg", half),
    "ogg cut before its last page": ("ogg", without_last_page),
    "wav cut short": ("wav", lambda d: d[:len(d) - 1000]),
    "wav cut inside its header": ("wav", lambda d: d[:30]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_cut_or_damaged_file_is_refused_naming_the_file(tmp_path, case):
    extension, damage = CASES[case]
    data = encode(tmp_path / f"whole.{extension}")
    broken = tmp_path / f"broken take.{extension}"
    broken.write_bytes(damage(data))
    for read in (probe, read_region):
        with pytest.raises(AudioError) as e:
            read(broken)
        message = str(e.value)
        assert str(broken) in message
        assert any(word in message for word in ("truncated", "damaged", "cannot read")), message


def test_a_flac_damaged_in_the_middle_is_refused_when_read(tmp_path):
    # its frames decode as a block of silence; only decoding shows it, so probing lets it pass
    broken = tmp_path / "broken.flac"
    broken.write_bytes(damage_the_middle(encode(tmp_path / "whole.flac", seconds=4.0)))
    with pytest.raises(AudioError) as e:
        read_region(broken)
    assert str(broken) in str(e.value) and "damaged" in str(e.value)


@pytest.mark.parametrize("extension", ["flac", "mp3", "ogg", "wav", "aiff"])
@pytest.mark.parametrize("seconds, sample_rate, channels", [(0.3, 44100, 1), (3.0, 48000, 2), (1.0, 22050, 2)])
def test_whole_files_are_accepted(tmp_path, extension, seconds, sample_rate, channels):
    if extension == "mp3" and sample_rate == 22050:
        pytest.skip("pedalboard writes MP3 at 32, 44.1 and 48 kHz only")
    path = tmp_path / f"whole.{extension}"
    encode(path, seconds, sample_rate, channels)
    info = probe(path)
    audio, _ = read_region(path)
    assert audio.shape[0] == channels and info.n_samples >= int(seconds * sample_rate) - 1
    assert np.abs(audio[:, audio.shape[1] // 2:]).max() > 0.001  # the second half is there


@pytest.mark.parametrize("options", [{"bit_depth": 24}, {"bit_depth": 16}, {"quality": 0}, {"quality": 8}])
def test_whole_flac_files_of_any_compression_and_depth_are_accepted(tmp_path, options):
    path = tmp_path / "whole.flac"
    encode(path, 1.5, 44100, 2, **options)
    assert probe(path).n_samples == int(1.5 * 44100)


@pytest.mark.parametrize("quality", ["V0", "V9", "320", "96"])
def test_whole_mp3_files_at_any_bitrate_are_accepted(tmp_path, quality):
    path = tmp_path / "whole.mp3"
    encode(path, 1.5, 44100, 2, quality=quality)
    probe(path)


def test_the_cli_refuses_a_flac_cut_in_half_before_any_work(tiny_models, tmp_path, capsys):
    broken = tmp_path / "song.flac"
    broken.write_bytes(half(encode(tmp_path / "whole.flac")))
    assert main(["vamp", str(broken), "-o", str(tmp_path / "out"), "--model", str(tiny_models)]) == 2
    err = capsys.readouterr().err
    assert str(broken) in err and "truncated" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_flac_with_real_digital_silence_is_accepted(tmp_path):
    audio = np.tile(tone(3.0), (2, 1))
    audio[:, 44100:2 * 44100] = 0.0  # a second of digital silence, many whole FLAC blocks
    path = tmp_path / "gap.flac"
    with AudioFile(str(path), "w", samplerate=44100, num_channels=2) as f:
        f.write(audio)
    read, _ = read_region(path)
    assert read.shape == audio.shape and not np.any(read[:, 50000:80000])
