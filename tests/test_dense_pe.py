"""The purpose-built dense PE of the area baseline (hw/dense_pe.py) against the golden
row primitives, with idle and backpressure patterns on every stream."""

import itertools

import numpy as np
import pytest

from gen.compiler.tasks import Packer, make_output_row
from hw.config import AccelConfig, PRESETS
from hw.dense_pe import DensePE
from pruning import golden

from pe_sim import run_pe
from test_pe import PATTERNS, check_rows, random_row, random_rows_and_patterns

SMALL = PRESETS["small"]


@pytest.mark.parametrize("pattern", list(PATTERNS))
@pytest.mark.parametrize("phase", golden.PHASES)
def test_dense_pe_computes_the_golden_rows(phase, pattern):
    seed, rows, patterns = random_rows_and_patterns(phase, pattern, dense=True)
    watched = []
    outputs, state = run_pe(SMALL, rows, pe=DensePE, monitor=watched, **patterns)
    check_rows(rows, outputs, seed)
    # Every valid MAC, zeros included; one slot step per MAC with one lane.
    assert state["issued_macs"] == sum(r.dense_macs for r in rows)
    assert state["busy_cycles"] >= state["issued_macs"]
    assert state["idle"] == 1 and state["saturated"] == 0
    (monitor,) = watched
    entries = Packer(SMALL).task_stream([task for row in rows for task in row.tasks])
    assert monitor.transfers("top.task") == len(entries)
    assert monitor.transfers("top.result") == sum(row.out_len for row in rows)


def test_dense_pe_two_lanes_empty_tasks_and_saturation():
    config = PRESETS["dual"]
    rng = np.random.default_rng(4)
    rows = [random_row(rng, phase, k, u, p, 20, density=0.5, primitives=2, config=config,
                       dense=True)
            for phase in golden.PHASES for k, u, p in [(3, 1, 1), (5, 1, 2), (4, 2, 1)]]
    zero = random_row(rng, "ff", 3, 1, 1, 10, density=0.0, config=config, dense=True)
    outputs, state = run_pe(config, [zero, *rows, zero], pe=DensePE,
                            result_pattern=itertools.cycle([1, 0, 1]))
    check_rows([zero, *rows, zero], outputs, 4)
    assert state["issued_macs"] == sum(r.dense_macs for r in [zero, *rows, zero])
    # 8-bit operands, 16-bit sums: products of 127*127 overflow, all of one sign.
    config = AccelConfig(data_width=8, acc_width=16, max_row=16)
    big = make_output_row(config, "ff", [(np.full(8, 127), np.full(3, 127))] * 2, stride=1,
                          pad=1, kernel=3, in_width=8, dense=True)
    outputs, state = run_pe(config, [big], pe=DensePE)
    assert state["saturated"] == 1
    assert outputs[0] == list(np.clip(big.expected, config.acc_min, config.acc_max))


def test_dense_pe_is_built_dense_only():
    pe = DensePE(SMALL)
    pe._MustUse__silence = True      # inspected, not built
    assert pe.config.skipping is False and not hasattr(pe, "effectual_macs")
