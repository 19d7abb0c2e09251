"""Crash safety: finished variations outlive a SIGKILL, and the job resumes with the same seeds."""

import json
from pathlib import Path

from bridge.osc.client import OscClient
from test_service_support import BridgeProcess, vamp_args, write_test_wav

N_VARIATIONS = 8


def _recipe_seed(recipe_path: str) -> int:
    recipe = json.loads(Path(recipe_path).read_text())
    return int(recipe["seed"])


def test_results_survive_sigkill_and_resume_with_same_seeds(tmp_path, tiny_models):
    data = tmp_path / "data"
    source = write_test_wav(tmp_path / "media" / "loop.wav")
    out = tmp_path / "renders"

    first_life = BridgeProcess(data, tiny_models)
    try:
        with OscClient(port=first_life.port, name="reaper", token=first_life.token) as c:
            rid = c.request("vamp", *vamp_args(source, client="reaper:crash",
                                               n_variations=N_VARIATIONS, output_dir=out))
            c.wait_for("accepted", rid, timeout_s=30)
            first = c.wait_for("result", rid, timeout_s=120)
            first_life.kill()  # SIGKILL in the middle of the job
    finally:
        first_life.stop()
    base_seed = first.args[7] - first.args[1]

    second_life = BridgeProcess(data, tiny_models)
    try:
        with OscClient(port=second_life.port, name="reaper", token=second_life.token) as c:
            status = json.loads(c.wait_for("status", c.request("status", rid)).args[1])[0]
            assert status["state"] == "interrupted"
            assert 1 <= status["n_finished"] < N_VARIATIONS

            pending = c.wait_for("pending", c.request("pending", "reaper:crash"))
            survived = [r for r in c.drain() if r.name == "result"]
            assert pending.args[1] == len(survived) == status["n_finished"]
            assert first.args in {r.args for r in survived}
            for r in survived:
                assert Path(r.args[2]).is_file() and Path(r.args[3]).is_file()

            accepted = c.wait_for("accepted", c.request("resume", rid), timeout_s=30)
            assert accepted.args[1] == 0
            done = c.wait_for("done", rid, timeout_s=180)
            assert done.args[1:] == (N_VARIATIONS, 0, "done")
            resumed = [r for r in c.drain() if r.name == "result" and r.id == rid]
    finally:
        second_life.stop()

    finished_before = {r.args[1] for r in survived}
    assert {r.args[1] for r in resumed} == set(range(N_VARIATIONS)) - finished_before
    for r in survived + resumed:
        index, seed, recipe = r.args[1], r.args[7], r.args[3]
        assert seed == base_seed + index
        assert _recipe_seed(recipe) == seed
        assert Path(recipe).parent == out.resolve()
