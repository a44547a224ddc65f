"""llama.cpp K-quant quantizers (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) in numpy, byte for byte as llama.cpp's
reference quantizers ``quantize_row_q*_K_ref`` (``ggml-quants.c``; what ``llama-quantize`` runs
without an importance matrix). gguf-py has only ``dequantize`` for the K-quants.

Per super-block of 256 weights of a row (the layouts of :mod:`sw.gguf_kquants`):

Q4_K, Q5_K (sub-blocks of 32)
    each sub-block gets a scale and a min by ``make_qkx2_quants`` (a search over 21 / 16 trial
    inverse scales, each followed by a weighted least-squares fit of scale and min, weights
    ``rms(x) + |x|``); the eight scales and the eight mins are quantized to 6 bits against FP16
    ``d = max_scale/63`` and ``dmin = max_min/63``; the codes are then re-rounded against the
    quantized ``d*sc_j`` and ``dmin*m_j``: ``q = clamp(round((x + dmin*m_j) / (d*sc_j)), 0, 2^b - 1)``.
Q6_K (sub-blocks of 16)
    a signed scale per sub-block by ``make_qx_quants`` (rmse_type 1: weights ``x^2``, 19 trial
    scales), int8 sub-scales against ``d = -max_scale/128``, codes ``clamp(round(x/(d*sc_j)), -32, 31) + 32``.
Q2_K (sub-blocks of 16)
    ``make_qkx2_quants`` with weights ``|x|`` and mean absolute error, 4-bit scales and mins.
Q3_K (sub-blocks of 16)
    a signed scale per sub-block by ``make_q3_quants`` (rounding, then up to 5 passes that move
    single codes while that improves the weighted fit), 6-bit signed sub-scales against
    ``d = -max_scale/32``, codes ``clamp(round(x/(d*sc_j)), -4, 3) + 4``.

Exactness: every operation is the reference's FP32 operation in the reference's order (products
left to right, sums sequential: ``np.cumsum``), ``nearest_int`` is round half to even (``np.rint``),
FP16 conversions round to nearest even. This equals a build of ``ggml-quants.c`` without fused
multiply-add contraction (the x86-64 baseline); a ``-march=native`` build on an FMA machine may
contract ``a*b + c`` and then differs in rare ties (``tests/sw/test_kquant_quantize.py`` holds
bytes of both builds on seeded data).

:func:`quantize_kquant` returns the stored fields, :class:`sw.gguf_kquants.KQuantFields` (FP16
``d``/``dmin``, integer sub-scales and mins, codes: what the importer decodes from the bytes);
:func:`pack_kquant` packs them into the GGUF layout and :func:`dequantize_kquant` evaluates them
in FP32 as llama.cpp's ``dequantize_row``.
"""

from __future__ import annotations

import numpy as np

from sw.gguf_kquants import K_QUANTS, SUPER_BLOCK, KQuantFields

__all__ = ["KQUANT_QUANTIZERS", "quantize_kquant", "quantize_kquant_bytes", "pack_kquant", "dequantize_kquant"]

#: The K-quants quantized here.
KQUANT_QUANTIZERS = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
_F32 = np.float32
_GROUP_MAX_EPS = _F32(1e-15)
#: Super-blocks quantized at a time (bounds the working memory to some 100 MB).
_CHUNK = 16384


def dequantize_kquant(label: str, fields: KQuantFields) -> np.ndarray:
    """float32 (S, 256) of ``label`` super-blocks, evaluated as llama.cpp's ``dequantize_row_q*_K``:
    ``(d*sc)*q - dmin*m`` (Q3_K, Q6_K: ``(d*sc)*(q - z)``), every product rounded to FP32."""
    layout = K_QUANTS[label]
    d = fields.d.astype(_F32)[:, None]
    scale = np.repeat(d * fields.sub_scales.astype(_F32), layout.group, axis=1)
    if layout.zero is not None:
        return scale * (fields.codes - layout.zero).astype(_F32)
    offset = np.repeat(fields.dmin.astype(_F32)[:, None] * fields.mins.astype(_F32), layout.group, axis=1)
    return scale * fields.codes.astype(_F32) - offset


def pack_kquant(label: str, fields: KQuantFields) -> np.ndarray:
    """uint8 (S, block_bytes): the super-blocks in ``label``'s GGUF layout (the inverse of
    :func:`sw.gguf_kquants.kquant_fields`)."""
    return _PACKERS[label](fields)


def _seq_sum(values: np.ndarray) -> np.ndarray:
    """Sum over the last axis in FP32, sequentially as the reference's loops add."""
    return np.cumsum(values, axis=-1, dtype=_F32)[..., -1]


def _nearest_int(values: np.ndarray) -> np.ndarray:
    """ggml's ``nearest_int``: round half to even, as int64."""
    return np.rint(values).astype(np.int64)


def _fp16(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16)


# -- the per-sub-block searches ----------------------------------------------------------------

def _make_qkx2_quants(x: np.ndarray, weights: np.ndarray, nmax: int, rmin: float, rdelta: float, nstep: int,
                      use_mad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``make_qkx2_quants`` for B sub-blocks x (B, n): (scale (B,), the_min (B,) = -min >= 0,
    codes int64 (B, n) in [0, nmax])."""
    low = np.minimum(x.min(axis=1), _F32(0))
    high = x.max(axis=1)
    flat = high == low
    sum_w = _seq_sum(weights)
    sum_x = _seq_sum(weights * x)
    error = (lambda diff: np.abs(diff)) if use_mad else (lambda diff: diff * diff)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        iscale = _F32(nmax) / (high - low)
        scale = _F32(1) / iscale
        codes = np.clip(_nearest_int(iscale[:, None] * (x - low[:, None])), 0, nmax)
        best = _seq_sum(weights * error(scale[:, None] * codes.astype(_F32) + low[:, None] - x))
        for step in range(nstep + 1):
            # the reference divides by max - min with min the best fit so far
            iscale = (_F32(rmin) + _F32(rdelta) * _F32(step) + _F32(nmax)) / (high - low)
            trial = np.clip(_nearest_int(iscale[:, None] * (x - low[:, None])), 0, nmax)
            l = trial.astype(_F32)
            sum_l = _seq_sum(weights * l)
            sum_l2 = _seq_sum(weights * l * l)
            sum_xl = _seq_sum(weights * l * x)
            det = sum_w * sum_l2 - sum_l * sum_l
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / det
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det
            positive = this_min > 0
            this_min = np.where(positive, _F32(0), this_min)
            this_scale = np.where(positive, sum_xl / sum_l2, this_scale)
            current = _seq_sum(weights * error(this_scale[:, None] * l + this_min[:, None] - x))
            better = (det > 0) & (current < best)
            codes = np.where(better[:, None], trial, codes)
            best = np.where(better, current, best)
            scale = np.where(better, this_scale, scale)
            low = np.where(better, this_min, low)
    codes[flat] = 0
    scale = np.where(flat, _F32(0), scale)
    return scale, -low, codes


def _make_qx_quants_rmse1(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """``make_qx_quants(n, nmax, x, L, rmse_type=1, NULL)`` for B sub-blocks x (B, n): (signed scale
    (B,), codes int64 (B, n) in [0, 2*nmax - 1], i.e. l + nmax)."""
    absolute = np.abs(x)
    first_max = np.argmax(absolute, axis=1)                 # the first element of largest |x|
    peak = x[np.arange(x.shape[0]), first_max]
    zero = absolute.max(axis=1) < _GROUP_MAX_EPS
    weights = x * x

    def fit(iscale):
        l = np.clip(_nearest_int(iscale[:, None] * x), -nmax, nmax - 1)
        lf = l.astype(_F32)
        return l + nmax, _seq_sum(weights * x * lf), _seq_sum(weights * lf * lf)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        codes, sum_lx, sum_l2 = fit(_F32(-nmax) / peak)
        scale = np.where(sum_l2 != 0, sum_lx / sum_l2, _F32(0))
        best = scale * sum_lx
        for step in range(-9, 10):
            if step == 0:
                continue
            trial, lx, l2 = fit(-(_F32(nmax) + _F32(0.1) * _F32(step)) / peak)
            better = (l2 > 0) & (lx * lx > best * l2)
            codes = np.where(better[:, None], trial, codes)
            scale = np.where(better, lx / l2, scale)
            best = np.where(better, scale * lx, best)
    codes[zero] = 0
    return np.where(zero, _F32(0), scale), codes


def _make_q3_quants(x: np.ndarray, nmax: int) -> tuple[np.ndarray, np.ndarray]:
    """``make_q3_quants(n, nmax, x, L, do_rmse=true)`` for B sub-blocks x (B, n): (signed scale
    (B,), codes int64 (B, n) = l + nmax). After the first rounding, up to 5 passes revisit every
    element in order and keep a new level when it raises ``sumlx^2 / suml2`` (weights ``x^2``); a
    pass without a change ends the search (a further pass would change nothing either)."""
    absolute = np.abs(x)
    peak = x[np.arange(x.shape[0]), np.argmax(absolute, axis=1)]
    zero = absolute.max(axis=1) < _GROUP_MAX_EPS
    weights = x * x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        levels = np.clip(_nearest_int((_F32(-nmax) / peak)[:, None] * x), -nmax, nmax - 1)
        sum_lx = _seq_sum(weights * x * levels.astype(_F32))
        sum_l2 = _seq_sum(weights * levels.astype(_F32) * levels.astype(_F32))
        for _ in range(5):
            for i in range(x.shape[1]):
                w, xi, li = weights[:, i], x[:, i], levels[:, i].astype(_F32)
                slx = sum_lx - w * xi * li
                sl2 = sum_l2 - w * li * li
                new = np.clip(_nearest_int(xi * sl2 / slx), -nmax, nmax - 1)
                newf = new.astype(_F32)
                slx_new = slx + w * xi * newf
                sl2_new = sl2 + w * newf * newf
                take = ((slx > 0) & (new != levels[:, i]) & (sl2_new > 0)
                        & (slx_new * slx_new * sum_l2 > sum_lx * sum_lx * sl2_new))
                levels[:, i] = np.where(take, new, levels[:, i])
                sum_lx = np.where(take, slx_new, sum_lx)
                sum_l2 = np.where(take, sl2_new, sum_l2)
        scale = np.where(sum_l2 > 0, sum_lx / sum_l2, _F32(0))
    codes = levels + nmax
    codes[zero] = 0
    return np.where(zero, _F32(0), scale), codes


# -- the super-block quantizers ----------------------------------------------------------------

def _requantize(x: np.ndarray, step: np.ndarray, offset: np.ndarray | None, codes: np.ndarray, low: int,
                high: int, shift: int) -> np.ndarray:
    """Codes of x (S, G, g) against the quantized sub-block ``step`` (S, G) and ``offset``:
    ``clamp(round((x + offset) / step), low, high) + shift``; sub-blocks with step 0 keep ``codes``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = x if offset is None else x + offset[..., None]
        fresh = np.clip(_nearest_int(value / step[..., None]), low, high) + shift
    return np.where((step != 0)[..., None], fresh, codes)


def _quantize_scale_min(x: np.ndarray, label: str) -> KQuantFields:
    """Q2_K, Q4_K, Q5_K of super-blocks x float32 (S, 256)."""
    layout = K_QUANTS[label]
    group, groups, nmax = layout.group, SUPER_BLOCK // layout.group, 2 ** layout.bits - 1
    blocks = x.reshape(-1, group)
    if label == "Q2_K":
        weights, levels, search = np.abs(blocks), 15, (-0.5, 0.1, 15, True)
    else:
        mean_square = _seq_sum(blocks * blocks) / _F32(group)
        weights, levels = np.sqrt(mean_square)[:, None] + np.abs(blocks), 63
        search = (-1.0, 0.1, 20, False) if label == "Q4_K" else (-0.5, 0.1, 15, False)
    scales, mins, codes = _make_qkx2_quants(blocks, weights, nmax, *search)
    scales, mins, codes = scales.reshape(-1, groups), mins.reshape(-1, groups), codes.reshape(-1, groups, group)
    max_scale = np.maximum(scales.max(axis=1), _F32(0))
    max_min = np.maximum(mins.max(axis=1), _F32(0))
    with np.errstate(divide="ignore"):
        inv_scale = np.where(max_scale > 0, _F32(levels) / max_scale, _F32(0))
        inv_min = np.where(max_min > 0, _F32(levels) / max_min, _F32(0))
    if label == "Q2_K":                     # stored unclamped in 4 bits (the search bounds them by 15)
        sub_scales = _nearest_int(inv_scale[:, None] * scales) & 0xF
        sub_mins = np.where(max_min[:, None] > 0, _nearest_int(inv_min[:, None] * mins), 0) & 0xF
    else:                                   # uint8 conversion, then MIN(63, .)
        sub_scales = np.minimum(_nearest_int(inv_scale[:, None] * scales) & 0xFF, 63)
        sub_mins = np.minimum(_nearest_int(inv_min[:, None] * mins) & 0xFF, 63)
    d = _fp16(np.where(max_scale > 0, max_scale / _F32(levels), _F32(0)))
    dmin = _fp16(np.where(max_min > 0, max_min / _F32(levels), _F32(0)))
    step = d.astype(_F32)[:, None] * sub_scales.astype(_F32)
    offset = dmin.astype(_F32)[:, None] * sub_mins.astype(_F32)
    codes = _requantize(x.reshape(-1, groups, group), step, offset, codes, 0, nmax, 0)
    return KQuantFields(d, dmin, codes.reshape(-1, SUPER_BLOCK), sub_scales, sub_mins)


def _quantize_q3_k(x: np.ndarray) -> KQuantFields:
    """Q3_K of super-blocks x float32 (S, 256)."""
    scales, codes = _make_q3_quants(x.reshape(-1, 16), 4)
    scales, codes = scales.reshape(-1, 16), codes.reshape(-1, 16, 16)
    max_scale = scales[np.arange(scales.shape[0]), np.argmax(np.abs(scales), axis=1)]
    zero = max_scale == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = _F32(-32) / max_scale
        # an all-zero super-block keeps its scale bytes 0, i.e. sub-scales -32 (d = 0)
        sub_scales = np.where(zero[:, None], -32, np.clip(_nearest_int(iscale[:, None] * scales), -32, 31))
        d = _fp16(np.where(zero, _F32(0), _F32(1) / iscale))
    step = d.astype(_F32)[:, None] * sub_scales.astype(_F32)
    codes = _requantize(x.reshape(-1, 16, 16), step, None, codes, -4, 3, 4)
    return KQuantFields(d, np.zeros_like(d), codes.reshape(-1, SUPER_BLOCK), sub_scales, None)


def _quantize_q6_k(x: np.ndarray) -> KQuantFields:
    """Q6_K of super-blocks x float32 (S, 256)."""
    scales, codes = _make_qx_quants_rmse1(x.reshape(-1, 16), 32)
    scales, codes = scales.reshape(-1, 16), codes.reshape(-1, 16, 16)
    first_max = np.argmax(np.abs(scales), axis=1)
    max_scale = scales[np.arange(scales.shape[0]), first_max]
    zero = np.abs(max_scale) < _GROUP_MAX_EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        iscale = _F32(-128) / max_scale
        d = _fp16(np.where(zero, _F32(0), _F32(1) / iscale))
        sub_scales = np.where(zero[:, None], 0, np.minimum(127, _nearest_int(iscale[:, None] * scales)))
    step = d.astype(_F32)[:, None] * sub_scales.astype(_F32)
    codes = _requantize(x.reshape(-1, 16, 16), step, None, codes, -32, 31, 32)
    codes[zero] = 0
    return KQuantFields(d, np.zeros_like(d), codes.reshape(-1, SUPER_BLOCK), sub_scales, None)


# -- packing (the layouts of sw.gguf_kquants, written) -----------------------------------------

def _half_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype("<f2").view(np.uint8).reshape(-1, 2)


def _pack_fields(codes: np.ndarray, chunk: int, planes: int, width: int) -> np.ndarray:
    """Inverse of ``sw.gguf_kquants._bit_planes_per_chunk``: elements (S, E) in chunks of
    ``planes * chunk``; field i of byte j of a chunk holds element ``i*chunk + j``."""
    s = codes.shape[0]
    fields = codes.reshape(s, -1, planes, chunk).astype(np.uint8)
    shifts = (np.arange(planes, dtype=np.uint8) * width).reshape(1, 1, planes, 1)
    return np.bitwise_or.reduce(fields << shifts, axis=2).reshape(s, -1)


def _pack_scale_min_k4(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Eight 6-bit sub-scales and mins -> 12 bytes (inverse of ``get_scale_min_k4``)."""
    sc, m = sc.astype(np.uint8), m.astype(np.uint8)
    low_d = (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6)
    low_m = (m[:, :4] & 0x3F) | ((m[:, 4:] >> 4) << 6)
    high = (sc[:, 4:] & 0xF) | ((m[:, 4:] & 0xF) << 4)
    return np.concatenate([low_d, low_m, high], axis=1)


def _pack_q2_k(q: KQuantFields) -> np.ndarray:
    scales = (q.sub_scales | (q.mins << 4)).astype(np.uint8)
    return np.concatenate([scales, _pack_fields(q.codes, 32, 4, 2), _half_bytes(q.d), _half_bytes(q.dmin)], axis=1)


def _pack_q3_k(q: KQuantFields) -> np.ndarray:
    stored = q.sub_scales + 32                                # 6-bit: low nibbles, then 2-bit high parts
    scales = np.concatenate([_pack_fields(stored & 0xF, 8, 2, 4), _pack_fields(stored >> 4, 4, 4, 2)], axis=1)
    return np.concatenate([_pack_fields(q.codes >> 2, 32, 8, 1), _pack_fields(q.codes & 3, 32, 4, 2), scales,
                           _half_bytes(q.d)], axis=1)


def _pack_q4_k(q: KQuantFields) -> np.ndarray:
    return np.concatenate([_half_bytes(q.d), _half_bytes(q.dmin), _pack_scale_min_k4(q.sub_scales, q.mins),
                           _pack_fields(q.codes & 0xF, 32, 2, 4)], axis=1)


def _pack_q5_k(q: KQuantFields) -> np.ndarray:
    qh = _pack_fields(q.codes >> 4, 32, 8, 1)                # bit i of byte j: element 32 i + j
    return np.concatenate([_half_bytes(q.d), _half_bytes(q.dmin), _pack_scale_min_k4(q.sub_scales, q.mins),
                           qh, _pack_fields(q.codes & 0xF, 32, 2, 4)], axis=1)


def _pack_q6_k(q: KQuantFields) -> np.ndarray:
    ql = _pack_fields(q.codes & 0xF, 64, 2, 4)               # per half of 128: 64 low, then 64 high nibbles
    qh = _pack_fields(q.codes >> 4, 32, 4, 2)
    scales = q.sub_scales.astype(np.int8).view(np.uint8)
    return np.concatenate([ql, qh, scales, _half_bytes(q.d)], axis=1)


_PACKERS = {"Q2_K": _pack_q2_k, "Q3_K": _pack_q3_k, "Q4_K": _pack_q4_k, "Q5_K": _pack_q5_k, "Q6_K": _pack_q6_k}


# -- entry points ------------------------------------------------------------------------------

def quantize_kquant(w, label: str) -> KQuantFields:
    """The super-blocks of float weights ``w`` (..., K), K a multiple of 256 (rows along K = ne0),
    quantized to ``label`` (one of :data:`KQUANT_QUANTIZERS`) as llama.cpp's reference does."""
    if label not in KQUANT_QUANTIZERS:
        raise ValueError(f"label={label!r}: the K-quants quantized here are {', '.join(KQUANT_QUANTIZERS)}")
    x = np.asarray(w, dtype=_F32)
    if x.ndim < 1 or x.shape[-1] % SUPER_BLOCK or x.size == 0:
        raise ValueError(f"shape {x.shape}: {label} needs K (the last dimension) a positive multiple of {SUPER_BLOCK}")
    if not np.isfinite(x).all():
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ValueError(f"weights: value {x[index]} at index {index} is not finite; {label} quantizes finite weights")
    x = x.reshape(-1, SUPER_BLOCK)
    quantize = {"Q3_K": _quantize_q3_k, "Q6_K": _quantize_q6_k}.get(label,
                                                                   lambda part: _quantize_scale_min(part, label))
    parts = [quantize(x[start:start + _CHUNK]) for start in range(0, x.shape[0], _CHUNK)]
    joined = {field: np.concatenate([getattr(part, field) for part in parts]) for field in ("d", "dmin", "codes",
                                                                                             "sub_scales")}
    return KQuantFields(**joined, mins=None if parts[0].mins is None else np.concatenate([p.mins for p in parts]))


def quantize_kquant_bytes(w, label: str) -> np.ndarray:
    """``w`` (..., K) quantized to ``label`` as raw GGUF bytes uint8 (..., K / 256 * block_bytes),
    the shape gguf-py's ``quantize`` returns."""
    x = np.asarray(w, dtype=_F32)
    packed = pack_kquant(label, quantize_kquant(x, label))
    return packed.reshape(*x.shape[:-1], x.shape[-1] // SUPER_BLOCK * K_QUANTS[label].block_bytes)
