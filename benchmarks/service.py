"""The bridge's own overhead per request, apart from model time.

Runs the real service (JobService + BridgeServer on loopback, real Pipeline) in this process and
a python-osc client beside it, and measures per `vamp` request:

- `request_to_first_progress_ms`: the client sends `vamp` -> the client has the first `progress`
  (parse, validation including the source probe, the database insert, the queue hand-off, the
  worker waking up, the reply datagram);
- `written_to_result_ms`: the pipeline calls `on_result` (the variation's files are on disk) ->
  the client has the `result` (database commit, event, datagram);
- `result_to_done_ms`: the last `result` -> `done` at the client;
- `ping_ms`: a `ping` round trip, the transport alone;
- `model_s`: the pipeline's own time for the job, for scale.

and for the remote GPU set-up (`docs/remote.md`), with the relay (`serve --remote`) and the HTTP
service (`serve --http`) both in this process, on loopback:

- `relay_overhead_ms`: client sends `vamp` to the relay -> `done` at the client, minus the
  remote pipeline's own time for the job (region cut and upload, submission, event stream,
  downloads, recipe rewrite, the local store, OSC); `direct_overhead_ms` is the same measure for
  the same job sent to a local service, for comparison;
- `upload_ms_per_audio_s`: uploading a region (48 kHz stereo float32, as the relay sends it)
  per second of audio, for a few lengths (`--upload-seconds`).

Both client-side times include the loopback round trip, so they are upper bounds of the bridge's
overhead. The target is < 50 ms for each. Prints a table and writes benchmarks/results/service.json.

    python benchmarks/service.py                 # tiny random weights, CPU
    python benchmarks/service.py --device cuda --model ~/models/vampnet --n 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from bridge.jobs import JobService, JobStore  # noqa: E402
from bridge.osc.client import OscClient  # noqa: E402
from bridge.osc.server import BridgeServer  # noqa: E402

TARGET_MS = 50.0


class TimedPipeline:
    """The real pipeline, noting when each variation's files are on disk (perf_counter s)."""

    def __init__(self, pipeline) -> None:
        self.pipeline = pipeline
        self.written_s: dict[tuple[int, int], float] = {}  # (seed, index) -> time
        self.run_s: list[float] = []

    def run(self, request, *, on_result=None, **kw):
        def timed(result):
            self.written_s[(request.seed, result.index)] = time.perf_counter()
            on_result(result)
        start = time.perf_counter()
        try:
            return self.pipeline.run(request, on_result=timed, **kw)
        finally:
            self.run_s.append(time.perf_counter() - start)

    def rerender(self, *args, **kw):
        return self.pipeline.rerender(*args, **kw)

    def info(self) -> dict:
        return self.pipeline.info()


def write_clip(path: Path, seconds: float, sample_rate: int = 44100) -> Path:
    from pedalboard.io import AudioFile

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-3 * (t % 0.5))).astype(np.float32)
    with AudioFile(str(path), "w", sample_rate, 1) as f:
        f.write(audio[None])
    return path


def summary(values_ms: list[float]) -> dict:
    values = sorted(values_ms)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return {"median": round(statistics.median(values), 3), "p95": round(p95, 3),
            "max": round(values[-1], 3), "n": len(values)}


def measure(args, workdir: Path) -> dict:
    from bridge.pipeline import Pipeline

    model_dir = Path(args.model) if args.model else None
    if model_dir is None:
        from bridge.engine.random_weights import make_random
        model_dir = make_random(workdir / "tiny", size="tiny", seed=0)
    source = write_clip(workdir / "clip.wav", args.seconds)
    pipeline = TimedPipeline(Pipeline(model_dir=model_dir, device=args.device))
    store = JobStore(workdir / "jobs.sqlite3")
    service = JobService(pipeline, store, default_output_dir=workdir / "renders").start()
    server = BridgeServer(service, port=0).start()
    sampling = json.dumps({"sampling_steps": args.steps, "c2f_sampling_steps": 2})
    rows = {"request_to_first_progress_ms": [], "written_to_result_ms": [],
            "result_to_done_ms": [], "ping_ms": [], "model_s": []}
    try:
        with OscClient(port=server.port, name="reaper-bench") as client:
            for i in range(args.warmup + args.n):
                seed = 1000 * (i + 1)
                ping_sent = time.perf_counter()
                pong = client.wait_for("pong", client.request("ping"))
                sent = time.perf_counter()
                rid = client.request("vamp", "reaper:bench", str(source), 0.0, 0.0, 1.0, 0, 0,
                                     "", "", "", sampling, "", args.variations, seed, "")
                first = client.wait_for("progress", rid, timeout_s=600)
                done = client.wait_for("done", rid, timeout_s=600)
                results = [r for r in client.drain() if r.name == "result" and r.id == rid]
                if done.args[3] != "done" or len(results) != args.variations:
                    raise RuntimeError(f"job {rid} ended {done.args}")
                if i < args.warmup:
                    continue
                rows["ping_ms"].append((pong.received_s - ping_sent) * 1000)
                rows["request_to_first_progress_ms"].append((first.received_s - sent) * 1000)
                for r in results:
                    written = pipeline.written_s[(seed, r.args[1])]
                    rows["written_to_result_ms"].append((r.received_s - written) * 1000)
                last = max(r.received_s for r in results)
                rows["result_to_done_ms"].append((done.received_s - last) * 1000)
                rows["model_s"].append(pipeline.run_s[-1])
                for r in results:
                    client.request("ack", rid, r.args[1])
        info = service.info()
    finally:
        server.stop()
        service.close()
        store.close()
    stats = {name: summary(values) for name, values in rows.items() if name != "model_s"}
    stats["model_s"] = {"median": round(statistics.median(rows["model_s"]), 3),
                        "max": round(max(rows["model_s"]), 3), "n": len(rows["model_s"])}
    return {"stats": stats, "device": info.get("device"), "models": info.get("models")}


def measure_remote(args, workdir: Path) -> dict:
    """Relay overhead per job and upload time per second of audio (see the module docstring)."""
    import hashlib

    from bridge.pipeline import Pipeline
    from bridge.remote.http_client import RemoteClient
    from bridge.remote.http_service import HttpService
    from bridge.remote.relay import RemotePipeline

    model_dir = Path(args.model) if args.model else workdir / "tiny"
    source = write_clip(workdir / "remote-clip.wav", args.seconds)
    remote_pipeline = TimedPipeline(Pipeline(model_dir=model_dir, device=args.device))
    remote_store = JobStore(workdir / "remote" / "jobs.sqlite3")
    remote = JobService(remote_pipeline, remote_store, default_output_dir=workdir / "remote" / "renders").start()
    http = HttpService(remote, root=workdir / "remote" / "store", port=0, token="bench").start()
    relay_store = JobStore(workdir / "relay" / "jobs.sqlite3")
    relay = JobService(RemotePipeline(f"http://127.0.0.1:{http.port}", token="bench",
                                      cache_dir=workdir / "relay" / "cache"),
                       relay_store, default_output_dir=workdir / "relay" / "renders", preload=False).start()
    relay_osc = BridgeServer(relay, port=0).start()
    direct_osc = BridgeServer(remote, port=0).start()
    sampling = json.dumps({"sampling_steps": args.steps, "c2f_sampling_steps": 2})
    rows = {"relay_overhead_ms": [], "direct_overhead_ms": [], "upload_ms_per_audio_s": []}
    try:
        for name, port in (("relay_overhead_ms", relay_osc.port), ("direct_overhead_ms", direct_osc.port)):
            with OscClient(port=port, name="reaper-bench") as client:
                for i in range(args.warmup + args.remote_n):
                    seed = 7000 * (i + 1)
                    sent = time.perf_counter()
                    rid = client.request("vamp", "reaper:bench", str(source), 0.0, 0.0, 1.0, 0, 0,
                                         "", "", "", sampling, "", args.variations, seed, "")
                    done = client.wait_for("done", rid, timeout_s=600)
                    if done.args[3] != "done":
                        raise RuntimeError(f"job {rid} ended {done.args}")
                    if i >= args.warmup:
                        total_ms = (done.received_s - sent) * 1000
                        rows[name].append(total_ms - remote_pipeline.run_s[-1] * 1000)
        client = RemoteClient(f"http://127.0.0.1:{http.port}", token="bench")
        rng = np.random.default_rng(0)
        for seconds in args.upload_seconds:
            audio = (0.1 * rng.standard_normal((2, int(seconds * 48000)))).astype(np.float32)
            from bridge.audio import write_audio_atomic
            region = workdir / f"upload-{seconds}.wav"
            write_audio_atomic(region, audio, 48000, bit_depth="float32")
            sha = hashlib.sha256(region.read_bytes()).hexdigest()
            start = time.perf_counter()
            client.upload_region(sha, region)
            rows["upload_ms_per_audio_s"].append((time.perf_counter() - start) * 1000 / seconds)
    finally:
        direct_osc.stop()
        relay_osc.stop()
        relay.close()
        relay_store.close()
        http.stop()
        remote.close()
        remote_store.close()
    return {name: summary(values) for name, values in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20, help="measured requests")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variations", type=int, default=2, help="variations per request")
    p.add_argument("--seconds", type=float, default=1.0, help="clip length")
    p.add_argument("--steps", type=int, default=4, help="coarse sampling steps")
    p.add_argument("--model", default=None, help="model folder (default: tiny random weights)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--remote-n", type=int, default=10, help="measured jobs through the relay (0 = skip)")
    p.add_argument("--upload-seconds", type=float, nargs="+", default=[10.0, 60.0, 300.0],
                   help="region lengths for the upload measure")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "service.json"))
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="vampbridge-bench-") as tmp:
        os.environ.setdefault("VAMPBRIDGE_DATA_DIR", tmp)
        measured = measure(args, Path(tmp))
        remote_stats = measure_remote(args, Path(tmp)) if args.remote_n > 0 else {}
    stats = measured["stats"]
    overheads = ("request_to_first_progress_ms", "written_to_result_ms", "result_to_done_ms")
    ok = all(stats[name]["p95"] < TARGET_MS for name in overheads)

    print(f"bridge overhead per request ({args.n} requests x {args.variations} variations, "
          f"device {measured['device']}, models {measured['models']})")
    print(f"{'measure':32} {'median':>9} {'p95':>9} {'max':>9}")
    for name, s in stats.items():
        p95 = f"{s['p95']:9.2f}" if "p95" in s else f"{'-':>9}"
        print(f"{name:32} {s['median']:9.2f} {p95} {s['max']:9.2f}")
    print(f"target: p95 < {TARGET_MS:.0f} ms for the bridge's overheads: "
          f"{'PASS' if ok else 'FAIL'}")
    if remote_stats:
        print(f"\nremote GPU set-up on loopback ({args.remote_n} jobs; uploads of "
              f"{', '.join(f'{s:g}' for s in args.upload_seconds)} s of 48 kHz stereo float32)")
        print(f"{'measure':32} {'median':>9} {'p95':>9} {'max':>9}")
        for name, s in remote_stats.items():
            print(f"{name:32} {s['median']:9.2f} {s['p95']:9.2f} {s['max']:9.2f}")

    report = {
        "benchmark": "service", "target_ms": TARGET_MS, "pass": ok, "stats": stats,
        "remote": remote_stats,
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "device": measured["device"], "models": measured["models"],
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
