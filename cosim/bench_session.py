"""cocotb test of the accelerator top level that serves a host session (cosim.runner.Session).

The first message holds the register map and the other constants a job
carries (:func:`cosim.accel_jobs.job_constants`); every further message is
a list of job entries, answered like :mod:`cosim.bench_accelerator` answers
one job.
"""

import cocotb

from cosim.accel_tb import TB, run_entries
from cosim.runner import serve


@cocotb.test()
async def serve_jobs(dut):
    receive, send = serve()
    tb = TB(dut, receive())
    await tb.reset()
    while (entries := receive()) is not None:
        send(await run_entries(tb, entries))
