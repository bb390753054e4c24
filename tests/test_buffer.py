"""LoadBuffer and OutputBuffer in amaranth.sim, against a list model, with idle and backpressure."""

import random

import pytest
from amaranth import unsigned
from amaranth.sim import Simulator

from hw.buffer import LoadBuffer, OutputBuffer
from hw.config import PRESETS, to_signed

SMALL = PRESETS["small"]


def _simulate(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("width,stream_width", [(49, 64), (130, 32), (32, 32)])
def test_load_buffer_packets_and_reads(width, stream_width):
    rng = random.Random(width)
    depth = 6
    dut = LoadBuffer(shape=unsigned(width), depth=depth, stream_width=stream_width)
    beats_per_entry = -(-width // stream_width)
    assert dut.beats_per_entry == beats_per_entry
    assert dut.bits == depth * beats_per_entry * stream_width

    def packet(entries):
        beats = []
        for value in entries:
            beats += [(value >> (i * stream_width)) & ((1 << stream_width) - 1)
                      for i in range(beats_per_entry)]
        return beats

    async def testbench(ctx):
        contents = [0] * depth
        for round_ in range(3):
            entries = [rng.getrandbits(width) for _ in range(rng.randint(1, depth))]
            beats = packet(entries)
            for number, beat in enumerate(beats):
                while rng.random() < 0.3:       # idle cycles between beats
                    ctx.set(dut.load.valid, 0)
                    await ctx.tick()
                ctx.set(dut.load.valid, 1)
                ctx.set(dut.load.payload.data, beat)
                ctx.set(dut.load.payload.last, number == len(beats) - 1)
                assert ctx.get(dut.load.ready)
                assert not ctx.get(dut.overflow)
                await ctx.tick()
            ctx.set(dut.load.valid, 0)
            contents[:len(entries)] = entries
            for address in rng.sample(range(depth), depth):
                ctx.set(dut.read_address, address)
                ctx.set(dut.read_enable, 1)
                await ctx.tick()
                ctx.set(dut.read_enable, 0)
                ctx.set(dut.read_address, (address + 1) % depth)
                await ctx.tick()       # data holds while read_enable is low
                assert ctx.get(dut.read_data) == contents[address], (round_, address)
        # One beat too many: overflow, and the buffer keeps its contents.
        beats = packet([1] * depth) + [5]
        overflowed = 0
        for number, beat in enumerate(beats):
            ctx.set(dut.load.valid, 1)
            ctx.set(dut.load.payload.data, beat)
            ctx.set(dut.load.payload.last, number == len(beats) - 1)
            overflowed += ctx.get(dut.overflow)
            await ctx.tick()
        assert overflowed == 1

    _simulate(dut, testbench)


@pytest.mark.parametrize("ready_rate", [1.0, 0.4])
def test_output_buffer_banks_and_readout(ready_rate):
    rng = random.Random(7)
    config = SMALL.replace(output_depth=8)
    dut = OutputBuffer(config)
    pes = config.pes
    width = config.stream_width

    async def testbench(ctx):
        for round_ in range(2):
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            banks = [[] for _ in range(pes)]
            counts = [rng.randint(0, config.output_depth) for _ in range(pes)]
            # Each lane delivers at its own pace.
            while any(len(b) < c for b, c in zip(banks, counts)):
                ctx.set(dut.results.valid, 1)
                for unit in range(pes):
                    lane = dut.results.payload.lanes[unit]
                    arrives = len(banks[unit]) < counts[unit] and rng.random() < 0.6
                    value = rng.randint(config.acc_min, config.acc_max)
                    ctx.set(lane.valid, arrives)
                    ctx.set(lane.value, value)
                    if arrives:
                        banks[unit].append(value)
                await ctx.tick()
            ctx.set(dut.results.valid, 0)
            assert ctx.get(dut.outputs) == counts[0]
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            received = []
            expected = [v for bank in banks for v in bank]
            for _ in range(10 * len(expected) + 20):
                ready = rng.random() < ready_rate
                ctx.set(dut.readout.ready, ready)
                if ctx.get(dut.readout.valid) and ready:
                    data = ctx.get(dut.readout.payload.data)
                    received.append(to_signed(data, width))
                    assert ctx.get(dut.readout.payload.last) == (len(received) == len(expected))
                await ctx.tick()
                if not ctx.get(dut.busy) and not ctx.get(dut.readout.valid):
                    break
            assert received == expected, round_
            assert not ctx.get(dut.overflow)
        # One output more than a bank holds.
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.results.valid, 1)
        ctx.set(dut.results.payload.lanes[0].valid, 1)
        overflows = 0
        for _ in range(config.output_depth + 2):
            overflows += ctx.get(dut.overflow)
            await ctx.tick()
        ctx.set(dut.results.valid, 0)
        # A pulse per dropped output; the bank keeps the ones that fit.
        assert overflows == 2
        assert ctx.get(dut.outputs) == config.output_depth
        assert not ctx.get(dut.overflow)

    _simulate(dut, testbench)


def test_load_buffer_checks_its_parameters():
    with pytest.raises(ValueError, match="depth must be a positive int, not 0"):
        LoadBuffer(shape=8, depth=0, stream_width=32)
    with pytest.raises(ValueError, match="stream_width must be a positive int, not 'x'"):
        LoadBuffer(shape=8, depth=4, stream_width="x")
