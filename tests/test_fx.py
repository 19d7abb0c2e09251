"""Specification of bridge.fx: effect chains from JSON, their validation, presets and tails."""

import inspect
import json

import numpy as np
import pedalboard
import pytest

from bridge.fx import BUILTIN_PARAMETERS, PRESET_FOLDER, FxChain, FxError, fx_presets

SAMPLE_RATE = 44100


def noise(channels, n_samples, seed=0):
    return (np.random.default_rng(seed).standard_normal((channels, n_samples)) * 0.1).astype(np.float32)


# --- presets -------------------------------------------------------------------------------

def test_the_promised_presets_ship():
    assert {"none", "glue", "space", "lofi", "wide"} <= set(fx_presets())


@pytest.mark.parametrize("path", sorted(PRESET_FOLDER.glob("*.json")), ids=lambda path: path.stem)
def test_every_preset_builds_the_plugins_and_values_its_json_names(path):
    spec = json.loads(path.read_text())
    chain = fx_presets()[path.stem]
    assert chain.tail_s == spec.get("tail_s", 0.0)
    assert len(chain.plugins) == len(spec["chain"])
    for entry, plugin in zip(spec["chain"], chain.plugins):
        assert type(plugin) is getattr(pedalboard, entry["plugin"])
        for parameter, value in entry.items():
            if parameter != "plugin":
                assert getattr(plugin, parameter) == pytest.approx(value, rel=1e-6), parameter


def test_preset_shapes_match_their_names():
    presets = fx_presets()
    assert len(presets["none"]) == 0 and presets["none"].tail_s == 0
    assert [type(p).__name__ for p in presets["glue"].plugins] == ["Compressor", "Limiter"]
    assert "Reverb" in [type(p).__name__ for p in presets["space"].plugins] and presets["space"].tail_s > 0
    lofi = [type(p).__name__ for p in presets["lofi"].plugins]
    assert "Bitcrush" in lofi and "LowpassFilter" in lofi
    wide = [type(p).__name__ for p in presets["wide"].plugins]
    assert "Chorus" in wide and "Delay" in wide and presets["wide"].tail_s > 0


def test_preset_can_be_chosen_by_name():
    assert FxChain.from_json("glue") == fx_presets()["glue"]


def test_allow_list_matches_pedalboards_own_parameters():
    for name, parameters in BUILTIN_PARAMETERS.items():
        plugin_class = getattr(pedalboard, name)
        properties = {
            key for key, value in inspect.getmembers(plugin_class)
            if isinstance(value, property) and key not in ("is_effect", "is_instrument")
        }
        assert set(parameters) == properties, name


# --- accepted forms ------------------------------------------------------------------------

def test_chain_is_accepted_as_list_json_text_or_object():
    entries = [{"plugin": "Gain", "gain_db": -6.0}, {"plugin": "Reverb", "room_size": 0.3}]
    from_list = FxChain.from_json(entries)
    assert FxChain.from_json(json.dumps(entries)) == from_list
    from_object = FxChain.from_json({"chain": entries, "tail_s": 1.5})
    assert from_object.tail_s == 1.5 and from_object.entries == entries


def test_to_json_reads_back_to_an_equal_chain():
    chain = FxChain.from_json({"chain": [{"plugin": "Delay", "delay_seconds": 0.3}], "tail_s": 2.0})
    assert FxChain.from_json(chain.to_json()) == chain
    assert json.loads(chain.to_json()) == {"chain": [{"plugin": "Delay", "delay_seconds": 0.3}], "tail_s": 2.0}


@pytest.mark.parametrize("nothing", [None, "", "  ", [], "[]"])
def test_nothing_gives_the_empty_chain(nothing):
    chain = FxChain.from_json(nothing)
    assert len(chain) == 0 and chain.tail_s == 0


def test_ladder_filter_mode_is_given_by_name():
    chain = FxChain.from_json([{"plugin": "LadderFilter", "mode": "HPF24", "cutoff_hz": 300}])
    assert chain.plugins[0].mode == pedalboard.LadderFilter.Mode.HPF24


# --- refused chains ------------------------------------------------------------------------

def test_unknown_parameter_names_the_entry_plugin_and_known_parameters():
    chain = [{"plugin": "Gain"}, {"plugin": "Delay"}, {"plugin": "Reverb", "roomsize": 0.5}]
    with pytest.raises(FxError) as caught:
        FxChain.from_json(chain)
    assert str(caught.value).startswith(
        "effect chain entry 2 (Reverb): unknown parameter 'roomsize' "
        "(known: room_size, damping, wet_level, dry_level, width, freeze_mode)"
    )
    assert "did you mean 'room_size'" in str(caught.value)


def test_unknown_plugin_names_the_entry():
    with pytest.raises(FxError, match=r"effect chain entry 1 \(Reverbb\): unknown plugin 'Reverbb' \(known: .*Reverb"):
        FxChain.from_json([{"plugin": "Gain"}, {"plugin": "Reverbb"}])


def test_plugin_outside_the_allow_list_is_refused():
    with pytest.raises(FxError, match=r"entry 0 \(Pedalboard\): unknown plugin"):
        FxChain.from_json([{"plugin": "Pedalboard"}])


def test_value_pedalboard_refuses_is_reported_with_the_entry():
    with pytest.raises(FxError, match=r"effect chain entry 0 \(Reverb\): bad value in room_size=2 \(.*between 0\.0 and 1\.0"):
        FxChain.from_json([{"plugin": "Reverb", "room_size": 2}])


@pytest.mark.parametrize("value", ["loud", True, None, float("nan"), float("inf")])
def test_value_that_is_not_a_finite_number_is_refused(value):
    with pytest.raises(FxError, match=r"entry 0 \(Gain\): bad value gain_db=.* \(expected a finite number\)"):
        FxChain.from_json([{"plugin": "Gain", "gain_db": value}])


def test_non_positive_frequency_is_refused():
    with pytest.raises(FxError, match=r"entry 0 \(LowpassFilter\): bad value cutoff_frequency_hz=-5"):
        FxChain.from_json([{"plugin": "LowpassFilter", "cutoff_frequency_hz": -5}])


def test_unknown_ladder_mode_lists_the_modes():
    with pytest.raises(FxError, match=r"bad value mode='LP' \(use one of: LPF12, HPF12"):
        FxChain.from_json([{"plugin": "LadderFilter", "mode": "LP"}])


def test_entry_that_is_not_an_object_is_refused():
    with pytest.raises(FxError, match=r"effect chain entry 0: expected an object"):
        FxChain.from_json(["Reverb"])


@pytest.fixture
def plugin_dir(tmp_path):
    """tmp_path as a plugin folder named at start (`serve --plugin-dir`), for this test only."""
    from bridge.fx import set_extra_plugin_folders

    set_extra_plugin_folders([tmp_path])
    yield tmp_path
    set_extra_plugin_folders([])


def test_missing_plugin_file_names_the_entry(plugin_dir, tmp_path):
    with pytest.raises(FxError, match=r"effect chain entry 0 \(vst3\): plugin not found: .*Nope\.vst3"):
        FxChain.from_json([{"plugin": "vst3", "path": str(tmp_path / "Nope.vst3")}])


def test_unloadable_plugin_file_names_the_entry(plugin_dir, tmp_path):
    fake = tmp_path / "Fake.vst3"
    fake.write_text("not a plugin")
    with pytest.raises(FxError, match=r"effect chain entry 0 \(vst3\): cannot load plugin .*Fake\.vst3"):
        FxChain.from_json([{"plugin": "vst3", "path": str(fake)}])


def test_external_entry_with_an_unknown_key_is_refused():
    with pytest.raises(FxError, match=r"entry 0 \(vst3\): unknown key 'preset'"):
        FxChain.from_json([{"plugin": "vst3", "path": "/x.vst3", "preset": "warm"}])


def test_unknown_preset_lists_the_presets():
    with pytest.raises(FxError, match=r"unknown effect preset 'glu' \(known: glue, lofi, none, space, wide"):
        FxChain.from_json("glu")


def test_invalid_json_is_refused():
    with pytest.raises(FxError, match="effect chain is not valid JSON"):
        FxChain.from_json('[{"plugin": "Gain",')


@pytest.mark.parametrize("tail_s", [-1, 61, float("nan"), "2"])
def test_bad_tail_is_refused(tail_s):
    with pytest.raises(FxError, match="tail_s"):
        FxChain.from_json({"chain": [], "tail_s": tail_s})


def test_unknown_chain_key_is_refused():
    with pytest.raises(FxError, match="unknown key 'tail'.*did you mean 'tail_s'"):
        FxChain.from_json({"chain": [], "tail": 2})


# --- processing ----------------------------------------------------------------------------

def test_empty_chain_returns_the_input_unchanged():
    audio = noise(2, 1000)
    assert np.array_equal(FxChain.from_json([]).process(audio, SAMPLE_RATE), audio)


@pytest.mark.parametrize("name", ["none", "glue", "space", "lofi", "wide"])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_processing_appends_the_tail_and_keeps_channels(name, channels):
    chain = fx_presets()[name]
    out = chain.process(noise(channels, 22050), SAMPLE_RATE)
    assert out.dtype == np.float32
    assert out.shape == (channels, 22050 + round(chain.tail_s * SAMPLE_RATE))
    assert np.isfinite(out).all()


def test_reverb_tail_rings_out_into_the_padding():
    chain = FxChain.from_json({"chain": [{"plugin": "Reverb", "room_size": 0.8}], "tail_s": 1.0})
    out = chain.process(noise(2, 4410), SAMPLE_RATE)
    tail = out[:, 4410:]
    assert np.sqrt(np.mean(tail[:, :4410] ** 2)) > 1e-3  # still ringing just after the input ends


def test_processing_error_names_the_entry():
    chain = FxChain.from_json([{"plugin": "Gain"}, {"plugin": "MP3Compressor"}])
    with pytest.raises(FxError, match=r"effect chain entry 1 \(MP3Compressor\): failed on 6-channel audio"):
        chain.process(noise(6, 4410), SAMPLE_RATE)


def test_processing_twice_gives_the_same_result():
    chain = fx_presets()["wide"]
    audio = noise(2, 8820)
    assert np.array_equal(chain.process(audio, SAMPLE_RATE), chain.process(audio, SAMPLE_RATE))


def test_a_request_builds_its_chain_once_for_validation_and_the_run(monkeypatch, tmp_path):
    """Plugins (VST3s above all) are slow to load: validate() and the pipeline share one chain."""
    from bridge.request import VampRequest
    from conftest import tone, write_wav

    built = []
    real = FxChain.from_json.__func__
    monkeypatch.setattr(FxChain, "from_json", classmethod(lambda cls, v: built.append(v) or real(cls, v)))
    request = VampRequest(str(write_wav(tmp_path / "a.wav", tone(0.5), 44100)), fx="space")
    request.validate()
    n_built = len(built)
    assert n_built > 0 and request.fx_chain() is request.fx_chain() and len(built) == n_built
    request.fx = [{"plugin": "Gain", "gain_db": -3}]
    assert [type(p).__name__ for p in request.fx_chain().plugins] == ["Gain"] and len(built) > n_built
    assert "_fx_built" not in request.to_dict()
