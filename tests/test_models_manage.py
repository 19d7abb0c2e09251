"""`vampbridge models list | install | verify` on tiny random sets, in-process."""

import json
import shutil

import pytest
import torch

from bridge.cli import main
from bridge.engine.checkpoint import save_checkpoint
from bridge.engine.random_weights import model_configs
from bridge.engine.transformer import VampNetTransformer


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty per-user data folder, with no --model or models folder from the environment."""
    monkeypatch.setenv("VAMPBRIDGE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VAMPBRIDGE_MODELS_DIR", raising=False)
    monkeypatch.delenv("VAMPBRIDGE_MODEL", raising=False)
    return tmp_path / "data"


@pytest.fixture
def set_copy(tiny_models, tmp_path):
    return shutil.copytree(tiny_models, tmp_path / "my set")


def test_install_copies_a_folder_verifies_it_and_writes_a_manifest(data_dir, set_copy, capsys):
    assert main(["models", "install", str(set_copy)]) == 0
    installed = data_dir / "models" / "vampnet"
    for name in ("codec.pth", "coarse.pth", "c2f.pth"):
        assert (installed / name).read_bytes() == (set_copy / name).read_bytes()
    manifest = json.loads((installed / "manifest.json").read_text())
    assert manifest["source"] == {"path": str(set_copy)}
    assert manifest["files"]["coarse.pth"]["kind"] == "transformer"
    assert manifest["files"]["codec.pth"]["n_codebooks"] == 14
    assert "installed vampnet" in capsys.readouterr().out
    assert main(["models", "verify"]) == 0  # commands now use it, and it checks out against its manifest


def test_install_takes_three_files_under_any_names_in_any_order(data_dir, set_copy):
    renamed = {"codec.pth": "a.pth", "coarse.pth": "b.pth", "c2f.pth": "c.pth"}
    for old, new in renamed.items():
        (set_copy / old).rename(set_copy / new)
    assert main(["models", "install", str(set_copy / "c.pth"), str(set_copy / "a.pth"), str(set_copy / "b.pth"),
                 "--name", "mine"]) == 0
    installed = data_dir / "models" / "mine"
    for old, new in renamed.items():
        assert (installed / old).read_bytes() == (set_copy / new).read_bytes()


def test_install_refuses_to_replace_without_force_and_keeps_fine_tunes_with_it(data_dir, set_copy, capsys):
    assert main(["models", "install", str(set_copy)]) == 0
    lora = data_dir / "models" / "vampnet" / "loras" / "jazz"
    lora.mkdir(parents=True)
    shutil.copy(set_copy / "coarse.pth", lora / "coarse.pth")
    capsys.readouterr()
    assert main(["models", "install", str(set_copy)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["models", "install", str(set_copy), "--force"]) == 0
    assert (lora / "coarse.pth").is_file()
    assert [p.name for p in (data_dir / "models").iterdir() if p.name.startswith(".")] == []


def test_install_of_a_damaged_set_leaves_nothing_behind(data_dir, set_copy, capsys):
    data = (set_copy / "c2f.pth").read_bytes()
    (set_copy / "c2f.pth").write_bytes(data[: len(data) // 3])
    assert main(["models", "install", str(set_copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "c2f.pth" in err and "truncated or damaged" in err
    assert list((data_dir / "models").iterdir()) == []


def test_install_of_a_folder_without_the_files_names_what_is_missing(data_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["models", "install", str(tmp_path / "empty")]) == 2
    assert "lacks codec.pth, coarse.pth, c2f.pth" in capsys.readouterr().err


def verify_output(capsys, *args):
    code = main(["models", "verify", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_prints_a_table_and_succeeds_on_a_good_set(set_copy, capsys):
    code, out, err = verify_output(capsys, str(set_copy))
    assert code == 0 and err == ""
    assert "codec.pth" in out and "14 (4 cond)" in out and out.count(" ok") == 3


def test_verify_accepts_a_fine_tune_saved_as_a_flat_dict_of_lora_tensors(set_copy, capsys):
    base = torch.load(set_copy / "coarse.pth", weights_only=True)["state_dict"]
    layer = "transformer.layers.0.self_attn.w_qs"
    out_dim, in_dim = base[f"{layer}.weight"].shape
    (set_copy / "loras" / "flat").mkdir(parents=True)
    torch.save({f"{layer}.lora_A": torch.randn(8, in_dim), f"{layer}.lora_B": torch.zeros(out_dim, 8)},
               set_copy / "loras" / "flat" / "coarse.pth")
    code, out, err = verify_output(capsys, str(set_copy))
    assert code == 0 and err == "" and "loras/flat/coarse.pth" in out
    torch.save({f"{layer}.lora_A": torch.randn(8, in_dim + 1), f"{layer}.lora_B": torch.zeros(out_dim, 8)},
               set_copy / "loras" / "flat" / "coarse.pth")
    code, out, err = verify_output(capsys, str(set_copy))
    assert code == 1 and "error: loras/flat/coarse.pth: does not fit the base set's coarse.pth" in err


def test_verify_gives_one_line_per_damaged_file(set_copy, capsys):
    (set_copy / "codec.pth").write_bytes(b"")
    data = (set_copy / "coarse.pth").read_bytes()
    (set_copy / "coarse.pth").write_bytes(data[:1000])
    code, out, err = verify_output(capsys, str(set_copy))
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("error: codec.pth: ") and "empty" in lines[0]
    assert lines[1].startswith("error: coarse.pth: ") and "truncated or damaged" in lines[1]
    assert "FAILED" in out


def test_verify_refuses_pickled_code_without_running_it(set_copy, capsys, tmp_path):
    marker = tmp_path / "ran"
    torch.save({"state_dict": {}, "metadata": {"kwargs": {}}, "payload": _Exploit(str(marker))}, set_copy / "c2f.pth")
    code, out, err = verify_output(capsys, str(set_copy))
    assert code == 1 and "c2f.pth" in err and "refusing to load" in err
    assert not marker.exists()


class _Exploit:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_verify_names_the_wrong_kind_and_swapped_transformers(set_copy, capsys):
    shutil.copy(set_copy / "coarse.pth", set_copy / "codec.pth")
    code, _, err = verify_output(capsys, str(set_copy))
    assert code == 1 and "codec.pth" in err and "must be a codec" in err
    shutil.copy(set_copy / "c2f.pth", set_copy / "coarse.pth")
    code, _, err = verify_output(capsys, str(set_copy))
    assert "are coarse.pth and c2f.pth swapped?" in err


def test_verify_names_codebook_counts_that_do_not_fit(set_copy, capsys):
    _, _, c2f_config = model_configs("tiny")
    c2f_config.n_conditioning_codebooks = 3  # the coarse model generates 4
    save_checkpoint(VampNetTransformer(c2f_config), set_copy / "c2f.pth")
    code, _, err = verify_output(capsys, str(set_copy))
    assert code == 1
    assert err.startswith("error: c2f.pth: ") and "conditions on 3 codebooks" in err


def test_verify_compares_sizes_and_sha256_with_the_manifest(data_dir, set_copy, tiny_models, capsys):
    assert main(["models", "install", str(set_copy)]) == 0
    installed = data_dir / "models" / "vampnet"
    # a different but valid c2f of the same size: only the manifest can tell
    _, _, c2f_config = model_configs("tiny")
    save_checkpoint(VampNetTransformer(c2f_config), installed / "c2f.pth")
    capsys.readouterr()
    code, _, err = verify_output(capsys)
    assert code == 1 and "c2f.pth" in err and "differs from the manifest" in err


def test_list_shows_sets_files_fine_tunes_and_the_one_commands_use(data_dir, set_copy, capsys):
    assert main(["models", "install", str(set_copy)]) == 0
    assert main(["models", "install", str(set_copy), "--name", "other"]) == 0
    (data_dir / "models" / "vampnet" / "loras" / "jazz").mkdir(parents=True)
    shutil.copy(set_copy / "coarse.pth", data_dir / "models" / "vampnet" / "loras" / "jazz" / "coarse.pth")
    capsys.readouterr()
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "vampnet  [" in out and "other  [" in out
    assert "fine-tunes (loras/): jazz" in out
    assert "c2f.pth" in out and "transformer" in out and "MB" in out
    used = [line for line in out.splitlines() if "<- used by commands" in line]
    assert len(used) == 1 and used[0].startswith("vampnet")
    assert main(["models", "list", "--model", str(data_dir / "models" / "other")]) == 0
    used = [line for line in capsys.readouterr().out.splitlines() if "<- used by commands" in line]
    assert used[0].startswith("other")


def test_list_with_nothing_installed_names_the_bundled_default(data_dir, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "none yet" in out and "bundled default (untrained)" in out and "vampbridge models fetch" in out
