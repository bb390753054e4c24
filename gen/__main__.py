"""Command line of the generators: ``python -m gen verilog``."""

from __future__ import annotations

import argparse
import time

from hw.config import PRESETS, preset
from pruning.cli import run_command

from .verilog import BLOCKS, LINT_WAIVERS, emit, lint


def verilog(args):
    config = preset(args.config)
    started = time.perf_counter()
    paths = emit(config, args.out, blocks=args.block)
    for path in paths:
        print(f"wrote {path} and {path.with_suffix('.json')} ({config.name} preset)")
    if not args.no_lint:
        lint(paths)
        print(f"verilator --lint-only -Wall passed, waivers: {', '.join(LINT_WAIVERS)} "
              f"(reasons in gen/verilog.py)")
    print(f"done in {time.perf_counter() - started:.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    emit_parser = commands.add_parser("verilog", help="emit Verilog and its config JSON")
    emit_parser.add_argument("--config", default="default", choices=sorted(PRESETS))
    emit_parser.add_argument("--out", default="build/rtl")
    emit_parser.add_argument("--block", action="append", choices=sorted(BLOCKS),
                             help="block(s) to emit (default: all)")
    emit_parser.add_argument("--no-lint", action="store_true", help="skip verilator --lint-only")
    args = parser.parse_args(argv)
    run_command({"verilog": verilog}[args.command], args)


if __name__ == "__main__":
    main()
