"""Capture the integer tensors that a real model's convolutions see in training.

:func:`capture` runs one forward and backward pass of a model on a batch with
gradient pruning at rate ``p`` and returns, for every ``Conv2d``, what the
hardware's three phases consume: ``x`` and ``w`` (FF, WG), the pruned ``dy``
(BP, WG) and the BP output mask ``x > 0``, all in fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .fixedpoint import FixedPointFormat, to_fixed
from .hooks import GradientPruner, conv_layers

__all__ = ["LayerCapture", "capture", "capture_digits"]


@dataclass(frozen=True)
class LayerCapture:
    """One convolution layer's operands as the hardware sees them.

    ``x`` (N, C, H, W), ``w`` (K, C, R, S) and ``dy`` (N, K, E, F) are
    ``int64`` numpy arrays in the given fixed-point formats; ``mask`` is a
    ``uint8`` array of ``x``'s shape, 1 where ``dx`` is needed (``x > 0``: the
    ReLU derivative of the layer below). ``densities`` holds the fraction of
    nonzero entries of ``x``, ``w``, ``dy_natural`` (float ``dy`` before
    pruning), ``dy`` (the pruned integer ``dy``) and ``mask``.
    """

    name: str
    stride: int
    pad: int
    x: np.ndarray
    w: np.ndarray
    dy: np.ndarray
    mask: np.ndarray
    x_format: FixedPointFormat
    w_format: FixedPointFormat
    dy_format: FixedPointFormat
    densities: dict

    @property
    def kernel_hw(self):
        return tuple(self.w.shape[2:])

    @property
    def input_hw(self):
        return tuple(self.x.shape[2:])


def _conv_geometry(name, conv):
    """``(stride, pad)`` of a conv the hardware can run, else a ValueError naming the layer."""
    if isinstance(conv, nn.Linear):
        return 1, 0      # a 1x1 convolution on a 1x1 image
    problems = []
    if conv.groups != 1:
        problems.append(f"groups={conv.groups}")
    if tuple(conv.dilation) != (1, 1):
        problems.append(f"dilation={tuple(conv.dilation)}")
    if conv.padding_mode != "zeros":
        problems.append(f"padding_mode={conv.padding_mode!r}")
    if isinstance(conv.padding, str) or conv.padding[0] != conv.padding[1]:
        problems.append(f"padding={conv.padding!r} (needs one number for both axes)")
    if conv.stride[0] != conv.stride[1]:
        problems.append(f"stride={tuple(conv.stride)} (needs one number for both axes)")
    if problems:
        raise ValueError(f"layer {name}: unsupported {', '.join(problems)}")
    return conv.stride[0], conv.padding[0]


def _density(array):
    return float(np.count_nonzero(array)) / array.size if array.size else 0.0


def _as_conv(tensor):
    """A linear layer's (N, C) or (K, C) tensor as a 1x1 convolution's (N, C, 1, 1)."""
    return tensor if tensor.dim() == 4 else tensor.reshape(*tensor.shape, 1, 1)


def capture(model, inputs, targets, p, *, generator=None, data_width=16, loss_fn=None,
            kinds="conv"):
    """Run one training step's passes on ``inputs`` and capture every conv layer.

    Parameters
    ----------
    model : torch.nn.Module
        Its ``Conv2d`` layers must have ``groups=1``, no dilation, zero padding
        and equal stride and padding on both axes.
    inputs, targets : torch.Tensor
        A batch and its labels.
    p : float
        Pruning rate for ``dy`` in ``[0, 1)``.
    generator : torch.Generator or int or None
        Random source for the pruning.
    data_width : int
        Operand width of the fixed-point tensors.
    loss_fn : callable or None
        Defaults to cross entropy.
    kinds : str
        ``"conv"``: the ``Conv2d`` layers; ``"conv+linear"``: ``Linear`` layers
        too, as 1x1 convolutions (``x`` (N, C, 1, 1), ``w`` (K, C, 1, 1)), their
        output gradients pruned as well.

    Returns
    -------
    list of LayerCapture, in the order of ``model.named_modules()``.
    The model's parameter gradients are left as the pass made them.
    """
    layers = conv_layers(model, kinds)
    geometry = {name: _conv_geometry(name, conv) for name, conv in layers}
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("inputs and targets must be torch tensors")
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    layer_inputs = {}

    def keep_input(name):
        def hook(module, args, output):
            layer_inputs[name] = args[0].detach().clone()
        return hook

    handles = [conv.register_forward_hook(keep_input(name)) for name, conv in layers]
    try:
        with GradientPruner(model, p, generator=generator, keep_gradients=True,
                            kinds=kinds) as pruner:
            model.zero_grad()
            loss_fn(model(inputs), targets).backward()
    finally:
        for handle in handles:
            handle.remove()

    captured = []
    for name, conv in layers:
        if name not in pruner.last_dy:
            raise ValueError(f"layer {name} received no gradient; is it used in forward?")
        x = to_fixed(_as_conv(layer_inputs[name]), data_width)
        w = to_fixed(_as_conv(conv.weight.detach()), data_width)
        dy = to_fixed(_as_conv(pruner.last_dy[name]), data_width)
        x_int, w_int, dy_int = x.values.numpy(), w.values.numpy(), dy.values.numpy()
        mask = (_as_conv(layer_inputs[name]) > 0).numpy().astype(np.uint8)
        stride, pad = geometry[name]
        captured.append(LayerCapture(
            name=name, stride=stride, pad=pad, x=x_int, w=w_int, dy=dy_int, mask=mask,
            x_format=x.format, w_format=w.format, dy_format=dy.format,
            densities={
                "x": _density(x_int), "w": _density(w_int),
                "dy_natural": pruner.stats[name].density_before,
                "dy": _density(dy_int), "mask": _density(mask),
            }))
    return captured


def capture_digits(p=0.9, *, batch_size=8, seed=0, train_epochs=2, data_width=16):
    """Capture :class:`~pruning.digits.DigitsCNN` on real digits after brief training.

    The network is first trained densely for ``train_epochs`` epochs (so its
    activations and gradients look like those of a network in training, not
    at initialization), then a test batch of ``batch_size`` digits is captured
    with pruning at rate ``p``. Everything is seeded from ``seed``.
    """
    from .digits import DigitsCNN, load_digits_data
    from .train import train_digits

    data = load_digits_data(seed=seed)
    if train_epochs:
        model = train_digits(0.0, epochs=train_epochs, seed=seed, data=data,
                             progress=False, return_model=True).model
    else:
        torch.manual_seed(seed)
        model = DigitsCNN()
    images = data.test_images[:batch_size]
    labels = data.test_labels[:batch_size]
    return capture(model, images, labels, p, generator=seed, data_width=data_width)
