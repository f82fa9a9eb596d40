"""What the paper's explanation predicts under each corpus cue, stated before the result (issue 18, "falsifiable
mechanisms"), and the chapters' claims beside those predictions.

Li et al. 2019 explain their results by what each pre-training attends to: classification pre-training "focus[es]
on discriminative parts", detection pre-training "emphasize[s] on the entire spatial extent of the objects". The
synthetic corpus can change where the category cue lives (:mod:`detpretrain.data.synthetic`):

* ``part`` (default): a small discriminative part names the category within its super-category;
* ``distributed``: no part; a body-wide texture motif over the whole object names it;
* ``part+decoy``: the part, plus a category-independent decoy patch with the part's size and saliency.

If the explanation is right, whatever the classification backbone gains from focusing on a part should shrink when
there is no part to focus on (``distributed``), and a trained classifier -- not a detector, not an untrained
network -- should favour the part over an equally salient decoy. Claims about localisation and extent (Figure 8,
Figure 3's size match, Table 5's pooling) should not depend on the cue. :data:`PREDICTIONS` writes this down per
chapter and claim; each chapter prints :func:`prediction_markdown` before its results and
:func:`claims_beside_predictions` after them, and :func:`save_claims` / :func:`claims_by_cue` collect the executions
of the three cues, and of the SUN scene control (``shared-backgrounds``: SUN-role scenes named by their objects and
layout, not by a background style), into the note's "claims x cue" table.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from detpretrain.analysis.stats import Verdict

#: the conditions a chapter can be run under, in the note's column order: the cues
#: (:data:`detpretrain.data.synthetic.CUES`) and the SUN-role scene control ``shared-backgrounds`` (cue ``part``,
#: ``sun_backgrounds="shared"``; :data:`detpretrain.parameters.CONDITIONS`)
CUE_ORDER = ("part", "distributed", "part+decoy", "shared-backgrounds")
#: a condition whose column keeps only the claims it changes (claims whose name contains the text): the SUN control
#: regenerates the SUN-role target only, so its other claims are the ``part`` column's, recomputed from the same runs
CONDITION_SCOPE = {"shared-backgrounds": "SUN-397"}


def _in_scope(condition: str, claim: str) -> bool:
    """Whether ``condition`` changes claim ``claim``: every claim, or for a condition of :data:`CONDITION_SCOPE` the
    synthetic claims whose name holds its text (claims on real images never change with a synthetic corpus)."""
    return condition not in CONDITION_SCOPE or (CONDITION_SCOPE[condition] in claim
                                                and not claim.startswith("real images"))

_NO_SUN = "n/a : no SUN-role data in this claim"

#: ``{chapter: {claim key: (claim in words, {cue: prediction})}}``; "+" the paper's direction is predicted, "smaller"
#: a smaller effect than under ``part``, "0" no effect, "n/a" not measurable under that cue
PREDICTIONS: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "classification": {
        "table6": ("Table 6: the IMAGENET-CLS Conv5 probe beats the detection one (top-1 points)", {
            "part": "+ : the classifier's features concentrate on the part that names the class",
            "distributed": "smaller than under part: the cue covers the whole object, which detection features "
                           "also represent",
            "part+decoy": "+ , as under part: the decoy carries no category",
            "shared-backgrounds": "+ on SUN-397, as under part: the paper's SUN-397 gap (IMAGENET-CLS 57.3 vs "
                                  "OPENIMAGES 51.1) with the scene named by which objects co-occur and where, not by a "
                                  "background style"}),
        "table8": ("Table 8: after fine-tuning IMAGENET-CLS still beats detection (top-1 points)", {
            "part": "+ , smaller than Table 6's gap (fine-tuning narrows it)",
            "distributed": "smaller than under part",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": "+ on SUN-397, as under part (the paper: 61.5 vs 57.8 for COCO)"}),
        "table5": ("Table 5: pooling helps at a common dimension (ConvProj 1x1 > blob, from P5)", {
            "part": "+ : an image's class does not depend on where the object is",
            "distributed": "+ , as under part (cue-independent)",
            "part+decoy": "+ , as under part (cue-independent)",
            "shared-backgrounds": "n/a : Table 5 reads CALTECH-256, which the control does not change"}),
    },
    "feature_space": {
        "figure7": ("Figure 7: classes are tighter in IMAGENET-CLS space (kNN agreement points)", {
            "part": "+ : classification features are organised by the part, i.e. by class",
            "distributed": "smaller than under part",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": _NO_SUN}),
        "figure3": ("Figure 3: detection-space nearest pairs match in object size more than IMAGENET-CLS ones", {
            "part": "+ : detection features encode extent",
            "distributed": "+ , as under part (cue-independent)",
            "part+decoy": "+ , as under part (cue-independent)",
            "shared-backgrounds": _NO_SUN}),
        "figure6": ("Figure 6: similar in detection space implies similar in IMAGENET-CLS space beyond the "
                    "size-preserving null", {
            "part": "+ (the paper's asymmetry; the raw asymmetry only compares partition balance)",
            "distributed": "smaller than under part",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": _NO_SUN}),
    },
    "visualisations": {
        "figure4_part": ("Figure 4: the IMAGENET-CLS map favours the part more than the detection map (enrichment, "
                         "at a resolving layer)", {
            "part": "+ : classification pre-training focuses on discriminative parts",
            "distributed": "n/a : no part",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": _NO_SUN}),
        "figure4_floor": ("Figure 4: the IMAGENET-CLS map favours the part more than an untrained backbone's", {
            "part": "+ : the focus is learnt, not a property of salient patches",
            "distributed": "n/a : no part",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": _NO_SUN}),
        "figure4_concentration": ("Figure 4 without a part: the IMAGENET-CLS map concentrates inside the object "
                                  "more than the detection map (top-quarter share of the object's mass)", {
            "part": "+ : classification pre-training focuses on the discriminative part, detection on the extent",
            "distributed": "smaller than under part: the cue is spread over the body, nothing to concentrate on",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": _NO_SUN}),
        "figure4_decoy": ("Figure 4: part over decoy enrichment, per backbone", {
            "part": "n/a : no decoy",
            "distributed": "n/a : no part, no decoy",
            "part+decoy": "+ for IMAGENET-CLS only; 0 for the detection and untrained backbones (the decoy is as "
                          "salient as the part but names nothing)",
            "shared-backgrounds": _NO_SUN}),
        "figure5": ("Figure 5: covering the part costs the IMAGENET-CLS probe more than the detection probe "
                    "(log-odds, correctly classified images)", {
            "part": "+ : its decision rests on the part",
            "distributed": "n/a : no part",
            "part+decoy": "+ , as under part",
            "shared-backgrounds": _NO_SUN}),
        "figure8": ("Figure 8: the detection-pre-trained detector localises better (IoU on jointly detected "
                    "objects)", {
            "part": "+ : detection pre-training covers the whole extent",
            "distributed": "+ , as under part (cue-independent)",
            "part+decoy": "+ , as under part (cue-independent)",
            "shared-backgrounds": _NO_SUN}),
    },
}


def prediction_table(chapter: str, cue: str) -> pd.DataFrame:
    """The chapter's claims and what the paper's explanation predicts for each under ``cue``: columns ``claim``,
    ``predicted under <cue>``, ``under part`` (the reference).

    Raises:
        KeyError: a chapter without predictions or an unknown cue (the message lists the valid ones).
    """
    if chapter not in PREDICTIONS:
        raise KeyError(f"no predictions for chapter {chapter!r}; chapters: {list(PREDICTIONS)}")
    if cue not in CUE_ORDER:
        raise KeyError(f"unknown cue {cue!r}; expected one of {CUE_ORDER}")
    return pd.DataFrame([{"claim": text, f"predicted under {cue}": by_cue[cue], "under part": by_cue["part"]}
                         for text, by_cue in PREDICTIONS[chapter].values()])


def predictions_by_cue(chapters=None) -> pd.DataFrame:
    """Every prediction of :data:`PREDICTIONS` (of ``chapters``, default all), one row per claim: columns
    ``chapter``, ``claim`` and one per cue of :data:`CUE_ORDER`.

    Raises:
        KeyError: a chapter without predictions.
    """
    rows = []
    for chapter in chapters or PREDICTIONS:
        if chapter not in PREDICTIONS:
            raise KeyError(f"no predictions for chapter {chapter!r}; chapters: {list(PREDICTIONS)}")
        rows += [{"chapter": chapter, "claim": text, **{cue: by_cue[cue] for cue in CUE_ORDER}}
                 for text, by_cue in PREDICTIONS[chapter].values()]
    return pd.DataFrame(rows, columns=["chapter", "claim", *CUE_ORDER])


def prediction_markdown(chapter: str, cue: str) -> str:
    """:func:`prediction_table` as the paragraph a chapter prints before its results (``cue``: a condition of
    :data:`CUE_ORDER`, :func:`condition_of`)."""
    under = ("the SUN scene control (`sun_backgrounds = \"shared\"`, cue part)" if cue == "shared-backgrounds"
             else f"`cue = \"{cue}\"`")
    lines = [f"**Before the results: what the paper's explanation predicts under {under}.** Classification "
             "pre-training is said to focus on discriminative parts, detection pre-training on the whole extent of "
             "objects; so:", ""]
    for text, by_cue in PREDICTIONS[chapter].values():
        lines.append(f"* {text}: **{by_cue[cue]}**" + ("" if cue == "part" else f" (under part: {by_cue['part']})"))
    return "\n".join(lines)


def claims_beside_predictions(claims: dict, chapter: str, cue: str, keys: dict[str, str]) -> pd.DataFrame:
    """This execution's verdicts beside the predictions: one row per claim.

    Args:
        claims: ``{claim name: stats.Verdict}``.
        keys: ``{claim name: key of PREDICTIONS[chapter]}`` (claims without a key get no prediction; under a
            condition of :data:`CONDITION_SCOPE`, a claim outside its scope is said to be unchanged by it).

    Returns:
        columns ``claim``, ``prediction`` (under ``cue``), ``estimate``, ``ci_low``, ``ci_high``, ``n``, ``unit``,
        ``label`` (the claim's, :attr:`~detpretrain.analysis.stats.Verdict.shown_label`: *not resolved* where
        the interval is conditional on unreplicated networks, with what it shows about them), ``conditional``
        (True when the interval is conditional on unreplicated pre-trained networks),
        then what :func:`cue_contrasts` needs to rebuild the interval: ``key``, ``df`` (NaN for bootstrap and
        McNemar intervals), ``alpha``, ``expected``, ``kind``.
    """
    rows = []
    for name, v in claims.items():
        key = keys.get(name)
        pred = PREDICTIONS[chapter][key][1][cue] if key in PREDICTIONS.get(chapter, {}) else ""
        if pred and not _in_scope(cue, name):
            pred = "unchanged by this control (the same runs as under part)"
        rows.append({"claim": name, "prediction": pred, "estimate": v.estimate, "ci_low": v.ci_low,
                     "ci_high": v.ci_high, "n": v.n, "unit": v.unit, "label": v.shown_label,
                     "conditional": not v.replicated, "key": key or "", "df": v.df, "alpha": v.alpha,
                     "expected": v.expected, "kind": v.kind})
    return pd.DataFrame(rows, columns=["claim", "prediction", "estimate", "ci_low", "ci_high", "n", "unit", "label",
                                       "conditional", *_INTERVAL_COLUMNS])


#: the columns of a saved claims file that :func:`cue_contrasts` rebuilds a verdict's interval from
_INTERVAL_COLUMNS = ("key", "df", "alpha", "expected", "kind")


def condition_of(cue: str, corpus: dict | None = None, chapter: str | None = None) -> str | None:
    """The column of :data:`CUE_ORDER` an execution belongs to: ``cue`` on otherwise default corpora,
    ``"shared-backgrounds"`` for cue ``part`` with ``sun_backgrounds="shared"`` (the SUN scene control of the
    SUN-397 columns of Li et al.'s Tables 6 and 8) in a chapter
    of :data:`detpretrain.parameters.SUN_CONTROL_CHAPTERS` (any chapter when ``chapter`` is None), None for any other
    combination (e.g. a cue *and* shared backgrounds), which the claims x cue table does not compare.

    Args:
        cue: the execution's cue; corpus: its whole corpus variant (``{"cue": ..., "sun_backgrounds": ...}``).
    """
    from detpretrain.config import CORPUS_LATER_FIELDS
    from detpretrain.parameters import SUN_CONTROL_CHAPTERS

    changed = {key for key, value in (corpus or {}).items() if key != "cue" and value != CORPUS_LATER_FIELDS.get(key)}
    if not changed:
        return cue
    if (changed == {"sun_backgrounds"} and corpus["sun_backgrounds"] == "shared" and cue == "part"
            and (chapter is None or chapter in SUN_CONTROL_CHAPTERS)):
        return "shared-backgrounds"
    return None


#: chapter parameters that may differ from their defaults in an execution whose claims are saved: where it runs,
#: with how many seeds and replicates (the mechanisms page passes the same to every variant), and the condition
_SAVED_WITH_ANY = ("profile", "seeds", "device", "store", "data_cache", "replicates", "cue", "sun_backgrounds",
                   "download", "coco_root", "variants")


def save_claims(frame: pd.DataFrame, *, chapter: str, profile: str, cue: str,
                root: str | os.PathLike | None = None, corpus: dict | None = None,
                params: dict | None = None) -> Path | None:
    """Write a chapter's :func:`claims_beside_predictions` as ``<root>/<profile>/<chapter>/claims-<condition>.csv``
    (``root``: :func:`detpretrain.figures.figures_root`), atomically; :func:`claims_by_cue` reads them back.

    ``corpus``: the execution's whole corpus variant; its condition is :func:`condition_of` (``cue`` on otherwise
    default corpora). ``params``: the execution's parameter values. Nothing is saved (returns None), so that no
    condition's file is overwritten by another question, when the execution is of no condition (e.g. a cue together
    with shared SUN backgrounds) or when a parameter that changes which claims exist (a target, dataset, backbone,
    real data ...; anything outside :data:`_SAVED_WITH_ANY`) differs from its default. A condition of
    :data:`CONDITION_SCOPE` keeps only the synthetic claims it changes."""
    from detpretrain.figures import figures_root
    from detpretrain.io import atomic_path
    from detpretrain.parameters import non_default_parameters

    condition = condition_of(cue, corpus, chapter)
    if condition is None or non_default_parameters(chapter, params, ignore=_SAVED_WITH_ANY):
        return None
    frame = frame[frame["claim"].astype(str).map(lambda claim: _in_scope(condition, claim)).astype(bool)]
    folder = Path(root if root is not None else figures_root()) / profile / chapter
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"claims-{condition.replace('+', '_')}.csv"
    with atomic_path(target, suffix=".csv") as tmp:
        frame.assign(chapter=chapter, cue=condition).to_csv(tmp, index=False)
    return target


def _saved_claims(profile: str, root) -> pd.DataFrame:
    """Every claims file :func:`save_claims` wrote for ``profile``, concatenated (empty frame when none).

    Raises:
        DataError: a file that is not a readable claims table (names the file; delete it and re-execute its chapter).
    """
    from detpretrain.errors import DataError
    from detpretrain.figures import figures_root

    files = sorted((Path(root if root is not None else figures_root()) / profile).glob("*/claims-*.csv"))
    frames = []
    for f in files:
        try:
            frame = pd.read_csv(f)
        except (OSError, ValueError, pd.errors.ParserError) as err:
            raise DataError(f, f"not a readable claims table ({err}); delete it and execute its chapter again") \
                from None
        missing = {"chapter", "cue", "claim", "label", "estimate"} - set(frame.columns)
        if missing:
            raise DataError(f, f"claims table without the columns {sorted(missing)}; delete it and execute its "
                               "chapter again")
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def claims_by_cue(profile: str, root: str | os.PathLike | None = None, *, cues=None,
                  chapters=None) -> pd.DataFrame:
    """The note's "claims x cue" table from every saved claims file of ``profile``: one row per (chapter, claim),
    one column per cue with ``label (estimate, CI)``; a cue not executed is left empty.

    Args:
        cues: the columns, in :data:`CUE_ORDER` order (a saved cue not among them is left out); None: the cues
            saved.
        chapters: only these chapters (default all).

    Returns:
        an empty frame (columns ``chapter``, ``claim`` and ``cues``) when nothing was saved.
    """
    long = _saved_claims(profile, root)
    saved = set(long["cue"]) if not long.empty else set()
    cues = [c for c in CUE_ORDER if c in (set(cues) if cues is not None else saved)]
    if not long.empty:
        long = long[long["cue"].isin(cues) & (long["chapter"].isin(chapters) if chapters else True)]
    if long.empty:
        return pd.DataFrame(columns=["chapter", "claim", *cues])

    def cell(r) -> str:
        if isinstance(r["estimate"], float) and math.isnan(r["estimate"]):
            return r["label"]
        ci = "" if pd.isna(r["ci_low"]) else f", {r['ci_low']:+.2f} to {r['ci_high']:+.2f}"
        return f"{r['label']} ({r['estimate']:+.2f}{ci})"

    long["cell"] = long.apply(cell, axis=1)
    wide = long.pivot_table(index=["chapter", "claim"], columns="cue", values="cell", aggfunc="first")
    wide = wide.reindex(columns=cues).reset_index()
    wide.columns.name = None
    if chapters:
        wide = wide.sort_values("chapter", key=lambda c: c.map({ch: i for i, ch in enumerate(chapters)}),
                                kind="stable").reset_index(drop=True)
    return wide


def cue_summary(table: pd.DataFrame, reference: str = "part") -> str:
    """In words, for each cue of ``table`` (:func:`claims_by_cue`) other than ``reference``: how many of the claims
    measured under both keep their label, and which change (``label under reference -> label under cue``).

    Returns:
        a Markdown paragraph (bullets), or a sentence saying what is missing.
    """
    if reference not in table.columns:
        return f"*No claims under `{reference}` were saved: execute the chapters first (the book does).*"
    others = [c for c in table.columns[2:] if c != reference]
    if not others:
        return f"*Only `{reference}` was executed: no variant to compare with.*"
    lines = [f"**Labels under each cue against `{reference}`** (from the table above):", ""]
    for cue in others:
        both = table.dropna(subset=[reference, cue])
        if both.empty:
            lines.append(f"* `{cue}`: no claim measured under both.")
            continue
        label = lambda cell: str(cell).split(" (")[0]  # noqa: E731
        changed = both[both[reference].map(label) != both[cue].map(label)]
        kept = len(both) - len(changed)
        text = f"* `{cue}`: {kept} of {len(both)} claims keep their label"
        if len(changed):
            text += "; changed: " + "; ".join(f"{r['chapter']} · {r['claim']}: {label(r[reference])} → "
                                              f"{label(r[cue])}" for _, r in changed.iterrows())
        lines.append(text + ".")
    return "\n".join(lines)


# ---- the tests: one claim's effect under part against under another cue ---------------------------------------
#: the page's primary contrast, declared before any variant ran (:data:`detpretrain.analysis.claims.PRIMARY_CLAIMS`
#: ``["mechanisms"]``): ``(chapter, start of the claim's name, cue)``. Table 6's linear probe on the CALTECH-256-role
#: target measures what the frozen features encode, the quantity the part-focus explanation is about; fine-tuning
#: (Table 8) can rebuild features and wash a representational difference out.
PRIMARY_CONTRAST = ("classification", "Table 6, CALTECH-256", "distributed")


#: the name of the Table 5 claim :data:`PREDICTIONS`' ``table5`` entry is about (ConvProj 1x1 > blob, from P5; the
#: classification chapter's probes on P5 reduced by PCA to a common dimension)
TABLE5_PREDICTED_CLAIM = "Table 5: ConvProj 1x1 > ConvProj blob (P5, PCA)"


def classification_prediction_key(name: str, primary: str) -> str:
    """The key of :data:`PREDICTIONS` ``["classification"]`` a claim of the classification chapter is predicted by:
    ``"table6"`` for Table 6's probe claims, ``"table8"`` for Table 8's fine-tuning claims and the chapter's
    ``primary`` claim, ``"table5"`` for :data:`TABLE5_PREDICTED_CLAIM` only (Table 5's other orderings have no
    prediction), ``""`` for the rest (the genuine-image rows, which no cue changes).

    Args:
        name: the claim's name as the chapter computes it; primary: the chapter's primary claim's name.
    """
    if name.startswith("real images"):
        return ""
    if name.startswith("Table 6"):
        return "table6"
    if name.startswith("Table 8") or name == primary:
        return "table8"
    return "table5" if name == TABLE5_PREDICTED_CLAIM else ""


def predicted_change(prediction: str) -> str | None:
    """How a prediction of :data:`PREDICTIONS` under a cue compares with ``part``: ``"smaller"`` (the explanation
    predicts a smaller effect), ``"same"`` (a cue-independent claim), or None (not measurable, or no comparison
    stated)."""
    text = str(prediction).strip()
    if text.startswith("smaller"):
        return "smaller"
    if "as under part" in text and not text.startswith("n/a"):
        return "same"
    return None


def _verdict_from_row(r) -> Verdict:
    """A saved claim row (:func:`claims_beside_predictions`) back as the verdict it came from (its interval, df,
    alpha, direction and unit; p and mde are not needed by :func:`~detpretrain.analysis.stats.difference_verdict`)."""
    def num(key, default=math.nan):
        value = r.get(key, default)
        return default if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)

    n = int(num("n", 0))
    return Verdict(str(r["label"]), num("estimate"), num("ci_low"), num("ci_high"), math.nan, n, n, n, num("df"),
                   math.nan, num("alpha", 0.05), str(r.get("kind", "superiority")), 0.0, int(num("expected", 1)),
                   str(r["unit"]), "", "", not bool(r["conditional"]))


def contrast_name(chapter: str, claim: str, cue: str, reference: str = "part") -> str:
    """The name of a contrast row: ``"<chapter> · <claim>: larger under <reference> than under <cue>"``, or the
    declared primary's name (:data:`PRIMARY_CONTRAST`)."""
    from detpretrain.analysis.claims import PRIMARY_CLAIMS

    p_chapter, p_claim, p_cue = PRIMARY_CONTRAST
    if (chapter, cue, reference) == (p_chapter, p_cue, "part") and claim.startswith(p_claim):
        return PRIMARY_CLAIMS["mechanisms"].name
    return f"{chapter} · {claim}: larger under {reference} than under {cue}"


def cue_contrasts(profile: str, root: str | os.PathLike | None = None, *, reference: str = "part", cues=None,
                  chapters=None) -> tuple[dict[str, Verdict], pd.DataFrame]:
    """Each claim's effect under ``reference`` minus its effect under another cue, with an interval: the formal test
    of "smaller than under part" (and of the cue-independence of the localisation claims) that comparing two
    intervals by eye is not.

    Two executions under different cues use different pre-training runs, corpora and test images, so the effects are
    independent; :func:`~detpretrain.analysis.stats.difference_verdict` combines their intervals (Welch). The SUN
    scene control (``shared-backgrounds``) shares its pre-training runs with ``part``: Welch then ignores their
    positive correlation and the interval is wider than a paired one, so the test loses power, and for a "same"
    prediction an unresolved difference is weaker evidence still. A claim measured against the untrained floor
    (Figure 4's) has the same untrained network (same initialisation seed) under both cues: its intervals are
    conditional on that network (``replicated=False``), so the contrast is too, and conditional on it the two
    sides' data (corpora, images, trained runs) are independent as Welch assumes. The contrast has the
    claim's direction (``expected``): *holds* means the effect is larger under ``reference`` in the paper's
    direction. Only claims whose prediction under the cue is ``"smaller"`` or ``"same"``
    (:func:`predicted_change`) are compared, only superiority claims, and only files saved with the intervals'
    df (files written before it was kept give no contrast).

    Args:
        profile: the profile whose saved claims (:func:`save_claims`) are read.
        root: the figures root (default :func:`detpretrain.figures.figures_root`).
        reference: the cue every other is compared with.
        cues: the other cues (default all saved); chapters: only these (default all).

    Returns:
        ``(contrasts, frame)``: ``{name: Verdict}`` (:func:`contrast_name`; the declared primary first when
        measured) and one row per contrast with ``name``, ``chapter``, ``claim``, ``cue``, ``predicted``
        (``"smaller"`` / ``"same"``), ``under reference`` and ``under cue`` (the two estimates).
    """
    from detpretrain.analysis.stats import difference_verdict

    columns = ["name", "chapter", "claim", "cue", "predicted", f"under {reference}", "under cue"]
    long = _saved_claims(profile, root)
    if long.empty or "df" not in long.columns:
        return {}, pd.DataFrame(columns=columns)
    if chapters:
        long = long[long["chapter"].isin(chapters)]
    others = [c for c in CUE_ORDER if c != reference and c in set(long["cue"]) and (cues is None or c in cues)]
    base = long[long["cue"] == reference].set_index(["chapter", "claim"])
    contrasts, rows = {}, []
    for cue in others:
        for _, r in long[long["cue"] == cue].iterrows():
            change = predicted_change(r["prediction"])
            if change is None or (r["chapter"], r["claim"]) not in base.index:
                continue
            ref = base.loc[(r["chapter"], r["claim"])]
            if isinstance(ref, pd.DataFrame):
                ref = ref.iloc[0]
            if {ref.get("kind", "superiority"), r.get("kind", "superiority")} != {"superiority"}:
                continue
            a, b = _verdict_from_row(ref), _verdict_from_row(r)
            name = contrast_name(r["chapter"], r["claim"], cue, reference)
            contrasts[name] = difference_verdict(a, b, expected=a.expected, alpha=a.alpha,
                                                 what=f"under {reference} minus under {cue}")
            rows.append({"name": name, "chapter": r["chapter"], "claim": r["claim"], "cue": cue, "predicted": change,
                         f"under {reference}": a.estimate, "under cue": b.estimate})
    from detpretrain.analysis.claims import PRIMARY_CLAIMS

    primary = PRIMARY_CLAIMS["mechanisms"].name
    if primary in contrasts:
        contrasts = {primary: contrasts[primary], **{k: v for k, v in contrasts.items() if k != primary}}
    frame = pd.DataFrame(rows, columns=columns)
    return contrasts, frame.set_index("name").loc[list(contrasts)].reset_index() if rows else frame


def contrast_reading(predicted: str, label: str, mde: float) -> str:
    """What a contrast's label (after Holm adjustment) says about the prediction, in words.

    Args:
        predicted: ``"smaller"`` or ``"same"`` (:func:`predicted_change`).
        label: the contrast's label.
        mde: its smallest detectable difference (units of the claim).
    """
    power = "" if not math.isfinite(mde) else f" (smallest detectable difference {mde:.2g})"
    if predicted == "smaller":
        return {"holds": "as predicted: smaller without the part",
                "reversed": "against the prediction: larger without the part"}.get(
            label, "not resolved: no difference detected" + power)
    if label in ("holds", "reversed"):
        return "against the prediction: the effect depends on the condition"
    return "consistent with independence of the condition, not evidence for it: no difference detected" + power


def contrasts_frame(contrasts: dict[str, Verdict], frame: pd.DataFrame) -> pd.DataFrame:
    """The page's table of contrasts: the declared primary unadjusted, the others Holm-adjusted
    (:func:`detpretrain.analysis.claims.claims_frame`), with the prediction, the two estimates and the reading.

    Returns:
        :data:`~detpretrain.analysis.claims.CLAIM_COLUMNS` (renamed as chapters show them) plus ``cue``,
        ``predicted``, the two estimates and ``reading``; empty when nothing was compared.
    """
    from detpretrain.analysis.claims import claims_frame, declared_primary
    from detpretrain.analysis.stats import UNREPLICATED, adjust_claims

    if not contrasts:
        return pd.DataFrame(columns=["claim", "cue", "predicted", "reading"])
    primary = declared_primary("mechanisms", contrasts)
    table = claims_frame(contrasts, primary)
    adjusted = adjust_claims(contrasts, primary)  # the labels claims_frame shows, as verdicts
    extra = frame.set_index("name")
    table = table.join(extra.drop(columns=["chapter", "claim"]), on="claim")

    def reading(name: str, predicted: str, mde: float) -> str:
        v = adjusted[name]
        if v.replicated:
            return contrast_reading(predicted, v.label, mde)
        # a contrast of unreplicated intervals (one pair of networks, or one untrained floor): no claim about
        # pre-training, whatever it shows about these networks
        return f"not resolved ({UNREPLICATED}); these networks alone: {contrast_reading(predicted, v.label, mde)}"

    table["reading"] = [reading(n, p, m) for n, p, m in zip(table["claim"], table["predicted"],
                                                             table["smallest detectable"])]
    return table


def variants_frame(executed: list[dict]) -> pd.DataFrame:
    """The variants :func:`detpretrain.variants.execute_variants` executed: columns ``chapter``, ``cue``,
    ``seconds`` and ``notebook`` (the executed notebook's file name)."""
    return pd.DataFrame([{"chapter": e["chapter"], "cue": e["cue"], "seconds": round(float(e["seconds"]), 1),
                          "notebook": Path(e["notebook"]).name} for e in executed],
                        columns=["chapter", "cue", "seconds", "notebook"])


def bag_of_objects_oracle(annotations: str | os.PathLike, *, train_split: str = "train", eval_split: str = "val",
                          C: float = 1.0) -> dict:
    """Top-1 of a scene classifier that sees only each image's ground-truth object counts (the SUN scene control).

    Under ``sun_backgrounds="shared"`` a SUN-role scene is named by which objects co-occur (and where), not by a
    background style. This measures how much of the scene label the object *counts* alone carry: a multinomial
    logistic regression (:class:`sklearn.linear_model.LogisticRegression`, lbfgs, L2 with inverse strength ``C``)
    on one feature per category (the number of its instances in the image, standardised on the training images),
    fitted on ``train_split`` and scored on ``eval_split``. It is an upper reference for what a network fine-tuned
    on the same images could read from the objects, not a pre-training result (selection 4 in ``profiles.py``).

    Args:
        annotations: a synthetic SUN-role corpus's ``annotations.json`` (COCO layout; each image has ``split`` and
            ``label``, each annotation a ``category_id`` of ``categories``).
        train_split, eval_split: the images' ``split`` values to fit and to score.
        C: inverse L2 strength of the logistic regression.

    Returns:
        ``{"top1": percent, "chance": percent (100 / classes), "n_train", "n_eval", "classes"}``.

    Raises:
        DataError: the file is missing or not such a corpus (no ``label`` / ``split`` on an image, an annotation of
            an unknown image or category).
        ValueError: a split without images, or a training split with a single class.
    """
    import json

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from detpretrain.analysis.blas import one_blas_thread
    from detpretrain.errors import DataError

    path = Path(annotations)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        column = {c["id"]: i for i, c in enumerate(data["categories"])}
        images = {im["id"]: (im["split"], im["label"]) for im in data["images"]}
        counts = {iid: np.zeros(len(column)) for iid in images}
        for a in data["annotations"]:
            counts[a["image_id"]][column[a["category_id"]]] += 1
    except FileNotFoundError as err:
        raise DataError(path, "annotation file does not exist") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(path, "not a synthetic SUN-role annotation file (images with split and label, annotations of "
                              f"known images and categories): {type(err).__name__}: {err}") from err

    def split(name):
        ids = sorted(i for i, (s, _) in images.items() if s == name)
        if not ids:
            raise ValueError(f"{path}: no image in split {name!r}")
        return np.stack([counts[i] for i in ids]), np.array([images[i][1] for i in ids])

    x_train, y_train = split(train_split)
    x_eval, y_eval = split(eval_split)
    classes = sorted(set(y_train) | set(y_eval))
    if len(set(y_train)) < 2:
        raise ValueError(f"{path}: split {train_split!r} has a single class; the oracle needs at least two")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, solver="lbfgs", max_iter=5000))
    with one_blas_thread():  # the SUN-role probe's shape: 4.6x faster on one thread (analysis.blas)
        model.fit(x_train, y_train)
    return {"top1": 100.0 * float(np.mean(model.predict(x_eval) == y_eval)), "chance": 100.0 / len(classes),
            "n_train": len(y_train), "n_eval": len(y_eval), "classes": len(classes)}


def sun_floor_rule(top1, oracle: float, chance: float) -> dict:
    """Selection 4's criterion (``profiles.py``): a SUN-role training size escapes the floor when the mean val top-1
    of the IMAGENET-CLS arm's replicates reaches half the way from chance to the bag-of-objects oracle.

    Args:
        top1: the replicates' val top-1, percent (one per pre-training replicate).
        oracle, chance: the oracle's val top-1 and chance (100 / scenes), percent.

    Returns:
        ``{"mean", "threshold", "escapes"}`` with ``threshold = chance + (oracle - chance) / 2``.

    Raises:
        ValueError: no values.
    """
    values = [float(v) for v in top1]
    if not values:
        raise ValueError("sun_floor_rule needs at least one replicate's top-1")
    mean = sum(values) / len(values)
    threshold = chance + (oracle - chance) / 2
    return {"mean": mean, "threshold": threshold, "escapes": mean >= threshold}


def sun_control_floor(transfer: dict, oracle: dict) -> tuple[pd.DataFrame, str]:
    """Whether the SUN scene control's Table 8 fine-tunings left the floor: each backbone's mean top-1 beside the
    bag-of-objects oracle on the same images, and :func:`sun_floor_rule` on the IMAGENET-CLS arm.

    Args:
        transfer: :func:`detpretrain.experiments.classification.run_classification_transfer`'s result on the SUN
            role with ``corpus={"sun_backgrounds": "shared"}`` (runs with ``pretrain`` and ``metrics["top1"]``, %).
        oracle: :func:`bag_of_objects_oracle` on that corpus, fitted on its train split and scored on the split the
            runs were scored on.

    Returns:
        ``(frame, sentence)``: one row per backbone (``backbone``, ``runs``, ``mean top-1 %``, ``min``, ``max``), then
        rows for the oracle and chance; the sentence says whether the control is floor-limited and why.

    Raises:
        ValueError: no run of the IMAGENET-CLS arm in ``transfer``.
    """
    runs = pd.DataFrame([{"backbone": r["pretrain"], "top1": float(r["metrics"]["top1"])} for r in transfer["runs"]])
    if runs.empty or "imagenet-cls" not in set(runs["backbone"]):
        raise ValueError("sun_control_floor needs the IMAGENET-CLS arm's runs (the rule reads its mean)")
    frame = (runs.groupby("backbone", sort=False)["top1"].agg(["size", "mean", "min", "max"]).reset_index()
             .rename(columns={"size": "runs", "mean": "mean top-1 %"}))
    frame = pd.concat([frame, pd.DataFrame([
        {"backbone": "bag-of-objects oracle (ground-truth counts)", "runs": 0, "mean top-1 %": oracle["top1"]},
        {"backbone": "chance", "runs": 0, "mean top-1 %": oracle["chance"]}])], ignore_index=True)
    rule = sun_floor_rule(runs.loc[runs["backbone"] == "imagenet-cls", "top1"], oracle["top1"], oracle["chance"])
    where = (f"the IMAGENET-CLS classifiers read {rule['mean']:.1f} % of the scenes that the object counts alone "
             f"name {oracle['top1']:.1f} % of the time (chance {oracle['chance']:.1f} %; half way: "
             f"{rule['threshold']:.1f} %)")
    if rule["escapes"]:
        return frame, f"The SUN scene control is off the floor: {where}."
    return frame, (f"**The SUN scene control is floor-limited**: {where}. Its SUN-397 claims compare classifiers "
                   "that read little of the scene signal, so an unresolved label there says little about the paper's "
                   "SUN-397 claims (selection 4 in `profiles.py` sized its training set on val).")
