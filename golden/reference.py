"""Mathematical reference of the mixed-precision GEMM in float64 (dequantize, then matmul)."""

from __future__ import annotations

import torch

from golden.operands import QuantizedWeights

__all__ = ["dequantize_weights", "reference_mpgemm"]


def dequantize_weights(weights: QuantizedWeights, group_size: int) -> torch.Tensor:
    """Real weights, float64 (N, K): W = (codes - zeros) * scales, or with float offsets
    W = codes * scales + offsets. Every element is exact in float64 (offsets: scale * code and
    the offset are multiples of 2**-24 below 2**24 in magnitude, so their sum has <= 48 bits)."""
    scales = weights.scales.double().repeat_interleave(group_size, dim=1)
    if weights.offsets is not None:
        return weights.codes.double() * scales + weights.offsets.double().repeat_interleave(group_size, dim=1)
    zeros = weights.zeros.repeat_interleave(group_size, dim=1)
    return (weights.codes - zeros).double() * scales


def reference_mpgemm(x: torch.Tensor, act_scale: torch.Tensor, weights: QuantizedWeights,
                     group_size: int) -> torch.Tensor:
    """Y = (x * act_scale) @ W.T in float64, shape (M, N), for x (M, K) and act_scale (M,).

    X_real and W are exact in float64 (at most 32 and 20 significant bits, 48 with float offsets).
    With integer zero points their products are exact and only the K-term sums of the matmul
    round; with float offsets the products may round too (within the same gamma_K bound).
    """
    x_real = x.double() * act_scale.double()[:, None]
    return x_real @ dequantize_weights(weights, group_size).T
