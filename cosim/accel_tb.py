"""cocotb test bench of the accelerator top level, driven through its AXI ports.

The bench runs *jobs* made on the host side (:mod:`cosim.accel_jobs`): for
every run of a layer, the buffer packets, the descriptor registers and the
number of outputs per PE. It talks to the design only as an SoC would:
cocotbext-axi's AXI4-Lite master for the registers, an AXI4-Stream source
for the loads and a sink for the outputs, each with an optional pause
pattern (random backpressure and idle cycles). It imports neither Amaranth
nor the golden model: it moves bits and returns the outputs, which the host
compares (:func:`cosim.layer.run_layer`).
"""

import logging
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

from cosim.flow import pauses
from hw.config import to_signed

__all__ = ["TB", "run_entries"]


class TB:
    CLOCK_NS = 10

    def __init__(self, dut, job):
        self.dut = dut
        self.job = job
        cocotb.start_soon(Clock(dut.clk, self.CLOCK_NS, unit="ns").start())
        for prefix in ("s_axil_", "s_axis_", "m_axis_"):
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_"), dut.clk,
                                      dut.rst, byte_lanes=1)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_"), dut.clk, dut.rst,
                                  byte_lanes=1)

    async def reset(self):
        self.dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def set_patterns(self, patterns, seed):
        """Pause patterns (:mod:`cosim.flow`): ``s_axis`` (idle cycles of the
        loads), ``m_axis`` (backpressure on the outputs) and ``s_axil`` (each
        channel of the register master: idle requests, backpressure on
        responses)."""
        rng = random.Random(seed)
        streams = [(self.source, "s_axis"), (self.sink, "m_axis")] + [
            (channel, "s_axil") for channel in (
                self.axil.write_if.aw_channel, self.axil.write_if.w_channel,
                self.axil.write_if.b_channel, self.axil.read_if.ar_channel,
                self.axil.read_if.r_channel)]
        for model, name in streams:
            generator = pauses(patterns.get(name), rng)
            model.set_pause_generator(generator)
            if generator is None:
                # cocotbext-axi leaves a stream paused if its old generator
                # was in a pause when it was replaced.
                model.pause = False

    async def write(self, name, value):
        await self.axil.write_dword(4 * self.job["registers"][name], value)

    async def read(self, name):
        return await self.axil.read_dword(4 * self.job["registers"][name])

    async def read_counter(self, name):
        low = await self.read(f"{name.upper()}_LO")
        high = await self.read(f"{name.upper()}_HI")
        return low | high << 32

    async def check_errors(self, label):
        errors = await self.read("ERROR")
        if errors:
            names = [name for name, bit in self.job["error_bits"].items() if errors >> bit & 1]
            raise AssertionError(f"{label}: ERROR register {errors:#x} ({', '.join(names)})")

    async def execute(self, run, label):
        """Load, start, collect the outputs and the counters of one run."""
        destinations = self.job["destinations"]
        for name, beats in run["loads"].items():
            await self.source.send(AxiStreamFrame(beats, tdest=destinations[name]))
        await self.source.wait()
        for name, value in run["registers"].items():
            await self.write(name, value)
        await self.check_errors(f"{label} (loads)")
        await self.write("IRQ_ENABLE", 1)
        await self.write("CONTROL", 1)
        frame = await self.sink.recv()
        width = self.job["stream_width"]
        values = [to_signed(v, width) for v in frame.tdata]
        for _ in range(4):
            if self.dut.irq.value:
                break
            await RisingEdge(self.dut.clk)
        assert int(self.dut.irq.value) == 1, f"{label}: no interrupt after the readout"
        status = await self.read("STATUS")
        bits = self.job["status_bits"]
        assert status >> bits["DONE"] & 1, f"{label}: STATUS {status:#x} without DONE"
        await self.check_errors(label)
        await self.write("STATUS", 1 << bits["DONE"])
        assert int(self.dut.irq.value) == 0, f"{label}: irq still set after clearing DONE"
        counters = {name: await self.read_counter(name) for name in self.job["counters"]}
        counters["saturated"] = status >> bits["SATURATED"] & 1
        counters["outputs_per_pe"] = await self.read("OUTPUTS")

        per_pe, pes = run["outputs_per_pe"], self.job["pes"]
        if len(values) != per_pe * pes:
            raise AssertionError(f"{label}: {len(values)} outputs, expected {per_pe * pes}")
        return {"outputs": [values[u * per_pe:(u + 1) * per_pe] for u in range(pes)],
                **counters}


async def run_entries(tb, entries):
    """Run job entries (:func:`cosim.accel_jobs.make_entry`): per entry, per run, the
    outputs and counters."""
    results = []
    for entry in entries:
        tb.set_patterns(entry.get("patterns", {}), entry.get("seed", 0))
        runs = []
        for number, run in enumerate(entry["runs"]):
            label = f"{entry['label']} run {number + 1}/{len(entry['runs'])}"
            tb.dut._log.info("%s: %d commands, %d load beats", label,
                             run["registers"]["COMMANDS"],
                             sum(len(b) for b in run["loads"].values()))
            try:
                # A hung design (a lost beat, a stuck handshake) fails here, not never.
                runs.append(await with_timeout(tb.execute(run, label),
                                               tb.CLOCK_NS * run["timeout_cycles"], "ns"))
            except SimTimeoutError:
                raise AssertionError(f"{label}: not done {run['timeout_cycles']} cycles after "
                                     f"its loads began: the design hangs") from None
        results.append(runs)
    return results
