"""Real-data correctness (issue 19): run hashes that follow the data, not its path; roots that are named when
missing; no silent CPU run of a GPU-sized profile."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from detpretrain.config import config_hash
from detpretrain.data.fingerprint import dataset_fingerprint, with_fingerprint
from detpretrain.distributed import resolve_device
from detpretrain.errors import ConfigError, DataError
from detpretrain.experiments.common import check_device, pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.experiments.segmentation import segmentation_target
from detpretrain.profiles import get_profile


@pytest.fixture
def two_coco_copies(coco_subset, tmp_path):
    roots = []
    for name in ("machine_a", "machine_b"):
        root = tmp_path / name / "coco"
        shutil.copytree(coco_subset / "annotations", root / "annotations")
        for split in ("train2017", "val2017"):
            (root / split).symlink_to(coco_subset / split)
        roots.append(root)
    return roots


def _finetune(root, dataset="coco"):
    prof = get_profile("smoke")
    return finetune_config(prof, "scratch", 0, target_spec(prof, dataset, str(root)), pretrain_configs(prof))


def test_the_run_hash_follows_the_data_not_its_path(two_coco_copies):
    a, b = two_coco_copies
    cfg_a, cfg_b = _finetune(a), _finetune(b)
    assert cfg_a.data.root != cfg_b.data.root and cfg_a.data.fingerprint == cfg_b.data.fingerprint
    assert config_hash(cfg_a) == config_hash(cfg_b)
    ann = b / "annotations" / "instances_val2017.json"
    data = json.loads(ann.read_text())
    data["annotations"][0]["bbox"][0] += 1.0  # one annotation moved by a pixel: other data, another run
    ann.write_text(json.dumps(data))
    assert config_hash(_finetune(b)) != config_hash(cfg_a)


def test_voc_fingerprint_covers_split_lists_and_annotations(vocdevkit, tmp_path):
    copy = tmp_path / "VOCdevkit"
    shutil.copytree(vocdevkit, copy)
    for p in copy.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    prof = get_profile("smoke")
    base = target_spec(prof, "voc", str(vocdevkit))
    same = target_spec(prof, "voc", str(copy))
    assert base.fingerprint == same.fingerprint and base.root != same.root
    xml = next((copy / "VOC2007" / "Annotations").glob("*.xml"))
    xml.write_text(xml.read_text().replace("<difficult>0</difficult>", "<difficult>1</difficult>", 1) + " ")
    assert target_spec(prof, "voc", str(copy)).fingerprint != base.fingerprint
    seg = segmentation_target(prof, "voc", str(vocdevkit))
    assert seg.fingerprint and seg.fingerprint == dataset_fingerprint(seg)


def test_roots_expand_the_home_folder_and_missing_roots_are_named(coco_subset, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "coco").symlink_to(coco_subset)
    spec = target_spec(get_profile("smoke"), "coco", "~/data/coco")
    assert spec.root == str((tmp_path / "data" / "coco").resolve()) and "~" not in spec.root
    with pytest.raises(DataError, match=r"nowhere: data_root does not exist"):
        target_spec(get_profile("smoke"), "coco", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="instances_train2017.json: COCO annotation file is missing"):
        with_fingerprint(spec.__class__(kind="coco", root=str(tmp_path / "data"), train_split="train2017",
                                        eval_split="val2017"))
    with pytest.raises(ValueError, match="synthetic"):
        dataset_fingerprint(target_spec(get_profile("smoke")))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_and_gpu_profiles_on_auto_are_refused():
    with pytest.raises(ConfigError, match="asks for CUDA.*pass device='cpu'"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match="asks for CUDA"):
        resolve_device("cuda:1")
    assert resolve_device("auto").type == "cpu" and resolve_device(torch.device("cpu")).type == "cpu"
    with pytest.raises(ConfigError, match="profile 'paper' is sized for GPUs.*device='cpu'"):
        check_device(get_profile("paper"), "auto")
    check_device(get_profile("paper"), "cpu")  # insisting is allowed
    check_device(get_profile("mini"), "auto")


def test_torchvision_profile_takes_published_weights_and_transfers_only_the_detector_body(tmp_path, monkeypatch,
                                                                                          vocdevkit):
    """The ``torchvision`` profile: IMAGENET-CLS = ResNet50_Weights.IMAGENET1K_V1, detection (COCO role) = the body of
    FasterRCNN_ResNet50_FPN_Weights.COCO_V1. Weight files in torchvision's format (same keys, random values) are put
    in the hub cache, so loading by enum name runs exactly as on a machine that downloaded them."""
    from torchvision.models import ResNet50_Weights
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights, fasterrcnn_resnet50_fpn

    from detpretrain.models.backbones import build_backbone
    from detpretrain.models.build import build_model
    from detpretrain.runs import RunStore

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.manual_seed(0)
    detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91).state_dict()
    torch.save(detector, hub / FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url.rsplit("/", 1)[-1])
    classifier = build_backbone("resnet50", norm="bn").state_dict()
    torch.save(classifier, hub / ResNet50_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1])

    prof = get_profile("torchvision")
    pre = pretrain_configs(prof)
    assert pre == {"imagenet-cls": None, "detection": None}  # nothing is pre-trained here
    target = target_spec(prof, "voc", str(vocdevkit))
    store = RunStore(tmp_path / "runs")
    cfgs = {p: finetune_config(prof, p, 0, target, pre) for p in ("imagenet-cls", "detection", "scratch")}
    assert cfgs["imagenet-cls"].init == "torchvision:ResNet50_Weights.IMAGENET1K_V1"
    assert cfgs["detection"].init == "torchvision:FasterRCNN_ResNet50_FPN_Weights.COCO_V1"
    assert cfgs["scratch"].init is None and cfgs["scratch"].model.norm == "gn"

    det = build_model(cfgs["detection"], 21, backbone_weights=store.backbone_weights(cfgs["detection"].init))
    mine = det.state_dict()
    body = [k for k in detector if k.startswith("backbone.body.") and not k.endswith("num_batches_tracked")]
    assert body and all(torch.equal(mine[k], detector[k]) for k in body)  # the whole ResNet body is transferred
    fpn = "backbone.fpn.inner_blocks.0.0.weight"
    assert mine[fpn].shape == detector[fpn].shape and not torch.equal(mine[fpn], detector[fpn])  # FPN re-initialised
    cls = build_model(cfgs["imagenet-cls"], 21, backbone_weights=store.backbone_weights(cfgs["imagenet-cls"].init))
    assert torch.equal(cls.state_dict()["backbone.body.layer4.2.conv3.weight"], classifier["layer4.2.conv3.weight"])
    # loading the same detector checkpoint by file path runs the same extraction
    by_file = build_backbone("resnet50", norm="frozen_bn", weights=hub / FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url
                             .rsplit("/", 1)[-1])
    assert torch.equal(by_file.layer3[0].conv2.weight, detector["backbone.body.layer3.0.conv2.weight"])
