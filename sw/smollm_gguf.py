"""SmolLM2 from any llama.cpp GGUF of its weights (``mixpe eval-smollm --gguf FILE``), each projection
on its own core: e.g. the Q4_K_M file of ``mixpe gguf-quantize`` (Q5_0 / Q8_0 on the flat core,
Q4_K / Q6_K on the K-quant core, ``scale_mode="kquant"``).

:func:`load_smollm_gguf` reads the file like :func:`sw.smollm.load_smollm` (same metadata, norms,
Q8_0 tied embedding) but accepts every projection type the array runs
(:func:`sw.gguf_report.core_for`): each projection is a :class:`GGUFLinear`, whose ``dense`` is
gguf's dequantization bit for bit and whose array operands are those of its own core
(:func:`sw.gguf_kquants.kquant_weights` for a K-quant: the stored fields, subnormal d included).
:class:`GGUFArrayLinear` runs each GEMM on ``core_for(label, base)`` with the base's array and
activation format. Cycles (:func:`sw.smollm.gemm_cycles`) stay those of the base array's tiling.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import torch

from golden.kquant import KQuantWeights
from golden.mpgemm import bitexact_mpgemm
from golden.operands import QuantizedWeights
from hw.config import MixPEConfig
from sw.checkpoint import CheckpointError, GroupQuantized
from sw.gguf_import import BLOCK_TYPES, import_gguf_tensor, tensor_label
from sw.gguf_kquants import K_QUANTS, kquant_weights
from sw.gguf_report import core_for
from sw.smollm import PROJECTIONS, ArrayLinear, QLinear, SmolLM, array_config, load_smollm

__all__ = ["GGUF_ROW_PREFIX", "GGUFLinear", "GGUFArrayLinear", "load_smollm_gguf", "gguf_row_name",
           "is_gguf_row", "gguf_backend", "gguf_tile_checks", "gguf_summary_lines"]

#: Report rows of a ``--gguf`` model are named ``"gguf <type>"`` (the last dotted part of the file's stem).
GGUF_ROW_PREFIX = "gguf "


class GGUFLinear(QLinear):
    """A projection of ggml type ``label`` (a flat block type or a K-quant); ``kquant`` holds its
    :class:`KQuantWeights` when ``label`` is a K-quant."""

    def __init__(self, name: str, quantized: GroupQuantized, label: str, kquant: KQuantWeights | None = None, *,
                 dense: torch.Tensor | None = None):
        if (label in K_QUANTS) != (kquant is not None):
            raise ValueError(f"{name}: label={label!r}: K-quant weights are given exactly for a K-quant type")
        super().__init__(name, quantized, dense=dense)
        self.label = label
        self.kquant = kquant

    def core(self, base: MixPEConfig) -> MixPEConfig:
        """The core that runs this projection: ``base``'s array and activations, this type's weight fields."""
        return core_for(self.label, base)

    def operands(self, config: MixPEConfig) -> QuantizedWeights | KQuantWeights:
        if config.kquant:
            if self.kquant is None:
                raise ValueError(f"{self.name}: type {self.label} has no K-quant operands (config {config.name})")
            return self.kquant
        return super().operands(config)

    def rows(self, index: torch.Tensor, name: str) -> GGUFLinear:
        flat = super().rows(index, name)
        kquant = self.kquant
        if kquant is not None:
            kquant = KQuantWeights(**{field.name: None if getattr(kquant, field.name) is None
                                      else getattr(kquant, field.name)[index]
                                      for field in dataclasses.fields(KQuantWeights)})
        return GGUFLinear(name, flat.quantized, self.label, kquant, dense=flat.dense)


class GGUFArrayLinear(ArrayLinear):
    """:class:`sw.smollm.ArrayLinear` with each projection on its own core (:meth:`GGUFLinear.core` of
    this backend's configuration)."""

    def compute(self, x, weight):
        core = ArrayLinear(weight.core(self.config))
        return bitexact_mpgemm(core.config, *core.operands(x, weight))


def gguf_row_name(path: Path | str) -> str:
    """``"gguf Q4_K_M"`` for ``SmolLM2-135M-Instruct.Q4_1.Q4_K_M.gguf``."""
    return GGUF_ROW_PREFIX + Path(path).stem.rsplit(".", 1)[-1]


def is_gguf_row(model: str) -> bool:
    return model.startswith(GGUF_ROW_PREFIX)


def gguf_backend(activation: str, rows: int, cols: int):
    """The linear backend of a ``--gguf`` row: float (dequantized) or the array with per-tensor cores."""
    from sw.smollm import FloatLinear
    return FloatLinear() if activation == "float" else GGUFArrayLinear(array_config(activation, rows, cols))


def _projection(tensor, path: Path) -> GGUFLinear:
    label = tensor_label(tensor)
    if label not in BLOCK_TYPES and label not in K_QUANTS:
        raise CheckpointError(f"{path}: tensor {tensor.name!r} has type {label}; the array runs "
                              f"{', '.join([*BLOCK_TYPES, *K_QUANTS])}")
    quantized = import_gguf_tensor(tensor, path)
    kquant = None
    if label in K_QUANTS:
        n, k = quantized.shape
        kquant = kquant_weights(label, tensor.data.reshape(-1, K_QUANTS[label].block_bytes), n, k)
    return GGUFLinear(str(tensor.name).removesuffix(".weight"), quantized, label, kquant)


@functools.lru_cache(maxsize=1)
def load_smollm_gguf(path: Path | str, layers: int | None = None) -> SmolLM:
    """The SmolLM2 model of GGUF ``path`` with :class:`GGUFLinear` projections of any type the array
    runs (``layers``: the first n decoder layers only). Kept (one model) for the evaluation's rows."""
    return load_smollm(Path(path), layers, projection=_projection)


def gguf_tile_checks(path: Path | str, tokens: torch.Tensor, activations, rows: int, cols: int, *, count: int,
                     seed: int, check_sampled_tiles, log=print) -> list[dict]:
    """The RTL spot-check of the ``--gguf`` model: for every activation and every K-quant type of the
    file, ``count`` tiles sampled from its projections (``check_sampled_tiles(..., select=...)``,
    :func:`verif.smollm_tiles.check_sampled_tiles`) on that type's K-quant core."""
    model = load_smollm_gguf(path)
    labels = sorted({getattr(layer, key).label for layer in model.layers for key in PROJECTIONS} & set(K_QUANTS))
    checks = []
    for activation in activations:
        for label in labels:
            config = core_for(label, array_config(activation, rows, cols))
            source = f"{gguf_row_name(path)} ({label} projections)"
            try:
                check = check_sampled_tiles(config, model, tokens, count=count, seed=seed, source=source,
                                            select=lambda weight, label=label: weight.label == label)
            except Exception as error:              # noqa: BLE001 - reported, and fails the run
                check = {"source": source, "config": config.name, "seed": seed, "passed": False,
                         "error": f"{type(error).__name__}: {error}"}
            checks.append(check)
            log(f"RTL {config.name} on {source}: " + (
                f"{check['tiles']} tiles, {check['mismatches']} mismatches -> {'PASS' if check['passed'] else 'FAIL'}"
                if "error" not in check else f"FAILED {check['error']}"))
    return checks


def gguf_summary_lines(records: list[dict]) -> list[str]:
    """Report section: each ``--gguf`` model's array rows against its own float row, beside Q4_1's; [] if none."""
    names = list(dict.fromkeys(r["model"] for r in records if is_gguf_row(r["model"])))
    if not names:
        return []
    lines = ["", "## Other weight formats (`--gguf`)", "",
             "Perplexity on the evaluation window; array rows relative to the same weights' float "
             "(dequantized) row. `gguf` rows run every projection on its type's core (flat Q5_0 / Q8_0, "
             "K-quant Q4_K / Q6_K); cycles are those of the Q4_1 tiling.", "",
             "| weights | activation | perplexity | vs own float | vs Q4_1 (same activation) |", "|---|---|---:|---:|---:|"]
    reference = {r["activation"]: r["perplexity"] for r in records if r["model"] == "dense" and r.get("perplexity")}
    for name in ["dense", *names]:
        rows = [r for r in records if r["model"] == name and r.get("perplexity")]
        own = {r["activation"]: r["perplexity"] for r in rows}
        for r in rows:
            vs_float = f"{r['perplexity'] / own['float'] - 1:+.2%}" if "float" in own else "—"
            vs_q4_1 = (f"{r['perplexity'] / reference[r['activation']] - 1:+.2%}"
                       if name != "dense" and r["activation"] in reference else "—")
            lines.append(f"| {'Q4_1' if name == 'dense' else name.removeprefix(GGUF_ROW_PREFIX)} | {r['activation']} | "
                         f"{r['perplexity']:.3f} | {vs_float} | {vs_q4_1} |")
    return lines
