"""Engine benchmark: how long a vamp takes, how fast one sampling step is, and what the codec costs.

    .venv/bin/python benchmarks/engine.py --quick          # small models, 5 s, 2 steps (make bench)
    .venv/bin/python benchmarks/engine.py                  # small + full, 5/10/60 s, 1 and 4 variations
    .venv/bin/python benchmarks/engine.py --sizes full --durations 10 --variations 4 --steps 36 \\
        --device cuda                                      # the GPU headline number

Models are random weights built in memory at the released sizes (`random_weights.model_configs`),
so nothing is downloaded or written besides the results file; timings do not depend on the weight
values. Every measurement runs in its own subprocess, so peak memory is that case's alone:
Linux RSS high-water mark (reset after the models are built and warmed up) on the CPU,
`torch.cuda.max_memory_allocated` on CUDA. Timings: `time.perf_counter`, one warm-up run,
then the median of `--repeats` runs (a single run for cases longer than `--long-s`).

Measured (see benchmarks/README.md for what each number means):
- vamp cases: coarse vamp + coarse-to-fine + decode for a clip at N variations, through the
  public `Interface.vamp` / `Interface.decode_codes`; seconds per variation and tokens per second;
- step cost: seconds per coarse sampling step, full-size coarse model, 10 s clip, batch 1 and 4;
- codec: encode and decode of a long file (10 minutes by default) with the full-size codec.
Results: a table on stdout and `benchmarks/results/engine-<device>.json`.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MASK_PROMPT = dict(periodic_prompt=7, upper_codebook_mask=3)  # a common VampNet prompt


# --- memory ---------------------------------------------------------------------------------------


class PeakMemory:
    """Peak memory of the code run between `reset()` and `read()`, in MB.

    CPU (Linux): the process RSS high-water mark (VmHWM), reset through /proc/self/clear_refs, so
    the peak covers only the measured region; elsewhere the lifetime maximum RSS (ru_maxrss).
    CUDA: torch's allocator peak. `extra_mb` is the peak minus what was resident at `reset()`.
    """

    def __init__(self, device):
        self.device = device
        self.base_mb = 0.0
        self.method = ""

    def reset(self):
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base_mb = torch.cuda.memory_allocated() / 2**20
            self.method = "torch.cuda.max_memory_allocated"
            return
        self.base_mb = _status_mb("VmRSS") or _maxrss_mb()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.method = "VmHWM (reset after setup)"
        except OSError:
            self.method = "ru_maxrss (lifetime peak)"

    def read(self) -> dict:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak = _status_mb("VmHWM") if self.method.startswith("VmHWM") else _maxrss_mb()
        return {"base_mb": round(self.base_mb, 1), "peak_mb": round(peak, 1),
                "extra_mb": round(peak - self.base_mb, 1), "method": self.method}


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _maxrss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, kB on Linux


# --- models built in memory -----------------------------------------------------------------------


def random_model(cls, config, generator):
    """A module of `cls(config)` with the seeded random weights `make_random` would write."""
    import torch

    from bridge.engine.random_weights import _randomise

    with torch.device("meta"):  # skip the default initialisation: every weight is overwritten
        model = cls(config)
    return _randomise(model.to_empty(device="cpu"), generator).eval()


def build_interface(size: str, device, seed: int = 0, precision: str = "fp32"):
    """An `Interface` on random weights, set up as `Interface.__init__` does after loading files."""
    import torch

    from bridge.engine import Interface
    from bridge.engine.codec import Codec
    from bridge.engine.random_weights import model_configs
    from bridge.engine.transformer import VampNetTransformer

    codec_config, coarse_config, c2f_config = model_configs(size)
    generator = torch.Generator().manual_seed(seed)
    codec = random_model(Codec, codec_config, generator)
    coarse = random_model(VampNetTransformer, coarse_config, generator)
    c2f = random_model(VampNetTransformer, c2f_config, generator)
    # compile: None reads VAMPBRIDGE_COMPILE (set by --compile)
    return Interface.from_modules(codec, coarse, c2f, device=device, precision=precision)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


# --- the measurements (each runs in a child process) ----------------------------------------------


def measure_vamp(size: str, duration_s: float, variations: int, steps: int, c2f_steps: int,
                 device, repeats: int, long_s: float, precision: str = "fp32") -> dict:
    """Coarse vamp + coarse-to-fine + decode of a `duration_s` clip at `variations` variations."""
    import torch

    interface = build_interface(size, device, precision=precision)
    frames = interface.s2t(duration_s)
    generator = torch.Generator().manual_seed(1)
    codes = torch.randint(0, interface.codec.codebook_size, (1, interface.codec.n_codebooks, frames),
                          generator=generator).to(device)
    mask = interface.build_mask(codes, **MASK_PROMPT, seed=0)
    seeds = list(range(variations))

    def run(coarse_steps, fine_steps, decode_frames=None):
        marks = {}

        def on_step(stage, fraction):
            marks[stage] = time.perf_counter()  # the last call of a stage marks its end

        _sync(device)
        start = time.perf_counter()
        out = interface.vamp(codes, mask, batch_size=variations, seeds=seeds, sampling_steps=coarse_steps,
                             c2f_sampling_steps=fine_steps, on_step=on_step)
        _sync(device)
        vamped = time.perf_counter()
        with torch.inference_mode():
            interface.decode_codes(out[..., :decode_frames] if decode_frames else out)
        _sync(device)
        end = time.perf_counter()
        coarse_end = marks.get("coarse", start)
        return {"coarse_s": coarse_end - start, "c2f_s": vamped - coarse_end, "decode_s": end - vamped,
                "total_s": end - start}

    # Warm-up: every shape of the real run (the step count changes no shape), a short decode.
    run(1, 1, decode_frames=min(frames, 2 * interface.codec.chunk_frames))
    memory = PeakMemory(device)
    memory.reset()
    runs = []
    for _ in range(repeats):
        runs.append(run(steps, c2f_steps))
        if runs[-1]["total_s"] > long_s:
            break
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    generated = variations * frames * interface.codec.n_codebooks
    return {
        "size": size, "duration_s": duration_s, "frames": frames, "variations": variations,
        "precision": precision, "agreement": interface.precision_reports or None, "coarse_steps": steps, "c2f_steps": c2f_steps, "repeats": len(runs),
        **{key: round(value, 3) for key, value in med.items()},
        "s_per_variation": round(med["total_s"] / variations, 3),
        "tokens_per_s": round(generated / (med["coarse_s"] + med["c2f_s"]), 1),
        "memory": memory.read(),
    }


def measure_step(batch: int, duration_s: float, steps: int, device, repeats: int, precision: str = "fp32") -> dict:
    """Seconds per coarse sampling step: full-size coarse model, `batch` rows of a `duration_s` clip."""
    import torch

    from bridge.engine.codec import CodecConfig
    from bridge.engine.precision import use_bf16
    from bridge.engine.prompts import MaskRecipe
    from bridge.engine.random_weights import model_configs
    from bridge.engine.sampler import SamplingOptions, generate
    from bridge.engine.transformer import VampNetTransformer

    codec_config = CodecConfig()
    _, coarse_config, _ = model_configs("full")
    generator = torch.Generator().manual_seed(0)
    model = random_model(VampNetTransformer, coarse_config, generator).to(device)
    codebooks = [torch.randn(codec_config.codebook_size, codec_config.codebook_dim, generator=generator)
                 .to(device) for _ in range(coarse_config.n_codebooks)]
    model.prepare(codebooks)
    frames = -(-int(duration_s * codec_config.sample_rate) // codec_config.hop_length)  # ceil
    shape = (batch, coarse_config.n_codebooks, frames)
    codes = torch.randint(0, codec_config.codebook_size, shape, generator=generator).to(device)
    mask = MaskRecipe(**MASK_PROMPT).build(shape, torch.Generator().manual_seed(0)).to(device)
    agreement = use_bf16(model) if precision == "bf16" else None

    def run(n_steps):  # -> (wall seconds, process CPU seconds) per step
        gens = [torch.Generator(device=device).manual_seed(k) for k in range(batch)]
        _sync(device)
        cpu, start = _cpu_s(), time.perf_counter()
        with torch.inference_mode():
            generate(model, codes, mask, SamplingOptions(sampling_steps=n_steps), gens)
        _sync(device)
        return (time.perf_counter() - start) / n_steps, (_cpu_s() - cpu) / n_steps

    run(1)
    runs = [run(steps) for _ in range(repeats)]
    per_step = [wall for wall, _ in runs]
    median = statistics.median(per_step)
    return {"model": "coarse full (20 layers, d=1280, 20 heads)", "duration_s": duration_s, "frames": frames,
            "batch": batch, "steps_per_run": steps, "repeats": repeats,
            "s_per_step": round(median, 3), "s_per_step_min": round(min(per_step), 3),
            "s_per_step_per_variation": round(median / batch, 3),
            # CPU seconds of all threads: less sensitive to other load on the machine than wall time
            "cpu_s_per_step": round(statistics.median(cpu for _, cpu in runs), 3),
            "masked_fraction": round(float(mask.float().mean()), 3), "precision": precision,
            "agreement": agreement}


def measure_codec(minutes: float, device) -> dict:
    """Encode and decode `minutes` of audio with the full-size codec (chunked, as in use)."""
    import torch

    from bridge.engine.codec import Codec
    from bridge.engine.random_weights import model_configs

    codec_config, _, _ = model_configs("full")
    codec = random_model(Codec, codec_config, torch.Generator().manual_seed(0)).to(device).prepare()
    n = int(minutes * 60 * codec.sample_rate)
    t = torch.arange(n, dtype=torch.float32) / codec.sample_rate
    audio = (0.3 * torch.sin(2 * torch.pi * 220.0 * t) * torch.exp(-3 * (t % 0.5)))[None, None].to(device)
    del t
    with torch.inference_mode():  # warm-up on two chunks
        short = audio[..., :2 * codec.chunk_frames * codec.hop_length]
        codec.decode_codes(codec.encode_codes(short))
    memory = PeakMemory(device)
    memory.reset()
    with torch.inference_mode():
        _sync(device)
        start = time.perf_counter()
        codes = codec.encode_codes(audio)
        _sync(device)
        encoded = time.perf_counter()
        out = codec.decode_codes(codes, length=n)
        _sync(device)
        decoded = time.perf_counter()
    assert out.shape[-1] == n
    return {"minutes": minutes, "chunk_frames": codec.chunk_frames,
            "encode_s": round(encoded - start, 2), "decode_s": round(decoded - encoded, 2),
            "encode_x_realtime": round(minutes * 60 / (encoded - start), 2),
            "decode_x_realtime": round(minutes * 60 / (decoded - encoded), 2),
            "memory": memory.read()}


MEASUREMENTS = {"vamp": measure_vamp, "step": measure_step, "codec": measure_codec}


def child_main(spec: dict):
    import torch

    device = torch.device(spec.pop("device"))
    threads = spec.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    result = MEASUREMENTS[spec.pop("kind")](device=device, **spec)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(kind: str, device: str, threads: int, timeout_s: float, **params) -> dict:
    spec = {"kind": kind, "device": device, "threads": threads, **params}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s", **params}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit code {proc.returncode}: {' | '.join(tail)}", **params}


# --- the report -----------------------------------------------------------------------------------


def machine_info(device: str, threads: int) -> dict:
    import torch

    info = {"device": device, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_name(), "cpu_count": os.cpu_count(),
            "threads": threads or torch.get_num_threads(), "onednn_linear": _onednn_linear_used()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    info["git_commit"] = git_commit()
    return info


def git_commit() -> str:
    """The short commit the benchmark ran at ("" outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True).stdout.strip()
    except OSError:
        return ""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _onednn_linear_used() -> bool:
    from bridge.engine import transformer

    return getattr(transformer, "_ONEDNN_LINEAR", None) is not None


def print_table(title: str, columns: list, rows: list):
    if not rows:
        return
    print(f"\n{title}")
    widths = [max(len(name), *(len(str(row.get(key, ""))) for row in rows)) for name, key in columns]
    print("  ".join(name.rjust(w) for (name, _), w in zip(columns, widths)))
    for row in rows:
        if "error" in row:
            print("  ".join(str(row.get(key, "")).rjust(w) for (_, key), w in zip(columns[:3], widths)),
                  " ERROR:", row["error"])
            continue
        print("  ".join(str(row.get(key, "")).rjust(w) for (_, key), w in zip(columns, widths)))


def flatten_memory(row: dict) -> dict:
    memory = row.get("memory") or {}
    return {**row, "peak_mb": memory.get("peak_mb", ""), "extra_mb": memory.get("extra_mb", "")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small models, a 5 s clip, 1 and 4 variations, 2 steps; no step-cost or codec runs")
    p.add_argument("--sizes", nargs="*", default=["small", "full"], choices=["tiny", "small", "full"])
    p.add_argument("--durations", nargs="*", type=float, default=[5.0, 10.0, 60.0], metavar="S")
    p.add_argument("--variations", nargs="*", type=int, default=[1, 4], metavar="N")
    p.add_argument("--steps", type=int, default=None,
                   help="coarse sampling steps (default: 12, the reference library's; 36 on CUDA)")
    p.add_argument("--c2f-steps", type=int, default=2)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the engine's pick)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (0: torch's default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--long-s", type=float, default=60.0, help="a case whose first run exceeds this runs once")
    p.add_argument("--step-batches", nargs="*", type=int, default=[1, 4],
                   help="batches for the per-step cost (none: skip)")
    p.add_argument("--step-steps", type=int, default=4, help="sampling steps per timed per-step run")
    p.add_argument("--codec-minutes", type=float, default=10.0, help="length of the codec test (0: skip)")
    p.add_argument("--timeout-s", type=float, default=7200.0, help="per case")
    p.add_argument("--out", type=Path, default=None, help="results file (default: results/engine-<device>.json)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="of the transformers' projections (bf16: CUDA, or a CPU with AVX512_BF16 / AMX)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the transformers (VAMPBRIDGE_COMPILE=1); the warm-up run compiles")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):  # new defaults; explicit options still win
        p.set_defaults(sizes=["small"], durations=[5.0], steps=2, step_batches=[], codec_minutes=0.0)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    if args.compile:
        os.environ["VAMPBRIDGE_COMPILE"] = "1"  # the measuring subprocesses inherit it
    sys.path.insert(0, str(ROOT))
    from bridge.engine import pick_device

    device = str(pick_device(args.device))
    steps = args.steps or (36 if device.startswith("cuda") else 12)
    threads = args.threads if not device.startswith("cuda") else 0
    report = {"machine": machine_info(device, threads), "arguments": {k: (str(v) if isinstance(v, Path) else v)
                                                                     for k, v in vars(args).items() if k != "child"},
              "vamp": [], "step": [], "codec": None}
    print(f"engine benchmark on {device} ({report['machine']['cpu']}, {report['machine']['threads']} threads"
          f"{', ' + report['machine']['gpu'] if 'gpu' in report['machine'] else ''}, precision {args.precision})")

    for size in args.sizes:
        for duration_s in args.durations:
            for variations in args.variations:
                row = run_child("vamp", device, threads, args.timeout_s, size=size, duration_s=duration_s,
                                variations=variations, steps=steps, c2f_steps=args.c2f_steps,
                                repeats=args.repeats, long_s=args.long_s, precision=args.precision)
                report["vamp"].append(row)
                print(f"  {size} {duration_s:g} s x{variations}: "
                      + (row["error"] if "error" in row else f"{row['total_s']} s total, "
                         f"{row['s_per_variation']} s/variation, peak +{row['memory']['extra_mb']} MB"), flush=True)
    for batch in args.step_batches:
        row = run_child("step", device, threads, args.timeout_s, batch=batch, duration_s=10.0,
                        steps=args.step_steps, repeats=args.repeats, precision=args.precision)
        report["step"].append(row)
        print(f"  step cost, batch {batch}: " + (row["error"] if "error" in row else f"{row['s_per_step']} s/step"),
              flush=True)
    if args.codec_minutes > 0:
        report["codec"] = run_child("codec", device, threads, args.timeout_s, minutes=args.codec_minutes)

    print_table(f"Vamp: coarse ({steps} steps) + coarse-to-fine ({args.c2f_steps} steps) + decode; "
                "median seconds; memory beyond the loaded models", [
                    ("size", "size"), ("clip s", "duration_s"), ("vars", "variations"), ("coarse s", "coarse_s"),
                    ("c2f s", "c2f_s"), ("decode s", "decode_s"), ("total s", "total_s"),
                    ("s/variation", "s_per_variation"), ("tokens/s", "tokens_per_s"), ("peak MB", "peak_mb"),
                    ("+MB", "extra_mb"), ("runs", "repeats")], [flatten_memory(r) for r in report["vamp"]])
    if report["step"]:
        print_table("Coarse sampling step, full-size coarse model, 10 s clip (575 frames)", [
            ("batch", "batch"), ("s/step", "s_per_step"), ("min", "s_per_step_min"),
            ("s/step/variation", "s_per_step_per_variation"), ("cpu s/step", "cpu_s_per_step"),
            ("runs", "repeats")], report["step"])
    if report["codec"]:
        print_table("Codec, full size, chunked", [
            ("minutes", "minutes"), ("encode s", "encode_s"), ("decode s", "decode_s"),
            ("enc x rt", "encode_x_realtime"), ("dec x rt", "decode_x_realtime"), ("peak MB", "peak_mb"),
            ("+MB", "extra_mb")], [flatten_memory(report["codec"])])
    if device.startswith("cuda"):
        headline = next((r for r in report["vamp"] if r.get("size") == "full" and r.get("duration_s") == 10.0
                         and r.get("variations") == 4 and "error" not in r), None)
        if headline:
            print(f"\nGPU headline: full size, 10 s x 4 variations, {steps} coarse steps + c2f + decode: "
                  f"{headline['total_s']} s (target < 1.5 s on an H100)")
            report["gpu_headline_s"] = headline["total_s"]

    out = args.out or RESULTS_DIR / f"engine-{device.replace(':', '')}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
