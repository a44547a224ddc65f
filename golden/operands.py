"""Operands of one mixed-precision GEMM: INT8 activations with per-token FP32 scales (or
floating-point activations as raw codes, see :mod:`golden.fp_activations`), and low-bit weight codes with per-group FP16 scales and integer zero points (or, in ``zero_mode="float_offset"``,
FP16 float offsets as in llama.cpp Q4_1).

Shapes: activations ``x`` (M, K), ``act_scale`` (M,); weights (N, K) with G = K / g groups per
output channel, so ``scales`` and ``zeros`` (or ``offsets``) are (N, G). The real-valued GEMM is
``y[m, n] = act_scale[m] * sum_k x[m, k] * W[n, k]`` with
``W[n, k] = (codes[n, k] - zeros[n, k // g]) * scales[n, k // g]`` (integer zero points) or
``W[n, k] = codes[n, k] * scales[n, k // g] + offsets[n, k // g]`` (float offsets).
"""

from __future__ import annotations

import dataclasses
import random

import torch

from golden.checks import check_range, check_shape, check_tensor, first_index, real_matrix
from golden.codes import random_format_operands, scale_dtype, scale_problem
from golden.numerics import FP16_MAX, FP16_MIN_NORMAL, FP32_MIN_NORMAL
from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = ["OperandError", "activation_operand", "QuantizedWeights", "OPERAND_KINDS", "FP_OPERAND_KINDS", "validate_operands", "check_codes",
           "resolve_seed", "random_operands",
           "quantize_activations_int8", "rtn_group_params", "rtn_codes", "quantize_weights_rtn"]

INT8_MIN, INT8_MAX = -128, 127
#: Kinds of :func:`random_operands`; floating-point activations have two more.
OPERAND_KINDS = ("uniform", "worst", "signs", "zeros")
FP_OPERAND_KINDS = OPERAND_KINDS + ("outlier", "specials")


class OperandError(MixPEError, ValueError):
    """An operand is invalid; the message names the tensor, its shape or value and what is allowed."""


@dataclasses.dataclass(frozen=True)
class QuantizedWeights:
    """Group-wise quantized N x K weights (N output channels, K reduction, G = K / g groups).

    codes
        int64 (N, K), unsigned codes in ``[0, 2**b - 1]``.
    scales
        torch.float16 (N, G), one scale per output channel and group.
    zeros
        int64 (N, G), integer zero points in ``[0, 2**b - 1]`` (``zero_mode="integer"``), else None.
    offsets
        torch.float16 (N, G), float offsets m of ``w = scale * q + m`` (``zero_mode="float_offset"``,
        llama.cpp Q4_1), else None. Exactly one of ``zeros`` and ``offsets`` is given.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None = None
    offsets: torch.Tensor | None = None


def _check_scales(name: str, value: torch.Tensor, min_normal: float, fmt: str, what: str = "scales") -> None:
    """Reject non-finite and subnormal scales (zero is allowed)."""
    wide = value.double()
    bad = ~torch.isfinite(wide) | ((wide != 0) & (wide.abs() < min_normal))
    if bad.any():
        index = first_index(bad)
        raise OperandError(f"{name}: value {float(wide[index])!r} at index {index} is not allowed; {what} must be "
                           f"finite and either zero or normal {fmt} numbers (|s| >= {min_normal!r})")


def check_codes(config: MixPEConfig, codes: torch.Tensor) -> None:
    """Raise :class:`OperandError` naming the first weight code outside ``[0, 2**b - 1]``."""
    check_range(OperandError, "weights.codes", codes, 0, config.code_max, f"the {config.weight_bits}-bit code range")


def activation_operand(config: MixPEConfig, x):
    """``x`` as the int64 codes :func:`validate_operands` checks: INT8 codes as given; floating-point
    activations as raw codes from any form :func:`golden.fp_activations.activation_codes` takes
    (raw codes, the format's torch dtype, float values), its errors raised as :class:`OperandError`."""
    if not config.fp_activation:
        return x
    from golden.fp_activations import activation_codes    # imports hw.config; lazily, as in random_operands
    try:
        return activation_codes(config, x)
    except (TypeError, ValueError) as error:
        raise OperandError(str(error)) from None


def validate_operands(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                      weights: QuantizedWeights, *, check_codes_range: bool = True) -> None:
    """Raise :class:`OperandError` unless the operands are exactly what the hardware accepts.

    x: int64 (M, K) INT8 codes, or for floating-point activations int64 raw codes of the format
    (any code is accepted: Inf and NaN give NaN rows); act_scale: float32 (M,) finite, zero or
    normal per-token scales, or ``None`` when only the integer part is used (floating-point
    activations have no token scale: it must be ``None``); weights: :class:`QuantizedWeights`
    for N x K with K a multiple of ``config.group_size``. Nothing is truncated or clamped.
    ``check_codes_range=False`` skips the one pass over the codes' values, for a caller that
    checks them as it reads them (:func:`check_codes` on failure).
    """
    group = config.group_size
    fp = config.fp_activation
    meaning = f"{config.activation} raw activation codes, shape (M, K)" if fp else "INT8 activation codes, shape (M, K)"
    check_tensor(OperandError, "x", x, torch.int64, rank=2, nonempty=True, why=meaning)
    m, k = x.shape
    if k % group:
        raise OperandError(f"x: shape {tuple(x.shape)} has K={k}, which is not a multiple of group_size={group}")
    if not isinstance(weights, QuantizedWeights):
        raise OperandError(f"weights: got {type(weights).__name__}, expected QuantizedWeights")
    check_tensor(OperandError, "weights.codes", weights.codes, torch.int64, rank=2, nonempty=True,
                 why="weight codes, shape (N, K)")
    n = weights.codes.shape[0]
    check_shape(OperandError, "weights.codes", weights.codes, (n, k), f"K must match x of shape {tuple(x.shape)}")
    groups = k // group
    per_group = f"N={n} channels x K/g={k}/{group} groups"
    check_tensor(OperandError, "weights.scales", weights.scales, scale_dtype(config), rank=2, nonempty=True,
                 why=f"{config.scale_format} group scales, shape (N, K/g)")
    check_shape(OperandError, "weights.scales", weights.scales, (n, groups), per_group)
    present, absent = ("offsets", "zeros") if config.float_offset else ("zeros", "offsets")
    if getattr(weights, absent) is not None or getattr(weights, present) is None:
        raise OperandError(f"weights.{present if getattr(weights, present) is None else absent}: zero_mode="
                           f"{config.zero_mode!r} needs weights.{present} and weights.{absent}=None")
    if config.float_offset:
        check_tensor(OperandError, "weights.offsets", weights.offsets, torch.float16, rank=2, nonempty=True,
                     why="FP16 group offsets, shape (N, K/g)")
        check_shape(OperandError, "weights.offsets", weights.offsets, (n, groups), per_group)
    else:
        check_tensor(OperandError, "weights.zeros", weights.zeros, torch.int64, rank=2, nonempty=True,
                     why="integer zero points, shape (N, K/g)")
        check_shape(OperandError, "weights.zeros", weights.zeros, (n, groups), per_group)
    if act_scale is not None:
        if fp:
            raise OperandError(f"act_scale: got a tensor, but activation={config.activation!r} has no per-token "
                               f"scale (the group's shared exponent takes its place); pass None")
        check_tensor(OperandError, "act_scale", act_scale, torch.float32, rank=1, nonempty=True,
                     why="per-token FP32 scales, shape (M,)")
        check_shape(OperandError, "act_scale", act_scale, (m,), f"one scale per row of x of shape {tuple(x.shape)}")

    if fp:
        check_range(OperandError, "x", x, 0, 2 ** config.act_bits - 1, f"the {config.activation} code range")
    else:
        check_range(OperandError, "x", x, INT8_MIN, INT8_MAX, "the INT8 range")
    if check_codes_range:
        check_codes(config, weights.codes)
    if config.float_offset:
        _check_scales("weights.offsets", weights.offsets, FP16_MIN_NORMAL, "FP16", "offsets")
    else:
        check_range(OperandError, "weights.zeros", weights.zeros, 0, config.code_max,
                    f"the {config.weight_bits}-bit code range")
    if config.signed_codes and bool((weights.zeros != 0).any()):
        index = first_index(weights.zeros != 0)
        raise OperandError(f"weights.zeros: value {int(weights.zeros[index])} at index {index}; weight_format="
                           f"{config.weight_format!r} codes carry their own sign, so every zero point is 0")
    if config.weight_encoding == "signed":
        off = weights.zeros != config.symmetric_zero
        if off.any():
            index = first_index(off)
            raise OperandError(f"weights.zeros: value {int(weights.zeros[index])} at index {index}; the signed "
                               f"encoding requires every zero point to be {config.symmetric_zero}")
    if config.scale_format == "fp16":
        _check_scales("weights.scales", weights.scales, FP16_MIN_NORMAL, "FP16")
    elif problem := scale_problem(config, weights.scales):
        raise OperandError(f"weights.scales: {problem}")
    if act_scale is not None:
        _check_scales("act_scale", act_scale, FP32_MIN_NORMAL, "FP32")


def resolve_seed(seed: int | None) -> int:
    """``seed``, or a fresh random one in ``[0, 2**31)`` when None; callers report the seed they
    used, so that a run with random stimuli can be replayed."""
    return random.randrange(2 ** 31) if seed is None else seed


def random_operands(config: MixPEConfig, m: int, n: int, k: int, seed: int, kind: str = "uniform"
                    ) -> tuple[torch.Tensor, torch.Tensor, QuantizedWeights]:
    """Seeded random operands (x (M, K), act_scale (M,), weights N x K) of one of :data:`OPERAND_KINDS`
    (:data:`FP_OPERAND_KINDS` for floating-point activations).

    uniform
        Random activations, codes and zero points; scales ~ U(0.001, 0.1) rounded to FP16,
        act scales ~ U(0.001, 0.05).
    worst
        Largest |D| per group: x = -128 everywhere; even channels have codes 2**b - 1 with zero
        point 0, odd channels codes 0 with zero point 2**b - 1 (the signed encoding keeps its
        fixed zero point); every third channel has the largest finite FP16 scale 65504; channels 2 and 3
        (mod 4) have negative scales (both GDU lanes see a scale's sign bit on every row).
    signs
        Cancellation: activations alternate in sign (x[2i+1] = -x[2i], so every A = 0), each odd
        group repeats the previous group's codes with neighbours swapped (D_j = -D_{j-1}) and a
        scale one FP16 step larger, so the group accumulation nearly cancels.
    zeros
        Even rows have all-zero activations; even channels have codes equal to their zero point.

    Floating-point activations (``act_scale`` is None) follow the same patterns with real values
    encoded in the format: ``uniform`` is N(0, 1) times a random power of two per row in
    [2**-3, 2**4]; ``worst`` is the largest finite magnitude, negative, everywhere; ``signs``
    pairs each value with its negation; ``zeros`` rows hold +0 and -0. Two more kinds:

    outlier
        Per group one value of a quarter (odd groups: a half) of the largest finite magnitude among
        tiny ones near the alignment LSB: the alignment error is as large as it gets.
    specials
        Rows cycle through: all subnormals (shift 0, exact); -Inf at one random step that is not
        its group's last (the "fn" formats have no Inf, so NaN there); NaN at the last step of a
        random group; plain values. A special row holds that one invalid element only, so a flag
        lost in its group is not masked by another group's. Each block of ``config.rows`` rows
        starts the cycle one kind further on, so with M >= 4 R every array row holds both an
        invalid element inside a group and one at a group's last step (the activation-sum unit's
        running flag and its capture's own input).

    Other weight or scale formats: :func:`golden.codes.random_format_operands`.

    With ``zero_mode="float_offset"`` the weights carry ``offsets = -zero * scale`` rounded to
    FP16 (clamped to +-65504, subnormals flushed to 0) instead of zero points; ``uniform`` then
    also flips the sign of a random quarter of them. So ``worst`` has the largest |A * m|
    (x = -128, m = -65504) beside the largest |P| * 65504, and ``zeros`` makes the two products
    of even channels cancel up to the FP16 rounding of the offset.
    """
    for name, value in (("m", m), ("n", n), ("k", k)):
        if not isinstance(value, int) or value < 1:
            raise OperandError(f"{name}={value!r}: must be a positive integer")
    if k % config.group_size:
        raise OperandError(f"k={k}: must be a multiple of group_size={config.group_size}")
    if config.weight_format != "int" or config.scale_format != "fp16":
        return random_format_operands(config, m, n, k, seed, kind)
    allowed = FP_OPERAND_KINDS if config.fp_activation else OPERAND_KINDS
    if kind not in allowed:
        raise OperandError(f"kind={kind!r}: allowed values for activation={config.activation!r} are {allowed}")
    gen = torch.Generator().manual_seed(seed)
    group, groups, code_max = config.group_size, k // config.group_size, config.code_max

    def uniform(low: float, high: float, shape: tuple) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)

    x = torch.randint(INT8_MIN, INT8_MAX + 1, (m, k), generator=gen)
    codes = torch.randint(0, code_max + 1, (n, k), generator=gen)
    zeros = torch.randint(0, code_max + 1, (n, groups), generator=gen)
    scales = uniform(0.001, 0.1, (n, groups)).half()
    act_scale = uniform(0.001, 0.05, (m,)).float()
    channel = torch.arange(n)[:, None]

    if kind == "worst":
        x = torch.full((m, k), INT8_MIN)
        even = channel % 2 == 0
        codes = torch.where(even, code_max, 0).expand(n, k).clone()
        zeros = torch.where(even, 0, code_max).expand(n, groups).clone()
        scales = torch.where(channel % 3 == 0, torch.tensor(FP16_MAX, dtype=torch.float16), scales)
        scales = torch.where(channel % 4 >= 2, -scales, scales)
    elif kind == "signs":
        magnitude = torch.randint(1, INT8_MAX + 1, (m, group // 2), generator=gen)
        x = torch.stack([magnitude, -magnitude], dim=-1).reshape(m, group).repeat(1, groups)
        codes = codes.view(n, groups, group // 2, 2)
        swapped = codes.flip(-1)
        odd_group = torch.arange(groups) % 2 == 1
        codes = torch.where(odd_group[None, :, None, None], swapped.roll(1, dims=1), codes).reshape(n, k)
        next_up = torch.nextafter(scales.roll(1, dims=1), torch.tensor(float("inf"), dtype=torch.float16))
        scales = torch.where(odd_group[None, :], next_up, scales)
    elif kind == "zeros":
        x = torch.where(torch.arange(m)[:, None] % 2 == 0, 0, x)
        zero_codes = zeros.repeat_interleave(group, dim=1)
        codes = torch.where(channel % 2 == 0, zero_codes, codes)

    if config.weight_encoding == "signed":
        if kind == "zeros":
            codes = torch.where(channel % 2 == 0, config.symmetric_zero, codes)
        zeros = torch.full((n, groups), config.symmetric_zero)
    if config.float_offset:
        offsets = (-(zeros.double() * scales.double())).clamp(-FP16_MAX, FP16_MAX)
        if kind == "uniform":
            offsets = torch.where(torch.rand(offsets.shape, generator=gen) < 0.25, -offsets, offsets)
        offsets = torch.where(offsets.abs() < FP16_MIN_NORMAL, 0.0, offsets).half()
        weights = QuantizedWeights(codes=codes.contiguous(), scales=scales.contiguous(), offsets=offsets.contiguous())
    else:
        weights = QuantizedWeights(codes=codes.contiguous(), scales=scales.contiguous(), zeros=zeros.contiguous())
    if config.fp_activation:
        x, act_scale = _random_fp_activations(config, m, k, gen, kind), None
    validate_operands(config, x, act_scale, weights)
    return x, act_scale, weights


def _random_fp_activations(config: MixPEConfig, m: int, k: int, gen: torch.Generator, kind: str) -> torch.Tensor:
    """Raw activation codes (M, K) of one :func:`random_operands` kind for a floating-point format."""
    from golden.fp_activations import encode_activations    # needs hw.config, imported lazily to avoid a cycle

    fmt, group = config.act_format, config.group_size
    row_scale = torch.pow(2.0, torch.randint(-3, 5, (m, 1), generator=gen).double())
    values = (torch.randn((m, k), generator=gen, dtype=torch.float64) * row_scale).clamp(-fmt.max_finite / 2,
                                                                                            fmt.max_finite / 2)
    if kind == "worst":
        values = torch.full((m, k), -fmt.max_finite, dtype=torch.float64)
    elif kind == "signs":
        half = values[:, :group // 2].abs()
        values = torch.stack([half, -half], dim=-1).reshape(m, group).repeat(1, k // group)
    elif kind == "zeros":
        signed_zero = torch.where(torch.rand((m, k), generator=gen) < 0.5, -0.0, 0.0).double()
        values = torch.where(torch.arange(m)[:, None] % 2 == 0, signed_zero, values)
    elif kind == "outlier":
        # odd groups' outliers twice as large: the format's second largest exponent too (FP16: 29)
        big = fmt.max_finite / 4 * (1 + torch.arange(k // group) % 2).double()
        tiny = torch.pow(2.0, torch.tensor(-(fmt.man_bits + config.guard + 2), dtype=torch.float64))
        values = (values / row_scale * tiny * big.repeat_interleave(group)).clamp(-fmt.max_finite, fmt.max_finite)
        position = torch.randint(0, group, (m, k // group), generator=gen) + torch.arange(0, k, group)
        sign = torch.where(torch.rand((m, k // group), generator=gen) < 0.5, -1.0, 1.0).double()
        values = values.scatter(1, position, sign * big)
    elif kind == "specials":
        token = torch.arange(m)[:, None]
        kind_of_row = (token + token // config.rows) % 4
        subnormals = torch.randint(-(2 ** fmt.man_bits - 1), 2 ** fmt.man_bits, (m, k), generator=gen).double() \
            * fmt.min_subnormal
        values = torch.where(kind_of_row == 0, subnormals, values)
        # One invalid element per row: a second one in another group would mask a flag lost in the first.
        group_start = torch.randint(0, k // group, (m, 1), generator=gen) * group
        inside = torch.randint(0, max(group - 1, 1), (m, 1), generator=gen)
        position = torch.where(kind_of_row == 1, group_start + inside, group_start + group - 1)
        at = torch.arange(k)[None, :] == position
        special = float("nan") if fmt.specials == "fn" else float("inf")
        values = torch.where((kind_of_row == 1) & at, -special, values)
        values = torch.where((kind_of_row == 2) & at, float("nan"), values)
    return encode_activations(config, values)


def quantize_activations_int8(x_float: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-token INT8 quantization of real activations (M, K).

    Returns (int64 codes (M, K) in [-127, 127], float32 scales (M,)) with scale = absmax / 127
    rounded to FP32 and codes = round-half-even(x / scale); all-zero rows get scale 1.0.
    Raises :class:`OperandError` for non-finite inputs or a row whose scale would be subnormal.
    """
    wide = real_matrix(OperandError, "x_float", x_float, "(M, K)", "activations")
    absmax = wide.abs().amax(dim=1)
    scale = torch.where(absmax == 0, 1.0, absmax / INT8_MAX).float()
    tiny = scale.double() < FP32_MIN_NORMAL
    if tiny.any():
        (row,) = first_index(tiny)
        raise OperandError(f"x_float: row {row} has absmax {float(absmax[row])!r}, whose scale absmax/127 is "
                           f"subnormal in FP32 (the hardware flushes it); rows must be zero or have absmax >= "
                           f"{INT8_MAX * FP32_MIN_NORMAL!r}")
    codes = torch.round(wide / scale.double()[:, None]).to(torch.int64)
    return codes, scale


def rtn_group_params(groups: torch.Tensor, bits: int, symmetric: bool, *, name: str = "w_float"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(FP16 scales (...), int64 zero points (...)) of round-to-nearest quantization of float64
    groups ``groups`` (..., g) to ``bits``-bit codes, reduced over the last dimension.

    asymmetric (``symmetric=False``, ``weight_encoding="unsigned"``)
        lo = min(w, 0), hi = max(w, 0), scale = (hi - lo) / (2**b - 1), zero = round(-lo / scale)
        computed against the FP16 scale and clamped to [0, 2**b - 1].
    symmetric (``symmetric=True``, ``weight_encoding="signed"``)
        scale = absmax / (2**(b-1) - 1) (absmax for b = 2), zero = 2**(b-1).

    Scales are rounded to FP16 and raised to at least the smallest normal FP16 2**-14 (an
    all-zero group gets that scale). Raises :class:`OperandError` naming ``name`` and the group
    whose scale would exceed the FP16 maximum.
    """
    code_max = 2 ** bits - 1
    if symmetric:
        raw_scale = groups.abs().amax(dim=-1) / max(2 ** (bits - 1) - 1, 1)
    else:
        low = groups.amin(dim=-1).clamp(max=0)
        raw_scale = (groups.amax(dim=-1).clamp(min=0) - low) / code_max
    too_large = raw_scale > FP16_MAX
    if too_large.any():
        index = first_index(too_large)
        raise OperandError(f"{name}: group {index} needs scale {float(raw_scale[index])!r}, beyond the FP16 "
                           f"maximum {FP16_MAX}")
    scales = raw_scale.clamp(min=FP16_MIN_NORMAL).half()
    if symmetric:
        zeros = torch.full(scales.shape, 2 ** (bits - 1), dtype=torch.int64)
    else:
        zeros = torch.round(-low / scales.double()).clamp(0, code_max).to(torch.int64)
    return scales, zeros


def rtn_codes(values: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, bits: int) -> torch.Tensor:
    """int64 codes ``clamp(round_half_even(values / scales) + zeros, 0, 2**b - 1)`` of float64
    ``values`` against float64 ``scales`` and integer ``zeros`` (broadcast to ``values``); the
    clamp is where round-to-nearest quantization's clipping error lives."""
    return (torch.round(values / scales) + zeros).clamp(0, 2 ** bits - 1).to(torch.int64)


def quantize_weights_rtn(config: MixPEConfig, w_float: torch.Tensor) -> QuantizedWeights:
    """Round-to-nearest group-wise quantization of real weights (N, K) along K for ``config``'s
    weight bits and group size, symmetric when ``weight_encoding == "signed"``: group parameters
    of :func:`rtn_group_params`, codes of :func:`rtn_codes` against the FP16 scales. Raises
    :class:`OperandError` for non-finite weights or a scale beyond FP16 range.
    """
    wide = real_matrix(OperandError, "w_float", w_float, "(N, K)", "weights")
    n, k = wide.shape
    group = config.group_size
    if n == 0 or k == 0 or k % group:
        raise OperandError(f"w_float: shape {(n, k)}; N must be >= 1 and K a positive multiple of group_size={group}")
    grouped = wide.view(n, k // group, group)
    scales, zeros = rtn_group_params(grouped, config.weight_bits, config.weight_encoding == "signed")
    codes = rtn_codes(grouped, scales.double()[..., None], zeros[..., None], config.weight_bits).reshape(n, k)
    return QuantizedWeights(codes=codes, scales=scales, zeros=zeros)
