"""Specification of bridge.engine.checkpoint: the released .pth format, read and written.

Facts from docs/spec (vampnet-compat.md): a file is torch.save({"state_dict", "metadata": {"kwargs"}}),
weight-normed layers are stored as weight_g/weight_v or parametrizations.weight.original0/1,
LoRA pairs merge as W + (B @ A) / 8, and loading never unpickles code.
"""

import pytest
import torch

from bridge.engine import CheckpointError, Interface, load_codec, load_transformer, save_checkpoint
from bridge.engine.checkpoint import check_compatible, module_state_to_file_state
from bridge.engine.codec import Codec, CodecConfig
from bridge.engine.transformer import TransformerConfig, VampNetTransformer

TINY_CODEC = dict(encoder_dim=4, decoder_dim=64)
TINY_TRANSFORMER = dict(n_layers=2, n_heads=2, embedding_dim=16)
KINDS = {
    "codec": lambda: Codec(CodecConfig(**TINY_CODEC)),
    "coarse": lambda: VampNetTransformer(TransformerConfig(n_codebooks=4, n_conditioning_codebooks=0,
                                                           **TINY_TRANSFORMER)),
    "c2f": lambda: VampNetTransformer(TransformerConfig(n_codebooks=14, n_conditioning_codebooks=4,
                                                        **TINY_TRANSFORMER)),
}
COARSE_FULL = dict(n_codebooks=4, n_conditioning_codebooks=0, n_layers=20, n_heads=20, embedding_dim=1280,
                   vocab_size=1024, latent_dim=8)
C2F_FULL = dict(n_codebooks=14, n_conditioning_codebooks=4, n_layers=16, n_heads=20, embedding_dim=1280,
                vocab_size=1024, latent_dim=8)


def randomised(model, seed=0):
    """Every parameter random, norms and biases included, so a mix-up cannot hide behind ones/zeros."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.dim() <= 1 else 0.0))
    return model


def load_kind(kind, path, **kw):
    return load_codec(path) if kind == "codec" else load_transformer(path, **kw)


def assert_same_parameters(a, b, atol=1e-6):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], atol=atol, rtol=0, msg=key)


def rewrite_keys(path, new_path, rename):
    data = torch.load(path, weights_only=True)
    data["state_dict"] = {rename(k): v for k, v in data["state_dict"].items()}
    torch.save(data, new_path)
    return new_path


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_saved_checkpoint_loads_back_to_the_same_parameters(kind, tmp_path):
    model = randomised(KINDS[kind]())
    save_checkpoint(model, tmp_path / f"{kind}.pth")
    assert_same_parameters(model, load_kind(kind, tmp_path / f"{kind}.pth"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_saved_file_uses_the_weight_g_weight_v_spelling(kind, tmp_path):
    save_checkpoint(randomised(KINDS[kind]()), tmp_path / "m.pth")
    data = torch.load(tmp_path / "m.pth", weights_only=True)
    keys = data["state_dict"].keys()
    assert data["metadata"]["kwargs"]["n_codebooks"] == (4 if kind == "coarse" else 14)
    head_or_conv = "encoder.block.0" if kind == "codec" else "classifier.layers.0"
    assert f"{head_or_conv}.weight_g" in keys and f"{head_or_conv}.weight_v" in keys
    assert f"{head_or_conv}.weight" not in keys
    assert not any(".parametrizations." in k for k in keys)
    # weight_g is the per-output-channel norm of weight_v (shape (out, 1, 1)) for a freshly split weight
    g, v = data["state_dict"][f"{head_or_conv}.weight_g"], data["state_dict"][f"{head_or_conv}.weight_v"]
    assert g.shape == (v.shape[0], 1, 1)
    torch.testing.assert_close(g.flatten(), v.flatten(1).norm(dim=1))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_newer_parametrizations_spelling_loads_to_the_same_weights(kind, tmp_path):
    model = randomised(KINDS[kind]())
    save_checkpoint(model, tmp_path / "old.pth")

    def newer(key):
        return (key.replace(".weight_g", ".parametrizations.weight.original0")
                .replace(".weight_v", ".parametrizations.weight.original1"))

    rewrite_keys(tmp_path / "old.pth", tmp_path / "new.pth", newer)
    assert any(".parametrizations.weight.original1" in k
               for k in torch.load(tmp_path / "new.pth", weights_only=True)["state_dict"])
    assert_same_parameters(model, load_kind(kind, tmp_path / "new.pth"))


def test_weight_norm_pair_with_any_scale_of_v_folds_to_g_times_direction(tmp_path):
    """weight = g * v / ||v||: scaling v by 3 must not change the loaded weight."""
    model = randomised(KINDS["coarse"]())
    save_checkpoint(model, tmp_path / "m.pth")
    data = torch.load(tmp_path / "m.pth", weights_only=True)
    data["state_dict"]["classifier.layers.0.weight_v"] *= 3.0
    torch.save(data, tmp_path / "scaled.pth")
    assert_same_parameters(model, load_transformer(tmp_path / "scaled.pth"), atol=1e-5)


# --- LoRA ----------------------------------------------------------------------------------------


def with_lora(path, new_path, layers, seed=1, zero_b=False, scale=1.0):
    """Copy a transformer file adding lora_A (8 x in) / lora_B (out x 8) beside each named layer."""
    data = torch.load(path, weights_only=True)
    g = torch.Generator().manual_seed(seed)
    added = {}
    for layer in layers:
        out_dim, in_dim = data["state_dict"][f"{layer}.weight"].shape
        a = torch.randn(8, in_dim, generator=g) * scale
        b = torch.zeros(out_dim, 8) if zero_b else torch.randn(out_dim, 8, generator=g) * scale
        data["state_dict"][f"{layer}.lora_A"], data["state_dict"][f"{layer}.lora_B"] = a, b
        added[layer] = (a, b)
    new_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, new_path)
    return added


def test_lora_pair_adds_b_at_a_over_8_to_the_weight(tmp_path):
    save_checkpoint(randomised(KINDS["coarse"]()), tmp_path / "coarse.pth")
    plain = load_transformer(tmp_path / "coarse.pth")
    layer = "transformer.layers.1.self_attn.w_qs"
    (a, b), = with_lora(tmp_path / "coarse.pth", tmp_path / "lora.pth", [layer]).values()
    tuned = load_transformer(tmp_path / "lora.pth")
    w = plain.state_dict()[f"{layer}.weight"]
    torch.testing.assert_close(tuned.state_dict()[f"{layer}.weight"], w + (b @ a) / 8, atol=1e-6, rtol=0)
    # every other parameter is untouched
    for key, value in plain.state_dict().items():
        if key != f"{layer}.weight":
            torch.testing.assert_close(tuned.state_dict()[key], value, atol=0, rtol=0, msg=key)


def test_lora_with_all_zero_b_is_the_plain_model(tmp_path):
    save_checkpoint(randomised(KINDS["c2f"]()), tmp_path / "c2f.pth")
    layers = [f"transformer.layers.0.{n}" for n in
              ("self_attn.w_qs", "self_attn.w_vs", "self_attn.fc", "feed_forward.w_1", "feed_forward.w_2")]
    with_lora(tmp_path / "c2f.pth", tmp_path / "zero.pth", layers, zero_b=True)
    assert_same_parameters(load_transformer(tmp_path / "c2f.pth"), load_transformer(tmp_path / "zero.pth"), atol=0)


def test_lora_of_another_rank_is_scaled_by_one_over_its_rank(tmp_path):
    save_checkpoint(randomised(KINDS["coarse"]()), tmp_path / "coarse.pth")
    layer = "transformer.layers.0.feed_forward.w_2"
    data = torch.load(tmp_path / "coarse.pth", weights_only=True)
    w = load_transformer(tmp_path / "coarse.pth").state_dict()[f"{layer}.weight"]
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(4, w.shape[1], generator=g), torch.randn(w.shape[0], 4, generator=g)
    data["state_dict"][f"{layer}.lora_A"], data["state_dict"][f"{layer}.lora_B"] = a, b
    torch.save(data, tmp_path / "rank4.pth")
    tuned = load_transformer(tmp_path / "rank4.pth").state_dict()[f"{layer}.weight"]
    torch.testing.assert_close(tuned, w + (b @ a) / 4, atol=1e-6, rtol=0)


def test_fine_tune_saved_as_a_flat_dict_of_lora_tensors_loads_over_the_base(tmp_path):
    """The reference's LoRA training saves a bare {key: tensor} dict, and its loader reads that."""
    save_checkpoint(randomised(KINDS["coarse"]()), tmp_path / "coarse.pth")
    layer = "transformer.layers.1.self_attn.w_vs"
    (a, b), = with_lora(tmp_path / "coarse.pth", tmp_path / "wrapped.pth", [layer]).values()
    torch.save({f"{layer}.lora_A": a, f"{layer}.lora_B": b}, tmp_path / "flat.pth")
    from_flat = load_transformer(tmp_path / "coarse.pth", tmp_path / "flat.pth")
    assert_same_parameters(load_transformer(tmp_path / "wrapped.pth"), from_flat, atol=0)
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):  # a base model must be wrapped
        load_transformer(tmp_path / "flat.pth")


def test_training_logs_with_numpy_values_and_paths_load(tmp_path):
    import pathlib

    import numpy as np

    model = randomised(KINDS["coarse"]())
    save_checkpoint(model, tmp_path / "m.pth")
    data = torch.load(tmp_path / "m.pth", weights_only=True)
    data["metadata"]["logs"] = {"loss": np.float32(0.25), "steps": np.int64(1000), "curve": np.arange(4.0),
                                "save_path": pathlib.PurePosixPath("/runs/vampnet")}
    torch.save(data, tmp_path / "logs.pth")
    assert_same_parameters(load_transformer(tmp_path / "m.pth"), load_transformer(tmp_path / "logs.pth"), atol=0)


def test_lora_shapes_that_do_not_fit_the_layer_are_refused(tmp_path):
    save_checkpoint(randomised(KINDS["coarse"]()), tmp_path / "coarse.pth")
    data = torch.load(tmp_path / "coarse.pth", weights_only=True)
    data["state_dict"]["transformer.layers.0.self_attn.w_qs.lora_A"] = torch.zeros(8, 5)  # in is 16
    data["state_dict"]["transformer.layers.0.self_attn.w_qs.lora_B"] = torch.zeros(16, 8)
    torch.save(data, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"LoRA shapes for 'transformer.layers.0.self_attn.w_qs'"):
        load_transformer(tmp_path / "bad.pth")


def test_fine_tune_folder_passed_as_coarse_lora_ckpt_changes_the_output(tiny_models, tiny_interface, tmp_path):
    layers = [f"transformer.layers.{i}.{n}" for i in range(2) for n in
              ("self_attn.w_qs", "self_attn.w_vs", "self_attn.fc", "feed_forward.w_1", "feed_forward.w_2")]
    lora_file = tmp_path / "loras" / "mytune" / "coarse.pth"
    added = with_lora(tiny_models / "coarse.pth", lora_file, layers, scale=2.0)
    tuned = Interface(coarse_ckpt=tiny_models / "coarse.pth", coarse2fine_ckpt=tiny_models / "c2f.pth",
                      codec_ckpt=tiny_models / "codec.pth", device="cpu", coarse_lora_ckpt=lora_file)
    # the merged weight is W + (B @ A) / 8
    name = "transformer.layers.1.feed_forward.w_2"
    a, b = added[name]
    torch.testing.assert_close(tuned.coarse.state_dict()[f"{name}.weight"],
                               tiny_interface.coarse.state_dict()[f"{name}.weight"] + (b @ a) / 8)
    codes = torch.randint(0, 1024, (1, 14, 16), generator=torch.Generator().manual_seed(0))
    codes[:, :4, 5:11] = 1024
    with torch.inference_mode():
        assert not torch.allclose(tuned.coarse(codes[:, :4]), tiny_interface.coarse(codes[:, :4]), atol=1e-3)
    mask = torch.ones(1, 14, 16, dtype=torch.long)
    plain_out = tiny_interface.coarse_vamp(codes, mask, seed=3, sampling_steps=2)
    tuned_out = tuned.coarse_vamp(codes, mask, seed=3, sampling_steps=2)
    assert (plain_out[:, :4] != tuned_out[:, :4]).float().mean() > 0.5


# --- refusing bad files --------------------------------------------------------------------------


class NotATensor:
    """Stands in for any pickled object: loading it would mean running the file's code."""

    def __init__(self):
        self.payload = "would run on load"


def test_file_with_a_pickled_custom_class_is_refused(tmp_path):
    torch.save({"state_dict": {"x": torch.zeros(2)}, "metadata": {"kwargs": {}}, "extra": NotATensor()},
               tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"\(test_engine_checkpoint\.NotATensor\); refusing to load it "
                                              "because that would run code"):
        load_transformer(tmp_path / "evil.pth")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nowhere\.pth"):
        load_codec(tmp_path / "nowhere.pth")


def test_empty_file_is_a_clear_error(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="checkpoint file is empty"):
        load_transformer(tmp_path / "empty.pth")


def test_truncated_file_is_a_clear_error(tiny_models, tmp_path):
    whole = (tiny_models / "coarse.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="is truncated or damaged"):
        load_transformer(tmp_path / "half.pth")


def test_text_file_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pth").write_text("these are my notes about the model\n" * 20)
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_codec(tmp_path / "notes.pth")


def test_torch_file_without_state_dict_is_refused(tmp_path):
    torch.save({"weights": {"a": torch.zeros(3)}}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a VampNet checkpoint \\(no 'state_dict' entry\\)"):
        load_transformer(tmp_path / "other.pth")


def test_codec_file_given_as_a_transformer_says_a_transformer_was_expected(tiny_models):
    with pytest.raises(CheckpointError, match=r"is a codec checkpoint, but a transformer .* was expected"):
        load_transformer(tiny_models / "codec.pth")


def test_transformer_file_given_as_the_codec_says_a_codec_was_expected(tiny_models):
    with pytest.raises(CheckpointError, match=r"is a transformer checkpoint, but a codec .* was expected"):
        load_codec(tiny_models / "coarse.pth")
    with pytest.raises(CheckpointError, match="but a codec"):
        Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tiny_models / "c2f.pth", device="cpu")


def test_missing_parameter_is_named(tmp_path):
    save_checkpoint(randomised(KINDS["coarse"]()), tmp_path / "m.pth")
    data = torch.load(tmp_path / "m.pth", weights_only=True)
    del data["state_dict"]["transformer.norm.weight"]
    torch.save(data, tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="missing parameter 'transformer.norm.weight'"):
        load_transformer(tmp_path / "m.pth")


# --- files that do not fit together --------------------------------------------------------------


def meta_models(codec_kw=None, coarse_kw=None, c2f_kw=None):
    with torch.device("meta"):
        codec = Codec(CodecConfig(**(codec_kw or {})))
        coarse = VampNetTransformer(TransformerConfig(**{**COARSE_FULL, "n_layers": 1, **(coarse_kw or {})}))
        c2f = VampNetTransformer(TransformerConfig(**{**C2F_FULL, "n_layers": 1, **(c2f_kw or {})}))
    return codec, coarse, c2f


def test_matching_released_shapes_are_compatible():
    check_compatible(*meta_models())  # no error


def test_c2f_conditioning_on_fewer_codebooks_than_coarse_generates_is_refused():
    with pytest.raises(CheckpointError, match="conditions on 3 codebooks but the coarse model generates 4"):
        check_compatible(*meta_models(c2f_kw=dict(n_conditioning_codebooks=3)))


def test_transformer_with_more_codebooks_than_the_codec_is_refused():
    with pytest.raises(CheckpointError, match="c2f model uses 14 codebooks but the codec has only 12"):
        check_compatible(*meta_models(codec_kw=dict(n_codebooks=12)))


def test_interface_refuses_a_c2f_that_does_not_fit_the_coarse_model(tiny_models, tmp_path):
    c2f = randomised(VampNetTransformer(TransformerConfig(n_codebooks=14, n_conditioning_codebooks=3,
                                                          n_layers=1, n_heads=2, embedding_dim=16)))
    save_checkpoint(c2f, tmp_path / "c2f.pth")
    with pytest.raises(CheckpointError, match="conditions on 3 codebooks but the coarse model generates 4"):
        Interface(coarse_ckpt=tiny_models / "coarse.pth", coarse2fine_ckpt=tmp_path / "c2f.pth",
                  codec_ckpt=tiny_models / "codec.pth", device="cpu")


def test_interface_refuses_a_codec_with_fewer_codebooks(tiny_models, tmp_path):
    save_checkpoint(randomised(Codec(CodecConfig(n_codebooks=3, **TINY_CODEC))), tmp_path / "codec.pth")
    with pytest.raises(CheckpointError, match="coarse model uses 4 codebooks but the codec has only 3"):
        Interface(coarse_ckpt=tiny_models / "coarse.pth", codec_ckpt=tmp_path / "codec.pth", device="cpu")


# --- full-size key names and shapes (meta device: no memory, no time) ----------------------------


@pytest.fixture(scope="module")
def full_size_file_states():
    with torch.device("meta"):
        codec = Codec(CodecConfig())
        coarse = VampNetTransformer(TransformerConfig(**COARSE_FULL))
        c2f = VampNetTransformer(TransformerConfig(**C2F_FULL))
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("codec", codec), ("coarse", coarse), ("c2f", c2f))}
    shapes = {name: {k: tuple(v.shape) for k, v in module_state_to_file_state(m).items()}
              for name, m in (("codec", codec), ("coarse", coarse), ("c2f", c2f))}
    return shapes, counts


@pytest.mark.parametrize("model,key,shape", [
    ("coarse", "embedding.special.MASK", (4, 8)),
    ("coarse", "embedding.out_proj.weight", (1280, 32, 1)),
    ("coarse", "embedding.out_proj.bias", (1280,)),
    ("coarse", "transformer.layers.0.self_attn.relative_attention_bias.weight", (32, 20)),
    ("coarse", "transformer.layers.0.self_attn.w_qs.weight", (1280, 1280)),
    ("coarse", "transformer.layers.0.self_attn.w_ks.weight", (1280, 1280)),
    ("coarse", "transformer.layers.0.self_attn.w_vs.weight", (1280, 1280)),
    ("coarse", "transformer.layers.0.self_attn.fc.weight", (1280, 1280)),
    ("coarse", "transformer.layers.0.norm_1.weight", (1280,)),
    ("coarse", "transformer.layers.0.norm_3.weight", (1280,)),
    ("coarse", "transformer.layers.19.feed_forward.w_1.weight", (5120, 1280)),
    ("coarse", "transformer.layers.19.feed_forward.w_2.weight", (1280, 2560)),
    ("coarse", "transformer.norm.weight", (1280,)),
    ("coarse", "classifier.layers.0.weight_v", (4096, 1280, 1)),
    ("coarse", "classifier.layers.0.weight_g", (4096, 1, 1)),
    ("coarse", "classifier.layers.0.bias", (4096,)),
    ("c2f", "embedding.special.MASK", (14, 8)),
    ("c2f", "embedding.out_proj.weight", (1280, 112, 1)),
    ("c2f", "transformer.layers.15.feed_forward.w_2.weight", (1280, 2560)),
    ("c2f", "classifier.layers.0.weight_v", (10240, 1280, 1)),
    ("c2f", "classifier.layers.0.bias", (10240,)),
    ("codec", "encoder.block.0.weight_v", (64, 1, 7)),
    ("codec", "encoder.block.0.weight_g", (64, 1, 1)),
    ("codec", "encoder.block.1.block.0.block.1.weight_v", (64, 64, 7)),  # residual unit conv, dilation 1
    ("codec", "encoder.block.1.block.4.weight_v", (128, 64, 4)),  # strided conv, kernel 2 * 2
    ("codec", "encoder.block.4.block.4.weight_v", (1024, 512, 16)),  # strided conv, kernel 2 * 8
    ("codec", "encoder.block.5.alpha", (1, 1024, 1)),
    ("codec", "encoder.block.6.weight_v", (1024, 1024, 3)),
    ("codec", "quantizer.quantizers.0.in_proj.weight_v", (8, 1024, 1)),
    ("codec", "quantizer.quantizers.0.out_proj.weight_v", (1024, 8, 1)),
    ("codec", "quantizer.quantizers.13.codebook.weight", (1024, 8)),
    ("codec", "decoder.model.0.weight_v", (1536, 1024, 7)),
    ("codec", "decoder.model.1.block.0.alpha", (1, 1536, 1)),
    ("codec", "decoder.model.1.block.1.weight_v", (1536, 768, 12)),  # transposed conv: (in, out, k)
    ("codec", "decoder.model.1.block.2.mrf_blocks.2.block.2.layer.1.weight_v", (768, 768, 11)),
    ("codec", "decoder.model.1.block.2.mrf_blocks.0.block.0.layer.3.weight_v", (768, 768, 3)),
    ("codec", "decoder.model.6.block.1.weight_v", (48, 24, 4)),
    ("codec", "decoder.model.7.alpha", (1, 24, 1)),
    ("codec", "decoder.model.8.weight_v", (1, 24, 7)),
    ("codec", "decoder.model.8.bias", (1,)),
])
def test_full_size_keys_and_shapes_match_the_released_files(full_size_file_states, model, key, shape):
    shapes, _ = full_size_file_states
    assert key in shapes[model], f"{key} missing from the {model} file state"
    assert shapes[model][key] == shape


def test_only_layer_0_owns_the_relative_position_table(full_size_file_states):
    shapes, _ = full_size_file_states
    for model, n_layers in (("coarse", 20), ("c2f", 16)):
        owners = [k for k in shapes[model] if "relative_attention_bias" in k]
        assert owners == ["transformer.layers.0.self_attn.relative_attention_bias.weight"]
        assert f"transformer.layers.{n_layers - 1}.norm_3.weight" in shapes[model]
        assert f"transformer.layers.{n_layers}.norm_1.weight" not in shapes[model]


def test_full_size_file_state_has_no_biases_in_attention_or_feed_forward(full_size_file_states):
    shapes, _ = full_size_file_states
    bad = [k for k in shapes["coarse"] if k.startswith("transformer.layers.") and k.endswith(".bias")]
    assert bad == []
    # every weight-normed tensor comes as a (g, v) pair, and nothing is stored as a plain conv weight there
    for model in shapes.values():
        for key in model:
            if key.endswith(".weight_g"):
                assert key[:-1] + "v" in model


def test_full_size_parameter_counts_are_near_the_released_models(full_size_file_states):
    _, counts = full_size_file_states
    assert counts["coarse"] == pytest.approx(336e6, rel=0.03)
    assert counts["c2f"] == pytest.approx(278e6, rel=0.03)
