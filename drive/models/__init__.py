"""Models for pruning experiments, built by name with :func:`build_model`.

Built-ins: ``resnet18`` and ``resnet20`` (CIFAR ResNets), ``vgg16_bn`` (one classifier layer),
``alexnet`` (CIFAR variant), ``digits_cnn`` and ``digits_mlp`` (8x8 digits), ``mnist1d_cnn``
and ``mnist1d_mlp`` (1-D signals), ``tv_resnet18`` and ``tv_resnet50`` (torchvision's ImageNet
ResNets). Any ``package.module:factory`` with the signature
``factory(num_classes, in_channels, image_size, **kwargs) -> nn.Module`` works too; one that
declares a ``sample_shape`` parameter also gets the shape of one sample (and so can take 1-D
or non-square inputs).

Every model uses plain ``nn.Conv1d``/``nn.Conv2d``/``nn.Linear`` layers registered in forward
order: the first conv module is the input stem and the last linear module the classifier.
"""

# Importing the model modules registers their factories.
from drive.models import alexnet, cifar_resnet, imagenet_resnet, mnist1d, small, vgg  # noqa: F401
from drive.models.registry import MODELS, build_model

__all__ = ["MODELS", "build_model"]
