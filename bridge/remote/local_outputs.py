"""A variation made elsewhere (the remote HTTP service, a Ray worker) written into a local output
folder exactly as a local run writes it.

The names come from the pipeline's own fingerprints (the local source's hash, the request's
region, the models that made it), the files go through the same code a local run uses
(`bridge.variation_files`: exclusive publish through `bridge.output_folder.OutputFolder`, `-2`
names on a collision, the created-files record, an earlier render of VampBridge's own reused),
and the recipe is the maker's, with what a local run records about the source and the files.
So a file of the user's that happens to have an output's name is never replaced, and a finished
variation already here is found instead of being fetched again.

    names = local_names(request, model_files=recipe["models"]["files"], seed=recipe["seed"],
                        precision=recipe["precision"])
    earlier = bridge.variation_files.earlier_render(folder, names.stem, names.fingerprint)  # or:
    wav, recipe = write_variation(folder, request, names, recipe=made_recipe,
                                  write_audio=..., write_tokens=...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bridge.output_folder import OutputFolder
from bridge.variation_files import publish_tokens, publish_variation, variation_stem

__all__ = ["LocalNames", "local_names", "localized_recipe", "write_variation"]


@dataclass(frozen=True)
class LocalNames:
    stem: str  # of the .wav and .json, before any `-2`
    fingerprint: str  # of the output (the recipe's `fingerprint`)
    token_fingerprint: str  # names the tokens file


def local_names(request, *, model_files: dict, seed: int, precision: str) -> LocalNames:
    """The names a local run of `request` with the models `model_files` (a recipe's
    `models.files`) at `precision` gives the variation seeded `seed`."""
    from bridge.pipeline import WINDOWS, cached_sha256, fingerprints

    options, c2f_steps = request.sampling_options()
    token_fingerprint, fingerprint = fingerprints(
        request, request.mask_recipe(), options, c2f_steps, request.fx_chain(),
        source_sha=cached_sha256(request.source_path), seed=seed, model_files=model_files,
        precision=precision, windows=WINDOWS)  # the maker's pipeline generates with the default windows
    return LocalNames(variation_stem(request.source_path, fingerprint, seed), fingerprint, token_fingerprint)


def localized_recipe(made: dict, request, *, audio_path: Path, names: LocalNames, tokens_name: str,
                     take_name: str | None = None) -> dict:
    """The maker's recipe `made` with what a local run records about the source and the files."""
    from bridge.pipeline import cached_sha256

    recipe = json.loads(json.dumps(made))
    recipe["fingerprint"] = names.fingerprint
    recipe["tokens"] = f"tokens/{tokens_name}"
    if take_name is not None:
        recipe["take_name"] = take_name
    recipe["request"] = request.to_dict()
    recipe["input"].update(path=str(Path(request.source_path).resolve()),
                           sha256=cached_sha256(request.source_path), start_s=request.start_s,
                           length_s=request.length_s, playrate=request.playrate)
    recipe["output"]["path"] = str(audio_path)
    return recipe


def write_variation(folder: OutputFolder, request, names: LocalNames, *, recipe: dict, write_audio,
                    write_tokens, take_name: str | None = None) -> tuple[Path, Path]:
    """Publish a variation made elsewhere in `folder`: its tokens (`write_tokens(binary file)`,
    skipped when VampBridge saved these tokens here before), its WAV (`write_audio(binary
    file)`) and its localized `recipe`, under the first free names. Returns the WAV's and the
    recipe's paths."""
    tokens_name = publish_tokens(folder, names.token_fingerprint, write_tokens)
    wav_temporary = folder.write_temporary(f"{names.stem}.wav", write_audio)

    def recipe_for(audio_path):
        return localized_recipe(recipe, request, audio_path=audio_path, names=names, tokens_name=tokens_name,
                                take_name=take_name)

    wav, recipe_name = publish_variation(folder, names.stem, wav_temporary, recipe_for)
    return folder.path / wav, folder.path / recipe_name
