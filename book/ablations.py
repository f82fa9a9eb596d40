# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Detection ablations: unseen categories, identical samples, occlusion
#
# *Li et al. 2019 {cite}`li2019analysis`, Section 2.1 (Table 2), the appendix (Table 7) and Section 6.2 (Table 3).*
#
# The previous chapter found what detection pre-training buys; this one asks three questions about *why*.
#
# 1. **Does it help only the categories it saw?** (Table 2.) The paper removes "Vehicle", then "Animal", from
#    IMAGENET-LOC during detection pre-training and fine-tunes on PASCAL-VOC: on the removed categories' classes,
#    mAP@0.7 is still above that of a classifier pre-trained on the same IMAGENET-LOC images with labels only,
#    IMAGENET-LOC (Cls) (vehicle 84.52 -> 86.83, animal 82.98 -> 83.95; with the category 87.20 and 84.83). The
#    paper's reading: detection pre-training improves localisation *in general*.
# 2. **Is it the task or the data?** (Table 7.) With identical pre-training images, the detector is better after
#    detection fine-tuning (mAP@0.5 84.5 -> 86.5, mAP@0.7 76.6 -> 80.0) and the classifier after classification
#    fine-tuning on CALTECH-256 (85.8 vs 82.3): the task, not the data, explains the pattern.
# 3. **Does it find occluded objects?** (Table 3.) With Hoiem et al.'s error-analysis tool, the OPENIMAGES
#    detector misses 10.1 % of objects occluded at level *Low* or more (IMAGENET-CLS: 14.7 %) and 10.8 % at
#    *Medium* or more (15.7 %).
#
# Every backbone here continues from the IMAGENET-CLS-style backbone of the pre-training chapter (the paper: "all our
# detection networks are pre-trained first on IMAGENET-CLS"), and every run goes through the run store: the
# IMAGENET-CLS and detection-pre-trained detectors of Table 3 are the detection chapter's own runs, not new ones.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini (the IMAGENET-LOC corpora are synthetic; paper has no IMAGENET-LOC)
dataset = "synthetic"  # detection target: synthetic (VOC-like) | coco | voc
data_root = None  # root of a real target dataset
seeds = None  # fine-tuning seeds; None means the profile's (mini: 0, 1, 2)
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
removed = ["vehicle", "animal"]  # super-categories removed from IMAGENET-LOC, one pre-training each (Table 2)
transfer_role = "caltech"  # classification target of Table 7: caltech (object-centric) | sun | flowers
occlusion_iou = 0.5  # IoU for a detection to find an object in Table 3 (Hoiem et al.: 0.5, strong localisation)

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from detpretrain.analysis import ablations as B
from detpretrain.analysis.detection import provenance
from detpretrain.experiments.classification import run_classification_transfer
from detpretrain.experiments.common import loc_pretrain_configs
from detpretrain.experiments.detection import run_detection_experiment
from detpretrain.paper import TABLE3
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore

if data_cache is not None:
    os.environ["DETPRETRAIN_DATA"] = str(data_cache)
prof = get_profile(profile)
run_store = RunStore(store) if store else None
seed_list = tuple(seeds) if seeds is not None else None
loc_keys = ["imagenet-loc-cls", "imagenet-loc"] + [f"imagenet-loc-no-{sc}" for sc in removed]

# %% [markdown]
# ## Configuration

# %%
# NBVAL_CHECK_OUTPUT
loc_cfgs = loc_pretrain_configs(prof, tuple(removed))
config_rows = [
    ("profile", prof.name), ("target", dataset), ("removed super-categories", ", ".join(removed)),
    ("IMAGENET-LOC pre-training epochs", prof.loc_pretrain.epochs),
    ("IMAGENET-LOC corpus", loc_cfgs["imagenet-loc"].data.describe()),
    ("detection fine-tuning epochs", prof.finetune.epochs),
    ("classification target (Table 7)", transfer_role), ("classification fine-tuning epochs", prof.cls_finetune.epochs),
    ("seeds", ", ".join(map(str, seed_list if seed_list is not None else prof.seeds))),
]
pd.DataFrame(config_rows, columns=["setting", "value"]).set_index("setting")

# %%
loc = run_detection_experiment(profile, dataset=dataset, data_root=data_root, pretrains=tuple(loc_keys),
                               seeds=seed_list, store=run_store, device=device, progress=False,
                               removed=tuple(removed))

# %% [markdown]
# ## The IMAGENET-LOC pre-trainings
# One corpus of object-centric images (one category per image, 1-3 instances, boxes and masks), read three ways:
# with boxes (IMAGENET-LOC), with the image-level label only (IMAGENET-LOC (Cls)), and regenerated with one
# super-category removed (its images replaced by images of the remaining categories, so every pre-training sees the
# same number of images). The headline is top-1 on the corpus's validation split for the classifier and COCO-style
# mAP for the detectors.

# %%
rows = []
for key, path in loc["pretrain_runs"].items():
    m = json.loads((Path(path) / "metrics.json").read_text())
    rows.append({"pre-training": key, "task": m["task"], "images": m["num_train_images"],
                 "classes": len([c for c in m["classes"] if c != "__background__"]), "result": m["headline"],
                 "run": os.path.basename(path)})
pd.DataFrame(rows)

# %% [markdown]
# ## Table 2: removing a super-category from detection pre-training
# mAP@0.7 on the target classes of each removed super-category (mean over seeds, sd beside), after fine-tuning on
# the target from each backbone; the paper's values on PASCAL-VOC beside ours.

# %%
t2 = B.removal_table(loc, removed)
t2.style.format(precision=2, na_rep="–").hide(axis="index")

# %%
frame = []
classes = B.target_supercategories(loc["runs"][0]["metrics"]["per_class_AP"])
for r in loc["runs"]:
    for sc in removed:
        if r["pretrain"] in ("imagenet-loc-cls", "imagenet-loc", f"imagenet-loc-no-{sc}"):
            label = {"imagenet-loc-cls": "LOC (Cls)", "imagenet-loc": "LOC"}.get(r["pretrain"], "LOC without it")
            frame.append({"removed": sc, "pre-training": label, "seed": r["seed"],
                          "mAP@0.7": B.supercategory_ap(r["metrics"], classes.get(sc, []), 0.7)})
frame = pd.DataFrame(frame)
fig, ax = plt.subplots(figsize=(7, 3.8))
sns.barplot(data=frame, x="removed", y="mAP@0.7", hue="pre-training", errorbar="sd", alpha=0.8, ax=ax,
            hue_order=["LOC (Cls)", "LOC without it", "LOC"])
sns.stripplot(data=frame, x="removed", y="mAP@0.7", hue="pre-training", dodge=True, palette="dark:black", size=3,
              legend=False, ax=ax, hue_order=["LOC (Cls)", "LOC without it", "LOC"])
ax.set_xlabel("super-category removed from detection pre-training (bars: its target classes)")
ax.set_ylabel("mAP@0.7 (%) on those classes")
ax.set_title(provenance(loc), fontsize=6, loc="left")
fig.tight_layout()
plt.show()

# %%
display(Markdown(B.removal_verdict(loc, removed)["sentence"]))

# %% [markdown]
# ## Table 7: identical pre-training samples
# IMAGENET-LOC (Cls) and IMAGENET-LOC saw the same images; only the task differed. Detection: the target above.
# Classification: full fine-tuning (new last layer) on the object-centric classification corpus (CALTECH-256 role),
# top-1 on its test split.

# %%
transfer = run_classification_transfer(profile, role=transfer_role, pretrains=("imagenet-loc-cls", "imagenet-loc"),
                                       seeds=seed_list, store=run_store, device=device, progress=False,
                                       removed=tuple(removed))
t7 = B.identical_samples_table(loc, transfer)
t7.style.format(precision=1, na_rep="–").hide(axis="index")

# %%
display(Markdown(B.identical_samples_verdict(loc, transfer)["sentence"]))

# %% [markdown]
# ## Table 3: missed objects under occlusion
# The detectors fine-tuned from the IMAGENET-CLS-style and the detection-pre-trained backbones (the detection
# chapter's runs, loaded from the run store and run again on the evaluation images).
#
# *Protocol (Hoiem et al. 2012 {cite}`hoiem2012diagnosing`, their tool's defaults).* Per class, detections are ranked by score and matched to
# ground truth by the VOC rule at IoU > `occlusion_iou`. An object is **missed** unless a detection that matches it
# reaches a *normalised precision* of at least 0.05, where normalised precision replaces the number of true positives
# `tp` by `tp * N / npos` with `N = 0.15 x number of images` (so classes with many and with few objects are judged
# at the same density). Difficult objects are not counted.
#
# *Occlusion levels.* Hoiem et al. annotated occlusion by eye (none / low / moderate / high); Table 3's columns are
# their groups "occluded Low" = level low or more, or truncated, and "occluded Medium" = moderate or more, or
# truncated. Our synthetic target records each instance's **visible fraction** (visible pixels over the pixels of
# the whole object, so both occlusion by other objects and truncation by the border lower it) and its truncation
# flag; we set the levels at visible fraction >= 0.95 (none), [0.75, 0.95) (low), [0.5, 0.75) (moderate) and < 0.5
# (high). Objects under 35 % visible are marked difficult in the target and left out, as VOC leaves out its
# difficult objects. A real VOC root has no occlusion level: VOC2007 annotates `truncated` and `difficult`, VOC2010
# and later also a binary `occluded`. The groups then hold the flagged objects only (an `occluded` flag counts at
# Low, since it has no level) and the per-level rows are empty; the cell under the table says which annotations this
# target has and what the table can show with them.

# %%
det = run_detection_experiment(profile, dataset=dataset, data_root=data_root, pretrains=("imagenet-cls", "detection"),
                               seeds=seed_list, store=run_store, device=device, progress=False)
annotations = {}
frames = B.occlusion_frames(det, iou=occlusion_iou, annotations=annotations)
t3 = B.occlusion_table(frames)
t3.set_index("pre-training").T.style.format(precision=1, na_rep="–")

# %%
display(Markdown(annotations["sentence"]))

# %%
paper3 = pd.DataFrame([{"pre-training": k, "occluded Low % missed": v["low"], "occluded Medium % missed": v["medium"]}
                       for k, v in TABLE3.items()])
display(Markdown("The paper's Table 3 (PASCAL-VOC 2007 test):"))
paper3.style.format(precision=1).hide(axis="index")

# %%
long = pd.concat([f.assign(**{"pre-training": p}) for p, fs in frames.items() for f in fs], ignore_index=True)
long = long[~long["difficult"] & (long["level"] != "unknown")]
if len(long):
    pct = (long.groupby(["pre-training", "seed", "level"])["missed"].mean() * 100).rename("% missed").reset_index()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    order = [n for n, _, _ in B.OCCLUSION_LEVELS]
    sns.barplot(data=pct, x="level", y="% missed", hue="pre-training", order=order, errorbar="sd", alpha=0.8, ax=ax)
    ax.set_xlabel("occlusion level (visible fraction: none >= 0.95, low >= 0.75, moderate >= 0.5, high < 0.5)")
    ax.set_title(provenance(det), fontsize=6, loc="left")
    fig.tight_layout()
    plt.show()
else:
    display(Markdown("No object of this target has a recorded visible fraction: the per-level plot is omitted."))

# %%
display(Markdown(B.occlusion_verdict(frames)["sentence"]))

# %% [markdown]
# ## What this shows
# The three verdicts above are computed from this execution's runs: a difference counts only when its mean over
# seeds exceeds one standard error, and "not resolved" means the seeds disagree more than the effect is large.
#
# * **Table 2** isolates *unseen* categories better than the paper could: our removed super-category is absent from
#   the whole detection pre-training corpus and its target classes share nothing with the remaining categories but
#   the generic cues of objects (extent, boundaries, occlusion). The backbones still saw those classes during the
#   IMAGENET-CLS stage, as the paper's did.
# * **Table 7** compares two backbones that differ only in the pre-training task on one corpus; a classifier's
#   advantage on classification and a detector's on detection is the paper's "task, not data" pattern.
# * **Table 3** depends on the operating point (normalised precision >= 0.05) and on where the occlusion levels are
#   cut; the per-level plot shows the whole curve rather than the two groups. Our levels come from exact visible
#   fractions, not from annotators' judgement. The paper reads fewer missed occluded objects as better handling of
#   occlusion; the verdict also compares the gain on unoccluded objects, since a detector that misses fewer
#   objects everywhere misses fewer occluded ones too.
# * At `smoke` every run trains for seconds; its numbers exercise the code, they are not evidence.
