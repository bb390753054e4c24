"""Verilog emission and lint, and the host-side checks on PE tasks."""

import json

import numpy as np
import pytest
from amaranth import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from gen.__main__ import main as gen_main
from gen.compiler.tasks import make_output_row
from gen.compiler.tiling import check_fits
from gen.verilog import emit, lint, verilog_text
from hw.buffer import LoadBuffer
from hw.config import PRESETS
from hw import top
from hw.top import Accelerator, check_buildable

SMALL = PRESETS["small"]


def test_emit_and_lint(tmp_path):
    (path,) = emit(SMALL, tmp_path, blocks=["sparse_pe"])
    text = path.read_text()
    assert "module sparse_pe" in text
    for port in ("task__payload", "operand__ready", "result__valid", "effectual_macs"):
        assert port in text
    assert json.loads((tmp_path / "sparse_pe.json").read_text())["name"] == "small"
    lint([path])


def test_a_config_too_wide_for_amaranth_is_refused_before_anything_is_built(tmp_path,
                                                                           monkeypatch):
    """A value the top level builds whole (here the array's bundle: a mask row and a
    scratchpad line per PE, 1024 PEs) past the widest Amaranth builds is refused up
    front, naming the fields, not after minutes. The paper preset builds."""
    wide = SMALL.replace(pe_rows=32, pe_cols=32)
    message = r"PE array bundle is 84091 bits \(pes x \(max_row \+ line_words x " \
              r"data_width \+ 2\) = 1024 x \(16 \+ 4 x 16 \+ 2\)"
    with pytest.raises(ValueError, match=message):
        emit(wide, tmp_path, blocks=["sparse_pe", "accelerator"])
    assert not (tmp_path / "sparse_pe.v").exists()
    with pytest.raises(ValueError, match=message):
        Accelerator(wide)
    check_buildable(PRESETS["paper"])
    # Just at the limit it builds (the check is not off by one).
    monkeypatch.setattr(top, "MAX_VALUE_BITS", 84091)
    check_buildable(wide)
    monkeypatch.setattr(top, "MAX_VALUE_BITS", 84090)
    with pytest.raises(ValueError, match="84091 bits"):
        check_buildable(wide)


def test_controller_emits_and_lints(tmp_path):
    (path,) = emit(SMALL, tmp_path, blocks=["controller"])
    text = path.read_text()
    assert "module controller" in text
    for port in ("bundle__payload", "operand__payload", "array_idle"):
        assert port in text
    lint([path])


def test_dense_only_build_drops_the_skipping_logic(tmp_path):
    """skipping=False builds a PE and an array without the zero tests; they lint,
    and their Verilog is smaller than the sparse-aware build's."""
    for block in ("sparse_pe", "pe_array"):
        sizes = {}
        for skipping in (True, False):
            folder = tmp_path / f"{block}-{skipping}"
            (path,) = emit(SMALL.replace(skipping=skipping), folder, blocks=[block])
            sizes[skipping] = len(path.read_text())
            if not skipping:
                lint([path])
        assert sizes[False] < sizes[True], block


def test_top_level_emits_axi_ports_and_lints(tmp_path):
    (path,) = emit(SMALL, tmp_path, blocks=["accelerator"])
    text = path.read_text()
    assert "module accelerator" in text
    for port in ("s_axil__awaddr", "s_axil__rresp", "s_axis__tdest", "s_axis__tready",
                 "m_axis__tlast", "irq"):
        assert port in text
    lint([path])


def test_gen_command_reports_bad_block(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gen_main(["verilog", "--config", "small", "--out", str(tmp_path), "--block", "gpu"])
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


@pytest.mark.parametrize("changes,message", [
    (dict(stride=5), "stride must be in 1..4 for config small, not 5"),
    (dict(kernel=12, out_width=5), "kernel width must be in 1..11 for config small, not 12"),
    (dict(pad=6, out_width=26), "pad must be in 0..5 for config small, not 6"),
    (dict(out_width=9), "output row length 9 does not match input 16"),
    (dict(phase="fw"), "phase must be one of ff, bp, wg, not 'fw'"),
])
def test_tasks_outside_the_config_are_refused(changes, message):
    geometry = dict(phase="ff", stride=1, pad=1, kernel=3, in_width=16, out_width=16)
    geometry.update(changes)
    with pytest.raises(ValueError, match=message):
        check_fits(SMALL, **geometry)


def test_values_outside_data_width_are_refused():
    with pytest.raises(ValueError, match="streamed row has values outside the 16-bit range"):
        make_output_row(SMALL, "ff", [(np.full(8, 40000), np.ones(3, int))], stride=1, pad=1,
                        kernel=3, in_width=8)


def test_memories_have_no_zero_initializers():
    """verilog_text drops the zero initial contents Amaranth gives every memory (an SRAM
    has none), and keeps real ones (a ROM's)."""
    class Memories(wiring.Component):
        address: In(2)
        data: Out(8)

        def elaborate(self, platform):
            m = Module()
            m.submodules.rom = rom = Memory(shape=unsigned(8), depth=4, init=[1, 2, 0, 3])
            m.submodules.ram = ram = Memory(shape=unsigned(8), depth=4, init=[])
            rom_read, ram_read = rom.read_port(domain="comb"), ram.read_port(domain="comb")
            write = ram.write_port()
            m.d.comb += [rom_read.addr.eq(self.address), ram_read.addr.eq(self.address),
                         write.addr.eq(self.address), write.data.eq(rom_read.data),
                         write.en.eq(1), self.data.eq(ram_read.data)]
            return m

    text = verilog_text(Memories(), "memories")
    assert text.count("initial begin") == 1 and "rom[3] = 8'h03;" in text
    assert "ram[0] =" not in text
    buffer = verilog_text(LoadBuffer(shape=unsigned(128), depth=4, stream_width=64), "buffer")
    assert "initial" not in buffer and "memory[entry" in buffer
