"""gguf's FP4 tensor types, MXFP4 and NVFP4, imported as E2M1 codes with their group scales and
mapped to the core's FP4 modes (``weight_format="fp4_e2m1"``).

Block layouts (gguf-py ``quants.py``; both keep the codes as indices into the doubled E2M1 table
``kvalues`` = 0, 1, 2, 3, 4, 6, 8, 12 and their negatives, which is :data:`hw.codes.E2M1_DOUBLED`
with the sign in bit 3, the core's own FP4 code)::

    MXFP4  e, qs[16]                 32 weights, 17 bytes: E8M0 e, then element j in the low
                                     nibble of byte j and j + 16 in the high one
                                     (:func:`sw.mxfp4_import.from_ggml`); w = E2M1(q) * 2^(e - 127)
    NVFP4  s[4], qs[4][8]            64 weights, 36 bytes: one unsigned E4M3 (UE4M3) scale per
                                     16, then per 16-weight sub-block 8 bytes, element j in the
                                     low nibble of byte j and j + 8 in the high one;
                                     w = E2M1(q) * UE4M3(s)

gguf-py decodes a UE4M3 byte from its low 7 bits (bit 7 is ignored), 0 and 0x7F to 0. On the core
(``scale_format="e4m3"``, g = 16) a scale byte with bit 7 clear is the same bits as a positive
E4M3; 0x7F, E4M3's NaN, is given to the core as +0 (gguf's value, so the import stays exact);
a byte with bit 7 set goes as its low 7 bits, except 0xFF (480 to gguf, above E4M3's 448),
which no core scale holds: such a tensor imports but is not on the array. MXFP4's E8M0 code 255
(gguf: 2^128, E8M0's NaN) is likewise not on the array. NVFP4's FP32 tensor scale is not part of
a gguf NVFP4 block (llama.cpp keeps it as a separate tensor), so none is applied here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError
from sw.mxfp4_import import E2M1_VALUES, from_ggml

__all__ = ["FP4_TYPES", "FP4Type", "NVFP4Weights", "import_fp4", "core_for_fp4"]


@dataclasses.dataclass(frozen=True)
class FP4Type:
    """One gguf FP4 type: weights and bytes per ``block``, weights per scale ``group``, the core's
    ``scale_format``."""
    block: int
    block_bytes: int
    group: int
    scale_format: str


FP4_TYPES = {
    "MXFP4": FP4Type(block=32, block_bytes=17, group=32, scale_format="e8m0"),
    "NVFP4": FP4Type(block=64, block_bytes=36, group=16, scale_format="e4m3"),
}
_NVFP4 = FP4_TYPES["NVFP4"]
_UE4M3_ZERO = 0x7F                   # gguf decodes it to 0; E4M3's NaN
_UE4M3_TOO_LARGE = 0xFF              # gguf: 480, not an E4M3 value


def _ue4m3_values(scale_bytes: torch.Tensor) -> torch.Tensor:
    """float64 UE4M3 values of scale bytes as gguf-py reads them (low 7 bits; 0 and 0x7F are 0)."""
    exponent = (scale_bytes >> 3) & 0xF
    mantissa = (scale_bytes & 0x7).double()
    values = torch.where(exponent == 0, mantissa * 2.0 ** -9, (1 + mantissa / 8) * torch.pow(2.0, exponent - 7.0))
    return torch.where((scale_bytes == 0) | (scale_bytes == _UE4M3_ZERO), 0.0, values)


@dataclasses.dataclass(frozen=True, eq=False)
class NVFP4Weights:
    """gguf NVFP4 weights (N, K): ``codes`` int64 (N, K) E2M1 codes 0 .. 15, ``scale_bytes`` int64
    (N, K/16) the UE4M3 bytes as stored."""
    codes: torch.Tensor
    scale_bytes: torch.Tensor
    name: str = "weight"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    def dequantize(self) -> torch.Tensor:
        """float64 (N, K): ``E2M1(code) * UE4M3(s)``, exact (gguf's FP32 products are exact too)."""
        values = torch.tensor(E2M1_VALUES, dtype=torch.float64)[self.codes]
        return values * _ue4m3_values(self.scale_bytes).repeat_interleave(_NVFP4.group, dim=-1)

    def to_quantized_weights(self, config: MixPEConfig):
        """The core's operands for a core of :func:`core_for_fp4` ("NVFP4"): E4M3 scales of the same
        value (see the module docstring), zero points 0."""
        from golden.operands import QuantizedWeights
        if (config.weight_format, config.scale_format, config.group_size) != ("fp4_e2m1", "e4m3", _NVFP4.group):
            raise CheckpointError(f"{self.name}: NVFP4 needs weight_format='fp4_e2m1', scale_format='e4m3' and "
                                  f"group_size=16; this core has {config.weight_format!r}, {config.scale_format!r}, "
                                  f"{config.group_size}")
        too_large = self.scale_bytes == _UE4M3_TOO_LARGE
        if too_large.any():
            index = tuple(int(i) for i in torch.nonzero(too_large)[0])
            raise CheckpointError(f"{self.name}: UE4M3 scale byte 0xFF (480) at group {index} exceeds E4M3's 448; "
                                  f"no core scale holds it")
        low = self.scale_bytes & 0x7F
        e4m3 = torch.where(low == _UE4M3_ZERO, 0, low).to(torch.uint8).view(torch.float8_e4m3fn)
        return QuantizedWeights(codes=self.codes.contiguous(), scales=e4m3.contiguous(),
                                zeros=torch.zeros(self.scale_bytes.shape, dtype=torch.int64))


def _nvfp4_from_blocks(blocks: np.ndarray, n: int, k: int, name: str) -> NVFP4Weights:
    """Raw NVFP4 blocks uint8 (N, K/64, 36) in logical form."""
    sub_blocks = _NVFP4.block // _NVFP4.group
    scale_bytes = blocks[..., :sub_blocks].astype(np.int64).reshape(n, k // _NVFP4.group)
    qs = blocks[..., sub_blocks:].astype(np.int64).reshape(n, k // _NVFP4.group, _NVFP4.group // 2)
    codes = np.concatenate([qs & 0xF, qs >> 4], axis=-1).reshape(n, k)      # byte j: elem j low, j + 8 high
    return NVFP4Weights(torch.from_numpy(codes), torch.from_numpy(scale_bytes), name)


class _CheckedMXFP4:
    """:class:`sw.mxfp4_import.MXFP4Weights` whose E8M0 code 255 (gguf's 2^128) is refused for the core."""

    def __init__(self, weights):
        self.weights = weights
        self.shape = weights.shape

    def dequantize(self) -> torch.Tensor:
        return self.weights.dequantize()

    def to_quantized_weights(self, config: MixPEConfig):
        nan = self.weights.exponents == 255
        if nan.any():
            index = tuple(int(i) for i in torch.nonzero(nan)[0])
            raise CheckpointError(f"{self.weights.name}: E8M0 code 255 at group {index} is NaN on the core "
                                  f"(gguf reads 2^128); no core scale holds it")
        return self.weights.to_quantized_weights(config)


def import_fp4(data: np.ndarray, shape, label: str, *, name: str = "weight"):
    """Raw blocks uint8 (N, bytes per row) of an (N, K) ``label`` ("MXFP4" or "NVFP4") weight: an
    object with ``shape``, ``dequantize()`` (float64, exact) and ``to_quantized_weights(config)``."""
    from sw.gguf_import import GGUFError
    if label not in FP4_TYPES:
        raise GGUFError(f"{name}: tensor type {label!r} is not an FP4 type ({', '.join(FP4_TYPES)})")
    layout = FP4_TYPES[label]
    n, k = (int(v) for v in shape)
    expected = n * (k // layout.block) * layout.block_bytes
    if n < 1 or k < 1 or k % layout.block or data.dtype != np.uint8 or data.size != expected:
        raise GGUFError(f"{name}: {data.dtype} data of {data.size} bytes for shape {(n, k)}, expected {expected} "
                        f"bytes: {n} rows of K/{layout.block} {label} blocks of {layout.block_bytes} bytes")
    if label == "MXFP4":
        return _CheckedMXFP4(from_ggml(data, (n, k), name))
    return _nvfp4_from_blocks(np.ascontiguousarray(data).reshape(n, k // layout.block, layout.block_bytes), n, k, name)


def core_for_fp4(label: str, base: MixPEConfig) -> MixPEConfig:
    """``base`` (array size, activation format, GDU) with the FP4 type's weight fields."""
    layout = FP4_TYPES[label]
    return base.replace(weight_bits=4, weight_format="fp4_e2m1", scale_format=layout.scale_format,
                        group_size=layout.group, weight_encoding="unsigned", zero_mode="integer", scale_mode="flat",
                        name=f"gguf-{label.lower()}-{base.activation}-{base.rows}x{base.cols}")
