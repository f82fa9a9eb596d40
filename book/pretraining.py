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
# # Pre-training the backbones
#
# *Li et al. 2019 {cite}`li2019analysis`, Section 2 ("All our detection networks are pre-trained first on IMAGENET-CLS. They are then
# trained on detection datasets like OPENIMAGES, IMAGENET-LOC and COCO").*
#
# Every later chapter compares backbones that differ only in how they were pre-trained:
#
# | backbone | paper | here (`smoke`, `mini`) | here (`paper`) |
# |---|---|---|---|
# | **imagenet-cls** | ResNet-101 trained on ImageNet classification (IMAGENET-CLS) | a ResNet trained to classify the single-object `imagenet_cls` corpus (labels only) | torchvision `ResNet101_Weights.IMAGENET1K_V2` |
# | **detection** | the IMAGENET-CLS network trained further as a detector on COCO / OPENIMAGES / IMAGENET-LOC | the imagenet-cls backbone trained further as a Faster R-CNN + FPN on the multi-object `coco` corpus (boxes) | the same on COCO train2017 |
# | **scratch** | (He et al. 2019 {cite}`he2019rethinking`, discussed in the related work) | random initialisation | random initialisation |
#
# This chapter trains (or loads from the run store) the two pre-trained backbones, shows their corpora and their
# learning curves. Each is pre-trained `replicates` times (`mini`: 3; replicate *r* has seed *r*, and the detection
# pre-training of replicate *r* continues from the IMAGENET-CLS run of replicate *r*): a claim about pre-training is
# about the pre-training run, so the later chapters' verdicts are over these replicates. The `dataset` parameter
# concerns the fine-tuning target of the later chapters; pre-training always uses the profile's pre-training
# corpora.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper
dataset = "synthetic"  # the later chapters' target; pre-training does not depend on it
data_root = None
seeds = None
device = "auto"
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
replicates = None  # pre-training replicates per backbone; None means the profile's (mini: 3)
sample_images = 8  # images per corpus in the sample grids
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco

# %%
import tempfile
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import Image, Markdown, display

from detpretrain.analysis.pretraining import corpus_table, loss_curves, pretraining_table
from detpretrain.chapter import chapter_setup, table
from detpretrain.data import synthetic
from detpretrain.experiments.common import pretrained_for, replicate_count, split_key
from detpretrain.runs import get_or_train

ch = chapter_setup("pretraining", profile=profile, store=store, data_cache=data_cache, device=device, dataset=dataset,
                   data_root=data_root, seeds=seeds, replicates=replicates, sample_images=sample_images,
                   coco_root=coco_root)
configs = {k: v for k, v in pretrained_for(ch.profile, (), replicates=replicate_count(ch.profile, replicates)).items()
           if v is not None}

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note

if note := chapter_note("pretraining", ch.profile):
    display(Markdown(note))

# %% [markdown]
# ## The pre-training corpora
# Counts per split of each corpus the profile generates (deterministic: same profile and seed, same corpus).

# %% tags=["hide-input"]
# NBVAL_CHECK_OUTPUT
specs = synthetic.profile_specs(profile if profile != "paper" else "mini")
table(corpus_table(specs), index=True)

# %% tags=["hide-input"]
if profile != "paper":
    grid_dir = Path(tempfile.mkdtemp(prefix="grids-"))
    for role in ("imagenet_cls", "coco"):
        root = synthetic.generate(specs[role], ch.data_cache)
        png = synthetic.save_sample_grid(root, role, grid_dir / f"{role}.png", n=sample_images)
        display(Markdown(f"**{role}** corpus ({specs[role].image_size} px, key `{specs[role].key()}`): "
                         "object boxes solid, discriminative parts dashed, masks tinted."))
        display(Image(filename=str(png)))

# %% [markdown]
# ## Training (or loading) the backbones
# `get_or_train` returns the stored run when its configuration hash is already in the run store.

# %%
runs = {name: get_or_train(cfg, ch.store, device=device, progress=False) for name, cfg in configs.items()}

# %% tags=["hide-input"]
if runs:  # none at profile torchvision: both backbones are published weights
    display(table(pretraining_table(runs).drop(columns=["classes"])))

# %% [markdown]
# The detection pre-training reports the COCO 101-point AP (pycocotools' COCOeval, `eval_metric = coco`) on its own
# validation split at each IoU threshold, shown at 0.5 and 0.7 (mAP@0.5, mAP@0.7); the classification pre-training
# reports top-1 accuracy on its validation split.

# %% tags=["hide-input"]
curves = loss_curves(runs)
if runs:
    names = list(dict.fromkeys(split_key(k)[0] for k in runs))  # one panel per backbone, one line per replicate
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        keys = [k for k in runs if split_key(k)[0] == name]
        sns.lineplot(data=curves[curves["backbone"].isin(keys)], x="epoch", y="training loss", hue="backbone",
                     marker="o", ax=ax)
        first = runs[keys[0]]
        ax.set_title(f"{name}: {first.config.task} pre-training, {len(keys)} replicate(s)\n"
                     + textwrap.fill(ch.provenance(data=first.config.data.describe(),
                                                   runs={k: runs[k].hash for k in keys}), 90),
                     fontsize=8, loc="left")  # wrapped to its panel: the two panels' lines would overlap
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# The detection loss is torchvision's sum of the RPN objectness and box losses and the RoI-head classification and
# box losses; the classification loss is the cross-entropy. A curve that is still falling steeply at the end means
# the profile's schedule is short: the `mini` profile trades convergence for a CPU budget, which weakens the
# backbones by amounts this chapter does not measure (the detection chapter's regime check asks whether the detectors
# fine-tuned from them are trained well enough for a verdict).
