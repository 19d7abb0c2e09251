"""Jobs: the durable queue in front of the pipeline. See `bridge/jobs/service.py`.

Layering: this package knows requests, the pipeline and SQLite; it knows nothing of OSC or Qt.
"""

from bridge.jobs.errors import JobError
from bridge.jobs.events import DoneEvent, ErrorEvent, JobEvent, ProgressEvent, ResultEvent
from bridge.jobs.queue import Priority
from bridge.jobs.requests import RerenderRequest
from bridge.jobs.service import JobService, JobStatus
from bridge.jobs.store import JobStore, VariationRecord

__all__ = ["DoneEvent", "ErrorEvent", "JobError", "JobEvent", "JobService", "JobStatus",
           "JobStore", "Priority", "ProgressEvent", "RerenderRequest", "ResultEvent",
           "VariationRecord"]
