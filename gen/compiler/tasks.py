"""Row primitives as one PE consumes them: tasks, streamed elements, expected rows, bits.

The host-side half of the PE's contract (docs/SPEC.md, "Row primitives"). An
output row is a sequence of row primitives that the PE accumulates, the last
one marked ``row_last``. In sparse mode only the nonzero elements of the
streamed row are sent and a primitive whose streamed row is all zero is not
sent at all (its work is zero); an output row none of whose primitives has
work is closed by one *empty* task (:func:`gen.compiler.tiling.needs_closing`).
In dense mode every element of every primitive is sent.

:func:`make_output_rows` builds the tasks and the golden result of one output
row from explicit primitives (the PE benches and tests, and
:func:`layer_row`: a row of a layer for a lone PE); the array's programs are
packed from the schedule (:mod:`gen.compiler.program`) into the same
:class:`RowTask` s. Packing uses the payload layouts of :mod:`hw.layouts`
built from the same :class:`~hw.config.AccelConfig`, so the host never
restates a field offset.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data

from hw.config import PHASE_CODES, to_signed
from hw.layouts import Phase, bundle_layout, element_layout, result_layout, task_layout
from pruning import golden
from pruning.fixedpoint import saturate

from .schedule import works_in
from .scratchpad import ScratchpadRows, SharedRows, separate_rounds
from .tiling import (check_fits, check_values, closing_offset, closing_tile, needs_closing,
                     row_tiling, task_slots)

__all__ = ["RowTask", "OutputRow", "make_output_rows", "make_output_row", "layer_row",
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

    def timing(self, config):
        """``(issue_cycles, out_len, idle_beats)``, as :func:`hw.pe.overhead_bound` takes."""
        return (self.issue_cycles(config.lanes), self.out_len,
                self.idle_beats(config.elements_per_beat))


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
    check_values(config, "streamed row", streamed)
    check_values(config, "stationary row", stationary)
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
    last_offset = closing_offset(phase, out_len, kernel)

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
        tasks, issued_per_task = [], []
        mask_tuple = tuple(tile_mask.tolist()) if tile_mask is not None else ()

        def add_task(tile, stationary_row, elements, offset, here):
            tasks.append(RowTask(
                phase=phase, stride=stride, pad=tile[0], kernel=kernel, in_width=tile[1],
                out_width=tile[2], stationary=stationary_row, mask=mask_tuple, dense=dense,
                row_last=False, elements=elements, offset=offset, present=here))

        for number in range(count):
            for part, a_tiles, b_tiles, per_dense, per_effectual in per_part:
                a_tile = a_tiles[number]
                indices = np.arange(a_tile.size) if dense else np.flatnonzero(a_tile)
                if indices.size:
                    issued = per_dense * int(present[number]) if dense else per_effectual[number]
                    add_task((part.pad, part.in_width, part.out_width),
                             tuple(b_tiles[number].tolist()),
                             tuple(zip(a_tile[indices].tolist(), indices.tolist())),
                             int(offsets[number]), bool(present[number]))
                    issued_per_task.append(issued[indices].tolist())
        # The tiling is host arithmetic; check it against the golden row first.
        if not np.array_equal(computed, expected[columns]):
            raise RuntimeError(f"internal error: the tiling of a {phase} row (W {in_width}, "
                               f"S {kernel}, U {stride}, P {pad}) does not add up to the golden row")
        if needs_closing(phase, tasks[-1].offset if tasks else None, out_len, kernel):
            add_task(closing_tile(phase, tile_len), (), (), last_offset, True)
            issued_per_task.append([])
        tasks[-1] = dataclasses.replace(tasks[-1], row_last=True)
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


def layer_row(config, spec, mapping, key, *, dense=False):
    """``[(columns, OutputRow), ...]``: output row ``key`` of a layer phase (``spec``,
    values) under ``mapping`` (:class:`~gen.compiler.mapping.Mapping`), for a lone PE:
    the mapping's primitives of the row as :func:`make_output_rows` takes them."""
    i, j, l = key
    a_rows, b_rows, masks = mapping.operand_rows(spec)
    a_index, b_index, offset, mask_index = mapping.primitives(i, [j], l)
    primitives = [(a_rows[a], b_rows[b] if b >= 0 else None, int(o))
                  for a, b, o in zip(a_index.tolist(), b_index[:, 0].tolist(), offset.tolist())]
    kernel_rows = len(mapping.block_rows(l)) if mapping.wg_rows else 1
    mask = masks[mask_index[0]] if mapping.task_phase == "bp" else None
    return make_output_rows(config, mapping.task_phase, primitives, stride=mapping.stride,
                            pad=mapping.pad, kernel=mapping.task_kernel, in_width=mapping.w_len,
                            mask=mask, dense=dense, kernel_rows=kernel_rows)


# The geometry fields of a load entry (ignored by the PE).
_LOAD = RowTask(phase="ff", stride=1, pad=0, kernel=1, in_width=1, out_width=1, stationary=(),
                mask=(), dense=False, row_last=False, elements=())


def _field_packer(shape):
    """A function ``value -> bits`` for an Amaranth shape or data layout: the bits
    ``Layout.const(value).as_bits()`` has, built once per layout (``const``
    itself costs tens of microseconds per field, and a layer has millions)."""
    if isinstance(shape, data.StructLayout):
        fields = [(name, field.offset, _field_packer(field.shape)) for name, field in shape]
        names = {name for name, _, _ in fields}

        def pack_struct(value):
            # A field the layout does not have would be dropped silently: refuse it.
            if len(value) != len(fields):
                raise ValueError(f"fields {sorted(set(value) - names)} are not in the "
                                 f"layout, or {sorted(names - set(value))} are missing")
            return sum(pack(value[name]) << offset for name, offset, pack in fields)
        return pack_struct
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
        self._config = config
        self._phase = {name: Phase(code) for name, code in PHASE_CODES.items()}
        self.task_layout = task_layout(config)
        self.element_layout = element_layout(config)
        self.result_layout = result_layout(config)

    def _bits(self, layout, values):
        return pack_payload(layout, values)

    def task(self, task, row=0, load=None):
        """The task-stream entry of ``task``, its stationary row at scratchpad line ``row``;
        ``load``: ``(line, operands)`` the entry also writes into the scratchpad."""
        values = self._task_values(task, row)
        if load is not None:
            values.update(load=1, load_line=load[0], line=list(load[1]))
        return self._bits(self.task_layout, values)

    def load(self, line, operands):
        """The load-only task-stream entry that writes ``operands`` (``line_words`` of
        them) into scratchpad line ``line``."""
        values = self._task_values(_LOAD)
        values.update(load=1, load_only=1, empty=1, load_line=line, line=list(operands))
        return self._bits(self.task_layout, values)

    def task_stream(self, tasks, rows=None):
        """The task-stream entries of ``tasks`` for a lone PE: each task's stationary row
        loaded (when the scratchpad does not hold it already, by value) before it.
        ``rows``: a :class:`~gen.compiler.scratchpad.ScratchpadRows` to place them with
        (a fresh one by default)."""
        rows = rows or ScratchpadRows.of(self._config)
        entries = []
        for task in tasks:
            line, loads = 0, []
            if not task.empty:
                line, loads = rows.place(task.stationary, len(task.stationary))
            lines = [(address, rows.lines_of(task.stationary, index))
                     for address, index in loads]
            alone = int(separate_rounds(len(lines)))
            entries += [self.load(*load) for load in lines[:alone]]
            entries.append(self.task(task, line, lines[alone] if lines else None))
        return entries

    def padded(self, row):
        """A stationary row as the PE holds it: ``max_row`` operands, zeros after ``row``."""
        return list(row) + [0] * (self._config.max_row - len(row))

    @staticmethod
    def mask_bits(mask):
        """A BP mask row as its bits: bit ``h`` set where output ``h`` is computed."""
        return sum(1 << i for i, bit in enumerate(mask) if bit)

    def _task_values(self, task, row=0):
        return ({
            "phase": self._phase[task.phase], "dense": int(task.dense), "empty": int(task.empty),
            "row_last": int(task.row_last), "load": 0, "load_only": 0, "stride": task.stride,
            "pad": task.pad, "kernel": task.kernel, "in_width": task.in_width,
            "out_width": task.out_width, "offset": task.offset,
            "mask": self.mask_bits(task.mask), "row": row, "load_line": 0,
            "line": [0] * self._config.line_words,
        })

    def bundle_stream(self, bundles, rows=None):
        """The PE array's task-stream entries of ``bundles`` (``[(tasks, present), ...]``,
        the aligned tasks of all PEs, as :func:`gen.compiler.program.bundle_tasks` gives
        them): each bundle's stationary rows (one per PE, by value) placed on one line for
        all PEs, and loaded before it by the PEs that work on it and do not hold theirs,
        a load bundle per line. A PE works on a primitive when it is present and, in
        sparse mode, its row and mask are not all zero
        (:func:`gen.compiler.schedule.works_in`). ``rows``: the
        :class:`~gen.compiler.scratchpad.SharedRows` to place them with."""
        layout, pes = bundle_layout(self._config), len(bundles[0][0]) if bundles else 0
        rows = rows or SharedRows.of(self._config)
        words = self._config.line_words
        entries = []
        for tasks, present in bundles:
            first = tasks[0]
            shared = ("phase", "stride", "pad", "kernel", "in_width", "out_width", "dense",
                      "row_last", "elements", "offset")
            for task in tasks[1:]:
                if any(getattr(task, name) != getattr(first, name) for name in shared):
                    raise ValueError("tasks of one bundle must share geometry and streamed "
                                     "elements")
            here = [bool(p) and task.present for p, task in zip(present, tasks)]
            works = [bool(w) for w in works_in(first.dense, np.array(here),
                                               np.array([task.idle for task in tasks]))]
            line, rounds, loading = 0, 0, [False] * pes
            if first.elements and any(works):
                line, count, loading = rows.place([task.stationary for task in tasks], works)
                rounds = count if any(loading) else 0
            # All but the rows' last line in load-only bundles before the primitive,
            # the last with it.
            alone = int(separate_rounds(rounds))

            def lines_of(number):
                return number + line, {
                    "line": [rows.lines_of(task.stationary, number) if loading[unit]
                             else [0] * words for unit, task in enumerate(tasks)],
                    "loads": sum(1 << unit for unit, here in enumerate(loading) if here)}
            for number in range(alone):
                load_line, values = lines_of(number)
                entries.append(self._bits(layout, {
                    "task": {**self._task_values(_LOAD), "load_only": 1, "empty": 1,
                             "load_line": load_line},
                    "mask": [0] * pes, "works": 0, **values}))
            load_line, riding = lines_of(alone) if rounds else (
                0, {"line": [[0] * words] * pes, "loads": 0})
            entries.append(self._bits(layout, {
                "task": {**self._task_values(first, line), "load_line": load_line},
                "mask": [self.mask_bits(task.mask) for task in tasks],
                "works": sum(1 << p for p, here in enumerate(works) if here),
                **riding,
            }))
        return entries

    def beats(self, task):
        """The operand beats of a task: its elements, ``elements_per_beat`` at a time."""
        return self.element_beats(task.elements)

    def element_beats(self, elements):
        """The operand beats of streamed ``elements`` (``(value, index)`` pairs)."""
        per_beat = self._config.elements_per_beat
        beats = []
        for first in range(0, len(elements), per_beat):
            chunk = tuple(elements[first:first + per_beat])
            padding = ((0, 0),) * (per_beat - len(chunk))
            beats.append(self._bits(self.element_layout, {
                "value": [v for v, _ in chunk + padding],
                "index": [i for _, i in chunk + padding],
                "count": len(chunk),
                "last": int(first + per_beat >= len(elements)),
            }))
        return beats

    def result(self, bits):
        """``(value, last)`` of a result payload given as an unsigned integer."""
        layout = self.result_layout
        value_field, last_field = layout["value"], layout["last"]
        return (to_signed(bits >> value_field.offset, value_field.width),
                (bits >> last_field.offset) & 1)
