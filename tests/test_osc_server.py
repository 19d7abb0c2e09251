"""Round trips over UDP with python-osc: every request of docs/osc.md against a running bridge."""

import json
import time
from pathlib import Path

import pytest

from bridge.osc import protocol
from bridge.osc.client import OscClient, build_message
from bridge.osc.server import BridgeServer
from test_service_support import InProcessBridge, vamp_args, write_test_wav


@pytest.fixture
def bridge(tmp_path, tiny_models):
    with InProcessBridge(tmp_path / "data", tiny_models) as b:
        yield b


@pytest.fixture
def client(bridge):
    with OscClient(port=bridge.port, name="reaper") as c:
        yield c


@pytest.fixture
def source(tmp_path):
    return write_test_wav(tmp_path / "media" / "loop.wav")


def _job_messages(client, job_id, timeout_s=60.0):
    """Every reply for `job_id` up to and including `done`."""
    done = client.wait_for("done", job_id, timeout_s=timeout_s)
    return [r for r in client.drain() if r.id == job_id] + [done]


def test_hello_reports_protocol_version_and_capabilities(client):
    rid = client.request("hello")
    reply = client.wait_for("hello", rid)
    assert reply.args[1] == protocol.PROTOCOL_VERSION
    assert "vamp" in json.loads(reply.args[5]) and "open" not in json.loads(reply.args[5])
    presets = json.loads(reply.args[6])
    assert set(presets) >= {"mask", "fx"}


def test_ping_is_answered_with_pong(client):
    rid = client.request("ping")
    assert client.wait_for("pong", rid).args == (rid,)


def test_vamp_job_reports_accepted_progress_each_result_and_done(client, source, tmp_path):
    out = tmp_path / "renders"
    rid = client.request("vamp", *vamp_args(source, n_variations=2, output_dir=out))
    accepted = client.wait_for("accepted", rid, timeout_s=10)
    assert accepted.args[1] == 0
    messages = _job_messages(client, rid)
    names = [m.name for m in messages]
    assert names[-1] == "done" and messages[-1].args[1:] == (2, 0, "done")
    assert "progress" in names
    results = [m for m in messages if m.name == "result"]
    assert sorted(r.args[1] for r in results) == [0, 1]
    for r in results:
        _, index, audio, recipe, item, take, take_name, seed = r.args
        assert Path(audio).is_file() and Path(recipe).is_file()
        assert Path(audio).parent == out.resolve()
        assert (item, take) == ("{item}", "{take}") and take_name
    seeds = sorted(r.args[7] for r in results)
    assert seeds[1] == seeds[0] + 1  # variation k uses seed + k
    fractions = [m.args[1] for m in messages if m.name == "progress"]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1


def test_progress_arrives_at_least_twice_a_second_while_the_job_runs(client, tmp_path):
    # Long enough (several seconds here) that even a much faster machine needs over a second.
    source = write_test_wav(tmp_path / "media" / "long.wav", seconds=2.0)
    steps = json.dumps({"sampling_steps": 64, "c2f_sampling_steps": 4})
    rid = client.request("vamp", *vamp_args(source, n_variations=2, sampling=steps))
    client.wait_for("accepted", rid)
    messages = _job_messages(client, rid)
    times = [m.received_s for m in messages if m.name in ("progress", "done")]
    gaps = [b - a for a, b in zip(times, times[1:])]
    duration = times[-1] - times[0]
    assert duration > 1.0  # long enough to show the rate
    assert max(gaps) < 0.5, f"longest silence {max(gaps):.3f} s"
    assert len(times) <= 11 * duration + 3  # and not much more than 10 a second


def test_results_are_pending_until_acknowledged(client, source):
    rid = client.request("vamp", *vamp_args(source, client="reaper:pending", n_variations=2))
    _job_messages(client, rid)
    pid = client.request("pending", "reaper:pending")
    assert client.wait_for("pending", pid).args[1] == 2
    resent = [r for r in client.drain() if r.name == "result"]
    assert sorted(r.args[1] for r in resent) == [0, 1] and {r.id for r in resent} == {rid}
    aid = client.request("ack", rid, 0)
    assert client.wait_for("acked", aid).args == (aid, rid, 0)
    pid = client.request("pending", "reaper:pending")
    assert client.wait_for("pending", pid).args[1] == 1
    assert [r.args[1] for r in client.drain() if r.name == "result"] == [1]


def test_status_lists_jobs_with_their_state(client, source):
    rid = client.request("vamp", *vamp_args(source))
    _job_messages(client, rid)
    sid = client.request("status", rid)
    jobs = json.loads(client.wait_for("status", sid).args[1])
    assert jobs == [{"job_id": rid, "client": "reaper:test", "state": "done", "fraction": 1.0,
                     "n_finished": 1, "n_total": 1, "source_path": str(source)}]
    sid = client.request("status", "")
    assert rid in [j["job_id"] for j in json.loads(client.wait_for("status", sid).args[1])]


def test_cancel_stops_a_running_job_at_its_next_sampling_step(bridge, client, source):
    polls_after_cancel = []
    real_run = bridge.pipeline.run

    def run(request, *, should_cancel, **kw):
        def polled():
            answer = should_cancel()
            if answer:
                polls_after_cancel.append(time.monotonic())
            return answer
        return real_run(request, should_cancel=polled, **kw)
    bridge.pipeline.run = run

    slow = json.dumps({"sampling_steps": 400})
    rid = client.request("vamp", *vamp_args(source, n_variations=4, sampling=slow))
    client.wait_for("progress", rid, where=lambda r: r.args[2] == "coarse", timeout_s=60)
    cid = client.request("cancel", rid)
    assert client.wait_for("cancelled", cid).args == (cid, rid)
    done = client.wait_for("done", rid, timeout_s=10)
    assert done.args[1:] == (0, 0, "cancelled")
    assert len(polls_after_cancel) == 1  # stopped at the first sampling step that looked
    sid = client.request("status", rid)
    assert json.loads(client.wait_for("status", sid).args[1])[0]["state"] == "cancelled"


def test_cancelled_job_can_be_resumed(client, source):
    rid = client.request("vamp", *vamp_args(source, n_variations=2, seed=77,
                                            sampling=json.dumps({"sampling_steps": 400})))
    client.wait_for("progress", rid, where=lambda r: r.args[2] == "coarse", timeout_s=60)
    client.request("cancel", rid)
    assert client.wait_for("done", rid, timeout_s=10).args[3] == "cancelled"
    client.drain()
    # resume queues it again, with its own (slow) options: see it run, then stop it again
    accepted = client.wait_for("accepted", client.request("resume", rid))
    assert accepted.args[1] == 0
    client.wait_for("progress", rid, timeout_s=30)
    client.request("cancel", rid)
    assert client.wait_for("done", rid, timeout_s=10).args[3] == "cancelled"


def test_rerender_makes_one_variation_from_a_recipe(client, source, tmp_path):
    rid = client.request("vamp", *vamp_args(source))
    recipe = client.wait_for("result", rid, timeout_s=60).args[3]
    client.wait_for("done", rid)
    out = tmp_path / "rerenders"
    rr = client.request("rerender", "reaper:test", recipe, "", -1, str(out), "{i}", "{t}")
    client.wait_for("accepted", rr)
    result = client.wait_for("result", rr, timeout_s=60)
    assert result.args[1] == 0 and Path(result.args[2]).parent == out.resolve()
    assert result.args[4:6] == ("{i}", "{t}")
    assert client.wait_for("done", rr).args[1:] == (1, 0, "done")


@pytest.mark.parametrize("args, code", [
    (("reaper",), "bad_request"),
    (vamp_args(Path("/no/such/file.wav")), "source_missing"),
    (vamp_args(Path(__file__)), "source_unreadable"),
])
def test_bad_vamp_requests_are_answered_with_error_codes(client, args, code):
    rid = client.request("vamp", *args)
    reply = client.wait_for("error", rid)
    assert reply.args[1] == code, reply.args[2]


def test_system_output_folder_is_refused(client, source):
    rid = client.request("vamp", *vamp_args(source, output_dir="/etc"))
    assert client.wait_for("error", rid).args[1] == "bad_output_dir"


def test_nan_in_a_numeric_argument_is_a_bad_argument(client, source):
    args = list(vamp_args(source))
    args[2] = float("nan")
    rid = client.request("vamp", *args)
    reply = client.wait_for("error", rid)
    assert reply.args[1] == "bad_argument" and "start_s" in reply.args[2]


def test_unknown_address_and_unknown_job_are_errors(client):
    rid = client.request("frobnicate")
    assert client.wait_for("error", rid).args[1] == "unknown_address"
    rid = client.request("cancel", "no-such-job")
    assert client.wait_for("error", rid).args[1] == "unknown_job"
    rid = client.request("open", "reaper", "/x.wav", 0.0, 0.0, 1.0, 0, 0, "", "")
    assert client.wait_for("error", rid).args[1] == "no_editor"


def test_datagram_over_the_limit_is_refused_not_truncated(client, source):
    def datagram(filler_chars):
        args = list(vamp_args(source))
        args[9] = json.dumps({"regions": ["x" * filler_chars]})  # mask
        return build_message(protocol.PREFIX + "vamp",
                             ("big-1", client.reply_port, client.token) + tuple(args))
    # Larger than the service's limit, still small enough for UDP (65 507 bytes).
    data = datagram(65_200 - len(datagram(0)))
    assert protocol.MAX_DATAGRAM_BYTES < len(data) < 65_507
    client.send_raw(data)
    reply = client.wait_for("error", "big-1")
    assert reply.args[1] == "too_large"
    sid = client.request("status", "")
    assert "big-1" not in client.wait_for("status", sid).args[1]


def test_reused_request_id_is_refused(client, source):
    rid = client.request("vamp", *vamp_args(source))
    client.wait_for("accepted", rid)
    client.request("vamp", *vamp_args(source), request_id=rid)
    assert client.wait_for("error", rid).args[1] == "bad_request"
    client.wait_for("done", rid, timeout_s=60)


def test_token_protected_server_drops_and_counts_messages_without_the_token(tmp_path,
                                                                            tiny_models):
    with InProcessBridge(tmp_path / "data", tiny_models, token="s3cret") as b:
        with OscClient(port=b.port, name="t") as wrong, \
                OscClient(port=b.port, name="t", token="s3cret") as right:
            wrong.request("ping")
            wrong.send_raw(b"garbage")
            rid = right.request("ping")
            right.wait_for("pong", rid)
            sid = right.request("status", "")
            assert right.wait_for("status", sid).args[2] == 2
            assert wrong.drain() == []


def test_binding_off_loopback_requires_a_token(bridge):
    with pytest.raises(ValueError, match="token"):
        BridgeServer(bridge.service, host="0.0.0.0", port=0, token="")


def test_a_slow_listener_of_another_front_end_does_not_break_replies(bridge, client, source):
    seen = []
    bridge.service.subscribe(lambda e: seen.append(e) or (_ for _ in ()).throw(RuntimeError()))
    rid = client.request("vamp", *vamp_args(source))
    assert client.wait_for("done", rid, timeout_s=60).args[3] == "done"
    assert seen
