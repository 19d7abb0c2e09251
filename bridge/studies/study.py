"""Run one masking study on a clip: one variation per setting, through `Pipeline.run`, then measure.

Output folder (docs/studies.md has the details):

    original.wav              the clip as the engine sees it: 44.1 kHz, mono, -24 LUFS
    codec_roundtrip.wav       the original tokens decoded unchanged (what the codec alone does)
    variations/<slug>/        one `Pipeline.run` output per setting: WAV + recipe JSON + tokens/
    figures/                  per setting <slug>_mask.png, <slug>_spectrogram.png; summary_*.png
    masks.npz                 per-setting masks and tokens, and the original tokens
    study.json                every number the report shows, and the relative paths it links
    report.html               self-contained: relative links only, no scripts or styles from outside
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..audio import read_region, write_audio_atomic
from ..output_folder import check_report_folder
from ..request import VampRequest
from . import figures, html
from .metrics import (FRAME_RATE_HZ, N_COARSE_CODEBOOKS, SAMPLE_RATE, changed_fraction, log_mel_db,
                      masked_fraction, mel_distance_db)
from .settings import DEFAULT_PATTERN_DENSITY, PARAMETER, study_settings

STUDY_KIND = "vampbridge.study"
STUDY_FORMAT = 1
COARSE = slice(0, N_COARSE_CODEBOOKS)


def _log_to_stderr(message: str):
    print(message, file=sys.stderr, flush=True)


def _relative(path, root: Path) -> str:
    return Path(path).resolve().relative_to(root).as_posix()


def _sampling(steps, c2f_steps) -> dict:
    """The studies' fixed sampling: temperature 1.0, typical filtering on; steps as asked."""
    sampling = {"temperature": 1.0, "typical_filtering": True}
    if steps is not None:
        sampling["sampling_steps"] = int(steps)
    if c2f_steps is not None:
        sampling["c2f_sampling_steps"] = int(c2f_steps)
    return sampling


def _preprocessed(interface, path) -> np.ndarray:
    """A WAV of any rate and channel count as the engine sees it: (n,) at 44.1 kHz, mono, -24 LUFS."""
    audio, rate = read_region(path)
    return interface.preprocess_audio(audio, rate)[0]


def run_study(pipeline, kind: str, input_path, output_dir, *, seed: int = 0, steps: int | None = None,
              c2f_steps: int | None = None, start_s: float = 0.0, length_s: float | None = None, values=None,
              pattern_density: float = DEFAULT_PATTERN_DENSITY, log=_log_to_stderr) -> dict:
    """Make and measure every setting of study `kind`; returns the study document (study.json)."""
    input_path = Path(input_path).expanduser().resolve()
    root = check_report_folder(str(Path(output_dir).expanduser().resolve()), marker="study.json", what="study")
    sampling = _sampling(steps, c2f_steps)
    # every problem with the input or options surfaces here, before the models load
    probe = VampRequest(source_path=str(input_path), start_s=start_s, length_s=length_s, sampling=sampling,
                        seed=seed, output_dir=str(root))
    info = probe.validate()
    clip_s = (info.duration_s - start_s) if length_s is None else length_s
    settings = study_settings(kind, values, clip_s=clip_s, pattern_density=pattern_density)

    interface = pipeline.interface
    mask_token = interface.codec.codebook_size
    source, source_rate = read_region(str(input_path), start_s, length_s)
    original = interface.preprocess_audio(source, source_rate)  # (1, n) at 44.1 kHz
    n_samples = original.shape[-1]
    write_audio_atomic(root / "original.wav", original, SAMPLE_RATE, protect=[input_path])
    with torch.inference_mode():
        original_codes = interface.encode_audio(original)  # (1, 14, T)
        roundtrip = interface.decode_codes(original_codes, n_samples).float().cpu().numpy()[0]  # (1, n)
    roundtrip = interface.preprocess_audio(roundtrip, SAMPLE_RATE)  # measured like the variations: -24 LUFS
    original_codes = original_codes[0].cpu().numpy()
    write_audio_atomic(root / "codec_roundtrip.wav", roundtrip, SAMPLE_RATE, protect=[input_path])
    figure_dir = root / "figures"
    figure_dir.mkdir(exist_ok=True)
    original_mel = log_mel_db(original[0])
    figures.spectrogram_image(original_mel, figure_dir / "original_spectrogram.png", "original (preprocessed)",
                              n_samples / SAMPLE_RATE)
    roundtrip_distance = mel_distance_db(roundtrip[0], original[0])

    rows, masks, codes = [], [], []
    for number, setting in enumerate(settings, 1):
        request = VampRequest(source_path=str(input_path), start_s=start_s, length_s=length_s, mask=setting.mask,
                              sampling=sampling, fx="none", n_variations=1, seed=seed,
                              output_dir=str(root / "variations" / setting.slug))
        wall = time.perf_counter()
        [result] = pipeline.run(request)
        wall = time.perf_counter() - wall
        recipe = json.loads(Path(result.recipe_path).read_text())
        with np.load(Path(result.recipe_path).parent / recipe["tokens"]) as data:
            final = data["codes"][0].astype(np.int64)  # (14, T)
            mask = (data["masked"][0] == mask_token).astype(np.uint8)  # 1 = regenerated
        variation = _preprocessed(interface, result.audio_path)
        variation_mel = log_mel_db(variation)
        timings = recipe.get("timings", {})
        seconds = sum(timings.get(k, 0.0) for k in ("load_s", "encode_s", "generate_s", "decode_s", "render_s"))
        mask_png = figure_dir / f"{setting.slug}_mask.png"
        spectrogram_png = figure_dir / f"{setting.slug}_spectrogram.png"
        row = {
            "label": setting.label, "slug": setting.slug, "value": setting.value, "mask_recipe": setting.mask,
            "audio": _relative(result.audio_path, root), "recipe": _relative(result.recipe_path, root),
            "mask_png": _relative(mask_png, root), "spectrogram_png": _relative(spectrogram_png, root),
            "masked_coarse": masked_fraction(mask, COARSE), "masked_all": masked_fraction(mask),
            "changed_coarse": changed_fraction(final, original_codes, COARSE),
            "changed_all": changed_fraction(final, original_codes),
            "mel_distance_db": mel_distance_db(variation, original[0]),
            "seconds": round(seconds, 4), "generate_s": round(timings.get("generate_s", float("nan")), 4),
            "wall_s": round(wall, 4), "reused": result.reused,
        }
        figures.mask_image(mask, mask_png, f"{setting.label}: {row['masked_coarse']:.1%} of codebooks 0-3, "
                                            f"{row['masked_all']:.1%} of all cells regenerated")
        figures.spectrogram_image(variation_mel, spectrogram_png, f"{setting.label}: mel distance "
                                  f"{row['mel_distance_db']:.2f} dB", n_samples / SAMPLE_RATE)
        rows.append(row)
        masks.append(mask)
        codes.append(final)
        log(f"[{number}/{len(settings)}] {setting.label}: {row['masked_coarse']:.0%} masked, "
            f"{row['changed_coarse']:.0%} changed (codebooks 0-3), mel distance {row['mel_distance_db']:.2f} dB, "
            f"{seconds:.1f} s" + (" (already there)" if result.reused else ""))

    np.savez_compressed(root / "masks.npz", masks=np.stack(masks), codes=np.stack(codes).astype(np.int16),
                        original_codes=original_codes.astype(np.int16),
                        labels=np.array([r["label"] for r in rows]), slugs=np.array([r["slug"] for r in rows]),
                        frame_rate_hz=np.float64(FRAME_RATE_HZ), mask_token=np.int64(mask_token))

    numeric = all(s.numeric for s in settings)
    log_x = kind == "periodic"
    summaries = {
        "tokens": "figures/summary_tokens.png", "mel": "figures/summary_mel.png",
        "seconds": "figures/summary_seconds.png",
    }
    figures.summary_tokens(rows, root / summaries["tokens"], PARAMETER[kind], numeric, log_x)
    figures.summary_metric(rows, "mel_distance_db", root / summaries["mel"], PARAMETER[kind], "mel distance (dB)",
                           "mel-spectrogram distance to the original vs setting", numeric, log_x,
                           baseline=roundtrip_distance, baseline_label="codec round trip (nothing regenerated)")
    figures.summary_metric(rows, "seconds", root / summaries["seconds"], PARAMETER[kind], "seconds",
                           "seconds taken (encode + generate + decode + render)", numeric, log_x)

    document = {
        "kind": STUDY_KIND, "format": STUDY_FORMAT, "study": kind, "parameter": PARAMETER[kind],
        "input": {"path": str(input_path), "start_s": start_s, "length_s": length_s,
                  "duration_s": n_samples / SAMPLE_RATE, "n_frames": int(original_codes.shape[-1])},
        "seed": seed, "sampling": sampling, "pattern_density": pattern_density if kind == "patterns" else None,
        "device": str(interface.device), "frame_rate_hz": FRAME_RATE_HZ,
        "original": {"audio": "original.wav", "spectrogram_png": "figures/original_spectrogram.png"},
        "codec_roundtrip": {"audio": "codec_roundtrip.wav", "mel_distance_db": roundtrip_distance},
        "masks": "masks.npz", "summaries": summaries, "settings": rows,
    }
    (root / "study.json").write_text(json.dumps(document, indent=2))
    (root / "report.html").write_text(html.study_page(document))
    log(f"report: {root / 'report.html'}")
    return document
