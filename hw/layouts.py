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
from .rows import entry_shape, row_entries

__all__ = ["Phase", "task_layout", "element_layout", "result_layout", "window_layout",
           "slot_indices", "bundle_layout", "array_result_layout", "command_layout",
           "stationary_layout", "mask_layout", "buffer_layouts", "output_length"]


class Phase(enum.Enum, shape=2):
    """Convolution phase of a row primitive (docs/SPEC.md, Row primitives)."""
    FF = PHASE_CODES["ff"]
    BP = PHASE_CODES["bp"]
    WG = PHASE_CODES["wg"]


@functools.lru_cache(maxsize=None)
def task_layout(config):
    """One row primitive: its geometry, its stationary row and the BP output mask.

    ``kernel`` (S), ``in_width`` (W) and ``out_width`` (F) describe the layer
    row; the streamed row has length W (FF) or F (BP, WG) and the output row
    F (FF), W (BP) or S (WG). ``stationary`` holds the filter row (FF, BP) or
    the input row (WG) from index 0. ``mask`` bit ``h`` enables output ``h``
    (BP only). ``row_last`` marks the last primitive into the output row: the
    row is drained after it. ``empty`` marks a primitive without streamed
    elements (it only carries ``row_last``).
    """
    return data.StructLayout({
        "phase": Phase,
        "dense": unsigned(1),
        "empty": unsigned(1),
        "row_last": unsigned(1),
        "stride": unsigned(config.stride_width),
        "pad": unsigned(config.pad_width),
        "kernel": unsigned(config.kernel_width),
        "in_width": unsigned(config.index_width),
        "out_width": unsigned(config.index_width),
        "offset": unsigned(config.index_width),
        "mask": unsigned(config.max_row),
        "stationary": data.ArrayLayout(signed(config.data_width), config.max_row),
    })


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
        "row": entry_shape(row_entries(config.queue_depth, config.elements_per_beat)),
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
    """One row primitive for every PE of the array: shared geometry, own rows.

    ``task`` holds the fields all PEs share (its ``stationary`` and ``mask``
    are ignored); PE ``p`` gets ``stationary[p]`` and ``mask[p]``. Bit ``p``
    of ``present`` is clear when PE ``p`` has no output row of its own in
    this group (the channels do not fill the array): it then only gets the
    primitives that close a row, in both modes, and drains zeros.
    """
    pes = config.pes
    return data.StructLayout({
        "task": task_layout(config),
        "stationary": data.ArrayLayout(data.ArrayLayout(signed(config.data_width),
                                                        config.max_row), pes),
        "mask": data.ArrayLayout(unsigned(config.max_row), pes),
        "present": unsigned(pes),
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
    descriptor registers; a command holds what changes from bundle to bundle:
    the task geometry of a (possibly tiled) row primitive, ``empty`` and
    ``row_last``, the stationary-buffer entry with every PE's stationary row,
    the mask-buffer entry (BP), and where the primitive's streamed beats
    start in the operand buffer and how many there are. Rows are referenced,
    not copied: a streamed row that feeds many primitives is loaded once.
    PE ``p`` gets row ``stationary_source[p]`` of the stationary entry and
    row ``mask_source[p]`` of the mask entry (a crossbar), so one entry
    serves any assignment of its rows to the PEs: the compiler assigns rows
    to PEs freely to balance their work without storing an entry per
    assignment. ``offset`` is the task field of that name (WG). ``present``
    is the bundle's field of that name, in PE order.
    """
    source = data.ArrayLayout(unsigned(max(1, (config.pes - 1).bit_length())), config.pes)
    return data.StructLayout({
        "empty": unsigned(1),
        "row_last": unsigned(1),
        "pad": unsigned(config.pad_width),
        "in_width": unsigned(config.index_width),
        "out_width": unsigned(config.index_width),
        "offset": unsigned(config.index_width),
        "stationary_address": unsigned(config.address_width(config.stationary_depth)),
        "mask_address": unsigned(config.address_width(config.mask_depth)),
        "operand_address": unsigned(config.address_width(config.operand_depth)),
        "operand_beats": unsigned(config.operand_depth.bit_length()),
        "stationary_source": source,
        "mask_source": source,
        "present": unsigned(config.pes),
    })


@functools.lru_cache(maxsize=None)
def stationary_layout(config):
    """One stationary-buffer entry: a ``max_row`` row per PE."""
    return data.ArrayLayout(data.ArrayLayout(signed(config.data_width), config.max_row),
                            config.pes)


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
