"""Host side of the floating-point product-path bench (:mod:`.tb`): the harness and its steps,
from the golden model.

Computed on the Python side (the cocotb process stays free of torch, whose import is slow there).
"""

from __future__ import annotations

import torch

from golden.fp_activations import activation_fields, align_activations
from hw.config import MixPEConfig
from verif.benches.fp_product.harness import FPProductPath

__all__ = ["component", "job"]


def component(config: MixPEConfig) -> FPProductPath:
    return FPProductPath(config)


def job(config: MixPEConfig, seed: int) -> dict:
    """Every code of the activation format three times: against its own exponent (shift 0, the
    exact product), against a larger shared exponent (shift 1 .. M + G + 3, so every rounding
    position and the saturation are hit), and against a smaller one (flagged invalid) where
    its exponent allows. Deterministic: ``seed`` is not used."""
    fmt = config.act_format
    codes = torch.arange(2 ** fmt.bits)
    _, e_eff, _, special = activation_fields(config, codes)
    own = torch.where(special, 1, e_eff)
    larger = (own + 1 + codes % (fmt.man_bits + config.guard + 3)).clamp(max=2 ** fmt.exp_bits - 1)
    smaller = own - 1
    e_max = torch.cat([own, larger, smaller[smaller >= 1]])
    steps_codes = torch.cat([codes, codes, codes[smaller >= 1]])
    # One row per step, the code as the first element of a group of 8 (the rest zeros).
    single = config.replace(group_size=8)
    row_codes = torch.cat([steps_codes[:, None], torch.zeros(len(steps_codes), 7, dtype=torch.int64)], dim=1)
    aligned, invalid = align_activations(single, row_codes, e_max[:, None])
    return {"steps": [[int(c), int(e), int(a), int(i)] for c, e, a, i in
                      zip(steps_codes, e_max, aligned[:, 0], invalid[:, 0])],
            "weight_codes": config.code_max + 1}
