"""Training a CNN with gradient pruning, and the dense-vs-pruned accuracy experiment."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .digits import DigitsCNN, load_digits_data
from .hooks import GradientPruner
from .prune import _check_rate

__all__ = ["TrainResult", "train_digits", "accuracy"]


@dataclass
class TrainResult:
    p: float
    test_accuracy: float
    final_loss: float
    # Per conv layer: (dy density before pruning, after pruning), over all steps.
    dy_density: dict = field(default_factory=dict)
    seconds: float = 0.0
    model: object = None


def accuracy(model, images, labels):
    """Fraction of ``images`` that ``model`` classifies as ``labels``."""
    model.eval()
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    model.train()
    return float((predicted == labels).float().mean())


def train_digits(p, *, epochs=30, batch_size=32, lr=0.05, seed=0, data=None, progress=True,
                 return_model=False):
    """Train :class:`DigitsCNN` on sklearn digits with gradient pruning at rate ``p``.

    SGD with momentum 0.9 and a cosine-decaying learning rate from ``lr``.
    Initial weights, batch order and the pruning generator all come from
    ``seed``, so runs at different ``p`` differ only by the pruning.
    """
    p = _check_rate(p)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")
    data = data if data is not None else load_digits_data(seed=seed)
    torch.manual_seed(seed)
    model = DigitsCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    steps_per_epoch = -(-len(data.train_labels) // batch_size)
    # Cosine decay: the pruned gradients are noisier (unbiased, higher
    # variance); a decaying step size lets every run settle at p = 0.99 too.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    order_generator = torch.Generator().manual_seed(seed + 1)
    start = time.perf_counter()
    with GradientPruner(model, p, generator=torch.Generator().manual_seed(seed + 2)) as pruner:
        for epoch in range(epochs):
            order = torch.randperm(len(data.train_labels), generator=order_generator)
            total_loss = 0.0
            for first in range(0, len(order), batch_size):
                batch = order[first:first + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(data.train_images[batch]), data.train_labels[batch])
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.item() * len(batch)
            final_loss = total_loss / len(order)
            if progress:
                print(f"  p={p:g} epoch {epoch + 1}/{epochs} loss {final_loss:.4f}",
                      file=sys.stderr, flush=True)
    return TrainResult(
        p=p,
        test_accuracy=accuracy(model, data.test_images, data.test_labels),
        final_loss=final_loss,
        dy_density={name: (c.density_before, c.density_after) for name, c in pruner.stats.items()},
        seconds=time.perf_counter() - start,
        model=model if return_model else None,
    )
