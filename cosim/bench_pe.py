"""cocotb test of the SparsePE or PEArray Verilog; the job comes from the host (cosim.pe_jobs)."""

import cocotb

from cosim.pe_tb import TB
from cosim.runner import load_job, save_result


@cocotb.test()
async def run_job(dut):
    job = load_job()
    tb = TB(dut)
    results = []
    for run in job["runs"]:
        dut._log.info("run %s: %d tasks, %d operand beats, %d rows", run["label"],
                      len(run["tasks"]), len(run["elements"]),
                      sum(map(len, run["row_lengths"])))
        results.append(await tb.run(run, job))
    save_result(results)
