"""AXI4-Lite and AXI4-Stream interfaces of the top level.

Signatures are written from the initiator's (master's, source's) side, as in
``amaranth.lib.stream``; the top level takes them flipped with ``In(...)``.
Port names come out as ``s_axil__awaddr``, ``s_axis__tdata`` and so on, which
cocotbext-axi finds with ``from_prefix(dut, "s_axil_")``.
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4LiteSignature", "AXIStreamSignature", "AXI4LiteTarget", "RESP_OKAY",
           "RESP_SLVERR"]

RESP_OKAY = 0b00
RESP_SLVERR = 0b10


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, initiator side: five channels with valid/ready handshakes."""

    def __init__(self, *, address_width, data_width=32):
        if not isinstance(address_width, int) or not 2 <= address_width <= 64:
            raise ValueError(f"address_width must be an int in 2..64, not {address_width!r}")
        if data_width not in (32, 64):
            raise ValueError(f"data_width must be 32 or 64, not {data_width!r}")
        self._address_width, self._data_width = address_width, data_width
        super().__init__({
            "awaddr": Out(address_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(data_width), "wstrb": Out(data_width // 8), "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(address_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(data_width), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def address_width(self):
        return self._address_width

    @property
    def data_width(self):
        return self._data_width


class AXIStreamSignature(wiring.Signature):
    """AXI4-Stream, source side: ``tdata``, ``tlast`` and optionally ``tdest``."""

    def __init__(self, *, data_width, dest_width=0):
        if not isinstance(data_width, int) or data_width < 8 or data_width % 8:
            raise ValueError(f"data_width must be a positive multiple of 8, not {data_width!r}")
        members = {"tdata": Out(data_width), "tvalid": Out(1), "tready": In(1),
                   "tlast": Out(1)}
        if dest_width:
            members["tdest"] = Out(dest_width)
        super().__init__(members)


class AXI4LiteTarget(wiring.Component):
    """AXI4-Lite target that turns transactions into single-cycle register accesses.

    A write is taken when its address and data are both valid and no response
    is pending; it shows as one cycle of ``write_strobe`` with
    ``write_address`` (a word index) and ``write_data``, and ``write_error``
    (no writable register there) is sampled in that cycle. A read shows as
    one cycle of ``read_strobe`` with ``read_address``; ``read_data`` and
    ``read_error`` are sampled in that cycle. An error is answered with
    SLVERR. Byte strobes are not supported: every register is written whole
    (a write with a partial ``wstrb`` is answered with SLVERR and ignored).

    Parameters
    ----------
    address_width : int
        Byte address bits of the bus.
    """

    def __init__(self, *, address_width):
        self._bus = AXI4LiteSignature(address_width=address_width)
        word = address_width - 2
        super().__init__({
            "bus": In(self._bus),
            "write_strobe": Out(1),
            "write_address": Out(word),
            "write_data": Out(32),
            "write_error": In(1),
            "read_strobe": Out(1),
            "read_address": Out(word),
            "read_data": In(32),
            "read_error": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        writing = Signal()
        m.d.comb += [
            writing.eq(bus.awvalid & bus.wvalid & ~bus.bvalid),
            bus.awready.eq(writing),
            bus.wready.eq(writing),
            self.write_address.eq(bus.awaddr[2:]),
            self.write_data.eq(bus.wdata),
            self.write_strobe.eq(writing & (bus.wstrb == 0b1111)),
        ]
        with m.If(writing):
            m.d.sync += bus.bvalid.eq(1)
            with m.If((bus.wstrb != 0b1111) | self.write_error):
                m.d.sync += bus.bresp.eq(RESP_SLVERR)
            with m.Else():
                m.d.sync += bus.bresp.eq(RESP_OKAY)
        with m.Elif(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        m.d.comb += [
            bus.arready.eq(~bus.rvalid),
            self.read_address.eq(bus.araddr[2:]),
            self.read_strobe.eq(bus.arvalid & ~bus.rvalid),
        ]
        with m.If(self.read_strobe):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(self.read_data)]
            with m.If(self.read_error):
                m.d.sync += bus.rresp.eq(RESP_SLVERR)
            with m.Else():
                m.d.sync += bus.rresp.eq(RESP_OKAY)
        with m.Elif(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m
