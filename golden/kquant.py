"""Bit-exact model and error bound of hierarchical group dequantization (llama.cpp K-quants,
``scale_mode="kquant"``).

Weights (:class:`KQuantWeights`): per group j (the sub-block, g = 16 or 32 weights) an integer
sub-scale sc_j, and an integer zero point z_j (``zero_mode="integer"``: Q6_K and Q3_K with the
``signed`` encoding) or an unsigned min m_j (``"float_offset"``: Q4_K, Q5_K, Q2_K); per
super-block s of 256 weights an FP16 scale d_s (and an FP16 offset scale o_s = -dmin_s)::

    w = d_s * sc_j * (q - z_j)             or        w = d_s * sc_j * q + o_s * m_j

Computation, for token row m, output channel n and super-block s (J = 256 / g groups, in order)::

    P_j = sum x*q,  A_j = sum x,  D_j = P_j - z_j*A_j (or P_j)      exact integers, as the flat mode
    S   = sum_{j in s} sc_j * D_j                                    exact, config.sub_sum_bits signed
    M   = sum_{j in s} m_j * A_j                                     exact, config.min_sum_bits (offsets)
    t   = fmul32(int_to_fp32(S), d_s)                                (x 2**k, floating-point activations)
    t   = fadd32(t, fmul32(int_to_fp32(M), o_s))                     (float offsets)
    acc = t (s = 0), fadd32(acc, t) (s > 0);   y = fmul32(acc, act_scale[m])   (INT8)

which is :mod:`golden.mpgemm`'s flat chain with the super-block as the group, S in place of D and
M in place of A (per channel now). Floating-point activations share one exponent per row and
super-block (:func:`superblock_exponents`: the ``grp`` beat of every group of a super-block carries
the super-block's largest exponent), so that every P_j of a super-block has the same LSB weight
2**k and the integer sums are exact; a super-block with an invalid group gives NaN.

FP16 d and o may be subnormal (llama.cpp's d = max sub-scale / 63 often is): the GDU widens FP16
to FP32 exactly, subnormals included, and the products stay far from FP32's subnormal range.

Error bound (:func:`kquant_error_bound`). The exact result is y* = a * sum_s 2**k (d_s S_s + o_s M_s)
= a * sum_k x_k w_k. |S|, |M| >= 1 integers and nonzero FP16 d, o (multiples of 2**-24) keep every
nonzero product in [2**-24, 2**67] (INT8: |S| < 2**51), a multiple of 2**-47, as are the terms and
partial sums: the flat mode's argument (:mod:`golden.mpgemm`) applies word for word with G' = K/256
super-blocks::

    |y - y*| <= |a| * sum_s 2**k (gamma_{n_s} |d_s S_s| + gamma_{n'_s} |o_s M_s|)

n_s = (G' - max(s, 1)) + 1 (+1 offset add, +1 token product, +1 where |S_s| > 2**24 rounds in
int_to_fp32). The float64 reference x @ W^T rounds its K-term sums and, with float offsets, may
round W itself (d*sc*q and o*m can span 54 bits): gamma^(64)_{K+1} * |a| * sum_k |x_k w_k|.
Floating-point activations add the alignment error sum_k 2**k/2 * |w_k| and 3 G' flushes of at most
2**-126, as in the flat mode; the bound is inflated by 1 + gamma^(64)_{K+3G'+10} for its own
evaluation, and is inf where a value of the FP32 chain or the result may overflow.
"""

from __future__ import annotations

import dataclasses

import torch

from golden.checks import check_range, check_shape, check_tensor
from golden.fp32 import int_to_fp32
from golden.fp_activations import align_activations, decode_activations, shared_exponents
from golden.numerics import FP16_MIN_NORMAL, FP32_MAX, FP32_MIN_NORMAL, FP32_UNIT_ROUNDOFF, FP64_UNIT_ROUNDOFF, gamma
from golden.operands import OperandError, QuantizedWeights, activation_operand, random_operands, validate_operands
from hw.config import KQUANT_SUPER_BLOCK, MixPEConfig

__all__ = ["KQuantWeights", "validate_kquant_operands", "superblock_exponents", "superblock_sums",
           "dequantize_kquant", "kquant_bitexact", "kquant_reference", "kquant_error_bound", "random_kquant_operands"]


@dataclasses.dataclass(frozen=True)
class KQuantWeights:
    """K-quant weights N x K (G = K / g groups, S = K / 256 super-blocks).

    codes
        int64 (N, K), unsigned b-bit codes.
    scales
        torch.float16 (N, S): the super-block scale d.
    sub_scales
        int64 (N, G): sc_j, signed 8-bit (integer zero points) or unsigned 6-bit (float offsets).
    zeros
        int64 (N, G): integer zero points (``zero_mode="integer"``), else None.
    offsets
        torch.float16 (N, S): the super-block offset scale o = -dmin (``"float_offset"``), else None.
    mins
        int64 (N, G): unsigned 6-bit mins m_j (``"float_offset"``), else None.
    """

    codes: torch.Tensor
    scales: torch.Tensor
    sub_scales: torch.Tensor
    zeros: torch.Tensor | None = None
    offsets: torch.Tensor | None = None
    mins: torch.Tensor | None = None


def _flat_proxy(config: MixPEConfig, weights: KQuantWeights) -> tuple[MixPEConfig, QuantizedWeights]:
    """The flat configuration with g = 256 and weights whose groups are the super-blocks: what
    :func:`golden.operands.validate_operands` checks of x, act_scale, the codes, d and o."""
    proxy_config = config.replace(scale_mode="flat", group_size=KQUANT_SUPER_BLOCK)
    supers = weights.scales.shape if isinstance(weights.scales, torch.Tensor) else None
    zeros = None
    if not config.float_offset and supers is not None and len(supers) == 2:
        zero = config.symmetric_zero if config.weight_encoding == "signed" else 0
        zeros = torch.full(tuple(supers), zero, dtype=torch.int64)
    return proxy_config, QuantizedWeights(codes=weights.codes, scales=_normal(weights.scales), zeros=zeros,
                                          offsets=_normal(weights.offsets) if config.float_offset else None)


def _normal(values):
    """FP16 ``values`` with their subnormals replaced by 1: d and o may be subnormal (the GDU
    widens them exactly), the flat checks that reject those still see every non-finite value."""
    if not isinstance(values, torch.Tensor) or values.dtype != torch.float16:
        return values
    return torch.where((values != 0) & (values.abs() < FP16_MIN_NORMAL), torch.ones_like(values), values)


def validate_kquant_operands(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                             weights: KQuantWeights) -> None:
    """Raise :class:`~golden.operands.OperandError` unless the operands are what the K-quant core
    accepts: x, act_scale, the codes, d (and o) as in the flat mode with K a multiple of 256
    (``weights.scales``/``offsets`` being (N, K/256)), but d and o may be subnormal; sub-scales, zero points and mins (N, K/g)
    in their ranges."""
    if not isinstance(weights, KQuantWeights):
        raise OperandError(f"weights: got {type(weights).__name__}, expected KQuantWeights (scale_mode='kquant')")
    if config.float_offset == (weights.offsets is None) or config.float_offset == (weights.mins is None) \
            or config.float_offset != (weights.zeros is None):
        need = "offsets and mins, zeros=None" if config.float_offset else "zeros, offsets=None and mins=None"
        raise OperandError(f"weights: zero_mode={config.zero_mode!r} with scale_mode='kquant' needs weights.{need}")
    proxy_config, proxy = _flat_proxy(config, weights)
    validate_operands(proxy_config, x, act_scale, proxy)
    n, k = weights.codes.shape
    groups = k // config.group_size
    per_group = f"N={n} channels x K/g={k}/{config.group_size} groups"
    fields = [("sub_scales", config.sub_scale_bits, config.sub_scale_signed)]
    fields.append(("mins", config.sub_min_bits, False) if config.float_offset else ("zeros", config.weight_bits, False))
    for name, width, signed in fields:
        value = getattr(weights, name)
        check_tensor(OperandError, f"weights.{name}", value, torch.int64, rank=2, nonempty=True,
                     why=f"integer {name}, shape (N, K/g)")
        check_shape(OperandError, f"weights.{name}", value, (n, groups), per_group)
        low, high = (-2 ** (width - 1), 2 ** (width - 1) - 1) if signed else (0, 2 ** width - 1)
        check_range(OperandError, f"weights.{name}", value, low, high,
                    f"the {'signed' if signed else 'unsigned'} {width}-bit range")
    if config.weight_encoding == "signed":
        check_range(OperandError, "weights.zeros", weights.zeros, config.symmetric_zero, config.symmetric_zero,
                    f"the signed encoding's zero point {config.symmetric_zero}")


def superblock_exponents(config: MixPEConfig, codes: torch.Tensor) -> torch.Tensor:
    """int64 (M, G): per row and group the shared exponent of the group's super-block (the
    largest over its 256 activations), the ``row_param`` of every group's ``grp`` beat."""
    per_super = shared_exponents(config.replace(scale_mode="flat", group_size=KQUANT_SUPER_BLOCK), codes)
    return per_super.repeat_interleave(config.superblock_groups, dim=1)


def _pe_activations(config: MixPEConfig, x: torch.Tensor):
    """(PE operands int64 (M, K), LSB exponent k int64 (M, S) or None, invalid bool (M, S) or None)."""
    if not config.fp_activation:
        return x, None, None
    e_max = superblock_exponents(config, x)
    aligned, invalid = align_activations(config, x, e_max)
    per_super = config.superblock_groups
    m = x.shape[0]
    return (aligned, e_max[:, ::per_super] + config.lsb_exponent_offset,
            invalid.view(m, -1, per_super).any(dim=-1))


def superblock_sums(config: MixPEConfig, pe_x: torch.Tensor, weights: KQuantWeights
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Exact integer (S int64 (M, N, S), M int64 (M, N, S) or None) of the PE operands (M, K).

    Per super-block: P (M, N, J) is a float64 contraction of integers below 2**53 (exact)."""
    group, per_super = config.group_size, config.superblock_groups
    m, k = pe_x.shape
    n = weights.codes.shape[0]
    supers = k // KQUANT_SUPER_BLOCK
    x_groups = pe_x.double().view(m, supers, per_super, group)
    codes = weights.codes.double().view(n, supers, per_super, group)
    p = torch.einsum("msjg,nsjg->mnsj", x_groups, codes).to(torch.int64)
    a = pe_x.view(m, supers, per_super, group).sum(dim=-1)[:, None]               # (M, 1, S, J)
    sub_scales = weights.sub_scales.view(n, supers, per_super)[None]
    if config.float_offset:
        mins = weights.mins.view(n, supers, per_super)[None]
        return (sub_scales * p).sum(dim=-1), (mins * a).sum(dim=-1)
    d = p - weights.zeros.view(n, supers, per_super)[None] * a
    return (sub_scales * d).sum(dim=-1), None


def dequantize_kquant(config: MixPEConfig, weights: KQuantWeights) -> torch.Tensor:
    """The exact weights float64 (N, K) (exact but for float offsets' d*sc*q + o*m, which may span
    54 bits and then rounds once)."""
    group = config.group_size
    d = weights.scales.double().repeat_interleave(KQUANT_SUPER_BLOCK, dim=1)
    sub_scales = weights.sub_scales.double().repeat_interleave(group, dim=1)
    if config.float_offset:
        o = weights.offsets.double().repeat_interleave(KQUANT_SUPER_BLOCK, dim=1)
        return d * sub_scales * weights.codes.double() + o * weights.mins.double().repeat_interleave(group, dim=1)
    return d * sub_scales * (weights.codes - weights.zeros.repeat_interleave(group, dim=1)).double()


def kquant_bitexact(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                    weights: KQuantWeights) -> torch.Tensor:
    """The hardware's result float32 (M, N), bit for bit (the module docstring)."""
    from golden.mpgemm import _group_chain_ops, _require_token_scales
    _require_token_scales(config, act_scale)
    x = activation_operand(config, x)
    validate_kquant_operands(config, x, act_scale, weights)
    pe_x, lsb_exponent, invalid = _pe_activations(config, x)
    s_sum, m_sum = superblock_sums(config, pe_x, weights)                        # (M, N, S)
    multiply, add = _group_chain_ops(config)
    offset = None if lsb_exponent is None else lsb_exponent[:, None, :]
    terms = multiply(int_to_fp32(s_sum), weights.scales.float()[None], offset)
    if config.float_offset:
        terms = add(terms, multiply(int_to_fp32(m_sum), weights.offsets.float()[None], offset))
    if invalid is not None:
        terms = torch.where(invalid[:, None, :], torch.tensor(float("nan")), terms)
    acc = terms[..., 0]
    for s in range(1, terms.shape[-1]):                      # super-blocks in order, one rounding each
        acc = add(acc, terms[..., s])
    return acc if config.fp_activation else multiply(acc, act_scale[:, None], None)


def _real_activations(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None):
    """(x as exact float64 (M, K) with Inf/NaN kept, token scale float64 (M, 1))."""
    if config.fp_activation:
        return decode_activations(config, x), torch.ones(x.shape[0], 1, dtype=torch.float64)
    return x.double(), act_scale.double()[:, None]


def kquant_reference(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                     weights: KQuantWeights) -> torch.Tensor:
    """The float64 reference (M, N): (x * act_scale) @ W^T with the exact weights."""
    from golden.mpgemm import _require_token_scales
    _require_token_scales(config, act_scale)
    x = activation_operand(config, x)
    x_real, scale = _real_activations(config, x, act_scale)
    return (x_real * scale) @ dequantize_kquant(config, weights).T


def kquant_error_bound(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                       weights: KQuantWeights) -> torch.Tensor:
    """Rigorous bound float64 (M, N) on |kquant_bitexact - kquant_reference| (the module
    docstring); inf where an FP32 value may overflow, NaN for rows with an invalid super-block."""
    from golden.mpgemm import _require_token_scales
    _require_token_scales(config, act_scale)
    x = activation_operand(config, x)
    validate_kquant_operands(config, x, act_scale, weights)
    m, k = x.shape
    supers = k // KQUANT_SUPER_BLOCK
    pe_x, lsb_exponent, invalid = _pe_activations(config, x)
    s_sum, m_sum = superblock_sums(config, pe_x, weights)
    x_real, act = _real_activations(config, x, act_scale)
    lsb = torch.ones(m, 1, supers, dtype=torch.float64) if lsb_exponent is None else \
        torch.pow(2.0, lsb_exponent.double())[:, None, :]

    base = torch.tensor([supers - max(s, 1) for s in range(supers)], dtype=torch.float64)
    base = base + 1 + (0 if config.fp_activation else 1) + (1 if config.float_offset else 0)

    def gamma_of(values: torch.Tensor) -> torch.Tensor:
        n = base + (values.abs() > 2 ** 24).double()
        unit = n * FP32_UNIT_ROUNDOFF
        return unit / (1 - unit)

    t_exact = lsb * s_sum.double().abs() * weights.scales.double().abs()[None]
    group_terms = gamma_of(s_sum) * t_exact
    chain = t_exact
    if config.float_offset:
        o_exact = lsb * m_sum.double().abs() * weights.offsets.double().abs()[None]
        group_terms = group_terms + gamma_of(m_sum) * o_exact
        chain = chain + o_exact
    w_abs = dequantize_kquant(config, weights).abs()
    finite_x = torch.where(torch.isfinite(x_real), x_real, 0.0)
    bound = act.abs() * (group_terms.sum(dim=-1) + gamma(k + 1, FP64_UNIT_ROUNDOFF) * (finite_x.abs() @ w_abs.T))
    if config.fp_activation:
        element_lsb = lsb[:, 0, :].repeat_interleave(KQUANT_SUPER_BLOCK, dim=1)          # (M, K)
        bound = bound + (element_lsb / 2) @ w_abs.T + 3 * supers * FP32_MIN_NORMAL
    terms_per_super = 2 if config.float_offset else 1
    bound = bound * (1 + gamma(k + (terms_per_super + 1) * supers + 10, FP64_UNIT_ROUNDOFF))
    reference = (finite_x * act) @ dequantize_kquant(config, weights).T
    chain_overflow = chain.sum(dim=-1) * (1 + gamma(supers + 3, FP32_UNIT_ROUNDOFF)) > FP32_MAX
    bound = torch.where(chain_overflow | (reference.abs() + bound > FP32_MAX), float("inf"), bound)
    if invalid is not None:
        bound = torch.where(invalid.any(dim=1)[:, None], float("nan"), bound)
    return bound


def random_kquant_operands(config: MixPEConfig, m: int, n: int, k: int, seed: int, kind: str = "uniform"
                           ) -> tuple[torch.Tensor, torch.Tensor | None, KQuantWeights]:
    """Seeded random K-quant operands of :func:`golden.operands.random_operands`'s ``kind`` (its
    activations, codes and zero points on the flat core with g = 256's super-block scales), with:

    uniform / outlier / specials
        sub-scales and mins uniform over their whole range (Q6_K's signed int8 included);
    worst
        the largest sub-scales (-128 signed, 63 unsigned) and mins 63: the largest |S| and |M|;
    signs
        one sub-scale per super-block, so that the flat kind's cancelling groups cancel in S too;
    zeros
        even channels have all-zero sub-scales and mins (S = M = 0), odd ones the largest.

    The offset scale o is -d on even channels (llama.cpp's usual dmin > 0) and the flat kind's
    FP16 offset elsewhere, or zero where that is zero. But for ``worst``, channels 3, 7, ... have
    d (and o) scaled by 2**-12: mostly FP16 subnormals."""
    if k % KQUANT_SUPER_BLOCK:
        raise OperandError(f"k={k}: must be a multiple of the K-quant super-block, {KQUANT_SUPER_BLOCK}")
    flat = config.replace(scale_mode="flat", group_size=KQUANT_SUPER_BLOCK)
    x, act_scale, super_weights = random_operands(flat, m, n, k, seed=seed, kind=kind)
    gen = torch.Generator().manual_seed(seed + 1)
    groups = k // config.group_size
    width, signed = config.sub_scale_bits, config.sub_scale_signed
    low, high = (-2 ** (width - 1), 2 ** (width - 1) - 1) if signed else (0, 2 ** width - 1)
    extreme = low if signed else high
    channel = torch.arange(n)[:, None]
    sub_scales = torch.randint(low, high + 1, (n, groups), generator=gen)
    mins = torch.randint(0, 2 ** config.sub_min_bits, (n, groups), generator=gen)
    if kind == "worst":
        sub_scales, mins = torch.full_like(sub_scales, extreme), torch.full_like(mins, 2 ** config.sub_min_bits - 1)
    elif kind == "signs":
        sub_scales = sub_scales[:, ::config.superblock_groups].repeat_interleave(config.superblock_groups, dim=1)
    elif kind == "zeros":
        sub_scales = torch.where(channel % 2 == 0, 0, torch.full_like(sub_scales, extreme))
        mins = torch.where(channel % 2 == 0, 0, torch.full_like(mins, 2 ** config.sub_min_bits - 1))
    scales = super_weights.scales
    tiny = (channel % 4 == 3) & (kind != "worst")
    scales = torch.where(tiny, (scales.double() * 2.0 ** -12).half(), scales).contiguous()
    if config.float_offset:
        offsets = torch.where(channel % 2 == 0, -scales, super_weights.offsets)
        offsets = torch.where(tiny, (offsets.double() * 2.0 ** -12).half(), offsets)
        weights = KQuantWeights(codes=super_weights.codes, scales=scales, sub_scales=sub_scales,
                                offsets=offsets.contiguous(), mins=mins)
    else:
        zeros = torch.randint(0, config.code_max + 1, (n, groups), generator=gen)
        if config.weight_encoding == "signed":
            zeros = torch.full_like(zeros, config.symmetric_zero)
        elif kind == "worst":
            zeros = super_weights.zeros.repeat_interleave(config.superblock_groups, dim=1)
        weights = KQuantWeights(codes=super_weights.codes, scales=scales, sub_scales=sub_scales, zeros=zeros)
    validate_kquant_operands(config, x, act_scale, weights)
    return x, act_scale, weights
