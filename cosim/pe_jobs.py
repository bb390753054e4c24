"""Host side of the PE and array co-simulation: output rows -> packed jobs -> results."""

from __future__ import annotations

from gen.primitives import Packer
from hw.pe import overhead_bound

from . import runner

__all__ = ["make_run", "run_rows", "make_array_run", "run_array"]


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
        "expected": [[[int(v) for v in row.expected] for row in rows]],
        "patterns": patterns or {},
        "seed": seed,
        "issue_cycles": issue,
        "cycle_limit": issue + bound if check_cycles else None,
        # Generous: every beat may wait for every pattern, plus the drains.
        "max_cycles": 20 * (issue + bound + len(tasks) + sum(row.out_len for row in rows)) + 1000,
    }


def run_rows(config, runs, *, simulator=None, name="pe"):
    """Run job entries (from :func:`make_run`) on the PE's Verilog; returns their results."""
    layout = Packer(config).result_layout
    job = {
        "result_lanes": [(None, layout["value"].offset, layout["value"].width,
                          layout["last"].offset)],
        "runs": runs,
    }
    return runner.run(config, "cosim.test_pe", job, simulator=simulator, name=name)


def make_array_run(config, groups, *, label, patterns=None, seed=0, present=None):
    """One job entry for the PE array: ``groups`` of aligned rows, one per PE.

    ``groups`` is a list of lists: each inner list holds one
    :class:`~gen.primitives.OutputRow` per PE, rows that share their streamed
    rows (from :meth:`gen.primitives.LayerRows.groups`). ``present[g][p]``
    says whether PE ``p`` has a row of its own in group ``g`` (default: yes).
    """
    packer = Packer(config)
    bundles, beats = [], []
    for number, rows in enumerate(groups):
        if len(rows) != config.pes:
            raise ValueError(f"a group needs {config.pes} rows, one per PE, not {len(rows)}")
        for tasks in zip(*(row.tasks for row in rows)):
            bundles.append(packer.bundle(tasks, present[number] if present else None))
            beats.extend(packer.beats(tasks[0]))
    issue = max(sum(rows[pe].issue_cycles(config.lanes) for rows in groups)
                for pe in range(config.pes))
    outputs = sum(row.out_len for rows in groups for row in rows)
    return {
        "label": label, "tasks": bundles, "elements": beats,
        "expected": [[[int(v) for v in rows[pe].expected] for rows in groups]
                     for pe in range(config.pes)],
        "patterns": patterns or {}, "seed": seed,
        "issue_cycles": issue, "cycle_limit": None,
        "max_cycles": 20 * (sum(r.issue_cycles(config.lanes) for g in groups for r in g)
                            + len(bundles) + outputs) + 1000,
    }


def run_array(config, runs, *, simulator=None, name="array"):
    """Run job entries (from :func:`make_array_run`) on the PE array's Verilog."""
    from hw.layouts import array_result_layout

    lanes = array_result_layout(config)["lanes"]
    lane = lanes.shape.elem_shape
    width = lane.size
    job = {
        "result_lanes": [(lanes.offset + pe * width + lane["valid"].offset,
                          lanes.offset + pe * width + lane["value"].offset,
                          lane["value"].width,
                          lanes.offset + pe * width + lane["last"].offset)
                         for pe in range(config.pes)],
        "runs": runs,
    }
    return runner.run(config, "cosim.test_pe", job, block="pe_array", simulator=simulator,
                      name=name)
