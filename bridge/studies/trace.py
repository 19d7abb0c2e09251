"""Record how one request's variations are decoded, step by step, and write it compactly.

The engine's `Trace` holds the masked codes after every sampling step of every chunk. Because a cell,
once given a token, keeps it for the rest of its stage, the whole record is exactly: the codes each
stage starts from, the codes it ends with, and for every generated cell the step that filled it.
`trace.npz` stores that (plus every step's masked count and cut-off per chunk); `TraceRecord`
rebuilds any step. The layout is in docs/formats.md.

The trace reproduces what `Pipeline.run` makes for the same request: the same preprocessing, the
same mask from the same seed, the same windows (`windowed_vamp`, or `Interface.vamp` for a pipeline
with the reference's chunks); for a stereo source, the mid row (tests hold it to that). In windowed
runs each "chunk" of the record is what one window decided (its committed frames).
"""

import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..audio import read_region, write_audio_atomic
from ..engine.sampler import Trace, n_still_masked
from .. import stereo
from ..engine.windows import windowed_vamp
from ..output_folder import check_report_folder
from ..request import RequestError
from . import figures, html
from .metrics import FRAME_RATE_HZ, HOP_LENGTH, N_COARSE_CODEBOOKS, SAMPLE_RATE

TRACE_KIND = "vampbridge.trace"
TRACE_FORMAT = 1
STAGES = ("coarse", "c2f")
MAX_ANIMATION_FRAMES = 121

# cell states in the figures
KEPT, GENERATED, STILL_MASKED, WAITING = 0, 1, 2, 3


def _log_to_stderr(message: str):
    print(message, file=sys.stderr, flush=True)


# --- from the engine's record to arrays -----------------------------------------------------------


def stage_arrays(trace: Trace, stage: str, n_items: int, n_frames: int, n_steps: int, mask_token: int) -> dict:
    """The runs of one stage as whole-clip arrays (see docs/formats.md, "trace.npz").

    Raises RuntimeError if the record does not have the shape the layout relies on: every
    (item, chunk) decoded once, cells never re-masked or re-drawn once filled, nothing left
    masked after the last step.
    """
    runs = [run for run in trace.runs if run["stage"] == stage]
    if not runs:
        raise RuntimeError(f"the trace holds no {stage} runs")
    n_codebooks = runs[0]["start"].shape[1]
    starts = sorted({s for run in runs for _, s in run["rows"]})
    chunk_of = {s: k for k, s in enumerate(starts)}
    K = len(starts)
    chunk_frames = np.zeros(K, np.int32)
    commit_start = np.asarray(starts, np.int32)  # first frame each chunk (window) decided
    out = {
        "start": np.zeros((n_items, n_codebooks, n_frames), np.int16),
        "final": np.zeros((n_items, n_codebooks, n_frames), np.int16),
        "fill_step": np.full((n_items, n_codebooks, n_frames), -1, np.int16),
        "masked": np.zeros((n_items, n_steps, K), np.int32),
        "cut_off": np.full((n_items, n_steps, K), np.nan, np.float32),
        "n0": np.zeros((n_items, K), np.int32),
        "steps_run": np.zeros((n_items, K), np.int32),
    }
    seen = np.zeros((n_items, K), bool)
    for run in runs:
        length = run["start"].shape[-1]
        if len(run["steps"]) > n_steps:
            raise RuntimeError(f"a {stage} run recorded {len(run['steps'])} steps, more than the {n_steps} asked for")
        for j, (item, first) in enumerate(run["rows"]):
            k = chunk_of[first]
            if seen[item, k]:
                raise RuntimeError(f"{stage} chunk at frame {first} of item {item} was decoded twice "
                                   "(feedback passes cannot be traced)")
            seen[item, k] = True
            n = min(length, n_frames - first)
            tokens = run["start"][j].numpy()  # (C, L)
            masked = tokens == mask_token
            start = tokens
            fill = np.where(masked, np.iinfo(np.int16).max, -1).astype(np.int16)
            for i, step in enumerate(run["steps"]):
                now_tokens, now_masked = step["tokens"][j].numpy(), step["mask"][j].numpy()
                if (now_masked & ~masked).any() or (now_tokens[~masked] != tokens[~masked]).any():
                    raise RuntimeError(f"{stage} step {i} changed a cell that an earlier step had filled; "
                                       "the trace layout cannot hold that")
                fill[masked & ~now_masked] = i
                out["masked"][item, i, k] = step["masked"][j]
                out["cut_off"][item, i, k] = step["cut_off"][j]
                tokens, masked = now_tokens, now_masked
            if masked.any():
                raise RuntimeError(f"{stage} chunk at frame {first} still had masked cells after its last step")
            # a window decided only its committed frames; a chunk all of its own
            lo, hi = run.get("commit", (0, n))
            hi = min(hi, n)
            chunk_frames[k] = hi - lo
            commit_start[k] = first + lo
            out["start"][item, :, first + lo:first + hi] = start[:, lo:hi]
            out["final"][item, :, first + lo:first + hi] = tokens[:, lo:hi]
            out["fill_step"][item, :, first + lo:first + hi] = fill[:, lo:hi]
            out["n0"][item, k] = run["n0"][j]
            out["steps_run"][item, k] = len(run["steps"])
    if not seen.all():
        raise RuntimeError(f"the trace misses {int((~seen).sum())} {stage} chunk(s)")
    out["chunk_start"] = commit_start
    out["chunk_frames"] = chunk_frames
    return out


def expected_masked(masked, n0, steps_run) -> np.ndarray:
    """(V, S, K) cells the cosine schedule leaves masked after each step, from each chunk's N0 and
    the count before the step (`n_still_masked`); -1 where a chunk ran fewer steps."""
    V, S, K = masked.shape
    expected = np.full((V, S, K), -1, np.int64)
    for v in range(V):
        for k in range(K):
            before = int(n0[v, k])
            for i in range(int(steps_run[v, k])):
                expected[v, i, k] = n_still_masked(i, S, int(n0[v, k]), before)
                before = int(masked[v, i, k])
    return expected


# --- reading it back ----------------------------------------------------------------------------------


class TraceRecord:
    """A `trace.npz` read back: `meta` (dict), `arrays` (name -> array), and any step rebuilt."""

    def __init__(self, path):
        with np.load(path) as data:
            self.arrays = {name: data[name] for name in data.files}
        self.meta = json.loads(str(self.arrays.pop("meta")))
        if self.meta.get("kind") != TRACE_KIND:
            raise ValueError(f"{path} is not a VampBridge trace (kind {self.meta.get('kind')!r})")
        if self.meta.get("format") != TRACE_FORMAT:
            raise ValueError(f"{path} has trace format {self.meta.get('format')}; this build reads {TRACE_FORMAT}")

    @property
    def stages(self) -> list:
        return list(self.meta["stages"])

    def n_steps(self, stage: str) -> int:
        return self.arrays[f"{stage}_masked"].shape[1]

    def tokens_after(self, stage: str, step: int) -> np.ndarray:
        """(V, C, T) codes after `step` (0-based; -1: before the first), MASK where still masked."""
        fill, start, final = (self.arrays[f"{stage}_{name}"] for name in ("fill_step", "start", "final"))
        return np.where((fill >= 0) & (fill <= step), final, start)

    def mask_after(self, stage: str, step: int) -> np.ndarray:
        """(V, C, T) bool: still masked after `step` (-1: the stage's starting mask)."""
        return self.arrays[f"{stage}_fill_step"] > step

    def expected_masked(self, stage: str) -> np.ndarray:
        a = self.arrays
        return expected_masked(a[f"{stage}_masked"], a[f"{stage}_n0"], a[f"{stage}_steps_run"])


def cell_states(record: TraceRecord, item: int = 0) -> list:
    """[(label, (14, T) state)] for the start and every step of every stage of variation `item`, over
    all codebooks: KEPT, GENERATED (filled by this or an earlier step), STILL_MASKED, or WAITING
    (masked for the coarse-to-fine stage, which has not started)."""
    def state(fill, step):
        return np.where(fill < 0, KEPT, np.where(fill <= step, GENERATED, STILL_MASKED)).astype(np.int8)

    coarse = record.arrays["coarse_fill_step"][item]  # (4, T)
    fine = record.arrays["c2f_fill_step"][item, N_COARSE_CODEBOOKS:] if "c2f" in record.stages else None
    n_fine = record.meta["n_codebooks"] - N_COARSE_CODEBOOKS
    if fine is not None:
        fine_waiting = np.where(fine < 0, KEPT, WAITING).astype(np.int8)
    else:
        fine_waiting = np.zeros((n_fine, coarse.shape[-1]), np.int8)
    frames = [("start", np.concatenate([state(coarse, -1), fine_waiting]))]
    S = record.n_steps("coarse")
    for i in range(S):
        frames.append((f"coarse step {i + 1}/{S}", np.concatenate([state(coarse, i), fine_waiting])))
    if fine is not None:
        S = record.n_steps("c2f")
        for i in range(S):
            frames.append((f"c2f step {i + 1}/{S}", np.concatenate([state(coarse, 10**6), state(fine, i)])))
    return frames


# --- running ----------------------------------------------------------------------------------------


def run_trace(pipeline, request, output_dir=None, log=_log_to_stderr) -> Path:
    """Generate `request`'s variations with the trace on; write trace.npz, figures, WAVs and
    report.html into `output_dir` (default: the request's output_dir). Returns the npz path."""
    request.validate()
    if request.stereo_mode in ("per_channel", "coupled"):
        raise RequestError("stereo", "a trace records the mono (mid) mix the engine sees; use --stereo mid_side "
                           "or mono")
    if request.seed is None:
        request.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    root = check_report_folder(str(Path(output_dir or request.output_dir).expanduser().resolve()),
                               marker="trace.npz", what="trace")
    recipe = request.mask_recipe()
    options, c2f_steps = request.sampling_options()
    seeds = [request.seed + k for k in range(request.n_variations)]

    interface = pipeline.interface
    mask_token = interface.codec.codebook_size
    if request.loop or request.selection_s is not None:
        raise RequestError("loop" if request.loop else "regen_start_s",
                           "a trace records a whole region, not a loop or a selection; drop --loop / --select")
    source, source_rate = read_region(request.source_path, request.start_s, request.length_s)
    source = stereo.select_channels(source, request.channel)
    engine_input = stereo.engine_rows(interface, source, "mono", source_rate, False)[0][0]  # (1, n): the mid
    n_samples = engine_input.shape[-1]
    with torch.inference_mode():
        codes = interface.encode_audio(engine_input)  # (1, 14, T)
    T = codes.shape[-1]
    # the masks exactly as Pipeline.run builds them: one per variation, from its seed
    masks = torch.cat([interface.build_mask_from_recipe(recipe, (1,) + tuple(codes.shape[1:]),
                                                        torch.Generator().manual_seed(s), engine_input[0])
                       for s in seeds])
    trace = Trace()
    started = time.perf_counter()
    if pipeline.windows is None:  # the reference's independent chunks
        final = interface.vamp(codes.repeat(len(seeds), 1, 1), masks, batch_size=len(seeds), seeds=seeds,
                               c2f_sampling_steps=c2f_steps, trace=trace, **options.to_dict())
    else:
        final = windowed_vamp(interface, codes, masks, seeds, options, c2f_sampling_steps=c2f_steps,
                              settings=pipeline.windows, trace=trace)
    generate_s = time.perf_counter() - started
    log(f"generated {len(seeds)} variation(s) in {generate_s:.1f} s with the trace on")

    arrays = {"original_codes": codes[0].cpu().numpy().astype(np.int16),
              "mask": masks.cpu().numpy().astype(np.uint8),
              "final_codes": final.cpu().numpy().astype(np.int16)}
    stages = [s for s in STAGES if any(run["stage"] == s for run in trace.runs)]
    steps = {"coarse": options.sampling_steps, "c2f": c2f_steps}
    for stage in stages:
        for name, value in stage_arrays(trace, stage, len(seeds), T, steps[stage], mask_token).items():
            arrays[f"{stage}_{name}"] = value
    meta = {
        "kind": TRACE_KIND, "format": TRACE_FORMAT, "vampbridge_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": {"path": str(Path(request.source_path).resolve()), "start_s": request.start_s,
                  "length_s": request.length_s, "sample_rate": source_rate, "n_samples": n_samples},
        "sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH, "frame_rate_hz": FRAME_RATE_HZ, "n_frames": T,
        "n_codebooks": int(codes.shape[1]), "n_coarse_codebooks": N_COARSE_CODEBOOKS, "mask_token": mask_token,
        "seeds": seeds, "stages": stages, "request": request.to_dict(), "mask": recipe.to_json(),
        "sampling": {**options.to_dict(), "c2f_sampling_steps": c2f_steps},
        "device": str(interface.device), "model_dir": pipeline.info()["model_dir"],
        "generate_s": round(generate_s, 4),
    }
    npz_path = root / "trace.npz"
    np.savez_compressed(npz_path, meta=np.array(json.dumps(meta)), **arrays)
    record = TraceRecord(npz_path)

    # audio: the original as the engine sees it, and each variation as the engine made it
    write_audio_atomic(root / "original.wav", engine_input, SAMPLE_RATE, protect=[request.source_path])
    with torch.inference_mode():
        decoded = interface.decode_codes(final, n_samples).float().cpu().numpy()  # (V, 1, n)
    files = {"npz": "trace.npz", "original": "original.wav", "schedule": "trace_schedule.png",
             "audio": [f"trace_v{k + 1}.wav" for k in range(len(seeds))],
             "strips": [f"trace_strip_v{k + 1}.png" for k in range(len(seeds))]}
    for k in range(len(seeds)):
        write_audio_atomic(root / files["audio"][k], decoded[k], SAMPLE_RATE, protect=[request.source_path])
        states = cell_states(record, k)
        blocks = [state if label.startswith("c2f") else state[:N_COARSE_CODEBOOKS] for label, state in states]
        figures.trace_strip(blocks, [label for label, _ in states], root / files["strips"][k],
                            f"variation {k + 1} (seed {seeds[k]}): every step (coarse: codebooks 0-3; c2f: all 14)")
    figures.trace_schedule([(stage, record.arrays[f"{stage}_masked"][0], record.expected_masked(stage)[0])
                            for stage in stages], root / files["schedule"])
    states = cell_states(record, 0)
    if len(states) > MAX_ANIMATION_FRAMES:
        keep = np.unique(np.linspace(0, len(states) - 1, MAX_ANIMATION_FRAMES).round().astype(int))
        states = [states[i] for i in keep]
    frames = [(label, figures.trace_frame(state, f"variation 1: {label}")) for label, state in states]
    (root / "report.html").write_text(html.trace_page(meta, frames, files))
    log(f"trace: {npz_path}\nreport: {root / 'report.html'}")
    return npz_path
