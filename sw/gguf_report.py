"""``mixpe gguf FILE``: every tensor of a llama.cpp GGUF file, the MixPE core that runs it exactly
(or why none can), and with ``check`` its GEMM on the array's numerics against gguf's own
dequantization.

The core of a block type (:data:`sw.gguf_import.BLOCK_TYPES`) is the base configuration (array
size, activation format, GDU; default :data:`DEFAULT_BASE`, 16 x 16 with FP16 activations) with
the type's weight fields: g = 32, b = 4, 5 or 8 bit codes, the ``signed`` encoding for the
zero-point types (Q4_0, Q5_0, Q8_0: zero point 2**(b-1)) and ``zero_mode="float_offset"`` for the
offset types (Q4_1, Q5_1). A tensor runs on the array when it imports bit-exactly (every weight of
``GroupQuantized.dequantize`` equals ``gguf.quants.dequantize``) and maps to those operands
(:meth:`~sw.checkpoint.GroupQuantized.to_quantized_weights`: e.g. subnormal FP16 scales do not).
K-quants (:mod:`sw.gguf_kquants`) import bit-exactly too, and run on the core with hierarchical
group dequantization (``scale_mode="kquant"``, :mod:`golden.kquant`): the group is the sub-block
(g = 16 or 32) with its integer sub-scale (and min), ``d`` and ``-dmin`` are FP16 per super-block
of 256, Q3_K and Q6_K use the ``signed`` encoding (z = 4, 32), Q2_K, Q4_K and Q5_K float offsets.
Subnormal FP16 ``d`` and ``dmin`` (frequent: d is the largest sub-scale over 63) run exactly.
The FP4 types (:mod:`sw.gguf_fp4`) run on the FP4 cores: MXFP4 as E2M1 codes with E8M0 scales
per 32, NVFP4 with E4M3 scales per 16 (``weight_format="fp4_e2m1"``, zero points 0).

The check (per tensor, seeded): M random activations (standard normal, INT8-quantized per token
or rounded to the floating-point format), ``y = bitexact_mpgemm`` against ``x @ W_gguf^T`` in
float64, W_gguf being gguf's dequantization. The bound is :func:`golden.mpgemm.error_bound`
(against the exact weights) plus ``|x| @ |W_gguf - W_exact|^T``, the distance of gguf's weights
from the exact ones (zero for the zero-point types; the FP32 rounding of ``d*q + m`` for the
offset types). ``max_err_over_bound`` is the largest ``|y - ref| / bound``; <= 1 passes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError
from sw.gguf_fp4 import FP4_TYPES, core_for_fp4, import_fp4
from sw.gguf_import import BLOCK_TYPES, GGUF_BLOCK, GGUFError, import_gguf, numpy_shape, read_gguf, tensor_label
from sw.gguf_kquants import K_QUANTS, kquant_core_fields, kquant_weights

__all__ = ["DEFAULT_BASE", "UNQUANTIZED", "ARRAY_TYPES", "ROW_CHUNK", "core_for", "gguf_report", "passed", "format_record",
           "format_report"]

#: Array, activation format and GDU of the cores when no base configuration is given.
DEFAULT_BASE = MixPEConfig(rows=16, cols=16, activation="fp16", group_size=GGUF_BLOCK, name="gguf-base")
#: ggml types that hold plain numbers (no quantization): they run outside the array.
UNQUANTIZED = ("F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64")
#: The ggml types the array runs.
ARRAY_TYPES = (*BLOCK_TYPES, *K_QUANTS, *FP4_TYPES)
#: Output channels imported and checked at a time (bounds the memory of large embeddings).
ROW_CHUNK = 4096


def core_for(label: str, base: MixPEConfig = DEFAULT_BASE) -> MixPEConfig:
    """The core that runs block type ``label`` exactly: ``base`` with the type's weight fields (for
    a K-quant, :func:`sw.gguf_kquants.kquant_core_fields`: ``scale_mode="kquant"``)."""
    name = f"gguf-{label.lower()}-{base.activation}-{base.rows}x{base.cols}"
    if label in K_QUANTS:
        return base.replace(**kquant_core_fields(label), name=name)
    if label in FP4_TYPES:
        return core_for_fp4(label, base)
    layout = BLOCK_TYPES[label]
    offset = layout.zero is None
    return base.replace(weight_bits=layout.bits, group_size=GGUF_BLOCK, weight_encoding="unsigned" if offset else "signed",
                        zero_mode="float_offset" if offset else "integer", scale_mode="flat", name=name)


def _unsupported_reason(label: str) -> str:
    if label in UNQUANTIZED:
        return f"{label} is not quantized: it runs outside the array (the host, or a float GEMM)"
    if label == "Q8_K":
        return f"{label}: llama.cpp's intermediate activation type, not a weight format the array runs"
    return f"{label}: no core mode for this type (the array runs {', '.join(ARRAY_TYPES)})"


def _array_weights(label: str, config: MixPEConfig, quantized, raw: np.ndarray):
    """The core's operands of an imported chunk: ``GroupQuantized.to_quantized_weights``, or for a
    K-quant its stored fields (:func:`sw.gguf_kquants.kquant_weights`; subnormal FP16 d and dmin
    included, which the K-quant GDU widens exactly)."""
    if label not in K_QUANTS:
        return quantized.to_quantized_weights(config)
    n, k = quantized.shape
    return kquant_weights(label, raw.reshape(-1, K_QUANTS[label].block_bytes), n, k)


def _activations(config: MixPEConfig, m: int, k: int, generator: torch.Generator):
    """(x operand, act_scale, real activations float64 (M, K) including the token scale)."""
    from golden.fp_activations import decode_activations
    from golden.operands import activation_operand, quantize_activations_int8
    x_float = torch.randn(m, k, generator=generator, dtype=torch.float64)
    if config.fp_activation:
        x = activation_operand(config, x_float)
        return x, None, decode_activations(config, x)
    x, act_scale = quantize_activations_int8(x_float)
    return x, act_scale, x.double() * act_scale.double()[:, None]


def _check_chunk(config: MixPEConfig, weights, w_gguf: torch.Tensor, activations) -> float:
    """max |y - x W_gguf^T| / bound over one chunk of output channels (see the module docstring)."""
    from golden.kquant import dequantize_kquant
    from golden.mpgemm import bitexact_mpgemm, error_bound
    from golden.codes import real_weights
    x, act_scale, x_real = activations
    y = bitexact_mpgemm(config, x, act_scale, weights).double()
    reference = x_real @ w_gguf.T
    exact = dequantize_kquant(config, weights) if config.kquant else real_weights(config, weights)
    drift = (w_gguf - exact).abs()
    k = x_real.shape[1]
    bound = error_bound(config, x, act_scale, weights) + (x_real.abs() @ drift.T) * (1 + k * 2.0 ** -52)
    error = (y - reference).abs()
    ratio = torch.where(bound > 0, error / bound, torch.where(error > 0, math.inf, 0.0))
    ratio = torch.where(torch.isinf(bound), 0.0, ratio)          # the bound does not apply (FP32 overflow)
    return float(ratio.max())


def _tensor_record(path: Path, tensor, base: MixPEConfig, check: bool, tokens: int, seed: int) -> dict:
    import gguf
    label = tensor_label(tensor)
    record = {"name": str(tensor.name), "type": label, "shape": [int(v) for v in tensor.shape],
              "quantized": label not in UNQUANTIZED}
    if label not in ARRAY_TYPES:
        return {**record, "unsupported_reason": _unsupported_reason(label), "bit_exact_import": None,
                "max_err_over_bound": None}
    config = core_for(label, base)
    shape = numpy_shape(tensor)
    k = shape[-1]
    raw = tensor.data.reshape(-1, tensor.data.shape[-1])            # (rows, bytes): 3-D experts stacked
    rows = raw.shape[0]
    qtype = gguf.GGMLQuantizationType[label]
    activations = _activations(config, tokens, k, torch.Generator().manual_seed(seed)) if check else None
    bit_exact, worst, reason = True, 0.0, None
    for start in range(0, rows, ROW_CHUNK):
        stop = min(rows, start + ROW_CHUNK)
        name = str(tensor.name) if rows <= ROW_CHUNK else f"{tensor.name}[rows {start}..{stop - 1}]"
        try:
            chunk_import = import_fp4 if label in FP4_TYPES else import_gguf
            quantized = chunk_import(raw[start:stop], (stop - start, k), label, name=name)
        except GGUFError as error:
            raise GGUFError(f"{path}: {error}") from None
        w_gguf = torch.from_numpy(np.asarray(gguf.quants.dequantize(raw[start:stop], qtype), dtype=np.float32))
        w_gguf = w_gguf.reshape(stop - start, k).double()
        bit_exact &= bool(torch.equal(quantized.dequantize(), w_gguf))
        if reason is None:
            try:
                weights = _array_weights(label, config, quantized, raw[start:stop])
            except CheckpointError as error:
                reason = str(error)
                continue
            if check:
                worst = max(worst, _check_chunk(config, weights, w_gguf, activations))
    if reason is not None:
        return {**record, "unsupported_reason": reason, "bit_exact_import": bit_exact, "max_err_over_bound": None}
    return {**record, "config": config.to_dict()["params"], "bit_exact_import": bit_exact,
            "max_err_over_bound": worst if check else None}


def gguf_report(path: str | Path, base: MixPEConfig = DEFAULT_BASE, *, check: bool = False, tokens: int = 16,
                seed: int = 0, progress=None) -> dict:
    """The report of every tensor of the GGUF file ``path`` (see the module docstring).

    ``tokens``: activation rows M of the check; ``seed`` seeds them (the same for every tensor);
    ``progress`` (optional) is called with each record as it is made."""
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise GGUFError(f"tokens={tokens!r}: must be a positive integer")
    path = Path(path)
    reader = read_gguf(path)
    records = []
    for tensor in reader.tensors:
        record = _tensor_record(path, tensor, base, check, tokens, seed)
        records.append(record)
        if progress is not None:
            progress(record)
    quantized = [r for r in records if r["quantized"]]
    on_array = [r for r in quantized if "config" in r and r["bit_exact_import"]]
    ratios = [r["max_err_over_bound"] for r in on_array if r["max_err_over_bound"] is not None]
    return {
        "file": str(path), "base_config": base.to_dict()["params"], "check": check, "tokens": tokens, "seed": seed,
        "tensors": records, "quantized_tensors": len(quantized), "on_array": len(on_array),
        "all_bit_exact": all(r["bit_exact_import"] is not False for r in records),
        "max_err_over_bound": max(ratios) if ratios else None,
        "summary": f"{len(on_array)} of {len(quantized)} quantized tensors run on the array",
    }


def passed(report: dict) -> bool:
    """Every imported tensor bit-exact, and with the check every GEMM within its bound."""
    worst = report["max_err_over_bound"]
    return report["all_bit_exact"] and (not report["check"] or worst is None or worst <= 1)


def format_record(record: dict) -> str:
    """One line: name, type, ggml shape, then the core or the reason, and the check's result."""
    shape = "x".join(str(v) for v in record["shape"])
    head = f"{record['name']:<32} {record['type']:<5} {shape:<14}"
    if "config" not in record:
        tail = f"unsupported: {record['unsupported_reason']}"
    else:
        tail = f"{record['config']['name']}"
    if record["bit_exact_import"] is not None:
        tail += f"  import {'bit-exact' if record['bit_exact_import'] else 'DIFFERS from gguf'}"
    if record["max_err_over_bound"] is not None:
        tail += f"  err/bound {record['max_err_over_bound']:.3g}"
    return f"{head} {tail}"


def format_report(report: dict) -> str:
    lines = [format_record(record) for record in report["tensors"]]
    worst = report["max_err_over_bound"]
    lines.append(report["summary"] + (f"; max err/bound {worst:.3g}" if worst is not None else ""))
    return "\n".join(lines)
