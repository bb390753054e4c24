"""Cycle-model traces of a layer phase straight from its operands' nonzero maps.

:func:`gen.cycles.estimate_layer` compiles a layer exactly as the host does
for the RTL (every row compressed, every buffer image packed), which costs
Python time per row primitive: fine for the regression layers, hours for a
whole AlexNet. This module lays out the same mapping with index arithmetic
and computes what the cycle model needs of each primitive (its beats, and
per PE its issue cycles, whether it works in it, whether it closes a row)
in loops compiled with numba, so a whole training step of AlexNet or
ResNet-18 is estimated in minutes. Only where operands are nonzero matters,
so it takes sparsity maps as well as tensors.

The mapping is :meth:`gen.primitives.LayerRows.for_config`'s: output rows
grouped one per PE, FF and BP rows tiled into column tiles and WG rows
holding :func:`~gen.primitives.wg_kernel_rows` kernel rows, the transposed
layout for stride-1 BP and WG layers whose channels do not fill the array
(taken when its estimate is lower), rows split into pieces
(``MIN_GROUPS``, ``MIN_PIECE``, ``array_queue_depth``), each group's rows
assigned to the PEs longest-processing-time first, groups without an
effectual MAC left out in sparse mode. ``tests/test_traces.py`` checks that
the traces equal those of the compiled program.

Runs (:func:`gen.program.build_runs`) are packed by the same rules, with one
difference: the compiler stores equal stationary rows, mask rows and
streamed rows once by their *values*, this module by *which* row of which
tensor they are; run boundaries can therefore fall a little earlier here
(rows of zeros are the common case of equal values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np


from .cycles import Trace, queue_timing
from .layer import check_mode
from .program import Capacity

__all__ = ["layer_traces", "LayerMaps", "nonzero_map"]

_PHASE_CODES = {"ff": 0, "bp": 1, "wg": 2}


def nonzero_map(array):
    """Where ``array`` is nonzero, as a contiguous ``uint8`` array (None stays None)."""
    return None if array is None else np.ascontiguousarray(np.asarray(array) != 0,
                                                           dtype=np.uint8)


@dataclass
class LayerMaps:
    """Nonzero maps of a layer phase's operands, as ``uint8`` arrays (None where unused)."""

    phase: str
    x: np.ndarray | None
    w: np.ndarray | None
    dy: np.ndarray | None
    mask: np.ndarray | None
    stride: int
    pad: int
    input_hw: tuple
    kernel_hw: tuple

    @classmethod
    def of(cls, spec):
        """The maps of a checked :class:`gen.layer.LayerSpec` (or anything with its fields)."""
        return cls(spec.phase, nonzero_map(spec.x), nonzero_map(spec.w), nonzero_map(spec.dy),
                   nonzero_map(spec.mask), spec.stride, spec.pad, tuple(spec.input_hw),
                   tuple(spec.kernel_hw))


class _Layout:
    """One way to run a layer phase (a :class:`~gen.primitives.LayerRows` of the maps, which
    decides the shape, the task geometry, kernel-row blocks and splits): streamed rows
    ``a_rows``, stationary rows ``b_rows``, mask rows, and the row groups as index arrays."""

    def __init__(self, config, maps, rows):
        from .primitives import row_tiling

        self.rows = rows
        self.phase, self.transposed = rows.phase, rows.transposed
        self.stride, self.pad = rows.stride, rows.pad
        self.shape, self.splits, self.kernel_rows = rows.shape, rows.splits, rows.kernel_rows
        self.task_phase, self.task_kernel = rows.task_phase, rows.task_kernel
        self.n, self.c, self.k = rows.n_len, rows.c_len, rows.k_len
        self.h, self.w, self.e = rows.h_len, rows.w_len, rows.e_len
        self.r, self.s = rows.r_len, rows.s_len
        streamed, stationary = {("ff", False): (maps.x, maps.w), ("bp", False): (maps.dy, maps.w),
                                ("wg", False): (maps.dy, maps.x), ("bp", True): (maps.w, maps.dy),
                                ("wg", True): (maps.x, maps.dy)}[self.phase, self.transposed]
        self.a_rows = np.ascontiguousarray(streamed.reshape(-1, streamed.shape[-1]))
        self.b_rows = np.ascontiguousarray(stationary.reshape(-1, stationary.shape[-1]))
        if self.phase != "bp":
            self.masks = np.ones((1, self.w), np.uint8)       # never read
        elif maps.mask is None:       # BP without a mask computes every output
            self.masks = np.ones((self.n * self.c * self.h, self.w), np.uint8)
        else:
            self.masks = np.ascontiguousarray(maps.mask.reshape(-1, self.w))
        # The tiles of a row: per position its output columns and its task tiles.
        plan = row_tiling(config, self.task_phase, in_width=self.w, kernel=self.task_kernel,
                          stride=self.stride, pad=self.pad)
        self.positions = []     # per tile position: (first column, columns, [task tile, ...])
        parts = []
        for columns, tiles in plan:
            numbers = []
            for tile in tiles:
                numbers.append(len(parts))
                parts.append((tile.a_slice.start, tile.a_slice.stop, tile.b_slice.start,
                               tile.b_slice.stop, tile.pad, tile.in_width, tile.out_width,
                               columns.start))
            self.positions.append((columns.start, columns.stop - columns.start, numbers))
        self.parts = np.array(parts, np.int64).reshape(-1, 8)
        # Task tiles that take the same slice of a stationary (streamed) row share
        # its buffer entry (operand beats): FF and BP column tiles read whole filter rows.
        self.b_slices = _slice_ids(self.parts[:, 2:4])
        self.a_slices = _slice_ids(self.parts[:, 0:2])

    # -- the primitives of a row, as LayerRows.primitives lists them ------------------

    def primitives(self, i, js, l):
        """``(a_index, b_index, offset, b_key, mask_index)`` of the rows ``(i, j, l)`` for
        the channels ``js``: ``a_index`` (T,), ``b_index`` (T, len(js)) with -1 for a
        placeholder, ``offset`` (T,), ``b_key`` (T,) naming the stationary rows
        within the channel block, ``mask_index`` (len(js),)."""
        js = np.asarray(js, np.int64)
        stride, pad = self.stride, self.pad
        n_len, c_len, k_len = self.n, self.c, self.k
        h_len, e_len, r_len = self.h, self.e, self.r
        mask_index = np.zeros(len(js), np.int64)
        if self.transposed and self.phase == "bp":
            c = i
            n, h = np.divmod(js, h_len)
            k, r = [v.ravel() for v in np.meshgrid(np.arange(k_len), np.arange(r_len),
                                                    indexing="ij")]
            e = h[None, :] + pad - r[:, None]
            valid = (e >= 0) & (e < e_len)
            b_index = np.where(valid, (n[None, :] * k_len + k[:, None]) * e_len + e, -1)
            a_index = (k * c_len + c) * r_len + r
            mask_index = (n * c_len + c) * h_len + h
            return a_index, b_index, np.zeros_like(a_index), k * r_len + r, mask_index
        if self.transposed:
            c, r = i, l
            n, e = [v.ravel() for v in np.meshgrid(np.arange(n_len), np.arange(e_len),
                                                    indexing="ij")]
            keep = (e + r - pad >= 0) & (e + r - pad < h_len)
            n, e = n[keep], e[keep]
            a_index = (n * c_len + c) * h_len + e + r - pad
            b_index = (n[:, None] * k_len + js[None, :]) * e_len + e[:, None]
            return a_index, b_index, np.zeros_like(a_index), n * e_len + e, mask_index
        if self.phase == "ff":
            n, e = i, l
            c, r = [v.ravel() for v in np.meshgrid(np.arange(c_len), np.arange(r_len),
                                                    indexing="ij")]
            h = e * stride + r - pad
            keep = (h >= 0) & (h < h_len)
            c, r, h = c[keep], r[keep], h[keep]
            a_index = (n * c_len + c) * h_len + h
            b_index = (js[None, :] * c_len + c[:, None]) * r_len + r[:, None]
            return a_index, b_index, np.zeros_like(a_index), c * r_len + r, mask_index
        if self.phase == "bp":
            n, h = i, l
            k, r = [v.ravel() for v in np.meshgrid(np.arange(k_len), np.arange(r_len),
                                                    indexing="ij")]
            moved = h + pad - r
            keep = (moved % stride == 0) & (moved // stride >= 0) & (moved // stride < e_len)
            k, r, e = k[keep], r[keep], moved[keep] // stride
            a_index = (n * k_len + k) * e_len + e
            b_index = (k[:, None] * c_len + js[None, :]) * r_len + r[:, None]
            mask_index = (n * c_len + js) * h_len + h
            return a_index, b_index, np.zeros_like(a_index), k * r_len + r, mask_index
        k, block = i, l
        first = block * self.kernel_rows
        rows = np.arange(first, min(first + self.kernel_rows, r_len))
        r, n, e = [v.ravel() for v in np.meshgrid(rows, np.arange(n_len), np.arange(e_len),
                                                   indexing="ij")]
        h = e * stride + r - pad
        keep = (h >= 0) & (h < h_len)
        r, n, e, h = r[keep], n[keep], e[keep], h[keep]
        a_index = (n * k_len + k) * e_len + e
        b_index = (n[:, None] * c_len + js[None, :]) * h_len + h[:, None]
        return a_index, b_index, (r - first) * self.s, n * h_len + h, mask_index

    def out_len(self, l):
        """Outputs of a WG row of block ``l`` (its kernel rows times S)."""
        return self.s * len(self.rows._block_rows(l))


def _slice_ids(bounds):
    """Per task tile, a number for its (start, stop) slice: equal slices, equal numbers."""
    distinct = {}
    return np.array([distinct.setdefault(tuple(pair), len(distinct)) for pair in bounds.tolist()],
                    np.int64)


@numba.njit(cache=True)
def _primitive_work(a_rows, b_rows, masks, a_index, b_index, mask_index, parts, phase, kernel,
                    stride, dense, lanes, per_beat, queue_depth):
    """Per primitive t and task tile q: streamed elements and nonzeros; per member m:
    issue cycles,
    those of the last streamed element, the accept stage's timing (beats before the
    first MAC and the queue's pacing, :func:`gen.cycles.queue_timing`), issued and
    effectual MACs, and whether its
    stationary tile holds a nonzero. The slot rule is :func:`gen.primitives.task_slots`'."""
    prims, members = b_index.shape
    tiles = parts.shape[0]
    elements = np.zeros((prims, tiles), np.int64)
    nonzeros = np.zeros((prims, tiles), np.int64)
    issue = np.zeros((prims, tiles, members), np.int64)
    last_issue = np.zeros((prims, tiles, members), np.int64)
    lead = np.zeros((prims, tiles, members), np.int64)
    span = np.zeros((prims, tiles, members), np.int64)
    tail_lag = np.full((prims, tiles, members), -1, np.int64)
    head_lag = np.full((prims, tiles, members), -1, np.int64)
    last_mac = np.zeros((prims, tiles, members), np.int64)
    element_cycles = np.zeros(a_rows.shape[1] + 1, np.int64)
    issued = np.zeros((prims, tiles, members), np.int64)
    effectual = np.zeros((prims, tiles, members), np.int64)
    stationary = np.zeros((prims, tiles, members), np.bool_)
    for q in range(tiles):
        a_lo, a_hi, b_lo, b_hi, pad, in_width, out_width, column = parts[q]
        for t in range(prims):
            a = a_rows[a_index[t]]
            count = 0
            for i in range(a_hi - a_lo):
                if a[a_lo + i]:
                    count += 1
            nonzeros[t, q] = count
            elements[t, q] = a_hi - a_lo if dense else count
            for m in range(members):
                row = b_index[t, m]
                if row < 0:      # a placeholder: zero stationary row, no MACs
                    continue
                b = b_rows[row]
                for j in range(b_hi - b_lo):
                    if b[b_lo + j]:
                        stationary[t, q, m] = True
                        break
                cycles = 0
                last = 0
                streamed = 0
                for i in range(a_hi - a_lo):
                    if not (dense or a[a_lo + i]):
                        continue
                    streamed += 1
                    valid = 0
                    useful = 0
                    for s in range(kernel):
                        if phase == 0:
                            moved = i + pad - s
                            if moved < 0 or moved % stride or moved // stride >= out_width:
                                continue
                            operand, target = s, moved // stride
                        else:
                            moved = i * stride + s - pad
                            if moved < 0 or moved >= in_width:
                                continue
                            if phase == 1:
                                operand, target = s, moved
                            else:
                                operand, target = moved, s
                        valid += 1
                        if a[a_lo + i] and b[b_lo + operand] and \
                                (phase != 1 or masks[mask_index[m], column + target]):
                            useful += 1
                    n = valid if dense else useful
                    last = (n + lanes - 1) // lanes
                    element_cycles[streamed - 1] = last
                    cycles += last
                    issued[t, q, m] += n
                    effectual[t, q, m] += useful
                issue[t, q, m] = cycles
                last_issue[t, q, m] = last
                (lead[t, q, m], span[t, q, m], tail_lag[t, q, m], head_lag[t, q, m],
                 last_mac[t, q, m]) = queue_timing(element_cycles[:streamed], per_beat,
                                                   queue_depth)
    return (elements, nonzeros, issue, last_issue, lead, span, tail_lag, head_lag, last_mac,
            issued, effectual, stationary)


class _Group:
    """One position (tile) of one piece of one row group, as the trace needs it: per
    bundle ``beats``, ``offset`` and identity keys of its stationary and streamed rows,
    and per bundle and PE ``takes``, ``works``, ``issue``, ``last_issue``, ``lead_beats``,
    ``accept_span``, ``tail_lag``, ``head_lag``, ``last_mac``."""

    __slots__ = ("beats", "elements", "offset", "closing_offset", "stationary_keys", "operand_keys",
                 "mask_key", "out_len", "takes", "works", "issue", "last_issue", "lead_beats",
                 "accept_span", "tail_lag", "head_lag", "last_mac", "issued_macs",
                 "effectual_macs")

    @property
    def bundles(self):
        return len(self.beats)


class _Position(NamedTuple):
    """One tile position of a row group's piece, before the members go to PEs: the
    candidate primitives ``(t, q)`` in task order, their beats, whether an empty task
    closes the row, its length, the row's closing offset, per primitive and member
    ``idle``, the members' work (``row_work``), that of a PE without a row, the
    position's columns and its effectual MACs."""

    t_list: np.ndarray
    q_list: np.ndarray
    beats: np.ndarray
    closes: bool
    out_len: int
    closing_offset: int
    idle: np.ndarray
    row_work: np.ndarray
    idle_work: int
    start: int
    width: int
    effectual: int


def _lpt(load, work):
    """Members to PEs, longest processing time first: ``placed[unit]`` is the member
    PE ``unit`` gets; ``load`` (per PE, updated) is the work so far. The rule and its
    ties are :meth:`LayerRows.groups`' (stable sorts)."""
    by_load = np.argsort(load, kind="stable")
    by_work = np.argsort(-work, kind="stable")
    placed = np.empty(len(load), np.int64)
    placed[by_load] = by_work
    load += work[placed]
    return placed


# Identity keys of stationary rows: block * _KEY_SPAN + the row's key within the block.
_KEY_SPAN = 1 << 24


def _layout_groups(config, layout, pes, dense):
    """The groups of ``layout`` in program order (:class:`_Group` s), and
    :meth:`LayerRows.estimated_cycles` of them (to choose a layout)."""
    outer, channels, inner = layout.shape
    epb, lanes = config.elements_per_beat, config.lanes
    phase_code = _PHASE_CODES[layout.task_phase]
    is_bp = layout.task_phase == "bp"
    wg_rows = layout.phase == "wg" and not layout.transposed
    tiles = max(len(layout.parts), 1)
    load = np.zeros(pes, np.int64)
    estimate_load, estimate_beats = np.zeros(pes, np.int64), 0
    groups = []
    for first in range(0, channels, pes):
        js = list(range(first, min(first + pes, channels)))
        members = len(js)
        block = first // pes
        for i in range(outer):
            for l in range(inner):
                a_all, b_all, offset_all, key_all, mask_index = layout.primitives(i, js, l)
                count = len(a_all)
                out_len_wg = layout.out_len(l) if wg_rows else 0
                for piece in range(layout.splits):
                    lo, hi = (count * n // layout.splits for n in (piece, piece + 1))
                    a_index, b_index = a_all[lo:hi], np.ascontiguousarray(b_all[lo:hi])
                    offset, b_key = offset_all[lo:hi], key_all[lo:hi]
                    (elements, nonzeros, issue, last_issue, lead, span, tail_lag, head_lag,
                     last_mac, issued, effectual, stationary) = _primitive_work(
                        layout.a_rows, layout.b_rows, layout.masks, a_index, b_index,
                        mask_index, layout.parts, phase_code, layout.task_kernel,
                        layout.stride, dense, lanes, epb, config.queue_depth)
                    present = b_index >= 0
                    rows = []
                    work = np.zeros(members, np.int64)
                    for position, (start, width, numbers) in enumerate(layout.positions):
                        out_len = out_len_wg if wg_rows else width
                        closing_offset = out_len - layout.s if wg_rows else 0
                        if numbers:
                            t_pos, q_pos = np.nonzero(elements[:, numbers] > 0)
                            t_list = t_pos
                            q_list = np.asarray(numbers, np.int64)[q_pos]
                        else:
                            t_list = q_list = np.zeros(0, np.int64)
                        closes = len(t_list) == 0 or offset[t_list[-1]] != closing_offset
                        if is_bp:
                            mask_ok = layout.masks[mask_index,
                                                   start:start + width].any(axis=1)
                        else:
                            mask_ok = np.ones(members, np.bool_)
                        beats = -(-elements[t_list, q_list] // epb)
                        # A member has no effectual MAC in a primitive whose stationary
                        # tile, or (BP) whose mask tile, is all zero.
                        idle = ~stationary[t_list, q_list] | ~mask_ok[None, :]
                        # OutputRow.pe_cycles: the work LayerRows.groups balances.
                        active = present[t_list] & (dense | ~idle)
                        cost = np.where(active, np.maximum(np.maximum(1, beats)[:, None],
                                                           issue[t_list, q_list]), 0)
                        row_work = 1 + cost.sum(axis=0) + 1 * closes
                        if not closes:
                            row_work += ~active[-1]      # the closing primitive, as an empty task
                        # A PE without a row of its own runs member 0's row on zero
                        # stationary rows (estimated_cycles counts it; balancing does not).
                        idle_work = row_work[0] if dense else 2
                        work += row_work
                        rows.append(_Position(
                            t_list, q_list, beats, closes, out_len, closing_offset, idle,
                            row_work, idle_work, start, width,
                            effectual[t_list, q_list].sum() if len(t_list) else 0))
                    # A PE without a row of its own does no work in either mode.
                    member_of = _lpt(load, np.concatenate(
                        [work, np.zeros(pes - members, np.int64)]))
                    real = member_of < members
                    safe = np.where(real, member_of, 0)
                    for (t_list, q_list, beats, closes, out_len, closing_offset, idle,
                         row_work, idle_work, start, width, row_effectual) in rows:
                        if not dense and not row_effectual:
                            continue     # all zeros: nothing for the hardware to do
                        group = _Group()
                        count_t = len(t_list)
                        bundles = count_t + closes
                        group.beats = np.zeros(bundles, np.int64)
                        group.beats[:count_t] = beats
                        group.elements = np.zeros(bundles, np.int64)
                        group.elements[:count_t] = elements[t_list, q_list]
                        group.offset = np.full(bundles, closing_offset, np.int64)
                        group.offset[:count_t] = offset[t_list]
                        group.closing_offset, group.out_len = closing_offset, out_len
                        group.stationary_keys = np.full(bundles, -1, np.int64)
                        # Entries of only zero rows are equal whatever rows they are.
                        b_slices = layout.b_slices[q_list]
                        group.stationary_keys[:count_t] = np.where(
                            stationary[t_list, q_list].any(axis=1),
                            (block * _KEY_SPAN + b_key[t_list]) * tiles + b_slices,
                            -2 - b_slices)
                        # Rows of zeros streamed in dense mode are equal: stored once.
                        a_slices = layout.a_slices[q_list]
                        group.operand_keys = np.full(bundles, -1, np.int64)   # closing: none
                        group.operand_keys[:count_t] = np.where(
                            nonzeros[t_list, q_list] > 0, a_index[t_list] * tiles + a_slices,
                            -1 - a_slices)
                        # A mask entry holds the distinct mask rows of the PEs: by value.
                        group.mask_key = frozenset(
                            row.tobytes() for row in
                            layout.masks[mask_index, start:start + width]) if is_bp else None
                        works = np.zeros((bundles, pes), np.bool_)
                        member_works = present[t_list] & (dense | ~idle | (not config.skipping))
                        works[:count_t] = member_works[:, safe] & real[None, :]
                        group.issue = np.zeros((bundles, pes), np.int32)
                        group.last_issue = np.zeros((bundles, pes), np.int32)
                        group.issue[:count_t] = np.where(works[:count_t],
                                                         issue[t_list, q_list][:, safe], 0)
                        group.last_issue[:count_t] = np.where(
                            works[:count_t], last_issue[t_list, q_list][:, safe], 0)
                        group.lead_beats = np.zeros((bundles, pes), np.int32)
                        group.lead_beats[:count_t] = np.where(
                            works[:count_t], lead[t_list, q_list][:, safe], 0)
                        group.accept_span = np.zeros((bundles, pes), np.int32)
                        group.accept_span[:count_t] = np.where(
                            works[:count_t], span[t_list, q_list][:, safe], 0)
                        for name, values, none in (("tail_lag", tail_lag, -1),
                                                   ("head_lag", head_lag, -1),
                                                   ("last_mac", last_mac, 0)):
                            column = np.full((bundles, pes), none, np.int32)
                            column[:count_t] = np.where(works[:count_t],
                                                        values[t_list, q_list][:, safe], none)
                            setattr(group, name, column)
                        group.issued_macs = np.zeros(bundles, np.int64)
                        group.issued_macs[:count_t] = np.where(
                            works[:count_t], issued[t_list, q_list][:, safe], 0).sum(axis=1)
                        group.effectual_macs = int(row_effectual)
                        group.takes = works.copy()
                        group.takes[-1] = True
                        group.works = works
                        groups.append(group)
                        estimate_load += np.where(real, row_work[safe], idle_work)
                        estimate_beats += int(np.maximum(1, group.beats).sum())
    return groups, max(int(estimate_load.max()), estimate_beats)


class _RunPacker:
    """Groups into runs as :func:`gen.program.build_runs` packs them, operands counted
    by identity (see the module's notes)."""

    def __init__(self, config, capacity):
        self.config, self.capacity = config, capacity
        self.runs = []
        self._reset()

    def _reset(self):
        self.parts = []        # (group, first bundle, stop, closes a partial row)
        self.commands = self.operand_beats = self.outputs = 0
        self.stationary, self.masks, self.operands = set(), set(), set()

    def _needs(self, group):
        """What a whole group adds to the run: ``(commands, stationary keys, mask keys,
        {operand key: beats}, outputs)``."""
        stationary = set(group.stationary_keys.tolist()) - self.stationary
        masks = {group.mask_key} - self.masks if group.mask_key is not None else set()
        operands = {}
        for key, beats in zip(group.operand_keys.tolist(), group.beats.tolist()):
            if beats and key not in self.operands:
                operands[key] = beats
        return group.bundles, stationary, masks, operands, group.out_len

    def _fits(self, needs):
        commands, stationary, masks, operands, outputs = needs
        return self._fits_counts(commands, len(stationary), len(masks), sum(operands.values()),
                                 outputs)

    def _fits_counts(self, commands, stationary, masks, beats, outputs):
        capacity = self.capacity
        return (self.commands + commands <= capacity.program
                and len(self.stationary) + stationary <= capacity.stationary
                and len(self.masks) + masks <= capacity.mask
                and self.operand_beats + beats <= capacity.operand
                and self.outputs + outputs <= capacity.outputs)

    def _add(self, group, first, stop, needs, partial):
        commands, stationary, masks, operands, outputs = needs
        self.parts.append((group, first, stop, partial))
        self.commands += commands
        self.stationary |= stationary
        self.masks |= masks
        self.operands |= set(operands)
        self.operand_beats += sum(operands.values())
        self.outputs += outputs

    def _finish(self):
        if self.parts:
            self.runs.append((self.parts, {
                "program": self.commands, "operand": self.operand_beats,
                "stationary": len(self.stationary), "mask": len(self.masks),
                "outputs": self.outputs}))
        self._reset()

    def add(self, group):
        whole = self._needs(group)
        if self._fits(whole):
            self._add(group, 0, group.bundles, whole, False)
            return
        self._finish()
        whole = self._needs(group)     # against the empty run
        if self._fits(whole):
            self._add(group, 0, group.bundles, whole, False)
            return
        # Too large for one run: pieces of partial rows, each closed by its last bundle
        # (or, WG, by an empty task of the row's last kernel row), grown one bundle at
        # a time while the piece and its closing task fit.
        first = 0
        while first < group.bundles:
            piece = _Piece(self, group, first)
            if not piece.grow():
                if not self.parts:
                    raise ValueError(f"one row command needs more than the buffers hold "
                                     f"({self.capacity})")
                self._finish()
                continue
            while piece.stop < group.bundles and piece.grow():
                pass
            self._add(group, first, piece.stop, piece.needs(), True)
            first = piece.stop

    @staticmethod
    def _closes(group, stop):
        """A partial row ending before ``stop`` needs an empty closing task (WG rows whose
        last task is not of the row's last kernel row)."""
        return bool(group.offset[stop - 1] != group.closing_offset)

    def finish(self):
        self._finish()
        return self.runs


class _Piece:
    """A partial row ``group[first:stop]`` being grown bundle by bundle into a run."""

    def __init__(self, packer, group, first):
        self.packer, self.group, self.first, self.stop = packer, group, first, first
        self.stationary, self.operands, self.operand_beats = set(), set(), 0
        self.mask = {group.mask_key} - packer.masks if group.mask_key is not None else set()

    def needs(self):
        """What the piece adds to the run, as :meth:`_RunPacker._needs` gives it."""
        closing = _RunPacker._closes(self.group, self.stop)
        stationary = set(self.stationary)
        if closing and -1 not in self.packer.stationary:
            stationary.add(-1)
        operands = dict.fromkeys(self.operands, 0)
        operands[None] = self.operand_beats     # the beats, under a key no row has
        return (self.stop - self.first + closing, stationary, self.mask, operands,
                self.group.out_len)

    def _fits(self):
        closing = _RunPacker._closes(self.group, self.stop)
        extra = closing and -1 not in self.packer.stationary and -1 not in self.stationary
        return self.packer._fits_counts(self.stop - self.first + closing,
                                        len(self.stationary) + extra, len(self.mask),
                                        self.operand_beats, self.group.out_len)

    def grow(self):
        """Take one more bundle if the piece still fits the run; returns whether it did."""
        group, packer, bundle = self.group, self.packer, self.stop
        key = int(group.stationary_keys[bundle])
        new_key = key not in packer.stationary and key not in self.stationary
        operand, beats = int(group.operand_keys[bundle]), int(group.beats[bundle])
        new_operand = beats and operand not in packer.operands and operand not in self.operands
        if new_key:
            self.stationary.add(key)
        if new_operand:
            self.operands.add(operand)
            self.operand_beats += beats
        self.stop += 1
        if self._fits():
            return True
        self.stop -= 1      # roll back
        if new_key:
            self.stationary.discard(key)
        if new_operand:
            self.operands.discard(operand)
            self.operand_beats -= beats
        return False


# Per bundle and PE columns of a trace besides ``takes`` (bool ``works``, the
# rest int32), and the value of those that mean "none" when not 0.
_TIMING = ("works", "issue", "last_issue", "lead_beats", "accept_span", "tail_lag", "head_lag",
           "last_mac")
_NONE = {"tail_lag": -1, "head_lag": -1}


def _trace(config, parts, entries):
    """The :class:`~gen.cycles.Trace` of one run's group parts."""
    pieces = []
    for group, first, stop, partial in parts:
        columns = {}
        for name in ("takes", *_TIMING):
            columns[name] = getattr(group, name)[first:stop]
        beats = group.beats[first:stop]
        elements = group.elements[first:stop]
        row_last = np.zeros(stop - first, np.bool_)
        if partial:
            closing = _RunPacker._closes(group, stop)
            columns["takes"] = columns["takes"].copy()
            if closing:
                pes = columns["takes"].shape[1]
                beats = np.append(beats, 0)
                elements = np.append(elements, 0)
                row_last = np.append(row_last, True)
                columns["takes"] = np.vstack([columns["takes"], np.ones((1, pes), np.bool_)])
                for name in _TIMING:
                    columns[name] = np.vstack([columns[name], np.full(
                        (1, pes), _NONE.get(name, 0), columns[name].dtype)])
            else:
                row_last[-1] = True
                columns["takes"][-1] = True
        elif stop == group.bundles:
            row_last[-1] = True
        pieces.append((beats, row_last, np.full(len(beats), group.out_len), columns, elements))
    trace = Trace(
        beats=np.concatenate([p[0] for p in pieces]).astype(np.int32),
        row_last=np.concatenate([p[1] for p in pieces]),
        out_len=np.concatenate([p[2] for p in pieces]).astype(np.int32),
        takes=np.concatenate([p[3]["takes"] for p in pieces]),
        works=np.concatenate([p[3]["works"] for p in pieces]),
        **{name: np.concatenate([p[3][name] for p in pieces]).astype(np.int32)
           for name in _TIMING if name != "works"},
        elements=np.concatenate([p[4] for p in pieces]).astype(np.int32), entries=entries)
    trace.issued_macs = sum(int(group.issued_macs[first:stop].sum())
                            for group, first, stop, _ in parts)
    return trace


def layer_traces(config, maps, *, dense, capacity=None):
    """``(traces, effectual_macs)``: the :class:`~gen.cycles.Trace` of every run of a
    layer phase given by its nonzero ``maps`` (:class:`LayerMaps`), mapped as
    :meth:`gen.primitives.LayerRows.for_config` maps it for ``config``'s array, and
    the effectual MACs of its rows."""
    from .primitives import LayerRows

    check_mode(config, dense)
    pes = config.pes
    best = None
    for rows in LayerRows.candidates(config, maps.phase, x=maps.x, w=maps.w, dy=maps.dy,
                                     mask=maps.mask, stride=maps.stride, pad=maps.pad,
                                     input_hw=maps.input_hw, kernel_hw=maps.kernel_hw, pes=pes):
        groups, estimate = _layout_groups(config, _Layout(config, maps, rows), pes, dense)
        if best is None or estimate < best[1]:
            best = (groups, estimate)
    groups = best[0]
    packer = _RunPacker(config, capacity or Capacity.of(config))
    for group in groups:
        packer.add(group)
    traces = [_trace(config, parts, entries) for parts, entries in packer.finish()]
    return traces, sum(group.effectual_macs for group in groups)
