"""``mixpe formal``: proofs of the stream protocol, the PE and the aligner (``make formal``, issue 16)."""

from __future__ import annotations

import sys
from pathlib import Path

from gen.cli.options import BUILD_ROOT

NAME = "formal"
HELP = "formal proofs (Yosys sat): mpgemm stream protocol, PE group accumulation, aligner rounding -> build/formal/"
DESCRIPTION = ("Prove with Yosys' SAT solver, on small configurations: the mpgemm core's streams under any "
               "handshake pattern (bounded), the PE's group accumulation against a reference (induction), the "
               "floating-point aligner's rounding against a reference expression (all inputs), and that the "
               "result stream's valid and payload do not depend on its ready within a cycle. Writes "
               "report.md and report.json; exits 1 when a property fails.")


def add_arguments(parser) -> None:
    parser.add_argument("--smoke", action="store_true", help="the shallow proofs of `make test` (seconds)")
    parser.add_argument("--out", default=None, metavar="DIR", help="output directory (default build/formal/)")
    parser.add_argument("--timeout", type=float, default=1800.0, metavar="S",
                        help="time limit of one Yosys run in seconds (default 1800)")


def run(args) -> int:
    from gen.formal import DEEP, SMOKE, run_all
    out = Path(args.out or BUILD_ROOT / "formal")
    results, _, broken = run_all(SMOKE if args.smoke else DEEP, out, args.timeout)
    for result in results:
        print(f"{result.status.upper():8s} {result.name} ({result.config}, depth {result.depth or '-'}) "
              f"{result.seconds:.1f} s {result.detail}")
    for message in broken:
        print(f"FAILED   stream rule: {message}")
    print(f"wrote {out / 'report.md'}, {out / 'report.json'}")
    failed = [r for r in results if not r.passed]
    if failed or broken:
        print(f"mixpe formal: {len(failed)} proofs failed, {len(broken)} stream rules broken", file=sys.stderr)
        return 1
    return 0
