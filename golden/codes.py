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

__all__ = ["SCALE_DTYPES", "scale_dtype", "pe_values", "code_values", "exact_scales", "decoded_scales", "scale_field_bits",
           "scale_problem", "to_scale_format", "random_format_operands"]

SCALE_DTYPES = {"fp16": torch.float16, "e8m0": torch.float8_e8m0fnu, "e4m3": torch.float8_e4m3fn}


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
