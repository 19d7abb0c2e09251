"""Saving and loading the editor's settings as JSON, in the command line's formats.

A saved file is a subset of a `VampRequest` (what `vampbridge vamp --mask/--sampling/--fx` take):

    {"mask": <MaskRecipe.to_json(): a recipe, or a painted mask as grid_rle>,
     "sampling": {"sampling_steps": 36, ...}, "fx": "glue", "n_variations": 3, "seed": 1234}

Loading also accepts a bare mask recipe (a `--mask @file.json`) and a variation's recipe written
by the pipeline (`"kind": "vampbridge.variation"`), so "make more like this one" is one click.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from bridge.engine.prompts import MaskRecipe

VARIATION_KIND = "vampbridge.variation"  # bridge.pipeline.RECIPE_KIND, without importing torch paths here
MASK_FIELDS = {f.name for f in fields(MaskRecipe)}


@dataclass
class EditorSettings:
    mask: MaskRecipe | None = None
    sampling: dict | None = None
    fx: object = None
    n_variations: int | None = None
    seed: int | None = None

    def to_json(self) -> dict:
        data = {}
        if self.mask is not None:
            data["mask"] = self.mask.to_json()
        for name in ("sampling", "fx", "n_variations", "seed"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return data


def save_settings(path, settings: EditorSettings):
    Path(path).write_text(json.dumps(settings.to_json(), indent=2) + "\n")


def load_settings(path) -> EditorSettings:
    """Raises ValueError with a message for a person when the file is not one of the formats."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise ValueError(f"{path.name} is not valid JSON ({e}); choose a recipe saved by VampBridge") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} holds {type(data).__name__}, not a recipe object")
    if data.get("kind") == VARIATION_KIND:  # a variation's recipe: same mask, sampling, fx, seed
        return EditorSettings(mask=MaskRecipe.from_json(data["mask"]), sampling=data.get("sampling"),
                              fx=_variation_fx(data), seed=data.get("seed"))
    if set(data) <= MASK_FIELDS:  # a bare mask recipe, as `--mask @file.json` takes
        return EditorSettings(mask=MaskRecipe.from_json(data))
    unknown = sorted(set(data) - {"mask", "sampling", "fx", "n_variations", "seed"})
    if unknown:
        raise ValueError(f"{path.name} has fields {unknown} that are neither editor settings nor a mask recipe")
    mask = MaskRecipe.from_json(data["mask"]) if "mask" in data else None
    return EditorSettings(mask=mask, sampling=data.get("sampling"), fx=data.get("fx"),
                          n_variations=data.get("n_variations"), seed=data.get("seed"))


def _variation_fx(recipe: dict):
    """The effects as the musician chose them: the preset name the request named, "none" for an
    empty chain, else the chain itself (then shown as a loaded custom chain)."""
    asked = recipe.get("request", {}).get("fx")
    if isinstance(asked, str) and asked.strip() and asked.strip()[0] not in "[{@":
        return asked.strip()
    chain = recipe.get("fx")
    if isinstance(chain, dict) and not chain.get("chain"):
        return "none"
    return chain
