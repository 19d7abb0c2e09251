"""The rendering pipeline: a `VampRequest` in, variation files and their recipes out.

    source region -> channel(s), the part the model hears, stereo rows (bridge/selection.py,
    bridge/stereo.py) -> preprocess (44.1 kHz mono, -24 LUFS) -> encode -> masks (one per
    variation, from its seed; only the selection regenerated) -> coarse vamp + coarse-to-fine in
    overlapping windows, all variations as one batch (bridge/engine/windows.py) -> decode ->
    render (source rate, channels, exact length, effect chain, loudness match, peak-safe; a
    selection spliced into the source, a loop wrapped) -> atomic WAV + JSON recipe per variation

Files are named from a fingerprint of everything that determines them, so a second run of the
same request finds its finished variations (and skips them), and a re-render of a recipe
reproduces the same audio. The CLI, the job service and the GUI all call `Pipeline.run`.
"""

import datetime
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .atomic import atomic_file
from .audio import read_region, sha256_file, write_audio_atomic
from .dsp import resample
from .engine import TOKENS_REVISION, Interface
from .engine.prompts import MaskRecipe
from .models import MODEL_FILES, ModelError, resolve_model_dir
from .paths import data_dir, default_render_dir
from . import stereo
from .engine.windows import WindowSettings, decode_ring, encode_ring, windowed_vamp
from .render import PEAK_CEILING, render_variation
from .request import RequestError, VampRequest, check_output_dir
from .selection import plan_clip, recipe_for_clip, render_time_variation, restrict_mask, ring_resample

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

    def __init__(self, model_dir=None, device=None, finetune: str | None = None,
                 windows: WindowSettings | None = WINDOWS):
        """`windows`: how long clips are generated (bridge/engine/windows.py); None: the reference's
        independent chunks (for comparisons; loops need windows)."""
        self.windows = windows
        self._model_dir_arg = model_dir
        self._device_arg = device
        self._finetune = finetune
        self._interface = None
        self._model_info = None
        self._lock = threading.Lock()

    # --- models ------------------------------------------------------------------------------

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
            "models": [Path(self._model_info["dir"]).name],
            "model_dir": self._model_info["dir"],
            "presets": {"mask": sorted(PRESETS), "fx": sorted(fx_presets())},
        }

    # --- naming --------------------------------------------------------------------------------

    def _fingerprints(self, request: VampRequest, recipe: MaskRecipe, options, c2f_steps: int, chain,
                      source_sha: str, seed: int):
        """(tokens, output): hashes of everything that determines a variation's tokens, and its file."""
        tokens = {
            "source": source_sha, "start_s": request.start_s, "length_s": request.length_s,
            "mask": recipe.to_json(), "sampling": options.to_dict(), "c2f": c2f_steps, "seed": seed,
            "per_channel": request.per_channel, "time": time_settings(request, self.windows),
            "models": {k: v["sha256"] for k, v in self._model_info["files"].items()},
            "engine": TOKENS_REVISION,
        }
        output = {"tokens": tokens, "sample_rate": request.sample_rate, "channels": request.channels,
                  "fx": chain.to_dict(), "bit_depth": request.bit_depth}
        digest = lambda value: hashlib.sha256(_canonical(value).encode()).hexdigest()[:10]  # noqa: E731
        return digest(tokens), digest(output)

    @staticmethod
    def _paths(output_dir: Path, source_path: str, fingerprint: str, seed: int):
        """`<source stem>_s<seed>_<fingerprint>.wav|.json`: the seed names the variation."""
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source_path).stem)[:60] or "clip"
        base = output_dir / f"{stem}_s{seed}_{fingerprint}"
        return base.with_suffix(".wav"), base.with_suffix(".json")

    # --- running -------------------------------------------------------------------------------

    def run(self, request: VampRequest, *, on_progress=None, on_result=None, should_cancel=None,
            only_variations=None, skip_existing: bool = True, token_dirs=(), take_suffix: str = "") -> list[VariationResult]:
        """Make the request's variations; see the module docstring. Raises RequestError for bad
        input (before any engine work), Cancelled when `should_cancel()` turns true.
        `token_dirs`: more folders where saved tokens of earlier runs may be found. `take_suffix` is
        appended to take names (re-renders name their new effect chain)."""
        with self._lock:
            return self._run(request, on_progress, on_result, should_cancel, only_variations, skip_existing,
                             token_dirs, take_suffix)

    def _run(self, request, on_progress, on_result, should_cancel, only_variations, skip_existing, token_dirs,
             take_suffix):
        timings = {}
        started = time.perf_counter()

        def progress(stage, within=0.0, variation=-1):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            if on_progress is not None:
                fraction = _stage_start(stage) + STAGE_WEIGHTS[stage] * min(1.0, max(0.0, within))
                on_progress(Progress(round(fraction, 4), stage, variation))

        request.validate()
        if request.seed is None:
            request.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        recipe = request.mask_recipe()
        options, c2f_steps = request.sampling_options()
        chain = request.fx_chain()
        output_dir = check_output_dir(request.output_dir) if request.output_dir else default_render_dir()
        indices = list(range(request.n_variations)) if only_variations is None else sorted(set(only_variations))
        if any(not 0 <= k < request.n_variations for k in indices):
            raise RequestError("variation", f"variations {indices} outside 0..{request.n_variations - 1}")

        progress("loading")
        t = time.perf_counter()
        interface = self.interface
        timings["load_s"] = time.perf_counter() - t
        source_sha = cached_sha256(request.source_path)
        seeds = {k: request.seed + k for k in indices}
        planned = {}
        results = []
        for k in indices:
            token_fingerprint, fingerprint = self._fingerprints(request, recipe, options, c2f_steps, chain,
                                                                source_sha, seeds[k])
            audio_path, recipe_path = self._paths(output_dir, request.source_path, fingerprint, seeds[k])
            result = VariationResult(k, seeds[k], str(audio_path), str(recipe_path),
                                     (take_name(k, recipe.preset, seeds[k]) + " " + take_suffix).strip())
            if skip_existing and audio_path.is_file() and self._recipe_matches(recipe_path, fingerprint):
                result.reused = True
                results.append(result)
                if on_result is not None:
                    on_result(result)
            else:
                planned[k] = (result, fingerprint, token_fingerprint)
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
            folders = [Path(planned[k][0].recipe_path).parent, *map(Path, token_dirs)]
            cached = next((c for c in (_load_tokens(f, planned[k][2], shape[1:], n_in) for f in folders)
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
            result, fingerprint, token_fingerprint = planned[k]
            _save_tokens(Path(result.recipe_path).parent, token_fingerprint,
                         vamped[j * n_in:(j + 1) * n_in], masked[j * n_in:(j + 1) * n_in], codes)
            audio = _render(engine_audio[j * n_in:(j + 1) * n_in, 0], gains, mode, plan, source_audio, source_rate,
                            interface.codec.sample_rate, chain)
            out_rate = request.sample_rate or source_rate
            if out_rate != source_rate and request.loop:  # wrapped, so the loop stays seamless
                audio = ring_resample(audio, round(audio.shape[1] * out_rate / source_rate))
            elif out_rate != source_rate:
                audio = resample(audio, source_rate, out_rate)
            audio = _convert_channels(audio, request.channels or source_audio.shape[0])
            write_audio_atomic(result.audio_path, audio, out_rate, bit_depth=request.bit_depth,
                               protect=[request.source_path])
            timings["render_s"] = time.perf_counter() - t
            changed = (vamped[j * n_in] != codes[0]).float().mean().item()
            masked_fraction = (masked[j * n_in] == interface.codec.codebook_size).float().mean().item()
            recipe_doc = self._recipe_document(request, recipe, options, c2f_steps, chain, result, fingerprint,
                                               source_sha, source_rate, region_audio.shape, out_rate, audio.shape,
                                               timings, masked_fraction, changed, token_fingerprint)
            recipe_doc["time"] = {**time_settings(request, self.windows), **plan.to_dict(), "stereo_effective": mode,
                                  "beats_source": recipe.beats_source if recipe.beat_after_s > 0 else None}
            _write_json_atomic(Path(result.recipe_path), recipe_doc)
            results.append(result)
            if on_result is not None:
                on_result(result)
        progress("rendering", 1.0)
        timings["total_s"] = time.perf_counter() - started
        return sorted(results, key=lambda r: r.index)

    @staticmethod
    def _recipe_matches(recipe_path: Path, fingerprint: str) -> bool:
        try:
            return json.loads(Path(recipe_path).read_text()).get("fingerprint") == fingerprint
        except (OSError, ValueError):
            return False

    def _recipe_document(self, request, recipe, options, c2f_steps, chain, result, fingerprint, source_sha,
                         source_rate, source_shape, out_rate, out_shape, timings, masked_fraction, changed,
                         token_fingerprint):
        return {
            "kind": RECIPE_KIND,
            "format": RECIPE_FORMAT,
            "vampbridge_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": fingerprint,
            "tokens": f"tokens/{token_fingerprint}.npz",
            "take_name": result.take_name,
            "variation": result.index,
            "seed": result.seed,
            "request": request.to_dict(),
            "input": {"path": str(Path(request.source_path).resolve()), "sha256": source_sha,
                      "start_s": request.start_s, "length_s": request.length_s, "playrate": request.playrate,
                      "sample_rate": source_rate, "channels": source_shape[0], "n_samples": source_shape[1]},
            "models": self._model_info,
            "device": str(self.interface.device),
            "mask": recipe.to_json(),
            "sampling": {**options.to_dict(), "c2f_sampling_steps": c2f_steps},
            "fx": chain.to_dict(),
            "output": {"path": result.audio_path, "sample_rate": out_rate, "channels": out_shape[0],
                       "n_samples": out_shape[1], "bit_depth": request.bit_depth},
            "stats": {"masked_fraction": round(masked_fraction, 6), "changed_fraction": round(changed, 6)},
            "timings": {k: round(v, 4) for k, v in timings.items()},
        }

    # --- re-rendering ----------------------------------------------------------------------------

    def rerender(self, recipe_path, *, fx=None, seed=None, output_dir=None, output_path=None,
                 on_progress=None, should_cancel=None) -> VariationResult:
        """Rebuild one variation from its recipe: the same audio, unless `fx` or `seed` (the
        variation's own seed) change it. With `output_path`, the WAV goes exactly there and the
        recipe beside it; otherwise into `output_dir` (default: the recipe's folder), where an
        identical earlier render is reused."""
        request, index = request_from_recipe(recipe_path)
        windows = self.windows
        self.windows = windows_from_recipe(recipe_path)  # as recorded, whatever today's default
        try:
            return self._rerender(request, index, recipe_path, fx, seed, output_dir, output_path, on_progress,
                                  should_cancel)
        finally:
            self.windows = windows

    def _rerender(self, request, index, recipe_path, fx, seed, output_dir, output_path, on_progress, should_cancel):
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
        output_path = Path(output_path).expanduser().resolve()
        check_output_dir(output_path.parent)
        with tempfile.TemporaryDirectory(prefix=".vampbridge-", dir=output_path.parent) as scratch:
            request.output_dir = scratch
            result = self.run(request, on_progress=on_progress, should_cancel=should_cancel,
                              only_variations=[index], skip_existing=False,
                              token_dirs=[Path(recipe_path).parent], take_suffix=suffix)[0]
            recipe = json.loads(Path(result.recipe_path).read_text())
            recipe["output"]["path"] = str(output_path)
            os.replace(result.audio_path, output_path)
            _write_json_atomic(output_path.with_suffix(".json"), recipe)
        return VariationResult(index, result.seed, str(output_path), str(output_path.with_suffix(".json")),
                               result.take_name)


def _tokens_path(folder: Path, token_fingerprint: str) -> Path:
    return folder / "tokens" / f"{token_fingerprint}.npz"


def _save_tokens(folder: Path, token_fingerprint: str, codes, masked, original):
    """Keep a variation's tokens (rows, 14, T) so re-renders with other effects skip generation,
    with the source's own codes beside them so editors can show what changed."""
    with atomic_file(_tokens_path(folder, token_fingerprint), "wb") as f:
        np.savez_compressed(f, codes=codes.cpu().numpy().astype(np.int16),
                            masked=masked.cpu().numpy().astype(np.int16),
                            original=original.cpu().numpy().astype(np.int16))


def _load_tokens(folder: Path, token_fingerprint: str, shape, n_rows: int):
    path = _tokens_path(folder, token_fingerprint)
    try:
        with np.load(path) as data:
            codes, masked = data["codes"], data["masked"]
    except (OSError, ValueError, KeyError):
        return None
    if codes.shape != (n_rows,) + tuple(shape) or masked.shape != codes.shape:
        return None
    return torch.from_numpy(codes.astype(np.int64)), torch.from_numpy(masked.astype(np.int64))


def windows_from_recipe(recipe_path) -> WindowSettings | None:
    """The window settings a recipe was made with; None (the reference's chunks) for recipes of
    versions before windows, which recorded no "time"."""
    recipe = json.loads(Path(recipe_path).read_text())
    if "time" not in recipe:
        return None
    recorded = recipe["time"].get("windows")
    return None if recorded is None else WindowSettings(**recorded)


def request_from_recipe(recipe_path) -> tuple[VampRequest, int]:
    """The request, and the variation index in it, that rebuild a recipe's variation."""
    path = Path(recipe_path)
    try:
        recipe = json.loads(path.read_text())
    except OSError as e:
        raise RequestError("recipe", f"cannot read recipe {path}: {e.strerror}", "bad_request") from None
    except ValueError as e:
        raise RequestError("recipe", f"recipe {path} is not valid JSON ({e})", "bad_request") from None
    if recipe.get("kind") != RECIPE_KIND:
        raise RequestError("recipe", f"{path} is not a VampBridge variation recipe", "bad_request")
    index = int(recipe["variation"])
    data = dict(recipe["request"])
    # variation `index` of a request seeded seed - index has exactly the recorded seed
    data.update(seed=recipe["seed"] - index, n_variations=index + 1, mask=recipe["mask"],
                output_dir=str(path.parent))
    if "time" not in recipe:  # before stereo modes: the mono mix, or per_channel with shared draws
        data.update(stereo="coupled" if data.get("per_channel") else "mono", per_channel=False)
    return VampRequest.from_dict(data), index
