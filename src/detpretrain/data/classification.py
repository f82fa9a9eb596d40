"""Image-classification readers: class folders, torchvision's transfer datasets, and the bare Oxford-IIIT Pet layout.

Serve the classification pre-training role (IMAGENET-CLS; the synthetic corpus writes class folders) and the
classification-transfer experiments of the paper (Tables 5, 6, 8: Caltech-256 / SUN-397 / Flowers-102 linear probes
and fine-tuning; Oxford-IIIT Pet besides). Every reader returns ``(tv_tensors.Image uint8 [3, H, W] RGB, int label)``
with labels 0..K-1.

The four real transfer datasets are read through torchvision's own classes (:func:`torchvision_classification`:
``Flowers102``, ``OxfordIIITPet``, ``Caltech256``, ``SUN397``), which know the official layouts, the label files and,
with ``download=True``, where to fetch them. Two layouts torchvision cannot read are read here instead
(:func:`real_classification`): the Udacity folder-per-class repackaging of Flowers-102 (:class:`ClassFolder`, i.e.
torchvision ``ImageFolder``) and Oxford-IIIT Pet extracted by hand without torchvision's ``oxford-iiit-pet/`` folder
(:class:`OxfordPet`).

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

__all__ = ["ClassFolder", "ImageLevelLabels", "OxfordPet", "TorchvisionClassification", "class_folder_splits",
           "real_classification", "torchvision_classification"]

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
    """Oxford-IIIT Pet breed classification from the official list files, for roots torchvision cannot read.

    Layout (the official archives extracted by hand, or the 3-breed subset): ``root/images/<name>.jpg`` and
    ``annotations/{list,trainval,test}.txt`` with lines ``Image CLASS-ID SPECIES BREED-ID``.
    ``torchvision.datasets.OxfordIIITPet`` insists on a folder named ``oxford-iiit-pet`` below its root; where that
    folder exists, :func:`real_classification` reads it with torchvision instead.

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
# ---- torchvision's transfer datasets (Tables 5, 6, 8) ------------------------------------------------------------

#: our name -> torchvision dataset class name
TORCHVISION_DATASETS = {"flowers102": "Flowers102", "pet": "OxfordIIITPet", "caltech256": "Caltech256",
                        "sun397": "SUN397"}
#: the folder below ``root`` that torchvision reads (and downloads into)
TORCHVISION_FOLDERS = {"flowers102": "flowers-102", "pet": "oxford-iiit-pet", "caltech256": "caltech256",
                       "sun397": "SUN397"}
#: the splits of each dataset as read here: torchvision's own for Flowers-102 and Pet; drawn per class for the two
#: datasets torchvision serves whole (:data:`DRAWN_SPLITS`)
SPLITS = {"flowers102": ("train", "val", "test"), "pet": ("trainval", "test"), "caltech256": ("train", "test"),
          "sun397": ("train", "test")}
#: ``(training images per class, test images per class or None for all the others)`` of the splits drawn for
#: Caltech-256 and SUN-397, as in Kornblith et al. 2019 (the protocol of the paper's Tables 6 and 8): Caltech-256
#: 60 per class for training and the rest for test; SUN-397 50 / 50 per class, the size of its official partitions
#: (whose files torchvision does not fetch, so the images are drawn, with :data:`SPLIT_SEED`)
DRAWN_SPLITS = {"caltech256": (60, None), "sun397": (50, 50)}
SPLIT_SEED = 0


def drawn_split(labels, split: str, *, n_train: int, n_test: int | None, seed: int = SPLIT_SEED,
                source: str | os.PathLike = "dataset") -> list[int]:
    """Indices of ``split`` (``"train"`` or ``"test"``) drawn per class from one labelled list of images.

    For each class, its images (in the given order) are permuted with ``numpy.random.default_rng([seed, label])``;
    the first ``min(n_train, n - 1)`` go to train and the next ``n_test`` (all the others if None) to test, so every
    class keeps at least one test image and the draw of a class does not depend on the other classes.

    Returns:
        sorted indices into ``labels``.

    Raises:
        DataError: a class with a single image (it cannot be in both splits), or an unknown split.
    """
    import numpy as np

    if split not in ("train", "test"):
        raise DataError(source, f"unknown split {split!r}; expected train or test")
    labels = np.asarray(labels)
    out: list[int] = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if len(idx) < 2:
            raise DataError(source, f"class {int(label)} has a single image; it cannot be in train and test")
        order = idx[np.random.default_rng([seed, int(label)]).permutation(len(idx))]
        k = min(n_train, len(idx) - 1)
        out += (order[:k] if split == "train" else order[k:k + n_test if n_test is not None else None]).tolist()
    return sorted(out)


class TorchvisionClassification(Dataset):
    """One split of a torchvision classification dataset under this package's reader contract.

    torchvision decides which files belong to the split and their labels (and downloads them); images are decoded by
    :func:`detpretrain.data._io.decode_image` (uint8 ``tv_tensors.Image``, :class:`DataError` on a corrupt file),
    like every other reader here, then ``transforms`` is applied.

    Attributes:
        name: our dataset name (``flowers102``, ``pet``, ``caltech256``, ``sun397``). root: the root given.
        split: the split. classes: class names, index = label. targets: label per image. samples: ``(path, label)``.
    """

    def __init__(self, name: str, root: Path, split: str, samples: list[tuple[Path, int]], classes: list[str],
                 transforms: Callable | None = None):
        self.name, self.root, self.split = name, root, split
        self.samples, self.classes, self.transforms = samples, classes, transforms
        self.targets = [label for _, label in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def image_path(self, i: int) -> Path:
        """Path of image ``i``."""
        return Path(self.samples[i][0])

    def __getitem__(self, i: int):
        """``(tv_tensors.Image uint8 [3, H, W], label)`` after ``transforms`` (applied to the image)."""
        path, label = self.samples[i]
        image = decode_image(path)
        return (self.transforms(image) if self.transforms is not None else image), label

    def __repr__(self) -> str:
        return (f"TorchvisionClassification({self.name!r}, root={str(self.root)!r}, split={self.split!r}, "
                f"images={len(self)}, classes={len(self.classes)})")


def _torchvision(name: str, root: Path, download: bool, **kwargs):
    """The torchvision dataset object, its errors as DataError."""
    cls = getattr(datasets, TORCHVISION_DATASETS[name])
    try:
        return cls(str(root), download=download, **kwargs)
    except RuntimeError as err:
        raise DataError(root / TORCHVISION_FOLDERS[name], f"{TORCHVISION_DATASETS[name]} not found or corrupted "
                                                          f"({err}); pass download=True to fetch it") from err


def _pet_samples(root: Path, split: str, download: bool) -> tuple[list, list[str]]:
    # torchvision's labels are the official CLASS-ID - 1 and its ``classes`` names only the breeds of one split:
    # labels made contiguous over both splits (a subset of breeds, as the 3-breed sample, keeps labels 0..K-1)
    parts = {split: _torchvision("pet", root, download, split=split)}  # first: the one that may download
    parts.update({s: _torchvision("pet", root, False, split=s) for s in SPLITS["pet"] if s != split})
    names: dict[int, str] = {}
    for ds in parts.values():
        names.update(zip(sorted(set(ds._labels)), ds.classes))
    ids = sorted(names)
    label_of = {cid: i for i, cid in enumerate(ids)}
    ds = parts[split]
    return [(Path(p), label_of[c]) for p, c in zip(ds._images, ds._labels)], [names[c] for c in ids]


def torchvision_classification(name: str, root: str | os.PathLike, split: str, *, transforms: Callable | None = None,
                               download: bool = False) -> TorchvisionClassification:
    """Split ``split`` of torchvision's ``name`` dataset below ``root``.

    Args:
        name: ``flowers102`` (torchvision ``Flowers102``: ``root/flowers-102/{jpg/, imagelabels.mat, setid.mat}``,
            splits train / val / test, 1020 / 1020 / 6149 images, 102 classes), ``pet`` (``OxfordIIITPet``:
            ``root/oxford-iiit-pet/{images/, annotations/{trainval,test}.txt}``, splits trainval / test, labels made
            contiguous over the breeds present), ``caltech256`` (``Caltech256``:
            ``root/caltech256/256_ObjectCategories/<NNN.name>/<NNN>_<MMMM>.jpg``, 257 classes with clutter) or
            ``sun397`` (``SUN397``: ``root/SUN397/{ClassName.txt, <letter>/<class>/sun_*.jpg}``, 397 classes).
            Caltech-256 and SUN-397 have no split in torchvision: train / test are drawn per class
            (:func:`drawn_split`, :data:`DRAWN_SPLITS`).
        root: the dataset root (created by torchvision when ``download``).
        split: one of :data:`SPLITS` ``[name]``.
        transforms: applied to the decoded image.
        download: let torchvision fetch the files into ``root`` if they are not there (and check their md5 where
            torchvision knows it); needs internet. Without it a missing dataset is an error.

    Raises:
        DataError: an unknown split, a missing root or dataset folder (without ``download``), files torchvision
            finds missing or corrupted, or an image listed by the dataset that does not exist.
        ConfigError: an unknown dataset name.
    """
    from detpretrain.errors import ConfigError

    if name not in TORCHVISION_DATASETS:
        raise ConfigError(f"unknown torchvision classification dataset {name!r}; expected one of "
                          f"{', '.join(TORCHVISION_DATASETS)}")
    base = Path(root).expanduser()
    if split not in SPLITS[name]:
        raise DataError(base, f"{name} has no split {split!r}; splits: {', '.join(SPLITS[name])}")
    if download:
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = require_dir(base, f"{name} root")
        folder = base / TORCHVISION_FOLDERS[name]
        if not folder.is_dir():  # checked first: torchvision's Caltech256 would create the folder
            raise DataError(folder, f"{TORCHVISION_DATASETS[name]} not found (torchvision's layout); pass "
                                    "download=True to fetch it")
    if name == "flowers102":
        ds = _torchvision(name, base, download, split=split)
        samples, classes = [(Path(p), int(c)) for p, c in zip(ds._image_files, ds._labels)], list(ds.classes)
    elif name == "pet":
        samples, classes = _pet_samples(base, split, download)
    else:
        ds = _torchvision(name, base, download)
        if name == "caltech256":
            folder = Path(ds.root) / "256_ObjectCategories"
            samples = [(folder / ds.categories[y] / f"{y + 1:03d}_{k:04d}.jpg", int(y)) for y, k in zip(ds.y, ds.index)]
            classes = [c.split(".", 1)[-1] for c in ds.categories]
        else:  # SUN397 lists its files in file-system order: sorted here, so the draw is the same everywhere
            samples = sorted((Path(p), int(c)) for p, c in zip(ds._image_files, ds._labels))
            classes = list(ds.classes)
        n_train, n_test = DRAWN_SPLITS[name]
        keep = drawn_split([c for _, c in samples], split, n_train=n_train, n_test=n_test, source=base)
        samples = [samples[i] for i in keep]
    for path, _ in samples:
        if not path.is_file():
            raise DataError(path, f"image is missing (listed by torchvision's {TORCHVISION_DATASETS[name]}, "
                                  f"split {split!r})")
    return TorchvisionClassification(name, base, split, samples, classes, transforms)


def is_torchvision_layout(name: str, root: str | os.PathLike) -> bool:
    """True if ``root`` holds torchvision's folder of dataset ``name`` (:data:`TORCHVISION_FOLDERS`)."""
    return (Path(root).expanduser() / TORCHVISION_FOLDERS[name]).is_dir()


def real_classification(name: str, root: str | os.PathLike, split: str, *, transforms: Callable | None = None,
                        download: bool = False):
    """Split ``split`` of a real classification dataset, in whichever supported layout ``root`` holds.

    * torchvision's layout (:func:`torchvision_classification`), always when ``download``;
    * ``flowers102`` as class folders ``root/{train,valid,test}/<class>/`` (the Udacity repackaging, whose split is
      not the official one): :class:`ClassFolder`, with ``val`` read from ``valid/`` where there is no ``val/``;
    * ``pet`` extracted by hand (``root/{images/, annotations/}``, no ``oxford-iiit-pet/``): :class:`OxfordPet`.

    Raises:
        DataError, ConfigError: as the reader chosen.
    """
    if download or name not in ("flowers102", "pet") or is_torchvision_layout(name, root):
        return torchvision_classification(name, root, split, transforms=transforms, download=download)
    if name == "pet":
        if not is_pet_layout(root):
            raise DataError(Path(root).expanduser(), "not an Oxford-IIIT Pet root (expected oxford-iiit-pet/, or "
                                                     "images/ and annotations/trainval.txt)")
        return OxfordPet(root, split, transforms=transforms)
    base = require_dir(root, "flowers102 root")
    found = class_folder_splits(base)
    if split == "val" and "val" not in found and "valid" in found:
        split = "valid"
    if split not in found:
        raise DataError(base, f"neither torchvision's flowers-102/ nor class folders with a {split}/ split "
                              f"(found {', '.join(found) or 'none'})")
    return ClassFolder(base, split, transforms=transforms)


def real_classification_splits(name: str, root: str | os.PathLike, download: bool = False) -> dict[str, str]:
    """``{"train", "val" (None when the dataset has none), "test"}``: the split names :func:`real_classification`
    reads for the probes and fine-tuning of ``name`` at ``root``.

    Raises:
        DataError: a class-folder root (Udacity Flowers-102) without train/ and test/.
    """
    if name == "pet":
        return {"train": "trainval", "val": None, "test": "test"}
    if name in ("caltech256", "sun397"):
        return {"train": "train", "val": None, "test": "test"}
    if download or is_torchvision_layout(name, root):
        return {"train": "train", "val": "val", "test": "test"}
    base = require_dir(root, f"{name} root")
    found = class_folder_splits(base)
    if not {"train", "test"} <= set(found):
        raise DataError(base, f"expected torchvision's flowers-102/, or train/ and test/ class folders (and valid/ "
                              f"or val/), found {', '.join(found) or 'none'}")
    return {"train": "train", "val": "val" if ({"val", "valid"} & set(found)) else None, "test": "test"}
