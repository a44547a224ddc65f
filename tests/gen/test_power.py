"""Power flow (gen/power, verif/gate_level, verif/core_trace, verif/power_workloads, ``mixpe power``) on
a 4 x 4 core: activity counting, netlist vs RTL (and a injected fault caught), OpenSTA power with zero
and scaled activity, the PE-level run under Icarus (positive power, every net measured, cached and
deterministic), the reports, and the errors for a missing ``sta``, a Liberty file without power
tables, a netlist OpenSTA cannot link, a simulation without activity and a bad setting.

About a minute; tests that run Yosys or OpenSTA are marked ``synth``, the Icarus runs also ``rtl``,
the array-level run (a GDU) ``slow``.
"""

import json
import random
import shutil

import numpy as np
import pytest

from gen.cli import main as cli_main
from gen.power import PowerError, PowerSettings, pin_annotations, report_power, run_power, write_reports
from gen.power.flow import _array_record, _instances, _Measurer
from gen.power.sta import PowerResult, check_power_tables
from gen.synth import OSU018_PATH, resolve_liberty, synthesize
from gen.synth.errors import TimingError
from gen.synth.yosys import netlist_path
from hw.config import from_preset
from verif.gate_level import Activity, Netlist, Stimulus, _net_activity, cell_models, simulate, verilog_ports
from verif.power_workloads import design_operands, make_workload

pytestmark = pytest.mark.xdist_group("power-4x4")
needs_osu018 = pytest.mark.skipif(not OSU018_PATH.is_file(), reason="qflow-tech-osu018 not installed: make tools")


def synth(test):
    """Runs Yosys and OpenSTA: marked ``synth``, skipped without OpenSTA or the OSU018 library."""
    test = pytest.mark.skipif(shutil.which("sta") is None, reason="OpenSTA (Debian opensta) not installed: "
                              "make tools")(test)
    return pytest.mark.synth(needs_osu018(test))

PRESET = "w4a8-g32-4x4"
CONFIG = from_preset(PRESET)
QUICK = PowerSettings(workloads=("uniform",), tiles=1, positions=1, uniform_k=64, simulator="icarus", array=False)


@pytest.fixture(scope="module")
def liberty():
    return resolve_liberty("osu018")


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def pe_netlist(liberty, synth_root):
    synthesize(CONFIG, "mixpe", "pe", liberty, out_root=synth_root)
    return Netlist.parse(netlist_path(synth_root, CONFIG, "mixpe", "pe", liberty, "timing"), "mixpe_pe")


@pytest.fixture(scope="module")
def pe_rtl(tmp_path_factory):
    from hw.emit import build_block, emit_verilog
    path = tmp_path_factory.mktemp("rtl") / "mixpe_pe_rtl.v"
    path.write_text(emit_verilog(build_block("pe", CONFIG), "mixpe_pe_rtl"))
    return path


def _random_stimulus(rtl, cycles, seed=1):
    rng = random.Random(seed)
    ports = [p for p in verilog_ports(rtl.read_text(), "mixpe_pe_rtl") if p.direction == "input" and p.name != "clk"]
    values = {p.name: [] for p in ports}
    for cycle in range(cycles):
        for port in ports:
            value = {"rst": int(cycle < 2), "valid": 1, "group_last": int(cycle % 32 == 31)}.get(
                port.name, rng.randrange(1 << port.width))
            values[port.name].append(value)
    return Stimulus(ports, values, skip=2)


def test_toggles_and_high_time_are_counted_per_net(tmp_path):
    # Three nets over five sampled cycles (first two skipped): 0b101, 0b100, 0b111, 0b110, 0b011.
    path = tmp_path / "nets.hex"
    path.write_text("5\n4\n7\n6\n3\n")
    activity = _net_activity(path, ["a", "b", "c"], skip=2)
    # Counted cycles 7, 6, 3: a = 1,1,0; b = 1,1,1; c = 1,0,1.
    assert activity.cycles == 3 and activity.unknown == 0
    assert list(activity.toggles) == [1, 0, 2] and list(activity.high) == [2, 3, 2]
    assert list(activity.density()) == [0.5, 0.0, 1.0]
    assert np.allclose(activity.duty(), [2 / 3, 1.0, 2 / 3])


def test_design_operands_are_the_same_values_in_each_format():
    (tile,) = make_workload(CONFIG, "uniform", count=1, seed=3, uniform_k=64).tiles
    mixpe, int8 = design_operands("mixpe", CONFIG, tile), design_operands("int8_mult", CONFIG, tile)
    assert (mixpe.row_ports["x"] == tile.x).all() and (int8.col_ports["w"] == tile.weights.codes).all()
    assert mixpe.group_last.nonzero().flatten().tolist() == [31, 63]
    fp16 = design_operands("fp16_fp16", CONFIG, tile)
    assert fp16.group_last.nonzero().flatten().tolist() == [63]   # FP32 accumulation over all of K
    from golden.fp32 import fp16_to_fp32
    assert fp16_to_fp32(fp16.col_ports["w"]).allclose(tile.w_float.half().float())
    dequant = design_operands("dequant_fp", CONFIG, tile)
    assert sorted(dequant.col_ports) == ["scale", "w", "zero"]
    assert (dequant.col_ports["zero"][:, 40] == tile.weights.zeros[:, 1]).all()


@pytest.mark.rtl
@synth
def test_netlist_matches_rtl_and_a_fault_is_caught(pe_netlist, pe_rtl, liberty, tmp_path):
    models = cell_models(liberty.path, tmp_path / "cells")
    stimulus = _random_stimulus(pe_rtl, 200)
    first = simulate(pe_rtl, "mixpe_pe_rtl", stimulus, tmp_path / "a", netlist=pe_netlist, models=models,
                     simulator="icarus")
    assert first.mismatch is None and first.cycles == 200 and sum(first.outputs["psum_valid"][2:]) == 6
    activity = first.activity
    assert activity.cycles == 198 and activity.unknown == 0 and len(activity.nets) == len(pe_netlist.nets)
    assert 0 < activity.density().mean() < 1
    again = simulate(pe_rtl, "mixpe_pe_rtl", stimulus, tmp_path / "b", netlist=pe_netlist, models=models,
                     simulator="icarus")
    assert (again.activity.toggles == activity.toggles).all() and (again.activity.high == activity.high).all()
    broken = tmp_path / "broken.v"
    broken.write_text(pe_netlist.path.read_text().replace("XOR2X1 ", "XNOR2X1 ", 1))
    faulty = simulate(pe_rtl, "mixpe_pe_rtl", stimulus, tmp_path / "c", netlist=Netlist.parse(broken, "mixpe_pe"),
                      models=models, simulator="icarus")
    assert faulty.mismatch is not None and faulty.mismatch.startswith("cycle ")


def _uniform_activity(netlist, density, duty=0.5):
    """Every net toggling ``density`` times per cycle over 101 cycles (100 cycle boundaries)."""
    count = len(netlist.nets)
    return Activity(netlist.nets, np.full(count, round(density * 100)), np.full(count, round(duty * 101)), 101, 0)


@synth
def test_power_with_zero_and_scaled_activity(pe_netlist, liberty, tmp_path):
    def power(density):
        annotations, measured, nets = pin_annotations(pe_netlist, _uniform_activity(pe_netlist, density))
        return report_power(pe_netlist, liberty, 5.0, annotations, measured, nets, tmp_path / f"sta-{density}")
    zero, low, high = power(0.0), power(0.1), power(0.2)
    # No data activity: no switching, combinational cells leak only; the flip-flops still see the clock.
    assert zero.switching_w == 0 and 0 < zero.combinational_w <= zero.leakage_w
    assert zero.sequential_w > 1000 * zero.leakage_w
    assert high.switching_w == pytest.approx(2 * low.switching_w, rel=1e-6) and high.internal_w > low.internal_w
    assert low.annotated_fraction == 1.0 and low.nets == len(pe_netlist.nets) - 1  # every net but the clock
    # The clock: power at 5 ns is twice the dynamic power at 10 ns (activity is per clock period).
    annotations, measured, nets = pin_annotations(pe_netlist, _uniform_activity(pe_netlist, 0.1))
    slow = report_power(pe_netlist, liberty, 10.0, annotations, measured, nets, tmp_path / "sta-slow")
    assert low.switching_w == pytest.approx(2 * slow.switching_w, rel=1e-6)


@synth
def test_netlist_that_does_not_link_is_a_clear_error(pe_netlist, liberty, tmp_path):
    broken = tmp_path / "broken.v"
    broken.write_text(pe_netlist.path.read_text().replace("DFFPOSX1 ", "NOSUCHCELL ", 1))
    with pytest.raises(TimingError, match="NOSUCHCELL not found"):
        report_power(Netlist.parse(broken, "mixpe_pe"), liberty, 5.0, None, 0, 1, tmp_path / "sta")


@pytest.mark.rtl
@synth
def test_a_simulation_without_activity_is_refused(pe_netlist, pe_rtl, liberty, synth_root, tmp_path):
    from gen.power.flow import _Block
    record = {"fmax_mhz": 100.0, "critical_path_ns": 10.0, "area_um2": 1.0}
    block = _Block("mixpe", "pe", record, pe_netlist.path)
    measurer = _Measurer(CONFIG, liberty, QUICK, tmp_path, log=None)
    stimulus = _random_stimulus(pe_rtl, 50)
    constant = Stimulus(stimulus.ports, {name: [0] * 50 for name in stimulus.values}, skip=2)
    with pytest.raises(PowerError, match="produced no switching activity"):
        measurer.simulate(block, constant, "constant")


@pytest.fixture(scope="module")
def quick_run(liberty, synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("power")
    records = run_power(CONFIG, liberty, QUICK, designs=["mixpe", "int8_mult"], out_root=out,
                        synth_root=synth_root, log=None)
    return out, records


@pytest.mark.rtl
@synth
def test_pe_level_run(quick_run, liberty, synth_root, tmp_path):
    out, records = quick_run
    assert [(r["design"], r["block"], r["workload"]) for r in records] == [("mixpe", "pe", "uniform"),
                                                                          ("int8_mult", "pe", "uniform")]
    for record in records:
        assert record["power_mw"] > 0 and record["switching_mw"] > 0 and record["leakage_mw"] > 0
        assert record["power_mw"] == pytest.approx(record["internal_mw"] + record["switching_mw"] + record["leakage_mw"])
        assert record["clock_mhz"] == record["fmax_mhz"] > 0
        assert record["annotated_net_fraction"] == 1.0 and "gate-level Icarus" in record["activity_source"]
        expected = record["power_mw"] / record["clock_mhz"] / record["macs_per_cycle"] * 1e3
        assert record["energy_pj_per_mac"] == pytest.approx(expected)
        assert 0.5 < record["macs_per_cycle"] <= 1
    # Served from the cache, then measured again from scratch: the same numbers.
    assert run_power(CONFIG, liberty, QUICK, designs=["mixpe", "int8_mult"], out_root=out, synth_root=synth_root,
                     log=None) == records
    again = run_power(CONFIG, liberty, QUICK, designs=["mixpe"], out_root=tmp_path, synth_root=synth_root,
                      use_cache=False, log=None)
    assert again[0]["power_mw"] == records[0]["power_mw"]
    paths = write_reports(CONFIG, records, {"liberty": str(liberty.path), "liberty_name": liberty.name,
                                            "simulator": "Icarus Verilog", "positions": 1, "edge_instances": 1,
                                            "command": "make power"}, tmp_path / "report")
    assert json.loads(paths["json"].read_text()) == records
    summary = json.loads(paths["summary"].read_text())
    (row,) = summary["comparisons"]
    assert row["baseline"] == "int8_mult" and row["paper"] == 2.29 and row["efficiency_product_ratio"] > 0
    text = paths["md"].read_text()
    assert "| mixpe | int8 |" in text and "| int8_mult |" in text and "2.29x" in text


def test_array_record_is_the_sum_of_its_blocks():
    pe = PowerResult(1e-3, 2e-3, 1e-6, 3.001e-3, 1e-3, 2.001e-3, 10, 10)
    gdu = PowerResult(4e-3, 1e-3, 2e-6, 5.002e-3, 4e-3, 1.002e-3, 90, 100)
    clock = {"fmax_mhz": 50.0, "critical_path_ns": 20.0, "limiting_block": "gdu"}
    record = _array_record(CONFIG, "mixpe", "uniform", [("pe", pe, 16, 2.0), ("gdu", gdu, 4, 10.0)], clock, 8.0, 1000)
    assert record["power_mw"] == pytest.approx(16 * 3.001 + 4 * 5.002)
    assert record["area_um2"] == 16 * 2.0 + 4 * 10.0
    assert record["annotated_net_fraction"] == pytest.approx((160 + 360) / (160 + 400))
    assert record["energy_pj_per_mac"] == pytest.approx(record["power_mw"] / 50.0 / 8.0 * 1e3)
    assert record["limited_by"] == "gdu" and record["clock_mhz"] == 50.0
    assert record["parts"]["gdu"] == pytest.approx(4 * 5.002)


def test_edge_blocks_count_per_instance_or_per_lane():
    """Blocks the core instantiates count as instantiated (one GDU per lane); dequant_fp's token-scale
    multipliers, which it does not, as array_needs says: one per lane."""
    from types import SimpleNamespace
    config = from_preset("w4a8-g128-16x16")
    trace = SimpleNamespace(instances={"gdu": {"gdu_0": None, "gdu_1": None}})
    assert _instances(config, trace, "gdu", "L") == config.lanes == 2
    assert _instances(config, trace, "edge", "L") == 2 and _instances(config, trace, "edge", "C") == 16
    with pytest.raises(PowerError, match="unknown instance count 'X'"):
        _instances(config, trace, "edge", "X")


def test_no_report_for_a_record_without_power(tmp_path):
    with pytest.raises(PowerError, match="no report written"):
        write_reports(CONFIG, [{"design": "mixpe", "block": "pe", "workload": "uniform"}], {}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@needs_osu018
def test_liberty_without_power_tables_is_refused(tmp_path, capsys):
    text = OSU018_PATH.read_text()
    stripped = tmp_path / "nopower.lib"
    stripped.write_text(text.replace("internal_power", "internal_pwr").replace("leakage_power", "leakage_pwr"))
    with pytest.raises(PowerError, match="has no power tables"):
        check_power_tables(stripped)
    out = tmp_path / "out"
    assert cli_main(["power", "--preset", PRESET, "--liberty", str(stripped), "--out", str(out),
                     "--synth-dir", str(tmp_path / "synth")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no power tables" in error
    assert not out.exists() and not (tmp_path / "synth").exists()


@needs_osu018
def test_missing_sta_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = tmp_path / "out"
    assert cli_main(["power", "--preset", PRESET, "--out", str(out), "--synth-dir", str(tmp_path / "synth")]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "OpenSTA ('sta') is not installed" in error and "make tools" in error
    assert not out.exists() and not (tmp_path / "synth").exists()


@needs_osu018
def test_bad_settings_are_one_line(tmp_path, capsys):
    assert cli_main(["power", "--preset", PRESET, "--tiles", "0", "--out", str(tmp_path / "out")]) == 2
    assert "tiles=0: must be a positive integer" in capsys.readouterr().err


@pytest.mark.rtl
@pytest.mark.slow
@synth
def test_array_level_run(liberty, synth_root, tmp_path):
    settings = PowerSettings(workloads=("uniform",), tiles=1, positions=1, edge_instances=1, uniform_k=64,
                             simulator="icarus")
    records = run_power(CONFIG, liberty, settings, designs=["mixpe"], out_root=tmp_path, synth_root=synth_root,
                        log=None)
    index = {r["block"]: r for r in records}
    assert sorted(index) == ["act_sum", "array", "gdu", "pe"]
    array = index["array"]
    assert array["clock_mhz"] == min(index[b]["fmax_mhz"] for b in ("pe", "act_sum", "gdu"))
    assert array["power_mw"] == pytest.approx(sum(array["parts"].values()))
    assert 1 <= index["gdu"]["instances"] <= CONFIG.cols and array["annotated_net_fraction"] == 1.0
