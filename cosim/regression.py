"""The co-simulation regression of whole layers on the accelerator top level.

Every case runs one layer phase through :func:`cosim.layer.run_layer` on the
top level's Verilog twice, in dense and in sparse mode; every output is
compared bit for bit with the golden model (``run_layer`` raises on the
first difference). The cases: the conv layers of the digits CNN captured on
real digits with ``dy`` pruned at ``p = 0.9`` (natural and artificial
sparsity), random layers, edge cases (all-zero and fully dense inputs, 1x1
kernels, stride 2 with odd sizes, rows and layers that need tiling) and
random AXI backpressure and idle cycles on both streams.

:func:`format_table` prints a summary line per case: dense and sparse
cycles, measured and ideal speedup, PE utilization in both modes, and the
cycles the cycle model (:mod:`gen.model.cycles`) predicts for the same programs,
which must be within the model's tolerance of the RTL's
(:func:`model_misses` lists the cases that are not).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from gen.compiler.runs import Capacity
from pruning import capture_digits

from .layer import waves_path
from .layer_speedup import compare_modes, phase_operands, ratio

__all__ = ["Case", "cases", "run_case", "run_regression", "format_table", "model_misses"]


@dataclass
class Case:
    """One layer phase and how to run it."""

    name: str
    phase: str
    operands: dict
    stride: int = 1
    pad: int = 0
    patterns: dict | None = None
    capacity: Capacity | None = None
    quick: bool = False
    notes: list = field(default_factory=list)


def _random_layer(rng, *, batch, channels, filters, size, kernel, stride, pad, density=0.5,
                  dy_density=0.2, low=-20, high=20):
    from pruning import golden

    x = rng.integers(low, high + 1, (batch, channels, *size))
    x[rng.random(x.shape) >= density] = 0
    w = rng.integers(low, high + 1, (filters, channels, *kernel))
    out = [golden.output_size(s, r, stride, pad) for s, r in zip(size, kernel)]
    dy = rng.integers(low, high + 1, (batch, filters, *out))
    dy[rng.random(dy.shape) >= dy_density] = 0
    mask = (x > 0).astype(np.int64)
    return {"x": x, "w": w, "dy": dy, "mask": mask}


def cases(config, *, quick=False, seed=0, p=0.9):
    """The regression cases for ``config``; ``quick`` keeps the ones ``make test`` runs."""
    rng = np.random.default_rng(seed)
    result = []

    def add(name, layer, *, stride, pad, quick_phases=(), **extra):
        for phase in ("ff", "bp", "wg"):
            result.append(Case(name, phase, phase_operands(phase, **layer), stride=stride,
                               pad=pad, quick=phase in quick_phases, **extra))

    add("random 3x3 s1 p1", _random_layer(rng, batch=2, channels=3, filters=5, size=(6, 7),
                                          kernel=(3, 3), stride=1, pad=1),
        stride=1, pad=1, quick_phases=("ff", "bp", "wg"))
    add("random 5x3 s2 p2 odd", _random_layer(rng, batch=1, channels=2, filters=3, size=(9, 7),
                                              kernel=(5, 3), stride=2, pad=2),
        stride=2, pad=2, quick_phases=("bp",))
    add("1x1 kernel", _random_layer(rng, batch=2, channels=5, filters=3, size=(4, 5),
                                    kernel=(1, 1), stride=1, pad=0),
        stride=1, pad=0, quick_phases=("wg",))
    zero = _random_layer(rng, batch=1, channels=2, filters=3, size=(5, 5), kernel=(3, 3),
                         stride=1, pad=1)
    zero["x"][:] = 0
    zero["dy"][:] = 0
    add("all-zero x and dy", zero, stride=1, pad=1, quick_phases=("ff",))
    add("fully dense", _random_layer(rng, batch=1, channels=2, filters=3, size=(5, 6),
                                     kernel=(3, 3), stride=1, pad=1, density=1.0,
                                     dy_density=1.0, low=1, high=9),
        stride=1, pad=1)
    wide = config.max_row + config.max_row // 2 + 3
    add(f"rows of {wide} > max_row (tiled)",
        _random_layer(rng, batch=1, channels=2, filters=2, size=(3, wide), kernel=(3, 3),
                      stride=2, pad=1),
        stride=2, pad=1, quick_phases=("wg",))
    add("stride 4, 7x7 kernel", _random_layer(rng, batch=1, channels=2, filters=2,
                                               size=(15, 17), kernel=(7, 7), stride=4, pad=3),
        stride=4, pad=3)
    # Buffers shrunk on the host side: the layer needs several load-compute-readout runs.
    small = Capacity(program=40, operand=16, stationary=8, mask=4, outputs=64)  # splits rows too
    add("several runs per layer", _random_layer(rng, batch=2, channels=3, filters=4,
                                                size=(6, 6), kernel=(3, 3), stride=1, pad=1),
        stride=1, pad=1, capacity=small, quick_phases=("ff", "bp", "wg"))
    patterns = {"s_axis": 0.6, "m_axis": 0.5}
    add("AXI backpressure", _random_layer(rng, batch=1, channels=3, filters=4, size=(5, 6),
                                          kernel=(3, 3), stride=1, pad=1),
        stride=1, pad=1, patterns=patterns, quick_phases=("ff", "bp", "wg"))

    # Real data: the digits CNN on real digits, dy pruned at p (natural and
    # artificial sparsity); quick too, so make test compares the model on them.
    for layer in capture_digits(p, batch_size=2, seed=seed):
        full = {"x": layer.x, "w": layer.w, "dy": layer.dy, "mask": layer.mask}
        for phase in ("ff", "bp", "wg"):
            result.append(Case(f"digits {layer.name} p={p:g}", phase,
                               phase_operands(phase, **full), stride=layer.stride,
                               pad=layer.pad, quick=True))
    return [case for case in result if case.quick or not quick]


def run_case(config, case, *, simulator=None, waves=None):
    """Dense and sparse runs of ``case``; returns a summary dict. ``waves``: the path
    stem of the two modes' FST waveforms."""
    return {"case": case.name,
            **compare_modes(config, case.phase, case.operands, stride=case.stride, pad=case.pad,
                            simulator=simulator, axi_patterns=case.patterns,
                            capacity=case.capacity, waves=waves)}


def run_regression(config, *, quick=False, simulator=None, progress=True, waves=None, only=None):
    """Run the cases (those whose name contains one of ``only``, when given); returns
    their summaries. ``waves``: dump each case's waveforms as
    ``<stem>-<case>-<phase>-<mode>.fst``."""
    results = []
    selected = every = cases(config, quick=quick)
    if only:
        selected = [case for case in every if any(text in case.name for text in only)]
        if not selected:
            raise ValueError(f"no regression case is named like {', '.join(map(repr, only))}; "
                             f"the cases: {', '.join(sorted({c.name for c in every}))}")
    started = time.perf_counter()
    for number, case in enumerate(selected, 1):
        entry = run_case(config, case, simulator=simulator,
                         waves=waves_path(waves, case.name, case.phase))
        results.append(entry)
        if progress:
            print(f"[{number}/{len(selected)}] {case.name} {case.phase}: bit-exact, dense "
                  f"{entry['dense_cycles']} / sparse {entry['sparse_cycles']} cycles "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    return results


def model_misses(results):
    """The cases whose cycle-model prediction is off the RTL by more than the tolerance
    (:func:`gen.model.cycles.within_tolerance`)."""
    return [f"{e['case']} {e['phase']}: RTL dense/sparse {e['dense_cycles']}/"
            f"{e['sparse_cycles']}, model {e['model_dense_cycles']}/{e['model_sparse_cycles']}"
            for e in results if not e["model_within_tolerance"]]


def format_table(results):
    lines = ["| case | phase | runs | dense cycles | sparse cycles | measured speedup | "
             "ideal speedup | utilization dense | utilization sparse | model dense | "
             "model sparse | model error | bit-exact |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in results:
        lines.append(
            f"| {e['case']} | {e['phase'].upper()} | {e['runs']} | {e['dense_cycles']} | "
            f"{e['sparse_cycles']} | {ratio(e['measured_speedup'])} | {ratio(e['ideal_speedup'])} | "
            f"{100 * e['dense_utilization']:.1f}% | {100 * e['sparse_utilization']:.1f}% | "
            f"{e['model_dense_cycles']} | {e['model_sparse_cycles']} | "
            f"{100 * e['model_error']:.2f}% | yes |")
    return "\n".join(lines)
