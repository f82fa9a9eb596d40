"""Choosing settings on a target's VAL split (the rules and numbers are in ``profiles.py``):
``python -m detpretrain regime-check`` (the detection fine-tuning schedule, issue 17) and
``python -m detpretrain sun-check`` (the SUN-role training set of the scene control, issue 18).

A detection verdict is given only when the IMAGENET-CLS-arm detector is trained well enough
(:func:`~detpretrain.analysis.claims.detection_regime`, on the test split). The schedule that gets it there is chosen
on val, never on test: this command fine-tunes the IMAGENET-CLS arm's pre-training replicates on the target's train
split with a candidate schedule, scores them on val, and prints the one-sided 95 % lower prediction bound of the
test-split mean (:func:`~detpretrain.analysis.detection.regime_prediction`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from detpretrain.analysis.detection import regime_prediction
from detpretrain.analysis.mechanisms import sun_floor_rule
from detpretrain.data.builders import corpus_cache_dir
from detpretrain.errors import ConfigError
from detpretrain.executor import ExecutionError, execute
from detpretrain.experiments.classification import sun_control, sun_control_configs
from detpretrain.experiments.common import replicate_count
from detpretrain.experiments.detection import (
    detection_chain,
    format_map_table,
    parse_overrides,
    run_detection_experiment,
)
from detpretrain.plan import make_plan
from detpretrain.profiles import get_profile
from detpretrain.runs import RunStore

#: what a schedule selection changes in the fine-tuning configs: train on the target's train split, score on val
SELECTION_SPLITS = {"data.train_split": "train", "data.eval_split": "val"}


def _train(configs, profile, store: RunStore, args, name: str) -> bool:
    """Train what ``store`` lacks of ``configs`` with the parallel executor (``args``: ``jobs``, ``threads``,
    ``device``; build log ``_build/logs/<time>-<name>-<profile>.log``); False, with the error on stderr, when a run
    failed."""
    plan = make_plan(configs, profile=profile.name, store=store)
    try:
        execute(plan, store, jobs=args.jobs, threads=args.threads, device=args.device, data_cache=corpus_cache_dir(),
                log_dir=Path("_build") / "logs", name=f"{name}-{profile.name}",
                log=lambda line: print(line, flush=True))
    except ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
        return False
    return True


def regime_check_command(args) -> int:
    """``python -m detpretrain regime-check``: the schedule selection of ``profiles.py`` (issue 17) for one setting.

    Fine-tunes the IMAGENET-CLS arm (each of the profile's pre-training replicates, fine-tuning seed ``--seed``) on
    the synthetic target's TRAIN split with the profile's schedule changed by ``--set`` (e.g. ``optim.epochs=8``),
    scores it on the VAL split (never test), trains what the store lacks with the parallel executor, and prints the
    runs' mAP and :func:`~detpretrain.analysis.detection.regime_prediction`'s table.

    Returns:
        0 when both regime measures' prediction bounds meet their thresholds, 3 when one misses (the table says
        which), 1 on a failed run.

    Raises:
        ConfigError: fewer than 2 replicates or image resamples, a malformed or unknown ``--set`` (before training).
    """
    overrides = {**SELECTION_SPLITS, **parse_overrides(args.set)}
    profile = get_profile(args.profile)
    replicates = replicate_count(profile, args.replicates)
    if replicates < 2 or args.n_boot < 2:  # refused before anything trains: the bound needs both spreads
        raise ConfigError(f"regime-check needs >= 2 pre-training replicates (got {replicates}; --replicates) and "
                          f">= 2 image resamples (got {args.n_boot}; --n-boot) to measure the bound's two spreads")
    store = RunStore(args.store)  # None: the default store (runs/ or $DETPRETRAIN_RUNS)
    chain = dict(pretrains=("imagenet-cls",), seeds=(args.seed,), replicates=args.replicates, overrides=overrides)
    if not _train(detection_chain(profile, **chain).configs, profile, store, args, "regime-check"):
        return 1
    result = run_detection_experiment(profile, store=store, device=args.device, log=lambda line: None, **chain)
    print(format_map_table(result))
    table = regime_prediction(result, data_cache=corpus_cache_dir(), n_boot=args.n_boot)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))  # a bound 0.03 short must show
    meets = bool(table["meets"].all())
    print(f"{'meets' if meets else 'misses'} the regime by the selection rule (one-sided 95 % prediction bound of "
          f"the test-split mean; overrides {overrides})")
    return 0 if meets else 3


def sun_check_command(args) -> int:
    """``python -m detpretrain sun-check --per-scene N``: selection 4 of ``profiles.py`` for one candidate size.

    Fine-tunes the IMAGENET-CLS arm (each of the profile's pre-training replicates, seed ``--seed``, the profile's
    ``cls_finetune`` schedule, as Table 8 does) on the SUN-role scene control (``sun_backgrounds="shared"``) with
    ``N`` training images per scene, scores it on the VAL split (never test), fits the bag-of-objects oracle
    (:func:`~detpretrain.analysis.mechanisms.bag_of_objects_oracle`) on the same training images, and prints the
    runs, the oracle and :func:`sun_floor_rule`.

    Returns:
        0 when the size escapes the floor, 3 when it does not, 1 on a failed run.

    Raises:
        ConfigError: ``--per-scene`` below 1 or fewer than 1 replicate (before training).
    """
    from detpretrain.data.synthetic import SCENES

    if args.per_scene < 1:
        raise ConfigError(f"sun-check needs --per-scene >= 1 (got {args.per_scene})")
    profile = get_profile(args.profile)
    replicates = replicate_count(profile, args.replicates)
    overrides = {**SELECTION_SPLITS, "data.corpus.n_train": args.per_scene * len(SCENES)}
    store = RunStore(args.store)
    chain = dict(pretrains=("imagenet-cls",), seeds=(args.seed,), replicates=replicates, overrides=overrides)
    if not _train(sun_control_configs(profile, **chain), profile, store, args, "sun-check"):
        return 1
    result, oracle = sun_control(profile, store=store, device=args.device, log=lambda line: None, **chain)
    top1 = [r["metrics"]["top1"] for r in result["runs"]]
    rule = sun_floor_rule(top1, oracle["top1"], oracle["chance"])
    for r in result["runs"]:
        print(f"imagenet-cls r{r['replicate']} seed {r['seed']}: val top-1 {r['metrics']['top1']:.1f} %  ({r['run']})")
    print(f"SUN scene control, {args.per_scene} training images per scene ({oracle['n_train']} train -> "
          f"{oracle['n_eval']} val): IMAGENET-CLS mean {rule['mean']:.1f} %, bag-of-objects oracle "
          f"{oracle['top1']:.1f} %, chance {oracle['chance']:.1f} %, threshold {rule['threshold']:.1f} %")
    print(f"{'escapes' if rule['escapes'] else 'stays at'} the floor by selection 4's rule")
    return 0 if rule["escapes"] else 3
