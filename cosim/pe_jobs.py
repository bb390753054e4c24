"""Host side of the PE co-simulation: output rows -> packed jobs -> checked results."""

from __future__ import annotations

from gen.primitives import Packer
from hw.pe import overhead_bound

from . import runner

__all__ = ["make_run", "run_rows"]


def make_run(config, rows, *, label, patterns=None, seed=0, check_cycles=None):
    """One job entry: the packed beats of ``rows`` and what to expect.

    With ``check_cycles`` (default: when no flow-control pattern is given)
    the test bench fails if the run takes more than its issue cycles plus
    :func:`hw.pe.overhead_bound`.
    """
    packer = Packer(config)
    tasks = [task for row in rows for task in row.tasks]
    issue = sum(row.issue_cycles(config.lanes) for row in rows)
    bound = overhead_bound([row.timing(config) for row in rows])
    if check_cycles is None:
        check_cycles = not patterns
    return {
        "label": label,
        "tasks": [packer.task(task) for task in tasks],
        "elements": [bits for task in tasks for bits in packer.beats(task)],
        "rows": [[int(v) for v in row.expected] for row in rows],
        "patterns": patterns or {},
        "seed": seed,
        "issue_cycles": issue,
        "cycle_limit": issue + bound if check_cycles else None,
        # Generous: every beat may wait for every pattern, plus the drains.
        "max_cycles": 20 * (issue + bound + len(tasks) + sum(row.out_len for row in rows)) + 1000,
    }


def run_rows(config, runs, *, simulator=None, name="pe"):
    """Run job entries (from :func:`make_run`) on the PE's Verilog; returns their results."""
    packer = Packer(config)
    value_field = packer.result_layout["value"]
    job = {
        "result_value": (value_field.offset, value_field.width),
        "result_last": packer.result_layout["last"].offset,
        "runs": runs,
    }
    return runner.run(config, "cosim.test_pe", job, simulator=simulator, name=name)
