"""The jobs panel after a crash: a job the service left `interrupted` is listed with Resume, and
Resume makes its missing variations with the seeds they would have had."""

import json
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from bridge.jobs import JobService, JobStore  # noqa: E402
from bridge.pipeline import Pipeline  # noqa: E402
from bridge.request import VampRequest  # noqa: E402
from gui.engine_bridge import EngineBridge  # noqa: E402
from gui.jobs_panel import JobsPanel  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.settings import Settings  # noqa: E402

from conftest import tone, write_wav  # noqa: E402

JOB_TIMEOUT_MS = 90_000
SEED = 77


def test_interrupted_job_resumes_from_the_jobs_panel_with_the_same_seeds(qtbot, tmp_path, tiny_models):
    clip = write_wav(tmp_path / "loop.wav", tone(0.5), 44100)
    store_path = tmp_path / "jobs.sqlite3"
    pipeline = Pipeline(model_dir=tiny_models, device="cpu")

    # An earlier companion queued a job of 3 variations and finished variation 0 (recorded in the
    # store, as its worker does), then died: its service never stopped cleanly.
    dead = JobService(pipeline, JobStore(store_path), preload=False)  # never started: nothing runs
    request = VampRequest(str(clip), mask="creative", sampling={"sampling_steps": 2, "c2f_sampling_steps": 1},
                          n_variations=3, seed=SEED, output_dir=str(tmp_path / "renders"))
    job_id = dead.submit(request, client="gui")
    stored = VampRequest.from_dict(dead.job(job_id).request)
    pipeline.run(stored, only_variations=[0], on_result=lambda r: dead.store.add_variation(
        job_id, r.index, seed=r.seed, audio_path=r.audio_path, recipe_path=r.recipe_path, take_name=r.take_name))
    dead.store.close()

    # The next start: the service marks the job interrupted, the panel offers Resume.
    bridge = EngineBridge(osc_port=0, store_path=store_path, pipeline=pipeline).start()
    window = MainWindow(bridge, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(window)
    try:
        assert bridge.service.recovered == [job_id]
        # Variation 0 was never shown by the dead companion: it is listed now.
        assert [(v.job_id, v.index, v.seed) for v in window.variations_panel.variations()] == [(job_id, 0, SEED)]
        qtbot.waitUntil(lambda: job_id in window.jobs_panel.rows, timeout=10000)  # the status poll
        row = window.jobs_panel.rows[job_id]
        assert row.state == "interrupted" and "1 of 3" in row.detail.text()
        assert not row.resume.isHidden() and row.resume.isEnabled() and row.cancel.isEnabled()

        row.resume.click()
        assert row.resume.isHidden() and row.state in ("queued", "running")
        qtbot.waitUntil(lambda: row.state == "done", timeout=JOB_TIMEOUT_MS)
        assert "3 of 3" in row.detail.text()
        qtbot.waitUntil(lambda: len(window.variations_panel.variations()) == 3, timeout=10000)
        seeds = {v.index: json.loads(Path(v.recipe_path).read_text())["seed"]
                 for v in window.variations_panel.variations()}
        assert seeds == {0: SEED, 1: SEED + 1, 2: SEED + 2}
        assert {r.index: r.seed for r in bridge.store.variations(job_id)} == seeds
    finally:
        window.close()
        window.deleteLater()
        bridge.close()


class _Status:
    def __init__(self, job_id, state, n_finished=0, n_total=2):
        self.job_id, self.state, self.client = job_id, state, "reaper:x"
        self.n_finished, self.n_total, self.source_path = n_finished, n_total, "/audio/take.wav"


def test_only_unfinished_history_is_listed_and_clearing_an_interrupted_job_keeps_it_away(qtbot):
    panel = JobsPanel()
    qtbot.addWidget(panel)
    history = [_Status("old-done", "done", 2), _Status("old-cancelled", "cancelled"), _Status("old-failed", "failed"),
               _Status("crashed", "interrupted", 1)]
    panel.on_jobs_listed(history)
    assert list(panel.rows) == ["crashed"]
    panel.clear_finished()
    panel.on_jobs_listed(history)
    assert panel.rows == {}
    panel.on_jobs_listed([_Status("crashed", "running", 1)])  # resumed from Reaper: shown again
    assert panel.rows["crashed"].state == "queued" and panel.rows["crashed"].resume.isHidden()


def test_resume_is_offered_for_the_states_the_service_resumes(qtbot):
    panel = JobsPanel()
    qtbot.addWidget(panel)
    for state in ("done", "failed", "cancelled", "interrupted"):
        row = panel.add_job(state, "/audio/take.wav", "gui", 2)
        panel.on_done(state, state, 1, 1 if state == "failed" else 0)
        assert row.resume.isHidden() == (state == "done"), state
