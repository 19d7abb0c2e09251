"""End to end: the ReaScripts (under Lua 5.4 with the reaper test double) against the real
service, `vampbridge serve`, on tiny random weights. Slow (the model runs on the CPU), so the
jobs are kept small: short regions, one sampling step."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "lua"))
from fake_service import build, decode, free_udp_port, write_wav  # noqa: E402
from scenario import LUA, Scenario, item_by_guid  # noqa: E402

VAMPBRIDGE = Path(sys.executable).parent / "vampbridge"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
    pytest.mark.skipif(not VAMPBRIDGE.exists(), reason="the vampbridge command is not installed"),
]

FAST_SAMPLING = '{"sampling_steps": 1, "c2f_sampling_steps": 1}'
TAKE_NAME = re.compile(r"^vamp (\d+) balanced s(\d+)$")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("model") / "tiny"
    subprocess.run([str(VAMPBRIDGE), "models", "make-random", str(model), "--size", "tiny"], check=True,
                   capture_output=True, timeout=120)
    return model


def wait_for_hello(port: int, timeout_s: float = 60) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s.sendto(build("/vampbridge/hello", "sis", "test-hello", s.getsockname()[1], ""), ("127.0.0.1", port))
            try:
                if decode(s.recvfrom(65535)[0])[0].address == "/vampbridge/hello":
                    return
            except socket.timeout:
                pass
    raise AssertionError(f"vampbridge serve did not answer on port {port} within {timeout_s}s")


class Service:
    """`vampbridge serve` in a process of its own, with its own data folder."""

    def __init__(self, model: Path, data_dir: Path):
        self.model, self.data_dir = model, data_dir
        self.port = free_udp_port()
        self.env = dict(os.environ, VAMPBRIDGE_DATA_DIR=str(data_dir))
        self.log = data_dir / "serve.log"
        self.pid_file = data_dir / "restarted.pid"
        self.process: subprocess.Popen | None = None

    def command(self, port: str) -> str:
        return f"{VAMPBRIDGE} serve --port {port} --model {self.model}"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(str(self.port)).split(), env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for_hello(self.port)

    def autostart_command(self) -> str:
        """What the script's auto-start setting runs (through sh in the test), leaving a pid file."""
        return (f"VAMPBRIDGE_DATA_DIR={self.data_dir} {self.command('{port}')} >> {self.log} 2>&1 "
                f"& echo $! > {self.pid_file}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop_all(self) -> None:
        self.kill()
        if self.pid_file.exists():
            try:
                os.kill(int(self.pid_file.read_text()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture
def real_service(tiny_model, tmp_path):
    data = tmp_path / "service-data"
    data.mkdir()
    svc = Service(tiny_model, data)
    yield svc
    svc.stop_all()


def settings(svc: Service, tmp_path: Path, **extra) -> dict:
    values = dict(port=svc.port, reply_timeout_s=1.0, startup_wait_s=60, autostart="", n_variations=1,
                  sampling=FAST_SAMPLING, output_dir=str(tmp_path / "renders"), preset="balanced", fx="none")
    values.update(extra)
    return values


def check_vamp_takes(item: dict, n: int, tmp_path: Path) -> list[dict]:
    original, *new = item["takes"]
    assert original["name"] == "drums.wav"
    assert len(new) == n
    for take in new:
        assert TAKE_NAME.match(take["name"]), take["name"]
        assert Path(take["file"]).is_file() and take["file"].startswith(str(tmp_path / "renders"))
        assert take["sample_rate"] == 44100  # the project follows the device: the source's rate
        assert Path(take["ext"]["vampbridge_recipe"]).is_file()
        assert take["peaks_built"]
    return new


def test_two_items_one_under_a_time_selection_get_real_variations(tmp_path, real_service):
    real_service.start()
    wav = tmp_path / "drums.wav"
    write_wav(wav, 4.0, 44100, 2)
    report = Scenario(tmp_path, """
      H.settings(P.settings)
      local a = double.add_item{ track = 1, position_s = 2, length_s = 1, startoffs_s = 0.5, source = { file = P.wav } }
      local b = double.add_item{ track = 2, position_s = 10, length_s = 2, startoffs_s = 0, source = { file = P.wav } }
      double.set_time_selection(10.5, 11.5)   -- inside b only
      local script = H.run("Vamp selected items")
      double.pump_until(function() return not script.alive end, 120, "the script to end")
      H.out.a, H.out.b = a.guid, b.guid
    """, wav=str(wav), settings=settings(real_service, tmp_path)).run(timeout_s=150)

    assert report["errors"] == [] and report["messages"] == [], report["console"]
    a = check_vamp_takes(item_by_guid(report, report["out"]["a"]), 1, tmp_path)
    b = check_vamp_takes(item_by_guid(report, report["out"]["b"]), 1, tmp_path)
    assert a[0]["startoffs_s"] == 0
    assert b[0]["startoffs_s"] == pytest.approx(-0.5)  # the render starts where the time selection did
    # The renders are as long as the regions: the whole of a (1 s), the selected second of b.
    for take in (a[0], b[0]):
        with wave.open(take["file"]) as w:
            assert w.getnframes() / w.getframerate() == pytest.approx(1.0, abs=0.05)
    assert [u["description"] for u in report["undo_log"]] == ['VampBridge: vamp "drums.wav" (1 take)'] * 2


def test_service_killed_mid_job_is_restarted_and_the_job_finishes(tmp_path, real_service):
    real_service.start()
    wav = tmp_path / "drums.wav"
    write_wav(wav, 4.0, 44100, 2)
    sc = Scenario(tmp_path, """
      H.settings(P.settings)
      double.on_exec = function(command)
        os.execute(command)  -- the auto-start command really starts the service again
        return ""
      end
      local it = double.add_item{ position_s = 2, length_s = 1, source = { file = P.wav } }
      local script = H.run("Vamp selected items")
      double.pump_until(function() return it.active.name:find("%[VampBridge %d") ~= nil end, 60, "progress")
      H.ready("running")
      H.wait_for_python(30)
      double.pump_until(function() return not script.alive end, 120, "the script to end")
      H.out.guid = it.guid
    """, wav=str(wav), settings=settings(real_service, tmp_path, n_variations=2,
                                          autostart=real_service.autostart_command())).start()
    try:
        sc.wait_ready("running", timeout_s=60)
        real_service.kill()
        sc.resume()
        report = sc.finish(timeout_s=150)
    finally:
        sc.kill()
    assert report["errors"] == [] and report["messages"] == [], report["console"]
    assert len(report["exec_log"]) == 1 and real_service.pid_file.exists()
    new = check_vamp_takes(item_by_guid(report, report["out"]["guid"]), 2, tmp_path)
    assert sorted(int(TAKE_NAME.match(t["name"]).group(1)) for t in new) == [1, 2]
    (undo,) = report["undo_log"]
    assert len([c for c in undo["changes"] if c["op"] == "add_take"]) == 2
