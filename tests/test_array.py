"""The PE array in amaranth.sim: row groups of random layers under idle and backpressure
patterns, outputs against the golden model, every stream and queue inside watched."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from cosim.layer import add_drains
from cosim.pe_jobs import array_run
from gen.compiler.layer import check_layer
from gen.compiler.program import bundle_tasks
from gen.compiler.schedule import schedule_layer
from hw.array import PEArray
from hw.config import PRESETS
from pruning import golden

from pe_sim import offer
from streams import ProtocolMonitor

SMALL = PRESETS["small"]


def run_array_sim(config, job, *, task_pattern, beat_pattern, result_pattern):
    """Run one array job (:func:`cosim.pe_jobs.array_run`); returns the outputs per PE
    and the monitor."""
    dut = PEArray(config)
    monitor = ProtocolMonitor(dut)
    expected = sum(map(sum, job["row_lengths"]))
    outputs = [[] for _ in range(config.pes)]

    async def tasks(ctx):
        await offer(ctx, dut.task, job["tasks"], task_pattern)

    async def beats(ctx):
        await offer(ctx, dut.operand, job["elements"], beat_pattern)

    async def results(ctx):
        for _ in range(100_000):
            ready = next(result_pattern)
            ctx.set(dut.result.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.result.valid, dut.result.payload)
            if valid and ready:
                for unit in range(config.pes):
                    lane = payload.lanes[unit]
                    if lane.valid:
                        outputs[unit].append(lane.value)
            if sum(map(len, outputs)) == expected:
                break
        else:
            raise AssertionError("the array did not drain every row")
        for _ in range(8):
            await ctx.tick()
        assert ctx.get(dut.idle), "the array is not idle after its last output"

    sim = Simulator(monitor.fragment)
    sim.add_clock(1e-8)
    sim.add_testbench(tasks, background=True)
    sim.add_testbench(beats, background=True)
    sim.add_testbench(results)
    sim.add_testbench(monitor.process, background=True)
    sim.run()
    monitor.finish()
    return outputs, monitor


PATTERNS = {"full": ([1], [1], [1]),
            "idle and backpressure": ([1, 1, 0], [1, 0, 1, 1, 0], [1, 0, 0, 1])}


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("phase,dense", [("ff", False), ("bp", False), ("wg", False),
                                         ("bp", True)])
def test_array_streams_keep_the_protocol_and_the_outputs_are_golden(phase, dense, pattern):
    rng = np.random.default_rng(hash((phase, dense)) % 1000)
    x = rng.integers(-9, 10, (1, 3, 4, 7)) * (rng.random((1, 3, 4, 7)) < 0.5)
    w = rng.integers(-9, 10, (5, 3, 3, 3))
    dy = rng.integers(-9, 10, (1, 5, 4, 7)) * (rng.random((1, 5, 4, 7)) < 0.3)
    operands = {"ff": {"x": x, "w": w}, "bp": {"dy": dy, "w": w, "mask": x > 0},
                "wg": {"x": x, "dy": dy, "kernel": (3, 3)}}[phase]
    spec = check_layer(SMALL, phase, **operands, stride=1, pad=1)
    schedule = schedule_layer(SMALL, spec, dense=dense, runs=False)
    groups = schedule.groups
    bundles = [bundle for group in groups for bundle in bundle_tasks(schedule, group)]
    job = array_run(SMALL, bundles, [[group.out_len for group in groups]] * SMALL.pes,
                    label=phase)
    patterns = [itertools.cycle(p) for p in PATTERNS[pattern]]
    outputs, monitor = run_array_sim(SMALL, job, task_pattern=patterns[0],
                                     beat_pattern=patterns[1], result_pattern=patterns[2])
    assert [len(values) for values in outputs] == [sum(g.out_len for g in groups)] * SMALL.pes
    layer = np.zeros(spec.output_shape, np.int64)
    add_drains(SMALL, schedule.mapping, layer, groups, outputs)
    assert np.array_equal(layer, golden.conv_phase(phase, stride=1, pad=1, x=spec.x, w=spec.w,
                                                   dy=spec.dy, mask=spec.mask,
                                                   kernel_hw=spec.kernel_hw,
                                                   input_hw=spec.input_hw))
    # The array's queues, the PEs' streams and queues: all watched, all used.
    for unit in range(SMALL.pes):
        for name in (f"top.task_queue_{unit}", f"top.pe_{unit}.task", f"top.pe_{unit}.result"):
            assert monitor.transfers(name) > 0, name
    assert monitor.transfers("top.task") == len(job["tasks"])
    assert monitor.transfers("top.operand") == len(job["elements"])
