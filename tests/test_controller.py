"""Controller in amaranth.sim: row commands from loaded buffers -> bundles and beats.

The buffers are filled through their load streams with a random program;
the bundles and operand beats that come out, under random backpressure, must
be exactly what the commands name (each PE's entry row included), in order,
and every stream and queue keeps the handshake rules
(:class:`streams.ProtocolMonitor`).
"""

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from gen.compiler.program import _split
from hw.buffer import LoadBuffer
from hw.config import PRESETS
from hw.controller import Controller
from hw.layouts import buffer_layouts, element_layout

from streams import ProtocolMonitor

SMALL = PRESETS["small"].replace(program_depth=32, operand_depth=32, stationary_depth=8,
                                 mask_depth=8)


class _Bench(wiring.Component):
    def __init__(self, config):
        self.config = config
        self.controller = Controller(config)
        self.buffers = {name: LoadBuffer(shape=shape, depth=depth,
                                         stream_width=config.stream_width)
                        for name, (shape, depth) in buffer_layouts(config).items()}
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = controller = self.controller
        for name, buffer in self.buffers.items():
            m.submodules[name] = buffer
            m.d.comb += [
                buffer.read_address.eq(getattr(controller, f"{name}_address")),
                buffer.read_enable.eq(getattr(controller, f"{name}_enable")),
                getattr(controller, f"{name}_data").eq(buffer.read_data),
            ]
        return m


@pytest.mark.parametrize("ready_rate", [1.0, 0.5])
def test_commands_become_bundles_and_beats(ready_rate):
    config = SMALL
    pes = config.pes
    rng = random.Random(int(ready_rate * 10))
    bench = _Bench(config)
    controller = bench.controller
    entries = {name: [] for name in bench.buffers}
    lines = [[[rng.randint(-9, 9) for _ in range(config.line_words)] for _ in range(pes)]
             for _ in range(config.stationary_depth)]
    masks = [[rng.getrandbits(config.max_row) for _ in range(pes)]
             for _ in range(config.mask_depth)]
    beats = [rng.getrandbits(element_layout(config).size) for _ in range(config.operand_depth)]
    commands = []
    for _ in range(24):
        load_only = rng.random() < 0.3          # a load alone has no beats
        empty = load_only or rng.random() < 0.2
        count = 0 if empty else rng.randint(1, 3)
        # Loads alone, with a primitive, or none.
        loads = (rng.getrandbits(pes) | 1) if load_only or \
            rng.random() < 0.5 else 0
        commands.append({
            "empty": int(empty), "row_last": rng.randint(0, 1), "load_only": int(load_only),
            "row": rng.randrange(config.scratchpad_lines),
            "load_line": rng.randrange(config.scratchpad_lines),
            "loads": loads,
            "pad": rng.randint(0, 3),
            "in_width": rng.randint(1, 16), "out_width": rng.randint(1, 16),
            "offset": rng.randint(0, 15), "stationary_address": rng.randrange(config.stationary_depth),
            "mask_address": rng.randrange(config.mask_depth),
            "operand_address": rng.randrange(config.operand_depth - count + 1),
            "operand_beats": count,
            "source": [rng.randrange(pes) for _ in range(pes)],
            "works": rng.getrandbits(pes),
        })
    width = config.stream_width
    layouts = {name: shape for name, (shape, _) in buffer_layouts(config).items()}
    for command in commands:
        entries["program"] += _split(layouts["program"].const(command).as_bits(),
                                     layouts["program"].size, width)
    for bits in beats:
        entries["operand"] += _split(bits, layouts["operand"].size, width)
    for entry in lines:
        entries["stationary"] += _split(layouts["stationary"].const(entry).as_bits(),
                                        layouts["stationary"].size, width)
    for entry in masks:
        entries["mask"] += _split(layouts["mask"].const(entry).as_bits(),
                                  layouts["mask"].size, width)

    # A bundle with loads carries the lines of its stationary entry, a primitive's the
    # mask rows of its mask entry, PE p those of its source (a buffer not read shows
    # stale data).
    expected_bundles = [(c, [lines[c["stationary_address"]][c["source"][p]]
                             for p in range(pes)] if c["loads"] else None,
                         None if c["load_only"] else
                         [masks[c["mask_address"]][c["source"][p]] for p in range(pes)])
                        for c in commands]
    expected_beats = [beats[c["operand_address"] + i] for c in commands
                      for i in range(c["operand_beats"])]
    got_bundles, got_beats = [], []

    async def testbench(ctx):
        for name, packet in entries.items():
            load = bench.buffers[name].load
            for number, beat in enumerate(packet):
                ctx.set(load.valid, 1)
                ctx.set(load.payload.data, beat)
                ctx.set(load.payload.last, number == len(packet) - 1)
                await ctx.tick()
            ctx.set(load.valid, 0)
        ctx.set(controller.phase, 1)
        ctx.set(controller.stride, 2)
        ctx.set(controller.kernel, 3)
        ctx.set(controller.commands, len(commands))
        ctx.set(controller.array_idle, 1)
        ctx.set(controller.start, 1)
        await ctx.tick()
        ctx.set(controller.start, 0)
        for _ in range(2000):
            bundle_ready = rng.random() < ready_rate
            beat_ready = rng.random() < ready_rate
            ctx.set(controller.bundle.ready, bundle_ready)
            ctx.set(controller.operand.ready, beat_ready)
            if ctx.get(controller.bundle.valid) and bundle_ready:
                payload = ctx.get(controller.bundle.payload)
                assert payload.task.stride == 2 and payload.task.kernel == 3
                load_only, loads = payload.task.load_only, payload.loads
                got_bundles.append((payload.works, payload.task.empty, payload.task.row_last,
                                    load_only, loads, payload.task.row,
                                    payload.task.load_line,
                                    payload.task.pad,
                                    payload.task.in_width, payload.task.out_width,
                                    payload.task.offset,
                                    [list(payload.line[p]) for p in range(pes)] if loads
                                    else None,
                                    None if load_only else [payload.mask[p] for p in range(pes)]))
            if ctx.get(controller.operand.valid) and beat_ready:
                got_beats.append(ctx.get(controller.operand.payload.as_value()))
            await ctx.tick()
            if not ctx.get(controller.running):
                break
        assert not ctx.get(controller.running), "the run did not end"

    # The bundle and operand streams, the operand-range FIFO and the buffers'
    # load streams keep the stream rules in every cycle.
    monitor = ProtocolMonitor(bench)
    sim = Simulator(monitor.fragment)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.add_testbench(monitor.process, background=True)
    sim.run()
    monitor.finish()
    assert {"top.controller.bundle", "top.controller.operand",
            "top.controller.ranges"} <= set(monitor.watched)
    assert monitor.transfers("top.controller.bundle") == len(commands)
    assert monitor.transfers("top.controller.ranges") == sum(not c["empty"] for c in commands)
    assert len(got_bundles) == len(commands)
    # Loads alone, loads with a primitive, primitives without loads.
    assert any(c["load_only"] for c in commands)
    assert any(c["loads"] and not c["load_only"] for c in commands)
    assert any(not c["loads"] for c in commands)
    for (command, line, mask), got in zip(expected_bundles, got_bundles):
        assert got == (command["works"], command["empty"], command["row_last"],
                       command["load_only"], command["loads"], command["row"],
                       command["load_line"], command["pad"], command["in_width"],
                       command["out_width"], command["offset"], line, mask)
    assert got_beats == expected_beats
