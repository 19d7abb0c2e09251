"""Reading and writing checkpoints in the released VampNet file format.

A `.pth` file is a plain `torch.save` of `{"state_dict": {...}, "metadata": {"kwargs": {...}}}`.
Files are loaded with `torch.load(weights_only=True)`, which refuses pickled code; there is no
fallback to unrestricted unpickling. Training logs in `metadata` may hold numpy numbers and arrays
or paths: their constructors (plain data, no code) are allow-listed, and only when a file needs
them. Fine-tune files may also be a flat dict of tensors (what the reference's LoRA training
saves). The mapping from file keys to module parameters is explicit:

- weight-normalised layers are stored as `<name>.weight_g` + `<name>.weight_v` (older torch) or
  `<name>.parametrizations.weight.original0/original1` (newer torch); both fold into `<name>.weight`;
- LoRA tensors `<name>.lora_A` (r x in) and `<name>.lora_B` (out x r) merge into `<name>.weight`
  as W + (B @ A) * (1 / r)  (alpha 1);
- every other key must match a parameter by name and shape, and every parameter must be present.
Anything else is an error that names the first offending key.
"""

import dataclasses
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_file
from .codec import Codec, CodecConfig
from .layers import WeightNormed, fold_weight_norm, split_weight_norm
from .transformer import TransformerConfig, VampNetTransformer

LORA_ALPHA = 1.0  # LoRA scaling is alpha / rank: 1/8 for the released rank-8 fine-tunes


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and what to do."""


def _data_globals() -> dict:
    """{pickled name: constructor} for the plain-data types training logs may hold.

    Each builds a value from data (numpy scalars, arrays and dtypes; pathlib paths) and runs no
    code from the file. Both numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) spellings.
    """
    import importlib
    import pathlib

    import numpy as np

    multiarray = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray")
    allowed = {"numpy.dtype": np.dtype, "numpy.ndarray": np.ndarray}
    for package in ("numpy.core", "numpy._core"):
        allowed[f"{package}.multiarray.scalar"] = multiarray.scalar
        allowed[f"{package}.multiarray._reconstruct"] = multiarray._reconstruct
    for name in dir(getattr(np, "dtypes", None) or object()):
        if name.endswith("DType"):
            allowed[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    for cls in (pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath):
        allowed[f"pathlib.{cls.__name__}"] = cls
    return allowed


def _torch_load_data_only(path):
    """torch.load(weights_only=True); if the file needs globals beyond torch's own, allow the
    plain-data ones of `_data_globals` and refuse anything else, naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Weights only load failed" not in str(e) and "Unsupported global" not in str(e):
            raise
        try:
            needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:
            raise e from None
        allowed = _data_globals()
        refused = [name for name in needed if name not in allowed]
        if refused:
            raise CheckpointError(
                f"{path} contains pickled objects other than tensors and plain data ({', '.join(refused[:5])}); "
                "refusing to load it because that would run code from the file"
            ) from None
        # numpy's dtype classes are checked when a dtype is rebuilt, not listed as globals
        dtype_classes = [cls for name, cls in allowed.items() if name.startswith("numpy.dtypes.")]
        with torch.serialization.safe_globals([(allowed[name], name) for name in needed] + dtype_classes):
            return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint_file(path, *, flat_ok: bool = False) -> dict:
    """torch.load with weights_only=True, turning every failure into a CheckpointError.

    `flat_ok`: a flat {key: tensor} dict is accepted too and returned as {"state_dict": it}
    (fine-tune files saved as a bare state dict)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (check the path, or run `vampbridge models list`)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint file is empty: {path} (download it again: `vampbridge models fetch`)")
    try:
        data = _torch_load_data_only(path)
    except CheckpointError:
        raise
    except Exception as e:
        message = str(e)
        if "Weights only load failed" in message or "Unsupported global" in message:
            raise CheckpointError(
                f"{path} contains pickled objects other than tensors and plain containers; "
                "refusing to load it because that would run code from the file"
            ) from None
        if isinstance(e, (zipfile.BadZipFile, EOFError)) or "zip archive" in message:
            raise CheckpointError(
                f"{path} is truncated or damaged ({message.splitlines()[0][:100]}); download or copy it again"
            ) from None
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint ({type(e).__name__}: {message.splitlines()[0][:100]})"
        ) from None
    if (flat_ok and isinstance(data, dict) and "state_dict" not in data and data
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items())):
        return {"state_dict": data, "metadata": {"kwargs": {}}}
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        raise CheckpointError(f"{path} is a torch file but not a VampNet checkpoint (no 'state_dict' entry)")
    metadata = data.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("kwargs"), dict):
        raise CheckpointError(f"{path} has no metadata.kwargs with the model's constructor arguments")
    return data


def checkpoint_kind(state_dict: dict) -> str:
    """'codec' or 'transformer', from the keys."""
    if any(k.startswith("quantizer.quantizers.") for k in state_dict):
        return "codec"
    if "embedding.out_proj.weight" in state_dict or any(k.startswith("transformer.layers.") for k in state_dict):
        return "transformer"
    return "unknown"


def _config_from_kwargs(config_cls, kwargs: dict, path):
    names = {f.name for f in dataclasses.fields(config_cls)}
    # Training-only and unused constructor arguments (dropout, flash_attn, r_cond_dim, ...) are ignored.
    known = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items() if k in names}
    if config_cls is TransformerConfig and kwargs.get("r_cond_dim", 0) not in (0, None):
        raise CheckpointError(f"{path}: r_cond_dim={kwargs['r_cond_dim']} is not supported (released models use 0)")
    return config_cls(**known)


def _weight_normed_names(model: nn.Module) -> set:
    return {name for name, m in model.named_modules() if isinstance(m, WeightNormed)}


def file_state_to_module_state(state_dict: dict, model: nn.Module, path) -> dict:
    """Map file keys onto the model's parameter names (see the module docstring)."""
    wn = _weight_normed_names(model)
    out, g_v, lora = {}, {}, {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is not a tensor")
        for suffix, slot in ((".weight_g", "g"), (".weight_v", "v"),
                             (".parametrizations.weight.original0", "g"),
                             (".parametrizations.weight.original1", "v")):
            if key.endswith(suffix):
                g_v.setdefault(key[: -len(suffix)], {})[slot] = value
                break
        else:
            if key.endswith(".lora_A") or key.endswith(".lora_B"):
                lora.setdefault(key[:-7], {})[key[-1]] = value
            else:
                out[key] = value
    for name, pair in g_v.items():
        if name not in wn:
            raise CheckpointError(f"{path}: {name!r} is stored weight-normalised but is not a weight-normed layer here")
        if set(pair) != {"g", "v"}:
            raise CheckpointError(f"{path}: weight-norm pair for {name!r} is incomplete (have {sorted(pair)})")
        out[f"{name}.weight"] = fold_weight_norm(pair["g"].float(), pair["v"].float())
    for name, ab in lora.items():
        if set(ab) != {"A", "B"} or f"{name}.weight" not in out:
            raise CheckpointError(f"{path}: LoRA tensors for {name!r} need lora_A, lora_B and the base weight")
        a, b = ab["A"].float(), ab["B"].float()
        w = out[f"{name}.weight"].float()
        if b.shape[0] != w.shape[0] or a.shape[1] != w.shape[1] or a.shape[0] != b.shape[1]:
            raise CheckpointError(
                f"{path}: LoRA shapes for {name!r} do not fit its weight {tuple(w.shape)}: "
                f"lora_A {tuple(a.shape)}, lora_B {tuple(b.shape)}"
            )
        out[f"{name}.weight"] = w + (b @ a) * (LORA_ALPHA / a.shape[0])
    return out


def load_state_strict(model: nn.Module, state: dict, path):
    """Every parameter present with the right shape, no unknown keys; else name the first mismatch."""
    expected = model.state_dict()
    for key in expected:
        if key not in state:
            raise CheckpointError(f"{path}: missing parameter {key!r} (is this the right kind of checkpoint?)")
    for key, value in state.items():
        if key not in expected:
            raise CheckpointError(f"{path}: unexpected parameter {key!r} for this model")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: parameter {key!r} has shape {tuple(value.shape)}, "
                f"the model's metadata implies {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def load_codec(path) -> Codec:
    data = read_checkpoint_file(path)
    kind = checkpoint_kind(data["state_dict"])
    if kind != "codec":
        raise CheckpointError(
            f"{path} is a {kind} checkpoint, but a codec (codec.pth) was expected: check which file goes where"
        )
    config = _config_from_kwargs(CodecConfig, data["metadata"]["kwargs"], path)
    with torch.device("meta"):
        model = Codec(config)
    model = model.to_empty(device="cpu")
    load_state_strict(model, file_state_to_module_state(data["state_dict"], model, path), path)
    return model.eval()


def load_transformer(path, lora_path=None) -> VampNetTransformer:
    data = read_checkpoint_file(path)
    kind = checkpoint_kind(data["state_dict"])
    if kind != "transformer":
        raise CheckpointError(
            f"{path} is a {kind} checkpoint, but a transformer (coarse.pth or c2f.pth) was expected: "
            "check which file goes where"
        )
    config = _config_from_kwargs(TransformerConfig, data["metadata"]["kwargs"], path)
    with torch.device("meta"):
        model = VampNetTransformer(config)
    model = model.to_empty(device="cpu")
    state = dict(data["state_dict"])
    if lora_path is not None:
        # A fine-tune file: its tensors (including LoRA pairs) override or extend the base model's.
        state.update(read_checkpoint_file(lora_path, flat_ok=True)["state_dict"])
    load_state_strict(model, file_state_to_module_state(state, model, path), path)
    return model.eval()


def module_state_to_file_state(model: nn.Module) -> dict:
    """The released spelling: weight-normed layers as weight_g / weight_v."""
    wn = _weight_normed_names(model)
    out = {}
    for key, value in model.state_dict().items():
        name = key.rsplit(".", 1)[0]
        value = value.detach()
        if value.device.type != "meta":  # meta tensors (shape-only models) cannot be copied to the CPU
            value = value.cpu()
        if key.endswith(".weight") and name in wn:
            out[f"{name}.weight_g"], out[f"{name}.weight_v"] = split_weight_norm(value)
        else:
            out[key] = value.clone()
    return out


# Constructor arguments the released files carry beyond our configs. The reference fills missing
# ones with its own defaults (r_cond_dim 64, flash_attn on), which would build a different model,
# so files written here state them, and the reference loads them as the released ones.
RELEASED_EXTRA_KWARGS = {
    "transformer": {"r_cond_dim": 0, "flash_attn": False, "noise_mode": "mask", "dropout": 0.0},
    "codec": {"quantizer_dropout": False},
}


def save_checkpoint(model, path, extra_metadata: dict | None = None):
    """Write `model` (Codec or VampNetTransformer) in the released format, atomically."""
    kind = "codec" if isinstance(model, Codec) else "transformer"
    metadata = {"kwargs": {**dataclasses.asdict(model.config), **RELEASED_EXTRA_KWARGS[kind]}}
    metadata.update(extra_metadata or {})
    _atomic_torch_save({"state_dict": module_state_to_file_state(model), "metadata": metadata}, path)


def _atomic_torch_save(obj, path):
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


def check_compatible(codec: Codec, coarse: VampNetTransformer, c2f: VampNetTransformer | None):
    """Codebook counts and vocabularies that fit together, else a CheckpointError saying which."""
    for name, model in (("coarse", coarse), ("c2f", c2f)):
        if model is None:
            continue
        if model.n_codebooks > codec.n_codebooks:
            raise CheckpointError(
                f"the {name} model uses {model.n_codebooks} codebooks but the codec has only "
                f"{codec.n_codebooks}: these files are not from the same model set"
            )
        if model.vocab_size != codec.codebook_size:
            raise CheckpointError(
                f"the {name} model's vocabulary ({model.vocab_size}) differs from the codec's codebook "
                f"size ({codec.codebook_size}): these files are not from the same model set"
            )
        if model.config.latent_dim != codec.config.codebook_dim:
            raise CheckpointError(
                f"the {name} model embeds {model.config.latent_dim}-d codebook vectors but the codec's "
                f"are {codec.config.codebook_dim}-d: these files are not from the same model set"
            )
    if c2f is not None and c2f.n_conditioning_codebooks != coarse.n_codebooks:
        raise CheckpointError(
            f"the c2f model conditions on {c2f.n_conditioning_codebooks} codebooks but the coarse model "
            f"generates {coarse.n_codebooks}: these files are not from the same model set"
        )
