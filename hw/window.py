"""Window decoder: which MACs one streamed element makes, for any phase.

For a streamed element ``a[i]`` the positions it can touch form a window of
at most ``S`` slots (docs/ARCHITECTURE.md). Slot ``j`` means:

==== ============================== ================ ==============
phase  kernel tap ``s``               stationary index output index
==== ============================== ================ ==============
FF   ``s = (i+P) mod U + j*U``       ``s``            ``f = (i+P) div U - j``
BP   ``s = j``                       ``s``            ``i*U + j - P``
WG   ``s = j``                       ``i*U + j - P``   ``offset + s``
==== ============================== ================ ==============

FF needs only one division per element (by the stride, a small constant
case), and at most ``ceil(S/U)`` of its slots are valid: stride alignment is
part of the window, not extra work. A slot is *valid* when its tap, its
stationary index and its output index are all inside their rows (padding is
never work). The decoder is purely combinational.

It gives the element's slots as bitmaps and each slot's stationary index and
output index as a line, slot 0's index plus ``j`` times a step: the queue
carries these few fields, not an operand per slot, and the issue stage
computes the index of the one slot each lane picks and reads its operand from
the PE's stationary rows (:class:`hw.rows.RowStore`). The skipping test only
needs to know which stationary operands are nonzero (``nonzero``). Indices are
kept modulo ``2 ** index_width``: the slots that issue have them in range.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import Phase, task_layout, window_layout

__all__ = ["WindowDecoder"]


class WindowDecoder(wiring.Component):
    """Decode a streamed element's window under the current task.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    task : In(task_layout)
        The primitive the element belongs to (its ``stationary`` row is not read).
    nonzero : In(max_row)
        Bit ``k`` set where operand ``k`` of the task's stationary row is nonzero.
    value, index : In
        The streamed element.
    window : Out(window_layout)
        The element with its ``issue``, ``write`` and ``effectual`` bits and the
        lines of its stationary and output indices. ``row``, ``row_last`` and
        ``out_len`` are left 0 for the caller to fill.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "task": In(task_layout(config)),
            "nonzero": In(config.max_row),
            "value": In(signed(config.data_width)),
            "index": In(unsigned(config.index_width)),
            "window": Out(window_layout(config)),
        })

    def elaborate(self, platform):
        config = self._config
        m = Module()
        task, window = self.task, self.window
        stride = task.stride
        pad = task.pad
        # Wide enough for i*U + j - P over the whole supported range, signed.
        wide = signed(config.index_width + config.stride_width + config.kernel_width + 2)

        # FF: t = i + P = q*U + r. A constant division per supported stride.
        shifted = Signal(unsigned(config.index_width + 1))
        quotient = Signal(unsigned(config.index_width + 1))
        remainder = Signal(unsigned(config.stride_width))
        m.d.comb += shifted.eq(self.index + pad)
        with m.Switch(stride):
            for u in range(2, config.max_stride + 1):
                with m.Case(u):
                    m.d.comb += [quotient.eq(shifted // u), remainder.eq(shifted % u)]
            with m.Default():    # stride 1 (0 is refused by the host; treated as 1)
                m.d.comb += [quotient.eq(shifted), remainder.eq(0)]

        # BP and WG: i*U - P, the index slot 0 maps to.
        base = Signal(wide)
        m.d.comb += base.eq(self.index * stride - pad)

        value_nonzero = self.value != 0
        is_ff = task.phase == Phase.FF
        m.d.comb += [
            window.value.eq(self.value),
            # Slot j reads stationary operand base + j * step and adds into output
            # base + j (BP, WG) or base - j (FF).
            window.operand_base.eq(Mux(is_ff, remainder,
                                       Mux(task.phase == Phase.BP, 0, base))),
            window.operand_step.eq(Mux(is_ff, stride, 1)),
            window.target_base.eq(Mux(is_ff, quotient,
                                      Mux(task.phase == Phase.BP, base, task.offset))),
            window.target_down.eq(is_ff),
        ]
        for j in range(config.max_kernel):
            tap_in_kernel = Signal(name=f"tap_in_kernel_{j}")
            valid = Signal(name=f"valid_{j}")
            stationary_index = Signal(wide, name=f"stationary_index_{j}")
            target = Signal(wide, name=f"target_{j}")
            m.d.comb += tap_in_kernel.eq(j < task.kernel)
            moved = Signal(wide, name=f"moved_{j}")      # i*U + j - P
            m.d.comb += moved.eq(base + j)
            with m.Switch(task.phase):
                with m.Case(Phase.FF):
                    tap = Signal(wide, name=f"ff_tap_{j}")
                    m.d.comb += [
                        tap.eq(remainder + stride * j),
                        stationary_index.eq(tap),
                        target.eq(quotient - j),
                        # f = q - j must be in 0..F-1 (q >= 0 always holds for j = 0).
                        valid.eq((tap < task.kernel) & ((quotient >= j) if j else 1)
                                 & (quotient < task.out_width + j)),
                    ]
                with m.Case(Phase.BP):
                    m.d.comb += [
                        stationary_index.eq(j),
                        target.eq(moved),
                        valid.eq(tap_in_kernel & (moved >= 0) & (moved < task.in_width)),
                    ]
                with m.Default():   # WG
                    m.d.comb += [
                        stationary_index.eq(moved),
                        target.eq(task.offset + j),
                        valid.eq(tap_in_kernel & (moved >= 0) & (moved < task.in_width)),
                    ]
            # Out-of-range indices only occur in invalid slots; clamp them to 0 so
            # the selects below never read past the rows (no X in simulation).
            safe_stationary = Mux(valid, stationary_index, 0)[:config.index_width]
            safe_target = Mux(valid, target, 0)[:config.index_width]
            operand_nonzero = self.nonzero.bit_select(safe_stationary, 1)
            unmasked = Signal(name=f"unmasked_{j}")
            m.d.comb += unmasked.eq((task.phase != Phase.BP) | task.mask.bit_select(safe_target, 1))
            effectual = valid & value_nonzero & operand_nonzero & unmasked
            m.d.comb += [
                window.write[j].eq(valid & unmasked),
                window.effectual[j].eq(effectual),
                # Dense mode issues every MAC of the dense primitive (zeros
                # included); sparse mode only the effectual ones. A dense-only
                # build has no skipping: every valid MAC is issued.
                window.issue[j].eq(Mux(task.dense, valid, effectual) if config.skipping
                                   else valid),
            ]
        return m
