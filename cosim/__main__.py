"""Command line of the co-simulation.

``python -m cosim layer ...`` runs one convolution layer phase on the emitted
RTL; ``python -m cosim layer-speedup`` measures whole layers of a real network
on the PE array; ``python -m cosim pe-speedup`` measures the PE on rows;
``python -m cosim train-rtl`` trains a CNN with every convolution on the RTL;
``python -m cosim regression`` and ``python -m cosim random`` are the fixed and
the constrained-random regressions of the top level.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from gen.compiler.layer import add_layer_arguments, load_operands
from hw.config import PRESETS, preset

from .layer import BACKENDS
from .random_layers import PHASES as RANDOM_PHASES
from pruning.cli import non_negative_int, positive_int, rate, run_command
from pruning.integer_training import add_training_arguments


def layer(args):
    from .layer import run_layer

    config = preset(args.config)
    operands = load_operands(args)
    # x only gives BP its input size; the layer never reads its values there.
    output, stats = run_layer(config, args.phase, **operands, stride=args.stride, pad=args.pad,
                              kernel=args.kernel, dense=args.dense, simulator=args.sim,
                              progress=True, backend=args.backend, waves=args.waves)
    for path in (args.out, args.stats):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, output)
    Path(args.stats).write_text(json.dumps(stats, indent=2) + "\n")
    print(f"{args.phase} {'dense' if args.dense else 'sparse'}: output {output.shape} -> "
          f"{args.out}; {stats['cycles']} cycles, {stats['effectual_macs']} effectual of "
          f"{stats['dense_macs']} dense MACs on {stats['pes']} PE(s), "
          f"PE utilization {stats['pe_utilization']:.2f} "
          f"-> {args.stats}")
    if "model_cycles" in stats:
        print(f"the cycle model predicts {stats['model_cycles']} cycles "
              f"({100 * (stats['model_cycles'] / max(stats['cycles'], 1) - 1):+.2f}%)")


def regression(args):
    from gen.model.cycles import TOLERANCE, TOLERANCE_CYCLES

    from .regression import format_table, model_misses, run_regression

    config = preset(args.config)
    results = run_regression(config, quick=args.quick, simulator=args.sim, waves=args.waves,
                             only=args.case)
    print(f"Co-simulation regression on the top level ({config.name} preset, {config.pes} PEs, "
          f"{args.sim or 'verilator'}); every output bit-exact with the golden model:")
    print()
    print(format_table(results))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    misses = model_misses(results)
    if misses:
        raise RuntimeError(f"the cycle model is off by more than {100 * TOLERANCE:g}% (and "
                           f"{TOLERANCE_CYCLES} cycles) on "
                           f"{len(misses)} case(s): " + "; ".join(misses))
    print(f"\nthe cycle model is within its tolerance ({100 * TOLERANCE:g}% or "
          f"{TOLERANCE_CYCLES} cycles) of the RTL on every case "
          f"(worst {100 * max(e['model_error'] for e in results):.2f}%)")


def random_cases(args):
    from .random_layers import format_summary, run_random

    config = preset(args.config)
    indices = args.case if args.case is not None else range(args.count)
    print(f"Constrained-random layer phases on the top level ({config.name} preset, "
          f"{config.pes} PEs, {args.sim or 'verilator'}): seed {args.seed}, "
          f"{len(indices)} case(s) of {', '.join(args.phases)}, {args.jobs} job(s); each dense "
          f"and sparse, bit-exact with the golden model", flush=True)
    started = time.perf_counter()
    results = run_random(config, seed=args.seed, indices=indices, phases=args.phases,
                         jobs=args.jobs, simulator=args.sim, waves=args.waves)
    seconds = time.perf_counter() - started
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"config": config.name, "seed": args.seed, "seconds": seconds,
             "cases": [{"index": r.case.index, "case": r.case.describe(), "passed": r.passed,
                        "error": r.error, "seconds": r.seconds,
                        "reproduce": r.case.command(config.name), **(r.entry or {})}
                       for r in results]}, indent=2) + "\n")
    print()
    print(format_summary(config, results, seconds=seconds, saved=args.save))
    if not all(r.passed for r in results):
        sys.exit(1)


def layer_speedup(args):
    from .layer_speedup import format_layer_table, measure_layers

    config = preset(args.config)
    results = measure_layers(config, args.rate, batch_size=args.batch, simulator=args.sim,
                             backend=args.backend)
    units = f"{config.pes} PEs ({config.pe_rows}x{config.pe_cols})" \
        if args.backend != "pe" else "one PE"
    print(f"Digits CNN, batch {args.batch}, dy pruned at p = {args.rate:g}, {config.name} preset, "
          f"{units}, {args.sim or 'verilator'}:")
    print()
    print(format_layer_table(results))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {out}")


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


def train_rtl(args):
    from pruning.integer_training import settings_from_arguments

    from .train import format_summary, train_rtl

    config = preset(args.config)
    settings = settings_from_arguments(args, data_width=config.data_width)
    print(f"Training the digits CNN (channels {settings.channels}, batch {settings.batch}, "
          f"p = {settings.p:g}, lr 2^-{settings.lr_shift}, momentum {settings.momentum:g}, "
          f"seed {settings.seed}) for {args.steps} steps; every FF, BP and WG convolution on "
          f"the {config.name} preset's RTL ({config.pes} PEs, {args.sim or 'verilator'}), "
          f"weights compared with the golden integer loop after every step.", flush=True)
    summary = train_rtl(config, settings, args.steps, dense=args.dense, simulator=args.sim,
                        out=args.out)
    print()
    print(format_summary(summary))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cosim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("layer", help="run one layer phase on the RTL (bit-exact)")
    add_layer_arguments(run)
    run.add_argument("--out", required=True, help="result .npy (int64)")
    run.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    run.add_argument("--backend", choices=list(BACKENDS), default="accelerator",
                     help="the top level with buffers, controller and AXI ports (default), "
                          "the PE array fed directly, or a single PE")
    run.add_argument("--waves", default=None, metavar="FILE",
                     help="dump an FST waveform of the layer's runs (top level, Verilator)")
    layers = commands.add_parser(
        "layer-speedup", help="dense vs sparse whole-layer cycles of a real network on the RTL")
    layers.add_argument("--config", default="small", choices=sorted(PRESETS))
    layers.add_argument("--rate", type=rate, default=0.9, help="pruning rate of dy")
    layers.add_argument("--batch", type=positive_int, default=8,
                        help="images in the captured batch (default 8)")
    layers.add_argument("--backend", choices=list(BACKENDS), default="accelerator")
    layers.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    layers.add_argument("--json", default="build/layer_speedup.json")
    speed = commands.add_parser(
        "pe-speedup", help="dense vs sparse PE cycles on rows of a real network, on the RTL")
    speed.add_argument("--config", default="default", choices=sorted(PRESETS))
    speed.add_argument("--rates", type=rate, nargs="+", default=[0.0, 0.9])
    speed.add_argument("--rows", type=positive_int, default=32,
                       help="output rows per layer and phase (evenly spaced sample)")
    speed.add_argument("--batch", type=positive_int, default=4, help="images in the captured batch")
    speed.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    speed.add_argument("--json", default="build/pe_speedup.json")
    random_parser = commands.add_parser(
        "random", help="constrained-random layer phases on the top level, dense and sparse, "
                       "bit-exact with the golden model")
    random_parser.add_argument("--seed", type=non_negative_int, required=True)
    random_parser.add_argument("--count", type=positive_int, default=20,
                               help="cases 0..COUNT-1 of the seed (default 20)")
    random_parser.add_argument("--case", type=non_negative_int, nargs="+", default=None,
                               metavar="I", help="run only these cases of the seed")
    random_parser.add_argument("--config", default="small", choices=sorted(PRESETS))
    random_parser.add_argument("--phases", nargs="+", choices=list(RANDOM_PHASES),
                               default=list(RANDOM_PHASES))
    random_parser.add_argument("--jobs", type=positive_int, default=2,
                               help="simulators running cases at once (default 2)")
    random_parser.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    random_parser.add_argument("--waves", default=None, metavar="FILE",
                               help="dump each case's FST waveforms as FILE-<case>-<mode>.fst")
    random_parser.add_argument("--json", default="build/random.json",
                               help="every case's figures (default build/random.json)")
    random_parser.add_argument("--save", default="build/random-cases", metavar="DIR",
                               help="write each failing case's operands (.npy) into "
                                    "DIR/seed<S>-case<I>/ (default build/random-cases)")
    regress = commands.add_parser(
        "regression", help="bit-exact regression of whole layers on the top level, with a "
                           "summary table")
    regress.add_argument("--config", default="small", choices=sorted(PRESETS))
    regress.add_argument("--quick", action="store_true", help="only the cases make test runs")
    regress.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    regress.add_argument("--json", default="build/regression.json")
    regress.add_argument("--case", nargs="+", default=None, metavar="NAME",
                         help="only the cases whose name contains one of these (e.g. "
                              "'stride 4' or 'digits conv2')")
    regress.add_argument("--waves", default=None, metavar="FILE",
                         help="dump each case's FST waveforms as FILE-<case>-<phase>-<mode>.fst")
    train = commands.add_parser(
        "train-rtl", help="train the digits CNN with every convolution on the RTL, bit-exact "
                          "with the golden integer training loop")
    add_training_arguments(train)
    train.add_argument("--config", default="small", choices=sorted(PRESETS))
    train.add_argument("--dense", choices=["model", "rtl"], default="model",
                       help="dense-mode cycles from the cycle model (default) or a second RTL "
                            "run in dense mode")
    train.add_argument("--sim", choices=["verilator", "icarus"], default=None)
    train.add_argument("--out", default="build/train-rtl",
                       help="folder for train.json, loss.png and cycles.png")
    args = parser.parse_args(argv)
    run_command({"layer": layer, "layer-speedup": layer_speedup, "pe-speedup": pe_speedup,
                 "regression": regression, "random": random_cases,
                 "train-rtl": train_rtl}[args.command], args)


if __name__ == "__main__":
    main()
