"""Seeds for the sampler's per-item generators: one per (variation, stage, chunk).

A variation's randomness then does not depend on what else is in its batch or how its chunks are
grouped, and the process-global RNG is never touched. `Interface.vamp` and the model's own
`generate(seed=...)` use the same derivation, so a hand-written walk through the models with
the same seeds gives the tokens `vamp` gives.
"""

import hashlib

import torch


def derive_seed(seed: int, stage: str, chunk: int) -> int:
    """A 63-bit seed for one (variation, stage, chunk)."""
    digest = hashlib.blake2b(f"{seed}/{stage}/{chunk}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def chunk_generator(seed: int, stage: str, chunk: int, device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, stage, chunk))
    return generator
