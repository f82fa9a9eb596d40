"""Detection ablations (Tables 2, 3, 7): configs, the missed-object rule, tables and verdicts on known inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from detpretrain.analysis import ablations as B
from detpretrain.analysis import claims as C
from detpretrain.config import config_hash
from detpretrain.errors import ConfigError, DataError
from detpretrain.evaluation.detection import evaluate_detections, match_detections, voc_ap
from detpretrain.experiments.classification import cls_finetune_config, run_classification_transfer
from detpretrain.experiments.common import loc_pretrain_configs, pretrain_configs, synthetic_spec
from detpretrain.experiments.detection import finetune_config
from detpretrain.profiles import get_profile


# ---------------------------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------------------------
def test_loc_pretrainings_continue_from_imagenet_cls_on_one_corpus():
    prof = get_profile("mini")
    cfgs = loc_pretrain_configs(prof, ("vehicle", "animal"))
    assert set(cfgs) == {"imagenet-loc-cls", "imagenet-loc", "imagenet-loc-no-vehicle", "imagenet-loc-no-animal"}
    cls_hash = config_hash(pretrain_configs(prof)["imagenet-cls"])
    assert {c.init for c in cfgs.values()} == {f"run:{cls_hash}"}
    assert cfgs["imagenet-loc-cls"].task == "classification" and cfgs["imagenet-loc"].task == "detection"
    # identical samples: the classifier and the detector read the same corpus
    assert cfgs["imagenet-loc-cls"].data == cfgs["imagenet-loc"].data
    assert cfgs["imagenet-loc-no-vehicle"].data.corpus["exclude_supercategory"] == "vehicle"
    assert cfgs["imagenet-loc"].data.corpus["exclude_supercategory"] is None
    assert len({config_hash(c) for c in cfgs.values()}) == 4


def test_loc_pretrainings_reject_paper_profile_and_unknown_supercategory():
    with pytest.raises(ConfigError, match="synthetic imagenet_loc"):
        loc_pretrain_configs(get_profile("paper"))
    with pytest.raises(ConfigError, match="unknown super-category 'fish'"):
        loc_pretrain_configs(get_profile("smoke"), ("fish",))


def test_finetune_configs_take_any_pretraining_and_name_unknown_ones():
    prof = get_profile("smoke")
    pre = {**pretrain_configs(prof), **loc_pretrain_configs(prof, ("animal",))}
    target = synthetic_spec("smoke", "voc")
    ft = finetune_config(prof, "imagenet-loc-no-animal", 1, target, pre)
    assert ft.init == f"run:{config_hash(pre['imagenet-loc-no-animal'])}" and ft.seed == 1
    cls = cls_finetune_config(prof, "imagenet-loc-cls", 0, synthetic_spec("smoke", "caltech"), pre)
    assert cls.task == "classification" and cls.init == f"run:{config_hash(pre['imagenet-loc-cls'])}"
    assert cls.optim == prof.cls_finetune
    with pytest.raises(ConfigError, match="unknown pre-training 'imagenet-loc-no-plant'"):
        finetune_config(prof, "imagenet-loc-no-plant", 0, target, pre)


def test_classification_transfer_trains_through_the_store_and_reuses(tmp_path, monkeypatch):
    from detpretrain.runs import RunStore

    monkeypatch.setenv("DETPRETRAIN_DATA", str(tmp_path / "data"))
    store = RunStore(tmp_path / "runs")
    out = run_classification_transfer("smoke", role="caltech", pretrains=("scratch",), store=store, progress=False,
                                      log=lambda s: None)
    (run,) = out["runs"]
    assert run["metrics"]["task"] == "classification" and 0.0 <= run["metrics"]["top1"] <= 100.0
    assert run["metrics"]["eval_split"] == "test"
    mtime = (store.root / run["run"].split("/")[-1] / "metrics.json").stat().st_mtime
    again = run_classification_transfer("smoke", role="caltech", pretrains=("scratch",), store=store,
                                        progress=False, log=lambda s: None)
    assert again["runs"][0]["hash"] == run["hash"]
    assert (store.root / run["run"].split("/")[-1] / "metrics.json").stat().st_mtime == mtime


# ---------------------------------------------------------------------------------------------------------------
# IMAGENET-LOC (Cls) reader
# ---------------------------------------------------------------------------------------------------------------
def _coco(tmp_path, anns, n_images=2):
    (tmp_path / "img").mkdir(exist_ok=True)
    from PIL import Image

    for i in range(1, n_images + 1):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / "img" / f"{i}.jpg")
    data = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 8, "height": 8} for i in range(1, n_images + 1)],
            "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "tv"}],
            "annotations": [{"id": k + 1, "image_id": i, "category_id": c, "bbox": [0, 0, 4, 4]}
                            for k, (i, c) in enumerate(anns)]}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path


def test_image_level_labels_reader_gives_the_category_of_each_image(tmp_path):
    from detpretrain.data.classification import ImageLevelLabels

    ann = _coco(tmp_path, [(1, 2), (1, 2), (2, 3)])
    ds = ImageLevelLabels(tmp_path / "img", ann)
    assert ds.classes == ["car", "dog", "tv"]  # the json's label space, even for an absent class
    assert [label for _, label in ds.samples] == [1, 2]
    image, label = ds[1]
    assert tuple(image.shape) == (3, 8, 8) and label == 2


def test_image_level_labels_reader_rejects_ambiguous_and_missing_images(tmp_path):
    from detpretrain.data.classification import ImageLevelLabels

    ann = _coco(tmp_path, [(1, 1), (1, 2), (2, 3)])
    with pytest.raises(DataError, match="1.jpg has several categories"):
        ImageLevelLabels(tmp_path / "img", ann)
    ann = _coco(tmp_path, [(1, 1), (2, 3)])
    (tmp_path / "img" / "2.jpg").unlink()
    with pytest.raises(DataError, match="image listed in instances.json is missing"):
        ImageLevelLabels(tmp_path / "img", ann)


# ---------------------------------------------------------------------------------------------------------------
# matching and Hoiem et al.'s missed-object rule
# ---------------------------------------------------------------------------------------------------------------
def _gt(boxes, images, cats, difficult=None, n_images=None, extras=None):
    n_images = n_images or max(images)
    anns = []
    for k, (b, i, c) in enumerate(zip(boxes, images, cats)):
        a = {"id": k + 1, "image_id": i, "category_id": c, "bbox": b, "ignore": int(bool(difficult and difficult[k]))}
        a.update((extras or [{}] * len(boxes))[k])
        anns.append(a)
    return {"images": [{"id": i, "width": 100, "height": 100} for i in range(1, n_images + 1)],
            "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}


def _det(box, image, cat, score):
    return {"image_id": image, "category_id": cat, "bbox": box, "score": score}


def test_hoiem_normalised_precision_on_a_hand_computed_case():
    # one class, 10 images -> N = 1.5; two boxes; ranks: TP(g0), FP, FP, TP(g1)
    gt = _gt([[0, 0, 10, 10], [50, 50, 10, 10]], [1, 2], [1, 1], n_images=10)
    dets = [_det([0, 0, 10, 10], 1, 1, 0.9), _det([80, 80, 5, 5], 3, 1, 0.8), _det([80, 80, 5, 5], 4, 1, 0.7),
            _det([50, 50, 10, 10], 2, 1, 0.6)]
    m = match_detections(gt, dets, 0.5)
    assert m["tp"].tolist() == [True, False, False, True] and m["gt_index"].tolist() == [0, -1, -1, 1]
    # tp' = tp * 1.5 / 2: .75 .75 .75 1.5; pn = 1, .4286, .2727, .4286; interpolated: 1, .4286, .4286, .4286
    assert B.hoiem_missed(m).tolist() == [False, False]
    assert B.hoiem_missed(m, missed_threshold=0.43).tolist() == [False, True]
    assert B.hoiem_missed(m, missed_threshold=0.42).tolist() == [False, False]


def test_difficult_boxes_are_never_missed_and_undetected_boxes_are():
    gt = _gt([[0, 0, 10, 10], [50, 50, 10, 10], [20, 20, 10, 10]], [1, 1, 1], [1, 1, 2], difficult=[0, 1, 0])
    m = match_detections(gt, [_det([0, 0, 10, 10], 1, 1, 0.9)], 0.5)
    assert B.hoiem_missed(m).tolist() == [False, False, True]


def _reference_missed(gt, dets, iou, nnorm_frac, thresh):
    """Independent loop implementation of the tool: devkit matching per class, then normalised precision."""
    from torchvision.ops import box_iou
    import torch

    anns = gt["annotations"]
    n_img = len(gt["images"])
    found = [False] * len(anns)
    for cat in {a["category_id"] for a in anns}:
        idx = [g for g, a in enumerate(anns) if a["category_id"] == cat]
        npos = sum(1 for g in idx if not anns[g]["ignore"])
        ds = sorted([d for d in dets if d["category_id"] == cat], key=lambda d: -d["score"])
        used, labels, which = set(), [], []
        for d in ds:
            cands = [g for g in idx if anns[g]["image_id"] == d["image_id"]]
            best, bestg = -1.0, None
            for g in cands:
                xywh = [torch.tensor([b[0], b[1], b[0] + b[2], b[1] + b[3]], dtype=torch.float64)
                        for b in (d["bbox"], anns[g]["bbox"])]
                v = float(box_iou(xywh[0][None], xywh[1][None])[0, 0])
                if v > best:
                    best, bestg = v, g
            if best > iou and anns[bestg]["ignore"]:
                labels.append(0), which.append(None)
            elif best > iou and bestg not in used:
                used.add(bestg)
                labels.append(1), which.append(bestg)
            else:
                labels.append(-1), which.append(None)
        tp = fp = 0
        pn = []
        for lab in labels:
            tp += lab == 1
            fp += lab == -1
            tpn = tp * nnorm_frac * n_img / max(npos, 1)
            pn.append(tpn / (tpn + fp) if tpn + fp > 0 else 0.0)
        for k in range(len(pn) - 2, -1, -1):
            pn[k] = max(pn[k], pn[k + 1])
        for lab, g, p in zip(labels, which, pn):
            if lab == 1 and p >= thresh:
                found[g] = True
    return [not f and not a["ignore"] for f, a in zip(found, anns)]


def test_missed_rule_agrees_with_an_independent_loop_on_random_scenes():
    rng = np.random.default_rng(0)
    boxes, images, cats, diff = [], [], [], []
    for img in range(1, 21):
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, 70, 2)
            boxes.append([float(x), float(y), float(rng.uniform(8, 30)), float(rng.uniform(8, 30))])
            images.append(img), cats.append(int(rng.integers(1, 3))), diff.append(bool(rng.random() < 0.1))
    gt = _gt(boxes, images, cats, difficult=diff, n_images=20)
    dets = []
    for b, i, c in zip(boxes, images, cats):
        if rng.random() < 0.7:
            jitter = rng.normal(0, 3, 4)
            dets.append(_det([b[0] + jitter[0], b[1] + jitter[1], max(1.0, b[2] + jitter[2]),
                              max(1.0, b[3] + jitter[3])], i, c, float(rng.random())))
    for _ in range(30):
        dets.append(_det([float(v) for v in rng.uniform(0, 80, 2)] + [10.0, 10.0], int(rng.integers(1, 21)),
                         int(rng.integers(1, 3)), float(rng.random())))
    for thresh in (0.05, 0.3):
        ours = B.hoiem_missed(match_detections(gt, dets, 0.5), 0.15, thresh).tolist()
        assert ours == _reference_missed(gt, dets, 0.5, 0.15, thresh)
    # the matching's TP/FP flags reproduce the evaluator's AP
    m = match_detections(gt, dets, 0.5)
    ap = evaluate_detections(gt, dets, iou_thresholds=[0.5], metric="voc07")
    for k, cat in enumerate(m["category_ids"]):
        sel = m["category"] == cat
        tp, fp = np.cumsum(m["tp"][sel]), np.cumsum(m["fp"][sel])
        ours = 100 * voc_ap(tp / m["npos"][k], tp / np.maximum(tp + fp, 1e-12), True)
        assert ours == pytest.approx(ap["per_class_AP"][{1: "a", 2: "b"}[int(cat)]][0])


def test_occlusion_levels_and_hoiem_groups():
    assert [B.occlusion_level(v) for v in (1.0, 0.95, 0.94, 0.75, 0.74, 0.5, 0.49, 0.0)] == [
        "none", "none", "low", "low", "moderate", "moderate", "high", "high"]
    assert B.occlusion_level(float("nan")) == "unknown"
    with pytest.raises(ValueError, match="outside"):
        B.occlusion_level(1.5)
    extras = [{"visible_fraction": 1.0, "truncated": 0}, {"visible_fraction": 0.98, "truncated": 1},
              {"visible_fraction": 0.8, "truncated": 0}, {"visible_fraction": 0.6, "truncated": 0}, {}]
    gt = _gt([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10], [60, 0, 10, 10], [80, 0, 10, 10]], [1] * 5, [1] * 5,
             extras=extras)
    f = B.missed_objects(gt, [_det([0, 0, 10, 10], 1, 1, 0.9)])
    assert f["level"].tolist() == ["none", "none", "low", "moderate", "unknown"]
    assert f["occluded_low"].tolist() == [False, True, True, True, False]  # truncated counts, as in the tool
    assert f["occluded_medium"].tolist() == [False, True, False, True, False]
    assert f["missed"].tolist() == [False, True, True, True, True]
    table = B.occlusion_table({"x": [f]}).iloc[0]
    assert table["occluded Low % missed"] == pytest.approx(100.0) and table["occluded Low objects"] == 3
    assert table["all % missed"] == pytest.approx(80.0) and table["level none % missed"] == pytest.approx(50.0)


def test_occlusion_units_pair_runs_by_replicate_and_seed():
    def frame(rep, missed, unoccluded_missed=(0, 0)):
        occ = [True] * len(missed) + [False] * len(unoccluded_missed)
        return pd.DataFrame({"difficult": False, "occluded_low": occ, "occluded_medium": occ,
                             "missed": list(missed) + list(unoccluded_missed), "replicate": rep, "seed": 0})

    frames = {"imagenet-cls": [frame(0, [1, 1, 0, 0]), frame(1, [1, 1, 1, 0]), frame(2, [1, 0, 0, 0])],
              "detection": [frame(2, [0, 0, 0, 0]), frame(0, [1, 0, 0, 0]), frame(1, [1, 1, 0, 0])]}  # any order
    units = B.occlusion_units(frames)
    assert units["low"]["diff"].tolist() == pytest.approx([25.0, 25.0, 25.0])
    assert units["unoccluded"]["diff"].tolist() == [0.0, 0.0, 0.0]
    assert units["excess"]["diff"].tolist() == pytest.approx([25.0, 25.0, 25.0])
    claims = B.ablation_claims({"runs": _loc_runs()}, ["vehicle"], frames=frames)
    v = claims["Table 3: fewer occluded objects missed (Low)"]
    assert v.estimate == pytest.approx(25.0) and v.label == "not resolved"  # zero spread: the noise is unmeasured
    # a larger gain on unoccluded objects: the advantage is not specific to occlusion
    frames = {"imagenet-cls": [frame(r, [1, 1, 0, 0], (1, 1)) for r in range(3)],
              "detection": [frame(r, [1, 0, 0, 0], (1, 0 if r else 1)) for r in range(3)]}
    units = B.occlusion_units(frames)
    assert units["excess"]["diff"].tolist() == pytest.approx([25.0, -25.0, -25.0])


# ---------------------------------------------------------------------------------------------------------------
# Tables 2 and 7 on hand-made results
# ---------------------------------------------------------------------------------------------------------------
def _run(pretrain, seed, per_class_07, map05=50.0, map07=None, replicate=0):
    classes = list(per_class_07)
    return {"pretrain": pretrain, "replicate": replicate, "seed": seed, "hash": f"{pretrain}{seed}".ljust(16, "0"),
            "run": "x",
            "metrics": {"iou_thresholds": [0.5, 0.7], "classes": ["__background__", *classes],
                        "per_class_AP": {c: [90.0, v] for c, v in per_class_07.items()},
                        "mAP": [map05, map07 if map07 is not None else float(np.mean(list(per_class_07.values())))]}}


def _loc_runs(gains=(4.0, 5.0, 3.0)):
    """IMAGENET-LOC runs of 3 pre-training replicates x 2 seeds: the vehicle classes gain ``gains[r]`` (mAP@0.7)
    without the category over IMAGENET-LOC (Cls), 1 more with it."""
    runs = []
    for rep, gain in enumerate(gains):
        for seed, noise in enumerate((0.0, 1.0)):
            runs.append(_run("imagenet-loc-cls", seed, {"car": 40 + noise, "bus": 44 + noise, "dog": 30, "tv": 10},
                             replicate=rep))
            runs.append(_run("imagenet-loc-no-vehicle", seed, {"car": 40 + gain + noise, "bus": 44 + gain + noise,
                                                               "dog": 31, "tv": 10}, replicate=rep))
            runs.append(_run("imagenet-loc", seed, {"car": 41 + gain + noise, "bus": 45 + gain + noise, "dog": 32,
                                                    "tv": 10}, replicate=rep))
    return runs


def test_removal_table_and_claims_on_known_numbers():
    result = {"profile": "mini", "data": "x", "runs": _loc_runs()}
    t = B.removal_table(result, ["vehicle"]).set_index("pre-training")
    assert t.loc["IMAGENET-LOC (Cls)", "vehicle"] == pytest.approx(42.5)
    assert t.loc["IMAGENET-LOC without Category", "vehicle"] == pytest.approx(46.5)
    assert t.loc["IMAGENET-LOC", "vehicle"] == pytest.approx(47.5)
    assert t.loc["IMAGENET-LOC", "vehicle (paper)"] == 87.20
    units = B.removal_units(result, ["vehicle"])["vehicle"]
    assert units["unseen_gain"]["diff"].tolist() == pytest.approx([4, 4, 5, 5, 3, 3])
    assert units["removal_cost"]["diff"].tolist() == pytest.approx([1.0] * 6)
    claims = B.ablation_claims(result, ["vehicle"])
    primary = claims[C.PRIMARY_CLAIMS["ablations"].name]
    assert list(claims)[0] == C.PRIMARY_CLAIMS["ablations"].name
    assert primary.estimate == pytest.approx(4.0) and primary.n == 3 and primary.unit == "pre-training run"
    assert primary.label == "holds"  # 4, 5, 3: t-interval over 3 runs 4 +- 2.48
    assert claims["Table 2, vehicle: seeing it adds more"].label == "not resolved"  # always exactly 1: zero spread


def test_identical_samples_table_and_units():
    det = {"runs": [_run("imagenet-loc-cls", s, {"car": 10.0}, map05=50 + s, map07=20 + s) for s in range(3)]
           + [_run("imagenet-loc", s, {"car": 10.0}, map05=52 + s, map07=25 + s) for s in range(3)]}
    cls = {"runs": [{"pretrain": "imagenet-loc-cls", "seed": s, "metrics": {"top1": 80.0 + s}} for s in range(3)]
           + [{"pretrain": "imagenet-loc", "seed": s, "metrics": {"top1": 82.0 + 2 * s}} for s in range(3)]}
    t = B.identical_samples_table(det, cls).set_index("pre-training")
    assert t.loc["IMAGENET-LOC", "mAP@0.7"] == pytest.approx(26.0) and t.loc["IMAGENET-LOC (Cls)", "top-1"] == 81.0
    assert t.loc["IMAGENET-LOC", "top-1 (paper)"] == 82.3
    units = B.identical_samples_units(det, cls)
    assert units["det_gain_07"]["diff"].tolist() == pytest.approx([5.0] * 3)
    assert units["cls_gain"]["diff"].tolist() == pytest.approx([-2.0, -3.0, -4.0])
    claims = B.ablation_claims(det, [], transfer=cls)
    v = claims["Table 7: classification pre-training better for classification"]
    # one pre-training replicate: the analysis over the fine-tuning seeds, about these networks
    assert v.label == "reversed" and not v.replicated and v.estimate == pytest.approx(-3.0) and v.n == 3


def test_target_supercategories_for_synthetic_and_real_names():
    got = B.target_supercategories(["__background__", "car", "dog", "tv", "aeroplane", "sheep", "person"])
    assert got == {"vehicle": ["car", "aeroplane"], "animal": ["dog", "sheep"], "appliance": ["tv"]}


def test_load_run_model_names_an_incomplete_run(tmp_path):
    from detpretrain.runs import load_run_model

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a complete run .*metrics.json, model.pt"):
        load_run_model(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Table 3 on real VOC annotations (../shared/data): what the flags can and cannot show
# ---------------------------------------------------------------------------------------------------------------
def _xml_objects(root):
    import xml.etree.ElementTree as ET

    out = []
    for name in (root / "ImageSets" / "Main" / "test.txt").read_text().split():
        for obj in ET.parse(root / "Annotations" / f"{name}.xml").findall("object"):
            out.append({"difficult": obj.findtext("difficult", "0").strip() == "1"})
    return out


def _detect_every_other(gt):
    """Detections that find exactly the even-numbered non-difficult objects (their own boxes, score 0.9)."""
    keep = [a for a in gt["annotations"] if not a["ignore"]][::2]
    return [_det(a["bbox"], a["image_id"], a["category_id"], 0.9) for a in keep], {a["id"] for a in keep}


def test_occlusion_on_real_voc2007_subset_has_no_occlusion_information(vocdevkit):
    from detpretrain.data.coco import to_coco_gt
    from detpretrain.data.voc import VOCDetection

    gt = to_coco_gt(VOCDetection(vocdevkit, "test", year=2007))
    xml = _xml_objects(vocdevkit / "VOC2007")
    scope = B.occlusion_annotations(gt)
    assert scope["objects"] == len(xml) and scope["difficult"] == sum(o["difficult"] for o in xml)
    assert scope["visible_fraction"] is None and scope["truncated"] is None and scope["occluded"] is None
    assert "cannot be measured" in scope["sentence"]
    dets, found = _detect_every_other(gt)
    f = B.missed_objects(gt, dets)
    assert len(f) == len(xml) and not f["occluded_low"].any() and not f["occluded_medium"].any()
    assert set(f["level"]) == {"unknown"}
    expected = [not a["ignore"] and a["id"] not in found for a in gt["annotations"]]
    assert f["missed"].tolist() == expected
    row = B.occlusion_table({"imagenet-cls": [f]}).iloc[0]
    assert row["occluded Low objects"] == 0 and math.isnan(row["occluded Low % missed"])
    n = len(xml) - scope["difficult"]
    assert row["all objects"] == n and row["all % missed"] == pytest.approx(100.0 * (n - len(found)) / n)


def test_occlusion_groups_from_voc_truncated_and_occluded_flags(voc_copy):
    """VOC2010+ style flags added to the real XMLs: truncated counts at Low and Medium, occluded at Low only;
    objects marked difficult are never counted (the subset has none, so some are marked here)."""
    from detpretrain.data.coco import to_coco_gt
    from detpretrain.data.voc import VOCDetection

    flags = []  # (truncated, occluded) per object, in image-list then XML order
    names = (voc_copy / "ImageSets" / "Main" / "test.txt").read_text().split()
    for name in names:
        xml = voc_copy / "Annotations" / f"{name}.xml"
        head, *objects = xml.read_text().split("<object>")
        bodies = []
        for body in objects:
            k = len(flags)
            flags.append((k % 3 == 0, k % 3 == 1))
            if k % 5 == 4:
                assert "<difficult>0</difficult>" in body
                body = body.replace("<difficult>0</difficult>", "<difficult>1</difficult>")
            bodies.append(f"<object><truncated>{int(k % 3 == 0)}</truncated><occluded>{int(k % 3 == 1)}</occluded>"
                          + body)
        xml.write_text(head + "".join(bodies))
    ds = VOCDetection(voc_copy.parent, "test", year=2007)
    t = ds.load_target(0)
    assert t["truncated"].dtype == t["occluded"].dtype == torch.bool
    gt = to_coco_gt(ds)
    assert ds.image_names == names  # to_coco_gt keeps dataset then XML order
    assert [(bool(a["truncated"]), bool(a["occluded"])) for a in gt["annotations"]] == flags
    scope = B.occlusion_annotations(gt)
    assert scope["truncated_set"] == sum(t for t, _ in flags) and scope["occluded_set"] == sum(o for _, o in flags)
    assert "binary flags" in scope["sentence"]
    f = B.missed_objects(gt, _detect_every_other(gt)[0])
    trunc = np.array([bool(a["truncated"]) for a in gt["annotations"]])
    occl = np.array([bool(a["occluded"]) for a in gt["annotations"]])
    assert f["occluded_low"].tolist() == (trunc | occl).tolist()
    assert f["occluded_medium"].tolist() == trunc.tolist()
    assert f["difficult"].tolist() == [k % 5 == 4 for k in range(len(flags))]
    assert not f.loc[f["difficult"], "missed"].any()  # difficult objects are never counted as missed
    row = B.occlusion_table({"detection": [f]}).iloc[0]
    sub = f[~f["difficult"] & f["occluded_low"]]
    assert row["occluded Low objects"] == len(sub) > 0
    assert row["occluded Low % missed"] == pytest.approx(100.0 * sub["missed"].mean())
    assert math.isnan(row["level low % missed"]) and set(f["level"]) == {"unknown"}


def test_a_recorded_visible_fraction_overrides_the_binary_occluded_flag():
    extras = [{"visible_fraction": 0.97, "occluded": 1}, {"visible_fraction": 0.8, "occluded": 0}, {"occluded": 1}]
    gt = _gt([[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10]], [1] * 3, [1] * 3, extras=extras)
    f = B.missed_objects(gt, [])
    assert f["occluded_low"].tolist() == [False, True, True] and f["occluded_medium"].tolist() == [False] * 3
