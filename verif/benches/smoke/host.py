"""Host side of the toolchain smoke bench: the design, a stream register slice.

No ``from __future__ import annotations`` here: Amaranth reads the ``In(...)``/``Out(...)``
annotations as objects, and stringified annotations make ``Component()`` fail.
"""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["IncrementSlice", "component"]


class IncrementSlice(wiring.Component):
    """Stream register slice: ``o.payload = i.payload + 1`` (mod 2**16)."""

    i: In(stream.Signature(16))
    o: Out(stream.Signature(16))

    def elaborate(self, platform):
        m = Module()
        with m.If(self.i.valid & (~self.o.valid | self.o.ready)):
            m.d.comb += self.i.ready.eq(1)
            m.d.sync += [
                self.o.payload.eq(self.i.payload + 1),
                self.o.valid.eq(1),
            ]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def component(config=None) -> IncrementSlice:
    """The slice (it has no configuration)."""
    return IncrementSlice()
