"""Specification of bridge.engine.Interface: the reference's API end to end, on tiny random weights."""

import math

import numpy as np
import pytest
import torch

from bridge.engine import pick_device

from conftest import tone

SR = 44100
HOP = 768
MASK = 1024


@pytest.fixture(scope="module")
def signal():
    from audiotools import AudioSignal

    return AudioSignal(tone(seconds=0.8)[0][None], SR)  # (1, 1, 35280)


def test_encode_gives_1_by_14_by_ceil_n_over_hop(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    assert z.shape == (1, 14, math.ceil(35280 / HOP)) == (1, 14, 46)
    assert 0 <= int(z.min()) and int(z.max()) < 1024


def test_encode_resamples_and_mixes_to_mono_first(tiny_interface):
    from audiotools import AudioSignal

    stereo_48k = AudioSignal(tone(seconds=0.5, sample_rate=48000, channels=2)[None], 48000)
    z = tiny_interface.encode(stereo_48k)
    assert z.shape == (1, 14, math.ceil(0.5 * SR / HOP))  # 22050 samples at 44.1 kHz -> 29 frames


def test_end_to_end_vamp_of_two_variations(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    mask = tiny_interface.build_mask(z, signal, rand_mask_intensity=0.9, periodic_prompt=7,
                                     upper_codebook_mask=3, seed=0)
    assert mask.shape == z.shape
    zv, masked = tiny_interface.vamp(z, mask, batch_size=2, return_mask=True, seed=1, sampling_steps=3)
    assert zv.shape == (2, 14, 46) and masked.shape == (2, 14, 46)
    assert not (zv == MASK).any()
    # the returned masked codes show MASK exactly where tokens were regenerated, the prompt elsewhere
    assert (masked[:, 4:] == MASK).all()  # the fine codebooks are all regenerated
    assert (masked[:, 3, 1:-1] == MASK).all()  # codebook 3 too, but for the chunk's seam frames
    assert (masked[:, :4, 0] != MASK).all() and (masked[:, :4, -1] != MASK).all()
    kept = masked != MASK
    assert torch.equal(zv[kept], z.expand(2, -1, -1)[kept])
    assert not torch.equal(zv[0], zv[1])
    out = tiny_interface.decode(zv)
    assert out.sample_rate == SR
    assert out.audio_data.shape == (2, 1, 46 * HOP)
    assert np.isfinite(out.audio_data.numpy()).all()


def test_coarse_vamp_changes_only_coarse_masked_cells(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    mask = tiny_interface.build_mask(z, periodic_prompt=5, upper_codebook_mask=3, seed=2)
    out, masked = tiny_interface.coarse_vamp(z, mask, return_mask=True, seed=3, sampling_steps=3)
    assert out.shape == (1, 14, 46) and masked.shape == (1, 4, 46)
    assert torch.equal(out[:, 4:], z[:, 4:])  # the fine codebooks pass through
    kept = masked != MASK
    assert torch.equal(out[:, :4][kept], z[:, :4][kept])
    assert (out[:, :4][~kept] != z[:, :4][~kept]).any()
    # a chunk whose mask keeps something keeps its first and last frame as well
    assert kept[0, :, 0].all() and kept[0, :, -1].all()


def test_coarse_vamp_fully_masked_chunk_keeps_no_seam_frames(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    mask = torch.ones_like(z)
    _, masked = tiny_interface.coarse_vamp(z, mask, return_mask=True, seed=3, sampling_steps=2)
    assert (masked == MASK).all()


def test_coarse_to_fine_regenerates_the_fine_codebooks_from_the_coarse(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    out = tiny_interface.coarse_to_fine(z[:, :4], seed=4)  # coarse codes only: fine rows are added
    assert out.shape == (1, 14, 46)
    assert torch.equal(out[:, :4], z[:, :4])
    assert not (out == MASK).any()
    again = tiny_interface.coarse_to_fine(z, seed=4)
    assert torch.equal(out, again)  # the fine input does not matter when all of it is regenerated


def test_coarse_to_fine_pads_to_whole_3_second_chunks_and_trims(tiny_interface):
    z = torch.randint(0, 1024, (1, 14, 200), generator=torch.Generator().manual_seed(0))  # 173 + 27
    out, masked = tiny_interface.coarse_to_fine(z, return_mask=True, seed=5, sampling_steps=1)
    assert out.shape == masked.shape == (1, 14, 200)
    assert torch.equal(out[:, :4], z[:, :4])
    assert (masked[:, 4:] == MASK).all() and torch.equal(masked[:, :4], z[:, :4])


def test_seconds_and_frames(tiny_interface):
    assert tiny_interface.s2t(10) == 575
    assert tiny_interface.s2t(3) == 173
    assert tiny_interface.s2t(0) == 0
    assert tiny_interface.t2s(575) == pytest.approx(575 * HOP / SR)
    for frames in (1, 57, 173, 575):
        assert tiny_interface.s2t(tiny_interface.t2s(frames)) == frames
    assert tiny_interface.s2t2s(10) == pytest.approx(575 * HOP / SR)


def test_pick_device_honours_an_explicit_cpu():
    assert pick_device("cpu") == torch.device("cpu")


def test_pick_device_refuses_cuda_when_it_is_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("VAMPBRIDGE_DEVICE", raising=False)
    with pytest.raises(RuntimeError, match=r"device 'cuda' was asked for but CUDA is not available here; use 'cpu'"):
        pick_device("cuda")


def test_pick_device_reads_the_environment(monkeypatch):
    monkeypatch.setenv("VAMPBRIDGE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_reference_tutorial_code_path_runs(tiny_interface, signal):
    interface = tiny_interface
    z = interface.encode(signal)
    mask = interface.build_mask(z, signal, rand_mask_intensity=1.0, periodic_prompt=13, upper_codebook_mask=3)
    zv, mask_z = interface.coarse_vamp(z, mask=mask, return_mask=True, gen_fn=interface.coarse.generate,
                                       sampling_steps=4)
    zv = interface.coarse_to_fine(zv)
    out = interface.to_signal(zv)
    assert zv.shape == (1, 14, 46) and mask_z.shape == (1, 4, 46)
    assert out.audio_data.shape == (1, 1, 46 * HOP)


def test_gen_fn_other_than_the_coarse_models_generate_is_refused(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    with pytest.raises(ValueError, match="gen_fn must be None or interface.coarse.generate"):
        tiny_interface.coarse_vamp(z, torch.ones_like(z), gen_fn=lambda *a, **k: None)


def test_model_generate_fills_mask_cells_like_the_reference(tiny_interface):
    codes = torch.randint(0, 1024, (2, 4, 12), generator=torch.Generator().manual_seed(1))
    codes[:, :, 4:8] = MASK
    mask = (codes == MASK).long()
    kwargs = dict(codec=tiny_interface.codec, time_steps=12, start_tokens=codes, mask=mask, return_signal=False,
                  seed=7, _sampling_steps=3)
    out = tiny_interface.coarse.generate(**kwargs)
    again = tiny_interface.coarse.generate(**kwargs)
    assert torch.equal(out, again)
    assert not (out == MASK).any()
    assert torch.equal(out[:, :, :4], codes[:, :, :4]) and torch.equal(out[:, :, 8:], codes[:, :, 8:])


def test_unknown_sampling_keyword_is_refused(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    with pytest.raises(ValueError, match=r"unknown sampling option\(s\) \['temperture'\]"):
        tiny_interface.vamp(z, torch.ones_like(z), temperture=0.5)


def test_make_beat_mask_keeps_frames_around_the_beats_of_a_click_track(tiny_interface):
    from audiotools import AudioSignal

    sr, bpm = 44100, 120
    audio = np.zeros(sr * 4, dtype=np.float32)
    for k in range(8):  # a click every 0.5 s
        start = int(k * 60 / bpm * sr)
        audio[start:start + 200] = np.hanning(200)
    mask = tiny_interface.make_beat_mask(AudioSignal(audio[None, None], sr), before_beat_s=0.0, after_beat_s=0.05)
    assert mask.shape == (1, 14, tiny_interface.s2t(4.0))
    kept = (mask[0, 0] == 0).nonzero().flatten().tolist()
    for k in range(1, 8):
        beat_frame = round(k * 0.5 * sr / 768)
        assert any(abs(f - beat_frame) <= 2 for f in kept), f"beat {k} at frame {beat_frame} not kept"
    assert (mask == 1).float().mean() > 0.7  # most frames are regenerated


def test_lora_load_merges_a_fine_tune_and_changes_the_logits(tiny_models, tmp_path):
    from bridge.engine import Interface

    interface = Interface(coarse_ckpt=tiny_models / "coarse.pth", coarse2fine_ckpt=tiny_models / "c2f.pth",
                          codec_ckpt=tiny_models / "codec.pth", device="cpu")
    codes = torch.randint(0, 1024, (1, 4, 20))
    before = interface.coarse.forward(codes)
    state = torch.load(tiny_models / "coarse.pth", weights_only=True)
    w = state["state_dict"]["transformer.layers.0.self_attn.w_qs.weight"]
    lora = {"transformer.layers.0.self_attn.w_qs.lora_A": torch.randn(8, w.shape[1]),
            "transformer.layers.0.self_attn.w_qs.lora_B": torch.randn(w.shape[0], 8)}
    torch.save({"state_dict": lora, "metadata": {"kwargs": {}}}, tmp_path / "coarse.pth")
    interface.lora_load(coarse_ckpt=tmp_path / "coarse.pth")
    after = interface.coarse.forward(codes)
    assert not torch.allclose(before, after)
    expected = w + lora["transformer.layers.0.self_attn.w_qs.lora_B"] @ lora["transformer.layers.0.self_attn.w_qs.lora_A"] / 8
    assert torch.allclose(interface.coarse.transformer.layers[0].self_attn.w_qs.weight, expected, atol=1e-5)


def test_coarse_to_fine_honours_the_references_sampling_steps_spelling(tiny_interface):
    from bridge.engine.sampler import Trace

    z = torch.randint(0, 1024, (1, 14, 20))
    trace = Trace()
    tiny_interface.coarse_to_fine(z, _sampling_steps=3, seed=0, trace=trace)
    assert len(trace.runs[0]["steps"]) == 3
    trace = Trace()
    tiny_interface.coarse_to_fine(z, seed=0, trace=trace)
    assert len(trace.runs[0]["steps"]) == 12  # called on its own: the sampler's default, as in the reference
    trace = Trace()
    tiny_interface.vamp(z, torch.ones_like(z), seed=0, sampling_steps=1, trace=trace)
    assert [len(run["steps"]) for run in trace.runs if run["stage"] == "c2f"] == [2]  # vamp passes 2


def test_feedback_passes_re_vamp_the_previous_output_under_the_same_mask(tiny_interface, signal):
    z = tiny_interface.encode(signal)
    mask = torch.zeros_like(z)
    mask[:, :, 10:16] = 1  # six frames in the middle
    one = tiny_interface.vamp(z, mask, seed=4, sampling_steps=2)
    two, masked_two = tiny_interface.vamp(z, mask, return_mask=True, seed=4, sampling_steps=2, feedback_steps=2)
    outside = torch.ones(46, dtype=torch.bool)
    outside[10:16] = False
    assert torch.equal(two[:, :, outside], z[:, :, outside])  # only the masked frames ever change
    assert not torch.equal(two, one)  # the second pass re-vamped the first one's output
    assert torch.equal((masked_two[0] == MASK).any(dim=0), ~outside)  # the mask, not rolled
    # the second pass starts from the first pass's tokens: a coarse vamp of `one` with its seeds
    first_pass = tiny_interface.coarse_vamp(z, mask, seeds=[4], sampling_steps=2)
    second_pass = tiny_interface.coarse_vamp(first_pass, mask, seeds=[4 + 7919], sampling_steps=2)
    assert torch.equal(two[:, :4], second_pass[:, :4])


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")  # raised inside torch's compiler
def test_compiled_transformers_compute_what_the_eager_ones_do(tiny_models, tiny_interface, signal, monkeypatch):
    """`compile=True` (for CUDA users) must run on every device; a CPU checks the graphs here."""
    from bridge.engine import Interface

    monkeypatch.setenv("VAMPBRIDGE_COMPILE", "1")  # None reads the environment
    compiled = Interface(coarse_ckpt=tiny_models / "coarse.pth", coarse2fine_ckpt=tiny_models / "c2f.pth",
                         codec_ckpt=tiny_models / "codec.pth", device="cpu")
    assert compiled.compile_layers and not tiny_interface.compile_layers
    z = tiny_interface.encode(signal)
    with torch.inference_mode():
        for name in ("coarse", "c2f"):
            eager_model, compiled_model = getattr(tiny_interface, name), getattr(compiled, name)
            codes = z[:, :eager_model.n_codebooks]
            torch.testing.assert_close(compiled_model.hidden(codes), eager_model.hidden(codes), rtol=1e-4, atol=1e-4)
    mask = compiled.build_mask(z, periodic_prompt=5, upper_codebook_mask=3, seed=2)
    out, masked = compiled.vamp(z, mask, return_mask=True, seed=3, sampling_steps=2)
    assert not (out == MASK).any() and torch.equal(out[masked != MASK], z[masked != MASK])


@pytest.mark.parametrize("level", [0.05, 3.0])  # 3.0: the -24 LUFS gain leaves peaks above 1
def test_preprocessing_is_the_references_chain_of_audiotools_calls(tiny_interface, level):
    from audiotools import AudioSignal

    rng = np.random.default_rng(5)
    audio = (rng.standard_normal((1, 2, 43200)) * level).astype(np.float32)
    audio[..., 20000] = 8 * level  # a peak
    signal = AudioSignal(torch.from_numpy(audio), 48000)
    expected = signal.clone().resample(SR).to_mono().normalize(-24.0).ensure_max_of_audio(1.0).audio_data
    # then right-padded with silence to a whole number of hops, as the reference's codec does
    expected = torch.nn.functional.pad(expected, (0, math.ceil(39690 / HOP) * HOP - 39690))
    ours = tiny_interface._preprocess(signal).audio_data
    assert ours.shape == expected.shape == (1, 1, 52 * HOP)
    assert torch.allclose(ours, expected, rtol=1e-5, atol=1e-7)
    # the array entry point (pedalboard resamples) applies the same loudness and peak steps
    at_44k = signal.clone().resample(SR)
    array_path = tiny_interface.preprocess_audio(at_44k.audio_data[0].numpy(), SR)
    expected_44k = at_44k.to_mono().normalize(-24.0).ensure_max_of_audio(1.0).audio_data[0].numpy()
    np.testing.assert_allclose(array_path, expected_44k, rtol=1e-5, atol=1e-7)


def test_one_mask_serves_a_batch_of_codes_in_coarse_vamp(tiny_interface, signal):
    z = tiny_interface.encode(signal).expand(2, -1, -1)
    mask = tiny_interface.build_mask(z[:1], periodic_prompt=5, upper_codebook_mask=3, seed=2)  # (1, 14, T)
    out = tiny_interface.coarse_vamp(z, mask, seeds=[3, 4], sampling_steps=2)
    alone = tiny_interface.coarse_vamp(z[1:], mask, seed=4, sampling_steps=2)
    assert out.shape == (2, 14, 46) and torch.equal(out[1], alone[0])
