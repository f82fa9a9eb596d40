"""Features from published torchvision weights (the ``torchvision`` profile's backbones), offline.

Weight files in torchvision's format (its keys, random values) are put in the torch hub cache, so loading by enum
name runs exactly as on a machine that downloaded them; the images are genuine Oxford-IIIT Pet photographs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from detpretrain.errors import ConfigError
from detpretrain.experiments import features as F
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """TORCH_HOME with ResNet50_Weights.IMAGENET1K_V1 and FasterRCNN_ResNet50_FPN_Weights.COCO_V1 files in it."""
    from torchvision.models import ResNet50_Weights, resnet50
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights, fasterrcnn_resnet50_fpn

    home = tmp_path_factory.mktemp("torch_home")
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    torch.save(detector, checkpoints / FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url.rsplit("/", 1)[-1])
    classifier = resnet50().state_dict()
    torch.save(classifier, checkpoints / ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    yield {"detector": detector, "classifier": classifier}
    mp.undo()


@pytest.fixture(scope="module")
def pet_few(pet_subset):
    """The Pet subset at the torchvision profile's input size, one image per split."""
    data = F.probe_datasets("torchvision", "pet", pet_subset)
    return dataclasses.replace(data, train=Subset(data.train, [0]), val=Subset(data.val, [0]),
                               test=Subset(data.test, [0]), key=data.key + "-few")


def test_published_weights_are_named_per_profile():
    tv, paper = get_profile("torchvision"), get_profile("paper")
    assert F.published_weights("imagenet-cls", tv) == "ResNet50_Weights.IMAGENET1K_V1"
    assert F.published_weights("detection", tv) == "FasterRCNN_ResNet50_FPN_Weights.COCO_V1"
    assert F.published_weights("detection", paper) is None  # paper pre-trains its detector on COCO
    assert F.published_weights("scratch", tv) is None and F.published_weights("imagenet-cls", "smoke") is None
    assert F.plan_features(tv, ("imagenet-cls", "detection", "scratch")) == []  # nothing to train
    with pytest.raises(ConfigError, match="no run .*load_backbone"):
        F.pretrain_run("imagenet-cls", tv)


def test_conv5_features_from_published_backbones(hub, pet_few, tmp_path):
    store = RunStore(tmp_path / "runs")
    backbone, source, run = F.load_backbone("imagenet-cls", "torchvision", store=store, device="cpu")
    assert run is None and source == "torchvision-ResNet50_Weights.IMAGENET1K_V1"
    assert torch.equal(backbone.layer4[2].conv3.weight, hub["classifier"]["layer4.2.conv3.weight"])
    body, source, _ = F.load_backbone("detection", "torchvision", store=store, device="cpu")
    assert source == "torchvision-FasterRCNN_ResNet50_FPN_Weights.COCO_V1"
    assert torch.equal(body.layer3[0].conv2.weight, hub["detector"]["backbone.body.layer3.0.conv2.weight"])
    arrays = F.backbone_features("detection", pet_few, "torchvision", store=store, device="cpu", log=None)
    assert arrays["source"] == source and arrays["test"]["features"].shape == (1, 2048)
    assert (store.root / "features" / source).is_dir()  # cached under the weights' name


def test_table5_head_features_of_the_published_detector(hub, pet_few, tmp_path):
    store = RunStore(tmp_path / "runs")
    head = F.detector_head_features("detection", pet_few, "torchvision", store=store, device="cpu", splits=("test",))
    assert head["run"] is None and head["source"] == "torchvision-FasterRCNN_ResNet50_FPN_Weights.COCO_V1"
    test = head["test"]
    assert test["convproj"].shape == (1, 256 * 7 * 7) and test["fc1"].shape == (1, 1024)
    assert np.array_equal(test["labels"], [pet_few.test[0][1]])
    # at the profile's detection input size (600 / 1000 px), cached under it; torchvision's 800 / 1333 otherwise
    assert [p.name.split("-test-")[0] for p in (store.root / "features" / head["source"]).iterdir()] == [
        "head-600-1000px"]
    sized = F.published_detector("FasterRCNN_ResNet50_FPN_Weights.COCO_V1", min_size=320, max_size=480)
    assert sized.transform.min_size == (320,) and sized.transform.max_size == 480
    assert F.published_detector("FasterRCNN_ResNet50_FPN_Weights.COCO_V1").transform.min_size == (800,)
    with pytest.raises(ConfigError, match="SSD300_VGG16_Weights.COCO_V1.*sizes"):  # SSD takes no min_size
        F.published_detector("SSD300_VGG16_Weights.COCO_V1", min_size=320)
    with pytest.raises(ConfigError, match="not a torchvision detector"):
        F.published_detector("ResNet50_Weights.IMAGENET1K_V1")
