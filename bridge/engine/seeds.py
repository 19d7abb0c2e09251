"""Seeds for the sampler's per-item generators: one per (variation, stage, chunk).

A variation's randomness then does not depend on what else is in its batch or how its chunks are
grouped, and the process-global RNG is never re-seeded. Only where no seed is given is one drawn
from torch's global generator (`seed_from_global_rng`), so that code which seeds it (as VampNet
notebooks do with `torch.manual_seed` or `audiotools.util.seed`) repeats. `Interface.vamp` and the model's own
`generate(seed=...)` use the same derivation, so a hand-written walk through the models with
the same seeds gives the tokens `vamp` gives.
"""

import hashlib

import torch


def derive_seed(seed: int, stage: str, chunk: int) -> int:
    """A 63-bit seed for one (variation, stage, chunk)."""
    digest = hashlib.blake2b(f"{seed}/{stage}/{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def chunk_generator(seed: int, stage: str, chunk: int) -> torch.Generator:
    """A CPU generator on every device: the sampler draws up front and moves the draws, so a seed
    gives the same numbers everywhere (and MPS, which has no generators of its own, works)."""
    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, stage, chunk))
    return generator


def seed_from_global_rng() -> int:
    """A fresh seed drawn from torch's global generator (advancing it, never re-seeding it)."""
    return int(torch.randint(0, 2**31 - 1, (1,)))
