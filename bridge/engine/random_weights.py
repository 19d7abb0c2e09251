"""Randomly initialised model sets in the released file format, for tests and the bundled default.

`make_random(dir, size)` writes `codec.pth`, `coarse.pth` and `c2f.pth`. The token grid is the real
one at every size (44.1 kHz, hop 768, 14 codebooks of 1024 entries of 8 dimensions), so every
code path runs exactly as with the released weights; only widths and depths shrink. The output is
noise-like: these weights are untrained.
"""

from pathlib import Path

import torch

from .checkpoint import save_checkpoint
from .codec import Codec, CodecConfig
from .transformer import TransformerConfig, VampNetTransformer

SIZES = {
    # name: (codec overrides, transformer overrides shared by coarse and c2f, (coarse layers, c2f layers))
    "tiny": (dict(encoder_dim=4, decoder_dim=64), dict(embedding_dim=64, n_heads=2), (2, 2)),
    "small": (dict(encoder_dim=16, decoder_dim=256), dict(embedding_dim=256, n_heads=4), (4, 4)),
    "full": ({}, {}, (20, 16)),  # the released sizes (about 336 M + 278 M parameters)
}


def model_configs(size: str):
    """(codec, coarse, c2f) configs for a size name."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(SIZES)}")
    codec_kw, tf_kw, (coarse_layers, c2f_layers) = SIZES[size]
    coarse = TransformerConfig(n_codebooks=4, n_conditioning_codebooks=0, n_layers=coarse_layers,
                               **{"n_heads": 20, "embedding_dim": 1280, **tf_kw})
    c2f = TransformerConfig(n_codebooks=14, n_conditioning_codebooks=4, n_layers=c2f_layers,
                            **{"n_heads": 20, "embedding_dim": 1280, **tf_kw})
    return CodecConfig(**codec_kw), coarse, c2f


def _randomise(model, generator):
    """Small random weights everywhere (Snake alphas and norms stay at 1), reproducible from the seed."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha") or (name.endswith("weight") and p.dim() == 1):
                p.fill_(1.0)
            elif name.endswith("bias"):
                p.zero_()
            else:
                fan_in = max(1, p[0].numel())
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in**0.5)
    return model


def make_random(directory, size: str = "tiny", seed: int = 0) -> Path:
    """Write a complete random model set into `directory`; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    codec_config, coarse_config, c2f_config = model_configs(size)
    generator = torch.Generator().manual_seed(seed)
    note = {"vampbridge": {"random": True, "size": size, "seed": seed}}
    for name, model in (("codec", Codec(codec_config)), ("coarse", VampNetTransformer(coarse_config)),
                        ("c2f", VampNetTransformer(c2f_config))):
        save_checkpoint(_randomise(model, generator), directory / f"{name}.pth", note)
    return directory
