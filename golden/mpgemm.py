"""Bit-exact model of the MixPE numerics (the contract the RTL matches bit for bit), and a
rigorous bound on its distance from the float64 reference.

Computation, for token row m, output channel n and group j (g consecutive k), groups taken in
increasing j::

    P   = sum_{k in group j} x[m,k] * codes[n,k]            exact integer
    A   = sum_{k in group j} x[m,k]                          exact integer
    D   = P - zeros[n,j] * A                                 exact, fits config.dsum_bits signed
    t   = fmul32(int_to_fp32(D), fp16_to_fp32(scales[n,j]))
    acc = t (j = 0), fadd32(acc, t) (j > 0)
    y   = fmul32(acc, act_scale[m])

Error bound (:func:`error_bound`). Let u = 2**-24 and gamma_n = n*u / (1 - n*u). The exact
result is y* = a * sum_j s_j * D_j (a = act_scale[m], s_j the scale, D_j the exact integer),
which is also the exact value of the float64 reference before its own rounding.

* D_j is exact; int_to_fp32(D_j) = D_j (1 + d0) with d0 = 0 if |D_j| <= 2**24, else |d0| <= u.
* FP16 scales are normal (validated) and widen exactly. |D_j| >= 1 and |s_j| >= 2**-14 keep
  every nonzero t_j in [2**-14, 2**41]: no underflow or overflow, so t_j = f_j s_j (1 + d1).
* Every t_j is an FP32 number of magnitude >= 2**-14, hence a multiple of 2**-37, and so is
  every partial sum: additions never reach the flush range or overflow. With acc_0 = t_0 and
  acc_j = (acc_{j-1} + t_j)(1 + e_j), term t_j passes through G - max(j, 1) additions.
* The final product rounds once more: y = acc * a * (1 + d2), unless it leaves the normal range.

So term j collects n_j = (G - max(j, 1)) + 2 + [|D_j| > 2**24] <= G + 2 factors (1 + delta),
|delta| <= u, and (Higham, Lemma 3.1)::

    |y - y*| <= |a| * sum_j gamma_{n_j} * |s_j * D_j|  <=  gamma_{G+2} * |a| * sum_j |s_j * D_j|.

:func:`error_bound` uses the per-term form (about half the uniform one for many groups).

The float64 reference forms exact products x*a*(Q - z)*s (at most 8+24+9+11 <= 53 bits) and
rounds only in its K-term sums: |y_ref - y*| <= gamma^(64)_K * |a| * sum_k |x * (Q - z) * s| with
unit roundoff 2**-53. The bound is the sum of both terms, inflated by 1 + gamma^(64)_{K+G+10} for
the float64 rounding of its own evaluation.

Float offsets (``config.zero_mode == "float_offset"``, llama.cpp Q4_1: w = d*q + m with FP16 d
and m per group). The integer correction is dropped and the group's term is formed in FP32::

    t    = fmul32(int_to_fp32(P), fp16_to_fp32(scales[n,j]))       (d)
    o    = fmul32(int_to_fp32(A), fp16_to_fp32(offsets[n,j]))      (m)
    term = fadd32(t, o)

then acc and y exactly as above with term in place of t (:func:`group_partials` reports D = P).
The exact result is y* = a * sum_j (d_j P_j + m_j A_j) = a * sum_k x_k (d q_k + m), again the
exact value of the float64 reference. Error: nonzero t_j, o_j are FP32 numbers of magnitude in
[2**-14, 2**42) (|P|, |A| >= 1 integers, |d|, |m| >= 2**-14 normal FP16, |P| < 2**25, |A| <= 2**17),
so multiples of 2**-37, and so is their sum: term_j is exactly 0 or >= 2**-37, never flushed,
never overflowing. term_j = d P (1 + d0)(1 + d1)(1 + d2) + m A (1 + d0')(1 + d1')(1 + d2) with d0,
d0' the conversions (0 unless |P| resp. |A| > 2**24), d1, d1' the products and d2 the addition:
|term_j - (d_j P_j + m_j A_j)| <= gamma_2 (|d_j P_j| + |m_j A_j|) when the conversions are exact.
With the accumulation and the final product, the d P part of group j collects
n_j = (G - max(j, 1)) + 3 + [|P_j| > 2**24] factors and the m A part
n'_j = (G - max(j, 1)) + 3 + [|A_j| > 2**24]::

    |y - y*| <= |a| * sum_j (gamma_{n_j} |d_j P_j| + gamma_{n'_j} |m_j A_j|)
             <= gamma_{G+3} * |a| * sum_j (|d_j P_j| + |m_j A_j|)          (all conversions exact).

The float64 reference's weights d*q + m are exact (multiples of 2**-24 below 2**24), but its
products x*a*w may now round: Higham's inner-product bound gamma^(64)_K * |a| * sum_k |x w| covers
both (the same element term as above, with |w| in place of |(Q - z) s|). The evaluation
inflation becomes 1 + gamma^(64)_{K+2G+10} (two group terms per group).

K-quants (``config.scale_mode == "kquant"``): the weights are :class:`golden.kquant.KQuantWeights`
and :func:`bitexact_mpgemm`, :func:`float_reference` and :func:`error_bound` are those of
:mod:`golden.kquant` (the same chain with the 256-weight super-block as the group).

Weight-code and scale formats (:mod:`golden.codes`). The PEs multiply by the code's PE value
(``codes`` above: 2 x E2M1 for FP4, +-2^e for powers of two; z = 0) and the scale is the decoded
FP32 ``s32`` (FP16, E8M0 or E4M3 value, times 1/2 for FP4), exact, so the derivation holds with
s_j = s32 and D_j the integer sums of PE values: ``v * s32`` is the real weight. E8M0 scales below
2**-126 decode to 0 (FTZ): their groups add |D_j| * s_j to the bound. Scales may be as small as
2**-126 (E4M3: 2**-10), so a partial sum of the chain may fall below
2**-126 and be flushed: one more error of at most 2**-126 per addition, which the bound adds
(``groups * FP32_MIN_NORMAL`` before the token scale); these formats use the contract's FP32
functions, not native float32 (which keeps subnormals).

Not covered: a result flushed to zero by the final product (only possible when
|act_scale| < 2**-89, since a nonzero |acc| >= 2**-37), and overflow to infinity: where
|y_ref| + bound exceeds the largest FP32 number, or where a value of the FP32 group chain may
(its magnitude bound (1 + gamma_{G+3}) * sum_j (|t_j| + |o_j|) exceeds it), the bound is
returned as inf. The second case needs floating-point activations with an 8-bit exponent (BF16,
where 2**k reaches 2**127): two groups of opposite sign can each overflow to +-Inf, giving Inf
or NaN although the exact result is small.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from golden.codes import decoded_scales, exact_scales, pe_values, real_weights
from golden.fp32 import fadd32, fmul32
from golden.fp_activations import align_activations, decode_activations, shared_exponents
from golden.kquant import kquant_bitexact, kquant_error_bound, kquant_reference
from golden.numerics import FP32_MAX, FP32_MIN_NORMAL, FP32_UNIT_ROUNDOFF, FP64_UNIT_ROUNDOFF, gamma
from golden.operands import OperandError, QuantizedWeights, activation_operand, check_codes, validate_operands
from golden.reference import reference_mpgemm
from hw.config import MixPEConfig

__all__ = ["bitexact_mpgemm", "group_partials", "error_bound", "float_reference", "within_bound"]

#: :func:`bitexact_mpgemm` works on blocks of output channels: at most this many weight codes per block
#: (converted to float and range-checked while in cache, so no float copy of the whole matrix exists) ...
BLOCK_CODES = 2 ** 21
#: ... and at most this many per-group terms (group x token x channel) per block.
BLOCK_TERMS = 2 ** 21


def _require_token_scales(config: MixPEConfig, act_scale: torch.Tensor | None) -> None:
    """INT8 activations are integers: the GEMM's result needs their per-token scales."""
    if act_scale is None and not config.fp_activation:
        raise OperandError(f"act_scale: None, but activation={config.activation!r} needs per-token FP32 scales "
                           f"(a float32 tensor of shape (M,), e.g. from quantize_activations_int8)")


def _pe_activations(config: MixPEConfig, x: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(PE operands int64 (M, K), LSB exponent k int64 (M, G), invalid bool (M, G)) of x.

    INT8: the codes themselves, and None, None. Floating point: the aligned integers of
    :mod:`golden.fp_activations` against the data's own shared exponents; the aligned
    integer's LSB weighs 2**k."""
    if not config.fp_activation:
        return x, None, None
    e_max = shared_exponents(config, x)
    aligned, invalid = align_activations(config, x, e_max)
    return aligned, e_max + config.lsb_exponent_offset, invalid


def _iter_group_partials(config: MixPEConfig, x: torch.Tensor, weights: QuantizedWeights
                         ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (j, P_j int64 (M, N), A_j int64 (M,), D_j int64 (M, N)) for each group j in order,
    for the PE operands x (M, K) (INT8 codes or aligned integers).

    P is a float64 matmul of integers: exact because every partial sum is bounded by
    g * 2**(pe_act_bits - 1) * (2**b - 1) < 2**53.
    """
    group = config.group_size
    # The asserts here and in _iter_block_sums_fp32 check internal consistency, not input: every
    # valid configuration (g <= 1024, pe_act_bits <= 28, b <= 8) keeps the sums below 2**46, and
    # validated operands keep D within dsum_bits.
    assert group * 2 ** (config.pe_act_bits - 1) * config.code_value_max < 2 ** 53, \
        "group partial sums are not exact in float64"
    d_limit = 2 ** (config.dsum_bits - 1)
    for j in range(x.shape[1] // group):
        columns = slice(j * group, (j + 1) * group)
        x_group = x[:, columns]
        p = (x_group.double() @ pe_values(config, weights.codes[:, columns]).double().T).to(torch.int64)
        a = x_group.sum(dim=1)
        d = p if config.float_offset else p - weights.zeros[:, j][None, :] * a[:, None]
        assert bool((d >= -d_limit).all() and (d < d_limit).all()), \
            f"group {j}: D outside the {config.dsum_bits}-bit signed range"
        yield j, p, a, d


def _iter_block_sums_fp32(config: MixPEConfig, x: torch.Tensor, weights: QuantizedWeights, width: int
                          ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (channels, int_to_fp32(D) float32 (G, M, nb), int_to_fp32(A) float32 (G, M)) per block of
    ``width`` output channels, for the PE operands x (M, K); D = P with float offsets. The fast form
    of :func:`_iter_group_partials` for the bit-exact model.

    Also the code range check of :func:`validate_operands` (on the block's float codes: the
    conversion is monotonic and exact on the allowed range, so it flags exactly the same codes).
    The sums are formed in float32 when every |P|, |A| and |z*A| is below 2**24 (then each
    partial sum of the matmul and the difference P - z*A are exact integers, and so already the
    FP32 conversion), else in float64 (exact below 2**53) and rounded once to float32, which is
    the round-to-nearest-even conversion of the exact integer."""
    group = config.group_size
    magnitude_bound = group * 2 ** (config.pe_act_bits - 1) * max(config.code_value_max, 1)
    assert magnitude_bound < 2 ** 53, "group partial sums are not exact in float64"
    dtype = torch.float32 if magnitude_bound < 2 ** 24 else torch.float64
    d_limit = 2 ** (config.dsum_bits - 1)
    m, k = x.shape
    groups = k // group
    x_groups = x.to(dtype).view(m, groups, group).transpose(0, 1)              # (G, M, g)
    a = x_groups.sum(dim=2)                                                    # (G, M)
    a_fp32 = a.to(torch.float32)
    for start in range(0, weights.codes.shape[0], width):
        channels = slice(start, start + width)
        codes = weights.codes[channels].to(dtype)                              # (nb, K)
        smallest, largest = torch.aminmax(codes)
        if float(smallest) < 0 or float(largest) > config.code_max:
            check_codes(config, weights.codes)                                 # raises, naming the index
        if config.signed_codes:
            codes = pe_values(config, weights.codes[channels]).to(dtype)
        p = torch.bmm(x_groups, codes.view(-1, groups, group).permute(1, 2, 0))  # (G, M, nb)
        d = p if config.float_offset else p - weights.zeros[channels].t().to(dtype)[:, None, :] * a[:, :, None]
        smallest, largest = torch.aminmax(d)
        assert -d_limit <= float(smallest) and float(largest) < d_limit, \
            f"channels {start}..: D outside the {config.dsum_bits}-bit signed range"
        yield channels, d.to(torch.float32), a_fp32


def group_partials(config: MixPEConfig, x: torch.Tensor, weights: QuantizedWeights
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact integer group sums for x (M, K) and weights N x K with G = K / g groups.

    Returns int64 (P (M, N, G), A (M, G), D (M, N, G)) with P = sum x*Q, A = sum x and
    D = P - z*A over each group (with float offsets, which have no integer correction, D = P).
    Floating-point activations enter as their aligned integers.
    """
    x = activation_operand(config, x)
    validate_operands(config, x, None, weights)
    parts = list(_iter_group_partials(config, _pe_activations(config, x)[0], weights))
    p = torch.stack([p for _, p, _, _ in parts], dim=-1)
    a = torch.stack([a for _, _, a, _ in parts], dim=-1)
    d = torch.stack([d for _, _, _, d in parts], dim=-1)
    return p, a, d


def bitexact_mpgemm(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                    weights: QuantizedWeights, *, native_fp: bool = True) -> torch.Tensor:
    """The hardware's result, float32 (M, N), bit for bit (see the module docstring).

    Floating-point activations: ``x`` as raw codes, the format's torch dtype or float values
    (:func:`golden.fp_activations.activation_codes`), and ``act_scale=None``. Their FP32 chain
    runs in native float32 where that is checked to be bit-identical (:func:`_native_fp_chain`),
    else with the contract's functions; ``native_fp=False`` always uses those (the fast path's
    reference in the tests)."""
    if config.kquant:
        return kquant_bitexact(config, x, act_scale, weights)
    _require_token_scales(config, act_scale)
    x = activation_operand(config, x)
    validate_operands(config, x, act_scale, weights, check_codes_range=False)  # codes: per block below
    pe_x, lsb_exponent, invalid = _pe_activations(config, x)
    m, k = x.shape
    n, groups = weights.codes.shape[0], k // config.group_size
    # Validated scales and offsets are finite, zero or normal FP16: the native widening is exact,
    # so equal to fp16_to_fp32.
    scales = decoded_scales(config, weights.scales).t()[:, None, :]                       # (G, 1, N)
    offsets = weights.offsets.float().t()[:, None, :] if config.float_offset else None
    offset = None if lsb_exponent is None else lsb_exponent.t()[:, :, None]               # (G, M, 1)
    nan_rows = None if invalid is None else invalid.t()[:, :, None]
    nan = torch.tensor(float("nan"), dtype=torch.float32)
    multiply, add = _group_chain_ops(config)
    # Floating-point activations: native float32 where it is checked to give the contract's bits.
    lsb_scale = _native_lsb_scale(config, lsb_exponent) if native_fp else None
    acc = torch.empty(m, n, dtype=torch.float32)
    width = max(1, min(BLOCK_CODES // k, BLOCK_TERMS // (groups * m)))
    for channels, d_fp32, a_fp32 in _iter_block_sums_fp32(config, pe_x, weights, width):
        offsets_block = offsets[:, :, channels] if config.float_offset else None
        block = None if lsb_scale is None else \
            _native_fp_chain(d_fp32, a_fp32, scales[:, :, channels], offsets_block, lsb_scale)
        if block is None:
            terms = multiply(d_fp32, scales[:, :, channels], offset)                      # (G, M, nb)
            if config.float_offset:
                terms = add(terms, multiply(a_fp32[:, :, None].expand(-1, -1, offsets_block.shape[2]),
                                            offsets_block.expand(-1, m, -1), offset))
            if nan_rows is not None:
                terms = torch.where(nan_rows, nan, terms)
            block = terms[0]
            for j in range(1, groups):                      # groups in order, one rounding per addition
                block = add(block, terms[j])
        elif nan_rows is not None:
            block = torch.where(nan_rows.any(dim=0), nan, block)   # a NaN term makes the chain NaN
        acc[:, channels] = block
    return acc if config.fp_activation else fmul32(acc, act_scale[:, None])


def _native_lsb_scale(config: MixPEConfig, lsb_exponent: torch.Tensor | None) -> torch.Tensor | None:
    """float32 2**k (G, M, 1) of the aligned activations' LSB exponents k (M, G), for
    :func:`_native_fp_chain`; None (use the contract's functions) for INT8 activations, scales
    that are not FP16, or a k whose 2**k is not a normal float32."""
    if lsb_exponent is None or config.scale_format != "fp16":
        return None
    if lsb_exponent.numel() and not (-126 <= int(lsb_exponent.min()) and int(lsb_exponent.max()) <= 127):
        return None
    return ((lsb_exponent.t()[:, :, None].to(torch.int32) + 127) << 23).view(torch.float32)


def _normal_or_zero(values: torch.Tensor) -> bool:
    """Every value is +-0 or finite with magnitude above the smallest normal (2**-126)."""
    magnitude = values.abs()
    smallest, largest = torch.aminmax(magnitude)
    if not float(largest) < math.inf:                       # Inf, or NaN (aminmax propagates it)
        return False
    if float(smallest) > FP32_MIN_NORMAL:
        return True
    return bool((magnitude.masked_select(magnitude <= FP32_MIN_NORMAL) == 0).all())


def _native_fp_chain(d_fp32: torch.Tensor, a_fp32: torch.Tensor, scales: torch.Tensor,
                     offsets: torch.Tensor | None, lsb_scale: torch.Tensor) -> torch.Tensor | None:
    """The group chain of floating-point activations in native float32 (M, nb), or None when a
    value is not provably the contract's (then the caller runs :func:`golden.fp32.fmul32` /
    :func:`golden.fp32.fadd32`).

    ``d_fp32`` (G, M, nb) and ``a_fp32`` (G, M) are the converted group sums, ``scales`` and
    ``offsets`` (G, 1, nb) validated FP16 values (0 or normal), ``lsb_scale`` (G, M, 1) the normal
    float32 2**k of :func:`_native_lsb_scale`. Why the bits agree when every product, term and
    partial sum is 0 or finite above 2**-126 (checked here):

    * Operands are 0 or normal (integers, normal FP16 values, checked results), so the
      contract's DAZ changes nothing.
    * t = (D * s) * 2**k: D * s is 0 or in [2**-14, 2**41] (|D| >= 1, |s| >= 2**-14), rounded
      once in the normal range. IEEE rounding with gradual underflow equals rounding to 24 bits
      with an unbounded exponent when the exact value is at least 2**-126, and gives at most
      2**-126 when it is below (rounding is monotonic, 2**-126 representable); so a result above
      2**-126 was rounded as the contract rounds it and is not flushed, and the multiplication by
      2**k of a value that stays normal is exact: (D * s) * 2**k = the contract's D * s * 2**k
      rounded once. Overflow gives inf, which the check refuses. The same for o = A * m * 2**k.
    * Sums: a nonzero exact sum below 2**-126 of two floats is representable, so native gives it
      (refused) where the contract flushes; at or above it both round alike. Exact zeros are +0 in
      both (round to nearest), (-0) + (-0) = -0 in both; a product underflowing to zero keeps
      its sign in both.
    * NaN rows (invalid groups) are set by the caller, as the contract's NaN propagation does.
    """
    terms = d_fp32 * scales * lsb_scale                                          # (G, M, nb)
    if not _normal_or_zero(terms):
        return None
    if offsets is not None:
        offset_terms = a_fp32[:, :, None] * offsets * lsb_scale
        if not _normal_or_zero(offset_terms):
            return None
        terms = terms + offset_terms
    partials = torch.empty_like(terms)
    partials[0] = terms[0]
    for j in range(1, terms.shape[0]):                     # groups in order, one rounding per addition
        torch.add(partials[j - 1], terms[j], out=partials[j])
    fits = _normal_or_zero(partials) and (offsets is None or _normal_or_zero(terms))
    return partials[-1] if fits else None


def _group_chain_ops(config: MixPEConfig):
    """(multiply(a, b, exp_offset), add(a, b)) for the per-group FP32 chain.

    With INT8 activations the module docstring shows that every product, term and partial sum
    is exactly zero or a normal FP32 number of magnitude in [2**-37, 2**42] (validated normal
    scales and offsets, |D|, |P|, |A| >= 1): no subnormal, overflow or NaN can occur, and there
    the contract (:mod:`golden.fp32`) is plain IEEE binary32 with round to nearest even,
    including the signs of zeros. So native float32 arithmetic gives the same bits, several
    times faster. Floating-point activations scale by 2**k, which can reach the subnormal and
    overflow ranges, so they use the contract's functions."""
    if config.fp_activation or config.scale_format != "fp16":
        return fmul32, fadd32
    return (lambda a, b, _offset: a * b), (lambda a, b: a + b)


def float_reference(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                    weights: QuantizedWeights) -> torch.Tensor:
    """The float64 reference (M, N) of :func:`golden.reference.reference_mpgemm` for any
    activation format: floating-point activations enter as their exact decoded values, with no
    token scale (Inf and NaN activations propagate as float64 does)."""
    if config.kquant:
        return kquant_reference(config, x, act_scale, weights)
    _require_token_scales(config, act_scale)
    if not config.fp_activation:
        return _reference(config, x, act_scale, weights)
    x_real = decode_activations(config, activation_operand(config, x))
    return _reference(config, x_real, torch.ones(x_real.shape[0]), weights)


def _reference(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor, weights: QuantizedWeights
               ) -> torch.Tensor:
    """:func:`golden.reference.reference_mpgemm`, with the real values of codes that carry their own
    sign (value x scale: at most 4 + 8 or 16 + 24 significant bits, exact in float64)."""
    if not config.signed_codes:
        return reference_mpgemm(x, act_scale, weights, config.group_size)
    return (x.double() * act_scale.double()[:, None]) @ real_weights(config, weights).T


def within_bound(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                 weights: QuantizedWeights, result: torch.Tensor) -> torch.Tensor:
    """bool (M, N): ``result`` is within :func:`error_bound` of the float reference; NaN where the
    bound does not apply (rows with invalid floating-point activations); anything (Inf, NaN
    included) where the bound is inf (an FP32 value may overflow)."""
    bound = error_bound(config, x, act_scale, weights)
    error = (result.double() - float_reference(config, x, act_scale, weights)).abs()
    return torch.where(torch.isnan(bound), torch.isnan(result), torch.isinf(bound) | (error <= bound))


def error_bound(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                weights: QuantizedWeights) -> torch.Tensor:
    """Rigorous bound on |bitexact_mpgemm - reference_mpgemm|, float64 (M, N).

    Derived in the module docstring; inf where the result or a value of the FP32 group chain
    may overflow (then the hardware may return Inf or NaN); results flushed to zero
    (|act_scale| < 2**-89) are not covered. Floating-point activations: the reference
    takes the exact decoded activations and no token scale; rows with an invalid group (Inf,
    NaN, or an element above its shared exponent) have no bound (NaN) since their result is NaN.
    """
    if config.kquant:
        return kquant_error_bound(config, x, act_scale, weights)
    _require_token_scales(config, act_scale)
    x = activation_operand(config, x)
    validate_operands(config, x, act_scale, weights)
    m, k = x.shape
    group = config.group_size
    groups = k // group
    pe_x, lsb_exponent, invalid = _pe_activations(config, x)
    if config.fp_activation:
        x_real = decode_activations(config, x)
        act_scale = torch.ones(m, dtype=torch.float32)
    else:
        x_real = x.double()
    scales = exact_scales(config, weights.scales).abs()
    flushed = scales - decoded_scales(config, weights.scales).double().abs()   # E8M0 scales below 2**-126
    group_terms = torch.zeros(m, weights.codes.shape[0], dtype=torch.float64)
    element_terms = torch.zeros_like(group_terms)
    alignment_terms = torch.zeros_like(group_terms)
    chain_terms = torch.zeros_like(group_terms)           # sum_j of the exact |t_j| (+ |o_j|)

    def gamma_for(values: torch.Tensor, roundings: int) -> torch.Tensor:
        """gamma_n per element, one more rounding where int_to_fp32 rounds (|value| > 2**24)."""
        return torch.where(values.abs() > 2 ** 24, gamma(roundings + 1, FP32_UNIT_ROUNDOFF),
                           gamma(roundings, FP32_UNIT_ROUNDOFF))

    for j, _, a, d in _iter_group_partials(config, pe_x, weights):
        columns = slice(j * group, (j + 1) * group)
        # The product and the accumulation adds; INT8 adds the final token-scale product.
        roundings = groups - max(j, 1) + (1 if config.fp_activation else 2)
        lsb = torch.ones(m, 1, dtype=torch.float64) if lsb_exponent is None else \
            torch.pow(2.0, lsb_exponent[:, j].double())[:, None]
        if config.float_offset:
            roundings += 1                                  # the addition t + o
            offsets = weights.offsets[:, j].double().abs()[None, :]
            group_terms += lsb * (gamma_for(d, roundings) * d.double().abs() * scales[:, j][None, :]
                                  + (gamma_for(a, roundings) * a.double().abs())[:, None] * offsets)
            chain_terms += lsb * (d.double().abs() * scales[:, j][None, :] + a.double().abs()[:, None] * offsets)
            weight = (weights.codes[:, columns].double() * weights.scales[:, j].double()[:, None]
                      + weights.offsets[:, j].double()[:, None]).abs()
        else:
            group_terms += lsb * (gamma_for(d, roundings) * scales[:, j][None, :] + flushed[:, j][None, :]) * d.double().abs()
            chain_terms += lsb * d.double().abs() * scales[:, j][None, :]
            centred = (pe_values(config, weights.codes[:, columns]) - weights.zeros[:, j][:, None]).abs().double()
            weight = centred * scales[:, j][:, None]
        if config.fp_activation:
            # Each aligned activation is within half an LSB of the real one.
            alignment_terms += (lsb / 2) * weight.sum(dim=1)[None, :]
            finite_x = torch.where(torch.isfinite(x_real[:, columns]), x_real[:, columns], 0.0)
            element_terms += finite_x.abs() @ weight.T
        else:
            element_terms += x_real[:, columns].abs() @ weight.T
    act = act_scale.double().abs()[:, None]
    bound = act * (group_terms + gamma(k, FP64_UNIT_ROUNDOFF) * element_terms) + alignment_terms
    if config.fp_activation:
        # No token scale: a product or sum may land below 2**-126 and be flushed (error < 2**-126
        # each, at most 3 FP32 operations per group).
        bound = bound + 3 * groups * FP32_MIN_NORMAL
    if config.scale_format != "fp16":
        bound = bound + act * groups * FP32_MIN_NORMAL     # sums of the chain below 2**-126 are flushed
    terms_per_group = 2 if config.float_offset else 1
    bound = bound * (1 + gamma(k + (terms_per_group + 1) * groups + 10, FP64_UNIT_ROUNDOFF))
    reference = _reference(config, torch.where(torch.isfinite(x_real), x_real, 0.0), act_scale, weights)
    # Every FP32 value of the group chain (the products, terms and partial sums before the token
    # scale) is at most (1 + gamma_{G+3}) * chain_terms in magnitude. Beyond FP32_MAX one of them
    # may overflow, and an Inf (or Inf - Inf = NaN) result does not follow |y*| however small.
    chain_overflow = chain_terms * (1 + gamma(groups + 3, FP32_UNIT_ROUNDOFF)) > FP32_MAX
    bound = torch.where(chain_overflow | (reference.abs() + bound > FP32_MAX), float("inf"), bound)
    if invalid is not None:
        bound = torch.where(invalid.any(dim=1)[:, None], float("nan"), bound)
    return bound
