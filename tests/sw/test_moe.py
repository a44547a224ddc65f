"""MoE layers: reading transformers blocks, routing, the row-group mapper, the backends, ``mixpe moe``."""

import json
import math
import random

import pytest
import torch

from gen.cli import main
from hw.config import MixPEConfig
from sw.moe import (MOE_FAMILIES, MoEError, float_forward, quantize_layer, read_moe_block, route, shared_expert_scale,
                    tiny_block)
from sw.moe_mapper import GemmShape, MapperError, layer_shapes, map_layer, map_stage
from sw.moe_run import MoESpec, execute_layer, make_backend, run_moe

#: Small arrays keep the tests fast; hidden and FFN sizes are multiples of their group sizes.
SMALL = MixPEConfig(rows=8, cols=4, weight_bits=4, group_size=16, row_groups=2, name="w4a8-g16-8x4-rg2")
ARRAY16 = MixPEConfig(rows=16, cols=16, weight_bits=4, group_size=32, row_groups=4, name="w4a8-g32-16x16-rg4")


def _block_and_input(family, seed=0, tokens=24):
    block = tiny_block(family, hidden=32, ffn=48, experts=4, top_k=2, seed=seed)
    return block, torch.randn(tokens, 32, generator=torch.Generator().manual_seed(seed + 1))


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_read_block_weights_and_float_forward_match_transformers(family):
    block, hidden = _block_and_input(family)
    layer = read_moe_block(block)
    names = ("w1", "w3", "w2") if family == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    for expert, module in zip(layer.experts, block.experts):
        for matrix, name in zip(("gate", "up", "down"), names):
            assert torch.equal(expert.matrix(matrix), getattr(module, name).weight.detach())
    assert (layer.shared_expert is not None) == (family == "qwen2_moe")
    with torch.no_grad():
        expected, _ = block(hidden[None])
    ours = float_forward(layer, hidden, route(layer, hidden))
    scale = float(expected.abs().max())
    assert float((ours - expected[0].double()).abs().max()) <= 1e-5 * scale, family


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_router_batches_equal_transformers_routing(family):
    block, hidden = _block_and_input(family, seed=3, tokens=40)
    layer = read_moe_block(block)
    routing = route(layer, hidden)
    seen = {}
    hooks = [module.register_forward_hook(lambda mod, args, out, e=e: seen.__setitem__(e, args[0].detach().clone()))
             for e, module in enumerate(block.experts)]
    try:
        with torch.no_grad():
            _, logits = block(hidden[None])
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.equal(logits, torch.nn.functional.linear(hidden, layer.router))
    assert sum(routing.counts()) == 40 * layer.top_k
    for e in range(layer.num_experts):
        tokens = routing.tokens(e)
        fed = seen.get(e, torch.empty(0, 32))
        assert fed.shape[0] == len(tokens), f"{family} expert {e}"
        # transformers feeds the expert its tokens ordered by top-k slot, then token index
        matched = sorted(int((hidden == row).all(dim=1).nonzero()[0]) for row in fed)
        assert matched == tokens.tolist(), f"{family} expert {e}"


def test_bad_block_and_family_are_rejected():
    with pytest.raises(MoEError, match="block: Linear is not supported"):
        read_moe_block(torch.nn.Linear(2, 2))
    with pytest.raises(MoEError, match="family='llama'"):
        tiny_block("llama")
    with pytest.raises(MoEError, match=r"hidden=40: must be a multiple of group_size=16"):
        quantize_layer(SMALL, read_moe_block(tiny_block("olmoe", hidden=40, ffn=48)))


def _coverage(config, shapes):
    """Per shape an int tensor (M, N) counting how often each output is computed by the schedule."""
    schedule = map_stage(config, shapes)
    hits = [torch.zeros(s.m, s.n, dtype=torch.int64) for s in shapes]
    for tile in schedule.tiles:
        assert 1 <= len(tile.bands) <= config.row_groups
        for item in tile.bands:
            shape = shapes[item.gemm]
            assert shape.k == tile.k and 1 <= item.rows <= config.band_rows and 1 <= item.cols <= config.cols
            hits[item.gemm][item.row0:item.row0 + item.rows, item.col0:item.col0 + item.cols] += 1
    return schedule, hits


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("config", [SMALL, ARRAY16, ARRAY16.replace(row_groups=1), ARRAY16.replace(row_groups=16)],
                         ids=lambda c: f"{c.rows}x{c.cols}-rg{c.row_groups}")
def test_mapper_computes_every_output_exactly_once(config, seed):
    rng = random.Random(seed)
    counts = [rng.choice([0, 1, 2, 3, 5, 17, 40]) for _ in range(6)]
    g = config.group_size
    stages = layer_shapes(counts, hidden=2 * g, ffn=3 * g + 0, shared_ffn=5 * g, tokens=23)
    for shapes in stages:
        schedule, hits = _coverage(config, shapes)
        for shape, hit in zip(shapes, hits):
            assert bool((hit == 1).all()), f"seed={seed} counts={counts} {shape}"
        items = {}
        for s in shapes:
            items[s.k] = items.get(s.k, 0) + math.ceil(s.m / config.band_rows) * math.ceil(s.n / config.cols)
        assert len(schedule.tiles) == sum(math.ceil(n / config.row_groups) for n in items.values()), \
            f"seed={seed}: tiles are not packed full"


def test_mapper_rejects_k_that_is_not_group_aligned():
    with pytest.raises(MapperError, match=r"shapes\[0\].k=40: must be a multiple of group_size=16"):
        map_stage(SMALL, [GemmShape(0, "gate", 3, 8, 40)])


def test_row_groups_reach_target_utilization_at_four_tokens_per_expert():
    stages = layer_shapes([4] * 8, hidden=256, ffn=512)
    banded, plain = map_layer(ARRAY16, stages), map_layer(ARRAY16.replace(row_groups=1), stages)
    assert banded.utilization >= 0.8, banded.summary()
    assert 0.24 <= plain.utilization <= 0.25, plain.summary()
    assert banded.cycles * 3 < plain.cycles


@pytest.mark.parametrize("family, seed", [("qwen2_moe", 5), ("mixtral", 6)])
def test_model_backend_equals_golden_bit_for_bit(family, seed):
    """The tile-by-tile execution of the mapped schedule reproduces the whole-GEMM golden results;
    Qwen2-MoE's shared expert (FFN 2x) puts two K values into stage 2."""
    block, hidden = _block_and_input(family, seed=seed, tokens=13)
    layer = read_moe_block(block)
    routing = route(layer, hidden)
    quantized = quantize_layer(SMALL, layer)
    shared_scale = shared_expert_scale(layer, hidden) if layer.shared_expert is not None else None
    golden = execute_layer(SMALL, quantized, hidden, routing, make_backend("golden", SMALL), shared_scale)
    model = execute_layer(SMALL, quantized, hidden, routing, make_backend("model", SMALL), shared_scale)
    assert torch.equal(golden.output, model.output), f"seed={seed}"
    assert len({tile.k for tile in model.schedules[1].tiles}) == (2 if family == "qwen2_moe" else 1)
    assert model.cycles == golden.cycles == sum(s.cycles for s in model.schedules)


@pytest.mark.parametrize("family, bits, tolerance", [("mixtral", 8, 0.05), ("qwen2_moe", 8, 0.05),
                                                     ("olmoe", 4, 0.3)])
def test_golden_layer_within_bound_and_close_to_transformers(family, bits, tolerance):
    """Against the float64 reference on the same quantized operands the error is bounded
    (error_bound per GEMM, propagated through the combine); against the transformers block in
    float32 (unquantized weights and activations) it is the quantization error, here
    max |y - y_transformers| / max |y_transformers| <= 5 % for W8A8 and 30 % for W4A8."""
    config = SMALL.replace(weight_bits=bits)
    spec = MoESpec(family=family, hidden=32, ffn=48, tokens=24, seed=7)
    report = run_moe(config, spec, "golden")
    assert report["within_bound"] and report["gemms_within_error_bound"], report
    assert report["max_rel_err_vs_float"] <= tolerance, report["max_rel_err_vs_float"]
    block, layer, hidden = spec.build()
    routing = route(layer, hidden)
    shared_scale = shared_expert_scale(layer, hidden) if layer.shared_expert is not None else None
    golden = execute_layer(config, quantize_layer(config, layer), hidden, routing, make_backend("golden", config),
                           shared_scale)
    with torch.no_grad():
        expected = block(hidden[None])[0][0].double()
    relative = float((golden.output - expected).abs().max() / expected.abs().max())
    assert relative <= tolerance and abs(relative - report["max_rel_err_vs_float"]) <= 1e-5


def test_cli_moe_writes_report_with_contract_fields(tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["moe", "--backend", "model", "--config", str(tmp_path / "small.json"), "--row-groups", "2",
            "--hidden", "32", "--ffn", "32", "--tokens", "10", "--seed", "4", "--out", str(out)]
    (tmp_path / "small.json").write_text(json.dumps({"rows": 8, "cols": 4, "weight_bits": 4, "group_size": 16}))
    assert main(argv) == 0
    report = json.loads(out.read_text())
    for field in ("backend", "cycles", "utilization", "max_abs_diff_vs_golden", "max_rel_err_vs_float"):
        assert field in report, field
    assert report["backend"] == "model" and report["max_abs_diff_vs_golden"] == 0.0
    assert report["cycles"] == report["predicted_cycles"] > 0 and 0 < report["utilization"] <= 1
    assert sum(e["tokens"] for e in report["experts"]) == 10 * 2
    assert "PASS moe backend=model seed=4" in capsys.readouterr().out


def test_cli_moe_rejects_bad_backend_and_row_groups(capsys):
    with pytest.raises(SystemExit):
        main(["moe", "--backend", "fpga"])
    assert main(["moe", "--row-groups", "3"]) == 2
    assert "row_groups=3: must be a positive divisor of rows=16" in capsys.readouterr().err


def test_bench_mapper_table_decode_rows():
    """``make bench``'s table on the Mixtral-8x7B shape: with 4 rows per band, t tokens per expert
    fill t/4 of each band (up to 1) against t/16 of the rows in the plain mapping."""
    from gen.moe_bench import mapper_table
    config = MixPEConfig(rows=16, cols=16, weight_bits=4, group_size=128, name="w4a8-g128-16x16")
    for row in mapper_table(config, (1, 2, 4, 8)):
        t = row["tokens_per_expert"]
        assert row["row_groups"] == 4
        assert min(1, t / 4) * 0.99 <= row["banded"]["utilization"] <= min(1, t / 4), row
        assert t / 16 * 0.99 <= row["plain"]["utilization"] <= t / 16, row
