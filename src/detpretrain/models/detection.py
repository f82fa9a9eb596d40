"""Faster R-CNN with FPN on a ResNet backbone (torchvision builders), and the paper's head features.

Li et al. 2019 (Section 2, "Architecture") name the layers after Conv5 of the detector: ConvProj (256 channels),
FC1 (1024) and FC2 (1024). In torchvision's Faster R-CNN with FPN these are:

=============  =====================================================  =========================
paper          torchvision module                                      shape (per RoI)
=============  =====================================================  =========================
Conv5          ``backbone.body.layer4`` output                         [C5, H/32, W/32] per image
ConvProj       ``roi_heads.box_roi_pool`` output (FPN channels)        [256, 7, 7]
FC1            ``roi_heads.box_head.fc6`` (after ReLU)                 [1024]
FC2            ``roi_heads.box_head.fc7`` (after ReLU)                 [1024]
=============  =====================================================  =========================

(The paper's ConvProj is a 1x1 projection of Conv5 at 14x14 in SNIPER without FPN; here the 256-channel RoI
features come from the FPN level that torchvision's ``MultiScaleRoIAlign`` assigns to the RoI.)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    TwoMLPHead,
)
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from detpretrain.errors import ConfigError
from detpretrain.models.backbones import build_backbone, group_norm, stage_channels
from detpretrain.models.roi_align import GatherMultiScaleRoIAlign

#: box heads of :func:`build_faster_rcnn`: torchvision's ``TwoMLPHead`` (FC1, FC2; ``fasterrcnn_resnet50_fpn``) and
#: ``FastRCNNConvFCHead`` with 4 convs + 1 FC (``fasterrcnn_resnet50_fpn_v2``), GroupNorm in the convs.
BOX_HEADS = ("2mlp", "4conv1fc")


class BackboneWithFPNConvs(BackboneWithFPN):
    """torchvision's ``BackboneWithFPN`` followed by ``extra_convs`` 3x3 conv + GroupNorm + ReLU layers, shared by
    all FPN levels and added residually (``P + convs(P)``): more capacity between the backbone and the heads
    (Vasconcelos et al. 2022, Section 4: a frozen backbone needs "enough capacity" in the remaining detector).

    Output: the FPN's ``OrderedDict`` of [B, C_fpn, H_l, W_l] maps, same keys and shapes.
    """

    def __init__(self, backbone, return_layers, in_channels_list, out_channels, extra_blocks=None,
                 norm_layer=None, extra_convs: int = 0):
        super().__init__(backbone, return_layers, in_channels_list, out_channels, extra_blocks=extra_blocks,
                         norm_layer=norm_layer)
        layers: list[nn.Module] = []
        for _ in range(extra_convs):
            # at least 2 channels per group: the coarsest level (P6) can be 1 x 1, where a 1-channel group has
            # no variance to normalise by
            groups = math.gcd(32, max(1, out_channels // 2))
            layers += [nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                       nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True)]
        self.extra = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> OrderedDict:
        features = super().forward(x)
        if len(self.extra) == 0:
            return features
        return OrderedDict((k, v + self.extra(v)) for k, v in features.items())


def build_faster_rcnn(
    num_classes: int,
    *,
    arch: str = "resnet_tiny",
    norm: str = "gn",
    widths: Sequence[int] | None = None,
    backbone_weights=None,
    fpn_channels: int = 256,
    representation_size: int = 1024,
    anchor_sizes: Sequence[int] = (32, 64, 128, 256, 512),
    min_size: int = 800,
    max_size: int = 1333,
    trainable_stages: int = 5,
    rpn_pre_nms_top_n: tuple[int, int] = (2000, 1000),
    rpn_post_nms_top_n: tuple[int, int] = (2000, 1000),
    box_batch_size_per_image: int = 512,
    box_score_thresh: float = 0.01,
    box_detections_per_img: int = 100,
    fpn_extra_convs: int = 0,
    box_head: str = "2mlp",
    rpn_conv_depth: int = 1,
) -> FasterRCNN:
    """Faster R-CNN + FPN (Lin et al. 2017) on a ResNet, heads freshly initialised.

    Args:
        num_classes: object classes + 1 (background is label 0).
        arch, norm, widths, backbone_weights: passed to :func:`~detpretrain.models.backbones.build_backbone`
            (the weights are the pre-trained backbone; detection heads are always re-initialised, as the paper does
            before fine-tuning on PASCAL-VOC).
        fpn_channels: FPN output channels (the paper's ConvProj width is 256).
        representation_size: width of FC1/FC2 (the paper: 1024).
        anchor_sizes: one anchor size in pixels per FPN level (P2..P6), aspect ratios 0.5, 1, 2.
        min_size, max_size: torchvision's ``GeneralizedRCNNTransform`` resize bounds in pixels.
        trainable_stages: how many of (layer4, layer3, layer2, layer1, stem) are trained; 0 freezes the body
            (Vasconcelos et al. 2022): its weights, and with ``norm="bn"`` its statistics too, as BatchNorm then
            becomes ``FrozenBatchNorm2d`` (GroupNorm and frozen BN have no running statistics to update).
        rpn_pre_nms_top_n, rpn_post_nms_top_n: (train, test) proposal counts.
        fpn_extra_convs: shared residual 3x3 conv layers on every FPN level (:class:`BackboneWithFPNConvs`).
        box_head: one of :data:`BOX_HEADS`.
        rpn_conv_depth: 3x3 convs of torchvision's ``RPNHead``.

    Raises:
        ConfigError: an unknown ``box_head`` or a negative ``fpn_extra_convs`` / ``rpn_conv_depth`` < 1.

    Returns:
        a ``torchvision.models.detection.FasterRCNN``. Training mode: ``model(images, targets) -> dict of losses``;
        eval mode: ``model(images) -> list of {"boxes" [N,4] XYXY pixels, "scores" [N], "labels" [N]}``.
    """
    if box_head not in BOX_HEADS:
        raise ConfigError(f"unknown box_head {box_head!r}; expected one of {BOX_HEADS}")
    if fpn_extra_convs < 0 or rpn_conv_depth < 1:
        raise ConfigError(f"fpn_extra_convs must be >= 0 and rpn_conv_depth >= 1, got {fpn_extra_convs}, "
                          f"{rpn_conv_depth}")
    if trainable_stages == 0 and norm == "bn":
        norm = "frozen_bn"  # freezing the backbone freezes its normalisation statistics too
    body = build_backbone(arch, norm=norm, widths=widths, weights=backbone_weights)
    _freeze_stages(body, trainable_stages)
    channels = stage_channels(arch, widths)
    backbone = BackboneWithFPNConvs(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=list(channels),
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
        extra_convs=fpn_extra_convs,
    )
    anchor_generator = AnchorGenerator(
        sizes=tuple((int(s),) for s in anchor_sizes), aspect_ratios=((0.5, 1.0, 2.0),) * len(anchor_sizes)
    )
    if box_head == "2mlp":
        head = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
    else:
        head = FastRCNNConvFCHead((fpn_channels, 7, 7), [fpn_channels] * 4, [representation_size],
                                  norm_layer=group_norm)
    predictor = FastRCNNPredictor(representation_size, num_classes)
    # created last, as FasterRCNN itself would: the default detector's initialisation (RNG order) is unchanged
    rpn_head = RPNHead(fpn_channels, anchor_generator.num_anchors_per_location()[0], conv_depth=rpn_conv_depth)
    return FasterRCNN(
        backbone,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchor_generator,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n[0],
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n[1],
        rpn_post_nms_top_n_train=rpn_post_nms_top_n[0],
        rpn_post_nms_top_n_test=rpn_post_nms_top_n[1],
        rpn_head=rpn_head,
        # torchvision's default pooler (levels P2-P5, 7 x 7, 2 x 2 points per bin), its CPU backward 7x faster
        box_roi_pool=GatherMultiScaleRoIAlign(featmap_names=["0", "1", "2", "3"], output_size=7, sampling_ratio=2),
        box_head=head,
        box_predictor=predictor,
        box_batch_size_per_image=box_batch_size_per_image,
        box_score_thresh=box_score_thresh,
        box_detections_per_img=box_detections_per_img,
    )


def _freeze_stages(body: nn.Module, trainable_stages: int) -> None:
    if not 0 <= trainable_stages <= 5:
        raise ValueError(f"trainable_stages must be in 0..5, got {trainable_stages}")
    trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_stages]
    if trainable_stages == 5:
        trainable.append("bn1")
    for name, parameter in body.named_parameters():
        if not any(name.startswith(prefix) for prefix in trainable):
            parameter.requires_grad_(False)


@torch.no_grad()
def head_features(model: FasterRCNN, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor] | None = None,
                  level: str | None = None) -> dict:
    """The paper's detection-head features (Table 5) for RoIs, by default the whole image as one RoI.

    Args:
        model: a torchvision ``FasterRCNN`` built by :func:`build_faster_rcnn` (any mode; run under no_grad).
        images: B float tensors [3, H, W] in [0, 1].
        boxes: optional B tensors [R_b, 4] XYXY in input-image pixels; default one box covering each whole image
            (the paper feeds the whole image as one RoI for the linear probes of Table 5).

        level: None (default): the FPN level torchvision's ``MultiScaleRoIAlign`` assigns to each RoI by its size
            (a whole 128 px image goes to P3, stride 8); or an FPN key (``"3"`` = P5, the Conv5 stride of the
            paper's ConvProj) to pool every RoI from that level (:func:`roi_align_level`).

    Returns:
        {"conv5": [B, C5, h, w] Conv5 map of the resized image, "convproj": [R, C_fpn, 7, 7] RoI-aligned
        features, "fc1": [R, 1024], "fc2": [R, 1024]} with R = total RoIs (B for whole-image RoIs), in image order.
    """
    model = getattr(model, "module", model)
    was_training = model.training
    model.eval()
    try:
        original_sizes = [img.shape[-2:] for img in images]
        image_list, _ = model.transform(list(images))
        conv5 = {}
        handle = model.backbone.body.layer4.register_forward_hook(lambda m, i, o: conv5.setdefault("x", o))
        try:
            features = model.backbone(image_list.tensors)
        finally:
            handle.remove()
        if boxes is None:
            rois = [
                torch.tensor([[0.0, 0.0, float(w), float(h)]], device=image_list.tensors.device)
                for (h, w) in image_list.image_sizes
            ]
        else:
            rois = []
            for b, orig, new in zip(boxes, original_sizes, image_list.image_sizes):
                scale = torch.tensor(
                    [new[1] / orig[1], new[0] / orig[0], new[1] / orig[1], new[0] / orig[0]], device=b.device
                )
                rois.append(b.float() * scale)
        if level is None:
            convproj = model.roi_heads.box_roi_pool(features, rois, image_list.image_sizes)
        else:
            convproj = roi_align_level(features, rois, image_list.tensors.shape[-2:], level)
        head = model.roi_heads.box_head
        fc1 = torch.relu(head.fc6(convproj.flatten(start_dim=1)))
        fc2 = torch.relu(head.fc7(fc1))
        return {"conv5": conv5["x"], "convproj": convproj, "fc1": fc1, "fc2": fc2}
    finally:
        model.train(was_training)


def roi_align_level(features: dict, rois: Sequence[torch.Tensor], padded_size, level: str, output_size: int = 7,
                    sampling_ratio: int = 2) -> torch.Tensor:
    """RoIAlign of every RoI from ONE FPN level (Table 5's ConvProj at the paper's Conv5 stride), with the settings
    of torchvision's ``MultiScaleRoIAlign`` (``aligned=False``, ``sampling_ratio`` 2, the level's scale
    ``2 ** round(log2(map side / padded image side))``).

    Args:
        features: the FPN's ``{key: [B, C, h, w]}``; rois: B tensors [R_b, 4] XYXY in padded-image pixels;
        padded_size: (H, W) of the batched input; level: a key of ``features``.

    Returns:
        [R, C, output_size, output_size], RoIs in image order.

    Raises:
        KeyError: ``level`` is not a key of ``features``.
    """
    from torchvision.ops import roi_align

    if level not in features:
        raise KeyError(f"FPN level {level!r} not in {list(features)}")
    fmap = features[level]
    scale = 2.0 ** round(math.log2(fmap.shape[-1] / padded_size[-1]))
    return roi_align(fmap, [r.to(fmap.dtype) for r in rois], output_size, spatial_scale=scale,
                     sampling_ratio=sampling_ratio, aligned=False)
