"""The schedule of a layer phase: the one intermediate representation of the compiler.

A :class:`Schedule` says everything about how the array runs a layer phase in
one mode: the mapping (:class:`~gen.compiler.mapping.Mapping`), the row
groups in program order with the PE each row goes to, per bundle (row
primitive) its beats and per PE its issue cycles and accept timing, and the
runs the groups are packed into (:mod:`gen.compiler.runs`). It is built
once, from the operands (values or nonzero maps: only where they are
nonzero matters), by array arithmetic and the numba loop of
:mod:`gen.compiler.work`. The cycle model and the energy model read its
traces (:meth:`Schedule.traces`); the RTL program is packed from it when the
RTL needs it (:func:`gen.compiler.program.pack_program`).

Rules, each implemented here once:

- **Groups**: the rows of one group differ only in the channel ``j``, so they
  share every streamed row; channel blocks of ``pes`` channels are outermost,
  so consecutive groups share their stationary rows. A PE without a row of its
  own in a group (the last block of a channel count ``pes`` does not divide)
  runs member 0's streamed rows on zero stationary rows; its results are
  dropped.
- **Which primitives a row has**: those whose streamed tile has elements in
  the mode (sparse: a nonzero); a row left without one, or (WG) without one of
  its last kernel row, is closed by an empty task
  (:func:`~gen.compiler.tiling.needs_closing`). In sparse mode a group in
  which no PE has an effectual MAC is left out: its rows are all zeros.
- **Whether a PE works in a bundle** (:func:`works_in`, the array's decision in
  ``hw/array.py``): it has a row, the primitive is present, and in sparse mode
  its stationary tile and (BP) mask tile hold a nonzero. It *takes* the
  bundle when it works in it or the bundle closes its row.
- **PE work** (:func:`pe_work`) and **longest-processing-time balancing**
  (:func:`balance`): the rows of a group go to the PEs member with the most
  work first, onto the PE with the least work so far in the layer; in sparse
  mode channels hold very different work, and a fixed channel-to-PE map would
  leave the array waiting for the busiest channel's PE.
- **The choice of mapping**: the candidate with the fewest estimated cycles
  (:attr:`Schedule.estimate`) in this mode; dense mode gets its own best mapping.
"""

from __future__ import annotations

import numpy as np

from hw.config import AccelConfig
from hw.pe import issue_lead

from ..model.cycles import predict
from .layer import check_mode
from .mapping import Mapping
from .runs import TIMING, TIMING_NONE, Capacity, pack_runs, run_trace
from .scratchpad import ArrayRows, group_rows, load_plan
from .tiling import closing_offset, closing_tile, needs_closing
from .work import SlotTables, primitive_work

__all__ = ["Group", "Schedule", "schedule_layer", "pe_work", "balance", "works_in",
           "bundle_geometry"]


def works_in(dense, present, idle):
    """Whether a PE works in a bundle: the primitive is ``present`` (not a
    placeholder), and in sparse mode it is not ``idle`` (its stationary tile, or BP
    mask tile, holds a nonzero). Only a skipping build has a sparse mode
    (:func:`~gen.compiler.layer.check_mode`): a dense-only array works in every
    present primitive."""
    return present & (dense | ~idle)


def pe_work(beats, issue, active, closes):
    """The cycles a PE spends on a row (an estimate, to balance the PEs): per primitive it
    works in (``active``), the larger of its operand ``beats`` and its ``issue`` cycles, at
    least one; one for the row's end; one for an empty closing task (``closes``, or the
    row's closing primitive given as an empty task when the PE does not work in it).
    ``beats`` (T,), ``issue`` and ``active`` (T, M): per member."""
    cost = np.where(active, np.maximum(np.maximum(1, beats)[:, None], issue), 0)
    work = 1 + cost.sum(axis=0) + 1 * closes
    if not closes:
        work += ~active[-1]
    return work


def balance(load, work):
    """Members to PEs, longest processing time first: ``placed[unit]`` is the member
    PE ``unit`` gets; ``load`` (per PE, updated) is the work so far. Ties go to the
    lower PE and the lower member (stable sorts)."""
    by_load = np.argsort(load, kind="stable")
    by_work = np.argsort(-work, kind="stable")
    placed = np.empty(len(load), np.int64)
    placed[by_load] = by_work
    load += work[placed]
    return placed


class Group:
    """One tile position of one piece of one row group, in program order.

    Per bundle (``B``): ``beats``, ``elements``, ``offset``, the streamed row
    ``a_row`` and task tile ``tile`` (-1: the empty closing task), the identity key of
    its streamed row (``operand_keys``); per bundle and PE (``B, P``): ``b_row`` (the
    stationary row, -1 for none: its code with ``row_slice`` names the row; a
    bundle's codes in PE order name its scratchpad place, in member order its
    stationary entries, :func:`~gen.compiler.scratchpad.row_codes`), ``present`` (the
    command's present bit), ``takes``, ``works``, ``issue``, ``last_issue``,
    ``lead_beats``, ``accept_span``, ``tail_lag``, ``pop_lag``, ``head_lag``,
    ``last_mac``, ``tail_cycles``, ``trailing_issue``, ``mac_elements`` (the columns of
    :data:`~gen.model.trace.TIMING`: views of ``timing``, ``(B, P, len(TIMING))``), and
    ``issued_macs`` per bundle. Per PE: ``keys`` (the output row ``(i, j, l)``, None
    for a PE without a row; made from ``placement`` when asked for), ``source`` (its
    member: where its line and mask row are in an entry, which holds them in member
    order; 0 for a PE without a row) and ``mask_rows`` (BP); ``member_pes``: the PEs
    in member order; ``row_length`` per bundle, the operands of its stationary rows.
    ``columns`` is the slice of the rows the group holds,
    ``out_len`` its length, ``mask_key`` its mask entry's key (BP)."""

    __slots__ = ("beats", "elements", "offset", "closing_offset", "a_row", "tile",
                 "operand_keys", "mask_key", "mask_rows", "b_row", "present", "member_pes",
                 "source", "out_len", "columns", "placement", "row_length", "row_slice",
                 "takes", "works", "timing", "issued_macs", "effectual_macs")

    @property
    def bundles(self):
        return len(self.beats)


    @property
    def keys(self):
        """Per PE the output row ``(i, j, l)`` it computes, None for a PE without one."""
        i, l, js, member_of, real = self.placement
        return [(i, js[m], l) if here else None
                for m, here in zip(member_of.tolist(), real.tolist())]


# The timing columns of a group, views of its ``timing`` (B, P, len(TIMING)).
for _column, _name in enumerate(TIMING):
    setattr(Group, _name, property(lambda self, column=_column: self.timing[:, :, column]))
del _column, _name


class _Layout:
    """A mapping with the operand rows of a layer phase, its task tiles and slot tables."""

    def __init__(self, config, spec, mapping):
        self.mapping = mapping
        self.a_rows, self.b_rows, self.masks = mapping.operand_rows(spec)
        self.positions = []     # per tile position: (first column, columns, [task tile, ...])
        parts = []
        for columns, tiles in mapping.tiling(config):
            numbers = []
            for tile in tiles:
                numbers.append(len(parts))
                parts.append((tile.a_slice.start, tile.a_slice.stop, tile.b_slice.start,
                              tile.b_slice.stop, tile.pad, tile.in_width, tile.out_width,
                              columns.start))
            self.positions.append((columns.start, columns.stop - columns.start, numbers))
        self.parts = np.array(parts, np.int64).reshape(-1, 8)
        self.slots = SlotTables(mapping.task_phase, mapping.task_kernel, mapping.stride,
                                self.parts)
        # Task tiles that take the same slice of a stationary (streamed) row share
        # its buffer entry (operand beats): FF and BP column tiles read whole filter rows.
        self.b_slices = _slice_ids(self.parts[:, 2:4])
        self.a_slices = _slice_ids(self.parts[:, 0:2])


def _slice_ids(bounds):
    """Per task tile, a number for its (start, stop) slice: equal slices, equal numbers."""
    distinct = {}
    return np.array([distinct.setdefault(tuple(pair), len(distinct)) for pair in bounds.tolist()],
                    np.int64)


class Schedule:
    """A layer phase compiled for ``config``'s array in one mode (see the module's notes).

    ``mapping``: the chosen :class:`~gen.compiler.mapping.Mapping`; ``groups``: the
    :class:`Group` s in program order; ``runs``: per run ``(parts, entries)``, its
    group parts ``(group, first bundle, stop, partial)`` and the entries it loads;
    ``estimate``: the estimated cycles the mapping was chosen by;
    ``effectual_macs``: of all rows. ``a_rows``, ``b_rows``, ``masks``: the operand
    rows the groups index (:meth:`Mapping.operand_rows`).
    """

    def __init__(self, config, layout, groups, estimate, *, dense, pes, capacity):
        self.config, self.dense, self.pes = config, dense, pes
        self.mapping = layout.mapping
        self.a_rows, self.b_rows, self.masks = layout.a_rows, layout.b_rows, layout.masks
        self.parts = layout.parts
        self.groups, self.estimate = groups, estimate
        self.effectual_macs = sum(group.effectual_macs for group in groups)
        self.rows = ArrayRows.of(config, pes)
        self.runs = pack_runs(groups, capacity, self.rows) if capacity is not None else None
        self._traces = None

    def traces(self):
        """The :class:`~gen.model.trace.Trace` of every run (made once, then kept)."""
        if self._traces is None:
            self._traces = list(self.each_trace())
        return self._traces

    def each_trace(self):
        """The :class:`~gen.model.trace.Trace` of each run in turn, made as it is asked
        for and not kept (unless :meth:`traces` has made them): a layer's traces at paper
        scale take gigabytes together."""
        if self._traces is not None:
            yield from self._traces
            return
        for parts, entries in self.runs:
            yield run_trace(parts, entries, self.rows)


def schedule_layer(config, spec, *, dense, pes=None, capacity=None, runs=True, mapping=None):
    """The :class:`Schedule` of a layer phase ``spec`` (a checked
    :class:`~gen.compiler.layer.LayerSpec`, or :class:`~gen.compiler.layer.LayerMaps`)
    for ``config``'s array of ``pes`` PEs (default: all; 1 for a lone PE), in dense
    or sparse mode: the candidate mapping with the fewest cycles (the cycle model's, of
    each candidate packed into runs; with ``runs=False`` the estimate's), its groups
    packed into runs of ``capacity`` (default: the config's buffers; ``runs=False``:
    groups only, for the PE array or a PE fed directly). ``mapping``: this
    :class:`~gen.compiler.mapping.Mapping` instead of the best candidate."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    check_mode(config, dense)
    pes = pes or config.pes
    candidates = [mapping] if mapping is not None else Mapping.candidates(config, spec, pes)
    capacity = (capacity or Capacity.of(config)) if runs else None
    best = None
    for candidate in candidates:
        layout = _Layout(config, spec, candidate)
        groups, estimate = _groups(config, layout, pes, dense)
        schedule = None
        if runs and len(candidates) > 1:
            # Packed into runs, the candidates are told apart by the cycle model (the
            # estimate leaves out the pipeline's stalls, which differ between them).
            schedule = Schedule(config, layout, groups, estimate, dense=dense, pes=pes,
                                capacity=capacity)
            estimate = predict(config, schedule.each_trace())["cycles"]
        if best is None or estimate < best[2]:
            best = (layout, groups, estimate, schedule)
    layout, groups, estimate, schedule = best
    return schedule or Schedule(config, layout, groups, estimate, dense=dense, pes=pes,
                                capacity=capacity)


def _groups(config, layout, pes, dense):
    """The groups of ``layout`` in program order, and the estimate of the array's cycles
    for them: the busiest PE's :func:`pe_work` after balancing, or the broadcast's
    beats (one per cycle), whichever is larger."""
    mapping = layout.mapping
    channels = mapping.shape[1]
    epb = config.elements_per_beat
    is_bp = mapping.task_phase == "bp"
    tiles = max(len(layout.parts), 1)
    load = np.zeros(pes, np.int64)
    estimate_load, estimate_beats = np.zeros(pes, np.int64), 0
    groups = []
    for first in range(0, channels, pes):
        js = list(range(first, min(first + pes, channels)))
        members = len(js)
        for i, l, (a_all, b_all, offset_all, mask_index), work_all in _row_work(
                config, layout, js, dense):
            count = len(a_all)
            for piece in range(mapping.splits):
                lo, hi = (count * n // mapping.splits for n in (piece, piece + 1))
                a_index, b_index = a_all[lo:hi], b_all[lo:hi]
                offset = offset_all[lo:hi]
                work = work_all if mapping.splits == 1 else work_all.rows(lo, hi)
                present = b_index >= 0
                positions, member_work = [], np.zeros(members, np.int64)
                for start, width, numbers in layout.positions:
                    out_len = mapping.out_len(l) if mapping.wg_rows else width
                    closing = closing_offset(mapping.task_phase, out_len,
                                             mapping.task_kernel)
                    if numbers:
                        t_pos, q_pos = np.nonzero(work.elements[:, numbers] > 0)
                        t_list, q_list = t_pos, np.asarray(numbers, np.int64)[q_pos]
                    else:
                        t_list = q_list = np.zeros(0, np.int64)
                    closes = needs_closing(mapping.task_phase,
                                           offset[t_list[-1]] if len(t_list) else None,
                                           out_len, mapping.task_kernel)
                    mask_ok = (layout.masks[mask_index, start:start + width].any(axis=1)
                               if is_bp else np.ones(members, np.bool_))
                    beats = -(-work.elements[t_list, q_list] // epb)
                    # A member has no effectual MAC in a primitive whose stationary
                    # tile, or (BP) whose mask tile, is all zero.
                    idle = ~work.stationary[t_list, q_list] | ~mask_ok[None, :]
                    active = works_in(dense, present[t_list], idle)
                    row_work = pe_work(beats, work.issue[t_list, q_list], active, closes)
                    member_work += row_work
                    positions.append((t_list, q_list, beats, closes, out_len, closing, idle,
                                      row_work, start, width))
                # A PE without a row of its own does no work in either mode.
                member_of = balance(load, np.concatenate(
                    [member_work, np.zeros(pes - members, np.int64)]))
                real = member_of < members
                safe = np.where(real, member_of, 0)
                # Per PE its output row (i, j, l), made only when asked for: the
                # models do not need them.
                placement = (i, l, js, member_of, real)
                for (t_list, q_list, beats, closes, out_len, closing, idle, row_work,
                     start, width) in positions:
                    group_effectual = int(work.effectual[t_list, q_list].sum()) \
                        if len(t_list) else 0
                    if not dense and not group_effectual:
                        continue     # all zeros: nothing for the hardware to do
                    group = _group(config, layout, work, dense, pes, members, t_list,
                                   q_list, beats, closes, out_len, closing, idle, present,
                                   a_index, b_index, offset, mask_index, tiles, real,
                                   safe, start, width)
                    group.placement = placement
                    group.effectual_macs = group_effectual
                    groups.append(group)
                    # A PE without a row of its own runs member 0's row on zero
                    # stationary rows (the estimate counts it; balancing does not).
                    idle_work = row_work[0] if dense else 2
                    estimate_load += np.where(real, row_work[safe], idle_work)
                    estimate_beats += int(np.maximum(1, group.beats).sum())
    # Loads of the stationary rows the scratchpads do not hold: a bundle-path cycle per
    # load round that does not come with a primitive, an accept cycle per line a PE
    # loads so (the run packer's placement, without its runs: an estimate).
    rows = ArrayRows.of(config, pes)
    for group in groups:
        firsts, loaded, rounds = group_rows(rows, group, 0, group.bundles)
        alone, _, _ = load_plan(rows, group, 0, group.bundles, firsts, loaded, rounds)
        estimate_beats += int(alone.sum())
        estimate_load += (loaded * alone[:, None]).sum(axis=0)
    return groups, max(int(estimate_load.max()), estimate_beats)


# Primitives x task tiles x members whose work one call of primitive_work computes at
# most: many rows at once when rows are small (a linear layer's, one primitive each),
# without holding a whole layer's work.
_WORK_BATCH = 1 << 18


def _row_work(config, layout, js, dense):
    """Per row ``(i, l)`` of the channels ``js``, in program order: ``(i, l,
    primitives, work)``, :meth:`Mapping.primitives` and their :class:`PrimitiveWork`,
    computed for batches of rows at once."""
    mapping = layout.mapping
    outer, _, inner = mapping.shape
    rows = [(i, l) for i in range(outer) for l in range(inner)]
    tiles = max(len(layout.parts), 1)
    start = 0
    while start < len(rows):
        batch = []
        size = 0
        while start + len(batch) < len(rows) and (not batch or size < _WORK_BATCH):
            i, l = rows[start + len(batch)]
            primitives = mapping.primitives(i, js, l)
            batch.append((i, l, primitives))
            size += len(primitives[0]) * tiles * len(js)
        start += len(batch)
        counts = [len(primitives[0]) for _, _, primitives in batch]
        work = primitive_work(
            layout.a_rows, layout.b_rows, layout.masks,
            np.concatenate([primitives[0] for _, _, primitives in batch]),
            np.ascontiguousarray(np.concatenate([primitives[1] for _, _, primitives in batch])),
            np.concatenate([np.broadcast_to(primitives[3], (count, len(js)))
                            for (_, _, primitives), count in zip(batch, counts)]),
            layout.parts, layout.slots, bp=mapping.task_phase == "bp", dense=dense,
            lanes=config.lanes, per_beat=config.elements_per_beat,
            issue_lead=issue_lead(config))
        first = 0
        for (i, l, primitives), count in zip(batch, counts):
            yield i, l, primitives, work.rows(first, first + count)
            first += count


def _group(config, layout, work, dense, pes, members, t_list, q_list, beats, closes, out_len,
           closing, idle, present, a_index, b_index, offset, mask_index, tiles, real, safe,
           start, width):
    """The :class:`Group` of one tile position, its members placed on the PEs."""
    mapping = layout.mapping
    group = Group()
    count = len(t_list)
    bundles = count + closes
    # A WG row is one tile of all its kernel rows.
    group.columns = slice(0, out_len) if mapping.wg_rows else slice(start, start + width)
    group.out_len, group.closing_offset = out_len, closing
    group.beats = np.zeros(bundles, np.int64)
    group.beats[:count] = beats
    group.elements = np.zeros(bundles, np.int64)
    group.elements[:count] = work.elements[t_list, q_list]
    group.offset = np.full(bundles, closing, np.int64)
    group.offset[:count] = offset[t_list]
    group.a_row = np.full(bundles, -1, np.int64)
    group.a_row[:count] = a_index[t_list]
    group.tile = np.full(bundles, -1, np.int64)
    group.tile[:count] = q_list
    # Per PE the stationary row it gets: a PE without a row, and a placeholder, a zero row.
    group.b_row = np.full((bundles, pes), -1, np.int64)
    group.b_row[:count] = np.where(real[None, :], b_index[t_list][:, safe], -1)
    group.present = np.zeros((bundles, pes), np.bool_)
    group.present[:count] = real[None, :] & present[t_list][:, safe]
    group.present[count:] = real[None, :]
    # Operands of each bundle's stationary rows (its task tile's slice of them).
    group.row_length = np.zeros(bundles, np.int64)
    group.row_length[:count] = layout.parts[q_list, 3] - layout.parts[q_list, 2]
    group.row_slice = np.full(bundles, -1, np.int64)
    group.row_slice[:count] = layout.b_slices[q_list]
    # Rows of zeros streamed in dense mode are equal: stored once.
    a_slices = layout.a_slices[q_list]
    group.operand_keys = np.full(bundles, -1, np.int64)   # closing: none
    group.operand_keys[:count] = np.where(work.nonzeros[t_list, q_list] > 0,
                                          a_index[t_list] * tiles + a_slices, -1 - a_slices)
    if mapping.task_phase == "bp":
        # A mask entry holds the members' mask rows in member order: by value, with
        # their shape (the bytes of 4 rows of 8 are those of 2 rows of 16). A PE
        # without a row of its own takes member 0's.
        group.mask_rows = mask_index[safe]
        group.mask_key = (len(mask_index), width,
                          layout.masks[mask_index, start:start + width].tobytes())
    else:
        group.mask_rows = group.mask_key = None
    works = np.zeros((bundles, pes), np.bool_)
    works[:count] = works_in(dense, present[t_list], idle)[:, safe] & real[None, :]
    group.timing = np.empty((bundles, pes, len(TIMING)), np.int32)
    group.timing[:] = TIMING_NONE
    group.timing[:count] = np.where(works[:count, :, None],
                                    work.timing[t_list, q_list][:, safe], TIMING_NONE)
    group.issued_macs = np.zeros(bundles, np.int64)
    group.issued_macs[:count] = np.where(works[:count], work.issued[t_list, q_list][:, safe],
                                         0).sum(axis=1)
    # The PEs in member order, and each PE's member (0 for a PE without a row): the
    # command's ``source``, where a PE's line and mask row are in an entry.
    group.member_pes = np.argsort(np.where(real, safe, pes), kind="stable")[:members]
    group.source = safe
    group.takes = works.copy()
    group.takes[-1] = True
    group.works = works
    return group


def bundle_geometry(schedule, group, bundle):
    """``(pad, in_width, out_width)`` of bundle ``bundle`` of ``group``: its task tile's,
    or (an empty closing task) :func:`~gen.compiler.tiling.closing_tile`'s."""
    tile = group.tile[bundle]
    if tile < 0:
        return closing_tile(schedule.mapping.task_phase, group.out_len)
    _, _, _, _, pad, in_width, out_width, _ = schedule.parts[tile]
    return int(pad), int(in_width), int(out_width)
