"""Row groups packed into runs, and the cycle model's trace of each run.

A run is one load-compute-readout round of the top level: what it loads
must fit the buffers (:class:`Capacity`). Operands are stored once per run
and referenced: a stationary entry (a line per member of a group, in member
order), a BP mask entry (a mask row per member) and a streamed row's beats
in the operand buffer are shared by every command that uses the same rows,
whichever PEs the members are on (a command's ``source`` says), which is
where the on-chip reuse comes from (in FF the filter rows of a group of
output channels serve every output row of the batch). Rows are told apart
by *which* row of which tensor they are (the row codes of
:func:`~gen.compiler.scratchpad.row_codes`, the operand keys of
:class:`~gen.compiler.schedule.Group`); BP mask rows by value.

Groups are taken in order while they fit. A group that does not fit even an
empty run is cut into pieces of partial rows, each closed by its last bundle
(or, WG, by an empty task of the row's last kernel row), grown one bundle
at a time while the piece and its closing task fit; each PE drains a partial
row and the host adds the pieces (exact: the same products in another order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.trace import TIMING, TIMING_NONE, Trace
from .scratchpad import group_rows, load_bound, load_plan, needs_rows, row_codes

__all__ = ["Capacity", "pack_runs", "run_trace", "closes_piece", "load_entries", "TIMING",
           "TIMING_NONE"]


@dataclass(frozen=True)
class Capacity:
    """What one run may hold, from the config (entries of each buffer)."""

    program: int
    operand: int
    stationary: int
    mask: int
    outputs: int

    @classmethod
    def of(cls, config):
        return cls(config.program_depth, config.operand_depth, config.stationary_depth,
                   config.mask_depth, config.output_depth)


def load_entries(group, first, rounds):
    """The stationary-buffer entries the load rounds of bundles ``first..`` of ``group``
    read: round ``i`` of a bundle reads entry (its members' rows, ``i``), line ``i`` of
    the row of every member, in member order, whichever PEs load it."""
    return [entry for _, entry in _load_entries(group, first, rounds)]


def _load_entries(group, first, rounds):
    """:func:`load_entries` with the bundle (from ``first``) each entry is loaded for."""
    entries = []
    numbers = np.flatnonzero(rounds)
    if not len(numbers):
        return entries
    codes = row_codes(group, first, first + int(numbers[-1]) + 1)[:, group.member_pes]
    for number in numbers.tolist():
        key = codes[number].tobytes()
        entries += [(number, (key, index)) for index in range(int(rounds[number]))]
    return entries


def closes_piece(group, stop):
    """Whether a partial row ``group[...:stop]`` needs an empty closing task (WG rows
    whose last task is not of the row's last kernel row)."""
    return bool(group.offset[stop - 1] != group.closing_offset)


def _operand_needs(keys, beats):
    """The streamed rows a part adds to a run, as the packer counts them: ``{row key:
    0, ..., None: beats}``, their beats under a key no row has."""
    return {**dict.fromkeys(keys, 0), None: beats}


class _RunPacker:
    def __init__(self, capacity, rows):
        self.capacity = capacity
        self.fresh_rows = rows      # an empty scratchpad placement
        self.runs = []
        self._reset()

    def _reset(self):
        self.parts = []        # (group, first bundle, stop, partial)
        self.commands = self.operand_beats = self.outputs = 0
        self.stationary, self.masks, self.operands = set(), set(), set()
        self.rows = self.fresh_rows.copy()

    def _walk(self, group, first, stop, rows, lines):
        """Place the stationary rows of bundles ``first..stop`` of ``group`` in ``rows``
        (updated); returns the load-only commands (:func:`load_plan`) and adds the
        stationary-buffer entries the loads read (:func:`load_entries`) to ``lines``."""
        firsts, loaded, rounds = group_rows(rows, group, first, stop)
        lines.update(load_entries(group, first, rounds))
        alone, _, _ = load_plan(rows, group, first, stop, firsts, loaded, rounds)
        return int(alone.sum())

    def _needs(self, group):
        """What a whole group adds to the run: ``(commands, stationary lines, mask keys,
        operands (:func:`_operand_needs`), outputs, scratchpad placement after it)``."""
        rows, lines = self.rows.copy(), set()
        loads = self._walk(group, 0, group.bundles, rows, lines)
        masks = {group.mask_key} - self.masks if group.mask_key is not None else set()
        keys = set()
        beats = int(self._new_operand_beats(group, 0, group.bundles, keys).sum())
        return (group.bundles + loads, lines - self.stationary, masks,
                _operand_needs(keys, beats), group.out_len,
                rows)

    def _new_operand_beats(self, group, first, stop, keys):
        """Per bundle ``first..stop`` of ``group``, the operand-buffer beats its
        streamed row adds to the run: its beats if the run does not hold the row yet and
        no earlier bundle brought it (``keys``, updated: the rows brought so far)."""
        added = np.zeros(stop - first, np.int64)
        for number, (key, beats) in enumerate(zip(group.operand_keys[first:stop].tolist(),
                                                  group.beats[first:stop].tolist())):
            if beats and key not in self.operands and key not in keys:
                keys.add(key)
                added[number] = beats
        return added

    def _fits(self, needs):
        commands, stationary, masks, operands, outputs, _ = needs
        return self.fits_counts(commands, len(stationary), len(masks), sum(operands.values()),
                                outputs)

    def fits_counts(self, commands, stationary, masks, beats, outputs):
        capacity = self.capacity
        return (self.commands + commands <= capacity.program
                and len(self.stationary) + stationary <= capacity.stationary
                and len(self.masks) + masks <= capacity.mask
                and self.operand_beats + beats <= capacity.operand
                and self.outputs + outputs <= capacity.outputs)

    def _add(self, group, first, stop, needs, partial):
        commands, stationary, masks, operands, outputs, rows = needs
        self.parts.append((group, first, stop, partial))
        self.commands += commands
        self.stationary |= stationary
        self.masks |= masks
        self.operands |= set(operands)
        self.operand_beats += sum(operands.values())
        self.outputs += outputs
        self.rows = rows

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
        first = 0
        while first < group.bundles:
            piece = _Piece(self, group, first)
            if not piece.grow():
                if not self.parts:
                    raise ValueError(f"one row command needs more than the buffers hold "
                                     f"({self.capacity})")
                self._finish()
                continue
            self._add(group, first, piece.stop, piece.needs(), True)
            first = piece.stop

    def finish(self):
        self._finish()
        return self.runs


class _Piece:
    """A partial row ``group[first:stop]`` grown into a run as far as it fits."""

    # Bundles placed at once while the piece grows (doubled each time it still fits).
    _CHUNK = 64

    def __init__(self, packer, group, first):
        self.packer, self.group, self.first, self.stop = packer, group, first, first
        self.lines, self.loads, self.rows = set(), 0, packer.rows.copy()
        self.operands, self.operand_beats = set(), 0
        self.mask = {group.mask_key} - packer.masks if group.mask_key is not None else set()

    def needs(self):
        """What the piece adds to the run, as :meth:`_RunPacker._needs` gives it (its
        load-only commands as :func:`load_plan` gives them over the whole piece: growing
        it counted an upper bound, without the loads that ride with earlier primitives
        of the piece)."""
        closing = closes_piece(self.group, self.stop)
        return (self.stop - self.first + closing + self.loads, self.lines - self.packer.stationary,
                self.mask, _operand_needs(self.operands, self.operand_beats), self.group.out_len,
                self.rows)

    def grow(self):
        """Take bundles while the piece still fits the run, as taking them one at a time
        would (each bundle's loads counted as if no earlier primitive carried any:
        :func:`~gen.compiler.scratchpad.load_bound`); returns whether it took any."""
        group, packer, capacity = self.group, self.packer, self.packer.capacity
        rows = packer.rows.copy()
        lines, operands = set(), set()
        loads = new_lines = beats = 0
        start, chunk, stop = self.first, self._CHUNK, None
        while stop is None and start < group.bundles:
            end = min(group.bundles, start + chunk)
            _, _, rounds = group_rows(rows, group, start, end)
            # Per bundle, the counts of the piece that ends with it.
            added = np.zeros(end - start, np.int64)
            for number, entry in _load_entries(group, start, rounds):
                if entry not in lines and entry not in packer.stationary:
                    lines.add(entry)
                    added[number] += 1
            lines_at = new_lines + np.cumsum(added)
            new_lines = int(lines_at[-1])
            beats_at = beats + np.cumsum(packer._new_operand_beats(group, start, end,
                                                                   operands))
            beats = int(beats_at[-1])
            loads_at = loads + np.cumsum(load_bound(rounds))
            loads = int(loads_at[-1])
            ends = np.arange(start + 1, end + 1)
            closing = group.offset[ends - 1] != group.closing_offset
            fits = ((packer.commands + ends - self.first + closing + loads_at <= capacity.program)
                    & (len(packer.stationary) + lines_at <= capacity.stationary)
                    & (len(packer.masks) + len(self.mask) <= capacity.mask)
                    & (packer.operand_beats + beats_at <= capacity.operand)
                    & (packer.outputs + group.out_len <= capacity.outputs))
            if not fits.all():
                stop = start + int(np.argmin(fits))     # the first bundle that does not fit
            start, chunk = end, 2 * chunk
        self.stop = group.bundles if stop is None else stop
        if self.stop == self.first:
            return False
        # The piece's own state: its bundles placed again, alone, its loads planned.
        self.rows = packer.rows.copy()
        self.loads = packer._walk(group, self.first, self.stop, self.rows, self.lines)
        self.operand_beats = int(packer._new_operand_beats(group, self.first, self.stop,
                                                           self.operands).sum())
        return True


def pack_runs(groups, capacity, rows):
    """``[(parts, entries), ...]``: ``groups`` packed into runs of ``capacity`` (see the
    module's notes), the stationary rows placed in scratchpads like ``rows`` (an empty
    :class:`~gen.compiler.scratchpad.ScratchpadRows`); ``parts`` are ``(group, first
    bundle, stop, partial)``."""
    packer = _RunPacker(capacity, rows)
    for group in groups:
        packer.add(group)
    return packer.finish()


def run_trace(parts, entries, rows):
    """The :class:`~gen.model.trace.Trace` of one run's group parts, the stationary rows
    placed in scratchpads like ``rows`` (empty, as :func:`pack_runs` was given), their
    lines loaded as :func:`~gen.compiler.scratchpad.load_plan` says."""
    rows = rows.copy()
    pieces = []
    for group, first, stop, partial in parts:
        columns = {name: getattr(group, name)[first:stop]
                   for name in ("takes", "works", "timing")}
        beats = group.beats[first:stop]
        elements = group.elements[first:stop]
        row_last = np.zeros(stop - first, np.bool_)
        pes = columns["takes"].shape[1]
        if partial and closes_piece(group, stop):
            beats, elements = np.append(beats, 0), np.append(elements, 0)
            row_last = np.append(row_last, True)
            columns["takes"] = np.vstack([columns["takes"], np.ones((1, pes), np.bool_)])
            columns["works"] = np.vstack([columns["works"], np.zeros((1, pes), np.bool_)])
            columns["timing"] = np.concatenate(
                [columns["timing"], np.broadcast_to(TIMING_NONE, (1, pes, len(TIMING)))])
        elif partial or stop == group.bundles:
            row_last[-1] = True
            columns["takes"] = columns["takes"].copy()
            columns["takes"][-1] = True
        count = len(beats)
        firsts, loaded, rounds = group_rows(rows, group, first, stop)
        reads = np.zeros(count, np.bool_)
        reads[:stop - first] = needs_rows(group, first, stop)
        row_first = np.full((count, pes), -1, np.int32)
        row_first[:stop - first] = np.where(group.works[first:stop] & reads[:stop - first, None],
                                            firsts, -1)
        row_count = np.zeros(count, np.int32)
        row_count[:stop - first] = np.where(reads[:stop - first],
                                            -(-group.row_length[first:stop] // rows.words), 0)
        load_line = np.full((count, pes), -1, np.int32)
        if rounds.any():
            # Round i of a bundle writes line i of its loaded rows, with a primitive
            # (its own last round, or a later bundle's) or in a load bundle before it,
            # which the PEs that load take, without beats (an accept cycle each).
            alone, ride_from, ride_round = load_plan(rows, group, first, stop, firsts,
                                                     loaded, rounds)
            source = np.maximum(ride_from, 0)
            load_line[:stop - first] = np.where((ride_from >= 0)[:, None] & loaded[source],
                                                firsts[source] + ride_round[:, None], -1)
            at = np.repeat(np.arange(stop - first), alone)
        if rounds.any() and len(at):
            # Load-only bundles before the bundles whose rounds do not all ride.
            index = np.arange(len(at)) - np.repeat(np.cumsum(alone) - alone, alone)
            lines = np.where(loaded[at], firsts[at] + index[:, None], -1).astype(np.int32)
            beats, elements = np.insert(beats, at, 0), np.insert(elements, at, 0)
            row_last = np.insert(row_last, at, False)
            columns["takes"] = np.insert(columns["takes"], at, lines >= 0, axis=0)
            columns["works"] = np.insert(columns["works"], at, False, axis=0)
            columns["timing"] = np.insert(columns["timing"], at, TIMING_NONE[None, :], axis=0)
            row_first = np.insert(row_first, at, -1, axis=0)
            row_count = np.insert(row_count, at, 0)
            load_line = np.insert(load_line, at, lines, axis=0)
        pieces.append((beats, row_last, np.full(len(beats), group.out_len), columns, elements,
                       load_line, row_first, row_count))
    timing = np.concatenate([p[3]["timing"] for p in pieces])
    trace = Trace(
        beats=np.concatenate([p[0] for p in pieces]).astype(np.int32, copy=False),
        row_last=np.concatenate([p[1] for p in pieces]),
        out_len=np.concatenate([p[2] for p in pieces]).astype(np.int32, copy=False),
        takes=np.concatenate([p[3]["takes"] for p in pieces]),
        works=np.concatenate([p[3]["works"] for p in pieces]),
        **{name: np.ascontiguousarray(timing[:, :, column])
           for column, name in enumerate(TIMING)},
        elements=np.concatenate([p[4] for p in pieces]).astype(np.int32, copy=False),
        load_line=np.concatenate([p[5] for p in pieces]).astype(np.int32, copy=False),
        row_first=np.concatenate([p[6] for p in pieces]).astype(np.int32, copy=False),
        row_count=np.concatenate([p[7] for p in pieces]).astype(np.int32, copy=False),
        entries=entries)
    trace.issued_macs = sum(int(group.issued_macs[first:stop].sum())
                            for group, first, stop, _ in parts)
    return trace
