"""The VampNet-compatible engine: codec, transformer, sampler, prompts and the `Interface`.

`import bridge.engine as vampnet` stands in for `import vampnet`: `vampnet.interface.Interface`,
`vampnet.interface.signal_concat` and `vampnet.mask.<function>` are the reference's names.

Layering (imports only point down): layers -> codec, transformer -> checkpoint -> sampler,
prompts -> mask -> interface. Nothing here knows about OSC, Qt, jobs or output files, except
the Interface's model-set methods (`model_sets.py`), which ask `bridge.models` where sets live.
"""

from . import interface, mask  # noqa: F401 - the reference's module names: vampnet.interface, vampnet.mask
from .checkpoint import CheckpointError, load_codec, load_transformer, save_checkpoint
from .interface import Interface, pick_device
from .prompts import PRESETS, MaskRecipe
from .random_weights import make_random
from .sampler import SamplingOptions

# Bumped whenever a change makes the engine produce other tokens for the same inputs; part of
# every token fingerprint, so caches and resumable outputs of an older engine are not reused.
# 2: the encoder's input is loudness-normalised with audiotools' meter, as in the reference.
# 3: mask dropout regenerates int(T * p) whole frames, as in the reference.
TOKENS_REVISION = 3

__all__ = ["interface", "mask", "Interface", "pick_device", "MaskRecipe", "PRESETS", "SamplingOptions", "CheckpointError",
           "load_codec", "load_transformer", "save_checkpoint", "make_random", "TOKENS_REVISION"]
