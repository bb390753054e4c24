"""Gradient pruning inside PyTorch training.

:class:`GradientPruner` makes every ``Conv2d`` of a module prune the gradient
with respect to its output before that layer's BP and WG use it. Forward is
unchanged (identity). It records, per layer, how dense ``dy`` was before
(natural sparsity only) and after pruning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .prune import _check_rate, make_generator, stochastic_prune

__all__ = ["GradientPruner", "DensityCounter", "conv_layers", "LAYER_KINDS"]


@dataclass
class DensityCounter:
    """Running count of nonzero gradient entries, before and after pruning."""

    elements: int = 0
    nonzero_before: int = 0
    nonzero_after: int = 0

    @property
    def density_before(self):
        return self.nonzero_before / self.elements if self.elements else 0.0

    @property
    def density_after(self):
        return self.nonzero_after / self.elements if self.elements else 0.0


# Layer kinds whose output gradient can be pruned: the convolutions, and
# linear layers (1x1 convolutions on the hardware).
LAYER_KINDS = {"conv": (nn.Conv2d,), "conv+linear": (nn.Conv2d, nn.Linear)}


def conv_layers(module, kinds="conv"):
    """``[(name, layer)]`` of a module's ``Conv2d`` (``kinds="conv"``), or ``Conv2d`` and
    ``Linear`` layers (``"conv+linear"``), in definition order."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, not {type(module).__name__}")
    if kinds not in LAYER_KINDS:
        raise ValueError(f"kinds must be one of {', '.join(LAYER_KINDS)}, not {kinds!r}")
    return [(name, m) for name, m in module.named_modules()
            if isinstance(m, LAYER_KINDS[kinds])]


class GradientPruner:
    """Prune the output gradient of every ``Conv2d`` of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
    p : float
        Target pruning rate in ``[0, 1)``; ``0`` only records densities.
    generator : torch.Generator or int or None
        Random source for the stochastic pruning (a seed makes a new generator).
    keep_gradients : bool
        Keep the last pruned ``dy`` of every layer in :attr:`last_dy`
        (what :func:`pruning.capture` hands to the hardware).
    kinds : str
        ``"conv"`` (default): the ``Conv2d`` layers; ``"conv+linear"``: the
        ``Linear`` layers too.

    Use as a context manager, or call :meth:`remove` when done. The hooks
    see the gradient that reaches each convolution's output, so a ReLU after
    the convolution must not be in-place (its derivative is part of ``dy``).
    """

    def __init__(self, module, p, *, generator=None, keep_gradients=False, kinds="conv"):
        self.p = _check_rate(p)
        self.generator = make_generator(generator)
        self.keep_gradients = bool(keep_gradients)
        self.layers = conv_layers(module, kinds)
        if not self.layers:
            names = " or ".join(kind.__name__ for kind in LAYER_KINDS[kinds])
            raise ValueError(f"module {type(module).__name__} has no {names} layer to prune")
        self.stats = {name: DensityCounter() for name, _ in self.layers}
        self.last_dy = {}
        self._handles = [conv.register_forward_hook(self._forward_hook(name))
                         for name, conv in self.layers]

    def _forward_hook(self, name):
        def attach(module, inputs, output):
            if output.requires_grad:
                output.register_hook(self._gradient_hook(name))
        return attach

    def _gradient_hook(self, name):
        def prune(grad):
            pruned = stochastic_prune(grad, self.p, self.generator) if self.p else grad
            counter = self.stats[name]
            counter.elements += grad.numel()
            counter.nonzero_before += int(torch.count_nonzero(grad))
            counter.nonzero_after += int(torch.count_nonzero(pruned))
            if self.keep_gradients:
                self.last_dy[name] = pruned.detach().clone()
            return pruned
        return prune

    def reset_stats(self):
        for counter in self.stats.values():
            counter.elements = counter.nonzero_before = counter.nonzero_after = 0

    def remove(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.remove()
