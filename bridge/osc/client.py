"""A small OSC client for the VampBridge protocol: scripts, tests, benchmarks, the companion.

    with OscClient(port=9071) as c:
        c.request("hello")
        reply = c.wait_for("hello")

Arguments are typed from Python values: str -> s, int -> i, float -> d (float64). Every request
carries the per-user secret (`bridge.secret.read_secret()`, the file the service created) unless
another `token` is given.
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from pythonosc.osc_message_builder import OscMessageBuilder

from bridge.osc import protocol


@dataclass(frozen=True)
class Reply:
    """A message from the service: `name` without the prefix, `args` including the id first."""

    name: str
    args: tuple
    received_s: float  # time.perf_counter() at arrival

    @property
    def id(self) -> str:
        return self.args[0] if self.args else ""


class OscClient:
    """Sends requests to a VampBridge service and collects its replies on its own UDP port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9071, *, token: str | None = None,
                 name: str = "client", bind_host: str = "127.0.0.1") -> None:
        if token is None:
            from bridge.secret import read_secret
            token = read_secret()
        self.server = (host, port)
        self.token = token
        self.name = name
        self._ids = itertools.count(1)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.bind((bind_host, 0))
        self._sock.settimeout(0.2)
        self.reply_port = self._sock.getsockname()[1]
        self.replies: "queue.Queue[Reply]" = queue.Queue()
        self._backlog: list[Reply] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True,
                                        name=f"osc-client-{name}")
        self._thread.start()

    def new_id(self) -> str:
        return f"{self.name}-{next(self._ids)}"

    def request(self, name: str, *args: Any, request_id: str | None = None) -> str:
        """Send `/vampbridge/<name>` with the header and `args`; returns the request id."""
        request_id = request_id or self.new_id()
        self.send_raw(build_message(protocol.PREFIX + name,
                                    (request_id, self.reply_port, self.token) + tuple(args)))
        return request_id

    def send_raw(self, data: bytes) -> None:
        self._sock.sendto(data, self.server)

    def wait_for(self, name: str | None = None, request_id: str | None = None, *,
                 where: Callable[[Reply], bool] | None = None, timeout_s: float = 10.0) -> Reply:
        """The first reply (received or arriving) that matches; others are kept for later."""
        def matches(r: Reply) -> bool:
            return ((name is None or r.name == name) and (request_id is None or r.id == request_id)
                    and (where is None or where(r)))
        for i, r in enumerate(self._backlog):
            if matches(r):
                return self._backlog.pop(i)
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {name or 'reply'} for {request_id or 'any id'} within "
                                   f"{timeout_s} s; other replies: {self._backlog[-5:]}")
            try:
                r = self.replies.get(timeout=left)
            except queue.Empty:
                continue
            if matches(r):
                return r
            self._backlog.append(r)

    def drain(self) -> list[Reply]:
        """Every reply received so far and not yet taken."""
        out, self._backlog = self._backlog, []
        while True:
            try:
                out.append(self.replies.get_nowait())
            except queue.Empty:
                return out

    def _receive(self) -> None:
        from pythonosc.osc_message import OscMessage
        while not self._stop.is_set():
            try:
                data, _ = self._sock.recvfrom(65_536)
            except (socket.timeout, OSError):
                continue
            now = time.perf_counter()
            try:
                msg = OscMessage(data)
            except Exception:
                continue
            name = msg.address[len(protocol.PREFIX):] if msg.address.startswith(protocol.PREFIX) \
                else msg.address
            self.replies.put(Reply(name, tuple(msg.params), now))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()

    def __enter__(self) -> "OscClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_message(address: str, args: tuple) -> bytes:
    """An OSC datagram; str -> s, bool -> T/F, int -> i, float -> d, bytes -> b."""
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(a)
        elif isinstance(a, int):
            b.add_arg(a, "i" if -2**31 <= a < 2**31 else "h")
        elif isinstance(a, float):
            b.add_arg(a, "d")
        else:
            b.add_arg(a)
    return b.build().dgram
