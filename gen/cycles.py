"""Cycle model of the accelerator: the RTL's compute cycles, predicted from the program.

The model follows the top level's pipeline one row primitive (one array
bundle) at a time instead of one clock at a time; what it needs of a
primitive is summarized in a :class:`Trace` of the run:

- the controller offers one bundle per cycle, and queues the operand range
  of every non-empty one in a FIFO of :data:`hw.controller.OPERAND_RANGES`
  entries, which the operand sequencer streams one beat per cycle;
- the array accepts a bundle when every PE that takes it has room in its
  task queue (``array_queue_depth``); its beats follow through the routing
  queue two cycles later at the earliest, each when every PE that takes it
  has room in its beat queue (``array_queue_depth`` beats);
- a PE takes its next task when the current one's last beat is accepted,
  accepts one beat per cycle (up to a few elements ahead of its issue
  stage, whose queue holds ``queue_depth`` elements), and issues each
  element's MACs, ``lanes`` per cycle, two cycles after accepting it; an
  output row that ends without a MAC on its last element costs an end
  marker; a new row waits for its psum bank, which a drain of ``out_len``
  outputs frees, one drain after the other.

The constants (two cycles of FIFO latency, the accept stage running up to
:data:`ISSUE_LEAD` cycles ahead of the issue stage, the end of a run) follow
the RTL in ``hw/`` and are checked by the co-simulation regression, where
the model's cycles must be within :data:`TOLERANCE` of the RTL's
(:func:`within_tolerance`; ``make cosim``, ``make cosim-random``,
``tests/test_cosim_accelerator.py``).

The simulation itself is a loop over bundles and PEs compiled with numba.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numba
import numpy as np

from hw.controller import OPERAND_RANGES
from pruning import golden

from .layer import check_layer, compile_layer, count_macs, layer_stats

__all__ = ["Trace", "trace_run", "simulate", "queue_timing", "RunCycles", "predict_runs",
           "estimate_layer", "TOLERANCE", "TOLERANCE_CYCLES", "within_tolerance", "ISSUE_LEAD"]

# The model's cycles agree with the RTL's within this fraction per layer,
# or within TOLERANCE_CYCLES, whichever is larger: on a layer phase of a few
# dozen cycles (a tiny random layer) one cycle is several percent.
TOLERANCE = 0.02
TOLERANCE_CYCLES = 2


def within_tolerance(model_cycles, rtl_cycles):
    """Whether the model's ``model_cycles`` are within :data:`TOLERANCE` (or
    :data:`TOLERANCE_CYCLES`) of the RTL's ``rtl_cycles``."""
    return abs(model_cycles - rtl_cycles) <= max(TOLERANCE * rtl_cycles, TOLERANCE_CYCLES)


# Cycles by which a PE's accept stage may run ahead of its issue stage: the
# element queue takes a beat only while it holds at most
# ``queue_depth - elements_per_beat`` elements.
ISSUE_LEAD = 3
# Cycles from a FIFO write to its output (amaranth.lib.fifo.SyncFIFOBuffered).
_FIFO_LATENCY = 2
# The first bundle reaches the array this many cycles after START: the
# controller's program read, command register and bundle register.
_FIRST_BUNDLE = 3
# Cycles from the issue of a row's last MAC to its first output: the MAC
# pipeline, the row-end register and the drain's start.
_DRAIN_START = 3
# Cycles from the last output of a run to the end of the compute state.
_RUN_END = 1


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
                   np.zeros(bundles, np.int32))

    @property
    def bundles(self):
        return len(self.beats)


def trace_run(config, run):
    """The :class:`Trace` of a :class:`gen.program.Run`."""
    pes, lanes = config.pes, config.lanes
    bundles = sum(len(rows[0].tasks) for _, _, rows in run.groups)
    trace = Trace.empty(bundles, pes)
    trace.entries = dict(run.entries)
    number = 0
    for keys, _, rows in run.groups:
        for position, tasks in enumerate(zip(*(row.tasks for row in rows))):
            first = tasks[0]
            trace.beats[number] = first.beats(config.elements_per_beat)
            trace.elements[number] = len(first.elements)
            trace.row_last[number] = first.row_last
            trace.out_len[number] = rows[0].out_len
            for unit, (key, task) in enumerate(zip(keys, tasks)):
                # The array's decision (hw/array.py): present, and in sparse
                # mode a stationary row and (BP) a mask row with a nonzero.
                works = key is not None and task.present and \
                    (task.dense or not task.idle or not config.skipping)
                trace.takes[number, unit] = works or first.row_last
                if works and not first.empty:
                    issued = rows[unit].issued_per_task[position]
                    cycles = [math.ceil(n / lanes) for n in issued]
                    trace.issued_macs += sum(issued)
                    trace.works[number, unit] = True
                    trace.issue[number, unit] = sum(cycles)
                    trace.last_issue[number, unit] = cycles[-1]
                    (trace.lead_beats[number, unit], trace.accept_span[number, unit],
                     trace.tail_lag[number, unit], trace.head_lag[number, unit],
                     trace.last_mac[number, unit]) = queue_timing(
                        np.array(cycles, np.int64), config.elements_per_beat, config.queue_depth)
            number += 1
    return trace


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
                             trace.accept_span, trace.tail_lag, trace.head_lag,
                             trace.last_mac, config.array_queue_depth, config.psum_banks,
                             OPERAND_RANGES)
    return RunCycles(int(cycles), int(busy))


def predict_runs(config, runs, *, progress=False):
    """Model counters of a program: ``cycles``, ``busy_cycles``, ``stall_cycles``,
    ``issued_macs``, summed over ``runs`` (:class:`gen.program.Run` s), as the top level
    counts them in its compute state."""
    totals = dict(cycles=0, busy_cycles=0, issued_macs=0)
    started = time.perf_counter()
    for number, run in enumerate(runs, 1):
        trace = trace_run(config, run)
        predicted = simulate(config, trace)
        totals["cycles"] += predicted.cycles
        totals["busy_cycles"] += predicted.busy_cycles
        totals["issued_macs"] += trace.issued_macs
        if progress and (number % 16 == 0 or number == len(runs)):
            print(f"  {number}/{len(runs)} runs, {totals['cycles']} cycles "
                  f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    totals["stall_cycles"] = totals["cycles"] - totals["busy_cycles"]
    return totals


def estimate_layer(config, phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
                   kernel=None, dense=False, capacity=None, progress=False, return_runs=False):
    """Predict what :func:`cosim.layer.run_layer` measures on the top level; returns stats.

    Takes the same operands and geometry, checked the same way
    (:func:`gen.layer.check_layer`), compiles the same program
    (:func:`gen.layer.compile_layer`) and returns the same statistics
    (:data:`gen.layer.STATS_KEYS`, ``runs``, ``load_beats``,
    ``output_beats``), with the counters predicted by the cycle model
    instead of counted by the RTL; ``backend`` is ``"model"``. The MAC
    counts are exact. ``saturated`` is set when an exact result lies outside
    the ``acc_width`` range (the RTL's sticky flag may also catch an
    intermediate partial sum that a later product brings back). With
    ``return_runs``, returns ``(stats, runs)``: the compiled program too.
    """
    spec = check_layer(config, phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                       kernel=kernel)
    if progress:
        print(f"  compiling the {phase} program...", file=sys.stderr, flush=True)
    _, runs = compile_layer(config, spec, dense=dense, capacity=capacity)
    totals = predict_runs(config, runs, progress=progress)
    totals["dense_macs"], totals["effectual_macs"] = count_macs(spec)
    result = golden.conv_phase(spec.phase, x=spec.x, w=spec.w, dy=spec.dy, mask=spec.mask,
                               stride=spec.stride, pad=spec.pad, input_hw=spec.input_hw,
                               kernel_hw=spec.kernel_hw)
    totals["saturated"] = int(result.size > 0 and (result.min() < config.acc_min
                                                  or result.max() > config.acc_max))
    totals.update(runs=len(runs), load_beats=sum(run.load_beats for run in runs),
                  output_beats=sum(run.outputs_per_pe for run in runs) * config.pes)
    stats = layer_stats(config, spec, totals, pes=config.pes, dense=dense, backend="model")
    return (stats, runs) if return_runs else stats


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


@numba.njit(cache=True)
def _simulate(beats, row_last, out_len, takes, works, issue, last_issue, lead_beats,
              span, tail_lag, head_lag, last_mac, queue_depth, banks, ranges):
    bundles, pes = takes.shape
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
    bank_free = np.zeros((pes, banks), np.int64)
    bank = np.zeros(pes, np.int64)
    row_open = np.zeros(pes, np.bool_)
    drain_free = np.zeros(pes, np.int64)
    # First beat of the last `ranges` non-empty bundles (the operand range FIFO).
    range_start = np.zeros(ranges, np.int64)
    ranged = 0
    # Issue intervals, for the busy cycles.
    starts = np.zeros(bundles * pes, np.int64)
    lengths = np.zeros(bundles * pes, np.int64)
    intervals = 0

    offered = _FIRST_BUNDLE - 1
    beat_free = 0
    end = 0
    for b in range(bundles):
        accept = offered + 1
        for p in range(pes):
            if takes[b, p] and tasks[p] >= queue_depth:
                accept = max(accept, taken[p, tasks[p] % queue_depth] + 1)
        if beats[b] and ranged >= ranges:
            accept = max(accept, range_start[ranged % ranges])
        offered = accept
        first_beat = 0
        if beats[b]:
            first_beat = max(accept + _FIFO_LATENCY, beat_free)
            # Beat j goes out when every PE that takes it has room in its beat queue:
            # the PE has read the beat queue_depth before it.
            for p in range(pes):
                if works[b, p]:
                    for j in range(beats[b]):
                        earlier = beats_in[p] + j - queue_depth
                        if earlier >= 0:
                            first_beat = max(first_beat,
                                             beat_read[p, earlier % queue_depth] + 1 - j)
            range_start[ranged % ranges] = first_beat
            ranged += 1
            beat_free = first_beat + beats[b]
        for p in range(pes):
            if not takes[b, p]:
                continue
            take = max(accept + _FIFO_LATENCY, done[p])
            taken[p, tasks[p] % queue_depth] = take
            tasks[p] += 1
            finish = -1
            if works[b, p]:
                # Beats before the first with a MAC are dropped as they arrive: only
                # the queue's room for the others waits for the issue stage.
                first = max(take + 1, first_beat + _FIFO_LATENCY,
                            issue_free[p] - ISSUE_LEAD - lead_beats[b, p])
                last = first + max(beats[b] - 1, span[b, p])
                start = 0
                if issue[b, p]:
                    start = max(first + lead_beats[b, p] + _FIFO_LATENCY, issue_free[p])
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
                lead = max(first + _FIFO_LATENCY, issue_free[p]) - ISSUE_LEAD
                for j in range(beats[b]):
                    beat_read[p, (beats_in[p] + j) % queue_depth] = max(
                        first + j, lead + issue[b, p] * j // beats[b])
                beats_in[p] += beats[b]
                if issue[b, p]:
                    stop = start + issue[b, p]
                    if last_issue[b, p]:
                        stop = max(stop, last + _FIFO_LATENCY + last_issue[b, p])
                    starts[intervals] = start
                    lengths[intervals] = issue[b, p]
                    intervals += 1
                    issue_free[p] = stop
                    tail_issue[p] = stop - last_mac[b, p]
                    finish = stop - 1
                    if row_last[b] and not last_issue[b, p]:
                        finish = max(last + _FIFO_LATENCY, issue_free[p])   # end marker
                        issue_free[p] = finish + 1
                elif row_last[b]:
                    finish = max(last + _FIFO_LATENCY, issue_free[p])
                    if not row_open[p]:
                        finish = max(finish, bank_free[p, bank[p]])
                    issue_free[p] = finish + 1
            else:
                done[p] = take + 1
                if row_last[b]:
                    # An empty task: its end marker, one issue cycle.
                    finish = max(take + 1 + _FIFO_LATENCY, issue_free[p])
                    if not row_open[p]:
                        finish = max(finish, bank_free[p, bank[p]])
                    issue_free[p] = finish + 1
            if row_last[b]:
                drain = max(finish + _DRAIN_START, drain_free[p])
                bank_free[p, bank[p]] = drain + out_len[b]
                drain_free[p] = drain + out_len[b] + 1
                bank[p] = (bank[p] + 1) % banks
                row_open[p] = False
                end = max(end, drain + out_len[b])
    cycles = end + _RUN_END
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
