"""The PE's stationary scratchpad: rows held across tasks, loaded a line at a time.

A PE's stationary rows (filter rows in FF and BP, input rows in WG) live in
a memory of ``scratchpad_lines`` lines of ``line_words`` operands. Load
entries in the PE's task stream write one line each; a task names the first
line of its row (``row``), so a row loaded once serves every task that uses
it while it stays, and the task stream carries addresses, not rows. The
issue stage reads the one operand each MAC lane picks.

Rows in flight. The accept stage runs ahead of the issue stage (the element
queue sits between them), so a load may arrive while queued elements still
read the line it writes: the load waits until they have issued. The tasks
with elements in flight are tracked in a ring of *slots*, each holding a
task's row (first line and line count): a task's slot moves on to the next
only after a task whose elements were queued, and the element queue takes a
beat (of one task) only while it holds at most ``queue_depth -
elements_per_beat`` elements, so its elements are of ``queue_depth -
elements_per_beat + 1`` tasks at most; with the issued element's task and
the task being accepted, :func:`row_entries` slots never run out, and the
slots in flight are the ring range from the oldest element's slot to the
newest queued task's. Queued elements name their slot; where the compiler
never overwrites a row in flight, no load waits.
"""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import line_layout, row_entries

__all__ = ["Scratchpad", "row_entries"]


def _in_ring(slot, first, last):
    """Whether slot number ``slot`` (an int) is in the ring range ``first .. last``
    (inclusive, wrapping)."""
    # Unsigned: 0 is always <= last, and the largest value always >= first (written
    # out, so that no comparison is constant: Verilator's lint refuses one).
    top = (1 << len(first)) - 1
    from_first = (first == 0) if slot == 0 else (1 if slot == top else first <= slot)
    to_last = 1 if slot == 0 else (last == slot if slot == top else last >= slot)
    return Mux(first <= last, from_first & to_last, from_first | to_last)


class Scratchpad(wiring.Component):
    """``scratchpad_lines`` lines of ``line_words`` stationary operands, and the rows of
    the tasks in flight.

    Parameters
    ----------
    config : AccelConfig
    slots : int
        Tasks tracked (:func:`row_entries` of the PE's element queue).
    reads : int
        Read ports (one per MAC lane).

    Attributes
    ----------
    take : In(1)
        A task (not a load) is taken this cycle; its row starts at line ``row``
        and has ``row_length`` operands.
    row, row_length : In
    queued : In(1)
        An element of the task being accepted enters the queue this cycle.
    slot : Out
        The slot of the task being accepted (from the cycle after ``take``):
        what its queued elements name.
    nonzero : Out(max_row)
        Bit ``k`` set where operand ``k`` of that task's row is nonzero (the
        window decoder's skipping test).
    oldest_valid, oldest : In
        An element is in flight (queued or issuing), and the slot of the oldest.
    load, load_line, line : In
        Write ``line`` into line ``load_line`` (only while ``load_ready``).
    load_ready : Out(1)
        No row in flight holds line ``load_line``.
    read_slot, read_index : In
        Per read port, a slot and an operand of its row.
    read_data : Out
        Per read port, that operand, in the same cycle.
    """

    def __init__(self, config, *, slots, reads):
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 2:
            raise ValueError(f"slots must be an int of at least 2, not {slots!r}")
        if isinstance(reads, bool) or not isinstance(reads, int) or reads < 1:
            raise ValueError(f"reads must be a positive int, not {reads!r}")
        self._config, self._slots, self._reads = config, slots, reads
        slot = unsigned(max(1, (slots - 1).bit_length()))
        line = unsigned(config.line_address_width)
        super().__init__({
            "take": In(1),
            "row": In(line),
            "row_length": In(unsigned(config.index_width)),
            "queued": In(1),
            "slot": Out(slot),
            "nonzero": Out(config.max_row),
            "oldest_valid": In(1),
            "oldest": In(slot),
            "load": In(1),
            "load_line": In(line),
            "line": In(line_layout(config)),
            "load_ready": Out(1),
            "read_slot": In(data.ArrayLayout(slot, reads)),
            "read_index": In(data.ArrayLayout(unsigned(config.index_width), reads)),
            "read_data": Out(data.ArrayLayout(signed(config.data_width), reads)),
        })

    @property
    def slots(self):
        return self._slots

    def elaborate(self, platform):
        config, slots = self._config, self._slots
        words, lines = config.line_words, config.scratchpad_lines
        shift = words.bit_length() - 1
        m = Module()
        m.submodules.lines = memory = Memory(shape=line_layout(config), depth=lines, init=[])

        # -- the rows of the tasks in flight ------------------------------------
        first = [Signal.like(self.row, name=f"first_{n}") for n in range(slots)]
        count = [Signal(range(config.row_lines + 1), name=f"lines_{n}") for n in range(slots)]
        row_lines = Signal.like(count[0])
        m.d.comb += row_lines.eq((self.row_length + words - 1) >> shift)
        used = Signal()          # the accepted task queued an element
        target = Signal.like(self.slot)
        m.d.comb += target.eq(Mux(used | self.queued,
                                  Mux(self.slot == slots - 1, 0, self.slot + 1), self.slot))
        accepted_row = Signal.like(self.row)
        with m.If(self.take):
            m.d.sync += [self.slot.eq(target), used.eq(0), accepted_row.eq(self.row)]
            for number in range(slots):
                with m.If(target == number):
                    m.d.sync += [first[number].eq(self.row), count[number].eq(row_lines)]
        with m.Elif(self.queued):
            m.d.sync += used.eq(1)

        # The newest slot with queued elements: the accepted task's, once it queued one.
        newest = Signal.like(self.slot)
        m.d.comb += newest.eq(Mux(used | self.queued, self.slot,
                                  Mux(self.slot == 0, slots - 1, self.slot - 1)))
        holds = []
        for number in range(slots):
            # In flight: queued or issuing, or entering the queue this cycle (a load
            # taken in that cycle must not overwrite the line the element reads).
            busy = ((self.oldest_valid & _in_ring(number, self.oldest, newest))
                    | (self.queued & (self.slot == number)))
            holds.append(busy & (self.load_line >= first[number])
                         & (self.load_line < first[number] + count[number]))
        m.d.comb += self.load_ready.eq(~Cat(holds).any())

        # -- lines and their nonzero bits ----------------------------------------
        write = memory.write_port()
        nonzero_bits = Signal(lines * words + config.max_row)   # padded: any row reads max_row
        m.d.comb += [write.addr.eq(self.load_line), write.data.eq(self.line),
                     write.en.eq(self.load & self.load_ready),
                     self.nonzero.eq(nonzero_bits.bit_select(accepted_row * words,
                                                             config.max_row))]
        with m.If(self.load & self.load_ready):
            m.d.sync += nonzero_bits.word_select(self.load_line, words).eq(
                Cat(value != 0 for value in self.line))

        for port in range(self._reads):
            read = memory.read_port(domain="comb")
            index = self.read_index[port]
            slot_first = Signal.like(self.row, name=f"read_first_{port}")
            with m.Switch(self.read_slot[port]):
                for number in range(slots):
                    with m.Case(number):
                        m.d.comb += slot_first.eq(first[number])
            m.d.comb += [read.addr.eq(slot_first + (index >> shift)),
                         self.read_data[port].eq(read.data[index[:shift]] if shift
                                                 else read.data[0])]
        return m
