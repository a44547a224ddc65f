"""Baseline processing elements for the area comparison (``gen/synth.py``).

Each baseline is a drop-in PE of the same output-stationary array as the MixPE PE
(:class:`hw.pe.ProcessingElement`): operands arrive from the left (activation, ``valid``,
``group_last``) and the top (weight operand), are registered out to the right and bottom
neighbours, the product is accumulated while ``valid``, and on the step flagged ``group_last``
the finished sum moves to the drain register ``psum`` (one cycle ``psum_valid``) while the next
sum starts from zero. Only the multiply-accumulate differs, so the synthesized area difference is
the cost of the arithmetic. All are generated from the same :class:`hw.config.MixPEConfig`.

========================  =========================================================================
``dequant_fp``            conventional mixed-precision PE: dequantizes every weight in the PE,
                          ``w = fp32(Q - z) * fp32(s)``, multiplies by ``fp32(x)`` (x INT8 or
                          the configured FP format), FP32 accumulate
``int8_mult``             INT8 x INT8 multiplier (``*``) into an integer accumulator (INT8 only)
``int4x8_mult``           b-bit code x the PE's activation operand (INT8, or the aligned FP
                          integer) with a ``*`` multiplier (MixPE without shift & add)
``fp16_fp16``             FP16 x FP16 (both widened exactly to FP32) into an FP32 accumulator,
                          whatever the configured activation
========================  =========================================================================
"""

from ..config import MixPEConfig
from .dequant_fp import DequantFloatPE
from .fp16_fp16 import Float16PE
from .int4x8_mult import Int4x8MultiplierPE
from .int8_mult import Int8MultiplierPE

__all__ = ["BASELINES", "check_baseline", "DequantFloatPE", "Float16PE", "Int4x8MultiplierPE", "Int8MultiplierPE"]

#: Baseline design name -> PE class (constructed with a MixPEConfig).
BASELINES = {
    "dequant_fp": DequantFloatPE,
    "int8_mult": Int8MultiplierPE,
    "int4x8_mult": Int4x8MultiplierPE,
    "fp16_fp16": Float16PE,
}


def check_baseline(design: str, config: MixPEConfig) -> None:
    """Raise the PE's :class:`~hw.config.ConfigError` if baseline ``design`` cannot be built for ``config``."""
    check = getattr(BASELINES[design], "check", None)
    if check is not None:
        check(config)
