"""Invariants (:class:`gen.mutate.relational.RelationalProof`) for mutants inside the FP32 units.

The multiplier's contract (``hw/fp_mul.py``, DAZ): a zero or subnormal operand gives a signed zero
(or the canonical NaN, or an infinity), whatever its significand, since ``round_and_pack_float32``
looks at the flags first. A mutant that changes the significand product only while an operand is
zero or subnormal (fp32 #33 of w4a16-g128-16x16: bit 2 of ``a``'s significand set exactly when its
exponent field is 0) is then equivalent; :func:`multiplier_zero_operand_invariants` states that as
invariants over the pipeline registers, which :func:`gen.mutate.relational.prove_relational` proves
by induction (never assumes).
"""

from __future__ import annotations

from gen.mutate.relational import RelationalProof
from hw.config import MixPEConfig
from hw.fp_stages import unit_cuts

__all__ = ["MULTIPLIER_CUT_LAYOUT", "multiplier_zero_operand_invariants"]

#: Per cut point of ``hw/fp_mul.py`` (the ``Cuts`` registers ``<cut>_<i>``, in the order the
#: multiplier passes its values): (registers, indices of the product's data, index of ``is_zero``).
#: The other registers carry the flags, the sign and the operands' exponent sum.
MULTIPLIER_CUT_LAYOUT = {
    "partial_rows": (11, range(5, 11), 4),  # exponent, sign, is_nan, is_inf, is_zero, 6 carry-save rows
    "low_sum": (10, range(0, 5), 9),        # carry, below, x, y, low_nonzero, then the five above
    "product": (8, range(0, 3), 7),         # high, below, low_nonzero, exponent, sign, is_nan, is_inf, is_zero
    "rounded": (9, range(0, 5), 6),         # mantissa, incremented, round_up, all_ones, exponent, sign, is_zero, ...
}


def multiplier_zero_operand_invariants(config: MixPEConfig) -> RelationalProof:
    """Invariants at the ports of the GDU's scale multiplier (``gdu_unit_stages`` deep): at every
    register stage the flags, sign and exponent sum of original and mutant agree, and the product's
    data agree unless the stage's ``is_zero`` flag is set. With the output's priority (NaN,
    infinity, zero, then the product) that makes the outputs agree."""
    signals, invariants = [], []
    for cut in unit_cuts("multiplier", config.gdu_unit_stages):
        count, data, zero = MULTIPLIER_CUT_LAYOUT[cut]
        for index in range(count):
            name = f"{cut}_{index}"
            signals.append(name)
            invariants.append(f"gold_{cut}_{zero} || gold_{name} == gate_{name}" if index in data
                              else f"gold_{name} == gate_{name}")
    return RelationalProof(signals=tuple(signals), invariants=tuple(invariants), depth=2)
