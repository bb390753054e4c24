"""Flow-control patterns and a valid/ready stream source, shared by every cocotb bench.

One convention everywhere: a pattern says per cycle whether a stream *moves*
(a source offers, a sink accepts). ``None`` always moves; a list of 0/1
repeats (1 = move); a float is the probability of moving in a cycle, drawn
from the bench's seeded ``random.Random``. The PE bench drives valid/ready
itself (:func:`send`); the accelerator bench hands :func:`pauses` (the same
pattern, inverted) to cocotbext-axi's ``set_pause_generator``.
"""

import itertools

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["moves", "pauses", "send"]


def moves(spec, rng):
    """1 per cycle in which the stream moves, else 0 (see the module's notes)."""
    if spec is None:
        return itertools.repeat(1)
    if isinstance(spec, float):
        return (int(rng.random() < spec) for _ in itertools.count())
    return itertools.cycle(int(bool(bit)) for bit in spec)


def pauses(spec, rng):
    """The pause generator of ``spec`` for cocotbext-axi (True: pause), or None for a
    stream that never pauses."""
    if spec is None:
        return None
    return (not move for move in moves(spec, rng))


async def send(dut, prefix, beats, pattern):
    """Offer ``beats`` (payload bits) on the stream ``<prefix>__valid/ready/payload`` of
    ``dut``, each when ``pattern`` (from :func:`moves`) says so, held until taken."""
    valid = getattr(dut, f"{prefix}__valid")
    ready = getattr(dut, f"{prefix}__ready")
    payload = getattr(dut, f"{prefix}__payload")
    for bits in beats:
        while not next(pattern):
            await RisingEdge(dut.clk)
        payload.value = bits
        valid.value = 1
        while True:
            await ReadOnly()           # the settled values of this cycle
            fired = int(ready.value)
            await RisingEdge(dut.clk)
            if fired:
                break
        valid.value = 0
