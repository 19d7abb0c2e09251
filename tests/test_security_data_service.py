"""Issue 10 items 2, 4, 5, 8 through the job service (what OSC and the companion call).

The job runs on the service's worker thread, and the attacks come from the side, as another
process would make them: a listener swaps the output folder while the job renders.
"""

import os
import queue
import shutil
import uuid
from pathlib import Path

import pytest
from conftest import tone, write_wav

from bridge.jobs import JobService, JobStore
from bridge.jobs.events import DoneEvent, ErrorEvent, ProgressEvent, ResultEvent
from bridge.jobs.requests import RerenderRequest
from bridge.pipeline import Pipeline
from bridge.request import RequestError, VampRequest

FAST = {"sampling_steps": 2, "c2f_sampling_steps": 1}
REFUSED_TARGET = Path("/dev/shm")


@pytest.fixture
def service(tmp_path, tiny_models):
    service = JobService(Pipeline(model_dir=tiny_models, device="cpu"), JobStore(tmp_path / "jobs.sqlite3"),
                         default_output_dir=tmp_path / "renders", preload=False).start()
    yield service
    service.close()
    service.store.close()


@pytest.fixture
def source(tmp_path):
    return write_wav(tmp_path / f"take-{uuid.uuid4().hex[:6]}.wav", tone(0.6, seed=4), 44100)


def run_job(service, request, on_event=lambda event: None, timeout_s=120):
    events = queue.Queue()

    def listener(event):
        on_event(event)
        events.put(event)

    unsubscribe = service.subscribe(listener)
    try:
        job_id = service.submit(request, client="test")
        seen = []
        while True:
            event = events.get(timeout=timeout_s)
            if event.job_id == job_id:
                seen.append(event)
                if isinstance(event, DoneEvent):
                    return seen
    finally:
        unsubscribe()


def test_a_user_file_with_an_output_name_in_the_source_folder_survives_a_service_job(service, source):
    folder = source.parent
    first = [e for e in run_job(service, VampRequest(str(source), output_dir=str(folder), seed=7,
                                                     sampling=dict(FAST))) if isinstance(e, ResultEvent)]
    produced = Path(first[0].variation.audio_path)
    produced.unlink()
    produced.write_bytes(b"the user's own take")
    events = run_job(service, VampRequest(str(source), output_dir=str(folder), seed=7, sampling=dict(FAST)))
    [result] = [e for e in events if isinstance(e, ResultEvent)]
    assert produced.read_bytes() == b"the user's own take"
    assert result.variation.audio_path != str(produced) and Path(result.variation.audio_path).is_file()
    assert events[-1].state == "done"


@pytest.mark.skipif(not REFUSED_TARGET.is_dir() or not os.access(REFUSED_TARGET, os.W_OK),
                    reason="needs a writable /dev/shm to show a leak")
def test_an_output_folder_swapped_for_a_link_while_the_service_renders_gets_nothing(service, source, tmp_path):
    out = tmp_path / "renders-of-the-day"
    before = set(REFUSED_TARGET.rglob("*"))

    def swap_when_rendering(event):
        # After the first variation is out, before the second is published (progress events are
        # rate-limited, so a "rendering" one may never be seen; results always are).
        if isinstance(event, ResultEvent) and not out.is_symlink():
            out.rename(tmp_path / "moved")
            out.symlink_to(REFUSED_TARGET)

    try:
        events = run_job(service, VampRequest(str(source), output_dir=str(out), seed=3, n_variations=2,
                                              sampling=dict(FAST)), on_event=swap_when_rendering)
        errors = [e for e in events if isinstance(e, ErrorEvent)]
        assert errors and errors[0].code == "bad_output_dir" and "replaced" in errors[0].message
        assert events[-1].state == "failed"
        assert set(REFUSED_TARGET.rglob("*")) == before
    finally:
        for path in sorted(set(REFUSED_TARGET.rglob("*")) - before, reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


def test_a_refused_output_folder_is_answered_at_submit_and_never_created(service, source):
    target = Path("/lib32") / f"vampbridge-test-{uuid.uuid4().hex[:8]}"
    existed = target.parent.exists()
    try:
        with pytest.raises(RequestError) as e:
            service.submit(VampRequest(str(source), output_dir=str(target / "x"), sampling=dict(FAST)), client="t")
        assert e.value.code == "bad_output_dir"
        assert not target.exists()
    finally:
        if target.exists():
            shutil.rmtree(target)
        if not existed and target.parent.exists():
            target.parent.rmdir()


def test_a_rerender_of_a_recipe_in_tmp_is_refused_at_submit(service, source, tmp_path):
    [result] = [e for e in run_job(service, VampRequest(str(source), output_dir=str(tmp_path / "r"), seed=2,
                                                        sampling=dict(FAST))) if isinstance(e, ResultEvent)]
    recipe = Path("/tmp") / f"vampbridge-test-{uuid.uuid4().hex[:8]}.json"
    shutil.copy(result.variation.recipe_path, recipe)
    try:
        with pytest.raises(RequestError) as e:
            service.submit(RerenderRequest(recipe_path=str(recipe), output_dir=None), client="t")
        assert e.value.code == "bad_output_dir"
    finally:
        recipe.unlink()
