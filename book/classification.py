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
# # Does detection pre-training hurt image classification? (Li et al., Tables 5, 6, 8)
#
# *Li et al. 2019 {cite}`li2019analysis`, Section 2.3 (Tables 5, 6 and 8).*
#
# Detection pre-training helps localisation, the paper reports (the detection chapter). Does it help image
# classification? The paper answers no, three ways; the first, on the CALTECH-256 role, is the primary claim here
# (declared in `detpretrain.analysis.claims` before the runs):
#
# 1. **Fine-tuning (Table 8).** Every network fine-tuned on CALTECH-256, SUN-397 and OXFORD-102 FLOWERS: IMAGENET-CLS
#    pre-training is best on all three (86.3 / 61.5 / 95.0 top-1), ahead of IMAGENET-LOC, COCO and OPENIMAGES
#    (79.8 / 57.8 / 91.4 for COCO, the role our detection backbone plays).
# 2. **Linear probes on Conv5 (Table 6).** Without fine-tuning, a linear classifier on the average-pooled Conv5
#    features of the IMAGENET-CLS backbone beats that of the OPENIMAGES backbone by 4.3 to 8.0 points.
# 3. **Linear probes on the detection head (Table 5).** Along the OPENIMAGES detector's head, features that keep
#    spatial layout classify worse: ConvProj blob (256,14,14) 69.7 < 4x4 pooled 72.4 < 2x2 73.3 < 1x1 74.1, and
#    FC1 (71.6) > FC2 (70.0).
#
# Here the backbones are the pre-training runs of the other chapters, taken from the run store: `imagenet-cls`
# (IMAGENET-CLS role), `detection` (multi-category scenes: the COCO role), `imagenet-loc` (the
# object-centric detection corpus of the ablations chapter) and `scratch` (random initialisation, the floor).
# The probe is Kornblith et al.'s protocol {cite}`kornblith2019better` (`detpretrain.analysis.probes`): multinomial logistic regression with
# L-BFGS, the L2 strength chosen on a held-out validation split from a log-spaced grid, refit on train +
# validation, scored once on test.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper (the GPU profiles probe published backbones)
dataset = "synthetic"  # the synthetic classification targets; real probe datasets are given in real_data
data_root = None  # unused here: real probe datasets are named in real_data
seeds = None  # fine-tuning seeds (Table 8) and random backbones (scratch probes); None means the profile's
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
replicates = None  # pre-training replicates per backbone, crossed with the seeds; None means the profile's (mini: 3)
targets = ["caltech", "sun", "flowers"]  # synthetic roles standing for CALTECH-256, SUN-397, OXFORD-102 FLOWERS
probe_pretrains = ["imagenet-cls", "detection", "imagenet-loc", "scratch"]  # backbones probed on Conv5 (Table 6)
finetune_pretrains = ["imagenet-cls", "detection", "imagenet-loc", "scratch"]  # backbones fine-tuned (Table 8)
head_target = "caltech"  # dataset of the detection-head probes (Table 5 uses CALTECH-256)
real_data = {"flowers102": "../shared/data/flowers102_subset", "pet": "../shared/data/oxford_iiit_pet_subset"}
download = False  # fetch an absent real classification dataset into its root with torchvision (internet)
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco
cue = "part"  # category cue of every synthetic corpus: part | distributed (no part) | part+decoy
sun_backgrounds = "style"  # SUN-role scenes: style (the background names the scene) | shared (objects and layout do)

# %%
import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from detpretrain.analysis import claims as C
from detpretrain.analysis import mechanisms as M
from detpretrain.analysis import probes as P
from detpretrain.analysis import stats
from detpretrain.chapter import chapter_setup, quiet, table
from detpretrain.experiments import features as F
from detpretrain.experiments.classification import real_transfer_roots, run_classification_transfer
from detpretrain.experiments.common import replicate_key
from detpretrain.paper import role_label

ch = chapter_setup("classification", profile=profile, store=store, data_cache=data_cache, device=device,
                   dataset=dataset, data_root=data_root, seeds=seeds, replicates=replicates, targets=targets,
                   probe_pretrains=probe_pretrains, finetune_pretrains=finetune_pretrains, head_target=head_target,
                   real_data=real_data, download=download, coco_root=coco_root, cue=cue,
                   sun_backgrounds=sun_backgrounds)
prof = ch.profile
corpus = {"cue": cue, "sun_backgrounds": sun_backgrounds}  # every synthetic corpus of the chains below

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note, real_pretrains

probe_pretrains = real_pretrains(prof, probe_pretrains)[0]  # no IMAGENET-LOC backbone at the GPU profiles
finetune_pretrains = real_pretrains(prof, finetune_pretrains)[0]
if note := chapter_note("classification", prof):
    display(Markdown(note))

# %% [markdown]
# ## Configuration

# %% tags=["hide-input"]
# NBVAL_CHECK_OUTPUT
datasets = {t: F.probe_datasets(prof, t, data_cache=ch.data_cache, corpus=corpus) for t in targets}
table(P.configuration_table(prof, datasets, probe_pretrains, finetune_pretrains, ch.seeds, ch.replicates), index=True)

# %%
transfer = {data.paper_name: run_classification_transfer(prof, role=name, pretrains=tuple(finetune_pretrains),
                                                         seeds=ch.seeds, replicates=ch.replicates, store=ch.store,
                                                         device=device, progress=False, log=quiet, corpus=corpus)
            for name, data in datasets.items()}
claims = P.classification_claims(transfer)

# %% [markdown]
# ## The answer

# %% tags=["hide-input"]
display(Markdown(C.answer("classification", next(iter(claims.values())))))

# %% tags=["hide-input"]
display(Markdown(M.prediction_markdown("classification", M.condition_of(cue, corpus) or cue)))

# %% [markdown]
# ## Table 6: linear probes on Conv5
# One probe per backbone and dataset on frozen, average-pooled Conv5 features (cached in the run store under
# `features/`). `scratch` is probed once per seed (a different random backbone each time); the trained backbones
# once per pre-training replicate, so their rows have a spread over pre-training runs (`sd over backbones`); `± se`
# is the binomial standard error of top-1 on the test images. Table 6 reports IMAGENET-CLS and OPENIMAGES only: our
# detection backbone (the COCO role) is shown beside the paper's OPENIMAGES column, named so.

# %%
probe_rows = [row for data in datasets.values()
              for row in P.conv5_probes(data, probe_pretrains, prof, seeds=ch.seeds, replicates=ch.replicates,
                                        store=ch.store, device=device, log=quiet, corpus=corpus)]
probe_frame = pd.DataFrame(probe_rows)

# %% tags=["hide-input"]
table(P.table6(probe_rows))

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 3.8))
order = [p for p in probe_pretrains if p in set(probe_frame["pretrain"])]
sns.barplot(data=probe_frame, x="dataset", y="top1", hue="pretrain", hue_order=order, errorbar=None, alpha=0.85, ax=ax)
for bar_group, pre in zip(ax.containers, order):
    sub = probe_frame[probe_frame["pretrain"] == pre].groupby("dataset", sort=False)["se"].mean()
    for bar, ds in zip(bar_group, probe_frame["dataset"].unique()):
        ax.errorbar(bar.get_x() + bar.get_width() / 2, bar.get_height(), yerr=sub.get(ds, math.nan), color="black",
                    capsize=2, lw=0.8)
ax.set_ylabel("linear-probe top-1 (%) on test, ± binomial se")
ax.set_xlabel("")
sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), title="pre-training", fontsize=8)  # beside the bars
for text in ax.get_legend().get_texts():  # the paper's names of the roles beside ours; scratch: a random backbone
    text.set_text(role_label(text.get_text(), P.PROBE_ROLE_NAMES))
ax.set_title(textwrap.fill(ch.provenance(data="synthetic " + ", ".join(targets), runs=P.probe_sources(probe_rows)),
                           160), fontsize=6, loc="left")
fig.tight_layout()
plt.show()

# %% [markdown]
# The IMAGENET-CLS minus detection probe gap beside the paper's (its verdict, over pre-training runs or McNemar's
# test over the test images when there is one backbone per pre-training, is in the claims table below):

# %% tags=["hide-input"]
table(P.probe_gaps(probe_rows))

# %% [markdown]
# ### The same probes on real images
# The genuine Flowers-102 and Oxford-IIIT Pet subsets (`real_data`; resized and centre-cropped to the profile's
# input size). At the synthetic profiles (`smoke`, `mini`) our backbones never saw a real photograph, so these
# numbers test the code path and the direction of the gap on real data, not the paper's magnitudes; with published
# ImageNet weights (`torchvision`, `paper`) they did. The Pet subset ships trainval / test only: the probe's
# validation part is a stratified 20 % of trainval. A dataset whose folder is absent is skipped and said so. Every
# pre-training replicate of each backbone is probed, so their verdicts in the claims table below are over
# pre-training runs (McNemar's test over the test images, about those particular backbones, when there is one).

# %%
real_rows = []
for name, root in (real_data or {}).items():
    if not Path(root).expanduser().exists() and not download:
        display(Markdown(f"*{name}: `{root}` is absent on this machine; skipped (`-p download true` fetches it).*"))
        continue
    real_rows += P.conv5_probes(F.probe_datasets(prof, name, root, download=download), probe_pretrains, prof,
                                seeds=ch.seeds, replicates=ch.replicates, store=ch.store, device=device,
                                label="sizes", log=quiet, corpus=corpus)

# %% tags=["hide-input"]
if real_rows:
    display(table(P.table6(real_rows).drop(columns=["paper", "paper column"])))

# %% [markdown]
# ## Table 5: probes along the detection head
# The detection-pre-trained network (`detection`, the COCO role; Table 5 is the head of the paper's OPENIMAGES
# detector), each whole image fed as **one RoI** (the box covering the image: our choice, the paper does not say how
# it feeds an image to the head). Rows follow the paper's order; our ConvProj blob is the RoI-aligned FPN feature
# (channels x 7 x 7) where the paper's is ConvProj (256 x 14 x 14), a layer after Conv5 (2048 x 14 x 14) whose kernel
# the paper does not give, and our FC layers are the profile's `representation_size` wide (256 at
# `mini`; the paper's are 1024). Average pools of the blob use
# `adaptive_avg_pool2d`.

# %%
head_data = datasets.get(head_target) or F.probe_datasets(prof, head_target, data_cache=ch.data_cache, corpus=corpus)
head = F.detector_head_features("detection", head_data, prof, store=ch.store, device=device, log=quiet,
                                corpus=corpus)
head_probes = {f: P.probe_features(head, f) for f in F.HEAD_FEATURES}
t5 = P.table5(head_probes, head["names"])
# the other pre-training replicates of the detection backbone, for the claims (the table and figure are replicate 0's)
head_keys = [replicate_key("detection", r) for r in range(1, ch.replicates)]
replicate_head_probes = [
    {f: P.probe_features(h, f) for f in F.HEAD_FEATURES}
    for h in (F.detector_head_features(key, head_data, prof, store=ch.store, device=device, log=quiet, corpus=corpus)
              for key in head_keys)]

# %% tags=["hide-input"]
table(t5, formats={"ours": "{:.1f}", "± se": "{:.1f}", "C": "{:g}", "paper": "{:.1f}"})

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(7.5, 3.5))
xs = range(len(t5))
ax.errorbar(xs, t5["ours"], yerr=t5["± se"], marker="o", capsize=3, label=f"ours ({head_data.paper_name} role)")
ax.plot(xs, t5["paper"], marker="s", ls="--", mfc="none", color="grey",
        label=f"paper (CALTECH-256, {P.TABLE5_PAPER_LABEL})")
ax.set_xticks(list(xs), t5["feature"], rotation=25, ha="right", fontsize=7)
ax.set_ylabel("linear-probe top-1 (%)")
ax.legend(fontsize=7)
ax.set_title(ch.provenance(data=head_data.describe, runs={"detector": head["source"]}), fontsize=6, loc="left")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Table 5 at the paper's level and at a common dimension
# Two things confound the table above. (1) At our input size torchvision's `MultiScaleRoIAlign` pools a whole-image
# RoI from a fine FPN level (printed below), while the paper's ConvProj sits at the Conv5 stride: here the RoI is
# pooled from P5 (`level="3"`). (2) The blob has 49 times the dimensions of its 1x1 pool on the target's training
# images (750 for the CALTECH-256 role at `mini`), so "spatial information hurts" and "p >> n overfits" predict the same ordering. Every feature set is
# therefore also projected on the first principal components of its training split, to one common dimension, before
# the same probe. Each ordering's claim compares the two probes' top-1 on the same test images, in every
# pre-training replicate of the detection backbone (the tables show replicate 0).

# %%
head_p5 = F.detector_head_features("detection", head_data, prof, store=ch.store, device=device, log=quiet,
                                   corpus=corpus, level="3")
p5_probes = {f: P.probe_features(head_p5, f) for f in F.HEAD_FEATURES}
matched = P.matched_probes(head_p5, [f for f in F.HEAD_FEATURES if f != "conv5"])
replicate_matched = [
    P.matched_probes(F.detector_head_features(key, head_data, prof, store=ch.store, device=device, log=quiet,
                                              corpus=corpus, level="3"), [f for f in F.HEAD_FEATURES if f != "conv5"])
    for key in head_keys]
side = prof.model.image_size
t5_matched = pd.DataFrame([{"feature": head_p5["names"][f], "dim": p5_probes[f]["dim"],
                            "top-1, P5": p5_probes[f]["top1"],
                            "top-1, P5 + PCA": matched[f]["top1"] if f in matched else math.nan,
                            "PCA dim": matched[f]["pca_dim"] if f in matched else math.nan} for f in F.HEAD_FEATURES])

# %% tags=["hide-input"]
display(Markdown(f"A whole {side} px image is pooled by `MultiScaleRoIAlign` from P{P.fpn_level_of_roi(side, side)}; "
                 "the rows below pool it from P5."))
table(t5_matched, formats={"top-1, P5": "{:.1f}", "top-1, P5 + PCA": "{:.1f}", "PCA dim": "{:.0f}"})

# %% [markdown]
# ## Table 8: fine-tuning every backbone
# Full fine-tuning (all layers, a new last layer) on each target's train split, top-1 on its test split, one run
# per pre-training replicate and seed through the run store (the IMAGENET-LOC runs on the CALTECH-256 role are the
# ablations chapter's Table 7 runs). The paper's column is its value for the dataset playing the same role
# (`detection` is compared with the paper's COCO row).

# %% tags=["hide-input"]
table(P.table8(transfer))

# %% tags=["hide-input"]
ft = P.finetune_frame(transfer)
fig, ax = plt.subplots(figsize=(7.5, 3.8))
order = [p for p in finetune_pretrains if p in set(ft["pretrain"])]
sns.barplot(data=ft, x="dataset", y="top1", hue="pretrain", hue_order=order, errorbar="sd", alpha=0.85, ax=ax)
sns.stripplot(data=ft, x="dataset", y="top1", hue="pretrain", hue_order=order, dodge=True, palette="dark:black",
              size=3, legend=False, ax=ax)
ax.set_ylabel("top-1 (%) after fine-tuning, mean ± sd over runs")
ax.set_xlabel("")
sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), title="pre-training", fontsize=8)
for text in ax.get_legend().get_texts():
    text.set_text(role_label(text.get_text()))
ax.set_title("\n".join(textwrap.fill(ch.provenance(res), 190) for res in transfer.values()), fontsize=5, loc="left")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Table 8 on real images
# The same fine-tuning on the real datasets of `real_data` that are on this machine (trained on their train split,
# or Pet's trainval; top-1 on test), at the profile's input size for real images. The paper's column is its value for
# that dataset (none for Oxford-IIIT Pet); the genuine subsets hold a few classes of each dataset, so only the
# direction of the gap can be compared.

# %%
real_transfer = {F.REAL_PROBE_DATASETS[name]: run_classification_transfer(
    prof, role=name, data_root=root, pretrains=tuple(finetune_pretrains), seeds=ch.seeds, replicates=ch.replicates,
    store=ch.store, device=device, progress=False, log=quiet, corpus=corpus)
    for name, root in real_transfer_roots(real_data).items()}
real_claims = {f"real images, {k}": v for k, v in P.finetune_gap_claims(real_transfer).items()}

# %% tags=["hide-input"]
if real_transfer:
    display(table(P.table8(real_transfer)))
    display(Markdown("Their gaps, with intervals and labels, are the `real images` rows of the claims table below."))

# %% [markdown]
# ## Every claim of this chapter
# The primary claim (Table 8, CALTECH-256 role) is tested at 5 %; the others are secondary, their p-values
# Holm-adjusted among themselves: Table 8 on the other targets and Table 6 per target (over pre-training runs), the
# real-image probes and Table 5's orderings, at the default level and at P5 after PCA to a common dimension (over
# pre-training runs; McNemar's exact test over the test images where there is one backbone or one detector, so
# about those networks).
# `smallest detectable` is the smallest true effect this design detects with 80 % power; a secondary claim's
# at Holm's strictest level, 0.05 / m (m secondary claims), which it must pass when it ranks first.

# %% tags=["hide-input"]
claims.update(P.probe_claims(probe_rows))
claims.update({f"real images, {k}": v for k, v in P.probe_claims(real_rows).items()} if real_rows else {})
claims.update(P.table5_claims([head_probes, *replicate_head_probes]))
claims.update(P.table5_claims([{f: r["correct"] for f, r in m.items()} for m in (matched, *replicate_matched)],
                              label=" (P5, PCA)"))
claims.update(real_claims)  # Table 8 on real images: one Holm family with the rest
table(C.claims_frame(claims, next(iter(claims))), precision=2, formats={"p": "{:.3f}", "p (Holm)": "{:.3f}"})

# %% [markdown]
# ## The claims beside the predictions
# Every claim of the chapter (the claims table above) beside what the paper's
# explanation predicted for it, under this execution's cue (or the SUN scene control). The primary claim is Table 8 on the CALTECH-256 role;
# the others are Holm-adjusted among themselves (`detpretrain.analysis.stats`); `conditional` marks a verdict about
# particular pre-trained networks (one replicate, or McNemar's test over the test images).

# %%
all_claims = claims
keys = {name: M.classification_prediction_key(name, next(iter(all_claims))) for name in all_claims}
beside = M.claims_beside_predictions(stats.adjust_claims(all_claims, next(iter(all_claims))), "classification",
                                     M.condition_of(cue, corpus) or cue, keys)
M.save_claims(beside, chapter="classification", profile=prof.name, cue=cue, corpus=corpus, params=ch.params)

# %% tags=["hide-input"]
table(beside, precision=2)

# %% [markdown]
# ## What this shows
# The answer and the claims table are computed from this execution. Things to keep in mind:
#
# * The probe is a convex fit on fixed features, so given the backbone its only noise is the finite test set
#   (`± se`); across pre-training replicates the backbone itself varies, and the Table 6 verdicts are over those
#   replicates. Fine-tuning varies with the seed as well, and its verdict is over the pre-training runs.
# * Table 6's gap is the paper's central evidence that detection features are less *linearly* separable by class;
#   Table 8 asks whether fine-tuning closes the gap (the paper: it narrows but stays). At `smoke` and `mini` our
#   IMAGENET-CLS-style backbone is trained on the same 25 categories the synthetic classification targets are built
#   from, which favours it as ImageNet's 1000 classes favour the paper's.
# * Our `detection` backbone continues from the IMAGENET-CLS backbone (as the paper's detectors do), so the two
#   share their starting point; any gap is what detection pre-training changed.
# * Table 5 on our detector: the RoI blob is 7 x 7 (not 14 x 14) and at `mini` the FC layers are 256-wide (not 1024),
#   so the spatial-versus-pooled comparison has fewer steps than the paper's.
# * At `smoke` every run trains for seconds; its numbers exercise the code, they are not evidence.
