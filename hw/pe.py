"""The MixPE processing element: shift & add multiply into a double-buffered group accumulator."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import MixPEConfig

__all__ = ["ProcessingElement", "SystolicPE", "shift_add_product", "signed_code_product"]


def shift_add_product(activation, code, weight_bits: int):
    """``activation * code`` as the sum of ``activation << i`` over the set bits ``i`` of the
    unsigned ``code`` (no multiplier). Signed result of ``activation width + weight_bits`` bits."""
    terms = [Mux(code[bit], activation << bit, 0) for bit in range(weight_bits)]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def signed_code_product(activation, code, weight_format: str, weight_bits: int):
    """(``activation * |v|``, sign of v) for the PE value v of a code that carries its own sign
    (:mod:`hw.codes`), with no multiplier.

    ``fp4_e2m1``: 2 x E2M1 = m for exponent e = 0, else (2 + m) << (e - 1) = (1 << e) + m << (e - 1):
    two shifted copies of the activation and one adder. ``pow2``: 2**e, a shift."""
    sign = code[weight_bits - 1]
    if weight_format == "pow2":
        return activation << code[:weight_bits - 1], sign
    exponent, mantissa = code[1:3], code[0]
    lower = Mux(exponent == 0, activation, activation << (exponent - 1).as_unsigned()[:2])
    return Mux(exponent == 0, 0, activation << exponent) + Mux(mantissa, lower, 0), sign


class SystolicPE(wiring.Component):
    """Skeleton shared by the MixPE PE and the baseline PEs of :mod:`hw.baselines`.

    Operands arrive from the left (``x``, ``valid``, ``group_last`` and any ``side`` operands)
    and the top (``w``) and are registered out to the right and bottom neighbours (``<name>_out``).
    Each cycle with ``valid`` the subclass's :meth:`accumulate` gives the running sum plus this
    step's product; on the group's last step (``group_last``) that sum moves to the drain register
    ``psum`` (``psum_valid`` for exactly one cycle) and the accumulator restarts from zero, so the
    next group accumulates while this one drains (double buffer).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        The core's configuration (subclasses take their widths from it).
    x_shape, w_shape : shape-castable
        Shapes of the activation operand ``x`` and the weight operand ``w``.
    sum_shape : shape-castable
        Shape of the accumulator and of ``psum``.
    side : dict of str to shape-castable, optional
        Further operands that travel with ``x`` (for example a baseline's ``scale`` and ``zero``).

    Members
    -------
    x : ``In(x_shape)``, w : ``In(w_shape)``, <side> : ``In(shape)``
        This step's operands.
    valid : ``In(1)``
        The operands are a K step.
    group_last : ``In(1)``
        The step is its group's last: the sum drains after it.
    x_out, w_out, <side>_out, valid_out, group_last_out : ``Out``
        The inputs registered for the right (``x``, side operands, flags) and bottom (``w``)
        neighbours.
    psum : ``Out(sum_shape)``
        Drain register: the finished sum of the last group.
    psum_valid : ``Out(1)``
        ``psum`` holds a new sum (one cycle per group).

    Latency
    -------
    1 cycle: ``psum`` holds a group's sum one cycle after its last step is presented; the
    ``*_out`` copies are one cycle behind the inputs.
    """

    def __init__(self, config: MixPEConfig, *, x_shape, w_shape, sum_shape, side: dict | None = None):
        self._config = config
        self._sum_shape = sum_shape
        self._side = dict(side or {})
        operands = {"x": x_shape, "w": w_shape, **self._side}
        members = {"x": In(x_shape), "valid": In(1), "group_last": In(1), "w": In(w_shape)}
        members.update({name: In(shape) for name, shape in self._side.items()})
        members.update({f"{name}_out": Out(shape) for name, shape in operands.items()})
        members.update({"valid_out": Out(1), "group_last_out": Out(1), "psum": Out(sum_shape), "psum_valid": Out(1)})
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Cycles from a group's last step at the inputs to its sum in ``psum``."""
        return 1

    def accumulate(self, m: Module, accumulator):
        """The value ``accumulator`` + (this step's product), built in ``m``."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        accumulator = Signal(self._sum_shape)
        total = self.accumulate(m, accumulator)
        for name in ("x", "w", *self._side):
            m.d.sync += getattr(self, f"{name}_out").eq(getattr(self, name))
        m.d.sync += [
            self.valid_out.eq(self.valid),
            self.group_last_out.eq(self.group_last),
            self.psum_valid.eq(self.valid & self.group_last),
        ]
        with m.If(self.valid):
            with m.If(self.group_last):
                m.d.sync += [self.psum.eq(total), accumulator.eq(0)]
            with m.Else():
                m.d.sync += accumulator.eq(total)
        return m


class ProcessingElement(SystolicPE):
    """One MixPE PE: ``x * w`` by shift & add (no multiplier) into an integer group accumulator.

    Integer codes add ``x << i`` for every set bit i (:func:`shift_add_product`). Codes that carry
    their own sign (``weight_format`` ``fp4_e2m1``, ``pow2``) form ``x * |v|`` by shifts
    (:func:`signed_code_product`) and add it to the accumulator or subtract it (its complement
    plus a carry in: one adder either way).

    Parameters
    ----------
    config : :class:`~hw.config.MixPEConfig`
        Gives the operand and sum widths.

    Members
    -------
    x : ``In(signed(pe_act_bits))``
        INT8 activation, or the aligned integer of a floating-point activation.
    w : ``In(unsigned(weight_bits))``
        Weight code.
    valid, group_last : ``In(1)``
        As in :class:`SystolicPE`.
    x_out, w_out, valid_out, group_last_out : ``Out``
        Registered copies for the neighbours.
    psum : ``Out(signed(psum_bits))``, psum_valid : ``Out(1)``
        Drain register (see :class:`SystolicPE`).

    Latency
    -------
    1 cycle, as :class:`SystolicPE`.
    """

    def __init__(self, config: MixPEConfig):
        super().__init__(config, x_shape=signed(config.pe_act_bits), w_shape=unsigned(config.weight_bits),
                         sum_shape=signed(config.psum_bits))

    def accumulate(self, m, accumulator):
        config = self._config
        product = Signal(signed(config.product_bits))
        if not config.signed_codes:
            m.d.comb += product.eq(shift_add_product(self.x, self.w, config.weight_bits))
            return accumulator + product
        magnitude, sign = signed_code_product(self.x, self.w, config.weight_format, config.weight_bits)
        m.d.comb += product.eq(magnitude ^ sign.replicate(config.product_bits))  # |x * v| fits: see product_bits
        return accumulator + product + sign
