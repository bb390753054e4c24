"""What the cycle model knows of one run: the :class:`Trace`, and how a PE's element
queue paces the beats of one primitive (:func:`queue_timing`).

Both are filled by the compiler's schedule (:mod:`gen.compiler.schedule`) and read
by the cycle model (:mod:`gen.model.cycles`) and the energy model
(:mod:`gen.model.energy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["Trace", "queue_timing"]


@dataclass
class Trace:
    """One run (a program of row commands) as the cycle model sees it.

    ``B`` bundles in program order, ``P`` PEs:

    beats : int32 (B,)
        Operand beats of the bundle's streamed row (0: an empty command).
    row_last : bool (B,)
        The bundle closes its output rows.
    out_len : int32 (B,)
        Outputs of the rows it closes.
    takes : bool (B, P)
        The PE gets the primitive (it works in it, or it closes a row).
    works : bool (B, P)
        The PE gets the primitive with its beats (not as an empty task).
    issue : int32 (B, P)
        The PE's issue cycles: per streamed element ``ceil(MACs / lanes)``.
    last_issue : int32 (B, P)
        Issue cycles of the primitive's last streamed element (0: none, the
        row then needs an end marker when the primitive closes it).
    mac_elements : int32 (B, P)
        Streamed elements with a MAC for the PE (the others are dropped as
        they are accepted; only these wait in its element queue).
    lead_beats, accept_span, tail_lag, head_lag, last_mac : int32 (B, P)
        How the PE's accept stage takes the primitive's beats
        (:func:`queue_timing`): the beats before the first one with a MAC are
        dropped one per cycle (elements that meet only padding, say), and the
        element queue paces the rest once it fills.
    elements : int32 (B,)
        Streamed elements of the bundle.
    issued_macs : int
        MACs the PEs issue in the run (the RTL's ``issued_macs`` counter).
    entries : dict
        Entries the run loads into each buffer: ``program`` (commands),
        ``stationary``, ``mask``, ``operand`` (beats), and ``outputs`` per PE.
    """

    beats: np.ndarray
    row_last: np.ndarray
    out_len: np.ndarray
    takes: np.ndarray
    works: np.ndarray
    issue: np.ndarray
    last_issue: np.ndarray
    lead_beats: np.ndarray
    accept_span: np.ndarray
    tail_lag: np.ndarray
    head_lag: np.ndarray
    last_mac: np.ndarray
    mac_elements: np.ndarray = None
    elements: np.ndarray = None
    issued_macs: int = 0
    entries: dict = None

    @classmethod
    def empty(cls, bundles, pes):
        return cls(np.zeros(bundles, np.int32), np.zeros(bundles, np.bool_),
                   np.zeros(bundles, np.int32), np.zeros((bundles, pes), np.bool_),
                   np.zeros((bundles, pes), np.bool_), np.zeros((bundles, pes), np.int32),
                   np.zeros((bundles, pes), np.int32), np.zeros((bundles, pes), np.int32),
                   np.zeros((bundles, pes), np.int32), np.full((bundles, pes), -1, np.int32),
                   np.full((bundles, pes), -1, np.int32), np.zeros((bundles, pes), np.int32),
                   np.zeros((bundles, pes), np.int32), np.zeros(bundles, np.int32))

    @property
    def bundles(self):
        return len(self.beats)



@numba.njit(cache=True)
def queue_timing(cycles, per_beat, depth):
    """How a PE's element queue paces the accept of one primitive's beats.

    ``cycles`` are the issue cycles of each streamed element in stream order
    (0: no MAC, the element is dropped as it is accepted); ``per_beat``
    elements arrive per beat, one beat per cycle at most. As in
    ``hw/pe.py``: a beat is accepted while the queue holds at most
    ``depth - per_beat`` elements (a pop frees room from the next cycle),
    the issue stage takes the oldest element when it has none or issues its
    current element's last MAC, and a taken element issues from the next
    cycle.

    Returns ``(lead_beats, accept_span, tail_lag, head_lag, last_mac)``.
    ``lead_beats``: the beats before the first one with an element that has a
    MAC (dropped as they arrive, one per cycle). ``accept_span``: cycles from accepting the first beat to accepting the
    last when the PE starts idle. A beat can be accepted only once the issue
    stage has taken all but ``depth - per_beat`` of the elements before it,
    and the beats after it follow one per cycle: ``tail_lag`` is the latest
    of these bounds on the last beat that waits for one of this primitive's
    own elements, in cycles from the primitive's first issue (issue running
    without a gap), ``head_lag`` the latest that waits for the previous
    primitive's last element, in cycles from that element's issue (-1:
    none). ``last_mac``: the issue cycles of the last element with a MAC.
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
    tail_lag = head_lag = -1
    before = 0      # MAC elements in the beats before beat j
    for j in range(1, beats):
        for element in range((j - 1) * per_beat, j * per_beat):
            before += cycles[element] > 0
        waits_for = before - (depth - per_beat) - 1
        if waits_for >= 0:
            # Beat j waits for that element's issue; the beats after it follow
            # one per cycle.
            tail_lag = max(tail_lag, started[waits_for] + beats - 1 - j)
        elif waits_for == -1:
            # It waits for the issue of the previous primitive's last element.
            head_lag = max(head_lag, beats - 1 - j)
    last_mac = 0
    for element in range(count):
        if cycles[element] > 0:
            last_mac = cycles[element]
    queue = np.zeros(count + 1, np.int64)
    head = tail = current = 0
    cycle = beat = last_accept = 0
    while beat < beats:
        level = tail - head
        popped = level > 0 and current <= 1
        if current > 0:
            current -= 1
        if popped:
            current = queue[head]
            head += 1
        if level <= depth - per_beat:
            for element in range(beat * per_beat, min((beat + 1) * per_beat, count)):
                if cycles[element] > 0:
                    queue[tail] = cycles[element]
                    tail += 1
            last_accept = cycle
            beat += 1
        cycle += 1
    return lead_beats, last_accept, tail_lag, head_lag, last_mac
