"""Model building: the one place that turns a run's :class:`~detpretrain.config.TrainConfig` into a network."""

from __future__ import annotations

from torch import nn

from detpretrain.config import TrainConfig
from detpretrain.models.backbones import build_backbone
from detpretrain.models.detection import build_faster_rcnn
from detpretrain.models.segmentation import build_deeplabv3, segmentation_geometry


def build_model(config: TrainConfig, num_classes: int, backbone_weights=None) -> nn.Module:
    """The model of a run: a ResNet classifier, a Faster R-CNN + FPN detector or a DeepLabV3 segmenter (output
    stride 8, :mod:`detpretrain.models.segmentation`); heads freshly initialised."""
    m = config.model
    if config.task in ("classification", "multilabel"):
        return build_backbone(m.arch, norm=m.norm, widths=m.widths, num_classes=num_classes, weights=backbone_weights)
    if config.task == "segmentation":
        geometry = segmentation_geometry(m, config.data)
        return build_deeplabv3(num_classes, arch=m.arch, norm=m.norm, widths=m.widths,
                               backbone_weights=backbone_weights, head_channels=m.fpn_channels,
                               atrous_rates=geometry.atrous_rates, trainable_stages=m.trainable_stages)
    return build_faster_rcnn(
        num_classes,
        arch=m.arch,
        norm=m.norm,
        widths=m.widths,
        backbone_weights=backbone_weights,
        fpn_channels=m.fpn_channels,
        representation_size=m.representation_size,
        anchor_sizes=m.anchor_sizes,
        min_size=m.min_size,
        max_size=m.max_size,
        trainable_stages=m.trainable_stages,
        rpn_pre_nms_top_n=tuple(m.rpn_pre_nms_top_n),
        rpn_post_nms_top_n=tuple(m.rpn_post_nms_top_n),
        box_batch_size_per_image=m.box_batch_size_per_image,
        fpn_extra_convs=m.fpn_extra_convs,
        box_head=m.box_head,
        rpn_conv_depth=m.rpn_conv_depth,
    )
