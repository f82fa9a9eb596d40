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


def classification_chain(profile: str | Profile = "smoke", *, role: str = "caltech", data_root: str | None = None,
                         pretrains=PRETRAINS, seeds=None, replicates: int | None = None,
                         removed=REMOVED_SUPERCATEGORIES, corpus: dict | None = None,
                         overrides: dict | None = None) -> ChainPlan:
    """The runs of :func:`run_classification_transfer` (same arguments), without training."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    count = replicate_count(prof, replicates)
    return chain_plan(prof, transfer_target(prof, role, data_root, corpus), cls_finetune_config, pretrains=pretrains,
                      pretrained=pretrained_for(prof, pretrains, removed, count, corpus=corpus), seeds=seeds,
                      replicates=count, overrides=overrides)


def plan_classification_transfer(profile: str | Profile = "smoke", **params) -> list[TrainConfig]:
    """Every run :func:`run_classification_transfer` trains with these arguments, pre-trainings first."""
    return classification_chain(profile, **params).configs


def transfer_target(prof: Profile, role: str, data_root: str | None = None, corpus: dict | None = None) -> DataSpec:
    """The image-classification target ``role``: trained on its train split, scored on its test split.

    Args:
        role: a synthetic role (``caltech``, ``sun``, ``flowers``) or a real dataset of
            :data:`~detpretrain.config.CLASSIFICATION_KINDS` (``flowers102``, ``pet``, ``caltech256``, ``sun397``)
            read from ``data_root`` (never downloaded here: :func:`detpretrain.experiments.features.probe_datasets`
            with ``download=True`` fetches it). Pet trains on trainval; a real target's spec records its dataset
            fingerprint, not its path.
        corpus: the corpus variant of a synthetic role (:func:`~detpretrain.experiments.common.corpus_overrides`).

    Raises:
        ConfigError: a real dataset without ``data_root``, or an unknown role.
        DataError: a real root that does not exist or holds no supported layout.
    """
    from detpretrain.config import CLASSIFICATION_KINDS
    from detpretrain.data.classification import real_classification_splits
    from detpretrain.data.fingerprint import with_fingerprint
    from detpretrain.errors import ConfigError

    if role not in CLASSIFICATION_KINDS:
        return dataclasses.replace(synthetic_spec(prof.name, role, corpus=corpus), train_split="train",
                                   eval_split="test")
    if not data_root:
        raise ConfigError(f"classification target {role!r} needs a data_root")
    splits = real_classification_splits(role, data_root)
    return with_fingerprint(DataSpec(kind=role, root=str(data_root), train_split=splits["train"],
                                     eval_split=splits["test"]))


def run_classification_transfer(profile: str | Profile = "smoke", *, role: str = "caltech",
                                data_root: str | None = None, pretrains=PRETRAINS, seeds=None,
                                replicates: int | None = None, store: RunStore | None = None, device: str = "auto",
                                progress: bool = True, log=print, removed=REMOVED_SUPERCATEGORIES,
                                corpus: dict | None = None, overrides: dict | None = None) -> dict:
    """Fine-tune each backbone on a synthetic image-classification target and report top-1 (Tables 7 and 8): the
    runs of :func:`classification_chain`.

    Args:
        role: the target corpus: ``"caltech"`` (object-centric, CALTECH-256 role), ``"sun"`` (scenes, SUN-397) or
            ``"flowers"`` (fine-grained, OXFORD-102 FLOWERS); trained on its train split, scored on its test split;
            or a real dataset at ``data_root`` (:func:`transfer_target`: ``flowers102``, ``pet``, ``caltech256``,
            ``sun397``), fine-tuned at the profile's ``real_model.image_size``.
        pretrains, seeds, replicates, store, device, removed, corpus: as in :func:`run_detection_experiment`.
        overrides: ``{"data.corpus.n_train": 810, ...}`` applied to the fine-tuning configs only
            (:func:`~detpretrain.experiments.common.chain_plan`; the selections of ``profiles.py``).

    Returns:
        ``{"profile", "dataset", "data", "runs": [{"pretrain", "replicate", "seed", "run", "hash", "metrics"}],
        "pretrain_runs"}`` with ``metrics["top1"]`` in percent (and, for runs trained since predictions are kept,
        ``metrics["predictions"]``: the predicted label of every test image).
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    plan = classification_chain(prof, role=role, data_root=data_root, pretrains=pretrains, seeds=seeds,
                                replicates=replicates, removed=removed, corpus=corpus, overrides=overrides)
    return train_chain(plan, prof, role, transfer_target(prof, role, data_root, corpus), store=store, device=device,
                       progress=progress, log=log)


def real_transfer_roots(real_data: dict | None) -> dict[str, str]:
    """The entries ``{dataset: root}`` of a chapter's ``real_data`` whose root exists on this machine (an absent
    root is skipped by the chapter, or fetched when it downloads), in the given order."""
    from pathlib import Path

    return {name: str(root) for name, root in (real_data or {}).items() if Path(root).expanduser().exists()}


#: the backbones the classification chapter fine-tunes (Table 8; its ``finetune_pretrains`` default)
TABLE8_PRETRAINS = ("imagenet-cls", "detection", "imagenet-loc", "scratch")


def _sun_control_chain(profile, pretrains, seeds, replicates, overrides) -> tuple[Profile, dict]:
    """The profile and the :func:`run_classification_transfer` keywords of the SUN scene control."""
    from detpretrain.parameters import CONDITIONS

    prof = get_profile(profile) if isinstance(profile, str) else profile
    return prof, dict(role="sun", pretrains=tuple(pretrains), seeds=seeds, replicates=replicates,
                      corpus=CONDITIONS["shared-backgrounds"], overrides=overrides)


def sun_control_configs(profile: str | Profile = "mini", *, pretrains=TABLE8_PRETRAINS, seeds=None,
                        replicates: int | None = None, overrides: dict | None = None) -> list[TrainConfig]:
    """The runs of :func:`sun_control` (same arguments), pre-trainings first, without training: the classification
    chapter's Table 8 on the SUN-role target under the SUN scene control (``sun_backgrounds="shared"``), as the
    mechanisms chapter's ``classification:shared-backgrounds`` variant trains them."""
    prof, chain = _sun_control_chain(profile, pretrains, seeds, replicates, overrides)
    return classification_chain(prof, **chain).configs


def sun_control(profile: str | Profile = "mini", *, pretrains=TABLE8_PRETRAINS, seeds=None,
                replicates: int | None = None, overrides: dict | None = None, store: RunStore | None = None,
                device: str = "auto", log=print) -> tuple[dict, dict]:
    """The SUN scene control's Table 8 fine-tunings and the bag-of-objects oracle on the same images (issue 18;
    :func:`detpretrain.analysis.mechanisms.sun_control_floor` reads the pair; ``sun-check`` sizes its training set).

    Args:
        pretrains, seeds, replicates, store, device: as in :func:`run_classification_transfer` (default: the
            classification chapter's Table 8 backbones and the profile's seeds and replicates).
        overrides: applied to the fine-tunings (e.g. ``{"data.corpus.n_train": 810, "data.eval_split": "val"}``);
            the oracle reads the same corpus and splits as the fine-tunings.

    Returns:
        ``(transfer, oracle)``: :func:`run_classification_transfer`'s result on the SUN role with shared backgrounds
        (trained where the store lacks a run), and
        :func:`~detpretrain.analysis.mechanisms.bag_of_objects_oracle` fitted on the fine-tunings' training split
        and scored on the split they are scored on (test by default).

    Raises:
        ConfigError: as :func:`run_classification_transfer`.
        DataError: as :func:`~detpretrain.analysis.mechanisms.bag_of_objects_oracle`.
    """
    from detpretrain.analysis.mechanisms import bag_of_objects_oracle
    from detpretrain.data.builders import corpus_root

    prof, chain = _sun_control_chain(profile, pretrains, seeds, replicates, overrides)
    target = classification_chain(prof, **chain).finetunes[0][3].data  # the overridden corpus and splits
    transfer = run_classification_transfer(prof, store=store, device=device, log=log, **chain)
    oracle = bag_of_objects_oracle(corpus_root(target, store.data_cache if store is not None else None)
                                   / "annotations.json", train_split=target.train_split, eval_split=target.eval_split)
    return transfer, oracle
