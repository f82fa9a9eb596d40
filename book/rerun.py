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
# # Re-run it yourself
#
# Every number in this book comes from runs you can repeat: on your laptop (the `mini` profile on a CPU), online
# (Binder or Colab, from the launch button at the top of each chapter), or on GPUs (the `paper` profile). This page
# lists what a chapter accepts, where it looks for data and weights, the commands, and how long each profile takes.
# Its tables of parameters, data roots, weights and artifacts are read from the project's files when the book is
# built (`detpretrain.rerun`), so they cannot drift from them; the timings under *How long it takes* and the
# numbers under *Your numbers will differ* are dated measurements.

# %% tags=["parameters"]
profile = "mini"  # smoke | mini | torchvision | paper (nothing trains on this page)
dataset = "synthetic"  # unused here
data_root = None  # unused here
seeds = None  # unused here
device = "auto"  # unused here
store = None  # run store folder; None means $DETPRETRAIN_RUNS or runs/
data_cache = None  # generated-corpus folder; None means $DETPRETRAIN_DATA or data/generated

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
from IPython.display import Markdown, display

from detpretrain import rerun
from detpretrain.chapter import chapter_setup
from detpretrain.results import markdown_table

ch = chapter_setup("rerun", profile=profile, store=store, data_cache=data_cache, device=device, dataset=dataset,
                   data_root=data_root, seeds=seeds)
root = rerun.book_root()
repo = rerun.repository(root)

# %% [markdown]
# ## Install
#
# Python 3.11 or 3.12, from the project root (the README's install matrix has the conda variant):
#
# ```bash
# python3 -m venv .venv && . .venv/bin/activate
# # CPU-only laptop (about 1 GB): torch and torchvision both from PyTorch's CPU index, then the project
# pip install torch==2.11.0 torchvision==0.26.0 --index-url https://download.pytorch.org/whl/cpu
# pip install -e ".[dev]"
# # with an NVIDIA GPU: skip the CPU index line and run only `pip install -e ".[dev]"` (PyPI's torch is the CUDA build)
# ```
#
# ## Online: Binder and Colab
#
# The rocket button at the top of every chapter opens that chapter's executed notebook on Binder (a CPU container
# built from `binder/`: CPU torch and this project) or on Colab. Both open the branch the book workflow fills with
# the executed notebooks of the last build; Colab needs the project installed first.

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
# NBVAL_CHECK_OUTPUT
example = rerun.launch_urls(repo, "book/detection")
display(Markdown("\n".join([
    f"* Repository: <{repo.url}> · issues: <{repo.issues_url}> · this book online: <{repo.pages_url}>",
    f"* Binder, the detection chapter: <{example['binder']}>",
    f"* Colab, the detection chapter: <{example['colab']}>; run this in its first cell:"
    f" `!pip install \"detpretrain @ git+{repo.url}\"`",
    f"* Launch buttons open branch `{repo.branch}` (`repository.branch` in `_config.yml`); the download button of"
    " a chapter gives its executed `.ipynb`.",
])))

# %% [markdown]
# ## Every chapter's parameters
#
# Each chapter is a papermill notebook: its cell tagged `parameters` holds the defaults below (the comment after each
# default is its meaning). Give other values with the project's wrapper or with papermill itself:
#
# ```bash
# python -m detpretrain run detection -p seeds "[0, 1, 2]" -p device cuda      # book/detection.ipynb
# python -m detpretrain book --profile mini -p device cpu                      # every chapter
# jupytext --to ipynb --set-kernel python3 book/detection.py && \
#   papermill book/detection.ipynb out.ipynb -p profile smoke -y "seeds: [0, 1]"
# ```
#
# `-p` values are read as YAML (`None`, `[0, 1]`, `0.5`, `true`). Parameters every chapter shares, with the same
# default and meaning:

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
# NBVAL_CHECK_OUTPUT
shared, per_chapter = rerun.split_parameters(rerun.parameter_table(root))
display(Markdown(rerun.parameters_markdown(shared)))

# %% [markdown]
# and those of each chapter, in reading order:

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
# NBVAL_CHECK_OUTPUT
display(Markdown(rerun.parameters_markdown(per_chapter)))

# %% [markdown]
# ## Data: layouts and roots
#
# The default, `dataset="synthetic"`, needs nothing: the embedded corpora are generated on first use, written in
# the standard layouts the real readers read, and cached by their spec. Real datasets are read through a path, never
# copied; `data/README.md` says where to download each one and how `python -m detpretrain data check ROOT --format
# {voc,coco,folder}` validates it before anything trains.
#
# | data | root: parameter, else variable, else default | layout the readers expect | chapters |
# |---|---|---|---|
# | embedded synthetic corpora | `data_cache`, `$DETPRETRAIN_DATA`, `data/generated/` | the VOC, COCO and class-folder layouts below | all (the default) |
# | PASCAL VOC 2007 / 2012 | `data_root` with `dataset="voc"` | a VOCdevkit as extracted: VOC2007 and VOC2012 with Annotations, JPEGImages, ImageSets (and SegmentationClass for segmentation) | detection, ablations, segmentation, visualisations, the companion studies |
# | COCO 2017 as a target | `data_root` with `dataset="coco"` | annotations/instances_train2017.json and instances_val2017.json beside train2017/ and val2017/ | the same |
# | COCO 2017 for the detection pre-training of `paper` | `coco_root` (`train --coco-root`), `$DETPRETRAIN_COCO`, `~/data/coco` | as above | every chapter that reads the detection backbone |
# | COCO images for Figure 4 on real data | `real_detection_root` | as above | visualisations |
# | Flowers-102, Oxford-IIIT Pet, Caltech-256, SUN-397 | `real_data`, a dict of roots (`download=True`: torchvision fetches an absent one) | torchvision's layouts (flowers-102/, oxford-iiit-pet/, caltech256/, SUN397/); also Flowers-102 as class folders train/, valid/, test/ and Pet as images/ and annotations/ extracted by hand | classification; mechanisms (passed to its classification variants) |
# | the same, for the feature space | `data_root` with `dataset` flowers102, pet, caltech256 or sun397 | as above | feature_space |
# | runs: checkpoints and metrics | `store`, `$DETPRETRAIN_RUNS`, `runs/` | one folder per run, named by the hash of its config | all |
# | print figures: PDF and 300-dpi PNG | `$DETPRETRAIN_FIGURES`, `_build/figures/` | one folder per profile and chapter | visualisations, the companion studies |
#
# ## Weights
#
# `smoke` and `mini` download nothing: every backbone, the IMAGENET-CLS-style classifier included, is trained by the
# book on the embedded corpora. `paper` starts the IMAGENET-CLS role from torchvision's published weights, which
# torchvision downloads once into its cache (`$TORCH_HOME/hub/checkpoints`, by default `~/.cache/torch`), and
# pre-trains the detection role on COCO itself. `torchvision` pre-trains nothing: IMAGENET-CLS is ResNet-50
# IMAGENET1K_V1 and the detection role is the ResNet-50 body of torchvision's COCO Faster R-CNN (its whole detector
# for Table 5's head probes). At both GPU profiles every chapter runs on the real data given except those listed
# below, and each chapter's first output says which of its parts stay synthetic and why.

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
from detpretrain.parameters import SYNTHETIC_ONLY

display(Markdown("\n".join(f"* `{name}` stays synthetic: {why}." for name, why in SYNTHETIC_ONLY.items())))

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
# NBVAL_CHECK_OUTPUT
display(Markdown(markdown_table(rerun.profile_table())))

# %% [markdown]
# ## Commands: one GPU, torchrun, SLURM
#
# The chapters read their runs from the run store (`$DETPRETRAIN_RUNS`), so every run can be trained first, into
# that store, and the chapters executed afterwards load them instead of training. `runs execute` trains the whole
# run plan of the chapters (`runs plan` prints it), each run once, a fine-tuning after the pre-training it starts
# from; `book` does the same before it executes the chapters. It trains in local worker processes (`--jobs N`; one
# at a time on a GPU machine by default) or, with `--executor slurm`, as one submitit job per run with
# `--gpus-per-job G` GPUs, the run started under `torchrun --standalone --nproc_per_node G` inside a job with more
# than one. The `train` command trains only the detection experiment (Table 1, Figure 1); it can itself be started
# under `torchrun`, on one machine or across nodes. `paper` needs the detection target (`dataset`, `data_root`) and
# COCO 2017 for its detection pre-training (`coco_root`, else `$DETPRETRAIN_COCO`, else `~/data/coco`).
#
# **One GPU**
#
# ```bash
# export DETPRETRAIN_RUNS=$HOME/detpretrain-runs DETPRETRAIN_COCO=$HOME/data/coco
# python -m detpretrain runs execute --profile paper -p dataset voc -p data_root ~/data/VOCdevkit    # every run
# python -m detpretrain book --profile paper -p dataset voc -p data_root ~/data/VOCdevkit -p device cuda
# # or only the detection experiment, and its chapter:
# python -m detpretrain train --profile paper --dataset voc --data-root ~/data/VOCdevkit --device cuda
# python -m detpretrain run detection -p profile paper -p dataset voc -p data_root ~/data/VOCdevkit -p device cuda
# ```
#
# **Several GPUs on one machine** (DistributedDataParallel; NCCL on GPUs, gloo on CPUs), the detection experiment:
#
# ```bash
# torchrun --standalone --nproc_per_node 8 -m detpretrain train --profile paper --dataset voc \
#     --data-root ~/data/VOCdevkit
# ```
#
# **SLURM, one job per run** (the command stays in the foreground and submits a run once the runs it starts from are
# complete; the run store and the datasets must be on a file system every node sees):
#
# ```bash
# python -m detpretrain runs execute --profile paper -p dataset voc -p data_root ~/data/VOCdevkit \
#     --executor slurm --gpus-per-job 4 --partition gpu      # --timeout-min: minutes per job (default 1440)
# ```
#
# **SLURM, the detection experiment across nodes** (`sbatch paper.sbatch`; the run store and the datasets must be on
# a file system every node sees, rank 0 writes the runs):
#
# ```bash
# #!/bin/bash
# #SBATCH --job-name=detpretrain-paper
# #SBATCH --nodes=2
# #SBATCH --ntasks-per-node=1
# #SBATCH --gpus-per-node=8
# #SBATCH --time=48:00:00
# export DETPRETRAIN_RUNS=$HOME/detpretrain-runs DETPRETRAIN_COCO=$HOME/data/coco
# head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
# srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node 8 \
#     --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$head:29500" \
#     -m detpretrain train --profile paper --dataset voc --data-root "$HOME/data/VOCdevkit"
# ```
#
# ## Start from the published runs
#
# Each build of the book on GitHub Actions (`.github/workflows/book.yml`, the `mini` profile on a CPU runner) keeps
# its outputs as workflow artifacts, downloadable from the run's page under *Actions*:

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
# NBVAL_CHECK_OUTPUT
display(Markdown("\n".join(
    [f"* `{name}`: the {what}" for what, name in rerun.ARTIFACTS.items()]
    + [f"* the workflow runs: <{repo.url}/actions/workflows/book.yml>"])))

# %% [markdown]
# `python -m detpretrain book` then executes the chapters from those runs and trains nothing that is already there;
# `python -m detpretrain results-table --store runs` prints the headline numbers of a store, with each run's config
# hash.

# %% tags=["hide-input"] mystnb={"markdown_format": "gfm"}
# NBVAL_CHECK_OUTPUT
from detpretrain.parameters import warm_start_markdown

display(Markdown(warm_start_markdown("runs-mini.tar.gz")))

# %% [markdown]
# ## How long it takes
#
# | profile | measured | on |
# |---|---|---|
# | `smoke` | a few minutes for the whole book; the whole test suite, which builds the smoke book and re-executes every chapter under nbval, took 767 s for 812 tests at `8ae4f42` (2026-12-05; about 820 tests since; the README lists the earlier measurements) | 2 CPU cores |
# | `mini` | two complete cold builds (3 pre-training replicates per arm, the 10-epoch detection schedule chosen on val, the cue variants and controls; 241 runs): build 1 (2026-12-04/05) 60,778 worker-seconds of training (the 235 of the 241 runs whose training the build logs record whole), about 8.1 hours of wall clock on 2 workers while the machine also ran other work, then about 16 minutes of chapter execution one at a time; build 2 (finished 2026-12-05, another machine, mostly idle) 43,157 worker-seconds (`runs cost`), at least 6.0 hours on 2 workers, then 495 s of chapter execution two at once (mechanisms 282 s, classification 187 s); 105-114 minutes before replication (`benchmarks/README.md`). A warm rebuild (nothing changed) took 5 s; `python -m detpretrain runs cost --store S` sums any store this way, per part of the build and per chapter, with an estimate of what is left. `python -m detpretrain --cpu-bf16 book` trains in bfloat16 on a CPU with AMX, about 1.25x faster per step, but those are other runs, not the ones the verdicts come from (README) | 2 CPU cores |
# | `torchvision` | never run: it needs the real datasets and a GPU; the prepared GPU check (`benchmarks/gpu_check.sh`) has not had a GPU yet | 1 GPU |
# | `paper` | never run: it needs COCO 2017, VOC 07+12 and GPUs, so no time has been measured | — |
#
# The introduction's tables *Where the time goes* give the worker-seconds of every run of the book's plan in the
# store of the build you are reading, per part of the build and per chapter (`python -m detpretrain runs cost`),
# and `python -m detpretrain book` prints the seconds of each chapter at the end of a build.
#
# ## Your numbers will differ in the last digits
#
# A run trained again on the same machine gives the same numbers to the last bit. On a CPU with another instruction
# set (AVX2 rather than AVX-512, say) ATen, oneDNN and MKL round differently and training amplifies it: the three
# `mini` IMAGENET-CLS val detectors of the schedule selection, retrained with identical configurations on another
# machine, scored 64.9 / 68.5 / 67.7 mAP@0.5 instead of 67.9 / 68.6 / 66.7 (measured on 2026-12-05). That is the fine-tuning noise the
# verdicts' intervals over pre-training runs already carry, so a verdict should reproduce and a number only within its
# interval. Two complete cold `mini` builds on two machines (2026-12-04/05 and 2026-12-05) gave every chapter's
# primary claim the same label; one secondary claim reversed in the first (freezing and rare classes at the largest
# capacity, Holm p 0.011) was not resolved in the second (README, *Same configuration, another machine*). Each run's
# `metrics.json` records under `"environment"` the torch version, CPU, instruction set, threads and precision it
# trained with.
