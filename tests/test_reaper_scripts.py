"""The VampBridge ReaScripts, run as real files under Lua 5.4 with the reaper test double
(tests/lua/reaper_double.lua) against a stand-in service written with python-osc
(tests/lua/fake_service.py)."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "lua"))
from fake_service import FakeService, build, decode, free_udp_port, write_wav  # noqa: E402
from playback import assert_plays_like  # noqa: E402
from scenario import LUA, PRELUDE_COMMON, Scenario, all_items, item_by_guid  # noqa: E402

pytestmark = pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed")

# Lua shared by these scenarios: the common prelude (scenario.py) and a status-window probe.
PRELUDE = PRELUDE_COMMON + """
local function status_has(text)
  return function()
    local frame = double.status_frames[#double.status_frames]
    return frame ~= nil and frame:find(text, 1, true) ~= nil
  end
end
"""


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "drums.wav"
    write_wav(path, 4.0, 44100, 2)
    return path


@pytest.fixture
def service():
    services = []

    def make(**options) -> FakeService:
        svc = FakeService(**options)
        services.append(svc)
        return svc

    yield make
    for svc in services:
        svc.close()


def settings_for(port: int, tmp_path: Path, **extra) -> dict:
    values = dict(port=port, reply_timeout_s=0.3, startup_wait_s=1.0, autostart="",
                  output_dir=str(tmp_path / "renders"), n_variations=2, preset="balanced", fx="none")
    values.update(extra)
    return values


def scenario(tmp_path, code, **params) -> Scenario:
    return Scenario(tmp_path, PRELUDE + code, **params)


def vamp_request(args: list) -> dict:
    names = ["id", "reply_port", "token", "client", "source_path", "start_s", "length_s", "playrate", "sample_rate",
             "channels", "item_guid", "take_guid", "mask", "sampling", "fx", "n_variations", "seed", "output_dir"]
    assert len(args) in (len(names), len(names) + 2)
    request = dict(zip(names, args))
    request["options"] = json.loads(args[-1]) if len(args) > len(names) and args[-1] else {}
    return request


def changes_in_undo_points(report) -> int:
    """How many of the project changes belong to an undo point (each point holds those made
    since the point before); the rest would fall into whatever the user does next."""
    return sum(len(point["changes"]) for point in report["undo_log"])


def items_by_guid(tracks: list[dict]) -> dict[str, dict]:
    return {item["guid"]: item for track in tracks for item in track["items"]}


# Vamp selected items ------------------------------------------------------------------------


def test_each_item_gets_its_variations_as_takes_and_one_undo_point(tmp_path, wav, service):
    svc = service()
    report = scenario(tmp_path, """
      local a = item{ track = 1, position_s = 2, length_s = 1.5, startoffs_s = 0.5 }
      local b = item{ track = 2, position_s = 5, length_s = 1, startoffs_s = 1, playrate = 2 }
      run_to_end("Vamp selected items")
      H.out.a, H.out.b = a.guid, b.guid
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()

    assert report["errors"] == [] and report["messages"] == []
    requests = {vamp_request(args)["item_guid"]: vamp_request(args) for args in svc.requests_to("vamp")}
    assert len(report["undo_log"]) == 2
    for guid, undo in zip([report["out"]["a"], report["out"]["b"]], report["undo_log"]):
        item = item_by_guid(report, guid)
        original, *new = item["takes"]
        assert original["name"] == "drums.wav"  # the progress text is gone again
        assert [t["name"] for t in new] == ["vamp 1 balanced s1000", "vamp 2 balanced s1001"]
        for k, take in enumerate(new):
            assert Path(take["file"]).is_file()
            assert take["file"].startswith(str(tmp_path / "renders"))
            assert take["ext"]["vampbridge_recipe"] == take["file"][:-4] + ".json"
            assert_plays_like(item, original, take, requests[guid]["start_s"])
            assert take["peaks_built"]
        assert new[-1]["active"]
        # One undo point per job (the service runs them one after the other), made when the job
        # ended: it holds exactly this item's new takes.
        assert undo["description"] == 'VampBridge: 2 variations of "drums.wav"'
        assert [c["take"] for c in undo["changes"] if c["op"] == "add_take"] == [t["guid"] for t in new]
        assert requests[guid]["take_guid"] == original["guid"]
    # Every change (the takes and their properties) belongs to one of the two points, and no
    # undo block was used or left open.
    assert changes_in_undo_points(report) == len(report["changes"]) and report["changes_outside_undo"] == 0
    assert not any(c["undo_block"] for c in report["changes"])
    assert report["ui_refresh_prevented"] == 0 and report["undo_depth"] == 0
    # Every result was acknowledged, after its take existed (the last acks may still be on their way).
    svc.wait_for(lambda: svc.unacked == {}, 5, "every result acknowledged")
    acks = sorted((args[3], args[4]) for args in svc.requests_to("ack"))
    assert acks == sorted((job, k) for job in {a[0] for a in svc.requests_to("vamp")} for k in range(2))


def test_takes_appear_as_variations_arrive_and_one_undo_per_job_restores_the_project(tmp_path, wav, service):
    svc = service(hold_after=1)  # one variation of the running job at once, the rest on release
    report = scenario(tmp_path, """
      local a = item{ track = 1, position_s = 2, length_s = 1 }
      local b = item{ track = 2, position_s = 5, length_s = 1 }
      H.out.a, H.out.b = a.guid, b.guid
      H.out.before = double.snapshot().tracks
      local script = H.run("Vamp selected items")
      double.pump_until(function() return #a.takes == 2 end, 10, "the first variation of a")
      double.pump(2)
      H.out.while_running = { a = H.take_names(a), b = H.take_names(b), a_active = a.active.name,
        b_active = b.active.name, undo_points = #double.undo_log,
        status = double.status_frames[#double.status_frames] }
      H.send(P.control_port, "/test/release")
      double.pump_until(function() return not script.alive end, 10, "the script to end")
      H.out.final = double.snapshot().tracks
      H.out.next_undo = reaper.Undo_CanUndo2(0)
      H.out.undone = reaper.Undo_DoUndo2(0)
      H.out.after_one_undo = double.snapshot().tracks
      reaper.Undo_DoUndo2(0)
      H.out.after_two_undos = double.snapshot().tracks
      H.out.more_to_undo = reaper.Undo_CanUndo2(0) or false
      reaper.Undo_DoRedo2(0)
      reaper.Undo_DoRedo2(0)
      H.out.after_redo = double.snapshot().tracks
    """, wav=str(wav), control_port=svc.control_port, settings=settings_for(svc.port, tmp_path)).run()
    assert report["errors"] == [] and report["messages"] == []
    out = report["out"]
    a, b = out["a"], out["b"]

    # Before the job's `done`: a's first variation is already a take, the active one; b waits
    # behind a in the service's queue. Progress shows in the status window, never in a take name.
    # No undo point yet.
    running = out["while_running"]
    assert running["a"] == ["drums.wav", "vamp 1 balanced s1000"] and running["a_active"] == "vamp 1 balanced s1000"
    assert running["b"] == ["drums.wav"] and running["b_active"] == "drums.wav"
    first, second = running["status"].splitlines()
    assert first.startswith('vamp "drums.wav": ') and first.endswith("1 ready")
    assert second == 'vamp "drums.wav": queued'
    assert running["undo_points"] == 0

    # At the end: every progress text is gone; exactly one undo point per job.
    final = items_by_guid(out["final"])
    for guid in (a, b):
        assert [t["name"] for t in final[guid]["takes"]] == ["drums.wav", "vamp 1 balanced s1000",
                                                             "vamp 2 balanced s1001"]
    assert [u["description"] for u in report["undo_log"]] == ['VampBridge: 2 variations of "drums.wav"'] * 2
    assert out["next_undo"] == 'VampBridge: 2 variations of "drums.wav"' and out["undone"] == 1

    # One undo takes back b's job exactly: b as it was before its first take (original take
    # active, original name, no VampBridge take or P_EXT), a untouched.
    before, after_one = items_by_guid(out["before"]), items_by_guid(out["after_one_undo"])
    assert after_one[b] == before[b]
    assert after_one[a] == final[a]
    # The second undo takes back a's job: the project as it was before the script ran.
    assert out["after_two_undos"] == out["before"]
    assert out["more_to_undo"] is False
    assert out["after_redo"] == out["final"]


def test_an_undo_point_made_during_a_job_keeps_the_takes_before_it(tmp_path, wav, service):
    # What docs/reaper.md says: undoing the job's point removes only the takes added after the
    # user's own point; the takes before it belong to the user's point.
    svc = service(hold_after=1)
    report = scenario(tmp_path, """
      local it = item{ track = 1, position_s = 2, length_s = 1 }
      local other = item{ track = 2, position_s = 8, length_s = 1, selected = false }
      local script = H.run("Vamp selected items")
      double.pump_until(function() return #it.takes == 2 end, 10, "the first variation")
      double.move_item(other, 9)
      double.user_undo_point("Move media items")
      H.send(P.control_port, "/test/release")
      double.pump_until(function() return not script.alive end, 10, "the script to end")
      reaper.Undo_DoUndo2(0)
      H.out.after_one_undo = H.take_names(it)
      H.out.other_position = other.position_s
    """, wav=str(wav), control_port=svc.control_port, settings=settings_for(svc.port, tmp_path)).run()
    assert [u["description"] for u in report["undo_log"]] == [
        "Move media items", 'VampBridge: 2 variations of "drums.wav"']
    names = report["out"]["after_one_undo"]
    assert len(names) == 2 and names[1].startswith("vamp 1 balanced s1000")
    assert report["out"]["other_position"] == 9


def test_stopping_the_script_keeps_the_takes_so_far_as_one_undo_point(tmp_path, wav, service):
    svc = service(hold_after=1)
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1 }
      local vamp = H.run("Vamp selected items")
      double.pump_until(function() return #it.takes == 2 end, 10, "the first variation")
      double.terminate(vamp)
      H.out.names_after_stop = H.take_names(it)
      H.send(P.control_port, "/test/release")
      local listener = H.run("Listener", 60003)
      double.pump_until(function() return #double.undo_log == 2 end, 10, "the listener to add the rest")
      double.terminate(listener)
      H.out.names = H.take_names(it)
    """, wav=str(wav), control_port=svc.control_port,
        settings=settings_for(svc.port, tmp_path, listener_port=free_udp_port(), listener_poll_s=0.3)).run()
    out = report["out"]
    assert out["names_after_stop"] == ["drums.wav", "vamp 1 balanced s1000"]
    assert out["names"] == ["drums.wav", "vamp 1 balanced s1000", "vamp 2 balanced s1001"]
    assert [u["description"] for u in report["undo_log"]] == [
        'VampBridge: 1 variation of "drums.wav"', 'VampBridge: collected 1 variation of "drums.wav"']
    assert changes_in_undo_points(report) == len(report["changes"])
    svc.wait_for(lambda: svc.unacked == {}, 5, "every result acknowledged")
    assert report["errors"] == []


def test_the_request_describes_the_source_under_the_item(tmp_path, wav, service):
    svc = service()
    mono = tmp_path / "voice.wav"
    write_wav(mono, 3.0, 22050, 1)
    report = scenario(tmp_path, """
      local a = item{ position_s = 2, length_s = 1.5, startoffs_s = 0.5 }
      local b = item{ position_s = 5, length_s = 1, startoffs_s = 1, playrate = 2, source = { file = P.mono } }
      run_to_end("Vamp selected items")
      reaper.GetSetProjectInfo(0, "PROJECT_SRATE", 48000, true)   -- set, but not in force
      for _, it in ipairs({ a, b }) do it.selected = it == a end
      run_to_end("Vamp selected items")
      reaper.GetSetProjectInfo(0, "PROJECT_SRATE_USE", 1, true)    -- now in force
      run_to_end("Vamp selected items")
      H.out.a, H.out.b = a.guid, b.guid
    """, wav=str(wav), mono=str(mono), settings=settings_for(svc.port, tmp_path, seed=7, fx="glue")).run()

    first_a, first_b, second_a, third_a = [vamp_request(args) for args in svc.requests_to("vamp")]
    assert (first_a["source_path"], first_a["start_s"], first_a["length_s"], first_a["playrate"]) == (
        str(wav), 0.5, 1.5, 1.0)
    # Playrate 2: one second of item plays two seconds of source.
    assert (first_b["source_path"], first_b["start_s"], first_b["length_s"], first_b["playrate"]) == (
        str(mono), 1.0, 2.0, 2.0)
    # The project rate is only used when PROJECT_SRATE_USE puts it in force; else the source's.
    assert (first_a["sample_rate"], first_a["channels"]) == (44100, 2)
    assert (first_b["sample_rate"], first_b["channels"]) == (22050, 1)
    assert (second_a["sample_rate"], second_a["item_guid"]) == (44100, report["out"]["a"])
    assert (third_a["sample_rate"], third_a["item_guid"]) == (48000, report["out"]["a"])
    assert first_a["options"] == {}  # nothing beyond the defaults: no options argument at all
    assert first_a["client"] == "reaper:/tmp/vampbridge-test/song.rpp"
    assert (first_a["mask"], first_a["fx"], first_a["n_variations"], first_a["seed"], first_a["sampling"]) == (
        "balanced", "glue", 2, 7, "")
    assert first_a["output_dir"] == str(tmp_path / "renders")
    from bridge.secret import read_secret  # the per-user secret, if a service made one ("" if not)
    assert first_a["token"] == read_secret() and first_a["id"] != first_b["id"]


def test_time_selection_regenerates_only_the_selection_and_the_take_covers_the_item(tmp_path, service):
    long_wav = tmp_path / "long.wav"
    write_wav(long_wav, 8.0, 44100, 2)
    svc = service()
    report = scenario(tmp_path, """
      local a = item{ position_s = 2, length_s = 4, startoffs_s = 0.5 }
      local b = item{ track = 2, position_s = 2, length_s = 2, startoffs_s = 0, playrate = 2 }
      local c = item{ track = 3, position_s = 20, length_s = 1, startoffs_s = 0.25 }
      double.set_time_selection(3, 4.5)
      H.out.before = double.snapshot().tracks
      run_to_end("Vamp selected items")
      H.out.guids = { a.guid, b.guid, c.guid }
    """, wav=str(long_wav), settings=settings_for(svc.port, tmp_path, n_variations=1)).run()

    a, b, c = report["out"]["guids"]
    requests = {r["item_guid"]: r for r in map(vamp_request, svc.requests_to("vamp"))}
    # The region is the whole item (context for the model); the selection is what is regenerated,
    # in source seconds with the playrate applied.
    assert (requests[a]["start_s"], requests[a]["length_s"]) == pytest.approx((0.5, 4.0))
    assert requests[a]["options"] == pytest.approx({"regen_start_s": 1.5, "regen_length_s": 1.5})
    assert (requests[b]["start_s"], requests[b]["length_s"]) == pytest.approx((0.0, 4.0))
    assert requests[b]["options"] == pytest.approx({"regen_start_s": 2.0, "regen_length_s": 2.0})
    assert (requests[c]["start_s"], requests[c]["length_s"]) == pytest.approx((0.25, 1.0))
    assert requests[c]["options"] == {}  # no intersection: the whole item, no options
    before = items_by_guid(report["out"]["before"])
    for guid in (a, b, c):
        item = item_by_guid(report, guid)
        original, new = item["takes"]
        assert_plays_like(item, original, new, requests[guid]["start_s"])
        assert item["values"] == before[guid]["values"]  # the item itself is untouched
    assert len(report["undo_log"]) == 3


def test_source_region_arithmetic(tmp_path):
    report = Scenario(tmp_path, """
      local region = require("vampbridge_region")
      local function of(g)
        g.source_rate = g.source_rate or 1000
        local r, why = region.of_item(g)
        return r or { error = why }
      end
      H.out.plain = of{ position_s = 1, length_s = 2, startoffs_s = 0.5, playrate = 1, source_length_s = 10 }
      H.out.extended_left = of{ position_s = 1, length_s = 2, startoffs_s = -0.5, playrate = 1, source_length_s = 10 }
      H.out.past_the_end = of{ position_s = 0, length_s = 4, startoffs_s = 1, playrate = 2, source_length_s = 5 }
      H.out.selection = of{ position_s = 10, length_s = 4, startoffs_s = 0, playrate = 0.5, source_length_s = 10,
        sel_start_s = 11, sel_end_s = 13 }
      H.out.selection_loop = of{ position_s = 10, length_s = 4, startoffs_s = 0, playrate = 0.5, source_length_s = 10,
        sel_start_s = 11, sel_end_s = 13, selection_is_loop = true }
      H.out.selection_elsewhere = of{ position_s = 10, length_s = 1, startoffs_s = 0, playrate = 1,
        sel_start_s = 0, sel_end_s = 5 }
      H.out.selection_over_all = of{ position_s = 10, length_s = 1, startoffs_s = 0, playrate = 1,
        sel_start_s = 9, sel_end_s = 12 }
      H.out.off_sample = of{ position_s = 0, length_s = 1, startoffs_s = 0.0104, playrate = 1, source_length_s = 10 }
      H.out.looped = of{ position_s = 0, length_s = 5, startoffs_s = 0.5, playrate = 1, source_length_s = 2,
        loop_source = true }
      H.out.loop_flag_within = of{ position_s = 0, length_s = 1, startoffs_s = 0.5, playrate = 1, source_length_s = 2,
        loop_source = true }
      H.out.looped_selection = of{ position_s = 0, length_s = 5, startoffs_s = 0, playrate = 1, source_length_s = 2,
        loop_source = true, sel_start_s = 2.5, sel_end_s = 3 }
      H.out.nothing = of{ position_s = 0, length_s = 1, startoffs_s = 6, playrate = 1, source_length_s = 5 }
      H.out.channels = {}
      for mode = 0, 6 do H.out.channels[mode + 1] = { region.channel_plan(mode, 2) } end
      H.out.mono_source = { region.channel_plan(3, 1) }
      H.out.rates = { region.output_rate(48000, true, 44100), region.output_rate(48000, false, 44100),
        region.output_rate(0, true, 44100), region.output_rate(48000, true, 44100, 1.0),
        region.output_rate(48000, true, 44100, 1 / 44100) }
    """).run()["out"]
    assert report["plain"] == {"start_s": 0.5, "length_s": 2, "loop": False, "looping": False}
    # Left of the source start there is only silence: the region starts at 0.
    assert report["extended_left"] == {"start_s": 0, "length_s": 1.5, "loop": False, "looping": False}
    assert report["past_the_end"] == {"start_s": 1, "length_s": 4, "loop": False, "looping": False}
    assert report["selection"] == {"start_s": 0, "length_s": 2, "regen_start_s": 0.5, "regen_length_s": 1,
                                   "loop": False, "looping": False}
    assert report["selection_loop"]["loop"] is True
    assert "regen_start_s" not in report["selection_elsewhere"] and report["selection_elsewhere"]["length_s"] == 1
    assert "regen_start_s" not in report["selection_over_all"]
    # The region starts on a source sample (the service reads from round(start_s * rate)).
    assert report["off_sample"]["start_s"] == pytest.approx(0.010) and report["off_sample"]["length_s"] == pytest.approx(1.001)
    assert report["looped"] == {"start_s": 0, "length_s": 2, "loop": True, "looping": True}
    assert report["loop_flag_within"] == {"start_s": 0.5, "length_s": 1, "loop": False, "looping": False}
    assert report["looped_selection"] == pytest.approx({"start_s": 0, "length_s": 2, "regen_start_s": 0.5,
                                                        "regen_length_s": 0.5, "loop": True, "looping": True})
    assert report["nothing"] == {"error": "there is no source audio under the item"}
    assert report["channels"] == [["all", 2, 0], ["all", 2, 1], ["mono", 1, 0], ["left", 1, 0], ["right", 1, 0],
                                  ["all", 2, 5], ["all", 2, 6]]
    assert report["mono_source"] == ["all", 1, 3]
    assert report["rates"] == [48000, 44100, 44100, 48000, 44100]


def test_midi_items_are_skipped_with_a_message(tmp_path, wav, service):
    svc = service()
    report = scenario(tmp_path, """
      item{ position_s = 0, length_s = 1, name = "Bass MIDI", source = { type = "MIDI", file = "" } }
      local audio = item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items")
      H.out.audio = audio.guid
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path, n_variations=1)).run()
    assert 'item 1 ("Bass MIDI") skipped: it is a MIDI item' in report["console"]
    assert [vamp_request(a)["item_guid"] for a in svc.requests_to("vamp")] == [report["out"]["audio"]]
    assert report["messages"] == []


def test_only_midi_selected_says_so_and_sends_nothing(tmp_path, service):
    svc = service()
    report = scenario(tmp_path, """
      item{ position_s = 0, length_s = 1, name = "Keys", source = { type = "MIDI", file = "" } }
      run_to_end("Vamp selected items")
    """, settings=settings_for(svc.port, tmp_path)).run()
    (message,) = report["messages"]
    assert "Select one or more audio items" in message["message"]
    assert "MIDI" in message["message"]
    assert svc.requests == []


def test_takes_follow_an_item_moved_while_the_job_runs(tmp_path, wav, service):
    svc = service(hold_after=0)
    report = scenario(tmp_path, """
      local it = item{ track = 1, position_s = 2, length_s = 1 }
      local script = H.run("Vamp selected items")
      double.pump_until(status_has("%"), 10, "progress in the status window")
      H.out.progress_name = it.active.name
      double.move_item(it, 30, 3)
      H.send(P.control_port, "/test/release")
      double.pump_until(function() return not script.alive end, 10, "the script to end")
      H.out.guid = it.guid
    """, wav=str(wav), control_port=svc.control_port, settings=settings_for(svc.port, tmp_path)).run()
    assert report["out"]["progress_name"] == "drums.wav"  # progress never renames a take
    moved = report["tracks"][2]["items"][0]
    assert moved["guid"] == report["out"]["guid"] and moved["position_s"] == 30
    assert [t["name"] for t in moved["takes"]] == ["drums.wav", "vamp 1 balanced s1000", "vamp 2 balanced s1001"]
    assert len(report["undo_log"]) == 1


def test_item_deleted_while_the_job_runs_leaves_the_files_and_says_where(tmp_path, wav, service):
    svc = service(hold_after=0)
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1 }
      local script = H.run("Vamp selected items")
      double.pump_until(status_has("%"), 10, "progress in the status window")
      double.delete_item(it)
      H.send(P.control_port, "/test/release")
      double.pump_until(function() return not script.alive end, 10, "the script to end")
    """, wav=str(wav), control_port=svc.control_port, settings=settings_for(svc.port, tmp_path)).run()
    assert report["undo_log"] == [] and report["dirty"] is False
    assert "was deleted; its variations stay on disk" in report["console"]
    (job,) = svc.requests_to("vamp")
    for k in range(2):
        output = tmp_path / "renders" / f"{job[0]}_v{k}.wav"
        assert output.is_file() and str(output) in report["console"]
    # Told the user, so nothing is re-delivered later (the acks may still be on their way).
    svc.wait_for(lambda: len(svc.requests_to("ack")) == 2, 5, "the two acks")


def test_an_auto_start_program_not_on_the_path_is_told_at_once_without_running_anything(tmp_path, wav):
    port = free_udp_port()  # nothing listens here
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1 }
      local t0 = reaper.time_precise()
      run_to_end("Vamp selected items")
      H.out.elapsed_s = reaper.time_precise() - t0
      H.out.name = it.active.name
    """, wav=str(wav), settings=settings_for(port, tmp_path, reply_timeout_s=3, startup_wait_s=30,
                                              autostart="no-such-vampbridge-command serve --port {port}")).run()
    assert report["exec_log"] == []
    (message,) = report["messages"]
    text = message["message"]
    assert f"127.0.0.1:{port} does not answer" in text
    assert 'the program "no-such-vampbridge-command" was not found' in text
    assert 'Auto-start command' in text and "VampBridge - Settings" in text
    assert report["out"]["elapsed_s"] < 3
    assert report["out"]["name"] == "drums.wav"
    assert report["undo_log"] == [] and report["errors"] == [] and report["dirty"] is False


def test_an_auto_start_command_the_shell_cannot_run_is_told_with_its_output(tmp_path, wav):
    port = free_udp_port()
    report = scenario(tmp_path, """
      local t0 = reaper.time_precise()
      item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items")
      H.out.elapsed_s = reaper.time_precise() - t0
    """, wav=str(wav), settings=settings_for(port, tmp_path, reply_timeout_s=3, startup_wait_s=30,
                                              autostart="no-such-vampbridge-command --port {port} 2>&1")).run()
    (started,) = report["exec_log"]
    assert f"no-such-vampbridge-command --port {port} 2>&1" in started["command"] and started["timeout_ms"] == -1
    (message,) = report["messages"]
    text = message["message"]
    assert f'"no-such-vampbridge-command --port {port} 2>&1" was not found' in text
    assert "not found" in text.split("It printed:")[-1]  # what the shell said
    assert report["out"]["elapsed_s"] < 3 and report["dirty"] is False


def test_an_auto_start_command_that_exits_at_once_is_told_with_its_output(tmp_path, wav):
    report = scenario(tmp_path, """
      item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items")
    """, wav=str(wav), settings=settings_for(free_udp_port(), tmp_path, startup_wait_s=30,
                                              autostart="sh -c 'echo port {port} is in use; exit 3'")).run()
    (message,) = report["messages"]
    assert "ended at once with status 3" in message["message"] and "is in use" in message["message"]


def test_a_service_still_starting_shows_how_long_it_has_taken_then_is_explained(tmp_path, wav):
    port = free_udp_port()
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items", 20)
    """, wav=str(wav), settings=settings_for(port, tmp_path, startup_wait_s=2.5,
                                              autostart="sleep 30 # {port}")).run()
    frames = [f.splitlines()[0] for f in report["status_frames"] if f.startswith("Starting the VampBridge service")]
    assert frames[0] == f"Starting the VampBridge service (sleep 30 # {port}): 0 s"
    assert f"Starting the VampBridge service (sleep 30 # {port}): 2 s" in frames
    (message,) = report["messages"]
    assert "still running, so it may be loading its models" in message["message"]
    assert report["undo_log"] == [] and report["dirty"] is False and report["gfx_open"] is False


def test_auto_start_command_brings_the_service_up(tmp_path, wav, service):
    svc = service(down=True)
    report = scenario(tmp_path, """
      double.on_exec = function(command)
        H.send(P.control_port, "/test/start") -- what the command would do
        return ""
      end
      local it = item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items")
      H.out.names = H.take_names(it)
    """, wav=str(wav), control_port=svc.control_port,
        settings=settings_for(svc.port, tmp_path, autostart="env start-it", startup_wait_s=5)).run()
    (started,) = report["exec_log"]
    assert "( env start-it\n) >" in started["command"]
    assert report["out"]["names"] == ["drums.wav", "vamp 1 balanced s1000", "vamp 2 balanced s1001"]
    assert report["messages"] == []


def test_results_are_redelivered_after_the_service_restarts_mid_job(tmp_path, wav, service):
    svc = service(hold_after=1)
    report = scenario(tmp_path, """
      double.on_exec = function(command)
        H.send(P.control_port, "/test/start")
        return ""
      end
      local it = item{ position_s = 2, length_s = 1 }
      local script = H.run("Vamp selected items")
      double.pump_until(function() return #it.takes == 2 end, 10, "the first variation")
      H.send(P.control_port, "/test/crash")
      H.send(P.control_port, "/test/release") -- the restarted service runs the job to its end
      double.pump_until(function() return not script.alive end, 15, "the script to end")
      H.out.names = H.take_names(it)
    """, wav=str(wav), control_port=svc.control_port,
        settings=settings_for(svc.port, tmp_path, autostart="env restart-service", startup_wait_s=5)).run()
    assert report["errors"] == [] and report["messages"] == []
    assert svc.starts == 2
    # Variation 0 arrived before the crash and again through `pending`; it is added once.
    assert report["out"]["names"] == ["drums.wav", "vamp 1 balanced s1000", "vamp 2 balanced s1001"]
    (undo,) = report["undo_log"]
    assert len([c for c in undo["changes"] if c["op"] == "add_take"]) == 2
    assert report["changes_outside_undo"] == 0
    after_restart = svc.addresses()[svc.addresses().index("/vampbridge/vamp") + 1:]
    assert {"/vampbridge/hello", "/vampbridge/pending", "/vampbridge/status", "/vampbridge/resume"} <= set(after_restart)
    svc.wait_for(lambda: svc.unacked == {}, 5, "every result acknowledged")


def test_a_lost_result_is_fetched_with_pending_before_the_job_ends(tmp_path, wav, service):
    svc = service(lose_first_result=True)
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items")
      H.out.names = H.take_names(it)
      H.out.active = it.active.name
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()
    # Takes come in the order their results arrive: the lost first variation comes last.
    assert report["out"]["names"] == ["drums.wav", "vamp 2 balanced s1001", "vamp 1 balanced s1000"]
    assert report["out"]["active"] == "vamp 1 balanced s1000"
    (undo,) = report["undo_log"]
    assert undo["description"] == 'VampBridge: 2 variations of "drums.wav"'
    assert len(svc.requests_to("pending")) == 2  # once at start, once for the missing result


def test_without_luasocket_the_script_says_how_to_install_it(tmp_path, wav):
    report = scenario(tmp_path, """
      package.loaded.socket = nil
      package.preload.socket = function() error("module 'socket' not found") end
      item{ position_s = 2, length_s = 1 }
      run_to_end("Vamp selected items")
    """, wav=str(wav), settings=settings_for(free_udp_port(), tmp_path)).run()
    (message,) = report["messages"]
    assert "mavriq-lua-sockets" in message["message"]
    assert "ReaPack" in message["message"] and "restart Reaper" in message["message"]
    assert report["errors"] == []


# Listener -----------------------------------------------------------------------------------


def test_listener_adds_the_takes_of_a_script_that_was_stopped(tmp_path, wav, service):
    svc = service(hold_after=0)
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1.5 }
      double.set_time_selection(2.5, 3)
      local vamp = H.run("Vamp selected items")
      double.pump_until(status_has("%"), 10, "progress in the status window")
      double.terminate(vamp)                    -- the user stopped it
      H.out.name_after_stop = it.active.name
      H.send(P.control_port, "/test/release")  -- the job finishes with nobody listening
      local listener = H.run("Listener", 60001)
      H.out.toggle_running = reaper.GetToggleCommandStateEx(0, 60001)
      double.pump_until(function() return #double.undo_log == 1 end, 10, "the listener to add the takes")
      double.terminate(listener)
      H.out.toggle_stopped = reaper.GetToggleCommandStateEx(0, 60001)
      H.out.names = H.take_names(it)
      H.out.item = double.snapshot().tracks[1].items[1]
      H.out.recipe = it.active.ext.vampbridge_recipe
    """, wav=str(wav), control_port=svc.control_port,
        settings=settings_for(svc.port, tmp_path, listener_port=free_udp_port(), listener_poll_s=0.3)).run()
    out = report["out"]
    assert out["name_after_stop"] == "drums.wav"
    assert "still running in the service" in report["console"]
    assert out["names"] == ["drums.wav", "vamp 1 balanced s1000", "vamp 2 balanced s1001"]
    # As the script would have made them: they play like the original take.
    (request,) = map(vamp_request, svc.requests_to("vamp"))
    original, _, new = out["item"]["takes"]
    assert_plays_like(out["item"], original, new, request["start_s"])
    assert request["options"] == pytest.approx({"regen_start_s": 0.5, "regen_length_s": 0.5})
    assert out["recipe"].endswith("_v1.json")
    assert (out["toggle_running"], out["toggle_stopped"]) == (1, 0)
    assert [u["description"] for u in report["undo_log"]] == ['VampBridge: collected 2 variations of "drums.wav"']
    assert f'collected 2 variations of "drums.wav", files in {tmp_path / "renders"}' in report["console"]
    svc.wait_for(lambda: svc.unacked == {}, 5, "every result acknowledged")
    assert report["errors"] == []


class ListenerClient:
    """The companion's side of the listener protocol, with python-osc."""

    def __init__(self, port: int, token: str = ""):
        self.port, self.token = port, token
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.count = 0

    def ask(self, name: str, types: str, *values, token: str | None = None, timeout_s: float = 5):
        self.count += 1
        request_id = f"gui-{self.count}"
        self.sock.settimeout(timeout_s)
        packet = build(f"/vampbridge/{name}", "sis" + types, request_id, self.sock.getsockname()[1],
                       self.token if token is None else token, *values)
        self.sock.sendto(packet, ("127.0.0.1", self.port))
        try:
            (reply,) = decode(self.sock.recvfrom(65535)[0])
        except socket.timeout:
            return None
        assert reply.params[0] == request_id
        return reply.address, reply.params[1:]


def test_listener_answers_take_and_locate_from_the_companion(tmp_path, wav):
    listener_port = free_udp_port()
    render = tmp_path / "render.wav"
    write_wav(render, 1.0, 44100, 2)
    sc = scenario(tmp_path, """
      local it = item{ position_s = 4, length_s = 2, startoffs_s = 0.25, playrate = 0.5 }
      H.out.guid = it.guid
      io.stdout:write("GUID " .. it.guid .. "\\n")
      local listener = H.run("Listener", 60002)
      H.out.toggle_running = reaper.GetToggleCommandStateEx(0, 60002)
      H.ready("listening")
      H.wait_for_python()
      double.terminate(listener)
      H.out.toggle_stopped = reaper.GetToggleCommandStateEx(0, 60002)
    """, wav=str(wav), settings=settings_for(free_udp_port(), tmp_path, listener_port=listener_port,
                                               token="s3cret")).start()
    try:
        sc.wait_ready("listening")
        guid = next(line.split()[1] for line in sc.stdout if line.startswith("GUID "))
        gui = ListenerClient(listener_port, token="s3cret")

        assert gui.ask("ping", "") == ("/vampbridge/pong", [])
        assert gui.ask("locate", "s", guid) == ("/vampbridge/located", [True, str(wav), 0.25, 1.0, 0.5, 44100, 2])
        assert gui.ask("locate", "s", "{00000000-0000-0000-0000-000000000000}")[1][0] is False
        assert gui.ask("take", "ssss", guid, str(render), "/r/recipe.json", "vamp 9 creative s5") == (
            "/vampbridge/take_added", [True, ""])
        assert gui.ask("take", "ssss", guid, str(render), "/r/recipe.json", "vamp 9 creative s5") == (
            "/vampbridge/take_added", [True, "the item already has this take"])
        address, (ok, text) = gui.ask("take", "ssss", "{DEAD}", str(render), "", "x")
        assert ok is False and "no item with GUID {DEAD}" in text
        address, (code, text) = gui.ask("take", "s", guid)
        assert (address, code) == ("/vampbridge/error", "bad_request")
        # A wrong token is dropped without an answer, as the service does.
        assert gui.ask("ping", "", token="wrong", timeout_s=0.5) is None
    finally:
        sc.resume()
        report = sc.finish()
    item = all_items(report)[0]
    assert [t["name"] for t in item["takes"]] == ["drums.wav", "vamp 9 creative s5"]
    new = item["takes"][1]
    assert new["file"] == str(render) and new["ext"] == {"vampbridge_recipe": "/r/recipe.json"} and new["active"]
    assert [u["description"] for u in report["undo_log"]] == ['VampBridge: add take "vamp 9 creative s5"']
    assert (report["out"]["toggle_running"], report["out"]["toggle_stopped"]) == (1, 0)
    assert report["errors"] == []


def test_a_take_the_companion_hands_over_plays_like_the_take_it_was_made_from(tmp_path, wav):
    # The companion vamped the region the Listener located (source seconds 0.25..1.25 at playrate
    # 0.5); its recipe names the input, so the new take gets the offset and properties to match.
    listener_port = free_udp_port()
    render = tmp_path / "render.wav"
    write_wav(render, 1.0, 44100, 1)
    recipe = tmp_path / "render.json"
    recipe.write_text(json.dumps({"input": {"path": str(wav), "start_s": 0.25, "length_s": 1.0, "playrate": 0.5}}))
    sc = scenario(tmp_path, """
      local it = item{ position_s = 4, length_s = 2, startoffs_s = 0.25, playrate = 0.5,
        take = { D_PITCH = -3, D_VOL = 0.7, I_CHANMODE = 3 } }
      io.stdout:write("GUID " .. it.guid .. "\\n")
      local listener = H.run("Listener", 60004)
      H.ready("listening")
      H.wait_for_python()
      double.terminate(listener)
    """, wav=str(wav), settings=settings_for(free_udp_port(), tmp_path, listener_port=listener_port)).start()
    try:
        sc.wait_ready("listening")
        guid = next(line.split()[1] for line in sc.stdout if line.startswith("GUID "))
        from bridge.secret import ensure_secret

        gui = ListenerClient(listener_port, token=ensure_secret())  # the companion sends the per-user secret
        assert gui.ask("take", "ssss", guid, str(render), str(recipe), "vamp 1 balanced s5") == (
            "/vampbridge/take_added", [True, ""])
    finally:
        sc.resume()
        report = sc.finish()
    item = all_items(report)[0]
    original, new = item["takes"]
    assert_plays_like(item, original, new, 0.25)  # also: a one-channel render of "left" plays normally
    assert report["changes_outside_undo"] == 0 and len(report["undo_log"]) == 1


# Open in editor, re-render, settings --------------------------------------------------------


@pytest.mark.parametrize("editor", [False, True])
def test_open_in_editor(tmp_path, wav, service, editor):
    svc = service(editor=editor)
    report = scenario(tmp_path, """
      item{ position_s = 1, length_s = 2, startoffs_s = 0.5 }
      run_to_end("Open selected item in editor")
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()
    (request,) = svc.requests_to("open")
    assert request[3:9] == ["reaper:/tmp/vampbridge-test/song.rpp", str(wav), 0.5, 2.0, 1.0, 44100]
    if editor:
        assert report["messages"] == [] and 'opened "drums.wav" in the editor' in report["console"]
    else:
        (message,) = report["messages"]
        assert "no editor" in message["message"] and "vampbridge gui" in message["message"]
    assert svc.requests_to("pending") == [] and report["exec_log"] == []


def test_open_in_editor_sends_the_tempo_maps_bars_and_beats_in_region_time(tmp_path, wav, service):
    """`open`'s `beats` argument: the tempo map's beats and downbeats inside the region, in
    seconds of source from the region start (playrate applied), across a tempo change."""
    svc = service(editor=True)
    scenario(tmp_path, """
      double.project.tempo = {
        { measure = 0, bpm = 120, num = 4, denom = 4 },
        { measure = 1, bpm = 60, num = 3, denom = 4 },
      }
      item{ position_s = 1, length_s = 3, startoffs_s = 0.5, playrate = 1.0 / 1.5 }
      run_to_end("Open selected item in editor")
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()
    (request,) = svc.requests_to("open")
    assert len(request) == 13
    beats = json.loads(request[12])
    # Timeline [1, 4): 120 BPM beats at 1, 1.5 (bar 1 ends at 2 s), then 3/4 at 60: bar at 2, beats 3.
    timeline = [1.0, 1.5, 2.0, 3.0]
    assert beats["beats_s"] == pytest.approx([(t - 1.0) / 1.5 for t in timeline], abs=1e-6)
    assert beats["downbeats_s"] == pytest.approx([(2.0 - 1.0) / 1.5], abs=1e-6)


def test_open_in_editor_opens_every_selected_audio_item_and_names_what_it_skips(tmp_path, wav, service):
    svc = service(editor=True)
    report = scenario(tmp_path, """
      item{ position_s = 0, length_s = 1, name = "Keys", source = { type = "MIDI", file = "" } }
      local a = item{ position_s = 2, length_s = 1 }
      local b = item{ track = 2, position_s = 5, length_s = 2, startoffs_s = 1, playrate = 2 }
      run_to_end("Open selected item in editor")
      H.out.guids = { a.guid, b.guid }
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()
    opened = svc.requests_to("open")
    assert [r[10] for r in opened] == report["out"]["guids"]
    assert [(r[5], r[6], r[7]) for r in opened] == [(0.0, 1.0, 1.0), (1.0, 3.0, 2.0)]  # up to the end of the 4 s file
    assert "item 1 cannot be opened: it is a MIDI item, not audio; the editor opens audio items only" in report["console"]
    assert "only audio can be vamped" not in report["console"]
    assert report["messages"] == [] and report["undo_log"] == [] and report["dirty"] is False


def test_rerender_asks_for_fx_and_seed_and_adds_the_render(tmp_path, wav, service):
    svc = service()
    recipe = tmp_path / "old.json"
    recipe.write_text(json.dumps(dict(source_path=str(wav), start_s=0.0, length_s=1.0, playrate=1.0,
                                      sample_rate=44100, channels=2, mask="balanced", fx="none", seed=3)))
    report = scenario(tmp_path, """
      local it = item{ position_s = 1, length_s = 2, source = { file = P.wav } }
      local take = reaper.AddTakeToMediaItem(it)
      reaper.SetMediaItemTake_Source(take, reaper.PCM_Source_CreateFromFile(P.wav))
      reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "vamp 1 balanced s3", true)
      reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:vampbridge_recipe", P.recipe, true)
      reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", -0.5)
      reaper.SetActiveTake(take)
      item{ track = 2, position_s = 0, length_s = 1 }   -- selected, but not a VampBridge take
      double.user_inputs = { { "glue", "x" }, { "glue", "7" } }
      run_to_end("Re-render selected takes")
      H.out.names = H.take_names(it)
      H.out.startoffs = it.active.startoffs_s
    """, wav=str(wav), recipe=str(recipe), settings=settings_for(svc.port, tmp_path)).run()
    (request,) = svc.requests_to("rerender")
    assert request[3:8] == ["reaper:/tmp/vampbridge-test/song.rpp", str(recipe), "glue", 7, str(tmp_path / "renders")]
    assert report["out"]["names"] == ["drums.wav", "vamp 1 balanced s3", "vamp 1 balanced s7 glue"]
    assert report["out"]["startoffs"] == pytest.approx(-0.5)
    first, second = report["dialogs"]
    assert first["captions"] == ["Effect chain (empty = as recorded)", "Seed (-1 = as recorded)"]
    assert second["defaults"] == ["glue", "x"]  # asked again with what was typed
    (seed_message,) = report["messages"]
    assert "seed must be a whole number" in seed_message["message"]
    assert "1 selected item(s) skipped" in report["console"]
    assert len(report["undo_log"]) == 1
    assert report["undo_log"][-1]["description"] == 'VampBridge: re-render of "vamp 1 balanced s3"'


def test_rerender_cancelled_sends_nothing(tmp_path, wav, service):
    svc = service()
    scenario(tmp_path, """
      local it = item{ position_s = 1, length_s = 2 }
      reaper.GetSetMediaItemTakeInfo_String(it.active, "P_EXT:vampbridge_recipe", "/r.json", true)
      double.user_inputs = { false }
      run_to_end("Re-render selected takes")
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()
    assert svc.requests == []


def test_settings_dialog_saves_valid_values_and_re_asks_for_invalid_ones(tmp_path):
    report = Scenario(tmp_path, """
      double.user_inputs = {
        { "10.0.0.5", "70000", "9100", "tok", "creative", "4", "glue", "/renders", "" },
        { "10.0.0.5", "9200", "9100", "tok", "creative", "4", "glue", "/renders", "" },
      }
      H.run("Settings")
      double.user_inputs = { false }
      H.run("Settings")
    """).run()
    first, second, third = report["dialogs"]
    assert first["captions"][:3] == ["Service host", "Service port", "Listener port"]
    assert first["defaults"][:3] == ["127.0.0.1", "9071", "9072"]
    assert first["defaults"][8] == "vampbridge serve --port {port}"
    assert "between 1 and 65535" in report["messages"][0]["message"]
    assert second["defaults"][1] == "70000"  # the user's entry comes back to be corrected
    assert third["defaults"][1] == "9200"    # what was saved
    stored = report["ext_state"]["VampBridge"]
    assert stored["host"] == "10.0.0.5" and stored["port"] == "9200" and stored["n_variations"] == "4"
    assert stored["fx"] == "glue" and stored["output_dir"] == "/renders" and stored["autostart"] == ""
    assert "settings saved (service 10.0.0.5:9200, renders in /renders)" in report["console"]


def test_default_output_folder_is_beside_the_project_file(tmp_path):
    report = Scenario(tmp_path, """
      local settings = require("vampbridge_settings")
      H.out.saved = settings.output_dir(settings.load())
      double.project.file = ""
      H.out.unsaved = settings.output_dir(settings.load())
      H.out.client = settings.client_name()
    """).run()["out"]
    assert report["saved"] == "/tmp/vampbridge-test/VampBridge"
    assert report["unsaved"] == "/tmp/vampbridge-test/Media/VampBridge"
    assert report["client"] == "reaper:unsaved project"


# The test double's undo model ---------------------------------------------------------------


def test_the_double_undoes_like_reaper(tmp_path, wav):
    (tmp_path / "rename.lua").write_text('reaper.GetSetMediaItemTakeInfo_String('
                                         'reaper.GetActiveTake(reaper.GetSelectedMediaItem(0, 0)), "P_NAME", "renamed", true)')
    (tmp_path / "block.lua").write_text(
        'reaper.Undo_BeginBlock()\n'
        'local item = reaper.GetSelectedMediaItem(0, 0)\n'
        'reaper.SetMediaItemInfo_Value(item, "D_POSITION", 7)\n'
        'reaper.Undo_EndBlock("Move it", -1)\n')
    (tmp_path / "deferred.lua").write_text(
        'reaper.SetMediaItemInfo_Value(reaper.GetSelectedMediaItem(0, 0), "B_UISEL", 0)\n'
        'reaper.defer(function() end)\n')
    report = scenario(tmp_path, """
      local it = item{ position_s = 2, length_s = 1 }
      local function state() return { name = it.active.name, position_s = it.position_s, selected = it.selected } end
      double.run_script(P.tmp .. "/rename.lua")    -- no undo point of its own: Reaper adds one
      double.run_script(P.tmp .. "/block.lua")     -- its own point only
      H.out.points = {}
      for i, point in ipairs(double.undo_log) do H.out.points[i] = point.description end
      H.out.now = state()
      reaper.Undo_DoUndo2(0)
      H.out.after_undo = state()
      H.out.redo_of = reaper.Undo_CanRedo2(0)
      reaper.Undo_DoUndo2(0)
      H.out.after_two_undos = state()
      H.out.nothing_left = reaper.Undo_DoUndo2(0)
      reaper.Undo_DoRedo2(0)
      H.out.after_redo = state()
      local script = double.run_script(P.tmp .. "/deferred.lua")  -- deferred: no point at all
      double.pump(2)
      H.out.deferred_points = #double.undo_log
      H.out.deferred_selected = it.selected
      reaper.Undo_OnStateChange("Unselect")        -- a new point drops what could be redone
      H.out.final_points = {}
      for i, point in ipairs(double.undo_log) do H.out.final_points[i] = point.description end
    """, wav=str(wav), settings={}).run()
    out = report["out"]
    assert out["points"] == ["ReaScript: Run", "Move it"]
    assert out["now"] == {"name": "renamed", "position_s": 7, "selected": True}
    assert out["after_undo"] == {"name": "renamed", "position_s": 2, "selected": True}
    assert out["redo_of"] == "Move it"
    assert out["after_two_undos"] == {"name": "drums.wav", "position_s": 2, "selected": True}
    assert out["nothing_left"] == 0
    assert out["after_redo"] == {"name": "renamed", "position_s": 2, "selected": True}
    assert out["deferred_points"] == 2 and out["deferred_selected"] is False
    assert out["final_points"] == ["ReaScript: Run", "Unselect"]


def test_scripts_that_change_nothing_leave_no_undo_point(tmp_path, wav, service):
    svc = service()
    report = scenario(tmp_path, """
      local midi = item{ position_s = 0, length_s = 1, source = { type = "MIDI", file = "" } }
      run_to_end("Vamp selected items")                 -- nothing to vamp: a message only
      double.user_inputs = { false }
      run_to_end("Settings")                            -- cancelled
      midi.selected = false
      local it = item{ position_s = 2, length_s = 1 }
      run_to_end("Open selected item in editor")
    """, wav=str(wav), settings=settings_for(svc.port, tmp_path)).run()
    assert len(report["messages"]) == 2  # "select audio items", "no editor"
    assert report["undo_log"] == [] and report["errors"] == []
