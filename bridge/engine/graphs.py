"""Faster stand-ins for `sampler.decode_step` on a GPU: a CUDA-graph replay and a compiled step.

Either can be given to `generate(step_fn=...)` or set as `Interface.step_fn`. The static step
(`decode_step(static=True)`) has no data-dependent shapes and never waits for the device, and
every random draw is made before the loop, so a whole step (the transformer, the head, the
sampler) replays as one graph: one launch instead of some thousand kernel launches per step.
The tokens are those of the eager step on the same device. Measured by `benchmarks/gpu.py`.
"""

from dataclasses import astuple

import torch

from .sampler import DecodeState, decode_step


class CudaGraphStep:
    """`decode_step` captured once per (model, shapes, options, sample flag) and replayed.

    The graph reads and writes its own copy of the state: the call's state is copied in on its
    first step, and the codes and the draw offset are copied out after every replay (a few
    hundred kB). All graphs share one memory pool; `release()` frees them.
    """

    def __init__(self, warmup_steps: int = 2):
        self.warmup_steps = warmup_steps
        self.graphs = {}
        self.pool = None

    def release(self):
        self.graphs.clear()
        self.pool = None

    def __call__(self, model, state: DecodeState, step, options, sample: bool) -> torch.Tensor:
        key = (id(model), tuple(state.z.shape), tuple(state.noise.shape), astuple(options), sample)
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(model, state, options, sample)
        if entry["owner"] is not state:  # the first step of a call: its state goes in
            _copy_state(entry["state"], state)
            entry["owner"] = state
        entry["step"].fill_(int(step))
        entry["graph"].replay()
        state.z.copy_(entry["state"].z)
        state.offset.copy_(entry["state"].offset)
        return entry["cut_off"].clone()

    def _capture(self, model, state: DecodeState, options, sample: bool) -> dict:
        static = DecodeState(z=state.z.clone(), n0=state.n0.clone(), noise=state.noise.clone(),
                             offset=state.offset.clone(),
                             schedule={k: v.clone() for k, v in state.schedule.items()})
        step = torch.zeros((), dtype=torch.long, device=state.z.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph: lazy inits, caches, autotuning
            for _ in range(self.warmup_steps):
                decode_step(model, static, step, options, sample, static=True)
        torch.cuda.current_stream().wait_stream(side)
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            cut_off = decode_step(model, static, step, options, sample, static=True)
        return {"graph": graph, "state": static, "step": step, "cut_off": cut_off, "owner": None}


def _copy_state(dst: DecodeState, src: DecodeState):
    for name in ("z", "n0", "noise", "offset"):
        getattr(dst, name).copy_(getattr(src, name))
    for name, value in src.schedule.items():
        dst.schedule[name].copy_(value)


class CompiledStep:
    """`decode_step` through `torch.compile` (static shapes; the step index is passed as a device
    scalar, so one compiled graph serves every step). `mode`: torch.compile's."""

    def __init__(self, mode: str | None = None):
        self.mode = mode
        self.step_fn = torch.compile(_static_step, mode=mode, dynamic=False)
        self._steps = {}

    def __call__(self, model, state: DecodeState, step, options, sample: bool) -> torch.Tensor:
        device = state.z.device
        index = self._steps.get((device, int(step)))
        if index is None:
            index = self._steps[(device, int(step))] = torch.tensor(int(step), device=device)
        return self.step_fn(model, state, index, options, sample)


def _static_step(model, state, step, options, sample):
    return decode_step(model, state, step, options, sample, static=True)
