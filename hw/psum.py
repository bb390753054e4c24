"""Partial-sum banks of a PE: accumulate products into output rows, drain finished rows.

Shared by the sparse-aware PE (:class:`hw.pe.SparsePE`) and the purpose-built dense
PE of the area baseline (:class:`hw.dense_pe.DensePE`): both issue MACs into the
same banks, so the cost of sparsity is measured with equal storage.
"""

from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layouts import result_layout

__all__ = ["PsumBanks", "next_bank"]


def next_bank(bank, banks):
    """The bank after ``bank`` of ``banks``: rows take the banks in turn, and drain in
    the same order."""
    return Mux(bank == banks - 1, 0, bank + 1)


class PsumBanks(wiring.Component):
    """``psum_banks`` banks of ``max_row`` exact sums, saturating at ``acc_width``.

    A row accumulates into the issue bank; when its end is signalled the bank is
    full and drains through ``result``, one output per cycle, in bank order,
    while the next rows accumulate into the other banks.

    All banks are one register file (entry ``bank * max_row + output``): an
    ``amaranth.lib.memory.Memory`` with an asynchronous read and a write port
    per lane and a read port for the drain, so that it synthesizes as a memory,
    not as a flip-flop array with per-entry logic. An entry read is the value
    written up to the last clock edge, as a register's would be. Lanes write
    distinct entries (the slots of one element target distinct outputs). A
    memory keeps its contents through a reset, so a flip-flop per entry, reset
    to 0, says whether it holds a sum of the current row: an entry without one
    reads as 0, a write sets it, and the drain clears it as the entry leaves
    (it drains only a full bank, which no lane writes), leaving the bank clean
    for its next row.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    mac_valid : In(lanes)
        Lane ``l`` adds ``mac_product[l]`` into output ``mac_target[l]`` of bank
        ``mac_bank`` this cycle.
    mac_target, mac_product, mac_bank : In
    row_end : In(1)
        The row in bank ``row_end_bank`` is complete, ``row_end_len`` outputs
        long (after this cycle's MACs).
    row_end_bank, row_end_len : In
    full : Out(psum_banks)
        Banks holding a complete row not yet drained: a row must not start in one.
    result : Out(stream.Signature(result_layout))
        The outputs of complete rows, ``last`` on each row's final one.
    saturating : Out(1)
        A sum of this cycle was clipped to the ``acc_width`` range.
    busy : Out(1)
        A row is complete or draining.
    """

    def __init__(self, config):
        self._config = config
        lanes, banks = config.lanes, config.psum_banks
        index = unsigned(config.index_width)
        super().__init__({
            "mac_valid": In(lanes),
            "mac_target": In(data.ArrayLayout(index, lanes)),
            "mac_product": In(data.ArrayLayout(signed(2 * config.data_width), lanes)),
            "mac_bank": In(range(banks)),
            "row_end": In(1),
            "row_end_bank": In(range(banks)),
            "row_end_len": In(index),
            "full": Out(banks),
            "result": Out(stream.Signature(result_layout(config))),
            "saturating": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()
        banks, max_row = config.psum_banks, config.max_row
        entries = banks * max_row
        m.submodules.psum = psum = Memory(shape=signed(config.acc_width), depth=entries,
                                          init=[])
        holds = Signal(entries)
        bank_len = Array(Signal(unsigned(config.index_width), name=f"bank_len_{b}")
                         for b in range(banks))
        clipped = []
        for lane in range(config.lanes):
            address = self.mac_bank * max_row + self.mac_target[lane]
            read = psum.read_port(domain="comb")
            write = psum.write_port()
            total = Signal(signed(config.acc_width + 1), name=f"sum_{lane}")
            clip = Signal(name=f"clipped_{lane}")
            m.d.comb += [read.addr.eq(address), write.addr.eq(address),
                         total.eq(Mux(holds.bit_select(address, 1), read.data, 0)
                                  + self.mac_product[lane])]
            with m.If(self.mac_valid[lane]):
                m.d.comb += write.en.eq(1)
                m.d.sync += holds.bit_select(address, 1).eq(1)
                with m.If(total > config.acc_max):
                    m.d.comb += [write.data.eq(config.acc_max), clip.eq(1)]
                with m.Elif(total < config.acc_min):
                    m.d.comb += [write.data.eq(config.acc_min), clip.eq(1)]
                with m.Else():
                    m.d.comb += write.data.eq(total)
            clipped.append(clip)
        m.d.comb += self.saturating.eq(Cat(clipped).any())
        with m.If(self.row_end):
            m.d.sync += [self.full.bit_select(self.row_end_bank, 1).eq(1),
                         bank_len[self.row_end_bank].eq(self.row_end_len)]

        # Rows finish in bank order, so they drain in that order.
        draining = Signal()
        drain_bank = Signal(range(banks))
        drain_index = Signal(unsigned(config.index_width))
        drain_read = psum.read_port(domain="comb")
        drain_address = Signal(range(entries))
        drain_last = Signal()
        m.d.comb += [
            drain_last.eq(drain_index == bank_len[drain_bank] - 1),
            drain_address.eq(drain_bank * max_row + drain_index),
            drain_read.addr.eq(drain_address),
            self.result.valid.eq(draining),
            self.result.payload.value.eq(
                Mux(holds.bit_select(drain_address, 1), drain_read.data, 0)),
            self.result.payload.last.eq(drain_last),
            self.busy.eq((self.full != 0) | draining),
        ]
        with m.If(~draining & self.full.bit_select(drain_bank, 1)):
            m.d.sync += [draining.eq(1), drain_index.eq(0)]
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += [holds.bit_select(drain_address, 1).eq(0),
                         drain_index.eq(drain_index + 1)]
            with m.If(drain_last):
                m.d.sync += [draining.eq(0),
                             drain_bank.eq(next_bank(drain_bank, banks)),
                             self.full.bit_select(drain_bank, 1).eq(0)]
        return m
