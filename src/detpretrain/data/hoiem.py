"""Hoiem et al.'s occlusion levels of PASCAL VOC 2007 test objects (Table 3 on real VOC2007).

Li et al.'s Table 3 counts missed objects by occlusion level with the analysis tool of Hoiem, Chodpathumwan and Dai
("Diagnosing Error in Object Detectors", ECCV 2012). VOC2007 itself records only ``truncated``; the occlusion level
is an extra annotation that Hoiem et al. released with their tool for seven classes of VOC2007 *test*
(:data:`HOIEM_CLASSES`). This module reads that release where a user provides it; it is not downloaded (it is not
part of any torchvision dataset).

The format, as the release's own reader (``updateRecordAnnotations.m`` with ``readGtData.m``) reads it: one text file
per class, ``gt_ved_<class>.txt``; its first line holds whitespace-separated column labels; every further non-empty
line holds whitespace-separated numbers, one line per *non-difficult* object of that class, in the order of the
VOC2007 test images (``ImageSets/Main/test.txt``) and, within an image, of the objects in its annotation XML. The
columns read (1-based, as in the MATLAB code): column 3 is the occlusion level (0 none, 1 low, 2 medium, 3 high; the
tool adds 1), the second-to-last column is the box area ``(xmax - xmin + 1) * (ymax - ymin + 1)`` in pixels, which
the tool checks against the VOC annotation (so do we, which catches a file that does not belong to the split or a
different image order). The other columns (part and side visibility) are not read here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from detpretrain.errors import DataError

#: the VOC2007 classes Hoiem et al. annotated in detail (their ``objnames_extra``)
HOIEM_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "cat", "chair", "diningtable")
#: Hoiem's occlusion levels 0..3 under this package's level names (:data:`detpretrain.analysis.ablations.
#: OCCLUSION_LEVELS`; Hoiem et al. call the third "medium")
HOIEM_LEVELS = ("none", "low", "moderate", "high")
#: 0-based columns read: the occlusion level, and the box area counted from the end
OCCLUSION_COLUMN, AREA_COLUMN = 2, -2


def hoiem_file(directory: str | os.PathLike, cls: str) -> Path:
    """The release's file for one class: ``<directory>/gt_ved_<cls>.txt``."""
    return Path(directory).expanduser() / f"gt_ved_{cls}.txt"


def read_hoiem_table(path: str | os.PathLike, *, line_numbers: bool = False):
    """The numeric rows of one ``gt_ved_<class>.txt`` file (the header line skipped, blank lines ignored).

    Returns:
        float64 [rows, columns]; with ``line_numbers``, also each row's line in the file (1-based) as a list.

    Raises:
        DataError: the file is missing or empty, a line is not all numbers, rows differ in length from the header,
            there are too few columns for the occlusion level and the area, or an occlusion level is not 0..3.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "Hoiem et al. occlusion file is missing")
    lines = path.read_text(errors="replace").splitlines()
    if not lines or not lines[0].strip():
        raise DataError(path, "empty file: expected a header line of column labels, then one line per object")
    width = len(lines[0].split())
    if width < 5:
        raise DataError(path, f"header has {width} columns; Hoiem et al.'s files have the occlusion level in column 3 "
                              "and the box area in the second-to-last column")
    rows, numbers = [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split()
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise DataError(path, f"line {number}: not all numbers ({line.strip()[:60]!r})") from None
        if len(values) != width:
            raise DataError(path, f"line {number}: {len(values)} values, the header has {width} columns")
        occ = values[OCCLUSION_COLUMN]
        if occ not in (0.0, 1.0, 2.0, 3.0):
            raise DataError(path, f"line {number}: occlusion level (column 3) is {occ:g}; expected 0, 1, 2 or 3 "
                                  "(none, low, medium, high)")
        rows.append(values)
        numbers.append(number)
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    return (table, numbers) if line_numbers else table


def hoiem_occlusion_levels(directory: str | os.PathLike, dataset) -> list[str | None]:
    """Hoiem et al.'s occlusion level of every object of a VOC2007 test dataset, in :func:`~detpretrain.data.coco.
    to_coco_gt`'s annotation order (images in split order, objects in XML order).

    Args:
        directory: the folder holding the release's ``gt_ved_<class>.txt`` files (``~`` is expanded); classes
            without a file get no level.
        dataset: a :class:`~detpretrain.data.voc.VOCDetection` of the *whole* VOC2007 test split, since the files'
            rows count the objects of every test image in order.

    Returns:
        One entry per object: a name of :data:`HOIEM_LEVELS`, or None (a class Hoiem et al. did not annotate, a
        class without a file here, or a difficult object, which the release skips).

    Raises:
        DataError: the directory is missing or holds none of the files; a file is malformed
            (:func:`read_hoiem_table`); its row count differs from the number of non-difficult objects of its class in
            the split; or a row's box area disagrees with the VOC box it is aligned with (the file belongs to
            another split or image order). Each message names the file.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise DataError(directory, "Hoiem et al. annotation folder is missing")
    tables = {c: read_hoiem_table(hoiem_file(directory, c), line_numbers=True)
              for c in HOIEM_CLASSES if hoiem_file(directory, c).is_file()}
    if not tables:
        raise DataError(directory, f"holds none of Hoiem et al.'s occlusion files (gt_ved_<class>.txt for "
                                   f"{', '.join(HOIEM_CLASSES)})")
    missing = [c for c in tables if c not in dataset.classes]
    if missing:
        raise DataError(directory, f"classes {missing} have occlusion files but are not classes of the dataset")
    row = dict.fromkeys(tables, 0)
    out: list[str | None] = []
    for i in range(len(dataset)):
        t = dataset.load_target(i)
        boxes = np.asarray(t["boxes"].tolist(), dtype=np.float64).reshape(-1, 4)
        for k, (label, difficult) in enumerate(zip(t["labels"].tolist(), t["ignore"].tolist())):
            cls = dataset.classes[label]
            if cls not in tables or difficult:
                out.append(None)
                continue
            (table, numbers), r = tables[cls], row[cls]
            path = hoiem_file(directory, cls)
            if r >= len(table):
                raise DataError(path, f"{len(table)} rows, but the split has more non-difficult {cls!r} objects "
                                      f"(the next in image {dataset.image_names[i]!r}); the file must be the release "
                                      "for the whole VOC2007 test split")
            x1, y1, x2, y2 = boxes[k]
            area = (x2 - x1) * (y2 - y1)  # 0-based XYXY of 1-based inclusive corners: (xmax - xmin + 1) * (...)
            theirs = table[r, AREA_COLUMN]
            # exact, as the tool's own check (real VOC boxes lie inside their image; a box this package clamped
            # onto the canvas, at most BOX_TOLERANCE_PX outside, is reported here rather than guessed at)
            if abs(area - theirs) > 0.5:
                raise DataError(path, f"row {r + 1} (line {numbers[r]}): box area {theirs:g} px, but non-difficult "
                                      f"{cls!r} object number {r + 1} of the split (image "
                                      f"{dataset.image_names[i]!r}, object {k}) has {area:g} px: the file is not "
                                      "aligned with this split or counts box corners differently")
            out.append(HOIEM_LEVELS[int(table[r, OCCLUSION_COLUMN])])
            row[cls] = r + 1
    for cls, (table, _) in tables.items():
        if row[cls] != len(table):
            raise DataError(hoiem_file(directory, cls),
                            f"{len(table)} rows, but the split has {row[cls]} non-difficult {cls!r} objects; the file "
                            "must be the release for the whole VOC2007 test split (ImageSets/Main/test.txt)")
    return out
