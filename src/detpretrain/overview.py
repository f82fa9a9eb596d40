"""The introduction's results overview: every chapter's primary claim and its label, from the declarations
(:data:`detpretrain.analysis.claims.PRIMARY_CLAIMS`) and the runs a store already holds.

Nothing is trained here: each chapter's chain of runs (at its default parameters and the given profile, dataset and
replicates) is looked up in the store (:func:`stored_result`); a chapter whose runs are not all complete is listed
as "not run in this store". The labels are the chapters' own (the same functions compute them), so the overview and
the chapters cannot disagree. The chapters whose primary claim is measured from features, maps or spectra (Figures
4 and 7, the eigenspectrum, the mechanisms page) record it when they execute at their default parameters
(:func:`save_primary`); the overview reads that record (:func:`load_primary`) and says when it was written. At a GPU
profile the chapters that exist on the synthetic corpora only (:data:`detpretrain.parameters.SYNTHETIC_ONLY`) get a
row saying so, with the reason.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import pandas as pd

from detpretrain.analysis.claims import PRIMARY_CLAIMS, claim_row, detection_regime
from detpretrain.experiments.common import ChainPlan
from detpretrain.runs import RunStore


def stored_result(plan: ChainPlan, store: RunStore, **fields) -> dict | None:
    """The result dict of :func:`~detpretrain.experiments.common.train_chain` for ``plan``, read from ``store``
    without training, or None when a run of the plan is not complete there. ``fields`` are added to the dict."""
    entries = []
    for pretrain, replicate, seed, cfg in plan.finetunes:
        run = store.run_for(cfg)
        if not run.complete:
            return None
        entries.append({"pretrain": pretrain, "replicate": replicate, "seed": seed, "run": str(run.path),
                        "hash": run.hash, "metrics": run.metrics})
    return {**fields, "runs": entries}


def _detection(prof, store, dataset, data_root, replicates):
    from detpretrain.analysis.detection import detection_claims
    from detpretrain.experiments.detection import detection_chain

    res = stored_result(detection_chain(prof, dataset=dataset, data_root=data_root, replicates=replicates), store)
    if res is None:
        return None, None
    return next(iter(detection_claims(res).values())), detection_regime(res)


def _segmentation(prof, store, dataset, data_root, replicates):
    from detpretrain.analysis.segmentation import segmentation_claims
    from detpretrain.experiments.segmentation import segmentation_chain

    if dataset != "synthetic":  # the segmentation chapter's real targets differ from the detection ones
        return None, None
    res = stored_result(segmentation_chain(prof, replicates=replicates), store)
    return (next(iter(segmentation_claims(res).values())), None) if res is not None else (None, None)


def _ablations(prof, store, dataset, data_root, replicates):
    from detpretrain.analysis.ablations import ablation_claims
    from detpretrain.experiments.common import REMOVED_SUPERCATEGORIES
    from detpretrain.experiments.detection import detection_chain

    keys = ("imagenet-loc-cls", "imagenet-loc", *(f"imagenet-loc-no-{sc}" for sc in REMOVED_SUPERCATEGORIES))
    common = {"dataset": dataset, "data_root": data_root, "replicates": replicates}
    loc = stored_result(detection_chain(prof, pretrains=keys, **common), store)
    det = stored_result(detection_chain(prof, pretrains=("imagenet-cls", "detection"), **common), store)
    if loc is None:
        return None, None
    regime = detection_regime(det) if det is not None else None
    return next(iter(ablation_claims(loc, REMOVED_SUPERCATEGORIES).values())), regime


def _classification(prof, store, dataset, data_root, replicates):
    from detpretrain.analysis.probes import PRIMARY_DATASET, classification_claims
    from detpretrain.experiments.classification import classification_chain

    res = stored_result(classification_chain(prof, role="caltech", pretrains=("imagenet-cls", "detection"),
                                             replicates=replicates), store)
    return (next(iter(classification_claims({PRIMARY_DATASET: res}).values())), None) if res else (None, None)


def _frozen_backbone(prof, store, dataset, data_root, replicates):
    from detpretrain.analysis.frozen import ap_by_frequency, frozen_claims, frozen_regime
    from detpretrain.experiments.frozen import HEAD_LADDER, frozen_chains

    _, chains = frozen_chains(prof, dataset=dataset, data_root=data_root, replicates=replicates,
                              data_cache=store.data_cache)
    rows = []
    for (head, mode), chain in chains.items():
        res = stored_result(chain, store)
        if res is None:
            return None, None
        rare = chain.finetunes[0][3].data.long_tail["rare"]
        rows += [{"head": head, "mode": mode, "replicate": e["replicate"], "seed": e["seed"],
                  **ap_by_frequency(e["metrics"], rare)} for e in res["runs"]]
    heads = tuple(HEAD_LADDER)
    return next(iter(frozen_claims({"rows": rows}, heads).values())), frozen_regime({"rows": rows}, heads[0])


#: chapter -> how its primary verdict is read from a store: ``(profile, store, dataset, data_root, replicates) ->
#: (Verdict or None, Regime or None)``
READERS = {"detection": _detection, "ablations": _ablations, "segmentation": _segmentation,
           "classification": _classification, "frozen_backbone": _frozen_backbone}


#: the parameters a chapter may change without changing what its recorded primary claim is about
_RUNTIME_PARAMETERS = ("profile", "device", "store", "data_cache", "download", "coco_root")


def primary_record_path(chapter: str, profile: str, root: str | os.PathLike | None = None) -> Path:
    """``<root>/<profile>/<chapter>/primary.json`` (``root``: :func:`detpretrain.figures.figures_root`)."""
    from detpretrain.figures import figures_root

    return Path(root if root is not None else figures_root()) / profile / chapter / "primary.json"


def save_primary(chapter: str, result, *, profile: str, store=None, regime=None, params: dict | None = None,
                 source: str = "", root: str | os.PathLike | None = None) -> Path | None:
    """Record a chapter's primary verdict for the introduction's overview (:func:`primary_overview`), atomically.

    Args:
        chapter: a key of :data:`~detpretrain.analysis.claims.PRIMARY_CLAIMS`.
        result: the primary claim's :class:`~detpretrain.analysis.stats.Verdict` (None: nothing is recorded).
        profile: the profile's name (the record's folder).
        store: the :class:`~detpretrain.runs.RunStore` the verdict's runs are in (its folder is recorded; the
            overview shows the record for that store only).
        regime: the chapter's :class:`~detpretrain.analysis.claims.Regime` (an inadequate one replaces the label).
        params: the execution's parameter values (``ch.params``). Nothing is recorded when one that is not a
            runtime setting (device, store, ...) differs from its declared default: the overview shows the book's
            default question.
        source: the provenance line of the runs (kept in the record for a reader of the file).

    Returns:
        The record's path, or None when nothing was recorded. A default execution without a verdict removes an
        earlier record, so that the overview never shows a verdict the chapter no longer gives.
    """
    from detpretrain.io import atomic_path
    from detpretrain.parameters import non_default_parameters

    if non_default_parameters(chapter, params, ignore=_RUNTIME_PARAMETERS):
        return None
    target = primary_record_path(chapter, profile, root)
    if result is None:
        target.unlink(missing_ok=True)
        return None
    record = {"chapter": chapter, "row": claim_row(chapter, result, regime), "source": source,
              "store": _store_key(store), "written": _dt.datetime.now().isoformat(timespec="seconds")}
    with atomic_path(target, suffix=".json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return target


def _store_key(store) -> str | None:
    """The resolved folder of a run store (None for None)."""
    return None if store is None else str(Path(store.root).expanduser().resolve())


def load_primary(chapter: str, profile: str, root: str | os.PathLike | None = None) -> dict | None:
    """The record :func:`save_primary` wrote for ``chapter`` at ``profile``, or None when there is none or it cannot
    be read (a damaged record is treated as absent: the chapter re-writes it when it executes)."""
    path = primary_record_path(chapter, profile, root)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("row"), dict) else None


def primary_overview(profile, store: RunStore, *, dataset: str = "synthetic", data_root: str | None = None,
                     replicates: int | None = None, figures: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per chapter with a primary claim (:func:`~detpretrain.analysis.claims.claim_row`): the claim, the
    paper's number, ours with its interval and n, and the label (``regime inadequate`` where the chapter's detectors
    fall short). The claims measured from features, maps or spectra are read from the chapters' records
    (:func:`load_primary`, under ``figures``, default :func:`detpretrain.figures.figures_root`), with the time they
    were written, when they were recorded from ``store``; otherwise the row points to the chapter.

    Args:
        profile: a :class:`~detpretrain.profiles.Profile`.
        store: the run store (its ``data_cache`` holds the synthetic corpora).
        dataset, data_root: the detection target (the segmentation and classification claims use their synthetic
            targets).
        replicates: pre-training replicates (None: the profile's).
    """
    from detpretrain.parameters import CPU_PROFILES, SYNTHETIC_ONLY

    rows = []
    for chapter in PRIMARY_CLAIMS:
        if profile.name not in CPU_PROFILES and chapter in SYNTHETIC_ONLY:  # the rule the chapters refuse by
            rows.append({**claim_row(chapter, None),
                         "here": f"synthetic-only, not run at profile {profile.name}: {SYNTHETIC_ONLY[chapter]}"})
            continue
        reader = READERS.get(chapter)
        # what the records are about: the synthetic target at the profile's replicates
        default_question = dataset == "synthetic" and replicates in (None, profile.pretrain_replicates)
        record = load_primary(chapter, profile.name, figures) if reader is None and default_question else None
        if record is not None and record.get("store") != _store_key(store):
            record = None  # recorded from another store's runs
        if record is not None:
            row = dict(record["row"])
            row["here"] = f"{row['here']}; recorded by the chapter's execution of {record.get('written', '?')}"
        elif reader is None:
            row = claim_row(chapter, None)
            row.update(here="measured in its chapter (from the features, maps or spectra of its runs); no record "
                            "of its default execution on this store",
                       label="see the chapter")
        else:
            row = claim_row(chapter, *reader(profile, store, dataset, data_root, replicates))
        rows.append(row)
    return pd.DataFrame(rows)


def book_cost(profile: str, store: RunStore, data_cache: str | os.PathLike | None = None):
    """What the runs of the whole book cost, for the introduction's *Where the time goes*: :func:`detpretrain.plan.
    plan_cost` of the book's run plan at ``profile`` (every chapter at its default parameters) as ``store`` holds it.

    Returns:
        ``(costs, errors)``: the :class:`~detpretrain.plan.RunCost` list, and ``{chapter: why}`` for chapters that
        could not be planned (their real data missing, say), or ``{"book": why}`` and no costs when the book's
        sources are not found (a package installed without its checkout).
    """
    from detpretrain.book import book_plan
    from detpretrain.errors import ConfigError
    from detpretrain.plan import plan_cost

    errors: dict[str, str] = {}
    values = {"store": str(store.root)} | ({"data_cache": str(data_cache)} if data_cache is not None else {})
    try:
        plan = book_plan(profile, None, values, store=store, errors=errors)
    except (FileNotFoundError, ConfigError) as err:
        return [], {"book": f"{type(err).__name__}: {err}"}
    return plan_cost(plan, store), errors
