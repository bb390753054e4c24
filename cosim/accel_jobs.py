"""Host side of the top-level co-simulation: runs of a layer -> job -> outputs and counters."""

from __future__ import annotations

from hw.top import COUNTERS, DESTINATIONS, ERROR_BITS, REGISTERS, STATUS_BITS

from . import runner

__all__ = ["make_entry", "run_accelerator"]


def make_entry(runs, *, label, patterns=None, seed=0):
    """One job entry: the :class:`gen.program.Run` s of a layer phase (or a part of one)."""
    return {
        "label": label,
        "patterns": patterns or {},
        "seed": seed,
        "runs": [{"registers": run.registers, "loads": run.loads, "expected": run.expected}
                 for run in runs],
    }


def run_accelerator(config, entries, *, simulator=None, name="accelerator"):
    """Run job entries on the top level's Verilog; per entry, per run: outputs and counters."""
    job = {
        "entries": entries,
        "registers": REGISTERS, "destinations": DESTINATIONS, "status_bits": STATUS_BITS,
        "error_bits": ERROR_BITS, "counters": COUNTERS, "stream_width": config.stream_width,
    }
    return runner.run(config, "cosim.test_accelerator", job, block="accelerator",
                      simulator=simulator, name=name)
