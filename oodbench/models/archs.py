"""Architectures timm does not name, built from timm's own blocks (for `loader: python`)."""

from __future__ import annotations


def wide_resnet50(width: int = 1, num_classes: int = 1000):
    """ResNet-50 with every channel count multiplied by `width` (SimCLR/VIVI/BigBiGAN 1×–4×).

    Unlike torchvision's wide_resnet50_2 (only the bottleneck is wider), the stem, the
    bottlenecks and the block outputs all scale, as in the SimCLR and S4L papers. Parameter
    names follow torchvision's ResNet (conv1, bn1, layer1..4, fc), which converted SimCLR
    checkpoints use.
    """
    from timm.models.resnet import Bottleneck, ResNet
    from torch import nn

    model = ResNet(
        block=Bottleneck,
        layers=(3, 4, 6, 3),
        channels=tuple(c * width for c in (64, 128, 256, 512)),
        num_classes=num_classes,
    )
    if width == 1:
        return model
    # timm's plain stem is always 64 channels wide; widen it and the first block's inputs.
    stem = 64 * width
    model.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(stem)
    first = model.layer1[0]
    first.conv1 = nn.Conv2d(stem, first.conv1.out_channels, kernel_size=1, bias=False)
    first.downsample[0] = nn.Conv2d(stem, first.downsample[0].out_channels, kernel_size=1, bias=False)
    return model
