"""Gradient pruning in training and the capture of real tensors for the hardware."""

import numpy as np
import pytest
import torch
from torch import nn

from pruning import GradientPruner, capture, capture_digits, from_fixed, golden
from pruning.__main__ import main as pruning_main


class TwoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 3, 3, stride=2, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x))).sum(dim=(2, 3))


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(4, 2, 9, 7, generator=generator), torch.tensor([0, 1, 2, 1])


def test_pruner_changes_what_wg_and_bp_see():
    torch.manual_seed(0)
    model = TwoConv()
    x, labels = batch()
    inputs = {}
    model.conv2.register_forward_hook(lambda m, args, out: inputs.__setitem__("conv2", args[0]))
    with GradientPruner(model, 0.9, generator=5, keep_gradients=True) as pruner:
        nn.functional.cross_entropy(model(x), labels).backward()
    dy = pruner.last_dy["conv2"]
    # conv2's weight gradient is the WG of its input and the *pruned* dy.
    expected = torch.nn.grad.conv2d_weight(inputs["conv2"], model.conv2.weight.shape, dy,
                                           stride=2, padding=1)
    assert torch.allclose(model.conv2.weight.grad, expected, atol=1e-6)
    stats = pruner.stats["conv2"]
    assert stats.elements == dy.numel()
    assert stats.nonzero_after == int(torch.count_nonzero(dy)) < stats.nonzero_before
    # Hooks are gone after the with block: a second pass is unpruned.
    model.zero_grad()
    nn.functional.cross_entropy(model(x), labels).backward()
    assert not torch.allclose(model.conv2.weight.grad, expected, atol=1e-6)


def test_pruner_rate_zero_is_identity():
    torch.manual_seed(0)
    model = TwoConv()
    x, labels = batch()
    nn.functional.cross_entropy(model(x), labels).backward()
    reference = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with GradientPruner(model, 0.0) as pruner:
        nn.functional.cross_entropy(model(x), labels).backward()
    for param, expected in zip(model.parameters(), reference):
        assert torch.equal(param.grad, expected)
    assert pruner.stats["conv1"].density_before == pruner.stats["conv1"].density_after


def test_pruner_bad_input():
    with pytest.raises(ValueError, match="has no Conv2d layer"):
        GradientPruner(nn.Linear(2, 2), 0.5)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\), not 1.0"):
        GradientPruner(TwoConv(), 1.0)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        GradientPruner("model", 0.5)
    with pytest.raises(ValueError, match="kinds must be one of conv, conv\\+linear, not 'all'"):
        GradientPruner(TwoConv(), 0.5, kinds="all")
    with pytest.raises(ValueError, match="has no Conv2d or Linear layer"):
        GradientPruner(nn.ReLU(), 0.5, kinds="conv+linear")


def test_capture_is_consistent_with_training():
    torch.manual_seed(1)
    model = TwoConv()
    x, labels = batch(1)
    layers = capture(model, x, labels, 0.9, generator=3, data_width=16)
    assert [layer.name for layer in layers] == ["conv1", "conv2"]
    conv2 = layers[1]
    assert (conv2.stride, conv2.pad, conv2.kernel_hw, conv2.input_hw) == (2, 1, (3, 3), (9, 7))
    for layer in layers:
        for tensor in (layer.x, layer.w, layer.dy):
            assert tensor.dtype == np.int64
            assert -32768 <= tensor.min() and tensor.max() <= 32767
        assert np.array_equal(layer.mask, (layer.x > 0).astype(np.uint8))
        assert layer.densities["dy"] <= layer.densities["dy_natural"]
    # The integer WG of the captured tensors is the float weight gradient of
    # the step, up to the quantization of x and dy.
    dw = golden.conv_wg(conv2.x, conv2.dy, conv2.stride, conv2.pad, conv2.kernel_hw)
    scaled = from_fixed(dw, conv2.x_format.frac_bits + conv2.dy_format.frac_bits)
    grad = model.conv2.weight.grad.to(torch.float64)
    assert float((scaled - grad).abs().max()) < 1e-3 * float(grad.abs().max())


def test_capture_rejects_unsupported_layers():
    model = nn.Sequential(nn.Conv2d(2, 2, 3, dilation=2), nn.Flatten())
    with pytest.raises(ValueError, match=r"layer 0: unsupported dilation=\(2, 2\)"):
        capture(model, torch.randn(1, 2, 8, 8), torch.tensor([0]), 0.5)


def test_capture_digits_real_data():
    layers = capture_digits(0.9, batch_size=4, train_epochs=1)
    assert [layer.name for layer in layers] == ["conv1", "conv2", "conv3"]
    assert layers[0].x.shape == (4, 1, 8, 8)
    for layer in layers:
        assert 0 < layer.densities["dy"] < layer.densities["dy_natural"] <= 1
        assert 0 < layer.densities["x"] < 1


def test_digits_accuracy_command_runs(capsys):
    pruning_main(["digits-accuracy", "--epochs", "1", "--rates", "0", "0.9"])
    out = capsys.readouterr().out
    assert "| 0 |" in out and "| 0.9 |" in out and "largest accuracy loss" in out


def test_digits_accuracy_command_rejects_bad_rate(capsys):
    with pytest.raises(SystemExit):
        pruning_main(["digits-accuracy", "--rates", "1.2"])
    assert "p must be in [0, 1), not 1.2" in capsys.readouterr().err
