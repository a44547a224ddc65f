"""``mixpe accuracy``: floating-point activation error against guard bits and an FP16 GEMM."""

from __future__ import annotations

from pathlib import Path

from gen.cli.options import BUILD_ROOT

NAME = "accuracy"
HELP = "floating-point activations: error against guard bits and vs an FP16 GEMM; writes build/bench/accuracy.json"


def add_arguments(parser) -> None:
    parser.add_argument("--out", help="output JSON path (default build/bench/accuracy.json)")


def run(args) -> int:
    from gen.accuracy import format_report, fp16_versus_gpu_gemm, guard_sweep, write_report
    sweep, versus = guard_sweep(), fp16_versus_gpu_gemm()
    print(format_report(sweep, versus))
    path = write_report(sweep, versus, Path(args.out or BUILD_ROOT / "bench" / "accuracy.json"))
    print(f"wrote {path}")
    return 0
