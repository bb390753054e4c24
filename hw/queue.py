"""Element queue: a FIFO of decoded elements that takes several per cycle and gives one."""

from amaranth import Array, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ElementQueue"]


class ElementQueue(wiring.Component):
    """First-in first-out queue with ``width`` write ports and one read port.

    Parameters
    ----------
    layout : shape-castable
        Shape of one entry.
    depth : int
        Entries; at least ``width``.
    width : int
        Entries that can be pushed in one cycle.

    Attributes
    ----------
    push_valid : In(width)
        Which of ``push_data`` to enqueue this cycle; the valid ones enter in
        port order, gaps closed (port 1 alone lands where port 0 would).
    push_data : In(ArrayLayout(layout, width))
    push_ready : Out(1)
        At least ``width`` entries are free: any push is accepted. (Space
        freed by a pop in the same cycle counts only from the next cycle.)
    pop : Out(stream.Signature(layout))
        The oldest entry.
    level : Out
        Entries held.
    """

    def __init__(self, layout, *, depth, width):
        # A refused queue was never meant to be elaborated: no "unused" warning.
        self._MustUse__silence = True
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, not {width!r}")
        if not isinstance(depth, int) or depth < width:
            raise ValueError(f"depth must be an int of at least width {width}, not {depth!r}")
        self._MustUse__silence = False
        self._layout, self._depth, self._width = layout, depth, width
        super().__init__({
            "push_valid": In(width),
            "push_data": In(data.ArrayLayout(layout, width)),
            "push_ready": Out(1),
            "pop": Out(stream.Signature(layout)),
            "level": Out(unsigned((depth).bit_length())),
        })

    def elaborate(self, platform):
        depth, width = self._depth, self._width
        m = Module()
        # entries[0] is the head; a pop shifts every entry down by one.
        entries = Array(Signal(self._layout, name=f"entry_{i}") for i in range(depth))
        popped = Signal()
        m.d.comb += [
            self.push_ready.eq(self.level <= depth - width),
            self.pop.valid.eq(self.level != 0),
            self.pop.payload.eq(entries[0]),
            popped.eq(self.pop.valid & self.pop.ready),
        ]
        with m.If(popped):
            for i in range(depth - 1):
                m.d.sync += entries[i].eq(entries[i + 1])
        base = Signal(range(depth + 1))
        m.d.comb += base.eq(self.level - popped)
        pushed = 0
        for port in range(width):
            with m.If(self.push_ready & self.push_valid[port]):
                # Position = entries kept + valid ports before this one.
                m.d.sync += entries[base + pushed].eq(self.push_data[port])
            pushed = pushed + (self.push_ready & self.push_valid[port])
        m.d.sync += self.level.eq(base + pushed)
        return m
