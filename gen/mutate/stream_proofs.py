"""Equivalence of a core mutant on its valid beats: ``act_sum``'s ``row_valid`` tied to 1.

The mutant (default preset #53 at the register's output, #104 at its input; FP #48, #130) is not
equivalent at the core's ports: after a reset the stuck ``sum_valid`` restarts the capture's lane
walk every cycle until the group's row 0 is emitted, the GDU lanes accumulate those spurious rows
(row 0, column index 0, bank 0, the reset descriptor) onto bank 0, row 0 of their first column, and
the result reader shows that word on ``res.payload`` while ``res.valid`` is 0, until the group's
own row 0 (``first`` set) overwrites it (``tests/verif/test_act_sum_row_valid.py``). Under the
stream protocol a payload without valid means nothing, so the property is "the same valid beats":
for every input sequence, resets included, the original and the mutant agree on every ``valid`` and
``ready`` output on every cycle and on every stream's payload on its valid beats
(:class:`~gen.mutate.relational.RelationalProof` with ``streams``).

It is proven by induction (``sat -tempinduct``, length 1) on the *stream core*
(:func:`stream_configuration`: 2 x 4, g = 8, 2 GDU lanes, combinational FP32 units, the preset's
number formats) with the invariants of :func:`row_valid_invariants`, every one of them a proof
obligation beside the ports. They say where the two designs may differ and why that never reaches a
valid beat:

* the mutant's ``row_valid`` is 0 only in the initial state, where every register equals the
  original's (tied at ``D``, the register takes 1 on the first clock edge, resets included);
* *fresh* (the original's ``act_sum`` has emitted nothing since the reset: ``row == 0`` and not
  ``row_valid``): the original's walk, lanes and GDU stages are empty, its descriptors and result
  flags are at their reset values, the scheduler's pending group (if one has started) is its tile's
  first, in bank 0;
* the schedule: a group's rows are emitted on consecutive cycles with no capture in between, a walk
  (R x columns per lane cycles) ends before the next group's row 0 (the scheduler's step count
  bounds how far off it is), so two valid neighbours in a lane hold consecutive rows;
* every register equal in both designs but ``row_valid``, the walk, the lane and GDU stage
  registers, ``scale_held``/``zero_held`` and one accumulator word per lane; the capture's row sums
  too, because a write while ``row_valid`` is 0 puts back the value that is there;
* the walk is the original's, or restarted at row 0, column index 0 while the original's is idle;
  a lane or GDU stage holds the original's row where the original's is valid (payload included),
  and where only the mutant's is, a spurious one (row 0, ``first``, ``last``, bank and column 0);
  lane 1 holds lane 0's rows one stage later;
* ``scale_held``/``zero_held`` differ only while no later row of a group is at the GDU input;
* a spurious row, and a difference in bank 0, row 0, column index 0's word, exist only while the
  result flags are clear and the original's first row 0 of that column (``first`` set) is on its way
  with nothing valid ahead of it in the lane (or the original is fresh, or emits that row 0 now),
  in this lane and in the last lane, the one whose writes release result rows.

What carries the proof from the stream core to the presets (R = C = 16, g = 128, the pipelined GDU
of 21 cycles): the mutated register, the walk, the lanes and the GDU stages are the same code; the
invariants are written for any R, columns per lane and stage count, and their timing conditions hold
there with a wider margin (a walk of R x columns per lane = 128 cycles ends by the next row 0 at
least g = 128 cycles later; the spurious rows leave the GDU 21 + 2 cycles after it, where the next
group's row 0 comes 128 later). The stream core has combinational FP32 units because the pipelined
ones add some 600 registers whose stage the invariants would have to name one by one.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from amaranth import Shape

from gen.mutate.core_proofs import _cells, flat_name
from gen.mutate.errors import MutateError
from gen.mutate.netlist import PREPARE, EquivalenceResult, Mutation, _yosys, rtlil_with_src
from gen.mutate.relational import RelationalProof, harness, module_wires
from hw.config import MixPEConfig

__all__ = ["STREAM_CORE", "StreamProof", "stream_configuration", "row_valid_flop", "row_valid_proof",
           "row_valid_invariants", "prove_valid_beats"]

#: The stream core's shape: 2 rows, 4 columns in 2 lanes (2 columns each, the last lane 1), g = 8,
#: combinational FP32 units (the GDU's stages 1 cycle each).
STREAM_CORE = {"rows": 2, "cols": 4, "group_size": 8, "gdu_lanes": 2, "gdu_stages": 0}
#: The source line of ``act_sum``'s ``row_valid`` register.
ROW_VALID_SOURCE = "hw/act_sum.py:55"
_ROW_VALID_Q = re.compile(r"connect \\Q \\(sum_valid|act_sum\.row_valid|act_sum__row_valid)$", re.M)
_PUBLIC_NAME = re.compile(r"(?<=\s)\\(\S+)")
#: The GDU's stages on the stream core, in pipeline order, and the registers holding each stage's
#: payload beside its ``<stage>_valid_0``/``<stage>_row_0`` (:class:`hw.gdu.GroupDequant`).
GDU_STAGES = {"dsum": ("dsum_value_0", "dsum_scale_0"), "to_float": ("to_float_out_0", "widen_out_0"),
              "scale": ("scale_mul_out_0",), "accumulate": ("sum_value",)}
#: The GDU's FP32 units whose output the mutant's copy takes from the original's when their operands
#: are equal (:func:`_consistent_units`): a function of its operands, so the value is the same.
CONSISTENT_UNITS = ("to_float", "widen", "scale_mul", "accumulate", "token_mul")
#: The core's registers in front of each GDU's inputs (``hw/mpgemm.py``, ``_connect_lanes``).
LANE_PORTS = ("info", "psum", "column", "scale", "zero")


def stream_configuration(config: MixPEConfig) -> MixPEConfig | None:
    """The stream core of ``config``'s structure (:data:`STREAM_CORE`, ``config``'s number formats),
    or None when ``config`` has another: K-quants, signed codes, float offsets, row bands or other
    than 2 GDU lanes."""
    if config.kquant or config.signed_codes or config.float_offset or config.row_groups != 1 or config.lanes != 2:
        return None
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return MixPEConfig(**{**fields, **STREAM_CORE, "name": f"{config.name}-stream"})


@dataclasses.dataclass(frozen=True)
class StreamProof:
    """A mutant mapped to the stream core: ``small`` its configuration, ``options`` the mutation's own
    options (mode, port, bit) applied to the stream core's ``row_valid`` register; ``note`` the mapping."""
    small: MixPEConfig
    options: str
    note: str

    @property
    def method(self) -> str:
        return f"same valid beats: invariants + sat -tempinduct on the {self.small.rows} x {self.small.cols} stream core"


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
    """The stream-core twin of ``mutation`` (of the core ``mpgemm`` on ``config``) when it ties
    ``act_sum``'s ``row_valid`` register to 1 at its ``Q`` or ``D`` port (with ``work``: checked to
    be that register in ``work/design``, the campaign's design), else None."""
    small = stream_configuration(config)
    port = mutation.option("port")
    if (small is None or ROW_VALID_SOURCE not in mutation.sources or port not in ("Q", "D")
            or mutation.mode != "const1"):
        return None
    if work is not None and mutation.option("cell") != row_valid_flop(Path(work), design):
        return None
    options = f"-mode const1 -port {port} -portbit 0"
    return StreamProof(small, options, f"act_sum's row_valid register ({options}) -> the same on the stream core")


def _flat_core(work: Path, small: MixPEConfig) -> tuple[str, list[str]]:
    """Write ``work/flat.il``: the core ``mpgemm`` of ``small``, flat, memories as registers, public
    names through :func:`~gen.mutate.core_proofs.flat_name` and every register output named; returns
    (its text, the names of the wires its registers drive)."""
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


class _Names:
    """Verilog expressions over the harness's signals: ``gold_<register>``/``gate_<register>``, fields."""

    def __init__(self, small: MixPEConfig):
        from hw.gdu import gdu_row_layout
        from hw.layouts import descriptor_layout, row_info_layout
        self.info, self.descriptor, self.row = row_info_layout(small), descriptor_layout(small), gdu_row_layout(small)

    @staticmethod
    def side(side: str, register: str) -> str:
        return f"{side}_{re.sub(r'[^A-Za-z0-9_]', '_', register)}"

    @staticmethod
    def bits(value: str, layout, name: str) -> str:
        field = layout[name]
        return f"{value}[{field.offset + Shape.cast(field.shape).width - 1}:{field.offset}]"


def lane_registers(rtlil: str, lanes: int) -> list[dict[str, str]]:
    """Per GDU lane, the core's registers that drive its inputs (:data:`LANE_PORTS`), by their name in ``rtlil``."""
    driven = dict(re.findall(r"^  connect \\gdu_(\d+__\w+) \\(\S+)$", rtlil, re.M))
    try:
        return [{port: driven[f"{lane}__{port}"] for port in LANE_PORTS} for lane in range(lanes)]
    except KeyError as missing:
        raise MutateError(f"GDU input {missing} is not driven by a named register in the stream core") from None


def row_valid_invariants(small: MixPEConfig, rtlil: str, registers: list[str]) -> list[str]:
    """The invariants of the module docstring over the two stream cores (``small``, flat in ``rtlil``
    with ``registers``), as Verilog expressions over ``gold_<register>`` and ``gate_<register>``."""
    n = _Names(small)
    rows, per_lane, lanes = small.rows, small.columns_per_lane, small.lanes
    if lanes != 2 or (small.cols - 1) % lanes != lanes - 1 or any(small.gdu_stage_cycles[s] != 1 for s in GDU_STAGES):
        raise MutateError(f"stream core {small.name}: expected 2 lanes, the last column in lane 1, 1-cycle GDU stages")

    def g(register: str) -> str:
        return n.side("gold", register)

    def t(register: str) -> str:
        return n.side("gate", register)

    lane_of = lane_registers(rtlil, lanes)
    [walk_parity] = [r for r in registers if re.fullmatch(r"capture__parity\$\d+", r)]
    active, phase, index = "capture__active", "capture__phase", "capture__index"
    row, row_valid, emitting, next_row = "act_sum__row", "act_sum__row_valid", "act_sum__emitting", "act_sum__next_row"
    fresh = f"({g(row)} == 0 && !{g(row_valid)})"
    steps = g("scheduler__step_in_group")
    drain, descriptors = "capture__descriptor", ("capture__descriptor_0", "capture__descriptor_1")
    empty = " && ".join(f"{g(r)} == 0" for r in registers if r.startswith("reader__rows_ready_"))
    invariants = [
        # act_sum emits a group's rows on consecutive cycles, with no capture in between
        f"!{g(row_valid)} || {g(row)} == {rows - 1} || {g(emitting)}",
        f"!({g(row_valid)} && {g(emitting)}) || {g(next_row)} == {g(row)} + 1",
        f"!{g(emitting)} || {steps} <= {g(next_row)}",
        f"!{g(emitting)} || {g(next_row)} < {rows}",
        f"!{g('capture__group_ended')} || ({g(emitting)} && {g(next_row)} == 0)",
        f"!({g(row_valid)} && {g(row)} == 0) || {steps} <= 1",
        # fresh: nothing emitted since the reset
        f"!{fresh} || (!{g(active)} && {g(phase)} == 0 && {g(index)} == 0 && {g(walk_parity)} == 0)",
        f"!{fresh} || {g(next_row)} == 0",
        f"!{fresh} || ({' && '.join(f'{g(r)} == 0' for r in (drain, *descriptors))})",
        f"!{fresh} || ({empty})",
        f"!{fresh} || {g('scheduler__at_group_start')} || ({g('capture__pending_first')} && "
        f"!{g('capture__pending_bank')} && !{g('scheduler__tile_bank')})",
        f"!({fresh} && {g(emitting)}) || ({g('capture__group_ended')} && {g('capture__pending_first')} && "
        f"!{g('capture__pending_bank')})",
        f"!({fresh} && {g('scheduler__at_group_start')} && !{g(emitting)}) || ({g('scheduler__next_is_tile_first')} && "
        f"!{g('scheduler__next_tile_bank')} && {steps} == 0 && !{g('capture__group_ended')})",
    ]
    # a walk ends before the next group's row 0
    progress = f"({g(index)} * {small.lane_period(lanes)} + {g(phase)})"
    invariants += [f"!{g(active)} || {steps} <= {progress} + 2",
                   f"!{g(active)} || !({g(row_valid)} && {g(row)} == 0)",
                   f"!{g(active)} || !({g(emitting)} && {g(next_row)} == 0)"]
    # the capture's row sums: a write while row_valid is 0 puts back what is there
    width = small.asum_bits
    parity = n.bits(g(drain), n.descriptor, "parity")
    sums = [f"{g(f'capture__sums_{p}')}[{g(row)} * {width} +: {width}]" for p in range(2)]
    invariants.append(f"{g(row_valid)} || ({parity} ? {sums[1]} : {sums[0]}) == {g('act_sum__asum')}")
    if small.fp_activation:  # the row's invalid flag is kept beside its sum
        flags = [f"{g(f'capture__sums_{p}')}[{rows * width} + {g(row)}]" for p in range(2)]
        invariants.append(f"{g(row_valid)} || ({parity} ? {flags[1]} : {flags[0]}) == {g('act_sum__invalid')}")
    # every register equal but those the mutant reaches
    reached = {row_valid, active, phase, index, walk_parity, "capture__lane_info_1_0", "capture__lane_column_1_0",
               *(register for lane in lane_of for register in lane.values())}
    invariants += [f"{g(r)} == {t(r)}" for r in registers if r not in reached and not r.startswith("gdu_")]
    # the mutant's row_valid is 0 only in the initial state (tied at D: the reset no longer clears it)
    others = [r for r in registers if r != row_valid and (r in reached or r.startswith("gdu_"))]
    invariants.append(f"{t(row_valid)} || (!{g(row_valid)} && {' && '.join(f'{g(r)} == {t(r)}' for r in others)})")
    # the walk
    walk = [(g(r), t(r)) for r in (active, phase, index, walk_parity)]
    (ga, ta), (gp, tp), (gi, ti), (gq, tq) = walk
    same_walk = " && ".join(f"{gold} == {gate}" for gold, gate in walk[1:])
    invariants += [f"!{ga} || ({ta} && {same_walk})",
                   f"{ga} || !{ta} || ({tp} == 0 && {ti} == 0 && {tq} == 0 && {gp} == 0 && {gi} == 0 && {gq} == 0 && "
                   f"{' && '.join(f'{g(r)} == 0' for r in descriptors)} && ({fresh} || ({g(row_valid)} && {g(row)} == 0)))",
                   f"{ga} || {ta} || ({same_walk})"]

    def info_place(register: str, column: str) -> dict:
        """A lane position that holds a row sideband (``register``) and a column index (``column``)."""
        def value(side):
            return {"valid": f"{side(register)}[0]", "column": side(column),
                    **{name: n.bits(side(register), n.info, name) for name in ("row", "first", "last", "bank")}}
        return {"gold": value(g), "gate": value(t)}

    def stage_place(lane: int, stage: str) -> dict:
        def value(side):
            held = side(f"gdu_{lane}__{stage}_row_0")
            return {"valid": side(f"gdu_{lane}__{stage}_valid_0"),
                    **{name: n.bits(held, n.row, name) for name in ("row", "first", "last", "bank", "column")}}
        return {"gold": value(g), "gate": value(t)}

    fields = ("row", "first", "last", "bank", "column")
    walked = {side: {"valid": f"({walk[0][k]} && {walk[1][k]} < {rows})", "row": walk[1][k], "column": walk[2][k]}
              for k, side in enumerate(("gold", "gate"))}
    chains, quiet_of = [], []
    for lane, inputs in enumerate(lane_of):
        # downstream first: the GDU's stages, its input registers, lane 1's register after the walk, the walk
        places = [stage_place(lane, stage) for stage in reversed(GDU_STAGES)]
        places.append(info_place(inputs["info"], inputs["column"]))
        if lane:
            places.append(info_place("capture__lane_info_1_0", "capture__lane_column_1_0"))
        places.append(walked)
        p = f"gdu_{lane}__"
        for stage, payload in GDU_STAGES.items():
            same = " && ".join(f"{g(p + r)} == {t(p + r)}" for r in (f"{stage}_row_0", *payload))
            invariants.append(f"!{g(p + stage + '_valid_0')} || ({t(p + stage + '_valid_0')} && {same})")
        for place in places[:-1]:
            gold, gate = place["gold"], place["gate"]
            spurious = " && ".join(f"{gate[name]} == 0" for name in fields)
            invariants += [f"!{gold['valid']} || {gate['valid']}", f"{gold['valid']} || !{gate['valid']} || ({spurious})"]
        for register, column in ((inputs["info"], inputs["column"]),) + ((("capture__lane_info_1_0",
                                                                           "capture__lane_column_1_0"),) if lane else ()):
            top = n.info.size - 1
            invariants += [f"{t(register)}[{top}:1] == {g(register)}[{top}:1]", f"{g(column)} == {t(column)}"]
        invariants += [f"{g(inputs[port])} == {t(inputs[port])}" for port in ("scale", "zero")]
        invariants.append(f"{g(inputs['psum'])} == {t(inputs['psum'])} || !{g(inputs['info'])}[0]")
        # a column index's rows follow each other without gaps; two valid neighbours hold consecutive rows
        for down, up in zip(places, places[1:]):
            d, u = down["gold"], up["gold"]
            wraps = f"{d['row']} == {rows - 1}"
            invariants.append(f"!({u['valid']} && {u['row']} != 0) || {d['valid']}")
            invariants.append(f"!({d['valid']} && {u['valid']}) || ({u['row']} == ({wraps} ? 0 : {d['row']} + 1) && "
                              f"{u['column']} == ({wraps} ? ({d['column']} == {per_lane - 1} ? 0 : {d['column']} + 1) : "
                              f"{d['column']}))")
        # scale_held/zero_held differ only while no later row of a group is at the GDU input
        held = " || ".join(f"{g(p + r)} != {t(p + r)}" for r in ("scale_held", "zero_held"))
        at_input = places[len(GDU_STAGES)]["gold"]
        invariants.append(f"!({held}) || !({at_input['valid']} && {at_input['row']} != 0)")
        # where the tile's first row 0 of column index 0 may be: at a place with nothing valid ahead of it
        walk_first = " && ".join(f"({gq} ? {n.bits(g(descriptors[1]), n.descriptor, name)} : "
                                 f"{n.bits(g(descriptors[0]), n.descriptor, name)}) == {value}"
                                 for name, value in (("first", 1), ("bank", 0)))
        pending, quiet = [], []
        for place in places:
            gold = place["gold"]
            first = (f"{gold['row']} == 0 && {gold['column']} == 0 && "
                     + (walk_first if place is walked else f"{gold['first']} && {gold['bank']} == 0"))
            pending.append("(" + " && ".join([*quiet, gold["valid"], first]) + ")")
            quiet.append(f"!{gold['valid']}")
        emitting_first = " && ".join([*quiet, g(row_valid), f"{g(row)} == 0", n.bits(g(drain), n.descriptor, "first"),
                                      f"{n.bits(g(drain), n.descriptor, 'bank')} == 0"])
        chains.append((places, pending + [f"({emitting_first})", f"({fresh} && {' && '.join(quiet)})"]))
        quiet_of.append(" && ".join(quiet))
    invariants += [f"!{fresh} || ({quiet})" for quiet in quiet_of]
    # lane 1 carries lane 0's rows one stage later
    for side in ("gold", "gate"):
        for one, zero in zip(chains[1][0][1:-1], chains[0][0][:-1]):
            one, zero = one[side], zero[side]
            same = " && ".join(f"{one[name]} == {zero[name]}" for name in fields)
            invariants.append(f"{one['valid']} == {zero['valid']} && (!{one['valid']} || ({same}))")
    last_window = "(" + " || ".join(chains[lanes - 1][1]) + ")"
    for lane, (places, windows) in enumerate(chains):
        word = next(r for r in registers if r == f"gdu_{lane}__acc_memory_0_")
        invariants += [f"{g(r)} == {t(r)}" for r in registers if re.fullmatch(rf"gdu_{lane}__acc_memory_[1-9]\d*_", r)]
        invariants.append(f"{g(word)}[{32 * per_lane - 1}:32] == {t(word)}[{32 * per_lane - 1}:32]")

        def window(k: int) -> str:
            return f"({empty} && ({' || '.join(windows[k:])}) && {last_window})"
        invariants.append(f"{g(word)}[31:0] == {t(word)}[31:0] || {window(0)}")
        for k, place in enumerate(places):
            invariants.append(f"!({place['gate']['valid']} && !{place['gold']['valid']}) || {window(k + 1)}")
    return invariants


def _named_checks(harness_text: str) -> tuple[str, int]:
    """``harness_text`` with each assert's expression on a wire of its own (``check_<i>``); returns (the
    text, the number of checks)."""
    body = re.search(r"  always @\* begin\n(.*?)  end\n", harness_text, re.S)
    checks = re.findall(r"    assert \((.*)\);", body[1])
    named = "".join(f"  wire check_{i} = {check};\n" for i, check in enumerate(checks))
    named += "  always @* begin\n" + "".join(f"    assert (check_{i});\n" for i in range(len(checks))) + "  end\n"
    return harness_text[:body.start()] + named + harness_text[body.end():], len(checks)


#: Checks proven together in one SAT problem of the induction step; a check of a GDU stage's payload
#: (through an FP32 unit) alone.
BATCH = 1


def _batches(checked: str, checks: list[int]) -> list[list[int]]:
    """``checks`` of the harness text ``checked`` in the groups the induction step proves together."""
    payload = re.compile("|".join(re.escape(name) for names in GDU_STAGES.values() for name in names))
    alone = [i for i in checks if payload.search(re.search(rf"wire check_{i} = (.*);", checked)[1])]
    rest = [i for i in checks if i not in alone]
    return [[i] for i in alone] + [rest[k:k + BATCH] for k in range(0, len(rest), BATCH)]


def _output_checks(checked: str, count: int, outputs: set[str]) -> list[int]:
    """The checks of ``checked`` that read the two designs' output ports only (the streams' handshakes
    and payloads), no register."""
    sides = {_Names.side(side, name) for name in outputs for side in ("gold", "gate")}
    return [i for i in range(count)
            if set(re.findall(r"\b(?:gold|gate)_\w+", re.search(rf"wire check_{i} = (.*);", checked)[1])) <= sides]


def _consistent_units(rtlil: str, lanes: int) -> list[tuple[str, tuple[str, ...]]]:
    """(output wire, operand wires) of every :data:`CONSISTENT_UNITS` instance of the flat core ``rtlil``."""
    wires = {name for name, _, _ in module_wires(rtlil, "mpgemm")}
    units = []
    for lane in range(lanes):
        for unit in CONSISTENT_UNITS:
            stem = f"gdu_{lane}__{unit}__"
            operands = tuple(sorted(w for w in wires if w.startswith(stem) and w[len(stem):] in ("a", "b", "i")))
            if f"{stem}o" in wires and operands:
                units.append((f"{stem}o", operands))
    return units


def _take_equal_outputs(harness_text: str, units: list[tuple[str, tuple[str, ...]]]) -> str:
    """Connect each unit's output in the mutant (cut by ``expose -cut``: ``<o>`` what the unit computes,
    ``<o>.i`` what the rest reads) to the original's output when the operands are equal, else its own."""
    declared, gold_ports, gate_ports = [], [], []
    for output, operands in units:
        gold, gate = _Names.side("gold", output), _Names.side("gate", output)
        declared.append(f"  wire [31:0] {gold}, {gate};")
        equal = " && ".join(f"{_Names.side('gold', w)} == {_Names.side('gate', w)}" for w in operands)
        gold_ports.append(f".\\{output} ({gold})")
        gate_ports += [f".\\{output} ({gate})", f".\\{output}.i (({equal}) ? {gold} : {gate})"]
    text = harness_text.replace("  gold gold_design(", "\n".join(declared) + "\n  gold gold_design(" + ", ".join(gold_ports) + ", ")
    return text.replace("  gate gate_design(", "  gate gate_design(" + ", ".join(gate_ports) + ", ")


def _sections(log: str | Path) -> dict[str, str]:
    """The log of :func:`prove_valid_beats`'s Yosys run (its text, or the file) by problem: ``BASE``,
    ``CHECK <i>,...`` and ``OUTPUT <i>`` -> what the problem printed."""
    text = log.read_text() if isinstance(log, Path) and log.exists() else log if isinstance(log, str) else ""
    sections = re.split(r"^(BASE|(?:CHECK|OUTPUT) [\d,]+)$", text, flags=re.M)[1:]
    return dict(zip(sections[::2], sections[1::2]))


def prove_valid_beats(work: Path, proof: StreamProof, timeout: float = 3600.0, cell: str | None = None,
                      options: str | None = None) -> EquivalenceResult:
    """Prove ``proof``'s mutant equivalent on its valid beats on the stream core in ``work`` (a
    directory of its own) with :func:`row_valid_invariants`; ``cell`` and ``options``: another
    mutation of the same core to run the same property on instead (a check that it can fail).

    Induction of length 1, the step split by check: the base case (every check on the first cycle
    from the registers' ``init`` values, any inputs), then for each check of registers, that it holds
    on a cycle after one on which all of them held, from any state; a check of the output ports only
    (:func:`_output_checks`) is proven on one cycle from the checks of registers on that cycle, so it
    holds whenever they do. Together that is ``sat -tempinduct``'s proof; split into groups
    (:data:`BATCH`, :func:`_batches`) its problems are solved in seconds each where the conjunction's
    ran 20 minutes without an answer (and the result payload's step, through the accumulator's
    writes, 10 minutes)."""
    work = Path(work)
    rtlil, registers = _flat_core(work, proof.small)
    spec = f"mutate -module mpgemm -cell {cell or row_valid_flop(work, 'flat.il')} {options or proof.options}"
    invariants = row_valid_invariants(proof.small, rtlil, registers)
    text = " ".join(invariants)
    units = _consistent_units(rtlil, proof.small.lanes)
    exposed = tuple(r for r in registers if _Names.side("gold", r) in text or _Names.side("gate", r) in text)
    exposed += tuple(w for _, operands in units for w in operands if w not in exposed)
    wires = module_wires(rtlil, "mpgemm")
    outputs = {name for name, _, direction in wires if direction == "output"}
    streams = tuple((name, name.removesuffix("payload") + "valid") for name in sorted(outputs)
                    if name.endswith("__payload") and name.removesuffix("payload") + "valid" in outputs)
    relational = RelationalProof(signals=exposed, invariants=tuple(invariants), depth=1, streams=streams)
    checked, count = _named_checks(harness(wires, relational, {name: width for name, width, _ in wires}))
    checked = _take_equal_outputs(checked, units)
    outputs_of_units = " ".join(f"mpgemm/{output}" for output, _ in units)
    (work / "valid_beats.v").write_text(checked)
    on_outputs = _output_checks(checked, count, outputs)
    on_registers = [i for i in range(count) if i not in on_outputs]
    assume = " ".join(f"-set-at 1 check_{i} 1" for i in range(count))
    steps = "".join(f"log -stdout CHECK {','.join(map(str, batch))}\nsat -seq 2 -prove-skip 1 {assume} "
                    + " ".join(f"-prove check_{i} 1" for i in batch) + " -timeout 1800 -verify proof\n"
                    for batch in _batches(checked, on_registers))
    implied = " ".join(f"-set-at 1 check_{i} 1" for i in on_registers)
    steps += "".join(f"log -stdout OUTPUT {i}\nsat -seq 1 {implied} -prove check_{i} 1 -timeout 1800 -verify proof\n"
                     for i in on_outputs)
    script = (f"read_rtlil flat.il\nhierarchy -top mpgemm\nexpose {' '.join(f'mpgemm/{r}' for r in exposed)}\n"
              f"design -save base\n{spec}\nexpose -cut {outputs_of_units}\nrename mpgemm gate\ndesign -stash gate\n"
              f"design -load base\nexpose {outputs_of_units}\nrename mpgemm gold\n"
              "design -copy-from gate -as gate gate\nread_verilog -formal valid_beats.v\nhierarchy -top proof\nproc\n"
              "setattr -set keep 1 w:check_*\nchformal -lower\nflatten\nopt -fast -keepdc\nlog -stdout BASE\n"
              "sat -tempinduct -tempinduct-baseonly -prove-asserts -maxsteps 1 -verify proof\nchformal -remove\n"
              "setattr -unset init w:*\n" + steps)
    where = f"{proof.small.rows} x {proof.small.cols} stream core ({spec}; {count} checks; valid_beats.log)"
    try:
        log = _yosys(work, script, "valid_beats", timeout=timeout)
    except MutateError as error:
        reached = _sections(work / "valid_beats.log")  # -verify: Yosys stops at the first problem not proven
        if reached:
            last, text = list(reached.items())[-1]
            why = "failed" if "FAIL!" in text else "timed out" if "TIMEOUT" in text else str(error).splitlines()[0]
            return EquivalenceResult(False, f"not proven: {last} {why} on the {where}")
        return EquivalenceResult(False, f"{str(error).splitlines()[0]} on the {where}")
    verdicts = _sections(log)
    failed = [label for label, text in verdicts.items() if "SUCCESS!" not in text or "FAIL!" in text]
    proven = sum(len(label.split(",")) for label in verdicts if label != "BASE" and label not in failed)
    if "BASE" in verdicts and proven == count and not failed:
        return EquivalenceResult(True, f"same valid beats proven by induction with {len(invariants)} invariants "
                                       f"on the {where}", proof.method)
    return EquivalenceResult(False, f"not proven: {', '.join(failed) or 'incomplete run'} on the {where}")
