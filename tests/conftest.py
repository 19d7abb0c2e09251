"""Shared fixtures: tiny random model sets in the released file format, made once per test run."""

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and tests then do not fight each other (or the
    service subprocesses some tests start) for this machine's two cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A directory with codec.pth, coarse.pth and c2f.pth of the `tiny` size (seed 0)."""
    from bridge.engine import make_random

    return make_random(tmp_path_factory.mktemp("tiny-models"), size="tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_interface(tiny_models):
    from bridge.engine import Interface

    return Interface(coarse_ckpt=tiny_models / "coarse.pth", coarse2fine_ckpt=tiny_models / "c2f.pth",
                     codec_ckpt=tiny_models / "codec.pth", device="cpu")


@pytest.fixture(scope="module")
def engine(qapp, tiny_models, tmp_path_factory):
    """The companion's embedded service on tiny weights, one per test module (the models load
    once), on a free OSC port."""
    from gui.engine_bridge import EngineBridge

    folder = tmp_path_factory.mktemp("engine")
    bridge = EngineBridge(tiny_models, "cpu", osc_port=0, store_path=folder / "jobs.sqlite3").start()
    yield bridge
    bridge.close()


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory):
    """Keep every test away from the user's real data folder (jobs database, bundled models)."""
    path = tmp_path_factory.mktemp("vampbridge-data")
    os.environ["VAMPBRIDGE_DATA_DIR"] = str(path)
    return path


def write_wav(path, audio, sample_rate):
    """Write (channels, n) float audio as a 24-bit WAV with pedalboard."""
    from pedalboard.io import AudioFile

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    with AudioFile(str(path), "w", samplerate=sample_rate, num_channels=audio.shape[0], bit_depth=24) as f:
        f.write(audio)
    return path


def tone(seconds=2.0, sample_rate=44100, channels=1, freq_hz=220.0, amplitude=0.3, seed=0):
    """A decaying tone plus a little noise: musical enough for loudness and onset code."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    env = np.exp(-3 * (t % 0.5))
    mono = amplitude * env * np.sin(2 * np.pi * freq_hz * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)]).astype(np.float32)
