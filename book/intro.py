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
# # An executable analysis of pre-training on object detection
#
# This book re-runs **Li, Singh, Najibi, Wu and Davis (2019), "An Analysis of Pre-Training on Object Detection"** {cite}`li2019analysis`
# (arXiv:1904.05871) from raw data: every number and figure below comes from training runs made when the book was
# built, stored in a content-addressed run store and reused by every chapter.
#
# ## The paper's four conclusions
# 1. Pre-training on large detection datasets is crucial for fine-tuning on small detection datasets, especially
#    when precise localisation is needed (Table 1, Figure 1 → chapter *Does detection pre-training help more at high
#    IoU?*).
# 2. Detection pre-training also benefits other localisation tasks like semantic segmentation but adversely affects
#    image classification (Tables 4-8).
# 3. Features of images that are similar in the detection feature space are likely to be similar in the
#    classification feature space, but the converse is not true (Figures 3, 6, 7).
# 4. Activations of detection networks typically cover the entire object, those of classification networks focus on
#    parts (Figures 4, 5).
#
# The chapters, in order: *pre-training* (the backbones), *detection* (conclusion 1), *ablations* (Tables 2, 3, 7),
# *segmentation* (Table 4, Figures 2, 9; conclusion 2), *classification* (Tables 5, 6, 8; conclusion 2),
# *feature space* (Figures 3, 6, 7; conclusion 3) and *visualisations* (Figures 4, 5, 8; conclusion 4), then two
# companion studies on the same backbones and run store: *eigenspectrum* (Shinya et al. 2019 {cite}`shinya2019understanding`: intrinsic
# dimensionality of detector features, fine-tuned vs from scratch, and the widths it determines) and *frozen backbone*
# (Vasconcelos et al. 2022 {cite}`vasconcelos2022proper`: the classification backbone frozen vs fine-tuned, by detector capacity, on a long tail).
# Each chapter opens with its answer, as a paper's abstract does: the paper's claim, attributed, the paper's number,
# ours with its 95 % interval, and the label. The claim each chapter tests first (its *primary claim*) is declared in
# the package (`detpretrain.analysis.claims`) before any run; its other claims are secondary, Holm-adjusted, and
# shown in one table per chapter.
#
# ## How the verdicts are made
# Every verdict comes from one module, `detpretrain.analysis.stats`. The unit of a claim about pre-training is the
# **pre-training run**: each pre-trained backbone is pre-trained `replicates` times (`mini`: 3, seeds 0, 1, 2), and
# each replicate is fine-tuned once per fine-tuning seed (`mini`: one); a from-scratch arm, which has no pre-training,
# gets an independent training run per replicate. The differences of a replicate are averaged, and the 95 %
# t-interval is over the replicates (Bouthillier et al. 2021). A claim **holds** when its interval excludes zero in
# the paper's direction, is **reversed** when it excludes zero the other way, and is **not resolved** otherwise, and
# always where the interval is not over pre-training runs of both arms (one network in an arm: published weights at
# `torchvision` and `paper`, or one untrained floor network), whatever it shows about those networks, which the
# label then adds;
# "accuracy kept" claims are non-inferiority tests with a declared margin. Each claim also gives its power: the
# smallest effect this design detects with 80 % probability. A detection chapter whose IMAGENET-CLS-arm detector is
# too weak (below 60 mAP@0.5, or mAP@0.7 below half its mAP@0.5) prints **regime inadequate** instead of a label.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper
dataset = "synthetic"  # synthetic | coco | voc: the detection target whose results are summarised
data_root = None
seeds = None
device = "auto"
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated
replicates = None  # pre-training replicates per backbone, crossed with the seeds; None means the profile's (mini: 3)
coco_root = None  # paper profile: COCO 2017 root of its detection pre-training; None: $DETPRETRAIN_COCO or ~/data/coco

# %% [markdown]
# ## How to read and re-run this book
#
# **Profiles.** `smoke` runs every code path in seconds (what the tests and CI execute; its numbers mean nothing),
# `mini` is the default: the embedded synthetic corpus at 128 pixels and a narrow ResNet on a CPU, `paper` is the
# paper's setting on the real datasets (ResNet-101 + FPN, torchvision ImageNet weights, VOC 07+12 → VOC07 test)
# and needs GPUs. `src/detpretrain/profiles.py` lists every value.
#
# **The whole book**, from the project root after `pip install -e ".[dev]"`:
#
# ```bash
# python -m detpretrain book                    # mini profile: corpora, all trainings, HTML in _build/html
# python -m detpretrain book --profile smoke    # seconds
# ```
#
# **One chapter with other parameters**, through the thin wrapper or with papermill itself:
#
# ```bash
# python -m detpretrain run detection -p dataset coco -p data_root ~/data/coco -p seeds "[0, 1, 2]"
# jupytext --to ipynb --set-kernel python3 book/detection.py
# papermill book/detection.ipynb out.ipynb -p profile paper -p data_root ~/data/VOCdevkit -p dataset voc -p device cuda
# ```
#
# **Your own GPUs.** Chapters train through `detpretrain.runs.get_or_train`; to use several GPUs, train the runs
# first with `torchrun --nproc_per_node 8 -m detpretrain train --profile paper --dataset voc --data-root ~/data/VOCdevkit`
# (same run store), then build the book, which loads them.
#
# **Where the time goes.** The tables below are computed from the run store of this build: the worker-seconds of
# every run of the book's plan at this profile (each chapter at its default parameters), per part of the build and
# per chapter (a run under the first chapter that reads it), from what each run recorded (its epochs and its final
# evaluation); `python -m detpretrain runs cost` prints the same for any store. Then the detection experiment's
# training minutes, pre-training by pre-training, on the device named.

# %%
from IPython.display import Markdown, display

from detpretrain.analysis import detection as A
from detpretrain.chapter import chapter_setup, quiet, table
from detpretrain.experiments.common import PRETRAINS
from detpretrain.experiments.detection import run_detection_experiment
from detpretrain.overview import primary_overview

ch = chapter_setup("intro", profile=profile, store=store, data_cache=data_cache, device=device, dataset=dataset,
                   data_root=data_root, seeds=seeds, replicates=replicates, coco_root=coco_root)
result = run_detection_experiment(ch.profile, dataset=dataset, data_root=data_root, pretrains=PRETRAINS,
                                  seeds=ch.seeds, replicates=ch.replicates, store=ch.store, device=device,
                                  progress=False, log=quiet)

# %% tags=["hide-input"]
from detpretrain.scope import chapter_note

if note := chapter_note("intro", ch.profile):
    display(Markdown(note))

# %% tags=["hide-input"]
from detpretrain.overview import book_cost
from detpretrain.plan import cost_frame, estimate_left

costs, plan_errors = book_cost(ch.profile.name, ch.store, ch.data_cache)
if costs:
    display(table(cost_frame(costs, "part")))
    display(table(cost_frame(costs, "chapter")))
    spent = sum(c.seconds for c in costs)
    left, estimated, waiting = estimate_left(costs)
    display(Markdown(f"In all **{spent:,.0f} worker-seconds** ({spent / 3600:.1f} h of one process) spent on the "
                     f"{len(costs)} planned runs ({sum(c.state == 'complete' for c in costs)} complete)"
                     + (f"; {waiting} not complete" + (f", about {left:,.0f} more estimated for {estimated} of them"
                                                       if estimated else "") if waiting else "") + "."))
for chapter_name, why in plan_errors.items():
    display(Markdown(f"*{chapter_name}: not planned here ({why}).*"))
display(table(A.training_time_table(result), formats={"training (min)": "{:.1f}"}))
display(Markdown(A.training_time_sentence(result)))

# %% [markdown]
# ## Results overview
# Each chapter's primary claim (declared before the runs), the paper's number, ours with its 95 % interval and n
# (the unit of replication), and the label, read from the runs of this build's store (a chapter whose runs are not
# in the store yet says so).

# %% tags=["hide-input"]
display(table(primary_overview(ch.profile, ch.store, dataset=dataset, data_root=data_root,
                               replicates=ch.replicates)))

# %% [markdown]
# Table 1's numbers for the roles of our backbones (mean ± standard deviation over the fine-tuning runs: every
# pre-training replicate and fine-tuning seed):

# %% tags=["hide-input"]
display(table(A.results_overview(result)))
display(Markdown(f"*{ch.provenance(result)}*"))

# %% [markdown]
# Absolute numbers are not comparable: the paper fine-tunes SNIPER with a ResNet-101 on 16k VOC images, the `mini`
# profile a narrow ResNet (`resnet_tiny`, one block per stage) on 1,800 synthetic 128-pixel images. What the book checks is whether each of the
# paper's *comparisons* comes out the same way, with an interval over pre-training runs to tell signal from noise.
