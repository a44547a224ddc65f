"""Verilator lint of the generated Verilog.

``verilator --lint-only -Wall`` with a fixed waiver list of the warning classes that Amaranth's
Verilog backend produces by construction and that say nothing about the design:

* WIDTHEXPAND / WIDTHTRUNC: the backend relies on Verilog's implicit extension rules and writes
  ``!vector`` for "is zero"; widths are explicit (and overflow-free by derivation) at the
  Amaranth level, where the ``.eq`` truncation rules apply;
* CASEOVERLAP: priority ``casez`` encodings of ``m.If/m.Elif`` chains;
* PROCASSINIT, UNUSEDSIGNAL, DECLFILENAME: initial values on registers, unused bits of
  flattened ports and intermediate nets, one file holding every module.

Anything else (any other warning class, or any error) makes the lint fail.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tempfile
from pathlib import Path

from hw.emit import build_block, emit_verilog
from hw.config import MixPEConfig
from verif.toolchain import verilator_env

__all__ = ["LintReport", "lint_verilog", "WAIVED_WARNINGS"]

WAIVED_WARNINGS = ("WIDTHEXPAND", "WIDTHTRUNC", "CASEOVERLAP", "PROCASSINIT", "UNUSEDSIGNAL", "DECLFILENAME")


@dataclasses.dataclass(frozen=True)
class LintReport:
    clean: bool
    command: str
    output: str


def lint_verilog(config: MixPEConfig, block: str = "mpgemm") -> LintReport:
    """Lint the Verilog of ``block`` for ``config``; ``clean`` is False on any non-waived message."""
    import os
    verilog = emit_verilog(build_block(block, config), block)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / f"{block}.v"
        source.write_text(verilog)
        command = ["verilator", "--lint-only", "-Wall", "--top-module", block]
        command += [f"-Wno-{name}" for name in WAIVED_WARNINGS] + [str(source)]
        env = dict(os.environ)
        env.update(verilator_env())
        result = subprocess.run(command, capture_output=True, text=True, env=env)
    output = (result.stdout + result.stderr).replace(str(source), f"{block}.v")
    problems = re.findall(r"^%(Warning|Error)", output, flags=re.MULTILINE)
    shown = " ".join(command[:-1] + [f"{block}.v"])
    return LintReport(clean=result.returncode == 0 and not problems, command=shown, output=output)
