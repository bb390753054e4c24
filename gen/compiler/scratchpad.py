"""Which stationary rows the PEs' scratchpads hold, and the loads that put them there.

The host-side half of :class:`hw.scratchpad.Scratchpad`: rows start on a line
and take ``ceil(length / line_words)`` lines; a row not held is placed at the
next free position in turn (a ring of lines; a row never wraps past the last
line) and evicts the rows it overwrites. A load entry per line writes it.
The same placement serves a lone PE (tests and benches, rows by value) and
the array's programs (:func:`group_rows`: each PE places its own rows, by
which rows they are), for the schedule's runs, the cycle
model's traces and the packed programs alike.
"""

from __future__ import annotations

import numba
import numpy as np

from hw.layouts import row_entries

__all__ = ["ScratchpadRows", "ArrayRows", "row_lines", "group_rows", "needs_rows",
           "separate_rounds", "load_plan"]


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


class ArrayRows:
    """The rows held by every PE's scratchpad, each PE placing its own as
    :class:`ScratchpadRows` does (a ring of lines, a row evicting the rows it
    overwrites), kept in arrays for :func:`group_rows`: a row loaded into a PE serves
    every later primitive that gives the PE that row, whichever group (and assignment
    of rows to PEs) it belongs to. ``window``: the tasks a PE may have elements of in
    flight (:func:`hw.layouts.row_entries`), which :func:`load_plan` keeps loads clear
    of."""

    def __init__(self, pes, lines, words, window):
        self.pes, self.lines, self.words, self.window = pes, lines, words, window
        self.row_key = np.full((pes, lines), -1, np.int64)     # key of the row starting here
        self.row_lines = np.zeros((pes, lines), np.int64)      # and its lines
        self.covered = np.full((pes, lines), -1, np.int64)     # first line of the row here
        self.next = np.zeros(pes, np.int64)

    @classmethod
    def of(cls, config, pes=None):
        return cls(pes or config.pes, config.scratchpad_lines, config.line_words,
                   row_entries(config.queue_depth, config.elements_per_beat))

    def copy(self):
        other = ArrayRows.__new__(ArrayRows)
        other.pes, other.lines, other.words = self.pes, self.lines, self.words
        other.window = self.window
        for name in ("row_key", "row_lines", "covered", "next"):
            setattr(other, name, getattr(self, name).copy())
        return other

    def words_of(self, row, index):
        """Line ``index`` of ``row`` (operands), padded with zeros to ``words``."""
        part = list(row[index * self.words:(index + 1) * self.words])
        return part + [0] * (self.words - len(part))


def needs_rows(group, bundle):
    """Whether bundle ``bundle`` of ``group`` reads stationary rows: a primitive with
    streamed elements that some PE works on."""
    return bool(group.tile[bundle] >= 0 and group.beats[bundle] and group.works[bundle].any())


# A row's key: which row (its index in the stationary tensor) and which slice of it.
_SLICE_BITS = 20


def group_rows(rows, group, first, stop):
    """Place the stationary rows of bundles ``first..stop`` of ``group`` in ``rows`` (an
    :class:`ArrayRows`, updated). Returns ``(firsts, loaded, rounds)``: per bundle and
    PE the scratchpad line its row starts at (0 where it reads none) and whether it
    loads the row before the bundle; per bundle its load rounds (round ``i`` loads line
    ``i`` of every loaded row into line ``firsts + i``; 0: every row is held)."""
    works = group.works[first:stop]
    needs = (group.tile[first:stop] >= 0) & (group.beats[first:stop] > 0) & works.any(axis=1)
    codes = (group.b_row[first:stop] << _SLICE_BITS) | group.row_slice[first:stop, None]
    counts = -(-group.row_length[first:stop] // rows.words)
    firsts = np.zeros(works.shape, np.int64)
    loaded = np.zeros(works.shape, np.bool_)
    _place(rows.row_key, rows.row_lines, rows.covered, rows.next, codes, works, needs,
           np.maximum(counts, 1), firsts, loaded)
    rounds = np.where(loaded.any(axis=1), np.maximum(counts, 1), 0)
    return firsts, loaded, rounds


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
    needs = (group.tile[first:stop] >= 0) & (group.beats[first:stop] > 0) & works.any(axis=1)
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
def _place(row_key, row_lines, covered, nxt, codes, works, needs, counts, firsts, loaded):
    bundles, pes = works.shape
    lines = row_key.shape[1]
    for b in range(bundles):
        if not needs[b]:
            continue
        count = counts[b]
        for p in range(pes):
            if not works[b, p]:
                continue
            key = codes[b, p]
            found = -1
            for line in range(lines):
                if row_key[p, line] == key:
                    found = line
                    break
            if found >= 0:
                firsts[b, p] = found
                continue
            start = nxt[p]
            if start + count > lines:
                start = 0
            for line in range(start, start + count):
                old = covered[p, line]
                if old >= 0:
                    for other in range(old, old + row_lines[p, old]):
                        covered[p, other] = -1
                    row_key[p, old] = -1
            row_key[p, start] = key
            row_lines[p, start] = count
            for line in range(start, start + count):
                covered[p, line] = start
            nxt[p] = (start + count) % lines
            firsts[b, p] = start
            loaded[b, p] = True
