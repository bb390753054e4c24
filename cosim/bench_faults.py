"""cocotb fault tests of the accelerator top level: every error provoked, then a clean run.

The job (from ``tests/test_cosim_faults.py``) carries the register map, one
normal run (its outputs from the golden model) and a run with more outputs
than a PE's output bank holds. Each scenario provokes one fault on purpose
(bus errors, a bad descriptor, an overlong packet, START or descriptor
writes while busy, loads during a run, an output bank overflow, a reset in
the middle of a run or of its readout) and checks that the fault shows in
STATUS and ERROR, or on the bus, and nothing else; then the normal run goes
again and must give the golden outputs with the very counters (cycles,
MACs) of the first one: nothing was silently corrupted. The test fails on
the first difference; what it saw goes back to the host.
"""

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiResp, AxiStreamFrame

from cosim.accel_tb import TB
from cosim.runner import load_job, save_result
from hw.config import to_signed


class FaultBench(TB):
    def __init__(self, dut, job):
        super().__init__(dut, job)
        self.errors, self.status_bits = job["error_bits"], job["status_bits"]
        self.seen = {}
        self.reference = None

    async def load(self, run):
        for name, beats in run["loads"].items():
            await self.source.send(AxiStreamFrame(beats, tdest=self.job["destinations"][name]))
        await self.source.wait()

    async def start(self, run):
        """Load ``run`` and start it; returns once START is written."""
        await self.load(run)
        for name, value in run["registers"].items():
            await self.write(name, value)
        await self.write("IRQ_ENABLE", 1)
        await self.write("CONTROL", 1)

    async def outputs(self):
        frame = await self.sink.recv()
        width = self.job["stream_width"]
        return [to_signed(v, width) for v in frame.tdata]

    async def expect_errors(self, names, label):
        """ERROR holds exactly ``names`` and STATUS.ERROR says so; then clear them."""
        wanted = sum(1 << self.errors[name] for name in names)
        value = await self.read("ERROR")
        assert value == wanted, f"{label}: ERROR {value:#x}, expected {wanted:#x} ({names})"
        status = await self.read("STATUS")
        assert bool(status >> self.status_bits["ERROR"] & 1) == bool(names), \
            f"{label}: STATUS {status:#x}"
        if names:
            await self.write("ERROR", value)     # write 1 to clear
            assert await self.read("ERROR") == 0, f"{label}: ERROR not cleared"
        self.seen[label] = value

    async def expect_idle(self, label, cycles=64):
        """No run, no output, no DONE for ``cycles`` cycles."""
        await ClockCycles(self.dut.clk, cycles)
        status = await self.read("STATUS")
        for bit in ("RUNNING", "READOUT", "DONE"):
            assert not status >> self.status_bits[bit] & 1, f"{label}: STATUS {status:#x}"
        assert self.sink.empty(), f"{label}: outputs appeared"

    async def clean_run(self, label):
        """The normal run, bit-exact, with the counters of the first one."""
        result = await self.execute(self.job["run"], f"{label}: the clean run after it")
        outputs = [value for values in result["outputs"] for value in values]
        assert outputs == self.job["expected"], f"{label}: the clean run's outputs differ"
        counters = {k: v for k, v in result.items() if k != "outputs"}
        if self.reference is None:
            self.reference = counters
        assert counters == self.reference, \
            f"{label}: the clean run counted {counters}, the first one {self.reference}"
        self.seen.setdefault("clean runs", 0)
        self.seen["clean runs"] += 1


@cocotb.test()
async def faults(dut):
    job = load_job()
    tb = FaultBench(dut, job)
    await tb.reset()
    regs = job["registers"]
    run = job["run"]
    expected = job["expected"]
    await tb.clean_run("reference")

    # -- the bus: SLVERR for unmapped and read-only addresses and partial writes,
    # and nothing written.
    info = await tb.read("INFO")
    assert info == job["info"], f"INFO {info:#x}, expected {job['info']:#x}"
    unmapped = 4 * job["unmapped"]
    assert (await tb.axil.read(unmapped, 4)).resp == AxiResp.SLVERR, "unmapped read"
    assert (await tb.axil.write(unmapped, b"\1\0\0\0")).resp == AxiResp.SLVERR, "unmapped write"
    response = await tb.axil.write(4 * regs["INFO"], b"\0\0\0\0")
    assert response.resp == AxiResp.SLVERR, "write to a read-only register"
    assert await tb.read("INFO") == info, "INFO changed by a write"
    await tb.write("STRIDE", 1)
    response = await tb.axil.write(4 * regs["STRIDE"] + 1, b"\x02")
    assert response.resp == AxiResp.SLVERR, f"partial write: {response.resp!r}"
    assert await tb.read("STRIDE") == 1, "a partial write changed STRIDE"
    await tb.expect_errors([], "bus errors")
    tb.seen["bus errors"] = "SLVERR"
    await tb.clean_run("bus errors")

    # -- descriptor fields out of range: START refused.
    for name, value in run["registers"].items():
        await tb.write(name, value)
    for name, bad in (("COMMANDS", 0), ("COMMANDS", job["program_depth"] + 1),
                      ("STRIDE", 0), ("STRIDE", job["max_stride"] + 1),
                      ("KERNEL", 0), ("KERNEL", job["max_kernel"] + 1), ("PHASE", 3)):
        await tb.write(name, bad)
        await tb.write("CONTROL", 1)
        await tb.expect_idle(f"{name} = {bad}")
        await tb.expect_errors(["BAD_DESCRIPTOR"], f"{name} = {bad}")
        await tb.write(name, run["registers"][name])
    await tb.clean_run("bad descriptors")

    # -- a packet longer than its buffer, for each buffer.
    for name, beats in job["overlong"].items():
        frame = AxiStreamFrame([(0x5A5A5A5A5A5A5A5A >> (n % 8)) for n in range(beats)],
                               tdest=job["destinations"][name])
        await tb.source.send(frame)
        await tb.source.wait()
        await tb.expect_errors(["LOAD_OVERFLOW"], f"{name} packet too long")
        await tb.clean_run(f"{name} packet too long")

    # -- START and descriptor writes during a run: refused, the run completes.
    await tb.start(run)
    await tb.write("CONTROL", 1)
    await tb.write("STRIDE", run["registers"]["STRIDE"] + 1)
    assert await tb.outputs() == expected, "START during a run: outputs differ"
    assert await tb.read("STRIDE") == run["registers"]["STRIDE"], "STRIDE written while busy"
    await tb.expect_errors(["BUSY"], "START and STRIDE while busy")
    await tb.write("STATUS", 1 << tb.status_bits["DONE"])
    await tb.clean_run("START while busy")

    # -- loads during a run: dropped, and the buffers keep the run's data.
    await tb.start(run)
    status = await tb.read("STATUS")
    assert status >> tb.status_bits["RUNNING"] & 1, f"not running after START: {status:#x}"
    for name in run["loads"]:
        await tb.source.send(AxiStreamFrame([0] * 4, tdest=job["destinations"][name]))
    await tb.source.wait()
    assert await tb.outputs() == expected, "loads during a run: outputs differ"
    await tb.expect_errors(["LOAD_WHILE_BUSY"], "loads during a run")
    await tb.write("STATUS", 1 << tb.status_bits["DONE"])
    # The same buffers again, not reloaded: the dropped beats wrote nothing.
    await tb.write("CONTROL", 1)
    assert await tb.outputs() == expected, "a run of the buffers after the dropped loads differs"
    await tb.expect_errors([], "rerun without reloading")
    await tb.write("STATUS", 1 << tb.status_bits["DONE"])
    await tb.clean_run("loads during a run")

    # -- more outputs than a bank holds: flagged, the outputs that fit are right.
    overflow = job["overflow_run"]
    depth = job["output_depth"]
    await tb.start(overflow)
    values = await tb.outputs()
    assert len(values) == depth * len(job["overflow_expected"]), \
        f"output overflow: {len(values)} outputs read back"
    for unit, wanted in enumerate(job["overflow_expected"]):
        got = values[unit * depth:(unit + 1) * depth]
        assert got == wanted[:depth], f"output overflow: PE {unit}'s kept outputs differ"
    assert await tb.read("OUTPUTS") == depth, "OUTPUTS after an overflow"
    status = await tb.read("STATUS")
    assert status >> tb.status_bits["DONE"] & 1, f"no DONE after an overflow: {status:#x}"
    await tb.expect_errors(["OUTPUT_OVERFLOW"], "output bank overflow")
    await tb.write("STATUS", 1 << tb.status_bits["DONE"])
    await tb.clean_run("output bank overflow")

    # -- a reset in the middle of a run, then in the middle of its readout.
    await tb.start(run)
    await ClockCycles(dut.clk, 20)
    status = await tb.read("STATUS")
    assert status >> tb.status_bits["RUNNING"] & 1, f"not running: {status:#x}"
    await tb.reset()
    assert int(dut.irq.value) == 0
    await tb.expect_idle("reset during a run")
    await tb.expect_errors([], "reset during a run")
    await tb.clean_run("reset during a run")

    tb.sink.pause = True             # hold the readout
    await tb.start(run)
    for _ in range(4000):
        await RisingEdge(dut.clk)
        if int(dut.m_axis__tvalid.value):
            break
    await ClockCycles(dut.clk, 4)
    status = await tb.read("STATUS")
    assert status >> tb.status_bits["READOUT"] & 1, f"not in readout: {status:#x}"
    await tb.reset()
    tb.sink.clear()
    tb.sink.pause = False
    await tb.expect_idle("reset during the readout")
    await tb.expect_errors([], "reset during the readout")
    await tb.clean_run("reset during the readout")

    save_result(tb.seen)
