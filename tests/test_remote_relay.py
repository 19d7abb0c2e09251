"""The relay (`vampbridge serve --remote`): REAPER's OSC service with the work done remotely.

End to end on loopback with tiny random weights: the files a job sent to the relay's OSC side
brings back equal a local run of the same request; a dropped connection and a remote restart
mid-job lose nothing and download nothing twice; a region is uploaded once."""

import json
import time
from pathlib import Path

import numpy as np
import pytest

from bridge.osc.client import OscClient
from remote_support import TOKEN, HttpBridge, HttpProcess, Relay, TcpProxy, free_port
from test_service_support import vamp_args, write_test_wav

FAST = json.dumps({"sampling_steps": 2, "c2f_sampling_steps": 1})
SLOW = json.dumps({"sampling_steps": 24, "c2f_sampling_steps": 2})
#: Recipe fields that say when and how long, not what: they differ between any two runs.
RUN_FIELDS = ("created", "timings")


def _results(client, job_id, timeout_s=120.0):
    done = client.wait_for("done", job_id, timeout_s=timeout_s)
    results = [r for r in client.drain() if r.name == "result" and r.id == job_id]
    return done, results


def _comparable(recipe_path: Path) -> dict:
    recipe = json.loads(Path(recipe_path).read_text())
    for key in RUN_FIELDS:
        recipe.pop(key)
    recipe["request"].pop("output_dir")
    recipe["output"].pop("path")
    return recipe


@pytest.fixture
def remote(tmp_path, tiny_models):
    with HttpBridge(tmp_path / "gpu-box", tiny_models) as b:
        yield b


def test_a_job_through_the_relay_gives_the_files_of_a_local_run(tmp_path, tiny_models, remote):
    from bridge.pipeline import Pipeline
    from bridge.request import VampRequest

    # a region in the middle of a longer stereo source: only it travels
    source = write_test_wav(tmp_path / "media" / "song.wav", seconds=1.5, channels=2)
    out = tmp_path / "project" / "renders"
    with Relay(tmp_path / "laptop", remote.url) as relay, \
            OscClient(port=relay.port, name="reaper") as c:
        args = list(vamp_args(source, n_variations=2, seed=7, output_dir=out, sampling=FAST,
                              fx="glue"))
        args[2], args[3] = 0.5, 0.4  # start_s, length_s
        rid = c.request("vamp", *args)
        assert c.wait_for("accepted", rid, timeout_s=30).args[1] == 0
        done, results = _results(c, rid)
        assert done.args[1:] == (2, 0, "done")
        # same job again (REAPER vamping the same item twice): nothing is uploaded or generated
        rid2 = c.request("vamp", *args)
        done2, results2 = _results(c, rid2)
        assert done2.args[1:] == (2, 0, "done")
    assert relay.pipeline.stats["uploads"] == 1
    region_bytes = round(0.4 * 44100) * 2 * 4  # 0.4 s of stereo float32: the region only
    assert region_bytes < relay.pipeline.stats["upload_bytes"] < region_bytes + 1024
    assert all(n == 1 for n in relay.pipeline.stats["downloads"].values())
    assert sorted(r.args[2] for r in results2) == sorted(r.args[2] for r in results)

    local_out = tmp_path / "local"
    local = Pipeline(model_dir=tiny_models, device="cpu").run(VampRequest(
        source_path=str(source), start_s=0.5, length_s=0.4, n_variations=2, seed=7,
        sampling=json.loads(FAST), fx="glue", output_dir=str(local_out),
        item_guid="{item}", take_guid="{take}"))
    relayed = {Path(r.args[2]).name: r for r in results}
    assert sorted(relayed) == sorted(Path(v.audio_path).name for v in local)
    for v in local:
        r = relayed[Path(v.audio_path).name]
        assert (r.args[1], r.args[6], r.args[7]) == (v.index, v.take_name, v.seed)
        assert Path(r.args[2]).parent == out.resolve()
        assert Path(r.args[2]).read_bytes() == Path(v.audio_path).read_bytes()
        assert _comparable(r.args[3]) == _comparable(v.recipe_path)
        token_file = json.loads(Path(v.recipe_path).read_text())["tokens"]
        with np.load(out / token_file) as a, np.load(local_out / token_file) as b:
            assert all(np.array_equal(a[k], b[k]) for k in ("codes", "masked", "original"))


def test_a_dropped_connection_mid_job_loses_nothing_and_downloads_nothing_twice(
        tmp_path, remote):
    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.5)
    proxy = TcpProxy(remote.http.port)
    try:
        with Relay(tmp_path / "laptop", f"http://127.0.0.1:{proxy.port}") as relay, \
                OscClient(port=relay.port, name="reaper") as c:
            rid = c.request("vamp", *vamp_args(source, n_variations=4, seed=3, sampling=SLOW))
            first = c.wait_for("result", rid, timeout_s=120)
            proxy.drop()  # the event stream (and anything else in flight) is cut
            c.wait_for("progress", rid, timeout_s=60)
            proxy.drop()
            done, results = _results(c, rid)
    finally:
        proxy.close()
    assert proxy.n_dropped >= 1
    assert done.args[1:] == (4, 0, "done")
    assert sorted(r.args[1] for r in [first, *results]) == [0, 1, 2, 3]
    downloads = relay.pipeline.stats["downloads"]
    assert all(n == 1 for n in downloads.values()), downloads
    assert len([k for k in downloads if k.endswith("/audio")]) == 4
    for r in [first, *results]:
        assert Path(r.args[2]).is_file() and Path(r.args[3]).is_file()


def test_a_remote_restart_mid_job_is_recovered_and_the_job_finishes(tmp_path, tiny_models):
    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.5)
    port = free_port()
    gpu_data = tmp_path / "gpu-box"
    first_life = HttpProcess(gpu_data, tiny_models, port)
    second_life = None
    try:
        with Relay(tmp_path / "laptop", f"http://127.0.0.1:{port}", token=TOKEN) as relay, \
                OscClient(port=relay.port, name="reaper") as c:
            rid = c.request("vamp", *vamp_args(source, n_variations=6, seed=9, sampling=SLOW))
            first = c.wait_for("result", rid, timeout_s=180)
            first_life.kill()  # SIGKILL: the remote's job is left running in its store
            second_life = HttpProcess(gpu_data, tiny_models, port)
            done, results = _results(c, rid, timeout_s=240)
            # REAPER's view: one job, every variation once, all recoverable through pending
            pid = c.request("pending", "reaper:test")
            assert c.wait_for("pending", pid).args[1] == 6
    finally:
        first_life.stop()
        if second_life is not None:
            second_life.stop()
    assert done.args[1:] == (6, 0, "done")
    assert sorted(r.args[1] for r in [first, *results]) == list(range(6))
    assert [r.args[7] for r in sorted([first, *results], key=lambda r: r.args[1])] == list(range(9, 15))
    downloads = relay.pipeline.stats["downloads"]
    assert all(n == 1 for n in downloads.values()), downloads
    assert relay.pipeline.stats["uploads"] == 1


def test_rerender_through_the_relay_uses_the_local_recipe(tmp_path, remote):
    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.4)
    out = tmp_path / "project" / "renders"
    with Relay(tmp_path / "laptop", remote.url) as relay, \
            OscClient(port=relay.port, name="reaper") as c:
        rid = c.request("vamp", *vamp_args(source, seed=21, output_dir=out, sampling=FAST))
        _, (first,) = _results(c, rid)
        rid2 = c.request("rerender", "reaper:test", first.args[3], "lofi", -1, "", "{i}", "{t}")
        done, (again,) = _results(c, rid2)
    assert done.args[1:] == (1, 0, "done")
    assert again.args[7] == 21 and again.args[2] != first.args[2]
    assert again.args[6] == first.args[6] + " lofi"  # named after its new chain, as locally
    assert Path(again.args[2]).parent == out.resolve()
    recipe = json.loads(Path(again.args[3]).read_text())
    assert recipe["input"]["path"] == str(source.resolve()) and recipe["fx"] != {}
    assert json.loads(Path(first.args[3]).read_text())["fx"] != recipe["fx"]


def test_a_job_the_remote_refuses_fails_locally_with_its_code(tmp_path, tiny_models):
    source = write_test_wav(tmp_path / "media" / "long.wav", seconds=2.0)
    with HttpBridge(tmp_path / "gpu-box", tiny_models, max_upload_bytes=10_000) as small, \
            Relay(tmp_path / "laptop", small.url) as relay, \
            OscClient(port=relay.port, name="reaper") as c:
        rid = c.request("vamp", *vamp_args(source, sampling=FAST))
        error = c.wait_for("error", rid, timeout_s=60)
        done = c.wait_for("done", rid, timeout_s=30)
    assert error.args[1] == "too_large" and "limit" in error.args[2]
    assert done.args[1:] == (0, 1, "failed")


def test_cancel_at_the_relay_cancels_the_remote_job(tmp_path, remote):
    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.5)
    with Relay(tmp_path / "laptop", remote.url) as relay, \
            OscClient(port=relay.port, name="reaper") as c:
        rid = c.request("vamp", *vamp_args(source, n_variations=6, sampling=SLOW))
        c.wait_for("progress", rid, where=lambda r: r.args[2] != "loading", timeout_s=60)
        c.wait_for("cancelled", c.request("cancel", rid))
        done = c.wait_for("done", rid, timeout_s=60)
    assert done.args[3] == "cancelled"
    (remote_job,) = [j for j in remote.store.jobs() if j.client == "relay-test"]
    for _ in range(100):  # the remote stops at its next sampling step
        if remote.store.get_job(remote_job.job_id).state == "cancelled":
            break
        time.sleep(0.1)
    assert remote.store.get_job(remote_job.job_id).state == "cancelled"
    assert remote.store.get_job(remote_job.job_id).n_finished < 6
    assert not list((tmp_path / "laptop" / "relay").glob("*.wav"))  # no region left behind


def test_vampbridge_serve_remote_is_the_relay(tmp_path, remote):
    import os
    import re
    import subprocess
    import sys

    from remote_support import REPO

    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.3)
    env = {**os.environ, "PYTHONPATH": str(REPO), "VAMPBRIDGE_DATA_DIR": str(tmp_path / "laptop")}
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--port", "0", "--remote",
                             remote.url, "--token", TOKEN, "--data-dir", str(tmp_path / "laptop")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = next(int(m.group(1)) for line in proc.stdout
                    if (m := re.search(r"listening on [\d.]+:(\d+)", line)))
        with OscClient(port=port, name="stranger", token="") as stranger:  # REAPER's side keeps the secret
            with pytest.raises(TimeoutError):
                stranger.wait_for("hello", stranger.request("hello"), timeout_s=1.0)
        from bridge.secret import read_secret

        secret = read_secret(tmp_path / "laptop" / "secret")  # what a client of this data folder reads
        with OscClient(port=port, name="reaper", token=secret) as c:
            rid = c.request("vamp", *vamp_args(source, sampling=FAST, output_dir=tmp_path / "out"))
            done, (result,) = _results(c, rid)
            hello = c.wait_for("hello", c.request("hello"))
    finally:
        proc.terminate()
        proc.wait(20)
    assert done.args[1:] == (1, 0, "done") and Path(result.args[2]).is_file()
    assert hello.args[3] == f"remote cpu at {remote.url}"


def test_a_relay_restart_mid_job_resumes_the_same_remote_job(tmp_path, remote):
    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.5)
    laptop = tmp_path / "laptop"
    with Relay(laptop, remote.url) as relay, OscClient(port=relay.port, name="reaper") as c:
        rid = c.request("vamp", *vamp_args(source, client="reaper:p", n_variations=3, seed=2,
                                           sampling=SLOW))
        c.wait_for("progress", rid, where=lambda r: r.args[2] == "coarse", timeout_s=120)
    # the relay stopped while the remote generated: the remote job is cancelled, not lost
    with Relay(laptop, remote.url) as relay, OscClient(port=relay.port, name="reaper") as c:
        status = json.loads(c.wait_for("status", c.request("status", rid)).args[1])[0]
        assert status["state"] == "interrupted"
        c.wait_for("accepted", c.request("resume", rid))
        done, results = _results(c, rid, timeout_s=180)
    assert done.args[1:] == (3, 0, "done")
    assert sorted(r.args[1] for r in results) == [0, 1, 2]
    assert [r.args[7] for r in sorted(results, key=lambda r: r.args[1])] == [2, 3, 4]
    remote_jobs = [j for j in remote.store.jobs() if j.client == "relay-test"]
    assert len(remote_jobs) == 1 and remote_jobs[0].state == "done"  # the same job, resumed
    assert all(n == 1 for n in relay.pipeline.stats["downloads"].values())


def test_the_relay_never_replaces_a_users_file_that_has_an_output_name(tmp_path, remote):
    """As a local run (tests/test_security_data_outputs.py): a WAV, a recipe that looks like a
    finished render and a tokens file of the user's at the output names, and a link planted at
    the next name, stay as they are; the relayed variation takes the next free names."""
    source = write_test_wav(tmp_path / "media" / "loop.wav", seconds=0.4)
    project = tmp_path / "project"
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    with Relay(tmp_path / "laptop", remote.url) as relay, \
            OscClient(port=relay.port, name="reaper") as c:
        _, (clean,) = _results(c, c.request("vamp", *vamp_args(source, seed=13, output_dir=tmp_path / "clean",
                                                                sampling=FAST)))
        clean_wav, clean_recipe = Path(clean.args[2]), Path(clean.args[3])
        recipe = json.loads(clean_recipe.read_text())
        (project / "tokens").mkdir(parents=True)
        (project / clean_wav.name).write_bytes(b"RIFF the user's own take")
        (project / clean_recipe.name).write_text(json.dumps({**recipe, "note": "mine"}))
        (project / recipe["tokens"]).write_bytes(b"the user's own tokens")
        stem = clean_wav.stem
        (project / f"{stem}-2.wav").symlink_to(victim)
        before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}

        _, (relayed,) = _results(c, c.request("vamp", *vamp_args(source, seed=13, output_dir=project,
                                                                  sampling=FAST)))
        _, (again,) = _results(c, c.request("vamp", *vamp_args(source, seed=13, output_dir=project,
                                                                sampling=FAST)))
    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before, "a user's file was modified"
    assert victim.read_text() == "precious" and (project / f"{stem}-2.wav").is_symlink()
    audio, recipe_path = Path(relayed.args[2]), Path(relayed.args[3])
    assert (audio.name, recipe_path.name) == (f"{stem}-3.wav", f"{stem}-3.json")
    assert audio.read_bytes() == clean_wav.read_bytes()
    written = json.loads(recipe_path.read_text())
    assert written["output"]["path"] == str(audio) and written["fingerprint"] == recipe["fingerprint"]
    assert written["tokens"] != recipe["tokens"]  # the user's tokens file keeps its name
    with np.load(project / written["tokens"]) as a, np.load(clean_wav.parent / recipe["tokens"]) as b:
        assert all(np.array_equal(a[k], b[k]) for k in ("codes", "masked", "original"))
    # the third run finds the relay's own render there (not the user's), without downloading it
    assert (again.args[2], again.args[3]) == (relayed.args[2], relayed.args[3])
    audio_downloads = [n for key, n in relay.pipeline.stats["downloads"].items() if key.endswith("/audio")]
    assert audio_downloads == [2]  # the clean folder and the project, not a third time
