"""cocotb test of the SparsePE or PEArray Verilog; the job comes from the host (cosim.pe_jobs)."""

import os
import pickle

import cocotb

from cosim.pe_tb import TB


@cocotb.test()
async def run_job(dut):
    with open(os.environ["COSIM_JOB"], "rb") as f:
        job = pickle.load(f)
    tb = TB(dut)
    results = []
    for run in job["runs"]:
        dut._log.info("run %s: %d tasks, %d operand beats, %d rows", run["label"],
                      len(run["tasks"]), len(run["elements"]),
                      sum(len(rows) for rows in run["expected"]))
        results.append(await tb.run(run, job))
    with open(os.environ["COSIM_RESULT"], "wb") as f:
        pickle.dump(results, f)
