"""``report.md`` of a synthesis run, and writing the report."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..blocks import BLOCKS

__all__ = ["report_markdown", "write_report"]

def _titles():
    """Report title of each synthesis key (from :data:`gen.blocks.BLOCKS`)."""
    titles = {}
    for entry in BLOCKS:
        titles[entry.synth] = entry.title
        titles[entry.synth + "_dense"] = entry.title.replace("(sparse-aware)", "(dense-only)") \
            if "sparse-aware" in entry.title else f"{entry.title}, dense-only array"
    titles["array_purpose_dense"] = "PE array around purpose-built dense PEs"
    titles["top_purpose_dense"] = "accelerator (top level) around purpose-built dense PEs"
    return titles


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
        "array and controller. Area is logic cells plus SRAM macros plus register files.",
        "",
        "| block | cells | flip-flops | transistors | logic NAND2 eq | SRAM bits "
        "| register file bits | NAND2 eq | area (um^2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    nand2 = model["nand2_um2"]
    for name, block in report["blocks"].items():
        lines.append(
            f"| {_titles()[name]} | {_number(block['cells'])} | "
            f"{_number(block['flip_flops'])} | {_number(block['transistors'])} | "
            f"{_number(block['logic_um2'] / nand2)} | {_number(block['sram_bits'])} | "
            f"{_number(block['register_file_bits'])} | "
            f"{_number(block['nand2_eq'])} | {_number(block['area_um2'])} |")
    lines += [
        "",
        "## What sparsity costs in area",
        "",
        "The dense-only build (`skipping=False`) has no zero-skipping logic: its PE issues "
        "every valid MAC and its array hands every PE every primitive. The purpose-built "
        "dense PE (`hw/dense_pe.py`) is what a dense accelerator would use: values without "
        "indices, no element queue, no issue picker (a counter steps through the window), "
        "the same window geometry and partial-sum banks; its accelerator has the same "
        "buffers, controller and dense-only array around it.",
        "",
        "| | sparse-aware (um^2) | dense-only build (um^2) | sparse / dense-only "
        "| purpose-built dense (um^2) | sparse / purpose-built dense |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    blocks = report["blocks"]
    for label, sparse, dense, purpose, key in (
            ("PE", "pe", "pe_dense", "dense_pe", "pe_area"),
            ("PE array", "array", "array_dense", "array_purpose_dense", "array_area"),
            ("accelerator", "top", "top_dense", "top_purpose_dense", "accelerator_area")):
        lines.append(f"| {label} | {_number(blocks[sparse]['area_um2'])} | "
                     f"{_number(blocks[dense]['area_um2'])} | "
                     f"{report['sparse_over_dense_' + key]:.3f} | "
                     f"{_number(blocks[purpose]['area_um2'])} | "
                     f"{report['sparse_over_purpose_dense_' + key]:.3f} |")
    lines += ["", "## Memories kept as macros", "",
              "| block | memory | kind | ports (read/write) | copies | words | width | bits |",
              "|---|---|---|---:|---:|---:|---:|---:|"]
    for block, memories in report["memories"].items():
        if block.endswith("_dense") or block == "dense_pe":
            continue    # the same memories as the sparse-aware block
        # One line for the memories of each PE's copy of a block (queue_0, queue_1, ...).
        groups = {}
        for memory in memories:
            key = (re.sub(r"_\d+", "_N", memory["name"]), memory["kind"],
                   f"{memory['read_ports']}/{memory['write_ports']}", memory["words"],
                   memory["width"])
            groups[key] = groups.get(key, 0) + 1
        for (name, kind, ports, words, width), copies in sorted(groups.items()):
            lines.append(f"| {block} | {name} | {kind} | {ports} | {copies} | {words} | "
                         f"{width} | {_number(copies * words * width)} |")
    if report["fpga"] is not None:
        lines += ["", f"## FPGA view: {report['fpga']['device']}", "",
                  "Each block synthesized on its own like the ASIC view, the PEs counted "
                  "as many times as the array holds them.", "",
                  "| block | LUT4 | flip-flops | DSP (MULT18X18D) | block RAM (DP16KD) "
                  "| LUT RAM (DPR16X4) | carry (CCU2C) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, fpga in report["fpga"]["blocks"].items():
            lines.append(
                f"| {_titles()[name]} | {_number(fpga['luts'])} | "
                f"{_number(fpga['flip_flops'])} | {_number(fpga['dsps'])} | "
                f"{_number(fpga['block_rams'])} | {_number(fpga['lut_rams'])} | "
                f"{_number(fpga['carry_cells'])} |")
    lines += [
        "",
        "## Model",
        "",
        f"- Cells: `gen/synth/{model['liberty']}`, areas of {model['technology']}; "
        f"NAND2 eq = area / {model['nand2_um2']} um^2.",
        "- Transistors: static-CMOS counts per cell (Yosys `stat -tech cmos`, kernel/cost.h; "
        "BUF as two inverters): "
        + ", ".join(f"{cell} {count}" for cell, count in model["cell_transistors"].items())
        + f"; SRAM {model['sram_transistors_per_bit']} per bit (bit cells only).",
        f"- SRAM: memories with a write port and at least {model['sram_min_words']} words are "
        f"macros of {model['sram_um2_per_bit']} um^2 a bit, periphery included (OpenRAM's "
        "0.826 Mb/mm^2 in FreePDK45); smaller memories and ROMs are built from cells.",
        "- Register files: such memories read in the cycle they are addressed, or with more "
        "than one read or write port, are multi-port macros: a bit is the SRAM bit times "
        f"(1 + {model['register_file_port_area']} x (ports - 1)) and has "
        f"{model['register_file_port_transistors']} transistors more per further port "
        "(OpenRAM's 10T 1rw+1r bit cell is 2.42 times its 6T cell).",
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
