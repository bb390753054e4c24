"""Top level: PE array, buffers and controller behind AXI4-Lite and AXI4-Stream.

How a run goes (the host driver in ``cosim`` does exactly this):

1. Load the buffers through ``s_axis``: one packet per buffer, ``tdest``
   names it (:data:`DESTINATIONS`); a packet fills its buffer from entry 0.
2. Write the descriptor registers (phase, mode, stride, kernel width,
   number of commands) through ``s_axil`` and write ``CONTROL.START``.
3. The controller executes the commands on the array; the PEs drain their
   output rows into the output buffer, one bank per PE.
4. When the array is idle the output buffer streams out through ``m_axis``
   (bank 0 first, one output per beat, ``tlast`` on the last), then
   ``STATUS.DONE`` is set and ``irq`` rises if enabled.
5. The host reads the performance counters of the run.

Register map (32-bit words at byte address ``4 * index``): :data:`REGISTERS`;
bits of ``STATUS`` and ``ERROR``: :data:`STATUS_BITS`, :data:`ERROR_BITS`.
"""

from amaranth import Cat, Module, Shape, Signal
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out, connect

from .array import PEArray
from .axi import AXI4LiteSignature, AXI4LiteTarget, AXIStreamSignature
from .buffer import LoadBuffer, OutputBuffer
from .controller import Controller
from .layouts import array_result_layout, buffer_layouts, bundle_layout

__all__ = ["Accelerator", "RUN_END", "REGISTERS", "STATUS_BITS", "ERROR_BITS", "DESTINATIONS",
           "COUNTERS", "AXIL_ADDRESS_WIDTH", "MAX_VALUE_BITS", "check_buildable"]

AXIL_ADDRESS_WIDTH = 8
# Cycles the compute state lasts after the last output of a run is drained:
# the controller's end of run is registered before the readout starts.
RUN_END = 1

#: The widest value Amaranth's netlist builder takes: a buffer entry is read as one
#: value, and a wider one fails deep inside Amaranth after minutes of elaboration.
MAX_VALUE_BITS = 65536

def _widest_values(config):
    """``(what, bits, what sets it)`` of the values the top level builds whole: each
    buffer's entry, and the array's bundle and result beat."""
    fields = {
        "program buffer entry": "the command layout (pes, index widths)",
        "operand buffer entry": "elements_per_beat x (data_width + index bits)",
        "stationary buffer entry": f"pes x line_words x data_width = {config.pes} x "
                                   f"{config.line_words} x {config.data_width}",
        "mask buffer entry": f"pes x max_row = {config.pes} x {config.max_row}",
    }
    shapes = {f"{name} buffer entry": shape for name, (shape, _) in buffer_layouts(config).items()}
    shapes["PE array bundle"] = bundle_layout(config)
    fields["PE array bundle"] = (f"pes x (max_row + line_words x data_width + 2) = "
                                 f"{config.pes} x ({config.max_row} + {config.line_words} x "
                                 f"{config.data_width} + 2), and the task fields")
    shapes["PE array result beat"] = array_result_layout(config)
    fields["PE array result beat"] = f"pes x (acc_width + 2) = {config.pes} x " \
                                     f"({config.acc_width} + 2)"
    return [(what, Shape.cast(shape).width, fields[what]) for what, shape in shapes.items()]


def check_buildable(config):
    """Raise ValueError, naming the config fields, when the top level of ``config`` cannot
    be built: a value it builds whole (a buffer entry, the array's bundle or result
    beat) wider than :data:`MAX_VALUE_BITS`. (The models take any valid config; only the
    RTL has this limit.)"""
    for what, width, detail in _widest_values(config):
        if width > MAX_VALUE_BITS:
            raise ValueError(
                f"config {config.name!r} cannot be built as RTL: a {what} is {width} bits "
                f"({detail}), more than the {MAX_VALUE_BITS} bits Amaranth builds in one "
                f"value; lower pe_rows x pe_cols, max_row, line_words or data_width")


# ``tdest`` of an ``s_axis`` packet -> the buffer it fills.
DESTINATIONS = {"program": 0, "operand": 1, "stationary": 2, "mask": 3}

# Performance counters of the last run; each takes two words (low, high).
COUNTERS = ("cycles", "busy_cycles", "stall_cycles", "issued_macs", "effectual_macs")

REGISTERS = {
    "CONTROL": 0,      # W: bit 0 START
    "STATUS": 1,       # R: STATUS_BITS; write 1 to DONE to clear it
    "ERROR": 2,        # R: ERROR_BITS, sticky; write 1s to clear
    "IRQ_ENABLE": 3,   # RW: bit 0, irq on DONE
    "PHASE": 4,        # RW: 0 FF, 1 BP, 2 WG
    "MODE": 5,         # RW: bit 0 dense
    "STRIDE": 6,       # RW
    "KERNEL": 7,       # RW: kernel width S
    "COMMANDS": 8,     # RW: row commands in the program buffer
    "OUTPUTS": 9,      # R: outputs per PE bank of the last run
    "INFO": 10,        # R: PEs in bits 0-15, max_row in bits 16-31
    **{f"{name.upper()}_{half}": 16 + 2 * number + (half == "HI")
       for number, name in enumerate(COUNTERS) for half in ("LO", "HI")},
}

STATUS_BITS = {"RUNNING": 0, "READOUT": 1, "DONE": 2, "ERROR": 3, "SATURATED": 4}

ERROR_BITS = {
    "BUSY": 0,              # START or a descriptor write while a run is in progress
    "BAD_DESCRIPTOR": 1,    # START with a descriptor field out of range
    "LOAD_OVERFLOW": 2,     # a packet longer than its buffer
    "OUTPUT_OVERFLOW": 3,   # more outputs than a PE bank holds
    "LOAD_WHILE_BUSY": 4,   # s_axis data during a run (dropped)
}


class _State(enum.Enum, shape=2):
    IDLE = 0
    COMPUTE = 1
    READOUT = 2


class Accelerator(wiring.Component):
    """The sparse-aware training accelerator as an SoC peripheral.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    s_axil : In(AXI4LiteSignature)
        Control and status registers (:data:`REGISTERS`).
    s_axis : In(AXIStreamSignature)
        Buffer loads; ``tdest`` selects the buffer (:data:`DESTINATIONS`).
    m_axis : Out(AXIStreamSignature)
        Outputs of a run, sign-extended to ``stream_width``.
    irq : Out
        ``STATUS.DONE`` while ``IRQ_ENABLE`` is set.
    """

    def __init__(self, config):
        check_buildable(config)
        self._config = config
        super().__init__({
            "s_axil": In(AXI4LiteSignature(address_width=AXIL_ADDRESS_WIDTH)),
            "s_axis": In(AXIStreamSignature(data_width=config.stream_width, dest_width=2)),
            "m_axis": Out(AXIStreamSignature(data_width=config.stream_width)),
            "irq": Out(1),
        })

    @property
    def config(self):
        return self._config

    def buffers(self):
        """``{name: LoadBuffer}`` of the input buffers, as this config sizes them."""
        config = self._config
        return {name: LoadBuffer(shape=shape, depth=depth, stream_width=config.stream_width)
                for name, (shape, depth) in buffer_layouts(config).items()}

    def elaborate(self, platform):
        config = self._config
        m = Module()
        m.submodules.array = array = PEArray(config)
        m.submodules.controller = controller = Controller(config)
        m.submodules.output = output = OutputBuffer(config)
        m.submodules.registers = registers = AXI4LiteTarget(address_width=AXIL_ADDRESS_WIDTH)
        buffers = self.buffers()
        for name, buffer in buffers.items():
            m.submodules[f"{name}_buffer"] = buffer
        wiring.connect(m, wiring.flipped(self.s_axil), registers.bus)

        state = Signal(_State)
        busy = Signal()
        done = Signal()
        errors = Signal(len(ERROR_BITS))
        irq_enable = Signal()
        descriptor = {name: Signal(32, name=f"descriptor_{name.lower()}")
                      for name in ("PHASE", "MODE", "STRIDE", "KERNEL", "COMMANDS")}
        counters = {name: Signal(config.counter_width, name=name) for name in COUNTERS}
        m.d.comb += busy.eq(state != _State.IDLE)

        # -- loads --------------------------------------------------------------
        m.d.comb += self.s_axis.tready.eq(1)
        for name, buffer in buffers.items():
            m.d.comb += [
                buffer.load.valid.eq(self.s_axis.tvalid & ~busy
                                     & (self.s_axis.tdest == DESTINATIONS[name])),
                buffer.load.payload.data.eq(self.s_axis.tdata),
                buffer.load.payload.last.eq(self.s_axis.tlast),
            ]
        error_now = {name: Signal(name=f"error_{name.lower()}") for name in ERROR_BITS}
        m.d.comb += [
            error_now["LOAD_OVERFLOW"].eq(Cat(b.overflow for b in buffers.values()).any()),
            error_now["LOAD_WHILE_BUSY"].eq(self.s_axis.tvalid & busy),
            error_now["OUTPUT_OVERFLOW"].eq(output.overflow),
        ]

        # -- controller, buffers, array ------------------------------------------
        for name, buffer in buffers.items():
            m.d.comb += [
                buffer.read_address.eq(getattr(controller, f"{name}_address")),
                buffer.read_enable.eq(getattr(controller, f"{name}_enable")),
                getattr(controller, f"{name}_data").eq(buffer.read_data),
            ]
        connect(m, controller.bundle, array.task)
        connect(m, controller.operand, array.operand)
        connect(m, array.result, output.results)
        m.d.comb += [
            controller.phase.eq(descriptor["PHASE"]),
            controller.dense.eq(descriptor["MODE"][0]),
            controller.stride.eq(descriptor["STRIDE"]),
            controller.kernel.eq(descriptor["KERNEL"]),
            controller.commands.eq(descriptor["COMMANDS"]),
            controller.array_idle.eq(array.idle),
        ]

        # -- registers ------------------------------------------------------------
        valid_descriptor = Signal()
        m.d.comb += valid_descriptor.eq(
            (descriptor["PHASE"] <= 2)
            & (descriptor["STRIDE"] >= 1) & (descriptor["STRIDE"] <= config.max_stride)
            & (descriptor["KERNEL"] >= 1) & (descriptor["KERNEL"] <= config.max_kernel)
            & (descriptor["COMMANDS"] >= 1) & (descriptor["COMMANDS"] <= config.program_depth))
        start = Signal()
        address, value = registers.write_address, registers.write_data
        writable = ["CONTROL", "STATUS", "ERROR", "IRQ_ENABLE", *descriptor]
        with m.Switch(address):
            with m.Case(*(REGISTERS[name] for name in writable)):
                pass
            with m.Default():    # unmapped or read-only: SLVERR, nothing written
                m.d.comb += registers.write_error.eq(1)
        with m.If(registers.write_strobe):
            with m.Switch(address):
                with m.Case(REGISTERS["CONTROL"]):
                    with m.If(value[0]):
                        with m.If(busy):
                            m.d.comb += error_now["BUSY"].eq(1)
                        with m.Elif(~valid_descriptor):
                            m.d.comb += error_now["BAD_DESCRIPTOR"].eq(1)
                        with m.Else():
                            m.d.comb += start.eq(1)
                with m.Case(REGISTERS["STATUS"]):
                    with m.If(value[STATUS_BITS["DONE"]]):
                        m.d.sync += done.eq(0)
                with m.Case(REGISTERS["IRQ_ENABLE"]):
                    m.d.sync += irq_enable.eq(value[0])
                for name, register in descriptor.items():
                    with m.Case(REGISTERS[name]):
                        with m.If(busy):
                            m.d.comb += error_now["BUSY"].eq(1)
                        with m.Else():
                            m.d.sync += register.eq(value)

        status = Signal(32)
        m.d.comb += [
            status[STATUS_BITS["RUNNING"]].eq(state == _State.COMPUTE),
            status[STATUS_BITS["READOUT"]].eq(state == _State.READOUT),
            status[STATUS_BITS["DONE"]].eq(done),
            status[STATUS_BITS["ERROR"]].eq(errors != 0),
            status[STATUS_BITS["SATURATED"]].eq(array.saturated),
        ]
        readable = {
            "STATUS": status, "ERROR": errors, "IRQ_ENABLE": irq_enable,
            **descriptor,
            "OUTPUTS": output.outputs,
            "INFO": config.pes | (config.max_row << 16),
        }
        for name, counter in counters.items():
            readable[f"{name.upper()}_LO"] = counter[:32]
            readable[f"{name.upper()}_HI"] = counter[32:]
        with m.Switch(registers.read_address):
            for name, source in readable.items():
                with m.Case(REGISTERS[name]):
                    m.d.comb += registers.read_data.eq(source)
            with m.Default():
                m.d.comb += registers.read_error.eq(1)
        m.d.sync += errors.eq(errors | Cat(error_now[name] for name in ERROR_BITS))
        # A write to ERROR clears after this cycle's new errors are in.
        with m.If(registers.write_strobe & (address == REGISTERS["ERROR"])):
            m.d.sync += errors.eq((errors & ~value[:len(ERROR_BITS)])
                                  | Cat(error_now[name] for name in ERROR_BITS))
        m.d.comb += self.irq.eq(done & irq_enable)

        # -- run sequence ------------------------------------------------------------
        m.d.comb += [
            controller.start.eq(start),
            array.clear.eq(start),
            output.clear.eq(start),
        ]
        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(start):
                    m.d.sync += [state.eq(_State.COMPUTE), done.eq(0)]
                    m.d.sync += [counter.eq(0) for counter in (counters["cycles"],
                                                               counters["stall_cycles"])]
            with m.Case(_State.COMPUTE):
                m.d.sync += counters["cycles"].eq(counters["cycles"] + 1)
                with m.If(~array.issuing):
                    m.d.sync += counters["stall_cycles"].eq(counters["stall_cycles"] + 1)
                with m.If(~controller.running):
                    m.d.comb += output.start.eq(1)
                    m.d.sync += state.eq(_State.READOUT)
            with m.Case(_State.READOUT):
                with m.If(~output.busy):
                    m.d.sync += [state.eq(_State.IDLE), done.eq(1)]
        m.d.comb += [
            counters["busy_cycles"].eq(array.busy_cycles),
            counters["issued_macs"].eq(array.issued_macs),
            counters["effectual_macs"].eq(array.effectual_macs),
        ]

        m.d.comb += [
            self.m_axis.tvalid.eq(output.readout.valid),
            self.m_axis.tdata.eq(output.readout.payload.data),
            self.m_axis.tlast.eq(output.readout.payload.last),
            output.readout.ready.eq(self.m_axis.tready),
        ]
        return m
