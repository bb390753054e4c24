"""cocotb test of the accelerator top level; the job comes from the host (cosim.accel_jobs)."""

import cocotb

from cosim.accel_tb import TB, run_entries
from cosim.runner import load_job, save_result


@cocotb.test()
async def run_job(dut):
    job = load_job()
    tb = TB(dut, job)
    await tb.reset()
    save_result(await run_entries(tb, job["entries"]))
