"""Bit-exact PyTorch reference for the FP32 arithmetic of the group-dequant unit.

These functions are the golden model of ``hw/fp_int_to_float.py``, ``hw/fp_widen.py``,
``hw/fp_mul.py`` and ``hw/fp_add.py``; the RTL and this module agree bit for bit.

Numerics contract (shared with the RTL):

* Format IEEE 754 binary32; rounding is round-to-nearest-even everywhere.
* Subnormal inputs of :func:`fmul32` / :func:`fadd32` are treated as zero of the same sign (DAZ).
* A result is first rounded to 24 significant bits with an unbounded exponent range; if the rounded
  magnitude is below 2^-126 it is flushed to zero keeping its sign (FTZ after rounding). A rounded
  magnitude >= 2^128 gives infinity of the result's sign.
* Every NaN result is the canonical quiet NaN ``0x7FC00000``. NaN inputs give NaN, as do
  ``inf * 0`` and ``inf + (-inf)``.
* Zero signs follow IEEE in RNE mode: ``x + (-x) = +0``, ``(-0) + (-0) = -0``, ``(+0) + (-0) = +0``;
  the sign of a product is the XOR of the operand signs, also for zero, infinite and flushed results.
* Conversions (:func:`int_to_fp32`, :func:`widen_to_fp32`) are exact whenever the value is
  representable; :func:`widen_to_fp32` keeps binary32 subnormals that come from a format with an
  8-bit exponent (bf16) as binary32 subnormals, because they are exactly representable.

All functions are vectorised and work on CPU tensors. They do not depend on
``torch.set_flush_denormal``: every intermediate that decides a result is a normal number.
"""

from __future__ import annotations

import torch

from golden.numerics import CANONICAL_NAN_BITS, FP32_MIN_NORMAL

__all__ = [
    "bits",
    "from_bits",
    "fp16_bits",
    "int_to_fp32",
    "widen_to_fp32",
    "fp16_to_fp32",
    "bf16_to_fp32",
    "fmul32",
    "fadd32",
]

# A float64 value below 2^-126 is scaled by this (exactly) so that its rounding to 24 bits
# happens in the normal float32 range, as if the exponent range were unbounded.
_TINY_SCALE = 2.0 ** 64


def bits(t: torch.Tensor) -> torch.Tensor:
    """Raw binary32 patterns of a float32 tensor, as int64 values in 0 .. 2^32-1 (uint32 view)."""
    if t.dtype != torch.float32:
        raise TypeError(f"bits() expects a float32 tensor, got {t.dtype}")
    return t.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def from_bits(t) -> torch.Tensor:
    """float32 tensor from raw binary32 patterns (any integer tensor or sequence, uint32 or int32 view)."""
    t = torch.as_tensor(t)
    if t.is_floating_point():
        raise TypeError(f"from_bits() expects integer patterns, got {t.dtype}")
    signed32 = ((t.to(torch.int64) & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000
    return signed32.to(torch.int32).view(torch.float32)


def fp16_bits(t: torch.Tensor) -> torch.Tensor:
    """Raw binary16 patterns of a float16 tensor, as int64 values in 0 .. 2^16-1 (the codes
    :func:`fp16_to_fp32` takes)."""
    if t.dtype != torch.float16:
        raise TypeError(f"fp16_bits() expects a float16 tensor, got {t.dtype}")
    return t.contiguous().view(torch.int16).to(torch.int64) & 0xFFFF


def _canonical_nan_like(t: torch.Tensor) -> torch.Tensor:
    return from_bits(torch.full_like(t, CANONICAL_NAN_BITS, dtype=torch.int64))


def _canonicalise_nan(t: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isnan(t), _canonical_nan_like(t), t)


def _flush_subnormal_input(x: torch.Tensor) -> torch.Tensor:
    """DAZ: binary32 subnormals become zero of the same sign."""
    subnormal = (x != 0) & (x.abs() < FP32_MIN_NORMAL)
    return torch.where(subnormal, torch.copysign(torch.zeros_like(x), x), x)


def _round_to_fp32_ftz(x: torch.Tensor) -> torch.Tensor:
    """Round float64 values to binary32 (RNE, unbounded exponent), then apply overflow and FTZ.

    Exact for every float64 input; a NaN input stays NaN (not yet canonical).
    """
    rounded = x.to(torch.float32)  # correct RNE for normal results, inf on overflow
    tiny = x.abs() < FP32_MIN_NORMAL
    # |x| < 2^-126 scaled by 2^64 is < 2^-62: its rounding is exact-RNE whenever it can reach
    # 2^-62 (= 2^-126 after scaling back); anything smaller is flushed whatever its rounding.
    rounded_tiny = (x * _TINY_SCALE).to(torch.float32).abs()
    reaches_min_normal = rounded_tiny >= FP32_MIN_NORMAL * _TINY_SCALE
    flushed = torch.copysign(
        torch.where(reaches_min_normal, torch.full_like(x, FP32_MIN_NORMAL), torch.zeros_like(x)), x
    ).to(torch.float32)
    return torch.where(tiny, flushed, rounded)


def _power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """Exact float64 2^exponent for integer exponents in -1022 .. 1023, built from its bit pattern."""
    return ((exponent.to(torch.int64) + 1023) << 52).view(torch.float64)


def int_to_fp32(d: torch.Tensor) -> torch.Tensor:
    """Round-to-nearest-even conversion of signed integers (any int64 value) to float32.

    Exact when ``|d| <= 2^24``; zero converts to +0.
    """
    d = torch.as_tensor(d)
    if d.is_floating_point():
        raise TypeError(f"int_to_fp32() expects an integer tensor, got {d.dtype}")
    d = d.to(torch.int64)
    if d.numel():
        smallest, largest = torch.aminmax(d)
        if -(2 ** 24) <= int(smallest) and int(largest) <= 2 ** 24:
            return d.to(torch.float32)                 # every value is exactly representable
    # |d| < 2^53 converts exactly to float64, leaving the single rounding to float32.
    # Larger magnitudes are reduced by 2^11 with the shifted-out bits ORed into the LSB
    # ("round to odd"): the result still has >= 42 bits, so the sticky LSB sits far below the
    # float32 rounding position and the final rounding is the correct one.
    big = (d >= 2 ** 53) | (d <= -(2 ** 53))
    shift = 11
    floor_quotient = d >> shift  # arithmetic shift: d = floor_quotient * 2^11 + remainder
    remainder = d & ((1 << shift) - 1)
    inexact = remainder != 0
    reduced_magnitude = torch.where(
        d < 0,
        torch.where(inexact, -floor_quotient - 1, -floor_quotient),  # written to avoid abs(-2^63)
        floor_quotient,
    ) | inexact.to(torch.int64)
    small_magnitude = torch.where(big, torch.zeros_like(d), d).abs()
    magnitude = torch.where(big, reduced_magnitude, small_magnitude)
    rounded = magnitude.to(torch.float64).to(torch.float32)
    rounded = torch.where(big, rounded * float(2 ** shift), rounded)  # exact power-of-two scaling
    return torch.where(d < 0, -rounded, rounded)


def widen_to_fp32(code: torch.Tensor, exp_bits: int, man_bits: int) -> torch.Tensor:
    """Exact conversion of raw codes of an IEEE-like format to float32.

    The format has a sign bit, ``exp_bits`` exponent bits with bias ``2^(exp_bits-1) - 1`` and
    ``man_bits`` stored mantissa bits; the all-ones exponent encodes infinity (mantissa 0) and NaN.
    Needs ``2 <= exp_bits <= 8`` and ``1 <= man_bits <= 23``. Subnormals are converted exactly
    (they become normal binary32 values when ``exp_bits < 8``); NaN becomes the canonical NaN.
    """
    if not (2 <= exp_bits <= 8 and 1 <= man_bits <= 23):
        raise ValueError(f"unsupported format: exp_bits={exp_bits}, man_bits={man_bits}")
    code = torch.as_tensor(code).to(torch.int64)
    width = 1 + exp_bits + man_bits
    if bool(((code < 0) | (code >= 2 ** width)).any()):
        raise ValueError(f"codes must lie in 0 .. 2^{width}-1")
    bias = 2 ** (exp_bits - 1) - 1
    negative = ((code >> (exp_bits + man_bits)) & 1).bool()
    exponent = (code >> man_bits) & (2 ** exp_bits - 1)
    mantissa = (code & (2 ** man_bits - 1)).to(torch.float64)
    subnormal_or_zero = exponent == 0
    significand = torch.where(subnormal_or_zero, mantissa, mantissa + 2.0 ** man_bits)
    unbiased = torch.where(subnormal_or_zero, torch.full_like(exponent, 1 - bias), exponent - bias)
    # |significand| < 2^24 times a power of two within float64's normal range: exact.
    magnitude = significand * _power_of_two(unbiased - man_bits)
    all_ones = exponent == 2 ** exp_bits - 1
    magnitude = torch.where(all_ones & (mantissa == 0), torch.full_like(magnitude, float("inf")), magnitude)
    magnitude = torch.where(all_ones & (mantissa != 0), torch.full_like(magnitude, float("nan")), magnitude)
    value = torch.where(negative, -magnitude, magnitude)
    return _canonicalise_nan(value.to(torch.float32))


def fp16_to_fp32(h: torch.Tensor) -> torch.Tensor:
    """Exact IEEE binary16 -> float32 from raw 16-bit codes (0 .. 65535)."""
    return widen_to_fp32(h, exp_bits=5, man_bits=10)


def bf16_to_fp32(b: torch.Tensor) -> torch.Tensor:
    """Exact bfloat16 -> float32 from raw 16-bit codes (0 .. 65535); bf16 subnormals stay subnormal."""
    return widen_to_fp32(b, exp_bits=8, man_bits=7)


def _check_fp32(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.dtype != torch.float32:
            raise TypeError(f"expected float32 tensors, got {t.dtype}")


def fmul32(a: torch.Tensor, b: torch.Tensor, exp_offset: torch.Tensor | None = None) -> torch.Tensor:
    """Product of two float32 tensors under the module's numerics contract (DAZ, RNE, FTZ after rounding).

    With ``exp_offset`` (integer tensor broadcastable to the operands, |offset| <= 512) the result
    is ``a * b * 2**exp_offset`` rounded once: the hardware adds the offset to the product's
    exponent before rounding, so overflow and flushing depend on the scaled value only."""
    _check_fp32(a, b)
    a, b = _flush_subnormal_input(a), _flush_subnormal_input(b)
    # 24 x 24 significand bits fit in float64's 53 and 2^-252 .. 2^256 in its exponent range:
    # the float64 product is exact, including its sign for zero/inf and inf * 0 = NaN; scaling it
    # by 2^offset (|offset| <= 512) stays within float64's normal range, so it is exact too.
    exact = a.to(torch.float64) * b.to(torch.float64)
    if exp_offset is not None:
        exp_offset = torch.as_tensor(exp_offset)
        if exp_offset.is_floating_point() or bool((exp_offset.abs() > 512).any()):
            raise ValueError("exp_offset: expected integers with |offset| <= 512")
        exact = exact * _power_of_two(exp_offset)
    return _canonicalise_nan(_round_to_fp32_ftz(exact))


def fadd32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum of two float32 tensors under the module's numerics contract (DAZ, RNE, FTZ after rounding)."""
    _check_fp32(a, b)
    a, b = _flush_subnormal_input(a), _flush_subnormal_input(b)
    # The float64 sum rounded again to binary32 equals the correctly rounded sum, because
    # 53 >= 2 * 24 + 2 makes double rounding innocuous for addition (Figueroa 1995). A nonzero
    # sum below 2^-126 of two normal binary32 values is a multiple of 2^-149 and thus exact, so
    # FTZ flushes it to zero with the sign of the exact sum. Exact cancellation gives +0 in
    # RNE, and (-0) + (-0) = -0, as in float64.
    exact_or_rounded = a.to(torch.float64) + b.to(torch.float64)
    return _canonicalise_nan(_round_to_fp32_ftz(exact_or_rounded))
