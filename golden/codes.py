"""Golden side of the weight-code and group-scale formats of :mod:`hw.codes`.

The bit-exact model (:mod:`golden.mpgemm`) takes, per weight format, the PE values of the codes
(:func:`pe_values`: the integer each PE multiplies by) and, per scale format, the group scales
decoded to FP32 (:func:`decoded_scales`), which is what the GDU's scale decoder
(:mod:`hw.scale_decode`) produces::

    P = sum x * v(code)                 exact integer (v: code, 2 x E2M1, or +-2^e)
    D = P - z * A                       z = 0 for codes that carry their own sign
    t = fmul32(int_to_fp32(D), s32)     s32 = the decoded scale x 2^scale_exponent_offset

``s32`` is exact (:func:`exact_scales`): every FP16, E4M3 and E8M0 value is an FP32 number, and
the FP4 factor 1/2 (:attr:`~hw.config.MixPEConfig.scale_exponent_offset`) only lowers its
exponent, so ``v * s32`` is exactly the real weight ``code value x scale`` -- except where that
lands below 2^-126: the GDU's FP32 units flush subnormals, so E8M0 code 0 (2^-127) and, with FP4
codes, code 1 (2^-126 / 2) decode to +0 (:func:`decoded_scales`; the error bound adds
``|D| x 2^-127`` for such groups, nothing when their codes are all zero, as in a zero block).
E8M0 code 255 (NaN) is refused.

Scales are stored per format in the torch dtype of that format (:func:`scale_dtype`):
``torch.float16``, ``torch.float8_e8m0fnu`` or ``torch.float8_e4m3fn``; on the group stream
they travel as their raw codes in the 16-bit scale field (:func:`scale_field_bits`).
"""

from __future__ import annotations

import torch

from golden.checks import first_index
from golden.fp32 import fp16_bits
from golden.numerics import FP32_MIN_NORMAL
from hw.codes import pe_value
from hw.config import MixPEConfig

__all__ = ["SCALE_DTYPES", "E4M3_MAX", "E4M3_MIN_NORMAL", "E4M3_MIN_SUBNORMAL", "scale_dtype", "pe_values",
           "code_values", "real_weights", "exact_scales", "decoded_scales", "scale_field_bits", "scale_problem",
           "to_scale_format", "scale_codes_from_fp16", "decode_scale_codes", "random_format_operands",
           "tensor_scaled_mpgemm", "tensor_scaled_bound"]

SCALE_DTYPES = {"fp16": torch.float16, "e8m0": torch.float8_e8m0fnu, "e4m3": torch.float8_e4m3fn}
E4M3_MAX = 448.0
E4M3_MIN_NORMAL = 2.0 ** -6
E4M3_MIN_SUBNORMAL = 2.0 ** -9


def scale_dtype(config: MixPEConfig) -> torch.dtype:
    """The torch dtype of ``config``'s group scales."""
    return SCALE_DTYPES[config.scale_format]


def _value_table(config: MixPEConfig) -> torch.Tensor:
    return torch.tensor([pe_value(config.weight_format, config.weight_bits, code) for code in range(config.code_max + 1)])


def pe_values(config: MixPEConfig, codes: torch.Tensor) -> torch.Tensor:
    """int64: the integer each PE multiplies by for ``codes`` (the codes themselves for ``int``).
    Codes must be in range (callers check them first)."""
    return codes if config.weight_format == "int" else _value_table(config)[codes]


def code_values(config: MixPEConfig, codes: torch.Tensor) -> torch.Tensor:
    """float64: the real value of each code before its group scale (E2M1 for FP4: half the PE value)."""
    return pe_values(config, codes).double() * 2.0 ** config.scale_exponent_offset


def exact_scales(config: MixPEConfig, scales: torch.Tensor) -> torch.Tensor:
    """float64: the group scales times ``2^scale_exponent_offset`` (exact): the real weight is the PE
    value times this."""
    return scales.double() * 2.0 ** config.scale_exponent_offset


def decoded_scales(config: MixPEConfig, scales: torch.Tensor) -> torch.Tensor:
    """float32: the GDU's decoded group scales, :func:`exact_scales` with FP32 subnormals flushed to +0."""
    exact = exact_scales(config, scales)
    return torch.where(exact.abs() < FP32_MIN_NORMAL, exact * 0.0, exact).float()    # keeps the sign of -0


def scale_field_bits(scales: torch.Tensor) -> torch.Tensor:
    """int64 raw codes of the group scales for the 16-bit scale field (FP16 bits, or the 8-bit code)."""
    if scales.dtype == torch.float16:
        return fp16_bits(scales)
    return scales.contiguous().view(torch.uint8).to(torch.int64)


def scale_problem(config: MixPEConfig, scales: torch.Tensor) -> str | None:
    """Why E8M0 or E4M3 ``scales`` (of :func:`scale_dtype`) cannot be a core's group scales (a NaN),
    or None. (FP16 scales are checked by :func:`golden.operands.validate_operands`.)"""
    bad = ~torch.isfinite(scales.double())
    if not bad.any():
        return None
    index = first_index(bad)
    return f"value nan at index {index} is not allowed; {config.scale_format} scales must not be NaN"


def to_scale_format(config: MixPEConfig, scales: torch.Tensor) -> torch.Tensor:
    """Real scales rounded to ``config``'s scale format (E8M0: the nearest power of two in log2,
    as torch rounds; E4M3: nearest, saturating at +-448)."""
    if config.scale_format == "e4m3":
        return scales.double().clamp(-448, 448).to(torch.float8_e4m3fn)
    return scales.to(scale_dtype(config))


def random_format_operands(config: MixPEConfig, m: int, n: int, k: int, seed: int, kind: str = "uniform"):
    """:func:`golden.operands.random_operands` for any weight and scale format: the operands of
    the integer core of the same width (codes read as ``config``'s format), zero points 0 for
    codes with their own sign, and the scales rounded to ``config``'s scale format (``worst``'s
    FP16 65504 becomes the format's largest value: 448 for E4M3, 2^127 for E8M0)."""
    from golden.operands import QuantizedWeights, random_operands, validate_operands    # operands imports this module
    base = config.replace(weight_format="int", scale_format="fp16", name=config.name)
    x, act_scale, weights = random_operands(base, m, n, k, seed, kind)
    scales = weights.scales.double()
    if kind == "worst" and config.scale_format == "e8m0":
        scales = torch.where(scales == 65504, 2.0 ** 127, scales)
    zeros = weights.zeros if weights.zeros is None or not config.signed_codes else torch.zeros_like(weights.zeros)
    weights = QuantizedWeights(codes=weights.codes, scales=to_scale_format(config, scales) if config.scale_format != "fp16"
                               else weights.scales, zeros=zeros, offsets=weights.offsets)
    validate_operands(config, x, act_scale, weights)
    return x, act_scale, weights


def _token_scales_with(act_scale: torch.Tensor, tensor_scale: float) -> torch.Tensor:
    """float32 ``fl32(act_scale x T)`` (exact when T is a power of two and the products stay normal)."""
    return (act_scale.double() * tensor_scale).float()


def tensor_scaled_mpgemm(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                         weights, tensor_scale: float) -> torch.Tensor:
    """The result, float32 (M, N), with an FP32 tensor scale T applied once per output (NVFP4's
    FP32 scale; FireQ's power of two 2^t). INT8 activations: T is folded into the token scales the
    GDU applies anyway, ``a' = fl32(a x T)``; floating-point activations (no token scale): the host
    multiplies each result, ``fmul32(y, T)``."""
    from golden.fp32 import fmul32
    from golden.mpgemm import bitexact_mpgemm         # imports this module
    if config.fp_activation:
        result = bitexact_mpgemm(config, x, None, weights)
        return fmul32(result, torch.full_like(result, tensor_scale))
    return bitexact_mpgemm(config, x, _token_scales_with(act_scale, tensor_scale), weights)


def tensor_scaled_bound(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None, weights,
                        tensor_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(float64 reference ``T x y_ref``, bound on |tensor_scaled_mpgemm - reference|), each (M, N).

    With B = :func:`golden.mpgemm.error_bound` (which covers the distance of the core's result
    from the float64 reference ``y_ref``) and u = 2^-24. INT8: B at the folded scales a', plus the
    rounding of a' (|a' - aT| <= u |aT|) on ``|aT| sum_k |x w|``. Floating point: ``|T| B`` plus the
    final product's rounding ``u |T| (|y_ref| + B)``. Both plus 2^-52 |T y_ref| for the float64
    product ``T x y_ref``."""
    from golden.mpgemm import error_bound, float_reference
    unit, scale = 2.0 ** -24, abs(tensor_scale)
    if config.fp_activation:
        y_ref = float_reference(config, x, None, weights)
        bound = error_bound(config, x, None, weights)
        total = scale * bound + unit * scale * (y_ref.abs() + bound)
    else:
        y_ref = float_reference(config, x, act_scale, weights)
        magnitude = (x.double().abs() @ real_weights(config, weights).abs().T) * act_scale.double().abs()[:, None]
        total = error_bound(config, x, _token_scales_with(act_scale, tensor_scale), weights) \
            + unit * scale * magnitude * (1 + 2.0 ** -40)
    reference = y_ref * tensor_scale
    return reference, total + 2.0 ** -52 * reference.abs()


def real_weights(config: MixPEConfig, weights) -> torch.Tensor:
    """float64 (N, K): the real weights of ``weights`` read as ``config``'s formats (exact): value x
    scale for codes with their own sign, else :func:`golden.reference.dequantize_weights`."""
    if not config.signed_codes:
        from golden.reference import dequantize_weights    # reference imports operands, which imports this module
        return dequantize_weights(weights, config.group_size)
    return code_values(config, weights.codes) * weights.scales.double().repeat_interleave(config.group_size, dim=1)


def scale_codes_from_fp16(config: MixPEConfig, fp16_codes: list[int]) -> list[int]:
    """Raw scale-field codes of ``config``'s scale format for the values of raw FP16 codes (rounded to
    the format; E8M0 takes the magnitude; NaN and Inf become the format's NaN), for benches whose
    cases are written in FP16."""
    values = torch.tensor(fp16_codes, dtype=torch.int64).to(torch.int16).view(torch.float16).double()
    if config.scale_format == "e8m0":
        values = values.abs()
    values = torch.where(torch.isinf(values), float("nan"), values)
    return scale_field_bits(to_scale_format(config, values) if config.scale_format != "fp16" else values.half()).tolist()


def decode_scale_codes(config: MixPEConfig, codes: torch.Tensor) -> torch.Tensor:
    """float32: what the GDU's scale decoder gives for raw scale-field codes (int64; NaN canonical)."""
    raw = codes.to(torch.int64)
    scales = (raw.to(torch.int16) if config.scale_format == "fp16" else raw.to(torch.uint8)).view(scale_dtype(config))
    return decoded_scales(config, scales)
