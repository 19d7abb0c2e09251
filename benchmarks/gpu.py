"""One-shot GPU check (issue 15): CUDA against the CPU first, then every GPU target, timed.

    bash benchmarks/gpu.sh OUTDIR                       # on the GPU machine: writes OUTDIR/engine-cuda.json
    bash benchmarks/gpu.sh OUTDIR --device cpu --quick  # the same code on the CPU, tiny models (a test runs it)

Needs only python3 with torch, numpy and scipy, and this checkout (the engine imports nothing
else). Everything runs on random weights at the released sizes, built in memory. A time budget
(`--budget-s`, 420 s by default, under the 8 minutes allowed) skips what no longer fits, and
says so in the table; partial results are written after every section.

1. Agreement (tiny and full size; `--quick`: tiny): the same weights on the CPU (float32) and on
   the device: the head's logits on one grid (largest difference against LOGIT_TOLERANCE, and the
   bf16 agreement check: per-cell top-1 agreement and KL), then `vamp` tokens with deterministic
   sampling (argmax, no mask noise) and with sampling (the draws are the same on every device:
   CPU generators), as the fraction of equal tokens; whether batch rows equal single runs there.
2. Targets, each with the eager step, the compiled step (torch.compile) and the CUDA-graph
   step (`bridge.engine.graphs`): 10 s x 4 variations and x 1, 36 coarse + 2 c2f steps + decode,
   end to end; the time to the first decoded variation of a 4-variation job; bounce throughput
   (variations per second over batch sizes); peak memory. Then the codec on a 10-minute file, the
   first job after start (a fresh process: import, load from files, warm-up, first result), and
   one layer's attention with the T5 bias in bf16: SDPA with an additive mask against
   FlexAttention with the bias as a score modification (CUDA only).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import torch  # noqa: E402

from engine import build_interface, git_commit  # noqa: E402  (benchmarks/engine.py: random weights in memory)

# CUDA float32 against CPU float32 logits: the largest difference allowed, relative to the
# logits' standard deviation (different summation orders in 20 layers; TF32 is off for matmuls).
LOGIT_TOLERANCE = 1e-3
PROMPT = dict(periodic_prompt=7, upper_codebook_mask=3)
VARIANTS = ("eager", "graph", "compiled")


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def random_codes(interface, frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, interface.codec.codebook_size, (1, interface.codec.n_codebooks, frames), generator=g)


# --- 1. agreement ---------------------------------------------------------------------------------


def agreement(size: str, device, frames: int, steps: int) -> dict:
    """The same random weights on the CPU and on `device`: logits, then tokens."""
    from bridge.engine.precision import bf16_support, logits_agreement

    cpu = build_interface(size, torch.device("cpu"))
    dev = build_interface(size, device)
    codes = random_codes(cpu, frames)
    mask = cpu.build_mask(codes, **PROMPT, seed=0)
    grid = codes[:, :cpu.coarse.n_codebooks].masked_fill(mask[:, :cpu.coarse.n_codebooks].bool(), cpu.coarse.mask_token)
    with torch.inference_mode():
        ref = cpu.coarse.cell_logits(cpu.coarse.hidden(grid)).double()
        got = dev.coarse.cell_logits(dev.coarse.hidden(grid.to(device))).double().cpu()
    diff = float((ref - got).abs().max())
    std = float(ref.std())
    row = {"size": size, "frames": frames, "logits_max_abs_diff": diff, "logits_std": std,
           "logits_tolerance": LOGIT_TOLERANCE * std, "logits_ok": diff <= LOGIT_TOLERANCE * std,
           "top1_agreement": round(float((ref.argmax(-1) == got.argmax(-1)).double().mean()), 4)}
    reason = bf16_support(device)
    row["bf16_check"] = logits_agreement(dev.coarse, grid.to(device)) if reason is None else f"skipped: {reason}"

    def tokens(interface, **options):
        return interface.vamp(codes, mask, batch_size=2, seeds=[3, 4], sampling_steps=steps, c2f_sampling_steps=2,
                              **options).cpu()

    deterministic = dict(sample_cutoff=-1.0, mask_temperature=0.0)
    for name, options in (("argmax", deterministic), ("sampled", {})):
        a, b = tokens(cpu, **options), tokens(dev, **options)
        row[f"tokens_equal_{name}"] = round(float((a == b).double().mean()), 4)
    batch = tokens(dev)
    single = torch.cat([dev.vamp(codes, mask, seeds=[s], sampling_steps=steps, c2f_sampling_steps=2).cpu()
                        for s in (3, 4)])
    row["batch_rows_equal_single_runs"] = bool(torch.equal(batch, single))
    return row


# --- 2. targets -----------------------------------------------------------------------------------


def step_function(variant: str, device):
    from bridge.engine.graphs import CompiledStep, CudaGraphStep

    if variant == "eager":
        return None
    if variant == "compiled":
        return CompiledStep()
    if device.type != "cuda":
        raise RuntimeError("CUDA graphs need a CUDA device")
    return CudaGraphStep()


def vamp_case(interface, codes, mask, variations: int, steps: int, repeats: int, warmup: bool = True) -> dict:
    """End to end, tokens in and audio out: coarse, coarse-to-fine, decode; the first variation's
    audio is decoded first, so `first_audible_s` is when a player could start."""
    device = interface.device
    seeds = list(range(variations))

    def once():
        marks = {}
        sync(device)
        start = time.perf_counter()
        out = interface.vamp(codes, mask, batch_size=variations, seeds=seeds, sampling_steps=steps,
                             c2f_sampling_steps=2)
        sync(device)
        marks["tokens_s"] = time.perf_counter() - start
        with torch.inference_mode():
            interface.decode_codes(out[:1])
            sync(device)
            marks["first_audible_s"] = time.perf_counter() - start
            if variations > 1:
                interface.decode_codes(out[1:])
        sync(device)
        marks["total_s"] = time.perf_counter() - start
        return marks

    # warm-up: every shape of the timed runs (captures, compiles)
    warm_s = timed(device, once)[0] if warmup else 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    runs = [once() for _ in range(repeats)]
    row = {key: round(statistics.median(r[key] for r in runs), 4) for key in runs[0]}
    row.update(variations=variations, steps=steps, repeats=repeats, warmup_s=round(warm_s, 2))
    if device.type == "cuda":
        row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def targets(size: str, device, precision: str, clip_s: float, steps: int, repeats: int, batches,
            budget: Budget, report: dict, save, variants=VARIANTS) -> None:
    quick = report["arguments"]["quick"]
    interface = build_interface(size, device, precision=precision)
    report["precision_reports"] = interface.precision_reports
    codes = random_codes(interface, interface.s2t(clip_s)).to(device)
    mask = interface.build_mask(codes, **PROMPT, seed=0)
    for variant in variants:
        rows = report["targets"].setdefault(variant, {})
        try:
            interface.step_fn = step_function(variant, device)
        except RuntimeError as e:
            rows["skipped"] = str(e)
            continue
        if variant == "compiled" and quick:
            rows["skipped"] = "--quick (compiling takes minutes)"
            continue
        # torch.compile compiles again for every new batch shape: x4 only
        for name, variations in (("x4", 4),) if variant == "compiled" else (("x4", 4), ("x1", 1)):
            if budget.left() < 60:
                rows[name] = {"skipped": "time budget"}
                continue
            try:
                rows[name] = vamp_case(interface, codes, mask, variations, steps, repeats, warmup=not quick)
            except Exception as e:  # a failing variant must not cost the others
                rows[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            save()
        throughput = {}
        for batch in batches if variant != "compiled" else ():
            if budget.left() < 60:
                throughput[str(batch)] = {"skipped": "time budget"}
                continue
            try:
                case = vamp_case(interface, codes, mask, batch, steps, 1, warmup=not quick)
                throughput[str(batch)] = {**case, "variations_per_s": round(batch / case["total_s"], 2)}
            except Exception as e:
                throughput[str(batch)] = {"error": f"{type(e).__name__}: {e}"[:300]}
            save()
        rows["throughput"] = throughput
        interface.step_fn = None
        if device.type == "cuda":
            torch.cuda.empty_cache()


def codec_case(size: str, device, minutes: float) -> dict:
    from bridge.engine.codec import Codec
    from bridge.engine.random_weights import model_configs
    from engine import random_model

    codec_config, _, _ = model_configs(size)
    codec = random_model(Codec, codec_config, torch.Generator().manual_seed(0)).to(device).prepare()
    if device.type == "cuda":
        codec.chunk_frames = 1723  # as Interface.to sets it for CUDA
    n = int(minutes * 60 * codec.sample_rate)
    t = torch.arange(n, dtype=torch.float32) / codec.sample_rate
    audio = (0.3 * torch.sin(2 * torch.pi * 220.0 * t))[None, None].to(device)
    with torch.inference_mode():
        codec.decode_codes(codec.encode_codes(audio[..., :min(n, 2 * codec.chunk_frames * codec.hop_length)]))  # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        encode_s, codes = timed(device, lambda: codec.encode_codes(audio))
        decode_s, out = timed(device, lambda: codec.decode_codes(codes, length=n))
    row = {"minutes": minutes, "chunk_frames": codec.chunk_frames, "encode_s": round(encode_s, 3),
           "decode_s": round(decode_s, 3), "encode_x_realtime": round(minutes * 60 / encode_s, 1),
           "decode_x_realtime": round(minutes * 60 / decode_s, 1), "samples_out": int(out.shape[-1])}
    if device.type == "cuda":
        row["peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return row


def first_job(size: str, device, precision: str, clip_s: float, steps: int, timeout_s: float) -> dict:
    """A fresh process: import the engine, load the models from files, run one 4-variation job."""
    from bridge.engine import make_random

    with tempfile.TemporaryDirectory() as models:
        make_random(Path(models), size=size, seed=0)
        spec = json.dumps({"models": models, "device": str(device), "precision": precision, "clip_s": clip_s,
                           "steps": steps})
        start = time.perf_counter()
        python = [sys.executable] + (["-S"] if sys.flags.no_site else [])  # as this one was started
        proc = subprocess.run([*python, __file__, "--first-job", spec], capture_output=True, text=True,
                              timeout=timeout_s)
        wall = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "process_wall_s": round(wall, 2)}
    return {"error": f"exit code {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-300:]}"}


def first_job_child(spec: dict):
    start = time.perf_counter()
    from bridge.engine import Interface

    imported = time.perf_counter()
    models = Path(spec["models"])
    interface = Interface(coarse_ckpt=models / "coarse.pth", coarse2fine_ckpt=models / "c2f.pth",
                          codec_ckpt=models / "codec.pth", device=spec["device"], precision=spec["precision"])
    loaded = time.perf_counter()
    codes = random_codes(interface, interface.s2t(spec["clip_s"]))
    mask = interface.build_mask(codes, **PROMPT, seed=0)
    out = interface.vamp(codes, mask, batch_size=4, seed=0, sampling_steps=spec["steps"], c2f_sampling_steps=2)
    with torch.inference_mode():
        interface.decode_codes(out)
    sync(interface.device)
    done = time.perf_counter()
    print("RESULT " + json.dumps({"import_s": round(imported - start, 2), "load_s": round(loaded - imported, 2),
                                  "first_job_s": round(done - loaded, 2), "in_process_s": round(done - start, 2)}))


def attention_case(device, batch: int = 4, frames: int = 575, repeats: int = 20) -> dict:
    """Full-size attention with the T5 bias in bf16: SDPA with an additive mask against
    FlexAttention with the bias as a score modification (compiled), on one layer's shapes."""
    from torch.nn.attention.flex_attention import flex_attention

    g = torch.Generator(device=device).manual_seed(0)
    heads, d_head = 20, 64
    q, k, v = (torch.randn(batch, heads, frames, d_head, generator=g, device=device, dtype=torch.bfloat16)
               for _ in range(3))
    bias = torch.randn(1, heads, frames, frames, generator=g, device=device, dtype=torch.bfloat16)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias[0, h, q_idx, kv_idx]

    flex = torch.compile(flex_attention, dynamic=False)
    runs = {"sdpa": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias),
            "flex": lambda: flex(q, k, v, score_mod=score_mod)}
    row = {"shape": [batch, heads, frames, d_head], "dtype": "bf16"}
    outs = {}
    for name, fn in runs.items():
        outs[name] = fn()  # warm-up (flex: compiles)
        times = [timed(device, fn)[0] for _ in range(repeats)]
        row[f"{name}_ms"] = round(1000 * statistics.median(times), 3)
    row["max_abs_diff"] = float((outs["sdpa"].float() - outs["flex"].float()).abs().max())
    return row


# --- report ---------------------------------------------------------------------------------------


def machine(device) -> dict:
    info = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    info["git_commit"] = git_commit()
    return info


def table(report: dict) -> str:
    lines = ["", "Agreement, CPU float32 against " + report["machine"]["device"]]
    lines.append(f"{'size':<6} {'max |dlogit|':>13} {'tolerance':>10} {'ok':>4} {'top1':>6} {'bf16 KL':>9} "
                 f"{'argmax tok=':>11} {'sampled tok=':>12} {'batch=single':>12}")
    for r in report["agreement"]:
        if "error" in r:
            lines.append(f"{r.get('size', '?'):<6} {r['error']}")
            continue
        kl = r["bf16_check"]["kl_mean"] if isinstance(r["bf16_check"], dict) else float("nan")
        lines.append(f"{r['size']:<6} {r['logits_max_abs_diff']:>13.2e} {r['logits_tolerance']:>10.2e} "
                     f"{'yes' if r['logits_ok'] else 'NO':>4} {r['top1_agreement']:>6.3f} {kl:>9.2e} "
                     f"{r['tokens_equal_argmax']:>11.3f} {r['tokens_equal_sampled']:>12.3f} "
                     f"{str(r['batch_rows_equal_single_runs']):>12}")
    lines += ["", f"Targets ({report['arguments']['size']} size, {report['arguments']['clip_s']:g} s clip, "
              f"{report['arguments']['steps']} + 2 steps, precision {report['arguments']['precision']}): seconds, median"]
    lines.append(f"{'variant':<9} {'x4 total':>9} {'x4 first':>9} {'x1 total':>9} {'peak GB':>8} {'best var/s':>11}")
    for variant, rows in report["targets"].items():
        if "skipped" in rows:
            lines.append(f"{variant:<9} skipped: {rows['skipped']}")
            continue
        x4, x1 = rows.get("x4", {}), rows.get("x1", {})
        best = max((r.get("variations_per_s", 0) for r in rows.get("throughput", {}).values()), default=0)

        def cell(row, key):
            return f"{row[key]:.3f}" if key in row else (row.get("skipped") or ("error" if "error" in row else "-"))
        lines.append(f"{variant:<9} {cell(x4, 'total_s'):>9} {cell(x4, 'first_audible_s'):>9} "
                     f"{cell(x1, 'total_s'):>9} {str(x4.get('peak_memory_gb', '-')):>8} {best:>11.2f}")
    codec = report.get("codec")
    if codec and "error" not in codec and "skipped" not in codec:
        lines.append(f"\nCodec, {codec['minutes']:g} min: encode {codec['encode_x_realtime']}x, decode "
                     f"{codec['decode_x_realtime']}x real time, peak {codec.get('peak_memory_gb', '-')} GB")
    elif codec:
        lines.append(f"\nCodec: {codec}")
    job = report.get("first_job")
    if job:
        lines.append(f"First job after start: {job}")
    if report.get("attention"):
        lines.append(f"Attention with the T5 bias, bf16 (SDPA against FlexAttention): {report['attention']}")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", nargs="?", type=Path, help="folder for engine-<device>.json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="tiny models, short clip, few steps (the test suite)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="for the targets (default: bf16 on CUDA, fp32 elsewhere)")
    p.add_argument("--budget-s", type=float, default=420.0, help="skip what no longer fits in this many seconds")
    p.add_argument("--first-job", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.first_job is None and args.out is None:
        p.error("give the output folder: gpu.sh OUTDIR")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.first_job:
        return first_job_child(json.loads(args.first_job))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"CUDA is not available to {sys.executable} (torch {torch.__version__}); use --device cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 means float32 for the agreement
    budget = Budget(args.budget_s)
    quick = args.quick
    precision = args.precision or ("bf16" if device.type == "cuda" else "fp32")
    size, clip_s, steps = ("tiny", 0.25, 2) if quick else ("full", 10.0, 36)
    arguments = {"quick": quick, "size": size, "clip_s": clip_s, "steps": steps, "precision": precision,
                 "budget_s": args.budget_s}
    report = {"machine": machine(device), "arguments": arguments, "agreement": [], "targets": {},
              "logit_tolerance_relative_to_std": LOGIT_TOLERANCE}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"engine-{device.type}.json"

    def save():
        tmp = out.with_suffix(".json.partial")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(out)

    print(f"GPU check on {report['machine'].get('gpu', device)}, torch {torch.__version__}", flush=True)
    for agreement_size, frames, agreement_steps in ([("tiny", 20, 2)] if quick else [("tiny", 100, 6), ("full", 200, 4)]):
        try:
            report["agreement"].append(agreement(agreement_size, device, frames, agreement_steps))
        except Exception as e:
            report["agreement"].append({"size": agreement_size, "error": f"{type(e).__name__}: {e}"[:300]})
        print(f"  agreement {agreement_size}: {report['agreement'][-1]}", flush=True)
        save()
    run_targets = lambda variants: targets(size, device, precision, clip_s, steps, 1 if quick else 3,  # noqa: E731
                                           [2] if quick else [4, 8, 16, 32], budget, report, save, variants)
    run_targets(("eager", "graph"))
    print("  targets done (eager, graph)", flush=True)
    if budget.left() > 45:
        try:
            report["codec"] = codec_case(size, device, 0.01 if quick else 10.0)
        except Exception as e:
            report["codec"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    else:
        report["codec"] = {"skipped": "time budget"}
    save()
    if budget.left() > 40:
        try:
            report["first_job"] = first_job(size, device, precision, clip_s, steps, max(30.0, budget.left() - 10))
        except Exception as e:
            report["first_job"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    else:
        report["first_job"] = {"skipped": "time budget"}
    save()
    if device.type != "cuda":
        report["attention"] = {"skipped": "FlexAttention is measured on CUDA only"}
    elif budget.left() > 90:
        try:
            report["attention"] = attention_case(device)
        except Exception as e:
            report["attention"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    else:
        report["attention"] = {"skipped": "time budget"}
    save()
    print(table(report), flush=True)  # in case the compiled variant outlives the 8 minutes
    run_targets(("compiled",))  # last: compiling takes minutes, and may not finish in the budget
    save()
    print(table(report))
    print(f"\nsaved {out}")


if __name__ == "__main__":
    main()
