"""Model sets on disk: where they live, which one a run uses, and the bundled default.

A model set is a folder with `codec.pth`, `coarse.pth` and `c2f.pth` (optionally `loras/<name>/`).
Which set a command uses: `--model DIR`, else $VAMPBRIDGE_MODEL, else the installed released set
(`models_dir()/vampnet`), else the bundled default: tiny random weights generated deterministically
on first use, which run everywhere but sound noise-like because they are untrained.
"""

import os
import sys
from pathlib import Path

from .paths import models_dir

MODEL_FILES = ("codec.pth", "coarse.pth", "c2f.pth")
RELEASED_NAME = "vampnet"
BUNDLED_NAME = "bundled-tiny"
BUNDLED_SEED = 0

_warned_bundled = False


class ModelError(ValueError):
    pass


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


def resolve_model_dir(explicit=None, warn=True) -> Path:
    """The model set to use (see the module docstring); warns once when it is the bundled one."""
    global _warned_bundled
    chosen = explicit or os.environ.get("VAMPBRIDGE_MODEL")
    if chosen:
        directory = Path(chosen).expanduser()
        missing = [name for name in MODEL_FILES if not (directory / name).is_file()]
        if missing:
            raise ModelError(f"model folder {directory} lacks {', '.join(missing)}; "
                             "point --model at a folder with codec.pth, coarse.pth and c2f.pth, "
                             "or run `vampbridge models fetch`")
        return directory
    released = models_dir() / RELEASED_NAME
    if is_model_set(released):
        return released
    directory = bundled_dir()
    if warn and not _warned_bundled:
        _warned_bundled = True
        print("note: using the bundled default weights, which are untrained, so the output is noise-like. "
              "Get the real VampNet weights with `vampbridge models fetch` (licence CC BY-NC-SA 4.0).",
              file=sys.stderr)
    return directory


def is_bundled(directory) -> bool:
    return Path(directory).resolve() == (models_dir() / BUNDLED_NAME).resolve()
