"""Every queued and running job (the companion's and Reaper's), with progress, cancel and resume.

Rows appear when the companion submits a job, when any job reports progress, or when the
once-a-second status poll finds a job not shown yet: a Reaper job still waiting in the queue, or
a job left `interrupted` when the service stopped (the companion closed or was killed; the job
service marks these at start-up). Interrupted, cancelled and failed rows offer **Resume**, which
asks `JobService.resume` to queue the missing variations again with their original seeds.
"""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea,
                             QToolButton, QVBoxLayout, QWidget)

ACTIVE = ("queued", "running")
#: States `JobService.resume` accepts (it refuses `done`; queued and running need no resume).
RESUMABLE = ("interrupted", "cancelled", "failed")
ETA_MIN_ELAPSED_S = 1.0  # an estimate from less is noise
ETA_MIN_PROGRESS = 0.02
STAGE_NAMES = {"queued": "queued", "loading": "loading models", "encoding": "encoding", "coarse": "coarse",
               "c2f": "fine detail", "decoding": "decoding", "rendering": "rendering"}


class JobRow(QFrame):
    cancel_clicked = pyqtSignal(str)
    resume_clicked = pyqtSignal(str)

    def __init__(self, job_id: str, title: str, client: str, n_total: int = 0, parent=None):
        super().__init__(parent)
        self.job_id = job_id
        self.n_total = n_total
        self.eta_s: float | None = None
        self._rate_start: tuple[float, float] | None = None  # (time, fraction) when it started running
        self.state = "queued"
        self.setObjectName("jobRow")
        self.title = QLabel(title)
        self.title.setObjectName("jobTitle")
        self.title.setToolTip(job_id)
        self.detail = QLabel(f"{'Reaper' if client.startswith('reaper') else client} · queued")
        self.detail.setObjectName("dim")
        self.detail.setWordWrap(True)  # a narrow Jobs panel wraps the line instead of hiding ✕
        self.client = client
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.bar.setFixedHeight(8)
        self.cancel = QToolButton()
        self.cancel.setText("✕")
        self.cancel.setToolTip("Cancel this job (finished variations stay)")
        self.cancel.clicked.connect(lambda: self.cancel_clicked.emit(self.job_id))
        self.resume = QToolButton()
        self.resume.setText("Resume")
        self.resume.setToolTip("Make the missing variations of this job, with the seeds they would have had")
        self.resume.clicked.connect(lambda: self.resume_clicked.emit(self.job_id))
        self.resume.hide()
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(self.title)
        text.addWidget(self.bar)
        text.addWidget(self.detail)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 4, 6, 4)
        row.addLayout(text, 1)
        row.addWidget(self.resume, 0, Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.cancel, 0, Qt.AlignmentFlag.AlignVCenter)

    def _who(self) -> str:
        return "Reaper" if self.client.startswith("reaper") else self.client

    def set_progress(self, fraction: float, stage: str, variation: int, now_s: float | None = None):
        """Show the stage, the variation in work (k of n) and, once the rate is known, the time left."""
        if self.state not in ACTIVE:
            return
        self.state = "running" if stage != "queued" else "queued"
        self.bar.setValue(int(round(fraction * 1000)))
        now_s = time.monotonic() if now_s is None else now_s
        if self.state == "running" and self._rate_start is None:
            self._rate_start = (now_s, fraction)
        of = f" of {self.n_total}" if self.n_total else ""
        which = f" · variation {variation + 1}{of}" if variation >= 0 else ""
        self.eta_s = self._estimate_s(fraction, now_s)
        left = f" · about {_duration(self.eta_s)} left" if self.eta_s is not None else ""
        self.detail.setText(f"{self._who()} · {STAGE_NAMES.get(stage, stage)}{which} · {fraction:.0%}{left}")

    def _estimate_s(self, fraction: float, now_s: float) -> float | None:
        """Time left from the rate since this row started running (None until it means something)."""
        if self._rate_start is None:
            return None
        t0, f0 = self._rate_start
        elapsed, done = now_s - t0, fraction - f0
        if elapsed < ETA_MIN_ELAPSED_S or done < ETA_MIN_PROGRESS:
            return None
        return max(0.0, (1.0 - fraction) * elapsed / done)

    def set_finished(self, state: str, n_finished: int, n_total: int | None = None):
        """Show a job that stopped: done, failed, cancelled, or interrupted (the service stopped)."""
        self.state = state
        # An interrupted job can still be cancelled, so that it is not offered again next start.
        self.cancel.setEnabled(state == "interrupted")
        self.cancel.setToolTip("Discard this interrupted job (finished variations stay)" if state == "interrupted"
                               else "Cancel this job (finished variations stay)")
        self.resume.setVisible(state in RESUMABLE)
        self.resume.setEnabled(state in RESUMABLE)
        if state == "done":
            self.bar.setValue(1000)
        else:
            self.bar.setValue(int(round(1000 * n_finished / n_total)) if n_total else self.bar.value())
        total = f" of {n_total}" if n_total else ""
        self.detail.setText(f"{self._who()} · {state} · {n_finished}{total} variation(s)")
        self._set_finished_look(True)

    def set_resumed(self):
        """The job is queued again (Resume here, or `resume` from Reaper)."""
        self.state = "queued"
        self._rate_start = None  # the resumed run has its own rate
        self.cancel.setEnabled(True)
        self.cancel.setToolTip("Cancel this job (finished variations stay)")
        self.resume.hide()
        self.detail.setText(f"{self._who()} · queued again")
        self._set_finished_look(False)

    def _set_finished_look(self, finished: bool):
        self.setProperty("finished", finished)
        self.style().unpolish(self)
        self.style().polish(self)


class JobsPanel(QWidget):
    cancel_requested = pyqtSignal(str)
    resume_requested = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: dict[str, JobRow] = {}
        self._cleared: set[str] = set()  # interrupted jobs put away with "Clear finished"
        self._list = QVBoxLayout()
        self._list.setContentsMargins(0, 0, 0, 0)
        self._list.setSpacing(4)
        self._list.addStretch(1)
        holder = QWidget()
        holder.setLayout(self._list)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows shrink, ✕ stays in view
        self.empty = QLabel("No jobs yet. Paint a mask and press Vamp, or vamp from Reaper.")
        self.empty.setObjectName("dim")
        self.empty.setWordWrap(True)
        clear = QPushButton("Clear finished")
        clear.clicked.connect(self.clear_finished)
        header = QHBoxLayout()
        title = QLabel("Jobs")
        title.setObjectName("panelTitle")
        header.addWidget(title)
        header.addStretch(1)
        header.addWidget(clear)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.empty)
        layout.addWidget(scroll, 1)

    def add_job(self, job_id: str, source_path: str, client: str, n_total: int = 0) -> JobRow:
        row = self.rows.get(job_id)
        if row is not None:
            return row
        title = f"{Path(source_path).name}" + (f" × {n_total}" if n_total else "")
        row = JobRow(job_id, title, client, n_total)
        row.cancel_clicked.connect(self.cancel_requested.emit)
        row.resume_clicked.connect(self.resume_requested.emit)
        self.rows[job_id] = row
        self._list.insertWidget(0, row)
        self.empty.hide()
        return row

    def on_progress(self, job_id: str, fraction: float, stage: str, variation: int):
        row = self.rows.get(job_id)
        if row is not None:
            row.set_progress(fraction, stage, variation)

    def on_done(self, job_id: str, state: str, n_finished: int, n_failed: int):
        row = self.rows.get(job_id)
        if row is not None:
            row.set_finished(state, n_finished, n_finished + n_failed or None)

    def on_jobs_listed(self, statuses):
        """Show jobs the companion has not seen yet (queued by Reaper, or interrupted when the
        service last stopped) and fix stale states."""
        for s in statuses:
            row = self.rows.get(s.job_id)
            if row is None:
                wanted = s.state in ACTIVE or (s.state == "interrupted" and s.job_id not in self._cleared)
                if not wanted:
                    continue  # the rest of earlier sessions' history stays out of the way
                row = self.add_job(s.job_id, s.source_path, s.client, s.n_total)
            if s.state not in ACTIVE and row.state != s.state:  # its DoneEvent came before the row
                if row.state in ACTIVE or s.state == "interrupted":
                    row.set_finished(s.state, s.n_finished, s.n_total)
            elif s.state in ACTIVE and row.state not in ACTIVE:  # resumed elsewhere (Reaper's `resume`)
                row.set_resumed()

    def clear_finished(self):
        for job_id, row in list(self.rows.items()):
            if row.state not in ACTIVE:
                self._list.removeWidget(row)
                row.deleteLater()
                del self.rows[job_id]
                self._cleared.add(job_id)
        self.empty.setVisible(not self.rows)

    def active_jobs(self) -> list[str]:
        return [job_id for job_id, row in self.rows.items() if row.state in ACTIVE]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"
