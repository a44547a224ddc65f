"""The functional coverage model (verif/coverage.py) and its merged report (gen/coverage, `mixpe coverage`).

The sampling itself runs in every RTL test of the mpgemm bench; `make coverage` merges those runs."""

import json

import pytest

from gen.cli import main
from gen.coverage import point_of, report_record, write_report
from hw.config import MixPEConfig, from_preset
from verif.coverage import STATIC_BINS, Coverage, activation_classes, bins_for, dequant_cause, merge_files

FP_CONFIGS = [from_preset(name) for name in ("w4a16-g8-4x4", "w4bf16-g8-3x2", "w4e4m3-g16-3x2", "w4e5m2-g8-3x2")]


def test_activation_classes_per_format():
    fp16 = activation_classes(from_preset("w4a16-g8-4x4"))
    assert [fp16[code] for code in (0x0000, 0x8000, 0x0001, 0x3C00, 0x7BFF, 0xFC00, 0x7E01)] == \
        ["zero", "neg_zero", "subnormal", "normal", "max_finite", "inf", "nan"]
    e4m3 = activation_classes(from_preset("w4e4m3-g16-3x2"))        # "fn": no Inf, only S.1111.111 is NaN
    assert [e4m3[code] for code in (0x78, 0x7E, 0x7F, 0xFF, 0x07)] == ["normal", "max_finite", "nan", "nan", "subnormal"]
    int8 = activation_classes(from_preset("w4a8-g32-4x4"))
    assert [int8[code] for code in (0x00, 0x80, 0x7F, 0xFF, 0x01)] == ["zero", "min", "max", "negative", "positive"]


@pytest.mark.parametrize("config", [from_preset("w4a8-g32-4x4"), *FP_CONFIGS,
                                    MixPEConfig(rows=8, cols=12, group_size=8, row_groups=4, name="sweep")],
                         ids=lambda config: config.name)
def test_every_bin_of_a_configuration_is_static_or_keyed_by_it(config):
    bins = bins_for(config)
    assert len(bins) == len(set(bins))
    keyed = {f"act.{config.act_format.name}", f"wgt.w{config.weight_bits}", f"zero_point.w{config.weight_bits}"}
    assert all(name in STATIC_BINS or point_of(name) in keyed for name in bins), \
        [name for name in bins if name not in STATIC_BINS and point_of(name) not in keyed]
    # Every class of the format is a bin (the "fn" formats have no Inf).
    classes = {name.rsplit(".", 1)[1] for name in bins if name.startswith("act.")}
    assert classes == set(activation_classes(config))


def test_dequant_cause_names_the_binding_term_of_the_interval():
    assert dequant_cause(from_preset("w4a8-g32-4x4")) is None
    assert dequant_cause(from_preset("w4a8-g8-12x2")) == "rows"
    assert dequant_cause(MixPEConfig(rows=8, cols=3, group_size=8, gdu_lanes=2)) == "lane_work"
    assert dequant_cause(MixPEConfig(rows=8, cols=12, group_size=8, row_groups=4)) == "sweep"


def test_hits_merge_and_round_trip_through_json():
    one = Coverage.defined(["a.x", "a.y", "b.z"], "c1")
    one.hit("a.x", 3)
    one.sample("not.defined")          # another configuration's bin: skipped
    with pytest.raises(KeyError):
        one.hit("not.defined")
    two = Coverage.from_json(json.loads(json.dumps(Coverage.defined(["a.y", "c.w"], "c2").to_json())))
    two.hit("c.w")
    one.merge(two)
    assert one.hits == {"a.x": 3, "a.y": 0, "b.z": 0, "c.w": 1}
    assert (one.runs, one.configs, one.missed_bins) == (2, ["c1", "c2"], ["a.y", "b.z"])
    assert one.summary_line() == "2 of 4 bins hit (50.0 %); not hit: a.y b.z"


def test_merged_report_lists_every_bin_not_hit(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    first = Coverage.defined(bins_for(from_preset("w4a8-g32-4x4")), "w4a8-g32-4x4")
    first.hit("stall.act.bubble.tile_first")
    (runs / "one.json").write_text(json.dumps(first.to_json()))
    record, paths = write_report(runs, tmp_path, "test")
    merged = merge_files([runs / "one.json"])
    assert set(STATIC_BINS) <= set(merged.hits)
    assert record["hit"] == 1 and record["bins"] == len(merged.hits)
    assert record["missed"] == merged.missed_bins and "stall.act.bubble.tile_first" not in record["missed"]
    assert record["points"]["stall.act.bubble"]["hit"] == 1
    text = paths["md"].read_text()
    assert "1 of" in text and "* `core.bank`" in text
    assert report_record(merged, "x")["percent"] == round(100 / len(merged.hits), 2)


def test_cli_writes_the_report_and_fails_below_min_percent(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    full = Coverage.defined(STATIC_BINS, "all")
    for name in STATIC_BINS:
        full.hit(name)
    (runs / "all.json").write_text(json.dumps(full.to_json()))
    assert main(["coverage", "--runs", str(runs), "--out", str(tmp_path), "--min-percent", "100"]) == 0
    assert f"{len(STATIC_BINS)} of {len(STATIC_BINS)} bins hit (100.0 %)" in capsys.readouterr().out
    partial = Coverage.defined(["extra.bin"], "other")
    (runs / "other.json").write_text(json.dumps(partial.to_json()))
    assert main(["coverage", "--runs", str(runs), "--out", str(tmp_path), "--min-percent", "100"]) == 1
    assert "not hit: extra.bin" in capsys.readouterr().out
    assert main(["coverage", "--runs", str(tmp_path / "none"), "--out", str(tmp_path)]) == 2
