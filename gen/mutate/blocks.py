"""What mutation testing mutates and runs, per block: the bench design whose cells are mutated, the
source files whose cells are eligible, and the tests in two stages (a fast seeded subset for every
mutant, the rest only for the mutants that survive it).

A block without a bench of its own (``act_sum``, ``array``, ``mpgemm``) is mutated inside the
``mpgemm`` core and tested with the core's scenarios, as ``make test`` tests it; the FP32 units
inside the GDU bench's design. A mutant inside an FP32 unit also runs the ``fp32`` unit bench
first (the unit alone, mutated the same way: :mod:`gen.mutate.units`), as ``make test`` tests
the units on their own. A test is a function ``(config, seed) -> passed`` named in :data:`TESTS`
(names, not functions, travel to the workers).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from amaranth import Shape

from gen.mutate.fp_invariants import multiplier_zero_operand_invariants
from gen.mutate.netlist import Mutation
from gen.mutate.relational import RelationalProof
from hw.config import ConfigError, MixPEConfig
from hw.layouts import row_index_shape

__all__ = ["BlockPlan", "PLANS", "TESTS", "MUTATION_BLOCKS", "plan_for", "act_sum_invariants", "group_last_chain_invariants"]


def _bench(name: str):
    def test(config: MixPEConfig, seed: int) -> bool:
        from verif.sims import run_block
        return run_block(config, name, seed=seed).passed
    test.__name__ = f"{name}_bench"
    return test


def _scenario(name: str):
    def test(config: MixPEConfig, seed: int) -> bool:
        from verif.scenarios import run_scenario
        return run_scenario(name, config, seed=seed)
    test.__name__ = f"{name}_scenario"
    return test


def _core_stall_free(config: MixPEConfig, seed: int) -> bool:
    """The ``make sim TEST=mpgemm`` GEMM without stalls: bit-exact and cycle-exact."""
    from verif.scenarios import gemm_case
    return gemm_case(config, config.rows + config.rows // 2 + 1, 2 * config.cols - 1, 4 * config.group_size, seed)


def _core_single_group_tiles(config: MixPEConfig, seed: int) -> bool:
    """Back-to-back tiles of one group each (bank stalls), as ``tests/verif/test_block_benches.py``."""
    from verif.scenarios import gemm_case
    return gemm_case(config, 3 * config.rows, 4 * config.cols, config.group_size, seed)


def _core_long_stalled_stream(config: MixPEConfig, seed: int) -> bool:
    """A long stream under random stalls on every port (40 %), as ``tests/verif/test_block_benches.py``."""
    from verif.scenarios import gemm_case
    return gemm_case(config, 2 * config.rows, 2 * config.cols, 8 * config.group_size, seed, stall=0.4)


def _core_bands(config: MixPEConfig, seed: int) -> bool:
    """Row bands (partial and missing) when the core has them; nothing to run otherwise."""
    return config.row_groups == 1 or _scenario("bands")(config, seed)


#: Test name -> function(config, seed) -> passed.
TESTS = {
    "pe_bench": _bench("pe"),
    "gdu_bench": _bench("gdu"),
    "fp_product_bench": _bench("fp_product"),
    "fp32_bench": _bench("fp32"),
    "core_stall_free": _core_stall_free,
    "mpgemm_scenario": _scenario("mpgemm"),
    "array_scenario": _scenario("array"),
    "core_single_group_tiles": _core_single_group_tiles,
    "core_long_stalled_stream": _core_long_stalled_stream,
    "core_bands": _core_bands,
}

_CORE_FULL = ("mpgemm_scenario", "array_scenario", "core_single_group_tiles", "core_long_stalled_stream",
              "core_bands")
_FP32_UNITS = ("hw/fp_add.py", "hw/fp_mul.py", "hw/fp_int_to_float.py", "hw/fp_widen.py", "hw/fp_stages.py",
               "hw/fp_common.py")


def act_sum_invariants(config: MixPEConfig) -> RelationalProof:
    """Invariants that make a mutant of ``act_sum``'s row counter provable: the original and the
    mutant agree on every register but ``next_row``, and on ``next_row`` (< R) while ``emitting``.
    ``next_row`` is read only while emitting (the row number, the stop at R - 1), its idle value R
    only sets its top bit, and a capture restarts it from 0, so a mutant that changes it only when
    idle (or only its unused top carry) keeps the ports' behaviour."""
    rows = config.rows
    kept = [f"{name}_{r}" for name in ("running", "captured") for r in range(rows)]
    if config.fp_activation:
        kept += [f"{name}_invalid_{r}" for name in ("running", "captured") for r in range(rows)]
    return RelationalProof(
        signals=("emitting", "next_row", *kept),
        invariants=("gold_emitting == gate_emitting", *(f"gold_{name} == gate_{name}" for name in kept),
                    f"!gold_emitting || (gold_next_row < {rows} && gold_next_row == gate_next_row)"))


def _mutated_bit(mutation: Mutation, value: int) -> int:
    """``value`` (a port's bits) with ``mutation``'s bit changed by its mode (Yosys ``mutate``: ``cnot0``
    inverts the bit where the control bit is 0, ``cnot1`` where it is 1)."""
    bit, control = int(mutation.option("portbit")), mutation.option("ctrlbit")
    ctrl = (value >> int(control)) & 1 if control is not None else 0
    flip = {"inv": 1, "cnot0": 1 - ctrl, "cnot1": ctrl}.get(mutation.mode)
    if flip is not None:
        return value ^ (flip << bit)
    return value & ~(1 << bit) | ({"const0": 0, "const1": 1}[mutation.mode] << bit)


def row_counter_invariants(config: MixPEConfig, mutation: Mutation, rtlil: str) -> RelationalProof | None:
    """The invariants of :func:`act_sum_invariants` with ``next_row`` replaced by the mutant's own count:
    for a mutation (of ``act_sum`` alone, ``rtlil`` its flattened cells as Yosys dumps them) of a bit of
    the row counter's register, on its output (``Q``: every reader sees the mutated value) or its input
    (``D``: the register holds it), the count the mutant makes from a capture on (table[k] while the
    original emits row k) is worked out here. When it gives every row's number on ``row`` (the counter
    truncated to the row width) and stops at R - 1 where the original does, the invariant "while
    emitting, the mutant's ``next_row`` is table[the original's]" holds one step at a time; else None
    (the mutant is not equivalent this way). This proves the default preset's act_sum #6 and #152 and
    the FP preset's #89 and #121, which the generic invariants prove only by an induction over R + 2
    cycles."""
    port = mutation.option("port")
    cell = mutation.option("cell")
    if port not in ("Q", "D") or mutation.mode not in ("inv", "cnot0", "cnot1", "const0", "const1") or not cell:
        return None
    counter = re.search(rf"  cell \$dff {re.escape(cell)}\n(?:(?!  end\n).*\n)*?    connect \\Q \\next_row\n", rtlil)
    if counter is None:
        return None
    rows = config.rows
    width, row_mask = rows.bit_length(), (1 << Shape.cast(row_index_shape(config)).width) - 1   # range(R + 1), range(R)
    table, stored = [], _mutated_bit(mutation, 0) if port == "D" else 0
    for k in range(rows):
        seen = _mutated_bit(mutation, stored) % (1 << width) if port == "Q" else stored
        if seen & row_mask != k or (seen == rows - 1) != (k == rows - 1):
            return None
        table.append(seen)
        following = (seen + 1) % (1 << width)
        stored = _mutated_bit(mutation, following) % (1 << width) if port == "D" else following
    generic = act_sum_invariants(config)
    count = " : ".join(f"gold_next_row == {k} ? {width}'d{value}" for k, value in enumerate(table[:-1]))
    return dataclasses.replace(generic, invariants=(
        *generic.invariants[:-1],
        f"!gold_emitting || (gold_next_row < {rows} && gate_next_row == ({count} : {width}'d{table[-1]}))"))


def group_last_chain_invariants(config: MixPEConfig, row: int, column: int) -> RelationalProof:
    """Invariants (at the ports of the PE array) that prove a mutant whose only change is the
    ``group_last_out`` flag of PE(row, column) where its ``valid_out`` is 0 (mpgemm #85 of the
    default preset: the flag's reset ignored): the flag and its copies to the right agree wherever
    ``valid_out`` is 1, the only case a PE reads it, so the sums to the right agree too. Every PE's
    ``psum`` and ``accumulator`` are named because the miter cannot merge a register that feeds
    itself: unnamed, the induction would start from two different sums."""
    signals, invariants = [], []
    for r in range(config.rows):
        for c in range(config.cols):
            pe = f"pe_{r}_{c}"
            names = ["psum", "accumulator"]
            if r == row and c >= column:
                names += ["psum_valid", "valid_out", "group_last_out"]
                invariants.append(f"!gold_{pe}_valid_out || gold_{pe}_group_last_out == gate_{pe}_group_last_out")
            signals += [f"{pe}.{name}" for name in names]
            invariants += [f"gold_{pe}_{name} == gate_{pe}_{name}" for name in names if name != "group_last_out"]
    return RelationalProof(signals=tuple(signals), invariants=tuple(invariants), depth=2)


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """``bench``: the design mutated and simulated (:data:`verif.benches.BENCHES`); ``sources``: the
    files whose cells may be mutated (empty: every cell); ``fast``/``full``: test names of the two
    stages, run with the campaign's seed and with the next seed; ``unit_bench``: a bench whose
    sub-blocks take the mutants of the same sub-blocks of ``bench``, run (``<unit_bench>_bench``,
    the campaign's seed) before the fast stage; ``invariants``: per sub-block (its path below the
    bench's top, ``act_sum``) the invariants with which a survivor of that sub-block that the
    equivalence checks could not prove gets one more try (:func:`gen.mutate.relational.prove_relational`);
    ``mutant_invariants``: per sub-block, a function of (configuration, the mutation of the sub-block
    alone, its flattened cells as Yosys dumps them) that gives a mutant its own invariants in place
    of those, or None; ``small_core``: a survivor whose cell role has a twin on the small core of the same structure
    (:func:`gen.mutate.core_proofs.small_core_proof`) is proven there first; ``valid_beats``: a survivor
    that ties ``act_sum``'s ``row_valid`` to 1 is proven to keep every valid beat on the stream core
    (:func:`gen.mutate.stream_proofs.row_valid_proof`) first."""
    block: str
    bench: str
    sources: tuple[str, ...]
    fast: tuple[str, ...]
    full: tuple[str, ...]
    fp_only: bool = False
    unit_bench: str | None = None
    invariants: tuple[tuple[str, Callable[[MixPEConfig], RelationalProof]], ...] = dataclasses.field(
        default=(), repr=False)  # not in the test cache's key (gen.mutate.campaign._cache_key), in the proofs' key
    mutant_invariants: tuple[tuple[str, Callable[[MixPEConfig, Mutation, str], RelationalProof | None]], ...] = (
        dataclasses.field(default=(), repr=False))  # likewise
    small_core: bool = dataclasses.field(default=False, repr=False)  # likewise
    valid_beats: bool = dataclasses.field(default=False, repr=False)  # likewise


#: Block name -> plan, in the order of the report.
PLANS = {plan.block: plan for plan in (
    BlockPlan("pe", "pe", ("hw/pe.py",), ("pe_bench",), ("pe_bench",)),
    BlockPlan("act_sum", "mpgemm", ("hw/act_sum.py",), ("core_stall_free",), _CORE_FULL,
              invariants=(("act_sum", act_sum_invariants),), mutant_invariants=(("act_sum", row_counter_invariants),),
              valid_beats=True),
    BlockPlan("gdu", "gdu", ("hw/gdu.py",), ("gdu_bench",), ("gdu_bench",)),
    BlockPlan("fp32", "gdu", _FP32_UNITS, ("gdu_bench",), ("gdu_bench",), unit_bench="fp32",
              invariants=(("scale_mul", multiplier_zero_operand_invariants),)),
    BlockPlan("fp_align", "fp_product", ("hw/fp_align.py",), ("fp_product_bench",), ("fp_product_bench",),
              fp_only=True),
    BlockPlan("array", "mpgemm", ("hw/array.py",), ("core_stall_free",), _CORE_FULL, small_core=True),
    BlockPlan("mpgemm", "mpgemm", (), ("core_stall_free",), _CORE_FULL, unit_bench="fp32",
              invariants=(("act_sum", act_sum_invariants),), mutant_invariants=(("act_sum", row_counter_invariants),),
              small_core=True, valid_beats=True),
)}

MUTATION_BLOCKS = tuple(PLANS)


def plan_for(block: str, config: MixPEConfig) -> BlockPlan | None:
    """The plan of ``block`` on ``config``; None when the configuration has no such block
    (the aligner exists only with floating-point activations)."""
    if block not in PLANS:
        raise ConfigError(f"block={block!r}: allowed blocks are {', '.join(MUTATION_BLOCKS)}")
    plan = PLANS[block]
    return None if plan.fp_only and not config.fp_activation else plan
