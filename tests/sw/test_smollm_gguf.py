"""sw/smollm_gguf.py on tiny seeded weights: each GGUF type on its own core (flat Q5_0 / Q8_0, K-quant
Q4_K / Q6_K), bit-exact with the golden model of that core, close to the dequantized float, and
row slices (the RTL spot-check's tiles) equal to the rows of the full GEMM."""

import numpy as np
import pytest
import torch

from golden.mpgemm import bitexact_mpgemm
from sw.gguf_import import import_gguf, quantize_gguf
from sw.gguf_kquants import K_QUANTS, kquant_weights
from sw.gguf_report import core_for
from sw.kquant_quantize import quantize_kquant_bytes
from sw.smollm import FloatLinear, array_config
from sw.smollm_gguf import GGUFLinear, gguf_backend, gguf_row_name, gguf_summary_lines, is_gguf_row

N, K = 20, 512


def _weight(label: str) -> GGUFLinear:
    w = (0.05 * np.random.default_rng(19).standard_normal((N, K))).astype(np.float32)
    if label not in K_QUANTS:
        return GGUFLinear(f"w.{label}", quantize_gguf(w, label), label)
    data = quantize_kquant_bytes(w, label)
    return GGUFLinear(f"w.{label}", import_gguf(data, (N, K), label), label,
                      kquant_weights(label, data.reshape(-1, K_QUANTS[label].block_bytes), N, K))


@pytest.mark.parametrize("activation", ["fp16", "int8"])
@pytest.mark.parametrize("label", ["Q5_0", "Q8_0", "Q4_K", "Q6_K"])
def test_each_type_on_its_core(label, activation):
    weight = _weight(label)
    x = torch.randn(6, K, generator=torch.Generator().manual_seed(3))
    backend = gguf_backend(activation, 4, 4)
    y = backend(x, weight, "0.down")
    core = core_for(label, array_config(activation, 4, 4))
    assert core.kquant == (label in K_QUANTS)
    x_op = x.half() if activation == "fp16" else None
    if x_op is not None:
        assert torch.equal(y, bitexact_mpgemm(core, x_op, None, weight.operands(core)))
    reference = FloatLinear(torch.float64)(x, weight, "0.down")
    tolerance = 2e-3 if activation == "fp16" else 2e-2
    assert float((y - reference).norm() / reference.norm()) < tolerance
    rows = torch.arange(5, 9)
    block = weight.rows(rows, "block")
    assert isinstance(block, GGUFLinear) and block.label == label
    assert torch.equal(backend(x, block, "0.down"), y[:, rows])


def test_row_names_and_summary():
    name = gguf_row_name("build/gguf/SmolLM2-135M-Instruct.Q4_1.Q4_K_M.gguf")
    assert name == "gguf Q4_K_M" and is_gguf_row(name) and not is_gguf_row("dense")
    records = [{"model": "dense", "activation": "float", "perplexity": 10.0},
               {"model": "dense", "activation": "fp16", "perplexity": 10.1},
               {"model": name, "activation": "float", "perplexity": 10.5},
               {"model": name, "activation": "fp16", "perplexity": 10.5 * 1.004}]
    text = "\n".join(gguf_summary_lines(records))
    assert "| Q4_K_M | fp16 | 10.542 | +0.40% | +4.38% |" in text
    assert gguf_summary_lines(records[:2]) == []


def test_kquant_weights_only_for_kquant_types():
    with pytest.raises(ValueError, match="label='Q5_0'"):
        GGUFLinear("w", _weight("Q5_0").quantized, "Q5_0", _weight("Q4_K").kquant)


def test_eval_rows_with_gguf():
    from sw.eval_smollm import _rows
    from sw.settings import EvalSettings
    plain = _rows(EvalSettings(configs=()))
    rows = _rows(EvalSettings(configs=(), gguf="build/gguf/m.Q4_K_M.gguf"))
    assert rows[:len(plain)] == plain
    assert [(r.model, r.activation, r.carving_key) for r in rows[len(plain):]] == [
        ("gguf Q4_K_M", a, None) for a in ("float", "int8", "fp16")]
