"""`vampbridge models fetch` against a stand-in Hugging Face Hub on 127.0.0.1, never the network.

The stand-in answers the two requests `huggingface_hub.hf_hub_download` makes for a file:
HEAD and GET `/{repo}/resolve/{revision}/{path}`, with the headers it needs (X-Repo-Commit, an
ETag that is the file's sha256, Content-Length; Range for resumed downloads). The command runs
in a subprocess so huggingface_hub reads HF_ENDPOINT / HF_HOME at import, as it does for users;
outside traffic is pointed at a dead proxy so an unexpected request fails instead of leaving.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

REPO = "hugggof/vampnet"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
VAMPBRIDGE = [sys.executable, "-m", "bridge.cli"]
ROOT = Path(__file__).resolve().parent.parent


class StandInHub:
    """Serves {path in repo: bytes} for one repository, and records the requests it gets."""

    def __init__(self, files: dict):
        self.files = files
        self.requests = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def _answer(self, body):
                hub.requests.append((self.command, self.path, self.headers.get("Range")))
                match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", self.path.split("?")[0])
                if match is None or match.group(1) != REPO:
                    return self._error(404, "RepoNotFound", "Repository not found")
                if match.group(2) not in ("main", COMMIT):
                    return self._error(404, "RevisionNotFound", "Revision not found")
                data = hub.files.get(match.group(3))
                if data is None:
                    return self._error(404, "EntryNotFound", "Entry not found")
                start = 0
                ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if ranged and body:
                    start = int(ranged.group(1))
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

            def _error(self, status, code, message):
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("X-Error-Message", message)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def lora_file(base_file: Path, path: Path) -> Path:
    """A fine-tune file: LoRA tensors for one attention projection of a base transformer."""
    base = torch.load(base_file, weights_only=True)
    weight = base["state_dict"]["transformer.layers.0.self_attn.w_qs.weight"]
    generator = torch.Generator().manual_seed(1)
    state = {"transformer.layers.0.self_attn.w_qs.lora_A": torch.randn(8, weight.shape[1], generator=generator),
             "transformer.layers.0.self_attn.w_qs.lora_B": torch.randn(weight.shape[0], 8, generator=generator)}
    torch.save({"state_dict": state, "metadata": {"kwargs": base["metadata"]["kwargs"]}}, path)
    return path


@pytest.fixture(scope="module")
def hub_files(tiny_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    files = {name: (tiny_models / name).read_bytes() for name in ("codec.pth", "coarse.pth", "c2f.pth")}
    for name in ("coarse.pth", "c2f.pth"):
        files[f"loras/jazz/{name}"] = lora_file(tiny_models / name, folder / name).read_bytes()
    return files


def run_cli(args, tmp_path, endpoint, **env_overrides):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAMPBRIDGE_", "HF_"))}
    env.update(VAMPBRIDGE_DATA_DIR=str(tmp_path / "data"), HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint,
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="5",
               HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="127.0.0.1,localhost",
               PYTHONPATH=str(ROOT))
    env.update(env_overrides)
    return subprocess.run(VAMPBRIDGE + args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def closed_port_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again when the block ends


def test_fetch_installs_the_released_set_with_a_manifest_and_says_the_licence(hub_files, tmp_path):
    with StandInHub(hub_files) as hub:
        done = run_cli(["models", "fetch"], tmp_path, hub.endpoint)
    assert done.returncode == 0, done.stderr
    assert "CC BY-NC-SA 4.0" in done.stdout and "non-commercial" in done.stdout
    installed = tmp_path / "data" / "models" / "vampnet"
    for name in ("codec.pth", "coarse.pth", "c2f.pth"):
        assert (installed / name).read_bytes() == hub_files[name]
    manifest = json.loads((installed / "manifest.json").read_text())
    assert manifest["source"] == {"repo": REPO, "revision": "main", "commit": COMMIT,
                                  "files": {n: n for n in ("codec.pth", "coarse.pth", "c2f.pth")}}
    entry = manifest["files"]["c2f.pth"]
    assert entry["sha256"] == hashlib.sha256(hub_files["c2f.pth"]).hexdigest()
    assert entry["size"] == len(hub_files["c2f.pth"])
    assert (entry["kind"], entry["n_codebooks"], entry["n_conditioning_codebooks"]) == ("transformer", 14, 4)
    assert manifest["files"]["codec.pth"]["kind"] == "codec"
    assert [p.name for p in installed.parent.iterdir() if p.name.startswith(".")] == []  # no staging left over
    assert {(m, p.split("/")[-1]) for m, p, _ in hub.requests} >= {("GET", "codec.pth"), ("GET", "c2f.pth")}


def test_fetch_of_a_fine_tune_goes_under_loras_and_list_shows_it(hub_files, tmp_path):
    with StandInHub(hub_files) as hub:
        done = run_cli(["models", "fetch", "jazz"], tmp_path, hub.endpoint)
        assert done.returncode == 0, done.stderr
        # the base set came first, since the fine-tune needs it
        lora = tmp_path / "data" / "models" / "vampnet" / "loras" / "jazz"
        assert (lora / "coarse.pth").read_bytes() == hub_files["loras/jazz/coarse.pth"]
        assert json.loads((lora / "manifest.json").read_text())["source"]["files"] == {
            "coarse.pth": "loras/jazz/coarse.pth", "c2f.pth": "loras/jazz/c2f.pth"}
        listed = run_cli(["models", "list"], tmp_path, hub.endpoint)
    assert listed.returncode == 0, listed.stderr
    assert "fine-tunes (loras/): jazz" in listed.stdout
    assert "<- used by commands" in listed.stdout


def test_fetch_again_reuses_the_cache_and_works_offline(hub_files, tmp_path):
    with StandInHub(hub_files) as hub:
        assert run_cli(["models", "fetch"], tmp_path, hub.endpoint).returncode == 0
        hub.requests.clear()
        again = run_cli(["models", "fetch"], tmp_path, hub.endpoint)
    assert again.returncode == 0, again.stderr
    assert [m for m, _, _ in hub.requests if m == "GET"] == []  # nothing downloaded twice
    shutil.rmtree(tmp_path / "data")
    offline = run_cli(["models", "fetch"], tmp_path, closed_port_endpoint(), HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr
    assert (tmp_path / "data" / "models" / "vampnet" / "manifest.json").is_file()


def test_fetch_offline_with_an_empty_cache_says_how_to_install_by_hand(tmp_path):
    done = run_cli(["models", "fetch"], tmp_path, closed_port_endpoint(), HF_HUB_OFFLINE="1")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "offline" in done.stderr and "vampbridge models install" in done.stderr


def test_fetch_without_network_says_how_to_install_by_hand(tmp_path):
    done = run_cli(["models", "fetch"], tmp_path, closed_port_endpoint())
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "vampbridge models install" in lines[0]
    assert not (tmp_path / "data" / "models" / "vampnet").exists()


def test_fetch_of_an_unknown_fine_tune_names_it(hub_files, tiny_models, tmp_path):
    shutil.copytree(tiny_models, tmp_path / "data" / "models" / "vampnet")  # the base set is there
    with StandInHub(hub_files) as hub:
        done = run_cli(["models", "fetch", "polka"], tmp_path, hub.endpoint)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "loras/polka/coarse.pth" in done.stderr
    assert not (tmp_path / "data" / "models" / "vampnet" / "loras" / "polka").exists()


def test_a_damaged_download_is_not_installed(hub_files, tmp_path):
    damaged = dict(hub_files, **{"coarse.pth": hub_files["coarse.pth"][: len(hub_files["coarse.pth"]) // 2]})
    with StandInHub(damaged) as hub:
        done = run_cli(["models", "fetch"], tmp_path, hub.endpoint)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "coarse.pth" in done.stderr and "truncated or damaged" in done.stderr
    models = tmp_path / "data" / "models"
    assert not (models / "vampnet").exists()
    assert [p.name for p in models.iterdir() if p.name.startswith(".")] == []
