"""Mathematical reference of the mixed-precision GEMM in float64 (dequantize, then matmul)."""

from __future__ import annotations

import torch

from golden.operands import QuantizedWeights

__all__ = ["dequantize_weights", "reference_mpgemm"]


def dequantize_weights(weights: QuantizedWeights, group_size: int) -> torch.Tensor:
    """Real weights W = (codes - zeros) * scales, float64 (N, K); every element is exact in float64."""
    zeros = weights.zeros.repeat_interleave(group_size, dim=1)
    scales = weights.scales.double().repeat_interleave(group_size, dim=1)
    return (weights.codes - zeros).double() * scales


def reference_mpgemm(x: torch.Tensor, act_scale: torch.Tensor, weights: QuantizedWeights,
                     group_size: int) -> torch.Tensor:
    """Y = (x * act_scale) @ W.T in float64, shape (M, N), for x (M, K) and act_scale (M,).

    X_real and W are exact in float64 (at most 32 and 20 significant bits), so are their products;
    only the K-term sums of the matmul round.
    """
    x_real = x.double() * act_scale.double()[:, None]
    return x_real @ dequantize_weights(weights, group_size).T
