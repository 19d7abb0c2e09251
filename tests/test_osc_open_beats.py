"""The `beats` argument of the OSC `open` message (docs/osc.md): Reaper's tempo-map beats for the
companion's ruler, optional so older scripts keep working."""

import pytest

from bridge.osc import protocol
from bridge.osc.protocol import ProtocolError, decode

from conftest import tone, write_wav


@pytest.fixture
def open_args(tmp_path):
    path = write_wav(tmp_path / "song.wav", tone(2.0), 44100)
    return ["id-1", 9000, "", "reaper:song", str(path), 0.5, 1.5, 1.0, 44100, 1, "{item}", "{take}"]


def test_beats_are_read_in_seconds_from_the_region_start(open_args):
    request = protocol.open_request(decode("/vampbridge/open", open_args + [
        '{"beats_s": [0, 0.5, 1.0], "downbeats_s": [0.5]}']))
    assert request.beats_s == (0.0, 0.5, 1.0) and request.downbeats_s == (0.5,)


@pytest.mark.parametrize("extra", [[], [""]])
def test_an_open_without_beats_has_none(open_args, extra):
    request = protocol.open_request(decode("/vampbridge/open", open_args + extra))
    assert request.beats_s is None and request.downbeats_s is None


@pytest.mark.parametrize("text", [
    "{beats}", "[0, 0.5]", '{"beats_s": [0, "half"], "downbeats_s": []}', '{"beats_s": [0, NaN]}',
    '{"beats_s": [0, true]}', '{"beats_s": 0.5}', '{"downbeats_s": [0]}', '{"beats_s": [0], "bpm": 120}',
    '{"beats_s": [-1]}',
])
def test_malformed_beats_are_a_bad_argument_naming_the_field(open_args, text):
    with pytest.raises(ProtocolError) as e:
        protocol.open_request(decode("/vampbridge/open", open_args + [text]))
    assert e.value.code == "bad_argument" and "beats" in e.value.message
