"""Output folders: only the request's own folder, never a system folder."""

import os
from pathlib import Path

import pytest

from bridge.jobs.outputs import check_output_dir


@pytest.mark.parametrize("folder", ["/", "/etc", "/etc/vampbridge", "/usr/local/share", "/bin",
                                    "/System/Library", "/tmp/../etc", "/lib64/x", "/home", "/tmp"])
def test_system_and_shared_folders_are_refused(tmp_path, folder):
    with pytest.raises(Exception) as e:
        check_output_dir(folder, tmp_path)
    assert e.value.code == "bad_output_dir"
    assert str(Path(folder).resolve()) in str(e.value)


def test_a_link_into_a_system_folder_is_refused_and_named_both_ways(tmp_path):
    link = tmp_path / "renders"
    link.symlink_to("/etc")
    with pytest.raises(Exception) as e:
        check_output_dir(str(link / "today"), tmp_path)
    assert e.value.code == "bad_output_dir"
    assert f"{link / 'today'} (which is /etc/today)" in str(e.value)
    assert not Path("/etc/today").exists()


def test_home_folder_itself_is_refused(tmp_path):
    with pytest.raises(Exception) as e:
        check_output_dir(str(Path.home()), tmp_path)
    assert e.value.code == "bad_output_dir"


def test_relative_paths_are_refused(tmp_path):
    with pytest.raises(Exception) as e:
        check_output_dir("renders/today", tmp_path)
    assert e.value.code == "bad_output_dir" and "absolute" in str(e.value)


def test_missing_folder_is_created(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output_dir(str(target), tmp_path / "default") == target.resolve()
    assert target.is_dir()


def test_empty_output_dir_means_the_default_render_folder(tmp_path):
    assert check_output_dir("", tmp_path / "renders") == (tmp_path / "renders").resolve()
    assert check_output_dir(None, tmp_path / "renders").is_dir()


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root can write anywhere")
def test_unwritable_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(Exception) as e:
            check_output_dir(str(locked), tmp_path)
        assert e.value.code == "bad_output_dir"
    finally:
        locked.chmod(0o700)
