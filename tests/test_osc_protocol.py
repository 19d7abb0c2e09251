"""Message checks of the OSC protocol (docs/osc.md), without sockets."""

import math
import struct

import pytest
from pythonosc.osc_message import OscMessage

from bridge.osc import protocol
from bridge.osc.client import build_message
from bridge.osc.protocol import ProtocolError, decode, split_packet

VAMP_ARGS = ("reaper:song", "/music/loop.wav", 1.5, 0.0, 1.0, 0, 2, "{item}", "{take}",
             "creative", '{"temperature": 0.9}', "", 3, -1, "")


def _vamp(*override, **named):
    args = list(VAMP_ARGS)
    for i, v in override:
        args[i] = v
    return decode("/vampbridge/vamp", ["id-1", 9000, ""] + args)


def test_vamp_message_decodes_into_named_checked_arguments():
    cmd = _vamp()
    assert cmd.name == "vamp"
    assert cmd.header == protocol.Header("id-1", 9000, "")
    assert cmd.args["source_path"] == "/music/loop.wav"
    assert cmd.args["start_s"] == 1.5 and isinstance(cmd.args["start_s"], float)
    assert cmd.args["n_variations"] == 3


def test_numbers_accept_int_float_and_double():
    cmd = _vamp((2, 2), (12, 3.0))  # start_s as int, n_variations as an integral float
    assert cmd.args["start_s"] == 2.0 and cmd.args["n_variations"] == 3


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinite_numbers_are_refused(bad):
    with pytest.raises(ProtocolError) as e:
        _vamp((2, bad))
    assert e.value.code == "bad_argument" and "start_s" in e.value.message


def test_fractional_integer_argument_is_refused():
    with pytest.raises(ProtocolError) as e:
        _vamp((12, 2.5))
    assert e.value.code == "bad_argument" and "n_variations" in e.value.message


def test_wrong_type_is_a_bad_request_naming_the_argument():
    with pytest.raises(ProtocolError) as e:
        _vamp((1, 42))
    assert e.value.code == "bad_request" and "source_path" in e.value.message


def test_booleans_are_not_numbers():
    with pytest.raises(ProtocolError) as e:
        _vamp((12, True))
    assert e.value.code == "bad_request"


def test_wrong_argument_count_is_a_bad_request_listing_the_arguments():
    with pytest.raises(ProtocolError) as e:
        decode("/vampbridge/vamp", ["id-1", 9000, "", "reaper"])
    assert e.value.code == "bad_request" and "18 arguments" in e.value.message


def test_optional_priority_follows_the_vamp_arguments():
    cmd = decode("/vampbridge/vamp", ["id-1", 9000, ""] + list(VAMP_ARGS) + ["batch"])
    assert protocol.priority_of(cmd).name == "BATCH"
    bad = decode("/vampbridge/vamp", ["id-1", 9000, ""] + list(VAMP_ARGS) + ["urgent"])
    with pytest.raises(ProtocolError):
        protocol.priority_of(bad)


def test_unknown_address_is_refused():
    for address in ("/vampbridge/explode", "/other/hello", "/vampbridge/"):
        with pytest.raises(ProtocolError) as e:
            decode(address, ["id", 9000, ""])
        assert e.value.code == "unknown_address"


def test_reply_port_out_of_range_is_refused():
    with pytest.raises(ProtocolError):
        decode("/vampbridge/ping", ["id", 70000, ""])
    assert protocol.reply_address_of(["id", 0, ""]) is None
    assert protocol.reply_address_of(["id", 9000.0]) == ("id", 9000)
    assert protocol.reply_address_of([9000, "id"]) is None


def test_malformed_json_is_a_bad_request():
    with pytest.raises(ProtocolError) as e:
        protocol.parse_json("sampling", '{"temperature": ')
    assert e.value.code == "bad_request" and "sampling" in e.value.message


def test_deeply_nested_json_is_refused_not_a_crash():
    with pytest.raises(ProtocolError):
        protocol.parse_json("mask", "[" * 50_000 + "]" * 50_000)


def test_bundle_contents_are_split_into_messages():
    m1 = build_message("/vampbridge/ping", ("a", 9000, ""))
    m2 = build_message("/vampbridge/hello", ("b", 9000, ""))
    bundle = b"#bundle\x00" + b"\x00" * 8
    for m in (m1, m2):
        bundle += struct.pack(">i", len(m)) + m
    assert [m.address for m in split_packet(bundle)] == ["/vampbridge/ping", "/vampbridge/hello"]


def test_nested_bundles_beyond_the_limit_are_refused():
    packet = build_message("/vampbridge/ping", ("a", 9000, ""))
    for _ in range(protocol.MAX_BUNDLE_DEPTH + 1):
        packet = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", len(packet)) + packet
    with pytest.raises(ProtocolError):
        split_packet(packet)


@pytest.mark.parametrize("garbage", [b"", b"hello", b"/vampbridge/ping", b"/x\x00\x00,i\x00\x00",
                                     b"#bundle\x00\x00", b"/a\x00\x00,s\x00\x00\xff\xfe\x00\x00"])
def test_malformed_packets_raise_protocol_errors_only(garbage):
    try:
        split_packet(garbage)
    except ProtocolError as e:
        assert e.code == "bad_request"


def test_replies_carry_the_documented_types():
    data = protocol.encode_reply("progress", "job-1", 0.5, "coarse", 2)
    msg = OscMessage(data)
    assert msg.address == "/vampbridge/progress"
    assert data.startswith(b"/vampbridge/progress\x00\x00\x00\x00,sfsi")
    assert list(msg.params) == ["job-1", 0.5, "coarse", 2]
    with pytest.raises(ValueError):
        protocol.encode_reply("progress", "job-1")


def test_status_list_is_shortened_to_fit_a_datagram():
    jobs = [{"job_id": f"job-{i}", "source_path": "/x" * 100} for i in range(2000)]
    text = protocol.fit_json_list(jobs)
    assert len(text.encode()) < protocol.MAX_REPLY_BYTES
    assert text.startswith('[{"job_id": "job-0"')


def test_every_documented_reply_and_request_is_in_the_tables():
    with open("docs/osc.md", encoding="utf-8") as f:
        doc = f.read()
    for name in protocol.REQUESTS:
        assert f"| `{name}` |" in doc
    for name in protocol.REPLIES:
        assert f"| `{name}` |" in doc


def test_mask_file_that_is_not_json_is_refused_without_showing_its_content(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    args = list(VAMP_ARGS)
    args[9] = f"@{secret}"
    cmd = decode("/vampbridge/vamp", ["id-1", 9000, ""] + args)
    with pytest.raises(ProtocolError) as e:
        protocol.vamp_request(cmd)
    assert e.value.code == "bad_request" and "hunter2" not in e.value.message


def test_mask_file_holding_json_is_read_when_the_request_arrives(tmp_path):
    recipe = tmp_path / "mask.json"
    recipe.write_text('{"preset": "subtle"}')
    args = list(VAMP_ARGS)
    args[9] = f"@{recipe}"
    args[1] = str(recipe)  # any path: vamp_request checks values, not the source file
    cmd = decode("/vampbridge/vamp", ["id-1", 9000, ""] + args)
    assert protocol.vamp_request(cmd).mask == {"preset": "subtle"}
