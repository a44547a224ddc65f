"""``mixpe gguf FILE``: the tensors of a llama.cpp GGUF file on the array (``make gguf FILE=...``)."""

from __future__ import annotations

import json
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, add_weight_check_options, config_from

NAME = "gguf"
HELP = "list a GGUF file's tensors with the core that runs each exactly; --check runs their GEMMs; " \
       "writes build/gguf/<stem>.json"
DESCRIPTION = ("Every tensor of a llama.cpp GGUF file with its type and shape (ggml order, ne0 = K first), the MixPE "
               "core that runs it exactly (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: g = 32 with the type's code width and "
               "zero mode; Q2_K .. Q6_K on K-quant cores; MXFP4 and NVFP4 on FP4 cores) or why none can, "
               "and whether its import equals gguf's dequantization bit for bit. "
               "--preset/--config give the array size, activation format and GDU of those cores (default 16x16, "
               "FP16 activations); their weight fields come from each tensor's type. --check runs every mapped "
               "tensor's GEMM on seeded random activations through the bit-exact model against the float64 GEMM "
               "of gguf's dequantization and asserts the error bound.")


def add_arguments(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="the GGUF file")
    add_config_options(parser)
    add_weight_check_options(parser, "gguf's dequantization", "build/gguf/<file stem>.json")


def run(args) -> int:
    from sw.gguf_report import DEFAULT_BASE, format_report, gguf_report, passed
    from sw.progress import progress
    base = config_from(args, default=DEFAULT_BASE)
    if args.check:              # seconds per large tensor; the listing alone is quick
        with progress(desc="gguf --check", unit="tensor") as bar:
            report = gguf_report(args.file, base, check=True, tokens=args.tokens, seed=args.seed,
                                 progress=lambda record: bar.step(record["name"]))
    else:
        report = gguf_report(args.file, base)
    out = Path(args.out or BUILD_ROOT / "gguf" / f"{Path(args.file).stem}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    ok = passed(report)
    print(f"{'PASS' if ok else 'FAIL'} gguf {args.file}{' --check' if args.check else ''}; wrote {out}")
    return 0 if ok else 1
