"""The compiler: a layer phase from operands to a schedule, and from a schedule to the
top level's program.

:mod:`~gen.compiler.network` reads a PyTorch model's layers,
:mod:`~gen.compiler.layer` checks a layer phase, :mod:`~gen.compiler.tiling` holds
the geometry of one PE task, :mod:`~gen.compiler.mapping` maps output rows onto
the PEs, :mod:`~gen.compiler.work` prices the row primitives,
:mod:`~gen.compiler.schedule` builds the one intermediate representation,
:mod:`~gen.compiler.runs` packs it into runs, :mod:`~gen.compiler.program`
packs the runs into row commands and buffer images, and
:mod:`~gen.compiler.tasks` packs PE tasks into bits.
"""
