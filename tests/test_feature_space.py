"""Feature-space analyses (Appendix 6.1, Figures 3, 6, 7) on constructed inputs with known answers, checked against
brute-force loops over image pairs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from detpretrain.analysis import feature_space as F


# ---------------------------------------------------------------------------------------------------------------
# helpers: brute force and constructed data
# ---------------------------------------------------------------------------------------------------------------
def brute_consistency(a, b) -> tuple[int, int, int]:
    """(pairs same in a, pairs same in b, pairs same in both) by a double loop over unordered pairs."""
    pa = pb = both = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        sa, sb = a[i] == a[j], b[i] == b[j]
        pa += sa
        pb += sb
        both += sa and sb
    return pa, pb, both


def blobs(centres: list[int], per_blob: int, dim: int = 8, scale: float = 0.05, seed: int = 0) -> np.ndarray:
    """Points around ``10 * e_c`` for each centre axis c (well separated in cosine geometry), ``per_blob`` each."""
    rng = np.random.default_rng(seed)
    out = []
    for c in centres:
        centre = np.zeros(dim)
        centre[c] = 10.0
        out.append(centre + rng.normal(scale=scale, size=(per_blob, dim)) * 10.0)
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------------------------
# prepare / default_ks
# ---------------------------------------------------------------------------------------------------------------
def test_prepare_normalises_rows_and_removes_scale():
    x = np.array([[3.0, 4.0], [0.3, 0.4], [1.0, 0.0]])
    p = F.prepare(x)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0)
    np.testing.assert_allclose(p[0], p[1])
    np.testing.assert_allclose(p[0], [0.6, 0.8])


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 1.0]]), "row 1 is all zeros"),
    (np.array([[1.0, np.nan], [1.0, 1.0]]), "NaN or infinite.*first row 0"),
    (np.array([[1.0, 2.0]]), "at least 2 images"),
    (np.array([1.0, 2.0, 3.0]), "2-D"),
])
def test_prepare_rejects_bad_features(bad, match):
    with pytest.raises(ValueError, match=match):
        F.prepare(bad)


@pytest.mark.parametrize("n, k_max", [(4, 1000), (9, 1000), (60, 1000), (500, 1000), (5000, 1000), (5000, 50)])
def test_default_ks_properties(n, k_max):
    ks = F.default_ks(n, k_max)
    cap = min(k_max, n // 2)
    assert ks == sorted(set(ks)) and all(isinstance(k, int) for k in ks)
    assert ks[0] == 2 and ks[-1] == cap
    assert {2, 3, 4} & set(range(cap + 1)) <= set(ks)
    if cap >= 20:  # log-spaced: consecutive ratios bounded, more values at small K than at large K
        ratios = np.array(ks[1:]) / np.array(ks[:-1])
        assert ratios.max() < 1.6
        assert np.sum(np.array(ks) <= math.sqrt(2 * cap)) >= np.sum(np.array(ks) > math.sqrt(2 * cap)) - 1


def test_default_ks_paper_sweep_ends_at_1000():
    ks = F.default_ks(100_000)
    assert ks[:3] == [2, 3, 4] and ks[-1] == 1000 and 15 <= len(ks) <= 30


def test_default_ks_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 4 images"):
        F.default_ks(3)
    with pytest.raises(ValueError, match="k_max must be >= 2"):
        F.default_ks(100, k_max=1)


# ---------------------------------------------------------------------------------------------------------------
# kmeans_labels
# ---------------------------------------------------------------------------------------------------------------
def test_kmeans_labels_recovers_separated_blobs_and_is_deterministic():
    x = blobs([0, 1, 2], per_blob=20)
    truth = np.repeat([0, 1, 2], 20)
    lab = F.kmeans_labels(x, [3, 2, 3, 6], seed=1)
    assert list(lab) == [3, 2, 6]
    assert all(v.shape == (60,) and v.dtype == np.int64 for v in lab.values())
    # K = 3 reproduces the blobs exactly (up to label names): consistency with the truth is 1 both ways
    cons = F.cluster_consistency({3: truth}, {3: lab[3]})
    assert cons.loc[0, "p_b_given_a"] == 1.0 and cons.loc[0, "p_a_given_b"] == 1.0
    assert len(np.unique(lab[6])) == 6
    again = F.kmeans_labels(x, [3, 2, 6], seed=1)
    assert all(np.array_equal(lab[k], again[k]) for k in lab)
    # scale does not matter (cosine geometry)
    scaled = F.kmeans_labels(x * np.linspace(0.5, 3.0, 60)[:, None], [3], seed=1)
    assert np.array_equal(scaled[3], lab[3])


def test_kmeans_labels_minibatch_branch(monkeypatch):
    monkeypatch.setattr(F, "MINIBATCH_MIN_K", 2)
    x = blobs([0, 1, 2], per_blob=20)
    lab = F.kmeans_labels(x, [3], seed=0)
    cons = F.cluster_consistency({3: np.repeat([0, 1, 2], 20)}, lab)
    assert cons.loc[0, "p_b_given_a"] == 1.0
    assert np.array_equal(lab[3], F.kmeans_labels(x, [3], seed=0)[3])


def test_kmeans_labels_rejects_k_out_of_range():
    x = blobs([0, 1], per_blob=5)
    with pytest.raises(ValueError, match=r"K out of range: \[11\]"):
        F.kmeans_labels(x, [2, 11])
    with pytest.raises(ValueError, match=r"K out of range: \[1\]"):
        F.kmeans_labels(x, [1])
    with pytest.raises(ValueError, match="ks is empty"):
        F.kmeans_labels(x, [])


# ---------------------------------------------------------------------------------------------------------------
# cluster_consistency (Figure 6)
# ---------------------------------------------------------------------------------------------------------------
def test_consistency_matches_brute_force_pair_loop_on_random_labels():
    rng = np.random.default_rng(0)
    n = 80
    a = {k: rng.integers(0, k, n) for k in (2, 5, 13)}
    b = {k: rng.integers(0, k, n) for k in (2, 5, 13, 40)}
    df = F.cluster_consistency(a, b)
    assert list(df.columns) == ["K", "p_b_given_a", "p_a_given_b", "pairs_a", "pairs_b", "pairs_both"]
    assert df["K"].tolist() == [2, 5, 13]  # only Ks present in both
    for row in df.itertuples():
        pa, pb, both = brute_consistency(a[row.K], b[row.K])
        assert (row.pairs_a, row.pairs_b, row.pairs_both) == (pa, pb, both)
        assert row.p_b_given_a == both / pa and row.p_a_given_b == both / pb


def test_consistency_identical_and_refinement():
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 4, 100)
    fine = coarse * 5 + rng.integers(0, 5, 100)  # every fine cluster lies inside one coarse cluster
    same = F.cluster_consistency({4: coarse}, {4: coarse})
    assert same.loc[0, "p_b_given_a"] == 1.0 and same.loc[0, "p_a_given_b"] == 1.0
    # B refines A: a pair together in B is together in A, exactly; the reverse is well below 1
    ref = F.cluster_consistency({7: coarse}, {7: fine})
    assert ref.loc[0, "p_a_given_b"] == 1.0
    assert ref.loc[0, "p_b_given_a"] < 0.5


def test_consistency_independent_labels_near_size_expectation():
    rng = np.random.default_rng(2)
    n = 300
    a, b = rng.integers(0, 3, n), rng.integers(0, 5, n)
    row = F.cluster_consistency({3: a}, {3: b}).iloc[0]
    pa, pb, both = brute_consistency(a, b)
    total = n * (n - 1) // 2
    assert row.p_b_given_a == both / pa
    # if B is independent of A, P(same in B | same in A) = P(same in B) = pairs_b / all pairs
    assert row.p_b_given_a == pytest.approx(pb / total, abs=0.03)
    assert row.p_a_given_b == pytest.approx(pa / total, abs=0.03)


def test_consistency_nan_when_no_same_cluster_pair():
    df = F.cluster_consistency({4: np.arange(4)}, {4: np.array([0, 0, 1, 1])})
    assert df.loc[0, "pairs_a"] == 0 and math.isnan(df.loc[0, "p_b_given_a"])
    assert df.loc[0, "p_a_given_b"] == 0.0


def test_consistency_rejects_bad_input():
    with pytest.raises(ValueError, match="mismatched N"):
        F.cluster_consistency({2: np.zeros(5)}, {2: np.zeros(6)})
    with pytest.raises(ValueError, match="mismatched N"):
        F.cluster_consistency({2: np.zeros(5), 3: np.zeros(6)}, {2: np.zeros(5)})
    with pytest.raises(ValueError, match="no K in common"):
        F.cluster_consistency({2: np.zeros(5)}, {3: np.zeros(5)})
    with pytest.raises(ValueError, match="non-empty dict"):
        F.cluster_consistency({}, {2: np.zeros(5)})


# ---------------------------------------------------------------------------------------------------------------
# close_distant_pairs (Figure 3 middle)
# ---------------------------------------------------------------------------------------------------------------
def test_close_distant_pairs_hand_made():
    # 6 images. A at K=3 (largest): {0, 3}, {1, 4, 5}, {2}. B at K = 2, 3, 4:
    a = {2: np.array([0, 0, 0, 1, 1, 1]), 3: np.array([0, 1, 2, 0, 1, 1])}
    b = {2: np.array([0, 1, 0, 1, 0, 0]),
         3: np.array([0, 1, 2, 1, 0, 2]),
         4: np.array([0, 1, 2, 3, 0, 3])}
    # (0,3): B differs at 2, 3, 4 -> distant. (1,4): differs at 2, 3, 4 -> distant. (1,5): same at ... 2: 1 vs 0,
    # 3: 1 vs 2, 4: 1 vs 3 -> distant. (4,5): same at K=2 -> not distant.
    got = F.close_distant_pairs(a, b)
    assert got.tolist() == [[0, 3], [1, 4], [1, 5]] and got.dtype == np.int64
    # brute force
    expect = [(i, j) for i, j in itertools.combinations(range(6), 2)
              if a[3][i] == a[3][j] and all(b[k][i] != b[k][j] for k in (2, 3, 4))]
    assert [tuple(p) for p in got] == expect
    # only K = 2 as "small": (4, 5) still excluded; close at K = 2 of A gives more pairs
    assert F.close_distant_pairs(a, b, close_k=2, distant_ks=(2,)).tolist() == [[0, 1], [1, 2], [3, 4], [3, 5]]


def test_close_distant_pairs_random_vs_brute_force_and_empty():
    rng = np.random.default_rng(3)
    n = 60
    a = {k: rng.integers(0, k, n) for k in (2, 3, 4, 15)}
    b = {k: rng.integers(0, k, n) for k in (2, 3, 4, 15)}
    got = F.close_distant_pairs(a, b)
    expect = [[i, j] for i, j in itertools.combinations(range(n), 2)
              if a[15][i] == a[15][j] and all(b[k][i] != b[k][j] for k in (2, 3, 4))]
    assert got.tolist() == expect and len(expect) > 0
    # no pair: every pair together at K = 15 also shares a cluster at K = 2 or 3 (blocks of 4 inside 30s / 20s)
    same = {2: np.repeat([0, 1], 30), 3: np.repeat([0, 1, 2], 20), 4: np.repeat([0, 1, 2, 3], 15)}
    same[15] = np.repeat(np.arange(15), 4)
    out = F.close_distant_pairs(same, same)
    assert out.shape == (0, 2)


def test_close_distant_pairs_rejects_bad_input():
    a = {2: np.zeros(4, int), 8: np.arange(4)}
    with pytest.raises(ValueError, match=r"distant_ks \[4\] are not in labels_b"):
        F.close_distant_pairs(a, {2: np.zeros(4, int), 3: np.zeros(4, int)})
    with pytest.raises(ValueError, match="close_k=5 is not in labels_a"):
        F.close_distant_pairs(a, a, close_k=5, distant_ks=(2,))
    with pytest.raises(ValueError, match="mismatched N"):
        F.close_distant_pairs(a, {2: np.zeros(5, int)}, distant_ks=(2,))
    with pytest.raises(ValueError, match="distant_ks is empty"):
        F.close_distant_pairs(a, a, distant_ks=())


# ---------------------------------------------------------------------------------------------------------------
# nearest_pairs / pair_attribute_similarity (Figure 3)
# ---------------------------------------------------------------------------------------------------------------
def test_nearest_pairs_matches_brute_force():
    rng = np.random.default_rng(4)
    x = np.abs(rng.normal(size=(150, 16)))
    got = F.nearest_pairs(x, n_pairs=12)
    assert list(got.columns) == ["i", "j", "distance"] and len(got) == 12
    # brute force: cosine distance of every unordered pair by a loop
    d = [(1 - x[i] @ x[j] / np.linalg.norm(x[i]) / np.linalg.norm(x[j]), i, j)
         for i, j in itertools.combinations(range(len(x)), 2)]
    expect = sorted(d)[:12]
    assert list(zip(got["i"], got["j"])) == [(i, j) for _, i, j in expect]
    np.testing.assert_allclose(got["distance"], [e[0] for e in expect], atol=1e-12)
    assert (np.diff(got["distance"]) >= 0).all() and (got["i"] < got["j"]).all()


def test_nearest_pairs_keeps_duplicates_and_ignores_scale():
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(size=(30, 5)))
    x[7] = 4.0 * x[3]  # same direction: distance 0
    x[20] = x[11]      # exact duplicate
    got = F.nearest_pairs(x, n_pairs=3)
    assert sorted(zip(got["i"][:2], got["j"][:2])) == [(3, 7), (11, 20)]
    np.testing.assert_allclose(got["distance"][:2], 0.0, atol=1e-12)
    assert got["distance"][2] > 0
    # all pairs of a tiny set
    allp = F.nearest_pairs(x[:4], n_pairs=6)
    assert sorted(zip(allp["i"], allp["j"])) == list(itertools.combinations(range(4), 2))
    with pytest.raises(ValueError, match="n_pairs=7 out of range"):
        F.nearest_pairs(x[:4], n_pairs=7)


def test_pair_attribute_similarity_vs_brute_force():
    rng = np.random.default_rng(6)
    attr = rng.normal(size=40)
    pairs = np.array([[0, 1], [2, 5], [7, 39]])
    out = F.pair_attribute_similarity(pairs, attr)
    all_diffs = [abs(attr[i] - attr[j]) for i, j in itertools.combinations(range(40), 2)]
    assert out["n_pairs"] == 3
    assert out["pairs_mean_abs_diff"] == pytest.approx(np.mean([abs(attr[i] - attr[j]) for i, j in pairs]))
    assert out["all_mean_abs_diff"] == pytest.approx(np.mean(all_diffs))
    assert out["ratio"] == pytest.approx(out["pairs_mean_abs_diff"] / np.mean(all_diffs))
    # pairs from nearest_pairs of a 1-D attribute embedding match in the attribute
    near = F.nearest_pairs(np.stack([np.cos(attr / 3), np.sin(attr / 3)], axis=1), n_pairs=5)
    assert F.pair_attribute_similarity(near[["i", "j"]].to_numpy(), attr)["ratio"] < 0.2
    empty = F.pair_attribute_similarity(np.empty((0, 2), int), attr)
    assert empty["n_pairs"] == 0 and math.isnan(empty["pairs_mean_abs_diff"])


def test_pair_attribute_similarity_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        F.pair_attribute_similarity(np.array([[0, 5]]), np.zeros(5))
    with pytest.raises(ValueError, match=r"\[M, 2\]"):
        F.pair_attribute_similarity(np.array([0, 1, 2]), np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        F.pair_attribute_similarity(np.array([[0, 1]]), np.array([0.0, np.nan, 1.0]))


# ---------------------------------------------------------------------------------------------------------------
# class structure (Figure 7)
# ---------------------------------------------------------------------------------------------------------------
def test_knn_agreement_and_fragmentation_on_separated_blobs():
    x = blobs([0, 1, 2], per_blob=30)
    y = np.repeat(["cat", "dog", "cow"], 30)
    assert F.knn_class_agreement(x, y, k=10) == 100.0
    assert F.class_fragmentation(x, y, k=10) == 1.0
    comp = F.class_components(x, y, k=10)
    assert comp.to_dict() == {"cat": 1, "cow": 1, "dog": 1}


def test_fragmented_class_has_two_components():
    # class 0 = two far blobs (axes 0 and 3), class 1 = one blob (axis 1)
    x = blobs([0, 3, 1], per_blob=25)
    y = np.repeat([0, 0, 1], 25)
    comp = F.class_components(x, y, k=10)
    assert comp.to_dict() == {0: 2, 1: 1}
    assert F.class_fragmentation(x, y, k=10) == 1.5
    assert F.knn_class_agreement(x, y, k=10) == 100.0  # pure neighbourhoods, yet fragmented


def test_knn_agreement_vs_brute_force_on_mixed_classes():
    rng = np.random.default_rng(7)
    x = np.abs(rng.normal(size=(60, 6)))
    y = rng.integers(0, 3, 60)
    p = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1 - p @ p.T
    np.fill_diagonal(d, np.inf)
    k = 5
    shares = [np.mean(y[np.argsort(d[i], kind="stable")[:k]] == y[i]) for i in range(60)]
    assert F.knn_class_agreement(x, y, k=k) == pytest.approx(100 * np.mean(shares))
    # brute-force components: union-find over directed same-class kNN edges
    parent = list(range(60))

    def find(u):
        while parent[u] != u:
            u = parent[u]
        return u

    for i in range(60):
        for j in np.argsort(d[i], kind="stable")[:k]:
            if y[i] == y[j]:
                parent[find(i)] = find(int(j))
    expect = {c: len({find(i) for i in np.flatnonzero(y == c)}) for c in range(3)}
    assert F.class_components(x, y, k=k).to_dict() == expect


def test_class_measures_reject_bad_input():
    x = blobs([0, 1], per_blob=5)
    with pytest.raises(ValueError, match="mismatched N"):
        F.knn_class_agreement(x, np.zeros(9), k=3)
    with pytest.raises(ValueError, match=r"k=10 out of range \[1, N - 1 = 9\]"):
        F.class_fragmentation(x, np.zeros(10), k=10)


# ---------------------------------------------------------------------------------------------------------------
# t-SNE (Figure 7)
# ---------------------------------------------------------------------------------------------------------------
def test_tsne_embedding_deterministic_and_keeps_classes_apart():
    x = blobs([0, 1], per_blob=20, dim=6)
    y = np.repeat([0, 1], 20)
    e1 = F.tsne_embedding(x, seed=3, perplexity=30.0, max_iter=500)  # perplexity capped to (40 - 1) / 3
    e2 = F.tsne_embedding(x, seed=3, perplexity=30.0, max_iter=500)
    assert e1.shape == (40, 2) and np.isfinite(e1).all()
    np.testing.assert_array_equal(e1, e2)
    # in the (Euclidean) embedding every point's 5 nearest other points are of its class
    d = np.linalg.norm(e1[:, None] - e1[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (y[np.argsort(d, axis=1)[:, :5]] == y[:, None]).all()
    with pytest.raises(ValueError, match="at least 4 images"):
        F.tsne_embedding(x[:3])
    with pytest.raises(ValueError, match="2 feature dimensions"):
        F.tsne_embedding(np.ones((10, 1)))
