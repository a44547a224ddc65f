"""Equivalence proofs of a mutant of a design's top module that keep its sub-blocks apart.

The whole-design proofs of :func:`gen.mutate.netlist.prove_equivalent` flatten everything (a GDU's
FP32 units, its accumulator memory as registers); for a mutation of the top module's own logic two
smaller proofs often suffice, each sound on its own:

* :data:`FOLDING` (:func:`prove_folding`): the sub-blocks become black boxes (unmutated in both
  designs, so equal inputs give equal outputs) and memories stay one cell; original and mutant are
  optimised, matched by name and merged (``equiv_struct``), and ``equiv_simple`` plus
  ``equiv_induct`` prove every matched signal, the ports among them. It settles the mutations that
  fold away: a constant bit that already has the forced value, a bit nothing reads, a change the
  next cell's width or test removes.
* :data:`OPERAND` (:func:`prove_operand`): the mutated cell's fan-out cone in the top module ends
  in one sub-block alone (no port, no other sub-block): then the mutant is equivalent when that
  sub-block's outputs agree for every input stream of the cone, the cone's inputs free each cycle
  (``miter`` + ``sat -tempinduct``). It settles a changed operand that the sub-block reads the same
  way, such as a negative subnormal that an adder with DAZ takes as -0.

Both need every register's initial value to be 0 (Amaranth's default), since the registers start
from 0 in the proofs.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from gen.mutate.errors import MutateError
from gen.mutate.netlist import EQUIV_STEPS, MITER_STEPS, EquivalenceResult, Mutation, _all_init_zero, _yosys

__all__ = ["FOLDING", "OPERAND", "sub_blocks", "prove_folding", "prove_operand"]

#: The methods as named in the reports' ``equivalent_by`` (no " at ": the report splits the module off there).
FOLDING = "sub-blocks as black boxes + equiv_struct + equiv_simple + equiv_induct"
OPERAND = "fan-out into one sub-block + miter + sat -tempinduct"


def sub_blocks(rtlil: str, toplevel: str) -> dict[str, str]:
    """Instance name -> module name of every sub-block that module ``toplevel`` of the RTLIL text
    instantiates (Amaranth names their modules ``<toplevel>.<path>``)."""
    body = rtlil.split(f"\nmodule \\{toplevel}\n", 1)[-1].split("\nend\n", 1)[0]
    return {instance: module for module, instance in
            re.findall(rf"^\s*cell \\({re.escape(toplevel)}\.\S+) \\(\S+)$", body, flags=re.MULTILINE)}


def _top_module(design: str, toplevel: str) -> str:
    """Read ``design`` with ``toplevel`` as the top, processes and memories as cells (``proc`` before
    ``hierarchy``, as the mutation listing numbers the cells ``proc`` makes)."""
    return f"read_rtlil {design}\nproc\nhierarchy -top {toplevel}\nmemory_collect\nopt_clean\n"


#: The mutated cell's name while the cone is cut out: ``select`` reads ``$3`` as any name ending in
#: ``$3`` (``$procmux$3`` too), so the cell gets a name of its own first.
_MUTATED = "mutated_cell"


def _applicable(work: Path, design: str, toplevel: str, mutation: Mutation) -> dict[str, str] | None:
    """The sub-blocks of ``toplevel`` when a proof that keeps them apart applies to ``mutation``: a cell
    of the top module itself, a top with sub-blocks, every initial value 0."""
    if mutation.submodule(toplevel) is not None or mutation.option("cell") is None:
        return None
    blocks = sub_blocks((work / design).read_text(), toplevel)
    return blocks if blocks and _all_init_zero(work, design) else None


def prove_folding(work: Path, design: str, toplevel: str, mutation: Mutation, timeout: float) -> EquivalenceResult:
    """:data:`FOLDING`: the mutant of a cell of ``toplevel`` (RTLIL file ``work/design``) equivalent
    with the sub-blocks as black boxes (the module docstring). ``equiv_induct`` leaves the black
    boxes and memories out (their outputs free); it assumes the first :data:`EQUIV_STEPS` cycles
    agree, and both designs start from the same register values (0)."""
    blocks = _applicable(work, design, toplevel, mutation)
    if blocks is None:
        return EquivalenceResult(False, f"{FOLDING}: not applicable")

    def one(name: str, spec: str) -> str:
        return (_top_module(design, toplevel) + f"blackbox {' '.join(sorted(set(blocks.values())))}\n{spec}"
                f"attrmap -remove init\nrename {toplevel} {name}\n")

    log = f"fold_{mutation.index}"
    script = (one("gate", mutation.spec + "\n") + "design -stash gate\n"
              + one("gold", "") + "design -copy-from gate -as gate gate\nsetundef -zero -init\n"
              "simplemap t:$dff t:$dffe\nopt -full\nopt_clean -purge\nequiv_make gold gate equiv\n"
              f"hierarchy -top equiv\nequiv_struct\nequiv_simple -seq {EQUIV_STEPS}\n"
              f"equiv_induct -seq {EQUIV_STEPS} * t:{toplevel}.* %d t:$mem_v2 %d\nequiv_status -assert\n")
    try:
        _yosys(work, script, log, timeout=timeout)
    except MutateError as error:
        reason = "timed out" if "timed out" in str(error) else f"not proven ({log}.log)"
        return EquivalenceResult(False, f"{FOLDING}: {reason}")
    return EquivalenceResult(True, f"proven equivalent ({FOLDING}; {log}.log)", FOLDING)


def _cone_script(design: str, toplevel: str, mutation: Mutation, blocks: dict[str, str]) -> str:
    """Yosys commands that leave in ``toplevel`` the mutated cell's fan-out cone (it stops at the
    sub-blocks, which it includes) and list it (``select -list``)."""
    stops = "".join(f":{instance}" for instance in sorted(blocks))
    return (_top_module(design, toplevel) + f"cd {toplevel}\nrename {mutation.option('cell')} {_MUTATED}\ncd\n"
            f"select -set cone {toplevel}/{_MUTATED} %co*{stops}\n"
            f"select -assert-none @cone {toplevel}/o:* %i\nselect -list @cone {toplevel}/c:* %i\n")


def prove_operand(work: Path, design: str, toplevel: str, mutation: Mutation, timeout: float) -> EquivalenceResult:
    """:data:`OPERAND`: the mutant of a cell of ``toplevel`` equivalent because the cell's fan-out cone
    (the cells it drives, and so on, through registers too) reaches no port and exactly one
    sub-block, whose outputs agree for every input stream. The harness keeps the cone and that
    sub-block, every other signal a free input shared by original and mutant; ``sat -tempinduct``
    from registers at 0, up to :data:`MITER_STEPS` cycles. Sound: the rest of the design sees the
    mutated logic only through that sub-block's outputs, and the cone's real inputs are one of the
    streams the proof covers. The verdict's ``method`` names the sub-block's module
    (``... at gdu.accumulate``)."""
    blocks = _applicable(work, design, toplevel, mutation)
    if blocks is None:
        return EquivalenceResult(False, f"{OPERAND}: not applicable")
    start = time.monotonic()
    log = f"operand_{mutation.index}"
    try:
        listing = _yosys(work, _cone_script(design, toplevel, mutation, blocks), f"{log}_cone", timeout=timeout)
    except MutateError as error:
        reason = "timed out" if "timed out" in str(error) else "the cone reaches a port"
        return EquivalenceResult(False, f"{OPERAND}: {reason} ({log}_cone.log)")
    reached = sorted({name for name in re.findall(rf"^{re.escape(toplevel)}/(\S+)$", listing, flags=re.MULTILINE)}
                     & set(blocks))
    if len(reached) != 1:
        return EquivalenceResult(False, f"{OPERAND}: the cone reaches {len(reached)} sub-blocks ({log}_cone.log)")
    [instance] = reached
    script = (_cone_script(design, toplevel, mutation, blocks) + f"delete -port {toplevel}/w:*\n"
              f"expose {toplevel}/{instance} %co1 {toplevel}/{instance} %d\ndelete {toplevel}/c:* @cone %d\nopt_clean\n"
              f"setundef -undriven -expose\ndesign -save base\n{mutation.with_options(cell=_MUTATED).spec}\n"
              f"rename {toplevel} gate\ndesign -stash gate\ndesign -load base\nrename {toplevel} gold\n"
              "design -copy-from gate -as gate gate\n"
              "miter -equiv -flatten -make_assert gold gate miter\nhierarchy -top miter\nopt -fast -full\nopt_clean\n"
              f"sat -verify -prove-asserts -set-init-zero -tempinduct -maxsteps {MITER_STEPS} miter\n")
    try:
        _yosys(work, script, log, timeout=timeout - (time.monotonic() - start))
    except MutateError as error:
        reason = "timed out" if "timed out" in str(error) else f"not proven ({log}.log)"
        return EquivalenceResult(False, f"{OPERAND}: {reason} (into {instance})")
    return EquivalenceResult(True, f"proven equivalent ({OPERAND}: the cone into {instance}; {log}.log)",
                             f"{OPERAND} at {blocks[instance]}")
