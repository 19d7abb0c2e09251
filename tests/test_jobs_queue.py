"""Queue order: interactive before batch, first come first served within each class.

These tests use a trivial runner in place of the pipeline: they are about ordering only.
"""

import dataclasses
import threading
from dataclasses import dataclass

from bridge.jobs.queue import JobQueue, Priority
from bridge.jobs.service import JobService
from bridge.jobs.store import JobStore


def test_interactive_jobs_come_before_batch_jobs_and_each_class_keeps_its_order():
    q = JobQueue()
    for job_id, priority in (("b1", 1), ("b2", 1), ("i1", 0), ("b3", 1), ("i2", 0)):
        q.put(job_id, priority)
    assert [q.get(timeout_s=0) for _ in range(5)] == ["i1", "i2", "b1", "b2", "b3"]
    assert q.get(timeout_s=0) is None


def test_position_counts_the_jobs_ahead_including_the_one_running():
    q = JobQueue()
    q.put("a", 1)
    q.put("b", 1)
    assert q.position("b") == 1
    assert q.get(timeout_s=0) == "a"
    assert q.position("a") == 0  # taken by the worker: runs now
    assert q.position("b") == 1  # behind the running one
    q.task_done()
    assert q.position("a") is None and q.position("b") == 0


def test_removed_job_is_never_handed_out():
    q = JobQueue()
    q.put("a", 1)
    q.put("b", 1)
    assert q.remove("a") is True and q.remove("a") is False
    assert q.get(timeout_s=0) == "b"


def test_client_names_decide_the_default_priority():
    assert Priority.for_client("reaper:/music/song.rpp") is Priority.INTERACTIVE
    assert Priority.for_client("GUI") is Priority.INTERACTIVE
    assert Priority.for_client("bounce:album") is Priority.BATCH
    assert Priority.parse("Batch") is Priority.BATCH and Priority.parse("") is None


@dataclass
class OrderRequest:
    """Just enough of a request for the queue: the trivial runner ignores everything else."""

    source_path: str = "/dev/null"
    n_variations: int = 1
    seed: int | None = None
    output_dir: str | None = None
    item_guid: str = ""
    take_guid: str = ""

    def validate(self) -> None:
        pass

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "OrderRequest":
        return cls(**d)


class OrderRunner:
    """Records the order jobs run in; the first job waits until `release` is set."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.seen: list[int] = []

    def run(self, request, *, on_progress, on_result, should_cancel, only_variations):
        self.seen.append(request.seed)
        self.started.set()
        self.release.wait(10)
        return []

    def info(self) -> dict:
        return {}


def test_service_runs_interactive_requests_before_queued_bounces(tmp_path):
    runner = OrderRunner()
    service = JobService(runner, JobStore(tmp_path / "jobs.sqlite3"),
                         default_output_dir=tmp_path / "renders",
                         request_types={"vamp": OrderRequest}).start()
    done = []
    all_done = threading.Event()

    def on_event(event):
        if type(event).__name__ == "DoneEvent":
            done.append(event.job_id)
            if len(done) == 5:
                all_done.set()
    service.subscribe(on_event)
    try:
        service.submit(OrderRequest(seed=0), "bounce", job_id="first")
        assert runner.started.wait(5)
        service.submit(OrderRequest(seed=1), "bounce", job_id="bounce-1")
        service.submit(OrderRequest(seed=2), "bounce", job_id="bounce-2")
        service.submit(OrderRequest(seed=3), "reaper:song", job_id="reaper-1")
        service.submit(OrderRequest(seed=4), "batch-tool", Priority.INTERACTIVE, job_id="explicit")
        assert service.queue_position("first") == 0
        assert service.queue_position("reaper-1") == 1
        assert service.queue_position("bounce-2") == 4
        runner.release.set()
        assert all_done.wait(10)
    finally:
        runner.release.set()
        service.close()
    assert runner.seen == [0, 3, 4, 1, 2]
    assert done == ["first", "reaper-1", "explicit", "bounce-1", "bounce-2"]


def test_cancelled_queued_job_never_runs(tmp_path):
    runner = OrderRunner()
    service = JobService(runner, JobStore(tmp_path / "jobs.sqlite3"),
                         default_output_dir=tmp_path / "renders",
                         request_types={"vamp": OrderRequest}).start()
    try:
        service.submit(OrderRequest(seed=0), "bounce", job_id="first")
        assert runner.started.wait(5)
        service.submit(OrderRequest(seed=1), "bounce", job_id="second")
        assert service.cancel("second") == "cancelled"
        assert service.status("second")[0].state == "cancelled"
        runner.release.set()
        service.submit(OrderRequest(seed=2), "bounce", job_id="third")
        ended = threading.Event()
        service.subscribe(lambda e: e.job_id == "third" and type(e).__name__ == "DoneEvent"
                          and ended.set())
        assert ended.wait(10)
    finally:
        runner.release.set()
        service.close()
    assert runner.seen == [0, 2]
