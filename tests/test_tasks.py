"""PE tasks of explicit row primitives (gen/compiler/tasks.py): tiling of rows longer than
max_row, fits and totals."""

import itertools

import numpy as np
import pytest

from gen.compiler.tasks import make_output_rows
from gen.compiler.tiling import row_tiling
from hw.config import PRESETS
from pruning import golden

SMALL = PRESETS["small"]


def geometries():
    rng = np.random.default_rng(12)
    for phase, stride, kernel in itertools.product(golden.PHASES, (1, 2, 3, 4), (1, 2, 3, 5, 11)):
        pad = int(rng.integers(0, min(kernel, SMALL.max_pad + 1)))
        width = int(rng.integers(max(kernel - 2 * pad, 1), 90))
        yield pytest.param(phase, stride, kernel, pad, width,
                           id=f"{phase}-u{stride}-s{kernel}-p{pad}-w{width}")


@pytest.mark.parametrize("phase,stride,kernel,pad,width", list(geometries()))
def test_tiles_fit_and_add_up(phase, stride, kernel, pad, width):
    rng = np.random.default_rng(width)
    f_len = golden.output_size(width, kernel, stride, pad)
    a_len = width if phase == "ff" else f_len
    b_len = width if phase == "wg" else kernel
    primitives = [(rng.integers(-9, 10, a_len) * (rng.random(a_len) < 0.6),
                   rng.integers(-9, 10, b_len) * (rng.random(b_len) < 0.8)) for _ in range(2)]
    mask = rng.random(width) < 0.5 if phase == "bp" else None
    tiles = make_output_rows(SMALL, phase, primitives, stride=stride, pad=pad, kernel=kernel,
                             in_width=width, mask=mask)
    out_len = {"ff": f_len, "bp": width, "wg": kernel}[phase]
    expected = sum(golden.row_primitive(phase, a, b, stride, pad,
                                        None if phase == "ff" else out_len,
                                        mask if phase == "bp" else None) for a, b in primitives)
    joined = np.concatenate([row.expected for _, row in tiles])
    assert np.array_equal(joined, expected)
    assert [c.start for c, _ in tiles] == list(itertools.accumulate(
        [0] + [c.stop - c.start for c, _ in tiles[:-1]]))
    dense = effectual = 0
    for a, b in primitives:
        d, e = golden.row_macs(phase, a, b, stride, pad, None if phase == "ff" else out_len,
                               mask if phase == "bp" else None)
        dense, effectual = dense + d, effectual + e
    assert sum(row.dense_macs for _, row in tiles) == dense
    assert sum(row.effectual_macs for _, row in tiles) == effectual
    for columns, row in tiles:
        assert row.out_len <= SMALL.max_row
        for task in row.tasks:
            assert task.in_width <= SMALL.max_row and task.out_width <= SMALL.max_row
            assert len(task.stationary) <= SMALL.max_row
            assert 0 <= task.pad <= SMALL.task_pad_max
            assert all(index < SMALL.max_row for _, index in task.elements)
    if width <= SMALL.max_row and f_len <= SMALL.max_row:
        assert len(row_tiling(SMALL, phase, in_width=width, kernel=kernel, stride=stride,
                              pad=pad)) == 1


def test_kernel_rows_checked():
    with pytest.raises(ValueError, match="kernel_rows is a WG parameter"):
        make_output_rows(SMALL, "ff", [], stride=1, pad=0, kernel=3, in_width=8, kernel_rows=2)
    with pytest.raises(ValueError, match="kernel_rows must be in 1..5"):
        make_output_rows(SMALL, "wg", [], stride=1, pad=0, kernel=3, in_width=8, kernel_rows=6)
