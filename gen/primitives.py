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

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from hw.config import PHASE_CODES, AccelConfig
from pruning import golden

__all__ = ["RowTask", "OutputRow", "make_output_row", "layer_output_rows", "check_fits",
           "Packer"]


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

    @property
    def empty(self):
        return not self.elements


@dataclass
class OutputRow:
    """One output row: its tasks, the golden result and the work it holds."""

    tasks: list
    expected: np.ndarray
    dense_macs: int
    effectual_macs: int
    # Per task, the MACs the PE issues for each streamed element, in stream
    # order (dense or sparse mode).
    issued_per_task: list = field(default_factory=list)

    def issue_cycles(self, lanes):
        """Cycles the issue stage needs: each element's MACs, ``lanes`` per cycle."""
        return sum(math.ceil(n / lanes) for issued in self.issued_per_task for n in issued)

    @property
    def out_len(self):
        return int(self.expected.size)

    def idle_beats(self, per_beat):
        """Beats of ``per_beat`` elements none of which has a MAC (the PE drops them all)."""
        return sum(1 for issued in self.issued_per_task
                   for first in range(0, len(issued), per_beat)
                   if not any(issued[first:first + per_beat]))

    def timing(self, config):
        """``(issue_cycles, out_len, idle_beats)``, as :func:`hw.pe.overhead_bound` takes."""
        return (self.issue_cycles(config.lanes), self.out_len,
                self.idle_beats(config.elements_per_beat))


def check_fits(config, *, phase, stride, pad, kernel, in_width, out_width):
    """ValueError naming the first parameter the PE of ``config`` cannot take."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    if phase not in PHASE_CODES:
        raise ValueError(f"phase must be one of {', '.join(PHASE_CODES)}, not {phase!r}")
    limits = [("stride", stride, 1, config.max_stride), ("pad", pad, 0, config.max_pad),
              ("kernel width", kernel, 1, config.max_kernel),
              ("input row length", in_width, 1, config.max_row),
              ("output row length", out_width, 1, config.max_row)]
    for name, value, low, high in limits:
        if not low <= value <= high:
            raise ValueError(f"{name} must be in {low}..{high} for config {config.name}, "
                             f"not {value}")
    if golden.output_size(in_width, kernel, stride, pad) != out_width:
        raise ValueError(f"output row length {out_width} does not match input {in_width}, "
                         f"kernel {kernel}, stride {stride}, pad {pad}")


def _check_values(config, name, row):
    row = np.asarray(row)
    if row.size and (row.min() < config.data_min or row.max() > config.data_max):
        raise ValueError(f"{name} has values outside the {config.data_width}-bit range "
                         f"{config.data_min}..{config.data_max}")


def make_output_row(config, phase, primitives, *, stride, pad, kernel, in_width, mask=None,
                    dense=False):
    """Tasks and golden result of one output row.

    Parameters
    ----------
    primitives : list of (a, b)
        Streamed and stationary rows of each primitive into this output row;
        empty when no input row reaches it (all zeros, no MACs).
    kernel, in_width : int
        S and W of the layer row; F follows.
    mask : row or None
        BP output mask over W.
    """
    out_width = golden.output_size(in_width, kernel, stride, pad)
    check_fits(config, phase=phase, stride=stride, pad=pad, kernel=kernel, in_width=in_width,
               out_width=out_width)
    out_len = {"ff": out_width, "bp": in_width, "wg": kernel}[phase]
    row_mask = None
    if phase == "bp" and mask is not None:
        row_mask = (np.asarray(mask) != 0).astype(np.int64)
    expected = np.zeros(out_len, dtype=np.int64)
    dense_macs = effectual_macs = 0
    candidates = []
    for a, b in primitives:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        _check_values(config, "streamed row", a)
        _check_values(config, "stationary row", b)
        golden_len = None if phase == "ff" else out_len
        expected += golden.row_primitive(phase, a, b, stride, pad, golden_len, row_mask)
        per_dense, per_effectual = golden.row_macs_per_element(phase, a, b, stride, pad,
                                                               golden_len, row_mask)
        dense_macs += int(per_dense.sum())
        effectual_macs += int(per_effectual.sum())
        indices = np.arange(a.size) if dense else np.flatnonzero(a)
        if indices.size:
            issued = per_dense if dense else per_effectual
            candidates.append((a, b, indices, [int(issued[i]) for i in indices]))
    if not candidates:
        # No primitive has work (or none reaches this row, e.g. a stride
        # skips it): one empty task closes the row, all zeros, no MACs.
        candidates.append((np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, int), []))
    tasks, issued_per_task = [], []
    stationary_len = config.max_row
    mask_tuple = tuple(int(v) for v in row_mask) if row_mask is not None else (
        (1,) * in_width if phase == "bp" else ())
    for number, (a, b, indices, issued) in enumerate(candidates):
        stationary = tuple(int(v) for v in b)
        if len(stationary) > stationary_len:
            raise ValueError(f"stationary row of length {len(stationary)} exceeds max_row "
                             f"{stationary_len}")
        tasks.append(RowTask(
            phase=phase, stride=stride, pad=pad, kernel=kernel, in_width=in_width,
            out_width=out_width, stationary=stationary, mask=mask_tuple, dense=dense,
            row_last=number == len(candidates) - 1,
            elements=tuple((int(a[i]), int(i)) for i in indices)))
        issued_per_task.append(issued)
    return OutputRow(tasks, expected, dense_macs, effectual_macs, issued_per_task)


def layer_output_rows(config, phase, *, x=None, w=None, dy=None, mask=None, stride, pad,
                      dense=False, rows=None, input_hw=None, kernel_hw=None):
    """Every output row of a layer phase, in order, as :class:`OutputRow`.

    FF rows ``y[n,k,e]`` accumulate over ``(c, r)``; BP rows ``dx[n,c,h]``
    over ``(k, r)`` with ``e = (h + P - r) / U``; WG rows ``dw[k,c,r]`` over
    ``(n, e)``. ``rows`` optionally selects output rows by their position in
    that order (a list of ints), to run a sample of a large layer. BP takes
    the input size from ``input_hw``, ``mask`` or ``x``; WG the kernel size
    from ``kernel_hw`` or ``w``.
    """
    if phase == "ff":
        n_len, c_len, h_len, w_len = x.shape
        k_len, _, r_len, s_len = w.shape
        e_len = golden.output_size(h_len, r_len, stride, pad)
        keys = itertools.product(range(n_len), range(k_len), range(e_len))
    elif phase == "bp":
        n_len, k_len, e_len, _ = dy.shape
        _, c_len, r_len, s_len = w.shape
        h_len, w_len = input_hw or (mask.shape[2:] if mask is not None else x.shape[2:])
        keys = itertools.product(range(n_len), range(c_len), range(h_len))
    else:
        n_len, c_len, h_len, w_len = x.shape
        k_len, e_len = dy.shape[1], dy.shape[2]
        r_len, s_len = kernel_hw or w.shape[2:]
        keys = itertools.product(range(k_len), range(c_len), range(r_len))
    keys = list(keys)
    selected = range(len(keys)) if rows is None else rows
    for position in selected:
        key = keys[position]
        if phase == "ff":
            n, k, e = key
            primitives = [(x[n, c, e * stride + r - pad], w[k, c, r])
                          for c in range(c_len) for r in range(r_len)
                          if 0 <= e * stride + r - pad < h_len]
            row_mask = None
        elif phase == "bp":
            n, c, h = key
            primitives = [(dy[n, k, (h + pad - r) // stride], w[k, c, r])
                          for k in range(k_len) for r in range(r_len)
                          if (h + pad - r) % stride == 0 and 0 <= (h + pad - r) // stride < e_len]
            row_mask = mask[n, c, h] if mask is not None else None
        else:
            k, c, r = key
            primitives = [(dy[n, k, e], x[n, c, e * stride + r - pad])
                          for n in range(n_len) for e in range(e_len)
                          if 0 <= e * stride + r - pad < h_len]
            row_mask = None
        yield key, make_output_row(config, phase, primitives, stride=stride, pad=pad,
                                   kernel=s_len, in_width=w_len, mask=row_mask, dense=dense)


class Packer:
    """Pack tasks and elements into the PE's payload bits, unpack results."""

    def __init__(self, config):
        from amaranth.hdl import Const
        from hw.layouts import Phase, element_layout, result_layout, task_layout

        self._config = config
        self._const = Const
        self._phase = {name: Phase(code) for name, code in PHASE_CODES.items()}
        self.task_layout = task_layout(config)
        self.element_layout = element_layout(config)
        self.result_layout = result_layout(config)

    def _bits(self, layout, values):
        return self._const.cast(layout.const(values).as_value()).value

    def task(self, task):
        config = self._config
        stationary = list(task.stationary) + [0] * (config.max_row - len(task.stationary))
        mask_bits = sum(1 << i for i, bit in enumerate(task.mask) if bit)
        return self._bits(self.task_layout, {
            "phase": self._phase[task.phase], "dense": int(task.dense), "empty": int(task.empty),
            "row_last": int(task.row_last), "stride": task.stride, "pad": task.pad,
            "kernel": task.kernel, "in_width": task.in_width, "out_width": task.out_width,
            "mask": mask_bits, "stationary": stationary,
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
