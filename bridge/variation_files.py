"""A variation's files in an output folder: its WAV, its JSON recipe and its saved tokens.

Their names (`variation_stem`), finding an earlier render of the same variation (only files VampBridge created count), publishing
a new one under the first free names (`<stem>.wav|.json`, then `<stem>-2...`), saving and loading
tokens (`tokens/<token fingerprint>[-n].npz`), and the refusals of `rerender -o`. Everything goes
through `bridge.output_folder.OutputFolder`, so nothing here ever replaces a file it did not create.
"""

import json
import os
import re
from pathlib import Path

import numpy as np
import torch

from .output_folder import CreatedFiles, OutputFolder, candidate_names
from .request import RequestError


def variation_stem(source_path: str, fingerprint: str, seed: int) -> str:
    """`<source stem>_s<seed>_<fingerprint>`, the name of a variation's .wav and .json (with
    `-2`, `-3`, ... after it when someone else's file has that name): the seed names it."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source_path).stem)[:60] or "clip"
    return f"{stem}_s{seed}_{fingerprint}"


def exists_error(path: Path) -> RequestError:
    return RequestError("output", f"{path} exists; pass --overwrite to replace it, or choose another name",
                        "output_exists")


def _same_file(a, b) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b) or os.path.samefile(a, b)
    except OSError:
        return False


def refuse_replacing(folder: OutputFolder, names, *, protected: dict, overwrite: bool):
    """Refuse output `names` in `folder` that exist (unless `overwrite`) or that are, by any
    path or link, one of the `protected` files (never, even with `overwrite`)."""
    for name in names:
        path = folder.path / name
        for what, other in protected.items():
            if _same_file(path, other):
                raise RequestError("output", f"refusing to write {path}: it is {what}; choose another name",
                                   "bad_output_path")
        if not overwrite and folder.lstat(name) is not None:
            raise exists_error(path)


def json_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=2).encode()


def earlier_render(folder: OutputFolder, stem: str, fingerprint: str):
    """(wav name, json name) of this variation rendered earlier by VampBridge in `folder`, or None.
    Only files VampBridge created there count, so a user's file that has the name is never taken
    for a render (nor replaced: the new render takes the next free name)."""
    for wav, recipe in candidate_names(stem, (".wav", ".json")):
        if folder.lstat(wav) is None and folder.lstat(recipe) is None:
            return None
        if folder.created_here(wav) and folder.created_here(recipe):
            try:
                if json.loads(folder.read_bytes(recipe)).get("fingerprint") == fingerprint:
                    return wav, recipe
            except (OSError, ValueError, AttributeError):
                pass
    return None


def publish_variation(folder: OutputFolder, stem: str, wav_temporary: str, recipe_for) -> tuple[str, str]:
    """Publish a rendered WAV (`wav_temporary` in `folder`) and its recipe (`recipe_for(wav path)`)
    under the first pair of names `stem[-n].wav|.json` that are both free, or hold what is left
    of an earlier render of the same variation (VampBridge's own files); nothing else is replaced."""
    try:
        for wav, recipe in candidate_names(stem, (".wav", ".json")):
            if not all(folder.lstat(name) is None or folder.created_here(name) for name in (wav, recipe)):
                continue
            folder.remove_own(wav)
            folder.remove_own(recipe)
            document = json_bytes(recipe_for(folder.path / wav))
            recipe_temporary = folder.write_temporary(recipe, lambda f: f.write(document))
            try:
                if not folder.publish(wav_temporary, wav, keep_temporary=True):
                    continue
                if folder.publish(recipe_temporary, recipe):
                    return wav, recipe
                folder.remove_own(wav)  # the recipe's name was taken meanwhile: try the next pair
                if folder.lstat(wav_temporary) is None:
                    raise RequestError("output", f"{folder.path / recipe} appeared while it was being "
                                       "written; run the job again", "output_exists")
            finally:
                folder.discard(recipe_temporary)
        raise RequestError("output", f"no free name for {stem}.wav in {folder.path}", "output_exists")
    finally:
        folder.discard(wav_temporary)


def _token_names(token_fingerprint: str):
    return (names[0] for names in candidate_names(token_fingerprint, (".npz",), limit=20))


def save_tokens(folder: OutputFolder, token_fingerprint: str, codes, masked, original) -> str:
    """Keep a variation's tokens (rows, 14, T) in `tokens/` so re-renders with other effects skip
    generation, with the source's own codes beside them so editors can show what changed.
    Returns the file's name there (kept when VampBridge saved these tokens before)."""
    def write(f):
        np.savez_compressed(f, codes=codes.cpu().numpy().astype(np.int16),
                            masked=masked.cpu().numpy().astype(np.int16),
                            original=original.cpu().numpy().astype(np.int16))

    return publish_tokens(folder, token_fingerprint, write)


def publish_tokens(folder: OutputFolder, token_fingerprint: str, write) -> str:
    """The tokens file of `token_fingerprint` in `folder/tokens`, filled by `write(binary file)`
    (a `save_tokens` array file, or one made elsewhere: the relay and the Ray bounce) under the
    first free name; returns the name. Not written when VampBridge saved these tokens before."""
    with folder.subfolder("tokens") as tokens:
        temporary = None
        try:
            for name in _token_names(token_fingerprint):
                if tokens.created_here(name):
                    return name  # the fingerprint determines the tokens: the same ones
                if tokens.lstat(name) is not None:
                    continue
                temporary = temporary or tokens.write_temporary(name, write)
                if tokens.publish(temporary, name):
                    temporary = None
                    return name
            raise RequestError("output", f"no free name for tokens {token_fingerprint} in {tokens.path}",
                               "output_exists")
        finally:
            if temporary is not None:
                tokens.discard(temporary)


def load_tokens(folder: Path, token_fingerprint: str, shape, n_rows: int):
    """Saved tokens of `token_fingerprint` in `folder/tokens`, only from a file VampBridge saved."""
    record = CreatedFiles()
    directory = Path(folder).resolve() / "tokens"
    for name in _token_names(token_fingerprint):
        try:
            fd = os.open(directory / name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            return None
        except OSError:
            continue
        with os.fdopen(fd, "rb") as f:
            if not record.knows(directory / name, os.fstat(f.fileno())):
                continue
            try:
                with np.load(f) as data:
                    codes, masked = data["codes"], data["masked"]
            except (OSError, ValueError, KeyError):
                continue
        if codes.shape == (n_rows,) + tuple(shape) and masked.shape == codes.shape:
            return torch.from_numpy(codes.astype(np.int64)), torch.from_numpy(masked.astype(np.int64))
    return None
