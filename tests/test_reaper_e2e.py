"""End to end: the ReaScripts (under Lua 5.4 with the reaper test double) against the real
service, `vampbridge serve`, on tiny random weights. Slow (the model runs on the CPU), so:
  * one service serves every test of this module (starting it and loading the model is most of
    the cost); the restart test, which kills it, runs last, and a test finding it gone starts it;
  * the jobs are small: regions of a second or less, one sampling step, one variation;
  * every scenario saves its project under its own tmp folder, so each has its own client name
    (`reaper:<project path>`) and never receives another test's undelivered results.
"""

from __future__ import annotations

import importlib.util
import json
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
from playback import assert_plays_like  # noqa: E402
from scenario import LUA, Scenario, item_by_guid  # noqa: E402
from bridge.secret import read_secret  # noqa: E402

VAMPBRIDGE = Path(sys.executable).parent / "vampbridge"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed"),
    pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
    pytest.mark.skipif(not VAMPBRIDGE.exists(), reason="the vampbridge command is not installed"),
]

FAST_SAMPLING = '{"sampling_steps": 1, "c2f_sampling_steps": 1}'
TAKE_NAME = re.compile(r"^vamp (\d+) balanced s(\d+)$")

# Lua shared by the scenarios: settings, and a project file of the scenario's own.
PRELUDE = """
H.settings(P.settings)
double.project.file = P.tmp .. "/song.rpp"
local function wav_item(spec)
  spec.source = { file = P.wav }
  return double.add_item(spec)
end
local function run_to_end(action, timeout_s)
  local script = H.run(action)
  double.pump_until(function() return not script.alive end, timeout_s or 120, action .. " to end")
  return script
end
"""


class OscClient:
    """A python-osc client of the service or of the Reaper listener (framing of docs/osc.md)."""

    def __init__(self, port: int, name: str):
        self.port, self.name, self.count = port, name, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, types: str, *values) -> str:
        self.count += 1
        request_id = f"{self.name}-{self.count}"
        self.sock.sendto(build(f"/vampbridge/{address}", "sis" + types, request_id, self.sock.getsockname()[1],
                               read_secret(),
                               *values), ("127.0.0.1", self.port))
        return request_id

    def wait(self, request_id: str, addresses: set[str], timeout_s: float = 60):
        """The next message for request_id whose address is one of `addresses` (others dropped)."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recvfrom(65535)[0]
            except socket.timeout:
                break
            for message in decode(data):
                if message.params and message.params[0] == request_id and message.address in addresses:
                    return message
        raise AssertionError(f"{self.name}: nothing of {sorted(addresses)} for {request_id} within {timeout_s}s")

    def ask(self, address: str, types: str, *values, timeout_s: float = 10):
        request_id = self.send(address, types, *values)
        return self.wait(request_id, {f"/vampbridge/{r}" for r in REPLIES[address]}, timeout_s)

    def close(self) -> None:
        self.sock.close()


REPLIES = {"hello": ["hello"], "take": ["take_added", "error"], "locate": ["located", "error"],
           "ack": ["acked", "error"]}


class Service:
    """`vampbridge serve` in a process of its own, with its own jobs database. It shares the test
    session's data folder with the Lua scripts and the Python clients, as a real user's service
    does, so they all read the secret it created there."""

    def __init__(self, model: Path, data_dir: Path):
        self.model, self.data_dir = model, data_dir
        self.port = free_udp_port()
        self.env = dict(os.environ)
        self.log = data_dir / "serve.log"
        self.pid_file = data_dir / "restarted.pid"
        self.process: subprocess.Popen | None = None

    def command(self, port: str) -> str:
        return f"{VAMPBRIDGE} serve --port {port} --model {self.model} --data-dir {self.data_dir}"

    def answers(self, timeout_s: float) -> bool:
        client = OscClient(self.port, "probe")
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    client.ask("hello", "", timeout_s=0.5)
                    return True
                except AssertionError:
                    pass
            return False
        finally:
            client.close()

    def ensure_running(self) -> None:
        if self.answers(timeout_s=0.5):
            return
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.command(str(self.port)).split(), env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)
        if not self.answers(timeout_s=60):
            raise AssertionError(f"vampbridge serve did not answer on port {self.port}; see {self.log}")

    def autostart_command(self) -> str:
        """What the script's auto-start setting runs (through sh in the test), leaving a pid file."""
        return (f"{self.command('{port}')} >> {self.log} 2>&1 "
                f"& echo $! > {self.pid_file}")

    def kill(self) -> None:
        """Kills the service: the one this object started and the one an auto-start started."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.pid_file.exists():
            try:
                os.kill(int(self.pid_file.read_text()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    model = tmp_path_factory.mktemp("model") / "tiny"
    subprocess.run([str(VAMPBRIDGE), "models", "make-random", str(model), "--size", "tiny"], check=True,
                   capture_output=True, timeout=120)
    return model


@pytest.fixture(scope="module")
def shared_service(tiny_model, tmp_path_factory):
    svc = Service(tiny_model, tmp_path_factory.mktemp("service-data"))
    yield svc
    svc.kill()


@pytest.fixture
def real_service(shared_service) -> Service:
    shared_service.ensure_running()
    return shared_service


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "drums.wav"
    write_wav(path, 4.0, 44100, 2)
    return path


def settings(svc: Service, tmp_path: Path, **extra) -> dict:
    values = dict(port=svc.port, reply_timeout_s=1.0, startup_wait_s=60, autostart="", n_variations=1,
                  sampling=FAST_SAMPLING, output_dir=str(tmp_path / "renders"), preset="balanced", fx="none",
                  listener_port=free_udp_port())
    values.update(extra)
    return values


def scenario(tmp_path: Path, code: str, **params) -> Scenario:
    return Scenario(tmp_path, PRELUDE + code, **params)


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


def test_two_items_get_real_variations_that_play_like_their_takes(tmp_path, wav, real_service):
    # The service renders in source time; the scripts keep the take's playrate and offset.
    # (Time selections send the `options` argument, tested against the fake service until the
    # real one has it.)
    report = scenario(tmp_path, """
      local a = wav_item{ track = 1, position_s = 2, length_s = 1, startoffs_s = 0.5, playrate = 1.5 }
      local b = wav_item{ track = 2, position_s = 10, length_s = 1, startoffs_s = 0.25,
        take = { D_PITCH = 3, D_VOL = 0.5, D_PAN = -0.5 } }
      run_to_end("Vamp selected items")
      H.out.a, H.out.b = a.guid, b.guid
    """, wav=str(wav), settings=settings(real_service, tmp_path)).run(timeout_s=150)

    assert report["errors"] == [] and report["messages"] == [], report["console"]
    for guid, region_start_s, region_length_s in ((report["out"]["a"], 0.5, 1.5), (report["out"]["b"], 0.25, 1.0)):
        item = item_by_guid(report, guid)
        (new,) = check_vamp_takes(item, 1, tmp_path)
        with wave.open(new["file"]) as w:
            assert w.getnframes() / w.getframerate() == pytest.approx(region_length_s, abs=0.01)
        assert_plays_like(item, item["takes"][0], new, region_start_s)
    assert [u["description"] for u in report["undo_log"]] == ['VampBridge: 1 variation of "drums.wav"'] * 2
    assert report["changes_outside_undo"] == 0


# Everything in a recipe that describes the render rather than what was asked for.
RENDER_FACTS = {"created", "fingerprint", "output", "timings"}


def test_rerender_with_another_effect_chain_adds_a_take_whose_recipe_differs_only_in_fx(
        tmp_path, wav, real_service):
    report = scenario(tmp_path, """
      local it = wav_item{ position_s = 1, length_s = 0.5 }
      run_to_end("Vamp selected items")
      H.out.vamp_take = it.active.guid
      double.user_inputs = { { "lofi", "-1" } }   -- effect chain lofi, the recorded seed
      run_to_end("Re-render selected takes")
      H.out.guid = it.guid
    """, wav=str(wav), settings=settings(real_service, tmp_path)).run(timeout_s=150)

    assert report["errors"] == [] and report["messages"] == [], report["console"]
    original, vamped, rerendered = item_by_guid(report, report["out"]["guid"])["takes"]
    assert vamped["guid"] == report["out"]["vamp_take"]
    assert rerendered["active"] and rerendered["name"] == vamped["name"] + " lofi"  # names its new chain
    assert rerendered["startoffs_s"] == vamped["startoffs_s"] == 0 and rerendered["values"] == vamped["values"]
    assert rerendered["file"] != vamped["file"] and Path(rerendered["file"]).is_file()
    assert Path(rerendered["file"]).read_bytes() != Path(vamped["file"]).read_bytes()

    old = json.loads(Path(vamped["ext"]["vampbridge_recipe"]).read_text())
    new = json.loads(Path(rerendered["ext"]["vampbridge_recipe"]).read_text())
    assert (old["request"]["fx"], new["request"]["fx"]) == ("none", "lofi")
    assert old["fx"] != new["fx"]
    assert new["output"]["path"] == rerendered["file"]

    def what_was_asked(recipe: dict) -> dict:
        kept = {k: v for k, v in recipe.items() if k not in RENDER_FACTS | {"fx", "take_name"}}
        # The request keeps the mask as sent: "balanced" the first time, the resolved recipe in
        # a re-render; the resolved mask is compared at the top level (`mask`).
        kept["request"] = {k: v for k, v in recipe["request"].items() if k not in ("fx", "mask")}
        return kept

    assert what_was_asked(new) == what_was_asked(old)  # same seed, mask, sampling, source, tokens
    assert new["mask"]["preset"] == "balanced"
    assert new["take_name"] == old["take_name"] + " lofi"
    assert [u["description"] for u in report["undo_log"]] == [
        'VampBridge: 1 variation of "drums.wav"', f'VampBridge: re-render of "{vamped["name"]}"']


def test_listener_adds_a_take_the_companion_rendered(tmp_path, wav, real_service):
    """The companion (here a python-osc client) finds the item's audio through the Listener,
    has the service render a variation, and hands the result to the Listener as a take."""
    config = settings(real_service, tmp_path)
    sc = scenario(tmp_path, """
      local it = wav_item{ position_s = 4, length_s = 1, startoffs_s = 0.25 }
      io.stdout:write("GUID " .. it.guid .. "\\n")
      local listener = H.run("Listener", 60010)
      H.ready("listening")
      H.wait_for_python(120)
      double.terminate(listener)
      H.out.guid = it.guid
    """, wav=str(wav), settings=config).start()
    companion = OscClient(real_service.port, "gui-e2e")
    to_reaper = OscClient(config["listener_port"], "gui-e2e-reaper")
    try:
        sc.wait_ready("listening")
        guid = next(line.split()[1] for line in sc.stdout if line.startswith("GUID "))
        located = to_reaper.ask("locate", "s", guid)
        found, source_path, start_s, length_s, playrate, sample_rate, channels = located.params[1:]
        assert (found, source_path, start_s, length_s) == (True, str(wav), 0.25, 1.0)

        job = companion.send("vamp", "ssdddiisssssiis", "gui-e2e", source_path, start_s, length_s, playrate,
                             sample_rate, channels, guid, "", "balanced", FAST_SAMPLING, "none", 1, 7,
                             str(tmp_path / "renders"))
        result = companion.wait(job, {"/vampbridge/result", "/vampbridge/error"}, timeout_s=120)
        assert result.address == "/vampbridge/result", result.params
        _, variation, output_path, recipe_path, item_guid, _, take_name, seed = result.params
        assert (item_guid, seed) == (guid, 7)

        reply = to_reaper.ask("take", "ssss", guid, output_path, recipe_path, take_name)
        assert (reply.address, reply.params[1:]) == ("/vampbridge/take_added", [True, ""])
        assert companion.ask("ack", "si", job, variation).address == "/vampbridge/acked"
    finally:
        sc.resume()
        report = sc.finish()
        companion.close()
        to_reaper.close()

    assert report["errors"] == [] and report["messages"] == [], report["console"]
    original, new = item_by_guid(report, report["out"]["guid"])["takes"]
    assert original["name"] == "drums.wav" and not original["active"]
    assert new["active"] and new["name"] == take_name == "vamp 1 balanced s7"
    assert new["file"] == output_path and new["ext"] == {"vampbridge_recipe": recipe_path}
    assert json.loads(Path(recipe_path).read_text())["output"]["path"] == output_path
    assert new["peaks_built"] and new["sample_rate"] == 44100
    assert [u["description"] for u in report["undo_log"]] == [f'VampBridge: add take "{take_name}"']


# Last: it kills the shared service (a later test would start it again).
def test_service_killed_while_the_job_waits_is_restarted_and_the_job_finishes(tmp_path, wav, real_service):
    # A long job of another client keeps the worker busy, so the script's job is certainly still
    # queued (accepted, unfinished) when the service dies, however fast the machine.
    long_wav = tmp_path / "long.wav"
    write_wav(long_wav, 8.0, 44100, 2)
    other = OscClient(real_service.port, "e2e-blocker")
    blocker = other.send("vamp", "ssdddiisssssiis", "e2e-blocker", str(long_wav), 0.0, 8.0, 1.0, 44100, 2,
                         "", "", "balanced", '{"sampling_steps": 64}', "none", 4, 1, str(tmp_path / "blocker"))
    other.wait(blocker, {"/vampbridge/progress"})
    other.close()

    sc = scenario(tmp_path, """
      double.on_exec = function(command)
        os.execute(command)  -- the auto-start command really starts the service again
        return ""
      end
      local it = wav_item{ position_s = 2, length_s = 0.5 }
      local script = H.run("Vamp selected items")
      double.pump_until(function()
        local frame = double.status_frames[#double.status_frames] or ""
        return frame:find(": queued", 1, true) ~= nil
      end, 60, "the job queued behind the other one")
      H.ready("queued")
      H.wait_for_python(30)
      double.pump_until(function() return not script.alive end, 120, "the script to end")
      H.out.guid = it.guid
    """, wav=str(wav), settings=settings(real_service, tmp_path, n_variations=2,
                                          autostart=real_service.autostart_command())).start()
    try:
        sc.wait_ready("queued", timeout_s=60)
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
    assert undo["description"] == 'VampBridge: 2 variations of "drums.wav"'
    assert len([c for c in undo["changes"] if c["op"] == "add_take"]) == 2
