"""The job store: what survives a crash, and how delivery state works."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

from bridge.jobs.store import (CANCELLED, DONE, INTERRUPTED, QUEUED, RUNNING, JobStore)


def _add(store, job_id, client="reaper:a", n=3):
    return store.add_job(job_id=job_id, client=client, kind="vamp",
                         request={"source_path": "/x.wav", "seed": 7}, priority=0, n_total=n,
                         source_path="/x.wav", item_guid="{item}", take_guid="{take}")


def _finish(store, job_id, k):
    return store.add_variation(job_id, k, seed=7 + k, audio_path=f"/out/{job_id}_{k}.wav",
                               recipe_path=f"/out/{job_id}_{k}.json", take_name=f"v{k}")


def test_database_runs_in_wal_mode(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_job_keeps_its_request_and_seed_across_reopen(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    _add(store, "j1")
    store.close()
    job = JobStore(path).get_job("j1")
    assert job.state == QUEUED and job.request == {"source_path": "/x.wav", "seed": 7}
    assert (job.n_total, job.n_finished, job.client) == (3, 0, "reaper:a")


def test_duplicate_job_id_is_refused(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    _add(store, "j1")
    try:
        _add(store, "j1")
    except KeyError:
        pass
    else:
        raise AssertionError("a second job with the same id was stored")


def test_finished_variation_is_pending_until_acknowledged(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    _add(store, "j1")
    _finish(store, "j1", 0)
    _finish(store, "j1", 2)
    pending = store.pending("reaper:a")
    assert [(r.job_id, r.index, r.seed) for r in pending] == [("j1", 0, 7), ("j1", 2, 9)]
    assert pending[0].item_guid == "{item}" and pending[0].take_name == "v0"
    assert store.ack("j1", 0) is True
    assert store.ack("j1", 0) is True  # idempotent
    assert [r.index for r in store.pending("reaper:a")] == [2]
    assert store.pending("someone-else") == []
    assert [r.index for r in store.pending(None)] == [2]


def test_prune_forgets_only_old_ended_jobs_with_every_result_acknowledged(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    for job_id, state in (("old-done", DONE), ("old-unacked", DONE), ("old-cancelled", CANCELLED),
                          ("old-interrupted", INTERRUPTED), ("old-running", RUNNING), ("new-done", DONE)):
        _add(store, job_id)
        _finish(store, job_id, 0)
        if job_id != "old-unacked":
            store.ack(job_id, 0)
        store.set_state(job_id, state)
    month = 30 * 86400
    store._conn.execute("UPDATE jobs SET updated_at = updated_at - ? WHERE job_id LIKE 'old-%'", (month + 60,))
    assert store.prune(month) == 2
    assert sorted(j.job_id for j in store.jobs()) == ["new-done", "old-interrupted", "old-running", "old-unacked"]
    assert store.variations("old-done") == [] and store.get_job("old-cancelled") is None
    assert [r.job_id for r in store.pending(None)] == ["old-unacked"]  # still owed to its client
    assert store.prune(month) == 0


def test_ack_of_unfinished_variation_reports_false(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    _add(store, "j1")
    assert store.ack("j1", 1) is False


def test_recover_marks_queued_and_running_jobs_interrupted(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    for job_id, state in (("a", QUEUED), ("b", RUNNING), ("c", DONE), ("d", CANCELLED)):
        _add(store, job_id)
        store.set_state(job_id, state)
    assert store.recover() == ["a", "b"]
    states = {j.job_id: j.state for j in store.jobs()}
    assert states == {"a": INTERRUPTED, "b": INTERRUPTED, "c": DONE, "d": CANCELLED}


def test_committed_variations_survive_sigkill_of_the_writer(tmp_path):
    """A process killed while recording variations leaves a consistent database in which
    every variation it reported as recorded is present and pending."""
    path = tmp_path / "jobs.sqlite3"
    writer = textwrap.dedent(f"""
        import sys
        from bridge.jobs.store import JobStore
        store = JobStore({str(path)!r})
        store.add_job(job_id="j", client="c", kind="vamp", request={{}}, priority=1,
                      n_total=100000, source_path="/x.wav")
        store.set_state("j", "running")
        k = 0
        while True:
            store.add_variation("j", k, seed=k, audio_path="/a", recipe_path="/r", take_name="t")
            print(k, flush=True)
            k += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())
    reported = -1
    for line in proc.stdout:
        reported = int(line)
        if reported >= 200:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert reported >= 200

    store = JobStore(path)
    assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.recover() == ["j"]
    finished = store.finished_indices("j")
    assert set(range(reported + 1)) <= finished
    assert {r.index for r in store.pending("c")} == finished


def test_store_refuses_a_database_of_another_schema(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    JobStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema'")
    try:
        JobStore(path)
    except RuntimeError as e:
        assert "schema 99" in str(e)
    else:
        raise AssertionError("opened a database of another schema")


def test_second_store_on_the_same_database_is_refused_until_the_first_closes(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    first = JobStore(path)
    try:
        JobStore(path)
    except RuntimeError as e:
        assert "another VampBridge service" in str(e)
    else:
        raise AssertionError("two services opened the same job database")
    first.close()
    JobStore(path).close()
