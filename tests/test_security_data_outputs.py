"""Issue 10, outputs: nothing of the user's is replaced, and outputs only land where the rule allows.

Items 2 (folder swapped for a link mid-job), 4 (a refused folder is never created), 5 (one folder
rule for every request kind), 8 (files that happen to have an output's name are never replaced)
and 9 (`rerender -o` never writes over the source, the recipe, or an existing file without
`--overwrite`). Real tiny models; the attacks are done from the test, as a local process would.
"""

import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_wav
from pedalboard.io import AudioFile

import bridge.pipeline as pipeline_module
from bridge.cli import main
from bridge.jobs.outputs import check_output_dir as service_check
from bridge.jobs.requests import RerenderRequest
from bridge.pipeline import Pipeline, Progress
from bridge.request import RequestError, VampRequest
from bridge.request import check_output_dir as request_check

FAST = {"sampling_steps": 2, "c2f_sampling_steps": 1}
REFUSED_TARGET = Path("/dev/shm")  # a system tree (under /dev) that is writable, so a leak would show


def read(path):
    with AudioFile(str(path)) as f:
        return f.read(f.frames)


def request(source, out, n=1, seed=5):
    return VampRequest(source_path=str(source), output_dir=str(out), n_variations=n, seed=seed,
                       sampling=dict(FAST), mask="balanced")


@pytest.fixture(scope="module")
def pipeline(tiny_models):
    return Pipeline(model_dir=tiny_models, device="cpu")


@pytest.fixture
def source(tmp_path):
    return write_wav(tmp_path / f"song-{uuid.uuid4().hex[:8]}.wav", tone(0.6, seed=3), 44100)


def everything_in(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- item 8: never replace a file VampBridge did not create -----------------------------------

def test_user_files_with_the_output_names_are_never_replaced_nor_taken_for_renders(pipeline, source, tmp_path):
    clean = pipeline.run(request(source, tmp_path / "clean"))[0]
    clean_recipe = json.loads(Path(clean.recipe_path).read_text())
    tokens_name = clean_recipe["tokens"]
    # The user's own files, in the source's folder, with exactly the names a run there would use:
    # a WAV, a recipe whose fingerprint matches (so it looks like a finished render) and tokens
    # with the right shape but other codes (so they look like saved tokens).
    folder = source.parent
    planted_wav = folder / Path(clean.audio_path).name
    write_wav(planted_wav, tone(0.6, freq_hz=880.0, seed=9), 44100)
    planted_recipe = folder / Path(clean.recipe_path).name
    planted_recipe.write_text(json.dumps({**clean_recipe, "note": "mine"}))
    planted_tokens = folder / tokens_name
    planted_tokens.parent.mkdir()
    with np.load(Path(clean.recipe_path).parent / tokens_name) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["codes"] = (arrays["codes"] + 1) % 1024
    np.savez_compressed(planted_tokens, **arrays)
    before = everything_in(folder)

    result = pipeline.run(request(source, folder))[0]

    after = everything_in(folder)
    assert {p: after[p] for p in before} == before, "a user's file was modified"
    assert not result.reused
    assert result.audio_path not in {str(planted_wav)} and result.recipe_path != str(planted_recipe)
    assert Path(result.audio_path).stem == planted_wav.stem + "-2"
    recipe = json.loads(Path(result.recipe_path).read_text())
    assert recipe["output"]["path"] == result.audio_path
    assert (folder / recipe["tokens"]).is_file() and folder / recipe["tokens"] != planted_tokens
    # generated again (the planted tokens were not used), so it is the clean render bit for bit
    assert np.array_equal(read(result.audio_path), read(clean.audio_path))
    # and a second run reuses VampBridge's own render, not the user's
    again = pipeline.run(request(source, folder))[0]
    assert again.reused and again.audio_path == result.audio_path


def test_a_render_replaced_by_the_user_is_not_reused_and_stays_theirs(pipeline, source, tmp_path):
    out = tmp_path / "out"
    first = pipeline.run(request(source, out))[0]
    theirs = Path(first.audio_path)
    theirs.unlink()
    write_wav(theirs, tone(0.6, freq_hz=660.0), 44100)  # their own take under that name
    mine = theirs.read_bytes()
    second = pipeline.run(request(source, out))[0]
    assert not second.reused and second.audio_path != first.audio_path
    assert theirs.read_bytes() == mine


def test_a_link_planted_at_an_output_name_is_not_followed(pipeline, source, tmp_path):
    out = tmp_path / "out"
    first = pipeline.run(request(source, out, seed=21))[0]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for path in (Path(first.audio_path), Path(first.recipe_path)):
        path.unlink()
        path.symlink_to(victim)
    second = pipeline.run(request(source, out, seed=21))[0]
    assert victim.read_text() == "precious"
    assert Path(first.audio_path).is_symlink() and not Path(second.audio_path).is_symlink()


# --- item 9: rerender -o ------------------------------------------------------------------------

@pytest.fixture
def recipe(pipeline, source, tmp_path):
    return Path(pipeline.run(request(source, tmp_path / "renders", seed=11))[0].recipe_path)


def rerender(tiny_models, recipe, output, *extra):
    return main(["rerender", str(recipe), "-o", str(output), "--model", str(tiny_models), *extra])


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_rerender_never_writes_over_the_recipes_source(tiny_models, recipe, source, capsys, overwrite):
    original = source.read_bytes()
    assert rerender(tiny_models, recipe, source, *overwrite) == 2
    assert source.read_bytes() == original
    assert "source media" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_rerender_never_writes_over_the_source_through_a_link(tiny_models, recipe, source, tmp_path, kind):
    original = source.read_bytes()
    link = tmp_path / "take.wav"
    link.symlink_to(source) if kind == "symlink" else os.link(source, link)
    assert rerender(tiny_models, recipe, link, "--overwrite") == 2
    assert source.read_bytes() == original


def test_rerender_never_writes_over_the_recipe_itself(tiny_models, recipe):
    text = recipe.read_text()
    assert rerender(tiny_models, recipe, recipe.with_suffix(".wav"), "--overwrite") == 2
    assert recipe.read_text() == text


@pytest.mark.parametrize("existing", ["user.wav", "user.json"])
def test_rerender_over_an_existing_file_needs_overwrite(tiny_models, recipe, tmp_path, capsys, existing):
    target = tmp_path / "user.wav"
    (tmp_path / existing).write_bytes(b"the user's file")
    assert rerender(tiny_models, recipe, target) == 2
    assert (tmp_path / existing).read_bytes() == b"the user's file"
    assert "--overwrite" in capsys.readouterr().err
    assert rerender(tiny_models, recipe, target, "--overwrite") == 0
    assert np.array_equal(read(target), read(recipe.with_suffix(".wav")))  # bit-exact re-render
    assert json.loads(target.with_suffix(".json").read_text())["output"]["path"] == str(target)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch left


# --- item 2: the folder swapped for a link while the job runs -----------------------------------

def _swap_for_link(folder: Path):
    folder.rename(folder.with_name(folder.name + "-moved"))
    folder.symlink_to(REFUSED_TARGET)


@pytest.mark.skipif(not REFUSED_TARGET.is_dir() or not os.access(REFUSED_TARGET, os.W_OK),
                    reason="needs a writable /dev/shm to show a leak")
@pytest.mark.parametrize("moment", ["before the tokens", "before the wav", "before the recipe"])
def test_output_folder_swapped_for_a_link_mid_job_sends_nothing_there(pipeline, source, tmp_path, monkeypatch,
                                                                       moment):
    out = tmp_path / f"out-{uuid.uuid4().hex[:6]}"
    leak_before = set(REFUSED_TARGET.rglob("*"))
    calls = {"render": 0, "recipe": 0}

    def on_progress(p: Progress):
        if moment == "before the tokens" and p.stage == "rendering" and p.variation == 1 and not out.is_symlink():
            _swap_for_link(out)

    render = pipeline_module.render_variation

    def render_then_swap(*args, **kwargs):
        calls["render"] += 1
        if moment == "before the wav" and calls["render"] == 2:
            _swap_for_link(out)
        return render(*args, **kwargs)

    document = Pipeline._recipe_document

    def document_then_swap(self, *args):
        calls["recipe"] += 1
        if moment == "before the recipe" and calls["recipe"] == 2:
            _swap_for_link(out)
        return document(self, *args)

    monkeypatch.setattr(pipeline_module, "render_variation", render_then_swap)
    monkeypatch.setattr(Pipeline, "_recipe_document", document_then_swap)
    try:
        with pytest.raises(RequestError) as e:
            pipeline.run(request(source, out, n=2, seed=31), on_progress=on_progress)
        assert e.value.code == "bad_output_dir" and "replaced" in str(e.value)
        leaked = set(REFUSED_TARGET.rglob("*")) - leak_before
        assert not leaked, f"outputs were written into {REFUSED_TARGET}: {sorted(leaked)}"
        moved = out.with_name(out.name + "-moved")
        assert len(list(moved.glob("*.wav"))) == 1 and len(list(moved.glob("*.json"))) == 1  # variation 1 kept
    finally:
        for path in sorted(set(REFUSED_TARGET.rglob("*")) - leak_before, reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


@pytest.mark.skipif(not REFUSED_TARGET.is_dir() or not os.access(REFUSED_TARGET, os.W_OK),
                    reason="needs a writable /dev/shm to show a leak")
def test_a_parent_of_the_output_folder_swapped_for_a_link_mid_job_sends_nothing_there(pipeline, source, tmp_path,
                                                                                       monkeypatch):
    parent = tmp_path / "project"
    out = parent / "renders"
    decoy = REFUSED_TARGET / f"vampbridge-test-{uuid.uuid4().hex[:8]}"
    (decoy / "renders" / "tokens").mkdir(parents=True)  # so that writes through the link would succeed
    render = pipeline_module.render_variation
    calls = []

    def render_then_swap(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            parent.rename(tmp_path / "project-moved")
            parent.symlink_to(decoy)
        return render(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "render_variation", render_then_swap)
    try:
        with pytest.raises(RequestError) as e:
            pipeline.run(request(source, out, n=2, seed=41))
        assert e.value.code == "bad_output_dir"
        assert [p for p in decoy.rglob("*") if p.is_file()] == []
    finally:
        shutil.rmtree(decoy)


def test_a_tokens_link_planted_in_the_output_folder_is_not_followed(pipeline, source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "tokens").symlink_to(elsewhere)
    with pytest.raises(RequestError) as e:
        pipeline.run(request(source, out))
    assert e.value.code == "bad_output_dir" and "tokens" in str(e.value)
    assert list(elsewhere.iterdir()) == []


# --- item 4: a refused folder is never created ---------------------------------------------------

@pytest.fixture
def refused_missing_folder():
    """A missing folder in a system tree (/lib32 on this machine), removed again if created."""
    root = Path("/lib32")
    existed = root.exists()
    target = root / f"vampbridge-test-{uuid.uuid4().hex[:8]}"
    yield target
    if target.exists():
        shutil.rmtree(target)
    if not existed and root.exists():
        root.rmdir()


@pytest.mark.parametrize("check", [service_check, lambda path, default: request_check(path)],
                         ids=["service", "request"])
def test_a_refused_folder_and_its_missing_parents_are_not_created(refused_missing_folder, tmp_path, check):
    with pytest.raises(RequestError) as e:
        check(str(refused_missing_folder / "deeper" / "renders"), tmp_path)
    assert e.value.code == "bad_output_dir"
    assert not refused_missing_folder.exists()


def test_a_link_into_a_system_folder_does_not_create_anything_there(refused_missing_folder, tmp_path):
    link = tmp_path / "renders"
    link.symlink_to(refused_missing_folder.parent)
    with pytest.raises(RequestError) as e:
        service_check(str(link / refused_missing_folder.name / "x"), tmp_path)
    assert e.value.code == "bad_output_dir" and "which is /lib32/" in str(e.value)
    assert not refused_missing_folder.exists()


def test_cli_vamp_into_a_refused_folder_creates_nothing(tiny_models, source, refused_missing_folder, capsys):
    assert main(["vamp", str(source), "-o", str(refused_missing_folder / "x"), "--model", str(tiny_models)]) == 2
    assert not refused_missing_folder.exists()
    assert "system or shared folder" in capsys.readouterr().err


# --- item 5: one rule for every request kind ---------------------------------------------------

@pytest.mark.parametrize("folder", ["/tmp", "/home", "/", "/var", "/etc/x", "/usr/local/x", "/dev/shm/x"])
def test_the_cli_and_the_service_refuse_the_same_folders(folder, tmp_path):
    verdicts = []
    for check in (lambda: service_check(folder, tmp_path), lambda: request_check(folder)):
        try:
            check()
            verdicts.append("accepted")
        except RequestError as e:
            verdicts.append(e.code)
    assert verdicts == ["bad_output_dir", "bad_output_dir"]


@pytest.fixture
def leaks_into_tmp(source):
    """What a run of `source` left in /tmp itself (its outputs, a tokens folder); removed after."""
    tokens_existed = Path("/tmp/tokens").exists()

    def leaked():
        found = [p for p in Path("/tmp").iterdir() if p.name.startswith(source.stem + "_s")]
        return found + ([Path("/tmp/tokens")] if not tokens_existed and Path("/tmp/tokens").exists() else [])

    yield leaked
    for path in leaked():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def test_vamp_into_tmp_itself_is_refused_by_the_pipeline(pipeline, source, leaks_into_tmp):
    with pytest.raises(RequestError) as e:
        pipeline.run(request(source, "/tmp"))
    assert e.value.code == "bad_output_dir"
    assert leaks_into_tmp() == []


def test_vamp_into_the_home_folder_itself_is_refused(pipeline, source):
    with pytest.raises(RequestError) as e:
        pipeline.run(request(source, str(Path.home())))
    assert e.value.code == "bad_output_dir"


@pytest.fixture
def recipe_in_tmp(recipe):
    """The recipe copied to /tmp itself, as a user might drop it there."""
    target = Path("/tmp") / f"vampbridge-test-{uuid.uuid4().hex[:8]}.json"
    shutil.copy(recipe, target)
    yield target
    target.unlink()


def test_a_rerender_beside_a_recipe_in_tmp_is_refused_by_the_service(recipe_in_tmp, leaks_into_tmp):
    with pytest.raises(RequestError) as e:
        RerenderRequest(recipe_path=str(recipe_in_tmp), output_dir=None).validate()
    assert e.value.code == "bad_output_dir" and "/tmp" in str(e.value)


def test_a_rerender_beside_a_recipe_in_tmp_is_refused_by_the_pipeline(pipeline, recipe_in_tmp, leaks_into_tmp):
    with pytest.raises(RequestError) as e:
        pipeline.rerender(recipe_in_tmp)
    assert e.value.code == "bad_output_dir"
    assert leaks_into_tmp() == []


# --- where directory descriptors are missing (Windows), paths are checked instead --------------

@pytest.fixture
def without_directory_descriptors(monkeypatch):
    import bridge.output_folder

    monkeypatch.setattr(bridge.output_folder, "_FD_BASED", False)


def test_without_directory_descriptors_user_files_are_still_never_replaced(pipeline, source, tmp_path,
                                                                           without_directory_descriptors):
    first = pipeline.run(request(source, tmp_path / "out", seed=51))[0]
    for path in (Path(first.audio_path), Path(first.recipe_path)):
        path.unlink()
        path.write_bytes(b"the user's")
    second = pipeline.run(request(source, tmp_path / "out", seed=51))[0]
    assert Path(first.audio_path).read_bytes() == Path(first.recipe_path).read_bytes() == b"the user's"
    assert Path(second.audio_path).stem.endswith("-2") and read(second.audio_path).shape[1] == int(0.6 * 44100)


@pytest.mark.skipif(not REFUSED_TARGET.is_dir() or not os.access(REFUSED_TARGET, os.W_OK),
                    reason="needs a writable /dev/shm to show a leak")
def test_without_directory_descriptors_a_swapped_folder_still_gets_nothing(pipeline, source, tmp_path, monkeypatch,
                                                                           without_directory_descriptors):
    out = tmp_path / "out"
    leak_before = set(REFUSED_TARGET.rglob("*"))
    render = pipeline_module.render_variation
    calls = []

    def render_then_swap(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            _swap_for_link(out)
        return render(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "render_variation", render_then_swap)
    try:
        with pytest.raises(RequestError) as e:
            pipeline.run(request(source, out, n=2, seed=61))
        assert e.value.code == "bad_output_dir"
        assert set(REFUSED_TARGET.rglob("*")) == leak_before
    finally:
        for path in sorted(set(REFUSED_TARGET.rglob("*")) - leak_before, reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to act as another user")
def test_a_folder_below_an_execute_only_parent_works_for_its_owner():
    """Folders are walked with O_PATH: a parent the user may pass through but not list (0711) is
    fine, as it is for open(). Run as `nobody` in a forked child."""
    import tempfile

    from bridge.output_folder import OutputFolder

    parent = Path(tempfile.mkdtemp(prefix="vampbridge-test-", dir="/tmp"))  # pytest's own folders are 0700
    (parent / "mine").mkdir()
    parent.chmod(0o711)
    os.chown(parent / "mine", 65534, 65534)
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only an exit status
        try:
            os.setgid(65534)
            os.setuid(65534)
            with OutputFolder.open(parent / "mine" / "renders") as folder:
                temporary = folder.write_temporary("take.wav", lambda f: f.write(b"audio"))
                os._exit(0 if folder.publish(temporary, "take.wav") else 2)
        except BaseException as e:
            os.write(2, f"child failed: {e!r}\n".encode())
            os._exit(1)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert (parent / "mine" / "renders" / "take.wav").read_bytes() == b"audio"
    finally:
        shutil.rmtree(parent)


# --- studies and traces write fixed names: only into their own folders -------------------------

@pytest.mark.parametrize("command", ["study", "trace"])
def test_a_report_never_replaces_files_in_a_folder_it_did_not_make(tiny_models, source, tmp_path, capsys, command):
    folder = tmp_path / "mixing notes"
    folder.mkdir()
    (folder / "report.html").write_text("my notes")
    (folder / "original.wav").write_bytes(b"my take")
    argv = ["study", "density", str(source), "-o", str(folder), "--values", "0.5"] if command == "study" else \
        ["trace", str(source), "-o", str(folder), "-n", "1"]
    assert main([*argv, "--model", str(tiny_models), "--steps", "2", "--c2f-steps", "1"]) == 2
    assert (folder / "report.html").read_text() == "my notes" and (folder / "original.wav").read_bytes() == b"my take"
    assert "new or empty folder" in capsys.readouterr().err
    # a new folder works, and running again into it too (a report refreshes its own folder)
    fresh = tmp_path / "report"
    argv[argv.index(str(folder))] = str(fresh)
    for _ in range(2):
        assert main([*argv, "--model", str(tiny_models), "--steps", "2", "--c2f-steps", "1"]) == 0
    assert (fresh / "report.html").is_file()
