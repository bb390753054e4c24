"""The one configuration object of the accelerator, with named presets.

The same :class:`AccelConfig` builds the hardware, names the build folder,
feeds the golden model's number formats and the host software's constants,
and is written as JSON next to the Verilog. Nothing re-derives a width or a
depth by hand anywhere else.

This module imports nothing from Amaranth, so the compiler, the host driver
and the reports can use it without pulling in the hardware.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

__all__ = ["AccelConfig", "PRESETS", "preset", "PHASE_CODES", "to_signed"]

# Encoding of the convolution phase in task descriptors (hardware and host agree).
PHASE_CODES = {"ff": 0, "bp": 1, "wg": 2}


def to_signed(bits, width):
    """The two's-complement value of the low ``width`` bits of ``bits`` (an unsigned int):
    how the host and the benches read a signed field of a payload."""
    bits &= (1 << width) - 1
    return bits - (1 << width) if bits >> (width - 1) else bits


def _bits_for(value):
    """Bits of an unsigned number that holds 0..value."""
    return max(int(value).bit_length(), 1)


def _check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high}, not {value!r}")


@dataclass(frozen=True)
class AccelConfig:
    """Every hardware parameter of the accelerator.

    Parameters
    ----------
    data_width : int
        Bits of a signed operand (activations, weights, gradients).
    acc_width : int
        Bits of a signed partial sum; at least ``2 * data_width`` so one
        product fits. Sums saturate at this width and set a sticky flag.
    lanes : int
        MACs a PE issues per cycle (all on the same streamed element).
    max_kernel : int
        Largest kernel width S (and height R) a PE supports.
    max_stride : int
        Largest stride U.
    max_pad : int
        Largest zero padding P.
    max_row : int
        Longest row a PE holds: input width W, output width F, and the
        stationary input row of WG.
    elements_per_beat : int
        Streamed elements a PE accepts per cycle. Elements whose window holds
        no MAC are dropped on accept; with more than one per beat, runs of
        them (a masked region in BP, a zero region of ``x`` in WG) no longer
        leave the issue stage waiting.
    queue_depth : int
        Entries of the PE's element queue between accepting a streamed
        element and issuing its MACs (at least ``elements_per_beat``). It lets
        the PE accept (and drop) elements while it still issues MACs of
        earlier ones.
    skipping : bool
        Build the zero-skipping logic: the PE issues only effectual MACs of
        a sparse task and the array does not hand a PE primitives it has no
        work in. ``False`` builds a dense-only accelerator (every valid MAC
        issued, whatever the task's mode; the counters stay), the baseline
        of what skipping costs in area. The host refuses sparse mode on it.
    line_words : int
        Operands of a line of the PE's stationary scratchpad (a power of two):
        a load entry writes one line, and a row of the scratchpad starts on a
        line.
    scratchpad_lines : int
        Lines of each PE's stationary scratchpad: it holds the stationary
        rows of the PE's tasks (filter rows in FF and BP, input rows in WG)
        across commands, so a row loaded once serves every task that uses it
        while it stays.
    psum_banks : int
        Partial-sum banks of a PE (at least 2): one accumulates the current
        output row while the others hold finished rows for the drain.
    counter_width : int
        Bits of the performance counters.
    pe_rows, pe_cols : int
        Size of the PE array.
    array_queue_depth : int
        Entries of each PE's task queue and operand queue in the array: how
        far a PE may run ahead of the slowest one on the shared broadcast.
    stream_width : int
        Bits of ``tdata`` on the AXI4-Stream ports (a multiple of 8).
    program_depth : int
        Row commands the program buffer holds (one per array bundle).
    operand_depth : int
        Beats of streamed elements the operand buffer holds (compressed rows
        in sparse mode, whole rows in dense mode).
    stationary_depth : int
        Entries of the stationary buffer; an entry holds one scratchpad line
        (``line_words`` operands) per PE, loaded into the PEs' scratchpads by
        the commands that name it.
    mask_depth : int
        Entries of the BP mask buffer; an entry holds one ``max_row``-bit
        mask row per PE.
    output_depth : int
        Outputs each PE's bank of the output buffer holds per run.
    """

    data_width: int = 16
    acc_width: int = 48
    lanes: int = 1
    max_kernel: int = 11
    max_stride: int = 4
    max_pad: int = 5
    max_row: int = 32
    elements_per_beat: int = 2
    queue_depth: int = 4
    skipping: bool = True
    line_words: int = 8
    scratchpad_lines: int = 32
    psum_banks: int = 3
    counter_width: int = 48
    pe_rows: int = 4
    pe_cols: int = 4
    array_queue_depth: int = 64
    stream_width: int = 64
    program_depth: int = 4096
    operand_depth: int = 4096
    stationary_depth: int = 512
    mask_depth: int = 512
    output_depth: int = 1024

    def __post_init__(self):
        _check_int("data_width", self.data_width, 2, 32)
        _check_int("acc_width", self.acc_width, 4, 64)
        if self.acc_width < 2 * self.data_width:
            raise ValueError(
                f"acc_width must be at least 2 * data_width = {2 * self.data_width} "
                f"so a product fits, not {self.acc_width!r}")
        _check_int("max_kernel", self.max_kernel, 1, 32)
        _check_int("lanes", self.lanes, 1, self.max_kernel)
        _check_int("max_stride", self.max_stride, 1, 8)
        _check_int("max_pad", self.max_pad, 0, self.max_kernel - 1 if self.max_kernel > 1 else 0)
        _check_int("max_row", self.max_row, self.max_kernel, 1024)
        _check_int("elements_per_beat", self.elements_per_beat, 1, 4)
        _check_int("queue_depth", self.queue_depth, self.elements_per_beat, 64)
        if not isinstance(self.skipping, bool):
            raise TypeError(f"skipping must be a bool, not {self.skipping!r}")
        _check_int("line_words", self.line_words, 1, self.max_row)
        if self.line_words & (self.line_words - 1):
            raise ValueError(f"line_words must be a power of two, not {self.line_words!r}")
        _check_int("scratchpad_lines", self.scratchpad_lines, self.row_lines, 1 << 16)
        _check_int("psum_banks", self.psum_banks, 2, 8)
        _check_int("counter_width", self.counter_width, 16, 64)
        _check_int("pe_rows", self.pe_rows, 1, 64)
        _check_int("pe_cols", self.pe_cols, 1, 64)
        _check_int("array_queue_depth", self.array_queue_depth, 1, 256)
        _check_int("stream_width", self.stream_width, 32, 1024)
        if self.stream_width % 8:
            raise ValueError(f"stream_width must be a multiple of 8, not {self.stream_width!r}")
        if self.stream_width < self.acc_width:
            raise ValueError(f"stream_width must hold one output of acc_width = "
                             f"{self.acc_width} bits, not {self.stream_width!r}")
        for name in ("program_depth", "operand_depth", "stationary_depth", "mask_depth",
                     "output_depth"):
            _check_int(name, getattr(self, name), 2, 1 << 20)

    # -- derived widths, used by the hardware and the host alike --------------

    @property
    def index_width(self):
        """Bits of an element index or a row length (0..max_row)."""
        return _bits_for(self.max_row)

    @property
    def row_lines(self):
        """Scratchpad lines of the longest stationary row (``max_row`` operands)."""
        return -(-self.max_row // self.line_words)

    @property
    def line_address_width(self):
        """Bits of a scratchpad line address."""
        return _bits_for(self.scratchpad_lines - 1)

    @property
    def kernel_width(self):
        """Bits of a kernel width field (0..max_kernel)."""
        return _bits_for(self.max_kernel)

    @property
    def stride_width(self):
        return _bits_for(self.max_stride)

    @property
    def task_pad_max(self):
        """Largest pad a PE task carries: a layer's ``max_pad``, or up to
        ``max(S, U) - 1`` for a tile of a row longer than ``max_row``."""
        return max(self.max_pad, self.max_kernel - 1, self.max_stride - 1)

    @property
    def pad_width(self):
        """Bits of a task's pad field (0..task_pad_max)."""
        return _bits_for(self.task_pad_max)

    @property
    def pes(self):
        """PEs in the array."""
        return self.pe_rows * self.pe_cols

    @property
    def counter_words(self):
        """32-bit AXI4-Lite registers one performance counter takes."""
        return -(-self.counter_width // 32)

    def address_width(self, depth):
        """Bits of an address into a buffer of ``depth`` entries."""
        return _bits_for(depth - 1)

    @property
    def data_min(self):
        return -(1 << (self.data_width - 1))

    @property
    def data_max(self):
        return (1 << (self.data_width - 1)) - 1

    @property
    def acc_min(self):
        return -(1 << (self.acc_width - 1))

    @property
    def acc_max(self):
        return (1 << (self.acc_width - 1)) - 1

    @property
    def name(self):
        """A folder name that identifies the configuration (the preset name if it is one)."""
        for preset_name, config in PRESETS.items():
            if config == self:
                return preset_name
        fields = "-".join(f"{f.name}{getattr(self, f.name)}" for f in dataclasses.fields(self)
                          if getattr(self, f.name) != f.default)
        return f"custom-{fields}"

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps({"name": self.name, **self.to_dict()}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        values.pop("name", None)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown configuration field(s): {', '.join(unknown)}")
        return cls(**values)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


PRESETS = {
    # Fast tests: short rows, one lane, a 2x2 array.
    "small": AccelConfig(max_row=16, queue_depth=4, line_words=4, scratchpad_lines=32,
                         pe_rows=2, pe_cols=2),
    # Two lanes per PE.
    "dual": AccelConfig(lanes=2, max_row=32, pe_rows=2, pe_cols=2),
    # The small array with 8-bit operands and 18-bit sums: 9 full-scale
    # products of one sign saturate an output, so the random regression
    # (`python -m cosim random --config narrow`) reaches saturation on
    # layers small enough to simulate (with 48-bit sums it takes 2^17).
    "narrow": AccelConfig(data_width=8, acc_width=18, max_row=16, line_words=4,
                          scratchpad_lines=32, pe_rows=2, pe_cols=2),
    # The small array with every queue and the beat moved off the other presets'
    # values (3 elements per beat, a 6-deep element queue, 16-deep array queues,
    # 2 psum banks): the cycle model's latencies must follow the config.
    "queues": AccelConfig(max_row=16, elements_per_beat=3, queue_depth=6, array_queue_depth=16,
                          line_words=2, scratchpad_lines=24, psum_banks=2, pe_rows=2,
                          pe_cols=2),
    # 4x4 PEs, rows up to 32 (longer rows are tiled by the host).
    "default": AccelConfig(),
    # The published design's scale, 168 PEs (12 x 14), with rows up to 64
    # (ResNet's 56-wide rows whole): what the performance and energy report
    # (`make report`) models. Its buffers hold 959 KB on chip with the PEs'
    # scratchpads and partial sums, in the range of Eyeriss's 181 KB for as many
    # PEs (6.5 MB at the depths of the other presets; runs are not yet overlapped
    # with the next one's loads, so the shallower buffers cost 14% of the sparse
    # step's cycles). Emitting it works; its co-simulation takes long.
    "paper": AccelConfig(max_row=64, pe_rows=12, pe_cols=14, array_queue_depth=16,
                         program_depth=512, operand_depth=2048, stationary_depth=64,
                         mask_depth=32, output_depth=256),
}


def preset(name):
    """The preset called ``name``; a ValueError lists the known ones."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"config preset must be one of {', '.join(PRESETS)}, not {name!r}")
    return PRESETS[name]
