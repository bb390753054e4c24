"""cocotb co-simulation of the PEArray Verilog on whole layers, against the golden model.

Rows that share their streamed rows are grouped one per PE (the schedule,
:func:`gen.compiler.schedule.schedule_layer`, built without runs); the PEs'
drained rows are placed back into the layer (:func:`cosim.layer.add_drained`)
and compared with the golden convolution, bit for bit.
"""

import numpy as np
import pytest

from cosim.layer import add_drained
from cosim.pe_jobs import array_run, run_array
from gen.compiler.layer import check_layer, count_macs, golden_output
from gen.compiler.program import bundle_tasks
from gen.compiler.schedule import schedule_layer
from hw.config import PRESETS
from pruning import capture_digits, golden

SMALL = PRESETS["small"]
PATTERNS = {
    "idle": {"task": [1, 1, 0], "element": [1, 0, 1, 1, 0], "result": [1, 1, 1, 0]},
    "backpressure": {"result": [1, 0, 0, 1]},
    "random": {"task": 0.7, "element": 0.6, "result": 0.5},
}


def sparse(rng, shape, density, limit=500):
    return rng.integers(-limit, limit + 1, size=shape) * (rng.random(shape) < density)


def job(schedule, label, **extra):
    """The array job of every group of ``schedule``."""
    groups = schedule.groups
    bundles = [bundle for group in groups for bundle in bundle_tasks(schedule, group)]
    return array_run(SMALL, bundles, [[group.out_len for group in groups]] * SMALL.pes,
                     label=label, **extra)


def assemble(spec, schedule, per_pe):
    """The layer from the rows each PE drained (``per_pe[p]``: PE ``p``'s rows)."""
    output = np.zeros(spec.output_shape, dtype=np.int64)
    for number, group in enumerate(schedule.groups):
        add_drained(SMALL, schedule.mapping, output, group.keys, group.columns,
                    [rows[number] for rows in per_pe])
    return output


def layer_case(rng, phase, kernel, stride, pad, hw, channels=(5, 6), density=0.4):
    c_len, k_len = channels
    x = sparse(rng, (2, c_len, *hw), 0.5)
    w = sparse(rng, (k_len, c_len, *kernel), 0.9)
    out_hw = [golden.output_size(i, r, stride, pad) for i, r in zip(hw, kernel)]
    dy = sparse(rng, (2, k_len, *out_hw), density)
    operands = {"ff": dict(x=x, w=w), "bp": dict(dy=dy, w=w, mask=x > 0),
                "wg": dict(x=x, dy=dy, kernel=kernel)}[phase]
    spec = check_layer(SMALL, phase, **operands, stride=stride, pad=pad)
    return spec, golden_output(spec)


@pytest.mark.parametrize("phase", golden.PHASES)
def test_random_layers(phase):
    """Stride 1, 2 and 4, 1x1 to 5x5 kernels, odd sizes, a row wider than max_row,
    channel counts the 4 PEs do not divide; sparse and dense mode, every stream pattern."""
    seed = {"ff": 11, "bp": 12, "wg": 13}[phase]
    rng = np.random.default_rng(seed)
    cases = [layer_case(rng, phase, (3, 3), 1, 1, (5, 7)),
             layer_case(rng, phase, (1, 1), 2, 0, (5, 9), channels=(3, 5)),
             layer_case(rng, phase, (5, 3), 4, 2, (9, 21))]   # 21 > max_row 16: tiled
    runs, plans = [], []
    for number, (spec, expected) in enumerate(cases):
        for dense in (False, True):
            schedule = schedule_layer(SMALL, spec, dense=dense, runs=False)
            label = f"{phase} case {number} {'dense' if dense else 'sparse'} seed={seed}"
            runs.append(job(schedule, label))
            plans.append((spec, schedule, expected))
            if not dense and number == 0:
                for name, pattern in PATTERNS.items():
                    runs.append(job(schedule, f"{label} {name}", patterns=pattern, seed=seed))
                    plans.append((spec, schedule, expected))
    results = run_array(SMALL, runs, name=f"random-{phase}")
    for run, (spec, schedule, expected), result in zip(runs, plans, results):
        assert np.array_equal(assemble(spec, schedule, result["per_pe"]), expected), \
            run["label"]
        issued = sum(int(group.issued_macs.sum()) for group in schedule.groups)
        assert result["issued_macs"] == issued, run["label"]
        assert result["effectual_macs"] == count_macs(spec)[1], run["label"]
        assert result["saturated"] == 0


def test_captured_layer():
    """conv2 of the digits CNN on real digits, dy pruned at p = 0.9, all phases."""
    layer = capture_digits(0.9, batch_size=1, seed=0)[1]
    runs, plans = [], []
    for phase in golden.PHASES:
        operands = {"ff": dict(x=layer.x, w=layer.w),
                    "bp": dict(dy=layer.dy, w=layer.w, mask=layer.mask),
                    "wg": dict(x=layer.x, dy=layer.dy, kernel=layer.w.shape[2:])}[phase]
        spec = check_layer(SMALL, phase, **operands, stride=layer.stride, pad=layer.pad)
        expected = golden_output(spec)
        schedule = schedule_layer(SMALL, spec, dense=False, runs=False)
        runs.append(job(schedule, f"captured {phase}"))
        plans.append((spec, schedule, expected))
    for run, (spec, schedule, expected), result in zip(runs, plans,
                                                       run_array(SMALL, runs, name="captured")):
        assert np.array_equal(assemble(spec, schedule, result["per_pe"]), expected), \
            run["label"]
