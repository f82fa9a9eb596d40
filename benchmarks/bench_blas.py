"""The analyses' small fits with BLAS on every core against one BLAS thread (:func:`detpretrain.analysis.blas.
one_blas_thread`), side by side in one process.

Each case is the project's own function on features of the ``mini`` profile's shapes, drawn once with
:func:`sklearn.datasets.make_classification` (a fixed seed): Table 5's linear probes on the CALTECH-256 role (750 /
250 / 250 images, 25 classes; the 1x1-pooled ConvProj, its 4x4 pooling and the whole blob: 64, 1,024 and 3,136
dimensions), Table 6's on the SUN-397 role (2,430 / 90 / 90 images, 9 classes, 256 dimensions), the PCA of the
dimension-matched Table 5 control (750 x 3,136 to 64), and the ablations' miss logistic regression (Table 3's
reading, 20 bootstrap refits of 2,000 objects). The two settings alternate, ``--repeats`` times each, which one
goes first alternating too, so that drift of the machine's load hits both alike. "Default" is the BLAS default of
this process (one thread per core, or ``OMP_NUM_THREADS``), with the probe's own one-thread limit taken out
(``probes.one_blas_thread`` replaced by a no-op for that arm: the code before the limit); "one" is the project's
code as it is, inside :func:`one_blas_thread`. The BLAS threads each arm's fits saw are recorded. Reported: the median
seconds of each, their ratio (> 1: one thread is faster) and whether the results agree (top-1 equal; the PCA
projections and the coefficients to 1e-6, a component's sign free).

    OMP_NUM_THREADS=2 python benchmarks/bench_blas.py --repeats 3 [--out r.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from unittest import mock

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_info

from detpretrain.analysis import probes
from detpretrain.analysis.ablations import fit_missed_logit
from detpretrain.analysis.blas import one_blas_thread
from detpretrain.analysis.probes import linear_probe, pca_project


def blas_threads() -> set[int]:
    """The thread counts of the BLAS libraries loaded in this process, now."""
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def splits(sizes: tuple[int, int, int], classes: int, dim: int, seed: int = 0):
    """``(train, val, test)`` ``(features, labels)`` pairs of a :func:`make_classification` problem."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=sum(sizes), n_features=dim, n_informative=min(dim, 32),
                               n_redundant=0, n_classes=classes, n_clusters_per_class=1, class_sep=0.8,
                               random_state=seed)
    cut = np.cumsum(sizes)[:-1]
    return tuple(zip(np.split(x.astype(np.float32), cut), np.split(y, cut)))


def miss_design(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A design frame of :func:`fit_missed_logit`'s columns: detection pre-training, visibility, size, class."""
    rng = np.random.default_rng(seed)
    det, occ = rng.integers(0, 2, n), rng.integers(0, 2, n)
    trunc = (1 - occ) * rng.integers(0, 2, n)
    log_area = rng.normal(0, 1, n)
    logit = -0.5 - 0.6 * det + 0.8 * occ + 0.5 * trunc - 0.4 * det * occ - 0.7 * log_area
    return pd.DataFrame({"det": det, "occluded": occ, "truncated": trunc, "log_area": log_area,
                         "class": rng.integers(0, 6, n),
                         "missed": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)})


def cases() -> dict:
    """``{name: function returning a comparable result}``."""
    caltech = {d: splits((750, 250, 250), 25, d) for d in (64, 1024, 3136)}
    sun = splits((2430, 90, 90), 9, 256)
    design = miss_design()
    rng = np.random.default_rng(1)
    boots = [rng.integers(0, len(design), len(design)) for _ in range(20)]
    out = {f"Table 5 probe, CALTECH-256 role, {d} dims": (lambda s=s: linear_probe(*s)["top1"])
           for d, s in caltech.items()}
    out["Table 6 probe, SUN-397 role, 256 dims"] = lambda: linear_probe(*sun)["top1"]
    # the test split's projection, each component's sign fixed by its largest entry (SVD may flip it)
    out["PCA 750 x 3136 -> 64 (Table 5 control)"] = lambda: signed(pca_project(*(x for x, _ in caltech[3136]), 64)[2])
    out["miss logit, 20 bootstrap refits (ablations)"] = lambda: np.concatenate(
        [fit_missed_logit(design.iloc[rows], C=10.0).to_numpy() for rows in boots])
    return out


def signed(x: np.ndarray) -> np.ndarray:
    """``x`` with each column's sign chosen so that its largest absolute entry is positive."""
    return x * np.sign(x[np.abs(x).argmax(axis=0), np.arange(x.shape[1])])


def timed(fn, limit: bool) -> tuple[float, object, set[int]]:
    """(seconds, result, BLAS threads seen at the start of the fits) of ``fn`` with one BLAS thread or the default
    (the probe's own limit taken out)."""
    seen: set[int] = set()
    recording = probes._pipeline

    def pipeline(c, max_iter):  # note the threads when a probe's fit is built (inside any limit)
        seen.update(blas_threads())
        return recording(c, max_iter)

    arm = one_blas_thread() if limit else mock.patch.object(probes, "one_blas_thread", contextlib.nullcontext)
    with mock.patch.object(probes, "_pipeline", pipeline), arm:
        seen.update(blas_threads())
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
    return seconds, result, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="write every repeat as JSON")
    args = parser.parse_args()
    blas = sorted({(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"})
    print(f"BLAS libraries of this process and their default threads: {blas}")
    rows, record = [], {}
    for name, fn in cases().items():
        fn()  # warm-up (imports, first allocations)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        results: dict[bool, list] = {False: [], True: []}
        threads: dict[bool, set[int]] = {False: set(), True: set()}
        for r in range(args.repeats):
            for limit in ((False, True) if r % 2 == 0 else (True, False)):
                s, result, seen = timed(fn, limit)
                seconds[limit].append(s)
                results[limit].append(result)
                threads[limit] |= seen
        agree = all(np.allclose(a, b, rtol=1e-6, atol=1e-6) for a, b in zip(results[False], results[True]))
        m_every, m_one = statistics.median(seconds[False]), statistics.median(seconds[True])
        rows.append((name, sorted(threads[False]), m_every, sorted(threads[True]), m_one, m_every / m_one, agree))
        record[name] = {"default_s": seconds[False], "one_thread_s": seconds[True], "agree": agree,
                        "default_blas_threads": sorted(threads[False]), "one_blas_threads": sorted(threads[True])}
        print(f"{name}: default ({sorted(threads[False])} BLAS threads) {m_every:.2f} s, "
              f"one ({sorted(threads[True])}) {m_one:.2f} s, ratio {m_every / m_one:.2f}x, results agree: {agree}",
              flush=True)
    print("\n| fit | default: BLAS threads, s | one: BLAS threads, s | default / one | same results |\n"
          "|---|---:|---:|---:|---|")
    for name, t_every, a, t_one, b, ratio, agree in rows:
        print(f"| {name} | {t_every}, {a:.2f} | {t_one}, {b:.2f} | **{ratio:.2f}x** | {'yes' if agree else 'NO'} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"blas": blas, "cases": record}, f, indent=1)


if __name__ == "__main__":
    main()
