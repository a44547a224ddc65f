"""``mixpe mutate``: mutation testing of the generated RTL (``make mutate``, issue 16)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from gen.cli.options import BUILD_ROOT, add_config_options, config_from

NAME = "mutate"
HELP = "mutation testing of the generated RTL (Yosys mutate, cocotb benches); writes build/mutate/report.{md,json}"
DESCRIPTION = ("Per block, mutate the emitted design with Yosys (mutate -list N -seed S), run the block's tests "
               "on every mutant (a fast subset, then the rest on survivors), try to prove each survivor equivalent "
               "(equiv_make, equiv_struct, equiv_simple, equiv_induct); what remains is a hole, listed with its "
               "hw/*.py line. Exits 1 when a block's score = killed / (mutants - equivalent) is below --min-score.")
#: Blocks of mixpe mutate (gen.mutate.blocks.PLANS, repeated here: the parser must stay light).
BLOCKS = ("pe", "act_sum", "gdu", "fp32", "fp_align", "array", "mpgemm")
#: Mutants per block when ``--mutants`` is not given: sized from the measured CPU cost of a mutant
#: (simulations, proofs of the survivors, one Verilator build per netlist) so that ``make mutate``
#: on the default preset, every block, takes at most 45 minutes on 2 idle cores
#: (docs/verification.md, "`make mutate` in 45 minutes").
DEFAULT_MUTANTS = {"pe": 200, "act_sum": 30, "gdu": 60, "fp32": 100, "fp_align": 100, "array": 30, "mpgemm": 40}


def add_arguments(parser) -> None:
    add_config_options(parser)
    parser.add_argument("--blocks", nargs="+", choices=BLOCKS, default=None,
                        help=f"blocks to mutate (default all the configuration has: {' '.join(BLOCKS)})")
    parser.add_argument("--mutants", type=int, default=None, metavar="N",
                        help="mutants of every block (default per block, sized for 45 minutes on 2 cores: "
                             + ", ".join(f"{block} {count}" for block, count in DEFAULT_MUTANTS.items()) + ")")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mutation list and of the tests (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes of the local Dask cluster (default 2)")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="run the mutants on an existing Dask cluster (default $DASK_SCHEDULER_ADDRESS, "
                             "else a local cluster of --jobs workers)")
    parser.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="exit 1 when a block's score is below S (0..1)")
    parser.add_argument("--equiv-timeout", type=float, default=60.0, metavar="S",
                        help="time limit of one equivalence proof in seconds (default 60)")
    parser.add_argument("--out", help="output directory (default build/mutate/)")
    parser.add_argument("--no-cache", action="store_true", help="simulate and prove every mutant again (the test "
                        "outcome is cached per block, keyed by the mutated netlist, the bench and the seed; the proven "
                        "verdicts keyed by the mutant, the design and the prover)")


def run(args) -> int:
    from gen.mutate.blocks import MUTATION_BLOCKS, plan_for
    from gen.mutate.campaign import WORKERS_LOG, dask_map, run_block
    from gen.scale.cluster import connect, scheduler_address
    from gen.mutate.report import write_reports
    from hw.config import ConfigError
    from verif.runner import SIM_OPT_ENV
    if args.mutants is not None and args.mutants < 1:
        raise ConfigError(f"mutants={args.mutants}: must be at least 1")
    if args.jobs < 1:
        raise ConfigError(f"jobs={args.jobs}: must be at least 1")
    if args.min_score is not None and not 0.0 <= args.min_score <= 1.0:
        raise ConfigError(f"min_score={args.min_score}: must be between 0 and 1")
    config = config_from(args)
    # Mutant runs are short and bound by cocotb's Python; -O0 compiles a mutated 16x16 core about
    # four times faster (set before the local cluster starts: its workers inherit it).
    os.environ.setdefault(SIM_OPT_ENV, "-O0")
    out = Path(args.out or BUILD_ROOT / "mutate")
    plans = [plan for plan in (plan_for(block, config) for block in (args.blocks or MUTATION_BLOCKS)) if plan]
    if not plans:
        raise ConfigError(f"blocks={' '.join(args.blocks)}: none of them exists on {config.name} "
                          f"(fp_align needs floating-point activations)")
    command = (f"mixpe mutate --preset {shlex.quote(config.name)} --blocks {' '.join(p.block for p in plans)} "
               + (f"--mutants {args.mutants} " if args.mutants else "") + f"--seed {args.seed}")
    results = []
    with connect(args.scheduler, None if scheduler_address(args.scheduler) else args.jobs) as client:
        map_tasks = dask_map(client, out / WORKERS_LOG)
        for plan in plans:  # the report is rewritten after every block: a long run reports what it has
            mutants = args.mutants or DEFAULT_MUTANTS[plan.block]
            results.append(run_block(plan, config, mutants=mutants, seed=args.seed, out_root=out,
                                     map_tasks=map_tasks, use_cache=not args.no_cache,
                                     equiv_timeout=args.equiv_timeout))
            paths = write_reports(results, out, command, args.min_score)
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    low = [r for r in results if args.min_score is not None and r.score < args.min_score]
    for result in low:
        print(f"mixpe mutate: block {result.block} score {result.score:.4f} < --min-score {args.min_score}",
              file=sys.stderr)
    return 1 if low else 0
