"""Host side of the floating-point product-path bench (:mod:`.tb`): the harness and its steps,
from the golden model.

Computed on the Python side (the cocotb process stays free of torch, whose import is slow there).
"""

from __future__ import annotations

import functools

import torch

from golden.fp_activations import activation_fields, align_activations
from hw.config import MixPEConfig
from verif.benches.fp_product.harness import FPProductPath

__all__ = ["component", "job"]


def component(config: MixPEConfig) -> FPProductPath:
    return FPProductPath(config)


def _every_distance(config: MixPEConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes, e_max) of every exponent field against shared exponents at every distance from -2 to
    ``M + G + 5`` and at -+2**k (the subtraction's high bits and sign, the saturation compare), within
    the field's range (0 included): per pair four mantissas (0, all ones, the top bit alone, a
    seeded random one) with a seeded random sign."""
    fmt = config.act_format
    man_bits, exp_bits = fmt.man_bits, fmt.exp_bits
    generator = torch.Generator().manual_seed(seed)
    distances = sorted(set(range(-2, man_bits + config.guard + 6)) | {s * 2 ** k for k in range(exp_bits) for s in (-1, 1)})
    exponent = torch.arange(2 ** exp_bits).repeat_interleave(len(distances))
    e_max = exponent.clamp(min=1) + torch.tensor(distances).repeat(2 ** exp_bits)
    keep = (e_max >= 0) & (e_max < 2 ** exp_bits)
    exponent, e_max = exponent[keep].repeat_interleave(4), e_max[keep].repeat_interleave(4)
    patterns = torch.tensor([0, 2 ** man_bits - 1, 2 ** (man_bits - 1), -1]).repeat(len(exponent) // 4)
    mantissa = torch.where(patterns < 0, torch.randint(0, 2 ** man_bits, patterns.shape, generator=generator), patterns)
    sign = torch.randint(0, 2, patterns.shape, generator=generator)
    return (sign << (exp_bits + man_bits)) | (exponent << man_bits) | mantissa, e_max


@functools.lru_cache(maxsize=2)  # a mutation campaign runs the same job once per mutant
def job(config: MixPEConfig, seed: int) -> dict:
    """Every code of the activation format three times: against its own exponent (shift 0, the
    exact product), against a larger shared exponent (shift 1 .. M + G + 3, so every rounding
    position and the saturation are hit), and against a smaller one (flagged invalid) where
    its exponent allows; then every exponent field at every shift distance (:func:`_every_distance`,
    the only part that depends on ``seed``)."""
    fmt = config.act_format
    codes = torch.arange(2 ** fmt.bits)
    _, e_eff, _, special = activation_fields(config, codes)
    own = torch.where(special, 1, e_eff)
    larger = (own + 1 + codes % (fmt.man_bits + config.guard + 3)).clamp(max=2 ** fmt.exp_bits - 1)
    smaller = own - 1
    distance_codes, distance_e_max = _every_distance(config, seed)
    e_max = torch.cat([own, larger, smaller[smaller >= 1], distance_e_max])
    steps_codes = torch.cat([codes, codes, codes[smaller >= 1], distance_codes])
    # One row per step, the code as the first element of a group of 8 (the rest zeros).
    single = config.replace(group_size=8)
    row_codes = torch.cat([steps_codes[:, None], torch.zeros(len(steps_codes), 7, dtype=torch.int64)], dim=1)
    aligned, invalid = align_activations(single, row_codes, e_max[:, None])
    steps = torch.stack([steps_codes, e_max, aligned[:, 0], invalid[:, 0].long()], dim=1)
    return {"steps": steps.tolist(), "weight_codes": config.code_max + 1, "code_steps": len(steps) - len(distance_codes)}
