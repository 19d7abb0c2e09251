"""What each study sweeps: one `Setting` (a label and a mask recipe) per value of its parameter.

Everything a study does not sweep stays at the studies' defaults: periodic prompt 7 (width 1, offset
from the seed), upper_codebook_mask 3, random intensity 1.0; sampling at temperature 1.0 with
typical filtering (the pipeline's defaults). Every setting of a study is made with the same seed.
"""

from dataclasses import dataclass

from ..engine.prompts import PRESETS, MaskRecipe

KINDS = ("density", "patterns", "periodic", "depth", "presets")

# The fixed part of every study's mask: the studies' defaults.
BASE_MASK = {"rand_mask_intensity": 1.0, "periodic_prompt": 7, "periodic_prompt_width": 1,
             "upper_codebook_mask": 3}

DEFAULT_VALUES = {
    "density": [0.1, 0.25, 0.4, 0.55, 0.7, 0.85, 0.95],
    "patterns": ["random", "periodic", "block", "strided"],
    "periodic": [2, 3, 5, 7, 10, 16, 25, 50, 100],
    "depth": [0, 1, 2, 3, 4],
    "presets": list(PRESETS),
}
PATTERNS = ("random", "periodic", "block", "strided")
DEFAULT_PATTERN_DENSITY = 0.8  # fraction of frames each pattern regenerates (below the depth)

PARAMETER = {  # what the x axis of a study's summary plots is
    "density": "rand_mask_intensity (fraction of cells drawn for regeneration)",
    "patterns": "pattern",
    "periodic": "periodic_prompt P (keep every P-th frame)",
    "depth": "upper_codebook_mask (codebooks >= k fully regenerated)",
    "presets": "preset",
}


@dataclass
class Setting:
    label: str  # for people: "density 0.40"
    slug: str  # for folder names: "density-0.40"
    value: object  # the swept value: a number or a name
    mask: dict  # a complete MaskRecipe as JSON

    @property
    def numeric(self) -> bool:
        return isinstance(self.value, (int, float)) and not isinstance(self.value, bool)


def parse_values(kind: str, text: str | None) -> list:
    """`--values` text ("0.1,0.5" or "random,block") -> the study's values; None: the defaults."""
    if kind not in KINDS:
        raise ValueError(f"unknown study {kind!r}; choose one of {', '.join(KINDS)}")
    if text is None or not text.strip():
        return list(DEFAULT_VALUES[kind])
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"--values {text!r} names no values; give a comma-separated list")
    if kind == "density":
        values = [_number(item, kind) for item in items]
        bad = [v for v in values if not 0 < v <= 1]
        if bad:
            raise ValueError(f"density values must be in (0, 1], got {bad}")
    elif kind in ("periodic", "depth"):
        values = [_whole(item, kind) for item in items]
        limit = (1, 100000) if kind == "periodic" else (0, 14)
        bad = [v for v in values if not limit[0] <= v <= limit[1]]
        if bad:
            raise ValueError(f"{kind} values must be whole numbers from {limit[0]} to {limit[1]}, got {bad}")
    else:
        known = PATTERNS if kind == "patterns" else tuple(PRESETS)
        unknown = [v for v in items if v not in known]
        if unknown:
            raise ValueError(f"unknown {kind} {unknown}; choose from {', '.join(known)}")
        values = items
    if len(set(values)) != len(values):
        raise ValueError(f"--values repeats a value: {items}")
    return values


def _number(text, kind):
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{kind} value {text!r} is not a number") from None


def _whole(text, kind):
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{kind} value {text!r} is not a whole number") from None


def pattern_mask(pattern: str, density: float, clip_s: float) -> dict:
    """One pattern regenerating about `density` of the frames, alone (no periodic prompt on top).

    random: each cell with probability `density`; periodic: keep every P-th frame,
    P = round(1 / (1 - density)), offset from the seed; strided: the same P, offset P // 2, no
    randomness; block: regenerate one span of density * clip length, centred in the clip.
    """
    if not 0 < density < 1:
        raise ValueError(f"pattern density must be between 0 and 1 (exclusive), got {density}")
    period = max(2, round(1 / (1 - density)))
    mask = {**BASE_MASK, "periodic_prompt": 0}
    if pattern == "random":
        mask["rand_mask_intensity"] = density
    elif pattern == "periodic":
        mask["periodic_prompt"] = period
    elif pattern == "strided":
        mask["strided"] = period
        mask["strided_offset"] = period // 2
    elif pattern == "block":
        start_s = clip_s * (1 - density) / 2
        mask["blocks_s"] = [[round(start_s, 4), round(start_s + clip_s * density, 4)]]
    else:
        raise ValueError(f"unknown pattern {pattern!r}; choose from {', '.join(PATTERNS)}")
    return mask


def study_settings(kind: str, values=None, *, clip_s: float = 10.0,
                   pattern_density: float = DEFAULT_PATTERN_DENSITY) -> list[Setting]:
    """The settings of study `kind`; `values` defaults to DEFAULT_VALUES[kind]. `clip_s` (the
    clip's length) places the block of the patterns study."""
    values = list(DEFAULT_VALUES[kind]) if values is None else list(values)
    settings = []
    for index, value in enumerate(values):
        if kind == "density":
            mask, label = {**BASE_MASK, "rand_mask_intensity": float(value)}, f"density {value:.2f}"
        elif kind == "patterns":
            mask, label = pattern_mask(value, pattern_density, clip_s), f"{value} ({pattern_density:.0%})"
        elif kind == "periodic":
            mask, label = {**BASE_MASK, "periodic_prompt": int(value)}, f"periodic P={value}"
        elif kind == "depth":
            mask, label = {**BASE_MASK, "upper_codebook_mask": int(value)}, f"depth {value}"
        elif kind == "presets":
            mask, label = {"preset": value}, f"preset {value}"
        else:
            raise ValueError(f"unknown study {kind!r}; choose one of {', '.join(KINDS)}")
        recipe = MaskRecipe.from_json(mask)  # validates, and fills in every field
        name = "".join(c if c.isalnum() or c in ".-" else "-" for c in str(value))
        slug = f"{index + 1:02d}_{kind}-{name}"
        settings.append(Setting(label=label, slug=slug, value=value, mask=recipe.to_json()))
    return settings
