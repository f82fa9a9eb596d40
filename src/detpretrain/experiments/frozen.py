"""The frozen-backbone companion study as a chain of runs, on the book's backbones and run store.

**Frozen backbone** (Vasconcelos, Birodkar, Dumoulin, CVPR 2022): detectors on the IMAGENET-CLS backbone, frozen
  (``trainable_stages=0``: weights, and statistics where there are any) or fine-tuned end to end, with the
  detector capacity of :data:`HEAD_LADDER`, on a long-tailed version of the target
  (:mod:`detpretrain.data.long_tail`) (:func:`run_frozen_study`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial


from detpretrain.config import DataSpec, TrainConfig, config_hash
from detpretrain.errors import ConfigError
from detpretrain.experiments.common import (
    ChainPlan,
    chain_plan,
    pretrained_for,
    replicate_count,
    replicate_key,
    split_key,
    target_spec,
    train_chain,
)
from detpretrain.experiments.detection import finetune_config
from detpretrain.profiles import Profile, get_profile
from detpretrain.runs import RunStore
from detpretrain.analysis.frozen import ap_by_frequency, training_resources



#: detector capacity after the backbone, smallest first (Vasconcelos et al. 2022 climb FPN -> NAS-FPN -> + Cascade
#: heads; torchvision offers the steps below): ModelSpec fields of each level
HEAD_LADDER: dict[str, dict] = {
    "FPN": {"fpn_extra_convs": 0, "box_head": "2mlp", "rpn_conv_depth": 1},
    "FPN+2conv": {"fpn_extra_convs": 2, "box_head": "2mlp", "rpn_conv_depth": 1},
    "FPN+2conv+4conv1fc": {"fpn_extra_convs": 2, "box_head": "4conv1fc", "rpn_conv_depth": 2},
}


BACKBONE_MODES = ("frozen", "fine-tuned")


def long_tail_target(target: DataSpec, *, rare: Sequence[str] | None = None, fraction: float = 0.5,
                     max_images: int = 8, seed: int = 0, data_cache=None) -> DataSpec:
    """The target with a long-tailed training split (:mod:`detpretrain.data.long_tail`).

    ``rare`` names the rare classes; by default :func:`~detpretrain.data.long_tail.alternate_rare_classes` picks
    ``fraction`` of them, alternating down the frequency ranking of the full training split. ``data_cache``: the
    corpus cache of a synthetic target (default ``corpus_cache_dir()``).
    """
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.data.long_tail import (
        alternate_rare_classes,
        image_classes,
        rare_labels,
    )

    train = build_detection_dataset(target, target.train_split, train=False, cache=data_cache)
    if rare is None:
        rare = alternate_rare_classes(train.classes, image_classes(train), fraction)
    rare_labels(train.classes, rare)  # validates the names
    return dataclasses.replace(target, long_tail={"rare": list(rare), "max_images": int(max_images), "seed": int(seed)})


def frozen_config(prof: Profile, pretrain: str, seed: int, target: DataSpec, pretrained, *, head: str,
                  mode: str) -> TrainConfig:
    """One detector of the frozen-backbone study: ``head`` a key of :data:`HEAD_LADDER`, ``mode`` one of
    :data:`BACKBONE_MODES` (``frozen``: ``trainable_stages=0``; ``fine-tuned``: the profile's trainable stages).

    Raises:
        ConfigError: an unknown head or mode, or a ``scratch`` backbone (nothing to freeze).
    """
    if head not in HEAD_LADDER:
        raise ConfigError(f"unknown head {head!r}; expected one of {list(HEAD_LADDER)}")
    if mode not in BACKBONE_MODES:
        raise ConfigError(f"unknown backbone mode {mode!r}; expected one of {BACKBONE_MODES}")
    if split_key(pretrain)[0] == "scratch":
        raise ConfigError("a frozen random backbone is not the frozen-backbone study; use a pre-trained one")
    base = finetune_config(prof, pretrain, seed, target, pretrained)
    model = dataclasses.replace(base.model, **HEAD_LADDER[head])
    if mode == "frozen":
        model = dataclasses.replace(model, trainable_stages=0)
    return dataclasses.replace(base, name=f"frozen/{backbone_label(pretrain, pretrained)}/{head}/{mode}", model=model)


def backbone_label(pretrain: str, pretrained) -> str:
    """The backbone part of a frozen-study run name: ``pretrain`` (e.g. ``imagenet-cls@r1``), or, when its
    pre-training config is named otherwise than ``pretrain/<name>`` (the exclusion control's
    ``pretrain/imagenet-cls-without-rare-category``), that name with ``pretrain``'s replicate suffix
    (``imagenet-cls-without-rare-category@r1``), so the control's detectors never share a name with the main study's."""
    name, replicate = split_key(pretrain)
    config = pretrained.get(pretrain) if pretrained else None
    if config is None or not config.name.startswith("pretrain/") or config.name == f"pretrain/{name}":
        return pretrain
    return replicate_key(config.name[len("pretrain/"):], replicate)


def excluded_pretraining(prof: Profile, rare: Sequence[str], scope: str,
                         replicates: int = 1) -> dict[str, TrainConfig | None]:
    """:func:`~detpretrain.experiments.common.pretrained_for` (``replicates`` pre-training replicates) with each
    replicate's IMAGENET-CLS pre-training regenerated without the ``rare`` classes (``scope="category"``) or their
    super-categories (``"supercategory"``; :func:`~detpretrain.data.long_tail.pretraining_exclusion`): the control of
    the frozen-backbone study, whose rare classes are otherwise classes the frozen backbone was trained to separate.

    Raises:
        ConfigError: an unknown scope, rare classes that are not synthetic categories (a real target), or a profile
            that takes IMAGENET-CLS from torchvision weights (nothing to regenerate).
    """
    from detpretrain.data.long_tail import pretraining_exclusion
    from detpretrain.experiments.common import synthetic_spec

    if prof.imagenet_cls_weights is not None:
        raise ConfigError(f"profile {prof.name!r} takes IMAGENET-CLS from torchvision weights: no pre-training corpus "
                          "to remove the rare classes from")
    pretrained = dict(pretrained_for(prof, (), replicates=replicates))
    excluded = pretraining_exclusion(rare, scope)
    for r in range(replicates):
        key = replicate_key("imagenet-cls", r)
        pretrained[key] = dataclasses.replace(
            pretrained[key], name=f"pretrain/imagenet-cls-without-rare-{scope}",
            data=synthetic_spec(prof.name, "imagenet_cls", **excluded))
    return pretrained


def exclusion_control_note(profile: str | Profile, pretrain: str, dataset: str, scope: str | None) -> str:
    """Why the frozen study's exclusion control (:func:`excluded_pretraining`) does not run with these parameters,
    as a sentence for the chapter; ``""`` when it runs. It needs our own IMAGENET-CLS pre-training (not published
    weights), the ``imagenet-cls`` backbone, and the synthetic target, whose rare classes are corpus categories."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    if scope is None:
        return "The exclusion control was not asked for (`exclusion_control = None`)."
    if prof.imagenet_cls_weights is not None:
        return (f"The exclusion control is left out at profile `{prof.name}`: IMAGENET-CLS comes from published "
                "weights, so there is no pre-training corpus to remove the rare classes from.")
    if split_key(pretrain)[0] != "imagenet-cls":
        return (f"The exclusion control is left out: it regenerates the IMAGENET-CLS pre-training, and the study's "
                f"backbone is `{pretrain}`.")
    if dataset != "synthetic":
        return ("The exclusion control is left out: the rare classes of a real target are not categories of the "
                "synthetic IMAGENET-CLS corpus.")
    return ""


def frozen_chains(profile: str | Profile = "smoke", *, dataset: str = "synthetic", data_root: str | None = None,
                  pretrain: str = "imagenet-cls", heads: Sequence[str] = tuple(HEAD_LADDER),
                  rare: Sequence[str] | None = None, fraction: float = 0.5, max_images: int = 8,
                  seeds=None, replicates: int | None = None, data_cache=None,
                  exclude_rare_from_pretraining: str | None = None) -> tuple[DataSpec, dict[tuple[str, str], ChainPlan]]:
    """The runs of :func:`run_frozen_study` (same arguments), without training: the long-tailed target and one
    chain per ``(head, mode)``. ``data_cache``: the corpus cache the long-tailed subset is read from (a synthetic
    target; default ``corpus_cache_dir()``)."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    target = long_tail_target(target_spec(prof, dataset, data_root), rare=rare, fraction=fraction,
                              max_images=max_images, data_cache=data_cache)
    count = replicate_count(prof, replicates)
    if exclude_rare_from_pretraining is None:
        pretrained = pretrained_for(prof, (pretrain,), replicates=count)
    elif split_key(pretrain)[0] != "imagenet-cls":
        raise ConfigError(f"exclude_rare_from_pretraining regenerates the IMAGENET-CLS pre-training; the study's "
                          f"backbone is {pretrain!r}")
    else:
        pretrained = excluded_pretraining(prof, target.long_tail["rare"], exclude_rare_from_pretraining,
                                          replicates=count)
    chains = {(head, mode): chain_plan(prof, target, partial(frozen_config, head=head, mode=mode),
                                       pretrains=(pretrain,), pretrained=pretrained, seeds=seeds, replicates=count)
              for head in heads for mode in BACKBONE_MODES}
    return target, chains


def plan_frozen(profile: str | Profile = "smoke", **params) -> list[TrainConfig]:
    """Every run :func:`run_frozen_study` trains with these arguments, pre-trainings first (no training; the
    long-tailed subset is computed from the target's annotations)."""
    _, chains = frozen_chains(profile, **params)
    return list({config_hash(c): c for chain in chains.values() for c in chain.configs}.values())


def run_frozen_study(profile: str | Profile = "smoke", *, dataset: str = "synthetic", data_root: str | None = None,
                     pretrain: str = "imagenet-cls", heads: Sequence[str] = tuple(HEAD_LADDER),
                     rare: Sequence[str] | None = None, fraction: float = 0.5, max_images: int = 8, seeds=None,
                     replicates: int | None = None, store: RunStore | None = None, device: str = "auto",
                     resource_iterations: int = 5, progress: bool = True, log=print,
                     exclude_rare_from_pretraining: str | None = None) -> dict:
    """Train (or find) every head x mode x seed detector on the long-tailed target, score all / rare / frequent AP,
    and measure the training resources of the seed-0 configurations side by side.

    ``exclude_rare_from_pretraining``: ``None`` (the backbone as in the other chapters), ``"category"`` or
    ``"supercategory"``: the control whose IMAGENET-CLS pre-training never saw the rare classes (or their
    super-categories; :func:`excluded_pretraining`).

    Returns:
        ``{"profile", "dataset", "data", "rare", "images_per_class", "full_images_per_class", "train_images",
        "full_train_images", "rows": [{"head", "mode", "seed", "run", "hash", "all@0.5", "rare@0.5", ...}],
        "resources": training_resources rows (label "<head> / <mode>")}``.
    """
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.data.long_tail import LongTailSubset
    from detpretrain.distributed import resolve_device

    prof = get_profile(profile) if isinstance(profile, str) else profile
    store = store or RunStore()
    target, chains = frozen_chains(prof, dataset=dataset, data_root=data_root, pretrain=pretrain, heads=heads,
                                   rare=rare, fraction=fraction, max_images=max_images, seeds=seeds,
                                   replicates=replicates, data_cache=store.data_cache,
                                   exclude_rare_from_pretraining=exclude_rare_from_pretraining)
    subset = LongTailSubset(build_detection_dataset(target, target.train_split, train=False, cache=store.data_cache),
                            target.long_tail)
    rows, seed0 = [], {}
    for (head, mode), chain in chains.items():
        res = train_chain(chain, prof, dataset, target, store=store, device=device, progress=progress, log=log)
        for entry in res["runs"]:
            rows.append({"head": head, "mode": mode, "replicate": entry["replicate"], "seed": entry["seed"],
                         "run": entry["run"],
                         "hash": entry["hash"], "train_seconds": sum(h["seconds"] for h in
                                                                      entry["metrics"]["history"]),
                         **ap_by_frequency(entry["metrics"], subset.rare)})
        seed0[f"{head} / {mode}"] = chain.finetunes[0][3]
    resources = training_resources(seed0, store=store, iterations=resource_iterations, device=str(resolve_device(device)))
    return {"profile": prof.name, "dataset": dataset, "data": target.describe(), "rare": subset.rare,
            "images_per_class": subset.images_per_class, "full_images_per_class": subset.full_images_per_class,
            "train_images": len(subset), "full_train_images": len(subset.dataset), "rows": rows,
            "resources": resources, "pretrain": pretrain, "max_images": max_images,
            "exclude_rare_from_pretraining": exclude_rare_from_pretraining}
