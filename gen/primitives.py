"""Row primitives as the PE consumes them: tasks, streamed elements, expected rows.

The host-side half of the PE's contract. A layer phase is cut into output
rows (SPEC section 2); each output row is a sequence of row primitives that
the PE accumulates, the last one marked ``row_last``. In sparse mode only the
nonzero elements of the streamed row are sent and a primitive whose streamed
row is all zero is not sent at all (its work is zero); an output row none of
whose primitives has work is closed by one *empty* task. In dense mode every
element of every primitive is sent.

Packing uses the payload layouts of :mod:`hw.layouts` built from the same
:class:`~hw.config.AccelConfig`, so the host never restates a field offset.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from hw.config import PHASE_CODES, AccelConfig
from pruning import golden
from pruning.fixedpoint import saturate

__all__ = ["RowTask", "OutputRow", "TaskTile", "make_output_row", "make_output_rows",
           "row_tiling", "LayerRows", "layer_output_rows", "wg_kernel_rows", "check_fits",
           "Packer", "pack_payload"]


@dataclass(frozen=True)
class RowTask:
    """One row primitive: what the PE's ``task`` stream and ``operand`` stream carry."""

    phase: str
    stride: int
    pad: int
    kernel: int          # S
    in_width: int        # W
    out_width: int       # F
    stationary: tuple    # filter row (FF, BP) or input row (WG)
    mask: tuple          # BP output mask over W, else ()
    dense: bool
    row_last: bool
    elements: tuple      # ((value, index), ...) streamed, in index order
    offset: int = 0      # WG: output index of tap 0 (kernel row r of the output row: r*S)
    # False for a placeholder that keeps a PE's tasks aligned with the other
    # PEs' (a primitive the other rows of the group have and this one has not).
    present: bool = True

    @property
    def empty(self):
        return not self.elements

    @property
    def idle(self):
        """No effectual MAC whatever is streamed: the stationary row, or (BP) the output
        mask, is all zero. The array does not give such a primitive to a sparse PE."""
        return not any(self.stationary) or (self.phase == "bp" and not any(self.mask))

    def beats(self, per_beat):
        """Operand beats of the streamed elements, ``per_beat`` to a beat (as
        :meth:`Packer.beats` packs them)."""
        return -(-len(self.elements) // per_beat)


@dataclass
class OutputRow:
    """One output row: its tasks, the golden result and the work it holds.

    ``expected`` is what the PE drains: the golden sums saturated to
    ``acc_width`` (:func:`make_output_rows` clips them; an output whose
    clipped value would depend on the order of its products is refused
    before, by :func:`pruning.golden.saturating_phase`).
    """

    tasks: list
    expected: np.ndarray
    dense_macs: int
    effectual_macs: int
    # Per task, the MACs the PE issues for each streamed element, in stream
    # order (dense or sparse mode).
    issued_per_task: list = field(default_factory=list)
    # A partial row (a piece of a row split across runs) has no expected
    # values of its own; it has this length.
    partial_len: int = 0

    def issue_cycles(self, lanes):
        """Cycles the issue stage needs: each element's MACs, ``lanes`` per cycle."""
        return sum(math.ceil(n / lanes) for issued in self.issued_per_task for n in issued)

    @property
    def out_len(self):
        return self.partial_len if self.expected is None else int(self.expected.size)

    def idle_beats(self, per_beat):
        """Beats of ``per_beat`` elements none of which has a MAC (the PE drops them all)."""
        return sum(1 for issued in self.issued_per_task
                   for first in range(0, len(issued), per_beat)
                   if not any(issued[first:first + per_beat]))

    def pe_cycles(self, config):
        """Cycles a PE of the array spends on this row (an estimate, to balance the PEs).

        Per primitive the PE takes (sparse mode: not those whose stationary
        row or BP mask row is all zero, unless it closes the row): the larger
        of its operand beats and its issue cycles, at least one; plus one for
        the row's end."""
        cycles = 1
        for task, issued in zip(self.tasks, self.issued_per_task):
            if task.present and (task.dense or not task.idle):
                cycles += max(1, task.beats(config.elements_per_beat),
                              sum(-(-n // config.lanes) for n in issued))
            elif task.row_last:
                cycles += 1     # the array makes it an empty task
        return cycles

    def timing(self, config):
        """``(issue_cycles, out_len, idle_beats)``, as :func:`hw.pe.overhead_bound` takes."""
        return (self.issue_cycles(config.lanes), self.out_len,
                self.idle_beats(config.elements_per_beat))


def check_fits(config, *, phase, stride, pad, kernel, in_width, out_width):
    """ValueError naming the first layer-row parameter the PE of ``config`` cannot take.

    Rows longer than ``max_row`` are fine: :func:`make_output_rows` tiles them.
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


def _check_values(config, name, row):
    row = np.asarray(row)
    if row.size and (row.min() < config.data_min or row.max() > config.data_max):
        raise ValueError(f"{name} has values outside the {config.data_width}-bit range "
                         f"{config.data_min}..{config.data_max}")


@dataclass(frozen=True)
class TaskTile:
    """The part of a primitive one task covers: slices of ``a`` and ``b`` and the task geometry."""

    a_slice: slice
    b_slice: slice
    pad: int
    in_width: int
    out_width: int


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
    The arrays are shared between calls (cached) and read-only.
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


def make_output_rows(config, phase, primitives, *, stride, pad, kernel, in_width, mask=None,
                     dense=False, kernel_rows=1, expected=None):
    """Tasks and golden results of one layer output row, tiled to fit ``max_row``.

    Parameters
    ----------
    primitives : list of (a, b) or (a, b, offset)
        Streamed and stationary rows of each primitive into this output row;
        empty when no input row reaches it (all zeros, no MACs). WG only: the
        output row holds ``kernel_rows`` kernel rows of ``S`` taps, and a
        primitive of kernel row ``r`` of them has ``offset = r * S``, in
        ascending order. ``b = None`` is a placeholder: a primitive other rows
        of the group have and this one has not; its task (``present`` False)
        keeps the PEs' tasks aligned and is skipped by the array (a closing
        one reaches the PE as an empty task).
    kernel, in_width : int
        S and W of the layer row; F follows.
    mask : row or None
        BP output mask over W.
    expected : row or None
        The golden output row, when the caller has it (a slice of the
        whole layer's golden result); else it is the sum of the primitives'
        golden rows. Either way the tasks' products must add up to it.

    Returns
    -------
    list of (slice, OutputRow)
        The output columns each PE output row holds, in order.
    """
    out_width = golden.output_size(in_width, kernel, stride, pad)
    check_fits(config, phase=phase, stride=stride, pad=pad, kernel=kernel, in_width=in_width,
               out_width=out_width)
    if phase != "wg" and kernel_rows != 1:
        raise ValueError(f"kernel_rows is a WG parameter; {phase} rows hold one, not {kernel_rows}")
    if kernel_rows < 1 or kernel_rows * kernel > config.max_row:
        raise ValueError(f"kernel_rows must be in 1..{config.max_row // kernel} for kernel "
                         f"width {kernel} and max_row {config.max_row}, not {kernel_rows}")
    out_len = {"ff": out_width, "bp": in_width, "wg": kernel * kernel_rows}[phase]
    row_mask = np.ones(in_width, np.int64) if phase == "bp" else None
    if phase == "bp" and mask is not None:
        row_mask = (np.asarray(mask) != 0).astype(np.int64)
    b_len = in_width if phase == "wg" else kernel
    a_len = in_width if phase == "ff" else out_width
    count = len(primitives)
    # All primitives of a row have the same lengths: the numeric work is done
    # on (primitive, element) arrays at once.
    streamed = np.zeros((count, a_len), np.int64)
    stationary = np.zeros((count, b_len), np.int64)
    offsets = np.zeros(count, np.int64)
    present = np.ones(count, bool)
    for number, (a, b, *rest) in enumerate(primitives):
        for name, row, length, table in (("a", a, a_len, streamed), ("b", b, b_len, stationary)):
            if row is None and name == "b":
                present[number] = False
                continue
            row = np.asarray(row)
            if row.shape != (length,):
                raise ValueError(f"len({name}) must be {length} for a {phase} row with input "
                                 f"{in_width}, kernel {kernel}, stride {stride}, pad {pad}, "
                                 f"not {row.shape}")
            table[number] = row
        offsets[number] = int(rest[0]) if rest else 0
    _check_values(config, "streamed row", streamed)
    _check_values(config, "stationary row", stationary)
    bad = offsets[(offsets != 0) & ((phase != "wg") | (offsets % kernel != 0)
                                    | (offsets + kernel > out_len))]
    if bad.size:
        raise ValueError(f"offset {int(bad[0])} is not a kernel row of a {phase} row of "
                         f"{out_len} outputs")
    if expected is None:
        expected = np.zeros(out_len, dtype=np.int64)
        if phase == "wg":
            rows = golden.row_primitives(phase, streamed, stationary, stride, pad, kernel)
            np.add.at(expected, offsets[:, None] + np.arange(kernel), rows)
        elif count:
            expected += golden.row_primitives(phase, streamed, stationary, stride, pad,
                                              None if phase == "ff" else out_len,
                                              row_mask).sum(axis=0)
    else:
        expected = np.asarray(expected, dtype=np.int64)
        if expected.shape != (out_len,):
            raise ValueError(f"expected must have shape {(out_len,)}, not {expected.shape}")
    last_offset = out_len - kernel if phase == "wg" else 0

    result = []
    for columns, parts in row_tiling(config, phase, in_width=in_width, kernel=kernel,
                                     stride=stride, pad=pad):
        if phase == "wg":
            columns = slice(0, out_len)    # every kernel row of the output row
        tile_len = columns.stop - columns.start
        tile_mask = row_mask[columns] if phase == "bp" else None
        computed = np.zeros(tile_len, dtype=np.int64)
        dense_macs = effectual_macs = 0
        # Per task tile: the primitives' tiles and the MACs each element issues.
        per_part = []
        for part in parts:
            a_tiles, b_tiles = streamed[:, part.a_slice], stationary[:, part.b_slice]
            a_index, b_index, o_index = task_slots(
                phase, a_tiles.shape[1], kernel, stride=stride, pad=part.pad,
                in_width=part.in_width, out_width=part.out_width)
            a_values, b_values = a_tiles[:, a_index], b_tiles[:, b_index]
            effectual = (a_values != 0) & (b_values != 0)
            if tile_mask is not None:
                effectual &= tile_mask[o_index] != 0
            which, slot = np.nonzero(effectual)
            np.add.at(computed, o_index[slot] + offsets[which],
                      a_values[which, slot] * b_values[which, slot])
            per_effectual = np.zeros(a_tiles.shape, np.int64)
            np.add.at(per_effectual, (which, a_index[slot]), 1)
            per_dense = np.bincount(a_index, minlength=a_tiles.shape[1])
            dense_macs += int(per_dense.sum()) * int(present.sum())
            effectual_macs += int(which.size)
            per_part.append((part, a_tiles, b_tiles, per_dense, per_effectual))
        candidates = []
        for number in range(count):
            for part, a_tiles, b_tiles, per_dense, per_effectual in per_part:
                a_tile = a_tiles[number]
                indices = np.arange(a_tile.size) if dense else np.flatnonzero(a_tile)
                if indices.size:
                    issued = per_dense * int(present[number]) if dense else per_effectual[number]
                    candidates.append((a_tile, b_tiles[number], part, indices,
                                       issued[indices].tolist(), int(offsets[number]),
                                       bool(present[number])))
        # The tiling is host arithmetic; check it against the golden row first.
        if not np.array_equal(computed, expected[columns]):
            raise RuntimeError(f"internal error: the tiling of a {phase} row (W {in_width}, "
                               f"S {kernel}, U {stride}, P {pad}) does not add up to the golden row")
        if not candidates or candidates[-1][5] != last_offset:
            # No primitive has work (or none reaches this row, e.g. a stride
            # skips it), or (WG) none in the row's last kernel row, whose
            # offset gives the PE the row's length: an empty task closes the
            # row, no MACs.
            candidates.append((np.zeros(0, np.int64), np.zeros(0, np.int64),
                               TaskTile(slice(0, 0), slice(0, 0), 0, tile_len if phase == "bp"
                                        else 1, tile_len if phase == "ff" else 1),
                               np.zeros(0, int), [], last_offset, True))
        tasks, issued_per_task = [], []
        mask_tuple = tuple(tile_mask.tolist()) if tile_mask is not None else ()
        for number, (a_tile, b_tile, part, indices, issued, offset, here) \
                in enumerate(candidates):
            tasks.append(RowTask(
                phase=phase, stride=stride, pad=part.pad, kernel=kernel, in_width=part.in_width,
                out_width=part.out_width, stationary=tuple(b_tile.tolist()),
                mask=mask_tuple, dense=dense, row_last=number == len(candidates) - 1,
                elements=tuple(zip(a_tile[indices].tolist(), indices.tolist())), offset=offset,
                present=here))
            issued_per_task.append(issued)
        # What the PE drains: its accumulator saturates at acc_width.
        drained, _ = saturate(expected[columns], config.acc_width)
        result.append((columns, OutputRow(tasks, drained, dense_macs, effectual_macs,
                                          issued_per_task)))
    return result


def make_output_row(config, phase, primitives, **geometry):
    """:func:`make_output_rows` for a row that needs no tiling: one :class:`OutputRow`."""
    tiles = make_output_rows(config, phase, primitives, **geometry)
    if len(tiles) != 1:
        raise ValueError(f"this row needs {len(tiles)} tiles for max_row {config.max_row}; "
                         f"use make_output_rows")
    return tiles[0][1]


# Fewest row groups a layer is given (by splitting its rows) for the
# balancing of rows over the PEs to have something to work with, and the
# fewest primitives a piece of a split row keeps (each piece costs a row
# end and a drain).
MIN_GROUPS = 16
MIN_PIECE = 4


class LayerRows:
    """The output rows of one layer phase and the primitives that feed each.

    FF rows ``y[n,k,e]`` accumulate over ``(c, r)``; BP rows ``dx[n,c,h]``
    over ``(k, r)`` with ``e = (h + P - r) / U``; WG rows ``dw[k,c,b]`` over
    ``(r, n, e)``, where block ``b`` holds ``kernel_rows`` kernel rows ``r``
    one after the other (``S`` taps each; longer rows amortize the PE's
    per-row cost, and a WG row of one kernel row has only ``S`` outputs). A
    row is named by a key ``(i, j, l)`` in that order; ``j`` is the channel
    (FF ``k``, BP and WG ``c``) along which rows share their streamed rows,
    which is how the PE array splits them. BP takes the input size from
    ``input_hw``, ``mask`` or ``x``; WG the kernel size from ``kernel_hw`` or
    ``w``. :func:`wg_kernel_rows` gives the most kernel rows a PE holds.

    ``transposed`` (BP and WG, stride 1 only) swaps the streamed and the
    stationary operand, so that rows share their streamed rows along another
    dimension when the channels ``C`` do not fill the array (a first layer
    has one). With stride 1 a row primitive is symmetric in its two rows:
    BP's ``dx[v] += dy[f] * w[s]`` at ``v = f + s - P`` is again a BP
    primitive with the filter row streamed and the ``dy`` row (``F`` wide)
    as the kernel, so the BP rows ``dx[n,c,h]`` of all ``(n, h)`` share the
    streamed row ``w[k,c,r]``: keys ``(c, n*H + h, 0)``. WG's ``dw[s] +=
    dy[f] * x[f + s - P]`` is an FF primitive of the ``x`` row with the
    ``dy`` row as the kernel, so the rows ``dw[k,c,r]`` of all ``k`` share
    the streamed row ``x[n,c,e+r-P]``: keys ``(c, k, r)``. The MACs are the
    same pairs of operands, so dense and effectual MACs do not change; only
    which operand is compressed and skipped element by element (the
    streamed one) and which is skipped row by row (the stationary one).
    ``task_phase`` and ``task_kernel`` are what the hardware then runs.

    ``splits`` cuts every row's primitives into that many consecutive pieces,
    each a partial row of its own (a group per piece, the same members), which
    the host adds: a layer with few row groups, or with rows longer than the
    array's queues, gives the balancing in :meth:`groups` too few, too large
    items (a first layer's BP is one group of 16 rows whose work differs
    fourfold; see :meth:`for_config`). The pieces of the
    rows of a group stay aligned, so they still share their streamed rows.
    Assemble the output by adding each row into :meth:`output_view`.
    """

    def __init__(self, phase, *, x=None, w=None, dy=None, mask=None, stride, pad,
                 input_hw=None, kernel_hw=None, kernel_rows=1, transposed=False, splits=1):
        self.phase, self.x, self.w, self.dy, self.mask = phase, x, w, dy, mask
        self.stride, self.pad = stride, pad
        self.transposed = transposed
        if isinstance(splits, bool) or not isinstance(splits, int):
            raise TypeError(f"splits must be an int, not {splits!r}")
        if splits < 1:
            raise ValueError(f"splits must be at least 1, not {splits!r}")
        self.splits = splits
        if phase == "ff":
            n_len, c_len, h_len, w_len = x.shape
            k_len, _, r_len, s_len = w.shape
            e_len = golden.output_size(h_len, r_len, stride, pad)
            self.shape = (n_len, k_len, e_len)
        elif phase == "bp":
            n_len, k_len, e_len, _ = dy.shape
            _, c_len, r_len, s_len = w.shape
            h_len, w_len = input_hw or (mask.shape[2:] if mask is not None else x.shape[2:])
            self.shape = (n_len, c_len, h_len)
        else:
            n_len, c_len, h_len, w_len = x.shape
            k_len, e_len = dy.shape[1], dy.shape[2]
            r_len, s_len = kernel_hw or w.shape[2:]
            self.shape = (k_len, c_len, -(-r_len // kernel_rows))
        if phase != "wg" and kernel_rows != 1:
            raise ValueError(f"kernel_rows is a WG parameter; {phase} rows hold one, "
                             f"not {kernel_rows}")
        self.kernel_rows = kernel_rows
        self.n_len, self.k_len, self.c_len = n_len, k_len, c_len
        self.h_len, self.w_len, self.e_len = h_len, w_len, e_len
        self.r_len, self.s_len = r_len, s_len
        self.task_phase, self.task_kernel = phase, s_len
        if transposed:
            f_len = golden.output_size(w_len, s_len, stride, pad)
            if phase == "ff" or stride != 1 or kernel_rows != 1:
                raise ValueError(f"only BP and WG rows of stride 1 and one kernel row can be "
                                 f"transposed, not {phase} with stride {stride}, "
                                 f"kernel_rows {kernel_rows}")
            self.task_phase, self.task_kernel = {"bp": "bp", "wg": "ff"}[phase], f_len
            self.shape = ((c_len, n_len * h_len, 1) if phase == "bp"
                          else (c_len, k_len, r_len))

    @property
    def keys(self):
        return list(itertools.product(*(range(n) for n in self.shape)))

    def primitives(self, key):
        """``([(a, b), ...], mask_row)`` of the output row ``key``."""
        stride, pad = self.stride, self.pad
        if self.transposed and self.phase == "bp":
            c, position, _ = key
            n, h = divmod(position, self.h_len)
            # Every row of a group gets every (k, r), so the PEs' tasks stay
            # aligned; the rows of the image's edges lack some (placeholders).
            return [(self.w[k, c, r],
                     self.dy[n, k, h + pad - r] if 0 <= h + pad - r < self.e_len else None)
                    for k in range(self.k_len) for r in range(self.r_len)], \
                (self.mask[n, c, h] if self.mask is not None else None)
        if self.transposed:
            c, k, r = key
            return [(self.x[n, c, e + r - pad], self.dy[n, k, e])
                    for n in range(self.n_len) for e in range(self.e_len)
                    if 0 <= e + r - pad < self.h_len], None
        if self.phase == "ff":
            n, k, e = key
            return [(self.x[n, c, e * stride + r - pad], self.w[k, c, r])
                    for c in range(self.c_len) for r in range(self.r_len)
                    if 0 <= e * stride + r - pad < self.h_len], None
        if self.phase == "bp":
            n, c, h = key
            return [(self.dy[n, k, (h + pad - r) // stride], self.w[k, c, r])
                    for k in range(self.k_len) for r in range(self.r_len)
                    if (h + pad - r) % stride == 0
                    and 0 <= (h + pad - r) // stride < self.e_len], \
                (self.mask[n, c, h] if self.mask is not None else None)
        k, c, block = key
        rows = self._block_rows(block)
        return [(self.dy[n, k, e], self.x[n, c, e * stride + r - pad],
                 (r - rows.start) * self.s_len)
                for r in rows
                for n in range(self.n_len) for e in range(self.e_len)
                if 0 <= e * stride + r - pad < self.h_len], None

    def _block_rows(self, block):
        first = block * self.kernel_rows
        return range(first, min(first + self.kernel_rows, self.r_len))

    def output_view(self, output, key, columns):
        """The part of the layer's ``output`` that row ``key``'s ``columns`` hold,
        shaped like the row's values (a view: assign or add into it)."""
        if self.transposed and self.phase == "bp":
            c, position, _ = key
            n, h = divmod(position, self.h_len)
            return output[n, c, h, columns]
        if self.transposed:
            c, k, r = key
            return output[k, c, r, columns]
        if self.phase != "wg":
            return output[(*key, columns)]
        k, c, block = key
        rows = self._block_rows(block)
        return output[k, c, rows.start:rows.stop].reshape(-1)[columns]

    def tiles(self, config, key, *, dense=False, idle=False, piece=0):
        """``[(columns, OutputRow), ...]`` of row ``key`` (of its piece ``piece`` when
        ``splits`` > 1); ``idle``: the same streamed rows with zero stationary rows
        (a PE without a row of its own in a group)."""
        primitives, row_mask = self.primitives(key)
        expected = None
        if self.splits > 1:
            first, stop = (len(primitives) * n // self.splits for n in (piece, piece + 1))
            primitives = primitives[first:stop]
        elif not idle:
            # The whole row: its golden values are a slice of the layer's.
            expected = self.output_view(self.golden_output, key, slice(None))
        if idle:
            primitives = [(a, None if b is None else np.zeros_like(b), *rest)
                          for a, b, *rest in primitives]
        kernel_rows = len(self._block_rows(key[2])) \
            if self.phase == "wg" and not self.transposed else 1
        return make_output_rows(config, self.task_phase, primitives, stride=self.stride,
                                pad=self.pad, kernel=self.task_kernel, in_width=self.w_len,
                                mask=row_mask, dense=dense, kernel_rows=kernel_rows,
                                expected=expected)

    @functools.cached_property
    def golden_output(self):
        """The layer's exact result (:func:`pruning.golden.conv_phase`), computed once."""
        return golden.conv_phase(self.phase, x=self.x, w=self.w, dy=self.dy, mask=self.mask,
                                 stride=self.stride, pad=self.pad,
                                 input_hw=(self.h_len, self.w_len),
                                 kernel_hw=(self.r_len, self.s_len))

    @classmethod
    def for_config(cls, config, phase, *, x=None, w=None, dy=None, mask=None, stride, pad,
                   input_hw=None, kernel_hw=None, pes=None, dense=False):
        """The rows of a layer phase as ``config``'s array runs them best, in the
        given mode.

        WG rows hold as many kernel rows as fit (:func:`wg_kernel_rows`).
        Rows are split into pieces (``splits``) when the layer has fewer
        than ``MIN_GROUPS`` row groups, or when a row has more primitives
        than the array's queues hold (``array_queue_depth``): a PE can run
        ahead of the slowest one only by a queue, so the balancing works on
        rows no longer than that. A piece keeps at least ``MIN_PIECE``
        primitives and at least as many as the row has outputs (each piece
        is drained). When the channels ``C`` of a BP or WG layer do not fill
        the PEs and the layer can be transposed (stride 1, the ``dy`` row no
        wider than ``max_kernel``), the transposed and the natural rows are
        both laid out and the one with fewer :meth:`estimated_cycles` in
        this mode is taken (dense mode gets its own best mapping: the
        baseline is not handicapped). ``pes``: how many PEs share the
        streamed rows (default: the array's; 1 for a lone PE).
        """
        pes = pes or config.pes
        candidates = cls.candidates(config, phase, x=x, w=w, dy=dy, mask=mask, stride=stride,
                                    pad=pad, input_hw=input_hw, kernel_hw=kernel_hw, pes=pes)
        if len(candidates) == 1:
            return candidates[0]
        return min(candidates, key=lambda layer: layer.estimated_cycles(config, pes, dense=dense))

    @classmethod
    def candidates(cls, config, phase, *, x=None, w=None, dy=None, mask=None, stride, pad,
                   input_hw=None, kernel_hw=None, pes=None):
        """The layouts :meth:`for_config` chooses between, split as it splits them: the
        natural rows, and the transposed ones where they apply (see there). Any
        arrays of the operands' shapes will do: only shapes decide."""
        operands = dict(x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad, input_hw=input_hw,
                        kernel_hw=kernel_hw)
        pes = pes or config.pes
        kernel_rows = 1
        if phase == "wg":
            kernel_rows = wg_kernel_rows(config, kernel_hw or w.shape[2:])
        candidates = [cls(phase, kernel_rows=kernel_rows, **operands)]
        natural = candidates[0]
        if phase != "ff" and stride == 1 and natural.c_len < pes and \
                golden.output_size(natural.w_len, natural.s_len, stride, pad) <= config.max_kernel:
            candidates.append(cls(phase, transposed=True, **operands))
        return [layer._split(config, pes, operands) for layer in candidates]

    def _split(self, config, pes, operands):
        """This layout, its rows split into pieces as :meth:`for_config` says."""
        outer, channels, inner = self.shape
        groups = outer * -(-channels // pes) * inner
        first = (0, 0, 0)     # keys[0], without listing every key
        longest = len(self.primitives(first)[0])
        wanted = max(-(-MIN_GROUPS // groups), -(-longest // config.array_queue_depth))
        splits = max(1, min(wanted, longest // max(MIN_PIECE, self._longest_output(config))))
        if splits == 1:
            return self
        return type(self)(self.phase, kernel_rows=self.kernel_rows, transposed=self.transposed,
                          splits=splits, **operands)

    def _longest_output(self, config):
        """Outputs of the longest tile of the first row (of :meth:`tiles`)."""
        if self.phase == "wg" and not self.transposed:
            return self.s_len * len(self._block_rows(0))
        return max(columns.stop - columns.start for columns, _ in row_tiling(
            config, self.task_phase, in_width=self.w_len, kernel=self.task_kernel,
            stride=self.stride, pad=self.pad))

    def estimated_cycles(self, config, pes, *, dense=False):
        """A bound on the array's cycles for these rows: the busiest PE's
        :meth:`OutputRow.pe_cycles` after balancing, or the broadcast's beats
        (one per cycle), whichever is larger."""
        load, beats = [0] * pes, 0
        for _, _, rows in self.groups(config, pes, dense=dense):
            for unit, row in enumerate(rows):
                load[unit] += row.pe_cycles(config)
            beats += sum(max(1, tasks[0].beats(config.elements_per_beat))
                         for tasks in zip(*(row.tasks for row in rows)))
        return max(max(load), beats)

    def groups(self, config, pes, *, dense=False, balance=True):
        """Rows for a ``pes``-PE array, in order: ``(keys, columns, [OutputRow per PE])``.

        The rows of one group differ only in the channel ``j``, so they share
        every streamed row. ``keys[p]`` is None where PE ``p`` has no row of
        its own (the last group of a channel count that ``pes`` does not
        divide): it gets zero stationary rows and its results are dropped.

        In sparse mode a group in which no PE has an effectual MAC is left
        out: its rows are all zeros (every product has a zero operand or a
        masked output), which the caller's zero-initialized output holds.

        With ``balance`` the rows of a group are assigned to the PEs by
        longest processing time first: the member with the most work goes to
        the PE with the least work so far in the layer (work as
        :meth:`OutputRow.pe_cycles` estimates it). In sparse mode the
        channels hold very different work (a ReLU mask or an input channel
        can be mostly zero), and a fixed channel-to-PE map would leave the
        array waiting for the PE of the busiest channel; the compiler knows
        every row's work, since it compresses the rows itself. Any
        assignment keeps the operands shareable: a command names, per PE,
        the row of a stationary (and mask) entry it takes.
        """
        outer, channels, inner = self.shape
        load = [0] * pes
        # Channel blocks outermost: consecutive groups share their stationary
        # rows (FF: the filter rows of a block of output channels; BP: of a
        # block of input channels; WG: the input rows of a block of
        # channels), so a run of the top level holds few stationary entries.
        for first in range(0, channels, pes):
            for i in range(outer):
                for l, piece in itertools.product(range(inner), range(self.splits)):
                    members = [(i, j, l) for j in range(first, min(first + pes, channels))]
                    per_pe = [self.tiles(config, key, dense=dense, piece=piece)
                              for key in members]
                    per_pe += [self.tiles(config, members[0], dense=dense, idle=True,
                                          piece=piece)] * (pes - len(members))
                    keys = members + [None] * (pes - len(members))
                    if balance:
                        # A PE without a row of its own does no work in either mode.
                        work = [0 if key is None else
                                sum(row.pe_cycles(config) for _, row in tiles)
                                for key, tiles in zip(keys, per_pe)]
                        placed = [0] * pes
                        by_load = sorted(range(pes), key=lambda unit: load[unit])
                        by_work = sorted(range(pes), key=lambda member: -work[member])
                        for unit, member in zip(by_load, by_work):
                            placed[unit] = member
                            load[unit] += work[member]
                        per_pe = [per_pe[n] for n in placed]
                        keys = [keys[n] for n in placed]
                    for position, (columns, _) in enumerate(per_pe[0]):
                        rows = [tiles[position][1] for tiles in per_pe]
                        if not dense and not any(row.effectual_macs for row in rows):
                            continue    # all zeros: nothing for the hardware to do
                        yield keys, columns, rows


def wg_kernel_rows(config, kernel_hw):
    """Kernel rows a WG output row of ``config``'s PE holds: as many as fit ``max_row``."""
    r_len, s_len = kernel_hw
    return max(1, min(r_len, config.max_row // s_len))


def layer_output_rows(config, phase, *, x=None, w=None, dy=None, mask=None, stride, pad,
                      dense=False, rows=None, input_hw=None, kernel_hw=None):
    """Every output row of a layer phase, in order: ``((i, j, l, columns), OutputRow)``.

    ``(i, j, l)`` names the output row (see :class:`LayerRows`) and ``columns``
    the slice of it that the :class:`OutputRow` holds (rows longer than
    ``max_row`` are tiled). ``rows`` optionally selects output rows by their
    position in that order (a list of ints), to run a sample of a large layer.
    """
    layer = LayerRows(phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                      input_hw=input_hw, kernel_hw=kernel_hw)
    keys = layer.keys
    for position in (range(len(keys)) if rows is None else rows):
        for columns, row in layer.tiles(config, keys[position], dense=dense):
            yield (*keys[position], columns), row


def _field_packer(shape):
    """A function ``value -> bits`` for an Amaranth shape or data layout: the bits
    ``Layout.const(value).as_bits()`` has, built once per layout (``const``
    itself costs tens of microseconds per field, and a layer has millions)."""
    from amaranth.hdl import Shape, ShapeCastable
    from amaranth.lib import data

    if isinstance(shape, data.StructLayout):
        fields = [(name, field.offset, _field_packer(field.shape)) for name, field in shape]
        return lambda value: sum(pack(value[name]) << offset for name, offset, pack in fields)
    if isinstance(shape, data.ArrayLayout):
        width, pack = Shape.cast(shape.elem_shape).width, _field_packer(shape.elem_shape)
        length = shape.length

        def pack_array(value):
            if len(value) != length:
                raise ValueError(f"an array of {length} elements, not {len(value)}")
            return sum(pack(item) << (index * width) for index, item in enumerate(value))
        return pack_array
    cast = Shape.cast(shape)
    width, signed = cast.width, cast.signed
    low, high = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    mask = (1 << width) - 1
    enum = isinstance(shape, ShapeCastable)

    def pack_value(value):
        value = value.value if enum and not isinstance(value, int) else value
        if not low <= value <= high:
            raise ValueError(f"{value!r} does not fit {cast}")
        return value & mask
    return pack_value


_PACKERS = {}


def pack_payload(layout, values):
    """The bits of ``values`` in ``layout`` as an unsigned int, as
    ``layout.const(values).as_bits()`` gives them, refusing a value that does
    not fit its field."""
    # By identity: comparing layouts for equality costs more than packing.
    # The layout is kept with its packer, so its id is not reused.
    cached = _PACKERS.get(id(layout))
    if cached is None:
        cached = _PACKERS[id(layout)] = (layout, _field_packer(layout))
    return cached[1](values)


class Packer:
    """Pack tasks and elements into the PE's payload bits, unpack results."""

    def __init__(self, config):
        from hw.layouts import Phase, element_layout, result_layout, task_layout

        self._config = config
        self._phase = {name: Phase(code) for name, code in PHASE_CODES.items()}
        self.task_layout = task_layout(config)
        self.element_layout = element_layout(config)
        self.result_layout = result_layout(config)

    def _bits(self, layout, values):
        return pack_payload(layout, values)

    def task(self, task):
        return self._bits(self.task_layout, self._task_values(task))

    def _padded(self, row):
        return list(row) + [0] * (self._config.max_row - len(row))

    @staticmethod
    def _mask_bits(mask):
        return sum(1 << i for i, bit in enumerate(mask) if bit)

    def _task_values(self, task):
        stationary = self._padded(task.stationary)
        mask_bits = self._mask_bits(task.mask)
        return ({
            "phase": self._phase[task.phase], "dense": int(task.dense), "empty": int(task.empty),
            "row_last": int(task.row_last), "stride": task.stride, "pad": task.pad,
            "kernel": task.kernel, "in_width": task.in_width, "out_width": task.out_width,
            "offset": task.offset, "mask": mask_bits, "stationary": stationary,
        })

    def bundle(self, tasks, present=None):
        """One array bundle from the aligned tasks of all PEs (shared geometry).

        ``present`` lists, per PE, whether it has an output row of its own
        (default: all do)."""
        from hw.layouts import bundle_layout

        first = tasks[0]
        shared = ("phase", "stride", "pad", "kernel", "in_width", "out_width", "dense",
                  "row_last", "elements", "offset")
        for task in tasks[1:]:
            if any(getattr(task, name) != getattr(first, name) for name in shared):
                raise ValueError("tasks of one bundle must share geometry and streamed elements")
        present = [here and task.present
                   for here, task in zip(present or [True] * len(tasks), tasks)]
        return self._bits(bundle_layout(self._config), {
            "task": self._task_values(first),
            "stationary": [self._padded(task.stationary) for task in tasks],
            "mask": [self._mask_bits(task.mask) for task in tasks],
            "present": sum(1 << p for p, here in enumerate(present) if here),
        })

    def beats(self, task):
        """The operand beats of a task: its elements, ``elements_per_beat`` at a time."""
        per_beat = self._config.elements_per_beat
        elements = task.elements
        beats = []
        for first in range(0, len(elements), per_beat):
            chunk = elements[first:first + per_beat]
            padding = [(0, 0)] * (per_beat - len(chunk))
            beats.append(self._bits(self.element_layout, {
                "value": [v for v, _ in chunk + tuple(padding)],
                "index": [i for _, i in chunk + tuple(padding)],
                "count": len(chunk),
                "last": int(first + per_beat >= len(elements)),
            }))
        return beats

    def result(self, bits):
        """``(value, last)`` of a result payload given as an unsigned integer."""
        layout = self.result_layout
        value_field, last_field = layout["value"], layout["last"]
        raw = (bits >> value_field.offset) & ((1 << value_field.width) - 1)
        if raw >> (value_field.width - 1):
            raw -= 1 << value_field.width
        return raw, (bits >> last_field.offset) & 1
