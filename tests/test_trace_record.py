"""Generation traces: the engine's record of every step, its compact file, and `vampbridge trace`."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from bridge.engine.prompts import MaskRecipe
from bridge.engine.sampler import Trace, n_still_masked
from bridge.request import VampRequest
from bridge.studies import TraceRecord, run_trace
from bridge.studies.trace import stage_arrays
from conftest import tone, write_wav

STEPS, C2F_STEPS = 5, 2


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("trace-clip") / "clip.wav", tone(0.6), 44100)


@pytest.fixture(scope="module")
def small_chunks(tiny_models):
    """A pipeline with the reference's independent chunks of 0.25 s, so a short clip has several."""
    from bridge.pipeline import Pipeline

    pipeline = Pipeline(model_dir=str(tiny_models), device="cpu", windows=None)
    pipeline.interface.coarse.chunk_size_s = 0.25
    pipeline.interface.c2f.chunk_size_s = 0.25
    return pipeline


@pytest.fixture(scope="module")
def traced(small_chunks, clip, tmp_path_factory):
    """(record, the request) for two variations with several chunks per stage."""
    out = tmp_path_factory.mktemp("trace")
    request = VampRequest(source_path=str(clip), mask={"preset": "balanced"}, seed=11, n_variations=2,
                          sampling={"sampling_steps": STEPS, "c2f_sampling_steps": C2F_STEPS}, output_dir=str(out))
    path = run_trace(small_chunks, request, out, log=lambda message: None)
    return TraceRecord(path), request


def test_the_engine_records_one_entry_per_step_following_the_cosine_schedule(tiny_interface):
    codes = torch.randint(0, 1024, (2, 14, 40))
    mask = MaskRecipe(rand_mask_intensity=0.8, periodic_prompt=5).build((2, 14, 40), torch.Generator().manual_seed(1))
    trace = Trace()
    tiny_interface.vamp(codes, mask, batch_size=2, seeds=[1, 2], sampling_steps=STEPS, c2f_sampling_steps=C2F_STEPS,
                        trace=trace)
    assert [run["stage"] for run in trace.runs] == ["coarse", "c2f"]
    for run, n_steps in zip(trace.runs, (STEPS, C2F_STEPS)):
        assert len(run["steps"]) == n_steps
        assert run["rows"] == [(0, 0), (1, 0)]
        for row in range(2):
            before = run["n0"][row]
            for i, step in enumerate(run["steps"]):
                assert step["masked"][row] == n_still_masked(i, n_steps, run["n0"][row], before)
                assert step["masked"][row] == int(step["mask"][row].sum())
                before = step["masked"][row]
            assert before == 0
    assert len(trace.steps) == STEPS + C2F_STEPS


def test_tracing_does_not_change_the_result(tiny_interface):
    codes = torch.randint(0, 1024, (1, 14, 30), generator=torch.Generator().manual_seed(0))
    mask = MaskRecipe().build((1, 14, 30), torch.Generator().manual_seed(0))
    plain = tiny_interface.vamp(codes, mask, seed=3, sampling_steps=3, c2f_sampling_steps=1)
    traced = tiny_interface.vamp(codes, mask, seed=3, sampling_steps=3, c2f_sampling_steps=1, trace=Trace())
    assert torch.equal(plain, traced)


def test_the_file_has_one_entry_per_step_and_the_schedule_holds_in_every_chunk(traced):
    record, request = traced
    assert record.stages == ["coarse", "c2f"]
    T = record.meta["n_frames"]
    for stage, n_steps in (("coarse", STEPS), ("c2f", C2F_STEPS)):
        a = record.arrays
        masked, n0 = a[f"{stage}_masked"], a[f"{stage}_n0"]
        K = len(a[f"{stage}_chunk_start"])
        assert K == -(-T // 15) and (a[f"{stage}_chunk_frames"] > 0).all()  # 0.25 s chunks of 15 frames
        assert masked.shape == (2, n_steps, K) and record.n_steps(stage) == n_steps
        assert (a[f"{stage}_steps_run"] == n_steps).all()
        for v in range(2):
            for k in range(K):
                before = n0[v, k]
                for i in range(n_steps):
                    assert masked[v, i, k] == n_still_masked(i, n_steps, int(n0[v, k]), int(before))
                    before = masked[v, i, k]
        assert (masked[:, -1] == 0).all()
        assert (record.expected_masked(stage) == masked).all()
        assert np.isfinite(a[f"{stage}_cut_off"][:, :-1]).any()


def test_every_step_rebuilds_from_the_file(traced):
    """The masked cells of each rebuilt step are exactly the count the engine recorded."""
    record, _ = traced
    a = record.arrays
    for stage in record.stages:
        starts, frames = a[f"{stage}_chunk_start"], a[f"{stage}_chunk_frames"]
        start_mask = record.mask_after(stage, -1)
        assert (start_mask == (a[f"{stage}_start"] == record.meta["mask_token"])).all()
        previous = record.tokens_after(stage, -1)
        for i in range(record.n_steps(stage)):
            tokens = record.tokens_after(stage, i)
            still = tokens == record.meta["mask_token"]
            assert (still == record.mask_after(stage, i)).all()
            assert ((previous != tokens) <= (previous == record.meta["mask_token"])).all()  # only masked cells fill
            for k, (first, n) in enumerate(zip(starts, frames)):
                counted = still[:, :, first:first + n].reshape(2, -1).sum(axis=1)
                if stage == "coarse":  # the c2f counts include its padding beyond the clip's end
                    assert (counted == a[f"{stage}_masked"][:, i, k]).all()
            previous = tokens
        assert (record.tokens_after(stage, record.n_steps(stage) - 1) == a[f"{stage}_final"]).all()
    assert (a["c2f_final"] == a["final_codes"]).all()
    assert (a["coarse_final"] == a["final_codes"][:, :4]).all()


def test_the_file_layout_matches_the_engine_record_exactly(tiny_interface):
    codes = torch.randint(0, 1024, (1, 14, 25), generator=torch.Generator().manual_seed(4))
    mask = MaskRecipe(periodic_prompt=3).build((1, 14, 25), torch.Generator().manual_seed(4))
    trace = Trace()
    tiny_interface.vamp(codes, mask, seed=8, sampling_steps=4, c2f_sampling_steps=2, trace=trace)
    arrays = stage_arrays(trace, "coarse", 1, 25, 4, 1024)
    for i, step in enumerate(trace.runs[0]["steps"]):
        rebuilt = np.where((arrays["fill_step"] >= 0) & (arrays["fill_step"] <= i), arrays["final"], arrays["start"])
        assert (rebuilt == step["tokens"].numpy()).all()
        assert arrays["cut_off"][0, i, 0] == pytest.approx(step["cut_off"][0])


def test_the_trace_makes_what_the_pipeline_makes(traced, small_chunks, tmp_path):
    record, request = traced
    again = VampRequest.from_dict({**request.to_dict(), "output_dir": str(tmp_path)})
    results = small_chunks.run(again)
    for k, result in enumerate(results):
        recipe = json.loads(open(result.recipe_path).read())
        with np.load(tmp_path / recipe["tokens"]) as data:
            assert (data["codes"][0] == record.arrays["final_codes"][k]).all()
            masked = data["masked"][0] == 1024  # the mask the model saw, coarse chunk edges included
            assert (masked[:4] == (record.arrays["coarse_start"][k] == 1024)).all()
            assert (masked[4:] == (record.arrays["c2f_start"][k, 4:] == 1024)).all()
        assert record.meta["seeds"][k] == recipe["seed"]


def test_a_windowed_trace_makes_what_the_windowed_pipeline_makes(tiny_models, clip, tmp_path):
    """With windows, each recorded chunk is what one window decided; together they tile the clip."""
    from bridge.engine.windows import WindowSettings
    from bridge.pipeline import Pipeline

    pipeline = Pipeline(model_dir=str(tiny_models), device="cpu",
                        windows=WindowSettings(window_s=0.3, overlap_s=0.09, c2f_window_s=0.3, c2f_overlap_s=0.09))
    request = VampRequest(source_path=str(clip), mask="balanced", seed=5, n_variations=2,
                          sampling={"sampling_steps": STEPS, "c2f_sampling_steps": C2F_STEPS},
                          output_dir=str(tmp_path / "trace"))
    record = TraceRecord(run_trace(pipeline, request, tmp_path / "trace", log=lambda message: None))
    T = record.meta["n_frames"]
    for stage in record.stages:
        starts, frames = record.arrays[f"{stage}_chunk_start"], record.arrays[f"{stage}_chunk_frames"]
        assert len(frames) >= 2 and starts[0] == 0
        assert (starts[1:] == starts[:-1] + frames[:-1]).all() and starts[-1] + frames[-1] >= T  # they tile the clip
        assert not (record.arrays[f"{stage}_final"] == 1024).any()
    again = VampRequest.from_dict({**request.to_dict(), "output_dir": str(tmp_path / "pipeline")})
    for k, result in enumerate(pipeline.run(again)):
        recipe = json.loads(open(result.recipe_path).read())
        with np.load(tmp_path / "pipeline" / recipe["tokens"]) as data:
            assert (data["codes"][0] == record.arrays["final_codes"][k]).all()


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_trace_command_writes_the_record_a_strip_and_an_animated_report(tiny_models, clip, tmp_path):
    from bridge.cli import main

    out = tmp_path / "trace"
    code = main(["trace", str(clip), "-o", str(out), "--model", str(tiny_models), "--device", "cpu", "--seed", "2",
                 "--steps", "3", "--c2f-steps", "1", "--preset", "subtle"])
    assert code == 0
    record = TraceRecord(out / "trace.npz")
    assert record.meta["seeds"] == [2]  # one variation unless -n says otherwise
    assert record.meta["mask"]["preset"] == "subtle"
    page = (out / "report.html").read_text()
    parser = Links()
    parser.feed(page)
    for link in parser.links:
        assert "://" not in link and (out / link).is_file(), link
    frames = json.loads(page.split('id="frames">', 1)[1].split("</script>", 1)[0])
    assert [f["label"] for f in frames] == ["start", "coarse step 1/3", "coarse step 2/3", "coarse step 3/3",
                                            "c2f step 1/1"]
    assert (out / "trace_strip_v1.png").read_bytes()[:4] == b"\x89PNG"
    assert "<script src" not in page
