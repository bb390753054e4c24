"""AlexNet and ResNet-18, defined here (no download), for ImageNet and CIFAR shapes.

The ImageNet versions have the layers of torchvision's ``alexnet`` and
``resnet18`` (the same parameter counts: 61,100,840 and 11,689,512); the
CIFAR versions keep the channel widths and adapt the stem to 32x32 images,
as CIFAR training code usually does. Every ReLU is its own non-in-place
module call, so the gradient-pruning hooks see ``dy`` intact and the compiler
(:mod:`gen.compiler.network`) sees where natural sparsity comes from.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MODELS", "build_model", "AlexNet", "ResNet18"]


def _classes(variant, classes):
    """Checks ``variant``; the classes it defaults to (ImageNet 1000, CIFAR 10)."""
    if variant not in ("imagenet", "cifar"):
        raise ValueError(f"variant must be 'imagenet' or 'cifar', not {variant!r}")
    if classes is None:
        return 1000 if variant == "imagenet" else 10
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be a positive int, not {classes!r}")
    return classes


class AlexNet(nn.Module):
    """AlexNet: five conv layers with ReLU and max-pooling, three linear layers.

    ``imagenet`` (224x224): torchvision's layers (11x11 stride 4, 5x5, three
    3x3; 3x3 stride-2 pools; 6x6 adaptive average pool; 9216-4096-4096-1000).
    ``cifar`` (32x32): 3x3 convs of the same widths, 2x2 pools, 256x2x2 into
    4096-4096-10.
    """

    def __init__(self, variant="imagenet", classes=None):
        super().__init__()
        classes = _classes(variant, classes)
        if variant == "imagenet":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
            self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
            flat = 256 * 6 * 6
        else:
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 192, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
                nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
                nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
            flat = 256 * 2 * 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(), nn.Linear(flat, 4096), nn.ReLU(),
            nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, classes))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


class _BasicBlock(nn.Module):
    def __init__(self, in_channels, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + identity)


class ResNet18(nn.Module):
    """ResNet-18: a stem, four stages of two basic blocks (64, 128, 256, 512), a linear layer.

    ``imagenet``: 7x7 stride-2 stem and a 3x3 stride-2 max-pool (torchvision's
    layers). ``cifar``: a 3x3 stride-1 stem and no max-pool.
    """

    def __init__(self, variant="imagenet", classes=None):
        super().__init__()
        classes = _classes(variant, classes)
        if variant == "imagenet":
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        stages, in_channels = [], 64
        for channels, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(_BasicBlock(in_channels, channels, stride),
                                        _BasicBlock(channels, channels, 1)))
            in_channels = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


#: ``name: (constructor, variant, input shape (C, H, W))``.
MODELS = {
    "alexnet": (AlexNet, "imagenet", (3, 224, 224)),
    "alexnet-cifar": (AlexNet, "cifar", (3, 32, 32)),
    "resnet18": (ResNet18, "imagenet", (3, 224, 224)),
    "resnet18-cifar": (ResNet18, "cifar", (3, 32, 32)),
}


def build_model(name, *, seed=0):
    """``(model, input_shape)`` of the model called ``name``, initialized from ``seed``."""
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, not {name!r}")
    constructor, variant, input_shape = MODELS[name]
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = constructor(variant)
    return model, input_shape
