"""Group-wise weight quantization along K: round-to-nearest (RTN) and GPTQ, with an error report.

Both quantizers return the logical form :class:`sw.checkpoint.GroupQuantized` (codes, FP16 scales,
integer zero points, ``g_idx``), which :meth:`~sw.checkpoint.GroupQuantized.to_quantized_weights`
turns into the hardware's operands.

Group parameters and codes are golden's round-to-nearest ones
(:func:`golden.operands.rtn_group_params`, :func:`golden.operands.rtn_codes`): asymmetric
(``symmetric=False``, ``weight_encoding="unsigned"``) with a zero point per group, or symmetric
(``symmetric=True``, ``weight_encoding="signed"``) with every zero point ``2**(b-1)``; FP16
scales of at least 2**-14. So :func:`rtn_quantize` equals
:func:`golden.operands.quantize_weights_rtn` for the matching configuration, bit for bit.

GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers", 2022, Algorithm 1, and its reference implementation): with calibration
activations X (M, K), H = 2 X^T X (the reference averages over samples; the scale cancels
against the relative dampening). Columns with H[k, k] = 0 (never excited) get H[k, k] = 1 and
weight 0, as in the reference. H += damp * mean(diag H) * I; U = the upper Cholesky factor of
H^-1. Columns are quantized one at a time; each column's error ``(w - dequant(q)) / U[k, k]`` is
fed back into the not yet quantized columns through row k of U (lazily per block of columns, a
multiple of the group size, so a group never straddles a block). A group's scale and zero are
fixed when its first column is reached, from the group's current (error-compensated) weights.
With ``act_order`` the columns are processed in decreasing order of diag(H) and groups are formed
in that order; ``g_idx`` records the group of each original column and codes are stored in the
original column order (``GroupQuantized.sort_groups`` makes the groups contiguous for the core).
"""

from __future__ import annotations

import dataclasses

import torch

from golden.checks import real_matrix
from golden.operands import OperandError, rtn_codes, rtn_group_params
from hw.config import WEIGHT_BITS, MixPEConfig
from hw.errors import MixPEError
from sw.checkpoint import GroupQuantized
from sw.settings import QUANT_METHODS

__all__ = ["QuantizationError", "QuantReport", "QUANT_METHODS", "rtn_quantize", "hessian",
           "gptq_quantize", "quantize", "quantization_report", "format_reports"]

QUANT_BITS = WEIGHT_BITS


class QuantizationError(MixPEError, ValueError):
    """Invalid quantizer input; the message names the argument, its shape or value and what is allowed."""


def _check_weight(w, group_size: int, bits: int) -> torch.Tensor:
    wide = real_matrix(QuantizationError, "w", w, "(N, K)", "weights")
    if bits not in QUANT_BITS:
        raise QuantizationError(f"bits={bits!r}: allowed values are {QUANT_BITS}")
    n, k = wide.shape
    if not isinstance(group_size, int) or isinstance(group_size, bool) or group_size < 1:
        raise QuantizationError(f"group_size={group_size!r}: must be a positive integer")
    if n == 0 or k == 0 or k % group_size:
        raise QuantizationError(f"w: shape {(n, k)}; N must be >= 1 and K a positive multiple of "
                                f"group_size={group_size}")
    return wide


def _group_params(w_group: torch.Tensor, bits: int, symmetric: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`golden.operands.rtn_group_params` with its error raised as :class:`QuantizationError`."""
    try:
        return rtn_group_params(w_group, bits, symmetric, name="w")
    except OperandError as error:
        raise QuantizationError(str(error)) from None


def rtn_quantize(w: torch.Tensor, *, bits: int, group_size: int, symmetric: bool = False,
                 name: str = "weight") -> GroupQuantized:
    """Round-to-nearest group-wise quantization of real weights w (N, K) along K (see the module docstring)."""
    wide = _check_weight(w, group_size, bits)
    n, k = wide.shape
    grouped = wide.view(n, k // group_size, group_size)
    scales, zeros = _group_params(grouped, bits, symmetric)
    codes = rtn_codes(grouped, scales.double()[..., None], zeros[..., None], bits).reshape(n, k)
    return GroupQuantized(codes=codes, scales=scales, zeros=zeros, bits=bits, group_size=group_size, name=name)


def hessian(x: torch.Tensor) -> torch.Tensor:
    """H = 2 X^T X, float64 (K, K), of calibration activations x (M, K)."""
    wide = real_matrix(QuantizationError, "x", x, "(M, K)", "calibration activations")
    if wide.shape[0] == 0:
        raise QuantizationError(f"x: shape {tuple(wide.shape)}; needs M >= 1 calibration tokens")
    return 2 * wide.T @ wide


def gptq_quantize(w: torch.Tensor, x: torch.Tensor | None = None, *, bits: int, group_size: int,
                  symmetric: bool = False, damp: float = 0.01, act_order: bool = False,
                  hessian_matrix: torch.Tensor | None = None, block_size: int = 128,
                  name: str = "weight") -> GroupQuantized:
    """GPTQ quantization of w (N, K) with calibration activations x (M, K) (or a precomputed
    ``hessian_matrix`` H (K, K)); see the module docstring. Deterministic (no randomness)."""
    wide = _check_weight(w, group_size, bits)
    n, k = wide.shape
    if (x is None) == (hessian_matrix is None):
        raise QuantizationError("gptq_quantize: pass exactly one of x (calibration activations) or hessian_matrix")
    if x is not None:
        if isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[1] != k:
            raise QuantizationError(f"x: shape {tuple(x.shape)}, expected (M, {k}) to match w of shape {(n, k)}")
        h = hessian(x)
    else:
        if not isinstance(hessian_matrix, torch.Tensor) or tuple(hessian_matrix.shape) != (k, k):
            raise QuantizationError(f"hessian_matrix: expected a ({k}, {k}) tensor, got shape "
                                    f"{tuple(getattr(hessian_matrix, 'shape', ()))}")
        h = hessian_matrix.double().clone()
    if not (isinstance(damp, (int, float)) and damp > 0):
        raise QuantizationError(f"damp={damp!r}: must be a positive number (relative to mean(diag H))")
    weights = wide.clone()
    diag = torch.diagonal(h)
    dead = diag == 0
    h[dead, dead] = 1
    weights[:, dead] = 0
    perm = torch.argsort(torch.diagonal(h), descending=True, stable=True) if act_order else torch.arange(k)
    weights = weights[:, perm]
    h = h[perm][:, perm]
    h += damp * torch.diagonal(h).mean() * torch.eye(k, dtype=torch.float64)
    try:
        lower = torch.linalg.cholesky(h)
        upper = torch.linalg.cholesky(torch.cholesky_inverse(lower), upper=True)
    except RuntimeError as error:       # torch.linalg.LinAlgError derives from RuntimeError
        raise QuantizationError(f"hessian: not positive definite after dampening damp={damp} ({error}); "
                                f"increase damp") from None

    groups = k // group_size
    codes = torch.empty((n, k), dtype=torch.int64)
    scales = torch.empty((n, groups), dtype=torch.float16)
    zeros = torch.empty((n, groups), dtype=torch.int64)
    block = group_size * max(1, block_size // group_size)
    for b0 in range(0, k, block):
        b1 = min(b0 + block, k)
        w1 = weights[:, b0:b1].clone()
        u1 = upper[b0:b1, b0:b1]
        err1 = torch.zeros_like(w1)
        for i in range(b1 - b0):
            col = b0 + i
            if col % group_size == 0:
                j = col // group_size
                scales[:, j], zeros[:, j] = _group_params(w1[:, i:i + group_size], bits, symmetric)
                scale, zero = scales[:, j].double(), zeros[:, j]
            column = w1[:, i]
            q = rtn_codes(column, scale, zero, bits)
            codes[:, col] = q
            err = (column - (q - zero).double() * scale) / u1[i, i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            err1[:, i] = err
        weights[:, b1:] -= err1 @ upper[b0:b1, b1:]

    g_idx = None
    if act_order:
        inverse = torch.argsort(perm)
        codes = codes[:, inverse].contiguous()
        g_idx = (torch.arange(k) // group_size)[inverse].contiguous()
    return GroupQuantized(codes=codes, scales=scales, zeros=zeros, g_idx=g_idx, bits=bits, group_size=group_size,
                          name=name)


def quantize(config: MixPEConfig, w: torch.Tensor, x: torch.Tensor | None = None, *, method: str = "rtn",
             act_order: bool = False, damp: float = 0.01, name: str = "weight") -> GroupQuantized:
    """Quantize w (N, K) for ``config``: its weight bits and group size, symmetric when
    ``weight_encoding == "signed"``. ``method`` "rtn" or "gptq" (which needs x)."""
    if method not in QUANT_METHODS:
        raise QuantizationError(f"method={method!r}: allowed values are {QUANT_METHODS}")
    symmetric = config.weight_encoding == "signed"
    if method == "rtn":
        if act_order:
            raise QuantizationError("act_order=True: only meaningful with method='gptq'")
        return rtn_quantize(w, bits=config.weight_bits, group_size=config.group_size, symmetric=symmetric, name=name)
    if x is None:
        raise QuantizationError("method='gptq': needs calibration activations x (M, K)")
    return gptq_quantize(w, x, bits=config.weight_bits, group_size=config.group_size, symmetric=symmetric,
                         damp=damp, act_order=act_order, name=name)


@dataclasses.dataclass(frozen=True)
class QuantReport:
    """Quantization error of one matrix.

    weight_rel_error
        ||W - W_q||_F / ||W||_F of the dequantized weight.
    output_rel_error
        ||X W^T - X W_q^T||_F / ||X W^T||_F on the given activations (None without them).
    symmetric
        Every zero point is 2**(b-1); act_order: the groups are not contiguous along K.
    """

    name: str
    method: str
    bits: int
    group_size: int
    symmetric: bool
    act_order: bool
    shape: tuple[int, int]
    weight_rel_error: float
    output_rel_error: float | None

    def __str__(self) -> str:
        out = "n/a" if self.output_rel_error is None else f"{self.output_rel_error:.3e}"
        kind = ("sym" if self.symmetric else "asym") + ("+act-order" if self.act_order else "")
        return (f"{self.name} {self.shape[0]}x{self.shape[1]} {self.method} w{self.bits} g{self.group_size} {kind}: "
                f"weight rel err {self.weight_rel_error:.3e}, output rel err {out}")


def _relative(difference: torch.Tensor, reference: torch.Tensor) -> float:
    norm = float(torch.linalg.norm(reference))
    diff = float(torch.linalg.norm(difference))
    return diff / norm if norm else (0.0 if diff == 0 else float("inf"))


def quantization_report(w: torch.Tensor, quantized: GroupQuantized, x: torch.Tensor | None = None, *,
                        method: str = "?", name: str | None = None) -> QuantReport:
    """Errors of ``quantized`` against the real weights w (N, K), and on activations x (M, K) if given."""
    wide = w.double()
    if tuple(wide.shape) != quantized.shape:
        raise QuantizationError(f"w: shape {tuple(wide.shape)}, expected {quantized.shape} of the quantized weight")
    dequantized = quantized.dequantize()
    output = None
    if x is not None:
        xw = x.double()
        output = _relative(xw @ (wide - dequantized).T, xw @ wide.T)
    symmetric = quantized.zeros is not None and bool((quantized.zeros == 2 ** (quantized.bits - 1)).all())
    return QuantReport(name=name or quantized.name, method=method, bits=quantized.bits,
                       group_size=quantized.group_size, symmetric=symmetric,
                       act_order=not quantized.contiguous_groups, shape=quantized.shape,
                       weight_rel_error=_relative(wide - dequantized, wide), output_rel_error=output)


def format_reports(reports: list[QuantReport]) -> str:
    """One line per report, for logs."""
    return "\n".join(str(report) for report in reports)
