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

#: Our pre-training names -> the paper's dataset names playing the same role.
ROLE_NAMES = {
    "imagenet-cls": "IMAGENET-CLS",
    "detection": "COCO",
    "scratch": "(from scratch)",
}

#: Section 2.1: gap between OPENIMAGES and IMAGENET-CLS pre-training, in mAP points, at IoU 0.5 and 0.7.
GAP_AT_05 = TABLE1["OPENIMAGES"][0] - TABLE1["IMAGENET-CLS"][0]  # 2.2
GAP_AT_07 = TABLE1["OPENIMAGES"][1] - TABLE1["IMAGENET-CLS"][1]  # 4.8

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

#: Our pre-training names -> the paper's rows of Table 4. Table 4 has no COCO row; our detection pre-training (on
#: multi-category scenes) stands in for OPENIMAGES, the paper's multi-category detection corpus.
SEG_ROLE_NAMES = {"imagenet-cls": "IMAGENET-CLS", "detection": "OPENIMAGES", "scratch": "(from scratch)"}

#: Section 2.2: "networks pre-trained for object detection obtain a 3% performance improvement" (Table 4,
#: OPENIMAGES - IMAGENET-CLS, mIoU points).
SEG_GAIN = round(TABLE4["OPENIMAGES"] - TABLE4["IMAGENET-CLS"], 1)  # 2.9

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
