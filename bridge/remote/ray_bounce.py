"""`vampbridge bounce ... --ray [ADDRESS]`: a bounce spread over a Ray cluster.

One actor per GPU (or `--ray-workers N` CPU workers) loads the models once and makes single
variations; the driver (this process) plans the bounce, skips what is already on disk, hands
out variations to idle actors and writes every result itself, with the names, recipes and
tokens a local bounce writes, through the code a local run writes with
(`bridge.remote.local_outputs`, as the relay does: the same folder rule, exclusive publish,
`-2` names when a file of the user's has the name, the created-files record; only
VampBridge's own earlier renders count as done). A variation on its own makes exactly the audio it makes in a local
bounce's batch (the sampler seeds each batch row by itself), so the two bounces are equal file
for file.

Each actor receives the region's samples (a float32 WAV, put in Ray's object store once per
input), never a path: workers on other machines need only the model folder at the same path.
An actor that dies loses only its in-flight variation: the driver starts a replacement and
gives the variation to the next idle actor.

    bounce = RayBounce(model_dir=..., n_workers=2)
    outcomes = bounce.run(planned_inputs)      # [InputOutcome], files written as they come
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from bridge.output_folder import OutputFolder
from bridge.remote.local_outputs import local_names, write_variation
from bridge.request import RequestError
from bridge.variation_files import earlier_render

MAX_REPLACEMENTS_PER_WORKER = 3


class VariationWorker:
    """A Ray actor's body: one loaded model set, one variation per call (no files kept)."""

    def __init__(self, model_dir: str, device: str | None, finetune: str | None) -> None:
        from bridge.pipeline import Pipeline

        self.pipeline = Pipeline(model_dir=model_dir, device=device, finetune=finetune)
        self.scratch = Path(tempfile.mkdtemp(prefix="vampbridge-ray-"))

    def pid(self) -> int:
        return os.getpid()

    def model_info(self) -> dict:
        """The loaded models' files and hashes and the precision (what names a variation), loading them now."""
        precision = self.pipeline.interface.precision  # loads the models, and so the model info
        return {**self.pipeline._model_info, "precision": precision}

    def run(self, region_wav: bytes, fields: dict, index: int) -> dict:
        """Variation `index` of the request `fields` on the region: its WAV, recipe, tokens."""
        from bridge.request import VampRequest

        region = self.scratch / f"{hashlib.sha256(region_wav).hexdigest()}.wav"
        if not region.is_file():
            region.write_bytes(region_wav)
        out = self.scratch / uuid.uuid4().hex
        try:
            request = VampRequest.from_dict({**fields, "source_path": str(region),
                                             "output_dir": str(out)})
            (result,) = self.pipeline.run(request, only_variations=[index], skip_existing=False)
            recipe = json.loads(Path(result.recipe_path).read_text())
            return {"wav": Path(result.audio_path).read_bytes(), "recipe": recipe,
                    "tokens": (out / recipe["tokens"]).read_bytes()}
        finally:
            shutil.rmtree(out, ignore_errors=True)


@dataclass
class PlannedInput:
    """One bounce input: its label, its validated request (seed fixed) and its output folder."""

    label: str
    request: object  # bridge.request.VampRequest
    output_dir: Path


@dataclass
class InputOutcome:
    label: str
    n_new: int = 0
    n_kept: int = 0
    error: str | None = None
    results: list = field(default_factory=list)  # (index, audio path) of every variation


class RayBounce:
    """Runs planned inputs on a Ray cluster (already `ray.init`-ed); see the module docstring.

    `n_workers` actors (default: one per GPU of the cluster, else one); each takes one GPU when
    the cluster has GPUs, else `cpus_per_worker` CPUs.
    """

    def __init__(self, *, model_dir: str, device: str | None = None, finetune: str | None = None,
                 n_workers: int | None = None, cpus_per_worker: float = 1.0) -> None:
        import ray

        n_gpus = int(ray.cluster_resources().get("GPU", 0))
        self.n_workers = n_workers or max(1, n_gpus)
        options = {"num_gpus": 1, "num_cpus": 0} if n_gpus else {"num_cpus": cpus_per_worker}
        self._actor_class = ray.remote(**options)(VariationWorker)
        self._args = (str(model_dir), device if not n_gpus else (device or "cuda"), finetune)
        self._pids: dict[int, int] = {}  # id(actor handle) -> its process id
        self.workers = self._start_workers(self.n_workers)
        self._in_flight: dict = {}  # object ref -> (worker, task)
        self.n_retried = 0
        self._replacements = 0

    def _start_workers(self, n: int) -> list:
        """`n` new actors, started in parallel; returns once each has its process."""
        import ray

        workers = [self._actor_class.remote(*self._args) for _ in range(n)]
        for worker, pid in zip(workers, ray.get([w.pid.remote() for w in workers])):
            self._pids[id(worker)] = pid
        return workers

    def in_flight_pids(self) -> list[int]:
        """Process ids of the workers making a variation now (tests kill one)."""
        return sorted({self._pids[id(w)] for w, _ in self._in_flight.values()})

    def run(self, inputs: list[PlannedInput], *,
            on_progress: Callable[[int, int], None] | None = None,
            on_written: Callable[["RayBounce"], None] | None = None) -> list[InputOutcome]:
        """Make every missing variation of `inputs`; `on_progress(done, total)` after each."""
        import ray

        from bridge.audio import read_region, write_audio_atomic

        model_info = ray.get(self.workers[0].model_info.remote())
        outcomes = [InputOutcome(p.label) for p in inputs]
        tasks: deque = deque()
        regions: dict[int, object] = {}
        folders: dict[int, OutputFolder] = {}  # held while the bounce runs, as a local run holds it
        try:
            for i, planned in enumerate(inputs):
                try:
                    folders[i] = OutputFolder.open(planned.output_dir)
                except RequestError as e:  # a refused folder fails this input, as locally
                    outcomes[i].error = str(e)
                    continue
                self._plan(i, planned, folders[i], model_info, outcomes[i], tasks)
                if any(t[0] == i for t in tasks):
                    request = planned.request
                    audio, rate = read_region(request.source_path, request.start_s, request.length_s)
                    with tempfile.TemporaryDirectory() as scratch:
                        wav = Path(scratch) / "region.wav"
                        write_audio_atomic(wav, audio, rate, bit_depth="float32")
                        regions[i] = ray.put(wav.read_bytes())
            return self._make(inputs, folders, outcomes, tasks, regions, on_progress, on_written)
        finally:
            for folder in folders.values():
                folder.close()

    @staticmethod
    def _plan(i: int, planned: PlannedInput, folder: OutputFolder, model_info: dict, outcome: InputOutcome,
              tasks: deque) -> None:
        """Queue the variations of input `i` not rendered here before (by VampBridge)."""
        request = planned.request
        for k in range(request.n_variations):
            names = local_names(request, model_files=model_info["files"], seed=request.seed + k,
                                precision=model_info["precision"])
            earlier = earlier_render(folder, names.stem, names.fingerprint)
            if earlier is not None:
                outcome.n_kept += 1
                outcome.results.append((k, str(folder.path / earlier[0])))
            else:
                tasks.append((i, k))

    def _make(self, inputs, folders, outcomes, tasks, regions, on_progress, on_written) -> list[InputOutcome]:
        import ray

        total, done = len(tasks), 0
        if on_progress is not None:
            on_progress(0, total)
        idle = list(self.workers)
        while tasks or self._in_flight:
            while tasks and idle:
                task = tasks.popleft()
                i, k = task
                if outcomes[i].error is not None:  # that input failed: skip its other variations
                    continue
                worker = idle.pop()
                fields = _remote_fields(inputs[i].request)
                ref = worker.run.remote(regions[i], fields, k)
                self._in_flight[ref] = (worker, task)
            if not self._in_flight:
                continue
            ready, _ = ray.wait(list(self._in_flight), num_returns=1)
            worker, (i, k) = self._in_flight.pop(ready[0])
            try:
                produced = ray.get(ready[0])
            except ray.exceptions.RayActorError:  # the worker died: only this variation is lost
                self.n_retried += 1
                tasks.appendleft((i, k))
                idle.append(self._replace(worker))
                continue
            except ray.exceptions.RayTaskError as e:  # the request failed on the worker
                idle.append(worker)
                outcomes[i].error = str(e.cause if hasattr(e, "cause") else e).splitlines()[0][:200]
                continue
            idle.append(worker)
            try:
                written = self._write(inputs[i], folders[i], produced)
            except RequestError as e:  # the folder was replaced, no free name: this input stops
                outcomes[i].error = str(e)
                continue
            outcomes[i].results.append((k, written))
            outcomes[i].n_new += 1
            done += 1
            if on_progress is not None:
                on_progress(done, total)
            if on_written is not None:
                on_written(self)
        for o in outcomes:
            o.results.sort()
        return outcomes

    def _replace(self, dead):
        self._replacements += 1
        if self._replacements > MAX_REPLACEMENTS_PER_WORKER * self.n_workers:
            raise RuntimeError(f"Ray workers died {self._replacements} times; see the Ray logs "
                               "(out of memory? a node lost?)")
        (fresh,) = self._start_workers(1)
        self.workers = [fresh if w is dead else w for w in self.workers]
        return fresh

    @staticmethod
    def _write(planned: PlannedInput, folder: OutputFolder, produced: dict) -> str:
        """Write one variation as a local bounce would (tokens, WAV, recipe); its WAV's path."""
        request = planned.request
        recipe = produced["recipe"]
        names = local_names(request, model_files=recipe["models"]["files"], seed=int(recipe["seed"]),
                                precision=recipe.get("precision", "fp32"))
        audio_path, _ = write_variation(folder, request, names, recipe=recipe,
                                        write_audio=lambda f: f.write(produced["wav"]),
                                        write_tokens=lambda f: f.write(produced["tokens"]))
        return str(audio_path)


def _remote_fields(request) -> dict:
    from bridge.remote.relay import _remote_fields as fields_of

    return fields_of(request)


# -- the command ------------------------------------------------------------------------------

def bounce_on_ray(args, jobs) -> int:
    """`vampbridge bounce ... --ray [ADDRESS]`: the same inputs, files and summary as a local
    bounce, one progress bar over the whole bounce."""
    import time

    import ray

    from bridge.cli import ProgressBar, print_summary, request_from_args
    from bridge.models import resolve_model_dir
    from bridge.request import RequestError

    started = time.perf_counter()
    planned, failed = [], []
    for n, (source, overrides) in enumerate(jobs, 1):
        try:
            request = request_from_args(args, source, **overrides)
            request.validate()
            if request.seed is None:  # fixed now, recorded in every recipe, as a local run does
                request.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
            planned.append(PlannedInput(str(source), request, Path(request.output_dir)))
        except (RequestError, ValueError, OSError) as e:
            print(f"error: {source}: {e}", file=sys.stderr)
            failed.append((str(source), "FAILED", str(e).splitlines()[0][:80], 0.0))
    model_dir = resolve_model_dir(args.model)
    started_here = not ray.is_initialized()
    if started_here:
        if args.ray == "auto":  # a local cluster over this machine's GPUs, on loopback only
            ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        else:
            ray.init(address=args.ray, include_dashboard=False, log_to_driver=False)
    try:
        bounce = RayBounce(model_dir=str(model_dir), device=args.device, finetune=args.finetune,
                           n_workers=args.ray_workers)
        label = f"bounce on Ray ({bounce.n_workers} workers)"
        bar = ProgressBar(label)

        def progress(done: int, total: int) -> None:
            from bridge.pipeline import Progress

            bar(Progress(done / total if total else 1.0, "rendering", -1))

        try:
            outcomes = bounce.run(planned, on_progress=progress)
        except BaseException:
            bar.close(completed=False)
            raise
        bar.close()
    finally:
        if started_here:
            ray.shutdown()
    elapsed = time.perf_counter() - started
    summary = list(failed)
    for o in outcomes:
        if o.error:
            print(f"error: {o.label}: {o.error}", file=sys.stderr)
            summary.append((o.label, "FAILED", o.error[:80], elapsed))
        else:
            summary.append((o.label, "ok", f"{o.n_new} new, {o.n_kept} kept", elapsed))
    print_summary(summary)
    return 1 if any(s[1] != "ok" for s in summary) else 0
