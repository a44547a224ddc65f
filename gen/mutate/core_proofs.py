"""Equivalence of a core mutant proven on a small core of the same structure.

Some survivors of the default preset's core are equivalent for a reason that spans several blocks:
a bit of a PE's drain register that is wrong only an even number of cycles after the PE's load,
read by the lane walk only an odd number of cycles after it (the scheduler's group spacing, the
capture's walk and the array together); lane 1's parameters latched on row 2 as well as row 0,
where the walk presents the same parameters. The campaign's proofs at a sub-block's ports cannot
see that, and an induction over the whole 16 x 16 core does not finish. Such a mutant is mapped
(:func:`small_core_proof`) to the same cell role on a core with 4 rows, 2 GDU lanes and the
original's group size, weight and activation formats (so the same register widths, the same
mutated bit, and the walk's read offsets 1 + (lane period - lanes) * i with the same parity), and
proven there (:func:`prove_on_small_core`) by :func:`gen.mutate.relational.prove_relational`: the
original and the mutant side by side, every register of the two equal but the mutated one (and of
that one every other bit), proven by k-induction from the registers' initial values. The
induction's window reaches from a group's last step to the walk's last read of its rows; inside it
the walk, the activation-sum unit and the skew network are deterministic, and the next group ends
at least g steps later. Two single-design invariants close the unreachable states that an
induction cannot see past: the activation-sum unit's row counter counts below R while emitting
(else it wraps to a row 0 that no group's end started), and the lane walk's row is 0 while it is
idle (else an idle walk would hold row 2 on a lane forever).

Floating-point activations keep their format on the small core (the aligner, the invalid flags, the
PE's widths), and a group's end reaches the array and the activation-sum unit through the edge
registers first, so the schedule's bounds count those cycles too. A PE's reset value changed (the
forwarded ``x_out``, ``valid_out``) differs only in the register and its copies to the right, and
only where the neighbour does not read it.

Logic the mutant cannot reach is cut out (``expose -evert``): the GDU lanes, or only their FP32
units when the mutant is inside a lane; for a PE's mutant with floating-point activations also the
aligner and the other rows' PEs. A cut block's inputs become outputs that must agree and its
outputs inputs that both cores share; that is sound because a cut block is the same deterministic
logic in both, so equal inputs give equal outputs.

Before any role, a stateless mutated cell is tried alone (:func:`cell_alone_proof`): its output
the same for every input means the same design, whatever its size (the 16 x 16 array's drain-row
compares, whose proofs at the array's ports time out).
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

from amaranth import Shape

from gen.mutate.errors import MutateError
from gen.mutate.netlist import PREPARE, EquivalenceResult, Mutation, _yosys, rtlil_with_src
from gen.mutate.relational import RelationalProof, harness_name, prove_relational
from hw.config import MixPEConfig
from hw.layouts import row_info_layout, scale_shape, zero_shape

__all__ = ["SMALL_ROWS", "SMALL_COLUMNS", "SmallCoreProof", "small_configuration", "small_core_proof",
           "flag_reset_proof", "flat_name", "prepare_core", "relational_proof", "prove_on_small_core"]

#: The small core: 4 rows (row bit 1 and a middle row exist), 6 columns in 2 lanes (3 column
#: indices per lane: first, middle, last), lane period max(4, 2) = 4.
SMALL_ROWS, SMALL_COLUMNS = 4, 6
#: Longest induction (cycles): the invariants leave only short chains (a row 0 latched two cycles
#: before the row 2 that uses it, a walk state two lane registers before a lane's input).
DEPTH = 1
#: What is cut out of the core: whole GDU lanes, or only their FP32 units (a lane's submodules).
CUT_PATTERNS = {"lanes": "mpgemm.gdu_*", "fp32_units": "mpgemm.gdu_*.*"}


def _pe_cut(small: MixPEConfig, row: int) -> str:
    """What a PE's mutant in ``row`` cannot reach, to cut out: the GDU lanes; with floating-point
    activations (a larger problem: the aligner and wider sums) also the aligner and the PEs of the
    other rows (a row's PEs pass values to the right only, and the codes down from registers that
    stay equal); a name of :data:`CUT_PATTERNS` or the patterns themselves."""
    if not small.fp_activation:
        return "lanes"
    return " ".join([CUT_PATTERNS["lanes"], "mpgemm.aligner",
                     *(f"mpgemm.array.pe_{r}_*" for r in range(small.rows) if r != row)])

_PSUM_Q = re.compile(r"-cell \$flatten\\array\.\\pe_(\d+)_(\d+)\.\S+ -port Q -portbit (\d+)(?: -ctrlbit (\d+))? "
                     r"-wire array\.pe_\d+_\d+\.psum -wirebit \d+")
_GDU_CELL = re.compile(r"-cell \$flatten\\gdu_(\d+)\.\S+ -port A -portbit (\d+)")
_BAND_FIRST_LINE = "hw/gdu.py:162"
_PE_PROCMUX = re.compile(r"-cell (\$flatten\\array\.\\pe_(\d+)_(\d+)\.\$procmux\$\d+) -port ([SAB]) -portbit (\d+)")
#: A PE's registers whose copy the right neighbour reads, and when it reads the copy: a changed
#: reset value of one (its reset ``$procmux``'s B input) may differ only where it is not read.
FORWARDED = {"x_out": "!{valid_out}", "valid_out": "({x_out} == 0 && !{group_last_out})"}


@dataclasses.dataclass(frozen=True)
class SmallCoreProof:
    """A mutant mapped to the small core: ``small`` its configuration, ``cut`` what is cut out
    (:data:`CUT_PATTERNS`), ``role`` and ``place`` which cell (``pe_psum``: the drain register
    ``psum`` of PE ``place`` = (row, column), at its output or at the non-reset input of its reset
    multiplexer; ``flag_reset``: the reset multiplexer of that PE's ``group_last_out``;
    ``forward_reset``: the reset multiplexer of that PE's ``register`` (:data:`FORWARDED`);
    ``band_first``: the row-0 compare of lane ``place`` = (lane,); ``cell``: the mutated cell alone,
    ``small`` the campaign's own configuration, ``cut`` the RTLIL file of the cell as a module of its
    own, :func:`cell_alone_proof`), ``options`` the mutation's own options (mode, port, bits) kept
    as they are; ``note`` how the place was mapped; ``alone``: the role ``cell`` twin of the same
    mutant, tried first."""
    small: MixPEConfig
    cut: str
    role: str
    place: tuple[int, ...]
    options: str
    note: str
    register: str = ""
    alone: "SmallCoreProof | None" = None

    @property
    def method(self) -> str:
        if self.role == "cell":
            return "the mutated cell alone + sat"
        return f"invariants + k-induction on the {self.small.rows} x {self.small.cols} core"


def small_configuration(config: MixPEConfig) -> MixPEConfig | None:
    """The small core of ``config``'s structure, or None when ``config`` has another: INT8 or
    floating-point activations (the aligner, the invalid flags and the PE's widths as in
    ``config``), integer codes, one row band, 2 GDU lanes, a lane period whose difference to the
    lane count is even (the parity of the walk's read offsets), at least the small core's rows and
    columns."""
    if (config.kquant or config.signed_codes or config.row_groups != 1 or config.lanes != 2
            or config.rows < SMALL_ROWS or config.cols < SMALL_COLUMNS or (config.lane_period(2) - 2) % 2):
        return None
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return MixPEConfig(**{**fields, "rows": SMALL_ROWS, "cols": SMALL_COLUMNS, "gdu_lanes": 2,
                          "name": f"{config.name}-small"})


def _scaled(value: int, count: int, small_count: int) -> int:
    """First -> first, last -> last, the others spread over the small range's middle."""
    if value == 0:
        return 0
    if value == count - 1 or small_count < 3:
        return small_count - 1
    return 1 + (value - 1) * (small_count - 2) // (count - 2)


def _pe_place(config: MixPEConfig, small: MixPEConfig, row: int, column: int) -> tuple[tuple[int, int], str]:
    """PE (``row``, ``column``) of ``config`` -> the PE of ``small`` in the same lane at the scaled row
    and column index (:func:`_scaled`), and a note of the mapping."""
    lane, index = column % 2, column // 2
    small_row = _scaled(row, config.rows, small.rows)
    small_index = _scaled(index, config.columns_per_lane, small.columns_per_lane)
    return (small_row, lane + 2 * small_index), (
        f"PE ({row}, {column}) (lane {lane}, column index {index} of {config.columns_per_lane}) -> "
        f"PE ({small_row}, {lane + 2 * small_index}) (lane {lane}, index {small_index} of {small.columns_per_lane})")


def _psum_proof(config: MixPEConfig, small: MixPEConfig, row: int, column: int, options: str) -> SmallCoreProof:
    place, note = _pe_place(config, small, row, column)
    bit = Mutation(0, f"mutate {options}").option("portbit")
    return SmallCoreProof(small, _pe_cut(small, place[0]), "pe_psum", place, options,
                          f"{note}; psum bit {bit} of {config.psum_bits} ({small.psum_bits})")


def small_core_proof(mutation: Mutation, config: MixPEConfig, work: Path | None = None) -> SmallCoreProof | None:
    """The small-core twin of ``mutation`` (of the core ``mpgemm`` on ``config``), or None when its
    role has no proof here. With ``work`` (the campaign's directory, its ``design.il``), first the
    mutated cell alone when it is a stateless cell (:func:`cell_alone_proof`). Then the roles that
    need the small core: a bit of a PE's drain register ``psum`` changed at the register's
    output (``inv``, ``cnot0``/``cnot1``: the forms that keep the register's hold path toggling);
    an input bit of a lane's row-0 compare (``hw/gdu.py:162``) tied to a constant; with ``work``
    (the campaign's directory, its ``design.il``), a PE's reset ``$procmux`` (:func:`_reset_target`):
    its select tied to 0 for ``group_last_out``, its B input (the reset value) changed for a
    register of :data:`FORWARDED`, or its A input (the value loaded or held) changed by ``inv``,
    ``cnot0`` or ``cnot1`` for ``psum``."""
    small = small_configuration(config)
    if small is None:
        return None
    alone = cell_alone_proof(mutation, config, Path(work)) if work is not None else None
    twin = _role_twin(mutation, config, small, work)
    return alone if twin is None else dataclasses.replace(twin, alone=alone)


def _role_twin(mutation: Mutation, config: MixPEConfig, small: MixPEConfig, work: Path | None) -> SmallCoreProof | None:
    """The small-core twin of ``mutation``'s role (:func:`small_core_proof`), or None."""
    spec, toggles = mutation.spec, mutation.mode in ("inv", "cnot0", "cnot1")
    control = f" -ctrlbit {mutation.option('ctrlbit')}" if mutation.option("ctrlbit") else ""
    if (found := _PSUM_Q.search(spec)) and toggles:
        return _psum_proof(config, small, int(found[1]), int(found[2]),
                           f"-mode {mutation.mode} -port Q -portbit {found[3]}{control}")
    if (work is not None and (found := _GDU_CELL.search(spec)) and mutation.mode in ("const0", "const1")
            and _BAND_FIRST_LINE in mutation.sources):
        lane, cell = int(found[1]), found[0].split()[1]
        copies = _band_first_copies(_dumped_cells(Path(work), mutation.index, f"gdu_{lane}"), lane)
        if cell in copies:
            return band_first_proof(config, lane, copies.index(cell), mutation.mode, int(found[2]))
    if work is not None and (found := _PE_PROCMUX.search(spec)):
        row, column, port, bit = int(found[2]), int(found[3]), found[4], found[5]
        target = _reset_target(_dumped_cells(Path(work), mutation.index, f"pe_{row}_{column}"), found[1])
        if target == "group_last_out" and port == "S" and mutation.mode == "const0":
            return flag_reset_proof(config, row, column)
        if target in FORWARDED and port == "B":
            return forward_reset_proof(config, row, column, target, f"-mode {mutation.mode} -port B -portbit {bit}")
        if target == "psum" and port == "A" and toggles:
            return _psum_proof(config, small, row, column, f"-mode {mutation.mode} -port A -portbit {bit}{control}")
    return None


#: Yosys cells whose outputs are a function of their inputs alone (no state, no clock).
STATELESS = frozenset(f"${name}" for name in (
    "eq ne lt le gt ge eqx nex mux pmux bmux logic_not logic_and logic_or not and or xor xnor add sub neg pos mul "
    "reduce_and reduce_or reduce_xor reduce_xnor reduce_bool shl shr sshl sshr shift shiftx").split())
#: The module a cell alone becomes (:func:`cell_alone_proof`).
CELL_MODULE = "cell_alone"


def cell_alone_proof(mutation: Mutation, config: MixPEConfig, work: Path) -> SmallCoreProof | None:
    """The mutated cell of the campaign's ``work/design.il`` as a module of its own (Yosys ``submod``:
    its connections to other cells become ports, its constant inputs stay constants), when it is a
    :data:`STATELESS` cell; None otherwise. A mutant whose cell gives the original's outputs for
    every value of those ports is equivalent in any design that holds the cell (a compare with a
    constant whose changed input bit cannot change the outcome, a constant bit tied to its own
    value)."""
    cell, tag = mutation.option("cell"), f"cell_{mutation.index}"
    if not cell or mutation.option("module") != "mpgemm":
        return None
    try:
        _yosys(work, "read_rtlil design.il\nhierarchy -top mpgemm\n" + "\n".join(PREPARE)
               + f"\nsubmod -name {CELL_MODULE} mpgemm/{cell}\nhierarchy -top {CELL_MODULE}\nwrite_rtlil {tag}.il\n",
               tag)
    except MutateError:  # a name Yosys does not select: the other methods still try
        return None
    [kind] = [found[1] for found in re.finditer(r"^  cell (\S+) (\S+)$", (work / f"{tag}.il").read_text(), re.M)
              if found[2] == cell] or [None]
    if kind not in STATELESS:
        return None
    options = " ".join(f"-{name} {mutation.option(name)}" for name in ("mode", "cell", "port", "portbit", "ctrlbit")
                       if mutation.option(name) is not None)
    return SmallCoreProof(config, str((work / f"{tag}.il").resolve()), "cell", (), options, f"{kind} {cell}")


def _prove_cell_alone(work: Path, proof: SmallCoreProof, timeout: float) -> EquivalenceResult:
    """``proof`` (role ``cell``): a miter of the cell alone and its mutant, proven by one SAT call."""
    (work / "cell.il").write_text(Path(proof.cut).read_text())  # Yosys (WebAssembly) reads below its directory
    script = (f"read_rtlil cell.il\ndesign -save base\nmutate -module {CELL_MODULE} {proof.options}\n"
              f"rename {CELL_MODULE} gate\ndesign -stash gate\ndesign -load base\nrename {CELL_MODULE} gold\n"
              "design -copy-from gate -as gate gate\nmiter -equiv -flatten -make_assert gold gate miter\n"
              "hierarchy -top miter\nsat -verify -prove-asserts -show-inputs miter\n")
    try:
        _yosys(work, script, "cell_alone", timeout=timeout)
    except MutateError as error:
        return EquivalenceResult(False, f"not proven with the cell alone ({proof.note}): {str(error).splitlines()[0]}")
    return EquivalenceResult(True, f"proven with the cell alone ({proof.note}; cell_alone.log)", proof.method)


def band_first_proof(config: MixPEConfig, lane: int, copy: int, mode: str, bit: int) -> SmallCoreProof | None:
    """The small-core twin of input bit ``bit`` of lane ``lane``'s row-0 compare (``hw/gdu.py:162``)
    tied to a constant (``mode``): Amaranth emits the compare once per use of ``is_band_first``, the
    same uses in the same order on every configuration (the latch enable, then the scale and the
    zero multiplexers), so copy number ``copy`` is the same use on the small core."""
    small = small_configuration(config)
    if small is None:
        return None
    note = (f"lane {lane}'s row-0 compare (copy {copy + 1}, the same use), row bit {bit} of "
            f"{(config.rows - 1).bit_length()} ({(small.rows - 1).bit_length()})")
    return SmallCoreProof(small, "fp32_units", "band_first", (lane, copy), f"-mode {mode} -port A -portbit {bit}", note)


def flag_reset_proof(config: MixPEConfig, row: int, column: int) -> SmallCoreProof | None:
    """The small-core twin of PE (``row``, ``column``)'s ``group_last_out`` reset ignored (its reset
    ``$procmux`` select tied to 0)."""
    small = small_configuration(config)
    if small is None:
        return None
    place, note = _pe_place(config, small, row, column)
    return SmallCoreProof(small, "lanes", "flag_reset", place, "-mode const0 -port S -portbit 0",
                          f"{note}: group_last_out's reset ignored")


def forward_reset_proof(config: MixPEConfig, row: int, column: int, register: str,
                        options: str) -> SmallCoreProof | None:
    """The small-core twin of PE (``row``, ``column``)'s ``register`` (one of :data:`FORWARDED`) with
    its reset value changed (``options`` on its reset ``$procmux``'s B input)."""
    small = small_configuration(config)
    if small is None:
        return None
    place, note = _pe_place(config, small, row, column)
    return SmallCoreProof(small, _pe_cut(small, place[0]), "forward_reset", place, options,
                          f"{note}: {register}'s reset value",
                          register)


def _flops_and_muxes(rtlil: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Of the flat module in ``rtlil`` (a Yosys ``dump`` or ``write_rtlil``): register D -> Q connections,
    and per ``$mux`` its (S, Y) connections."""
    flops, muxes = {}, {}
    for kind, cell, body in _cells(rtlil):
        ports = dict(re.findall(r"connect \\(\w+) (.*)", body))
        if kind == "$dff":
            flops[ports["D"]] = ports["Q"]
        elif kind == "$mux":
            muxes[cell] = (ports["S"], ports["Y"])
    return flops, muxes


def _dumped_cells(work: Path, index: int, block: str) -> str:
    """The cells of sub-block ``block`` (``gdu_1``, ``pe_7_1``) in the campaign's flattened
    ``work/design.il``, flattened by the same passes as its mutation list (so the same cell names),
    as Yosys dumps them."""
    tag = f"role_{index}"
    _yosys(work, "read_rtlil design.il\n" + "\n".join(PREPARE) + f"\ntee -q -o {tag}.txt dump mpgemm/c:*{block}.*\n", tag)
    return (work / f"{tag}.txt").read_text()


def _band_first_copies(rtlil: str, lane: int) -> list[str]:
    """The names of lane ``lane``'s row-0 compares (``hw/gdu.py:162``) in ``rtlil``, in the design's order."""
    return [name for kind, name, body in _cells(rtlil) if name.startswith(f"$flatten\\gdu_{lane}.")
            and kind in ("$logic_not", "$eq") and f'/{_BAND_FIRST_LINE}"' in body]


def _reset_target(rtlil: str, cell: str) -> str | None:
    """The register of the PE (``group_last_out``, ``psum``, ...) whose D input ``cell`` (a ``$procmux``
    of a PE in ``rtlil``) drives when it selects on ``rst``; else None."""
    pe = re.search(r"\\(pe_\d+_\d+)\.", cell)[1]
    flops, muxes = _flops_and_muxes(rtlil)
    select, output = muxes.get(cell, ("", ""))
    register = re.fullmatch(rf"\\array\.{pe}\.(\w+)", flops.get(output, ""))
    return register[1] if select == "\\rst" and register else None


def _reset_mux(rtlil: str, row: int, column: int, register: str) -> list[str]:
    """The reset multiplexers of PE (``row``, ``column``)'s ``register`` in the prepared small core ``rtlil``."""
    flops, muxes = _flops_and_muxes(rtlil)
    wire = "\\" + flat_name(f"array.pe_{row}_{column}.{register}")
    return [name for name, (select, output) in muxes.items() if name.startswith(f"$flatten\\array.\\pe_{row}_{column}.")
            and select == "\\rst" and flops.get(output) == wire]


_CELL = re.compile(r"^((?:  attribute .*\n)*)  cell (\S+) (\S+)\n((?:    .*\n)*?)  end$", re.M)
_PUBLIC_NAME = re.compile(r"(?<=\s)\\(\S+)")


def _cells(rtlil: str) -> list[tuple[str, str, str]]:
    """(type, name, attribute and connection lines) of every cell of the (single, flat) module in ``rtlil``."""
    return [(match[2], match[3], match[1] + match[4]) for match in _CELL.finditer(rtlil)]


def flat_name(name: str) -> str:
    """A flattened wire's name in the prepared core (``array.pe_1_2.psum`` -> ``array__pe_1_2__psum``):
    without the dots, which :func:`~gen.mutate.relational.prove_relational` would read as a sub-block
    path, and the brackets, which a Yosys selection would read as a pattern."""
    return name.replace(".", "__").replace("[", "_").replace("]", "_")


def prepare_core(work: Path, small: MixPEConfig, cut: str) -> tuple[str, list[str]]:
    """Write ``work/core-<cut>.il``: the small core's ``mpgemm``, flat, memories as registers, the
    :data:`CUT_PATTERNS` ``cut`` blocks (or those ``cut`` names) replaced by ports, every public name through
    :func:`flat_name` and every register output named; returns (its file name, the names of the
    wires its registers drive)."""
    from hw.mpgemm import MPGemm
    work.mkdir(parents=True, exist_ok=True)
    (work / "small.il").write_text(rtlil_with_src(MPGemm(small), "mpgemm"))
    pattern = CUT_PATTERNS.get(cut, cut)
    label = cut if cut in CUT_PATTERNS else "pe_row"
    _yosys(work, "read_rtlil small.il\nhierarchy -top mpgemm\n" + "\n".join(PREPARE[:1]) + "\n"
           f"setattr -mod -set keep_hierarchy 1 {pattern}\n" + "\n".join(PREPARE[1:]) + "\nmemory_map\nopt_clean\n"
           f"expose -evert {' '.join(f'mpgemm/t:{part}' for part in pattern.split())}\n"
           "hierarchy -top mpgemm\nopt_clean\n"
           "rename -enumerate -pattern register_% mpgemm/t:$dff %co1:+[Q] mpgemm/w:$* %i\n"
           "write_rtlil cut.il\n", f"prepare-{label}")
    rtlil = _PUBLIC_NAME.sub(lambda match: "\\" + flat_name(match[1]), (work / "cut.il").read_text())
    name = f"core-{label}.il"
    (work / name).write_text(rtlil)
    registers = []
    for kind, cell, body in _cells(rtlil):
        if kind.startswith("$") and "dff" in kind:
            if kind != "$dff":
                raise MutateError(f"cell={cell}: a {kind} register in {work / name}; expected $dff only")
            q = re.search(r"connect \\Q (.*)", body)[1]
            registers += [wire for wire in re.findall(r"\\(\S+)", q) if wire not in registers]
    return name, registers


def _small_mutation(proof: SmallCoreProof, rtlil: str) -> Mutation:
    """The mutation of ``proof``'s cell in the prepared small core (``rtlil``)."""
    if proof.role == "pe_psum" and "-port Q" in proof.options:
        row, column = proof.place
        wire = flat_name(f"array.pe_{row}_{column}.psum")
        cells = [name for kind, name, body in _cells(rtlil) if kind == "$dff" and f"connect \\Q \\{wire}\n" in body]
    elif proof.role in ("pe_psum", "flag_reset", "forward_reset"):
        register = {"pe_psum": "psum", "flag_reset": "group_last_out"}.get(proof.role, proof.register)
        cells = _reset_mux(rtlil, *proof.place, register)
    else:
        lane, copy = proof.place
        cells = _band_first_copies(rtlil, lane)[copy:copy + 1]
    if len(cells) != 1:
        raise MutateError(f"role={proof.role}: expected one cell at {proof.place} in the small core, found {cells}")
    return Mutation(0, f"mutate -module mpgemm -cell {cells[0]} {proof.options}")


def _gold(name: str) -> str:
    """The harness name of the original core's register ``name`` (a flattened name)."""
    return f"gold_{harness_name(flat_name(name))}"


def _schedule_invariants(small: MixPEConfig) -> list[str]:
    """Single-design facts of the schedule, each inductive given the others: the activation-sum unit's
    row counter counts below R while emitting (else it wraps to a row 0 that no group's end started);
    the lane walk's row is 0 while it is idle and its column index in range while active; and no
    group can end while a group's rows are on their way (from its end through the walk and the
    two lane registers after it): the scheduler's step counter, reset by a group's end, is at most
    the cycles since, far below g - 1 (the edge registers of floating-point activations add their
    cycles: the array and the activation-sum unit see the group's end that much later, the step
    counter being at most i while it is in edge register i)."""
    age = f"(3 + {_gold('capture.phase')} + {small.lane_period(2)} * {_gold('capture.index')})"
    step, active, edge = _gold("scheduler.step_in_group"), _gold("capture.active"), small.edge_stages
    walk_end = 2 + small.lane_period(2) * small.columns_per_lane + edge
    lane_info, gdu_info = _gold("capture.lane_info_1_0"), _gold("lane_1_info_0")
    later = f" + {edge}" if edge else ""
    return [f"!{_gold('act_sum.emitting')} || {_gold('act_sum.next_row')} < {small.rows}",
            f"{active} || {_gold('capture.phase')} == 0",
            f"!{active} || {_gold('capture.index')} < {small.columns_per_lane}",
            f"!{_gold('act_sum.emitting')} || {step} <= {_gold('act_sum.next_row')}{later}",
            f"!{_gold('act_sum.row_valid')} || {step} <= {_gold('act_sum.row')} + {1 + edge}",
            f"!{active} || {step} < {age}{later}",
            f"!{lane_info}[0] || {step} <= {walk_end}",
            f"!{gdu_info}[0] || {step} <= {walk_end + 1}",
            *(f"!({_gold(f'edge_valid_{i}')} & {_gold(f'edge_group_last_{i}')}) || {step} <= {i}" for i in range(edge))]


def _walk_invariants(small: MixPEConfig, row: int, column: int, mutation: Mutation) -> list[str]:
    """Invariants that tie the drain register of PE (``row``, ``column``) to the lane walk (``mutation``
    changes a bit of its output, ``inv`` or ``cnot0``/``cnot1``). A group's end at the array's input is
    a token that the skew network and the PEs' flags carry to the PE, ``row + column + 1`` cycles
    (stages) later it loads the drain register; the activation-sum unit and then the walk run on
    the same clock (stage 1: the first row captured, 2: row 0 emitted, from 3 on the walk with age
    3 + phase + lane period * index). So a token at a stage means that state and back, two tokens
    never meet (a group end needs g - 1 steps since the last), and none is on the way while the
    walk runs past the load: the mutated output bit differs from the original's on the load's cycle
    and every second one after it, and the walk (and lane 1 one cycle later) reads it an odd number
    of cycles after the load, when it agrees."""
    period, lane, index = small.lane_period(2), column % 2, column // 2
    tokens = [f"({_gold(f'array.skew_valid_{row}_{j}')} & {_gold(f'array.skew_last_{row}_{j}')})" for j in range(row + 1)]
    tokens += [f"({_gold(f'array.pe_{row}_{c}.valid_out')} & {_gold(f'array.pe_{row}_{c}.group_last_out')})"
               for c in range(column)]
    if len(tokens) < 3:
        raise MutateError(f"place=({row}, {column}): the drain register loads before the walk starts")
    active, step = _gold("capture.active"), _gold("scheduler.step_in_group")
    age = f"(3 + {_gold('capture.phase')} + {period} * {_gold('capture.index')})"
    states = {1: f"({_gold('act_sum.emitting')} && {_gold('act_sum.next_row')} == 0)",
              2: f"({_gold('act_sum.row_valid')} && {_gold('act_sum.row')} == 0)"}
    # Floating-point activations: the group's end is first in the edge registers (stages 1 - edge to 0),
    # which feed the array and the activation-sum unit alike.
    edge = small.edge_stages
    chain = [f"({_gold(f'edge_valid_{i}')} & {_gold(f'edge_group_last_{i}')})" for i in range(edge)] + tokens
    invariants = []
    for position, token in enumerate(chain):
        stage = position + 1 - edge
        state = states.get(stage, f"({active} && {age} == {stage})")
        invariants += [f"{token} == {state}"] if stage >= 1 else []
        invariants += [f"!{token} || {step} <= {stage - 1 + edge}", f"!({active} && {age} != {stage} && {token})"]
        invariants += [f"!({token} && {later})" for later in chain[position + 1:]]
    psum, bit = flat_name(f"array.pe_{row}_{column}.psum"), int(mutation.option("portbit"))
    control = mutation.option("ctrlbit")
    toggles = {"inv": "1'b1", "cnot1": f"gold_{psum}[{control}]", "cnot0": f"!gold_{psum}[{control}]"}[mutation.mode]
    differs = f"(gold_{psum}[{bit}] ^ gate_{psum}[{bit}])"
    load = len(tokens) + 1
    # the exposed wire is the mutated register output: at the load it differs (by the toggle), then
    # the register holds the mutated value and the two differ by the parity of the cycles since
    invariants.append(f"!({active} && {age} >= {load}) || {differs} == ((({age} - {load}) & 1) == 0 && {toggles})")
    if lane == 1:
        info, layout = _gold("capture.lane_info_1_0"), row_info_layout(small)
        row_bits = f"{layout['row'].offset + layout['row'].width - 1}:{layout['row'].offset}"
        read_age = 4 + row + period * index
        invariants.append(f"!({info}[{layout['valid'].offset}] && {info}[{row_bits}] == {row} && "
                          f"{_gold('capture.lane_column_1_0')} == {index}) || "
                          f"{differs} == ({(read_age - load) & 1} == 0 && {toggles})")
    return invariants


def _lane_parameter_invariants(small: MixPEConfig, lane: int, registers: list[str]) -> list[str]:
    """Invariants that tie lane ``lane``'s held scale and zero to the walk: the walked row moves
    through the lane's registers (the capture's for lane 1, then the core's before the GDU) one
    cycle per register with its parity and column index, a row other than 0 is always valid
    there, the GDU's scale and zero inputs are the ping-pong parameters of the row's parity and
    column, and while a row other than 0 is at the GDU, the held values are those too (latched on
    that column's row 0, and no group ends, so no parameter changes, while a walk is on its way)."""
    layout = row_info_layout(small)

    def field(name: str) -> str:
        return f"{layout[name].offset + layout[name].width - 1}:{layout[name].offset}"

    [walk_parity] = [wire for wire in registers if wire.startswith("capture__parity$")]
    stages = [(_gold("capture.active"), _gold("capture.phase"), f"gold_{harness_name(walk_parity)}", _gold("capture.index"))]
    for info, column in ([("capture.lane_info_1_0", "capture.lane_column_1_0")] if lane else []) + [
            (f"lane_{lane}_info_0", f"lane_{lane}_column_0")]:
        info = _gold(info)
        stages.append((f"{info}[{field('valid')}]", f"{info}[{field('row')}]", f"{info}[{field('parity')}]", _gold(column)))
    invariants = [f"{row} == 0 || {valid}" for valid, row, _, _ in stages]
    for (valid, row, parity, column), (next_valid, next_row, next_parity, next_column) in zip(stages, stages[1:]):
        invariants.append(f"!({valid} && {row} != 0) || ({next_valid} && {next_row} == {row} - 1 && "
                          f"{next_parity} == {parity} && {next_column} == {column})")
    valid, row, parity, column = stages[-1]
    width = {name: Shape.cast(shape(small)).width for name, shape in (("scale", scale_shape), ("zero", zero_shape))}
    columns = list(range(lane, small.cols, 2))

    def parameter(name: str) -> str:
        offset = 0 if name == "scale" else width["scale"] * small.row_groups * small.cols

        def word(params: str, c: int) -> str:
            low = offset + width[name] * c
            return f"{params}[{low + width[name] - 1}:{low}]"

        def chosen(params: str) -> str:
            text = word(params, columns[0])
            for position, c in enumerate(columns[1:], start=1):
                text = f"({column} == {position} ? {word(params, c)} : {text})"
            return text
        return f"({parity} ? {chosen(_gold('capture.params_1'))} : {chosen(_gold('capture.params_0'))})"
    for name in ("scale", "zero"):
        invariants += [f"!{valid} || {_gold(f'lane_{lane}_{name}_0')} == {parameter(name)}",
                       f"!({valid} && {row} != 0) || {_gold(f'gdu_{lane}.{name}_held')} == {parameter(name)}"]
    return invariants


def relational_proof(proof: SmallCoreProof, registers: list[str]) -> RelationalProof:
    """Every register equal in both cores but the mutated bit (of a mutated register output; for a
    PE's ``group_last_out`` whose reset is ignored: equal wherever the PE's ``valid_out`` is 1, the only
    case a PE reads it, for it and its copies to the right; for a register of :data:`FORWARDED` whose
    reset value changed: equal wherever it is read, for it and its copies to the right), the schedule's invariants
    (:func:`_schedule_invariants`) and for a drain register bit those of the walk
    (:func:`_walk_invariants`), for a lane's row-0 compare those of its parameters
    (:func:`_lane_parameter_invariants`)."""
    changed, unless = {}, {}  # the mutated bit; a register -> when it may differ
    extra = _schedule_invariants(proof.small)
    own = Mutation(0, f"mutate {proof.options}")  # the role's mutation: the property is the same for any run
    if proof.role == "pe_psum":
        row, column = proof.place
        changed[flat_name(f"array.pe_{row}_{column}.psum")] = int(own.option("portbit"))
        extra += _walk_invariants(proof.small, row, column, own)
    elif proof.role == "band_first":
        extra += _lane_parameter_invariants(proof.small, proof.place[0], registers)
    elif proof.role == "flag_reset":  # the flag and its copies to the right, read only with valid_out
        row, column = proof.place
        unless = {flat_name(f"array.pe_{row}_{c}.group_last_out"): f"!{_gold(f'array.pe_{row}_{c}.valid_out')}"
                  for c in range(column, proof.small.cols)}
    elif proof.role == "forward_reset":  # the register and its copies to the right, where they are not read
        row, column = proof.place
        for c in range(column, proof.small.cols):
            names = {name: _gold(f"array.pe_{row}_{c}.{name}") for name in ("x_out", "valid_out", "group_last_out")}
            unless[flat_name(f"array.pe_{row}_{c}.{proof.register}")] = FORWARDED[proof.register].format(**names)
    invariants = []
    for wire in registers:
        gold, gate = f"gold_{harness_name(wire)}", f"gate_{harness_name(wire)}"
        if wire in changed:
            invariants.append(f"(({gold} ^ {gate}) & ~(64'd1 << {changed[wire]})) == 0")
        elif wire in unless:
            invariants.append(f"{unless[wire]} || {gold} == {gate}")
        else:
            invariants.append(f"{gold} == {gate}")
    named = {harness_name(wire) for wire in registers}
    wires = sorted({name for name in re.findall(r"\bgold_(\w+)", " ".join(extra)) if name not in named})
    return RelationalProof(signals=(*registers, *wires), invariants=tuple(invariants + extra), depth=DEPTH)


def prove_on_small_core(work: Path, proof: SmallCoreProof, timeout: float = 900.0,
                        mutation: Mutation | None = None) -> EquivalenceResult:
    """Prove ``proof``'s mutant equivalent on its small core in ``work`` (a directory of its own);
    ``mutation``: another mutation of the same small core to run the same property on instead (a
    check that the property can fail)."""
    work = Path(work)
    start = time.monotonic()
    if proof.role == "cell":
        work.mkdir(parents=True, exist_ok=True)
        return _prove_cell_alone(work, proof, timeout)
    if proof.alone is not None and mutation is None:
        if (verdict := prove_on_small_core(work / "cell", proof.alone, timeout)).equivalent:
            return verdict
    design, registers = prepare_core(work, proof.small, proof.cut)
    mutation = mutation or _small_mutation(proof, (work / design).read_text())
    proven, detail = prove_relational(work, design, "mpgemm", mutation, relational_proof(proof, registers),
                                      timeout=timeout - (time.monotonic() - start))
    where = f"{proof.small.rows} x {proof.small.cols} core, {proof.note}"
    if proven:
        return EquivalenceResult(True, f"{detail} on the {where}", proof.method)
    return EquivalenceResult(False, f"not proven on the {where}: {detail}")
