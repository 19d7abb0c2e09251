"""The rendering pipeline: a `VampRequest` in, variation files and their recipes out.

    source region -> channel(s), the part the model hears, stereo rows (bridge/selection.py,
    bridge/stereo.py) -> preprocess (44.1 kHz mono, -24 LUFS) -> encode -> masks (one per
    variation, from its seed; only the selection regenerated) -> coarse vamp + coarse-to-fine in
    overlapping windows, the variations of a group as one batch (bridge/engine/windows.py) ->
    decode -> render (source rate, channels, exact length, effect chain, level matched by
    `render.loudness_rule`, peak-safe; a selection spliced into the source, a loop wrapped) ->
    WAV + JSON recipe per variation, published exclusively (bridge/variation_files.py)

Variations run in groups (`Pipeline(variations_per_batch=)`; default one at a time on the CPU,
all as one batch on an accelerator); each group is written and reported before the next starts,
so the first result comes early and a cancel keeps every finished variation.

Files are named from a fingerprint of everything that determines them, so a second run of the
same request finds its finished variations (and skips them), and a re-render of a recipe
reproduces the same audio. The CLI, the job service and the GUI all call `Pipeline.run`.
"""

import datetime
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .atomic import atomic_file
from .audio import read_region, sha256_file, write_wav
from .dsp import resample
from .engine import TOKENS_REVISION, Interface, pick_device
from .engine.prompts import MaskRecipe
from .models import MODEL_FILES, ModelError, resolve_model_dir
from .output_folder import OutputFolder
from .paths import data_dir, default_render_dir
from . import stereo
from .engine.windows import WindowSettings, decode_ring, encode_ring, windowed_vamp
from .render import PEAK_CEILING, SILENCE_PEAK_DB, is_silent, loudness_rule, render_variation
from .request import RequestError, VampRequest
from .selection import plan_clip, recipe_for_clip, render_time_variation, restrict_mask, ring_resample
from .variation_files import (earlier_render, exists_error, json_bytes, load_tokens, publish_variation,
                              refuse_replacing, save_tokens, variation_stem)

# Window length and overlap of the pipeline's generation (bridge/engine/windows.py).
WINDOWS = WindowSettings()

RECIPE_KIND = "vampbridge.variation"
RECIPE_FORMAT = 1

# Share of the whole job each stage takes, for progress fractions.
STAGE_WEIGHTS = {"loading": 0.02, "encoding": 0.04, "coarse": 0.62, "c2f": 0.2, "decoding": 0.08, "rendering": 0.04}


@dataclass
class Progress:
    fraction: float  # 0..1 over the whole job
    stage: str  # loading, encoding, coarse, c2f, decoding, rendering
    variation: int  # -1 when the stage covers every variation


@dataclass
class VariationResult:
    index: int
    seed: int
    audio_path: str
    recipe_path: str
    take_name: str
    reused: bool = False  # found on disk from an earlier identical run


class Cancelled(Exception):
    pass


def _group_progress(on_progress, g: int, n_groups: int, group: list[int]):
    """Group g of n's progress as the whole run's: its fraction scaled into [g/n, (g+1)/n], and the
    group's first variation named where the stage covers all of the group."""
    if on_progress is None:
        return None

    def report(p: Progress):
        variation = p.variation if p.variation >= 0 else group[0]
        on_progress(Progress(round((g + p.fraction) / n_groups, 4), p.stage, variation))
    return report


def take_name(index: int, preset: str | None, seed: int) -> str:
    """`vamp <k> <preset> s<seed>`, k counted from 1 as a musician would."""
    return f"vamp {index + 1} {preset or 'custom'} s{seed}"


def _stage_start(stage: str) -> float:
    total = 0.0
    for name, weight in STAGE_WEIGHTS.items():
        if name == stage:
            return total
        total += weight
    return total


def cached_sha256(path: Path) -> str:
    """sha256 of a large, rarely changing file (weights, long source recordings), remembered by
    path, size and modification time in the user data folder, so a job does not re-read 1.5 GB of
    weights or a long recording every time."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = data_dir() / "sha256-cache.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{path}|")}
        cache[key] = sha256_file(path)
        try:
            _write_json_atomic(cache_file, cache)
        except OSError:
            pass  # a read-only data folder only costs the cache
    return cache[key]


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def fingerprints(request: VampRequest, recipe: MaskRecipe, options, c2f_steps: int, chain, *, source_sha: str,
                 seed: int, model_files: dict, precision: str,
                 windows: WindowSettings | None) -> tuple[str, str]:
    """(tokens, output): hashes of everything that determines a variation's tokens, and its
    file. `model_files` is the model set's {name: {"sha256": ...}} (a recipe's `models.files`),
    so the relay and the Ray bounce name a variation made elsewhere as a local run would;
    `precision` the transformers' arithmetic ("fp32", "bf16") and `windows` how long clips are
    generated (`time_settings`), which change tokens."""
    tokens = {
        "source": source_sha, "start_s": request.start_s, "length_s": request.length_s,
        "mask": recipe.to_json(), "sampling": options.to_dict(), "c2f": c2f_steps, "seed": seed,
        "per_channel": request.per_channel, "time": time_settings(request, windows),
        "models": {k: v["sha256"] for k, v in model_files.items()},
        "engine": TOKENS_REVISION, "precision": precision,
    }
    output = {"tokens": tokens, "sample_rate": request.sample_rate, "channels": request.channels,
              "fx": chain.to_dict(), "bit_depth": request.bit_depth}
    digest = lambda value: hashlib.sha256(_canonical(value).encode()).hexdigest()[:10]  # noqa: E731
    return digest(tokens), digest(output)


def _write_json_atomic(path: Path, data: dict):
    with atomic_file(path, "w") as f:
        json.dump(data, f, indent=2)


def _convert_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(c, n) -> (channels, n): duplicate a mono render, average down, or repeat the last channel."""
    if audio.shape[0] == channels:
        return audio
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.concatenate([audio[:channels], np.repeat(audio[-1:], max(0, channels - audio.shape[0]), axis=0)])


def _render(outputs, gains, mode, plan, source_audio, source_rate, engine_rate, chain) -> np.ndarray:
    """One variation's decoded rows (rows, n_engine) -> its audio at the source rate: the whole
    region, effects, loudness and peak as `render_variation` does; loops and selections through
    `selection.render_time_variation` (exact length, wrapped effects, spliced selection)."""
    n_channels = source_audio.shape[0]
    if not plan.loop and plan.selection is None:
        channels = stereo.to_channels((outputs / np.asarray(gains)[:, None]).astype(np.float32), mode, n_channels)
        return render_variation(channels[0], source_audio=source_audio, source_sample_rate=source_rate, fx=chain,
                                per_channel_audio=list(channels))
    heard = stereo.channels_from_engine(outputs, gains, mode, n_channels, source_rate,
                                        plan.heard[1] - plan.heard[0], engine_rate, plan.loop)
    return render_time_variation(heard, source_audio=source_audio, plan=plan, fx_chain=chain,
                                 peak_ceiling=PEAK_CEILING)


def time_settings(request: VampRequest, windows: WindowSettings | None) -> dict:
    """Everything about time and channels that determines a variation's tokens (fingerprinted and
    recorded): windows, selection and its context limit, loop, stereo mode, channel."""
    from .selection import CROSSFADE_MS, SELECTION_CONTEXT_S

    return {"windows": None if windows is None else windows.to_dict(), "regen_start_s": request.regen_start_s,
            "regen_length_s": request.regen_length_s, "context_limit_s": SELECTION_CONTEXT_S,
            "crossfade_ms": CROSSFADE_MS, "loop": request.loop, "stereo": request.stereo_mode,
            "channel": request.channel}


class Pipeline:
    """Owns one loaded model set; `run` is not re-entrant (the job service gives it one worker)."""

    def __init__(self, model_dir=None, device=None, finetune: str | None = None, precision: str = "auto",
                 variations_per_batch: int | None = None, windows: WindowSettings | None = WINDOWS):
        """`precision`: the transformers' arithmetic, "fp32", "bf16" or "auto" (bf16 on CUDA,
        fp32 elsewhere; see `Interface`). It is part of every token fingerprint. `windows`: how
        long clips are generated (bridge/engine/windows.py); None: the reference's independent
        chunks (for comparisons; loops need windows)."""
        self.variations_per_batch = variations_per_batch  # None: 1 on the CPU, all on an accelerator
        self.windows = windows
        self._model_dir_arg = model_dir
        self._device_arg = device
        self._precision_arg = precision
        self._finetune = finetune
        self._interface = None
        self._model_info = None
        self._lock = threading.Lock()

    # --- models ------------------------------------------------------------------------------

    def _precision(self) -> str:
        if self._precision_arg != "auto":
            return self._precision_arg
        return "bf16" if pick_device(self._device_arg).type == "cuda" else "fp32"

    @property
    def interface(self) -> Interface:
        if self._interface is None:
            directory = resolve_model_dir(self._model_dir_arg)
            files = {name: directory / name for name in MODEL_FILES}
            lora = {}
            if self._finetune:
                lora_dir = directory / "loras" / self._finetune
                lora = {name: lora_dir / name for name in ("coarse.pth", "c2f.pth") if (lora_dir / name).is_file()}
                if not lora:
                    raise ModelError(f"fine-tune {self._finetune!r} not found in {directory / 'loras'}; "
                                     "see `vampbridge models list`, or `vampbridge models fetch NAME`")
                files.update({f"loras/{self._finetune}/{name}": path for name, path in lora.items()})
            self._interface = Interface(coarse_ckpt=files["coarse.pth"], coarse2fine_ckpt=files["c2f.pth"],
                                        codec_ckpt=files["codec.pth"], device=self._device_arg,
                                        precision=self._precision(),
                                        coarse_lora_ckpt=lora.get("coarse.pth"),
                                        coarse2fine_lora_ckpt=lora.get("c2f.pth"))
            self._model_info = {
                "dir": str(directory),
                "finetune": self._finetune,
                "files": {name: {"path": str(path), "sha256": cached_sha256(path)} for name, path in files.items()},
            }
        return self._interface

    def info(self) -> dict:
        from .engine.prompts import PRESETS
        from .fx import fx_presets

        interface = self.interface
        return {
            "engine_version": __version__,
            "device": str(interface.device),
            "precision": interface.precision,
            "models": [Path(self._model_info["dir"]).name],
            "model_dir": self._model_info["dir"],
            "presets": {"mask": sorted(PRESETS), "fx": sorted(fx_presets())},
        }

    # --- running -------------------------------------------------------------------------------

    def run(self, request: VampRequest, *, on_progress=None, on_result=None, should_cancel=None,
            only_variations=None, skip_existing: bool = True, token_dirs=(), take_suffix: str = "") -> list[VariationResult]:
        """Make the request's variations; see the module docstring. Raises RequestError for bad
        input (before any engine work), Cancelled when `should_cancel()` turns true.
        `token_dirs`: more folders where saved tokens of earlier runs may be found. `take_suffix` is
        appended to take names (re-renders name their new effect chain)."""
        with self._lock:
            request.validate()  # bad input fails before the models load (they decide the groups)
            if request.seed is None:  # one seed for every group
                request.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
            indices = list(range(request.n_variations)) if only_variations is None else sorted(set(only_variations))
            groups = self._groups(indices)
            results = []
            # One folder for the whole job: held open, so a folder swapped between groups is caught
            # as a swap at the next publish, like one swapped within a group.
            with OutputFolder.open(request.output_dir or default_render_dir()) as folder:
                for g, group in enumerate(groups):
                    report = on_progress if len(groups) == 1 else _group_progress(on_progress, g, len(groups), group)
                    results += self._run(request, report, on_result, should_cancel, group, skip_existing,
                                         token_dirs, take_suffix, folder)
            return sorted(results, key=lambda r: r.index)

    def _groups(self, indices: list[int]) -> list[list[int]]:
        """The variations in the order they are made, grouped. On the CPU one at a time: the first
        is listed after 1/n of the job (2.5-3x sooner than with one batch, benchmarks/gui.py) and a
        cancel keeps what is done, for a whole job 16-26 % longer than one batch (each group also
        encodes the region again). An accelerator runs a batch nearly as fast as one variation, so
        it takes them all. `variations_per_batch` chooses another trade-off."""
        size = self.variations_per_batch
        if size is None:
            size = 1 if self.interface.device.type == "cpu" else len(indices)
        size = max(1, int(size))
        return [indices[i:i + size] for i in range(0, len(indices), size)] or [indices]

    def _run(self, request, on_progress, on_result, should_cancel, only_variations, skip_existing, token_dirs,
             take_suffix, folder):
        timings = {}
        started = time.perf_counter()

        def progress(stage, within=0.0, variation=-1):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            if on_progress is not None:
                fraction = _stage_start(stage) + STAGE_WEIGHTS[stage] * min(1.0, max(0.0, within))
                on_progress(Progress(round(fraction, 4), stage, variation))

        # run() validated the request and picked the seed once; the held folder is checked at
        # every publish (a folder swapped between groups is a swap, not a new folder to check)
        recipe = request.mask_recipe()
        options, c2f_steps = request.sampling_options()
        chain = request.fx_chain()
        indices = list(range(request.n_variations)) if only_variations is None else sorted(set(only_variations))
        if any(not 0 <= k < request.n_variations for k in indices):
            raise RequestError("variation", f"variations {indices} outside 0..{request.n_variations - 1}")
        return self._make(request, recipe, options, c2f_steps, chain, indices, folder, progress, on_result,
                          skip_existing, token_dirs, take_suffix, timings, started)

    def _make(self, request, recipe, options, c2f_steps, chain, indices, folder, progress, on_result,
              skip_existing, token_dirs, take_suffix, timings, started):
        progress("loading")
        t = time.perf_counter()
        interface = self.interface
        timings["load_s"] = time.perf_counter() - t
        source_sha = cached_sha256(request.source_path)
        seeds = {k: request.seed + k for k in indices}
        planned = {}
        results = []
        for k in indices:
            token_fingerprint, fingerprint = fingerprints(request, recipe, options, c2f_steps, chain,
                                                          source_sha=source_sha, seed=seeds[k],
                                                          model_files=self._model_info["files"],
                                                          precision=interface.precision, windows=self.windows)
            stem = variation_stem(request.source_path, fingerprint, seeds[k])
            result = VariationResult(k, seeds[k], str(folder.path / f"{stem}.wav"), str(folder.path / f"{stem}.json"),
                                     (take_name(k, recipe.preset, seeds[k]) + " " + take_suffix).strip())
            earlier = earlier_render(folder, stem, fingerprint) if skip_existing else None
            if earlier is not None:
                result.audio_path, result.recipe_path = (str(folder.path / name) for name in earlier)
                result.reused = True
                results.append(result)
                if on_result is not None:
                    on_result(result)
            else:
                planned[k] = (result, fingerprint, token_fingerprint, stem)
        if not planned:
            progress("rendering", 1.0)
            return results

        # --- audio in: the channel(s) the take plays, the part the model hears, one engine row per
        # stereo row (bridge/stereo.py, bridge/selection.py)
        progress("encoding")
        t = time.perf_counter()
        region_audio, source_rate = read_region(request.source_path, request.start_s, request.length_s)
        source_audio = stereo.select_channels(region_audio, request.channel)
        plan = plan_clip(request, source_audio.shape[1], source_rate)
        mode = stereo.effective_mode(request.stereo_mode, source_audio.shape[0])
        heard_audio = source_audio[:, plan.heard[0]:plan.heard[1]]
        engine_inputs, gains = stereo.engine_rows(interface, heard_audio, mode, source_rate, request.loop)
        n_engine = engine_inputs.shape[-1]
        if n_engine < interface.codec.hop_length:
            raise RequestError("length_s", f"the region is {n_engine / interface.codec.sample_rate * 1000:.1f} ms "
                               f"long, shorter than one token frame ({interface.t2s(1) * 1000:.1f} ms); "
                               "select a longer region", "bad_region")
        # What the model hears decides: a selection heard in silence has nothing to vary, even
        # where the region has sound further away (its level would otherwise be made up).
        silent = is_silent(heard_audio)
        level_rule = loudness_rule(heard_audio, source_rate)
        if request.loop:
            codes = encode_ring(interface, engine_inputs)  # (rows, 14, T), wrapped at the ends
        else:
            codes = interface.encode_audio(engine_inputs)  # (rows, 14, T)
        timings["encode_s"] = time.perf_counter() - t
        progress("encoding", 1.0)

        # --- masks and generation: one batch row per (variation, engine row). Variations whose
        # tokens were saved by an earlier run with the same token fingerprint are not generated again.
        t = time.perf_counter()
        order = sorted(planned)
        n_in = len(engine_inputs)
        shape = (1,) + tuple(codes.shape[1:])
        vamped = codes.repeat(len(order), 1, 1)  # (variations * n_in, 14, T), filled below
        masked = torch.empty_like(vamped)
        to_generate = []
        for j, k in enumerate(order):
            folders = [folder.path, *map(Path, token_dirs)]
            cached = next((c for c in (load_tokens(f, planned[k][2], shape[1:], n_in) for f in folders)
                           if c is not None), None)
            if cached is not None:
                vamped[j * n_in:(j + 1) * n_in], masked[j * n_in:(j + 1) * n_in] = cached
            else:
                to_generate.append(j)
        if to_generate:
            clip_recipe = recipe_for_clip(recipe, plan.heard_offset_s)
            first, last = plan.selection_frames(codes.shape[-1])
            rows, masks, row_seeds = [], [], []
            for j in to_generate:
                for c, seed in enumerate(stereo.row_seeds(seeds[order[j]], mode, n_in)):
                    generator = torch.Generator().manual_seed(seed)
                    mask = interface.build_mask_from_recipe(clip_recipe, shape, generator, engine_inputs[0][0])
                    masks.append(restrict_mask(mask, first, last))
                    if silent and not bool((masks[-1] == 1).all()):
                        raise _silent_region(request)
                    rows.append(codes[c:c + 1])
                    row_seeds.append(seed)

            def on_step(stage, fraction):
                progress(stage, fraction)

            if self.windows is None:
                if request.loop:
                    raise RequestError("loop", "loops need windowed generation; this pipeline uses the "
                                       "reference's independent chunks")
                generated, generated_masked = interface.vamp(
                    torch.cat(rows), torch.cat(masks), batch_size=len(rows), seeds=row_seeds,
                    c2f_sampling_steps=c2f_steps, return_mask=True, on_step=on_step, **options.to_dict())
            else:
                generated, generated_masked = windowed_vamp(
                    interface, torch.cat(rows), torch.cat(masks), row_seeds, options, c2f_sampling_steps=c2f_steps,
                    settings=self.windows, loop=request.loop, on_step=on_step, return_mask=True)
            for i, j in enumerate(to_generate):
                vamped[j * n_in:(j + 1) * n_in] = generated[i * n_in:(i + 1) * n_in]
                masked[j * n_in:(j + 1) * n_in] = generated_masked[i * n_in:(i + 1) * n_in].to(masked.device)
        timings["generate_s"] = time.perf_counter() - t

        progress("decoding")
        t = time.perf_counter()
        if request.loop:
            engine_audio = decode_ring(interface, vamped).float().cpu().numpy()  # (rows, 1, n)
        else:
            engine_audio = interface.decode_codes(vamped, n_engine).float().cpu().numpy()  # (rows, 1, n)
        timings["decode_s"] = time.perf_counter() - t
        progress("decoding", 1.0)

        # --- render and write, one variation at a time
        for j, k in enumerate(order):
            progress("rendering", j / len(order), k)
            t = time.perf_counter()
            result, fingerprint, token_fingerprint, stem = planned[k]
            tokens_name = save_tokens(folder, token_fingerprint, vamped[j * n_in:(j + 1) * n_in],
                                      masked[j * n_in:(j + 1) * n_in], codes)
            audio = _render(engine_audio[j * n_in:(j + 1) * n_in, 0], gains, mode, plan, source_audio, source_rate,
                            interface.codec.sample_rate, chain)
            out_rate = request.sample_rate or source_rate
            if out_rate != source_rate and request.loop:  # wrapped, so the loop stays seamless
                audio = ring_resample(audio, round(audio.shape[1] * out_rate / source_rate))
            elif out_rate != source_rate:
                audio = resample(audio, source_rate, out_rate)
            audio = _convert_channels(audio, request.channels or source_audio.shape[0])
            wav_temporary = folder.write_temporary(
                f"{stem}.wav", lambda f: write_wav(f, audio, out_rate, bit_depth=request.bit_depth))
            timings["render_s"] = time.perf_counter() - t
            changed = (vamped[j * n_in] != codes[0]).float().mean().item()
            masked_fraction = (masked[j * n_in] == interface.codec.codebook_size).float().mean().item()

            def recipe_for(audio_path, result=result, fingerprint=fingerprint, audio_shape=audio.shape,
                           changed=changed, masked_fraction=masked_fraction, tokens_name=tokens_name):
                result.audio_path = str(audio_path)
                document = self._recipe_document(request, recipe, options, c2f_steps, chain, result, fingerprint,
                                                 source_sha, source_rate, region_audio.shape, out_rate, audio_shape,
                                                 timings, masked_fraction, changed, tokens_name, level_rule)
                document["time"] = {**time_settings(request, self.windows), **plan.to_dict(),
                                    "stereo_effective": mode,
                                    "beats_source": recipe.beats_source if recipe.beat_after_s > 0 else None}
                return document

            result.audio_path, result.recipe_path = (
                str(folder.path / name) for name in publish_variation(folder, stem, wav_temporary, recipe_for))
            results.append(result)
            if on_result is not None:
                on_result(result)
        progress("rendering", 1.0)
        timings["total_s"] = time.perf_counter() - started
        return sorted(results, key=lambda r: r.index)

    def _recipe_document(self, request, recipe, options, c2f_steps, chain, result, fingerprint, source_sha,
                         source_rate, source_shape, out_rate, out_shape, timings, masked_fraction, changed,
                         tokens_name, level_rule):
        return {
            "kind": RECIPE_KIND,
            "format": RECIPE_FORMAT,
            "vampbridge_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": fingerprint,
            "tokens": f"tokens/{tokens_name}",
            "take_name": result.take_name,
            "variation": result.index,
            "seed": result.seed,
            "request": request.to_dict(),
            "input": {"path": str(Path(request.source_path).resolve()), "sha256": source_sha,
                      "start_s": request.start_s, "length_s": request.length_s, "playrate": request.playrate,
                      "sample_rate": source_rate, "channels": source_shape[0], "n_samples": source_shape[1]},
            "models": self._model_info,
            "device": str(self.interface.device),
            "precision": self.interface.precision,
            "mask": recipe.to_json(),
            "sampling": {**options.to_dict(), "c2f_sampling_steps": c2f_steps},
            "fx": chain.to_dict(),
            "loudness_rule": level_rule,  # how the level follows the source: lufs, rms or silent
            "output": {"path": result.audio_path, "sample_rate": out_rate, "channels": out_shape[0],
                       "n_samples": out_shape[1], "bit_depth": request.bit_depth},
            "stats": {"masked_fraction": round(masked_fraction, 6), "changed_fraction": round(changed, 6)},
            "timings": {k: round(v, 4) for k, v in timings.items()},
        }

    # --- re-rendering ----------------------------------------------------------------------------

    def rerender(self, recipe_path, *, fx=None, seed=None, output_dir=None, output_path=None, overwrite=False,
                 on_progress=None, should_cancel=None) -> VariationResult:
        """Rebuild one variation from its recipe: the same audio, unless `fx` or `seed` (the
        variation's own seed) change it. With `output_path`, the WAV goes exactly there and the
        recipe beside it, refused when either exists unless `overwrite`, and always when either
        is the recipe's source media or the recipe itself; otherwise into `output_dir` (default:
        the recipe's folder, under the same folder rule as any output), where an identical
        earlier render is reused."""
        request, index = request_from_recipe(recipe_path)
        windows = self.windows
        self.windows = windows_from_recipe(recipe_path)  # as recorded, whatever today's default
        try:
            return self._rerender(request, index, recipe_path, fx, seed, output_dir, output_path, overwrite,
                                  on_progress, should_cancel)
        finally:
            self.windows = windows

    def _rerender(self, request, index, recipe_path, fx, seed, output_dir, output_path, overwrite, on_progress,
                  should_cancel):
        suffix = ""
        if fx is not None:
            request.fx = fx
            suffix = fx if isinstance(fx, str) and fx.strip() and fx.strip()[0] not in "[{@" else "fx"
        if seed is not None:
            request.seed = int(seed) - index
        if output_path is None:
            if output_dir is not None:
                request.output_dir = str(output_dir)
            return self.run(request, on_progress=on_progress, should_cancel=should_cancel,
                            only_variations=[index], take_suffix=suffix)[0]
        output_path = Path(os.path.abspath(Path(output_path).expanduser()))
        if output_path.suffix.lower() not in (".wav", ".wave"):
            raise RequestError("output", f"output path {output_path} must end in .wav; renders are WAV files")
        names = (output_path.name, output_path.with_suffix(".json").name)
        with OutputFolder.open(output_path.parent) as folder:
            refuse_replacing(folder, names, protected={"the recipe's source media": request.source_path,
                                                        "the recipe itself": recipe_path}, overwrite=overwrite)
            scratch = folder.subfolder(f".vampbridge-{secrets.token_hex(6)}")
            try:
                request.output_dir = str(scratch.path)
                result = self.run(request, on_progress=on_progress, should_cancel=should_cancel,
                                  only_variations=[index], skip_existing=False,
                                  token_dirs=[Path(recipe_path).parent], take_suffix=suffix)[0]
                recipe = json.loads(scratch.read_bytes(Path(result.recipe_path).name))
                recipe["output"]["path"] = str(folder.path / names[0])
                recipe_temporary = folder.write_temporary(names[1], lambda f: f.write(json_bytes(recipe)))
                try:
                    if not folder.publish(Path(result.audio_path).name, names[0], overwrite=overwrite,
                                          source=scratch):
                        raise exists_error(folder.path / names[0])
                    if not folder.publish(recipe_temporary, names[1], overwrite=overwrite):
                        folder.remove_own(names[0])
                        raise exists_error(folder.path / names[1])
                finally:
                    folder.discard(recipe_temporary)
            finally:
                scratch.close()
                shutil.rmtree(scratch.path, ignore_errors=True)  # ours; rmtree does not follow links
        return VariationResult(index, result.seed, str(folder.path / names[0]), str(folder.path / names[1]),
                               result.take_name)


def _silent_region(request: VampRequest) -> RequestError:
    end = "the end" if request.length_s is None else f"{request.start_s + request.length_s:g} s"
    return RequestError("source_path", f"the region {request.start_s:g} s to {end} of {request.source_path} is "
                        f"silent (every sample below {SILENCE_PEAK_DB:g} dBFS): there is nothing to vary. Select "
                        "a region with sound, or use a mask that regenerates everything, e.g. "
                        '{"rand_mask_intensity": 1, "periodic_prompt": 0}', "bad_region")


def windows_from_recipe(recipe_path) -> WindowSettings | None:
    """The window settings a recipe was made with; None (the reference's chunks) for recipes of
    versions before windows, which recorded no "time". A crafted recipe's bad settings are a
    RequestError naming the field, never quoting it."""
    from .inputs import InputError, read_json_file

    try:
        recipe = read_json_file(Path(recipe_path), "recipe")
    except InputError as e:
        raise RequestError("recipe", str(e), e.code) from None
    time_record = recipe.get("time") if isinstance(recipe, dict) else None
    if time_record is None:
        return None
    recorded = time_record.get("windows") if isinstance(time_record, dict) else {}
    if recorded is None:
        return None
    try:
        return WindowSettings(**recorded)
    except (TypeError, ValueError):
        raise RequestError("recipe", f"recipe {recipe_path} has invalid time.windows settings; re-render needs "
                           "a recipe written by VampBridge", "bad_request") from None


def request_from_recipe(recipe_path) -> tuple[VampRequest, int]:
    """The request, and the variation index in it, that rebuild a recipe's variation."""
    from .inputs import InputError, read_json_file

    path = Path(recipe_path)
    try:  # a regular file of at most 1 MB: a recipe path may come from any OSC client
        recipe = read_json_file(path, "recipe")
    except InputError as e:
        raise RequestError("recipe", str(e), e.code) from None
    if not isinstance(recipe, dict) or recipe.get("kind") != RECIPE_KIND:
        raise RequestError("recipe", f"{path} is not a VampBridge variation recipe", "bad_request")
    # A recipe file may be crafted: each field is checked, and a bad one named (never quoted).
    for key, kinds in (("variation", int), ("request", dict), ("seed", int), ("mask", (dict, str))):
        value = recipe.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise RequestError("recipe", f"recipe {path} has no valid {key!r}; rerender needs a recipe "
                               "VampBridge wrote beside a variation", "bad_request")
    index = recipe["variation"]
    if not 0 <= index < 64 or not 0 <= recipe["seed"] < 2**31:
        raise RequestError("recipe", f"recipe {path} has a variation or seed out of range", "bad_request")
    data = dict(recipe["request"])
    # variation `index` of a request seeded seed - index has exactly the recorded seed
    data.update(seed=recipe["seed"] - index, n_variations=index + 1, mask=recipe["mask"],
                output_dir=str(path.parent))
    if "time" not in recipe:  # before stereo modes: the mono mix, or per_channel with shared draws
        data.update(stereo="coupled" if data.get("per_channel") else "mono", per_channel=False)
    return VampRequest.from_dict(data), index
