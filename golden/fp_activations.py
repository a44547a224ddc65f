"""Floating-point activations as the hardware sees them: raw codes, the per-group shared exponent, and
the block-floating-point alignment done at the array edge (the golden model of ``hw/fp_align.py``).

For an element with sign ``s``, exponent field ``e`` and mantissa field ``f`` of a format with
``M`` mantissa bits and bias ``B`` (:mod:`hw.formats`):

* effective exponent ``e_eff = max(e, 1)`` and significand ``sig = f + (e != 0) * 2**M``, so the
  value is ``(-1)**s * sig * 2**(e_eff - B - M)``; subnormals and zeros are exact.
* the group's shared exponent ``e_max`` is the largest ``e_eff`` of its finite elements (1 when
  every element is special), computed by whoever produces the activations and sent on the
  ``grp`` stream (see the README's "Floating-point activations").
* alignment with ``G`` guard bits: ``shift = e_max - e_eff`` and ``mag = sig * 2**G``; the aligned
  magnitude is ``mag`` for ``shift = 0`` and ``floor((mag + 2**(shift-1)) / 2**shift)`` otherwise
  (round to nearest, ties away from zero; any shift >= M + G + 2 gives 0). The aligned integer
  ``(-1)**s * magnitude`` has LSB weight ``2**(e_max + config.lsb_exponent_offset)``, and
  ``|x - aligned * 2**k| <= 2**(k-1)``.
* an element is *invalid* when it is Inf or NaN (format conventions in :mod:`hw.formats`) or
  its ``e_eff`` exceeds the shared exponent; a group row with an invalid element makes the
  row's outputs NaN (the hardware's NaN-in, NaN-out policy). Invalid elements align to 0.
"""

from __future__ import annotations

import torch

from golden.checks import first_index
from hw.config import MixPEConfig

__all__ = ["activation_codes", "encode_activations", "decode_activations", "activation_fields", "shared_exponents",
           "align_activations"]


def _format(config: MixPEConfig):
    fmt = config.act_format
    if not fmt.is_float:
        raise ValueError(f"activation={config.activation!r}: not a floating-point format")
    return fmt


def encode_activations(config: MixPEConfig, values: torch.Tensor) -> torch.Tensor:
    """Raw codes int64 of real values (any float tensor), rounded to the format (nearest, ties to
    even; subnormals kept). NaN encodes as the format's NaN with the value's sign; values whose
    rounding exceeds the largest finite magnitude raise ``ValueError`` (nothing saturates silently)."""
    fmt = _format(config)
    man_bits, bias = fmt.man_bits, fmt.bias
    wide = values.double()
    magnitude = wide.abs()
    _, exponent = torch.frexp(torch.where(magnitude > 0, magnitude, 1.0))   # magnitude in [2^(e-1), 2^e)
    unbiased = (exponent - 1).clamp(min=1 - bias)
    quantum = torch.pow(2.0, (unbiased - man_bits).double())
    significand = torch.round(magnitude / quantum)                             # half to even
    carry = significand >= 2 ** (man_bits + 1)
    unbiased = torch.where(carry, unbiased + 1, unbiased)
    significand = torch.where(carry, significand / 2, significand).to(torch.int64)
    finite = torch.isfinite(wide)
    too_big = finite & ((unbiased + bias > fmt.max_exponent_field) |
                        ((unbiased + bias == fmt.max_exponent_field) & (significand.double() * quantum > fmt.max_finite)))
    if too_big.any() or torch.isinf(wide).any() and fmt.specials == "fn":
        index = first_index(too_big | torch.isinf(wide))
        raise ValueError(f"values: {float(wide[index])!r} at index {index} is beyond the largest finite "
                         f"{fmt.name} magnitude {fmt.max_finite!r}")
    field = torch.where(significand >= 2 ** man_bits, unbiased + bias, 0)
    code = (field << man_bits) | (significand & (2 ** man_bits - 1))
    all_ones = 2 ** fmt.exp_bits - 1
    code = torch.where(torch.isinf(wide), all_ones << man_bits, code)
    code = torch.where(torch.isnan(wide), (all_ones << man_bits) | (2 ** man_bits - 1), code)
    sign = (torch.signbit(wide)).to(torch.int64) << (fmt.exp_bits + man_bits)
    return code | sign


def activation_codes(config: MixPEConfig, x: torch.Tensor) -> torch.Tensor:
    """Raw codes int64 (same shape) of activations ``x``.

    ``x`` is either int64 raw codes (checked to lie in ``0 .. 2**bits - 1``), a tensor of the
    format's own torch dtype (reinterpreted bit for bit), or float32/float64 values, rounded to
    the format by :func:`encode_activations`."""
    fmt = _format(config)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch tensor, got {type(x).__name__}")
    if x.dtype == torch.int64:
        bad = (x < 0) | (x >= 2 ** fmt.bits)
        if bad.any():
            index = first_index(bad)
            raise ValueError(f"x: code {int(x[index])} at index {index} is outside the {fmt.name} code range "
                             f"[0, {2 ** fmt.bits - 1}]")
        return x
    if x.dtype in (torch.float32, torch.float64):
        return encode_activations(config, x)
    own = getattr(torch, fmt.torch_dtype) if fmt.torch_dtype else None
    if x.dtype != own:
        raise TypeError(f"x: dtype {x.dtype}; activation={fmt.name!r} takes {own}, float32/float64 values "
                        f"(rounded to {own}) or int64 raw codes")
    raw = x.contiguous().view(torch.int16 if fmt.bits == 16 else torch.uint8).to(torch.int64)
    return raw & (2 ** fmt.bits - 1)


def activation_fields(config: MixPEConfig, codes: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(negative bool, e_eff int64, significand int64, special bool) of raw codes."""
    fmt = _format(config)
    man_bits, exp_bits = fmt.man_bits, fmt.exp_bits
    negative = ((codes >> (exp_bits + man_bits)) & 1).bool()
    exponent = (codes >> man_bits) & (2 ** exp_bits - 1)
    mantissa = codes & (2 ** man_bits - 1)
    all_ones = exponent == 2 ** exp_bits - 1
    special = all_ones & (mantissa == 2 ** man_bits - 1) if fmt.specials == "fn" else all_ones
    e_eff = exponent.clamp(min=1)
    significand = mantissa + torch.where(exponent != 0, 2 ** man_bits, 0)
    return negative, e_eff, significand, special


def decode_activations(config: MixPEConfig, codes: torch.Tensor) -> torch.Tensor:
    """Exact float64 values of raw codes (Inf and NaN per the format's convention)."""
    fmt = _format(config)
    negative, e_eff, significand, special = activation_fields(config, codes)
    magnitude = significand.double() * torch.pow(2.0, (e_eff - fmt.bias - fmt.man_bits).double())
    if fmt.specials == "fn":
        magnitude = torch.where(special, float("nan"), magnitude)
    else:
        mantissa = codes & (2 ** fmt.man_bits - 1)
        magnitude = torch.where(special, torch.where(mantissa == 0, float("inf"), float("nan")), magnitude)
    return torch.where(negative, -magnitude, magnitude)


def shared_exponents(config: MixPEConfig, codes: torch.Tensor) -> torch.Tensor:
    """Shared exponent int64 (M, G) of every row and group of codes (M, K): the largest effective
    exponent field of the group's finite elements, 1 if there are none."""
    _, e_eff, _, special = activation_fields(config, codes)
    m, k = codes.shape
    finite_e = torch.where(special, 1, e_eff)
    return finite_e.view(m, k // config.group_size, config.group_size).amax(dim=-1)


def align_activations(config: MixPEConfig, codes: torch.Tensor, e_max: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned signed integers int64 (M, K) and the invalid flag bool (M, G) of codes (M, K)
    against shared exponents e_max (M, G), exactly as the array edge computes them."""
    fmt = _format(config)
    group, guard = config.group_size, config.guard
    m, k = codes.shape
    negative, e_eff, significand, special = activation_fields(config, codes)
    e_group = e_max.repeat_interleave(group, dim=1)
    shift = e_group - e_eff
    invalid = special | (shift < 0)
    shift = shift.clamp(0, fmt.man_bits + guard + 2)
    magnitude = significand << guard
    half = torch.where(shift > 0, 1 << (shift - 1).clamp(min=0), 0)
    magnitude = (magnitude + half) >> shift
    magnitude = torch.where(invalid, 0, magnitude)
    aligned = torch.where(negative, -magnitude, magnitude)
    return aligned, invalid.view(m, k // group, group).any(dim=-1)
