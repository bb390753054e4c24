"""Payload layouts of the PE's streams, derived from one :class:`~hw.config.AccelConfig`.

The host side (drivers, test benches) packs and unpacks these same layouts,
so a field's position is never written down twice. Each layout is built
once per config (the functions are cached; layouts are immutable), so the
host's packers can key on the layout object.
"""

import functools

from amaranth import Mux, signed, unsigned
from amaranth.lib import data, enum

from .config import PHASE_CODES

__all__ = ["Phase", "task_layout", "line_layout", "row_length", "element_layout", "result_layout", "window_layout",
           "slot_indices", "row_entries", "bundle_layout", "array_result_layout", "command_layout", "stationary_layout",
           "mask_layout", "buffer_layouts", "output_length"]


class Phase(enum.Enum, shape=2):
    """Convolution phase of a row primitive (docs/SPEC.md, Row primitives)."""
    FF = PHASE_CODES["ff"]
    BP = PHASE_CODES["bp"]
    WG = PHASE_CODES["wg"]


@functools.lru_cache(maxsize=None)
def task_layout(config):
    """One entry of the PE's task stream: a row primitive, a line of stationary
    operands to load into the PE's scratchpad, or both (a primitive that brings a
    line of its own row, or of a later one).

    A primitive: ``kernel`` (S), ``in_width`` (W) and ``out_width`` (F)
    describe the layer row; the streamed row has length W (FF) or F (BP, WG)
    and the output row F (FF), W (BP) or S (WG). Its stationary row (the
    filter row in FF and BP, the input row in WG) is in the scratchpad from
    line ``row`` on. ``mask`` bit ``h`` enables output ``h`` (BP only).
    ``row_last`` marks the last primitive into the output row: the row is
    drained after it. ``empty`` marks a primitive without streamed elements
    (it only carries ``row_last``).

    ``load`` set: the entry writes ``line`` into scratchpad line ``load_line`` as
    the PE takes it, once no element in flight still reads that line, so a line
    loaded with a primitive costs no cycle of its own; ``load_only`` set: the
    entry is nothing else (a load of a row's further lines).
    """
    return data.StructLayout({
        "phase": Phase,
        "dense": unsigned(1),
        "empty": unsigned(1),
        "row_last": unsigned(1),
        "load": unsigned(1),
        "load_only": unsigned(1),
        "stride": unsigned(config.stride_width),
        "pad": unsigned(config.pad_width),
        "kernel": unsigned(config.kernel_width),
        "in_width": unsigned(config.index_width),
        "out_width": unsigned(config.index_width),
        "offset": unsigned(config.index_width),
        "mask": unsigned(config.max_row),
        "row": unsigned(config.line_address_width),
        "load_line": unsigned(config.line_address_width),
        "line": line_layout(config),
    })


@functools.lru_cache(maxsize=None)
def line_layout(config):
    """One scratchpad line: ``line_words`` stationary operands."""
    return data.ArrayLayout(signed(config.data_width), config.line_words)


def row_length(task):
    """Operands of a task's stationary row: the filter row's S (FF, BP) or the input
    row's W (WG)."""
    return Mux(task.phase == Phase.WG, task.in_width, task.kernel)


def output_length(task):
    """The length of the output row a task (a ``task_layout`` value) adds into: F (FF),
    W (BP), or, in WG, the kernel rows up to this one's (the row ends with its last)."""
    return Mux(task.phase == Phase.FF, task.out_width,
               Mux(task.phase == Phase.BP, task.in_width, task.offset + task.kernel))


@functools.lru_cache(maxsize=None)
def element_layout(config):
    """One beat of the streamed row: up to ``elements_per_beat`` elements.

    The first ``count`` (1 or more) of ``value``/``index`` are valid, in index
    order; ``last`` marks the final beat of the primitive.
    """
    per_beat = config.elements_per_beat
    return data.StructLayout({
        "value": data.ArrayLayout(signed(config.data_width), per_beat),
        "index": data.ArrayLayout(unsigned(config.index_width), per_beat),
        "count": unsigned(per_beat.bit_length()),
        "last": unsigned(1),
    })


@functools.lru_cache(maxsize=None)
def result_layout(config):
    """One output of a drained row, in order; ``last`` marks the row's final output."""
    return data.StructLayout({
        "value": signed(config.acc_width),
        "last": unsigned(1),
    })


def row_entries(queue_depth, elements_per_beat):
    """Tasks whose elements can be in flight in a PE (the slots of its
    :class:`~hw.scratchpad.Scratchpad`) behind an element queue of ``queue_depth``
    entries taking ``elements_per_beat`` a cycle (``queue_depth`` 0: a PE without a
    queue, which issues one element while it accepts the next): the queue's tasks, the
    issued element's and the accepted one."""
    queued_tasks = queue_depth - elements_per_beat + 1 if queue_depth else 0
    return queued_tasks + 2


@functools.lru_cache(maxsize=None)
def window_layout(config):
    """A streamed element with its decoded window of ``max_kernel`` slots: an entry of
    the PE's element queue.

    ``issue`` marks the slots that cost a MAC cycle, ``write`` those whose
    product may reach the output (not masked), and ``effectual`` those with two
    nonzero operands and an unmasked output. Slot ``j`` multiplies the element
    with operand ``operand_base + j * operand_step`` of stationary row ``row``
    (an entry of the PE's :class:`~hw.rows.RowStore`) into output ``target_base
    - j`` (``target_down``, FF) or ``target_base + j``, modulo ``2 **
    index_width``.
    """
    slots = config.max_kernel
    index = unsigned(config.index_width)
    return data.StructLayout({
        "value": signed(config.data_width),
        "issue": unsigned(slots),
        "write": unsigned(slots),
        "effectual": unsigned(slots),
        "operand_base": index,
        "operand_step": unsigned(config.stride_width),
        "target_base": index,
        "target_down": unsigned(1),
        "row": unsigned(max(1, (row_entries(config.queue_depth, config.elements_per_beat) - 1).bit_length())),
        "row_last": unsigned(1),
        "out_len": index,
    })


def slot_indices(window, slot):
    """``(stationary index, output index)`` of slot ``slot`` (a value) of a decoded
    ``window``, as :func:`window_layout` defines them."""
    operand = (window.operand_base + slot * window.operand_step)[:len(window.operand_base)]
    target = Mux(window.target_down, window.target_base - slot,
                 window.target_base + slot)[:len(window.target_base)]
    return operand, target


@functools.lru_cache(maxsize=None)
def bundle_layout(config):
    """One entry of the PE array's task stream for every PE: a row primitive with shared
    geometry, lines for the PEs to load, or both.

    ``task`` holds the fields all PEs share, ``row`` (the scratchpad line the PEs'
    stationary rows start at: the host places a bundle's rows on the same line in
    every PE) and ``load_line`` among them (its ``mask``, ``load`` and ``line`` are
    ignored; ``task.load_only``: no primitive). PE ``p`` gets ``mask[p]`` (BP) and,
    when bit ``p`` of ``loads`` is set, writes ``line[p]`` into its scratchpad line
    ``task.load_line`` as it takes the entry. Bit ``p`` of ``works`` is set when PE
    ``p`` works on the primitive: it has an output row of its own in this group,
    the primitive is in its row, and (sparse mode) its stationary row and BP mask row
    are not all zero; a PE that does not work only gets a primitive that closes a
    row, as an empty task, or one with a line to load.
    """
    pes = config.pes
    return data.StructLayout({
        "task": task_layout(config),
        "mask": data.ArrayLayout(unsigned(config.max_row), pes),
        "line": data.ArrayLayout(line_layout(config), pes),
        "works": unsigned(pes),
        "loads": unsigned(pes),
    })


@functools.lru_cache(maxsize=None)
def array_result_layout(config):
    """One beat of the array's outputs: a lane per PE, each with its own valid bit.

    All PEs drain in parallel (as into a banked output buffer): a beat
    carries the next output of every PE that has one.
    """
    return data.StructLayout({
        "lanes": data.ArrayLayout(data.StructLayout({
            "valid": unsigned(1),
            "value": signed(config.acc_width),
            "last": unsigned(1),
        }), config.pes),
    })


@functools.lru_cache(maxsize=None)
def command_layout(config):
    """One row command of the program buffer: one array bundle, by reference.

    The layer-wide fields (phase, stride, kernel, mode) come from the
    descriptor registers; a command holds what changes from bundle to bundle.
    A primitive: the task geometry of a (possibly tiled) row primitive,
    ``empty`` and ``row_last``, the scratchpad line the PEs' stationary rows start at
    (``row``, the same in every PE), the mask-buffer entry (BP), and where its
    streamed beats start in the operand buffer and how many there are. Loads: the
    stationary-buffer entry whose lines the PEs named in ``loads`` write, each into
    its scratchpad line ``load_line``, with the primitive or, when ``load_only`` is
    set, alone (``empty`` set too: no beats). Rows are referenced, not copied: a
    streamed row that feeds many primitives is loaded once, and a stationary row
    stays in the PEs' scratchpads for every primitive that uses it. PE ``p`` gets
    line ``source[p]`` of the stationary entry and row ``source[p]`` of the mask
    entry (a crossbar of lines and mask rows): the host stores an entry's rows in
    the order of the group's members, so one entry serves any assignment of the
    members to the PEs, and ``source[p]`` is PE ``p``'s member. ``offset`` is the
    task field of that name (WG). ``works`` and ``loads`` are the bundle's fields of
    those names, in PE order.
    """
    source = data.ArrayLayout(unsigned(max(1, (config.pes - 1).bit_length())), config.pes)
    return data.StructLayout({
        "empty": unsigned(1),
        "row_last": unsigned(1),
        "load_only": unsigned(1),
        "pad": unsigned(config.pad_width),
        "in_width": unsigned(config.index_width),
        "out_width": unsigned(config.index_width),
        "offset": unsigned(config.index_width),
        "row": unsigned(config.line_address_width),
        "load_line": unsigned(config.line_address_width),
        "stationary_address": unsigned(config.address_width(config.stationary_depth)),
        "mask_address": unsigned(config.address_width(config.mask_depth)),
        "operand_address": unsigned(config.address_width(config.operand_depth)),
        "operand_beats": unsigned(config.operand_depth.bit_length()),
        "source": source,
        "works": unsigned(config.pes),
        "loads": unsigned(config.pes),
    })


@functools.lru_cache(maxsize=None)
def stationary_layout(config):
    """One stationary-buffer entry: a scratchpad line per PE (``line_words`` operands)."""
    return data.ArrayLayout(line_layout(config), config.pes)


@functools.lru_cache(maxsize=None)
def mask_layout(config):
    """One mask-buffer entry: a ``max_row``-bit BP output mask per PE."""
    return data.ArrayLayout(unsigned(config.max_row), config.pes)


def buffer_layouts(config):
    """``{name: (entry layout, depth)}`` of the input buffers of the top level.

    The same table sizes the buffers (:mod:`hw.top`), the controller's read
    ports and the host's buffer images (:mod:`gen.compiler.program`).
    """
    return {
        "program": (command_layout(config), config.program_depth),
        "operand": (element_layout(config), config.operand_depth),
        "stationary": (stationary_layout(config), config.stationary_depth),
        "mask": (mask_layout(config), config.mask_depth),
    }
