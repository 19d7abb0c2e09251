"""What Reaper plays, from a test double snapshot: which source instant a take sounds at each
timeline instant (docs/reaper.md, "How a take plays"), and the check that a new take made from a
render of a source region plays every instant of the item from the same source instant as the
take it was made from, within one sample."""

from __future__ import annotations

import math

# What a new take copies from the take it was made from (besides the source and the offset).
COPIED = ("D_PLAYRATE", "B_PPITCH", "D_PITCH", "I_PITCHMODE", "D_VOL", "D_PAN", "D_PANLAW")
# The channel mode the render needs for what the original plays: mono of one channel becomes a
# one-channel render played normally.
ONE_CHANNEL_MODES = {2: "mono", 3: "left", 4: "right"}


def source_instant(item: dict, take: dict, t: float) -> float | None:
    """The source second the take plays at timeline second t, or None for silence."""
    pos, length = item["position_s"], item["length_s"]
    if not pos <= t < pos + length:
        return None
    v = take["values"]
    u = v["D_STARTOFFS"] + (t - pos) * v["D_PLAYRATE"]
    source_length = take["source_length_s"]
    if item["values"]["B_LOOPSRC"] and source_length > 0:
        return u % source_length
    if u < 0 or u >= source_length:
        return None
    return u


def instants(item: dict, n: int = 400) -> list[float]:
    """Timeline instants spread over the item, off the exact sample grid of either take."""
    return [item["position_s"] + (k + 0.37) / n * item["length_s"] for k in range(n)]


def assert_plays_like(item: dict, original: dict, new: dict, region_start_s: float, *, loop: bool = False):
    """`new` (whose source is the render of the region starting at region_start_s of the
    original's source) plays every instant of the item from the same source instant."""
    one_sample = 1.0 / original["sample_rate"] + 1e-9
    heard = 0
    for t in instants(item):
        a, b = source_instant(item, original, t), source_instant(item, new, t)
        near_edge = any(abs(x - e) < 2 * one_sample for x in (a, b) if x is not None
                        for e in (0.0, original["source_length_s"], new["source_length_s"]))
        if near_edge:
            continue
        assert (a is None) == (b is None), f"at {t:.6f} s: original plays {a}, new take {b}"
        if a is None:
            continue
        heard += 1
        mapped = region_start_s + b
        if loop:
            gap = (mapped - a) % original["source_length_s"]
            gap = min(gap, original["source_length_s"] - gap)
        else:
            gap = abs(mapped - a)
        assert gap <= one_sample, f"at {t:.6f} s: original plays {a:.9f} s, new take {mapped:.9f} s of the source"
    assert heard > 0, "neither take plays anything"
    for name in COPIED:
        assert new["values"][name] == original["values"][name], (name, new["values"][name], original["values"][name])
    mode = int(original["values"]["I_CHANMODE"])
    if original["channels"] >= 2 and mode in ONE_CHANNEL_MODES:
        assert new["channels"] == 1 and new["values"]["I_CHANMODE"] == 0
    else:
        assert new["channels"] == original["channels"] and new["values"]["I_CHANMODE"] == mode
