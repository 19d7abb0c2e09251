"""`vampbridge serve --http HOST:PORT` and `vampbridge serve --remote URL`: how they are started.

Both run the usual OSC service (`bridge.osc.server.serve`), so REAPER and the companion see no
difference: `--http` adds the HTTP front end on the same job service and store; `--remote` puts
a `RemotePipeline` where the model would be.
"""

from __future__ import annotations

import socket
import sys
import urllib.parse
from pathlib import Path

DEFAULT_HTTP_PORT = 9080


def parse_host_port(text: str, default_port: int = DEFAULT_HTTP_PORT) -> tuple[str, int]:
    """`HOST:PORT`, `HOST` or `:PORT` (`[::1]:9080` for IPv6); ValueError naming the problem."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError(f"--http {text!r}: the port must be a number, as in 0.0.0.0:9080") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--http {text!r}: port {port} is outside 0..65535")
    return host or "127.0.0.1", port


def loopback_secret() -> str:
    """The per-user secret (common to every local client), or "" before any service made one."""
    from bridge.secret import read_secret

    return read_secret()


def serve_with_http(args) -> int:
    """The OSC service plus the HTTP service on the same JobService (and so the same store)."""
    from bridge.osc.server import is_loopback, serve, token_option
    from bridge.remote.http_service import HttpService

    host, port = parse_host_port(args.http)
    token = args.token or ""
    osc_token = token_option(args)  # the OSC side keeps the per-user secret unless told otherwise
    if not token and not is_loopback(host):
        print(f"vampbridge serve: --http {host} is not loopback: --token is required "
              "(give the same token to the relay)", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir) if args.data_dir else _data_dir()
    started: list = []

    def ready(server) -> None:
        # Read now: the OSC service creates the per-user secret on its first start.
        http_token = token or ("" if getattr(args, "no_token", False) else loopback_secret())
        http = HttpService(server.service, root=data_dir / "remote", host=host, port=port,
                           token=http_token, max_upload_bytes=int(args.max_upload_mb * 2**20))
        http.start()
        started.append(http)
        print(f"VampBridge HTTP service listening on {host}:{http.port}"
              + (" (token required)" if http_token else ""), flush=True)

    try:
        return serve(host=args.host, port=args.port, token=osc_token, model_dir=args.model,
                     device=args.device, data_dir=args.data_dir, keep_days=args.keep_days,
                     finetune=args.finetune, plugin_dirs=args.plugin_dir, ready=ready) or 0
    finally:
        for http in started:
            http.stop()


def serve_relay(args) -> int:
    """The local OSC service for REAPER, with every job run by the remote HTTP service."""
    from bridge.osc.server import is_loopback, serve
    from bridge.remote.relay import RemotePipeline

    data_dir = Path(args.data_dir) if args.data_dir else _data_dir()
    name = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-.")[:40] or "laptop"
    token = args.token or ""
    if not token and is_loopback(urllib.parse.urlsplit(args.remote).hostname or ""):
        token = loopback_secret()  # a service of this user on this machine
    pipeline = RemotePipeline(args.remote, token=token, cache_dir=data_dir / "relay",
                              client_name=f"relay-{name}")
    # --token is the remote's; REAPER talks to this local service as to any other, with the
    # per-user secret (or none with --no-token, loopback only).
    osc_token = "" if args.no_token else None
    if args.no_token and not is_loopback(args.host):
        raise ValueError(f"--no-token is allowed on loopback only, not with --host {args.host}")
    return serve(host=args.host, port=args.port, token=osc_token, data_dir=args.data_dir,
                 keep_days=args.keep_days, pipeline=pipeline) or 0


def _data_dir() -> Path:
    from bridge.paths import data_dir

    return data_dir()
