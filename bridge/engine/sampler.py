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
- a step has static shapes and never waits for the device (`decode_step`): every random draw of
  a call is made up front (`draw_noise`), the head runs on every cell, and the cut-off is a sort,
  so a step can be captured as a CUDA graph or compiled, and it runs on Apple MPS as on a GPU.
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


def still_masked_fraction(step: int, n_steps: int) -> torch.Tensor:
    """gamma = cos(pi/2 * r), r = (step + 1) / n_steps, clamped to [1e-10, 1]: a float32 scalar,
    computed with the reference's operations so that floor(gamma * N0) lands on the same integer."""
    r = torch.tensor((step + 1) / n_steps, dtype=torch.float32)
    return (r * math.pi / 2).cos().clamp(1e-10, 1.0)


def n_still_masked(step: int, n_steps: int, n0: int, n_masked_now: int) -> int:
    """How many cells stay masked after `step`: floor(cos(pi/2 * r) * N0), r = (step + 1) / n_steps.

    At least 1 and at most (currently masked - 1) on every step but the last, 0 on the last.
    (The loop computes the same with tensors for a whole batch: `keep_masked_counts`.)
    """
    n = int(torch.floor(still_masked_fraction(step, n_steps) * torch.tensor(n0)).item())
    if step != n_steps - 1:
        n = max(1, min(n_masked_now - 1, n))
    return n


def keep_masked_counts(gamma, n0, n_masked_now, at_least):
    """`n_still_masked` for a batch without leaving the device: gamma (float32 scalar tensor),
    n0 and n_masked_now (B,) long, at_least (long scalar tensor): 1 before the last step, 0 on it
    (where floor(1e-10 * N0) is 0 and the clamp to [1, masked - 1] does not apply)."""
    n = (gamma * n0.float()).floor().long()
    return torch.maximum(torch.minimum(n, n_masked_now - 1), at_least)


def remask(confidence, masked, n_keep_masked):
    """Which cells stay masked, per item: confidence and masked (B, n_cells), n_keep_masked (B,).

    The reference sorts the confidences of all n_cells cells of the item (unmasked cells count as
    +inf), takes the value at index n_keep_masked as the cut-off and masks every cell below it.
    A sort, not `kthvalue`, so that it runs on every device (Apple MPS has no kthvalue); an
    index past the grid (a one-cell grid asked to keep one cell) is +inf, so the cell stays
    masked. Returns the (B, n_cells) selection and the (B,) cut-offs.
    """
    n_cells = confidence.shape[1]
    ranked = confidence.masked_fill(~masked, math.inf).sort(dim=1).values
    cut_off = ranked.gather(1, n_keep_masked.clamp(max=n_cells - 1)[:, None]).squeeze(1)
    cut_off = cut_off.masked_fill(n_keep_masked >= n_cells, math.inf)
    return masked & (confidence < cut_off[:, None]), cut_off


# --- filters on logits (N, vocab) ---------------------------------------------------------------


def typical_filter(logits, mass: float, min_tokens: int, static: bool = True):
    """Keep the most typical tokens (surprisal closest to the entropy) up to `mass`, at least `min_tokens`.

    Where the `min_tokens` most typical tokens already hold `mass` they are exactly the kept set
    (a top-k picks them); elsewhere the prefix of the tokens sorted by typicality decides.
    `static`: compute both for every row and pick one per row (no data-dependent shapes, so
    nothing waits for the device); otherwise sort only the rows that need it (faster on a CPU).
    The kept sets are the same either way.
    """
    log_p = logits.log_softmax(dim=-1)
    p = log_p.exp()
    entropy = -(log_p * p).nansum(dim=-1, keepdim=True)
    distance = (-log_p - entropy).abs()
    k = min(min_tokens, logits.shape[-1])
    _, nearest = distance.topk(k, dim=-1, largest=False)
    settled = p.gather(-1, nearest).sum(dim=-1) >= mass
    remove = torch.ones_like(logits, dtype=torch.bool).scatter(-1, nearest, False)

    def remove_beyond_the_typical_prefix(distance, p):
        sorted_distance, order = distance.sort(dim=-1)
        cumulative = p.gather(-1, order).cumsum(dim=-1)
        last = (cumulative < mass).sum(dim=-1, keepdim=True).clamp(max=logits.shape[-1] - 1)
        remove_sorted = sorted_distance > sorted_distance.gather(-1, last)
        remove_sorted[..., :min_tokens] = False
        return remove_sorted.scatter(-1, order, remove_sorted)

    if static:
        remove = torch.where(settled[:, None], remove, remove_beyond_the_typical_prefix(distance, p))
    else:
        rest = (~settled).nonzero(as_tuple=True)[0]
        if len(rest):
            remove[rest] = remove_beyond_the_typical_prefix(distance[rest], p[rest])
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


def sample_tokens(logits, options: SamplingOptions, sample: bool, uniform, static: bool = True):
    """Draw one token per row of logits (N, vocab); returns tokens (N,) and their probabilities (N,).

    Filters apply in the reference's order (typical, top-k, top-p) on the raw logits; probabilities
    are softmax(logits / temperature). `sample=False` takes the argmax; typical filtering, a
    sampling-time truncation, is then skipped so argmax runs score tokens like the reference does.
    `uniform` (N,) are U(0, 1) draws for inverse-CDF sampling from the per-item generators.
    Temperature 0 is the limit of ever colder sampling: the argmax. `static`: see `typical_filter`.
    """
    if options.temperature == 0:
        sample = False
    if sample and options.typical_filtering:
        logits = typical_filter(logits, options.typical_mass, options.typical_min_tokens, static)
    if options.top_k is not None:
        logits = top_k_filter(logits, options.top_k)
    if options.top_p is not None and options.top_p < 1.0:
        logits = top_p_filter(logits, options.top_p)
    probs = (logits / options.temperature if options.temperature > 0 else logits).softmax(dim=-1)
    if sample:
        cdf = probs.cumsum(dim=-1)
        threshold = uniform.unsqueeze(-1) * cdf[:, -1:]
        # The first token whose cdf exceeds the draw (so a draw of exactly 0 cannot land on a
        # leading token of probability 0, one that a filter removed): the number of cdf values
        # <= the draw, which is `searchsorted(right=True)` on a non-decreasing cdf, on any device.
        tokens = (cdf <= threshold).sum(dim=-1).clamp(max=probs.shape[-1] - 1)
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


# --- the random draws ----------------------------------------------------------------------------


def _noise_scale(step: int, options: SamplingOptions) -> float:
    """mask_temperature * (1 - r), r as the float32 the schedule uses (as the reference computes it)."""
    r = torch.tensor((step + 1) / options.sampling_steps, dtype=torch.float32)
    return options.mask_temperature * (1 - float(r))


def draws_per_item(n_cells: int, options: SamplingOptions) -> int:
    """How many U(0, 1) draws one item can need in a whole `generate` call.

    Each step, an item's k-th masked cell takes the k-th of the step's draws for sampling and,
    where the mask noise is on, the (n + k)-th for its Gumbel noise (n = cells masked at the step
    start): the order the reference's per-step `rand(n)` calls would give them. A step starts
    with at most N0 cells masked (step 0) or max(1, floor(gamma * N0)) (later steps), N0 <= n_cells.
    """
    total, bound = 0, n_cells
    for step in range(options.sampling_steps):
        total += bound * (2 if _noise_scale(step, options) != 0 else 1)
        gamma = still_masked_fraction(step, options.sampling_steps)
        bound = min(n_cells, max(1, int(torch.floor(gamma * torch.tensor(n_cells)))))
    return total


def draw_noise(generators, n_draws: int, device) -> torch.Tensor:  # -> (B, n_draws) float32 on `device`
    """Every draw of the call up front, one row per item from its own generator.

    On a CPU generator, one `rand(n)` gives the same numbers as consecutive smaller calls, so
    the tokens are those of drawing step by step; drawing first keeps the steps free of random
    number generation (nothing to capture in a CUDA graph) and works with generators on any
    device, CPU generators included for devices without their own (Apple MPS)."""
    return torch.stack([torch.rand(n_draws, generator=g, device=g.device).to(device) for g in generators])


# --- one step and the loop ----------------------------------------------------------------------


@dataclass
class DecodeState:
    """What a step reads and updates in place: static shapes, so a step can be captured or compiled."""

    z: torch.Tensor  # (B, C, T) codes, MASK where still masked
    n0: torch.Tensor  # (B,) long: cells masked before the first step
    noise: torch.Tensor  # (B, L) float32: every U(0, 1) draw of the call (draw_noise)
    offset: torch.Tensor  # (B,) long: draws used so far
    schedule: dict  # per-step parameters, each (n_steps,) on the device: see `schedule_tensors`


def schedule_tensors(options: SamplingOptions, device) -> dict:
    """Per step: gamma (float32), the least count kept masked (1, or 0 on the last step), the
    mask-noise scale (float32) and the draws per masked cell (2 with noise, else 1)."""
    S = options.sampling_steps
    scales = [_noise_scale(step, options) for step in range(S)]
    return {
        "gamma": torch.stack([still_masked_fraction(step, S) for step in range(S)]).to(device),
        "at_least": torch.tensor([0 if step == S - 1 else 1 for step in range(S)], device=device),
        "noise_scale": torch.tensor(scales, dtype=torch.float32, device=device),
        "draws": torch.tensor([2 if scale != 0 else 1 for scale in scales], device=device),
    }


def start_state(model, codes, mask, options: SamplingOptions, generators) -> DecodeState:
    n_cond = model.n_conditioning_codebooks
    mask = mask.bool().clone()
    mask[:, :n_cond] = False
    z = codes.masked_fill(mask, model.mask_token)  # (B, C, T)
    # per item; counts MASK tokens, so MASK already in `codes` where mask is 0 counts as well
    n0 = (z[:, n_cond:] == model.mask_token).flatten(1).sum(dim=1)
    noise = draw_noise(generators, draws_per_item(model.n_predict_codebooks * codes.shape[-1], options), z.device)
    return DecodeState(z=z, n0=n0, noise=noise, offset=torch.zeros_like(n0),
                       schedule=schedule_tensors(options, z.device))


def decode_step(model, state: DecodeState, step, options: SamplingOptions, sample: bool,
                static: bool | None = None) -> torch.Tensor:
    """One step on the whole batch, updating `state` in place; returns the (B,) cut-offs.

    `step`: an int, or a long scalar tensor (a captured step reads its index from the device).
    `static` (default: everywhere but on the CPU): shape-static, without host synchronisation, so
    the step can be captured as a CUDA graph or compiled: the head and the sampler run on every
    cell of the grid and only the masked cells' results are used. On the CPU, where reading a
    count costs no wait, the sampler runs on the masked cells only; the tokens are the same.
    The head always runs on every cell, one item at a time on the CPU (`cell_logits`). Cells are
    listed codebook-major, then by time, the order in which the reference hands out the draws.
    """
    z, noise = state.z, state.noise
    B, C, T = z.shape
    n_cond = model.n_conditioning_codebooks
    predicted = z[:, n_cond:]  # (B, n_predict, T), a view
    masked = (predicted == model.mask_token).flatten(1)  # (B, n_cells)
    n_masked = masked.sum(dim=1)  # (B,)
    logits = model.cell_logits(model.hidden(z)).flatten(0, 2)  # (B * n_cells, vocab) float32
    last_draw = noise.shape[1] - 1
    rank = masked.cumsum(dim=1, dtype=torch.int32) - 1  # among the item's masked cells (int32: MPS)
    index = (state.offset[:, None] + rank).clamp(0, last_draw)  # (B, n_cells)
    uniform = noise.gather(1, index).flatten()
    if not (z.device.type != "cpu" if static is None else static):
        rows = masked.flatten().nonzero(as_tuple=True)[0]
        sampled, sampled_probs = sample_tokens(logits[rows], options, sample, uniform[rows], static=False)
        tokens = torch.zeros(len(uniform), dtype=torch.long).index_copy_(0, rows, sampled)
        probs = torch.ones(len(uniform)).index_copy_(0, rows, sampled_probs)
    else:
        tokens, probs = sample_tokens(logits, options, sample, uniform)

    # confidence = log p + mask_temperature * (1 - r) * Gumbel noise; U(1e-20, 1) as the reference draws it
    u = noise.gather(1, (index + n_masked[:, None]).clamp(max=last_draw)).clamp(min=1e-20)
    at_step = {name: _at(values, step) for name, values in state.schedule.items()}
    confidence = probs.log().view(B, -1) + at_step["noise_scale"] * -torch.log(-torch.log(u))
    keep = keep_masked_counts(at_step["gamma"], state.n0, n_masked, at_step["at_least"])
    stay_masked, cut_off = remask(confidence, masked, keep)

    new = torch.where(masked & ~stay_masked, tokens.view(B, -1), predicted.flatten(1))
    predicted.copy_(new.view_as(predicted))
    state.offset.add_(n_masked * at_step["draws"])
    return cut_off


def _at(values, step):  # values (n_steps,); step an int or a long tensor holding one index
    """values[step] without reading a tensor index back to the host (indexing with a 0-d tensor would)."""
    return values[step] if isinstance(step, int) else values.index_select(0, step.reshape(1)).squeeze(0)


def generate(model, codes, mask, options: SamplingOptions = SamplingOptions(), generators=None,
             on_step=None, trace: Trace | None = None, step_fn=None):
    """Fill in masked cells of `codes` (B, C, T) where `mask` (B, C, T) is 1; returns new codes.

    Conditioning codebooks (the c2f model's first 4) are never regenerated. `generators`: one
    torch.Generator per batch item, on the CPU or the codes' device (default: fresh unseeded CPU
    ones). `on_step(step, n_steps)` is called after every step; it may raise to cancel.
    `step_fn`: a stand-in for `decode_step` with its signature (a compiled or graph-captured one).
    On the CPU the loop stops early once nothing is masked (checking is free there; on a GPU it
    would wait for the device, and the remaining steps then change nothing).
    """
    B = codes.shape[0]
    if generators is None:
        generators = [torch.Generator() for _ in range(B)]
        for g in generators:
            g.seed()
    if len(generators) != B:
        raise ValueError(f"need one generator per batch item: got {len(generators)} for a batch of {B}")
    state = start_state(model, codes, mask, options, generators)
    step_fn = step_fn or decode_step
    on_cpu = codes.device.type == "cpu"
    if trace is not None:
        trace.start(state.z, model.mask_token)
    predicted = state.z[:, model.n_conditioning_codebooks:]
    for step in range(options.sampling_steps):
        if on_cpu and not (predicted == model.mask_token).any():
            break
        sample = options.temperature > 0 and (step / options.sampling_steps) <= options.sample_cutoff
        cut_off = step_fn(model, state, step, options, sample)
        if trace is not None:
            trace.record(state.z, model.mask_token, cut_off.tolist())
        if on_step is not None:
            on_step(step, options.sampling_steps)
    return state.z
