"""llama.cpp GGUF files: a checked reader and the importers of the 32-weight block types Q4_0,
Q4_1, Q5_0, Q5_1 and Q8_0, and of the K-quants Q2_K .. Q6_K (:mod:`sw.gguf_kquants`: one group
per sub-block), into :class:`sw.checkpoint.GroupQuantized`.

Block layouts (``ggml-common.h``, gguf-py ``quants.py``; every block holds 32 consecutive weights
of a row along K = ne0, rows are the output channels; ``d`` and ``m`` are FP16)::

    Q4_0  d, qs[16]            w = d * (q - 8)      q = nibble                         (18 bytes)
    Q4_1  d, m, qs[16]         w = d * q + m        q = nibble                         (20 bytes)
    Q5_0  d, qh[4], qs[16]     w = d * (q - 16)     q = nibble | bit j of qh << 4      (22 bytes)
    Q5_1  d, m, qh[4], qs[16]  w = d * q + m        q = nibble | bit j of qh << 4      (24 bytes)
    Q8_0  d, qs[32] int8       w = d * q            code q + 128, zero point 128      (34 bytes)

Byte ``j`` of ``qs`` (4/5-bit types) holds element ``j`` in its low nibble and element ``j + 16``
in its high nibble; ``qh`` is a little-endian uint32 whose bit ``j`` is bit 4 of element ``j``.
The zero-point types import as integer zero points (2**(b-1): the core's ``signed`` encoding),
the ``m`` types as float offsets (``zero_mode="float_offset"``); ``GroupQuantized.dequantize`` of
the result is gguf-py's ``dequantize`` bit for bit (float offsets are evaluated ``fp32(d*q) + m`` as
there).

Bad input never surfaces as a numpy or gguf exception: :func:`read_gguf` checks every tensor's
type and data extent before gguf-py slices the file, and every importer error is a
:class:`GGUFError` of one line naming the file, the tensor and what is wrong.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from golden.checks import check_finite
from sw.checkpoint import CheckpointError, GroupQuantized
from sw.gguf_kquants import K_QUANTS, SUPER_BLOCK, decode_kquant

__all__ = ["GGUFError", "GGUF_BLOCK", "BLOCK_TYPES", "BlockType", "import_gguf", "import_gguf_tensor", "read_gguf",
           "gguf_tensors", "quantize_gguf", "tensor_label", "numpy_shape"]

GGUF_BLOCK = 32


class GGUFError(CheckpointError):
    """A GGUF file or tensor is unreadable, truncated, of an unknown type or holds non-finite
    scales; the message names the file, the tensor and the problem."""


@dataclasses.dataclass(frozen=True)
class BlockType:
    """Layout of one 32-weight block type: ``bits`` per code, ``zero`` point (None: an FP16 offset
    ``m`` follows ``d``), and the block's size in bytes."""
    bits: int
    zero: int | None
    block_bytes: int

    @property
    def high_bits(self) -> bool:
        """5-bit codes: a 4-byte ``qh`` with bit 4 of every element precedes ``qs``."""
        return self.bits == 5


BLOCK_TYPES = {
    "Q4_0": BlockType(bits=4, zero=8, block_bytes=18),
    "Q4_1": BlockType(bits=4, zero=None, block_bytes=20),
    "Q5_0": BlockType(bits=5, zero=16, block_bytes=22),
    "Q5_1": BlockType(bits=5, zero=None, block_bytes=24),
    "Q8_0": BlockType(bits=8, zero=128, block_bytes=34),
}


def _type_name(qtype) -> str:
    """The ggml type name of a ``GGMLQuantizationType``, its integer value or its name."""
    label = getattr(qtype, "name", qtype)
    if isinstance(label, (int, np.integer)):
        import gguf
        try:
            label = gguf.GGMLQuantizationType(int(label)).name
        except ValueError:
            return f"unknown type {int(label)}"
    return str(label)


def _codes(blocks: np.ndarray, layout: BlockType) -> torch.Tensor:
    """Unsigned codes int64 (N, blocks * 32) of raw blocks uint8 (N, blocks, block_bytes)."""
    if layout.bits == 8:                                              # Q8_0: int8 values, code q + 128
        values = torch.from_numpy(blocks[..., 2:].copy().view(np.int8).astype(np.int64))
        return (values + 128).reshape(blocks.shape[0], -1)
    qs = torch.from_numpy(blocks[..., -16:].astype(np.int64))
    codes = torch.cat([qs & 0xF, qs >> 4], dim=-1)                    # byte j: elem j low, elem j + 16 high
    if layout.high_bits:
        qh = torch.from_numpy(blocks[..., -20:-16].copy().view("<u4")[..., 0].astype(np.int64))
        codes = codes | (((qh[..., None] >> torch.arange(GGUF_BLOCK)) & 1) << 4)
    return codes.reshape(blocks.shape[0], -1)


def import_gguf(data, shape, qtype, *, name: str = "weight") -> GroupQuantized:
    """Raw blocks of an (N, K) weight of type ``qtype`` (numpy order: N rows of K along ne0).

    ``data``: uint8 array of the N rows' blocks, shaped (N, bytes per row) as gguf-py's
    ``quantize`` and ``GGUFReader`` give it, or flat; ``qtype``: a ``GGMLQuantizationType`` of
    :data:`BLOCK_TYPES` or :data:`sw.gguf_kquants.K_QUANTS`, or its name."""
    label = _type_name(qtype)
    if label not in BLOCK_TYPES and label not in K_QUANTS:
        raise GGUFError(f"{name}: tensor type {label!r} is not imported (imported: "
                        f"{', '.join([*BLOCK_TYPES, *K_QUANTS])})")
    layout = BLOCK_TYPES.get(label) or K_QUANTS[label]
    block = GGUF_BLOCK if label in BLOCK_TYPES else SUPER_BLOCK
    if len(tuple(shape)) != 2:
        raise GGUFError(f"{name}: shape {tuple(shape)}, expected rank 2 (N, K); slice 3-D expert tensors per expert")
    n, k = (int(v) for v in shape)
    if n < 1 or k < 1 or k % block:
        raise GGUFError(f"{name}: shape {(n, k)}, expected K a positive multiple of the {label} block size {block}")
    raw = data if isinstance(data, np.ndarray) else np.asarray(data)
    if raw.dtype != np.uint8:
        raise GGUFError(f"{name}: dtype {raw.dtype}, expected uint8 raw {label} blocks")
    expected = n * (k // block) * layout.block_bytes
    if raw.size != expected or raw.shape not in ((expected,), (n, expected // n)):
        raise GGUFError(f"{name}: shape {raw.shape}, expected ({n}, {expected // n}) bytes: {n} rows of "
                        f"{k // block} {label} blocks of {layout.block_bytes} bytes")
    blocks = np.ascontiguousarray(raw).reshape(n, k // block, layout.block_bytes)
    try:
        if label in K_QUANTS:
            return _import_kquant(label, blocks, n, k, name)
        d = torch.from_numpy(blocks[..., 0:2].copy().view(np.float16)[..., 0])
        check_finite(GGUFError, f"{name}: scale d", d)
        codes = _codes(blocks, layout)
        if layout.zero is not None:
            return GroupQuantized(codes=codes, scales=d, zeros=torch.full(d.shape, layout.zero), bits=layout.bits,
                                  group_size=GGUF_BLOCK, name=name)
        m = torch.from_numpy(blocks[..., 2:4].copy().view(np.float16)[..., 0])
        check_finite(GGUFError, f"{name}: offset m", m)
        return GroupQuantized(codes=codes, scales=d, offsets=m, bits=layout.bits, group_size=GGUF_BLOCK, name=name)
    except GGUFError:
        raise
    except CheckpointError as error:            # not expected: the layout bounds every field
        raise GGUFError(str(error)) from None


def _import_kquant(label: str, blocks: np.ndarray, n: int, k: int, name: str) -> GroupQuantized:
    """K-quant super-blocks (N, K/256, bytes) as one group per sub-block (:mod:`sw.gguf_kquants`)."""
    layout = K_QUANTS[label]
    d_dmin, codes, scales, offsets = decode_kquant(label, blocks.reshape(-1, layout.block_bytes))
    d_dmin = torch.from_numpy(d_dmin).reshape(n, -1, 2)
    check_finite(GGUFError, f"{name}: super-block scale d", d_dmin[..., 0])
    check_finite(GGUFError, f"{name}: super-block dmin", d_dmin[..., 1])
    groups = k // layout.group
    fields = {"zeros": torch.full((n, groups), layout.zero)} if layout.zero is not None else \
        {"offsets": torch.from_numpy(offsets).reshape(n, groups)}
    return GroupQuantized(codes=torch.from_numpy(codes).reshape(n, k),
                          scales=torch.from_numpy(scales).reshape(n, groups), bits=layout.bits,
                          group_size=layout.group, name=name, **fields)


def tensor_label(tensor) -> str:
    """The ggml type name of a ``GGUFReader`` tensor."""
    return _type_name(tensor.tensor_type)


def numpy_shape(tensor) -> tuple[int, ...]:
    """A reader tensor's shape in numpy order (the reversed ggml shape, K = ne0 last)."""
    return tuple(int(v) for v in reversed(list(tensor.shape)))


def import_gguf_tensor(tensor, path: str | Path | None = None) -> GroupQuantized:
    """A tensor from ``GGUFReader(path).tensors``; leading dimensions (3-D expert tensors) are
    stacked into N. ``path`` (optional) is named in errors."""
    shape = numpy_shape(tensor)
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    try:
        return import_gguf(tensor.data.reshape(rows, -1), (rows, shape[-1]), tensor.tensor_type, name=str(tensor.name))
    except GGUFError as error:
        raise GGUFError(f"{path}: {error}" if path is not None else str(error)) from None


def quantize_gguf(w, qtype, *, name: str = "weight") -> GroupQuantized:
    """gguf-py's own quantizer (llama.cpp's reference rounding) for float weights (N, K), imported."""
    import gguf
    label = _type_name(qtype)
    if label not in BLOCK_TYPES:
        raise GGUFError(f"{name}: qtype={label!r}: gguf quantizes {', '.join(BLOCK_TYPES)} here")
    array = w.detach().float().numpy() if isinstance(w, torch.Tensor) else np.asarray(w, dtype=np.float32)
    data = gguf.quants.quantize(array, gguf.GGMLQuantizationType[label])
    return import_gguf(data, array.shape, label, name=name)


# -- the checked reader ------------------------------------------------------------------------

def _checked_reader_class():
    """``GGUFReader`` whose tensor table is checked (type known, data inside the file and not
    running into the next tensor's data) before gguf-py slices the file by it."""
    import gguf

    class CheckedReader(gguf.GGUFReader):
        def _build_tensors(self, start_offs: int, fields: list) -> None:
            extents = []
            for field in fields:
                _, name_data, _, dims, raw_dtype, offset = field.parts
                name = bytes(name_data).decode("utf-8", "replace")
                code = int(raw_dtype[0])
                try:
                    qtype = gguf.GGMLQuantizationType(code)
                    block, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
                except (ValueError, KeyError):
                    raise GGUFError(f"tensor {name!r}: unknown tensor type {code} (gguf {_gguf_version()} "
                                    f"knows {len(gguf.GGML_QUANT_SIZES)} types)") from None
                dims = [int(v) for v in dims]
                if any(v < 1 for v in dims) or dims[0] % block:
                    raise GGUFError(f"tensor {name!r}: {qtype.name} shape {dims} (ggml order) is not whole "
                                    f"{block}-element blocks along ne0")
                start = start_offs + int(offset[0])
                end = start + int(np.prod(dims)) * block_bytes // block
                extents.append((start, end, name, qtype.name, dims))
            size = len(self.data)
            extents.sort()
            for (start, end, name, label, dims), following in zip(extents, extents[1:] + [None]):
                if end > size:
                    raise GGUFError(f"tensor {name!r}: {label} shape {dims} needs bytes {start}..{end} but the "
                                    f"file has {size} bytes: the file is truncated or the tensor's data is "
                                    f"shorter than its shape needs")
                if following is not None and end > following[0]:
                    raise GGUFError(f"tensor {name!r}: {label} shape {dims} needs bytes {start}..{end}, which "
                                    f"runs into tensor {following[2]!r} at byte {following[0]}: its data is "
                                    f"shorter than its shape needs")
            super()._build_tensors(start_offs, fields)

    return CheckedReader


def _gguf_version() -> str:
    from importlib.metadata import version
    return version("gguf")


def read_gguf(path: str | Path):
    """The ``gguf.GGUFReader`` of ``path`` with its tensor table checked (see the module docstring);
    any problem is a :class:`GGUFError` naming the file (and the tensor)."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"{path}: file not found")
    try:
        return _checked_reader_class()(path)
    except GGUFError as error:
        raise GGUFError(f"{path}: {error}") from None
    except Exception as error:      # gguf-py reports a bad header as whatever numpy raised
        detail = (str(error).splitlines() or [""])[0]
        raise GGUFError(f"{path}: not a readable GGUF file ({type(error).__name__}: {detail})") from None


def gguf_tensors(path: str | Path) -> dict:
    """{name: tensor} of a GGUF file, for :func:`sw.checkpoint.import_state_dict` with ``format="gguf"``."""
    return {t.name: t for t in read_gguf(path).tensors}
