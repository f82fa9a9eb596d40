"""Section 2.2 of Li et al. 2019 as a chain of runs: DeepLabV3 fine-tuned from each pre-trained backbone.

The paper fine-tunes DeepLab on PASCAL VOC 2012 from backbones pre-trained on IMAGENET-CLS, IMAGENET-LOC and
OPENIMAGES (Table 4: 75.7, 78.3, 78.6 mIoU), asks where the gain lies (Figure 2: trimap / anti-trimap accuracy)
and shows examples (Figure 9). Here the backbones are the SAME pre-training runs as in the detection chapter
(:func:`detpretrain.experiments.common.pretrain_configs`, found in the run store, never trained twice): ``imagenet-cls``,
``detection`` (which continues from ``imagenet-cls``) and ``scratch`` (GroupNorm, as in
:func:`~detpretrain.experiments.detection.finetune_config`). Each is fine-tuned as a DeepLabV3 (output stride 8, fresh
head; :mod:`detpretrain.models.segmentation`) on the segmentation target with the profile's ``seg_finetune``
schedule, once per seed, and evaluated by mIoU, pixel accuracy, per-class IoU and trimap / anti-trimap bands.

Targets (:func:`segmentation_target`):

* ``synthetic``: the VOC-like corpus of the profile, ``ImageSets/Segmentation/trainval`` -> ``test`` (the same test
  images as the detection chapter's target, and its first train images, :data:`SYNTHETIC_SEGMENTATION_TRAIN`;
  0 = background, 255 = void band along outlines);
* ``voc``: a VOC 2012 root (``VOCdevkit`` or ``VOC2012``), ``train`` -> ``val`` of ``ImageSets/Segmentation``
  (the paper adds SBD's extra masks to train; point ``train_split`` at such a list with
  ``overrides={"data.train_split": "train_aug"}``);
* ``coco``: a COCO root, ``train2017`` -> ``val2017``, instances converted to VOC's 20 classes
  (:func:`detpretrain.data.builders.coco_semantic_mask`).
"""

from __future__ import annotations

import dataclasses

from detpretrain.config import DataSpec, TrainConfig
from detpretrain.data.fingerprint import with_fingerprint
from detpretrain.errors import ConfigError
from detpretrain.experiments.common import (
    PRETRAINS,
    ChainPlan,
    chain_plan,
    pretrain_configs,
    pretrained_for,
    replicate_count,
    synthetic_spec,
    target_spec,
    train_chain,
)
from detpretrain.experiments.detection import finetune_config
from detpretrain.profiles import Profile, get_profile
from detpretrain.runs import RunStore

#: real segmentation targets: dataset name -> (data kind, train split, eval split, VOC year)
SEGMENTATION_DATASETS = {
    "voc": ("voc", "train", "val", "2012"),
    "coco": ("coco", "train2017", "val2017", None),
}


#: training images of the synthetic segmentation target per profile (absent: the detection target's): ``mini``'s
#: segmentation schedule was chosen on val with 200 train images (``profiles.py``), and its detection target has
#: 1600 (chosen on val for the detection regime). The first images of a corpus do not depend on its size
#: (:mod:`detpretrain.data.synthetic`), so these 200 are the detection target's first 200.
SYNTHETIC_SEGMENTATION_TRAIN = {"mini": 200}


def segmentation_target(profile: Profile, dataset: str = "synthetic", data_root: str | None = None) -> DataSpec:
    """The segmentation target: the synthetic VOC-like corpus (its first :data:`SYNTHETIC_SEGMENTATION_TRAIN` train
    images at ``mini``), a VOC 2012 root or a COCO root (module docstring).

    Raises:
        ConfigError: unknown dataset, or a real dataset without ``data_root``.
    """
    if dataset == "synthetic":
        target = target_spec(profile, "synthetic")
        n_train = SYNTHETIC_SEGMENTATION_TRAIN.get(profile.name)
        return target if n_train is None else synthetic_spec(profile.name, "voc", n_train=n_train)
    if dataset not in SEGMENTATION_DATASETS:
        raise ConfigError(f"unknown segmentation dataset {dataset!r}; expected synthetic, "
                          f"{', '.join(SEGMENTATION_DATASETS)}")
    if not data_root:
        raise ConfigError(f"dataset {dataset!r} needs a data_root")
    kind, train, test, year = SEGMENTATION_DATASETS[dataset]
    return with_fingerprint(DataSpec(kind=kind, root=str(data_root), train_split=train, eval_split=test, year=year))


def segmentation_config(profile: Profile, pretrain: str, seed: int, target: DataSpec,
                        pretrained: dict[str, TrainConfig | None]) -> TrainConfig:
    """The DeepLabV3 fine-tuning run on ``target`` from backbone ``pretrain`` with ``seed`` (Table 4).

    Backbone initialisation, model sizes and the from-scratch GroupNorm rule are those of the detection fine-tuning
    (:func:`~detpretrain.experiments.detection.finetune_config`), so ``init`` names the very same pre-training run; the
    schedule is ``profile.seg_finetune``.

    Raises:
        ConfigError: an unknown pre-training name.
    """
    det = finetune_config(profile, pretrain, seed, target, pretrained)
    return dataclasses.replace(det, name=f"segmentation/{pretrain}", task="segmentation",
                               optim=profile.seg_finetune)


def segmentation_chain(profile: str | Profile = "smoke", *, dataset: str = "synthetic", data_root: str | None = None,
                       pretrains=PRETRAINS, seeds=None, replicates: int | None = None,
                       overrides: dict | None = None) -> ChainPlan:
    """The runs of :func:`run_segmentation_experiment` (same arguments), without training."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    count = replicate_count(prof, replicates)
    return chain_plan(prof, segmentation_target(prof, dataset, data_root), segmentation_config, pretrains=pretrains,
                      pretrained=pretrained_for(prof, pretrains, replicates=count), seeds=seeds, replicates=count,
                      overrides=overrides)


def plan_segmentation(profile: str | Profile = "smoke", **params) -> list[TrainConfig]:
    """Every run :func:`run_segmentation_experiment` trains with these arguments, pre-trainings first."""
    return segmentation_chain(profile, **params).configs


def run_segmentation_experiment(profile: str | Profile = "smoke", *, dataset: str = "synthetic",
                                data_root: str | None = None, pretrains=PRETRAINS, seeds=None,
                                replicates: int | None = None, store: RunStore | None = None, overrides: dict | None = None, device: str = "auto",
                                progress: bool = True, log=print) -> dict:
    """Table 4 / Figure 2 / Figure 9: pre-train (once, through the run store), fine-tune DeepLabV3 from each backbone.

    Args:
        profile: ``"smoke" | "mini" | "paper"`` or a :class:`~detpretrain.profiles.Profile`.
        dataset: ``"synthetic"`` (VOC-like corpus), ``"voc"`` or ``"coco"`` (real, needs ``data_root``).
        pretrains: backbones to compare, a subset of :data:`~detpretrain.experiments.common.PRETRAINS` (or any key of
            :func:`~detpretrain.experiments.common.pretrain_configs`).
        seeds: fine-tuning seeds (default: the profile's).
        replicates: pre-training replicates crossed with the seeds (default: the profile's).
        store: the run store (default ``$DETPRETRAIN_RUNS`` or ``runs/``).
        overrides: ``{"optim.epochs": 3, ...}`` applied to the segmentation configs (not to the pre-trainings).

    Returns:
        ``{"profile", "dataset", "data", "runs": [{"pretrain", "replicate", "seed", "run", "hash", "metrics"}],
        "pretrain_runs": {key: path}}``; ``metrics`` is the run's ``metrics.json`` (``mIoU``, ``pixel_accuracy``,
        ``per_class_IoU`` by class name, ``bands``, ``band_scale``, ``trimap``, ``anti_trimap``, ``per_image``,
        ``history``, ...; percent).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    plan = segmentation_chain(prof, dataset=dataset, data_root=data_root, pretrains=pretrains, seeds=seeds,
                              replicates=replicates, overrides=overrides)
    return train_chain(plan, prof, dataset, segmentation_target(prof, dataset, data_root), store=store, device=device,
                       progress=progress, log=log)


def configuration_table(profile: Profile, dataset: str, data_root: str | None, seeds, pretrains,
                        replicates: int = 1):
    """The segmentation chapter's configuration: backbone, DeepLab's geometry scaled to the target (output stride,
    ASPP rates and width, input size, trimap widths), the ``seg_finetune`` schedule, seeds and pre-trainings, as a
    settings table (:func:`detpretrain.chapter.settings_frame`)."""
    from detpretrain.chapter import settings_frame
    from detpretrain.models.segmentation import segmentation_geometry

    target = segmentation_target(profile, dataset, data_root)
    example = segmentation_config(profile, "scratch", 0, target, pretrain_configs(profile))
    geometry = segmentation_geometry(example.model, target)
    sched = profile.seg_finetune
    return settings_frame([
        ("profile", profile.name), ("dataset", dataset), ("backbone", example.model.arch),
        ("output stride", 8), ("ASPP rates (px of the stride-8 map)", ", ".join(map(str, geometry.atrous_rates))),
        ("ASPP width", example.model.fpn_channels),
        ("input (px)", geometry.input_size if geometry.crop is None
         else f"short side {geometry.input_size}, crops {geometry.crop}"),
        ("fine-tuning epochs", sched.epochs), ("lr step after epoch", ", ".join(map(str, sched.milestones)) or "none"),
        ("batch size", sched.batch_size), ("base lr", sched.lr),
        ("trimap widths (px)", f"{geometry.bands[0]}–{geometry.bands[-1]} (VOC scale x{1 / geometry.band_scale:.2f})"),
        ("fine-tuning seeds", ", ".join(map(str, seeds))),
        ("pre-training replicates", f"{replicates} per pre-trained backbone (crossed with the seeds)"),
        ("pre-trainings", ", ".join(pretrains)),
    ])
