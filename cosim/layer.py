"""Host driver: run one convolution layer phase on the emitted RTL.

The stable contract of ``python -m cosim layer`` and of :func:`run_layer`:
integer operands in, the exact SPEC section 2 result (raw accumulator
values, ``int64``) and statistics out. Every input is checked here, before
any hardware is built, and a problem is reported as one ``ValueError``
naming it.

The back end is the accelerator's top level (:class:`~hw.top.Accelerator`),
co-simulated and driven over its AXI ports: output rows that share their
streamed rows run one per PE (:meth:`gen.primitives.LayerRows.groups`),
rows longer than the preset's ``max_row`` are split into tiles
(:func:`gen.primitives.row_tiling`), and the groups become load-compute-
readout runs (:func:`gen.program.build_runs`). The PE array fed directly
(``backend="array"``) and one PE alone (``backend="pe"``) are the other
choices.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from gen.primitives import LayerRows
from hw.config import AccelConfig
from pruning import golden

from .pe_jobs import make_array_run, make_run, run_array, run_rows

__all__ = ["LayerSpec", "check_layer", "run_layer", "STATS_KEYS", "BACKENDS"]

STATS_KEYS = ("cycles", "dense_macs", "effectual_macs", "issued_macs", "pe_utilization",
              "saturated", "busy_cycles", "stall_cycles", "pes", "lanes", "mode", "phase",
              "config", "backend")

# Output rows (tiles of layer rows) per simulator invocation, over all PEs:
# bounds memory and gives progress output.
_ROWS_PER_CHUNK = 512
_COMMANDS_PER_CALL = 16384


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
    """Check a layer phase against SPEC section 2 and ``config``; returns a :class:`LayerSpec`."""
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


BACKENDS = ("accelerator", "array", "pe")


def _run_accelerator(config, spec, layer, groups, *, dense, simulator, progress, totals, output,
                     axi_patterns, capacity):
    """Groups -> runs of the top level (buffers, controller, AXI) -> output and counters."""
    from gen.program import build_runs

    from .accel_jobs import make_entry, run_accelerator

    runs = build_runs(config, layer.task_phase, groups, stride=spec.stride,
                      kernel=layer.task_kernel, dense=dense, capacity=capacity)
    if not runs:
        return      # no row with work (sparse mode, all-zero operands): nothing to run
    started = time.perf_counter()
    # Runs per simulator invocation, up to _COMMANDS_PER_CALL row commands:
    # bounds the job's size and gives progress output.
    calls, commands = [[]], 0
    for run in runs:
        if calls[-1] and commands + run.commands > _COMMANDS_PER_CALL:
            calls.append([])
            commands = 0
        calls[-1].append(run)
        commands += run.commands
    done_runs = 0
    for chunk in calls:
        label = f"{spec.phase} runs {done_runs + 1}..{done_runs + len(chunk)}"
        entry = make_entry(chunk, label=label, patterns=axi_patterns, seed=done_runs)
        (results,) = run_accelerator(config, [entry],
                                     simulator=simulator, name=f"layer-{spec.phase}")
        for run, result in zip(chunk, results):
            position = 0
            for keys, columns, rows in run.groups:
                length = rows[0].out_len
                for unit, key in enumerate(keys):
                    if key is not None:    # PEs without a row of their own made zeros
                        # Added, not assigned: the pieces of a split row add up.
                        layer.output_view(output, key, columns)[...] += \
                            result["outputs"][unit][position:position + length]
                position += length
            for name in ("cycles", "busy_cycles", "stall_cycles", "issued_macs",
                         "effectual_macs"):
                totals[name] += result[name]
            totals["saturated"] |= result["saturated"]
            totals["load_beats"] += run.load_beats
            totals["output_beats"] += run.outputs_per_pe * config.pes
        done_runs += len(chunk)
        totals["runs"] = done_runs
        if progress:
            print(f"  {done_runs}/{len(runs)} runs of the accelerator, {totals['cycles']} "
                  f"cycles ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)


def _run_groups(config, spec, layer, groups, *, pes, backend, simulator, progress, totals, output):
    """Groups -> the PE array (or one PE) fed directly -> output and counters."""
    started = time.perf_counter()
    chunk_size = max(1, _ROWS_PER_CHUNK // pes)
    for first in range(0, len(groups), chunk_size):
        chunk = groups[first:first + chunk_size]
        rows = [group_rows for _, _, group_rows in chunk]
        label = f"{spec.phase} groups {first}..{first + len(chunk) - 1}"
        if backend == "array":
            present = [[key is not None for key in keys] for keys, _, _ in chunk]
            (result,) = run_array(config, [make_array_run(config, rows, label=label,
                                                          present=present)],
                                  simulator=simulator, name=f"layer-{spec.phase}")
        else:
            (result,) = run_rows(config, [make_run(config, [r[0] for r in rows], label=label)],
                                 simulator=simulator, name=f"layer-{spec.phase}")
        for number, (keys, columns, group_rows) in enumerate(chunk):
            for unit, key in enumerate(keys):
                if key is not None:    # PEs without a row of their own made zeros
                    # Added: the pieces of a split row add up.
                    layer.output_view(output, key, columns)[...] += result["per_pe"][unit][number]
        for name in ("cycles", "busy_cycles", "issued_macs", "effectual_macs"):
            totals[name] += result[name]
        totals["saturated"] |= result["saturated"]
        if progress:
            print(f"  {first + len(chunk)}/{len(groups)} row groups of {pes} PE(s), "
                  f"{totals['cycles']} cycles ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)


def run_layer(config, phase, *, x=None, w=None, dy=None, mask=None, stride=1, pad=0,
              kernel=None, dense=False, simulator=None, progress=False, backend="accelerator",
              axi_patterns=None, capacity=None):
    """Run one layer phase on the RTL; returns ``(output, stats)``.

    ``output`` is the exact SPEC section 2 result as ``int64`` (raw
    accumulator values): ``y`` (N, K, E, F) for FF, ``dx`` (N, C, H, W) for
    BP (zero where ``mask`` is zero), ``dw`` (K, C, R, S) for WG. ``stats``
    holds the keys of :data:`STATS_KEYS`. ``backend`` is ``"accelerator"``
    (the top level: buffers loaded over AXI4-Stream, the controller running
    row commands on the array, counters read over AXI4-Lite; cycles are the
    compute cycles of its runs), ``"array"`` (the PE array fed directly) or
    ``"pe"`` (one PE). For tests, the accelerator back end takes
    ``axi_patterns`` (pause patterns of ``s_axis`` and ``m_axis``, see
    :mod:`cosim.accel_tb`) and a smaller buffer ``capacity``
    (:class:`gen.program.Capacity`) that forces several runs. The result is
    also checked against the golden model; a difference raises
    ``RuntimeError``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    spec = check_layer(config, phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                       kernel=kernel)
    if not dense and not config.skipping:
        raise ValueError(f"config {config.name} is dense-only (skipping=False); "
                         f"run it in dense mode")
    pes = config.pes if backend in ("array", "accelerator") else 1
    layer = LayerRows.for_config(config, spec.phase, x=spec.x, w=spec.w, dy=spec.dy,
                                 mask=spec.mask, stride=spec.stride, pad=spec.pad,
                                 input_hw=spec.input_hw, kernel_hw=spec.kernel_hw, pes=pes,
                                 dense=dense)
    groups = list(layer.groups(config, pes, dense=dense))
    output = np.zeros(spec.output_shape, dtype=np.int64)
    totals = dict(cycles=0, busy_cycles=0, stall_cycles=0, issued_macs=0, effectual_macs=0,
                  dense_macs=0, saturated=0)
    totals["dense_macs"], golden_effectual = golden.count_macs(
        spec.phase, x=spec.x, w=spec.w, dy=spec.dy, mask=spec.mask, stride=spec.stride,
        pad=spec.pad, input_hw=spec.input_hw, kernel_hw=spec.kernel_hw)
    if backend == "accelerator":
        totals.update(runs=0, load_beats=0, output_beats=0)
        _run_accelerator(config, spec, layer, groups, dense=dense, simulator=simulator,
                         progress=progress, totals=totals, output=output,
                         axi_patterns=axi_patterns, capacity=capacity)
    else:
        _run_groups(config, spec, layer, groups, pes=pes, backend=backend, simulator=simulator,
                    progress=progress, totals=totals, output=output)
    expected = golden.conv_phase(spec.phase, x=spec.x, w=spec.w, dy=spec.dy, mask=spec.mask,
                                 stride=spec.stride, pad=spec.pad, input_hw=spec.input_hw,
                                 kernel_hw=spec.kernel_hw)
    if totals["effectual_macs"] != golden_effectual:
        raise RuntimeError(f"the RTL counted {totals['effectual_macs']} effectual MACs, the "
                           f"golden model {golden_effectual}")
    if not np.array_equal(output, expected):
        first = tuple(int(i) for i in np.argwhere(output != expected)[0])
        raise RuntimeError(f"RTL result differs from the golden model first at {first}: "
                           f"RTL {output[first]}, golden {expected[first]}")
    if backend != "accelerator":
        # The top level counts cycles in which no PE issues; here it follows
        # from the busy cycles, by the same definition.
        totals["stall_cycles"] = totals["cycles"] - totals["busy_cycles"]
    work = totals["dense_macs"] if dense else totals["effectual_macs"]
    stats = {
        **totals,
        "pe_utilization": work / (max(totals["cycles"], 1) * config.lanes * pes),
        "pes": pes, "lanes": config.lanes, "mode": "dense" if dense else "sparse",
        "phase": spec.phase, "config": config.name, "backend": backend,
    }
    return output, stats
