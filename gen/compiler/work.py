"""The work of row primitives: per primitive, task tile and PE, what its streamed elements
cost the PE, computed from the operands' nonzero maps in a loop compiled with numba.

The MAC slots of a task are :func:`gen.compiler.tiling.task_slots`' (the one
host copy of the PE's decoding rule), passed in as tables; the accept
stage's pacing is :func:`queue_timing`. Both live in this module because numba's
cache of a compiled function does not follow changes to the functions it calls
from other modules.
"""

from __future__ import annotations

import numba
import numpy as np

from ..model.trace import TIMING
from .tiling import task_slots

__all__ = ["SlotTables", "PrimitiveWork", "primitive_work", "queue_timing"]


class SlotTables:
    """The MAC slots of every task tile of a layout, flattened for :func:`primitive_work`:
    per tile ``q`` and streamed element ``i``, its slots are
    ``operand[start[q] + first[i]: start[q] + first[i + 1]]`` (and ``target``), where
    ``first`` is ``pointers[base[q]:]``."""

    def __init__(self, task_phase, kernel, stride, parts):
        operands, targets, pointers, starts, bases = [], [], [], [], []
        slots = pointer_count = 0
        for a_lo, a_hi, _, _, pad, in_width, out_width, _ in parts.tolist():
            a_index, b_index, o_index = task_slots(task_phase, a_hi - a_lo, kernel,
                                                   stride=stride, pad=pad, in_width=in_width,
                                                   out_width=out_width)
            operands.append(b_index)
            targets.append(o_index)
            pointers.append(np.searchsorted(a_index, np.arange(a_hi - a_lo + 1)))
            starts.append(slots)
            bases.append(pointer_count)
            slots += len(a_index)
            pointer_count += a_hi - a_lo + 1
        empty = np.zeros(0, np.int64)
        self.operand = np.ascontiguousarray(np.concatenate(operands or [empty]), np.int64)
        self.target = np.ascontiguousarray(np.concatenate(targets or [empty]), np.int64)
        self.pointers = np.ascontiguousarray(np.concatenate(pointers or [empty]), np.int64)
        self.start = np.array(starts, np.int64)
        self.base = np.array(bases, np.int64)


class PrimitiveWork:
    """What :func:`primitive_work` returns, per primitive ``t`` and task tile ``q``
    (``elements``, ``nonzeros``) and per member ``m`` (the rest, ``(T, Q, M)``):
    ``timing`` ``(T, Q, M, len(TIMING))`` holds the columns of
    :data:`~gen.model.trace.TIMING`, each also an attribute (a view)."""

    __slots__ = ("elements", "nonzeros", "timing", "issued", "effectual", "stationary")

    def __init__(self, values):
        for name, value in zip(self.__slots__, values):
            setattr(self, name, value)

    def rows(self, first, stop):
        """The work of primitives ``first`` to ``stop`` (views)."""
        return PrimitiveWork([getattr(self, name)[first:stop] for name in self.__slots__])


# _primitive_work writes the columns in this order.
assert tuple(TIMING) == ("issue", "last_issue", "lead_beats", "accept_span", "tail_lag",
                         "pop_lag", "head_lag", "last_mac", "tail_cycles", "trailing_issue",
                         "mac_elements"), TIMING
for _column, _name in enumerate(TIMING):
    setattr(PrimitiveWork, _name,
            property(lambda self, column=_column: self.timing[:, :, :, column]))
del _column, _name


def primitive_work(a_rows, b_rows, masks, a_index, b_index, mask_index, parts, slots, *,
                   bp, dense, lanes, per_beat, issue_lead):
    """The :class:`PrimitiveWork` of primitives ``a_index`` (streamed rows) x ``b_index``
    (stationary rows per member, -1: a placeholder) over the task tiles ``parts``, BP
    masked by the rows ``mask_index`` (per primitive and member); ``issue_lead``: the
    PE's :func:`hw.pe.issue_lead`."""
    return PrimitiveWork(_primitive_work(a_rows, b_rows, masks, a_index, b_index, mask_index,
                                         parts, slots.operand, slots.target, slots.pointers,
                                         slots.start, slots.base, bp, dense, lanes, per_beat,
                                         issue_lead))


@numba.njit(cache=True)
def _primitive_work(a_rows, b_rows, masks, a_index, b_index, mask_index, parts, slot_operand,
                    slot_target, slot_pointers, slot_start, slot_base, bp, dense, lanes,
                    per_beat, issue_lead):
    """Per primitive t and task tile q: streamed elements and nonzeros; per member m:
    issue cycles, those of the last streamed element, the accept stage's timing
    (:func:`queue_timing`), issued and effectual MACs, and whether
    its stationary tile holds a nonzero."""
    prims, members = b_index.shape
    tiles = parts.shape[0]
    elements = np.zeros((prims, tiles), np.int64)
    nonzeros = np.zeros((prims, tiles), np.int64)
    # The timing columns, in TIMING's order (checked at import), written through views.
    timing = np.zeros((prims, tiles, members, 11), np.int32)
    timing[:, :, :, 4:7] = -1
    issue, last_issue, lead, span = (timing[:, :, :, 0], timing[:, :, :, 1],
                                     timing[:, :, :, 2], timing[:, :, :, 3])
    tail_lag, pop_lag, head_lag = timing[:, :, :, 4], timing[:, :, :, 5], timing[:, :, :, 6]
    last_mac, tail_cycles = timing[:, :, :, 7], timing[:, :, :, 8]
    trailing_issue, mac_elements = timing[:, :, :, 9], timing[:, :, :, 10]
    element_cycles = np.zeros(a_rows.shape[1] + 1, np.int64)
    issued = np.zeros((prims, tiles, members), np.int64)
    effectual = np.zeros((prims, tiles, members), np.int64)
    stationary = np.zeros((prims, tiles, members), np.bool_)
    for q in range(tiles):
        a_lo, a_hi, b_lo, b_hi, pad, in_width, out_width, column = parts[q]
        start, base = slot_start[q], slot_base[q]
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
                    first, stop = slot_pointers[base + i], slot_pointers[base + i + 1]
                    useful = 0
                    if a[a_lo + i]:
                        for slot in range(start + first, start + stop):
                            if b[b_lo + slot_operand[slot]] and \
                                    (not bp or masks[mask_index[t, m], column + slot_target[slot]]):
                                useful += 1
                    n = stop - first if dense else useful
                    last = (n + lanes - 1) // lanes
                    element_cycles[streamed - 1] = last
                    mac_elements[t, q, m] += last > 0
                    cycles += last
                    issued[t, q, m] += n
                    effectual[t, q, m] += useful
                issue[t, q, m] = cycles
                last_issue[t, q, m] = last
                (lead[t, q, m], span[t, q, m], tail_lag[t, q, m], pop_lag[t, q, m],
                 head_lag[t, q, m], last_mac[t, q, m], tail_cycles[t, q, m],
                 trailing_issue[t, q, m]) = queue_timing(
                    element_cycles[:streamed], per_beat, issue_lead)
    return elements, nonzeros, timing, issued, effectual, stationary


@numba.njit(cache=True)
def queue_timing(cycles, per_beat, issue_lead):
    """How a PE's element queue paces the accept of one primitive's beats.

    ``cycles`` are the issue cycles of each streamed element in stream order
    (0: no MAC, the element is dropped as it is accepted); ``per_beat``
    elements arrive per beat, one beat per cycle at most; ``issue_lead`` is
    :func:`hw.pe.issue_lead` (``queue_depth - per_beat + 1``). As in
    ``hw/pe.py``: a beat is accepted while the queue holds at most
    ``issue_lead - 1`` elements (a pop frees room from the next cycle),
    the issue stage takes the oldest element when it has none or issues its
    current element's last MAC, and a taken element issues from the next
    cycle.

    Returns ``(lead_beats, accept_span, tail_lag, pop_lag, head_lag, last_mac,
    tail_cycles, trailing_issue)``.
    ``lead_beats``: the beats before the first one with an element that has a
    MAC (dropped as they arrive, one per cycle). ``accept_span``: cycles from
    accepting the first beat to accepting the last when the PE starts idle. A beat can be accepted only once the issue
    stage has taken all but ``issue_lead - 1`` of the elements before it,
    and the beats after it follow one per cycle: ``tail_lag`` is the latest
    of these bounds on the last beat that waits for one of this primitive's
    own elements after the first, in cycles from the primitive's first issue
    (issue running without a gap), ``pop_lag`` the latest that waits for
    its first element, in cycles from the cycle that element could issue
    but for a psum bank (it leaves the queue while it waits for one),
    ``head_lag`` the latest that waits for the previous
    primitive's last element, in cycles from that element's issue (-1:
    none). ``last_mac``: the issue cycles of the last element with a MAC;
    ``tail_cycles``: of the last ``issue_lead`` (all, when fewer): how
    far the accept stage runs ahead of the issue of a primitive that follows.
    ``trailing_issue``: see :class:`gen.model.trace.Trace`.
    """
    count = len(cycles)
    beats = (count + per_beat - 1) // per_beat
    lead = 0
    while lead < count and cycles[lead] == 0:
        lead += 1
    lead_beats = lead // per_beat if lead < count else 0
    # started[k]: cycles from the first issue to the issue of MAC element k.
    started = np.zeros(count + 1, np.int64)
    macs = 0
    for element in range(count):
        if cycles[element] > 0:
            started[macs + 1] = started[macs] + cycles[element]
            macs += 1
    tail_lag = pop_lag = head_lag = -1
    before = 0      # MAC elements in the beats before beat j
    for j in range(1, beats):
        for element in range((j - 1) * per_beat, j * per_beat):
            before += cycles[element] > 0
        waits_for = before - issue_lead
        if waits_for > 0:
            # Beat j waits for that element's issue; the beats after it follow
            # one per cycle.
            tail_lag = max(tail_lag, started[waits_for] + beats - 1 - j)
        elif waits_for == 0:
            pop_lag = max(pop_lag, beats - 1 - j)
        elif waits_for == -1:
            # It waits for the issue of the previous primitive's last element.
            head_lag = max(head_lag, beats - 1 - j)
    last_mac = 0
    for element in range(count):
        if cycles[element] > 0:
            last_mac = cycles[element]
    tail_cycles = started[macs] - started[max(0, macs - issue_lead)]
    # The PE alone, started idle, its beats offered back to back: the accept span
    # and the end of the issue (beats that the full queue holds back delay the
    # elements of every beat after them, which is what paced beats followed by
    # dropped ones cost).
    queue = np.zeros(count + 1, np.int64)
    head = tail = current = 0
    cycle = beat = last_accept = 0
    first_issue = -1
    issue_stop = 0
    while beat < beats or head < tail or current > 0:
        level = tail - head
        popped = level > 0 and current <= 1
        if current > 0:
            current -= 1
            if first_issue < 0:
                first_issue = cycle
            issue_stop = cycle + 1
        if popped:
            current = queue[head]
            head += 1
        if beat < beats and level < issue_lead:
            for element in range(beat * per_beat, min((beat + 1) * per_beat, count)):
                if cycles[element] > 0:
                    queue[tail] = cycles[element]
                    tail += 1
            last_accept = cycle
            beat += 1
        cycle += 1
    # From the first beat's accept, less the latency of the first element with a MAC
    # (accepted lead_beats cycles after the first beat).
    trailing_issue = issue_stop - (first_issue - lead_beats) if first_issue >= 0 else 0
    return (lead_beats, last_accept, tail_lag, pop_lag, head_lag, last_mac, tail_cycles,
            trailing_issue)
