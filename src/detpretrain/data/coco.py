"""COCO-format detection reader and the dataset -> COCO ground-truth converter.

Serves detection pre-training on COCO (the paper's COCO / OpenImages / IMAGENET-LOC roles, Tables 1-3), the
COCO evaluation of Sec. 2.1, and — through :func:`to_coco_gt` — the evaluator, which scores every dataset (VOC,
COCO, synthetic) with pycocotools-style ground truth. The synthetic detection pre-training corpora are written in
this format, so this reader serves them too.

Layout: an image folder and an ``instances_*.json`` with ``images`` (id, file_name, width, height),
``annotations`` (id, image_id, category_id, bbox ``[x, y, w, h]`` pixels, area, iscrowd, segmentation as polygons
or RLE) and ``categories`` (id, name, supercategory). Optional per-annotation extras understood here:
``visible_fraction`` (float in [0, 1]), ``truncated`` (0/1) and ``part_bbox`` (``[x, y, w, h]`` pixels of the object's discriminative part).

Bad-input policy (data/README.md): raise :class:`~detpretrain.errors.DataError` naming the file, never drop
silently. One counted exception: a degenerate box (``w <= 0`` or ``h <= 0``, or no area left after clamping), which
genuine COCO 2017 train holds, is dropped and listed in ``CocoDetection.dropped`` (reported by ``data check`` and
recorded in a run's metrics), as the torchvision references and detectron2 drop them; ``strict=True`` makes it an
error. Errors at construction: missing folder / json, json that does not parse or lacks a required field, an image
listed in the json but missing on disk, an annotation whose image or category does not exist, or
a box more than ``BOX_TOLERANCE_PX`` (1 px) outside its image (within it the box is clamped onto the border); with
``with_masks=True`` an annotation without segmentation. At ``__getitem__``: corrupt/truncated image, decoded size
different from the json's, a polygon/RLE pycocotools cannot decode or an RLE of the wrong size. All 2,196
annotations of the real COCO 2017 subset pass (smallest box side 1.85 px; none outside its image).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torchvision import tv_tensors

from detpretrain.data._io import DetectionDatasetBase, require_dir, require_file, validate_box
from detpretrain.errors import DataError

__all__ = ["CocoDetection", "load_coco_json", "to_coco_gt"]

BACKGROUND = "__background__"


def load_coco_json(ann_file: str | os.PathLike) -> dict:
    """Parse a COCO json and check its three top-level lists exist.

    Raises:
        DataError: missing file, invalid JSON, or no ``images`` / ``annotations`` / ``categories`` list.
    """
    p = require_file(ann_file, "COCO annotation file")
    try:
        with open(p, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(p, f"not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise DataError(p, "top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(p, f"has no {key!r} list")
    return data


def _num(value, p: Path, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(p, f"{what} is {value!r}, not a finite number")
    return float(value)


def _field(entry: dict, key: str, p: Path, what: str):
    if not isinstance(entry, dict) or key not in entry:
        raise DataError(p, f"{what} has no {key!r}")
    return entry[key]


class DegenerateBox(ValueError):
    """A box with zero width or height (dropped by :class:`CocoDetection` unless ``strict``)."""


class CocoDetection(DetectionDatasetBase):
    """A COCO-format detection dataset (real COCO or a synthetic corpus written as COCO).

    Args:
        image_dir: folder holding the ``file_name`` of every image.
        ann_file: the ``instances_*.json``.
        with_masks: also return instance masks decoded with ``pycocotools.mask`` (polygons, uncompressed and
            compressed RLE).
        transforms: ``transforms(image, target) -> (image, target)``, e.g. torchvision ``transforms.v2``.
        categories: category *names* to keep, in label order (label 1 = ``categories[0]``). Annotations of other
            categories are left out of the targets (a deliberate selection, e.g. Table 2's category removal; the
            images stay). Default: all categories sorted by id.
        strict: make a degenerate box an error. By default an annotation whose box has zero (or negative) width or
            height, before or after clamping to the image, is dropped and counted in :attr:`dropped` -- what the
            torchvision detection references and detectron2 do; genuine COCO 2017 train holds such boxes.

    Attributes:
        classes: ``["__background__", name_1, ..., name_K]``; labels 1..K.
        cat_ids: label -> COCO category id (dict).
        supercategories: class name -> the json's ``supercategory`` (None if the json gives none).
        image_ids: COCO image ids, ascending.
        dropped: ``[(annotation id, reason)]`` of the degenerate boxes left out (empty with ``strict=True``).

    Target dict: as :class:`~detpretrain.data.voc.VOCDetection` — ``boxes`` (``tv_tensors.BoundingBoxes`` float32
    [N, 4] XYXY pixels, from ``[x, y, w, h]``), ``labels`` int64 [N] in 1..K, ``image_id`` int, ``ignore`` bool [N]
    (``iscrowd``), ``area`` float32 [N] (the json's ``area``, the segment's pixel count, pixels^2; box area if
    absent), ``masks`` (``tv_tensors.Mask`` uint8 [N, H, W], only with ``with_masks``); present only if some
    annotation of the json carries them: ``truncated`` bool [N] (False where absent), ``visible_fraction`` float32
    [N] (NaN where absent) and ``part_boxes``
    (``tv_tensors.BoundingBoxes`` float32 [N, 4] XYXY, NaN rows where absent).

    Raises:
        DataError: see the module docstring.
    """

    def __init__(self, image_dir: str | os.PathLike, ann_file: str | os.PathLike, *, with_masks: bool = False,
                 transforms: Callable | None = None, categories: Sequence[str] | None = None, strict: bool = False):
        self.strict = strict
        self.dropped: list[tuple[object, str]] = []
        self.image_dir = require_dir(image_dir, "COCO image folder")
        self.ann_file = Path(ann_file)
        self.with_masks = with_masks
        self.transforms = transforms
        data = load_coco_json(self.ann_file)
        p = self.ann_file

        cats: dict[int, dict] = {}
        for c in data["categories"]:
            cid = _field(c, "id", p, f"category {c!r}")
            _field(c, "name", p, f"category {cid}")
            if cid in cats:
                raise DataError(p, f"category id {cid} appears twice")
            cats[cid] = c
        by_name = {c["name"]: cid for cid, c in cats.items()}
        if categories is None:
            chosen = sorted(cats)
        else:
            names = [n for n in categories if n != BACKGROUND]
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise DataError(p, f"categories {unknown!r} are not in the json's categories")
            chosen = [by_name[n] for n in names]
        self.cat_ids: dict[int, int] = {i + 1: cid for i, cid in enumerate(chosen)}
        cat_to_label = {cid: lab for lab, cid in self.cat_ids.items()}
        self.classes: list[str] = [BACKGROUND, *(cats[cid]["name"] for cid in chosen)]
        supers = {cats[cid]["name"]: cats[cid].get("supercategory") for cid in chosen}
        self.supercategories: dict[str, str] | None = (
            supers if all(isinstance(s, str) and s for s in supers.values()) else None)

        images: dict[int, dict] = {}
        for im in data["images"]:
            iid = _field(im, "id", p, f"image entry {im!r:.80}")
            if iid in images:
                raise DataError(p, f"image id {iid} appears twice")
            what = f"image {iid}"
            fname = _field(im, "file_name", p, what)
            h, w = (_num(_field(im, k, p, what), p, f"{what} {k}") for k in ("height", "width"))
            if h <= 0 or w <= 0 or h != int(h) or w != int(w):
                raise DataError(p, f"{what} ({fname}) has size {w:g}x{h:g}")
            images[iid] = im
        self.image_ids: list[int] = sorted(images)
        self._files: list[Path] = []
        self._sizes: list[tuple[int, int]] = []
        for iid in self.image_ids:
            f = self.image_dir / images[iid]["file_name"]
            if not f.is_file():
                raise DataError(f, f"image is missing (listed as image {iid} in {p.name})")
            self._files.append(f)
            self._sizes.append((int(images[iid]["height"]), int(images[iid]["width"])))
        index = {iid: k for k, iid in enumerate(self.image_ids)}

        per_image: list[list[tuple]] = [[] for _ in self.image_ids]
        has_vis = has_part = has_trunc = False
        for a in data["annotations"]:
            aid = a.get("id", "?") if isinstance(a, dict) else "?"
            what = f"annotation {aid}"
            iid = _field(a, "image_id", p, what)
            cid = _field(a, "category_id", p, what)
            if iid not in index:
                raise DataError(p, f"{what}: image_id {iid!r} is not in 'images'")
            if cid not in cats:
                raise DataError(p, f"{what}: category_id {cid!r} is not in 'categories' (not in the label map)")
            if cid not in cat_to_label:
                continue  # category deliberately left out through categories=
            what = f"{what} (image {iid}, {cats[cid]['name']!r})"
            h, w = self._sizes[index[iid]]
            try:
                box = self._xywh_box(_field(a, "bbox", p, what), h, w, p, what)
            except DegenerateBox as err:
                if strict:
                    raise DataError(p, f"{what}: {err} (strict: degenerate boxes are errors)") from None
                self.dropped.append((aid, str(err)))
                continue
            area = _num(a["area"], p, f"{what} area") if "area" in a else (box[2] - box[0]) * (box[3] - box[1])
            ignore = bool(a.get("iscrowd", 0))
            vis = a.get("visible_fraction")
            if vis is not None:
                vis = _num(vis, p, f"{what} visible_fraction")
                if not 0.0 <= vis <= 1.0:
                    raise DataError(p, f"{what}: visible_fraction {vis:g} is outside [0, 1]")
                has_vis = True
            trunc = a.get("truncated")
            if trunc is not None:
                if trunc not in (0, 1):  # also accepts True/False
                    raise DataError(p, f"{what}: truncated is {trunc!r}, not 0/1")
                trunc = bool(trunc)
                has_trunc = True
            part = a.get("part_bbox")
            if part is not None:
                part = self._xywh_box(part, h, w, p, f"{what} part_bbox")
                has_part = True
            seg = None
            if with_masks:
                seg = a.get("segmentation")
                if not seg:
                    raise DataError(p, f"{what} has no segmentation (with_masks=True)")
            per_image[index[iid]].append((box, cat_to_label[cid], ignore, area, vis, part, seg, trunc))
        self._optional = {n for n, f in (("visible_fraction", has_vis), ("part_boxes", has_part),
                                         ("truncated", has_trunc)) if f}
        self._anns = [self._pack(rows) for rows in per_image]

    @staticmethod
    def _xywh_box(bbox, h: int, w: int, p: Path, what: str) -> list[float]:
        """``[x, y, w, h]`` -> XYXY clamped to the image; :class:`DegenerateBox` if it has no area (before or after
        clamping), :class:`~detpretrain.errors.DataError` if it is malformed or lies outside the image."""
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise DataError(p, f"{what}: bbox {bbox!r} is not [x, y, w, h]")
        x, y, bw, bh = (_num(v, p, f"{what} bbox") for v in bbox)
        if math.isfinite(bw) and math.isfinite(bh) and (bw <= 0 or bh <= 0):
            raise DegenerateBox(f"bbox {bbox} has width or height <= 0")
        box = validate_box([x, y, x + bw, y + bh], h, w, p, what, allow_empty=True)
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DegenerateBox(f"bbox {bbox} has no area inside the {w}x{h} image")
        return box

    @staticmethod
    def _pack(rows: list[tuple]) -> dict:
        n = len(rows)
        return {
            "boxes": np.asarray([r[0] for r in rows], dtype=np.float32).reshape(n, 4),
            "labels": np.asarray([r[1] for r in rows], dtype=np.int64),
            "ignore": np.asarray([r[2] for r in rows], dtype=bool),
            "area": np.asarray([r[3] for r in rows], dtype=np.float32),
            "visible_fraction": np.asarray([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float32),
            "part_boxes": np.asarray([[np.nan] * 4 if r[5] is None else r[5] for r in rows],
                                     dtype=np.float32).reshape(n, 4),
            "segs": [r[6] for r in rows],
            "truncated": np.asarray([bool(r[7]) for r in rows], dtype=bool),
        }

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_path(self, i: int) -> Path:
        """Path of image ``i``."""
        return self._files[i]

    def image_size(self, i: int) -> tuple[int, int]:
        """``(H, W)`` in pixels of image ``i`` from the json (no decoding)."""
        return self._sizes[i]

    def load_target(self, i: int) -> dict:
        """Target dict of image ``i`` without decoding the image (and without masks)."""
        a, hw = self._anns[i], self._sizes[i]
        target = {
            "boxes": tv_tensors.BoundingBoxes(torch.from_numpy(a["boxes"].copy()), format="XYXY", canvas_size=hw),
            "labels": torch.from_numpy(a["labels"].copy()),
            "image_id": int(self.image_ids[i]),
            "ignore": torch.from_numpy(a["ignore"].copy()),
            "area": torch.from_numpy(a["area"].copy()),
        }
        if "truncated" in self._optional:
            target["truncated"] = torch.from_numpy(a["truncated"].copy())
        if "visible_fraction" in self._optional:
            target["visible_fraction"] = torch.from_numpy(a["visible_fraction"].copy())
        if "part_boxes" in self._optional:
            target["part_boxes"] = tv_tensors.BoundingBoxes(torch.from_numpy(a["part_boxes"].copy()), format="XYXY",
                                                            canvas_size=hw)
        return target

    def load_masks(self, i: int) -> tv_tensors.Mask:
        """Instance masks of image ``i`` (``with_masks=True`` only): ``tv_tensors.Mask`` uint8 [N, H, W].

        Raises:
            DataError: a polygon / RLE that pycocotools cannot decode or whose size differs from the image's.
        """
        from pycocotools import mask as mask_utils

        if not self.with_masks:
            raise ValueError("dataset was built with with_masks=False")
        h, w = self._sizes[i]
        out = np.zeros((len(self._anns[i]["segs"]), h, w), dtype=np.uint8)
        for k, seg in enumerate(self._anns[i]["segs"]):
            what = f"image {self.image_ids[i]}, annotation {k} segmentation"
            try:
                if isinstance(seg, list):  # polygons [[x1, y1, x2, y2, ...], ...]
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed RLE
                    rle = mask_utils.frPyObjects(seg, h, w)
                elif isinstance(seg, dict):  # compressed RLE
                    if list(seg.get("size", [])) != [h, w]:
                        raise DataError(self.ann_file, f"{what}: RLE size {seg.get('size')} != image size {[h, w]}")
                    rle = seg
                else:
                    raise DataError(self.ann_file, f"{what}: neither polygons nor RLE")
                with warnings.catch_warnings():  # pycocotools' own numpy-2 '__array__ copy' notice, once per mask
                    warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
                    m = mask_utils.decode(rle)
            except (TypeError, ValueError, IndexError, KeyError) as err:
                if isinstance(err, DataError):
                    raise
                raise DataError(self.ann_file, f"{what} cannot be decoded ({err})") from err
            if m.shape[:2] != (h, w):
                raise DataError(self.ann_file, f"{what}: mask size {m.shape[:2]} != image size {(h, w)}")
            out[k] = m if m.ndim == 2 else m.max(axis=2)
        return tv_tensors.Mask(torch.from_numpy(out))


    def __repr__(self) -> str:
        return f"CocoDetection(ann_file={str(self.ann_file)!r}, images={len(self)}, classes={len(self.classes) - 1})"


def to_coco_gt(dataset) -> dict:
    """COCO-format ground truth of any detection dataset of this package, built from ``load_target`` only.

    Serves the evaluator (AP at IoU 0.1..0.9 for Table 1 / Fig. 1; COCO AP for Sec. 2.1): predictions use the
    same ``image_id`` and contiguous ``category_id`` = label.

    Args:
        dataset: an object with ``classes``, ``image_ids``, ``image_path(i)``, ``image_size(i)`` and
            ``load_target(i)`` (:class:`CocoDetection`, :class:`~detpretrain.data.voc.VOCDetection`, or a
            ``torch.utils.data.Subset`` of one — its ``indices`` are followed).

    Returns:
        ``{"images": [{id, file_name, width, height}], "annotations": [{id, image_id, bbox [x, y, w, h] pixels,
        category_id, area (pixels^2), iscrowd: 0, ignore: 0/1}], "categories": [{id: label, name,
        supercategory}]}``. Annotation ids run 1..N. Per-instance extras of the targets are copied when finite:
        ``visible_fraction``, ``truncated`` (0/1), ``occluded`` (0/1, VOC2010+) and ``part_bbox`` ([x, y, w, h]).
    """
    base, indices = dataset, None
    if hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
        base, indices = dataset.dataset, list(dataset.indices)
    if indices is None:
        indices = list(range(len(base)))
    supers = getattr(base, "supercategories", None) or {}
    categories = [{"id": lab, "name": name, "supercategory": supers.get(name, "none")}
                  for lab, name in enumerate(base.classes) if lab > 0]
    images, anns = [], []
    for i in indices:
        t = base.load_target(i)
        h, w = base.image_size(i)
        iid = int(t["image_id"])
        images.append({"id": iid, "file_name": base.image_path(i).name, "width": int(w), "height": int(h)})
        boxes = t["boxes"].as_subclass(torch.Tensor).tolist()
        labels, ignore, area = t["labels"].tolist(), t["ignore"].tolist(), t["area"].tolist()
        vis = t["visible_fraction"].tolist() if "visible_fraction" in t else None
        trunc = t["truncated"].tolist() if "truncated" in t else None
        occl = t["occluded"].tolist() if "occluded" in t else None
        parts = t["part_boxes"].as_subclass(torch.Tensor).tolist() if "part_boxes" in t else None
        for k, (x1, y1, x2, y2) in enumerate(boxes):
            ann = {"id": len(anns) + 1, "image_id": iid, "category_id": int(labels[k]),
                   "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(area[k]), "iscrowd": 0,
                   "ignore": int(bool(ignore[k]))}
            if vis is not None and math.isfinite(vis[k]):
                ann["visible_fraction"] = round(float(vis[k]), 6)
            if trunc is not None:
                ann["truncated"] = int(bool(trunc[k]))
            if occl is not None:
                ann["occluded"] = int(bool(occl[k]))
            if parts is not None and all(math.isfinite(v) for v in parts[k]):
                px1, py1, px2, py2 = parts[k]
                ann["part_bbox"] = [px1, py1, px2 - px1, py2 - py1]
            anns.append(ann)
    return {"images": images, "annotations": anns, "categories": categories}
