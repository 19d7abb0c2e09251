"""Primitive layers shared by the codec and the transformer.

Weight normalisation is a storage detail of the released checkpoints, not something inference
needs: the modules here hold plain `weight` tensors, and `bridge.engine.checkpoint` folds the
stored (g, v) pairs into them at load time (and splits them again when saving). Modules that are
weight-normalised in the files are marked by the `WeightNormed` mixin so that mapping is explicit.
"""

import torch
import torch.nn.functional as F
from torch import nn


class WeightNormed:
    """Marks a module whose `weight` is stored as a weight-norm pair (g, v) in checkpoints."""


class WNConv1d(nn.Conv1d, WeightNormed):
    pass


class WNConvTranspose1d(nn.ConvTranspose1d, WeightNormed):
    pass


class Snake1d(nn.Module):
    """Snake activation: x + sin(alpha * x)^2 / alpha, with one alpha per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x):  # (B, C, T)
        if torch.is_grad_enabled() and (x.requires_grad or self.alpha.requires_grad):
            return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)
        # Inference: one temporary instead of four. The codec runs this on its widest activations
        # (64 channels at 44.1 kHz), where each temporary is tens of MB per chunk.
        y = self.alpha * x
        y.sin_().square_().mul_((self.alpha + 1e-9).reciprocal())
        return y.add_(x)


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """weight = g * v / ||v||, the norm taken over every dimension but the first (torch's dim=0).

    torch's own kernel, the one the reference's weight-normed layers run, so the folded weights
    are the same to the last bit (a hand-written norm differs by an ulp here and there)."""
    return torch._weight_norm(v, g, 0)


def split_weight_norm(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of `fold_weight_norm`: g = ||w|| per output slice, v = w."""
    g = weight.flatten(1).norm(dim=1).view(-1, *([1] * (weight.dim() - 1)))
    return g.clone(), weight.clone()


class RMSNorm(nn.Module):
    """Scale-only RMS normalisation over the channel (last) axis, eps 1e-6."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.exact = True  # False (bf16 precision): a faster form, equal to float32 rounding

    def forward(self, x):  # (..., d)
        if self.exact or torch.is_grad_enabled():
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        # one reduction kernel and two passes: about 4x faster than F.rms_norm's composite on a CPU
        scale = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(x.shape[-1]).add_(self.eps).rsqrt_()
        return (x * scale).mul_(self.weight)
