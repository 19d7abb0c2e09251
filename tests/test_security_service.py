"""Attacks on the OSC service by a local user or a careless client (issue 10): plugins named by a
message, requests without the per-user secret, `@file` arguments that point at secrets, devices,
FIFOs or huge files, relative and hostile source paths. Each attack client is written here, with
python-osc and raw sockets, not with the project's ReaScripts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge.osc import protocol
from bridge.osc.client import OscClient, build_message
from test_service_support import FAST_SAMPLING, REPO, InProcessBridge, vamp_args, write_test_wav

EVIL_C = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void ran(void) {
  const char *p = getenv("VAMPBRIDGE_TEST_MARKER");
  if (p) { FILE *f = fopen(p, "w"); if (f) { fputs("native code ran\n", f); fclose(f); } }
}
"""


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, tiny_models):
    with InProcessBridge(tmp_path_factory.mktemp("data"), tiny_models) as b:
        yield b


@pytest.fixture
def client(bridge):
    with OscClient(port=bridge.port, name="attacker") as c:
        yield c


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_test_wav(tmp_path_factory.mktemp("media") / "loop.wav")


def ask_vamp(osc: OscClient, source, **changes) -> tuple:
    """Send a `vamp` (the changes by argument name) and return the first answer's (name, args)."""
    names = ("client", "source_path", "start_s", "length_s", "playrate", "sample_rate",
             "channels", "item_guid", "take_guid", "mask", "sampling", "fx", "n_variations",
             "seed", "output_dir")
    args = dict(zip(names, vamp_args(source)))
    args.update(changes)
    rid = osc.request("vamp", *(args[n] for n in names))
    reply = osc.wait_for(request_id=rid, where=lambda r: r.name in ("accepted", "error"),
                         timeout_s=15)
    if reply.name == "accepted":  # not the point of these tests: stop it at once
        osc.request("cancel", rid)
    return reply.name, reply.args


def rss_bytes() -> int:
    """This process's resident memory (the in-process service's), from /proc/self/statm."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_answers_hello_fast(client, within_s: float = 0.1) -> None:
    started = time.perf_counter()
    reply = client.wait_for("hello", client.request("hello"), timeout_s=5)
    assert reply.received_s - started < within_s, f"hello took {reply.received_s - started:.3f} s"


# -- 1: native code from one datagram --------------------------------------------------------

@pytest.fixture(scope="module")
def evil_bundle(tmp_path_factory):
    """A VST3 bundle whose library writes $VAMPBRIDGE_TEST_MARKER when it is loaded."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the hostile library")
    root = tmp_path_factory.mktemp("outside")
    c_file = root / "evil.c"
    c_file.write_text(EVIL_C)
    library = root / "Evil.vst3" / "Contents" / "x86_64-linux" / "Evil.so"
    library.parent.mkdir(parents=True)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(library), str(c_file)], check=True)
    return root / "Evil.vst3"


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker"
    monkeypatch.setenv("VAMPBRIDGE_TEST_MARKER", str(path))
    return path


def vst3(path) -> str:
    return json.dumps([{"plugin": "vst3", "path": str(path)}])


def test_the_hostile_library_runs_code_when_loaded_from_an_allowed_folder(evil_bundle, marker):
    """The attack is real: once its folder is allowed, loading the bundle runs its code."""
    from bridge.fx import FxChain, FxError, set_extra_plugin_folders

    set_extra_plugin_folders([evil_bundle.parent])
    try:
        with pytest.raises(FxError, match="cannot load plugin"):
            FxChain.from_json([{"plugin": "vst3", "path": str(evil_bundle)}])
    finally:
        set_extra_plugin_folders([])
    assert marker.exists()


def test_a_plugin_path_named_only_by_a_message_is_refused_before_it_is_loaded(
        client, source, evil_bundle, marker, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".vst3").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (home / ".vst3" / "Linked.vst3").symlink_to(evil_bundle)  # a link out of a plugin folder
    climbs_out = str(home / ".vst3") + "/.." * 40 + str(evil_bundle)  # a plugin folder's prefix
    for path in (evil_bundle, home / ".vst3" / "Linked.vst3", climbs_out, "Evil.vst3",
                 evil_bundle / "Contents" / "x86_64-linux" / "Evil.so"):
        name, args = ask_vamp(client, source, fx=vst3(path))
        assert (name, args[1]) == ("error", "plugin_not_allowed"), (path, args)
        assert "--plugin-dir" in args[2]
    assert not marker.exists()


def test_plugin_folders_given_at_start_are_the_only_extra_folders(tmp_path, tiny_models):
    from bridge import fx

    allowed, other = tmp_path / "my-plugins", tmp_path / "b"
    started = threading.Event()
    stop = threading.Event()
    result = []
    thread = threading.Thread(target=lambda: result.append(fx_serve(tiny_models, tmp_path, allowed,
                                                                    started, stop)))
    thread.start()
    try:
        assert started.wait(30)
        folders = fx.plugin_folders("vst3")
        assert allowed.resolve() in folders and other.resolve() not in folders
        assert Path.home().resolve() / ".vst3" in folders and Path("/usr/lib/vst3") in folders
    finally:
        stop.set()
        thread.join(30)
        fx.set_extra_plugin_folders([])
    assert result == [0]


def fx_serve(model_dir, tmp_path, plugin_dir, started, stop) -> int:
    from bridge.osc.server import serve
    return serve(port=0, model_dir=model_dir, device="cpu", data_dir=tmp_path,
                 plugin_dirs=[str(plugin_dir)], ready=lambda server: started.set(), stop=stop)


def test_serve_takes_repeated_plugin_dirs_and_refuses_relative_ones():
    from bridge.cli import build_parser
    args = build_parser().parse_args(["serve", "--plugin-dir", "/opt/a", "--plugin-dir", "/opt/b"])
    assert args.plugin_dir == ["/opt/a", "/opt/b"]
    from bridge.fx import set_extra_plugin_folders
    with pytest.raises(ValueError, match="absolute"):
        set_extra_plugin_folders(["plugins"])


def test_the_cli_loads_plugins_only_from_folders_it_is_given(evil_bundle, source, tmp_path, capsys):
    from bridge.cli import main

    from bridge import fx

    command = ["vamp", str(source), "-o", str(tmp_path / "out"), "--fx", vst3(evil_bundle)]
    assert main(command) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert main(command + ["--plugin-dir", str(evil_bundle.parent)]) == 2
    assert "cannot load plugin" in capsys.readouterr().err  # past the rule: it was tried
    assert fx.plugin_folders("vst3")[-1] == evil_bundle.parent.resolve()
    fx.set_extra_plugin_folders([])


# -- 7: the per-user secret ------------------------------------------------------------------

def test_first_start_creates_a_secret_only_its_user_can_read(tmp_path):
    from bridge.secret import ensure_secret, read_secret

    path = tmp_path / "secret"
    assert read_secret(path) == ""
    secret = ensure_secret(path)
    assert len(secret) >= 40 and secret.replace("-", "").replace("_", "").isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == secret + "\n"
    assert ensure_secret(path) == secret == read_secret(path)  # kept across starts
    assert ensure_secret(tmp_path / "other") != secret


def test_a_secret_others_can_read_is_refused_at_start(tmp_path):
    from bridge.secret import SecretError, ensure_secret

    path = tmp_path / "secret"
    ensure_secret(path)
    path.chmod(0o644)
    with pytest.raises(SecretError, match="other users"):
        ensure_secret(path)


def test_the_service_creates_its_secret_in_the_data_folder(bridge):
    from bridge.paths import secret_path

    assert bridge.server.token == secret_path().read_text().strip()
    assert stat.S_IMODE(secret_path().stat().st_mode) == 0o600


def test_requests_without_the_secret_are_dropped_on_loopback_too(bridge):
    with OscClient(port=bridge.port, name="other-user", token="") as stranger, \
            OscClient(port=bridge.port, name="guess", token="guessed") as guesser:
        for c in (stranger, guesser):
            for name, args in (("hello", ()), ("status", ("",)), ("pending", ("",))):
                c.request(name, *args)
        time.sleep(0.5)  # nothing is awaited: a dropped request has no answer to wait for
        assert stranger.drain() == [] and guesser.drain() == []
    with OscClient(port=bridge.port, name="same-user") as friend:  # reads the secret file
        assert friend.token == bridge.server.token
        friend.wait_for("hello", friend.request("hello"))


def raw_hello(port: int, token: str) -> bool:
    """A raw-socket client: True if `hello` with this token is answered within 0.5 s."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        s.sendto(build_message("/vampbridge/hello", ("raw-1", s.getsockname()[1], token)),
                 ("127.0.0.1", port))
        try:
            return b"/vampbridge/hello" in s.recvfrom(65536)[0]
        except socket.timeout:
            return False


def test_a_raw_client_needs_the_exact_secret(bridge):
    secret = bridge.server.token
    assert raw_hello(bridge.port, secret)
    for wrong in ("", secret[:-1], secret + "x", secret.upper(), " " + secret):
        assert not raw_hello(bridge.port, wrong), wrong


def test_no_token_is_an_explicit_opt_out_on_loopback_only(tmp_path, tiny_models, capsys):
    from bridge.osc.server import main, serve

    with InProcessBridge(tmp_path / "open", tiny_models, token="") as open_bridge:
        assert raw_hello(open_bridge.port, "")
    assert serve(host="0.0.0.0", port=0, token="", data_dir=tmp_path) == 2
    assert "loopback only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["--host", "0.0.0.0", "--no-token", "--port", "0"])
    assert exit_.value.code == 2
    assert "loopback only" in capsys.readouterr().err


def test_vampbridge_serve_no_token_off_loopback_exits_with_a_message():
    done = subprocess.run([sys.executable, "-m", "bridge.cli", "serve", "--host", "0.0.0.0",
                           "--no-token"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and "loopback only" in done.stderr


def lua_token(env: dict, settings_token: str = "") -> str:
    lua = shutil.which("lua5.4")
    if lua is None:
        pytest.skip("lua5.4 is not installed")
    code = ('package.path = "%s/reaper_scripts/VampBridge/?.lua;" .. package.path\n'
            'local net = require("vampbridge_net")\n'
            'io.write(net.token({ token = arg[1] }))\n') % REPO
    return subprocess.run([lua, "-", settings_token], input=code, capture_output=True, text=True,
                          check=True, timeout=20, env=env).stdout


def test_the_reascripts_read_the_secret_where_the_service_writes_it(tmp_path):
    """vampbridge_net.lua computes the data folder as bridge/paths.py does."""
    from bridge.secret import ensure_secret

    base = {k: v for k, v in os.environ.items()
            if k not in ("VAMPBRIDGE_DATA_DIR", "XDG_DATA_HOME")}
    home = tmp_path / "home"
    cases = {
        "VAMPBRIDGE_DATA_DIR": ({"VAMPBRIDGE_DATA_DIR": str(tmp_path / "studio")}, tmp_path / "studio"),
        "XDG_DATA_HOME": ({"HOME": str(home), "XDG_DATA_HOME": str(tmp_path / "xdg")},
                          tmp_path / "xdg" / "vampbridge"),
        "HOME": ({"HOME": str(home)}, home / ".local" / "share" / "vampbridge"),
        "empty XDG_DATA_HOME": ({"HOME": str(home), "XDG_DATA_HOME": ""},
                                home / ".local" / "share" / "vampbridge"),
    }
    for name, (env, folder) in cases.items():
        env = {**base, **env}
        python_folder = subprocess.run(
            [sys.executable, "-c", "from bridge.paths import secret_path; print(secret_path())"],
            capture_output=True, text=True, check=True, env={**env, "PYTHONPATH": str(REPO)},
            timeout=60).stdout.strip()
        assert Path(python_folder) == folder / "secret", name
        secret = ensure_secret(folder / "secret")
        assert lua_token(env) == secret, name
        assert lua_token(env, "studio-b") == "studio-b", name  # a token set in the settings wins
    assert lua_token({**base, "VAMPBRIDGE_DATA_DIR": str(tmp_path / "never")}) == ""


def test_the_companion_serves_with_the_secret_and_sends_it_to_reaper(tiny_models, tmp_path):
    pytest.importorskip("PyQt6")
    from gui.engine_bridge import EngineBridge

    from bridge.secret import read_secret

    bridge = EngineBridge(tiny_models, "cpu", osc_port=0, token="", store_path=tmp_path / "j.db")
    bridge.start()
    try:
        assert bridge.server is not None and bridge.server.token == read_secret() != ""
        assert bridge.checked_token == read_secret()
        assert raw_hello(bridge.osc_port, read_secret()) and not raw_hello(bridge.osc_port, "")
    finally:
        bridge.close()


# -- 3, 10, 11: @file arguments ----------------------------------------------------------------

SECRET_VALUE = "hunter2-do-not-show"
SECRET_KEY = "aws_secret_access_key"


@pytest.fixture
def secret_json(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({SECRET_KEY: SECRET_VALUE, "region": "eu-1",
                                "plugin": SECRET_VALUE, "chain": [{"plugin": SECRET_VALUE}]}))
    return path


@pytest.mark.parametrize("field", ["mask", "fx"])
def test_an_at_file_error_names_the_file_never_its_content(client, source, secret_json, tmp_path,
                                                            field):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"plugin": SECRET_VALUE, SECRET_KEY: 1}]))
    not_json = tmp_path / "notes.txt"
    not_json.write_text(f"{SECRET_KEY}={SECRET_VALUE}\n")
    for path in (secret_json, listed, not_json):
        name, args = ask_vamp(client, source, **{field: f"@{path}"})
        assert name == "error" and args[1] != "internal", args
        assert str(path) in args[2], args
        for leaked in (SECRET_VALUE, SECRET_KEY, "region", "eu-1"):
            assert leaked not in args[2], (leaked, args[2])


def test_rerender_fx_at_file_errors_hide_the_content_too(client, secret_json, tmp_path):
    recipe = tmp_path / "x.json"
    recipe.write_text("{}")
    rid = client.request("rerender", "reaper", str(recipe), f"@{secret_json}", -1, "", "", "")
    reply = client.wait_for("error", rid)
    assert SECRET_VALUE not in reply.args[2] and SECRET_KEY not in reply.args[2]


@pytest.fixture
def hostile_files(tmp_path):
    """Paths that are not small regular files: a FIFO without writer, a folder, devices, a huge
    sparse file."""
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.json"
    folder.mkdir()
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: 3 GB of zero bytes on no disk space
    just_over = tmp_path / "just-over.json"
    just_over.write_text("[" + " " * 1_000_000 + "]")
    return {"FIFO": fifo, "folder": folder, "huge file": huge, "file over 1 MB": just_over,
            "/dev/zero": Path("/dev/zero"), "/dev/urandom": Path("/dev/urandom"),
            "/dev/stdin": Path("/dev/stdin"), "/proc/self/mem": Path("/proc/self/mem")}


@pytest.mark.parametrize("field", ["mask", "fx"])
def test_at_files_that_are_not_small_regular_files_are_refused_at_once(client, source,
                                                                       hostile_files, field):
    rss_before = rss_bytes()
    for what, path in hostile_files.items():
        started = time.perf_counter()
        name, args = ask_vamp(client, source, **{field: f"@{path}"})
        assert time.perf_counter() - started < 2.0, what
        assert (name, args[1]) == ("error", "bad_request"), (what, args)
        assert str(path) in args[2], (what, args[2])
        assert_answers_hello_fast(client)
    assert rss_bytes() - rss_before < 50 * 1024**2


def test_at_file_reader_names_the_shape_problem():
    from bridge.inputs import InputError, read_json_file

    for path, problem in ((Path("/dev/null"), "a device"), (Path("/"), "a folder")):
        with pytest.raises(InputError, match=problem):
            read_json_file(path, "mask")


def test_relative_at_file_paths_are_refused_by_the_service(client, source, tmp_path):
    for value in ("@mask.json", "@./mask.json", "@~/mask.json", "@"):
        name, args = ask_vamp(client, source, mask=value)
        assert (name, args[1]) == ("error", "bad_request"), (value, args)


# -- 6, 12: source paths -----------------------------------------------------------------------

def test_a_relative_source_path_is_refused_with_a_clear_error(client, source):
    relative = os.path.relpath(source)  # it exists, relative to this process's folder
    assert Path(relative).is_file()
    for path in (relative, "loop.wav", "./loop.wav", "~/loop.wav"):
        name, args = ask_vamp(client, source, source_path=path)
        assert (name, args[1]) == ("error", "bad_argument"), (path, args)
        assert "absolute" in args[2], args[2]


def hostile_source_paths(tmp_path: Path, source: Path) -> dict:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    loop = tmp_path / "loop-link.wav"
    loop.symlink_to(loop)
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    to_dev = tmp_path / "zero.wav"
    to_dev.symlink_to("/dev/zero")
    return {
        "name over 255 bytes": "/tmp/" + "a" * 300 + ".wav",
        "name of 255 multibyte chars": "/tmp/" + "é" * 200 + ".wav",
        "path over 4096 bytes": "/tmp" + "/abc" * 1100 + ".wav",
        "control characters": "/tmp/\x01\x1b[31m.wav",
        "right-to-left override": "/tmp/\u202egnp.wav",
        "zero width and combining": "/tmp/\u200b\u0301\ufeff.wav",
        "emoji and astral": "/tmp/\U0001F3B5\U0010FFFD.wav",
        "just a slash": "/",
        "FIFO": str(fifo),
        "folder": str(folder),
        "symlink loop": str(loop),
        "dangling symlink": str(dangling),
        "symlink to /dev/zero": str(to_dev),
        "/dev/zero": "/dev/zero",
        "/dev/stdin": "/dev/stdin",
        "/proc/self/mem": "/proc/self/mem",
        "/proc/self/environ": "/proc/self/environ",
        "/sys/kernel": "/sys/kernel/mm/transparent_hugepage/enabled",
        "dot dot to /proc": str(source.parent) + "/.." * 40 + "/proc/self/status",
        "file under a file": str(source) + "/x.wav",
        "Windows device": "C:\\con",
        "UNC path": "\\\\server\\share\\x.wav",
    }


def test_hostile_source_paths_get_a_named_error_never_internal(client, source, tmp_path):
    for what, path in hostile_source_paths(tmp_path, source).items():
        name, args = ask_vamp(client, source, source_path=path)
        assert name == "error", (what, args)
        assert args[1] in ("bad_argument", "source_missing", "source_unreadable"), (what, args)
        assert "\n" not in args[2]
    assert_answers_hello_fast(client)


HUGE_VALUES = {
    "start_s": [1e308, -1e308, 2.0**63, 1e-320], "length_s": [1e308, -1e308, 1e-320],
    "playrate": [1e308, 1e-320, -1.0], "sample_rate": [2**31 - 1, -2**31], "channels": [2**31 - 1, -1],
    "n_variations": [2**31 - 1, -2**31, 0], "seed": [2**31 - 1, -2**31],
}


def test_huge_and_hostile_values_get_a_named_error_never_internal(client, source, tmp_path):
    cases = [(name, value) for name, values in HUGE_VALUES.items() for value in values]
    cases += [("client", "x" * 60_000), ("item_guid", "\u202e" * 10_000), ("take_guid", "\ud7ff" * 9),
              ("mask", "[" * 50_000), ("mask", "{" * 50_000), ("sampling", "[" * 50_000),
              ("fx", '{"chain": ' * 5000), ("sampling", '{"temperature": 1e999}'),
              ("sampling", '{"sampling_steps": 1e308}'), ("sampling", '{"top_k": 99999999999999999999}'),
              ("mask", '{"periodic_prompt": 1e308}'), ("mask", '{"upper_codebook_mask": -99999999999}'),
              ("fx", '[{"plugin": "Gain", "gain_db": 1e308}]'), ("fx", '{"chain": [], "tail_s": 1e308}'),
              ("fx", '[{"plugin": "Delay", "delay_seconds": 1e300}]'),
              ("output_dir", "/tmp/" + "a" * 300), ("output_dir", "relative/x"),
              ("output_dir", "/proc/self/x"), ("output_dir", "/dev/null"),
              ("output_dir", "/tmp" + "/a" * 2100), ("output_dir", "\x01")]
    for name, value in cases:
        kind, args = ask_vamp(client, source, **{name: value})
        assert kind == "accepted" or args[1] != "internal", (name, str(value)[:40], args)
    for request, args in (("status", ("x" * 60_000,)), ("cancel", ("\u202e" * 1000,)),
                          ("ack", ("x" * 50_000, 2**31 - 1)), ("resume", ("",)),
                          ("pending", ("\U0001F3B5" * 5000,))):
        rid = client.request(request, *args)
        reply = client.wait_for(request_id=rid)
        assert reply.name != "error" or reply.args[1] != "internal", (request, reply.args)
    assert_answers_hello_fast(client)


def test_hostile_open_requests_get_a_named_error(tmp_path, tiny_models, source):
    opened = []
    with InProcessBridge(tmp_path / "data", tiny_models) as b:
        b.server.editor = opened.append
        with OscClient(port=b.port, name="gui-attacker") as c:
            for what, path in hostile_source_paths(tmp_path, source).items():
                rid = c.request("open", "reaper", path, 0.0, 0.0, 1.0, 0, 0, "", "")
                reply = c.wait_for(request_id=rid)
                assert reply.name == "error" and reply.args[1] != "internal", (what, reply.args)
            rid = c.request("open", "reaper", str(source), 0.0, 0.0, 1.0, 0, 0, "", "")
            assert c.wait_for(request_id=rid).name == "opened"
    assert [o.source_path for o in opened] == [str(source)]


# -- 15: a model set whose checkpoint is refused -------------------------------------------------

@pytest.fixture(scope="module")
def refused_models(tiny_models, tmp_path_factory):
    """The tiny set with a coarse.pth that pickles an object torch's safe loader refuses."""
    import argparse

    import torch

    folder = tmp_path_factory.mktemp("refused") / "tiny"
    shutil.copytree(tiny_models, folder)
    torch.save({"state_dict": {}, "metadata": argparse.Namespace(kwargs={})}, folder / "coarse.pth")
    return folder


def wait_for_device(osc: OscClient, timeout_s: float = 60) -> tuple:
    deadline = time.monotonic() + timeout_s
    while True:
        hello = osc.wait_for("hello", osc.request("hello"))
        if hello.args[3] != "loading" or time.monotonic() > deadline:
            return hello.args
        time.sleep(0.1)


def test_a_refused_checkpoint_is_reported_in_hello_status_and_every_job(tmp_path, refused_models,
                                                                        source):
    with InProcessBridge(tmp_path / "data", refused_models) as b, \
            OscClient(port=b.port, name="reaper") as c:
        hello = wait_for_device(c)
        assert hello[3] == "failed", hello
        assert "coarse.pth" in hello[7] and "argparse" in hello[7], hello[7]
        status = c.wait_for("status", c.request("status", ""))
        assert status.args[3:] == ("failed", hello[7])
        for _ in range(2):  # each job says why, not a bare engine_error
            rid = c.request("vamp", *vamp_args(source))
            c.wait_for("accepted", rid)
            error = c.wait_for("error", rid, timeout_s=60)
            assert error.args[1] == "model_load_failed" and "coarse.pth" in error.args[2]
            assert c.wait_for("done", rid, timeout_s=60).args[1:] == (0, 1, "failed")


def test_a_healthy_service_reports_no_load_error(bridge, client):
    hello = wait_for_device(client)
    assert hello[3] == "cpu" and hello[7] == ""
    assert client.wait_for("status", client.request("status", "")).args[3:] == ("cpu", "")


def test_the_companion_shows_why_the_models_failed_to_load(qtbot, tmp_path, refused_models):
    from gui.engine_bridge import EngineBridge
    from gui.main_window import MainWindow
    from gui.settings import Settings

    bridge = EngineBridge(refused_models, "cpu", osc_port=0, store_path=tmp_path / "jobs.db")
    window = MainWindow(bridge, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(window)
    with qtbot.waitSignal(window.notice_shown, timeout=60_000) as shown:
        bridge.start()
    text, level = shown.args
    assert level == "error" and "could not be loaded" in text and "coarse.pth" in text
    assert "failed" in window.engine_label.text()
    bridge.close()


# -- 12: crafted recipes for rerender --------------------------------------------------------------

def crafted_recipes(source: Path) -> list:
    from bridge.pipeline import RECIPE_KIND

    def recipe(**request):
        return {"kind": RECIPE_KIND, "variation": 0, "seed": 5, "mask": "balanced",
                "request": {"source_path": str(source), **request}}
    damaged = [{"kind": RECIPE_KIND}, {"kind": RECIPE_KIND, "variation": "0"}, [1], "text", None,
               {**recipe(), "request": 5}, {**recipe(), "seed": "s"}, {**recipe(), "seed": 2**40},
               {**recipe(), "variation": 1e308}, {**recipe(), "variation": -1}, {**recipe(), "mask": 7},
               {**recipe(), "mask": {"no_such_key": 1}}]
    hostile_fields = [dict(sampling="abc"), dict(sampling=[1, 2]), dict(sampling={"temperature": "hot"}),
                      dict(fx=5), dict(fx={"chain": "x"}), dict(fx="@/dev/zero"), dict(mask="@/dev/zero"),
                      dict(start_s="0"), dict(length_s=[1]), dict(n_variations="2"), dict(channels=1e308),
                      dict(sample_rate=True), dict(bit_depth=[]), dict(per_channel="yes"), dict(unknown=1),
                      dict(source_path="relative.wav"), dict(source_path=5), dict(source_path="/dev/zero"),
                      dict(output_dir=5), dict(item_guid=5),
                      dict(fx=[{"plugin": "vst3", "path": "/tmp/Evil.vst3"}])]
    return damaged + [recipe(**fields) for fields in hostile_fields]


def test_crafted_recipes_get_a_named_error_never_internal(client, source, tmp_path):
    for i, content in enumerate(crafted_recipes(source)):
        path = tmp_path / f"crafted-{i}.json"
        path.write_text(json.dumps(content))
        rid = client.request("rerender", "reaper", str(path), "", -1, "", "", "")
        reply = client.wait_for(request_id=rid, where=lambda r: r.name in ("accepted", "error"))
        if reply.name == "accepted":  # only a recipe whose every field is usable may run
            client.wait_for("done", rid, timeout_s=60)
            continue
        assert reply.args[1] != "internal", (content, reply.args)
    assert_answers_hello_fast(client)


def test_a_plugin_named_in_an_at_file_is_refused_without_quoting_the_file(client, source, tmp_path,
                                                                          evil_bundle, marker):
    chain = tmp_path / "chain.json"
    chain.write_text(vst3(evil_bundle))
    name, args = ask_vamp(client, source, fx=f"@{chain}")
    assert (name, args[1]) == ("error", "plugin_not_allowed")
    assert str(chain) in args[2] and "--plugin-dir" in args[2] and str(evil_bundle) not in args[2]
    assert not marker.exists()



@pytest.mark.parametrize("head", [b"OggS", b"fLaC", b"", b"\x00" * 64, b"<html>", b"PK\x03\x04"])
def test_a_long_file_that_only_starts_like_audio_is_refused_before_the_decoder_scans_it(
        client, tmp_path, head):
    """Decoders hold the interpreter while they scan gigabytes for a frame: such a file is
    refused from its first bytes, at once, and hello stays fast."""
    fake = tmp_path / "long.ogg"
    with open(fake, "wb") as f:
        f.write(head)
        f.truncate(300 * 1024**2)  # sparse zeros after the head
    started = time.perf_counter()
    name, args = ask_vamp(client, fake, source_path=str(fake))
    assert (name, args[1]) == ("error", "source_unreadable") and "audio" in args[2]
    assert time.perf_counter() - started < 0.5
    assert_answers_hello_fast(client)


def test_a_secret_that_cannot_be_made_is_a_clear_refusal_not_a_crash(tmp_path, monkeypatch, capsys):
    from bridge.osc.server import serve
    from bridge.secret import SecretError, ensure_secret

    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "secret").mkdir()  # not a file: cannot be the secret
    with pytest.raises(SecretError, match="not a regular file"):
        ensure_secret(locked / "secret")
    monkeypatch.setenv("VAMPBRIDGE_DATA_DIR", str(locked))
    assert serve(port=0, data_dir=tmp_path) == 2
    assert "secret" in capsys.readouterr().err
