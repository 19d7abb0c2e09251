"""The Lua OSC 1.0 library (reaper_scripts/VampBridge/vampbridge_osc.lua) against python-osc and
liblo's oscsend / oscdump, in both directions, for every type the protocol uses."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pythonosc.osc_bundle import OscBundle
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage

sys.path.insert(0, str(Path(__file__).parent / "lua"))
from fake_service import build, free_udp_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RUN_OSC = ROOT / "tests" / "lua" / "run_osc.lua"
LUA = shutil.which("lua5.4")

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed")
needs_liblo = pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                                 reason="liblo-tools (oscsend, oscdump) is not installed")


def lua_encode(tmp_path: Path, packets: list[dict]) -> list[bytes]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(packets))
    out = subprocess.run([LUA, str(RUN_OSC), "encode", str(spec)], capture_output=True, text=True,
                         check=True, timeout=20).stdout
    return [bytes.fromhex(line) for line in out.split()]


def lua_decode(packets: list[bytes]) -> list[dict]:
    hex_lines = "".join(p.hex() + "\n" for p in packets)
    out = subprocess.run([LUA, str(RUN_OSC), "decode"], input=hex_lines, capture_output=True, text=True,
                         check=True, timeout=20).stdout
    return [json.loads(line) for line in out.splitlines()]


def message(address: str, types: str, *values) -> dict:
    """A packet spec for run_osc.lua; bytes values become hex."""
    return {"address": address, "types": types,
            "values": [v.hex() if isinstance(v, bytes) else v for v in values]}


EVERY_TYPE = [
    ("i", [0]), ("i", [-2147483648]), ("i", [2147483647]), ("f", [1.5]), ("f", [-0.25]),
    ("d", [3.141592653589793]), ("d", [-1e-300]), ("s", ["hello"]), ("s", ["héllo ☃"]),
    ("b", [b"\x00\x01\x02"]), ("T", []), ("F", []), ("N", []), ("h", [-(2 ** 40)]),
    ("ssdddiisssssiis", ["client", "/tmp/a b.wav", 1.25, 2.5, 0.5, 48000, 2, "{G}", "{T}", "balanced",
                          "", "none", 3, -1, "/tmp/out"]),
]


@pytest.mark.parametrize("types,values", EVERY_TYPE, ids=[t for t, _ in EVERY_TYPE])
def test_lua_encoding_is_byte_identical_to_python_osc(tmp_path, types, values):
    (packet,) = lua_encode(tmp_path, [message("/vampbridge/test", types, *values)])
    assert packet == build("/vampbridge/test", types, *values)
    decoded = OscMessage(packet)
    assert decoded.address == "/vampbridge/test"
    expected = list(values) + [{"T": True, "F": False, "N": None}[t] for t in types if t in "TFN"]
    assert sorted(map(repr, decoded.params)) == sorted(map(repr, expected))


@pytest.mark.parametrize("types,values", EVERY_TYPE, ids=[t for t, _ in EVERY_TYPE])
def test_lua_decodes_python_osc_messages(types, values):
    (decoded,) = lua_decode([build("/vampbridge/test", types, *values)])
    assert decoded["address"] == "/vampbridge/test"
    assert decoded["types"] == types
    data = iter(values)
    for tag, arg in zip(types, decoded["args"]):
        if tag in "TFN":
            assert arg == {"T": True, "F": False, "N": None}[tag]
        elif tag == "b":
            assert bytes.fromhex(arg["hex"]) == next(data)
        elif tag == "f":
            assert arg == pytest.approx(next(data), rel=1e-7)
        else:
            assert arg == next(data)


@pytest.mark.parametrize("length", range(0, 9))
def test_string_padding_for_lengths_0_to_8(tmp_path, length):
    text = "abcdefgh"[:length]
    (packet,) = lua_encode(tmp_path, [message("/s", "s", text)])
    # "/s\0\0" + ",s\0\0" + the string, one zero, then zeros up to a multiple of 4
    assert len(packet) == 8 + (length // 4 + 1) * 4
    assert packet == build("/s", "s", text)
    assert lua_decode([packet])[0]["args"] == [text]


@pytest.mark.parametrize("length", range(0, 6))
def test_blob_padding_for_lengths_0_to_5(tmp_path, length):
    blob = bytes(range(1, length + 1))
    (packet,) = lua_encode(tmp_path, [message("/b", "b", blob)])
    expected = b"/b\0\0,b\0\0" + length.to_bytes(4, "big") + blob + b"\0" * ((4 - length % 4) % 4)
    assert packet == expected
    if length > 0:  # python-osc refuses to build an empty blob, but reads one
        assert packet == build("/b", "b", blob)
    assert OscMessage(packet).params == [blob]
    assert lua_decode([packet])[0]["args"] == [{"hex": blob.hex()}]


@pytest.mark.parametrize("length", range(0, 9))
def test_address_padding(tmp_path, length):
    address = "/" + "x" * length
    (packet,) = lua_encode(tmp_path, [message(address, "")])
    assert packet == build(address, "")
    assert lua_decode([packet])[0] == {"address": address, "types": "", "args": []}


def test_nested_bundles_both_directions(tmp_path):
    spec = {"bundle": True, "timetag": 1, "elements": [
        message("/first", "is", 1, "one"),
        {"bundle": True, "timetag": 1, "elements": [message("/deep", "dT", 0.5)]},
        message("/last", "b", b"\x09"),
    ]}
    (packet,) = lua_encode(tmp_path, [spec])

    bundle = OscBundle(packet)
    assert bundle.timestamp == IMMEDIATELY
    contents = list(bundle)
    assert contents[0].address == "/first" and contents[0].params == [1, "one"]
    assert isinstance(contents[1], OscBundle)
    assert list(contents[1])[0].params == [0.5, True]
    assert contents[2].params == [b"\x09"]

    builder = OscBundleBuilder(IMMEDIATELY)
    builder.add_content(OscMessage(build("/first", "is", 1, "one")))
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessage(build("/deep", "dT", 0.5)))
    builder.add_content(inner.build())
    builder.add_content(OscMessage(build("/last", "b", b"\x09")))
    python_packet = builder.build().dgram
    assert python_packet == packet

    (decoded,) = lua_decode([python_packet])
    assert decoded["bundle"] is True and decoded["timetag"] == 1
    first, nested, last = decoded["elements"]
    assert first["args"] == [1, "one"]
    assert nested["elements"][0] == {"address": "/deep", "types": "dT", "args": [0.5, True]}
    assert last["args"] == [{"hex": "09"}]


def test_malformed_packets_are_reported_not_raised():
    good = build("/ok", "is", 1, "abc")
    cases = [
        good[:-4],                          # truncated inside the string
        good + b"\0\0\0\0",                 # bytes after the last argument
        b"/ok\0" + b"is\0\0" + good[8:],    # type tags without the comma
        b"/ok\0,i\0\0\0\0",                 # int32 cut short (and not a multiple of 4)
        b"noslash\0,\0\0\0",                # address without '/'
        b"/ok\0,q\0\0",                     # unknown type tag
        b"#bundle\0" + b"\0" * 7 + b"\1" + (100).to_bytes(4, "big"),  # element past the end
    ]
    for decoded in lua_decode(cases):
        assert "error" in decoded, decoded
    assert lua_decode([good])[0]["args"] == [1, "abc"]


def test_encoder_refuses_wrong_values(tmp_path):
    for bad in [message("/x", "i", 1.5), message("/x", "s"), message("/x", "i", 1, 2), message("x", "")]:
        spec = tmp_path / "bad.json"
        spec.write_text(json.dumps([bad]))
        result = subprocess.run([LUA, str(RUN_OSC), "encode", str(spec)], capture_output=True, text=True, timeout=20)
        assert result.returncode != 0, bad


@needs_liblo
def test_oscsend_packets_decode_in_lua(tmp_path):
    cases = [
        ("ifsdTFN", ["3", "1.5", "hello world", "2.25"]),
        ("s", [""]),
        ("hS", ["-1099511627776", "sym"]),
        ("m", ["01020304"]),
        ("I", []),
    ]
    packets = []
    for i, (types, values) in enumerate(cases):
        path = tmp_path / f"p{i}.osc"
        subprocess.run(["oscsend", f"file://{path}", "/liblo/test", types, *values], check=True, timeout=10)
        packets.append(path.read_bytes())
    decoded = lua_decode(packets)
    assert decoded[0]["args"] == [3, 1.5, "hello world", 2.25, True, False, None]
    assert decoded[1]["args"] == [""]
    assert decoded[2]["args"] == [-1099511627776, "sym"]
    assert decoded[3]["types"] == "m" and decoded[3]["args"] == [{"hex": "01020304"}]
    assert decoded[4]["args"] == ["INFINITUM"]


@needs_liblo
def test_lua_receives_oscsend_over_udp():
    receiver = subprocess.Popen([LUA, str(RUN_OSC), "receive", "1"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(receiver.stdout.readline().split()[1])
        subprocess.run(["oscsend", "127.0.0.1", str(port), "/vampbridge/result", "sisd", "job-1", "2", "/tmp/x.wav",
                        "0.5"], check=True, timeout=10)
        decoded = json.loads(receiver.stdout.readline())
    finally:
        receiver.wait(timeout=10)
    assert decoded == {"address": "/vampbridge/result", "types": "sisd", "args": ["job-1", 2, "/tmp/x.wav", 0.5]}


@needs_liblo
def test_oscdump_prints_what_lua_sends(tmp_path):
    port = free_udp_port()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        # oscdump prints nothing until it is listening; probe until it sees a message.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps([
            message("/vampbridge/progress", "sfsi", "job-1", 0.5, "coarse", -1),
            message("/all", "ifdsbTFN", 7, 1.5, 2.25, "txt", b"\x01\x02\x03"),
            {"bundle": True, "timetag": 1, "elements": [message("/in/bundle", "i", 42),
                                                        {"bundle": True, "timetag": 1,
                                                         "elements": [message("/deeper", "s", "x")]}]},
        ]))
        # Probe from a thread until oscdump prints a probe: then it is listening.
        listening = threading.Event()

        def probe_until_listening():
            while not listening.wait(0.05):
                probe.sendto(build("/ready", ""), ("127.0.0.1", port))

        threading.Thread(target=probe_until_listening, daemon=True).start()
        assert "/ready" in dump.stdout.readline()
        listening.set()
        lines = []
        subprocess.run([LUA, str(RUN_OSC), "send", str(port), str(spec)], check=True, timeout=20)
        while len(lines) < 4:
            line = dump.stdout.readline()
            if "/ready" not in line:
                lines.append(line.split(" ", 1)[1].strip())  # drop the timetag column
    finally:
        dump.kill()
        dump.wait()
    assert lines[0] == '/vampbridge/progress sfsi "job-1" 0.500000 "coarse" -1'
    assert lines[1] == '/all ifdsbTFN 7 1.500000 2.250000 "txt" [3b 0x1 0x2 0x3] #T #F Nil'
    assert lines[2] == "/in/bundle i 42"
    assert lines[3] == '/deeper s "x"'
