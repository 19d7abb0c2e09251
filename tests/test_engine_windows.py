"""Windowed generation and rings (bridge/engine/windows.py) on tiny random weights."""

import numpy as np
import pytest
import torch

from bridge.engine.prompts import MaskRecipe
from bridge.engine.sampler import SamplingOptions
from bridge.engine.windows import (
    WindowSettings,
    decode_ring,
    encode_ring,
    plan_windows,
    run_windows,
    windowed_vamp,
)

from conftest import tone

SR, HOP, MASK = 44100, 768, 1024
# small windows so a few seconds of audio span several of them: 40 frames, 12 overlap (8 + 4)
def frames_s(n):
    return (n - 0.5) * HOP / SR  # seconds that round up to n frames


SMALL = WindowSettings(window_s=frames_s(40), overlap_s=frames_s(12), c2f_window_s=frames_s(24),
                       c2f_overlap_s=frames_s(6))
FAST = SamplingOptions(sampling_steps=3)
DETERMINISTIC = SamplingOptions(sampling_steps=4, temperature=0.0, mask_temperature=0.0)


@pytest.fixture(scope="module")
def codes(tiny_interface):
    audio = tiny_interface.preprocess_audio(tone(seconds=2.5), SR)
    return tiny_interface.encode_audio(audio)  # (1, 14, 144)


def balanced_mask(shape, seed=0):
    return MaskRecipe.from_json("balanced").build(shape, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n_frames", [30, 144, 1000, 41, 40])
@pytest.mark.parametrize("loop", [False, True])
def test_windows_commit_every_frame_once_after_their_decided_left_context(n_frames, loop):
    window, context, lookahead = 40, 8, 4
    plan = plan_windows(n_frames, window, context, lookahead, loop)
    decided = np.zeros(n_frames, bool)
    for k, w in enumerate(plan):
        assert w.length == min(window, n_frames) or (k == len(plan) - 1 and w.length < window)
        idx = (np.arange(w.length) + w.start) % n_frames
        committed = idx[w.commit_from:w.commit_to]
        assert not decided[committed].any()  # nothing is decided twice
        if k > 0:
            left = idx[max(0, w.commit_from - context):w.commit_from]
            assert len(left) == context and decided[left].all()  # decided left neighbours are there
        decided[committed] = True
    assert decided.all()
    processed = sum(w.length for w in plan)
    boundaries = len(plan) if loop and len(plan) > 1 else len(plan) - 1  # a long ring: the wrap too
    assert processed <= n_frames + boundaries * (context + lookahead)  # one overlap per boundary
    if loop and n_frames > window:  # the wrap point: the last window's right side is the ring's start
        last = plan[-1]
        right = (np.arange(last.commit_to, last.length) + last.start) % n_frames
        assert len(right) >= 1 and 0 in right


def test_a_clip_within_one_window_gives_the_reference_tokens(tiny_interface, codes):
    mask = balanced_mask(codes.shape)
    reference = tiny_interface.vamp(codes, mask, batch_size=2, seeds=[5, 6], sampling_steps=3)
    windowed = windowed_vamp(tiny_interface, codes, mask, [5, 6], FAST)  # default: 10 s windows
    assert torch.equal(windowed, reference)


def test_every_token_is_generated_beside_its_decided_left_neighbours_as_kept_cells(tiny_interface, codes):
    n = tiny_interface.coarse.n_codebooks
    z = codes[:, :n].expand(2, -1, -1).clone()
    mask = torch.ones_like(z)
    seen = []
    out = run_windows(tiny_interface, tiny_interface.coarse, z, mask, "coarse", [1, 2], FAST, SMALL,
                      record=lambda w, committed, kept: seen.append((w, committed, kept)))
    assert len(seen) >= 4
    window, context, _ = SMALL.frames("coarse", tiny_interface.s2t, 10.0)
    for k, (w, committed, kept_before) in enumerate(seen):
        assert not kept_before[committed].any()
        if k:
            left = torch.arange(w.start, w.start + w.commit_from)
            assert w.commit_from >= context and kept_before[left].all()
    assert not (out == MASK).any()
    # windows change the result against independent chunks only through the shared context
    with torch.inference_mode():
        chunked = tiny_interface._run_chunks(tiny_interface.coarse, z, mask, window, "coarse", [1, 2], FAST,
                                             pad=False)
    assert torch.equal(out[..., :seen[0][0].commit_to], chunked[..., :seen[0][0].commit_to])
    assert not torch.equal(out, chunked)


def test_kept_cells_stay_and_variations_equal_their_single_runs(tiny_interface, codes):
    mask = balanced_mask(codes.shape, seed=3)
    both, masked = windowed_vamp(tiny_interface, codes, mask, [10, 11], FAST, settings=SMALL, return_mask=True)
    kept = masked != MASK
    assert torch.equal(both[kept], codes.expand(2, -1, -1)[kept])
    alone = windowed_vamp(tiny_interface, codes, mask, [11], FAST, settings=SMALL)
    assert torch.equal(both[1:], alone)
    assert not torch.equal(both[0], both[1])


def test_rotating_a_loop_rotates_the_variation(tiny_interface, codes):
    z = codes[..., :37]
    mask = balanced_mask(z.shape, seed=1)
    out = windowed_vamp(tiny_interface, z, mask, [4], DETERMINISTIC, loop=True)
    for k in (1, 9, 20):
        rotated = windowed_vamp(tiny_interface, z.roll(k, -1), mask.roll(k, -1), [4], DETERMINISTIC, loop=True)
        assert torch.equal(rotated, out.roll(k, -1))


def test_a_loop_sees_across_its_wrap_point(tiny_interface, codes):
    """On a ring, the first frame's neighbours include the last: change the end, the start changes."""
    z = codes[..., :37].clone()
    mask = torch.ones_like(z)
    mask[..., 30:] = 0  # keep the end
    a = windowed_vamp(tiny_interface, z, mask, [4], DETERMINISTIC, loop=True)
    z2 = z.clone()
    z2[..., 33:] = (z2[..., 33:] + 17) % 1024
    b = windowed_vamp(tiny_interface, z2, mask, [4], DETERMINISTIC, loop=True)
    assert not torch.equal(a[..., :3], b[..., :3])


def test_a_long_loop_runs_in_windows_and_fills_every_frame(tiny_interface, codes):
    mask = torch.ones_like(codes)
    out, masked = windowed_vamp(tiny_interface, codes, mask, [2], FAST, settings=SMALL, loop=True, return_mask=True)
    assert out.shape == codes.shape and not (out == MASK).any()


def test_ring_codec_is_seamless_and_exact_length(tiny_interface):
    n_frames = 100
    audio = tiny_interface.preprocess_audio(tone(seconds=(n_frames + 1) * HOP / SR, freq_hz=SR / HOP * 2), SR)
    ring = audio[..., :n_frames * HOP]
    codes = encode_ring(tiny_interface, ring)
    assert codes.shape == (1, 14, n_frames)
    rotated = encode_ring(tiny_interface, np.roll(ring, 5 * HOP, axis=-1))
    assert (rotated == codes.roll(5, -1)).float().mean() > 0.99  # equal up to float rounding at the quantizer
    out = decode_ring(tiny_interface, codes)[0, 0].cpu().numpy()
    assert out.shape == (n_frames * HOP,)
    # played in a loop: the step across the wrap is no larger than the steps inside the ring
    steps = np.abs(np.diff(np.concatenate([out, out[:1]])))
    assert steps[-1] <= 4 * np.percentile(steps, 99)
    plain = tiny_interface.decode_codes(codes)[0, 0].cpu().numpy()
    middle = slice(45 * HOP, 55 * HOP)  # far from both ends the ring decodes like the clip
    assert np.allclose(out[middle], plain[middle], atol=1e-2)  # float rounding, amplified by random weights
