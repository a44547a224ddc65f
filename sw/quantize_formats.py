"""Post-training quantizers of real weights (N, K) to the code and scale formats of :mod:`hw.codes`,
and the error report of ``python -m sw.quantize_formats`` (``docs/formats.md``, "FP4, power-of-two
and FP8-scale weights").

* :func:`quantize_pow2`: DenseShift-style power-of-two codes (sign and exponent, no zero), one
  scale per group chosen for the least squared error. DenseShift trains its weights; this is
  the post-training variant: per group, 16 scales spread over one octave below
  ``absmax / 2^E`` (the grid is invariant under doubling the scale and shifting the exponents,
  so one octave covers every placement), each weight to the nearest ``+-s 2^e``.
* :func:`quantize_mxfp4`: OCP MX v1.0 MXFP4: per 32 an E8M0 scale ``2^(floor(log2 absmax) - 2)``,
  elements rounded to the nearest E2M1 value (ties to even), saturating at +-6.
* :func:`quantize_nvfp4`: NVFP4: an FP32 tensor scale ``T = absmax / (6 x 448)``, per 16 an E4M3
  scale ``absmax_j / 6 / T`` (rounded to E4M3), E2M1 elements against ``e4m3_j x T``.
* :func:`quantize_fireq`: FireQ-style INT4 codes (the configuration's encoding) with E4M3 group
  scales and a power-of-two tensor multiplier ``2^t`` chosen so that the largest group scale is
  at most 448 after dividing by it: ``w = (q - z) x e4m3_j x 2^t``. :func:`e4m3_underflow`
  counts what the scales lose without it.

The tensor scale (``T`` or ``2^t``) is applied once per output (:func:`golden.codes.tensor_scaled_mpgemm`).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from golden.checks import real_matrix
from golden.numerics import FP16_MIN_NORMAL
from golden.codes import E4M3_MAX, E4M3_MIN_NORMAL, E4M3_MIN_SUBNORMAL, to_scale_format
from golden.codes import real_weights as golden_real_weights
from golden.operands import OperandError, QuantizedWeights, rtn_codes
from hw.codes import E2M1_DOUBLED
from hw.config import MixPEConfig

__all__ = ["ScaledWeights", "quantize_pow2", "quantize_mxfp4", "quantize_nvfp4", "quantize_fireq", "e4m3_underflow",
           "real_weights"]

#: Scales tried per group by :func:`quantize_pow2` (one octave).
POW2_SCALE_STEPS = 16
E2M1_MAX = 6.0
#: E2M1 codes with an even mantissa first, so that argmin's first minimum rounds ties to even.
_E2M1_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)


@dataclasses.dataclass(frozen=True)
class ScaledWeights:
    """Quantized weights for ``config`` and the FP32 tensor scale applied once per output (1.0: none)."""

    config: MixPEConfig
    weights: QuantizedWeights
    tensor_scale: float = 1.0


def _groups(config: MixPEConfig, w_float: torch.Tensor, group: int) -> torch.Tensor:
    """float64 (N, K / group, group) of validated real weights."""
    wide = real_matrix(OperandError, "w_float", w_float, "(N, K)", "weights")
    n, k = wide.shape
    if n == 0 or k == 0 or k % group:
        raise OperandError(f"w_float: shape {(n, k)}; N must be >= 1 and K a positive multiple of group_size={group}")
    return wide.view(n, k // group, group)


def _zeros(grouped: torch.Tensor) -> torch.Tensor:
    return torch.zeros(grouped.shape[:2], dtype=torch.int64)


def quantize_pow2(config: MixPEConfig, w_float: torch.Tensor) -> ScaledWeights:
    """Power-of-two codes (``weight_format="pow2"``) with least-squares group scales in ``config``'s
    scale format (module docstring). A weight of 0 becomes +s (the format has no zero)."""
    if config.weight_format != "pow2":
        raise OperandError(f"config.weight_format={config.weight_format!r}: quantize_pow2 needs 'pow2'")
    grouped = _groups(config, w_float, config.group_size)
    top = 2 ** (config.weight_bits - 1) - 1                       # largest exponent E
    exponents = torch.arange(top + 1, dtype=torch.float64)
    magnitude = grouped.abs()
    absmax = magnitude.amax(dim=-1).clamp(min=1e-30)
    best_error = best_raw = best_exponent = None
    for step in range(POW2_SCALE_STEPS):
        raw = absmax / 2.0 ** top * 2.0 ** (-step / POW2_SCALE_STEPS)
        if config.scale_format == "fp16":
            raw = raw.clamp(min=FP16_MIN_NORMAL)                      # the core takes zero or normal FP16 scales
        scale = to_scale_format(config, raw).double().clamp(min=1e-30)
        levels = scale[..., None, None] * 2.0 ** exponents           # (N, G, 1, E + 1)
        exponent = (magnitude[..., None] - levels).abs().argmin(dim=-1)
        error = ((magnitude - scale[..., None] * 2.0 ** exponent.double()) ** 2).sum(dim=-1)
        if best_error is None:
            best_error, best_raw, best_exponent = error, raw, exponent
            continue
        better = error < best_error
        best_error = torch.where(better, error, best_error)
        best_raw = torch.where(better, raw, best_raw)
        best_exponent = torch.where(better[..., None], exponent, best_exponent)
    codes = best_exponent + torch.where(grouped < 0, 2 ** (config.weight_bits - 1), 0)
    weights = QuantizedWeights(codes=codes.reshape(w_float.shape[0], -1), scales=to_scale_format(config, best_raw),
                               zeros=_zeros(grouped))
    return ScaledWeights(config, weights)


def _e2m1_codes(values: torch.Tensor) -> torch.Tensor:
    """int64 E2M1 codes of float64 ``values`` (already divided by their scale): nearest, ties to
    even, saturating at +-6; -0 and values rounding to 0 keep their sign bit."""
    ordered = torch.tensor([E2M1_DOUBLED[code] / 2 for code in _E2M1_ORDER], dtype=torch.float64)
    index = (values.abs().clamp(max=E2M1_MAX)[..., None] - ordered).abs().argmin(dim=-1)
    magnitude_code = torch.tensor(_E2M1_ORDER)[index]
    return magnitude_code + torch.where(torch.signbit(values), 8, 0)


def quantize_mxfp4(config: MixPEConfig, w_float: torch.Tensor) -> ScaledWeights:
    """OCP MXFP4 (``fp4_e2m1`` codes, ``e8m0`` scales, g = 32; module docstring). An all-zero block
    gets the E8M0 code 0 (its codes are all zero, so the GDU's flush of 2^-127 is exact)."""
    if (config.weight_format, config.scale_format) != ("fp4_e2m1", "e8m0"):
        raise OperandError(f"config: quantize_mxfp4 needs weight_format='fp4_e2m1', scale_format='e8m0', got "
                           f"{config.weight_format!r}, {config.scale_format!r}")
    grouped = _groups(config, w_float, config.group_size)
    absmax = grouped.abs().amax(dim=-1)
    exponent = torch.where(absmax > 0, torch.floor(torch.log2(absmax.clamp(min=2.0 ** -140))) - 2, -127.0)
    exponent = exponent.clamp(-127, 127)
    codes = _e2m1_codes(grouped / 2.0 ** exponent[..., None])
    scales = (2.0 ** exponent).to(torch.float8_e8m0fnu)
    return ScaledWeights(config, QuantizedWeights(codes=codes.reshape(w_float.shape[0], -1), scales=scales,
                                                  zeros=_zeros(grouped)))


def quantize_nvfp4(config: MixPEConfig, w_float: torch.Tensor) -> ScaledWeights:
    """NVFP4 (``fp4_e2m1`` codes, ``e4m3`` scales, g = 16, FP32 tensor scale; module docstring)."""
    if (config.weight_format, config.scale_format) != ("fp4_e2m1", "e4m3"):
        raise OperandError(f"config: quantize_nvfp4 needs weight_format='fp4_e2m1', scale_format='e4m3', got "
                           f"{config.weight_format!r}, {config.scale_format!r}")
    grouped = _groups(config, w_float, config.group_size)
    absmax = grouped.abs().amax(dim=-1)
    tensor_scale = float(torch.tensor(max(float(absmax.max()), 1e-30) / (E2M1_MAX * E4M3_MAX)).float())
    scales = to_scale_format(config, absmax / E2M1_MAX / tensor_scale)
    step = (scales.double() * tensor_scale)[..., None]
    codes = _e2m1_codes(torch.where(step > 0, grouped / torch.where(step > 0, step, 1.0), 0.0))
    return ScaledWeights(config, QuantizedWeights(codes=codes.reshape(w_float.shape[0], -1), scales=scales,
                                                  zeros=_zeros(grouped)), tensor_scale)


def quantize_fireq(config: MixPEConfig, w_float: torch.Tensor, *, tensor_multiplier: bool = True) -> ScaledWeights:
    """FireQ-style integer codes with E4M3 group scales (``scale_format="e4m3"``, ``weight_format="int"``)
    and, with ``tensor_multiplier``, the power of two ``2^t`` (``tensor_scale``) with
    ``t = ceil(log2(max s / 448))``: the largest scale divided by it is in (224, 448]. Group scales and
    zero points as round to nearest (:func:`golden.operands.rtn_group_params`'s rule, without its
    FP16 rounding); the codes are rounded against the stored ``e4m3 x 2^t``. Without the
    multiplier the scales are stored as they are and small ones underflow (:func:`e4m3_underflow`)."""
    if (config.weight_format, config.scale_format) != ("int", "e4m3"):
        raise OperandError(f"config: quantize_fireq needs weight_format='int', scale_format='e4m3', got "
                           f"{config.weight_format!r}, {config.scale_format!r}")
    grouped = _groups(config, w_float, config.group_size)
    bits, symmetric = config.weight_bits, config.weight_encoding == "signed"
    if symmetric:
        raw = grouped.abs().amax(dim=-1) / max(2 ** (bits - 1) - 1, 1)
        low = None
    else:
        low = grouped.amin(dim=-1).clamp(max=0)
        raw = (grouped.amax(dim=-1).clamp(min=0) - low) / (2 ** bits - 1)
    exponent = math.ceil(math.log2(max(float(raw.max()), 1e-30) / E4M3_MAX)) if tensor_multiplier else 0
    multiplier = 2.0 ** exponent
    scales = to_scale_format(config, raw / multiplier)
    step = scales.double() * multiplier
    safe = torch.where(step > 0, step, 1.0)
    if symmetric:
        zeros = torch.full(scales.shape, 2 ** (bits - 1), dtype=torch.int64)
    else:
        zeros = torch.round(-low / safe).clamp(0, 2 ** bits - 1).to(torch.int64)
    codes = rtn_codes(grouped, safe[..., None], zeros[..., None], bits)
    codes = torch.where(step[..., None] > 0, codes, zeros[..., None])
    return ScaledWeights(config, QuantizedWeights(codes=codes.reshape(w_float.shape[0], -1), scales=scales,
                                                  zeros=zeros), multiplier)


def real_weights(quantized: ScaledWeights) -> torch.Tensor:
    """float64 (N, K): the weights the quantized form stands for, tensor scale included."""
    return golden_real_weights(quantized.config, quantized.weights) * quantized.tensor_scale


def e4m3_underflow(scales: torch.Tensor) -> dict:
    """What storing the real group scales ``scales`` (float64, any shape) as E4M3 loses: counts of
    scales that become 0 (below half the smallest subnormal, 2^-10), that become subnormal
    (below 2^-6: fewer than 4 significant bits), and the largest relative error of a nonzero scale."""
    value = scales.double().abs()
    stored = value.to(torch.float8_e4m3fn).double()
    nonzero = value > 0
    relative = torch.where(nonzero, (stored - value).abs() / torch.where(nonzero, value, 1.0), 0.0)
    return {"scales": int(value.numel()), "to_zero": int((nonzero & (stored == 0)).sum()),
            "subnormal": int((nonzero & (stored > 0) & (stored < E4M3_MIN_NORMAL)).sum()),
            "max_relative_error": float(relative.max()) if value.numel() else 0.0,
            "smallest_subnormal": E4M3_MIN_SUBNORMAL}


def _fireq_raw_scales(config: MixPEConfig, w_float: torch.Tensor) -> torch.Tensor:
    """The real (unrounded) group scales :func:`quantize_fireq` starts from."""
    grouped = _groups(config, w_float, config.group_size)
    return (grouped.amax(dim=-1).clamp(min=0) - grouped.amin(dim=-1).clamp(max=0)) / config.code_max


def format_errors(w_float: torch.Tensor, *, tokens: int = 16, seed: int = 0) -> list[dict]:
    """Per format (RTN INT4 and INT3 with FP16 scales as the baselines), on real weights (N, K):
    ``weight_rel_err`` ``||W_q - W|| / ||W||`` and ``gemm_rel_err``, the core's bit-exact GEMM with
    INT8 activations (``tokens`` seeded standard normal rows) against the float64 GEMM with the
    real weights, ``||y - y_float|| / ||y_float||``; plus ``within_bound`` of the bit-exact result."""
    from golden.codes import tensor_scaled_bound, tensor_scaled_mpgemm
    from golden.operands import quantize_activations_int8, quantize_weights_rtn
    gen = torch.Generator().manual_seed(seed)
    x, act_scale = quantize_activations_int8(torch.randn(tokens, w_float.shape[1], generator=gen, dtype=torch.float64))
    w = w_float.double()
    y_float = (x.double() * act_scale.double()[:, None]) @ w.T
    core = dict(rows=4, cols=4, group_size=32)
    runs = [
        ("RTN INT4, FP16 scale per 32", lambda: ScaledWeights(MixPEConfig(**core), quantize_weights_rtn(MixPEConfig(**core), w))),
        ("RTN INT3, FP16 scale per 32", lambda: ScaledWeights(MixPEConfig(**core, weight_bits=3),
                                                              quantize_weights_rtn(MixPEConfig(**core, weight_bits=3), w))),
        ("pow2 4-bit, FP16 scale per 32", lambda: quantize_pow2(MixPEConfig(**core, weight_format="pow2"), w)),
        ("pow2 3-bit, FP16 scale per 32", lambda: quantize_pow2(MixPEConfig(**core, weight_format="pow2", weight_bits=3), w)),
        ("MXFP4 (E8M0 per 32)", lambda: quantize_mxfp4(MixPEConfig(**core, weight_format="fp4_e2m1", scale_format="e8m0"), w)),
        ("NVFP4 (E4M3 per 16, FP32 tensor)", lambda: quantize_nvfp4(
            MixPEConfig(**{**core, "group_size": 16}, weight_format="fp4_e2m1", scale_format="e4m3"), w)),
        ("FireQ INT4, E4M3 per 32, 2^t tensor", lambda: quantize_fireq(MixPEConfig(**core, scale_format="e4m3"), w)),
        ("INT4, E4M3 per 32, no multiplier", lambda: quantize_fireq(MixPEConfig(**core, scale_format="e4m3"), w,
                                                                    tensor_multiplier=False)),
    ]
    rows = []
    for name, run in runs:
        quantized = run()
        config, weights, scale = quantized.config, quantized.weights, quantized.tensor_scale
        y = tensor_scaled_mpgemm(config, x, act_scale, weights, scale).double()
        reference, bound = tensor_scaled_bound(config, x, act_scale, weights, scale)
        rows.append({"format": name, "weight_rel_err": float((real_weights(quantized) - w).norm() / w.norm()),
                     "gemm_rel_err": float((y - y_float).norm() / y_float.norm()),
                     "within_bound": bool(((y - reference).abs() <= bound).all()), "tensor_scale": scale})
    return rows


def _smollm_projections() -> dict:
    """name -> gguf tensor of the 210 Q4_1 projections of the SmolLM2-135M file (``make eval-smollm``'s)."""
    import gguf
    from sw.smollm import smollm_gguf_path
    return {t.name: t for t in gguf.GGUFReader(smollm_gguf_path()).tensors
            if t.tensor_type == gguf.GGMLQuantizationType.Q4_1}


def _dequantized(tensor) -> torch.Tensor:
    import gguf
    shape = tuple(int(v) for v in reversed(list(tensor.shape)))
    return torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape)).double()


def _smollm_underflow() -> int:
    tensors = _smollm_projections()
    totals = {"scales": 0, "to_zero": 0, "subnormal": 0}
    worst = (0.0, "")
    for name, tensor in tensors.items():
        lost = e4m3_underflow(_fireq_raw_scales(MixPEConfig(group_size=32), _dequantized(tensor)))
        for key in totals:
            totals[key] += lost[key]
        worst = max(worst, (lost["max_relative_error"], name))
    print(f"SmolLM2-135M, {len(tensors)} projections, INT4 group scales per 32 stored as E4M3 without the "
          f"multiplier: {totals['to_zero']} of {totals['scales']} become 0, {totals['subnormal']} subnormal "
          f"(< 2^-6); largest relative scale error {worst[0]:.3f} ({worst[1]})")
    return 0


def main(argv=None) -> int:
    """``python -m sw.quantize_formats [--smollm TENSOR]``: the error table on a seeded N(0, 0.02^2)
    512 x 1024 matrix or a SmolLM2-135M projection (its Q4_1 file, dequantized), and the E4M3
    underflow of the FireQ group scales without the tensor multiplier."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m sw.quantize_formats", description=main.__doc__)
    parser.add_argument("--smollm", metavar="TENSOR", help="a SmolLM2 tensor, e.g. blk.0.ffn_up.weight")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--smollm-underflow", action="store_true",
                        help="only the E4M3 underflow of the FireQ group scales, over every SmolLM2 projection")
    args = parser.parse_args(argv)
    if args.smollm_underflow:
        return _smollm_underflow()
    if args.smollm:
        tensors = _smollm_projections()
        if args.smollm not in tensors:
            parser.error(f"--smollm {args.smollm!r}: not a projection of the SmolLM2 file")
        w, what = _dequantized(tensors[args.smollm]), f"SmolLM2-135M {args.smollm} (Q4_1 dequantized)"
    else:
        w = torch.randn(512, 1024, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64) * 0.02
        what = f"seeded N(0, 0.02^2) matrix, seed {args.seed}"
    print(f"{what}: {tuple(w.shape)}")
    print("| format | weight rel. error | GEMM rel. error (INT8 act.) | within bound |")
    print("|---|---:|---:|---|")
    for row in format_errors(w, seed=args.seed):
        print(f"| {row['format']} | {row['weight_rel_err']:.4f} | {row['gemm_rel_err']:.4f} | {row['within_bound']} |")
    under = e4m3_underflow(_fireq_raw_scales(MixPEConfig(group_size=32), w))
    print(f"E4M3 group scales without the multiplier: {under['to_zero']} of {under['scales']} become 0, "
          f"{under['subnormal']} subnormal (< 2^-6), largest relative scale error {under['max_relative_error']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
