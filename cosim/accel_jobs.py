"""Host side of the top-level co-simulation: runs of a layer -> job -> outputs and counters."""

from __future__ import annotations

from hw.top import COUNTERS, DESTINATIONS, ERROR_BITS, REGISTERS, STATUS_BITS

from . import runner

__all__ = ["make_entry", "run_accelerator", "accelerator_session", "AcceleratorSession",
           "job_constants"]


def make_entry(runs, *, label, patterns=None, seed=0):
    """One job entry: the :class:`gen.program.Run` s of a layer phase (or a part of one)."""
    return {
        "label": label,
        "patterns": patterns or {},
        "seed": seed,
        "runs": [{"registers": run.registers, "loads": run.loads, "expected": run.expected}
                 for run in runs],
    }


def job_constants(config):
    """What the bench needs besides the entries: register map, stream width, ..."""
    return {"registers": REGISTERS, "destinations": DESTINATIONS, "status_bits": STATUS_BITS,
            "error_bits": ERROR_BITS, "counters": COUNTERS, "stream_width": config.stream_width}


def run_accelerator(config, entries, *, simulator=None, name="accelerator", session=None):
    """Run job entries on the top level's Verilog; per entry, per run: outputs and counters.

    With a ``session`` (:func:`accelerator_session`) the entries go to its
    running simulator; else a simulator is started for them."""
    if session is not None:
        return session.run(entries)
    return runner.run(config, "cosim.test_accelerator",
                      {"entries": entries, **job_constants(config)}, block="accelerator",
                      simulator=simulator, name=name)


class AcceleratorSession(runner.Session):
    """A simulator of the top level that stays up for many :func:`run_accelerator` calls."""

    def __init__(self, config, *, simulator=None, name="session"):
        super().__init__(config, "cosim.test_accelerator_session", block="accelerator",
                         simulator=simulator, name=name, greeting=job_constants(config))


def accelerator_session(config, *, simulator=None, name="session"):
    """An :class:`AcceleratorSession` (a context manager)."""
    return AcceleratorSession(config, simulator=simulator, name=name)
