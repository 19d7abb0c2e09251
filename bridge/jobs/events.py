"""What the job service tells its listeners (the OSC server, the companion's GUI).

Listeners are plain callables taking one event; they are called from the service's threads and
must return quickly (send a datagram, post to a Qt queue). Every event names its job and client.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.jobs.store import VariationRecord


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    client: str


@dataclass(frozen=True)
class ProgressEvent(JobEvent):
    """`fraction` 0..1 over the whole job (never decreasing); `variation` -1 when not per variation.

    Sent at most about 10 times a second and at least twice a second while the job runs.
    """

    fraction: float
    stage: str
    variation: int


@dataclass(frozen=True)
class ResultEvent(JobEvent):
    """A variation's files are on disk and recorded; `variation` says where."""

    variation: VariationRecord


@dataclass(frozen=True)
class ErrorEvent(JobEvent):
    """The job failed: `code` from docs/osc.md, `message` for a person. A DoneEvent follows."""

    code: str
    message: str


@dataclass(frozen=True)
class DoneEvent(JobEvent):
    """The job stopped: `state` is `done`, `cancelled`, `failed` or `interrupted` (shutdown)."""

    state: str
    n_finished: int
    n_failed: int
