"""``mixpe power``: OpenSTA power and energy per MAC from gate-level switching activity (``make power``)."""

from __future__ import annotations

import time
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, config_from
from gen.names import DESIGNS
from verif.power_names import SIMULATORS, WORKLOADS

NAME = "power"
HELP = "power and energy/MAC of MixPE and the baselines (PE and array) from gate-level activity; build/power/"
DESCRIPTION = ("Synthesizes (cached) every design's PE and edge blocks with the Liberty file, simulates their "
               "netlists at gate level on SmolLM2 tiles and a uniform random stream, and runs OpenSTA report_power "
               "with the measured activity at each design's own clock. Writes build/power/report.{md,json}, "
               "summary.json and power.png.")


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--liberty", default="osu018", metavar="PATH|osu018",
                        help="Liberty file with timing and power tables (default osu018: Debian's qflow-tech-osu018)")
    parser.add_argument("--designs", nargs="+", choices=DESIGNS, default=None,
                        help="designs to measure (default all that support the configuration; MixPE always, its core "
                             "gives the schedule)")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                        help="workloads, reported separately (default both)")
    parser.add_argument("--tiles", type=int, default=4, help="R x C output tiles per workload (default 4)")
    parser.add_argument("--positions", type=int, default=4,
                        help="PE positions whose operand streams are simulated (default 4)")
    parser.add_argument("--edge-instances", type=int, default=4,
                        help="GDU instances (columns) whose recorded streams are replayed (default 4)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the tile and position sampling (default 1)")
    parser.add_argument("--simulator", choices=SIMULATORS, default="verilator",
                        help="gate-level simulator (default verilator: cached builds, fast runs; icarus: no build)")
    parser.add_argument("--pe-only", action="store_true",
                        help="measure the PEs only (no act_sum, GDU or array records; no GDU synthesis)")
    parser.add_argument("--out", help="output directory (default build/power/)")
    parser.add_argument("--synth-dir", default=None, help="synthesis and timing cache (default build/synth/)")
    parser.add_argument("--no-cache", action="store_true", help="measure again (synthesis stays cached)")


def run(args) -> int:
    from gen.power import PowerSettings, run_power, write_reports
    from gen.synth import resolve_liberty
    config = config_from(args)
    start = time.monotonic()
    liberty = resolve_liberty(args.liberty)
    settings = PowerSettings(workloads=tuple(args.workloads), tiles=args.tiles, positions=args.positions,
                             edge_instances=args.edge_instances, seed=args.seed, simulator=args.simulator,
                             array=not args.pe_only)
    out_root = Path(args.out or BUILD_ROOT / "power")
    records = run_power(config, liberty, settings, designs=args.designs, out_root=out_root,
                        synth_root=Path(args.synth_dir or BUILD_ROOT / "synth"), use_cache=not args.no_cache)
    meta = {"liberty": str(liberty.path), "liberty_name": liberty.name, "settings": settings.__dict__,
            "simulator": {"verilator": "Verilator", "icarus": "Icarus Verilog"}[settings.simulator],
            "positions": settings.positions, "edge_instances": settings.edge_instances,
            "command": "make power" + (f" PRESET={config.name}" if args.preset else ""),
            "seconds": round(time.monotonic() - start, 1)}
    paths = write_reports(config, records, meta, out_root)
    print("wrote " + ", ".join(str(path) for path in paths.values()) + f" in {meta['seconds']:.0f} s")
    return 0
