"""Sparse-aware PE: one 1-D row-convolution engine for FF, BP and WG.

Four stages, each decoupled from the next so that sparse work flows without
bubbles (docs/ARCHITECTURE.md):

1. **Accept.** A task (one row primitive: geometry, stationary row, BP mask)
   is held while its streamed elements arrive as (value, index) pairs,
   ``elements_per_beat`` per beat; its stationary row goes into the row store
   (:class:`~hw.rows.RowStore`), which keeps it while elements of the task are
   in flight. Each element's window is decoded
   (:class:`~hw.window.WindowDecoder`: slot bitmaps and index lines, no
   operands); an element without any MAC to issue is dropped on the spot, so
   it costs no issue cycle. The next task is taken in the cycle the current
   one ends.
2. **Queue.** Decoded elements wait in a ``queue_depth``-entry queue that
   takes a whole beat per cycle (:class:`~hw.queue.ElementQueue`); it lets
   the accept stage run ahead (and drop empty elements) while the issue stage
   is busy with an element that has several MACs.
3. **Issue.** Each cycle, ``lanes`` leading-one pickers take the lowest set
   bits of the current element's issue bitmap and start one MAC each, each
   lane reading its stationary operand from the element's row in the row
   store. The next element is taken in the cycle the bitmap empties.
4. **Accumulate and drain.** Products add into one of ``psum_banks``
   partial-sum banks (:class:`~hw.psum.PsumBanks`, ``max_row`` entries each), exactly,
   saturating at ``acc_width`` with a sticky flag. When an output row is
   complete its bank is drained through ``result`` while the next rows
   accumulate into the other banks, so the drain is paid once per output
   row and overlaps work. More than two banks let a run of light rows (a
   sparse row can hold a few MACs against a drain of ``out_len + 1``
   cycles) finish ahead of the drain.

Cycle cost with streams at full rate: one cycle per ``lanes`` issued MACs of
an element, plus the overhead documented in :func:`overhead_bound`.
"""

from amaranth import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import (element_layout, output_length, result_layout, row_length, slot_indices,
                      task_layout, window_layout)
from .psum import PsumBanks, next_bank
from .queue import ElementQueue
from .scratchpad import Scratchpad, row_entries
from .window import WindowDecoder

__all__ = ["SparsePE", "LATENCY", "TASK_LATENCY", "STARTUP_CYCLES", "DRAIN_LATENCY",
           "issue_lead", "overhead_bound"]

# Cycles from accepting an element to issuing its first MAC (queue empty):
# accept -> queue -> issue register. Also from accepting a row's last beat
# (or an empty task) to its end marker's issue cycle.
LATENCY = 2
# Cycles from taking a task to accepting its first beat: the task register.
TASK_LATENCY = 1
# Cycles from the first task offered to its first MAC: task register, then LATENCY.
STARTUP_CYCLES = TASK_LATENCY + LATENCY
# Cycles from the issue of a row's last MAC (or its end marker) to its first
# output: the MAC pipeline register, the row-end register, the drain's start.
DRAIN_LATENCY = 3


def issue_lead(config):
    """Cycles by which the PE's accept stage may run ahead of its issue stage.

    The element queue takes a beat while it holds at most ``queue_depth -
    elements_per_beat`` elements (:class:`hw.queue.ElementQueue`), and a beat
    accepted in one cycle is in the queue the next: so many elements, plus
    the one the issue stage holds, are accepted before they issue."""
    return config.queue_depth - config.elements_per_beat + 1


def overhead_bound(rows, loads=0):
    """Most non-issue cycles of a PE run with streams at full rate.

    ``rows`` lists each output row of the run, in order, as ``(issue_cycles,
    out_len, idle_beats)``: the row's issue cycles (the sum over its streamed
    elements of ``ceil(issued MACs / lanes)``), its length and how many of
    its operand beats hold no element with a MAC to issue. The run takes at most
    ``sum(issue_cycles) + overhead_bound(rows)`` cycles from the first task
    offered to the last output accepted. The overhead is:

    - ``STARTUP_CYCLES`` once;
    - per output row, 2 cycles: its end marker (when the row's last element
      had no MAC) and an empty task's accept cycle;
    - per beat of dropped elements, at most one cycle: the accept stage takes
      one beat per cycle, so a run of dropped elements longer than the queued
      work can leave the issue stage waiting;
    - per output row, the part of the previous row's drain (``out_len + 1``
      cycles) that its own issue cycles do not cover: a row only waits for a
      bank when rows are shorter than their drains;
    - the drain of the last row, ``out_len + 1`` cycles, plus 2 (MAC pipeline
      and drain start);
    - per load entry of the task stream (``loads``: a line of a stationary row
      the scratchpad did not hold), ``LATENCY + 1`` cycles: its accept cycle,
      and the issue stage's wait for the next task's first element when the
      load had to wait for the elements in flight.
    """
    overhead = STARTUP_CYCLES + (LATENCY + 1) * loads
    previous_drain = 0
    for issue_cycles, out_len, idle_beats in rows:
        overhead += 2 + idle_beats + max(0, previous_drain - issue_cycles)
        previous_drain = out_len + 1
    return overhead + previous_drain + 2


class SparsePE(wiring.Component):
    """1-D row-convolution PE that issues only effectual MACs (or all, in dense mode).

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    task : In(stream.Signature(task_layout))
        Row primitives, in order; all primitives into one output row are
        consecutive and the last one has ``row_last`` set.
    operand : In(stream.Signature(element_layout))
        Beats of the streamed elements of each non-empty task, the last beat
        with ``last`` set. In sparse mode only the nonzero elements; in dense
        mode all of them.
    result : Out(stream.Signature(result_layout))
        Each completed output row, ``out_len`` values in order.
    busy_cycles : Out
        Cycles in which the issue stage issued at least one MAC.
    stall_cycles : Out
        Cycles in which the PE held work but issued no MAC: pipeline fill,
        row-end markers, waiting for operands or for a bank to drain, the
        final drain, result backpressure.
    issued_macs, effectual_macs : Out
        MACs issued, and how many of them had two nonzero operands and an
        unmasked output.
    saturated : Out
        Sticky: a partial sum left the ``acc_width`` range and was clipped.
    idle : Out
        No task, element, MAC or output row is in flight.
    issuing : Out
        The issue stage issues at least one MAC in this cycle.
    clear : In
        Zero the counters and the saturation flag (at the start of a run).
    """

    def __init__(self, config):
        self._config = config
        counter = unsigned(config.counter_width)
        super().__init__({
            "task": In(stream.Signature(task_layout(config))),
            "operand": In(stream.Signature(element_layout(config))),
            "result": Out(stream.Signature(result_layout(config))),
            "busy_cycles": Out(counter),
            "stall_cycles": Out(counter),
            "issued_macs": Out(counter),
            "effectual_macs": Out(counter),
            "saturated": Out(1),
            "idle": Out(1),
            "issuing": Out(1),
            "clear": In(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from accepting an element to issuing its first MAC (queue empty)."""
        return LATENCY

    def elaborate(self, platform):
        config = self._config
        slots, lanes = config.max_kernel, config.lanes
        m = Module()

        # -- accept ----------------------------------------------------------
        per_beat = config.elements_per_beat
        layout = window_layout(config)
        m.submodules.queue = queue = ElementQueue(layout, depth=config.queue_depth,
                                                  width=per_beat)

        task_valid = Signal()
        task = Signal(task_layout(config))   # a primitive (its line, if any, written)
        beat = self.operand.payload
        m.submodules.scratchpad = rows = Scratchpad(
            config, slots=row_entries(config.queue_depth, per_beat), reads=lanes)
        out_len = Signal(unsigned(config.index_width))
        m.d.comb += out_len.eq(output_length(task))

        # One decoder per element of a beat; an element is pushed when its
        # window holds a MAC or it closes the output row, else dropped here.
        wants_push = Signal(per_beat)
        for number in range(per_beat):
            decoder = WindowDecoder(config)
            m.submodules[f"window_{number}"] = decoder
            ends_row = Signal(name=f"ends_row_{number}")
            record = Signal(layout, name=f"record_{number}")
            m.d.comb += [
                decoder.task.eq(task),
                decoder.nonzero.eq(rows.nonzero),
                decoder.value.eq(beat.value[number]),
                decoder.index.eq(beat.index[number]),
                ends_row.eq(task.row_last & beat.last & (beat.count == number + 1)),
                record.eq(decoder.window),
                record.row.eq(rows.slot),
                record.row_last.eq(ends_row),
                record.out_len.eq(out_len),
                wants_push[number].eq((beat.count > number)
                                      & ((decoder.window.issue != 0) | ends_row)),
                queue.push_data[number].eq(record),
            ]
        # An empty task that ends a row pushes a marker: no MAC, only the
        # hand-off of the row to the drain.
        marker = Signal(layout)
        m.d.comb += [marker.row_last.eq(1), marker.out_len.eq(out_len), marker.row.eq(rows.slot)]
        beat_accepted = Signal()
        empty_task_done = Signal()
        primitive = Signal()
        m.d.comb += [
            primitive.eq(task_valid & ~task.load_only),
            self.operand.ready.eq(primitive & ~task.empty & queue.push_ready),
            beat_accepted.eq(self.operand.valid & self.operand.ready),
            empty_task_done.eq(primitive & task.empty & (queue.push_ready | ~task.row_last)),
        ]
        with m.If(primitive & task.empty):
            m.d.comb += [queue.push_data[0].eq(marker), queue.push_valid.eq(task.row_last)]
        with m.Elif(beat_accepted):
            m.d.comb += queue.push_valid.eq(wants_push)
        task_done = (beat_accepted & beat.last) | empty_task_done | (task_valid & task.load_only)
        # An entry's line is written as the entry is taken (its primitive's first beat
        # is accepted the cycle after, when the line and its nonzero bits are in), once
        # no element in flight reads the line: the entry waits for that.
        free = Signal()
        m.d.comb += [
            free.eq(~task_valid | task_done),
            self.task.ready.eq(free & (~self.task.payload.load | rows.load_ready)),
            rows.load.eq(self.task.valid & free & self.task.payload.load),
            rows.load_line.eq(self.task.payload.load_line),
            rows.line.eq(self.task.payload.line),
        ]
        m.d.comb += [rows.take.eq(self.task.valid & self.task.ready
                                  & ~self.task.payload.load_only),
                     rows.row.eq(self.task.payload.row),
                     # An empty task reads no row: its end marker holds no line.
                     rows.row_length.eq(Mux(self.task.payload.empty, 0,
                                            row_length(self.task.payload))),
                     rows.queued.eq((beat_accepted & (wants_push != 0))
                                    | (primitive & task.empty & task.row_last
                                       & queue.push_ready))]
        with m.If(self.task.valid & self.task.ready):
            m.d.sync += [task.eq(self.task.payload), task_valid.eq(1)]
        with m.Elif(task_done):
            m.d.sync += task_valid.eq(0)

        # -- issue -----------------------------------------------------------
        current_valid = Signal()
        current = Signal(layout)
        remaining = Signal(slots)         # issue bits not yet picked
        banks = config.psum_banks
        issue_bank = Signal(range(banks))  # the psum bank this row accumulates into
        m.submodules.banks = psum = PsumBanks(config)
        wiring.connect(m, psum.result, wiring.flipped(self.result))

        blocked = psum.full.bit_select(issue_bank, 1)
        working = Signal()
        m.d.comb += [working.eq(current_valid & ~blocked),
                     rows.oldest_valid.eq(current_valid | queue.pop.valid),
                     rows.oldest.eq(Mux(current_valid, current.row, queue.pop.payload.row))]

        # Leading-one pickers: lane l takes the l-th lowest set bit.
        pick_valid = [Signal(name=f"pick_valid_{l}") for l in range(lanes)]
        pick_slot = [Signal(range(slots), name=f"pick_slot_{l}") for l in range(lanes)]
        left = remaining
        for lane in range(lanes):
            for j in reversed(range(slots)):
                with m.If(left[j]):
                    m.d.comb += pick_slot[lane].eq(j)
            m.d.comb += pick_valid[lane].eq(left != 0)
            # Clear the lowest set bit: x & (x - 1).
            cleared = Signal(slots, name=f"left_after_{lane}")
            m.d.comb += cleared.eq(left & (left - 1))
            left = cleared
        rest = left

        finishing = Signal()
        m.d.comb += [
            finishing.eq(working & (rest == 0)),
            queue.pop.ready.eq(~current_valid | finishing),
        ]
        with m.If(queue.pop.valid & queue.pop.ready):
            m.d.sync += [current.eq(queue.pop.payload), remaining.eq(queue.pop.payload.issue),
                         current_valid.eq(1)]
        with m.Elif(finishing):
            m.d.sync += current_valid.eq(0)
        with m.Elif(working):
            m.d.sync += remaining.eq(rest)
        with m.If(finishing & current.row_last):
            m.d.sync += issue_bank.eq(next_bank(issue_bank, banks))

        # MAC pipeline register: one product per lane, accumulated next cycle in
        # the psum banks.
        issued_now = Signal(range(lanes + 1))
        effectual_now = Signal(range(lanes + 1))
        m.d.comb += [
            issued_now.eq(sum(working & pick_valid[l] for l in range(lanes))),
            effectual_now.eq(sum(working & pick_valid[l] & current.effectual.bit_select(pick_slot[l], 1)
                                 for l in range(lanes))),
        ]
        for lane in range(lanes):
            slot = pick_slot[lane]
            operand_index, target = slot_indices(current, slot)
            m.d.comb += [rows.read_slot[lane].eq(current.row),
                         rows.read_index[lane].eq(Mux(pick_valid[lane], operand_index, 0))]
            m.d.sync += [
                psum.mac_valid[lane].eq(working & pick_valid[lane]
                                        & current.write.bit_select(slot, 1)),
                psum.mac_target[lane].eq(target),
                psum.mac_product[lane].eq(current.value * rows.read_data[lane]),
            ]
        m.d.sync += [
            psum.mac_bank.eq(issue_bank),
            psum.row_end.eq(finishing & current.row_last),
            psum.row_end_bank.eq(issue_bank),
            psum.row_end_len.eq(current.out_len),
        ]
        with m.If(psum.saturating):
            m.d.sync += self.saturated.eq(1)

        # -- status and counters ----------------------------------------------
        m.d.comb += self.idle.eq(~task_valid & ~queue.pop.valid & ~current_valid
                                 & ~psum.mac_valid.any() & ~psum.row_end & ~psum.busy)
        m.d.comb += self.issuing.eq(working & pick_valid[0])
        with m.If(self.issuing):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        with m.Elif(~self.idle):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)
        m.d.sync += [
            self.issued_macs.eq(self.issued_macs + issued_now),
            self.effectual_macs.eq(self.effectual_macs + effectual_now),
        ]
        # Last, so that it wins over the updates above.
        with m.If(self.clear):
            m.d.sync += [counter.eq(0) for counter in (
                self.busy_cycles, self.stall_cycles, self.issued_macs, self.effectual_macs,
                self.saturated)]
        return m
