"""Progress events: at most ~10 a second, at least 2 a second, over the whole job."""

from bridge.jobs.service import ProgressTracker
from bridge.jobs.store import JobRecord


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def _job(n_total):
    return JobRecord(job_id="j", seq=1, client="c", kind="vamp", request={}, priority=0,
                     state="running", n_total=n_total, n_finished=0, source_path="/x.wav",
                     item_guid="", take_guid="", error_code=None, error_message=None,
                     created_at=0.0, updated_at=0.0)


def _tracker(n_total=4, n_todo=4):
    clock, events = Clock(), []
    tracker = ProgressTracker(_job(n_total), n_todo, events.append, min_interval_s=0.1,
                              heartbeat_s=0.35, clock=clock)
    return tracker, clock, events


def test_pipeline_steps_faster_than_ten_a_second_are_thinned_out():
    tracker, clock, events = _tracker()
    for step in range(1000):  # 1000 steps over 1 s
        tracker.update(step / 1000, "coarse", 0)
        clock.now_s += 0.001
    assert 9 <= len(events) <= 11


def test_heartbeat_repeats_the_last_progress_when_the_pipeline_is_silent():
    tracker, clock, events = _tracker()
    tracker.update(0.25, "encoding", -1, force=True)
    clock.now_s += 0.2
    tracker.heartbeat()
    assert len(events) == 1  # too early
    clock.now_s += 0.2
    tracker.heartbeat()
    assert len(events) == 2 and events[-1].stage == "encoding" and events[-1].fraction == 0.25


def test_fraction_covers_the_whole_job_when_resuming_and_never_goes_back():
    tracker, clock, events = _tracker(n_total=4, n_todo=2)  # 2 of 4 finished before
    tracker.update(0.0, "loading", -1, force=True)
    assert events[-1].fraction == 0.5
    tracker.update(0.5, "coarse", 2, force=True)
    assert events[-1].fraction == 0.75
    tracker.update(0.1, "c2f", 3, force=True)  # a pipeline stage restarting its own count
    assert events[-1].fraction == 0.75
    tracker.update(float("nan"), "c2f", 3, force=True)
    assert events[-1].fraction == 0.75
