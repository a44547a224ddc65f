"""Bit layouts of every stream and sideband of the MixPE core, shared by the RTL, testbenches and packer.

All layouts are ``amaranth.lib.data`` layouts built from a :class:`~hw.config.MixPEConfig`.
Fields are packed LSB first in declaration order; array element ``i`` sits at ``i * width``.
:func:`pack` and :func:`unpack` convert between Python values and the flat integers seen on the
Verilog ports, walking the same layout objects (no hand-written shifts elsewhere).
"""

from amaranth import signed, unsigned
from amaranth.hdl import Shape
from amaranth.lib import data
from amaranth.utils import ceil_log2

from .config import MixPEConfig
from .errors import MixPEError

__all__ = ["activation_layout", "pe_activation_layout", "weight_layout", "scale_shape", "zero_shape", "group_layout", "result_layout", "row_info_layout",
           "row_index_shape", "row_param_shape", "descriptor_layout", "pack", "unpack", "LayoutValueError"]

FP32_BITS = 32
FP16_BITS = 16


class LayoutValueError(MixPEError, ValueError):
    """A value does not fit the field it is packed into."""


def row_index_shape(config: MixPEConfig) -> Shape:
    """Unsigned row index ``0 .. R-1`` (at least one bit)."""
    return unsigned(max(1, ceil_log2(config.rows)))


def activation_layout(config: MixPEConfig) -> data.ArrayLayout:
    """One K step of the activation tile: element r is token row r (INT8 two's complement, or the
    raw code of a floating-point activation)."""
    element = unsigned(config.act_bits) if config.fp_activation else signed(config.act_bits)
    return data.ArrayLayout(element, config.rows)


def pe_activation_layout(config: MixPEConfig) -> data.ArrayLayout:
    """One K step as the PEs take it: per row the INT8 value or the aligned floating-point
    significand, ``pe_act_bits`` signed."""
    return data.ArrayLayout(signed(config.pe_act_bits), config.rows)


def row_param_shape(config: MixPEConfig) -> Shape:
    """Shape of one row's ``row_param``: a raw FP32 token scale (INT8) or the group's shared
    exponent field (floating point)."""
    return unsigned(config.act_exp_bits) if config.fp_activation else unsigned(FP32_BITS)


def weight_layout(config: MixPEConfig) -> data.ArrayLayout:
    """One K step of the weight tile: ``row_groups * C`` unsigned b-bit codes, element
    ``band * C + c`` is the code of output column c for the rows of row band ``band`` (with one
    row group, element c is column c's code)."""
    return data.ArrayLayout(unsigned(config.weight_bits), config.row_groups * config.cols)


def scale_shape(config: MixPEConfig):
    """Shape of one (band's) column's ``scale``: the raw FP16 group scale, or with
    ``scale_mode="kquant"`` the struct of ``d`` (the raw FP16 scale of the group's super-block,
    the same on every group of it) and ``sub_scale`` (the group's integer sub-scale,
    ``sub_scale_bits`` signed or unsigned)."""
    if not config.kquant:
        return unsigned(FP16_BITS)
    sub_scale = signed if config.sub_scale_signed else unsigned
    return data.StructLayout({"d": unsigned(FP16_BITS), "sub_scale": sub_scale(config.sub_scale_bits)})


def zero_shape(config: MixPEConfig):
    """Shape of one (band's) column's zero parameter ``zero``: the unsigned b-bit integer zero
    point (``zero_mode="integer"``) or the raw FP16 float offset (``"float_offset"``); with
    ``scale_mode="kquant"`` and float offsets the struct of ``offset`` (the raw FP16 offset scale
    o = -dmin of the group's super-block) and ``min`` (the group's unsigned integer min)."""
    if config.kquant and config.float_offset:
        return data.StructLayout({"offset": unsigned(FP16_BITS), "min": unsigned(config.sub_min_bits)})
    return unsigned(FP16_BITS) if config.float_offset else unsigned(config.weight_bits)


def group_layout(config: MixPEConfig) -> data.StructLayout:
    """Dequantization parameters of one group, consumed with the group's first K step.

    ``scale``: raw FP16 scale per row band and column (K-quants: d and the sub-scale,
    :func:`scale_shape`); ``zero``: per row band and column the integer zero point, or in
    ``zero_mode="float_offset"`` the raw FP16 float offset (K-quants: o and the min;
    :func:`zero_shape`; ``row_groups * C`` elements each, element ``band * C + c`` as in
    :func:`weight_layout`); ``row_param``: per row the raw FP32 token scale (INT8, used only when
    ``last`` is set), or for floating-point activations the group's shared exponent field (the
    largest effective exponent of the row's activations in this group; :func:`row_param_shape`);
    ``last``: this group is the last one of the tile (K ends here). K-quants: every group of a
    super-block carries the super-block's shared exponent (:func:`golden.kquant.superblock_exponents`)."""
    bands_x_cols = config.row_groups * config.cols
    return data.StructLayout({
        "scale": data.ArrayLayout(scale_shape(config), bands_x_cols),
        "zero": data.ArrayLayout(zero_shape(config), bands_x_cols),
        "row_param": data.ArrayLayout(row_param_shape(config), config.rows),
        "last": unsigned(1),
    })


def result_layout(config: MixPEConfig) -> data.StructLayout:
    """One output row of a tile: raw FP32 per column, its row index, and end-of-tile flag."""
    return data.StructLayout({
        "data": data.ArrayLayout(unsigned(FP32_BITS), config.cols),
        "row": row_index_shape(config),
        "last": unsigned(1),
    })


def row_info_layout(config: MixPEConfig) -> data.StructLayout:
    """Per-row sideband that travels along the bottom of the array with the drained partial sums.

    ``asum``: activation group sum A of the row; ``row_param``: raw FP32 token scale, or for
    floating-point activations the row's shared exponent of this group; ``invalid`` (floating
    point only): the group held an Inf, a NaN or an element above the shared exponent;
    ``first``/``last``: first/last group of the tile (K-quants: ``first`` marks the groups of the
    tile's first super-block); ``bank``: output accumulator bank of the tile; ``parity``: group
    parity selecting the ping-pong dequant parameter register; ``sub_first``/``sub_last``
    (K-quants only): first/last group of its super-block."""
    return data.StructLayout({
        "valid": unsigned(1),
        "row": row_index_shape(config),
        "asum": signed(config.asum_bits),
        "row_param": row_param_shape(config),
        **({"invalid": unsigned(1)} if config.fp_activation else {}),
        "first": unsigned(1),
        "last": unsigned(1),
        "bank": unsigned(1),
        "parity": unsigned(1),
        **({"sub_first": unsigned(1), "sub_last": unsigned(1)} if config.kquant else {}),
    })


def descriptor_layout(config: MixPEConfig) -> data.StructLayout:
    """A group's row sideband as the parameter capture keeps it from the group's end until its rows
    are drained (:class:`~hw.param_capture.ParameterCapture`): the fields of :func:`row_info_layout`
    that belong to the group, each row's ``row_param``."""
    return data.StructLayout({
        "row_params": data.ArrayLayout(row_param_shape(config), config.rows),
        "first": 1, "last": 1, "bank": 1, "parity": 1,
        **({"sub_first": 1, "sub_last": 1} if config.kquant else {})})


def _scalar_range(shape: Shape) -> tuple[int, int]:
    """The smallest and largest value of ``shape``."""
    return (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)


def _pack_into(layout, value, path) -> int:
    if isinstance(layout, data.StructLayout):
        if not isinstance(value, dict):
            raise LayoutValueError(f"{path}: expected a dict with fields {list(layout.members)}, got {type(value).__name__}")
        extra = set(value) - set(layout.members)
        if extra:
            raise LayoutValueError(f"{path}: unknown field(s) {sorted(extra)}; fields are {list(layout.members)}")
        bits = 0
        for name, field in layout:
            if name in value:
                bits |= _pack_into(field.shape, value[name], f"{path}.{name}") << field.offset
        return bits
    if isinstance(layout, data.ArrayLayout):
        values = list(value)
        if len(values) != layout.length:
            raise LayoutValueError(f"{path}: expected {layout.length} elements, got {len(values)}")
        width = Shape.cast(layout.elem_shape).width
        bits = 0
        if isinstance(layout.elem_shape, (data.StructLayout, data.ArrayLayout)):
            for index, element in enumerate(values):
                bits |= _pack_into(layout.elem_shape, element, f"{path}[{index}]") << (index * width)
            return bits
        # Scalar elements (most beats: codes, activations, scales): the scalar case below, inlined,
        # since packing the beats of a model's GEMMs is the bulk of host time in `mixpe verify-model`.
        low, high = _scalar_range(Shape.cast(layout.elem_shape))
        mask = (1 << width) - 1
        for index, element in enumerate(values):
            value = int(element)
            if not low <= value <= high:
                _pack_into(layout.elem_shape, value, f"{path}[{index}]")     # raises the scalar error
            bits |= (value & mask) << (index * width)
        return bits
    shape = Shape.cast(layout)
    value = int(value)
    low, high = _scalar_range(shape)
    if not low <= value <= high:
        raise LayoutValueError(f"{path}: value {value} does not fit {shape} (allowed {low} .. {high})")
    return value & ((1 << shape.width) - 1)


def pack(layout, value, name: str = "payload") -> int:
    """Flat integer of ``value`` (dict for structs, sequence for arrays, int for scalars)."""
    return _pack_into(layout, value, name)


def unpack(layout, bits: int):
    """Inverse of :func:`pack`: dicts, lists and (signed where the shape is) ints."""
    if isinstance(layout, data.StructLayout):
        return {name: unpack(field.shape, bits >> field.offset) for name, field in layout}
    if isinstance(layout, data.ArrayLayout):
        width = Shape.cast(layout.elem_shape).width
        return [unpack(layout.elem_shape, bits >> (index * width)) for index in range(layout.length)]
    shape = Shape.cast(layout)
    bits &= (1 << shape.width) - 1
    if shape.signed and bits >> (shape.width - 1):
        bits -= 1 << shape.width
    return bits
