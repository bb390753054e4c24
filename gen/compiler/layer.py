"""A layer phase as the accelerator takes it: checked operands and geometry.

The contract shared by the co-simulation (``python -m cosim layer``,
:func:`cosim.layer.run_layer`) and the cycle model (``python -m gen
estimate``, :func:`gen.model.estimate.estimate_layer`): integer operands and the
geometry of one FF, BP or WG phase, checked against docs/SPEC.md and the
:class:`~hw.config.AccelConfig` before anything is built, each problem
reported as one ``ValueError`` naming it; and the statistics both report
(:data:`STATS_KEYS`).
"""

from __future__ import annotations

import numpy as np

from dataclasses import dataclass

from hw.config import PRESETS, AccelConfig
from pruning import golden
from pruning.cli import positive_int

__all__ = ["LayerSpec", "LayerMaps", "nonzero_map", "check_layer", "STATS_KEYS", "layer_stats",
           "count_macs", "golden_output", "add_layer_arguments", "load_operands", "check_mode"]

STATS_KEYS = ("cycles", "dense_macs", "effectual_macs", "issued_macs", "pe_utilization",
              "saturated", "busy_cycles", "stall_cycles", "pes", "lanes", "mode", "phase",
              "config", "backend")


class LayerSpec:
    """A checked layer phase: operands as int64 arrays and the geometry."""

    def __init__(self, phase, x, w, dy, mask, stride, pad, input_hw, kernel_hw):
        self.phase, self.x, self.w, self.dy, self.mask = phase, x, w, dy, mask
        self.stride, self.pad = stride, pad
        self.input_hw, self.kernel_hw = input_hw, kernel_hw

    @property
    def output_shape(self):
        n = (self.x if self.x is not None else self.dy).shape[0]
        if self.phase == "ff":
            k = self.w.shape[0]
            return (n, k, *[golden.output_size(i, r, self.stride, self.pad)
                            for i, r in zip(self.input_hw, self.kernel_hw)])
        if self.phase == "bp":
            return (n, self.w.shape[1], *self.input_hw)
        return (self.dy.shape[1], self.x.shape[1], *self.kernel_hw)


def nonzero_map(array):
    """Where ``array`` is nonzero, as a contiguous ``uint8`` array (None stays None)."""
    return None if array is None else np.ascontiguousarray(np.asarray(array) != 0,
                                                           dtype=np.uint8)


@dataclass
class LayerMaps:
    """A layer phase by its operands' nonzero maps (``uint8``, None where unused): all
    the schedule and the models need of it (:func:`gen.compiler.schedule.schedule_layer`
    takes it in place of a :class:`LayerSpec`)."""

    phase: str
    x: np.ndarray | None
    w: np.ndarray | None
    dy: np.ndarray | None
    mask: np.ndarray | None
    stride: int
    pad: int
    input_hw: tuple
    kernel_hw: tuple

    @classmethod
    def of(cls, spec):
        """The maps of a checked :class:`LayerSpec`."""
        return cls(spec.phase, nonzero_map(spec.x), nonzero_map(spec.w), nonzero_map(spec.dy),
                   nonzero_map(spec.mask), spec.stride, spec.pad, tuple(spec.input_hw),
                   tuple(spec.kernel_hw))


def _integer_array(name, value, config, *, is_mask=False):
    if value is None:
        return None
    array = np.asarray(value)
    if array.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions, not shape {array.shape}")
    if array.dtype == np.bool_ and is_mask:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, not {array.dtype}")
    array = array.astype(np.int64)
    if not is_mask and array.size:
        low, high = int(array.min()), int(array.max())
        if low < config.data_min or high > config.data_max:
            bad = low if low < config.data_min else high
            raise ValueError(f"{name} has value {bad} outside the {config.data_width}-bit range "
                             f"{config.data_min}..{config.data_max}")
    return array


def check_layer(config, phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
                kernel=None):
    """Check a layer phase against docs/SPEC.md and ``config``; returns a :class:`LayerSpec`."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    if phase not in golden.PHASES:
        raise ValueError(f"phase must be one of {', '.join(golden.PHASES)}, not {phase!r}")
    for name, value, high in (("stride", stride, config.max_stride), ("pad", pad, config.max_pad)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, not {value!r}")
        low = 1 if name == "stride" else 0
        if not low <= value <= high:
            raise ValueError(f"unsupported {name} {value}: the {config.name} preset supports "
                             f"{low}..{high}")
    needs = {"ff": ("x", "w"), "bp": ("dy", "w"), "wg": ("x", "dy")}[phase]
    given = {"x": x, "w": w, "dy": dy}
    missing = [name for name in needs if given[name] is None]
    if missing:
        raise ValueError(f"phase {phase} needs {' and '.join(missing)}")
    x = _integer_array("x", x, config)
    w = _integer_array("w", w, config)
    dy = _integer_array("dy", dy, config)
    mask = _integer_array("mask", mask, config, is_mask=True)
    if mask is not None and phase != "bp":
        raise ValueError(f"a mask applies to phase bp only, not {phase}")

    # Input size: from x, else (BP) from the mask.
    if x is not None:
        input_hw = tuple(x.shape[2:])
    elif mask is not None:
        input_hw = tuple(mask.shape[2:])
    else:
        raise ValueError("phase bp needs the input size: give x or mask")
    if kernel is not None:
        if len(kernel) != 2 or any(int(v) < 1 for v in kernel):
            raise ValueError(f"kernel must be two positive integers R S, not {kernel!r}")
        kernel_hw = (int(kernel[0]), int(kernel[1]))
        if w is not None and tuple(w.shape[2:]) != kernel_hw:
            raise ValueError(f"kernel {kernel_hw[0]}x{kernel_hw[1]} does not match w's "
                             f"{w.shape[2]}x{w.shape[3]}")
    elif w is not None:
        kernel_hw = tuple(w.shape[2:])
    else:
        raise ValueError("phase wg needs the kernel size: give --kernel R S or w")
    if max(kernel_hw) > config.max_kernel:
        raise ValueError(f"unsupported kernel {kernel_hw[0]}x{kernel_hw[1]}: the {config.name} "
                         f"preset supports up to {config.max_kernel}x{config.max_kernel}")
    for size, taps in zip(input_hw, kernel_hw):
        if size + 2 * pad < taps:
            raise ValueError(f"kernel {kernel_hw[0]}x{kernel_hw[1]} is larger than the padded "
                             f"input {input_hw[0]}x{input_hw[1]} (pad {pad})")
    out_hw = tuple(golden.output_size(i, r, stride, pad) for i, r in zip(input_hw, kernel_hw))

    if w is not None and x is not None and w.shape[1] != x.shape[1]:
        raise ValueError(f"w has {w.shape[1]} input channels but x has {x.shape[1]} "
                         f"(w {w.shape}, x {x.shape})")
    if dy is not None:
        if tuple(dy.shape[2:]) != out_hw:
            raise ValueError(f"dy is {dy.shape[2]}x{dy.shape[3]} but the layer's output is "
                             f"{out_hw[0]}x{out_hw[1]} (input {input_hw[0]}x{input_hw[1]}, "
                             f"kernel {kernel_hw[0]}x{kernel_hw[1]}, stride {stride}, pad {pad})")
        if w is not None and dy.shape[1] != w.shape[0]:
            raise ValueError(f"dy has {dy.shape[1]} channels but w has {w.shape[0]} filters")
        if x is not None and dy.shape[0] != x.shape[0]:
            raise ValueError(f"dy has batch {dy.shape[0]} but x has batch {x.shape[0]}")
    if mask is not None:
        channels = w.shape[1]
        expected = (dy.shape[0], channels, *input_hw)
        if tuple(mask.shape) != expected:
            raise ValueError(f"mask must have shape {expected} (the shape of x), "
                             f"not {tuple(mask.shape)}")
    return LayerSpec(phase, x, w, dy, mask, int(stride), int(pad), input_hw, kernel_hw)



def layer_stats(config, spec, totals, *, pes, dense, backend):
    """The statistics of a layer phase (:data:`STATS_KEYS` and more) from counter ``totals``."""
    work = totals["dense_macs"] if dense else totals["effectual_macs"]
    return {
        **totals,
        "pe_utilization": work / (max(totals["cycles"], 1) * config.lanes * pes),
        "pes": pes, "lanes": config.lanes, "mode": "dense" if dense else "sparse",
        "phase": spec.phase, "config": config.name, "backend": backend,
    }


def check_mode(config, dense):
    """ValueError for sparse mode on a dense-only build (``skipping=False``)."""
    if not dense and not config.skipping:
        raise ValueError(f"config {config.name} is dense-only (skipping=False); "
                         f"run it in dense mode")


def golden_output(spec):
    """The exact result of the layer phase (:func:`pruning.golden.conv_phase`)."""
    return golden.conv_phase(spec.phase, x=spec.x, w=spec.w, dy=spec.dy, mask=spec.mask,
                             stride=spec.stride, pad=spec.pad, input_hw=spec.input_hw,
                             kernel_hw=spec.kernel_hw)


def count_macs(spec):
    """``(dense_macs, effectual_macs)`` of the layer phase (the golden model's count)."""
    return golden.count_macs(spec.phase, x=spec.x, w=spec.w, dy=spec.dy, mask=spec.mask,
                             stride=spec.stride, pad=spec.pad, input_hw=spec.input_hw,
                             kernel_hw=spec.kernel_hw)


def add_layer_arguments(parser):
    """The arguments of one layer phase, shared by ``python -m cosim layer`` and
    ``python -m gen estimate``: operands (.npy), geometry, preset, mode, statistics file."""
    parser.add_argument("--phase", required=True, choices=list(golden.PHASES))
    parser.add_argument("--x", help="input activations (N, C, H, W), integer .npy")
    parser.add_argument("--w", help="weights (K, C, R, S), integer .npy")
    parser.add_argument("--dy", help="output gradient (N, K, E, F), integer .npy")
    parser.add_argument("--mask", help="BP output mask, shape of x; nonzero = compute")
    parser.add_argument("--stride", type=positive_int, required=True)
    parser.add_argument("--pad", type=int, required=True)
    parser.add_argument("--kernel", type=positive_int, nargs=2, metavar=("R", "S"),
                        help="kernel size (WG without --w)")
    parser.add_argument("--stats", required=True, help="statistics .json")
    parser.add_argument("--config", default="default", choices=sorted(PRESETS))
    parser.add_argument("--dense", action="store_true", help="dense mode: the baseline")


def load_operands(args):
    """The operands named by :func:`add_layer_arguments`' options, as arrays (or None)."""
    operands = {}
    for name in ("x", "w", "dy", "mask"):
        path = getattr(args, name)
        if path is None:
            operands[name] = None
            continue
        try:
            operands[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read --{name} {path}: {error}") from None
    return operands
