"""The Interface's model-set methods: the reference's `default`, `available_models`,
`load_finetuned`, `reload` and `lora_load`.

This is the engine's one door to model sets on disk: it asks `bridge.models` (imported lazily,
the only import here that points up) which set commands use and which fine-tunes it has. The
rest of the engine loads files only where it is handed their paths.
"""

import functools
from pathlib import Path

from .checkpoint import check_compatible, load_transformer


class _class_or_instance_method:
    """A method that receives the instance when called on one, else the class."""

    def __init__(self, function):
        self.function = function
        functools.update_wrapper(self, function)

    def __get__(self, instance, owner):
        return functools.partial(self.function, owner if instance is None else instance)


class ModelSetMethods:
    """Mixed into `Interface`; uses its `codec`, `coarse`, `c2f`, `*_path` and `_ready`."""

    @classmethod
    def default(cls, device=None) -> "Interface":
        """The installed released set (or $VAMPBRIDGE_MODEL), else the bundled default, whose
        weights are untrained (a one-line note on stderr says so)."""
        from ..models import MODEL_FILES, resolve_model_dir  # model sets on disk: the one upward door

        directory = resolve_model_dir()
        files = {name: directory / name for name in MODEL_FILES}
        return cls(coarse_ckpt=files["coarse.pth"], coarse2fine_ckpt=files["c2f.pth"], codec_ckpt=files["codec.pth"],
                   device=device)

    @_class_or_instance_method
    def available_models(self_or_cls, model_dir=None) -> list[str]:
        """The fine-tunes of a model set, then "default". The set: `model_dir`, else, called on an
        interface, the one it was loaded from, else (called on the class) the one `default()` loads."""
        from ..models import lora_names, resolve_model_dir

        if model_dir is None and getattr(self_or_cls, "codec_path", None) is not None:
            model_dir = self_or_cls.codec_path.parent
        return lora_names(Path(model_dir) if model_dir else resolve_model_dir(warn=False)) + ["default"]

    def load_finetuned(self, name: str):
        """Switch to fine-tune `name` of this interface's model set (`loras/<name>/`), or back to
        its base models with "default"."""
        if self.codec_path is None:
            raise RuntimeError("this Interface was built from modules in memory: it has no model set to look in")
        directory = self.codec_path.parent
        names = self.available_models()
        if name not in names:
            raise ValueError(f"{name!r} is not a model of {directory}; available: {names}")
        base = {"coarse": directory / "coarse.pth", "c2f": directory / "c2f.pth"}
        lora = {key: None for key in base} if name == "default" else {
            key: (directory / "loras" / name / f"{key}.pth") for key in base}
        lora = {key: (path if path is not None and path.is_file() else None) for key, path in lora.items()}
        for key in ("coarse", "c2f"):
            if getattr(self, key) is None and key == "c2f":
                continue
            self._replace(key, base[key], lora[key])

    def reload(self, coarse_ckpt=None, c2f_ckpt=None):
        """Replace the coarse and/or coarse-to-fine model by full checkpoints; a file that is
        already loaded is not read again."""
        for key, path in (("coarse", coarse_ckpt), ("c2f", c2f_ckpt)):
            if path is not None:
                self._replace(key, Path(path), None)

    def _replace(self, key: str, path: Path, lora_path):
        if getattr(self, f"{key}_path") == Path(path) and self._lora_paths[key] == lora_path:
            return  # already loaded
        old = getattr(self, key)
        model = load_transformer(path, lora_path)
        check_compatible(self.codec, *((model, self.c2f) if key == "coarse" else (self.coarse, model)))
        model.chunk_size_s = old.chunk_size_s if old is not None else (10.0 if key == "coarse" else 3.0)
        setattr(self, key, self._ready(model, key))
        setattr(self, f"{key}_path", Path(path))
        self._lora_paths[key] = lora_path

    def lora_load(self, coarse_ckpt=None, c2f_ckpt=None, full_ckpts: bool = False):
        """Switch fine-tunes: LoRA files merge into the base weights loaded at construction, or, with
        `full_ckpts`, the given files replace the models outright."""
        for key, path in (("coarse", coarse_ckpt), ("c2f", c2f_ckpt)):
            if path is None:
                continue
            base = getattr(self, f"{key}_path")
            if full_ckpts:
                self._replace(key, Path(path), None)
            elif base is None:
                raise RuntimeError(f"no {key} model file to merge {path} into: load one first "
                                   f"(Interface(...) or reload()), or pass full_ckpts=True")
            else:
                self._replace(key, base, Path(path))
