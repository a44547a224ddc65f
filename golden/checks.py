"""Checks of tensor arguments, shared by the golden models and the host software.

Each check raises ``error`` (the caller's :class:`hw.errors.MixPEError` subclass, e.g.
``OperandError`` or ``CheckpointError``) with a one-line message that names the tensor, its dtype,
shape or first offending value with its index, and what is allowed.
"""

from __future__ import annotations

import torch

__all__ = ["first_index", "check_tensor", "check_shape", "check_range", "check_finite", "real_matrix"]


def first_index(mask: torch.Tensor) -> tuple[int, ...]:
    """Index of the first True element of a bool tensor (row-major order); the mask must hold one."""
    return tuple(int(i) for i in mask.nonzero()[0])


def check_tensor(error: type[Exception], name: str, value, dtypes: torch.dtype | tuple[torch.dtype, ...], *,
                 rank: int | None = None, shape: tuple | None = None, nonempty: bool = False, why: str = "") -> None:
    """``value`` is a tensor of one of ``dtypes``, of ``rank`` dimensions and of ``shape`` (each if
    given), and with no empty dimension when ``nonempty``; ``why`` says what the tensor holds."""
    dtypes = dtypes if isinstance(dtypes, tuple) else (dtypes,)
    allowed = " or ".join(str(dtype) for dtype in dtypes)
    because = f" ({why})" if why else ""
    if not isinstance(value, torch.Tensor):
        of_rank = f" of rank {rank}" if rank is not None else ""
        raise error(f"{name}: got {type(value).__name__}, expected a {allowed} tensor{of_rank}{because}")
    if value.dtype not in dtypes:
        raise error(f"{name}: dtype {value.dtype}, expected {allowed}{because}")
    if rank is not None and value.dim() != rank:
        raise error(f"{name}: shape {tuple(value.shape)} has rank {value.dim()}, expected rank {rank}{because}")
    if shape is not None:
        check_shape(error, name, value, shape, why)
    if nonempty and value.numel() == 0:
        raise error(f"{name}: shape {tuple(value.shape)} has an empty dimension; all dimensions must be >= 1")


def check_shape(error: type[Exception], name: str, value: torch.Tensor, expected: tuple, why: str = "") -> None:
    """``value`` has shape ``expected``; ``why`` says where that shape comes from."""
    if tuple(value.shape) != tuple(expected):
        because = f" ({why})" if why else ""
        raise error(f"{name}: shape {tuple(value.shape)}, expected {tuple(expected)}{because}")


def check_range(error: type[Exception], name: str, value: torch.Tensor, low: int, high: int, meaning: str) -> None:
    """Every element of the integer tensor ``value`` lies in ``[low, high]``, ``meaning`` (e.g. "the
    INT8 range"); one pass over the values, the index is searched only on failure."""
    if value.numel() == 0:
        return
    smallest, largest = torch.aminmax(value)
    if int(smallest) < low or int(largest) > high:
        index = first_index((value < low) | (value > high))
        raise error(f"{name}: value {int(value[index])} at index {index} is outside {meaning} [{low}, {high}]")


def check_finite(error: type[Exception], name: str, value: torch.Tensor) -> None:
    """Every element of the floating-point tensor ``value`` is finite."""
    bad = ~torch.isfinite(value)
    if bad.any():
        index = first_index(bad)
        raise error(f"{name}: value {float(value[index])!r} at index {index} is not finite")


def real_matrix(error: type[Exception], name: str, value, dims: str, what: str) -> torch.Tensor:
    """``value``, a finite floating-point tensor of rank 2 with dimensions ``dims`` (e.g. "(N, K)"),
    as float64; ``what`` names its contents in the message for non-finite values."""
    if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.dim() != 2:
        raise error(f"{name}: expected a floating-point tensor of rank 2 {dims}, got "
                    f"{getattr(value, 'dtype', type(value).__name__)} of shape {tuple(getattr(value, 'shape', ()))}")
    wide = value.double()
    if not torch.isfinite(wide).all():
        raise error(f"{name}: contains non-finite values; {what} must be finite")
    return wide
