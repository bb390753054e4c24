"""Drive a SparsePE (or the dense baseline's DensePE) in amaranth.sim: tasks, elements and
results with idle/backpressure."""

import itertools

from amaranth.sim import Simulator

from gen.compiler.tasks import Packer
from hw.dense_pe import DensePE, dense_element_layout
from hw.layouts import element_layout
from hw.pe import SparsePE

from streams import ProtocolMonitor


def always():
    return itertools.repeat(1)


async def offer(ctx, port, items, pattern):
    """Offer ``items`` (payload bits) on stream ``port``, one whenever ``pattern`` says so,
    each held until it is taken."""
    for bits in items:
        while not next(pattern):
            await ctx.tick()
        ctx.set(port.payload.as_value(), bits)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)


def dense_beats(config, beats):
    """The beats of a dense-mode row (``element_layout``) as :class:`hw.dense_pe.DensePE`
    takes them: values only. The indices must count up from 0 in every primitive."""
    per_beat, expected, converted = config.elements_per_beat, 0, []
    for bits in beats:
        beat = element_layout(config).from_bits(bits)
        count = int(beat.count)
        indices = [int(beat.index[i]) for i in range(count)]
        assert indices == list(range(expected, expected + count)), (indices, expected)
        expected = 0 if beat.last else expected + count
        converted.append(dense_element_layout(config).const({
            "value": [int(beat.value[i]) for i in range(per_beat)], "count": count,
            "last": int(beat.last)}).as_bits())
    return converted


def run_pe(config, rows, *, task_pattern=None, element_pattern=None, result_pattern=None,
           max_cycles=200_000, monitor=None, pe=SparsePE):
    """Run output rows through a fresh PE; returns (outputs per row, counters, cycles).

    ``cycles`` counts from the first task offered to the last result accepted.
    Patterns are iterables of 0/1: whether a source offers (or the sink
    accepts) in a cycle. ``monitor``: a list that receives the
    :class:`streams.ProtocolMonitor` watching every stream and queue of the PE
    (a violation fails the run).
    """
    dut = pe(config)
    watch = ProtocolMonitor(dut) if monitor is not None else None
    packer = Packer(config)
    tasks = [task for row in rows for task in row.tasks]
    beats = [bits for task in tasks for bits in packer.beats(task)]
    if pe is DensePE:
        beats = dense_beats(config, beats)
    expected_outputs = sum(row.out_len for row in rows)
    outputs, state = [], {}

    async def tasks_source(ctx):
        await offer(ctx, dut.task, packer.task_stream(tasks),
                    iter(task_pattern or always()))

    async def elements_source(ctx):
        await offer(ctx, dut.operand, beats, iter(element_pattern or always()))

    async def results_sink(ctx):
        pattern = iter(result_pattern or always())
        cycle = 0
        while len(outputs) < expected_outputs:
            ctx.set(dut.result.ready, next(pattern))
            _, _, valid, ready, bits = await ctx.tick().sample(
                dut.result.valid, dut.result.ready, dut.result.payload.as_value())
            cycle += 1
            if valid and ready:
                outputs.append(packer.result(bits))
            if cycle > max_cycles:
                raise AssertionError(f"PE made {len(outputs)} of {expected_outputs} outputs "
                                     f"in {max_cycles} cycles")
        ctx.set(dut.result.ready, 0)
        state["cycles"] = cycle
        await ctx.tick()
        await ctx.tick()
        state.update({name: ctx.get(getattr(dut, name)) for name in
                      ("busy_cycles", "stall_cycles", "issued_macs", "effectual_macs",
                       "saturated", "idle") if hasattr(dut, name)})

    sim = Simulator(watch.fragment if watch else dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tasks_source, background=True)
    sim.add_testbench(elements_source, background=True)
    sim.add_testbench(results_sink)
    if watch:
        sim.add_testbench(watch.process, background=True)
    sim.run()
    if watch:
        watch.finish()
        monitor.append(watch)

    per_row, start = [], 0
    for row in rows:
        chunk = outputs[start:start + row.out_len]
        values = [v for v, _ in chunk]
        lasts = [last for _, last in chunk]
        assert lasts == [0] * (row.out_len - 1) + [1], f"last flags {lasts}"
        per_row.append(values)
        start += row.out_len
    return per_row, state
