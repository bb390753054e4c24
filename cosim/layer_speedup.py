"""Whole-layer speedup of the PE array on a real network: dense vs sparse mode on the RTL.

Every conv layer of the digits CNN, captured on real digits with ``dy``
pruned at rate ``p`` (:func:`pruning.capture_digits`), runs in all three
phases through :func:`cosim.layer.run_layer` twice, in dense and in sparse
mode. The ideal speedup is dense MACs over effectual MACs; utilization is
dense MACs (dense mode) or effectual MACs (sparse mode) over cycles x lanes x
PEs.
"""

from __future__ import annotations

import sys

from .layer import run_layer

__all__ = ["phase_operands", "compare_modes", "measure_layers", "format_layer_table"]


def phase_operands(phase, *, x, w, dy, mask):
    """The operands :func:`~cosim.layer.run_layer` takes for ``phase`` out of a whole layer."""
    if phase == "ff":
        return {"x": x, "w": w}
    if phase == "bp":
        return {"dy": dy, "w": w, "mask": mask}
    return {"x": x, "dy": dy, "kernel": tuple(w.shape[2:])}


def compare_modes(config, phase, operands, **options):
    """Run a layer phase in dense and in sparse mode; returns the comparison.

    ``options`` go to :func:`~cosim.layer.run_layer` (geometry, simulator,
    back end, ...). The ideal speedup is dense MACs over effectual MACs.
    """
    stats = {dense: run_layer(config, phase, **operands, dense=dense, **options)[1]
             for dense in (True, False)}
    dense_stats, sparse_stats = stats[True], stats[False]
    entry = {
        "phase": phase,
        "dense_macs": sparse_stats["dense_macs"], "effectual_macs": sparse_stats["effectual_macs"],
        "dense_cycles": dense_stats["cycles"], "sparse_cycles": sparse_stats["cycles"],
        "dense_utilization": dense_stats["pe_utilization"],
        "sparse_utilization": sparse_stats["pe_utilization"],
        "pes": sparse_stats["pes"], "runs": sparse_stats.get("runs"),
    }
    entry["measured_speedup"] = entry["dense_cycles"] / max(entry["sparse_cycles"], 1)
    entry["ideal_speedup"] = entry["dense_macs"] / max(entry["effectual_macs"], 1)
    entry["fraction_of_ideal"] = entry["measured_speedup"] / entry["ideal_speedup"]
    return entry


def measure_layers(config, p=0.9, *, batch_size=2, seed=0, simulator=None,
                   backend="accelerator"):
    from pruning import capture_digits

    results = []
    for layer in capture_digits(p, batch_size=batch_size, seed=seed):
        for phase in ("ff", "bp", "wg"):
            operands = phase_operands(phase, x=layer.x, w=layer.w, dy=layer.dy, mask=layer.mask)
            entry = {"p": p, "layer": layer.name,
                     **compare_modes(config, phase, operands, stride=layer.stride,
                                     pad=layer.pad, simulator=simulator, backend=backend)}
            results.append(entry)
            print(f"  {layer.name} {phase}: dense {entry['dense_cycles']} / sparse "
                  f"{entry['sparse_cycles']} cycles", file=sys.stderr, flush=True)
    return results


def format_layer_table(results):
    lines = ["| layer | phase | dense MACs | effectual MACs | dense cycles | sparse cycles | "
             "measured speedup | ideal speedup | of ideal | utilization dense | "
             "utilization sparse |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in results:
        lines.append(
            f"| {e['layer']} | {e['phase'].upper()} | {e['dense_macs']} | {e['effectual_macs']} "
            f"| {e['dense_cycles']} | {e['sparse_cycles']} | {e['measured_speedup']:.2f}x | "
            f"{e['ideal_speedup']:.2f}x | {100 * e['fraction_of_ideal']:.1f}% | "
            f"{100 * e['dense_utilization']:.1f}% | {100 * e['sparse_utilization']:.1f}% |")
    return "\n".join(lines)
