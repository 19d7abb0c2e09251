"""`benchmarks/gpu.sh --device cpu --quick`: the one-shot GPU check runs, on the CPU, with only
torch, numpy and scipy importable (as on the bare GPU machine), so the script cannot rot."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bare_python(folder: Path) -> Path:
    """An interpreter that sees only torch, numpy, scipy and what torch itself requires: this
    python without its site-packages (-S), and a folder linking just those distributions."""
    from importlib.metadata import distribution
    from packaging.requirements import Requirement

    site = folder / "site"
    site.mkdir()
    todo, seen = ["torch", "numpy", "scipy"], set()
    while todo:
        dist = distribution(todo.pop())
        name = dist.metadata["Name"].lower()
        if name in seen:
            continue
        seen.add(name)
        for requirement in map(Requirement, dist.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
        for top in {Path(str(f)).parts[0] for f in dist.files if not str(f).startswith("..")}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (site / top).exists() and top != "__pycache__":
                (site / top).symlink_to(source)
    wrapper = folder / "python"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_gpu_check_runs_on_the_cpu_with_only_torch_numpy_and_scipy(tmp_path):
    python = bare_python(tmp_path)
    check = subprocess.run([str(python), "-c", "import pedalboard"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert "No module named 'pedalboard'" in check.stderr  # the project's other dependencies are gone
    env = {**os.environ, "PYTHON": str(python), "PYTHONPATH": str(tmp_path / "site")}
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), str(out), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Agreement, CPU float32 against cpu" in proc.stdout and "Targets (tiny size" in proc.stdout
    report = json.loads((out / "engine-cpu.json").read_text())

    (agreement,) = report["agreement"]
    assert agreement["logits_ok"] and agreement["logits_max_abs_diff"] == 0.0  # the CPU against itself
    assert agreement["tokens_equal_argmax"] == agreement["tokens_equal_sampled"] == 1.0
    assert agreement["batch_rows_equal_single_runs"] is True
    eager = report["targets"]["eager"]
    for case in (eager["x4"], eager["x1"], eager["throughput"]["2"]):
        assert 0 < case["tokens_s"] <= case["first_audible_s"] <= case["total_s"]
    assert eager["throughput"]["2"]["variations_per_s"] > 0
    assert report["targets"]["graph"] == {"skipped": "CUDA graphs need a CUDA device"}
    assert report["codec"]["samples_out"] == int(0.01 * 60 * 44100)
    assert report["first_job"]["first_job_s"] > 0 and report["first_job"]["load_s"] > 0
    assert report["attention"] == {"skipped": "FlexAttention is measured on CUDA only"}


def test_gpu_check_asks_for_its_output_folder():
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh")], capture_output=True, text=True)
    assert proc.returncode == 2 and "usage: bash benchmarks/gpu.sh OUTDIR" in proc.stderr
