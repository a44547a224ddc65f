"""Pack a quantized GEMM into the MixPE core's stream beats, tile by tile, and unpack its results.

A GEMM ``y[M, N] = x[M, K] @ W[N, K]^T`` is cut into output tiles of R token rows x C output
columns, each streamed over the whole K (tiles ordered row block major). Partial tiles are padded
with zero activations, zero codes, zero scales and zero token scales; their padded outputs are
exactly +0 and are dropped by :func:`unpack_results`.

Floating-point activations travel as raw codes; each group's ``grp`` beat carries per row the
shared exponent (:func:`golden.fp_activations.shared_exponents`), computed here as the producer of
the activations would.
"""

from __future__ import annotations

import dataclasses

import torch

from golden.fp32 import bits
from golden.fp_activations import activation_codes, shared_exponents
from golden.operands import OperandError, QuantizedWeights, validate_operands
from hw.config import MixPEConfig
from hw.layouts import (activation_layout, group_layout, pack, result_layout, unpack,
                        weight_layout)

__all__ = ["Tile", "pack_gemm", "pad_operands", "result_beats", "tile_grid", "unpack_results"]


@dataclasses.dataclass
class Tile:
    """One output tile: rows ``row0 .. row0+R-1`` and columns ``col0 .. col0+C-1`` over all of K.

    ``act``, ``wgt``: one packed beat per K step; ``grp``: one packed beat per group."""
    row0: int
    col0: int
    act: list[int]
    wgt: list[int]
    grp: list[int]

    @property
    def groups(self) -> int:
        return len(self.grp)


def tile_grid(config: MixPEConfig, m: int, n: int) -> list[tuple[int, int]]:
    """(row0, col0) of every tile covering an M x N output, row block major."""
    return [(row0, col0) for row0 in range(0, m, config.rows) for col0 in range(0, n, config.cols)]


def _pad_rows(tensor: torch.Tensor, multiple: int, fill: int | float = 0) -> torch.Tensor:
    extra = -tensor.shape[0] % multiple
    if not extra:
        return tensor
    pad = torch.full((extra,) + tuple(tensor.shape[1:]), fill, dtype=tensor.dtype)
    return torch.cat([tensor, pad])


def _codes(config: MixPEConfig, x: torch.Tensor) -> torch.Tensor:
    """INT8 codes as given; floating-point activations as raw codes (any form the golden model takes)."""
    if not config.fp_activation:
        return x
    try:
        return activation_codes(config, x)
    except (TypeError, ValueError) as error:
        raise OperandError(str(error)) from None


def pad_operands(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None, weights: QuantizedWeights
                 ) -> tuple[torch.Tensor, torch.Tensor | None, QuantizedWeights]:
    """Operands padded to whole tiles: M to a multiple of R, N to a multiple of C.

    Padding rows have zero activations (code 0, +0 for floating point) and token scale;
    padding columns have zero codes and scales and the encoding's zero point (or a zero float
    offset), so their results are zeros. Floating-point activations come back as raw codes and
    ``act_scale`` stays None."""
    x = _codes(config, x)
    validate_operands(config, x, act_scale, weights)
    zero_point = config.symmetric_zero if config.weight_encoding == "signed" else 0
    padded = QuantizedWeights(
        codes=_pad_rows(weights.codes, config.cols),
        scales=_pad_rows(weights.scales, config.cols),
        zeros=None if config.float_offset else _pad_rows(weights.zeros, config.cols, zero_point),
        offsets=_pad_rows(weights.offsets, config.cols, 0.0) if config.float_offset else None)
    act_scale = None if act_scale is None else _pad_rows(act_scale, config.rows)
    return _pad_rows(x, config.rows), act_scale, padded


def pack_gemm(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
              weights: QuantizedWeights) -> list[Tile]:
    """Validate the operands, then pack every tile's act/wgt/grp beats with the shared layouts."""
    m, n = x.shape[0], weights.codes.shape[0]
    x, act_scale, weights = pad_operands(config, x, act_scale, weights)
    rows, cols = config.rows, config.cols
    groups = x.shape[1] // config.group_size
    act_l, wgt_l, grp_l = activation_layout(config), weight_layout(config), group_layout(config)
    scale_bits = (weights.scales.view(torch.int16).to(torch.int64) & 0xFFFF).t().tolist()   # (G, N)
    if config.float_offset:                                   # raw FP16 offsets, else integer zero points
        zeros = (weights.offsets.view(torch.int16).to(torch.int64) & 0xFFFF).t().tolist()     # (G, N)
    else:
        zeros = weights.zeros.t().tolist()                                                     # (G, N)
    if config.fp_activation:                                  # per row and group: shared exponents
        row_params = shared_exponents(config, x).t().tolist()                                  # (G, M)
    else:                                                     # per row: FP32 token scales, every group
        row_params = [(bits(act_scale.to(torch.float32)) & 0xFFFFFFFF).tolist()] * groups

    tiles = []
    for row0, col0 in tile_grid(config, m, n):
        x_steps = x[row0:row0 + rows].t().tolist()
        code_steps = weights.codes[col0:col0 + cols].t().tolist()
        tiles.append(Tile(
            row0=row0, col0=col0,
            act=[pack(act_l, step, "act") for step in x_steps],
            wgt=[pack(wgt_l, step, "wgt") for step in code_steps],
            grp=[pack(grp_l, {"scale": scale_bits[j][col0:col0 + cols], config.zero_field: zeros[j][col0:col0 + cols],
                              config.row_param_field: row_params[j][row0:row0 + rows],
                              "last": int(j == groups - 1)}, "grp")
                 for j in range(groups)],
        ))
    return tiles


def result_beats(config: MixPEConfig, y_padded: torch.Tensor, m: int, n: int) -> list[int]:
    """The result beats the core sends for the tiles of an M x N GEMM whose padded FP32 result
    (rows a multiple of R, columns of C) is ``y_padded``."""
    layout = result_layout(config)
    raw = (bits(y_padded.to(torch.float32)).to(torch.int64) & 0xFFFFFFFF).tolist()
    beats = []
    for row0, col0 in tile_grid(config, m, n):
        for row in range(config.rows):
            beats.append(pack(layout, {"data": raw[row0 + row][col0:col0 + config.cols], "row": row,
                                       "last": int(row == config.rows - 1)}, "res"))
    return beats


def unpack_results(config: MixPEConfig, m: int, n: int, beats: list[int]) -> torch.Tensor:
    """float32 (M, N) from the result beats of :func:`pack_gemm`'s tiles, in tile order."""
    layout = result_layout(config)
    grid = tile_grid(config, m, n)
    expected = len(grid) * config.rows
    if len(beats) != expected:
        raise ValueError(f"beats: expected {expected} result rows for {len(grid)} tiles, got {len(beats)}")
    out = torch.zeros((m, n), dtype=torch.int64)
    for index, beat in enumerate(beats):
        row0, col0 = grid[index // config.rows]
        fields = unpack(layout, beat)
        row = row0 + fields["row"]
        if row < m:
            values = fields["data"][:n - col0]
            out[row, col0:col0 + len(values)] = torch.tensor(values, dtype=torch.int64)
    return _int_bits_to_float(out)


def _int_bits_to_float(bit_patterns: torch.Tensor) -> torch.Tensor:
    signed = torch.where(bit_patterns >= 2 ** 31, bit_patterns - 2 ** 32, bit_patterns)
    return signed.to(torch.int32).view(torch.float32)
