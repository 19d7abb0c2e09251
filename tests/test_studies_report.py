"""`vampbridge study`: every study on a short clip with the tiny random weights, then its outputs
checked against the saved data: the variations and their recipes, the report's links, the figures'
numbers recomputed independently from masks.npz."""

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch

from bridge.audio import probe, read_region
from bridge.dsp import audiotools_loudness
from bridge.engine.prompts import PRESETS, MaskRecipe
from bridge.studies import DEFAULT_VALUES, KINDS, run_study
from conftest import tone, write_wav

SEED = 5
STEPS, C2F_STEPS = 2, 1


# To keep the tests quick, the long sweeps run a few of their values (the full lists are checked
# in test_studies_metrics); patterns and presets run all of theirs.
VALUES = {"density": [0.1, 0.55, 0.95], "patterns": None, "periodic": [2, 100], "depth": [0, 3], "presets": None}


def expected_values(kind):
    return VALUES[kind] if VALUES[kind] is not None else DEFAULT_VALUES[kind]


@pytest.fixture(scope="module")
def studies(tiny_models, tmp_path_factory):
    """kind -> output folder; `depth` through the command line, the rest through run_study."""
    from bridge.cli import main
    from bridge.pipeline import Pipeline

    root = tmp_path_factory.mktemp("studies")
    clip = write_wav(root / "clip.wav", tone(0.3, sample_rate=48000, channels=2), 48000)
    pipeline = Pipeline(model_dir=str(tiny_models), device="cpu")
    folders = {}
    for kind in KINDS:
        folders[kind] = root / kind
        if kind == "depth":
            code = main(["study", kind, str(clip), "-o", str(folders[kind]), "--model", str(tiny_models),
                         "--device", "cpu", "--seed", str(SEED), "--steps", str(STEPS), "--c2f-steps", str(C2F_STEPS),
                         "--values", ",".join(map(str, VALUES[kind]))])
            assert code == 0
        else:
            run_study(pipeline, kind, clip, folders[kind], seed=SEED, steps=STEPS, c2f_steps=C2F_STEPS,
                      values=VALUES[kind], log=lambda message: None)
    return folders


def recipes(folder: Path) -> dict:
    """slug -> the recipe JSON of the setting's variation."""
    out = {}
    for path in sorted((folder / "variations").glob("*/*.json")):
        assert path.parent.name not in out, f"two recipes in {path.parent}"
        out[path.parent.name] = json.loads(path.read_text())
    return out


def swept_field(kind: str, recipe: dict):
    mask = recipe["mask"]
    return {"density": lambda: mask["rand_mask_intensity"], "periodic": lambda: mask["periodic_prompt"],
            "depth": lambda: mask["upper_codebook_mask"], "presets": lambda: mask["preset"]}[kind]()


@pytest.mark.parametrize("kind", KINDS)
def test_each_study_makes_one_variation_per_setting_with_its_parameter_in_the_recipe(studies, kind):
    doc = json.loads((studies[kind] / "study.json").read_text())
    found = recipes(studies[kind])
    assert len(found) == len(expected_values(kind)) == len(doc["settings"])
    for row in doc["settings"]:
        recipe = found[row["slug"]]
        assert recipe["kind"] == "vampbridge.variation"
        assert recipe["seed"] == SEED and recipe["variation"] == 0
        assert recipe["sampling"]["temperature"] == 1.0 and recipe["sampling"]["typical_filtering"] is True
        assert recipe["sampling"]["sampling_steps"] == STEPS and recipe["sampling"]["c2f_sampling_steps"] == C2F_STEPS
        assert recipe["fx"]["chain"] == []
        assert Path(recipe["output"]["path"]) == (studies[kind] / row["audio"]).resolve()
        if kind == "patterns":
            mask = recipe["mask"]
            assert {"random": mask["rand_mask_intensity"] == 0.8 and mask["periodic_prompt"] == 0,
                    "periodic": mask["periodic_prompt"] == 5, "strided": mask["strided"] == 5,
                    "block": len(mask["blocks_s"]) == 1}[row["value"]]
        else:
            assert swept_field(kind, recipe) == row["value"]
        if kind == "presets":
            assert MaskRecipe.from_json(recipe["mask"]) == PRESETS[row["value"]]
        elif kind != "depth":
            assert recipe["mask"]["upper_codebook_mask"] == 3


def test_the_swept_values_are_the_ones_asked_for_or_the_defaults(studies):
    for kind in KINDS:
        doc = json.loads((studies[kind] / "study.json").read_text())
        assert [r["value"] for r in doc["settings"]] == expected_values(kind)


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append((tag, value))


@pytest.mark.parametrize("kind", KINDS)
def test_the_report_links_only_files_that_exist_in_its_folder(studies, kind):
    folder = studies[kind].resolve()
    parser = Links()
    parser.feed((folder / "report.html").read_text())
    assert "link" not in parser.tags  # no outside stylesheets
    files = [value for _, value in parser.links if not value.startswith("#")]
    assert len(files) >= 3 * len(expected_values(kind))  # audio, mask, spectrogram per setting at least
    for value in files:
        assert "://" not in value and not value.startswith(("/", "data:")), value
        target = (folder / value).resolve()
        assert folder in target.parents, f"{value} points outside the report's folder"
        assert target.is_file(), f"{value} does not exist"
    anchors = {value[1:] for _, value in parser.links if value.startswith("#")}
    assert anchors == {r["slug"] for r in json.loads((folder / "study.json").read_text())["settings"]}


@pytest.mark.parametrize("kind", KINDS)
def test_figures_are_finite_and_agree_with_the_saved_masks(studies, kind):
    folder = studies[kind]
    doc = json.loads((folder / "study.json").read_text())
    found = recipes(folder)
    with np.load(folder / "masks.npz") as data:
        masks, codes, original = data["masks"], data["codes"], data["original_codes"]
        assert list(data["slugs"]) == [r["slug"] for r in doc["settings"]]
    assert masks.shape[0] == len(doc["settings"]) and masks.shape[1] == 14
    assert set(np.unique(masks)) <= {0, 1}
    for i, row in enumerate(doc["settings"]):
        for key in ("masked_coarse", "masked_all", "changed_coarse", "changed_all", "mel_distance_db", "seconds"):
            assert math.isfinite(row[key]), (row["label"], key)
        assert row["masked_coarse"] == pytest.approx(masks[i, :4].sum() / masks[i, :4].size)
        assert row["masked_all"] == pytest.approx(masks[i].sum() / masks[i].size)
        assert row["changed_coarse"] == pytest.approx((codes[i, :4] != original[:4]).mean())
        assert row["changed_all"] == pytest.approx((codes[i] != original).mean())
        # the pipeline measured the same thing on its own
        assert row["masked_all"] == pytest.approx(found[row["slug"]]["stats"]["masked_fraction"], abs=1e-6)
        assert row["changed_all"] == pytest.approx(found[row["slug"]]["stats"]["changed_fraction"], abs=1e-6)
        # kept cells keep the original token; only masked cells may change
        assert (codes[i][masks[i] == 0] == original[masks[i] == 0]).all()
        assert row["mel_distance_db"] >= 0 and row["seconds"] > 0
        for key in ("mask_png", "spectrogram_png"):
            assert (folder / row[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for src in doc["summaries"].values():
        assert (folder / src).stat().st_size > 1000


def test_the_saved_masks_are_the_recipes_masks(studies):
    """Rebuild each density mask from its recipe and seed, independently of the pipeline."""
    folder = studies["density"]
    doc = json.loads((folder / "study.json").read_text())
    with np.load(folder / "masks.npz") as data:
        masks = data["masks"]
    T = masks.shape[-1]
    for i, row in enumerate(doc["settings"]):
        expected = MaskRecipe.from_json(row["mask_recipe"]).build((1, 14, T), torch.Generator().manual_seed(SEED))[0]
        expected[:4, [0, T - 1]] = 0  # the coarse chunk keeps its first and last frame
        assert (masks[i] == expected.numpy()).all(), row["label"]


def test_more_density_masks_more(studies):
    doc = json.loads((studies["density"] / "study.json").read_text())
    masked = [r["masked_coarse"] for r in doc["settings"]]
    assert masked == sorted(masked) and masked[-1] > masked[0]
    doc = json.loads((studies["depth"] / "study.json").read_text())
    assert [r["masked_all"] for r in doc["settings"]][0] == 1.0  # depth 0 regenerates everything


def test_the_original_is_written_as_the_engine_sees_it(studies):
    folder = studies["density"]
    info = probe(folder / "original.wav")
    assert (info.sample_rate, info.channels) == (44100, 1)
    audio, rate = read_region(folder / "original.wav")
    # -24 LUFS as the reference's preprocessing measures it (for this 0.3 s clip, 2.6 dB louder
    # than BS.1770 says: audiotools measures short clips padded with silence to 0.5 s)
    assert audiotools_loudness(audio, rate) == pytest.approx(-24.0, abs=0.01)


def test_a_second_run_reuses_the_variations(studies, tiny_models):
    from bridge.pipeline import Pipeline

    folder = studies["periodic"]
    before = json.loads((folder / "study.json").read_text())
    clip = folder.parent / "clip.wav"
    doc = run_study(Pipeline(model_dir=str(tiny_models), device="cpu"), "periodic", clip, folder, seed=SEED,
                    steps=STEPS, c2f_steps=C2F_STEPS, values=VALUES["periodic"], log=lambda message: None)
    assert all(r["reused"] for r in doc["settings"])
    assert [r["mel_distance_db"] for r in doc["settings"]] == [r["mel_distance_db"] for r in before["settings"]]
