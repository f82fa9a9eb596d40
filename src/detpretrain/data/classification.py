"""Image-classification readers: class folders, Oxford Flowers-102 (official layout) and Oxford-IIIT Pet.

Serve the classification pre-training role (IMAGENET-CLS; the synthetic corpus writes class folders) and the
classification-transfer experiments of the paper (Table 3: Caltech-256 / SUN-397 / Flowers-102 linear probes and
fine-tuning). Every reader returns ``(tv_tensors.Image uint8 [3, H, W] RGB, int label)`` with labels 0..K-1.

Bad-input policy (data/README.md): :class:`~detpretrain.errors.DataError` naming the file — missing root / split
folder / split file, a split file naming a missing image, a class folder without a name in ``cat_to_name.json``,
inconsistent class ids; a corrupt or truncated image when it is decoded. Nothing is dropped silently (files without
an image extension inside class folders are not images and are not listed, as in torchvision's ``ImageFolder``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import datasets

from detpretrain.data._io import decode_image, read_split_file, require_dir, require_file
from detpretrain.errors import DataError

__all__ = ["ClassFolder", "Flowers102Official", "ImageLevelLabels", "OxfordPet", "class_folder_splits"]

_IMG_EXT = datasets.folder.IMG_EXTENSIONS


def _subdirs(path: Path) -> list[Path]:
    return [d for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")]


def _sort_names(names) -> list[str]:
    names = list(names)
    return sorted(names, key=int) if names and all(n.isdigit() for n in names) else sorted(names)


def class_folder_splits(root: str | os.PathLike) -> list[str]:
    """Split sub-folders of a class-folder root: sub-folders that themselves hold sub-folders (class folders).

    ``root/{train,valid,test}/<class>/*.jpg`` -> ``["test", "train", "valid"]``; ``root/<class>/*.jpg`` -> ``[]``
    (the root is one split). Raises DataError if ``root`` does not exist.
    """
    base = require_dir(root, "class-folder root")
    splits = [d.name for d in _subdirs(base) if _subdirs(d)]
    if splits and len(splits) != len(_subdirs(base)):
        others = sorted(d.name for d in _subdirs(base) if d.name not in splits)
        raise DataError(base, f"mixes split folders ({', '.join(sorted(splits))}) with class folders without "
                              f"sub-folders ({', '.join(others)})")
    return sorted(splits)


class ClassFolder(datasets.ImageFolder):
    """Folder-per-class images (torchvision ``ImageFolder``): ``root[/split]/<class>/<image>``.

    Args:
        root: dataset root.
        split: sub-folder of ``root`` holding the class folders (``"train"``, ``"valid"``, ``"test"``), or None if
            the class folders are directly in ``root``.
        transforms: applied to the image (e.g. a torchvision ``transforms.v2`` chain).

    The class list is the union of the class folders of every split of ``root`` (so a label means the same class in
    train and test even if a split lacks a class), sorted numerically when all folder names are numbers (Flowers:
    ``1, 2, ..., 10``), else alphabetically. If ``cat_to_name.json`` (folder name -> class name, the Flowers-102
    repackaging's file) lies in ``root`` (or its parent when ``split`` is None), ``classes`` holds those names.

    Attributes:
        classes: class names, index = label. folder_names: the class folder names, index = label.
        targets: int label per image. samples: ``(path, label)`` per image.

    Raises:
        DataError: missing root / split, no image, or a class folder that ``cat_to_name.json`` does not name;
        corrupt image at access.
    """

    def __init__(self, root: str | os.PathLike, split: str | None = None, transforms: Callable | None = None):
        base = require_dir(root, "class-folder root")
        folder = base if split is None else require_dir(base / split, f"split folder {split!r}")
        if split is None and class_folder_splits(base):
            raise DataError(base, f"holds split folders ({', '.join(class_folder_splits(base))}); pass split=")
        split_dirs = [base / s for s in class_folder_splits(base)] if split is not None else [folder]
        names = {d.name for s in split_dirs for d in _subdirs(s)}
        if not names:
            raise DataError(folder, "has no class folders")
        self._folders = _sort_names(names)
        try:
            super().__init__(folder, transform=transforms, loader=decode_image, allow_empty=True)
        except (FileNotFoundError, ValueError) as err:
            raise DataError(folder, str(err)) from err
        if not self.samples:
            raise DataError(folder, f"has no image files ({', '.join(_IMG_EXT)}) in its class folders")
        self.split = split
        self.folder_names: list[str] = list(self._folders)
        mapping_file = next((d / "cat_to_name.json" for d in ([base] if split is not None else [base, base.parent])
                             if (d / "cat_to_name.json").is_file()), None)
        if mapping_file is not None:
            try:
                mapping = json.loads(mapping_file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise DataError(mapping_file, f"not valid JSON ({err})") from err
            missing = [f for f in self.folder_names if f not in mapping]
            if missing:
                raise DataError(mapping_file, f"has no name for class folder(s) {missing}")
            self.classes = [str(mapping[f]) for f in self.folder_names]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def find_classes(self, directory):  # torchvision hook: our class list, not just this split's folders
        return list(self._folders), {c: i for i, c in enumerate(self._folders)}

    def image_path(self, i: int) -> Path:
        """Path of image ``i``."""
        return Path(self.samples[i][0])


class Flowers102Official(datasets.Flowers102):
    """Oxford Flowers-102 in its official layout through ``torchvision.datasets.Flowers102``.

    ``root/flowers-102/{jpg/, imagelabels.mat, setid.mat}``; splits ``"train"`` / ``"val"`` / ``"test"``
    (official 1020 / 1020 / 6149 images). Pass ``download=True`` once to fetch the 330 MB archive from the Oxford
    VGG site (torchvision checks the md5 sums of the .mat files). Labels 0..101, ``classes`` = torchvision's names.

    Raises:
        DataError: the files are absent (and ``download=False``) or fail torchvision's integrity check; corrupt
        image at access.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", transforms: Callable | None = None,
                 download: bool = False):
        base = require_dir(root, "Flowers-102 root")
        try:
            super().__init__(base, split=split, transform=transforms, download=download, loader=decode_image)
        except RuntimeError as err:
            raise DataError(base / "flowers-102", "Flowers-102 not found or corrupted (needs jpg/, imagelabels.mat "
                                                  "and setid.mat with the official md5; pass download=True to fetch "
                                                  "them)") from err
        for f in self._image_files:
            if not f.is_file():
                raise DataError(f, f"image is missing (listed in setid.mat, split {split!r})")

    @property
    def targets(self) -> list[int]:
        """Label 0..101 per image."""
        return list(self._labels)

    def image_path(self, i: int) -> Path:
        return Path(self._image_files[i])


def _pet_rows(path: Path) -> list[tuple[str, int]]:
    rows = []
    for ln in path.read_text(encoding="utf-8").splitlines():
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        parts = ln.split()
        if len(parts) < 2 or not parts[1].isdigit() or not 1 <= int(parts[1]) <= 37:
            raise DataError(path, f"line {ln.strip()!r} is not 'Image CLASS-ID(1..37) SPECIES BREED-ID'")
        rows.append((parts[0], int(parts[1])))
    return rows


def _breed_name(image_name: str) -> str:
    return " ".join(part.title() for part in image_name.rsplit("_", 1)[0].split("_"))


class OxfordPet(Dataset):
    """Oxford-IIIT Pet breed classification from the official list files.

    Layout (official release, or the 3-breed subset): ``root[/oxford-iiit-pet]/images/<name>.jpg`` and
    ``annotations/{list,trainval,test}.txt`` with lines ``Image CLASS-ID SPECIES BREED-ID``. The lists are parsed
    here because ``torchvision.datasets.OxfordIIITPet`` insists on a folder named ``oxford-iiit-pet`` and labels
    ``CLASS-ID - 1``, which is not contiguous for a subset of breeds.

    Labels are contiguous 0..K-1 over the class ids of ``list.txt`` (else of trainval + test), in class-id order, so
    train and test agree. ``classes``: breed names as torchvision writes them (``"American Bulldog"``);
    ``class_ids``: official CLASS-ID per label.

    Raises:
        DataError: missing root / split file / image, a malformed line, or one breed with two class ids.
    """

    def __init__(self, root: str | os.PathLike, split: str = "trainval", transforms: Callable | None = None):
        base = require_dir(root, "Oxford-IIIT Pet root")
        if (base / "oxford-iiit-pet").is_dir():
            base = base / "oxford-iiit-pet"
        self.root, self.split, self.transforms = base, split, transforms
        ann = base / "annotations"
        split_file = require_file(ann / f"{split}.txt", "split file")
        read_split_file(split_file)  # shared checks: non-empty, no duplicates
        rows = _pet_rows(split_file)
        sources = [ann / "list.txt"] if (ann / "list.txt").is_file() else \
            [f for f in (ann / "trainval.txt", ann / "test.txt") if f.is_file()]
        all_rows = {split_file: rows, **{f: _pet_rows(f) for f in sources if f != split_file}}
        breed_of: dict[int, tuple[str, Path]] = {}
        for f, rs in all_rows.items():
            for name, cid in rs:
                breed = _breed_name(name)
                if cid in breed_of and breed_of[cid][0] != breed:
                    raise DataError(f, f"class id {cid} is {breed_of[cid][0]!r} in {breed_of[cid][1].name} but "
                                       f"{name!r} ({breed!r}) here")
                breed_of.setdefault(cid, (breed, f))
        self.class_ids: list[int] = sorted(breed_of)
        self.classes: list[str] = [breed_of[c][0] for c in self.class_ids]
        label_of = {c: i for i, c in enumerate(self.class_ids)}
        self.image_names = [n for n, _ in rows]
        self.targets: list[int] = [label_of[c] for _, c in rows]
        self._files: list[Path] = []
        for n in self.image_names:
            f = base / "images" / f"{n}.jpg"
            if not f.is_file():
                raise DataError(f, f"image is missing (named by {split_file.name})")
            self._files.append(f)

    def __len__(self) -> int:
        return len(self._files)

    def image_path(self, i: int) -> Path:
        return self._files[i]

    def __getitem__(self, i: int):
        """``(tv_tensors.Image uint8 [3, H, W], label)`` after ``transforms`` (applied to the image)."""
        image = decode_image(self._files[i])
        if self.transforms is not None:
            image = self.transforms(image)
        return image, self.targets[i]


def is_pet_layout(root: str | os.PathLike) -> bool:
    """True if ``root`` looks like Oxford-IIIT Pet (``images/`` and ``annotations/trainval.txt``)."""
    base = Path(root)
    if (base / "oxford-iiit-pet").is_dir():
        base = base / "oxford-iiit-pet"
    return (base / "images").is_dir() and (base / "annotations" / "trainval.txt").is_file()


def is_flowers_official_layout(root: str | os.PathLike) -> bool:
    """True if ``root`` holds torchvision's Flowers-102 layout (``flowers-102/imagelabels.mat``)."""
    return (Path(root) / "flowers-102" / "imagelabels.mat").is_file()



class ImageLevelLabels(Dataset):
    """A single-category-per-image COCO detection split read as classification: IMAGENET-LOC (Cls).

    Li et al. 2019 (Tables 2 and 7) pre-train a classifier on exactly the images of the IMAGENET-LOC detection
    pre-training, "with only class labels". Each image's label is the category of its boxes
    (:func:`detpretrain.data.synthetic.image_level_labels`); the boxes themselves are never read.

    Args:
        image_dir: folder of the split's images (``<root>/<split>``).
        annotation_file: its COCO json (``<root>/annotations/instances_<split>.json``).
        transforms: applied to the image.

    Attributes:
        classes: the json's category names in category-id order (index = label), so a corpus with a super-category
            removed keeps the label space of the full one. samples: ``(path, label)`` per image, file-name order.

    Raises:
        DataError: missing folder / file, an image with no or several categories, a listed image that is missing;
        corrupt image at access.
    """

    def __init__(self, image_dir: str | os.PathLike, annotation_file: str | os.PathLike,
                 transforms: Callable | None = None):
        from detpretrain.data.synthetic import image_level_labels

        folder = require_dir(image_dir, "image folder")
        ann = require_file(annotation_file, "COCO annotation file")
        labels = image_level_labels(ann)
        try:
            cats = sorted(json.loads(ann.read_text(encoding="utf-8"))["categories"], key=lambda c: c["id"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(ann, f"no readable category list ({err})") from err
        self.classes = [c["name"] for c in cats]
        index = {name: i for i, name in enumerate(self.classes)}
        self.samples = []
        for fname in sorted(labels):
            path = folder / fname
            if not path.is_file():
                raise DataError(path, f"image listed in {ann.name} is missing")
            self.samples.append((path, index[labels[fname]]))
        if not self.samples:
            raise DataError(ann, "lists no image")
        self.targets = [label for _, label in self.samples]
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, label = self.samples[i]
        image = decode_image(path)
        return (self.transforms(image) if self.transforms else image), label


class ImageMultiLabels(ImageLevelLabels):
    """A multi-category COCO detection split read as multi-label classification (Table 1's same-images control:
    a classifier that sees exactly the images of the detection pre-training, with which categories each holds and
    nothing about where).

    Args:
        image_dir: folder of the split's images; annotation_file: its COCO json; transforms: applied to the image.

    Attributes:
        classes: the json's category names in category-id order (index = label). samples: ``(path, multi-hot)``
            per image in the json's image order, multi-hot a float32 tensor [K] (1 where an instance of that
            category is annotated, crowd or not; all 0 for an image without annotations). Items are ``(image,
            multi-hot)`` (``__getitem__`` of :class:`ImageLevelLabels`).

    Raises:
        DataError: missing folder / file, unreadable json, an annotation of an unknown category or image, a listed
            image that is missing; corrupt image at access.
    """

    def __init__(self, image_dir: str | os.PathLike, annotation_file: str | os.PathLike,
                 transforms: Callable | None = None):
        folder = require_dir(image_dir, "image folder")
        ann = require_file(annotation_file, "COCO annotation file")
        try:
            data = json.loads(ann.read_text(encoding="utf-8"))
            cats = sorted(data["categories"], key=lambda c: c["id"])
            images = data["images"]
            annotations = data.get("annotations", [])
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(ann, f"not a readable COCO file ({err})") from err
        self.classes = [c["name"] for c in cats]
        index = {c["id"]: i for i, c in enumerate(cats)}
        row = {im["id"]: k for k, im in enumerate(images)}
        targets = torch.zeros(len(images), len(cats))
        for a in annotations:
            if a.get("category_id") not in index or a.get("image_id") not in row:
                raise DataError(ann, f"annotation {a.get('id')} names an unknown category or image")
            targets[row[a["image_id"]], index[a["category_id"]]] = 1.0
        self.samples = []
        for im, target in zip(images, targets):
            path = folder / im["file_name"]
            if not path.is_file():
                raise DataError(path, f"image listed in {ann.name} is missing")
            self.samples.append((path, target))
        if not self.samples:
            raise DataError(ann, "lists no image")
        self.transforms = transforms
