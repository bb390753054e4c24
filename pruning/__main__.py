"""Command line of the golden model: ``python -m pruning digits-accuracy`` (float training
with pruning) and ``python -m pruning train-int`` (the golden integer training loop)."""

from __future__ import annotations

import argparse
import json
import sys

from .cli import positive_int, rate, run_command
from .integer_training import add_training_arguments


def digits_accuracy(args):
    from .train import train_digits

    results = []
    for p in args.rates:
        print(f"training p={p:g} ({args.epochs} epochs, seed {args.seed})", file=sys.stderr)
        results.append(train_digits(p, epochs=args.epochs, seed=args.seed))
    dense = next((r for r in results if r.p == 0.0), None)
    layers = list(results[0].dy_density)
    print(f"DigitsCNN on sklearn digits, {args.epochs} epochs, seed {args.seed}; "
          "dy density = nonzero fraction of each conv's output gradient "
          "(natural -> after pruning), averaged over all steps")
    print()
    header = ["p", "test accuracy", "vs dense"] + [f"{name} dy density" for name in layers] + ["time"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        delta = f"{100 * (r.test_accuracy - dense.test_accuracy):+.2f} pt" if dense else "n/a"
        densities = [f"{before:.3f} -> {after:.3f}" for before, after in r.dy_density.values()]
        print("| " + " | ".join([f"{r.p:g}", f"{100 * r.test_accuracy:.2f}%", delta]
                                + densities + [f"{r.seconds:.0f} s"]) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"p": r.p, "test_accuracy": r.test_accuracy, "final_loss": r.final_loss,
                        "dy_density": r.dy_density, "seconds": r.seconds} for r in results],
                      f, indent=2)
    if dense is not None:
        worst = max(dense.test_accuracy - r.test_accuracy for r in results)
        print()
        print(f"largest accuracy loss against dense: {100 * max(worst, 0.0):.2f} points")


def train_int(args):
    from .integer_training import IntegerCNNTrainer, settings_from_arguments

    settings = settings_from_arguments(args)
    trainer = IntegerCNNTrainer(settings)
    before = trainer.accuracy()
    for _ in range(args.steps):
        record = trainer.step()
        densities = record.densities
        print(f"step {record.step:3d}: loss {record.loss:.4f}, dy density "
              + ", ".join(f"{layer} {densities['dy'][layer]:.2f}->"
                          f"{densities['dy_pruned'][layer]:.2f}" for layer in densities["dy"]))
    print(f"test accuracy {100 * before:.1f}% -> {100 * trainer.accuracy():.1f}% "
          f"({len(trainer.test_labels)} held-out digits)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pruning", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    digits = commands.add_parser(
        "digits-accuracy",
        help="train a small CNN on sklearn digits dense and pruned; print accuracy and dy density")
    digits.add_argument("--rates", type=rate, nargs="+", default=[0.0, 0.9, 0.99],
                        help="pruning rates p to train with (default: 0 0.9 0.99)")
    digits.add_argument("--epochs", type=positive_int, default=30)
    digits.add_argument("--seed", type=int, default=0)
    digits.add_argument("--json", help="also write the results to this JSON file")
    train = commands.add_parser(
        "train-int", help="the golden integer training loop of `make train-rtl`, alone (seconds)")
    add_training_arguments(train)
    args = parser.parse_args(argv)
    run_command({"digits-accuracy": digits_accuracy, "train-int": train_int}[args.command], args)


if __name__ == "__main__":
    main()
