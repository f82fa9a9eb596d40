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
#    when precise localisation is needed (Table 1, Figure 1 → chapter *Detection: pre-training helps at high IoU*).
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
# Each ends with the published numbers or claims beside ours and a verdict computed from the runs.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | paper
dataset = "synthetic"  # synthetic | coco | voc: the detection target whose results are summarised
data_root = None
seeds = None
device = "auto"
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated

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
# **Where the time goes.** The table below is computed from the runs of this build: training seconds summed over
# every epoch of every run, on the device named.

# %%
import os

import pandas as pd
from IPython.display import Markdown, display

from detpretrain.analysis import detection as A
from detpretrain.experiments.common import PRETRAINS, pretrain_configs
from detpretrain.experiments.detection import run_detection_experiment
from detpretrain.paper import TABLE1
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore

if data_cache is not None:
    os.environ["DETPRETRAIN_DATA"] = str(data_cache)
prof = get_profile(profile)
run_store = RunStore(store) if store else RunStore()
result = run_detection_experiment(profile, dataset=dataset, data_root=data_root, pretrains=PRETRAINS,
                                  seeds=tuple(seeds) if seeds is not None else None, store=run_store,
                                  device=device, progress=False, log=lambda line: None)

# %%
def _train_seconds(metrics):
    return sum(h["seconds"] for h in metrics["history"])


pre = {k: run_store.run_for(c) for k, c in pretrain_configs(prof).items() if c is not None}
time_rows = [{"run": f"pre-training: {k}", "runs": 1, "training (min)": _train_seconds(r.metrics) / 60,
              "device": r.metrics["device"]} for k, r in pre.items()]
for p in PRETRAINS:
    ms = [r["metrics"] for r in result["runs"] if r["pretrain"] == p]
    if ms:
        time_rows.append({"run": f"fine-tuning from {p}", "runs": len(ms),
                          "training (min)": sum(map(_train_seconds, ms)) / 60, "device": ms[0]["device"]})
times = pd.DataFrame(time_rows)
display(times.style.format({"training (min)": "{:.1f}"}).hide(axis="index"))
display(Markdown(f"In all **{times['training (min)'].sum():.1f} minutes** of training for profile `{prof.name}` "
                 "(corpus generation, evaluation and rendering come on top)."))

# %% [markdown]
# ## Results overview
# The paper's number beside ours, for the runs of this build (mean ± standard deviation over fine-tuning seeds).

# %%
t1 = A.table1(result).set_index("pre-training")
verdict = A.high_iou_verdict(result)


def _ours(pretrain, iou):
    if pretrain not in t1.index:
        return "not run"
    mean, sd = t1.loc[pretrain, f"mAP@{iou}"], t1.loc[pretrain, f"sd@{iou}"]
    return f"{mean:.1f}" + (f" ± {sd:.1f}" if sd == sd else "")


overview = pd.DataFrame([
    {"claim": "Table 1: IMAGENET-CLS, mAP@0.5", "paper": f"{TABLE1['IMAGENET-CLS'][0]:.1f}", "ours": _ours("imagenet-cls", 0.5)},
    {"claim": "Table 1: IMAGENET-CLS, mAP@0.7", "paper": f"{TABLE1['IMAGENET-CLS'][1]:.1f}", "ours": _ours("imagenet-cls", 0.7)},
    {"claim": "Table 1: COCO (detection), mAP@0.5", "paper": f"{TABLE1['COCO'][0]:.1f}", "ours": _ours("detection", 0.5)},
    {"claim": "Table 1: COCO (detection), mAP@0.7", "paper": f"{TABLE1['COCO'][1]:.1f}", "ours": _ours("detection", 0.7)},
    {"claim": "from scratch, mAP@0.5 / mAP@0.7", "paper": "–", "ours": f"{_ours('scratch', 0.5)} / {_ours('scratch', 0.7)}"},
    {"claim": "Figure 1: detection - classification gap grows with IoU", "paper": "+2.2 → +4.8 (OPENIMAGES)",
     "ours": (f"{verdict['gap_low']:+.1f} → {verdict['gap_high']:+.1f}: {verdict['verdict']}"
              if "gap_low" in verdict else verdict["verdict"])},
])
overview["profile · data"] = f"{prof.name} · {result['data']}"
overview.style.hide(axis="index")

# %% [markdown]
# Absolute numbers are not comparable: the paper fine-tunes SNIPER with a ResNet-101 on 16k VOC images, the `mini`
# profile a narrow ResNet on a few hundred synthetic 128-pixel images. What the book checks is whether each of the
# paper's *comparisons* comes out the same way, with the spread over seeds to tell signal from noise.
