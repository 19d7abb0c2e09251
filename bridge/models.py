"""Model sets on disk: where they live, which one a run uses, and how they get there.

A model set is a folder with `codec.pth`, `coarse.pth` and `c2f.pth`, optionally fine-tunes in
`loras/<name>/coarse.pth` and `loras/<name>/c2f.pth`, and a `manifest.json` written when the set
was fetched or installed (file sizes, sha256, kinds, codebook counts, where it came from).
Sets live in `models_dir()` (a per-user data folder, $VAMPBRIDGE_MODELS_DIR overrides it), one
sub-folder each: `vampnet` is the released set, `bundled-tiny` the bundled default.

Which set a command uses: `--model DIR`, else $VAMPBRIDGE_MODEL, else the installed released set
(`models_dir()/vampnet`), else the bundled default: tiny random weights generated deterministically
on first use, which run everywhere but sound noise-like because they are untrained.

The `vampbridge models` sub-commands end here: `cli_list`, `cli_fetch`, `cli_install`, `cli_verify`.
Fetching uses `huggingface_hub.hf_hub_download` (its cache, resumable downloads, progress bars);
every set is verified in a temporary folder beside its destination and only then renamed into place.
"""

import datetime
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .paths import models_dir

MODEL_FILES = ("codec.pth", "coarse.pth", "c2f.pth")
LORA_FILES = ("coarse.pth", "c2f.pth")  # a fine-tune replaces (parts of) the transformers only
EXPECTED_KIND = {"codec.pth": "codec", "coarse.pth": "transformer", "c2f.pth": "transformer"}
RELEASED_NAME = "vampnet"
BUNDLED_NAME = "bundled-tiny"
BUNDLED_SEED = 0
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1

DEFAULT_REPO = "hugggof/vampnet"
DEFAULT_ENDPOINT = "https://huggingface.co"
ZENODO_URL = "https://zenodo.org/records/8136629"
LICENCE_NOTE = ("licence: the VampNet weights are published by their authors under CC BY-NC-SA 4.0: "
                "non-commercial use only, credit the authors, share adaptations under the same licence.")

EXIT_PROBLEMS = 1  # `verify` found a problem

_warned_bundled = False


class ModelError(ValueError):
    pass


# --- which set -----------------------------------------------------------------------------------


def is_model_set(directory) -> bool:
    directory = Path(directory)
    return all((directory / name).is_file() for name in MODEL_FILES)


def bundled_dir() -> Path:
    """The bundled default set, generated on first use (identical on every machine: fixed seed)."""
    from .engine.random_weights import make_random

    directory = models_dir() / BUNDLED_NAME
    if not is_model_set(directory):
        make_random(directory, size="tiny", seed=BUNDLED_SEED)
    return directory


def choose_model_dir(explicit=None) -> tuple[Path, str]:
    """(folder, why) of the set a command would use, without creating or checking anything."""
    if explicit:
        return Path(explicit).expanduser(), "--model"
    if os.environ.get("VAMPBRIDGE_MODEL"):
        return Path(os.environ["VAMPBRIDGE_MODEL"]).expanduser(), "$VAMPBRIDGE_MODEL"
    released = models_dir() / RELEASED_NAME
    if is_model_set(released):
        return released, "installed released set"
    return models_dir() / BUNDLED_NAME, "bundled default (untrained)"


def resolve_model_dir(explicit=None, warn=True) -> Path:
    """The model set to use (see the module docstring); warns once when it is the bundled one."""
    global _warned_bundled
    directory, why = choose_model_dir(explicit)
    if why in ("--model", "$VAMPBRIDGE_MODEL"):
        missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
        if missing:
            raise ModelError(f"model folder {directory} (from {why}) lacks {', '.join(missing)}; "
                             "point it at a folder with codec.pth, coarse.pth and c2f.pth, "
                             "or run `vampbridge models fetch`")
        return directory
    if why.startswith("installed"):
        return directory
    directory = bundled_dir()
    if warn and not _warned_bundled:
        _warned_bundled = True
        print("note: using the bundled default weights, which are untrained, so the output is noise-like. "
              "Get the real VampNet weights with `vampbridge models fetch` (licence CC BY-NC-SA 4.0).",
              file=sys.stderr)
    return directory


def is_bundled(directory) -> bool:
    return Path(directory).resolve() == (models_dir() / BUNDLED_NAME).resolve()


# --- reading files -------------------------------------------------------------------------------


@dataclass
class FileCheck:
    """One file of a set as found on disk; `problem` is empty when it is fine."""

    name: str  # relative to the set folder: "coarse.pth", "loras/jazz/c2f.pth"
    size: int | None = None
    sha256: str | None = None
    kind: str | None = None  # codec, transformer, unknown; None when unreadable
    n_codebooks: int | None = None
    n_conditioning_codebooks: int | None = None
    untrained: bool = False  # random weights written by `make_random` (the bundled default, tests)
    problem: str = ""

    @property
    def codebooks(self) -> str:
        if self.n_codebooks is None:
            return "?"
        if self.n_conditioning_codebooks:
            return f"{self.n_codebooks} ({self.n_conditioning_codebooks} cond)"
        return str(self.n_codebooks)

    def manifest_entry(self) -> dict:
        return {"size": self.size, "sha256": self.sha256, "kind": self.kind, "n_codebooks": self.n_codebooks,
                "n_conditioning_codebooks": self.n_conditioning_codebooks, "untrained": self.untrained}


def _one_line(error, path=None) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if path is not None:
        text = text.replace(f"{path}: ", "").replace(str(path), Path(path).name)
    return text


def _codebook_counts(kind: str, kwargs: dict) -> tuple[int | None, int | None]:
    from .engine.codec import CodecConfig
    from .engine.transformer import TransformerConfig

    if kind == "codec":
        return int(kwargs.get("n_codebooks", CodecConfig.n_codebooks)), None
    if kind == "transformer":
        return (int(kwargs.get("n_codebooks", TransformerConfig.n_codebooks)),
                int(kwargs.get("n_conditioning_codebooks", TransformerConfig.n_conditioning_codebooks)))
    return None, None


def peek_file(path, name=None, *, fine_tune: bool = False) -> FileCheck:
    """Size, kind and codebook counts of a checkpoint, reading as little as possible (memory-mapped,
    weights_only); `problem` says why a file is unreadable. Does not hash the file. A `fine_tune`
    file may also be a flat dict of tensors, whose codebook counts are then unknown (None)."""
    import torch

    from .engine.checkpoint import CheckpointError, checkpoint_kind, read_checkpoint_file

    path = Path(path)
    check = FileCheck(name or path.name)
    if not path.is_file():
        check.problem = "missing"
        return check
    check.size = path.stat().st_size
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if not (isinstance(data, dict) and isinstance(data.get("state_dict"), dict)
                and isinstance(data.get("metadata"), dict) and isinstance(data["metadata"].get("kwargs"), dict)):
            raise ValueError("not a VampNet checkpoint")
    except Exception:
        try:  # the careful reader says precisely what is wrong
            data = read_checkpoint_file(path, flat_ok=fine_tune)
        except CheckpointError as e:
            check.problem = _one_line(e, path)
            return check
    check.kind = checkpoint_kind(data["state_dict"])
    if data["metadata"]["kwargs"]:
        check.n_codebooks, check.n_conditioning_codebooks = _codebook_counts(check.kind, data["metadata"]["kwargs"])
    note = data["metadata"].get("vampbridge")
    check.untrained = bool(isinstance(note, dict) and note.get("random"))
    return check


def read_manifest(directory) -> dict | None:
    """The folder's manifest.json, None when there is none; ModelError when it is unreadable."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{path} is not readable JSON ({_one_line(e)}); delete it or install the set again") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{path} has no \"files\" table; delete it or install the set again")
    return manifest


def _write_manifest(directory: Path, checks: list[FileCheck], source: dict):
    manifest = {
        "format": MANIFEST_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": source,
        "licence": "CC BY-NC-SA 4.0 (non-commercial)" if source.get("repo") else None,
        "files": {c.name: c.manifest_entry() for c in checks},
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST_NAME}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, directory / MANIFEST_NAME)


# --- verifying -----------------------------------------------------------------------------------


def lora_names(directory) -> list[str]:
    loras = Path(directory) / "loras"
    if not loras.is_dir():
        return []
    return sorted(p.name for p in loras.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and any((p / f).is_file() for f in LORA_FILES))


def _compare_with_manifest(check: FileCheck, manifest: dict | None, path: Path):
    if manifest is None or check.problem:
        return
    entry = manifest["files"].get(check.name)
    if not isinstance(entry, dict):
        return
    if entry.get("size") is not None and entry["size"] != check.size:
        check.problem = (f"size {check.size} bytes differs from the manifest's {entry['size']}: "
                         "the file changed or is incomplete; fetch or install it again")
    elif entry.get("sha256") and entry["sha256"] != check.sha256:
        check.problem = (f"sha256 {check.sha256[:12]}... differs from the manifest's {entry['sha256'][:12]}...: "
                         "the file changed or is damaged; fetch or install it again")


def verify_set(directory, include_loras: bool = True) -> list[FileCheck]:
    """Check every file of a set: loads with weights_only, right kind, codebook counts that fit
    together, sizes and sha256 as in the manifest (when there is one). One FileCheck per file."""
    from .audio import sha256_file
    from .engine.checkpoint import CheckpointError, check_compatible, load_codec, load_transformer

    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"model folder not found: {directory}; see `vampbridge models list`")
    checks, loaded = [], {}
    try:
        manifest = read_manifest(directory)
    except ModelError as e:
        manifest = None
        checks.append(FileCheck(MANIFEST_NAME, problem=str(e)))
    for name in MODEL_FILES:
        path = directory / name
        check = peek_file(path, name)
        checks.append(check)
        if check.problem:
            continue
        check.sha256 = sha256_file(path)
        if check.kind != EXPECTED_KIND[name]:
            check.problem = f"holds a {check.kind} checkpoint, but {name} must be a {EXPECTED_KIND[name]}"
            continue
        try:
            loaded[name] = load_codec(path) if name == "codec.pth" else load_transformer(path)
        except CheckpointError as e:
            check.problem = _one_line(e, path)
            continue
        _compare_with_manifest(check, manifest, path)
    by_name = {c.name: c for c in checks}
    coarse = by_name["coarse.pth"]
    if not coarse.problem and coarse.n_conditioning_codebooks:
        coarse.problem = (f"holds a coarse-to-fine model ({coarse.n_conditioning_codebooks} conditioning "
                          "codebooks): are coarse.pth and c2f.pth swapped?")
    elif len(loaded) == len(MODEL_FILES):
        try:
            check_compatible(loaded["codec.pth"], loaded["coarse.pth"], loaded["c2f.pth"])
        except CheckpointError as e:
            blamed = "coarse.pth" if str(e).startswith("the coarse model") else "c2f.pth"
            by_name[blamed].problem = _one_line(e)
    loaded.clear()  # free the models before the fine-tunes load
    if include_loras:
        for lora in lora_names(directory):
            checks += verify_lora(directory / "loras" / lora, directory, prefix=f"loras/{lora}/")
    return checks


def verify_lora(lora_dir, base_dir, prefix="") -> list[FileCheck]:
    """A fine-tune's files loaded over the base set's transformers (as a run would load them)."""
    from .audio import sha256_file
    from .engine.checkpoint import CheckpointError, load_transformer

    lora_dir, base_dir = Path(lora_dir), Path(base_dir)
    checks = []
    try:
        manifest = read_manifest(lora_dir)
    except ModelError as e:
        manifest = None
        checks.append(FileCheck(prefix + MANIFEST_NAME, problem=str(e)))
    for name in LORA_FILES:
        path = lora_dir / name
        if not path.exists():
            continue
        check = peek_file(path, prefix + name, fine_tune=True)
        checks.append(check)
        if check.problem:
            continue
        check.sha256 = sha256_file(path)
        try:
            load_transformer(base_dir / name, lora_path=path)
        except CheckpointError as e:
            check.problem = f"does not fit the base set's {name}: {_one_line(e, path)}"
            continue
        if manifest is not None:
            entry = manifest["files"].get(name)
            if isinstance(entry, dict) and entry.get("sha256") not in (None, check.sha256):
                check.problem = "sha256 differs from the manifest: the file changed or is damaged; fetch it again"
    if not checks:
        checks.append(FileCheck(prefix + "coarse.pth", problem="the fine-tune folder holds no coarse.pth or c2f.pth"))
    return checks


def _human_size(n_bytes) -> str:
    if n_bytes is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000


def format_checks(checks: list[FileCheck]) -> str:
    width = max([len("file")] + [len(c.name) for c in checks])
    lines = [f"{'file':<{width}}  {'kind':<11}  {'codebooks':<11}  {'size':>9}  {'sha256':<12}  status"]
    for c in checks:
        status = f"FAILED: {c.problem}" if c.problem else "ok"
        lines.append(f"{c.name:<{width}}  {c.kind or '-':<11}  {c.codebooks:<11}  {_human_size(c.size):>9}  "
                     f"{(c.sha256 or '-')[:12]:<12}  {status}")
    return "\n".join(lines)


def _problems_text(checks) -> str:
    return "; ".join(f"{c.name}: {c.problem}" for c in checks if c.problem)


# --- installing ----------------------------------------------------------------------------------


def _check_set_name(name: str, what: str = "model set name"):
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name or ""):
        raise ModelError(f"{what} {name!r} must be letters, digits, '.', '_' or '-' (no slashes), "
                         "starting with a letter or digit")


def _place_file(source: Path, destination: Path, link: bool):
    """Hard-link (fetched files: no second copy of a gigabyte) or copy `source` to `destination`."""
    source = source.resolve()  # a Hugging Face snapshot entry is a relative symlink to its blob
    if link:
        try:
            os.link(source, destination)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copyfile(source, destination)
    with open(destination, "rb") as f:
        os.fsync(f.fileno())


def _staging_dir(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))


def _swap_into_place(staging: Path, target: Path, keep=("loras",)):
    """Replace `target` by the complete `staging` folder with renames, carrying over the `keep`
    sub-folders of an older set there (its fine-tunes). Readers see the old set or the new one."""
    if not target.exists():
        os.replace(staging, target)
        return
    moved = []
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    try:
        for sub in keep:
            if (target / sub).exists() and not (staging / sub).exists():
                os.replace(target / sub, staging / sub)
                moved.append(sub)
        os.replace(target, old / target.name)
        os.replace(staging, target)
    except BaseException:
        if (old / target.name).exists() and not target.exists():
            os.replace(old / target.name, target)
        for sub in moved:
            if (staging / sub).exists():
                os.replace(staging / sub, target / sub)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _install_staged(files: dict, target: Path, source: dict, *, base_dir=None, link=False,
                    loras: dict | None = None) -> list[FileCheck]:
    """Put `files` ({name in set: path}) into a staging folder beside `target`, verify them there
    (a fine-tune against `base_dir`), write the manifest and rename the folder into place."""
    staging = _staging_dir(target)
    try:
        for name, path in files.items():
            _place_file(Path(path), staging / name, link)
        for lora, lora_files in (loras or {}).items():
            (staging / "loras" / lora).mkdir(parents=True)
            for name, path in lora_files.items():
                _place_file(Path(path), staging / "loras" / lora / name, link)
        if base_dir is None:
            checks = verify_set(staging, include_loras=False)
        else:
            checks = verify_lora(staging, base_dir)
        if any(c.problem for c in checks):
            raise ModelError(f"not installed, the files have problems: {_problems_text(checks)}")
        _write_manifest(staging, checks, source)
        for lora in (loras or {}):
            lora_checks = verify_lora(staging / "loras" / lora, staging)
            if any(c.problem for c in lora_checks):
                raise ModelError(f"not installed, fine-tune {lora!r} has problems: {_problems_text(lora_checks)}")
            _write_manifest(staging / "loras" / lora, lora_checks, {**source, "fine_tune": lora})
        _swap_into_place(staging, target, keep=("loras",) if base_dir is None else ())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return checks


def _identify_files(paths: list[Path]) -> dict:
    """Three checkpoint files in any order and under any names -> {codec.pth, coarse.pth, c2f.pth}."""
    found = {}
    for path in paths:
        check = peek_file(path)
        if check.problem:
            raise ModelError(f"{path}: {check.problem}")
        if check.kind == "codec":
            name = "codec.pth"
        elif check.kind == "transformer":
            name = "c2f.pth" if check.n_conditioning_codebooks else "coarse.pth"
        else:
            raise ModelError(f"{path} is neither a codec nor a transformer checkpoint")
        if name in found:
            raise ModelError(f"both {found[name]} and {path} look like {name}; give one codec, one coarse "
                             "and one coarse-to-fine checkpoint")
        found[name] = path
    return found


def install(sources, name: str = RELEASED_NAME, force: bool = False) -> tuple[Path, list[FileCheck]]:
    """Copy a set (a folder, or its three files) into models_dir()/<name>, verified, atomically."""
    _check_set_name(name)
    if name == BUNDLED_NAME:
        raise ModelError(f"{BUNDLED_NAME!r} is the bundled default's folder; install under another --name")
    paths = [Path(s).expanduser().resolve() for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    for path in paths:
        if not path.exists():
            raise ModelError(f"not found: {path}")
    loras = {}
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
        if missing:
            raise ModelError(f"{folder} lacks {', '.join(missing)}; a model set folder holds codec.pth, "
                             "coarse.pth and c2f.pth (give the three files instead if they are named otherwise)")
        files = {f: folder / f for f in MODEL_FILES}
        loras = {lora: {f: folder / "loras" / lora / f for f in LORA_FILES if (folder / "loras" / lora / f).is_file()}
                 for lora in lora_names(folder)}
    elif len(paths) == len(MODEL_FILES) and all(p.is_file() for p in paths):
        files = _identify_files(paths)
    else:
        raise ModelError("give a model set folder, or its three files (codec, coarse and coarse-to-fine checkpoints)")
    target = models_dir() / name
    if any(p == target.resolve() or target.resolve() in p.parents for p in paths):
        raise ModelError(f"{paths[0]} is already the installed set {name!r}; nothing to do")
    if target.exists() and not force:
        raise ModelError(f"{target} already holds a model set; pass --force to replace it "
                         "(its fine-tunes in loras/ are kept), or choose another --name")
    checks = _install_staged(files, target, {"path": str(paths[0] if len(paths) == 1 else paths[0].parent)},
                             loras=loras)
    return target, checks


# --- fetching ------------------------------------------------------------------------------------


def _hub_settings() -> dict:
    """Endpoint, cache and offline switch read now (huggingface_hub reads its own at import)."""
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "cache_dir": os.environ.get("HF_HUB_CACHE") or None,
            "local_files_only": offline}


def _by_hand_advice(repo: str) -> str:
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return (f"to install the weights by hand, download codec.pth, coarse.pth and c2f.pth from "
            f"{endpoint}/{repo} (or {ZENODO_URL}) into a folder and run `vampbridge models install FOLDER`")


def _download(repo: str, filename: str, revision: str) -> Path:
    """One file through the Hugging Face cache (resumable, with its progress bar)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                       RevisionNotFoundError)

    settings = _hub_settings()
    try:
        return Path(hf_hub_download(repo, filename, revision=revision, **settings))
    except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: first
        why = "offline mode is on (HF_HUB_OFFLINE) and it is not in the Hugging Face cache" \
            if settings["local_files_only"] else "no connection to the Hub and it is not in the Hugging Face cache"
        raise ModelError(f"cannot download {filename} from {repo}: {why}; {_by_hand_advice(repo)}") from None
    except RepositoryNotFoundError:
        raise ModelError(f"the Hugging Face repository {repo!r} was not found (or is private); "
                         f"check --repo. {_by_hand_advice(DEFAULT_REPO)}") from None
    except RevisionNotFoundError:
        raise ModelError(f"revision {revision!r} not found in {repo}; check --revision") from None
    except EntryNotFoundError:
        raise ModelError(f"{repo} has no file {filename!r} at revision {revision!r}"
                         + ("; check the fine-tune name (see the repository's loras/ folder)"
                            if filename.startswith("loras/") else "")) from None
    except Exception as e:  # httpx and hub errors of many kinds: name them, keep one line
        raise ModelError(f"cannot download {filename} from {repo} ({type(e).__name__}: {_one_line(e)}); "
                         f"run the command again to resume, or {_by_hand_advice(repo)}") from None


def _snapshot_commit(path: Path) -> str | None:
    """The commit a file in the Hugging Face cache belongs to (.../snapshots/<commit>/<file>)."""
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else None


def fetch(name: str = RELEASED_NAME, repo: str = DEFAULT_REPO, revision: str = "main",
          out=print) -> tuple[Path, list[FileCheck]]:
    """Download the released set (name "vampnet") or a fine-tune (loras/<name>/) and install it."""
    base = models_dir() / RELEASED_NAME
    if name == RELEASED_NAME:
        remote = {f: f for f in MODEL_FILES}
        target = base
    else:
        _check_set_name(name, "fine-tune name")
        remote = {f: f"loras/{name}/{f}" for f in LORA_FILES}
        target = base / "loras" / name
        if not is_model_set(base):
            out(f"the fine-tune {name!r} runs on the released set, which is not installed: fetching it first")
            fetch(RELEASED_NAME, repo=repo, revision=revision, out=out)
    out(LICENCE_NOTE)
    out(f"fetching {', '.join(remote.values())} from {repo} ({revision}) into {target}")
    local = {f: _download(repo, path, revision) for f, path in remote.items()}
    commits = sorted({c for c in map(_snapshot_commit, local.values()) if c})
    source = {"repo": repo, "revision": revision, "commit": commits[0] if len(commits) == 1 else commits or None,
              "files": remote}
    checks = _install_staged(local, target, source, link=True, base_dir=None if name == RELEASED_NAME else base)
    return target, checks


# --- listing -------------------------------------------------------------------------------------


def _set_folders() -> list[Path]:
    root = models_dir()
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (any(p.glob("*.pth")) or (p / MANIFEST_NAME).exists()))


def describe_set(directory: Path) -> list[str]:
    """Lines about one set: what it is, its files (kinds, codebooks, sizes), its fine-tunes."""
    directory = Path(directory)
    try:
        manifest = read_manifest(directory)
    except ModelError as e:
        manifest, note = None, f"  manifest: {e}"
    else:
        note = None
    if is_bundled(directory):
        what = f"bundled untrained default (random tiny weights, seed {BUNDLED_SEED}): noise-like output"
    elif manifest and manifest.get("source", {}).get("repo"):
        src = manifest["source"]
        commit = src.get("commit")
        what = f"fetched from {src['repo']} ({src.get('revision')}" + (f", commit {str(commit)[:10]})" if isinstance(commit, str) else ")")
    elif manifest and manifest.get("source", {}).get("path"):
        what = f"installed from {manifest['source']['path']}"
    else:
        what = "no manifest (not fetched or installed by vampbridge)"
    lines = [f"{directory.name}  [{directory}]", f"  {what}"] + ([note] if note else [])
    names = list(MODEL_FILES) + sorted(p.name for p in directory.glob("*.pth") if p.name not in MODEL_FILES)
    for file in names:
        entry = (manifest or {}).get("files", {}).get(file) if manifest else None
        path = directory / file
        if isinstance(entry, dict) and path.is_file() and entry.get("size") == path.stat().st_size:
            check = FileCheck(file, entry.get("size"), entry.get("sha256"), entry.get("kind"), entry.get("n_codebooks"),
                              entry.get("n_conditioning_codebooks"), bool(entry.get("untrained")))
        else:
            check = peek_file(path, file)
        extra = ("" if file in MODEL_FILES else "  (not used by vampbridge)") + ("  untrained" if check.untrained else "")
        state = f"  {check.problem.upper() if check.problem == 'missing' else 'PROBLEM: ' + check.problem}" \
            if check.problem else ""
        lines.append(f"    {file:<12} {check.kind or '-':<11} {check.codebooks:<11} {_human_size(check.size):>9}"
                     f"{extra}{state}")
    loras = lora_names(directory)
    if loras:
        lines.append(f"  fine-tunes (loras/): {', '.join(loras)}")
    return lines


def cli_list(args) -> int:
    chosen, why = choose_model_dir(getattr(args, "model", None))
    root = models_dir()
    folders = _set_folders()
    print(f"model sets in {root}" + ("" if folders else ": none yet (`vampbridge models fetch` gets the released set)"))
    for folder in folders:
        print()
        marker = "  <- used by commands" if folder.resolve() == chosen.resolve() else ""
        lines = describe_set(folder)
        print(lines[0] + marker)
        print("\n".join(lines[1:]))
    if chosen.resolve().parent != root.resolve() and chosen.is_dir():
        print()
        lines = describe_set(chosen)
        print(lines[0] + "  <- used by commands")
        print("\n".join(lines[1:]))
    print(f"\ncommands use: {chosen} ({why})")
    if why.startswith("bundled"):
        print("  untrained weights" + ("" if is_model_set(chosen) else ", generated on first use")
              + "; get the real ones with `vampbridge models fetch`")
    return 0


# --- the other sub-commands ------------------------------------------------------------------------


def cli_fetch(args) -> int:
    target, checks = fetch(args.name, repo=args.repo, revision=getattr(args, "revision", "main"))
    print(format_checks(checks))
    print(f"installed {args.name} into {target} (manifest: {target / MANIFEST_NAME})")
    return 0


def cli_install(args) -> int:
    name = args.name or RELEASED_NAME
    target, checks = install(args.src, name=name, force=getattr(args, "force", False))
    print(format_checks(checks))
    print(f"installed {name} into {target}")
    if name != RELEASED_NAME:
        print(f"use it with --model {target} (or set VAMPBRIDGE_MODEL)")
    return 0


def cli_verify(args) -> int:
    if args.dir:
        directory = Path(args.dir).expanduser()
    else:
        directory = resolve_model_dir(getattr(args, "model", None), warn=False)
    checks = verify_set(directory)
    has_manifest = (directory / MANIFEST_NAME).is_file()
    print(f"{directory}" + ("" if has_manifest else "  (no manifest: sizes and sha256 not compared)"))
    print(format_checks(checks))
    problems = [c for c in checks if c.problem]
    for c in problems:
        print(f"error: {c.name}: {c.problem}", file=sys.stderr)
    return EXIT_PROBLEMS if problems else 0
