"""The layers of a PyTorch CNN as the accelerator runs them.

:func:`extract_layers` traces a ``torch.nn.Module`` on an input shape (on
PyTorch's ``meta`` device: shapes only, no arithmetic) and returns, in
execution order, one :class:`NetworkLayer` per ``Conv2d`` and per ``Linear``
(a 1x1 convolution of a 1x1 input with ``in_features`` channels). Each layer
says what its phases need from the rest of the network:

- where its input ``x`` comes from: a ReLU (or a max-pool, dropout or
  flatten of one) makes ``x`` naturally sparse, and BP's output mask is then
  ``x > 0``;
- whether BP runs at all: the layer that reads the network's input needs no
  ``dx``;
- whether batch norm follows: BN's backward pass mixes every position of a
  channel, so the conv's ``dy`` is then dense before pruning; without BN, a
  ReLU right after the conv zeroes ``dy`` where the output was not positive.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pruning.capture import _conv_geometry

__all__ = ["NetworkLayer", "extract_layers"]

# Modules a zero goes through unchanged: BP masks and natural sparsity look through them.
_TRANSPARENT = (nn.Flatten, nn.Dropout, nn.Identity)


@dataclass(frozen=True)
class NetworkLayer:
    """One convolution (or linear layer) of a network, per image.

    ``x_source`` is ``"input"`` (the network's input), ``"relu"`` (a ReLU
    output, possibly max-pooled, dropped out or flattened: naturally sparse,
    and BP's mask is ``x > 0``) or ``"other"`` (an average pool, a sum, ...).
    """

    name: str
    kind: str                    # "conv" or "linear"
    in_channels: int
    out_channels: int
    kernel_hw: tuple
    stride: int
    pad: int
    input_hw: tuple
    output_hw: tuple
    x_source: str
    batch_norm_after: bool
    relu_after: bool

    @property
    def needs_bp(self):
        """BP computes ``dx``; the layer on the network's input needs none."""
        return self.x_source != "input"

    @property
    def bp_mask(self):
        """BP's outputs are masked by ``x > 0`` (the ReLU below, through max-pooling)."""
        return self.x_source == "relu"

    @property
    def macs(self):
        """Nominal MACs per image in FF (every kernel tap of every output, padding included),
        the count published network figures use; BP and WG have as many."""
        (r, s), (e, f) = self.kernel_hw, self.output_hw
        return self.out_channels * self.in_channels * r * s * e * f

    @property
    def phases(self):
        return ("ff", "bp", "wg") if self.needs_bp else ("ff", "wg")


def _identity_pool(call):
    """An average pool that leaves its input as it is (AlexNet's 6x6 pool of a 6x6 map)."""
    _, module, tensor, output = call
    return (isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)) and tensor is not None
            and tuple(tensor.shape) == tuple(output.shape))


def _check_input_shape(input_shape):
    if (not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in input_shape)):
        raise ValueError(f"input_shape must be three positive ints (C, H, W), not {input_shape!r}")
    return tuple(input_shape)


def extract_layers(model, input_shape):
    """The :class:`NetworkLayer` list of ``model`` run on one ``(C, H, W)`` image.

    Raises ``ValueError`` for a conv the hardware cannot run (groups,
    dilation, unequal strides or paddings, ...) naming the layer, and for a
    model without conv or linear layers.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {model!r}")
    input_shape = _check_input_shape(input_shape)
    # (stride, pad) of each conv; a conv the hardware cannot run is refused here.
    geometry = {name: _conv_geometry(name, module) for name, module in model.named_modules()
                if isinstance(module, nn.Conv2d)}
    # A copy on the meta device: shapes without arithmetic, and the caller's
    # model (batch-norm statistics included) is left as it was.
    model = copy.deepcopy(model).to("meta")
    names = {module: name for name, module in model.named_modules()}

    calls = []          # (name, module, input tensor, output tensor), in call order
    producer = {}       # id(output tensor) -> index into calls

    def record(module, args, output):
        # The tensors stay referenced by `calls`, so their ids are not reused.
        tensor = args[0] if args else None
        calls.append((names[module], module, tensor, output))
        # An identity returns its input itself: the tensor keeps its producer.
        if output is not tensor:
            producer[id(output)] = len(calls) - 1

    leaves = [module for module in model.modules() if not list(module.children())]
    handles = [module.register_forward_hook(record) for module in leaves]
    try:
        image = torch.zeros((1, *input_shape), device="meta")
        with torch.no_grad():
            model(image)
    except RuntimeError as error:
        raise ValueError(f"the model does not run on input shape {input_shape}: {error}") \
            from None
    finally:
        for handle in handles:
            handle.remove()

    consumers = {}
    for index, (_, _, tensor, _) in enumerate(calls):
        if tensor is not None:
            consumers.setdefault(id(tensor), []).append(index)

    def source_of(tensor):
        index = producer.get(id(tensor))
        while index is not None:
            module = calls[index][1]
            if isinstance(module, nn.ReLU):
                return "relu"
            if isinstance(module, (nn.MaxPool2d, *_TRANSPARENT)) or _identity_pool(calls[index]):
                index = producer.get(id(calls[index][2]))
                continue
            return "other"
        return "input" if tensor is image else "other"

    def followed_by(tensor, kind):
        after = consumers.get(id(tensor), [])
        return [calls[i] for i in after if isinstance(calls[i][1], kind)]

    layers = []
    for name, module, x, y in calls:
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        norms = followed_by(y, (nn.BatchNorm2d, nn.BatchNorm1d))
        after = norms[0][3] if norms else y
        relu_after = bool(followed_by(after, nn.ReLU))
        if isinstance(module, nn.Conv2d):
            stride, pad = geometry[name]
            fields = dict(kind="conv", in_channels=module.in_channels,
                          out_channels=module.out_channels, kernel_hw=tuple(module.kernel_size),
                          stride=stride, pad=pad, input_hw=tuple(x.shape[2:]),
                          output_hw=tuple(y.shape[2:]))
        else:
            fields = dict(kind="linear", in_channels=module.in_features,
                          out_channels=module.out_features, kernel_hw=(1, 1), stride=1, pad=0,
                          input_hw=(1, 1), output_hw=(1, 1))
        layers.append(NetworkLayer(name=name, **fields, x_source=source_of(x),
                                   batch_norm_after=bool(norms), relu_after=relu_after))
    if not layers:
        raise ValueError("the model has no Conv2d or Linear layer")
    return layers
