"""``mixpe coverage``: the merged functional coverage report (``make coverage``, issue 16)."""

from __future__ import annotations

import sys
from pathlib import Path

from gen.cli.options import BUILD_ROOT

NAME = "coverage"
HELP = "merge the mpgemm bench's coverage databases into build/coverage/report.{md,json}"
DESCRIPTION = ("Merge the coverage databases that the mpgemm bench writes per run into the directory named by "
               "MIXPE_COVERAGE_DIR (make coverage runs the RTL tests of make test with it set to "
               "build/coverage/runs/) and write report.md and report.json: bins per cover point, every bin "
               "not hit. Exits 1 when fewer than --min-percent of the bins are hit.")


def add_arguments(parser) -> None:
    parser.add_argument("--runs", default=None, metavar="DIR",
                        help="directory of the per-run databases (default build/coverage/runs/)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output directory (default build/coverage/)")
    parser.add_argument("--min-percent", type=float, default=None, metavar="P",
                        help="exit 1 when fewer than P %% of the bins are hit")


def run(args) -> int:
    from gen.coverage import write_report
    from hw.config import ConfigError
    out = Path(args.out or BUILD_ROOT / "coverage")
    runs = Path(args.runs or out / "runs")
    if not runs.is_dir() or not any(runs.glob("*.json")):
        raise ConfigError(f"runs={runs}: no coverage databases there; run `make coverage` (or the RTL tests "
                          f"with MIXPE_COVERAGE_DIR={runs})")
    record, paths = write_report(runs, out, f"mixpe coverage --runs {runs}")
    print(f"coverage: {record['hit']} of {record['bins']} bins hit ({record['percent']:.1f} %) "
          f"over {record['runs']} runs")
    for name in record["missed"]:
        print(f"    not hit: {name}")
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    if args.min_percent is not None and record["percent"] < args.min_percent:
        print(f"mixpe coverage: {record['percent']:.1f} % < --min-percent {args.min_percent}", file=sys.stderr)
        return 1
    return 0
