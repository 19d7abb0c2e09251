"""Specification of bridge.audio: probing, region reads, atomic writes, hashing."""

import hashlib
import os

import numpy as np
import pytest
from pedalboard.io import AudioFile

import bridge.audio
from bridge.audio import AudioError, SourceInfo, probe, read_region, sha256_file, write_audio_atomic

ONE_24BIT_STEP = 1.0 / (2 ** 23)


def noise(channels, n_samples, seed=0, level=0.5):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-level, level, (channels, n_samples))).astype(np.float32)


def write_with_pedalboard(path, audio, sample_rate, **kwargs):
    with AudioFile(str(path), "w", samplerate=sample_rate, num_channels=audio.shape[0], **kwargs) as f:
        f.write(audio)


# --- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("sample_rate", [8000, 44100, 48000, 96000, 192000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_24bit_round_trip_keeps_rate_length_channels_and_samples(tmp_path, sample_rate, channels):
    audio = noise(channels, sample_rate // 4)
    path = tmp_path / "take.wav"
    write_audio_atomic(path, audio, sample_rate)
    back, back_rate = read_region(path)
    assert back_rate == sample_rate
    assert back.shape == audio.shape and back.dtype == np.float32
    assert np.max(np.abs(back - audio)) <= 2 * ONE_24BIT_STEP  # quantisation


def test_float32_round_trip_is_exact_and_keeps_overs(tmp_path):
    audio = noise(2, 4800, level=1.5)
    path = tmp_path / "float.wav"
    write_audio_atomic(path, audio, 48000, bit_depth="float32")
    back, _ = read_region(path)
    assert np.array_equal(back, audio)


@pytest.mark.parametrize("extension", ["flac", "aiff", "ogg", "mp3"])
def test_compressed_and_other_formats_are_readable(tmp_path, extension):
    path = tmp_path / f"source.{extension}"
    write_with_pedalboard(path, noise(2, 44100, level=0.2), 44100)
    info = probe(path)
    audio, sample_rate = read_region(path, 0.1, 0.5)
    assert (info.format, info.channels, sample_rate) == (extension, 2, 44100)
    assert audio.shape == (2, 22050)


def test_probe_describes_the_file(tmp_path):
    path = tmp_path / "six.wav"
    write_audio_atomic(path, noise(6, 96000), 96000)
    assert probe(path) == SourceInfo(
        path=str(path), sample_rate=96000, channels=6, n_samples=96000, duration_s=1.0, format="wav"
    )


# --- regions -------------------------------------------------------------------------------

@pytest.fixture
def ramp_wav(tmp_path):
    """A 2 s stereo 48 kHz float WAV whose sample i holds i / 1e6, so positions can be read back."""
    n_samples = 96000
    ramp = (np.arange(n_samples) / 1e6).astype(np.float32)
    path = tmp_path / "ramp.wav"
    write_audio_atomic(path, np.vstack([ramp, -ramp]), 48000, bit_depth="float32")
    return path, ramp


def test_region_start_and_length_are_exact_in_samples(ramp_wav):
    path, ramp = ramp_wav
    audio, sample_rate = read_region(path, start_s=0.5, length_s=0.25)
    assert sample_rate == 48000
    assert audio.shape == (2, 12000)
    assert np.array_equal(audio[0], ramp[24000:36000])
    assert np.array_equal(audio[1], -ramp[24000:36000])


def test_region_without_length_reads_to_the_end(ramp_wav):
    path, ramp = ramp_wav
    audio, _ = read_region(path, start_s=1.5)
    assert np.array_equal(audio[0], ramp[72000:])


def test_region_may_end_exactly_at_the_end_of_the_file(ramp_wav):
    path, ramp = ramp_wav
    audio, _ = read_region(path, start_s=1.0, length_s=1.0)
    assert np.array_equal(audio[0], ramp[48000:])


def test_region_read_seeks_and_decodes_only_the_region(ramp_wav, monkeypatch):
    calls = []

    class SpyFile:
        def __init__(self, path):
            self._file = AudioFile(path)

        def __getattr__(self, name):
            return getattr(self._file, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._file.close()

        def seek(self, position):
            calls.append(("seek", position))
            self._file.seek(position)

        def read(self, n_frames):
            calls.append(("read", n_frames))
            return self._file.read(n_frames)

    monkeypatch.setattr(bridge.audio, "AudioFile", SpyFile)
    read_region(ramp_wav[0], start_s=1.0, length_s=0.1)
    assert calls == [("seek", 48000), ("read", 4800)]


# --- refused inputs ------------------------------------------------------------------------

def test_missing_file_is_refused(tmp_path):
    missing = tmp_path / "gone.wav"
    with pytest.raises(AudioError, match=r"audio file not found: .*gone\.wav; check the path"):
        read_region(missing)


def test_folder_is_refused(tmp_path):
    with pytest.raises(AudioError, match="not a file"):
        probe(tmp_path)


def test_file_that_is_not_audio_is_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is a shopping list, not a recording\n" * 20)
    with pytest.raises(AudioError, match=r"cannot read .*notes\.wav as audio .*re-export"):
        read_region(path)


def test_zero_byte_file_is_refused(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"audio file is empty \(0 bytes\): .*empty\.wav"):
        read_region(path)


def test_file_with_zero_samples_is_refused(tmp_path):
    path = tmp_path / "no_frames.wav"
    write_with_pedalboard(path, np.zeros((2, 0), np.float32), 44100, bit_depth=24)
    with pytest.raises(AudioError, match=r"holds no samples \(0 frames\): .*no_frames\.wav"):
        read_region(path)


@pytest.mark.parametrize("extension", ["wav", "aiff"])
def test_truncated_file_is_refused(tmp_path, extension):
    whole = tmp_path / f"whole.{extension}"
    write_with_pedalboard(whole, noise(2, 44100), 44100, bit_depth=24)
    cut = tmp_path / f"cut.{extension}"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=rf"audio file is truncated: .*cut\.{extension}.*copy or export it again"):
        read_region(cut)
    with pytest.raises(AudioError, match="truncated"):
        probe(cut)


def test_region_starting_past_the_end_is_refused(ramp_wav):
    with pytest.raises(AudioError, match=r"start_s=2\.5 is at or past the end of .*ramp\.wav \(2\.000 s long\)"):
        read_region(ramp_wav[0], start_s=2.5)


def test_region_running_past_the_end_is_refused(ramp_wav):
    with pytest.raises(AudioError, match=r"runs past the end .*use length_s <= 0\.500000"):
        read_region(ramp_wav[0], start_s=1.5, length_s=1.0)


def test_region_with_negative_start_is_refused(ramp_wav):
    with pytest.raises(AudioError, match=r"start_s=-0\.1 is negative"):
        read_region(ramp_wav[0], start_s=-0.1)


@pytest.mark.parametrize("length_s", [0.0, -1.0])
def test_region_with_non_positive_length_is_refused(ramp_wav, length_s):
    with pytest.raises(AudioError, match=rf"length_s={length_s} .* must be positive"):
        read_region(ramp_wav[0], length_s=length_s)


def test_file_with_nan_samples_is_refused(tmp_path):
    audio = noise(2, 1000)
    audio[1, 300] = np.nan
    path = tmp_path / "nan.wav"
    write_with_pedalboard(path, audio, 44100, bit_depth=32)
    with pytest.raises(AudioError, match=r"audio in .*nan\.wav contains 1 NaN/inf samples \(first at channel 1, sample 300\)"):
        read_region(path)


# --- atomic writes -------------------------------------------------------------------------

def test_write_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "render.wav"
    write_audio_atomic(target, noise(2, 1000, seed=1), 44100)
    write_audio_atomic(target, noise(2, 2000, seed=2), 44100)
    assert probe(target).n_samples == 2000
    assert os.listdir(tmp_path) == ["render.wav"]


def test_failed_write_leaves_no_temporary_file_and_keeps_the_old_target(tmp_path, monkeypatch):
    target = tmp_path / "render.wav"
    write_audio_atomic(target, noise(2, 1000), 44100)
    before = target.read_bytes()

    class FailingFile:
        def __init__(self, path, mode, **kwargs):
            self._file = AudioFile(path, mode, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._file.close()

        def write(self, audio):
            self._file.write(audio[:, :10])  # part of the data reaches the disk, then:
            raise OSError("No space left on device")

    monkeypatch.setattr(bridge.audio, "AudioFile", FailingFile)
    with pytest.raises(AudioError, match=r"cannot write .*render\.wav \(No space left on device\)"):
        write_audio_atomic(target, noise(2, 5000), 44100)
    assert os.listdir(tmp_path) == ["render.wav"]
    assert target.read_bytes() == before


def test_failed_first_write_leaves_nothing_at_all(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(bridge.audio, "AudioFile", refuse)
    with pytest.raises(AudioError, match="encoder exploded"):
        write_audio_atomic(tmp_path / "new.wav", noise(1, 100), 44100)
    assert os.listdir(tmp_path) == []


def test_write_refuses_to_overwrite_protected_source_media(tmp_path):
    source = tmp_path / "source.wav"
    write_audio_atomic(source, noise(2, 1000), 44100)
    before = source.read_bytes()
    with pytest.raises(AudioError, match=r"refusing to overwrite source media .*source\.wav"):
        write_audio_atomic(tmp_path / "." / "source.wav", noise(2, 10), 44100, protect=[source])
    assert source.read_bytes() == before


def test_write_refuses_nan_samples(tmp_path):
    audio = noise(2, 100)
    audio[0, 5] = np.nan
    with pytest.raises(AudioError, match="audio to write contains 1 NaN/inf"):
        write_audio_atomic(tmp_path / "bad.wav", audio, 44100)
    assert os.listdir(tmp_path) == []


def test_write_refuses_an_unknown_bit_depth(tmp_path):
    with pytest.raises(AudioError, match=r"bit_depth must be 24 or 'float32', got 16"):
        write_audio_atomic(tmp_path / "x.wav", noise(1, 10), 44100, bit_depth=16)


def test_float32_write_is_stored_as_float(tmp_path):
    path = tmp_path / "f.wav"
    write_audio_atomic(path, noise(1, 10), 44100, bit_depth="float32")
    with AudioFile(str(path)) as f:
        assert f.file_dtype == "float32"


def test_24bit_write_is_stored_as_24bit_pcm(tmp_path):
    path = tmp_path / "i.wav"
    write_audio_atomic(path, noise(1, 10), 44100)
    with AudioFile(str(path)) as f:
        assert f.file_dtype == "int24"


# --- hashing -------------------------------------------------------------------------------

def test_sha256_file_matches_hashlib(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(4).bytes(3 * 1024 * 1024 + 17)  # spans several read chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_sha256_of_a_missing_file_is_an_audio_error(tmp_path):
    with pytest.raises(AudioError, match="cannot read .*missing.bin to hash it"):
        sha256_file(tmp_path / "missing.bin")
