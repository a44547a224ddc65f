"""``mixpe checkpoint DIR``: the quantized linear layers of a Hugging Face checkpoint directory, the
MixPE core that runs each exactly (or why none can), and with ``check`` their GEMMs on the array's
numerics.

The directory holds ``config.json`` with a ``quantization_config`` (``quant_method`` gptq, awq or
compressed-tensors: :func:`sw.checkpoint.hf_quantization_options`; or mxfp4, gpt-oss's expert
tensors ``<prefix>_blocks``/``_scales``: :mod:`sw.mxfp4_import`, the experts stacked along N on
the FP4 E2M1 / E8M0 core) and the weights in
``*.safetensors`` shards (with or without ``model.safetensors.index.json``), read with the
``safetensors`` package only (never pickle). Every layer that has the format's packed weight
(``<prefix>.qweight``, or ``<prefix>.weight_packed`` for compressed-tensors) is imported with
:func:`sw.checkpoint.import_state_dict` from its tensors, wherever the shards hold them.

The core of a layer is the base configuration (array size, activation format, GDU; default
16 x 16, FP16 activations) with the layer's code width, unsigned codes, integer zero points and
the largest hardware group size that divides the layer's group (:func:`core_for_layer`).
Act-order layers (GPTQ ``desc_act``: ``g_idx`` not ``k // g``) run with K permuted
(:meth:`~sw.checkpoint.GroupQuantized.sort_groups`). ``bit_exact_import`` says that the core's
operands dequantize to the imported weights bit for bit (they are exact: integer codes and zero
points, FP16 scales). The check is ``mixpe gguf``'s: seeded activations, the bit-exact model
against the float64 GEMM of the imported weights, the error over ``golden.mpgemm.error_bound``.

Bad input is one :class:`~sw.checkpoint.CheckpointError` line naming the file, the tensor and
what is wrong (a missing ``config.json`` or ``quantization_config``, an unknown ``quant_method``,
a shard that is not safetensors, a tensor missing from every shard, a shape, dtype or value the
format does not allow, non-finite scales).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from hw.config import GROUP_SIZES, MixPEConfig
from sw.checkpoint import CheckpointError, GroupQuantized, hf_quantization_options, import_state_dict
from sw.gguf_report import DEFAULT_BASE

__all__ = ["PACKED_WEIGHT", "read_quantization_config", "shard_index", "checkpoint_report", "core_for_layer"]

#: The suffix of the packed weight that marks a quantized linear layer, per format.
PACKED_WEIGHT = {"gptq": ".qweight", "gptq_v2": ".qweight", "awq": ".qweight",
                 "compressed-tensors": ".weight_packed", "mxfp4": "_blocks"}


def read_quantization_config(directory: Path) -> tuple[str, dict, dict]:
    """(format, importer options, quantization_config) from ``directory/config.json``."""
    path = directory / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a Hugging Face checkpoint directory has a config.json "
                              f"with a quantization_config")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON ({error})") from None
    qc = config.get("quantization_config") if isinstance(config, dict) else None
    if not isinstance(qc, dict):
        raise CheckpointError(f"{path}: no quantization_config object; the checkpoint is not quantized "
                              f"(or not in a format imported here: gptq, awq, compressed-tensors, mxfp4)")
    if qc.get("quant_method") == "mxfp4":
        return "mxfp4", {}, qc
    try:
        fmt, options = hf_quantization_options(qc)
    except (CheckpointError, KeyError, TypeError, ValueError) as error:
        detail = f"quantization_config is missing {error}" if isinstance(error, KeyError) else str(error)
        raise CheckpointError(f"{path}: {detail}") from None
    return fmt, options, qc


def shard_index(directory: Path) -> dict[str, Path]:
    """{tensor name: shard path} of every ``*.safetensors`` shard of ``directory``; with
    ``model.safetensors.index.json`` its ``weight_map`` must name existing shards holding them."""
    from safetensors import safe_open
    shards = sorted(directory.glob("*.safetensors"))
    index_path = directory / "model.safetensors.index.json"
    if not shards:
        raise CheckpointError(f"{directory}: no *.safetensors shard (only safetensors are read, never pickle)")
    index: dict[str, Path] = {}
    for shard in shards:
        try:
            with safe_open(shard, framework="pt") as handle:
                names = list(handle.keys())
        except Exception as error:      # safetensors reports a bad header as its own error types
            detail = (str(error).splitlines() or [""])[0]
            raise CheckpointError(f"{shard}: not a readable safetensors file ({type(error).__name__}: "
                                  f"{detail})") from None
        for name in names:
            if name in index:
                raise CheckpointError(f"{shard}: tensor {name!r} is also in {index[name].name}")
            index[name] = shard
    if index_path.is_file():
        weight_map = json.loads(index_path.read_text()).get("weight_map", {})
        for name, shard_name in weight_map.items():
            if name not in index:
                problem = "is missing" if not (directory / shard_name).is_file() else "does not hold it"
                raise CheckpointError(f"{index_path}: tensor {name!r} is mapped to shard {shard_name}, which {problem}")
    return index


class _LazyTensors(dict):
    """The tensors a layer needs, read from their shards on first access."""

    def __init__(self, index: dict[str, Path]):
        super().__init__()
        self._index = index

    def __contains__(self, name) -> bool:
        return name in self._index

    def __iter__(self):
        return iter(self._index)

    def __getitem__(self, name):
        if not dict.__contains__(self, name):
            from safetensors import safe_open
            with safe_open(self._index[name], framework="pt") as handle:
                dict.__setitem__(self, name, handle.get_tensor(name))
        return dict.__getitem__(self, name)

    def get(self, name, default=None):
        return self[name] if name in self._index else default


def core_for_layer(layer: GroupQuantized, base: MixPEConfig) -> MixPEConfig:
    """``base`` with the layer's code width, unsigned codes, integer zero points and the largest
    hardware group size (:data:`hw.config.GROUP_SIZES`) dividing the layer's group (its own, or a
    divisor for per-channel scales: the scales repeat); :class:`CheckpointError` if none does."""
    group = max((g for g in GROUP_SIZES if layer.group_size % g == 0), default=None)
    if group is None:
        raise CheckpointError(f"{layer.name}: group_size={layer.group_size} is not a multiple of any hardware group "
                              f"size {GROUP_SIZES}")
    return base.replace(weight_bits=layer.bits, group_size=group, weight_encoding="unsigned", zero_mode="integer",
                        name=f"ckpt-w{layer.bits}-g{group}-{base.activation}-{base.rows}x{base.cols}")


def _max_error_over_bound(config: MixPEConfig, operands, exact: torch.Tensor, tokens: int, seed: int) -> float:
    """The check: ``mixpe gguf``'s seeded activations, the bit-exact model against ``x @ exact^T``
    in float64, the largest error over :func:`golden.mpgemm.error_bound` (the import is exact, so
    the bound needs no term for the distance of the reference weights)."""
    from golden.mpgemm import bitexact_mpgemm, error_bound
    from sw.gguf_report import _activations
    x, act_scale, x_real = _activations(config, tokens, exact.shape[1], torch.Generator().manual_seed(seed))
    error = (bitexact_mpgemm(config, x, act_scale, operands).double() - x_real @ exact.T).abs()
    bound = error_bound(config, x, act_scale, operands)
    return float(torch.where(bound > 0, error / bound, torch.where(error > 0, torch.inf, 0.0)).max())


def _layer_record(prefix: str, shard: Path, fmt: str, tensors, options: dict, base: MixPEConfig, check: bool,
                  tokens: int, seed: int) -> dict:
    from golden.reference import dequantize_weights
    try:
        layer = import_state_dict(prefix, tensors, fmt, **options)
    except CheckpointError as error:
        raise CheckpointError(f"{shard}: {error}") from None
    record = {"name": prefix, "type": fmt, "shape": list(layer.shape), "bits": layer.bits,
              "group_size": layer.group_size, "act_order": not layer.contiguous_groups}
    if record["act_order"]:
        layer, _ = layer.sort_groups()
    try:
        config = core_for_layer(layer, base)
        weights = layer.to_quantized_weights(config)
    except CheckpointError as error:
        return {**record, "unsupported_reason": str(error), "bit_exact_import": None, "max_err_over_bound": None}
    except ValueError as error:             # the configuration itself (e.g. a group size the core lacks)
        return {**record, "unsupported_reason": f"no core: {error}", "bit_exact_import": None,
                "max_err_over_bound": None}
    exact = layer.dequantize()
    return {**record, "config": config.to_dict()["params"],
            "bit_exact_import": bool(torch.equal(dequantize_weights(weights, config.group_size), exact)),
            "max_err_over_bound": _max_error_over_bound(config, weights, exact, tokens, seed) if check else None}


def _mxfp4_record(prefix: str, shard: Path, fmt: str, tensors, options: dict, base: MixPEConfig, check: bool,
                  tokens: int, seed: int) -> dict:
    """gpt-oss MXFP4 ``<prefix>_blocks``/``_scales``: the experts stacked along N on the FP4 core."""
    from golden.codes import code_values
    from sw.mxfp4_import import MXFP4_BLOCK, MXFP4Weights, core_for_mxfp4, mxfp4_tensors
    try:
        (weights,) = mxfp4_tensors({name: tensors[name] for name in (prefix + "_blocks", prefix + "_scales")
                                    if name in tensors}, prefix).values()
    except CheckpointError as error:
        raise CheckpointError(f"{shard}: {error}") from None
    k = weights.shape[-1]
    stacked = MXFP4Weights(weights.codes.reshape(-1, k), weights.exponents.reshape(-1, k // MXFP4_BLOCK), prefix)
    record = {"name": prefix, "type": fmt, "shape": list(weights.shape), "bits": 4, "group_size": MXFP4_BLOCK,
              "act_order": False}
    config = core_for_mxfp4(base)
    try:
        operands = stacked.to_quantized_weights(config)
    except CheckpointError as error:
        return {**record, "unsupported_reason": str(error), "bit_exact_import": None, "max_err_over_bound": None}
    exact = stacked.dequantize()
    on_core = code_values(config, operands.codes) * operands.scales.double().repeat_interleave(MXFP4_BLOCK, dim=1)
    return {**record, "config": config.to_dict()["params"], "bit_exact_import": bool(torch.equal(on_core, exact)),
            "max_err_over_bound": _max_error_over_bound(config, operands, exact, tokens, seed) if check else None}


def checkpoint_report(directory: str | Path, base: MixPEConfig = DEFAULT_BASE, *, check: bool = False,
                      tokens: int = 16, seed: int = 0, progress=None) -> dict:
    """The report of every quantized linear layer of the checkpoint ``directory`` (see the module
    docstring), in the shape of :func:`sw.gguf_report.gguf_report`'s."""
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise CheckpointError(f"tokens={tokens!r}: must be a positive integer")
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory")
    fmt, options, qc = read_quantization_config(directory)
    index = shard_index(directory)
    leaf = PACKED_WEIGHT[fmt]
    prefixes = sorted(name[:-len(leaf)] for name in index if name.endswith(leaf))
    if not prefixes:
        raise CheckpointError(f"{directory}: no tensor named '*{leaf}' in {len(index)} tensors of the shards; "
                              f"quant_method {qc.get('quant_method')!r} stores every quantized layer's weight so")
    tensors = _LazyTensors(index)
    records = []
    for prefix in prefixes:
        make_record = _mxfp4_record if fmt == "mxfp4" else _layer_record
        record = make_record(prefix, index[prefix + leaf], fmt, tensors, options, base, check, tokens, seed)
        dict.clear(tensors)                 # keep only one layer's tensors in memory
        records.append(record)
        if progress is not None:
            progress(record)
    on_array = [r for r in records if "config" in r and r["bit_exact_import"]]
    ratios = [r["max_err_over_bound"] for r in on_array if r["max_err_over_bound"] is not None]
    return {
        "directory": str(directory), "format": fmt, "options": options, "base_config": base.to_dict()["params"],
        "check": check, "tokens": tokens, "seed": seed, "layers": records, "quantized_layers": len(records),
        "on_array": len(on_array), "all_bit_exact": all(r["bit_exact_import"] is not False for r in records),
        "max_err_over_bound": max(ratios) if ratios else None,
        "summary": f"{len(on_array)} of {len(records)} quantized layers run on the array",
    }
