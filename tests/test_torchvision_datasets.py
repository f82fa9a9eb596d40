"""The classification transfer's real datasets through torchvision (Flowers102, OxfordIIITPet, Caltech256, SUN397).

No internet here: torchvision's expected layouts are built in temporary folders from the genuine subsets in
../shared/data (symlinks to their images; Flowers-102's .mat files written with scipy from the Udacity subset's
folders) and read with ``download=False``; ``download=True`` is checked to reach torchvision's classes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets, tv_tensors

from detpretrain.config import DataSpec
from detpretrain.data import classification as C
from detpretrain.data.builders import build_classification_dataset
from detpretrain.data.check import summarize
from detpretrain.data.fingerprint import with_fingerprint
from detpretrain.errors import DataError
from detpretrain.experiments import features as F


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src)


@pytest.fixture
def tv_pet(tmp_path, pet_subset) -> Path:
    """``<root>/oxford-iiit-pet/{images, annotations}``: torchvision's layout of the genuine 3-breed subset."""
    root = tmp_path / "pet"
    _link(pet_subset / "images", root / "oxford-iiit-pet" / "images")
    _link(pet_subset / "annotations", root / "oxford-iiit-pet" / "annotations")
    return root


@pytest.fixture
def tv_flowers(tmp_path, flowers_subset, monkeypatch) -> Path:
    """``<root>/flowers-102/{jpg/, imagelabels.mat, setid.mat}`` from the Udacity subset's folders: the folder is the
    official label (1-based), the Udacity train / valid / test folders become trnid / valid / tstid."""
    from scipy.io import savemat

    root = tmp_path / "flowers"
    labels = np.zeros(8189, dtype=np.uint8)
    ids = {"trnid": [], "valid": [], "tstid": []}
    for split, key in (("train", "trnid"), ("valid", "valid"), ("test", "tstid")):
        for f in sorted((flowers_subset / split).glob("*/*.jpg")):
            _link(f, root / "flowers-102" / "jpg" / f.name)
            iid = int(f.stem.split("_")[1])
            labels[iid - 1] = int(f.parent.name)
            ids[key].append(iid)
    savemat(root / "flowers-102" / "imagelabels.mat", {"labels": labels[None, :]})
    savemat(root / "flowers-102" / "setid.mat", {k: np.array([v]) for k, v in ids.items()})
    monkeypatch.setattr(datasets.Flowers102, "_check_integrity", lambda self: True)  # our .mat files lack the md5
    return root


@pytest.fixture
def tv_caltech(tmp_path, flowers_subset) -> Path:
    """A tiny Caltech-256 (``caltech256/256_ObjectCategories/<NNN.name>/<NNN>_<MMMM>.jpg``): 3 classes of genuine
    flower photographs, 5, 4 and 6 images."""
    root = tmp_path / "caltech"
    for k, (folder, n) in enumerate((("1", 5), ("2", 4), ("3", 6)), start=1):
        for m, f in enumerate(sorted((flowers_subset / "train" / folder).glob("*.jpg"))[:n], start=1):
            _link(f, root / "caltech256" / "256_ObjectCategories" / f"{k:03d}.flower-{folder}" / f"{k:03d}_{m:04d}.jpg")
    return root


@pytest.fixture
def tv_sun(tmp_path, pet_subset) -> Path:
    """A tiny SUN-397 (``SUN397/ClassName.txt`` + ``<letter>/<class>[/<sub>]/sun_*.jpg``) of genuine photographs,
    one class two levels deep as SUN's ``/b/bistro/indoor``."""
    root = tmp_path / "sun"
    classes = ["/a/abbey", "/b/bistro/indoor", "/c/cottage"]
    (root / "SUN397").mkdir(parents=True)
    (root / "SUN397" / "ClassName.txt").write_text("\n".join(classes) + "\n")
    images = sorted((pet_subset / "images").glob("*.jpg"))
    for k, cls in enumerate(classes):
        for m, f in enumerate(images[k * 20:k * 20 + 4]):
            _link(f, root / "SUN397" / cls.lstrip("/") / f"sun_{k}{m}x.jpg")
    return root


def test_pet_read_by_torchvision_equals_our_reader_of_the_bare_layout(tv_pet, pet_subset):
    for split, n in (("trainval", 150), ("test", 60)):
        ours = C.real_classification("pet", pet_subset, split)  # no oxford-iiit-pet/ folder: the list-file reader
        theirs = C.real_classification("pet", tv_pet, split)
        assert isinstance(ours, C.OxfordPet) and isinstance(theirs, C.TorchvisionClassification)
        assert len(theirs) == n and theirs.classes == ours.classes == ["Abyssinian", "American Bulldog", "Bengal"]
        assert theirs.targets == ours.targets  # contiguous labels 0..2 although Bengal's class id is 6
        assert [p.name for p, _ in theirs.samples] == [ours.image_path(i).name for i in range(len(ours))]
    image, label = theirs[0]
    assert isinstance(image, tv_tensors.Image) and image.dtype == torch.uint8 and image.shape[0] == 3


def test_flowers102_read_by_torchvision_matches_the_class_folders(tv_flowers, flowers_subset):
    for split, folder, n in (("train", "train", 427), ("val", "valid", 43), ("test", "test", 52)):
        theirs = C.real_classification("flowers102", tv_flowers, split)
        ours = C.real_classification("flowers102", flowers_subset, split)  # Udacity class folders: ImageFolder
        assert isinstance(theirs, C.TorchvisionClassification) and isinstance(ours, C.ClassFolder)
        assert len(theirs) == n == len(ours)
        pairs = sorted((p.name, t) for p, t in theirs.samples)
        assert pairs == sorted((Path(p).name, t) for p, t in ours.samples)  # official label - 1 = folder order
    assert theirs.classes[0] == "pink primrose" and len(theirs.classes) == 102
    image, label = theirs[5]
    assert image.dtype == torch.uint8 and 0 <= label < 10


def test_caltech256_splits_are_drawn_per_class_deterministically(tv_caltech):
    train = C.real_classification("caltech256", tv_caltech, "train")
    test = C.real_classification("caltech256", tv_caltech, "test")
    assert train.classes == ["flower-1", "flower-2", "flower-3"]
    assert Counter(train.targets) == {0: 4, 1: 3, 2: 5} and Counter(test.targets) == {0: 1, 1: 1, 2: 1}
    assert not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    assert [p.name for p, _ in C.real_classification("caltech256", tv_caltech, "train").samples] == \
        [p.name for p, _ in train.samples]
    assert train[0][0].shape[0] == 3
    assert not (tv_caltech.parent / "absent" / "caltech256").exists()
    with pytest.raises(DataError, match="Caltech256 not found.*download=True"):
        C.real_classification("caltech256", tv_caltech.parent, "train")
    assert not (tv_caltech.parent / "caltech256").exists()  # torchvision would have created it


def test_drawn_split_caps_test_and_keeps_one_test_image_per_class():
    labels = [0] * 120 + [1] * 3
    train = C.drawn_split(labels, "train", n_train=50, n_test=50)
    test = C.drawn_split(labels, "test", n_train=50, n_test=50)
    assert Counter(labels[i] for i in train) == {0: 50, 1: 2} and Counter(labels[i] for i in test) == {0: 50, 1: 1}
    shuffled = C.drawn_split(labels[::-1], "train", n_train=50, n_test=50)  # the draw of a class is its own
    assert len(shuffled) == 52
    with pytest.raises(DataError, match="class 2 has a single image"):
        C.drawn_split([0, 0, 2], "train", n_train=1, n_test=None)


def test_sun397_reads_nested_class_names_and_sorts_its_files(tv_sun):
    train = C.real_classification("sun397", tv_sun, "train")
    test = C.real_classification("sun397", tv_sun, "test")
    assert train.classes == ["abbey", "bistro/indoor", "cottage"]
    assert Counter(train.targets) == {0: 3, 1: 3, 2: 3} and len(test) == 3
    assert [p for p, _ in train.samples] == sorted(p for p, _ in train.samples)
    assert all(p.parent.name == "indoor" for p, t in train.samples if t == 1)


def test_download_is_passed_to_torchvision(tv_pet, tv_flowers, tv_caltech, tv_sun, monkeypatch):
    calls = []
    for name, cls_name in C.TORCHVISION_DATASETS.items():
        cls = getattr(datasets, cls_name)
        original = cls.__init__

        def recording(self, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, kwargs.get("download")))
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", recording)
    roots = {"pet": tv_pet, "flowers102": tv_flowers, "caltech256": tv_caltech, "sun397": tv_sun}
    for name, root in roots.items():  # the files are there: torchvision's download step returns without fetching
        split = C.SPLITS[name][-1]
        assert len(C.real_classification(name, root, split, download=True)) > 0
    assert {n for n, d in calls if d is True} == set(roots)
    calls.clear()
    data = F.probe_datasets("smoke", "pet", tv_pet, download=True)
    assert ("pet", True) in calls and len(data.test) == 60


def test_download_reaches_torchvision_for_an_empty_root(tmp_path, monkeypatch):
    seen = {}

    class Offline:
        def __init__(self, root, **kwargs):
            seen.update(kwargs, root=root)
            raise RuntimeError("no internet")

    monkeypatch.setattr(datasets, "SUN397", Offline)
    with pytest.raises(DataError, match="SUN397 not found or corrupted"):
        F.probe_datasets("smoke", "sun397", tmp_path / "new", download=True)
    assert seen["download"] is True and Path(seen["root"]) == (tmp_path / "new").resolve()
    with pytest.raises(DataError, match="data_root does not exist.*download=True"):
        F.probe_datasets("smoke", "sun397", tmp_path / "other")


def test_probe_datasets_on_torchvision_layouts(tv_pet, tv_flowers, tv_caltech, tv_sun):
    flowers = F.probe_datasets("smoke", "flowers102", tv_flowers)
    assert (len(flowers.train), len(flowers.val), len(flowers.test)) == (427, 43, 52) and not flowers.val_from_train
    assert flowers.test[0][0].shape == (3, 96, 96) and "torchvision" in flowers.describe
    pet = F.probe_datasets("smoke", "pet", tv_pet)
    assert pet.val_from_train and (len(pet.train), len(pet.val), len(pet.test)) == (120, 30, 60)
    caltech = F.probe_datasets("smoke", "caltech256", tv_caltech)
    assert caltech.paper_name == "CALTECH-256" and caltech.val_from_train and len(caltech.test) == 3
    assert len(caltech.train) + len(caltech.val) == 12
    sun = F.probe_datasets("smoke", "sun397", tv_sun)
    assert sun.paper_name == "SUN-397" and len(sun.classes) == 3


def test_fine_tuning_specs_read_and_fingerprint_each_kind(tv_pet, tv_flowers, tv_caltech, tv_sun, flowers_subset):
    roots = {"pet": tv_pet, "flowers102": tv_flowers, "caltech256": tv_caltech, "sun397": tv_sun}
    prints = set()
    for kind, root in roots.items():
        names = C.real_classification_splits(kind, root)
        spec = with_fingerprint(DataSpec(kind=kind, root=str(root), train_split=names["train"],
                                         eval_split=names["test"]))
        prints.add(spec.fingerprint)
        train = build_classification_dataset(spec, spec.train_split, train=True, size=32)
        image, label = train[0]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert len(prints) == 4
    udacity = with_fingerprint(DataSpec(kind="flowers102", root=str(flowers_subset), train_split="train",
                                        eval_split="test"))
    assert udacity.fingerprint not in prints
    assert isinstance(build_classification_dataset(udacity, "test", train=False, size=32), C.ClassFolder)


def test_data_check_reads_torchvision_layouts(tv_caltech, tv_pet):
    caltech = summarize(str(tv_caltech), "folder", decode_images=False)["splits"]
    assert {s: v["images"] for s, v in caltech.items()} == {"train": 12, "test": 3}
    pet = summarize(str(tv_pet), "folder", decode_images=False)["splits"]
    assert {s: v["images"] for s, v in pet.items()} == {"trainval": 150, "test": 60}
