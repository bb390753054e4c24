"""Synthesis of every block of a config, the totals over the hierarchy, the report as data."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

from hw.config import AccelConfig
from hw.top import check_buildable

from ..blocks import VERILOG_BLOCKS

from .cells import (CELL_TRANSISTORS, LIBERTY, NAND2_CELL, REGISTER_FILE_PORT_AREA,
                    REGISTER_FILE_PORT_TRANSISTORS, SRAM_MIN_WORDS, SRAM_TRANSISTORS_PER_BIT,
                    SRAM_UM2_PER_BIT, TECHNOLOGY, cell_areas)
from .yosys import DENSE, block_spec, synthesize_block, synthesize_fpga_block

__all__ = ["BLOCK_NAMES", "FPGA_BLOCK_NAMES", "PURPOSE_DENSE_NAMES", "synthesize",
           "hierarchy_totals", "purpose_dense_totals"]

#: Synthesis keys, in report order: each block, the PE and the array dense-only, and
#: the purpose-built dense PE.
BLOCK_NAMES = ("pe", "pe_dense", "array", "array_dense", "controller", "top", "dense_pe")

#: Blocks of an accelerator built around the purpose-built dense PE, added up from
#: the others (:func:`purpose_dense_totals`).
PURPOSE_DENSE_NAMES = ("array_purpose_dense", "top_purpose_dense")

#: Blocks of the FPGA view (the sparse-aware build only).
FPGA_BLOCK_NAMES = ("pe", "array", "controller", "top")


def _children(name, config):
    """``{child key: [instance names]}`` of synthesis key ``name``'s total; a dense-only
    block holds the dense-only build of every child that has one (``top_dense`` is the
    top level around the dense-only array: ``skipping`` changes only the PE and the
    array)."""
    _, entry = block_spec(name, config)
    dense = name.endswith(DENSE)
    children = {}
    for module, instances in entry.instances(config).items():
        key = VERILOG_BLOCKS[module].synth
        children[key + DENSE if dense and key + DENSE in BLOCK_NAMES else key] = instances
    return children


def hierarchy_totals(own, boxes, config):
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


def purpose_dense_totals(totals, own, config):
    """The array and the accelerator built around the purpose-built dense PE: the same
    buffers, controller and array around ``pes`` dense PEs (the dense-only array's own
    logic: queues, routing, counters)."""
    array = own["array_dense"] + totals["dense_pe"] * config.pes
    return {"array_purpose_dense": array,
            "top_purpose_dense": own["top"] + totals["controller"] + array}


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
    check_buildable(config)     # the top level is synthesized too
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
    totals = hierarchy_totals(own, boxes, config)
    return {"device": "Lattice ECP5 (synth_ecp5)",
            "blocks": {name: {**totals[name], "own": own[name]} for name in FPGA_BLOCK_NAMES}}


def _report(config, results, fpga, seconds):
    nand2_um2 = cell_areas()[NAND2_CELL]
    own = {name: results[name]["area"] for name in BLOCK_NAMES}
    own["top_dense"] = own["top"]
    totals = hierarchy_totals(own, {name: results[name]["boxes"] for name in BLOCK_NAMES}, config)
    blocks = {name: {**total.to_dict(nand2_um2), "own": own[name].to_dict(nand2_um2)}
              for name, total in totals.items()}
    purpose = purpose_dense_totals(totals, own, config)
    totals.update(purpose)
    blocks.update({name: total.to_dict(nand2_um2) for name, total in purpose.items()})
    memories = {name: [{"name": memory.name, "kind": memory.kind, "words": memory.words,
                        "width": memory.width, "read_ports": memory.read_ports,
                        "write_ports": memory.write_ports}
                       for memory in results[name]["memories"]]
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
            "register_file_port_area": round(REGISTER_FILE_PORT_AREA, 4),
            "register_file_port_transistors": REGISTER_FILE_PORT_TRANSISTORS,
        },
        "blocks": blocks,
        "memories": memories,
        "sram_bits": totals["top"].sram_bits,
        "register_file_bits": totals["top"].register_file_bits,
        "sparse_over_dense_pe_area": ratio("pe", "pe_dense"),
        "sparse_over_dense_array_area": ratio("array", "array_dense"),
        "sparse_over_dense_accelerator_area": ratio("top", "top_dense"),
        "sparse_over_purpose_dense_pe_area": ratio("pe", "dense_pe"),
        "sparse_over_purpose_dense_array_area": ratio("array", "array_purpose_dense"),
        "sparse_over_purpose_dense_accelerator_area": ratio("top", "top_purpose_dense"),
        "fpga": _fpga_report(config, results) if fpga else None,
        "seconds": {"total": round(seconds, 1),
                    **{name: {key: round(value, 1) for key, value in result["seconds"].items()}
                       for name, result in results.items()}},
    }
