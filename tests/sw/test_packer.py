"""Stream packing round trips through the shared layouts, and the cycle model's schedule rules."""

import pytest
import torch

from golden.cycles import predict_cycles
from golden.mpgemm import bitexact_mpgemm
from golden.operands import OperandError, random_operands
from hw.config import from_preset
from hw.layouts import (LayoutValueError, activation_layout, group_layout, pack, result_layout, unpack,
                        weight_layout)
from sw.packer import pack_gemm, pad_operands, result_beats, tile_grid, unpack_results


def test_layout_pack_unpack_round_trip():
    config = from_preset("w4a8-g32-4x4")
    assert unpack(activation_layout(config), pack(activation_layout(config), [-128, 127, 0, -1])) == [-128, 127, 0, -1]
    assert unpack(weight_layout(config), pack(weight_layout(config), [15, 0, 7, 8])) == [15, 0, 7, 8]
    value = {"scale": [0x3C00, 1, 2, 0xFFFF], "zero": [0, 15, 3, 8], "row_param": [0x3F800000] * 4, "last": 1}
    assert unpack(group_layout(config), pack(group_layout(config), value)) == value


@pytest.mark.parametrize("layout_fn, value, fragment", [
    (activation_layout, [128, 0, 0, 0], r"act\[0\]: value 128"),
    (weight_layout, [16, 0, 0, 0], r"wgt\[0\]: value 16"),
    (activation_layout, [0, 0, 0], "expected 4 elements"),
])
def test_pack_rejects_values_that_do_not_fit(layout_fn, value, fragment):
    config = from_preset("w4a8-g32-4x4")
    name = "act" if layout_fn is activation_layout else "wgt"
    with pytest.raises(LayoutValueError, match=fragment):
        pack(layout_fn(config), value, name)


def test_pack_gemm_tiles_and_results_round_trip():
    config = from_preset("w4a8-g32-4x4")
    m, n, k = 6, 9, 64
    x, act_scale, weights = random_operands(config, m, n, k, seed=3)
    tiles = pack_gemm(config, x, act_scale, weights)
    assert [(t.row0, t.col0) for t in tiles] == tile_grid(config, m, n)
    assert len(tiles) == 2 * 3 and all(len(t.act) == k and t.groups == 2 for t in tiles)
    first = unpack(activation_layout(config), tiles[0].act[5])
    assert first == x[:4, 5].tolist()
    last_tile_codes = unpack(weight_layout(config), tiles[-1].wgt[0])
    assert last_tile_codes == weights.codes[8:, 0].tolist() + [0, 0, 0]     # padded columns
    grp = unpack(group_layout(config), tiles[0].grp[1])
    assert grp["last"] == 1 and grp["zero"] == weights.zeros[:4, 1].tolist()

    y_padded = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    beats = result_beats(config, y_padded, m, n)
    assert unpack(result_layout(config), beats[3])["last"] == 1
    y = unpack_results(config, m, n, beats)
    assert torch.equal(y, bitexact_mpgemm(config, x, act_scale, weights))


def test_pack_gemm_float_offsets():
    config = from_preset("w4a8-g32-4x4").replace(zero_mode="float_offset")
    m, n, k = 5, 6, 64
    x, act_scale, weights = random_operands(config, m, n, k, seed=4)
    assert set(group_layout(config).members) == {"scale", "zero", "row_param", "last"}
    tiles = pack_gemm(config, x, act_scale, weights)
    grp = unpack(group_layout(config), tiles[1].grp[1])
    raw = (weights.offsets.view(torch.int16).to(torch.int64) & 0xFFFF)[4:, 1].tolist()
    assert grp["last"] == 1 and grp["zero"] == raw + [0, 0]                # padded columns: offset +0
    y_padded = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    y = unpack_results(config, m, n, result_beats(config, y_padded, m, n))
    assert torch.equal(y, bitexact_mpgemm(config, x, act_scale, weights))


def test_pack_gemm_rejects_bad_operands():
    config = from_preset("w4a8-g32-4x4")
    x, act_scale, weights = random_operands(config, 4, 4, 64, seed=1)
    with pytest.raises(OperandError, match="x"):
        pack_gemm(config, x[:, :40], act_scale, weights)


def test_cycle_model_single_tile_timeline():
    config = from_preset("w4a8-g32-4x4")
    report = predict_cycles(config, [1])
    # 32 steps issue at cycles 0..31; row 0 is offered result_offset cycles after the last step.
    assert report.cycles == 31 + config.result_offset + config.rows
    assert report.dequant_stalls == report.bank_stalls == 0


def test_cycle_model_dequant_stalls_when_rows_exceed_group():
    config = from_preset("w4a8-g8-16x8")
    report = predict_cycles(config, [4])
    assert report.dequant_stalls == 3 * (16 - 8)


def test_cycle_model_bank_stalls_for_short_tiles():
    config = from_preset("w4a8-g32-16x16")
    report = predict_cycles(config, [1] * 4)
    assert report.bank_stalls > 0       # a 32-step tile finishes before the bank two tiles back is read out


def test_cycle_model_reaches_target_utilization():
    """K = 4g tile streams keep >= 0.99 of the array busy. With the derived GDU lanes (2 on this
    core) the last tile's dequantization takes R*C/lanes cycles more than with a GDU per column, a
    tail that 16 tiles do not amortize (0.982) and 32 do."""
    config = from_preset("w4a8-g128-16x16")
    assert predict_cycles(config, [4] * 32).utilization(config) >= 0.99
    per_column = config.replace(gdu_lanes=config.cols)
    assert predict_cycles(per_column, [4] * 16).utilization(per_column) >= 0.99


def test_cycle_model_rejects_empty_tiles():
    with pytest.raises(ValueError, match="groups_per_tile"):
        predict_cycles(from_preset("w4a8-g32-4x4"), [1, 0])
