"""Purpose-built dense PE: the row-convolution engine a dense accelerator would use.

It is the area baseline of what sparsity costs (``make synth``:
``sparse_over_purpose_dense_pe_area``), built to compute what
:class:`hw.pe.SparsePE` computes in dense mode, without what only sparsity needs:

- the streamed row arrives as values only (:func:`dense_element_layout`), every
  element of the row in order, so an element's index is a counter, not a field;
- no element queue and no leading-one issue picker: the PE takes one element at
  a time and steps a counter through its window's slots, ``lanes`` per cycle,
  up to the last slot with a MAC (an element without one costs a cycle);
- the window decoder is built dense-only (``skipping=False``): no nonzero or
  mask test decides to skip, and no effectual-MAC counter.

The geometry (:class:`hw.window.WindowDecoder`) and the partial-sum banks
(:class:`hw.psum.PsumBanks`) are the sparse-aware PE's own: a dense design needs
the same row convolution and the same storage.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import (output_length, result_layout, row_entries, row_length, slot_indices,
                      task_layout, window_layout)
from .psum import PsumBanks, next_bank
from .scratchpad import Scratchpad
from .window import WindowDecoder

__all__ = ["DensePE", "dense_element_layout"]


def dense_element_layout(config):
    """One beat of a dense streamed row: ``count`` (1 or more) of ``value`` valid, in
    order; ``last`` marks the final beat of the primitive."""
    per_beat = config.elements_per_beat
    return data.StructLayout({
        "value": data.ArrayLayout(signed(config.data_width), per_beat),
        "count": unsigned(per_beat.bit_length()),
        "last": unsigned(1),
    })


class DensePE(wiring.Component):
    """1-D row-convolution PE for dense rows only.

    Parameters
    ----------
    config : AccelConfig
        Built as ``config.replace(skipping=False)``: the dense PE never skips.

    Attributes
    ----------
    task : In(stream.Signature(task_layout))
        Row primitives, as for :class:`hw.pe.SparsePE`.
    operand : In(stream.Signature(dense_element_layout))
        Every element of each non-empty task's streamed row, in order.
    result : Out(stream.Signature(result_layout))
        Each completed output row, ``out_len`` values in order.
    busy_cycles, stall_cycles, issued_macs : Out
        Cycles with a MAC slot stepped, cycles with work but none, MACs issued.
    saturated : Out
        Sticky: a partial sum left the ``acc_width`` range and was clipped.
    idle : Out
        No task, element, MAC or output row is in flight.
    clear : In
        Zero the counters and the saturation flag.
    """

    def __init__(self, config):
        self._config = config.replace(skipping=False)
        counter = unsigned(config.counter_width)
        super().__init__({
            "task": In(stream.Signature(task_layout(config))),
            "operand": In(stream.Signature(dense_element_layout(config))),
            "result": Out(stream.Signature(result_layout(config))),
            "busy_cycles": Out(counter),
            "stall_cycles": Out(counter),
            "issued_macs": Out(counter),
            "saturated": Out(1),
            "idle": Out(1),
            "clear": In(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        slots, lanes, per_beat = config.max_kernel, config.lanes, config.elements_per_beat
        m = Module()
        m.submodules.decoder = decoder = WindowDecoder(config)
        m.submodules.banks = banks = PsumBanks(config)
        # The issued element's row and the accepted task's (no queue between them).
        m.submodules.scratchpad = rows = Scratchpad(config, slots=row_entries(0, per_beat),
                                                    reads=lanes)
        wiring.connect(m, banks.result, wiring.flipped(self.result))

        # -- accept: one element of the held beat at a time ---------------------
        task_valid = Signal()
        task = Signal(task_layout(config))
        beat = self.operand.payload
        out_len = Signal(unsigned(config.index_width))
        m.d.comb += out_len.eq(output_length(task))
        position = Signal(range(per_beat))                 # element of the beat
        index = Signal(unsigned(config.index_width))       # element of the row
        m.d.comb += [decoder.task.eq(task), decoder.nonzero.eq(rows.nonzero),
                     decoder.index.eq(index),
                     decoder.value.eq(beat.value[position])]
        last_of_beat = Signal()
        m.d.comb += last_of_beat.eq(position == beat.count - 1)

        # -- issue: a counter steps through the current element's slots ---------
        current_valid = Signal()
        current = Signal(window_layout(config))
        slot = Signal(range(slots + lanes))
        row_bank = Signal(range(config.psum_banks))
        blocked = Signal()
        m.d.comb += blocked.eq(banks.full.bit_select(row_bank, 1))
        stepping = Signal()
        m.d.comb += stepping.eq(current_valid & ~blocked)
        # The element is done when no MAC slot is left above this cycle's lanes:
        # a zero test, not a picker.
        finishing = Signal()
        m.d.comb += finishing.eq(stepping & ((current.issue >> (slot + lanes)) == 0))
        take = Signal()          # the next element (or an empty task's end) enters issue
        m.d.comb += take.eq(~current_valid | finishing)

        primitive = Signal()     # the held entry is a primitive, not only a line to load
        m.d.comb += primitive.eq(task_valid & ~task.load_only)
        element_ready = Signal()
        m.d.comb += element_ready.eq(primitive & ~task.empty & self.operand.valid & take)
        ends_row = Signal()
        m.d.comb += ends_row.eq(task.row_last & beat.last & last_of_beat)
        empty_end = Signal()     # an empty task that ends a row: its end marker
        m.d.comb += empty_end.eq(primitive & task.empty & take)
        m.d.comb += [rows.oldest_valid.eq(current_valid), rows.oldest.eq(current.row)]
        with m.If(element_ready):
            m.d.sync += [current.eq(decoder.window), current.row.eq(rows.slot),
                         current.row_last.eq(ends_row),
                         current.out_len.eq(out_len), current_valid.eq(1), slot.eq(0),
                         position.eq(Mux(last_of_beat, 0, position + 1)),
                         index.eq(Mux(last_of_beat & beat.last, 0, index + 1))]
        with m.Elif(empty_end & task.row_last):
            m.d.sync += [current.eq(0), current.row_last.eq(1), current.out_len.eq(out_len),
                         current.row.eq(rows.slot), current_valid.eq(1), slot.eq(0)]
        with m.Elif(finishing):
            m.d.sync += current_valid.eq(0)
        with m.Elif(stepping):
            m.d.sync += slot.eq(slot + lanes)
        m.d.comb += self.operand.ready.eq(element_ready & last_of_beat)
        task_done = (element_ready & last_of_beat & beat.last) | empty_end \
            | (task_valid & task.load_only)
        # A line is written as its entry is taken, once the issued element does not
        # read it (as in the sparse PE).
        free = Signal()
        m.d.comb += [free.eq(~task_valid | task_done),
                     self.task.ready.eq(free & (~self.task.payload.load | rows.load_ready)),
                     rows.load.eq(self.task.valid & free & self.task.payload.load),
                     rows.load_line.eq(self.task.payload.load_line),
                     rows.line.eq(self.task.payload.line)]
        m.d.comb += [rows.take.eq(self.task.valid & self.task.ready
                                  & ~self.task.payload.load_only),
                     rows.row.eq(self.task.payload.row),
                     rows.row_length.eq(Mux(self.task.payload.empty, 0,
                                            row_length(self.task.payload))),
                     rows.queued.eq(element_ready | (empty_end & task.row_last))]
        with m.If(self.task.valid & self.task.ready):
            m.d.sync += [task.eq(self.task.payload), task_valid.eq(1)]
        with m.Elif(task_done):
            m.d.sync += task_valid.eq(0)

        # -- MAC pipeline register, then the banks --------------------------------
        issued_now = Signal(range(lanes + 1))
        lane_valid = []
        for lane in range(lanes):
            at = slot + lane
            valid = Signal(name=f"slot_valid_{lane}")
            m.d.comb += valid.eq(stepping & (at < slots) & current.issue.bit_select(at, 1))
            lane_valid.append(valid)
            operand_index, target = slot_indices(current, at)
            m.d.comb += [rows.read_slot[lane].eq(current.row),
                         rows.read_index[lane].eq(Mux(valid, operand_index, 0))]
            m.d.sync += [
                banks.mac_valid[lane].eq(valid & current.write.bit_select(at, 1)),
                banks.mac_target[lane].eq(target),
                banks.mac_product[lane].eq(current.value * rows.read_data[lane]),
            ]
        m.d.comb += issued_now.eq(sum(lane_valid))
        m.d.sync += [
            banks.mac_bank.eq(row_bank),
            banks.row_end.eq(finishing & current.row_last),
            banks.row_end_bank.eq(row_bank),
            banks.row_end_len.eq(current.out_len),
        ]
        with m.If(finishing & current.row_last):
            m.d.sync += row_bank.eq(next_bank(row_bank, config.psum_banks))

        # -- status and counters ------------------------------------------------
        with m.If(banks.saturating):
            m.d.sync += self.saturated.eq(1)
        m.d.comb += self.idle.eq(~task_valid & ~current_valid & ~banks.mac_valid.any()
                                 & ~banks.row_end & ~banks.busy)
        with m.If(stepping):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.Elif(~self.idle):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        m.d.sync += self.issued_macs.eq(self.issued_macs + issued_now)
        with m.If(self.clear):
            m.d.sync += [counter.eq(0) for counter in (
                self.busy_cycles, self.stall_cycles, self.issued_macs, self.saturated)]
        return m
