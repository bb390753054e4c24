"""Energy model: event counts of the cycle model's traces times a per-event energy table.

Events are what the RTL does to run a program (``hw/``), counted per run
from its :class:`~gen.model.trace.Trace`:

============== ==============================================================
event          count
============== ==============================================================
``mac``        issued MACs: a ``data_width`` multiply and an ``acc_width`` add
``psum``       psum register-file accesses: read and write per issued MAC,
               read and clear per drained output
``elements``   element-queue push and pop per streamed element per working PE
``scratchpad`` the PEs' stationary scratchpads (:class:`hw.scratchpad.Scratchpad`):
               a line written per load per PE, an operand read per issued MAC
``tasks``      task-queue write and read per PE that takes a bundle
``beats``      beat-queue write and read per beat per working PE
``program``    program-buffer read per command
``stationary`` stationary-buffer read per load command (the whole entry: a
               line per PE, as the controller reads it)
``mask``       mask-buffer read per command (BP)
``operand``    operand-buffer read per broadcast beat
``outputs``    output-buffer write and read per output of every PE
``loads``      buffer writes of everything a run loads
``dram``       off-chip traffic: every loaded bit and every output beat
============== ==============================================================

Energies (:class:`EnergyTable`) are published 45 nm figures (M. Horowitz,
"Computing's energy problem (and what we can do about it)", ISSCC 2014,
0.9 V): 8-bit integer multiply 0.2 pJ and 32-bit add 0.1 pJ, scaled to the
operand widths (multiply by the square of the width ratio: 0.8 pJ for 16
bits; add linearly: 0.15 pJ for 48 bits); SRAM reads of 64 bits cost 10 pJ
at 8 KB, 20 pJ at 32 KB and 100 pJ at 1 MB, interpolated log-log in the
capacity of the array read (register files and queues below 8 KB follow the
8-32 KB slope, 1 KB -> 3.5 pJ per 64 bits, close to the "register file
access ~ one MAC" of Eyeriss, ISCA 2016); a write costs as much as a read;
DRAM 1.3 nJ per 64 bits (Horowitz's lower figure, 20 pJ/bit). The same
table prices dense and sparse mode, so their ratio does not depend on the
45 nm scale. Leakage is not modelled (sparse mode, being shorter, would
save more).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hw.buffer import entry_beats
from hw.layouts import buffer_layouts, element_layout, line_layout, task_layout, window_layout

__all__ = ["EnergyTable", "EVENTS", "count_events", "add_events", "energy_pj", "on_chip_storage"]

EVENTS = ("mac", "psum", "elements", "scratchpad", "tasks", "beats", "program", "stationary", "mask",
          "operand", "outputs", "loads", "dram")

# Horowitz (ISSCC 2014), 45 nm: 64-bit SRAM read energy (pJ) by capacity (bytes).
_SRAM_POINTS = ((8 * 1024, 10.0), (32 * 1024, 20.0), (1024 * 1024, 100.0))


@dataclass(frozen=True)
class EnergyTable:
    """Per-event energies in pJ (defaults: 45 nm, see the module's notes)."""

    multiply_8bit_pj: float = 0.2
    add_32bit_pj: float = 0.1
    dram_pj_per_bit: float = 1300.0 / 64

    def mac_pj(self, config):
        """One MAC: a ``data_width`` multiply and an ``acc_width`` add."""
        return (self.multiply_8bit_pj * (config.data_width / 8) ** 2
                + self.add_32bit_pj * config.acc_width / 32)

    @staticmethod
    def sram_pj_per_bit(capacity_bits):
        """Read (or write) energy per bit of an SRAM or register array of this capacity."""
        size = max(capacity_bits / 8, 1.0)
        points = _SRAM_POINTS
        if size <= points[1][0]:
            (s0, e0), (s1, e1) = points[0], points[1]
        else:
            (s0, e0), (s1, e1) = points[1], points[2]
        slope = math.log(e1 / e0) / math.log(s1 / s0)
        return e0 * (size / s0) ** slope / 64


def _psum_bits(config):
    """Bits of one PE's partial-sum banks."""
    return config.psum_banks * config.max_row * config.acc_width


def _scratchpad_bits(config):
    """Bits of one PE's stationary scratchpad (:class:`hw.scratchpad.Scratchpad`)."""
    return config.scratchpad_lines * line_layout(config).size


def on_chip_storage(config):
    """``{name: (kind, bits)}`` of every storage array of ``config``'s accelerator, from the
    layouts and depths that build it: ``kind`` is ``"sram"`` (the buffers, each entry
    padded to whole load beats; the output banks; the array's queues, whose FIFOs hold
    ``depth - 1`` entries in memory and one in their output register, counted with the
    flip-flops), ``"register file"`` (the PEs' partial sums and stationary scratchpads) or
    ``"flip-flops"`` (the PEs' element queues, too small for a macro)."""
    pes, depth = config.pes, config.array_queue_depth
    storage = {f"{name} buffer": ("sram", entry_beats(shape, config.stream_width)
                                   * config.stream_width * entries)
               for name, (shape, entries) in buffer_layouts(config).items()}
    storage["output buffer"] = ("sram", pes * config.output_depth * config.acc_width)
    for name, width in (("task queues", task_layout(config).size),
                        ("beat queues", element_layout(config).size)):
        storage[name] = ("sram", pes * (depth - 1) * width)
    storage["routing queue"] = ("sram", (depth - 1) * pes)
    storage["partial sums"] = ("register file", pes * _psum_bits(config))
    storage["element queues"] = ("flip-flops",
                                 pes * config.queue_depth * window_layout(config).size)
    storage["scratchpads"] = ("register file", pes * _scratchpad_bits(config))
    return storage


def count_events(config, trace):
    """Event counts (:data:`EVENTS`) of one run: ``mac`` a count of MACs, ``dram`` a
    count of bits, the others ``{(bits per access, capacity in bits): accesses}``."""
    pes = config.pes
    widths = {name: shape.size for name, (shape, _) in buffer_layouts(config).items()}
    entries = trace.entries
    works = trace.works.sum(axis=1)
    outputs = entries["outputs"] * pes
    element_bits = element_layout(config).size
    window_bits = window_layout(config).size
    task_bits = task_layout(config).size
    line_bits = line_layout(config).size
    scratchpad = _scratchpad_bits(config)
    # Commands with loads (each reads a stationary entry), those without a primitive, and
    # the lines the PEs write.
    loading = (trace.load_line >= 0).any(axis=1)
    loads = int(loading.sum())
    load_only = int((loading & ~trace.works.any(axis=1)).sum())
    lines_loaded = int((trace.load_line >= 0).sum())
    commands = trace.bundles
    program = (widths["program"], widths["program"] * config.program_depth)
    # The stationary and mask buffers as one bank of lines (rows) per PE, read all at once.
    stationary = (line_bits, line_bits * config.stationary_depth)
    mask = (config.max_row, config.max_row * config.mask_depth)
    operand = (element_bits, element_bits * config.operand_depth)
    loaded_bits = (entries["program"] * widths["program"]
                   + entries["stationary"] * widths["stationary"]
                   + entries["mask"] * widths["mask"]
                   + entries["operand"] * element_bits)
    return {
        "mac": int(trace.issued_macs),
        "psum": {(config.acc_width, _psum_bits(config)):
                 2 * trace.issued_macs + 2 * outputs},
        "elements": {(window_bits, config.queue_depth * window_bits):
                     2 * int((trace.elements * works).sum())},
        "scratchpad": {(line_bits, scratchpad): lines_loaded,
                       (config.data_width, scratchpad): int(trace.issued_macs)},
        "tasks": {(task_bits, config.array_queue_depth * task_bits): 2 * int(trace.takes.sum())},
        "beats": {(element_bits, config.array_queue_depth * element_bits):
                  2 * int((trace.beats * works).sum())},
        "program": {program: commands},
        "stationary": {stationary: loads * pes},
        # Only BP runs load masks; each of their primitives reads an entry.
        "mask": {mask: (commands - load_only) * pes if entries["mask"] else 0},
        "operand": {operand: int(trace.beats.sum())},
        "outputs": {(config.acc_width, config.acc_width * config.output_depth): 2 * outputs},
        "loads": {program: entries["program"], stationary: entries["stationary"] * pes,
                  mask: entries["mask"] * pes, operand: entries["operand"]},
        "dram": int(loaded_bits + outputs * config.stream_width),
    }


def add_events(total, events):
    """Add one run's :func:`count_events` into ``total`` (updated and returned)."""
    for name, value in events.items():
        if isinstance(value, dict):
            into = total.setdefault(name, {})
            for key, count in value.items():
                into[key] = into.get(key, 0) + count
        else:
            total[name] = total.get(name, 0) + value
    return total


def energy_pj(config, events, table=None):
    """Energy in pJ per event kind, and ``total``, of (summed) :func:`count_events`."""
    table = table or EnergyTable()
    result = {}
    for name in EVENTS:
        value = events.get(name, 0)
        if name == "mac":
            result[name] = value * table.mac_pj(config)
        elif name == "dram":
            result[name] = value * table.dram_pj_per_bit
        else:
            result[name] = float(sum(count * bits * table.sram_pj_per_bit(capacity)
                                     for (bits, capacity), count in (value or {}).items()))
    result["total"] = sum(result.values())
    return result
