"""Section 2.3 of Li et al. 2019 (Tables 7 and 8): where the classification chapters fine-tune whole backbones.

Each pre-trained backbone is fine-tuned end to end, with a new last layer, on an image-classification target
(:func:`run_classification_transfer`). The frozen-feature probes of Tables 5 and 6 read features instead
(:mod:`detpretrain.experiments.features`).
"""

from __future__ import annotations

import dataclasses

from detpretrain.config import DataSpec, TrainConfig
from detpretrain.experiments.common import (
    PRETRAINS,
    REMOVED_SUPERCATEGORIES,
    ChainPlan,
    chain_plan,
    pretrained_for,
    replicate_count,
    synthetic_spec,
    train_chain,
)
from detpretrain.experiments.detection import finetune_config
from detpretrain.profiles import Profile, get_profile
from detpretrain.runs import RunStore



def cls_finetune_config(profile: Profile, pretrain: str, seed: int, target: DataSpec,
                        pretrained: dict[str, TrainConfig | None]) -> TrainConfig:
    """Full fine-tuning of backbone ``pretrain`` on an image-classification ``target`` (Tables 7 and 8).

    The classifier's last layer is new (the backbone's ``fc`` is never transferred); schedule
    ``profile.cls_finetune``. ``pretrain`` as in :func:`finetune_config`; the target's evaluation split is scored
    by top-1 accuracy in percent.

    Raises:
        ConfigError: an unknown pre-training name.
    """
    det = finetune_config(profile, pretrain, seed, target, pretrained)  # same init and norm rules
    return TrainConfig(name=f"cls-finetune/{pretrain}", task="classification", data=target, model=det.model,
                       optim=profile.cls_finetune, init=det.init, seed=seed)


def classification_chain(profile: str | Profile = "smoke", *, role: str = "caltech", pretrains=PRETRAINS,
                         seeds=None, replicates: int | None = None, removed=REMOVED_SUPERCATEGORIES) -> ChainPlan:
    """The runs of :func:`run_classification_transfer` (same arguments), without training."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    count = replicate_count(prof, replicates)
    return chain_plan(prof, transfer_target(prof, role), cls_finetune_config, pretrains=pretrains,
                      pretrained=pretrained_for(prof, pretrains, removed, count), seeds=seeds, replicates=count)


def plan_classification_transfer(profile: str | Profile = "smoke", **params) -> list[TrainConfig]:
    """Every run :func:`run_classification_transfer` trains with these arguments, pre-trainings first."""
    return classification_chain(profile, **params).configs


def transfer_target(prof: Profile, role: str) -> DataSpec:
    """The synthetic image-classification target ``role``: its train split, scored on its test split."""
    return dataclasses.replace(synthetic_spec(prof.name, role), train_split="train", eval_split="test")


def run_classification_transfer(profile: str | Profile = "smoke", *, role: str = "caltech", pretrains=PRETRAINS,
                                seeds=None, replicates: int | None = None, store: RunStore | None = None, device: str = "auto",
                                progress: bool = True, log=print, removed=REMOVED_SUPERCATEGORIES) -> dict:
    """Fine-tune each backbone on a synthetic image-classification target and report top-1 (Tables 7 and 8): the
    runs of :func:`classification_chain`.

    Args:
        role: the target corpus: ``"caltech"`` (object-centric, CALTECH-256 role), ``"sun"`` (scenes, SUN-397) or
            ``"flowers"`` (fine-grained, OXFORD-102 FLOWERS); trained on its train split, scored on its test split.
        pretrains, seeds, replicates, store, device, removed: as in :func:`run_detection_experiment`.

    Returns:
        ``{"profile", "dataset", "data", "runs": [{"pretrain", "replicate", "seed", "run", "hash", "metrics"}],
        "pretrain_runs"}`` with ``metrics["top1"]`` in percent (and, for runs trained since predictions are kept,
        ``metrics["predictions"]``: the predicted label of every test image).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    plan = classification_chain(prof, role=role, pretrains=pretrains, seeds=seeds, replicates=replicates,
                                removed=removed)
    return train_chain(plan, prof, role, transfer_target(prof, role), store=store, device=device, progress=progress,
                       log=log)
