"""``mixpe bench``: simulation speed and array utilization (``make bench``)."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, config_from

NAME = "bench"
HELP = "simulation speed and array utilization; writes build/bench/bench.json"


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--out", help="output JSON path (default build/bench/bench.json)")
    parser.add_argument("--quick", action="store_true", help="smaller shapes (for smoke testing the benchmark)")


def run(args) -> int:
    from gen.bench import run_bench
    config = config_from(args)
    out = Path(args.out or BUILD_ROOT / "bench" / "bench.json")
    return 0 if run_bench(config, out, quick=args.quick) else 1
