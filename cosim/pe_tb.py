"""cocotb test bench of the PE and PE array Verilog: clock, reset, stream drivers, monitor.

Both blocks have the same ports: a ``task`` stream, an ``operand`` stream and
a ``result`` stream (the array tags each result with its PE). The bench runs
*jobs* made on the host side (:mod:`cosim.pe_jobs`): packed task and operand
beats, the length of every output row per PE, the flow-control patterns and
the cycle limit. It imports neither Amaranth nor the golden model: it drives
bits, checks the handshakes and ``last`` flags, and returns the drained rows
for the host to compare.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from cosim.flow import moves, send
from hw.config import to_signed

__all__ = ["TB"]


class TB:
    COUNTERS = ("busy_cycles", "stall_cycles", "issued_macs", "effectual_macs", "saturated")

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        cocotb.start_soon(self._count_cycles())

    async def _count_cycles(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1

    async def reset(self):
        dut = self.dut
        # Drive every input, payloads included: an undriven input is X in
        # four-state simulators (Icarus) and would poison the handshakes.
        for port in ("task__valid", "operand__valid", "result__ready",
                     "task__payload", "operand__payload"):
            getattr(dut, port).value = 0
        dut.rst.value = 1
        for _ in range(2):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    async def _receive(self, count, pattern, job, max_cycles, start):
        dut = self.dut
        # Lanes of a result beat: (valid bit offset or None, value offset, width, last offset).
        lanes = job["result_lanes"]
        outputs = []
        while len(outputs) < count:
            dut.result__ready.value = next(pattern)
            await ReadOnly()
            if int(dut.result__valid.value) and int(dut.result__ready.value):
                bits = int(dut.result__payload.value)
                for pe, (valid_offset, offset, width, last_offset) in enumerate(lanes):
                    if valid_offset is not None and not (bits >> valid_offset) & 1:
                        continue
                    value = to_signed(bits >> offset, width)
                    outputs.append((pe, value, (bits >> last_offset) & 1))
            await RisingEdge(dut.clk)
            if self.cycle - start > max_cycles:
                raise AssertionError(f"timeout: {len(outputs)} of {count} outputs after "
                                     f"{max_cycles} cycles")
        dut.result__ready.value = 0
        return outputs

    async def run(self, run, job):
        """Run one job entry; returns outputs per row, cycles and the PE counters."""
        await self.reset()
        rng = random.Random(run.get("seed", 0))
        patterns = run.get("patterns", {})
        start = self.cycle
        cocotb.start_soon(send(self.dut, "task", run["tasks"], moves(patterns.get("task"), rng)))
        cocotb.start_soon(send(self.dut, "operand", run["elements"],
                               moves(patterns.get("element"), rng)))
        lengths_per_pe = run["row_lengths"]
        outputs = await self._receive(
            sum(map(sum, lengths_per_pe)), moves(patterns.get("result"), rng), job,
            run["max_cycles"], start)
        # The last output was accepted at the edge just passed.
        cycles = self.cycle - start
        await RisingEdge(self.dut.clk)
        await RisingEdge(self.dut.clk)
        counters = {name: int(getattr(self.dut, name).value) for name in self.COUNTERS
                    if hasattr(self.dut, name)}
        per_pe = []
        for pe, lengths in enumerate(lengths_per_pe):
            mine = [(value, last) for tag, value, last in outputs if tag == pe]
            if len(mine) != sum(lengths):
                raise AssertionError(f"{run['label']}: PE {pe} drained {len(mine)} outputs, "
                                     f"not {sum(lengths)}")
            per_row, position = [], 0
            for number, length in enumerate(lengths):
                chunk = mine[position:position + length]
                position += length
                lasts = [last for _, last in chunk]
                if lasts != [0] * (length - 1) + [1]:
                    raise AssertionError(f"{run['label']}: PE {pe} row {number} has last "
                                         f"flags {lasts}")
                per_row.append([value for value, _ in chunk])
            per_pe.append(per_row)
        limit = run.get("cycle_limit")
        if limit is not None and cycles > limit:
            raise AssertionError(f"{run['label']}: {cycles} cycles, more than the documented "
                                 f"bound {limit} (issue cycles + overhead)")
        return {"outputs": per_pe[0] if len(per_pe) == 1 else per_pe, "per_pe": per_pe,
                "cycles": cycles, **counters}
