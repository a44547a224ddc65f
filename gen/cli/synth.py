"""``mixpe synth``: Yosys area report of MixPE and the baseline PEs (``make synth``)."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, config_from
from gen.names import BLOCKS, DEFAULT_BLOCKS, DEFAULT_GUARD_SWEEP, DESIGNS

NAME = "synth"
HELP = "Yosys area report of MixPE and baseline PEs; writes build/synth/report.{md,json}"


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--liberty", default=None, metavar="PATH|osu018",
                        help="Liberty file for library mapping (area in um2 and library GE; with delay tables also "
                             "critical_path_ns and fmax_mhz from OpenSTA); 'osu018' is Debian's qflow-tech-osu018 "
                             "('make tools' as root)")
    parser.add_argument("--blocks", nargs="+", choices=BLOCKS, default=None,
                        help=f"blocks to synthesize, for every design that has them (default "
                             f"{' '.join(DEFAULT_BLOCKS)}; 'top' is the whole mpgemm core and slow)")
    parser.add_argument("--array", action="store_true",
                        help="also synthesize the whole MixPE R x C array block (slow: ~1 min for 16x16)")
    parser.add_argument("--designs", nargs="+", choices=DESIGNS, default=None,
                        help="designs to synthesize (default all that support the configuration: "
                             + " ".join(DESIGNS) + "; int8_mult needs INT8 activations)")
    parser.add_argument("--out", help="output directory (default build/synth/)")
    parser.add_argument("--no-cache", action="store_true", help="ignore cached results and synthesize again")
    parser.add_argument("--guard-sweep", nargs="+", type=int, default=None, metavar="G",
                        help="floating-point activations: MixPE PE and aligner area for these guard bits "
                             "(default " + " ".join(map(str, DEFAULT_GUARD_SWEEP)) + ")")
    parser.add_argument("--no-guard-sweep", action="store_true", help="skip the guard-bit sweep")
    parser.add_argument("--no-code-formats", action="store_true",
                        help="skip the PE per weight-code format (INT4/5/6, FP4 E2M1, power of two), which runs "
                             "when every design's PE is synthesized")


def run(args) -> int:
    from gen.synth import guard_sweep, resolve_liberty, run_synthesis, write_reports
    from gen.synth.code_formats import code_format_sweep
    config = config_from(args)
    out_root = Path(args.out or BUILD_ROOT / "synth")
    liberty = resolve_liberty(args.liberty)
    if liberty:
        print(f"liberty {liberty.name} ({liberty.path}): {liberty.cell_count} cells, GE reference "
              f"{liberty.nand2_cell} = {liberty.nand2_area:g}")
    records = run_synthesis(config, designs=args.designs, blocks=args.blocks, array=args.array, liberty=liberty,
                            out_root=out_root, use_cache=not args.no_cache)
    guards = args.guard_sweep or (DEFAULT_GUARD_SWEEP if config.fp_activation else ())
    sweep = guard_sweep(config, guards, liberty=liberty, out_root=out_root, use_cache=not args.no_cache) \
        if guards and not args.no_guard_sweep else None
    code_rows = code_format_sweep(config, liberty=liberty, out_root=out_root, use_cache=not args.no_cache) \
        if args.designs is None and "pe" in (args.blocks or DEFAULT_BLOCKS) and not args.no_code_formats else None
    paths = write_reports(config, records, liberty, out_root, guard_rows=sweep, code_rows=code_rows)
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0
