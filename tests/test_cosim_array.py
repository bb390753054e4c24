"""cocotb co-simulation of the PEArray Verilog on whole layers, against the golden model.

Rows that share their streamed rows are grouped one per PE
(:meth:`gen.primitives.LayerRows.groups`); each PE's outputs are compared
bit for bit inside the test bench, then the layer is assembled and compared
with the golden convolution.
"""

import numpy as np
import pytest

from cosim.pe_jobs import make_array_run, run_array
from gen.primitives import LayerRows, wg_kernel_rows
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


def assemble(layer, groups, per_pe, shape):
    output = np.zeros(shape, dtype=np.int64)
    for number, (keys, columns, _) in enumerate(groups):
        for pe, key in enumerate(keys):
            if key is not None:
                layer.output_view(output, key, columns)[...] += per_pe[pe][number]
    return output


def layer_case(rng, phase, kernel, stride, pad, hw, channels=(5, 6), density=0.4):
    c_len, k_len = channels
    x = sparse(rng, (2, c_len, *hw), 0.5)
    w = sparse(rng, (k_len, c_len, *kernel), 0.9)
    out_hw = [golden.output_size(i, r, stride, pad) for i, r in zip(hw, kernel)]
    dy = sparse(rng, (2, k_len, *out_hw), density)
    mask = (x > 0) if phase == "bp" else None
    expected = golden.conv_phase(phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad)
    kernel_rows = wg_kernel_rows(SMALL, kernel) if phase == "wg" else 1
    return LayerRows(phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                     kernel_rows=kernel_rows), expected


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
    for number, (layer, expected) in enumerate(cases):
        for dense in (False, True):
            groups = list(layer.groups(SMALL, SMALL.pes, dense=dense))
            rows = [g for _, _, g in groups]
            label = f"{phase} case {number} {'dense' if dense else 'sparse'} seed={seed}"
            runs.append(make_array_run(SMALL, rows, label=label))
            plans.append((layer, groups, expected))
            if not dense and number == 0:
                for name, pattern in PATTERNS.items():
                    runs.append(make_array_run(SMALL, rows, label=f"{label} {name}",
                                               patterns=pattern, seed=seed))
                    plans.append((layer, groups, expected))
    results = run_array(SMALL, runs, name=f"random-{phase}")
    for run, (layer, groups, expected), result in zip(runs, plans, results):
        output = assemble(layer, groups, result["per_pe"], expected.shape)
        assert np.array_equal(output, expected), run["label"]
        real = [row for keys, _, rows in groups for key, row in zip(keys, rows) if key is not None]
        dense_mode = "dense" in run["label"]
        issued = sum(r.dense_macs if dense_mode else r.effectual_macs
                     for _, _, rows in groups for r in rows)
        assert result["issued_macs"] == issued, run["label"]
        assert result["effectual_macs"] == sum(r.effectual_macs for r in real), run["label"]
        assert result["saturated"] == 0


def test_captured_layer():
    """conv2 of the digits CNN on real digits, dy pruned at p = 0.9, all phases."""
    layer = capture_digits(0.9, batch_size=1, seed=0)[1]
    runs, plans = [], []
    for phase in golden.PHASES:
        mask = layer.mask if phase == "bp" else None
        rows = LayerRows(phase, x=layer.x, w=layer.w, dy=layer.dy, mask=mask,
                         stride=layer.stride, pad=layer.pad,
                         kernel_rows=wg_kernel_rows(SMALL, layer.kernel_hw) if phase == "wg"
                         else 1)
        expected = golden.conv_phase(phase, x=layer.x, w=layer.w, dy=layer.dy, mask=mask,
                                     stride=layer.stride, pad=layer.pad)
        groups = list(rows.groups(SMALL, SMALL.pes))
        runs.append(make_array_run(SMALL, [g for _, _, g in groups], label=f"captured {phase}"))
        plans.append((rows, groups, expected))
    for run, (rows, groups, expected), result in zip(runs, plans,
                                                     run_array(SMALL, runs, name="captured")):
        assert np.array_equal(assemble(rows, groups, result["per_pe"], expected.shape),
                              expected), run["label"]
