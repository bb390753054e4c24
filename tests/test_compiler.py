"""Layer extraction from PyTorch models (gen/compiler.py)."""

import pytest
import torch
from torch import nn

from gen.compiler.network import extract_layers
from pruning.digits import DigitsCNN
from pruning.models import build_model


def test_alexnet_layers_and_published_macs():
    layers = extract_layers(*build_model("alexnet"))
    assert [layer.name for layer in layers] == [
        "features.0", "features.3", "features.6", "features.8", "features.10",
        "classifier.2", "classifier.5", "classifier.7"]
    conv1, conv2 = layers[:2]
    assert (conv1.kernel_hw, conv1.stride, conv1.pad, conv1.output_hw) == ((11, 11), 4, 2, (55, 55))
    assert conv2.input_hw == (27, 27)          # after the 3x3 stride-2 max-pool
    # AlexNet's widely published figure: 0.714 G multiply-accumulates per image.
    assert sum(layer.macs for layer in layers) == 714_188_480
    fc6 = layers[5]
    assert (fc6.kind, fc6.in_channels, fc6.kernel_hw, fc6.input_hw) == ("linear", 9216, (1, 1), (1, 1))


def test_resnet18_layers_and_published_macs():
    layers = extract_layers(*build_model("resnet18"))
    convs = [layer for layer in layers if layer.kind == "conv"]
    assert len(convs) == 20 and layers[-1].name == "fc"
    downsample = [layer for layer in convs if "downsample" in layer.name]
    assert [layer.kernel_hw for layer in downsample] == [(1, 1)] * 3
    # ResNet-18's published 1.81 G MACs per 224x224 image.
    assert sum(layer.macs for layer in layers) == pytest.approx(1.814e9, rel=1e-3)
    assert all(layer.batch_norm_after for layer in convs)


def test_sparsity_sources_and_phases():
    """Natural sparsity and BP masks follow ReLU through max-pool, dropout and
    flatten, not through an average pool or a sum; the first layer has no BP."""
    alexnet = {layer.name: layer for layer in extract_layers(*build_model("alexnet"))}
    assert alexnet["features.0"].x_source == "input"
    assert alexnet["features.0"].phases == ("ff", "wg")
    assert alexnet["features.3"].x_source == "relu" and alexnet["features.3"].bp_mask
    # AlexNet's 6x6 average pool of a 6x6 map changes nothing; then flatten, dropout.
    assert alexnet["classifier.2"].x_source == "relu"
    assert alexnet["features.0"].relu_after and not alexnet["classifier.7"].relu_after
    resnet = {layer.name: layer for layer in extract_layers(*build_model("resnet18-cifar"))}
    assert resnet["layer1.0.conv1"].relu_after           # conv, BN, ReLU
    assert not resnet["layer1.0.conv2"].relu_after       # conv, BN, sum, then ReLU
    assert resnet["layer2.0.downsample.0"].x_source == "relu"
    assert resnet["fc"].x_source == "other" and not resnet["fc"].bp_mask   # global average pool


def test_digits_cnn_matches_the_capture():
    layers = extract_layers(DigitsCNN(), (1, 8, 8))
    assert [(layer.name, layer.input_hw) for layer in layers] == [
        ("conv1", (8, 8)), ("conv2", (8, 8)), ("conv3", (4, 4)), ("fc", (1, 1))]


def test_model_is_left_unchanged():
    model, shape = build_model("resnet18-cifar")
    before = model.bn1.running_mean.clone()
    extract_layers(model, shape)
    assert model.conv1.weight.device.type == "cpu"
    assert torch.equal(model.bn1.running_mean, before)


@pytest.mark.parametrize("model,shape,error,message", [
    ("resnet", (3, 32, 32), TypeError, "model must be a torch.nn.Module, not 'resnet'"),
    (DigitsCNN(), (1, 8), ValueError, r"input_shape must be three positive ints \(C, H, W\)"),
    (DigitsCNN(), (1, 0, 8), ValueError, "input_shape must be three positive ints"),
    (DigitsCNN(), (3, 8, 8), ValueError, r"does not run on input shape \(3, 8, 8\)"),
    (nn.Sequential(nn.Conv2d(4, 4, 3, groups=2)), (4, 8, 8), ValueError,
     "layer 0: unsupported groups=2"),
    (nn.Sequential(nn.ReLU()), (1, 4, 4), ValueError, "no Conv2d or Linear layer"),
])
def test_bad_input_is_refused(model, shape, error, message):
    with pytest.raises(error, match=message):
        extract_layers(model, shape)


def test_layers_command_prints_the_table(capsys):
    from gen.__main__ import main as gen_main

    gen_main(["layers", "--model", "alexnet-cifar"])
    out = capsys.readouterr().out
    assert "alexnet-cifar: input 3x32x32, 8 layers" in out
    assert "features.0" in out and "classifier.7" in out
    total = sum(layer.macs for layer in extract_layers(*build_model("alexnet-cifar")))
    assert f"total MACs per image in FF: {total:,}" in out


def test_layers_command_ends_quietly_when_the_pipe_closes():
    import subprocess
    import sys

    # `python -m gen layers ... | head -0`: no traceback when the reader is gone.
    process = subprocess.Popen([sys.executable, "-m", "gen", "layers", "--model", "resnet18"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    error = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, error
    assert "BrokenPipeError" not in error, error
