"""Waveforms: ``--waves FILE`` dumps an FST of the case being run from a traced build of its
own; runs that do not ask for one keep the untraced build."""

import struct

import numpy as np

from cosim import runner
from cosim.__main__ import main as cosim_main
from cosim.layer import run_layer, waves_path
from hw.config import PRESETS

SMALL = PRESETS["small"]


def fst_end_time(path):
    """The end time of an FST file (its header block: type 0, length, start, end)."""
    data = path.read_bytes()[:25]
    kind, _, _, end = struct.unpack(">BQQQ", data)
    assert kind == 0, f"{path} does not start with an FST header block"
    return end


def test_a_layer_dumps_its_waveform(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(-9, 10, (1, 2, 5, 6))
    w = rng.integers(-9, 10, (3, 2, 3, 3))
    path = tmp_path / "ff.fst"
    _, stats = run_layer(SMALL, "ff", x=x, w=w, stride=1, pad=1, waves=path)
    # The timescale is 1 ps and a cycle 10 ns: the dump covers at least the compute.
    assert fst_end_time(path) >= stats["cycles"] * 10_000
    traced = runner.build_folder(SMALL, "accelerator", "verilator", waves=True)
    plain = runner.build_folder(SMALL, "accelerator", "verilator")
    assert "--trace-fst" in (traced / "rtl" / "build_flags.txt").read_text()
    assert "--trace" not in (plain / "rtl" / "build_flags.txt").read_text()


def test_random_cases_dump_one_waveform_per_mode(tmp_path, capsys):
    cosim_main(["random", "--seed", "0", "--case", "3", "--config", "small", "--jobs", "1",
                "--json", "", "--waves", str(tmp_path / "case.fst")])
    assert capsys.readouterr().out.rstrip().endswith("1 passed, 0 failed")
    for mode in ("dense", "sparse"):
        assert fst_end_time(tmp_path / f"case-3-{mode}.fst") > 0


def test_waves_paths():
    assert waves_path(None, 3) is None
    assert str(waves_path("out/w.fst", 3, "dense")) == "out/w-3-dense.fst"
    assert str(waves_path("w", "digits conv1", "ff")) == "w-digits_conv1-ff.fst"
