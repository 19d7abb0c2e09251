"""The HTTP job service (docs/http.md) on loopback with tiny random weights: uploads, jobs,
events, downloads, and every refusal (token, size, content type, malformed, paths)."""

import hashlib
import json
import urllib.request

import numpy as np
import pytest

from bridge.remote.http_client import RemoteClient, RemoteError
from remote_support import TOKEN, HttpBridge
from test_service_support import write_test_wav

FAST = {"sampling_steps": 2, "c2f_sampling_steps": 1}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, tiny_models):
    with HttpBridge(tmp_path_factory.mktemp("http-data"), tiny_models,
                    max_upload_bytes=400_000) as b:
        yield b


@pytest.fixture
def remote(bridge):
    return RemoteClient(bridge.url, token=TOKEN)


@pytest.fixture
def region(tmp_path):
    path = write_test_wav(tmp_path / "region.wav")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _raw(bridge, method, path, body=b"", headers=None):
    """(status, JSON body) of a request sent as given, without the client's checks."""
    req = urllib.request.Request(bridge.url + path, data=body or None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _error_code(data: bytes) -> str:
    return json.loads(data)["error"]["code"]


def test_a_region_is_stored_once_under_its_hash(remote, region):
    path, sha = region
    assert not remote.has_region(sha)
    assert remote.upload_region(sha, path) is True
    assert remote.has_region(sha)
    assert remote.upload_region(sha, path) is False  # already there: nothing stored again


def test_an_upload_whose_bytes_do_not_match_its_hash_is_refused(remote, region, bridge):
    path, _ = region
    wrong = "0" * 64
    with pytest.raises(RemoteError) as e:
        remote.upload_region(wrong, path)
    assert e.value.code == "bad_request" and "sha256" in e.value.message
    assert not remote.has_region(wrong)
    assert not list(bridge.http.regions.folder.glob(".upload-*"))  # nothing left behind


def test_oversized_malformed_and_mistyped_uploads_are_refused(bridge, tmp_path):
    data = write_test_wav(tmp_path / "big.wav", seconds=5.0).read_bytes()
    assert len(data) > bridge.http.regions.max_bytes
    sha = hashlib.sha256(data).hexdigest()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body = _raw(bridge, "PUT", f"/v1/regions/{sha}", data, {**auth, "Content-Type": "audio/wav"})
    assert (status, _error_code(body)) == (413, "too_large")
    chunks = (data[i:i + 65536] for i in range(0, len(data), 65536))  # no Content-Length up front
    status, body = _raw(bridge, "PUT", f"/v1/regions/{sha}", chunks,
                        {**auth, "Content-Type": "audio/wav", "Transfer-Encoding": "chunked"})
    assert (status, _error_code(body)) == (413, "too_large")
    assert not bridge.http.regions.has(sha)

    text = b"this is not audio at all"
    sha = hashlib.sha256(text).hexdigest()
    status, body = _raw(bridge, "PUT", f"/v1/regions/{sha}", text, {**auth, "Content-Type": "audio/wav"})
    assert (status, _error_code(body)) == (400, "bad_audio")
    status, body = _raw(bridge, "PUT", f"/v1/regions/{sha}", text, {**auth, "Content-Type": "text/plain"})
    assert (status, _error_code(body)) == (415, "bad_content_type")
    wav = {**auth, "Content-Type": "audio/wav"}
    status, body = _raw(bridge, "PUT", "/v1/regions/..%2F..%2Fetc", text, wav)
    assert status in (400, 404)
    assert sorted(p.name for p in bridge.http.regions.folder.iterdir()) == sorted(
        p.name for p in bridge.http.regions.folder.glob("*.wav") if not p.name.startswith("."))


def test_requests_without_the_right_token_are_refused_before_anything_else(bridge, tmp_path):
    path = write_test_wav(tmp_path / "other.wav", seconds=0.3)  # a region never uploaded
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    for token in ("", "wrong", TOKEN + "x"):
        client = RemoteClient(bridge.url, token=token)
        with pytest.raises(RemoteError) as e:
            client.upload_region(sha, path)
        assert (e.value.status, e.value.code) == (401, "bad_token")
        with pytest.raises(RemoteError):
            client.hello()
    status, _ = _raw(bridge, "GET", "/v1/hello", headers={"Authorization": f"Basic {TOKEN}"})
    assert status == 401
    assert not RemoteClient(bridge.url, token=TOKEN).has_region(sha)


def test_malformed_jobs_and_client_paths_are_refused(remote, region, bridge):
    path, sha = region
    remote.upload_region(sha, path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    as_json = {**auth, "Content-Type": "application/json"}
    status, body = _raw(bridge, "POST", "/v1/jobs", b"{not json", as_json)
    assert (status, _error_code(body)) == (400, "bad_request")
    status, body = _raw(bridge, "POST", "/v1/jobs", b"{}", {**auth, "Content-Type": "text/plain"})
    assert (status, _error_code(body)) == (415, "bad_content_type")
    status, body = _raw(bridge, "POST", "/v1/jobs", b"[" * 2_000_000, as_json)
    assert (status, _error_code(body)) == (413, "too_large")

    def refused(job):
        with pytest.raises(RemoteError) as e:
            remote.submit(job)
        return e.value

    base = {"client": "t", "region_sha256": sha, "request": {"n_variations": 1, "sampling": FAST}}
    assert "never takes paths" in refused({**base, "request": {"output_dir": "/home/x"}}).message
    assert refused({**base, "request": {"source_path": "/etc/passwd"}}).code == "bad_request"
    assert refused({**base, "request": {"mask": "@/etc/passwd"}}).code == "bad_request"
    plugin = [{"plugin": "vst3", "path": "/usr/lib/vst3/x.vst3"}]
    assert refused({**base, "request": {"fx": plugin}}).code == "bad_fx"
    assert refused({**base, "region_sha256": "f" * 64}).code == "unknown_region"
    assert refused({**base, "request": {"n_variations": 0}}).code == "bad_argument"
    assert refused({**base, "job_id": "../x"}).code == "bad_request"
    assert refused({**base, "request": {"surprise": 1}}).code == "bad_request"
    assert bridge.store.jobs() == [] or all(j.client != "t" for j in bridge.store.jobs())


def test_a_job_streams_progress_and_results_and_serves_its_files(remote, region, bridge, tiny_models):
    path, sha = region
    remote.upload_region(sha, path)
    reply = remote.submit({"job_id": "http-job-1", "client": "t2", "region_sha256": sha,
                           "request": {"n_variations": 2, "seed": 11, "sampling": FAST}})
    assert reply["job_id"] == "http-job-1"
    events = list(remote.events("http-job-1"))
    names = [n for n, _ in events if n != "keepalive"]
    assert names[0] == "status" and names[-1] == "done" and "progress" in names
    results = [d for n, d in events if n == "result"]
    assert sorted(r["variation"] for r in results) == [0, 1]
    assert [r["seed"] for r in sorted(results, key=lambda r: r["variation"])] == [11, 12]
    done = events[-1][1]
    assert done == {"state": "done", "n_finished": 2, "n_failed": 0}

    record = bridge.store.variation("http-job-1", 1)
    out = bridge.http.outputs
    assert record.audio_path.startswith(str(out))  # the service chose where the job wrote
    dest = bridge.http.outputs.parent / "dl"
    remote.download("http-job-1", 1, "audio", dest / "v1.wav")
    remote.download("http-job-1", 1, "recipe", dest / "v1.json")
    remote.download("http-job-1", 1, "tokens", dest / "v1.npz")
    assert (dest / "v1.wav").read_bytes() == open(record.audio_path, "rb").read()
    assert json.loads((dest / "v1.json").read_text())["seed"] == 12
    with np.load(dest / "v1.npz") as tokens:
        assert tokens["codes"].ndim == 3

    # a finished job's stream replays its state and ends at once (a reconnecting client)
    again = [n for n, _ in remote.events("http-job-1") if n != "keepalive"]
    assert again == ["status", "result", "result", "done"]
    assert [r["variation"] for r in remote.pending("t2")] == [0, 1]
    remote.ack("http-job-1", 0)
    assert [r["variation"] for r in remote.pending("t2")] == [1]
    with pytest.raises(RemoteError) as e:
        remote.download("http-job-1", 7, "audio", dest / "x.wav")
    assert e.value.code == "unknown_variation"
    with pytest.raises(RemoteError) as e:
        remote.download("http-job-1", 0, "..", dest / "x.wav")
    assert e.value.status in (400, 404)
    with pytest.raises(RemoteError) as e:
        remote.submit({"job_id": "http-job-1", "client": "t2", "region_sha256": sha,
                       "request": {"n_variations": 1}})
    assert e.value.code == "job_exists"

    # rerender of a finished variation, named by job and index (never by a path)
    remote.submit({"job_id": "http-job-2", "client": "t2", "kind": "rerender",
                   "of_job": "http-job-1", "variation": 1, "fx": "glue"})
    rerendered = [d for n, d in remote.events("http-job-2") if n == "result"]
    assert [r["seed"] for r in rerendered] == [12]
    assert bridge.store.variation("http-job-2", 0).audio_path.startswith(str(out))


def test_cancel_and_resume_over_http(remote, region):
    path, sha = region
    remote.upload_region(sha, path)
    slow = {"sampling_steps": 48, "c2f_sampling_steps": 2}
    remote.submit({"job_id": "http-cancel", "client": "t3", "region_sha256": sha,
                   "request": {"n_variations": 3, "seed": 5, "sampling": slow}})
    for name, _ in remote.events("http-cancel"):
        if name == "progress":
            break
    assert remote.cancel("http-cancel")["state"] == "cancelled"
    done = [d for n, d in remote.events("http-cancel") if n == "done"]
    assert done[-1]["state"] == "cancelled"
    remote.resume("http-cancel")
    done = [d for n, d in remote.events("http-cancel") if n == "done"]
    assert done[-1] == {"state": "done", "n_finished": 3, "n_failed": 0}
    assert remote.status("http-cancel")["state"] == "done"


def test_one_job_model_and_store_behind_both_transports(remote, region, bridge):
    from bridge.osc.client import OscClient

    path, sha = region
    remote.upload_region(sha, path)
    remote.submit({"job_id": "both-1", "client": "both", "region_sha256": sha,
                   "request": {"n_variations": 2, "seed": 3, "sampling": FAST}})
    list(remote.events("both-1"))
    with OscClient(port=bridge.port, name="osc") as c:
        status = json.loads(c.wait_for("status", c.request("status", "both-1")).args[1])
        assert [(s["state"], s["n_finished"]) for s in status] == [("done", 2)]
        assert c.wait_for("pending", c.request("pending", "both")).args[1] == 2
        c.wait_for("acked", c.request("ack", "both-1", 1))
    assert [r["variation"] for r in remote.pending("both")] == [0]
    assert remote.status("both-1")["state"] == "done"
