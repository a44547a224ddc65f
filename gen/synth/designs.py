"""The designs and blocks ``make synth`` builds: which exist for a configuration, what each one is,
and the Amaranth component of each."""

from __future__ import annotations

from gen.names import BLOCKS, DEFAULT_BLOCKS, DESIGNS
from hw.config import MixPEConfig

__all__ = ["DESIGNS", "BLOCKS", "DEFAULT_BLOCKS", "CODE_FORMAT_PES", "design_blocks", "block_description",
           "unsupported_reason", "design_formats", "check_buildable", "build_component", "code_format_config"]

#: (design, block) -> description; ``{act}`` is the PE's activation operand (see :func:`block_description`).
_DESCRIPTIONS = {
    ("mixpe", "pe"): "MixPE PE: b-bit code x {act} by shift & add, group accumulator + drain register",
    ("mixpe", "fp_align"): "activation aligner at the left edge, all R rows (combinational): FP code -> {act} "
                           "at the row's shared group exponent",
    ("mixpe", "act_sum"): "activation group sums (R rows), shared by all columns",
    ("mixpe", "gdu"): "group-dequant unit, one per lane of columns: D = P - z*A, fp32, x scale, accumulate, x token scale",
    ("mixpe", "acc_memory"): "a GDU lane's accumulator memory alone (2 x R x columns per lane FP32 words, 2 reads, "
                             "1 write): the part of the GDU an SRAM macro would replace",
    ("mixpe", "array"): "R x C PE array with skew registers and per-column drain",
    ("mixpe", "top"): "whole mpgemm core ({top}, GDU lanes, issue and result logic)",
    ("dequant_fp", "pe"): "conventional PE: w = fp32(Q-z)*fp32(s) per weight, fp32(x)*w ({x}), FP32 accumulate",
    ("dequant_fp", "edge"): "FP32 multiplier for the token scale, one per lane of columns (hw.fp_mul.Float32Multiplier)",
    ("int8_mult", "pe"): "INT8 x INT8 '*' multiplier, integer group accumulator",
    ("int4x8_mult", "pe"): "b-bit code x {act} '*' multiplier (MixPE PE without shift & add)",
    ("fp16_fp16", "pe"): "FP16 x FP16 (exact FP32 product), FP32 accumulate",
}
#: weight_format -> the MixPE PE's description for codes that carry their own sign (:mod:`hw.codes`).
_SIGNED_CODE_PES = {
    "fp4_e2m1": "MixPE PE: FP4 E2M1 code x {act}: x << e plus x << (e - 1) if m (one adder), "
                "added or subtracted by sign, group accumulator + drain register",
    "pow2": "MixPE PE: power-of-two code x {act}: x << e (a shifter), added or subtracted by sign, "
            "group accumulator + drain register",
}
#: The PE rows of ``make synth``'s code-format table: (label, the configuration fields of the code).
CODE_FORMAT_PES = (
    ("INT4", {"weight_format": "int", "weight_bits": 4}),
    ("INT5", {"weight_format": "int", "weight_bits": 5}),
    ("INT6", {"weight_format": "int", "weight_bits": 6}),
    ("FP4 E2M1", {"weight_format": "fp4_e2m1", "weight_bits": 4}),
    ("pow2 3-bit", {"weight_format": "pow2", "weight_bits": 3}),
    ("pow2 4-bit", {"weight_format": "pow2", "weight_bits": 4}),
)
_FP_GDU = ("group-dequant unit, one per lane of columns: D = P - z*A, fp32, x scale x 2^k (exponent offset, one rounding), "
           "accumulate; no token scale")


def design_blocks(design: str, config: MixPEConfig | None = None) -> tuple[str, ...]:
    """Blocks of ``design`` (for ``config``: ``fp_align`` only with floating-point activations,
    ``dequant_fp``'s token-scale ``edge`` only with INT8)."""
    if design not in DESIGNS:
        raise ValueError(f"design={design!r}: allowed designs are {DESIGNS}")
    blocks = tuple(block for (name, block) in _DESCRIPTIONS if name == design)
    if config is None:
        return blocks
    absent = "edge" if config.fp_activation else "fp_align"
    return tuple(block for block in blocks if block != absent)


def block_description(design: str, block: str, config: MixPEConfig) -> str:
    """One line saying what (design, block) is for ``config``."""
    if config.fp_activation:
        act = f"{config.activation} aligned to a {config.pe_act_bits}-bit integer (G={config.guard})"
        if (design, block) == ("mixpe", "gdu"):
            return _FP_GDU
    else:
        act = "INT8"
    if (design, block) == ("mixpe", "pe") and config.signed_codes:
        return _SIGNED_CODE_PES[config.weight_format].format(act=act)
    return _DESCRIPTIONS[(design, block)].format(
        act=act, x=config.activation.upper() if config.fp_activation else "INT8",
        top="aligner, array, act_sum" if config.fp_activation else "array, act_sum")


def unsupported_reason(design: str, config: MixPEConfig) -> str | None:
    """Why ``design`` cannot be built for ``config`` (the PE's own error message), or None."""
    try:
        check_buildable(design, "pe", config)
    except ValueError as error:
        return str(error)
    return None


def design_formats(design: str, config: MixPEConfig) -> tuple[str, str]:
    """(activation, weight) format names of a design."""
    codes = {"int": f"u{config.weight_bits}", "fp4_e2m1": "fp4_e2m1", "pow2": f"pow2_{config.weight_bits}"}
    return {
        "mixpe": (config.activation, codes[config.weight_format]),
        "dequant_fp": (config.activation, f"u{config.weight_bits}+fp16 scale"),
        "int8_mult": ("int8", "int8"),
        "int4x8_mult": (config.activation, f"u{config.weight_bits}"),
        "fp16_fp16": ("fp16", "fp16"),
    }[design]


def check_buildable(design: str, block: str, config: MixPEConfig) -> None:
    """Raise ``ValueError`` naming what is allowed unless (design, block) exists for ``config``."""
    if (design, block) not in _DESCRIPTIONS:
        raise ValueError(f"block={block!r} does not exist for design {design!r}; "
                         f"its blocks are {design_blocks(design)}")
    if block not in design_blocks(design, config):
        raise ValueError(f"block={block!r} of design {design!r} does not exist with activation="
                         f"{config.activation!r}; its blocks there are {design_blocks(design, config)}")
    if design != "mixpe":
        from hw.baselines import check_baseline
        check_baseline(design, config)


def build_component(design: str, block: str, config: MixPEConfig):
    """The component of (design, block) for ``config``; ``ValueError`` naming what is allowed."""
    check_buildable(design, block, config)
    if (design, block) == ("mixpe", "acc_memory"):
        from gen.synth.storage import AccumulatorMemory
        return AccumulatorMemory(config)
    if design == "mixpe":
        from hw.emit import build_block
        return build_block("mpgemm" if block == "top" else block, config)
    if block == "edge":
        from hw.fp_mul import Float32Multiplier
        return Float32Multiplier()
    from hw.baselines import BASELINES
    return BASELINES[design](config)


def code_format_config(config: MixPEConfig, fields: dict) -> MixPEConfig:
    """``config`` with the weight code of one :data:`CODE_FORMAT_PES` row (codes that carry their own
    sign take ``weight_encoding="unsigned"``, ``zero_mode="integer"``, flat scales; the scale stays FP16)."""
    signed = fields["weight_format"] != "int"
    return config.replace(**fields, scale_format="fp16", name=config.name,
                          **({"weight_encoding": "unsigned", "zero_mode": "integer", "scale_mode": "flat"} if signed else {}))
