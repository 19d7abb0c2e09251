"""Helpers for the remote tests (no tests here): an in-process HTTP service, the relay, a TCP
proxy that can cut connections, and the HTTP service as a child process (for SIGKILL)."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path

from test_service_support import InProcessBridge

REPO = Path(__file__).resolve().parents[1]
TOKEN = "remote-test-token"


class HttpBridge(InProcessBridge):
    """A JobService with the real Pipeline (tiny weights), its OSC server and the HTTP service,
    as `vampbridge serve --http` runs them."""

    def __init__(self, data_dir: Path, model_dir: Path, *, token: str = TOKEN,
                 max_upload_bytes: int = 64 * 2**20) -> None:
        from bridge.remote.http_service import HttpService

        super().__init__(data_dir, model_dir)
        self.http = HttpService(self.service, root=data_dir / "remote", port=0, token=token,
                                max_upload_bytes=max_upload_bytes)

    def __enter__(self) -> "HttpBridge":
        super().__enter__()
        self.http.start()
        return self

    def __exit__(self, *exc) -> None:
        self.http.stop()
        super().__exit__(*exc)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}"


class Relay(InProcessBridge):
    """The relay as `vampbridge serve --remote` runs it: JobService(RemotePipeline) + OSC."""

    def __init__(self, data_dir: Path, url: str, *, token: str = TOKEN) -> None:
        from bridge.remote.relay import RemotePipeline

        super().__init__(data_dir, None, pipeline=RemotePipeline(url, token=token, cache_dir=data_dir / "relay",
                                                                 client_name="relay-test"), preload=False)


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `drop()` cuts every open connection (as a lost
    Wi-Fi or SSH tunnel would) while new ones keep working."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.n_dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([a, b], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass

    def drop(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.n_dropped += 1

    def close(self) -> None:
        self._stop.set()
        self.drop()
        self._listener.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpProcess:
    """`vampbridge serve --http 127.0.0.1:<http_port>` in a child process."""

    def __init__(self, data_dir: Path, model_dir: Path, http_port: int, *, token: str = TOKEN) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "VAMPBRIDGE_DATA_DIR": str(data_dir),
               "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--port", "0", "--http",
             f"127.0.0.1:{http_port}", "--token", token, "--device", "cpu", "--model",
             str(model_dir), "--data-dir", str(data_dir)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.log.append(line)
            if re.search(r"HTTP service listening on", line):
                break
        else:
            raise RuntimeError(f"the HTTP service did not start (exit {self.proc.wait()}):\n"
                               + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.log.append(line)

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
