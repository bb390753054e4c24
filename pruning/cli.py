"""Helpers shared by the project's command lines (``python -m pruning|gen|cosim``).

They live in the lowest layer, ``pruning``, so every other package may use
them without importing one another.
"""

from __future__ import annotations

import argparse
import os
import sys

from .prune import _check_rate

__all__ = ["rate", "positive_int", "non_negative_int", "run_command"]


def rate(text):
    """argparse type: a pruning rate in ``[0, 1)``."""
    try:
        return _check_rate(float(text))
    except (TypeError, ValueError) as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, not {text!r}")
    return value


def run_command(command, args):
    """Run ``command(args)``; a ValueError or RuntimeError becomes a one-line error, exit 1.

    A reader that closes the pipe early (``... | head``) ends the output quietly."""
    try:
        command(args)
        sys.stdout.flush()      # here, not at exit, so a closed pipe is caught below
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
