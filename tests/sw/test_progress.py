"""sw.progress: one line per step off a terminal, a bar on one, nothing when quiet."""

import io

import pytest

from sw import progress as progress_module
from sw.progress import elapsed, format_duration, progress, set_quiet


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _not_quiet():
    set_quiet(False)
    yield
    set_quiet(False)


def test_lines_off_a_terminal(capsys):
    with progress(total=2, desc="eval", unit="row") as bar:
        bar.write("a log line")
        bar.step("dense int8: perplexity 8.160")
        bar.step()
    out, err = capsys.readouterr()
    assert out == "a log line\n"
    lines = err.splitlines()
    assert lines[0].startswith("eval 1/2 rows [") and lines[0].endswith("]: dense int8: perplexity 8.160")
    assert lines[1].startswith("eval 2/2 rows [") and lines[1].endswith("]")


def test_iterating_steps_once_per_item(capsys):
    assert list(progress(["a", "b", "c"], "synth", unit="block")) == ["a", "b", "c"]
    assert [line.split(" [")[0] for line in capsys.readouterr().err.splitlines()] == [
        "synth 1/3 blocks", "synth 2/3 blocks", "synth 3/3 blocks"]


def test_elapsed_prints_one_line_when_done_or_failed(capsys):
    with elapsed("verilator build mpgemm"):
        pass
    with pytest.raises(RuntimeError):
        with elapsed("verilator build pe"):
            raise RuntimeError("boom")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("verilator build mpgemm: ") and lines[0].endswith(" s")
    assert lines[1].startswith("verilator build pe: failed after ")


def test_quiet_prints_no_progress_but_log_lines(capsys):
    set_quiet()
    with progress(total=1, desc="eval") as bar:
        bar.write("kept")
        bar.step("dropped")
    with elapsed("dropped too"):
        pass
    assert capsys.readouterr() == ("kept\n", "")


def test_bar_on_a_terminal(monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(progress_module.sys, "stderr", terminal)
    with progress(total=2, desc="moe rtl", unit="stage") as bar:
        bar.step("stage 1: 72 tiles")
        bar.step("stage 2: 18 tiles")
    assert "moe rtl: 100%" in terminal.getvalue() and "2/2" in terminal.getvalue()
    assert capsys.readouterr().out == "stage 1: 72 tiles\nstage 2: 18 tiles\n"


@pytest.mark.parametrize("seconds, text", [(3.04, "3.0 s"), (432, "7 min 12 s"), (3720, "1 h 02 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
