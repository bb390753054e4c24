"""Host side of the top-level co-simulation: runs of a layer -> job -> outputs and counters."""

from __future__ import annotations

from hw.top import COUNTERS, DESTINATIONS, ERROR_BITS, REGISTERS, STATUS_BITS

from . import runner

__all__ = ["make_entry", "timeout_cycles", "run_accelerator", "accelerator_session",
           "AcceleratorSession", "job_constants"]


def timeout_cycles(config, run):
    """Cycles within which any correct design has been loaded with a run, has run it
    and has streamed its outputs out, however the AXI streams pause: every
    element's MACs one at a time, every bundle's beats, row ends and drains,
    every load and output beat and register access paused 20 times; twice
    over."""
    work = sum(elements * config.max_kernel + beats + 2 * config.max_row + 8
               for elements, beats in zip(run.elements, run.beats))
    transfers = run.load_beats + run.outputs_per_pe * config.pes + 64
    return 2 * (work + 20 * transfers) + 1000


def make_entry(config, runs, *, label, patterns=None, seed=0):
    """One job entry: the :class:`gen.compiler.program.Run` s of a layer phase (or a part
    of one)."""
    return {
        "label": label,
        "patterns": patterns or {},
        "seed": seed,
        "runs": [{"registers": run.registers, "loads": run.loads,
                  "outputs_per_pe": run.outputs_per_pe,
                  "timeout_cycles": timeout_cycles(config, run)}
                 for run in runs],
    }


def job_constants(config):
    """What the bench needs besides the entries: register map, stream width, ..."""
    return {"registers": REGISTERS, "destinations": DESTINATIONS, "status_bits": STATUS_BITS,
            "error_bits": ERROR_BITS, "counters": COUNTERS, "stream_width": config.stream_width,
            "pes": config.pes}


def run_accelerator(config, entries, *, simulator=None, name="accelerator", session=None,
                    waves=None):
    """Run job entries on the top level's Verilog; per entry, per run: outputs and counters.

    With a ``session`` (:func:`accelerator_session`) the entries go to its
    running simulator; else a simulator is started for them (``waves``: the
    path of its FST waveform)."""
    if session is not None:
        return session.run(entries)
    return runner.run(config, "cosim.bench_accelerator",
                      {"entries": entries, **job_constants(config)}, block="accelerator",
                      simulator=simulator, name=name, waves=waves)


class AcceleratorSession(runner.Session):
    """A simulator of the top level that stays up for many :func:`run_accelerator` calls;
    ``waves``: the path of an FST waveform of everything it runs."""

    def __init__(self, config, *, simulator=None, name="session", waves=None):
        super().__init__(config, "cosim.bench_session", block="accelerator",
                         simulator=simulator, name=name, greeting=job_constants(config),
                         waves=waves)


def accelerator_session(config, *, simulator=None, name="session", waves=None):
    """An :class:`AcceleratorSession` (a context manager)."""
    return AcceleratorSession(config, simulator=simulator, name=name, waves=waves)
