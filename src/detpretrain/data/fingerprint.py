"""Dataset fingerprints: what a run hash records about real data instead of its absolute path.

A run trained on ``/data/coco`` on one machine and on ``~/datasets/coco`` on another is the same run if the data is
the same, so :func:`~detpretrain.config.config_hash` hashes a fingerprint of the data, not the path, and a run store
can move between machines (``runs export`` / ``runs import``). The fingerprint covers what defines the training and
evaluation sets (the split lists and the annotations), not the image bytes (hashing 100k+ JPEGs would take minutes;
a changed image under an unchanged name and size is not detected):

* ``coco``: the bytes of ``annotations/instances_<split>.json`` of the spec's train and eval splits;
* ``voc``: for each ``VOC20xx`` folder used, every split list under ``ImageSets/``, every ``Annotations/*.xml`` and
  the names and sizes of ``SegmentationClass`` / ``SegmentationObject`` PNGs;
* ``folder``: the relative path and size of every file below the root;
* the classification datasets (``flowers102``, ``pet``, ``caltech256``, ``sun397``): the files that hold their labels
  and splits, by content (torchvision's ``flowers-102/{imagelabels,setid}.mat``, Pet's ``annotations/*.txt``,
  SUN-397's ``ClassName.txt``), and the relative path and size of every image below the folder read (labels and the
  drawn splits of Caltech-256 and SUN-397 follow from the file names).

Digests of single files are cached for the process by ``(path, size, mtime)``, so planning many configs on the same
data reads each annotation file once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from detpretrain.config import DataSpec
from detpretrain.data._io import require_file
from detpretrain.errors import DataError
from detpretrain.io import sha256_file

#: digest length (hex characters)
FINGERPRINT_LENGTH = 16


@lru_cache(maxsize=4096)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, cached for the process by path, size and modification time."""
    st = os.stat(path)
    return _file_digest(str(path), st.st_size, st.st_mtime_ns)


def _voc_year_dirs(root: Path, spec: DataSpec) -> list[Path]:
    if (root / "ImageSets").is_dir():
        return [root]
    years = {spec.year} if spec.year else set()
    for split in (spec.train_split, spec.eval_split):
        for part in split.split("+"):
            year, _, _ = part.rpartition(":")
            if year:
                years.add(year)
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"VOC\d{4}", d.name)
                  and (not years or d.name[3:] in years))
    if not dirs:
        raise DataError(root, "is neither a VOC20xx folder (no ImageSets/) nor a VOCdevkit holding the years "
                              f"{sorted(years) or 'any'}")
    return dirs


def _voc_entries(ydir: Path):
    for p in sorted((ydir / "ImageSets").rglob("*.txt")):
        yield p, True
    for p in sorted((ydir / "Annotations").glob("*.xml")) if (ydir / "Annotations").is_dir() else ():
        yield p, True
    for sub in ("SegmentationClass", "SegmentationObject"):
        for p in sorted((ydir / sub).glob("*.png")) if (ydir / sub).is_dir() else ():
            yield p, False


def dataset_fingerprint(spec: DataSpec) -> str:
    """The fingerprint of a real dataset (module docstring): 16 hex characters.

    Args:
        spec: a ``coco``, ``voc`` or ``folder`` :class:`~detpretrain.config.DataSpec` (``~`` in its root is expanded).

    Raises:
        DataError: the root, or an annotation file the spec's splits need, does not exist.
        ValueError: a synthetic spec (its corpus spec already identifies it).
    """
    if spec.kind == "synthetic":
        raise ValueError("synthetic data is identified by its corpus spec; it has no fingerprint")
    root = Path(spec.root).expanduser()
    if not root.exists():
        raise DataError(root, "data_root does not exist")
    digest = hashlib.sha256(spec.kind.encode() + b"\0")
    if spec.kind == "coco":
        for split in sorted({spec.train_split, spec.eval_split}):
            f = require_file(root / "annotations" / f"instances_{split}.json", "COCO annotation file")
            digest.update(f"{split}\0{file_digest(f)}\0".encode())
    elif spec.kind == "voc":
        for ydir in _voc_year_dirs(root, spec):
            for p, by_content in _voc_entries(ydir):
                rel = p.relative_to(root).as_posix()
                value = file_digest(p) if by_content else str(p.stat().st_size)
                digest.update(f"{rel}\0{value}\0".encode())
    else:
        base = _classification_folder(spec.kind, root)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                by_content = spec.kind != "folder" and p.suffix in (".mat", ".txt")  # label and split files
                value = file_digest(p) if by_content else str(p.stat().st_size)
                digest.update(f"{p.relative_to(root).as_posix()}\0{value}\0".encode())
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def _classification_folder(kind: str, root: Path) -> Path:
    """The folder a classification spec reads: torchvision's folder of the dataset where it exists, else ``root``."""
    from detpretrain.data.classification import TORCHVISION_FOLDERS

    folder = root / TORCHVISION_FOLDERS.get(kind, "")
    return folder if kind in TORCHVISION_FOLDERS and folder.is_dir() else root


def with_fingerprint(spec: DataSpec) -> DataSpec:
    """``spec`` with its root expanded (``~``) and made absolute, and its :func:`dataset_fingerprint` filled in
    (synthetic specs are returned unchanged). The run hash then records the fingerprint instead of the path.

    Raises:
        DataError: as :func:`dataset_fingerprint`.
    """
    if spec.kind == "synthetic":
        return spec
    root = str(Path(spec.root).expanduser().resolve())
    spec = dataclasses.replace(spec, root=root)
    return dataclasses.replace(spec, fingerprint=dataset_fingerprint(spec))
