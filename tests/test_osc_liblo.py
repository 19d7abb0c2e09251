"""Interoperability with liblo (Debian's `liblo-tools`), an independent OSC implementation:
`oscsend` talks to the service, and the service's replies are read by `oscdump`."""

import queue
import shutil
import socket
import subprocess
import threading
import time

import pytest

from bridge.osc.client import OscClient
from test_service_support import FAST_SAMPLING, InProcessBridge, write_test_wav

pytestmark = pytest.mark.skipif(not (shutil.which("oscsend") and shutil.which("oscdump")),
                                reason="liblo-tools (oscsend, oscdump) not installed")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OscDump:
    """`oscdump` on a free port; `lines` receives each message it prints."""

    def __init__(self) -> None:
        self.port = _free_udp_port()
        self.proc = subprocess.Popen(["oscdump", "-L", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        time.sleep(0.3)  # oscdump prints nothing when ready; give it a moment to bind

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line.strip())

    def wait_for(self, fragment: str, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if fragment in line:
                return line
        raise TimeoutError(f"oscdump printed no line with {fragment!r}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def secret() -> str:
    """The per-user secret as docs/osc.md tells a shell script to get it:
    `cat "$VAMPBRIDGE_DATA_DIR/secret"` (the service created it on its first start)."""
    return subprocess.run(["sh", "-c", 'cat "$VAMPBRIDGE_DATA_DIR/secret"'], check=True,
                          capture_output=True, text=True).stdout.strip()


def oscsend(port: int, address: str, types: str, *values) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *map(str, values)],
                   check=True, timeout=10)


@pytest.fixture
def bridge(tmp_path, tiny_models):
    with InProcessBridge(tmp_path / "data", tiny_models) as b:
        yield b


def test_liblo_request_is_answered_to_a_python_osc_client(bridge):
    with OscClient(port=bridge.port) as listener:
        oscsend(bridge.port, "/vampbridge/hello", "sis", "liblo-1", listener.reply_port, secret())
        hello = listener.wait_for("hello", "liblo-1")
        assert hello.args[1] == 1
        # numbers as float32 and int64 from liblo are accepted where a number is expected
        oscsend(bridge.port, "/vampbridge/ack", "sfssh", "liblo-2", float(listener.reply_port),
                secret(), "no-such-job", 0)
        assert listener.wait_for("error", "liblo-2").args[1] == "unknown_job"


def test_service_replies_are_read_by_liblo(bridge):
    dump = OscDump()
    try:
        with OscClient(port=bridge.port) as c:
            c.reply_port = dump.port  # replies go to oscdump instead
            c.request("ping", request_id="py-1")
            assert dump.wait_for("/vampbridge/pong").endswith('/vampbridge/pong s "py-1"')
            c.request("frobnicate", request_id="py-2")
            line = dump.wait_for("/vampbridge/error")
            assert ' sss "py-2" "unknown_address" ' in line
    finally:
        dump.close()


def test_vamp_job_round_trip_entirely_through_liblo(bridge, tmp_path):
    source = write_test_wav(tmp_path / "media" / "loop.wav")
    out = tmp_path / "renders"
    dump = OscDump()
    try:
        oscsend(bridge.port, "/vampbridge/vamp", "sisssdddiisssssiis",
                "liblo-vamp", dump.port, secret(), "reaper:liblo", source, 0.0, 0.0, 1.0, 0, 0,
                "{item}", "{take}", "balanced", FAST_SAMPLING, "none", 2, 1234, out)
        assert ' si "liblo-vamp" ' in dump.wait_for("/vampbridge/accepted")
        dump.wait_for("/vampbridge/progress")
        result = dump.wait_for("/vampbridge/result", timeout_s=120)
        assert result.split()[2] == "sisssssi" and str(out) in result
        done = dump.wait_for("/vampbridge/done", timeout_s=120)
        assert done.endswith('siis "liblo-vamp" 2 0 "done"')
    finally:
        dump.close()
