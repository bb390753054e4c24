"""Which stationary rows a PE's scratchpad holds, and the loads that put them there.

The host-side half of :class:`hw.scratchpad.Scratchpad`: rows start on a line
and take ``ceil(length / line_words)`` lines; a row not held is placed at the
next free position in turn (a ring of lines; a row never wraps past the last
line) and evicts the rows it overwrites. A load entry per line writes it.
The same placement serves a lone PE (tests, benches: every row its own) and
the array's programs (a bundle's rows at the same lines in every PE).
"""

from __future__ import annotations

__all__ = ["ScratchpadRows", "row_lines"]


def row_lines(config, length):
    """Lines a row of ``length`` operands takes (at least one)."""
    return max(1, -(-length // config.line_words))


class ScratchpadRows:
    """The rows a scratchpad holds, by key; :meth:`place` returns where a row is."""

    def __init__(self, config):
        self.config = config
        self.lines = config.scratchpad_lines
        self.next = 0
        self.first = {}                     # key -> first line
        self.owner = [None] * self.lines    # key of the row in each line

    def place(self, key, row):
        """``(first line, loads)``: where the row ``row`` (operands) named ``key`` is, and
        the ``(line, operands)`` loads that put it there (none when it is held)."""
        if key in self.first:
            return self.first[key], []
        count = row_lines(self.config, len(row))
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
        words = self.config.line_words
        padded = list(row) + [0] * (count * words - len(row))
        return first, [(first + number, tuple(padded[number * words:(number + 1) * words]))
                       for number in range(count)]

    def _evict(self, key):
        first = self.first.pop(key)
        for line in range(first, self.lines):
            if self.owner[line] != key:
                break
            self.owner[line] = None
