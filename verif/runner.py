"""Build and run a cocotb testbench on Verilog generated from an Amaranth component (Verilator).

Builds are cached per design: the Verilog is written to ``build_dir/<toplevel>.v`` only when its text
changed, and Verilator (``--skip-identical``, on by default for ``--cc``) plus make then skip the
C++ compile on a rerun. Traced and untraced builds use separate object directories
(``build_dir/sim`` and ``build_dir/sim_waves``) so switching ``waves`` does not force rebuilds; so do
builds with another C++ optimisation of the model (``MIXPE_SIM_OPT``, :data:`SIM_OPT_ENV`).
Builds are safe in parallel: a process holds :func:`build_lock` on ``build_dir`` while building, so a
second one (another pytest worker) waits and then reuses the build; each run writes its files
(results, job, summary) in its own directory (:func:`verif.paths.new_run_dir`). Verilator's run-time
library, the same for every design, is compiled once per trace flavour and copied into each new build
(:func:`shared_runtime`). On a terminal a build shows its elapsed time while it runs; every build
prints one line when done.

:func:`run_cocotb` never raises because tests failed (it returns a :class:`CocotbResult`; callers
assert), inside or outside pytest. It raises :class:`BuildError` when Verilator or the C++ build fails
and :class:`SimulationError` when the simulation produced no results file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import random
import shutil
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from pathlib import Path

from hw.errors import MixPEError
from sw.progress import Progress
from verif.paths import SIM_ROOT, new_run_dir
from verif.toolchain import apply_verilator_env, fst_supported, verilator_root

__all__ = ["CocotbResult", "BuildError", "SimulationError", "run_cocotb", "write_if_changed", "build_lock",
           "shared_runtime", "VERILATOR_BUILD_ARGS", "SIM_OPT_ENV"]

#: Warnings that Amaranth-generated Verilog triggers by construction (unused/undriven bits of
#: flattened ports, width-extended constants, intermediate wires, ``initial`` reset values...).
VERILATOR_BUILD_ARGS: tuple[str, ...] = (
    "-Wno-fatal",
    "-Wno-lint",
    "-Wno-style",
    "-Wno-UNOPTFLAT",
    "-Wno-MULTIDRIVEN",
    "-O3",
    "--x-assign", "fast",
    "--x-initial", "fast",
    # cocotb's runner marks every signal public (VPI access to internals); the testbenches only
    # touch top-level ports, and keeping internals private cuts build time and memory several-fold.
    "--no-public-flat-rw",
)


#: Environment variable with the C++ optimisation of the simulation model (make's ``OPT_FAST``):
#: unset, Verilator's default (``-Os``). The test suite sets ``-O0``: its runs are short and bound by
#: cocotb's Python, and ``-O0`` compiles a 16x16 core about four times faster. Such builds get their
#: own object directory (``sim-O0``), so they never stand in for the optimised ones.
SIM_OPT_ENV = "MIXPE_SIM_OPT"
_SIM_OPTS = ("-O0", "-O1", "-O2", "-O3", "-Os")


class BuildError(MixPEError, RuntimeError):
    """Verilator or the C++ compile of the simulation model failed."""


class SimulationError(MixPEError, RuntimeError):
    """The simulator did not produce a results file (crash, bad test module...)."""


@dataclasses.dataclass(frozen=True)
class CocotbResult:
    passed: bool
    num_tests: int
    num_failed: int
    results_xml: Path
    wave_file: Path | None
    #: Wall-clock seconds of the simulation run (``Runner.test``), including Python start-up.
    sim_time_s: float
    #: Wall-clock seconds of the cocotb tests themselves (from ``results.xml``: no simulator start-up).
    test_time_s: float
    #: Wall-clock seconds of the build step (near zero-work when cached).
    build_time_s: float = 0.0
    #: Whether the build step recompiled the simulator executable.
    rebuilt: bool = False
    seed: int | None = None


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds exactly that; returns True if written."""
    path = Path(path)
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never share it
    tmp.write_text(text)
    tmp.replace(path)
    return True


@contextlib.contextmanager
def build_lock(build_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``build_dir`` (the file ``<build_dir>/.lock``) while building into it.

    A second process building the same directory waits (and says so), then finds the build up to
    date. The operating system releases the lock when the file closes, also when a process dies."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"build: waiting for another process building {build_dir}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def shared_runtime(sim_dir: Path, waves: bool) -> Iterator[list[Path]]:
    """Share Verilator's run-time library objects (``verilated*.o`` and their ``.d`` files) between builds.

    They include only Verilator's headers and the trace flavour's flags, so they are the same for
    every design of one flavour, yet each build would compile them again (most of a small design's
    build time). Before the build, the shared copies go into ``sim_dir`` where missing; the context
    yields them, to be made newer than the makefile Verilator writes (make rebuilds them otherwise,
    in case its flags changed: ours depend on the flavour only). After the build, the objects it
    compiled fill the shared directory, keyed by the Verilator installation and the flavour:
    ``build/sim/verilated-<flavour>-<digest>/``."""
    root = verilator_root()
    digest = hashlib.sha256(str(root).encode() + (root / "include" / "verilated.mk").read_bytes()
                            + (root / "include" / "verilated_config.h").read_bytes()).hexdigest()[:12]
    flavour = ("fst" if fst_supported() else "vcd") if waves else "plain"
    shared = SIM_ROOT.resolve() / f"verilated-{flavour}-{digest}"

    def copy_missing(source: Path, target: Path) -> list[Path]:
        copied = []
        with build_lock(shared):
            for path in [*source.glob("verilated*.o"), *source.glob("verilated*.d")]:
                if not (target / path.name).exists():
                    tmp = target / f"{path.name}.{os.getpid()}.tmp"
                    shutil.copy2(path, tmp)
                    copied.append(tmp.replace(target / path.name))
        return copied

    yield copy_missing(shared, sim_dir)
    copy_missing(sim_dir, shared)


def _verilator_runner(refresh: list[Path], make_vars: list[str]):
    """cocotb's Verilator runner, touching the files ``refresh`` between Verilator and make
    (:func:`shared_runtime`) and passing ``make_vars`` (``NAME=value``) to make. cocotb is imported
    here: it is slow to import and only runs need it."""
    from cocotb_tools.runner import Verilator

    class ProjectVerilator(Verilator):
        def _build_command(self):
            verilate, *compile_ = super()._build_command()
            touch = [["touch", "-c", *map(str, refresh)]] if refresh else []
            return [verilate, *touch, *([*command, *make_vars] for command in compile_)]

    return ProjectVerilator()


def _sim_opt() -> str:
    """The model's C++ optimisation from ``MIXPE_SIM_OPT`` ("" when unset: Verilator's default)."""
    opt = os.environ.get(SIM_OPT_ENV, "").strip()
    if opt and opt not in _SIM_OPTS:
        raise ValueError(f"{SIM_OPT_ENV}={opt!r}: allowed values are {', '.join(_SIM_OPTS)} (or unset)")
    return opt


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("1", "yes", "true", "on")


@contextlib.contextmanager
def _patched_environ(set_: Mapping[str, str], unset: tuple[str, ...] = ()) -> Iterator[None]:
    """Temporarily set/unset ``os.environ`` entries (cocotb's runner lets ``os.environ`` override its
    own ``extra_env``/``seed``, and reads ``WAVES`` from it)."""
    saved = {k: os.environ.get(k) for k in (*set_, *unset)}
    try:
        for k in unset:
            os.environ.pop(k, None)
        os.environ.update(set_)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no build log)"
    return "\n".join(text[-lines:])


def _test_seconds(results_xml: Path) -> float:
    """Wall time cocotb measured for its tests (the sum over the test cases of ``results.xml``)."""
    root = ElementTree.parse(results_xml).getroot()
    return sum(float(case.get("time", 0)) for case in root.iter("testcase"))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def run_cocotb(*, verilog: str, toplevel: str, build_dir: Path, test_module: str,
               testcase: str | None = None, extra_env: dict[str, str] | None = None,
               seed: int | None = None, waves: bool = False, timescale=("1ns", "1ps"),
               build_args: list[str] | tuple[str, ...] = (),
               replay_hint: str | None = None, extra_sources: list[Path] | tuple[Path, ...] = (),
               plusargs: list[str] | tuple[str, ...] = (), run_dir: Path | None = None) -> CocotbResult:
    """Build (cached) and run cocotb test module ``test_module`` against ``verilog``.

    ``test_module`` is an importable module path (``verif.benches.smoke.tb``); ``extra_env`` is passed
    to the simulation (it wins over ``os.environ``); ``seed`` becomes ``COCOTB_RANDOM_SEED`` (a fresh
    one is drawn and printed when None). ``waves`` (or ``WAVES=1`` in the environment) records FST when
    Verilator's FST writer can be compiled here, else VCD. ``build_args`` are added to the Verilator
    command line; ``replay_hint`` is a command to print for reproducing the run, with ``{seed}``.
    ``extra_sources`` are HDL files compiled with the Verilog (e.g. a wrapper that is ``toplevel``);
    ``plusargs`` are passed to the simulation binary (``+name=value``). ``run_dir`` is the directory of
    this run's files (the simulation's working directory and ``results.xml``); a fresh one under
    ``build_dir/runs/`` when None.
    """
    from cocotb_tools.check_results import get_results

    build_dir = Path(build_dir).resolve()
    waves = bool(waves) or _truthy(os.environ.get("WAVES"))
    apply_verilator_env()
    source = build_dir / f"{toplevel}.v"
    # Only the top module's ports stay VPI-writable (see --no-public-flat-rw above).
    public_ports = build_dir / "public_ports.vlt"

    args = list(VERILATOR_BUILD_ARGS) + ["-j", str(max(1, min(os.cpu_count() or 1, 4)))]
    wave_file: Path | None = None
    if waves:
        if fst_supported():
            args += ["--trace-fst", "--trace-structs"]
            wave_file = build_dir / f"{toplevel}.fst"
        else:
            args += ["--trace-structs"]
            wave_file = build_dir / f"{toplevel}.vcd"
            print("note: FST tracing needs lz4.h (Debian package liblz4-dev, installed by `make` as root); "
                  "writing VCD instead", flush=True)
    args += list(build_args) + [str(public_ports)]

    opt = _sim_opt()
    sim_dir = build_dir / (("sim_waves" if waves else "sim") + (f"-{opt.lstrip('-')}" if opt else ""))
    binary = sim_dir / toplevel
    log = sim_dir / "build.log"
    t0 = time.monotonic()
    with Progress(desc=f"build {build_dir.name}/{sim_dir.name}", timer=True), build_lock(build_dir), \
            _patched_environ({}, unset=("WAVES",)):
        write_if_changed(source, verilog)
        write_if_changed(public_ports, f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n')
        before = _mtime(binary)
        sim_dir.mkdir(parents=True, exist_ok=True)
        try:
            with shared_runtime(sim_dir, waves) as seeded:
                runner = _verilator_runner(seeded, [f"OPT_FAST={opt}"] if opt else [])
                runner.build(sources=[source, *map(str, extra_sources)], hdl_toplevel=toplevel, build_dir=sim_dir,
                             build_args=args, timescale=timescale, waves=waves, log_file=log)
        except (RuntimeError, SystemExit) as exc:
            raise BuildError(f"Verilator build of {toplevel} failed ({exc}); log {log}:\n{_tail(log)}") from None
        rebuilt = _mtime(binary) != before
    build_time = time.monotonic() - t0
    print(f"build: {toplevel} {'compiled' if rebuilt else 'up to date'} in {build_time:.1f} s ({sim_dir})",
          flush=True)

    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    seed = int(seed)
    hint = replay_hint.format(seed=seed) if replay_hint else f"pass seed={seed} (COCOTB_RANDOM_SEED={seed})"
    print(f"seed={seed}  (replay: {hint})", flush=True)

    run_dir = new_run_dir(build_dir, seed) if run_dir is None else Path(run_dir).resolve()
    results_xml = run_dir / "results.xml"
    with contextlib.suppress(FileNotFoundError):
        results_xml.unlink()
    if wave_file is not None:  # one waveform per seed, so several runs of a scenario keep theirs
        wave_file = wave_file.with_name(f"{wave_file.stem}-seed{seed}{wave_file.suffix}")
    test_args = ["--trace-file", str(wave_file)] if wave_file is not None else []
    test_args += list(plusargs)
    env = {str(k): str(v) for k, v in (extra_env or {}).items()}
    env["COCOTB_RANDOM_SEED"] = str(seed)
    t1 = time.monotonic()
    exit_code = 0
    # Under pytest, Runner.test() sys.exit()s on failing tests; outside it, only on a simulator
    # crash. Either way we read results.xml ourselves so both cases behave the same.
    with _patched_environ(env, unset=("WAVES",)):
        try:
            runner.test(test_module=test_module, hdl_toplevel=toplevel, testcase=testcase, seed=seed,
                        extra_env=env, waves=waves, build_dir=sim_dir, test_dir=run_dir,
                        results_xml=str(results_xml), test_args=test_args, timescale=timescale)
        except SystemExit as exc:
            exit_code = exc.code if isinstance(exc.code, int) else 1
    sim_time = time.monotonic() - t1

    try:
        num_tests, num_failed = get_results(results_xml)
    except RuntimeError as exc:
        raise SimulationError(
            f"simulation of {toplevel} with {test_module} produced no usable results "
            f"(exit code {exit_code}): {exc}") from None
    passed = num_failed == 0 and num_tests > 0 and exit_code == 0
    if wave_file is not None and not wave_file.exists():
        print(f"warning: expected waveform {wave_file} was not written", flush=True)
        wave_file = None
    status = "PASS" if passed else "FAIL"
    print(f"{status}: {num_tests - num_failed}/{num_tests} cocotb tests passed in {sim_time:.1f} s "
          f"(results {results_xml})", flush=True)
    if not passed:
        print(f"replay: seed={seed}: {hint}", flush=True)
    if wave_file is not None:
        print(f"waves: {wave_file}", flush=True)
    sys.stdout.flush()
    return CocotbResult(passed=passed, num_tests=num_tests, num_failed=num_failed, results_xml=results_xml,
                        wave_file=wave_file, sim_time_s=sim_time, test_time_s=_test_seconds(results_xml),
                        build_time_s=build_time, rebuilt=rebuilt, seed=seed)
