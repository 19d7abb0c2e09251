"""Iterative parallel decoding (the VampNet/MaskGIT sampler).

Given codes z (B, C, T) and a mask (1 = regenerate), each of S steps: run the model, draw a token
for every still-masked cell, score it (log-probability plus annealed Gumbel noise), and re-mask the
least confident cells so that floor(cos(pi/2 * r) * N0) stay masked, r = (i + 1) / S. The order of
operations follows the reference implementation exactly where it is defined (docs/ARCHITECTURE.md,
"Sampler", lists every deliberate difference). In short:

- randomness comes from one `torch.Generator` per batch item, so item k of a batch equals a
  single run with that item's generator, and the process-global RNG is never touched;
- N0 and the re-masking threshold are per item (the reference counts N0 over the whole batch);
- typical filtering works (the reference computes it and throws the result away); it applies when
  sampling, not when taking the argmax, so deterministic runs match the reference token for token;
- the model is evaluated only where needed: the head runs on masked cells only.
"""

import math
import numbers
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch


_INTEGERS = {"sampling_steps", "top_k", "typical_min_tokens"}
_BOOLS = {"typical_filtering"}
_OPTIONAL = {"top_k", "top_p"}


@dataclass
class SamplingOptions:
    """Every sampler setting, with the reference's defaults (12 steps, as its library uses)."""

    sampling_steps: int = 12
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    typical_filtering: bool = True
    typical_mass: float = 0.15
    typical_min_tokens: int = 64
    mask_temperature: float = 10.5
    sample_cutoff: float = 1.0

    def __post_init__(self):
        def bad(name, value, rule):
            raise ValueError(f"sampling option {name}={value!r} is invalid: {rule}")

        # Normalise to plain Python types first: values come from JSON, numpy, sliders (40.0) and
        # OSC floats, and the options end up in recipes and token fingerprints.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _OPTIONAL and value is None:
                continue
            if f.name in _BOOLS:
                if not isinstance(value, (bool, np.bool_)):
                    bad(f.name, value, "must be true or false")
                value = bool(value)
            elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                bad(f.name, value, "must be a number" + (", or null for off" if f.name in _OPTIONAL else ""))
            elif not math.isfinite(value):
                bad(f.name, value, "must be a finite number")
            elif f.name in _INTEGERS:
                if value != math.floor(value):
                    bad(f.name, value, "must be a whole number")
                value = int(value)
            else:
                value = float(value)
            object.__setattr__(self, f.name, value)
        if not 1 <= self.sampling_steps <= 1000:
            bad("sampling_steps", self.sampling_steps, "must be a whole number from 1 to 1000")
        if self.temperature < 0:
            bad("temperature", self.temperature, "must be >= 0")
        if self.top_k is not None and self.top_k < 1:
            bad("top_k", self.top_k, "must be >= 1, or null for off")
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            bad("top_p", self.top_p, "must be in [0, 1] (0 keeps only the most likely token), or null for off")
        if not 0 < self.typical_mass <= 1:
            bad("typical_mass", self.typical_mass, "must be in (0, 1]")
        if self.typical_min_tokens < 1:
            bad("typical_min_tokens", self.typical_min_tokens, "must be >= 1")
        if self.mask_temperature < 0:
            bad("mask_temperature", self.mask_temperature, "must be >= 0")

    @classmethod
    def from_dict(cls, values: dict) -> "SamplingOptions":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown sampling option(s) {unknown}; known: {sorted(names)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


# --- the schedule and the confidence rule --------------------------------------------------------


def n_still_masked(step: int, n_steps: int, n0: int, n_masked_now: int) -> int:
    """How many cells stay masked after `step`: floor(cos(pi/2 * r) * N0), r = (step + 1) / n_steps.

    At least 1 and at most (currently masked - 1) on every step but the last, 0 on the last.
    Computed in float32 with the reference's operations, so the floor lands on the same integer.
    """
    r = torch.tensor((step + 1) / n_steps, dtype=torch.float32)
    gamma = (r * math.pi / 2).cos().clamp(1e-10, 1.0)
    n = int(torch.floor(gamma * torch.tensor(n0)).item())
    if step != n_steps - 1:
        n = max(1, min(n_masked_now - 1, n))
    return n


def remask(confidence: torch.Tensor, n_keep_masked: int, n_cells: int) -> tuple[torch.Tensor, float]:
    """Which of the currently masked cells (their `confidence`, 1-D) stay masked.

    The reference sorts the confidences of all `n_cells` cells of the item (unmasked cells count
    as +inf), takes the value at index `n_keep_masked` as the cut-off and masks every cell below it.
    Returns the boolean selection and the cut-off.
    """
    if n_keep_masked < len(confidence):
        cut_off = torch.kthvalue(confidence, n_keep_masked + 1).values
    elif n_keep_masked < n_cells:
        cut_off = torch.tensor(math.inf, device=confidence.device)  # the index falls on an unmasked cell
    else:
        raise ValueError(f"cannot keep {n_keep_masked} of {n_cells} cells masked")
    return confidence < cut_off, float(cut_off)


# --- filters on logits (N, vocab) ---------------------------------------------------------------


def typical_filter(logits, mass: float, min_tokens: int):
    """Keep the most typical tokens (surprisal closest to the entropy) up to `mass`, at least `min_tokens`."""
    log_p = logits.log_softmax(dim=-1)
    p = log_p.exp()
    entropy = -(log_p * p).nansum(dim=-1, keepdim=True)
    distance = (-log_p - entropy).abs()
    # Shortcut: the `min_tokens` most typical tokens are always kept; where they already hold
    # `mass`, they are exactly the kept set, and a top-k replaces the full sort.
    k = min(min_tokens, logits.shape[-1])
    nearest_distance, nearest = distance.topk(k, dim=-1, largest=False)
    settled = p.gather(-1, nearest).sum(dim=-1) >= mass
    remove = torch.ones_like(logits, dtype=torch.bool).scatter(-1, nearest, False)
    rest = (~settled).nonzero(as_tuple=True)[0]
    if len(rest):
        sorted_distance, order = distance[rest].sort(dim=-1)
        cumulative = p[rest].gather(-1, order).cumsum(dim=-1)
        last = (cumulative < mass).sum(dim=-1, keepdim=True).clamp(max=logits.shape[-1] - 1)
        remove_sorted = sorted_distance > sorted_distance.gather(-1, last)
        remove_sorted[..., :min_tokens] = False
        remove[rest] = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def top_k_filter(logits, k: int):
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -math.inf)


def top_p_filter(logits, p: float):
    """Nucleus: keep the smallest set of most likely tokens whose mass exceeds p."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative > p
    remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()  # keep the first token over the threshold
    remove_sorted[..., 0] = False
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, -math.inf)


def sample_tokens(logits, options: SamplingOptions, sample: bool, uniform):
    """Draw one token per row of logits (N, vocab); returns tokens (N,) and their probabilities (N,).

    Filters apply in the reference's order (typical, top-k, top-p) on the raw logits; probabilities
    are softmax(logits / temperature). `sample=False` takes the argmax; typical filtering, a
    sampling-time truncation, is then skipped so argmax runs score tokens like the reference does.
    `uniform` (N,) are U(0, 1) draws for inverse-CDF sampling from the per-item generators.
    Temperature 0 is the limit of ever colder sampling: the argmax.
    """
    if options.temperature == 0:
        sample = False
    if sample and options.typical_filtering:
        logits = typical_filter(logits, options.typical_mass, options.typical_min_tokens)
    if options.top_k is not None:
        logits = top_k_filter(logits, options.top_k)
    if options.top_p is not None and options.top_p < 1.0:
        logits = top_p_filter(logits, options.top_p)
    probs = (logits / options.temperature if options.temperature > 0 else logits).softmax(dim=-1)
    if sample:
        cdf = probs.cumsum(dim=-1)
        threshold = uniform.unsqueeze(-1) * cdf[:, -1:]
        # right=True: the first token whose cdf exceeds the draw, so a draw of exactly 0 cannot land
        # on a leading token of probability 0 (one that a filter removed)
        tokens = torch.searchsorted(cdf, threshold, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)
    else:
        tokens = logits.argmax(dim=-1)
    return tokens, probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


# --- the loop -------------------------------------------------------------------------------------


class Trace:
    """Optional record of decoding: the masked codes before the first step and after every step,
    and each step's cut-off, for every `generate` call ("run": one batch of chunk rows).

    The Interface labels each run with its stage ("coarse", "c2f") and the (item, start_frame)
    of every row before calling `generate`. Generation never looks at the trace unless one is
    passed, so an unrequested trace costs nothing.
    """

    def __init__(self):
        # one dict per run: {"stage", "rows": [(item, start_frame)], "start": (B, C, T) int16 codes,
        # "n0": [B] masked cells before the first step, "steps": [{"tokens", "mask", "cut_off", "masked"}]}
        self.runs = []
        self._label = {"stage": None, "rows": None}

    @property
    def steps(self) -> list:
        """Every step of every run, in recording order: {"tokens", "mask", "cut_off", "masked"}."""
        return [step for run in self.runs for step in run["steps"]]

    def label(self, stage: str, rows):
        """What the next run is: its stage and, per batch row, (item, first frame of the chunk)."""
        self._label = {"stage": stage, "rows": [tuple(int(v) for v in row) for row in rows]}

    def start(self, z_masked, mask_token):
        mask = (z_masked == mask_token).cpu()
        self.runs.append({**self._label, "start": z_masked.cpu().to(torch.int16),
                          "n0": mask.flatten(1).sum(dim=1).tolist(), "steps": []})
        self._label = {"stage": None, "rows": None}

    def record(self, z_masked, mask_token, cut_offs):
        mask = (z_masked == mask_token).cpu()
        self.runs[-1]["steps"].append({
            "tokens": z_masked.cpu().to(torch.int16),  # (B, C, T), mask_token where still masked
            "mask": mask,  # (B, C, T) bool
            "cut_off": list(cut_offs),  # [B] confidence threshold of this step (inf: none)
            "masked": mask.flatten(1).sum(dim=1).tolist(),  # [B] cells still masked after this step
        })


def generate(model, codes, mask, options: SamplingOptions = SamplingOptions(), generators=None,
             on_step=None, trace: Trace | None = None):
    """Fill in masked cells of `codes` (B, C, T) where `mask` (B, C, T) is 1; returns new codes.

    Conditioning codebooks (the c2f model's first 4) are never regenerated. `generators`: one
    torch.Generator per batch item (default: fresh unseeded ones). `on_step(step, n_steps)` is
    called after every step; it may raise to cancel.
    """
    B, C, T = codes.shape
    device = codes.device
    n_cond = model.n_conditioning_codebooks
    mask = mask.bool().clone()
    mask[:, :n_cond] = False
    z = codes.masked_fill(mask, model.mask_token)  # (B, C, T)
    if generators is None:
        generators = [torch.Generator(device=device) for _ in range(B)]
        for g in generators:
            g.seed()
    if len(generators) != B:
        raise ValueError(f"need one generator per batch item: got {len(generators)} for a batch of {B}")
    n_cells = model.n_predict_codebooks * T
    # per item; counts MASK tokens, so MASK already in `codes` where mask is 0 counts as well
    n0 = (z[:, n_cond:] == model.mask_token).flatten(1).sum(dim=1).tolist()
    if trace is not None:
        trace.start(z, model.mask_token)

    for step in range(options.sampling_steps):
        r = torch.tensor((step + 1) / options.sampling_steps, dtype=torch.float32)
        sample = (step / options.sampling_steps) <= options.sample_cutoff
        masked = z[:, n_cond:] == model.mask_token  # (B, n_predict, T)
        b_idx, c_idx, t_idx = masked.nonzero(as_tuple=True)  # item-major, then codebook, then time
        if len(b_idx) == 0:
            break
        hidden = model.hidden(z)  # (B, T, d)
        logits = model.logits_at(hidden, b_idx, c_idx, t_idx)  # (N, vocab)
        counts = torch.bincount(b_idx, minlength=B).tolist()
        uniform = torch.cat([torch.rand(n, generator=g, device=device) for n, g in zip(counts, generators)])
        tokens, probs = sample_tokens(logits, options, sample, uniform)

        # confidence = log p + mask_temperature * (1 - r) * Gumbel noise, per item
        confidence = probs.log()
        noise_scale = options.mask_temperature * (1 - float(r))
        if noise_scale != 0:
            u = torch.cat([
                torch.empty(n, device=device).uniform_(1e-20, 1.0, generator=g) for n, g in zip(counts, generators)
            ])
            confidence = confidence + noise_scale * -torch.log(-torch.log(u))

        # Per item: the cut-off is a value, so the order cells are listed in does not matter.
        stay_masked = torch.zeros(len(b_idx), dtype=torch.bool, device=device)
        cut_offs, start = [], 0
        for b, n in enumerate(counts):
            if n == 0:
                cut_offs.append(math.inf)
                continue
            keep = n_still_masked(step, options.sampling_steps, n0[b], n)
            selected, cut_off = remask(confidence[start:start + n], keep, n_cells)
            stay_masked[start:start + n] = selected
            cut_offs.append(cut_off)
            start += n

        new_tokens = torch.where(stay_masked, torch.full_like(tokens, model.mask_token), tokens)
        z[b_idx, c_idx + n_cond, t_idx] = new_tokens
        if trace is not None:
            trace.record(z, model.mask_token, cut_offs)
        if on_step is not None:
            on_step(step, options.sampling_steps)
    return z
