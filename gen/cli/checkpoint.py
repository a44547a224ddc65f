"""``mixpe checkpoint DIR``: a Hugging Face checkpoint's quantized layers on the array (``make checkpoint DIR=...``)."""

from __future__ import annotations

import json
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, add_weight_check_options, config_from

NAME = "checkpoint"
HELP = "list a GPTQ/AWQ/compressed-tensors checkpoint directory's quantized layers with the core that runs each; " \
       "--check runs their GEMMs; writes build/checkpoint/<dir name>.json"
DESCRIPTION = ("Every quantized linear layer of a Hugging Face checkpoint directory (config.json's "
               "quantization_config: gptq, awq or compressed-tensors pack-quantized; the *.safetensors shards, read "
               "with safetensors, never pickle) with its shape (N, K), code width, group size and act-order, the "
               "MixPE core that runs it exactly (unsigned codes, integer zero points, the largest hardware group "
               "dividing the layer's) or why none can. --preset/--config give the array size, activation format "
               "and GDU (default 16x16, FP16 activations). --check runs every mapped layer's GEMM on seeded random "
               "activations through the bit-exact model against the float64 GEMM of the imported weights and "
               "asserts the error bound.")


def add_arguments(parser) -> None:
    parser.add_argument("directory", metavar="DIR", help="the checkpoint directory")
    add_config_options(parser)
    add_weight_check_options(parser, "the imported weights", "build/checkpoint/<dir name>.json")


def run(args) -> int:
    from sw.checkpoint_dir import checkpoint_report
    from sw.gguf_report import DEFAULT_BASE, format_record, passed
    from sw.progress import progress
    base = config_from(args, default=DEFAULT_BASE)
    with progress(desc=f"checkpoint{' --check' if args.check else ''}", unit="layer") as bar:
        report = checkpoint_report(args.directory, base, check=args.check, tokens=args.tokens, seed=args.seed,
                                   progress=lambda record: bar.step(record["name"]))
    directory = Path(args.directory)
    out = Path(args.out or BUILD_ROOT / "checkpoint" / f"{directory.resolve().name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for record in report["layers"]:
        print(format_record(record))
    worst = report["max_err_over_bound"]
    print(report["summary"] + (f"; max err/bound {worst:.3g}" if worst is not None else ""))
    ok = passed(report)
    print(f"{'PASS' if ok else 'FAIL'} checkpoint {args.directory}{' --check' if args.check else ''}; wrote {out}")
    return 0 if ok else 1
