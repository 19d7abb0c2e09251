"""The VampNet-compatible engine: codec, transformer, sampler, prompts and the `Interface`.

Layering (imports only point down): layers -> codec, transformer -> checkpoint -> sampler,
prompts -> interface. Nothing here knows about OSC, Qt, jobs or output files.
"""

from .checkpoint import CheckpointError, load_codec, load_transformer, save_checkpoint
from .interface import Interface, pick_device
from .prompts import PRESETS, MaskRecipe
from .random_weights import make_random
from .sampler import SamplingOptions

# Bumped whenever a change makes the engine produce other tokens for the same inputs; part of
# every token fingerprint, so caches and resumable outputs of an older engine are not reused.
# 2: the encoder's input is loudness-normalised with audiotools' meter, as in the reference.
TOKENS_REVISION = 2

__all__ = ["Interface", "pick_device", "MaskRecipe", "PRESETS", "SamplingOptions", "CheckpointError",
           "load_codec", "load_transformer", "save_checkpoint", "make_random", "TOKENS_REVISION"]
