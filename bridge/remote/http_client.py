"""A small blocking client of the HTTP job service (`docs/http.md`): the relay, tests, benchmarks.

    remote = RemoteClient("http://gpu-box:9080", token="...")
    if not remote.has_region(sha):
        remote.upload_region(sha, "/path/region.wav")
    remote.submit({"client": "relay", "region_sha256": sha, "request": {...}})
    for name, data in remote.events(job_id): ...

Failures are of two kinds: `RemoteError` (the service answered with an error: its `code` and
message) and `RemoteUnavailable` (no answer: refused, reset, timed out; worth retrying).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse
from typing import Iterator

from bridge.atomic import atomic_file

#: Seconds without a byte (the service sends a keepalive every second) before a stream is dead.
STREAM_TIMEOUT_S = 5.0


class RemoteError(Exception):
    """The remote service refused a request; `code` is a stable error code (docs/http.md)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class RemoteUnavailable(Exception):
    """The remote service could not be reached or the connection broke."""


class RemoteClient:
    def __init__(self, url: str, *, token: str = "", timeout_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"remote URL {url!r} must look like http://HOST:PORT")
        self.url = f"{parts.scheme}://{parts.netloc}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self.token = token
        self.timeout_s = timeout_s

    # -- the API ----------------------------------------------------------------------------

    def hello(self) -> dict:
        return self._json("GET", "/v1/hello")

    def has_region(self, sha256: str) -> bool:
        status, _ = self._request("HEAD", f"/v1/regions/{sha256}", ok=(200, 404))
        return status == 200

    def upload_region(self, sha256: str, path: str | os.PathLike) -> bool:
        """PUT the WAV at `path` as region `sha256`; True if the service stored it now."""
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            _, body = self._request("PUT", f"/v1/regions/{sha256}", body=f,
                                    headers={"Content-Type": "audio/wav",
                                             "Content-Length": str(size)})
        return bool(json.loads(body).get("stored"))

    def submit(self, job: dict) -> dict:
        return self._json("POST", "/v1/jobs", job)

    def status(self, job_id: str) -> dict:
        return self._json("GET", f"/v1/jobs/{_quote(job_id)}")

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", f"/v1/jobs/{_quote(job_id)}/cancel", {})

    def resume(self, job_id: str) -> dict:
        return self._json("POST", f"/v1/jobs/{_quote(job_id)}/resume", {})

    def pending(self, client: str = "") -> list[dict]:
        query = urllib.parse.urlencode({"client": client})
        return self._json("GET", f"/v1/pending?{query}")["results"]

    def ack(self, job_id: str, variation: int) -> None:
        self._json("POST", f"/v1/jobs/{_quote(job_id)}/variations/{int(variation)}/ack", {})

    def download(self, job_id: str, variation: int, kind: str, dest: str | os.PathLike) -> int:
        """Write a variation's `audio`, `recipe` or `tokens` to `dest`, all or nothing; bytes.
        (The relay writes outputs with `download_into`, into files it publishes exclusively.)"""
        with atomic_file(dest, "wb") as f:
            return self.download_into(job_id, variation, kind, f)

    def download_into(self, job_id: str, variation: int, kind: str, f) -> int:
        """Write a variation's `audio`, `recipe` or `tokens` into the binary file `f` from its
        current position; returns the bytes written. RemoteUnavailable when the download breaks
        or stops short (what was written then is incomplete: start again from the start)."""
        conn = self._connection(self.timeout_s)
        try:
            response = self._send(conn, "GET", f"/v1/jobs/{_quote(job_id)}/variations/"
                                  f"{int(variation)}/{kind}")
            if response.status != 200:
                _raise_for(response.status, response.read())
            n = 0
            while chunk := response.read(1 << 20):
                f.write(chunk)
                n += len(chunk)
            expected = response.getheader("Content-Length")
            if expected is not None and int(expected) != n:
                raise RemoteUnavailable(f"download of {kind} {job_id}/{variation} stopped after "
                                        f"{n} of {expected} bytes")
            return n
        except (OSError, http.client.HTTPException) as e:
            raise RemoteUnavailable(f"{self.url}: {e}") from None
        finally:
            conn.close()

    def events(self, job_id: str) -> Iterator[tuple[str, dict | None]]:
        """The job's server-sent events as (name, data); ("keepalive", None) for each keepalive.

        Ends after `done`; raises RemoteUnavailable when the stream breaks or goes silent."""
        conn = self._connection(STREAM_TIMEOUT_S)
        try:
            response = self._send(conn, "GET", f"/v1/jobs/{_quote(job_id)}/events")
            if response.status != 200:
                _raise_for(response.status, response.read())
            name, data = "message", []
            while True:
                line = response.readline()
                if not line:
                    raise RemoteUnavailable(f"{self.url}: the event stream of {job_id} ended early")
                text = line.decode("utf-8").rstrip("\r\n")
                if text.startswith(":"):
                    yield "keepalive", None
                elif text.startswith("event:"):
                    name = text[6:].strip()
                elif text.startswith("data:"):
                    data.append(text[5:].strip())
                elif text == "" and data:
                    yield name, json.loads("\n".join(data))
                    if name == "done":
                        return
                    name, data = "message", []
        except (OSError, http.client.HTTPException, ValueError) as e:
            raise RemoteUnavailable(f"{self.url}: {e}") from None
        finally:
            conn.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=timeout_s)

    def _send(self, conn, method: str, path: str, body=None, headers=None) -> http.client.HTTPResponse:
        headers = dict(headers or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn.request(method, path, body=body, headers=headers)
        return conn.getresponse()

    def _request(self, method: str, path: str, *, body=None, headers=None,
                 ok: tuple[int, ...] = (200, 201)) -> tuple[int, bytes]:
        conn = self._connection(self.timeout_s)
        try:
            response = self._send(conn, method, path, body, headers)
            data = response.read()
        except (OSError, socket.timeout, http.client.HTTPException) as e:
            raise RemoteUnavailable(f"{self.url}: {e}") from None
        finally:
            conn.close()
        if response.status not in ok:
            _raise_for(response.status, data)
        return response.status, data

    def _json(self, method: str, path: str, payload: dict | None = None) -> dict:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        _, data = self._request(method, path, body=body, headers=headers)
        return json.loads(data)


def _quote(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _raise_for(status: int, data: bytes) -> None:
    try:
        error = json.loads(data)["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        if status in (502, 503, 504):  # a proxy or tunnel in between, without the service
            raise RemoteUnavailable(f"HTTP {status} from the way to the remote service") from None
        code, message = "internal", f"HTTP {status}: {data[:200]!r}"
    raise RemoteError(code, message, status)
