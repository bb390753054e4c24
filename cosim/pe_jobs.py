"""Host side of the PE and array co-simulation: tasks -> packed jobs -> outputs.

A job entry holds the packed task and operand beats, the length of every
output row per PE (the bench checks the ``last`` flags), the flow-control
patterns and the cycle budget. The bench returns the drained rows; the host
compares them (:func:`check_rows` for rows with a golden result, the layer
driver for whole layers).
"""

from __future__ import annotations

from gen.compiler.tasks import Packer
from hw.layouts import array_result_layout
from hw.pe import overhead_bound

from . import runner

__all__ = ["make_run", "task_run", "run_rows", "array_run", "run_array", "check_rows"]


def _budget(config, tasks, outputs):
    """Cycles within which any correct PE or array has run ``tasks`` and drained
    ``outputs``, however the streams pause: every MAC one at a time, every beat, 20
    times over."""
    work = sum(len(task.elements) * config.max_kernel + task.beats(config.elements_per_beat) + 4
               for task in tasks)
    return 20 * (work + outputs) + 1000


def task_run(config, tasks, row_lengths, *, label, patterns=None, seed=0, issue_cycles=None,
             cycle_limit=None):
    """One PE job entry: ``tasks`` (:class:`~gen.compiler.tasks.RowTask` s) into output
    rows of ``row_lengths``; with ``cycle_limit`` the bench fails a run that takes more."""
    packer = Packer(config)
    return {
        "label": label,
        "tasks": packer.task_stream(tasks),
        "elements": [bits for task in tasks for bits in packer.beats(task)],
        "row_lengths": [list(row_lengths)],
        "patterns": patterns or {},
        "seed": seed,
        "issue_cycles": issue_cycles,
        "cycle_limit": cycle_limit,
        "max_cycles": _budget(config, tasks, sum(row_lengths)),
    }


def make_run(config, rows, *, label, patterns=None, seed=0, check_cycles=None):
    """One PE job entry of ``rows`` (:class:`~gen.compiler.tasks.OutputRow` s).

    With ``check_cycles`` (default: when no flow-control pattern is given)
    the test bench fails if the run takes more than its issue cycles plus
    :func:`hw.pe.overhead_bound`.
    """
    issue = sum(row.issue_cycles(config.lanes) for row in rows)
    if check_cycles is None:
        check_cycles = not patterns
    tasks = [task for row in rows for task in row.tasks]
    loads = len(Packer(config).task_stream(tasks)) - len(tasks)
    limit = issue + overhead_bound([row.timing(config) for row in rows], loads) \
        if check_cycles else None
    return task_run(config, tasks,
                    [row.out_len for row in rows], label=label, patterns=patterns, seed=seed,
                    issue_cycles=issue, cycle_limit=limit)


def run_rows(config, runs, *, simulator=None, name="pe"):
    """Run job entries (from :func:`task_run`) on the PE's Verilog; returns their results."""
    layout = Packer(config).result_layout
    job = {
        "result_lanes": [(None, layout["value"].offset, layout["value"].width,
                          layout["last"].offset)],
        "runs": runs,
    }
    return runner.run(config, "cosim.bench_pe", job, simulator=simulator, name=name)


def array_run(config, bundles, row_lengths, *, label, patterns=None, seed=0):
    """One job entry for the PE array: ``bundles`` of ``(tasks, present)`` (one
    :class:`~gen.compiler.tasks.RowTask` per PE, and whether each PE has a row of its
    own: :func:`gen.compiler.program.bundle_tasks`), into output rows of
    ``row_lengths[p]`` per PE ``p``."""
    packer = Packer(config)
    beats = []
    for tasks, _ in bundles:
        if len(tasks) != config.pes:
            raise ValueError(f"a bundle needs {config.pes} tasks, one per PE, not {len(tasks)}")
        beats.extend(packer.beats(tasks[0]))
    # The bundles, each after the loads of the stationary rows it needs.
    words = packer.bundle_stream(bundles)
    return {
        "label": label, "tasks": words, "elements": beats,
        "row_lengths": [list(lengths) for lengths in row_lengths],
        "patterns": patterns or {}, "seed": seed, "issue_cycles": None, "cycle_limit": None,
        "max_cycles": _budget(config, [tasks[0] for tasks, _ in bundles],
                              sum(map(sum, row_lengths))),
    }


def run_array(config, runs, *, simulator=None, name="array"):
    """Run job entries (from :func:`array_run`) on the PE array's Verilog."""
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
    return runner.run(config, "cosim.bench_pe", job, block="pe_array", simulator=simulator,
                      name=name)


def check_rows(label, rows, outputs):
    """AssertionError naming the first row of ``rows`` (:class:`~gen.compiler.tasks.OutputRow`
    s, golden) whose drained values in ``outputs`` (per row) differ."""
    if len(outputs) != len(rows):
        raise AssertionError(f"{label}: {len(outputs)} rows drained, {len(rows)} sent")
    for number, (row, got) in enumerate(zip(rows, outputs)):
        wanted = [int(v) for v in row.expected]
        if list(got) != wanted:
            first = next((i for i, (a, b) in enumerate(zip(got, wanted)) if a != b),
                         min(len(got), len(wanted)))
            raise AssertionError(f"{label}: row {number} differs first at output {first}: "
                                 f"RTL row {list(got)}, golden row {wanted}")

