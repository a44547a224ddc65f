"""LaDiMo distillation, its end-to-end stage, the per-layer routing policy and the LoRA recovery on a tiny seeded float
model (2 layers, hidden 64, FFN 128; seconds, no checkpoint)."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import pytest
import torch

from sw.cmoe import CMoEConfig, CMoEError, MoEFFN, carve_layer, expert_output_norms, fit_router, requantize_q4_1
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES
from sw.e2e import E2ESettings, e2e_distill, held_out_perplexity, lr_factor
from sw.ladimo import (TRAINING_MODULES, DistillSettings, _selection_weights, distill_layer, distill_model, masked_moe,
                       neuron_owner, router_logits)
from golden.operands import quantize_activations_int8
from sw.qat import (Int8AwareLinear, expert_order, fake_quant_q4_1, int8_aware_hidden, int8_aware_tokens,
                    quantize_aware_ffn)
from sw.recovery import (FIRST_TEXT_WINDOWS, Stage, e2e_stages, float_only, parse_stage, repeated_windows,
                         text_key)
from sw.lora import LoRALinear, LoRASettings, lora_recover
from sw.routing_policy import choose_topk, coverage_profile, profile_model, routing_weights
from sw.smollm import (ArrayLinear, FloatLinear, Layer, QLinear, SmolLM, SmolLMShape, array_config, forward,
                       sequence_nll)

CONFIG = CMoEConfig.parse("S1A2E4")           # experts of 32 neurons: whole Q4_1 blocks


def tiny_model(seed: int = 0) -> SmolLM:
    shape = SmolLMShape(layers=2, hidden=64, ffn=128, heads=4, kv_heads=2, rope_base=1e4, norm_eps=1e-5, vocab=97)
    generator = torch.Generator().manual_seed(seed)

    def weight(name: str, n: int, k: int) -> QLinear:
        return QLinear(name, dense=torch.randn(n, k, generator=generator) / math.sqrt(k))

    layers = [Layer(attn_norm=torch.ones(64), ffn_norm=torch.ones(64), q=weight(f"blk.{i}.attn_q", 64, 64),
                    k=weight(f"blk.{i}.attn_k", 32, 64), v=weight(f"blk.{i}.attn_v", 32, 64),
                    o=weight(f"blk.{i}.attn_output", 64, 64), gate=weight(f"blk.{i}.ffn_gate", 128, 64),
                    up=weight(f"blk.{i}.ffn_up", 128, 64), down=weight(f"blk.{i}.ffn_down", 64, 128))
              for i in range(2)]
    return SmolLM(shape=shape, embedding=torch.randn(97, 64, generator=generator), layers=layers,
                  output_norm=torch.ones(64), path=Path("tiny"))


def windows(count: int, seed: int, length: int = 64) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return list(torch.randint(0, 97, (count, length), generator=generator).unbind(0))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matrices: a second thread only adds synchronization (and contention on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def layer_case(model):
    """Layer 0 of the tiny model carved on 256 random tokens with the fitted router."""
    layer = model.layers[0]
    x = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
    carved = carve_layer(x, layer.gate.dense, layer.up.dense, CONFIG, k_act=4)
    carved.router_weight = fit_router(x, expert_output_norms(x, MoEFFN(layer, carved, 2, "exact").experts))
    return layer, x, carved


def test_training_text_is_disjoint():
    assert not set(TRAINING_MODULES) & set(CALIBRATION_MODULES)
    assert not set(TRAINING_MODULES) & set(EVALUATION_MODULES)
    assert len(set(TRAINING_MODULES)) == len(TRAINING_MODULES)


def test_masked_moe_equals_expert_by_expert(model, layer_case):
    """The masked SwiGLU with weight 1 on the selected experts is the deployed MoEFFN (float64)."""
    layer, x, carved = layer_case
    x = x.double()
    ffn = MoEFFN(layer, carved, 2, "exact")
    expected = ffn(model, 0, x, FloatLinear(torch.float64))
    selected = carved.route(x, 2)[0]                      # the router runs in float32
    mask = torch.zeros(x.shape[0], 3, dtype=torch.float64).scatter_(1, selected, 1.0)
    got = masked_moe(x, layer.gate.dense.double(), layer.up.dense.double(), layer.down.dense.double(),
                     neuron_owner(carved, 128), mask)
    assert torch.allclose(got, expected, atol=1e-12)
    assert torch.equal(router_logits(x.float(), carved.router_weight).topk(2).indices, selected)


def test_distill_layer_lowers_error_and_is_deterministic(layer_case):
    layer, x, carved = layer_case
    dense = (torch.nn.functional.silu(x @ layer.gate.dense.T) * (x @ layer.up.dense.T)) @ layer.down.dense.T
    weights = (layer.gate.dense, layer.up.dense, layer.down.dense)
    owner = neuron_owner(carved, 128)
    settings = DistillSettings(steps=25, batch_tokens=128, lr=3e-3, router_lr=1e-3)

    def error(w, router):
        mask = torch.zeros(256, 3).scatter_(1, router_logits(x, router).topk(2).indices, 1.0)
        return float((masked_moe(x, *w, owner, mask) - dense).pow(2).sum() / dense.pow(2).sum())

    trained, router, tokens = distill_layer(x, dense, weights, carved, 2, settings)
    assert tokens == 25 * 128
    assert error(trained, router) < 0.7 * error(weights, carved.router_weight)
    again = distill_layer(x, dense, weights, carved, 2, settings)
    assert all(torch.equal(a, b) for a, b in zip(trained, again[0])) and torch.equal(router, again[1])
    with pytest.raises(CMoEError, match="router_weight=None"):
        distill_layer(x, dense, weights, dataclasses.replace(carved, router_weight=None), 2, settings)


def test_distill_model_runs_in_the_forward(model):
    settings = DistillSettings(steps=5, batch_tokens=64)
    distilled = distill_model(model, windows(2, 2), windows(4, 3), CONFIG, settings, active=[2, 1], k_act=4)
    assert distilled.train_tokens == 2 * 5 * 64 and distilled.active == [2, 1]
    assert distilled.activation_ratios == [0.75, 0.5]
    assert all(s.error_after < s.error_before for s in distilled.stats)
    tokens = windows(1, 4)[0]
    for mode in ("exact", "requantized"):
        ffns = distilled.ffns(model, mode)
        nll, count = sequence_nll(forward(model, tokens, FloatLinear(), ffns), tokens)
        assert count == 63 and math.isfinite(nll)
        assert [int(f.loads.sum()) for f in ffns] == [2 * 64, 64]
    assert distilled.ffns(model, "requantized")[0].experts[0][0].quantized is not None
    with pytest.raises(CMoEError, match=r"active=\[4, 1\]"):
        distill_model(model, windows(1, 2), windows(1, 3), CONFIG, settings, active=[4, 1])


def test_routing_policy():
    weights = routing_weights(torch.tensor([[3.0, 1.0, -2.0], [-1.0, -1.0, -1.0]]))
    assert torch.allclose(weights, torch.tensor([[0.75, 0.25, 0.0], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64))
    profile = coverage_profile(torch.tensor([[3.0, 1.0, -2.0], [0.0, 2.0, 2.0]]))
    assert torch.allclose(profile, torch.tensor([0.0, 0.625, 1.0, 1.0], dtype=torch.float64))
    config = CMoEConfig.parse("S1A2E4")
    peaked = torch.tensor([0.0, 0.9, 0.95, 1.0], dtype=torch.float64)      # one expert covers most
    flat = torch.tensor([0.0, 0.4, 0.7, 1.0], dtype=torch.float64)
    topk = choose_topk([peaked, flat, flat], config, ratio=0.75)         # 2 routed on average: 6 in all
    assert topk == [1, 3, 2] and (config.shared + sum(topk) / 3) / config.experts == 0.75
    with pytest.raises(CMoEError, match=r"ratio=1.5: needs 5 routed experts over 1 layers"):
        choose_topk([flat], config, ratio=1.5)


def test_profile_model(model, layer_case):
    from sw.cmoe import carve_model
    carving = carve_model(model, windows(2, 5), CONFIG, k_act=4, router="fitted")
    profiles = profile_model(model, carving, windows(1, 6))
    assert len(profiles) == 2 and all(p.shape == (4,) and abs(float(p[-1]) - 1) < 1e-12 for p in profiles)
    assert all(bool((p[1:] >= p[:-1]).all()) for p in profiles)


def test_lora_linear_merge():
    generator = torch.Generator().manual_seed(7)
    weight = QLinear("w", dense=torch.randn(64, 64, generator=generator))
    linear = LoRALinear(LoRASettings(dropout=0.0))
    linear.add(weight)
    x = torch.randn(5, 64, generator=generator)
    assert torch.equal(linear(x, weight, "s"), x @ weight.dense.T)            # B = 0: the model as carved
    with torch.no_grad():
        linear.adapters["w"][1].copy_(torch.randn(64, 8, generator=generator) * 0.01)
    merged = linear.merged(weight, requantize=False)
    assert torch.allclose(x @ merged.dense.T, linear(x, weight, "s"), atol=1e-5)
    assert linear.merged(weight, requantize=True).quantized.group_size == 32


def test_lora_recover_and_merged_model(model):
    from sw.cmoe import carve_model
    carving = carve_model(model, windows(2, 5), CONFIG, k_act=4, router="fitted")
    settings = LoRASettings(lr=1e-2, scale_lr=1e-2, dropout=0.0)
    trained = lora_recover(model, carving, windows(3, 8), settings)
    assert trained.train_tokens == 3 * 64 and len(trained.losses) == 3
    assert any(float(s.abs().sum()) > 0 for s in trained.scales)
    tokens = windows(1, 9)[0]
    merged = trained.merged_model(model, "exact")
    logits = forward(merged, tokens, FloatLinear(), trained.ffns(merged, "exact"))
    adapted = carving.ffns(model, "exact")                  # the adapters applied, not merged
    for ffn, scale in zip(adapted, trained.scales):
        ffn.carved = dataclasses.replace(ffn.carved, extra_scale=scale)
    unmerged = forward(model, tokens, trained.linear, adapted)
    assert torch.allclose(logits, unmerged, atol=1e-4)
    forward(trained.merged_model(model), tokens, FloatLinear(), trained.ffns(model, "requantized"))


def test_eval_method_rows_and_settings():
    from sw.eval_smollm import EvalSettings, _rows
    rows = _rows(EvalSettings(configs=("S2A14E16", "S2A10E16"), methods=("ladimo", "cmoe-lora"),
                              array_activations=("int8",)))
    method_rows = {(r.model, r.activation, r.down_mode, r.router) for r in rows if r.router in ("ladimo", "cmoe-lora")}
    assert method_rows == {("S2A10E16", a, d, m) for m in ("ladimo", "cmoe-lora")
                           for a, d in (("float", "exact"), ("float", "requantized"), ("int8", "requantized"))}
    assert {r.carving_key for r in rows if r.router == "ladimo"} == {("S2A10E16", "ladimo")}
    with pytest.raises(ValueError, match=r"methods=\('lora',\): choose from"):
        EvalSettings(methods=("lora",))


def test_report_sections(tmp_path):
    """report.md gains the trained conversions and the per-window spread; the plot takes method rows."""
    from sw.eval_report import write_reports
    base = {"activation": "float", "cycles_per_token": 1000.0, "prefill_utilization": 1.0, "carving_seconds": 1.0,
            "carving_cpu_seconds": 1.0, "decode_cycles_per_token": 10, "decode_utilization": 0.5}
    records = [{**base, "model": "dense", "active_ratio": 1.0, "router": None, "down_mode": None, "perplexity": 8.0,
                "perplexity_windows": [8.0, 9.0, 7.0]},
               {**base, "model": "S2A10E16", "active_ratio": 0.75, "router": "ladimo+policy", "down_mode": "exact",
                "perplexity": 10.0, "perplexity_windows": [10.0, 12.0, 11.0], "train_tokens": 1000,
                "train_seconds": 5.0, "train_cpu_seconds": 4.0, "layer_topk": [9, 11]}]
    meta = {"array": {"rows": 16, "cols": 16, "row_groups": 1}, "evaluation": {"tokens": 256, "long_tokens": 768,
            "modules": ["heapq"], "sha256": "ab" * 32}, "calibration": {"tokens": 512, "modules": ["csv"],
            "sha256": "cd" * 32}, "training": {"tokens": 1024, "modules": ["ast"], "sha256": "ef" * 32},
            "rtl_checks": [], "python": "3.11", "total_seconds": 1.0, "settings": {}}
    write_reports(tmp_path, records, meta)
    text = (tmp_path / "report.md").read_text()
    assert "| S2A10E16 | ladimo+policy | 75.0% | 1,000 | 5 / 4 | 9 11 |" in text
    assert "| dense | — | — | 8.000 | 7.000 – 9.000 |" in text
    assert (tmp_path / "perplexity_vs_cycles.png").stat().st_size > 0


@pytest.mark.parametrize("method", ["ladimo", "ladimo+policy", "cmoe-lora", "ladimo+e2e"])
def test_train_method_fields(model, method, tmp_path):
    """Each --methods conversion trains on the tiny model, gives the report's fields, and is read
    back from its cache the second time."""
    from sw.eval_methods import method_fields, train_method
    from sw.eval_smollm import EvalSettings
    settings = EvalSettings(configs=(), methods=(method,), distill_steps=2, lora_windows=1, k_act=4)
    messages = []
    trained = train_method(model, method, CONFIG, windows(2, 2), windows(2, 3), settings, {}, messages.append,
                           cache=tmp_path)
    assert list(tmp_path.iterdir())
    again = train_method(model, method, CONFIG, windows(2, 2), windows(2, 3), settings, {}, messages.append,
                         cache=tmp_path)
    assert again.seconds == trained.seconds                 # the cached model, not a second training
    fields = method_fields(trained)
    assert fields["train_tokens"] > 0 and fields["train_seconds"] > 0
    assert len(trained.ffns(model, "exact")) == 2
    if method != "cmoe-lora":
        assert len(fields["layer_topk"]) == 2 and trained.router == method
        assert fields["active_ratio"] == sum(fields["layer_active_ratios"]) / 2
    assert bool(messages) == (method == "ladimo+policy")
    if method == "ladimo+e2e":
        assert fields["train_tokens"] == 2 * 2 * 128 + 2 * 64     # layer-wise (2 steps of both windows), e2e

@pytest.fixture(scope="module")
def e2e_case(model):
    distilled = distill_model(model, windows(2, 2), windows(4, 3), CONFIG, DistillSettings(steps=5, batch_tokens=64),
                              k_act=4)
    return model, distilled


def _kl(model, ffns, tokens):
    with torch.no_grad():
        teacher = forward(model, tokens, FloatLinear()).log_softmax(-1)
        student = forward(model, tokens, FloatLinear(), ffns).log_softmax(-1)
    return float(torch.nn.functional.kl_div(student, teacher, log_target=True, reduction="batchmean"))


def test_e2e_lowers_kl_resumes_and_is_deterministic(e2e_case, tmp_path):
    model, distilled = e2e_case
    train = windows(6, 11)
    settings = E2ESettings(steps=6, lr=1e-5, router_lr=1e-5, balance_weight=0.0, eval_every=3)
    trained, state = e2e_distill(model, distilled, train, settings, held_out=windows(1, 12))
    assert trained.router == "ladimo+e2e" and trained.train_tokens == distilled.train_tokens + 6 * 64
    assert [point[0] for point in state.curve] == [0, 3, 6] and len(state.losses) == len(state.train_nll) == 6
    assert _kl(model, trained.ffns(model, "exact"), train[0]) < _kl(model, distilled.ffns(model, "exact"), train[0])
    # Three steps, checkpointed, then resumed to six: the same weights as six in one go.
    checkpoint = tmp_path / "e2e.pt"
    e2e_distill(model, distilled, train, dataclasses.replace(settings, steps=3),
                checkpoint=checkpoint)
    resumed, again = e2e_distill(model, distilled, train, settings, checkpoint=checkpoint)
    assert again.step == 6
    assert all(torch.equal(a, b) for ws, vs in zip(trained.weights, resumed.weights) for a, b in zip(ws, vs))
    assert all(torch.equal(a.router_weight, b.router_weight) for a, b in zip(trained.layers, resumed.layers))
    perplexity = held_out_perplexity(model, resumed.ffns(model, "requantized"), windows(1, 12))
    assert perplexity > 1
    with pytest.raises(CMoEError, match="steps=7: needs as many training windows, got 6"):
        e2e_distill(model, distilled, train, E2ESettings(steps=7))


def test_fake_quant_is_llama_cpp_q4_1_and_straight_through(e2e_case):
    weight = torch.randn(8, 96, generator=torch.Generator().manual_seed(5)) * 0.03
    weight[0, :32] = 0.5                          # a constant block: d = 0
    weight[1, :32] *= 1e-6                        # d an FP16 subnormal
    assert torch.equal(fake_quant_q4_1(weight), requantize_q4_1(weight, "w").dense)
    with pytest.raises(CMoEError, match="last dimension 40 is not a multiple of the Q4_1 block 32"):
        fake_quant_q4_1(torch.zeros(2, 40))
    # The quantization-aware FFN is the re-quantized MoEFFN the array runs, with identity gradients.
    model, distilled = e2e_case
    carved, (gate, up, down) = distilled.layers[0], distilled.weights[0]
    params = [w.clone().requires_grad_(True) for w in (gate, up, down)]
    quantized = quantize_aware_ffn(*params, expert_order(carved))
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(6))
    deployed = distilled.ffns(model, "requantized")[0](model, 0, x, FloatLinear())
    _, mask = _selection_weights(router_logits(x, carved.router_weight), distilled.active[0])
    owner = neuron_owner(carved, 128)
    assert torch.allclose(masked_moe(x, *quantized, owner, mask), deployed, atol=1e-5)
    sum(((w - 1) * w.detach()).sum() for w in quantized).backward()
    assert all(torch.equal(p.grad, q.detach()) for p, q in zip(params, quantized))


def test_e2e_quantize_aware_bf16_stages(e2e_case, tmp_path):
    model, distilled = e2e_case
    text = {"training": windows(6, 11), "held_out": windows(1, 12)}
    stages = [parse_stage("2:1e-4"), parse_stage("3:3e-4:qat:bf16")]
    assert stages[1] == Stage(3, 3e-4, True, "bfloat16", False)
    trained, records = e2e_stages(model, distilled, text, stages, eval_every=1, log=None, cache=tmp_path)
    assert [r["first_window"] for r in records] == [0, 2] and trained.train_tokens == distilled.train_tokens + 5 * 64
    assert len(records[1]["curve"]) == len(records[1]["curve_windows"]) == 4
    first_stage = e2e_stages(model, distilled, text, stages[:1], eval_every=1, log=None, cache=tmp_path)[0]
    # A QAT stage's curve measures the re-quantized model; its first point is the previous stage's.
    for model_at, point in ((first_stage, records[1]["curve"][0]), (trained, records[1]["curve"][-1])):
        assert point[2] == pytest.approx(held_out_perplexity(model, model_at.ffns(model, "requantized"),
                                                             text["held_out"]), rel=1e-5)
    with pytest.raises(argparse.ArgumentTypeError, match="stage='8:x': expected STEPS:LR"):
        parse_stage("8:x")
    with pytest.raises(CMoEError, match="precision='fp8': allowed values are"):
        E2ESettings(precision="fp8")


def test_int8_aware_forward_is_the_int8_array(e2e_case):
    """Quantization-aware weights plus INT8-aware activations give the array's INT8 row of the
    deployed MoEFFN (up to its float32 accumulation); without the activation rounding they do not."""
    model, distilled = e2e_case
    carved, weights = distilled.layers[0], distilled.weights[0]
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    deployed = distilled.ffns(model, "requantized")[0](model, 0, x, ArrayLinear(array_config("int8")))
    _, mask = _selection_weights(router_logits(x.float(), carved.router_weight), distilled.active[0])
    gate, up, down = (w.double() for w in quantize_aware_ffn(*weights, expert_order(carved)))
    owner = neuron_owner(carved, 128)
    aware = masked_moe(int8_aware_tokens(x), gate, up, down, owner, mask.double(),
                       round_hidden=lambda hidden: int8_aware_hidden(hidden, carved))
    plain = masked_moe(x, gate, up, down, owner, mask.double())
    scale = deployed.abs().max()
    assert (aware - deployed).abs().max() < 1e-5 * scale < (plain - deployed).abs().max()
    # The frozen projections: the golden quantizer's codes and scales, identity gradient.
    x = x.float().requires_grad_(True)
    weight = model.layers[0].q
    codes, scales = quantize_activations_int8(x.detach())
    assert torch.equal(Int8AwareLinear()(x, weight, "0"), FloatLinear()((codes * scales[:, None].double()).float(), weight, "0"))
    int8_aware_tokens(x).sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_e2e_int8_stage_repeats_the_text(e2e_case, tmp_path):
    model, distilled = e2e_case
    training = windows(3, 11)
    assert [id(w) for w in repeated_windows(training, 5)] == [id(w) for w in training + training[:2]]
    text = {"training": training, "held_out": windows(1, 12)}
    stages = [parse_stage("2:1e-4:qat"), parse_stage("2:1e-4:int8:qat")]    # the second reads windows 2, 0
    assert stages[1] == Stage(2, 1e-4, True, "float32", True)
    trained, records = e2e_stages(model, distilled, text, stages, eval_every=1, log=None, cache=tmp_path)
    assert records[1]["int8_activations"] and records[1]["first_window"] == 2 and len(records[1]["train_nll"]) == 2
    plain = e2e_stages(model, distilled, text, [stages[0], stages[0]._replace(int8_activations=False)], eval_every=1,
                       log=None, cache=tmp_path)[0]
    assert not torch.equal(trained.weights[0][2], plain.weights[0][2])


def test_stage_flags_schedule_and_text_key():
    assert parse_stage("240:2e-4:qat:int8:bf16:cos:w2") == Stage(240, 2e-4, True, "bfloat16", True, "cosine", 2, 0)
    assert parse_stage("112:2e-4:e188:qat:lin") == Stage(112, 2e-4, True, "float32", False, "linear", 1, 188)
    assert parse_stage("16:2e-4:bf16") == Stage(16, 2e-4, False, "bfloat16")        # the older stages: unchanged
    for bad in ("8:1e-4:cos:lin", "8:1e-4:w0", "8:1e-4:w2:w3", "8:1e-4:qat:qat", "8:1e-4:wx", "8:1e-4:e", "0:1e-4"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected STEPS:LR.*:wN"):
            parse_stage(bad)
    cosine = E2ESettings(lr=2e-4, schedule="cosine", decay_steps=100, lr_floor=0.1)
    assert [lr_factor(cosine, step) for step in (0, 50, 100, 150)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    linear = dataclasses.replace(cosine, schedule="linear")
    assert lr_factor(linear, 25) == pytest.approx(0.775) and lr_factor(E2ESettings(), 10**6) == 1.0
    with pytest.raises(CMoEError, match="decay_steps=0: schedule 'cosine' needs at least 1"):
        E2ESettings(schedule="cosine")
    with pytest.raises(CMoEError, match="schedule='cos': allowed values are"):
        E2ESettings(schedule="cos")
    with pytest.raises(CMoEError, match="windows_per_step=0: must be a positive integer"):
        E2ESettings(windows_per_step=0)
    # Stages that read only the windows the first text had at their positions keep their keys.
    grown = [torch.full((4,), index) for index in range(FIRST_TEXT_WINDOWS + 12)]
    assert text_key(grown, len(grown), 96, 92) == text_key(grown, FIRST_TEXT_WINDOWS, 96, 112) == ""
    assert text_key(grown, 20, 0, 20) == ""
    assert text_key(grown, len(grown), 96, 93) == text_key(grown, len(grown), 208, 1) != ""
    assert text_key(grown, 20, 0, 21) not in ("", text_key(grown, len(grown), 208, 1))


def test_e2e_windows_per_step_and_decay(e2e_case, tmp_path):
    model, distilled = e2e_case
    a, b = windows(2, 11)
    settings = E2ESettings(steps=2, lr=1e-4, router_lr=1e-4, eval_every=0)
    single = e2e_distill(model, distilled, [a, b], settings)[0]
    # Two windows a step: the mean of their gradients; a window twice is the window once.
    double, state = e2e_distill(model, distilled, [a, a, b, b], dataclasses.replace(settings, windows_per_step=2))
    assert double.train_tokens == single.train_tokens + 2 * 64 and len(state.train_nll) == 4 and len(state.losses) == 2
    assert all(torch.equal(u, v) for us, vs in zip(single.weights, double.weights)
               for u, v in zip(us, vs))
    with pytest.raises(CMoEError, match="steps=2: needs 4 training windows, got 3"):
        e2e_distill(model, distilled, [a, a, b], dataclasses.replace(settings, windows_per_step=2))
    decay = dataclasses.replace(settings, steps=3, schedule="cosine", decay_steps=3)
    state = e2e_distill(model, distilled, [a, b, a], decay)[1]
    assert [group["lr"] for group in state.optimizer["param_groups"]] == pytest.approx(
        [1e-4 * lr_factor(decay, 2)] * 2)
    # Stage accounting: w2 takes 2 windows a step, e3 reads windows modulo 3 (positions 4, 5: windows 1, 2).
    text = {"training": windows(6, 11), "held_out": []}
    records = e2e_stages(model, distilled, text, [parse_stage("2:1e-4:w2"), parse_stage("2:1e-4:e3:cos")],
                         eval_every=0, log=None, cache=tmp_path)[1]
    assert [r["first_window"] for r in records] == [0, 4] and [len(r["train_nll"]) for r in records] == [4, 2]
    assert records[0]["text_key"] != records[1]["text_key"]
    with pytest.raises(CMoEError, match="epoch_windows=7: the training text has 6 windows"):
        e2e_stages(model, distilled, text, [parse_stage("2:1e-4:e7")], eval_every=0, log=None, cache=tmp_path)


def test_float_only_model_is_the_float_forward(model):
    tokens = windows(1, 13)[0]
    light = float_only(model)
    assert all(getattr(layer, name).quantized is None for layer in light.layers for name in ("q", "gate", "down"))
    assert torch.equal(forward(light, tokens, FloatLinear()), forward(model, tokens, FloatLinear()))
