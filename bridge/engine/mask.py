"""`vampnet.mask`: the reference's mask functions, with its names, arguments and return types.

Code written for VampNet (`from vampnet.mask import linear_random, periodic_mask, ...` or
`vampnet.mask.inpaint(z, ...)`) runs on this module unchanged. Masks are (B, C, T) long tensors
shaped like the codes `x` they are made for, on the same device: 1 = regenerate, 0 = keep.

Each function is a door into `prompts.py`, where the recipes live (and `MaskRecipe`, the form the
pipeline uses). Randomness comes from torch's global generator, as in the reference, unless a
`generator=` is passed (an addition, for repeatable masks).
"""

import torch

from . import prompts


def _check_codes(x):
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a (batch, n_codebooks, seq) tensor, got {getattr(x, 'shape', type(x).__name__)}")


def _per_item(value, batch: int) -> list:
    """A scalar or one value per batch item (a tensor or list), as a list of Python numbers."""
    if isinstance(value, torch.Tensor):
        values = value.flatten().tolist()
        values = values * batch if len(values) == 1 else values
    elif isinstance(value, (list, tuple)):
        values = list(value)
    else:
        values = [value] * batch
    if len(values) != batch:
        raise ValueError(f"got {len(values)} per-item values for a batch of {batch}")
    return values


def _like(mask, x):
    return mask.to(device=x.device, dtype=torch.long)


def full_mask(x):
    """Regenerate everything."""
    _check_codes(x)
    return torch.ones_like(x, dtype=torch.long)


def empty_mask(x):
    """Keep everything."""
    _check_codes(x)
    return torch.zeros_like(x, dtype=torch.long)


def apply_mask(x, mask, mask_token: int):
    """(codes with `mask_token` where mask is 1, the mask as long)."""
    _check_codes(x)
    if mask.shape != x.shape:
        raise ValueError(f"mask must be the shape of x, got {tuple(mask.shape)} and {tuple(x.shape)}")
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("mask must be binary: 1 = regenerate, 0 = keep")
    mask = mask.long()
    return x.masked_fill(mask.bool(), mask_token), mask


def linear_random(x, r, generator=None):
    """Each cell regenerated with probability `r` (a scalar, or one per batch item)."""
    _check_codes(x)
    ratios = _per_item(r, x.shape[0])
    rows = [prompts.random_mask((1,) + tuple(x.shape[1:]), float(p), generator) for p in ratios]
    return _like(torch.cat(rows), x)


def random(x, r, generator=None):
    """The training schedule's random mask: each cell regenerated with probability cos(pi/2 * r)."""
    _check_codes(x)
    ratios = _per_item(r, x.shape[0])
    gamma = (torch.tensor(ratios, dtype=torch.float32) * torch.pi / 2).cos().clamp(1e-10, 1.0)
    return linear_random(x, gamma, generator)


def inpaint(x, n_prefix, n_suffix):
    """Keep the first `n_prefix` and the last `n_suffix` frames (scalars or one per item)."""
    _check_codes(x)
    B = x.shape[0]
    rows = [prompts.inpaint_mask((1,) + tuple(x.shape[1:]), int(p), int(s))
            for p, s in zip(_per_item(n_prefix, B), _per_item(n_suffix, B))]
    return _like(torch.cat(rows), x)


def periodic_mask(x, period, width: int = 1, random_roll: bool = False, generator=None):
    """Keep every `period`-th frame, `width` frames wide (an even width keeps width + 1, as in the
    reference); `random_roll` shifts the pattern by a random offset in [0, period). Period 0
    keeps nothing; `period` may be one value per batch item (the roll uses the first)."""
    _check_codes(x)
    periods = [int(p) for p in _per_item(period, x.shape[0])]
    offset = 0
    if random_roll and periods[0] > 0:
        offset = int(torch.randint(0, periods[0], (1,), generator=generator))
    rows = [prompts.periodic_mask((1,) + tuple(x.shape[1:]), p, int(width), offset=0) for p in periods]
    return _like(torch.roll(torch.cat(rows), offset, dims=-1), x)


def codebook_unmask(mask, n_conditioning_codebooks):
    """Keep the lowest `n_conditioning_codebooks` codebooks entirely (None: no change)."""
    if n_conditioning_codebooks is None:
        return mask
    return prompts.keep_lowest_codebooks(mask, int(n_conditioning_codebooks))


def codebook_mask(mask, val1: int, val2=None):
    """Regenerate every codebook >= `val1` entirely. `val2` is accepted and ignored, as in the
    reference (its use there is commented out)."""
    return prompts.codebook_mask(mask, int(val1))


def mask_and(mask1, mask2):
    if mask1.shape != mask2.shape:
        raise ValueError(f"masks must be the same shape, got {tuple(mask1.shape)} and {tuple(mask2.shape)}")
    return prompts.mask_and(mask1, mask2)


def mask_or(mask1, mask2):
    if mask1.shape != mask2.shape:
        raise ValueError(f"masks must be the same shape, got {tuple(mask1.shape)} and {tuple(mask2.shape)}")
    for name, m in (("mask1", mask1), ("mask2", mask2)):
        if m.numel() and (int(m.max()) > 1 or int(m.min()) < 0):
            raise ValueError(f"{name} must be binary: 1 = regenerate, 0 = keep")
    return (mask1 + mask2).clamp(0, 1)


def dropout(mask, p: float, generator=None):
    """Regenerate int(T * p) randomly drawn whole frames (with replacement, the same for the batch)."""
    if mask.numel() and (int(mask.max()) > 1 or int(mask.min()) < 0):
        raise ValueError("mask must be binary: 1 = regenerate, 0 = keep")
    return prompts.dropout_mask(mask.long(), float(p), generator)


def time_stretch_mask(x, stretch_factor: int):
    """The mask of a time stretch: keep every `stretch_factor`-th frame of `x`'s length."""
    if stretch_factor < 1:
        raise ValueError(f"stretch_factor={stretch_factor!r} is invalid: must be >= 1")
    return periodic_mask(x, stretch_factor, width=1)


def onset_mask(sig, z, interface, width: int = 1):
    """Keep `width` frames on each side of every onset of `sig` (an AudioSignal) on `z`'s grid.

    Onsets come from the engine's spectral-flux detector on the preprocessed signal (the
    reference uses librosa's); as there, a signal without onsets gives a mask that keeps nothing."""
    audio = interface.preprocess(sig).audio_data[0, 0].detach().cpu().numpy()
    onsets = prompts.detect_onsets(audio, interface.codec.hop_length)
    return _like(prompts.frames_near_events(tuple(z.shape), onsets, int(width), int(width)), z)


__all__ = ["full_mask", "empty_mask", "apply_mask", "random", "linear_random", "inpaint", "periodic_mask",
           "codebook_unmask", "codebook_mask", "mask_and", "mask_or", "dropout", "time_stretch_mask",
           "onset_mask"]
