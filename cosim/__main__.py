"""Command line of the co-simulation: ``python -m cosim pe-speedup``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hw.config import PRESETS, preset
from pruning.cli import positive_int, rate, run_command


def pe_speedup(args):
    from .pe_speedup import format_table, measure, summarize

    config = preset(args.config)
    results = measure(config, args.rates, args.rows, batch_size=args.batch, simulator=args.sim)
    summary = summarize(results)
    print(f"SparsePE ({config.name} preset, {config.lanes} lane(s)) on rows of the digits CNN "
          f"(batch {args.batch}, up to {args.rows} output rows per layer and phase), "
          f"{args.sim or 'verilator'}:")
    print()
    print(format_table(summary))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"per_layer": results,
                               "summary": [{"p": p, "phase": ph, **t}
                                           for (p, ph), t in summary.items()]}, indent=2))
    print(f"\nwritten {out}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cosim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    speed = commands.add_parser(
        "pe-speedup", help="dense vs sparse PE cycles on rows of a real network, on the RTL")
    speed.add_argument("--config", default="default", choices=sorted(PRESETS))
    speed.add_argument("--rates", type=rate, nargs="+", default=[0.0, 0.9])
    speed.add_argument("--rows", type=positive_int, default=32,
                       help="output rows per layer and phase (evenly spaced sample)")
    speed.add_argument("--batch", type=positive_int, default=4, help="images in the captured batch")
    speed.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    speed.add_argument("--json", default="build/pe_speedup.json")
    args = parser.parse_args(argv)
    run_command({"pe-speedup": pe_speedup}[args.command], args)


if __name__ == "__main__":
    main()
