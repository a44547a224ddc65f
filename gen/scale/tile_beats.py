"""The stream beats of a row block's tiles, built with numpy: the vectorized form of
:func:`sw.packer.pack_gemm` and :func:`sw.packer.result_beats` for ``mixpe verify-model``'s tasks.

Same layouts (:mod:`hw.layouts`: every field's offset and width is read from them) and the same beats,
bit for bit (``tests/gen/test_verify_model.py`` compares them with ``pack_gemm``); one numpy operation
per field element instead of one Python operation per field element and beat, which made the
host's packing most of a task's time. Flat weights only (every weight verify-model runs; K-quants
stay with ``pack_gemm``).
"""

from __future__ import annotations

import numpy as np
import torch
from amaranth.hdl import Shape
from amaranth.lib import data

from golden.codes import scale_field_bits
from golden.fp32 import bits, fp16_bits
from golden.fp_activations import shared_exponents
from golden.operands import QuantizedWeights
from hw.config import MixPEConfig
from hw.layouts import activation_layout, group_layout, result_layout, weight_layout
from sw.packer import Tile

__all__ = ["row_block_tiles", "row_block_result_beats"]

WORD_BITS = 64


def _place(words: np.ndarray, layout, value, offset: int) -> None:
    """OR ``value`` (leading dimension: the beats) into ``words`` (beats, W) uint64 at bit ``offset``:
    a dict for a struct, (beats, length) for an array of scalars, (beats,) for a scalar."""
    if isinstance(layout, data.StructLayout):
        for name, field in layout:
            _place(words, field.shape, value[name], offset + field.offset)
        return
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        columns = np.asarray(value)
        if isinstance(layout.elem_shape, (data.StructLayout, data.ArrayLayout)) or columns.shape[1:] != (layout.length,):
            raise ValueError(f"layout {layout!r}: expected (beats, {layout.length}) scalars, got {columns.shape}")
        for index in range(layout.length):
            _place(words, layout.elem_shape, columns[:, index], offset + index * width)
        return
    width = Shape.cast(layout).width
    field = np.asarray(value).astype(np.int64) & ((1 << width) - 1)       # two's complement of signed fields
    field = field.astype(np.uint64)
    word, shift = divmod(offset, WORD_BITS)
    words[:, word] |= field << np.uint64(shift)
    if shift + width > WORD_BITS:
        words[:, word + 1] |= field >> np.uint64(WORD_BITS - shift)


def _beats(layout, value, count: int) -> list[int]:
    """``count`` beats of ``layout`` as Python integers (what :func:`hw.layouts.pack` gives)."""
    width = Shape.cast(layout).width
    words = np.zeros((count, -(-width // WORD_BITS)), dtype=np.uint64)
    _place(words, layout, value, 0)
    if words.shape[1] == 1:
        return words[:, 0].tolist()
    raw, size = words.astype("<u8").tobytes(), words.shape[1] * 8
    return [int.from_bytes(raw[start:start + size], "little") for start in range(0, len(raw), size)]


def row_block_tiles(config: MixPEConfig, x: torch.Tensor, act_scale: torch.Tensor | None,
                    weights: QuantizedWeights) -> list[Tile]:
    """The tiles of one row block: ``x`` (R, K) and ``act_scale`` (R,) padded, ``weights`` (T * C, K)
    padded (:func:`sw.packer.pad_operands`), tile t holding channels ``t*C ..``; beats equal to
    ``pack_gemm``'s (``row0 = 0``, ``col0 = t * C``)."""
    if config.kquant or tuple(x.shape[:1]) != (config.rows,) or weights.codes.shape[0] % config.cols:
        raise ValueError(f"row_block_tiles: flat weights and padded operands (x {tuple(x.shape)}, "
                         f"{weights.codes.shape[0]} channels) on {config.name}")
    rows, cols, bands = config.rows, config.cols, config.row_groups
    k = x.shape[1]
    groups = k // config.group_size
    count = weights.codes.shape[0] // cols
    act = _beats(activation_layout(config), x.t().numpy(), k)
    codes = weights.codes.numpy().reshape(count, cols, k).transpose(0, 2, 1).reshape(count * k, cols)
    wgt = _beats(weight_layout(config), np.tile(codes, (1, bands)), count * k)
    per_group = lambda tensor: np.tile(tensor.numpy().reshape(count, cols, groups).transpose(0, 2, 1)
                                       .reshape(count * groups, cols), (1, bands))
    zeros = fp16_bits(weights.offsets) if config.float_offset else weights.zeros
    row_params = (shared_exponents(config, x).t() if config.fp_activation
                  else bits(act_scale.float())[None, :].expand(groups, rows))
    grp = _beats(group_layout(config), {
        "scale": per_group(scale_field_bits(weights.scales)), "zero": per_group(zeros),
        "row_param": np.tile(row_params.numpy(), (count, 1)),
        "last": np.tile(np.arange(groups) == groups - 1, count)}, count * groups)
    return [Tile(row0=0, col0=t * cols, act=act, wgt=wgt[t * k:(t + 1) * k], grp=grp[t * groups:(t + 1) * groups])
            for t in range(count)]


def row_block_result_beats(config: MixPEConfig, y: torch.Tensor) -> list[int]:
    """The result beats of a row block's tiles, in tile order, from its padded float32 result ``y``
    (R, T * C): what :func:`sw.packer.result_beats` gives."""
    rows, cols = config.rows, config.cols
    count = y.shape[1] // cols
    raw = bits(y.float()).numpy().reshape(rows, count, cols).transpose(1, 0, 2).reshape(count * rows, cols)
    row = np.tile(np.arange(rows), count)
    return _beats(result_layout(config), {"data": raw, "row": row, "last": row == rows - 1}, count * rows)
