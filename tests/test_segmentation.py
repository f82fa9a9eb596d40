"""Section 2.2 (Table 4, Figures 2 and 9): DeepLabV3 on our backbones, segmentation data, the training chain and
its analysis.

Model geometry is checked against torchvision's own dilation and against the "a trous" identity; the COCO ->
semantic conversion against masks decoded independently with ``pycocotools.COCO.annToMask``; the genuine VOC2012
sample is read end to end; one smoke fine-tuning goes through the run store (and is reused, and resumed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import ndimage

from detpretrain import engine
from detpretrain.models.build import build_model
from detpretrain.config import DataSpec, config_hash, replace_path
from detpretrain.data.builders import build_segmentation_dataset, coco_semantic_mask
from detpretrain.data.voc import VOC_CLASSES, read_index_png
from detpretrain.errors import DataError
from detpretrain.experiments.common import pretrain_configs, synthetic_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.models.backbones import build_backbone, load_backbone_weights
from detpretrain.models.segmentation import (
    build_deeplabv3,
    deeplab_head,
    default_bands,
    dilate_resnet,
    scaled_rates,
    segmentation_backbone_state_dict,
    segmentation_geometry,
)
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore, get_or_train
from detpretrain.experiments.segmentation import run_segmentation_experiment, segmentation_config, segmentation_target

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# ------------------------------------------------------------------------------------------------------ model
def _conv_geometry(model):
    return [(n, m.stride, m.dilation, m.padding) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]


@pytest.mark.parametrize("flags", [(False, True, True), (False, False, True), (True, True, True)])
def test_dilation_equals_torchvision_for_bottleneck(flags):
    from torchvision.models import resnet50

    ours = dilate_resnet(resnet50(), flags)
    assert _conv_geometry(ours) == _conv_geometry(resnet50(replace_stride_with_dilation=list(flags)))


def test_dilated_basicblock_computes_the_original_features_a_trous():
    """With spatially independent normalisation (frozen BN) the stride-8 network evaluates the stride-32 network's
    features on a 4x denser grid: every 4th output equals the original output exactly."""
    torch.manual_seed(0)
    net = build_backbone("resnet_tiny", norm="frozen_bn")
    with torch.no_grad():
        for m in net.modules():
            if hasattr(m, "running_var") and hasattr(m, "weight"):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    from torchvision.models._utils import IntermediateLayerGetter

    original = IntermediateLayerGetter(net, {"layer4": "out"})
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        reference = original(x)["out"]
        dense = IntermediateLayerGetter(dilate_resnet(net), {"layer4": "out"})(x)["out"]
    assert reference.shape[-2:] == (3, 2) and dense.shape[-2:] == (12, 8)
    torch.testing.assert_close(dense[..., ::4, ::4], reference, rtol=1e-4, atol=1e-5)
    blk3, blk4 = net.layer3[0], net.layer4[0]
    assert (blk3.conv1.stride, blk3.conv1.dilation, blk3.conv2.dilation) == ((1, 1), (1, 1), (2, 2))
    assert (blk4.conv1.stride, blk4.conv1.dilation, blk4.conv2.dilation) == ((1, 1), (2, 2), (4, 4))
    with pytest.raises(ValueError, match="already dilated"):
        dilate_resnet(net)


def test_deeplab_uses_every_pretrained_weight_unchanged_and_outputs_input_size(tmp_path):
    torch.manual_seed(1)
    pretrained = build_backbone("resnet_tiny", norm="gn", num_classes=25)
    state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("fc.")}
    torch.save(state, tmp_path / "backbone.pt")
    model = build_deeplabv3(13, arch="resnet_tiny", norm="gn", backbone_weights=tmp_path / "backbone.pt",
                            head_channels=32, atrous_rates=(3, 6, 9))
    loaded = segmentation_backbone_state_dict(model)
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    model.eval()
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        assert model(x)["out"].shape == (2, 13, 96, 80)
        assert model.backbone(x)["out"].shape == (2, 128, 12, 10)  # output stride 8
    # the head is new: a second build from the same weights differs in the head only
    torch.manual_seed(2)
    other = build_deeplabv3(13, arch="resnet_tiny", norm="gn", backbone_weights=tmp_path / "backbone.pt",
                            head_channels=32, atrous_rates=(3, 6, 9))
    assert not torch.equal(other.classifier[4].weight, model.classifier[4].weight)
    # the saved backbone of a segmentation run loads into a plain ResNet again
    load_backbone_weights(build_backbone("resnet_tiny", norm="gn"), tmp_path / "backbone.pt")
    # one image at a time works (GroupNorm head, also the 1x1 ASPP pooling branch)
    with torch.no_grad():
        assert model(x[:1])["out"].shape == (1, 13, 96, 80)


def test_head_has_torchvision_deeplabhead_parameters():
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead

    ours = {k: v.shape for k, v in deeplab_head(64, 21).state_dict().items()}
    assert ours == {k: v.shape for k, v in DeepLabHead(64, 21).state_dict().items()}


def test_geometry_scales_deeplab_settings():
    assert scaled_rates(513) == (12, 24, 36) and scaled_rates(128) == (3, 6, 9)
    assert default_bands(128) == (tuple(range(1, 11)), 0.256)
    assert default_bands(64)[0] == (1, 2, 3, 4, 5)
    assert default_bands(None) == (tuple(range(1, 41)), 1.0)
    prof = get_profile("mini")
    g = segmentation_geometry(prof.model, synthetic_spec("mini", "voc"))
    assert (g.input_size, g.crop, g.atrous_rates, g.bands[-1]) == (128, None, (3, 6, 9), 10)
    real = segmentation_geometry(prof.real_model, DataSpec(kind="coco", root="/x"))
    assert (real.input_size, real.crop, real.bands[-1], real.band_scale) == (320, 320, 40, 1.0)
    assert segmentation_geometry(get_profile("paper").model, DataSpec(kind="voc", root="/x")).crop == 513


# ------------------------------------------------------------------------------------------------------ data
def test_synthetic_dataset_shapes_void_and_flip(corpus_dir):
    spec = synthetic_spec("smoke", "voc")
    train = build_segmentation_dataset(spec, "trainval", train=True)
    test = build_segmentation_dataset(spec, "test", train=False)
    assert (len(train), len(test)) == (48, 32)
    assert train.classes[0] == "__background__" and len(train.classes) == 13
    image, mask = test[0]
    assert image.dtype == torch.float32 and image.shape == (3, 64, 64)
    assert mask.dtype == torch.int64 and mask.shape == (64, 64)
    raw = read_index_png(test.mask_path(0))
    assert np.array_equal(mask.numpy(), raw)  # evaluation keeps the label map untouched
    values = set(np.unique(np.concatenate([read_index_png(test.mask_path(i)).ravel() for i in range(len(test))])))
    assert 255 in values and values - {255} <= set(range(13))
    torch.manual_seed(0)
    flipped = 0
    for i in range(8):  # training: image and mask flipped together (or not at all)
        img_t, mask_t = train[i]
        img_e, mask_e = build_segmentation_dataset(spec, "trainval", train=False)[i]
        if torch.equal(mask_t, mask_e):
            torch.testing.assert_close(img_t, img_e)
        else:
            flipped += 1
            assert torch.equal(mask_t, mask_e.flip(-1))
            torch.testing.assert_close(img_t, img_e.flip(-1))
    assert 0 < flipped < 8


def _tiny_voc(root: Path, image_hw=(30, 40), mask_hw=(30, 40), split="train") -> Path:
    voc = root / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*image_hw, 3), 120, np.uint8)).save(voc / "JPEGImages" / "a.jpg")
    Image.fromarray(np.zeros(mask_hw, np.uint8), mode="L").save(voc / "SegmentationClass" / "a.png")
    (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("a\n")
    return voc


def test_mask_of_the_wrong_size_and_missing_split_list_are_named(tmp_path):
    voc = _tiny_voc(tmp_path, image_hw=(30, 40), mask_hw=(20, 20))
    spec = DataSpec(kind="voc", root=str(voc), train_split="train", eval_split="val")
    ds = build_segmentation_dataset(spec, "train", train=False)
    with pytest.raises(DataError, match=r"SegmentationClass/a\.png: image is 20x20"):
        ds[0]
    with pytest.raises(DataError, match=r"ImageSets/Segmentation/val\.txt: split file is missing"):
        build_segmentation_dataset(spec, "val", train=False)
    with pytest.raises(DataError, match="has no segmentation masks"):
        build_segmentation_dataset(synthetic_spec("smoke", "coco"), "train", train=False)


def test_coco_rule_on_a_handmade_image():
    masks = np.zeros((4, 8, 8), bool)
    masks[0, 1:4, 1:4] = True  # person (15)
    masks[1, 2:6, 2:6] = True  # dog (12), overlaps the person at [2:4, 2:4]
    masks[2, 6:8, 0:3] = True  # a non-VOC category -> background
    masks[3, 0:2, 6:8] = True  # crowd of persons -> void
    out = coco_semantic_mask(masks, [15, 12, 0, 15], [False, False, False, True], void_band=0)
    expected = np.zeros((8, 8), np.uint8)
    expected[1:4, 1:4] = 15
    expected[2:6, 2:6] = 12
    expected[2:4, 2:4] = 255
    expected[0:2, 6:8] = 255
    assert np.array_equal(out, expected)
    banded = coco_semantic_mask(masks, [15, 12, 0, 15], [False, False, False, True], void_band=1)
    assert banded[7, 7] == 0 and banded[0, 0] == 0 and banded[1, 1] == 255 and banded[4, 4] == 12


def test_coco_semantic_masks_agree_with_pycocotools(coco_subset):
    from pycocotools.coco import COCO

    from detpretrain.data.builders import COCO_TO_VOC, CocoSemanticSegmentation

    ann_file = coco_subset / "annotations" / "instances_val2017.json"
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(ann_file))
    plain = CocoSemanticSegmentation(coco_subset / "val2017", ann_file, void_band=0)
    banded = CocoSemanticSegmentation(coco_subset / "val2017", ann_file, void_band=5)
    voc_label = {COCO_TO_VOC[c["name"]]: None for c in coco.loadCats(coco.getCatIds()) if c["name"] in COCO_TO_VOC}
    assert len(voc_label) == 20
    name_to_voc = {c["id"]: VOC_CLASSES.index(COCO_TO_VOC[c["name"]]) + 1
                   for c in coco.loadCats(coco.getCatIds()) if c["name"] in COCO_TO_VOC}
    crowd_images = {a["image_id"] for a in coco.dataset["annotations"] if a["iscrowd"] and a["category_id"] in
                    name_to_voc}
    picks = sorted(crowd_images)[:2] + [139, 397133]
    for image_id in picks:
        i = plain.image_ids.index(image_id)
        info = coco.loadImgs(image_id)[0]
        expected = np.zeros((info["height"], info["width"]), np.uint8)
        count = np.zeros_like(expected, dtype=np.int32)
        owner = np.zeros_like(expected, dtype=np.int32)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        for k, a in enumerate(anns):
            if a["category_id"] in name_to_voc and not a["iscrowd"]:
                m = coco.annToMask(a).astype(bool)
                expected[m] = name_to_voc[a["category_id"]]
                count += m
                owner[m] = k + 1
        expected[count > 1] = 255
        for a in anns:
            if a["category_id"] in name_to_voc and a["iscrowd"]:
                expected[coco.annToMask(a).astype(bool)] = 255
        got = plain.load_mask(i).numpy()
        assert np.array_equal(got, expected), image_id
        band = banded.load_mask(i).numpy()
        changed = band != got
        assert (band[changed] == 255).all()
        outline = np.zeros_like(changed)  # pixels with a 4-neighbour owned by another instance (or none)
        outline[:, 1:] |= owner[:, 1:] != owner[:, :-1]
        outline[1:, :] |= owner[1:, :] != owner[:-1, :]
        assert (band[outline] == 255).all(), image_id
        near = ndimage.binary_dilation(outline, structure=np.ones((11, 11), bool))
        assert not (changed & ~near).any(), image_id
    image, mask = build_segmentation_dataset(
        DataSpec(kind="coco", root=str(coco_subset), train_split="train2017", eval_split="val2017"), "val2017",
        train=True, crop=96)[0]
    assert image.shape == (3, 96, 96) and mask.shape == (96, 96) and mask.dtype == torch.int64


def test_genuine_voc2012_sample_end_to_end(vocdevkit):
    """The one genuine VOC2012 image: read, segmented at full resolution, scored; its train list is absent."""
    prof = get_profile("smoke")
    spec = segmentation_target(prof, "voc", str(vocdevkit))
    assert (spec.year, spec.train_split, spec.eval_split) == ("2012", "train", "val")
    test = build_segmentation_dataset(spec, "val", train=False)
    assert len(test) == 1 and test.classes == ["__background__", *VOC_CLASSES]
    image, mask = test[0]
    png = np.array(Image.open(vocdevkit / "VOC2012" / "SegmentationClass" / "2007_001763.png"))
    assert image.shape == (3, 375, 500) and np.array_equal(mask.numpy(), png)
    assert {VOC_CLASSES[v - 1] for v in np.unique(png) if 0 < v < 255} == {"cat", "dog", "sofa", "tvmonitor"}
    crop = segmentation_geometry(prof.real_model, spec).crop
    img_t, mask_t = build_segmentation_dataset(spec, "val", train=True, crop=crop)[0]
    assert img_t.shape == (3, crop, crop) and mask_t.shape == (crop, crop)
    cfg = segmentation_config(prof, "scratch", 0, spec, pretrain_configs(prof))
    torch.manual_seed(0)
    model = build_model(cfg, len(test.classes))
    m = engine.evaluate_segmenter(model, test, torch.device("cpu"), bands=(1, 5, 40), input_size=crop,
                                  progress=False)
    assert m["num_images"] == 1 and m["num_pixels"] == int((png != 255).sum())
    for w in ("1", "5", "40"):
        assert m["trimap"][w]["num_pixels"] + m["anti_trimap"][w]["num_pixels"] == m["num_pixels"]
    assert m["trimap"]["1"]["num_pixels"] < m["trimap"]["40"]["num_pixels"]
    assert [p["image_id"] for p in m["per_image"]] == [2007001763]
    with pytest.raises(DataError, match=r"ImageSets/Segmentation/train\.txt"):
        build_segmentation_dataset(spec, spec.train_split, train=True, crop=crop)


# ------------------------------------------------------------------------------------------------------ chain
def test_segmentation_configs_reuse_the_detection_chapters_pretraining_runs(vocdevkit, coco_subset):
    for name in ("smoke", "paper"):
        prof = get_profile(name)
        pretrained = pretrain_configs(prof, detection_root=str(coco_subset) if name == "paper" else None)
        target = segmentation_target(prof, "synthetic") if name != "paper" else \
            segmentation_target(prof, "voc", str(vocdevkit))
        for pretrain in ("imagenet-cls", "detection", "scratch"):
            seg = segmentation_config(prof, pretrain, 1, target, pretrained)
            det = finetune_config(prof, pretrain, 1, target, pretrained)
            assert (seg.task, seg.optim, seg.init, seg.model, seg.seed) == \
                ("segmentation", prof.seg_finetune, det.init, det.model, 1)
        assert segmentation_config(prof, "detection", 0, target, pretrained).init == \
            f"run:{config_hash(pretrained['detection'])}"
    paper = get_profile("paper")
    assert segmentation_config(paper, "scratch", 0, segmentation_target(paper, "voc", str(vocdevkit)),
                               pretrain_configs(paper, detection_root=str(coco_subset))).model.norm == "gn"


EXPECTED_KEYS = {"mIoU", "pixel_accuracy", "per_class_IoU", "bands", "band_scale", "trimap", "anti_trimap",
                 "per_image", "num_images", "num_pixels", "classes", "history", "headline", "config_hash", "task"}


@pytest.fixture(scope="module")
def smoke_run(corpus_dir, tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    result = run_segmentation_experiment("smoke", pretrains=("scratch",), store=store, progress=False,
                                         log=lambda s: None)
    return result, store


def test_smoke_segmentation_run_writes_the_documented_metrics(smoke_run):
    result, _ = smoke_run
    (run,) = result["runs"]
    m = run["metrics"]
    assert EXPECTED_KEYS <= set(m)
    assert m["task"] == "segmentation" and m["bands"] == [1, 2, 3, 4, 5] and m["band_scale"] == 0.128
    assert list(m["per_class_IoU"]) == sorted(m["classes"]) and len(m["classes"]) == 13  # json keys are sorted
    assert 0 <= m["mIoU"] <= 100 and 0 <= m["pixel_accuracy"] <= 100
    assert len(m["per_image"]) == m["num_images"] == 32
    assert len(m["history"]) == get_profile("smoke").seg_finetune.epochs
    for w in map(str, m["bands"]):
        assert m["trimap"][w]["num_pixels"] + m["anti_trimap"][w]["num_pixels"] == m["num_pixels"]
    for name in ("config.json", "metrics.json", "backbone.pt", "model.pt", "log.txt", "checkpoints/last.pt"):
        assert (Path(run["run"]) / name).exists(), name
    load_backbone_weights(build_backbone("resnet_tiny", norm="gn"), Path(run["run"]) / "backbone.pt")


def test_resumed_segmentation_run_equals_an_uninterrupted_one(smoke_run, tmp_path):
    """A checkpoint after epoch 0 of a 2-epoch run (taken from a 1-epoch run with the same seed, data order and
    learning-rate schedule up to there) is resumed to the metrics of the uninterrupted 2-epoch run."""
    result, _ = smoke_run
    (run,) = result["runs"]
    full = json.loads(Path(run["run"], "config.json").read_text())
    from detpretrain.config import from_dict

    cfg2 = from_dict(full)
    cfg1 = replace_path(cfg2, "optim.epochs", 1)
    part = get_or_train(cfg1, RunStore(tmp_path / "a"), progress=False)
    resumed = RunStore(tmp_path / "b").run_for(cfg2)
    resumed.checkpoint_path.parent.mkdir(parents=True)
    shutil.copy(part.checkpoint_path, resumed.checkpoint_path)
    metrics = get_or_train(cfg2, RunStore(tmp_path / "b"), progress=False).metrics
    assert "resumed from" in (resumed.path / "log.txt").read_text()
    assert metrics["mIoU"] == run["metrics"]["mIoU"] and metrics["trimap"] == run["metrics"]["trimap"]
    assert [h["loss"] for h in metrics["history"]] == [h["loss"] for h in run["metrics"]["history"]]


# ------------------------------------------------------------------------------------------------------ analysis
def _result(gains, tri, anti, seeds=(0, 1, 2), replicated=False):
    """A hand-made experiment result: imagenet-cls at mIoU 50 everywhere, detection + the given per-seed gains
    (``replicated``: the entries are pre-training replicates of seed 0 instead of seeds)."""
    runs = []
    for pretrain in ("imagenet-cls", "detection"):
        for k, unit in enumerate(seeds):
            replicate, seed = (unit, 0) if replicated else (0, unit)
            det = pretrain == "detection"
            band = {"1": {"mIoU": 30.0 + (tri[k] if det else 0), "pixel_accuracy": 40.0, "num_pixels": 10},
                    "2": {"mIoU": 35.0 + (tri[k] if det else 0), "pixel_accuracy": 45.0, "num_pixels": 20}}
            anti_band = {w: {"mIoU": 60.0 + (anti[k] if det else 0), "pixel_accuracy": 90.0, "num_pixels": 5}
                         for w in ("1", "2")}
            runs.append({"pretrain": pretrain, "replicate": replicate, "seed": seed,
                         "hash": f"{pretrain[:3]}{unit}" * 4, "run": "",
                         "metrics": {"mIoU": 50.0 + (gains[k] if det else 0), "pixel_accuracy": 80.0,
                                     "per_class_IoU": {"__background__": 90.0, "cow": 40.0 + (5 if det else 0),
                                                       "table": 20.0},
                                     "classes": ["__background__", "cow", "table"], "bands": [1, 2],
                                     "band_scale": 0.25, "trimap": band, "anti_trimap": anti_band,
                                     "per_image": [{"index": i, "image_id": 10 + i, "mIoU": 40.0 + (i * (2 * det - 1)),
                                                    "pixel_accuracy": 50.0} for i in range(5)]}})
    return {"profile": "mini", "dataset": "synthetic", "data": "synthetic voc (128 px)", "runs": runs}


def test_claims_are_over_pre_training_runs():
    from detpretrain.analysis import claims as C
    from detpretrain.analysis import segmentation as A

    primary = C.PRIMARY_CLAIMS["segmentation"].name
    holds = _result(gains=[2.0, 3.0, 4.0], tri=[0.5, 0.0, 1.0], anti=[3.0, 2.0, 4.5], replicated=True)
    claims = A.segmentation_claims(holds)
    assert list(claims)[0] == primary
    assert claims[primary].label == "holds" and claims[primary].estimate == pytest.approx(3.0)
    assert claims[primary].n == 3 and claims[primary].unit == "pre-training run"
    # Figure 2 enters the claims as boundary_share tests it, per width; "anti-trimap - trimap" is only described
    assert not any("anti-trimap −" in name for name in claims)
    share = A.boundary_share(holds)[1]
    assert [f"Figure 2: {name}" for name in share] == list(claims)[2:] and len(share) == 4  # 2 claims x 2 widths
    for name, v in share.items():
        assert claims[f"Figure 2: {name}"] == v
    text = A.extent_summary(holds)
    assert "VOC-scale 4–8 px" in text and "+0.5 points near boundaries" in text
    boundary = _result(gains=[-2.0, -3.0, -2.5], tri=[3.0, 3.0, 4.0], anti=[0.0, 0.0, 0.5], replicated=True)
    claims = A.segmentation_claims(boundary)
    assert claims[primary].label == "reversed"
    noisy = A.segmentation_claims(_result(gains=[3.0, -3.0, 0.5], tri=[1.0, -1.0, 0.0], anti=[-1.0, 1.0, 0.2],
                                          replicated=True))
    assert noisy[primary].label == "not resolved"
    # one pre-training run, three seeds: about these particular networks
    seeds = A.segmentation_claims(_result(gains=[2.0, 3.0, 4.0], tri=[0.5, 0.0, 1.0], anti=[3.0, 2.0, 4.5]))
    assert seeds[primary].label == "holds" and not seeds[primary].replicated
    one = A.segmentation_claims(_result(gains=[5.0], tri=[0.0], anti=[5.0], seeds=(0,)))[primary]
    assert one.label == "not resolved" and "1 fine-tuning run" in one.sentence("mIoU")
    gains = A.boundary_gains(holds)
    assert list(gains["trimap gain"]) == pytest.approx([0.5, 0.5]) and list(gains["voc_width"]) == [4.0, 8.0]
    with pytest.raises(Exception, match=r"\[7\] px were not evaluated"):
        A.trimap_frame(holds, bands=[7])


def test_tables_and_example_rule():
    from detpretrain.analysis import segmentation as A

    r = _result(gains=[2.0, 3.0, 4.0], tri=[0.5, 0.0, 1.0], anti=[3.0, 2.5, 3.5])
    t4 = A.table4(r).set_index("pre-training")
    assert t4.loc["detection", "mIoU"] == pytest.approx(53.0) and t4.loc["detection", "paper mIoU"] == 78.6
    assert t4.loc["imagenet-cls", "paper mIoU"] == 75.7 and t4.loc["imagenet-cls", "sd"] == 0.0
    pc = A.per_class_gain(r).set_index("class")
    assert pc.loc["cow", "gain"] == 5.0 and pc.loc["cow", "paper gain"] == 6.5
    assert pc.loc["table", "gain"] == 0.0 and pc.loc["table", "paper gain"] == 5.6
    comp = A.paper_class_comparison(r).set_index("paper class")
    assert pd.isna(comp.loc["sheep", "our class"]) and pd.isna(comp.loc["pottedplant", "our class"])
    assert comp.loc["cow", "our gain"] == 5.0
    ex = A.pick_examples(r, n_gain=2, n_loss=1)
    # per-image gain = 2 i: largest gains are images 4 and 3, the smallest remaining one is image 0
    assert list(ex["index"]) == [4, 3, 0] and list(ex["kind"]) == ["gain", "gain", "loss"]
    assert list(ex["image_id"]) == [14, 13, 10] and (ex["seed"] == 0).all()
    assert isinstance(ex, pd.DataFrame)


_DDP_SCRIPT = '''
import json, sys, torch
from detpretrain import distributed, engine
from detpretrain.models.build import build_model
from detpretrain.experiments.common import pretrain_configs
from detpretrain.profiles import get_profile
from detpretrain.experiments.segmentation import segmentation_config, segmentation_target
prof = get_profile("smoke")
cfg = segmentation_config(prof, "scratch", 0, segmentation_target(prof), pretrain_configs(prof))
dev = distributed.init("cpu")
_, test = engine._datasets(cfg)
torch.manual_seed(0)
model = build_model(cfg, len(test.classes))
m = engine.evaluate_segmenter(model, test, dev, bands=(1, 3), batch_size=1, progress=False)
if distributed.is_main_process():
    json.dump(m, open(sys.argv[1], "w"))
'''


@pytest.mark.slow
def test_sharded_evaluation_under_torchrun_equals_one_process(corpus_dir, tmp_path):
    """2 gloo processes each score half of the test images (one at a time, so both runs compute every image alike);
    the gathered metrics equal a single process's."""
    import subprocess
    import sys

    script, out = tmp_path / "ddp_eval.py", tmp_path / "ddp.json"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "DETPRETRAIN_DATA": str(corpus_dir), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(out)], check=False, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    gathered = json.loads(out.read_text())
    prof = get_profile("smoke")
    cfg = segmentation_config(prof, "scratch", 0, segmentation_target(prof), pretrain_configs(prof))
    _, test = engine._datasets(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, len(test.classes))
    single = engine.evaluate_segmenter(model, test, torch.device("cpu"), bands=(1, 3), batch_size=1, progress=False)
    single = json.loads(json.dumps(single))
    assert gathered["num_images"] == 32 and [p["index"] for p in gathered["per_image"]] == list(range(32))
    assert gathered["trimap"] == single["trimap"] and gathered["anti_trimap"] == single["anti_trimap"]
    assert gathered["mIoU"] == pytest.approx(single["mIoU"], abs=1e-9)
    assert gathered["per_image"] == single["per_image"]
