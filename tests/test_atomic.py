"""Specification of bridge.atomic: all-or-nothing writes with normal permissions."""

import os
import stat

import pytest

from bridge.atomic import atomic_file


def umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_file_has_the_permissions_a_plain_file_would(tmp_path):
    target = tmp_path / "recipe.json"
    with atomic_file(target, "w") as f:
        f.write("{}")
    assert target.read_text() == "{}"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask()


def test_failure_inside_the_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "recipe.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recipe.json"]
