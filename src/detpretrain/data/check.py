"""``python -m detpretrain data check ROOT --format {voc,coco,folder}``: count and validate a dataset.

Reads every split of a dataset with the project's own readers (so it validates exactly what training will read),
optionally decodes every image (so a corrupt or truncated JPEG is found before any training starts), and prints one
table row per split: images, instances, ignored instances (VOC difficult / COCO crowd) and classes present.

Splits found:
    voc     ``root`` is a VOCdevkit (every ``VOC20xx`` inside) or one ``VOC20xx`` folder; detection splits
            ``ImageSets/Main/{train,val,trainval,test}.txt`` and every ``ImageSets/Segmentation/*.txt``.
    coco    every ``annotations/instances_<split>.json`` with its image folder ``<split>/``.
    folder  class folders: the sub-folders of ``root`` that hold class folders (``train/valid/test``) or ``root``
            itself as one split; Oxford-IIIT Pet (``images/`` + ``annotations/{trainval,test}.txt``) is read through
            its list files, and torchvision's layouts (``flowers-102/``, ``oxford-iiit-pet/``, ``caltech256/``,
            ``SUN397/``) through torchvision's datasets (Caltech-256 and SUN-397 with their drawn train / test).

Bad data: the first :class:`~detpretrain.errors.DataError` is printed as one line
``error: DataError: <path>: <problem>`` on stderr and the exit status is 1 (no traceback).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

import numpy as np

from detpretrain.data._io import require_dir
from detpretrain.errors import DataError

__all__ = ["check_command", "summarize", "format_table"]

MAIN_SPLITS = ("train", "val", "trainval", "test")


def _detection_row(ds, decode_images: bool) -> dict:
    labels, ignored, n_inst = Counter(), 0, 0
    for i in range(len(ds)):
        if decode_images:
            _, t = ds[i]  # decodes the image, checks its size against the annotation, decodes masks if any
        else:
            t = ds.load_target(i)
        lab = t["labels"].tolist()
        labels.update(lab)
        n_inst += len(lab)
        ignored += int(t["ignore"].sum())
    return {"images": len(ds), "instances": n_inst, "ignored": ignored, "classes": len(labels),
            "num_classes": len(ds.classes) - 1, "dropped": len(getattr(ds, "dropped", ())),
            "per_class": {ds.classes[k]: labels[k] for k in sorted(labels)}}


def _segmentation_row(ds, decode_images: bool) -> dict:
    present: Counter = Counter()
    for i in range(len(ds)):
        mask = ds[i][1] if decode_images else ds.load_mask(i)
        values = np.unique(mask.numpy())
        present.update(int(v) for v in values if v not in (0, 255))
    names = ds.classes if ds.target == "class" else None
    return {"images": len(ds), "instances": None, "ignored": None, "classes": len(present),
            "num_classes": len(ds.classes) - 1 if ds.target == "class" else None,
            "per_class": {(names[k] if names and k < len(names) else str(k)): c for k, c in sorted(present.items())}}


def _classification_row(ds, decode_images: bool) -> dict:
    if decode_images:
        for i in range(len(ds)):
            ds[i]
    counts = Counter(ds.targets)
    return {"images": len(ds), "instances": None, "ignored": None, "classes": len(counts),
            "num_classes": len(ds.classes), "per_class": {ds.classes[k]: counts[k] for k in sorted(counts)}}


def _voc_splits(root: Path, decode_images: bool) -> dict:
    from detpretrain.data.voc import VOCDetection, VOCSegmentation

    if (root / "ImageSets").is_dir():
        years = [(root, None)]
    else:
        years = [(d, d.name[3:]) for d in sorted(root.iterdir()) if d.is_dir() and d.name.startswith("VOC")
                 and d.name[3:].isdigit()]
        if not years:
            raise DataError(root, "is neither a VOC20xx folder (no ImageSets/) nor a VOCdevkit (no VOC20xx folder)")
    out: dict[str, dict] = {}
    for ydir, year in years:
        prefix = f"{ydir.name}/" if re.fullmatch(r"VOC\d{4}", ydir.name) else ""
        for s in MAIN_SPLITS:
            if (ydir / "ImageSets" / "Main" / f"{s}.txt").is_file():
                ds = VOCDetection(root, s, year=year)
                out[f"{prefix}{s}"] = _detection_row(ds, decode_images)
        seg_dir = ydir / "ImageSets" / "Segmentation"
        for f in sorted(seg_dir.glob("*.txt")) if seg_dir.is_dir() else []:
            ds = VOCSegmentation(root, f.stem, year=year)
            out[f"{prefix}seg-{f.stem}"] = _segmentation_row(ds, decode_images)
    if not out:
        raise DataError(root, "no split file in ImageSets/Main/{train,val,trainval,test}.txt or "
                              "ImageSets/Segmentation/*.txt")
    return out


def _coco_splits(root: Path, decode_images: bool, strict: bool = False) -> dict:
    from detpretrain.data.coco import CocoDetection

    ann_dir = require_dir(root / "annotations", "COCO annotations folder")
    files = sorted(ann_dir.glob("instances_*.json"))
    if not files:
        raise DataError(ann_dir, "has no instances_*.json")
    out = {}
    for f in files:
        split = f.stem[len("instances_"):]
        img_dir = root / split
        if not img_dir.is_dir():
            raise DataError(img_dir, f"image folder of {f.name} is missing")
        out[split] = _detection_row(CocoDetection(img_dir, f, strict=strict), decode_images)
    return out


def _folder_splits(root: Path, decode_images: bool) -> dict:
    from detpretrain.data.classification import (
        SPLITS,
        TORCHVISION_DATASETS,
        ClassFolder,
        OxfordPet,
        class_folder_splits,
        is_pet_layout,
        is_torchvision_layout,
        torchvision_classification,
    )

    for name in TORCHVISION_DATASETS:  # torchvision's layouts (flowers-102/, oxford-iiit-pet/, caltech256/, SUN397/)
        if is_torchvision_layout(name, root):
            return {s: _classification_row(torchvision_classification(name, root, s), decode_images)
                    for s in SPLITS[name]}
    if is_pet_layout(root):
        splits = [s for s in ("trainval", "test") if (root / "annotations" / f"{s}.txt").is_file()]
        return {s: _classification_row(OxfordPet(root, s), decode_images) for s in splits}
    splits = class_folder_splits(root)
    if not splits:
        return {".": _classification_row(ClassFolder(root), decode_images)}
    return {s: _classification_row(ClassFolder(root, s), decode_images) for s in splits}


def summarize(root: str, fmt: str, *, decode_images: bool = True, strict: bool = False) -> dict:
    """Per-split counts of a dataset, validating every annotation (and every image if ``decode_images``).

    Args:
        root: dataset root (see the module docstring for each format's layout).
        fmt: ``"voc"``, ``"coco"`` or ``"folder"``.
        decode_images: decode every image (finds corrupt / truncated files and size mismatches).
        strict: COCO: a box with zero width or height is an error instead of a counted drop.

    Returns:
        ``{"root", "format", "decoded": bool, "splits": {name: {"images", "instances", "ignored", "classes",
        "num_classes", "per_class", "dropped"}}}``; ``dropped`` = degenerate COCO boxes left out; ``classes`` = number of classes with at least one instance (detection),
        labelled pixel (segmentation) or image (folder); ``per_class`` = class name -> instances / images (pixel
        maps: images containing the class); ``instances`` / ``ignored`` are None for classification and
        segmentation splits.

    Raises:
        DataError: the first bad file met (missing root, split file, image or annotation; bad box; unknown class;
        corrupt image ...).
    """
    base = require_dir(root, "data root")
    readers = {"voc": _voc_splits, "coco": _coco_splits, "folder": _folder_splits}
    if fmt not in readers:
        raise ValueError(f"format must be one of {sorted(readers)}, not {fmt!r}")
    splits = (_coco_splits(base, decode_images, strict) if fmt == "coco" else readers[fmt](base, decode_images))
    return {"root": str(base), "format": fmt, "decoded": decode_images, "strict": strict, "splits": splits}


def format_table(summary: dict) -> str:
    """The summary as a plain-text table (split | images | instances | ignored | dropped | classes), one row per
    split; ``dropped`` counts degenerate COCO boxes left out (``-`` where the format drops nothing)."""
    head = ("split", "images", "instances", "ignored", "dropped", "classes")
    rows = []
    for name, s in summary["splits"].items():
        classes = str(s["classes"]) + (f"/{s['num_classes']}" if s.get("num_classes") else "")
        rows.append((name, str(s["images"]), "-" if s["instances"] is None else str(s["instances"]),
                     "-" if s["ignored"] is None else str(s["ignored"]),
                     str(s["dropped"]) if summary["format"] == "coco" else "-", classes))
    widths = [max(len(r[k]) for r in (head, *rows)) for k in range(len(head))]
    fmt_row = lambda r: "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines = [fmt_row(head), "  ".join("-" * w for w in widths), *map(fmt_row, rows)]
    if summary["format"] == "folder":
        for name, s in summary["splits"].items():
            lines.append(f"{name} images per class: " + ", ".join(f"{c} {n}" for c, n in s["per_class"].items()))
    return "\n".join(lines)


def check_command(root: str, fmt: str, *, decode_images: bool = True, strict: bool = False,
                  stream: TextIO | None = None) -> int:
    """The ``data check`` command: print the per-split table to ``stream`` (default: the current ``sys.stdout``);
    return the exit status.

    Returns:
        0 if every split reads (and every image decodes when ``decode_images``); 1 after printing one line
        ``error: DataError: <path>: <problem>`` to stderr on the first bad file.
    """
    try:
        summary = summarize(root, fmt, decode_images=decode_images, strict=strict)
    except DataError as err:
        print(f"error: DataError: {err}", file=sys.stderr)
        return 1
    stream = sys.stdout if stream is None else stream
    n_images = sum(s["images"] for s in summary["splits"].values())
    print(f"{summary['root']} ({fmt})", file=stream)
    print(format_table(summary), file=stream)
    done = "decoded and checked" if decode_images else "annotations checked, images NOT decoded (--no-decode) for"
    print(f"ok: {done} {n_images} images in {len(summary['splits'])} split(s)", file=stream)
    dropped = sum(s.get("dropped", 0) for s in summary["splits"].values())
    if dropped:
        print(f"note: {dropped} degenerate box(es) (zero width or height) dropped, as training will drop them; "
              f"--strict makes them an error", file=stream)
    return 0
