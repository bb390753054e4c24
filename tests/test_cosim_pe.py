"""cocotb co-simulation of the SparsePE Verilog against the golden model.

One simulator build per preset (``build/cosim/<sim>/<preset>``), reused by
every test here. ``SIM=icarus`` runs the same tests on Icarus Verilog. Every
output is compared bit for bit inside the test bench (and again here); every
run at full stream rate also checks its cycles against the documented bound.
"""

import numpy as np
import pytest

from cosim.pe_jobs import make_run, run_rows
from cosim.pe_speedup import sample_rows
from gen.compiler.tasks import make_output_row
from hw.config import PRESETS
from pruning import capture_digits, golden

from test_pe import random_row

CONFIGS = [pytest.param(PRESETS[name], id=name) for name in ("small", "dual")]

# Flow-control patterns on (task, operand, result): fixed idle/backpressure
# cycles, and seeded random ones (probability that a beat is offered/taken).
PATTERNS = {
    "idle": {"task": [1, 1, 0], "element": [1, 0, 1, 1, 0], "result": [1, 1, 1, 0]},
    "backpressure": {"result": [1, 0, 0, 1]},
    "random": {"task": 0.7, "element": 0.6, "result": 0.5},
}


def runs_with_patterns(config, rows, label, seed):
    """The rows at full rate (cycle bound checked) and under every flow-control pattern."""
    runs = [make_run(config, rows, label=f"{label} full-rate seed={seed}", seed=seed)]
    for name, pattern in PATTERNS.items():
        runs.append(make_run(config, rows, label=f"{label} {name} seed={seed}",
                             patterns=pattern, seed=seed))
    return runs


def check(config, runs, rows_per_run, results):
    for run, rows, result in zip(runs, rows_per_run, results):
        for number, (row, got) in enumerate(zip(rows, result["outputs"])):
            assert np.array_equal(np.array(got, dtype=np.int64), row.expected), \
                f"{run['label']}: row {number}"
        assert result["effectual_macs"] == sum(r.effectual_macs for r in rows), run["label"]
        dense = all(task.dense for row in rows for task in row.tasks)
        issued = sum(r.dense_macs if dense else r.effectual_macs for r in rows)
        assert result["issued_macs"] == issued, run["label"]
        assert result["busy_cycles"] == sum(r.issue_cycles(config.lanes) for r in rows)
        assert result["saturated"] == 0
        if run["cycle_limit"] is not None:
            assert run["issue_cycles"] <= result["cycles"] <= run["cycle_limit"], run["label"]


@pytest.fixture(scope="module")
def captured():
    """The digits CNN on real digits: natural sparsity, and dy pruned at p = 0.9."""
    return {p: capture_digits(p, batch_size=2, seed=0) for p in (0.0, 0.9)}


@pytest.mark.parametrize("config", CONFIGS)
def test_captured_rows(config, captured):
    runs, rows_per_run = [], []
    for p, layers in captured.items():
        for phase in golden.PHASES:
            for dense in (False, True):
                rows = [row for layer in layers
                        for row in sample_rows(config, layer, phase, 4, dense=dense)]
                mode = "dense" if dense else "sparse"
                new = ([make_run(config, rows, label=f"captured p={p:g} {phase} {mode}")]
                       if dense else runs_with_patterns(config, rows,
                                                        f"captured p={p:g} {phase} {mode}", 7))
                runs += new
                rows_per_run += [rows] * len(new)
    check(config, runs, rows_per_run, run_rows(config, runs, name="captured"))


@pytest.mark.parametrize("config", CONFIGS)
def test_random_rows(config):
    """Every phase, strides 1, 2, 4 and kernel widths 1, 3, 5, 7, 11."""
    seed = 2024
    rng = np.random.default_rng(seed)
    runs, rows_per_run = [], []
    for phase in golden.PHASES:
        rows = []
        for stride in (1, 2, 4):
            for kernel in (1, 3, 5, 7, 11):
                pad = int(rng.integers(0, min(kernel, config.max_pad + 1)))
                # Padding can make the output row longer than the input (F > W).
                longest = config.max_row - max(0, 2 * pad - kernel + 1)
                width = int(rng.integers(max(kernel - 2 * pad, 1), longest + 1))
                rows.append(random_row(rng, phase, kernel, stride, pad, width,
                                       density=float(rng.uniform(0.05, 0.9)),
                                       primitives=int(rng.integers(1, 4)), config=config))
        new = runs_with_patterns(config, rows, f"random {phase}", seed)
        runs += new
        rows_per_run += [rows] * len(new)
    check(config, runs, rows_per_run, run_rows(config, runs, name="random"))


@pytest.mark.parametrize("config", CONFIGS)
def test_edge_rows(config):
    """All-zero, fully dense, single-nonzero and longest rows, sparse and dense mode."""
    seed = 99
    rng = np.random.default_rng(seed)
    longest = config.max_row
    runs, rows_per_run = [], []
    for phase in golden.PHASES:
        for dense_mode in (False, True):
            rows = []
            for kernel, stride, pad in [(3, 1, 1), (11, 2, 5), (1, 4, 0)]:
                f_len = golden.output_size(longest, kernel, stride, pad)
                a_len = longest if phase == "ff" else f_len
                b_len = longest if phase == "wg" else kernel
                full = lambda n: rng.integers(config.data_min, config.data_max + 1, size=n)
                single = np.zeros(a_len, np.int64)
                single[int(rng.integers(0, a_len))] = config.data_min   # the extreme value
                mask = np.ones(longest, np.int64) if phase == "bp" else None
                for a, b in [(np.zeros(a_len, np.int64), full(b_len)),   # all-zero streamed
                             (full(a_len), full(b_len)),                  # fully dense
                             (single, full(b_len)),                       # one nonzero
                             (full(a_len), np.zeros(b_len, np.int64))]:   # zero stationary
                    rows.append(make_output_row(config, phase, [(a, b), (a, b)], stride=stride,
                                                pad=pad, kernel=kernel, in_width=longest,
                                                mask=mask, dense=dense_mode))
            label = f"edge {phase} {'dense' if dense_mode else 'sparse'}"
            new = runs_with_patterns(config, rows, label, seed)
            runs += new
            rows_per_run += [rows] * len(new)
    check(config, runs, rows_per_run, run_rows(config, runs, name="edge"))
