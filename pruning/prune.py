"""Stochastic activation-gradient pruning (docs/SPEC.md, Sparsity).

The gradient ``g`` with respect to a convolution's output is modelled as a
zero-mean normal variable. Its scale comes from the *nonzero* entries (the
natural zeros from ReLU and max-pooling are already pruned):
``sigma = sqrt(pi/2) * mean(|g|)``, and the threshold for a target pruning
rate ``p`` is ``tau = sigma * Phi^-1((1 + p) / 2)``, so that a fraction ``p``
of a normal variable lies below ``tau`` in magnitude.

Values with ``|g| >= tau`` are kept. A smaller value becomes ``tau * sign(g)``
with probability ``|g| / tau`` and ``0`` otherwise, so ``E[g'] = g``: the
pruned gradient is unbiased.
"""

from __future__ import annotations

import math
import numbers
from statistics import NormalDist

import numpy as np
import torch

__all__ = ["prune_threshold", "stochastic_prune", "make_generator"]


def _check_rate(p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, not {p!r}")
    p = float(p)
    if not (0.0 <= p < 1.0):
        raise ValueError(f"p must be in [0, 1), not {p!r}")
    return p


def _check_gradient(g):
    if isinstance(g, np.ndarray):
        g = torch.from_numpy(g)
    if not isinstance(g, torch.Tensor):
        raise TypeError(f"g must be a torch.Tensor or numpy array, not {type(g).__name__}")
    if not g.is_floating_point():
        raise TypeError(f"g must be a floating-point tensor, not {g.dtype}")
    nonfinite = int((~torch.isfinite(g)).sum())
    if nonfinite:
        raise ValueError(
            f"g has {nonfinite} non-finite value(s) (NaN or infinity) out of {g.numel()}")
    return g


def make_generator(generator):
    """A ``torch.Generator`` from a generator or an integer seed; ``None`` stays
    ``None``, which makes torch draw from its global RNG (``torch.manual_seed``)."""
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(int(generator))
    raise TypeError(f"generator must be a torch.Generator, an int seed or None, not {generator!r}")


def prune_threshold(g, p):
    """Pruning threshold ``tau`` for gradient ``g`` at target rate ``p``.

    Parameters
    ----------
    g : torch.Tensor or numpy.ndarray
        Floating-point gradient, any shape, all values finite.
    p : float
        Target pruning rate in ``[0, 1)``; ``0`` gives ``tau = 0`` (no pruning).

    Returns
    -------
    float
        ``sqrt(pi/2) * mean(|g_nonzero|) * Phi^-1((1 + p) / 2)``; ``0.0`` when
        ``g`` has no nonzero entry.
    """
    p = _check_rate(p)
    g = _check_gradient(g)
    magnitudes = g.detach().abs().to(torch.float64)
    nonzero = magnitudes[magnitudes != 0]
    if p == 0.0 or nonzero.numel() == 0:
        return 0.0
    sigma = math.sqrt(math.pi / 2.0) * float(nonzero.mean())
    return sigma * NormalDist().inv_cdf((1.0 + p) / 2.0)


def stochastic_prune(g, p, generator=None):
    """Prune ``g`` stochastically at target rate ``p``, keeping it unbiased.

    Parameters
    ----------
    g : torch.Tensor or numpy.ndarray
        Floating-point gradient, all values finite. It is not modified.
    p : float
        Target pruning rate in ``[0, 1)``.
    generator : torch.Generator or int or None
        Random source: a generator, a seed, or ``None`` for torch's global RNG.

    Returns
    -------
    torch.Tensor
        A new tensor of ``g``'s dtype and shape: values with ``|g| >= tau``
        unchanged, the others ``tau * sign(g)`` with probability ``|g| / tau``
        and ``0`` otherwise. With ``p = 0``, or an all-zero ``g``, a copy of
        ``g`` unchanged.
    """
    tau = prune_threshold(g, p)
    g = _check_gradient(g).detach()
    generator = make_generator(generator)
    if tau == 0.0:
        return g.clone()
    magnitude = g.abs().to(torch.float64)
    # One uniform draw per element, in the tensor's flat order, from the
    # given generator: the same generator state reproduces the same result.
    uniform = torch.rand(g.shape, generator=generator, dtype=torch.float64, device=g.device)
    promoted = uniform * tau < magnitude
    small = magnitude < tau
    pruned_value = torch.where(promoted, torch.sign(g) * tau, torch.zeros_like(g))
    return torch.where(small, pruned_value.to(g.dtype), g)
