"""``mixpe verify-model``'s operand store: every GEMM's array operands written once by the client, read
by the workers by (GEMM, row block, columns), so a task's payload is a few integers.

``<root>/digest`` names the forward pass (settings and every GEMM's input, :func:`operands_digest`);
``<root>/g<index>/`` holds one GEMM's operands as the array receives them
(:meth:`sw.smollm.ArrayLinear.operands`), one ``.npy`` per field in the narrowest dtype that holds
it exactly (codes as uint8, INT8 activations as int8, scales as float16): ``x``, ``act_scale``
(INT8 activations), ``codes``, ``scales``, ``zeros`` or ``offsets``. Workers memory-map them
(``numpy.load(mmap_mode="r")``). A GEMM directory is written under a temporary name and renamed,
so a reader never sees half of one; a store whose digest differs is replaced. On a cluster the
store must be on a file system the workers share (or at the same path on every node).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from golden.operands import QuantizedWeights, activation_operand
from hw.errors import MixPEError
from hw.config import MixPEConfig

__all__ = ["OperandStoreError", "operands_digest", "write_store", "read_operands"]

FIELDS = ("codes", "scales", "zeros", "offsets")
#: Integer dtypes a field is narrowed to, narrowest first.
INTEGER_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.int64)


class OperandStoreError(MixPEError, RuntimeError):
    """The operand store is missing or belongs to another forward pass."""


@dataclasses.dataclass(frozen=True)
class _Columns:
    """Weights where :meth:`sw.smollm.ArrayLinear.operands` expects a QLinear."""
    weights: QuantizedWeights

    def operands(self, config):
        return self.weights


def operands_digest(settings: dict, gemms: list) -> str:
    """Hash of the run's settings and every GEMM's stage, weight name and input (M, K)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for stage, x, weight in gemms:
        digest.update(f"{stage}|{weight.name}|{tuple(weight.shape)}|{tuple(x.shape)}".encode())
        digest.update(x.float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _narrow(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as numpy, integers in the narrowest dtype holding them (floats keep theirs)."""
    array = tensor.contiguous().numpy()
    if tensor.dtype.is_floating_point or array.size == 0:
        return array
    low, high = int(array.min()), int(array.max())
    dtype = next(d for d in INTEGER_DTYPES if np.iinfo(d).min <= low and high <= np.iinfo(d).max)
    return array.astype(dtype)


def _write_gemm(config: MixPEConfig, directory: Path, x: torch.Tensor, weight) -> None:
    from sw.smollm import ArrayLinear
    weights = weight.quantized.to_quantized_weights(config)
    x_operand, act_scale, weights = ArrayLinear(config).operands(x, _Columns(weights))
    temporary = directory.with_name(f"{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    arrays = {"x": activation_operand(config, x_operand), "act_scale": act_scale,
              **{name: getattr(weights, name) for name in FIELDS}}
    for name, tensor in arrays.items():
        if tensor is not None:
            np.save(temporary / f"{name}.npy", _narrow(tensor))
    temporary.rename(directory)


def write_store(config: MixPEConfig, root: Path, digest: str, gemms: list, indices) -> None:
    """Write the operands of GEMMs ``indices`` not yet in the store ``root`` (replaced first when its
    digest is not ``digest``)."""
    root = Path(root)
    marker = root / "digest"
    if marker.is_file() and marker.read_text().strip() != digest:
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest + "\n")
    for index in sorted(set(indices)):
        directory = root / f"g{index:03d}"
        if not directory.is_dir():
            _, x, weight = gemms[index]
            _write_gemm(config, directory, x, weight)


@functools.lru_cache(maxsize=16)
def _open_gemm(directory: str) -> dict[str, np.ndarray]:
    """The memory-mapped fields of one GEMM (kept open per worker process)."""
    return {path.stem: np.load(path, mmap_mode="r") for path in Path(directory).glob("*.npy")}


def read_operands(config: MixPEConfig, store: dict, gemm: int, row0: int, channels: np.ndarray
                  ) -> tuple[torch.Tensor, torch.Tensor | None, QuantizedWeights]:
    """``(x, act_scale, weights)`` of GEMM ``gemm``'s rows ``row0 .. row0 + R`` and output ``channels``
    from the store ``{"path", "digest"}`` (checked against its digest once per process)."""
    root = Path(store["path"])
    _check_digest(str(root), store["digest"])
    fields = _open_gemm(str(root / f"g{gemm:03d}"))
    if "x" not in fields:
        raise OperandStoreError(f"operand store {root}: GEMM {gemm} is missing (written by the client before its tasks)")
    rows = slice(row0, row0 + config.rows)
    as_tensor = lambda array, dtype: None if array is None else torch.from_numpy(np.array(array)).to(dtype)
    weight_field = lambda name, dtype: as_tensor(None if name not in fields else fields[name][channels], dtype)
    weights = QuantizedWeights(codes=weight_field("codes", torch.int64), scales=weight_field("scales", torch.float16),
                               zeros=weight_field("zeros", torch.int64), offsets=weight_field("offsets", torch.float16))
    act_scale = as_tensor(fields["act_scale"][rows], torch.float32) if "act_scale" in fields else None
    return as_tensor(fields["x"][rows], torch.int64), act_scale, weights


@functools.lru_cache(maxsize=4)
def _check_digest(root: str, digest: str) -> None:
    marker = Path(root) / "digest"
    found = marker.read_text().strip() if marker.is_file() else None
    if found != digest:
        raise OperandStoreError(f"operand store {root}: digest {found or 'missing'}, expected {digest} (the workers "
                                f"need the client's store: a shared file system, or the same path on every node)")
