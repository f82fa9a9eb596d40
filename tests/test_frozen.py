"""Frozen-backbone study (Vasconcelos et al. 2022): long-tailed splits, detector capacity, freezing, AP by class
frequency, side-by-side resources, and figure files."""

from __future__ import annotations

import math

import pytest
import torch

from detpretrain.analysis import frozen as Z
from detpretrain.data import long_tail as LT
from detpretrain.errors import ConfigError


def test_long_tail_indices_respect_the_budget_and_keep_the_rest():
    per_image = [{1}, {1, 2}, {2}, {1}, {3}, {1, 3}, set(), {2, 3}]
    kept = LT.long_tail_indices(per_image, rare=[1], max_images=2, seed=0)
    counts = LT.long_tail_counts(per_image, kept, 3)
    assert counts[1] == 2
    # every image without the rare class is kept
    assert {i for i, s in enumerate(per_image) if 1 not in s} <= set(kept)
    assert kept == sorted(kept) and kept == LT.long_tail_indices(per_image, [1], 2, seed=0)
    assert LT.long_tail_indices(per_image, [1, 2], max_images=0) == [4, 6]
    with pytest.raises(ConfigError, match="max_images"):
        LT.long_tail_indices(per_image, [1], -1)


def test_rare_class_names_are_checked_and_defaults_alternate_down_the_ranking():
    classes = ["__background__", "a", "b", "c", "d"]
    per_image = [{1}, {1}, {1}, {1}, {2}, {2}, {2}, {3}, {3}, {4}]
    assert LT.rare_labels(classes, ["c", "a"]) == [3, 1]
    with pytest.raises(ConfigError, match="unknown rare class.*'zebra'"):
        LT.rare_labels(classes, ["zebra"])
    assert LT.alternate_rare_classes(classes, per_image) == ["b", "d"]  # ranking a(4) b(3) c(2) d(1)
    with pytest.raises(ConfigError, match="fraction"):
        LT.alternate_rare_classes(classes, per_image, 0)


def test_long_tail_subset_of_the_synthetic_target(corpus_dir):
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.experiments.common import target_spec
    from detpretrain.profiles import get_profile

    target = target_spec(get_profile("smoke"))
    full = build_detection_dataset(target, target.train_split, train=False)
    subset = LT.LongTailSubset(full, {"rare": ["dog", "cow"], "max_images": 2, "seed": 1})
    assert subset.images_per_class["dog"] <= 2 and subset.images_per_class["cow"] <= 2
    assert subset.classes == full.classes and len(subset) < len(full)
    # independent count over the kept images' targets
    seen = sum(1 for i in subset.indices if full.classes.index("dog") in full.load_target(i)["labels"].tolist())
    assert seen == subset.images_per_class["dog"]
    with pytest.raises(ConfigError, match="needs 'rare'"):
        LT.LongTailSubset(full, {"max_images": 2})


def test_ap_by_frequency_on_known_numbers():
    metrics = {"iou_thresholds": [0.5, 0.7], "config_hash": "abc",
               "per_class_AP": {"a": [80.0, 40.0], "b": [60.0, 20.0], "c": [10.0, None], "d": [30.0, float("nan")]}}
    out = Z.ap_by_frequency(metrics, ["c", "d"])
    assert out["all@0.5"] == pytest.approx(45.0) and out["rare@0.5"] == pytest.approx(20.0)
    assert out["frequent@0.5"] == pytest.approx(70.0)
    assert math.isnan(out["rare@0.7"]) and out["all@0.7"] == pytest.approx(30.0)
    with pytest.raises(ConfigError, match="rare classes"):
        Z.ap_by_frequency(metrics, ["zebra"])
    with pytest.raises(ConfigError, match="no AP at IoU 0.9"):
        Z.ap_by_frequency(metrics, ["c"], thresholds=(0.9,))


def test_detector_capacity_ladder_builds_and_freezing_freezes_everything_in_the_body():
    from detpretrain.models.detection import build_faster_rcnn

    kw = dict(arch="resnet_tiny", fpn_channels=16, representation_size=32, min_size=64, max_size=64,
              anchor_sizes=(8, 16, 32, 48, 64))
    small = build_faster_rcnn(4, **kw)
    big = build_faster_rcnn(4, fpn_extra_convs=2, box_head="4conv1fc", rpn_conv_depth=2, **kw)
    assert sum(p.numel() for p in big.parameters()) > sum(p.numel() for p in small.parameters())
    frozen = build_faster_rcnn(4, trainable_stages=0, fpn_extra_convs=1, **kw)
    assert not any(p.requires_grad for p in frozen.backbone.body.parameters())
    assert all(p.requires_grad for p in frozen.backbone.fpn.parameters())
    bn = build_faster_rcnn(4, trainable_stages=0, norm="bn", **kw)
    from torchvision.ops import FrozenBatchNorm2d

    assert isinstance(bn.backbone.body.bn1, FrozenBatchNorm2d)  # statistics frozen too
    before = {k: v.clone() for k, v in frozen.backbone.body.state_dict().items()}
    frozen.train()
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    opt = torch.optim.SGD([p for p in frozen.parameters() if p.requires_grad], lr=0.1)
    sum(frozen(images, targets).values()).backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in frozen.backbone.body.state_dict().items())
    frozen.eval()
    assert frozen(images)[0]["boxes"].shape[1] == 4
    with pytest.raises(ConfigError, match="box_head"):
        build_faster_rcnn(4, box_head="cascade", **kw)


def test_resource_ratios_pair_frozen_with_finetuned():
    rows = [{"label": "H / frozen", "seconds_per_iteration": 1.0, "saved_activations_mb": 2.0,
             "grad_and_momentum_mb": 1.0, "params_trained": 10, "cuda_peak_mb": None},
            {"label": "H / fine-tuned", "seconds_per_iteration": 2.0, "saved_activations_mb": 4.0,
             "grad_and_momentum_mb": 4.0, "params_trained": 40, "cuda_peak_mb": None}]
    (r,) = Z.resource_ratios(rows)
    assert r == {"head": "H", "time per iteration": 0.5, "saved activations": 0.5, "gradients + momentum": 0.25,
                 "parameters trained": 0.25}


def test_frozen_config_rules():
    from detpretrain.experiments.frozen import frozen_config
    from detpretrain.experiments.common import pretrain_configs, target_spec
    from detpretrain.profiles import get_profile

    prof = get_profile("mini")
    pre, target = pretrain_configs(prof), target_spec(prof)
    f = frozen_config(prof, "imagenet-cls", 0, target, pre, head="FPN+2conv", mode="frozen")
    t = frozen_config(prof, "imagenet-cls", 0, target, pre, head="FPN+2conv", mode="fine-tuned")
    assert f.model.trainable_stages == 0 and t.model.trainable_stages == prof.model.trainable_stages
    assert f.model.fpn_extra_convs == 2 and f.init == t.init
    with pytest.raises(ConfigError, match="unknown head"):
        frozen_config(prof, "imagenet-cls", 0, target, pre, head="NAS-FPN", mode="frozen")
    with pytest.raises(ConfigError, match="frozen random backbone"):
        frozen_config(prof, "scratch", 0, target, pre, head="FPN", mode="frozen")


@pytest.mark.slow
def test_frozen_study_at_smoke_measures_resources_side_by_side(corpus_dir, smoke_store):
    from detpretrain.experiments.frozen import run_frozen_study

    result = run_frozen_study("smoke", heads=("FPN",), store=smoke_store, device="cpu",
                              resource_iterations=2, progress=False, log=lambda line: None)
    assert {(r["head"], r["mode"]) for r in result["rows"]} == {("FPN", "frozen"), ("FPN", "fine-tuned")}
    res = {r["label"]: r for r in result["resources"]}
    frozen, tuned = res["FPN / frozen"], res["FPN / fine-tuned"]
    assert frozen["params_total"] == tuned["params_total"]
    assert frozen["params_trained"] < tuned["params_trained"] == tuned["params_total"]
    assert frozen["saved_activations_mb"] < tuned["saved_activations_mb"]
    assert all(max(result["images_per_class"][c], 0) <= result["max_images"] for c in result["rare"])


def test_save_figure_writes_pdf_and_png_atomically(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from detpretrain.figures import save_figure

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    paths = save_figure(fig, "fig_1", chapter="ch", profile="smoke", provenance="run abc", root=tmp_path)
    assert [p.name for p in paths] == ["fig_1.pdf", "fig_1.png"]
    assert paths[0].read_bytes()[:4] == b"%PDF" and b"run abc" in paths[0].read_bytes()
    from PIL import Image

    with Image.open(paths[1]) as im:
        assert im.size[0] >= 2 * 300 * 0.8  # 2 inches at 300 dpi, less the tight bounding box
    assert sorted(p.name for p in (tmp_path / "smoke" / "ch").iterdir()) == ["fig_1.pdf", "fig_1.png"]
    with pytest.raises(ValueError, match="letters"):
        save_figure(fig, "../x", chapter="ch", profile="smoke", root=tmp_path)
    plt.close(fig)
