"""Tables, figures and verdicts for the detection chapter (Section 2.1, Table 1, Figure 1 of Li et al. 2019).

All functions take the dict returned by :func:`detpretrain.experiments.detection.run_detection_experiment` ("result"):
``{"profile", "dataset", "data", "runs": [{"pretrain", "replicate", "seed", "hash", "metrics": {"iou_thresholds",
"mAP", ...}}]}``. AP values are in percent. Every verdict is :mod:`detpretrain.analysis.stats`' over pre-training
runs (:mod:`detpretrain.analysis.claims`).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd

from detpretrain.analysis.claims import PRIMARY_CLAIMS, growth, paired_units, unit_verdict
from detpretrain.analysis.stats import Verdict
from detpretrain.chapter import provenance
from detpretrain.experiments.common import SAME_IMAGES
from detpretrain.paper import ROLE_NAMES, TABLE1, role_label

#: backbones in the order of tables and legends; ``detection-multilabel`` is Table 1's same-images control (issue 18):
#: a multi-label classifier on the detection pre-training's images, with its epochs and IMAGENET-CLS initialisation
PRETRAIN_ORDER = ("imagenet-cls", "detection", "scratch", SAME_IMAGES)


def map_frame(result: dict) -> pd.DataFrame:
    """Long table of mAP (percent) per fine-tuning run and IoU threshold.

    Returns:
        columns ``pretrain, replicate, seed, iou, mAP, run`` (``run`` = first 10 hex digits of the config hash); one
        row per (run, threshold).
    """
    rows = []
    for r in result["runs"]:
        m = r["metrics"]
        for iou, value in zip(m["iou_thresholds"], m["mAP"]):
            rows.append({"pretrain": r["pretrain"], "replicate": int(r.get("replicate", 0)), "seed": r["seed"],
                         "iou": round(float(iou), 2), "mAP": float(value) if value is not None else math.nan,
                         "run": r["hash"][:10]})
    return pd.DataFrame(rows)


def _at(frame: pd.DataFrame, iou: float) -> pd.DataFrame:
    return frame[np.isclose(frame["iou"], iou)]


def table1(result: dict) -> pd.DataFrame:
    """Our Table 1: mAP@0.5 and mAP@0.7 per pre-training (mean and sample sd over its fine-tuning runs) beside the
    paper's.

    Returns:
        one row per pre-training with columns ``pre-training``, ``paper role``, ``replicates`` (pre-training runs),
        ``runs`` (fine-tunings), ``mAP@0.5``, ``sd@0.5``, ``mAP@0.7``, ``sd@0.7``, ``paper mAP@0.5``,
        ``paper mAP@0.7`` (NaN where the paper has none).
    """
    frame = map_frame(result)
    rows = []
    for pretrain in [p for p in PRETRAIN_ORDER if p in set(frame["pretrain"])]:
        sub = frame[frame["pretrain"] == pretrain]
        role = ROLE_NAMES.get(pretrain, pretrain)
        paper = TABLE1.get(role, (math.nan, math.nan))
        row = {"pre-training": pretrain, "paper role": role, "replicates": sub["replicate"].nunique(),
               "runs": len(sub.drop_duplicates(["replicate", "seed"]))}
        for iou in (0.5, 0.7):
            vals = _at(sub, iou)["mAP"]
            row[f"mAP@{iou}"] = vals.mean()
            row[f"sd@{iou}"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
        row["paper mAP@0.5"], row["paper mAP@0.7"] = paper
        rows.append(row)
    return pd.DataFrame(rows)


def gap_units(result: dict, better: str = "detection", baseline: str = "imagenet-cls") -> pd.DataFrame:
    """Paired mAP gaps ``better - baseline`` per unit and IoU threshold (:func:`~detpretrain.analysis.claims.
    paired_units`): columns ``replicate, seed, iou, diff`` (mAP points)."""
    frame = map_frame(result).rename(columns={"mAP": "value"})
    return paired_units(frame, better, baseline, keys=("iou",))


def gap_by_iou(result: dict, better: str = "detection", baseline: str = "imagenet-cls") -> pd.DataFrame:
    """mAP gap ``better - baseline`` per IoU threshold, paired by pre-training replicate and fine-tuning seed, with
    its 95 % interval over pre-training runs (:func:`~detpretrain.analysis.claims.unit_verdict`).

    The paper states its finding in absolute mAP points (Table 1), and so does this table: a constant absolute gap
    grows in relative terms as the baseline's mAP falls with the threshold, by arithmetic alone, so no relative
    column is given; the change of the gap with the threshold is :func:`gap_slope`'s.

    Returns:
        columns ``iou, gap, 95% CI low, 95% CI high, n, unit, baseline mAP`` (gap in mAP points).
    """
    units = gap_units(result, better, baseline)
    base = map_frame(result)
    base = base[base["pretrain"] == baseline].groupby("iou")["mAP"].mean()
    rows = []
    for iou, part in units.groupby("iou"):
        v = unit_verdict(part)
        rows.append({"iou": iou, "gap": v.estimate, "95% CI low": v.ci_low, "95% CI high": v.ci_high, "n": v.n,
                     "unit": v.unit, "baseline mAP": float(base.get(iou, math.nan))})
    return pd.DataFrame(rows, columns=["iou", "gap", "95% CI low", "95% CI high", "n", "unit", "baseline mAP"])


#: the IoU range over which the gap's slope is fitted (the paper's "high IoU" range; 0.9 is near zero for all)
SLOPE_RANGE = (0.5, 0.8)


def gap_slope(result: dict, better: str = "detection", baseline: str = "imagenet-cls",
              ious=SLOPE_RANGE) -> pd.DataFrame:
    """Per unit, the least-squares slope of the paired mAP gap against the IoU threshold over ``ious`` (inclusive),
    in mAP points per 0.1 IoU: positive when the gap grows with the threshold (Figure 1's claim, without the
    arithmetic of a relative gain).

    Returns:
        columns ``replicate, seed, diff`` (the slope; units with fewer than two thresholds dropped).
    """
    units = gap_units(result, better, baseline)
    marks = dict(units.attrs)  # e.g. an arm with a single replicate (claims.paired_units)
    units = units[(units["iou"] >= ious[0] - 1e-9) & (units["iou"] <= ious[1] + 1e-9)]
    rows = []
    for (rep, seed), part in units.groupby(["replicate", "seed"]):
        if part["iou"].nunique() > 1:
            rows.append({"replicate": rep, "seed": seed,
                         "diff": 0.1 * float(np.polyfit(part["iou"].to_numpy(float), part["diff"].to_numpy(float),
                                                        1)[0])})
    out = pd.DataFrame(rows, columns=["replicate", "seed", "diff"])
    out.attrs.update(marks)
    return out


#: score at which a stored detection counts for :func:`object_ious` (an operating point, as in Figure 8)
SCORE_THRESH = 0.5
#: the IoU at which a detector "finds" an object (the VOC rule)
FOUND_IOU = 0.5


def _stored_detections(runs: list[dict], data_cache=None) -> tuple[list[dict] | None, dict | None]:
    """The stored detections of ``runs`` (None if a run kept none) and the COCO ground truth of the split they were
    evaluated on (the first run's ``data.eval_split``: test for the chapters' runs, val for a schedule selection)."""
    import json
    from pathlib import Path

    from detpretrain.config import from_dict
    from detpretrain.data.builders import build_detection_dataset
    from detpretrain.data.coco import to_coco_gt
    from detpretrain.runs import load_predictions

    stored = [load_predictions(r["run"]) for r in runs]
    if any(p is None for p in stored):
        return None, None
    config = from_dict(json.loads((Path(runs[0]["run"]) / "config.json").read_text(encoding="utf-8")))
    gt = to_coco_gt(build_detection_dataset(config.data, config.data.eval_split, train=False, cache=data_cache))
    return stored, gt


def object_ious(result: dict, pretrains=("imagenet-cls", "detection"), *, data_cache=None,
                score_thresh: float = SCORE_THRESH) -> pd.DataFrame | None:
    """Every non-difficult test object's best same-class IoU under each fine-tuned detector, from the detections the
    runs stored (``detections.npz``, :func:`detpretrain.runs.load_predictions`; nothing is re-run).

    Args:
        pretrains: the arms whose runs are read.
        data_cache: the corpus cache of a synthetic target (the ground truth is read from the test split).
        score_thresh: detections scoring below this are ignored (:func:`~detpretrain.analysis.visualisation.
            best_iou_per_object`).

    Returns:
        columns ``pretrain, replicate, seed, object, iou``, or None when a run of these arms stored no detections
        (trained before they were kept).
    """
    from detpretrain.analysis.visualisation import best_iou_per_object

    runs = [r for r in result["runs"] if r["pretrain"] in pretrains]
    if not runs:
        return None
    stored, gt = _stored_detections(runs, data_cache)
    if stored is None:
        return None
    by_image: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        if not a.get("ignore", 0):
            by_image.setdefault(int(a["image_id"]), []).append(a)
    rows = []
    for r, pred in zip(runs, stored):
        ends = np.cumsum(pred["counts"])
        spans = {int(i): (e - c, e) for i, c, e in zip(pred["image_ids"], pred["counts"], ends)}
        for image_id, anns in by_image.items():
            lo, hi = spans.get(image_id, (0, 0))
            boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=np.float32)
            ious = best_iou_per_object(boxes, [a["category_id"] for a in anns], pred["boxes"][lo:hi].astype(np.float32),
                                       pred["labels"][lo:hi], pred["scores"][lo:hi].astype(np.float32), score_thresh)
            rows += [{"pretrain": r["pretrain"], "replicate": int(r.get("replicate", 0)), "seed": r["seed"],
                      "object": int(a["id"]), "iou": float(v)} for a, v in zip(anns, ious)]
    return pd.DataFrame(rows, columns=["pretrain", "replicate", "seed", "object", "iou"])


def paired_iou(objects: pd.DataFrame, better: str = "detection", baseline: str = "imagenet-cls",
               found: float = FOUND_IOU) -> pd.DataFrame:
    """Per unit, the mean paired IoU gain ``better - baseline`` on the objects BOTH detectors find (best IoU >=
    ``found`` under each): how much tighter the boxes are where both succeed, apart from which objects each finds.

    Args:
        objects: :func:`object_ious`' frame.

    Returns:
        columns ``replicate, seed, diff, objects`` (IoU points x 100; ``objects``: how many both found).
    """
    pairs = paired_units(objects.rename(columns={"iou": "value"}), better, baseline, keys=("object",), values=True)
    both = pairs[(pairs["treatment"] >= found) & (pairs["control"] >= found)]
    per_unit = both.groupby(["replicate", "seed"]).agg(diff=("diff", "mean"), objects=("diff", "size")).reset_index()
    out = per_unit.assign(diff=100.0 * per_unit["diff"])[["replicate", "seed", "diff", "objects"]]
    out.attrs.update(pairs.attrs)  # e.g. an arm with a single replicate (claims.paired_units)
    return out


def schedule_table(results: dict, better: str = "detection", baseline: str = "imagenet-cls") -> pd.DataFrame:
    """The schedule check: the paired gap at IoU 0.5 and 0.7 and its growth, per fine-tuning schedule, with 95 %
    intervals over pre-training runs. A gap that shrinks at a longer schedule was a head start, not a converged
    advantage.

    Args:
        results: ``{factor: result}`` of :func:`~detpretrain.experiments.detection.run_detection_experiment` at
            ``factor`` x the profile's epochs (the 1x result is the chapter's own); only the fine-tuning seeds every
            schedule has are compared (the longer schedules run the first seed).

    Returns:
        one row per schedule and measure: ``schedule``, ``measure``, ``estimate``, ``95% CI low``, ``95% CI high``,
        ``n``, ``unit``, ``runs`` (fine-tunings per arm), ``baseline mAP@0.5``.
    """
    common = set.intersection(*({r["seed"] for r in res["runs"]} for res in results.values())) if results else set()
    rows = []
    for factor, res in results.items():
        res = {**res, "runs": [r for r in res["runs"] if r["seed"] in common]}  # the same seeds at every schedule
        base = map_frame(res)
        base = base[base["pretrain"] == baseline]
        for measure, v in _gap_measures(res, better, baseline).items():
            rows.append({"schedule": f"{factor}x", "measure": measure, "estimate": v.estimate,
                         "95% CI low": v.ci_low, "95% CI high": v.ci_high, "n": v.n, "unit": v.unit,
                         "runs": v.n_units, "baseline mAP@0.5": _at(base, 0.5)["mAP"].mean()})
    return pd.DataFrame(rows)


def _gap_measures(result: dict, better: str, baseline: str) -> dict[str, Verdict]:
    units = gap_units(result, better, baseline)
    return {"gap at IoU 0.5": unit_verdict(units[np.isclose(units["iou"], 0.5)]),
            "gap at IoU 0.7": unit_verdict(units[np.isclose(units["iou"], 0.7)]),
            "growth 0.5 → 0.7": unit_verdict(growth(units, 0.5, 0.7))}


def detection_claims(result: dict, *, schedules: dict | None = None, objects: pd.DataFrame | None = None,
                     better: str = "detection", baseline: str = "imagenet-cls") -> dict[str, Verdict]:
    """The detection chapter's claims, primary first (:data:`~detpretrain.analysis.claims.PRIMARY_CLAIMS`
    ``["detection"]``: the gap grows from IoU 0.5 to 0.7, the paper's +2.2 -> +4.4), each a verdict over
    pre-training runs:

    * the primary: per unit, gap@0.7 - gap@0.5 (mAP points);
    * the gap at IoU 0.5 and at 0.7 (> 0: detection pre-training helps at all);
    * the slope of the gap over IoU 0.5-0.8 (:func:`gap_slope`, points per 0.1 IoU);
    * the paired IoU on objects both detectors find (:func:`paired_iou`; needs ``objects``);
    * for each longer schedule of ``schedules`` (``{factor: result}``, factor > 1): its gap at 0.7 and growth;
    * where ``result`` has Table 1's same-images control (:data:`~detpretrain.experiments.common.SAME_IMAGES`, as
      Table 7 has IMAGENET-LOC (Cls)): ``better`` against it at IoU 0.7 and the growth of that gap from 0.5 to 0.7.
      The two saw the same images for the same epochs from the same IMAGENET-CLS run; only the boxes differ, so a
      gap there is the detection *task*, not the images or the extra training.

    Returns:
        ``{claim: Verdict}`` for :func:`~detpretrain.analysis.claims.claims_frame`.
    """
    primary = PRIMARY_CLAIMS["detection"]
    measures = _gap_measures(result, better, baseline)
    claims = {primary.name: unit_verdict(growth(gap_units(result, better, baseline), 0.5, 0.7), claim=primary),
              "detection pre-training helps at IoU 0.5": measures["gap at IoU 0.5"],
              "detection pre-training helps at IoU 0.7": measures["gap at IoU 0.7"],
              f"the gap's slope over IoU {SLOPE_RANGE[0]}-{SLOPE_RANGE[1]} is positive":
                  unit_verdict(gap_slope(result, better, baseline))}
    if objects is not None:
        claims["tighter boxes on objects both find (IoU x 100)"] = unit_verdict(paired_iou(objects, better, baseline))
    if SAME_IMAGES in {r["pretrain"] for r in result["runs"]}:
        control = _gap_measures(result, better, SAME_IMAGES)
        claims[f"same images: {better} beats {ROLE_NAMES[SAME_IMAGES]} at IoU 0.7"] = control["gap at IoU 0.7"]
        claims[f"same images: the gap over {ROLE_NAMES[SAME_IMAGES]} grows from 0.5 to 0.7"] = \
            control["growth 0.5 → 0.7"]
    for factor, res in (schedules or {}).items():
        if factor != 1:
            m = _gap_measures(res, better, baseline)
            claims[f"{factor}x schedule: helps at IoU 0.7"] = m["gap at IoU 0.7"]
            claims[f"{factor}x schedule: the gap grows from 0.5 to 0.7"] = m["growth 0.5 → 0.7"]
    return claims


def per_class_ap(result: dict, iou: float = 0.7) -> pd.DataFrame:
    """AP (percent) per class of the target at IoU ``iou``, mean over seeds, one column per pre-training.

    Runs not evaluated at ``iou`` are left out.

    Returns:
        a DataFrame indexed by class name, columns = pre-training keys (sorted), values = mean AP over seeds (NaN
        where a class has no AP).
    """
    rows = []
    for r in result["runs"]:
        m = r["metrics"]
        ious = [round(float(t), 2) for t in m["iou_thresholds"]]
        if round(iou, 2) not in ious:
            continue
        k = ious.index(round(iou, 2))
        for cls, aps in m["per_class_AP"].items():
            rows.append({"class": cls, "pretrain": r["pretrain"], "seed": r["seed"], "AP": aps[k]})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    frame["AP"] = frame["AP"].astype(float)
    return frame.pivot_table(index="class", columns="pretrain", values="AP", aggfunc="mean")


def _train_minutes(metrics: dict) -> float:
    return sum(h["seconds"] for h in metrics["history"]) / 60


def training_time_table(result: dict) -> pd.DataFrame:
    """Where the training time of a detection experiment went: one row per pre-training run and per fine-tuned
    backbone (its seeds summed), minutes of training (the epochs' seconds, evaluation excluded) and the device.

    Args:
        result: :func:`~detpretrain.experiments.detection.run_detection_experiment`'s dict (``pretrain_runs``:
            ``{name: run folder}``, read from the folders' ``metrics.json``).

    Returns:
        columns ``run, runs, training (min), device``.
    """
    import json
    from pathlib import Path

    rows = []
    for name, path in result.get("pretrain_runs", {}).items():
        m = json.loads((Path(path) / "metrics.json").read_text())
        rows.append({"run": f"pre-training: {name}", "runs": 1, "training (min)": _train_minutes(m),
                     "device": m["device"]})
    for pretrain in dict.fromkeys(r["pretrain"] for r in result["runs"]):
        ms = [r["metrics"] for r in result["runs"] if r["pretrain"] == pretrain]
        rows.append({"run": f"fine-tuning from {pretrain}", "runs": len(ms),
                     "training (min)": sum(map(_train_minutes, ms)), "device": ms[0]["device"]})
    return pd.DataFrame(rows, columns=["run", "runs", "training (min)", "device"])


def training_time_sentence(result: dict) -> str:
    """The total of :func:`training_time_table`, in minutes, as the introduction says it."""
    total = training_time_table(result)["training (min)"].sum()
    return (f"In all **{total:.1f} minutes** of training for profile `{result['profile']}` (corpus generation, "
            "evaluation and rendering come on top).")


def results_overview(result: dict) -> pd.DataFrame:
    """The introduction's Table 1 summary: the paper's numbers for the roles of our backbones beside ours
    (``mean ± sd`` over fine-tuning runs, or ``not run``). Paper numbers come from :mod:`detpretrain.paper`.

    Returns:
        columns ``claim, paper, ours`` (strings).
    """
    t1 = table1(result).set_index("pre-training")

    def ours(pretrain: str, iou: float) -> str:
        if pretrain not in t1.index:
            return "not run"
        mean, sd = t1.loc[pretrain, f"mAP@{iou}"], t1.loc[pretrain, f"sd@{iou}"]
        return f"{mean:.1f}" + (f" ± {sd:.1f}" if sd == sd else "")

    rows = []
    for pretrain in ("imagenet-cls", "detection"):
        role = ROLE_NAMES[pretrain]
        label = role if pretrain == "imagenet-cls" else f"{role} (detection)"
        for k, iou in enumerate((0.5, 0.7)):
            rows.append({"claim": f"Table 1: {label}, mAP@{iou}", "paper": f"{TABLE1[role][k]:.1f}",
                         "ours": ours(pretrain, iou)})
    rows.append({"claim": "from scratch, mAP@0.5 / mAP@0.7", "paper": "–",
                 "ours": f"{ours('scratch', 0.5)} / {ours('scratch', 0.7)}"})
    return pd.DataFrame(rows)


def plot_map_vs_iou(result: dict, ax=None, paper: bool = True, title: str | None = None):
    """Figure 1's analogue: mAP (%) against the IoU threshold, one line per pre-training, mean ± sd over seeds.

    Args:
        ax: a matplotlib Axes (default: a new figure).
        paper: also mark the paper's Table 1 values at IoU 0.5 and 0.7 (hollow markers).
        title: the Axes title; default the result's :func:`detpretrain.chapter.provenance` line.

    Returns:
        the Axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = map_frame(result)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    order = [p for p in PRETRAIN_ORDER if p in set(frame["pretrain"])]
    colours = sns.color_palette("colorblind")  # blue, orange, green, purple: COCO (Cls) apart from COCO's orange
    palette = dict(zip(PRETRAIN_ORDER, (colours[0], colours[1], colours[2], colours[4])))
    sns.lineplot(data=frame.assign(pretraining=frame["pretrain"].map(role_label)), x="iou", y="mAP",
                 hue="pretraining", hue_order=[role_label(p) for p in order], errorbar="sd", marker="o",
                 palette={role_label(p): palette[p] for p in order}, ax=ax)
    if paper:
        for pretrain in order:
            role = ROLE_NAMES.get(pretrain)
            if role in TABLE1:
                ax.scatter([0.5, 0.7], TABLE1[role], marker="D", facecolors="none", edgecolors=palette[pretrain],
                           s=60, label=f"paper: {role}")
    ax.set_xlabel("IoU threshold")
    ax.set_ylabel("mAP (%), VOC07 11-point" if result["runs"][0]["metrics"].get("metric") == "voc07" else "mAP (%)")
    ax.set_xticks(sorted(frame["iou"].unique()))
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(textwrap.fill(title if title is not None else provenance(result), 120), fontsize=7, loc="left")
    return ax


def regime_prediction(result: dict, arm: str = "imagenet-cls", *, data_cache=None, n_boot: int = 1000,
                      seed: int = 0, alpha: float = 0.05) -> pd.DataFrame:
    """Would the test split meet the regime? The selection rule of the detection fine-tuning schedule
    (``profiles.py``, issue 17), from runs that fine-tuned on the target's train split and were evaluated on its
    VAL split: for mAP@0.5 and for mAP@0.7 / mAP@0.5, the one-sided 95 % lower prediction bound of the mean of the
    test-split runs (:func:`~detpretrain.analysis.stats.prediction_lower_bound`), against the regime's thresholds
    (:data:`~detpretrain.analysis.claims.REGIME_MIN_MAP50`, :data:`~detpretrain.analysis.claims.REGIME_MIN_RATIO`).

    The replicate values are the runs' own metrics (VOC07 11-point AP, as the chapters'); for the ratio, each run's
    mAP@0.7 / mAP@0.5 (their mean; :func:`~detpretrain.analysis.claims.detection_regime` checks the ratio of the
    means, which differs from it by less than 0.01 on the selection's runs). The image part is the standard deviation
    of that mean over ``n_boot`` image resamples of the val split, the same resample for every run
    (:func:`~detpretrain.evaluation.detection.bootstrap_map` on the stored detections, whose boxes and scores are
    float16: a resampled value can differ from the metrics' by rounding and the ties it makes). With 1,000 resamples
    the image sd itself carries a Monte Carlo error of about 2 %, so a bound within ~0.1 mAP of a threshold is
    decided by the fixed seed, not by the data.

    Args:
        result: :func:`~detpretrain.experiments.detection.run_detection_experiment`'s dict; its ``arm`` runs are
            used (one per pre-training replicate).
        data_cache: the corpus cache of a synthetic target.
        n_boot, seed: image resamples and their generator's seed.
        alpha: one-sided level of the bound.

    Returns:
        one row per measure: ``measure``, ``runs``, ``values`` (per run, comma-separated), ``mean``,
        ``replicate sd``, ``image sd``, ``df``, ``margin``, ``bound``, ``threshold``, ``meets`` (bool).

    Raises:
        ValueError: fewer than 2 runs of ``arm``, two runs of one pre-training replicate (seeds are not replicates),
            a run not scored on the val split (a selection never reads test), runs on different data, or a run that
            kept no detections.
    """
    from detpretrain.analysis.claims import REGIME_MIN_MAP50, REGIME_MIN_RATIO, map_at
    from detpretrain.analysis.stats import prediction_lower_bound
    from detpretrain.evaluation.detection import bootstrap_map, stored_to_coco_results

    runs = sorted((r for r in result["runs"] if r["pretrain"] == arm), key=lambda r: (r.get("replicate", 0), r["seed"]))
    if len(runs) < 2:
        raise ValueError(f"a regime prediction needs >= 2 runs of the {arm} arm (pre-training replicates), "
                         f"got {len(runs)}")
    replicates = [int(r.get("replicate", 0)) for r in runs]
    if len(set(replicates)) != len(replicates):
        raise ValueError(f"a regime prediction needs one run per pre-training replicate; replicates {replicates} "
                         "(several fine-tuning seeds of one replicate are not independent replicates)")
    splits = {r["metrics"].get("eval_split") for r in runs}
    if splits != {"val"}:
        raise ValueError(f"a regime prediction reads runs scored on the val split only, got {sorted(map(str, splits))}"
                         " (a schedule chosen on test is chosen on the verdict)")
    if len({r["metrics"].get("num_eval_images") for r in runs}) != 1:
        raise ValueError("the runs were scored on different numbers of val images: not one val split")
    stored, gt = _stored_detections(runs, data_cache)
    if stored is None:
        raise ValueError(f"a run of the {arm} arm kept no detections (trained before they were kept); retrain it")
    metric = runs[0]["metrics"].get("metric", "voc07")
    draws = np.random.default_rng(seed).integers(0, len(gt["images"]), size=(n_boot, len(gt["images"])))
    boot = np.stack([bootstrap_map(gt, stored_to_coco_results(p), [0.5, 0.7], draws, metric) for p in stored])
    m50_runs = np.array([map_at(r["metrics"], 0.5) for r in runs])
    m70_runs = np.array([map_at(r["metrics"], 0.7) for r in runs])
    with np.errstate(divide="ignore", invalid="ignore"):  # [B] per measure: the mean over runs of each resample
        values = {"mAP@0.5": (m50_runs, boot[:, :, 0].mean(axis=0), REGIME_MIN_MAP50),
                  "mAP@0.7 / mAP@0.5": (m70_runs / m50_runs, (boot[:, :, 1] / boot[:, :, 0]).mean(axis=0),
                                        REGIME_MIN_RATIO)}
    rows = []
    for measure, (per_run, resampled, threshold) in values.items():
        if not (np.isfinite(per_run).all() and np.isfinite(resampled).all()):
            # a ratio with an mAP@0.5 of 0 (in a run, or in a resample): undefined, so it cannot meet; dropping
            # those resamples would shrink the sd
            rows.append({"measure": measure, "runs": len(per_run), "values": ", ".join(f"{v:.3g}" for v in per_run),
                         "mean": float(np.mean(per_run)), "replicate sd": math.nan, "image sd": math.nan,
                         "df": math.nan, "margin": math.nan, "bound": math.nan, "threshold": threshold,
                         "meets": False})
            continue
        b = prediction_lower_bound(per_run, float(np.std(resampled, ddof=1)), alpha=alpha)
        rows.append({"measure": measure, "runs": b.n_replicates, "values": ", ".join(f"{v:.3g}" for v in per_run),
                     "mean": b.mean, "replicate sd": b.replicate_sd, "image sd": b.image_sd, "df": b.df,
                     "margin": b.margin, "bound": b.bound, "threshold": threshold, "meets": bool(b.bound >= threshold)})
    return pd.DataFrame(rows)
