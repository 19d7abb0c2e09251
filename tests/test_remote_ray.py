"""`vampbridge bounce --ray`: on a local Ray cluster with two CPU workers, the bounce equals the
same bounce run locally, file for file; it resumes like one; a worker killed mid-bounce loses
only its in-flight variation. One cluster for the module (Ray starts slowly on two cores)."""

import json
import os
import signal
from pathlib import Path

import pytest

from conftest import tone, write_wav

ray = pytest.importorskip("ray")

from bridge.cli import main  # noqa: E402

pytestmark = pytest.mark.slow
STEPS = ["--steps", "2", "--c2f-steps", "1"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             object_store_memory=100 * 2**20,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                       "VAMPBRIDGE_DATA_DIR": os.environ["VAMPBRIDGE_DATA_DIR"]}})
    yield
    ray.shutdown()


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "in").mkdir()
    write_wav(tmp_path / "in" / "a.wav", tone(0.5), 44100)
    write_wav(tmp_path / "in" / "b.wav", tone(0.6, freq_hz=110, channels=2), 48000)
    jobs = tmp_path / "in" / "jobs.json"
    jobs.write_text(json.dumps([{"source_path": "a.wav", "start_s": 0.1, "length_s": 0.3, "seed": 5}]))
    return [str(tmp_path / "in" / "a.wav"), str(tmp_path / "in" / "b.wav"), str(jobs)]


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}


def _comparable(recipe_path: Path) -> dict:
    recipe = json.loads(recipe_path.read_text())
    for key in ("created", "timings"):
        recipe.pop(key)
    recipe["request"].pop("output_dir")
    recipe["output"].pop("path")
    return recipe


def _assert_same_bounce(ray_out: Path, local_out: Path, n_wavs: int) -> None:
    ray_files, local_files = _files(ray_out), _files(local_out)
    assert sorted(ray_files) == sorted(local_files)
    assert len([n for n in ray_files if n.endswith(".wav")]) == n_wavs
    for name, path in ray_files.items():
        if name.endswith(".json"):
            assert _comparable(path) == _comparable(local_files[name]), name
            assert json.loads(path.read_text())["output"]["path"] == str(path.with_suffix(".wav"))
        else:  # WAV and tokens
            assert path.read_bytes() == local_files[name].read_bytes(), name


def test_a_ray_bounce_equals_a_local_bounce_file_for_file_and_resumes(inputs, tmp_path, tiny_models, capsys):
    common = ["-n", "3", "--seed", "1", "--model", str(tiny_models), *STEPS]
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    assert main(["bounce", *inputs, "-o", str(ray_out), *common, "--ray", "auto", "--ray-workers", "2"]) == 0
    captured = capsys.readouterr()
    assert "bounce on Ray (2 workers)" in captured.err and "100%" in captured.err
    assert captured.out.count("3 new, 0 kept") == 3
    assert main(["bounce", *inputs, "-o", str(local_out), *common]) == 0
    capsys.readouterr()
    _assert_same_bounce(ray_out, local_out, 9)

    before = {p: p.stat().st_mtime_ns for p in _files(ray_out).values()}
    lost = next(p for p in before if p.suffix == ".wav")
    os.remove(lost)
    assert main(["bounce", *inputs, "-o", str(ray_out), *common, "--ray", "auto", "--ray-workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "2 new, 1 kept" in out or "1 new, 2 kept" in out
    assert {p: p.stat().st_mtime_ns for p in before if p != lost and p.suffix == ".wav"} == \
        {p: t for p, t in before.items() if p != lost and p.suffix == ".wav"}
    _assert_same_bounce(ray_out, local_out, 9)


def test_a_worker_killed_mid_bounce_loses_only_its_variation(inputs, tmp_path, tiny_models):
    from bridge.cli import build_parser, collect_inputs, request_from_args
    from bridge.remote.ray_bounce import PlannedInput, RayBounce

    out = tmp_path / "ray"
    inputs = inputs[:1]
    argv = ["bounce", *inputs, "-o", str(out), "-n", "4", "--seed", "1", "--model", str(tiny_models), *STEPS]
    args = build_parser().parse_args(argv)
    planned = []
    for source, overrides in collect_inputs(args.inputs):
        request = request_from_args(args, source, **overrides)
        request.validate()
        planned.append(PlannedInput(str(source), request, Path(request.output_dir)))
    killed = []

    def kill_a_busy_worker(bounce):
        if not killed:
            pid = bounce.in_flight_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    bounce = RayBounce(model_dir=str(tiny_models), device="cpu", n_workers=2)
    outcomes = bounce.run(planned, on_written=kill_a_busy_worker)
    assert killed and bounce.n_retried >= 1
    assert [(o.error, o.n_new) for o in outcomes] == [(None, 4)]
    local_argv = ["bounce", *inputs, "-o", str(tmp_path / "local"), *argv[argv.index("-n"):]]
    assert main(local_argv) == 0
    _assert_same_bounce(out, tmp_path / "local", 4)


def test_a_ray_bounce_never_replaces_a_users_file_that_has_an_output_name(inputs, tmp_path, tiny_models, capsys):
    """As a local run (tests/test_security_data_outputs.py): the user's WAV and a recipe that
    looks like a finished render at the output names stay; the variation takes the `-2` names
    and equals the local bounce's."""
    common = [inputs[0], "-n", "1", "--seed", "4", "--model", str(tiny_models), *STEPS]
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    assert main(["bounce", "-o", str(local_out), *common]) == 0
    (local_wav,) = local_out.glob("*.wav")
    local_recipe = json.loads(local_wav.with_suffix(".json").read_text())
    ray_out.mkdir()
    (ray_out / local_wav.name).write_bytes(b"RIFF the user's own take")
    (ray_out / f"{local_wav.stem}.json").write_text(json.dumps({**local_recipe, "note": "mine"}))
    before = {p: p.read_bytes() for p in ray_out.iterdir()}
    capsys.readouterr()
    assert main(["bounce", "-o", str(ray_out), *common, "--ray", "auto", "--ray-workers", "1"]) == 0
    assert "1 new, 0 kept" in capsys.readouterr().out  # the user's look-alike is not taken for a render
    assert {p: p.read_bytes() for p in before} == before, "a user's file was modified"
    made = ray_out / f"{local_wav.stem}-2.wav"
    assert made.read_bytes() == local_wav.read_bytes()
    assert json.loads(made.with_suffix(".json").read_text())["output"]["path"] == str(made)
