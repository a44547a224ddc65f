"""The ``mixpe`` command line: Verilog emission, config printing, error exits, lint."""

import json

import pytest

from gen.cli import main


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
    (["verilog", "--config", "/nonexistent.json"], "file not found"),
])
def test_bad_configuration_exits_2_with_message(argv, fragment, capsys):
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


def test_config_prints_derived_widths(capsys):
    assert main(["config", "--preset", "w8a8-g1024-4x4"]) == 0
    derived = json.loads(capsys.readouterr().out)["derived"]
    assert derived["psum_bits"] == 26 and derived["asum_bits"] == 18


def test_help_lists_every_test(capsys):
    with pytest.raises(SystemExit):
        main(["sim", "--help"])
    text = capsys.readouterr().out
    for name in ("mpgemm", "array", "pe", "gdu"):
        assert name in text


@pytest.mark.rtl
def test_lint_is_clean(capsys):
    assert main(["lint", "--preset", "w4a8-g32-4x4", "--blocks", "mpgemm", "pe", "gdu"]) == 0
