"""``mixpe sweep``: a design space of configurations, each point's metrics in its own Dask task (``make sweep``)."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_quiet_option
from gen.scale.cluster import add_cluster_options
from gen.scale.sweep import COLUMNS_HELP, DEFAULT_METRICS, METRICS

NAME = "sweep"
HELP = "design-space sweep on Dask (area, timing, power, cycles, accuracy); writes build/sweep/"
DESCRIPTION = ("Measure every point of a design space (a JSON grid or list of configurations, docs/scale-out.md) "
               "in parallel Dask tasks: a local cluster of one worker per core, or an existing cluster with "
               "--scheduler. Writes results.jsonl (one line per point, as it finishes), summary.md and pareto.png "
               "in --out; a rerun skips the points already measured with the same metrics.")


def add_arguments(parser) -> None:
    parser.add_argument("space", nargs="?", default=None,
                        help="design-space JSON file (default: a small built-in space of 6 points, minutes on 2 cores)")
    parser.add_argument("--metrics", default=None,
                        help=f"comma-separated, from {','.join(METRICS)} (default the space's, else "
                             f"{','.join(DEFAULT_METRICS)})")
    parser.add_argument("--x", default=None, help=f"Pareto plot x metric ({COLUMNS_HELP}; default area_ge if measured)")
    parser.add_argument("--y", default=None, help="Pareto plot y metric (default quantization_error if measured)")
    parser.add_argument("--out", help="output directory (default build/sweep/)")
    parser.add_argument("--synth-dir", help="synthesis cache (default build/synth/, shared with 'mixpe synth')")
    parser.add_argument("--fresh", action="store_true", help="measure every point again (ignore results.jsonl)")
    add_cluster_options(parser)
    add_quiet_option(parser)


def run(args) -> int:
    from gen.scale.sweep import run_sweep
    return run_sweep(Path(args.space) if args.space else None, metrics=args.metrics, x=args.x, y=args.y,
                     out=Path(args.out or BUILD_ROOT / "sweep"), synth_root=str(args.synth_dir or BUILD_ROOT / "synth"),
                     fresh=args.fresh, scheduler=args.scheduler, workers=args.workers)
