"""Runs Lua scenarios (tests/lua/run_scenario.lua) from pytest and returns their reports.

A scenario is Lua code that builds a project in the reaper test double, runs the real script
files and pumps the defer loop; the runner prints "REPORT <json>" at the end. Long-running
scenarios can stop at ``H.ready(tag)`` + ``H.wait_for_python()`` while the Python test talks to a
script (the Listener) over UDP.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
from pathlib import Path

from fake_service import build, free_udp_port

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "lua" / "run_scenario.lua"
LUA = shutil.which("lua5.4")

# Lua every scenario file starts with: the settings from P.settings, `item(spec)` (an item on the
# test WAV unless the spec names a source) and `run_to_end(action)` (a script run until it ends).
PRELUDE_COMMON = """
H.settings(P.settings)
local function item(spec)
  spec.source = spec.source or { file = P.wav }
  return double.add_item(spec)
end
local function run_to_end(action, timeout_s)
  local script = H.run(action)
  double.pump_until(function() return not script.alive end, timeout_s or 10, action .. " to end")
  return script
end
"""


class ScenarioFailed(AssertionError):
    pass


def _parse_report(stdout: str, stderr: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("REPORT "):
            report = json.loads(line[len("REPORT "):])
            error = report.get("out", {}).get("scenario_error") if isinstance(report.get("out"), dict) else None
            if error:
                raise ScenarioFailed(f"scenario failed:\n{error}\nconsole:\n{report.get('console')}")
            return report
    raise ScenarioFailed(f"no report from the scenario\nstdout:\n{stdout}\nstderr:\n{stderr}")


class Scenario:
    def __init__(self, tmp_path: Path, code: str, **params):
        self.dir = tmp_path
        self.params = dict(params)
        self.params.setdefault("scenario_port", free_udp_port())
        self.params.setdefault("tmp", str(tmp_path))
        self.code_path = tmp_path / "scenario.lua"
        self.params_path = tmp_path / "params.json"
        self.code_path.write_text(code)
        self.params_path.write_text(json.dumps(self.params))
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [LUA, str(RUNNER), str(self.code_path), str(self.params_path)]

    def run(self, timeout_s: float = 30) -> dict:
        """Runs the scenario to its end and returns the report."""
        done = subprocess.run(self.command(), capture_output=True, text=True, timeout=timeout_s, cwd=self.dir)
        return _parse_report(done.stdout, done.stderr)

    # Interactive use ----------------------------------------------------------------------------

    def start(self) -> "Scenario":
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=self.dir)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []

        def read():
            for line in self.process.stdout:
                self.stdout.append(line)
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        return self

    def wait_ready(self, tag: str, timeout_s: float = 20) -> None:
        """Waits until the scenario prints "READY <tag>"."""
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                raise ScenarioFailed(f"scenario never got to READY {tag}") from None
            if line is None:
                self.process.wait()
                _parse_report("".join(self.stdout), self.process.stderr.read())
                raise ScenarioFailed(f"scenario ended before READY {tag}")
            if line.strip() == f"READY {tag}":
                return

    def resume(self) -> None:
        """Lets a scenario waiting in H.wait_for_python() go on."""
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(build("/test/continue", ""), ("127.0.0.1", self.params["scenario_port"]))

    def finish(self, timeout_s: float = 30) -> dict:
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        stderr = self.process.stderr.read()
        while self.lines.get() is not None:
            pass
        return _parse_report("".join(self.stdout), stderr)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def all_items(report: dict) -> list[dict]:
    return [item for track in report["tracks"] for item in track["items"]]


def item_by_guid(report: dict, guid: str) -> dict:
    for item in all_items(report):
        if item["guid"] == guid:
            return item
    raise KeyError(guid)
