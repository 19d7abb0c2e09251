"""The `options` argument of the OSC `vamp` message (docs/osc.md): time and channel settings."""

import pytest

from bridge.osc import protocol
from bridge.osc.protocol import ProtocolError, decode
from bridge.request import RequestError

VAMP_ARGS = ["reaper:song", "/music/loop.wav", 1.0, 8.0, 1.0, 0, 2, "{item}", "{take}",
             "balanced", "", "", 2, 7, ""]


def request_with(options: str, priority: str = ""):
    cmd = decode("/vampbridge/vamp", ["id-1", 9000, ""] + VAMP_ARGS + [priority, options])
    return protocol.vamp_request(cmd)


def test_options_set_the_selection_loop_stereo_and_channel():
    request = request_with('{"regen_start_s": 3.0, "regen_length_s": 2.5, "loop": true, '
                           '"stereo": "coupled", "channel": "left"}')
    assert (request.regen_start_s, request.regen_length_s) == (3.0, 2.5)
    assert request.selection_s == (3.0, 5.5)
    assert request.loop is True and request.stereo_mode == "coupled" and request.channel == "left"


def test_empty_options_and_no_options_are_the_defaults():
    plain = protocol.vamp_request(decode("/vampbridge/vamp", ["id-1", 9000, ""] + VAMP_ARGS))
    for request in (plain, request_with("")):
        assert request.selection_s is None and request.loop is False
        assert request.stereo_mode == "mid_side" and request.channel == "all"


def test_an_unknown_option_is_a_bad_argument_naming_it():
    with pytest.raises(ProtocolError) as e:
        request_with('{"loop": true, "tempo": 120}')
    assert e.value.code == "bad_argument" and "'tempo'" in e.value.message


@pytest.mark.parametrize("text", ['[1, 2]', '"loop"', "{loop}"])
def test_options_must_be_a_json_object(text):
    with pytest.raises(ProtocolError) as e:
        request_with(text)
    assert e.value.code == "bad_request" and "options" in e.value.message


@pytest.mark.parametrize("options, field", [
    ('{"stereo": "wide"}', "stereo"),
    ('{"channel": "center"}', "channel"),
    ('{"loop": "yes"}', "loop"),
    ('{"regen_start_s": 2.0}', "regen_length_s"),
    ('{"regen_start_s": 0.5, "regen_length_s": 1.0}', "regen_start_s"),  # before the region (1..9 s)
    ('{"regen_start_s": 8.5, "regen_length_s": 1.0}', "regen_start_s"),  # past its end
    ('{"regen_start_s": 2.0, "regen_length_s": 0}', "regen_length_s"),
])
def test_bad_option_values_name_the_field(options, field):
    with pytest.raises(RequestError) as e:
        request_with(options)
    assert e.value.field == field and field in str(e.value)
