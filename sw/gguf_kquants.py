"""llama.cpp K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) decoded to flat groups of their sub-blocks.

A K-quant super-block holds 256 weights of a row, one FP16 ``d`` (and ``dmin``) and small integer
sub-scales ``sc_j`` (and mins ``m_j``) per sub-block of 16 or 32 (``ggml-common.h``; the byte
layouts below follow gguf-py's ``dequantize_blocks`` step for step)::

    Q2_K  sub-blocks of 16, 2-bit q     w = (d*sc_j) * q - (dmin*m_j)     sc_j, m_j 4-bit
    Q3_K  sub-blocks of 16, 3-bit q     w = (d*sc_j) * (q - 4)            sc_j 6-bit signed
    Q4_K  sub-blocks of 32, 4-bit q     w = (d*sc_j) * q - (dmin*m_j)     sc_j, m_j 6-bit
    Q5_K  sub-blocks of 32, 5-bit q     w = (d*sc_j) * q - (dmin*m_j)     sc_j, m_j 6-bit
    Q6_K  sub-blocks of 16, 6-bit q     w = (d*sc_j) * (q - 32)           sc_j int8

Each parenthesised product is exact in FP32 (an FP16 significand times an integer of at most 8
bits), so the flat logical form is one group per sub-block with the FP32 scale ``d*sc_j`` and
either the zero point (Q3_K, Q6_K: the products with ``q - z`` stay exact in FP32 too) or the FP32
float offset ``-(dmin*m_j)`` (evaluated ``fp32(s*q) + offset`` like gguf-py's ``s*q - dm``).
So ``GroupQuantized.dequantize`` equals gguf's dequantization bit for bit. The flat core needs
FP16 group scales, which ``d*sc_j`` generally is not.

The core runs them in ``scale_mode="kquant"`` (hierarchical group dequantization,
:mod:`golden.kquant`): :func:`kquant_weights` keeps the stored fields as they are (the group is the
sub-block, the integer sub-scales and mins ride on the group stream, ``d`` and ``o = -dmin`` are
the super-block's FP16 scales; Q3_K and Q6_K are the ``signed`` encoding with z = 4 and 32) and
:func:`kquant_core_fields` gives the core's weight fields.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["KQuantType", "K_QUANTS", "SUPER_BLOCK", "KQuantFields", "kquant_fields", "decode_kquant",
           "kquant_weights", "kquant_core_fields"]

SUPER_BLOCK = 256


@dataclasses.dataclass(frozen=True)
class KQuantType:
    """``bits`` per code, sub-block ``group`` size, ``zero`` point (None: offsets ``-dmin*m_j``)
    and the super-block's size in bytes."""
    bits: int
    group: int
    zero: int | None
    block_bytes: int


K_QUANTS = {
    "Q2_K": KQuantType(bits=2, group=16, zero=None, block_bytes=84),
    "Q3_K": KQuantType(bits=3, group=16, zero=4, block_bytes=110),
    "Q4_K": KQuantType(bits=4, group=32, zero=None, block_bytes=144),
    "Q5_K": KQuantType(bits=5, group=32, zero=None, block_bytes=176),
    "Q6_K": KQuantType(bits=6, group=16, zero=32, block_bytes=210),
}


def _half(raw: np.ndarray) -> np.ndarray:
    """FP16 fields (n, 2 bytes) as float16 (n,)."""
    return np.ascontiguousarray(raw).view(np.float16)[:, 0]


def _split(blocks: np.ndarray, *sizes: int) -> list[np.ndarray]:
    return np.split(blocks, np.cumsum(sizes), axis=-1)[:len(sizes)]


def _nibble_pairs(qs: np.ndarray, chunk: int) -> np.ndarray:
    """Bytes (n, B) in chunks of ``chunk``: the low nibbles of a chunk, then its high nibbles."""
    n = qs.shape[0]
    shifted = qs.reshape(n, -1, 1, chunk) >> np.array([0, 4], dtype=np.uint8).reshape(1, 1, 2, 1)
    return (shifted & 0x0F).reshape(n, -1)


def _bit_planes(qh: np.ndarray, planes: int, width: int = 1) -> np.ndarray:
    """``width``-bit fields of bytes (n, B): field i of byte j is element ``i*B + j``."""
    return _bit_planes_per_chunk(qh, qh.shape[1], planes, width)


def _bit_planes_per_chunk(qs: np.ndarray, chunk: int, planes: int, width: int) -> np.ndarray:
    """Bytes (n, B) in chunks of ``chunk``: field i of byte j of a chunk is element ``i*chunk + j``
    of that chunk's ``planes * chunk`` elements."""
    n = qs.shape[0]
    shifts = np.arange(0, planes * width, width, dtype=np.uint8).reshape(1, 1, planes, 1)
    fields = (qs.reshape(n, -1, 1, chunk) >> shifts) & ((1 << width) - 1)
    return fields.reshape(n, -1).astype(np.int64)


def _scale_min_k4(scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K: 12 bytes -> eight 6-bit sub-scales and eight 6-bit mins (``get_scale_min_k4``)."""
    n = scales.shape[0]
    d, m, m_d = np.split(scales.reshape(n, 3, 4), 3, axis=-2)
    sc = np.concatenate([d & 0x3F, (m_d & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    mins = np.concatenate([m & 0x3F, (m_d >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return sc.reshape(n, 8), mins.reshape(n, 8)


def _q3_k_scales(scales: np.ndarray) -> np.ndarray:
    """Q3_K: 12 bytes -> sixteen 6-bit sub-scales minus 32."""
    low = _bit_planes(scales[:, :8], 2, 4)            # element 8 i + j: nibble i of byte j
    high = _bit_planes(scales[:, 8:], 4, 2)           # element 4 i + j: bits 2i, 2i+1 of byte 8 + j
    return (low | (high << 4)).astype(np.int64) - 32


@dataclasses.dataclass(frozen=True)
class KQuantFields:
    """The fields of n super-blocks as stored: FP16 ``d`` and ``dmin`` (n,) (``dmin`` 0 for the
    zero-point types), codes int64 (n, 256) (Q3_K: ``q - 4 = code - 4``; Q6_K: ``code - 32``),
    integer ``sub_scales`` (n, 256 / group) and ``mins`` (n, 256 / group) or None."""
    d: np.ndarray
    dmin: np.ndarray
    codes: np.ndarray
    sub_scales: np.ndarray
    mins: np.ndarray | None


def kquant_fields(label: str, blocks: np.ndarray) -> KQuantFields:
    """Raw super-blocks uint8 (n, block_bytes) -> their :class:`KQuantFields`."""
    n = blocks.shape[0]

    zero_dmin = np.zeros(n, dtype=np.float16)
    if label == "Q2_K":
        scales, qs, d, dmin = _split(blocks, 16, 64, 2, 2)
        codes = _bit_planes_per_chunk(qs, 32, 4, 2)
        return KQuantFields(_half(d), _half(dmin), codes, (scales & 0xF).astype(np.int64), (scales >> 4).astype(np.int64))
    if label == "Q3_K":
        hmask, qs, scales, d = _split(blocks, 32, 64, 12, 2)
        low = _bit_planes_per_chunk(qs, 32, 4, 2)
        high = _bit_planes(hmask, 8)                  # bit i of hmask byte j: element 32 i + j
        codes = low | (high << 2)                     # q - 4 = low - 4 * (1 - high)
        return KQuantFields(_half(d), zero_dmin, codes, _q3_k_scales(scales), None)
    if label in ("Q4_K", "Q5_K"):
        d, dmin, scales, rest = _split(blocks, 2, 2, 12, blocks.shape[1] - 16)
        sc, mins = _scale_min_k4(scales)
        codes = _nibble_pairs(rest[:, -128:], 32).astype(np.int64)
        if label == "Q5_K":
            codes |= _bit_planes(rest[:, :32], 8).astype(np.int64) << 4
        return KQuantFields(_half(d), _half(dmin), codes, sc.astype(np.int64), mins.astype(np.int64))
    if label == "Q6_K":
        ql, qh, scales, d = _split(blocks, 128, 64, 16, 2)
        low = _nibble_pairs(ql, 64).astype(np.int64)          # per half of 128: 64 low, then 64 high nibbles
        codes = low | (_bit_planes_per_chunk(qh, 32, 4, 2) << 4)
        sub_scales = np.ascontiguousarray(scales).view(np.int8).astype(np.int64)
        return KQuantFields(_half(d), zero_dmin, codes, sub_scales, None)
    raise KeyError(label)


def decode_kquant(label: str, blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Raw super-blocks uint8 (n, block_bytes) -> (d and dmin float32 (n, 2) for the finiteness
    check, codes int64 (n, 256), scales float32 (n, 256 / group), offsets float32 (n, 256 / group)
    or None). ``dmin`` is 0 for the zero-point types."""
    fields = kquant_fields(label, blocks)
    d, dmin = fields.d.astype(np.float32)[:, None], fields.dmin.astype(np.float32)[:, None]
    offsets = None if fields.mins is None else -(dmin * fields.mins.astype(np.float32))
    return np.concatenate([d, dmin], 1), fields.codes, d * fields.sub_scales.astype(np.float32), offsets


def kquant_core_fields(label: str) -> dict:
    """The :class:`~hw.config.MixPEConfig` weight fields that run ``label`` in ``scale_mode="kquant"``."""
    layout = K_QUANTS[label]
    offsets = layout.zero is None
    return {"weight_bits": layout.bits, "group_size": layout.group, "scale_mode": "kquant",
            "weight_encoding": "unsigned" if offsets else "signed", "zero_mode": "float_offset" if offsets else "integer"}


def kquant_weights(label: str, blocks: np.ndarray, n: int, k: int):
    """Raw super-blocks uint8 (n * k / 256, block_bytes) of an (n, k) tensor as
    :class:`golden.kquant.KQuantWeights` (the stored fields, o = -dmin)."""
    import torch
    from golden.kquant import KQuantWeights
    layout = K_QUANTS[label]
    fields = kquant_fields(label, blocks)
    supers, groups = k // SUPER_BLOCK, k // layout.group
    codes = torch.from_numpy(fields.codes).reshape(n, k)
    d = torch.from_numpy(fields.d.copy()).reshape(n, supers)
    sub_scales = torch.from_numpy(fields.sub_scales).reshape(n, groups)
    if layout.zero is not None:
        return KQuantWeights(codes=codes, scales=d, sub_scales=sub_scales, zeros=torch.full((n, groups), layout.zero))
    return KQuantWeights(codes=codes, scales=d, sub_scales=sub_scales,
                         offsets=-torch.from_numpy(fields.dmin.copy()).reshape(n, supers),
                         mins=torch.from_numpy(fields.mins).reshape(n, groups))
