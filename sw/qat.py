"""Quantization-aware training for Q4_1: the forward of a trained FFN sees its weights as the array
will run them, re-quantized to Q4_1 by llama.cpp's quantizer, and the gradient passes the rounding
unchanged (straight-through estimator), so the model that is trained is the re-quantized one.

:func:`fake_quant_q4_1` reproduces ``requantize_q4_1(w).dense`` (:func:`sw.cmoe.requantize_q4_1`,
``gguf.quants`` Q4_1 and its dequantization) bit for bit in float32: per block of 32 along the last
dimension, ``d = (max - min) / 15``, codes ``trunc((w - min) / d + 0.5)`` clipped to 0..15 (via the
float32 reciprocal, as gguf computes it), then ``codes * fp16(d) + fp16(min)``. A converted FFN's
gate and up are quantized whole (rows are neurons, blocks along H); down per expert, its columns in
the expert's neuron order (:func:`expert_order`), as :class:`sw.cmoe.MoEFFN` quantizes it.

INT8 activations: the array's INT8 core receives every GEMM's input rounded per token by
:func:`golden.operands.quantize_activations_int8` (codes and scales exactly the array's; here
dequantized to the input's dtype, ``codes * scale``). :class:`Int8AwareLinear` rounds the inputs of
the frozen projections (q, k, v, o), :func:`int8_aware_tokens` an FFN's input (gate and up of every
expert see the same token row) and :func:`int8_aware_hidden` down's input per token *and per expert*
(the shared neurons one group, each routed expert one: :class:`sw.cmoe.MoEFFN` runs down expert by
expert), all with straight-through gradients.
"""

from __future__ import annotations

import torch

from golden.operands import quantize_activations_int8
from sw.cmoe import Q4_1_BLOCK, CarvedLayer, CMoEError
from sw.smollm import FloatLinear

__all__ = ["fake_quant_q4_1", "straight_through", "expert_order", "quantize_aware_ffn", "fake_quant_int8_tokens",
           "int8_aware_tokens", "int8_aware_hidden", "Int8AwareLinear"]


def fake_quant_q4_1(weight: torch.Tensor) -> torch.Tensor:
    """Q4_1 quantize-dequantize of float32 ``weight`` (..., K), K a multiple of 32 (no gradient)."""
    if weight.shape[-1] % Q4_1_BLOCK:
        raise CMoEError(f"weight: last dimension {weight.shape[-1]} is not a multiple of the Q4_1 block {Q4_1_BLOCK}")
    with torch.no_grad():
        blocks = weight.float().reshape(*weight.shape[:-1], -1, Q4_1_BLOCK)
        high = blocks.amax(dim=-1, keepdim=True)
        low = blocks.amin(dim=-1, keepdim=True)
        scale = (high - low) / 15
        inverse = torch.where(scale == 0, torch.zeros_like(scale), 1 / scale)
        codes = torch.trunc((blocks - low) * inverse + 0.5).clamp_(0, 15)
        dequantized = codes * scale.half().float() + low.half().float()
    return dequantized.reshape(weight.shape)


def straight_through(weight: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward, the identity's gradient to ``weight`` in the backward."""
    return weight + (quantized - weight).detach()


def expert_order(carved: CarvedLayer) -> torch.Tensor:
    """The neurons (int64 (D,)) in the order down's columns are quantized: shared, then each expert."""
    return torch.cat([carved.shared, *carved.experts])


def quantize_aware_ffn(gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor, order: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """gate, up (D, H) and down (H, D) as the array runs them (:func:`fake_quant_q4_1`, down's columns
    grouped in ``order``, :func:`expert_order`), with straight-through gradients."""
    down_quantized = torch.empty_like(down)
    down_quantized[:, order] = fake_quant_q4_1(down[:, order])
    return (straight_through(gate, fake_quant_q4_1(gate)), straight_through(up, fake_quant_q4_1(up)),
            straight_through(down, down_quantized))


def fake_quant_int8_tokens(x: torch.Tensor) -> torch.Tensor:
    """x (M, K) as the INT8 core receives it: per-token codes and scales of
    :func:`golden.operands.quantize_activations_int8`, ``codes * scale`` in x's dtype (no gradient)."""
    with torch.no_grad():
        codes, scale = quantize_activations_int8(x)
        return (codes.double() * scale.double()[:, None]).to(x.dtype)


def int8_aware_tokens(x: torch.Tensor) -> torch.Tensor:
    """x (M, K) rounded per token (:func:`fake_quant_int8_tokens`), straight-through gradient."""
    return straight_through(x, fake_quant_int8_tokens(x))


def int8_aware_hidden(hidden: torch.Tensor, carved: CarvedLayer) -> torch.Tensor:
    """down's input (T, D), dense-FFN neuron order, zero outside the token's experts, rounded per
    token within each expert's neurons (the shared ones as one group) as the expert-by-expert down
    GEMMs receive it; straight-through gradient."""
    tokens = hidden.shape[0]
    routed = carved.experts.flatten()
    with torch.no_grad():
        rounded = torch.empty_like(hidden)
        per_expert = hidden[:, routed].reshape(tokens * carved.experts.shape[0], carved.experts.shape[1])
        rounded[:, routed] = fake_quant_int8_tokens(per_expert).reshape(tokens, -1)
        if carved.shared.numel():
            rounded[:, carved.shared] = fake_quant_int8_tokens(hidden[:, carved.shared])
    return straight_through(hidden, rounded)


class Int8AwareLinear(FloatLinear):
    """:class:`sw.smollm.FloatLinear` on the input rounded as the INT8 core receives it
    (:func:`int8_aware_tokens`): the frozen projections of an INT8-aware training forward."""
    name = "int8-aware"

    def compute(self, x, weight):
        return super().compute(int8_aware_tokens(x), weight)
