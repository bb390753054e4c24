"""scikit-learn's handwritten digits (shipped with the package) and a small CNN for them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["DigitsData", "load_digits_data", "DigitsCNN"]


@dataclass(frozen=True)
class DigitsData:
    """8x8 digit images in ``[0, 1]`` as ``(N, 1, 8, 8)`` float32, labels int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def load_digits_data(test_fraction=0.25, seed=0):
    """The 1797 digits of ``sklearn.datasets.load_digits``, split reproducibly."""
    from sklearn.datasets import load_digits

    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction!r}")
    digits = load_digits()
    # The raw pixels are integers 0..16.
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(labels) * float(test_fraction)))
    test, train = order[:n_test], order[n_test:]
    return DigitsData(images[train], labels[train], images[test], labels[test])


class DigitsCNN(nn.Module):
    """Three 3x3 conv layers with ReLU and max-pooling, then a linear classifier.

    ``8x8 -> conv1 (16) -> conv2 (32) -> pool -> 4x4 -> conv3 (32) -> pool -> 2x2 -> fc``.
    The ReLUs are not in-place so the gradient pruning hooks see ``dy`` intact.
    """

    def __init__(self, channels=(16, 32, 32), classes=10):
        super().__init__()
        c1, c2, c3 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(c3 * 2 * 2, classes)

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.pool(self.relu(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))
