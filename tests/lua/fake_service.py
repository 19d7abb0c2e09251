"""A stand-in for `vampbridge serve`, speaking docs/osc.md over UDP with python-osc.

It exists so the ReaScripts can be tested before (and independently of) the real service. It
renders nothing: each variation is a short WAV of a sine tone plus a JSON "recipe", written to the
requested output folder, so the scripts and the Reaper test double see real files.

Like the real service (one worker), it runs one job at a time: a job sent while another runs is
``queued`` (``accepted`` with its queue position) and starts when the one before it is done.

Behaviour is chosen per test:
  * ``hold_after``: how many variations of a job are produced at once; the rest wait for
    ``release()`` (or a ``/test/release`` control message from the Lua scenario). ``None`` means
    all at once.
  * ``crash()`` / ``start()`` (or ``/test/crash``, ``/test/start``): the service socket closes and
    comes back on the same port, forgetting running jobs but keeping unacknowledged results and
    the requests of unfinished jobs (so ``resume`` works), as a restarted service would.
  * ``down``: not listening at all until started.
  * ``editor``: whether ``open`` is answered with ``opened`` or with ``error no_editor``.
  * ``fail_jobs``: every job fails (``error job_failed``) after it was accepted.
  * ``loading``: ``hello`` reports the device ``loading``, as a service still loading its models.

Renders are in SOURCE time, as the real service's: ``length_s`` seconds of audio at the requested
rate, whatever the playrate; one channel when the ``options`` ask for left, right or mono.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

PREFIX = "/vampbridge/"


def build(address: str, types: str, *values) -> bytes:
    """Encodes an OSC message with explicit type tags (python-osc guesses them otherwise)."""
    builder = OscMessageBuilder(address)
    values = list(values)
    for tag in types:
        if tag in "TFN":
            builder.add_arg({"T": True, "F": False, "N": None}[tag], tag)
        else:
            builder.add_arg(values.pop(0), tag)
    assert not values, f"{len(values)} values left over for {types!r}"
    return builder.build().dgram


def decode(data: bytes) -> list[OscMessage]:
    return [m.message for m in OscPacket(data).messages]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_wav(path: Path, duration_s: float, sample_rate: int, channels: int) -> None:
    frames = max(1, int(round(duration_s * sample_rate)))
    samples = bytearray()
    for n in range(frames):
        value = int(8000 * math.sin(2 * math.pi * 220 * n / sample_rate))
        samples += struct.pack("<h", value) * channels
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(bytes(samples))


@dataclass
class Job:
    job_id: str
    client: str
    reply_to: tuple[str, int]
    request: dict
    n_total: int
    produced: int = 0
    state: str = "running"
    results: dict = field(default_factory=dict)  # variation -> result args


class FakeService:
    def __init__(self, *, hold_after: int | None = None, editor: bool = False, down: bool = False,
                 token: str | None = None, resume: bool = True, lose_first_result: bool = False, fail_jobs: bool = False,
                 loading: bool = False, mask_presets: tuple[str, ...] = ("subtle", "balanced", "creative", "rhythm")):
        self.port = free_udp_port()
        self.hold_after = hold_after
        self.editor = editor
        if token is None:  # like the real service: the per-user secret, made on first start
            from bridge.secret import ensure_secret
            token = ensure_secret()
        self.token = token
        self.resume_supported = resume
        self.lose_first_result = lose_first_result  # a `result` datagram lost on the way
        self.fail_jobs = fail_jobs  # every job fails in the model (after `accepted`)
        self.loading = loading  # hello says device "loading" (models not loaded yet)
        self.mask_presets = list(mask_presets)  # the presets hello lists
        self.requests: list[tuple[str, list]] = []  # every request seen, in order
        self.dropped = 0
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        # "On disk": survives crash()/start().
        self.unacked: dict[tuple[str, int], tuple[str, list]] = {}  # (job, variation) -> (client, args)
        self.saved_jobs: dict[str, Job] = {}
        # In memory: lost on crash().
        self.jobs: dict[str, Job] = {}
        self.sock: socket.socket | None = None
        self.control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.control.bind(("127.0.0.1", 0))
        self.control_port = self.control.getsockname()[1]
        self.stopping = False
        self.threads = [threading.Thread(target=self._control_loop, daemon=True),
                        threading.Thread(target=self._progress_loop, daemon=True)]
        for t in self.threads:
            t.start()
        if not down:
            self.start()

    # Life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        with self.lock:
            if self.sock is not None:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", self.port))
            self.sock = sock
            self.jobs = {}
            self.starts = getattr(self, "starts", 0) + 1
            threading.Thread(target=self._serve_loop, args=(sock,), daemon=True).start()
            self.changed.notify_all()

    def crash(self) -> None:
        with self.lock:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            self.jobs = {}
            self.changed.notify_all()

    def close(self) -> None:
        self.stopping = True
        self.crash()
        self.control.close()

    def release(self) -> None:
        """Lets every held job produce its remaining variations and finish."""
        with self.lock:
            self.hold_after = None
            for job in list(self.jobs.values()):
                if job.state == "running":
                    self._produce(job, job.n_total)

    # Waiting from the test ------------------------------------------------------------------

    def wait_for(self, predicate, timeout_s: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake service: timed out waiting for {what}; saw {self.addresses()}")
                self.changed.wait(left)

    def addresses(self) -> list[str]:
        with self.lock:
            return [a for a, _ in self.requests]

    def requests_to(self, name: str) -> list[list]:
        with self.lock:
            return [args for a, args in self.requests if a == PREFIX + name]

    # Serving ----------------------------------------------------------------------------------

    def _send(self, to: tuple[str, int], name: str, types: str, *values) -> None:
        sock = self.sock
        if sock is not None:
            try:
                sock.sendto(build(PREFIX + name, types, *values), to)
            except OSError:
                pass

    def _serve_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                data, sender = sock.recvfrom(65535)
            except OSError:
                return  # closed by crash()
            for message in decode(data):
                with self.lock:
                    if self.sock is not sock:
                        return
                    self._handle(message, sender)
                    self.changed.notify_all()

    def _handle(self, message: OscMessage, sender) -> None:
        args = list(message.params)
        if len(args) < 3 or not isinstance(args[0], str) or not isinstance(args[1], int):
            self.dropped += 1
            return
        request_id, reply_port, token = args[:3]
        if token != self.token:
            self.dropped += 1
            return
        self.requests.append((message.address, args))
        to = (sender[0], reply_port)
        name = message.address[len(PREFIX):]
        rest = args[3:]
        if name == "hello":
            self._send(to, "hello", "sisssss", request_id, 1, "fake-0.1", "loading" if self.loading else "cpu",
                       '["tiny"]', '["vamp"]', json.dumps({"mask": self.mask_presets,
                                                           "fx": ["none", "glue", "space", "lofi", "wide"]}))
        elif name == "ping":
            self._send(to, "pong", "s", request_id)
        elif name == "vamp":
            (client, source_path, start_s, length_s, playrate, sample_rate, channels, item_guid, take_guid,
             mask, sampling, fx, n_variations, seed, output_dir) = rest[:15]
            priority, options_text = (list(rest[15:]) + ["", ""])[:2]
            try:
                options = parse_options(options_text)
            except ValueError as error:
                self._send(to, "error", "sss", request_id, "bad_argument", str(error))
                return
            if not Path(source_path).is_file():
                self._send(to, "error", "sss", request_id, "source_missing", f"no file {source_path}")
                return
            if options.get("channel", "all") != "all":
                channels = 1  # one channel played: a one-channel render
            request = dict(kind="vamp", source_path=source_path, start_s=start_s, length_s=length_s,
                           playrate=playrate, sample_rate=sample_rate, channels=channels, item_guid=item_guid,
                           take_guid=take_guid, mask=mask, fx=fx, seed=seed, output_dir=output_dir,
                           options=options, priority=priority)
            self._start_job(request_id, client, to, request, n_variations)
        elif name == "rerender":
            client, recipe_path, fx, seed, output_dir, item_guid, take_guid = rest[:7]
            recipe = json.loads(Path(recipe_path).read_text())
            if fx == "" and seed == -1 and Path(recipe_path).with_suffix(".wav").is_file():
                # As recorded: the service reuses the identical earlier render (same paths).
                self._start_job(request_id, client, to, dict(recipe, kind="reuse", recipe_path=recipe_path,
                                                              item_guid=item_guid, take_guid=take_guid), 1)
                return
            request = dict(recipe, kind="rerender", fx=fx or recipe["fx"], seed=seed if seed >= 0 else recipe["seed"],
                           output_dir=output_dir, item_guid=item_guid, take_guid=take_guid)
            self._start_job(request_id, client, to, request, 1)
        elif name == "status":
            (job_id,) = rest
            job = self.jobs.get(job_id)
            state = job.state if job else "interrupted"  # unfinished before a restart
            job = job or self.saved_jobs.get(job_id)
            if job is None:
                self._send(to, "error", "sss", request_id, "unknown_job", f"no job {job_id}")
            else:
                entry = dict(job_id=job_id, client=job.client, state=state, fraction=job.produced / job.n_total,
                             n_finished=job.produced, n_total=job.n_total, source_path=job.request.get("source_path", ""))
                self._send(to, "status", "ssi", request_id, json.dumps([entry]), self.dropped)
        elif name == "resume":
            (job_id,) = rest
            if job_id in self.jobs and self.jobs[job_id].state == "done":
                self._send(to, "error", "sss", request_id, "bad_argument", f"job {job_id} is done")
                return
            if job_id in self.jobs:  # queued or running: nothing changes but the route
                self.jobs[job_id].reply_to = to
                self._send(to, "accepted", "si", request_id, self._queue_position(self.jobs[job_id]))
                return
            saved = self.saved_jobs.get(job_id)
            if saved is None or not self.resume_supported:
                self._send(to, "error", "sss", request_id, "unknown_job", f"no job {job_id} to resume")
                return
            job = Job(job_id, saved.client, to, saved.request, saved.n_total, produced=saved.produced)
            job.state = "queued" if self._running() else "running"
            self.jobs[job_id] = job
            self._send(to, "accepted", "si", request_id, self._queue_position(job))  # the request's id
            if job.state == "running":
                self._produce(job, self._upto(job))
        elif name == "pending":
            (client,) = rest
            count = 0
            for (job_id, variation), (job_client, result) in sorted(self.unacked.items()):
                if client in ("", job_client):
                    self._send(to, "result", "sisssssi", *result)
                    count += 1
            self._send(to, "pending", "si", request_id, count)
        elif name == "ack":
            job_id, variation = rest
            self.unacked.pop((job_id, variation), None)
            self._send(to, "acked", "ssi", request_id, job_id, variation)
        elif name == "open":
            if self.editor:
                self._send(to, "opened", "s", request_id)
            else:
                self._send(to, "error", "sss", request_id, "no_editor",
                           "this service runs without an editor; start vampbridge gui")
        else:
            self._send(to, "error", "sss", request_id, "unknown_address", message.address)

    def _running(self) -> Job | None:
        return next((j for j in self.jobs.values() if j.state == "running"), None)

    def _queue_position(self, job: Job) -> int:
        queued = [j for j in self.jobs.values() if j.state == "queued"]
        return queued.index(job) + 1 if job in queued else 0

    def _upto(self, job: Job) -> int:
        return job.n_total if self.hold_after is None else max(self.hold_after, job.produced)

    def _start_job(self, job_id, client, to, request, n_total) -> None:
        job = Job(job_id, client, to, request, n_total)
        job.state = "queued" if self._running() else "running"
        self.jobs[job_id] = job
        self.saved_jobs[job_id] = job
        self._send(to, "accepted", "si", job_id, self._queue_position(job))
        if job.state == "running":
            self._begin(job)

    def _begin(self, job: Job) -> None:
        if self.fail_jobs:
            job.state = "failed"
            self.saved_jobs.pop(job.job_id, None)
            self._send(job.reply_to, "error", "sss", job.job_id, "job_failed", "the model ran out of memory")
            self._next_job()
            return
        job.state = "running"
        self._send(job.reply_to, "progress", "sfsi", job.job_id, 0.0, "encoding", -1)
        self._produce(job, self._upto(job))

    def _next_job(self) -> None:
        queued = next((j for j in self.jobs.values() if j.state == "queued"), None)
        if queued is not None and self._running() is None:
            self._begin(queued)

    def _produce(self, job: Job, upto: int) -> None:
        """Renders variations until `upto` exist; finishes the job when all do."""
        r = job.request
        while job.produced < min(upto, job.n_total):
            k = job.produced
            if r["kind"] == "reuse":
                recipe_path = Path(r["recipe_path"])
                result = [job.job_id, 0, str(recipe_path.with_suffix(".wav")), str(recipe_path), r["item_guid"],
                          r["take_guid"], f"vamp 1 {r.get('mask') or 'default'} s{r['seed']}", r["seed"]]
                job.results[0] = result
                self.unacked[(job.job_id, 0)] = (job.client, result)
                job.produced += 1
                self._send(job.reply_to, "result", "sisssssi", *result)
                continue
            seed = r["seed"] if r["seed"] >= 0 else 1000 + k
            out_dir = Path(r["output_dir"])
            out_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{job_id_stem(job.job_id)}_v{k}"
            output_path = out_dir / f"{stem}.wav"
            recipe_path = out_dir / f"{stem}.json"
            sample_rate = r["sample_rate"] or 44100
            channels = r["channels"] or 2
            # Like the real service: the region in SOURCE time (the playrate is the take's business).
            write_wav(output_path, r["length_s"], sample_rate, channels)
            recipe = {k2: v for k2, v in r.items() if k2 not in ("kind", "output_dir", "item_guid", "take_guid")}
            recipe["seed"] = seed
            recipe_path.write_text(json.dumps(recipe))
            preset = r.get("mask") or "default"
            take_name = f"vamp {k + 1} {preset} s{seed}"
            if r["kind"] == "rerender":
                take_name = f"vamp {k + 1} {preset} s{seed} {r['fx']}"
            result = [job.job_id, k, str(output_path), str(recipe_path), r["item_guid"], r["take_guid"], take_name, seed]
            job.results[k] = result
            self.unacked[(job.job_id, k)] = (job.client, result)
            job.produced += 1
            self.saved_jobs[job.job_id].produced = job.produced
            self._send(job.reply_to, "progress", "sfsi", job.job_id, job.produced / job.n_total, "decoding", k)
            if self.lose_first_result and k == 0:
                pass  # stored as unacknowledged, so `pending` still delivers it
            else:
                self._send(job.reply_to, "result", "sisssssi", *result)
        if job.produced == job.n_total and job.state == "running":
            job.state = "done"
            self.saved_jobs.pop(job.job_id, None)
            self._send(job.reply_to, "done", "siis", job.job_id, job.produced, 0, "done")
            self._next_job()

    def _progress_loop(self) -> None:
        # Like the real service: progress at least twice a second while a job runs.
        while not self.stopping:
            time.sleep(0.2)
            with self.lock:
                for job in list(self.jobs.values()):
                    if job.state in ("running", "queued"):
                        stage = "coarse" if job.state == "running" else "queued"
                        self._send(job.reply_to, "progress", "sfsi", job.job_id, job.produced / job.n_total, stage, -1)

    def _control_loop(self) -> None:
        while True:
            try:
                data, _ = self.control.recvfrom(65535)
            except OSError:
                return
            for message in decode(data):
                command = message.address
                if command == "/test/release":
                    self.release()
                elif command == "/test/crash":
                    self.crash()
                elif command == "/test/start":
                    self.start()


OPTION_KEYS = {"regen_start_s", "regen_length_s", "loop", "stereo", "channel"}


def parse_options(text: str) -> dict:
    """The `vamp` options argument as docs/osc.md fixes it; unknown keys are refused."""
    if text == "":
        return {}
    options = json.loads(text)
    if not isinstance(options, dict):
        raise ValueError("options must be a JSON object")
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}")
    if options.get("channel", "all") not in ("all", "left", "right", "mono"):
        raise ValueError(f"channel {options['channel']!r} is not all, left, right or mono")
    if ("regen_start_s" in options) != ("regen_length_s" in options):
        raise ValueError("regen_start_s and regen_length_s go together")
    return options


def job_id_stem(job_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in job_id)
