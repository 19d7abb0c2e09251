"""Windows benchmark: the cost of overlapping windows against the reference's chunks, memory on a
long file, and the seam measure per boundary.

    .venv/bin/python benchmarks/windows.py --quick      # small models, 20 s, 2 steps: a few minutes
    .venv/bin/python benchmarks/windows.py              # small models, 15/20/30/60 s, 12 steps, overlaps
    .venv/bin/python benchmarks/windows.py --sizes full --durations 20 30   # the released sizes (slow)

Models are random weights at the released sizes (benchmarks/engine.py `build_interface`), so
nothing is downloaded. Measured:
- cost: `windowed_vamp` against `Interface.vamp` (the reference's independent chunks) for the same
  random codes, mask and seeds: coarse + coarse-to-fine wall and CPU seconds, their ratio, and
  the frames the transformer processed (exact, from the window plan);
- memory: peak RSS beyond the models (VmHWM, reset after set-up) of a windowed vamp of a
  `--long-minutes` clip against a 1-minute clip: bounded by the window, not the length;
- seams (`--seams`): on a steady tone and a click track, the log-mel seam ratio
  (bridge/studies/seams.py) at every chunk / window boundary of the decoded variation, chunked and
  windowed, for each overlap in `--overlaps`.
Results: a table on stdout and `benchmarks/results/windows-<device>.json`.
"""

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MASK_PROMPT = dict(periodic_prompt=7, upper_codebook_mask=3)


def _setup(size, device, threads):
    import torch

    from engine import build_interface

    torch.set_num_threads(threads)
    return build_interface(size, torch.device(device))


def _codes(interface, duration_s, seed=1):
    import torch

    frames = interface.s2t(duration_s)
    generator = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, interface.codec.codebook_size, (1, interface.codec.n_codebooks, frames),
                          generator=generator).to(interface.device)
    return codes, interface.build_mask(codes, **MASK_PROMPT, seed=0)


def _frames_processed(interface, settings, n_frames, windowed):
    from bridge.engine.windows import plan_windows

    total = 0
    for stage, model in (("coarse", interface.coarse), ("c2f", interface.c2f)):
        if windowed:
            window, context, lookahead = settings.frames(stage, interface.s2t, model.chunk_size_s)
            total += sum(w.length for w in plan_windows(n_frames, window, context, lookahead))
        else:
            chunk = interface.s2t(model.chunk_size_s)
            total += n_frames if stage == "coarse" else math.ceil(n_frames / chunk) * chunk  # c2f pads
    return total


def measure_cost(size, device, threads, duration_s, variations, steps, c2f_steps, overlap_s, repeats):
    import resource

    from bridge.engine.sampler import SamplingOptions
    from bridge.engine.windows import WindowSettings, windowed_vamp

    interface = _setup(size, device, threads)
    codes, mask = _codes(interface, duration_s)
    seeds = list(range(variations))
    settings = WindowSettings(overlap_s=overlap_s, c2f_overlap_s=overlap_s / 3)
    options = SamplingOptions(sampling_steps=steps)

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def chunked():
        interface.vamp(codes, mask, batch_size=variations, seeds=seeds, sampling_steps=steps,
                       c2f_sampling_steps=c2f_steps)

    def windowed():
        windowed_vamp(interface, codes, mask, seeds, options, c2f_sampling_steps=c2f_steps, settings=settings)

    result = {"size": size, "duration_s": duration_s, "variations": variations, "steps": steps,
              "c2f_steps": c2f_steps, "overlap_s": overlap_s}
    for name, fn in (("chunked", chunked), ("windowed", windowed)):
        if repeats > 1:
            fn()  # warm-up: first-call allocations and kernel choices
        walls, cpus = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), cpu()
            fn()
            walls.append(time.perf_counter() - w0)
            cpus.append(cpu() - c0)
        result[f"{name}_s"] = round(min(walls), 3)
        result[f"{name}_cpu_s"] = round(min(cpus), 3)
        result[f"{name}_frames"] = _frames_processed(interface, settings, codes.shape[-1], name == "windowed")
    result["ratio_wall"] = round(result["windowed_s"] / result["chunked_s"], 3)
    result["ratio_cpu"] = round(result["windowed_cpu_s"] / result["chunked_cpu_s"], 3)
    result["ratio_frames"] = round(result["windowed_frames"] / result["chunked_frames"], 3)
    result["s_per_audio_s"] = round(result["windowed_s"] / duration_s, 4)
    return result


def measure_memory(size, device, threads, minutes, steps):
    from engine import PeakMemory

    from bridge.engine.sampler import SamplingOptions
    from bridge.engine.windows import windowed_vamp

    interface = _setup(size, device, threads)
    codes, mask = _codes(interface, minutes * 60)
    memory = PeakMemory(interface.device)
    memory.reset()
    start = time.perf_counter()
    windowed_vamp(interface, codes, mask, [0], SamplingOptions(sampling_steps=steps), c2f_sampling_steps=1)
    return {"size": size, "minutes": minutes, "steps": steps, "seconds": round(time.perf_counter() - start, 1),
            **memory.read()}


def _test_signal(kind, duration_s, sr=44100):
    import numpy as np

    t = np.arange(int(duration_s * sr)) / sr
    if kind == "tone":
        return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    clicks = np.zeros_like(t)
    clicks[::sr // 2] = 0.9  # 120 BPM
    return (clicks + 0.05 * np.sin(2 * np.pi * 110 * t)).astype(np.float32)


def measure_seams(size, device, threads, duration_s, steps, overlaps):
    import numpy as np
    import torch

    from bridge.engine.sampler import SamplingOptions
    from bridge.engine.windows import WindowSettings, windowed_vamp
    from bridge.studies.seams import chunk_boundaries_s, seam_ratios, window_boundaries_s

    interface = _setup(size, device, threads)
    out = []
    frame_rate = interface.codec.sample_rate / interface.codec.hop_length
    for kind in ("tone", "clicks"):
        audio = interface.preprocess_audio(_test_signal(kind, duration_s)[None], 44100)
        codes = interface.encode_audio(audio)
        mask = interface.build_mask(codes, **MASK_PROMPT, seed=0)
        T = codes.shape[-1]
        chunk_b = chunk_boundaries_s(T, interface.coarse.chunk_size_s, frame_rate)
        chunked = interface.vamp(codes, mask, seeds=[0], sampling_steps=steps, c2f_sampling_steps=2)
        with torch.inference_mode():
            decoded = interface.decode_codes(chunked)[0, 0].cpu().numpy()
        row = {"signal": kind, "overlap_s": None, "mode": "chunked",
               "ratios": [round(b["ratio"], 3) for b in seam_ratios(decoded, chunk_b)["boundaries"]]}
        out.append(row)
        for overlap in overlaps:
            settings = WindowSettings(overlap_s=overlap, c2f_overlap_s=overlap / 3)
            vamped = windowed_vamp(interface, codes, mask, [0], SamplingOptions(sampling_steps=steps),
                                   c2f_sampling_steps=2, settings=settings)
            decoded = interface.decode_codes(vamped)[0, 0].cpu().numpy()
            boundaries = window_boundaries_s(interface, settings, "coarse", T)
            out.append({"signal": kind, "overlap_s": overlap, "mode": "windowed",
                        "ratios": [round(b["ratio"], 3) for b in seam_ratios(decoded, boundaries)["boundaries"]]})
        out.append({"signal": kind, "overlap_s": None, "mode": "source",
                    "ratios": [round(b["ratio"], 3) for b in seam_ratios(audio[0], chunk_b)["boundaries"]]})
    for row in out:
        row["mean_ratio"] = round(float(np.mean(row["ratios"])), 3) if row["ratios"] else None
    return out


def _child(kind, kwargs):
    """Run one measurement in a fresh process (its own peak memory) and return its JSON."""
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import windows; "
            f"print('RESULT' + json.dumps(windows.{kind}(**json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], capture_output=True, text=True,
                          cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    raise RuntimeError(f"{kind} failed:\n{proc.stderr[-2000:]}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sizes", nargs="+", default=["small"])
    p.add_argument("--durations", nargs="+", type=float, default=[15, 20, 30, 60])
    p.add_argument("--variations", type=int, default=2)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--c2f-steps", type=int, default=2)
    p.add_argument("--overlaps", nargs="+", type=float, default=[0.5, 1.5, 3.0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--long-minutes", type=float, default=10, help="memory case length; 0 skips the memory cases")
    p.add_argument("--seams", action="store_true", help="also the seam measure (decodes every case)")
    p.add_argument("--no-cost", action="store_true", help="skip the cost cases (memory and seams only)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.durations, args.steps, args.repeats, args.overlaps, args.long_minutes = [20], 2, 1, [1.5], 2
    base = dict(device=args.device, threads=args.threads)
    results = {"machine": {"platform": platform.platform(), "processor": platform.processor()},
               "args": vars(args), "cost": [], "memory": [], "seams": []}
    print(f"{'size':<6} {'clip s':>6} {'overlap':>7} {'chunked s':>9} {'windowed s':>10} {'wall x':>6} "
          f"{'cpu x':>6} {'frames x':>8} {'s per audio s':>13}")
    for size in args.sizes:
        for duration in ([] if args.no_cost else args.durations):
            for overlap in args.overlaps:
                r = _child("measure_cost", dict(size=size, duration_s=duration, variations=args.variations,
                                                steps=args.steps, c2f_steps=args.c2f_steps, overlap_s=overlap,
                                                repeats=args.repeats, **base))
                results["cost"].append(r)
                print(f"{size:<6} {duration:>6.0f} {overlap:>7.1f} {r['chunked_s']:>9.2f} {r['windowed_s']:>10.2f} "
                      f"{r['ratio_wall']:>6.2f} {r['ratio_cpu']:>6.2f} {r['ratio_frames']:>8.2f} "
                      f"{r['s_per_audio_s']:>13.4f}")
        print(f"\n{'size':<6} {'minutes':>7} {'seconds':>7} {'peak MB':>8} {'+MB':>7}")
        for minutes in ((1, args.long_minutes) if args.long_minutes > 0 else ()):
            r = _child("measure_memory", dict(size=size, minutes=minutes, steps=1, **base))
            results["memory"].append(r)
            print(f"{size:<6} {minutes:>7.0f} {r['seconds']:>7.1f} {r['peak_mb']:>8.0f} {r['extra_mb']:>7.0f}")
        if args.seams:
            rows = _child("measure_seams", dict(size=size, duration_s=max(args.durations), steps=args.steps,
                                                overlaps=args.overlaps, **base))
            results["seams"] += rows
            print(f"\n{'signal':<7} {'mode':<9} {'overlap':>7} {'mean seam ratio':>15}  per boundary")
            for row in rows:
                overlap = "" if row["overlap_s"] is None else f"{row['overlap_s']:.1f}"
                print(f"{row['signal']:<7} {row['mode']:<9} {overlap:>7} {row['mean_ratio']!s:>15}  {row['ratios']}")
    RESULTS_DIR.mkdir(exist_ok=True)
    out = Path(args.out) if args.out else RESULTS_DIR / f"windows-{args.device}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
