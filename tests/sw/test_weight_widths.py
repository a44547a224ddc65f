"""5- and 6-bit codes (every width 2..8 builds) through the packer and the cycle model: the code
fields of the weight and group beats carry them, the results unpack bit-exactly, and the schedule
does not depend on the width."""

import pytest
import torch

from golden.cycles import predict_cycles
from golden.mpgemm import bitexact_mpgemm
from golden.operands import random_operands
from hw.config import from_preset
from hw.layouts import group_layout, unpack, weight_layout
from sw.packer import pack_gemm, pad_operands, result_beats, unpack_results


@pytest.mark.parametrize("preset, changes", [
    ("w5a8-g32-4x4", {}),
    ("w5a8-g32-4x4", {"weight_encoding": "signed"}),             # llama.cpp Q5_0: zero point 16
    ("w5a16-g32-4x4", {"zero_mode": "float_offset"}),            # llama.cpp Q5_1: FP16 offsets
    ("w6a8-g64-4x4", {}),
])
def test_pack_gemm_round_trip(preset, changes):
    config = from_preset(preset).replace(**changes)
    m, n, k = 5, 6, 2 * config.group_size
    x, act_scale, weights = random_operands(config, m, n, k, seed=config.weight_bits)
    assert int(weights.codes.max()) > 2 ** (config.weight_bits - 1)       # the top bit is exercised
    tiles = pack_gemm(config, x, act_scale, weights)
    assert unpack(weight_layout(config), tiles[0].wgt[3]) == weights.codes[:4, 3].tolist()
    zero = unpack(group_layout(config), tiles[1].grp[0])["zero"]
    if not config.float_offset:
        assert zero == weights.zeros[4:, 0].tolist() + [config.symmetric_zero if changes else 0] * 2
    padded = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    y = unpack_results(config, m, n, result_beats(config, padded, m, n))
    assert torch.equal(y, bitexact_mpgemm(config, x, act_scale, weights))


def test_cycle_model_does_not_depend_on_the_width():
    for preset in ("w4a8-g32-16x16", "w4a8-g8-16x8"):
        expected = predict_cycles(from_preset(preset), [3, 1, 2])
        for bits in (5, 6):
            got = predict_cycles(from_preset(preset).replace(weight_bits=bits), [3, 1, 2])
            assert (got.cycles, got.dequant_stalls, got.bank_stalls) == \
                (expected.cycles, expected.dequant_stalls, expected.bank_stalls)
