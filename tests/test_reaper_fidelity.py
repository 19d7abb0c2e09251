"""Takes that play exactly like the item (issue 13): for every scenario, the new take's source,
offset, playrate and properties map every timeline instant to the same source instant as the
take it was made from (within one sample), the item itself is left alone, and the project changes
only inside the job's one undo point (a run that adds nothing leaves it clean).

The scripts run as real files under Lua 5.4 with the reaper test double against the fake service
(tests/lua/fake_service.py), which renders in source time like the real one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "lua"))
from fake_service import FakeService, write_wav  # noqa: E402
from playback import assert_plays_like  # noqa: E402
from scenario import LUA, PRELUDE_COMMON, Scenario, item_by_guid  # noqa: E402

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed")

PRELUDE = PRELUDE_COMMON + """
local function vamp_and_report()
  local before = double.snapshot().tracks
  run_to_end("Vamp selected items")
  H.out.before = before
end
"""

VAMP_ARGS = ["id", "reply_port", "token", "client", "source_path", "start_s", "length_s", "playrate", "sample_rate",
             "channels", "item_guid", "take_guid", "mask", "sampling", "fx", "n_variations", "seed", "output_dir"]


def vamp_requests(svc: FakeService) -> dict[str, dict]:
    """The vamp requests by item GUID, with `options` decoded ({} when not sent)."""
    requests = {}
    for args in svc.requests_to("vamp"):
        request = dict(zip(VAMP_ARGS, args))
        request["options"] = json.loads(args[19]) if len(args) > 19 and args[19] else {}
        requests[request["item_guid"]] = request
    return requests


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "drums.wav"
    write_wav(path, 8.0, 44100, 2)
    return path


@pytest.fixture
def svc():
    service = FakeService()
    yield service
    service.close()


def settings_for(port: int, tmp_path: Path, **extra) -> dict:
    values = dict(port=port, reply_timeout_s=0.3, startup_wait_s=1.0, autostart="",
                  output_dir=str(tmp_path / "renders"), n_variations=1, preset="balanced", fx="none")
    values.update(extra)
    return values


def run(tmp_path, code: str, **params) -> dict:
    return Scenario(tmp_path, PRELUDE + code, **params).run()


def items_by_guid(tracks: list[dict]) -> dict[str, dict]:
    return {item["guid"]: item for track in tracks for item in track["items"]}


def check_clean_job(report: dict, n_points: int) -> None:
    """The job changed the project only inside its undo points."""
    assert report["errors"] == [], report["errors"]
    assert len(report["undo_log"]) == n_points
    assert report["changes_outside_undo"] == 0
    assert sum(len(p["changes"]) for p in report["undo_log"]) == len(report["changes"])
    assert not any(c["undo_block"] for c in report["changes"])


def check_fidelity(report: dict, svc: FakeService, *, loop: bool = False) -> dict[str, dict]:
    """Every vamped item's new take plays like its original; the items are untouched; each job
    changed the project inside its one undo point only."""
    requests = vamp_requests(svc)
    check_clean_job(report, len(requests))
    before = items_by_guid(report["out"]["before"])
    for guid, request in requests.items():
        item = item_by_guid(report, guid)
        original, *new = item["takes"]
        assert new, f"no take was added to {guid}: {report['console']}"
        for take in new:
            assert_plays_like(item, original, take, request["start_s"], loop=loop)
        assert item["values"] == before[guid]["values"], "the item's own properties changed"
        assert original["values"] == before[guid]["takes"][0]["values"], "the original take changed"
    return requests


# Playrate -----------------------------------------------------------------------------------


@pytest.mark.parametrize("playrate, startoffs_s, length_s", [
    (0.5, 0.5, 3.0), (1.5, 0.5, 3.0), (2.0, 1.25, 2.5), (1.5, -0.4, 2.0), (2.0, 5.0, 3.0)])
def test_a_take_at_any_playrate_and_offset_is_vamped_in_place(tmp_path, wav, svc, playrate, startoffs_s, length_s):
    report = run(tmp_path, f"""
      item{{ position_s = 2.3, length_s = {length_s}, startoffs_s = {startoffs_s}, playrate = {playrate} }}
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    check_clean_job(report, 1)
    (request,) = check_fidelity(report, svc).values()
    # The region is what the item plays, in source seconds: length x playrate (only real audio).
    lo = max(startoffs_s, 0.0)
    hi = min(startoffs_s + length_s * playrate, 8.0)
    assert request["start_s"] == pytest.approx(lo, abs=1 / 44100)
    assert request["length_s"] == pytest.approx(hi - lo, abs=1 / 44100)
    assert request["playrate"] == playrate
    # On a source sample, so the service's round(start_s * rate) is exact.
    assert request["start_s"] * 44100 == pytest.approx(round(request["start_s"] * 44100), abs=1e-6)


def test_the_reported_case_playrate_1_5_offset_0_5_length_3(tmp_path, wav, svc):
    report = run(tmp_path, """
      local it = item{ position_s = 1, length_s = 3, startoffs_s = 0.5, playrate = 1.5 }
      vamp_and_report()
      H.out.take = { playrate = it.active.playrate, startoffs = it.active.startoffs_s }
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    (request,) = check_fidelity(report, svc).values()
    assert (request["length_s"], request["playrate"]) == (4.5, 1.5)
    # The 4.5 s render plays at 1.5 from its start: all of it, in 3 s of item, at the pitch heard.
    assert report["out"]["take"] == {"playrate": 1.5, "startoffs": 0}


# Take properties and channel modes -----------------------------------------------------------


@pytest.mark.parametrize("chanmode, channel", [(0, None), (1, None), (2, "mono"), (3, "left"), (4, "right"), (5, None)])
def test_take_properties_are_copied_and_the_played_channels_are_vamped(tmp_path, wav, svc, chanmode, channel):
    report = run(tmp_path, f"""
      item{{ position_s = 1, length_s = 2, startoffs_s = 0.75, playrate = 1.25,
        take = {{ D_PITCH = 5, D_VOL = 0.5, D_PAN = -0.7, B_PPITCH = 1, I_PITCHMODE = 589824, D_PANLAW = 0.5,
                 I_CHANMODE = {chanmode} }},
        item = {{ D_FADEINLEN = 0.1, D_FADEOUTLEN = 0.2, C_FADEINSHAPE = 2, B_MUTE = 1, I_CUSTOMCOLOR = 16777471,
                 C_LOCK = 0, D_VOL = 0.8, D_SNAPOFFSET = 0.05 }} }}
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    check_clean_job(report, 1)
    (request,) = check_fidelity(report, svc).values()  # checks pitch, volume, pan, ... and the item
    if channel is None:
        assert request["options"] == {} and request["channels"] == 2
    else:
        assert request["options"] == {"channel": channel} and request["channels"] == 1


# Project sample rate ------------------------------------------------------------------------


@pytest.mark.parametrize("in_force, expected_rate", [(False, 44100), (True, 48000)])
def test_the_project_rate_is_used_only_when_in_force(tmp_path, wav, svc, in_force, expected_rate):
    report = run(tmp_path, f"""
      reaper.GetSetProjectInfo(0, "PROJECT_SRATE", 48000, true)
      reaper.GetSetProjectInfo(0, "PROJECT_SRATE_USE", {1 if in_force else 0}, true)
      item{{ position_s = 1, length_s = 2, startoffs_s = 0.3, playrate = 1.5 }}
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    (request,) = check_fidelity(report, svc).values()
    assert request["sample_rate"] == expected_rate
    (item,) = report["tracks"][0]["items"]
    assert item["takes"][1]["sample_rate"] == expected_rate


# Time selections -----------------------------------------------------------------------------


@pytest.mark.parametrize("where, selection, regen", [
    ("start", (1.0, 2.0), (0.5, 1.5)),     # item [1, 4], take from 0.5 at rate 1.5
    ("middle", (2.0, 3.0), (2.0, 1.5)),
    ("end", (3.0, 5.0), (3.5, 1.5)),       # past the item's end: up to it
])
def test_a_time_selection_regenerates_only_its_part_and_the_take_covers_the_item(
        tmp_path, wav, svc, where, selection, regen):
    report = run(tmp_path, f"""
      item{{ position_s = 1, length_s = 3, startoffs_s = 0.5, playrate = 1.5 }}
      double.set_time_selection({selection[0]}, {selection[1]})
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    check_clean_job(report, 1)
    (request,) = check_fidelity(report, svc).values()
    assert (request["start_s"], request["length_s"]) == pytest.approx((0.5, 4.5))  # the whole item
    options = request["options"]
    assert (options["regen_start_s"], options["regen_length_s"]) == pytest.approx(regen, abs=1 / 44100)
    assert "loop" not in options


def test_a_time_selection_across_two_items_regenerates_each_part(tmp_path, wav, svc):
    report = run(tmp_path, """
      local a = item{ track = 1, position_s = 0, length_s = 2, startoffs_s = 1 }
      local b = item{ track = 1, position_s = 2, length_s = 2, startoffs_s = 0, playrate = 0.5 }
      double.set_time_selection(1.5, 3)
      vamp_and_report()
      H.out.a, H.out.b = a.guid, b.guid
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    check_clean_job(report, 2)
    requests = check_fidelity(report, svc)
    a, b = requests[report["out"]["a"]], requests[report["out"]["b"]]
    assert a["options"] == pytest.approx({"regen_start_s": 2.5, "regen_length_s": 0.5})
    assert b["options"] == pytest.approx({"regen_start_s": 0.0, "regen_length_s": 0.5})


def test_a_time_selection_over_no_audio_skips_the_item_and_changes_nothing(tmp_path, wav, svc):
    report = run(tmp_path, """
      item{ position_s = 1, length_s = 3, startoffs_s = -2 }   -- 2 s of silence, then audio
      double.set_time_selection(1.5, 2.5)
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    (message,) = report["messages"]
    assert "the time selection covers none of the item's source audio" in message["message"]
    assert svc.requests_to("vamp") == [] and report["undo_log"] == [] and report["dirty"] is False


def test_a_section_source_is_vamped_at_its_place_in_the_file(tmp_path, wav, svc):
    report = run(tmp_path, """
      item{ position_s = 1, length_s = 2, startoffs_s = 0.5, playrate = 1.25,
        source = double.source{ section = { offset_s = 1.5, length_s = 3 }, parent = { file = P.wav } } }
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    check_clean_job(report, 1)
    (request,) = vamp_requests(svc).values()
    # The take's source second 0.5 is second 2.0 of the file; 2 s at 1.25 is 2.5 s of it.
    assert (request["source_path"], request["start_s"], request["length_s"]) == (str(wav), 2.0, 2.5)
    (item,) = report["tracks"][0]["items"]
    original, new = item["takes"]
    assert_plays_like(item, original, new, request["start_s"] - 1.5)  # section seconds


@pytest.mark.parametrize("kind, why", [
    ("reversed", "its take plays its source reversed"),
    ("stretch", "its take has stretch markers"),
])
def test_takes_a_new_take_could_not_follow_are_skipped_with_the_reason(tmp_path, wav, svc, kind, why):
    report = run(tmp_path, f"""
      local kind = "{kind}"
      local spec = {{ position_s = 1, length_s = 2 }}
      if kind == "reversed" then
        spec.source = double.source{{ section = {{ offset_s = 0, length_s = 8, reversed = true }}, parent = {{ file = P.wav }} }}
      end
      local it = item(spec)
      if kind == "stretch" then it.active.stretch_markers = {{ {{ 0.5, 0.6 }} }} end
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    (message,) = report["messages"]
    assert why in message["message"] and "Render items to new take" in message["message"]
    assert svc.requests_to("vamp") == [] and report["dirty"] is False


# Loops ---------------------------------------------------------------------------------------


def test_an_item_looping_its_source_is_vamped_as_one_seamless_cycle(tmp_path, svc):
    loop_wav = tmp_path / "loop.wav"
    write_wav(loop_wav, 2.0, 44100, 2)
    report = run(tmp_path, """
      item{ position_s = 1, length_s = 5, startoffs_s = 0.5, playrate = 1.25, loop_source = true }
      vamp_and_report()
    """, wav=str(loop_wav), settings=settings_for(svc.port, tmp_path))
    check_clean_job(report, 1)
    (request,) = check_fidelity(report, svc, loop=True).values()
    assert (request["start_s"], request["length_s"]) == (0, 2.0)
    assert request["options"] == {"loop": True}
    (item,) = report["tracks"][0]["items"]
    assert item["values"]["B_LOOPSRC"] == 1  # left as it was: the new take loops like the old one
    assert item["takes"][1]["source_length_s"] == 2.0  # one cycle, to the sample


def test_loop_flag_on_an_item_inside_its_source_is_no_loop(tmp_path, wav, svc):
    report = run(tmp_path, """
      item{ position_s = 1, length_s = 2, startoffs_s = 0.5, loop_source = true }
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    (request,) = check_fidelity(report, svc).values()
    assert request["options"] == {} and (request["start_s"], request["length_s"]) == (0.5, 2.0)
    # The render ends where the item does, so the item's loop flag repeats nothing audible.
    (item,) = report["tracks"][0]["items"]
    new = item["takes"][1]
    assert new["values"]["D_STARTOFFS"] == 0 and new["source_length_s"] == pytest.approx(2.0)


def test_a_time_selection_that_is_the_repeating_loop_is_vamped_as_a_loop(tmp_path, wav, svc):
    report = run(tmp_path, """
      item{ position_s = 0, length_s = 4, startoffs_s = 0 }
      double.set_time_selection(1, 3)       -- the loop points follow it (Reaper's default)
      reaper.GetSetRepeat(1)
      vamp_and_report()
      reaper.GetSetRepeat(0)
      double.project.loop_points = { 1, 3 }
      double.set_time_selection(1, 2)       -- not the loop any more
      H.out.before = double.snapshot().tracks
      run_to_end("Vamp selected items")
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    first, second = [dict(zip(VAMP_ARGS, a), options=json.loads(a[19])) for a in svc.requests_to("vamp")]
    assert first["options"] == {"loop": True, "regen_start_s": 1.0, "regen_length_s": 2.0}
    assert second["options"] == {"regen_start_s": 1.0, "regen_length_s": 1.0}


# Tempo-map beats -----------------------------------------------------------------------------


def expected_beats(t_lo: float, t_hi: float) -> tuple[list[float], list[float]]:
    """The map of the test, by hand: 2 bars of 4/4 at 120, a bar of 4/4 at 90, then 7/8 at 90
    (7 eighth-note beats a bar). Returns beat and downbeat times in [t_lo, t_hi)."""
    beats, downbeats, t = [], [], 0.0
    bars = [(4, 0.5)] * 2 + [(4, 60 / 90)] + [(7, 30 / 90)] * 4  # (beats, seconds per beat)
    for n, beat_s in bars:
        for k in range(n):
            if t_lo - 1e-9 <= t < t_hi - 1e-9:
                beats.append(t)
                if k == 0:
                    downbeats.append(t)
            t += beat_s
    return beats, downbeats


def test_beat_driven_presets_send_the_tempo_maps_beats_in_region_time(tmp_path, wav, svc):
    report = run(tmp_path, """
      double.project.tempo = {
        { measure = 0, bpm = 120, num = 4, denom = 4 },
        { measure = 2, bpm = 90, num = 4, denom = 4 },
        { measure = 3, bpm = 90, num = 7, denom = 8 },
      }
      item{ position_s = 3, length_s = 5, startoffs_s = 0.2, playrate = 1.5 }
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path, preset="rhythm"))
    (request,) = check_fidelity(report, svc).values()
    mask = json.loads(request["mask"])
    beats, downbeats = expected_beats(3.0, 8.0)
    # Project time -> source time (playrate 1.5) -> seconds from the region start (0.2 s).
    to_region = [round((t - 3.0) * 1.5, 6) for t in beats]
    assert mask["preset"] == "rhythm"
    assert mask["beats_s"] == pytest.approx(to_region, abs=1e-6)
    assert mask["downbeats_s"] == pytest.approx([round((t - 3.0) * 1.5, 6) for t in downbeats], abs=1e-6)
    # The tempo change and the 7/8 bar are inside: beats 2/3 s apart, then 1/3 s; bars at 4 and 6 2/3 s.
    assert downbeats == pytest.approx([4.0, 6.0 + 2 / 3])
    assert len([b for b in beats if b >= 6.0 + 2 / 3 - 1e-9]) == 4


def test_presets_that_are_not_beat_driven_send_just_their_name(tmp_path, wav, svc):
    run(tmp_path, """
      item{ position_s = 0, length_s = 1 }
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path, preset="creative"))
    (request,) = vamp_requests(svc).values()
    assert request["mask"] == "creative"


# Re-render -----------------------------------------------------------------------------------


def test_rerender_twice_adds_one_take_and_says_when_the_render_is_already_there(tmp_path, wav, svc):
    report = run(tmp_path, """
      local it = item{ position_s = 1, length_s = 2, startoffs_s = 0.5, playrate = 1.5, take = { D_PITCH = 2 } }
      vamp_and_report()
      double.user_inputs = { { "glue", "7" } }
      run_to_end("Re-render selected takes")
      H.out.after_first = double.snapshot()
      double.user_inputs = { { "", "-1" } }   -- as recorded: the same render
      run_to_end("Re-render selected takes")
      H.out.names = H.take_names(it)
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    first = report["out"]["after_first"]
    (item,) = first["tracks"][0]["items"]
    original, vamped, rerendered = item["takes"]
    (request,) = vamp_requests(svc).values()
    assert_plays_like(item, original, rerendered, request["start_s"])
    assert len(first["undo_log"]) == 2 and first["changes_outside_undo"] == 0
    # The second re-render changes nothing and says which take already holds it.
    assert report["out"]["names"] == ["drums.wav", "vamp 1 balanced s1000", "vamp 1 balanced s7 glue"]
    (message,) = report["messages"]
    assert 'already has this render as take 3, "vamp 1 balanced s7 glue"' in message["message"]
    assert len(report["undo_log"]) == 2 and report["changes"] == first["changes"]


# Runs that add nothing leave the project clean -----------------------------------------------


def test_a_failed_job_leaves_no_undo_point_and_a_clean_project(tmp_path, wav):
    svc = FakeService(fail_jobs=True)
    try:
        report = run(tmp_path, """
          item{ position_s = 1, length_s = 2 }
          vamp_and_report()
        """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    finally:
        svc.close()
    (message,) = report["messages"]
    assert "the model ran out of memory" in message["message"]
    assert report["undo_log"] == [] and report["changes"] == [] and report["dirty"] is False
    assert report["status_frames"] and report["gfx_open"] is False  # progress showed, then closed


def test_a_stopped_script_before_any_result_leaves_a_clean_project(tmp_path, wav):
    svc = FakeService(hold_after=0)
    try:
        report = run(tmp_path, """
          item{ position_s = 1, length_s = 2 }
          local script = H.run("Vamp selected items")
          double.pump_until(function()
            local frame = double.status_frames[#double.status_frames] or ""
            return frame:find("%", 1, true) ~= nil
          end, 10, "progress")
          double.terminate(script)
        """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    finally:
        svc.close()
    assert report["undo_log"] == [] and report["changes"] == [] and report["dirty"] is False


def test_the_service_crashing_mid_job_for_good_keeps_the_takes_so_far_in_one_undo_point(tmp_path, wav):
    svc = FakeService(hold_after=1)
    try:
        report = run(tmp_path, """
          local it = item{ position_s = 1, length_s = 2, startoffs_s = 0.5, playrate = 2 }
          local script = H.run("Vamp selected items")
          double.pump_until(function() return #it.takes == 2 end, 10, "the first variation")
          H.send(P.control_port, "/test/crash")
          double.pump_until(function() return not script.alive end, 15, "the script to give up")
          H.out.names = H.take_names(it)
        """, wav=str(wav), control_port=svc.control_port,
            settings=settings_for(svc.port, tmp_path, n_variations=2))
    finally:
        svc.close()
    assert report["out"]["names"] == ["drums.wav", "vamp 1 balanced s1000"]
    check_clean_job(report, 1)
    (message,) = report["messages"]
    assert "does not answer" in message["message"] and "1 job(s) had started" in message["message"]


def test_a_missing_source_file_is_caught_before_anything_is_sent(tmp_path, wav, svc):
    gone = tmp_path / "gone.wav"
    write_wav(gone, 1.0, 44100, 2)
    report = run(tmp_path, """
      local it = item{ position_s = 1, length_s = 1, source = { file = P.gone } }
      os.remove(P.gone)
      vamp_and_report()
    """, wav=str(wav), gone=str(gone), settings=settings_for(svc.port, tmp_path))
    (message,) = report["messages"]
    assert f"its source file is missing ({gone})" in message["message"]
    assert svc.requests == [] and report["dirty"] is False


def test_a_finished_vamp_prints_one_line_with_the_item_takes_and_folder(tmp_path, wav, svc):
    report = run(tmp_path, """
      item{ position_s = 1, length_s = 1 }
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path, n_variations=2))
    renders = tmp_path / "renders"
    assert f'vamp "drums.wav": 2 takes added to the item, files in {renders}' in report["console"]


# Settings and the service's presets -----------------------------------------------------------


def test_settings_refuse_unknown_preset_and_effect_names(tmp_path):
    report = Scenario(tmp_path, """
      double.user_inputs = {
        { "127.0.0.1", "9071", "9072", "", "balancd", "2", "glu", "", "" },
        { "127.0.0.1", "9071", "9072", "", '{"preset": "rhythm", "dropout": 0.1}', "2", "lofi", "", "" },
      }
      H.run("Settings")
    """).run()
    (message,) = report["messages"]
    assert 'Default preset "balancd" is not a preset: use subtle, balanced, creative, rhythm' in message["message"]
    assert 'Effect chain "glu" is not one' in message["message"]
    stored = report["ext_state"]["VampBridge"]
    assert stored["preset"] == '{"preset": "rhythm", "dropout": 0.1}' and stored["fx"] == "lofi"


def test_a_preset_the_service_does_not_list_is_refused_before_sending(tmp_path, wav):
    svc = FakeService(mask_presets=("subtle", "balanced"))  # an older service
    try:
        report = run(tmp_path, """
          item{ position_s = 0, length_s = 1 }
          vamp_and_report()
        """, wav=str(wav), settings=settings_for(svc.port, tmp_path, preset="rhythm"))
    finally:
        svc.close()
    (message,) = report["messages"]
    assert 'no mask preset "rhythm" (it has: subtle, balanced)' in message["message"]
    assert svc.requests_to("vamp") == [] and report["dirty"] is False


def test_a_service_loading_its_models_shows_how_long_it_has_taken(tmp_path, wav):
    svc = FakeService(loading=True, hold_after=0)
    try:
        report = run(tmp_path, """
          local it = item{ position_s = 0, length_s = 1 }
          local script = H.run("Vamp selected items")
          double.pump_until(function()
            local frame = double.status_frames[#double.status_frames] or ""
            return frame:find("loading its models: 1 s", 1, true) ~= nil
          end, 10, "the loading line")
          H.send(P.control_port, "/test/release")
          double.pump_until(function() return not script.alive end, 10, "the script to end")
        """, wav=str(wav), control_port=svc.control_port, settings=settings_for(svc.port, tmp_path))
    finally:
        svc.close()
    assert any(f.startswith("The VampBridge service is loading its models: 0 s") for f in report["status_frames"])
    check_clean_job(report, 1)


def test_an_auto_start_command_that_never_runs_is_told_within_three_seconds(tmp_path, wav):
    from fake_service import free_udp_port
    report = run(tmp_path, """
      double.on_exec = function(command) return nil end   -- Reaper could not run it
      item{ position_s = 0, length_s = 1 }
      local t0 = reaper.time_precise()
      run_to_end("Vamp selected items")
      H.out.elapsed_s = reaper.time_precise() - t0
    """, wav=str(wav), settings=settings_for(free_udp_port(), tmp_path, reply_timeout_s=3, startup_wait_s=30,
                                              autostart="env vampbridge serve --port {port}"))
    (message,) = report["messages"]
    assert '"env vampbridge serve --port' in message["message"] and "could not be run" in message["message"] and "Auto-start command" in message["message"]
    assert report["out"]["elapsed_s"] < 3.5 and report["dirty"] is False


def test_a_service_that_comes_up_late_after_an_auto_start_without_output_is_waited_for(tmp_path, wav):
    # An ExecProcess that starts the service some other way (no shell, so no log file) is not
    # taken for a failure: the script keeps waiting, showing the time, until the service answers.
    svc = FakeService(down=True)
    try:
        report = run(tmp_path, """
          local started = false
          double.on_exec = function(command) started = true return "" end
          local it = item{ position_s = 0, length_s = 1 }
          local script = H.run("Vamp selected items")
          double.pump_until(function() return started end, 5, "the auto-start")
          double.advance(2.5)            -- past the check for a command that never ran
          double.pump(3)
          H.send(P.control_port, "/test/start")
          double.pump_until(function() return not script.alive end, 10, "the script to end")
          H.out.names = H.take_names(it)
        """, wav=str(wav), control_port=svc.control_port,
            settings=settings_for(svc.port, tmp_path, startup_wait_s=20, autostart="env start-it"))
    finally:
        svc.close()
    assert report["messages"] == [] and report["out"]["names"] == ["drums.wav", "vamp 1 balanced s1000"]
    assert any(f.startswith("Starting the VampBridge service (env start-it): 2 s") for f in report["status_frames"])
    check_clean_job(report, 1)


def test_a_looped_item_sends_the_beats_of_one_cycle(tmp_path, svc):
    loop_wav = tmp_path / "loop.wav"
    write_wav(loop_wav, 2.0, 44100, 2)
    report = run(tmp_path, """
      item{ position_s = 1, length_s = 5, startoffs_s = 0.5, loop_source = true }
      vamp_and_report()
    """, wav=str(loop_wav), settings=settings_for(svc.port, tmp_path, preset="rhythm"))
    (request,) = check_fidelity(report, svc, loop=True).values()
    mask = json.loads(request["mask"])
    # 120 bpm 4/4: the cycle the item starts in plays from 0.5 s of the timeline (source 0) to 2.5 s.
    assert mask["beats_s"] == [0.0, 0.5, 1.0, 1.5]
    assert mask["downbeats_s"] == [1.5]
    assert request["options"] == {"loop": True}


def test_a_service_that_lists_no_presets_is_not_held_against_the_setting(tmp_path, wav):
    svc = FakeService(mask_presets=())  # hello could not list them
    try:
        run(tmp_path, """
          item{ position_s = 0, length_s = 1 }
          vamp_and_report()
        """, wav=str(wav), settings=settings_for(svc.port, tmp_path, preset="creative"))
    finally:
        svc.close()
    (request,) = vamp_requests(svc).values()
    assert request["mask"] == "creative"


def test_the_program_of_a_plain_auto_start_command_is_looked_up_like_a_shell_would(tmp_path):
    out = Scenario(tmp_path, """
      local autostart = require("vampbridge_autostart")
      local cases = { "sh -x", "no-such-prog-xyz serve", "FOO=1 BAR=2 no-such-prog-xyz --port 1",
        '"/nonexistent dir/prog" --port 1', "/bin/sh -c x", "no-such-prog-xyz; true", "env no-such-prog-xyz" }
      H.out.found = {}
      for i, command in ipairs(cases) do H.out.found[i] = autostart.missing_program(command) or false end
    """).run()["out"]
    assert out["found"] == [False, "no-such-prog-xyz", "no-such-prog-xyz", "/nonexistent dir/prog", False,
                            False, False]  # shell syntax and wrappers (env) are left to the shell


def test_take_fx_and_envelopes_that_cannot_be_copied_are_named(tmp_path, wav, svc):
    report = run(tmp_path, """
      local it = item{ position_s = 0, length_s = 1 }
      it.active.fx = { "ReaEQ" }
      it.active.envelopes = { "Volume" }
      vamp_and_report()
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path))
    assert 'item 1 ("drums.wav"): its take FX and take envelopes are not copied to the new takes' in report["console"]
    check_fidelity(report, svc)
