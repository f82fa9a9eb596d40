"""Each chapter's primary claim, declared before its result; runs paired into units; the regime check.

A chapter tests one **primary claim**, declared here (:data:`PRIMARY_CLAIMS`) before any run exists: the paper's
claim attributed to its authors, the paper's number, what our estimate measures, the expected direction and the kind
of test. Its other claims are secondary and Holm-adjusted among themselves (:func:`detpretrain.analysis.stats.
adjust_claims`); the chapter shows the whole table (:func:`claims_frame`). Every label comes from
:mod:`detpretrain.analysis.stats`.

The unit of a claim about pre-training is the **pre-training run** (Bouthillier et al. 2021): fine-tuning runs are
paired by ``(replicate, seed)`` (:func:`paired_units`) -- fine-tuning seed ``s`` from replicate ``r`` of one
pre-training against fine-tuning seed ``s`` from replicate ``r`` of the other -- and :func:`unit_verdict` averages the
differences within each replicate before the t-interval over replicates (:func:`~detpretrain.analysis.stats.verdict`
with ``groups``). An arm trained from random weights (``scratch``) has no pre-training: in a replicated design its
replicate ``r`` is an independent training run (:func:`detpretrain.experiments.common.scratch_seed`), paired with
replicate ``r`` of the other arm, so the interval holds the run-to-run spread of both arms. Where an arm has a single
replicate while the other has several (published weights, or a store from before), it pairs by seed with every
replicate of the other arm, and its own run-to-run spread is then missing from the interval: the verdict says so
and counts as unreplicated (``replicated=False``): its label is about these networks, and the claim about
pre-training is *not resolved* (:attr:`~detpretrain.analysis.stats.Verdict.claim_label`).

**Regime.** A comparison of pre-trainings means what the paper's does only when the detectors are trained well
enough: :func:`detection_regime` asks the IMAGENET-CLS-arm detector for at least :data:`REGIME_MIN_MAP50` mAP@0.5 and
mAP@0.7 / mAP@0.5 >= :data:`REGIME_MIN_RATIO` (the paper: 84.6 and 0.90); a chapter whose runs fall short prints
"regime inadequate: ..." instead of a verdict (:func:`answer`, :func:`claims_frame`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from detpretrain.analysis.stats import Verdict, claims_table, verdict
from detpretrain.paper import GAP_AT_05, GAP_AT_07, SEG_GAIN, TABLE2, TABLE8

#: the unit of replication of a claim about pre-training
PRETRAINING_UNIT = "pre-training run"
#: the unit within it (one fine-tuning run, named by its seed, of a pre-training run)
SEED_UNIT = "fine-tuning run"
#: the unit of a claim about detectors trained from scratch (no pre-training to replicate: each seed is a training run)
SCRATCH_UNIT = "from-scratch training run"
#: the unit of a claim measured on the test images of one pre-trained network per backbone (conditional on them)
IMAGE_UNIT = "test image"

#: the least mAP@0.5 (percent) of the IMAGENET-CLS-arm detector for a detection verdict (the paper: 84.6)
REGIME_MIN_MAP50 = 60.0
#: the least mAP@0.7 / mAP@0.5 of that detector: the share of its detections that are precise (the paper: 0.90)
REGIME_MIN_RATIO = 0.5
#: the label a claim gets where the regime is inadequate (shown instead of the verdict's)
REGIME_LABEL = "regime inadequate"
#: the label column of a table of verdicts shown before the chapter's claims table adjusts them (Holm)
UNADJUSTED_LABEL = "label (unadjusted)"


@dataclasses.dataclass(frozen=True)
class Claim:
    """A chapter's primary claim, declared before the result.

    Attributes:
        chapter: the chapter (``book/<chapter>.py``).
        name: the claim's row in the chapter's claims table.
        question: the chapter's title, a question (the paper's claim as the paper's, never as our finding).
        claim: the paper's claim, attributed (``"Li et al.: ..."``).
        source: where the paper makes it.
        paper: the paper's number(s), in words.
        paper_value: the paper's value of our estimate's measure (NaN where the paper has no such number).
        measure: what our estimate is, in words (treatment minus control, units).
        expected: +1 if the claim is "treatment > control", -1 if "<".
        kind: ``"superiority"`` or ``"noninferiority"`` (:func:`~detpretrain.analysis.stats.verdict`).
        margin: the non-inferiority margin (units of the measure).
        unit: the unit of replication (``"pre-training run"``, or what one difference is for a claim that is not
            about pre-training).
    """

    chapter: str
    name: str
    question: str
    claim: str
    source: str
    paper: str
    paper_value: float
    measure: str
    expected: int = 1
    kind: str = "superiority"
    margin: float = 0.0
    unit: str = PRETRAINING_UNIT

    @property
    def test(self) -> dict:
        """The keyword arguments of :func:`~detpretrain.analysis.stats.verdict` this claim is tested with."""
        return {"expected": self.expected, "kind": self.kind, "margin": self.margin}


_TABLE2_GAINS = {sc: round(TABLE2["IMAGENET-LOC without Category"][sc] - TABLE2["IMAGENET-LOC (Cls)"][sc], 2)
                 for sc in TABLE2["IMAGENET-LOC (Cls)"]}
#: the margin (mAP@0.5 points) within which the narrower detector of the eigenspectrum chapter "keeps accuracy"
ACCURACY_KEPT_MARGIN = 1.0

#: ``{chapter: Claim}``: the one primary claim of every chapter that tests the papers' claims.
PRIMARY_CLAIMS: dict[str, Claim] = {c.chapter: c for c in (
    Claim("detection", "the gap grows from IoU 0.5 to 0.7",
          "Does detection pre-training help more at high IoU? (Li et al., Table 1, Figure 1)",
          "Li et al.: detection pre-training helps more at high IoU — its gain over IMAGENET-CLS pre-training grows "
          "from mAP@0.5 to mAP@0.7", "Section 2.1, Table 1, Figure 1",
          f"COCO over IMAGENET-CLS {GAP_AT_05:+.1f} mAP@0.5 and {GAP_AT_07:+.1f} mAP@0.7 on VOC 2007 test: the gap "
          f"grows by {GAP_AT_07 - GAP_AT_05:+.1f}", round(GAP_AT_07 - GAP_AT_05, 1),
          "mAP points, (detection − IMAGENET-CLS at IoU 0.7) − (the same at IoU 0.5)"),
    Claim("segmentation", "detection pre-training helps mIoU",
          "Does detection pre-training help semantic segmentation? (Li et al., Table 4)",
          "Li et al.: detection pre-training helps semantic segmentation", "Section 2.2, Table 4",
          f"OPENIMAGES over IMAGENET-CLS {SEG_GAIN:+.1f} mIoU on VOC 2012 val (Table 4 has no COCO row)", SEG_GAIN,
          "mIoU points, detection − IMAGENET-CLS pre-training"),
    Claim("ablations", "helps unseen categories",
          "Does detection pre-training help categories it never saw? (Li et al., Table 2)",
          "Li et al.: detection pre-training without a super-category still beats IMAGENET-LOC (Cls) on that "
          "super-category's classes at mAP@0.7", "Section 2.1, Table 2",
          ", ".join(f"{sc} {g:+.2f}" for sc, g in _TABLE2_GAINS.items())
          + f" mAP@0.7 on VOC (mean {float(np.mean(list(_TABLE2_GAINS.values()))):+.2f})",
          round(float(np.mean(list(_TABLE2_GAINS.values()))), 2),
          "mAP@0.7 points on the removed super-categories' classes (mean over them), detection pre-training "
          "without the category − IMAGENET-LOC (Cls)"),
    Claim("classification", "IMAGENET-CLS beats detection after fine-tuning (CALTECH-256 role)",
          "Does detection pre-training hurt image classification? (Li et al., Table 8)",
          "Li et al.: IMAGENET-CLS pre-training beats detection pre-training after fine-tuning on an image "
          "classification dataset", "Section 2.3, Table 8",
          f"CALTECH-256: IMAGENET-CLS {TABLE8['IMAGENET-CLS']['CALTECH-256']:.1f} vs COCO "
          f"{TABLE8['COCO']['CALTECH-256']:.1f} top-1",
          round(TABLE8["IMAGENET-CLS"]["CALTECH-256"] - TABLE8["COCO"]["CALTECH-256"], 1),
          "top-1 points on the CALTECH-256-role target, IMAGENET-CLS − detection pre-training"),
    Claim("eigenspectrum", "the determined widths keep accuracy",
          "Can the eigenspectrum set a detector's widths without losing accuracy? (Shinya et al. 2019)",
          "Shinya et al.: widths set from the intrinsic dimensionality cut ResNet-50's parameters by about 27 % "
          "without losing accuracy", "Shinya et al. 2019, width determination",
          "about −27 % parameters, MACs not increased, accuracy kept (no accuracy difference quoted)", 0.0,
          f"mAP@0.5 points, narrower from-scratch detector − from-scratch detector (kept: not worse by more than "
          f"{ACCURACY_KEPT_MARGIN:g})", kind="noninferiority", margin=ACCURACY_KEPT_MARGIN, unit=SCRATCH_UNIT),
    Claim("feature_space", "Figure 7: kNN agreement, IMAGENET-CLS minus COCO",
          "Are classes tighter in IMAGENET-CLS feature space than in detection feature space? (Li et al., Figure 7)",
          "Li et al.: features of one class cluster together in IMAGENET-CLS space, while detection (OPENIMAGES) "
          "features are fragmented", "Appendix 6.1, Figure 7", "a t-SNE picture, no number", math.nan,
          "points of k-nearest-neighbour class agreement of Conv5 features, IMAGENET-CLS − detection backbone, "
          "per pre-training replicate pair (its images nested in it; with one pair, a paired bootstrap over images)",
          unit=PRETRAINING_UNIT),
    Claim("visualisations", "part enrichment, IMAGENET-CLS minus COCO (channel mean)",
          "Does classification pre-training focus on discriminative parts? (Li et al., Figure 4)",
          "Li et al.: classification pre-training focuses on discriminative parts, detection pre-training on the "
          "entire spatial extent of objects (tested here: the first half; the chapter measures the second as "
          "activation mass on the rest of the object)", "Appendix 6.1, Figure 4", "activation maps, no number",
          math.nan,
          "enrichment of Conv4 (layer3) activation mass on the discriminative part, IMAGENET-CLS − detection "
          "backbone, over test images whose part spans a cell, per pre-training replicate pair (its images nested in "
          "it; with one pair, over images)", unit=PRETRAINING_UNIT),
    Claim("mechanisms", "Table 6 (CALTECH-256 role): the probe advantage shrinks without a part",
          "Do the paper's explanations survive a change of cue?",
          "Li et al.: classification pre-training focuses on discriminative parts, detection pre-training on the "
          "entire spatial extent of objects; so the IMAGENET-CLS features' advantage should shrink where no part "
          "names the category", "Section 2.3 (Table 6) and Appendix 6.1 (Figure 4)",
          "no number: the prediction is ours, derived from the paper's explanation (the paper has one corpus)",
          math.nan,
          "Table 6 CALTECH-256-role linear-probe gap (top-1 points, IMAGENET-CLS − detection backbone), under the "
          "part cue minus under the distributed cue"),
    Claim("frozen_backbone", "freezing helps at the largest capacity",
          "Does freezing the classification backbone improve detection, given capacity? (Vasconcelos et al. 2022)",
          "Vasconcelos et al.: freezing the ImageNet-classification backbone improves detection as long as the "
          "detector has enough capacity after it", "Vasconcelos et al. 2022",
          "gains on COCO and LVIS, largest on rare classes (no single number in our notes of the paper)", math.nan,
          "mAP@0.5 points (all classes), frozen − fine-tuned backbone, largest detector capacity"),
)}


# ----------------------------------------------------------------------------------------------------------------
# units
# ----------------------------------------------------------------------------------------------------------------
def unit_frame(result: Mapping, value: Callable[[dict], float], name: str = "value") -> pd.DataFrame:
    """One row per fine-tuning run of a result: ``pretrain``, ``replicate``, ``seed`` and ``value(metrics)``.

    Args:
        result: a result dict of :mod:`detpretrain.experiments` (``runs`` entries with ``pretrain``, ``seed``,
            ``metrics`` and, since replicates exist, ``replicate``; a missing one is replicate 0).
    """
    rows = [{"pretrain": r["pretrain"], "replicate": int(r.get("replicate", 0)), "seed": r["seed"],
             name: value(r["metrics"])} for r in result["runs"]]
    return pd.DataFrame(rows, columns=["pretrain", "replicate", "seed", name])


def paired_units(frame: pd.DataFrame, treatment: str, control: str, value: str = "value", keys=(),
                 key: str = "pretrain", values: bool = False) -> pd.DataFrame:
    """Paired differences ``treatment - control`` of ``value``, one row per unit ``(replicate, seed, *keys)``.

    Runs pair when they share replicate and seed (and ``keys``). An arm with a single replicate while the other has
    several pairs by seed with every replicate of the other arm; the frame then names that arm in
    ``attrs["single_replicate_arm"]``, and :func:`unit_verdict` says that the interval leaves out its run-to-run
    spread (``replicated=False``). Units where either value is missing (NaN) are dropped.

    Returns:
        columns ``replicate``, ``seed``, ``*keys``, ``diff`` (and, with ``values``, ``treatment`` and ``control``).
    """
    index = ["replicate", "seed", *keys]
    out = [*index, "diff", *(["treatment", "control"] if values else [])]
    a = frame[frame[key] == treatment]
    b = frame[frame[key] == control]
    if a.empty or b.empty:
        return pd.DataFrame(columns=out)
    on, single = index, None
    if a["replicate"].nunique() > 1 and b["replicate"].nunique() == 1:
        on, b, single = ["seed", *keys], b.drop(columns="replicate"), control
    elif b["replicate"].nunique() > 1 and a["replicate"].nunique() == 1:
        on, a, single = ["seed", *keys], a.drop(columns="replicate"), treatment
    merged = a[[*[c for c in index if c in a], value]].merge(b[[*[c for c in index if c in b], value]], on=on,
                                                             suffixes=("_a", "_b"))
    merged["diff"] = merged[f"{value}_a"] - merged[f"{value}_b"]
    merged = merged.rename(columns={f"{value}_a": "treatment", f"{value}_b": "control"})
    result = merged.dropna(subset=["diff"])[out].reset_index(drop=True)
    if single is not None:
        result.attrs["single_replicate_arm"] = str(single)
    return result


def unit_verdict(diffs: pd.DataFrame, *, expected: int = 1, kind: str = "superiority", margin: float = 0.0,
                 column: str = "diff", claim: Claim | None = None, subunit: str = SEED_UNIT) -> Verdict:
    """The verdict on paired differences of :func:`paired_units` (or any frame with ``replicate`` and ``column``).

    The differences of one replicate are averaged first (each pre-training run counts once), then the t-interval is
    over the replicates (df = replicates - 1). With one replicate the analysis is over the fine-tuning seeds and
    labelled conditional on these particular pre-trained networks (``replicated=False``). ``claim`` supplies
    ``expected``, ``kind`` and ``margin`` (a claim whose unit is not the pre-training run, e.g. two from-scratch
    detectors, is tested flat over its units). ``subunit`` names one difference (default a fine-tuning run).
    """
    if claim is not None:
        expected, kind, margin = claim.expected, claim.kind, claim.margin
    single = getattr(diffs, "attrs", {}).get("single_replicate_arm")
    d = pd.DataFrame(diffs).dropna(subset=[column])
    q = {"expected": expected, "kind": kind, "margin": margin}
    if claim is not None and claim.unit != PRETRAINING_UNIT:
        return verdict(d[column].to_numpy(float), unit=claim.unit, **q)
    groups = d["replicate"].to_numpy() if "replicate" in d else np.zeros(len(d), int)
    v = verdict(d[column].to_numpy(float), groups=groups, unit=subunit, group_unit=PRETRAINING_UNIT, **q)
    if single and v.replicated:  # the other arm's replicates are real, this arm's run is one network
        v = dataclasses.replace(v, replicated=False, method=(
            f"{v.method}; arm {single} has 1 {PRETRAINING_UNIT}, paired with each replicate of the other: its "
            "run-to-run spread is not in the interval"))
    return v


def growth(diffs: pd.DataFrame, low, high, by: str = "iou", keys=("replicate", "seed")) -> pd.DataFrame:
    """Per unit, ``diff at high - diff at low`` from long paired differences with a column ``by``: columns ``keys``
    and ``diff`` (units where either is missing dropped)."""
    wide = diffs.pivot_table(index=list(keys), columns=by, values="diff")
    lo = [c for c in wide.columns if math.isclose(float(c), float(low))]
    hi = [c for c in wide.columns if math.isclose(float(c), float(high))]
    if not lo or not hi:
        return pd.DataFrame(columns=[*keys, "diff"])
    out = (wide[hi[0]] - wide[lo[0]]).rename("diff").dropna().reset_index()
    out.attrs.update(getattr(diffs, "attrs", {}))  # e.g. a single-replicate arm (paired_units)
    return out


# ----------------------------------------------------------------------------------------------------------------
# the regime
# ----------------------------------------------------------------------------------------------------------------
def map_at(metrics: dict, iou: float) -> float:
    """A detection run's mAP (percent) at IoU threshold ``iou``; NaN where it is None (no test objects).

    Raises:
        ValueError: ``iou`` was not evaluated.
    """
    ious = [round(float(t), 2) for t in metrics["iou_thresholds"]]
    v = metrics["mAP"][ious.index(round(iou, 2))]
    return math.nan if v is None else float(v)


@dataclasses.dataclass(frozen=True)
class Regime:
    """Whether a detection comparison's baseline detector is trained well enough (:func:`detection_regime`)."""

    adequate: bool
    map50: float
    map70: float
    runs: int
    arm: str
    message: str

    @property
    def ratio(self) -> float:
        """mAP@0.7 / mAP@0.5 of the baseline detector (NaN without mAP@0.5)."""
        return self.map70 / self.map50 if self.map50 else math.nan


def detection_regime(values: pd.DataFrame | Mapping, arm: str = "imagenet-cls", *, what: str | None = None) -> Regime:
    """Is the ``arm`` detector adequate for a detection verdict (module docstring)?

    Args:
        values: a detection result dict (its ``runs`` of pre-training ``arm``), or a frame with columns
            ``pretrain``, ``mAP@0.5`` and ``mAP@0.7`` (percent).
        arm: the baseline arm (the IMAGENET-CLS-style pre-training).
        what: how the message names the detector (default ``"the <arm>-arm detector"``).

    Returns:
        :class:`Regime`; ``message`` starts ``"regime inadequate: "`` when it is not adequate.
    """
    if isinstance(values, Mapping):
        values = pd.DataFrame([{"pretrain": r["pretrain"], "mAP@0.5": map_at(r["metrics"], 0.5),
                                "mAP@0.7": map_at(r["metrics"], 0.7)} for r in values["runs"]])
    sub = values[values["pretrain"] == arm] if len(values) else values
    what = what or f"the {arm}-arm detector"
    if sub.empty:
        return Regime(False, math.nan, math.nan, 0, arm, f"regime inadequate: {what} was not run, so no detection "
                                                         "verdict can be given")
    m50, m70 = float(sub["mAP@0.5"].mean()), float(sub["mAP@0.7"].mean())
    ratio = m70 / m50 if m50 else math.nan
    short = []
    if not m50 >= REGIME_MIN_MAP50:
        short.append(f"mAP@0.5 {m50:.1f} (needs ≥ {REGIME_MIN_MAP50:g})")
    if not ratio >= REGIME_MIN_RATIO:
        short.append(f"mAP@0.7 / mAP@0.5 {ratio:.2f} (needs ≥ {REGIME_MIN_RATIO:g})")
    n = len(sub)
    if short:
        message = (f"regime inadequate: {what} reaches {' and '.join(short)}, mean of {n} run{'s' * (n != 1)}; "
                   "detectors this far from converged compare how fast pre-trainings start, not what the paper "
                   "compares, so no verdict is given (the estimates and intervals are shown, unlabelled)")
    else:
        message = (f"regime adequate: {what} reaches mAP@0.5 {m50:.1f} and mAP@0.7 / mAP@0.5 {ratio:.2f} "
                   f"(thresholds {REGIME_MIN_MAP50:g} and {REGIME_MIN_RATIO:g}), mean of {n} runs")
    return Regime(not short, m50, m70, n, arm, message)


def declared_primary(chapter: str, claims: Mapping[str, Verdict]) -> str | None:
    """The name of ``chapter``'s declared primary claim (:data:`PRIMARY_CLAIMS`) if this execution measured it, else
    None (:func:`~detpretrain.analysis.stats.adjust_claims` then treats every claim as secondary: no other claim is
    promoted after the fact)."""
    name = PRIMARY_CLAIMS[chapter].name
    return name if name in claims else None


# ----------------------------------------------------------------------------------------------------------------
# what the reader sees
# ----------------------------------------------------------------------------------------------------------------
def answer(chapter: str, result: Verdict | None, *, regime: Regime | None = None, note: str = "") -> str:
    """A chapter's opening answer, as an abstract: the paper's claim (attributed, declared before the run), the
    paper's number, ours with its interval, unit, n and power, and the label -- or ``regime inadequate: ...``.

    Args:
        chapter: a key of :data:`PRIMARY_CLAIMS`.
        result: the primary claim's verdict (None: not measured, e.g. a backbone left out by the parameters).
        regime: where given and not adequate, its message replaces the label.
        note: a sentence appended (e.g. why the claim is untested).
    """
    claim = PRIMARY_CLAIMS[chapter]
    lines = [f"**Claim ({claim.source}).** {claim.claim}.", f"**Paper.** {claim.paper}."]
    if result is None:
        here = "not measured with these parameters"
    else:
        here = result.sentence(claim.measure)
        if regime is not None and not regime.adequate:
            here = f"{here.rsplit(' — ', 1)[0]} — **{regime.message}**"
        else:
            head, _, label = here.rpartition(" — ")
            here = f"{head} — **{label}**"
    lines.append(f"**Here.** {here}." + (f" {note}" if note else ""))
    lines.append(f"*Primary claim, declared in `detpretrain.analysis.claims` before the runs: {claim.name} "
                 f"(expected: {'treatment > control' if claim.expected > 0 else 'treatment < control'}, "
                 f"{claim.kind}{f', margin {claim.margin:g}' if claim.kind == 'noninferiority' else ''}; "
                 "95 % interval, unit of replication: " + (result.unit if result is not None else claim.unit) + ").*")
    return "\n\n".join(lines)


#: a claims table's interval columns: each claim's own 95 % interval; Holm's adjustment acts on the p-values (a
#: secondary claim's interval may exclude 0 beside "not resolved": its adjusted p is not below alpha)
CI_LOW_UNADJUSTED, CI_HIGH_UNADJUSTED = "95% CI low (unadjusted)", "95% CI high (unadjusted)"
#: the columns of a claims table as a chapter shows them
CLAIM_COLUMNS = ["claim", "role", "estimate", "ci_low", "ci_high", "n", "unit", "p", "p_holm", "label", "mde"]


def claims_frame(claims: Mapping[str, Verdict], primary: str, regime: Regime | None = None) -> pd.DataFrame:
    """Every claim of a chapter, primary first (:func:`~detpretrain.analysis.stats.claims_table`), with the columns
    of :data:`CLAIM_COLUMNS` (``mde``: the smallest effect the design detects with 80 % power; for a secondary
    claim at Holm's strictest level, ``alpha / m``). ``label`` is the claim's (:attr:`~detpretrain.analysis.stats.
    Verdict.shown_label`): *not resolved* where the interval is not over pre-training runs of both arms, followed by
    what it shows about these networks. Where ``regime`` is inadequate every label is :data:`REGIME_LABEL`."""
    table = claims_table(claims, primary)
    frame = table[CLAIM_COLUMNS].assign(label=table["shown label"])
    if regime is not None and not regime.adequate:
        frame = frame.assign(label=REGIME_LABEL)
    return frame.rename(columns={"ci_low": CI_LOW_UNADJUSTED, "ci_high": CI_HIGH_UNADJUSTED, "p_holm": "p (Holm)",
                                 "mde": "smallest detectable"})


def verdicts_table(verdicts: Mapping[str, Verdict], key: str = "claim",
                   columns: tuple[str, ...] = ("estimate", "ci_low", "ci_high", "n", "unit")) -> pd.DataFrame:
    """Verdicts shown where a chapter computes them, before its claims table (:func:`claims_frame`) adjusts the
    secondary ones: one row per verdict, ``key`` (the dict's keys), ``columns`` of
    :meth:`~detpretrain.analysis.stats.Verdict.as_row`, and :data:`UNADJUSTED_LABEL`: each verdict's label from its
    own 95 % interval (:attr:`~detpretrain.analysis.stats.Verdict.shown_label`: *not resolved* where the interval is
    not over pre-training runs of both arms, with what it shows about these networks), so a row reading "holds" or
    "reversed" is not yet a claim of the chapter (and a verdict that is not in the claims table is never adjusted). Empty ``verdicts`` give an empty frame with these columns.

    Raises:
        KeyError: a name in ``columns`` that is not a field of ``Verdict.as_row()``.
    """
    rows = []
    for name, v in verdicts.items():
        row = v.as_row()
        rows.append({key: name, **{c: row[c] for c in columns}, UNADJUSTED_LABEL: v.shown_label})
    return pd.DataFrame(rows, columns=[key, *columns, UNADJUSTED_LABEL])


def claim_row(chapter: str, result: Verdict | None, regime: Regime | None = None) -> dict:
    """One row of the introduction's overview: the chapter's primary claim, the paper's number, ours with its
    interval, and the label."""
    claim = PRIMARY_CLAIMS[chapter]
    if result is None:
        ours, label = "not run in this store", "–"
    else:
        d = result.digits_for(1)
        ours = (f"{result.estimate:+.{d}f} (95 % CI {result.ci_low:+.{d}f} to {result.ci_high:+.{d}f}; n = "
                f"{result.n} {result.unit}{'s' if result.n != 1 else ''})"
                if not math.isnan(result.ci_low) and result.ci_high > result.ci_low
                else f"{result.estimate:+.1f} (no interval; n = {result.n} {result.unit})")
        label = result.shown_label if regime is None or regime.adequate else REGIME_LABEL
    return {"chapter": chapter, "primary claim": claim.claim, "paper": claim.paper, "here": ours, "label": label}
