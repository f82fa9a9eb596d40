"""Choosing a fine-tuning schedule on the target's VAL split (issue 17; the rules and numbers are in
``profiles.py``): ``python -m detpretrain regime-check``.

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
from detpretrain.data.builders import corpus_cache_dir
from detpretrain.errors import ConfigError
from detpretrain.executor import ExecutionError, execute
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
    plan = make_plan(detection_chain(profile, **chain).configs, profile=profile.name, store=store)
    try:
        execute(plan, store, jobs=args.jobs, threads=args.threads, device=args.device, data_cache=corpus_cache_dir(),
                log_dir=Path("_build") / "logs", name=f"regime-check-{profile.name}",
                log=lambda line: print(line, flush=True))
    except ExecutionError as err:
        print(f"error: {err}", file=sys.stderr)
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
