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

from gen.model.cycles import within_tolerance

from .layer import run_layer, waves_path

__all__ = ["phase_operands", "compare_modes", "measure_layers", "format_layer_table", "ratio",
           "model_error"]


def phase_operands(phase, *, x, w, dy, mask):
    """The operands :func:`~cosim.layer.run_layer` takes for ``phase`` out of a whole layer."""
    if phase == "ff":
        return {"x": x, "w": w}
    if phase == "bp":
        return {"dy": dy, "w": w, "mask": mask}
    return {"x": x, "dy": dy, "kernel": tuple(w.shape[2:])}


def compare_modes(config, phase, operands, *, waves=None, **options):
    """Run a layer phase in dense and in sparse mode; returns the comparison.

    ``options`` go to :func:`~cosim.layer.run_layer` (geometry, simulator,
    back end, ...); ``waves`` (a path) dumps each mode's FST waveform, as
    ``<stem>-dense.fst`` and ``<stem>-sparse.fst``. The ideal speedup is
    dense MACs over effectual MACs.
    """
    stats = {dense: run_layer(config, phase, **operands, dense=dense,
                              waves=waves_path(waves, "dense" if dense else "sparse"),
                              **options)[1]
             for dense in (True, False)}
    dense_stats, sparse_stats = stats[True], stats[False]
    entry = {
        "phase": phase,
        "dense_macs": sparse_stats["dense_macs"], "effectual_macs": sparse_stats["effectual_macs"],
        "dense_cycles": dense_stats["cycles"], "sparse_cycles": sparse_stats["cycles"],
        "dense_utilization": dense_stats["pe_utilization"],
        "sparse_utilization": sparse_stats["pe_utilization"],
        "pes": sparse_stats["pes"], "runs": sparse_stats.get("runs"),
        "saturated": sparse_stats["saturated"],
    }
    if "model_cycles" in sparse_stats:     # the top level: what the cycle model predicts
        entry["model_dense_cycles"] = dense_stats["model_cycles"]
        entry["model_sparse_cycles"] = sparse_stats["model_cycles"]
        entry["model_error"] = max(model_error(dense_stats), model_error(sparse_stats))
        entry["model_within_tolerance"] = all(
            within_tolerance(stats["model_cycles"], stats["cycles"])
            for stats in (dense_stats, sparse_stats))
    # No effectual MAC at all: sparse mode sends nothing, and neither ratio exists.
    nothing = entry["sparse_cycles"] == 0 or entry["effectual_macs"] == 0
    entry["measured_speedup"] = None if nothing else \
        entry["dense_cycles"] / entry["sparse_cycles"]
    entry["ideal_speedup"] = None if nothing else entry["dense_macs"] / entry["effectual_macs"]
    entry["fraction_of_ideal"] = None if nothing else \
        entry["measured_speedup"] / entry["ideal_speedup"]
    return entry


def model_error(stats):
    """Relative error of the cycle model's prediction against the RTL's cycles (0 when
    both are 0: nothing ran)."""
    if stats["cycles"] == 0:
        return 0.0 if stats["model_cycles"] == 0 else float("inf")
    return abs(stats["model_cycles"] - stats["cycles"]) / stats["cycles"]


def ratio(value, unit="x", scale=1):
    """A speedup or fraction for a table: ``n/a`` when there is none (no work)."""
    return "n/a" if value is None else f"{scale * value:.{1 if unit == '%' else 2}f}{unit}"


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
            f"| {e['dense_cycles']} | {e['sparse_cycles']} | {ratio(e['measured_speedup'])} | "
            f"{ratio(e['ideal_speedup'])} | {ratio(e['fraction_of_ideal'], '%', 100)} | "
            f"{100 * e['dense_utilization']:.1f}% | {100 * e['sparse_utilization']:.1f}% |")
    return "\n".join(lines)
