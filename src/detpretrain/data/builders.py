"""From a :class:`~detpretrain.config.DataSpec` to a dataset with the right transforms.

One function per task: :func:`build_detection_dataset` (VOC / COCO readers; the synthetic corpus is written in the
same layouts, so it goes through the same readers) and :func:`build_classification_dataset` (class folders).
Transforms are torchvision ``transforms.v2``; boxes travel as ``tv_tensors.BoundingBoxes`` so a horizontal flip
moves them with the image.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.transforms import v2

from detpretrain.config import DataSpec
from detpretrain.errors import DataError

#: torchvision's ImageNet statistics; the detector's ``GeneralizedRCNNTransform`` uses the same ones internally.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def corpus_cache_dir() -> Path:
    """Where generated corpora live: ``$DETPRETRAIN_DATA`` or ``data/generated`` (git-ignored)."""
    return Path(os.environ.get("DETPRETRAIN_DATA", "data/generated"))


def corpus_root(spec: DataSpec) -> Path:
    """The on-disk root of a data spec; generates the synthetic corpus on first use (cached by its spec)."""
    if spec.kind != "synthetic":
        root = Path(spec.root).expanduser()
        if not root.exists():
            raise DataError(root, "data_root does not exist")
        return root
    from detpretrain.data import synthetic

    return Path(synthetic.generate(synthetic.CorpusSpec(**spec.corpus), corpus_cache_dir()))


def detection_transforms(train: bool, hflip: bool = True) -> v2.Compose:
    """uint8 image + target -> float image in [0, 1] (+ random horizontal flip for training)."""
    ops = [v2.RandomHorizontalFlip(0.5)] if (train and hflip) else []
    return v2.Compose([*ops, v2.ToDtype(torch.float32, scale=True)])


def classification_transforms(train: bool, size: int | None, hflip: bool = True) -> v2.Compose:
    """uint8 image -> normalised float [3, size, size]; ``size=None`` keeps the image size (synthetic corpora).

    Training on real images uses ``RandomResizedCrop`` (the standard ImageNet recipe); evaluation resizes the short
    side to ``size / 0.875`` and centre-crops ``size``.
    """
    ops: list = []
    if size is not None:
        ops += [v2.RandomResizedCrop(size, antialias=True)] if train else [
            v2.Resize(int(round(size / 0.875)), antialias=True), v2.CenterCrop(size)]
    if train and hflip:
        ops.append(v2.RandomHorizontalFlip(0.5))
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return v2.Compose(ops)


def build_detection_dataset(spec: DataSpec, split: str, *, train: bool, hflip: bool = True, with_masks: bool = False):
    """A detection dataset (VOC or COCO reader) for ``split`` of ``spec``.

    Synthetic corpora of role ``"voc"`` are in VOC layout, the others (``"coco"``, ``"imagenet_loc"``) in COCO
    layout. Real COCO roots hold ``annotations/instances_<split>.json`` and ``<split>/``.

    Raises:
        DataError: missing root, split or annotation file (from the readers).
    """
    from detpretrain.data.coco import CocoDetection
    from detpretrain.data.voc import VOCDetection

    root = corpus_root(spec)
    tf = detection_transforms(train, hflip)
    layout = spec.kind
    if spec.kind == "synthetic":
        layout = "voc" if spec.corpus["role"] == "voc" else "coco"
    if layout == "voc":
        parts = []
        for part in split.split("+"):  # "2007:trainval+2012:trainval" = VOC 07+12 (the paper's training set)
            year, _, image_set = part.rpartition(":")
            parts.append(VOCDetection(root, image_set=image_set, year=year or spec.year, with_masks=with_masks,
                                      transforms=tf))
        return parts[0] if len(parts) == 1 else ConcatDetection(parts)
    if layout == "coco":
        ann = root / "annotations" / f"instances_{split}.json"
        return CocoDetection(root / split, ann, with_masks=with_masks, transforms=tf)
    raise DataError(root, f"data kind {spec.kind!r} is not a detection format (voc or coco)")


class ConcatDetection(torch.utils.data.ConcatDataset):
    """Several detection datasets with the same classes as one (e.g. VOC 2007 + 2012 trainval).

    Raises:
        DataError: the parts disagree on the class list.
    """

    def __init__(self, datasets):
        super().__init__(datasets)
        self.classes = list(datasets[0].classes)
        for d in datasets[1:]:
            if list(d.classes) != self.classes:
                raise DataError(getattr(d, "root", "dataset"), "class lists of the concatenated datasets differ")


def build_classification_dataset(spec: DataSpec, split: str, *, train: bool, size: int | None, hflip: bool = True):
    """A classification dataset for ``split`` of ``spec``.

    Class folders (``<root>/<split>/<class>/*.jpg``) for folder data and the synthetic ImageFolder roles; for a
    synthetic detection corpus in COCO layout (``imagenet_loc``) the same images with image-level labels only
    (IMAGENET-LOC (Cls), :class:`~detpretrain.data.classification.ImageLevelLabels`).
    """
    from detpretrain.data.classification import ClassFolder, ImageLevelLabels

    root = corpus_root(spec)
    size = None if spec.kind == "synthetic" else size
    tf = classification_transforms(train, size, hflip)
    if spec.kind == "synthetic" and spec.corpus["role"] == "imagenet_loc":
        return ImageLevelLabels(root / split, root / "annotations" / f"instances_{split}.json", transforms=tf)
    return ClassFolder(root, split=split, transforms=tf)


def collate_detection(batch):
    """List of (image, target) -> (tuple of images, tuple of targets): torchvision detectors take lists."""
    return tuple(zip(*batch))


def training_target(target: dict) -> dict:
    """The boxes and labels a torchvision detector trains on: plain tensors, ``ignore`` (difficult/crowd) removed."""
    boxes = target["boxes"].as_subclass(torch.Tensor)
    labels = target["labels"]
    keep = ~target["ignore"] if "ignore" in target else torch.ones(len(labels), dtype=torch.bool)
    return {"boxes": boxes[keep].reshape(-1, 4), "labels": labels[keep]}
