"""Tables and claims of the detection chapter on constructed results whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detpretrain.analysis import claims as C
from detpretrain.analysis import detection as A

IOUS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
PRIMARY = C.PRIMARY_CLAIMS["detection"].name


def _result(curves: dict[str, list[list[list[float]]]]) -> dict:
    """curves: pretrain -> per replicate, one mAP list (9 thresholds) per fine-tuning seed."""
    runs = []
    for pretrain, per_rep in curves.items():
        for rep, per_seed in enumerate(per_rep):
            for seed, maps in enumerate(per_seed):
                runs.append({"pretrain": pretrain, "replicate": rep, "seed": seed,
                             "hash": f"{pretrain[:3]}{rep}{seed:012d}",
                             "metrics": {"iou_thresholds": IOUS, "mAP": maps, "metric": "voc07",
                                         "per_class_AP": {}}})
    return {"profile": "mini", "dataset": "synthetic", "data": "synthetic voc (128 px)", "runs": runs}


def _curve(at05, at07):
    return [at05 + 5, at05 + 4, at05 + 3, at05 + 1, at05, (at05 + at07) / 2, at07, at07 / 2, at07 / 4]


def _t_interval(values):
    values = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def test_table1_means_and_sample_std_over_fine_tunings():
    res = _result({"imagenet-cls": [[_curve(60, 40), _curve(62, 42)], [_curve(64, 44), _curve(62, 42)]],
                   "detection": [[_curve(63, 48), _curve(65, 50)], [_curve(67, 52), _curve(65, 50)]]})
    t = A.table1(res).set_index("pre-training")
    assert t.loc["imagenet-cls", "mAP@0.5"] == pytest.approx(62.0)
    assert t.loc["imagenet-cls", "sd@0.5"] == pytest.approx(np.std([60, 62, 64, 62], ddof=1))
    assert t.loc["imagenet-cls", "replicates"] == 2 and t.loc["imagenet-cls", "runs"] == 4
    assert t.loc["detection", "mAP@0.7"] == pytest.approx(50.0)
    assert t.loc["imagenet-cls", "paper mAP@0.7"] == 76.3 and t.loc["detection", "paper role"] == "COCO"


def test_primary_claim_is_over_pre_training_runs_with_seeds_averaged_within():
    # growth (gap@0.7 - gap@0.5) per unit: replicate 0: 4, 6 (mean 5); replicate 1: 3, 3; replicate 2: 4, 4
    cls = [[_curve(60, 40)] * 2] * 3
    det = [[_curve(61, 45), _curve(61, 47)], [_curve(62, 45), _curve(62, 45)], [_curve(60, 44), _curve(60, 44)]]
    claims = A.detection_claims(_result({"imagenet-cls": cls, "detection": det}))
    v = claims[PRIMARY]
    assert list(claims)[0] == PRIMARY
    assert v.estimate == pytest.approx(4.0) and v.n == 3 and v.n_units == 6
    assert v.unit == "pre-training run" and v.replicated
    assert (v.ci_low, v.ci_high) == pytest.approx(_t_interval([5, 3, 4]))
    assert v.label == "holds"
    assert claims["detection pre-training helps at IoU 0.5"].estimate == pytest.approx(1.0)


def test_primary_claim_reversed_unresolved_and_unreplicated():
    cls = [[_curve(60, 40)]] * 3
    reversed_ = A.detection_claims(_result({"imagenet-cls": cls, "detection": [[_curve(66, 41)], [_curve(67, 40)],
                                                                              [_curve(66, 40.5)]]}))
    assert reversed_[PRIMARY].label == "reversed"
    noisy = A.detection_claims(_result({"imagenet-cls": cls, "detection": [[_curve(62, 45)], [_curve(62, 39)],
                                                                          [_curve(62, 42)]]}))
    assert noisy[PRIMARY].label == "not resolved" and noisy[PRIMARY].estimate == pytest.approx(0.0)
    # one pre-training run: the analysis over fine-tuning seeds, about these particular networks
    one = A.detection_claims(_result({"imagenet-cls": [[_curve(60, 40)] * 3],
                                      "detection": [[_curve(61, 45), _curve(61, 46), _curve(61, 44)]]}))[PRIMARY]
    assert not one.replicated and one.unit == "fine-tuning run" and one.n == 3 and one.label == "holds"
    assert one.claim_label == "not resolved"  # as a claim about pre-training
    assert "for these particular networks alone: holds" in one.sentence("mAP")
    missing = A.detection_claims(_result({"scratch": [[_curve(1, 1)]]}))[PRIMARY]
    assert missing.label == "not resolved" and math.isnan(missing.estimate)


def test_gap_by_iou_is_paired_and_has_no_relative_column():
    res = _result({"imagenet-cls": [[_curve(60, 40)], [_curve(70, 50)], [_curve(65, 45)]],
                   "detection": [[_curve(61, 44)], [_curve(71, 55)], [_curve(66, 48)]]})
    g = A.gap_by_iou(res).set_index("iou")
    assert g.loc[0.7, "gap"] == pytest.approx(4.0) and g.loc[0.5, "gap"] == pytest.approx(1.0)
    assert (g.loc[0.7, "95% CI low"], g.loc[0.7, "95% CI high"]) == pytest.approx(_t_interval([4, 5, 3]))
    assert g.loc[0.7, "n"] == 3 and g.loc[0.7, "unit"] == "pre-training run"
    assert g.loc[0.7, "baseline mAP"] == pytest.approx(45.0)
    assert not any("relative" in c for c in g.columns)


def test_gap_slope_of_a_linear_gap_is_its_slope_per_tenth_of_iou():
    def curve(base, slope):  # gap to 40 everywhere + slope * (t - 0.5) * 10 for t in 0.5..0.8
        return [base + (slope * (t - 0.5) * 10 if 0.5 <= t <= 0.8 else 0.0) for t in IOUS]

    res = _result({"imagenet-cls": [[[40.0] * 9]] * 3,
                   "detection": [[curve(41, 1.0)], [curve(41, 2.0)], [curve(41, 1.5)]]})
    slopes = A.gap_slope(res)
    assert slopes["diff"].tolist() == pytest.approx([1.0, 2.0, 1.5])
    claims = A.detection_claims(res)
    assert claims["the gap's slope over IoU 0.5-0.8 is positive"].estimate == pytest.approx(1.5)
    assert claims["the gap's slope over IoU 0.5-0.8 is positive"].replicated
    # one IMAGENET-CLS pre-training against 3 detection ones: every claim says its interval lacks that arm's spread
    single = _result({"imagenet-cls": [[[40.0] * 9]],
                      "detection": [[curve(41, 1.0)], [curve(41, 2.0)], [curve(41, 1.5)]]})
    assert A.gap_slope(single).attrs["single_replicate_arm"] == "imagenet-cls"
    assert not any(v.replicated for v in A.detection_claims(single).values())
    objects = pd.DataFrame([{"pretrain": "detection", "replicate": r, "seed": 0, "object": o, "iou": 0.8 + r / 100}
                            for r in range(3) for o in range(4)]
                           + [{"pretrain": "imagenet-cls", "replicate": 0, "seed": 0, "object": o, "iou": 0.7}
                              for o in range(4)])
    tighter = A.paired_iou(objects)
    assert len(tighter) == 3 and tighter.attrs["single_replicate_arm"] == "imagenet-cls"
    assert not C.unit_verdict(tighter).replicated


def test_paired_iou_counts_only_objects_both_detectors_find():
    rows = []
    for rep in range(2):
        for obj, (a, b) in enumerate([(0.9, 0.7), (0.8, 0.6), (0.9, 0.2), (0.1, 0.6)]):
            rows += [{"pretrain": "detection", "replicate": rep, "seed": 0, "object": obj, "iou": a + rep / 100},
                     {"pretrain": "imagenet-cls", "replicate": rep, "seed": 0, "object": obj, "iou": b}]
    per_unit = A.paired_iou(pd.DataFrame(rows))
    assert per_unit["objects"].tolist() == [2, 2]  # objects 2 and 3 are missed by one of them
    assert per_unit["diff"].tolist() == pytest.approx([20.0, 21.0])


def test_schedule_table_compares_the_same_seeds():
    one = _result({"imagenet-cls": [[_curve(60, 40), _curve(50, 30)]] * 3,
                   "detection": [[_curve(62, 45), _curve(52, 30)]] * 3})
    two = _result({"imagenet-cls": [[_curve(70, 50)]] * 3, "detection": [[_curve(70, 51)]] * 3})
    t = A.schedule_table({1: one, 2: two}).set_index(["schedule", "measure"])
    assert t.loc[("1x", "gap at IoU 0.7"), "estimate"] == pytest.approx(5.0)  # seed 0 only, as at 2x
    assert t.loc[("2x", "gap at IoU 0.7"), "estimate"] == pytest.approx(1.0)
    assert t.loc[("1x", "gap at IoU 0.7"), "runs"] == 3
    claims = A.detection_claims(one, schedules={1: one, 2: two})
    assert "2x schedule: helps at IoU 0.7" in claims


def test_regime_thresholds_and_the_answer_text():
    good = _result({"imagenet-cls": [[_curve(70, 50)]] * 3, "detection": [[_curve(72, 56)]] * 3})
    weak = _result({"imagenet-cls": [[_curve(40, 25)]] * 3, "detection": [[_curve(42, 30)]] * 3})
    imprecise = _result({"imagenet-cls": [[_curve(70, 30)]] * 3, "detection": [[_curve(72, 36)]] * 3})
    assert C.detection_regime(good).adequate
    assert not C.detection_regime(weak).adequate and "mAP@0.5 40.0 (needs ≥ 60)" in C.detection_regime(weak).message
    bad = C.detection_regime(imprecise)
    assert not bad.adequate and bad.ratio == pytest.approx(30 / 70) and "mAP@0.7 / mAP@0.5 0.43" in bad.message
    claims = A.detection_claims(weak)
    text = C.answer("detection", claims[PRIMARY], regime=C.detection_regime(weak))
    assert text.index("Li et al.: detection pre-training helps more at high IoU") < text.index("**Here.**")
    assert "+2.2 mAP@0.5 and +4.4 mAP@0.7" in text and "regime inadequate:" in text
    frame = C.claims_frame(claims, PRIMARY, C.detection_regime(weak))
    assert set(frame["label"]) == {C.REGIME_LABEL} and frame["role"].iloc[0] == "primary"


def test_map_frame_and_provenance_and_plot():
    res = _result({"imagenet-cls": [[_curve(60, 40)]], "scratch": [[_curve(20, 5)]]})
    frame = A.map_frame(res)
    assert len(frame) == 18 and set(frame.columns) == {"pretrain", "replicate", "seed", "iou", "mAP", "run"}
    assert "profile mini" in A.provenance(res) and "scratch: scr00000" in A.provenance(res)
    import matplotlib

    matplotlib.use("Agg")
    ax = A.plot_map_vs_iou(res)
    assert ax.get_xlabel() == "IoU threshold" and "profile mini" in ax.get_title(loc="left")
    legend = [t.get_text() for t in ax.get_legend().get_texts()]  # the paper's names of the roles, then ours
    assert legend == ["IMAGENET-CLS (imagenet-cls)", "from scratch", "paper: IMAGENET-CLS"]
    from detpretrain.paper import role_label

    assert [role_label(p) for p in ("imagenet-loc", "detection@r1", "no such key")] == [
        "IMAGENET-LOC (imagenet-loc)", "detection@r1", "no such key"]
    from detpretrain.analysis.probes import PROBE_ROLE_NAMES

    assert role_label("scratch") == "from scratch" and role_label("scratch", PROBE_ROLE_NAMES) == "random init"
    both = A.plot_map_vs_iou(_result({"imagenet-cls": [[_curve(60, 40)]], "detection": [[_curve(62, 45)]]}))
    assert [t.get_text() for t in both.get_legend().get_texts()] == [
        "IMAGENET-CLS (imagenet-cls)", "COCO (detection)", "paper: IMAGENET-CLS", "paper: COCO"]
    assert not math.isnan(frame["mAP"].sum())


def test_same_images_control_claims_compare_detection_with_its_multilabel_twin():
    # detection - COCO (Cls) per replicate: at 0.5 +1, +1, +1; at 0.7 +3, +5, +4 -> growth 2, 4, 3
    ml = [[_curve(60, 40)]] * 3
    det = [[_curve(61, 43)], [_curve(61, 45)], [_curve(61, 44)]]
    res = _result({"imagenet-cls": [[_curve(60, 40)]] * 3, "detection": det, "detection-multilabel": ml})
    claims = A.detection_claims(res)
    at07 = claims["same images: detection beats COCO (Cls) at IoU 0.7"]
    grows = claims["same images: the gap over COCO (Cls) grows from 0.5 to 0.7"]
    assert at07.estimate == pytest.approx(4.0) and (at07.ci_low, at07.ci_high) == pytest.approx(_t_interval([3, 5, 4]))
    assert grows.estimate == pytest.approx(3.0) and grows.n == 3 and grows.unit == "pre-training run"
    t = A.table1(res).set_index("pre-training")
    assert t.loc["detection-multilabel", "paper role"] == "COCO (Cls)"
    assert math.isnan(t.loc["detection-multilabel", "paper mAP@0.5"])
    assert not any(k.startswith("same images") for k in A.detection_claims(_result({"imagenet-cls": ml,
                                                                                    "detection": det})))


def test_same_images_control_is_planned_where_the_detection_pretraining_is_ours():
    from detpretrain.experiments.common import SAME_IMAGES
    from detpretrain.parameters import declared
    from detpretrain.plan import CHAPTER_PLANNERS
    from detpretrain.scope import real_pretrains

    params = {name: p.default for name, p in declared("detection").items()}
    assert SAME_IMAGES in params["pretrains"]
    mini = CHAPTER_PLANNERS["detection"]("mini", params, None)
    control = [c for c in mini if c.name == f"pretrain/{SAME_IMAGES}"]
    assert len(control) == 3 and {c.task for c in control} == {"multilabel"} and {c.seed for c in control} == {0, 1, 2}
    assert sum(c.name.startswith(f"finetune/{SAME_IMAGES}") or f"/{SAME_IMAGES}/" in c.name for c in mini) == 3
    assert real_pretrains("torchvision", params["pretrains"]) == (["imagenet-cls", "detection", "scratch"],
                                                                   [SAME_IMAGES])


# ----------------------------------------------------------------------------------------------------------------
# regime_prediction (the val-split schedule selection of profiles.py) on made-up stored detections
# ----------------------------------------------------------------------------------------------------------------
def _made_up_val_runs(n_images=40, n_runs=3, seed=0):
    """COCO ground truth and, per run, stored detections (``detections.npz`` arrays) of a noisy detector."""
    rng = np.random.default_rng(seed)
    gt = {"images": [{"id": i} for i in range(1, n_images + 1)],
          "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "annotations": []}
    for i in range(1, n_images + 1):
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, 80, 2)
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i,
                                      "category_id": int(rng.integers(1, 3)), "bbox": [x, y, 20.0, 20.0]})
    stored = []
    for _ in range(n_runs):
        ids, counts, boxes, scores, labels = [], [], [], [], []
        for i in range(1, n_images + 1):
            anns = [a for a in gt["annotations"] if a["image_id"] == i]
            found = [a for a in anns if rng.random() < 0.8]
            ids.append(i)
            counts.append(len(found))
            for a in found:
                x, y, w, h = a["bbox"]
                dx, dy = rng.normal(0, 3, 2)
                boxes.append([x + dx, y + dy, x + dx + w, y + dy + h])
                scores.append(rng.uniform(0.3, 1.0))
                labels.append(a["category_id"])
        stored.append({"image_ids": np.array(ids), "counts": np.array(counts), "boxes": np.array(boxes, np.float16),
                       "scores": np.array(scores, np.float16), "labels": np.array(labels, np.int16)})
    return gt, stored


def _val_result(m50s, m70s, split="val", replicates=None):
    return {"runs": [{"pretrain": "imagenet-cls", "replicate": rep, "seed": 0, "run": f"/nowhere/{k}",
                      "metrics": {"iou_thresholds": [0.5, 0.7], "mAP": [m50, m70], "metric": "voc07",
                                  "eval_split": split, "num_eval_images": 40}}
                     for k, (rep, m50, m70) in enumerate(zip(replicates or range(len(m50s)), m50s, m70s))]}


def test_regime_prediction_bound_from_the_runs_and_the_image_bootstrap(monkeypatch):
    from detpretrain.analysis.stats import prediction_lower_bound
    from detpretrain.evaluation.detection import bootstrap_map, stored_to_coco_results

    gt, stored = _made_up_val_runs()
    monkeypatch.setattr(A, "_stored_detections", lambda runs, data_cache=None: (stored, gt))
    result = _val_result([66.0, 68.0, 67.0], [44.0, 45.0, 43.0])
    table = A.regime_prediction(result, n_boot=300, seed=5).set_index("measure")

    draws = np.random.default_rng(5).integers(0, 40, size=(300, 40))
    boot = np.stack([bootstrap_map(gt, stored_to_coco_results(p), [0.5, 0.7], draws) for p in stored])
    sd50 = np.std(boot[:, :, 0].mean(axis=0), ddof=1)
    sd_ratio = np.std((boot[:, :, 1] / boot[:, :, 0]).mean(axis=0), ddof=1)
    assert sd50 > 0.5  # 40 images: the resampled mean moves by points
    row = table.loc["mAP@0.5"]
    assert row["image sd"] == pytest.approx(sd50)
    assert row["bound"] == pytest.approx(prediction_lower_bound([66.0, 68.0, 67.0], sd50).bound)
    assert row["meets"] == (row["bound"] >= C.REGIME_MIN_MAP50)
    ratio = table.loc["mAP@0.7 / mAP@0.5"]
    assert ratio["mean"] == pytest.approx(np.mean([44 / 66, 45 / 68, 43 / 67]))
    assert ratio["image sd"] == pytest.approx(sd_ratio)

    # a run with mAP@0.5 of 0: its ratio is undefined, so that measure cannot meet
    zero = A.regime_prediction(_val_result([0.0, 68.0, 67.0], [0.0, 45.0, 43.0]), n_boot=50).set_index("measure")
    assert math.isnan(zero.loc["mAP@0.7 / mAP@0.5", "bound"]) and not zero.loc["mAP@0.7 / mAP@0.5", "meets"]


def test_regime_prediction_refuses_test_split_runs_and_seeds_as_replicates(monkeypatch):
    gt, stored = _made_up_val_runs()
    monkeypatch.setattr(A, "_stored_detections", lambda runs, data_cache=None: (stored, gt))
    with pytest.raises(ValueError, match="val split only"):
        A.regime_prediction(_val_result([66.0, 68.0, 67.0], [44.0, 45.0, 43.0], split="test"))
    with pytest.raises(ValueError, match="one run per pre-training replicate"):
        A.regime_prediction(_val_result([66.0, 68.0, 67.0], [44.0, 45.0, 43.0], replicates=[0, 0, 1]))
    with pytest.raises(ValueError, match=">= 2 runs"):
        A.regime_prediction(_val_result([66.0], [44.0]))


def test_verdicts_table_shows_each_verdicts_own_label_which_the_claims_table_may_adjust_away():
    """Three secondary claims at p ~0.035 each (t = 5.2, 2 df): each verdict's own interval excludes 0 ("holds" in
    the unadjusted column), while Holm over the three (smallest p x 3 > 0.05) makes them "not resolved" in the claims
    table; the key and columns are the ones asked for; empty verdicts give an empty frame with the same columns."""
    from detpretrain.analysis.stats import verdict

    primary = verdict([0.1, -0.2, 0.05], groups=[0, 1, 2])
    weak = {f"secondary {i}": verdict(d, groups=[0, 1, 2]) for i, d in enumerate(([2.0, 3.0, 4.0],
                                                                                 [4.0, 6.0, 8.0],
                                                                                 [1.0, 1.5, 2.0]))}
    assert all(v.label == "holds" and 0.05 / 3 < v.p_value < 0.05 for v in weak.values())
    shown = C.verdicts_table(weak, key="term", columns=("estimate", "n", "unit"))
    assert list(shown.columns) == ["term", "estimate", "n", "unit", C.UNADJUSTED_LABEL]
    assert shown["term"].tolist() == list(weak) and set(shown[C.UNADJUSTED_LABEL]) == {"holds"}
    assert shown["estimate"].tolist() == pytest.approx([v.estimate for v in weak.values()])
    adjusted = C.claims_frame({"primary": primary, **weak}, "primary").set_index("claim")
    assert set(adjusted.loc[list(weak), "label"]) == {"not resolved"}
    empty = C.verdicts_table({})
    assert empty.empty and list(empty.columns) == ["claim", "estimate", "ci_low", "ci_high", "n", "unit",
                                                   C.UNADJUSTED_LABEL]
    with pytest.raises(KeyError):
        C.verdicts_table(weak, columns=("estimate", "no such field"))
