"""Measured PE speedup on rows of a real network: dense mode vs sparse mode on the RTL.

Rows come from :func:`pruning.capture_digits` (the digits CNN on real digits,
natural sparsity, ``dy`` pruned at rate ``p``). For each layer and phase a
fixed, evenly spaced sample of output rows runs through the PE's Verilog
back to back, once in dense mode and once in sparse mode; the cycles are
counted by the test bench from the first task to the last output. The ideal
speedup of the same rows is their dense MACs over their effectual MACs.
"""

from __future__ import annotations

import itertools
import sys
import time

import numpy as np

from gen.compiler.layer import check_layer
from gen.compiler.mapping import Mapping
from gen.compiler.tasks import layer_row

from .pe_jobs import check_rows, make_run, run_rows

__all__ = ["sample_rows", "measure"]


def sample_rows(config, layer, phase, count, *, dense):
    """``count`` evenly spaced output rows of one layer phase (all of them if fewer)."""
    operands = {"ff": dict(x=layer.x, w=layer.w), "bp": dict(dy=layer.dy, w=layer.w,
                                                               mask=layer.mask),
                "wg": dict(x=layer.x, dy=layer.dy, kernel=layer.w.shape[2:])}[phase]
    spec = check_layer(config, phase, **operands, stride=layer.stride, pad=layer.pad)
    mapping = Mapping(spec)      # the natural rows, one kernel row per WG row
    keys = list(itertools.product(*map(range, mapping.shape)))
    positions = sorted(set(np.linspace(0, len(keys) - 1, min(count, len(keys)))
                           .round().astype(int)))
    return [row for position in positions
            for _, row in layer_row(config, spec, mapping, keys[position], dense=dense)]


def measure(config, rates=(0.0, 0.9), rows_per_layer=32, *, batch_size=4, seed=0,
            simulator=None, progress=True):
    """Dense and sparse cycles per (p, layer, phase); returns a list of dicts."""
    from pruning import capture_digits

    results = []
    for p in rates:
        layers = capture_digits(p, batch_size=batch_size, seed=seed)
        for phase in ("ff", "bp", "wg"):
            for layer in layers:
                started = time.perf_counter()
                sparse = sample_rows(config, layer, phase, rows_per_layer, dense=False)
                dense = sample_rows(config, layer, phase, rows_per_layer, dense=True)
                label = f"p={p:g} {layer.name} {phase}"
                measured = run_rows(config, [make_run(config, dense, label=f"{label} dense"),
                                             make_run(config, sparse, label=f"{label} sparse")],
                                    simulator=simulator, name="pe-speedup")
                for rows, result, mode in zip((dense, sparse), measured, ("dense", "sparse")):
                    check_rows(f"{label} {mode}", rows, result["outputs"])
                dense_run, sparse_run = measured
                entry = {
                    "p": p, "layer": layer.name, "phase": phase, "rows": len(sparse),
                    "dense_macs": sum(r.dense_macs for r in sparse),
                    "effectual_macs": sum(r.effectual_macs for r in sparse),
                    "dense_cycles": dense_run["cycles"], "sparse_cycles": sparse_run["cycles"],
                    "sparse_issue_cycles": sum(r.issue_cycles(config.lanes) for r in sparse),
                }
                entry["measured_speedup"] = entry["dense_cycles"] / entry["sparse_cycles"]
                entry["ideal_speedup"] = entry["dense_macs"] / max(entry["effectual_macs"], 1)
                results.append(entry)
                if progress:
                    print(f"  {label}: {len(sparse)} rows, dense {entry['dense_cycles']} / "
                          f"sparse {entry['sparse_cycles']} cycles "
                          f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)
    return results


def summarize(results):
    """Per (p, phase) totals over layers."""
    table = {}
    for entry in results:
        key = (entry["p"], entry["phase"])
        total = table.setdefault(key, {"rows": 0, "dense_macs": 0, "effectual_macs": 0,
                                       "dense_cycles": 0, "sparse_cycles": 0})
        for field in total:
            total[field] += entry[field]
    for total in table.values():
        total["measured_speedup"] = total["dense_cycles"] / total["sparse_cycles"]
        total["ideal_speedup"] = total["dense_macs"] / max(total["effectual_macs"], 1)
        total["fraction_of_ideal"] = total["measured_speedup"] / total["ideal_speedup"]
    return table


def format_table(summary):
    lines = ["| p | phase | rows | dense MACs | effectual MACs | dense cycles | sparse cycles "
             "| measured speedup | ideal speedup | of ideal |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (p, phase), t in summary.items():
        lines.append(f"| {p:g} | {phase.upper()} | {t['rows']} | {t['dense_macs']} | "
                     f"{t['effectual_macs']} | {t['dense_cycles']} | {t['sparse_cycles']} | "
                     f"{t['measured_speedup']:.2f}x | {t['ideal_speedup']:.2f}x | "
                     f"{100 * t['fraction_of_ideal']:.1f}% |")
    return "\n".join(lines)
