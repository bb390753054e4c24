"""The geometry of one PE task: what fits a PE, how a long row is tiled, which MAC slots
a task has, and how an output row is closed.

These are the rules the PE's decoder (``hw/window.py``) implements in RTL; the
host's copy lives here once and every part of the compiler and the models
uses it (the RTL's own implementation is the independent check).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hw.config import PHASE_CODES, AccelConfig
from pruning import golden

__all__ = ["TaskTile", "check_fits", "check_values", "row_tiling", "task_slots",
           "wg_kernel_rows", "closing_tile", "closing_offset", "needs_closing"]


@dataclass(frozen=True)
class TaskTile:
    """The part of a primitive one task covers: slices of ``a`` and ``b`` and the task geometry."""

    a_slice: slice
    b_slice: slice
    pad: int
    in_width: int
    out_width: int


def check_fits(config, *, phase, stride, pad, kernel, in_width, out_width):
    """ValueError naming the first layer-row parameter the PE of ``config`` cannot take.

    Rows longer than ``max_row`` are fine: :func:`row_tiling` tiles them.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    if phase not in PHASE_CODES:
        raise ValueError(f"phase must be one of {', '.join(PHASE_CODES)}, not {phase!r}")
    limits = [("stride", stride, 1, config.max_stride), ("pad", pad, 0, config.max_pad),
              ("kernel width", kernel, 1, config.max_kernel)]
    for name, value, low, high in limits:
        if not low <= value <= high:
            raise ValueError(f"{name} must be in {low}..{high} for config {config.name}, "
                             f"not {value}")
    if in_width < 1 or golden.output_size(in_width, kernel, stride, pad) != out_width:
        raise ValueError(f"output row length {out_width} does not match input {in_width}, "
                         f"kernel {kernel}, stride {stride}, pad {pad}")


def check_values(config, name, row):
    """ValueError when ``row`` holds a value outside the ``data_width`` range."""
    row = np.asarray(row)
    if row.size and (row.min() < config.data_min or row.max() > config.data_max):
        raise ValueError(f"{name} has values outside the {config.data_width}-bit range "
                         f"{config.data_min}..{config.data_max}")


def wg_kernel_rows(config, kernel_hw):
    """Kernel rows a WG output row of ``config``'s PE holds: as many as fit ``max_row``."""
    r_len, s_len = kernel_hw
    return max(1, min(r_len, config.max_row // s_len))


def row_tiling(config, phase, *, in_width, kernel, stride, pad):
    """Split a layer row so every task fits ``max_row``.

    Returns ``[(output_columns, [TaskTile, ...]), ...]``: FF and BP split the
    output row into column tiles (one task tile per primitive each); WG keeps
    its output row (the ``S`` taps) and splits each primitive's ``dy`` row
    into column tiles that accumulate into it. Task tiles that reach only
    padding are left out.
    """
    limit = config.max_row
    out_width = golden.output_size(in_width, kernel, stride, pad)
    if in_width <= limit and out_width <= limit:
        # The whole row fits: one task per primitive with the layer's geometry.
        out_columns = {"ff": out_width, "bp": in_width, "wg": kernel}[phase]
        a_len = in_width if phase == "ff" else out_width
        b_len = in_width if phase == "wg" else kernel
        return [(slice(0, out_columns), [TaskTile(slice(0, a_len), slice(0, b_len), pad,
                                                  in_width, out_width)])]
    span = min(limit, (limit - kernel) // stride + 1)   # outputs whose inputs fit max_row

    def input_window(f0, f1):
        """Inputs of outputs f0..f1-1: slice start/stop, and the task pad."""
        first = f0 * stride - pad
        start, stop = max(0, first), min(in_width, (f1 - 1) * stride + kernel - pad)
        return start, stop, start - first

    if phase == "ff":
        plan = []
        for f0 in range(0, out_width, span):
            f1 = min(out_width, f0 + span)
            start, stop, tile_pad = input_window(f0, f1)
            parts = [TaskTile(slice(start, stop), slice(0, kernel), tile_pad, stop - start,
                              f1 - f0)] if stop > start else []
            plan.append((slice(f0, f1), parts))
        return plan
    if phase == "wg":
        parts = []
        for f0 in range(0, out_width, span):
            f1 = min(out_width, f0 + span)
            start, stop, tile_pad = input_window(f0, f1)
            if stop > start:
                parts.append(TaskTile(slice(f0, f1), slice(start, stop), tile_pad, stop - start,
                                      f1 - f0))
        return [(slice(0, kernel), parts)]
    # BP: output columns v0..v1-1 of dx take dy elements f with f*U + s - P in range.
    width = limit
    while width > 1 and -(-(width + kernel - 1) // stride) + 1 > limit:
        width -= 1
    plan = []
    for v0 in range(0, in_width, width):
        v1 = min(in_width, v0 + width)
        f_lo = max(0, -(-(v0 + pad - kernel + 1) // stride))
        f_hi = min(out_width - 1, (v1 - 1 + pad) // stride)
        parts = []
        if f_lo <= f_hi:
            tile_pad = pad + v0 - f_lo * stride
            if tile_pad < 0:
                # Start earlier: the extra elements' outputs fall before v0 and are invalid.
                back = -(-(-tile_pad) // stride)
                f_lo, tile_pad = f_lo - back, tile_pad + back * stride
            parts.append(TaskTile(slice(f_lo, f_hi + 1), slice(0, kernel), tile_pad, v1 - v0,
                                  f_hi + 1 - f_lo))
        plan.append((slice(v0, v1), parts))
    return plan


def _read_only(*arrays):
    for array in arrays:
        array.setflags(write=False)
    return arrays


@functools.lru_cache(maxsize=4096)
def task_slots(phase, a_len, kernel, *, stride, pad, in_width, out_width):
    """``(a_index, b_index, o_index)`` of every MAC slot of one task, as the PE decodes it.

    For streamed element ``i`` and tap ``s``: FF writes ``o = (i + P - s) / U``
    when that divides, ``0 <= o < F``, reading ``b[s]``; BP writes
    ``o = i*U + s - P``, ``0 <= o < W``, reading ``b[s]``; WG reads
    ``b[i*U + s - P]`` (``0..W-1``) and writes ``o = s``. ``P``, ``W`` and
    ``F`` are the task's fields, so the same rule serves a tile of a row.
    Slots are in stream order (by ``a_index``, then tap). The arrays are
    shared between calls (cached) and read-only.
    """
    i, s = np.meshgrid(np.arange(a_len), np.arange(kernel), indexing="ij")
    if phase == "ff":
        moved = i + pad - s
        valid = (moved >= 0) & (moved % stride == 0) & (moved // stride < out_width)
        return _read_only(i[valid], s[valid], (moved // stride)[valid])
    moved = i * stride + s - pad
    valid = (moved >= 0) & (moved < in_width)
    if phase == "bp":
        return _read_only(i[valid], s[valid], moved[valid])
    return _read_only(i[valid], moved[valid], s[valid])


# -- closing an output row -------------------------------------------------------------
#
# The PE closes an output row with the task marked ``row_last``. When no
# primitive of the row has work in the mode (or, WG, none is of the row's
# last kernel row, whose offset gives the PE the row's length), an *empty*
# task closes it: no elements, the row's length in its geometry.

def closing_offset(phase, out_len, kernel):
    """The offset of the task that closes a row of ``out_len`` outputs: WG's last kernel
    row (``out_len - S``), 0 for FF and BP."""
    return out_len - kernel if phase == "wg" else 0


def needs_closing(phase, last_offset, out_len, kernel):
    """Whether a row whose last task with work has offset ``last_offset`` (None: no task
    has work) needs an empty task to close it."""
    return last_offset is None or last_offset != closing_offset(phase, out_len, kernel)


def closing_tile(phase, out_len):
    """``(pad, in_width, out_width)`` of the empty closing task of a row tile of
    ``out_len`` outputs: the width the PE takes the row's length from (FF: ``F``,
    BP: ``W``; WG: the offset)."""
    return 0, out_len if phase == "bp" else 1, out_len if phase == "ff" else 1
