"""What the cycle model knows of one run: the :class:`Trace`.

It is filled by the compiler's schedule (:mod:`gen.compiler.schedule`; how a PE's
element queue paces the beats of a primitive is
:func:`gen.compiler.work.queue_timing`) and read by the cycle model
(:mod:`gen.model.cycles`) and the energy model (:mod:`gen.model.energy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Trace", "TIMING", "TIMING_NONE"]

# Per bundle and PE timing columns of a trace (int32) and the value meaning "none".
TIMING = {"issue": 0, "last_issue": 0, "lead_beats": 0, "accept_span": 0, "tail_lag": -1,
          "pop_lag": -1, "head_lag": -1, "last_mac": 0, "tail_cycles": 0,
          "trailing_issue": 0,
          "mac_elements": 0}
#: The "none" values of :data:`TIMING`, in its order.
TIMING_NONE = np.array(list(TIMING.values()), np.int32)


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
    tail_cycles : int32 (B, P)
        Issue cycles of the primitive's last ``queue_depth - elements_per_beat + 1``
        elements with a MAC (all of them, when fewer).
    trailing_issue : int32 (B, P)
        The earliest end of the primitive's issue in cycles after its first beat
        is accepted, less ``hw.pe.LATENCY``: the PE alone, started idle and
        offered the beats back to back (beats that its element queue holds
        back delay every later beat, and with them elements that the issue
        stage would otherwise reach sooner; 0: no MAC).
    mac_elements : int32 (B, P)
        Streamed elements with a MAC for the PE (the others are dropped as
        they are accepted; only these wait in its element queue).
    lead_beats, accept_span, tail_lag, pop_lag, head_lag, last_mac : int32 (B, P)
        How the PE's accept stage takes the primitive's beats
        (:func:`gen.compiler.work.queue_timing`): the beats before the first one with a MAC are
        dropped one per cycle (elements that meet only padding, say), and the
        element queue paces the rest once it fills.
    elements : int32 (B,)
        Streamed elements of the bundle.
    load_line : int32 (B, P)
        A load bundle: the scratchpad line the PE writes (-1: none, or a primitive).
    row_first : int32 (B, P)
        A primitive: the scratchpad line the PE's stationary row starts at (-1: it
        reads none).
    row_count : int32 (B,)
        A primitive: the lines of its stationary rows (0: none).
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
    pop_lag: np.ndarray
    head_lag: np.ndarray
    last_mac: np.ndarray
    tail_cycles: np.ndarray = None
    trailing_issue: np.ndarray = None
    mac_elements: np.ndarray = None
    elements: np.ndarray = None
    load_line: np.ndarray = None
    row_first: np.ndarray = None
    row_count: np.ndarray = None
    issued_macs: int = 0
    entries: dict = None

    @classmethod
    def empty(cls, bundles, pes):
        return cls(beats=np.zeros(bundles, np.int32), row_last=np.zeros(bundles, np.bool_),
                   out_len=np.zeros(bundles, np.int32),
                   takes=np.zeros((bundles, pes), np.bool_),
                   works=np.zeros((bundles, pes), np.bool_),
                   **{name: np.full((bundles, pes), none, np.int32)
                      for name, none in TIMING.items()},
                   elements=np.zeros(bundles, np.int32),
                   load_line=np.full((bundles, pes), -1, np.int32),
                   row_first=np.full((bundles, pes), -1, np.int32),
                   row_count=np.zeros(bundles, np.int32))

    @property
    def bundles(self):
        return len(self.beats)
