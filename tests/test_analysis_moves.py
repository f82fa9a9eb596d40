"""The computations that moved out of the chapters into ``detpretrain.analysis`` (and the paper's roles), each on
hand-made inputs whose answer is known."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from detpretrain import paper
from detpretrain.analysis import ablations as B
from detpretrain.analysis import claims as C
from detpretrain.analysis import detection as A
from detpretrain.analysis import eigenspectrum as E
from detpretrain.analysis import feature_space as S
from detpretrain.analysis import frozen as Z
from detpretrain.analysis import pretraining as R
from detpretrain.analysis import probes as P
from detpretrain.analysis import visualisation as V

IOUS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


# ----------------------------------------------------------------------------------------------- the paper's roles


def test_detection_plays_coco_and_tables_without_coco_quote_openimages_by_name():
    assert paper.ROLE_NAMES["detection"] == "COCO"
    assert paper.quoted_row("detection", "Table 1", paper.TABLE1) == ("COCO", "COCO")
    assert paper.quoted_row("detection", "Table 8", paper.TABLE8) == ("COCO", "COCO")
    assert paper.quoted_row("detection", "Table 4", paper.TABLE4) == ("OPENIMAGES", "OPENIMAGES (no COCO row in Table 4)")
    assert paper.quoted_row("detection", "Table 3", paper.TABLE3)[1] == "OPENIMAGES (no COCO row in Table 3)"
    assert paper.quoted_row("detection", "Table 6", paper.TABLE6["SUN-397"]) == (
        "OPENIMAGES", "OPENIMAGES (no COCO column in Table 6)")
    assert paper.quoted_row("imagenet-cls", "Table 4", paper.TABLE4) == ("IMAGENET-CLS", "IMAGENET-CLS")
    assert paper.quoted_row("scratch", "Table 4", paper.TABLE4) == (None, "(from scratch)")
    # Table 1's gap for the COCO role: 86.8 - 84.6 and 80.7 - 76.3 (OPENIMAGES' 81.1 would give 4.8)
    assert (paper.GAP_AT_05, paper.GAP_AT_07) == (2.2, 4.4)
    assert paper.SEG_GAIN == 2.9  # Table 4: OPENIMAGES 78.6 - IMAGENET-CLS 75.7 (no COCO row)


# ----------------------------------------------------------------------------------------------- detection


def _det_result(per_pretrain: dict[str, list[tuple[float, float]]], tmp_path=None) -> dict:
    """(mAP@0.5, mAP@0.7) per seed; per-class AP = the mAP for class 'car', 0 for 'cat'."""
    runs = []
    for pretrain, seeds in per_pretrain.items():
        for seed, (at05, at07) in enumerate(seeds):
            curve = [at05 + 2, at05 + 1, at05, at05, at05, (at05 + at07) / 2, at07, at07 / 2, 0.0]
            runs.append({"pretrain": pretrain, "seed": seed, "hash": f"{seed}{pretrain[:3]}".ljust(16, "0"),
                         "run": f"/runs/{pretrain}-{seed}",
                         "metrics": {"iou_thresholds": IOUS, "mAP": curve, "device": "cpu",
                                     "per_class_AP": {"car": curve, "cat": [0.0] * 9},
                                     "history": [{"epoch": 0, "seconds": 60.0 * (seed + 1)}]}})
    return {"profile": "mini", "dataset": "synthetic", "data": "synthetic voc (128 px)", "runs": runs,
            "pretrain_runs": {}}


def test_per_class_ap_pivots_the_mean_over_seeds():
    res = _det_result({"imagenet-cls": [(60, 40), (62, 44)], "detection": [(64, 50)]})
    t = A.per_class_ap(res, 0.7)
    assert list(t.columns) == ["detection", "imagenet-cls"] and list(t.index) == ["car", "cat"]
    assert t.loc["car", "imagenet-cls"] == 42.0 and t.loc["car", "detection"] == 50.0 and t.loc["cat", "detection"] == 0
    assert A.per_class_ap(res, 0.75).empty  # not evaluated there


def test_training_time_table_reads_the_pretraining_runs_and_sums_seeds(tmp_path):
    res = _det_result({"imagenet-cls": [(60, 40), (62, 44)], "detection": [(64, 50)]})
    run = tmp_path / "classification-abc"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"history": [{"seconds": 30.0}, {"seconds": 90.0}],
                                                  "device": "cpu"}))
    res["pretrain_runs"] = {"imagenet-cls": str(run)}
    t = A.training_time_table(res).set_index("run")
    assert t.loc["pre-training: imagenet-cls", "training (min)"] == 2.0
    assert t.loc["fine-tuning from imagenet-cls", "runs"] == 2
    assert t.loc["fine-tuning from imagenet-cls", "training (min)"] == 3.0  # 1 + 2 minutes
    assert "**6.0 minutes**" in A.training_time_sentence(res)


def test_results_overview_quotes_the_coco_role_from_the_constants():
    res = _det_result({"imagenet-cls": [(60, 40), (62, 42), (64, 44)],
                       "detection": [(63, 48), (65, 50), (67, 52)]})
    o = A.results_overview(res).set_index("claim")
    assert o.loc["Table 1: COCO (detection), mAP@0.7", "paper"] == "80.7"
    assert o.loc["Table 1: IMAGENET-CLS, mAP@0.5", "ours"] == "62.0 ± 2.0"
    assert o.loc["from scratch, mAP@0.5 / mAP@0.7", "ours"] == "not run / not run"
    assert "+2.2 mAP@0.5 and +4.4 mAP@0.7" in C.PRIMARY_CLAIMS["detection"].paper  # Figure 1's claim: the answer


# ----------------------------------------------------------------------------------------------- ablations


def test_removal_frame_labels_each_run_per_removed_supercategory():
    def run(pretrain, seed, ap):
        return {"pretrain": pretrain, "seed": seed,
                "metrics": {"iou_thresholds": [0.5, 0.7], "per_class_AP": {"car": [0, ap], "cat": [0, 100 - ap]}}}

    res = {"runs": [run("imagenet-loc-cls", 0, 10), run("imagenet-loc", 0, 30), run("imagenet-loc-no-vehicle", 0, 20),
                    run("imagenet-loc-no-animal", 0, 50)]}
    f = B.removal_frame(res, ["vehicle", "animal"])
    got = {(r["removed"], r["pre-training"]): r["mAP@0.7"] for _, r in f.iterrows()}
    assert got == {("vehicle", "LOC (Cls)"): 10, ("vehicle", "LOC"): 30, ("vehicle", "LOC without it"): 20,
                   ("animal", "LOC (Cls)"): 90, ("animal", "LOC"): 70, ("animal", "LOC without it"): 50}


def test_missed_by_level_and_the_paper_table():
    f = pd.DataFrame({"difficult": [False, False, False, True], "level": ["low", "low", "unknown", "low"],
                      "missed": [True, False, True, True], "seed": 0})
    pct = B.missed_by_level({"detection": [f]})
    assert pct.to_dict("records") == [{"pre-training": "detection", "seed": 0, "level": "low", "% missed": 50.0}]
    pct = B.missed_by_level({"detection": [f.assign(replicate=1)]})
    assert pct.to_dict("records") == [{"pre-training": "detection", "replicate": 1, "seed": 0, "level": "low",
                                       "% missed": 50.0}]
    assert B.missed_by_level({"detection": [f.assign(level="unknown")]}).empty
    assert B.paper_table3().set_index("pre-training").loc["OPENIMAGES", "occluded Low % missed"] == 10.1


def test_occlusion_paper_names_the_paper_row_it_quotes():
    text = B.occlusion_paper()
    assert text.startswith("OPENIMAGES (no COCO row in Table 3) vs IMAGENET-CLS: 4.6 and 4.9 percentage points")


# ----------------------------------------------------------------------------------------------- probes (Tables 5, 6, 8)


def test_table6_shows_our_role_and_names_the_paper_column_it_quotes():
    rows = [{"dataset": "SUN-397", "pretrain": "detection", "seed": 0, "top1": 50.0, "se": 1.0},
            {"dataset": "SUN-397", "pretrain": "imagenet-cls", "seed": 0, "top1": 55.0, "se": 1.0}]
    t = P.table6(rows).set_index("pre-training")
    assert t.loc["COCO", "paper"] == 51.1 and t.loc["COCO", "paper column"] == "OPENIMAGES (no COCO column in Table 6)"
    gaps = P.probe_gaps(rows).iloc[0]
    assert gaps["gap"] == 5.0 and gaps["paper gap"] == pytest.approx(6.2)
    assert gaps["paper columns"] == "IMAGENET-CLS minus OPENIMAGES (no COCO column in Table 6)"
    assert P.TABLE5_PAPER_LABEL == "OPENIMAGES (no COCO row in Table 5)"


def test_conv5_probes_probe_each_backbone_once_and_scratch_per_seed(monkeypatch):
    from detpretrain.experiments import features as F

    rng = np.random.default_rng(0)

    def fake_features(pre, data, profile, *, seed=0, **_):
        split = {"features": np.concatenate([rng.normal(0, 0.1, (6, 2)), rng.normal(3, 0.1, (6, 2))]),
                 "labels": np.repeat([0, 1], 6)}
        return {"source": f"{pre}-{seed}", "train": split, "val": split, "test": split}

    monkeypatch.setattr(F, "backbone_features", fake_features)
    data = type("D", (), {"paper_name": "CALTECH-256", "name": "caltech", "train": [0] * 12, "val": [0] * 12,
                          "test": [0] * 12, "classes": ["a", "b"]})()
    rows = P.conv5_probes(data, ["imagenet-cls", "scratch"], "smoke", seeds=(0, 1))
    assert [(r["pretrain"], r["seed"]) for r in rows] == [("imagenet-cls", 0), ("scratch", 0), ("scratch", 1)]
    assert all(r["top1"] == 100.0 and r["dataset"] == "CALTECH-256" for r in rows)
    assert P.probe_sources(rows) == {"imagenet-cls": ["imagenet-cls-0"], "scratch": ["scratch-0", "scratch-1"]}
    labelled = P.conv5_probes(data, ["scratch"], "smoke", label="sizes")
    assert labelled[0]["dataset"] == "caltech (12/12/12 images, 2 classes)"


def test_table8_quotes_the_coco_row_and_finetune_frame_lists_runs():
    res = {"runs": [{"pretrain": "detection", "seed": 0, "metrics": {"top1": 50.0}},
                    {"pretrain": "detection", "seed": 1, "metrics": {"top1": 52.0}}]}
    assert P.table8({"CALTECH-256": res}).set_index("pre-training").loc["COCO", "paper"] == 79.8
    assert P.finetune_frame({"CALTECH-256": res})["top1"].tolist() == [50.0, 52.0]


# ----------------------------------------------------------------------------------------------- eigenspectrum


def _eig_result(dims_i, dims_s, acc_i, acc_s, *, narrow=None, narrow_is_scratch=False, params=(100, 60),
                replicated=False):
    """Spectra whose count at the result's rule ("none", 0.5) is the given dims per seed (ten channels per layer,
    layer1 only), accuracies (mAP@0.5 per seed). ``replicated``: the I entries are pre-training replicates of seed
    0 instead of seeds."""
    runs, spectra = [], {}

    def add(det, seed, d, acc, replicate=0):
        path = f"/runs/{det}-{replicate}-{seed}"
        runs.append({"pretrain": det, "replicate": replicate, "seed": seed, "run": path,
                     "hash": f"{det[:3]}{replicate}{seed}".ljust(16, "0"),
                     "metrics": {"iou_thresholds": [0.5, 0.7], "mAP": [acc, acc / 2], "history": [{}, {}]}})
        ev = np.array([1.0] * d + [0.1] * (10 - d))
        spectra[path] = {0: {"layer1": np.array([1.0] * 3 + [0.1] * 7)}, 2: {"layer1": ev}}

    for k, (d, acc) in enumerate(zip(dims_i, acc_i)):
        add("imagenet-cls", 0 if replicated else k, d, acc, replicate=k if replicated else 0)
    for seed, (d, acc) in enumerate(zip(dims_s, acc_s)):
        add("scratch", seed, d, acc)
    for seed, acc in enumerate(narrow or []):
        add("scratch-narrow", seed, 5, acc)
    cost = {"scratch": {"body_params": params[0], "body_macs": 1000, "detector_params": 1, "detector_macs": 1},
            "scratch-narrow": {"body_params": params[1], "body_macs": 900, "detector_params": 1, "detector_macs": 1},
            "imagenet-cls": {"body_params": params[0], "body_macs": 1000, "detector_params": 1, "detector_macs": 1}}
    return {"runs": runs, "spectra": spectra, "threshold": 0.5, "normalisation": "none",
            "positions": {"layer1": 8}, "cost": cost, "widths": (8, 8, 8, 8), "original_widths": (16, 16, 16, 16),
            "dims_for_widths": (5, 5, 5, 5), "narrow_is_scratch": narrow_is_scratch}


def _stages_only(monkeypatch):
    monkeypatch.setattr(E, "STAGES", ("layer1",))


def test_claim1_layers_differ_over_replicates_at_similar_accuracy(monkeypatch):
    _stages_only(monkeypatch)
    # I: 3 pre-training replicates, 1 seed; S (no pre-training): seed 0, paired with every replicate
    res = _eig_result([8, 9, 8], [4], [50.5, 51, 51.5], [51], replicated=True)
    claims = E.eigen_claims(res)
    # claim 1 is ONE statistic; the per-layer differences are a description, not claims of the Holm family
    assert list(claims)[1:] == [E.CLAIM1] and not any(k.startswith("I ≠ S") for k in claims)
    v = E.layer_dim_differences(res)["layer1"]
    assert v.estimate == pytest.approx(13 / 3 + 0.0 - 0.0) and v.n == 3 and v.unit == "pre-training run"
    # one S run beside 3 I replicates: what these networks show (I higher), but S's run-to-run spread is not in the
    # interval, so the layer is not counted as differing and its direction says so
    assert v.label == "holds" and not v.replicated and v.claim_label == "not resolved"
    text = E.claim1_summary(res, claims)
    assert "**0 of 1**" in text and "layer1 3" in text and "**similar**" in text  # 3 dims at initialisation
    frame = E.layer_dim_table(res)
    assert frame.loc[0, "direction"] == (
        "not resolved (not replicated over pre-training runs; these networks alone: I higher)")
    assert frame.loc[0, "I − S"] == pytest.approx(13 / 3)
    # three S runs, each paired with its I replicate: replicated, and the layer differs
    both = _eig_result([8, 9, 8], [4, 4, 5], [50.5, 51, 51.5], [51, 51, 51], replicated=True)
    for r in both["runs"]:  # S's run r is replicate r (its own training run), not a fine-tuning seed
        if r["pretrain"] == "scratch":
            r["replicate"], r["seed"] = r["seed"], 0
    assert E.layer_dim_differences(both)["layer1"].replicated
    assert "**1 of 1**" in E.claim1_summary(both, E.eigen_claims(both))
    assert E.layer_dim_table(both).loc[0, "direction"] == "I higher"
    far = _eig_result([8, 9, 8], [4], [50, 51, 52], [40], replicated=True)
    assert "**not shown similar**" in E.claim1_summary(far, E.eigen_claims(far))


def test_claim1_single_statistic_against_an_independent_computation(monkeypatch):
    _stages_only(monkeypatch)
    # 3 I replicates and 3 S runs: run pair s = (I run s, S run s)
    res = _eig_result([8, 9, 8], [4, 4, 5], [50, 50, 50], [50, 50, 50], replicated=True)
    fa = [res["spectra"][r["run"]][2]["layer1"] for r in res["runs"] if r["pretrain"] == "imagenet-cls"]
    fb = [res["spectra"][r["run"]][2]["layer1"] for r in res["runs"] if r["pretrain"] == "scratch"]

    def tv(x, y):  # total variation between trace-normalised spectra, written out
        x, y = np.sort(x)[::-1] / np.sum(x), np.sort(y)[::-1] / np.sum(y)
        return 0.5 * np.abs(x - y).sum()

    excess = [tv(fa[s], fb[s]) - np.mean([(tv(fa[s], fa[t]) + tv(fb[s], fb[t])) / 2 for t in range(3) if t != s])
              for s in range(3)]
    v = E.eigen_claims(res)[E.CLAIM1]
    assert v.estimate == pytest.approx(np.mean(excess)) and v.n == 3 and v.unit == "pre-training run"
    assert v.label == "holds"  # 8-9 vs 4-5 dimensions: far apart beyond run-to-run variation
    same = _eig_result([8, 8, 9], [8, 9, 8], [50] * 3, [50] * 3, replicated=True)
    assert E.eigen_claims(same)[E.CLAIM1].label != "holds"
    one = _eig_result([8], [4], [50], [50])
    assert E.eigen_claims(one)[E.CLAIM1].label == "not resolved"  # one pair: no run-to-run distance


def test_claim2_accuracy_kept_is_a_noninferiority_test(monkeypatch):
    _stages_only(monkeypatch)
    name = C.PRIMARY_CLAIMS["eigenspectrum"].name
    kept = E.eigen_claims(_eig_result([8] * 3, [4] * 3, [50] * 3, [50, 52, 51], narrow=[50.2, 52.1, 51.1]))[name]
    assert kept.kind == "noninferiority" and kept.margin == 1.0 and kept.label == "holds"
    assert kept.unit == "from-scratch training run" and kept.replicated  # neither detector has a pre-training
    lost = E.eigen_claims(_eig_result([8] * 3, [4] * 3, [50] * 3, [50, 52, 51], narrow=[40, 41, 40.5]))[name]
    assert lost.label == "reversed"
    one = E.eigen_claims(_eig_result([8], [4], [50], [50], narrow=[49]))[name]
    assert one.label == "not resolved"
    res = _eig_result([8, 8], [4, 5], [50, 50], [50, 52], narrow=[50, 52.5])
    text = E.claim2_summary(res, E.eigen_claims(res))
    assert "**-40.0 %**" in text and "about -27 % on ResNet-50" in text
    untested = _eig_result([8], [4], [50], [50], narrow=[50], narrow_is_scratch=True)
    assert "**Claim 2 is not tested**" in E.claim2_summary(untested, E.eigen_claims(untested))


def test_spectrum_curves_sensitivity_and_rank_limits(monkeypatch):
    _stages_only(monkeypatch)
    res = _eig_result([8, 6], [4, 4], [50, 50], [50, 50])
    curve = E.mean_log_spectrum(res, "imagenet-cls", "layer1")
    assert curve[0] == 0.0 and curve[-1] == pytest.approx(-1.0) and E.mean_log_spectrum(res, "x", "layer1") is None
    share = E.sensitivity_curve(res, "imagenet-cls", "layer1", "none", thresholds=(0.05, 0.5))
    assert share.tolist() == [1.0, 0.7]  # all ten channels above 0.05; 8 and 6 of ten above 0.5
    table = E.sensitivity_table(res, thresholds=(0.5,)).set_index("normalisation")
    assert table.loc["none", "imagenet-cls layer1"] == 7.0 and table.loc["none", "scratch layer1"] == 4.0
    assert "layer1 4.0 of 10" not in E.rule_comparison(res)  # the literal rule (1e-3) counts all ten
    assert "raw eigenvalues > 1e-3) the S detectors count layer1 10.0 of 10" in E.rule_comparison(res)
    assert E.rank_limited(res)["layers"] == ["layer1"]  # 8 positions < 10 channels
    dyn = E.dynamics(res).set_index(["detector", "progress"])
    assert dyn.loc[("imagenet-cls", 0.0), "mean"] == 3.0 and dyn.loc[("imagenet-cls", 1.0), "mean"] == 7.0


def test_widths_table_lists_the_four_stages():
    res = _eig_result([8], [4], [50], [50])
    t = E.widths_table(res)
    assert t["stage"].tolist() == list(E.STAGES) and t["determined width"].tolist() == [8, 8, 8, 8]
    assert t["original width"].tolist() == [16, 16, 16, 16]


# ----------------------------------------------------------------------------------------------- feature space


def test_pair_summary_and_the_size_summary():
    attrs = pd.DataFrame({"log_area": [0.0, 0.0, 1.0, 2.0], "aspect": [0.0, 1.0, 0.0, 1.0], "n_objects": [1, 1, 1, 1]})
    labels = np.array([0, 0, 1, 1])
    s = S.pair_summary([[0, 1]], labels, attrs)
    assert s["same class %"] == 100.0 and s["size: diff / random"] == 0.0 and math.isnan(s["object count: diff / random"])
    table = pd.DataFrame({"space": ["IMAGENET-CLS (imagenet-cls)", "COCO (detection)"],
                          "size: diff / random": [1.0, 0.5]})
    v = S.size_match_summary(table, "IMAGENET-CLS", "COCO")
    assert v["direction"] == "the paper's" and "in the COCO space differ in object size by 0.50" in v["sentence"]
    assert "holds" not in v["sentence"] and "no interval" in v["sentence"]
    against = S.size_match_summary(table.assign(**{"size: diff / random": [0.5, 1.0]}), "IMAGENET-CLS", "COCO")
    assert against["direction"] == "against the paper's" and "a difference against the paper's direction" in (
        against["sentence"])
    assert S.close_distant_summary(np.zeros((0, 2), int), labels, attrs) == {"table": None, "sentence": None}


def test_asymmetry_summary_needs_every_seed():
    curves = pd.DataFrame({"K": [2, 4, 2, 4], "seed": [0, 0, 1, 1], "p_b_given_a": [0.9, 0.8, 0.6, 0.5],
                           "p_a_given_b": [0.5, 0.4, 0.7, 0.6]})
    v = S.asymmetry_summary(curves, "COCO", "IMAGENET-CLS")
    assert v["per_seed"].tolist() == pytest.approx([0.4, -0.1]) and not v["all_seeds_positive"]
    assert "holds" not in v["sentence"] and "exceeds the reverse by 0.150 " in v["sentence"]  # mean of 0.4, -0.1
    below = S.asymmetry_summary(curves.assign(p_a_given_b=curves["p_a_given_b"] + 0.5), "COCO", "IMAGENET-CLS")
    assert "falls short of the reverse by 0.350 " in below["sentence"] and "by -" not in below["sentence"]
    assert list(v["table"].index) == ["P(IMAGENET-CLS | COCO)", "P(COCO | IMAGENET-CLS)"]
    assert S.asymmetry_summary(curves[curves.seed == 0], "COCO", "IMAGENET-CLS")["all_seeds_positive"]
    long = S.consistency_directions(curves, "COCO", "IMAGENET-CLS")
    assert set(long["direction"]) == {"same in COCO -> same in IMAGENET-CLS", "same in IMAGENET-CLS -> same in COCO"}


def test_consistency_curves_on_identical_spaces_are_one():
    x = np.concatenate([np.random.default_rng(0).normal(c, 0.05, (10, 3)) for c in (0, 5)])
    curves, labelings = S.consistency_curves(x, x, [2], seeds=(0, 1))
    assert curves["p_b_given_a"].tolist() == [1.0, 1.0] and set(labelings) == {0, 1}


def test_fragmentation_table_and_verdict():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 10)
    tight = np.concatenate([rng.normal([5, 0, 0, 0], 0.05, (10, 4)), rng.normal([0, 5, 0, 0], 0.05, (10, 4))])
    mixed = rng.normal(0, 1, (20, 4))
    frame, summary = S.fragmentation_table({"cls": tight, "det": mixed, "scratch-s0": mixed, "scratch-s1": tight},
                                           labels, k=3)
    assert summary["space"].tolist() == ["cls", "det", "scratch (mean of 2)"]
    assert frame.set_index("space").loc["cls", "kNN agreement %"] == 100.0
    v = S.fragmentation_summary(frame, "cls", "det", {"cls": "IMAGENET-CLS", "det": "COCO"})
    assert v["tighter"] and v["both"] == v["more_fragmented"] and "holds" not in v["sentence"]
    assert "The 2 random backbones show how much the numbers move" in v["sentence"]
    one = S.fragmentation_summary(frame[frame.space != "scratch-s1"], "cls", "det", {"cls": "IMAGENET-CLS", "det": "COCO"})
    assert "The one random backbone is a floor" in one["sentence"] and "show how much" not in one["sentence"]


# ----------------------------------------------------------------------------------------------- visualisations


def test_enrichment_is_mass_over_area_and_undefined_without_area():
    e = V.enrichment([0.5, 0.2, 0.0], [0.25, 0.0, 0.1])
    assert e[0] == 2.0 and math.isnan(e[1]) and e[2] == 0.0


def _objects():
    h = w = 32
    one = np.zeros((h, w), bool)
    one[4:20, 4:20] = True
    part = np.zeros((h, w), bool)
    part[4:8, 4:8] = True
    other = np.zeros((h, w), bool)
    other[22:30, 22:30] = True
    return [{"instances": [one], "parts": [part], "object": one, "part": part, "label": "a"},
            {"instances": [one, other], "parts": [None, None], "object": one | other, "part": np.zeros((h, w), bool),
             "label": "b"}]


def test_activation_frame_defines_part_enrichment_and_balance():
    from detpretrain.models.backbones import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone("resnet_tiny", norm="gn").eval()
    dataset = [(torch.randn(3, 32, 32), 0), (torch.randn(3, 32, 32), 1)]
    objects = _objects()
    frame, maps = V.activation_frame({"x": backbone}, dataset, objects, n_images=2, keep_maps=1)
    assert list(maps) == [("x", 0)] and len(frame) == 2
    first = frame.iloc[0]
    assert first["part_enrichment"] == pytest.approx(first["part"] / first["part_area"])
    assert math.isnan(frame.iloc[1]["part_enrichment"]) and math.isnan(first["instance_balance"])
    assert 0 < frame.iloc[1]["instance_balance"] <= 1
    assert V.activation_summary(frame).loc["x", "images"] == 2
    assert V.example_images(objects) == [0, 1] and V.maskout_candidates(objects, 5) == [0]


def test_activation_verdicts_sign_each_claim_in_the_papers_direction():
    frame = pd.DataFrame({"backbone": ["c", "d"] * 3, "image": [0, 0, 1, 1, 2, 2],
                          "part_enrichment": [3.0, 1.0, 3.1, 1.0, 2.9, 1.0], "object_rest": [0.1, 0.2] * 3,
                          "instance_balance": [np.nan] * 6})
    t = V.activation_verdicts(frame, {"c": "IMAGENET-CLS", "d": "COCO"}, "c", "d").set_index(
        "claim (positive = the paper's direction)")
    assert t.loc["part enrichment, IMAGENET-CLS minus COCO", "label (these two networks)"] == "holds"
    assert t.loc["part enrichment, IMAGENET-CLS minus COCO", "images"] == 3
    assert t.loc["rest-of-object mass share, COCO minus IMAGENET-CLS", "mean paired difference"] == pytest.approx(0.1)
    assert t.loc["instance balance (multi-instance images), COCO minus IMAGENET-CLS", "images"] == 0


def test_maskout_frame_and_verdict_with_a_head_that_reads_the_part():
    objects = _objects()

    class PartReader(torch.nn.Module):  # P(class 0) = 1 while the part's corner pixel is bright, else 0.5
        def forward(self, x):
            p = torch.where(x[:, 0, 5, 5] > 0.5, 1.0, 0.5)
            return torch.stack([p, 1 - p], dim=1)

    class Blind(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.9, 0.1]]).expand(len(x), 2)

    dataset = [(torch.ones(3, 32, 32), 0)]
    frame, maps = V.maskout_frame({"c": PartReader(), "d": Blind()}, dataset, objects, [0], window=4, stride=4)
    row = frame.set_index("backbone")
    assert row.loc["c", "drop_part"] > 0 and row.loc["d", "part minus rest"] == 0.0 and len(maps) == 2
    summary = V.maskout_summary(frame)
    assert summary.loc["d", "clean"] == pytest.approx(0.9)
    v = V.maskout_verdict(pd.concat([frame, frame.assign(image=1)]), {"c": "IMAGENET-CLS", "d": "COCO"}, "c", "d")
    assert "costs the IMAGENET-CLS probe" in v["sentence"] and v["verdict"].n == 2
    assert "not resolved (not replicated over pre-training runs)" in v["sentence"]


def test_localisation_verdict_mean_iou_and_best_box():
    objects = pd.DataFrame({"image": [0, 1, 2], "iou_a": [0.5, 0.5, 0.2], "iou_b": [0.7, 0.6, 0.4],
                            "visible_fraction": [1.0, 0.5, 0.6]})
    v = V.localisation_verdict(objects, "a", "b", occluded_below=0.75)
    assert v["all"].label == "holds" and v["better"] == 3 and v["occluded"].n == 2
    assert not v["all"].replicated and v["all"].unit == "test image"
    assert "on the objects under 75 % visible" in v["sentence"]
    # objects of one image count once: two more objects on image 0 leave n at 3 images, the mean per image
    more = pd.concat([objects, pd.DataFrame({"image": [0, 0], "iou_a": [0.5, 0.5], "iou_b": [0.5, 0.8],
                                             "visible_fraction": [1.0, 1.0]})])
    w = V.localisation_verdict(more, "a", "b")
    assert w["all"].n == 3 and w["better"] == 4
    assert w["all"].estimate == pytest.approx(np.mean([np.mean([0.2, 0.0, 0.3]), 0.1, 0.2]))
    m = V.mean_best_iou(objects, {"a": "IMAGENET-CLS", "b": "COCO"})
    assert m.loc["all objects", "mean best IoU, COCO"] == pytest.approx(1.7 / 3)
    pred = {"boxes": np.array([[0, 0, 10, 10], [0, 0, 4, 4], [20, 20, 30, 30]], float),
            "labels": np.array([1, 1, 2]), "scores": np.array([0.9, 0.9, 0.9])}
    assert V.best_box(pred, [0, 0, 9, 9], 1, 0.5).tolist() == [0, 0, 10, 10]
    assert V.best_box(pred, [0, 0, 9, 9], 3, 0.5) is None


def test_real_activation_verdict_pairs_images(tmp_path):
    frame = pd.DataFrame({"backbone": ["detection", "imagenet-cls"] * 2, "image": [0, 0, 1, 1],
                          "object mass": [0.5, 0.4, 0.6, 0.45], "object area": 0.3})
    v = V.real_activation_verdict(frame, "detection", "imagenet-cls")
    assert v["verdict"].estimate == pytest.approx(0.125) and v["images"] == 2 and v["verdict"].n == 2
    assert v["sentence"].startswith("Object mass share, detection minus classification backbone: +0.125")
    assert not V.coco_val_available(tmp_path) and not V.coco_val_available(None)


# ----------------------------------------------------------------------------------------------- frozen backbone


def _frozen_result():
    rows = []
    for head, gain in (("FPN", 1.0), ("BIG", 3.0)):
        for rep, noise in enumerate((0.0, 0.2, -0.2)):
            for mode, bonus in (("frozen", gain + noise), ("fine-tuned", 0.0)):
                rows.append({"head": head, "mode": mode, "replicate": rep, "seed": 0, "hash": f"{head}{mode}{rep}",
                             "all@0.5": 50 + bonus, "rare@0.5": 20 + 2 * bonus, "frequent@0.5": 60 + bonus / 2,
                             "all@0.7": 30.0, "frequent@0.7": 20.0})
    resources = [{"label": f"{h} / {m}", "seconds_per_iteration": 1.0 if m == "frozen" else 2.0,
                  "saved_activations_mb": 1.0, "grad_and_momentum_mb": 1.0, "params_trained": 1, "cuda_peak_mb": None}
                 for h in ("FPN", "BIG") for m in ("frozen", "fine-tuned")]
    return {"rows": rows, "resources": resources,
            "full_images_per_class": {"a": 5, "b": 9, "c": 5}, "images_per_class": {"a": 5, "b": 9, "c": 2},
            "rare": ["c"], "train_images": 12, "full_train_images": 15, "data": "synthetic voc (64 px)",
            "max_images": 2}


def test_frozen_study_tables_and_claims():
    res = _frozen_result()
    lt = Z.long_tail_table(res)
    assert lt["class"].tolist() == ["b", "a", "c"] and lt.set_index("class").loc["c", "images (long tail)"] == 2
    assert Z.long_tail_sentence(res) == "12 of 15 training images kept; rare: c"
    gains = Z.gain_table(res, ["FPN", "BIG"]).set_index(["capacity", "metric"])
    assert gains.loc[("BIG", "rare@0.5"), "frozen − fine-tuned"] == pytest.approx(6.0)
    assert gains.loc[("FPN", "all@0.7"), "label (unadjusted)"] == "not resolved"  # always 0: zero spread
    assert gains.loc[("BIG", "all@0.5"), "n"] == 3 and gains.loc[("BIG", "all@0.5"), "unit"] == "pre-training run"
    claims = Z.frozen_claims(res, ["FPN", "BIG"])
    primary = claims[C.PRIMARY_CLAIMS["frozen_backbone"].name]
    assert list(claims)[0] == C.PRIMARY_CLAIMS["frozen_backbone"].name
    assert primary.estimate == pytest.approx(3.0) and primary.label == "holds"  # 3, 3.2, 2.8 over 3 runs
    assert claims["the gain grows from FPN to BIG"].estimate == pytest.approx(2.0)
    assert claims["the gain is larger on rare than on frequent classes (BIG)"].estimate == pytest.approx(4.5)
    assert "takes 0.50x the time" in Z.resources_summary(res)
    assert not Z.frozen_regime(res, "FPN").adequate  # frequent classes: 60 mAP@0.5 but 20 mAP@0.7
    assert Z.study_data(res) == "synthetic voc (64 px), long tail ≤ 2 images per rare class"


# ----------------------------------------------------------------------------------------------- pre-training


def test_pretraining_table_and_loss_curves_read_run_folders(tmp_path):
    from detpretrain.config import to_dict
    from detpretrain.experiments.common import pretrain_configs
    from detpretrain.profiles import get_profile

    cfg = pretrain_configs(get_profile("smoke"))["imagenet-cls"]
    run = tmp_path / "classification-0123"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(cfg)))
    (run / "metrics.json").write_text(json.dumps({
        "num_train_images": 100, "classes": ["a", "b"], "headline": "top1=8.0",
        "history": [{"epoch": 0, "seconds": 1.25, "loss": 2.0, "lr": 0.1},
                    {"epoch": 1, "seconds": 1.0, "loss": 1.5, "lr": 0.01}]}))
    t = R.pretraining_table({"imagenet-cls": run}).iloc[0]
    assert (t["run"], t["task"], t["init"], t["classes"], t["train time (s)"]) == (
        "classification-0123", "classification", "random", 2, 2.2)
    assert t["data"] == cfg.data.describe() and t["epochs"] == cfg.optim.epochs
    curves = R.loss_curves({"imagenet-cls": run})
    assert curves["epoch"].tolist() == [1, 2] and curves["training loss"].tolist() == [2.0, 1.5]


def test_corpus_table_lists_the_profile_corpora():
    from detpretrain.data import synthetic

    t = R.corpus_table(synthetic.profile_specs("smoke"))
    assert "imagenet_cls" in t.index and {"train", "val", "test", "key", "image size (px)"} <= set(t.columns)
