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
# # Does freezing the classification backbone improve detection, given capacity? (Vasconcelos et al. 2022)
#
# *Vasconcelos, Birodkar, Dumoulin, "Proper Reuse of Image Classification Features Improves Object Detection",
# CVPR 2022 {cite}`vasconcelos2022proper` (notes in `../shared/papers/vasconcelos2022_frozen_backbone.md`).*
#
# Li et al. find that classification pre-training is a weaker start for localisation than detection pre-training.
# Vasconcelos et al. go the other way: keep the ImageNet classifier's backbone **frozen** (weights and normalisation
# statistics) and train only what comes after it. Their claims (the first, at the largest capacity here, is this
# chapter's primary claim, declared in `detpretrain.analysis.claims` before the runs):
#
# 1. freezing **improves** detection "as long as the remaining detector components have enough capacity": the
#    gain grows with the capacity after the backbone (FPN → NAS-FPN → + Cascade heads);
# 2. the gain is **largest on rare (long-tail) categories** (LVIS AP_r);
# 3. freezing **saves compute and memory** in training.
#
# Here: the book's IMAGENET-CLS backbone, frozen (`trainable_stages=0`) or fine-tuned end to end, under three
# detector capacities torchvision can build — `FPN` (torchvision's Faster R-CNN: FPN, 1-conv RPN head, 2-MLP box
# head), `FPN+2conv` (plus two 3×3 conv + GroupNorm + ReLU layers shared by all FPN levels, added residually) and
# `FPN+2conv+4conv1fc` (plus torchvision v2's 2-conv RPN head and 4-conv + 1-FC box head) — on a **long-tailed
# version of the target**: half of the classes are made rare by keeping at most `max_images` training images that
# contain each (whole images are dropped, so no rare object is left unlabelled); the test split is untouched.
# Runs: `detpretrain.experiments.frozen`; long tail: `detpretrain.data.long_tail`; measurements: `detpretrain.analysis.frozen`.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper
dataset = "synthetic"  # synthetic (VOC-like target) | coco | voc
data_root = None  # real data root for dataset coco or voc
seeds = None  # seeds; None means the profile's (mini: 0, one per pre-training replicate)
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
replicates = None  # pre-training replicates of the backbone, crossed with the seeds; None means the profile's (mini: 3)
pretrain = "imagenet-cls"  # the backbone that is frozen or fine-tuned (imagenet-cls or detection)
heads = ["FPN", "FPN+2conv", "FPN+2conv+4conv1fc"]  # detector capacities, smallest first
rare = None  # rare class names; None means every second class down the frequency ranking
max_images = 8  # training images kept per rare class (LVIS rare classes have 1 to 10)
resource_iterations = 5  # timed training steps per configuration for the resource table
exclusion_control = "category"  # control at the largest capacity: IMAGENET-CLS without the rare classes (category | supercategory | None)
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from detpretrain.analysis import claims as C
from detpretrain.analysis import frozen as Z
from detpretrain.chapter import chapter_setup, table
from detpretrain.experiments.frozen import exclusion_control_note, run_frozen_study
from detpretrain.figures import show as show_figure

ch = chapter_setup("frozen_backbone", profile=profile, store=store, data_cache=data_cache, device=device,
                   dataset=dataset, data_root=data_root, seeds=seeds, replicates=replicates, pretrain=pretrain,
                   heads=heads, rare=rare, max_images=max_images, resource_iterations=resource_iterations,
                   exclusion_control=exclusion_control, coco_root=coco_root)
prof = ch.profile

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note

if note := chapter_note("frozen_backbone", ch.profile):
    display(Markdown(note))

# %%
result = run_frozen_study(prof, dataset=dataset, data_root=data_root, pretrain=pretrain, heads=tuple(heads),
                          rare=rare, max_images=max_images, seeds=ch.seeds, replicates=ch.replicates, store=ch.store,
                          device=device, resource_iterations=resource_iterations, progress=False)
excluded_note = exclusion_control_note(prof, pretrain, dataset, exclusion_control)
control = None if excluded_note else run_frozen_study(
    prof, dataset=dataset, data_root=data_root, pretrain=pretrain, heads=tuple(heads[-1:]), rare=rare,
    max_images=max_images, seeds=ch.seeds, replicates=ch.replicates, store=ch.store, device=device,
    resource_iterations=1, progress=False, exclude_rare_from_pretraining=exclusion_control)
control_claims = Z.exclusion_claims(result, control, heads[-1])  # {} without the control
claims = {**Z.frozen_claims(result, heads), **control_claims}
regime = Z.frozen_regime(result, heads[0])
source = ch.provenance(result, data=Z.study_data(result))
print(source)

# %% [markdown]
# ## The answer

# %% tags=["hide-input"]
display(Markdown(C.answer("frozen_backbone", next(iter(claims.values())), regime=regime)))

# %% [markdown]
# ## The long-tailed target
# Training images per class before and after subsampling (an image counts for every class it contains):

# %% tags=["hide-input"]
# NBVAL_CHECK_OUTPUT
print(Z.long_tail_sentence(result))
table(Z.long_tail_table(result))

# %% [markdown]
# ## Accuracy: frozen vs fine-tuned, by capacity
# VOC07 11-point AP in percent, mean and sd over the runs (every replicate and seed), over all classes, the rare and
# the frequent ones:

# %% tags=["hide-input"]
frozen_table = Z.frozen_table(result)
table(frozen_table, index=True)

# %% tags=["hide-input"]
fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=False)
for ax, metric in zip(axes, ("all@0.5", "rare@0.5")):
    for mode, colour in (("frozen", "tab:blue"), ("fine-tuned", "tab:orange")):
        means = [frozen_table.loc[(h, mode), (metric, "mean")] for h in heads]
        sds = [frozen_table.loc[(h, mode), (metric, "std")] for h in heads]
        ax.errorbar(range(len(heads)), means, yerr=np.nan_to_num(sds), marker="o", capsize=3, color=colour,
                    label=f"backbone {mode}")
    ax.set_xticks(range(len(heads)), heads, fontsize=6)
    ax.set_title(f"mAP over {metric.split('@')[0]} classes, IoU {metric.split('@')[1]}", fontsize=8)
    ax.set_ylabel("AP (%)", fontsize=7)
    ax.tick_params(labelsize=6)
axes[0].legend(fontsize=6)
fig.text(0.01, 0.005, source, fontsize=4, wrap=True)
fig.tight_layout(rect=(0, 0.04, 1, 1))
show_figure(fig, "frozen_vs_finetuned", chapter="frozen_backbone", profile=prof.name, provenance=source)

# %% [markdown]
# Frozen minus fine-tuned, paired by pre-training replicate and seed, with its 95 % interval over pre-training runs
# (labels before the Holm adjustment of the claims table):

# %% tags=["hide-input"]
table(Z.gain_table(result, heads), precision=2)

# %% [markdown]
# The paper's claims are interactions: the gain of freezing *grows* with the detector's capacity, and is *larger* on
# rare classes. As differences of differences, paired by pre-training replicate and fine-tuning seed (AP points;
# the interval is over the pre-training runs, or over fine-tuning seeds and conditional on the backbone when there is
# one):

# %% tags=["hide-input"]
interactions = Z.interaction_verdicts(result, heads)
table(C.verdicts_table(interactions), precision=2)

# %% [markdown]
# ## Control: rare classes the backbone never saw
# On the synthetic corpora every rare class of this study is also a category of the IMAGENET-CLS pre-training corpus
# (on real data, ImageNet's 1,000 classes hold some COCO categories and not others), so a frozen backbone may help
# rare classes simply because it was trained to tell them apart. The control repeats the study at the
# largest capacity from IMAGENET-CLS runs pre-trained on a corpus without the rare classes (`exclusion_control =
# "category"`) or without their whole super-categories (`"supercategory"`), one per pre-training replicate, and asks
# whether freezing still helps rare classes and whether the gain shrinks. Its claims join the table below.

# %% tags=["hide-input"]
if control is None:
    display(Markdown(f"*{excluded_note}*"))
else:
    print(ch.provenance(control, data=Z.study_data(control)))
    display(table(Z.frozen_table(control, metrics=("all@0.5", "rare@0.5", "frequent@0.5")), index=True))
    display(table(C.verdicts_table(control_claims, columns=("estimate", "ci_low", "ci_high", "n", "unit", "mde")),
                  precision=2))

# %% [markdown]
# ## Resources, measured side by side
# One process builds every configuration and times its training steps round-robin on the same batch (forward,
# backward, SGD step; median of `resource_iterations` rounds after one warm-up), so load on the machine affects all
# alike. Memory that freezing saves is counted exactly, independent of the device: the bytes autograd keeps for the
# backward pass (activations) and the gradient + momentum buffers of the trained parameters; on CUDA also the peak
# allocated memory of a step.

# %% tags=["hide-input"]
table(pd.DataFrame(result["resources"]), precision=3, thousands=True)

# %% tags=["hide-input"]
display(Markdown("Frozen / fine-tuned, per capacity:"))
table(pd.DataFrame(Z.resource_ratios(result["resources"])), precision=2)

# %% [markdown]
# ## Every claim of this chapter
# The primary claim (freezing helps at the largest capacity, all classes, mAP@0.5) is tested at 5 %; the others are
# secondary, their p-values Holm-adjusted among themselves. `smallest detectable` is the smallest true effect this
# design detects with 80 % power; a secondary claim's
# at Holm's strictest level, 0.05 / m (m secondary claims), which it must pass when it ranks first.

# %% tags=["hide-input"]
display(Markdown(regime.message))
table(C.claims_frame(claims, next(iter(claims)), regime), precision=2, formats={"p": "{:.3f}", "p (Holm)": "{:.3f}"})

# %% tags=["hide-input"]
display(Markdown(Z.resources_summary(result)))

# %% [markdown]
# Caveats. At `smoke` and `mini` the backbone here is our own IMAGENET-CLS ResNet (at `mini`: one BasicBlock per
# stage, 20 epochs on 128-px synthetic objects; at the GPU profiles torchvision's published ImageNet ResNet), not an
# ImageNet ResNet-RS-101: a frozen backbone can only be as good as its features, and
# Vasconcelos et al.'s point relies on a strong classifier. Their schedules are 72–600 epochs with batch 64; ours
# are the profile's fine-tuning schedule. "Capacity" stops at what torchvision builds (no NAS-FPN, no Cascade
# R-CNN). Rare classes here have at most `max_images` training images, evaluated on an unchanged test split — the
# closest analogue of LVIS's AP_r the synthetic target allows. On CPU the resource table has no peak-memory column;
# the saved-activation bytes are what a GPU would also have to hold.
