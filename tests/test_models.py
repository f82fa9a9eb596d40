"""Backbones and detectors: shapes, widths, weight loading, the paper's head features."""

import pytest
import torch
from torch import nn

from detpretrain.errors import ConfigError
from detpretrain.models.backbones import (
    backbone_state_dict,
    build_backbone,
    group_norm,
    load_backbone_weights,
    stage_channels,
)
from detpretrain.models.detection import build_faster_rcnn, head_features


@pytest.mark.parametrize("arch,c5", [("resnet18", 512), ("resnet50", 2048), ("resnet_tiny", 128), ("resnet_mini", 256)])
def test_backbone_conv5_channels_and_logits(arch, c5):
    model = build_backbone(arch, norm="gn", num_classes=7)
    assert stage_channels(arch)[-1] == c5
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2, 7)
    feats = nn.Sequential(*list(model.children())[:-2])(x)
    assert feats.shape == (2, c5, 2, 2)  # stride 32


def test_custom_widths_change_channels_and_parameter_count():
    narrow = build_backbone("resnet18", widths=(32, 64, 96, 200), num_classes=5)
    assert narrow.layer4[-1].conv2.out_channels == 200
    assert narrow.fc.in_features == 200
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in build_backbone("resnet18").parameters())
    with pytest.raises(ConfigError, match="widths"):
        build_backbone("resnet18", widths=(1, 2, 3))


def test_norm_layers():
    assert isinstance(build_backbone("resnet_tiny", norm="gn").bn1, nn.GroupNorm)
    assert isinstance(build_backbone("resnet_tiny", norm="bn").bn1, nn.BatchNorm2d)
    assert group_norm(48).num_groups == 16 and group_norm(256).num_groups == 32
    with pytest.raises(ConfigError, match="unknown norm"):
        build_backbone("resnet_tiny", norm="ln")
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_backbone("vgg16")


def test_weights_roundtrip_through_our_checkpoint_file(tmp_path):
    torch.manual_seed(0)
    src = build_backbone("resnet_tiny", num_classes=10)
    path = tmp_path / "backbone.pt"
    torch.save(backbone_state_dict(src), path)
    dst = build_backbone("resnet_tiny", num_classes=3, weights=path)  # a new fc: only the body is loaded
    for (k, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        if not k.startswith("fc."):
            assert torch.equal(a, b), k
    with pytest.raises(ConfigError, match="do not fit"):
        build_backbone("resnet_mini", weights=path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("resnet_tiny", weights=tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="unknown torchvision weights"):
        load_backbone_weights(src, "ResNet50_Weights.NOT_A_MEMBER")


def test_detector_body_transfers_to_backbone(tmp_path):
    torch.manual_seed(0)
    det = build_faster_rcnn(5, arch="resnet_tiny", fpn_channels=16, representation_size=32, min_size=64, max_size=64)
    path = tmp_path / "det_backbone.pt"
    torch.save(backbone_state_dict(det), path)
    body = build_backbone("resnet_tiny", weights=path)
    assert torch.equal(body.layer4[0].conv1.weight, det.backbone.body.layer4[0].conv1.weight)


def _tiny_detector(**kw):
    return build_faster_rcnn(4, arch="resnet_tiny", fpn_channels=16, representation_size=32, min_size=64,
                             max_size=64, anchor_sizes=(8, 16, 32, 48, 64), rpn_pre_nms_top_n=(50, 50),
                             rpn_post_nms_top_n=(20, 20), box_batch_size_per_image=16, **kw)


def test_detector_train_and_eval_outputs():
    torch.manual_seed(0)
    model = _tiny_detector()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 48)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 30.0]]), "labels": torch.tensor([2])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert out[1]["boxes"].shape[1] == 4 and (out[1]["boxes"][:, 2] <= 64).all()  # back in input pixels (W=64)
    assert out[0]["labels"].dtype == torch.int64 and (out[0]["labels"] >= 1).all()


def test_frozen_stages_have_no_gradients():
    model = _tiny_detector(trainable_stages=2)
    body = model.backbone.body
    assert not any(p.requires_grad for p in body.layer1.parameters())
    assert not body.conv1.weight.requires_grad
    assert all(p.requires_grad for p in body.layer4.parameters())
    with pytest.raises(ValueError, match="trainable_stages"):
        _tiny_detector(trainable_stages=7)


def test_head_features_shapes_and_whole_image_roi():
    torch.manual_seed(0)
    model = _tiny_detector()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    feats = head_features(model, images)
    assert feats["conv5"].shape == (2, 128, 2, 2)
    assert feats["convproj"].shape == (2, 16, 7, 7)
    assert feats["fc1"].shape == (2, 32) and feats["fc2"].shape == (2, 32)
    assert (feats["fc1"] >= 0).all()  # after ReLU
    # explicit whole-image boxes give the same features as the default
    same = head_features(model, images, boxes=[torch.tensor([[0.0, 0.0, 64.0, 64.0]])] * 2)
    assert torch.allclose(same["fc2"], feats["fc2"], atol=1e-6)
    # FC1 equals fc6 applied to the flattened ConvProj features (independent recomputation)
    fc6 = model.roi_heads.box_head.fc6
    assert torch.allclose(torch.relu(fc6(feats["convproj"].flatten(1))), feats["fc1"], atol=1e-6)
