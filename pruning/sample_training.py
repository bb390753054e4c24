"""A few real training steps of AlexNet or ResNet-18 on scikit-learn's sample images.

The sparsity the accelerator exploits comes from training itself: ReLU and
max-pooling zero activations and their gradients, dropout zeroes inputs of
the classifier, and pruning at rate ``p`` zeroes most of the remaining
activation gradients. :func:`capture_network` trains a model from its seeded
initialization for a few SGD steps, with pruning on, on random crops of the
two photographs scikit-learn ships (``load_sample_images``: 427 x 640 x 3,
nothing downloaded), and then captures one more step: the integer operands of
every conv and linear layer (:func:`pruning.capture`), whose zeros are those
the hardware sees.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from torch import nn

from .capture import capture
from .hooks import GradientPruner
from .prune import _check_rate

__all__ = ["sample_images", "random_crops", "capture_network"]

# ImageNet's channel means and deviations, the usual input normalization.
_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def sample_images():
    """scikit-learn's two sample photographs as a float tensor (2, 3, 427, 640) in [0, 1]."""
    from sklearn.datasets import load_sample_images

    images = np.stack(load_sample_images().images).astype(np.float32) / 255
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def random_crops(images, batch, size, generator):
    """``batch`` random square crops (side 50-100% of the shorter edge, random
    horizontal flip) resized to ``size`` and normalized; returns ``(inputs, labels)``,
    the label being which photograph a crop comes from."""
    count, _, height, width = images.shape
    crops, labels = [], []
    for _ in range(batch):
        label = int(torch.randint(count, (1,), generator=generator))
        side = int(min(height, width) * (0.5 + 0.5 * float(torch.rand(1, generator=generator))))
        top = int(torch.randint(height - side + 1, (1,), generator=generator))
        left = int(torch.randint(width - side + 1, (1,), generator=generator))
        crop = images[label:label + 1, :, top:top + side, left:left + side]
        crop = nn.functional.interpolate(crop, size=(size, size), mode="bilinear",
                                         align_corners=False)
        if float(torch.rand(1, generator=generator)) < 0.5:
            crop = crop.flip(3)
        crops.append(crop)
        labels.append(label)
    return (torch.cat(crops) - _MEAN) / _STD, torch.tensor(labels)


def capture_network(model, input_size, *, p=0.9, steps=3, batch=1, seed=0, lr=0.01,
                    data_width=16, progress=False):
    """Train ``model`` for ``steps`` SGD steps with ``dy`` pruned at ``p``, then capture
    one step of ``batch`` crops of ``input_size`` x ``input_size``.

    Returns ``(captures, losses)``: a :class:`~pruning.capture.LayerCapture` per
    conv and linear layer (linear ones as 1x1 convolutions) and the loss of
    every step, the captured one last. Everything is seeded from ``seed``.
    """
    _check_rate(p)
    for name, value, low in (("steps", steps, 0), ("batch", batch, 1),
                             ("input_size", input_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, not {value!r}")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)     # dropout draws from the global generator
    images = sample_images()
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    started = time.perf_counter()
    with GradientPruner(model, p, generator=seed, kinds="conv+linear"):
        for step in range(steps):
            inputs, labels = random_crops(images, batch, input_size, generator)
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), labels)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress:
                print(f"  training step {step + 1}/{steps}: loss {losses[-1]:.3f} "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    inputs, labels = random_crops(images, batch, input_size, generator)
    captures = capture(model, inputs, labels, p, generator=seed + 1, data_width=data_width,
                       loss_fn=lambda output, target: _recording(loss_fn, output, target, losses),
                       kinds="conv+linear")
    return captures, losses


def _recording(loss_fn, output, target, losses):
    loss = loss_fn(output, target)
    losses.append(float(loss.detach()))
    return loss
