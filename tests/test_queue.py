"""ElementQueue: several pushes per cycle, one pop, order kept, under random flow."""

import random

import pytest
from amaranth.sim import Simulator

from hw.queue import ElementQueue


@pytest.mark.parametrize("depth,width", [(4, 2), (5, 3), (2, 1)])
def test_order_kept_under_random_flow(depth, width):
    seed = depth * 10 + width
    rng = random.Random(seed)
    dut = ElementQueue(8, depth=depth, width=width)
    sent, received = [], []
    counter = iter(range(1, 10_000))

    async def testbench(ctx):
        for _ in range(600):
            valid = [rng.random() < 0.5 for _ in range(width)]
            values = [next(counter) for _ in range(width)]
            ctx.set(dut.push_valid, sum(v << i for i, v in enumerate(valid)))
            for i, value in enumerate(values):
                ctx.set(dut.push_data[i], value % 256)
            ctx.set(dut.pop.ready, rng.random() < 0.6)
            push_ready, pop_valid, pop_ready, head = (ctx.get(dut.push_ready), ctx.get(dut.pop.valid),
                                                      ctx.get(dut.pop.ready), ctx.get(dut.pop.payload))
            if push_ready:
                sent.extend(v % 256 for v, ok in zip(values, valid) if ok)
            if pop_valid and pop_ready:
                received.append(head)
            await ctx.tick()
            assert ctx.get(dut.level) <= depth
        # Drain: nothing more pushed, every entry popped; the queue ends empty.
        ctx.set(dut.push_valid, 0)
        ctx.set(dut.pop.ready, 1)
        for _ in range(depth + 1):
            if ctx.get(dut.pop.valid):
                received.append(ctx.get(dut.pop.payload))
            await ctx.tick()
        assert ctx.get(dut.level) == 0 and not ctx.get(dut.pop.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert received == sent, f"seed {seed}: everything sent comes out, in order"
    assert len(received) > 100


def test_bad_parameters():
    with pytest.raises(ValueError, match="depth must be an int of at least width 2, not 1"):
        ElementQueue(8, depth=1, width=2)
    with pytest.raises(ValueError, match="width must be a positive int, not 0"):
        ElementQueue(8, depth=4, width=0)
