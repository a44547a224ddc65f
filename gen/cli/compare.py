"""``mixpe compare``: iso-area speed and energy of MixPE and the baselines with a memory system (``make compare``)."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT

NAME = "compare"
HELP = "MixPE vs INT8, FP16 and dequant arrays at equal area and memory bandwidth on LLM/MoE layers; build/compare/"
DESCRIPTION = ("Shapes every design to one area budget (default: a 32x32 FP16 array in the same flow), runs the "
               "decoder layers of OPT-6.7B, LLaMA-2-7B, a Mixtral-8x7B expert layer and SmolLM2-135M (dense and "
               "CMoE) in prefill and decode through the bandwidth-aware cycle model (golden.memory) at each design's "
               "timing-verified clock, and splits the energy into core, buffers, DRAM and static. Uses the cached "
               "synthesis (build/synth; missing blocks are synthesized) and make power's report. Writes "
               "build/compare/report.md, report.json, summary.json and compare.png.")


def add_arguments(parser) -> None:
    from gen.compare.designs import DESIGN_SPECS
    from gen.compare.workloads import MODELS, PHASES
    parser.add_argument("--area-mm2", type=float, default=None,
                        help="area budget in mm2 (default: the area of a 32x32 FP16 array in the same flow)")
    parser.add_argument("--designs", nargs="+", choices=list(DESIGN_SPECS), default=list(DESIGN_SPECS),
                        help="designs (default all; fp16 is needed for the default budget and ratios)")
    parser.add_argument("--workloads", nargs="+", choices=list(MODELS), default=list(MODELS),
                        help="workloads (default all)")
    parser.add_argument("--phases", nargs="+", choices=list(PHASES), default=list(PHASES),
                        help="phases (default all)")
    parser.add_argument("--dram-pj-per-bit", type=float, default=None,
                        help="DRAM energy per bit (default 20.3, Horowitz ISSCC 2014; the authors use 0.63)")
    parser.add_argument("--dram-width-bits", type=int, default=None,
                        help="DRAM interface width in bits per DRAM cycle (default 1024, the authors' simulator)")
    parser.add_argument("--dram-mhz", type=float, default=None, help="DRAM interface clock (default 500 MHz)")
    parser.add_argument("--storage-scale", type=float, default=1.0,
                        help="what-if factor on the area and energy of the GDU lanes' accumulator memory (default 1: "
                             "the synthesized flip-flops; e.g. 0.1 for a dense SRAM macro)")
    parser.add_argument("--liberty", default="osu018", metavar="PATH|osu018", help="Liberty file (default osu018)")
    parser.add_argument("--power", default=None, help="make power's report.json (default build/power/report.json)")
    parser.add_argument("--synth-dir", default=None, help="synthesis and timing cache (default build/synth/)")
    parser.add_argument("--out", help="output directory (default build/compare/)")


def run(args) -> int:
    import dataclasses
    import time

    from gen.compare import CompareSettings, load_costs, run_compare
    from gen.compare.run import power_source
    from gen.compare.model import CompareError
    from gen.compare.report import write_reports
    from gen.synth import resolve_liberty
    from golden.memory import ASSUMPTIONS, MemorySystem
    start = time.monotonic()
    if args.area_mm2 is not None and args.area_mm2 <= 0:
        raise CompareError(f"area_mm2={args.area_mm2:g}: must be a positive area in mm2")
    if not 0 < args.storage_scale <= 10:
        raise CompareError(f"storage_scale={args.storage_scale:g}: must be in (0, 10]")
    dram = {}
    for option, field in (("dram_pj_per_bit", "pj_per_bit"), ("dram_width_bits", "width_bits"), ("dram_mhz", "clock_mhz")):
        value = getattr(args, option)
        if value is not None:
            if value < 0 or (value == 0 and field != "pj_per_bit"):
                raise CompareError(f"{option}={value:g}: must be positive" + (" or 0" if field == "pj_per_bit" else ""))
            dram[field] = value
    memory = MemorySystem()
    memory = dataclasses.replace(memory, dram=dataclasses.replace(memory.dram, **dram))
    designs = tuple(args.designs)
    if args.area_mm2 is None and "fp16" not in designs:
        designs += ("fp16",)
    power_path = Path(args.power or BUILD_ROOT / "power" / "report.json")
    costs = load_costs(designs, resolve_liberty(args.liberty), Path(args.synth_dir or BUILD_ROOT / "synth"), power_path,
                       storage_scale=args.storage_scale)
    settings = CompareSettings(designs=designs, workloads=tuple(args.workloads), phases=tuple(args.phases),
                               area_mm2=args.area_mm2, memory=memory)
    records, meta = run_compare(costs, settings)
    command = "make compare" if args.area_mm2 is None else f"mixpe compare --area-mm2 {args.area_mm2}"
    for option in ("storage_scale", "dram_width_bits", "dram_mhz", "dram_pj_per_bit"):
        value = getattr(args, option)
        if value is not None and not (option == "storage_scale" and value == 1.0):
            command = command.replace("make compare", "mixpe compare") + f" --{option.replace('_', '-')} {value:g}"
    meta.update(command=command, storage_scale=args.storage_scale,
                budget_source="32 x 32 FP16 array" if args.area_mm2 is None else "--area-mm2",
                assumptions=ASSUMPTIONS, power_source=power_source(power_path),
                seconds=round(time.monotonic() - start, 1))
    paths = write_reports(records, meta, Path(args.out or BUILD_ROOT / "compare"))
    print("wrote " + ", ".join(str(path) for path in paths.values()) + f" in {meta['seconds']:.0f} s")
    return 0
