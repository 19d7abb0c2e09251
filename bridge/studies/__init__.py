"""Masking studies and generation traces: VampNet's experiments on the user's own clip.

    vampbridge study KIND INPUT -o DIR     density | patterns | periodic | depth | presets | seams
    vampbridge trace INPUT -o DIR [vamp options]

`study.run_study` sweeps one mask parameter (one `Pipeline.run` per setting, the same seed) and
writes a self-contained HTML report; `trace.run_trace` records every sampling step of a vamp.
This layer sits above the pipeline, beside the CLI: it reads and writes files, the engine does not.
docs/studies.md explains the studies, docs/formats.md the files.
"""

from .settings import DEFAULT_VALUES, KINDS, parse_values, study_settings
from .study import run_study
from .trace import TraceRecord, run_trace

__all__ = ["KINDS", "DEFAULT_VALUES", "parse_values", "study_settings", "run_study", "run_trace", "TraceRecord",
           "cli_study", "cli_trace"]


def cli_study(args) -> int:
    """`vampbridge study`: argparse namespace in, exit code out."""
    from ..cli import make_pipeline  # the CLI's model options (--model, --device, --finetune), as vamp uses them

    if args.kind == "seams":  # chunks against windows on one clip (seams.py)
        from .seams import run_seams

        run_seams(make_pipeline(args), args.input, args.output, seed=args.seed, steps=args.steps,
                  c2f_steps=args.c2f_steps, start_s=args.start, length_s=args.length)
        return 0
    values = parse_values(args.kind, args.values)  # bad values fail before the models load
    pipeline = make_pipeline(args)
    run_study(pipeline, args.kind, args.input, args.output, seed=args.seed, steps=args.steps,
              c2f_steps=args.c2f_steps, start_s=args.start, length_s=args.length, values=values,
              pattern_density=args.pattern_density)
    return 0


def cli_trace(args) -> int:
    """`vampbridge trace`: the vamp options build the request exactly as `vampbridge vamp` does."""
    from ..cli import make_pipeline, request_from_args  # the CLI's own option semantics, not a copy of them

    request = request_from_args(args, args.input, n_variations=args.variations or 1)
    request.validate()
    pipeline = make_pipeline(args)
    run_trace(pipeline, request, args.output)
    return 0
