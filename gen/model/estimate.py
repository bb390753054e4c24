"""``python -m gen estimate``: a layer phase through the compiler and the cycle model.

Takes what :func:`cosim.layer.run_layer` takes, checked the same way
(:func:`gen.compiler.layer.check_layer`), schedules it the same way
(:func:`gen.compiler.schedule.schedule_layer`) and returns the same
statistics (:data:`gen.compiler.layer.STATS_KEYS`, ``runs``, ``load_beats``,
``output_beats``), with the counters predicted by the cycle model instead of
counted by the RTL; ``backend`` is ``"model"``.
"""

from __future__ import annotations

import sys

from amaranth import Shape

from hw.buffer import entry_beats
from hw.layouts import buffer_layouts

from ..compiler.layer import check_layer, count_macs, golden_output, layer_stats
from ..compiler.program import pack_program
from ..compiler.schedule import schedule_layer
from .cycles import predict

__all__ = ["estimate_layer", "load_beats", "loaded_bits"]


def load_beats(config, entries):
    """AXI4-Stream beats that load a run's ``entries`` (per buffer) into the top level."""
    return sum(entries[name] * entry_beats(shape, config.stream_width)
               for name, (shape, _) in buffer_layouts(config).items())


def loaded_bits(config, entries, name):
    """Bits a run's ``entries`` write into buffer ``name`` (whole entries, as stored)."""
    shape, _ = buffer_layouts(config)[name]
    return entries[name] * Shape.cast(shape).width


def estimate_layer(config, phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
                   kernel=None, dense=False, capacity=None, progress=False, return_runs=False):
    """Predict what :func:`cosim.layer.run_layer` measures on the top level; returns stats.

    The MAC counts are exact. ``saturated`` is set when an exact result lies
    outside the ``acc_width`` range (the RTL's sticky flag may also catch an
    intermediate partial sum that a later product brings back). With
    ``return_runs``, returns ``(stats, runs)``: the program
    (:func:`gen.compiler.program.pack_program`) too.
    """
    spec = check_layer(config, phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                       kernel=kernel)
    if progress:
        print(f"  scheduling the {phase} layer...", file=sys.stderr, flush=True)
    schedule = schedule_layer(config, spec, dense=dense, capacity=capacity)
    traces = schedule.traces()
    totals = predict(config, traces, progress=progress)
    totals["dense_macs"], totals["effectual_macs"] = count_macs(spec)
    result = golden_output(spec)
    totals["saturated"] = int(result.size > 0 and (result.min() < config.acc_min
                                                  or result.max() > config.acc_max))
    totals.update(runs=len(traces),
                  load_beats=sum(load_beats(config, trace.entries) for trace in traces),
                  output_beats=sum(trace.entries["outputs"] for trace in traces) * config.pes)
    stats = layer_stats(config, spec, totals, pes=config.pes, dense=dense, backend="model")
    return (stats, pack_program(schedule)) if return_runs else stats
