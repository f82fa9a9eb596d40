"""Linear probes (Tables 5 and 6) and fine-tuning transfer (Table 8) of Li et al. 2019, Section 2.3.

The probe follows Kornblith, Shlens and Le 2019 ("Do better ImageNet models transfer better?", Section 3): a
multinomial logistic regression on frozen features, L-BFGS, L2 strength chosen on a held-out validation split from a
log-spaced grid, then refit on train + validation with the chosen strength and scored once on test. Features are
standardised with statistics of the training part (scikit-learn ``StandardScaler`` inside the pipeline, so the refit
re-estimates them on train + validation). scikit-learn's ``C`` is the inverse L2 strength: its objective is
``C * sum(cross-entropy) + ||W||^2 / 2``, i.e. Kornblith's per-example strength ``lambda = 1 / (2 C n)``.

Kornblith et al. search 45 values of lambda in [1e-6, 1e5]; the default grid here, :data:`DEFAULT_CS`, has 9 values of
C in [1e-4, 1e4] (one per decade; enough for a few hundred images on a CPU); pass ``cs=`` for a finer one.

Top-1 accuracies are in percent. A probe on fixed features is a convex problem: given the backbone, the only
randomness in its number is the sample of test images, so its uncertainty is the binomial standard error
``sqrt(p (1 - p) / n_test)`` (reported as ``se``). Two probes on the same test images are compared by McNemar's exact
test on their per-image correctness (:func:`~detpretrain.analysis.stats.mcnemar`) -- a verdict about these particular
backbones; with several pre-training replicates per backbone, the verdict is over the per-replicate differences
instead (the unit of a claim about pre-training is the pre-training run; :func:`probe_claims`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd

from detpretrain.analysis.blas import one_blas_thread
from detpretrain.analysis.claims import PRIMARY_CLAIMS, paired_units, unit_verdict
from detpretrain.analysis.stats import Verdict, mcnemar
from detpretrain.paper import DETECTION_STAND_IN, ROLE_NAMES, TABLE5, TABLE6, TABLE8, quoted_row

#: inverse L2 strengths searched on the validation split (scikit-learn ``C``)
DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 4, 9))
#: our backbones -> the paper's names of their roles (``detection`` plays COCO; :data:`detpretrain.paper.ROLE_NAMES`);
#: ``scratch`` here is a random, untrained backbone
PROBE_ROLE_NAMES = {**ROLE_NAMES, "scratch": "(random init)"}
#: what Table 5's numbers are: the head of the OPENIMAGES detector (there is no COCO row to quote)
TABLE5_PAPER_LABEL = quoted_row("detection", "Table 5", [DETECTION_STAND_IN])[1]


def _pipeline(c: float, max_iter: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter, tol=1e-4))


def _check(name: str, x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2:
        raise ValueError(f"{name} features must be 2-D [N, D], got shape {x.shape}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{name}: {x.shape[0]} feature rows but labels of shape {y.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} split is empty")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} features contain NaN or inf")
    return x, y


def linear_probe(train, val, test, *, cs=DEFAULT_CS, max_iter: int = 2000) -> dict:
    """Kornblith et al.'s linear probe: choose C on val, refit on train + val, score top-1 on test (Tables 5, 6).

    Args:
        train, val, test: ``(features [N, D], labels [N])`` pairs (D equal across splits).
        cs: candidate inverse L2 strengths; ties go to the stronger regularisation (smaller C).
        max_iter: L-BFGS iterations per fit (a fit that has not converged is still used; ``converged`` says so).

    Returns:
        ``{"top1", "se", "C", "val_top1": {C: %}, "n_train", "n_val", "n_test", "dim", "converged", "correct",
        "model"}``; accuracies in percent, ``se`` the binomial standard error of ``top1``, ``correct`` the per-image
        correctness on test (bool [n_test], for :func:`~detpretrain.analysis.stats.mcnemar`), ``model`` the refit
        scikit-learn pipeline (``StandardScaler`` -> ``LogisticRegression``; the mask-out chapter turns it into a
        torch head). The fits run with one BLAS thread (:func:`detpretrain.analysis.blas.one_blas_thread`).

    Raises:
        ValueError: non-2-D or non-finite features, label/row mismatch, an empty split, different D across splits,
            or test / val labels the training part never saw.
    """
    from sklearn.exceptions import ConvergenceWarning

    (xtr, ytr), (xva, yva), (xte, yte) = (_check(n, *s) for n, s in zip(("train", "val", "test"), (train, val, test)))
    if not xtr.shape[1] == xva.shape[1] == xte.shape[1]:
        raise ValueError(f"feature dimensions differ: train {xtr.shape[1]}, val {xva.shape[1]}, test {xte.shape[1]}")
    unseen = sorted(set(np.unique(np.concatenate([yva, yte])).tolist()) - set(np.unique(ytr).tolist()))
    if unseen:
        raise ValueError(f"labels {unseen[:5]} occur in val/test but not in train")
    if len(cs) == 0:
        raise ValueError("cs is empty")
    converged = True
    val_top1 = {}
    with warnings.catch_warnings(record=True) as caught, one_blas_thread():  # 2-17x faster (analysis.blas)
        warnings.simplefilter("always", ConvergenceWarning)
        for c in sorted(cs):
            val_top1[float(c)] = 100.0 * _pipeline(c, max_iter).fit(xtr, ytr).score(xva, yva)
        best = max(val_top1, key=lambda c: (val_top1[c], -c))
        final = _pipeline(best, max_iter).fit(np.concatenate([xtr, xva]), np.concatenate([ytr, yva]))
        correct = final.predict(xte) == yte
        top1 = 100.0 * float(np.mean(correct))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    p = top1 / 100.0
    return {"top1": top1, "se": 100.0 * math.sqrt(p * (1 - p) / len(yte)), "C": best, "val_top1": val_top1,
            "n_train": len(ytr), "n_val": len(yva), "n_test": len(yte), "dim": int(xtr.shape[1]),
            "converged": converged, "correct": correct, "model": final}


def probe_features(arrays: dict, feature: str | None = None, **kwargs) -> dict:
    """:func:`linear_probe` on cached arrays ``{"train": {...}, "val": {...}, "test": {...}}``.

    ``feature`` names the array inside each split (``"features"`` for Conv5 caches, a :data:`HEAD_FEATURES` name for
    head caches); labels are ``"labels"``.
    """
    key = feature or "features"
    return linear_probe(*[(arrays[s][key], arrays[s]["labels"]) for s in ("train", "val", "test")], **kwargs)


def split_sizes(data) -> str:
    """``"<train>/<val>/<test> images, <k> classes"`` of a :class:`~detpretrain.experiments.features.ProbeData`."""
    return f"{len(data.train)}/{len(data.val)}/{len(data.test)} images, {len(data.classes)} classes"


def configuration_table(profile, datasets: dict, probe_pretrains, finetune_pretrains, seeds, replicates: int = 1):
    """The classification chapter's configuration: each target (its paper role, corpus and split sizes), the probed
    and the fine-tuned backbones, the probe's C grid, the fine-tuning schedule, the seeds and the pre-training
    replicates, as a settings table."""
    from detpretrain.chapter import settings_frame

    o = profile.cls_finetune
    rows = [(f"{d.paper_name} role", f"{d.describe}: {len(d.train)} train / {len(d.val)} val / {len(d.test)} test, "
                                     f"{len(d.classes)} classes") for d in datasets.values()]
    rows += [("probe backbones", ", ".join(probe_pretrains)), ("fine-tuned backbones", ", ".join(finetune_pretrains)),
             ("probe C grid", ", ".join(f"{c:g}" for c in DEFAULT_CS)),
             ("classification fine-tuning", f"{o.epochs} epochs, batch {o.batch_size}, lr {o.lr}"),
             ("fine-tuning seeds", ", ".join(map(str, seeds))),
             ("pre-training replicates", f"{replicates} per pre-trained backbone (crossed with the seeds)")]
    return settings_frame(rows)


def probe_keys(pretrains, replicates: int = 1) -> list[str]:
    """The backbones the Conv5 probes read: every pre-training replicate (:func:`~detpretrain.experiments.common.
    replicate_key`) of each trained backbone of ``pretrains``, ``scratch`` once (its random backbones are seeds)."""
    from detpretrain.experiments.common import replicate_key

    return [replicate_key(p, r) for p in pretrains for r in (range(replicates) if p != "scratch" else (0,))]


def conv5_probes(data, pretrains, profile, *, seeds=(0,), replicates: int = 1, store=None, device: str = "auto",
                 label: str | None = None, log=print, corpus: dict | None = None) -> list[dict]:
    """Table 6's probes on one dataset: a linear probe (:func:`probe_features`) on the cached Conv5 features of each
    backbone (:func:`detpretrain.experiments.features.backbone_features`); ``scratch`` once per seed (a different
    random backbone each), the trained backbones once per pre-training replicate (:func:`probe_keys`).

    Args:
        data: a :class:`~detpretrain.experiments.features.ProbeData`.
        pretrains: backbone names (``imagenet-cls``, ``detection``, ``imagenet-loc``, ``scratch``, ...).
        seeds: the random backbones of ``scratch``.
        replicates: the pre-training replicates of each trained backbone.
        label: the ``dataset`` of the rows (default ``data.paper_name``, which :func:`table6` looks up in the paper;
            ``"sizes"``: ``"<data.name> (<split_sizes>)"``, for real datasets shown with their sizes).
        corpus: the corpus variant the backbones were pre-trained on.

    Returns:
        one row per probe: ``dataset``, ``target`` (``data.name``), ``pretrain``, ``replicate``, ``seed``, ``top1``,
        ``se`` (percent), ``C``, ``dim``, ``source`` (the backbone's run hash or random-backbone id), ``correct``
        (per-test-image correctness, for :func:`probe_claims`).
    """
    from detpretrain.experiments.common import split_key
    from detpretrain.experiments.features import backbone_features

    label = f"{data.name} ({split_sizes(data)})" if label == "sizes" else label
    rows = []
    for key in probe_keys(pretrains, replicates):
        pre, replicate = split_key(key)
        for seed in (seeds if pre == "scratch" else (0,)):
            arrays = backbone_features(key, data, profile, store=store, seed=seed, device=device, log=log,
                                       corpus=corpus)
            res = probe_features(arrays)
            rows.append({"dataset": label or data.paper_name, "target": data.name, "pretrain": pre,
                         "replicate": replicate, "seed": seed, "top1": res["top1"], "se": res["se"], "C": res["C"],
                         "dim": res["dim"], "source": arrays["source"], "correct": res["correct"]})
    return rows


def probe_sources(rows: list[dict]) -> dict[str, list[str]]:
    """``{pretrain: [backbone ids]}`` of :func:`conv5_probes` rows (for :func:`detpretrain.chapter.provenance`)."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r["source"] not in out.setdefault(r["pretrain"], []):
            out[r["pretrain"]].append(r["source"])
    return out


def table6(rows: list[dict]) -> pd.DataFrame:
    """Table 6: linear-probe top-1 by dataset and backbone, with the paper's values beside ours.

    Args:
        rows: ``{"dataset": paper dataset name, "pretrain": key, "seed": int, "top1": %, "se": %}`` per probe
            (several seeds for ``scratch``).

    Returns:
        one row per (dataset, pretrain): ``pre-training`` (our backbone's role, :data:`PROBE_ROLE_NAMES`), ``ours``
        (mean over backbones), ``± se`` (binomial, mean over backbones), ``sd over backbones`` (NaN for a single
        backbone), ``backbones``, ``paper`` (Table 6's value) and ``paper column`` (which one: Table 6 has
        IMAGENET-CLS and OPENIMAGES only, so ``detection``, the COCO role, is quoted with OPENIMAGES, labelled so).
    """
    frame = pd.DataFrame(rows)
    out = []
    for (ds, pre), g in frame.groupby(["dataset", "pretrain"], sort=False):
        paper_row, paper_label = quoted_row(pre, "Table 6", TABLE6.get(ds, {}))
        out.append({"dataset": ds, "pre-training": PROBE_ROLE_NAMES.get(pre, pre), "ours": g["top1"].mean(),
                    "± se": g["se"].mean(),
                    "sd over backbones": g["top1"].std(ddof=1) if len(g) > 1 else math.nan,
                    "backbones": len(g), "paper": TABLE6.get(ds, {}).get(paper_row, math.nan),
                    "paper column": paper_label if paper_row else "–"})
    return pd.DataFrame(out)


def table5(probes: dict[str, dict], names: dict[str, str]) -> pd.DataFrame:
    """Table 5: linear-probe top-1 of each detection-head feature set, beside the paper's (CALTECH-256, the head of
    the OPENIMAGES detector: Table 5 has no COCO row, :data:`TABLE5_PAPER_LABEL`).

    Args:
        probes: ``{feature: linear_probe result}`` for features of :data:`detpretrain.experiments.features.HEAD_FEATURES`.
        names: our row labels with dimensions (:func:`detpretrain.experiments.features.head_feature_names`).
    """
    from detpretrain.experiments.features import HEAD_FEATURE_PAPER

    return pd.DataFrame([{"feature": names.get(f, f), "dim": r["dim"], "ours": r["top1"], "± se": r["se"],
                          "C": r["C"], "paper feature": HEAD_FEATURE_PAPER.get(f, f),
                          "paper": TABLE5.get(HEAD_FEATURE_PAPER.get(f, f), math.nan)} for f, r in probes.items()])


#: Table 5's orderings: the first probe of each pair is the paper's better one (pooling helps, FC1 > FC2)
TABLE5_ORDERINGS = (("convproj_1x1", "convproj_2x2"), ("convproj_2x2", "convproj_4x4"), ("convproj_4x4", "convproj"),
                    ("convproj_1x1", "convproj"), ("fc1", "fc2"))
#: the paper's names of the head features in Table 5's claims (the ConvProj blob and its average pools to 4x4, 2x2
#: and 1x1; the two fully connected layers), without shapes: a claim's name must not change with the profile's widths
#: (the mechanisms page joins claims across executions by name), while the table's rows carry the shapes
#: (:data:`detpretrain.experiments.features.HEAD_FEATURE_PAPER`, :func:`~detpretrain.experiments.features.head_feature_names`)
TABLE5_CLAIM_NAMES = {"convproj": "ConvProj blob", "convproj_4x4": "ConvProj 4x4", "convproj_2x2": "ConvProj 2x2",
                      "convproj_1x1": "ConvProj 1x1", "fc1": "FC1", "fc2": "FC2"}


def table5_claims(probes, orderings=TABLE5_ORDERINGS, label: str = "") -> dict[str, Verdict]:
    """Table 5's orderings on our detector's head (pooling helps: ConvProj 1x1 > 2x2 > 4x4 > blob; FC1 > FC2).

    Args:
        probes: ``{feature: probe result with "correct"}`` (:func:`probe_features`, :func:`matched_probes`) or
            ``{feature: [N_test] bool}`` of one detector, or a list of such dicts, one per pre-training replicate of
            the detection pre-training (the same test images in each).
        label: appended to each claim's name (e.g. ``" (P5, PCA)"``).

    Returns:
        ``{"Table 5: <a> > <b><label>": Verdict}`` (top-1 points, ``a - b``; ``a``, ``b`` the paper's names,
        :data:`TABLE5_CLAIM_NAMES`, e.g. ``"Table 5: ConvProj 1x1 > ConvProj blob"``) for the pairs every dict probed. With
        R >= 2 dicts the verdict is over the pre-training runs: a t interval over the R per-replicate top-1
        differences (:func:`~detpretrain.analysis.claims.unit_verdict`, the test images within each). With one, an
        exact McNemar test of the two probes on the same test images (:func:`~detpretrain.analysis.stats.mcnemar`),
        about this detector's features (``replicated=False``).

    Raises:
        ValueError: an empty list.
    """
    from detpretrain.analysis.stats import per_replicate

    reps = per_replicate(probes, "table5_claims", "probes")

    def correct(p, f):
        return np.asarray(p[f]["correct"] if isinstance(p[f], dict) else p[f], dtype=bool)

    out = {}
    for a, b in orderings:
        if not all(a in p and b in p for p in reps):
            continue
        name = f"Table 5: {TABLE5_CLAIM_NAMES.get(a, a)} > {TABLE5_CLAIM_NAMES.get(b, b)}{label}"
        if len(reps) == 1:
            out[name] = dataclasses.replace(mcnemar(correct(reps[0], a), correct(reps[0], b)), replicated=False)
        else:
            diffs = pd.DataFrame({"replicate": range(len(reps)),
                                  "diff": [100 * (correct(p, a).mean() - correct(p, b).mean()) for p in reps]})
            out[name] = unit_verdict(diffs, subunit="probe pair")
    return out


def probe_claims(rows, better: str = "imagenet-cls", worse: str = "detection") -> dict[str, Verdict]:
    """Table 6's claim per dataset: the ``better`` backbone's Conv5 probe beats the ``worse`` one's (top-1 points).

    With two or more pre-training replicates of both, the verdict is over the per-replicate differences
    (:func:`~detpretrain.analysis.claims.unit_verdict`: the unit is the pre-training run); with one, it is McNemar's
    exact test over the test images of the two probes (about these particular backbones, ``replicated=False``).

    Args:
        rows: :func:`conv5_probes`' rows (``dataset``, ``pretrain``, ``replicate``, ``top1``, ``correct``).

    Returns:
        ``{"Table 6, <dataset>: <better> probe > <worse> probe": Verdict}``.
    """
    frame = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    out = {}
    for ds, g in frame.groupby("dataset", sort=False):
        a, b = g[g["pretrain"] == better], g[g["pretrain"] == worse]
        if a.empty or b.empty:
            continue
        name = f"Table 6, {ds}: {PROBE_ROLE_NAMES[better]} probe > {PROBE_ROLE_NAMES[worse]} probe"
        if a["replicate"].nunique() > 1 and b["replicate"].nunique() > 1:
            out[name] = unit_verdict(paired_units(g.rename(columns={"top1": "value"}), better, worse),
                                     subunit="probe")
        else:
            out[name] = dataclasses.replace(mcnemar(a["correct"].iloc[0], b["correct"].iloc[0]), replicated=False)
    return out


def probe_gaps(rows) -> pd.DataFrame:
    """Table 6's gaps beside the paper's: per dataset, our IMAGENET-CLS minus detection probe top-1 (mean over
    replicates) and the paper's gap between the entries :func:`~detpretrain.paper.quoted_row` quotes (``paper
    columns``: IMAGENET-CLS minus OPENIMAGES, Table 6 has no COCO column)."""
    frame = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    out = []
    for ds, g in frame.groupby("dataset", sort=False):
        a, b = (g.loc[g["pretrain"] == p, "top1"] for p in ("imagenet-cls", "detection"))
        if a.empty or b.empty:
            continue
        paper = TABLE6.get(ds, {})
        (row_a, label_a), (row_b, label_b) = (quoted_row(p, "Table 6", paper) for p in ("imagenet-cls", "detection"))
        out.append({"dataset": ds, "gap": a.mean() - b.mean(),
                    "paper gap": paper.get(row_a, math.nan) - paper.get(row_b, math.nan),
                    "paper columns": f"{label_a} minus {label_b}" if row_a and row_b else "–"})
    return pd.DataFrame(out, columns=["dataset", "gap", "paper gap", "paper columns"])


def table8(results: dict[str, dict]) -> pd.DataFrame:
    """Table 8: full fine-tuning top-1 by dataset and pre-training, mean and sd over fine-tunings, the paper's beside
    (Table 8 has a COCO row: ``detection``, the COCO role, is quoted with it).

    Args:
        results: ``{paper dataset name: result of detpretrain.experiments.classification.run_classification_transfer}``.
    """
    out = []
    for ds, res in results.items():
        frame = finetune_frame({ds: res})
        for pre, g in frame.groupby("pretrain", sort=False):
            paper_row, _ = quoted_row(pre, "Table 8", TABLE8)
            out.append({"dataset": ds, "pre-training": PROBE_ROLE_NAMES.get(pre, pre), "top1": g["top1"].mean(),
                        "sd": g["top1"].std(ddof=1) if len(g) > 1 else math.nan, "runs": len(g),
                        "paper": TABLE8.get(paper_row, {}).get(ds, math.nan)})
    return pd.DataFrame(out)


def finetune_frame(results: dict[str, dict]) -> pd.DataFrame:
    """One row per fine-tuning run of Table 8: ``dataset``, ``pretrain``, ``replicate``, ``seed``, ``top1``
    (percent).

    Args:
        results: as for :func:`table8`.
    """
    return pd.DataFrame([{"dataset": ds, "pretrain": r["pretrain"], "replicate": int(r.get("replicate", 0)),
                          "seed": r["seed"], "top1": r["metrics"]["top1"]}
                         for ds, res in results.items() for r in res["runs"]],
                        columns=["dataset", "pretrain", "replicate", "seed", "top1"])


def finetune_units(results: dict[str, dict], better: str = "imagenet-cls",
                   worse: str = "detection") -> dict[str, pd.DataFrame]:
    """Table 8's paired top-1 differences ``better - worse`` per dataset, one row per unit (replicate, seed; same
    seed = same data order): ``{dataset: frame with columns replicate, seed, diff}``."""
    from detpretrain.analysis.claims import unit_frame

    return {ds: paired_units(unit_frame(res, lambda m: m["top1"]), better, worse) for ds, res in results.items()}


#: the dataset of the classification chapter's primary claim (Table 8, the CALTECH-256 role)
PRIMARY_DATASET = "CALTECH-256"


def classification_claims(transfer: dict[str, dict], *, probe_rows=None, head_probes=None,
                          better: str = "imagenet-cls", worse: str = "detection") -> dict[str, Verdict]:
    """The classification chapter's claims, primary first (:data:`~detpretrain.analysis.claims.PRIMARY_CLAIMS`
    ``["classification"]``: after fine-tuning on the CALTECH-256-role target, IMAGENET-CLS pre-training beats
    detection pre-training): Table 8 on every dataset (verdicts over pre-training runs), Table 6
    (:func:`probe_claims`) and Table 5 (:func:`table5_claims`).

    Returns:
        ``{claim: Verdict}``; the primary is present even when the CALTECH-256 role was not run (no estimate).
    """
    primary = PRIMARY_CLAIMS["classification"]
    units = finetune_units(transfer, better, worse)
    empty = pd.DataFrame(columns=["replicate", "seed", "diff"])
    claims = {primary.name: unit_verdict(units.get(PRIMARY_DATASET, empty), claim=primary)}
    for ds, frame in units.items():
        if ds != PRIMARY_DATASET:
            claims[f"Table 8, {ds}: {PROBE_ROLE_NAMES[better]} > {PROBE_ROLE_NAMES[worse]}"] = unit_verdict(frame)
    if probe_rows is not None:
        claims.update(probe_claims(probe_rows, better, worse))
    if head_probes is not None:
        claims.update(table5_claims(head_probes))
    return claims


# ---- issue 18: Table 5 at the paper's level and at a common dimension ------------------------------------------------
def fpn_level_of_roi(width: float, height: float, *, k_min: int = 2, k_max: int = 5, canonical_scale: int = 224,
                     canonical_level: int = 4) -> int:
    """The FPN level P_k that torchvision's ``MultiScaleRoIAlign`` pools a ``width x height`` px RoI from (Lin et al.
    2017, eq. 1): ``k = floor(canonical_level + log2(sqrt(w h) / canonical_scale) + 1e-6)`` clamped to
    ``[k_min, k_max]``. A whole 128 px image gives P3 (stride 8); the paper's ConvProj sits at the Conv5 stride
    (P5, FPN key ``"3"``)."""
    k = math.floor(canonical_level + math.log2(math.sqrt(width * height) / canonical_scale) + 1e-6)
    return int(min(max(k, k_min), k_max))


def pca_project(train, val, test, dim: int):
    """Project three splits' features on the first ``dim`` principal components of the TRAINING split
    (:class:`sklearn.decomposition.PCA`, centred, no whitening): the dimension-matched control of Table 5, where
    3,136-d and 64-d features on ~1,000 images otherwise confound "spatial information hurts" with p >> n.

    Args:
        train, val, test: ``[N_s, D]`` arrays.
        dim: components kept, ``1 <= dim <= min(N_train, D)``.

    Returns:
        ``(train [N_train, dim], val [N_val, dim], test [N_test, dim])`` float64.

    Raises:
        ValueError: ``dim`` out of range or splits of different D.
    """
    from sklearn.decomposition import PCA

    tr, va, te = (np.asarray(x, dtype=np.float64) for x in (train, val, test))
    if not tr.shape[1] == va.shape[1] == te.shape[1]:
        raise ValueError(f"feature dimensions differ: {tr.shape[1]}, {va.shape[1]}, {te.shape[1]}")
    if not 1 <= dim <= min(tr.shape):
        raise ValueError(f"dim must be in [1, min(N_train, D) = {min(tr.shape)}], got {dim}")
    pca = PCA(n_components=int(dim), svd_solver="full").fit(tr)
    return pca.transform(tr), pca.transform(va), pca.transform(te)


def probe_correct(result: dict, test_features, test_labels) -> np.ndarray:
    """[N_test] bool: which test images a :func:`linear_probe` result's model classifies correctly."""
    return result["model"].predict(np.asarray(test_features, dtype=np.float64)) == np.asarray(test_labels)


def matched_probes(arrays: dict, features, dim: int | None = None, **kwargs) -> dict:
    """:func:`linear_probe` of each feature set after :func:`pca_project` to one common dimension.

    Args:
        arrays: ``{"train": {feature: [N, D], "labels"}, "val": ..., "test": ...}`` (a head-feature cache).
        features: the feature sets to compare.
        dim: the common dimension; default the smallest of ``min(D)`` over ``features`` and ``N_train - 1``.

    Returns:
        ``{feature: linear_probe result + {"pca_dim", "correct" [N_test] bool}}``.
    """
    n_train = len(arrays["train"]["labels"])
    if dim is None:
        dim = min(min(arrays["train"][f].shape[1] for f in features), n_train - 1)
    out = {}
    for f in features:
        tr, va, te = pca_project(arrays["train"][f], arrays["val"][f], arrays["test"][f], dim)
        r = linear_probe((tr, arrays["train"]["labels"]), (va, arrays["val"]["labels"]),
                         (te, arrays["test"]["labels"]), **kwargs)
        out[f] = {**r, "pca_dim": int(dim), "correct": probe_correct(r, te, arrays["test"]["labels"])}
    return out


def finetune_gap_claims(results: dict[str, dict], better: str = "imagenet-cls", worse: str = "detection") -> dict:
    """Table 8's gap per dataset: ``better - worse`` top-1 paired by pre-training replicate and fine-tuning seed
    (:func:`finetune_units`), each a :func:`~detpretrain.analysis.claims.unit_verdict` (over pre-training runs with
    two or more replicates; conditional on the one pre-training run of each backbone with one).

    Returns:
        ``{"Table 8: <better> minus <worse>, <dataset>": Verdict}`` (top-1 points).
    """
    return {f"Table 8: {better} minus {worse}, {ds}": unit_verdict(frame)
            for ds, frame in finetune_units(results, better, worse).items()}
