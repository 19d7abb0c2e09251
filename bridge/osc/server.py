"""The OSC front end of the job service: one UDP socket, one receive thread, replies by datagram.

    server = BridgeServer(service, host="127.0.0.1", port=9071).start()
    ...
    server.stop()

or, headless, `serve(host, port, token, model_dir, device)` (what `vampbridge serve` calls), which
builds the pipeline, the store and the service, serves until SIGINT/SIGTERM, and stops cleanly.

Nothing a sender does can stop the service: malformed datagrams, unknown addresses, wrong
arguments and oversized requests are answered with `error` when the request id and reply port are
readable, logged (rate-limited) otherwise, and counted in `status`'s `dropped`. Every message
must carry the token (by default the per-user secret of `bridge.secret`, also on loopback);
messages without it are dropped silently (and counted) before anything else is looked at.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bridge.jobs import (DoneEvent, ErrorEvent, JobError, JobEvent, JobService, JobStore,
                         ProgressEvent, ResultEvent, VariationRecord)
from bridge.osc import protocol
from bridge.osc.protocol import Command, OpenRequest, ProtocolError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9071
_RECV_BUFFER_BYTES = 65_536  # > the largest UDP payload, so nothing arrives truncated
_SOCKET_RCVBUF_BYTES = 4 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for 127.x.y.z, ::1 and `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Route:
    """Where a job's messages go: the address of the client that submitted (or resumed) it.

    `lock` keeps `accepted` ahead of the job's first `progress`.
    """

    host: str
    port: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class _RateLimitedLog:
    """At most `per_second` warnings a second; the rest are counted and summarised."""

    def __init__(self, per_second: int = 5) -> None:
        self._per_second = per_second
        self._window_start = 0.0
        self._count = 0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, msg: str, *args) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= 1.0:
                if self._suppressed:
                    log.warning("%d similar messages suppressed in the last second",
                                self._suppressed)
                self._window_start, self._count, self._suppressed = now, 0, 0
            self._count += 1
            if self._count > self._per_second:
                self._suppressed += 1
                return
        log.warning(msg, *args)


class BridgeServer:
    """Serves the VampBridge OSC protocol (`docs/osc.md`) for a JobService.

    `token` None (the default) is the per-user secret (`bridge.secret.ensure_secret()`, created
    on first use); "" serves without a token, allowed on loopback only (`--no-token`).
    `editor` is called with an `OpenRequest` for `open` (the companion passes one; without it
    `open` answers `no_editor`). `port` 0 picks a free port (see `.port` after `start()`).
    """

    def __init__(self, service: JobService, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 token: str | None = None,
                 editor: Callable[[OpenRequest], None] | None = None) -> None:
        if token == "" and not is_loopback(host):
            raise ValueError(f"binding to {host} (not loopback) requires a token: --no-token is "
                             "allowed on loopback only")
        if token is None:
            from bridge.secret import ensure_secret
            token = ensure_secret()
        self.service = service
        self.host = host
        self.token = token
        self.editor = editor
        self.dropped = 0  # datagrams dropped: bad token, malformed, no reply address
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._routes: dict[str, _Route] = {}
        self._routes_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        self._rate_log = _RateLimitedLog()
        self._handlers: dict[str, Callable[[Command, "_Reply"], None]] = {
            "hello": self._on_hello, "ping": self._on_ping, "vamp": self._on_vamp,
            "rerender": self._on_rerender, "cancel": self._on_cancel, "resume": self._on_resume,
            "status": self._on_status, "pending": self._on_pending, "ack": self._on_ack,
            "open": self._on_open,
        }

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "BridgeServer":
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_RCVBUF_BYTES)
        except OSError:
            pass
        if sys.platform == "win32":  # don't let ICMP port-unreachable break recvfrom
            sock.ioctl(socket.SIO_UDP_CONNRESET, False)  # type: ignore[attr-defined]
        sock.bind((self.host, self._requested_port))
        sock.settimeout(0.2)
        self._sock = sock
        self._unsubscribe = self.service.subscribe(self._on_event)
        self._thread = threading.Thread(target=self._receive_loop, name="vampbridge-osc",
                                        daemon=True)
        self._thread.start()
        log.info("VampBridge OSC service listening on %s:%d%s", self.host, self.port,
                 " (token required)" if self.token else "")
        return self

    @property
    def port(self) -> int:
        assert self._sock is not None, "start() the server first"
        return self._sock.getsockname()[1]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> "BridgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- receiving --------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, sender = self._sock.recvfrom(_RECV_BUFFER_BYTES)
            except socket.timeout:
                continue
            except OSError as e:  # e.g. ICMP errors surfacing on some platforms
                if self._stop.is_set():
                    break
                self._rate_log.warning("OSC receive failed: %s", e)
                continue
            try:
                self.handle_datagram(data, sender[0])
            except Exception:  # last line of defence: the loop must survive anything
                log.exception("unexpected failure handling a datagram from %s", sender[0])

    def handle_datagram(self, data: bytes, sender_host: str) -> None:
        """Handle one datagram from `sender_host` (replies go there, at the request's port)."""
        if len(data) > protocol.MAX_DATAGRAM_BYTES:
            self._refuse_too_large(data, sender_host)
            return
        try:
            messages = protocol.split_packet(data)
        except ProtocolError as e:
            self._drop(sender_host, e.message)
            return
        for message in messages:
            self._handle_message(message.address, list(message.params), sender_host)

    def _handle_message(self, address: str, params: list, sender_host: str) -> None:
        target = protocol.reply_address_of(params)
        if not self._token_ok(params):
            self._drop(sender_host, f"{address[:60]}: missing or wrong token")
            return
        if target is None:
            self._drop(sender_host, f"{address[:60]}: no request id and reply port")
            return
        reply = _Reply(self, sender_host, target[1], target[0])
        try:
            command = protocol.decode(address, params)
            self._handlers[command.name](command, reply)
        except (ProtocolError, JobError) as e:
            reply.error(e.code, e.message)
        except ValueError as e:
            if not hasattr(e, "code"):  # not a RequestError: a bug, report it as one
                log.exception("%s from %s failed", address, sender_host)
            reply.error(getattr(e, "code", "internal"), str(e))
        except OSError as e:  # a path in the request the file system refuses (too long, ...)
            self._rate_log.warning("%s from %s: %s", address, sender_host, e)
            reply.error("bad_argument", f"a path in the request cannot be used "
                        f"({e.strerror or type(e).__name__}); check the paths it names")
        except Exception as e:
            log.exception("%s from %s failed", address, sender_host)
            reply.error("internal", f"internal error ({type(e).__name__}: {e}); see the "
                        "service log")

    def _token_ok(self, params: list) -> bool:
        if not self.token:
            return True
        given = params[2] if len(params) >= 3 and isinstance(params[2], str) else ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    def _refuse_too_large(self, data: bytes, sender_host: str) -> None:
        try:
            params = list(protocol.split_packet(data)[0].params)
        except (ProtocolError, IndexError):
            params = []
        target = protocol.reply_address_of(params)
        if target is None or not self._token_ok(params):
            self._drop(sender_host, f"datagram of {len(data)} bytes is too large")
            return
        _Reply(self, sender_host, target[1], target[0]).error(
            "too_large", f"request of {len(data)} bytes is larger than "
            f"{protocol.MAX_DATAGRAM_BYTES}; send a path to a JSON file instead (mask \"@/path\")")

    def _drop(self, sender_host: str, why: str) -> None:
        self.dropped += 1
        self._rate_log.warning("dropped a datagram from %s: %s", sender_host, why)

    # -- sending ----------------------------------------------------------------------------

    def send(self, host: str, port: int, name: str, *args) -> None:
        """Send reply `name` to host:port; a failed send is logged, never raised."""
        try:
            data = protocol.encode_reply(name, *args)
            assert self._sock is not None
            self._sock.sendto(data, (host, port))
        except Exception as e:
            self._rate_log.warning("could not send %s to %s:%d: %s", name, host, port, e)

    def _send_result(self, host: str, port: int, r: VariationRecord) -> None:
        self.send(host, port, "result", r.job_id, r.index, r.audio_path, r.recipe_path,
                  r.item_guid, r.take_guid, r.take_name, r.seed)

    def _on_event(self, event: JobEvent) -> None:
        with self._routes_lock:
            route = self._routes.get(event.job_id)
        if route is None:  # a job of another front end (the GUI), or of a previous run
            return
        with route.lock:
            if isinstance(event, ProgressEvent):
                self.send(route.host, route.port, "progress", event.job_id, event.fraction,
                          event.stage, event.variation)
            elif isinstance(event, ResultEvent):
                self._send_result(route.host, route.port, event.variation)
            elif isinstance(event, ErrorEvent):
                self.send(route.host, route.port, "error", event.job_id, event.code,
                          _one_line(event.message))
            elif isinstance(event, DoneEvent):
                self.send(route.host, route.port, "done", event.job_id, event.n_finished,
                          event.n_failed, event.state)
        if isinstance(event, DoneEvent):
            with self._routes_lock:
                if self._routes.get(event.job_id) is route:
                    del self._routes[event.job_id]

    # -- handlers ---------------------------------------------------------------------------

    def _on_hello(self, cmd: Command, reply: "_Reply") -> None:
        info = self._engine_info()
        capabilities = [name for name in protocol.REQUESTS if name != "open" or self.editor]
        reply("hello", protocol.PROTOCOL_VERSION, str(info.get("engine_version", "")),
              str(info.get("device", "")), protocol.fit_json_list(list(info.get("models", []))),
              protocol.fit_json_list(capabilities),
              _json(info.get("presets", {"mask": [], "fx": []})), _one_line(info.get("load_error", "")))

    def _engine_info(self) -> dict:
        try:
            return dict(self.service.info())
        except Exception as e:
            log.warning("engine info unavailable: %s", e)
            return {}

    def _on_ping(self, cmd: Command, reply: "_Reply") -> None:
        reply("pong")

    def _on_vamp(self, cmd: Command, reply: "_Reply") -> None:
        with protocol.file_content_hidden(cmd):
            self._submit(cmd, reply, protocol.vamp_request(cmd))

    def _on_rerender(self, cmd: Command, reply: "_Reply") -> None:
        with protocol.file_content_hidden(cmd):
            self._submit(cmd, reply, protocol.rerender_request(cmd))

    def _submit(self, cmd: Command, reply: "_Reply", request) -> None:
        job_id = cmd.header.request_id
        priority = protocol.priority_of(cmd)

        def submit() -> int:
            self.service.submit(request, cmd.args["client"], priority, job_id=job_id)
            return self.service.queue_position(job_id) or 0

        self._accept_routed(job_id, reply, submit)

    def _on_cancel(self, cmd: Command, reply: "_Reply") -> None:
        job_id = cmd.args["job_id"]
        self.service.cancel(job_id)
        reply("cancelled", job_id)

    def _on_resume(self, cmd: Command, reply: "_Reply") -> None:
        job_id = cmd.args["job_id"]
        self._accept_routed(job_id, reply, lambda: self.service.resume(job_id))

    def _accept_routed(self, job_id: str, reply: "_Reply", start: Callable[[], int]) -> None:
        """Route the job's events to this reply address, `start()` it (returns its queue position)
        and reply `accepted`. The job's events wait on the route's lock until `accepted` is out;
        if `start` fails, the previous route (if any) is put back."""
        route = _Route(reply.host, reply.port)
        with route.lock:
            with self._routes_lock:
                previous = self._routes.get(job_id)
                self._routes[job_id] = route
            try:
                position = start()
            except Exception:
                with self._routes_lock:
                    if previous is None:
                        self._routes.pop(job_id, None)
                    else:
                        self._routes[job_id] = previous
                raise
            reply("accepted", position)

    def _on_status(self, cmd: Command, reply: "_Reply") -> None:
        jobs = [s.to_dict() for s in self.service.status(cmd.args["job_id"] or None)]
        info = self._engine_info()
        reply("status", protocol.fit_json_list(jobs), self.dropped, str(info.get("device", "")),
              _one_line(info.get("load_error", "")))

    def _on_pending(self, cmd: Command, reply: "_Reply") -> None:
        records = self.service.pending(cmd.args["client"] or None)
        for r in records:
            self._send_result(reply.host, reply.port, r)
        reply("pending", len(records))

    def _on_ack(self, cmd: Command, reply: "_Reply") -> None:
        self.service.ack(cmd.args["job_id"], cmd.args["variation"])
        reply("acked", cmd.args["job_id"], cmd.args["variation"])

    def _on_open(self, cmd: Command, reply: "_Reply") -> None:
        if self.editor is None:
            raise ProtocolError("no_editor", "this service runs headless; open the region from "
                                "the companion (vampbridge gui) instead")
        self.editor(protocol.open_request(cmd))
        reply("opened")


@dataclass
class _Reply:
    """Replies to one request: `reply(name, *args)` prepends the request id."""

    server: BridgeServer
    host: str
    port: int
    request_id: str

    def __call__(self, name: str, *args) -> None:
        self.server.send(self.host, self.port, name, self.request_id, *args)

    def error(self, code: str, message: str) -> None:
        self("error", code, _one_line(message))


def _one_line(text: str, limit: int = 1000) -> str:
    return " ".join(str(text).split())[:limit]


def _json(value) -> str:
    import json
    return json.dumps(value)


# -- the headless entry point ---------------------------------------------------------------

def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
          model_dir: str | Path | None = None, device: str | None = None,
          data_dir: str | Path | None = None, keep_days: float = 30.0, finetune: str | None = None,
          precision: str = "auto", *,
          plugin_dirs: list[str] | tuple[str, ...] = (),
          ready: Callable[[BridgeServer], None] | None = None,
          stop: threading.Event | None = None, pipeline=None) -> int:
    """Run the service until SIGINT/SIGTERM (or `stop` is set); returns an exit status.

    `token` None: requests must carry the per-user secret (`bridge.secret`); "": no token
    (loopback only). `plugin_dirs`: folders VST3/AU plugins may load from besides the
    platform's standard ones (`bridge.fx`).

    `data_dir` holds the job database `jobs.sqlite3` (default: `bridge.paths.jobs_db_path()`,
    in the user data folder); jobs that ended over `keep_days` ago, every result acknowledged,
    are removed from it at start (their files stay); `model_dir`/`device`/`finetune` go to the
    pipeline (a given `pipeline` is used instead: the relay's `RemotePipeline`). Prints one line
    `VampBridge OSC service listening on HOST:PORT` when ready (and calls `ready(server)`). The running job is left `interrupted` on the way out.
    """
    from bridge.fx import set_extra_plugin_folders
    from bridge.paths import jobs_db_path
    from bridge.pipeline import Pipeline
    from bridge.secret import SecretError

    if token == "" and not is_loopback(host):
        print(f"vampbridge serve: --no-token is allowed on loopback only, not on {host}",
              file=sys.stderr)
        return 2
    try:
        set_extra_plugin_folders(plugin_dirs)
        if token is None:
            from bridge.secret import ensure_secret
            token = ensure_secret()
    except (ValueError, SecretError) as e:
        print(f"vampbridge serve: {e}", file=sys.stderr)
        return 2
    store = JobStore(Path(data_dir) / "jobs.sqlite3" if data_dir else jobs_db_path())
    pipeline = pipeline or Pipeline(model_dir=model_dir, device=device, finetune=finetune,
                                    precision=precision)
    service = JobService(pipeline, store, keep_days=keep_days)
    stop = stop or threading.Event()
    server = BridgeServer(service, host=host, port=port, token=token)
    service.start()
    try:
        server.start()
    except OSError as e:
        service.close()
        store.close()
        print(f"vampbridge serve: cannot listen on {host}:{port}: {e}", file=sys.stderr)
        return 2
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    print(f"VampBridge OSC service listening on {host}:{server.port}"
          f" (jobs in {store.path})", flush=True)
    if ready is not None:
        ready(server)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        service.close()
        store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m bridge.osc.server`: the same as `vampbridge serve`."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bridge.osc.server", description=__doc__.split("\n")[0])
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="UDP port (0 = any free port)")
    add_security_options(p)
    p.add_argument("--plugin-dir", action="append", default=[], metavar="FOLDER",
                   help="also load VST3/AU plugins from FOLDER (repeatable)")
    p.add_argument("--model", default=None, help="model folder")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda or cpu")
    p.add_argument("--data-dir", default=None, help="where the job database lives")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)
    logging.basicConfig(level=a.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        token = token_option(a)
    except ValueError as e:
        p.error(str(e))
    return serve(a.host, a.port, token, a.model, a.device, a.data_dir, plugin_dirs=a.plugin_dir)


def add_security_options(parser) -> None:
    """`--token` and `--no-token` (shared by `vampbridge serve` and this module)."""
    parser.add_argument("--token", default=None,
                        help="a token of your choice instead of the per-user secret file")
    parser.add_argument("--no-token", action="store_true",
                        help="accept requests without the secret (loopback only): any local "
                             "user or process can then send requests")


def token_option(args) -> str | None:
    """The `token` for `serve` from parsed `add_security_options` arguments; ValueError for a
    combination that is refused."""
    if args.no_token and args.token:
        raise ValueError("--token and --no-token exclude each other")
    if args.no_token and not is_loopback(args.host):
        raise ValueError(f"--no-token is allowed on loopback only, not with --host {args.host}")
    if args.token is not None and not args.token.strip():
        raise ValueError("--token is empty; leave it out to use the per-user secret")
    return "" if args.no_token else args.token

if __name__ == "__main__":
    sys.exit(main())
