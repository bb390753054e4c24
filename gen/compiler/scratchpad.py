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

__all__ = ["ScratchpadRows", "ArrayRows", "row_lines", "bundle_rows", "needs_rows"]


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
    """The rows held by every PE's scratchpad (a :class:`ScratchpadRows` per PE), each PE
    placing its own: a row loaded into a PE serves every later primitive that gives
    the PE that row, whichever group (and assignment of rows to PEs) it belongs to."""

    def __init__(self, pes, lines, words):
        self.pes, self.lines, self.words = pes, lines, words
        self.rows = [ScratchpadRows(lines, words) for _ in range(pes)]
        # Bundles whose rows were all held, by (stationary key, placement, works), valid
        # while no row is evicted since (epoch).
        self.epoch = 0
        self.held = {}

    @classmethod
    def of(cls, config, pes=None):
        return cls(pes or config.pes, config.scratchpad_lines, config.line_words)

    def words_of(self, row, index):
        """Line ``index`` of ``row`` (operands), padded with zeros to ``words``."""
        return self.rows[0].lines_of(row, index)

    def copy(self):
        other = ArrayRows.__new__(ArrayRows)
        other.pes, other.lines, other.words = self.pes, self.lines, self.words
        other.rows = [rows.copy() for rows in self.rows]
        other.epoch, other.held = self.epoch, dict(self.held)
        return other


def needs_rows(group, bundle):
    """Whether bundle ``bundle`` of ``group`` reads stationary rows: a primitive with
    streamed elements that some PE works on."""
    return bool(group.tile[bundle] >= 0 and group.beats[bundle] and group.works[bundle].any())


def bundle_rows(rows, group, bundle):
    """``(firsts, rounds)`` of bundle ``bundle`` of ``group`` against the placement
    ``rows`` (an :class:`ArrayRows`, updated): per PE the scratchpad line its stationary
    row starts at (0 for a PE that reads none), and the load rounds that bring in the
    rows not held. Round ``i`` loads line ``i`` of the rows: ``(entry, loads)``, the
    stationary-buffer entry it reads (the bundle's stationary key and ``i``: line
    ``i`` of each distinct row of the PEs that have one, whichever PEs load them) and
    per PE ``(line, key, i)`` (its row, held as ``key``, goes into scratchpad line
    ``line``) or None."""
    pes = rows.pes
    if not needs_rows(group, bundle):
        return [0] * pes, []
    works = group.works[bundle]
    cached = (int(group.stationary_keys[bundle]), group.placement_key, works.tobytes())
    held = rows.held.get(cached)
    if held is not None and held[0] == rows.epoch:
        return held[1], []
    firsts, per_pe = [0] * pes, []
    length, part = int(group.row_length[bundle]), int(group.row_slice[bundle])
    b_row = group.b_row[bundle]
    evictions = 0
    for unit in works.nonzero()[0].tolist():
        key = (int(b_row[unit]), part)
        pe_rows = rows.rows[unit]
        before = len(pe_rows.first)
        first, loads = pe_rows.place(key, length)
        firsts[unit] = first
        if loads:
            evictions += before + 1 - len(pe_rows.first)
            per_pe.append((unit, [(line, key, index) for line, index in loads]))
    if evictions:
        rows.epoch += 1
    rows.held[cached] = (rows.epoch, firsts)
    count = max((len(loads) for _, loads in per_pe), default=0)
    rounds = []
    for number in range(count):
        round_ = [None] * pes
        for unit, loads in per_pe:
            if number < len(loads):
                round_[unit] = loads[number]
        rounds.append(((cached[0], number), round_))
    return firsts, rounds
