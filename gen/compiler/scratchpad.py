"""Which stationary rows the PEs' scratchpads hold, and the loads that put them there.

The host-side half of :class:`hw.scratchpad.Scratchpad`: rows start on a line
and take ``ceil(length / line_words)`` lines; a row not held is placed at the
next free position in turn (a ring of lines; a row never wraps past the last
line) and evicts the rows it overwrites. A load entry per line writes it.
The same placement serves a lone PE (tests and benches, rows by value), the
array fed directly (:class:`SharedRows`, rows by value) and the array's
programs (:func:`group_rows`, rows by which rows they are), for the
schedule's runs, the cycle model's traces and the packed programs alike. In
the array the placement is shared: a bundle's rows, one per PE, start on the
same line of every PE's scratchpad, so a command names one line (and one
line to load) for all PEs; a stationary or mask entry holds its lines or
mask rows in the order of the group's members, and each PE takes its
member's (a crossbar, the command's ``source``).
"""

from __future__ import annotations

import numba
import numpy as np

from hw.layouts import row_entries

__all__ = ["ScratchpadRows", "ArrayRows", "SharedRows", "row_lines", "row_codes", "group_rows",
           "load_bound", "needs_rows", "separate_rounds", "load_plan"]


def separate_rounds(rounds):
    """Of the ``rounds`` lines loaded for a primitive (per PE, or the rounds of a
    bundle), those that go in load-only entries before it: all but the last, which
    the primitive's own entry carries (the PE writes it as it takes the entry, so it
    costs no cycle of its own). Works on ints and arrays."""
    return np.maximum(rounds - 1, 0)


def row_lines(config, length):
    """Lines a row of ``length`` operands takes (at least one)."""
    return max(1, -(-length // config.line_words))


class ScratchpadRows:
    """The rows a scratchpad of ``lines`` lines of ``words`` operands holds, by key."""

    def __init__(self, lines, words):
        self.lines, self.words = lines, words
        self.next = 0
        self.first = {}                     # key -> first line
        self.owner = [None] * lines         # key of the row in each line

    @classmethod
    def of(cls, config):
        return cls(config.scratchpad_lines, config.line_words)

    def copy(self):
        other = ScratchpadRows.__new__(ScratchpadRows)
        other.lines, other.words, other.next = self.lines, self.words, self.next
        other.first, other.owner = dict(self.first), list(self.owner)
        return other

    def place(self, key, length):
        """``(first line, loads)``: where the row of ``length`` operands named ``key`` is,
        and the ``(line, index)`` loads of its lines that put it there (none when it is
        held): line ``index`` of the row goes into scratchpad line ``line``."""
        first = self.first.get(key)
        if first is not None:
            return first, []
        count = max(1, -(-length // self.words))
        if self.next + count > self.lines:
            self.next = 0
        first = self.next
        for line in range(first, first + count):
            old = self.owner[line]
            if old is not None:
                self._evict(old)
        for line in range(first, first + count):
            self.owner[line] = key
        self.first[key] = first
        self.next = (first + count) % self.lines
        return first, [(first + index, index) for index in range(count)]

    def lines_of(self, row, index):
        """Line ``index`` of ``row`` (operands), padded with zeros to ``words``."""
        part = list(row[index * self.words:(index + 1) * self.words])
        return part + [0] * (self.words - len(part))

    def _evict(self, key):
        first = self.first.pop(key)
        for line in range(first, self.lines):
            if self.owner[line] != key:
                break
            self.owner[line] = None


class SharedRows:
    """One placement for all PEs of an array fed bundles by value: a bundle's rows
    (a tuple, one per PE) are placed as one row of :class:`ScratchpadRows`, and a PE
    loads its row of a tuple the first time it works on it (as :class:`ArrayRows`)."""

    def __init__(self, lines, words):
        self.rows = ScratchpadRows(lines, words)
        self.held = {}      # tuple -> the PEs that loaded their row of it

    @classmethod
    def of(cls, config):
        return cls(config.scratchpad_lines, config.line_words)

    def place(self, rows, works):
        """``(first line, lines, loading)`` of the tuple ``rows`` (one per PE, by
        value): where it starts, how many lines it takes and which PEs of ``works``
        load their row before the bundle."""
        length = max(map(len, rows))
        first, loads = self.rows.place(tuple(rows), length)
        if loads:
            self.held[tuple(rows)] = set()
        held = self.held[tuple(rows)]
        loading = [bool(here) and unit not in held for unit, here in enumerate(works)]
        held.update(unit for unit, here in enumerate(loading) if here)
        return first, max(1, -(-length // self.rows.words)), loading

    def lines_of(self, row, index):
        return self.rows.lines_of(row, index)


class ArrayRows:
    """The rows held by the PEs' scratchpads, one placement shared by all PEs: a
    bundle's rows (one per PE, in PE order: a *row tuple*) start on the same line in
    every PE, so a command names one line for all of them (``row``, ``load_line``). The
    tuples are placed as :class:`ScratchpadRows` places rows (a ring of lines, a tuple
    evicting the tuples it overwrites); a tuple held serves every later bundle with the
    same rows on the same PEs, and a PE loads its row of a tuple only when it first works
    on it (``held``: per tuple's first line and PE, whether the PE has loaded it), so a
    PE with a zero row never loads one. ``window``: the tasks a PE may have elements of
    in flight (:func:`hw.layouts.row_entries`), which :func:`load_plan` keeps loads
    clear of."""

    def __init__(self, pes, lines, words, window):
        self.pes, self.lines, self.words, self.window = pes, lines, words, window
        self.tuple_hash = np.zeros(lines, np.uint64)          # of the tuple starting here
        self.tuple_codes = np.full((lines, pes), -1, np.int64)  # its rows (row codes)
        self.row_lines = np.zeros(lines, np.int64)            # and its lines (0: none)
        self.covered = np.full(lines, -1, np.int64)           # first line of the tuple here
        self.held = np.zeros((lines, pes), np.bool_)
        self.next = np.zeros(1, np.int64)

    @classmethod
    def of(cls, config, pes=None):
        return cls(pes or config.pes, config.scratchpad_lines, config.line_words,
                   row_entries(config.queue_depth, config.elements_per_beat))

    _ARRAYS = ("tuple_hash", "tuple_codes", "row_lines", "covered", "held", "next")

    def copy(self):
        other = ArrayRows.__new__(ArrayRows)
        other.pes, other.lines, other.words = self.pes, self.lines, self.words
        other.window = self.window
        for name in self._ARRAYS:
            setattr(other, name, getattr(self, name).copy())
        return other

    def words_of(self, row, index):
        """Line ``index`` of ``row`` (operands), padded with zeros to ``words``."""
        part = list(row[index * self.words:(index + 1) * self.words])
        return part + [0] * (self.words - len(part))


def needs_rows(group, first, stop):
    """Per bundle ``first..stop`` of ``group``, whether it reads stationary rows: a
    primitive with streamed elements that some PE works on."""
    return ((group.tile[first:stop] >= 0) & (group.beats[first:stop] > 0)
            & group.works[first:stop].any(axis=1))


# A row's code: which row (its index in the stationary tensor, -1: none) and which
# slice of it.
_SLICE_BITS = 20


def row_codes(group, first, stop):
    """Per bundle ``first..stop`` of ``group`` and PE, the code of its stationary row:
    equal codes, equal rows (a bundle's codes in PE order name its row tuple)."""
    return (group.b_row[first:stop] << _SLICE_BITS) | group.row_slice[first:stop, None]


def group_rows(rows, group, first, stop):
    """Place the stationary rows of bundles ``first..stop`` of ``group`` in ``rows`` (an
    :class:`ArrayRows`, updated). Returns ``(firsts, loaded, rounds)``: per bundle and
    PE the scratchpad line its row starts at (the same for every PE; 0 where the bundle
    reads none) and whether the PE loads its row before the bundle; per bundle its load
    rounds (round ``i`` loads line ``i`` of every loaded row into line ``firsts + i``;
    0: every row is held)."""
    works = group.works[first:stop]
    needs = needs_rows(group, first, stop)
    counts = -(-group.row_length[first:stop] // rows.words)
    firsts = np.zeros(works.shape, np.int64)
    loaded = np.zeros(works.shape, np.bool_)
    _place(rows.tuple_hash, rows.tuple_codes, rows.row_lines, rows.covered, rows.held,
           rows.next, row_codes(group, first, stop), works, needs, np.maximum(counts, 1),
           firsts, loaded)
    rounds = np.where(loaded.any(axis=1), np.maximum(counts, 1), 0)
    return firsts, loaded, rounds


def load_bound(rounds):
    """Per bundle, the load-only bundles :func:`load_plan` gives it when no earlier
    primitive carries a round of its (a bundle planned alone): all its rounds but the
    last, which rides with its own primitive. Over any bundles, at least what
    :func:`load_plan` gives them."""
    return np.maximum(rounds - 1, 0)


def load_plan(rows, group, first, stop, firsts, loaded, rounds):
    """Which bundle carries each load round of bundles ``first..stop`` of ``group``
    (:func:`group_rows`' placement): a bundle's last round rides with its primitive;
    its earlier rounds ride with earlier primitives that load nothing of their own
    (latest round first, going back one bundle each, as long as the PEs that load work
    in that primitive and none of them reads the round's line from ``window`` bundles
    before it on, so that no load waits for elements in flight or overwrites a row
    still to be read; ``rows.window``: the tasks a PE may have in flight); the rest go in
    load-only bundles right before the bundle.

    Returns ``(alone, ride_from, ride_round)``, per bundle: its first ``alone`` rounds
    go in load-only bundles before it; round ``ride_round`` of bundle ``ride_from``
    rides with it (-1: none). All relative to ``first``."""
    works = group.works[first:stop]
    needs = needs_rows(group, first, stop)
    counts = np.maximum(-(-group.row_length[first:stop] // rows.words), 1)
    alone = np.zeros(stop - first, np.int64)
    ride_from = np.full(stop - first, -1, np.int64)
    ride_round = np.full(stop - first, -1, np.int64)
    _plan(works, needs, counts, firsts, loaded, rounds, rows.window, alone, ride_from,
          ride_round)
    return alone, ride_from, ride_round


@numba.njit(cache=True)
def _plan(works, needs, counts, firsts, loaded, rounds, window, alone, ride_from, ride_round):
    bundles, pes = works.shape
    for b in range(bundles):
        if rounds[b] == 0:
            continue
        ride_from[b] = b
        ride_round[b] = rounds[b] - 1
    for b in range(bundles):
        if rounds[b] < 2:
            continue
        index = rounds[b] - 2
        x = b - 1
        while index >= 0 and x >= 0:
            if ride_from[x] >= 0 or not needs[x]:
                break
            ok = True
            for p in range(pes):
                if not loaded[b, p]:
                    continue
                if not works[x, p]:
                    ok = False
                    break
                line = firsts[b, p] + index
                for y in range(max(0, x - window), b):
                    if works[y, p] and needs[y] and \
                            firsts[y, p] <= line < firsts[y, p] + counts[y]:
                        ok = False
                        break
                if not ok:
                    break
            if not ok:
                break
            ride_from[x] = b
            ride_round[x] = index
            index -= 1
            x -= 1
        alone[b] = index + 1


@numba.njit(cache=True)
def _tuple_hash(codes):
    value = np.uint64(14695981039346656037)
    for code in codes:
        value = (value ^ np.uint64(code & 0xFFFFFFFFFFFF)) * np.uint64(1099511628211)
    return value


@numba.njit(cache=True)
def _place(tuple_hash, tuple_codes, row_lines, covered, held, nxt, codes, works, needs,
           counts, firsts, loaded):
    bundles, pes = works.shape
    lines = row_lines.shape[0]
    for b in range(bundles):
        if not needs[b]:
            continue
        count = counts[b]
        value = _tuple_hash(codes[b])
        found = -1
        for line in range(lines):
            if row_lines[line] == 0 or tuple_hash[line] != value:
                continue
            same = True
            for p in range(pes):
                if tuple_codes[line, p] != codes[b, p]:
                    same = False
                    break
            if same:
                found = line
                break
        if found < 0:
            found = nxt[0]
            if found + count > lines:
                found = 0
            for line in range(found, found + count):
                old = covered[line]
                if old >= 0:
                    for other in range(old, old + row_lines[old]):
                        covered[other] = -1
                    row_lines[old] = 0
                    held[old, :] = False
            row_lines[found] = count
            tuple_hash[found] = value
            tuple_codes[found, :] = codes[b]
            for line in range(found, found + count):
                covered[line] = found
            nxt[0] = (found + count) % lines
        for p in range(pes):
            firsts[b, p] = found
            if works[b, p] and not held[found, p]:
                held[found, p] = True
                loaded[b, p] = True
