"""Specification of bridge.engine.sampler: iterative parallel decoding with per-item generators."""

import json
import math

import numpy as np
import pytest
import torch

from bridge.engine import SamplingOptions
from bridge.engine.sampler import Trace, generate, n_still_masked, sample_tokens, typical_filter

MASK = 1024


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def grid(B, C, T, seed=0, ratio=0.6):
    """Random codes and a random mask (1 = regenerate) with at least one masked cell per item."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1024, (B, C, T), generator=g)
    mask = (torch.rand(B, C, T, generator=g) < ratio).long()
    mask[:, -1, 0] = 1
    return codes, mask


def run(model, codes, mask, seeds=None, **options):
    with torch.inference_mode():
        return generate(model, codes, mask, SamplingOptions(**options), gens(*seeds) if seeds else None)


# --- the loop's guarantees -----------------------------------------------------------------------


def test_kept_tokens_never_change(tiny_interface):
    codes, mask = grid(2, 4, 30, seed=1)
    out = run(tiny_interface.coarse, codes, mask, seeds=(1, 2), sampling_steps=5)
    kept = mask == 0
    assert kept.sum() > 0
    assert torch.equal(out[kept], codes[kept])


def test_no_mask_token_is_left(tiny_interface):
    codes, mask = grid(2, 4, 30, seed=2)
    codes[mask.bool()] = MASK  # the masked cells may already hold MASK
    out = run(tiny_interface.coarse, codes, mask, seeds=(1, 2), sampling_steps=4)
    assert not (out == MASK).any()
    assert int(out.max()) < 1024


def test_same_seed_gives_the_same_output(tiny_interface):
    codes, mask = grid(1, 4, 25, seed=3)
    a = run(tiny_interface.coarse, codes, mask, seeds=(11,), sampling_steps=4)
    b = run(tiny_interface.coarse, codes, mask, seeds=(11,), sampling_steps=4)
    assert torch.equal(a, b)


def test_different_seeds_give_different_outputs(tiny_interface):
    codes, mask = grid(1, 4, 25, seed=3)
    a = run(tiny_interface.coarse, codes, mask, seeds=(11,), sampling_steps=4)
    b = run(tiny_interface.coarse, codes, mask, seeds=(12,), sampling_steps=4)
    regenerated = mask.bool()
    assert (a[regenerated] != b[regenerated]).float().mean() > 0.5


def test_batch_item_equals_a_single_run_with_its_generator(tiny_interface):
    codes, mask = grid(3, 4, 20, seed=4)
    batch = run(tiny_interface.coarse, codes, mask, seeds=(5, 6, 7), sampling_steps=4)
    for k, seed in enumerate((5, 6, 7)):
        single = run(tiny_interface.coarse, codes[k:k + 1], mask[k:k + 1], seeds=(seed,), sampling_steps=4)
        assert torch.equal(batch[k:k + 1], single)


def test_interface_batch_of_n_equals_n_single_runs_with_the_same_seeds(tiny_interface):
    codes, _ = grid(1, 14, 20, seed=5)
    mask = tiny_interface.build_mask(codes, periodic_prompt=4, upper_codebook_mask=2, seed=0)
    batch = tiny_interface.vamp(codes, mask, batch_size=3, seeds=[3, 5, 9], sampling_steps=3)
    assert batch.shape == (3, 14, 20)
    for k, seed in enumerate((3, 5, 9)):
        assert torch.equal(batch[k:k + 1], tiny_interface.vamp(codes, mask, seeds=[seed], sampling_steps=3))


def test_variation_k_of_seed_s_equals_a_single_run_with_seed_s_plus_k(tiny_interface):
    codes, _ = grid(1, 14, 20, seed=6)
    mask = tiny_interface.build_mask(codes, periodic_prompt=5, upper_codebook_mask=3, seed=0)
    batch = tiny_interface.vamp(codes, mask, batch_size=3, seed=40, sampling_steps=3)
    for k in range(3):
        assert torch.equal(batch[k:k + 1], tiny_interface.vamp(codes, mask, seed=40 + k, sampling_steps=3))
    assert not torch.equal(batch[0], batch[1])


def test_masked_count_after_each_step_follows_the_schedule_down_to_zero(tiny_interface):
    codes, mask = grid(2, 4, 40, seed=7)
    mask[1, :, 20:] = 0  # the two items start with different numbers of masked cells
    trace = Trace()
    steps = 8
    with torch.inference_mode():
        generate(tiny_interface.coarse, codes, mask, SamplingOptions(sampling_steps=steps), gens(1, 2), trace=trace)
    assert len(trace.steps) == steps
    for b in range(2):
        n0 = int(mask[b].sum())
        now, expected = n0, []
        for step in range(steps):
            now = n_still_masked(step, steps, n0, now)
            expected.append(now)
        assert [s["masked"][b] for s in trace.steps] == expected
        assert expected[0] < n0 and expected[-1] == 0
        # masked cells only ever become unmasked, never the reverse
        for before, after in zip(trace.steps, trace.steps[1:]):
            assert not (after["mask"][b] & ~before["mask"][b]).any()


def test_mask_tokens_already_in_the_codes_count_in_n0_like_the_reference(tiny_interface):
    """The reference counts N0 as the MASK tokens after masking, so MASK given in the codes where
    the mask says keep is regenerated and scheduled like a masked cell."""
    codes, mask = grid(1, 4, 40, seed=8)
    mask[:, :, 30:] = 0
    codes[:, :, 35:] = tiny_interface.coarse.mask_token  # 5 frames of MASK the mask keeps
    trace = Trace()
    steps = 6
    with torch.inference_mode():
        out = generate(tiny_interface.coarse, codes, mask, SamplingOptions(sampling_steps=steps), gens(1),
                       trace=trace)
    n0 = int(mask.sum()) + 4 * 5
    now, expected = n0, []
    for step in range(steps):
        now = n_still_masked(step, steps, n0, now)
        expected.append(now)
    assert trace.runs[0]["n0"] == [n0]
    assert [s["masked"][0] for s in trace.steps] == expected
    assert not (out == tiny_interface.coarse.mask_token).any()


# --- the schedule by hand ------------------------------------------------------------------------


def test_n_still_masked_by_hand():
    # S = 12, N0 = 100: r = 1/12, cos(pi/24) = 0.99144 -> floor(99.14) = 99
    assert n_still_masked(0, 12, 100, 100) == 99
    # r = 6/12: cos(pi/4) = 0.70711 -> 70
    assert n_still_masked(5, 12, 100, 80) == 70
    # r = 11/12: cos(11 pi / 24) = 0.13053 -> 13
    assert n_still_masked(10, 12, 100, 20) == 13
    # the last step leaves nothing masked
    assert n_still_masked(11, 12, 100, 13) == 0
    # clamped to >= 1 before the last step: N0 = 5, r = 11/12 -> floor(0.65) = 0 -> 1
    assert n_still_masked(10, 12, 5, 2) == 1
    # clamped to <= currently masked - 1: floor(0.99144 * 100) = 99, but only 40 are masked now -> 39
    assert n_still_masked(0, 12, 100, 40) == 39
    # S = 1: the only step is the last
    assert n_still_masked(0, 1, 100, 100) == 0
    # S = 4, N0 = 10: r = 1/4: cos(pi/8) = 0.92388 -> 9; r = 1/2 -> 7; r = 3/4: cos(3 pi / 8) = 0.38268 -> 3
    assert [n_still_masked(i, 4, 10, 10) for i in range(4)] == [9, 7, 3, 0]


# --- argmax, top-k, typical ----------------------------------------------------------------------


def test_argmax_without_mask_noise_is_deterministic_without_generators(tiny_interface):
    codes, mask = grid(2, 4, 24, seed=8)
    options = dict(sampling_steps=4, sample_cutoff=-1.0, mask_temperature=0.0)  # no step samples
    a = run(tiny_interface.coarse, codes, mask, **options)
    b = run(tiny_interface.coarse, codes, mask, **options)
    assert torch.equal(a, b)


def test_one_step_argmax_fills_every_masked_cell_with_the_model_argmax(tiny_interface):
    model = tiny_interface.coarse
    codes, mask = grid(1, 4, 16, seed=9)
    out = run(model, codes, mask, sampling_steps=1, sample_cutoff=-1.0, mask_temperature=0.0)
    with torch.inference_mode():
        logits = model(codes.masked_fill(mask.bool(), MASK))  # (1, vocab, T * 4), flat t * 4 + c
    argmax = logits.argmax(dim=1).view(1, 16, 4).transpose(1, 2)  # (1, 4, T)
    assert torch.equal(out[mask.bool()], argmax[mask.bool()])


def test_top_k_1_sampling_equals_argmax():
    logits = torch.randn(500, 1024, generator=torch.Generator().manual_seed(0)) * 3
    uniform = torch.rand(500, generator=torch.Generator().manual_seed(1))
    options = SamplingOptions(top_k=1, typical_filtering=False)
    tokens, probs = sample_tokens(logits, options, sample=True, uniform=uniform)
    assert torch.equal(tokens, logits.argmax(dim=-1))
    torch.testing.assert_close(probs, torch.ones(500))


def test_top_k_1_generation_equals_argmax_generation(tiny_interface):
    codes, mask = grid(1, 4, 16, seed=10)
    argmax = run(tiny_interface.coarse, codes, mask, sampling_steps=1, sample_cutoff=-1.0)
    top1 = run(tiny_interface.coarse, codes, mask, seeds=(3,), sampling_steps=1, top_k=1, typical_filtering=False)
    assert torch.equal(argmax, top1)


def peaked_row():
    """Token 7: logit 10, token 8: logit 9, the other 1022 tokens: 0.

    Z = e^10 + e^9 + 1022 = 22026.5 + 8103.1 + 1022 = 31151.6
    p7 = 0.70707, p8 = 0.26012, others 3.21e-5 each (0.03281 together)
    surprisal -log p: token 7 0.3466, token 8 1.3466, others 10.3466
    entropy H = 0.70707 * 0.3466 + 0.26012 * 1.3466 + 0.03281 * 10.3466 = 0.2451 + 0.3503 + 0.3395 = 0.9349
    |surprisal - H|: token 8 0.4117 < token 7 0.5883 < others 9.41
    Typical set, most typical first, until the mass is reached: mass 0.15 -> {8} (0.260 >= 0.15);
    mass 0.5 -> {8, 7} (0.260 < 0.5, 0.967 >= 0.5).
    """
    row = torch.zeros(1024)
    row[7], row[8] = 10.0, 9.0
    return row


def draws(n, seed=0):
    """Uniform draws including the edges of [0, 1), where an off-by-one would pick a filtered token."""
    edges = torch.tensor([0.0, 1e-12, 2.0**-24, 0.5, 1 - 2.0**-24])
    return torch.cat([edges, torch.rand(n, generator=torch.Generator().manual_seed(seed))])


def test_typical_filter_keeps_the_hand_computed_typical_set():
    logits = peaked_row()[None]
    kept = lambda mass: set(torch.isfinite(typical_filter(logits, mass, 1))[0].nonzero().flatten().tolist())
    assert kept(0.15) == {8}
    assert kept(0.5) == {7, 8}
    # at least min_tokens are kept: the next most typical after 8 is 7
    assert set(torch.isfinite(typical_filter(logits, 0.15, 2))[0].nonzero().flatten().tolist()) == {7, 8}


@pytest.mark.parametrize("spread,mass,min_tokens", [(0.1, 0.15, 64), (3.0, 0.15, 64), (1.0, 0.5, 8), (0.5, 0.9, 1)])
def test_typical_filter_equals_its_plain_definition(spread, mass, min_tokens):
    """Sort by |surprisal - entropy|, keep the shortest prefix holding `mass` (at least `min_tokens`)."""
    logits = torch.randn(40, 1024, generator=torch.Generator().manual_seed(int(spread * 10))) * spread
    got = torch.isfinite(typical_filter(logits, mass, min_tokens))
    for i, row in enumerate(logits):  # float32, as the sampler computes: near-ties sort the same way
        log_p = row.log_softmax(dim=-1)
        entropy = -(log_p.exp() * log_p).sum()
        order = (-log_p - entropy).abs().argsort()
        cumulative = log_p.exp()[order].cumsum(dim=0)
        n_keep = max(min_tokens, int((cumulative < mass).sum()) + 1)
        expected = torch.zeros(1024, dtype=torch.bool)
        expected[order[:n_keep]] = True
        assert torch.equal(got[i], expected), f"row {i}"


def test_typical_filtering_restricts_sampling_to_the_typical_set():
    u = draws(3000)
    logits = peaked_row().expand(len(u), -1)
    plain, _ = sample_tokens(logits, SamplingOptions(typical_filtering=False), sample=True, uniform=u)
    typical, probs = sample_tokens(logits, SamplingOptions(typical_mass=0.15, typical_min_tokens=1),
                                   sample=True, uniform=u)
    wider, _ = sample_tokens(logits, SamplingOptions(typical_mass=0.5, typical_min_tokens=1), sample=True, uniform=u)
    # without the filter the argmax (7) dominates and the tail shows up
    assert 0.65 < float((plain == 7).float().mean()) < 0.75
    assert ((plain != 7) & (plain != 8)).any()
    # with it, only the typical set can be drawn, edges of the uniform draws included
    assert set(typical.tolist()) == {8}
    torch.testing.assert_close(probs, torch.ones(len(u)))
    assert set(wider.tolist()) == {7, 8}


def test_sampled_token_always_has_positive_probability():
    """A uniform draw of exactly 0 must not pick a filtered (probability 0) token at index 0."""
    logits = torch.full((3, 1024), -5.0)
    logits[:, 500] = 5.0
    u = torch.tensor([0.0, 0.3, 0.9999999])
    tokens, probs = sample_tokens(logits, SamplingOptions(top_k=1, typical_filtering=False), sample=True, uniform=u)
    assert tokens.tolist() == [500, 500, 500]
    assert (probs > 0).all()


def test_temperature_zero_takes_the_argmax():
    logits = torch.randn(200, 1024, generator=torch.Generator().manual_seed(2))
    u = torch.rand(200, generator=torch.Generator().manual_seed(3))
    tokens, _ = sample_tokens(logits, SamplingOptions(temperature=0.0, typical_filtering=False), sample=True,
                              uniform=u)
    assert torch.equal(tokens, logits.argmax(dim=-1))


def test_low_temperature_concentrates_sampling_on_the_argmax():
    logits = torch.randn(2000, 1024, generator=torch.Generator().manual_seed(4))
    u = torch.rand(2000, generator=torch.Generator().manual_seed(5))
    hot, _ = sample_tokens(logits, SamplingOptions(temperature=1.0, typical_filtering=False), True, u)
    cold, _ = sample_tokens(logits, SamplingOptions(temperature=0.01, typical_filtering=False), True, u)
    argmax = logits.argmax(dim=-1)
    assert float((cold == argmax).float().mean()) > 0.9 > float((hot == argmax).float().mean())


def test_top_p_keeps_the_smallest_nucleus_over_p():
    # probabilities 0.5, 0.3, 0.15, 0.05 (others -inf): p = 0.7 keeps the first two (0.5 < 0.7 <= 0.8)
    logits = torch.full((1, 1024), -math.inf)
    logits[0, :4] = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    u = torch.linspace(0, 0.999, 400)
    tokens, _ = sample_tokens(logits.expand(400, -1), SamplingOptions(top_p=0.7, typical_filtering=False), True, u)
    assert set(tokens.tolist()) == {0, 1}


# --- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field,value", [
    ("sampling_steps", 0), ("sampling_steps", 2.5), ("temperature", -0.1), ("temperature", float("nan")),
    ("top_k", 0), ("top_k", 40.5), ("top_k", "40"), ("top_k", True), ("top_p", -0.1), ("top_p", 1.5),
    ("temperature", "1.0"), ("typical_filtering", "yes"), ("typical_min_tokens", np.float64(6.2)), ("typical_mass", 0.0), ("typical_mass", 2.0),
    ("typical_min_tokens", 0), ("mask_temperature", -1.0), ("mask_temperature", float("inf")),
])
def test_sampling_options_reject_bad_values_naming_the_option(field, value):
    with pytest.raises(ValueError, match=f"sampling option {field}="):
        SamplingOptions(**{field: value})


@pytest.mark.parametrize("field,value,expected", [
    ("sampling_steps", np.int64(24), 24), ("sampling_steps", 24.0, 24), ("top_k", 40.0, 40),
    ("top_k", np.int32(40), 40), ("typical_min_tokens", np.float32(64.0), 64), ("temperature", np.float32(0.5), 0.5),
    ("temperature", 1, 1.0), ("top_p", np.float64(0.9), 0.9), ("typical_filtering", np.bool_(False), False),
])
def test_sampling_options_accept_whole_numbers_of_any_numeric_type(field, value, expected):
    """Sliders send 40.0, numpy code sends np.int64: both mean the whole number, stored as a plain
    Python value so recipes and fingerprints serialise the same whatever the caller's types."""
    options = SamplingOptions(**{field: value})
    got = getattr(options, field)
    assert got == expected and type(got) is type(expected)
    assert json.loads(json.dumps(options.to_dict()))[field] == expected


def test_top_k_given_as_a_whole_float_samples_like_the_integer(tiny_interface):
    codes, mask = grid(1, 4, 16, seed=12)
    as_int = run(tiny_interface.coarse, codes, mask, seeds=(3,), sampling_steps=2, top_k=40)
    as_float = run(tiny_interface.coarse, codes, mask, seeds=(3,), sampling_steps=2, top_k=40.0)
    assert torch.equal(as_int, as_float)


def test_top_p_zero_keeps_only_the_most_likely_token_like_the_reference():
    logits = torch.randn(300, 1024, generator=torch.Generator().manual_seed(6))
    u = torch.rand(300, generator=torch.Generator().manual_seed(7))
    tokens, probs = sample_tokens(logits, SamplingOptions(top_p=0.0, typical_filtering=False), True, u)
    assert torch.equal(tokens, logits.argmax(dim=-1))
    torch.testing.assert_close(probs, torch.ones(300))


def test_sampling_options_reject_unknown_names():
    with pytest.raises(ValueError, match=r"unknown sampling option\(s\) \['temprature'\]"):
        SamplingOptions.from_dict({"temprature": 1.0})


def test_sampling_options_defaults_are_the_references():
    o = SamplingOptions()
    assert (o.sampling_steps, o.temperature, o.top_k, o.top_p) == (12, 1.0, None, None)
    assert (o.typical_filtering, o.typical_mass, o.typical_min_tokens) == (True, 0.15, 64)
    assert (o.mask_temperature, o.sample_cutoff) == (10.5, 1.0)


# --- coarse-to-fine -------------------------------------------------------------------------------


def test_conditioning_codebooks_are_never_changed_by_the_c2f_model(tiny_interface):
    codes, _ = grid(2, 14, 12, seed=11)
    mask = torch.ones(2, 14, 12, dtype=torch.long)  # asks for everything, conditioning included
    out = run(tiny_interface.c2f, codes, mask, seeds=(1, 2), sampling_steps=3)
    assert torch.equal(out[:, :4], codes[:, :4])
    assert (out[:, 4:] != codes[:, 4:]).float().mean() > 0.9
    assert not (out == MASK).any()
    via_interface = tiny_interface.coarse_to_fine(codes, seeds=[1, 2])
    assert torch.equal(via_interface[:, :4], codes[:, :4])
    assert not (via_interface == MASK).any()


# --- the shape-static step ------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    dict(), dict(sample_cutoff=-1.0, mask_temperature=0.0), dict(top_k=40), dict(top_p=0.8, typical_filtering=False),
    dict(temperature=0.7, typical_mass=0.5, typical_min_tokens=4), dict(sample_cutoff=0.5), dict(temperature=0.0),
])
def test_static_step_gives_the_tokens_of_the_cpu_step(tiny_interface, options):
    """The step a GPU runs (every cell, no data-dependent shapes: what MPS and CUDA graphs need)
    gives the same tokens as the CPU's masked-cells-only step, and the same cut-offs."""
    from functools import partial

    from bridge.engine.sampler import decode_step

    for model, (B, C, T) in ((tiny_interface.coarse, (2, 4, 33)), (tiny_interface.c2f, (2, 14, 12))):
        codes, mask = grid(B, C, T, seed=13)
        traces = Trace(), Trace()
        with torch.inference_mode():
            compact = generate(model, codes, mask, SamplingOptions(sampling_steps=5, **options), gens(1, 2),
                               trace=traces[0])
            static = generate(model, codes, mask, SamplingOptions(sampling_steps=5, **options), gens(1, 2),
                              trace=traces[1], step_fn=partial(decode_step, static=True))
        assert torch.equal(compact, static)
        assert [s["cut_off"] for s in traces[0].steps] == [s["cut_off"] for s in traces[1].steps]


def test_typical_filter_static_and_row_selecting_forms_keep_the_same_tokens():
    rows = torch.cat([torch.randn(50, 1024, generator=torch.Generator().manual_seed(9)) * spread
                      for spread in (0.1, 1.0, 4.0, 12.0)])
    rows[:3] = peaked_row()  # ties among the 1022 equal logits: the same tied tokens must be picked
    for mass, min_tokens in ((0.15, 64), (0.5, 8), (0.9, 1)):
        assert torch.equal(typical_filter(rows, mass, min_tokens, static=True),
                           typical_filter(rows, mass, min_tokens, static=False))


def test_all_draws_of_a_call_up_front_equal_drawing_step_by_step():
    """The reference draws rand(n) then uniform_(1e-20, 1) of n per step; one CPU rand(N) holds
    the same numbers in that order, which is what keeps the tokens of the step-by-step sampler."""
    g = torch.Generator().manual_seed(3)
    step_by_step = []
    for n in (40, 17, 1, 0, 9):
        step_by_step += [torch.rand(n, generator=g), torch.empty(n).uniform_(1e-20, 1.0, generator=g)]
    up_front = torch.rand(200, generator=torch.Generator().manual_seed(3))[:sum(map(len, step_by_step))]
    assert torch.equal(torch.cat(step_by_step)[:40], up_front[:40])
    offset = 0
    for k, part in enumerate(step_by_step):
        expected = up_front[offset:offset + len(part)]
        assert torch.equal(part, expected.clamp(min=1e-20) if k % 2 else expected)
        offset += len(part)


def test_a_step_needs_no_kthvalue_nonzero_or_host_reads(tiny_interface, monkeypatch):
    """What Apple MPS lacks (kthvalue) and what stalls a GPU queue (nonzero, .item(), .tolist(),
    bincount) is not used by the static step: with them all made to fail, the steps still run."""
    from functools import partial

    from bridge.engine.sampler import decode_step, start_state

    codes, mask = grid(2, 4, 20, seed=14)
    with torch.inference_mode():
        expected = generate(tiny_interface.coarse, codes, mask, SamplingOptions(sampling_steps=3), gens(4, 5))
        state = start_state(tiny_interface.coarse, codes, mask, SamplingOptions(sampling_steps=3), gens(4, 5))

    def forbidden(*args, **kwargs):
        raise AssertionError("a host read or an operation MPS lacks was used")

    for name in ("kthvalue", "nonzero", "bincount", "searchsorted"):
        monkeypatch.setattr(torch, name, forbidden)
        monkeypatch.setattr(torch.Tensor, name, forbidden, raising=False)
    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    with torch.inference_mode():
        for step in range(3):
            index = torch.tensor(step)  # as a captured step gets it: a tensor on the device
            decode_step(tiny_interface.coarse, state, index, SamplingOptions(sampling_steps=3), True, static=True)
    monkeypatch.undo()
    assert torch.equal(state.z, expected)
