"""Integer training of a small CNN: the golden training loop the RTL is checked against.

Every number of a training step is an integer with a power-of-two scale
(:mod:`pruning.fixedpoint`), and every step is deterministic, so two runs
from the same settings agree bit for bit. The three convolutions of each
layer (FF, BP, WG) go through a *conv backend*: :func:`golden_backend` (the
exact reference of :mod:`pruning.golden`) or any function with its
signature, such as the co-simulated accelerator (``cosim.train``). The host
does the rest with the project's one set of fixed-point rules:

- operands reach the convolutions as ``data_width``-bit integers; results
  come back as exact accumulator values and are narrowed to ``data_width``
  bits at the largest scale that holds them (:func:`narrow`: round half to
  even, never saturating);
- ReLU, 2x2 max-pooling (ties go to the first position, row-major) and
  their backward passes are exact on integers;
- the classifier (a linear layer without bias) and the softmax
  cross-entropy loss run on the host, the loss in float64 on the exact
  logits; its gradient is converted to fixed point once;
- ``dy`` of every conv layer (the gradient with respect to its output, after
  the ReLU derivative and the max-pool backward) is pruned stochastically at
  rate ``p`` (:func:`pruning.prune.stochastic_prune`) with the loop's own
  generator before that layer's BP and WG use it;
- BP of a layer computes ``dx`` only where its input ``x`` is nonzero (the
  ReLU derivative of the layer below, docs/SPEC.md, Sparsity); the first layer has
  no BP (nothing below it needs ``dx``), as in any training framework;
- weights are kept in 32-bit *master* copies (``weight_frac_bits``
  fraction bits) and updated by SGD with momentum, learning rate
  ``2**-lr_shift`` and momentum ``1 - 2**-momentum_shift``, with
  rounding shifts; the convolutions use the master weights narrowed to
  ``data_width`` bits.

:func:`train_lockstep` runs a loop on a backend next to a golden loop and
stops at the first step after which their weights differ.

This module imports no hardware: the backend is handed in.
"""

from __future__ import annotations

import concurrent.futures
import math
import numbers
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import golden
from .golden import _check_int
from .fixedpoint import FixedPointFormat, from_fixed, quantize, requantize, saturate, to_fixed
from .fixedpoint import choose_frac_bits
from .prune import _check_rate, stochastic_prune

__all__ = ["TrainingSettings", "TrainingState", "StepRecord", "IntegerCNNTrainer",
           "golden_backend", "narrow", "train_lockstep", "TrainingMismatch", "first_difference",
           "add_training_arguments", "settings_from_arguments", "LAYERS", "PARAMETERS"]

#: The conv layers, input to output; a 2x2 max-pool follows the ReLU of the last two.
LAYERS = ("conv1", "conv2", "conv3")
POOLED = ("conv2", "conv3")
#: Trained tensors, in the order they are compared.
PARAMETERS = LAYERS + ("fc",)
# Master weights: signed 32-bit integers.
MASTER_WIDTH = 32
KERNEL = 3
PAD = 1
CLASSES = 10


@dataclass(frozen=True)
class TrainingSettings:
    """What an integer training run is: the network, the batch, the arithmetic, the seed.

    Parameters
    ----------
    channels : tuple of 3 ints
        Output channels of ``conv1``, ``conv2``, ``conv3`` (3x3, padding 1,
        on 8x8 digits: ``8x8 -> conv1 -> conv2 -> pool -> 4x4 -> conv3 ->
        pool -> 2x2 -> fc``).
    batch : int
        Images per step.
    p : float
        Pruning rate of ``dy`` in ``[0, 1)``.
    lr_shift : int
        Learning rate ``2**-lr_shift``.
    momentum_shift : int
        Momentum ``1 - 2**-momentum_shift`` (0: plain SGD).
    data_width : int
        Bits of every operand the convolutions see (the hardware's).
    weight_frac_bits : int
        Fraction bits of the 32-bit master weights.
    seed : int
        Initial weights, the batch order and the pruning draws.
    """

    channels: tuple = (8, 16, 16)
    batch: int = 16
    p: float = 0.9
    lr_shift: int = 3
    momentum_shift: int = 1
    data_width: int = 16
    weight_frac_bits: int = 24
    seed: int = 0

    def __post_init__(self):
        if (not isinstance(self.channels, tuple) or len(self.channels) != len(LAYERS)):
            raise TypeError(f"channels must be a tuple of {len(LAYERS)} ints, "
                            f"not {self.channels!r}")
        for value in self.channels:
            _check_int("channels", value, 1, 1024)
        _check_int("batch", self.batch, 1, 4096)
        _check_rate(self.p)
        _check_int("lr_shift", self.lr_shift, 0, 16)
        _check_int("momentum_shift", self.momentum_shift, 0, 16)
        _check_int("data_width", self.data_width, 4, 32)
        _check_int("weight_frac_bits", self.weight_frac_bits, 8, 28)
        _check_int("seed", self.seed, 0, 2**62)

    @property
    def learning_rate(self):
        return math.ldexp(1.0, -self.lr_shift)

    @property
    def momentum(self):
        return 1.0 - math.ldexp(1.0, -self.momentum_shift)

    @property
    def master_format(self):
        return FixedPointFormat(MASTER_WIDTH, self.weight_frac_bits)

    def shapes(self):
        """``{parameter: shape}`` of the trained tensors."""
        c1, c2, c3 = self.channels
        return {"conv1": (c1, 1, KERNEL, KERNEL), "conv2": (c2, c1, KERNEL, KERNEL),
                "conv3": (c3, c2, KERNEL, KERNEL), "fc": (CLASSES, c3 * 2 * 2)}


@dataclass
class TrainingState:
    """Master weights and momentum buffers (``int64`` tensors at the master format)."""

    weights: dict
    velocity: dict
    steps: int = 0

    def copy(self):
        return TrainingState({k: v.clone() for k, v in self.weights.items()},
                             {k: v.clone() for k, v in self.velocity.items()}, self.steps)


@dataclass
class StepRecord:
    """What one step did: loss, accuracy on the batch, what each convolution reported,
    the operands' densities, and how many values saturated."""

    step: int
    loss: float
    correct: int
    batch: int
    # (layer, phase) -> the backend's report of that convolution (cycles etc.).
    convolutions: dict = field(default_factory=dict)
    # Nonzero fractions: "x" per layer (FF input), "dy" and "dy_pruned" per
    # layer, "mask" per layer with a BP.
    densities: dict = field(default_factory=dict)
    saturated: int = 0
    seconds: float = 0.0


class TrainingMismatch(RuntimeError):
    """The backend's run and the golden run differ after a step."""


def golden_backend(phase, *, label, x=None, w=None, dy=None, mask=None, stride, pad, kernel=None):
    """The exact reference convolution (:func:`pruning.golden.conv_phase`); reports nothing."""
    return golden.conv_phase(phase, x=x, w=w, dy=dy, mask=mask, stride=stride, pad=pad,
                             kernel_hw=kernel), {}


def narrow(values, frac_bits, width):
    """``(values, frac_bits)`` of exact integers moved to ``width`` bits at the
    largest scale that holds their largest magnitude (:func:`choose_frac_bits`),
    rounding half to even; nothing saturates."""
    values = torch.as_tensor(values, dtype=torch.int64)
    target = choose_frac_bits(from_fixed(values, frac_bits), width)
    # A scale finer than the values' own adds only zero bits: keep theirs.
    target = min(target, frac_bits) if values.any() else frac_bits
    result = requantize(values, frac_bits, FixedPointFormat(width, target))
    if result.saturated:
        raise RuntimeError(f"internal error: narrowing to {width} bits saturated "
                           f"{result.saturated} values")
    return result.values, target


def _density(values):
    return float((values != 0).double().mean()) if values.numel() else 0.0


def _max_pool(values):
    """2x2 max-pooling of (N, C, H, W) integers: ``(pooled, argmax)``, ties to the first."""
    n, c, h, w = values.shape
    windows = values.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n, c, h // 2, w // 2, 4)
    # torch.max returns the first maximal index, so ties are deterministic.
    pooled, argmax = windows.max(dim=-1)
    return pooled, argmax


def _max_pool_backward(grad, argmax):
    """Route each pooled gradient to its window's argmax: (N, C, 2h, 2w)."""
    n, c, h, w = grad.shape
    windows = torch.zeros(n, c, h, w, 4, dtype=grad.dtype)
    windows.scatter_(-1, argmax.unsqueeze(-1), grad.unsqueeze(-1))
    return windows.reshape(n, c, h, w, 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * h, 2 * w)


class IntegerCNNTrainer:
    """The integer training loop of :class:`TrainingSettings` on scikit-learn's digits.

    Parameters
    ----------
    settings : TrainingSettings
    data : pruning.digits.DigitsData or None
        Default: :func:`pruning.digits.load_digits_data` with the settings' seed.
    backend : callable or None
        The convolutions (default :func:`golden_backend`): called as
        ``backend(phase, label=..., x=..., w=..., dy=..., mask=..., stride=1,
        pad=1, kernel=(3, 3))`` with ``int64`` numpy operands, it returns
        ``(exact result as an int64 array, report dict)``.
    workers : int
        1, or 2 to run each layer's WG and BP convolutions at the same time
        (for a backend that spends its time outside Python, such as a
        simulator process); the results do not depend on it.
    """

    def __init__(self, settings, *, data=None, backend=None, workers=1):
        from .digits import load_digits_data

        if not isinstance(settings, TrainingSettings):
            raise TypeError(f"settings must be a TrainingSettings, not {settings!r}")
        if backend is not None and not callable(backend):
            raise TypeError(f"backend must be callable, not {backend!r}")
        _check_int("workers", workers, 1, 2)
        self.settings = settings
        self.backend = backend or golden_backend
        data = data if data is not None else load_digits_data(seed=settings.seed)
        # Pixels are k/16 in [0, 1]: exact at data_width - 2 fraction bits.
        self.input_format = FixedPointFormat(settings.data_width, settings.data_width - 2)
        self.train_images = quantize(data.train_images, self.input_format).values
        self.train_labels = data.train_labels
        self.test_images = quantize(data.test_images, self.input_format).values
        self.test_labels = data.test_labels
        self.state = self.initial_state(settings)
        self._batches = torch.Generator().manual_seed(settings.seed + 1)
        self._pruning = torch.Generator().manual_seed(settings.seed + 2)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else None

    @staticmethod
    def initial_state(settings):
        """He-normal conv weights and a uniform ``(-1/sqrt(fan_in), 1/sqrt(fan_in))``
        classifier (PyTorch's default), from ``settings.seed``, at the master format."""
        generator = torch.Generator().manual_seed(settings.seed)
        weights = {}
        for name, shape in settings.shapes().items():
            fan_in = int(np.prod(shape[1:]))
            if name == "fc":
                bound = 1.0 / math.sqrt(fan_in)
                real = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            else:
                real = torch.randn(shape, generator=generator, dtype=torch.float64) \
                    * math.sqrt(2.0 / fan_in)
            weights[name] = quantize(real, settings.master_format).values
        return TrainingState(weights, {k: torch.zeros_like(v) for k, v in weights.items()})

    # -- the step --------------------------------------------------------------

    def _conv(self, record, layer, phase, **operands):
        operands = {name: None if value is None else value.numpy()
                    for name, value in operands.items()}
        result, report = self.backend(phase, label=f"step {record.step} {layer} {phase}",
                                      stride=1, pad=PAD, kernel=(KERNEL, KERNEL), **operands)
        record.convolutions[(layer, phase)] = dict(report or {})
        result = np.asarray(result)
        x, w, dy, mask = (operands.get(name) for name in ("x", "w", "dy", "mask"))
        # 3x3 kernels with padding 1 keep the image size.
        expected = {"ff": lambda: (x.shape[0], w.shape[0], *x.shape[2:]),
                    "bp": lambda: mask.shape,
                    "wg": lambda: (dy.shape[1], x.shape[1], KERNEL, KERNEL)}[phase]()
        if result.shape != tuple(expected) or not np.issubdtype(result.dtype, np.integer):
            raise ValueError(f"step {record.step} {layer} {phase}: the backend returned "
                             f"{result.dtype} {result.shape}, not integers of shape "
                             f"{tuple(expected)}")
        return torch.as_tensor(result, dtype=torch.int64)

    def _submit(self, record, layer, phase, **operands):
        """:meth:`_conv` on the worker pool (a future), or at once with one worker."""
        if self._pool is None:
            future = concurrent.futures.Future()
            future.set_result(self._conv(record, layer, phase, **operands))
            return future
        return self._pool.submit(self._conv, record, layer, phase, **operands)

    def close(self):
        """Shut the worker pool down (also on ``with`` exit)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _weights(self):
        """The master weights as the convolutions' operands: ``{name: (values, frac)}``."""
        return {name: narrow(master, self.settings.weight_frac_bits, self.settings.data_width)
                for name, master in self.state.weights.items()}

    def forward(self, images, record=None, weights=None):
        """Activations of a batch of fixed-point images; with a ``record``, the
        convolutions go through the backend, else through the golden model."""
        weights = weights or self._weights()
        frac = self.input_format.frac_bits
        x, acts = images, {}
        for layer in LAYERS:
            w, w_frac = weights[layer]
            if record is None:
                y = golden.conv_ff(x, w, 1, PAD)
            else:
                record.densities.setdefault("x", {})[layer] = _density(x)
                y = self._conv(record, layer, "ff", x=x, w=w)
            y_frac = frac + w_frac
            relu = y.clamp(min=0)
            argmax = None
            if layer in POOLED:
                relu, argmax = _max_pool(relu)
            acts[layer] = {"x": x, "x_frac": frac, "y": y, "argmax": argmax}
            x, frac = narrow(relu, y_frac, self.settings.data_width)
        w, w_frac = weights["fc"]
        flat = x.reshape(x.shape[0], -1)
        logits = flat @ w.T
        acts["fc"] = {"x": flat, "x_frac": frac, "logits": logits, "logits_frac": frac + w_frac}
        return acts

    def step(self):
        """One training step on the next batch; returns its :class:`StepRecord`."""
        settings, started = self.settings, time.perf_counter()
        width = settings.data_width
        batch = torch.randint(len(self.train_labels), (settings.batch,),
                              generator=self._batches)
        labels = self.train_labels[batch]
        record = StepRecord(step=self.state.steps + 1, loss=0.0, correct=0,
                            batch=settings.batch)
        weights = self._weights()
        acts = self.forward(self.train_images[batch], record, weights)

        # Loss and its gradient: float64 on the exact logits, then fixed point.
        fc = acts["fc"]
        logits = from_fixed(fc["logits"], fc["logits_frac"])
        log_probs = torch.log_softmax(logits, dim=1)
        record.loss = float(-log_probs[torch.arange(len(labels)), labels].mean())
        record.correct = int((logits.argmax(dim=1) == labels).sum())
        one_hot = torch.nn.functional.one_hot(labels, CLASSES).to(torch.float64)
        d_logits = to_fixed((log_probs.exp() - one_hot) / len(labels), width)
        d_logits, d_frac = d_logits.values, d_logits.format.frac_bits

        grads = {"fc": (d_logits.T @ fc["x"], d_frac + fc["x_frac"])}
        w_fc, w_fc_frac = weights["fc"]
        grad, grad_frac = narrow(d_logits @ w_fc, d_frac + w_fc_frac, width)
        grad = grad.reshape(acts["conv3"]["y"].shape[0], -1, 2, 2)
        for layer in reversed(LAYERS):
            act = acts[layer]
            if layer in POOLED:
                grad = _max_pool_backward(grad, act["argmax"])
            dy = torch.where(act["y"] > 0, grad, torch.zeros_like(grad))
            pruned = stochastic_prune(from_fixed(dy, grad_frac), settings.p, self._pruning)
            pruned = to_fixed(pruned, width)
            record.saturated += pruned.saturated
            dy_pruned, dy_frac = pruned.values, pruned.format.frac_bits
            record.densities.setdefault("dy", {})[layer] = _density(dy)
            record.densities.setdefault("dy_pruned", {})[layer] = _density(dy_pruned)
            # WG and BP of a layer need only dy: with two workers they run at once.
            weight_grad = self._submit(record, layer, "wg", x=act["x"], dy=dy_pruned)
            input_grad = None       # the first layer has no BP: nothing below needs dx
            if layer != LAYERS[0]:
                mask = (act["x"] != 0).to(torch.int64)
                record.densities.setdefault("mask", {})[layer] = _density(mask)
                w, w_frac = weights[layer]
                input_grad = self._submit(record, layer, "bp", dy=dy_pruned, w=w, mask=mask)
            grads[layer] = (weight_grad.result(), act["x_frac"] + dy_frac)
            if input_grad is not None:
                grad, grad_frac = narrow(input_grad.result(), dy_frac + w_frac, width)
        record.saturated += self._update(grads)
        self.state.steps += 1
        record.seconds = time.perf_counter() - started
        return record

    def _update(self, grads):
        """SGD with momentum on the master weights; returns how many values saturated."""
        settings, fmt = self.settings, self.settings.master_format
        frac, saturated = settings.weight_frac_bits, 0
        for name in PARAMETERS:
            grad, grad_frac = grads[name]
            grad = requantize(grad, grad_frac, fmt)
            velocity = self.state.velocity[name]
            decay = requantize(velocity, frac + settings.momentum_shift, fmt).values
            velocity, count = saturate(velocity - decay + grad.values, MASTER_WIDTH)
            step = requantize(velocity, frac + settings.lr_shift, fmt).values
            weights, count_w = saturate(self.state.weights[name] - step, MASTER_WIDTH)
            self.state.velocity[name], self.state.weights[name] = velocity, weights
            saturated += grad.saturated + count + count_w
        return saturated

    # -- evaluation ------------------------------------------------------------

    def accuracy(self, chunk=512):
        """Fraction of the test images classified correctly (golden integer forward)."""
        weights, correct = self._weights(), 0
        for first in range(0, len(self.test_labels), chunk):
            acts = self.forward(self.test_images[first:first + chunk], weights=weights)
            predicted = acts["fc"]["logits"].argmax(dim=1)
            correct += int((predicted == self.test_labels[first:first + chunk]).sum())
        return correct / len(self.test_labels)


def add_training_arguments(parser):
    """The command-line options of a :class:`TrainingSettings` (and ``--steps``), with its
    defaults; :func:`settings_from_arguments` reads them back."""
    from .cli import non_negative_int, positive_int, rate

    defaults = TrainingSettings()
    parser.add_argument("--steps", type=positive_int, default=50)
    parser.add_argument("--batch", type=positive_int, default=defaults.batch,
                        help=f"images per step (default {defaults.batch})")
    parser.add_argument("--p", type=rate, default=defaults.p,
                        help=f"pruning rate of dy (default {defaults.p:g})")
    parser.add_argument("--channels", type=positive_int, nargs=3,
                        default=list(defaults.channels), metavar=("C1", "C2", "C3"),
                        help="output channels of conv1..conv3 (default "
                             f"{' '.join(map(str, defaults.channels))})")
    parser.add_argument("--lr-shift", type=non_negative_int, default=defaults.lr_shift,
                        help=f"learning rate 2^-N (default {defaults.lr_shift})")
    parser.add_argument("--momentum-shift", type=non_negative_int,
                        default=defaults.momentum_shift,
                        help=f"momentum 1 - 2^-N (default {defaults.momentum_shift}: "
                             f"{defaults.momentum:g}; 0: none)")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed)


def settings_from_arguments(args, **overrides):
    """The :class:`TrainingSettings` of options added by :func:`add_training_arguments`."""
    return TrainingSettings(channels=tuple(args.channels), batch=args.batch, p=args.p,
                            lr_shift=args.lr_shift, momentum_shift=args.momentum_shift,
                            seed=args.seed, **overrides)


def first_difference(state, reference):
    """``None`` if the two states are equal, else ``(tensor, index, value, reference)``."""
    for kind in ("weights", "velocity"):
        for name in PARAMETERS:
            a, b = getattr(state, kind)[name], getattr(reference, kind)[name]
            if not torch.equal(a, b):
                index = tuple(int(i) for i in torch.nonzero(a != b)[0])
                return f"{kind}[{name!r}]", index, int(a[index]), int(b[index])
    return None


def train_lockstep(settings, steps, backend, *, data=None, on_step=None, workers=1):
    """Train on ``backend`` and, step by step, in the golden loop; compare after each step.

    Both loops start from the same weights and draw the same batches and
    pruning decisions from their own generators. After every step the master
    weights and momentum buffers must be equal bit for bit; the first
    difference raises :class:`TrainingMismatch` naming the step, the tensor
    and the index. ``on_step(record)`` is called after each checked step;
    ``workers`` is the backend trainer's (:class:`IntegerCNNTrainer`).
    Returns ``(trainer, records)``: the backend's trainer and its
    :class:`StepRecord` s.
    """
    _check_int("steps", steps, 1, 10**6)
    if data is None:
        from .digits import load_digits_data
        data = load_digits_data(seed=settings.seed)
    device = IntegerCNNTrainer(settings, data=data, backend=backend, workers=workers)
    reference = IntegerCNNTrainer(settings, data=data)
    records = []
    with device:
        for _ in range(steps):
            record = device.step()
            expected = reference.step()
            difference = first_difference(device.state, reference.state)
            if difference is None and record.loss != expected.loss:
                difference = ("loss", (), record.loss, expected.loss)
            if difference is not None:
                name, index, value, wanted = difference
                raise TrainingMismatch(
                    f"after step {record.step} the backend's {name}{list(index)} is {value}, "
                    f"the golden loop's {wanted}: the runs differ from this step on")
            records.append(record)
            if on_step is not None:
                on_step(record)
    return device, records

