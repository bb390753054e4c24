"""Host driver: run one convolution layer phase on the emitted RTL.

The stable contract of ``python -m cosim layer`` and of :func:`run_layer`:
integer operands in, the exact result (docs/SPEC.md) (raw accumulator
values, ``int64``) and statistics out. Every input is checked here, before
any hardware is built, and a problem is reported as one ``ValueError``
naming it.

The back end is the accelerator's top level (:class:`~hw.top.Accelerator`),
co-simulated and driven over its AXI ports: the layer's schedule
(:func:`gen.compiler.schedule.schedule_layer`: output rows that share their
streamed rows run one per PE, rows longer than the preset's ``max_row``
tiled, groups packed into load-compute-readout runs) is packed into a
program (:func:`gen.compiler.program.pack_program`). The PE array fed
directly (``backend="array"``) and one PE alone (``backend="pe"``) are the
other choices. The driver checks: it computes the golden result and compares
what the RTL drained, bit for bit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from gen.compiler.layer import STATS_KEYS, LayerSpec, check_layer, count_macs, layer_stats
from gen.compiler.program import bundle_tasks, pack_program
from gen.compiler.schedule import schedule_layer
from gen.model.cycles import predict
from pruning import golden
from pruning.fixedpoint import saturate

from .pe_jobs import array_run, run_array, run_rows, task_run

__all__ = ["LayerSpec", "check_layer", "run_layer", "STATS_KEYS", "BACKENDS", "waves_path",
           "add_drained", "add_drains"]


# Output rows (tiles of layer rows) per simulator invocation, over all PEs:
# bounds memory and gives progress output.
_ROWS_PER_CHUNK = 512
_COMMANDS_PER_CALL = 16384


BACKENDS = ("accelerator", "array", "pe")


def waves_path(base, *labels):
    """The waveform file of one of several simulations a command runs: ``base``
    with the labels before its suffix (``w.fst`` -> ``w-3-dense.fst``); None
    when no waveforms are asked for."""
    if base is None:
        return None
    base = Path(base)
    tag = "-".join(str(label).replace(" ", "_").replace("/", "_") for label in labels)
    return base.with_name(f"{base.stem}-{tag}{base.suffix or '.fst'}")


def add_drained(config, mapping, output, keys, columns, per_pe):
    """Add the rows the PEs drained (``per_pe[p]``: PE ``p``'s values of the rows
    ``keys[p]``, ``columns``) into the layer's ``output``; returns whether a sum clipped.

    Added, not assigned: the pieces of a split row add up here, and they add
    as the PE's accumulator would have added them, saturating at
    ``acc_width``; a clipped sum sets the layer's saturation flag as the
    PE's sticky flag would have. PEs without a row of their own (key None)
    made zeros, which are dropped.
    """
    clipped = False
    for key, values in zip(keys, per_pe):
        if key is None:
            continue
        view = mapping.output_view(output, key, columns)
        total, clipped_here = saturate(view + np.asarray(values, dtype=np.int64),
                                       config.acc_width)
        view[...] = total
        clipped |= bool(clipped_here)
    return clipped


def add_drains(config, mapping, output, drains, per_pe):
    """:func:`add_drained` of every row a run drained: ``drains`` in drain order (the
    program's :class:`~gen.compiler.program.Drain` s, or the schedule's groups), and
    ``per_pe[p]`` all of PE ``p``'s outputs one after the other; returns whether a sum
    clipped."""
    clipped, position = False, 0
    for drain in drains:
        stop = position + drain.out_len
        clipped |= add_drained(config, mapping, output, drain.keys, drain.columns,
                               [values[position:stop] for values in per_pe])
        position = stop
    return clipped


def _run_accelerator(config, spec, mapping, runs, *, simulator, progress, totals, output,
                     axi_patterns, session, waves):
    """Runs of the top level (buffers, controller, AXI) -> output and counters."""
    from .accel_jobs import accelerator_session

    if not runs:
        # No row with work (sparse mode, all-zero operands): nothing to run.
        if waves is not None and progress:
            print(f"  no run to simulate: no waveform written to {waves}", file=sys.stderr,
                  flush=True)
        return
    if waves is None:
        _accelerator_calls(config, spec, mapping, runs, simulator=simulator,
                           progress=progress, totals=totals, output=output,
                           axi_patterns=axi_patterns, session=session)
        return
    # One simulator for every run of the layer: one waveform.
    with accelerator_session(config, simulator=simulator, name=f"waves-{spec.phase}",
                             waves=waves) as traced:
        _accelerator_calls(config, spec, mapping, runs, simulator=simulator,
                           progress=progress, totals=totals, output=output,
                           axi_patterns=axi_patterns, session=traced)
    if progress:
        print(f"  waveform: {waves}", file=sys.stderr, flush=True)


def _accelerator_calls(config, spec, mapping, runs, *, simulator, progress, totals, output,
                       axi_patterns, session):
    from .accel_jobs import make_entry, run_accelerator

    started = time.perf_counter()
    # Runs per simulator invocation, up to _COMMANDS_PER_CALL row commands:
    # bounds the job's size and gives progress output.
    calls, commands = [[]], 0
    for run in runs:
        if calls[-1] and commands + run.commands > _COMMANDS_PER_CALL:
            calls.append([])
            commands = 0
        calls[-1].append(run)
        commands += run.commands
    done_runs = 0
    for chunk in calls:
        label = f"{spec.phase} runs {done_runs + 1}..{done_runs + len(chunk)}"
        entry = make_entry(config, chunk, label=label, patterns=axi_patterns, seed=done_runs)
        (results,) = run_accelerator(config, [entry], simulator=simulator,
                                     name=f"layer-{spec.phase}", session=session)
        for run, result in zip(chunk, results):
            if add_drains(config, mapping, output, run.drains, result["outputs"]):
                totals["saturated"] = 1
            for name in ("cycles", "busy_cycles", "stall_cycles", "issued_macs",
                         "effectual_macs"):
                totals[name] += result[name]
            totals["saturated"] |= result["saturated"]
            totals["load_beats"] += run.load_beats
            totals["output_beats"] += run.outputs_per_pe * config.pes
        done_runs += len(chunk)
        totals["runs"] = done_runs
        if progress:
            print(f"  {done_runs}/{len(runs)} runs of the accelerator, {totals['cycles']} "
                  f"cycles ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def _run_groups(config, spec, schedule, *, backend, simulator, progress, totals, output):
    """The schedule's groups -> the PE array (or one PE) fed directly -> output and counters."""
    started = time.perf_counter()
    groups = schedule.groups
    chunk_size = max(1, _ROWS_PER_CHUNK // schedule.pes)
    for first in range(0, len(groups), chunk_size):
        chunk = groups[first:first + chunk_size]
        bundles = [bundle for group in chunk for bundle in bundle_tasks(schedule, group)]
        label = f"{spec.phase} groups {first}..{first + len(chunk) - 1}"
        lengths = [[group.out_len for group in chunk]] * schedule.pes
        if backend == "array":
            (result,) = run_array(config, [array_run(config, bundles, lengths, label=label)],
                                  simulator=simulator, name=f"layer-{spec.phase}")
        else:
            tasks = [tasks[0] for tasks, _ in bundles]
            (result,) = run_rows(config, [task_run(config, tasks, lengths[0], label=label)],
                                 simulator=simulator, name=f"layer-{spec.phase}")
        for number, group in enumerate(chunk):
            if add_drained(config, schedule.mapping, output, group.keys, group.columns,
                           [rows[number] for rows in result["per_pe"]]):
                totals["saturated"] = 1
        for name in ("cycles", "busy_cycles", "issued_macs", "effectual_macs"):
            totals[name] += result[name]
        totals["saturated"] |= result["saturated"]
        if progress:
            print(f"  {first + len(chunk)}/{len(groups)} row groups of {schedule.pes} PE(s), "
                  f"{totals['cycles']} cycles ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)


def run_layer(config, phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
              kernel=None, dense=False, simulator=None, progress=False, backend="accelerator",
              axi_patterns=None, capacity=None, session=None, waves=None):
    """Run one layer phase on the RTL; returns ``(output, stats)``.

    ``output`` is the exact result (docs/SPEC.md) as ``int64`` (raw
    accumulator values): ``y`` (N, K, E, F) for FF, ``dx`` (N, C, H, W) for
    BP (zero where ``mask`` is zero), ``dw`` (K, C, R, S) for WG. ``stats``
    holds the keys of :data:`STATS_KEYS` (and, on the top level, ``model_cycles``:
    what :mod:`gen.model.cycles` predicts for the same program). ``backend`` is ``"accelerator"``
    (the top level: buffers loaded over AXI4-Stream, the controller running
    row commands on the array, counters read over AXI4-Lite; cycles are the
    compute cycles of its runs), ``"array"`` (the PE array fed directly) or
    ``"pe"`` (one PE). For tests, the accelerator back end takes
    ``axi_patterns`` (pause patterns of ``s_axis`` and ``m_axis``, see
    :mod:`cosim.accel_tb`) and a smaller buffer ``capacity``
    (:class:`gen.compiler.runs.Capacity`) that forces several runs. A ``session``
    (:func:`cosim.accel_jobs.accelerator_session`) runs them on a simulator
    that is already up, saving its start for a loop of many layers; ``waves``
    (a path, the accelerator back end, no session) dumps an FST waveform of
    the layer's runs, on a simulator of their own built with tracing. The
    result is checked against the golden model (values, the saturation flag
    and the effectual-MAC counter); a difference raises ``RuntimeError``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if session is not None and (backend != "accelerator" or session.config != config):
        raise ValueError(f"a session runs the accelerator back end of its own config "
                         f"({session.config.name}), not the {backend} back end of {config.name}")
    if waves is not None and (backend != "accelerator" or session is not None):
        raise ValueError("waves are dumped by a simulator of the accelerator back end that the "
                         "layer starts for itself: give no session and no other back end")
    spec = check_layer(config, phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                       kernel=kernel)
    # The golden result first: a layer whose saturated sums would depend on
    # the order of their products is refused before anything is built.
    expected, golden_saturated = golden.saturating_phase(
        spec.phase, acc_width=config.acc_width, x=spec.x, w=spec.w, dy=spec.dy, mask=spec.mask,
        stride=spec.stride, pad=spec.pad, input_hw=spec.input_hw, kernel_hw=spec.kernel_hw)
    pes = config.pes if backend in ("array", "accelerator") else 1
    output = np.zeros(spec.output_shape, dtype=np.int64)
    totals = dict(cycles=0, busy_cycles=0, stall_cycles=0, issued_macs=0, effectual_macs=0,
                  dense_macs=0, saturated=0)
    totals["dense_macs"], golden_effectual = count_macs(spec)
    if backend == "accelerator":
        schedule = schedule_layer(config, spec, dense=dense, capacity=capacity)
        runs = pack_program(schedule)
        totals.update(runs=0, load_beats=0, output_beats=0)
        # What the cycle model predicts for the same schedule, beside what the RTL counts.
        totals["model_cycles"] = predict(config, schedule.traces())["cycles"]
        _run_accelerator(config, spec, schedule.mapping, runs, simulator=simulator,
                         progress=progress, totals=totals, output=output,
                         axi_patterns=axi_patterns, session=session, waves=waves)
    else:
        schedule = schedule_layer(config, spec, dense=dense, pes=pes, runs=False)
        _run_groups(config, spec, schedule, backend=backend, simulator=simulator,
                    progress=progress, totals=totals, output=output)
    if totals["effectual_macs"] != golden_effectual:
        raise RuntimeError(f"the RTL counted {totals['effectual_macs']} effectual MACs, the "
                           f"golden model {golden_effectual}")
    if not np.array_equal(output, expected):
        first = tuple(int(i) for i in np.argwhere(output != expected)[0])
        raise RuntimeError(f"RTL result differs from the golden model first at {first}: "
                           f"RTL {output[first]}, golden {expected[first]}")
    if bool(totals["saturated"]) != golden_saturated:
        raise RuntimeError(f"the RTL's saturation flag is {int(bool(totals['saturated']))}, but "
                           f"the golden model's {config.acc_width}-bit sums "
                           f"{'do' if golden_saturated else 'do not'} saturate")
    if backend != "accelerator":
        # The top level counts cycles in which no PE issues; here it follows
        # from the busy cycles, by the same definition.
        totals["stall_cycles"] = totals["cycles"] - totals["busy_cycles"]
    return output, layer_stats(config, spec, totals, pes=pes, dense=dense, backend=backend)
