"""Dataflow controller: executes a layer descriptor's row commands on the PE array.

A run is described by the descriptor registers (phase, stride, kernel width,
mode, number of commands) and a program of row commands in the program
buffer (:func:`~hw.layouts.command_layout`), which the host compiler emits
for any layer phase: the loops over batch, channels and kernel rows are
unrolled into commands, the row geometry of each (possibly tiled) primitive
is in the command, and its operands are referenced by buffer address, so a
row that feeds many primitives is stored once.

Two sequencers run side by side so that neither waits for the other:

- the **bundle sequencer** reads command ``i`` from the program buffer, then
  the stationary entry (a load's lines) and the mask entry it names, and
  offers the array one bundle per cycle; for every command with streamed
  elements it queues the operand range;
- the **operand sequencer** streams each queued range from the operand
  buffer, one beat per cycle, back to back across commands.

Each memory read has one cycle of latency; a stage reads ahead only when its
output register is free or being taken, so both streams run at full rate
under backpressure.
"""

from amaranth import Array, Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import Phase, buffer_layouts, bundle_layout, command_layout, element_layout

__all__ = ["Controller", "OPERAND_RANGES", "FIRST_BUNDLE", "OPERAND_LATENCY"]

# Operand ranges the bundle sequencer may queue ahead of the operand sequencer.
OPERAND_RANGES = 8
# Cycles from START to the first bundle on offer: the program read, the
# command register and the bundle register.
FIRST_BUNDLE = 3
# Cycles from the array taking a non-empty bundle to its first operand beat
# on offer at the earliest: the operand range FIFO (SyncFIFOBuffered) to the
# operand sequencer, and the operand buffer's read.
OPERAND_LATENCY = 2


class Controller(wiring.Component):
    """Row-command sequencer between the buffers and the PE array.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    start : In
        Begin executing commands ``0 .. commands - 1`` (ignored while running).
    phase, dense, stride, kernel, commands : In
        The descriptor; held steady during a run.
    program_*, stationary_*, mask_*, operand_* : read ports
        ``*_address`` and ``*_enable`` out, ``*_data`` in, one cycle of latency.
    bundle : Out(stream.Signature(bundle_layout))
    operand : Out(stream.Signature(element_layout))
    array_idle : In
        The array holds no work.
    running : Out
        From ``start`` until every command has been executed and the array
        is idle.
    """

    def __init__(self, config):
        self._config = config
        read_ports = {}
        for name, (shape, depth) in buffer_layouts(config).items():
            read_ports.update({f"{name}_address": Out(config.address_width(depth)),
                               f"{name}_enable": Out(1),
                               f"{name}_data": In(shape)})
        super().__init__({
            "start": In(1),
            "phase": In(Phase),
            "dense": In(1),
            "stride": In(config.stride_width),
            "kernel": In(config.kernel_width),
            "commands": In(range(config.program_depth + 1)),
            **read_ports,
            "bundle": Out(stream.Signature(bundle_layout(config))),
            "operand": Out(stream.Signature(element_layout(config))),
            "array_idle": In(1),
            "running": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        m = Module()

        range_layout = data.StructLayout({
            "address": unsigned(config.address_width(config.operand_depth)),
            "beats": unsigned(config.operand_depth.bit_length()),
        })
        m.submodules.ranges = ranges = fifo.SyncFIFOBuffered(width=range_layout.size,
                                                             depth=OPERAND_RANGES)

        # -- bundle sequencer: program read, then stationary and mask reads ----
        fetch = Signal(range(config.program_depth + 1))   # next command to read
        command_valid = Signal()                          # program_data holds a command
        command = self.program_data
        bundle_valid = Signal()
        held = Signal(command_layout(config))             # the command of the bundle on offer

        bundle_free = Signal()
        taken = Signal()
        fetch_free = Signal()
        m.d.comb += [
            bundle_free.eq(~bundle_valid | self.bundle.ready),
            taken.eq(command_valid & bundle_free & (command.empty | ranges.w_rdy)),
            fetch_free.eq(~command_valid | taken),
            self.program_address.eq(fetch),
            self.program_enable.eq(fetch_free),
            self.stationary_address.eq(command.stationary_address),
            # Only loads read the stationary buffer, only a primitive the mask buffer.
            self.stationary_enable.eq(taken & (command.loads != 0)),
            self.mask_address.eq(command.mask_address),
            self.mask_enable.eq(taken & ~command.load_only),
            ranges.w_en.eq(taken & ~command.empty),
        ]
        queued = Signal(range_layout)
        m.d.comb += [queued.address.eq(command.operand_address),
                     queued.beats.eq(command.operand_beats),
                     ranges.w_data.eq(queued)]
        with m.If(fetch_free):
            m.d.sync += command_valid.eq(self.running & (fetch != self.commands))
            with m.If(self.running & (fetch != self.commands)):
                m.d.sync += fetch.eq(fetch + 1)
        with m.If(bundle_free):
            m.d.sync += bundle_valid.eq(taken)
        with m.If(taken):
            m.d.sync += held.eq(command)

        payload = self.bundle.payload
        m.d.comb += [
            self.bundle.valid.eq(bundle_valid),
            payload.task.phase.eq(self.phase),
            payload.task.dense.eq(self.dense),
            payload.task.stride.eq(self.stride),
            payload.task.kernel.eq(self.kernel),
            payload.task.empty.eq(held.empty),
            payload.task.row_last.eq(held.row_last),
            payload.task.pad.eq(held.pad),
            payload.task.in_width.eq(held.in_width),
            payload.task.out_width.eq(held.out_width),
            payload.task.offset.eq(held.offset),
            payload.task.load_only.eq(held.load_only),
        ]
        # Crossbar: PE p takes the line and the mask row of its member, ``source[p]``
        # (entries hold them in member order).
        pes = config.pes
        lines = Array(self.stationary_data[p].as_value() for p in range(pes))
        mask_rows = Array(self.mask_data[p] for p in range(pes))
        m.d.comb += [payload.line[p].eq(lines[held.source[p]]) for p in range(pes)]
        m.d.comb += [payload.mask[p].eq(mask_rows[held.source[p]]) for p in range(pes)]
        m.d.comb += [payload.works.eq(held.works), payload.task.row.eq(held.row),
                     payload.loads.eq(held.loads), payload.task.load_line.eq(held.load_line)]

        # -- operand sequencer ------------------------------------------------
        beat_address = Signal.like(queued.address)
        beats_left = Signal.like(queued.beats)
        operand_valid = Signal()
        next_range = Signal(range_layout)
        m.d.comb += next_range.eq(ranges.r_data)
        operand_free = Signal()
        m.d.comb += operand_free.eq(~operand_valid | self.operand.ready)
        # Read the current range's next beat, or the first beat of the next
        # range in the same cycle: no bubble between primitives.
        with m.If(beats_left != 0):
            m.d.comb += self.operand_address.eq(beat_address)
            with m.If(operand_free):
                m.d.sync += [beat_address.eq(beat_address + 1), beats_left.eq(beats_left - 1)]
        with m.Else():
            m.d.comb += self.operand_address.eq(next_range.address)
            with m.If(operand_free & ranges.r_rdy):
                m.d.comb += ranges.r_en.eq(1)
                m.d.sync += [beat_address.eq(next_range.address + 1),
                             beats_left.eq(next_range.beats - 1)]
        reading = Signal()
        m.d.comb += [
            reading.eq((beats_left != 0) | ranges.r_rdy),
            self.operand_enable.eq(operand_free),
            self.operand.valid.eq(operand_valid),
            self.operand.payload.eq(self.operand_data),
        ]
        with m.If(operand_free):
            m.d.sync += operand_valid.eq(reading)

        # -- run control ------------------------------------------------------
        drained = Signal()
        m.d.comb += drained.eq((fetch == self.commands) & ~command_valid & ~bundle_valid
                               & (ranges.level == 0) & (beats_left == 0) & ~operand_valid
                               & self.array_idle)
        with m.If(~self.running & self.start):
            m.d.sync += [self.running.eq(1), fetch.eq(0)]
        with m.Elif(self.running & drained):
            m.d.sync += self.running.eq(0)
        return m
