"""Detection AP per class and mAP at any list of IoU thresholds (the paper's Figure 1 and Tables 1, 2, 4).

Li et al. 2019 report PASCAL-VOC 2007 test mAP (%) at IoU 0.5 and 0.7 (Tables 1, 2, 4) and over the IoU sweep
0.1 ... 0.9 (Figure 1). This module computes those numbers three ways:

``metric="voc07"``
    VOC2007 11-point interpolated AP, the paper's metric: the mean over recall levels r in {0, 0.1, ..., 1} of the
    highest precision reached at any recall >= r (recall levels are ``k * 0.1`` in floating point, as in the
    devkit's ``np.arange(0., 1.1, 0.1)``).
``metric="voc"``
    VOC2010+ all-point AP: the exact area under the monotone (non-increasing) precision envelope.
``metric="coco"``
    A second opinion from :class:`pycocotools.cocoeval.COCOeval` run with ``params.iouThrs`` set to the requested
    thresholds; per-class AP is read from ``eval["precision"]`` as detectron2 does (mean over the 101 recall
    points, area range "all", no cap on detections per image and class). ``COCOeval.summarize()`` is not called
    because it assumes the default thresholds 0.5:0.95.

Matching rule of ``voc07`` / ``voc`` (the VOC devkit's ``voc_eval``), per class and per IoU threshold t:

* detections are sorted by score, descending, with a *stable* sort (ties keep their input order; the devkit's
  ``np.argsort(-confidence)`` leaves ties in an unspecified order);
* each detection takes the ground-truth box of its image and class with the highest IoU (first in annotation
  order on ties), *whether or not that box is already matched and whether or not it is difficult*;
* if that IoU is strictly greater than t (``ovmax > t``, the devkit's comparison; COCOeval uses ``>=``):
  a difficult box makes the detection neither TP nor FP; an unmatched box makes it a TP and marks the box
  matched; an already matched box makes it a FP (duplicate). Otherwise the detection is a FP.
* difficult boxes do not count in recall (``npos`` counts non-difficult boxes only).

Deviation from the devkit, on purpose: the devkit computes IoU on 1-based inclusive pixel boxes with the "+1"
convention (``iw = min(x2) - max(x1) + 1``). Our boxes are 0-based continuous XYXY pixel coordinates (the
torchvision convention), so IoU is continuous with no "+1" (:func:`torchvision.ops.box_iou` semantics, also what
COCOeval uses). A pair of boxes whose union has zero area has IoU 0.

Ground truth is a COCO-format dict; an annotation with ``"ignore": 1`` or ``"iscrowd": 1`` is a VOC *difficult*
box. (In the ``coco`` path such boxes are given to COCOeval as ``iscrowd=1`` — COCOeval ignores the ``ignore``
key — so COCOeval's crowd semantics apply to them: IoU = intersection / detection area, and a detection on them
is neither TP nor FP.) Classes with no non-difficult ground truth get AP = NaN (``null`` in JSON) and are left
out of the mAP. AP values returned by :func:`evaluate_detections` are in percent (0-100).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from detpretrain.errors import ConfigError, DataError
from detpretrain.io import atomic_write_json

__all__ = [
    "METRICS",
    "DetectionEvaluator",
    "evaluate_command",
    "bootstrap_map",
    "evaluate_detections",
    "format_metrics_table",
    "match_detections",
    "outputs_to_coco_results",
    "parse_iou_thresholds",
    "stored_to_coco_results",
    "voc_ap",
]

METRICS = ("voc07", "voc", "coco")
_METRIC_NAMES = {
    "voc07": "VOC2007 11-point interpolated AP",
    "voc": "VOC2010+ all-point AP",
    "coco": "COCOeval 101-point AP (pycocotools)",
}
# The devkit's recall levels for the 11-point metric: np.arange(0., 1.1, 0.1) == k * 0.1 in floating point.
_RECALL_LEVELS_11 = np.arange(0.0, 1.1, 0.1)


# --------------------------------------------------------------------------------------------------------------
# Threshold parsing and the AP of one precision/recall curve
# --------------------------------------------------------------------------------------------------------------


def parse_iou_thresholds(spec: str) -> list[float]:
    """Parse an IoU threshold list: ``"0.5"``, ``"0.5,0.7"`` or an inclusive range ``"start:stop:step"``.

    ``"0.1:0.9:0.1"`` gives ``[0.1, 0.2, ..., 0.9]`` (the paper's Figure 1). Every value is rounded to 2 decimals,
    so floating-point steps never produce keys such as 0.8999999.

    Args:
        spec: the string given to ``--iou``.

    Returns:
        The thresholds (IoU, in [0, 1]) in the given order.

    Raises:
        ValueError: with a message naming the problem, for an empty string, a non-number, a value outside [0, 1],
            a range with a non-positive step or with stop < start, or duplicate values.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty IoU threshold list; give e.g. '0.5', '0.5,0.7' or '0.1:0.9:0.1'")
    text = spec.strip()

    def number(part: str) -> float:
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a number (in IoU thresholds {spec!r})") from None
        if not math.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ValueError(f"IoU threshold {part.strip()} is outside [0, 1] (in {spec!r})")
        return value

    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"IoU range {spec!r} must be 'start:stop:step', e.g. '0.1:0.9:0.1'")
        start, stop = number(parts[0]), number(parts[1])
        try:
            step = float(parts[2])
        except ValueError:
            raise ValueError(f"step {parts[2].strip()!r} is not a number (in IoU range {spec!r})") from None
        if not math.isfinite(step) or step <= 0:
            raise ValueError(f"IoU range {spec!r} needs a positive step")
        if stop < start:
            raise ValueError(f"IoU range {spec!r} has stop < start")
        count = int(math.floor((stop - start) / step + 1e-9)) + 1
        values = [round(start + k * step, 2) for k in range(count)]
    else:
        values = [round(number(part), 2) for part in text.split(",")]
    if len(set(values)) != len(values):
        raise ValueError(f"IoU thresholds {spec!r} repeat a value after rounding to 2 decimals: {values}")
    return values


def voc_ap(recall: np.ndarray | Sequence[float], precision: np.ndarray | Sequence[float], use_07_metric: bool) -> float:
    """Average precision of one class from its cumulative recall/precision curve (the VOC devkit's ``voc_ap``).

    Args:
        recall: shape [N], recall after each detection in score order (non-decreasing, in [0, 1]).
        precision: shape [N], precision after each detection in score order (in [0, 1]).
        use_07_metric: True for the VOC2007 11-point interpolated AP (mean over r in {0, 0.1, ..., 1} of the
            highest precision at recall >= r, 0 where recall r is never reached); False for the VOC2010+
            all-point AP (area under the non-increasing precision envelope).

    Returns:
        AP as a FRACTION in [0, 1] (not percent). Empty curves give 0.0.

    Raises:
        ValueError: if the two arrays are not 1-D of the same length.
    """
    rec = np.asarray(recall, dtype=np.float64)
    prec = np.asarray(precision, dtype=np.float64)
    if rec.ndim != 1 or rec.shape != prec.shape:
        raise ValueError(f"recall and precision must be 1-D of the same length, got {rec.shape} and {prec.shape}")
    if use_07_metric:
        if rec.size == 0:
            return 0.0
        # highest precision at recall >= r == the suffix maximum of precision from the first index with rec >= r
        # (recall is non-decreasing along the curve).
        envelope = np.maximum.accumulate(prec[::-1])[::-1]
        first = np.searchsorted(rec, _RECALL_LEVELS_11, side="left")
        reached = first < rec.size
        return float(envelope[first[reached]].sum() / 11.0)
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


# --------------------------------------------------------------------------------------------------------------
# Parsed inputs
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroundTruth:
    """A validated COCO ground truth as arrays. Boxes are XYXY continuous pixels, shape [G, 4]."""

    image_ids: np.ndarray  # [I] int64, sorted, unique
    category_ids: np.ndarray  # [K] int64, sorted, unique
    category_names: tuple[str, ...]  # [K] names in category-id order
    image: np.ndarray  # [G] int64 image id of each box
    category: np.ndarray  # [G] int64 category id of each box
    boxes: np.ndarray  # [G, 4] float64 XYXY
    difficult: np.ndarray  # [G] bool ("ignore" or "iscrowd")


@dataclass(frozen=True)
class _Detections:
    """Validated detections as arrays. Boxes are XYXY continuous pixels, shape [D, 4]."""

    image: np.ndarray  # [D] int64
    category: np.ndarray  # [D] int64
    boxes: np.ndarray  # [D, 4] float64 XYXY
    scores: np.ndarray  # [D] float64

    @staticmethod
    def empty() -> _Detections:
        return _Detections(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.float64), np.zeros(0, np.float64)
        )

    def select(self, keep: np.ndarray) -> _Detections:
        return _Detections(self.image[keep], self.category[keep], self.boxes[keep], self.scores[keep])


def _int_ids(values: list[Any], source: str, what: str) -> np.ndarray:
    """Integer ids as int64, or DataError naming the first item that is not an integer."""
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise DataError(source, f"{what} #{i}: id {value!r} is not an integer")
    return np.asarray(values, dtype=np.int64).reshape(-1)


def _xywh_boxes(items: list[dict], source: str, what: str) -> np.ndarray:
    """The "bbox" fields [x, y, w, h] of ``items`` as float64 [N, 4], or DataError naming the first bad one."""
    try:
        boxes = np.asarray([item["bbox"] for item in items], dtype=np.float64)
        if boxes.shape != (len(items), 4):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        for i, item in enumerate(items):
            bbox = item.get("bbox")
            if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
                raise DataError(source, f"{what} #{i}: 'bbox' must be a list [x, y, w, h], got {bbox!r}") from None
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
                raise DataError(source, f"{what} #{i}: 'bbox' {bbox!r} holds a non-number") from None
        raise
    boxes = boxes.reshape(len(items), 4)
    bad = ~np.isfinite(boxes).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(source, f"{what} #{i}: 'bbox' {items[i]['bbox']!r} holds a non-finite value")
    negative = (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise DataError(source, f"{what} #{i}: 'bbox' {items[i]['bbox']!r} has a negative width or height")
    xyxy = boxes.copy()
    xyxy[:, 2:] += xyxy[:, :2]
    return xyxy


def _require_keys(items: list[Any], keys: tuple[str, ...], source: str, what: str) -> None:
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(source, f"{what} #{i} is not an object: {item!r:.80}")
        missing = [key for key in keys if key not in item]
        if missing:
            raise DataError(source, f"{what} #{i} lacks {', '.join(repr(k) for k in missing)}")


def _check_known(ids: np.ndarray, known: np.ndarray, source: str, what: str, field: str, known_in: str) -> None:
    unknown = ~np.isin(ids, known)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(source, f"{what} #{i}: {field} {int(ids[i])} is not in {known_in}")


def _parse_ground_truth(gt: dict, source: str = "<ground truth>") -> _GroundTruth:
    """Validate a COCO ground-truth dict; DataError(source, problem) on the first problem found."""
    if not isinstance(gt, dict):
        raise DataError(source, f"ground truth must be a COCO json object, got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise DataError(source, f"ground truth needs a list {key!r} (COCO format)")
    images, annotations, categories = gt["images"], gt["annotations"], gt["categories"]
    _require_keys(images, ("id",), source, "image")
    _require_keys(categories, ("id", "name"), source, "category")
    _require_keys(annotations, ("image_id", "category_id", "bbox"), source, "annotation")
    image_ids = _int_ids([im["id"] for im in images], source, "image")
    cat_ids = _int_ids([c["id"] for c in categories], source, "category")
    for ids, what in ((image_ids, "image"), (cat_ids, "category")):
        values, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise DataError(source, f"{what} id {int(values[counts > 1][0])} appears more than once")
    names = [str(c["name"]) for c in categories]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(source, f"category name {dup!r} appears more than once")
    order = np.argsort(cat_ids, kind="stable")
    ann_image = _int_ids([a["image_id"] for a in annotations], source, "annotation")
    ann_cat = _int_ids([a["category_id"] for a in annotations], source, "annotation")
    _check_known(ann_image, image_ids, source, "annotation", "image_id", "'images'")
    _check_known(ann_cat, cat_ids, source, "annotation", "category_id", "'categories'")
    boxes = _xywh_boxes(annotations, source, "annotation")
    difficult = np.asarray(
        [bool(a.get("ignore", 0)) or bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool
    ).reshape(-1)
    return _GroundTruth(
        image_ids=np.sort(image_ids),
        category_ids=cat_ids[order],
        category_names=tuple(names[i] for i in order),
        image=ann_image,
        category=ann_cat,
        boxes=boxes,
        difficult=difficult,
    )


def _parse_detections(detections: list[dict], gt: _GroundTruth, source: str = "<detections>") -> _Detections:
    """Validate a COCO results list against the ground truth; DataError(source, problem) on the first problem."""
    if not isinstance(detections, list):
        raise DataError(source, f"detections must be a COCO results list (json array), got {type(detections).__name__}")
    if not detections:
        return _Detections.empty()
    try:
        image = np.asarray([d["image_id"] for d in detections])
        category = np.asarray([d["category_id"] for d in detections])
        scores = np.asarray([d["score"] for d in detections], dtype=np.float64)
        ok = image.dtype.kind in "iu" and category.dtype.kind in "iu" and scores.shape == (len(detections),)
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:  # slow path: find and name the first bad detection
        _require_keys(detections, ("image_id", "category_id", "bbox", "score"), source, "detection")
        image = _int_ids([d["image_id"] for d in detections], source, "detection")
        category = _int_ids([d["category_id"] for d in detections], source, "detection")
        for i, d in enumerate(detections):
            if isinstance(d["score"], bool) or not isinstance(d["score"], (int, float)):
                raise DataError(source, f"detection #{i}: 'score' {d['score']!r} is not a number")
        scores = np.asarray([d["score"] for d in detections], dtype=np.float64)
    image = image.astype(np.int64, copy=False)
    category = category.astype(np.int64, copy=False)
    if not np.isfinite(scores).all():
        i = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise DataError(source, f"detection #{i}: 'score' {detections[i]['score']!r} is not finite")
    _check_known(image, gt.image_ids, source, "detection", "image_id", "the ground truth's images")
    _check_known(category, gt.category_ids, source, "detection", "category_id", "the ground truth's categories")
    boxes = _xywh_boxes(detections, source, "detection")
    return _Detections(image, category, boxes, scores)


def _normalise_thresholds(iou_thresholds: Sequence[float] | float) -> np.ndarray:
    values = np.atleast_1d(np.asarray(iou_thresholds, dtype=np.float64))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"iou_thresholds must be a non-empty list of numbers, got {iou_thresholds!r}")
    if not np.isfinite(values).all() or (values < 0).any() or (values > 1).any():
        raise ValueError(f"IoU thresholds must lie in [0, 1], got {values.tolist()}")
    # 6 decimals: removes floating-point noise such as 0.30000000000000004 from np.arange, keeps e.g. 0.525.
    return np.round(values, 6)


# --------------------------------------------------------------------------------------------------------------
# VOC matching, vectorised over detections and thresholds
# --------------------------------------------------------------------------------------------------------------


def _pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Continuous IoU of row-aligned XYXY boxes a[i] and b[i] (shape [P, 4] each) -> [P]; 0 where union is 0."""
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


@dataclass(frozen=True)
class _Candidates:
    """Every detection's best ground-truth box by the devkit's rule, detections in class-then-score order."""

    d_order: np.ndarray  # [D] index into the input detections of each sorted detection
    d_cls: np.ndarray  # [D] dense class index (sorted ascending)
    ovmax: np.ndarray  # [D] highest IoU with a box of the same class and image (-inf without candidates)
    jmax: np.ndarray  # [D] that box, as an index into the input ground truth (-1 without candidates)
    on_difficult: np.ndarray  # [D] bool: that box is difficult
    npos: np.ndarray  # [K] non-difficult boxes per class
    cls_bounds: np.ndarray  # [K + 1] slice bounds of each class in the sorted detections


def _voc_candidates(gt: _GroundTruth, dets: _Detections) -> _Candidates:
    """The threshold-independent half of the devkit's matching (see the module docstring), vectorised."""
    n_cls = len(gt.category_ids)
    # Dense indices; a group is one (class, image) pair.
    n_img = len(gt.image_ids)
    g_key = np.searchsorted(gt.category_ids, gt.category) * n_img + np.searchsorted(gt.image_ids, gt.image)
    d_cls = np.searchsorted(gt.category_ids, dets.category)
    d_key = d_cls * n_img + np.searchsorted(gt.image_ids, dets.image)
    npos = np.bincount(np.searchsorted(gt.category_ids, gt.category[~gt.difficult]), minlength=n_cls)

    # Ground truth sorted by group, annotation order kept inside a group (devkit's argmax takes the first on ties).
    g_order = np.argsort(g_key, kind="stable")
    g_key, g_boxes, g_diff = g_key[g_order], gt.boxes[g_order], gt.difficult[g_order]
    # Detections sorted by class, then by score descending; stable, so ties keep their input order.
    d_order = np.argsort(-dets.scores, kind="stable")
    d_order = d_order[np.argsort(d_cls[d_order], kind="stable")]
    d_cls, d_key, d_boxes = d_cls[d_order], d_key[d_order], dets.boxes[d_order]
    n_det = len(d_order)

    # Every (detection, ground-truth box of the same class and image) pair, grouped by detection.
    first_gt = np.searchsorted(g_key, d_key, side="left")
    n_cand = np.searchsorted(g_key, d_key, side="right") - first_gt
    pair_start = np.cumsum(n_cand) - n_cand
    pair_det = np.repeat(np.arange(n_det), n_cand)
    pair_gt = np.repeat(first_gt - pair_start, n_cand) + np.arange(int(n_cand.sum()))
    iou = _pair_iou(d_boxes[pair_det], g_boxes[pair_gt])

    # ovmax and jmax (first argmax in annotation order) per detection; -inf / -1 without candidates.
    ovmax = np.full(n_det, -np.inf)
    jmax = np.full(n_det, -1, dtype=np.int64)
    has = n_cand > 0
    if has.any():
        ovmax[has] = np.maximum.reduceat(iou, pair_start[has])
        at_max = np.flatnonzero(iou == ovmax[pair_det])
        first = np.ones(len(at_max), dtype=bool)
        first[1:] = pair_det[at_max[1:]] != pair_det[at_max[:-1]]
        jmax[pair_det[at_max[first]]] = pair_gt[at_max[first]]
    on_difficult = np.zeros(n_det, dtype=bool)
    on_difficult[has] = g_diff[jmax[has]]
    jmax[has] = g_order[jmax[has]]  # back to input ground-truth order
    return _Candidates(d_order, d_cls, ovmax, jmax, on_difficult, npos, np.searchsorted(d_cls, np.arange(n_cls + 1)))


def _voc_tp_fp(c: _Candidates, thr: float) -> tuple[np.ndarray, np.ndarray]:
    """(tp, fp) flags of the sorted detections at IoU threshold ``thr``; a detection on a difficult box is neither."""
    hit = c.ovmax > thr
    ignored = hit & c.on_difficult
    # The first detection (in class-then-score order) that hits a non-difficult box is its TP; later ones
    # hitting the same box are duplicates (FP). A box index belongs to one class, so one pass does all classes.
    cand = np.flatnonzero(hit & ~c.on_difficult)
    tp = np.zeros(len(c.ovmax), dtype=bool)
    tp[cand[np.unique(c.jmax[cand], return_index=True)[1]]] = True
    return tp, ~tp & ~ignored


def _voc_ap_table(gt: _GroundTruth, dets: _Detections, thresholds: np.ndarray, use_07_metric: bool) -> np.ndarray:
    """AP (fraction) per class and threshold by the devkit's matching rule -> [K, T]; NaN where npos == 0."""
    c = _voc_candidates(gt, dets)
    ap = np.full((len(gt.category_ids), len(thresholds)), np.nan)
    for t, thr in enumerate(thresholds):
        tp, fp = _voc_tp_fp(c, thr)
        for k in range(len(gt.category_ids)):
            if c.npos[k] == 0:
                continue
            lo, hi = c.cls_bounds[k], c.cls_bounds[k + 1]
            tp_c = np.cumsum(tp[lo:hi], dtype=np.float64)
            fp_c = np.cumsum(fp[lo:hi], dtype=np.float64)
            rec = tp_c / c.npos[k]
            prec = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
            ap[k, t] = voc_ap(rec, prec, use_07_metric)
    return ap


def match_detections(gt: dict, detections: list[dict], iou_threshold: float = 0.5) -> dict:
    """The VOC devkit's matching (module docstring) at one IoU threshold, exposed per detection and per box.

    Used by the error analyses (Table 3's missed objects, Hoiem et al. 2012) that need to know *which* box each
    detection found, not only the AP.

    Args:
        gt: COCO-format ground truth (as :func:`evaluate_detections`); boxes are its ``annotations`` in order.
        detections: COCO results list (``image_id``, ``category_id``, ``bbox`` XYWH pixels, ``score``).
        iou_threshold: IoU a detection must exceed (``>``, the devkit's rule).

    Returns:
        dict of numpy arrays over the detections in class-then-descending-score order: ``detection`` (index into
        ``detections``), ``category`` (category id), ``score``, ``tp``, ``fp`` (bool; a detection on a difficult
        box is neither), ``gt_index`` (the box it matched as TP, index into ``gt["annotations"]``, -1 otherwise);
        and per box: ``gt_difficult`` [G] bool, ``gt_category`` [G]; per class: ``category_ids`` [K], ``npos`` [K]
        (non-difficult boxes); ``num_images``.

    Raises:
        DataError: malformed ground truth or detections (as :func:`evaluate_detections`).
    """
    g = _parse_ground_truth(gt)
    d = _parse_detections(detections, g)
    c = _voc_candidates(g, d)
    tp, fp = _voc_tp_fp(c, float(iou_threshold))
    # _parse_ground_truth keeps the annotation order, so box indices are indices into gt["annotations"]
    return {"detection": c.d_order, "category": d.category[c.d_order], "score": d.scores[c.d_order], "tp": tp,
            "fp": fp, "gt_index": np.where(tp, c.jmax, -1), "gt_difficult": g.difficult, "gt_category": g.category,
            "category_ids": g.category_ids, "npos": c.npos, "num_images": len(g.image_ids)}


# --------------------------------------------------------------------------------------------------------------
# COCOeval second opinion
# --------------------------------------------------------------------------------------------------------------


def _coco_ap_table(gt: _GroundTruth, dets: _Detections, thresholds: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """AP (fraction) per class and threshold from pycocotools COCOeval -> [K, T]; NaN where a class has no GT."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    n_cls = len(gt.category_ids)
    npos = np.array([int(((gt.category == c) & ~gt.difficult).sum()) for c in gt.category_ids])
    if len(dets.scores) == 0:
        return np.where(npos[:, None] > 0, 0.0, np.nan) * np.ones((1, len(thresholds)))
    names = dict(zip(gt.category_ids.tolist(), gt.category_names, strict=True))
    wh = gt.boxes[:, 2:] - gt.boxes[:, :2]
    dataset = {
        "images": [{"id": i} for i in gt.image_ids.tolist()],
        "categories": [{"id": c, "name": names[c]} for c in gt.category_ids.tolist()],
        "annotations": [
            {"id": n + 1, "image_id": im, "category_id": c, "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(dif)}
            for n, (im, c, (x, y), (w, h), dif) in enumerate(
                zip(
                    gt.image.tolist(),
                    gt.category.tolist(),
                    gt.boxes[:, :2].tolist(),
                    wh.tolist(),
                    gt.difficult.tolist(),
                    strict=True,
                )
            )
        ],
    }
    results = _results_from_arrays(dets)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.iouThrs = thresholds.copy()
        ev.params.imgIds = image_ids.tolist()
        ev.params.catIds = gt.category_ids.tolist()
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [max(1, len(dets.scores))]  # no cap: VOC counts every detection
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # [T, R=101, K, A=1, M=1], -1 where a class has no GT
    ap = np.full((n_cls, len(thresholds)), np.nan)
    for k in range(n_cls):
        for t in range(len(thresholds)):
            p = precision[t, :, k, 0, -1]
            p = p[p > -1]
            if p.size:
                ap[k, t] = float(np.mean(p))
    return ap


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def _evaluate_parsed(
    gt: _GroundTruth, dets: _Detections, iou_thresholds: Sequence[float], metric: str, image_ids: Iterable[int] | None
) -> dict:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    thresholds = _normalise_thresholds(iou_thresholds)
    if image_ids is not None:
        keep_images = np.unique(np.asarray(list(image_ids), dtype=np.int64))
        unknown = keep_images[~np.isin(keep_images, gt.image_ids)]
        if unknown.size:
            raise ValueError(f"image id {int(unknown[0])} is not in the ground truth")
        keep = np.isin(gt.image, keep_images)
        gt = _GroundTruth(
            keep_images,
            gt.category_ids,
            gt.category_names,
            gt.image[keep],
            gt.category[keep],
            gt.boxes[keep],
            gt.difficult[keep],
        )
        dets = dets.select(np.isin(dets.image, keep_images))
    if metric == "coco":
        ap = _coco_ap_table(gt, dets, thresholds, gt.image_ids)
    else:
        ap = _voc_ap_table(gt, dets, thresholds, use_07_metric=(metric == "voc07"))
    ap = ap * 100.0
    valid = ~np.isnan(ap).all(axis=1)
    m_ap = ap[valid].mean(axis=0) if valid.any() else np.full(len(thresholds), np.nan)
    num_gt = np.array([int(((gt.category == c) & ~gt.difficult).sum()) for c in gt.category_ids])
    return {
        "metric": metric,
        "iou_thresholds": [float(t) for t in thresholds],
        "mAP": [float(v) for v in m_ap],
        "per_class_AP": {name: [float(v) for v in ap[k]] for k, name in enumerate(gt.category_names)},
        "num_gt": {name: int(num_gt[k]) for k, name in enumerate(gt.category_names)},
    }


def evaluate_detections(
    gt: dict,
    detections: list[dict],
    iou_thresholds: Sequence[float],
    metric: str = "voc07",
    *,
    image_ids: Iterable[int] | None = None,
    gt_source: str = "<ground truth>",
    dt_source: str = "<detections>",
) -> dict:
    """AP per class and mAP at each IoU threshold (the paper's Figure 1 sweep and its mAP@0.5 / mAP@0.7 tables).

    Args:
        gt: COCO-format ground truth: ``images`` (``id``), ``categories`` (``id``, ``name``), ``annotations``
            (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] in 0-based continuous pixels; ``"ignore": 1``
            or ``"iscrowd": 1`` marks a VOC difficult box). Not modified.
        detections: COCO results list, one dict per box: ``image_id``, ``category_id``, ``bbox`` [x, y, w, h]
            (pixels), ``score``. Not modified.
        iou_thresholds: IoU thresholds in [0, 1] (e.g. ``parse_iou_thresholds("0.1:0.9:0.1")``); rounded to 6
            decimals.
        metric: ``"voc07"`` (11-point, the paper's), ``"voc"`` (all-point) or ``"coco"`` (pycocotools COCOeval).
        image_ids: evaluate on these images only (ground truth and detections of other images are dropped);
            default: every image of ``gt``.
        gt_source, dt_source: names used in error messages (the files they came from).

    Returns:
        ``{"metric": str, "iou_thresholds": [float, T], "mAP": [percent, T], "per_class_AP": {name: [percent, T]},
        "num_gt": {name: number of non-difficult boxes}}``. AP is in percent (0-100). A class with no
        non-difficult ground truth has AP NaN at every threshold and is left out of the mAP (mAP is NaN if no
        class has ground truth).

    Raises:
        DataError: malformed ground truth (named ``gt_source``) or detections (named ``dt_source``): missing
            fields, a detection whose ``image_id``/``category_id`` is not in ``gt``, a non-finite value or a
            negative width/height.
        ValueError: unknown ``metric``, thresholds outside [0, 1], an ``image_ids`` entry not in ``gt``.
    """
    parsed_gt = _parse_ground_truth(gt, gt_source)
    parsed_dt = _parse_detections(detections, parsed_gt, dt_source)
    return _evaluate_parsed(parsed_gt, parsed_dt, iou_thresholds, metric, image_ids)


def bootstrap_map(
    gt: dict,
    detections: list[dict],
    iou_thresholds: Sequence[float],
    draws: np.ndarray | Sequence[Sequence[int]],
    metric: str = "voc07",
    *,
    gt_source: str = "<ground truth>",
    dt_source: str = "<detections>",
) -> np.ndarray:
    """mAP of one detector on image-resampled copies of its test set: the image bootstrap of an mAP (Efron and
    Tibshirani 1993, ch. 6; the resampling unit is the image, because objects of one image are matched together).

    Draw ``b`` is evaluated as a test set whose ``j``-th image is a copy of image ``draws[b, j]`` (with its boxes and
    the detector's detections on it); an image drawn twice counts twice, exactly as if it had been listed twice
    under two ids. The detections keep their input order (the copies of one detection side by side), so score ties
    break as in :func:`evaluate_detections` and the identity draw gives its mAP exactly. Nothing is re-run: the
    detections are the stored ones.

    Args:
        gt, detections, metric: as :func:`evaluate_detections`.
        iou_thresholds: IoU thresholds in [0, 1].
        draws: int array [B, n] of positions in the ground truth's images sorted by id (0 ... I - 1), e.g.
            ``rng.integers(0, I, size=(B, I))``; pass the same draws to several detectors for a paired bootstrap.

    Returns:
        float array [B, T]: mAP (percent) of each draw at each threshold (NaN where no class has ground truth).

    Raises:
        DataError: malformed ground truth or detections (as :func:`evaluate_detections`).
        ValueError: ``draws`` not a 2-D integer array, a position outside [0, I), unknown ``metric`` or bad thresholds.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    thresholds = _normalise_thresholds(iou_thresholds)
    g = _parse_ground_truth(gt, gt_source)
    d = _parse_detections(detections, g, dt_source)
    draws = np.asarray(draws)
    if draws.ndim != 2 or draws.dtype.kind not in "iu" or draws.shape[1] == 0:
        raise ValueError(f"draws must be a 2-D integer array [B, n] with n >= 1, got shape {draws.shape} "
                         f"and dtype {draws.dtype}")
    n_images = len(g.image_ids)
    if draws.size and (draws.min() < 0 or draws.max() >= n_images):
        raise ValueError(f"draws must be positions in [0, {n_images}) (the ground truth's {n_images} images "
                         f"sorted by id), got values from {int(draws.min())} to {int(draws.max())}")
    position = {int(i): k for k, i in enumerate(g.image_ids)}

    def grouped(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row order by image position, start and count of each position's rows in that order)."""
        pos = np.fromiter((position[int(i)] for i in image), np.int64, len(image))
        order = np.argsort(pos, kind="stable")
        count = np.bincount(pos, minlength=n_images)
        return order, np.concatenate([[0], np.cumsum(count)[:-1]]), count

    g_order, g_start, g_count = grouped(g.image)
    d_order, d_start, d_count = grouped(d.image)

    def rows(order, start, count, draw) -> tuple[np.ndarray, np.ndarray]:
        n = count[draw]
        total = int(n.sum())
        offsets = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
        return order[np.repeat(start[draw], n) + offsets], np.repeat(np.arange(len(draw), dtype=np.int64), n)

    out = np.empty((len(draws), len(thresholds)))
    for b, draw in enumerate(draws):
        gi, g_img = rows(g_order, g_start, g_count, draw)
        di, d_img = rows(d_order, d_start, d_count, draw)
        keep_input_order = np.argsort(di, kind="stable")  # score ties break as in the input (copies side by side)
        di, d_img = di[keep_input_order], d_img[keep_input_order]
        gt_b = _GroundTruth(np.arange(len(draw), dtype=np.int64), g.category_ids, g.category_names, g_img,
                            g.category[gi], g.boxes[gi], g.difficult[gi])
        dets_b = _Detections(d_img, d.category[di], d.boxes[di], d.scores[di])
        out[b] = _evaluate_parsed(gt_b, dets_b, thresholds, metric, None)["mAP"]
    return out


def stored_to_coco_results(arrays: dict) -> list[dict]:
    """A run's stored detections (``detections.npz``: ``image_ids``, ``counts``, ``boxes`` XYXY pixels, ``scores``,
    ``labels``; :meth:`DetectionEvaluator.detection_arrays`) -> a COCO results list (``bbox`` [x, y, w, h] pixels),
    what :func:`evaluate_detections` and :func:`bootstrap_map` take.

    Raises:
        DataError: a missing array, boxes that are not [D, 4], or arrays whose lengths disagree.
    """
    missing = [k for k in ("image_ids", "counts", "boxes", "scores", "labels") if k not in arrays]
    if missing:
        raise DataError("<stored detections>", f"missing array(s) {', '.join(missing)}")
    counts = np.asarray(arrays["counts"], dtype=np.int64)
    boxes = np.asarray(arrays["boxes"], dtype=np.float64)
    if boxes.size % 4 or (boxes.ndim == 2 and boxes.shape[1] != 4):
        raise DataError("<stored detections>", f"boxes of shape {boxes.shape} are not [D, 4] XYXY boxes")
    boxes = boxes.reshape(-1, 4)
    n = int(counts.sum())
    if len(counts) != len(arrays["image_ids"]) or not len(boxes) == len(arrays["scores"]) == len(arrays["labels"]) == n:
        raise DataError("<stored detections>", f"{len(arrays['image_ids'])} image ids, {len(counts)} counts "
                        f"(summing to {n}), {len(boxes)} boxes, {len(arrays['scores'])} scores and "
                        f"{len(arrays['labels'])} labels do not describe one set of detections")
    image = np.repeat(np.asarray(arrays["image_ids"], dtype=np.int64), counts)
    dets = _Detections(image, np.asarray(arrays["labels"], dtype=np.int64), boxes,
                       np.asarray(arrays["scores"], dtype=np.float64))
    return _results_from_arrays(dets)


def _results_from_arrays(dets: _Detections) -> list[dict]:
    """Detections as arrays -> COCO results list (bbox as [x, y, w, h] pixels)."""
    xywh = dets.boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    return [
        {"image_id": im, "category_id": c, "bbox": box, "score": s}
        for im, c, box, s in zip(
            dets.image.tolist(), dets.category.tolist(), xywh.tolist(), dets.scores.tolist(), strict=True
        )
    ]


def _output_arrays(image_id: int, output: dict) -> _Detections:
    """One torchvision detector output -> arrays (boxes XYXY [N, 4], scores [N], labels [N])."""

    def as_numpy(value: Any) -> np.ndarray:
        if hasattr(value, "detach"):  # torch.Tensor
            value = value.detach().cpu().numpy()
        return np.asarray(value)

    try:
        boxes = as_numpy(output["boxes"]).astype(np.float64).reshape(-1, 4)
        scores = as_numpy(output["scores"]).astype(np.float64).reshape(-1)
        labels = as_numpy(output["labels"]).astype(np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"detector output of image {image_id} must hold 'boxes' [N, 4], 'scores' [N] and 'labels' [N]: {err}"
        ) from None
    if not len(boxes) == len(scores) == len(labels):
        raise ValueError(
            f"detector output of image {image_id}: {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels"
        )
    return _Detections(np.full(len(scores), int(image_id), dtype=np.int64), labels, boxes, scores)


def outputs_to_coco_results(image_ids: Sequence[int], outputs: Sequence[dict]) -> list[dict]:
    """Torchvision detector outputs -> COCO results list (the file format ``python -m detpretrain evaluate`` reads).

    Args:
        image_ids: [B] COCO image id of each output.
        outputs: [B] dicts with ``"boxes"`` [N, 4] XYXY pixels (float tensor or array), ``"scores"`` [N] and
            ``"labels"`` [N] (int64; the contiguous labels must equal the ground truth's category ids).

    Returns:
        One ``{"image_id", "category_id", "bbox": [x, y, w, h] pixels, "score"}`` dict per box, in input order.

    Raises:
        ValueError: ``image_ids`` and ``outputs`` differ in length, or an output lacks a field / has
            mismatched lengths.
    """
    if len(image_ids) != len(outputs):
        raise ValueError(f"{len(image_ids)} image ids but {len(outputs)} detector outputs")
    results: list[dict] = []
    for image_id, output in zip(image_ids, outputs, strict=True):
        results.extend(_results_from_arrays(_output_arrays(int(image_id), output)))
    return results


class DetectionEvaluator:
    """Detection evaluator in detectron2 style: ``reset()``, ``process(image_ids, outputs)``, ``evaluate()``.

    The ground truth is validated once, at construction. ``process`` keeps the detections of each image;
    an image processed twice keeps its FIRST outputs (a DistributedSampler pads the last batch with repeats).
    ``evaluate`` scores only the processed images (as detectron2's COCOEvaluator does: ground truth of images
    never processed is not counted). Under ``torch.distributed`` (torchrun) every rank gathers every rank's
    detections, so every rank returns the same metrics.

    Args:
        gt: COCO ground-truth dict (see :func:`evaluate_detections`); its category ids must equal the
            detector's contiguous labels.
        iou_thresholds: IoU thresholds in [0, 1].
        metric: ``"voc07"``, ``"voc"`` or ``"coco"``.

    Raises:
        DataError: malformed ``gt`` (at construction).
        ValueError: unknown metric or bad thresholds (at construction).
    """

    def __init__(self, gt: dict, iou_thresholds: Sequence[float], metric: str = "voc07"):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        self.iou_thresholds = [float(t) for t in _normalise_thresholds(iou_thresholds)]
        self.metric = metric
        self._gt = _parse_ground_truth(gt)
        self._per_image: dict[int, _Detections] = {}

    def reset(self) -> None:
        """Forget every processed image."""
        self._per_image = {}

    def process(self, image_ids: Sequence[int], outputs: Sequence[dict]) -> None:
        """Record the detector outputs of a batch.

        Args:
            image_ids: [B] COCO image ids of the batch (must be images of the ground truth).
            outputs: [B] torchvision detector outputs: ``"boxes"`` [N, 4] float XYXY pixels, ``"scores"`` [N],
                ``"labels"`` [N] int64 (== ground-truth category ids).

        Raises:
            DataError: an image id or label not in the ground truth, a non-finite box or score, or a box with
                x2 < x1 or y2 < y1 (named ``<detector outputs>``).
            ValueError: lengths differ or an output lacks a field.
        """
        if len(image_ids) != len(outputs):
            raise ValueError(f"{len(image_ids)} image ids but {len(outputs)} detector outputs")
        source = "<detector outputs>"
        for image_id, output in zip(image_ids, outputs, strict=True):
            image_id = int(image_id)
            if image_id in self._per_image:
                continue
            if not np.isin(image_id, self._gt.image_ids):
                raise DataError(source, f"image_id {image_id} is not in the ground truth's images")
            dets = _output_arrays(image_id, output)
            unknown = ~np.isin(dets.category, self._gt.category_ids)
            if unknown.any():
                raise DataError(
                    source,
                    f"image {image_id}: label {int(dets.category[unknown][0])} is not a ground-truth category id",
                )
            if not (np.isfinite(dets.boxes).all() and np.isfinite(dets.scores).all()):
                raise DataError(source, f"image {image_id}: a box or score is not finite")
            if ((dets.boxes[:, 2] < dets.boxes[:, 0]) | (dets.boxes[:, 3] < dets.boxes[:, 1])).any():
                raise DataError(source, f"image {image_id}: a box has x2 < x1 or y2 < y1 (negative width/height)")
            self._per_image[image_id] = dets

    def _gathered(self) -> dict[int, _Detections]:
        per_image = self._per_image
        try:
            import torch.distributed as dist
        except ImportError:  # pragma: no cover - torch is a dependency
            return per_image
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return per_image
        gathered: list[dict[int, _Detections] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, per_image)
        merged: dict[int, _Detections] = {}
        for part in gathered:  # rank order; the first copy of a repeated image wins
            for image_id, dets in (part or {}).items():
                merged.setdefault(image_id, dets)
        return merged

    def detection_arrays(self) -> dict[str, np.ndarray]:
        """Every processed image's detections, compact (what a run keeps as ``detections.npz``), images in id order.

        Returns:
            ``{"image_ids": int64 [N], "counts": int32 [N] (detections per image), "boxes": float16 [D, 4] (XYXY
            pixels; float16 keeps about 3 significant digits: 1/16 px at 128 px, 1/2 px at 1,000 px),
            "scores": float16 [D], "labels": int16 [D]}``; the detections of image ``i`` are rows
            ``counts[:i].sum()`` to ``counts[:i + 1].sum()``, in the detector's order (descending score).
        """
        per_image = self._gathered()
        ids = sorted(per_image)
        parts = [per_image[i] for i in ids]
        cat = (lambda xs, shape, dtype: np.concatenate(xs).astype(dtype) if xs else np.zeros(shape, dtype))
        return {"image_ids": np.asarray(ids, dtype=np.int64),
                "counts": np.asarray([len(p.scores) for p in parts], dtype=np.int32),
                "boxes": cat([p.boxes for p in parts], (0, 4), np.float16).reshape(-1, 4),
                "scores": cat([p.scores for p in parts], (0,), np.float16),
                "labels": cat([p.category for p in parts], (0,), np.int16)}

    def evaluate(self) -> dict:
        """Metrics over the processed images: the dict described in :func:`evaluate_detections` (AP in percent).

        Raises:
            RuntimeError: no image was processed.
        """
        per_image = self._gathered()
        if not per_image:
            raise RuntimeError("DetectionEvaluator.evaluate() called before any image was processed")
        parts = [per_image[i] for i in sorted(per_image)]
        dets = _Detections(
            np.concatenate([p.image for p in parts]),
            np.concatenate([p.category for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
        )
        return _evaluate_parsed(self._gt, dets, self.iou_thresholds, self.metric, image_ids=sorted(per_image))


# --------------------------------------------------------------------------------------------------------------
# Command line: python -m detpretrain evaluate
# --------------------------------------------------------------------------------------------------------------


def _load_json(path: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise DataError(path, "file not found" if not p.exists() else "not a file")
    try:
        with p.open("r", encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON: {err}") from None


def _to_json(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _fmt(value: float) -> str:
    return "  n/a" if math.isnan(value) else f"{value:5.1f}"


def format_metrics_table(metrics: dict, per_class: bool = True) -> str:
    """The metrics dict of :func:`evaluate_detections` as a plain-text table (rows: classes, columns: IoU)."""
    thresholds = metrics["iou_thresholds"]
    names = list(metrics["per_class_AP"])
    width = max([len("mAP")] + [len(n) for n in names])
    head = f"{'class':<{width}}  {'n_gt':>6}  " + " ".join(f"{t:>5.2f}" for t in thresholds)
    lines = [head, "-" * len(head)]
    if per_class:
        for name in names:
            row = " ".join(_fmt(v) for v in metrics["per_class_AP"][name])
            lines.append(f"{name:<{width}}  {metrics['num_gt'][name]:>6}  {row}")
        lines.append("-" * len(head))
    total = sum(metrics["num_gt"].values())
    lines.append(f"{'mAP':<{width}}  {total:>6}  " + " ".join(_fmt(v) for v in metrics["mAP"]))
    return "\n".join(lines)


def evaluate_command(
    gt: str,
    dt: str,
    *,
    iou: str,
    metric: str,
    out: str | None,
    stream: TextIO | None = None,
    per_class: bool = True,
) -> int:
    """``python -m detpretrain evaluate``: print AP per class and mAP per IoU threshold; optionally write json.

    Args:
        gt: path of a COCO ground-truth json (``"ignore": 1`` / ``"iscrowd": 1`` = difficult).
        dt: path of a COCO results json (list of ``{image_id, category_id, bbox, score}``).
        iou: threshold spec for :func:`parse_iou_thresholds`, e.g. ``"0.1:0.9:0.1"``.
        metric: ``"voc07"``, ``"voc"`` or ``"coco"``.
        out: where to write the metrics json (NaN written as null), or None.
        stream: where the table goes (default: ``sys.stdout``).
        per_class: print one row per class, not only the mAP row.

    Returns:
        0 on success.

    Raises:
        DataError: a missing or unparsable file, or bad content (the message names the file and the problem).
        ConfigError: a bad ``iou`` spec or ``metric``.
    """
    stream = sys.stdout if stream is None else stream
    try:
        thresholds = parse_iou_thresholds(iou)
    except ValueError as err:
        raise ConfigError(f"--iou: {err}") from None
    if metric not in METRICS:
        raise ConfigError(f"--metric: unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    gt_data = _load_json(gt)
    dt_data = _load_json(dt)
    parsed_gt = _parse_ground_truth(gt_data, gt)
    parsed_dt = _parse_detections(dt_data, parsed_gt, dt)
    metrics = _evaluate_parsed(parsed_gt, parsed_dt, thresholds, metric, None)
    n_difficult = int(parsed_gt.difficult.sum())
    print(
        f"{_METRIC_NAMES[metric]} in percent, columns = IoU thresholds | {len(parsed_gt.image_ids)} images, "
        f"{len(parsed_gt.image) - n_difficult} GT boxes (+{n_difficult} difficult), {len(parsed_dt.scores)} detections",
        file=stream,
    )
    print(format_metrics_table(metrics, per_class=per_class), file=stream)
    if out is not None:
        atomic_write_json(out, _to_json(metrics), allow_nan=False)
        print(f"wrote {out}", file=stream)
    return 0
