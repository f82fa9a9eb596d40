"""BLAS on one thread for the analyses' logistic-regression fits: the linear probes (Tables 5, 6) and the mechanisms
page's bag-of-objects oracle.

numpy and scipy call OpenBLAS (or MKL), which by default starts one thread per core (``OMP_NUM_THREADS`` where set)
and synchronises them on every call. An L-BFGS fit of scikit-learn's ``LogisticRegression`` on a few hundred to a few
thousand images is thousands of small matrix products, where that synchronisation costs more than the threads save:
on the 2-core machine the classification chapter's detection-head probes (Table 5) took 6.9 s with two BLAS threads
and 1.1 s with one, the same accuracies; ``benchmarks/bench_blas.py`` (``mini``'s shapes, same results both ways):
the probes 2.6x to 17x faster on one thread, the PCA of Table 5's control and the ablations' bootstrap of the miss
logistic regression unchanged (1.09x, 1.02x on an idle machine; left as they are). A chapter executed one at a
time, on a GPU machine (one kernel with every core) or in a Jupyter kernel of its own ran its probes with one BLAS
thread per core.

:func:`one_blas_thread` limits the BLAS libraries loaded in this process (``threadpoolctl``, which scikit-learn uses
itself) for the duration of a block; torch's own threads are not touched. Only libraries already loaded when the
block starts are limited: import scikit-learn (which loads scipy's OpenBLAS) before entering it, as the callers do.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def one_blas_thread():
    """Context manager: the BLAS libraries of this process (OpenBLAS, MKL, BLIS) on one thread inside the block, as
    before after it (nested blocks restore in order). torch's intra-op threads are unchanged.

    Example::

        with one_blas_thread():
            model = LogisticRegression().fit(x, y)
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
