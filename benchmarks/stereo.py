"""Stereo benchmark: how well each stereo mode keeps a source's stereo image.

    .venv/bin/python benchmarks/stereo.py            # small random models, 3 sources, 4 modes, 3 seeds
    .venv/bin/python benchmarks/stereo.py --model DIR   # a real model set (codec.pth, coarse.pth, c2f.pth)

For synthetic sources from narrow to wide (below), every mode (`bridge/stereo.py`) makes variations
through `Pipeline.run`; measured on the source and on each variation (`stereo.image`): the
inter-channel correlation and the side/mid energy ratio in dB. A mode keeps the image when both
stay near the source's. Results: a table on stdout and `benchmarks/results/stereo.json`.

Sources (4 s, 44.1 kHz): `narrow`: one decaying tone on both channels plus 5 % independent noise
(correlation about 0.99); `panned`: two tones panned 70/30 and 30/70 (about 0.7); `wide`: two
unrelated tones, one per channel (about 0).
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).resolve().parent / "results" / "stereo.json"
SR = 44100


def sources(seconds=4.0):
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    env = np.exp(-3 * (t % 0.5))
    a = 0.3 * env * np.sin(2 * np.pi * 220 * t)
    b = 0.3 * np.exp(-2 * ((t + 0.25) % 0.5)) * np.sin(2 * np.pi * 330 * t)
    return {
        "narrow": np.stack([a + 0.015 * rng.standard_normal(len(t)), a + 0.015 * rng.standard_normal(len(t))]),
        "panned": np.stack([0.7 * a + 0.3 * b, 0.3 * a + 0.7 * b]),
        "wide": np.stack([a, b]),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: small random weights, made in a temporary folder)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--sources", nargs="+", default=["narrow", "panned", "wide"])
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)

    import torch
    from pedalboard.io import AudioFile

    from bridge.engine import make_random
    from bridge.pipeline import Pipeline
    from bridge.request import STEREO_MODES, VampRequest
    from bridge.stereo import image

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model = args.model or str(make_random(scratch / "models", size="small", seed=0))
        pipeline = Pipeline(model_dir=model, device="cpu")
        rows = []
        print(f"{'source':<7} {'mode':<12} {'corr src':>8} {'corr out':>8} {'S/M src dB':>10} {'S/M out dB':>10}")
        for name, audio in sources().items():
            if name not in args.sources:
                continue
            path = scratch / f"{name}.wav"
            with AudioFile(str(path), "w", samplerate=SR, num_channels=2, bit_depth=32) as f:
                f.write(audio.astype(np.float32))
            source = image(audio)
            for mode in STEREO_MODES:
                images = []
                for seed in range(args.seeds):
                    request = VampRequest(source_path=str(path), stereo=mode, seed=seed, n_variations=1,
                                          sampling={"sampling_steps": args.steps}, bit_depth="float32",
                                          output_dir=str(scratch / "out" / name / mode))
                    (result,) = pipeline.run(request)
                    with AudioFile(result.audio_path) as f:
                        images.append(image(f.read(f.frames)))
                row = {"source": name, "mode": mode,
                       "correlation_source": round(source["correlation"], 3),
                       "correlation_out": round(float(np.mean([i["correlation"] for i in images])), 3),
                       "side_to_mid_db_source": round(source["side_to_mid_db"], 1),
                       "side_to_mid_db_out": round(float(np.mean([i["side_to_mid_db"] for i in images])), 1)}
                rows.append(row)
                print(f"{name:<7} {mode:<12} {row['correlation_source']:>8.3f} {row['correlation_out']:>8.3f} "
                      f"{row['side_to_mid_db_source']:>10.1f} {row['side_to_mid_db_out']:>10.1f}")
    for mode in STEREO_MODES:
        mine = [r for r in rows if r["mode"] == mode]
        corr = np.mean([abs(r["correlation_out"] - r["correlation_source"]) for r in mine])
        side = np.mean([abs(r["side_to_mid_db_out"] - r["side_to_mid_db_source"]) for r in mine])
        print(f"{mode:<12} mean |correlation error| {corr:.3f}   mean |side/mid error| {side:.1f} dB")
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": args.model or "small random weights", "seeds": args.seeds,
                               "steps": args.steps, "rows": rows}, indent=2))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
