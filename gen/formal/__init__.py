"""``mixpe formal`` (``make formal``): proofs of the stream protocol of ``mpgemm``, the PE's group
accumulation and the aligner's rounding, with Yosys' built-in SAT solver (``sat``; no external solver).

Each :class:`Proof` is a harness of :mod:`gen.formal.harness` on a small configuration, proved one
of three ways: a bounded model check (``sat -seq N -prove ok 1 -set rst 0``: every state reachable
within N cycles of reset), an induction (``sat -tempinduct`` with the proof's invariants: every
depth), or, for combinational blocks, one SAT problem over all inputs. :func:`combinational_inputs`
lists which input ports each stream handshake output depends on within a cycle (the result
stream's ``valid`` and payload must not depend on its ``ready``).
"""

from __future__ import annotations

import dataclasses
import json
import functools
import time
from collections.abc import Callable
from pathlib import Path

from gen.yosys_run import run_yosys
from hw.config import MixPEConfig
from hw.errors import MixPEError

__all__ = ["FormalError", "Proof", "ProofResult", "PROOFS", "SMOKE", "DEEP", "run_proof", "run_all", "combinational_inputs", "forbidden_dependencies", "HANDSHAKE_OUTPUTS",
           "formal_config"]

#: Flow before ``sat``: processes to netlists, one module, memories as registers.
PREPARE = ("proc", "flatten", "memory_map", "opt -fast", "opt_clean")


class FormalError(MixPEError, RuntimeError):
    """Yosys failed, timed out, or a property does not hold (the message names the proof)."""


def formal_config(activation: str = "int8", rows: int = 2, cols: int = 2, **options) -> MixPEConfig:
    """A small configuration of the core's structure for the proofs: g = 8, 2-bit codes, one-stage
    GDU units (latencies short enough for shallow proofs)."""
    name = f"formal-{activation}-{rows}x{cols}" + "".join(f"-{key}{value}" for key, value in sorted(options.items()))
    return MixPEConfig(rows=rows, cols=cols, group_size=8, weight_bits=2, activation=activation, gdu_stages=1,
                       name=name, **options)


@dataclasses.dataclass(frozen=True)
class Proof:
    """One property set: ``harness(config)`` built on ``config``. ``depth`` 0: combinational;
    with ``invariants`` (pairs of signals of the flattened harness that must stay equal, which
    make the property inductive) an induction of at most ``depth`` steps; else a bounded check of
    ``depth`` cycles."""
    name: str
    harness: Callable
    config: MixPEConfig
    depth: int
    what: str
    invariants: tuple[tuple[str, str], ...] = ()
    #: Also show that the harness output ``covered`` can be reached within ``depth`` cycles.
    cover: bool = False

    @property
    def mode(self) -> str:
        return "combinational" if not self.depth else "induction" if self.invariants else "bounded"


@dataclasses.dataclass(frozen=True)
class ProofResult:
    name: str
    config: str
    depth: int
    #: "proven" (combinational, or induction succeeded: every depth), "bounded" (no counterexample
    #: within ``depth`` cycles of reset), "failed" (a counterexample; ``detail`` names it), "vacuous"
    #: (no counterexample, but ``covered`` is not reachable within ``depth``: the bound is too short).
    status: str
    seconds: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("proven", "bounded")


def _harnesses():
    from gen.formal.harness import AlignerHarness, PEHarness, StreamHarness
    return StreamHarness, PEHarness, AlignerHarness


#: The PE's accumulator equals the reference's: with it the PE property is 1-inductive.
PE_INVARIANTS = (("pe.accumulator", "reference"),)


def _proofs(deep: bool) -> tuple[Proof, ...]:
    stream, pe, aligner = _harnesses()
    proofs = [
        Proof("pe", pe, formal_config(), 4, "PE (INT8 x 2-bit codes) against a * reference accumulator",
              PE_INVARIANTS),
        Proof("aligner-fp8_e4m3", aligner, formal_config("fp8_e4m3", rows=1, cols=1), 0,
              "FP8 E4M3 aligner (one row) against the reference rounding"),
    ]
    if deep:
        proofs += [
            Proof("pe-fp16", pe, formal_config("fp16", rows=1, cols=1), 4,
                  "PE (aligned FP16 significands x 2-bit codes)", PE_INVARIANTS),
            *(Proof(f"aligner-{fmt}", aligner, formal_config(fmt, rows=1, cols=1), 0,
                    f"{fmt} aligner (one row) against the reference rounding") for fmt in ("fp16", "bf16", "fp8_e5m2")),
            Proof("stream", stream, formal_config(), STREAM_DEPTH,
                  "mpgemm 2x2, one GDU lane: streams counted on every handshake pattern", cover=True),
            Proof("stream-lanes", stream, formal_config(gdu_lanes=2), STREAM_DEPTH,
                  "mpgemm 2x2, a GDU lane per column", cover=True),
            Proof("stream-bands", stream, formal_config(rows=4, cols=1, row_groups=2), STREAM_DEPTH,
                  "mpgemm 4x1, two row bands", cover=True),
        ]
    return tuple(proofs)


#: Cycles of the stream proofs: two one-group tiles through the 2x2 core (8 steps each, results
#: 16 cycles after a tile's last step, 2 rows) with room for back-pressure.
STREAM_DEPTH = 40


def smoke_proofs() -> tuple[Proof, ...]:
    """The default-tier proofs (seconds): the PE's induction and the FP8 aligner."""
    return _proofs(deep=False)


def deep_proofs() -> tuple[Proof, ...]:
    """``make formal``: every proof."""
    return _proofs(deep=True)


SMOKE = "smoke"
DEEP = "deep"
PROOFS = {SMOKE: smoke_proofs, DEEP: deep_proofs}


def _yosys(work: Path, script: str, timeout: float, name: str = "run") -> str:
    """Run ``script`` in ``work`` as ``<name>.ys``; returns the log, ``<name>.log``."""
    (work / f"{name}.ys").write_text(script)
    run = run_yosys(work, f"{name}.ys", f"{name}.log", timeout, FormalError)
    if run.returncode != 0 and "FAIL!" not in run.log:
        raise FormalError(f"Yosys failed (exit {run.returncode}) in {work}:\n"
                          + "\n".join((run.log or run.output).splitlines()[-15:]))
    return run.log


def _write_design(proof: Proof, work: Path) -> Path:
    from amaranth.back import rtlil
    harness = proof.harness(proof.config)
    work.mkdir(parents=True, exist_ok=True)
    path = work / "design.il"
    path.write_text(rtlil.convert(harness, name="top", ports=harness.ports))
    return path


def run_proof(proof: Proof, work: Path, timeout: float = 600.0) -> ProofResult:
    """Prove ``proof`` in the directory ``work``; a counterexample is written as ``cex.vcd``."""
    start = time.monotonic()
    design = _write_design(proof, Path(work))
    sat = {"combinational": "sat -prove ok 1",
           "bounded": f"sat -seq {proof.depth} -prove ok 1 -set rst 0",
           "induction": f"sat -tempinduct -seq 1 -maxsteps {proof.depth} -prove ok 1 -set rst 0 "
                        + " ".join(f"-prove {a} {b}" for a, b in proof.invariants)}[proof.mode]
    log = _yosys(Path(work), f"read_rtlil {design.name}\nhierarchy -top top\n" + "\n".join(PREPARE)
                 + f"\n{sat} -show-ports -dump_vcd cex.vcd\n", timeout)
    seconds = round(time.monotonic() - start, 2)
    result = functools.partial(ProofResult, proof.name, proof.config.name, proof.depth, seconds=seconds)
    if "FAIL!" in log:
        return result("failed", detail=f"counterexample (ports per step) in {Path(work) / 'cex.vcd'}")
    if "SUCCESS!" in log:
        if proof.cover and not _reachable(Path(work), design, proof.depth, timeout):
            return result("vacuous", detail=f"`covered` not reachable within {proof.depth} cycles")
        return result("bounded" if proof.mode == "bounded" else "proven",
                      detail="`covered` reached" if proof.cover else "")
    if "Reached maximum number of time steps" in log:
        return result("bounded", detail=f"not inductive within {proof.depth} steps")
    raise FormalError(f"proof {proof.name}: Yosys ended without a verdict; see {Path(work) / 'run.log'}")


#: Cells a combinational path does not cross (after ``memory_map``, memories are registers too).
REGISTER_CELLS = "$dff,$adff,$sdff,$dffe,$adffe,$sdffe,$sdffce,$aldff,$aldffe,$dffsr,$dffsre,$dlatch"
#: The handshake outputs of ``mpgemm`` whose combinational inputs :func:`combinational_inputs` lists.
HANDSHAKE_OUTPUTS = ("act__ready", "wgt__ready", "grp__ready", "res__valid", "res__payload")


def _reachable(work: Path, design: Path, depth: int, timeout: float) -> bool:
    """Whether the harness output ``covered`` can be 1 at cycle ``depth`` (a SAT model exists)."""
    log = _yosys(work, f"read_rtlil {design.name}\nhierarchy -top top\n" + "\n".join(PREPARE)
                 + f"\nsat -seq {depth} -set rst 0 -set-at {depth} covered 1 -show-ports -dump_vcd cover.vcd\n",
                 timeout, "cover")
    return "SAT solving finished - model found" in log


def combinational_inputs(component, work: Path, outputs: tuple[str, ...] = HANDSHAKE_OUTPUTS,
                         timeout: float = 300.0) -> dict[str, list[str]]:
    """Per output port of ``component`` (its flattened Verilog port name), the input ports it
    depends on within a cycle: the input cone of the flattened netlist, stopping at registers.
    Structural, hence conservative: a listed input may still not matter, an unlisted one cannot."""
    from amaranth.back import rtlil
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "design.il").write_text(rtlil.convert(component, name="top"))
    script = ["read_rtlil design.il", "hierarchy -top top", *PREPARE[:3], "opt_clean"]
    script += [f"select -list -write cone_{name}.txt o:{name} %ci*:-{REGISTER_CELLS} i:* %i" for name in outputs]
    _yosys(work, "\n".join(script) + "\n", timeout)
    cones = {}
    for name in outputs:
        ports = {entry.split("/", 1)[-1] for entry in (work / f"cone_{name}.txt").read_text().split()}
        cones[name] = sorted(ports - {name})
    return cones


def forbidden_dependencies(cones: dict[str, list[str]]) -> list[str]:
    """The stream rule the cones break: a source's ``valid`` or payload depending on its own
    ``ready`` within a cycle (``res``; the core's ``ready`` outputs may depend on ``valid``)."""
    return [f"{name} depends on res__ready" for name in ("res__valid", "res__payload")
            if "res__ready" in cones.get(name, [])]


def run_all(kind: str, out_dir: Path, timeout: float = 1800.0) -> tuple[list[ProofResult], dict, list[str]]:
    """Run the ``kind`` proofs (:data:`PROOFS`) and the handshake cone check of the stream
    proofs' core in ``out_dir``; write ``report.json`` and ``report.md`` there. Returns the
    results, the cones and the broken stream rules."""
    from hw.emit import build_block
    out_dir = Path(out_dir)
    results = [run_proof(proof, out_dir / proof.name, timeout) for proof in PROOFS[kind]()]
    start = time.monotonic()
    config = formal_config()
    cones = combinational_inputs(build_block("mpgemm", config), out_dir / "cones", timeout=timeout)
    broken = forbidden_dependencies(cones)
    record = {
        "kind": kind,
        "proofs": [dataclasses.asdict(result) | {"what": proof.what, "mode": proof.mode}
                   for proof, result in zip(PROOFS[kind](), results)],
        "cones": {"config": config.name, "inputs": cones, "broken": broken,
                  "seconds": round(time.monotonic() - start, 2)},
    }
    (out_dir / "report.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# Formal proofs", "", f"`mixpe formal{' --smoke' if kind == SMOKE else ''}` (Yosys `sat`); "
             "see docs/verification.md, \"Formal proofs\".", "",
             "| proof | configuration | what | mode | depth | status | seconds |", "|---|---|---|---|---:|---|---:|"]
    lines += [f"| {p['name']} | {p['config']} | {p['what']} | {p['mode']} | {p['depth'] or '-'} | "
              f"{p['status']}{' (' + p['detail'] + ')' if p['detail'] else ''} | {p['seconds']} |"
              for p in record["proofs"]]
    lines += ["", f"Combinational inputs of the handshake outputs ({config.name}, "
              f"{record['cones']['seconds']} s):", ""]
    lines += [f"* `{name}`: {', '.join(f'`{port}`' for port in ports) or 'none (registered)'}"
              for name, ports in cones.items()]
    lines += ["", "Broken stream rules: " + ("; ".join(broken) if broken else "none."), ""]
    (out_dir / "report.md").write_text("\n".join(lines))
    return results, cones, broken
