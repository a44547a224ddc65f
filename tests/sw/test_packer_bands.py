"""Row groups (per-band weights) without the RTL: layouts, banded packing, validation, golden results."""

import pytest
import torch

from golden.cycles import predict_cycles
from golden.mpgemm import bitexact_mpgemm
from golden.operands import OperandError, random_operands
from hw.config import MixPEConfig, from_preset
from hw.layouts import activation_layout, group_layout, pack, unpack, weight_layout
from sw.packer import (Band, banded_tile_result, pack_banded_tile, pack_gemm, pad_operands, result_beats,
                       unpack_banded_tile, unpack_results)

RG4 = MixPEConfig(rows=8, cols=4, group_size=16, row_groups=4, name="w4a8-g16-8x4-rg4")


def _bands(config, shapes, k, seed=0):
    return [Band(*random_operands(config, m, n, k, seed=seed + index)) for index, (m, n) in enumerate(shapes)]


def test_one_row_group_keeps_layouts_and_hash():
    config = from_preset("w4a8-g32-4x4")
    assert config.replace(row_groups=1).hash == config.hash
    assert config.replace(gdu_stages=0, gdu_lanes=4).hash == "788e9d536f2e"
    assert weight_layout(config).size == 4 * 4 and group_layout(config).size == 4 * 16 + 4 * 4 + 4 * 32 + 1


def test_banded_layouts_carry_one_block_per_band():
    assert weight_layout(RG4).size == 4 * 4 * 4                     # row_groups x C codes of b bits
    layout = group_layout(RG4)
    assert layout.size == 16 * 16 + 16 * 4 + 8 * 32 + 1              # scales, zeros per band x column; token scales per row
    value = {"scale": list(range(16)), "zero": [i % 16 for i in range(16)], "row_param": [1] * 8, "last": 1}
    assert unpack(layout, pack(layout, value)) == value
    float_offsets = RG4.replace(zero_mode="float_offset")
    assert set(group_layout(float_offsets).members) == {"scale", "zero", "row_param", "last"}
    assert group_layout(float_offsets).size == 16 * 16 * 2 + 8 * 32 + 1


def test_pack_banded_tile_places_each_band():
    k = 32
    bands = _bands(RG4, [(2, 4), (1, 3), (2, 2)], k, seed=5)        # band 3 missing
    tile = pack_banded_tile(RG4, bands)
    assert (tile.row0, tile.col0, len(tile.act), len(tile.wgt), tile.groups) == (0, 0, k, k, 2)
    codes = unpack(weight_layout(RG4), tile.wgt[7])
    assert codes[0:4] == bands[0].weights.codes[:, 7].tolist()
    assert codes[4:8] == bands[1].weights.codes[:, 7].tolist() + [0]
    assert codes[8:12] == bands[2].weights.codes[:, 7].tolist() + [0, 0]
    assert codes[12:16] == [0] * 4
    assert unpack(activation_layout(RG4), tile.act[3]) == (
        bands[0].x[:, 3].tolist() + bands[1].x[:, 3].tolist() + [0] + bands[2].x[:, 3].tolist() + [0, 0])
    grp = unpack(group_layout(RG4), tile.grp[1])
    assert grp["last"] == 1 and tile.groups == 2
    assert grp["zero"][4:7] == bands[1].weights.zeros[:, 1].tolist() and grp["zero"][7] == 0
    raw = (bands[2].weights.scales.view(torch.int16).to(torch.int64) & 0xFFFF)[:, 1].tolist()
    assert grp["scale"][8:12] == raw + [0, 0] and grp["scale"][12:] == [0] * 4
    assert grp["row_param"][3] == grp["row_param"][7] == 0                # padded rows: token scale +0


@pytest.mark.parametrize("zero_mode, encoding", [("integer", "unsigned"), ("integer", "signed"),
                                                 ("float_offset", "unsigned")])
def test_banded_tile_result_is_each_band_alone(zero_mode, encoding):
    config = RG4.replace(zero_mode=zero_mode, weight_encoding=encoding)
    bands = _bands(config, [(2, 4), (2, 1), (1, 4)], 48, seed=7)
    rows = banded_tile_result(config, bands)
    assert rows.shape == (8, 4) and rows.dtype == torch.float32
    for band, block in zip(bands, unpack_banded_tile(config, bands, rows)):
        assert torch.equal(block, bitexact_mpgemm(config, band.x, band.act_scale, band.weights))
    padding = torch.ones(8, 4, dtype=torch.bool)
    for b, band in enumerate(bands):
        padding[2 * b:2 * b + band.x.shape[0], :band.weights.codes.shape[0]] = False
    assert bool((rows[padding] == 0).all())                              # exact (signed) zeros


def test_row_band_of_one_row():
    config = MixPEConfig(rows=4, cols=4, group_size=8, row_groups=4, name="w4a8-g8-4x4-rg4")
    assert config.band_rows == 1
    bands = _bands(config, [(1, 4)] * 4, 16, seed=9)
    rows = banded_tile_result(config, bands)
    for b, band in enumerate(bands):
        assert torch.equal(rows[b:b + 1], bitexact_mpgemm(config, band.x, band.act_scale, band.weights))


@pytest.mark.parametrize("shapes, ks, fragment", [
    ([(2, 4)] * 5, None, r"bands: got 5; a tile holds 1 to row_groups=4 bands"),
    ([], None, r"bands: got 0"),
    ([(3, 4)], None, r"bands\[0\]\.x: 3 token rows; a band holds at most band_rows=2 \(rows=8 / row_groups=4\)"),
    ([(2, 4), (2, 5)], None, r"bands\[1\]\.weights: 5 output channels; a band holds at most cols=4"),
    ([(2, 4), (2, 4)], [32, 16], r"bands\[1\]\.x: K=16, but bands\[0\] has K=32; every band of a tile has the same K"),
])
def test_banded_tile_rejects_bad_bands(shapes, ks, fragment):
    ks = ks or [32] * len(shapes)
    bands = [Band(*random_operands(RG4, m, n, k, seed=i)) for i, ((m, n), k) in enumerate(zip(shapes, ks))]
    for function in (pack_banded_tile, banded_tile_result):
        with pytest.raises(OperandError, match=fragment):
            function(RG4, bands)


def test_banded_tile_rejects_bad_operands_naming_the_band():
    x, act_scale, weights = random_operands(RG4, 2, 4, 32, seed=1)
    with pytest.raises(OperandError, match=r"bands\[1\]\.act_scale: None"):
        pack_banded_tile(RG4, [Band(x, act_scale, weights), Band(x, None, weights)])
    with pytest.raises(OperandError, match=r"bands\[0\]: x: .*not a multiple of group_size=16"):
        pack_banded_tile(RG4, [Band(x[:, :24], act_scale, weights)])
    with pytest.raises(OperandError, match=r"rows_fp32: shape \(4, 4\), expected \(8, 4\)"):
        unpack_banded_tile(RG4, [Band(x, act_scale, weights)], torch.zeros(4, 4))


def test_pack_gemm_with_row_groups_repeats_the_tile_weights_in_every_band():
    config = RG4
    m, n, k = 11, 6, 32
    x, act_scale, weights = random_operands(config, m, n, k, seed=12)
    tiles = pack_gemm(config, x, act_scale, weights)
    plain = config.replace(row_groups=1)
    plain_tiles = pack_gemm(plain, x, act_scale, weights)
    assert [(t.row0, t.col0) for t in tiles] == [(t.row0, t.col0) for t in plain_tiles]
    for tile, plain_tile in zip(tiles, plain_tiles):
        assert tile.act == plain_tile.act
        for beat, plain_beat in zip(tile.wgt, plain_tile.wgt):
            assert unpack(weight_layout(config), beat) == unpack(weight_layout(plain), plain_beat) * 4
        grp, plain_grp = unpack(group_layout(config), tile.grp[0]), unpack(group_layout(plain), plain_tile.grp[0])
        assert grp["scale"] == plain_grp["scale"] * 4 and grp["zero"] == plain_grp["zero"] * 4
        assert grp["row_param"] == plain_grp["row_param"]
    y_padded = bitexact_mpgemm(config, *pad_operands(config, x, act_scale, weights))
    assert torch.equal(unpack_results(config, m, n, result_beats(config, y_padded, m, n)),
                       bitexact_mpgemm(config, x, act_scale, weights))


def test_cycle_model_with_row_groups():
    # 8x12, g=8, 4 bands: the last band's first row sweeps the 12 columns, group_interval 10 > g.
    worst = MixPEConfig(rows=8, cols=12, group_size=8, row_groups=4, name="w4a8-g8-8x12-rg4")
    assert worst.group_interval == 10 and worst.replace(row_groups=1).group_interval == 8
    assert predict_cycles(worst, [3]).dequant_stalls == 2 * 2
    assert RG4.group_interval == RG4.group_size                          # no stalls on 8x4 with g=16
