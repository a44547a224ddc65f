"""A tiny gpt-oss block with MXFP4 experts on the golden and model backends (:mod:`sw.gpt_oss`)."""

import pytest
import torch

from hw.config import MixPEConfig
from sw.gpt_oss import GptOssHost, GptOssSpec, mxfp4_checkpoint, route_gpt_oss, run_gpt_oss, transformers_forward
from sw.moe import MoEError
from sw.moe_run import format_report
from sw.mxfp4_import import core_for_mxfp4

CONFIG = core_for_mxfp4(MixPEConfig(rows=8, cols=8, weight_bits=4, group_size=32, row_groups=2))
SPEC = GptOssSpec(hidden=32, ffn=64, experts=4, top_k=2, tokens=12, seed=3)


def test_host_steps_reproduce_transformers_forward():
    """With exact activations the host's gpt-oss steps (de-interleaved gate/up, biases, clamped
    SwiGLU, down bias) equal transformers' float64 forward; the clamp is exercised; the checkpoint
    tensors have gpt-oss's shapes."""
    block, layer, hidden = SPEC.build()
    state = mxfp4_checkpoint(block)
    assert tuple(state["experts.gate_up_proj_blocks"].shape) == (4, 128, 1, 16)
    assert tuple(state["experts.down_proj_scales"].shape) == (4, 32, 2)
    routing = route_gpt_oss(block, hidden)
    host, x = GptOssHost(layer), hidden.double()
    out, clamped = torch.zeros_like(x), 0
    for e, expert in enumerate(layer.experts):
        tokens = routing.tokens(e)
        gate, up = (x[tokens] @ w.dequantize().T for w in (expert.gate, expert.up))
        clamped += int(((gate + expert.gate_bias) > layer.limit).sum())
        clamped += int(((up + expert.up_bias).abs() > layer.limit).sum())
        y = host.activation(e, gate, up) @ expert.down.dequantize().T + host.down_bias(e)
        out.index_add_(0, tokens, routing.token_weights(e).double()[:, None] * y)
    reference = transformers_forward(block, hidden, routing)
    assert torch.allclose(out, reference, rtol=1e-12, atol=1e-12)
    assert clamped > 0


@pytest.mark.parametrize("backend", ["golden", "model"])
def test_gpt_oss_layer_bit_exact_and_within_bounds(backend):
    report = run_gpt_oss(CONFIG, SPEC, backend)
    assert report["bit_exact_vs_golden"] and report["max_abs_diff_vs_golden"] == 0.0, report
    assert report["within_bound"] and report["within_transformers_bound"], report
    assert 0 < report["max_err_over_transformers_bound"] < 1
    assert "transformers" in format_report(report)


def test_gpt_oss_needs_an_mxfp4_core():
    with pytest.raises(MoEError, match="fp4_e2m1"):
        run_gpt_oss(MixPEConfig(rows=8, cols=8, weight_bits=4, group_size=32), SPEC)
