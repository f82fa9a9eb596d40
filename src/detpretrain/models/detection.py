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

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from detpretrain.models.backbones import build_backbone, stage_channels


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
        trainable_stages: how many of (layer4, layer3, layer2, layer1, stem) are trained; 0 freezes the body.
        rpn_pre_nms_top_n, rpn_post_nms_top_n: (train, test) proposal counts.

    Returns:
        a ``torchvision.models.detection.FasterRCNN``. Training mode: ``model(images, targets) -> dict of losses``;
        eval mode: ``model(images) -> list of {"boxes" [N,4] XYXY pixels, "scores" [N], "labels" [N]}``.
    """
    body = build_backbone(arch, norm=norm, widths=widths, weights=backbone_weights)
    _freeze_stages(body, trainable_stages)
    channels = stage_channels(arch, widths)
    backbone = BackboneWithFPN(
        body,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=list(channels),
        out_channels=fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    anchor_generator = AnchorGenerator(
        sizes=tuple((int(s),) for s in anchor_sizes), aspect_ratios=((0.5, 1.0, 2.0),) * len(anchor_sizes)
    )
    box_head = TwoMLPHead(fpn_channels * 7 * 7, representation_size)
    return FasterRCNN(
        backbone,
        min_size=min_size,
        max_size=max_size,
        rpn_anchor_generator=anchor_generator,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n[0],
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n[1],
        rpn_post_nms_top_n_train=rpn_post_nms_top_n[0],
        rpn_post_nms_top_n_test=rpn_post_nms_top_n[1],
        box_head=box_head,
        box_predictor=FastRCNNPredictor(representation_size, num_classes),
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
def head_features(model: FasterRCNN, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor] | None = None) -> dict:
    """The paper's detection-head features (Table 5) for RoIs, by default the whole image as one RoI.

    Args:
        model: a torchvision ``FasterRCNN`` built by :func:`build_faster_rcnn` (any mode; run under no_grad).
        images: B float tensors [3, H, W] in [0, 1].
        boxes: optional B tensors [R_b, 4] XYXY in input-image pixels; default one box covering each whole image
            (the paper feeds the whole image as one RoI for the linear probes of Table 5).

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
        convproj = model.roi_heads.box_roi_pool(features, rois, image_list.image_sizes)
        head = model.roi_heads.box_head
        fc1 = torch.relu(head.fc6(convproj.flatten(start_dim=1)))
        fc2 = torch.relu(head.fc7(fc1))
        return {"conv5": conv5["x"], "convproj": convproj, "fc1": fc1, "fc2": fc2}
    finally:
        model.train(was_training)
