"""DeepLabV3 on our ResNet backbones (Section 2.2, Table 4 of Li et al. 2019), and its geometry.

The paper fine-tunes DeepLab (Chen et al. 2018) with a Deformable-ConvNets ResNet-101 from each pre-trained backbone
on PASCAL VOC 2012. Here: torchvision's :class:`~torchvision.models.segmentation.deeplabv3.DeepLabV3` with its
ASPP head on the ResNet of :func:`~detpretrain.models.backbones.build_backbone`, loaded with the backbone of a
pre-training run exactly as the detector is. The head is freshly initialised (as the paper does); no auxiliary
head.

Output stride 8 (DeepLab's dense setting): the strided convolutions of ``layer3`` and ``layer4`` are turned into
stride-1 convolutions and every 3x3 convolution after them is dilated (atrous), stage rates 2 and 4. torchvision's
``replace_stride_with_dilation`` does this only for Bottleneck blocks (BasicBlock raises), and our CPU backbones
(``resnet_tiny``, ``resnet18``...) are BasicBlock ResNets, so :func:`dilate_resnet` converts a *built* ResNet in
place, for either block type, with torchvision's convention: the formerly strided 3x3 convolution keeps the
stage's previous rate, the convolutions after it take the new one, the 1x1 ``downsample`` loses its stride. Only
strides, dilations and paddings change, never a weight, so a pre-trained ``state_dict`` loads unchanged, and with
spatially independent normalisation (frozen BN) the dilated network computes the original network's features
exactly, on a 4x denser grid (the "algorithme a trous"; ``tests/test_segmentation.py`` checks both).

Geometry (:func:`segmentation_geometry`), derived from the run's ``ModelSpec`` and ``DataSpec`` so the config hash
covers it:

* input: synthetic images are used as they are (``image_size`` px, all the same size); real photographs are fed at
  a short side of ``base = min(model.min_size, 513)`` px (513 = DeepLab's crop), trained on random
  ``base x base`` crops after a random short-side resize in ``[base/2, 2 base)`` (torchvision's segmentation
  reference recipe), evaluated on the whole image with the logits upsampled back to the original resolution.
* ASPP rates: DeepLabV3's ``(12, 24, 36)`` at output stride 8 and 513-px crops, scaled by ``input / 513``
  (128 px -> ``(3, 6, 9)``), so the rates cover the same fraction of the image.
* ASPP / decoder width: ``model.fpn_channels`` (the detector's FPN width; 256 in the ``paper`` profile, which is
  DeepLab's ASPP width; 64 at ``mini``).
* head normalisation: GroupNorm when the backbone uses GroupNorm (the CPU profiles), otherwise BatchNorm as in
  torchvision's ``DeepLabHead`` (frozen BN cannot serve a freshly initialised head).
* trimap bands (Figure 2): DeepLab's widths 1..40 px at ~500-px VOC images, scaled by ``image_size / 500`` for
  synthetic images and de-duplicated (128 px -> 1..10 px); real photographs are evaluated at their own, VOC-like
  resolution, so 1..40 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.resnet import ResNet
from torchvision.models.segmentation.deeplabv3 import ASPP, ASPPPooling, DeepLabV3

from detpretrain.errors import ConfigError
from detpretrain.models.backbones import build_backbone, group_norm, stage_channels
from detpretrain.models.detection import _freeze_stages

#: DeepLabV3's ASPP rates at output stride 8 for its 513-px training crops.
DEEPLAB_RATES = (12, 24, 36)
#: DeepLab's training crop (pixels); also the largest input short side used for real photographs here.
DEEPLAB_CROP = 513
#: typical long side of a PASCAL VOC image (pixels), the scale of the paper's / DeepLab's trimap widths.
VOC_IMAGE_SIZE = 500
#: the widest trimap band of DeepLab's plots (pixels at VOC scale).
VOC_MAX_BAND = 40
#: ``output_stride`` -> which of (layer2, layer3, layer4) lose their stride.
_DILATE = {8: (False, True, True), 16: (False, False, True), 32: (False, False, False)}


@dataclass(frozen=True)
class SegmentationGeometry:
    """Sizes of one segmentation run (pixels), see the module docstring.

    Attributes:
        input_size: side (synthetic) or short side (real) of the network input at evaluation.
        crop: square training crop for real photographs; ``None`` for synthetic images (used whole).
        atrous_rates: ASPP rates.
        bands: trimap band widths evaluated, in pixels of the evaluated masks.
        band_scale: evaluated pixels per VOC-scale pixel (``bands[i] / band_scale`` = VOC-equivalent width).
    """

    input_size: int
    crop: int | None
    atrous_rates: tuple[int, ...]
    bands: tuple[int, ...]
    band_scale: float


def scaled_rates(input_size: int) -> tuple[int, ...]:
    """DeepLabV3's ASPP rates (12, 24, 36) scaled by ``input_size / 513``, at least 1, de-duplicated, ascending."""
    return tuple(sorted({max(1, round(r * input_size / DEEPLAB_CROP)) for r in DEEPLAB_RATES}))


def default_bands(image_size: int | None) -> tuple[tuple[int, ...], float]:
    """Trimap band widths (pixels) equivalent to DeepLab's 1..40 px on ~500-px VOC images, and the scale.

    Args:
        image_size: side of the evaluated (square synthetic) images, or ``None`` for real photographs evaluated at
            their own, VOC-like resolution (scale 1).

    Returns:
        ``(widths, scale)``: ``widths = sorted({max(1, round(w * scale)) for w in 1..40})`` with
        ``scale = image_size / 500`` (128 px -> 1..10, 64 px -> 1..5).
    """
    scale = 1.0 if image_size is None else image_size / VOC_IMAGE_SIZE
    return tuple(sorted({max(1, round(w * scale)) for w in range(1, VOC_MAX_BAND + 1)})), scale


def segmentation_geometry(model, data) -> SegmentationGeometry:
    """The :class:`SegmentationGeometry` of a run from its ``ModelSpec`` and ``DataSpec`` (module docstring)."""
    if data.kind == "synthetic":
        size = int(data.corpus["image_size"])
        bands, scale = default_bands(size)
        return SegmentationGeometry(size, None, scaled_rates(size), bands, scale)
    base = min(int(model.min_size), DEEPLAB_CROP)
    bands, scale = default_bands(None)
    return SegmentationGeometry(base, base, scaled_rates(base), bands, scale)


def dilate_resnet(resnet: ResNet, replace_stride_with_dilation: Sequence[bool] = (False, True, True)) -> ResNet:
    """Replace the strides of ``layer2/3/4`` by dilation, in place, for BasicBlock and Bottleneck ResNets.

    Same result as torchvision's ``ResNet(..., replace_stride_with_dilation=...)`` (which supports Bottleneck only):
    in a converted stage the strided 3x3 convolution gets stride 1 and the stage's previous dilation, every later
    3x3 convolution the new dilation (previous x 2), paddings equal dilations, and the ``downsample`` 1x1
    convolution gets stride 1. Weights are not touched.

    Args:
        resnet: a torchvision ``ResNet`` (e.g. from :func:`~detpretrain.models.backbones.build_backbone`).
        replace_stride_with_dilation: one flag per stage ``layer2, layer3, layer4``.

    Returns:
        ``resnet`` itself; output stride 32 / 2^(number of flags set).

    Raises:
        ValueError: not three flags, or a stage whose stride was already replaced.
    """
    flags = tuple(bool(f) for f in replace_stride_with_dilation)
    if len(flags) != 3:
        raise ValueError(f"replace_stride_with_dilation needs 3 flags (layer2, layer3, layer4), got {flags}")
    dilation = 1
    for name, dilate in zip(("layer2", "layer3", "layer4"), flags):
        stage = getattr(resnet, name)
        if not dilate:
            for block in stage:  # a strided stage after a dilated one: torchvision dilates all its 3x3 convs
                for conv in _convs3x3(block):
                    conv.dilation, conv.padding = (dilation, dilation), (dilation, dilation)
            continue
        previous, dilation = dilation, dilation * 2
        strided = False
        for block in stage:
            for conv in _convs3x3(block):
                if conv.stride == (2, 2):
                    conv.stride, conv.dilation, conv.padding = (1, 1), (previous, previous), (previous, previous)
                    strided = True
                else:
                    rate = dilation if strided else previous
                    conv.dilation, conv.padding = (rate, rate), (rate, rate)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
        if not strided:
            raise ValueError(f"{name} has no stride-2 3x3 convolution to replace (already dilated?)")
    return resnet


def _convs3x3(block: nn.Module) -> list[nn.Conv2d]:
    """The 3x3 convolutions of a residual block in forward order (BasicBlock: conv1, conv2; Bottleneck: conv2)."""
    return [m for n, m in block.named_children() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def deeplab_head(in_channels: int, num_classes: int, *, channels: int = 256, atrous_rates=DEEPLAB_RATES,
                 norm: str = "bn") -> nn.Sequential:
    """torchvision's ``DeepLabHead`` (ASPP + 3x3 conv + 1x1 classifier) with a chosen width and normalisation.

    With ``channels=256`` and ``norm="bn"`` it has exactly the modules and parameter shapes of
    ``torchvision.models.segmentation.deeplabv3.DeepLabHead``. ``norm="gn"`` replaces every BatchNorm by
    GroupNorm: 32 groups where the width allows, except in the ASPP image-pooling branch, whose map is 1x1, where
    one group normalises across all channels (with one or two channels per group a 1x1 map would be normalised to
    its bias alone, and a single image could not pass). The head then also runs at batch size 1.
    """
    head = nn.Sequential(
        ASPP(in_channels, list(atrous_rates), out_channels=channels),
        nn.Conv2d(channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, num_classes, 1),
    )
    if norm == "gn":
        _batchnorm_to_groupnorm(head)
    return head


def _batchnorm_to_groupnorm(module: nn.Module, pooled: bool = False) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            setattr(module, name, nn.GroupNorm(1, c) if pooled else group_norm(c))
        else:
            _batchnorm_to_groupnorm(child, pooled or isinstance(child, ASPPPooling))


def build_deeplabv3(
    num_classes: int,
    *,
    arch: str = "resnet_tiny",
    norm: str = "gn",
    widths: Sequence[int] | None = None,
    backbone_weights: str | Path | None = None,
    head_channels: int = 256,
    atrous_rates: Sequence[int] = DEEPLAB_RATES,
    output_stride: int = 8,
    trainable_stages: int = 5,
) -> DeepLabV3:
    """DeepLabV3 (Chen et al. 2017) on a ResNet, backbone from a pre-training run, head freshly initialised.

    Args:
        num_classes: K, classes including background (label 0); VOC: 21.
        arch, norm, widths, backbone_weights: passed to :func:`~detpretrain.models.backbones.build_backbone`
            (weights loaded BEFORE the strides are replaced, so every pre-trained weight is used unchanged).
        head_channels: ASPP and decoder width (DeepLab: 256).
        atrous_rates: ASPP rates in feature-map pixels.
        output_stride: 8 (DeepLab's dense setting: ``layer3`` and ``layer4`` dilated), 16 or 32.
        trainable_stages: as for the detector: how many of (layer4, layer3, layer2, layer1, stem) are trained.

    Returns:
        a torchvision ``DeepLabV3``: ``model(x)["out"]`` maps float [B, 3, H, W] (ImageNet-normalised) to logits
        [B, K, H, W] (bilinearly upsampled from stride ``output_stride``); ``model.backbone`` is an
        ``IntermediateLayerGetter`` whose ``state_dict`` has the ResNet's key names (no ``fc``).

    Raises:
        ConfigError: unknown arch/norm, weights that do not fit, or an output stride other than 8, 16, 32.
    """
    if output_stride not in _DILATE:
        raise ConfigError(f"output_stride must be one of {sorted(_DILATE)}, got {output_stride}")
    resnet = build_backbone(arch, norm=norm, widths=widths, weights=backbone_weights)
    dilate_resnet(resnet, _DILATE[output_stride])
    _freeze_stages(resnet, trainable_stages)
    backbone = IntermediateLayerGetter(resnet, return_layers={"layer4": "out"})
    head = deeplab_head(stage_channels(arch, widths)[3], num_classes, channels=head_channels,
                        atrous_rates=atrous_rates, norm="gn" if norm == "gn" else "bn")
    return DeepLabV3(backbone, head, aux_classifier=None)


def segmentation_backbone_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The ResNet ``state_dict`` (torchvision key names, no ``fc``) of a DeepLabV3 built here (or in DDP).

    Dilation changes no parameter, so this loads into a plain :func:`~detpretrain.models.backbones.build_backbone`.
    """
    model = getattr(model, "module", model)
    return {k: v.detach().cpu().clone() for k, v in model.backbone.state_dict().items()}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, input_size: int | None = None) -> torch.Tensor:
    """Logits at the images' own resolution.

    Args:
        model: a DeepLabV3 (eval mode is the caller's business).
        images: float [B, 3, H, W], normalised.
        input_size: feed the network at this short side (bilinear resize) and upsample the logits back to
            (H, W); ``None`` feeds the images as they are.

    Returns:
        float [B, K, H, W].
    """
    h, w = images.shape[-2:]
    x = images
    if input_size is not None and min(h, w) != input_size:
        s = input_size / min(h, w)
        x = F.interpolate(images, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                          align_corners=False, antialias=s < 1)
    logits = model(x)["out"]
    if logits.shape[-2:] != (h, w):
        logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    return logits
