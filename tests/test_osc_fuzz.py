"""Fuzzing: 10 000+ malformed or random datagrams, then the service still answers and works."""

import math
import random
import struct

from bridge.osc import protocol
from bridge.osc.client import OscClient, build_message
from test_service_support import InProcessBridge, vamp_args, write_test_wav

N_DATAGRAMS = 12_000
SEED = 20_241_123


def _random_value(rng: random.Random):
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randrange(-2**31, 2**31)
    if kind == 1:
        return rng.choice([math.nan, math.inf, -math.inf, 1e308, -0.0, rng.uniform(-1e6, 1e6)])
    if kind == 2:
        return "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(40)))
    if kind == 3:
        return rng.randbytes(rng.randrange(1, 64))
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return rng.choice(["", "{", "[" * 500, '{"temperature": NaN}', "@/etc/passwd", "/",
                           "balanced", '{"sampling_steps": -5}', "\\\\?\\C:\\Windows"])
    if kind == 6:
        return rng.randrange(-10, 70_000)  # ports, counts and indices near their limits
    if kind == 7:
        return 2**40 + rng.randrange(100)  # int64
    return rng.uniform(-10, 10)


def _structured(rng: random.Random, sink_port: int) -> bytes:
    """A well-formed OSC message with a plausible header and random arguments."""
    names = list(protocol.REQUESTS) + ["nope", "", "vamp/extra"]
    address = rng.choice([protocol.PREFIX, "/", "/vampbridge", "/other/"]) + rng.choice(names)
    header = [f"fuzz-{rng.randrange(10**6)}", sink_port, ""]
    if rng.random() < 0.2:
        header = [_random_value(rng) for _ in range(rng.randrange(4))]
    if address.endswith("vamp") and rng.random() < 0.5:
        args = list(vamp_args(f"/no/such/{rng.randrange(999)}.wav"))  # never a real job
        args[rng.randrange(len(args))] = _random_value(rng)
    else:
        args = [_random_value(rng) for _ in range(rng.randrange(20))]
    return build_message(address, tuple(header + args))


def _mutated(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(3)
        if op == 0 and data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            del data[rng.randrange(len(data)):]
        else:
            data[rng.randrange(len(data) + 1):0] = rng.randbytes(rng.randrange(1, 9))
    return bytes(data)


def _bundle(rng: random.Random, parts: list[bytes], depth: int = 0) -> bytes:
    out = b"#bundle\x00" + rng.randbytes(8)
    for p in parts:
        if depth < 6 and rng.random() < 0.3:
            p = _bundle(rng, [p], depth + 1)
        size = len(p) if rng.random() < 0.9 else rng.randrange(-5, 2**31)
        out += struct.pack(">i", size) + p
    return out


def fuzz_datagrams(rng: random.Random, sink_port: int, n: int):
    for i in range(n):
        kind = i % 6
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 600))
        elif kind == 1:
            yield b"/vampbridge/" + rng.randbytes(rng.randrange(0, 200))
        elif kind == 2:
            yield _structured(rng, sink_port)
        elif kind == 3:
            yield _mutated(rng, _structured(rng, sink_port))
        elif kind == 4:
            yield _bundle(rng, [_structured(rng, sink_port) for _ in range(rng.randrange(1, 4))])
        elif i % 600 == 5:  # now and then, a datagram over the size limit
            yield b"/vampbridge/vamp\x00\x00\x00\x00,s\x00\x00" + rng.randbytes(65_100)
        else:
            yield _mutated(rng, _bundle(rng, [_structured(rng, sink_port)]))


def test_service_survives_ten_thousand_malformed_datagrams_and_still_runs_a_job(tmp_path,
                                                                                 tiny_models):
    rng = random.Random(SEED)
    source = write_test_wav(tmp_path / "media" / "loop.wav")
    with InProcessBridge(tmp_path / "data", tiny_models) as bridge, \
            OscClient(port=bridge.port, name="fuzz") as client:
        sent = 0
        for i, data in enumerate(fuzz_datagrams(rng, client.reply_port, N_DATAGRAMS)):
            client.send_raw(data)
            sent += 1
            if i % 250 == 249:  # let the service catch up: loopback UDP keeps order
                client.wait_for("pong", client.request("ping"), timeout_s=30)
        assert sent >= 10_000
        client.drain()

        hello = client.wait_for("hello", client.request("hello"), timeout_s=10)
        assert hello.args[1] == protocol.PROTOCOL_VERSION
        status = client.wait_for("status", client.request("status", ""), timeout_s=10)
        assert status.args[2] > 1000  # dropped and counted
        assert status.args[1] == "[]"  # no fuzz datagram ever became a job

        rid = client.request("vamp", *vamp_args(source, n_variations=2))
        done = client.wait_for("done", rid, timeout_s=120)
        assert done.args[1:] == (2, 0, "done")
        assert bridge.server._thread.is_alive()
