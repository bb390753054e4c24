"""Which stationary rows the PEs' scratchpads hold, and the loads that put them there.

The host-side half of :class:`hw.scratchpad.Scratchpad`: rows start on a line
and take ``ceil(length / line_words)`` lines; a row not held is placed at the
next free position in turn (a ring of lines; a row never wraps past the last
line) and evicts the rows it overwrites. A load entry per line writes it.
The same placement serves a lone PE (tests and benches, rows by value) and
the array's programs (:func:`bundle_rows`: a bundle's rows at the same lines
in every PE, by which rows they are), for the schedule's runs, the cycle
model's traces and the packed programs alike.
"""

from __future__ import annotations

import copy

__all__ = ["ScratchpadRows", "row_lines", "bundle_rows", "needs_rows"]


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
        return copy.deepcopy(self)

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


def needs_rows(group, bundle):
    """Whether bundle ``bundle`` of ``group`` reads stationary rows: a primitive with
    streamed elements that some PE works on."""
    return bool(group.tile[bundle] >= 0 and group.beats[bundle] and group.works[bundle].any())


def bundle_rows(rows, group, bundle):
    """``(first line, key, loads)`` of bundle ``bundle`` of ``group`` against the placement
    ``rows`` (updated): where its PEs' stationary rows start, the key they are held by
    (the rows and which PE has which), and the ``(line, index)`` loads that bring them
    in. A bundle without rows to read: ``(0, None, [])``."""
    if not needs_rows(group, bundle):
        return 0, None, []
    key = (int(group.stationary_keys[bundle]), group.placement_key)
    first, loads = rows.place(key, int(group.row_length[bundle]))
    return first, key, loads
