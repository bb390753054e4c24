"""The PE array in amaranth.sim: row groups of random layers under idle and backpressure
patterns, outputs against the golden model, every stream and queue inside watched."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator

from cosim.pe_jobs import make_array_run
from gen.layer import check_layer, layer_rows
from hw.array import PEArray
from hw.config import PRESETS

from pe_sim import offer
from streams import ProtocolMonitor

SMALL = PRESETS["small"]


def run_array_sim(config, job, *, task_pattern, beat_pattern, result_pattern):
    """Run one array job (:func:`cosim.pe_jobs.make_array_run`); returns the outputs per PE
    and the monitor."""
    dut = PEArray(config)
    monitor = ProtocolMonitor(dut)
    expected = sum(len(row) for rows in job["expected"] for row in rows)
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
    _, groups = layer_rows(SMALL, spec, pes=SMALL.pes, dense=dense)
    present = [[key is not None for key in keys] for keys, _, _ in groups]
    job = make_array_run(SMALL, [rows for _, _, rows in groups], label=phase, present=present)
    patterns = [itertools.cycle(p) for p in PATTERNS[pattern]]
    outputs, monitor = run_array_sim(SMALL, job, task_pattern=patterns[0],
                                     beat_pattern=patterns[1], result_pattern=patterns[2])
    for unit in range(SMALL.pes):
        wanted = [value for row in job["expected"][unit] for value in row]
        assert outputs[unit] == wanted, f"PE {unit}"
    # The array's queues, the PEs' streams and queues: all watched, all used.
    for unit in range(SMALL.pes):
        for name in (f"top.task_queue_{unit}", f"top.pe_{unit}.task", f"top.pe_{unit}.result"):
            assert monitor.transfers(name) > 0, name
    assert monitor.transfers("top.task") == len(job["tasks"])
    assert monitor.transfers("top.operand") == len(job["elements"])
