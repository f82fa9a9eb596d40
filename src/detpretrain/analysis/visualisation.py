"""Numbers behind the pictures of Li et al. 2019, appendix 6.1-6.2: activation maps (Figure 4), mask-out maps
(Figure 5) and qualitative detections (Figure 8).

* **Activation maps (Figure 4).** The Conv5 (``layer4``) map of a backbone, averaged over channels (the maps are
  post-ReLU, so this is the mean activation at each position) and bilinearly upsampled to the input image:
  :func:`activation_maps`. The paper: "the IMAGENET-CLS pre-trained activation map tend to focus on discriminative
  parts. On the other hand, OPENIMAGES pre-trained models emphasize on the entire spatial extent of the objects.
  Moreover, the latter exhibits an instance-level representation, especially when multiple objects are present".
  Our corpus records every instance's mask and its discriminative part's mask, so :func:`mass_shares` reports the
  share of activation mass on the part, on the rest of the object and outside, and :func:`instance_balance` how
  evenly the instances of a multi-instance image are activated.
* **Mask-out (Figure 5).** "We shift a 60x60 blank mask over the input image and measure the output confidence of
  the correct class", with the detection head replaced by a linear classifier: :func:`probe_head` turns the linear
  probe of :mod:`detpretrain.analysis.probes` into a torch head on the backbone, :func:`maskout_map` slides the
  blank square (the dataset mean, i.e. 0 after normalisation) and :func:`maskout_drops` measures how much the
  probability drops when the square's centre lies on the part vs. on the rest of the object.
  captum's ``Occlusion`` was considered: it returns a per-pixel *average* of output differences over every window
  covering the pixel, not the probability at each mask position that Figure 5 plots, so the map is computed here
  directly and tested against a one-position-at-a-time loop.
* **Qualitative detections (Figure 8).** :func:`localisation_cases` picks, by rule, the ground-truth objects where
  the detection-pre-trained detector localises better (largest IoU difference of the best same-class detection
  above a score threshold), optionally restricted to occluded objects.

Shapes: images [B, 3, H, W] (normalised floats), maps [B, H, W]; masks are boolean [H, W]; pixels throughout.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from detpretrain.errors import DataError

#: the paper's mask-out square (60 px) at its input scale (224 px short side for classification)
PAPER_MASK_PX, PAPER_INPUT_PX = 60, 224


def scaled_mask_size(image_size: int) -> int:
    """The paper's 60x60 square at ``image_size`` pixels: ``round(60 * image_size / 224)`` (34 px at 128 px)."""
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return max(1, round(PAPER_MASK_PX * image_size / PAPER_INPUT_PX))


#: output stride (input pixels per feature cell) of each ResNet stage: Conv2 ... Conv5
LAYER_STRIDES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}


@torch.no_grad()
def activation_maps(backbone: torch.nn.Module, images: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
    """Channel-mean activation of each image at ``layer`` (default Conv5 = ``layer4``), upsampled (bilinear) to the
    input size (Figure 4).

    Args:
        backbone: a torchvision ResNet (``layer4`` = Conv5).
        images: [B, 3, H, W] normalised.
        layer: one of :data:`LAYER_STRIDES` (``layer3``: Conv4, stride 16 -- twice as many cells per side).

    Returns:
        [B, H, W] float, non-negative (the stages' outputs are post-ReLU).
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    if images.ndim != 4:
        raise ValueError(f"images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if layer not in LAYER_STRIDES:
        raise ValueError(f"layer must be one of {list(LAYER_STRIDES)}, got {layer!r}")
    extractor = create_feature_extractor(backbone.eval(), return_nodes={layer: "map"})
    fmap = extractor(images)["map"].mean(dim=1, keepdim=True)
    return F.interpolate(fmap, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def mass_shares(activation, object_mask, part_mask=None) -> dict:
    """Share of activation mass on the discriminative part, on the rest of the object(s) and outside (Figure 4).

    Args:
        activation: [H, W] non-negative map.
        object_mask: [H, W] bool, union of the instances' visible masks.
        part_mask: [H, W] bool, union of the visible parts (subset of the object; None or empty: no part).

    Returns:
        ``{"part", "object_rest", "outside"}`` mass shares (sum 1) and ``{"part_area", "object_rest_area",
        "outside_area"}`` the same regions' shares of the image area (what a uniform map would give).

    Raises:
        ValueError: shapes differ, negative activation, or an all-zero map (no mass to share).
    """
    a = np.asarray(activation, dtype=np.float64)
    obj = np.asarray(object_mask, dtype=bool)
    part = np.zeros_like(obj) if part_mask is None else np.asarray(part_mask, dtype=bool)
    if a.shape != obj.shape or part.shape != obj.shape:
        raise ValueError(f"activation {a.shape}, object mask {obj.shape} and part mask {part.shape} differ")
    part = part & obj
    if (a < 0).any():
        raise ValueError("activation map has negative values; expected a post-ReLU map")
    total = a.sum()
    if total <= 0:
        raise ValueError("activation map is all zero; no mass to share")
    rest = obj & ~part
    out = ~obj
    n = a.size
    return {"part": a[part].sum() / total, "object_rest": a[rest].sum() / total, "outside": a[out].sum() / total,
            "part_area": part.sum() / n, "object_rest_area": rest.sum() / n, "outside_area": out.sum() / n}


def instance_balance(activation, instance_masks) -> float:
    """How evenly the instances of one image are activated: min over instances of the mean activation inside the
    instance's visible mask, divided by the max (1 = every instance equally, near 0 = one instance dominates).

    Raises:
        ValueError: fewer than two non-empty instance masks, or a mask of another shape.
    """
    a = np.asarray(activation, dtype=np.float64)
    means = []
    for m in instance_masks:
        m = np.asarray(m, dtype=bool)
        if m.shape != a.shape:
            raise ValueError(f"instance mask {m.shape} differs from the map {a.shape}")
        if m.any():
            means.append(a[m].mean())
    if len(means) < 2:
        raise ValueError("instance balance needs at least two non-empty instance masks")
    return float(min(means) / max(means)) if max(means) > 0 else float("nan")


def corpus_objects(root, file_names) -> list[dict]:
    """Instance and part masks of synthetic-corpus images (``annotations.json`` of an ImageFolder role).

    Args:
        root: the corpus root.
        file_names: image paths relative to ``root`` (``train/car/train_000000.jpg``), in the order wanted.

    Returns:
        one dict per image: ``{"file_name", "label", "instances": [bool [H, W]], "parts": [bool [H, W] or None],
        "object": bool [H, W] union, "part": bool [H, W] union, "decoys": [bool [H, W] or None], "decoy": bool
        [H, W] union}`` (masks decoded with pycocotools; a decoy exists only under ``cue="part+decoy"``, a part
        not under ``cue="distributed"``).

    Raises:
        DataError: unreadable annotations or an image not listed in them.
    """
    from pycocotools import mask as mask_utils

    from detpretrain.experiments.features import corpus_annotations

    path = Path(root) / "annotations.json"
    images, anns = corpus_annotations(root)
    out = []
    for name in file_names:
        if name not in images:
            raise DataError(path, f"image {name} is not listed")
        img = images[name]
        h, w = img["height"], img["width"]
        instances, parts, decoys = [], [], []
        for a in anns.get(img["id"], []):
            instances.append(mask_utils.decode(a["segmentation"]).astype(bool))
            parts.append(mask_utils.decode(a["part_segmentation"]).astype(bool) if "part_segmentation" in a else None)
            decoys.append(mask_utils.decode(a["decoy_segmentation"]).astype(bool) if "decoy_segmentation" in a
                          else None)
        union = np.zeros((h, w), bool)
        for m in instances:
            union |= m
        out.append({"file_name": name, "label": img.get("label"), "instances": instances, "parts": parts,
                    "object": union, "part": _union(parts, (h, w)), "decoys": decoys, "decoy": _union(decoys, (h, w))})
    return out


def _union(masks, shape) -> np.ndarray:
    out = np.zeros(shape, bool)
    for m in masks:
        if m is not None:
            out |= m
    return out


class ProbeHead(torch.nn.Module):
    """Backbone -> average-pooled Conv5 -> standardisation -> linear layer -> softmax: the linear probe as a torch
    classifier (the paper replaces the detection head by a linear classifier for Figure 5)."""

    def __init__(self, backbone: torch.nn.Module, mean, scale, weight, bias):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        self.features = create_feature_extractor(backbone.eval(), return_nodes={"layer4": "conv5"})
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
            self.linear.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def scores(self, pooled: torch.Tensor) -> torch.Tensor:
        """[B, C5] average-pooled Conv5 -> [B, num_classes] class scores (logits, before the softmax)."""
        return self.linear((pooled - self.mean) / self.scale)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] normalised -> [B, num_classes] class probabilities."""
        return torch.softmax(self.scores(self.features(images)["conv5"].mean(dim=(2, 3))), dim=1)


def probe_head(backbone: torch.nn.Module, pipeline) -> ProbeHead:
    """:class:`ProbeHead` from a fitted scikit-learn ``StandardScaler -> LogisticRegression`` pipeline (the ``model``
    of :func:`detpretrain.analysis.probes.linear_probe`); multinomial, so softmax of the linear scores equals
    ``predict_proba``.

    Raises:
        ValueError: not a two-step scaler + logistic-regression pipeline, or a binary problem (one score column).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    steps = [s for _, s in getattr(pipeline, "steps", [])]
    if len(steps) != 2 or not isinstance(steps[0], StandardScaler) or not isinstance(steps[1], LogisticRegression):
        raise ValueError("expected a StandardScaler -> LogisticRegression pipeline (probes.linear_probe's model)")
    scaler, clf = steps
    if clf.coef_.shape[0] < 2:
        raise ValueError("a binary probe has one score column; mask-out needs a multinomial probe (>= 3 classes)")
    return ProbeHead(backbone, scaler.mean_, scaler.scale_, clf.coef_, clf.intercept_).eval()


def mask_positions(size: int, window: int, stride: int) -> list[int]:
    """Top-left offsets of a ``window``-px square sliding over ``size`` px with ``stride``, the last one flush with
    the border (so every pixel is covered)."""
    if window > size or window < 1 or stride < 1:
        raise ValueError(f"window {window} must be in [1, {size}] and stride {stride} positive")
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


@torch.no_grad()
def maskout_map(classifier, image: torch.Tensor, label: int, *, window: int, stride: int,
                batch_size: int = 64) -> dict:
    """Probability of the correct class with a blank square at each position (Figure 5).

    Args:
        classifier: maps [B, 3, H, W] normalised images to [B, C] probabilities (e.g. :class:`ProbeHead`).
        image: [3, H, W] normalised; the blank square is filled with 0 (the dataset mean after normalisation).
        label: the correct class index.
        window, stride: square side and step in pixels.

    Returns:
        ``{"prob": [ny, nx] array, "ys", "xs": top-left offsets, "centres_y", "centres_x": centres (px),
        "clean": probability without a mask}``.
    """
    if image.ndim != 3:
        raise ValueError(f"image must be [3, H, W], got {tuple(image.shape)}")
    _, h, w = image.shape
    ys, xs = mask_positions(h, window, stride), mask_positions(w, window, stride)
    batch, probs = [], []
    for y in ys:
        for x in xs:
            masked = image.clone()
            masked[:, y:y + window, x:x + window] = 0
            batch.append(masked)
            if len(batch) == batch_size:
                probs.append(classifier(torch.stack(batch))[:, label])
                batch = []
    if batch:
        probs.append(classifier(torch.stack(batch))[:, label])
    prob = torch.cat(probs).reshape(len(ys), len(xs)).cpu().numpy()
    clean = float(classifier(image[None])[0, label])
    half = (window - 1) / 2
    return {"prob": prob, "ys": ys, "xs": xs, "centres_y": np.asarray(ys) + half, "centres_x": np.asarray(xs) + half,
            "clean": clean}


def maskout_drops(result: dict, object_mask, part_mask) -> dict:
    """How much the correct-class probability drops when the square's centre lies on the part vs. on the rest of
    the object (Figure 5's reading), from a :func:`maskout_map` result.

    A position belongs to the region its centre pixel falls in (``floor`` of the centre). Drops are
    ``clean - prob``, in probability units (0-1), averaged over the positions of each region.

    Returns:
        ``{"clean", "drop_part", "drop_object_rest", "drop_outside", "positions_part", "positions_object_rest",
        "min_prob"}`` (NaN for a region without positions).
    """
    obj = np.asarray(object_mask, dtype=bool)
    part = np.zeros_like(obj) if part_mask is None else np.asarray(part_mask, dtype=bool) & obj
    cy = np.floor(result["centres_y"]).astype(int)
    cx = np.floor(result["centres_x"]).astype(int)
    grid_part = part[np.ix_(cy, cx)]
    grid_obj = obj[np.ix_(cy, cx)] & ~grid_part
    drop = result["clean"] - result["prob"]

    def mean(m):
        return float(drop[m].mean()) if m.any() else float("nan")

    return {"clean": result["clean"], "drop_part": mean(grid_part), "drop_object_rest": mean(grid_obj),
            "drop_outside": mean(~(grid_part | grid_obj)), "positions_part": int(grid_part.sum()),
            "positions_object_rest": int(grid_obj.sum()), "min_prob": float(result["prob"].min())}


def box_iou_matrix(a, b) -> np.ndarray:
    """IoU of XYXY boxes [N, 4] x [M, 4] (pixels) with torchvision's ``box_iou``."""
    from torchvision.ops import box_iou

    a = torch.as_tensor(np.asarray(a, dtype=np.float32).reshape(-1, 4))
    b = torch.as_tensor(np.asarray(b, dtype=np.float32).reshape(-1, 4))
    return box_iou(a, b).numpy()


def best_iou_per_object(gt_boxes, gt_labels, det_boxes, det_labels, det_scores, score_thresh: float = 0.5):
    """For each ground-truth object, the IoU of the best-overlapping detection of its class scoring at least
    ``score_thresh`` (0 when there is none): [N] floats. Boxes XYXY pixels."""
    gt_boxes = np.asarray(gt_boxes, dtype=np.float32).reshape(-1, 4)
    keep = np.asarray(det_scores) >= score_thresh
    det_boxes = np.asarray(det_boxes, dtype=np.float32).reshape(-1, 4)[keep]
    det_labels = np.asarray(det_labels)[keep]
    out = np.zeros(len(gt_boxes))
    if len(gt_boxes) and len(det_boxes):
        iou = box_iou_matrix(gt_boxes, det_boxes)
        same = np.asarray(gt_labels)[:, None] == det_labels[None, :]
        out = np.where(same, iou, 0.0).max(axis=1)
    return out


def localisation_cases(objects: pd.DataFrame, a: str, b: str, n: int = 4, occluded_below: float | None = None,
                       min_gain: float = 0.0) -> pd.DataFrame:
    """Figure 8's cases chosen by rule: objects where detector ``b`` localises better than ``a``.

    Args:
        objects: one row per ground-truth object with columns ``image``, ``iou_<a>``, ``iou_<b>`` (best same-class
            IoU, :func:`best_iou_per_object`) and, for the occlusion cases, ``visible_fraction``.
        occluded_below: keep only objects whose visible fraction is below this (the occlusion panel).
        min_gain: keep only objects with ``iou_b - iou_a`` above this.

    Returns:
        the ``n`` rows with the largest ``iou_b - iou_a``, at most one per image (column ``gain`` added).
    """
    df = objects.copy()
    df["gain"] = df[f"iou_{b}"] - df[f"iou_{a}"]
    if occluded_below is not None:
        df = df[df["visible_fraction"] < occluded_below]
    df = df[df["gain"] > min_gain].sort_values(["gain", "image"], ascending=[False, True], kind="stable")
    return df.drop_duplicates("image").head(n)


@torch.no_grad()
def detection_objects(models: dict, dataset, *, score_thresh: float = 0.5, device: str = "cpu",
                      batch_size: int = 4) -> tuple[pd.DataFrame, dict]:
    """Run each detector over ``dataset`` and score every ground-truth object by its best same-class IoU (Figure 8).

    Args:
        models: ``{name: torchvision detector}`` (e.g. the detection chapter's fine-tuned runs).
        dataset: a detection dataset yielding ``(image [3, H, W] in [0, 1], target)`` with ``boxes`` (XYXY px),
            ``labels`` and optionally ``visible_fraction``, ``difficult``.

    Returns:
        ``(objects, predictions)``: one row per object (``image`` index, ``object`` index, ``label``, ``box``,
        ``visible_fraction`` (NaN if unknown), ``iou_<name>`` per detector) and ``{name: [per-image dict of
        boxes [K, 4], labels [K], scores [K] numpy]}`` for drawing.
    """
    from detpretrain.engine import detect

    predictions: dict[str, list] = {}
    targets_all: list[dict] = []
    for name, model in models.items():
        targets_all, predictions[name] = [], []
        for targets, outputs in detect(model.to(device), dataset, device, batch_size=batch_size):
            targets_all += targets
            predictions[name] += [{k: v.numpy() for k, v in o.items()} for o in outputs]
    rows = []
    for i, t in enumerate(targets_all):
        boxes, labels = t["boxes"].numpy(), t["labels"].numpy()
        vis = t["visible_fraction"].numpy() if "visible_fraction" in t else np.full(len(boxes), np.nan)
        ious = {name: best_iou_per_object(boxes, labels, p[i]["boxes"], p[i]["labels"], p[i]["scores"], score_thresh)
                for name, p in predictions.items()}
        for k in range(len(boxes)):
            rows.append({"image": i, "object": k, "label": int(labels[k]), "box": boxes[k].tolist(),
                         "visible_fraction": float(vis[k]), **{f"iou_{n}": float(v[k]) for n, v in ious.items()}})
    return pd.DataFrame(rows), predictions


# ---- the chapter's measurements over many images (Figures 4, 5, 8) ---------------------------------------------------


def split_objects(data, split: str = "test") -> list[dict]:
    """:func:`corpus_objects` of every image of a synthetic :class:`~detpretrain.experiments.features.ProbeData`
    split, in dataset order.

    Raises:
        DataError: ``data`` has no corpus root (a real dataset) or an image is not in ``annotations.json``.
    """
    if data.root is None:
        raise DataError(getattr(data, "name", "dataset"), "instance and part masks need a synthetic corpus")
    dataset = data.split(split)
    names = [Path(dataset.image_path(i)).relative_to(data.root).as_posix() for i in range(len(dataset))]
    return corpus_objects(data.root, names)


def enrichment(mass, area):
    """Mass share over area share of a region (Figure 4): how much more of the activation a region holds than a
    uniform map would put on it (1 = as uniform, > 1 = favoured). NaN where the region is empty (area 0).

    Args:
        mass, area: shares (0-1), scalars or arrays of the same shape.
    """
    mass, area = np.asarray(mass, dtype=np.float64), np.asarray(area, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, mass / np.where(area > 0, area, 1.0), np.nan)


@torch.no_grad()
def activation_frame(backbones: dict, dataset, objects: list[dict], *, n_images: int, device="cpu",
                     batch_size: int = 32, keep_maps: int = 12) -> tuple[pd.DataFrame, dict]:
    """Figure 4 over the first ``n_images`` images: per backbone and image, :func:`mass_shares` of the Conv5 map,
    the part and rest-of-object :func:`enrichment`, and :func:`instance_balance` where two or more instances are
    visible.

    Args:
        backbones: ``{name: ResNet}`` (in eval mode on ``device``).
        dataset: yields ``(normalised image [3, H, W], label)`` (a ProbeData split).
        objects: :func:`split_objects` of the same split.
        keep_maps: the maps of images ``0 .. keep_maps - 1`` are returned for drawing.

    Returns:
        ``(frame, maps)``: one row per (backbone, image) with ``backbone``, ``image``, ``instances``, ``has_part``,
        the six shares of :func:`mass_shares`, ``instance_balance`` (NaN with fewer than two visible instances),
        ``part_enrichment`` (NaN without a visible part) and ``object_rest_enrichment``; ``maps`` = ``{(name,
        image): [H, W] array}``.
    """
    rows, maps = [], {}
    for name, backbone in backbones.items():
        for start in range(0, n_images, batch_size):
            idx = list(range(start, min(start + batch_size, n_images)))
            images = torch.stack([dataset[i][0] for i in idx]).to(device)
            for i, m in zip(idx, activation_maps(backbone, images).cpu().numpy()):
                o = objects[i]
                if i < keep_maps:
                    maps[(name, i)] = m
                row = {"backbone": name, "image": i, "instances": len(o["instances"]),
                       "has_part": bool(o["part"].any()), **mass_shares(m, o["object"], o["part"])}
                if len([x for x in o["instances"] if x.any()]) >= 2:
                    row["instance_balance"] = instance_balance(m, o["instances"])
                rows.append(row)
    frame = pd.DataFrame(rows)
    if "instance_balance" not in frame:
        frame["instance_balance"] = np.nan
    frame["part_enrichment"] = enrichment(frame["part"], frame["part_area"])
    frame["object_rest_enrichment"] = enrichment(frame["object_rest"], frame["object_rest_area"])
    return frame, maps


def activation_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Means over images per backbone of :func:`activation_frame`'s columns (``images`` = their count)."""
    return frame.groupby("backbone").agg(
        images=("image", "size"), part_mass=("part", "mean"), part_area=("part_area", "mean"),
        part_enrichment=("part_enrichment", "mean"), object_rest_mass=("object_rest", "mean"),
        object_rest_area=("object_rest_area", "mean"), object_rest_enrichment=("object_rest_enrichment", "mean"),
        outside_mass=("outside", "mean"), instance_balance=("instance_balance", "mean"))


def image_verdict(differences, unit: str = "test image"):
    """The verdict on per-image paired differences of ONE pair of networks (one backbone per pre-training): the
    t-interval over the images, labelled conditional on these particular networks (``replicated=False``;
    :func:`~detpretrain.analysis.stats.verdict` with a single group)."""
    from detpretrain.analysis.stats import verdict

    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    return verdict(d, groups=np.zeros(len(d), int), unit=unit)


def paired_by_image(frame: pd.DataFrame, column: str, a: str, b: str, key: str = "backbone"):
    """Per-image paired difference ``a - b`` of ``column`` (images where either is missing dropped) and its verdict
    (:func:`image_verdict`)."""
    wide = frame.pivot(index="image", columns=key, values=column).dropna()
    return image_verdict(wide[a] - wide[b] if a in wide and b in wide else [])


def activation_verdicts(frame: pd.DataFrame, names: dict, classification: str = "imagenet-cls",
                        detection: str = "detection") -> pd.DataFrame:
    """Figure 4's three readings, each a paired difference over images whose positive sign is the paper's
    direction: the classifier's part enrichment exceeds the detector's; the detector puts a larger share of its
    mass on the rest of the object; the detector activates the instances of multi-instance images more evenly.

    Args:
        frame: :func:`activation_frame`'s frame.
        names: ``{backbone key: name shown}`` (e.g. the paper roles).

    Returns:
        one row per claim: ``claim (positive = the paper's direction)``, ``mean paired difference``, ``95% CI low``,
        ``95% CI high``, ``images``, ``label (these two networks)``: the interval is over images of ONE pair of
        backbones (one pre-training each), so the label is about these networks, not about the pre-trainings; the
        chapter's claims over pre-training replicate pairs carry the verdicts.
    """
    c, d = names[classification], names[detection]
    checks = {
        f"part enrichment, {c} minus {d}": paired_by_image(frame, "part_enrichment", classification, detection),
        f"rest-of-object mass share, {d} minus {c}": paired_by_image(frame, "object_rest", detection, classification),
        f"instance balance (multi-instance images), {d} minus {c}":
            paired_by_image(frame, "instance_balance", detection, classification),
    }
    return pd.DataFrame([{"claim (positive = the paper's direction)": k, "mean paired difference": v.estimate,
                          "95% CI low": v.ci_low, "95% CI high": v.ci_high, "images": v.n,
                          "label (these two networks)": v.label}
                         for k, v in checks.items()])


def example_images(objects: list[dict], *, first: int = 12, single: int = 3, multi: int = 2) -> list[int]:
    """Figure 4's panels, by rule: among the first ``first`` images, the first ``single`` with one instance and a
    visible part, then the first ``multi`` with two or more instances."""
    n = min(first, len(objects))
    shown = [i for i in range(n) if objects[i]["part"].any() and len(objects[i]["instances"]) == 1][:single]
    return shown + [i for i in range(n) if len(objects[i]["instances"]) >= 2][:multi]


def coco_val_available(root) -> bool:
    """Whether ``root`` is a COCO root with ``annotations/instances_val2017.json`` (the real-image check)."""
    return root is not None and (Path(root) / "annotations" / "instances_val2017.json").is_file()


@torch.no_grad()
def real_activation_frame(backbones: dict, root, *, n_images: int, min_size: int, device="cpu") -> pd.DataFrame:
    """Figure 4 on photographs: the share of each backbone's Conv5 activation mass on the annotated objects of COCO
    val images (the union of their instance masks; COCO has no part masks) and that union's share of the image.

    The images of ``<root>/val2017`` (:class:`~detpretrain.data.coco.CocoDetection` with masks; images without a
    mask are skipped) are resized so their short side is ``min_size`` px and normalised with ImageNet statistics.

    Args:
        backbones: ``{name: ResNet}`` on ``device``.
        n_images: the first ``n_images`` images of the annotation file are read.

    Returns:
        one row per (image, backbone): ``backbone``, ``image`` (index), ``object mass``, ``object area`` (shares
        0-1) and ``enrichment`` (:func:`enrichment`).

    Raises:
        DataError: not a COCO root with val2017 annotations (from the reader).
    """
    from torchvision.transforms import v2

    from detpretrain.data.builders import IMAGENET_MEAN, IMAGENET_STD
    from detpretrain.data.coco import CocoDetection

    root = Path(root)
    coco = CocoDetection(root / "val2017", root / "annotations" / "instances_val2017.json", with_masks=True)
    resize = v2.Resize(min_size, antialias=True)
    norm = v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    rows = []
    for i in range(min(n_images, len(coco))):
        image, target = coco[i]
        if "masks" not in target or len(target["masks"]) == 0:
            continue
        image, masks = resize(v2.functional.to_dtype(image, torch.float32, scale=True), target["masks"])
        union = masks.any(dim=0).numpy()
        for name, backbone in backbones.items():
            m = activation_maps(backbone, norm(image)[None].to(device))[0].cpu().numpy()
            s = mass_shares(m, union)
            rows.append({"backbone": name, "image": i, "object mass": s["object_rest"],
                         "object area": s["object_rest_area"]})
    frame = pd.DataFrame(rows, columns=["backbone", "image", "object mass", "object area"])
    frame["enrichment"] = enrichment(frame["object mass"], frame["object area"])
    return frame


def real_activation_verdict(frame: pd.DataFrame, better: str, worse: str) -> dict:
    """Does the detection backbone ``better`` put more of its mass on COCO objects than ``worse``? Paired over the
    images of :func:`real_activation_frame` (``backbone`` names as given there).

    Returns:
        ``{"verdict": Verdict, "images", "sentence"}``.
    """
    v = paired_by_image(frame, "object mass", better, worse)
    images = int(frame["image"].nunique()) if len(frame) else 0
    return {"verdict": v, "images": images,
            "sentence": f"Object mass share, detection minus classification backbone: "
                        f"{v.sentence('of the mass', digits=3)}."}


def probe_heads(backbones: dict, data, profile, *, store=None, device="cpu", log=print,
                corpus: dict | None = None) -> tuple[dict, dict]:
    """Figure 5's classifiers: for each backbone, the linear probe on its cached Conv5 features
    (:func:`detpretrain.analysis.probes.probe_features`) turned into a torch head (:func:`probe_head`).

    Returns:
        ``({name: ProbeHead on device}, {name: linear_probe result})``.
    """
    from detpretrain.analysis.probes import probe_features
    from detpretrain.experiments.features import backbone_features

    heads, probes = {}, {}
    for name, backbone in backbones.items():
        probes[name] = probe_features(backbone_features(name, data, profile, store=store, device=device, log=log,
                                                        corpus=corpus))
        heads[name] = probe_head(backbone, probes[name]["model"]).to(device)
    return heads, probes


def maskout_candidates(objects: list[dict], n: int) -> list[int]:
    """Figure 5's images: the first ``n`` with a single instance and a visible part."""
    return [i for i, o in enumerate(objects) if len(o["instances"]) == 1 and o["part"].any()][:n]


def maskout_frame(heads: dict, dataset, objects: list[dict], images: list[int], *, window: int, stride: int,
                  device="cpu", keep_maps: int = 6, cover: float = 0.5) -> tuple[pd.DataFrame, dict]:
    """Figure 5 over ``images``: :func:`maskout_map` of every head on every image, its :func:`maskout_drops` and
    its :func:`maskout_log_odds` (``cover``: the share of the part a square must cover to count as on it).

    Returns:
        ``(frame, maps)``: one row per (backbone, image) with ``backbone``, ``image``, ``correct`` (the head's
        top class on the clean image is the label), the drops, ``part minus rest`` (``drop_part -
        drop_object_rest``: how much more covering the part costs than covering the rest of the object;
        probability units) and the log-odds columns; ``maps`` = the first ``keep_maps`` maskout maps by
        ``(name, image)``.
    """
    rows, maps = [], {}
    for i in images:
        image, label = dataset[i]
        for name, head in heads.items():
            r = maskout_map(head, image.to(device), label, window=window, stride=stride)
            if len(maps) < keep_maps:
                maps[(name, i)] = r
            with torch.no_grad():
                correct = int(head(image[None].to(device))[0].argmax()) == int(label)
            o = objects[i]
            rows.append({"backbone": name, "image": i, "correct": correct,
                         **maskout_drops(r, o["object"], o["part"]),
                         **maskout_log_odds(r, o["object"], o["part"], window, cover)})
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["part minus rest"] = frame["drop_part"] - frame["drop_object_rest"]
    return frame, maps


def maskout_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Means over images per backbone of the clean probability, the drops, ``part minus rest`` and the minimum."""
    return frame.groupby("backbone")[["clean", "drop_part", "drop_object_rest", "drop_outside", "part minus rest",
                                      "min_prob"]].mean()


def maskout_verdict(frame: pd.DataFrame, names: dict, classification: str = "imagenet-cls",
                    detection: str = "detection") -> dict:
    """Figure 5's reading: covering the part (rather than the rest of the object) costs the classifier's probe more
    than the detector's, paired over images (``part minus rest``, :func:`paired_by_image`).

    Returns:
        ``{"verdict": Verdict, "sentence"}``.
    """
    wide = frame.pivot(index="image", columns="backbone", values="part minus rest").dropna()
    v = paired_by_image(frame, "part minus rest", classification, detection)
    sentence = (
        f"Covering the part rather than the rest of the object costs the {names[classification]} probe "
        f"{wide[classification].mean():.3f} and the {names[detection]} probe {wide[detection].mean():.3f} of "
        f"probability (mean over {len(wide)} images). The paper's reading (the classifier depends more on the part), "
        f"classifier minus detector: {v.sentence('of probability', digits=3)}.")
    return {"verdict": v, "sentence": sentence}


def load_detectors(result: dict, device="cpu", data_cache=None) -> tuple[dict, object, list[str]]:
    """The fine-tuned detectors of a detection result (one per pre-training: the runs of the seed of its first run)
    and their evaluation split (``data_cache``: the corpus cache of a synthetic target).

    Returns:
        ``(models {pretrain: detector}, evaluation dataset, class names)``.
    """
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.runs import load_run_model

    models, cfg, classes = {}, None, []
    first = result["runs"][0]["seed"]
    for r in result["runs"]:
        if r["seed"] == first:
            models[r["pretrain"]], cfg, classes = load_run_model(r["run"], device)
    data = build_detection_dataset(cfg.data, cfg.data.eval_split, train=False, cache=data_cache)
    return models, data, classes


def mean_best_iou(objects: pd.DataFrame, names: dict) -> pd.DataFrame:
    """Mean best same-class IoU over all objects, one column per detector (``iou_<key>`` of
    :func:`detection_objects`), named ``mean best IoU, <name>``."""
    cols = {f"iou_{k}": f"mean best IoU, {v}" for k, v in names.items()}
    return objects[list(cols)].mean().to_frame("all objects").T.rename(columns=cols)


def best_box(prediction: dict, box, label: int, score_thresh: float):
    """The detection of class ``label`` scoring at least ``score_thresh`` that overlaps ``box`` most (XYXY px), or
    None (Figure 8's drawn box)."""
    keep = (np.asarray(prediction["scores"]) >= score_thresh) & (np.asarray(prediction["labels"]) == label)
    if not keep.any():
        return None
    boxes = np.asarray(prediction["boxes"])[keep]
    return boxes[int(box_iou_matrix([box], boxes)[0].argmax())]


def localisation_verdict(objects: pd.DataFrame, a: str = "imagenet-cls", b: str = "detection",
                         occluded_below: float = 0.75) -> dict:
    """Figure 8's claim as a number: the best-IoU gain ``iou_b - iou_a`` over all objects, and over the objects
    less than ``occluded_below`` visible. The objects of one image share its rendering, so their gains are averaged
    per image and the interval is over the test images (:func:`image_verdict`: about these two detectors), as in
    :func:`paired_localisation`; ``better`` / ``worse`` count objects.

    Returns:
        ``{"all": Verdict, "occluded": Verdict or None (fewer than two images with such objects), "better",
        "worse", "sentence"}``.
    """
    gain = objects[f"iou_{b}"] - objects[f"iou_{a}"]
    per_image = gain.groupby(objects["image"]).mean()
    v = image_verdict(per_image)
    occluded = objects["visible_fraction"] < occluded_below
    occluded_images = gain[occluded].groupby(objects.loc[occluded, "image"]).mean()
    vo = image_verdict(occluded_images) if len(occluded_images) > 1 else None
    text = (f"Best IoU of the detection-pre-trained detector minus the other's, over all objects (their gains "
            "averaged per test image): "
            f"{v.sentence('IoU', digits=3)} (better for {int((gain > 0).sum())}, worse for {int((gain < 0).sum())} "
            "objects)")
    if vo is not None:
        text += f"; on the objects under {100 * occluded_below:.0f} % visible: {vo.sentence('IoU', digits=3)}"
    text += ". The panels above are the extreme cases of this distribution, chosen by the rule."
    return {"all": v, "occluded": vo, "better": int((gain > 0).sum()), "worse": int((gain < 0).sum()),
            "sentence": text}


def configuration_table(data, *, image_size: int, stride: int, dataset: str, score_thresh: float, seed: int):
    """The visualisations chapter's configuration: the corpus of Figures 4 and 5, the activation map, the mask-out
    square (:func:`scaled_mask_size` of ``image_size``) and stride, Figure 8's target, operating point and seed."""
    from detpretrain.chapter import settings_frame

    window = scaled_mask_size(image_size)
    return settings_frame([
        ("corpus (Figures 4, 5)", f"{data.describe}, test split, {len(data.test)} images"),
        ("activation map", "channel mean of Conv5 (layer4), bilinear to the image"),
        ("mask-out square", f"{window} px = 60 px x {image_size}/224, stride {stride} px, filled with the dataset mean"),
        ("Figure 8 target", dataset), ("Figure 8 operating point", f"score >= {score_thresh}"),
        ("seed of Figure 8", seed)])


# ---- issue 18: measurements that resolve their quantity (Figures 4, 5, 8) --------------------------------------------
#
# * Figure 4 at 128 px: Conv5 (stride 32) is a 4 x 4 map, and a part of 5-15 % of an object spans less than one of its
#   cells, so "the map favours the part" cannot be resolved there. :func:`cells_covered` says how many cells a region
#   spans at a stride; the measurement is made at ``layer3`` (stride 16) and on the images whose part spans at least
#   one cell, with a class-specific map (:func:`grad_cam` of the probe's correct class) beside the channel mean, and
#   the decoy's enrichment beside the part's (:func:`region_enrichment`).
# * Figure 5: a position is "on the part" by the fraction of the part the square covers (:func:`mask_coverage`), not
#   by where its centre falls, and drops are in log-odds on correctly classified images (:func:`maskout_log_odds`):
#   a probability that starts at 0.99 and one that starts at 0.4 cannot drop by comparable amounts.
# * Figure 8: IoU compared only on objects that both detectors detect (:func:`paired_localisation`), so a miss (IoU 0
#   in :func:`best_iou_per_object`) does not mix recall into localisation.


def cells_covered(mask, stride: int) -> float:
    """How many feature cells a region spans on a map of output ``stride`` (px per cell): its area in pixels over
    ``stride ** 2`` (Figure 4). A region under one cell is below the map's resolution: its mass share then measures
    the neighbourhood, not the region.

    Raises:
        ValueError: a stride below 1.
    """
    if stride < 1:
        raise ValueError(f"stride must be a positive number of pixels, got {stride}")
    return float(np.count_nonzero(np.asarray(mask, dtype=bool))) / float(stride) ** 2


def region_enrichment(activation, regions: dict) -> dict:
    """Mass share over area share (:func:`enrichment`) of each region of one map (Figure 4).

    Args:
        activation: [H, W] non-negative map.
        regions: ``{name: bool [H, W]}``; regions may overlap (each is measured on its own pixels).

    Returns:
        ``{name: enrichment}`` (1 = what a uniform map gives, NaN for an empty region).

    Raises:
        ValueError: a mask of another shape, negative values, or an all-zero map.
    """
    a = np.asarray(activation, dtype=np.float64)
    if (a < 0).any():
        raise ValueError("activation map has negative values; expected a non-negative map")
    total = a.sum()
    if total <= 0:
        raise ValueError("activation map is all zero; no mass to share")
    out = {}
    for name, m in regions.items():
        m = np.asarray(m, dtype=bool)
        if m.shape != a.shape:
            raise ValueError(f"region {name!r} has shape {m.shape}, the map {a.shape}")
        out[name] = float(enrichment(a[m].sum() / total, m.mean()))
    return out


#: the share of an object's pixels whose map mass :func:`object_concentration` measures (the top quarter)
CONCENTRATION_TOP = 0.25


def object_concentration(activation, object_mask, top: float = CONCENTRATION_TOP) -> float:
    """How concentrated a map is inside an object, with no part needed (Figure 4 under any cue, issue 18): the share
    of the object's map mass held by its ``top`` fraction of pixels ranked by the map (``ceil(top * pixels)``
    pixels). A map uniform over the object gives ``top`` (up to rounding), one that puts all the object's mass on a
    few pixels gives 1; "focus on a discriminative part" predicts a higher value than "the entire extent".

    Args:
        activation: [H, W] non-negative map; object_mask: bool [H, W].

    Returns:
        the share in [top, 1]; NaN for an empty object or one without map mass.

    Raises:
        ValueError: a mask of another shape, a negative map value, or ``top`` outside (0, 1].
    """
    a = np.asarray(activation, dtype=np.float64)
    m = np.asarray(object_mask, dtype=bool)
    if m.shape != a.shape:
        raise ValueError(f"object mask has shape {m.shape}, the map {a.shape}")
    if (a < 0).any():
        raise ValueError("activation map has negative values; expected a non-negative map")
    if not 0 < top <= 1:
        raise ValueError(f"top must be a fraction in (0, 1], got {top}")
    inside = np.sort(a[m])[::-1]
    if inside.size == 0 or inside.sum() <= 0:
        return math.nan
    return float(inside[:math.ceil(top * inside.size)].sum() / inside.sum())


def _stages(backbone: torch.nn.Module, images: torch.Tensor, layer: str):
    """Forward a torchvision ResNet to average-pooled Conv5, cutting the graph at ``layer``: returns ``(A, pooled)``
    with ``A`` [B, C, h, w] the stage's output as a leaf that requires grad, ``pooled`` [B, C5] computed from it."""
    x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(images))))
    leaf = None
    for name in LAYER_STRIDES:
        x = getattr(backbone, name)(x)
        if name == layer:
            leaf = x.detach().requires_grad_(True)
            x = leaf
    return leaf, x.mean(dim=(2, 3))


def grad_cam(backbone: torch.nn.Module, head: ProbeHead, images: torch.Tensor, labels, layer: str = "layer4"):
    """Grad-CAM (Selvaraju et al. 2017) of the probe's class score at ``layer``, upsampled to the input (Figure 4's
    class-specific map).

    For image b with class ``labels[b]``: ``alpha_k = mean_{x,y} d s_c / d A_k(x, y)`` with ``s_c`` the probe's
    score (logit) of that class and ``A`` the stage's output; the map is ``ReLU(sum_k alpha_k A_k)``, bilinear to
    [H, W]. At ``layer4`` with the linear probe on average-pooled Conv5 this is CAM (Zhou et al. 2016):
    ``ReLU(sum_k w_ck / s_k * A_k) / (h w)``, with ``w`` the probe's weights and ``s`` its feature scales.

    Args:
        backbone: the torchvision ResNet the probe was fitted on (eval mode).
        head: :class:`ProbeHead` of that backbone (:func:`probe_head`).
        images: [B, 3, H, W] normalised.
        labels: [B] class indices (the correct classes).
        layer: one of :data:`LAYER_STRIDES`.

    Returns:
        [B, H, W] float tensor, non-negative (all zero where no position supports the class).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if layer not in LAYER_STRIDES:
        raise ValueError(f"layer must be one of {list(LAYER_STRIDES)}, got {layer!r}")
    labels = torch.as_tensor(labels, dtype=torch.long, device=images.device).reshape(-1)
    if labels.numel() != images.shape[0]:
        raise ValueError(f"{labels.numel()} labels for {images.shape[0]} images")
    with torch.enable_grad():
        leaf, pooled = _stages(backbone.eval(), images, layer)
        score = head.eval().scores(pooled).gather(1, labels[:, None]).sum()
        (grad,) = torch.autograd.grad(score, leaf)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * leaf.detach()).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=images.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


#: Figure 4's regions: the visible part, the visible decoy outside the part, the rest of the objects, outside
FIG4_REGIONS = ("part", "decoy", "object_rest", "outside")


def figure4_regions(obj: dict) -> dict:
    """The disjoint regions of one image of :func:`corpus_objects`: ``part`` (on an object), ``decoy`` (on an object,
    off the part), ``object_rest`` and ``outside``; ``{name: bool [H, W]}``."""
    objm = obj["object"]
    part = obj["part"] & objm
    decoy = obj.get("decoy", np.zeros_like(objm)) & objm & ~part
    return {"part": part, "decoy": decoy, "object_rest": objm & ~part & ~decoy, "outside": ~objm}


def resolved_activation_frame(backbones: dict, dataset, objects: list[dict], *, n_images: int, layer: str = "layer3",
                              heads: dict | None = None, device="cpu", batch_size: int = 32) -> pd.DataFrame:
    """Figure 4 at a resolving layer: per backbone, map kind and image, the :func:`region_enrichment` of
    :func:`figure4_regions` and how many cells of ``layer`` the part spans (:func:`cells_covered`).

    Args:
        backbones: ``{name: ResNet}`` in eval mode on ``device`` (include an untrained one for the floor).
        dataset: yields ``(normalised image [3, H, W], label)``.
        objects: :func:`split_objects` of the same split.
        layer: the stage measured (``layer3``: stride 16).
        heads: ``{name: ProbeHead}``; where a backbone has one, the :func:`grad_cam` of the correct class is
            measured beside the channel mean (:func:`activation_maps`).

    Returns:
        one row per (backbone, map, image): ``backbone``, ``map`` (``channel mean`` | ``Grad-CAM``), ``image``,
        ``layer``, ``part_cells``, ``decoy_cells``, ``object_cells``, ``object_concentration``
        (:func:`object_concentration` on the union of the objects), ``<region>_enrichment`` for each of
        :data:`FIG4_REGIONS` (NaN for an empty region, all NaN for an all-zero Grad-CAM).
    """
    stride = LAYER_STRIDES[layer]
    rows = []
    for name, backbone in backbones.items():
        for start in range(0, n_images, batch_size):
            idx = list(range(start, min(start + batch_size, n_images)))
            batch = [dataset[i] for i in idx]
            images = torch.stack([b[0] for b in batch]).to(device)
            kinds = {"channel mean": activation_maps(backbone, images, layer)}
            if heads and name in heads:
                kinds["Grad-CAM"] = grad_cam(backbone, heads[name], images, [int(b[1]) for b in batch], layer)
            for kind, maps in kinds.items():
                for i, m in zip(idx, maps.detach().cpu().numpy()):
                    regions = figure4_regions(objects[i])
                    on_objects = ~regions["outside"]
                    row = {"backbone": name, "map": kind, "image": i, "layer": layer,
                           "part_cells": cells_covered(regions["part"], stride),
                           "decoy_cells": cells_covered(regions["decoy"], stride),
                           "object_cells": cells_covered(on_objects, stride),
                           "object_concentration": object_concentration(m, on_objects)}
                    if m.sum() > 0:
                        row.update({f"{k}_enrichment": v for k, v in region_enrichment(m, regions).items()})
                    rows.append(row)
    frame = pd.DataFrame(rows)
    for k in FIG4_REGIONS:
        if f"{k}_enrichment" not in frame:
            frame[f"{k}_enrichment"] = np.nan
    return frame


def _conditional(per_image: pd.Series, expected: int = 1):
    """:func:`~detpretrain.analysis.stats.verdict` over test images, conditional on these (unreplicated) networks."""
    from detpretrain.analysis.stats import conditional_verdict

    return conditional_verdict(per_image.dropna().to_numpy(dtype=float), unit="test image", expected=expected)


def _frames(frame, what: str) -> list[pd.DataFrame]:
    """``frame`` as a list, one per pre-training replicate pair (:func:`~detpretrain.analysis.stats.per_replicate`)."""
    from detpretrain.analysis.stats import per_replicate

    return per_replicate(frame, what)


def _replicated_claims(per_frame: list[dict], fixed=(), one_side_fixed=()) -> dict:
    """Verdicts from per-image differences measured in one frame per pre-training replicate pair
    (``[{claim: Series over images}]``, the first frame's claims in its order):

    * one frame, or a claim named in ``fixed`` (about a network that is the same in every frame, e.g. the untrained
      floor on its own: its frames are copies, not replicates): :func:`_conditional`, over the first frame's test
      images, conditional on those networks;
    * a claim every frame measures (at least one image each): a t interval over the frames' means, the test images
      nested in them (:func:`~detpretrain.analysis.stats.nested_verdict`; unit: the pre-training run); for a claim
      named in ``one_side_fixed`` (a replicated backbone against a network that is the same in every frame, e.g.
      minus the untrained floor) the interval holds the replicated side's spread only, so the verdict says so and
      counts as unreplicated (``replicated=False``);
    * a claim some frames measure and others do not: *not resolved* without an interval, its ``method`` naming the
      pairs that lack it (such replicates are not comparable; a quiet fallback to replicate 0 would change the unit).
    """
    from detpretrain.analysis.stats import _no_interval, nested_verdict

    out = {}
    for claim, first in per_frame[0].items():
        if len(per_frame) == 1 or claim in fixed:
            out[claim] = _conditional(first)
            continue
        series = [p.get(claim) for p in per_frame]
        missing = [r for r, d in enumerate(series) if d is None or not d.dropna().size]
        if not missing:
            out[claim] = nested_verdict([d.dropna().to_numpy(dtype=float) for d in series], unit="test image")
            if claim in one_side_fixed:
                v = out[claim]
                out[claim] = dataclasses.replace(v, replicated=False, method=(
                    f"{v.method}; one side is the same network in every pair: its run-to-run spread is not in the "
                    "interval"))
        elif len(missing) == len(series):
            out[claim] = _conditional(first)  # measured nowhere: the empty verdict, as with one frame
        else:
            out[claim] = _no_interval(
                math.nan, len(series) - len(missing), 0, len(series),
                f"replicate pair(s) {', '.join(map(str, missing))} of {len(series)} have no test image for this claim: "
                "the pairs are not comparable, no interval", alpha=0.05, kind="superiority", margin=0.0, expected=1,
                unit="pre-training run")
    return out


def enrichment_claims(frame, names: dict, *, classification: str = "imagenet-cls",
                      detection: str = "detection", floor: str | None = "scratch", kind: str = "channel mean",
                      min_cells: float = 1.0) -> dict:
    """Figure 4's claims on the images whose part spans at least ``min_cells`` cells, one
    :class:`~detpretrain.analysis.stats.Verdict` each, paired over images:

    * ``part enrichment, <classification> minus <detection>`` (the paper: the classifier focuses on parts);
    * ``part enrichment, <classification> minus random floor`` (what training adds over an untrained backbone);
    * ``part minus decoy enrichment, <backbone>`` for each backbone (images with a decoy spanning ``min_cells``
      too): an equally salient, category-independent patch; only a backbone trained to use the part should favour it;
    * ``part-over-decoy preference, <classification> minus <detection>`` (and ``minus`` the floor): that "only" as a
      difference of differences, (part - decoy) of the classifier minus the same of the other backbone, per image.

    Args:
        frame: :func:`resolved_activation_frame`'s frame, or a list of them, one per pre-training replicate pair
            (frame r: the backbones' replicate r; the floor, which has no pre-training, may be the same network in
            every frame); ``kind``: the map (``channel mean`` or ``Grad-CAM``).
        names: ``{backbone key: name shown}``.

    Returns:
        ``{claim: Verdict}`` (claims whose backbones or regions are absent from the first frame are left out), by the
        rules of :func:`_replicated_claims`: over the pre-training runs when every frame measures the claim (a
        claim against the floor, the same untrained network in every frame, then says that the floor's spread is not
        in the interval: ``replicated=False``); the floor's own ``part minus decoy`` claim over the first frame's
        test images, conditional on that network; no interval when only some frames measure a claim.

    Raises:
        ValueError: an empty list of frames.
    """
    fixed = () if floor is None else (f"part minus decoy enrichment, {names.get(floor, floor)}",)
    per_frame = [_enrichment_differences(f, names, classification=classification, detection=detection, floor=floor,
                                         kind=kind, min_cells=min_cells) for f in _frames(frame, "enrichment_claims")]
    against_floor = () if floor is None else tuple(k for k in per_frame[0]
                                                   if k.endswith(f" minus {names.get(floor, floor)}"))
    return _replicated_claims(per_frame, fixed=fixed, one_side_fixed=against_floor)


def _enrichment_differences(frame: pd.DataFrame, names: dict, *, classification: str, detection: str,
                            floor: str | None, kind: str, min_cells: float) -> dict:
    """:func:`enrichment_claims`' per-image differences of one frame: ``{claim: Series indexed by image}``."""
    f = frame[(frame["map"] == kind) & (frame["part_cells"] >= min_cells)]
    wide = f.pivot(index="image", columns="backbone", values="part_enrichment")
    out = {}
    if classification in wide and detection in wide:
        out[f"part enrichment, {names[classification]} minus {names[detection]}"] = wide[classification] - wide[detection]
    if floor is not None and classification in wide and floor in wide:
        out[f"part enrichment, {names[classification]} minus {names.get(floor, floor)}"] = (wide[classification]
                                                                                             - wide[floor])
    if "decoy_cells" not in f:  # a frame without decoy columns (no decoy measured): the part claims only
        return out
    with_decoy = f[f["decoy_cells"] >= min_cells]
    for key, g in with_decoy.groupby("backbone", sort=False):
        out[f"part minus decoy enrichment, {names.get(key, key)}"] = g["part_enrichment"] - g["decoy_enrichment"]
    # "only a trained classifier favours the part": a difference of differences, paired over the same images
    pref = (with_decoy.assign(pref=with_decoy["part_enrichment"] - with_decoy["decoy_enrichment"])
            .pivot(index="image", columns="backbone", values="pref"))
    for other in (detection, floor):
        if other is not None and classification in pref and other in pref:
            out[f"part-over-decoy preference, {names[classification]} minus {names.get(other, other)}"] = \
                pref[classification] - pref[other]
    return out


#: objects spanning fewer cells of the measured layer than this are left out of :func:`concentration_claims` (a
#: quarter of a smaller object is under one cell: the map cannot concentrate inside it)
CONCENTRATION_MIN_CELLS = 4.0


def concentration_claims(frame, names: dict, *, classification: str = "imagenet-cls",
                         detection: str = "detection", kind: str = "channel mean",
                         min_cells: float = CONCENTRATION_MIN_CELLS) -> dict:
    """Figure 4 without a part (issue 18): ``within-object concentration, <classification> minus <detection>``, the
    paired per-image difference of :func:`object_concentration` on images whose objects span at least
    ``min_cells`` cells. The paper's explanation predicts it positive where a part names the category and smaller
    where the cue is spread over the body (``distributed``).

    Args:
        frame: a :func:`resolved_activation_frame` frame with rows of both backbones, or a list of them, one per
            pre-training replicate pair (frame r: both backbones' replicate r).
        names: ``{backbone key: name shown}`` for the claim's name.

    Returns:
        ``{claim: Verdict}``; empty when a backbone or the column is absent from the first frame. With R >= 2 frames
        the unit is the pre-training run (a t interval over the R per-pair means, the test images nested in them,
        :func:`~detpretrain.analysis.stats.nested_verdict`; no interval when some frame lacks the measure); with one,
        over test images, conditional on these networks (:func:`_replicated_claims`).

    Raises:
        ValueError: an empty list of frames.
    """
    name = f"within-object concentration, {names[classification]} minus {names[detection]}"
    per_frame = []
    for f in _frames(frame, "concentration_claims"):
        claims = {}
        if "object_concentration" in f:
            f = f[(f["map"] == kind) & (f["object_cells"] >= min_cells)]
            wide = f.pivot(index="image", columns="backbone", values="object_concentration")
            if classification in wide and detection in wide:
                claims[name] = wide[classification] - wide[detection]
        per_frame.append(claims)
    return _replicated_claims(per_frame)


def replicated_part_enrichment(frames, *, classification: str = "imagenet-cls", detection: str = "detection",
                               kind: str = "channel mean", min_cells: float = 1.0):
    """Figure 4's primary claim over pre-training replicates: the per-image part enrichment of ``classification``
    minus that of ``detection`` (images whose part spans at least ``min_cells`` cells), one frame per replicate
    pair (frame r: both backbones' replicate r). With R >= 2 frames the unit is the pre-training run (a t interval
    over the R per-replicate means, images nested in their replicate; :func:`~detpretrain.analysis.stats.nested_verdict`);
    with one, the conditional verdict over images of :func:`enrichment_claims`.

    Args:
        frames: :func:`resolved_activation_frame` frames, each with rows of both backbones for map ``kind``.

    Returns:
        a :class:`~detpretrain.analysis.stats.Verdict`, or None when no frame has an image with a resolved part
        measured by both backbones (e.g. cue ``distributed``: no part).

    Raises:
        ValueError: some frames have such images and others none.
    """
    name = f"part enrichment, {classification} minus {detection}"
    per_frame = [_enrichment_differences(f, {classification: classification, detection: detection},
                                         classification=classification, detection=detection, floor=None,
                                         kind=kind, min_cells=min_cells) for f in frames]
    sizes = [d[name].dropna().size if name in d else 0 for d in per_frame]
    if not any(sizes):
        return None
    empty = [r for r, n in enumerate(sizes) if not n]
    if empty:
        raise ValueError(f"replicated_part_enrichment: replicate pair {empty[0]} of {len(sizes)} has no image with a "
                         f"resolved part measured by both backbones (the others have); the replicates would not be "
                         "comparable")
    return _replicated_claims(per_frame)[name]


def mask_coverage(mask, ys, xs, window: int) -> np.ndarray:
    """Share of a region's pixels under a ``window``-px square at each top-left offset (Figure 5): [len(ys), len(xs)]
    in [0, 1] (all zero for an empty region). Computed with a summed-area table.

    Args:
        mask: bool [H, W]; ys, xs: top-left offsets (:func:`mask_positions`).
    """
    m = np.asarray(mask, dtype=bool)
    total = int(m.sum())
    ys, xs = np.asarray(ys, dtype=int), np.asarray(xs, dtype=int)
    if total == 0:
        return np.zeros((ys.size, xs.size))
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1), dtype=np.int64)
    sat[1:, 1:] = m.cumsum(0).cumsum(1)
    y0, x0 = ys[:, None], xs[None, :]
    y1, x1 = np.minimum(y0 + window, m.shape[0]), np.minimum(x0 + window, m.shape[1])
    return (sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]) / total


def log_odds(p, eps: float = 1e-6) -> np.ndarray:
    """``log(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]`` (a probability of exactly 0 or 1 has none)."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def maskout_log_odds(result: dict, object_mask, part_mask, window: int, cover: float = 0.5) -> dict:
    """Figure 5's reading in log-odds, "on the part" defined by coverage: from a :func:`maskout_map` result, the mean
    drop ``logit(clean) - logit(prob)`` where the square covers at least ``cover`` of the part, and where it covers
    none of the part but its centre lies on the object.

    Returns:
        ``{"logodds_drop_part", "logodds_drop_rest", "logodds part minus rest", "positions_covering_part",
        "positions_rest"}`` (NaN for a region without positions; with no part every part value is NaN).
    """
    obj = np.asarray(object_mask, dtype=bool)
    part = np.zeros_like(obj) if part_mask is None else np.asarray(part_mask, dtype=bool) & obj
    cov = mask_coverage(part, result["ys"], result["xs"], window)
    cy = np.floor(result["centres_y"]).astype(int)
    cx = np.floor(result["centres_x"]).astype(int)
    on_part = (cov >= cover) & part.any()
    rest = (cov == 0) & obj[np.ix_(cy, cx)]
    drop = log_odds(result["clean"]) - log_odds(result["prob"])

    def mean(m):
        return float(drop[m].mean()) if m.any() else float("nan")

    dp, dr = mean(on_part), mean(rest)
    return {"logodds_drop_part": dp, "logodds_drop_rest": dr, "logodds part minus rest": dp - dr,
            "positions_covering_part": int(on_part.sum()), "positions_rest": int(rest.sum())}


def maskout_claims(frame, names: dict, *, classification: str = "imagenet-cls",
                   detection: str = "detection") -> dict:
    """Figure 5's claims on the images both probes classify correctly, in log-odds (:func:`maskout_log_odds`
    columns of :func:`maskout_frame`): covering the part costs each probe more than covering the rest of the object,
    and costs the classification probe more than the detection one. Paired over images.

    Args:
        frame: :func:`maskout_frame`'s frame, or a list of them, one per pre-training replicate pair (frame r: the
            probes on both backbones' replicate r).
        names: ``{backbone key: name shown}``.

    Returns:
        ``{claim: Verdict}`` (empty when the first frame has no image). With R >= 2 frames a claim is over the
        pre-training runs (t interval over the frames' means, the test images nested in them); with one, over its
        test images, conditional on these networks.

    Raises:
        ValueError: an empty list of frames.
    """
    per_frame = []
    for f in _frames(frame, "maskout_claims"):
        claims = {}
        if "correct" in f and not f.empty:
            ok = f.pivot(index="image", columns="backbone", values="correct").fillna(False).all(axis=1)
            wide = (f[f["image"].isin(ok[ok].index)]
                    .pivot(index="image", columns="backbone", values="logodds part minus rest"))
            for key in (classification, detection):
                if key in wide:
                    claims[f"log-odds drop, part minus rest, {names[key]}"] = wide[key]
            if classification in wide and detection in wide:
                claims[f"log-odds drop (part minus rest), {names[classification]} minus {names[detection]}"] = (
                    wide[classification] - wide[detection])
        per_frame.append(claims)
    return _replicated_claims(per_frame)


#: visible-fraction bins of :func:`paired_localisation` (lower bound inclusive, upper exclusive)
VISIBLE_BINS = ((0.0, 0.5), (0.5, 0.75), (0.75, 0.95), (0.95, 1.01))


def paired_localisation(objects: pd.DataFrame, a: str = "imagenet-cls", b: str = "detection", *,
                        detected_iou: float = 0.5, bins=VISIBLE_BINS) -> tuple[pd.DataFrame, dict]:
    """Figure 8 as localisation alone: IoU of ``b`` minus ``a`` on the objects that BOTH detect (best same-class IoU
    >= ``detected_iou``), overall and per visible-fraction bin; recall reported beside it, not mixed into it.

    The per-object differences are averaged within each image and the verdict is over images
    (:func:`~detpretrain.analysis.stats.verdict`, conditional on these networks), since objects of one image share
    its rendering.

    Args:
        objects: :func:`detection_objects`' frame (``image``, ``visible_fraction``, ``iou_<a>``, ``iou_<b>``).

    Returns:
        ``(table, verdicts)``: one row per bin then ``all`` (``visible``, ``objects``, ``detected by <a> %``,
        ``detected by <b> %``, ``both``, ``IoU <a>``, ``IoU <b>``, ``IoU gain`` on the jointly detected), and
        ``{bin label: Verdict}`` of the gain.
    """
    ia, ib = objects[f"iou_{a}"], objects[f"iou_{b}"]
    da, db = ia >= detected_iou, ib >= detected_iou
    vis = objects["visible_fraction"]
    groups = [(f"{lo:.2f}-{min(hi, 1.0):.2f}", (vis >= lo) & (vis < hi)) for lo, hi in bins]
    groups.append(("all", pd.Series(True, index=objects.index)))
    rows, verdicts = [], {}
    for label, sel in groups:
        both = sel & da & db
        gain = (ib - ia)[both].groupby(objects.loc[both, "image"]).mean()
        rows.append({"visible": label, "objects": int(sel.sum()),
                     f"detected by {a} %": 100 * float(da[sel].mean()) if sel.any() else np.nan,
                     f"detected by {b} %": 100 * float(db[sel].mean()) if sel.any() else np.nan,
                     "both": int(both.sum()), f"IoU {a}": float(ia[both].mean()) if both.any() else np.nan,
                     f"IoU {b}": float(ib[both].mean()) if both.any() else np.nan,
                     "IoU gain": float((ib - ia)[both].mean()) if both.any() else np.nan})
        verdicts[label] = _conditional(gain)
    return pd.DataFrame(rows), verdicts
