"""Pack quantized GEMMs into the MixPE core's stream beats, tile by tile, and unpack its results.

Plain GEMMs (:func:`pack_gemm`). ``y[M, N] = x[M, K] @ W[N, K]^T`` is cut into output tiles of R
token rows x C output columns, each streamed over the whole K (tiles ordered row block major).
Partial tiles are padded with zero activations, zero codes, zero scales and zero token scales;
their padded outputs are exact zeros and are dropped by :func:`unpack_results`. With
``row_groups > 1`` every row band of a tile carries the same codes and group parameters (those of
the tile's C columns), so the tiling, the results and the cycle counts are those of the plain
array; only the weight stream carries ``row_groups`` copies.

Banded tiles (:func:`pack_banded_tile`). With ``row_groups > 1`` the R rows form ``row_groups``
bands of ``band_rows`` rows, each with its own weights: one tile holds up to ``row_groups``
independent GEMMs with the same K (for example the same projection of several MoE experts, each
with a few tokens), described by a list of :class:`Band`. :func:`banded_tile_result` is the
tile's bit-exact expected output and :func:`unpack_banded_tile` cuts a tile result into the
bands' outputs.

K-quants (``scale_mode="kquant"``, :class:`golden.kquant.KQuantWeights`): each group's ``scale``
element carries the super-block's FP16 d and the group's sub-scale, its ``zero`` element the zero
point, or o = -dmin and the group's min; padding has zero sub-scales, mins and d (and o), so its
outputs are zeros too. Floating-point activations share one exponent per super-block.

Floating-point activations travel as raw codes, with no token scale (``act_scale`` is None); each
group's ``grp`` beat carries per row the shared exponent
(:func:`golden.fp_activations.shared_exponents`), computed here as the producer of the
activations would.
"""

from __future__ import annotations

import dataclasses

import torch

from golden.codes import scale_field_bits
from golden.fp32 import bits, fp16_bits, from_bits
from golden.fp_activations import shared_exponents
from golden.kquant import KQuantWeights, superblock_exponents, validate_kquant_operands
from golden.mpgemm import bitexact_mpgemm
from golden.operands import OperandError, QuantizedWeights, activation_operand, validate_operands
from hw.config import MixPEConfig
from hw.layouts import (activation_layout, group_layout, pack, result_layout, unpack,
                        weight_layout)

__all__ = ["Band", "Tile", "banded_tile_result", "pack_banded_tile", "pack_gemm", "pad_operands",
           "result_beats", "tile_grid", "tile_result_beats", "unpack_banded_tile", "unpack_results"]


@dataclasses.dataclass
class Tile:
    """One output tile over all of K: packed ``act`` and ``wgt`` beats (one per K step) and ``grp``
    beats (one per group).

    For :func:`pack_gemm`, ``row0``/``col0`` place its R x C outputs in the GEMM's output; a banded
    tile (:func:`pack_banded_tile`) has ``row0 = col0 = 0`` (its rows are the bands' own)."""
    row0: int
    col0: int
    act: list[int]
    wgt: list[int]
    grp: list[int]

    @property
    def groups(self) -> int:
        return len(self.grp)


@dataclasses.dataclass
class Band:
    """One row band of a tile: up to band_rows token rows against up to C output channels, same K for every band of a tile."""
    x: torch.Tensor                  # (m_b <= band_rows, K) activations, as bitexact_mpgemm accepts
    act_scale: torch.Tensor | None   # (m_b,) float32 per-token scales (INT8 activations), None for floating point
    weights: QuantizedWeights        # (n_b <= C channels, K)


def tile_grid(config: MixPEConfig, m: int, n: int) -> list[tuple[int, int]]:
    """(row0, col0) of every tile covering an M x N output, row block major."""
    return [(row0, col0) for row0 in range(0, m, config.rows) for col0 in range(0, n, config.cols)]


def _pad_rows(tensor: torch.Tensor, multiple: int, fill: int | float = 0) -> torch.Tensor:
    """``tensor`` with rows of ``fill`` appended up to a positive multiple of ``multiple`` rows."""
    extra = -tensor.shape[0] % multiple if tensor.shape[0] else multiple
    if not extra:
        return tensor
    pad = torch.full((extra,) + tuple(tensor.shape[1:]), fill, dtype=tensor.dtype)
    return torch.cat([tensor, pad])


def _validate(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None, weights) -> None:
    """The operand checks of the configuration's mode (flat, or K-quant)."""
    if config.kquant:
        validate_kquant_operands(config, x, act_scale, weights)
    else:
        validate_operands(config, x, act_scale, weights)


def _pad(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None, weights: QuantizedWeights,
         row_multiple: int) -> tuple[torch.Tensor, torch.Tensor | None, QuantizedWeights]:
    """x and act_scale padded to a multiple of ``row_multiple`` rows, weights to a multiple of C
    channels: zero activations (code 0, +0 for floating point) and token scales; zero codes and
    scales with the encoding's zero point (or a zero float offset; K-quants: zero sub-scales and mins)."""
    zero_point = config.symmetric_zero if config.weight_encoding == "signed" else 0
    if config.kquant:
        padded = KQuantWeights(
            codes=_pad_rows(weights.codes, config.cols), scales=_pad_rows(weights.scales, config.cols),
            sub_scales=_pad_rows(weights.sub_scales, config.cols),
            zeros=None if config.float_offset else _pad_rows(weights.zeros, config.cols, zero_point),
            offsets=_pad_rows(weights.offsets, config.cols, 0.0) if config.float_offset else None,
            mins=_pad_rows(weights.mins, config.cols) if config.float_offset else None)
        act_scale = None if act_scale is None else _pad_rows(act_scale, row_multiple)
        return _pad_rows(x, row_multiple), act_scale, padded
    padded = QuantizedWeights(
        codes=_pad_rows(weights.codes, config.cols),
        scales=_pad_rows(weights.scales, config.cols),
        zeros=None if config.float_offset else _pad_rows(weights.zeros, config.cols, zero_point),
        offsets=_pad_rows(weights.offsets, config.cols, 0.0) if config.float_offset else None)
    act_scale = None if act_scale is None else _pad_rows(act_scale, row_multiple)
    return _pad_rows(x, row_multiple), act_scale, padded


def pad_operands(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None, weights: QuantizedWeights
                 ) -> tuple[torch.Tensor, torch.Tensor | None, QuantizedWeights]:
    """Operands padded to whole tiles: M to a multiple of R, N to a multiple of C.

    Padding rows have zero activations and token scale; padding columns have zero codes and
    scales and the encoding's zero point (or a zero float offset), so their results are zeros.
    Floating-point activations come back as raw codes and ``act_scale`` stays None."""
    x = activation_operand(config, x)
    _validate(config, x, act_scale, weights)
    return _pad(config, x, act_scale, weights, config.rows)


def _group_params(config: MixPEConfig, weights: QuantizedWeights) -> tuple[list, list]:
    """(raw FP16 scales, zero points or raw FP16 offsets), each a list over groups of lists over
    channels; K-quants: dicts of the super-block's d and the group's sub-scale, and of o and the
    min (or the zero points)."""
    if config.kquant:
        per_group = config.superblock_groups
        d = fp16_bits(weights.scales).repeat_interleave(per_group, dim=1).t().tolist()
        scales = [[{"d": d_n, "sub_scale": sc_n} for d_n, sc_n in zip(d_j, sc_j)]
                  for d_j, sc_j in zip(d, weights.sub_scales.t().tolist())]
        if not config.float_offset:
            return scales, weights.zeros.t().tolist()
        o = fp16_bits(weights.offsets).repeat_interleave(per_group, dim=1).t().tolist()
        return scales, [[{"offset": o_n, "min": m_n} for o_n, m_n in zip(o_j, m_j)]
                        for o_j, m_j in zip(o, weights.mins.t().tolist())]
    zeros = fp16_bits(weights.offsets) if config.float_offset else weights.zeros
    return scale_field_bits(weights.scales).t().tolist(), zeros.t().tolist()    # FP16, E8M0 or E4M3 codes


def _row_params(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None) -> list:
    """Per group, per row of ``x`` the ``grp`` field ``row_param``: the raw FP32 token
    scale (INT8, the same every group) or the shared exponent of the row's group (floating point)."""
    if config.fp_activation:
        exponents = superblock_exponents if config.kquant else shared_exponents
        return exponents(config, x).t().tolist()
    return [bits(act_scale.float()).tolist()] * (x.shape[1] // config.group_size)


def _pack_tile(config: MixPEConfig, row0: int, col0: int, x_steps: list, row_params: list,
               band_codes: list, band_scales: list, band_zeros: list) -> Tile:
    """Pack one tile from plain lists: ``x_steps`` K x R activations, ``row_params`` G x R (see
    :func:`_row_params`); per row band, ``band_codes`` K x C codes and ``band_scales``/``band_zeros``
    G x C parameters."""
    act_l, wgt_l, grp_l = activation_layout(config), weight_layout(config), group_layout(config)
    groups = len(band_scales[0])

    def across_bands(per_band: list, index: int) -> list:
        return [value for band in per_band for value in band[index]]

    return Tile(
        row0=row0, col0=col0,
        act=[pack(act_l, step, "act") for step in x_steps],
        wgt=[pack(wgt_l, across_bands(band_codes, k), "wgt") for k in range(len(x_steps))],
        grp=[pack(grp_l, {"scale": across_bands(band_scales, j), "zero": across_bands(band_zeros, j),
                          "row_param": row_params[j], "last": int(j == groups - 1)}, "grp")
             for j in range(groups)],
    )


def pack_gemm(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
              weights: QuantizedWeights) -> list[Tile]:
    """Validate the operands, then pack every tile's act/wgt/grp beats with the shared layouts.

    With ``row_groups > 1`` every band of a tile gets the tile's codes and parameters."""
    m, n = x.shape[0], weights.codes.shape[0]
    x, act_scale, weights = pad_operands(config, x, act_scale, weights)
    rows, cols, bands = config.rows, config.cols, config.row_groups
    scales, zeros = _group_params(config, weights)
    row_params = _row_params(config, x, act_scale)
    tiles = []
    for row0, col0 in tile_grid(config, m, n):
        code_steps = weights.codes[col0:col0 + cols].t().tolist()
        tile_scales = [row[col0:col0 + cols] for row in scales]
        tile_zeros = [row[col0:col0 + cols] for row in zeros]
        tiles.append(_pack_tile(config, row0, col0, x[row0:row0 + rows].t().tolist(),
                                [group[row0:row0 + rows] for group in row_params],
                                [code_steps] * bands, [tile_scales] * bands, [tile_zeros] * bands))
    return tiles


def _check_bands(config: MixPEConfig, bands: list[Band]) -> int:
    """Validate a banded tile's operands; returns the shared K."""
    if not isinstance(bands, (list, tuple)) or not 1 <= len(bands) <= config.row_groups:
        count = len(bands) if isinstance(bands, (list, tuple)) else type(bands).__name__
        raise OperandError(f"bands: got {count}; a tile holds 1 to row_groups={config.row_groups} bands")
    k = None
    for index, band in enumerate(bands):
        name = f"bands[{index}]"
        if not isinstance(band, Band):
            raise OperandError(f"{name}: got {type(band).__name__}, expected Band")
        if band.act_scale is None and not config.fp_activation:
            raise OperandError(f"{name}.act_scale: None; INT8 activations need float32 per-token scales, shape (m_b,)")
        try:
            _validate(config, activation_operand(config, band.x), band.act_scale, band.weights)
        except OperandError as error:
            raise OperandError(f"{name}: {error}") from None
        m_b, k_b = band.x.shape
        n_b = band.weights.codes.shape[0]
        if m_b > config.band_rows:
            raise OperandError(f"{name}.x: {m_b} token rows; a band holds at most band_rows={config.band_rows} "
                               f"(rows={config.rows} / row_groups={config.row_groups})")
        if n_b > config.cols:
            raise OperandError(f"{name}.weights: {n_b} output channels; a band holds at most cols={config.cols}")
        if k is None:
            k = k_b
        elif k_b != k:
            raise OperandError(f"{name}.x: K={k_b}, but bands[0] has K={k}; every band of a tile has the same K")
    return k


def _padded_bands(config: MixPEConfig, bands: list[Band]
                  ) -> list[tuple[torch.Tensor, torch.Tensor, QuantizedWeights]]:
    """Validated operands of all ``row_groups`` bands, each padded to band_rows x C; missing bands
    are all padding (zero activations and token scales, zero codes and scales)."""
    k = _check_bands(config, bands)
    groups = k // config.group_size
    scale_groups = groups // config.superblock_groups
    integers, halves = torch.zeros((0, groups), dtype=torch.int64), torch.zeros((0, scale_groups), dtype=torch.float16)
    flat_fields = {"zeros": None, "offsets": halves} if config.float_offset else {"zeros": integers, "offsets": None}
    if config.kquant:
        empty_weights = KQuantWeights(codes=torch.zeros((0, k), dtype=torch.int64), scales=halves, sub_scales=integers,
                                      mins=integers if config.float_offset else None, **flat_fields)
    else:
        empty_weights = QuantizedWeights(codes=torch.zeros((0, k), dtype=torch.int64), scales=halves, **flat_fields)
    no_scale = None if config.fp_activation else torch.zeros(0, dtype=torch.float32)
    empty = Band(x=torch.zeros((0, k), dtype=torch.int64), act_scale=no_scale, weights=empty_weights)
    return [_pad(config, activation_operand(config, band.x), band.act_scale, band.weights, config.band_rows)
            for band in list(bands) + [empty] * (config.row_groups - len(bands))]


def pack_banded_tile(config: MixPEConfig, bands: list[Band]) -> Tile:
    """Pack one tile whose row band b computes ``bands[b]`` (1 <= len(bands) <= row_groups).

    Band b's token rows occupy tile rows ``b * band_rows`` onwards and its channels columns 0..n_b-1.
    Missing bands, rows and columns are padded so that their outputs are exact zeros."""
    padded = _padded_bands(config, bands)
    x = torch.cat([x for x, _, _ in padded])
    act_scale = None if config.fp_activation else torch.cat([act_scale for _, act_scale, _ in padded])
    params = [_group_params(config, weights) for _, _, weights in padded]
    return _pack_tile(config, 0, 0, x.t().tolist(), _row_params(config, x, act_scale),
                      [weights.codes.t().tolist() for _, _, weights in padded],
                      [scales for scales, _ in params], [zeros for _, zeros in params])


def banded_tile_result(config: MixPEConfig, bands: list[Band]) -> torch.Tensor:
    """float32 (R, C): the bit-exact output of :func:`pack_banded_tile`'s tile, padding included
    (:func:`golden.mpgemm.bitexact_mpgemm` on each padded band)."""
    return torch.cat([bitexact_mpgemm(config, *operands) for operands in _padded_bands(config, bands)])


def unpack_banded_tile(config: MixPEConfig, bands: list[Band], rows_fp32: torch.Tensor) -> list[torch.Tensor]:
    """Per band its (m_b, n_b) block of an (R, C) tile result."""
    shape = (config.rows, config.cols)
    if not isinstance(rows_fp32, torch.Tensor) or tuple(rows_fp32.shape) != shape:
        raise OperandError(f"rows_fp32: shape {tuple(getattr(rows_fp32, 'shape', ()))}, expected {shape} "
                           f"(one tile result, R x C)")
    _check_bands(config, bands)
    return [rows_fp32[b * config.band_rows:b * config.band_rows + band.x.shape[0], :band.weights.codes.shape[0]]
            for b, band in enumerate(bands)]


def tile_result_beats(config: MixPEConfig, rows_fp32: torch.Tensor) -> list[int]:
    """The R result beats the core sends for one tile whose float32 (R, C) result is ``rows_fp32``."""
    layout = result_layout(config)
    raw = bits(rows_fp32.float()).tolist()
    return [pack(layout, {"data": raw[row], "row": row, "last": int(row == config.rows - 1)}, "res")
            for row in range(config.rows)]


def result_beats(config: MixPEConfig, y_padded: torch.Tensor, m: int, n: int) -> list[int]:
    """The result beats the core sends for the tiles of an M x N GEMM whose padded FP32 result
    (rows a multiple of R, columns of C) is ``y_padded``."""
    return [beat for row0, col0 in tile_grid(config, m, n)
            for beat in tile_result_beats(config, y_padded[row0:row0 + config.rows, col0:col0 + config.cols])]


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
    return from_bits(out)
