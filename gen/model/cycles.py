"""Cycle model of the accelerator: the RTL's compute cycles, predicted from the program.

The model follows the top level's pipeline one row primitive (one array
bundle) at a time instead of one clock at a time; what it needs of a
primitive is summarized in a :class:`~gen.model.trace.Trace` of the run:

- the controller offers one bundle per cycle, and queues the operand range
  of every non-empty one in a FIFO of :data:`hw.controller.OPERAND_RANGES`
  entries, which the operand sequencer streams one beat per cycle;
- the array accepts a bundle when every PE that takes it has room in its
  task queue (``array_queue_depth``); its beats follow through the routing
  queue two cycles later at the earliest, each when every PE that takes it
  has room in its beat queue (``array_queue_depth`` beats);
- a PE takes its next task when the current one's last beat is accepted,
  accepts one beat per cycle while its element queue (``queue_depth``
  elements) has room for a beat: once the element
  :func:`hw.pe.issue_lead` places before the beat's first has started to
  issue (the model keeps the issue of each PE's recent primitives, their
  elements with a MAC back to back up to each one's end), and issues each
  element's MACs, ``lanes`` per cycle, two cycles after accepting it; an
  output row that ends without a MAC on its last element costs an end
  marker (an empty task's waits for room in the queue as a beat does); a
  new row waits for its psum bank, which a drain of ``out_len`` outputs
  frees, one drain after the other.
- a PE takes an entry that loads a scratchpad line once the last primitive
  that read the line has issued; a load bundle without a primitive costs the
  PEs that load an accept cycle.

Every latency is the RTL's own, exported by the block that fixes it
(:data:`hw.controller.FIRST_BUNDLE`, :data:`hw.controller.OPERAND_LATENCY`,
:data:`hw.array.QUEUE_LATENCY`, :data:`hw.pe.TASK_LATENCY`,
:data:`hw.pe.LATENCY`, :func:`hw.pe.issue_lead`, :data:`hw.pe.DRAIN_LATENCY`,
:data:`hw.top.RUN_END`), and the model is checked by the co-simulation
regression, where
the model's cycles must be within :data:`TOLERANCE` of the RTL's
(:func:`within_tolerance`; ``make cosim``, ``make cosim-random``,
``tests/test_cosim_accelerator.py``).

The simulation itself is a loop over bundles and PEs compiled with numba.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numba
import numpy as np

from hw.array import QUEUE_LATENCY
from hw.controller import FIRST_BUNDLE, OPERAND_LATENCY, OPERAND_RANGES
from hw.pe import DRAIN_LATENCY, LATENCY, STARTUP_CYCLES, TASK_LATENCY, issue_lead
from hw.top import RUN_END

__all__ = ["simulate", "RunCycles", "predict", "TOLERANCE", "TOLERANCE_CYCLES",
           "within_tolerance"]

# The model's cycles agree with the RTL's within this fraction per layer,
# or within TOLERANCE_CYCLES, whichever is larger: on a layer phase of a few
# dozen cycles (a tiny random layer) one cycle is several percent.
TOLERANCE = 0.01
TOLERANCE_CYCLES = 2


def within_tolerance(model_cycles, rtl_cycles):
    """Whether the model's ``model_cycles`` are within :data:`TOLERANCE` (or
    :data:`TOLERANCE_CYCLES`) of the RTL's ``rtl_cycles``."""
    return abs(model_cycles - rtl_cycles) <= max(TOLERANCE * rtl_cycles, TOLERANCE_CYCLES)


@dataclass(frozen=True)
class RunCycles:
    """What the model predicts for a run: compute cycles and busy cycles (some PE issues)."""

    cycles: int
    busy_cycles: int


def simulate(config, trace):
    """Predict the compute cycles of one run: a :class:`RunCycles`."""
    if trace.bundles == 0:
        return RunCycles(0, 0)
    cycles, busy = _simulate(trace.beats, trace.row_last, trace.out_len, trace.takes,
                             trace.works, trace.issue, trace.last_issue, trace.lead_beats,
                             trace.accept_span, trace.tail_lag, trace.pop_lag, trace.head_lag,
                             trace.last_mac, trace.tail_cycles, trace.trailing_issue,
                             trace.mac_elements,
                             trace.load_line, trace.row_first, trace.row_count,
                             trace.elements, config.elements_per_beat,
                             config.array_queue_depth, config.psum_banks, OPERAND_RANGES,
                             issue_lead(config), config.scratchpad_lines)
    return RunCycles(int(cycles), int(busy))


def predict(config, traces, *, progress=False):
    """Model counters of a program: ``cycles``, ``busy_cycles``, ``stall_cycles``,
    ``issued_macs``, summed over the :class:`~gen.model.trace.Trace` s of its runs
    (:meth:`gen.compiler.schedule.Schedule.traces`; without ``progress``, any iterable
    of them, :meth:`~gen.compiler.schedule.Schedule.each_trace`), as the top level
    counts them in its compute state."""
    totals = dict(cycles=0, busy_cycles=0, issued_macs=0)
    started = time.perf_counter()
    for number, trace in enumerate(traces, 1):
        predicted = simulate(config, trace)
        totals["cycles"] += predicted.cycles
        totals["busy_cycles"] += predicted.busy_cycles
        totals["issued_macs"] += trace.issued_macs
        if progress and (number % 16 == 0 or number == len(traces)):
            print(f"  {number}/{len(traces)} runs, {totals['cycles']} cycles "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    totals["stall_cycles"] = totals["cycles"] - totals["busy_cycles"]
    return totals


# Fields of a PE's ring of recent primitives (cycle model): per primitive with a MAC,
# its elements with a MAC, issue cycles, the last element's, the last lead_elements
# elements' (``Trace.tail_cycles``), and the end of its issue.
_ELEMENTS, _ISSUE, _LAST, _TAIL, _STOP = range(5)


@numba.njit(cache=True)
def _element_start(ring, count, need, free):
    """The cycle the ``need``-th last element in flight of a PE starts to issue, from the
    ``ring`` of its recent primitives (``count`` so far): each primitive's elements issue
    back to back up to its end, its last ones as its tail says (evenly between its
    last element's cycles and the tail's), the others in their mean; ``free`` (the
    issue stage's next free cycle) less one cycle per element the ring does not hold."""
    size = ring.shape[1]
    left = need
    for back in range(min(count, size)):
        slot = (count - 1 - back) % size
        elements, issue, last, tail, stop = ring[:, slot]
        if left <= elements:
            held = min(elements, size)
            if left <= held:
                cycles = last + (tail - last) * (left - 1) / max(1, held - 1)
            else:
                cycles = tail + (left - held) * (issue - tail) / max(1, elements - held)
            return stop - int(round(cycles))
        left -= elements
        free = stop - issue
    return free - left


@numba.njit(cache=True)
def _marker(ring, count, stop):
    """Add a row's end marker to a PE's ring of recent primitives (``count`` so far): an
    element of one issue cycle in the element queue, issued up to ``stop``. Returns the
    new count."""
    slot = count % ring.shape[1]
    ring[_ELEMENTS, slot] = ring[_ISSUE, slot] = ring[_LAST, slot] = ring[_TAIL, slot] = 1
    ring[_STOP, slot] = stop
    return count + 1


@numba.njit(cache=True)
def _simulate(beats, row_last, out_len, takes, works, issue, last_issue, lead_beats,
              span, tail_lag, pop_lag, head_lag, last_mac, tail_cycles, trailing_issue,
              mac_elements,
              load_line, row_first, row_count, elements, per_beat, queue_depth, banks,
              ranges, lead_elements, lines):
    bundles, pes = takes.shape
    # Per PE and scratchpad line: the end of the issue of the last primitive that read
    # it (a load into it waits for that).
    line_free = np.zeros((pes, lines), np.int64)
    # Per PE: take times of its last queue_depth tasks (a ring), the cycle its
    # current task is done (last beat accepted), its issue stage's next free
    # cycle, its psum banks' free cycles, the bank of its open row, and its
    # drain engine's next free cycle.
    taken = np.zeros((pes, queue_depth), np.int64)
    tasks = np.zeros(pes, np.int64)
    # Per PE: the cycles its last queue_depth beats left its beat queue (a ring).
    beat_read = np.zeros((pes, queue_depth), np.int64)
    beats_in = np.zeros(pes, np.int64)
    done = np.zeros(pes, np.int64)
    issue_free = np.zeros(pes, np.int64)
    # Per PE: the cycle the last element with a MAC of its previous primitive issued.
    tail_issue = np.full(pes, -1, np.int64)
    # Per PE, its last lead_elements primitives with a MAC and rows' end markers (a
    # ring, fields _ELEMENTS ...; elements without a MAC are dropped, never queued): the
    # accept stage takes a beat once the lead_elements-th last element in flight starts
    # to issue.
    ring = np.zeros((pes, 5, lead_elements), np.int64)
    recent = np.zeros(pes, np.int64)
    bank_free = np.zeros((pes, banks), np.int64)
    bank = np.zeros(pes, np.int64)
    row_open = np.zeros(pes, np.bool_)
    drain_free = np.zeros(pes, np.int64)
    # First beat of the last `ranges` non-empty bundles (the operand range FIFO).
    range_start = np.zeros(ranges, np.int64)
    ranged = 0
    # Last beat of the last queue_depth non-empty bundles (the array's routing queue,
    # which holds which PEs take each bundle's beats until its last beat goes out).
    routed_end = np.zeros(queue_depth, np.int64)
    # The cycle each beat of the current bundle goes out.
    sent = np.zeros(beats.max() + 1 if bundles else 1, np.int64)
    # Per beat of the current primitive that waits on earlier primitives' elements
    # for room in the element queue, the cycle it has room.
    early_room = np.zeros(beats.max() + 1 if bundles else 1, np.int64)
    # Issue intervals, for the busy cycles.
    starts = np.zeros(bundles * pes, np.int64)
    lengths = np.zeros(bundles * pes, np.int64)
    intervals = 0

    offered = FIRST_BUNDLE - 1
    beat_free = 0
    end = 0
    for b in range(bundles):
        accept = offered + 1
        for p in range(pes):
            if takes[b, p] and tasks[p] >= queue_depth:
                accept = max(accept, taken[p, tasks[p] % queue_depth] + 1)
        if beats[b] and ranged >= ranges:
            accept = max(accept, range_start[ranged % ranges])
        if beats[b] and ranged >= queue_depth:
            accept = max(accept, routed_end[ranged % queue_depth] + 1)
        offered = accept
        first_beat = last_beat = 0
        if beats[b]:
            # Beats go out one per cycle, each when every PE that takes it has room in
            # its beat queue (the PE has read the beat queue_depth before it); a beat
            # that waits holds back those after it.
            cycle = max(accept + OPERAND_LATENCY, beat_free)
            for j in range(beats[b]):
                for p in range(pes):
                    if not works[b, p]:
                        continue
                    if j >= queue_depth:
                        # A beat of this bundle: read once it is in (an estimate).
                        cycle = max(cycle, sent[j - queue_depth] + QUEUE_LATENCY + 1)
                    elif beats_in[p] + j >= queue_depth:
                        earlier = beats_in[p] + j - queue_depth
                        cycle = max(cycle, beat_read[p, earlier % queue_depth] + 1)
                sent[j] = cycle
                cycle += 1
            first_beat, last_beat = sent[0], sent[beats[b] - 1]
            range_start[ranged % ranges] = first_beat
            routed_end[ranged % queue_depth] = last_beat
            ranged += 1
            beat_free = last_beat + 1
            # The run lasts until its last beat is out, whether a PE takes it or not.
            end = max(end, beat_free)
        for p in range(pes):
            if not takes[b, p]:
                continue
            take = max(accept + QUEUE_LATENCY, done[p])
            if load_line[b, p] >= 0:
                # The PE writes the entry's line as it takes it, once no element in
                # flight reads the line.
                take = max(take, line_free[p, load_line[b, p]])
            taken[p, tasks[p] % queue_depth] = take
            tasks[p] += 1
            finish = -1
            if works[b, p]:
                # Beats before the first with a MAC push nothing, so they may start up
                # to lead_beats cycles before the room the others need (an estimate:
                # in the RTL they need room too, but counting that made the model
                # worse on random WG layers, whose errors it offsets).
                # Beat j has room in the element queue once the lead_elements-th last
                # element pushed before it starts to issue: while fewer than
                # lead_elements of this primitive's are ahead of it (its elements with
                # a MAC spread evenly over its beats), one of earlier primitives'.
                early_room[0] = _element_start(ring[p], recent[p], lead_elements,
                                               issue_free[p])
                early = 1      # the beats that wait so
                for j in range(1, beats[b]):
                    own = j * per_beat * mac_elements[b, p] // max(1, elements[b])
                    if own >= lead_elements:
                        break
                    early_room[j] = _element_start(ring[p], recent[p], lead_elements - own,
                                                   issue_free[p])
                    early = j + 1
                # Cycles by which the accept stage may run ahead of the issue stage.
                ahead = issue_free[p] - early_room[0]
                first = max(take + TASK_LATENCY, first_beat + QUEUE_LATENCY,
                            issue_free[p] - ahead - lead_beats[b, p])
                last = max(first + max(beats[b] - 1, span[b, p]), last_beat + QUEUE_LATENCY)
                # A later beat waits for that room too; the beats after it follow.
                for j in range(1, early):
                    last = max(last, early_room[j] + beats[b] - 1 - j)
                start = 0
                if issue[b, p]:
                    start = max(first + lead_beats[b, p] + LATENCY, issue_free[p])
                    if pop_lag[b, p] >= 0:
                        # The last beat waits for the first element to leave the queue,
                        # which it does while it waits for a psum bank.
                        last = max(last, start + pop_lag[b, p])
                    if not row_open[p]:
                        start = max(start, bank_free[p, bank[p]])
                        row_open[p] = True
                    if tail_lag[b, p] >= 0:
                        # The last beat waits for room that the issue of this
                        # primitive's own elements frees.
                        last = max(last, start + tail_lag[b, p])
                if head_lag[b, p] >= 0 and tail_issue[p] >= 0:
                    # ... or the previous primitive's last element.
                    last = max(last, tail_issue[p] + head_lag[b, p])
                done[p] = last
                # The PE reads its beats one per cycle, but no further ahead of its
                # issue stage than its element queue allows (MACs spread evenly).
                lead = max(first + LATENCY, issue_free[p]) - ahead
                # The beats after a beat follow one per cycle at most: it is read no
                # later than the last one, less one cycle for each of them.
                # Beat j waits for room in the element queue (early_room above, or
                # the start of this primitive's element lead_elements before it, its
                # elements issuing back to back from its start).
                own_cycles = (issue[b, p] - last_mac[b, p]) / max(1, mac_elements[b, p] - 1)
                own_start = max(first + LATENCY, issue_free[p])
                arrived = 0
                for j in range(beats[b]):
                    if j < early:
                        room = early_room[j]
                    else:
                        own = j * per_beat * mac_elements[b, p] // max(1, elements[b])
                        room = own_start + int(round((own - lead_elements) * own_cycles))
                    read = max(first + j, sent[j] + QUEUE_LATENCY,
                               min(room, last - (beats[b] - 1 - j)))
                    beat_read[p, (beats_in[p] + j) % queue_depth] = read
                    # The elements of beats j on issue after beat j is read (their
                    # issue spread evenly over the beats).
                    arrived = max(arrived, read + LATENCY
                                  + issue[b, p] * (beats[b] - j) // max(1, beats[b]))
                beats_in[p] += beats[b]
                if issue[b, p]:
                    stop = start + issue[b, p]
                    # No element issues before its beat is in.
                    stop = max(stop, first + LATENCY + trailing_issue[b, p], arrived)
                    if last_issue[b, p]:
                        stop = max(stop, last + LATENCY + last_issue[b, p])
                    starts[intervals] = start
                    lengths[intervals] = issue[b, p]
                    intervals += 1
                    issue_free[p] = stop
                    for line in range(row_first[b, p], row_first[b, p] + row_count[b]):
                        line_free[p, line] = stop
                    tail_issue[p] = stop - last_mac[b, p]
                    slot = recent[p] % lead_elements
                    ring[p, _ELEMENTS, slot] = max(1, mac_elements[b, p])
                    ring[p, _ISSUE, slot] = issue[b, p]
                    ring[p, _LAST, slot] = max(1, last_mac[b, p])
                    ring[p, _TAIL, slot] = tail_cycles[b, p]
                    ring[p, _STOP, slot] = stop
                    recent[p] += 1
                    finish = stop - 1
                    if row_last[b] and not last_issue[b, p]:
                        finish = max(last + LATENCY, issue_free[p])   # end marker
                        issue_free[p] = finish + 1
                        recent[p] = _marker(ring[p], recent[p], finish + 1)
                elif row_last[b]:
                    finish = max(last + LATENCY, issue_free[p])
                    if not row_open[p]:
                        finish = max(finish, bank_free[p, bank[p]])
                    issue_free[p] = finish + 1
                    recent[p] = _marker(ring[p], recent[p], finish + 1)
            else:
                done[p] = take + TASK_LATENCY
                if row_last[b]:
                    # An empty task: its end marker, one issue cycle, pushed into the
                    # element queue (the task is done) once the queue has room, as a beat.
                    done[p] = max(done[p], _element_start(ring[p], recent[p], lead_elements,
                                                          issue_free[p]))
                    finish = max(take + STARTUP_CYCLES, issue_free[p])
                    if not row_open[p]:
                        finish = max(finish, bank_free[p, bank[p]])
                    issue_free[p] = finish + 1
                    recent[p] = _marker(ring[p], recent[p], finish + 1)
            if row_last[b]:
                drain = max(finish + DRAIN_LATENCY, drain_free[p])
                bank_free[p, bank[p]] = drain + out_len[b]
                drain_free[p] = drain + out_len[b] + 1
                bank[p] = (bank[p] + 1) % banks
                row_open[p] = False
                end = max(end, drain + out_len[b])
    cycles = end + RUN_END
    # Busy: cycles in which some PE issues (each primitive's issue taken as
    # one interval from its start).
    covered = np.zeros(cycles + 1, np.int64)
    for i in range(intervals):
        covered[min(starts[i], cycles)] += 1
        covered[min(starts[i] + lengths[i], cycles)] -= 1
    busy = 0
    level = 0
    for t in range(cycles):
        level += covered[t]
        if level > 0:
            busy += 1
    return cycles, busy
