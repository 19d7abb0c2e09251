"""Specification of the bf16 precision option: an agreement check against float32 guards it."""

import pytest
import torch

from bridge.engine import Interface
from bridge.engine.precision import AGREEMENT_LIMITS, PrecisionError, bf16_support, logits_agreement, use_bf16
from bridge.engine.random_weights import model_configs

needs_cpu_bf16 = pytest.mark.skipif(bf16_support("cpu") is not None, reason=str(bf16_support("cpu")))


def tiny_coarse(seed=0):
    from bridge.engine.random_weights import _randomise
    from bridge.engine.transformer import VampNetTransformer

    _, config, _ = model_configs("tiny")
    g = torch.Generator().manual_seed(seed)
    model = _randomise(VampNetTransformer(config), g).eval()
    return model.prepare([torch.randn(1024, 8, generator=g) for _ in range(config.n_codebooks)])


def interface(models, precision):
    return Interface(coarse_ckpt=models / "coarse.pth", coarse2fine_ckpt=models / "c2f.pth",
                     codec_ckpt=models / "codec.pth", device="cpu", precision=precision)


def test_precision_is_fp32_unless_asked(tiny_interface):
    assert tiny_interface.precision == "fp32" and tiny_interface.precision_reports == {}
    assert tiny_interface.coarse.precision == tiny_interface.c2f.precision == "fp32"


def test_unknown_precision_is_refused_naming_the_choices(tiny_models):
    with pytest.raises(ValueError, match=r"precision 'fp16' is not one of \['bf16', 'fp32'\]"):
        interface(tiny_models, "fp16")


def test_precision_changes_neither_the_parameters_nor_the_state_dict():
    model = tiny_coarse()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_precision("bf16")
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) and after[k].dtype == torch.float32 for k in before)


@needs_cpu_bf16
def test_bf16_logits_agree_with_fp32_on_the_same_grid():
    model = tiny_coarse(seed=1)
    codes = torch.randint(0, 1024, (2, 4, 50), generator=torch.Generator().manual_seed(2))
    report = logits_agreement(model, codes)
    assert report["cells"] == 2 * 4 * 50
    assert report["top1_agreement"] > 0.9
    assert 0 < report["kl_mean"] < 1e-3 and report["kl_max"] < 1e-2
    assert 0 < report["max_abs_logit_diff"] < 0.2
    assert model.precision == "fp32"  # the check leaves the model as it was


@needs_cpu_bf16
def test_bf16_interface_reports_its_check_and_generates_repeatably(tiny_models):
    bf16 = interface(tiny_models, "bf16")
    assert set(bf16.precision_reports) == {"coarse", "c2f"}
    assert all(r["kl_mean"] <= AGREEMENT_LIMITS["kl_mean"] for r in bf16.precision_reports.values())
    assert bf16.coarse.transformer.layers[0].self_attn.w_qkv.dtype == torch.bfloat16
    codes = torch.randint(0, 1024, (1, 14, 30), generator=torch.Generator().manual_seed(3))
    mask = bf16.build_mask(codes, periodic_prompt=3, upper_codebook_mask=2, seed=0)
    a = bf16.vamp(codes, mask, seed=5, sampling_steps=3)
    assert torch.equal(a, bf16.vamp(codes, mask, seed=5, sampling_steps=3))
    assert torch.equal(a[mask == 0], codes[mask == 0])
    assert not (a == 1024).any()


def test_bf16_is_refused_and_the_model_left_in_fp32_when_the_check_fails(monkeypatch):
    model = tiny_coarse()
    if bf16_support("cpu") is None:
        monkeypatch.setitem(AGREEMENT_LIMITS, "kl_mean", 0.0)
        match = r"bf16 logits disagree with float32 \(mean KL .* nats, limit 0.0\); use precision 'fp32'"
    else:
        match = r"precision 'bf16' is unavailable: .*; use precision 'fp32'"
    with pytest.raises(PrecisionError, match=match):
        use_bf16(model)
    assert model.precision == "fp32"
    assert model.transformer.layers[0].feed_forward.w_in.dtype == torch.float32


def test_precision_is_part_of_the_token_fingerprint(tiny_models):
    """The same request at another precision gives other tokens, so it must name other files."""
    from bridge.engine import MaskRecipe, SamplingOptions
    from bridge.fx import FxChain
    from bridge.pipeline import Pipeline, fingerprints
    from bridge.request import VampRequest

    auto = Pipeline(model_dir=tiny_models, device="cpu")  # auto: fp32 off CUDA
    assert auto.interface.precision == "fp32" and auto.info()["precision"] == "fp32"
    request = VampRequest(source_path="/music/clip.wav", start_s=0.0, length_s=2.0)
    args = (request, MaskRecipe(), SamplingOptions(), 2, FxChain([]))
    named = dict(source_sha="0" * 64, seed=1, model_files=auto._model_info["files"], windows=auto.windows)
    fp32 = fingerprints(*args, **named, precision=auto.interface.precision)
    bf16 = fingerprints(*args, **named, precision="bf16")  # what Pipeline(precision="bf16") names
    assert fp32[0] != bf16[0] and fp32[1] != bf16[1]


def test_cli_offers_precision_and_refuses_a_bad_one(capsys):
    import pytest as _pytest

    from bridge.cli import main

    with _pytest.raises(SystemExit):
        main(["vamp", "in.wav", "-o", "out", "--precision", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
