"""The RTL spot-check of a trained conversion (``python -m verif.recovery_tiles``) on layer 0 of the
real SmolLM2-135M, distilled for one step (seconds, no cache): tiles from its re-quantized expert
weights, the float64 host, and (slow) bit-exact RTL on a small 4x8 core (the build of test_smollm_tiles)."""

from __future__ import annotations

import pytest
import torch

from sw.cmoe import CMoEConfig
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, token_windows
from sw.eval_methods import distilled_model
from sw.ladimo import TRAINING_MODULES, DistillSettings
from verif.recovery_tiles import is_expert_weight, main, trained_tile_checks
from verif.smollm_tiles import sample_tiles

#: One worker loads the model once (session fixtures), and builds each core once.
pytestmark = pytest.mark.xdist_group("smollm-layer0")


@pytest.fixture(scope="module")
def trained(smollm_layer0, smollm_tokenizer):
    def windows(modules, length):
        return token_windows(smollm_tokenizer.encode(corpus_text(modules)).ids, length, 1, "text")
    return distilled_model(smollm_layer0, CMoEConfig.parse("S2A10E16"), windows(CALIBRATION_MODULES[:2], 64),
                           windows(TRAINING_MODULES[:1], 64), DistillSettings(steps=1, batch_tokens=32), 10,
                           cache=None)


@pytest.fixture(scope="module")
def tokens(smollm_tokenizer):
    return token_windows(smollm_tokenizer.encode(corpus_text(EVALUATION_MODULES[:1])).ids, 24, 1, "held-out")[0]


def test_expert_weights():
    assert is_expert_weight("blk.3.S2A10E16.expert12.down") and is_expert_weight("blk.0.S2A10E16.shared.gate")
    assert not is_expert_weight("blk.0.attn_q") and not is_expert_weight("blk.0.S2A10E16.ladimo.gate")


def test_checks_sample_the_trained_model(smollm_layer0, trained, tokens):
    """Every activation format is checked on the float64 host with the trained, re-quantized FFNs."""
    calls = []

    def check(config, model, tokens, *, count, seed, ffns, source):
        calls.append((config.name, model.embedding.dtype, source))
        origins = sample_tiles(config, model, tokens, count=count, seed=seed, ffns=ffns)[2]
        assert {origin.k for origin in origins if is_expert_weight(origin.weight)} <= {576, 96, 192}
        return {"passed": True, "origins": [{"weight": origin.weight} for origin in origins]}

    checks = trained_tile_checks(smollm_layer0, trained, tokens, count=6, seed=3, rows=4, cols=8, check=check)
    assert [call[0] for call in calls] == ["smollm-w4int8-g32-4x8", "smollm-w4fp16-g32-4x8"]
    assert all(call[1] == torch.float64 and call[2] == "S2A10E16 (ladimo)" for call in calls)
    assert all(0 < record["expert_tiles"] <= 6 for record in checks)


@pytest.mark.parametrize("argv, message", [(["--config", "S2A10"], "'S2A10'"), (["--tiles", "0"], "--tiles=0")])
def test_bad_options_exit_2(argv, message, capsys):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m verif.recovery_tiles: ") and message in error and error.count("\n") == 1


@pytest.mark.slow          # ~8 CPU s, most of it cocotb's start: test_smollm_tiles covers the RTL in the default tier
@pytest.mark.rtl
def test_trained_tiles_bit_exact_on_the_rtl(smollm_layer0, trained, tokens):
    (check,) = trained_tile_checks(smollm_layer0, trained, tokens, activations=("int8",), count=4, seed=5,
                                   rows=4, cols=8)
    assert check["passed"] and check["mismatches"] == 0 and check["result_beats"] == 4 * 4, check
    assert check["cycles"] == check["predicted_cycles"]
