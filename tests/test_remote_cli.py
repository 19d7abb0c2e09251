"""The command line of the remote features: refusals before anything starts, and the pip extras
named when an optional dependency is missing."""

import importlib.util

import pytest

from bridge.cli import main
from bridge.remote.serve import parse_host_port


def test_serving_http_beyond_loopback_needs_a_token(capsys):
    assert main(["serve", "--http", "0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    assert "--token is required" in err and err.count("\n") == 1


def test_remote_and_http_together_are_refused(capsys):
    assert main(["serve", "--http", "127.0.0.1:0", "--remote", "http://gpu:9080"]) == 2
    assert "do not go together" in capsys.readouterr().err


@pytest.mark.parametrize("module, argv, extra", [
    ("ray", ["bounce", "x.wav", "-o", "out", "--ray", "auto"], "vampbridge[ray]"),
    ("aiohttp", ["serve", "--http", "127.0.0.1:0"], "vampbridge[remote]"),
])
def test_a_missing_optional_dependency_names_its_extra(monkeypatch, tmp_path, capsys, module, argv, extra):
    (tmp_path / "x.wav").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == module else real(name, *a))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"pip install '{extra}'" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("text, expected", [
    ("0.0.0.0:9080", ("0.0.0.0", 9080)), (":9000", ("127.0.0.1", 9000)),
    ("gpu-box", ("gpu-box", 9080)), ("[::1]:9081", ("::1", 9081)),
])
def test_http_addresses_are_parsed(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["host:port", "host:70000"])
def test_bad_http_addresses_are_refused_with_the_value(text):
    with pytest.raises(ValueError, match=text):
        parse_host_port(text)
