"""Constrained-random regression of layer phases on the accelerator top level.

Case ``i`` of seed ``s`` is drawn from its own generator
(``numpy.random.default_rng([s, i])``), so any case can be drawn again alone
(``python -m cosim random --seed s --case i``) without drawing the others.
A case is one layer phase over everything the config supports:

- the phase (FF, BP with a ReLU mask, a random mask or none, WG), stride
  ``1..max_stride``, padding ``0..max_pad``, kernels ``1..max_kernel`` high
  and wide (square or not);
- input rows wider than ``max_row`` (tiled), channel and filter counts that
  fill the array or not, batch 1..4, and buffers shrunk on the host side so
  that the layer needs several runs;
- values small, over the whole ``data_width`` range, at its extremes, or
  one-signed at full scale so that sums saturate ``acc_width`` where the
  layer is deep enough (every product of an output of one sign, so the
  saturated value does not depend on the order of accumulation and the
  golden model knows it: :func:`pruning.golden.saturating_phase`);
- densities from 0 (all zero) to 1 (fully dense) per operand;
- random pauses on ``s_axis``, ``m_axis`` and every AXI4-Lite channel.

Each case runs dense and sparse (:func:`cosim.layer_speedup.compare_modes`):
both outputs bit-exact with the golden model, the saturation flag and the
effectual-MAC counter exact, and the cycle model within
its tolerance of the RTL in both modes (:func:`gen.model.cycles.within_tolerance`).
"""

from __future__ import annotations

import queue
import shlex
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen.model.cycles import TOLERANCE, TOLERANCE_CYCLES
from gen.compiler.runs import Capacity
from hw.config import AccelConfig
from pruning import golden

from .layer import waves_path
from .layer_speedup import compare_modes, phase_operands

__all__ = ["RandomCase", "draw_case", "run_case", "run_random", "CaseResult", "PHASES",
           "format_summary", "MAX_DENSE_MACS"]

#: The phases a case is drawn from (``--phases``).
PHASES = ("ff", "bp", "wg")

#: Dense MACs a case may hold: a few thousand cycles on the small array.
MAX_DENSE_MACS = 60_000

_VALUE_KINDS = ("small", "full range", "extremes", "one-signed full scale")
_MASK_KINDS = ("relu", "random", "none")


@dataclass
class RandomCase:
    """One drawn layer phase, with everything needed to run it."""

    seed: int
    index: int
    phase: str
    operands: dict
    stride: int
    pad: int
    values: str
    mask_kind: str | None
    densities: dict
    capacity: Capacity | None = None
    patterns: dict | None = None
    notes: list = field(default_factory=list)

    @property
    def kernel(self):
        return tuple(self.operands["w"].shape[2:]) if "w" in self.operands \
            else self.operands["kernel"]

    def describe(self):
        """One line: geometry, operands, values, densities, buffers and AXI pauses."""
        ops = self.operands
        r, s = self.kernel
        text = [f"{self.phase} {r}x{s} s{self.stride} p{self.pad}"]
        if "x" in ops:
            text.append(f"x {tuple(ops['x'].shape)}")
        if "dy" in ops:
            text.append(f"dy {tuple(ops['dy'].shape)}")
        if "w" in ops:
            text.append(f"w {tuple(ops['w'].shape)}")
        if self.phase == "bp":
            text.append(f"mask {self.mask_kind}")
        text.append(f"{self.values} values")
        text.append("densities " + " ".join(f"{k} {v:.2f}" for k, v in self.densities.items()))
        if self.capacity is not None:
            c = self.capacity
            text.append(f"buffers {c.program}/{c.operand}/{c.stationary}/{c.mask}/{c.outputs}")
        if self.patterns:
            text.append("AXI " + " ".join(f"{k} {v:.2f}" for k, v in self.patterns.items()))
        return ", ".join(text + self.notes)

    def save(self, folder, config_name):
        """Write the operands as ``.npy`` files into ``folder``; returns the
        ``python -m cosim layer`` command that runs them (one mode, without the
        case's shrunken buffers and AXI pauses)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        words = ["python", "-m", "cosim", "layer", "--phase", self.phase]
        for name, value in self.operands.items():
            if name == "kernel":
                words += ["--kernel", *map(str, value)]
                continue
            path = folder / f"{name}.npy"
            np.save(path, value)
            words += [f"--{name}", str(path)]
        words += ["--stride", str(self.stride), "--pad", str(self.pad), "--config", config_name,
                  "--out", str(folder / "out.npy"), "--stats", str(folder / "stats.json")]
        return shlex.join(words)

    def command(self, config_name, *, waves=None):
        """The command that runs this case alone."""
        words = ["python", "-m", "cosim", "random", "--seed", str(self.seed), "--case",
                 str(self.index), "--config", config_name]
        if waves:
            words += ["--waves", str(waves)]
        return shlex.join(words)


def _operand(rng, shape, density, values, config, sign=None):
    """Integers of ``shape``: nonzero with probability ``density``, drawn as ``values`` says."""
    low, high = config.data_min, config.data_max
    if values == "small":
        data = rng.integers(-20, 21, shape)
    elif values == "full range":
        data = rng.integers(low, high + 1, shape)
    elif values == "extremes":
        data = rng.choice(np.array([low, low + 1, -1, 1, high - 1, high]), shape)
    else:   # one-signed full scale: the largest magnitudes of one sign
        if sign > 0:
            data = rng.integers(high - high // 4, high + 1, shape)
        else:
            data = rng.integers(low, low - low // 4, shape)
    data = np.where(data == 0, 1, data)      # zeros only where the density puts them
    data[rng.random(shape) >= density] = 0
    return data.astype(np.int64)


def _density(rng):
    """0 (all zero), 1 (fully dense) or anything between."""
    pick = rng.random()
    if pick < 0.04:
        return 0.0
    if pick < 0.2:
        return 1.0
    return float(rng.uniform(0.05, 1.0))


def _geometry(rng, config):
    """Stride, padding, kernel, input size, channels, filters and batch."""
    stride = int(rng.integers(1, config.max_stride + 1))
    pad = int(rng.integers(0, config.max_pad + 1))

    def taps():
        # Mostly small kernels, the largest supported ones too.
        high = min(5, config.max_kernel) if rng.random() < 0.7 else config.max_kernel
        return int(rng.integers(1, high + 1))

    r_len = taps()
    s_len = r_len if rng.random() < 0.4 else taps()
    # Rows wider than max_row in a third of the cases (tiled by the host).
    if rng.random() < 0.35:
        width = int(rng.integers(config.max_row + 1, 2 * config.max_row + 8))
    else:
        width = int(rng.integers(1, config.max_row + 1))
    height = int(rng.integers(1, 12))
    width, height = max(width, s_len - 2 * pad), max(height, r_len - 2 * pad)
    pes = config.pes
    channels = int(rng.integers(1, 2 * pes + 2))
    filters = int(rng.integers(1, 2 * pes + 2))
    batch = int(rng.integers(1, 5))
    return stride, pad, (r_len, s_len), [batch, channels, height, width], filters


def _dense_macs(phase, stride, pad, kernel, size, filters):
    batch, channels, height, width = size
    out = [golden.output_size(i, r, stride, pad) for i, r in zip((height, width), kernel)]
    return batch * channels * filters * out[0] * out[1] * kernel[0] * kernel[1]


def _check_arguments(config, *, seed, indices, phases, jobs=1):
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    for name, value in [("seed", seed)] + [("case index", index) for index in indices]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, not {value!r}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, not {value!r}")
    phases = tuple(phases)
    if not phases or any(phase not in PHASES for phase in phases):
        raise ValueError(f"phases must be some of {', '.join(PHASES)}, not {phases!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, not {jobs!r}")
    if not config.skipping:
        raise ValueError(f"config {config.name} is dense-only (skipping=False): the random "
                         f"regression compares dense and sparse mode")


def draw_case(config, seed, index, *, phases=PHASES):
    """Case ``index`` of ``seed`` for ``config``: a :class:`RandomCase`."""
    _check_arguments(config, seed=seed, indices=[index], phases=phases)
    rng = np.random.default_rng([seed, index])
    phase = str(rng.choice(list(phases)))
    stride, pad, kernel, size, filters = _geometry(rng, config)
    # Shrink the layer until it fits the work budget: batch, channels,
    # filters and height first, the width (which decides the tiling) last.
    while _dense_macs(phase, stride, pad, kernel, size, filters) > MAX_DENSE_MACS:
        batch, channels, height, width = size
        floor_h = max(1, kernel[0] - 2 * pad)
        floor_w = max(1, kernel[1] - 2 * pad)
        choices = [i for i, (value, floor) in enumerate(
            zip((batch, channels, height), (1, 1, floor_h))) if value > floor]
        if filters > 1:
            choices.append(4)
        if choices:
            pick = int(rng.choice(choices))
            if pick == 4:
                filters = max(1, filters // 2)
            else:
                size[pick] = max((1, 1, floor_h)[pick], size[pick] * 2 // 3)
        elif width > floor_w:
            size[3] = max(floor_w, width * 2 // 3)
        else:
            break   # the smallest layer of this kernel: run it as it is
    batch, channels, height, width = size
    r_len, s_len = kernel
    out_hw = tuple(golden.output_size(i, r, stride, pad)
                   for i, r in zip((height, width), kernel))

    values = str(rng.choice(_VALUE_KINDS, p=[0.25, 0.3, 0.15, 0.3]))
    densities = {"x": _density(rng), "w": 1.0 if rng.random() < 0.6 else _density(rng),
                 "dy": _density(rng)}
    if rng.random() < 0.03:
        densities = {name: 0.0 for name in densities}
    # One-signed values: x >= 0 (a ReLU output), w and dy each of one sign,
    # so every product of an output has the same sign.
    signs = {"x": 1, "w": int(rng.choice([-1, 1])), "dy": int(rng.choice([-1, 1]))}
    x = _operand(rng, (batch, channels, height, width), densities["x"], values, config,
                 signs["x"])
    w = _operand(rng, (filters, channels, r_len, s_len), densities["w"], values, config,
                 signs["w"])
    dy = _operand(rng, (batch, filters, *out_hw), densities["dy"], values, config, signs["dy"])
    mask_kind = None
    if phase == "bp":
        mask_kind = str(rng.choice(_MASK_KINDS, p=[0.45, 0.25, 0.3]))
    mask = {"relu": (x > 0).astype(np.int64),
            "random": (rng.random(x.shape) < rng.uniform(0.1, 0.9)).astype(np.int64),
            "none": None, None: None}[mask_kind]
    notes = []
    # Mixed signs at full scale can leave the accumulator's range in an
    # order-dependent way on narrow accumulators: halve the values until
    # every output is order-independent.
    halvings = 0
    while True:
        try:
            golden.saturating_phase(phase, acc_width=config.acc_width, x=x, w=w, dy=dy,
                                    mask=mask, stride=stride, pad=pad, input_hw=(height, width),
                                    kernel_hw=kernel)
            break
        except golden.OrderDependentSaturation:
            x, w, dy = x // 2, w // 2, dy // 2
            halvings += 1
    if halvings:
        notes.append(f"values halved {halvings}x to keep the saturation order-independent")

    operands = phase_operands(phase, x=x, w=w, dy=dy, mask=mask)
    if phase == "bp" and mask is None:
        operands = {"dy": dy, "w": w, "x": x}     # x gives BP its input size only
    capacity = None
    if rng.random() < 0.25:
        # Buffers shrunk on the host side: several load-compute-readout runs. The
        # stationary buffer holds at least a row's lines (a row command loads them all).
        row, lines = config.max_row, config.row_lines
        capacity = Capacity(program=int(rng.integers(8, 65)),
                            operand=int(rng.integers(row, 4 * row + 1)),
                            stationary=int(rng.integers(lines, lines + 7)),
                            mask=int(rng.integers(2, 5)),
                            outputs=int(rng.integers(2 * row, 8 * row + 1)))
    patterns = None
    if rng.random() < 0.5:
        patterns = {name: float(rng.uniform(0.3, 0.95)) for name in ("s_axis", "m_axis", "s_axil")}
    return RandomCase(seed=seed, index=index, phase=phase, operands=operands, stride=stride,
                      pad=pad, values=values, mask_kind=mask_kind, densities=densities,
                      capacity=capacity, patterns=patterns, notes=notes)


@dataclass
class CaseResult:
    """What one case gave: the comparison of both modes, or the failure."""

    case: RandomCase
    entry: dict | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self):
        return self.error is None


def run_case(config, case, *, session=None, simulator=None, waves=None):
    """Run ``case`` dense and sparse; returns the comparison entry, or raises on a difference.

    Bit-exactness, the saturation flag and the effectual-MAC counter are
    checked by :func:`cosim.layer.run_layer`; the cycle model's error here.
    """
    options = dict(stride=case.stride, pad=case.pad, simulator=simulator,
                   axi_patterns=case.patterns, capacity=case.capacity)
    if waves is None:
        options["session"] = session
    entry = compare_modes(config, case.phase, case.operands, waves=waves, **options)
    if not entry["model_within_tolerance"]:
        raise RuntimeError(
            f"the cycle model is off by {100 * entry['model_error']:.2f}% (tolerance "
            f"{100 * TOLERANCE:g}% or {TOLERANCE_CYCLES} cycles): RTL dense/sparse "
            f"{entry['dense_cycles']}/"
            f"{entry['sparse_cycles']}, model {entry['model_dense_cycles']}/"
            f"{entry['model_sparse_cycles']}")
    return entry


def _first_lines(error, lines=12):
    text = str(error).strip() or type(error).__name__
    if not isinstance(error, (RuntimeError, ValueError, AssertionError)):
        text = "".join(traceback.format_exception(error)).strip()
    kept = text.splitlines()
    return "\n".join(kept[:lines] + (["..."] if len(kept) > lines else []))


def run_random(config, *, seed, indices, phases=PHASES, jobs=1, simulator=None, waves=None,
               progress=True):
    """Run the cases ``indices`` of ``seed``; returns their :class:`CaseResult` s in order.

    ``jobs`` threads each keep a simulator session up (a failed case ends
    its session; the thread starts a new one). With ``waves`` every case
    runs on a simulator of its own that dumps ``<stem>-<case>-<mode>.fst``.
    """
    from .accel_jobs import accelerator_session

    indices = list(indices)
    _check_arguments(config, seed=seed, indices=indices, phases=phases, jobs=jobs)
    work = queue.Queue()
    for index in indices:
        work.put(index)
    results, lock = {}, threading.Lock()
    started = time.perf_counter()

    def report(result):
        with lock:
            results[result.case.index] = result
            if not progress:
                return
            done = len(results)
            failed = sum(not r.passed for r in results.values())
            head = (f"[{done}/{len(indices)}] case {result.case.index}: "
                    f"{result.case.describe()}: ")
            if result.passed:
                e = result.entry
                tail = (f"ok, dense {e['dense_cycles']} / sparse {e['sparse_cycles']} cycles, "
                        f"{e['runs']} run(s){', saturated' if e['saturated'] else ''}")
            else:
                tail = "FAILED: " + result.error.splitlines()[0]
            print(f"{head}{tail} ({result.seconds:.1f} s; {time.perf_counter() - started:.0f} s "
                  f"in all, {failed} failed)", file=sys.stderr, flush=True)

    def worker():
        session = None
        try:
            while True:
                try:
                    index = work.get_nowait()
                except queue.Empty:
                    return
                case_started = time.perf_counter()
                case = draw_case(config, seed, index, phases=phases)
                try:
                    if session is None and waves is None:
                        session = accelerator_session(config, simulator=simulator,
                                                      name="random")
                    entry = run_case(config, case, session=session, simulator=simulator,
                                     waves=waves_path(waves, index))
                    result = CaseResult(case, entry=entry)
                except Exception as error:     # reported with the case, the run goes on
                    result = CaseResult(case, error=_first_lines(error))
                    if session is not None:
                        # The session may be dead or mid-job: start a fresh one.
                        try:
                            session.close()
                        except Exception:
                            pass
                        session = None
                result.seconds = time.perf_counter() - case_started
                report(result)
        finally:
            if session is not None:
                session.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[index] for index in indices]


def format_summary(config, results, *, seconds, saved=None):
    """The failures, each with the command that reproduces it alone, then
    ``N passed, M failed``. ``saved``: a folder to write each failing case's
    operands into (``<folder>/seed<S>-case<I>/``), with a ``cosim layer``
    command for them."""
    lines = []
    failed = [r for r in results if not r.passed]
    for result in failed:
        case = result.case
        lines += [f"case {case.index} FAILED: {case.describe()}",
                  *("  " + line for line in result.error.splitlines()),
                  f"  reproduce: {case.command(config.name)}",
                  f"  with waveforms: {case.command(config.name, waves=f'case{case.index}.fst')}"]
        if saved is not None:
            folder = Path(saved) / f"seed{case.seed}-case{case.index}"
            lines.append(f"  operands in {folder}: {case.save(folder, config.name)}")
        lines.append("")
    passed = len(results) - len(failed)
    saturated = sum(1 for r in results if r.passed and r.entry["saturated"])
    runs = sum(r.entry["runs"] or 0 for r in results if r.passed)
    lines.append(f"{len(results)} cases on the {config.name} preset in {seconds:.0f} s "
                 f"({saturated} with saturated sums, {runs} sparse runs)")
    modelled = [r for r in results if r.entry is not None]
    if modelled:
        worst = max(modelled, key=lambda r: r.entry["model_error"])
        entry = worst.entry
        rtl, model = max(((entry[f"{mode}_cycles"], entry[f"model_{mode}_cycles"])
                          for mode in ("dense", "sparse")), key=lambda pair: abs(pair[1] - pair[0])
                         / max(pair[0], 1))
        lines.append(f"the cycle model is at most {100 * entry['model_error']:.2f}% off the "
                     f"RTL (case {worst.case.index}: {model} cycles predicted, {rtl} counted)")
    lines.append(f"{passed} passed, {len(failed)} failed")
    return "\n".join(lines)
