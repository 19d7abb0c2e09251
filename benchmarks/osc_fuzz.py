"""The OSC service under hostile traffic: how fast it takes 10 000 fuzz datagrams, how fast it
still answers `hello`, and how much memory it keeps.

    .venv/bin/python benchmarks/osc_fuzz.py [--datagrams 10000] [--out benchmarks/results/osc_fuzz.json]

Uses the datagrams of tests/test_security_fuzz.py (random bytes, malformed OSC, wrong types,
hostile strings, `@` paths to devices, FIFOs, folders and huge files, hostile mask / fx of a real
source) against an in-process service on tiny random weights, loopback only. Prints a table and
writes JSON.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datagrams", type=int, default=10_000)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "osc_fuzz.json"))
    args = p.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="vampbridge-fuzz-"))
    os.environ["VAMPBRIDGE_DATA_DIR"] = str(tmp / "user-data")  # its own secret, not the user's

    import torch

    torch.set_num_threads(1)
    import test_security_fuzz as fuzz
    from bridge.engine import make_random
    from bridge.osc.client import OscClient
    from test_service_support import InProcessBridge, write_test_wav

    models = make_random(tmp / "models", size="tiny", seed=0)
    (tmp / "targets").mkdir()
    at_paths = fuzz.hostile_files(tmp / "targets")
    source = str(write_test_wav(tmp / "media" / "loop.wav"))
    with InProcessBridge(tmp / "data", models) as bridge, OscClient(port=bridge.port) as client:
        while bridge.service.info()["device"] == "loading":
            time.sleep(0.05)
        warm_up = fuzz.datagrams(random.Random(1), client.reply_port, client.token, at_paths, 500, source)
        for data in warm_up:
            client.send_raw(data)
        client.wait_for("pong", client.request("ping"), timeout_s=30)
        gc.collect()
        rss_before = fuzz.rss_bytes()
        latencies, replies = [], []
        started = time.perf_counter()
        stream = fuzz.datagrams(random.Random(fuzz.SEED), client.reply_port, client.token, at_paths,
                                args.datagrams, source)
        for i, data in enumerate(stream):
            client.send_raw(data)
            if i % fuzz.SYNC_EVERY == fuzz.SYNC_EVERY - 1:
                client.wait_for("pong", client.request("ping"), timeout_s=30)
                latencies.append(fuzz.hello_latency_s(client))
                replies += client.drain()
        client.wait_for("pong", client.request("ping"), timeout_s=30)
        elapsed_s = time.perf_counter() - started
        replies += client.drain()
        gc.collect()
        growth_mb = (fuzz.rss_bytes() - rss_before) / 2**20
        dropped = client.wait_for("status", client.request("status", "")).args[2]
    latencies.sort()
    codes = collections.Counter(r.args[1] for r in replies if r.name == "error")
    out = {"datagrams": args.datagrams, "seconds": round(elapsed_s, 2),
           "datagrams_per_s": round(args.datagrams / elapsed_s),
           "hello_ms_median": round(latencies[len(latencies) // 2] * 1000, 3),
           "hello_ms_max": round(latencies[-1] * 1000, 3), "rss_growth_mb": round(growth_mb, 1),
           "dropped": dropped, "error_codes": dict(codes.most_common())}
    for key, value in out.items():
        print(f"{key:>18}  {value}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0 if codes.get("internal", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
