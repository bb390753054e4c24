"""Stream-protocol checks for ``amaranth.sim``: every stream and queue of a design, every cycle.

:class:`ProtocolMonitor` walks an elaborated design (a
:class:`~amaranth.hdl.Fragment`) and watches, in every clock cycle:

- every ``amaranth.lib.stream`` port of every component in it (the PE's
  task, operand and result streams, its element queue's output, the array's
  and the controller's streams): once ``valid`` is up it stays up until
  ``ready``, and the payload does not change while ``valid`` is up and
  ``ready`` is not (the rules of ``amaranth.lib.stream``, as of AXI4-Stream);
- every FIFO (``amaranth.lib.fifo``: the array's task, beat and routing
  queues, the controller's operand ranges): nothing is written when it is
  full (their writers do not retry: the entry would be lost), its read side
  keeps the stream rules, and what leaves it is exactly what entered, in
  order (nothing lost, duplicated or reordered);
- every :class:`hw.queue.ElementQueue` (the PE's element queue): a push it
  is not ready for is offered again unchanged, and pops equal pushes in
  order.

A violation fails the simulation at once with the cycle, the block's path
in the hierarchy and both values; :meth:`ProtocolMonitor.finish` checks at
the end that every queue gave back everything it took.
"""

from amaranth.hdl import Fragment, Value
from amaranth.lib import fifo, stream, wiring

from hw.queue import ElementQueue

__all__ = ["ProtocolMonitor", "ProtocolViolation"]


class ProtocolViolation(AssertionError):
    """A stream or queue broke its handshake rules."""


class _Stream:
    def __init__(self, path, interface):
        self.path = path
        self.signals = [Value.cast(interface.valid), Value.cast(interface.ready),
                        Value.cast(interface.payload)]
        self.held = None            # (payload) offered and not taken in the last cycle
        self.transfers = 0

    def check(self, cycle, valid, ready, payload):
        if self.held is not None:
            if not valid:
                raise ProtocolViolation(f"cycle {cycle}: {self.path}: valid dropped before "
                                        f"ready (payload {self.held:#x} not taken)")
            if payload != self.held:
                raise ProtocolViolation(f"cycle {cycle}: {self.path}: payload changed from "
                                        f"{self.held:#x} to {payload:#x} while valid and not "
                                        f"ready")
        self.held = payload if valid and not ready else None
        self.transfers += bool(valid and ready)


class _Fifo:
    """A FIFO's write and read sides: in order, nothing lost, nothing made up."""

    def __init__(self, path, queue):
        self.path = path
        self.signals = [Value.cast(queue.w_en), Value.cast(queue.w_rdy),
                        Value.cast(queue.w_data), Value.cast(queue.r_en),
                        Value.cast(queue.r_rdy), Value.cast(queue.r_data)]
        self.inside = []
        self.read_side = _Stream(f"{path} (read side)", queue.r_stream)
        self.transfers = 0

    def check(self, cycle, w_en, w_rdy, w_data, r_en, r_rdy, r_data):
        if w_en and not w_rdy:
            raise ProtocolViolation(f"cycle {cycle}: {self.path}: write of {w_data:#x} while "
                                    f"full (the entry is lost)")
        self.read_side.check(cycle, r_rdy, r_en, r_data)
        if r_en and r_rdy:
            if not self.inside:
                raise ProtocolViolation(f"cycle {cycle}: {self.path}: read {r_data:#x} from "
                                        f"a queue that holds nothing written")
            wanted = self.inside.pop(0)
            if r_data != wanted:
                raise ProtocolViolation(f"cycle {cycle}: {self.path}: read {r_data:#x}, the "
                                        f"oldest entry written is {wanted:#x}")
            self.transfers += 1
        if w_en and w_rdy:
            self.inside.append(w_data)


class _ElementQueue:
    def __init__(self, path, queue):
        self.path = path
        self.width = len(queue.push_valid)
        self.signals = [Value.cast(queue.push_valid), Value.cast(queue.push_ready),
                        *(Value.cast(queue.push_data[port]) for port in range(self.width)),
                        Value.cast(queue.pop.valid), Value.cast(queue.pop.ready),
                        Value.cast(queue.pop.payload)]
        # A push the queue is not ready for must be offered again, unchanged.
        self.push_side = _Stream(f"{path}.push", queue.pop)
        self.pop_side = _Stream(f"{path}.pop", queue.pop)
        self.inside = []
        self.transfers = 0

    def check(self, cycle, push_valid, push_ready, *rest):
        pushed, (pop_valid, pop_ready, popped) = rest[:self.width], rest[self.width:]
        offered = tuple(data for port, data in enumerate(pushed) if push_valid >> port & 1)
        self.push_side.check(cycle, bool(push_valid), push_ready,
                             hash((push_valid, offered)) & ((1 << 64) - 1))
        self.pop_side.check(cycle, pop_valid, pop_ready, popped)
        if pop_valid and pop_ready:
            if not self.inside or self.inside[0] != popped:
                raise ProtocolViolation(f"cycle {cycle}: {self.path}: popped {popped:#x}, the "
                                        f"oldest entry pushed is "
                                        f"{self.inside[0] if self.inside else None}")
            self.inside.pop(0)
            self.transfers += 1
        if push_ready:
            self.inside += offered


class ProtocolMonitor:
    """Watches every stream and queue of ``fragment`` (from :meth:`Fragment.get`).

    Simulate the same fragment (``Simulator(monitor.fragment)``) and add
    :meth:`process` with ``sim.add_process``. ``watched`` lists the paths.
    """

    def __init__(self, design):
        self.fragment = Fragment.get(design, None)
        self.checkers = []
        self._seen = set()
        self._walk(self.fragment, "top")
        self.cycles = 0

    def _walk(self, fragment, path):
        for origin in fragment.origins or ():
            self._add(origin, path)
        for number, (child, name, _) in enumerate(fragment.subfragments):
            self._walk(child, f"{path}.{name or number}")

    def _add(self, block, path):
        if id(block) in self._seen:
            return
        self._seen.add(id(block))
        if isinstance(block, (fifo.SyncFIFOBuffered, fifo.SyncFIFO)):
            self.checkers.append(_Fifo(path, block))
        elif isinstance(block, ElementQueue):
            self.checkers.append(_ElementQueue(path, block))
        if isinstance(block, wiring.Component):
            for name, member in block.signature.members.items():
                if member.is_signature and isinstance(member.signature, stream.Signature):
                    self.checkers.append(_Stream(f"{path}.{name}", getattr(block, name)))

    @property
    def watched(self):
        return [checker.path for checker in self.checkers]

    def transfers(self, path):
        """Transfers counted so far on the stream or queue at ``path``."""
        return next(c.transfers for c in self.checkers if c.path == path)

    async def process(self, ctx):
        signals = [signal for checker in self.checkers for signal in checker.signals]
        spans, start = [], 0
        for checker in self.checkers:
            spans.append((checker, start, start + len(checker.signals)))
            start += len(checker.signals)
        async for _, _, *values in ctx.tick().sample(*signals):
            for checker, first, stop in spans:
                checker.check(self.cycles, *values[first:stop])
            self.cycles += 1

    def finish(self):
        """Every queue gave back what it took (call when the design is idle)."""
        for checker in self.checkers:
            left = getattr(checker, "inside", [])
            if left:
                raise ProtocolViolation(f"{checker.path}: {len(left)} entries written and never "
                                        f"read (first {left[0]:#x})")
