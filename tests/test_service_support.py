"""Shared helpers for the service tests (no tests here): test audio and a running bridge.

Every test that runs a job uses the real `bridge.pipeline.Pipeline` on tiny random weights (the
`tiny_models` fixture of tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
#: Few sampling steps: these tests are about the bridge, not the sound.
FAST_SAMPLING = json.dumps({"sampling_steps": 2, "c2f_sampling_steps": 1})

def write_test_wav(path: Path, seconds: float = 0.25, sample_rate: int = 44100,
                   channels: int = 1) -> Path:
    """A short WAV of a decaying 220 Hz tone with a little seeded noise."""
    from pedalboard.io import AudioFile

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.4 * np.sin(2 * np.pi * 220 * t) * np.exp(-2 * (t % 0.5))
    noise = 0.02 * np.random.default_rng(0).standard_normal(t.shape)
    audio = np.tile((tone + noise).astype(np.float32), (channels, 1))  # (channels, samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    with AudioFile(str(path), "w", sample_rate, channels) as f:
        f.write(audio)
    return path


def vamp_args(source: Path, *, client: str = "reaper:test", n_variations: int = 1,
              seed: int = -1, output_dir: Path | str = "", item_guid: str = "{item}",
              take_guid: str = "{take}", mask: str = "", fx: str = "",
              sampling: str = FAST_SAMPLING) -> tuple:
    """The arguments of a `vamp` request after the header, in protocol order."""
    return (client, str(source), 0.0, 0.0, 1.0, 0, 0, item_guid, take_guid, mask,
            sampling, fx, n_variations, seed, str(output_dir))


class InProcessBridge:
    """A JobService with the real Pipeline (or `pipeline`) and a BridgeServer on a free loopback
    port; `token` None: the per-user secret of the test session's data folder, as a real service."""

    def __init__(self, data_dir: Path, model_dir: Path | None, *, token: str | None = None, pipeline=None,
                 **service_options) -> None:
        from bridge.jobs import JobService, JobStore
        from bridge.osc.server import BridgeServer
        from bridge.pipeline import Pipeline

        self.store = JobStore(data_dir / "jobs.sqlite3")
        self.pipeline = pipeline or Pipeline(model_dir=model_dir, device="cpu")
        self.service = JobService(self.pipeline, self.store,
                                  default_output_dir=data_dir / "renders", **service_options)
        self.server = BridgeServer(self.service, host="127.0.0.1", port=0, token=token)

    def __enter__(self) -> "InProcessBridge":
        self.service.start()
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        self.service.close()
        self.store.close()

    @property
    def port(self) -> int:
        return self.server.port


class BridgeProcess:
    """`python -m bridge.osc.server` in a child process (for SIGKILL tests)."""

    def __init__(self, data_dir: Path, model_dir: Path, port: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "VAMPBRIDGE_DATA_DIR": str(data_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.osc.server", "--port", str(port), "--device", "cpu",
             "--model", str(model_dir), "--data-dir", str(data_dir)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.port = 0
        for line in self.proc.stdout:  # type: ignore[union-attr]
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if not self.port:
            raise RuntimeError(f"the bridge did not start (exit {self.proc.wait()})")
        self.log: list[str] = []
        self.data_dir = data_dir
        # Keep reading its output, or the child blocks once the pipe is full.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.log.append(line)

    @property
    def token(self) -> str:
        """The secret this service created in its data folder (what its user's clients read)."""
        from bridge.secret import read_secret
        return read_secret(self.data_dir / "secret")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
