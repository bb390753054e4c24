"""The PE's scratchpad (hw/scratchpad.py): a queued element still finds its own
stationary row when the accept stage is as far ahead as the element queue lets it be and
the loads behind it overwrite the scratchpad's lines in turn."""

import numpy as np
import pytest

from gen.compiler.scratchpad import row_lines
from gen.compiler.tasks import make_output_row
from hw.config import PRESETS
from hw.dense_pe import DensePE
from hw.layouts import row_entries
from hw.scratchpad import Scratchpad

from pe_sim import run_pe
from test_pe import check_rows


def far_ahead_rows(config, seed, rows=3, primitives=12, dense=False):
    """BP rows whose primitives each queue one element with ``max_kernel`` MACs (a slow
    issue), each with its own stationary row, between primitives whose elements all
    drop (all-zero rows: the accept stage runs through them): the queue then holds
    elements of as many tasks as it has entries, each needing its own row."""
    rng = np.random.default_rng(seed)
    kernel, width = config.max_kernel, config.max_row
    f_len = width - kernel + 1 + 2 * (kernel // 2)
    made = []
    for _ in range(rows):
        prims = []
        for number in range(primitives):
            dy = np.zeros(f_len, np.int64)
            dy[rng.integers(0, f_len)] = rng.integers(1, 100)
            filter_row = rng.integers(1, 100, kernel) * rng.choice([-1, 1], kernel)
            prims.append((dy, filter_row))
            for _ in range(int(rng.integers(0, 3))):    # dropped on accept
                prims.append((rng.integers(1, 100, f_len), np.zeros(kernel, np.int64)))
        made.append(make_output_row(config, "bp", prims, stride=1, pad=kernel // 2,
                                    kernel=kernel, in_width=width, dense=dense))
    return made


@pytest.mark.parametrize("preset", ["small", "queues", "dual"])
@pytest.mark.parametrize("rows_held", [None, 1, 2])
def test_rows_of_queued_elements_survive(preset, rows_held):
    """With the preset's scratchpad, and with one that holds one or two of the rows:
    then every load overwrites a row that queued elements still read, and waits."""
    config = PRESETS[preset]
    if rows_held:
        config = config.replace(scratchpad_lines=max(
            config.row_lines, rows_held * row_lines(config, config.max_kernel)))
    rows = far_ahead_rows(config, seed=len(preset))
    outputs, state = run_pe(config, rows)
    check_rows(rows, outputs, len(preset))
    assert state["effectual_macs"] == sum(row.effectual_macs for row in rows)


def test_dense_pe_rows():
    config = PRESETS["small"].replace(skipping=False)
    rows = far_ahead_rows(config, seed=5, primitives=6, dense=True)
    outputs, _ = run_pe(config, rows, pe=DensePE)
    check_rows(rows, outputs, 5)
    small = config.replace(scratchpad_lines=config.row_lines)
    outputs, _ = run_pe(small, rows, pe=DensePE)
    check_rows(rows, outputs, 5)


def test_slots():
    assert row_entries(4, 2) == 5 and row_entries(6, 3) == 6 and row_entries(0, 2) == 2
    config = PRESETS["small"]
    assert Scratchpad(config, slots=5, reads=1).slots == 5
    for bad in (1, 2.0, None, True):
        with pytest.raises((TypeError, ValueError), match="slots"):
            Scratchpad(config, slots=bad, reads=1)
    with pytest.raises(ValueError, match="reads"):
        Scratchpad(config, slots=3, reads=0)
