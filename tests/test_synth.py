"""Yosys synthesis and the area report (gen/synth/), on the small preset."""

import json

import pytest

from gen.__main__ import main as gen_main
from gen.synth import (BLOCK_NAMES, CELL_TRANSISTORS, LIBERTY, NAND2_CELL, SRAM_MIN_WORDS,
                       SRAM_TRANSISTORS_PER_BIT, SRAM_UM2_PER_BIT, cell_areas, synthesize,
                       write_report)
from gen.model.energy import on_chip_storage
from gen.synth.cells import register_file_transistors_per_bit
from gen.synth.run import PURPOSE_DENSE_NAMES
from gen.synth.yosys import _memories, synthesize_block
from hw.buffer import OutputBuffer
from hw.config import PRESETS
from hw.top import Accelerator

SMALL = PRESETS["small"]


def test_every_library_cell_has_an_area_and_a_transistor_count():
    areas = cell_areas()
    assert set(areas) == set(CELL_TRANSISTORS)
    assert areas[NAND2_CELL] == 0.798
    assert areas["INV_X1"] < areas[NAND2_CELL] < areas["XOR2_X1"] < areas["DFF_X1"]


def test_liberty_without_nand2_is_refused(tmp_path):
    liberty = tmp_path / "cells.lib"
    liberty.write_text(LIBERTY.read_text().replace("NAND2_X1", "NAND2_X2"))
    with pytest.raises(ValueError, match="has no NAND2_X1 cell"):
        cell_areas(liberty)


def test_memory_dump_parsing():
    dump = """
module \\top
  cell $mem_v2 $auto$mem.cc:1
    parameter \\ABITS 6
    parameter \\MEMID "\\\\queue.storage"
    parameter \\RD_CLK_ENABLE 1'1
    parameter \\RD_PORTS 1
    parameter \\SIZE 63
    parameter \\WIDTH 45
    parameter \\WR_PORTS 1
    connect \\CLK 1'0
  end
  cell $mem_v2 $auto$mem.cc:2
    parameter \\MEMID "\\\\psum"
    parameter \\RD_CLK_ENABLE 2'00
    parameter \\RD_PORTS 2
    parameter \\SIZE 96
    parameter \\WIDTH 48
    parameter \\WR_PORTS 2
  end
  cell $dff $x
    parameter \\WIDTH 3
  end
end
"""
    queue, psum = _memories(dump)
    assert queue == ("queue.storage", 63, 45, 1, 1, False) and queue.kind == "sram"
    assert psum == ("psum", 96, 48, 2, 2, True) and psum.kind == "register file"
    assert psum.bits == 96 * 48


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(config="small"), TypeError, "config must be an AccelConfig, not 'small'"),
    (dict(jobs=0), ValueError, "jobs must be at least 1, not 0"),
    (dict(jobs=1.5), TypeError, "jobs must be an int, not 1.5"),
    (dict(fpga="yes"), TypeError, "fpga must be a bool, not 'yes'"),
])
def test_synthesize_checks_its_arguments(tmp_path, kwargs, error, message):
    arguments = dict(config=SMALL, out_dir=tmp_path, jobs=1, fpga=False)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        synthesize(**arguments)


def test_unknown_block_is_refused(tmp_path):
    with pytest.raises(ValueError, match="block must be one of pe, pe_dense, .*not 'gpu'"):
        synthesize_block("gpu", SMALL, tmp_path)


def test_synth_command_refuses_bad_jobs(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gen_main(["synth", "--config", "small", "--out", str(tmp_path), "--jobs", "0"])
    assert "must be a positive integer, not '0'" in capsys.readouterr().err


def test_small_preset_report(tmp_path):
    """The whole report of the small preset, ASIC and FPGA views, synthesized under
    /tmp (YoWASP's own temporary folder shadows it unless the work folder is
    mounted explicitly). One test, so that one pytest worker synthesizes once."""
    report = synthesize(SMALL, tmp_path, jobs=2, fpga=True, progress=lambda line: None)
    write_report(report, tmp_path, "pytest")
    for check in (_check_report_files_hold_every_block, _check_figures_follow_from_the_cell_counts,
                  _check_hierarchy_totals, _check_sram_bits_are_the_buffers_the_hardware_declares,
                  _check_skipping_logic_costs_area, _check_purpose_built_dense_baseline,
                  _check_fpga_view):
        check(report, tmp_path)


def _check_report_files_hold_every_block(report, out):
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    for name in (*BLOCK_NAMES, "top_dense"):
        block = on_disk["blocks"][name]
        for key in ("cells", "transistors", "nand2_eq", "sram_bits"):
            assert key in block and key in block["own"], (name, key)
        assert block["cells"] > 0
    assert "sparse_over_dense_pe_area" in on_disk and "sram_bits" in on_disk
    markdown = (out / "report.md").read_text()
    assert "| PE (sparse-aware) |" in markdown and "What sparsity costs" in markdown


def _check_figures_follow_from_the_cell_counts(report, out):
    """Transistors and gate equivalents are the cell counts times the tables."""
    areas = cell_areas()
    for name, block in report["blocks"].items():
        if name in PURPOSE_DENSE_NAMES:
            continue        # sums of the others (_check_purpose_built_dense_baseline)
        counts = block["cell_counts"]
        assert sum(counts.values()) == block["cells"], name
        assert counts.get("DFF_X1", 0) == block["flip_flops"], name
        logic = sum(areas[cell] * count for cell, count in counts.items())
        assert block["logic_um2"] == pytest.approx(logic, abs=0.1)
        sram = block["sram_bits"] * SRAM_UM2_PER_BIT
        assert block["nand2_eq"] == pytest.approx(
            (logic + sram + block["register_file_um2"]) / areas[NAND2_CELL], abs=0.1)
        assert block["transistors"] == (
            sum(CELL_TRANSISTORS[cell] * count for cell, count in counts.items())
            + SRAM_TRANSISTORS_PER_BIT * block["sram_bits"]
            + _register_file_transistors(report, name))


def _register_file_transistors(report, name):
    """Transistors of the register files of block ``name``, its inner blocks' included."""
    inner = {"array": ("pe", SMALL.pes), "array_dense": ("pe_dense", SMALL.pes),
             "top": ("array", 1), "top_dense": ("array_dense", 1)}
    own = sum(memory["words"] * memory["width"] * register_file_transistors_per_bit(
        memory["read_ports"] + memory["write_ports"])
        for memory in report["memories"].get(name.replace("top_dense", "top"), [])
        if memory["kind"] == "register file")
    if name in inner:
        block, copies = inner[name]
        own += copies * _register_file_transistors(report, block)
    return own


def _check_hierarchy_totals(report, out):
    """The array counts its PEs, the top level its array and controller."""
    blocks = report["blocks"]
    pes = SMALL.pes
    for array, pe in (("array", "pe"), ("array_dense", "pe_dense")):
        assert blocks[array]["cells"] == blocks[array]["own"]["cells"] + pes * blocks[pe]["cells"]
    assert blocks["top"]["cells"] == (blocks["top"]["own"]["cells"] + blocks["array"]["cells"]
                                      + blocks["controller"]["cells"])
    assert report["sram_bits"] == blocks["top"]["sram_bits"]


def _check_sram_bits_are_the_buffers_the_hardware_declares(report, out):
    """Yosys keeps the load buffers and output banks as memories of exactly the
    size the hardware declares; the array's queues are memories too."""
    top = Accelerator(SMALL)
    blocks = [top, *top.buffers().values(), OutputBuffer(SMALL)]
    declared = sum(block.bits for block in blocks[1:])
    for block in blocks:      # measured, not built: no "never used" warning
        block._MustUse__silence = True
    assert report["blocks"]["top"]["own"]["sram_bits"] == declared
    # The report's on-chip storage (from the layouts) is what Yosys keeps: every SRAM,
    # the partial sums' register file.
    storage = on_chip_storage(SMALL)
    assert report["sram_bits"] == sum(bits for kind, bits in storage.values() if kind == "sram")
    assert report["register_file_bits"] == sum(bits for kind, bits in storage.values()
                                               if kind == "register file")
    queues = report["memories"]["array"]
    assert len(queues) == 2 * SMALL.pes + 1      # task and beat queue per PE, routing
    assert all(memory["words"] >= SRAM_MIN_WORDS for memory in queues)
    # The PE's element queue is shallower than an SRAM macro: flip-flops. Its
    # partial sums are one register file (read as they are addressed).
    assert report["blocks"]["pe"]["sram_bits"] == 0
    # The partial sums and the stationary scratchpad are register files.
    memories = {memory["name"]: memory for memory in report["memories"]["pe"]}
    assert {memory["kind"] for memory in memories.values()} == {"register file"}
    assert memories["banks.psum"]["words"] * memories["banks.psum"]["width"] == (
        SMALL.psum_banks * SMALL.max_row * SMALL.acc_width)
    lines = memories["scratchpad.lines"]
    assert (lines["words"], lines["width"]) == (SMALL.scratchpad_lines,
                                                SMALL.line_words * SMALL.data_width)
    assert report["blocks"]["pe"]["register_file_bits"] == sum(
        memory["words"] * memory["width"] for memory in memories.values())


def _check_skipping_logic_costs_area(report, out):
    """The dense-only PE and array are smaller; the report's ratios say by how much."""
    blocks = report["blocks"]
    assert blocks["pe"]["area_um2"] > blocks["pe_dense"]["area_um2"]
    assert report["sparse_over_dense_pe_area"] == pytest.approx(
        blocks["pe"]["area_um2"] / blocks["pe_dense"]["area_um2"], abs=1e-3)
    assert report["sparse_over_dense_pe_area"] > 1
    # (The array's own logic is the same in both: the host's works mask replaced its
    # zero test.)
    assert report["sparse_over_dense_array_area"] > 1


def _check_purpose_built_dense_baseline(report, out):
    """The accelerator around the purpose-built dense PE is the same blocks with
    ``pes`` dense PEs in the dense-only array; the sparse-aware design is larger."""
    blocks = report["blocks"]
    for key in ("cells", "flip_flops", "sram_bits", "register_file_bits"):
        array = blocks["array_dense"]["own"][key] + SMALL.pes * blocks["dense_pe"][key]
        assert blocks["array_purpose_dense"][key] == array, key
        assert blocks["top_purpose_dense"][key] == (
            blocks["top"]["own"][key] + blocks["controller"][key] + array), key
    # The dense PE has its partial sums but not the element queue: fewer flip-flops.
    assert blocks["dense_pe"]["register_file_bits"] == blocks["pe"]["register_file_bits"]
    assert blocks["dense_pe"]["flip_flops"] < blocks["pe"]["flip_flops"]
    for key, sparse, dense in (("pe_area", "pe", "dense_pe"),
                               ("array_area", "array", "array_purpose_dense"),
                               ("accelerator_area", "top", "top_purpose_dense")):
        ratio = report["sparse_over_purpose_dense_" + key]
        assert ratio == pytest.approx(
            blocks[sparse]["area_um2"] / blocks[dense]["area_um2"], abs=1e-3)
        assert ratio > report["sparse_over_dense_" + key] > 1
    assert "purpose-built dense" in (out / "report.md").read_text()


def _check_fpga_view(report, out):
    """ECP5 resources add up like the ASIC view; every PE lane has its multiplier
    in a DSP and the buffers are block RAMs."""
    fpga = report["fpga"]["blocks"]
    for key in ("luts", "flip_flops", "dsps", "block_rams"):
        assert fpga["array"][key] == fpga["array"]["own"][key] + SMALL.pes * fpga["pe"][key]
        assert fpga["top"][key] == (fpga["top"]["own"][key] + fpga["array"][key]
                                    + fpga["controller"][key])
    assert fpga["pe"]["dsps"] >= SMALL.lanes
    assert fpga["top"]["own"]["block_rams"] > 0
    assert fpga["pe"]["luts"] > 1000
    assert "## FPGA view: Lattice ECP5" in (out / "report.md").read_text()


def test_totals_add_children_and_check_black_boxes():
    """Totals roll the hierarchy up (array = own + pes x PE, top = own + array +
    controller); a black box synthesis did not find as expected is an error."""
    from gen.synth.run import hierarchy_totals as _totals
    from gen.synth.yosys import Resources as _Resources

    own = {name: _Resources(luts=luts) for name, luts in
           (("pe", 100), ("array", 10), ("controller", 5), ("top", 1))}
    boxes = {"pe": {}, "controller": {},
             "array": {f"pe_array.pe_{n}": 1 for n in range(SMALL.pes)},
             "top": {"accelerator.array": 1, "accelerator.controller": 1}}
    totals = _totals(own, boxes, SMALL)
    assert totals["array"] == {"luts": 10 + SMALL.pes * 100}
    assert totals["top"] == {"luts": 1 + 10 + SMALL.pes * 100 + 5}
    boxes["array"] = {"pe_array.pe_0": 1}
    with pytest.raises(RuntimeError, match="array: expected black boxes"):
        _totals(own, boxes, SMALL)
