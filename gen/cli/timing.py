"""``mixpe timing``: OpenSTA critical path and fmax of every block and design (``make timing``)."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, config_from
from gen.names import BLOCKS, DEFAULT_BLOCKS, DESIGNS

NAME = "timing"
HELP = "OpenSTA critical path and fmax of MixPE and baseline blocks; writes build/timing/report.{md,json}"
DESCRIPTION = ("Synthesize (cached, as 'mixpe synth') every requested block with a Liberty file and run OpenSTA "
               "static timing on its netlist: critical path, fmax, the worst path's start and end points, and the "
               "clock of each design's array. Needs Debian's opensta and, for osu018, qflow-tech-osu018 "
               "('make tools' as root).")


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--liberty", default="osu018", metavar="PATH|osu018",
                        help="Liberty file with delay tables (default osu018: Debian's qflow-tech-osu018)")
    parser.add_argument("--blocks", nargs="+", choices=BLOCKS, default=None,
                        help=f"blocks to time, for every design that has them (default {' '.join(DEFAULT_BLOCKS)})")
    parser.add_argument("--array", action="store_true", help="also the whole MixPE R x C array block (slow)")
    parser.add_argument("--designs", nargs="+", choices=DESIGNS, default=None,
                        help="designs (default all that support the configuration)")
    parser.add_argument("--out", help="report directory (default build/timing/)")
    parser.add_argument("--synth-dir", help="synthesis cache and netlists (default build/synth/, shared with "
                                            "'mixpe synth')")
    parser.add_argument("--no-cache", action="store_true", help="synthesize and time again")


def run(args) -> int:
    from gen.synth import resolve_liberty, run_synthesis
    from gen.synth.timing import check_timing_inputs
    from gen.synth.timing_report import timing_records, write_timing_reports
    config = config_from(args)
    synth_root = Path(args.synth_dir or BUILD_ROOT / "synth")
    liberty = resolve_liberty(args.liberty)
    check_timing_inputs(liberty)
    records = run_synthesis(config, designs=args.designs, blocks=args.blocks, array=args.array, liberty=liberty,
                            out_root=synth_root, use_cache=not args.no_cache)
    timed = timing_records(config, records, liberty, synth_root=synth_root)  # timed by run_synthesis
    paths = write_timing_reports(config, timed, liberty, Path(args.out or BUILD_ROOT / "timing"))
    for record in timed:
        print(f"timing {record['design']:<11} {record['block']:<8} {record['critical_path_ns']:7.2f} ns "
              f"{record['fmax_mhz']:6.0f} MHz  {record['path_start']} -> {record['path_end']}")
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0
