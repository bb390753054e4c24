"""cocotb test of the accelerator's register interface: errors, responses, interrupts.

The job (from ``tests/test_cosim_accelerator.py``) carries the register map
and one valid run; the test fails on the first register behaviour that
differs from the map documented in :mod:`hw.top`.
"""

import cocotb
from cocotb.triggers import RisingEdge
from cocotbext.axi import AxiResp, AxiStreamFrame

from cosim.accel_tb import TB
from cosim.runner import load_job, save_result


@cocotb.test()
async def registers(dut):
    job = load_job()
    tb = TB(dut, job)
    await tb.reset()
    errors, status_bits = job["error_bits"], job["status_bits"]
    regs = job["registers"]
    seen = {}

    info = await tb.read("INFO")
    assert info == job["info"], f"INFO {info:#x}, expected {job['info']:#x}"
    seen["info"] = info

    # An address outside the map answers SLVERR; so does a partial write.
    response = await tb.axil.read(4 * 60, 4)
    assert response.resp == AxiResp.SLVERR, f"read of an unmapped register: {response.resp!r}"
    response = await tb.axil.write(4 * regs["STRIDE"] + 1, b"\x01")
    assert response.resp == AxiResp.SLVERR, f"partial write: {response.resp!r}"

    async def expect_error(name, label):
        value = await tb.read("ERROR")
        assert value == 1 << errors[name], f"{label}: ERROR {value:#x}, expected {name}"
        status = await tb.read("STATUS")
        assert status >> status_bits["ERROR"] & 1, f"{label}: STATUS.ERROR not set"
        assert not status >> status_bits["DONE"] & 1, f"{label}: DONE set"
        await tb.write("ERROR", value)              # write 1 to clear
        assert await tb.read("ERROR") == 0, f"{label}: ERROR not cleared"
        seen[label] = value

    # Descriptor fields out of range: START is refused.
    run = job["run"]
    for name, value in run["registers"].items():
        await tb.write(name, value)
    for name, bad in (("COMMANDS", 0), ("COMMANDS", job["program_depth"] + 1),
                      ("STRIDE", 0), ("STRIDE", job["max_stride"] + 1),
                      ("KERNEL", job["max_kernel"] + 1), ("PHASE", 3)):
        await tb.write(name, bad)
        await tb.write("CONTROL", 1)
        await expect_error("BAD_DESCRIPTOR", f"{name} = {bad}")
        await tb.write(name, run["registers"][name])

    # A packet longer than its buffer.
    beats = [0] * (job["program_depth"] * job["program_beats_per_entry"] + 1)
    await tb.source.send(AxiStreamFrame(beats, tdest=job["destinations"]["program"]))
    await tb.source.wait()
    await expect_error("LOAD_OVERFLOW", "program packet too long")

    # START and descriptor writes during a run are refused; the run completes.
    for name, beats in run["loads"].items():
        await tb.source.send(AxiStreamFrame(beats, tdest=job["destinations"][name]))
    await tb.source.wait()
    await tb.write("IRQ_ENABLE", 1)
    await tb.write("CONTROL", 1)
    await tb.write("CONTROL", 1)
    await tb.write("STRIDE", 1)
    assert await tb.read("ERROR") == 1 << errors["BUSY"], "START during a run not flagged"
    await tb.write("ERROR", 1 << errors["BUSY"])
    frame = await tb.sink.recv()
    width = job["stream_width"]
    values = [v - (1 << width) if v >> (width - 1) else v for v in frame.tdata]
    expected = [value for outputs in run["expected"] for value in outputs]
    assert values == expected, "outputs of the run differ from the golden model"
    for _ in range(4):
        await RisingEdge(dut.clk)
    assert int(dut.irq.value) == 1, "no interrupt after the run"
    await tb.write("STATUS", 1 << status_bits["DONE"])
    assert int(dut.irq.value) == 0, "interrupt not cleared with DONE"
    assert await tb.read("ERROR") == 0
    seen["outputs"] = len(values)

    save_result(seen)
