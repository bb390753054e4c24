"""A few real training steps on scikit-learn's sample images, with linear layers captured."""

import numpy as np
import pytest
import torch
from torch import nn

from pruning.sample_training import capture_network, random_crops, sample_images


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, 2))


def test_crops_come_from_the_two_photographs():
    images = sample_images()
    assert images.shape == (2, 3, 427, 640) and 0 <= images.min() and images.max() <= 1
    generator = torch.Generator().manual_seed(1)
    inputs, labels = random_crops(images, 5, 32, generator)
    assert inputs.shape == (5, 3, 32, 32) and set(labels.tolist()) <= {0, 1}


def test_capture_network_trains_then_captures_conv_and_linear_layers():
    captures, losses = capture_network(small_net(), 16, p=0.9, steps=2, batch=3, seed=4)
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert [c.name for c in captures] == ["0", "4", "6"]
    conv, hidden, last = captures
    assert conv.x.shape == (3, 3, 16, 16) and conv.dy.shape == (3, 4, 8, 8)
    # Linear layers as 1x1 convolutions.
    assert hidden.x.shape == (3, 64, 1, 1) and hidden.w.shape == (6, 64, 1, 1)
    assert last.dy.shape == (3, 2, 1, 1)
    for capture in captures:
        # Pruning keeps at most the gradients that were there.
        assert capture.densities["dy"] <= capture.densities["dy_natural"] + 1e-9
        assert capture.x.dtype == np.int64
    # ReLU outputs (through max-pool) feed the hidden layer: zeros in x.
    assert hidden.densities["x"] < 1
    again, _ = capture_network(small_net(), 16, p=0.9, steps=2, batch=3, seed=4)
    assert all(np.array_equal(a.dy, b.dy) for a, b in zip(captures, again))


def test_capture_network_refuses_bad_arguments():
    with pytest.raises(ValueError, match="steps must be an integer >= 0"):
        capture_network(small_net(), 16, steps=-1)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), not 1.5"):
        capture_network(small_net(), 16, p=1.5)
