"""PyTorch golden model of the sparse training accelerator.

Stochastic activation-gradient pruning, the project's fixed-point rules, and
an exact integer reference for the FF, BP and WG convolution phases. This
package never imports the hardware (Amaranth): it is the independent
reference the RTL is checked against.
"""

from . import fixedpoint, golden
from .capture import LayerCapture, capture, capture_digits
from .fixedpoint import FixedPointFormat, Quantized, from_fixed, requantize, to_fixed
from .hooks import GradientPruner
from .prune import prune_threshold, stochastic_prune

__all__ = [
    "prune_threshold",
    "stochastic_prune",
    "GradientPruner",
    "FixedPointFormat",
    "Quantized",
    "to_fixed",
    "from_fixed",
    "requantize",
    "capture",
    "capture_digits",
    "LayerCapture",
    "golden",
    "fixedpoint",
]
