"""Host-side row tasks: tiling of rows longer than max_row, fits and totals."""

import itertools

import numpy as np
import pytest

from gen.primitives import LayerRows, Packer, make_output_rows, row_tiling, wg_kernel_rows
from gen.program import Capacity, _RunBuilder, build_runs
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


@pytest.mark.parametrize("kernel,stride,pad,width", [(3, 1, 1, 8), (5, 2, 2, 40), (7, 4, 3, 23)])
def test_wg_rows_of_several_kernel_rows_add_up(kernel, stride, pad, width):
    """LayerRows' WG rows hold as many kernel rows as fit max_row; placed back by
    output_view they give the golden dw, tiled rows included."""
    rng = np.random.default_rng(kernel + width)
    x = rng.integers(-9, 10, (2, 3, 9, width)) * (rng.random((2, 3, 9, width)) < 0.6)
    out_hw = [golden.output_size(n, kernel, stride, pad) for n in (9, width)]
    dy = rng.integers(-9, 10, (2, 4, *out_hw)) * (rng.random((2, 4, *out_hw)) < 0.3)
    kernel_rows = wg_kernel_rows(SMALL, (kernel, kernel))
    assert kernel_rows == min(kernel, SMALL.max_row // kernel) > 1
    layer = LayerRows("wg", x=x, dy=dy, stride=stride, pad=pad, kernel_hw=(kernel, kernel),
                      kernel_rows=kernel_rows)
    output = np.zeros((4, 3, kernel, kernel), dtype=np.int64)
    for key in layer.keys:
        for columns, row in layer.tiles(SMALL, key):
            assert row.out_len <= SMALL.max_row
            layer.output_view(output, key, columns)[...] = row.expected
    assert np.array_equal(output, golden.conv_phase("wg", x=x, dy=dy, stride=stride, pad=pad,
                                                    kernel_hw=(kernel, kernel)))


def test_kernel_rows_checked():
    with pytest.raises(ValueError, match="kernel_rows is a WG parameter"):
        make_output_rows(SMALL, "ff", [], stride=1, pad=0, kernel=3, in_width=8, kernel_rows=2)
    with pytest.raises(ValueError, match="kernel_rows must be in 1..5"):
        make_output_rows(SMALL, "wg", [], stride=1, pad=0, kernel=3, in_width=8, kernel_rows=6)
    x = np.ones((1, 1, 4, 4), int)
    with pytest.raises(TypeError, match="splits must be an int, not 2.0"):
        LayerRows("ff", x=x, w=np.ones((1, 1, 3, 3), int), stride=1, pad=1, splits=2.0)
    with pytest.raises(ValueError, match="splits must be at least 1, not 0"):
        LayerRows("ff", x=x, w=np.ones((1, 1, 3, 3), int), stride=1, pad=1, splits=0)


def test_groups_balance_work_over_pes():
    """Longest-processing-time assignment: the busiest PE's estimated work stays
    within one row's work of the average, where a fixed channel map is far off."""
    rng = np.random.default_rng(4)
    x = rng.integers(-9, 10, (2, 8, 6, 6))
    # Channels of very different density, as ReLU masks make them.
    x = x * (rng.random(x.shape) < np.linspace(0.05, 1, 8)[None, :, None, None])
    w = rng.integers(-9, 10, (8, 8, 3, 3))
    dy = rng.integers(-9, 10, (2, 8, 6, 6)) * (rng.random((2, 8, 6, 6)) < 0.3)
    layer = LayerRows("bp", w=w, dy=dy, mask=x > 0, stride=1, pad=1)
    config = SMALL.replace(pe_rows=2, pe_cols=4)
    loads = {}
    for balance in (False, True):
        load = [0] * config.pes
        biggest = 0
        for keys, _, rows in layer.groups(config, config.pes, balance=balance):
            for unit, row in enumerate(rows):
                load[unit] += row.pe_cycles(config)
                biggest = max(biggest, row.pe_cycles(config))
        loads[balance] = load
    average = sum(loads[True]) / config.pes
    assert max(loads[True]) <= average + biggest
    assert max(loads[False]) > max(loads[True]) * 1.3


def test_entries_are_shared_by_any_assignment():
    """The same rows in another PE order reuse one stationary entry; each PE's
    source names its own row."""
    builder = _RunBuilder(SMALL, "ff", stride=1, kernel=3, dense=False)
    rows = ((1, 2, 3), (0, 0, 0), (4, 5, 6), (1, 2, 3))
    entry, sources = builder._entry(rows)
    again, other = builder._entry(rows[::-1])
    assert entry == again and len(entry) == SMALL.pes
    assert [entry[n] for n in sources] == list(rows)
    assert [entry[n] for n in other] == list(rows[::-1])


@pytest.mark.parametrize("phase", ["bp", "wg"])
@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (1, 2, 5, 11)])
def test_transposed_rows_give_the_same_layer(phase, shape):
    """Transposed BP and WG rows (the streamed and stationary operands swapped)
    add up to the golden layer with the same dense and effectual MACs, split
    or not; LayerRows.for_config picks whichever layout it estimates faster."""
    rng = np.random.default_rng(sum(shape))
    n_len, c_len, h_len, w_len = shape
    x = rng.integers(-9, 10, shape) * (rng.random(shape) < 0.6)
    w = rng.integers(-9, 10, (6, c_len, 3, 3)) * (rng.random((6, c_len, 3, 3)) < 0.8)
    dy = rng.integers(-9, 10, (n_len, 6, h_len, w_len)) * (rng.random((n_len, 6, h_len, w_len))
                                                           < 0.3)
    operands = dict(x=x, dy=dy, stride=1, pad=1)
    if phase == "bp":
        operands.update(w=w, mask=x > 0)
    else:
        operands.update(kernel_hw=(3, 3))
    config = SMALL.replace(pe_rows=2, pe_cols=4)
    layer = LayerRows(phase, transposed=True, **operands)
    assert layer.task_kernel == w_len
    assert layer.task_phase == {"bp": "bp", "wg": "ff"}[phase]
    natural = LayerRows(phase, **operands)
    split = LayerRows(phase, transposed=True, splits=3, **operands)
    for dense in (False, True):
        chosen = LayerRows.for_config(config, phase, dense=dense, **operands)
        # The candidates as for_config splits them.
        assert chosen.estimated_cycles(config, config.pes, dense=dense) == min(
            candidate._split(config, config.pes, operands).estimated_cycles(
                config, config.pes, dense=dense) for candidate in (layer, natural))
    expected = golden.conv_phase(phase, **operands)
    for rows in (layer, natural, split):
        output = np.zeros(expected.shape, dtype=np.int64)
        macs = [0, 0]
        for key, piece in itertools.product(rows.keys, range(rows.splits)):
            for columns, row in rows.tiles(config, key, piece=piece):
                rows.output_view(output, key, columns)[...] += row.expected
                macs[0] += row.dense_macs
                macs[1] += row.effectual_macs
        assert np.array_equal(output, expected)
        assert tuple(macs) == golden.count_macs(phase, **operands)


@pytest.mark.parametrize("phase", golden.PHASES)
@pytest.mark.parametrize("channels", [(5, 6), (1, 6), (3, 2)])
def test_groups_cover_the_layer(phase, channels):
    """Every row of LayerRows.for_config's groups (natural or transposed, WG
    kernel rows, PEs without a row of their own) lands once in the golden layer."""
    c_len, k_len = channels
    rng = np.random.default_rng(c_len * 10 + k_len)
    x = rng.integers(-9, 10, (2, c_len, 6, 7)) * (rng.random((2, c_len, 6, 7)) < 0.6)
    w = rng.integers(-9, 10, (k_len, c_len, 3, 3))
    dy = rng.integers(-9, 10, (2, k_len, 6, 7)) * (rng.random((2, k_len, 6, 7)) < 0.4)
    operands = {"ff": dict(x=x, w=w), "bp": dict(w=w, dy=dy, mask=x > 0),
                "wg": dict(x=x, dy=dy, kernel_hw=(3, 3))}[phase]
    expected = golden.conv_phase(phase, stride=1, pad=1, **operands)
    packer = Packer(SMALL)
    for dense in (False, True):
        layer = LayerRows.for_config(SMALL, phase, stride=1, pad=1, dense=dense, **operands)
        output = np.zeros(expected.shape, dtype=np.int64)
        placed = np.zeros(expected.shape, dtype=np.int64)
        for keys, columns, rows in layer.groups(SMALL, SMALL.pes, dense=dense):
            assert len(rows) == SMALL.pes
            # The PEs' tasks are aligned: one bundle each (Packer checks it).
            assert len({len(row.tasks) for row in rows}) == 1
            for tasks in zip(*(row.tasks for row in rows)):
                packer.bundle(tasks)
            assert all(row.tasks[-1].row_last for row in rows)
            for key, row in zip(keys, rows):
                if key is not None:
                    layer.output_view(output, key, columns)[...] += row.expected
                    layer.output_view(placed, key, columns)[...] += 1
        assert np.array_equal(output, expected)
        # Sparse mode leaves out groups without work (their rows are zeros).
        assert (placed == layer.splits).all() if dense else (placed <= layer.splits).all()
        assert ((placed > 0) | (expected == 0)).all()


def test_split_wg_rows_close_with_their_last_kernel_row():
    """A WG row of several kernel rows split across runs: every piece ends with a
    task of the last kernel row's offset, from which the PE takes the row's length."""
    rng = np.random.default_rng(9)
    x = rng.integers(-9, 10, (2, 3, 6, 6))
    dy = rng.integers(-9, 10, (2, 4, 6, 6)) * (rng.random((2, 4, 6, 6)) < 0.5)
    layer = LayerRows("wg", x=x, dy=dy, stride=1, pad=1, kernel_hw=(3, 3), kernel_rows=3)
    groups = list(layer.groups(SMALL, SMALL.pes))
    runs = build_runs(SMALL, "wg", groups, stride=1, kernel=3, dense=False,
                      capacity=Capacity(program=6, operand=16, stationary=8, mask=4,
                                        outputs=64))
    pieces = [rows for run in runs for _, _, rows in run.groups]
    assert any(rows[0].expected is None for rows in pieces)     # rows were split
    for rows in pieces:
        for row in rows:
            assert row.tasks[-1].row_last and row.tasks[-1].offset == row.out_len - 3
            assert [task.row_last for task in row.tasks].count(True) == 1
