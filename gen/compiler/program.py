"""Programs for the accelerator top level, packed from a :class:`~gen.compiler.schedule.Schedule`.

The compiler's last step, taken only when the RTL runs the layer. Each run
of the schedule becomes *row commands* (:func:`hw.layouts.command_layout`):
one per array bundle, holding the task geometry and the buffer addresses of
its operands, and the images of the four buffers, loaded over AXI4-Stream.
The entries of a run are those the schedule counted (:mod:`gen.compiler.runs`:
rows told apart by which row they are); an entry holds a line or mask row
per member of the group, in member order, and PE ``p`` takes row
``source[p]`` of it (its member; the same for every command of a group).

:func:`bundle_tasks` turns a group's bundles into the :class:`~gen.compiler.tasks.RowTask`
of every PE, the form the PE array and the PE take them in directly; the
commands are made from the same tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw.config import PHASE_CODES
from hw.layouts import buffer_layouts

from .runs import closes_piece, load_entries
from .schedule import bundle_geometry
from .scratchpad import group_rows, load_plan
from .tasks import Packer, RowTask, pack_payload

__all__ = ["Run", "Drain", "pack_program", "bundle_tasks", "program_json"]


def _pack(values, width):
    """Concatenate ``values`` (two's complement, ``width`` bits each), element 0 lowest."""
    bits, mask = 0, (1 << width) - 1
    for position, value in enumerate(values):
        bits |= (int(value) & mask) << (position * width)
    return bits


def _split(bits, entry_width, stream_width):
    """An entry's load beats, least significant first."""
    beats = -(-entry_width // stream_width)
    mask = (1 << stream_width) - 1
    return [(bits >> (number * stream_width)) & mask for number in range(beats)]


@dataclass(frozen=True)
class Drain:
    """What each PE drains for one group part of a run, in drain order: ``out_len``
    outputs of columns ``columns`` of the rows ``keys`` (per PE; None: a PE without a
    row, whose zeros are dropped). The host adds every drained row into the layer's
    output, so the pieces of a split row add up there."""

    keys: tuple
    columns: slice
    out_len: int


@dataclass
class Run:
    """One load-compute-readout round of the accelerator.

    ``registers``: the descriptor values; ``loads``: per buffer its packet (load
    beats); ``drains``: the :class:`Drain` s in output order; ``entries``: entries
    loaded into each buffer (operand: beats); ``elements`` and ``beats``: per command,
    its streamed elements and operand beats.
    """

    registers: dict
    loads: dict
    drains: list = field(default_factory=list)
    commands: int = 0
    entries: dict = field(default_factory=dict)
    elements: list = field(default_factory=list)
    beats: list = field(default_factory=list)

    @property
    def outputs_per_pe(self):
        return sum(drain.out_len for drain in self.drains)

    @property
    def load_beats(self):
        return sum(len(beats) for beats in self.loads.values())


def bundle_tasks(schedule, group, first=0, stop=None, partial=False):
    """``[(tasks, present), ...]``: bundles ``first..stop`` of ``group`` as one
    :class:`~gen.compiler.tasks.RowTask` per PE and the command's present bits; a
    ``partial`` piece closes its rows with its last bundle or, WG, an empty task of the
    row's last kernel row."""
    stop = group.bundles if stop is None else stop
    mapping, dense, pes = schedule.mapping, schedule.dense, schedule.pes
    epb = schedule.config.elements_per_beat
    masks = ([tuple(int(v) for v in schedule.masks[row, group.columns]) for row in group.mask_rows]
             if group.mask_rows is not None else [()] * pes)
    closing = partial and closes_piece(group, stop)

    def bundle_of(geometry, stationary, elements, row_last, offset, present):
        pad, in_width, out_width = geometry
        tasks = [RowTask(phase=mapping.task_phase, stride=mapping.stride, pad=pad,
                         kernel=mapping.task_kernel, in_width=in_width, out_width=out_width,
                         stationary=stationary[unit], mask=masks[unit], dense=dense,
                         row_last=row_last, elements=elements, offset=offset,
                         present=bool(present[unit]))
                 for unit in range(pes)]
        return tasks, list(present)

    bundles = []
    for bundle in range(first, stop):
        tile = group.tile[bundle]
        elements, stationary = (), [()] * pes
        if tile >= 0:
            a_lo, a_hi, b_lo, b_hi = schedule.parts[tile][:4]
            a_tile = schedule.a_rows[group.a_row[bundle], a_lo:a_hi]
            indices = np.arange(a_hi - a_lo) if dense else np.flatnonzero(a_tile)
            elements = tuple(zip(a_tile[indices].tolist(), indices.tolist()))
            zero = (0,) * int(b_hi - b_lo)
            stationary = [tuple(schedule.b_rows[row, b_lo:b_hi].tolist()) if row >= 0 else zero
                          for row in group.b_row[bundle].tolist()]
        if -(-len(elements) // epb) != group.beats[bundle]:
            raise RuntimeError("internal error: a bundle's elements do not match its beats")
        row_last = bundle == stop - 1 and not closing and (partial or stop == group.bundles)
        bundles.append(bundle_of(bundle_geometry(schedule, group, bundle), stationary, elements,
                                 row_last, int(group.offset[bundle]),
                                 group.present[bundle].tolist()))
    if closing:
        # The PE takes a WG row's length from its closing task's offset (the last
        # kernel row): close the piece with an empty task of the row's last bundle.
        bundles.append(bundle_of(bundle_geometry(schedule, group, group.bundles - 1),
                                 [()] * pes, (), True, int(group.closing_offset),
                                 [key is not None for key in group.keys]))
    return bundles


class _Entries:
    """The entries of one buffer in a run, in address order: per key, a row per member."""

    def __init__(self):
        self.rows = {}       # key -> (address, rows in member order)

    def place(self, key, rows):
        """The address of the entry ``key`` holding ``rows`` (one per member, in member
        order; None: an empty row)."""
        if key not in self.rows:
            self.rows[key] = (len(self.rows), tuple(() if row is None else row for row in rows))
        return self.rows[key][0]

    def __len__(self):
        return len(self.rows)

    def images(self, pes):
        """Per entry in address order its rows, padded with empty rows to one per PE."""
        return [rows + ((),) * (pes - len(rows)) for _, rows in self.rows.values()]


def _pack_run(schedule, parts, entries, packer, command_layout, widths):
    config, pes = schedule.config, schedule.pes
    stream = config.stream_width
    stationary, masks = _Entries(), _Entries()
    operands, operand_beats = {}, 0
    commands, drains, elements, beats = [], [], [], []
    rows = schedule.rows.copy()       # the scratchpads, as the schedule placed the rows
    for group, first, stop, partial in parts:
        placed, loaded, rounds = group_rows(rows, group, first, stop)
        alone, ride_from, ride_round = load_plan(rows, group, first, stop, placed, loaded,
                                                 rounds)
        all_tasks = bundle_tasks(schedule, group, first, stop, partial)
        source = group.source.tolist()

        def load(number, index):
            # Load round ``index`` of bundle ``number``: each PE it names writes line
            # ``index`` of its row into its scratchpad, all at the same line. The entry
            # holds that line of every member's row in member order, so it serves any
            # PEs that load it.
            bundle, loading = first + number, loaded[number].tolist()
            (key,) = load_entries(group, bundle, rounds[number:number + 1])[index:index + 1]
            tasks = all_tasks[number][0]
            entry = stationary.place(key, [
                tuple(rows.words_of(tasks[unit].stationary, index))
                if group.b_row[bundle, unit] >= 0 else None for unit in group.member_pes])
            return {"load_line": int(placed[number, 0]) + index,
                    "stationary_address": entry,
                    "loads": sum(1 << unit for unit, here in enumerate(loading) if here)}

        for number, (tasks, present) in enumerate(all_tasks):
            head = tasks[0]
            bundle = first + number
            closing = bundle >= stop
            row = 0 if closing else int(placed[number, 0])
            # Load-only commands for the rounds that do not come with a primitive, then
            # the primitive with the round that rides with it (load_plan).
            for index in range(0 if closing else int(alone[number])):
                commands.append({
                    "empty": 1, "row_last": 0, "load_only": 1, "pad": 0, "in_width": 0,
                    "out_width": 0, "offset": 0, "row": 0, "mask_address": 0,
                    "operand_address": 0, "operand_beats": 0, "works": 0, "source": source,
                    **load(number, index)})
                elements.append(0)
                beats.append(0)
            riding = load(int(ride_from[number]), int(ride_round[number])) \
                if not closing and ride_from[number] >= 0 else {
                    "load_line": 0, "stationary_address": 0, "loads": 0}
            mask_address = 0
            if group.mask_key is not None:
                mask_address = masks.place(group.mask_key,
                                           [tasks[unit].mask for unit in group.member_pes])
            address = count = 0
            if head.elements:
                count = head.beats(config.elements_per_beat)
                operand_key = int(group.operand_keys[bundle])
                if operand_key not in operands:
                    operands[operand_key] = (operand_beats, head.elements)
                    operand_beats += count
                address = operands[operand_key][0]
            works = group.works[bundle] if not closing else np.zeros(pes, np.bool_)
            commands.append({
                "empty": int(head.empty), "row_last": int(head.row_last), "load_only": 0,
                "pad": head.pad, "in_width": head.in_width, "out_width": head.out_width,
                "offset": head.offset, "row": row, "source": source,
                "mask_address": mask_address, "operand_address": address,
                "operand_beats": count,
                "works": sum(1 << unit for unit, here in enumerate(works.tolist()) if here),
                **riding,
            })
            elements.append(len(head.elements))
            beats.append(count)
        drains.append(Drain(tuple(group.keys), group.columns, group.out_len))
    counted = {"program": len(commands), "operand": operand_beats,
               "stationary": len(stationary), "mask": len(masks),
               "outputs": sum(drain.out_len for drain in drains)}
    if counted != entries:
        raise RuntimeError(f"internal error: the program's entries {counted} are not the "
                           f"schedule's {entries}")
    loads = {name: [] for name in ("program", "operand", "stationary", "mask")}
    for command in commands:
        loads["program"] += _split(pack_payload(command_layout, command), widths["program"],
                                   stream)
    for _, operand in sorted(operands.values()):
        for bits in packer.element_beats(operand):
            loads["operand"] += _split(bits, widths["operand"], stream)
    words = config.line_words
    for lines in stationary.images(pes):
        values = [value for line in lines for value in (list(line) or [0] * words)]
        loads["stationary"] += _split(_pack(values, config.data_width), widths["stationary"],
                                      stream)
    for mask_rows in masks.images(pes):
        bits = _pack([packer.mask_bits(row) for row in mask_rows], config.max_row)
        loads["mask"] += _split(bits, widths["mask"], stream)
    registers = {"PHASE": PHASE_CODES[schedule.mapping.task_phase], "MODE": int(schedule.dense),
                 "STRIDE": schedule.mapping.stride, "KERNEL": schedule.mapping.task_kernel,
                 "COMMANDS": len(commands)}
    return Run(registers=registers, loads={name: b for name, b in loads.items() if b},
               drains=drains, commands=len(commands), entries=counted, elements=elements,
               beats=beats)


def pack_program(schedule):
    """The :class:`Run` s of ``schedule`` (built with runs) for the top level."""
    if schedule.runs is None:
        raise ValueError("the schedule was built without runs (runs=False)")
    if schedule.pes != schedule.config.pes:
        raise ValueError(f"the top level runs schedules of all {schedule.config.pes} PEs, "
                         f"not of {schedule.pes}")
    packer = Packer(schedule.config)
    layouts = buffer_layouts(schedule.config)
    widths = {name: shape.size for name, (shape, _) in layouts.items()}
    return [_pack_run(schedule, parts, entries, packer, layouts["program"][0], widths)
            for parts, entries in schedule.runs]


def program_json(config, runs):
    """The program of a layer phase as JSON-ready data: per run the descriptor
    registers and each buffer's load packet (``stream_width``-bit beats as hex), the
    commands and entries, as the host hands them to the top level."""
    digits = -(-config.stream_width // 4)
    return {"config": config.name, "stream_width": config.stream_width, "runs": [
        {"registers": dict(run.registers), "entries": dict(run.entries),
         "loads": {name: [f"{beat:0{digits}x}" for beat in beats]
                   for name, beats in run.loads.items()},
         "outputs_per_pe": run.outputs_per_pe}
        for run in runs]}
