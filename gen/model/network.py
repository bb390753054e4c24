"""Whole networks on the accelerator: cycles and energy of every layer phase, dense and sparse.

For each conv and linear layer of a network (:func:`gen.compiler.network.extract_layers`)
and each of its training phases, the cycle model runs the schedule the
compiler makes for the preset (:func:`gen.compiler.schedule.schedule_layer`) in dense
mode (the baseline: every MAC issued, every element streamed) and in sparse
mode (zeros skipped), and the energy model prices the events of both
(:mod:`gen.model.energy`). The operands are a real training step's
(:func:`pruning.sample_training.capture_network`) or random maps of given
densities (:func:`random_operands`, for what-if studies).

Cycles are the compute cycles the top level counts; ``load_beats`` and
``output_beats`` add what its AXI4-Stream ports move before and after each
run (one ``stream_width`` beat per cycle), which the top level does not
overlap with compute: ``total_cycles`` includes them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import sys
import time

import numpy as np

from ..compiler.layer import LayerMaps, nonzero_map
from ..compiler.schedule import schedule_layer
from .cycles import simulate
from .energy import EnergyTable, add_events, count_events, energy_pj
from .estimate import load_beats, loaded_bits

__all__ = ["phase_maps", "mode_result", "estimate_network", "random_operands", "summarize",
           "MODES"]

MODES = ("dense", "sparse")


def phase_maps(layer, operands, phase):
    """The :class:`~gen.compiler.layer.LayerMaps` of ``phase`` of a
    :class:`~gen.compiler.network.NetworkLayer` from its operands (``x``, ``w``, ``dy``;
    the BP mask is ``x > 0`` where ``x`` is a ReLU output, else none)."""
    expected = {"x": (layer.in_channels, *layer.input_hw),
                "w": (layer.out_channels, layer.in_channels, *layer.kernel_hw),
                "dy": (layer.out_channels, *layer.output_hw)}
    for name, shape in expected.items():
        given = np.shape(operands[name])
        if tuple(given if name == "w" else given[1:]) != tuple(shape):
            raise ValueError(f"layer {layer.name}: {name} has shape {given}, "
                             f"expected {'' if name == 'w' else '(N, '}"
                             f"{', '.join(map(str, shape))}{'' if name == 'w' else ')'}")
    uses = {"ff": ("x", "w"), "bp": ("dy", "w"), "wg": ("x", "dy")}[phase]
    maps = {name: nonzero_map(operands[name]) if name in uses else None
            for name in ("x", "w", "dy")}
    mask = None
    if phase == "bp" and layer.bp_mask:
        mask = nonzero_map(np.asarray(operands["x"]) > 0)
    return LayerMaps(phase, maps["x"], maps["w"], maps["dy"], mask, layer.stride, layer.pad,
                     tuple(layer.input_hw), tuple(layer.kernel_hw))


def mode_result(config, maps, dense, table=None):
    """``(result, effectual_macs)`` of one layer phase (:class:`~gen.compiler.layer.LayerMaps`) in one
    mode from the cycle and energy models: the per-mode entry of :func:`estimate_network`."""
    schedule = schedule_layer(config, maps, dense=dense)
    result = dict(cycles=0, busy_cycles=0, issued_macs=0, runs=len(schedule.runs), bundles=0,
                  load_beats=0, output_beats=0, stationary_bits=0)
    events = {}
    for trace in schedule.each_trace():
        predicted = simulate(config, trace)
        result["cycles"] += predicted.cycles
        result["busy_cycles"] += predicted.busy_cycles
        result["issued_macs"] += trace.issued_macs
        result["bundles"] += trace.bundles
        result["load_beats"] += load_beats(config, trace.entries)
        result["output_beats"] += trace.entries["outputs"] * config.pes
        result["stationary_bits"] += loaded_bits(config, trace.entries, "stationary")
        add_events(events, count_events(config, trace))
    result["total_cycles"] = result["cycles"] + result["load_beats"] + result["output_beats"]
    result["energy_pj"] = energy_pj(config, events, table or EnergyTable())
    return result, schedule.effectual_macs


def estimate_network(config, layers, operands, *, progress=False, table=None, jobs=1):
    """Every phase of every layer, in dense and sparse mode: a list of dicts.

    ``layers``: :class:`~gen.compiler.network.NetworkLayer` s; ``operands``: per layer
    name, ``x``, ``w`` and ``dy`` arrays in conv layout (only their zeros
    matter). Each entry: ``layer``, ``phase``, ``dense_macs``,
    ``effectual_macs``, ``densities`` of the operands the phase streams, and
    per mode (``dense``, ``sparse``) ``cycles``, ``busy_cycles``,
    ``issued_macs``, ``runs``, ``bundles``, ``load_beats``, ``output_beats``,
    ``stationary_bits`` (written into the stationary buffer), ``total_cycles`` and
    ``energy_pj`` (per event kind and ``total``). ``jobs`` processes model the layer
    phases and modes at once (the results do not depend on it).
    """
    if not config.skipping:
        raise ValueError(f"config {config.name} is dense-only (skipping=False): it has no "
                         f"sparse mode to compare")
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise TypeError(f"jobs must be an int, not {jobs!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs!r}")
    missing = [layer.name for layer in layers if layer.name not in operands]
    if missing:
        raise ValueError(f"no operands for layer(s) {', '.join(missing)}")
    table = table or EnergyTable()
    entries, tasks = [], []
    for number, layer in enumerate(layers):
        for phase in layer.phases:
            maps = phase_maps(layer, operands[layer.name], phase)
            entry = {"layer": layer.name, "phase": phase, "kind": layer.kind,
                     "x_source": layer.x_source}
            entry["densities"] = {name: float(getattr(maps, name).mean())
                                  for name in ("x", "dy", "mask")
                                  if getattr(maps, name) is not None}
            entries.append(entry)
            tasks += [(number, entry, mode, maps) for mode in MODES]
    left = [len(layer.phases) * len(MODES) for layer in layers]
    started = time.perf_counter()
    done = 0

    def finished(number, entry, mode, result):
        nonlocal done
        entry[mode], effectual = result
        if mode == "dense":
            entry["dense_macs"] = entry["dense"]["issued_macs"]
        else:
            entry["effectual_macs"] = effectual
        left[number] -= 1
        if not left[number]:
            done += 1
            if progress:
                layer = layers[number]
                print(f"  [{done}/{len(layers)}] {layer.name}: {', '.join(layer.phases)} "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    if jobs == 1:
        for number, entry, mode, maps in tasks:
            finished(number, entry, mode, mode_result(config, maps, mode == "dense", table))
        return [_in_order(entry) for entry in entries]
    # The largest phases first, so that no process is left with a long one at the end.
    tasks.sort(key=lambda task: -_modelling_cost(layers[task[0]], task[1]["phase"],
                                                 config.pes))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(mode_result, config, maps, mode == "dense", table):
                   (number, entry, mode) for number, entry, mode, maps in tasks}
        for future in concurrent.futures.as_completed(futures):
            finished(*futures[future], future.result())
    return [_in_order(entry) for entry in entries]


def _in_order(entry):
    keys = ("layer", "phase", "kind", "x_source", *MODES, "dense_macs", "effectual_macs",
            "densities")
    return {key: entry[key] for key in keys}


def _modelling_cost(layer, phase, pes):
    """A rough measure of the time a layer phase takes to model, to start the largest
    first: its output rows (the compiler's work per row group) plus its MACs per PE
    that works on them (the trace's bundles, which the first layers' WG,
    on a few PEs, have most of). Only an order: the results do not depend on it."""
    channels, height, members = {
        "ff": (layer.out_channels, layer.output_hw[0], layer.out_channels),
        "bp": (layer.in_channels, layer.input_hw[0], layer.in_channels),
        "wg": (layer.out_channels * layer.in_channels, layer.kernel_hw[0], layer.in_channels),
    }[phase]
    macs = (layer.out_channels * layer.in_channels * np.prod(layer.kernel_hw)
            * np.prod(layer.output_hw))
    return channels * height + macs / min(members, pes)


def _in_order(entry):
    keys = ("layer", "phase", "kind", "x_source", *MODES, "dense_macs", "effectual_macs",
            "densities")
    return {key: entry[key] for key in keys}


def _output_rows(layer, phase):
    """Output rows of a layer phase per image: what its compile time grows with."""
    channels, height = {"ff": (layer.out_channels, layer.output_hw[0]),
                        "bp": (layer.in_channels, layer.input_hw[0]),
                        "wg": (layer.out_channels * layer.in_channels, layer.kernel_hw[0])}[phase]
    return channels * height


def random_operands(layers, densities, *, batch=1, seed=0):
    """Operands of ``layers`` with zeros at random: ``densities[name]`` gives the
    fraction of nonzeros of ``x``, ``dy`` and (optional, default 1) ``w``."""
    rng = np.random.default_rng(seed)
    operands = {}
    for layer in layers:
        given = densities.get(layer.name)
        if given is None:
            raise ValueError(f"the densities have no entry for layer {layer.name}")
        shapes = {"x": (batch, layer.in_channels, *layer.input_hw),
                  "w": (layer.out_channels, layer.in_channels, *layer.kernel_hw),
                  "dy": (batch, layer.out_channels, *layer.output_hw)}
        operands[layer.name] = {}
        for name, shape in shapes.items():
            density = given.get(name, 1.0 if name == "w" else None)
            if not isinstance(density, (int, float)) or not 0 <= density <= 1:
                raise ValueError(f"density of {name} of layer {layer.name} must be a number "
                                 f"in 0..1, not {density!r}")
            operands[layer.name][name] = (rng.random(shape) < density).astype(np.uint8)
    return operands


def summarize(results):
    """Totals per phase and for the whole step: cycles, total cycles, energy per mode,
    and the ratios dense / sparse (speedup, energy efficiency).

    ``step_without_first_wg`` leaves out the WG phase of layers whose ``x`` is the
    network's input: with 3 channels and a stride above 1 it can neither fill the
    array nor be transposed, so its dense baseline runs at a few percent of the PEs
    and outweighs the rest of the step."""
    groups = {phase: [e for e in results if e["phase"] == phase] for phase in ("ff", "bp", "wg")}
    groups["step"] = results
    groups["step_without_first_wg"] = [e for e in results
                                       if not (e["phase"] == "wg" and e["x_source"] == "input")]
    summary = {}
    for name, entries in groups.items():
        row = {"dense_macs": sum(e["dense_macs"] for e in entries),
               "effectual_macs": sum(e["effectual_macs"] for e in entries)}
        for mode in MODES:
            row[mode] = {key: sum(e[mode][key] for e in entries)
                         for key in ("cycles", "total_cycles", "load_beats", "output_beats",
                                     "stationary_bits")}
            row[mode]["energy_pj"] = sum(e[mode]["energy_pj"]["total"] for e in entries)
            row[mode]["on_chip_energy_pj"] = row[mode]["energy_pj"] - sum(
                e[mode]["energy_pj"]["dram"] for e in entries)
        row["speedup"] = _ratio(row["dense"]["cycles"], row["sparse"]["cycles"])
        row["speedup_with_transfers"] = _ratio(row["dense"]["total_cycles"],
                                               row["sparse"]["total_cycles"])
        row["energy_efficiency"] = _ratio(row["dense"]["energy_pj"], row["sparse"]["energy_pj"])
        row["on_chip_energy_efficiency"] = _ratio(row["dense"]["on_chip_energy_pj"],
                                                  row["sparse"]["on_chip_energy_pj"])
        row["ideal_speedup"] = _ratio(row["dense_macs"], row["effectual_macs"])
        summary[name] = row
    return summary


def _ratio(dense, sparse):
    return dense / sparse if sparse else None
