"""Drive the accelerator top level in amaranth.sim, as the host does, with every
stream and queue inside it watched (:class:`streams.ProtocolMonitor`)."""

from amaranth.sim import Simulator

from hw.config import to_signed
from hw.top import COUNTERS, DESTINATIONS, REGISTERS, Accelerator

from streams import ProtocolMonitor


def run_accelerator_sim(config, runs, *, max_cycles=100_000, on_cycle=None):
    """Load, start and read back each :class:`gen.compiler.program.Run` of ``runs`` on a fresh top level.

    Returns ``(results, monitor)``: per run the outputs (a list per PE), the
    counters read over AXI4-Lite and the compute cycles the bench counted
    (from START to the first output). ``on_cycle(ctx, cycle)`` is called
    in every cycle of a run's compute and readout (for debugging).
    """
    dut = Accelerator(config)
    monitor = ProtocolMonitor(dut)
    axil, load, out = dut.s_axil, dut.s_axis, dut.m_axis
    width = config.stream_width
    results = []

    async def write(ctx, name, value):
        ctx.set(axil.awaddr, 4 * REGISTERS[name])
        ctx.set(axil.wdata, value)
        ctx.set(axil.wstrb, 0b1111)
        ctx.set(axil.awvalid, 1)
        ctx.set(axil.wvalid, 1)
        await ctx.tick().until(axil.awready)
        ctx.set(axil.awvalid, 0)
        ctx.set(axil.wvalid, 0)
        ctx.set(axil.bready, 1)
        await ctx.tick().until(axil.bvalid)
        ctx.set(axil.bready, 0)

    async def read(ctx, name):
        ctx.set(axil.araddr, 4 * REGISTERS[name])
        ctx.set(axil.arvalid, 1)
        await ctx.tick().until(axil.arready)
        ctx.set(axil.arvalid, 0)
        ctx.set(axil.rready, 1)
        (data,) = await ctx.tick().sample(axil.rdata).until(axil.rvalid)
        ctx.set(axil.rready, 0)
        return data

    async def bench(ctx):
        for run in runs:
            for name, beats in run.loads.items():
                ctx.set(load.tdest, DESTINATIONS[name])
                for number, beat in enumerate(beats):
                    ctx.set(load.tdata, beat)
                    ctx.set(load.tlast, number == len(beats) - 1)
                    ctx.set(load.tvalid, 1)
                    await ctx.tick()
                ctx.set(load.tvalid, 0)
            for name, value in run.registers.items():
                await write(ctx, name, value)
            await write(ctx, "CONTROL", 1)
            ctx.set(out.tready, 1)
            values, cycle, first_output = [], 0, None
            while True:
                if on_cycle is not None:
                    on_cycle(ctx, cycle)
                _, _, valid, data, last = await ctx.tick().sample(out.tvalid, out.tdata,
                                                                  out.tlast)
                cycle += 1
                if valid:
                    first_output = cycle if first_output is None else first_output
                    values.append(to_signed(data, width))
                    if last:
                        break
                if cycle > max_cycles:
                    raise AssertionError(f"no complete readout in {max_cycles} cycles")
            ctx.set(out.tready, 0)
            counters = {}
            for name in COUNTERS:
                low = await read(ctx, f"{name.upper()}_LO")
                high = await read(ctx, f"{name.upper()}_HI")
                counters[name] = low | high << 32
            await write(ctx, "STATUS", 1 << 2)
            per_pe = len(values) // config.pes
            results.append({"outputs": [values[p * per_pe:(p + 1) * per_pe]
                                        for p in range(config.pes)],
                            **counters})

    sim = Simulator(monitor.fragment)
    sim.add_clock(1e-8)
    sim.add_testbench(monitor.process, background=True)
    sim.add_testbench(bench)
    sim.run()
    monitor.finish()
    return results, monitor
