"""The job service: a queue in front of one worker thread that owns the pipeline (and the GPU).

Front ends (the OSC server, the companion's GUI, the CLI) call `JobService` with plain request
objects and subscribe to its events; it never sees OSC types.

    service = JobService(Pipeline(model_dir, device), JobStore(data_dir() / "bridge.sqlite3"))
    service.start()
    service.subscribe(print)
    job_id = service.submit(VampRequest(source_path="/x/loop.wav", n_variations=3), client="gui")

Guarantees:
- a job is stored (request and seed included) before `submit` returns, and each variation is
  recorded before its ResultEvent, so a crash loses neither; after a restart the dead process's
  jobs are `interrupted` and `resume` finishes the missing variations with the same seeds;
- interactive jobs run before batch jobs (`Priority`), each class first come first served;
- `cancel` of a running job takes effect at the pipeline's next sampling step;
- while a job runs, ProgressEvents come at most every `progress_interval_s` and at least every
  `heartbeat_s` seconds (a heartbeat repeats the last progress when the pipeline is silent).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bridge.jobs.errors import JobError
from bridge.jobs.events import DoneEvent, ErrorEvent, JobEvent, ProgressEvent, ResultEvent
from bridge.jobs.outputs import check_output_dir
from bridge.jobs.queue import JobQueue, Priority
from bridge.jobs.requests import RerenderRequest
from bridge.jobs.store import (ACTIVE_STATES, CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED,
                               RUNNING, JobRecord, JobStore, VariationRecord)

log = logging.getLogger(__name__)

Listener = Callable[[JobEvent], None]

#: Seeds travel as OSC int32: a job's seeds `seed .. seed + n - 1` must stay below 2**31.
MAX_SEED = 2**31 - 1
MAX_VARIATIONS_SPAN = 64  # picked seeds leave room for this many variations


@dataclass(frozen=True)
class JobStatus:
    """What `status` reports about one job. `fraction` 0..1 over the whole job."""

    job_id: str
    client: str
    state: str
    fraction: float
    n_finished: int
    n_total: int
    source_path: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class ProgressTracker:
    """Turns the pipeline's frequent progress calls into throttled, monotonic ProgressEvents.

    The pipeline reports the fraction of *its run* (only the variations still to do); the tracker
    reports the fraction of the whole job, counting variations finished before a resume.
    """

    def __init__(self, job: JobRecord, n_todo: int, emit: Listener, *,
                 min_interval_s: float, heartbeat_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id, self.client = job.job_id, job.client
        self._n_total = max(1, job.n_total)
        self._n_before = job.n_total - n_todo
        self._n_todo = n_todo
        self._emit = emit
        self._min_interval_s = min_interval_s
        self._heartbeat_s = heartbeat_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_emit_s = float("-inf")
        self.fraction = self._n_before / self._n_total
        self.stage = "loading"
        self.variation = -1

    def update(self, run_fraction: float, stage: str, variation: int, *, force: bool = False) -> None:
        """Record the pipeline's progress; emit it if the last event is old enough (or `force`)."""
        run_fraction = min(1.0, max(0.0, float(run_fraction))) if run_fraction == run_fraction else 0.0
        job_fraction = (self._n_before + run_fraction * self._n_todo) / self._n_total
        with self._lock:
            self.fraction = max(self.fraction, min(1.0, job_fraction))
            self.stage, self.variation = stage, int(variation)
            now = self._clock()
            if force or now - self._last_emit_s >= self._min_interval_s:
                self._send(now)

    def heartbeat(self) -> None:
        """Repeat the last progress if nothing was emitted for `heartbeat_s` seconds."""
        with self._lock:
            now = self._clock()
            if now - self._last_emit_s >= self._heartbeat_s:
                self._send(now)

    def _send(self, now: float) -> None:
        self._last_emit_s = now
        self._emit(ProgressEvent(self.job_id, self.client, self.fraction, self.stage,
                                 self.variation))


@dataclass
class _Running:
    job_id: str
    tracker: ProgressTracker


class JobService:
    """Owns the queue, the worker thread and the job store. Thread-safe; see the module docstring.

    Events are never emitted while the service's lock is held, so listeners may call back in.

    `pipeline` is a `bridge.pipeline.Pipeline` (or anything with the same `run`, `rerender` and
    `info`); only the worker thread calls `run`/`rerender`. `default_output_dir` is where jobs
    without an output folder write (default: `bridge.paths.default_render_dir()`).
    `request_types` maps a job kind (`vamp`, `rerender`) to the class whose `from_dict` rebuilds
    a stored request (default: `VampRequest`, `RerenderRequest`). With `preload`, the worker loads
    the models as soon as it starts (through `pipeline.info()`), so the first job does not wait.
    At start, jobs that ended over `keep_days` ago with every result acknowledged are removed
    from the store (not their files); None keeps everything.
    """

    def __init__(self, pipeline, store: JobStore, *, default_output_dir: Path | None = None,
                 progress_interval_s: float = 0.1, heartbeat_s: float = 0.35,
                 request_types: dict[str, type] | None = None, preload: bool = True,
                 keep_days: float | None = 30.0) -> None:
        self.pipeline = pipeline
        self._request_types = request_types
        self._preload = preload
        self._keep_days = keep_days
        self._info: dict | None = None
        self._load_error: str | None = None  # why the models could not be loaded, one line
        self.store = store
        self._default_output_dir = default_output_dir
        self._progress_interval_s = progress_interval_s
        self._heartbeat_s = heartbeat_s
        self._queue = JobQueue()
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._cancel_requested: set[str] = set()
        self._running: _Running | None = None
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.recovered: list[str] = []

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "JobService":
        """Mark jobs a dead process left behind `interrupted`, then start the worker threads."""
        self.recovered = self.store.recover()
        if self.recovered:
            log.info("%d job(s) of a previous run were interrupted and can be resumed: %s",
                     len(self.recovered), ", ".join(self.recovered))
        if self._keep_days is not None:
            n = self.store.prune(self._keep_days * 86400.0)
            if n:
                log.info("forgot %d finished job(s) older than %g days (their files stay)", n, self._keep_days)
        for name, target in (("vampbridge-worker", self._work),
                             ("vampbridge-heartbeat", self._beat)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop: the running job is stopped at its next step and left `interrupted` (resumable);
        queued jobs stay queued in the store and become `interrupted` at the next start."""
        self._closing.set()
        self._queue.close()
        for t in self._threads:
            t.join(timeout_s)
        self._threads.clear()

    def __enter__(self) -> "JobService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- events -----------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` for every event from now on; returns a function to unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return unsubscribe

    def _emit(self, event: JobEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the worker
                log.exception("event listener %r failed on %r", listener, event)

    # -- requests ---------------------------------------------------------------------------

    def submit(self, request, client: str, priority: Priority | None = None,
               job_id: str | None = None) -> str:
        """Queue a `VampRequest` or `RerenderRequest` for `client`; returns the job id.

        Validates the request (raises `bridge.request.RequestError`) and its output folder
        (raises JobError `bad_output_dir`); picks and stores the seed when the request has none.
        `priority` None: interactive for clients named `reaper...`/`gui...`, batch otherwise.
        `job_id` None: a new unique id; an id already used raises JobError `bad_request`.
        """
        request.validate()
        n_total = int(request.n_variations)
        changes: dict = {}
        if isinstance(request, RerenderRequest):
            kind = "rerender"
            if request.output_dir:  # else beside the recipe, in a folder the service wrote
                changes["output_dir"] = str(check_output_dir(request.output_dir,
                                                             self._default_render_dir()))
        else:
            changes["output_dir"] = str(check_output_dir(request.output_dir,
                                                         self._default_render_dir()))
            kind = "vamp"
            seed = request.seed
            if seed is None:
                seed = random.SystemRandom().randrange(0, MAX_SEED - MAX_VARIATIONS_SPAN)
            elif not 0 <= seed <= MAX_SEED - (n_total - 1):
                raise JobError("bad_argument", f"seed {seed} must be between 0 and "
                               f"{MAX_SEED - (n_total - 1)} (or unset to pick one)")
            changes["seed"] = int(seed)
        request = dataclasses.replace(request, **changes)
        if priority is None:
            priority = Priority.for_client(client)
        job_id = job_id or _new_job_id(client)
        with self._lock:
            try:
                self.store.add_job(job_id=job_id, client=client, kind=kind,
                                   request=request.to_dict(), priority=int(priority),
                                   n_total=n_total, source_path=str(request.source_path),
                                   item_guid=request.item_guid, take_guid=request.take_guid)
            except KeyError:
                old = self.store.get_job(job_id)
                raise JobError("bad_request",
                               f"job id {job_id!r} is already used (job of client "
                               f"{old.client if old else '?'!r}, state {old.state if old else '?'}); "
                               "send a new id, or `status`/`pending` to follow that job") from None
            self._queue.put(job_id, priority)
        log.info("job %s queued for %s: %s, %d variation(s)", job_id, client, kind, n_total)
        return job_id

    def queue_position(self, job_id: str) -> int | None:
        """0 if the job runs now, k if k jobs run before it, None if it is neither queued nor running."""
        return self._queue.position(job_id)

    def cancel(self, job_id: str) -> str:
        """Cancel a queued, running or interrupted job; returns its state afterwards (`cancelled`).

        A running job stops at the pipeline's next sampling step; its finished variations stay
        (and stay pending until acknowledged). Raises JobError `unknown_job`, or `bad_argument`
        for a job that already finished.
        """
        with self._lock:
            job = self._job(job_id)
            if job.state == CANCELLED:
                return CANCELLED
            if job.state in (DONE, FAILED):
                raise JobError("bad_argument",
                               f"job {job_id!r} already finished ({job.state}); nothing to cancel")
            if self._queue.remove(job_id) or job.state == INTERRUPTED:
                self.store.set_state(job_id, CANCELLED)
                done = DoneEvent(job_id, job.client, CANCELLED, job.n_finished, 0)
            else:  # running, or just taken by the worker: it sees the flag within one step
                self._cancel_requested.add(job_id)
                done = None
        if done is not None:
            log.info("job %s cancelled before it ran", job_id)
            self._emit(done)
        return CANCELLED

    def resume(self, job_id: str) -> int:
        """Queue an interrupted, cancelled or failed job again for its missing variations.

        The variations keep their seeds (seed + index), so they come out as they would have.
        Resuming a queued or running job changes nothing. Returns the queue position (0 = runs
        now). Raises JobError `unknown_job`, or `bad_argument` for a job that is done.
        """
        with self._lock:
            job = self._job(job_id)
            if job.state not in ACTIVE_STATES:
                if job.state == DONE:
                    raise JobError("bad_argument",
                                   f"job {job_id!r} is done ({job.n_finished} of {job.n_total} "
                                   "variations); nothing to resume")
                self._cancel_requested.discard(job_id)
                self.store.set_state(job_id, QUEUED)
                self._queue.put(job_id, job.priority)
                log.info("job %s resumed: %d of %d variations to do", job_id,
                         job.n_total - job.n_finished, job.n_total)
            position = self.queue_position(job_id)
        return 0 if position is None else position

    def status(self, job_id: str | None = None, *, limit: int = 200) -> list[JobStatus]:
        """One job's status, or the newest `limit` jobs (newest first) when `job_id` is None."""
        with self._lock:
            jobs = [self._job(job_id)] if job_id else self.store.jobs(limit=limit)
            running = self._running
        out = []
        for j in jobs:
            if running is not None and running.job_id == j.job_id:
                fraction = running.tracker.fraction
            elif j.state == DONE:
                fraction = 1.0
            else:
                fraction = j.n_finished / max(1, j.n_total)
            out.append(JobStatus(j.job_id, j.client, j.state, round(fraction, 4), j.n_finished,
                                 j.n_total, j.source_path))
        return out

    def job(self, job_id: str) -> JobRecord:
        """The stored job; raises JobError `unknown_job`."""
        return self._job(job_id)

    def pending(self, client: str | None = None) -> list[VariationRecord]:
        """Finished variations `client` has not acknowledged (None or "": of every client).

        The caller is expected to (re)send them; each call counts as one more send.
        """
        records = self.store.pending(client or None)
        if records:
            self.store.mark_sent(records)
        return records

    def ack(self, job_id: str, variation: int) -> None:
        """The client has the variation: stop reporting it in `pending`. Idempotent.

        Raises JobError `unknown_job`, or `bad_argument` if that variation is not finished.
        """
        self._job(job_id)
        if not self.store.ack(job_id, int(variation)):
            raise JobError("bad_argument",
                           f"variation {variation} of job {job_id!r} is not finished; "
                           "only acknowledge variations you received a `result` for")

    def info(self) -> dict:
        """Engine version, device, models and presets, without waiting for the models to load.

        Until the worker has loaded the models, `device` is `"loading"` and `models` is empty;
        if loading failed, `device` is `"failed"` and `load_error` says why (it is "" otherwise).
        """
        if self._info is not None:
            return self._info
        load_error = self._load_error
        info = {"engine_version": "", "device": "failed" if load_error else "loading",
                "models": [], "presets": {"mask": [], "fx": []}, "load_error": load_error or ""}
        try:
            from bridge import __version__
            from bridge.engine.prompts import PRESETS
            from bridge.fx import fx_presets
            info.update(engine_version=__version__,
                        presets={"mask": sorted(PRESETS), "fx": sorted(fx_presets())})
        except Exception as e:  # presets are a convenience; hello must still answer
            log.warning("presets unavailable: %s", e)
        return info

    def _load_info(self) -> None:
        """In the worker thread (the pipeline's owner): load the models, remember their info,
        or why they could not be loaded (`info()`'s `load_error`; each job tries again)."""
        try:
            info = dict(self.pipeline.info())
        except Exception as e:
            self._load_error = " ".join(f"{type(e).__name__}: {e}".split())[:500]
            log.error("could not load the models: %s; jobs will fail until this is fixed",
                      self._load_error)
            return
        info.setdefault("load_error", "")
        self._info, self._load_error = info, None

    # -- the worker -------------------------------------------------------------------------

    def _work(self) -> None:
        if self._preload:
            self._load_info()
        while not self._closing.is_set():
            job_id = self._queue.get(timeout_s=0.5)
            if job_id is None:
                continue
            try:
                if not self._closing.is_set():
                    self._run_job(job_id)
            except Exception:  # the store failed: log, keep serving other jobs
                log.exception("job %s: unexpected failure in the worker", job_id)
            finally:
                self._queue.task_done()
            if self._info is None:  # the job loaded the models; remember what they are
                self._load_info()

    def _beat(self) -> None:
        while not self._closing.wait(min(0.05, self._heartbeat_s / 4)):
            running = self._running
            if running is not None:
                running.tracker.heartbeat()

    def _run_job(self, job_id: str) -> None:
        with self._lock:
            job = self.store.get_job(job_id)
            if job is None or job.state != QUEUED:
                return
            cancelled_early = job_id in self._cancel_requested  # between get() and here
            if cancelled_early:
                self._cancel_requested.discard(job_id)
                self.store.set_state(job_id, CANCELLED)
        if cancelled_early:
            self._emit(DoneEvent(job_id, job.client, CANCELLED, job.n_finished, 0))
            return
        with self._lock:
            finished = self.store.finished_indices(job_id)
            todo = [k for k in range(job.n_total) if k not in finished]
            tracker = ProgressTracker(job, len(todo), self._emit,
                                      min_interval_s=self._progress_interval_s,
                                      heartbeat_s=self._heartbeat_s)
            self._running = _Running(job_id, tracker)
            self.store.set_state(job_id, RUNNING)
        log.info("job %s running: variations %s", job_id, todo)
        tracker.update(0.0, "loading", -1, force=True)
        state, code, message = self._execute(job, todo, tracker)
        with self._lock:
            self._running = None
            self._cancel_requested.discard(job_id)
            n_finished = len(self.store.finished_indices(job_id))
            if state == DONE and n_finished < job.n_total:
                state, code = FAILED, "engine_error"
                message = (f"the engine finished only {n_finished} of {job.n_total} variations; "
                           "try `resume`")
            self.store.set_state(job_id, state, error_code=code, error_message=message)
        log.info("job %s %s (%d of %d variations)%s", job_id, state, n_finished, job.n_total,
                 f": {message}" if message else "")
        if state == FAILED:
            self._emit(ErrorEvent(job_id, job.client, code or "internal", message or state))
        n_failed = job.n_total - n_finished if state == FAILED else 0
        self._emit(DoneEvent(job_id, job.client, state, n_finished, n_failed))

    def _execute(self, job: JobRecord, todo: list[int],
                 tracker: ProgressTracker) -> tuple[str, str | None, str | None]:
        """Run the pipeline for `todo`; returns (state, error code, error message)."""
        from bridge.pipeline import Cancelled
        from bridge.request import RequestError

        def on_progress(p) -> None:
            tracker.update(p.fraction, p.stage, p.variation)

        def on_result(r) -> None:
            record = self.store.add_variation(job.job_id, int(r.index), seed=int(r.seed),
                                              audio_path=str(r.audio_path),
                                              recipe_path=str(r.recipe_path),
                                              take_name=str(r.take_name))
            self._emit(ResultEvent(job.job_id, job.client, record))

        def should_cancel() -> bool:
            return job.job_id in self._cancel_requested or self._closing.is_set()

        try:
            if not todo:
                return DONE, None, None
            if self._info is None and self._preload:
                self._load_info()  # tried again for every job: the user may have fixed the files
                if self._load_error:
                    return FAILED, "model_load_failed", (
                        f"the models could not be loaded ({self._load_error}); fix or reinstall "
                        "the model set (`vampbridge models verify`), then `resume` this job")
            request = self._request_type(job.kind).from_dict(job.request)
            if job.kind == "rerender":
                result = self.pipeline.rerender(
                    request.recipe_path, fx=request.fx, seed=request.seed,
                    output_dir=request.output_dir, on_progress=on_progress,
                    should_cancel=should_cancel)
                on_result(dataclasses.replace(result, index=0))
            else:
                self.pipeline.run(request, on_progress=on_progress, on_result=on_result,
                                  should_cancel=should_cancel, only_variations=todo)
            return DONE, None, None
        except Cancelled:
            return (INTERRUPTED if self._closing.is_set() else CANCELLED), None, None
        except (RequestError, JobError) as e:
            return FAILED, getattr(e, "code", "bad_argument"), str(e)
        except Exception as e:
            log.exception("job %s failed in the engine", job.job_id)
            return FAILED, "engine_error", f"{type(e).__name__}: {e}"

    # -- helpers ----------------------------------------------------------------------------

    def _job(self, job_id: str) -> JobRecord:
        job = self.store.get_job(job_id)
        if job is None:
            raise JobError("unknown_job",
                           f"no job {job_id!r}; send `status` with \"\" to list the known jobs")
        return job

    def _request_type(self, kind: str) -> type:
        if self._request_types is not None:
            return self._request_types[kind]
        if kind == "rerender":
            return RerenderRequest
        from bridge.request import VampRequest
        return VampRequest

    def _default_render_dir(self) -> Path:
        if self._default_output_dir is not None:
            return Path(self._default_output_dir)
        from bridge.paths import default_render_dir
        return default_render_dir()


def _new_job_id(client: str) -> str:
    stem = "".join(ch for ch in client.split(":")[0] if ch.isalnum())[:16] or "job"
    return f"{stem}-{int(time.time() * 1000)}-{random.randrange(16**6):06x}"
