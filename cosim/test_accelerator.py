"""cocotb test of the accelerator top level; the job comes from the host (cosim.accel_jobs)."""

import cocotb

from cosim.accel_tb import TB
from cosim.runner import load_job, save_result


@cocotb.test()
async def run_job(dut):
    job = load_job()
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
    save_result(results)
