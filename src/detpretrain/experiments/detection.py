"""Section 2.1 of Li et al. 2019 (Table 1, Figure 1; Tables 2, 3, 7): where the detection chapters train.

A detector (Faster R-CNN + FPN, detection heads re-initialised) is fine-tuned on the target (VOC role) from each
pre-trained backbone of :mod:`detpretrain.experiments.common` and evaluated with the VOC07 metric at IoU
0.1 ... 0.9 (:func:`run_detection_experiment`). ``python -m detpretrain train`` runs the same chain from the command
line (:func:`train_command`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from detpretrain.config import DataSpec, TrainConfig, config_hash
from detpretrain.errors import ConfigError
from detpretrain.experiments.common import (
    PRETRAINS,
    REMOVED_SUPERCATEGORIES,
    ChainPlan,
    chain_plan,
    pretrained_for,
    replicate_count,
    replicate_key,
    target_spec,
    train_chain,
)
from detpretrain.profiles import Profile, get_profile, with_coco_root
from detpretrain.runs import RunStore



def finetune_config(profile: Profile, pretrain: str, seed: int, target: DataSpec,
                    pretrained: dict[str, TrainConfig | None]) -> TrainConfig:
    """The detection fine-tuning run on ``target`` from backbone ``pretrain`` with ``seed``.

    ``pretrain`` is ``"scratch"`` or a key of ``pretrained`` (:func:`~detpretrain.experiments.common.pretrained_for`:
    a pre-training name, ``@r<k>`` for replicate k > 0); a key whose config is None maps to the profile's published
    torchvision weights (:attr:`~detpretrain.profiles.Profile.published`). The run is named ``finetune/<key>``.

    Raises:
        ConfigError: an unknown pre-training name.
    """
    if pretrain != "scratch" and pretrain not in pretrained:
        raise ConfigError(f"unknown pre-training {pretrain!r}; expected scratch or one of {', '.join(pretrained)}")
    model = profile.model if target.kind == "synthetic" else profile.real_model
    init = None
    if pretrain != "scratch" and pretrained[pretrain] is None:
        if pretrain not in profile.published:
            raise ConfigError(f"profile {profile.name!r} has neither a run nor published weights for {pretrain!r}")
        init = f"torchvision:{profile.published[pretrain]}"
    elif pretrain != "scratch":
        init = f"run:{config_hash(pretrained[pretrain])}"
    elif model.norm == "frozen_bn":  # frozen BatchNorm needs pre-trained statistics; from scratch uses GroupNorm
        model = dataclasses.replace(model, norm="gn", trainable_stages=5)
    return TrainConfig(name=f"finetune/{pretrain}", task="detection", data=target, model=model,
                       optim=profile.finetune, init=init, seed=seed)


def detection_chain(profile: str | Profile = "smoke", *, dataset: str = "synthetic", data_root: str | None = None,
                    pretrains=PRETRAINS, seeds=None, replicates: int | None = None, overrides: dict | None = None,
                    removed=REMOVED_SUPERCATEGORIES, corpus: dict | None = None) -> ChainPlan:
    """The runs of :func:`run_detection_experiment` (same arguments), without training."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    count = replicate_count(prof, replicates)
    return chain_plan(prof, target_spec(prof, dataset, data_root, corpus), finetune_config, pretrains=pretrains,
                      pretrained=pretrained_for(prof, pretrains, removed, count, corpus=corpus), seeds=seeds,
                      replicates=count,
                      overrides=overrides)


def plan_detection(profile: str | Profile = "smoke", **params) -> list[TrainConfig]:
    """Every run :func:`run_detection_experiment` trains with these arguments, pre-trainings first (no training)."""
    return detection_chain(profile, **params).configs


def run_detection_experiment(profile: str | Profile = "smoke", *, dataset: str = "synthetic",
                             data_root: str | None = None, pretrains=PRETRAINS, seeds=None,
                             replicates: int | None = None, store: RunStore | None = None,
                             overrides: dict | None = None, device: str = "auto", progress: bool = True, log=print,
                             removed=REMOVED_SUPERCATEGORIES, corpus: dict | None = None) -> dict:
    """Table 1 / Figure 1 (and Tables 2, 7): pre-train (once, through the run store), fine-tune from each backbone,
    evaluate: the runs of :func:`detection_chain`, trained by :func:`~detpretrain.experiments.common.train_chain`.

    Args:
        profile: ``"smoke" | "mini" | "paper"`` or a :class:`~detpretrain.profiles.Profile`.
        dataset: the target: ``"synthetic"`` (VOC-like corpus), ``"coco"`` or ``"voc"`` (real, needs data_root).
        pretrains: which backbones to compare: :data:`PRETRAINS` and, for the ablations, the keys of
            :func:`loc_pretrain_configs` (``imagenet-loc``, ``imagenet-loc-cls``, ``imagenet-loc-no-<sc>``).
        seeds: fine-tuning seeds (default: the profile's).
        replicates: pre-training replicates, crossed with the seeds (default: the profile's
            ``pretrain_replicates``).
        overrides: ``{"optim.epochs": 3, ...}`` applied to the fine-tuning configs.
        removed: super-categories of the ``imagenet-loc-no-<sc>`` pre-trainings that may be requested.
        corpus: the corpus variant of every synthetic corpus of the chain, pre-trainings and target
            (:func:`~detpretrain.experiments.common.corpus_overrides`, e.g. ``{"cue": "distributed"}``).

    Returns:
        ``{"profile", "dataset", "data", "runs": [{"pretrain", "replicate", "seed", "run", "hash", "metrics"}],
        "pretrain_runs": {key: path}}``.
    """
    prof = get_profile(profile) if isinstance(profile, str) else profile
    plan = detection_chain(prof, dataset=dataset, data_root=data_root, pretrains=pretrains, seeds=seeds,
                           replicates=replicates, overrides=overrides, removed=removed, corpus=corpus)
    return train_chain(plan, prof, dataset, target_spec(prof, dataset, data_root, corpus), store=store, device=device,
                       progress=progress, log=log)


def configuration_table(profile: Profile, dataset: str, seeds, pretrains, replicates: int = 1,
                        schedule_factors=(1,)):
    """The detection chapter's configuration: profile, target, backbone, the fine-tuning schedule, seeds,
    pre-training replicates and pre-trainings, as a settings table (:func:`detpretrain.chapter.settings_frame`)."""
    from detpretrain.chapter import settings_frame

    o = profile.finetune
    return settings_frame([
        ("profile", profile.name), ("dataset", dataset),
        ("backbone", (profile.model if dataset == "synthetic" else profile.real_model).arch),
        ("fine-tuning epochs", o.epochs), ("lr step after epoch", ", ".join(map(str, o.milestones)) or "none"),
        ("batch size", o.batch_size), ("base lr", o.lr),
        ("schedule check", ", ".join(f"{f}x" for f in schedule_factors)),
        ("fine-tuning seeds", ", ".join(map(str, seeds))),
        ("pre-training replicates", f"{replicates} per pre-trained backbone (crossed with the seeds)"),
        ("pre-trainings", ", ".join(pretrains)),
    ])


#: the backbones of the schedule check (the detection chapter's primary comparison)
SCHEDULE_CHECK_PRETRAINS = ("imagenet-cls", "detection")


def schedule_check_arguments(profile: Profile, factor: int, pretrains, seeds=None) -> dict:
    """The :func:`run_detection_experiment` arguments of the schedule check at ``factor`` x the fine-tuning epochs:
    the backbones of :data:`SCHEDULE_CHECK_PRETRAINS` among ``pretrains``, every pre-training replicate, the FIRST
    fine-tuning seed only (the unit of the claim is the pre-training run; one seed per replicate keeps the check's
    cost at ``factor`` x 2 runs per replicate), :func:`schedule_overrides`."""
    seeds = tuple(seeds) if seeds is not None else profile.seeds
    return {"pretrains": tuple(p for p in SCHEDULE_CHECK_PRETRAINS if p in pretrains), "seeds": seeds[:1],
            "overrides": schedule_overrides(profile, factor)}


def schedule_overrides(profile: Profile, factor: int) -> dict:
    """Fine-tuning overrides of the schedule check: ``factor`` times the profile's epochs, the learning-rate steps
    scaled alike (``{}`` for ``factor`` 1, so the 1x runs are the chapter's own runs)."""
    if factor < 1:
        raise ConfigError(f"a schedule factor is a whole number >= 1, got {factor}")
    if factor == 1:
        return {}
    o = profile.finetune
    return {"optim.epochs": o.epochs * factor, "optim.milestones": tuple(m * factor for m in o.milestones)}


def ablation_configuration_table(profile: Profile, dataset: str, removed, transfer_role: str, seeds,
                                 replicates: int = 1):
    """The ablations chapter's configuration (Tables 2, 3, 7): the removed super-categories, the IMAGENET-LOC
    pre-training (:func:`~detpretrain.experiments.common.loc_pretrain_configs`), the detection and classification
    fine-tunings and the seeds, as a settings table."""
    from detpretrain.chapter import settings_frame
    from detpretrain.experiments.common import loc_pretrain_configs

    loc = loc_pretrain_configs(profile, tuple(removed))
    return settings_frame([
        ("profile", profile.name), ("target", dataset), ("removed super-categories", ", ".join(removed)),
        ("IMAGENET-LOC pre-training epochs", profile.loc_pretrain.epochs),
        ("IMAGENET-LOC corpus", loc["imagenet-loc"].data.describe()),
        ("detection fine-tuning epochs", profile.finetune.epochs),
        ("classification target (Table 7)", transfer_role),
        ("classification fine-tuning epochs", profile.cls_finetune.epochs),
        ("fine-tuning seeds", ", ".join(map(str, seeds))),
        ("pre-training replicates", f"{replicates} per pre-trained backbone (crossed with the seeds)"),
    ])


def train_command(args) -> int:
    """``python -m detpretrain train``: a detection experiment; prints mAP per IoU threshold per backbone."""
    from detpretrain import distributed

    overrides = parse_overrides(args.set)
    pretrains = tuple(args.pretrain.split(",")) if args.pretrain else PRETRAINS
    profile = with_coco_root(get_profile(args.profile), getattr(args, "coco_root", None))
    result = run_detection_experiment(profile, dataset=args.dataset or "synthetic", data_root=args.data_root,
                                      pretrains=pretrains, seeds=(args.seed,),
                                      replicates=args.replicates,
                                      store=RunStore(args.store) if args.store else None, overrides=overrides,
                                      device=args.device, log=_main_print)
    if distributed.is_main_process():
        print(format_map_table(result))
        if args.out:
            from detpretrain.io import atomic_write_json

            atomic_write_json(Path(args.out), result)
    return 0


def parse_overrides(items) -> dict:
    """``["key=value", ...]`` of ``--set`` -> ``{key: value}`` (values parsed later, by the config).

    Raises:
        ConfigError: an item without ``=``.
    """
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key] = value
    return overrides


def _main_print(line: str) -> None:
    from detpretrain import distributed

    if distributed.is_main_process():
        print(line, flush=True)


def format_map_table(result: dict) -> str:
    """Plain-text table: one row per fine-tuning run, mAP (percent) per IoU threshold."""
    runs = result["runs"]
    if not runs:
        return "(no runs)"
    thresholds = runs[0]["metrics"]["iou_thresholds"]
    head = f"{'pre-training':<14} {'seed':>4} " + " ".join(f"{t:>6.2f}" for t in thresholds)
    lines = [f"mAP (%) vs IoU threshold, {runs[0]['metrics'].get('metric', '')}, {result['data']}", head]
    for r in runs:
        name = replicate_key(r["pretrain"], r.get("replicate", 0))
        lines.append(f"{name:<14} {r['seed']:>4} " + " ".join(f"{v:>6.1f}" for v in r["metrics"]["mAP"]))
    return "\n".join(lines)
