"""``mixpe``: the command line behind the make targets.

Every subcommand takes the configuration from ``--preset NAME`` (default ``w4a8-g128-16x16``) or
``--config FILE`` (a JSON file as written next to every artifact), and exits non-zero when
anything it checks fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hw.config import DEFAULT_PRESET, PRESETS, ConfigError, MixPEConfig, load_config

__all__ = ["main"]

BUILD_ROOT = Path("build")


def _config(args) -> MixPEConfig:
    return load_config(preset=args.preset, path=args.config)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration")
    group.add_argument("--preset", default=None,
                       help=f"preset name w<weight bits><activation>-g<group>-<rows>x<cols> "
                            f"(default {DEFAULT_PRESET}; e.g. {', '.join(PRESETS[:4])})")
    group.add_argument("--config", default=None, metavar="FILE",
                       help="JSON configuration file (overrides --preset), e.g. a config.json written by 'verilog'")


def cmd_verilog(args) -> int:
    from hw.emit import write_core
    config = _config(args)
    out_dir = Path(args.out or BUILD_ROOT / "verilog" / config.name)
    path = write_core(config, out_dir)
    print(f"wrote {path} and {out_dir / 'config.json'} ({config.rows}x{config.cols}, W{config.weight_bits}"
          f" {config.activation}, g={config.group_size}, hash {config.hash})")
    return 0


def cmd_lint(args) -> int:
    from gen.lint import lint_verilog
    config = _config(args)
    ok = True
    for block in args.blocks:
        report = lint_verilog(config, block)
        print(f"{block}: {'clean' if report.clean else 'WARNINGS'} ({report.command})")
        if not report.clean:
            print(report.output)
            ok = False
    return 0 if ok else 1


def cmd_sim(args) -> int:
    from verif.scenarios import run_scenario
    config = _config(args)
    return 0 if run_scenario(args.test, config, seed=args.seed, waves=args.waves) else 1


def cmd_bench(args) -> int:
    from gen.bench import run_bench
    config = _config(args)
    out = Path(args.out or BUILD_ROOT / "bench" / "bench.json")
    return 0 if run_bench(config, out, quick=args.quick) else 1


def cmd_moe(args) -> int:
    from sw.moe import MoEError
    from sw.moe_run import DEFAULT_MOE_CONFIG, MoESpec, format_report, run_moe
    from verif.backends import make_backend
    config = _config(args) if args.preset or args.config else DEFAULT_MOE_CONFIG
    if args.row_groups is not None:
        config = config.replace(row_groups=args.row_groups)
    spec = MoESpec(family=args.family, hidden=args.hidden, ffn=args.ffn, experts=args.experts, top_k=args.top_k,
                   tokens=args.tokens, shared_ffn=args.shared_ffn, seed=args.seed)
    try:
        report = run_moe(config, spec, make_backend(args.backend, config, args.seed), method=args.quant,
                         seed=args.seed)
    except MoEError as error:
        print(f"mixpe moe: {error} (seed {args.seed})", file=sys.stderr)
        return 1
    out = Path(args.out or BUILD_ROOT / "moe" / "report.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    ok = report["bit_exact_vs_golden"] and report["within_bound"]
    print(f"{'PASS' if ok else 'FAIL'} moe backend={args.backend} seed={args.seed}; wrote {out}")
    return 0 if ok else 1


def cmd_eval_smollm(args) -> int:
    from sw.cmoe import CMoEError
    from sw.eval_smollm import EvalSettings, main_report
    try:
        settings = EvalSettings(eval_tokens=args.eval_tokens, float_windows=args.float_windows,
                                configs=tuple(args.configs), array_activations=tuple(args.activations),
                                routers=tuple(args.routers),
                                rows=args.rows, cols=args.cols,
                                row_groups=args.row_groups, workers=args.workers,
                                balance_steps=args.balance_steps, bias_speed=args.bias_speed,
                                rtl_tiles=args.rtl_tiles, rtl_seed=args.rtl_seed)
    except (CMoEError, ValueError) as error:
        print(f"mixpe eval-smollm: {error}", file=sys.stderr)
        return 2
    try:
        from verif.smollm_tiles import check_sampled_tiles
        return main_report(Path(args.out or BUILD_ROOT / "eval" / "smollm2"), settings, check_sampled_tiles)
    except CMoEError as error:                     # configurations checked against the loaded model
        print(f"mixpe eval-smollm: {error}", file=sys.stderr)
        return 2


def cmd_synth(args) -> int:
    from gen.synth import (DEFAULT_GUARD_SWEEP, SynthError, guard_sweep, resolve_liberty, run_synthesis,
                           write_reports)
    config = _config(args)
    out_root = Path(args.out or BUILD_ROOT / "synth")
    try:
        liberty = resolve_liberty(args.liberty)
        if liberty:
            print(f"liberty {liberty.name} ({liberty.path}): {liberty.cell_count} cells, GE reference "
                  f"{liberty.nand2_cell} = {liberty.nand2_area:g}")
        records = run_synthesis(config, designs=args.designs, blocks=args.blocks, array=args.array, liberty=liberty,
                                out_root=out_root, use_cache=not args.no_cache)
        guards = args.guard_sweep or (DEFAULT_GUARD_SWEEP if config.fp_activation else ())
        sweep = guard_sweep(config, guards, liberty=liberty, out_root=out_root, use_cache=not args.no_cache) \
            if guards and not args.no_guard_sweep else None
        paths = write_reports(config, records, liberty, out_root, guard_rows=sweep)
    except SynthError as error:
        print(f"mixpe synth: {error}", file=sys.stderr)
        return 1
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    return 0


def cmd_accuracy(args) -> int:
    from gen.accuracy import fp16_versus_gpu_gemm, format_report, guard_sweep, write_report
    sweep, versus = guard_sweep(), fp16_versus_gpu_gemm()
    print(format_report(sweep, versus))
    path = write_report(sweep, versus, Path(args.out or BUILD_ROOT / "bench" / "accuracy.json"))
    print(f"wrote {path}")
    return 0


def cmd_config(args) -> int:
    config = _config(args)
    sys.stdout.write(config.to_json())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from verif.scenarios import SCENARIOS
    parser = argparse.ArgumentParser(prog="mixpe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verilog", help="write the core's Verilog and config.json")
    _add_config_options(p)
    p.add_argument("--out", help="output directory (default build/verilog/<config name>/)")
    p.set_defaults(func=cmd_verilog)

    p = sub.add_parser("sim", help="run one cocotb testbench under Verilator and print a summary")
    _add_config_options(p)
    p.add_argument("--test", required=True, choices=sorted(SCENARIOS),
                   help="; ".join(f"{name}: {doc}" for name, (doc, _) in sorted(SCENARIOS.items())))
    p.add_argument("--seed", type=int, default=None, help="random seed (printed on every run; reuse to replay)")
    p.add_argument("--waves", action="store_true", help="write an FST waveform (VCD if liblz4-dev is missing)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("bench", help="simulation speed and array utilization; writes build/bench/bench.json")
    _add_config_options(p)
    p.add_argument("--out", help="output JSON path (default build/bench/bench.json)")
    p.add_argument("--quick", action="store_true", help="smaller shapes (for smoke testing the benchmark)")
    p.set_defaults(func=cmd_bench)

    from sw.moe import MOE_FAMILIES
    from sw.moe_run import BACKENDS as MOE_BACKENDS, DEFAULT_MOE_CONFIG, MoESpec
    from sw.quantize import QUANT_METHODS
    spec = MoESpec()
    p = sub.add_parser("moe", help="run one MoE layer on a backend; writes build/moe/report.json",
                       description=f"Run a seeded tiny random transformers MoE layer on the golden model, the cycle "
                                   f"model or the RTL and report per-expert tokens, tiles, cycles, utilization and "
                                   f"errors. Without --preset/--config the array is {DEFAULT_MOE_CONFIG.name} "
                                   f"(16x16, W4A8, g=32, 4 row groups).")
    _add_config_options(p)
    p.add_argument("--backend", choices=MOE_BACKENDS, default="golden",
                   help="golden: bit-exact model per expert GEMM; model: the mapped tiles one by one, cycle "
                        "model timing; rtl: the tiles through the RTL under Verilator (default golden)")
    p.add_argument("--row-groups", type=int, default=None,
                   help="override the configuration's row_groups (1 = plain tokens-on-rows array)")
    p.add_argument("--family", choices=MOE_FAMILIES, default=spec.family, help=f"MoE block (default {spec.family})")
    for name, help_text in (("hidden", "hidden size"), ("ffn", "expert FFN size"), ("experts", "routed experts"),
                            ("top-k", "experts per token"), ("tokens", "tokens in the batch")):
        default = getattr(spec, name.replace("-", "_"))
        p.add_argument(f"--{name}", type=int, default=default, help=f"{help_text} (default {default})")
    p.add_argument("--shared-ffn", type=int, default=None, help="qwen2_moe shared expert FFN size (default 2 x ffn)")
    p.add_argument("--quant", choices=QUANT_METHODS, default="rtn", help="weight quantizer (default rtn)")
    p.add_argument("--seed", type=int, default=spec.seed,
                   help=f"seeds the layer's weights and tokens and the RTL stimulus (default {spec.seed})")
    p.add_argument("--out", help="report path (default build/moe/report.json)")
    p.set_defaults(func=cmd_moe)

    from sw.cmoe import ROUTERS
    from sw.eval_smollm import DEFAULT_CONFIGS, EvalSettings
    defaults = EvalSettings()
    p = sub.add_parser("eval-smollm", help="SmolLM2-135M Q4_1, dense and CMoE-carved, on the array's numerics: "
                                           "perplexity and cycles/token; writes build/eval/smollm2/report.{md,json}")
    p.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS), metavar="SxAyEz",
                   help=f"CMoE carvings (default {' '.join(DEFAULT_CONFIGS)}; none: dense rows only)")
    p.add_argument("--activations", nargs="+", choices=("int8", "fp16"), default=list(defaults.array_activations),
                   help="activation formats of the array rows (default int8 fp16)")
    p.add_argument("--routers", nargs="+", choices=ROUTERS, default=list(defaults.routers),
                   help="CMoE routers, each its own carving pass (default analytic fitted; the oracle and random "
                        "diagnostics always run on the analytic carving)")
    p.add_argument("--eval-tokens", type=int, default=defaults.eval_tokens,
                   help=f"held-out window every row is evaluated on (default {defaults.eval_tokens})")
    p.add_argument("--float-windows", type=int, default=defaults.float_windows,
                   help=f"float rows: windows for perplexity_long (default {defaults.float_windows})")
    p.add_argument("--rows", type=int, default=defaults.rows, help=f"array rows R (default {defaults.rows})")
    p.add_argument("--cols", type=int, default=defaults.cols, help=f"array columns C (default {defaults.cols})")
    p.add_argument("--row-groups", type=int, default=defaults.row_groups,
                   help=f"row groups of the mapper (default {defaults.row_groups}: plain tokens-on-rows tiles)")
    p.add_argument("--balance-steps", type=int, default=defaults.balance_steps,
                   help=f"CMoE load-balancing bias updates per layer on the calibration tokens "
                        f"(default {defaults.balance_steps})")
    p.add_argument("--bias-speed", type=float, default=defaults.bias_speed,
                   help=f"step of those bias updates (default {defaults.bias_speed})")
    p.add_argument("--workers", type=int, default=defaults.workers,
                   help=f"processes evaluating rows (default {defaults.workers})")
    p.add_argument("--rtl-tiles", type=int, default=defaults.rtl_tiles,
                   help=f"tiles of the real weights checked under Verilator per activation and source (dense, "
                        f"sparsest carving) (default {defaults.rtl_tiles}; 0 skips)")
    p.add_argument("--rtl-seed", type=int, default=defaults.rtl_seed,
                   help=f"seed of the tile sampling and of the simulation (default {defaults.rtl_seed})")
    p.add_argument("--out", help="output directory (default build/eval/smollm2/)")
    p.set_defaults(func=cmd_eval_smollm)

    p = sub.add_parser("lint", help="Verilator --lint-only -Wall on the generated Verilog")
    _add_config_options(p)
    p.add_argument("--blocks", nargs="+", default=["mpgemm"], help="blocks to lint (default mpgemm)")
    p.set_defaults(func=cmd_lint)

    from gen.synth import (BLOCKS as SYNTH_BLOCKS, DEFAULT_BLOCKS as SYNTH_DEFAULT_BLOCKS,
                           DEFAULT_GUARD_SWEEP as SYNTH_GUARD_SWEEP, DESIGNS as SYNTH_DESIGNS)
    p = sub.add_parser("synth", help="Yosys area report of MixPE and baseline PEs; writes build/synth/report.{md,json}")
    _add_config_options(p)
    p.add_argument("--liberty", default=None, metavar="PATH|osu018",
                   help="Liberty file for library mapping (area in um2 and library GE); 'osu018' is Debian's "
                        "qflow-tech-osu018 (installed with apt-get when missing and root)")
    p.add_argument("--blocks", nargs="+", choices=SYNTH_BLOCKS, default=None,
                   help=f"blocks to synthesize, for every design that has them (default "
                        f"{' '.join(SYNTH_DEFAULT_BLOCKS)}; 'top' is the whole mpgemm core and slow)")
    p.add_argument("--array", action="store_true",
                   help="also synthesize the whole MixPE R x C array block (slow: ~1 min for 16x16)")
    p.add_argument("--designs", nargs="+", choices=SYNTH_DESIGNS, default=None,
                   help="designs to synthesize (default all that support the configuration: "
                        + " ".join(SYNTH_DESIGNS) + "; int8_mult needs INT8 activations)")
    p.add_argument("--out", help="output directory (default build/synth/)")
    p.add_argument("--no-cache", action="store_true", help="ignore cached results and synthesize again")
    p.add_argument("--guard-sweep", nargs="+", type=int, default=None, metavar="G",
                   help="floating-point activations: MixPE PE and aligner area for these guard bits "
                        "(default " + " ".join(map(str, SYNTH_GUARD_SWEEP)) + ")")
    p.add_argument("--no-guard-sweep", action="store_true", help="skip the guard-bit sweep")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("accuracy", help="floating-point activations: error against guard bits and vs an FP16 "
                                        "GEMM; writes build/bench/accuracy.json")
    p.add_argument("--out", help="output JSON path (default build/bench/accuracy.json)")
    p.set_defaults(func=cmd_accuracy)

    p = sub.add_parser("config", help="print the resolved configuration with derived widths as JSON")
    _add_config_options(p)
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"mixpe: configuration error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
