"""bf16 projections for the transformers, behind a check that they agree with float32.

Precision "bf16" (`VampNetTransformer.set_precision`) runs the projections and attention in bf16:
on CUDA through cuBLAS, on x86 CPUs with native bf16 (AVX512_BF16 or AMX) through oneDNN. It is
never silently on: `use_bf16` first compares float32 and bf16 logits of the model on one fixed
grid (`logits_agreement`) and refuses when they disagree beyond `AGREEMENT_LIMITS`; the report
is kept on the Interface (`precision_reports`) and printed by the benchmarks. Precision changes
the tokens, so it is part of every recipe and token fingerprint.
"""

import torch

# Mean KL(fp32 || bf16) over the cells of the check grid, in nats. Rounding to bf16 perturbs each
# logit by about 1e-2 relative; the measured mean is about 1e-4 on random weights at every size
# (benchmarks/README.md), so 1e-2 only trips on a real defect (overflow, a wrong kernel).
AGREEMENT_LIMITS = {"kl_mean": 1e-2}


class PrecisionError(RuntimeError):
    pass


def bf16_support(device) -> str | None:
    """None where bf16 runs natively on `device`, else the reason it does not."""
    device = torch.device(device)
    if device.type == "cuda":
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bf16 support"
    if device.type == "cpu":
        if not torch.backends.mkldnn.is_available():
            return "this torch build has no oneDNN"
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return "this CPU has no native bf16 (AVX512_BF16 or AMX)"
        return None
    return f"bf16 is not offered on {device.type}"


def check_grid(model, frames: int = 64, seed: int = 0) -> torch.Tensor:
    """A fixed grid to compare precisions on: random codes, half the predicted cells MASK."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, model.vocab_size, (1, model.n_codebooks, frames), generator=g)
    masked = torch.rand(1, model.n_codebooks, frames, generator=g) < 0.5
    masked[:, :model.n_conditioning_codebooks] = False
    return codes.masked_fill(masked, model.mask_token)


@torch.inference_mode()
def logits_agreement(model, codes, precision: str = "bf16") -> dict:
    """float32 against `precision` logits on the same grid (codes (B, C, T) on the model's device).

    Per cell (every predicted codebook and frame): whether the most likely token is the same,
    KL(fp32 || low) in nats, and the largest logit difference. The model ends in the precision
    it had."""
    before = model.precision
    try:
        reference = model.set_precision("fp32").cell_logits(model.hidden(codes)).double()
        low = model.set_precision(precision).cell_logits(model.hidden(codes)).double()
    finally:
        model.set_precision(before)
    log_p, log_q = reference.log_softmax(dim=-1), low.log_softmax(dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    return {"precision": precision, "cells": kl.numel(),
            "top1_agreement": round(float((reference.argmax(-1) == low.argmax(-1)).double().mean()), 4),
            "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
            "max_abs_logit_diff": float((reference - low).abs().max()),
            "logit_std": float(reference.std())}


def use_bf16(model) -> dict:
    """Switch `model` (prepared, on its device) to bf16 after the agreement check; returns the check.

    Raises PrecisionError, leaving the model in float32, where the device has no native bf16 or
    the logits disagree beyond AGREEMENT_LIMITS."""
    device = model._head_weight.device
    reason = bf16_support(device)
    if reason:
        raise PrecisionError(f"precision 'bf16' is unavailable: {reason}; use precision 'fp32'")
    report = logits_agreement(model, check_grid(model).to(device))
    if not report["kl_mean"] <= AGREEMENT_LIMITS["kl_mean"]:
        raise PrecisionError(f"bf16 logits disagree with float32 (mean KL {report['kl_mean']:.3g} nats, "
                             f"limit {AGREEMENT_LIMITS['kl_mean']}); use precision 'fp32'")
    model.set_precision("bf16")
    return report
