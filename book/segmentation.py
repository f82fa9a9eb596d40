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
# # Does detection pre-training help semantic segmentation? (Li et al., Table 4, Figure 2)
#
# *Li et al. 2019 {cite}`li2019analysis`, Section 2.2, Table 4, Figure 2 and Figure 9 (appendix).*
#
# The paper fine-tunes DeepLab {cite}`chen2018deeplab` (Deformable-ConvNets ResNet-101) on PASCAL VOC 2012 from backbones pre-trained on
# image classification (IMAGENET-CLS, 75.7 mIoU) or on object detection (IMAGENET-LOC 78.3, OPENIMAGES 78.6), and
# reports that **detection pre-training helps segmentation by about 3 mIoU points** (Table 4; the primary claim
# here). To see where, it scores pixels near object boundaries separately from the rest: the *trimap* of width *w*
# holds the labelled pixels within *w* pixels of VOC's "void" outline band, the *anti-trimap* the pixels farther
# away (Figure 2). Its reading: the gain is **not at the boundaries but over the whole extent of objects**. The appendix (Figure 9) shows examples where the
# classification-pre-trained network covers only parts of an object, and quotes per-class gains: sheep +7.5,
# cow +6.5, dining table +5.6, potted plant about 0.
#
# Here the backbones of the pre-training chapter (the very same runs, loaded from the run store) and one trained
# from scratch are each fine-tuned as a torchvision DeepLabV3 (output stride 8, ASPP head freshly initialised) on
# the segmentation target, once per pre-training replicate and fine-tuning seed, and evaluated by mIoU, pixel accuracy, per-class IoU and trimap /
# anti-trimap bands. The synthetic target is written like VOC: 0 = background, a class index per object pixel, and
# a void band (255) along every object outline, 3 px wide at 128 px as VOC's is about 5 px at 500 px.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper
dataset = "synthetic"  # synthetic (VOC-like target) | voc | coco
data_root = None  # real data: a VOC 2012 root (train and val lists) or a COCO root (train2017 and val2017)
seeds = None  # fine-tuning seeds; None means the profile's (mini: 0, one per pre-training replicate)
device = "auto"  # auto | cpu | cuda
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
replicates = None  # pre-training replicates per backbone, crossed with the seeds; None means the profile's (mini: 3)
pretrains = ["imagenet-cls", "detection", "scratch"]  # backbones to compare
bands = None  # trimap widths in evaluated pixels to show; None means all (DeepLab's 1 to 40 px at VOC scale)
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco

# %%
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

from detpretrain.analysis import claims as C
from detpretrain.analysis import segmentation as A
from detpretrain.chapter import chapter_setup, table
from detpretrain.experiments.segmentation import configuration_table, run_segmentation_experiment

ch = chapter_setup("segmentation", profile=profile, store=store, data_cache=data_cache, device=device,
                   dataset=dataset, data_root=data_root, seeds=seeds, replicates=replicates, pretrains=pretrains,
                   bands=bands, coco_root=coco_root)
prof = ch.profile

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note

if note := chapter_note("segmentation", ch.profile):
    display(Markdown(note))

# %% [markdown]
# ## Configuration
# The schedule is the profile's `seg_finetune`; the input size, DeepLab's atrous rates and the trimap widths are
# scaled from the paper's VOC setting to our image size (see `detpretrain.models.segmentation`). Every run is
# identified by the hash of its full configuration, shown in every figure title.

# %% tags=["hide-input"]
# NBVAL_CHECK_OUTPUT
table(configuration_table(prof, dataset, data_root, ch.seeds, pretrains, ch.replicates), index=True)

# %%
result = run_segmentation_experiment(prof, dataset=dataset, data_root=data_root, pretrains=tuple(pretrains),
                                     seeds=ch.seeds, replicates=ch.replicates, store=ch.store, device=device,
                                     progress=False)
claims = A.segmentation_claims(result, bands=bands)
print(ch.provenance(result))

# %% [markdown]
# ## The answer

# %% tags=["hide-input"]
display(Markdown(C.answer("segmentation", next(iter(claims.values())))))

# %% [markdown]
# ## Table 4: mIoU per pre-training
# Mean and standard deviation over the fine-tuning runs (every replicate and seed), in percent, beside the paper's
# VOC 2012 val mIoU for the same role (Table 4 has no COCO row: for our detection pre-training the table quotes the
# paper's OPENIMAGES row, named so).

# %% tags=["hide-input"]
table(A.table4(result))

# %% [markdown]
# ## Where the gain lies: trimap and anti-trimap (Figure 2)
# Left: pixels within *w* of a void pixel (boundary pixels); right: the pixels farther away. Bands are one standard
# deviation. The bottom axis is in pixels of our images, the top one in the VOC-scale
# pixels of the paper's and DeepLab's plots (1–40 px). Lines are the mean over the fine-tuning runs.

# %% tags=["hide-input"]
A.plot_trimap(result, bands=bands, title=ch.provenance(result))
plt.show()

# %% [markdown]
# The gain of detection over classification pre-training per width, paired by replicate and seed (points):

# %% tags=["hide-input"]
table(A.boundary_gains(result, bands=bands), precision=2)

# %% tags=["hide-input"]
for metric in ("mIoU", "pixel_accuracy"):
    display(Markdown(A.extent_summary(result, metric=metric, bands=bands)))

# %% [markdown]
# The paper's claim is that the gain is *not concentrated at boundaries*, which is not "anti-trimap gain > trimap
# gain". Pixel accuracy splits exactly over pixels, so per width: is there a gain away from boundaries, and is the
# boundary band's share of the gained correct pixels no larger than its share of the pixels? The second is tested as
# the boundary band's accuracy gain minus the gain away from boundaries (above zero exactly when the share is above
# the pixel share; non-inferiority, margin 1 point), which every run pair has, also one with no net gain. Paired by
# pre-training replicate and fine-tuning seed; intervals over the pre-training runs.

# %% tags=["hide-input"]
share_table, _ = A.boundary_share(result, bands=bands)
display(table(share_table, precision=3))
display(Markdown("Their verdicts, with intervals, are the `Figure 2` rows of the chapter's claims table below."))

# %% [markdown]
# ## Per-class IoU (Figure 9's appendix text)
# IoU per class of the target for both pre-trainings (mean over the fine-tuning runs) and the paired gain. The paper quotes four
# classes (gains of IMAGENET-LOC over IMAGENET-CLS); our synthetic target has cow, table and potted plant but no
# sheep.

# %% tags=["hide-input"]
table(A.per_class_gain(result), roles=True)

# %% tags=["hide-input"]
table(A.paper_class_comparison(result))

# %% [markdown]
# ## Examples (Figure 9)
# Chosen by a rule, not by eye: the test images where detection pre-training's per-image mIoU exceeds the
# classification-pre-trained model's the most, and the one where it falls short the most (first seed). Void pixels
# are cream.

# %% tags=["hide-input"]
if {"imagenet-cls", "detection"} <= set(pretrains):
    examples = A.pick_examples(result, n_gain=3, n_loss=1)
    display(table(examples, roles=True))
    A.plot_examples(result, examples, device="cpu", data_cache=ch.data_cache, title=ch.provenance(result))
    plt.show()
else:
    display(Markdown("(Figure 9 compares the imagenet-cls and detection backbones; one of them is not in `pretrains`.)"))

# %% [markdown]
# ## Every claim of this chapter
# The primary claim is tested at 5 %; the others are secondary, their p-values Holm-adjusted among themselves. The
# `Figure 2` rows are the paper's "not concentrated at boundaries", per band width: a pixel-accuracy gain away from
# boundaries, and the boundary band's accuracy gain not above the gain away from them (its share of the gained pixels
# not above its share of the pixels; non-inferiority, margin 1 point). `smallest detectable` is the smallest true effect this design detects with 80 % power; a secondary claim's
# at Holm's strictest level, 0.05 / m (m secondary claims), which it must pass when it ranks first.

# %% tags=["hide-input"]
table(C.claims_frame(claims, next(iter(claims))), precision=2, formats={"p": "{:.3f}", "p (Holm)": "{:.3f}"})

# %% [markdown]
# ## What this shows
# The answer and the claims table are computed from the runs of this execution, not written by hand. Things to keep
# in mind:
#
# * At the `smoke` profile every run trains for seconds on a few dozen 64-pixel images; the models barely leave
#   "everything is background", so the numbers exercise the code and are not evidence.
# * The unit is the pre-training run: with the `mini` profile's 3 replicates the interval has 2 degrees of freedom
#   (the claims table's `n` says how many this execution has); a gain the design
#   cannot resolve is reported as *not resolved*, with the smallest effect it could have detected.
# * The paper's DeepLab uses a Deformable-ConvNets ResNet-101 on 513-px crops of real photographs; ours is
#   torchvision's DeepLabV3 on a narrow ResNet and 128-pixel synthetic images, with atrous rates and trimap widths
#   scaled to that size. The *direction* of the effects is what can be compared, not their magnitude.
# * Re-run on real images: `python -m detpretrain run segmentation -p dataset coco -p data_root ../shared/data/coco2017_subset`
#   (COCO's instances of VOC's 20 classes become the classes, other categories background, crowds and a 5-px band
#   along instance outlines void; see `detpretrain.data.builders.coco_semantic_mask`).
