"""Equivalence of a core mutant on its valid beats, proven on the small core by ABC's PDR.

``act_sum``'s ``row_valid`` register tied to 1 (default preset #53 at its output, #104 at its
input) is not equivalent at the core's ports: after a reset the stuck ``sum_valid`` restarts the
capture's lane walk every cycle until the group's row 0, the GDU lanes accumulate those spurious
rows (row 0, bank 0, the reset descriptor) onto bank 0, row 0 of their first columns, and the
result reader shows that word on ``res.payload`` while ``res.valid`` is 0, until the group's own
row 0 (``first`` set) overwrites it (``tests/verif/test_act_sum_row_valid.py``). Under the stream
protocol a payload without valid means nothing, so the property here is "the same valid beats":
for every input sequence, resets included, the original and the mutant agree on every ``valid``
and ``ready`` output on every cycle and on every stream's payload on the cycles its valid is set.

The two small cores (:func:`gen.mutate.core_proofs.small_configuration`: the same structure, 4 x 6)
are put side by side in the harness of :func:`gen.mutate.relational.harness` with its ``streams``
option, flat, with the memories as registers, and written as an AIGER miter whose bad states are the
asserts: the ports, every register outside :data:`DIFFERING` equal in both cores, and optionally the
relations of the spurious rows (:func:`spurious_row_invariants`). All of them are proof obligations,
none is assumed. ABC's PDR (``yosys-abc``) looks for the rest of an inductive invariant itself; the
initial state is the registers' ``init`` values (an uninitialised one is a free input), ``rst`` is a
free input on every cycle. "Property proved" is a proof; a time limit or a counterexample is not.
"""

from __future__ import annotations

import dataclasses
import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

from amaranth import Shape

from gen.mutate.core_proofs import _cells, flat_name, small_configuration
from gen.mutate.errors import MutateError
from gen.mutate.netlist import PREPARE, EquivalenceResult, Mutation, _yosys, rtlil_with_src
from gen.mutate.relational import RelationalProof, harness, harness_name, module_wires
from hw.config import MixPEConfig

__all__ = ["ABC", "StreamProof", "row_valid_flop", "row_valid_proof", "stream_miter", "prove_valid_beats"]

#: The ABC executable (Yosys' own build of ABC); YoWASP's Yosys links ABC in but ships no binary.
ABC = "yosys-abc"
#: The source line of ``act_sum``'s ``row_valid`` register.
ROW_VALID_SOURCE = "hw/act_sum.py:55"
_ROW_VALID_Q = re.compile(r"connect \\Q \\(sum_valid|act_sum\.row_valid|act_sum__row_valid)$", re.M)
#: The registers the mutant may change (``act_sum``'s ``row_valid``, the capture's lane walk and lane
#: 1's register after it, the core's lane registers before the GDUs, named after the GDU inputs they
#: drive once flat, and the GDUs): every other register of the two cores is equal, an obligation of
#: the proof beside the ports (proven, never assumed), so that PDR starts from those equalities.
DIFFERING = re.compile(r"^(act_sum__row_valid|sum_valid|gdu_\d+__|(psum|info|column|scale|zero)(\$\d+)?$"
                       r"|capture__(active|phase|index|parity\$\d+|lane_info_1_0|lane_column_1_0))")
_PUBLIC_NAME = re.compile(r"(?<=\s)\\(\S+)")


@dataclasses.dataclass(frozen=True)
class StreamProof:
    """A mutant mapped to the small core: ``small`` its configuration, ``options`` the mutation's own
    options (mode, port, bit) applied to the small core's ``row_valid`` register; ``note`` the mapping."""
    small: MixPEConfig
    options: str
    note: str

    @property
    def method(self) -> str:
        return f"same valid beats: miter + abc pdr on the {self.small.rows} x {self.small.cols} core"


def row_valid_flop(work: Path, design: str) -> str:
    """The ``$dff`` of ``act_sum`` that drives ``sum_valid`` in the flattened ``mpgemm`` of ``work/design``."""
    _yosys(work, f"read_rtlil {design}\nhierarchy -top mpgemm\n" + "\n".join(PREPARE)
           + "\ntee -q -o flops.txt dump mpgemm/t:$dff\n", "flops")
    dumped = (work / "flops.txt").read_text()
    flops = [name for name, body in re.findall(r"  cell \$dff (\S+)\n(.*?)\n  end", dumped, re.S)
             if name.startswith("$flatten\\act_sum.") and _ROW_VALID_Q.search(body)]
    if len(flops) != 1:
        raise MutateError(f"expected one row_valid register in {work / design}, found {flops}")
    return flops[0]


def row_valid_proof(mutation: Mutation, config: MixPEConfig, work: Path | None = None,
                    design: str = "design.il") -> StreamProof | None:
    """The small-core twin of ``mutation`` (of the core ``mpgemm`` on ``config``) when it changes
    ``act_sum``'s ``row_valid`` register at its ``Q`` or ``D`` port (with ``work``: checked to be that
    register in ``work/design``, the campaign's design), else None."""
    small = small_configuration(config)
    port = mutation.option("port")
    if small is None or ROW_VALID_SOURCE not in mutation.sources or port not in ("Q", "D"):
        return None
    if work is not None and mutation.option("cell") != row_valid_flop(Path(work), design):
        return None
    options = " ".join(f"-{name} {mutation.option(name)}" for name in ("mode", "port", "portbit", "ctrlbit")
                       if mutation.option(name) is not None)
    return StreamProof(small, options, f"act_sum's row_valid register ({options}) -> the same on the small core")


def _flat_core(work: Path, small: MixPEConfig) -> tuple[str, list[str]]:
    """Write ``work/flat.il``: the small core's ``mpgemm``, flat, memories as registers, public names
    through :func:`~gen.mutate.core_proofs.flat_name` and every register output named; returns (its
    text, the names of the wires its registers drive)."""
    from hw.mpgemm import MPGemm
    work.mkdir(parents=True, exist_ok=True)
    (work / "small.il").write_text(rtlil_with_src(MPGemm(small), "mpgemm"))
    _yosys(work, "read_rtlil small.il\nhierarchy -top mpgemm\n" + "\n".join(PREPARE) + "\nmemory_map\nopt_clean\n"
           "rename -enumerate -pattern register_% mpgemm/t:$dff %co1:+[Q] mpgemm/w:$* %i\nwrite_rtlil raw.il\n", "flat")
    rtlil = _PUBLIC_NAME.sub(lambda match: "\\" + flat_name(match[1]), (work / "raw.il").read_text())
    (work / "flat.il").write_text(rtlil)
    registers = []
    for kind, _, body in _cells(rtlil):
        if kind == "$dff":
            q = re.search(r"connect \\Q (.*)", body)[1]
            registers += [wire for wire in re.findall(r"\\(\S+)", q) if wire not in registers]
    return rtlil, registers


def spurious_row_invariants(small: MixPEConfig, registers: list[str]) -> list[str]:
    """Relations of the registers in :data:`DIFFERING` (proof obligations like the others) that follow
    the spurious rows of a stuck ``row_valid``: the mutant's walk is the original's, or restarted at
    row 0, column index 0 while the original's is idle after a reset (``act_sum``'s ``row`` still 0);
    every row register of the lanes and the GDU pipelines is the original's where the original's valid
    is set, and where only the mutant's is, a row 0 of column index 0, bank 0, ``first`` and ``last``
    0; the lane's parameters are the same; the accumulator words but bank 0, row 0 of column index 0
    are the same."""
    from hw.layouts import row_index_shape, row_info_layout

    def pair(name: str) -> tuple[str, str]:
        return f"gold_{harness_name(name)}", f"gate_{harness_name(name)}"

    (ga, ta), (gp, tp), (gi, ti) = (pair(f"capture__{name}") for name in ("active", "phase", "index"))
    [walk_parity] = [register for register in registers if register.startswith("capture__parity$")]
    gq, tq = pair(walk_parity)
    invariants = [f"!{ga} || ({ta} && {gp} == {tp} && {gi} == {ti} && {gq} == {tq})",
                  f"{ga} || !{ta} || ({tp} == 0 && {ti} == 0 && {gp} == 0 && {gi} == 0 && {gq} == {tq} && "
                  f"{pair('act_sum__row')[0]} == 0)",
                  f"{ga} || {ta} || ({gp} == {tp} && {gi} == {ti} && {gq} == {tq})"]
    info = row_info_layout(small)
    width = info.size
    fields = [(info[name].offset, info[name].width) for name in ("row", "first", "last", "bank")]
    infos = ["capture__lane_info_1_0"] + [r for r in registers if re.fullmatch(r"info(\$\d+)?", r)]
    spurious = []
    for name in infos:
        gold, gate = pair(name)
        zero = " && ".join(f"{gate}[{offset + size - 1}:{offset}] == 0" for offset, size in fields)
        invariants += [f"!{gold}[0] || {gate} == {gold}",
                       f"{gate}[{width - 1}:1] == {gold}[{width - 1}:1] && (!{gate}[0] || {gold}[0] || ({zero}))"]
        spurious.append(f"({gate}[0] && !{gold}[0])")
    invariants += [f"{' == '.join(pair(r))}" for r in registers if re.fullmatch(r"(column|scale|zero)(\$\d+)?", r)]
    invariants += [f"{' == '.join(pair(r))} || {' || '.join(spurious)}" for r in registers
                   if re.fullmatch(r"psum(\$\d+)?", r)]
    # The GDU's row registers (hw/gdu.py, GroupDequant._row_layout) start with row, first, last, bank, column.
    low = Shape.cast(row_index_shape(small)).width + 3 + Shape.cast(range(small.columns_per_lane)).width
    writes = small.gdu_stage_cycles["write"]
    cycles = small.gdu_stage_cycles
    for lane in range(small.lanes):
        stages = [("dsum_valid_0", "dsum_rows_2"), ("dsum_valid_1", "dsum_row_0")]
        stages += [(f"{stage}_valid_{i}", f"{stage}_row_{i}") for stage in ("to_float", "scale", "accumulate")
                   for i in range(cycles[stage])]
        stages += [(f"write_valid{i}_0", f"write_row{i}_0") for i in range(1, writes)]
        for valid, row_register in stages:
            (gv, tv), (gr, tr) = pair(f"gdu_{lane}__{valid}"), pair(f"gdu_{lane}__{row_register}")
            invariants += [f"!{gv} || ({tv} && {gr} == {tr})", f"{gv} || !{tv} || {tr}[{low - 1}:0] == 0"]
        words = [r for r in registers if re.fullmatch(rf"gdu_{lane}__acc_memory_\d+_", r)]
        top = 32 * small.columns_per_lane - 1
        for word in words:
            gold, gate = pair(word)
            invariants.append(f"{gold}[{top}:32] == {gate}[{top}:32]" if word == f"gdu_{lane}__acc_memory_0_"
                              else f"{gold} == {gate}")
    return invariants


def stream_miter(work: Path, small: MixPEConfig, options: str, cell: str | None = None,
                 hints: bool = False) -> tuple[str, float]:
    """Write ``work/miter.aig``: the small core and its mutant (``options`` on its ``row_valid``
    register, or on ``cell``) side by side, every output compared every cycle but a stream's payload
    (compared on its valid beats), and every register outside :data:`DIFFERING` equal in both, with
    ``hints`` :func:`spurious_row_invariants` too; returns (the mutation applied, Yosys' seconds)."""
    start = time.monotonic()
    rtlil, registers = _flat_core(work, small)
    spec = f"mutate -module mpgemm -cell {cell or row_valid_flop(work, 'flat.il')} {options}"
    wires = module_wires(rtlil, "mpgemm")
    outputs = {name for name, _, direction in wires if direction == "output"}
    streams = tuple((name, name.removesuffix("payload") + "valid") for name in sorted(outputs)
                    if name.endswith("__payload") and name.removesuffix("payload") + "valid" in outputs)
    equal = tuple(register for register in registers if not DIFFERING.match(register))
    invariants = [f"gold_{harness_name(register)} == gate_{harness_name(register)}" for register in equal]
    exposed = equal
    if hints:
        invariants += spurious_row_invariants(small, registers)
        exposed = tuple(sorted({name for name in registers if f"gold_{harness_name(name)}" in " ".join(invariants)}))
    proof = RelationalProof(signals=exposed, streams=streams, invariants=tuple(invariants))
    (work / "miter.v").write_text(harness(wires, proof, {name: width for name, width, _ in wires}))
    # The FFs stay plain $dff (no enables or synchronous resets folded in): write_aiger takes only those.
    _yosys(work, "read_rtlil flat.il\nhierarchy -top mpgemm\n" + f"expose {' '.join(f'mpgemm/{r}' for r in exposed)}\n"
           f"design -save base\n{spec}\nrename mpgemm gate\ndesign -stash gate\ndesign -load base\nrename mpgemm gold\n"
           "design -copy-from gate -as gate gate\nread_verilog -formal miter.v\nhierarchy -top proof\nproc\n"
           "chformal -lower\nflatten\nopt -fast -nodffe -nosdff\ndelete t:$scopeinfo\nasync2sync\n"
           "dffunmap\ntechmap\nopt -fast -nodffe -nosdff\nabc -g AND\nopt_clean\nstat\n"
           "write_aiger -zinit -map miter.aim miter.aig\n", "miter")
    return spec, time.monotonic() - start


def _abc(work: Path, script: str, timeout: float) -> tuple[str, float, float]:
    """Run ABC's ``script`` in ``work``; returns (its output, wall seconds, CPU seconds of ABC)."""
    if shutil.which(ABC) is None:
        raise MutateError(f"{ABC} (ABC) is not installed")
    start, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([ABC, "-c", script], cwd=work, capture_output=True, text=True, timeout=timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (work / "abc.log").write_text(run.stdout + run.stderr)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return run.stdout, time.monotonic() - start, cpu


def prove_valid_beats(work: Path, proof: StreamProof, timeout: float = 3600.0, cell: str | None = None,
                      options: str | None = None, hints: bool = True) -> EquivalenceResult:
    """Prove ``proof``'s mutant equivalent on its valid beats on its small core in ``work`` (a directory of
    its own), by PDR on :func:`stream_miter`'s miter (``hints``: with :func:`spurious_row_invariants`);
    ``cell`` and ``options``: another mutation of the same small core to run the same property on
    instead (a check that it can fail)."""
    work = Path(work)
    start = time.monotonic()
    spec, _ = stream_miter(work, proof.small, options or proof.options, cell, hints)
    limit = max(1, int(timeout - (time.monotonic() - start)))
    try:
        log, wall, cpu = _abc(work, f"read_aiger miter.aig; strash; orpos; print_stats; pdr -T {limit}", limit + 60)
    except subprocess.TimeoutExpired:
        return EquivalenceResult(False, f"ABC timed out after {limit} s ({spec})")
    where = f"{proof.small.rows} x {proof.small.cols} core ({spec}; ABC {wall:.0f} s, {cpu:.0f} CPU s)"
    if "Property proved" in log:
        return EquivalenceResult(True, f"same valid beats proven by PDR on the {where}", proof.method)
    found = re.search(r"asserted in frame (\d+)", log)
    return EquivalenceResult(False, (f"counterexample in frame {found[1]}" if found else "undecided")
                             + f" on the {where}")
