"""The `vampbridge` command line: vamp, bounce, rerender, models, serve, gui, study, trace, demo.

Every command reports bad input as one line on stderr with a non-zero exit, never a traceback.
"""

import argparse
import json
import sys
import time
from pathlib import Path

AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".aif", ".aiff", ".mp3", ".ogg"}
EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class CliError(Exception):
    pass


# --- shared options --------------------------------------------------------------------------------


def add_vamp_options(p):
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("-n", "--variations", type=int, default=None, help="variations per input (default 3)")
    p.add_argument("--preset", help="mask preset: subtle, balanced, creative, rhythm")
    p.add_argument("--mask", help="mask recipe as JSON text or @file.json (overrides --preset fields)")
    p.add_argument("--seed", type=int, help="seed of the first variation (default: random, recorded)")
    p.add_argument("--steps", type=int, help="coarse sampling steps (default 36)")
    p.add_argument("--c2f-steps", type=int, help="coarse-to-fine sampling steps (default 2)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    p.add_argument("--sampling", help="more sampling options as JSON text or @file.json")
    p.add_argument("--fx", help="effect chain: preset name (none, glue, space, lofi, wide), JSON or @file.json")
    p.add_argument("--start", type=float, default=0.0, help="region start in source seconds")
    p.add_argument("--length", type=float, help="region length in source seconds (default: to the end)")
    p.add_argument("--per-channel", action="store_true",
                   help="vamp each channel as its own variation (the same as --stereo per_channel)")
    p.add_argument("--select", nargs=2, type=float, metavar=("START", "LENGTH"),
                   help="regenerate only this part of the region (source seconds); the rest is kept "
                        "sample for sample and heard as context")
    p.add_argument("--loop", action="store_true", help="treat the region as a loop: the variation loops seamlessly")
    p.add_argument("--stereo", choices=["mid_side", "coupled", "per_channel", "mono"],
                   help="how a stereo source is vamped (default mid_side: keeps the stereo image)")
    p.add_argument("--channel", choices=["all", "left", "right", "mono"], default="all",
                   help="vamp only this channel (or the mono mix); the result has one channel")
    p.add_argument("--float32", action="store_true", help="write 32-bit float WAV instead of 24-bit")
    add_model_options(p)


def add_model_options(p):
    p.add_argument("--model", help="model folder with codec.pth, coarse.pth, c2f.pth (default: installed or bundled)")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--finetune", help="a fine-tune of the model set (its loras/NAME/ folder)")
    p.add_argument("--plugin-dir", action="append", default=[], metavar="FOLDER",
                   help="also load VST3/AU plugins from FOLDER (repeatable); by default only the "
                        "platform's standard plugin folders")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="the transformers' arithmetic: bf16 (CUDA, or a CPU with AVX512_BF16/AMX; checked "
                        "against fp32 at load) or fp32, the reference's (default auto: bf16 on CUDA, fp32 elsewhere)")


def request_from_args(args, source_path, **overrides):
    from .request import VampRequest, load_json_argument

    mask = args.preset or "balanced"
    if args.mask:
        mask = load_json_argument(args.mask, "mask")
        if isinstance(mask, dict) and args.preset and "preset" not in mask:
            mask = {"preset": args.preset, **mask}
    sampling = dict(load_json_argument(args.sampling, "sampling") or {}) if args.sampling else {}
    for key, value in (("sampling_steps", args.steps), ("c2f_sampling_steps", args.c2f_steps),
                       ("temperature", args.temperature)):
        if value is not None:
            sampling[key] = value
    source_path = Path(source_path).expanduser().absolute()  # requests hold absolute paths only
    fields = dict(source_path=str(source_path), start_s=args.start, length_s=args.length, mask=mask,
                  sampling=sampling, fx=load_json_argument(args.fx, "fx") if args.fx else "none",
                  n_variations=args.variations or 3, seed=args.seed, output_dir=str(Path(args.output).resolve()),
                  per_channel=args.per_channel, bit_depth="float32" if args.float32 else 24,
                  regen_start_s=args.select[0] if args.select else None,
                  regen_length_s=args.select[1] if args.select else None,
                  loop=args.loop, stereo=args.stereo, channel=args.channel)
    fields.update(overrides)
    return VampRequest.from_dict(fields)


class ProgressBar:
    """One tqdm bar per job: fraction of the job, with clip, stage and variation in the text."""

    def __init__(self, label: str, position: int = 0):
        from tqdm import tqdm

        self.bar = tqdm(total=1000, desc=label, unit="‰", leave=True, position=position, file=sys.stderr,
                        bar_format="{desc} |{bar}| {percentage:3.0f}%{postfix} [{elapsed}<{remaining}]")

    def __call__(self, progress):
        done = int(progress.fraction * 1000)
        self.bar.update(max(0, done - self.bar.n))
        variation = f" v{progress.variation + 1}" if progress.variation >= 0 else ""
        self.bar.set_postfix_str(f"{progress.stage}{variation}", refresh=False)

    def close(self, completed: bool = True):
        """Fill the bar when the job finished; leave it where it stopped when it failed."""
        if completed:
            self.bar.update(self.bar.total - self.bar.n)
        self.bar.close()

    def run(self, work):
        """`work(self)` with the bar closed afterwards, filled only when it returned."""
        try:
            result = work(self)
        except BaseException:
            self.close(completed=False)
            raise
        self.close()
        return result


def make_pipeline(args):
    from .engine.interface import pick_device
    from .pipeline import Pipeline

    device = getattr(args, "device", None)
    if device:
        try:
            pick_device(device)  # a bad --device is one line, before any model loads
        except RuntimeError as e:
            raise CliError(f"--device {device}: {str(e).splitlines()[0]}") from None
    from .models import resolve_model_dir

    # Resolved now, so the note about the bundled untrained weights comes before any progress bar.
    model_dir = resolve_model_dir(getattr(args, "model", None))
    return Pipeline(model_dir=model_dir, device=device, finetune=getattr(args, "finetune", None),
                    precision=getattr(args, "precision", "auto"))


# --- commands --------------------------------------------------------------------------------------


def cmd_vamp(args):
    request = request_from_args(args, args.input)
    request.validate()  # bad input is reported before any model work
    pipeline = make_pipeline(args)
    results = ProgressBar(Path(args.input).name).run(lambda bar: pipeline.run(request, on_progress=bar))
    for r in results:
        print(f"{r.take_name}: {r.audio_path}" + (" (already there)" if r.reused else ""))
    return 0


def collect_inputs(paths):
    """Files, folders (recursively, audio files only) and JSON job lists -> [(source, overrides)]."""
    jobs = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            if not files:
                raise CliError(f"folder {path} holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            jobs += [(f, {}) for f in files]
        elif path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise CliError(f"cannot read job list {path}: {e}") from None
            entries = data.get("jobs") if isinstance(data, dict) else data
            if not isinstance(entries, list):
                raise CliError(f"job list {path} must be a list of jobs or {{\"jobs\": [...]}}")
            for i, entry in enumerate(entries):
                if not isinstance(entry, dict) or "source_path" not in entry:
                    raise CliError(f"job list {path}: entry {i} needs a source_path")
                entry = dict(entry)
                source = Path(entry.pop("source_path")).expanduser()
                if not source.is_absolute():
                    source = path.parent / source
                jobs.append((source, entry))
        else:
            jobs.append((path, {}))
    return jobs


def cmd_bounce(args):
    from .request import RequestError

    jobs = collect_inputs(args.inputs)
    if args.ray is not None:
        _require_extra("ray", "ray")
        from .remote.ray_bounce import bounce_on_ray

        return bounce_on_ray(args, jobs)
    pipeline = make_pipeline(args)
    summary = []
    for n, (source, overrides) in enumerate(jobs, 1):
        label = f"[{n}/{len(jobs)}] {source.name}"
        started = time.perf_counter()
        try:
            request = request_from_args(args, source, **overrides)
            request.validate()  # a bad input fails here, without a progress bar
            results = ProgressBar(label).run(lambda bar: pipeline.run(request, on_progress=bar))
            reused = sum(r.reused for r in results)
            summary.append((str(source), "ok", f"{len(results) - reused} new, {reused} kept",
                            time.perf_counter() - started))
        except KeyboardInterrupt:
            summary.append((str(source), "cancelled", "", time.perf_counter() - started))
            print_summary(summary)
            return 130
        except (RequestError, ValueError, OSError, RuntimeError) as e:  # RuntimeError: the engine (e.g. out of memory)
            print(f"error: {source}: {e}", file=sys.stderr)
            summary.append((str(source), "FAILED", str(e).splitlines()[0][:80], time.perf_counter() - started))
    print_summary(summary)
    return EXIT_FAILED if any(s[1] != "ok" for s in summary) else 0


def print_summary(rows):
    width = max([len("input")] + [len(r[0]) for r in rows])
    print(f"\n{'input':<{width}}  {'state':<9}  {'seconds':>7}  details")
    for source, state, details, seconds in rows:
        print(f"{source:<{width}}  {state:<9}  {seconds:7.1f}  {details}")
    failed = sum(r[1] != "ok" for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} inputs done" + (f", {failed} failed" if failed else ""))


def cmd_rerender(args):
    pipeline = make_pipeline(args)
    fx = None
    if args.fx:
        from .request import load_json_argument

        fx = load_json_argument(args.fx, "fx")
    result = ProgressBar(Path(args.recipe).name).run(
        lambda bar: pipeline.rerender(args.recipe, fx=fx, seed=args.seed, output_path=args.output,
                                      overwrite=args.overwrite, on_progress=bar))
    print(f"{result.take_name}: {result.audio_path}")
    return 0


def cmd_models(args):
    from . import models

    if args.action == "make-random":
        from .engine.random_weights import make_random

        directory = make_random(args.dir, size=args.size, seed=args.seed)
        print(f"wrote random {args.size} weights (seed {args.seed}) to {directory}")
        return 0
    handler = getattr(models, f"cli_{args.action.replace('-', '_')}", None)
    if handler is None:
        raise CliError(f"`vampbridge models {args.action}` is not available in this build")
    return handler(args)


def cmd_serve(args):
    if args.remote or args.http:
        from .remote import serve as remote_serve

        if args.remote and args.http:
            raise CliError("--remote and --http do not go together: --http serves this machine's GPU, "
                           "--remote uses another's")
        _require_extra("aiohttp" if args.http else None, "remote")
        return remote_serve.serve_relay(args) if args.remote else remote_serve.serve_with_http(args)
    from .osc.server import serve, token_option

    try:
        token = token_option(args)
    except ValueError as e:
        raise CliError(str(e)) from None
    return serve(host=args.host, port=args.port, token=token, model_dir=args.model, device=args.device,
                 data_dir=args.data_dir, keep_days=args.keep_days, finetune=args.finetune,
                 plugin_dirs=args.plugin_dir, precision=args.precision) or 0


def _require_extra(module, extra):
    """A one-line error naming the pip extra when an optional dependency is missing."""
    if module is None:
        return
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise CliError(f"this needs {module}, which is not installed: pip install 'vampbridge[{extra}]' "
                       f"(or pip install {module})")


def cmd_gui(args):
    if args.precision != "auto":
        raise CliError("--precision applies to vamp, bounce, study and serve; the companion runs with auto")
    from gui.app import main as gui_main

    return gui_main(args.file, model_dir=args.model, device=args.device, finetune=args.finetune) or 0


def cmd_study(args):
    from .studies import cli_study

    return cli_study(args)


def cmd_trace(args):
    from .studies import cli_trace

    return cli_trace(args)


def cmd_demo(args):
    """Bounce the bundled demo clip into a few variations: the whole pipeline in one command."""
    demo = Path(__file__).resolve().parent.parent / "assets" / "demo.wav"
    if not demo.is_file():
        raise CliError(f"the demo clip {demo} is missing; run `python assets/make_demo.py`")
    output = Path(args.output).resolve()
    argv = ["bounce", str(demo), "-o", str(output), "-n", str(args.variations), "--preset", "balanced",
            "--fx", "glue", "--seed", "1", "--steps", str(args.steps)]
    if args.model:
        argv += ["--model", args.model]
    code = main(argv)
    if code == 0:
        print(f"\nvariations of {demo.name} are in {output} (WAV + JSON recipe each)")
    return code


# --- entry point -----------------------------------------------------------------------------------


def build_parser():
    from .osc.server import add_security_options

    parser = argparse.ArgumentParser(prog="vampbridge", description="VampNet variations for musicians.")
    parser.add_argument("--version", action="version", version=f"vampbridge {__import__('bridge').__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("vamp", help="make variations of one file (or a region of it)")
    p.add_argument("input")
    add_vamp_options(p)
    p.set_defaults(func=cmd_vamp)

    p = sub.add_parser("bounce", help="vamp many files, folders or a JSON job list; resumable")
    p.add_argument("inputs", nargs="+")
    add_vamp_options(p)
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run on a Ray cluster: one worker per GPU (auto = a local cluster on this machine)")
    p.add_argument("--ray-workers", type=int, metavar="N", help="with --ray: number of workers "
                   "(default: one per GPU, else 1)")
    p.set_defaults(func=cmd_bounce)

    p = sub.add_parser("rerender", help="rebuild a variation from its recipe, optionally with other effects")
    p.add_argument("recipe")
    p.add_argument("-o", "--output", required=True, help="output WAV path (its recipe goes beside it, .json)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output WAV/JSON (never the recipe's source nor the recipe)")
    p.add_argument("--fx", help="effect chain to use instead of the recorded one")
    p.add_argument("--seed", type=int, help="the variation's seed instead of the recorded one")
    add_model_options(p)
    p.set_defaults(func=cmd_rerender)

    p = sub.add_parser("models", help="list, fetch, install, verify or make model sets")
    msub = p.add_subparsers(dest="action", required=True)
    m = msub.add_parser("list", help="model sets on this machine, and which one commands use")
    m.add_argument("--model", help="a model folder to consider chosen, as commands' --model would")
    m = msub.add_parser("fetch", help="download the released weights (Hugging Face hugggof/vampnet; CC BY-NC-SA 4.0)")
    m.add_argument("name", nargs="?", default="vampnet", help="'vampnet' or a fine-tune name under loras/")
    m.add_argument("--repo", default="hugggof/vampnet", help="Hugging Face model repository")
    m.add_argument("--revision", default="main", help="branch, tag or commit of the repository")
    m = msub.add_parser("install", help="install a model set from a local folder (or its three .pth files)")
    m.add_argument("src", nargs="+", help="a folder with codec.pth, coarse.pth, c2f.pth; or the three files")
    m.add_argument("--name", default=None, help="set name in the models folder (default: vampnet, used by commands)")
    m.add_argument("--force", action="store_true", help="replace an installed set of that name")
    m = msub.add_parser("verify", help="check a model set's files (default: the set commands use)")
    m.add_argument("dir", nargs="?")
    m.add_argument("--model", help="the set to check when no DIR is given, as commands' --model")
    m = msub.add_parser("make-random", help="write randomly initialised weights in the released format")
    m.add_argument("dir")
    m.add_argument("--size", choices=["tiny", "small", "full"], default="tiny")
    m.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("serve", help="run the OSC bridge service for Reaper and the companion")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9071)
    add_security_options(p)  # --token, --no-token
    p.add_argument("--data-dir", default=None, help="where the jobs database lives (default: the user data folder)")
    p.add_argument("--keep-days", type=float, default=30.0, metavar="N",
                   help="at start, forget finished jobs older than N days whose results were all "
                        "delivered; their files stay (default: 30)")
    p.add_argument("--http", metavar="HOST:PORT", help="also serve jobs over HTTP for a remote relay "
                   "(docs/http.md); --token is required beyond loopback")
    p.add_argument("--max-upload-mb", type=float, default=512.0, help="with --http: largest region upload")
    p.add_argument("--remote", metavar="URL", help="run jobs on the HTTP service at URL (with its --token); "
                   "REAPER talks to this local service as usual (docs/remote.md)")
    add_model_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("gui", help="the desktop companion (mask editor)")
    p.add_argument("file", nargs="?")
    add_model_options(p)
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("study", help="a masking study on your clip, as an HTML report")
    p.add_argument("kind", choices=["density", "patterns", "periodic", "depth", "presets", "seams"])
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--seed", type=int, default=0, help="seed of every setting's variation (default 0)")
    p.add_argument("--steps", type=int, default=None, help="coarse sampling steps (default 36)")
    p.add_argument("--c2f-steps", type=int, default=None, help="coarse-to-fine sampling steps (default 2)")
    p.add_argument("--start", type=float, default=0.0, help="region start in source seconds")
    p.add_argument("--length", type=float, default=None, help="seconds of the clip to use (default: to the end)")
    p.add_argument("--values", default=None,
                   help="comma-separated settings instead of the study's defaults, e.g. 0.2,0.5,0.8 or random,block")
    p.add_argument("--pattern-density", type=float, default=0.8,
                   help="patterns study: fraction of frames each pattern regenerates (default 0.8)")
    add_model_options(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("trace", help="record the decoding process of one variation (-n for more), as an HTML report")
    p.add_argument("input")
    add_vamp_options(p)  # -n defaults to 1 here; --fx and --float32 do not apply to the trace's engine audio
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("demo", help="bounce the bundled demo clip (the whole pipeline)")
    p.add_argument("-o", "--output", default="out/demo")
    p.add_argument("-n", "--variations", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--model", default=None)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .audio import AudioError
    from .fx import set_extra_plugin_folders
    from .engine.checkpoint import CheckpointError
    from .models import ModelError
    from .request import RequestError

    try:
        set_extra_plugin_folders(getattr(args, "plugin_dir", None) or [])  # before any request
        return args.func(args)
    except (CliError, RequestError, AudioError, CheckpointError, ModelError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
