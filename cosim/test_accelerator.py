"""cocotb test of the accelerator top level; the job comes from the host (cosim.accel_jobs)."""

import os
import pickle

import cocotb

from cosim.accel_tb import TB


@cocotb.test()
async def run_job(dut):
    with open(os.environ["COSIM_JOB"], "rb") as f:
        job = pickle.load(f)
    tb = TB(dut, job)
    await tb.reset()
    results = []
    for entry in job["entries"]:
        tb.set_patterns(entry.get("patterns", {}), entry.get("seed", 0))
        runs = []
        for number, run in enumerate(entry["runs"]):
            label = f"{entry['label']} run {number + 1}/{len(entry['runs'])}"
            dut._log.info("%s: %d commands, %d load beats", label, run["registers"]["COMMANDS"],
                          sum(len(b) for b in run["loads"].values()))
            runs.append(await tb.execute(run, label))
        results.append(runs)
    with open(os.environ["COSIM_RESULT"], "wb") as f:
        pickle.dump(results, f)
