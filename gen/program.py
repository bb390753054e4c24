"""Programs for the accelerator top level: row commands and buffer images per run.

The compiler's last step. The output rows of a layer phase, grouped one per
PE (:meth:`gen.primitives.LayerRows.groups`), become *row commands*
(:func:`hw.layouts.command_layout`): one per array bundle, holding the task
geometry and the buffer addresses of its operands. Operands are stored once
per run and referenced: a stationary entry (one row per PE), a BP mask entry
and a streamed row's beats in the operand buffer are shared by every command
that uses the same data, which is where the on-chip reuse comes from (in FF
the filter rows of a group of output channels serve every output row of the
batch).

A layer whose commands, operands or outputs do not fit the buffers of the
preset is split into several runs (:class:`Run`), each a full load, compute
and readout; an output row is never split across runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hw.config import PHASE_CODES

__all__ = ["Run", "build_runs", "Capacity", "program_json"]


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


@dataclass
class Run:
    """One load-compute-readout round of the accelerator.

    ``loads`` maps a buffer name to its packet (load beats), ``registers``
    the descriptor values, ``groups`` the ``(keys, columns, rows)`` groups in
    program order, and ``expected[p]`` PE ``p``'s outputs in drain order.
    """

    registers: dict
    loads: dict
    groups: list = field(default_factory=list)
    expected: list = field(default_factory=list)
    commands: int = 0
    # Entries loaded into each buffer (operand: beats).
    entries: dict = field(default_factory=dict)

    @property
    def outputs_per_pe(self):
        return len(self.expected[0]) if self.expected else 0

    @property
    def load_beats(self):
        return sum(len(beats) for beats in self.loads.values())


@dataclass(frozen=True)
class Capacity:
    """What one run may hold, from the config (entries of each buffer)."""

    program: int
    operand: int
    stationary: int
    mask: int
    outputs: int

    @classmethod
    def of(cls, config):
        return cls(config.program_depth, config.operand_depth, config.stationary_depth,
                   config.mask_depth, config.output_depth)


class _RunBuilder:
    def __init__(self, config, phase, *, stride, kernel, dense):
        from gen.primitives import Packer
        from hw.layouts import buffer_layouts

        self.config, self.phase = config, phase
        self.packer = Packer(config)
        layouts = buffer_layouts(config)
        self.command_layout = layouts["program"][0]
        self.widths = {name: shape.size for name, (shape, _) in layouts.items()}
        self.registers = {"PHASE": PHASE_CODES[phase], "MODE": int(dense), "STRIDE": stride,
                          "KERNEL": kernel}
        self.reset()

    def reset(self):
        self.commands = []
        self.stationary, self.masks, self.operands = {}, {}, {}
        self.operand_beats = 0
        self.groups, self.expected = [], [[] for _ in range(self.config.pes)]

    def _entry(self, rows):
        """``(entry, sources)``: the buffer entry that holds ``rows`` (one per PE) and,
        per PE, the entry row it takes. An entry holds the distinct rows in
        sorted order, so every command that needs the same rows, in any
        assignment to the PEs, shares it."""
        distinct = sorted(set(rows))
        entry = tuple(distinct) + ((),) * (len(rows) - len(distinct))
        return entry, [distinct.index(row) for row in rows]

    def _needs(self, rows):
        """New entries this group adds: (commands, stationary, masks, operand beats, outputs)."""
        stationary, masks, operands = set(), set(), {}
        commands = 0
        for tasks in zip(*(row.tasks for row in rows)):
            commands += 1
            key, _ = self._entry(tuple(task.stationary for task in tasks))
            if key not in self.stationary:
                stationary.add(key)
            if self.phase == "bp":
                key, _ = self._entry(tuple(task.mask for task in tasks))
                if key not in self.masks:
                    masks.add(key)
            elements = tasks[0].elements
            if elements and elements not in self.operands:
                operands[elements] = tasks[0].beats(self.config.elements_per_beat)
        return (commands, len(stationary), len(masks), sum(operands.values()),
                rows[0].out_len)

    def fits(self, rows, capacity):
        commands, stationary, masks, beats, outputs = self._needs(rows)
        return (len(self.commands) + commands <= capacity.program
                and len(self.stationary) + stationary <= capacity.stationary
                and len(self.masks) + masks <= capacity.mask
                and self.operand_beats + beats <= capacity.operand
                and len(self.expected[0]) + outputs <= capacity.outputs)

    @property
    def empty(self):
        return not self.commands

    def add(self, group):
        keys, columns, rows = group
        for tasks in zip(*(row.tasks for row in rows)):
            first = tasks[0]
            present = sum(1 << unit for unit, (key, task) in enumerate(zip(keys, tasks))
                          if key is not None and task.present)
            entry, stationary_source = self._entry(tuple(task.stationary for task in tasks))
            stationary = self.stationary.setdefault(entry, len(self.stationary))
            mask, mask_source = 0, [0] * len(tasks)
            if self.phase == "bp":
                entry, mask_source = self._entry(tuple(task.mask for task in tasks))
                mask = self.masks.setdefault(entry, len(self.masks))
            address = beats = 0
            if first.elements:
                beats = first.beats(self.config.elements_per_beat)
                if first.elements not in self.operands:
                    self.operands[first.elements] = (self.operand_beats, first)
                    self.operand_beats += beats
                address = self.operands[first.elements][0]
            self.commands.append({
                "empty": int(first.empty), "row_last": int(first.row_last), "pad": first.pad,
                "in_width": first.in_width, "out_width": first.out_width,
                "offset": first.offset, "stationary_address": stationary,
                "mask_address": mask, "operand_address": address, "operand_beats": beats,
                "stationary_source": stationary_source, "mask_source": mask_source,
                "present": present,
            })
        self.groups.append(group)
        for unit, row in enumerate(rows):
            self.expected[unit].extend([None] * row.out_len if row.expected is None
                                       else [int(v) for v in row.expected])

    def finish(self):
        from gen.primitives import pack_payload

        config, stream = self.config, self.config.stream_width
        loads = {name: [] for name in ("program", "operand", "stationary", "mask")}
        for command in self.commands:
            bits = pack_payload(self.command_layout, command)
            loads["program"] += _split(bits, self.widths["program"], stream)
        for _, task in sorted(self.operands.values(), key=lambda item: item[0]):
            for bits in self.packer.beats(task):
                loads["operand"] += _split(bits, self.widths["operand"], stream)
        for rows in self.stationary:    # dicts keep insertion order = address order
            padded = [value for row in rows
                      for value in list(row) + [0] * (config.max_row - len(row))]
            loads["stationary"] += _split(_pack(padded, config.data_width),
                                          self.widths["stationary"], stream)
        for rows in self.masks:
            bits = _pack([sum(1 << i for i, bit in enumerate(row) if bit) for row in rows],
                         config.max_row)
            loads["mask"] += _split(bits, self.widths["mask"], stream)
        run = Run(registers={**self.registers, "COMMANDS": len(self.commands)},
                  loads={name: beats for name, beats in loads.items() if beats},
                  groups=self.groups, expected=self.expected, commands=len(self.commands),
                  entries={"program": len(self.commands), "operand": self.operand_beats,
                           "stationary": len(self.stationary), "mask": len(self.masks),
                           "outputs": len(self.expected[0])})
        self.reset()
        return run


def _slice(rows, first, stop):
    import dataclasses

    from gen.primitives import OutputRow

    pieces = []
    for row in rows:
        tasks = list(row.tasks[first:stop])
        issued = list(row.issued_per_task[first:stop])
        closing = row.tasks[-1]
        if tasks[-1].offset == closing.offset:
            tasks[-1] = dataclasses.replace(tasks[-1], row_last=True)
        else:
            # The PE takes a WG row's length from its closing task's offset
            # (the last kernel row): close the piece with an empty task of it.
            tasks.append(dataclasses.replace(closing, elements=(), stationary=(), present=True))
            issued.append([])
        pieces.append(OutputRow(tasks, None, 0, 0, issued, partial_len=row.out_len))
    return pieces


def build_runs(config, phase, groups, *, stride, kernel, dense, capacity=None):
    """Pack ``groups`` (from :meth:`~gen.primitives.LayerRows.groups`) into :class:`Run` s.

    ``capacity`` (default: the config's buffer sizes) bounds each run; groups
    are taken in order while they fit. A group that does not fit even an
    empty run is split into pieces of partial rows; a
    run's ``expected[p]`` then holds None for the outputs of partial rows,
    and the caller adds the pieces' outputs.
    """
    capacity = capacity or Capacity.of(config)
    builder = _RunBuilder(config, phase, stride=stride, kernel=kernel, dense=dense)
    runs = []
    for group in groups:
        if builder.fits(group[2], capacity):
            builder.add(group)
            continue
        if not builder.empty:
            runs.append(builder.finish())
        if builder.fits(group[2], capacity):
            builder.add(group)
            continue
        # Too large for one run: pieces of partial rows, each closing the
        # rows with its last bundle; each PE drains a partial row and the
        # host adds them (exact: the same products in another order).
        keys, columns, rows = group
        count, first = len(rows[0].tasks), 0
        while first < count:
            stop = first + 1
            if not builder.fits(_slice(rows, first, stop), capacity):
                if builder.empty:
                    commands, stationary, masks, beats, _ = builder._needs(
                        _slice(rows, first, stop))
                    raise ValueError(
                        f"one row command needs {stationary} stationary entries, {masks} mask "
                        f"entries and {beats} operand beats, more than the buffers hold "
                        f"({capacity})")
                runs.append(builder.finish())
                continue
            while stop < count and builder.fits(_slice(rows, first, stop + 1), capacity):
                stop += 1
            builder.add((keys, columns, _slice(rows, first, stop)))
            first = stop
    if not builder.empty:
        runs.append(builder.finish())
    return runs


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
