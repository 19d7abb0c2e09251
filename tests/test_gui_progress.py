"""Progress and first result (issue 14, defect 8): on the CPU the pipeline delivers variations
one at a time, each written and announced before the next starts, so the first comes early and a
cancel keeps every finished one; progress names the variation and the companion shows an estimate."""

import numpy as np
import pytest

from bridge.audio import read_region
from bridge.pipeline import Cancelled, Pipeline
from bridge.request import VampRequest

from conftest import tone, write_wav


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("clip") / "clip.wav", tone(0.6), 44100)


def request(clip, out, n=3, seed=11):
    return VampRequest(source_path=str(clip), n_variations=n, seed=seed, output_dir=str(out),
                       mask={"preset": "creative"}, sampling={"sampling_steps": 3, "c2f_sampling_steps": 1})


def test_cpu_run_announces_each_variation_before_generating_the_next(tiny_models, clip, tmp_path):
    events = []
    pipeline = Pipeline(model_dir=tiny_models, device="cpu")
    results = pipeline.run(request(clip, tmp_path), on_progress=lambda p: events.append(("progress", p)),
                           on_result=lambda r: events.append(("result", r)))
    assert [r.index for r in results] == [0, 1, 2]
    kinds = [(kind, getattr(e, "index", None) if kind == "result" else (e.stage, e.variation))
             for kind, e in events]
    first_result = kinds.index(("result", 0))
    later_coarse = [i for i, k in enumerate(kinds) if k == ("progress", ("coarse", 2))]
    assert later_coarse and first_result < later_coarse[0]  # variation 1 was out before 3 began
    fractions = [e.fraction for kind, e in events if kind == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # progress names the variation in work from the coarse stage on
    assert {e.variation for kind, e in events if kind == "progress" and e.stage == "coarse"} == {0, 1, 2}


def test_one_at_a_time_makes_the_same_audio_as_one_batch(tiny_models, clip, tmp_path):
    single = Pipeline(model_dir=tiny_models, device="cpu").run(request(clip, tmp_path / "a", n=2))
    batch = Pipeline(model_dir=tiny_models, device="cpu", variations_per_batch=2).run(request(clip, tmp_path / "b", n=2))
    for a, b in zip(single, batch):
        np.testing.assert_allclose(read_region(a.audio_path)[0], read_region(b.audio_path)[0], atol=1e-4)


def test_cancel_keeps_every_finished_variation(tiny_models, clip, tmp_path):
    results, fractions = [], [0.0]
    pipeline = Pipeline(model_dir=tiny_models, device="cpu")
    with pytest.raises(Cancelled):  # cancelled while the 4th variation is being generated
        pipeline.run(request(clip, tmp_path, n=4), on_result=results.append,
                     on_progress=lambda p: fractions.append(p.fraction), should_cancel=lambda: fractions[-1] >= 0.8)
    assert [r.index for r in results] == [0, 1, 2]
    for r in results:
        assert read_region(r.audio_path)[0].shape[1] == int(0.6 * 44100)
    # the finished ones are found again by the next run of the same request
    again = pipeline.run(request(clip, tmp_path, n=4))
    assert [r.reused for r in again] == [True, True, True, False]
