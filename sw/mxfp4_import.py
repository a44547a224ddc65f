"""gpt-oss-style MXFP4 expert weights (safetensors ``*_blocks`` / ``*_scales``) to their logical
form, FP4 E2M1 codes and E8M0 exponents, and to the core's FP4 operands.

Layout (OpenAI gpt-oss checkpoints; transformers' ``integrations/mxfp4.py`` reads them so)::

    <name>_blocks  uint8 (..., N, K/32, 16)   two E2M1 codes per byte: element 2j in the low
                                              nibble of byte j, element 2j + 1 in the high nibble
    <name>_scales  uint8 (..., N, K/32)       E8M0 exponent e per block of 32: scale 2^(e - 127)

N are the output channels (``gate_up_proj``: 2 x intermediate; ``down_proj``: hidden), K the
reduction, the leading dimension the experts. An E2M1 code c is sign ``c[3]``, exponent
``c[2:1]``, mantissa ``c[0]``: the magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 (half of
:data:`hw.codes.E2M1_DOUBLED`). ``W = E2M1(c) * 2^(e - 127)``, exact in float64.

llama.cpp's MXFP4 blocks (gguf ``MXFP4``, 17 bytes: ``e``, then 16 bytes with element j in the low
nibble of byte j and element j + 16 in the high one) hold the same two fields:
:meth:`MXFP4Weights.to_ggml` and :func:`from_ggml` convert, which is how the tests check this
importer against gguf-py's MXFP4 ``quantize`` and ``dequantize``.

On the core (:func:`core_for_mxfp4`): ``weight_format="fp4_e2m1"`` (the PE multiplies by twice the
E2M1 value), ``scale_format="e8m0"``, g = 32, zero points 0; the operands hold the codes and
exponents as they are. (E8M0 codes 0 and 1, 2^-127 and 2^-126, are FP32 subnormals once halved
for FP4: the GDU flushes them to zero, within the model's error bound; llama.cpp gives a block of
zeros e = 0.) Code 255 (NaN) is refused at import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch

from hw.codes import E2M1_DOUBLED
from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError

__all__ = ["MXFP4_BLOCK", "E8M0_BIAS", "E2M1_VALUES", "MXFP4Weights", "import_mxfp4", "mxfp4_tensors", "from_ggml",
           "core_for_mxfp4"]

MXFP4_BLOCK = 32
E8M0_BIAS = 127
E8M0_NAN = 255
#: The real value of each 4-bit E2M1 code (codes 8 .. 15 are the negatives, 8 is -0).
E2M1_VALUES = tuple(value / 2 for value in E2M1_DOUBLED) + tuple(-value / 2 for value in E2M1_DOUBLED)
_GGML_BYTES = 1 + MXFP4_BLOCK // 2


@dataclasses.dataclass(frozen=True, eq=False)
class MXFP4Weights:
    """MXFP4 weights (..., N, K) in logical form: ``codes`` int64 (..., N, K) E2M1 codes 0 .. 15,
    ``exponents`` int64 (..., N, K/32) E8M0 codes 0 .. 254 (scale 2^(e - 127))."""
    codes: torch.Tensor
    exponents: torch.Tensor
    name: str = "weight"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.codes.shape)

    def dequantize(self) -> torch.Tensor:
        """float64 (..., N, K): ``E2M1(code) * 2^(e - 127)``, exact."""
        values = torch.tensor(E2M1_VALUES, dtype=torch.float64)[self.codes]
        scale = torch.pow(2.0, (self.exponents - E8M0_BIAS).double())
        return values * scale.repeat_interleave(MXFP4_BLOCK, dim=-1)

    def expert(self, index: int) -> MXFP4Weights:
        """The 2-D weight of expert ``index`` (the leading dimension of a 3-D tensor)."""
        if self.codes.dim() != 3:
            raise CheckpointError(f"{self.name}: shape {self.shape} has no expert dimension (expected 3-D)")
        return MXFP4Weights(self.codes[index], self.exponents[index], f"{self.name}[{index}]")

    def to_ggml(self) -> np.ndarray:
        """llama.cpp MXFP4 blocks uint8 (..., N, K/32 * 17) of the same weights."""
        codes = self.codes.numpy().astype(np.uint8).reshape(*self.exponents.shape, 2, MXFP4_BLOCK // 2)
        qs = codes[..., 0, :] | (codes[..., 1, :] << 4)
        blocks = np.concatenate([self.exponents.numpy().astype(np.uint8)[..., None], qs], axis=-1)
        return blocks.reshape(*self.exponents.shape[:-1], -1)

    def to_quantized_weights(self, config: MixPEConfig):
        """The core's operands (:class:`golden.operands.QuantizedWeights`) of a 2-D weight, for a
        core of :func:`core_for_mxfp4`."""
        from golden.operands import QuantizedWeights
        if self.codes.dim() != 2:
            raise CheckpointError(f"{self.name}: shape {self.shape}: the core takes one 2-D weight; use expert(i)")
        if (config.weight_format, config.scale_format, config.group_size) != ("fp4_e2m1", "e8m0", MXFP4_BLOCK):
            raise CheckpointError(f"{self.name}: MXFP4 needs weight_format='fp4_e2m1', scale_format='e8m0' and "
                                  f"group_size=32; this core has {config.weight_format!r}, {config.scale_format!r}, "
                                  f"{config.group_size}")
        scales = self.exponents.to(torch.uint8).view(torch.float8_e8m0fnu)
        return QuantizedWeights(codes=self.codes.contiguous(), scales=scales.contiguous(),
                                zeros=torch.zeros(self.exponents.shape, dtype=torch.int64))


def _as_uint8(name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{name}: got {type(value).__name__}, expected a tensor")
    if value.dtype != torch.uint8:
        raise CheckpointError(f"{name}: dtype {value.dtype}, expected torch.uint8 (packed E2M1 codes / E8M0 "
                              f"exponents)")
    return value


def import_mxfp4(blocks, scales, *, name: str = "weight") -> MXFP4Weights:
    """``<name>_blocks`` uint8 (..., N, K/32, 16) and ``<name>_scales`` uint8 (..., N, K/32)."""
    blocks = _as_uint8(f"{name}_blocks", blocks)
    scales = _as_uint8(f"{name}_scales", scales)
    if blocks.dim() < 3 or blocks.shape[-1] != MXFP4_BLOCK // 2 or 0 in blocks.shape:
        raise CheckpointError(f"{name}_blocks: shape {tuple(blocks.shape)}, expected (..., N, K/32, 16): 16 bytes "
                              f"of two E2M1 codes per block of 32")
    if tuple(scales.shape) != tuple(blocks.shape[:-1]):
        raise CheckpointError(f"{name}_scales: shape {tuple(scales.shape)}, expected {tuple(blocks.shape[:-1])}: "
                              f"one E8M0 exponent per block of {name}_blocks")
    nan = scales == E8M0_NAN
    if nan.any():
        index = tuple(int(i) for i in torch.nonzero(nan)[0])
        raise CheckpointError(f"{name}_scales: E8M0 code 255 (NaN) at index {index}; a scale must be finite")
    packed = blocks.to(torch.int64)
    codes = torch.stack([packed & 0xF, packed >> 4], dim=-1)         # element 2j low nibble, 2j + 1 high
    return MXFP4Weights(codes.reshape(*blocks.shape[:-2], -1), scales.to(torch.int64), name)


def mxfp4_tensors(state: Mapping, prefix: str = "") -> dict[str, MXFP4Weights]:
    """Every ``*_blocks`` / ``*_scales`` pair under ``prefix`` of a state dict (or lazy mapping),
    imported: {name without the suffix: weights}. A ``_blocks`` without its ``_scales`` is an error."""
    found = {}
    for key in sorted(k for k in state if str(k).startswith(prefix) and str(k).endswith("_blocks")):
        base = key[:-len("_blocks")]
        if f"{base}_scales" not in state:
            raise CheckpointError(f"{base}_scales: missing; {key} needs its E8M0 exponents")
        found[base] = import_mxfp4(state[key], state[f"{base}_scales"], name=base)
    return found


def from_ggml(data: np.ndarray, shape: tuple[int, ...], name: str = "weight") -> MXFP4Weights:
    """llama.cpp MXFP4 blocks (gguf-py's ``quantize`` output, uint8 (..., N, K/32 * 17)) of
    weights of numpy ``shape`` (..., N, K)."""
    *lead, k = shape
    if k % MXFP4_BLOCK or data.size != int(np.prod(lead, dtype=np.int64)) * (k // MXFP4_BLOCK) * _GGML_BYTES:
        raise CheckpointError(f"{name}: {data.size} bytes are not MXFP4 blocks of shape {tuple(shape)}")
    blocks = np.ascontiguousarray(data, dtype=np.uint8).reshape(*lead, k // MXFP4_BLOCK, _GGML_BYTES)
    qs = blocks[..., 1:].astype(np.int64)
    codes = np.concatenate([qs & 0xF, qs >> 4], axis=-1).reshape(*lead, k)
    return MXFP4Weights(torch.from_numpy(codes), torch.from_numpy(blocks[..., 0].astype(np.int64)), name)


def core_for_mxfp4(base: MixPEConfig) -> MixPEConfig:
    """``base`` (array size, activation format, GDU) with MXFP4's weight fields."""
    return base.replace(weight_bits=4, weight_format="fp4_e2m1", scale_format="e8m0", group_size=MXFP4_BLOCK,
                        weight_encoding="unsigned", zero_mode="integer",
                        name=f"mxfp4-{base.activation}-{base.rows}x{base.cols}")
