"""JobService bookkeeping that needs no job to run: seeds, restarts, refusals."""

import pytest

from bridge.jobs import JobError, JobService, JobStore
from bridge.pipeline import Pipeline
from bridge.request import VampRequest
from test_service_support import write_test_wav


@pytest.fixture
def source(tmp_path):
    return str(write_test_wav(tmp_path / "media" / "loop.wav"))


def _service(tmp_path, tiny_models):
    return JobService(Pipeline(model_dir=tiny_models, device="cpu"),
                      JobStore(tmp_path / "jobs.sqlite3"), default_output_dir=tmp_path / "renders",
                      preload=False)


def test_service_picks_and_stores_the_seed_when_the_request_has_none(tmp_path, tiny_models,
                                                                      source):
    service = _service(tmp_path, tiny_models)  # not started: nothing runs
    job_id = service.submit(VampRequest(source, n_variations=3), client="bounce")
    seed = service.job(job_id).request["seed"]
    assert isinstance(seed, int) and 0 <= seed and seed + 2 < 2**31
    assert service.job(job_id).request["output_dir"] == str((tmp_path / "renders").resolve())


def test_explicit_seed_must_leave_room_for_every_variation(tmp_path, tiny_models, source):
    service = _service(tmp_path, tiny_models)
    with pytest.raises(JobError) as e:
        service.submit(VampRequest(source, n_variations=3, seed=2**31 - 2), client="bounce")
    assert e.value.code == "bad_argument"


def test_restart_turns_unfinished_jobs_into_interrupted_ones(tmp_path, tiny_models, source):
    first = _service(tmp_path, tiny_models)
    job_id = first.submit(VampRequest(source, n_variations=2, seed=5), client="reaper:x")
    first.store.close()  # the process "dies" with the job still queued

    second = _service(tmp_path, tiny_models)
    second.start()
    try:
        assert second.recovered == [job_id]
        [status] = second.status(job_id)
        assert (status.state, status.n_finished, status.n_total) == ("interrupted", 0, 2)
        assert second.job(job_id).request["seed"] == 5
    finally:
        second.close()
        second.store.close()


def test_start_forgets_delivered_jobs_older_than_keep_days_but_keeps_their_files(tmp_path, tiny_models,
                                                                                 source):
    store = JobStore(tmp_path / "jobs.sqlite3")
    audio = tmp_path / "renders" / "take.wav"
    audio.parent.mkdir()
    audio.write_bytes(b"RIFF")
    for job_id, age_days in (("ancient", 40), ("recent", 3)):
        store.add_job(job_id=job_id, client="reaper:x", kind="vamp", request={"seed": 1}, priority=0,
                      n_total=1, source_path=source, item_guid="", take_guid="")
        store.add_variation(job_id, 0, seed=1, audio_path=str(audio), recipe_path="", take_name="v")
        store.ack(job_id, 0)
        store.set_state(job_id, "done")
        store._conn.execute("UPDATE jobs SET updated_at = updated_at - ? WHERE job_id = ?",
                            (age_days * 86400, job_id))
    service = JobService(Pipeline(model_dir=tiny_models, device="cpu"), store, preload=False,
                         keep_days=30).start()
    try:
        assert [j.job_id for j in store.jobs()] == ["recent"]
        assert audio.read_bytes() == b"RIFF"
    finally:
        service.close()
        store.close()


def test_unknown_jobs_are_reported_by_code(tmp_path, tiny_models):
    service = _service(tmp_path, tiny_models)
    for call in (lambda: service.cancel("nope"), lambda: service.resume("nope"),
                 lambda: service.ack("nope", 0), lambda: service.status("nope")):
        with pytest.raises(JobError) as e:
            call()
        assert e.value.code == "unknown_job"
