"""Specification of the reference's API surface: code written for VampNet runs with
`import bridge.engine as vampnet`, and these doors lead into the same modules the fast paths use."""


import numpy as np
import pytest
import torch

import bridge.engine as vampnet
from conftest import tone

SR = 44100
HOP = 768
MASK = 1024


@pytest.fixture(scope="module")
def interface(tiny_models):
    """A private Interface: tests here move it between dtypes and swap its models."""
    return vampnet.interface.Interface(coarse_ckpt=tiny_models / "coarse.pth", coarse2fine_ckpt=tiny_models / "c2f.pth",
                                       codec_ckpt=tiny_models / "codec.pth", device="cpu")


@pytest.fixture(scope="module")
def signal():
    from audiotools import AudioSignal

    return AudioSignal(tone(seconds=0.8)[0][None], SR)  # (1, 1, 35280): 46 frames, not a whole hop


# --- the import ------------------------------------------------------------------------------------


def test_the_references_module_names_resolve():
    assert vampnet.interface.Interface is vampnet.Interface
    assert callable(vampnet.interface.signal_concat)
    for name in ("linear_random", "inpaint", "periodic_mask", "dropout", "codebook_unmask", "codebook_mask",
                 "onset_mask", "apply_mask", "mask_and", "mask_or", "full_mask", "empty_mask", "random"):
        assert callable(getattr(vampnet.mask, name)), name
        assert getattr(vampnet.interface, name) is getattr(vampnet.mask, name)  # `from .mask import *` there


def test_signal_concat_joins_signals_along_time(signal):
    joined = vampnet.interface.signal_concat([signal, signal])
    assert joined.sample_rate == SR and joined.audio_data.shape == (1, 1, 2 * 35280)
    assert torch.equal(joined.audio_data[..., 35280:], signal.audio_data)


# --- Interface: a torch Module with the reference's constructor --------------------------------------


def test_interface_is_a_torch_module_holding_the_three_models(interface):
    assert isinstance(interface, torch.nn.Module)
    assert interface.eval() is interface and not interface.training
    keys = interface.state_dict().keys()
    assert any(k.startswith("codec.") for k in keys) and any(k.startswith("coarse.") for k in keys)
    assert any(k.startswith("c2f.") for k in keys)
    n_parameters = sum(p.numel() for p in interface.parameters())
    assert n_parameters == sum(sum(p.numel() for p in m.parameters())
                               for m in (interface.codec, interface.coarse, interface.c2f))
    # derived inference tables are buffers that travel with .to(), not weights in the state dict
    assert not any("_embedding_tables" in k or "w_qkv" in k or "_latent_tables" in k for k in keys)


def test_positional_constructor_order_is_the_references(tiny_models):
    # coarse, coarse LoRA, coarse-to-fine, its LoRA, codec, wavebeat, device, chunk sizes
    made = vampnet.interface.Interface(tiny_models / "coarse.pth", None, tiny_models / "c2f.pth", None,
                                       tiny_models / "codec.pth", None, "cpu", 5, 2)
    assert made.coarse.n_codebooks == 4 and made.c2f.n_codebooks == 14
    assert (made.coarse.chunk_size_s, made.c2f.chunk_size_s) == (5, 2)
    assert made.codec_path == tiny_models / "codec.pth"
    assert made.coarse_path == tiny_models / "coarse.pth" and made.c2f_path == tiny_models / "c2f.pth"
    assert made.loudness == -24.0 and made.device == torch.device("cpu")


def test_default_loads_the_bundled_set_with_a_one_line_untrained_note(monkeypatch, capsys):
    import bridge.models

    monkeypatch.delenv("VAMPBRIDGE_MODEL", raising=False)
    monkeypatch.setattr(bridge.models, "_warned_bundled", False)
    default = vampnet.interface.Interface.default()
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and "untrained" in note[0] and "vampbridge models fetch" in note[0]
    assert default.codec_path.parent == bridge.models.models_dir() / bridge.models.BUNDLED_NAME
    assert vampnet.interface.Interface.available_models() == ["default"]


def test_default_prefers_the_installed_released_set(tiny_models, monkeypatch, tmp_path, capsys):
    import shutil

    import bridge.models

    monkeypatch.setenv("VAMPBRIDGE_MODELS_DIR", str(tmp_path))
    monkeypatch.delenv("VAMPBRIDGE_MODEL", raising=False)
    shutil.copytree(tiny_models, tmp_path / bridge.models.RELEASED_NAME)
    (tmp_path / "vampnet" / "loras" / "jazz").mkdir(parents=True)
    shutil.copy(tiny_models / "coarse.pth", tmp_path / "vampnet" / "loras" / "jazz" / "coarse.pth")
    monkeypatch.setattr(bridge.models, "_warned_bundled", False)
    default = vampnet.interface.Interface.default()
    assert "untrained" not in capsys.readouterr().err
    assert default.codec_path == tmp_path / "vampnet" / "codec.pth"
    assert vampnet.interface.Interface.available_models() == ["jazz", "default"]


def test_load_finetuned_merges_a_fine_tune_and_default_goes_back(tiny_models, tmp_path):
    import shutil

    shutil.copytree(tiny_models, tmp_path / "set")
    state = torch.load(tiny_models / "coarse.pth", weights_only=True)
    w = state["state_dict"]["transformer.layers.0.self_attn.w_qs.weight"]
    lora = {"transformer.layers.0.self_attn.w_qs.lora_A": torch.randn(8, w.shape[1]),
            "transformer.layers.0.self_attn.w_qs.lora_B": torch.randn(w.shape[0], 8)}
    (tmp_path / "set" / "loras" / "dub").mkdir(parents=True)
    torch.save(lora, tmp_path / "set" / "loras" / "dub" / "coarse.pth")  # a flat LoRA file, no c2f
    made = vampnet.interface.Interface(coarse_ckpt=tmp_path / "set" / "coarse.pth", codec_ckpt=tmp_path / "set" / "codec.pth",
                                       coarse2fine_ckpt=tmp_path / "set" / "c2f.pth", device="cpu")
    codes = torch.randint(0, 1024, (1, 4, 20), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = made.coarse(codes)
        c2f_before = made.c2f
        made.load_finetuned("dub")
        tuned = made.coarse(codes)
        assert made.c2f is c2f_before  # the fine-tune has no c2f.pth: the base stays
        made.load_finetuned("default")
        back = made.coarse(codes)
    assert not torch.allclose(before, tuned)
    torch.testing.assert_close(back, before)
    assert made.available_models() == ["dub", "default"]  # on an interface: the set it was loaded from
    with pytest.raises(ValueError, match=r"'rock' is not a model of .*available: \['dub', 'default'\]"):
        made.load_finetuned("rock")


def test_reload_replaces_a_model_and_skips_a_file_already_loaded(tiny_models, tmp_path):
    from bridge.engine import make_random

    other = make_random(tmp_path / "other", size="tiny", seed=5)
    made = vampnet.interface.Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tiny_models / "codec.pth",
                                       coarse2fine_ckpt=tiny_models / "c2f.pth", device="cpu")
    made.set_chunk_size(4.0)
    coarse, c2f = made.coarse, made.c2f
    made.reload(coarse_ckpt=tiny_models / "coarse.pth")
    assert made.coarse is coarse  # already loaded: not read again
    made.reload(coarse_ckpt=other / "coarse.pth", c2f_ckpt=other / "c2f.pth")
    assert made.coarse is not coarse and made.c2f is not c2f
    assert made.coarse_path == other / "coarse.pth" and made.c2f_path == other / "c2f.pth"
    assert made.coarse.chunk_size_s == 4.0  # the chunk size survives a reload
    codes = torch.randint(0, 1024, (1, 4, 9))
    with torch.no_grad():
        assert not torch.allclose(coarse(codes), made.coarse(codes))


def test_lora_load_without_a_base_file_says_what_to_do(tiny_models):
    from bridge.engine.checkpoint import load_codec, load_transformer

    made = vampnet.interface.Interface.from_modules(load_codec(tiny_models / "codec.pth"),
                                                    load_transformer(tiny_models / "coarse.pth"), device="cpu")
    with pytest.raises(RuntimeError, match="no coarse model file to merge .* pass full_ckpts=True"):
        made.lora_load(coarse_ckpt=tiny_models / "coarse.pth")
    made.lora_load(coarse_ckpt=tiny_models / "coarse.pth", full_ckpts=True)
    assert made.coarse_path == tiny_models / "coarse.pth"
    with pytest.raises(RuntimeError, match="built from modules in memory"):
        made.load_finetuned("default")


def test_set_chunk_size_sets_the_coarse_models_chunk_and_refuses_nonsense(interface):
    old = interface.coarse.chunk_size_s
    try:
        interface.set_chunk_size(0.5)
        assert interface.coarse.chunk_size_s == 0.5
        z = torch.randint(0, 1024, (1, 14, 80))
        _, masked = interface.coarse_vamp(z, torch.ones_like(z) * 0 + 1, return_mask=True, seed=0, sampling_steps=1)
        assert masked.shape == (1, 4, 80)
    finally:
        interface.set_chunk_size(old)
    for bad in (0, -1.0, float("nan"), "10"):
        with pytest.raises(ValueError, match="chunk_size_s=.* must be a positive number of seconds"):
            interface.set_chunk_size(bad)


def test_visualize_codes_returns_a_matplotlib_figure_of_the_grid(interface):
    from matplotlib.figure import Figure

    z = torch.randint(0, 1024, (1, 14, 57))
    z[:, :, 10:20] = MASK
    figure = interface.visualize_codes(z, mask=(z == MASK).long())
    assert isinstance(figure, Figure)
    axes = figure.get_axes()
    assert len(axes) == 2 and axes[0].get_title() == "codes"
    image = axes[0].get_images()[0]
    assert image.get_array().shape == (14, 57) and image.get_array().mask[:, 10:20].all()
    assert axes[1].get_xlim() == pytest.approx((0.0, 57 * HOP / SR))


def click_track(seconds=4.0, bpm=120):
    audio = np.zeros(int(SR * seconds), dtype=np.float32)
    for k in range(int(seconds * bpm / 60)):
        start = int((k + 0.25) * 60 / bpm * SR)
        audio[start:start + 200] = np.hanning(200)
    return audio


def test_snap_to_beats_trims_to_the_first_and_last_beat(interface):
    from audiotools import AudioSignal

    sig = AudioSignal(click_track()[None, None], SR)
    snapped = interface.snap_to_beats(sig)
    # the first click is at 0.125 s, the last at 3.625 s: about 3.5 s remain, starting on a click
    assert 3.3 < snapped.duration < 3.7
    start = round(SR * (sig.duration - snapped.duration))  # how much was cut in total
    assert start > 0
    assert float(snapped.audio_data[0, 0, :HOP * 3].abs().max()) > 0.5  # a click within 3 frames of the start
    with pytest.raises(ValueError, match="snapping needs at least two"):
        interface.snap_to_beats(AudioSignal(np.zeros((1, 1, 2000), dtype=np.float32), SR))


def test_make_beat_mask_defaults_are_the_references(interface):
    from audiotools import AudioSignal

    sig = AudioSignal(click_track()[None, None], SR)
    default = interface.make_beat_mask(sig)
    explicit = interface.make_beat_mask(sig, before_beat_s=0.0, after_beat_s=0.02)
    assert torch.equal(default, explicit)
    kept = (default[0, 0] == 0).nonzero().flatten()
    assert 7 * 2 <= len(kept) <= 8 * 2  # 0.02 s after each beat = ceil(1.15) = 2 frames, none before


# --- bugs: gradients after inference, tensors that must travel with .to() -----------------------------


def test_forward_with_gradients_after_a_vamp_works_and_reaches_the_weights(interface):
    z = torch.randint(0, 1024, (1, 14, 20), generator=torch.Generator().manual_seed(0))
    interface.vamp(z, torch.ones_like(z), seed=0, sampling_steps=1)  # caches built in inference mode
    codes = z[:, :4]
    logits = interface.coarse.forward(codes)  # outside no_grad
    logits.logsumexp(dim=1).mean().backward()
    for p in (interface.coarse.transformer.layers[0].self_attn.relative_attention_bias.weight,
              interface.coarse.transformer.layers[0].self_attn.w_qs.weight,
              interface.coarse.embedding.out_proj.weight, interface.coarse.classifier.layers[0].weight):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0
    interface.coarse.zero_grad(set_to_none=True)
    with torch.no_grad():
        torch.testing.assert_close(interface.coarse.forward(codes), logits.detach(), atol=1e-4, rtol=1e-4)


def _plain_tensors(module):
    """Every tensor a module holds outside its parameters and buffers (including in dicts)."""
    found = []
    for sub_name, sub in module.named_modules():
        for name, value in vars(sub).items():
            if name in ("_parameters", "_buffers", "_modules"):
                continue
            values = value.values() if isinstance(value, dict) else [value]
            found += [f"{sub_name}.{name}" for v in values if isinstance(v, torch.Tensor)]
    return found


def test_every_tensor_the_models_use_moves_and_casts_with_to(tiny_models):
    made = vampnet.interface.Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tiny_models / "codec.pth",
                                       coarse2fine_ckpt=tiny_models / "c2f.pth", device="cpu")
    codes = torch.randint(0, 1024, (1, 14, 12), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = {name: getattr(made, name).hidden(codes[:, :getattr(made, name).n_codebooks]).double()
                    for name in ("coarse", "c2f")}
        audio32 = made.decode_codes(codes)
    for module in (made.codec, made.coarse, made.c2f):  # each model on its own, as `interface.coarse.to(...)`
        module.to(torch.float64)
        assert _plain_tensors(module) == []  # the position-bias cache is emptied by .to()
        assert all(t.dtype == torch.float64 for t in module.buffers() if t.is_floating_point())
    with torch.inference_mode():
        for name in ("coarse", "c2f"):
            model = getattr(made, name)
            got = model.hidden(codes[:, :model.n_codebooks])
            assert got.dtype == torch.float64
            torch.testing.assert_close(got, expected[name], atol=1e-4, rtol=1e-4)
        audio64 = made.decode_codes(codes)
    assert audio64.dtype == torch.float64
    made.to(torch.float32)  # the whole interface, as a torch Module
    assert all(t.dtype == torch.float32 for t in made.buffers() if t.is_floating_point())
    made.to("meta")
    assert all(t.device.type == "meta" for m in (made.codec, made.coarse, made.c2f) for t in m.buffers())
    assert made.device == torch.device("meta")
    assert audio32.shape == audio64.shape


def test_load_state_dict_rebuilds_the_inference_tables(tiny_models, tmp_path):
    from bridge.engine import make_random

    made = vampnet.interface.Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tiny_models / "codec.pth",
                                       coarse2fine_ckpt=tiny_models / "c2f.pth", device="cpu")
    other = vampnet.interface.Interface(coarse_ckpt=make_random(tmp_path / "other-set", seed=9) / "coarse.pth",
                                        codec_ckpt=tmp_path / "other-set" / "codec.pth",
                                        coarse2fine_ckpt=tmp_path / "other-set" / "c2f.pth", device="cpu")
    z = torch.randint(0, 1024, (1, 14, 16), generator=torch.Generator().manual_seed(8))
    mask = torch.ones_like(z)
    expected = other.vamp(z, mask, seed=2, sampling_steps=2)
    with torch.no_grad():
        coarse_logits = other.coarse(z[:, :4])
    made.load_state_dict(other.state_dict())  # codec and both transformers at once
    assert torch.equal(made.vamp(z, mask, seed=2, sampling_steps=2), expected)
    torch.testing.assert_close(made.decode_codes(z), other.decode_codes(z))
    fresh = vampnet.interface.Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tmp_path / "other-set" / "codec.pth",
                                        device="cpu")
    fresh.coarse.load_state_dict(other.coarse.state_dict())  # one model alone
    with torch.inference_mode():
        torch.testing.assert_close(fresh.coarse.cell_logits(fresh.coarse.hidden(z[:, :4]))[0, 0, [0, 0]],
                                   coarse_logits[0, :, [0, 0]].T)


def test_codec_chunk_size_follows_the_device_it_is_on(tiny_models, monkeypatch):
    from bridge.engine.codec import Codec

    made = vampnet.interface.Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tiny_models / "codec.pth",
                                       device="cpu")
    assert made.codec.chunk_frames == 287  # about 5 s on a CPU
    monkeypatch.setattr(Codec, "device", property(lambda self: torch.device("cuda")))
    assert made.codec.chunk_frames == 1723  # about 30 s on a CUDA GPU
    monkeypatch.undo()
    assert made.codec.chunk_frames == 287  # back on the CPU, back to the CPU's size
    made.codec.chunk_frames = 100  # an explicit size wins, and None returns to the device's
    assert made.codec.chunk_frames == 100
    made.codec.chunk_frames = None
    assert made.codec.chunk_frames == 287
    with pytest.raises(ValueError, match="chunk_frames=0 is invalid"):
        made.codec.chunk_frames = 0


# --- the codec's and the transformer's reference surfaces ----------------------------------------------


def test_codec_encode_returns_the_references_dict(interface, signal):
    sig = interface.preprocess(signal)
    assert sig.audio_data.shape[-1] % HOP == 0  # right-padded to whole hops, as the reference does
    out = interface.codec.encode(sig.samples, sig.sample_rate)
    assert set(out) == {"z", "codes", "latents", "length", "vq/commitment_loss", "vq/codebook_loss"}
    assert torch.equal(out["codes"], interface.encode(signal))
    assert out["codes"].shape == (1, 14, 46) and out["latents"].shape == (1, 14 * 8, 46)
    assert out["z"].shape == (1, interface.codec.config.latent_dim, 46) and out["length"] == 46 * HOP
    assert float(out["vq/commitment_loss"].detach()) > 0
    padded, length = interface.codec.preprocess(signal.audio_data, SR)
    assert padded.shape[-1] == 46 * HOP and length == 35280 and torch.equal(padded[..., 35280:], torch.zeros(1, 1, 46 * HOP - 35280))
    with pytest.raises(ValueError, match="audio at 48000 Hz given to a codec that works at 44100 Hz"):
        interface.codec.encode(sig.samples, 48000)


def test_codec_quantizer_round_trips_and_decode_takes_the_continuous_representation(tiny_models):
    # In float64: the random decoder amplifies float32 rounding (two summation orders) to ~4e-3.
    codec = vampnet.load_codec(tiny_models / "codec.pth").double().prepare()
    codes = torch.randint(0, 1024, (2, 14, 9), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        z_q, rows, same = codec.quantizer.from_codes(codes)
        assert same is codes and rows.shape == (2, 14 * 8, 9)
        z_q2, _, requantized = codec.quantizer.from_latents(rows)
        assert torch.equal(requantized, codes)
        torch.testing.assert_close(z_q2, z_q)
        torch.testing.assert_close(z_q, codec.latents_from_codes(codes), atol=1e-5, rtol=1e-5)
        audio = codec.decode(z_q)["audio"]
    assert audio.shape == (2, 1, 9 * HOP)
    torch.testing.assert_close(audio, codec.decode_codes(codes), atol=1e-9, rtol=0)


def test_transformer_forward_takes_latents_like_the_reference(interface):
    model = interface.coarse
    codes = torch.randint(0, 1024, (2, 4, 15), generator=torch.Generator().manual_seed(4))
    codes[:, :, 5:9] = MASK
    assert model.embedding.special_idxs == {"MASK": 1024}
    with torch.no_grad():
        latents = model.embedding.from_codes(codes, interface.codec)
        assert latents.shape == (2, 4 * 8, 15) and latents.is_floating_point()
        from_latents = model(latents)
        from_codes = model(codes)
    assert from_latents.shape == (2, 1024, 15 * 4)
    torch.testing.assert_close(from_latents, from_codes, atol=1e-4, rtol=1e-4)


def test_generate_without_start_tokens_makes_time_steps_frames_and_can_return_a_signal(interface):
    from audiotools import AudioSignal

    codes = interface.coarse.generate(codec=interface.codec, time_steps=10, return_signal=False, seed=1,
                                      _sampling_steps=[2, 1])
    assert codes.shape == (1, 4, 10) and not (codes == MASK).any()
    sig = interface.coarse.generate(codec=interface.codec, time_steps=10, seed=1, _sampling_steps=3)
    assert isinstance(sig, AudioSignal) and sig.audio_data.shape == (1, 1, 10 * HOP)
    with pytest.raises(TypeError, match="generate's first argument is the codec"):
        interface.coarse.generate(codes)
    same = interface.coarse.generate(codec=interface.codec, time_steps=10, return_signal=False, seed=1,
                                     _sampling_steps=3, debug=True, causal_weight=0.0)
    assert torch.equal(same, codes)  # [2, 1] sums to 3 steps; debug changes nothing
    with pytest.raises(ValueError, match="causal_weight=0.5 is not supported"):
        interface.coarse.generate(codec=interface.codec, time_steps=4, causal_weight=0.5)
    with pytest.raises(ValueError, match="cfg_guidance is not supported"):
        interface.coarse.generate(codec=interface.codec, time_steps=4, cfg_guidance=3.0)
    full = torch.cat([codes, torch.zeros(1, 10, 10, dtype=torch.long)], dim=1)
    fine = interface.c2f.generate(codec=interface.codec, start_tokens=full, return_signal=False, seed=1,
                                  _sampling_steps=2)
    assert torch.equal(fine[:, :4], codes) and not (fine == MASK).any()  # conditioning codebooks kept


def test_without_a_seed_torch_manual_seed_makes_runs_repeat_as_in_the_reference(interface):
    z = torch.randint(0, 1024, (1, 14, 12), generator=torch.Generator().manual_seed(6))
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        mask = vampnet.mask.linear_random(z, 0.7)
        runs.append((mask, interface.vamp(z, mask, sampling_steps=2),
                     interface.coarse.generate(codec=interface.codec, time_steps=6, return_signal=False,
                                               _sampling_steps=2)))
    for first, second in zip(*runs):
        assert torch.equal(first, second)
    torch.manual_seed(124)
    assert not torch.equal(interface.vamp(z, runs[0][0], sampling_steps=2), runs[0][1])


# --- vampnet.mask: tensors in, tensors out ----------------------------------------------------------------


def test_mask_functions_take_and_return_tensors_like_the_references():
    m = vampnet.mask
    z = torch.randint(0, 1024, (2, 14, 30))
    torch.manual_seed(0)
    assert torch.equal(m.linear_random(z, 0.0), torch.zeros_like(z)) and torch.equal(m.linear_random(z, 1.0), torch.ones_like(z))
    per_item = m.linear_random(z, torch.tensor([0.0, 1.0]))
    assert (per_item[0] == 0).all() and (per_item[1] == 1).all()
    inpainted = m.inpaint(z, 3, 4)
    assert (inpainted[:, :, :3] == 0).all() and (inpainted[:, :, -4:] == 0).all() and (inpainted[:, :, 3:-4] == 1).all()
    periodic = m.periodic_mask(z, 7, 1)
    assert (periodic[:, :, ::7] == 0).all() and int((periodic == 0).sum()) == 2 * 14 * 5
    rolled = m.periodic_mask(z, 7, 1, random_roll=True, generator=torch.Generator().manual_seed(1))
    assert int((rolled == 0).sum()) == 2 * 14 * 5
    wide = m.periodic_mask(z, 10, 3)
    assert wide[0, 0, :12].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    depth = m.codebook_mask(periodic, 3)
    assert (depth[:, 3:] == 1).all() and torch.equal(depth[:, :3], periodic[:, :3])
    assert (m.codebook_unmask(depth, 2)[:, :2] == 0).all() and m.codebook_unmask(depth, None) is depth
    assert torch.equal(m.mask_and(periodic, inpainted), torch.minimum(periodic, inpainted))
    assert torch.equal(m.mask_or(periodic, inpainted), torch.maximum(periodic, inpainted))
    dropped = m.dropout(periodic, 0.5, generator=torch.Generator().manual_seed(2))
    assert (dropped >= periodic).all() and torch.equal(dropped[0], dropped[1])
    masked, mask = m.apply_mask(z, depth, 1024)
    assert torch.equal(masked[depth == 1], torch.full_like(masked[depth == 1], 1024))
    assert torch.equal(masked[depth == 0], z[depth == 0]) and mask.dtype == torch.long
    for result in (per_item, inpainted, periodic, depth, dropped, m.random(z, 0.5), m.full_mask(z), m.empty_mask(z)):
        assert result.shape == z.shape and result.dtype == torch.long
    with pytest.raises(ValueError, match="masks must be the same shape"):
        m.mask_and(periodic, periodic[:1])


def test_onset_mask_keeps_frames_around_the_onsets_of_the_signal(interface):
    from audiotools import AudioSignal

    sig = AudioSignal(click_track(seconds=2.0)[None, None], SR)
    z = interface.encode(sig)
    mask = vampnet.mask.onset_mask(sig, z, interface, width=2)
    assert mask.shape == z.shape and mask.dtype == torch.long
    kept = (mask[0, 0] == 0).nonzero().flatten().tolist()
    for k in range(4):  # clicks at 0.125, 0.625, 1.125, 1.625 s
        frame = round((k + 0.25) * 0.5 * SR / HOP)
        assert any(abs(f - frame) <= 2 for f in kept), f"onset {k} at frame {frame} not kept"
    silent = AudioSignal(np.zeros((1, 1, SR), dtype=np.float32), SR)
    assert (vampnet.mask.onset_mask(silent, interface.encode(silent), interface) == 1).all()  # no onsets


# --- the low-level walk equals vamp ---------------------------------------------------------------------


def test_low_level_walk_through_the_modules_equals_vamp_token_for_token(interface, signal):
    """encode -> quantizer -> embedding -> transformer -> sampling -> decode by hand, as the
    reference's tutorial does, against the high-level `vamp` with the same seed."""
    codec, coarse, c2f = interface.codec, interface.coarse, interface.c2f
    sig = interface.preprocess(signal)
    z = codec.encode(sig.samples, sig.sample_rate)["codes"]  # (1, 14, 46)
    mask = vampnet.mask.linear_random(z, 0.8, generator=torch.Generator().manual_seed(0))
    mask = vampnet.mask.mask_and(mask, vampnet.mask.periodic_mask(z, 7, 1))
    mask = vampnet.mask.codebook_mask(mask, 3)
    seed = 11
    high = interface.vamp(z, mask, seed=seed, sampling_steps=4, temperature=1.0)

    # coarse: one chunk; a chunk that keeps anything keeps its first and last frame too
    cmask = mask[:, :coarse.n_codebooks].clone()
    cmask[:, :, 0] = cmask[:, :, -1] = 0
    z_masked, cmask = vampnet.mask.apply_mask(z[:, :coarse.n_codebooks], cmask, coarse.mask_token)
    with torch.no_grad():  # the transformer on the quantizer's codebooks, step 0's logits
        latents = coarse.embedding.from_codes(z_masked, codec)
        logits = coarse(latents)  # (1, vocab, T * 4)
        assert torch.equal(logits.argmax(dim=1), coarse(z_masked).argmax(dim=1))
    coarse_out = coarse.generate(codec=codec, time_steps=z.shape[-1], start_tokens=z_masked, mask=cmask,
                                 return_signal=False, seed=seed, sampling_steps=4, temperature=1.0)
    # coarse-to-fine: 46 frames fit one 173-frame chunk (padded with MASK-able cells, then trimmed)
    chunk = interface.s2t(c2f.chunk_size_s)
    fine_in = torch.nn.functional.pad(torch.cat([coarse_out, z[:, 4:]], dim=1), (0, chunk - 46))
    fine_mask = torch.nn.functional.pad(mask, (0, chunk - 46), value=1)
    low = c2f.generate(codec=codec, start_tokens=fine_in, mask=fine_mask, return_signal=False, seed=seed,
                       _sampling_steps=2, temperature=1.0)[..., :46]
    assert torch.equal(low, high)

    with torch.no_grad():  # decode: the reference's re-quantisation of the embeddings
        z_q, _, codes = codec.quantizer.from_latents(c2f.embedding.from_codes(low, codec))
        assert torch.equal(codes, low)
        audio = codec.decode(z_q)["audio"]
    torch.testing.assert_close(audio, interface.decode(high).audio_data, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(c2f.to_signal(low, codec).audio_data, interface.decode(high).audio_data)


# --- a notebook-style masking study through the reference's names ------------------------------------------


def test_masking_study_notebook_runs_on_the_bundled_default(monkeypatch, tmp_path):
    import runpy
    from pathlib import Path

    monkeypatch.delenv("VAMPBRIDGE_MODEL", raising=False)
    script = Path(__file__).resolve().parents[1] / "docs" / "examples" / "masking_study.py"
    monkeypatch.setenv("MASKING_STUDY_OUT", str(tmp_path))
    results = runpy.run_path(str(script), run_name="__main__")["results"]
    assert set(results) == {"density", "patterns", "periodic", "codebook_depth", "presets"}
    density = results["density"]
    ratios = [row["masked_fraction"] for row in density]
    assert ratios == sorted(ratios) and ratios[0] < 0.5 < ratios[-1]
    for study in results.values():
        for row in study:
            assert row["changed_fraction"] <= row["masked_fraction"] + 1e-9  # only masked cells change
            assert row["kept_cells_unchanged"]
            assert row["samples"] == row["frames"] * HOP
    depth = {row["upper_codebook_mask"]: row["masked_fraction"] for row in results["codebook_depth"]}
    assert depth[1] > depth[2] > depth[4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.png", "summary.json"]


def test_the_references_quick_start_runs_with_only_the_import_changed(monkeypatch, tmp_path):
    """The reference README's programmatic quick start, on the bundled default."""
    import random

    import audiotools as at

    from conftest import write_wav

    monkeypatch.delenv("VAMPBRIDGE_MODEL", raising=False)
    write_wav(tmp_path / "example.wav", tone(seconds=1.5, sample_rate=48000, channels=2), 48000)

    interface = vampnet.interface.Interface.default()
    finetuned_model_choices = interface.available_models()
    model_choice = random.choice(finetuned_model_choices)
    interface.load_finetuned(model_choice)
    signal = at.AudioSignal(str(tmp_path / "example.wav"))
    codes = interface.encode(signal)
    mask = interface.build_mask(codes, signal, periodic_prompt=7, upper_codebook_mask=3)
    output_tokens = interface.vamp(codes, mask, return_mask=False, temperature=1.0, typical_filtering=True)
    output_signal = interface.decode(output_tokens)
    output_signal.write(str(tmp_path / "output.wav"))

    assert finetuned_model_choices == ["default"]
    assert codes.shape == output_tokens.shape == (1, 14, 87)  # 1.5 s at 44.1 kHz: ceil(66150 / 768)
    kept = mask == 0
    assert torch.equal(output_tokens[kept], codes[kept])
    assert at.AudioSignal(str(tmp_path / "output.wav")).signal_length == 87 * HOP
