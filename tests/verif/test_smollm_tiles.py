"""The RTL equals the golden model on tiles of the real SmolLM2-135M weights (layer 0, Q4_1 codes,
d and m from the checkpoint; the activations the layer receives), dense and CMoE-carved with
re-quantized down, INT8 and FP16 activations, under Verilator."""

from __future__ import annotations

import pytest
import torch

from sw.cmoe import CMoEConfig, carve_model
from sw.corpus import CALIBRATION_MODULES, EVALUATION_MODULES, corpus_text, token_windows
from sw.smollm import array_config
from verif.smollm_tiles import check_sampled_tiles, sample_tiles

#: One worker loads the model and carves it once (session fixtures), and builds each core once.
pytestmark = pytest.mark.xdist_group("smollm-layer0")

SEED = 7


@pytest.fixture(scope="session")
def tokens(smollm_tokenizer):
    ids = smollm_tokenizer.encode(corpus_text(EVALUATION_MODULES[:1])).ids
    return token_windows(ids, 24, 1, "held-out")[0]


@pytest.fixture(scope="session")
def carved_ffns(smollm_layer0, smollm_tokenizer):
    ids = smollm_tokenizer.encode(corpus_text(CALIBRATION_MODULES[:2])).ids
    carving = carve_model(smollm_layer0, token_windows(ids, 128, 1, "calibration"), CMoEConfig.parse("S2A2E16"))
    return carving.ffns(smollm_layer0, "requantized")


@pytest.mark.rtl
@pytest.mark.parametrize("activation", ["int8", "fp16"])
@pytest.mark.parametrize("source", ["dense", "S2A2E16"])
def test_sampled_real_tiles_bit_exact(smollm_layer0, tokens, carved_ffns, activation, source):
    """12 tiles sampled from layer 0's GEMMs on a 4x8 float-offset core: every result beat
    bit-exact, cycles equal to the model (replay: the seed and tile origins are in the summary)."""
    config = array_config(activation, rows=4, cols=8)
    check = check_sampled_tiles(config, smollm_layer0, tokens, count=12, seed=SEED,
                                ffns=carved_ffns if source != "dense" else None, source=source)
    assert check["passed"], check
    assert check["mismatches"] == 0 and check["result_beats"] == 12 * 4
    assert check["cycles"] == check["predicted_cycles"]
    ks = {origin["k"] for origin in check["origins"]}
    assert ks <= {576, 1536, 96, 192} and 576 in ks, ks     # hidden, dense down, routed and shared expert down


def test_sampling_is_seeded_and_rejects_bad_count(smollm_layer0, tokens):
    config = array_config("int8", rows=4, cols=8)
    first = sample_tiles(config, smollm_layer0, tokens[:8], count=3, seed=1)
    second = sample_tiles(config, smollm_layer0, tokens[:8], count=3, seed=1)
    assert first[2] == second[2] and [t.act for t in first[0]] == [t.act for t in second[0]]
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))
    assert first[2] != sample_tiles(config, smollm_layer0, tokens[:8], count=3, seed=2)[2]
    with pytest.raises(ValueError, match="count=0: must be a positive integer"):
        sample_tiles(config, smollm_layer0, tokens, count=0, seed=1)
