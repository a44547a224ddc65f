"""CMoE carving on the real SmolLM2 layer-0 FFN (Q4_1): partition, balanced assignment, router,
exactness with every expert active, Q4_1 slices on the array, re-quantized down."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from golden.mpgemm import bitexact_mpgemm
from golden.operands import quantize_activations_int8
from sw.cmoe import (CMoEConfig, CMoEError, MoEFFN, atopk_markers, balanced_assignment, carve_layer, carve_model,
                     activation_scores, expert_output_norms, fit_router, representatives, requantize_q4_1)
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, token_windows
from sw.smollm import FloatLinear, array_config, attention_block, dense_ffn, rms_norm


@pytest.fixture(scope="module")
def model(smollm_layer0):
    return smollm_layer0


@pytest.fixture(scope="module")
def calibration(model, smollm_tokenizer):
    """Layer 0's real FFN inputs on two 128-token calibration windows, float32 (256, 576)."""
    ids = smollm_tokenizer.encode(corpus_text(CALIBRATION_MODULES[:3])).ids
    windows = token_windows(ids, 128, 2, "calibration")
    inputs = []
    for window in windows:
        h = attention_block(model, 0, model.embedding[window], FloatLinear())
        inputs.append(rms_norm(h, model.layers[0].ffn_norm, model.shape.norm_eps))
    return windows, torch.cat(inputs)


@pytest.fixture(scope="module")
def carved(model, calibration):
    layer = model.layers[0]
    return carve_layer(calibration[1], layer.gate.dense, layer.up.dense, CMoEConfig.parse("S2A2E16"))


def test_config_names():
    config = CMoEConfig.parse("S2A2E16")
    assert (config.shared, config.active, config.experts, config.routed) == (2, 2, 16, 14)
    assert config.name == "S2A2E16" and config.activation_ratio == 0.25
    assert CMoEConfig.parse("S2A10E16").activation_ratio == 0.75
    with pytest.raises(CMoEError, match="expected 'S<shared>A<active>E<experts>'"):
        CMoEConfig.parse("2A2E16")
    with pytest.raises(CMoEError, match=r"active=15: must be in \[1, experts - shared\] = \[1, 14\]"):
        CMoEConfig.parse("S2A15E16")
    with pytest.raises(CMoEError, match="shared=16"):
        CMoEConfig.parse("S16A1E16")
    with pytest.raises(CMoEError, match="experts=7: must divide the FFN width 1536"):
        CMoEConfig.parse("S1A1E7").expert_width(1536)
    CMoEConfig.parse("S2A2E48").check_requantizable(1536)          # 32 neurons: one Q4_1 block
    with pytest.raises(CMoEError, match=r"S4A20E32: experts of D/N = 1536/32 = 48 neurons; .* multiple of 32"):
        CMoEConfig.parse("S4A20E32").check_requantizable(1536)


def test_partition_and_shared_by_rate(carved):
    neurons = torch.cat([carved.shared, carved.experts.flatten()])
    assert torch.equal(neurons.sort().values, torch.arange(1536))          # every neuron exactly once
    assert carved.experts.shape == (14, 96) and carved.shared.shape == (192,)
    assert bool((carved.rates[carved.shared].min() >= carved.rates[carved.experts.flatten()].max()))
    for e, members in enumerate(carved.experts):
        assert int(carved.representative[e]) in members.tolist()
        assert torch.equal(members, members.sort().values)


def test_balanced_assignment_is_optimal():
    """Against exhaustive search: 6 neurons into 2 clusters of 3 around the seed columns."""
    gen = torch.Generator().manual_seed(5)
    for _ in range(10):
        markers = torch.rand(40, 6, generator=gen) < 0.3
        seeds = torch.tensor([0, 3])
        labels = balanced_assignment(markers, seeds, 3)
        assert torch.bincount(labels).tolist() == [3, 3]
        cost = torch.cdist(markers.T.float(), markers.T.float()[seeds], p=1)
        best = min(sum(float(cost[j, 0 if j in group else 1]) for j in range(6))
                   for group in itertools.combinations(range(6), 3))
        assert float(cost[torch.arange(6), labels].sum()) == best


def test_representative_is_closest_to_centroid():
    markers = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 1], [1, 1, 1, 0]], dtype=torch.bool)   # (T=3, n=4)
    labels = torch.tensor([0, 0, 0, 1])
    # cluster 0 columns: (1,1,1), (1,0,1), (0,0,1); mean (2/3, 1/3, 1): L1 distances 1, 2/3, 4/3
    assert representatives(markers, labels, 2).tolist() == [1, 3]


def test_atopk_markers():
    scores = torch.tensor([[0.1, -3.0, 2.0, 0.0], [5.0, 0.2, -0.1, 0.3]])
    markers, rates = atopk_markers(scores, 2)
    assert markers.tolist() == [[False, True, True, False], [True, False, False, True]]
    assert rates.tolist() == [0.5, 0.5, 0.5, 0.5]
    with pytest.raises(CMoEError, match="k_act=5"):
        atopk_markers(scores, 5)


def test_router_selects_distinct_experts_and_bias_balances(carved, calibration):
    x = calibration[1]
    selected, probs = carved.route(x, 2)
    assert selected.shape == (256, 2) and bool((selected[:, 0] != selected[:, 1]).all())
    assert torch.allclose(probs.sum(dim=1), torch.ones(256))
    before = carved.loads(x, 2)
    assert int(before.sum()) == 512
    # The router's probabilities differ by ~1e-3 here (scores of a 576-wide layer are small), so
    # the paper's step 1e-3 only oscillates; a step of 3e-6 balances the loads.
    copy = dataclasses.replace(carved, bias=carved.bias.clone())
    for _ in range(50):
        copy.update_bias(copy.loads(x, 2), 3e-6)
    after = copy.loads(x, 2)
    assert int(after.sum()) == 512 and bool((copy.bias != 0).any())
    assert int(after.max()) < int(before.max())
    assert float(after.float().std()) < 0.5 * float(before.float().std())


def test_all_experts_active_equals_dense(model, carved, calibration):
    """Shared + all 14 routed experts with the exact down slices is the dense FFN: float64, equal
    up to summation order (|difference| <= 1e-12 x the sum of |neuron contributions|; float64
    reassociation of the 1536 + 2 x 576 term sums is below 3e-13 of it, a misplaced neuron O(1))."""
    layer = model.layers[0]
    x = calibration[1].double()
    ffn = MoEFFN(layer, carved, active=14, down_mode="exact")
    carved_out = ffn(model, 0, x, FloatLinear(torch.float64))
    dense_out = dense_ffn(model, 0, x, FloatLinear(torch.float64))
    hidden = torch.nn.functional.silu(x @ layer.gate.dense.double().T) * (x @ layer.up.dense.double().T)
    scale = hidden.abs() @ layer.down.dense.double().abs().T
    assert bool(((carved_out - dense_out).abs() <= 1e-12 * scale).all())
    assert int(ffn.loads.sum()) == 14 * x.shape[0]


def test_expert_gate_up_slices_bit_exact_on_array(model, carved, calibration):
    """Expert gate/up are the dense Q4_1 rows: on the array every channel is bit-identical."""
    config = array_config("int8")
    layer = model.layers[0]
    codes, scale = quantize_activations_int8(calibration[1][:16])
    dense = bitexact_mpgemm(config, codes, scale, layer.gate.operands(config))
    ffn = MoEFFN(layer, carved, active=2)
    for e in (0, 13):
        gate = ffn.experts[e][0]
        assert torch.equal(bitexact_mpgemm(config, codes, scale, gate.operands(config)), dense[:, carved.experts[e]])
    assert torch.equal(bitexact_mpgemm(config, codes, scale, ffn.shared[1].operands(config)),
                       bitexact_mpgemm(config, codes, scale, layer.up.operands(config))[:, carved.shared])


def test_requantized_down(model, carved):
    """Each expert's down columns re-quantized to Q4_1 (groups of 32 along the expert's 96 columns)
    with llama.cpp's rounding (codes from the unrounded d and min, then d and m stored as FP16):
    |w - (d q + m)| <= d/2 + 15 |d| 2^-11 + |m| 2^-11 (half a step, plus the FP16 rounding of d
    times the largest code and of m)."""
    columns = model.layers[0].down.dense[:, carved.experts[3]]
    requantized = requantize_q4_1(columns, "down3")
    q = requantized.quantized
    assert q.shape == (576, 96) and q.group_size == 32
    step = q.scales.float().repeat_interleave(32, dim=1)
    offset = q.offsets.float().abs().repeat_interleave(32, dim=1)
    bound = step / 2 + 15 * step * 2 ** -11 + offset * 2 ** -11
    assert bool(((requantized.dense - columns).abs() <= bound).all())
    with pytest.raises(CMoEError, match="K=48 columns is not a multiple of the Q4_1 block 32"):
        requantize_q4_1(columns[:, :48], "down")


def test_carve_model_slice(model, calibration):
    """The sequential driver on the one-layer slice: timing, options and a working MoE forward."""
    windows, _ = calibration
    result = carve_model(model, windows, CMoEConfig.parse("S1A3E8"), balance_steps=2)
    assert len(result.layers) == 1 and result.calibration_tokens == 256 and result.seconds > 0
    ffn = result.ffns(model)[0]
    x = torch.randn(5, 576, generator=torch.Generator().manual_seed(0))
    assert ffn(model, 0, x, FloatLinear()).shape == (5, 576)
    assert int(ffn.loads.sum()) == 15
    with pytest.raises(CMoEError, match="down_mode='bogus'"):
        MoEFFN(model.layers[0], result.layers[0], 3, down_mode="bogus")


def test_fit_router_recovers_a_linear_map():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(400, 12, generator=generator)
    weight = torch.randn(13, 5, generator=generator)
    targets = x @ weight[:-1] + weight[-1]
    assert torch.allclose(fit_router(x, targets, ridge=0.0), weight, atol=1e-4)
    shrunk = fit_router(x, targets, ridge=1.0)                 # the ridge pulls W towards 0
    assert float(shrunk.norm()) < float(weight.norm())


def test_oracle_and_random_selection(model, carved, calibration):
    """The oracle picks the A experts with the largest true output; random is seeded and uniform."""
    x = calibration[1][:64]
    layer = model.layers[0]
    oracle = MoEFFN(layer, carved, active=3, down_mode="exact", selection="oracle")
    norms = expert_output_norms(x, oracle.experts)
    chosen = norms.gather(1, oracle.select(x))
    others = norms.clone().scatter_(1, oracle.select(x), float("-inf"))
    assert bool((chosen.min(dim=1).values >= others.max(dim=1).values).all())
    first = MoEFFN(layer, carved, active=3, down_mode="exact", selection="random", seed=5).select(x)
    assert torch.equal(first, MoEFFN(layer, carved, active=3, down_mode="exact", selection="random", seed=5).select(x))
    assert int(first.unique().numel()) == 14
    with pytest.raises(CMoEError, match="selection='best'"):
        MoEFFN(layer, carved, active=3, selection="best")


def test_fitted_router_agrees_with_oracle_more_than_analytic(model, smollm_tokenizer):
    """On layer 0 with held-out tokens, the fitted router's top-A overlaps the oracle's clearly more
    than the paper's analytic router and than chance (A / routed = 6 / 14). Measured: fitted 0.61,
    analytic 0.45 on 1,024 calibration tokens (577 regressors need more tokens than the 256 of the
    shared fixture: there it is 0.54)."""
    ids = smollm_tokenizer.encode(corpus_text(CALIBRATION_MODULES[:8])).ids
    windows = token_windows(ids, 256, 4, "calibration")
    config = CMoEConfig.parse("S2A6E16")
    fitted = carve_model(model, windows, config, router="fitted")
    analytic = carve_model(model, windows, config)
    assert fitted.router == "fitted" and fitted.layers[0].router == "fitted" and analytic.layers[0].router == "analytic"
    ids = smollm_tokenizer.encode(corpus_text(EVALUATION_MODULES[:2])).ids
    held_out = token_windows(ids, 128, 1, "held-out")[0]
    h = attention_block(model, 0, model.embedding[held_out], FloatLinear())
    x = rms_norm(h, model.layers[0].ffn_norm, model.shape.norm_eps)

    def overlap(carving) -> float:
        ffn = carving.ffns(model, "exact")[0]
        best = MoEFFN(model.layers[0], carving.layers[0], config.active, "exact", selection="oracle").select(x)
        chosen = ffn.select(x)
        return float((chosen[:, :, None] == best[:, None, :]).any(dim=2).float().mean())

    fitted_overlap, analytic_overlap = overlap(fitted), overlap(analytic)
    chance = config.active / config.routed
    assert fitted_overlap > max(analytic_overlap, chance) + 0.1, (fitted_overlap, analytic_overlap, chance)
    with pytest.raises(CMoEError, match="router='learned'"):
        carve_model(model, windows, config, router="learned")


def test_activation_scores_use_cosine_form(model, calibration):
    """Scaling a token or a weight row does not change its scores (normalized operands)."""
    layer = model.layers[0]
    x = calibration[1][:4]
    base = activation_scores(x, layer.gate.dense, layer.up.dense)
    assert torch.allclose(activation_scores(3 * x, 2 * layer.gate.dense, layer.up.dense), base, atol=1e-6)


@pytest.mark.slow
def test_full_model_carving(smollm_path, smollm_tokenizer):
    """All 30 FFNs carved on 4,096 calibration tokens; with every routed expert active and exact down
    slices the carved model's perplexity is the dense one. (Carving time is reported by
    ``make eval-smollm``, not asserted: machines are shared and noisy.)"""
    from sw.corpus import EVALUATION_MODULES
    from sw.smollm import forward, load_smollm, sequence_nll
    full = load_smollm(smollm_path)
    calibration = token_windows(smollm_tokenizer.encode(corpus_text(CALIBRATION_MODULES)).ids, 512, 8, "calibration")
    window = token_windows(smollm_tokenizer.encode(corpus_text(EVALUATION_MODULES)).ids, 256, 1, "held-out")[0]
    carving = carve_model(full, calibration, CMoEConfig.parse("S2A14E16"), down_mode="exact")
    dense_nll, _ = sequence_nll(forward(full, window, FloatLinear()), window)
    carved_nll, _ = sequence_nll(forward(full, window, FloatLinear(), carving.ffns(full)), window)
    assert abs(carved_nll - dense_nll) <= 1e-4 * dense_nll
