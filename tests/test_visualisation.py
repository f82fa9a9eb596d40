"""Activation-mass shares (Figure 4), mask-out maps (Figure 5) and localisation cases (Figure 8) on known inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from detpretrain.analysis import visualisation as V
from detpretrain.analysis.probes import linear_probe
from detpretrain.models.backbones import build_backbone


def test_scaled_mask_size_follows_the_paper():
    assert V.scaled_mask_size(224) == 60 and V.scaled_mask_size(128) == 34 and V.scaled_mask_size(64) == 17
    with pytest.raises(ValueError, match="positive"):
        V.scaled_mask_size(0)


def test_mass_shares_on_a_hand_made_map():
    a = np.zeros((4, 4))
    a[0, 0] = 2.0  # part
    a[0, 1] = 1.0  # rest of the object
    a[3, 3] = 1.0  # outside
    obj = np.zeros((4, 4), bool)
    obj[0, :2] = True
    part = np.zeros((4, 4), bool)
    part[0, 0] = True
    s = V.mass_shares(a, obj, part)
    assert (s["part"], s["object_rest"], s["outside"]) == (0.5, 0.25, 0.25)
    assert (s["part_area"], s["object_rest_area"], s["outside_area"]) == (1 / 16, 1 / 16, 14 / 16)
    # a uniform map gives mass shares equal to the area shares
    u = V.mass_shares(np.ones((4, 4)), obj, part)
    assert u["part"] == u["part_area"] and u["outside"] == u["outside_area"]
    with pytest.raises(ValueError, match="negative"):
        V.mass_shares(-a, obj, part)
    with pytest.raises(ValueError, match="all zero"):
        V.mass_shares(np.zeros((4, 4)), obj, part)
    with pytest.raises(ValueError, match="differ"):
        V.mass_shares(a, obj[:3], part)


def test_instance_balance():
    a = np.zeros((4, 4))
    a[0, 0], a[3, 3] = 4.0, 1.0
    m1, m2 = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    m1[0, 0], m2[3, 3] = True, True
    assert V.instance_balance(a, [m1, m2]) == 0.25
    assert V.instance_balance(np.ones((4, 4)), [m1, m2]) == 1.0
    with pytest.raises(ValueError, match="at least two"):
        V.instance_balance(a, [m1, np.zeros((4, 4), bool)])


def test_activation_maps_shape_and_non_negativity():
    torch.manual_seed(0)
    backbone = build_backbone("resnet_tiny", norm="gn")
    maps = V.activation_maps(backbone, torch.randn(2, 3, 64, 48))
    assert maps.shape == (2, 64, 48) and (maps >= 0).all()


def test_probe_head_reproduces_predict_proba():
    torch.manual_seed(0)
    backbone = build_backbone("resnet_tiny", norm="gn").eval()
    images = torch.randn(30, 3, 32, 32)
    with torch.no_grad():
        from torchvision.models.feature_extraction import create_feature_extractor

        feats = create_feature_extractor(backbone, {"layer4": "x"})(images)["x"].mean(dim=(2, 3)).numpy()
    labels = np.arange(30) % 3
    res = linear_probe((feats, labels), (feats, labels), (feats, labels), cs=(1.0,))
    head = V.probe_head(backbone, res["model"])
    with torch.no_grad():
        probs = head(images).numpy()
    np.testing.assert_allclose(probs, res["model"].predict_proba(feats), atol=1e-5)
    with pytest.raises(ValueError, match="StandardScaler -> LogisticRegression"):
        V.probe_head(backbone, object())


class PatchClassifier(torch.nn.Module):
    """Probability of class 0 = mean of the image over a fixed 'part' patch, clipped to [0, 1] (known answer)."""

    def forward(self, images):
        p = images[:, 0, 2:6, 2:6].mean(dim=(1, 2)).clamp(0, 1)
        return torch.stack([p, 1 - p], dim=1)


def test_maskout_map_equals_a_one_position_loop_and_drops_on_the_part():
    image = torch.zeros(3, 16, 16)
    image[:, 2:6, 2:6] = 1.0
    clf = PatchClassifier()
    res = V.maskout_map(clf, image, 0, window=4, stride=3, batch_size=5)
    assert res["ys"] == [0, 3, 6, 9, 12] and res["clean"] == 1.0
    for iy, y in enumerate(res["ys"]):
        for ix, x in enumerate(res["xs"]):
            masked = image.clone()
            masked[:, y:y + 4, x:x + 4] = 0
            assert res["prob"][iy, ix] == pytest.approx(float(clf(masked[None])[0, 0]))
    obj = np.zeros((16, 16), bool)
    obj[1:12, 1:12] = True
    part = np.zeros((16, 16), bool)
    part[2:6, 2:6] = True
    d = V.maskout_drops(res, obj, part)
    assert d["drop_part"] > 0.5 and d["drop_object_rest"] < d["drop_part"] and d["drop_outside"] == 0.0
    assert d["positions_part"] == 1  # centre (4.5, 4.5) -> pixel (4, 4)
    assert V.mask_positions(16, 4, 5) == [0, 5, 10, 12]
    with pytest.raises(ValueError, match="window"):
        V.mask_positions(8, 9, 1)


def test_best_iou_and_localisation_cases():
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    dets = [[0, 0, 10, 5], [0, 0, 10, 10], [20, 20, 30, 30]]
    iou = V.best_iou_per_object(gt, [1, 2], dets, [1, 1, 1], [0.9, 0.3, 0.9], score_thresh=0.5)
    np.testing.assert_allclose(iou, [0.5, 0.0])  # the exact box scores 0.3; the second object's class differs
    objects = pd.DataFrame({"image": [1, 1, 2, 3], "iou_cls": [0.5, 0.2, 0.6, 0.7], "iou_det": [0.9, 0.9, 0.6, 0.8],
                            "visible_fraction": [1.0, 0.4, 0.5, 0.6]})
    cases = V.localisation_cases(objects, "cls", "det", n=3)
    assert cases["image"].tolist() == [1, 3] and cases["gain"].round(2).tolist() == [0.7, 0.1]
    occl = V.localisation_cases(objects, "cls", "det", occluded_below=0.55)
    assert occl["image"].tolist() == [1] and occl["visible_fraction"].tolist() == [0.4]
