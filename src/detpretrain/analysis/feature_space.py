"""Feature-space analyses of Li et al. 2019, Appendix 6.1 ("Semantic and Feature Analysis on Image Classification"):
closest image pairs (Figure 3), cross-embedding cluster consistency (Figure 6) and class structure / t-SNE (Figure 7).

Inputs are feature matrices ``[N, D]`` with one row per image (in the paper: average-pooled Conv5 features, D = 2048,
of the IMAGENET-CLS and the OPENIMAGES pre-trained ResNet-101 on CALTECH-256 images, before fine-tuning). Row ``i``
of every matrix must be the same image. Everything runs on :func:`prepare` (L2-normalised rows, i.e. cosine
geometry); nothing here needs torch.

Definitions (the paper's words in quotes):

* **Figure 3, left / right** -- "the most similar images in Conv5 feature space": :func:`nearest_pairs`, the
  unordered pairs with the smallest cosine distance. "For OPENIMAGES, the most similar image pairs typically match in
  shape and size" is made a number by :func:`pair_attribute_similarity` (e.g. on log object area, aspect ratio).
* **Figure 6** -- "we perform K-means clustering with different numbers of clusters (from 2 to 1000). Then, given an
  image pair in the same cluster in an embedding (like OPENIMAGES), we check if the same image pair belongs to the
  same cluster in another embedding (like ImageNet)": :func:`default_ks`, :func:`kmeans_labels` and
  :func:`cluster_consistency`, which gives ``P(same cluster in B | same cluster in A)`` over unordered image pairs
  for every K. The paper's reading: "if features are similar in the OPENIMAGES space, they are likely to be similar
  in the IMAGENET-CLS space; however the converse is not true", i.e. ``p(IN | OI) > p(OI | IN)``.
* **Figure 3, middle** -- pairs "close in the IMAGENET-CLS space but distant in the OPENIMAGES space": "An image pair
  is considered to be close if it is part of the same cluster when the number of clusters is large (> 1000). An
  image pair is considered to be distant if it not part of the same cluster when the number of clusters is small
  (< 5)": :func:`close_distant_pairs` (close = same cluster at the largest K of the sweep, distant = different
  clusters at every K in {2, 3, 4}).
* **Figure 7** -- "features from the same class are clustered and close to each other in the IMAGENET-CLS space;
  however, OPENIMAGES features are fragmented": :func:`tsne_embedding` draws it; :func:`knn_class_agreement` (share
  of same-class k nearest neighbours, percent) and :func:`class_fragmentation` (mean number of connected components
  of a class's kNN graph) measure it without the t-SNE projection.

Bad input (mismatched N, K out of range, fewer than two images, NaN / infinite or all-zero features) raises
:class:`ValueError` with a message that says what is wrong.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.manifold import TSNE
from sklearn.metrics.cluster import pair_confusion_matrix
from sklearn.neighbors import NearestNeighbors

#: K-means restarts (fixed so that a sweep is reproducible and its cost predictable)
KMEANS_N_INIT = 4
MINIBATCH_N_INIT = 3
#: :func:`kmeans_labels` switches to MiniBatchKMeans when K exceeds this ...
MINIBATCH_MIN_K = 256
#: ... or when N exceeds this
MINIBATCH_MIN_N = 10_000
#: the paper's "small number of clusters (< 5)" that defines a distant pair
DISTANT_KS = (2, 3, 4)


# ----------------------------------------------------------------------------------------------------------------
# input checks
# ----------------------------------------------------------------------------------------------------------------
def _features(features, name: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N images, D dims], got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images (rows), got {x.shape[0]}")
    if x.shape[1] < 1:
        raise ValueError(f"{name} has no feature dimensions (shape {x.shape})")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} has NaN or infinite values in {rows.size} row(s), first row {int(rows[0])}")
    return x


def _labels(labels, n: int | None = None, name: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array [N], got shape {y.shape}")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} entries but there are {n} images (mismatched N)")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError(f"{name} contains NaN")
    return y


def _labelings(labelings, name: str) -> dict[int, np.ndarray]:
    """``{K: labels[N]}`` checked: int keys, 1-D arrays, one N for all."""
    if not isinstance(labelings, dict) or not labelings:
        raise ValueError(f"{name} must be a non-empty dict {{K: labels[N]}} (as returned by kmeans_labels)")
    out = {int(k): _labels(v, name=f"{name}[{k}]") for k, v in labelings.items()}
    sizes = {v.shape[0] for v in out.values()}
    if len(sizes) != 1:
        raise ValueError(f"{name} holds labelings of different lengths {sorted(sizes)} (mismatched N)")
    if sizes.pop() < 2:
        raise ValueError(f"{name} needs at least 2 images")
    return out


def _same_n(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> int:
    na, nb = next(iter(a.values())).shape[0], next(iter(b.values())).shape[0]
    if na != nb:
        raise ValueError(f"labels_a are over {na} images but labels_b over {nb} (mismatched N)")
    return na


# ----------------------------------------------------------------------------------------------------------------
# geometry and clustering (Figure 6)
# ----------------------------------------------------------------------------------------------------------------
def prepare(features) -> np.ndarray:
    """The geometry used by every analysis here: rows L2-normalised (cosine geometry).

    Average-pooled Conv5 features are means of ReLU outputs, so they are non-negative and two images of similar
    content differ mostly in overall scale (contrast, object size, how much of the image is textured) rather than
    in direction. Normalising each row removes that scale, so Euclidean distance between rows is a monotone function
    of cosine distance (``||a - b||^2 = 2 (1 - cos)``) and k-means, nearest neighbours and t-SNE all compare the
    *pattern* of activations.

    Args:
        features: ``[N, D]`` float array, one row per image (N >= 2).

    Returns:
        ``[N, D]`` float64 array whose rows have unit L2 norm.

    Raises:
        ValueError: not 2-D, fewer than 2 rows, NaN / infinite values, or an all-zero row (which has no direction;
            the message names the first such row).
    """
    x = _features(features)
    norms = np.linalg.norm(x, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"features row {int(zero[0])} is all zeros ({zero.size} zero row(s)): it has no direction "
                         "and cannot be L2-normalised")
    return x / norms[:, None]


def default_ks(n: int, k_max: int = 1000) -> list[int]:
    """The K sweep of Figure 6 ("from 2 to 1000"), log-spaced, for ``n`` images.

    The cap is ``min(k_max, n // 2)`` so that on average every cluster can hold a pair. Between 2 and the cap the
    values are ``geomspace`` points (about 8 per decade) rounded to unique integers; 2, 3, 4 (the "< 5" of the
    distant-pair definition) and the cap itself are always included when they do not exceed the cap.

    Args:
        n: number of images (>= 4).
        k_max: largest K wanted (>= 2); the paper's sweep ends at 1000.

    Returns:
        Sorted list of unique ints in ``[2, min(k_max, n // 2)]``.

    Raises:
        ValueError: ``n < 4`` (no K >= 2 with two images per cluster) or ``k_max < 2``.
    """
    n, k_max = int(n), int(k_max)
    if k_max < 2:
        raise ValueError(f"k_max must be >= 2, got {k_max}")
    if n < 4:
        raise ValueError(f"need at least 4 images for a K sweep (cap n // 2 >= 2), got n={n}")
    cap = min(k_max, n // 2)
    num = max(2, math.ceil(8 * math.log10(cap / 2)) + 1)
    ks = set(np.rint(np.geomspace(2, cap, num)).astype(int).tolist()) | {2, 3, 4, cap}
    return sorted(k for k in ks if 2 <= k <= cap)


def kmeans_labels(features, ks, seed: int = 0) -> dict[int, np.ndarray]:
    """K-means cluster labels of ``prepare(features)`` for every K of a sweep (Figure 6).

    Rule: :class:`~sklearn.cluster.KMeans` (k-means++, ``n_init=KMEANS_N_INIT``) unless ``K > MINIBATCH_MIN_K`` or
    ``N > MINIBATCH_MIN_N``, then :class:`~sklearn.cluster.MiniBatchKMeans` (``n_init=MINIBATCH_N_INIT``,
    ``batch_size = min(N, max(1024, 3 K))``). Both get ``random_state=seed``, so the labels are deterministic given
    the seed (and the data). Labels are arbitrary cluster ids; only the partition matters.

    Args:
        features: ``[N, D]`` float array, one row per image.
        ks: iterable of cluster counts, each ``2 <= K <= N`` (e.g. :func:`default_ks`).
        seed: random state for initialisation.

    Returns:
        ``{K: int64 array [N]}`` in the order of ``ks`` (duplicates collapsed).

    Raises:
        ValueError: bad features (see :func:`prepare`), an empty ``ks`` or a K outside ``[2, N]``.
    """
    x = prepare(features)
    n = x.shape[0]
    ks = [int(k) for k in ks]
    if not ks:
        raise ValueError("ks is empty: give at least one K")
    bad = [k for k in ks if not 2 <= k <= n]
    if bad:
        raise ValueError(f"K out of range: {bad} (each K must be in [2, N={n}])")
    out: dict[int, np.ndarray] = {}
    for k in dict.fromkeys(ks):
        if k > MINIBATCH_MIN_K or n > MINIBATCH_MIN_N:
            model = MiniBatchKMeans(n_clusters=k, n_init=MINIBATCH_N_INIT, batch_size=min(n, max(1024, 3 * k)),
                                    random_state=seed)
        else:
            model = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed)
        out[k] = model.fit_predict(x).astype(np.int64)
    return out


def cluster_consistency(labels_a, labels_b) -> pd.DataFrame:
    """Figure 6: probability that an image pair in the same cluster of embedding A is in the same cluster of B.

    Over the ``N (N - 1) / 2`` unordered pairs of distinct images, for each K present in both dicts:
    ``p_b_given_a = pairs_both / pairs_a`` = P(same cluster in B | same cluster in A), and ``p_a_given_b =
    pairs_both / pairs_b``. The pair counts come from :func:`sklearn.metrics.cluster.pair_confusion_matrix` (which
    counts ordered pairs; halved here). With A = OPENIMAGES and B = IMAGENET-CLS the paper finds ``p_b_given_a``
    high and ``p_a_given_b`` low. For reference, if B were independent of A, ``p_b_given_a`` would be about
    ``pairs_b / (N (N - 1) / 2)``.

    Args:
        labels_a: ``{K: labels[N]}`` of embedding A (e.g. from :func:`kmeans_labels`).
        labels_b: ``{K: labels[N]}`` of embedding B, same images in the same order.

    Returns:
        DataFrame, one row per common K in ascending order, columns ``K, p_b_given_a, p_a_given_b, pairs_a,
        pairs_b, pairs_both`` (pair counts are ints; a probability is NaN where its conditioning count is 0).

    Raises:
        ValueError: empty / malformed dicts, mismatched N, or no K in common.
    """
    a, b = _labelings(labels_a, "labels_a"), _labelings(labels_b, "labels_b")
    _same_n(a, b)
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError(f"labels_a (K={sorted(a)}) and labels_b (K={sorted(b)}) have no K in common")
    rows = []
    for k in common:
        c = pair_confusion_matrix(a[k], b[k]).astype(np.int64)  # rows: A different/same, cols: B different/same
        both, pa, pb = int(c[1, 1]) // 2, int(c[1, 0] + c[1, 1]) // 2, int(c[0, 1] + c[1, 1]) // 2
        rows.append({"K": k, "p_b_given_a": both / pa if pa else math.nan,
                     "p_a_given_b": both / pb if pb else math.nan, "pairs_a": pa, "pairs_b": pb, "pairs_both": both})
    return pd.DataFrame(rows, columns=["K", "p_b_given_a", "p_a_given_b", "pairs_a", "pairs_b", "pairs_both"])


def _same_cluster_pairs(labels: np.ndarray) -> np.ndarray:
    """All unordered pairs ``(i, j)``, ``i < j``, with ``labels[i] == labels[j]``: int64 ``[M, 2]``."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    ends = np.r_[starts[1:], labels.shape[0]]
    chunks = []
    for s, e in zip(starts, ends):
        if e - s < 2:
            continue
        members = np.sort(order[s:e])
        iu, ju = np.triu_indices(e - s, 1)
        chunks.append(np.stack([members[iu], members[ju]], axis=1))
    return np.concatenate(chunks).astype(np.int64) if chunks else np.empty((0, 2), dtype=np.int64)


def close_distant_pairs(labels_a, labels_b, close_k: int | None = None, distant_ks=DISTANT_KS) -> np.ndarray:
    """Figure 3 middle: image pairs close in embedding A but distant in embedding B.

    Paper: "An image pair is considered to be close if it is part of the same cluster when the number of clusters is
    large (> 1000). An image pair is considered to be distant if it not part of the same cluster when the number of
    clusters is small (< 5)." Here *close* = same cluster of ``labels_a[close_k]``, where ``close_k`` defaults to
    the largest K in ``labels_a`` (a sweep from :func:`default_ks` ends at ``min(1000, N // 2)``, so on small image
    sets this is below the paper's > 1000); *distant* = different clusters in ``labels_b[K]`` for **every** K in
    ``distant_ks`` (default 2, 3, 4). In the paper A = IMAGENET-CLS and B = OPENIMAGES.

    Args:
        labels_a: ``{K: labels[N]}`` of embedding A.
        labels_b: ``{K: labels[N]}`` of embedding B (same images, same order); must hold every K of ``distant_ks``.
        close_k: the K of A that defines "close" (default: ``max(labels_a)``).
        distant_ks: the Ks of B that define "distant" (non-empty).

    Returns:
        int64 array ``[M, 2]`` of pairs ``(i, j)`` with ``i < j``, sorted by ``i`` then ``j`` (``[0, 2]`` if none).

    Raises:
        ValueError: malformed dicts, mismatched N, ``close_k`` not in ``labels_a``, empty ``distant_ks`` or a K of
            ``distant_ks`` missing from ``labels_b``.
    """
    a, b = _labelings(labels_a, "labels_a"), _labelings(labels_b, "labels_b")
    _same_n(a, b)
    close_k = max(a) if close_k is None else int(close_k)
    if close_k not in a:
        raise ValueError(f"close_k={close_k} is not in labels_a (K={sorted(a)})")
    distant_ks = [int(k) for k in distant_ks]
    if not distant_ks:
        raise ValueError("distant_ks is empty: give the small Ks (paper: < 5) that define a distant pair")
    missing = [k for k in distant_ks if k not in b]
    if missing:
        raise ValueError(f"distant_ks {missing} are not in labels_b (K={sorted(b)})")
    pairs = _same_cluster_pairs(a[close_k])
    keep = np.ones(len(pairs), dtype=bool)
    for k in distant_ks:
        keep &= b[k][pairs[:, 0]] != b[k][pairs[:, 1]]
    pairs = pairs[keep]
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


# ----------------------------------------------------------------------------------------------------------------
# nearest pairs (Figure 3)
# ----------------------------------------------------------------------------------------------------------------
def nearest_pairs(features, n_pairs: int = 8) -> pd.DataFrame:
    """Figure 3 left / right: the ``n_pairs`` most similar image pairs in a feature space.

    Cosine distance ``1 - <a, b>`` on :func:`prepare` rows (0 = same direction, 2 = opposite). Candidates are each
    image's ``n_pairs`` nearest neighbours (:class:`~sklearn.neighbors.NearestNeighbors`, self excluded by index),
    which contain every one of the globally closest ``n_pairs`` pairs; their distances are recomputed exactly and
    the unordered pairs de-duplicated. Exact duplicate images (distance 0) are kept; a pair is never ``i == j``.
    Ties are broken by ``(i, j)``.

    Args:
        features: ``[N, D]`` float array.
        n_pairs: number of pairs (1 <= n_pairs <= N (N - 1) / 2).

    Returns:
        DataFrame with columns ``i, j, distance`` (``i < j``), ascending distance, ``n_pairs`` rows.

    Raises:
        ValueError: bad features (see :func:`prepare`) or ``n_pairs`` out of range.
    """
    x = prepare(features)
    n = x.shape[0]
    n_pairs = int(n_pairs)
    if not 1 <= n_pairs <= n * (n - 1) // 2:
        raise ValueError(f"n_pairs={n_pairs} out of range [1, N (N - 1) / 2 = {n * (n - 1) // 2}]")
    k = min(n_pairs, n - 1)
    nbr = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)
    i = np.repeat(np.arange(n), k)
    j = nbr.ravel()
    pairs = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1), axis=0)
    dist = np.clip(1.0 - np.einsum("md,md->m", x[pairs[:, 0]], x[pairs[:, 1]]), 0.0, 2.0)
    order = np.lexsort((pairs[:, 1], pairs[:, 0], dist))[:n_pairs]
    return pd.DataFrame({"i": pairs[order, 0], "j": pairs[order, 1], "distance": dist[order]})


def pair_attribute_similarity(pairs, attributes) -> dict:
    """How alike the two images of each pair are in a per-image attribute, against all pairs as the reference.

    Makes "the most similar image pairs typically match in shape and size" (Figure 3) a number: with ``attributes``
    e.g. the log area or aspect ratio of each image's main object, a ratio well below 1 means the pairs match in it.

    Args:
        pairs: int array ``[M, 2]`` of image indices (e.g. ``nearest_pairs(...)[["i", "j"]]``).
        attributes: numeric array ``[N]``, one value per image (any unit; the differences are in that unit).

    Returns:
        ``{"n_pairs": M, "pairs_mean_abs_diff": mean |a_i - a_j| over the given pairs (NaN if M == 0),
        "all_mean_abs_diff": the same over all N (N - 1) / 2 distinct pairs, "ratio": pairs / all (NaN if all is 0)}``.

    Raises:
        ValueError: attributes not 1-D, fewer than 2 images or non-finite; pairs not ``[M, 2]`` or an index outside
            ``[0, N)``.
    """
    a = np.asarray(attributes, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < 2:
        raise ValueError(f"attributes must be a 1-D array over at least 2 images, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"attributes has NaN or infinite values at {np.flatnonzero(~np.isfinite(a))[:5].tolist()}")
    p = np.asarray(pairs)
    if p.size == 0:
        p = p.reshape(0, 2)
    if p.ndim != 2 or p.shape[1] != 2 or (p.size and p.dtype.kind not in "iu"):
        raise ValueError(f"pairs must be an integer array [M, 2], got shape {p.shape} and dtype {p.dtype}")
    n = a.shape[0]
    if p.size and (p.min() < 0 or p.max() >= n):
        raise ValueError(f"pairs index an image outside [0, N={n})")
    pair_mean = float(np.abs(a[p[:, 0]] - a[p[:, 1]]).mean()) if len(p) else math.nan
    s = np.sort(a)
    all_mean = float(np.dot(s, 2 * np.arange(n) - (n - 1)) / (n * (n - 1) / 2))
    return {"n_pairs": len(p), "pairs_mean_abs_diff": pair_mean, "all_mean_abs_diff": all_mean,
            "ratio": pair_mean / all_mean if all_mean > 0 else math.nan}


# ----------------------------------------------------------------------------------------------------------------
# class structure (Figure 7)
# ----------------------------------------------------------------------------------------------------------------
def _knn(x: np.ndarray, k: int) -> np.ndarray:
    """``[N, k]`` indices of each row's k nearest other rows (self excluded by index, duplicates kept)."""
    n = x.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k={k} out of range [1, N - 1 = {n - 1}]")
    return NearestNeighbors(n_neighbors=k).fit(x).kneighbors(return_distance=False)


def knn_class_agreement(features, labels, k: int = 10) -> float:
    """Figure 7, as a number: how clustered the classes are, in percent.

    For each image, the share of its ``k`` nearest neighbours (Euclidean on :func:`prepare` rows = cosine order;
    the image itself excluded) that have its class; the mean over images, times 100. 100 = every neighbourhood is
    pure ("features from the same class are clustered and close to each other", IMAGENET-CLS in the paper); chance
    level is about ``sum_c (n_c / N)^2 * 100``.

    Args:
        features: ``[N, D]`` float array.
        labels: class of each image, ``[N]`` (any hashable dtype numpy can compare).
        k: neighbours per image, ``1 <= k <= N - 1``.

    Returns:
        Mean kNN class agreement in percent (0..100).

    Raises:
        ValueError: bad features, labels of another length, or k out of range.
    """
    x = prepare(features)
    y = _labels(labels, x.shape[0])
    nbr = _knn(x, int(k))
    return float((y[nbr] == y[:, None]).mean() * 100.0)


def class_components(features, labels, k: int = 10) -> pd.Series:
    """Number of connected components of each class's kNN graph (see :func:`class_fragmentation`).

    Returns:
        Series indexed by class (sorted), int counts >= 1, named ``components``.
    """
    x = prepare(features)
    y = _labels(labels, x.shape[0])
    nbr = _knn(x, int(k))
    rows = np.repeat(np.arange(x.shape[0]), nbr.shape[1])
    cols = nbr.ravel()
    same = y[rows] == y[cols]
    classes, inverse = np.unique(y, return_inverse=True)
    counts = {}
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        local = np.full(x.shape[0], -1)
        local[members] = np.arange(members.size)
        sel = same & (inverse[rows] == c)
        graph = coo_matrix((np.ones(sel.sum()), (local[rows[sel]], local[cols[sel]])), shape=(members.size,) * 2)
        counts[classes[c]] = int(connected_components(graph, directed=True, connection="weak")[0])
    return pd.Series(counts, name="components", dtype=np.int64)


def class_fragmentation(features, labels, k: int = 10) -> float:
    """Figure 7, as a number: how fragmented the classes are ("OPENIMAGES features are fragmented").

    Graph: the directed kNN graph of all images (edge ``i -> j`` if ``j`` is among the ``k`` nearest neighbours of
    ``i`` on :func:`prepare` rows, self excluded), restricted to the images of one class and the edges between them,
    and read as undirected (weakly connected components, :func:`scipy.sparse.csgraph.connected_components`). A class
    whose images all sit in one neighbourhood chain has 1 component; each island of a class that is separated from
    the rest of the class by other classes' images (or by distance) adds one. The result is the mean over classes of
    the component count (>= 1; more = more fragmented). A class with a single image counts 1.

    Args:
        features: ``[N, D]`` float array.
        labels: class of each image, ``[N]``.
        k: neighbours per image, ``1 <= k <= N - 1``.

    Returns:
        Mean number of components per class.

    Raises:
        ValueError: bad features, labels of another length, or k out of range.
    """
    return float(class_components(features, labels, k).mean())


def tsne_embedding(features, seed: int = 0, perplexity: float = 30.0, max_iter: int = 1000) -> np.ndarray:
    """Figure 7: 2-D t-SNE of :func:`prepare` rows (:class:`~sklearn.manifold.TSNE`, ``init="pca"``).

    ``perplexity`` is capped at ``(N - 1) / 3`` (TSNE needs perplexity < N; with this cap the ``3 * perplexity + 1``
    neighbours it uses exist). Deterministic given ``seed`` (``random_state``). The coordinates have no unit; only
    neighbourhoods are meaningful, not distances between far clusters.

    Args:
        features: ``[N, D]`` float array, N >= 4 and D >= 2 (the PCA initialisation needs two dimensions).
        seed: random state.
        perplexity: effective number of neighbours (> 0) before the cap.
        max_iter: optimisation iterations (>= 250, the TSNE minimum).

    Returns:
        float array ``[N, 2]``.

    Raises:
        ValueError: bad features, N < 4, D < 2 or perplexity <= 0.
    """
    x = prepare(features)
    n, d = x.shape
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 images, got {n}")
    if d < 2:
        raise ValueError(f"t-SNE with PCA initialisation needs at least 2 feature dimensions, got {d}")
    if not perplexity > 0:
        raise ValueError(f"perplexity must be > 0, got {perplexity}")
    iter_name = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"  # sklearn < 1.5
    tsne = TSNE(n_components=2, perplexity=min(float(perplexity), (n - 1) / 3), init="pca", random_state=seed,
                **{iter_name: int(max_iter)})
    return tsne.fit_transform(x).astype(np.float64)


# ----------------------------------------------------------------------------------------------------------------
# the chapter's readings: each figure's claim as a number and a verdict
# ----------------------------------------------------------------------------------------------------------------
#: the per-image attributes compared across pairs (columns of ``experiments.features.image_attributes``) and their
#: labels: the main object's log area (size), its log aspect ratio (shape) and the number of objects
PAIR_ATTRIBUTES = (("log_area", "size"), ("aspect", "shape (aspect)"), ("n_objects", "object count"))


def pair_summary(pairs, labels, attributes: pd.DataFrame) -> dict:
    """What a set of image pairs shares (Figure 3): the share of pairs of the same class (percent) and, for each of
    :data:`PAIR_ATTRIBUTES`, :func:`pair_attribute_similarity`'s ratio (1 = no more alike than random pairs).

    Args:
        pairs: ``[M, 2]`` image indices.
        labels: ``[N]`` class labels.
        attributes: one row per image with the columns of :data:`PAIR_ATTRIBUTES`.

    Returns:
        ``{"same class %", "size: diff / random", "shape (aspect): diff / random", "object count: diff / random"}``;
        an attribute that is NaN for every image (real images, which annotate no objects here) gives NaN.
    """
    p = np.asarray(pairs).reshape(-1, 2)
    labels = np.asarray(labels)
    out = {"same class %": 100 * float(np.mean(labels[p[:, 0]] == labels[p[:, 1]])) if len(p) else math.nan}
    for col, label in PAIR_ATTRIBUTES:
        values = attributes[col].to_numpy(dtype=np.float64)
        unmeasured = np.isnan(values).all()  # real images: no annotated objects (NaN, not a number made up)
        out[f"{label}: diff / random"] = math.nan if unmeasured else pair_attribute_similarity(p, values)["ratio"]
    return out


def nearest_pair_table(spaces: dict, labels, attributes: pd.DataFrame, names: dict, top_pairs: int = 50) -> tuple:
    """Figure 3 (top): the ``top_pairs`` nearest pairs of each space (:func:`nearest_pairs`) and :func:`pair_summary`
    of each.

    Args:
        spaces: ``{key: features [N, D]}`` (same images in the same order).
        names: ``{key: name shown}``.

    Returns:
        ``(table, pairs)``: one row per space (``space`` = ``"<name> (<key>)"`` and the summary's columns), and
        ``{key: nearest_pairs frame}``.
    """
    pairs = {key: nearest_pairs(x, top_pairs) for key, x in spaces.items()}
    rows = [{"space": f"{names[key]} ({key})", **pair_summary(frame[["i", "j"]].to_numpy(), labels, attributes)}
            for key, frame in pairs.items()]
    return pd.DataFrame(rows), pairs


def size_match_summary(table: pd.DataFrame, classification: str, detection: str) -> dict:
    """Figure 3's "the most similar image pairs [of the detection space] typically match in ... size", described by
    its point estimates: whether the detection space's nearest pairs differ less in object size (relative to random
    pairs) than the classification space's. A description, not a verdict (one nearest-pair set per space: no
    spread); the verdict with its interval is :func:`size_match_verdict`'s.

    Args:
        table: :func:`nearest_pair_table`'s table; ``classification`` / ``detection``: the names shown there
            (``space`` starts with them).

    Returns:
        ``{"classification", "detection" (ratios), "direction"`` (``"the paper's"``, ``"against the paper's"``,
        ``"none"`` or ``"not measured"``), ``"sentence"}``.
    """
    ratio = {name: float(table.loc[table["space"].str.startswith(name), "size: diff / random"].iloc[0])
             for name in (classification, detection)}
    if any(math.isnan(r) for r in ratio.values()):  # real images: no annotated object sizes
        return {**ratio, "direction": "not measured",
                "sentence": "Object sizes are annotated only on the synthetic corpus: the paper's \"match in shape "
                            "and size\" is not measured on these images."}
    direction = ("the paper's" if ratio[detection] < ratio[classification] else "none" if ratio[detection] ==
                 ratio[classification] else "against the paper's")
    reading = {"the paper's": "a difference in the paper's direction", "none": "no difference",
               "against the paper's": "a difference against the paper's direction"}[direction]
    sentence = (f"Point estimates: nearest pairs in the {detection} space differ in object size by "
                f"{ratio[detection]:.2f} of a random pair's difference, in the {classification} space by "
                f"{ratio[classification]:.2f}: {reading} (\"match in shape and size\"). "
                "One nearest-pair set per space, no interval: the verdict, with its interval, is below.")
    return {"classification": ratio[classification], "detection": ratio[detection], "direction": direction,
            "sentence": sentence}


def consistency_curves(features_a, features_b, ks, seeds) -> tuple[pd.DataFrame, dict]:
    """Figure 6 for several k-means seeds: :func:`kmeans_labels` in both spaces and :func:`cluster_consistency`.

    Args:
        features_a, features_b: spaces A (the detection backbone's in the paper) and B (the classification one's).

    Returns:
        ``(curves, labelings)``: :func:`cluster_consistency`'s rows of every seed with a ``seed`` column, and
        ``{seed: (labels_a, labels_b)}``.
    """
    curves, labelings = [], {}
    for seed in seeds:
        la, lb = kmeans_labels(features_a, ks, seed=seed), kmeans_labels(features_b, ks, seed=seed)
        labelings[seed] = (la, lb)
        curves.append(cluster_consistency(la, lb).assign(seed=seed))
    return pd.concat(curves, ignore_index=True), labelings


def consistency_directions(curves: pd.DataFrame, name_a: str, name_b: str) -> pd.DataFrame:
    """:func:`consistency_curves`' curves in long form for plotting: column ``direction`` (``"same in A -> same in
    B"`` with ``p`` = P(same in B | same in A), and the reverse)."""
    return pd.concat([curves.assign(direction=f"same in {name_a} -> same in {name_b}", p=curves["p_b_given_a"]),
                      curves.assign(direction=f"same in {name_b} -> same in {name_a}", p=curves["p_a_given_b"])])


def asymmetry_summary(curves: pd.DataFrame, name_a: str, name_b: str) -> dict:
    """Figure 6's reading, described: similar in A (detection) implies similar in B (classification), not the
    converse, i.e. P(same in B | same in A) > P(same in A | same in B), averaged over K per k-means seed. A
    description, not a verdict: the ratio of the two probabilities is pairs_B / pairs_A whatever the features, so the
    verdict is :func:`corrected_asymmetry_verdict`'s, against a null that keeps the cluster sizes.

    Returns:
        ``{"table": mean curves over seeds per K (rows = the two probabilities, columns = K), "per_seed": average
        gap per seed, "all_seeds_positive": bool, "sentence"}``.
    """
    mean_curve = curves.groupby("K")[["p_b_given_a", "p_a_given_b"]].mean()
    gap = mean_curve["p_b_given_a"] - mean_curve["p_a_given_b"]
    per_seed = curves.assign(gap=curves["p_b_given_a"] - curves["p_a_given_b"]).groupby("seed")["gap"].mean()
    positive = bool((per_seed > 0).all())
    table = mean_curve.rename(columns={"p_b_given_a": f"P({name_b} | {name_a})",
                                       "p_a_given_b": f"P({name_a} | {name_b})"}).T
    mean = float(per_seed.mean())
    compared = "exceeds the reverse by" if mean > 0 else "falls short of the reverse by" if mean < 0 else "equals the reverse"
    amount = f" {abs(mean):.3f}" if mean != 0 else ""
    sentence = (f"Averaged over K, P(same in {name_b} | same in {name_a}) {compared}{amount} "
                f"(per k-means seed: {', '.join(f'{g:+.3f}' for g in per_seed)}; larger at {int((gap > 0).sum())} of "
                f"{len(gap)} values of K; {'every' if positive else 'not every'} seed's average is positive). A "
                "description: which direction is larger follows from the partitions' balance; the verdict is the "
                "null-corrected one below.")
    return {"table": table, "per_seed": per_seed, "all_seeds_positive": positive, "sentence": sentence}


def close_distant_summary(pairs, labels, attributes: pd.DataFrame) -> dict:
    """Figure 3 (middle): :func:`pair_summary` of the close-in-one, distant-in-the-other pairs
    (:func:`close_distant_pairs`), with a sentence: the paper's reading, "different scale and similar texture",
    predicts a size ratio above 1.

    Returns:
        ``{"table": one-row DataFrame, "sentence"}`` (both None without pairs).
    """
    if len(pairs) == 0:
        return {"table": None, "sentence": None}
    summary = pair_summary(pairs, labels, attributes)
    sentence = (f"{len(pairs)} pairs; their object sizes differ by {summary['size: diff / random']:.2f} of a random "
                "pair's difference (the paper's reading, \"different scale and similar texture\", predicts a value "
                "above 1).")
    if math.isnan(summary["size: diff / random"]):  # real images: no annotated objects
        sentence = f"{len(pairs)} pairs; object sizes are annotated only on the synthetic corpus, so not compared."
    return {"table": pd.DataFrame([summary]), "sentence": sentence}


def fragmentation_table(spaces: dict, labels, k: int = 10, floor_prefix: str = "scratch") -> tuple:
    """Figure 7 as numbers: :func:`knn_class_agreement` (percent) and :func:`class_fragmentation` of every space.

    Args:
        spaces: ``{key: features}``; keys starting with ``floor_prefix`` are random backbones (the floor), shown
            as their mean in the summary.

    Returns:
        ``(frame, summary)``: one row per space (``space``, ``kNN agreement %``, ``components per class``), and the
        same with the random backbones replaced by one ``"<prefix> (mean of n)"`` row.
    """
    frame = pd.DataFrame([{"space": key, "kNN agreement %": knn_class_agreement(x, labels, k),
                           "components per class": class_fragmentation(x, labels, k)} for key, x in spaces.items()])
    floor = frame[frame["space"].str.startswith(floor_prefix)]
    summary = pd.concat([frame[~frame["space"].str.startswith(floor_prefix)],
                         pd.DataFrame([{"space": f"{floor_prefix} (mean of {len(floor)})",
                                        "kNN agreement %": floor["kNN agreement %"].mean(),
                                        "components per class": floor["components per class"].mean()}])],
                        ignore_index=True)
    return frame, summary


def fragmentation_summary(frame: pd.DataFrame, classification: str, detection: str, names: dict,
                          floor_prefix: str = "scratch") -> dict:
    """Figure 7's "features from the same class are clustered ... in the IMAGENET-CLS space; however, [detection]
    features are fragmented", described by the point estimates of one backbone per space: whether the
    classification space has the higher kNN agreement and the detection space the more components per class. A
    description, not a verdict; the verdict is :func:`knn_agreement_verdict`'s (over pre-training replicate pairs,
    or a paired bootstrap over images).

    Args:
        frame: :func:`fragmentation_table`'s per-space frame; ``classification`` / ``detection``: its two spaces;
        names: the spaces' names as shown; floor_prefix: the random backbones' prefix (how many there are decides
        what the sentence says they show).

    Returns:
        ``{"tighter", "more_fragmented", "both", "sentence"}``.
    """
    n_random = int(frame["space"].str.startswith(floor_prefix).sum())
    spread = ({0: "", 1: " The one random backbone is a floor, not a measure of how much the numbers move between "
                         "backbones."}.get(n_random, f" The {n_random} random backbones show how much the numbers "
                                                     "move between backbones."))
    c = frame[frame["space"] == classification].iloc[0]
    d = frame[frame["space"] == detection].iloc[0]
    tighter = bool(c["kNN agreement %"] > d["kNN agreement %"])
    more_fragmented = bool(d["components per class"] > c["components per class"])
    both = tighter and more_fragmented
    sentence = (f"Point estimates: kNN agreement {c['kNN agreement %']:.1f} % ({names[classification]}) vs "
                f"{d['kNN agreement %']:.1f} % ({names[detection]}); components per class "
                f"{c['components per class']:.2f} vs {d['components per class']:.2f}: "
                f"{'both' if both else 'not both'} in the paper's direction (\"same class clustered in IMAGENET-CLS, "
                "fragmented in OPENIMAGES\"). One backbone per space, no interval: the verdict is the kNN-agreement "
                f"one below.{spread}")
    return {"tighter": tighter, "more_fragmented": more_fragmented, "both": both, "sentence": sentence}


def configuration_table(data, n_images: int, ks, seeds, knn_k: int):
    """The feature-space chapter's configuration: the corpus, its images and classes, the K sweep, the k-means seeds
    and the kNN k, as a settings table."""
    from detpretrain.chapter import settings_frame

    return settings_frame([("corpus", data.describe), ("images", n_images), ("classes", len(data.classes)),
                           ("K sweep", ", ".join(map(str, ks))), ("k-means seeds", ", ".join(map(str, seeds))),
                           ("kNN k", knn_k)])


# ----------------------------------------------------------------------------------------------------------------
# issue 18: Figure 6 against a size-preserving null; Figures 3 and 7 with intervals
# ----------------------------------------------------------------------------------------------------------------
# Over the pairs of N images, P(same in B | same in A) = pairs_both / pairs_a and P(same in A | same in B) =
# pairs_both / pairs_b, so their ratio is pairs_b / pairs_a whatever the features: Figure 6's asymmetry only says which
# k-means partition is less balanced (has more same-cluster pairs). What association there is shows in the symmetric
# lift pairs_both * pairs_all / (pairs_a * pairs_b) (1 = independent partitions). :func:`consistency_null` compares
# both with a permutation null that keeps every cluster size (labels of B shuffled over the images).


def pair_counts(labels) -> int:
    """Unordered image pairs in the same cluster: ``sum_c n_c (n_c - 1) / 2`` for cluster sizes ``n_c``."""
    n = np.unique(np.asarray(labels), return_counts=True)[1].astype(np.int64)
    return int((n * (n - 1) // 2).sum())


def _both_pairs(a: np.ndarray, b: np.ndarray, kb: int) -> np.ndarray:
    """Pairs in the same cluster of A AND of B for each row of ``b`` ([R, N] codes; ``a`` [N] codes)."""
    cells = a[None, :] * kb + b
    offsets = np.arange(b.shape[0])[:, None] * (int(a.max()) + 1) * kb
    n = np.bincount((cells + offsets).ravel(), minlength=b.shape[0] * (int(a.max()) + 1) * kb)
    n = n.reshape(b.shape[0], -1).astype(np.int64)
    return (n * (n - 1) // 2).sum(axis=1)


def consistency_null(labels_a, labels_b, *, n_perm: int = 500, seed: int = 0) -> dict:
    """Figure 6 at one K, against the size-preserving permutation null.

    Args:
        labels_a, labels_b: ``[N]`` cluster labels of the same images in embeddings A and B.
        n_perm: permutations of ``labels_b`` over the images (each keeps both partitions' cluster sizes).
        seed: seed of the permutations.

    Returns:
        ``{"pairs_a", "pairs_b", "pairs_both", "pairs_all", "p_b_given_a", "p_a_given_b", "asymmetry"
        (p_b_given_a - p_a_given_b), "lift" (pairs_both * pairs_all / (pairs_a * pairs_b)), "null_asymmetry",
        "null_asymmetry_sd", "corrected_asymmetry" (asymmetry - null_asymmetry), "p_asymmetry", "null_lift",
        "p_lift"}``; the permutation p-values are two-sided ``(1 + #{|null - mean| >= |obs - mean|}) / (1 +
        n_perm)``. Under the null, E[pairs_both] = pairs_a pairs_b / pairs_all exactly, so the null lift is about 1
        and the null asymmetry about ``(pairs_b - pairs_a) / pairs_all``.

    Raises:
        ValueError: labels of different lengths, fewer than 2 images, a partition without same-cluster pairs.
    """
    a = np.unique(np.asarray(labels_a), return_inverse=True)[1].ravel()
    b = np.unique(np.asarray(labels_b), return_inverse=True)[1].ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"labels_a and labels_b must label the same N >= 2 images, got {a.size} and {b.size}")
    pa, pb, n_all = pair_counts(a), pair_counts(b), a.size * (a.size - 1) // 2
    if pa == 0 or pb == 0:
        raise ValueError("a partition with no two images in one cluster has no conditional probability")
    kb = int(b.max()) + 1
    both = int(_both_pairs(a, b[None, :], kb)[0])
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((int(n_perm), b.size)), axis=1)
    null_both = _both_pairs(a, b[perm], kb).astype(np.float64)

    def asym(x):
        return x / pa - x / pb

    def lift(x):
        return x * n_all / (pa * pb)

    def p_two(obs, null):
        centre = null.mean()
        return float((1 + np.sum(np.abs(null - centre) >= abs(obs - centre) - 1e-12)) / (1 + null.size))

    na, nl = asym(null_both), lift(null_both)
    obs_a, obs_l = asym(both), lift(both)
    return {"pairs_a": pa, "pairs_b": pb, "pairs_both": both, "pairs_all": n_all, "p_b_given_a": both / pa,
            "p_a_given_b": both / pb, "asymmetry": obs_a, "lift": obs_l, "null_asymmetry": float(na.mean()),
            "null_asymmetry_sd": float(na.std(ddof=1)), "corrected_asymmetry": obs_a - float(na.mean()),
            "p_asymmetry": p_two(obs_a, na), "null_lift": float(nl.mean()), "p_lift": p_two(obs_l, nl)}


def consistency_null_curves(labelings: dict, *, n_perm: int = 500, seed: int = 0) -> pd.DataFrame:
    """:func:`consistency_null` for every k-means seed and K of :func:`consistency_curves`' labelings
    (``{seed: (labels_a, labels_b)}``): one row per (seed, K) with ``seed``, ``K`` and its columns."""
    rows = []
    for s, (la, lb) in labelings.items():
        for k in sorted(set(la) & set(lb)):
            rows.append({"seed": s, "K": k, **consistency_null(la[k], lb[k], n_perm=n_perm, seed=seed)})
    return pd.DataFrame(rows)


def corrected_asymmetry_verdict(frame):
    """Figure 6's claim on the null-corrected asymmetry: P(same in B | same in A) - P(same in A | same in B) beyond
    what a pair of independent partitions with the same cluster sizes gives, averaged over K per k-means seed. The
    null keeps both partitions' same-cluster pair counts, so the corrected asymmetry equals (pairs_both - its null
    mean) x (pairs_B - pairs_A) / (pairs_A x pairs_B): its sign is that of (lift - 1) x (pairs_B - pairs_A), shared
    structure times which partition is less balanced, not a separate direction of implication.

    Args:
        frame: :func:`consistency_null_curves`' frame of one pair of spaces (A's and B's pre-training run), or a list
            of such frames, one per pre-training replicate pair (pair r: A's run r against B's run r).

    Returns:
        :class:`~detpretrain.analysis.stats.Verdict` in P(same) units. With R >= 2 frames the unit is the
        pre-training run: a t interval over the R per-pair means, each pair's k-means sweeps (one per k-means seed,
        unit ``"k-means sweep"``) nested in them (:func:`~detpretrain.analysis.stats.nested_verdict`, df = R - 1).
        With one frame it is over that pair's sweeps, conditional on these two networks (the features are fixed: only
        the k-means randomness varies).

    Raises:
        ValueError: an empty list of frames.
    """
    from detpretrain.analysis.stats import conditional_verdict, nested_verdict, per_replicate

    frames = per_replicate(frame, "corrected_asymmetry_verdict")
    per_pair = [f.groupby("seed")["corrected_asymmetry"].mean().to_numpy() for f in frames]
    if len(per_pair) > 1:
        return nested_verdict(per_pair, unit="k-means sweep")
    return conditional_verdict(per_pair[0], unit="k-means sweep")


def knn_agreement_per_image(features, labels, k: int = 10) -> np.ndarray:
    """Each image's share of same-class neighbours among its ``k`` nearest (:func:`knn_class_agreement` before the
    mean): ``[N]`` floats in [0, 1]."""
    x = prepare(features)
    y = _labels(labels, x.shape[0])
    return (y[_knn(x, int(k))] == y[:, None]).mean(axis=1)


def knn_agreement_verdict(features_a, features_b, labels, *, k: int = 10, n_boot: int = 2000, seed: int = 0):
    """Figure 7 with an interval: kNN class agreement of space A minus space B (percentage points) per image
    (:func:`knn_agreement_per_image`).

    Args:
        features_a, features_b: [N, D] features of the N images in spaces A and B (one pre-training run each), or
            equally long lists of them, one pair per pre-training replicate (pair r: A's run r against B's run r).
        labels: [N] class of each image.

    With one pair the interval is a paired bootstrap over images
    (:func:`~detpretrain.analysis.stats.paired_bootstrap`): the neighbour graphs are those of all N images
    (resampling images would put an image beside its own copy), so it covers which images were drawn, given the
    graph, and is conditional on these networks. With R >= 2 pairs the unit is the pre-training run: a t interval
    over the R per-replicate mean differences (:func:`~detpretrain.analysis.stats.nested_verdict`: the images
    nested in their replicate, df = R - 1).

    Raises:
        ValueError: lists of different lengths or empty.
    """
    import dataclasses

    from detpretrain.analysis.stats import nested_verdict, paired_bootstrap

    listed = isinstance(features_a, (list, tuple)), isinstance(features_b, (list, tuple))
    if any(listed):
        if not all(listed):
            raise ValueError("knn_agreement_verdict: pass both spaces as arrays, or both as lists (one per "
                             "pre-training replicate)")
        pairs = list(zip(features_a, features_b)) if len(features_a) == len(features_b) else None
        if not pairs:
            raise ValueError(f"knn_agreement_verdict: {len(features_a)} A and {len(features_b)} B feature sets; "
                             "expected one pair per pre-training replicate")
        if len(pairs) > 1:
            diffs = [100 * (knn_agreement_per_image(a, labels, k) - knn_agreement_per_image(b, labels, k))
                     for a, b in pairs]
            return nested_verdict(diffs, unit="image")
        features_a, features_b = pairs[0]
    v = paired_bootstrap(100 * knn_agreement_per_image(features_a, labels, k),
                         100 * knn_agreement_per_image(features_b, labels, k), n_boot=n_boot, seed=seed, unit="image")
    return dataclasses.replace(v, replicated=False)


#: why Figure 3's size match has no estimate on real photographs
NO_SIZES = "not measured: these images have no annotated object sizes (real data)"


def _relative_differences(pairs, attribute: np.ndarray, reference: float) -> np.ndarray:
    """``[P]`` absolute attribute differences of the ``[P, 2]`` image pairs, divided by ``reference`` (the mean over
    all pairs)."""
    return np.abs(np.diff(attribute[np.asarray(pairs, dtype=np.int64).reshape(-1, 2)], axis=1))[:, 0] / reference


def size_match_bootstrap(pairs_a, pairs_b, attribute, *, n_boot: int = 2000, seed: int = 0):
    """Figure 3 with an interval: :func:`pair_attribute_similarity`'s ratio of the pairs of space A minus that of space
    B (e.g. A = IMAGENET-CLS, B = detection: positive = B's nearest pairs match better in the attribute), each pair
    set resampled with replacement on its own (the two sets are different pairs), the reference (all pairs) fixed.

    Returns:
        :func:`~detpretrain.analysis.stats.replicates_verdict` (unit: nearest pair; conditional on these networks);
        with no estimate (NaN, n = 0) when no image has the attribute (real photographs: object sizes are annotated
        only by the synthetic corpus, :func:`detpretrain.experiments.features.split_attributes`).

    Raises:
        ValueError: as :func:`pair_attribute_similarity` (fewer than 2 images, infinite values, some images with the
            attribute and others without).
    """
    from detpretrain.analysis.stats import _no_interval, replicates_verdict

    attr = np.asarray(attribute, dtype=np.float64)
    if attr.size and np.isnan(attr).all():
        return _no_interval(math.nan, 0, 0, 0, NO_SIZES, alpha=0.05, kind="superiority", margin=0.0, expected=+1,
                            unit="nearest pair")
    ref = pair_attribute_similarity(np.zeros((0, 2), int), attr)["all_mean_abs_diff"]
    da, db = _relative_differences(pairs_a, attr, ref), _relative_differences(pairs_b, attr, ref)
    if not (da.size and db.size):
        return replicates_verdict(math.nan, [], n=0, unit="nearest pair", method="no pairs", replicated=False)
    rng = np.random.default_rng(seed)
    theta = (da[rng.integers(0, da.size, (n_boot, da.size))].mean(1)
             - db[rng.integers(0, db.size, (n_boot, db.size))].mean(1))
    return replicates_verdict(da.mean() - db.mean(), theta, n=da.size + db.size, unit="nearest pair",
                              method=f"bootstrap of {da.size} and {db.size} nearest pairs ({n_boot} resamples)",
                              replicated=False)


def size_match_verdict(pair_sets, attribute, *, n_boot: int = 2000, seed: int = 0):
    """Figure 3's claim (Li et al. 2019, Appendix 6.1: the detection space's nearest pairs "match in shape and
    size") over pre-training replicate pairs: for each pair r, the mean size difference of space A's nearest pairs
    minus space B's, each relative to all pairs (:func:`size_match_bootstrap`'s statistic; A = IMAGENET-CLS,
    B = detection: positive = the detection space's pairs match better in size).

    Args:
        pair_sets: a list of ``(pairs_a, pairs_b)``, one per pre-training replicate pair (A's run r and B's run r):
            the ``[P, 2]`` image indices of each space's nearest pairs (:func:`nearest_pairs`).
        attribute: ``[N]`` the attribute per image (e.g. log object area); NaN for every image when unannotated.
        n_boot, seed: for the single-pair bootstrap.

    Returns:
        :class:`~detpretrain.analysis.stats.Verdict` in units of a random pair's difference. With R >= 2 pairs the
        unit is the pre-training run: a t interval over the R per-pair statistics (df = R - 1). With one pair it is
        :func:`size_match_bootstrap` (nearest pairs resampled, conditional on these networks). No estimate when no
        image has the attribute, or when a space has no pairs.

    Raises:
        ValueError: an empty ``pair_sets``; as :func:`pair_attribute_similarity` for the attribute.
    """
    from detpretrain.analysis.stats import _no_interval, verdict

    sets = list(pair_sets)
    if not sets:
        raise ValueError("size_match_verdict: no pair sets; give one (pairs_a, pairs_b) per pre-training replicate")
    if len(sets) == 1:
        return size_match_bootstrap(*sets[0], attribute, n_boot=n_boot, seed=seed)
    attr = np.asarray(attribute, dtype=np.float64)
    q = {"alpha": 0.05, "kind": "superiority", "margin": 0.0, "expected": +1, "unit": "pre-training run"}
    if attr.size and np.isnan(attr).all():
        return _no_interval(math.nan, 0, 0, 0, NO_SIZES, **q)
    ref = pair_attribute_similarity(np.zeros((0, 2), int), attr)["all_mean_abs_diff"]
    per_pair = []
    for pairs_a, pairs_b in sets:
        da, db = _relative_differences(pairs_a, attr, ref), _relative_differences(pairs_b, attr, ref)
        if not (da.size and db.size):
            return _no_interval(math.nan, 0, 0, 0, "no nearest pairs in a replicate's space", **q)
        per_pair.append(da.mean() - db.mean())
    return verdict(np.asarray(per_pair), unit="pre-training run")
