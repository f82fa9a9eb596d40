"""Detection AP over IoU thresholds (src/detpretrain/evaluation/detection.py).

Known values on hand-made cases, agreement with an independent loop-based re-implementation of the VOC devkit's
``voc_eval`` written below, agreement with pycocotools COCOeval, threshold parsing, and the CLI.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from detpretrain.cli import main as cli_main
from detpretrain.errors import DataError
from detpretrain.evaluation.detection import (
    DetectionEvaluator,
    bootstrap_map,
    evaluate_command,
    evaluate_detections,
    outputs_to_coco_results,
    parse_iou_thresholds,
    stored_to_coco_results,
    voc_ap,
)

# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------


def make_gt(boxes_per_image, categories=("cat", "dog")):
    """boxes_per_image: {image_id: [(category_id, [x, y, w, h], difficult), ...]} -> COCO gt dict."""
    anns = []
    for image_id, boxes in boxes_per_image.items():
        for cat, bbox, difficult in boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": list(bbox),
                    "ignore": int(difficult),
                }
            )
    return {
        "images": [{"id": i, "width": 100, "height": 100} for i in boxes_per_image],
        "annotations": anns,
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(categories)],
    }


def det(image_id, cat, bbox, score):
    return {"image_id": image_id, "category_id": cat, "bbox": list(bbox), "score": score}


# Two "cat" boxes on image 1, far apart.
GT_A = [0, 0, 10, 10]
GT_B = [50, 50, 10, 10]
MISS = [80, 0, 10, 10]


# --------------------------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------------------------


def test_tp_fp_tp_known_ap():
    # Scores order the detections TP, FP, TP: recall [.5, .5, 1], precision [1, .5, 2/3].
    gt = make_gt({1: [(1, GT_A, 0), (1, GT_B, 0)]})
    dets = [det(1, 1, GT_A, 0.9), det(1, 1, MISS, 0.8), det(1, 1, GT_B, 0.7)]
    # 11-point: r = 0 .. 0.5 (6 levels) -> 1, r = 0.6 .. 1 (5 levels) -> 2/3:  (6 + 10/3) / 11 = 28/33.
    voc07 = evaluate_detections(gt, dets, [0.5], "voc07")
    assert voc07["per_class_AP"]["cat"][0] == pytest.approx(100 * 28 / 33, abs=1e-9)
    # all-point: 0.5 * 1 + 0.5 * 2/3 = 5/6.
    voc = evaluate_detections(gt, dets, [0.5], "voc")
    assert voc["per_class_AP"]["cat"][0] == pytest.approx(100 * 5 / 6, abs=1e-9)
    # COCO's 101 recall points: 51 at precision 1, 50 at 2/3.
    coco = evaluate_detections(gt, dets, [0.5], "coco")
    assert coco["per_class_AP"]["cat"][0] == pytest.approx(100 * (51 + 50 * 2 / 3) / 101, abs=1e-9)
    # "dog" has no ground truth: NaN, and not part of the mAP.
    for result in (voc07, voc, coco):
        assert math.isnan(result["per_class_AP"]["dog"][0])
        assert result["mAP"][0] == pytest.approx(result["per_class_AP"]["cat"][0])
        assert result["num_gt"] == {"cat": 2, "dog": 0}
        assert result["iou_thresholds"] == [0.5]


def test_fp_first_known_ap():
    # FP, TP, TP: recall [0, .5, 1], precision [0, .5, 2/3] -> both metrics 2/3.
    gt = make_gt({1: [(1, GT_A, 0), (1, GT_B, 0)]})
    dets = [det(1, 1, MISS, 0.9), det(1, 1, GT_A, 0.8), det(1, 1, GT_B, 0.7)]
    for metric in ("voc07", "voc"):
        assert evaluate_detections(gt, dets, [0.5], metric)["mAP"][0] == pytest.approx(100 * 2 / 3, abs=1e-9)


def test_duplicate_detection_is_a_false_positive():
    gt = make_gt({1: [(1, GT_A, 0), (1, GT_B, 0)]})
    # the duplicate of A outranks B: TP, FP, TP exactly as in test_tp_fp_tp_known_ap
    dets = [det(1, 1, GT_A, 0.9), det(1, 1, [0, 0, 10, 10.5], 0.8), det(1, 1, GT_B, 0.7)]
    assert evaluate_detections(gt, dets, [0.5], "voc07")["mAP"][0] == pytest.approx(100 * 28 / 33, abs=1e-9)
    assert evaluate_detections(gt, dets, [0.5], "voc")["mAP"][0] == pytest.approx(100 * 5 / 6, abs=1e-9)


def test_devkit_rule_best_box_taken_means_false_positive():
    # Devkit rule: a detection takes the box of highest IoU even if that box is already matched (-> FP); it does
    # NOT fall back to the next best unmatched box (COCOeval does).
    gt = make_gt({1: [(1, [0, 0, 10, 10], 0), (1, [4, 0, 10, 10], 0)]})
    dets = [det(1, 1, [0, 0, 10, 10], 0.9), det(1, 1, [1, 0, 10, 10], 0.8)]
    # second det: IoU 9/11 with box 0 (taken), 7/13 with box 1 -> FP at 0.5 for VOC; TP for COCO.
    assert evaluate_detections(gt, dets, [0.5], "voc")["mAP"][0] == pytest.approx(50.0, abs=1e-9)
    assert evaluate_detections(gt, dets, [0.5], "coco")["mAP"][0] == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize(("swap", "expected"), [(False, 100 * 28 / 33), (True, 100.0)])
def test_equal_iou_goes_to_the_first_box_in_annotation_order(swap, expected):
    # The first detection straddles two boxes with IoU 1/3 each; like the devkit's np.argmax it takes the box
    # listed first. Left first: left box taken, the exact copy of the left box is a duplicate -> TP, FP, TP.
    # Right first: TP, TP, then the exact copy of the right box is the duplicate -> AP 100.
    left, right = (1, [0, 0, 10, 10], 0), (1, [10, 0, 10, 10], 0)
    gt = make_gt({1: [right, left] if swap else [left, right]})
    dets = [det(1, 1, [5, 0, 10, 10], 0.9), det(1, 1, [0, 0, 10, 10], 0.8), det(1, 1, [10, 0, 10, 10], 0.7)]
    assert evaluate_detections(gt, dets, [0.3], "voc07")["mAP"][0] == pytest.approx(expected, abs=1e-9)


def test_difficult_boxes_are_neither_tp_nor_fp_and_not_counted():
    gt = make_gt({1: [(1, GT_A, 0), (1, GT_B, 1)], 2: [(2, GT_A, 1)]})
    dets = [det(1, 1, MISS, 0.95), det(1, 1, GT_B, 0.9), det(1, 1, GT_A, 0.8), det(2, 2, GT_A, 0.5)]
    # cat: FP, ignored, TP with npos = 1: recall [0, 0, 1], precision [0, 0, 1/2] -> 50 for both metrics.
    for metric in ("voc07", "voc"):
        result = evaluate_detections(gt, dets, [0.5], metric)
        assert result["per_class_AP"]["cat"][0] == pytest.approx(50.0, abs=1e-9)
        # dog has only a difficult box: no AP, excluded from the mAP.
        assert math.isnan(result["per_class_AP"]["dog"][0])
        assert result["mAP"][0] == pytest.approx(50.0, abs=1e-9)
        assert result["num_gt"] == {"cat": 1, "dog": 0}
    # the same boxes without the difficult flag: FP, TP, TP with npos = 2 -> 2/3.
    plain = make_gt({1: [(1, GT_A, 0), (1, GT_B, 0)], 2: [(2, GT_A, 0)]})
    result = evaluate_detections(plain, dets, [0.5], "voc")
    assert result["per_class_AP"]["cat"][0] == pytest.approx(100 * 2 / 3, abs=1e-9)
    assert result["per_class_AP"]["dog"][0] == pytest.approx(100.0)


def test_iscrowd_also_marks_difficult():
    gt = make_gt({1: [(1, GT_A, 0), (1, GT_B, 0)]})
    gt["annotations"][1]["ignore"] = 0
    gt["annotations"][1]["iscrowd"] = 1
    result = evaluate_detections(gt, [det(1, 1, GT_A, 0.9), det(1, 1, GT_B, 0.8)], [0.5], "voc07")
    assert result["num_gt"]["cat"] == 1
    assert result["mAP"][0] == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("height", "voc_ap_percent", "coco_ap_percent"),
    [
        (5.01, 100.0, 100.0),  # IoU 0.501 > 0.5
        (4.99, 0.0, 0.0),  # IoU 0.499
        # IoU exactly 0.5 (continuous IoU, no +1: 50 / 100): the devkit's strict "ovmax > t" rejects it,
        # COCOeval's ">=" accepts it. (With the devkit's +1 convention the IoU would be 66/121 = 0.545.)
        (5.0, 0.0, 100.0),
    ],
)
def test_iou_just_above_and_below_threshold(height, voc_ap_percent, coco_ap_percent):
    gt = make_gt({1: [(1, [0, 0, 10, 10], 0)]}, categories=("cat",))
    dets = [det(1, 1, [0, 0, 10, height], 0.9)]
    assert evaluate_detections(gt, dets, [0.5], "voc07")["mAP"][0] == pytest.approx(voc_ap_percent)
    assert evaluate_detections(gt, dets, [0.5], "voc")["mAP"][0] == pytest.approx(voc_ap_percent)
    assert evaluate_detections(gt, dets, [0.5], "coco")["mAP"][0] == pytest.approx(coco_ap_percent)


def test_no_detections_gives_zero_ap_and_no_gt_gives_nan():
    gt = make_gt({1: [(1, GT_A, 0)]})
    for metric in ("voc07", "voc", "coco"):
        result = evaluate_detections(gt, [], [0.3, 0.7], metric)
        assert result["per_class_AP"]["cat"] == [0.0, 0.0]
        assert all(math.isnan(v) for v in result["per_class_AP"]["dog"])
        assert result["mAP"] == [0.0, 0.0]


def test_voc_ap_function_known_values():
    rec, prec = [0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(28 / 33, abs=1e-12)
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(5 / 6, abs=1e-12)
    assert voc_ap([], [], True) == 0.0
    assert voc_ap([], [], False) == 0.0
    with pytest.raises(ValueError, match="same length"):
        voc_ap([0.1, 0.2], [1.0], True)


# --------------------------------------------------------------------------------------------------------------
# An independent, deliberately naive re-implementation of the VOC devkit's voc_eval (loops, python floats)
# --------------------------------------------------------------------------------------------------------------


def naive_iou(a, b):
    """Continuous IoU of two [x, y, w, h] boxes (no +1, like detpretrain)."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def naive_voc_ap(rec, prec, use_07_metric):
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):  # the devkit's recall levels
            candidates = [p for r, p in zip(rec, prec) if r >= t]
            ap += (max(candidates) if candidates else 0.0) / 11.0
        return ap
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap = 0.0
    for i in range(len(mrec) - 1):
        if mrec[i + 1] != mrec[i]:
            ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1]
    return ap


def naive_voc_eval(gt, dets, category_id, threshold, use_07_metric):
    """AP (fraction) of one class, following the devkit's voc_eval step by step; None if no positives."""
    records = {}
    npos = 0
    for ann in gt["annotations"]:
        if ann["category_id"] != category_id:
            continue
        difficult = bool(ann.get("ignore", 0) or ann.get("iscrowd", 0))
        records.setdefault(ann["image_id"], []).append({"bbox": ann["bbox"], "difficult": difficult, "det": False})
        npos += 0 if difficult else 1
    if npos == 0:
        return None
    mine = sorted((d for d in dets if d["category_id"] == category_id), key=lambda d: -d["score"])  # stable
    tp, fp = [], []
    for d in mine:
        boxes = records.get(d["image_id"], [])
        ovmax, jmax = -math.inf, -1
        for j, box in enumerate(boxes):
            overlap = naive_iou(d["bbox"], box["bbox"])
            if overlap > ovmax:
                ovmax, jmax = overlap, j
        if ovmax > threshold:
            if not boxes[jmax]["difficult"]:
                if not boxes[jmax]["det"]:
                    tp.append(1.0)
                    fp.append(0.0)
                    boxes[jmax]["det"] = True
                else:
                    tp.append(0.0)
                    fp.append(1.0)
            else:
                tp.append(0.0)
                fp.append(0.0)
        else:
            tp.append(0.0)
            fp.append(1.0)
    rec, prec, ctp, cfp = [], [], 0.0, 0.0
    for t, f in zip(tp, fp):
        ctp += t
        cfp += f
        rec.append(ctp / npos)
        prec.append(ctp / max(ctp + cfp, np.finfo(np.float64).eps))
    return naive_voc_ap(rec, prec, use_07_metric)


def random_case(seed, n_images=25, n_classes=4, integer_boxes=False, difficult_rate=0.2):
    """Random gt + detections: jittered copies of gt boxes (incl. exact duplicates), wrong classes, clutter."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": k + 10, "name": f"c{k}"} for k in range(n_classes)]}
    dets = []
    for image_id in range(1, n_images + 1):
        gt["images"].append({"id": image_id * 7})
        for _ in range(rng.integers(0, 6)):
            x, y = rng.uniform(0, 80, size=2)
            w, h = rng.uniform(5, 40, size=2)
            if integer_boxes:
                x, y, w, h = np.round([x, y, w, h])
            cat = int(rng.integers(0, n_classes)) + 10
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": image_id * 7,
                    "category_id": cat,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "ignore": int(rng.random() < difficult_rate),
                }
            )
            for _ in range(rng.integers(0, 4)):
                s = rng.uniform(0.0, 0.5)
                box = [
                    x + rng.normal(0, s) * w,
                    y + rng.normal(0, s) * h,
                    w * np.exp(rng.normal(0, s)),
                    h * np.exp(rng.normal(0, s)),
                ]
                if integer_boxes:
                    box = np.round(box)
                c = cat if rng.random() > 0.15 else int(rng.integers(0, n_classes)) + 10
                dets.append(det(image_id * 7, c, [float(v) for v in box], float(np.round(rng.random(), 2))))
            if rng.random() < 0.2:  # exact duplicate of a gt box
                dets.append(
                    det(image_id * 7, cat, [float(x), float(y), float(w), float(h)], float(np.round(rng.random(), 2)))
                )
        for _ in range(rng.integers(0, 3)):  # clutter
            box = [float(v) for v in rng.uniform(0, 60, size=2)] + [float(v) for v in rng.uniform(3, 40, size=2)]
            dets.append(det(image_id * 7, int(rng.integers(0, n_classes)) + 10, box, float(np.round(rng.random(), 2))))
    return gt, dets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("metric", ["voc07", "voc"])
def test_agrees_with_naive_devkit_reference(seed, metric):
    gt, dets = random_case(seed, integer_boxes=seed % 2 == 0)
    thresholds = parse_iou_thresholds("0.1:0.9:0.1")
    result = evaluate_detections(gt, dets, thresholds, metric)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    checked = 0
    for cat_id, name in names.items():
        for t, thr in enumerate(thresholds):
            expected = naive_voc_eval(gt, dets, cat_id, thr, use_07_metric=metric == "voc07")
            got = result["per_class_AP"][name][t]
            if expected is None:
                assert math.isnan(got)
            else:
                assert got / 100 == pytest.approx(expected, abs=1e-6), (name, thr)
                checked += 1
    assert checked >= 2 * len(thresholds)


@pytest.mark.parametrize("seed", range(4))
def test_map_is_non_increasing_with_iou(seed):
    gt, dets = random_case(100 + seed, n_images=40)
    thresholds = [round(0.05 * k, 2) for k in range(1, 20)]
    for metric in ("voc07", "voc"):
        result = evaluate_detections(gt, dets, thresholds, metric)
        m_ap = result["mAP"]
        assert all(a >= b - 1e-9 for a, b in zip(m_ap, m_ap[1:])), (metric, m_ap)
        assert m_ap[0] > m_ap[-1]
        for values in result["per_class_AP"].values():
            if not math.isnan(values[0]):
                assert all(a >= b - 1e-9 for a, b in zip(values, values[1:]))


def test_inputs_are_not_modified():
    gt, dets = random_case(3)
    gt_copy, dets_copy = json.loads(json.dumps(gt)), json.loads(json.dumps(dets))
    for metric in ("voc07", "coco"):
        evaluate_detections(gt, dets, [0.5], metric)
    assert gt == gt_copy and dets == dets_copy


def test_real_voc2007_test_ground_truth_perfect_detections(voc_extras):
    """On the genuine VOC2007 test annotations, the boxes themselves as detections give AP 100 at IoU <= 0.9."""
    gt = json.loads((voc_extras / "VOC2007_annotations_coco_format" / "pascal_test2007.json").read_text())
    dets = [det(a["image_id"], a["category_id"], a["bbox"], 1.0) for a in gt["annotations"]]
    result = evaluate_detections(gt, dets, [0.5, 0.9], "voc07")
    assert len(result["per_class_AP"]) == 20 and "aeroplane" in result["per_class_AP"]
    assert sum(result["num_gt"].values()) == sum(1 for a in gt["annotations"] if not a.get("ignore"))
    assert result["mAP"] == [pytest.approx(100.0), pytest.approx(100.0)]


# --------------------------------------------------------------------------------------------------------------
# Agreement with pycocotools COCOeval
# --------------------------------------------------------------------------------------------------------------


def direct_cocoeval_ap(gt, dets, thresholds):
    """Per-class AP (percent) [K, T] straight from pycocotools, written independently of the module."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = json.loads(json.dumps(gt))
    for ann in gt["annotations"]:
        ann["area"] = ann["bbox"][2] * ann["bbox"][3]
        ann["iscrowd"] = int(ann.get("ignore", 0) or ann.get("iscrowd", 0))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(json.loads(json.dumps(dets)))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.iouThrs = np.round(np.asarray(thresholds, dtype=float), 2)
        ev.params.areaRng = [[0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [10_000]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][:, :, :, 0, -1]  # [T, R, K]
    out = np.full((precision.shape[2], precision.shape[0]), np.nan)
    for k in range(precision.shape[2]):
        for t in range(precision.shape[0]):
            p = precision[t, :, k]
            if (p > -1).any():
                out[k, t] = 100 * p[p > -1].mean()
    return out


@pytest.mark.parametrize("seed", range(3))
def test_coco_metric_equals_direct_cocoeval(seed):
    gt, dets = random_case(200 + seed)
    thresholds = parse_iou_thresholds("0.1:0.9:0.1")
    result = evaluate_detections(gt, dets, thresholds, "coco")
    expected = direct_cocoeval_ap(gt, dets, thresholds)
    got = np.array(list(result["per_class_AP"].values()))
    np.testing.assert_allclose(got, expected, atol=1e-9, equal_nan=True)
    assert result["mAP"] == pytest.approx(list(np.nanmean(expected, axis=0)), abs=1e-9)


def separated_case(seed, n_images=40):
    """No difficult boxes, gt boxes in disjoint grid cells (so a detection overlaps one gt box at most), distinct
    scores: VOC's and COCO's matching rules then give the same TP/FP sequence."""
    rng = np.random.default_rng(seed)
    gt = {"images": [], "annotations": [], "categories": [{"id": k + 1, "name": f"c{k}"} for k in range(3)]}
    dets = []
    for image_id in range(1, n_images + 1):
        gt["images"].append({"id": image_id})
        for cell in rng.choice(9, size=rng.integers(1, 5), replace=False):
            x0, y0 = 100.0 * (cell % 3), 100.0 * (cell // 3)
            w, h = rng.uniform(20, 40, size=2)
            x, y = x0 + 30 + rng.uniform(-5, 5), y0 + 30 + rng.uniform(-5, 5)
            cat = int(rng.integers(1, 4))
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": cat, "bbox": [x, y, w, h]}
            )
            for _ in range(rng.integers(0, 4)):  # jittered copies stay inside the 100 x 100 cell
                s = rng.uniform(0, 0.3)
                box = [
                    x + rng.normal(0, s) * 10,
                    y + rng.normal(0, s) * 10,
                    w * np.exp(rng.normal(0, s)),
                    h * np.exp(rng.normal(0, s)),
                ]
                dets.append(det(image_id, cat, [float(v) for v in box], float(rng.random())))
        dets.append(det(image_id, int(rng.integers(1, 4)), [5.0, 5.0, 10.0, 10.0], float(rng.random())))  # clutter
    return gt, dets


@pytest.mark.parametrize("seed", range(3))
def test_all_point_ap_matches_cocoeval_within_101_point_interpolation_error(seed):
    # COCOeval averages the interpolated precision at the 101 recall levels 0, 0.01, ..., 1; the all-point AP is
    # the exact area under the same non-increasing envelope p(r). For non-increasing p with values in [0, 1] the
    # 101-point mean and the integral differ by at most 1/101 (left/right Riemann sums bracket the integral), so
    # per class |AP_voc - AP_coco| <= 100/101 percentage points.
    gt, dets = separated_case(seed)
    ours = evaluate_detections(gt, dets, [0.5], "voc")
    coco = direct_cocoeval_ap(gt, dets, [0.5])
    for k, name in enumerate(ours["per_class_AP"]):
        assert abs(ours["per_class_AP"][name][0] - coco[k, 0]) <= 100 / 101 + 1e-9, name
    assert ours["mAP"][0] > 20  # a meaningful curve, not all zeros


# --------------------------------------------------------------------------------------------------------------
# Evaluator object and torchvision outputs
# --------------------------------------------------------------------------------------------------------------


def test_detection_evaluator_matches_evaluate_detections():
    torch = pytest.importorskip("torch")
    gt, dets = random_case(7, n_images=10)
    image_ids = [im["id"] for im in gt["images"]]
    outputs = []
    for image_id in image_ids:
        mine = [d for d in dets if d["image_id"] == image_id]
        boxes = torch.tensor(
            [[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)], dtype=torch.float32
        ).reshape(-1, 4)
        outputs.append(
            {
                "boxes": boxes,
                "scores": torch.tensor([d["score"] for d in mine], dtype=torch.float32),
                "labels": torch.tensor([d["category_id"] for d in mine], dtype=torch.int64),
            }
        )
    results = outputs_to_coco_results(image_ids, outputs)
    assert len(results) == len(dets)
    assert results[0]["bbox"] == pytest.approx(next(d for d in dets if d["image_id"] == image_ids[0])["bbox"], abs=1e-4)

    evaluator = DetectionEvaluator(gt, [0.5, 0.7], "voc07")
    evaluator.process(image_ids[:6], outputs[:6])
    evaluator.process(image_ids[4:], outputs[4:])  # images 4, 5 repeated (DistributedSampler padding): kept once
    assert evaluator.evaluate() == evaluate_detections(gt, results, [0.5, 0.7], "voc07")

    # only processed images count: ground truth of the other images is not missed recall
    evaluator.reset()
    evaluator.process(image_ids[:3], outputs[:3])
    partial = evaluator.evaluate()
    expected = evaluate_detections(gt, results, [0.5, 0.7], "voc07", image_ids=image_ids[:3])
    assert partial == expected
    n_gt_first3 = sum(1 for a in gt["annotations"] if a["image_id"] in image_ids[:3] and not a["ignore"])
    assert sum(partial["num_gt"].values()) == n_gt_first3

    evaluator.reset()
    with pytest.raises(RuntimeError, match="before any image"):
        evaluator.evaluate()
    bad = {"boxes": torch.zeros(1, 4), "scores": torch.ones(1), "labels": torch.tensor([99])}
    with pytest.raises(DataError, match="label 99"):
        evaluator.process([image_ids[0]], [bad])
    with pytest.raises(DataError, match="image_id 12345"):
        evaluator.process([12345], [outputs[0]])


# --------------------------------------------------------------------------------------------------------------
# Image bootstrap of an mAP
# --------------------------------------------------------------------------------------------------------------


def materialised(gt, dets, draw):
    """The draw written out as a real test set: image j is a copy of sorted image draw[j] under the new id j + 1;
    the detections in their input order, each followed by its other copies (how score ties break)."""
    ids = sorted(im["id"] for im in gt["images"])
    out = {"images": [{"id": j + 1} for j in range(len(draw))], "categories": gt["categories"], "annotations": []}
    for j, k in enumerate(draw):
        for a in gt["annotations"]:
            if a["image_id"] == ids[k]:
                out["annotations"].append({**a, "id": len(out["annotations"]) + 1, "image_id": j + 1})
    out_dets = [{**d, "image_id": j + 1} for d in dets for j, k in enumerate(draw) if ids[k] == d["image_id"]]
    return out, out_dets


def test_bootstrap_map_known_values():
    # image 1: one cat found exactly; image 2: one cat missed, a false positive elsewhere
    gt = make_gt({1: [(1, [0, 0, 10, 10], False)], 2: [(1, [50, 50, 10, 10], False)]}, categories=("cat",))
    dets = [det(1, 1, [0, 0, 10, 10], 0.9), det(2, 1, [0, 0, 10, 10], 0.8)]
    got = bootstrap_map(gt, dets, [0.5], [[0, 1], [0, 0], [1, 1], [1, 0]], "voc")
    assert got[:, 0] == pytest.approx([50.0, 100.0, 0.0, 50.0])


@pytest.mark.parametrize("metric", ["voc07", "voc", "coco"])
def test_bootstrap_map_equals_evaluating_the_resampled_set_written_out(metric):
    gt, dets = random_case(3, n_images=12)
    rng = np.random.default_rng(0)
    # images, boxes and detections in no particular order: the regrouping by image must not rely on sorted input
    gt = {**gt, "images": [gt["images"][i] for i in rng.permutation(12)],
          "annotations": [gt["annotations"][i] for i in rng.permutation(len(gt["annotations"]))]}
    dets = [dets[i] for i in rng.permutation(len(dets))]
    thresholds = [0.5, 0.7]
    draws = rng.integers(0, 12, size=(4, 12))
    draws[0] = np.arange(12)  # the identity draw is the plain evaluation
    got = bootstrap_map(gt, dets, thresholds, draws, metric)
    assert got[0] == pytest.approx(evaluate_detections(gt, dets, thresholds, metric)["mAP"])
    for b in range(1, 4):
        expected = evaluate_detections(*materialised(gt, dets, draws[b]), thresholds, metric)["mAP"]
        assert got[b] == pytest.approx(expected, nan_ok=True)
    # a draw of a different size is a test set of that size
    assert bootstrap_map(gt, dets, thresholds, [[0, 1, 2]], metric)[0] == pytest.approx(
        evaluate_detections(*materialised(gt, dets, [0, 1, 2]), thresholds, metric)["mAP"], nan_ok=True)


def test_bootstrap_map_rejects_bad_draws():
    gt, dets = random_case(1, n_images=5)
    with pytest.raises(ValueError, match=r"positions in \[0, 5\)"):
        bootstrap_map(gt, dets, [0.5], [[0, 5]])
    with pytest.raises(ValueError, match="2-D integer"):
        bootstrap_map(gt, dets, [0.5], [0.0, 1.0])
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_map(gt, dets, [0.5], [[0]], "voc12")


def test_stored_detections_round_trip_through_the_evaluator():
    torch = pytest.importorskip("torch")
    gt, dets = random_case(5, n_images=8)
    ids = [im["id"] for im in gt["images"]]
    outputs = [{"boxes": torch.tensor([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in dets
                                                                                  if d["image_id"] == i)],
                                      dtype=torch.float32).reshape(-1, 4),
                "scores": torch.tensor([d["score"] for d in dets if d["image_id"] == i]),
                "labels": torch.tensor([d["category_id"] for d in dets if d["image_id"] == i])} for i in ids]
    evaluator = DetectionEvaluator(gt, [0.5, 0.7], "voc07")
    evaluator.process(ids, outputs)
    arrays = evaluator.detection_arrays()
    results = stored_to_coco_results(arrays)
    assert len(results) == len(dets)
    # the same detections, rounded as a run keeps them (float16 XYXY boxes and scores), one by one
    def key(d):
        return d["image_id"], d["category_id"], round(d["score"], 3), tuple(np.round(d["bbox"], 1))

    rounded = []
    for d in dets:
        x, y, w, h = d["bbox"]
        x1, y1, x2, y2 = np.float16([x, y, x + w, y + h]).astype(np.float64)
        rounded.append({**d, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(np.float16(d["score"]))})
    assert sorted(map(key, results)) == sorted(map(key, rounded))
    assert evaluate_detections(gt, results, [0.5, 0.7])["mAP"] == pytest.approx(
        evaluate_detections(gt, rounded, [0.5, 0.7])["mAP"], abs=1e-9)
    with pytest.raises(DataError, match=r"not \[D, 4\]"):
        stored_to_coco_results({**arrays, "boxes": arrays["boxes"].reshape(-1)[:-1]})
    with pytest.raises(DataError, match="missing array"):
        stored_to_coco_results({k: v for k, v in arrays.items() if k != "scores"})
    with pytest.raises(DataError, match="do not describe one set"):
        stored_to_coco_results({**arrays, "counts": arrays["counts"] + 1})


# --------------------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------------------


def test_bad_detections_raise_data_error_naming_the_problem():
    gt = make_gt({1: [(1, GT_A, 0)]})
    cases = [
        ([det(2, 1, GT_A, 0.5)], "image_id 2"),
        ([det(1, 7, GT_A, 0.5)], "category_id 7"),
        ([det(1, 1, [0, 0, -1, 5], 0.5)], "negative width"),
        ([det(1, 1, [0, 0, 5], 0.5)], "'bbox'"),
        ([{"image_id": 1, "category_id": 1, "bbox": GT_A}], "'score'"),
        ([det(1, 1, GT_A, float("nan"))], "not finite"),
        ({"not": "a list"}, "results list"),
    ]
    for dets, message in cases:
        with pytest.raises(DataError, match=message) as info:
            evaluate_detections(gt, dets, [0.5], dt_source="dets.json")
        assert info.value.path == "dets.json"


def test_bad_ground_truth_and_arguments():
    with pytest.raises(DataError, match="'annotations'"):
        evaluate_detections({"images": [], "categories": []}, [], [0.5], gt_source="gt.json")
    gt = make_gt({1: [(1, GT_A, 0)]})
    gt["annotations"][0]["image_id"] = 3
    with pytest.raises(DataError, match="annotation #0: image_id 3"):
        evaluate_detections(gt, [], [0.5])
    gt = make_gt({1: [(1, GT_A, 0)]})
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_detections(gt, [], [0.5], metric="map")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_detections(gt, [], [1.5])


# --------------------------------------------------------------------------------------------------------------
# parse_iou_thresholds
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0.1:0.9:0.1", [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]),
        ("0.5:0.95:0.05", [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]),
        ("0.5,0.7", [0.5, 0.7]),
        (" 0.5 , 0.75 ", [0.5, 0.75]),
        ("0.5", [0.5]),
        ("0.5:0.5:0.1", [0.5]),
    ],
)
def test_parse_iou_thresholds(spec, expected):
    assert parse_iou_thresholds(spec) == expected  # exact: rounded to 2 decimals, no 0.8999999


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty"),
        ("abc", "'abc' is not a number"),
        ("0.5,x", "'x' is not a number"),
        ("1.5", "outside"),
        ("-0.1", "outside"),
        ("0.9:0.1:0.1", "stop < start"),
        ("0.1:0.9:0", "positive step"),
        ("0.1:0.9", "start:stop:step"),
        ("0.5,0.5", "repeat"),
    ],
)
def test_parse_iou_thresholds_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_iou_thresholds(spec)


# --------------------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture()
def file_pair(tmp_path):
    gt = make_gt({1: [(1, GT_A, 0), (1, GT_B, 0)], 2: [(2, GT_A, 1)]}, categories=("cat", "dog", "emu"))
    dets = [det(1, 1, GT_A, 0.9), det(1, 1, MISS, 0.8), det(1, 1, GT_B, 0.7), det(2, 2, GT_A, 0.6)]
    gt_path, dt_path = tmp_path / "gt.json", tmp_path / "dets.json"
    gt_path.write_text(json.dumps(gt))
    dt_path.write_text(json.dumps(dets))
    return gt_path, dt_path


def test_cli_end_to_end(file_pair, tmp_path, capsys):
    gt_path, dt_path = file_pair
    out = tmp_path / "sub" / "metrics.json"
    code = cli_main(
        [
            "evaluate",
            "--gt",
            str(gt_path),
            "--dt",
            str(dt_path),
            "--iou",
            "0.1:0.9:0.1",
            "--metric",
            "voc07",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "mAP" in printed and "0.90" in printed and "cat" in printed and "84.8" in printed
    metrics = json.loads(out.read_text())
    assert set(metrics) == {"metric", "iou_thresholds", "mAP", "per_class_AP", "num_gt"}
    assert metrics["metric"] == "voc07"
    assert metrics["iou_thresholds"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert metrics["per_class_AP"]["cat"][4] == pytest.approx(100 * 28 / 33)
    assert metrics["per_class_AP"]["dog"] == [None] * 9  # only a difficult box: NaN -> null
    assert metrics["num_gt"] == {"cat": 2, "dog": 0, "emu": 0}
    assert metrics["mAP"][4] == pytest.approx(100 * 28 / 33)

    stream = io.StringIO()
    assert (
        evaluate_command(str(gt_path), str(dt_path), iou="0.5", metric="coco", out=None, stream=stream, per_class=False)
        == 0
    )
    assert "COCOeval" in stream.getvalue() and "emu" not in stream.getvalue()


def test_cli_as_module(file_pair):
    gt_path, dt_path = file_pair
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "detpretrain",
            "evaluate",
            "--gt",
            str(gt_path),
            "--dt",
            str(dt_path),
            "--metric",
            "voc",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "83.3" in proc.stdout


def _run_cli_error(capsys, args):
    code = cli_main(["evaluate", *args])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err


def test_cli_bad_input_exits_1_with_one_line_naming_the_file(file_pair, tmp_path, capsys):
    gt_path, dt_path = file_pair
    missing = tmp_path / "nope.json"
    err = _run_cli_error(capsys, ["--gt", str(gt_path), "--dt", str(missing)])
    assert str(missing) in err and "not found" in err

    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    err = _run_cli_error(capsys, ["--gt", str(broken), "--dt", str(dt_path)])
    assert str(broken) in err and "not valid JSON" in err

    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([det(99, 1, GT_A, 0.5)]))
    err = _run_cli_error(capsys, ["--gt", str(gt_path), "--dt", str(unknown)])
    assert str(unknown) in err and "image_id 99" in err

    unknown_cat = tmp_path / "unknown_cat.json"
    unknown_cat.write_text(json.dumps([det(1, 42, GT_A, 0.5)]))
    err = _run_cli_error(capsys, ["--gt", str(gt_path), "--dt", str(unknown_cat)])
    assert str(unknown_cat) in err and "category_id 42" in err

    negative = tmp_path / "negative.json"
    negative.write_text(json.dumps([det(1, 1, [10, 10, -3, 5], 0.5)]))
    err = _run_cli_error(capsys, ["--gt", str(gt_path), "--dt", str(negative)])
    assert str(negative) in err and "negative width" in err

    err = _run_cli_error(capsys, ["--gt", str(gt_path), "--dt", str(dt_path), "--iou", "0.9:0.1:0.1"])
    assert "--iou" in err and "stop < start" in err


def _ddp_worker(rank, world_size, init_file, gt, image_ids, outputs, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        evaluator = DetectionEvaluator(gt, [0.5, 0.7], "voc")
        # rank 0 gets images 0-5, rank 1 images 4-9: 4 and 5 on both, as DistributedSampler padding would do
        part = slice(0, 6) if rank == 0 else slice(4, None)
        evaluator.process(image_ids[part], outputs[part])
        (out_dir / f"rank{rank}.json").write_text(json.dumps(evaluator.evaluate()))
    finally:
        dist.destroy_process_group()


def test_detection_evaluator_gathers_across_ranks(tmp_path):
    torch = pytest.importorskip("torch")
    import torch.multiprocessing as mp

    gt, dets = random_case(11, n_images=10, difficult_rate=0.0)
    image_ids = [im["id"] for im in gt["images"]]
    outputs = []
    for image_id in image_ids:
        mine = [d for d in dets if d["image_id"] == image_id]
        outputs.append(
            {
                "boxes": torch.tensor(
                    [[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in mine)], dtype=torch.float64
                ).reshape(-1, 4),
                "scores": torch.tensor([d["score"] for d in mine], dtype=torch.float64),
                "labels": torch.tensor([d["category_id"] for d in mine], dtype=torch.int64),
            }
        )
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "rendezvous"), gt, image_ids, outputs, tmp_path), nprocs=2, join=True)
    expected = evaluate_detections(gt, outputs_to_coco_results(image_ids, outputs), [0.5, 0.7], "voc")
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
        assert got["num_gt"] == expected["num_gt"]
