"""Tables and verdicts of the detection ablations: category removal (Table 2), identical pre-training samples
(Table 7) and missed objects under occlusion (Table 3) of Li et al. 2019, Sections 2.1 (Table 2) and 2.3 (Table 7)
and Appendix 6.2 (Table 3).

Inputs are the dicts of :func:`detpretrain.experiments.detection.run_detection_experiment` and
:func:`~detpretrain.experiments.classification.run_classification_transfer` ("result": ``{"profile", "data", "runs": [{"pretrain",
"replicate", "seed", "hash", "run", "metrics"}]}``). AP and accuracies are in percent; "sd" is the sample standard
deviation over fine-tuning runs. Every verdict is :mod:`detpretrain.analysis.stats`' interval over pre-training runs
of differences paired by replicate and seed (:mod:`detpretrain.analysis.claims`; :func:`ablation_claims`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from detpretrain.analysis.claims import PRIMARY_CLAIMS, map_at, paired_units, unit_frame, unit_verdict
from detpretrain.analysis.stats import Verdict
from detpretrain.errors import DataError
from detpretrain.paper import TABLE2, TABLE3, TABLE7, quoted_row

#: our pre-training names -> the paper's, for the IMAGENET-LOC ablations
LOC_ROLE_NAMES = {"imagenet-loc-cls": "IMAGENET-LOC (Cls)", "imagenet-loc": "IMAGENET-LOC"}

#: PASCAL-VOC and COCO class names of the super-categories the paper removes (for a real target)
REAL_SUPERCATEGORIES = {
    "vehicle": ("aeroplane", "airplane", "bicycle", "boat", "bus", "car", "motorbike", "motorcycle", "train",
                "truck"),
    "animal": ("bird", "cat", "cow", "dog", "horse", "sheep", "elephant", "bear", "zebra", "giraffe"),
}

#: Occlusion levels (Hoiem et al. 2012 annotate none / low / moderate / high by eye) from the recorded visible
#: fraction of an instance (visible pixels / pixels of the whole object, so occlusion by other objects and
#: truncation by the border both lower it): (name, lower bound inclusive, upper bound exclusive).
OCCLUSION_LEVELS = (("none", 0.95, 1.01), ("low", 0.75, 0.95), ("moderate", 0.5, 0.75), ("high", 0.0, 0.5))


def _mean_sd(values) -> tuple[float, float]:
    v = pd.Series(values, dtype=float).dropna()
    return (float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan)


# ----------------------------------------------------------------------------------------------------------------
# Table 2: category removal
# ----------------------------------------------------------------------------------------------------------------
def target_supercategories(classes) -> dict[str, list[str]]:
    """``{super-category: [target class names]}`` for the classes of a target (background excluded).

    Synthetic classes take their super-category from :data:`detpretrain.data.synthetic_taxonomy.TAXONOMY`;
    PASCAL-VOC / COCO names from :data:`REAL_SUPERCATEGORIES`. Classes known to neither are left out.
    """
    from detpretrain.data.synthetic_taxonomy import TAXONOMY

    sup = {c.name: c.supercategory for c in TAXONOMY}
    for sc, names in REAL_SUPERCATEGORIES.items():
        sup.update(dict.fromkeys(names, sc))
    out: dict[str, list[str]] = {}
    for c in classes:
        if c in sup:
            out.setdefault(sup[c], []).append(c)
    return out


def supercategory_ap(metrics: dict, classes, iou: float = 0.7) -> float:
    """Mean AP (percent) at ``iou`` over ``classes`` from a detection run's metrics (NaN APs skipped).

    Raises:
        KeyError: ``iou`` was not evaluated.
    """
    ious = [round(float(t), 2) for t in metrics["iou_thresholds"]]
    k = ious.index(round(iou, 2))
    values = [metrics["per_class_AP"][c][k] for c in classes if c in metrics["per_class_AP"]]
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _by_run(result: dict, pretrain: str, fn) -> pd.Series:
    return pd.Series([fn(r["metrics"]) for r in result["runs"] if r["pretrain"] == pretrain], dtype=float)


def removal_table(result: dict, removed, iou: float = 0.7) -> pd.DataFrame:
    """Table 2: mAP@``iou`` on the target classes of each removed super-category, per pre-training.

    Rows: IMAGENET-LOC (Cls) (``imagenet-loc-cls``), IMAGENET-LOC without Category (``imagenet-loc-no-<sc>`` for
    that column's super-category ``sc``), IMAGENET-LOC (``imagenet-loc``). For each super-category: our mean, sd and
    the paper's value.
    """
    classes = target_supercategories(result["runs"][0]["metrics"]["per_class_AP"])
    rows = []
    for label, key in (("IMAGENET-LOC (Cls)", "imagenet-loc-cls"), ("IMAGENET-LOC without Category", None),
                       ("IMAGENET-LOC", "imagenet-loc")):
        row = {"pre-training": label}
        for sc in removed:
            pretrain = key or f"imagenet-loc-no-{sc}"
            vals = _by_run(result, pretrain, lambda m, sc=sc: supercategory_ap(m, classes.get(sc, []), iou))
            row[f"{sc}"], row[f"{sc} sd"] = _mean_sd(vals)
            row[f"{sc} (paper)"] = TABLE2[label].get(sc, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


#: labels of the bars of Table 2's figure: IMAGENET-LOC (Cls), IMAGENET-LOC without the super-category, IMAGENET-LOC
REMOVAL_LABELS = ("LOC (Cls)", "LOC without it", "LOC")


def removal_frame(result: dict, removed, iou: float = 0.7) -> pd.DataFrame:
    """Table 2 per run, long form (the figure's bars and points): for each removed super-category ``sc`` and each run
    of ``imagenet-loc-cls``, ``imagenet-loc`` and ``imagenet-loc-no-<sc>``, the mAP (percent) at ``iou`` over the
    target classes of ``sc`` (:func:`supercategory_ap`).

    Returns:
        columns ``removed``, ``pre-training`` (one of :data:`REMOVAL_LABELS`), ``replicate``, ``seed``,
        ``mAP@<iou>``.
    """
    classes = target_supercategories(result["runs"][0]["metrics"]["per_class_AP"])
    labels = {"imagenet-loc-cls": REMOVAL_LABELS[0], "imagenet-loc": REMOVAL_LABELS[2]}
    rows = []
    for r in result["runs"]:
        for sc in removed:
            if r["pretrain"] in ("imagenet-loc-cls", "imagenet-loc", f"imagenet-loc-no-{sc}"):
                rows.append({"removed": sc, "pre-training": labels.get(r["pretrain"], REMOVAL_LABELS[1]),
                             "replicate": int(r.get("replicate", 0)), "seed": r["seed"],
                             f"mAP@{iou}": supercategory_ap(r["metrics"], classes.get(sc, []), iou)})
    return pd.DataFrame(rows, columns=["removed", "pre-training", "replicate", "seed", f"mAP@{iou}"])


def removal_units(result: dict, removed, iou: float = 0.7) -> dict[str, dict[str, pd.DataFrame]]:
    """Table 2's paired differences per removed super-category ``sc`` (mAP@``iou`` points on its target classes),
    one row per unit (replicate, seed; :func:`~detpretrain.analysis.claims.paired_units`):

    * ``unseen_gain``: detection pre-training without ``sc`` minus IMAGENET-LOC (Cls) -- the paper's claim (it
      improves localisation even for categories it never saw);
    * ``removal_cost``: IMAGENET-LOC minus detection pre-training without ``sc`` (what seeing ``sc`` adds).

    Returns:
        ``{sc: {"unseen_gain": frame, "removal_cost": frame}}`` with columns ``replicate, seed, diff``.
    """
    classes = target_supercategories(result["runs"][0]["metrics"]["per_class_AP"])
    out = {}
    for sc in removed:
        frame = unit_frame(result, lambda m, sc=sc: supercategory_ap(m, classes.get(sc, []), iou))
        out[sc] = {"unseen_gain": paired_units(frame, f"imagenet-loc-no-{sc}", "imagenet-loc-cls"),
                   "removal_cost": paired_units(frame, "imagenet-loc", f"imagenet-loc-no-{sc}")}
    return out


def unseen_gain_units(result: dict, removed, iou: float = 0.7) -> pd.DataFrame:
    """The ablations chapter's primary measure: per unit, the unseen gain (:func:`removal_units`) averaged over the
    removed super-categories (units missing for one of them dropped): columns ``replicate, seed, diff``."""
    parts = [u["unseen_gain"].set_index(["replicate", "seed"])["diff"] for u in removal_units(result, removed,
                                                                                           iou).values()]
    if not parts:
        return pd.DataFrame(columns=["replicate", "seed", "diff"])
    return pd.concat(parts, axis=1).dropna().mean(axis=1).rename("diff").reset_index()


# ----------------------------------------------------------------------------------------------------------------
# Table 7: identical pre-training samples
# ----------------------------------------------------------------------------------------------------------------
def identical_samples_table(det_result: dict, cls_result: dict) -> pd.DataFrame:
    """Table 7: fine-tuning results of IMAGENET-LOC (Cls) and IMAGENET-LOC pre-training (same images).

    Columns: our mAP@0.5, mAP@0.7 on the detection target and top-1 on the object-centric classification target,
    each with sd over the fine-tuning runs, and the paper's three values.
    """
    rows = []
    for key, label in LOC_ROLE_NAMES.items():
        row = {"pre-training": label}
        for name, vals in (("mAP@0.5", _by_run(det_result, key, lambda m: map_at(m, 0.5))),
                           ("mAP@0.7", _by_run(det_result, key, lambda m: map_at(m, 0.7))),
                           ("top-1", _by_run(cls_result, key, lambda m: m["top1"]))):
            row[name], row[f"{name} sd"] = _mean_sd(vals)
        for name, value in zip(("mAP@0.5", "mAP@0.7", "top-1"), TABLE7[label]):
            row[f"{name} (paper)"] = value
        rows.append(row)
    return pd.DataFrame(rows)


def identical_samples_units(det_result: dict, cls_result: dict) -> dict[str, pd.DataFrame]:
    """Table 7's paired differences with identical pre-training images, one row per unit (replicate, seed):
    ``det_gain_05`` / ``det_gain_07`` = IMAGENET-LOC - IMAGENET-LOC (Cls) in mAP@0.5 / mAP@0.7 points (the paper:
    +2.0, +3.4), ``cls_gain`` = IMAGENET-LOC (Cls) - IMAGENET-LOC in top-1 points (the paper: +3.5).

    Returns:
        ``{name: frame}`` with columns ``replicate, seed, diff``.
    """
    loc, cls = "imagenet-loc", "imagenet-loc-cls"
    det = {iou: unit_frame(det_result, lambda m, iou=iou: map_at(m, iou)) for iou in (0.5, 0.7)}
    return {"det_gain_05": paired_units(det[0.5], loc, cls), "det_gain_07": paired_units(det[0.7], loc, cls),
            "cls_gain": paired_units(unit_frame(cls_result, lambda m: m["top1"]), cls, loc)}


# ----------------------------------------------------------------------------------------------------------------
# Table 3: missed objects under occlusion (Hoiem et al. 2012)
# ----------------------------------------------------------------------------------------------------------------
def occlusion_level(visible_fraction: float) -> str:
    """The occlusion level (:data:`OCCLUSION_LEVELS`) of an instance; ``"unknown"`` for NaN / None."""
    if visible_fraction is None or math.isnan(visible_fraction):
        return "unknown"
    for name, lo, hi in OCCLUSION_LEVELS:
        if lo <= visible_fraction < hi:
            return name
    raise ValueError(f"visible fraction {visible_fraction} is outside [0, 1]")


def hoiem_missed(match: dict, norm_fraction: float = 0.15, missed_threshold: float = 0.05) -> np.ndarray:
    """Which ground-truth boxes a detector misses, by the rule of Hoiem et al.'s analysis tool (ECCV 2012).

    Per class, detections are ranked by score; with ``tp``/``fp`` their cumulative counts and ``npos`` the number of
    non-difficult boxes, the *normalised precision* at each rank is ``tp' / (tp' + fp)`` with
    ``tp' = tp * N / npos`` and ``N = norm_fraction * number of images`` (it fixes the density of positives, so
    classes with many and few instances are judged alike), made monotone from the lowest rank up (interpolated).
    A box is *missed* unless a true-positive detection of it (IoU > the matching threshold, one detection per box,
    the VOC rule) reaches a normalised precision of at least ``missed_threshold``. The tool's defaults:
    ``NORM_FRACT = 0.15``, ``missedthresh = 0.05``, "strong" localisation IoU 0.5.

    Args:
        match: :func:`detpretrain.evaluation.detection.match_detections` output.

    Returns:
        [G] bool, True where box g is missed; always False for difficult boxes (they are not counted).
    """
    n_gt = len(match["gt_difficult"])
    found = np.zeros(n_gt, dtype=bool)
    nnorm = norm_fraction * match["num_images"]
    for k, cat in enumerate(match["category_ids"]):
        sel = np.flatnonzero(match["category"] == cat)  # already in descending-score order
        if not len(sel) or match["npos"][k] == 0:
            continue
        tp = np.cumsum(match["tp"][sel], dtype=np.float64)
        fp = np.cumsum(match["fp"][sel], dtype=np.float64)
        tpn = tp * nnorm / match["npos"][k]
        with np.errstate(invalid="ignore", divide="ignore"):
            pn = np.where(tpn + fp > 0, tpn / (tpn + fp), 0.0)
        pni = np.maximum.accumulate(pn[::-1])[::-1]
        hits = sel[match["tp"][sel] & (pni >= missed_threshold)]
        found[match["gt_index"][hits]] = True
    return ~found & ~match["gt_difficult"]


def missed_objects(gt: dict, detections: list[dict], *, iou: float = 0.5, norm_fraction: float = 0.15,
                   missed_threshold: float = 0.05) -> pd.DataFrame:
    """One row per ground-truth box: ``image`` (id), ``area`` (px), ``category``, ``visible_fraction``, ``truncated``,
    ``occluded``, ``difficult``,
    ``level`` (:func:`occlusion_level`), ``occluded_low`` / ``occluded_medium`` (Hoiem's Table 3 groups) and
    ``missed`` (:func:`hoiem_missed`).

    The level is the annotation's ``occlusion_level`` where it has one (Hoiem et al.'s release on real VOC2007 test:
    :func:`attach_occlusion_levels`), else the level of its ``visible_fraction`` (:func:`occlusion_level`).
    The groups follow Hoiem et al.'s tool: "occluded Low" = level >= low or truncated, "occluded Medium" = level >=
    moderate or truncated. A binary VOC ``occluded`` flag (VOC2010+, no level) is used only for objects without a
    visible fraction, and counts towards "occluded Low" only, since it does not say how much is hidden.

    Args:
        gt: COCO-format ground truth as :func:`detpretrain.data.coco.to_coco_gt` writes it (``visible_fraction``,
            ``truncated`` and ``occluded`` per annotation where the data has them; a real VOC2007 root has
            ``truncated`` at most, see :func:`occlusion_annotations`).
        detections: COCO results list of the detector on the same images.
    """
    from detpretrain.evaluation.detection import match_detections

    match = match_detections(gt, detections, iou)
    missed = hoiem_missed(match, norm_fraction, missed_threshold)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    rows = []
    order = {n: i for i, (n, _, _) in enumerate(OCCLUSION_LEVELS)}
    for g, a in enumerate(gt["annotations"]):
        vf = a.get("visible_fraction")
        vf = math.nan if vf is None else float(vf)
        level = a.get("occlusion_level") or occlusion_level(vf)  # an annotator's level (Hoiem et al.) comes first
        trunc = bool(a.get("truncated", 0))
        occl = bool(a.get("occluded", 0))
        known = level != "unknown"
        rows.append({"image": a.get("image_id"), "area": float(a.get("area", math.nan)),
                     "category": names[a["category_id"]], "visible_fraction": vf, "truncated": trunc,
                     "occluded": occl, "difficult": bool(match["gt_difficult"][g]), "level": level,
                     "occluded_low": trunc or (order[level] >= order["low"] if known else occl),
                     "occluded_medium": trunc or (known and order[level] >= order["moderate"]),
                     "missed": bool(missed[g])})
    return pd.DataFrame(rows)


def occlusion_annotations(gt: dict) -> dict:
    """What a target's annotations let Table 3 measure: counts of the occlusion information per object, and a
    sentence that says what the table can and cannot show on this target.

    Args:
        gt: COCO-format ground truth (:func:`detpretrain.data.coco.to_coco_gt`).

    Returns:
        ``{"objects", "difficult", "occlusion_level", "visible_fraction", "truncated", "occluded", "sentence"}``:
        ``objects`` and ``difficult`` count the annotations; the other four count the *annotated* objects for that
        field (``None`` if no annotation carries it) and, for the flags, ``"<field>_set"`` how many are 1.
    """
    anns = gt["annotations"]
    out: dict = {"objects": len(anns), "difficult": sum(bool(a.get("ignore", 0)) for a in anns)}
    for key in ("occlusion_level", "visible_fraction", "truncated", "occluded"):
        have = [a[key] for a in anns if a.get(key) is not None]
        out[key] = len(have) if have else None
        if key in ("truncated", "occluded"):
            out[f"{key}_set"] = sum(bool(v) for v in have) if have else None
    if out["occlusion_level"]:
        names = {c["id"]: c["name"] for c in gt["categories"]}
        classes = sorted({names[a["category_id"]] for a in anns if a.get("occlusion_level") is not None})
        sentence = (f"{out['occlusion_level']} of {out['objects']} objects carry an annotator's occlusion level "
                    f"(Hoiem et al. 2012, released for VOC2007 test: {', '.join(classes)}; difficult objects have "
                    "none). Table 3 counts those objects only, as Hoiem et al.'s tool and the paper do; truncation is "
                    "VOC's own flag.")
    elif out["visible_fraction"]:
        sentence = (f"{out['visible_fraction']} of {out['objects']} objects have a recorded visible fraction: both "
                    "groups and every occlusion level are measured (the level boundaries are ours, not an "
                    "annotator's judgement).")
    else:
        flags = [f"{out[k + '_set']} of {out['objects']} objects flagged `{k}`" for k in ("truncated", "occluded")
                 if out[k] is not None]
        if flags:
            sentence = (f"This target records no visible fraction, only binary flags ({'; '.join(flags)}). The "
                        "Table 3 groups then hold the flagged objects: truncation by the image border (and, with "
                        "VOC2010+ `occluded`, occlusion by another object, counted at Low only, since the flag has "
                        "no level). The per-level rows are empty, 'occluded Medium' holds the truncated objects "
                        "only, and an unflagged object may still be partly hidden, so a difference between "
                        "pre-trainings on these groups is about truncation, not the paper's occlusion levels.")
        else:
            sentence = (f"This target records no occlusion information ({out['objects']} objects, "
                        f"{out['difficult']} difficult; no visible fraction, `truncated` or `occluded`): Table 3 "
                        "cannot be measured on it. Only the overall % missed is defined; difficult objects are "
                        "still left out of it, as in VOC.")
    out["sentence"] = sentence
    return out


def occlusion_table(frames: dict[str, list[pd.DataFrame]]) -> pd.DataFrame:
    """Table 3: % of non-difficult objects missed, per pre-training, for Hoiem's groups (occluded Low and Medium)
    and for each occlusion level; mean and sd over seeds, object counts, and the paper's values.

    Args:
        frames: ``{pretrain: [missed_objects frame per seed]}``.
    """
    rows = []
    for pretrain, per_seed in frames.items():
        row = {"pre-training": pretrain}
        groups = [("occluded Low", "occluded_low"), ("occluded Medium", "occluded_medium")]
        groups += [(f"level {n}", n) for n, _, _ in OCCLUSION_LEVELS] + [("all", None)]
        for label, key in groups:
            pct, counts = [], []
            for f in per_seed:
                f = f[~f["difficult"]]
                sub = f if key is None else (f[f[key]] if key in f.columns else f[f["level"] == key])
                counts.append(len(sub))
                pct.append(100.0 * sub["missed"].mean() if len(sub) else math.nan)
            row[f"{label} % missed"], row[f"{label} sd"] = _mean_sd(pct)
            row[f"{label} objects"] = int(np.mean(counts)) if counts else 0
        rows.append(row)
    return pd.DataFrame(rows)


def occlusion_units(frames: dict[str, list[pd.DataFrame]], better: str = "detection",
                    baseline: str = "imagenet-cls") -> dict[str, pd.DataFrame]:
    """Table 3's paired gains (percentage points of objects missed, ``baseline - better``: positive = fewer
    misses), one row per unit (the runs of both detectors with the same replicate and seed).

    The paper reports the occluded groups only (14.7 -> 10.1 % at Low, 15.7 -> 10.8 % at Medium; its OPENIMAGES
    detector, Table 3 has no COCO row); a detector that misses fewer objects everywhere also misses fewer occluded
    ones. So the same gain is also computed on the *unoccluded* objects (not in the Low group), and ``excess`` = gain
    at Low - gain on unoccluded objects: positive means the advantage is larger where objects are occluded (the
    reading the paper gives), about zero means it is a general one.

    Args:
        frames: :func:`occlusion_frames`' ``{pretrain: [missed_objects frame per run]}`` (columns ``replicate`` and
            ``seed`` identify the run).

    Returns:
        ``{"low", "medium", "unoccluded", "excess": frame}`` with columns ``replicate, seed, diff``.
    """
    def gain(fb, fa, rows):
        fb, fa = fb[~fb["difficult"] & rows(fb)], fa[~fa["difficult"] & rows(fa)]
        return 100.0 * (fb["missed"].mean() - fa["missed"].mean()) if len(fa) and len(fb) else math.nan

    def unit(f):
        return (int(f["replicate"].iloc[0]) if "replicate" in f and len(f) else 0,
                int(f["seed"].iloc[0]) if "seed" in f and len(f) else 0)

    runs_b = {unit(f): f for f in frames.get(baseline, [])}
    runs_a = {unit(f): f for f in frames.get(better, [])}
    groups = {"low": lambda f: f["occluded_low"], "medium": lambda f: f["occluded_medium"],
              "unoccluded": lambda f: ~f["occluded_low"]}
    rows = {k: [] for k in (*groups, "excess")}
    for key in sorted(set(runs_a) & set(runs_b)):
        values = {k: gain(runs_b[key], runs_a[key], rows_of) for k, rows_of in groups.items()}
        values["excess"] = values["low"] - values["unoccluded"]
        for k, v in values.items():
            rows[k].append({"replicate": key[0], "seed": key[1], "diff": v})
    return {k: pd.DataFrame(v, columns=["replicate", "seed", "diff"]).dropna() for k, v in rows.items()}


def occlusion_paper(better: str = "detection", baseline: str = "imagenet-cls") -> str:
    """The paper's Table 3 gains in words, naming the row it quotes for ``better`` (Table 3 has no COCO row)."""
    (row_b, _), (row_a, label_a) = (quoted_row(k, "Table 3", TABLE3) for k in (baseline, better))
    if row_a is None or row_b is None:
        return "no paper value"
    return (f"{label_a} vs {row_b}: {TABLE3[row_b]['low'] - TABLE3[row_a]['low']:.1f} and "
            f"{TABLE3[row_b]['medium'] - TABLE3[row_a]['medium']:.1f} percentage points fewer missed at Low and "
            "Medium occlusion")


def ablation_claims(loc: dict, removed, *, transfer: dict | None = None,
                    frames: dict[str, list[pd.DataFrame]] | None = None, iou: float = 0.7) -> dict[str, Verdict]:
    """The ablations chapter's claims, primary first (:data:`~detpretrain.analysis.claims.PRIMARY_CLAIMS`
    ``["ablations"]``: detection pre-training without a super-category beats IMAGENET-LOC (Cls) on that
    super-category's classes, averaged over ``removed``), each a verdict over pre-training runs:

    * Table 2, per removed super-category: the unseen gain and the removal cost (:func:`removal_units`);
    * Table 7 (with ``transfer``, the classification fine-tunings): :func:`identical_samples_units`;
    * Table 3 (with ``frames``, :func:`occlusion_frames`): :func:`occlusion_units` (Low, Medium, unoccluded, excess).

    Returns:
        ``{claim: Verdict}`` for :func:`~detpretrain.analysis.claims.claims_frame`.
    """
    primary = PRIMARY_CLAIMS["ablations"]
    claims = {primary.name: unit_verdict(unseen_gain_units(loc, removed, iou), claim=primary)}
    for sc, units in removal_units(loc, removed, iou).items():
        claims[f"Table 2, {sc}: without it, still above IMAGENET-LOC (Cls)"] = unit_verdict(units["unseen_gain"])
        claims[f"Table 2, {sc}: seeing it adds more"] = unit_verdict(units["removal_cost"])
    if transfer is not None:
        units = identical_samples_units(loc, transfer)
        claims["Table 7: detection pre-training better for detection, mAP@0.5"] = unit_verdict(units["det_gain_05"])
        claims["Table 7: detection pre-training better for detection, mAP@0.7"] = unit_verdict(units["det_gain_07"])
        claims["Table 7: classification pre-training better for classification"] = unit_verdict(units["cls_gain"])
    if frames is not None:
        units = occlusion_units(frames)
        claims["Table 3: fewer occluded objects missed (Low)"] = unit_verdict(units["low"])
        claims["Table 3: fewer occluded objects missed (Medium)"] = unit_verdict(units["medium"])
        claims["Table 3: the advantage is specific to occlusion (Low − unoccluded)"] = unit_verdict(units["excess"])
    return claims


def attach_occlusion_levels(gt: dict, dataset, directory) -> dict:
    """``gt`` (:func:`detpretrain.data.coco.to_coco_gt` of ``dataset``) with Hoiem et al.'s occlusion level as
    ``occlusion_level`` on every annotation that has one (:func:`detpretrain.data.hoiem.hoiem_occlusion_levels`; a
    new dict, ``gt`` is not changed).

    Raises:
        DataError: the files are missing, malformed or not aligned with ``dataset`` (names the file); or ``dataset``
            is not one VOC split (the release counts the objects of the VOC2007 test split in order).
    """
    from detpretrain.data.hoiem import hoiem_occlusion_levels
    from detpretrain.data.voc import VOCDetection

    if not isinstance(dataset, VOCDetection):
        raise DataError(directory, "Hoiem et al.'s occlusion levels annotate one VOC split (VOC2007 test); the "
                                   f"evaluation data here is a {type(dataset).__name__}: use dataset voc with a "
                                   "VOC2007 root and its test split")
    levels = hoiem_occlusion_levels(directory, dataset)
    if len(levels) != len(gt["annotations"]):
        raise DataError(directory, f"{len(levels)} objects read, but the ground truth has {len(gt['annotations'])}")
    anns = [dict(a, occlusion_level=lv) if lv is not None else a for a, lv in zip(gt["annotations"], levels)]
    return {**gt, "annotations": anns}


def annotated_classes_only(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a :func:`missed_objects` frame whose class has an occlusion level on some object (Hoiem et al.'s
    seven annotated classes, with their difficult objects, which stay flagged), as Hoiem et al.'s tool counts."""
    annotated = set(frame.loc[frame["level"] != "unknown", "category"])
    return frame[frame["category"].isin(annotated)].reset_index(drop=True)


def occlusion_frames(result: dict, pretrains=("imagenet-cls", "detection"), device: str = "cpu",
                     annotations: dict | None = None, data_cache=None, occlusion_annotations_dir=None,
                     **missed_kwargs) -> dict[str, list[pd.DataFrame]]:
    """:func:`missed_objects` of every fine-tuned detector of ``result`` on its evaluation split.

    Each detector is loaded from its run directory (:func:`detpretrain.runs.load_run_model`) and run again on
    the evaluation images (nothing is retrained). Returns ``{pretrain: [frame per run, in (replicate, seed) order]}``
    (each frame with columns ``replicate`` and ``seed``).
    ``annotations``, if given, receives :func:`occlusion_annotations` of the evaluation split's ground truth (what
    Table 3 can show on this target). ``data_cache``: the corpus cache of a synthetic target (default
    ``corpus_cache_dir()``). ``occlusion_annotations_dir``: a folder of Hoiem et al.'s ``gt_ved_<class>.txt`` files
    for a real VOC2007 test split (:func:`attach_occlusion_levels`); the frames then hold the objects of the classes
    they annotate only, as Hoiem et al.'s tool counts them.

    Raises:
        ConfigError: a run is not complete. DataError: the evaluation data is missing or malformed.
    """
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.data.coco import to_coco_gt
    from detpretrain.engine import predict_detections
    from detpretrain.runs import load_run_model

    out: dict[str, list[pd.DataFrame]] = {}
    datasets: dict = {}
    for r in sorted(result["runs"], key=lambda r: (r["pretrain"], r.get("replicate", 0), r["seed"])):
        if r["pretrain"] not in pretrains:
            continue
        model, config, _ = load_run_model(r["run"], device)
        key = config.data.describe() + config.data.eval_split
        if key not in datasets:
            ds = build_detection_dataset(config.data, config.data.eval_split, train=False, cache=data_cache)
            gt = to_coco_gt(ds)
            if occlusion_annotations_dir is not None:
                gt = attach_occlusion_levels(gt, ds, occlusion_annotations_dir)
            datasets[key] = (ds, gt)
            if annotations is not None:
                annotations.update(occlusion_annotations(datasets[key][1]))
        ds, gt = datasets[key]
        frame = missed_objects(gt, predict_detections(model, ds, device), **missed_kwargs)
        if occlusion_annotations_dir is not None:
            frame = annotated_classes_only(frame)
        out.setdefault(r["pretrain"], []).append(frame.assign(replicate=int(r.get("replicate", 0)), seed=r["seed"]))
    return out


def missed_by_level(frames: dict[str, list[pd.DataFrame]]) -> pd.DataFrame:
    """% of non-difficult objects missed per pre-training, seed and occlusion level (:data:`OCCLUSION_LEVELS`), the
    data of Table 3's per-level figure; objects without a visible fraction (level ``unknown``) are left out.

    Args:
        frames: :func:`occlusion_frames`' ``{pretrain: [missed_objects frame per seed]}``.

    Returns:
        columns ``pre-training``, ``replicate`` (where the frames have it), ``seed``, ``level``, ``% missed`` (empty
        when no object has a level).
    """
    columns = ["pre-training", "seed", "level", "% missed"]
    parts = [f.assign(**{"pre-training": p}) for p, fs in frames.items() for f in fs]
    if not parts:
        return pd.DataFrame(columns=columns)
    long = pd.concat(parts, ignore_index=True)
    long = long[~long["difficult"] & (long["level"] != "unknown")]
    if long.empty:
        return pd.DataFrame(columns=columns)
    by = ["pre-training", *(["replicate"] if "replicate" in long else []), "seed", "level"]
    pct = long.groupby(by)["missed"].mean() * 100
    return pct.rename("% missed").reset_index()[[c for c in by if c != "level"] + ["level", "% missed"]]


def paper_table3() -> pd.DataFrame:
    """The paper's Table 3 (PASCAL-VOC 2007 test, % missed), rows under the paper's own names."""
    return pd.DataFrame([{"pre-training": k, "occluded Low % missed": v["low"], "occluded Medium % missed": v["medium"]}
                         for k, v in TABLE3.items()])


# ----------------------------------------------------------------------------------------------------------------
# issue 18: Table 3 with occlusion and truncation apart, and a model of the misses
# ----------------------------------------------------------------------------------------------------------------
# The "occluded" groups of Hoiem's tool count truncated objects in, and our visible fraction mixes both (pixels under
# other objects and pixels outside the image), so on the synthetic target truncation dominates those groups. Here an
# object is *truncated* when the border cuts it (whatever else hides it), *occluded* when it is not truncated and less
# than :data:`VISIBLE_CLEAN` of it is visible (so only other objects hide it), *clean* otherwise.

#: an untruncated object at least this visible counts as unoccluded (the "none" level of :data:`OCCLUSION_LEVELS`)
VISIBLE_CLEAN = 0.95
#: the terms of :func:`fit_missed_logit`: pre-training (``det`` = 1 for the detection-pre-trained detector),
#: occlusion, truncation, their interactions with pre-training, and the object's standardised log area
MISSED_TERMS = ("det", "occluded", "truncated", "det:occluded", "det:truncated", "log_area")


def visibility_group(visible_fraction: float, truncated: bool, occluded_flag: bool = False,
                     level: str | None = None) -> str:
    """``"truncated"``, ``"occluded"`` (not truncated, less than :data:`VISIBLE_CLEAN` visible), ``"clean"``, or,
    without a visible fraction, the binary ``occluded_flag`` (VOC2010+) decides between occluded and clean. An
    annotator's ``level`` (Hoiem et al.: none / low / moderate / high) decides before the visible fraction."""
    if truncated:
        return "truncated"
    if level in ("none", "low", "moderate", "high"):
        return "clean" if level == "none" else "occluded"
    if visible_fraction is None or math.isnan(visible_fraction):
        return "occluded" if occluded_flag else "clean"
    return "occluded" if visible_fraction < VISIBLE_CLEAN else "clean"


def missed_design(frames: dict[str, list[pd.DataFrame]], better: str = "detection",
                  baseline: str = "imagenet-cls") -> pd.DataFrame:
    """The non-difficult objects of both detectors as one table for :func:`fit_missed_logit`.

    Args:
        frames: :func:`occlusion_frames`' ``{pretrain: [missed_objects frame per seed]}``.

    Returns:
        columns ``image``, ``replicate`` (the pre-training replicate), ``seed``, ``class``, ``group``
        (:func:`visibility_group`), ``missed``, ``det``,
        ``occluded``, ``truncated`` (0/1), ``log_area`` (log px, standardised over the table).
    """
    parts = []
    for pre, flag in ((baseline, 0), (better, 1)):
        for f in frames.get(pre, []):
            g = f[~f["difficult"]]
            levels = g["level"] if "level" in g else [None] * len(g)
            group = [visibility_group(v, t, o, lv if lv != "unknown" else None)
                     for v, t, o, lv in zip(g["visible_fraction"], g["truncated"], g["occluded"], levels)]
            parts.append(pd.DataFrame({"image": g["image"].to_numpy(), "replicate": g.get("replicate", 0),
                                       "seed": g.get("seed", 0),
                                       "class": g["category"].to_numpy(), "group": group,
                                       "missed": g["missed"].astype(int).to_numpy(), "det": flag,
                                       "log_area": np.log(np.maximum(g["area"].to_numpy(dtype=float), 1.0))}))
    if not parts:
        return pd.DataFrame(columns=["image", "replicate", "seed", "class", "group", "missed", "det", "occluded",
                                     "truncated", "log_area"])
    d = pd.concat(parts, ignore_index=True)
    d["occluded"] = (d["group"] == "occluded").astype(int)
    d["truncated"] = (d["group"] == "truncated").astype(int)
    sd = d["log_area"].std(ddof=0)
    d["log_area"] = (d["log_area"] - d["log_area"].mean()) / (sd if sd > 0 else 1.0)
    return d


def visibility_table(design: pd.DataFrame, names: dict | None = None) -> pd.DataFrame:
    """% of objects missed per pre-training and :func:`visibility_group` (objects pooled over seeds), with counts:
    Table 3 with occlusion and truncation apart."""
    names = names or {0: "baseline", 1: "detection"}
    g = design.groupby(["det", "group"])["missed"].agg(["mean", "size"]).reset_index()
    g["pre-training"] = g["det"].map(names)
    g["% missed"] = 100 * g.pop("mean")
    return g.pivot(index="pre-training", columns="group", values=["% missed", "size"])


def _design_matrix(design: pd.DataFrame, terms, classes: bool) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    for t in terms:
        a, _, b = t.partition(":")
        cols.append(design[a].to_numpy(float) * (design[b].to_numpy(float) if b else 1.0))
        names.append(t)
    if classes:
        for c in sorted(design["class"].unique())[1:]:
            cols.append((design["class"] == c).to_numpy(float))
            names.append(f"class={c}")
    return (np.column_stack(cols) if cols else np.zeros((len(design), 0))), names


def fit_missed_logit(design: pd.DataFrame, terms=MISSED_TERMS, *, classes: bool = True,
                     C: float = math.inf) -> pd.Series:
    """Logistic regression of ``missed`` on ``terms`` (+ one indicator per class but the first) by maximum likelihood
    (:class:`sklearn.linear_model.LogisticRegression`, lbfgs, no penalty at ``C = inf``).

    ``det:occluded`` is the change, in log-odds of a miss, of detection pre-training's effect when an object is
    occluded (not truncated) rather than clean; negative = the advantage is larger under occlusion (Table 3's
    reading, as an interaction rather than two marginal percentages).

    Returns:
        coefficients (log-odds units) indexed ``intercept``, the terms, ``class=<name>``.
    """
    from sklearn.linear_model import LogisticRegression

    x, names = _design_matrix(design, terms, classes)
    y = design["missed"].to_numpy(int)
    if len(np.unique(y)) < 2:
        return pd.Series(np.nan, index=["intercept", *names])
    model = LogisticRegression(C=C, solver="lbfgs", max_iter=2000, tol=1e-8).fit(x, y)
    return pd.Series(np.r_[model.intercept_, model.coef_[0]], index=["intercept", *names])


def missed_logit_verdicts(design: pd.DataFrame, terms=MISSED_TERMS, *, claims=("det", "det:occluded",
                                                                             "det:truncated"),
                          n_boot: int = 200, seed: int = 0, classes: bool = True,
                          C: float = 10.0) -> tuple[pd.Series, dict]:
    """:func:`fit_missed_logit` with a bootstrap over images (an image's objects, in both detectors and every seed,
    are drawn together), and a :func:`~detpretrain.analysis.stats.replicates_verdict` for each coefficient of
    ``claims`` (expected negative: detection pre-training lowers the odds of a miss, more so under occlusion).

    ``C``: a weak ridge (the L2 penalty ``||w||^2 / 2`` against ``C`` times the log-likelihood; C = 10 is about a
    normal prior of sd 3 log-odds on each coefficient) that keeps the estimates finite when a class or group is
    (quasi-)separated, as it is in many bootstrap resamples of a small set of misses; ``math.inf`` fits the plain
    maximum likelihood.

    Returns:
        ``(coefficients, {term: Verdict})``; conditional on these pre-trained networks.
    """
    from detpretrain.analysis.stats import replicates_verdict

    coef = fit_missed_logit(design, terms, classes=classes, C=C)
    images = design["image"].to_numpy()
    ids, inverse = np.unique(images, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(ids.size)]
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(int(n_boot)):
        rows = np.concatenate([members[k] for k in rng.integers(0, ids.size, ids.size)])
        boots.append(fit_missed_logit(design.iloc[rows], terms, classes=classes, C=C).reindex(coef.index))
    boots = pd.DataFrame(boots)
    method = (f"bootstrap over {ids.size} images ({n_boot} resamples; the fine-tuned detectors held fixed), "
              "logistic regression" + ("" if math.isinf(C) else f" (ridge C = {C:g})"))
    verdicts = {t: replicates_verdict(coef[t], boots[t].to_numpy(), n=ids.size, unit="image", method=method,
                                      expected=-1, replicated=False)
                for t in claims if t in coef.index}
    return coef, verdicts


def replicated_missed_logit_verdicts(design: pd.DataFrame, terms=MISSED_TERMS, *,
                                     claims=("det", "det:occluded", "det:truncated"), classes: bool = True,
                                     C: float = 10.0, n_boot: int = 200, seed: int = 0) -> tuple[pd.Series, dict]:
    """Table 3's model over pre-training runs: :func:`fit_missed_logit` once per pre-training replicate (replicate
    r of both pre-trainings' detectors, every fine-tuning seed of it), and for each coefficient of ``claims`` a
    t interval over the R per-replicate coefficients (:func:`~detpretrain.analysis.stats.verdict`, df = R - 1;
    expected negative: detection pre-training lowers the odds of a miss, more so under occlusion). The objects and
    images are nested in their replicate.

    With one replicate in ``design`` this is :func:`missed_logit_verdicts` (a bootstrap over images, conditional on
    these networks).

    Args:
        design: :func:`missed_design`'s table (its ``replicate`` column).
        terms, classes, C: as :func:`missed_logit_verdicts`; ``n_boot``, ``seed``: for one replicate.

    Returns:
        ``(coefficients of the pooled fit, {term: Verdict})``; a term gets no interval when its fit is undefined in
        some replicate (every object missed, or none) or a replicate holds one pre-training's detectors only.
    """
    from detpretrain.analysis.stats import _no_interval, verdict

    reps = sorted(design["replicate"].unique()) if "replicate" in design else [0]
    if len(reps) < 2:
        return missed_logit_verdicts(design, terms, claims=claims, n_boot=n_boot, seed=seed, classes=classes, C=C)
    coef = fit_missed_logit(design, terms, classes=classes, C=C)
    one_arm = [r for r in reps if design.loc[design["replicate"] == r, "det"].nunique() < 2]
    per = pd.DataFrame([fit_missed_logit(design[design["replicate"] == r], terms, classes=classes, C=C)
                        .reindex(coef.index) for r in reps])
    out = {}
    for t in claims:
        if t not in coef.index:
            continue
        values = per[t].to_numpy(float)
        problem = (f"replicate(s) {', '.join(map(str, one_arm))} hold one pre-training's detectors only: no "
                   "pre-training contrast to fit" if one_arm else
                   "a replicate's logistic regression is undefined (all or no objects missed)"
                   if not np.isfinite(values).all() else "")
        if problem:
            out[t] = _no_interval(math.nan, len(reps), len(design), len(reps), problem, alpha=0.05,
                                  kind="superiority", margin=0.0, expected=-1, unit="pre-training run")
        else:
            out[t] = verdict(values, groups=np.arange(len(reps)), unit="logistic-regression fit", expected=-1)
    return coef, out
