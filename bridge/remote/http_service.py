"""The job service over HTTP (aiohttp), for a REAPER laptop whose GPU is another machine.

    http = HttpService(service, root=data_dir / "remote", host="0.0.0.0", port=9080, token=t)
    http.start(); ...; http.stop()

`vampbridge serve --http HOST:PORT` runs it beside the OSC service, on the same `JobService` and
so the same SQLite store: a job submitted over either transport is one job, with one queue,
`status`, `pending` and `ack`. The API is in `docs/http.md`.

Security: with a token (required on any address other than loopback) every request must carry
`Authorization: Bearer <token>`, compared in constant time, before anything else is looked at.
Clients never name a path: regions are stored under their SHA-256 (checked against the bytes),
each job writes into a folder the service names, files are served only from that output store,
request fields that would read a file (`@/path` arguments, external plugins) are refused, bodies
have size limits and their content types are checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bridge.jobs import (DoneEvent, ErrorEvent, JobError, JobEvent, JobService, ProgressEvent,
                         ResultEvent, VariationRecord)
from bridge.jobs.queue import Priority
from bridge.jobs.requests import RerenderRequest
from bridge.jobs.store import ACTIVE_STATES, FAILED
from bridge.output_folder import check_output_dir
from bridge.remote.regions import DEFAULT_MAX_BYTES, RegionStore

log = logging.getLogger(__name__)

API = "/v1"
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,200}$")
MAX_JSON_BYTES = 1 * 2**20
WAV_CONTENT_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave")
KEEPALIVE_S = 1.0  # an SSE comment this often, so both sides notice a dead connection
_STATUS_OF_CODE = {"unknown_job": 404, "unknown_region": 404, "unknown_variation": 404,
                   "bad_token": 401, "too_large": 413, "bad_content_type": 415,
                   "job_exists": 409, "internal": 500}
#: File kinds a variation serves, with their content types.
FILE_KINDS = {"audio": "audio/wav", "recipe": "application/json", "tokens": "application/octet-stream"}


class HttpService:
    """Serves `docs/http.md` for a JobService from one asyncio loop in its own thread.

    `root` is the service's own store: `root/regions` (uploads) and `root/outputs/<job>` (what
    jobs write). `port` 0 picks a free port (see `.port` after `start()`).
    """

    def __init__(self, service: JobService, *, root: Path, host: str = "127.0.0.1",
                 port: int = 9080, token: str = "",
                 max_upload_bytes: int = DEFAULT_MAX_BYTES) -> None:
        from bridge.osc.server import is_loopback

        if not is_loopback(host) and not token:
            raise ValueError(f"serving HTTP on {host} (not loopback) requires a token: pass "
                             "--token and give the same token to the relay (--remote ... --token)")
        self.service = service
        self.host = host
        self.token = token
        self.regions = RegionStore(Path(root) / "regions", max_bytes=max_upload_bytes)
        # Jobs write here through the pipeline (OutputFolder), under the same folder rule.
        self.outputs = check_output_dir(Path(root).absolute() / "outputs")
        self._requested_port = port
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._watchers: dict[str, set[asyncio.Queue]] = {}
        self._unsubscribe = None
        self._closing = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "HttpService":
        """Bind and serve; raises OSError when the address cannot be used."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as e:  # reported to start()'s caller
                failure.append(e)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())  # type: ignore[union-attr]
            loop.close()

        self._thread = threading.Thread(target=run, name="vampbridge-http", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise failure[0]
        self._unsubscribe = self.service.subscribe(self._on_event)
        log.info("VampBridge HTTP service listening on %s:%d%s", self.host, self.port,
                 " (token required)" if self.token else "")
        return self

    @property
    def port(self) -> int:
        return self._port

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        loop = self._loop
        if loop is None or self._thread is None:
            return
        self._closing = True

        def end_streams() -> None:
            for queues in self._watchers.values():
                for q in queues:
                    q.put_nowait(None)
            loop.call_later(0.2, loop.stop)

        loop.call_soon_threadsafe(end_streams)
        self._thread.join(10.0)

    def __enter__(self) -> "HttpService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    async def _start_site(self) -> None:
        app = web.Application(middlewares=[self._errors, self._auth], client_max_size=MAX_JSON_BYTES)
        r = app.router
        r.add_get(f"{API}/hello", self._hello)
        r.add_route("HEAD", f"{API}/regions/{{sha256}}", self._has_region)
        r.add_put(f"{API}/regions/{{sha256}}", self._upload_region)
        r.add_post(f"{API}/jobs", self._submit)
        r.add_get(f"{API}/jobs", self._status_all)
        r.add_get(f"{API}/jobs/{{job_id}}", self._status)
        r.add_get(f"{API}/jobs/{{job_id}}/events", self._events)
        r.add_post(f"{API}/jobs/{{job_id}}/cancel", self._cancel)
        r.add_post(f"{API}/jobs/{{job_id}}/resume", self._resume)
        r.add_get(f"{API}/jobs/{{job_id}}/variations/{{index}}/{{kind}}", self._download)
        r.add_post(f"{API}/jobs/{{job_id}}/variations/{{index}}/ack", self._ack)
        r.add_get(f"{API}/pending", self._pending)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    # -- middlewares ------------------------------------------------------------------------

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.token:
            given = request.headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            ok = hmac.compare_digest(value.strip().encode(), self.token.encode())
            if scheme.lower() != "bearer" or not ok:
                raise JobError("bad_token", "missing or wrong token: send the service's token as "
                               "`Authorization: Bearer <token>`")
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status >= 400:
                return _error_response(_http_code(e.status), e.reason, e.status)
            raise
        except JobError as e:
            return _error_response(e.code, e.message)
        except ValueError as e:  # RequestError (has a code) and ProtocolError-like refusals
            code = getattr(e, "code", None)
            if code is None:
                log.exception("%s %s failed", request.method, request.path)
                return _error_response("internal", f"internal error ({e}); see the service log")
            return _error_response(code, str(e))
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:
            log.exception("%s %s failed", request.method, request.path)
            return _error_response("internal", f"internal error ({type(e).__name__}: {e}); "
                                   "see the service log")

    # -- handlers ---------------------------------------------------------------------------

    async def _hello(self, request: web.Request) -> web.Response:
        info = await _in_thread(self.service.info)
        return web.json_response({
            "protocol_version": 1, "engine_version": info.get("engine_version", ""),
            "device": info.get("device", ""), "models": list(info.get("models", [])),
            "presets": info.get("presets", {"mask": [], "fx": []}),
            "max_upload_bytes": self.regions.max_bytes})

    async def _has_region(self, request: web.Request) -> web.Response:
        exists = self.regions.has(request.match_info["sha256"])
        return web.Response(status=200 if exists else 404)

    async def _upload_region(self, request: web.Request) -> web.Response:
        sha256 = request.match_info["sha256"]
        _require_content_type(request, WAV_CONTENT_TYPES, "a region (audio/wav)")
        if self.regions.has(sha256):
            return web.json_response({"sha256": sha256, "stored": False})
        upload = self.regions.upload(sha256, declared_bytes=request.content_length)
        try:
            async for chunk in request.content.iter_chunked(1 << 20):
                upload.write(chunk)
        except BaseException:
            upload.abort()
            raise
        await _in_thread(upload.commit)
        log.info("region %s uploaded (%d bytes)", sha256[:12], upload.n_bytes)
        return web.json_response({"sha256": sha256, "stored": True}, status=201)

    async def _submit(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        client = body.get("client", "http")
        if not isinstance(client, str) or not client or len(client) > 200:
            raise JobError("bad_request", "client must be a non-empty string of at most 200 characters")
        job_id = body.get("job_id") or f"http-{int(time.time() * 1000)}-{secrets.token_hex(3)}"
        _check_job_id(job_id)
        priority = body.get("priority", "")
        if not isinstance(priority, str):
            raise JobError("bad_request", "priority must be \"interactive\", \"batch\" or \"\"")
        try:
            parsed_priority = Priority.parse(priority)
        except ValueError as e:
            raise JobError("bad_argument", str(e)) from None
        if self.service.store.get_job(job_id) is not None:
            raise JobError("job_exists", f"job id {job_id!r} is already used; follow it with "
                           f"GET {API}/jobs/{job_id}/events, or send a new id")
        kind = body.get("kind", "vamp")
        if kind == "vamp":
            job_request = self._vamp_request(body, job_id)
        elif kind == "rerender":
            job_request = self._rerender_request(body, job_id)
        else:
            raise JobError("bad_request", f"kind {kind!r} is not \"vamp\" or \"rerender\"")
        await _in_thread(self.service.submit, job_request, client, parsed_priority, job_id)
        position = self.service.queue_position(job_id) or 0
        return web.json_response({"job_id": job_id, "queue_position": position}, status=201)

    def _vamp_request(self, body: dict, job_id: str):
        from bridge.request import VampRequest

        fields = body.get("request")
        if not isinstance(fields, dict):
            raise JobError("bad_request", "a vamp job needs `request`: a JSON object of VampRequest "
                           "fields (docs/http.md)")
        for name in ("source_path", "output_dir"):
            if name in fields:
                raise JobError("bad_request", f"request field {name!r} is not accepted over HTTP: "
                               "this service never takes paths from clients; upload the region "
                               "and send its region_sha256")
        _refuse_file_references(fields)
        source = self.regions.path(body.get("region_sha256", ""))
        return VampRequest.from_dict({**fields, "source_path": str(source),
                                      "output_dir": str(self._job_folder(job_id))})

    def _rerender_request(self, body: dict, job_id: str) -> RerenderRequest:
        of_job, index = body.get("of_job"), body.get("variation")
        if not isinstance(of_job, str) or not isinstance(index, int) or isinstance(index, bool):
            raise JobError("bad_request", "a rerender job needs `of_job` (a job id) and "
                           "`variation` (an integer)")
        record = self._variation(of_job, index)
        fx = body.get("fx")
        _refuse_file_references({"fx": fx})
        seed = body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise JobError("bad_argument", f"seed must be an integer or null, got {seed!r}")
        return RerenderRequest(recipe_path=record.recipe_path, fx=fx, seed=seed,
                               output_dir=str(self._job_folder(job_id)),
                               item_guid=str(body.get("item_guid", "")),
                               take_guid=str(body.get("take_guid", "")))

    async def _status_all(self, request: web.Request) -> web.Response:
        jobs = await _in_thread(self.service.status)
        return web.json_response({"jobs": [s.to_dict() for s in jobs]})

    async def _status(self, request: web.Request) -> web.Response:
        job_id = _check_job_id(request.match_info["job_id"])
        (status,) = await _in_thread(self.service.status, job_id)
        job = self.service.job(job_id)
        return web.json_response({**status.to_dict(), "error_code": job.error_code,
                                  "error_message": job.error_message})

    async def _cancel(self, request: web.Request) -> web.Response:
        job_id = _check_job_id(request.match_info["job_id"])
        state = await _in_thread(self.service.cancel, job_id)
        return web.json_response({"job_id": job_id, "state": state})

    async def _resume(self, request: web.Request) -> web.Response:
        job_id = _check_job_id(request.match_info["job_id"])
        position = await _in_thread(self.service.resume, job_id)
        return web.json_response({"job_id": job_id, "queue_position": position})

    async def _pending(self, request: web.Request) -> web.Response:
        client = request.query.get("client", "")
        records = await _in_thread(self.service.pending, client or None)
        return web.json_response({"results": [_record_json(r) for r in records]})

    async def _ack(self, request: web.Request) -> web.Response:
        job_id = _check_job_id(request.match_info["job_id"])
        index = _index(request.match_info["index"])
        await _in_thread(self.service.ack, job_id, index)
        return web.json_response({"job_id": job_id, "variation": index, "acked": True})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        job_id = _check_job_id(request.match_info["job_id"])
        kind = request.match_info["kind"]
        if kind not in FILE_KINDS:
            raise JobError("unknown_variation", f"a variation has no {kind[:40]!r}; ask for "
                           + ", ".join(FILE_KINDS))
        record = self._variation(job_id, _index(request.match_info["index"]))
        if kind == "audio":
            path = Path(record.audio_path)
        elif kind == "recipe":
            path = Path(record.recipe_path)
        else:
            recipe = json.loads(Path(record.recipe_path).read_text())
            path = Path(record.recipe_path).parent / str(recipe.get("tokens", ""))
        path = self._served(path)
        return web.FileResponse(path, headers={"Content-Type": FILE_KINDS[kind]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events of one job: first its state and every finished variation, then
        what happens, until `done` (at once for a job that is not queued or running)."""
        job_id = _check_job_id(request.match_info["job_id"])
        job = self.service.job(job_id)  # unknown_job before the stream starts
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.setdefault(job_id, set()).add(queue)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache"})
        try:
            await response.prepare(request)
            # The state is read before the replay: a job that has ended has all its variations
            # in the replay; for one still running, later events are already queued.
            job = self.service.job(job_id)
            (status,) = self.service.status(job_id)
            await _send_event(response, "status", status.to_dict())
            for record in self.service.store.variations(job_id):
                await _send_event(response, "result", _record_json(record))
            if job.state not in ACTIVE_STATES:
                await _send_event(response, "done", _done_json(job.state, job.n_finished,
                                                               job.n_total))
                return response
            while not self._closing:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if event is None:
                    break
                name, data = event
                await _send_event(response, name, data)
                if name == "done":
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away; it reconnects and gets the state again
        finally:
            self._watchers.get(job_id, set()).discard(queue)
        return response

    # -- events from the job service ----------------------------------------------------------

    def _on_event(self, event: JobEvent) -> None:
        """In a service thread: hand the event to the loop, for the job's open streams."""
        loop = self._loop
        if loop is None or event.job_id not in self._watchers:
            return
        if isinstance(event, ProgressEvent):
            item = ("progress", {"fraction": event.fraction, "stage": event.stage,
                                 "variation": event.variation})
        elif isinstance(event, ResultEvent):
            item = ("result", _record_json(event.variation))
        elif isinstance(event, ErrorEvent):
            item = ("error", {"code": event.code, "message": event.message})
        elif isinstance(event, DoneEvent):
            item = ("done", {"state": event.state, "n_finished": event.n_finished,
                             "n_failed": event.n_failed})
        else:
            return

        def deliver() -> None:
            for q in self._watchers.get(event.job_id, ()):
                q.put_nowait(item)

        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # the loop has stopped
            pass

    # -- helpers ----------------------------------------------------------------------------

    def _job_folder(self, job_id: str) -> Path:
        """Where a job writes: named by the service (a hash of the id), never by the client."""
        return self.outputs / hashlib.sha256(job_id.encode()).hexdigest()[:24]

    def _variation(self, job_id: str, index: int) -> VariationRecord:
        self.service.job(job_id)  # unknown_job
        record = self.service.store.variation(job_id, index)
        if record is None:
            raise JobError("unknown_variation", f"variation {index} of job {job_id!r} is not "
                           "finished (or does not exist)")
        return record

    def _served(self, path: Path) -> Path:
        """`path`, if it is a file inside the output store; anything else is not served."""
        resolved = path.resolve()
        if not resolved.is_relative_to(self.outputs) or not resolved.is_file():
            raise JobError("unknown_variation", "that file is not in this service's output store")
        return resolved


# -- request checks -------------------------------------------------------------------------

async def _in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _require_content_type(request: web.Request, allowed: tuple[str, ...], what: str) -> None:
    if request.content_type.lower() not in allowed:
        raise JobError("bad_content_type", f"{what} must be sent with Content-Type "
                       f"{allowed[0]}, not {request.content_type[:60]!r}")


async def _json_body(request: web.Request) -> dict:
    _require_content_type(request, ("application/json",), "a job")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise JobError("too_large", f"a job description is at most {MAX_JSON_BYTES} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise JobError("too_large", f"a job description is at most {MAX_JSON_BYTES} bytes") from None
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise JobError("bad_request", f"the body is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(body, dict):
        raise JobError("bad_request", "the body must be a JSON object")
    return body


def _check_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise JobError("bad_request", f"job id {str(job_id)[:60]!r} must be 1..200 characters of "
                       "letters, digits and . _ : @ -")
    return job_id


def _index(text: str) -> int:
    if not text.isdigit() or len(text) > 3:
        raise JobError("bad_request", f"variation {text[:20]!r} must be a small whole number")
    return int(text)


def _refuse_file_references(value: Any, where: str = "request") -> None:
    """Refuse what would make the service read a file a client names: `@/path` arguments and
    external plugins (`{"plugin": "vst3", "path": ...}`)."""
    if isinstance(value, str):
        if value.strip().startswith("@"):
            raise JobError("bad_request", f"{where}: `@file` arguments are not accepted over HTTP "
                           "(the service never reads a client's path); send the JSON itself")
    elif isinstance(value, dict):
        if isinstance(value.get("plugin"), str) and value["plugin"].lower() in ("vst3", "audiounit", "au"):
            raise JobError("bad_fx", f"{where}: external plugins are not accepted over HTTP (they "
                           "name a file on the service's machine); use the built-in effects")
        for key, item in value.items():
            _refuse_file_references(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _refuse_file_references(item, f"{where}[{i}]")


# -- responses ------------------------------------------------------------------------------

def _record_json(r: VariationRecord) -> dict:
    base = f"{API}/jobs/{r.job_id}/variations/{r.index}"
    return {"job_id": r.job_id, "variation": r.index, "seed": r.seed, "take_name": r.take_name,
            "item_guid": r.item_guid, "take_guid": r.take_guid, "acked": r.acked,
            "audio": f"{base}/audio", "recipe": f"{base}/recipe", "tokens": f"{base}/tokens"}


def _done_json(state: str, n_finished: int, n_total: int) -> dict:
    return {"state": state, "n_finished": n_finished,
            "n_failed": n_total - n_finished if state == FAILED else 0}


async def _send_event(response: web.StreamResponse, name: str, data: dict) -> None:
    await response.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())


def _error_response(code: str, message: str, status: int | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": " ".join(str(message).split())[:1000]}},
                             status=status or _STATUS_OF_CODE.get(code, 400))


def _http_code(status: int) -> str:
    return {404: "unknown_address", 405: "unknown_address", 413: "too_large"}.get(status, "bad_request")


