"""The PE's stationary rows: the row each queued element multiplies with, read at issue.

A PE's accept stage runs ahead of its issue stage (the element queue sits
between them), so the task being accepted is not the task of the element
being issued. Instead of carrying an element's ``max_kernel`` stationary
operands through the queue (a decoded window of 11 operand multiplexers per
element), the PE keeps the stationary rows of the tasks still in flight in a
small memory, each queued element names its row, and the issue stage reads the
one operand each lane multiplies with.

A row stays until no queued or issued element can still need it. Rows take
the entries in turn, and a task's row moves on to the next entry only after
a task whose elements were queued. The element queue takes a beat (of one
task) only while it holds at most ``queue_depth - elements_per_beat``
elements, so its elements are of ``queue_depth - elements_per_beat + 1``
tasks at most; with the issued element's task and the task being accepted,
:func:`row_entries` entries keep every row in flight while the next task's
row is written. Nothing ever waits for an entry.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["RowStore", "row_entries", "entry_shape"]


def row_entries(queue_depth, elements_per_beat):
    """Entries a :class:`RowStore` needs behind an element queue of ``queue_depth``
    entries taking ``elements_per_beat`` a cycle (``queue_depth`` 0: a PE without a
    queue, which issues one element while it accepts the next)."""
    queued_tasks = queue_depth - elements_per_beat + 1 if queue_depth else 0
    return queued_tasks + 2


def entry_shape(entries):
    """Shape of an entry number of a :class:`RowStore` of ``entries`` entries (what a
    queued element names)."""
    return unsigned(max(1, (entries - 1).bit_length()))


class RowStore(wiring.Component):
    """Stationary rows of the tasks in flight, ``max_row`` operands each.

    Parameters
    ----------
    config : AccelConfig
    entries : int
        Rows held (:func:`row_entries` of the PE's element queue).
    reads : int
        Read ports (one per MAC lane).

    Attributes
    ----------
    take : In(1)
        A task is taken this cycle: its row ``row`` is written to an entry,
        unless it is ``empty`` (no elements, so nothing reads the row).
    row : In(ArrayLayout(signed(data_width), max_row))
    empty : In(1)
    queued : In(1)
        An element of the task being accepted enters the queue this cycle.
    entry : Out
        The entry of the row of the task being accepted (from the cycle after
        ``take``): what its queued elements name.
    nonzero : Out(max_row)
        Bit ``k`` set where operand ``k`` of that row is nonzero (the window
        decoder's skipping test).
    read_entry, read_index : In
        Per read port, an entry and an operand of its row.
    read_data : Out
        Per read port, that operand, in the same cycle.
    """

    def __init__(self, config, *, entries, reads):
        if not isinstance(entries, int) or entries < 2:
            raise ValueError(f"entries must be an int of at least 2, not {entries!r}")
        if not isinstance(reads, int) or reads < 1:
            raise ValueError(f"reads must be a positive int, not {reads!r}")
        self._config, self._entries, self._reads = config, entries, reads
        width, max_row = config.data_width, config.max_row
        entry = entry_shape(entries)
        super().__init__({
            "take": In(1),
            "row": In(data.ArrayLayout(signed(width), max_row)),
            "empty": In(1),
            "queued": In(1),
            "entry": Out(entry),
            "nonzero": Out(max_row),
            "read_entry": In(data.ArrayLayout(entry, reads)),
            "read_index": In(data.ArrayLayout(unsigned(config.index_width), reads)),
            "read_data": Out(data.ArrayLayout(signed(width), reads)),
        })

    @property
    def entries(self):
        return self._entries

    def elaborate(self, platform):
        config, entries = self._config, self._entries
        m = Module()
        m.submodules.rows = rows = Memory(
            shape=data.ArrayLayout(signed(config.data_width), config.max_row), depth=entries,
            init=[])

        # The accepted task queued an element: the next task's row takes the next entry.
        used = Signal()
        moves = Signal()
        target = Signal.like(self.entry)
        m.d.comb += [
            moves.eq(used | self.queued),
            target.eq(Mux(moves, Mux(self.entry == entries - 1, 0, self.entry + 1),
                          self.entry)),
        ]
        write = rows.write_port()
        m.d.comb += [write.addr.eq(target), write.data.eq(self.row),
                     write.en.eq(self.take & ~self.empty)]
        with m.If(self.take):
            m.d.sync += [self.entry.eq(target), used.eq(0),
                         self.nonzero.eq(Cat(value != 0 for value in self.row))]
        with m.Elif(self.queued):
            m.d.sync += used.eq(1)

        for port in range(self._reads):
            read = rows.read_port(domain="comb")
            m.d.comb += [read.addr.eq(self.read_entry[port]),
                         self.read_data[port].eq(read.data[self.read_index[port]])]
        return m
