"""Tables, figures and verdicts for the detection chapter (Section 2.1, Table 1, Figure 1 of Li et al. 2019).

All functions take the dict returned by :func:`detpretrain.experiments.detection.run_detection_experiment` ("result"):
``{"profile", "dataset", "data", "runs": [{"pretrain", "seed", "hash", "metrics": {"iou_thresholds", "mAP", ...}}]}``.
AP values are in percent.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from detpretrain.chapter import provenance
from detpretrain.paper import GAP_AT_05, GAP_AT_07, ROLE_NAMES, TABLE1

PRETRAIN_ORDER = ("imagenet-cls", "detection", "scratch")


def map_frame(result: dict) -> pd.DataFrame:
    """Long table of mAP (percent) per fine-tuning run and IoU threshold.

    Returns:
        columns ``pretrain, seed, iou, mAP, run`` (``run`` = first 10 hex digits of the config hash); one row per
        (run, threshold).
    """
    rows = []
    for r in result["runs"]:
        m = r["metrics"]
        for iou, value in zip(m["iou_thresholds"], m["mAP"]):
            rows.append({"pretrain": r["pretrain"], "seed": r["seed"], "iou": round(float(iou), 2),
                         "mAP": float(value) if value is not None else math.nan, "run": r["hash"][:10]})
    return pd.DataFrame(rows)


def _at(frame: pd.DataFrame, iou: float) -> pd.DataFrame:
    return frame[np.isclose(frame["iou"], iou)]


def table1(result: dict) -> pd.DataFrame:
    """Our Table 1: mAP@0.5 and mAP@0.7 per pre-training (mean and sample std over seeds) beside the paper's.

    Returns:
        one row per pre-training with columns ``pre-training``, ``paper role``, ``seeds``, ``mAP@0.5``,
        ``sd@0.5``, ``mAP@0.7``, ``sd@0.7``, ``paper mAP@0.5``, ``paper mAP@0.7`` (NaN where the paper has none).
    """
    frame = map_frame(result)
    rows = []
    for pretrain in [p for p in PRETRAIN_ORDER if p in set(frame["pretrain"])]:
        sub = frame[frame["pretrain"] == pretrain]
        role = ROLE_NAMES.get(pretrain, pretrain)
        paper = TABLE1.get(role, (math.nan, math.nan))
        row = {"pre-training": pretrain, "paper role": role, "seeds": sub["seed"].nunique()}
        for iou in (0.5, 0.7):
            vals = _at(sub, iou)["mAP"]
            row[f"mAP@{iou}"] = vals.mean()
            row[f"sd@{iou}"] = vals.std(ddof=1) if len(vals) > 1 else math.nan
        row["paper mAP@0.5"], row["paper mAP@0.7"] = paper
        rows.append(row)
    return pd.DataFrame(rows)


def gap_by_iou(result: dict, better: str = "detection", baseline: str = "imagenet-cls") -> pd.DataFrame:
    """mAP gap ``better - baseline`` per IoU threshold, paired by seed (same seed = same fine-tuning data order).

    The paper states its finding in absolute mAP points (Table 1). Where the baseline's mAP is far below the paper's
    (ours at 0.7 is a fraction of its 76.3), absolute gaps shrink with the baseline, so the relative gain
    ``gap / baseline mAP`` is given beside it as a second, clearly separate reading.

    Returns:
        columns ``iou, gap, sd, seeds, baseline mAP, relative gain (%)`` (gap in mAP points, mean over seeds;
        sd = sample std of the paired gaps; relative gain = 100 * mean gap / mean baseline mAP).
    """
    frame = map_frame(result)
    a = frame[frame["pretrain"] == better].set_index(["seed", "iou"])["mAP"]
    b = frame[frame["pretrain"] == baseline].set_index(["seed", "iou"])["mAP"]
    paired = (a - b).dropna().reset_index()
    out = paired.groupby("iou")["mAP"].agg(gap="mean", sd=lambda s: s.std(ddof=1) if len(s) > 1 else math.nan,
                                           seeds="count").reset_index()
    base = b.groupby("iou").mean()
    out["baseline mAP"] = [float(base.get(i, math.nan)) for i in out["iou"]]
    out["relative gain (%)"] = [100.0 * g / m if m else math.nan for g, m in zip(out["gap"], out["baseline mAP"])]
    return out


def high_iou_verdict(result: dict, low: float = 0.5, high: float = 0.7) -> dict:
    """Does the paper's finding hold here: does detection pre-training's advantage grow with the IoU threshold?

    The paper (Table 1, Figure 1): COCO (our detection pre-training's role) over IMAGENET-CLS is
    :data:`~detpretrain.paper.GAP_AT_05` (+2.2) at IoU 0.5 and :data:`~detpretrain.paper.GAP_AT_07` (+4.4) at 0.7. We
    compare the
    paired per-seed gaps at ``low`` and ``high``: the finding *holds* if the mean gap at ``high`` exceeds the one at
    ``low`` by more than the standard error of the difference (``sd / sqrt(seeds)``, sd of the per-seed
    differences); *reversed* if it is smaller by more than that; otherwise *not resolved* at this number of seeds.

    Returns:
        {"gap_low", "gap_high", "growth", "stderr", "seeds", "verdict", "sentence"} with gaps in mAP points.
    """
    frame = map_frame(result)
    det = frame[frame["pretrain"] == "detection"].set_index(["seed", "iou"])["mAP"]
    cls = frame[frame["pretrain"] == "imagenet-cls"].set_index(["seed", "iou"])["mAP"]
    gaps = (det - cls).unstack("iou")
    lo_col = [c for c in gaps.columns if math.isclose(c, low)]
    hi_col = [c for c in gaps.columns if math.isclose(c, high)]
    if gaps.empty or not lo_col or not hi_col:
        return {"verdict": "missing", "sentence": "The comparison needs both the imagenet-cls and the detection "
                                                  f"backbones evaluated at IoU {low} and {high}."}
    growth_per_seed = gaps[hi_col[0]] - gaps[lo_col[0]]
    n = int(growth_per_seed.count())
    growth = float(growth_per_seed.mean())
    stderr = float(growth_per_seed.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    gap_low, gap_high = float(gaps[lo_col[0]].mean()), float(gaps[hi_col[0]].mean())
    if n > 1 and growth > stderr:
        verdict = "holds"
    elif n > 1 and growth < -stderr:
        verdict = "reversed"
    else:
        verdict = "not resolved"
    se_text = f" ± {stderr:.1f} (standard error over {n} seeds)" if n > 1 else " (1 seed: no spread to judge by)"
    sentence = (f"Detection pre-training is {gap_low:+.1f} mAP points over IMAGENET-CLS-style pre-training at IoU "
                f"{low} and {gap_high:+.1f} at IoU {high}; the gap changes by {growth:+.1f}{se_text}. "
                f"Verdict on the paper's finding (the gap grows with the IoU threshold: {ROLE_NAMES['detection']} "
                f"{GAP_AT_05:+.1f} -> {GAP_AT_07:+.1f}): **{verdict}**.")
    return {"gap_low": gap_low, "gap_high": gap_high, "growth": growth, "stderr": stderr, "seeds": n,
            "verdict": verdict, "sentence": sentence}


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
    """The introduction's summary: the paper's Table 1 numbers for the roles of our backbones beside ours
    (``mean ± sd`` over seeds, or ``not run``) and Figure 1's claim (the gap grows with the IoU threshold) with its
    verdict (:func:`high_iou_verdict`). Paper numbers come from :mod:`detpretrain.paper`.

    Returns:
        columns ``claim, paper, ours`` (strings).
    """
    t1 = table1(result).set_index("pre-training")
    verdict = high_iou_verdict(result)

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
    rows.append({"claim": "Figure 1: detection - classification gap grows with IoU",
                 "paper": f"{GAP_AT_05:+.1f} → {GAP_AT_07:+.1f} ({ROLE_NAMES['detection']})",
                 "ours": (f"{verdict['gap_low']:+.1f} → {verdict['gap_high']:+.1f}: {verdict['verdict']}"
                          if "gap_low" in verdict else verdict["verdict"])})
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
    palette = dict(zip(PRETRAIN_ORDER, sns.color_palette("colorblind", 3)))
    sns.lineplot(data=frame, x="iou", y="mAP", hue="pretrain", hue_order=order, errorbar="sd", marker="o",
                 palette=palette, ax=ax)
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
    ax.set_title(title if title is not None else provenance(result), fontsize=7, loc="left")
    return ax
