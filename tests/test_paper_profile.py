"""The `paper` profile's code paths, exercised offline with local files.

The paper profile needs the full datasets, torchvision's ImageNet weights and GPUs, none of which exist here. What
can be checked: its configs, the torchvision weight-enum path (torchvision loads an enum's file from the torch hub
cache without downloading when the file is there, so we put weights saved by our own code there), the VOC 07+12
split syntax, and the COCO pre-training data path on the genuine COCO subset.
"""

from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet18_Weights, ResNet101_Weights

from detpretrain.models.build import build_model
from detpretrain.config import DataSpec
from detpretrain.data.builders import build_detection_dataset
from detpretrain.errors import DataError
from detpretrain.experiments.common import pretrain_configs, target_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.models.backbones import build_backbone
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore


def _put_in_hub_cache(torch_home: Path, weights, state: dict) -> None:
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(state, checkpoints / Path(weights.url).name)


def test_torchvision_weight_enum_loads_from_the_hub_cache_into_frozen_bn(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    source = build_backbone("resnet18", norm="bn", num_classes=1000)
    for m in source.modules():  # non-trivial BN statistics, as ImageNet weights have
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    _put_in_hub_cache(tmp_path, ResNet18_Weights.IMAGENET1K_V1, source.state_dict())
    loaded = build_backbone("resnet18", norm="frozen_bn", weights="ResNet18_Weights.IMAGENET1K_V1")
    assert torch.equal(loaded.layer3[1].bn2.running_var, source.layer3[1].bn2.running_var)
    assert torch.equal(loaded.fc.weight, source.fc.weight)
    source.eval()
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(loaded(x), source(x), atol=1e-5)  # frozen BN = BN in eval mode


def test_paper_configs(coco_subset, vocdevkit):
    paper = get_profile("paper")
    pre = pretrain_configs(paper, detection_root=str(coco_subset))
    assert pre["imagenet-cls"] is None  # IMAGENET-CLS = torchvision weights, not trained here
    det = pre["detection"]
    assert det.init == "torchvision:ResNet101_Weights.IMAGENET1K_V2"
    assert det.data.kind == "coco" and det.data.train_split == "train2017" and det.model.arch == "resnet101"
    assert len(build_detection_dataset(det.data, det.data.train_split, train=True)) == 130
    target = target_spec(paper, "voc", str(vocdevkit))
    assert target.train_split == "2007:trainval+2012:trainval" and target.eval_split == "2007:test"
    cls = finetune_config(paper, "imagenet-cls", 0, target, pre)
    assert cls.init == "torchvision:ResNet101_Weights.IMAGENET1K_V2" and cls.model.norm == "frozen_bn"
    assert cls.optim.epochs == 7 and cls.optim.milestones == (5,) and cls.optim.amp
    scratch = finetune_config(paper, "scratch", 0, target, pre)
    assert scratch.init is None and scratch.model.norm == "gn"  # frozen BN needs pre-trained statistics
    assert RunStore().backbone_weights(cls.init) == "ResNet101_Weights.IMAGENET1K_V2"


def test_voc_07_plus_12_split_syntax(vocdevkit):
    both = DataSpec(kind="voc", root=str(vocdevkit), train_split="2007:test+2007:test")
    ds = build_detection_dataset(both, both.train_split, train=True)
    assert len(ds) == 18 and len(ds.classes) == 21
    paper_split = DataSpec(kind="voc", root=str(vocdevkit), train_split="2007:trainval+2012:trainval")
    with pytest.raises(DataError, match="trainval"):  # the local subset has VOC2007 test images only
        build_detection_dataset(paper_split, paper_split.train_split, train=True)


@pytest.mark.slow
def test_paper_finetune_detector_builds_from_the_weight_enum_and_detects(tmp_path, monkeypatch, coco_subset,
                                                                        vocdevkit):
    """ResNet-101 + FPN at the paper's sizes, IMAGENET-CLS weights through the enum path (our own file)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    _put_in_hub_cache(tmp_path, ResNet101_Weights.IMAGENET1K_V2,
                      build_backbone("resnet101", norm="bn", num_classes=1000).state_dict())
    paper = get_profile("paper")
    pre = pretrain_configs(paper, detection_root=str(coco_subset))
    cfg = finetune_config(paper, "imagenet-cls", 0, target_spec(paper, "voc", str(vocdevkit)), pre)
    model = build_model(cfg, 21, backbone_weights=RunStore().backbone_weights(cfg.init))
    assert model.transform.min_size == (800,)
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad  # trainable_stages=3 as torchvision's default
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 240, 320)])
    assert out[0]["boxes"].shape[1] == 4


def test_eigenspectrum_needs_no_coco_root_at_paper(coco_subset, monkeypatch, tmp_path):
    """The eigenspectrum study compares I (IMAGENET-CLS) and S (scratch): at ``paper`` it must not ask for the COCO
    root of a detection pre-training it never uses (its chapter has no ``coco_root`` parameter)."""
    from detpretrain.experiments.eigenspectrum import configuration_table, eigen_chain

    monkeypatch.setenv("DETPRETRAIN_COCO", str(tmp_path / "absent"))
    prof = get_profile("paper")
    chain = eigen_chain(prof, dataset="coco", data_root=str(coco_subset))
    assert {cfg.init for *_, cfg in chain.finetunes} == {"torchvision:ResNet101_Weights.IMAGENET1K_V2", None}
    table = configuration_table(prof, "coco", str(coco_subset), [0], scratch_factor=2, threshold=1e-2,
                                normalisation="max", n_images=8)
    assert "resnet101" in table.to_string()
    assert set(pretrain_configs(prof, with_detection=False)) == {"imagenet-cls"}
    with pytest.raises(DataError, match="absent.*COCO detection pre-training"):  # where it is needed, still named
        pretrain_configs(prof)
