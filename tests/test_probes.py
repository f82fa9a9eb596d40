"""Linear probes (Kornblith et al. protocol) and Tables 5, 6, 8 of Li et al. 2019 on hand-made inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from detpretrain.analysis import claims as C
from detpretrain.analysis import probes as P
from detpretrain.paper import TABLE5, TABLE6, TABLE8


def blobs(n_per_class: int, centres, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(c, spread, size=(n_per_class, len(c))) for c in centres])
    y = np.repeat(np.arange(len(centres)), n_per_class)
    return x, y


CENTRES = [(0.0, 0.0, 0.0), (6.0, 0.0, 0.0), (0.0, 6.0, 0.0)]


def test_separable_classes_are_read_perfectly_and_ties_go_to_the_strongest_regularisation():
    splits = [blobs(20, CENTRES, 0.3, s) for s in (0, 1, 2)]
    res = P.linear_probe(*splits, cs=(0.01, 1.0, 100.0))
    assert res["top1"] == 100.0 and res["se"] == 0.0
    assert res["val_top1"] == {0.01: 100.0, 1.0: 100.0, 100.0: 100.0}
    assert res["C"] == 0.01  # every C is perfect on val: the smallest C (strongest L2) wins the tie
    assert (res["n_train"], res["n_val"], res["n_test"], res["dim"]) == (60, 60, 60, 3)


def test_chosen_c_maximises_validation_accuracy_and_the_refit_uses_train_plus_val():
    train, val, test = (blobs(15, CENTRES, 4.0, s) for s in (3, 4, 5))
    cs = (1e-4, 1e-2, 1.0, 1e2)
    res = P.linear_probe(train, val, test, cs=cs)
    # independent: the same protocol written out with scikit-learn directly
    val_acc = {}
    for c in cs:
        scaler = StandardScaler().fit(train[0])
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(train[0]), train[1])
        val_acc[c] = 100 * clf.score(scaler.transform(val[0]), val[1])
    assert res["val_top1"] == pytest.approx(val_acc)
    best = max(val_acc, key=lambda c: (val_acc[c], -c))
    assert res["C"] == best
    xy = np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]])
    scaler = StandardScaler().fit(xy[0])
    clf = LogisticRegression(C=best, max_iter=2000).fit(scaler.transform(xy[0]), xy[1])
    expected = 100 * clf.score(scaler.transform(test[0]), test[1])
    assert res["top1"] == pytest.approx(expected)
    p = expected / 100
    assert res["se"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 45))


@pytest.mark.parametrize("mutate, message", [
    (lambda s: ((s[0][0][:, :2], s[0][1]), s[1], s[2]), "feature dimensions differ"),
    (lambda s: ((s[0][0], s[0][1][:-1]), s[1], s[2]), "feature rows but labels"),
    (lambda s: (s[0], (np.full_like(s[1][0], np.nan), s[1][1]), s[2]), "NaN or inf"),
    (lambda s: (s[0], s[1], (s[2][0][:0], s[2][1][:0])), "test split is empty"),
    (lambda s: (s[0], s[1], (s[2][0], s[2][1] + 5)), "occur in val/test but not in train"),
    (lambda s: ((s[0][0][:, 0], s[0][1]), s[1], s[2]), "must be 2-D"),
])
def test_bad_input_is_named(mutate, message):
    splits = [blobs(5, CENTRES, 0.3, s) for s in (0, 1, 2)]
    with pytest.raises(ValueError, match=message):
        P.linear_probe(*mutate(splits), cs=(1.0,))


def test_table6_averages_backbones_and_cites_the_paper():
    rows = [{"dataset": "CALTECH-256", "pretrain": "imagenet-cls", "seed": 0, "top1": 80.0, "se": 2.0},
            {"dataset": "CALTECH-256", "pretrain": "detection", "seed": 0, "top1": 70.0, "se": 3.0},
            {"dataset": "CALTECH-256", "pretrain": "scratch", "seed": 0, "top1": 10.0, "se": 1.0},
            {"dataset": "CALTECH-256", "pretrain": "scratch", "seed": 1, "top1": 14.0, "se": 1.0}]
    t = P.table6(rows).set_index("pre-training")
    assert t.loc["IMAGENET-CLS", "paper"] == TABLE6["CALTECH-256"]["IMAGENET-CLS"] == 84.7
    assert t.loc["COCO", "paper"] == 76.7 and t.loc["COCO", "paper column"] == "OPENIMAGES (no COCO column in Table 6)"
    assert t.loc["(random init)", "ours"] == 12.0
    assert t.loc["(random init)", "sd over backbones"] == pytest.approx(np.std([10, 14], ddof=1))
    assert math.isnan(t.loc["(random init)", "paper"]) and math.isnan(t.loc["IMAGENET-CLS", "sd over backbones"])
    gaps = P.probe_gaps(rows).iloc[0]
    assert gaps["gap"] == 10.0 and gaps["paper gap"] == pytest.approx(84.7 - 76.7)


def test_probe_claims_mcnemar_for_one_backbone_and_runs_for_replicates():
    # one backbone each: McNemar on the same 40 test images (A right where B is wrong on 12, the reverse on 2)
    a = np.array([1] * 12 + [0] * 2 + [1] * 20 + [0] * 6, bool)
    b = np.array([0] * 12 + [1] * 2 + [1] * 20 + [0] * 6, bool)
    rows = [{"dataset": "CALTECH-256", "pretrain": "imagenet-cls", "replicate": 0, "top1": 80.0, "correct": a},
            {"dataset": "CALTECH-256", "pretrain": "detection", "replicate": 0, "top1": 55.0, "correct": b}]
    (v,) = P.probe_claims(rows).values()
    assert v.estimate == pytest.approx(100 * 10 / 40) and v.unit == "test image" and not v.replicated
    assert v.p_value == pytest.approx(2 * sum(math.comb(14, k) for k in range(3)) / 2 ** 14)
    assert v.label == "holds"
    # three pre-training replicates each: the verdict is over the per-replicate differences
    rows = [{"dataset": "SUN-397", "pretrain": p, "replicate": r, "seed": 0, "top1": t, "correct": a}
            for r, (ti, td) in enumerate([(60, 50), (61, 53), (62, 52)]) for p, t in (("imagenet-cls", ti),
                                                                                    ("detection", td))]
    (v,) = P.probe_claims(rows).values()
    assert v.estimate == pytest.approx(28 / 3) and v.n == 3 and v.unit == "pre-training run" and v.replicated


def test_table5_rows_and_orderings():
    def probe(top1, se=1.0, dim=10):
        correct = np.arange(100) < top1  # nested: a probe right on the first top1 of 100 test images
        return {"top1": top1, "se": se, "C": 1.0, "dim": dim, "correct": correct}

    probes = {"conv5": probe(60), "convproj": probe(40), "convproj_4x4": probe(50), "convproj_2x2": probe(52),
              "convproj_1x1": probe(51), "fc1": probe(45, se=3), "fc2": probe(44, se=3)}
    names = {"convproj": "ConvProj blob (64,7,7)"}
    t = P.table5(probes, names)
    assert list(t["feature"])[:2] == ["conv5", "ConvProj blob (64,7,7)"]
    assert t.set_index("paper feature").loc["FC1 (1024)", "paper"] == TABLE5["FC1 (1024)"] == 71.6
    verdicts = {k: v.label for k, v in P.table5_claims(probes).items()}
    # McNemar: 1 or 2 discordant images cannot reach 5 %; 10 discordant ones in one direction can (p = 2 / 2**10)
    assert verdicts == {"Table 5: ConvProj 1x1 > ConvProj 2x2": "not resolved",
                        "Table 5: ConvProj 2x2 > ConvProj 4x4": "not resolved",
                        "Table 5: ConvProj 4x4 > ConvProj blob": "holds",
                        "Table 5: ConvProj 1x1 > ConvProj blob": "holds",
                        "Table 5: FC1 > FC2": "not resolved"}


def test_table8_and_its_claims_over_pre_training_runs():
    def res(values):
        return {"runs": [{"pretrain": p, "replicate": r, "seed": 0, "metrics": {"top1": v}}
                         for (p, r), v in values.items()]}

    transfer = {"SUN-397": res({("imagenet-cls", 0): 60.0, ("imagenet-cls", 1): 62.0, ("imagenet-cls", 2): 61.0,
                                ("detection", 0): 55.0, ("detection", 1): 58.0, ("detection", 2): 57.0}),
                "CALTECH-256": res({("imagenet-cls", 0): 80.0, ("detection", 0): 70.0})}
    t = P.table8(transfer).set_index(["dataset", "pre-training"])
    assert t.loc[("SUN-397", "IMAGENET-CLS"), "top1"] == 61.0 and t.loc[("SUN-397", "IMAGENET-CLS"), "sd"] == 1.0
    assert t.loc[("SUN-397", "IMAGENET-CLS"), "paper"] == TABLE8["IMAGENET-CLS"]["SUN-397"] == 61.5
    assert t.loc[("SUN-397", "COCO"), "paper"] == TABLE8["COCO"]["SUN-397"] == 57.8
    assert t.loc[("SUN-397", "COCO"), "runs"] == 3
    claims = P.classification_claims(transfer)
    primary, sun = claims.values()
    assert list(claims)[0] == C.PRIMARY_CLAIMS["classification"].name
    assert primary.estimate == 10.0 and primary.label == "not resolved" and primary.n == 1  # one run: no interval
    diffs = np.array([5.0, 4.0, 4.0])
    half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / math.sqrt(3)
    assert sun.estimate == pytest.approx(diffs.mean()) and sun.ci_low == pytest.approx(diffs.mean() - half)
    assert sun.label == "holds" and sun.unit == "pre-training run"


def test_probe_fits_run_with_one_blas_thread_and_restore_the_callers(monkeypatch):
    """The L-BFGS fits are many small BLAS calls, 2-17x faster on one thread (benchmarks/bench_blas.py): inside
    linear_probe every fit sees one BLAS thread, whatever the caller had; after it the caller's count is back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen = []
    make = P._pipeline

    def recording(c, max_iter):
        pipeline = make(c, max_iter)
        fit = pipeline.fit

        def fit_and_record(*args, **kwargs):
            seen.append(blas_threads())
            return fit(*args, **kwargs)

        pipeline.fit = fit_and_record
        return pipeline

    monkeypatch.setattr(P, "_pipeline", recording)
    splits = [blobs(20, CENTRES, 0.3, s) for s in (0, 1, 2)]
    with threadpool_limits(limits=2, user_api="blas"):  # a kernel with two BLAS threads per library
        assert blas_threads() == {2}
        plain = P.linear_probe(*splits, cs=(0.01, 1.0))
        assert blas_threads() == {2}
    assert seen == [{1}] * 3  # two C values on val, then the refit
    assert plain["top1"] == 100.0
