"""The cell library and the area model: cell areas, transistors, SRAM macros."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

__all__ = ["LIBERTY", "NAND2_CELL", "TECHNOLOGY", "CELL_TRANSISTORS", "SRAM_UM2_PER_BIT",
           "SRAM_TRANSISTORS_PER_BIT", "SRAM_MIN_WORDS", "REGISTER_FILE_PORT_AREA",
           "REGISTER_FILE_PORT_TRANSISTORS", "register_file_um2_per_bit",
           "register_file_transistors_per_bit", "cell_areas", "BlockArea"]

LIBERTY = Path(__file__).with_name("cells.lib")

#: The cell one gate equivalent is.
NAND2_CELL = "NAND2_X1"

#: Where the square micrometres of the report come from.
TECHNOLOGY = "45 nm: NanGate FreePDK45 Open Cell Library X1 cells (NAND2_X1 = 0.798 um^2)"

#: Transistors of each library cell: the static-CMOS counts Yosys' own
#: ``stat -tech cmos`` uses (kernel/cost.h), except BUF, which is two inverters
#: here (Yosys counts 1).
CELL_TRANSISTORS = {
    "INV_X1": 2, "BUF_X1": 4, "NAND2_X1": 4, "NOR2_X1": 4, "AND2_X1": 6, "OR2_X1": 6,
    "AOI21_X1": 6, "OAI21_X1": 6, "AOI22_X1": 8, "OAI22_X1": 8, "XOR2_X1": 12,
    "XNOR2_X1": 12, "MUX2_X1": 12, "DFF_X1": 16,
}

#: SRAM macro area per bit, periphery included: the reciprocal of the
#: 0.826 Mb/mm^2 that OpenRAM reports for its FreePDK45 macros (OpenRAM
#: documentation, "Results: comparison with fabricated SRAMs"), the same
#: 45 nm kit the cell areas come from. 1.21 um^2, about 1.5 NAND2 a bit.
SRAM_UM2_PER_BIT = 1.0 / 0.826

#: Transistors of a 6T bit cell; the periphery's are not counted.
SRAM_TRANSISTORS_PER_BIT = 6

#: Fewest words of a memory that becomes an SRAM macro or a register file.
SRAM_MIN_WORDS = 16

#: A register file (a memory read asynchronously, or with more than one read
#: and one write port: the PE's partial sums) is a multi-port macro: each port
#: beyond the first adds a word line and bit lines to every bit cell. OpenRAM's
#: relative bit cell sizes (documentation, "Bitcells"): its 10T cell with an
#: isolated read port (1rw + 1r, 10.9 x 13.9) is 2.42 times its 6T cell
#: (1rw, 6.8 x 9.2), so each further port costs 1.42 six-transistor cells more,
#: periphery scaled alike; and 4 transistors.
REGISTER_FILE_PORT_AREA = (10.9 * 13.9) / (6.8 * 9.2) - 1.0
REGISTER_FILE_PORT_TRANSISTORS = 4


def register_file_um2_per_bit(ports):
    """Area of a register file's bit with ``ports`` read and write ports, periphery included."""
    return SRAM_UM2_PER_BIT * (1.0 + REGISTER_FILE_PORT_AREA * (ports - 1))


def register_file_transistors_per_bit(ports):
    """Transistors of a register file's bit cell with ``ports`` read and write ports."""
    return SRAM_TRANSISTORS_PER_BIT + REGISTER_FILE_PORT_TRANSISTORS * (ports - 1)


def cell_areas(liberty=LIBERTY):
    """Area of each cell of a liberty file, by cell name (square micrometres)."""
    text = Path(liberty).read_text()
    areas = {name: float(area) for name, area in
             re.findall(r"cell\s*\(\s*(\w+)\s*\)\s*\{\s*area\s*:\s*([0-9.]+)", text)}
    if NAND2_CELL not in areas:
        raise ValueError(f"{liberty} has no {NAND2_CELL} cell to measure gate equivalents by")
    return areas


@dataclasses.dataclass(frozen=True)
class BlockArea:
    """Cells, transistors and area of a block: logic, SRAM macros and register files apart."""

    cells: int = 0
    flip_flops: int = 0
    logic_um2: float = 0.0
    logic_transistors: int = 0
    sram_bits: int = 0
    sram_macros: int = 0
    register_file_bits: int = 0
    register_files: int = 0
    register_file_um2: float = 0.0
    register_file_transistors: int = 0
    cell_counts: dict = dataclasses.field(default_factory=dict)

    @property
    def sram_um2(self):
        return self.sram_bits * SRAM_UM2_PER_BIT

    @property
    def area_um2(self):
        return self.logic_um2 + self.sram_um2 + self.register_file_um2

    @property
    def transistors(self):
        return (self.logic_transistors + self.sram_bits * SRAM_TRANSISTORS_PER_BIT
                + self.register_file_transistors)

    def nand2_eq(self, nand2_um2):
        return self.area_um2 / nand2_um2

    def __add__(self, other):
        counts = dict(self.cell_counts)
        for name, count in other.cell_counts.items():
            counts[name] = counts.get(name, 0) + count
        return BlockArea(
            cells=self.cells + other.cells, flip_flops=self.flip_flops + other.flip_flops,
            logic_um2=self.logic_um2 + other.logic_um2,
            logic_transistors=self.logic_transistors + other.logic_transistors,
            sram_bits=self.sram_bits + other.sram_bits,
            sram_macros=self.sram_macros + other.sram_macros,
            register_file_bits=self.register_file_bits + other.register_file_bits,
            register_files=self.register_files + other.register_files,
            register_file_um2=self.register_file_um2 + other.register_file_um2,
            register_file_transistors=(self.register_file_transistors
                                       + other.register_file_transistors),
            cell_counts=counts)

    def __mul__(self, times):
        return BlockArea(
            cells=self.cells * times, flip_flops=self.flip_flops * times,
            logic_um2=self.logic_um2 * times,
            logic_transistors=self.logic_transistors * times,
            sram_bits=self.sram_bits * times, sram_macros=self.sram_macros * times,
            register_file_bits=self.register_file_bits * times,
            register_files=self.register_files * times,
            register_file_um2=self.register_file_um2 * times,
            register_file_transistors=self.register_file_transistors * times,
            cell_counts={name: count * times for name, count in self.cell_counts.items()})

    def to_dict(self, nand2_um2):
        return {
            "cells": self.cells, "transistors": self.transistors,
            "nand2_eq": round(self.nand2_eq(nand2_um2), 1),
            "area_um2": round(self.area_um2, 1), "logic_um2": round(self.logic_um2, 1),
            "flip_flops": self.flip_flops, "sram_bits": self.sram_bits,
            "sram_macros": self.sram_macros, "sram_um2": round(self.sram_um2, 1),
            "register_file_bits": self.register_file_bits,
            "register_files": self.register_files,
            "register_file_um2": round(self.register_file_um2, 1),
            "cell_counts": dict(sorted(self.cell_counts.items())),
        }
