"""Command line of the generators: ``python -m gen verilog|synth|layers|estimate|report``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hw.config import PRESETS, preset
from pruning.cli import non_negative_int, positive_int, rate, run_command

from .compiler.layer import add_layer_arguments
from .blocks import VERILOG_BLOCKS
from .verilog import LINT_WAIVERS, emit, lint

# The FPGA view flattens the whole accelerator; it runs by default only where
# that takes minutes.
FPGA_BY_DEFAULT = ("small",)


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


def synth(args):
    from .synth import synthesize, write_report

    config = preset(args.config)
    fpga = args.config in FPGA_BY_DEFAULT if args.fpga is None else args.fpga
    print(f"synthesizing the {config.name} preset with Yosys ({args.jobs} at a time"
          f"{', with the ECP5 view' if fpga else ''}); the first Yosys call compiles it (~1 min)",
          flush=True)
    report = synthesize(config, args.out, jobs=args.jobs, fpga=fpga,
                        progress=lambda line: print(line, flush=True))
    command = f"python -m gen synth --config {args.config}" + (
        "" if args.fpga is None else " --fpga" if args.fpga else " --no-fpga")
    paths = write_report(report, args.out, command)
    print(f"wrote {paths[0]} and {paths[1]} in {report['seconds']['total']:.0f} s")
    for name in ("pe", "array", "top"):
        block = report["blocks"][name]
        print(f"  {name:6s} {block['cells']:>9,} cells {block['nand2_eq']:>13,.0f} NAND2 eq "
              f"{block['sram_bits']:>10,} SRAM bits")
    print(f"  sparse/dense area: PE {report['sparse_over_dense_pe_area']:.3f}, "
          f"array {report['sparse_over_dense_array_area']:.3f}, "
          f"accelerator {report['sparse_over_dense_accelerator_area']:.3f}")


def layers(args):
    from pruning.models import build_model

    from .compiler.network import extract_layers

    model, shape = build_model(args.model)
    network = extract_layers(model, shape)
    print(f"{args.model}: input {shape[0]}x{shape[1]}x{shape[2]}, {len(network)} layers")
    print(f"{'layer':24s} {'kind':6s} {'C':>5s} {'K':>5s} {'RxS':>5s} {'U':>2s} {'P':>2s} "
          f"{'input':>7s} {'output':>7s} {'x from':6s} {'BN':>3s} {'ReLU':>4s} {'phases':10s} "
          f"{'MACs':>13s}")
    for layer in network:
        kernel = "x".join(map(str, layer.kernel_hw))
        print(f"{layer.name:24s} {layer.kind:6s} {layer.in_channels:5d} {layer.out_channels:5d} "
              f"{kernel:>5s} {layer.stride:2d} {layer.pad:2d} "
              f"{'x'.join(map(str, layer.input_hw)):>7s} {'x'.join(map(str, layer.output_hw)):>7s} "
              f"{layer.x_source:6s} {'yes' if layer.batch_norm_after else 'no':>3s} "
              f"{'yes' if layer.relu_after else 'no':>4s} {','.join(layer.phases):10s} "
              f"{layer.macs:13,d}")
    print(f"total MACs per image in FF: {sum(layer.macs for layer in network):,}")


def estimate(args):
    from .model.estimate import estimate_layer
    from .compiler.layer import load_operands

    config = preset(args.config)
    result = estimate_layer(config, args.phase, **load_operands(args), stride=args.stride,
                            pad=args.pad, kernel=args.kernel, dense=args.dense, progress=True,
                            return_runs=bool(args.program))
    stats, runs = result if args.program else (result, None)
    Path(args.stats).parent.mkdir(parents=True, exist_ok=True)
    Path(args.stats).write_text(json.dumps(stats, indent=2) + "\n")
    if args.program:
        from .compiler.program import program_json

        Path(args.program).parent.mkdir(parents=True, exist_ok=True)
        Path(args.program).write_text(json.dumps(program_json(config, runs)) + "\n")
        print(f"the program ({len(runs)} run(s), {stats['load_beats']} load beats) -> "
              f"{args.program}")
    print(f"{args.phase} {stats['mode']}: {stats['cycles']} cycles predicted, "
          f"{stats['effectual_macs']} effectual of {stats['dense_macs']} dense MACs on "
          f"{stats['pes']} PEs, {stats['runs']} run(s), PE utilization "
          f"{stats['pe_utilization']:.2f} -> {args.stats}")


def report(args):
    from .model.report import build_report, write_report

    config = preset(args.config)
    densities = None
    if args.densities:
        try:
            densities = json.loads(Path(args.densities).read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read --densities {args.densities}: {error}") from None
        if not isinstance(densities, dict):
            raise ValueError(f"--densities {args.densities} must hold a JSON object "
                             f"{{model: {{layer: {{x, dy, w}}}}}}")
    started = time.perf_counter()
    result = build_report(config, args.models, p=args.p, steps=args.steps, batch=args.batch,
                          seed=args.seed, densities=densities, jobs=args.jobs)
    command = " ".join(["python -m gen report", "--config", args.config, "--models",
                        *args.models, "--p", f"{args.p:g}", "--steps", str(args.steps)]
                       + (["--densities", args.densities] if args.densities else []))
    paths = write_report(result, args.out, command)
    for name, entry in result["models"].items():
        step = entry["summary"]["step"]
        speedup, energy = step["speedup"], step["energy_efficiency"]
        print(f"{name}: speedup {speedup:.2f}x (with transfers "
              f"{step['speedup_with_transfers']:.2f}x), energy efficiency {energy:.2f}x, "
              f"ideal {step['ideal_speedup']:.2f}x")
    print(f"wrote {', '.join(str(path) for path in paths)} in "
          f"{time.perf_counter() - started:.0f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m gen", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    emit_parser = commands.add_parser("verilog", help="emit Verilog and its config JSON")
    emit_parser.add_argument("--config", default="default", choices=sorted(PRESETS))
    emit_parser.add_argument("--out", default="build/rtl")
    emit_parser.add_argument("--block", action="append", choices=list(VERILOG_BLOCKS),
                             help="block(s) to emit (default: all)")
    emit_parser.add_argument("--no-lint", action="store_true", help="skip verilator --lint-only")
    synth_parser = commands.add_parser(
        "synth", help="Yosys synthesis per block: cells, transistors, NAND2 eq, SRAM bits")
    synth_parser.add_argument("--config", default="default", choices=sorted(PRESETS))
    synth_parser.add_argument("--out", default="build/synth")
    synth_parser.add_argument("--jobs", type=positive_int, default=2,
                              help="Yosys processes at once (default 2)")
    synth_parser.add_argument("--fpga", action=argparse.BooleanOptionalAction, default=None,
                              help="also synth_ecp5 the whole accelerator "
                                   f"(default: on for {', '.join(FPGA_BY_DEFAULT)})")
    from pruning.models import MODELS
    layers_parser = commands.add_parser(
        "layers", help="the conv and linear layers of a network as the accelerator runs them")
    layers_parser.add_argument("--model", default="alexnet", choices=sorted(MODELS))
    estimate_parser = commands.add_parser(
        "estimate", help="predict the cycles of one layer phase on the accelerator (the "
                         "arguments of python -m cosim layer, without --out and --sim)")
    add_layer_arguments(estimate_parser)
    estimate_parser.add_argument("--program", help="also write the compiled program (descriptor "
                                                   "registers, buffer load packets) as JSON")
    # Accepted so that a python -m cosim layer command line runs unchanged: the
    # model predicts the top level, the co-simulation's default back end.
    estimate_parser.add_argument("--backend", choices=["accelerator"], default="accelerator",
                                 help="the top level (the only back end the model predicts)")
    report_parser = commands.add_parser(
        "report", help="sparse vs dense training speedup and energy of AlexNet and ResNet-18 "
                       "(cycle and energy models), markdown and PNG")
    report_parser.add_argument("--config", default="paper", choices=sorted(PRESETS))
    report_parser.add_argument("--models", nargs="+", default=["alexnet", "resnet18"],
                               choices=sorted(MODELS))
    report_parser.add_argument("--p", type=rate, default=0.9, help="pruning rate of dy")
    report_parser.add_argument("--steps", type=non_negative_int, default=3,
                               help="training steps before the captured one (default 3)")
    report_parser.add_argument("--batch", type=positive_int, default=1)
    report_parser.add_argument("--seed", type=non_negative_int, default=0)
    report_parser.add_argument("--densities",
                               help="JSON {model: {layer: {x, dy, w}}}: random operands of "
                                    "these densities instead of training (what-if)")
    report_parser.add_argument("--out", default="build/report")
    report_parser.add_argument("--jobs", type=positive_int, default=2,
                               help="processes that model the layer phases at once (default 2)")
    args = parser.parse_args(argv)
    run_command({"verilog": verilog, "synth": synth, "layers": layers,
                 "estimate": estimate, "report": report}[args.command], args)


if __name__ == "__main__":
    main()
