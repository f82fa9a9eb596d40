"""Profiles: documented presets of data, model and schedule sizes.

==========  ==========================================================================================
``smoke``   seconds per run on a 2-core CPU: tiny synthetic corpora (64 px), ``resnet_tiny``, 1-3 epochs.
            What the tests and nbval run. Numbers are NOT meaningful, only the code paths.
``mini``    the embedded default for building the book on a CPU (128 px corpora, ``resnet_tiny``, schedules
            long enough for the paper's effects to be measurable); the whole book in well under an hour.
``paper``   the paper's setting as far as torchvision allows: ResNet-101 + FPN Faster R-CNN, IMAGENET-CLS =
            torchvision ``ResNet101_Weights.IMAGENET1K_V2``, detection pre-training on COCO train2017,
            fine-tuning on VOC 07+12 trainval, evaluation on VOC07 test (Table 1), 7 epochs with the step at
            epoch 5, horizontal flip, mixed precision on GPU. Needs the real datasets and a GPU (torchrun).
``torchvision`` the paper's comparison on real data with PUBLISHED weights, affordable on one GPU: IMAGENET-CLS =
            ``ResNet50_Weights.IMAGENET1K_V1``; detection pre-training (COCO role) = the ResNet-50 body of
            ``FasterRCNN_ResNet50_FPN_Weights.COCO_V1`` (torchvision trained that detector from IMAGENET1K_V1, as
            the paper's detectors start from IMAGENET-CLS); from scratch. Only the ResNet body (conv1 ... layer4,
            frozen BN statistics included) is transferred; FPN, RPN and box head are re-initialised, as the paper
            re-initialises the heads. Fine-tuning on VOC 07+12 trainval, evaluation on VOC07 test.
==========  ==========================================================================================

The paper fine-tunes SNIPER (ResNet-101, no FPN) at 3 scales; we use torchvision's Faster R-CNN + FPN at one scale
(min_size 800), the closest well-kept builder. See the book's introduction for what this changes.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from detpretrain.config import ModelSpec, OptimSpec
from detpretrain.errors import ConfigError

PROFILE_NAMES = ("smoke", "mini", "torchvision", "paper")


@dataclass(frozen=True)
class Profile:
    """Everything a chapter needs to size its runs.

    Attributes:
        model: backbone/detector sizes on the synthetic corpora.
        real_model: the same for real photographs (larger input size and anchors), used when dataset != synthetic.
        cls_pretrain, det_pretrain, finetune: schedules of IMAGENET-CLS-style classification pre-training,
            detection pre-training (COCO role) and detection fine-tuning on the target.  Every ``batch_size`` here is the GLOBAL
            batch: under ``torchrun --nproc_per_node W`` each process (GPU) loads ``batch_size // W`` images per step,
            so the schedule and learning rate hold for any W (``torchvision``: 8 detection images on one GPU, or 1
            per GPU on 8).
        loc_pretrain: the IMAGENET-LOC pre-trainings of Tables 2 and 7 (detection with all categories or with one
            super-category removed, and IMAGENET-LOC (Cls) on the same images with labels only), each continuing
            from the IMAGENET-CLS backbone ("all our detection networks are pre-trained first on IMAGENET-CLS").
        cls_finetune: full fine-tuning of a backbone on an image-classification target (Tables 7 and 8).
        seg_finetune: DeepLabV3 fine-tuning on the segmentation target (Table 4).
        seeds: fine-tuning seeds (the book shows their spread).
        pretrain_replicates: independent pre-training runs per trained pre-training (replicate ``r`` has
            ``seed=r``; :func:`detpretrain.experiments.common.pretrain_configs`), crossed with :attr:`seeds`. A claim
            about pre-training is about the pre-training run, so this is its n (the unit of replication of every
            verdict, :mod:`detpretrain.analysis.stats`); 1 means unreplicated (and is the only value for published
            weights: one network).
        imagenet_cls_weights: for ``paper`` and ``torchvision``, the torchvision weight enum standing in for
            IMAGENET-CLS pre-training; ``None`` means "pre-train on the synthetic imagenet_cls corpus".
        detection_weights: for ``torchvision``, the torchvision *detector* weight enum whose ResNet body stands in for
            detection pre-training (COCO role); ``None`` means "pre-train a detector here".
        needs_gpu: sized for GPUs: ``device="auto"`` on a machine without CUDA is an error rather than a silent
            CPU run of days (pass ``device="cpu"`` to insist).
        coco_root: for ``paper``, the COCO 2017 root of its own detection pre-training (``annotations/``,
            ``train2017/``, ``val2017/``); None means ``$DETPRETRAIN_COCO``, else ``~/data/coco``. Set per execution
            (the chapters' ``coco_root`` parameter, ``train --coco-root``: :func:`with_coco_root`); the run hash
            records the data's fingerprint, not this path.
    """

    name: str
    description: str
    model: ModelSpec
    real_model: ModelSpec
    cls_pretrain: OptimSpec
    det_pretrain: OptimSpec
    finetune: OptimSpec
    loc_pretrain: OptimSpec
    cls_finetune: OptimSpec
    seg_finetune: OptimSpec
    seeds: tuple[int, ...] = (0,)
    pretrain_replicates: int = 1
    imagenet_cls_weights: str | None = None
    detection_weights: str | None = None
    needs_gpu: bool = False
    coco_root: str | None = None

    @property
    def published(self) -> dict[str, str]:
        """``{pre-training: torchvision weight enum}`` of the backbones this profile takes from published weights."""
        pairs = (("imagenet-cls", self.imagenet_cls_weights), ("detection", self.detection_weights))
        return {k: v for k, v in pairs if v}


_TINY = ModelSpec(arch="resnet_tiny", norm="gn", fpn_channels=32, representation_size=128,
                  anchor_sizes=(8, 16, 32, 48, 64), min_size=64, max_size=64,
                  rpn_pre_nms_top_n=(300, 150), rpn_post_nms_top_n=(150, 100), box_batch_size_per_image=64,
                  image_size=64)
_TINY_REAL = dataclasses.replace(_TINY, min_size=192, max_size=256, anchor_sizes=(16, 32, 64, 128, 256),
                                 image_size=96)
# 64 sampled RoIs per image (torchvision: 512 at 800 px): with about 2 objects per 128-px image the positives
# (at most 25 %) are not the limit, and the CPU RoIAlign backward, over half of a training step, halves.
_MINI = ModelSpec(arch="resnet_tiny", norm="gn", fpn_channels=64, representation_size=256,
                  anchor_sizes=(12, 24, 48, 96, 128), min_size=128, max_size=128, image_size=128,
                  box_batch_size_per_image=64)
_MINI_REAL = dataclasses.replace(_MINI, min_size=320, max_size=480, anchor_sizes=(16, 32, 64, 128, 256),
                                 image_size=128)
# torchvision's fasterrcnn_resnet50_fpn geometry at a smaller scale (600 px short side instead of 800: about 0.56x
# the pixels per image, so VOC 07+12 x 7 epochs fits a working day on one GPU)
_TORCHVISION = ModelSpec(arch="resnet50", norm="frozen_bn", fpn_channels=256, representation_size=1024,
                         anchor_sizes=(32, 64, 128, 256, 512), min_size=600, max_size=1000,
                         rpn_pre_nms_top_n=(2000, 1000), rpn_post_nms_top_n=(2000, 1000),
                         box_batch_size_per_image=512, image_size=224, trainable_stages=3)
_PAPER = ModelSpec(arch="resnet101", norm="frozen_bn", fpn_channels=256, representation_size=1024,
                   anchor_sizes=(32, 64, 128, 256, 512), min_size=800, max_size=1333,
                   rpn_pre_nms_top_n=(2000, 1000), rpn_post_nms_top_n=(2000, 1000), box_batch_size_per_image=512,
                   trainable_stages=3, image_size=224)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="seconds on a 2-core CPU; exercises every code path, numbers are not meaningful",
        model=_TINY,
        real_model=_TINY_REAL,
        cls_pretrain=OptimSpec(epochs=2, batch_size=16, lr=0.05, warmup_iters=5, milestones=()),
        det_pretrain=OptimSpec(epochs=2, batch_size=4, lr=0.02, warmup_iters=5, milestones=()),
        finetune=OptimSpec(epochs=2, batch_size=4, lr=0.02, warmup_iters=5, milestones=(1,)),
        loc_pretrain=OptimSpec(epochs=1, batch_size=4, lr=0.02, warmup_iters=5, milestones=()),
        cls_finetune=OptimSpec(epochs=2, batch_size=16, lr=0.01, warmup_iters=5, milestones=(1,)),
        seg_finetune=OptimSpec(epochs=2, batch_size=4, lr=0.01, warmup_iters=5, milestones=(1,)),
        seeds=(0,),
    ),
    "mini": Profile(
        name="mini",
        description="embedded default: synthetic 128-px corpora on a CPU, resnet_tiny, a few minutes per run",
        model=_MINI,
        real_model=_MINI_REAL,
        cls_pretrain=OptimSpec(epochs=20, batch_size=32, lr=0.1, warmup_iters=50, milestones=(15,)),
        det_pretrain=OptimSpec(epochs=8, batch_size=8, lr=0.02, warmup_iters=100, milestones=(6,)),
        # Fine-tuning schedules chosen on the targets' VALIDATION splits (train -> val, never test), for every arm
        # alike, from the IMAGENET-CLS backbone (replicate 0, fine-tuning seed 0), one core each (issue 17):
        # detection, synthetic VOC target -> its 200 val images, VOC07 mAP@0.5 / mAP@0.7 (ratio), lr 0.02, batch 8:
        #   200 train images, 7 epochs (step after 5): 26.3 / 13.0 (0.49)   200, 24 epochs (step 18): 39.8 / 20.8 (0.52)
        #   200, 48 epochs (step 36): 40.9 / 24.8 (0.61)    200, 24 epochs at lr 0.04: 37.7 / 20.5 (0.54)
        #   200, 24 epochs, input 192 px (anchors x1.5): 45.2 / 25.0 (0.55), 2.6x the time
        # The 200-image target plateaued near 40, below the regime of the verdicts (>= 60 mAP@0.5 and a ratio >= 0.5,
        # analysis.claims.REGIME_MIN_MAP50). At a fixed 9,600 image-steps (the cost of the book's earlier 400-image
        # trainval runs), more training images instead of more epochs (the corpus size is a knob of the target,
        # chosen here on val like the schedule):
        #   400 train, 24 epochs (step 18): 49.2 / 27.0 (0.55)   800, 12 epochs (step 9): 56.8 / 32.8 (0.58)
        #   1600, 6 epochs (step 5): 60.5 / 37.5 (0.62)  3200, 3 epochs (step 2): 60.6 / 37.3 (0.62)
        #   1600, 3 epochs (step 2; 4,800 image-steps): 47.2 / 25.3 (0.53)   1600, 8 epochs (step 6): 64.0 / 43.5 (0.68)
        # Rule, stated before choosing: the cheapest configuration tried that meets the regime on val; ties go to
        # fewer images (more epochs: the eigenspectrum chapter's dynamics keep one checkpoint per epoch). Chosen:
        # 1600 train images (data.synthetic.profile_specs; trainval 1800 for the test runs), 6 epochs, step after 5.
        # On test the chosen setting gave 59.6 mAP@0.5 for the IMAGENET-CLS arm (mean of its 3 pre-training runs:
        # 58.9, 60.4, 59.6): the regime check fails by 0.4. The rule compared ONE replicate's val number with a
        # threshold the chapters apply to the MEAN of three; that was seen only after the test result, so the setting
        # was not re-chosen (that would be choosing on test). The next selection's rule, stated here before any of
        # its runs: the cheapest setting whose val mAP@0.5, averaged over the profile's 3 pre-training replicates
        # (`train ... --replicates 3`), meets the regime.
        # That selection (2026-12-03, evening; replicates 1 and 2 added to the replicate-0 runs above, cheapest tier
        # first: 9,600 image-steps, ties to fewer images):
        #   800 x 12 (step 9): r0 56.8, r1 56.6, r2 57.2 -> mean 56.9 / 34.9 (0.61): misses the regime
        #   1600 x 6 (step 5): r0 60.5, r1 64.9, r2 63.4 -> mean 62.9 / 38.9 (0.62): meets it -> chosen again
        # So the setting stands, chosen by the stated rule, and its test result (59.6) is reported as it is:
        # "regime inadequate" by 0.4. The same replicates score 1.6-4.5 points lower on test than on val (r0 60.5
        # vs 58.9, r1 64.9 vs 60.4, r2 63.4 vs 59.6; the test runs train on 200 more images): the target's test split
        # is harder than its val split at this size, a gap no
        # val-only rule saw; a margin for it cannot be set from these test numbers without choosing on test.
        # Selection 3 (2026-12-04), rule stated here and committed before any of its runs. Selection 2 compared the
        # val MEAN with the threshold, with no allowance for what differs between a val-split and a test-split mean:
        # fresh fine-tuning noise (the test runs train again) and a fresh draw of 200 images. Both can be measured on
        # val alone. A setting now meets the regime when the one-sided 95 % lower prediction bound of the test-split
        # mean meets both thresholds (analysis.stats.prediction_lower_bound, analysis.detection.regime_prediction):
        #     bound = m - t_{0.95, df} * sqrt(2 s_rep^2 / 3 + 2 s_img^2)
        # m: mean val mAP@0.5 (resp. mAP@0.7 / mAP@0.5) of the IMAGENET-CLS arm's 3 pre-training replicates
        # (fine-tuning seed 0, 1600 train -> 200 val); s_rep: their sd; s_img: sd of m over 1,000 image resamples of
        # val; df: Welch-Satterthwaite. Checked by `python -m detpretrain regime-check --set optim.epochs=E --set
        # optim.milestones=M` (exit 0 = meets). Candidates, cheapest first (lr 0.02, batch 8, 1600 train images;
        # trainval 1800 for the test runs), the first that meets is chosen, then the test split is run once:
        #   8 epochs (step 6; 12,800 image-steps), 10 epochs (step 8), 12 epochs (step 9).
        # 1600 x 6 is out by selection 2's own val numbers: with s_img = 0 its bound is 62.9 - 2.92 * 1.83 = 57.6.
        # Its runs (2026-12-04, a new store: the 3 IMAGENET-CLS pre-trainings retrained, 101-104 s each, top-1 81.2,
        # 77.2, 75.2; fine-tunings 350-377 s on one core each):
        #   8 epochs (step 6): val mAP@0.5 r0 63.7, r1 66.0, r2 66.1 -> m 65.28, s_rep 1.34, s_img 2.13, df 148,
        #     margin 5.31 -> bound 59.97 (misses 60 by 0.03); ratio 0.686, 0.599, 0.704 -> 0.663, bound 0.546 (meets).
        #     A miss by 0.03 is inside the bootstrap's own Monte Carlo error (~2 % of s_img, ~0.1 mAP on the bound):
        #     another seed could have passed it. The rule fixed seed 0 and 1,000 resamples in advance, so it stands.
        #   10 epochs (step 8): val mAP@0.5 r0 67.9, r1 68.6, r2 66.7 -> m 67.7, s_rep 0.92, s_img 2.11, df 566,
        #     margin 5.08 -> bound 62.6 (meets); ratio 0.644, 0.642, 0.720 -> 0.668, bound 0.568 (meets). Chosen:
        #     10 epochs, step after 8 (16,000 image-steps on 1600 images; 18,000 on the 1800 trainval images of the
        #     test runs; 438-439 s per val run on one core). 12 epochs was not run. (Recomputed after two review
        #     fixes of regime_prediction, the ratio's resamples as a mean of per-run ratios and score ties broken in
        #     input order: 59.968 and 62.638, ratio bounds 0.546 and 0.568; the choice is unchanged.)
        # Caveats: 95 % holds for one candidate at a time; taking the first of several that passes, on the same val
        # runs, and the test runs' training on trainval (val included, 12.5 % more steps) are not in the bound.
        # Then the test split, once (2026-12-04, `python -m detpretrain train --profile mini --pretrain imagenet-cls`):
        # r0 66.4 / 38.6, r1 64.4 / 44.3, r2 66.1 / 43.1 -> mean 65.6 mAP@0.5, mAP@0.7 / mAP@0.5 0.64: the regime is
        # met (above the bound 62.6, 2.1 below the val mean, as the rule allowed for).
        # Reproduce one line (2026-12-03, a store holding the mini IMAGENET-CLS replicate 0):
        #   python -m detpretrain train --profile mini --pretrain imagenet-cls --replicates 1 --seed 0 --store S \
        #     --set data.corpus.n_train=1600 --set data.train_split=train --set data.eval_split=val \
        #     --set optim.epochs=6 --set optim.milestones=5
        finetune=OptimSpec(epochs=10, batch_size=8, lr=0.02, warmup_iters=50, milestones=(8,)),
        loc_pretrain=OptimSpec(epochs=4, batch_size=8, lr=0.02, warmup_iters=100, milestones=(3,)),
        # classification, CALTECH-256 role, 750 train -> 250 val, top-1: 6 epochs (step 4) 64.4, 12 epochs (step 9)
        # 72.0 (lr 0.01).
        cls_finetune=OptimSpec(epochs=12, batch_size=32, lr=0.01, warmup_iters=20, milestones=(9,)),
        # SUN-role training set (selection 4, issue 18), rule stated here and committed before any of its runs.
        # Why: under the SUN scene control (sun_backgrounds="shared": the scene is named by its objects and their
        # layout, not by a background style) at 30 training images per scene, the fine-tuned classifiers reached
        # ~20 % top-1 on test (chance 11.1 %) while a logistic regression on each image's ground-truth object counts
        # reached 84-86 %: the control sat at a floor where none of its claims could resolve. The knob: training
        # images per scene, for both SUN conditions alike (style and shared, so the part-minus-control contrast
        # compares equal sizes); val and test stay at 10 per scene. Candidates, cheapest first: 30 (the size
        # before), 90, 270. Measured on val only (`python -m detpretrain sun-check --per-scene N`), under shared
        # backgrounds: m = mean val top-1 of the IMAGENET-CLS arm's Table 8 fine-tunings (this cls_finetune
        # schedule, its 3 pre-training replicates, seed 0, train -> val), and the bag-of-objects oracle o (a
        # logistic regression, C = 1, on the 25 per-category object counts of each image, fitted on the same
        # training images, scored on val). A size escapes the floor when m >= chance + (o - chance) / 2. The first
        # candidate that does is chosen; if none does, 270 is kept and the control is reported as floor-limited.
        # Its runs (2026-12-04, store of the IMAGENET-CLS replicates 0-2 with top-1 81.2 / 77.2 / 75.2; one core each
        # beside a 2-worker build, so the seconds are inflated):
        #   30 per scene (270 train -> 90 val): r0 25.6, r1 23.3, r2 31.1 -> m 26.7; oracle 84.4; threshold 47.8: floor
        #   90 per scene (810 train): r0 28.9, r1 30.0, r2 31.1 -> m 30.0; oracle 91.1; threshold 51.1: floor
        #   270 per scene (2430 train): r0 41.1, r1 38.9, r2 41.1 -> m 40.4; oracle 90.0; threshold 50.6: floor
        #   (16-27 s, 43-62 s and 148-194 s per run)
        # No candidate escapes: 270 per scene is kept (data.synthetic.profile_specs, mini sun 2430 / 90 / 90), and the
        # SUN scene control is reported as floor-limited: its classifiers read about 40 % of scenes that the object
        # counts alone name 90 % of the time (chance 11.1 %).
        # segmentation, synthetic VOC target, 200 train -> 200 val, mIoU: 12 epochs (step 9) 23.2, 20 epochs (step 15)
        # 36.4 (lr 0.04; still rising). The 12-epoch schedule before was chosen on the test split (mIoU 38.0 there).
        seg_finetune=OptimSpec(epochs=20, batch_size=8, lr=0.04, warmup_iters=20, milestones=(15,)),
        # The unit of every verdict is the pre-training run, so the budget goes to pre-training replicates: 3 per arm,
        # each fine-tuned once (a from-scratch arm gets 3 independent runs). Fine-tuning seeds crossed with the
        # replicates (3 x 3) would only shrink the within-replicate noise, at 3x the cost of every fine-tuning
        # (issue 17's cost decision: 327 planned runs, ~350 core-minutes, against 145 runs, ~140 core-minutes).
        seeds=(0,),
        pretrain_replicates=3,
    ),
    "paper": Profile(
        name="paper",
        description="Li et al. 2019 setting on real data with torchvision ResNet-101 weights; needs GPUs",
        needs_gpu=True,
        model=_PAPER,
        real_model=_PAPER,
        cls_pretrain=OptimSpec(epochs=90, batch_size=256, lr=0.1, warmup_iters=0, milestones=(30, 60), amp=True,
                               num_workers=8),
        det_pretrain=OptimSpec(epochs=12, batch_size=16, lr=0.02, warmup_iters=1000, milestones=(8, 11), amp=True,
                               num_workers=8),
        finetune=OptimSpec(epochs=7, batch_size=16, lr=0.02, warmup_iters=500, milestones=(5,), amp=True,
                           num_workers=8),
        loc_pretrain=OptimSpec(epochs=6, batch_size=16, lr=0.02, warmup_iters=1000, milestones=(4,), amp=True,
                               num_workers=8),
        cls_finetune=OptimSpec(epochs=30, batch_size=64, lr=0.01, warmup_iters=100, milestones=(20,), amp=True,
                               num_workers=8),
        seg_finetune=OptimSpec(epochs=50, batch_size=16, lr=0.01, warmup_iters=200, milestones=(35,), amp=True,
                               num_workers=8),
        seeds=(0, 1, 2),
        imagenet_cls_weights="ResNet101_Weights.IMAGENET1K_V2",
    ),
    "torchvision": Profile(
        name="torchvision",
        description="real data, published torchvision ResNet-50 weights (IMAGENET-CLS, COCO detector body); one GPU",
        needs_gpu=True,
        model=_TORCHVISION,
        real_model=_TORCHVISION,
        # nothing is pre-trained here: cls_pretrain / det_pretrain / loc_pretrain are never used by this profile
        cls_pretrain=OptimSpec(epochs=0),
        det_pretrain=OptimSpec(epochs=0),
        loc_pretrain=OptimSpec(epochs=0),
        # Schedules not yet tuned on a GPU (no GPU was lent when this profile was written): the paper's 7 epochs with
        # the step after epoch 5 on VOC 07+12, and torchvision's reference recipes' learning rates per batch size.
        finetune=OptimSpec(epochs=7, batch_size=8, lr=0.01, warmup_iters=500, milestones=(5,), amp=True,
                           num_workers=8),
        cls_finetune=OptimSpec(epochs=20, batch_size=64, lr=0.01, warmup_iters=100, milestones=(15,), amp=True,
                               num_workers=8),
        seg_finetune=OptimSpec(epochs=30, batch_size=8, lr=0.01, warmup_iters=200, milestones=(22,), amp=True,
                               num_workers=8),
        seeds=(0, 1, 2),
        imagenet_cls_weights="ResNet50_Weights.IMAGENET1K_V1",
        detection_weights="FasterRCNN_ResNet50_FPN_Weights.COCO_V1",
    ),
}


def with_coco_root(profile: Profile, coco_root: str | None) -> Profile:
    """``profile`` with :attr:`Profile.coco_root` set (unchanged when ``coco_root`` is None)."""
    return profile if coco_root is None else dataclasses.replace(profile, coco_root=str(coco_root))


#: environment variable that trains every run of the CPU profiles in bfloat16 autocast on the CPU ("1"; unset or
#: "0": float32), :func:`with_cpu_bf16`. ``python -m detpretrain --cpu-bf16 <command>`` sets it for the command and the
#: chapters it executes. The published ``mini`` results are float32 runs.
CPU_BF16_ENV = "DETPRETRAIN_CPU_BF16"
# CPU bfloat16 on val (2026-12-05; NOT chosen for `mini`: the book's runs and verdicts stay float32). The IMAGENET-CLS
# arm's val runs of selection 3 (10 epochs, step 8; 1600 train -> 200 val; fine-tuning seed 0; one Intel Xeon with
# AMX, 2 workers x 1 thread; `python -m detpretrain [--cpu-bf16] regime-check [--set optim.cpu_bf16=true]`), val
# mAP@0.5 / mAP@0.7 per pre-training replicate r0, r1, r2; difference from float32, Student's t over the 3
# replicates (df 2, unadjusted; exploratory, not a verdict):
#   float32 (selection 3's configs, retrained here): 64.9/44.6, 68.5/46.5, 67.7/43.9 -> 67.0 / 45.0
#     (recorded on the machine of selection 3: 67.9/43.7, 68.6/44.0, 66.7/48.0: same configs, another CPU;
#     engine.numerics_environment)
#   bf16 pre-training + whole-detector autocast: 68.3/41.0, 68.1/42.3, 67.6/47.1; mAP@0.7 -1.5 (-11.7 to +8.7)
#   bf16 pre-training + layers and predictors in bf16, boxes float32: 65.9/41.6, 66.8/40.6, 65.7/39.9; mAP@0.7 -4.3
#     (-8.0 to -0.6; p 0.037, Holm over these four arms 0.15); mAP@0.5 -0.9 (-5.0 to +3.2)
#   bf16 pre-training + layers in bf16, predictors and boxes float32 (what --cpu-bf16 does,
#     engine.DETECTOR_AUTOCAST_PARTS): 67.3/42.2, 66.1/43.1, 69.2/44.7; mAP@0.5 +0.5 (-5.8 to +6.8), mAP@0.7 -1.7
#     (-7.1 to +3.8); regime bound 62.2 (meets); fine-tunings 270-307 s against float32's 326-378 s
#   float32 pre-training + the same bf16 fine-tuning (--set optim.cpu_bf16=true): 67.8/42.3, 68.7/47.3, 68.2/45.8;
#     mAP@0.5 +1.2 (-2.5 to +4.9), mAP@0.7 +0.1 (-5.3 to +5.5)
# None resolved; with 3 pairs an effect smaller than about 5 mAP@0.7 cannot be seen, and the paper's question is a
# gap of 2.2 mAP@0.7. Only the arm with bfloat16 box deltas hinted at a loss of localisation, so the predictors stay
# float32. The bfloat16 pre-trainings reached top-1 84.4, 77.6, 79.2 (float32: 81.2, 77.2, 75.2).


def with_cpu_bf16(profile: Profile, enabled: bool = True) -> Profile:
    """``profile`` with ``cpu_bf16`` set to ``enabled`` in every schedule (:class:`~detpretrain.config.OptimSpec`):
    every run then trains in bfloat16 autocast on the CPU (:func:`detpretrain.engine.autocast_dtype`) and is a
    different run from its float32 twin (another config hash). Measured on the ``mini`` profile (one thread, a CPU
    with AMX): a training step 1.28x faster for a detector, 1.23x for the IMAGENET-CLS classifier, 1.26x for
    DeepLabV3 (``benchmarks/README.md``); slower than float32 on a CPU without native bfloat16."""
    schedules = {f.name: dataclasses.replace(getattr(profile, f.name), cpu_bf16=enabled)
                 for f in dataclasses.fields(profile) if isinstance(getattr(profile, f.name), OptimSpec)}
    return dataclasses.replace(profile, **schedules)


def cpu_bf16_requested() -> bool:
    """Whether ``$DETPRETRAIN_CPU_BF16`` asks for bfloat16 training on the CPU.

    Raises:
        ConfigError: a value other than unset, ``""``, ``"0"`` or ``"1"``.
    """
    value = os.environ.get(CPU_BF16_ENV, "").strip()
    if value not in ("", "0", "1"):
        raise ConfigError(f"${CPU_BF16_ENV}={value!r}: expected 1 (bfloat16 autocast on the CPU) or 0 / unset "
                          "(float32)")
    return value == "1"


def get_profile(name: str) -> Profile:
    """The :class:`Profile` called ``name``, with :func:`with_cpu_bf16` applied when ``$DETPRETRAIN_CPU_BF16=1`` and
    the profile is a CPU one (the GPU profiles, :attr:`Profile.needs_gpu`, have ``optim.amp``; ``cpu_bf16`` would only
    rename their runs).

    Raises:
        ConfigError: an unknown name, or a malformed ``$DETPRETRAIN_CPU_BF16``.
    """
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; expected one of {PROFILE_NAMES}") from None
    return with_cpu_bf16(profile) if cpu_bf16_requested() and not profile.needs_gpu else profile
