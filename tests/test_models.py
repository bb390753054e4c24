"""AlexNet and ResNet-18 as defined in pruning/models.py."""

import pytest
import torch

from pruning.models import MODELS, build_model


def _parameters(model):
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize("name,parameters", [
    # torchvision's alexnet and resnet18 have these parameter counts.
    ("alexnet", 61_100_840),
    ("resnet18", 11_689_512),
])
def test_imagenet_models_have_torchvision_parameter_counts(name, parameters):
    model, shape = build_model(name)
    assert shape == (3, 224, 224)
    assert _parameters(model) == parameters


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_classify_a_batch(name):
    model, shape = build_model(name)
    classes = 10 if name.endswith("cifar") else 1000
    if shape[1] > 32:
        model.eval()    # one ImageNet image on the CPU: keep it to a single forward pass
    images = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert model(images).shape == (2, classes)


def test_same_seed_same_weights():
    first, _ = build_model("resnet18-cifar", seed=3)
    second, _ = build_model("resnet18-cifar", seed=3)
    other, _ = build_model("resnet18-cifar", seed=4)
    assert torch.equal(first.conv1.weight, second.conv1.weight)
    assert not torch.equal(first.conv1.weight, other.conv1.weight)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="model must be one of alexnet, .*not 'vgg16'"):
        build_model("vgg16")


@pytest.mark.parametrize("kwargs,message", [
    (dict(variant="mnist"), "variant must be 'imagenet' or 'cifar', not 'mnist'"),
    (dict(variant="cifar", classes=0), "classes must be a positive int, not 0"),
])
def test_bad_variant_or_classes_is_refused(kwargs, message):
    from pruning.models import AlexNet, ResNet18
    for model in (AlexNet, ResNet18):
        with pytest.raises(ValueError, match=message):
            model(**kwargs)
