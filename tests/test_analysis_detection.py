"""Tables and verdicts of the detection chapter on constructed results whose answer is known."""

import math

import pytest

from detpretrain.analysis import detection as A

IOUS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def _result(curves: dict[str, list[list[float]]]) -> dict:
    """curves: pretrain -> one mAP list (9 thresholds) per seed."""
    runs = []
    for pretrain, per_seed in curves.items():
        for seed, maps in enumerate(per_seed):
            runs.append({"pretrain": pretrain, "seed": seed, "hash": f"{pretrain[:3]}{seed:013d}",
                         "metrics": {"iou_thresholds": IOUS, "mAP": maps, "metric": "voc07",
                                     "per_class_AP": {}}})
    return {"profile": "mini", "dataset": "synthetic", "data": "synthetic voc (128 px)", "runs": runs}


def _curve(at05, at07):
    return [at05 + 5, at05 + 4, at05 + 3, at05 + 1, at05, (at05 + at07) / 2, at07, at07 / 2, at07 / 4]


def test_table1_means_and_sample_std():
    res = _result({"imagenet-cls": [_curve(60, 40), _curve(62, 42), _curve(64, 44)],
                   "detection": [_curve(63, 48), _curve(65, 50), _curve(67, 52)]})
    t = A.table1(res).set_index("pre-training")
    assert t.loc["imagenet-cls", "mAP@0.5"] == pytest.approx(62.0)
    assert t.loc["imagenet-cls", "sd@0.5"] == pytest.approx(2.0)  # sample std of 60, 62, 64
    assert t.loc["detection", "mAP@0.7"] == pytest.approx(50.0)
    assert t.loc["imagenet-cls", "paper mAP@0.7"] == 76.3 and t.loc["detection", "paper role"] == "COCO"


def test_verdict_holds_when_the_gap_grows_beyond_its_standard_error():
    res = _result({"imagenet-cls": [_curve(60, 40), _curve(62, 42), _curve(64, 44)],
                   "detection": [_curve(63, 48), _curve(65, 49), _curve(67, 52)]})
    v = A.high_iou_verdict(res)
    assert v["gap_low"] == pytest.approx(3.0) and v["gap_high"] == pytest.approx(23 / 3)
    assert v["verdict"] == "holds" and v["seeds"] == 3
    assert "**holds**" in v["sentence"]


def test_verdict_reversed_and_unresolved():
    reversed_ = _result({"imagenet-cls": [_curve(60, 40), _curve(60, 40)],
                         "detection": [_curve(66, 41), _curve(67, 40)]})
    assert A.high_iou_verdict(reversed_)["verdict"] == "reversed"
    noisy = _result({"imagenet-cls": [_curve(60, 40), _curve(60, 40)],
                     "detection": [_curve(62, 45), _curve(62, 39)]})  # growth +3 and -3: mean 0
    assert A.high_iou_verdict(noisy)["verdict"] == "not resolved"
    single = _result({"imagenet-cls": [_curve(60, 40)], "detection": [_curve(62, 50)]})
    assert A.high_iou_verdict(single)["verdict"] == "not resolved"  # one seed: no spread to judge by
    assert A.high_iou_verdict(_result({"scratch": [_curve(1, 1)]}))["verdict"] == "missing"


def test_gap_by_iou_is_paired_by_seed():
    res = _result({"imagenet-cls": [_curve(60, 40), _curve(70, 50)],
                   "detection": [_curve(61, 44), _curve(71, 54)]})
    g = A.gap_by_iou(res).set_index("iou")
    assert g.loc[0.7, "gap"] == pytest.approx(4.0) and g.loc[0.7, "sd"] == pytest.approx(0.0)
    assert g.loc[0.5, "gap"] == pytest.approx(1.0) and int(g.loc[0.5, "seeds"]) == 2
    assert g.loc[0.7, "baseline mAP"] == pytest.approx(45.0)
    assert g.loc[0.7, "relative gain (%)"] == pytest.approx(100 * 4 / 45)


def test_map_frame_and_provenance_and_plot():
    res = _result({"imagenet-cls": [_curve(60, 40)], "scratch": [_curve(20, 5)]})
    frame = A.map_frame(res)
    assert len(frame) == 18 and set(frame.columns) == {"pretrain", "seed", "iou", "mAP", "run"}
    assert "profile mini" in A.provenance(res) and "scratch: scr00000" in A.provenance(res)
    import matplotlib

    matplotlib.use("Agg")
    ax = A.plot_map_vs_iou(res)
    assert ax.get_xlabel() == "IoU threshold" and "profile mini" in ax.get_title(loc="left")
    assert not math.isnan(frame["mAP"].sum())
