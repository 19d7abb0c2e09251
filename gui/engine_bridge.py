"""The companion's one door to the engine: the job service and the embedded OSC server.

`EngineBridge` builds exactly what `vampbridge serve` builds (a `Pipeline`, a `JobStore`, a
`JobService` and a `BridgeServer`), so Reaper's scripts talk to the companion as they would to
the headless service, plus one thing the headless service lacks: an editor for `open` requests.

All engine work runs on the job service's worker thread. Its events arrive on that thread; the
bridge turns them into Qt signals, which Qt queues to the UI thread. Nothing here ever waits for
the engine: `submit`, `cancel`, `resume` and `status` only touch the queue and the SQLite store.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from bridge.jobs import (DoneEvent, ErrorEvent, JobEvent, JobService, JobStore, ProgressEvent,
                         ResultEvent)
from bridge.osc.server import DEFAULT_PORT, BridgeServer

log = logging.getLogger(__name__)

GUI_CLIENT = "gui"
STATUS_POLL_MS = 1000  # how often queued jobs of other clients (Reaper) are looked for
READY_POLL_MS = 200  # until the models are loaded: the status line should say so promptly


class EngineBridge(QObject):
    """Owns the job service and OSC server for the lifetime of the window.

    Signals (always delivered on the UI thread):
    - `progress(job_id, fraction, stage, variation)`
    - `result(job_id, VariationRecord)`
    - `done(job_id, state, n_finished, n_failed)`
    - `failed(job_id, code, message)` (a DoneEvent follows)
    - `jobs_listed(list[JobStatus])` every second: every known job, for the jobs panel
    - `open_requested(OpenRequest)`: Reaper asked to edit a region
    - `ready(dict)`: the models are loaded; the dict is the pipeline's info
    - `osc_failed(str)`: the OSC port could not be opened (the window still works)
    """

    progress = pyqtSignal(str, float, str, int)
    result = pyqtSignal(str, object)
    done = pyqtSignal(str, str, int, int)
    failed = pyqtSignal(str, str, str)
    jobs_listed = pyqtSignal(list)
    open_requested = pyqtSignal(object)
    ready = pyqtSignal(dict)
    osc_failed = pyqtSignal(str)

    def __init__(self, model_dir=None, device=None, *, finetune: str | None = None, osc_host: str = "127.0.0.1",
                 osc_port: int = DEFAULT_PORT, token: str = "", store_path=None,
                 pipeline=None, parent=None):
        super().__init__(parent)
        from bridge.paths import jobs_db_path
        from bridge.pipeline import Pipeline

        self.pipeline = pipeline if pipeline is not None else Pipeline(model_dir=model_dir, device=device,
                                                                       finetune=finetune)
        self.store = JobStore(Path(store_path) if store_path else jobs_db_path())
        self.service = JobService(self.pipeline, self.store)
        self.server: BridgeServer | None = None
        self._osc = (osc_host, osc_port, token)
        self._unsubscribe = None
        self._ready_sent = False
        self._poll = QTimer(self)
        self._poll.setInterval(READY_POLL_MS)
        self._poll.timeout.connect(self.poll_status)

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> "EngineBridge":
        self._unsubscribe = self.service.subscribe(self._on_event)
        self.service.start()
        host, port, token = self._osc
        try:
            # No token in the settings: the per-user secret, which Reaper's scripts read too.
            self.server = BridgeServer(self.service, host=host, port=port, token=token or None,
                                       editor=self.open_requested.emit).start()
        except (OSError, ValueError) as e:
            self.server = None
            self.osc_failed.emit(
                f"Reaper can't reach the companion: OSC port {port} could not be opened ({e}). "
                "Is `vampbridge serve` or another companion running? Stop it, or pick another "
                "port under Edit > Settings… and restart the companion.")
        self._poll.start()
        return self

    @property
    def osc_port(self) -> int | None:
        return self.server.port if self.server is not None else None

    @property
    def token(self) -> str:
        """The OSC token set in the settings ("" = the per-user secret)."""
        return self._osc[2]

    @property
    def checked_token(self) -> str:
        """The token OSC requests must carry: the settings' token, else the per-user secret."""
        if self.server is not None:
            return self.server.token
        from bridge.secret import read_secret
        return self._osc[2] or read_secret()

    def close(self):
        self._poll.stop()
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.service.close(timeout_s=5.0)
        self.store.close()

    # -- requests (UI thread; none of these waits on the engine) -----------------------------

    def submit(self, request) -> str:
        """Queue a VampRequest for the companion; raises RequestError/JobError with a message."""
        return self.service.submit(request, client=GUI_CLIENT)

    def cancel(self, job_id: str) -> None:
        self.service.cancel(job_id)

    def resume(self, job_id: str) -> int:
        """Queue an interrupted, cancelled or failed job again for its missing variations (same
        seeds); returns its queue position. Raises JobError for a job that is done or unknown."""
        return self.service.resume(job_id)

    def job(self, job_id: str):
        return self.service.job(job_id)

    def pending(self) -> list:
        """The companion's finished variations it never showed (it closed or died first)."""
        try:
            return self.service.pending(GUI_CLIENT)
        except Exception as e:  # a convenience at start-up; never worth bothering the musician
            log.warning("pending variations unavailable: %s", e)
            return []

    def ack(self, job_id: str, variation: int) -> None:
        """The companion shows this variation: stop listing it as pending for `gui`."""
        try:
            self.service.ack(job_id, variation)
        except Exception as e:  # bookkeeping only; never worth bothering the musician
            log.debug("ack %s/%d failed: %s", job_id, variation, e)

    def poll_status(self):
        try:
            statuses = self.service.status(limit=50)
        except Exception as e:
            log.warning("job status unavailable: %s", e)
            return
        self.jobs_listed.emit(statuses)
        if self._ready_sent:
            return
        info = self.service.info()  # device "loading" until the worker has loaded the models
        if info.get("device") not in (None, "", "loading"):
            self._ready_sent = True
            self._poll.setInterval(STATUS_POLL_MS)
            self.ready.emit(dict(info))

    # -- events (service threads) -------------------------------------------------------------

    def _on_event(self, event: JobEvent):
        if isinstance(event, ProgressEvent):
            self.progress.emit(event.job_id, float(event.fraction), event.stage, int(event.variation))
        elif isinstance(event, ResultEvent):
            self.result.emit(event.job_id, event.variation)
        elif isinstance(event, ErrorEvent):
            self.failed.emit(event.job_id, event.code, event.message)
        elif isinstance(event, DoneEvent):
            self.done.emit(event.job_id, event.state, int(event.n_finished), int(event.n_failed))
