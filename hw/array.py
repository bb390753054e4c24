"""PE array: one broadcast streamed row, stationary rows held in each PE, decoupling queues.

The PEs of the array compute output rows that share their streamed rows
(docs/ARCHITECTURE.md, reuse): in FF, rows ``y[n, k, e]`` of different output
channels ``k`` read the same input rows; in BP, rows ``dx[n, c, h]`` of
different input channels ``c`` read the same ``dy`` rows; in WG, rows
``dw[k, c, r]`` of different ``c`` read the same ``dy`` rows. So every
streamed beat is read once and broadcast to all PEs, while each PE keeps its
own stationary rows in its scratchpad (:class:`hw.scratchpad.Scratchpad`),
loaded a line per PE per *load bundle*; a primitive's *bundle* (one task for
all PEs) gives each PE the line its row starts at and its BP mask.

Sparse PEs that share a broadcast finish at different times (their windows
hold different numbers of effectual MACs). Each PE therefore takes its tasks
and beats from its own queues of ``array_queue_depth`` entries; the broadcast
advances when every queue has room, so a PE waits for the slowest only when
it is a whole queue ahead. Partial sums accumulate over time inside each PE.

A PE with no work in a primitive (``works`` clear: in sparse mode its
stationary row, or in BP its output-mask row, is all zero; in both modes it
has no output row of its own in the group, or the primitive is not in its
row) does not get the primitive unless it closes the row, and then as an
empty task without its beats: it spends no accept cycle on it and runs
ahead on its own work, and the dense baseline does not spend such PEs on
rows of zeros either. The host decides it (``gen.compiler.schedule.works_in``)
from the rows it places in the scratchpads.
Results leave through one stream whose beats carry a lane per PE: all PEs
drain in parallel, as into a banked output buffer; a beat that waits for
``ready`` keeps its lanes, and a PE whose output comes meanwhile joins the
next beat.
"""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import array_result_layout, bundle_layout, element_layout, task_layout
from .pe import SparsePE

__all__ = ["PEArray", "QUEUE_LATENCY"]

# Cycles from a write into one of the array's queues (task, beat and routing
# queues, amaranth.lib.fifo.SyncFIFOBuffered) to the entry at its read port.
QUEUE_LATENCY = 2


class PEArray(wiring.Component):
    """``pe_rows x pe_cols`` sparse PEs behind one broadcast.

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    task : In(stream.Signature(bundle_layout))
        One bundle per row primitive: shared geometry, a stationary row and a
        mask per PE.
    operand : In(stream.Signature(element_layout))
        The streamed beats of each non-empty primitive, broadcast to all PEs.
    result : Out(stream.Signature(array_result_layout))
        A lane per PE with its own valid bit; a PE's rows in order.
    busy_cycles : Out
        Cycles in which at least one PE issued a MAC.
    issued_macs, effectual_macs : Out
        Sums over the PEs.
    saturated : Out
        Any PE saturated.
    idle : Out
        All PEs and queues are empty.
    issuing : Out
        At least one PE issues a MAC in this cycle.
    clear : In
        Zero the counters and the saturation flag (at the start of a run).
    """

    def __init__(self, config):
        self._config = config
        counter = config.counter_width
        super().__init__({
            "task": In(stream.Signature(bundle_layout(config))),
            "operand": In(stream.Signature(element_layout(config))),
            "result": Out(stream.Signature(array_result_layout(config))),
            "busy_cycles": Out(counter),
            "issued_macs": Out(counter),
            "effectual_macs": Out(counter),
            "saturated": Out(1),
            "idle": Out(1),
            "issuing": Out(1),
            "clear": In(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        pes = config.pes
        depth = config.array_queue_depth
        m = Module()
        task_shape = task_layout(config)
        beat_shape = element_layout(config)

        # A PE that works on a primitive takes it with its beats; one that does not
        # (the host's zero test, or no row of its own: ``works``) only takes a
        # primitive that closes a row, as an empty task, and spends no accept cycle
        # on its beats. A PE that loads a line takes the entry too (a load alone goes
        # only to the PEs it names). The beats of a primitive
        # follow its bundle: a routing queue holds, per non-empty primitive, which
        # PEs take its beats.
        bundle = self.task.payload
        works = Signal(pes)
        takes = Signal(pes)
        m.d.comb += [works.eq(bundle.works),
                     takes.eq(Mux(bundle.task.load_only, bundle.loads,
                                  Mux(bundle.task.row_last, (1 << pes) - 1, works)
                                  | bundle.loads))]
        m.submodules.routing = routing = fifo.SyncFIFOBuffered(width=pes, depth=depth)
        m.d.comb += routing.w_data.eq(works)

        task_queues, beat_queues, units = [], [], []
        for number in range(pes):
            unit = SparsePE(config)
            task_queue = fifo.SyncFIFOBuffered(width=task_shape.size, depth=depth)
            beat_queue = fifo.SyncFIFOBuffered(width=beat_shape.size, depth=depth)
            m.submodules[f"pe_{number}"] = unit
            m.submodules[f"task_queue_{number}"] = task_queue
            m.submodules[f"beat_queue_{number}"] = beat_queue
            units.append(unit)
            task_queues.append(task_queue)
            beat_queues.append(beat_queue)

            # This PE's task: the shared fields with its own mask (and line to load).
            own_task = Signal(task_shape, name=f"task_{number}")
            m.d.comb += [
                own_task.eq(self.task.payload.task),
                own_task.mask.eq(self.task.payload.mask[number]),
                own_task.line.eq(self.task.payload.line[number]),
                own_task.load.eq(bundle.loads[number]),
                own_task.empty.eq(bundle.task.empty | ~works[number]),
                task_queue.w_data.eq(own_task),
                task_queue.w_en.eq(self.task.valid & self.task.ready & takes[number]),
                beat_queue.w_data.eq(self.operand.payload),
                beat_queue.w_en.eq(self.operand.valid & self.operand.ready
                                   & routing.r_data[number]),
                # Queue -> PE.
                unit.task.payload.eq(task_queue.r_data),
                unit.task.valid.eq(task_queue.r_rdy),
                task_queue.r_en.eq(unit.task.ready),
                unit.operand.payload.eq(beat_queue.r_data),
                unit.operand.valid.eq(beat_queue.r_rdy),
                beat_queue.r_en.eq(unit.operand.ready),
            ]

        # The broadcast advances only when every PE that takes it has room.
        m.d.comb += [
            self.task.ready.eq(Cat(q.w_rdy | ~takes[n] for n, q in enumerate(task_queues)).all()
                               & routing.w_rdy),
            routing.w_en.eq(self.task.valid & self.task.ready & ~bundle.task.empty
                            & ~bundle.task.load_only),
            self.operand.ready.eq(routing.r_rdy & Cat(q.w_rdy | ~routing.r_data[n]
                                                      for n, q in enumerate(beat_queues)).all()),
            routing.r_en.eq(self.operand.valid & self.operand.ready & self.operand.payload.last),
        ]

        # All PEs drain in parallel: a beat carries every PE's next output. A
        # beat on offer keeps its lanes until it is taken (the payload of a
        # stream is stable while valid and not ready): a PE whose output comes
        # while the beat waits joins the next one.
        waiting = Signal()                 # the beat on offer was not taken last cycle
        waiting_lanes = Signal(pes)        # and these lanes were in it
        in_beat = Signal(pes)
        for number, unit in enumerate(units):
            lane = self.result.payload.lanes[number]
            m.d.comb += [
                in_beat[number].eq(unit.result.valid & (~waiting | waiting_lanes[number])),
                # Lanes outside the beat carry zeros: the whole payload is stable.
                lane.valid.eq(in_beat[number]),
                lane.value.eq(Mux(in_beat[number], unit.result.payload.value, 0)),
                lane.last.eq(in_beat[number] & unit.result.payload.last),
                unit.result.ready.eq(self.result.ready & in_beat[number]),
            ]
        m.d.comb += self.result.valid.eq(in_beat.any())
        m.d.sync += [waiting.eq(self.result.valid & ~self.result.ready),
                     waiting_lanes.eq(in_beat)]

        # Counters: sums over the PEs, registered once more.
        m.d.comb += [unit.clear.eq(self.clear) for unit in units]
        m.d.comb += self.issuing.eq(Cat(u.issuing for u in units).any())
        with m.If(self.clear):
            m.d.sync += self.busy_cycles.eq(0)
        with m.Elif(self.issuing):
            m.d.sync += self.busy_cycles.eq(self.busy_cycles + 1)
        m.d.sync += [
            self.issued_macs.eq(sum(u.issued_macs for u in units)),
            self.effectual_macs.eq(sum(u.effectual_macs for u in units)),
            self.saturated.eq(Cat(u.saturated for u in units).any()),
        ]
        # A queue's level counts entries still in flight to its read port.
        m.d.comb += self.idle.eq(Cat(u.idle for u in units).all()
                                 & Cat(q.level == 0
                                       for q in task_queues + beat_queues + [routing]).all())
        return m
