"""Re-quantize a GGUF file in llama.cpp's Q4_K_M mix (``mixpe gguf-quantize``).

Every tensor of the source is read as float32 (gguf-py's ``dequantize`` of whatever type it has),
given a type by llama.cpp's rules for ``LLAMA_FTYPE_MOSTLY_Q4_K_M`` (``llama_tensor_get_type`` in
``src/llama-quant.cpp``), quantized (K-quants by :mod:`sw.kquant_quantize`, the 32-weight types by
gguf-py's ``quantize``; both llama.cpp's reference rounding) and written with gguf-py's
``GGUFWriter`` with the source's metadata (``general.file_type`` = 15, Q4_K_M).

The Q4_K_M rules (without an importance matrix):

* only tensors of 2 or more dimensions whose name ends in ``weight`` are quantized, not
  ``*_norm.weight`` nor ``ffn_gate_inp.weight`` (the MoE router); the rest keep their type and bytes;
* ``output.weight``, and ``token_embd.weight`` when the model has no ``output.weight`` (tied):
  Q6_K, or Q8_0 when ne0 is not a multiple of 256; an untied ``token_embd.weight`` stays at Q4_K;
* ``attn_v`` (and the fused ``attn_qkv``/``attn_kv_b``, which llama.cpp counts as attn_v): Q6_K
  where ``use_more_bits(i, n)`` holds for the i-th of the n attn_v tensors, else Q4_K; with 8
  experts Q8_0;
* ``attn_k`` with 8 experts: Q8_0; ``attn_output`` with 8 experts: Q5_K;
* ``ffn_down``: Q6_K in the layers where ``use_more_bits(layer, n_layer)`` holds, else Q4_K;
* everything else Q4_K;
* a type whose block does not divide ne0 falls back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0
  (then F16 if 32 does not divide it either).

``use_more_bits(i, n) = i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2`` (integer division): the first
and last eighth of the layers and every third one between. llama.cpp visits the tensors sorted by
layer, then name (``weight_name_comparer``), which is the order the counters advance and the order
the output file holds them. Not reproduced: the Falcon and 70B special cases. Checked against a
real llama.cpp Q4_K_M file (Gemma 3 270M, ``tests/sw/test_gguf_quantize.py``): every type equal.

SmolLM2-135M has ne0 = 576 (not a multiple of 256) for every projection but ``ffn_down``
(ne0 = 1536), so its Q4_K_M holds Q5_0 (q, k, o, gate, up and the other attn_v), Q8_0 (the tied
embedding and the Q6_K attn_v layers), and Q4_K/Q6_K ``ffn_down``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sw.gguf_import import GGUF_BLOCK, GGUFError, read_gguf, tensor_label
from sw.gguf_kquants import SUPER_BLOCK
from sw.kquant_quantize import KQUANT_QUANTIZERS, quantize_kquant_bytes

__all__ = ["RECIPES", "use_more_bits", "recipe_types", "quantize_tensor", "quantize_gguf_file", "weight_order"]

#: Recipe name -> llama.cpp's ``llama_ftype`` value (``general.file_type``).
RECIPES = {"q4_k_m": 15}
_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
_LAYER = re.compile(r"^blk\.(\d+)\.")


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's rule for the layers that get more bits in the ``_M`` mixes."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def _layer(name: str) -> int:
    match = _LAYER.match(name)
    return int(match.group(1)) if match else -1


def weight_order(names) -> list[str]:
    """llama.cpp's ``weight_name_comparer``: by layer (non-layer tensors first), then by name."""
    return sorted(names, key=lambda name: (_layer(name), name))


def _quantizable(name: str, dims: int) -> bool:
    return (dims >= 2 and name.endswith("weight") and "_norm.weight" not in name
            and "ffn_gate_inp.weight" not in name)


def recipe_types(tensors: dict[str, tuple[int, ...]], n_layers: int, n_expert: int = 0,
                 recipe: str = "q4_k_m") -> dict[str, str | None]:
    """{name: ggml type name, or None to keep the tensor as it is} for ``tensors`` {name: ggml
    shape (ne0 first)} of a model of ``n_layers`` layers and ``n_expert`` experts."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe!r}: allowed values are {sorted(RECIPES)}")
    names = weight_order(tensors)
    tied = "output.weight" not in tensors
    n_attn_v = sum(1 for name in names if re.search(r"attn_(v|qkv|kv_b)\.weight", name))
    i_attn_v = i_ffn_down = 0
    types: dict[str, str | None] = {}
    for name in names:
        shape = tensors[name]
        if not _quantizable(name, len(shape)):
            types[name] = None
            continue
        label = "Q4_K"
        if name == "output.weight" or (tied and name == "token_embd.weight"):
            label = "Q8_0" if shape[0] % SUPER_BLOCK else "Q6_K"
        elif name == "token_embd.weight":
            pass
        elif re.search(r"attn_(v|qkv|kv_b)\.weight", name):
            if use_more_bits(i_attn_v, n_attn_v):
                label = "Q6_K"
            if n_expert == 8:
                label = "Q8_0"
            i_attn_v += 1
        elif "attn_k.weight" in name and n_expert == 8:
            label = "Q8_0"
        elif "attn_output.weight" in name and n_expert == 8:
            label = "Q5_K"
        elif "ffn_down" in name:
            layer = _layer(name) if n_expert > 1 else i_ffn_down
            if use_more_bits(layer, n_layers):
                label = "Q6_K"
            i_ffn_down += 1
        if label in _FALLBACK and shape[0] % SUPER_BLOCK:
            label = _FALLBACK[label] if shape[0] % GGUF_BLOCK == 0 else "F16"
        types[name] = label
    return types


def quantize_tensor(w: np.ndarray, label: str) -> np.ndarray:
    """float32 weights (numpy order, K last) as the raw data of type ``label`` (uint8 rows of
    blocks, or F16/F32 values)."""
    import gguf
    if label in KQUANT_QUANTIZERS:
        return quantize_kquant_bytes(w, label)
    if label == "F16":
        return w.astype(np.float16)
    return gguf.quants.quantize(w, gguf.GGMLQuantizationType[label])


def _hyper_parameters(reader) -> tuple[str, int, int]:
    arch_field = reader.fields.get("general.architecture")
    if arch_field is None:
        raise GGUFError("metadata 'general.architecture' is missing")
    arch = str(arch_field.contents())
    layers = reader.fields.get(f"{arch}.block_count")
    if layers is None:
        raise GGUFError(f"metadata '{arch}.block_count' is missing")
    experts = reader.fields.get(f"{arch}.expert_count")
    return arch, int(layers.contents()), int(experts.contents()) if experts is not None else 0


def quantize_gguf_file(source: str | Path, out: str | Path, recipe: str = "q4_k_m",
                       progress: Callable[[str], None] | None = None) -> dict:
    """Write ``out``: ``source`` re-quantized in ``recipe``. Returns a summary: tensors per type,
    bytes, and the RMS distance of every quantized tensor from the source's float values."""
    import gguf
    source, out = Path(source), Path(out)
    reader = read_gguf(source)
    try:
        arch, n_layers, n_expert = _hyper_parameters(reader)
    except GGUFError as error:
        raise GGUFError(f"{source}: {error}") from None
    by_name = {str(t.name): t for t in reader.tensors}
    types = recipe_types({name: tuple(int(v) for v in t.shape) for name, t in by_name.items()}, n_layers, n_expert,
                         recipe)
    writer = gguf.GGUFWriter(out, arch)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF.") or field.name == "general.file_type":
            continue
        sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub_type)
    writer.add_file_type(RECIPES[recipe])
    counts: dict[str, int] = {}
    records = []
    for name in weight_order(by_name):
        tensor, label = by_name[name], types[name]
        source_label = tensor_label(tensor)
        if label is None:
            writer.add_tensor(name, tensor.data, raw_dtype=tensor.tensor_type)
            counts[source_label] = counts.get(source_label, 0) + 1
            continue
        w = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
        data = quantize_tensor(w, label)
        qtype = gguf.GGMLQuantizationType[label]
        back = np.asarray(gguf.quants.dequantize(data, qtype), dtype=np.float32)
        records.append({"name": name, "source_type": source_label, "type": label, "shape": list(w.shape[::-1]),
                        "rms": float(np.sqrt(np.mean((back.astype(np.float64) - w) ** 2))),
                        "source_rms": float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))})
        writer.add_tensor(name, data, raw_dtype=qtype)
        counts[label] = counts.get(label, 0) + 1
        if progress is not None:
            progress(name)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"source": str(source), "out": str(out), "recipe": recipe, "tensors": len(by_name),
            "types": dict(sorted(counts.items())), "bytes": out.stat().st_size,
            "source_bytes": source.stat().st_size, "quantized": records}
