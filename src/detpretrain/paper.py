"""Numbers reported by Li et al. 2019 (and the companion papers), cited beside ours in the book.

These are the papers' published values, typed from the papers (``../shared/papers``) with their table or figure
number; every number of OURS in the book comes from the run store instead.
"""

from __future__ import annotations

#: Table 1: PASCAL-VOC 2007 test, fine-tuned from each pre-training, (mAP@0.5, mAP@0.7) in percent.
TABLE1 = {
    "DCNv1": (81.9, 68.2),
    "DCNv2": (84.9, 73.5),
    "IMAGENET-CLS": (84.6, 76.3),
    "IMAGENET-LOC": (86.5, 80.0),
    "COCO": (86.8, 80.7),
    "OPENIMAGES": (86.8, 81.1),
}

#: Our pre-training names -> the paper's dataset names playing the same role. Our ``detection`` pre-training (a
#: detector trained on multi-category scenes, after IMAGENET-CLS) plays COCO in every chapter; where a table has no
#: COCO row, :func:`quoted_row` quotes the nearest detection pre-training the paper reports, under its own name.
ROLE_NAMES = {
    "imagenet-cls": "IMAGENET-CLS",
    "detection": "COCO",
    "imagenet-loc": "IMAGENET-LOC",
    "scratch": "(from scratch)",
    # Table 1's same-images control (issue 18), named as the paper names Table 7's IMAGENET-LOC (Cls): the detection
    # pre-training's images with image-level labels only
    "detection-multilabel": "COCO (Cls)",
}

def role_label(pretrain: str, names: dict[str, str] | None = None) -> str:
    """How a figure names our pre-training ``pretrain``: the paper's dataset playing its role, then our key
    (``"COCO (detection)"``, ``"IMAGENET-CLS (imagenet-cls)"``); ``"from scratch"`` for no pre-training; a key
    without a role (e.g. a replicate ``"detection@r1"``, or an unknown name) unchanged. ``names``: another map of
    roles (default :data:`ROLE_NAMES`; e.g. the probes', where ``scratch`` is a random, untrained backbone)."""
    role = (ROLE_NAMES if names is None else names).get(pretrain, pretrain)
    if role.startswith("("):  # no pre-training, no dataset to name: "from scratch", "random init"
        return role.strip("()")
    return pretrain if role == pretrain else f"{role} ({pretrain})"


def with_role_names(label, names: dict[str, str] | None = None):
    """A table header (a column label, an index value) with each of its space-separated words that is one of our
    pre-training keys named by :func:`role_label`: ``"imagenet-cls IoU"`` -> ``"IMAGENET-CLS (imagenet-cls) IoU"``,
    ``"detected by detection %"`` -> ``"detected by COCO (detection) %"``, ``"scratch"`` -> ``"from scratch"``.
    Words that only contain a key (``"detections"``, ``"detection@r1"``) and labels that are not strings (a
    number, a tuple of a MultiIndex, which pandas renames level by level) are returned unchanged. The caller
    decides where a word names a pre-training: in ``"detection fine-tuning epochs"`` it names the task."""
    if not isinstance(label, str):
        return label
    known = ROLE_NAMES if names is None else names
    return " ".join(role_label(word, names) if word in known else word for word in label.split(" "))


#: The paper's tables without a COCO entry, and how they lay out their pre-trainings ("row" or "column"):
#: Table 3 (occlusion), Table 4 (segmentation) and Table 6 (Conv5 probes) report OPENIMAGES, Table 5 is the
#: OPENIMAGES detector's head.
NO_COCO = {"Table 3": "row", "Table 4": "row", "Table 5": "row", "Table 6": "column"}
#: the detection pre-training quoted for our ``detection`` backbone where a table has no COCO entry (the paper's
#: other multi-category scene corpus)
DETECTION_STAND_IN = "OPENIMAGES"


def quoted_row(pretrain: str, table: str, rows) -> tuple[str | None, str]:
    """Which entry of a paper table is quoted beside our pre-training ``pretrain``, and its label.

    Args:
        pretrain: our pre-training key (``"imagenet-cls"``, ``"detection"``, ...).
        table: the table's name (``"Table 4"``), for the label.
        rows: the pre-training names the table has (e.g. ``TABLE4.keys()``).

    Returns:
        ``(name, label)``: the role's own entry where the table has it (``("COCO", "COCO")``); for ``detection``
        in a table without COCO, :data:`DETECTION_STAND_IN` labelled with its real name, e.g. ``("OPENIMAGES",
        "OPENIMAGES (no COCO row in Table 4)")``; ``(None, role)`` where the table has neither.
    """
    role = ROLE_NAMES.get(pretrain, pretrain)
    rows = set(rows)
    if role in rows:
        return role, role
    if pretrain == "detection" and DETECTION_STAND_IN in rows:
        return DETECTION_STAND_IN, f"{DETECTION_STAND_IN} (no COCO {NO_COCO.get(table, 'row')} in {table})"
    return None, role


#: Section 2.1 / Table 1: gap of COCO (our detection pre-training's role) over IMAGENET-CLS pre-training, in mAP
#: points, at IoU 0.5 and 0.7 (+2.2 -> +4.4; OPENIMAGES, the largest, is +2.2 -> +4.8).
GAP_AT_05 = round(TABLE1[ROLE_NAMES["detection"]][0] - TABLE1["IMAGENET-CLS"][0], 1)  # 2.2
GAP_AT_07 = round(TABLE1[ROLE_NAMES["detection"]][1] - TABLE1["IMAGENET-CLS"][1], 1)  # 4.4

#: The paper's four conclusions (abstract), quoted.
CONCLUSIONS = (
    "Pre-training on large detection datasets is crucial for fine-tuning on small detection datasets, especially "
    "when precise localization is needed.",
    "Detection pre-training also benefits other localization tasks like semantic segmentation but adversely affects "
    "image classification.",
    "Features for images which are similar in the object detection feature space are likely to be similar in the "
    "image classification feature space but the converse is not true.",
    "Visualization of features reveals that activation of detection networks typically covers the entire object, "
    "while activation of classification networks focus on parts.",
)

# ---- Section 2.1 ablations (issue: detection ablations) ------------------------------------------------------------

#: Table 2: PASCAL-VOC mAP@0.7 on the classes of a super-category removed from IMAGENET-LOC detection pre-training.
TABLE2 = {
    "IMAGENET-LOC (Cls)": {"vehicle": 84.52, "animal": 82.98},
    "IMAGENET-LOC without Category": {"vehicle": 86.83, "animal": 83.95},
    "IMAGENET-LOC": {"vehicle": 87.20, "animal": 84.83},
}

#: Table 3: % of PASCAL-VOC 2007 test objects missed, among objects occluded at level Low (or more) and Medium (or
#: more), by Hoiem et al.'s tool (2012).
TABLE3 = {"IMAGENET-CLS": {"low": 14.7, "medium": 15.7}, "OPENIMAGES": {"low": 10.1, "medium": 10.8}}

#: Table 7: identical pre-training samples. (PASCAL-VOC mAP@0.5, mAP@0.7, CALTECH-256 top-1), percent.
TABLE7 = {"IMAGENET-LOC (Cls)": (84.5, 76.6, 85.8), "IMAGENET-LOC": (86.5, 80.0, 82.3)}

# ---- Section 2.2 segmentation (issue: semantic segmentation) -------------------------------------------------------

#: Table 4: PASCAL-VOC 2012 val mIoU (percent) of DeepLab fine-tuned from each pre-training (DCNv1: the published
#: Deformable ConvNets baseline).
TABLE4 = {"DCNv1": 75.2, "IMAGENET-CLS": 75.7, "IMAGENET-LOC": 78.3, "OPENIMAGES": 78.6}

#: Section 2.2: "networks pre-trained for object detection obtain a 3% performance improvement" (Table 4,
#: OPENIMAGES - IMAGENET-CLS, mIoU points; Table 4 has no COCO row).
SEG_GAIN = round(TABLE4[DETECTION_STAND_IN] - TABLE4["IMAGENET-CLS"], 1)  # 2.9

#: Appendix on Figure 9: per-class IoU gain (points) of IMAGENET-LOC over IMAGENET-CLS pre-training quoted in the
#: text (VOC class names); potted plant "obtain[s] no improvement" (0 here).
FIG9_CLASS_GAINS = {"sheep": 7.5, "cow": 6.5, "diningtable": 5.6, "pottedplant": 0.0}

#: Table 5: linear classification top-1 (%) on CALTECH-256 from layers of the OPENIMAGES detector's head.
TABLE5 = {
    "Conv5": 76.7,
    "ConvProj blob (256,14,14)": 69.7,
    "ConvProj blob (256,4,4)": 72.4,
    "ConvProj blob (256,2,2)": 73.3,
    "ConvProj blob (256)": 74.1,
    "FC1 (1024)": 71.6,
    "FC2 (1024)": 70.0,
}

#: Table 6: linear classification top-1 (%) on average-pooled Conv5 features, {dataset: {pre-training: top-1}}.
TABLE6 = {
    "CALTECH-256": {"IMAGENET-CLS": 84.7, "OPENIMAGES": 76.7},
    "SUN-397": {"IMAGENET-CLS": 57.3, "OPENIMAGES": 51.1},
    "OXFORD-102 FLOWERS": {"IMAGENET-CLS": 87.4, "OPENIMAGES": 83.1},
}

#: Table 8: top-1 (%) after fine-tuning each pre-trained network, {pre-training: {dataset: top-1}}.
TABLE8 = {
    "IMAGENET-LOC": {"CALTECH-256": 82.3, "SUN-397": 58.3, "OXFORD-102 FLOWERS": 90.9},
    "COCO": {"CALTECH-256": 79.8, "SUN-397": 57.8, "OXFORD-102 FLOWERS": 91.4},
    "OPENIMAGES": {"CALTECH-256": 82.2, "SUN-397": 59.5, "OXFORD-102 FLOWERS": 92.6},
    "IMAGENET-CLS": {"CALTECH-256": 86.3, "SUN-397": 61.5, "OXFORD-102 FLOWERS": 95.0},
}

# ---- companion studies ---------------------------------------------------------------------------------------------

#: Shinya et al. 2019: intrinsic dimensionality = the number of eigenvalues of the feature second-moment matrix
#: above this threshold
SHINYA_THRESHOLD = 1e-3
#: Shinya et al. 2019: widths from the intrinsic dimensionality change ResNet-50's parameters by about this much
#: (percent; "reduce ~27% of the parameters ... without increasing Multiply-Accumulate operations")
SHINYA_PARAMS_CHANGE = -27.0
