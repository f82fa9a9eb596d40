"""PASCAL VOC readers: detection (Annotations XML) and semantic segmentation (SegmentationClass PNG).

Serves the paper's fine-tuning / evaluation on VOC 07+12 -> VOC07 test (Table 1, Fig. 1, Table 2) and the VOC2012
segmentation transfer (Table 4). The embedded synthetic corpus is written in the same layout, with its own class
list in ``labels.txt`` (or ``classes.txt``), so these readers serve it too.

Layout (``root`` is a ``VOCdevkit`` holding ``VOC20xx`` folders, or one ``VOC20xx`` folder)::

    VOC2007/Annotations/<id>.xml          boxes, 1-based inclusive corners
    VOC2007/JPEGImages/<id>.jpg
    VOC2007/ImageSets/Main/<set>.txt      train / val / trainval / test
    VOC2007/ImageSets/Segmentation/<set>.txt
    VOC2007/SegmentationClass/<id>.png    palette PNG, class index per pixel, 255 = void
    VOC2007/SegmentationObject/<id>.png   palette PNG, k = k-th <object> of the XML, 255 = void
    labels.txt | classes.txt              optional class list (at VOC20xx or VOCdevkit level), see read_class_file

Box convention: VOC corners are 1-based and inclusive, so the continuous XYXY pixel box is
``(xmin - 1, ymin - 1, xmax, ymax)`` (the same as Detectron's COCO-format conversion, x = xmin - 1, w = xmax - xmin + 1).

Bad-input policy (data/README.md): raise :class:`~detpretrain.errors.DataError` naming the file, never drop. At
construction (text only): missing root / year folder / split file, a split entry whose XML or JPEG is missing,
unparsable XML, missing size or bndbox fields, a class name not in the label map, ``xmax < xmin`` or
``ymax < ymin`` (an empty box; corners are inclusive, so ``xmax == xmin`` is a 1 px wide box), or a box more than ``BOX_TOLERANCE_PX`` (1 px) outside the image (within it the box is clamped
onto the border); with ``with_masks=True`` a missing SegmentationObject PNG. At ``__getitem__``: a corrupt or
truncated image, an image whose decoded size differs from the XML ``<size>``, a label PNG of the wrong size or with
an index that does not exist.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from detpretrain.data._io import (
    DetectionDatasetBase,
    check_image_size,
    decode_image,
    image_header_size,
    image_id_from_name,
    parse_xml,
    read_index_png,
    read_split_file,
    require_dir,
    validate_box,
)
from detpretrain.errors import DataError

__all__ = [
    "VOC_CLASSES",
    "VOC_SUPERCATEGORIES",
    "VOCDetection",
    "VOCSegmentation",
    "read_class_file",
    "read_index_png",
    "resolve_voc_dir",
]

#: The 20 PASCAL VOC classes in the standard order (labels 1..20; 0 is background).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

#: The grouping of the VOC devkit documentation (Person / Animal / Vehicle / Indoor), lower-cased like COCO's
#: super-categories; Table 2 of the paper removes "vehicle" and "animal".
VOC_SUPERCATEGORIES: dict[str, str] = {
    "person": "person",
    **{c: "animal" for c in ("bird", "cat", "cow", "dog", "horse", "sheep")},
    **{c: "vehicle" for c in ("aeroplane", "bicycle", "boat", "bus", "car", "motorbike", "train")},
    **{c: "indoor" for c in ("bottle", "chair", "diningtable", "pottedplant", "sofa", "tvmonitor")},
}

CLASS_FILE_NAMES = ("labels.txt", "classes.txt")
BACKGROUND = "__background__"


def read_class_file(path: str | os.PathLike) -> tuple[list[str], dict[str, str] | None]:
    """A class list file: one class per line in label order (first line = label 1).

    A line is ``name`` or ``name supercategory`` (whitespace-separated; class names contain no spaces, as in
    VOC). Blank lines and ``#`` comments are skipped, and so is a leading ``__background__`` / ``background``
    line. Super-categories are returned only if every line gives one.

    Returns:
        ``(classes, supercategories or None)`` with ``classes`` excluding background.

    Raises:
        DataError: unreadable file, no class, a repeated class, or a line with more than two fields.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(p, f"cannot read class list ({err})") from err
    rows = [ln.split() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if rows and rows[0][0] in (BACKGROUND, "background"):
        rows = rows[1:]
    if not rows:
        raise DataError(p, "class list names no class")
    classes: list[str] = []
    supers: dict[str, str] = {}
    for row in rows:
        if len(row) > 2:
            raise DataError(p, f"class list line {' '.join(row)!r} has more than 'name [supercategory]'")
        if row[0] in classes:
            raise DataError(p, f"class list names {row[0]!r} twice")
        classes.append(row[0])
        if len(row) == 2:
            supers[row[0]] = row[1]
    return classes, (supers if len(supers) == len(classes) else None)


def resolve_voc_dir(root: str | os.PathLike, year: str | int | None, split_file: str) -> Path:
    """The ``VOC20xx`` folder that holds ``split_file`` (e.g. ``"ImageSets/Main/trainval.txt"``).

    ``root`` may be the ``VOC20xx`` folder itself (it has ``ImageSets``) or a ``VOCdevkit``; in the latter case
    ``year`` picks ``VOC<year>``, or, if ``year`` is None, the only ``VOC20xx`` folder that has the split file.

    Raises:
        DataError: root or ``VOC<year>`` missing; no or several ``VOC20xx`` folders with that split file.
    """
    base = require_dir(root, "VOC data root")
    if (base / "ImageSets").is_dir() and year is None:
        return base
    if year is not None:
        if re.fullmatch(r"VOC\d{4}", base.name) and base.name == f"VOC{year}":
            return base
        return require_dir(base / f"VOC{year}", f"VOC{year} folder")
    candidates = sorted(d for d in base.iterdir() if d.is_dir() and re.fullmatch(r"VOC\d{4}", d.name))
    if not candidates:
        raise DataError(base, "is neither a VOC20xx folder (no ImageSets/) nor a VOCdevkit (no VOC20xx folder)")
    having = [d for d in candidates if (d / split_file).is_file()]
    if not having:
        raise DataError(base / candidates[0].name / split_file,
                        f"split file is missing (no VOC20xx folder of {base} has {split_file})")
    if len(having) > 1:
        raise DataError(base, f"several VOC20xx folders have {split_file} ({', '.join(d.name for d in having)}); "
                              "pass year=")
    return having[0]


def _class_list(voc_dir: Path, root: Path, classes: Sequence[str] | None) -> tuple[list[str], dict[str, str] | None]:
    if classes is not None:
        names = [c for c in classes if c != BACKGROUND]
        if not names or len(set(names)) != len(names):
            raise DataError(root, f"classes={list(classes)!r} must be non-empty and without repeats")
        supers = {c: VOC_SUPERCATEGORIES[c] for c in names} if set(names) <= set(VOC_SUPERCATEGORIES) else None
        return names, supers
    parent = [voc_dir.parent] if re.fullmatch(r"VOC\d{4}", voc_dir.name) else []
    for folder in dict.fromkeys((voc_dir, root, *parent)):
        for fname in CLASS_FILE_NAMES:
            if (folder / fname).is_file():
                return read_class_file(folder / fname)
    return list(VOC_CLASSES), dict(VOC_SUPERCATEGORIES)


def _text(elem, tag: str, path: Path, what: str) -> str:
    node = elem.find(tag)
    if node is None or node.text is None or not node.text.strip():
        raise DataError(path, f"{what}: <{tag}> is missing")
    return node.text.strip()


def _number(elem, tag: str, path: Path, what: str) -> float:
    text = _text(elem, tag, path, what)
    try:
        value = float(text)
    except ValueError as err:
        raise DataError(path, f"{what}: <{tag}> is {text!r}, not a number") from err
    if not math.isfinite(value):
        raise DataError(path, f"{what}: <{tag}> is {text!r}")
    return value


def _flag(obj, tag: str, path: Path, what: str) -> bool | None:
    node = obj.find(tag)
    if node is None or node.text is None or not node.text.strip():
        return None
    try:
        return bool(int(float(node.text.strip())))
    except ValueError as err:
        raise DataError(path, f"{what}: <{tag}> is {node.text.strip()!r}, not 0/1") from err


def _voc_box(bb, path: Path, what: str, h: int, w: int) -> list[float]:
    xmin, ymin, xmax, ymax = (_number(bb, t, path, what) for t in ("xmin", "ymin", "xmax", "ymax"))
    if xmax < xmin or ymax < ymin:  # corners are inclusive: xmax == xmin is a legitimate 1 px wide box
        raise DataError(path, f"{what}: empty box (xmin={xmin:g}, ymin={ymin:g}, xmax={xmax:g}, ymax={ymax:g}); "
                              "needs xmax >= xmin and ymax >= ymin (1-based inclusive corners)")
    return validate_box([xmin - 1.0, ymin - 1.0, xmax, ymax], h, w, path, what)


class _Record:
    """Parsed annotation of one image (numpy arrays; converted to tensors per request)."""

    __slots__ = ("name", "image_file", "height", "width", "boxes", "labels", "ignore", "truncated", "occluded",
                 "visible_fraction", "part_boxes")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


def _parse_annotation(xml_path: Path, name: str, jpeg_dir: Path, class_to_label: dict[str, int]) -> _Record:
    root = parse_xml(xml_path)
    image_file = jpeg_dir / f"{name}.jpg"
    if not image_file.is_file():
        fname = (root.findtext("filename") or "").strip()
        if fname and (jpeg_dir / fname).is_file():
            image_file = jpeg_dir / fname
        else:
            raise DataError(image_file, f"image is missing (named by the split file; annotation {xml_path.name})")
    size = root.find("size")
    h = w = 0
    if size is not None and size.findtext("width") and size.findtext("height"):
        w = int(_number(size, "width", xml_path, "<size>"))
        h = int(_number(size, "height", xml_path, "<size>"))
    if h <= 0 or w <= 0:  # a few real VOC files lack a usable <size>: take it from the image header
        h, w = image_header_size(image_file)
    boxes, labels, ignore, trunc, occl, vis, parts = [], [], [], [], [], [], []
    for k, obj in enumerate(root.findall("object")):
        cls = _text(obj, "name", xml_path, f"object {k}")
        what = f"object {k} ({cls!r})"
        if cls not in class_to_label:
            raise DataError(xml_path, f"{what}: class name {cls!r} is not in the label map "
                                      f"({len(class_to_label)} classes: {', '.join(list(class_to_label)[:6])}, ...)")
        bb = obj.find("bndbox")
        if bb is None:
            raise DataError(xml_path, f"{what}: <bndbox> is missing")
        boxes.append(_voc_box(bb, xml_path, what, h, w))
        labels.append(class_to_label[cls])
        ignore.append(bool(_flag(obj, "difficult", xml_path, what)))
        trunc.append(_flag(obj, "truncated", xml_path, what))
        occl.append(_flag(obj, "occluded", xml_path, what))
        v = obj.find("visible_fraction")
        if v is not None and (v.text or "").strip():
            fv = _number(obj, "visible_fraction", xml_path, what)
            if not 0.0 <= fv <= 1.0:
                raise DataError(xml_path, f"{what}: <visible_fraction> {fv:g} is outside [0, 1]")
            vis.append(fv)
        else:
            vis.append(None)
        part = next((p for p in obj.findall("part") if p.find("bndbox") is not None), None)
        parts.append(None if part is None else
                     _voc_box(part.find("bndbox"), xml_path, f"{what} part {part.findtext('name')!r}", h, w))
    n = len(boxes)
    return _Record(
        name=name, image_file=image_file, height=h, width=w,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(n, 4),
        labels=np.asarray(labels, dtype=np.int64),
        ignore=np.asarray(ignore, dtype=bool),
        truncated=None if all(t is None for t in trunc) else np.asarray([bool(t) for t in trunc], dtype=bool),
        occluded=None if all(t is None for t in occl) else np.asarray([bool(t) for t in occl], dtype=bool),
        visible_fraction=None if all(v is None for v in vis) else
        np.asarray([np.nan if v is None else v for v in vis], dtype=np.float32),
        part_boxes=None if all(p is None for p in parts) else
        np.asarray([[np.nan] * 4 if p is None else p for p in parts], dtype=np.float32).reshape(n, 4),
    )


class VOCDetection(DetectionDatasetBase):
    """PASCAL VOC detection split (also the synthetic corpus in VOC layout).

    Args:
        root: a ``VOCdevkit`` or a ``VOC20xx`` folder (see :func:`resolve_voc_dir`).
        image_set: split name, ``ImageSets/Main/<image_set>.txt``.
        year: picks ``VOC<year>`` inside a ``VOCdevkit`` (needed only when several years have the split).
        classes: class names in label order (label 1 = ``classes[0]``; a leading ``"__background__"`` is
            ignored). Default: ``labels.txt`` / ``classes.txt`` at the VOC20xx or VOCdevkit level if present
            (:func:`read_class_file`; the ``VOC20xx`` folder is searched first), else the 20 VOC classes in the
            standard order.
        with_masks: also return instance masks from ``SegmentationObject/<id>.png`` (k-th object of the XML =
            index k+1 in the PNG). Every image of the split must have one, else DataError at construction (use a
            ``ImageSets/Segmentation`` split list, where all do).
        transforms: ``transforms(image, target) -> (image, target)``, e.g. a torchvision ``transforms.v2`` chain.

    Attributes:
        classes: ``["__background__", c1, ..., cK]``; labels are 1..K.
        supercategories: class name -> super-category (:data:`VOC_SUPERCATEGORIES` for VOC classes, the class
            file's second column for custom lists), or None.
        image_ids: int id per image (digits of the name: ``000342`` -> 342, ``2007_001763`` -> 2007001763).
        image_names: the split file's names.
        root: the resolved ``VOC20xx`` folder.

    ``load_target(i)`` / ``__getitem__(i)`` target dict (N objects, in XML order):
        boxes: ``tv_tensors.BoundingBoxes`` float32 [N, 4] XYXY pixels, canvas_size (H, W).
        labels: int64 [N] in 1..K. image_id: int. ignore: bool [N] (``<difficult>``).
        area: float32 [N] box area in pixels^2.
        masks: ``tv_tensors.Mask`` uint8 [N, H, W] (only with ``with_masks=True``).
        truncated: bool [N] — only if some object of the split has ``<truncated>``.
        occluded: bool [N] — only if some object of the split has ``<occluded>`` (VOC2010 and later annotate it:
            a significant part of the object inside its box is hidden by another object; VOC2007 does not).
        visible_fraction: float32 [N], NaN where absent — only if some object has ``<visible_fraction>``.
        part_boxes: ``tv_tensors.BoundingBoxes`` float32 [N, 4] XYXY pixels, NaN rows where absent (first
            ``<part>`` with a ``<bndbox>``; a BoundingBoxes so geometric v2 transforms move it with the image) —
            only if some object has a part.
        The optional fields are present in every target of the dataset or in none.

    Raises:
        DataError: see the module docstring (annotation problems at construction, image problems at access).
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "trainval", *, year: str | int | None = None,
                 classes: Sequence[str] | None = None, with_masks: bool = False,
                 transforms: Callable | None = None):
        split_rel = f"ImageSets/Main/{image_set}.txt"
        self.root = resolve_voc_dir(root, year, split_rel)
        self.image_set = image_set
        self.with_masks = with_masks
        self.transforms = transforms
        names, supers = _class_list(self.root, Path(root).expanduser(), classes)
        self.classes: list[str] = [BACKGROUND, *names]
        self.supercategories: dict[str, str] | None = supers
        class_to_label = {c: i for i, c in enumerate(self.classes) if i > 0}
        self.image_names: list[str] = read_split_file(self.root / split_rel)
        ann_dir, jpeg_dir = self.root / "Annotations", self.root / "JPEGImages"
        self._records: list[_Record] = []
        for name in self.image_names:
            xml_path = ann_dir / f"{name}.xml"
            if not xml_path.is_file():
                raise DataError(xml_path, f"annotation is missing (image {name!r} is named by {split_rel})")
            self._records.append(_parse_annotation(xml_path, name, jpeg_dir, class_to_label))
        self.image_ids: list[int] = image_id_from_name(self.image_names)
        self._optional = {f for f in ("truncated", "occluded", "visible_fraction", "part_boxes")
                          if any(getattr(r, f) is not None for r in self._records)}
        if with_masks:
            for name in self.image_names:
                png = self.root / "SegmentationObject" / f"{name}.png"
                if not png.is_file():
                    raise DataError(png, "instance mask PNG is missing (with_masks=True needs SegmentationObject/ "
                                         "for every image of the split; use an ImageSets/Segmentation list)")

    def __len__(self) -> int:
        return len(self._records)

    def image_path(self, i: int) -> Path:
        """Path of image ``i``'s JPEG."""
        return self._records[i].image_file

    def image_size(self, i: int) -> tuple[int, int]:
        """``(H, W)`` in pixels of image ``i`` from its annotation (no decoding)."""
        r = self._records[i]
        return r.height, r.width

    def load_target(self, i: int) -> dict:
        """Target dict of image ``i`` without decoding the image (and without masks); see the class docstring."""
        r = self._records[i]
        hw = (r.height, r.width)
        boxes = torch.from_numpy(r.boxes.copy())
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=hw),
            "labels": torch.from_numpy(r.labels.copy()),
            "image_id": self.image_ids[i],
            "ignore": torch.from_numpy(r.ignore.copy()),
            "area": (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
        }
        n = len(r.labels)
        if "truncated" in self._optional:
            target["truncated"] = (torch.from_numpy(r.truncated.copy()) if r.truncated is not None
                                   else torch.zeros(n, dtype=torch.bool))
        if "occluded" in self._optional:
            target["occluded"] = (torch.from_numpy(r.occluded.copy()) if r.occluded is not None
                                  else torch.zeros(n, dtype=torch.bool))
        if "visible_fraction" in self._optional:
            target["visible_fraction"] = (torch.from_numpy(r.visible_fraction.copy()) if r.visible_fraction is not None
                                          else torch.full((n,), float("nan")))
        if "part_boxes" in self._optional:
            pb = (torch.from_numpy(r.part_boxes.copy()) if r.part_boxes is not None
                  else torch.full((n, 4), float("nan")))
            target["part_boxes"] = tv_tensors.BoundingBoxes(pb, format="XYXY", canvas_size=hw)
        return target

    def load_masks(self, i: int) -> tv_tensors.Mask:
        """Instance masks of image ``i``: ``tv_tensors.Mask`` uint8 [N, H, W] (1 = object k's pixels; void = 0).

        Raises:
            DataError: missing PNG, size different from the annotation, or an instance index > N.
        """
        r = self._records[i]
        png = self.root / "SegmentationObject" / f"{r.name}.png"
        inst = read_index_png(png)
        check_image_size(png, inst.shape, (r.height, r.width))
        n = len(r.labels)
        present = np.unique(inst)
        extra = present[(present > n) & (present != 255)]
        if extra.size:
            raise DataError(png, f"instance index {int(extra[0])} but the annotation has {n} objects")
        masks = (inst[None, :, :] == np.arange(1, n + 1, dtype=np.uint8)[:, None, None]).astype(np.uint8)
        return tv_tensors.Mask(torch.from_numpy(masks).reshape(n, r.height, r.width))


    def __repr__(self) -> str:
        return (f"VOCDetection(root={str(self.root)!r}, image_set={self.image_set!r}, images={len(self)}, "
                f"classes={len(self.classes) - 1})")


class VOCSegmentation(Dataset):
    """PASCAL VOC semantic (or instance) segmentation split: ``ImageSets/Segmentation/<image_set>.txt``.

    Serves the segmentation transfer of the paper (Table 4, VOC2012 val mIoU).

    Args:
        root: a ``VOCdevkit`` or ``VOC20xx`` folder (see :func:`resolve_voc_dir`).
        image_set: split name (``train`` / ``val`` / ``trainval``).
        year: picks ``VOC<year>`` inside a ``VOCdevkit``.
        transforms: ``transforms(image, mask) -> (image, mask)``.
        target: ``"class"`` (``SegmentationClass``, class index per pixel) or ``"object"``
            (``SegmentationObject``, instance index per pixel).
        classes: as for :class:`VOCDetection` (label file or the 20 VOC classes); class PNG values must be
            ``0..K`` or 255.

    Returns (``__getitem__``):
        ``(tv_tensors.Image uint8 [3, H, W], tv_tensors.Mask uint8 [H, W])`` with 0 = background, 255 = void.

    Raises:
        DataError: missing root / split file / JPEG / PNG (at construction); corrupt image, image and PNG of
        different sizes, or (``target="class"``) a class index > K (at access).
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "val", *, year: str | int | None = None,
                 transforms: Callable | None = None, target: str = "class", classes: Sequence[str] | None = None):
        if target not in ("class", "object"):
            raise ValueError(f"target must be 'class' or 'object', not {target!r}")
        split_rel = f"ImageSets/Segmentation/{image_set}.txt"
        self.root = resolve_voc_dir(root, year, split_rel)
        self.image_set = image_set
        self.target = target
        self.transforms = transforms
        names, supers = _class_list(self.root, Path(root).expanduser(), classes)
        self.classes: list[str] = [BACKGROUND, *names]
        self.supercategories = supers
        self.image_names: list[str] = read_split_file(self.root / split_rel)
        self.image_ids: list[int] = image_id_from_name(self.image_names)
        mask_dir = self.root / ("SegmentationClass" if target == "class" else "SegmentationObject")
        self._images: list[Path] = []
        self._masks: list[Path] = []
        for name in self.image_names:
            img, png = self.root / "JPEGImages" / f"{name}.jpg", mask_dir / f"{name}.png"
            if not img.is_file():
                raise DataError(img, f"image is missing (named by {split_rel})")
            if not png.is_file():
                raise DataError(png, f"label PNG is missing (named by {split_rel})")
            self._images.append(img)
            self._masks.append(png)

    def __len__(self) -> int:
        return len(self._images)

    def image_path(self, i: int) -> Path:
        """Path of image ``i``'s JPEG."""
        return self._images[i]

    def mask_path(self, i: int) -> Path:
        """Path of image ``i``'s label PNG."""
        return self._masks[i]

    def load_mask(self, i: int) -> tv_tensors.Mask:
        """Label map of image ``i`` without decoding the JPEG: ``tv_tensors.Mask`` uint8 [H, W], 255 = void."""
        arr = read_index_png(self._masks[i])
        if self.target == "class":
            bad = np.unique(arr[(arr >= len(self.classes)) & (arr != 255)])
            if bad.size:
                raise DataError(self._masks[i], f"class index {int(bad[0])} is not one of 0..{len(self.classes) - 1} "
                                                "or 255 (void)")
        return tv_tensors.Mask(torch.from_numpy(arr))

    def __getitem__(self, i: int):
        image = decode_image(self._images[i])
        mask = self.load_mask(i)
        check_image_size(self._masks[i], tuple(mask.shape), tuple(image.shape[-2:]))
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask

    def __repr__(self) -> str:
        return (f"VOCSegmentation(root={str(self.root)!r}, image_set={self.image_set!r}, target={self.target!r}, "
                f"images={len(self)})")
