"""``mixpe moe``: one MoE layer through the mapper and a backend (``make moe``)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, add_quiet_option, config_from
from sw.settings import DEFAULT_MOE_CONFIG, MOE_BACKENDS, MOE_FAMILIES, QUANT_METHODS, MoESpec

NAME = "moe"
HELP = "run one MoE layer on a backend; writes build/moe/report.json"
DESCRIPTION = (f"Run a seeded tiny random transformers MoE layer on the golden model, the cycle model or the RTL "
               f"and report per-expert tokens, tiles, cycles, utilization and errors. Without --preset/--config the "
               f"array is {DEFAULT_MOE_CONFIG.name} (16x16, W4A8, g=32, 4 row groups).")


def add_arguments(parser) -> None:
    spec = MoESpec()
    add_config_options(parser)
    parser.add_argument("--backend", choices=MOE_BACKENDS, default="golden",
                        help="golden: bit-exact model per expert GEMM; model: the mapped tiles one by one, cycle "
                             "model timing; rtl: the tiles through the RTL under Verilator (default golden)")
    parser.add_argument("--row-groups", type=int, default=None,
                        help="override the configuration's row_groups (1 = plain tokens-on-rows array)")
    parser.add_argument("--family", choices=MOE_FAMILIES, default=spec.family, help=f"MoE block (default {spec.family})")
    for name, help_text in (("hidden", "hidden size"), ("ffn", "expert FFN size"), ("experts", "routed experts"),
                            ("top-k", "experts per token"), ("tokens", "tokens in the batch")):
        default = getattr(spec, name.replace("-", "_"))
        parser.add_argument(f"--{name}", type=int, default=default, help=f"{help_text} (default {default})")
    parser.add_argument("--shared-ffn", type=int, default=None,
                        help="qwen2_moe shared expert FFN size (default 2 x ffn)")
    parser.add_argument("--gpt-oss", action="store_true",
                        help="a tiny gpt-oss block with MXFP4 experts instead of --family (sw/gpt_oss.py): the array "
                             "becomes the configuration's MXFP4 core (FP4 E2M1 codes, E8M0 scales, g=32), --quant "
                             "and --shared-ffn do not apply; also checked against transformers' own forward")
    parser.add_argument("--quant", choices=QUANT_METHODS, default="rtn", help="weight quantizer (default rtn)")
    parser.add_argument("--seed", type=int, default=spec.seed,
                        help=f"seeds the layer's weights and tokens and the RTL stimulus (default {spec.seed})")
    parser.add_argument("--out",
                        help="report path (default build/moe/report.json; --gpt-oss: build/moe/gpt_oss.json)")
    add_quiet_option(parser)


def run(args) -> int:
    from sw.moe_run import format_report, run_moe
    from sw.progress import progress
    from verif.backends import make_backend
    config = config_from(args, default=DEFAULT_MOE_CONFIG)
    if args.row_groups is not None:
        config = config.replace(row_groups=args.row_groups)
    sizes = {"hidden": args.hidden, "ffn": args.ffn, "experts": args.experts, "top_k": args.top_k,
             "tokens": args.tokens, "seed": args.seed}
    if args.gpt_oss:
        from sw.gpt_oss import GptOssSpec, run_gpt_oss
        from sw.mxfp4_import import core_for_mxfp4
        config = core_for_mxfp4(config)
    backend = make_backend(args.backend, config, args.seed)
    with contextlib.ExitStack() as stack:
        if args.backend == "rtl":                   # minutes per stage (the first one builds the core)
            _report_stages(backend, stack.enter_context(progress(total=2, desc="moe rtl", unit="stage")))
        if args.gpt_oss:
            report = run_gpt_oss(config, GptOssSpec(**sizes), backend, seed=args.seed)
        else:
            report = run_moe(config, MoESpec(family=args.family, shared_ffn=args.shared_ffn, **sizes), backend,
                             method=args.quant, seed=args.seed)
    out = Path(args.out or BUILD_ROOT / "moe" / ("gpt_oss.json" if args.gpt_oss else "report.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    ok = report["bit_exact_vs_golden"] and report["within_bound"] and report.get("within_transformers_bound", True)
    print(f"{'PASS' if ok else 'FAIL'} moe backend={args.backend} seed={args.seed}; wrote {out}")
    return 0 if ok else 1


def _report_stages(backend, bar) -> None:
    """Make ``backend`` step ``bar`` after each stage it runs (a layer has two: gate/up, then down)."""
    run_stage = backend.run_stage

    def run_and_report(jobs, schedule):
        result = run_stage(jobs, schedule)
        bar.step(f"stage {bar.count + 1}: {len(schedule.tiles)} tiles, {result.cycles} cycles")
        return result

    backend.run_stage = run_and_report
