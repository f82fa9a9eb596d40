"""Issue 18, "measurements that resolve their quantity": each new measurement on a hand-made case, against an
independent computation where one exists (Grad-CAM against CAM's closed form and a finite difference, coverage
against a loop, PCA against an SVD, the logistic fit against the log-odds of a saturated design, the permutation null
against its exact expectation)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from detpretrain.analysis import stats
from detpretrain.analysis import visualisation as V


# ---- stats.replicates_verdict -----------------------------------------------------------------------------------
def test_replicates_verdict_labels_and_interval():
    rng = np.random.default_rng(0)
    v = stats.replicates_verdict(1.0, rng.normal(1.0, 0.2, 2000), n=50, unit="image", method="bootstrap")
    assert v.label == "holds" and v.ci_low > 0 and abs(v.ci_high - v.ci_low - 2 * 1.96 * 0.2) < 0.1
    r = stats.replicates_verdict(-1.0, rng.normal(-1.0, 0.2, 2000), n=50, unit="image", method="bootstrap")
    assert r.label == "reversed"
    u = stats.replicates_verdict(0.1, rng.normal(0.1, 1.0, 2000), n=50, unit="image", method="bootstrap")
    assert u.label == "not resolved" and u.p_value > 0.5
    nan = np.r_[rng.normal(1, 0.1, 500), [np.nan] * 10]
    assert "10 of 510 resamples undefined" in stats.replicates_verdict(1.0, nan, n=5, unit="u", method="m").method
    assert stats.replicates_verdict(1.0, [1.0] * 50, n=5, unit="u", method="m").label == "not resolved"
    with pytest.raises(ValueError):
        stats.replicates_verdict(1.0, np.ones((3, 3)), n=5, unit="u", method="m")


# ---- Figure 4 -------------------------------------------------------------------------------------------------
def test_cells_covered_and_region_enrichment():
    m = np.zeros((64, 64), bool)
    m[:16, :16] = True
    assert V.cells_covered(m, 16) == 1.0 and V.cells_covered(m, 32) == 0.25
    a = np.ones((4, 4))
    a[0, 0] = 5.0  # total 20: the cell holds 5 / 20 of the mass on 1 / 16 of the area
    part = np.zeros((4, 4), bool)
    part[0, 0] = True
    e = V.region_enrichment(a, {"part": part, "rest": ~part, "empty": np.zeros((4, 4), bool)})
    assert e["part"] == pytest.approx(0.25 * 16) and e["rest"] == pytest.approx(0.75 * 16 / 15)
    assert math.isnan(e["empty"])
    with pytest.raises(ValueError):
        V.region_enrichment(np.zeros((4, 4)), {"part": part})
    with pytest.raises(ValueError):
        V.cells_covered(m, 0)


def test_figure4_regions_are_disjoint_and_cover_the_image():
    obj = np.zeros((8, 8), bool)
    obj[2:6, 2:6] = True
    part = np.zeros_like(obj)
    part[2:4, 2:4] = True
    decoy = np.zeros_like(obj)
    decoy[3:5, 3:5] = True  # one pixel under the part
    r = V.figure4_regions({"object": obj, "part": part, "decoy": decoy})
    total = sum(v.astype(int) for v in r.values())
    assert (total == 1).all()
    assert r["decoy"].sum() == 3 and r["part"].sum() == 4 and r["object_rest"].sum() == 9


def _tiny_backbone(seed=0):
    from detpretrain.models.backbones import build_backbone

    torch.manual_seed(seed)
    return build_backbone("resnet_tiny", norm="gn").eval().double()


def _head(backbone, n_classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    c5 = backbone.layer4[-1].conv2.out_channels
    return V.ProbeHead(backbone, torch.rand(c5, generator=g), 0.5 + torch.rand(c5, generator=g),
                       torch.randn(n_classes, c5, generator=g), torch.randn(n_classes, generator=g)).double()


def test_grad_cam_at_conv5_is_cam_of_the_linear_probe():
    bb = _tiny_backbone()
    head = _head(bb)
    images = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    labels = [2, 0]
    cam = V.grad_cam(bb, head, images, labels, "layer4")
    with torch.no_grad():
        a = bb.layer4(bb.layer3(bb.layer2(bb.layer1(bb.maxpool(bb.relu(bb.bn1(bb.conv1(images))))))))
        w = head.linear.weight[labels] / head.scale  # [B, C5]
        closed = torch.relu((w[:, :, None, None] * a).sum(1, keepdim=True)) / (a.shape[2] * a.shape[3])
        closed = torch.nn.functional.interpolate(closed, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(cam, closed)
    assert (cam >= 0).all() and cam.shape == (2, 64, 64)


def test_grad_cam_weights_at_conv4_match_a_finite_difference():
    bb = _tiny_backbone(1)
    head = _head(bb, seed=1)
    image = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    label = 1
    leaf, _ = V._stages(bb, image, "layer3")
    a3 = leaf.detach()
    h, w = a3.shape[-2:]

    def score(x):
        with torch.no_grad():
            return float(head.scores(bb.layer4(x).mean(dim=(2, 3)))[0, label])

    eps = 1e-6
    alpha = []
    for k in range(a3.shape[1]):  # d score / d (a constant added to channel k), per position = alpha_k
        e = torch.zeros_like(a3)
        e[:, k] = eps
        alpha.append((score(a3 + e) - score(a3 - e)) / (2 * eps) / (h * w))
    manual = torch.relu((torch.tensor(alpha, dtype=torch.float64)[None, :, None, None] * a3).sum(1, keepdim=True))
    manual = torch.nn.functional.interpolate(manual, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(V.grad_cam(bb, head, image, [label], "layer3"), manual, rtol=1e-5, atol=1e-8)


def test_activation_maps_at_conv4_have_the_finer_grid():
    bb = _tiny_backbone().float()
    m3 = V.activation_maps(bb, torch.randn(1, 3, 64, 64), "layer3")
    assert m3.shape == (1, 64, 64) and (m3 >= 0).all()
    with pytest.raises(ValueError):
        V.activation_maps(bb, torch.randn(1, 3, 64, 64), "layer9")


def test_enrichment_claims_on_a_hand_made_frame():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(30):
        for b, part, decoy in (("cls", 3.0, 1.0), ("det", 1.5, 1.4), ("scratch", 1.0, 1.0)):
            noise = rng.normal(0, 0.1)
            rows.append({"backbone": b, "map": "channel mean", "image": i, "part_cells": 1.5 if i else 0.5,
                         "decoy_cells": 1.2, "part_enrichment": part + noise,
                         "decoy_enrichment": decoy + noise + 0.1 * (-1) ** i})  # R: part - decoy = -+0.1
    claims = V.enrichment_claims(pd.DataFrame(rows), {"cls": "C", "det": "D", "scratch": "R"},
                                 classification="cls", detection="det")
    assert claims["part enrichment, C minus D"].label == "holds"
    assert claims["part enrichment, C minus D"].n == 29  # image 0's part spans half a cell: left out
    assert claims["part minus decoy enrichment, C"].label == "holds"
    assert claims["part minus decoy enrichment, R"].label == "not resolved"
    assert not claims["part enrichment, C minus R"].replicated
    # the difference of differences, per image: (3 - 1) - (1.5 - 1.4) = 1.9 against the detector, (3 - 1) - (1 - 1)
    # = 2 against the untrained backbone (the shared noise and the alternating 0.1 cancel: no spread, no label)
    assert claims["part-over-decoy preference, C minus D"].estimate == pytest.approx(1.9)
    assert claims["part-over-decoy preference, C minus R"].estimate == pytest.approx(2.0)
    assert claims["part-over-decoy preference, C minus D"].n == 29  # image 0: its part spans half a cell


def test_part_over_decoy_preference_is_a_paired_difference_of_differences():
    rng = np.random.default_rng(1)
    rows = [{"backbone": b, "map": "channel mean", "image": i, "part_cells": 2.0, "decoy_cells": 2.0 if i % 4 else 0.5,
             "part_enrichment": part + rng.normal(0, 0.3), "decoy_enrichment": decoy + rng.normal(0, 0.3)}
            for i in range(40) for b, part, decoy in (("cls", 2.5, 1.5), ("det", 1.6, 1.5), ("scratch", 1.2, 1.2))]
    frame = pd.DataFrame(rows)
    claims = V.enrichment_claims(frame, {"cls": "C", "det": "D", "scratch": "R"}, classification="cls",
                                 detection="det")
    kept = frame[frame["decoy_cells"] >= 1].assign(pref=lambda f: f["part_enrichment"] - f["decoy_enrichment"])
    wide = kept.pivot(index="image", columns="backbone", values="pref")
    for other, name in (("det", "D"), ("scratch", "R")):
        v = claims[f"part-over-decoy preference, C minus {name}"]
        d = (wide["cls"] - wide[other]).to_numpy()
        assert v.estimate == pytest.approx(d.mean()) and v.n == 30  # every 4th image's decoy spans half a cell
        assert v.unit == "test image" and not v.replicated
    assert claims["part-over-decoy preference, C minus D"].label == "holds"  # true value 0.9, sd ~0.6, 30 images


def alone_floor(frame):
    return V.enrichment_claims(frame, {"cls": "C", "det": "D", "scratch": "R"}, classification="cls",
                               detection="det")["part minus decoy enrichment, R"]


def test_enrichment_claims_over_replicate_frames_are_t_intervals_and_a_map_some_frames_lack_has_none():
    """One frame per pre-training replicate pair: each claim that every frame measures is Student's t over the frames'
    per-image means (scipy, written out); a map only the first frame has (Grad-CAM here) gets no interval, not a
    quiet fallback to replicate 0; the untrained floor's own claim (the same network in every frame) stays over the
    first frame's images."""
    from scipy import stats as st

    def frame(shift, seed, maps=("channel mean",)):
        rng = np.random.default_rng(seed)
        return pd.DataFrame([{"backbone": b, "map": m, "image": i, "part_cells": 2.0, "decoy_cells": 2.0,
                              "part_enrichment": part + (shift if b == "cls" else 0.0) + rng.normal(0, 0.3),
                              "decoy_enrichment": decoy + rng.normal(0, 0.3)}
                             for i in range(25) for m in maps
                             for b, part, decoy in (("cls", 2.5, 1.5), ("det", 1.6, 1.5), ("scratch", 1.2, 1.2))])

    frames = [frame(0.0, 0, ("channel mean", "Grad-CAM")), frame(0.3, 1), frame(-0.2, 2)]
    names = {"cls": "C", "det": "D", "scratch": "R"}
    claims = V.enrichment_claims(frames, names, classification="cls", detection="det")
    for claim, (a, b) in {"part enrichment, C minus D": ("cls", "det"),
                          "part enrichment, C minus R": ("cls", "scratch")}.items():
        means = []
        for f in frames:
            w = f[f["map"] == "channel mean"].pivot(index="image", columns="backbone", values="part_enrichment")
            means.append((w[a] - w[b]).mean())
        low, high = st.t.interval(0.95, 2, loc=np.mean(means), scale=st.sem(means))
        v = claims[claim]
        assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((np.mean(means), low, high))
        assert v.unit == "pre-training run" and (v.n, v.n_units) == (3, 75)
        # against the floor, the same untrained network in every frame, only the classifier's spread is in the
        # interval: not called replicated
        assert v.replicated == (b != "scratch")
        assert ("one side is the same network in every pair" in v.method) == (b == "scratch")
    assert claims["part-over-decoy preference, C minus D"].replicated
    assert not claims["part-over-decoy preference, C minus R"].replicated
    assert set(claims) == set(V.enrichment_claims(frames[0], names, classification="cls", detection="det"))
    grad = V.enrichment_claims(frames, names, classification="cls", detection="det", kind="Grad-CAM")
    alone = V.enrichment_claims(frames[0], names, classification="cls", detection="det", kind="Grad-CAM")
    assert set(grad) == set(alone)
    for name, v in grad.items():
        if name == "part minus decoy enrichment, R":  # the floor alone: over the first frame's images
            assert v == alone[name] and not v.replicated
            continue
        assert v.label == "not resolved" and math.isnan(v.ci_low) and "1, 2 of 3" in v.method and "not comparable" \
            in v.method
    floor = claims["part minus decoy enrichment, R"]
    assert floor == alone_floor(frames[0]) and not floor.replicated and floor.unit == "test image"
    assert V.enrichment_claims([frames[0]], names, classification="cls", detection="det") == \
        V.enrichment_claims(frames[0], names, classification="cls", detection="det")
    with pytest.raises(ValueError, match="no frame"):
        V.enrichment_claims([], names)


def test_replicated_part_enrichment_is_a_t_interval_over_replicate_means():
    from scipy import stats as st

    def frame(shift, seed):
        rng = np.random.default_rng(seed)
        return pd.DataFrame([{"backbone": b, "map": m, "image": i, "part_cells": 0.5 if i == 0 else 2.0,
                              "part_enrichment": base + (shift if b == "imagenet-cls" else 0) + rng.normal(0, 0.2)}
                             for i in range(20) for b, base in (("imagenet-cls", 2.0), ("detection", 1.5))
                             for m in ("channel mean", "Grad-CAM")])

    frames = [frame(s, k) for k, s in enumerate((0.4, 0.6, 0.5))]
    v = V.replicated_part_enrichment(frames)
    means = []
    for f in frames:
        g = f[(f["map"] == "channel mean") & (f["part_cells"] >= 1)].pivot(index="image", columns="backbone",
                                                                           values="part_enrichment")
        means.append((g["imagenet-cls"] - g["detection"]).mean())
    low, high = st.t.interval(0.95, 2, loc=np.mean(means), scale=st.sem(means))
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((np.mean(means), low, high))
    assert v.unit == "pre-training run" and v.n == 3 and v.n_units == 57 and v.replicated  # image 0 left out
    one = V.replicated_part_enrichment(frames[:1])
    assert not one.replicated and one.n == 19
    no_part = [f.assign(part_cells=0.0) for f in frames]
    assert V.replicated_part_enrichment(no_part) is None
    with pytest.raises(ValueError, match="replicate pair 1 of 3 has no image"):
        V.replicated_part_enrichment([frames[0], no_part[1], frames[2]])


def test_corpus_objects_reads_the_decoy(tmp_path):
    from detpretrain.data import synthetic as syn

    root = syn.generate(syn.CorpusSpec("imagenet_cls", 64, 25, 0, 0, seed=4, cue="part+decoy"), tmp_path)
    names = [im["file_name"] for im in json.loads((root / "annotations.json").read_text())["images"]][:6]
    objs = V.corpus_objects(root, names)
    assert any(o["decoy"].any() for o in objs)
    for o in objs:
        assert len(o["decoys"]) == len(o["instances"]) and not (o["decoy"] & ~o["object"]).any()


# ---- Figure 5 -------------------------------------------------------------------------------------------------
def test_mask_coverage_matches_a_loop():
    rng = np.random.default_rng(1)
    mask = rng.random((20, 17)) < 0.2
    ys, xs = V.mask_positions(20, 6, 4), V.mask_positions(17, 6, 3)
    loop = np.array([[mask[y:y + 6, x:x + 6].sum() / mask.sum() for x in xs] for y in ys])
    np.testing.assert_allclose(V.mask_coverage(mask, ys, xs, 6), loop)
    assert not V.mask_coverage(np.zeros((20, 17), bool), ys, xs, 6).any()


def test_maskout_log_odds_on_a_hand_made_map():
    obj = np.zeros((8, 8), bool)
    obj[:, :6] = True
    part = np.zeros_like(obj)
    part[0:2, 0:2] = True
    ys = xs = [0, 2, 4, 6]  # window 2, stride 2: the square at (0, 0) covers the whole part
    prob = np.full((4, 4), 0.9)
    prob[0, 0] = 0.5
    result = {"prob": prob, "ys": ys, "xs": xs, "centres_y": np.array(ys) + 0.5, "centres_x": np.array(xs) + 0.5,
              "clean": 0.9}
    out = V.maskout_log_odds(result, obj, part, window=2, cover=0.5)
    assert out["positions_covering_part"] == 1 and out["positions_rest"] == 11  # 12 object positions minus the part
    assert out["logodds_drop_part"] == pytest.approx(math.log(9) - 0.0)
    assert out["logodds_drop_rest"] == pytest.approx(0.0)
    assert V.log_odds([0.0, 1.0]).tolist() == pytest.approx([math.log(1e-6 / (1 - 1e-6)), math.log((1 - 1e-6) / 1e-6)])
    none = V.maskout_log_odds(result, obj, None, window=2)
    assert math.isnan(none["logodds_drop_part"]) and none["positions_covering_part"] == 0


def test_maskout_claims_keep_only_images_both_probes_get_right():
    rows = []
    for i in range(12):
        for b, v in (("cls", 2.0 + 0.1 * (i % 3)), ("det", 0.5 + 0.1 * (i % 2))):
            rows.append({"backbone": b, "image": i, "correct": i != 0 or b == "cls", "logodds part minus rest": v})
    claims = V.maskout_claims(pd.DataFrame(rows), {"cls": "C", "det": "D"}, classification="cls", detection="det")
    v = claims["log-odds drop (part minus rest), C minus D"]
    assert v.n == 11 and v.label == "holds"
    # one frame per pre-training replicate pair: Student's t over the frames' means on their correct images (scipy)
    from scipy import stats as st

    frames = [pd.DataFrame(rows).assign(**{"logodds part minus rest": lambda f, s=shift: f["logodds part minus rest"]
                                           + np.where(f["backbone"] == "cls", s, 0.0)}) for shift in (0.0, 0.4, -0.3)]
    rep = V.maskout_claims(frames, {"cls": "C", "det": "D"}, classification="cls", detection="det")
    means = [v.estimate, v.estimate + 0.4, v.estimate - 0.3]
    low, high = st.t.interval(0.95, 2, loc=np.mean(means), scale=st.sem(means))
    r = rep["log-odds drop (part minus rest), C minus D"]
    assert (r.estimate, r.ci_low, r.ci_high) == pytest.approx((np.mean(means), low, high))
    assert r.replicated and r.unit == "pre-training run" and (r.n, r.n_units) == (3, 33)
    assert rep["log-odds drop, part minus rest, D"].replicated
    assert V.maskout_claims([frames[0]], {"cls": "C", "det": "D"}, classification="cls", detection="det") == claims
    empty = frames[0].iloc[0:0]
    assert V.maskout_claims([empty, frames[1]], {"cls": "C", "det": "D"}, classification="cls", detection="det") == {}
    with pytest.raises(ValueError, match="no frame"):
        V.maskout_claims([], {"cls": "C", "det": "D"})


# ---- Figure 8 -------------------------------------------------------------------------------------------------
def test_paired_localisation_separates_misses_from_localisation():
    objects = pd.DataFrame({
        "image": [0, 0, 1, 2, 3, 4, 5],
        "visible_fraction": [1.0, 0.3, 1.0, 1.0, 0.6, 1.0, 1.0],
        "iou_a": [0.6, 0.0, 0.6, 0.7, 0.55, 0.62, 0.58],  # the second object: missed by a
        "iou_b": [0.7, 0.9, 0.7, 0.8, 0.65, 0.71, 0.69],
    })
    table, verdicts = V.paired_localisation(objects, "a", "b")
    row = table.set_index("visible").loc["all"]
    assert row["both"] == 6 and row["IoU gain"] == pytest.approx(np.mean([0.1, 0.1, 0.1, 0.1, 0.09, 0.11]))
    assert row["detected by a %"] == pytest.approx(100 * 6 / 7) and row["detected by b %"] == 100
    assert verdicts["all"].n == 6 and verdicts["all"].label == "holds"  # 6 images; the miss is not an IoU of 0
    assert table.set_index("visible").loc["0.00-0.50", "both"] == 0


# ---- Figures 3, 6, 7 ------------------------------------------------------------------------------------------
from detpretrain.analysis import feature_space as FS  # noqa: E402


def test_pair_counts_and_the_conditional_ratio_identity():
    assert FS.pair_counts([0, 0, 0, 1, 1, 2]) == 3 + 1
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 3, 50), rng.integers(0, 7, 50)
    r = FS.consistency_null(a, b, n_perm=50)
    assert r["p_b_given_a"] / r["p_a_given_b"] == pytest.approx(r["pairs_b"] / r["pairs_a"])
    ref = FS.cluster_consistency({3: a}, {3: b}).iloc[0]
    assert (r["pairs_a"], r["pairs_b"], r["pairs_both"]) == (ref["pairs_a"], ref["pairs_b"], ref["pairs_both"])
    with pytest.raises(ValueError):
        FS.consistency_null(np.arange(5), np.zeros(5))


def test_permutation_null_has_the_exact_expectation_and_level():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 60), rng.integers(0, 9, 60)
    r = FS.consistency_null(a, b, n_perm=4000, seed=2)
    expected_both = r["pairs_a"] * r["pairs_b"] / r["pairs_all"]
    assert r["null_lift"] == pytest.approx(1.0, abs=0.01)
    assert r["null_asymmetry"] == pytest.approx(expected_both / r["pairs_a"] - expected_both / r["pairs_b"], rel=0.02)
    rejections = [FS.consistency_null(rng.integers(0, 3, 40), rng.integers(0, 5, 40), n_perm=99, seed=s)["p_lift"]
                  < 0.05 for s in range(100)]
    assert np.mean(rejections) <= 0.12  # independent partitions: about 5 % rejected
    same = rng.integers(0, 4, 60)
    nested = same * 2 + rng.integers(0, 2, 60)  # B refines A: every B pair is an A pair
    r = FS.consistency_null(same, nested, n_perm=200)
    assert r["p_a_given_b"] == 1.0 and r["lift"] > 1.5 and r["p_lift"] < 0.01


def test_corrected_asymmetry_verdict_over_kmeans_seeds():
    frame = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "K": [2, 4] * 3,
                          "corrected_asymmetry": [0.1, 0.12, 0.09, 0.11, 0.1, 0.13]})
    v = FS.corrected_asymmetry_verdict(frame)
    assert v.label == "holds" and v.n == 3 and not v.replicated


def test_corrected_asymmetry_verdict_over_pretraining_replicates_is_a_t_interval_of_their_means():
    """Three replicate pairs' frames: Student's t over the three per-pair means (each over its k-means seeds and K),
    computed independently with scipy; one frame in a list is the k-means-seed analysis; no frame is an error."""
    from scipy import stats as st

    def frame(values):  # 2 k-means seeds x 2 K per pair
        return pd.DataFrame({"seed": [0, 0, 1, 1], "K": [2, 4, 2, 4], "corrected_asymmetry": values})

    frames = [frame([0.1, 0.3, 0.2, 0.2]), frame([0.0, 0.1, 0.05, 0.05]), frame([0.3, 0.1, 0.2, 0.4])]
    v = FS.corrected_asymmetry_verdict(frames)
    means = [0.2, 0.05, 0.25]
    low, high = st.t.interval(0.95, 2, loc=np.mean(means), scale=st.sem(means))
    assert (v.estimate, v.ci_low, v.ci_high, v.df) == pytest.approx((np.mean(means), low, high, 2))
    assert v.unit == "pre-training run" and v.subunit == "k-means sweep" and v.replicated
    assert (v.n, v.n_units) == (3, 6)
    assert v.label == ("holds" if low > 0 else "not resolved")
    one = FS.corrected_asymmetry_verdict([frames[0]])
    assert one == FS.corrected_asymmetry_verdict(frames[0]) and not one.replicated and one.unit == "k-means sweep"
    with pytest.raises(ValueError, match="no frame"):
        FS.corrected_asymmetry_verdict([])


def test_knn_agreement_per_image_and_its_bootstrap():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(4), 10)
    tight = np.eye(4)[labels] + 0.05 * rng.random((40, 4))
    loose = rng.random((40, 4))
    per = FS.knn_agreement_per_image(tight, labels, 3)
    assert per.mean() * 100 == pytest.approx(FS.knn_class_agreement(tight, labels, 3))
    v = FS.knn_agreement_verdict(tight, loose, labels, k=3, n_boot=500)
    assert v.label == "holds" and v.unit == "image"
    assert FS.knn_agreement_verdict([tight], [loose], labels, k=3, n_boot=500) == v  # one pair: the same bootstrap


def test_knn_agreement_verdict_over_pretraining_replicates_is_a_t_interval_of_their_means():
    """Three replicate pairs: the interval is Student's t over the three per-replicate mean differences (scipy)."""
    from scipy import stats as st

    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(4), 10)
    a = [np.eye(4)[labels] + s * rng.random((40, 4)) for s in (0.3, 0.6, 0.9)]
    b = [rng.random((40, 4)) for _ in range(3)]
    v = FS.knn_agreement_verdict(a, b, labels, k=3)
    means = [100 * (FS.knn_agreement_per_image(x, labels, 3) - FS.knn_agreement_per_image(y, labels, 3)).mean()
             for x, y in zip(a, b)]
    low, high = st.t.interval(0.95, 2, loc=np.mean(means), scale=st.sem(means))
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((np.mean(means), low, high))
    assert v.unit == "pre-training run" and v.n == 3 and v.replicated and v.n_units == 120
    with pytest.raises(ValueError, match="2 A and 3 B feature sets"):
        FS.knn_agreement_verdict(a[:2], b, labels, k=3)
    with pytest.raises(ValueError, match="both as lists"):
        FS.knn_agreement_verdict(a, b[0], labels, k=3)


def test_size_match_bootstrap_on_hand_made_pairs():
    attr = np.arange(20, dtype=float)
    close = np.array([[i, i + 1] for i in range(0, 18, 2)])  # differ by 1
    far = np.array([[i, i + 10] for i in range(9)])  # differ by 10
    v = FS.size_match_bootstrap(far, close, attr, n_boot=500)
    ref = FS.pair_attribute_similarity(close, attr)["all_mean_abs_diff"]
    assert v.estimate == pytest.approx((10 - 1) / ref)
    assert v.label == "not resolved"  # zero spread within each set: every resample gives the same value
    jitter = close.copy()
    jitter[::2, 1] += 1  # differ by 1 or 2
    assert FS.size_match_bootstrap(far, jitter, attr, n_boot=500).label == "holds"


def test_size_match_verdict_over_pretraining_replicates_is_a_t_interval_of_their_statistics():
    """Three replicate pairs of nearest-pair sets: the per-pair statistic is the difference of the two sets' mean
    size differences relative to all pairs (written out here), and the interval is Student's t over the three."""
    from scipy import stats as st

    attr = np.arange(20, dtype=float)
    ref = np.mean([abs(i - j) for i in range(20) for j in range(i + 1, 20)])
    sets = [(np.array([[i, i + gap] for i in range(5)]), np.array([[i, i + 1] for i in range(5)]))
            for gap in (6, 8, 11)]
    v = FS.size_match_verdict(sets, attr)
    per_pair = [(gap - 1) / ref for gap in (6, 8, 11)]
    low, high = st.t.interval(0.95, 2, loc=np.mean(per_pair), scale=st.sem(per_pair))
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((np.mean(per_pair), low, high))
    assert v.unit == "pre-training run" and v.n == 3 and v.replicated and v.label == "holds"
    swapped = FS.size_match_verdict([(b, a) for a, b in sets], attr)  # the detection space's pairs match worse
    assert swapped.label == "reversed" and swapped.estimate == pytest.approx(-v.estimate)
    one = FS.size_match_verdict(sets[:1], attr, n_boot=500)
    assert one == FS.size_match_bootstrap(*sets[0], attr, n_boot=500) and not one.replicated
    none = FS.size_match_verdict(sets, np.full(20, np.nan))
    assert none.n == 0 and np.isnan(none.estimate) and "no annotated object sizes" in none.method
    with pytest.raises(ValueError, match="no pair sets"):
        FS.size_match_verdict([], attr)


def test_size_match_without_object_sizes_is_not_measured():
    """Real photographs have no annotated object sizes: no estimate (the torchvision profile's feature space)."""
    pairs = np.array([[0, 1], [2, 3]])
    v = FS.size_match_bootstrap(pairs, pairs, np.full(4, np.nan))
    assert v.n == 0 and np.isnan(v.estimate) and v.label == "not resolved"
    assert v.method == "not measured: these images have no annotated object sizes (real data)"
    with pytest.raises(ValueError, match="NaN or infinite values at \\[2\\]"):
        FS.size_match_bootstrap(pairs, pairs, np.array([0.0, 1.0, np.nan, 2.0]))  # some sizes missing: a bug


# ---- Table 5 --------------------------------------------------------------------------------------------------
from detpretrain.analysis import probes as P  # noqa: E402


def test_fpn_level_of_roi_matches_torchvisions_level_mapper():
    from torchvision.ops.poolers import LevelMapper

    mapper = LevelMapper(2, 5)
    for side in (16, 64, 100, 128, 224, 300, 448, 1000):
        got = int(mapper([torch.tensor([[0.0, 0.0, side, side]])])[0]) + 2
        assert P.fpn_level_of_roi(side, side) == got
    assert P.fpn_level_of_roi(128, 128) == 3  # a whole 128 px image: P3, not the Conv5 stride (P5)


def test_roi_align_level_pools_the_whole_image_from_p5():
    from detpretrain.models.detection import roi_align_level

    ramp = torch.arange(4, dtype=torch.float32).repeat(1, 2, 4, 1)  # [1, 2, 4, 4], value = column index
    feats = {"1": torch.zeros(1, 2, 16, 16), "3": ramp}
    out = roi_align_level(feats, [torch.tensor([[0.0, 0.0, 128.0, 128.0]])], (128, 128), "3")
    bin_w = 4 / 7  # the box spans 4 cells of stride 32; 2 samples per bin; bilinear on a ramp is exact, clamped at 3
    expected = [np.mean([min((j + (s + 0.5) / 2) * bin_w, 3.0) for s in (0, 1)]) for j in range(7)]
    assert out.shape == (1, 2, 7, 7)
    np.testing.assert_allclose(out[0, 0, 0].numpy(), expected, rtol=1e-5)
    with pytest.raises(KeyError):
        roi_align_level(feats, [torch.zeros(1, 4)], (128, 128), "pool")


def test_pca_project_matches_an_svd_of_the_training_split():
    rng = np.random.default_rng(0)
    tr, va, te = rng.normal(size=(30, 8)), rng.normal(size=(10, 8)), rng.normal(size=(12, 8))
    ptr, pva, pte = P.pca_project(tr, va, te, 3)
    mean = tr.mean(0)
    vt = np.linalg.svd(tr - mean, full_matrices=False)[2][:3]
    for got, x in ((ptr, tr), (pva, va), (pte, te)):
        ref = (x - mean) @ vt.T
        np.testing.assert_allclose(np.abs(got), np.abs(ref), atol=1e-8)
        assert np.all(np.sign(got[0]) * np.sign(ref[0]) == np.sign(got[1]) * np.sign(ref[1]))  # one sign per axis
    with pytest.raises(ValueError):
        P.pca_project(tr, va, te, 9)


def test_matched_probes_share_one_dimension_and_table5_claims():
    rng = np.random.default_rng(1)

    def split(n):
        y = np.repeat(np.arange(3), n // 3)
        signal = np.eye(3)[y] * 3 + rng.normal(size=(len(y), 3))
        return {"small": signal, "big": np.hstack([signal, rng.normal(size=(len(y), 40))]), "labels": y}

    arrays = {"train": split(30), "val": split(15), "test": split(30)}
    res = P.matched_probes(arrays, ["small", "big"], cs=(1.0,))
    assert res["small"]["pca_dim"] == res["big"]["pca_dim"] == 3 and res["big"]["dim"] == 3
    assert res["small"]["correct"].shape == (30,) and res["small"]["top1"] > 60
    good, bad = np.ones(40, bool), np.r_[np.zeros(15, bool), np.ones(25, bool)]
    claims = P.table5_claims({"fc1": good, "fc2": bad, "convproj": bad})
    assert list(claims) == ["Table 5: FC1 > FC2"] and claims["Table 5: FC1 > FC2"].label == "holds"
    assert not claims["Table 5: FC1 > FC2"].replicated


def test_table5_claims_over_detection_pretraining_replicates_are_a_t_interval_of_their_top1_differences():
    """One probe dict per replicate of the detection pre-training: Student's t over the per-replicate top-1
    differences (points, scipy); a pair some replicate lacks is left out; one dict is McNemar's test."""
    from scipy import stats as st

    def probes(n_bad):  # fc1 right on all 40 images, fc2 wrong on the first n_bad
        return {"fc1": np.ones(40, bool), "fc2": np.r_[np.zeros(n_bad, bool), np.ones(40 - n_bad, bool)],
                "convproj": {"correct": np.ones(40, bool)}}

    reps = [probes(10), probes(14), probes(8)]
    reps[1].pop("convproj")
    claims = P.table5_claims(reps)
    diffs = [100 * 10 / 40, 100 * 14 / 40, 100 * 8 / 40]
    low, high = st.t.interval(0.95, 2, loc=np.mean(diffs), scale=st.sem(diffs))
    v = claims["Table 5: FC1 > FC2"]
    assert list(claims) == ["Table 5: FC1 > FC2"]  # convproj pairs: replicate 1 has no convproj probe
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((np.mean(diffs), low, high))
    assert v.replicated and v.unit == "pre-training run" and v.n == 3 and v.label == "holds"
    assert P.table5_claims(reps[:1]) == P.table5_claims(reps[0])
    with pytest.raises(ValueError, match="no probes"):
        P.table5_claims([])


# ---- Table 3 --------------------------------------------------------------------------------------------------
from detpretrain.analysis import ablations as A  # noqa: E402


def test_visibility_group_keeps_truncation_apart():
    assert A.visibility_group(0.4, True) == "truncated"
    assert A.visibility_group(0.4, False) == "occluded" and A.visibility_group(0.97, False) == "clean"
    assert A.visibility_group(math.nan, False, True) == "occluded" and A.visibility_group(math.nan, False) == "clean"


def _cells(counts):
    """Rows of a 2 x 2 design: counts[(det, occluded)] = (missed, kept)."""
    rows = []
    for (det, occ), (m, k) in counts.items():
        rows += [{"det": det, "occluded": occ, "missed": 1}] * m + [{"det": det, "occluded": occ, "missed": 0}] * k
    return pd.DataFrame(rows)


def test_fit_missed_logit_equals_the_log_odds_of_a_saturated_design():
    counts = {(0, 0): (10, 90), (1, 0): (6, 94), (0, 1): (30, 70), (1, 1): (12, 88)}
    coef = A.fit_missed_logit(_cells(counts), ("det", "occluded", "det:occluded"), classes=False)

    def lo(m, k):
        return math.log(m / k)

    l00, l10, l01, l11 = (lo(*counts[c]) for c in ((0, 0), (1, 0), (0, 1), (1, 1)))
    assert coef["intercept"] == pytest.approx(l00, abs=1e-4)
    assert coef["det"] == pytest.approx(l10 - l00, abs=1e-4)
    assert coef["occluded"] == pytest.approx(l01 - l00, abs=1e-4)
    assert coef["det:occluded"] == pytest.approx(l11 - l10 - l01 + l00, abs=1e-4)


def test_missed_design_and_bootstrap_verdict_by_image():
    rng = np.random.default_rng(0)
    frames = {}
    for pre, det in (("imagenet-cls", 0), ("detection", 1)):
        rows = []
        for img in range(150):
            for obj in range(3):
                r = np.random.default_rng(img * 10 + obj)  # the same objects for both detectors
                vf, trunc = r.choice([1.0, 0.6]), bool(r.random() < 0.2)
                occluded = (not trunc) and vf < 0.95
                p = 0.1 + (0.45 if occluded else 0.0) * (0.3 if det else 1.0)
                rows.append({"image": img, "area": 100.0 + obj, "category": "car" if obj else "dog",
                             "visible_fraction": vf, "truncated": trunc, "occluded": False, "difficult": False,
                             "missed": bool(rng.random() < p), "seed": 0})
        frames[pre] = [pd.DataFrame(rows)]
    design = A.missed_design(frames)
    assert set(design["group"]) == {"clean", "occluded", "truncated"} and len(design) == 900
    assert ((design["group"] == "truncated") == (design["truncated"] == 1)).all()
    table = A.visibility_table(design)
    assert table[("% missed", "occluded")]["detection"] < table[("% missed", "occluded")]["baseline"]
    coef, verdicts = A.missed_logit_verdicts(design, n_boot=120)
    assert verdicts["det:occluded"].label == "holds" and verdicts["det:occluded"].n == 150
    assert not verdicts["det"].replicated
    # one replicate in the design: the replicated analysis is this bootstrap
    coef1, one = A.replicated_missed_logit_verdicts(design, n_boot=120)
    assert one == verdicts and coef1.equals(coef)


def test_replicated_missed_logit_is_a_t_interval_over_the_replicates_fits():
    """Three pre-training replicates: the model is fitted once per replicate and each term's interval is Student's t
    over the three coefficients (each fit checked against fit_missed_logit on that replicate's rows, scipy's t)."""
    from scipy import stats as st

    rows = []
    for rep, shrink in enumerate((0.3, 0.4, 0.2)):
        rng = np.random.default_rng(rep)
        for det in (0, 1):
            for img in range(120):
                for obj in range(3):
                    occ = (img + obj) % 3 == 0
                    p = 0.1 + (0.45 if occ else 0.0) * (shrink if det else 1.0)
                    rows.append({"image": img, "replicate": rep, "seed": 0, "class": "car", "det": det,
                                 "occluded": int(occ), "truncated": 0, "log_area": 0.1 * obj,
                                 "missed": int(rng.random() < p), "group": "occluded" if occ else "clean"})
    design = pd.DataFrame(rows)
    coef, verdicts = A.replicated_missed_logit_verdicts(design)
    per = [A.fit_missed_logit(design[design["replicate"] == r], C=10.0)["det:occluded"] for r in range(3)]
    low, high = st.t.interval(0.95, 2, loc=np.mean(per), scale=st.sem(per))
    v = verdicts["det:occluded"]
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((np.mean(per), low, high))
    assert v.replicated and v.unit == "pre-training run" and v.n == 3 and v.expected == -1
    assert coef["det:occluded"] == pytest.approx(A.fit_missed_logit(design, C=10.0)["det:occluded"])
    all_missed = design.assign(missed=np.where(design["replicate"] == 1, 1, design["missed"]))
    undefined = A.replicated_missed_logit_verdicts(all_missed)[1]["det:occluded"]
    assert undefined.label == "not resolved" and "undefined" in undefined.method
    one_arm = A.replicated_missed_logit_verdicts(design[(design["replicate"] != 2) | (design["det"] == 1)])[1]
    assert one_arm["det"].label == "not resolved" and "replicate(s) 2 hold one pre-training" in one_arm["det"].method


# ---- Figure 2 -------------------------------------------------------------------------------------------------
from detpretrain.analysis import segmentation as SEG  # noqa: E402


def test_gain_split_is_exact_on_pixel_counts():
    # trimap 100 px: 80 % -> 90 % (+10 px); rest 900 px: 90 % -> 92 % (+18 px): 10 of 28 gained pixels at boundaries
    g = SEG.gain_split(80, 90, 100, 90, 92, 900)
    assert g["pixel_share"] == pytest.approx(0.1) and g["gain_share"] == pytest.approx(10 / 28)
    assert g["excess"] == pytest.approx(10 / 28 - 0.1)
    assert math.isnan(SEG.gain_split(90, 80, 100, 90, 90, 900)["gain_share"])  # no positive gain: no share
    # the boundary excess is the same statement for every pair: gained_tri - p * gained_all = p (1 - p) excess * N / 100
    assert g["boundary_excess"] == pytest.approx(10 - 2)
    assert 10 - 0.1 * 28 == pytest.approx(0.1 * 0.9 * g["boundary_excess"] * 1000 / 100)
    loss = SEG.gain_split(50, 52, 100, 90, 89.97, 9000)  # +2 at boundaries, a net loss overall: no share, an excess
    assert math.isnan(loss["gain_share"]) and loss["boundary_excess"] == pytest.approx(2.03)


def _seg_result(anti_gain, tri_gain, seeds=(0, 1, 2, 3), replicates=(0,)):
    runs = []
    for r in replicates:
        for s in seeds:
            for pre, bump in (("imagenet-cls", 0.0), ("detection", 1.0)):
                jitter = 0.2 * (s - 1.5) + 0.3 * r
                runs.append({"pretrain": pre, "replicate": r, "seed": s, "metrics": {
                    "bands": [2], "band_scale": 1.0,
                    "trimap": {"2": {"mIoU": 50.0, "pixel_accuracy": 70 + bump * (tri_gain + jitter),
                                     "num_pixels": 100}},
                    "anti_trimap": {"2": {"mIoU": 60.0, "pixel_accuracy": 80 + bump * (anti_gain - jitter / 2),
                                          "num_pixels": 900}}}})
    return {"runs": runs}


def test_boundary_share_verdicts():
    table, v = SEG.boundary_share(_seg_result(anti_gain=2.0, tri_gain=2.0))  # the same gain everywhere
    assert table["trimap share of the gain"].iloc[0] == pytest.approx(0.1, abs=0.02)
    assert table["pairs with a gain"].iloc[0] == table["pairs"].iloc[0]
    lost, _ = SEG.boundary_share(_seg_result(anti_gain=-2.0, tri_gain=-2.0))  # worse everywhere: no share to average
    assert lost["pairs with a gain"].iloc[0] == 0 and math.isnan(lost["trimap share of the gain"].iloc[0])
    name = "boundary band's gain not above the gain away from boundaries, 2 px"
    assert v["gain away from boundaries, 2 px"].label == "holds"
    assert v[name].label == "holds" and v[name].margin == SEG.BOUNDARY_GAIN_MARGIN
    _, v = SEG.boundary_share(_seg_result(anti_gain=0.1, tri_gain=20.0))  # nearly all the gain at boundaries
    assert v[name].label == "reversed"
    # a gain at boundaries with no net gain is evidence against the claim, and it stays in (a share would drop it)
    _, v = SEG.boundary_share(_seg_result(anti_gain=-0.3, tri_gain=2.0))
    assert v[name].n_units == 4 and v[name].estimate > 2 and v[name].label == "reversed"


def test_boundary_share_pairs_every_replicate_and_tests_over_them():
    # 3 pre-training replicates x 1 seed: each replicate is a unit (before, only replicate 0 was read)
    result = _seg_result(anti_gain=2.0, tri_gain=2.0, seeds=(0,), replicates=(0, 1, 2))
    table, v = SEG.boundary_share(result)
    assert table["pairs"].iloc[0] == 3 and table["replicates"].iloc[0] == 3
    gain = v["gain away from boundaries, 2 px"]
    assert gain.replicated and gain.n_groups == 3
    # the estimate is the mean over replicates of the anti-trimap gain (2 - jitter / 2 with jitter -0.3, 0, +0.3)
    assert gain.estimate == pytest.approx(2.0 - (0.2 * -1.5 + 0.3) / 2)
    # a replicate whose detection run is missing leaves the analysis, not the others
    partial = {"runs": [r for r in result["runs"] if not (r["replicate"] == 2 and r["pretrain"] == "detection")]}
    assert SEG.boundary_share(partial)[0]["replicates"].iloc[0] == 2


# ---- Shinya et al. --------------------------------------------------------------------------------------------
from detpretrain.analysis import eigenspectrum as E  # noqa: E402


def test_participation_ratio_and_spectrum_distance():
    assert E.participation_ratio([1, 0, 0]) == 1 and E.participation_ratio([2, 2, 2, 2]) == pytest.approx(4)
    assert E.spectrum_distance([3, 1], [6, 2]) == 0  # scale-free
    assert E.spectrum_distance([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert E.spectrum_distance([1], [1, 1]) == pytest.approx(0.5)  # padded with zeros
    with pytest.raises(ValueError):
        E.spectrum_distance([0, 0], [1])


def test_centred_moments_match_numpy_covariance():
    rng = np.random.default_rng(0)
    maps = torch.as_tensor(rng.normal(1.0, 1.0, (5, 3, 4, 4)))  # equal positions per image
    m = E.Moments(3)
    m.update(maps)
    positions = maps.permute(1, 0, 2, 3).reshape(3, -1).numpy()
    np.testing.assert_allclose(m.covariance().numpy(), np.cov(positions, bias=True), atol=1e-12)
    np.testing.assert_allclose(m.matrix().numpy(), positions @ positions.T / positions.shape[1], atol=1e-12)


def test_spectral_separation():
    base = np.array([8.0, 4, 2, 1])
    other = np.array([4.0, 4, 4, 4])
    sa = [base * (1 + 0.01 * s) + [0, 0.01 * s, 0, 0] for s in range(4)]
    sb = [other + [0.05 * s, 0, 0, 0] for s in range(4)]
    r = E.spectral_separation(sa, sb)
    assert r["between"] > 10 * r["within"] and r["verdict"].label == "holds"
    assert r["pr_b"] == pytest.approx(4, abs=0.01)
    same = E.spectral_separation(sa, [x * 2 for x in sa])
    assert same["verdict"].label != "holds"


def test_spectral_claim1_counts_pretraining_runs_not_fine_tuning_seeds():
    """Shinya et al.'s claim 1 is about I's pre-training: with 2 replicates x 2 fine-tuning seeds the interval is over
    the 2 replicates (their pairs averaged first), and 1 replicate x 3 seeds is conditional on that network."""
    base, other = np.array([8.0, 4, 2, 1]), np.array([4.0, 4, 4, 4])
    layers = {"layer1": 0, "layer2": 1, "layer3": 2, "layer4": 3}

    def result(replicates, seeds):
        runs, spectra = [], {}
        for det, ev in (("imagenet-cls", base), ("scratch", other)):
            for r in range(replicates):
                for s in range(seeds):
                    name = f"{det}-{r}-{s}"
                    runs.append({"pretrain": det, "replicate": r, "seed": s, "run": name})
                    k = 1 + 0.02 * (2 * r + s)
                    spectra[name] = {9: {layer: ev * k + [0, 0.01 * (r + s) * (i + 1), 0, 0]
                                         for layer, i in layers.items()}}
        return {"runs": runs, "spectra": spectra}

    v = E.spectral_claim1(result(2, 2))
    assert (v.n, v.n_units, v.unit, v.replicated) == (2, 4, "pre-training run", True)
    pairs = E.spectral_claim1(result(1, 3))
    assert pairs.n == 3 and not pairs.replicated and "of 1 pre-training run" in pairs.method
    flat = E.spectral_claim1(result(3, 1))  # the mini design: one pair per replicate, the numbers of a flat t
    assert (flat.n, flat.unit, flat.replicated) == (3, "pre-training run", True)


# ---- Vasconcelos et al. ---------------------------------------------------------------------------------------
def test_frozen_interactions_are_differences_of_differences():
    from detpretrain.analysis.frozen import interaction_verdicts

    rows = []
    for seed, noise in enumerate((0.0, 0.3, -0.2, 0.1)):
        for head, gain in (("small", 0.0), ("big", 3.0)):
            for mode in ("frozen", "fine-tuned"):
                f = mode == "frozen"
                rows.append({"head": head, "mode": mode, "seed": seed,
                             "all@0.5": 30 + f * (gain + noise) + noise,
                             "rare@0.5": 10 + f * (gain + 2 + noise), "frequent@0.5": 40 + f * gain - noise})
    v = interaction_verdicts({"rows": rows}, ["small", "big"])
    cap = v["freezing gain, big minus small (all@0.5)"]
    assert cap.estimate == pytest.approx(3.0) and cap.label == "not resolved"  # zero spread: seeds agree exactly
    rare = v["freezing gain, rare minus frequent (big)"]
    assert rare.estimate == pytest.approx(2.05)  # rare gain 2 + noise beyond the frequent one, noise mean 0.05
    assert rare.label == "holds" and not rare.replicated and rare.n == 4


def test_frozen_exclusion_control_claims_and_plan():
    from scipy import stats as sps

    from detpretrain.analysis.frozen import exclusion_claims
    from detpretrain.config import config_hash
    from detpretrain.experiments.frozen import exclusion_control_note
    from detpretrain.parameters import declared
    from detpretrain.plan import CHAPTER_PLANNERS

    def study(gains):
        return {"rows": [{"head": "big", "mode": mode, "replicate": r, "seed": 0,
                          "rare@0.5": 10 + (mode == "frozen") * g} for r, g in enumerate(gains)
                         for mode in ("frozen", "fine-tuned")]}

    seen, unseen = [5.0, 6.0, 4.5], [1.0, 2.5, 0.0]
    claims = exclusion_claims(study(seen), study(unseen), "big")
    helps, shrinks = claims.values()
    assert helps.estimate == pytest.approx(np.mean(unseen)) and helps.unit == "pre-training run" and helps.n == 3
    ref = sps.ttest_ind(seen, unseen, equal_var=False)
    assert (shrinks.ci_low, shrinks.ci_high) == pytest.approx(tuple(ref.confidence_interval()))
    assert exclusion_claims(study(seen), None, "big") == {}
    # planned at mini: 3 IMAGENET-CLS runs without the rare classes, frozen and fine-tuned at the largest head only
    params = {name: p.default for name, p in declared("frozen_backbone").items()}
    planned = CHAPTER_PLANNERS["frozen_backbone"]("mini", params, None)
    without = [c for c in planned if c.name == "pretrain/imagenet-cls-without-rare-category"]
    assert len(without) == 3
    heads = params["heads"]
    control = [c for c in planned if c.init in {f"run:{config_hash(w)}" for w in without}]
    assert len(control) == 6 and all(f"/{heads[-1]}/" in c.name for c in control)
    assert len(CHAPTER_PLANNERS["frozen_backbone"]("mini", {**params, "exclusion_control": None}, None)) == \
        len(planned) - 9
    assert "published" in exclusion_control_note("torchvision", "imagenet-cls", "voc", "category")
    assert "backbone is `detection`" in exclusion_control_note("mini", "detection", "synthetic", "category")
    assert exclusion_control_note("mini", "imagenet-cls", "synthetic", "category") == ""


# ---- predictions before the results, claims x cue after them ------------------------------------------------------
def test_predictions_cover_every_cue_and_claims_are_collected_by_cue(tmp_path):
    from detpretrain.analysis import mechanisms as M

    for chapter, claims in M.PREDICTIONS.items():
        for _, by_cue in claims.values():
            assert set(by_cue) == set(M.CUE_ORDER)
        assert len(M.prediction_table(chapter, "distributed")) == len(claims)
    assert "n/a : no part" in M.prediction_markdown("visualisations", "distributed")
    with pytest.raises(KeyError):
        M.prediction_table("visualisations", "stripes")
    holds = stats.verdict([1.0, 1.2, 0.9, 1.1], unit="seed")
    nothing = stats.verdict([], unit="seed")
    one_pair = stats.conditional_verdict([1.0, 1.2, 0.9, 1.1], unit="test image")  # these networks: holds
    for cue in ("part", "distributed"):
        frame = M.claims_beside_predictions({"gain": holds, "other": nothing, "one pair": one_pair},
                                            "visualisations", cue, {"gain": "figure8"})
        assert frame.loc[0, "prediction"].startswith("+") and frame.loc[1, "prediction"] == ""
        M.save_claims(frame, chapter="visualisations", profile="smoke", cue=cue, root=tmp_path)
    table = M.claims_by_cue("smoke", root=tmp_path)
    assert list(table.columns) == ["chapter", "claim", "part", "distributed"]
    row = table.set_index("claim").loc["gain"]
    assert row["part"].startswith("holds (+1.05, ") and row["distributed"] == row["part"]
    assert table.set_index("claim").loc["other", "part"] == "not resolved"
    # a claim whose interval is over one pair of networks is not resolved as a claim about pre-training
    assert table.set_index("claim").loc["one pair", "part"].startswith(
        "not resolved (not replicated over pre-training runs; these networks alone: holds) (+1.05, ")
    assert M.claims_by_cue("mini", root=tmp_path).empty


def test_conditional_verdict_is_conditional_and_empty_safe():
    v = stats.conditional_verdict([1.0, 1.1, 0.9], unit="fine-tuning seed")
    assert v.label == "holds" and not v.replicated and v.unit == "fine-tuning seed"
    empty = stats.conditional_verdict([], unit="test image")
    assert empty.label == "not resolved" and not empty.replicated and empty.unit == "test image"


def test_centring_table_counts_both_matrices_on_the_final_weights():
    """Hand-made spectra: the uncentred Sigma with one dominant (mean) eigenvalue counts 1 dimension at 1e-2 of the
    largest, the centred covariance of the same runs counts 3."""
    uncentred = {"layer1": np.array([100.0, 0.5, 0.5, 0.5])}
    centred = {"layer1": np.array([1.0, 1.0, 1.0, 0.001])}
    result = {"threshold": 1e-2, "normalisation": "max",
              "runs": [{"pretrain": "scratch", "run": "a"}, {"pretrain": "scratch", "run": "b"},
                       {"pretrain": "imagenet-cls", "run": "c"}],
              "spectra": {k: {0: {"layer1": np.ones(4)}, 5: uncentred} for k in "abc"},
              "centred_spectra": {"a": centred, "b": centred}}
    t = E.centring_table(result, layers=["layer1"])
    assert list(t["detector"]) == ["scratch"] and t.loc[0, "runs"] == 2  # I has no centred spectra here
    assert t.loc[0, "dim (uncentred)"] == 1 and t.loc[0, "dim (centred)"] == 3
    assert t.loc[0, "PR (centred)"] == pytest.approx(3.001 ** 2 / 3.000001)  # (sum l)^2 / sum l^2
    assert E.centring_table({**result, "centred_spectra": {}}).empty


def test_cue_contrasts_are_welch_tests_between_saved_executions(tmp_path):
    """The contrasts read back from the saved claims files equal Welch's test on the replicates behind them, name the
    declared primary, and skip claims with no comparison stated (n/a) or no interval."""
    from scipy import stats as sps

    from detpretrain.analysis import claims as C
    from detpretrain.analysis import mechanisms as M

    rng = np.random.default_rng(18)
    part = {"table6": rng.normal(6.0, 1.0, 3), "table5": rng.normal(2.0, 1.0, 3)}
    dist = {"table6": rng.normal(0.0, 1.5, 3), "table5": rng.normal(2.0, 1.0, 3)}
    names = {"table6": "Table 6, CALTECH-256: IMAGENET-CLS probe > COCO probe",
             "table5": "Table 5, SUN-397: pooling beats the blob"}
    for cue, values in (("part", part), ("distributed", dist)):
        claims = {names[k]: stats.verdict(v, groups=np.arange(3)) for k, v in values.items()}
        claims["untested"] = stats.verdict([], unit="seed")
        frame = M.claims_beside_predictions(claims, "classification", cue, {n: k for k, n in names.items()})
        M.save_claims(frame, chapter="classification", profile="smoke", cue=cue, root=tmp_path)
    contrasts, rows = M.cue_contrasts("smoke", root=tmp_path)
    primary = C.PRIMARY_CLAIMS["mechanisms"].name
    assert list(contrasts)[0] == primary and len(contrasts) == 2
    ref = sps.ttest_ind(part["table6"], dist["table6"], equal_var=False)
    v = contrasts[primary]
    assert (v.ci_low, v.ci_high) == pytest.approx(tuple(ref.confidence_interval()), rel=1e-6)
    assert v.p_value == pytest.approx(ref.pvalue, rel=1e-6) and v.unit == "pre-training run" and v.n == 6
    assert list(rows["predicted"]) == ["smaller", "same"]
    table = M.contrasts_frame(contrasts, rows)
    assert list(table["role"]) == ["primary", "secondary"]
    assert table.loc[0, "reading"].startswith("as predicted") == (v.label == "holds")
    assert table.loc[1, "reading"].startswith(("consistent", "against"))
    # without the distributed execution there is nothing to contrast, and the primary is not promoted
    (tmp_path / "smoke" / "classification" / "claims-distributed.csv").unlink()
    assert M.cue_contrasts("smoke", root=tmp_path)[0] == {}
    assert M.contrasts_frame({}, rows).empty


def test_a_contrast_of_unreplicated_intervals_reads_not_resolved_with_what_the_networks_show():
    """A contrast between two cues of a claim measured on one pair of networks is itself unreplicated: its reading
    must not say 'no difference detected' when the two networks' effects do differ."""
    from detpretrain.analysis import claims as C
    from detpretrain.analysis import mechanisms as M

    primary = C.PRIMARY_CLAIMS["mechanisms"].name
    contrasts = {primary: stats.verdict([3.0, 4.0, 5.0], groups=np.arange(3)),
                 "one pair": stats.conditional_verdict([2.9, 3.0, 3.1, 3.0, 3.05], unit="test image")}
    rows = pd.DataFrame([{"name": n, "chapter": "visualisations", "claim": n, "cue": "distributed",
                          "predicted": pred, "under part": 3.0, "under cue": 0.0}
                         for n, pred in ((primary, "smaller"), ("one pair", "same"))])
    table = M.contrasts_frame(contrasts, rows).set_index("claim")
    assert table.loc["one pair", "label"].startswith("not resolved (not replicated over pre-training runs")
    assert table.loc["one pair", "reading"] == ("not resolved (not replicated over pre-training runs); these networks "
                                                "alone: against the prediction: the effect depends on the condition")
    assert table.loc[primary, "reading"] == "as predicted: smaller without the part"


def test_predicted_change_and_readings():
    from detpretrain.analysis import mechanisms as M

    assert M.predicted_change("smaller than under part: ...") == "smaller"
    assert M.predicted_change("+ , as under part (cue-independent)") == "same"
    assert M.predicted_change("n/a : no part") is None and M.predicted_change("+ : ...") is None
    assert M.contrast_reading("smaller", "reversed", 1.0).startswith("against the prediction")
    assert "smallest detectable difference 2.5" in M.contrast_reading("smaller", "not resolved", 2.5)
    assert M.contrast_reading("same", "holds", 1.0) == "against the prediction: the effect depends on the condition"


def test_a_damaged_claims_file_is_named(tmp_path):
    from detpretrain.analysis import mechanisms as M
    from detpretrain.errors import DataError

    folder = tmp_path / "smoke" / "classification"
    folder.mkdir(parents=True)
    (folder / "claims-part.csv").write_text("claim,estimate\nx,1.0\n")
    with pytest.raises(DataError, match=r"claims-part\.csv: claims table without the columns"):
        M.claims_by_cue("smoke", root=tmp_path)
    (folder / "claims-part.csv").write_bytes(b"\x00\xff\"unterminated\n")
    with pytest.raises(DataError, match=r"claims-part\.csv"):
        M.cue_contrasts("smoke", root=tmp_path)


# ---- Figure 4 without a part (issue 18: a cue-independent measure) ------------------------------------------------
def test_object_concentration_known_values():
    obj = np.zeros((4, 4), bool)
    obj[:2, :] = True  # 8 object pixels: the top quarter is 2 of them
    flat = np.ones((4, 4))
    assert V.object_concentration(flat, obj) == pytest.approx(0.25)
    peaked = np.zeros((4, 4))
    peaked[0, 0] = 5.0
    peaked[3, 3] = 100.0  # outside the object: not counted
    assert V.object_concentration(peaked, obj) == pytest.approx(1.0)
    ramp = np.arange(16, dtype=float).reshape(4, 4)  # object values 0..7: top 2 are 7 and 6 of a total 28
    assert V.object_concentration(ramp, obj) == pytest.approx(13 / 28)
    assert V.object_concentration(ramp, obj, top=0.1) == pytest.approx(7 / 28)  # ceil(0.8) = 1 pixel
    assert math.isnan(V.object_concentration(flat, np.zeros((4, 4), bool)))
    assert math.isnan(V.object_concentration(np.zeros((4, 4)), obj))
    with pytest.raises(ValueError, match="shape"):
        V.object_concentration(flat, obj[:2])
    with pytest.raises(ValueError, match="negative"):
        V.object_concentration(-flat, obj)
    with pytest.raises(ValueError, match="top"):
        V.object_concentration(flat, obj, top=0.0)


def test_concentration_claims_pair_images_and_skip_small_objects():
    rng = np.random.default_rng(2)
    rows = [{"backbone": b, "map": "channel mean", "image": i, "object_cells": 2.0 if i < 5 else 6.0,
             "object_concentration": base + rng.normal(0, 0.05)}
            for i in range(35) for b, base in (("cls", 0.6), ("det", 0.4), ("scratch", 0.3))]
    frame = pd.DataFrame(rows)
    claims = V.concentration_claims(frame, {"cls": "C", "det": "D"}, classification="cls", detection="det")
    v = claims["within-object concentration, C minus D"]
    kept = frame[frame["object_cells"] >= 4].pivot(index="image", columns="backbone", values="object_concentration")
    assert v.n == 30 and v.estimate == pytest.approx((kept["cls"] - kept["det"]).mean())
    assert v.label == "holds" and v.unit == "test image" and not v.replicated
    assert V.concentration_claims(frame.drop(columns="object_concentration"), {"cls": "C", "det": "D"},
                                  classification="cls", detection="det") == {}
    # one frame per pre-training replicate pair: Student's t over the per-pair means (scipy), images nested
    from scipy import stats as st

    frames = [frame.assign(object_concentration=frame["object_concentration"]
                           + np.where(frame["backbone"] == "cls", shift, 0.0)) for shift in (0.0, 0.1, -0.05)]
    rv = V.concentration_claims(frames, {"cls": "C", "det": "D"}, classification="cls",
                                detection="det")["within-object concentration, C minus D"]
    means = [v.estimate, v.estimate + 0.1, v.estimate - 0.05]
    low, high = st.t.interval(0.95, 2, loc=np.mean(means), scale=st.sem(means))
    assert (rv.estimate, rv.ci_low, rv.ci_high) == pytest.approx((np.mean(means), low, high))
    assert rv.unit == "pre-training run" and rv.subunit == "test image" and rv.replicated and rv.n_units == 90
    assert V.concentration_claims([frame], {"cls": "C", "det": "D"}, classification="cls", detection="det") == claims
    with pytest.raises(ValueError, match="no frame"):
        V.concentration_claims([], {"cls": "C", "det": "D"}, classification="cls", detection="det")
    # the prediction the mechanisms page compares it with: smaller without a part
    from detpretrain.analysis import mechanisms as M

    assert M.predicted_change(M.PREDICTIONS["visualisations"]["figure4_concentration"][1]["distributed"]) == "smaller"


def test_only_the_predicted_table5_ordering_carries_the_pooling_prediction():
    """PREDICTIONS' table5 entry is about ConvProj 1x1 > blob from P5; Table 5's other orderings (FC1 > FC2, the
    neighbouring pools) have no prediction, and the name the chapter computes for the predicted one matches."""
    from detpretrain.analysis import mechanisms as M
    from detpretrain.analysis import probes as P

    correct = {f: np.ones(4, bool) for f in P.TABLE5_CLAIM_NAMES}
    names = list(P.table5_claims(correct, label=" (P5, PCA)"))
    assert M.TABLE5_PREDICTED_CLAIM in names and "Table 5: FC1 > FC2 (P5, PCA)" in names
    keys = {n: M.classification_prediction_key(n, "primary") for n in [*names, "primary", "Table 6, SUN-397: x",
                                                                       "Table 8, SUN-397: x", "real images, Table 6"]}
    assert [n for n, k in keys.items() if k == "table5"] == [M.TABLE5_PREDICTED_CLAIM]
    assert keys["primary"] == keys["Table 8, SUN-397: x"] == "table8" and keys["Table 6, SUN-397: x"] == "table6"
    assert keys["real images, Table 6"] == keys["Table 5: FC1 > FC2 (P5, PCA)"] == ""
    assert "ConvProj 1x1 > blob, from P5" in M.PREDICTIONS["classification"]["table5"][0]
