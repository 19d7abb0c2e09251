"""The queue in front of the GPU worker: interactive jobs first, then bounces, each in order."""

from __future__ import annotations

import heapq
import itertools
import threading
from enum import IntEnum


class Priority(IntEnum):
    """Lower runs first. INTERACTIVE: a person waits (right-click script, editor); BATCH: bounces."""

    INTERACTIVE = 0
    BATCH = 1

    @classmethod
    def for_client(cls, client: str) -> "Priority":
        """The default priority of a client: names starting `reaper` or `gui` are interactive."""
        return cls.INTERACTIVE if client.lower().startswith(("reaper", "gui")) else cls.BATCH

    @classmethod
    def parse(cls, text: str) -> "Priority | None":
        """`"interactive"`, `"batch"` (any case), or `""` for None (decide by client name)."""
        text = text.strip().lower()
        if not text:
            return None
        try:
            return cls[text.upper()]
        except KeyError:
            raise ValueError(f"priority {text!r} is not one of: interactive, batch, \"\"") from None


class JobQueue:
    """A thread-safe priority queue of job ids: by priority, then first come first served.

    `get()` blocks the worker until a job is available or the queue is closed (then None); the job
    it returns is `taken` until the worker calls `task_done()`.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str]] = []
        self._queued: set[str] = set()
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self.taken: str | None = None

    def put(self, job_id: str, priority: int) -> None:
        with self._cond:
            if job_id in self._queued:
                return
            heapq.heappush(self._heap, (int(priority), next(self._order), job_id))
            self._queued.add(job_id)
            self._cond.notify()

    def remove(self, job_id: str) -> bool:
        """Take a job out of the queue (cancel before it started). False if it was not queued."""
        with self._cond:
            if job_id not in self._queued:
                return False
            self._queued.discard(job_id)
            self._heap = [e for e in self._heap if e[2] != job_id]
            heapq.heapify(self._heap)
            return True

    def get(self, timeout_s: float | None = None) -> str | None:
        """The next job id; None when closed or after `timeout_s` seconds without a job."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._heap or self._closed, timeout=timeout_s):
                return None
            if self._closed:
                return None
            _, _, job_id = heapq.heappop(self._heap)
            self._queued.discard(job_id)
            self.taken = job_id
            return job_id

    def task_done(self) -> None:
        """The worker finished the job `get()` returned."""
        with self._cond:
            self.taken = None

    def position(self, job_id: str) -> int | None:
        """0 if the worker has this job, else how many jobs run before it (the one the worker has
        included), or None if it is neither queued nor taken."""
        with self._cond:
            if job_id == self.taken:
                return 0
            if job_id not in self._queued:
                return None
            mine = next(e for e in self._heap if e[2] == job_id)
            ahead = sum(1 for e in self._heap if e < mine)
            return ahead + (1 if self.taken is not None else 0)

    def __contains__(self, job_id: str) -> bool:
        with self._cond:
            return job_id in self._queued

    def __len__(self) -> int:
        with self._cond:
            return len(self._heap)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
