"""OpenSTA static timing (gen/synth/sta.py, timing.py, timing_report.py, ``mixpe timing``): a 4 x 4 MixPE
PE, act_sum and GDU through synthesis and timing, determinism, and the errors for a missing ``sta``,
a Liberty file without delay tables, no Liberty file and a netlist OpenSTA cannot link.

One to two minutes (the 4 x 4 GDU's two library mappings); the module runs on one xdist worker.
"""

import json
import shutil

import pytest

from gen.cli import main as cli_main
from gen.synth import OSU018_PATH, Liberty, resolve_liberty, run_synthesis, synthesize
from gen.synth.errors import TimingError
from gen.synth.timing import block_timing, check_timing_inputs, netlist_timing
from gen.synth.timing_report import array_clocks, timing_records, write_timing_reports
from gen.synth.yosys import netlist_path
from hw.config import from_preset

pytestmark = [
    pytest.mark.skipif(shutil.which("sta") is None, reason="OpenSTA (Debian opensta) not installed: make tools"),
    pytest.mark.skipif(not OSU018_PATH.is_file(), reason="qflow-tech-osu018 not installed: make tools"),
    pytest.mark.xdist_group("timing-4x4"),
    pytest.mark.synth,
]

PRESET = "w4a8-g32-4x4"
CONFIG = from_preset(PRESET)
BLOCKS = ["pe", "act_sum", "gdu"]


@pytest.fixture(scope="module")
def liberty():
    return resolve_liberty("osu018")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def records(liberty, synth_root):
    return run_synthesis(CONFIG, designs=["mixpe"], blocks=BLOCKS, liberty=liberty, out_root=synth_root, log=None)


@pytest.fixture(scope="module")
def timed(records, liberty, synth_root):
    return {r["block"]: r for r in timing_records(CONFIG, records, liberty, synth_root=synth_root)}


def test_synth_records_gain_critical_path_and_fmax(records):
    for record in records:
        assert record["critical_path_ns"] > 0
        assert record["fmax_mhz"] == pytest.approx(1000 / record["critical_path_ns"], rel=1e-5)
        assert record["area_um2"] > 0 and record["timing_area_um2"] > 0


def test_every_block_has_a_positive_path_and_its_fmax(timed):
    assert sorted(timed) == sorted(BLOCKS)
    for block, record in timed.items():
        assert record["critical_path_ns"] > 0, block
        assert record["fmax_mhz"] == pytest.approx(1000 / record["critical_path_ns"], rel=1e-5)
        # Critical path = arrival + the endpoint's setup time, both at the 10 ns constraint.
        assert record["critical_path_ns"] == pytest.approx(10 - record["slack_ns"], abs=1e-3)
        assert record["arrival_ns"] < record["critical_path_ns"]
        assert record["path_start"] and record["path_end"] and record["path_cells"] > 0
        assert record["area_netlist_path_ns"] > 0
        assert record["timing_clock"] == "clk"
        assert record["timing_setup"]["wire_load"] == "none"
        assert record["timing_setup"]["input_drive"] == "BUFX2"
    # The GDU's FP32 units are pipelined to a PE's clock (issue 14: at most 1.1x the PE's path).
    assert timed["gdu"]["critical_path_ns"] <= 1.1 * timed["pe"]["critical_path_ns"]
    # The PE's worst path ends in its accumulator register (a flip-flop, named by the net it drives).
    assert timed["pe"]["path_end_kind"] == "DFFPOSX1" and timed["pe"]["path_end"].startswith("accumulator[")


def test_numbers_are_deterministic(timed, records, liberty, synth_root, tmp_path):
    again = block_timing(CONFIG, "mixpe", "gdu", liberty, synth_root=synth_root, use_cache=False)
    assert again["timing_cached"] is False
    fields = ("critical_path_ns", "fmax_mhz", "path_start", "path_end", "path_cells", "area_netlist_path_ns")
    assert {k: again[k] for k in fields} == {k: timed["gdu"][k] for k in fields}
    # A fresh synthesis of the PE gives the same netlist, hence the same timing.
    fresh = synthesize(CONFIG, "mixpe", "pe", liberty, out_root=tmp_path)
    assert fresh["cached"] is False
    assert (netlist_path(tmp_path, CONFIG, "mixpe", "pe", liberty).read_bytes()
            == netlist_path(synth_root, CONFIG, "mixpe", "pe", liberty).read_bytes())
    assert block_timing(CONFIG, "mixpe", "pe", liberty, synth_root=tmp_path)["critical_path_ns"] \
        == timed["pe"]["critical_path_ns"]


def test_rerun_is_cached(timed, liberty, synth_root):
    record = block_timing(CONFIG, "mixpe", "pe", liberty, synth_root=synth_root)
    assert record["timing_cached"] is True and record["critical_path_ns"] == timed["pe"]["critical_path_ns"]


def test_reports(timed, liberty, tmp_path):
    records = list(timed.values())
    paths = write_timing_reports(CONFIG, records, liberty, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert [(r["design"], r["block"]) for r in data] == [("mixpe", b) for b in timed]
    for record in data:
        for field in ("critical_path_ns", "fmax_mhz", "path_start", "path_end", "timing_setup", "area_um2"):
            assert field in record
    (clock,) = json.loads(paths["summary"].read_text())["arrays"]
    assert clock["design"] == "mixpe" and clock["limiting_block"] == "gdu"
    assert clock["fmax_mhz"] == timed["gdu"]["fmax_mhz"] == array_clocks(CONFIG, records)[0]["fmax_mhz"]
    assert clock["path_vs_pe"] == pytest.approx(timed["gdu"]["critical_path_ns"] / timed["pe"]["critical_path_ns"])
    text = paths["md"].read_text()
    assert "Wire load: none" in text and "| mixpe | gdu |" in text and "set by its `gdu`" in text
    assert f"| {clock['path_vs_pe']:.2f}x |" in text


def test_cli(records, synth_root, tmp_path, capsys):
    # Served from the module's synthesis and timing caches.
    assert cli_main(["timing", "--preset", PRESET, "--designs", "mixpe", "--blocks", *BLOCKS,
                     "--synth-dir", str(synth_root), "--out", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert "[cached]" in output and "report.md" in output
    assert (tmp_path / "report.json").is_file()


def test_missing_sta_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TimingError, match=r"OpenSTA \('sta'\) is not installed: run 'make tools' as root"):
        check_timing_inputs(resolve_liberty("osu018"))
    out = tmp_path / "out"
    assert cli_main(["timing", "--preset", PRESET, "--blocks", "pe", "--synth-dir", str(tmp_path / "synth"),
                     "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "opensta" in error and "make tools" in error
    assert not out.exists() and not (tmp_path / "synth").exists()


def test_no_liberty_or_no_delay_tables_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(TimingError, match="needs a Liberty file: pass LIBERTY=osu018"):
        check_timing_inputs(None)
    assert cli_main(["timing", "--preset", PRESET, "--liberty", "", "--out", str(tmp_path / "out")]) == 1
    assert "needs a Liberty file" in capsys.readouterr().err
    path = tmp_path / "untimed.lib"
    path.write_text("library (untimed) {\n  cell (NAND2X1) { area : 1; pin (Y) { direction : output; "
                    "function : \"!(A&B)\"; } }\n  cell (DFF) { area : 4; ff (IQ, IQN) { clocked_on : C; "
                    "next_state : D; } }\n}\n")
    with pytest.raises(TimingError, match="has no delay tables"):
        check_timing_inputs(Liberty.load(path))
    assert not (tmp_path / "out").exists()


def test_netlist_that_does_not_link_is_a_clear_error(records, liberty, synth_root, tmp_path):
    netlist = netlist_path(synth_root, CONFIG, "mixpe", "pe", liberty)
    broken = tmp_path / "broken.v"
    broken.write_text(netlist.read_text().replace("DFFPOSX1 ", "NOSUCHCELL ", 1))
    with pytest.raises(TimingError) as error:
        netlist_timing(broken, "mixpe_pe", liberty, tmp_path / "work")
    message = str(error.value)
    assert "\n" not in message and "NOSUCHCELL not found" in message and "--no-cache" in message
