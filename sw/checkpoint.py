"""Import group-wise quantized checkpoints (GPTQ, AWQ, compressed-tensors, llama.cpp block types)
into one logical form, :class:`GroupQuantized`, and convert that to the hardware's
:class:`golden.operands.QuantizedWeights`.

The logical form of an N x K weight (N output channels, K the reduction dimension)::

    W[n, k] = scales[n, g_idx[k]] * (codes[n, k] - zeros[n, g_idx[k]])      integer zero points
    W[n, k] = scales[n, g_idx[k]] * codes[n, k] + offsets[n, g_idx[k]]      float offsets (Q4_1)

Every importer un-packs its container layout to logical order and checks every shape, dtype and
value against the published layout (the layouts below, from each format's reference packer);
whatever does not match raises :class:`CheckpointError` naming the tensor, its shape or value
and what was expected. Import is lossless: :meth:`GroupQuantized.dequantize` reproduces the
format's own dequantization exactly.

Layouts (bit ``i`` of an int32 word is ``(word >> i) & 1``; "dense" means the elements of one
packed row form a little-endian bit stream, element ``e`` at stream bits ``b*e .. b*e+b-1``, an
element crossing a word boundary keeping its low bits in the lower word):

GPTQ (AutoGPTQ ``qlinear_cuda_old.pack``, GPTQModel)
    ``qweight`` int32 (K*b/32, N), dense along K for every b in 2/3/4/8 (the 3-bit scheme's
    "10 + 2 | 1 + 10 + 1 | 2 + 10" words over 32 rows is exactly this stream); ``qzeros`` int32
    (G, N*b/32), dense along N, holding ``zero - 1`` in the v1 format ("gptq") and the zero
    itself in v2 ("gptq_v2"); ``scales`` (G, N); optional ``g_idx`` (K,) group of every input
    column (act-order / desc_act).
AWQ (AutoAWQ GEMM)
    4-bit only: ``qweight`` int32 (K, N/8) packed along N, nibble ``i`` of word ``c`` holding
    output channel ``8c + [0, 2, 4, 6, 1, 3, 5, 7][i]``; ``qzeros`` int32 (G, N/8) the same way,
    true zero points; ``scales`` (G, N).
compressed-tensors ``pack-quantized``
    ``weight_packed`` int32 (N, ceil(K*b/32)) dense along K, each value offset-binary
    ``q_signed + 2**(b-1)`` (which is the unsigned code); ``weight_scale`` (N, G);
    asymmetric: ``weight_zero_point`` int32 (ceil(N*b/32), G) dense along N, offset-binary too
    (an unpacked int8 (N, G) signed zero point is also accepted); symmetric: no zero point
    (zero 0 in the signed domain, so ``2**(b-1)`` unsigned); ``weight_shape`` (2,) = (N, K);
    optional ``weight_g_idx`` (K,). Older releases pad each word to ``32 // b`` elements, which
    is the same stream for 2/4/8 bits (they packed only 4 and 8).
llama.cpp Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0
    :mod:`sw.gguf_import` (its names ``import_gguf``, ``import_gguf_tensor`` and ``gguf_tensors``
    are also importable from here).

Hardware mapping (:meth:`GroupQuantized.to_quantized_weights`): the core needs integer zero
points, contiguous groups along K of ``config.group_size`` columns and normal-or-zero FP16
scales. A checkpoint group may be a multiple of the hardware group (its scale and zero are
repeated). Act-order checkpoints (``g_idx`` not ``k // group_size``) need K re-ordered:
:meth:`GroupQuantized.sort_groups` returns the weight with its columns permuted so that groups
are contiguous, and the permutation ``perm``; feeding the activations as ``x[:, perm]`` gives the
same GEMM, since ``sum_k x[m, k] W[n, k]`` is invariant under a common permutation of k.
Float offsets (Q4_1) map to a core configured with ``zero_mode="float_offset"`` (FP16 offsets
per group, exact); an integer-mode core rejects them, and a float-offset core rejects integer
zero points, each with that reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch

from golden.checks import check_finite, check_range, check_tensor, first_index
from golden.numerics import FP16_MAX, FP16_MIN_NORMAL
from golden.operands import OperandError, QuantizedWeights, validate_operands
from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = ["CheckpointError", "GroupQuantized", "CHECKPOINT_FORMATS", "AWQ_ORDER", "import_gptq", "import_awq",
           "import_compressed_tensors", "import_gguf", "import_gguf_tensor", "import_state_dict",
           "gguf_tensors", "hf_quantization_options", "unpack_dense"]

#: Formats understood by :func:`import_state_dict`.
CHECKPOINT_FORMATS = ("gptq", "gptq_v2", "awq", "compressed-tensors", "gguf")
#: AutoAWQ GEMM: nibble i of a word holds element AWQ_ORDER[i] of its 8 output channels.
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
_SCALE_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class CheckpointError(MixPEError, ValueError):
    """A checkpoint tensor is missing, malformed or inconsistent; the message names the tensor, its
    shape or value and what is expected."""


# -- small checks ------------------------------------------------------------------------------

def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{name}: got {type(value).__name__}, expected a tensor")
    return value


def _expect(name: str, value, dtypes: tuple, shape: tuple | None = None, why: str = "",
            rank: int | None = None) -> torch.Tensor:
    """``value`` (a tensor or numpy array) as a tensor, checked by :func:`golden.checks.check_tensor`."""
    value = _as_tensor(name, value)
    check_tensor(CheckpointError, name, value, dtypes, rank=rank, shape=shape, why=why)
    return value


def _check_bits(bits) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= 8:
        raise CheckpointError(f"bits={bits!r}: must be an integer from 1 to 8")


def _resolve_group(group_size, k: int, groups: int, source: str) -> int:
    """Group size from an explicit value (-1/None meaning "infer": K / G) checked against G groups."""
    if group_size is None or group_size == -1:
        if groups < 1 or k % groups:
            raise CheckpointError(f"{source}: {groups} groups do not divide K={k}; pass group_size")
        group_size = k // groups
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise CheckpointError(f"group_size={group_size!r}: must be a positive integer or -1 (one group per row)")
    if k % group_size:
        raise CheckpointError(f"group_size={group_size}: does not divide K={k} (K must be a whole number of groups)")
    if k // group_size != groups:
        raise CheckpointError(f"{source}: {groups} groups, expected K/group_size = {k}/{group_size} = {k // group_size}")
    return group_size


# -- bit unpacking -----------------------------------------------------------------------------

def unpack_dense(name: str, words: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Elements of int32 ``words`` (..., W) packed densely along the last dimension: element e at
    bits ``b*e ..`` of the little-endian stream of W words. Returns int64 (..., count) in
    ``[0, 2**b - 1]``. W must be ``ceil(count*b/32)`` and the padding bits after the last element
    zero."""
    if count < 1 or words.numel() == 0:
        raise CheckpointError(f"{name}: shape {tuple(words.shape)} holds no values (expected {count} >= 1 "
                              f"{bits}-bit values per packed row)")
    needed = -(-count * bits // 32)
    if words.shape[-1] != needed:
        raise CheckpointError(f"{name}: shape {tuple(words.shape)} has {words.shape[-1]} words along the packed "
                              f"dimension, expected ceil({count}*{bits}/32) = {needed} for {count} {bits}-bit values")
    u = words.to(torch.int64) & 0xFFFFFFFF
    start = torch.arange(count) * bits
    word, shift = start // 32, start % 32
    low = u[..., word] >> shift
    crosses = shift + bits > 32
    nxt = torch.clamp(word + 1, max=needed - 1)
    high = torch.where(crosses, u[..., nxt] << (32 - shift), 0)
    values = (low | high) & (2 ** bits - 1)
    used = count * bits - 32 * (needed - 1)          # bits of the last word that carry data
    if used < 32 and (u[..., -1] >> used).any():
        index = first_index((u[..., -1] >> used) != 0)
        raise CheckpointError(f"{name}: padding bits {used}..31 of the last packed word at index {index} are "
                              f"nonzero; after {count} {bits}-bit values they must be zero")
    return values


# -- the logical form --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, eq=False)
class GroupQuantized:
    """Group-wise quantized N x K weight in logical (unpacked, un-interleaved) form.

    codes
        int64 (N, K), unsigned codes in ``[0, 2**bits - 1]``.
    scales
        float16, bfloat16 or float32 (N, G), G = K / group_size; finite.
    bits, group_size
        Code width (1 .. 8) and columns per group (dividing K; every group has exactly that many).
    zeros
        int64 (N, G) integer zero points in ``[0, 2**bits - 1]``: ``W = s * (q - z)``; or
    offsets
        float16/float32 (N, G) float offsets (llama.cpp Q4_1): ``W = s * q + m``. Exactly one of the two.
    g_idx
        int64 (K,), the group of every input column; ``None`` means ``k // group_size`` (stored so).
    name
        Used in error messages (e.g. the checkpoint prefix).
    """

    codes: torch.Tensor
    scales: torch.Tensor
    bits: int
    group_size: int
    zeros: torch.Tensor | None = None
    offsets: torch.Tensor | None = None
    g_idx: torch.Tensor | None = None
    name: str = "weight"

    def __post_init__(self):
        p = self.name
        _check_bits(self.bits)
        codes = _expect(f"{p}.codes", self.codes, (torch.int64,), rank=2, why="unsigned codes, shape (N, K)")
        object.__setattr__(self, "codes", codes)
        n, k = codes.shape
        if n == 0 or k == 0:
            raise CheckpointError(f"{p}.codes: shape {(n, k)} has an empty dimension")
        group = self.group_size
        if not isinstance(group, int) or isinstance(group, bool) or group < 1 or k % group:
            raise CheckpointError(f"{p}: group_size={group!r} does not divide K={k}; "
                                  f"K must be a whole number of groups")
        groups = k // group
        check_range(CheckpointError, f"{p}.codes", codes, 0, 2 ** self.bits - 1, f"the {self.bits}-bit code range")
        scales = _expect(f"{p}.scales", self.scales, _SCALE_DTYPES, (n, groups),
                         f"one scale per output channel and group: N={n} x K/g={k}/{group}")
        check_finite(CheckpointError, f"{p}.scales", scales)
        object.__setattr__(self, "scales", scales)
        if (self.zeros is None) == (self.offsets is None):
            raise CheckpointError(f"{p}: exactly one of zeros (integer zero points) or offsets (float offsets) "
                                  f"must be given")
        if self.zeros is not None:
            zeros = _expect(f"{p}.zeros", self.zeros, (torch.int64,), (n, groups), "integer zero points (N, G)")
            check_range(CheckpointError, f"{p}.zeros", zeros, 0, 2 ** self.bits - 1, f"the {self.bits}-bit code range")
            object.__setattr__(self, "zeros", zeros)
        else:
            offsets = _expect(f"{p}.offsets", self.offsets, (torch.float16, torch.float32), (n, groups),
                              "float offsets (N, G)")
            check_finite(CheckpointError, f"{p}.offsets", offsets)
            object.__setattr__(self, "offsets", offsets)
        if self.g_idx is None:
            object.__setattr__(self, "g_idx", torch.arange(k) // group)
        else:
            g_idx = _expect(f"{p}.g_idx", self.g_idx, (torch.int64,), (k,), "group index of every input column")
            check_range(CheckpointError, f"{p}.g_idx", g_idx, 0, groups - 1, "the group indices")
            object.__setattr__(self, "g_idx", g_idx)
            counts = torch.bincount(g_idx, minlength=groups)
            if (counts != group).any():
                (j,) = first_index(counts != group)
                raise CheckpointError(f"{p}.g_idx: group {j} has {int(counts[j])} columns, expected group_size={group}")

    # -- shape ------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.codes.shape)

    @property
    def groups(self) -> int:
        return self.codes.shape[1] // self.group_size

    @property
    def contiguous_groups(self) -> bool:
        """Whether group j is exactly columns ``j*g .. (j+1)*g - 1`` (no act-order permutation)."""
        return bool(torch.equal(self.g_idx, torch.arange(self.codes.shape[1]) // self.group_size))

    # -- values ------------------------------------------------------------------------------

    def dequantize(self) -> torch.Tensor:
        """Real weights, float64 (N, K).

        Integer zero points: ``s * (q - z)``, exact in float64. Float offsets: ``fp32(s * q) + m``
        evaluated in FP32 (as llama.cpp and gguf-py dequantize Q4_1), then widened exactly."""
        scales = self.scales[:, self.g_idx]
        if self.zeros is not None:
            return (self.codes - self.zeros[:, self.g_idx]).double() * scales.double()
        return (scales.float() * self.codes.float() + self.offsets[:, self.g_idx].float()).double()

    def sort_groups(self) -> tuple[GroupQuantized, torch.Tensor]:
        """(weight with contiguous groups, perm): column i of the result is column ``perm[i]`` of
        this weight (stable: groups in order, each group's columns in their original order).
        Use the activations as ``x[:, perm]``; the GEMM result is unchanged."""
        perm = torch.argsort(self.g_idx, stable=True)
        sorted_ = dataclasses.replace(self, codes=self.codes[:, perm].contiguous(), g_idx=None)
        return sorted_, perm

    def _fp16_exact(self, field: str, values: torch.Tensor) -> torch.Tensor:
        """``values`` (scales or offsets) as FP16, or :class:`CheckpointError` unless every value is
        exactly an FP16 number that is zero or normal (the hardware flushes subnormals)."""
        p, what = self.name, field[:-1]
        wide = values.double()
        half = values.to(torch.float16)
        inexact = half.double() != wide
        if inexact.any():
            index = first_index(inexact)
            value = float(wide[index])
            beyond = f" (beyond the FP16 maximum {FP16_MAX})" if abs(value) > FP16_MAX else ""
            raise CheckpointError(f"{p}.{field}: value {value!r} at index {index} ({values.dtype}) is not "
                                  f"exactly representable in FP16, the hardware's {what} format{beyond}")
        tiny = (wide != 0) & (wide.abs() < FP16_MIN_NORMAL)
        if tiny.any():
            index = first_index(tiny)
            raise CheckpointError(f"{p}.{field}: value {float(wide[index])!r} at index {index} is subnormal in FP16; "
                                  f"the hardware flushes subnormals, so {field} must be zero or >= {FP16_MIN_NORMAL!r}")
        return half

    def to_quantized_weights(self, config: MixPEConfig) -> QuantizedWeights:
        """The hardware operands for ``config``, exactly equal in value, or :class:`CheckpointError`
        saying why this weight is not representable.

        Requires integer zero points (or float offsets exactly representable as zero or normal
        FP16 numbers on a ``zero_mode="float_offset"`` core), contiguous groups (see :meth:`sort_groups`), a group size
        that is a multiple of ``config.group_size`` (scales and zeros are repeated), scales that
        are zero or normal FP16 numbers exactly, and codes/zeros within the configured encoding:
        ``unsigned`` keeps them (they must fit ``config.weight_bits``), ``signed`` re-centres every
        code to ``q - z + 2**(b-1)``, which must stay in ``[0, 2**b - 1]``."""
        p, k = self.name, self.codes.shape[1]
        if self.offsets is not None and not config.float_offset:
            raise CheckpointError(f"{p}: float offsets (llama.cpp Q4_1, w = d*q + m) need the Q4_1 mode "
                                  f"zero_mode='float_offset'; this core has zero_mode={config.zero_mode!r} "
                                  f"(integer zero points only)")
        if self.zeros is not None and config.float_offset:
            raise CheckpointError(f"{p}: integer zero points need zero_mode='integer'; this core has "
                                  f"zero_mode='float_offset' (FP16 float offsets, llama.cpp Q4_1)")
        if not self.contiguous_groups:
            (bad,) = first_index(self.g_idx != torch.arange(k) // self.group_size)
            raise CheckpointError(f"{p}.g_idx: column {bad} is in group {int(self.g_idx[bad])}, not "
                                  f"{bad // self.group_size}: act-order groups are not contiguous along K; call "
                                  f"sort_groups() to permute K (and feed the activations as x[:, perm])")
        if self.group_size % config.group_size:
            raise CheckpointError(f"{p}: group_size={self.group_size} is not a multiple of the hardware "
                                  f"group_size={config.group_size}")
        repeat = self.group_size // config.group_size

        half = self._fp16_exact("scales", self.scales)

        codes, zeros = self.codes, self.zeros
        if config.float_offset:
            offsets = self._fp16_exact("offsets", self.offsets)
            check_range(CheckpointError, f"{p}.codes", codes, 0, config.code_max,
                         f"the hardware's {config.weight_bits}-bit code range (checkpoint has {self.bits} bits)")
            weights = QuantizedWeights(codes=codes.contiguous(),
                                       scales=half.repeat_interleave(repeat, dim=1).contiguous(),
                                       offsets=offsets.repeat_interleave(repeat, dim=1).contiguous())
        elif config.weight_encoding == "signed":
            centre = config.symmetric_zero
            centred = codes - zeros[:, self.g_idx] + centre
            bad = (centred < 0) | (centred > config.code_max)
            if bad.any():
                n, kk = first_index(bad)
                raise CheckpointError(
                    f"{p}: code {int(codes[n, kk])} - zero {int(zeros[n, self.g_idx[kk]])} at index {(n, kk)} is "
                    f"{int(codes[n, kk] - zeros[n, self.g_idx[kk]])}, outside the signed {config.weight_bits}-bit "
                    f"range [{-centre}, {config.code_max - centre}] of weight_encoding='signed'")
            codes, zeros = centred, torch.full_like(zeros, centre)
        else:  # unsigned integer zero points
            check_range(CheckpointError, f"{p}.codes", codes, 0, config.code_max,
                         f"the hardware's {config.weight_bits}-bit code range (checkpoint has {self.bits} bits)")
            check_range(CheckpointError, f"{p}.zeros", zeros, 0, config.code_max,
                         f"the hardware's {config.weight_bits}-bit code range (checkpoint has {self.bits} bits)")
        if not config.float_offset:
            weights = QuantizedWeights(codes=codes.contiguous(),
                                       scales=half.repeat_interleave(repeat, dim=1).contiguous(),
                                       zeros=zeros.repeat_interleave(repeat, dim=1).contiguous())
        try:
            validate_operands(config, torch.zeros((1, k), dtype=torch.int64), None, weights)
        except OperandError as error:            # not expected after the checks above
            raise CheckpointError(f"{p}: {error}") from None
        return weights


# -- GPTQ --------------------------------------------------------------------------------------

def import_gptq(qweight, qzeros, scales, g_idx=None, *, bits: int, group_size: int | None = None,
                checkpoint_format: str = "gptq", wrap_v1_zero: bool = False,
                name: str = "weight") -> GroupQuantized:
    """GPTQ / AutoGPTQ (``checkpoint_format="gptq"``, zeros stored minus one) or GPTQModel v2
    (``"gptq_v2"``, zeros stored as they are) tensors of one Linear.

    ``group_size`` None or -1 infers K / G. A v1 stored zero of ``2**b - 1`` means zero point
    ``2**b`` (v1 cannot store zero 0; the reference kernels then use 2**b): that is an error
    unless ``wrap_v1_zero`` reads it as 0, the quantizer's intent."""
    if checkpoint_format not in ("gptq", "gptq_v2"):
        raise CheckpointError(f"checkpoint_format={checkpoint_format!r}: allowed values are 'gptq' (v1) and 'gptq_v2'")
    _check_bits(bits)
    qweight = _expect(f"{name}.qweight", qweight, (torch.int32,), rank=2, why="int32 (K*bits/32, N), packed along K")
    rows, n = qweight.shape
    if (rows * 32) % bits:
        raise CheckpointError(f"{name}.qweight: shape {tuple(qweight.shape)} has {rows} rows, which is not "
                              f"K*{bits}/32 for a whole K")
    k = rows * 32 // bits
    scales = _expect(f"{name}.scales", scales, _SCALE_DTYPES, rank=2, why="(G, N) group scales")
    if scales.shape[1] != n:
        raise CheckpointError(f"{name}.scales: shape {tuple(scales.shape)}, expected (G, {n}) (N={n} from qweight)")
    groups = scales.shape[0]
    group = _resolve_group(group_size, k, groups, f"{name}.scales of shape {tuple(scales.shape)}")
    check_finite(CheckpointError, f"{name}.scales", scales)                 # indices in the stored (G, N) layout
    if (n * bits) % 32:
        raise CheckpointError(f"{name}.qweight: N={n} output channels do not fill whole int32 words of qzeros "
                              f"at {bits} bits (N*bits must be a multiple of 32)")
    qzeros = _expect(f"{name}.qzeros", qzeros, (torch.int32,), (groups, n * bits // 32),
                     f"int32 (G, N*bits/32) = ({groups}, {n}*{bits}/32), packed along N")
    codes = unpack_dense(f"{name}.qweight", qweight.t(), bits, k)                 # (N, K)
    stored = unpack_dense(f"{name}.qzeros", qzeros, bits, n).t().contiguous()     # (N, G)
    if checkpoint_format == "gptq":
        zeros = stored + 1
        wrapped = zeros == 2 ** bits
        if wrapped.any() and not wrap_v1_zero:
            c, j = first_index(wrapped.t())
            raise CheckpointError(f"{name}.qzeros: stored value {2 ** bits - 1} at group {c}, channel {j} means "
                                  f"zero point {2 ** bits} in the v1 format (stored = zero - 1), outside the "
                                  f"{bits}-bit range; v1 cannot store zero 0 (pass wrap_v1_zero=True to read it "
                                  f"as 0, or checkpoint_format='gptq_v2' if the zeros are stored as they are)")
        zeros = torch.where(wrapped, 0, zeros)
    else:
        zeros = stored
    if g_idx is not None:
        g_idx = _expect(f"{name}.g_idx", g_idx, (torch.int32, torch.int64), (k,),
                        "group index of every input column").to(torch.int64)
    return GroupQuantized(codes=codes, scales=scales.t().contiguous(), zeros=zeros, g_idx=g_idx, bits=bits,
                          group_size=group, name=name)


# -- AWQ ---------------------------------------------------------------------------------------

def _unpack_awq(name: str, words: torch.Tensor) -> torch.Tensor:
    """(R, N/8) AWQ words -> int64 (R, N) logical channels."""
    u = words.to(torch.int64) & 0xFFFFFFFF
    nibbles = (u[..., None] >> (4 * torch.arange(8))) & 0xF               # (R, N/8, 8), nibble i
    inverse = torch.tensor([AWQ_ORDER.index(j) for j in range(8)])        # element j lives in nibble inverse[j]
    return nibbles[..., inverse].reshape(words.shape[0], -1)


def import_awq(qweight, qzeros, scales, *, bits: int = 4, group_size: int | None = None,
               name: str = "weight") -> GroupQuantized:
    """AutoAWQ GEMM tensors of one Linear (4-bit; ``group_size`` None or -1 infers K / G)."""
    if bits != 4:
        raise CheckpointError(f"bits={bits!r}: the AWQ GEMM layout packs 4-bit codes only")
    qweight = _expect(f"{name}.qweight", qweight, (torch.int32,), rank=2, why="int32 (K, N/8), packed along N")
    k, words = qweight.shape
    n = words * 8
    scales = _expect(f"{name}.scales", scales, _SCALE_DTYPES, rank=2, why="(G, N) group scales")
    if scales.shape[1] != n:
        raise CheckpointError(f"{name}.scales: shape {tuple(scales.shape)}, expected (G, {n}) "
                              f"(N = 8 * {words} from qweight)")
    groups = scales.shape[0]
    group = _resolve_group(group_size, k, groups, f"{name}.scales of shape {tuple(scales.shape)}")
    check_finite(CheckpointError, f"{name}.scales", scales)                 # indices in the stored (G, N) layout
    qzeros = _expect(f"{name}.qzeros", qzeros, (torch.int32,), (groups, words), "int32 (G, N/8), packed along N")
    codes = _unpack_awq(f"{name}.qweight", qweight).t().contiguous()
    zeros = _unpack_awq(f"{name}.qzeros", qzeros).t().contiguous()
    return GroupQuantized(codes=codes, scales=scales.t().contiguous(), zeros=zeros, bits=bits, group_size=group,
                          name=name)


# -- compressed-tensors ------------------------------------------------------------------------

def import_compressed_tensors(weight_packed, weight_scale, weight_shape, weight_zero_point=None,
                              weight_g_idx=None, *, bits: int, group_size: int | None = None,
                              symmetric: bool | None = None, name: str = "weight") -> GroupQuantized:
    """compressed-tensors ``pack-quantized`` tensors of one Linear. ``symmetric`` None infers it
    from the presence of ``weight_zero_point``; ``group_size`` None or -1 infers K / G."""
    _check_bits(bits)
    shape = _expect(f"{name}.weight_shape", weight_shape, (torch.int32, torch.int64), (2,), "(N, K) of the weight")
    n, k = (int(v) for v in shape.tolist())
    if n < 1 or k < 1:
        raise CheckpointError(f"{name}.weight_shape: value {(n, k)}, expected positive (N, K)")
    packed = _expect(f"{name}.weight_packed", weight_packed, (torch.int32,), rank=2,
                     why=f"int32 (N, ceil(K*{bits}/32)), packed along K")
    if packed.shape[0] != n:
        raise CheckpointError(f"{name}.weight_packed: shape {tuple(packed.shape)}, expected "
                              f"({n}, {-(-k * bits // 32)}) for weight_shape {(n, k)}")
    scale = _expect(f"{name}.weight_scale", weight_scale, _SCALE_DTYPES, rank=2, why="(N, G) group scales")
    if scale.shape[0] != n:
        raise CheckpointError(f"{name}.weight_scale: shape {tuple(scale.shape)}, expected ({n}, G)")
    groups = scale.shape[1]
    group = _resolve_group(group_size, k, groups, f"{name}.weight_scale of shape {tuple(scale.shape)}")
    if symmetric is None:
        symmetric = weight_zero_point is None
    offset = 2 ** (bits - 1)
    codes = unpack_dense(f"{name}.weight_packed", packed, bits, k)
    if symmetric:
        if weight_zero_point is not None:
            zp = _as_tensor(f"{name}.weight_zero_point", weight_zero_point)
            if zp.any():
                raise CheckpointError(f"{name}.weight_zero_point: nonzero values in a symmetric checkpoint "
                                      f"(expected none or all zero)")
        zeros = torch.full((n, groups), offset, dtype=torch.int64)
    else:
        if weight_zero_point is None:
            raise CheckpointError(f"{name}.weight_zero_point: missing; an asymmetric checkpoint stores one "
                                  f"zero point per channel and group")
        zp = _as_tensor(f"{name}.weight_zero_point", weight_zero_point)
        if zp.dtype == torch.int8 and tuple(zp.shape) == (n, groups):
            check_range(CheckpointError, f"{name}.weight_zero_point", zp, -offset, offset - 1,
                        f"the signed {bits}-bit range")
            zeros = zp.to(torch.int64) + offset
        else:
            zp = _expect(f"{name}.weight_zero_point", zp, (torch.int32,), rank=2,
                         why=f"int32 (ceil(N*{bits}/32), G) packed along N, or int8 (N, G) = ({n}, {groups}) unpacked")
            if zp.shape[1] != groups:
                raise CheckpointError(f"{name}.weight_zero_point: shape {tuple(zp.shape)}, expected "
                                      f"({-(-n * bits // 32)}, {groups})")
            zeros = unpack_dense(f"{name}.weight_zero_point", zp.t(), bits, n).t().contiguous()
    if weight_g_idx is not None:
        weight_g_idx = _expect(f"{name}.weight_g_idx", weight_g_idx, (torch.int32, torch.int64), (k,),
                               "group index of every input column").to(torch.int64)
    return GroupQuantized(codes=codes, scales=scale, zeros=zeros, g_idx=weight_g_idx, bits=bits, group_size=group,
                          name=name)


# -- state dicts -------------------------------------------------------------------------------

_TENSOR_NAMES = {
    "gptq": (("qweight", "qzeros", "scales"), ("g_idx",)),
    "gptq_v2": (("qweight", "qzeros", "scales"), ("g_idx",)),
    "awq": (("qweight", "qzeros", "scales"), ()),
    "compressed-tensors": (("weight_packed", "weight_scale", "weight_shape"), ("weight_zero_point", "weight_g_idx")),
    "gguf": (("weight",), ()),
}


def import_state_dict(prefix: str, state_dict: Mapping, format: str, **options) -> GroupQuantized:
    """Import the Linear at ``prefix`` from tensors under their published names
    (``f"{prefix}.qweight"`` etc.; an empty prefix means bare names).

    gptq / gptq_v2
        ``qweight``, ``qzeros``, ``scales``, optional ``g_idx``; options ``bits``, ``group_size``,
        ``wrap_v1_zero``.
    awq
        ``qweight``, ``qzeros``, ``scales``; options ``bits`` (4), ``group_size``.
    compressed-tensors
        ``weight_packed``, ``weight_scale``, ``weight_shape``, ``weight_zero_point`` (asymmetric),
        optional ``weight_g_idx``; options ``bits``, ``group_size``, ``symmetric``.
    gguf
        ``weight``: a tensor of ``gguf.GGUFReader`` (see :func:`gguf_tensors`) of a type in
        :data:`sw.gguf_import.BLOCK_TYPES`.

    ``bits`` and ``group_size`` can come from :func:`hf_quantization_options`.
    """
    if format not in CHECKPOINT_FORMATS:
        raise CheckpointError(f"format={format!r}: allowed values are {CHECKPOINT_FORMATS}")
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"state_dict: got {type(state_dict).__name__}, expected a mapping of names to tensors")
    required, optional = _TENSOR_NAMES[format]
    key = (lambda leaf: f"{prefix}.{leaf}") if prefix else (lambda leaf: leaf)
    missing = [key(leaf) for leaf in required if key(leaf) not in state_dict]
    if missing:
        near = sorted(name for name in state_dict if prefix and str(name).startswith(prefix))
        raise CheckpointError(f"{missing[0]}: missing from the state dict (format {format!r} needs "
                              f"{[key(leaf) for leaf in required]}; present under {prefix!r}: {near[:12]})")
    t = {leaf: state_dict.get(key(leaf)) for leaf in required + optional}
    label = prefix or "weight"
    try:
        if format in ("gptq", "gptq_v2"):
            if "checkpoint_format" in options and options["checkpoint_format"] != format:
                raise CheckpointError(f"checkpoint_format={options['checkpoint_format']!r} contradicts "
                                      f"format={format!r}")
            options = {k: v for k, v in options.items() if k != "checkpoint_format"}
            return import_gptq(t["qweight"], t["qzeros"], t["scales"], t["g_idx"], checkpoint_format=format,
                               name=label, **options)
        if format == "awq":
            return import_awq(t["qweight"], t["qzeros"], t["scales"], name=label, **options)
        if format == "compressed-tensors":
            return import_compressed_tensors(t["weight_packed"], t["weight_scale"], t["weight_shape"],
                                             t["weight_zero_point"], t["weight_g_idx"], name=label, **options)
        if options:
            raise CheckpointError(f"format 'gguf': unexpected options {sorted(options)}")
        tensor = t["weight"]
        for attribute in ("data", "shape", "tensor_type"):
            if not hasattr(tensor, attribute):
                raise CheckpointError(f"{key('weight')}: got {type(tensor).__name__}, expected a GGUF reader tensor "
                                      f"with data, shape and tensor_type")
        from sw.gguf_import import import_gguf, numpy_shape
        return import_gguf(tensor.data, numpy_shape(tensor), tensor.tensor_type, name=key("weight"))
    except TypeError as error:          # unknown or missing keyword option
        raise CheckpointError(f"format {format!r}: {error}") from None


def hf_quantization_options(quantization_config: Mapping) -> tuple[str, dict]:
    """(format, options) for :func:`import_state_dict` from a Hugging Face ``quantization_config``
    (``quant_method`` gptq / awq / compressed-tensors with one int config group)."""
    qc = dict(quantization_config)
    method = qc.get("quant_method")
    if method == "gptq":
        fmt = qc.get("checkpoint_format", "gptq")
        if fmt not in ("gptq", "gptq_v2"):
            raise CheckpointError(f"quantization_config.checkpoint_format={fmt!r}: only 'gptq' and 'gptq_v2' "
                                  f"(packed GPTQ) are imported")
        return fmt, {"bits": int(qc["bits"]), "group_size": int(qc.get("group_size", -1))}
    if method == "awq":
        version = str(qc.get("version", "gemm")).lower()
        if version != "gemm":
            raise CheckpointError(f"quantization_config.version={version!r}: only the AWQ 'gemm' layout is imported")
        return "awq", {"bits": int(qc.get("bits", qc.get("w_bit", 4))),
                       "group_size": int(qc.get("group_size", qc.get("q_group_size", -1)))}
    if method == "compressed-tensors":
        if qc.get("format") != "pack-quantized":
            raise CheckpointError(f"quantization_config.format={qc.get('format')!r}: only 'pack-quantized' is imported")
        groups = qc.get("config_groups") or {}
        if len(groups) != 1:
            raise CheckpointError(f"quantization_config.config_groups: {len(groups)} groups, expected exactly one")
        weights = next(iter(groups.values())).get("weights") or {}
        if weights.get("type", "int") != "int" or weights.get("strategy") not in ("group", "channel"):
            raise CheckpointError(f"quantization_config weights {weights!r}: expected type 'int' with strategy "
                                  f"'group' or 'channel'")
        group = weights.get("group_size") if weights.get("strategy") == "group" else -1
        return "compressed-tensors", {"bits": int(weights["num_bits"]), "group_size": int(group or -1),
                                      "symmetric": bool(weights.get("symmetric", True))}
    raise CheckpointError(f"quantization_config.quant_method={method!r}: allowed values are 'gptq', 'awq', "
                          f"'compressed-tensors'")


def __getattr__(name: str):
    """The llama.cpp importers, which live in :mod:`sw.gguf_import` (it builds on this module)."""
    if name in _GGUF_NAMES:
        from sw import gguf_import
        return getattr(gguf_import, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_GGUF_NAMES = ("import_gguf", "import_gguf_tensor", "gguf_tensors")
