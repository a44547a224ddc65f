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

Not covered: a result flushed to zero by the final product (only possible when
|act_scale| < 2**-89, since a nonzero |acc| >= 2**-37), and overflow to infinity: where
|y_ref| + bound exceeds the largest FP32 number the bound is returned as inf.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from golden.fp32 import fadd32, fmul32, fp16_to_fp32, int_to_fp32
from golden.operands import QuantizedWeights, validate_operands
from golden.reference import reference_mpgemm
from hw.config import MixPEConfig

__all__ = ["bitexact_mpgemm", "group_partials", "error_bound"]

FP32_MAX = float(torch.finfo(torch.float32).max)
FP32_UNIT_ROUNDOFF = 2.0 ** -24
FP64_UNIT_ROUNDOFF = 2.0 ** -53
#: Outputs per tile of the FP32 chain in :func:`bitexact_mpgemm`: small tiles keep its temporaries in
#: cache and degrade gracefully when the cores are shared (about 3.8 s idle for the Mixtral-sized GEMM).
TILE_OUTPUTS = 2 ** 15


def _gamma(n: int, unit_roundoff: float) -> float:
    """Higham's gamma_n = n*u / (1 - n*u): bound on |prod (1 + delta_i)^(+-1) - 1| over n roundings."""
    assert n * unit_roundoff < 1, f"gamma_{n} undefined for unit roundoff {unit_roundoff}"
    return n * unit_roundoff / (1 - n * unit_roundoff)


def _fp16_fp32(values: torch.Tensor) -> torch.Tensor:
    """FP16 values widened to FP32 through their raw 16-bit codes, float32 (same shape)."""
    raw16 = values.view(torch.int16).to(torch.int64) & 0xFFFF
    return fp16_to_fp32(raw16)


def _scales_fp32(weights: QuantizedWeights) -> torch.Tensor:
    """FP16 group scales widened to FP32 through their raw 16-bit codes, float32 (N, G)."""
    return _fp16_fp32(weights.scales)


def _iter_group_partials(config: MixPEConfig, x: torch.Tensor, weights: QuantizedWeights
                         ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (j, P_j int64 (M, N), A_j int64 (M,), D_j int64 (M, N)) for each group j in order.

    P is a float64 matmul of integers: exact because every partial sum is bounded by
    g * 128 * (2**b - 1) < 2**53.
    """
    group = config.group_size
    assert group * 2 ** 7 * config.code_max < 2 ** 53, "group partial sums are not exact in float64"
    d_limit = 2 ** (config.dsum_bits - 1)
    for j in range(x.shape[1] // group):
        columns = slice(j * group, (j + 1) * group)
        x_group = x[:, columns]
        p = (x_group.double() @ weights.codes[:, columns].double().T).to(torch.int64)
        a = x_group.sum(dim=1)
        d = p if config.float_offset else p - weights.zeros[:, j][None, :] * a[:, None]
        assert bool((d >= -d_limit).all() and (d < d_limit).all()), \
            f"group {j}: D outside the {config.dsum_bits}-bit signed range"
        yield j, p, a, d


def group_partials(config: MixPEConfig, x: torch.Tensor, weights: QuantizedWeights
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact integer group sums for x (M, K) and weights N x K with G = K / g groups.

    Returns int64 (P (M, N, G), A (M, G), D (M, N, G)) with P = sum x*Q, A = sum x and
    D = P - z*A over each group (with float offsets, which have no integer correction, D = P).
    """
    validate_operands(config, x, None, weights)
    parts = list(_iter_group_partials(config, x, weights))
    p = torch.stack([p for _, p, _, _ in parts], dim=-1)
    a = torch.stack([a for _, _, a, _ in parts], dim=-1)
    d = torch.stack([d for _, _, _, d in parts], dim=-1)
    return p, a, d


def bitexact_mpgemm(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor,
                    weights: QuantizedWeights) -> torch.Tensor:
    """The hardware's result, float32 (M, N), bit for bit (see the module docstring)."""
    validate_operands(config, x, act_scale, weights)
    m, n = x.shape[0], weights.codes.shape[0]
    scales = _scales_fp32(weights)
    offsets = _fp16_fp32(weights.offsets) if config.float_offset else None
    acc = torch.empty(m, n, dtype=torch.float32)
    width = max(1, TILE_OUTPUTS // m)
    for j, _, a, d in _iter_group_partials(config, x, weights):
        a_fp32 = int_to_fp32(a)[:, None] if config.float_offset else None
        for start in range(0, n, width):
            channels = slice(start, start + width)
            term = fmul32(int_to_fp32(d[:, channels]), scales[channels, j][None, :])
            if config.float_offset:
                offset_j = offsets[channels, j][None, :]
                term = fadd32(term, fmul32(a_fp32.expand(m, offset_j.shape[1]), offset_j.expand(m, -1)))
            acc[:, channels] = term if j == 0 else fadd32(acc[:, channels], term)
    return fmul32(acc, act_scale[:, None])


def error_bound(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor,
                weights: QuantizedWeights) -> torch.Tensor:
    """Rigorous bound on |bitexact_mpgemm - reference_mpgemm|, float64 (M, N).

    Derived in the module docstring; inf where the result may overflow FP32; results flushed
    to zero (|act_scale| < 2**-89) are not covered.
    """
    validate_operands(config, x, act_scale, weights)
    m, k = x.shape
    groups = k // config.group_size
    scales = weights.scales.double().abs()
    group_terms = torch.zeros(m, weights.codes.shape[0], dtype=torch.float64)
    element_terms = torch.zeros_like(group_terms)

    def gamma_for(values: torch.Tensor, roundings: int) -> torch.Tensor:
        """gamma_n per element, one more rounding where int_to_fp32 rounds (|value| > 2**24)."""
        return torch.where(values.abs() > 2 ** 24, _gamma(roundings + 1, FP32_UNIT_ROUNDOFF),
                           _gamma(roundings, FP32_UNIT_ROUNDOFF))

    for j, _, a, d in _iter_group_partials(config, x, weights):
        columns = slice(j * config.group_size, (j + 1) * config.group_size)
        roundings = groups - max(j, 1) + 2
        if config.float_offset:
            roundings += 1                                  # the addition t + o
            offsets = weights.offsets[:, j].double().abs()[None, :]
            group_terms += (gamma_for(d, roundings) * d.double().abs() * scales[:, j][None, :]
                            + (gamma_for(a, roundings) * a.double().abs())[:, None] * offsets)
            weight = (weights.codes[:, columns].double() * weights.scales[:, j].double()[:, None]
                      + weights.offsets[:, j].double()[:, None]).abs()
        else:
            group_terms += gamma_for(d, roundings) * d.double().abs() * scales[:, j][None, :]
            centred = (weights.codes[:, columns] - weights.zeros[:, j][:, None]).abs().double()
            weight = centred * scales[:, j][:, None]
        element_terms += x[:, columns].double().abs() @ weight.T
    act = act_scale.double().abs()[:, None]
    bound = act * (group_terms + _gamma(k, FP64_UNIT_ROUNDOFF) * element_terms)
    terms_per_group = 2 if config.float_offset else 1
    bound = bound * (1 + _gamma(k + terms_per_group * groups + 10, FP64_UNIT_ROUNDOFF))
    reference = reference_mpgemm(x, act_scale, weights, config.group_size)
    return torch.where(reference.abs() + bound > FP32_MAX, float("inf"), bound)
