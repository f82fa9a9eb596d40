"""The one verdict rule of the book: paired differences, an interval over the unit of replication, a label.

Every claim of a chapter ("detection pre-training helps at IoU 0.7", "freezing keeps accuracy") is judged here,
from paired differences (treatment minus control) and the design that produced them. The rule follows Bouthillier
et al. 2021 ("Accounting for variance in machine learning benchmarks", MLSys): the interval is over the unit the
claim is about, a pre-training run, not over whatever happens to be plentiful (fine-tuning seeds, images).

Public core
-----------
:func:`verdict`
    ``differences`` [n], one per unit (a fine-tuning, or an image), and optionally ``groups`` [n] naming the
    replicate each unit belongs to (the pre-training run). Returns a :class:`Verdict`.

    * **flat** (``groups=None``): Student t-interval on the differences, ``df = n - 1``. The caller asserts that
      the differences are independent replicates of what the claim is about.
    * **nested** (``groups`` with G >= 2 levels): the differences are averaged within each group (each group counts
      once, whatever its size) and the t-interval is over the G group means, ``df = G - 1``. Exact when the group
      means are normal, whatever the between- and within-group variances, so it keeps its level with 3 groups --
      where a bootstrap over 3 clusters does not (its percentile interval is about the range of the 3 group means;
      ``tests/test_stats.py`` measures both).
    * **unreplicated** (``groups`` with a single level: one pre-training run per arm, e.g. published weights, or
      one replicate pair of a replicated design): the claim about pre-training has n = 1 and cannot be tested.
      Without ``unit`` the verdict is *not resolved*, no interval. With an explicit ``unit`` (e.g.
      ``unit="fine-tuning seed"``) the caller asks for the conditional analysis: the flat t-interval over those
      units, with ``replicated=False``; its :attr:`~Verdict.label` says what the interval shows about these
      particular networks (it covers fine-tuning or image variation only, not the variation between pre-training
      runs), and as a claim about pre-training it is *not resolved* (:attr:`~Verdict.claim_label`, which claims
      tables, the chapters' answers and the overview show; :meth:`~Verdict.sentence` gives both).

    Labels (``expected`` = +1 when the claim is "treatment > control", -1 when "treatment < control"):

    * ``kind="superiority"``: *holds* when the two-sided (1 - alpha) interval excludes 0 on the ``expected`` side,
      *reversed* when it excludes 0 on the other side, else *not resolved*. The false *holds* rate under a true
      null is alpha / 2 (one tail); the rate of any verdict (holds or reversed) is alpha.
    * ``kind="noninferiority"`` with ``margin`` > 0 (same units as the differences), for claims like "accuracy is
      kept": *holds* when the whole interval lies beyond ``-margin`` in the ``expected`` direction (the standard
      rule: the bound of a two-sided 95 % interval, i.e. a one-sided test at 2.5 %); *reversed* when the whole
      interval lies beyond ``-margin`` on the bad side (worse than the margin allows: inferior); else
      *not resolved*.

    ``p_value``: two-sided t-test of the null value (0, or ``-margin * expected`` for non-inferiority); p < alpha
    exactly when the interval excludes the null value, so a Holm-adjusted p can relabel a claim
    (:func:`adjust_claims`).

    ``mde`` (minimum detectable effect): the smallest true effect, as a distance from the null value in the
    ``expected`` direction, that this design detects (label *holds*) with 80 % power at this alpha, taking the
    observed standard error as the truth: ``ncp * SE`` with ``ncp`` solving ``P(T'(df, ncp) > t_{1-alpha/2, df})
    = 0.8`` for the noncentral t ``T'`` (:func:`min_detectable_effect`). The textbook shortcut
    ``(t_{1-alpha/2,df} + t_{0.8,df}) * SE`` underestimates it at small df (df = 2: 5.36 SE, power 77 %, against
    the exact 5.65 SE), so the exact one is used; they agree from df ~ 8 on.

    Degenerate inputs: fewer than 2 replicates -> *not resolved*, interval, p and mde NaN. Zero spread (all
    replicates equal to within :data:`ZERO_SPREAD_TOLERANCE` of their scale, e.g. identical runs whose seeds change
    nothing) -> *not resolved*, a zero-width interval at the
    estimate, p and mde NaN: the design cannot measure its own noise, and a single repeated number is not evidence.
    NaN / inf values, mismatched lengths, non-1-D input -> ``ValueError`` naming the problem. No unit at all
    (``differences`` empty) -> *not resolved* with NaN estimate, as for a comparison that is missing.

:func:`mcnemar`
    Two classifiers' per-image correctness on the same test images: the exact McNemar test (McNemar 1947; the
    binomial test on the discordant images) and the matching exact interval for the accuracy difference.

:func:`paired_bootstrap`
    Per-image paired metrics: percentile interval over resampled images (Efron & Tibshirani 1993, ch. 13), with
    ``groups`` a two-stage bootstrap (groups, then images within them). With few groups the two-stage bootstrap is
    anticonservative (3 groups give only 10 distinct resamples of the groups), so replicated claims go through
    :func:`verdict` on per-group differences.

:func:`difference_verdict`
    The difference between two verdicts from independent data (one claim under two corpus cues): Welch's interval
    from the two intervals.

:func:`prediction_lower_bound`
    Not a verdict: how low a test-split mean of R new runs can plausibly fall, given R runs on the val split and the
    image-resampling spread of their mean (a schedule is chosen on val by this bound, ``profiles.py``).

:func:`holm`, :func:`adjust_claims`, :func:`claims_table`
    One declared primary claim per chapter, tested at alpha unadjusted; the other claims of the chapter are
    secondary, Holm-adjusted among themselves (Holm 1979); the chapter shows the whole table.

References:
    Bouthillier X. et al. 2021, "Accounting for variance in machine learning benchmarks", MLSys.
    Holm S. 1979, "A simple sequentially rejective multiple test procedure", Scand. J. Statist. 6:65-70.
    Welch B. L. 1947, "The generalization of 'Student's' problem when several different population variances are
    involved", Biometrika 34:28-35.
    McNemar Q. 1947, "Note on the sampling error of the difference between correlated proportions or percentages",
    Psychometrika 12:153-157.
    Efron B. & Tibshirani R. 1993, "An Introduction to the Bootstrap", Chapman & Hall (ch. 13, percentile interval).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

#: the three labels, in every verdict of the book
LABELS = ("holds", "reversed", "not resolved")
#: the two kinds of claim
KINDS = ("superiority", "noninferiority")
#: power at which :attr:`Verdict.mde` is computed
POWER = 0.8

_NAN = math.nan


# ----------------------------------------------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Verdict:
    """One claim's verdict: estimate, interval, its design and the label.

    Attributes:
        label: ``"holds"``, ``"reversed"`` or ``"not resolved"`` (see the module docstring for each kind).
        estimate: mean paired difference, treatment minus control, in the units of the input (e.g. mAP points).
        ci_low, ci_high: two-sided (1 - alpha) interval; NaN when there is none.
        p_value: two-sided p of the null value (0, or ``-margin * expected``); NaN when there is no test.
        n: how many replicates of ``unit`` the interval is over (the n of the claim).
        n_units: how many differences came in (e.g. fine-tunings, or images).
        n_groups: how many groups (pre-training runs); equals ``n_units`` for a flat design.
        df: degrees of freedom of the t-interval (NaN for the bootstrap and McNemar).
        mde: smallest true effect (distance from the null value, in the expected direction) detected with 80 %
            power at this alpha by this design, at the observed standard error; NaN when there is no interval.
        alpha, kind, margin, expected: the question asked.
        unit: the unit of replication, singular (``"pre-training run"``, ``"fine-tuning seed"``, ``"image"``).
        subunit: the lower level in a nested design (``"fine-tuning seed"``), else ``""``.
        method: how the interval was made, in words (shown in sentences and tables).
        replicated: False when the claim is about pre-training but the interval is not over pre-training runs of
            both arms (one run in an arm, or one pair of networks): :attr:`label` is then about these particular
            networks and :attr:`claim_label` *not resolved*.
        role: ``"primary"`` / ``"secondary"`` after :func:`adjust_claims`, else ``""``.
        p_adjusted: Holm-adjusted p after :func:`adjust_claims` (the raw p for the primary), else NaN.
        mde_alpha: the two-sided level ``mde`` is computed at when it is not ``alpha``: for a secondary claim among
            m > 1, ``alpha / m``, the level Holm's procedure asks of the claim ranked first (:func:`adjust_claims`);
            NaN otherwise.
    """

    label: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_units: int
    n_groups: int
    df: float
    mde: float
    alpha: float = 0.05
    kind: str = "superiority"
    margin: float = 0.0
    expected: int = 1
    unit: str = "unit"
    subunit: str = ""
    method: str = ""
    replicated: bool = True
    role: str = ""
    p_adjusted: float = _NAN
    mde_alpha: float = _NAN

    @property
    def claim_label(self) -> str:
        """The label of the claim about pre-training: :attr:`label` when the interval is over pre-training runs of
        both arms (``replicated``), else *not resolved*. An interval that leaves out one arm's run-to-run spread (one
        pre-training run per arm, published weights, or one untrained network as a floor) measures these
        particular networks, not the unit a claim about pre-training is replicated over (Bouthillier et al.
        2021), so it cannot make that claim *hold* or *reversed*; :attr:`label` then says what it shows about
        these networks (:attr:`shown_label`)."""
        return self.label if self.replicated else "not resolved"

    @property
    def shown_label(self) -> str:
        """:attr:`claim_label` as a claims table shows it: for an unreplicated verdict followed by what the
        interval shows about these particular networks, e.g. ``"not resolved (not replicated over pre-training runs;
        these networks alone: holds)"``."""
        if self.replicated:
            return self.label
        if self.label == "not resolved":
            return f"not resolved ({UNREPLICATED})"
        return f"not resolved ({UNREPLICATED}; these networks alone: {self.label})"

    @property
    def null_value(self) -> float:
        """The value the test is against: 0 (superiority) or ``-margin * expected`` (non-inferiority)."""
        return -self.margin * self.expected if self.kind == "noninferiority" else 0.0

    def sentence(self, name: str, unit_label: str | None = None, digits: int = 1) -> str:
        """The verdict as the reader sees it: estimate, interval, design, n, power and label.

        Args:
            name: what the estimate measures, e.g. ``"mAP@0.7"`` or ``"top-1 points"``.
            unit_label: the unit of replication as printed (singular; pluralised here), default :attr:`unit`.
            digits: decimals of the estimate, interval and mde.

        Example: ``"+2.3 mAP@0.7 (95 % CI +0.4 to +4.2; t-interval over 3 pre-training runs, 9 fine-tuning
        seeds; smallest detectable effect 3.1 at 80 % power) — holds"``.
        """
        digits = self.digits_for(digits)
        f = f"{{:+.{digits}f}}"
        est = "no estimate" if math.isnan(self.estimate) else f"{f.format(self.estimate)} {name}"
        unit = unit_label or self.unit
        parts = []
        if not math.isnan(self.ci_low) and self.ci_high > self.ci_low:  # a zero-width one: the method says why
            level = f"{'unadjusted ' if self.role == 'secondary' else ''}{_level(self.alpha)} % CI"
            parts.append(f"{level} {f.format(self.ci_low)} to {f.format(self.ci_high)}")
        parts.append(self.method if unit_label is None else self.method.replace(_plural(self.unit, self.n),
                                                                                   _plural(unit, self.n)))
        if not math.isnan(self.mde):
            parts.append(f"smallest detectable effect {self.mde:.{digits}f} at {round(100 * POWER)} % power"
                         + ("" if math.isnan(self.mde_alpha) else f" and Holm's level {self.mde_alpha:.3g}"))
        label = self.label
        if self.kind == "noninferiority":
            label += {"holds": f" (non-inferior: margin {self.margin:.{digits}f})",
                      "reversed": f" (inferior by more than the margin {self.margin:.{digits}f})"}.get(self.label, "")
        if not self.replicated:
            label = f"{self.claim_label} ({UNREPLICATED})" + (
                "" if self.label == "not resolved" else f"; for these particular networks alone: {label}")
        if self.role == "secondary" and not math.isnan(self.p_adjusted):
            label += f" (secondary claim; Holm-adjusted p = {self.p_adjusted:.2g})"
        elif self.role == "primary":
            label += " (primary claim)"
        return f"{est} ({'; '.join(parts)}) — {label}"

    def digits_for(self, digits: int = 1) -> int:
        """``digits``, or more (up to 6) until the interval's limits print on their side of the null value (0, or
        ``-margin * expected`` for non-inferiority): a limit that rounds onto it beside *holds* (``+0.0``, or
        ``+1.0`` against a margin of 1.0) or a negative one beside *not resolved* (``-0.0``) would contradict the
        label."""
        ref = self.null_value
        limits = [x for x in (self.ci_low, self.ci_high) if math.isfinite(x) and x != ref]
        while digits < 6 and any(round(x, digits) == round(ref, digits) for x in limits):
            digits += 1
        return digits

    def as_row(self) -> dict:
        """The verdict as one table row (plain Python values)."""
        return {"estimate": self.estimate, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n,
                "unit": self.unit, "n_units": self.n_units, "n_groups": self.n_groups, "df": self.df,
                "p": self.p_value, "p_holm": self.p_adjusted, "label": self.label, "mde": self.mde,
                "kind": self.kind, "margin": self.margin, "expected": self.expected, "alpha": self.alpha,
                "replicated": self.replicated, "role": self.role, "method": self.method, "mde_alpha": self.mde_alpha}


#: why an unreplicated verdict is no claim about pre-training, as :meth:`Verdict.sentence` and tables say it
UNREPLICATED = "not replicated over pre-training runs"


def _level(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}"


def _plural(noun: str, n: int) -> str:
    if n == 1 or noun.endswith("s"):
        return f"{n} {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{n} {noun[:-1]}ies"
    return f"{n} {noun}s"


# ----------------------------------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------------------------------
def _check_question(expected, alpha, margin, kind) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if expected not in (1, -1):
        raise ValueError(f"expected must be +1 (treatment > control) or -1 (treatment < control), got {expected!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if kind == "noninferiority" and not (margin > 0 and math.isfinite(margin)):
        raise ValueError(f"a non-inferiority claim needs a finite margin > 0 (units of the differences), "
                         f"got {margin!r}")
    if kind == "superiority" and margin != 0:
        raise ValueError(f"margin={margin!r} is for kind='noninferiority'; a superiority claim is tested against 0")


def _as_vector(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what} must be numbers: {err}") from None
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D (one value per unit), got shape {arr.shape}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{what} has {bad.size} NaN/inf value(s), first at position {bad[0]} ({arr[bad[0]]}); "
                         "drop the units that are missing in either arm before calling")
    return arr


def _group_codes(groups, n: int) -> tuple[np.ndarray, int]:
    arr = groups.to_numpy(dtype=object) if isinstance(groups, pd.Series) else np.asarray(groups, dtype=object)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"groups must be 1-D with one entry per difference: shape {arr.shape} for {n} differences")
    labels = pd.Series(arr)
    if labels.isna().any():
        raise ValueError(f"groups has a missing value at position {int(np.flatnonzero(labels.isna())[0])}")
    codes, uniques = pd.factorize(labels, sort=False)
    return codes, len(uniques)


#: replicates that differ by at most this fraction of their scale (max(1, |x|)) are copies of one number: float32
#: rounding leaves ~1e-7 between runs that computed the same value (e.g. a metric summed in another order), while two
#: pre-training runs differ by far more (points of mAP or top-1, hundredths of a mass share)
ZERO_SPREAD_TOLERANCE = 1e-6


def _zero_spread(x: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(x))))
    return float(np.ptp(x)) <= ZERO_SPREAD_TOLERANCE * scale


# ----------------------------------------------------------------------------------------------------------------
# power
# ----------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _ncp_for_power(df: float, alpha: float, power: float) -> float:
    if math.isinf(df):
        return float(stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))
    crit = float(special.stdtrit(df, 1 - alpha / 2))

    def shortfall(ncp: float) -> float:
        return 1 - special.nctdtr(df, ncp, crit) - power

    hi = crit + 2.0
    while shortfall(hi) < 0:  # widen the bracket step by step: nctdtr is NaN far out in the tail
        hi *= 1.5
    return float(optimize.brentq(shortfall, 0.0, hi, xtol=1e-10))


def min_detectable_effect(se: float, df: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest true effect detected (in the expected direction) with probability ``power`` by a two-sided t-test.

    Args:
        se: standard error of the estimate (units of the differences).
        df: degrees of freedom (``math.inf`` for a normal approximation).
        alpha: two-sided level.
        power: wanted probability of the label *holds*.

    Returns:
        ``ncp * se`` where the noncentral t with ``df`` and ``ncp`` exceeds ``t_{1-alpha/2, df}`` with probability
        ``power``; NaN for ``df < 1`` or a non-finite / zero ``se``.
    """
    if not (df >= 1 and math.isfinite(se) and se > 0):
        return _NAN
    return _ncp_for_power(float(df), float(alpha), float(power)) * float(se)


# ----------------------------------------------------------------------------------------------------------------
# labels
# ----------------------------------------------------------------------------------------------------------------
def _label(ci_low: float, ci_high: float, null: float, expected: int) -> str:
    """Label of an interval against the null value (0, or -margin * expected) in the expected direction."""
    if math.isnan(ci_low):
        return "not resolved"
    lo, hi = (ci_low, ci_high) if expected == 1 else (-ci_high, -ci_low)
    ref = null * expected
    if lo > ref:
        return "holds"
    if hi < ref:
        return "reversed"
    return "not resolved"


def _no_interval(estimate, n, n_units, n_groups, method, *, alpha, kind, margin, expected, unit, subunit="",
                 replicated=True, ci=(_NAN, _NAN)) -> Verdict:
    return Verdict("not resolved", float(estimate), float(ci[0]), float(ci[1]), _NAN, int(n), int(n_units),
                   int(n_groups), _NAN, _NAN, alpha, kind, float(margin), int(expected), unit, subunit, method,
                   replicated)


# ----------------------------------------------------------------------------------------------------------------
# the t rule
# ----------------------------------------------------------------------------------------------------------------
def verdict(differences, *, groups=None, expected: int = +1, alpha: float = 0.05, margin: float = 0.0,
            kind: str = "superiority", unit: str | None = None,
            group_unit: str = "pre-training run") -> Verdict:
    """Verdict on a claim from paired differences (treatment minus control), one per unit.

    Args:
        differences: [n] paired differences in the metric's units (e.g. mAP points), treatment minus control.
        groups: optional [n] labels of the replicate each difference belongs to (e.g. the pre-training run pair
            ``r``: treatment run r against control run r). With G >= 2 levels the interval is over the G group
            means (df = G - 1); with a single level the pre-training is unreplicated (see the module docstring).
        expected: +1 if the claim is treatment > control, -1 if treatment < control.
        alpha: two-sided level of the interval (0.05: a 95 % interval).
        margin: for ``kind="noninferiority"``: how much worse (> 0, in the metric's units) still counts as kept.
        kind: ``"superiority"`` or ``"noninferiority"``.
        unit: what one difference is, singular (``"fine-tuning seed"``, ``"image"``). With a single group, passing
            it asks for the analysis conditional on that group's networks.
        group_unit: what one group is, singular (the unit of replication of a nested design).

    Returns:
        :class:`Verdict`.

    Raises:
        ValueError: NaN/inf differences, non-1-D input, ``groups`` of another length or with missing labels, an
            unknown ``kind``, ``expected`` not +-1, alpha outside (0, 1), a margin that does not fit the kind.
    """
    _check_question(expected, alpha, margin, kind)
    d = _as_vector(differences, "differences")
    q = {"alpha": float(alpha), "kind": kind, "margin": float(margin), "expected": int(expected)}
    sub = unit or "unit"
    if groups is None:
        return _t_verdict(d, n_units=d.size, n_groups=d.size, unit=sub, subunit="", replicated=True,
                          design=f"t-interval over {{n}}", **q)
    codes, n_groups = _group_codes(groups, d.size)
    if n_groups == 1:
        if unit is None:
            return _no_interval(d.mean() if d.size else _NAN, 1, d.size, 1,
                                f"1 {group_unit}: the unit of replication has n = 1, no interval (pass unit= "
                                f"for an analysis conditional on this {group_unit})", unit=group_unit,
                                replicated=False, **q)
        return _t_verdict(d, n_units=d.size, n_groups=1, unit=sub, subunit="", replicated=False,
                          design=f"t-interval over {{n}} of 1 {group_unit}", **q)
    sizes = np.bincount(codes, minlength=n_groups)
    means = np.bincount(codes, weights=d, minlength=n_groups) / np.maximum(sizes, 1)
    within = (f"{_plural(sub, int(sizes[0]))} each" if sizes.size and (sizes == sizes[0]).all()  # balanced
              else f"{_plural(sub, d.size)} in all")
    return _t_verdict(means, n_units=d.size, n_groups=n_groups, unit=group_unit, subunit=sub, replicated=True,
                      design=f"t-interval over {{n}}, {within}", **q)


def _t_verdict(x: np.ndarray, *, n_units, n_groups, unit, subunit, replicated, design, alpha, kind, margin,
               expected) -> Verdict:
    n = x.size
    method = design.format(n=_plural(unit, n))
    q = {"alpha": alpha, "kind": kind, "margin": margin, "expected": expected, "unit": unit, "subunit": subunit,
         "replicated": replicated}
    if n == 0:
        return _no_interval(_NAN, 0, n_units, n_groups, f"no {unit}: nothing to compare", **q)
    estimate = float(x.mean())
    if n < 2:
        return _no_interval(estimate, n, n_units, n_groups, f"1 {unit}: no spread to build an interval from", **q)
    if _zero_spread(x):
        return _no_interval(estimate, n, n_units, n_groups,
                            f"{_plural(unit, n)}, all equal: zero spread, the design cannot measure its noise",
                            ci=(estimate, estimate), **q)
    df = n - 1
    se = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(special.stdtrit(df, 1 - alpha / 2)) * se
    lo, hi = estimate - half, estimate + half
    null = -margin * expected if kind == "noninferiority" else 0.0
    p = float(2 * special.stdtr(df, -abs(estimate - null) / se))
    return Verdict(_label(lo, hi, null, expected), estimate, lo, hi, p, n, n_units, n_groups, float(df),
                   min_detectable_effect(se, df, alpha), alpha, kind, margin, expected, unit, subunit,
                   f"{method} (df {df})", replicated)


# ----------------------------------------------------------------------------------------------------------------
# per-image comparisons
# ----------------------------------------------------------------------------------------------------------------
def mcnemar(correct_a, correct_b, *, expected: int = +1, alpha: float = 0.05, unit: str = "test image",
            scale: float = 100.0) -> Verdict:
    """Exact McNemar test of two classifiers scored on the same test images (McNemar 1947).

    Of the images only the discordant ones inform the comparison: ``b`` where A is right and B wrong, ``c`` where
    A is wrong and B right. Under the null (equal accuracy) ``b ~ Binomial(b + c, 1/2)``; the p-value is the exact
    two-sided binomial one (twice the smaller tail, the null being symmetric). The interval for the accuracy
    difference ``(b - c) / N`` is the Clopper-Pearson interval of ``b / (b + c)`` mapped through
    ``(b + c) / N * (2 pi - 1)``, conditional on the number of discordant images; it excludes 0 exactly when the
    test rejects at ``alpha``, so the label and the p-value agree.

    Args:
        correct_a, correct_b: [N] per-image correctness (bool or 0/1) of A and B on the same images.
        expected: +1 if the claim is "A is more accurate", -1 if "A is less accurate".
        alpha: two-sided level.
        unit: name of one pair (singular).
        scale: factor on the estimate, interval and mde (100: percentage points, as the book prints top-1).

    Returns:
        :class:`Verdict` with estimate ``scale * (acc_A - acc_B)``, df NaN and ``mde`` from the normal
        approximation ``(z_{1-alpha/2} + z_{0.8}) * scale * sqrt(b + c) / N`` (NaN when no image is discordant).

    Raises:
        ValueError: lengths differ, non-1-D input, or values other than 0/1.
    """
    _check_question(expected, alpha, 0.0, "superiority")
    a, b_ = (_as_vector(v, name) for v, name in ((correct_a, "correct_a"), (correct_b, "correct_b")))
    if a.size != b_.size:
        raise ValueError(f"correct_a has {a.size} images, correct_b {b_.size}: they must be the same images")
    for arr, name in ((a, "correct_a"), (b_, "correct_b")):
        if not np.isin(arr, (0.0, 1.0)).all():
            raise ValueError(f"{name} must hold per-image correctness (bool or 0/1)")
    n_img = a.size
    q = {"alpha": float(alpha), "kind": "superiority", "margin": 0.0, "expected": int(expected), "unit": unit}
    if n_img == 0:
        return _no_interval(_NAN, 0, 0, 0, f"no {unit}: nothing to compare", **q)
    b = int(np.sum((a == 1) & (b_ == 0)))
    c = int(np.sum((a == 0) & (b_ == 1)))
    m = b + c
    estimate = scale * (b - c) / n_img
    method = f"exact McNemar test over {_plural(unit, n_img)}, {m} discordant"
    if m == 0:
        return _no_interval(estimate, n_img, n_img, n_img, method + ": the two agree on every image",
                            ci=(0.0, 0.0), **q)
    p = float(stats.binomtest(b, m, 0.5).pvalue)
    pi_lo = float(stats.beta.ppf(alpha / 2, b, m - b + 1)) if b > 0 else 0.0
    pi_hi = float(stats.beta.ppf(1 - alpha / 2, b + 1, m - b)) if b < m else 1.0
    lo, hi = (scale * m / n_img * (2 * pi - 1) for pi in (pi_lo, pi_hi))
    mde = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)) * scale * math.sqrt(m) / n_img
    return Verdict(_label(lo, hi, 0.0, expected), estimate, lo, hi, p, n_img, n_img, n_img, _NAN, float(mde),
                   float(alpha), "superiority", 0.0, int(expected), unit, "", method, True)


def _apply(statistic: Callable, block: np.ndarray) -> np.ndarray:
    """``statistic`` on every row of ``block`` [B, m]: vectorised when it takes ``axis``, else row by row."""
    try:
        out = np.asarray(statistic(block, axis=-1), dtype=float)
        if out.shape == (block.shape[0],):
            return out
    except TypeError:
        pass
    return np.array([float(statistic(row)) for row in block])


def paired_bootstrap(values_a, values_b, statistic: Callable = np.mean, *, n_boot: int = 2000, seed: int = 0,
                     groups=None, expected: int = +1, alpha: float = 0.05, margin: float = 0.0,
                     kind: str = "superiority", unit: str | None = None,
                     group_unit: str = "pre-training run") -> Verdict:
    """Paired percentile bootstrap of ``statistic(a) - statistic(b)`` over images (Efron & Tibshirani 1993, ch. 13).

    Each resample draws images with replacement and evaluates the statistic on the *same* images for A and B,
    so the pairing is kept. With ``groups`` (G >= 2) it is two-stage: G groups with replacement, then images with
    replacement within each drawn group. That bootstrap is anticonservative with few groups (with 3 groups its
    percentile interval is close to the range of the 3 group values; ``tests/test_stats.py`` measures a false
    *holds* rate far above alpha / 2): replicated claims go through :func:`verdict` on per-group differences,
    which keeps its level. A single group is treated as in :func:`verdict` (not resolved, or conditional on the
    group's networks when ``unit`` is given).

    Args:
        values_a, values_b: [N] per-image values of A and B on the same images (e.g. correctness, IoU, AP terms).
        statistic: a reduction over images, ``statistic(x, axis=-1)`` like ``np.mean`` / ``np.median``; one without
            ``axis`` is applied resample by resample.
        n_boot: number of resamples (>= 100; 2,000 or more for a 95 % percentile interval).
        seed: seed of the resampling (``numpy.random.default_rng``).
        groups: optional [N] replicate labels (see above).
        expected, alpha, margin, kind: as for :func:`verdict`.
        unit: name of one image-level unit, singular (default ``"image"``).
        group_unit: name of one group, singular.

    Returns:
        :class:`Verdict` with the percentile interval, df NaN, the p-value dual to it
        (:func:`percentile_p_value`) and
        ``mde = (z_{1-alpha/2} + z_{0.8}) * sd(theta*)``. A resampling distribution with zero spread gives
        *not resolved* (as in :func:`verdict`; for 0/1 outcomes use :func:`mcnemar`).

    Raises:
        ValueError: as :func:`verdict`, and ``n_boot < 100``.
    """
    _check_question(expected, alpha, margin, kind)
    if int(n_boot) < 100:
        raise ValueError(f"n_boot must be at least 100, got {n_boot!r}")
    a = _as_vector(values_a, "values_a")
    b = _as_vector(values_b, "values_b")
    if a.size != b.size:
        raise ValueError(f"values_a has {a.size} images, values_b {b.size}: they must be the same images")
    q = {"alpha": float(alpha), "kind": kind, "margin": float(margin), "expected": int(expected)}
    sub = unit or "image"
    n = a.size
    replicated, n_groups = True, n
    codes = np.zeros(n, dtype=int)
    if groups is not None:
        codes, n_groups = _group_codes(groups, n)
        if n_groups == 1:
            if unit is None:
                return _no_interval(float(statistic(a) - statistic(b)) if n else _NAN, 1, n, 1,
                                    f"1 {group_unit}: the unit of replication has n = 1, no interval (pass unit= "
                                    f"for an analysis conditional on this {group_unit})", unit=group_unit,
                                    replicated=False, **q)
            replicated, groups = False, None
    nested = groups is not None
    unit_r, n_r = (group_unit, n_groups) if nested else (sub, n)
    common = {"unit": unit_r, "subunit": sub if nested else "", "replicated": replicated, **q}
    if n == 0:
        return _no_interval(_NAN, 0, 0, 0, f"no {sub}: nothing to compare", **common)
    estimate = float(statistic(a) - statistic(b))
    if n_r < 2:
        return _no_interval(estimate, n_r, n, n_groups, f"1 {unit_r}: no spread to build an interval from", **common)
    rng = np.random.default_rng(seed)
    theta = _bootstrap_differences(a, b, statistic, codes if nested else None, int(n_boot), rng)
    if nested:
        method = f"two-stage bootstrap over {_plural(group_unit, n_groups)}, {_plural(sub, n)} ({n_boot} resamples)"
    else:
        method = f"paired bootstrap over {_plural(sub, n)} ({n_boot} resamples)"
        if not replicated:
            method += f" of 1 {group_unit}"
    return replicates_verdict(estimate, theta, n=n_r, unit=unit_r, method=method, expected=expected, alpha=alpha,
                              margin=margin, kind=kind, n_units=n, n_groups=n_groups, replicated=replicated,
                              subunit=common["subunit"])


def _bootstrap_differences(a, b, statistic, codes, n_boot, rng, max_block: int = 2_000_000) -> np.ndarray:
    """[n_boot] bootstrap values of ``statistic(a) - statistic(b)``; two-stage when ``codes`` is given."""
    n = a.size
    if codes is None:
        rows = max(1, max_block // n)
        out = []
        for start in range(0, n_boot, rows):
            idx = rng.integers(0, n, size=(min(rows, n_boot - start), n))
            out.append(_apply(statistic, a[idx]) - _apply(statistic, b[idx]))
        return np.concatenate(out)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_groups = sizes.size
    picked = rng.integers(0, n_groups, size=(n_boot, n_groups))
    if np.all(sizes == sizes[0]):  # balanced: one array of [n_boot, G * m] image indices
        m = int(sizes[0])
        pos = starts[picked][..., None] + rng.integers(0, m, size=(n_boot, n_groups, m))
        idx = order[pos.reshape(n_boot, -1)]
        return _apply(statistic, a[idx]) - _apply(statistic, b[idx])
    out = np.empty(n_boot)
    for r in range(n_boot):
        idx = order[np.concatenate([starts[g] + rng.integers(0, sizes[g], size=sizes[g]) for g in picked[r]])]
        out[r] = float(statistic(a[idx])) - float(statistic(b[idx]))
    return out


# ----------------------------------------------------------------------------------------------------------------
# many claims
# ----------------------------------------------------------------------------------------------------------------
def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    With the m p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted value of the i-th is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``: monotone in the raw p, and rejecting where it is below alpha is
    Holm's procedure (family-wise error at most alpha under any dependence). A NaN p (a claim that could not be
    tested) counts in m as a p of 1 -- it was declared, so it stays in the family -- and stays NaN.

    Raises:
        ValueError: a p outside [0, 1] or a non-1-D input.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    missing = np.isnan(p)
    if np.any((p[~missing] < 0) | (p[~missing] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[~missing][(p[~missing] < 0) | (p[~missing] > 1)]}")
    filled = np.where(missing, 1.0, p)
    m = filled.size
    order = np.argsort(filled, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * filled[order]))
    out = np.empty(m)
    out[order] = adjusted
    out[missing] = _NAN
    return out


def adjust_claims(claims: Mapping[str, Verdict], primary: str | None) -> dict[str, Verdict]:
    """A chapter's claims with their roles: the declared ``primary`` unadjusted, the others Holm-adjusted.

    The primary claim is declared before the result and tested at its alpha (its ``p_adjusted`` is its raw p).
    The secondary claims form their own family, Holm-adjusted among themselves; a secondary keeps its label
    (*holds* / *reversed*) only when its adjusted p is below its alpha, else it becomes *not resolved*. The
    family-wise error is then at most alpha for the primary and at most alpha over the secondaries (2 alpha over
    the chapter in the worst case); a reader who wants alpha over everything can read ``holm`` over all raw ps in
    the table. Adjustment never turns an unresolved claim into a resolved one.

    ``primary=None``: the declared primary claim was not measured in this execution (e.g. Figure 4's part focus under
    a corpus without a part); every claim is then secondary, none is promoted in its place.

    A secondary claim's smallest detectable effect is recomputed for the level it must pass: with m > 1
    secondaries, at ``alpha / m`` (:attr:`Verdict.mde_alpha`), what Holm's procedure asks of the claim it tests first,
    so the effect reported is one the chapter would resolve whatever the other claims' p-values (at df 2, 5.65 SE at
    alpha = 0.05 becomes 11.3 SE among 4 secondaries). :func:`rescaled_mde` does it for every kind of interval.

    Returns:
        ``{name: Verdict}`` with ``role`` and ``p_adjusted`` set, primary first, then the others in their order.

    Raises:
        ValueError: ``primary`` is neither None nor one of the claims.
    """
    if primary is not None and primary not in claims:
        raise ValueError(f"primary claim {primary!r} is not among the claims {list(claims)}")
    out = {} if primary is None else {
        primary: dataclasses.replace(claims[primary], role="primary", p_adjusted=claims[primary].p_value)}
    names = [k for k in claims if k != primary]
    for name, p_adj in zip(names, holm([claims[k].p_value for k in names])):
        v = claims[name]
        label = v.label if (not math.isnan(p_adj) and p_adj < v.alpha) else "not resolved"
        level = {} if len(names) < 2 else {"mde": rescaled_mde(v, v.alpha / len(names)),
                                          "mde_alpha": v.alpha / len(names)}
        out[name] = dataclasses.replace(v, role="secondary", p_adjusted=float(p_adj), label=label, **level)
    return out


def rescaled_mde(v: Verdict, alpha: float) -> float:
    """``v.mde`` (computed at ``v.alpha``, or at ``v.mde_alpha`` when set) for a test at the two-sided level
    ``alpha`` instead, at the same standard error: the ratio of the noncentrality parameters at 80 % power, exact for the t rule (:func:`verdict`, at
    ``v.df``) and for the normal-approximation mde of the bootstrap and McNemar verdicts (df NaN). NaN stays NaN."""
    if math.isnan(v.mde):
        return _NAN
    df = float(v.df) if math.isfinite(v.df) else math.inf
    current = v.alpha if math.isnan(v.mde_alpha) else v.mde_alpha  # an mde already rescaled is not rescaled twice
    return v.mde * _ncp_for_power(df, float(alpha), POWER) / _ncp_for_power(df, float(current), POWER)


def claims_table(claims: Mapping[str, Verdict], primary: str) -> pd.DataFrame:
    """Every claim of a chapter in one table: estimate, interval, n, unit, raw and Holm-adjusted p, label, mde.

    Rows follow :func:`adjust_claims` (primary first); ``label`` is the claim's label after adjustment
    (:attr:`Verdict.claim_label`: *not resolved* for an unreplicated claim), ``shown label`` the same as a chapter
    shows it (:attr:`Verdict.shown_label`, with what an unreplicated interval shows about these networks) and
    ``label before adjustment`` the claim's own.
    """
    adjusted = adjust_claims(claims, primary)
    rows = []
    for name, v in adjusted.items():
        row = {"claim": name, **v.as_row(), "label": v.claim_label, "shown label": v.shown_label,
               "label before adjustment": claims[name].claim_label}
        rows.append(row)
    first = ["claim", "role", "estimate", "ci_low", "ci_high", "n", "unit", "p", "p_holm", "label", "mde"]
    frame = pd.DataFrame(rows)
    return frame[first + [c for c in frame.columns if c not in first]]


# ----------------------------------------------------------------------------------------------------------------
# a verdict from resampled values (issue 18: statistics that are not a mean of paired differences)
# ----------------------------------------------------------------------------------------------------------------
def replicates_verdict(estimate: float, replicates, *, n: int, unit: str, method: str, expected: int = +1,
                       alpha: float = 0.05, margin: float = 0.0, kind: str = "superiority", n_units: int | None = None,
                       n_groups: int | None = None, replicated: bool = True, subunit: str = "") -> Verdict:
    """Verdict on a statistic whose sampling distribution was made by resampling (a bootstrap over images of a
    regression coefficient, of a ratio, of a permutation-corrected quantity): the percentile interval of
    ``replicates``, labelled by the rule of :func:`verdict`.

    The interval, p-value and mde follow :func:`paired_bootstrap`: ``[q_{alpha/2}, q_{1-alpha/2}]`` of the
    replicates, the p-value that is its exact dual (:func:`percentile_p_value`: ``p < alpha`` exactly when that
    interval excludes the null value) and
    ``mde = (z_{1-alpha/2} + z_{0.8}) * sd(theta*)``. Replicates that are NaN (a resample where the statistic is
    undefined, e.g. a class that was not drawn) are dropped and counted in ``method``.

    Args:
        estimate: the statistic on the data as observed (units of the replicates).
        replicates: [B] the statistic on each resample (B >= 100 finite values for an interval).
        n: how many replicates of ``unit`` were resampled (images, objects, pairs).
        unit: what was resampled, singular.
        method: how the replicates were made, in words (shown in sentences and tables).
        expected, alpha, margin, kind: as for :func:`verdict`.
        n_units, n_groups, subunit: as in :class:`Verdict` (default ``n``, ``n``, none).
        replicated: False when the claim is about pre-training and one pre-training run per arm exists.

    Returns:
        :class:`Verdict` (df NaN); *not resolved* without an interval when fewer than 100 replicates are finite or
        they have zero spread.

    Raises:
        ValueError: a bad question (as :func:`verdict`), replicates that are not 1-D.
    """
    _check_question(expected, alpha, margin, kind)
    theta = np.asarray(replicates, dtype=float)
    if theta.ndim != 1:
        raise ValueError(f"replicates must be 1-D, got shape {theta.shape}")
    finite = theta[np.isfinite(theta)]
    dropped = theta.size - finite.size
    if dropped:
        method += f"; {dropped} of {theta.size} resamples undefined, left out"
    q = {"alpha": float(alpha), "kind": kind, "margin": float(margin), "expected": int(expected), "unit": unit,
         "subunit": subunit, "replicated": replicated}
    n_units = n if n_units is None else n_units
    n_groups = n if n_groups is None else n_groups
    estimate = float(estimate)
    if not math.isfinite(estimate) or finite.size < 100:
        return _no_interval(estimate, n, n_units, n_groups, method + ": too few resamples for an interval", **q)
    if _zero_spread(finite):
        return _no_interval(estimate, n, n_units, n_groups, method + ": every resample gives the same value",
                            ci=(estimate, estimate), **q)
    lo, hi = (float(v) for v in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    null = -margin * expected if kind == "noninferiority" else 0.0
    p = percentile_p_value(finite, null)
    label = _label(lo, hi, null, expected)
    if label != "not resolved" and not p < alpha:  # only where alpha < 2 / (B + 1): finer than the resamples resolve
        label = "not resolved"
        method += f"; {finite.size} resamples cannot resolve a level below {2 / (finite.size + 1):.2g}"
    mde = float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)) * finite.std(ddof=1))
    return Verdict(label, estimate, lo, hi, p, int(n), int(n_units), int(n_groups), _NAN,
                   mde, float(alpha), kind, float(margin), int(expected), unit, subunit, method, replicated)


def _level_at(sorted_x: np.ndarray, value: float) -> float:
    """``sup {u : q(u) <= value}`` for ``q`` the quantile function of ``np.quantile`` (linear interpolation between
    order statistics, ``h = (B - 1) u``) over the sorted ``sorted_x`` [B]."""
    n = sorted_x.size
    if value < sorted_x[0]:
        return 0.0
    if value >= sorted_x[-1]:
        return 1.0
    k = int(np.searchsorted(sorted_x, value, side="right")) - 1  # x[k] <= value < x[k + 1]
    return (k + (value - sorted_x[k]) / (sorted_x[k + 1] - sorted_x[k])) / (n - 1)


def percentile_p_value(replicates, null: float = 0.0) -> float:
    """The two-sided p-value that is the exact dual of the percentile interval: the smallest alpha at which
    ``[q_{alpha/2}, q_{1-alpha/2}]`` (``np.quantile``, linear) excludes ``null``, i.e. ``2 min(u_low, 1 - u_high)``
    with ``u_low = sup {u : q(u) <= null}`` and ``u_high = inf {u : q(u) >= null}``. So ``p < alpha`` exactly when
    that interval excludes the null, and the label and a Holm adjustment of ``p`` never disagree. The bootstrap
    cannot resolve levels finer than its resamples: ``p`` is at least ``2 / (B + 1)`` (0.0198 for the least B
    allowed, 100, below the alpha of 0.05 in use; :func:`replicates_verdict` labels a claim asked at a smaller
    alpha *not resolved* when only this floor stands in the way).

    Args:
        replicates: [B] finite resampled values, B >= 2 (units of the statistic); null: the value tested.

    Raises:
        ValueError: fewer than 2 values, a NaN / inf value, or input that is not 1-D.
    """
    x = np.sort(_as_vector(replicates, "replicates"))
    if x.size < 2:
        raise ValueError(f"a percentile p-value needs at least 2 resampled values, got {x.size}")
    u_low = _level_at(x, null)
    u_high = 1.0 - _level_at(-x[::-1], -null)
    return float(min(1.0, max(2.0 * min(u_low, 1.0 - u_high), 2.0 / (x.size + 1))))


def standard_error(v: Verdict) -> tuple[float, float]:
    """The standard error and degrees of freedom behind ``v``'s interval: ``(ci_high - ci_low) / (2 q)`` with ``q``
    the t quantile at ``v.df`` (t-intervals, exact) or the normal one when ``v.df`` is NaN (percentile bootstrap
    and McNemar intervals: a normal approximation, df ``inf``). ``(nan, nan)`` when ``v`` has no interval or a
    zero-width one."""
    if not (math.isfinite(v.ci_low) and math.isfinite(v.ci_high)) or v.ci_high <= v.ci_low:
        return _NAN, _NAN
    df = float(v.df) if math.isfinite(v.df) else math.inf
    q = float(special.stdtrit(df, 1 - v.alpha / 2)) if math.isfinite(df) else float(stats.norm.ppf(1 - v.alpha / 2))
    return (v.ci_high - v.ci_low) / (2 * q), df


def difference_verdict(a: Verdict, b: Verdict, *, expected: int = +1, alpha: float = 0.05,
                       what: str = "difference") -> Verdict:
    """Verdict on ``a.estimate - b.estimate`` for two verdicts made from INDEPENDENT data: a difference of
    differences, e.g. one claim's effect under two corpus cues (issue 18: "smaller under distributed than under
    part"), whose pre-training runs, corpora and test images are all different.

    The standard errors come from the two intervals (:func:`standard_error`) and are combined as in Welch's
    unequal-variance t-test (Welch 1947): ``se = sqrt(se_a^2 + se_b^2)``, df by the Welch-Satterthwaite formula
    ``se^4 / (se_a^4 / df_a + se_b^4 / df_b)`` (a normal interval where both are bootstrap intervals). For two
    t-verdicts over replicates this is exactly Welch's test on the replicates (``tests/test_stats.py`` checks it
    against ``scipy.stats.ttest_ind(equal_var=False)`` and measures its null error rate with 3 replicates per side).
    Labelled by the rule of :func:`verdict`.

    Args:
        a, b: the two verdicts (superiority kind, same alpha and unit semantics; their own labels are ignored).
        expected: +1 when the claim is ``a > b``, -1 when ``a < b``.
        alpha: level of the interval of the difference.
        what: what the difference is, in words (goes into ``method``).

    Returns:
        :class:`Verdict` with ``n`` = ``a.n + b.n``, ``unit`` = ``a.unit`` (or ``"a.unit / b.unit"`` when they
        differ), ``replicated`` only when both are; *not resolved* without an interval when either side has none.

    Raises:
        ValueError: a bad question (as :func:`verdict`), or a side that is a non-inferiority verdict.
    """
    _check_question(expected, alpha, 0.0, "superiority")
    for side, v in (("a", a), ("b", b)):
        if v.kind != "superiority":
            raise ValueError(f"difference_verdict compares effects; side {side} is a {v.kind} verdict")
    unit = a.unit if a.unit == b.unit else f"{a.unit} / {b.unit}"
    q = {"alpha": float(alpha), "kind": "superiority", "margin": 0.0, "expected": int(expected), "unit": unit,
         "replicated": bool(a.replicated and b.replicated)}
    estimate = a.estimate - b.estimate
    n, n_units, n_groups = a.n + b.n, a.n_units + b.n_units, a.n_groups + b.n_groups
    (se_a, df_a), (se_b, df_b) = standard_error(a), standard_error(b)
    if not (math.isfinite(se_a) and math.isfinite(se_b)):
        return _no_interval(estimate, n, n_units, n_groups, f"{what}: a side without an interval, no test", **q)
    se = math.hypot(se_a, se_b)
    den = se_a ** 4 / df_a + se_b ** 4 / df_b
    df = se ** 4 / den if den > 0 else math.inf
    if math.isfinite(df):
        half = float(special.stdtrit(df, 1 - alpha / 2)) * se
        p = float(2 * special.stdtr(df, -abs(estimate) / se))
        method = f"{what}: Welch interval from the two intervals (df {df:.1f})"
    else:
        half = float(stats.norm.ppf(1 - alpha / 2)) * se
        p = float(2 * stats.norm.sf(abs(estimate) / se))
        method = f"{what}: normal interval from the two intervals"
    lo, hi = estimate - half, estimate + half
    return Verdict(_label(lo, hi, 0.0, expected), float(estimate), lo, hi, p, n, n_units, n_groups, float(df),
                   min_detectable_effect(se, df, alpha), float(alpha), "superiority", 0.0, int(expected), unit, "",
                   method, q["replicated"])


def nested_verdict(per_replicate, *, unit: str, **question) -> Verdict:
    """:func:`verdict` of a nested design given as one array of differences per pre-training replicate (pair r:
    treatment run r against control run r; e.g. [N_r] per-image differences of replicate r): the interval is over
    the replicate means (df = R - 1), the ``unit`` s nested in them. ``question``: ``expected``, ``alpha``,
    ``margin``, ``kind`` as for :func:`verdict`.

    Raises:
        ValueError: as :func:`verdict` (e.g. NaN differences).
    """
    arrays = [_as_vector(d, "differences") for d in per_replicate]
    groups = np.repeat(np.arange(len(arrays)), [a.size for a in arrays])
    return verdict(np.concatenate(arrays) if arrays else np.zeros(0), groups=groups, unit=unit, **question)


def per_replicate(value, what: str, noun: str = "frame") -> list:
    """A claim function's input as a list with one element per pre-training replicate (pair): ``value`` itself when
    it is a list or tuple, else ``[value]`` (one replicate, as before replication).

    Args:
        value: one per-replicate input (a frame, a probe dict) or a list of them.
        what: the calling function's name, for the error; noun: what one element is (``"frame"``, ``"probes"``).

    Raises:
        ValueError: an empty list, naming ``what`` and ``noun``.
    """
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValueError(f"{what}: no {noun}; give one per pre-training replicate")
    return values


def conditional_verdict(differences, *, unit: str, **question) -> Verdict:
    """:func:`verdict` over ``unit`` s (fine-tuning seeds, test images, k-means seeds) of ONE pre-training run per
    arm: the analysis conditional on these particular pre-trained networks (``replicated=False``), also when no
    difference came in. ``question``: ``expected``, ``alpha``, ``margin``, ``kind`` as for :func:`verdict`."""
    d = _as_vector(differences, "differences")
    if d.size == 0:
        return dataclasses.replace(verdict(d, unit=unit, **question), replicated=False)
    return verdict(d, groups=np.zeros(d.size, int), unit=unit, **question)


# ----------------------------------------------------------------------------------------------------------------
# a prediction bound (choosing a schedule on val for a regime that the test split must meet; issue 17)
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PredictionBound:
    """:func:`prediction_lower_bound`'s result; every value in the units of the replicate values."""

    mean: float  #: mean of the R replicate values (val split)
    replicate_sd: float  #: their standard deviation (ddof 1)
    image_sd: float  #: the image-resampling standard deviation of ``mean`` (as given)
    se: float  #: standard deviation of (new mean - this mean): sqrt(2 replicate_sd^2 / R + 2 image_sd^2)
    df: float  #: Welch-Satterthwaite degrees of freedom of ``se`` (the image part counted as known)
    margin: float  #: t_{1-alpha, df} * se
    bound: float  #: mean - margin
    n_replicates: int
    alpha: float


def prediction_lower_bound(replicate_values, image_sd: float, *, alpha: float = 0.05) -> PredictionBound:
    """One-sided ``1 - alpha`` lower prediction bound for the mean of R NEW runs evaluated on a NEW, equally large
    set of images, from R runs evaluated on a validation set: how low a test-split mean can plausibly fall when the
    val-split mean is what was seen (Hahn and Meeker 1991, ch. 4, prediction of a future mean, with the
    evaluation images as a second variance component).

    The test-split mean differs from the val-split mean by fresh fine-tuning noise (the test runs train again) and
    by a fresh draw of images, both on each side: ``Var = 2 s_rep^2 / R + 2 s_img^2``. ``s_rep`` (from the R
    values) also holds the pre-training runs' spread, which val and test share when the test runs start from the
    same pre-trainings: counting it is conservative. ``s_img`` comes from an image bootstrap of a val split of a
    few hundred images, estimated with far more degrees of freedom than the R - 1 of ``s_rep``, so it is treated
    as known (with 200 images, giving it 199 df instead moves the bound by a few hundredths). The quantile is Student's with Welch-Satterthwaite df ``Var^2 / ((2 s_rep^2 / R)^2 / (R -
    1))``: with ``s_img = 0`` it is the classical ``t_{R-1}`` prediction bound; the coverage is checked by
    simulation in ``tests/test_stats.py``.

    Args:
        replicate_values: [R] one value per run (e.g. val mAP@0.5 of each pre-training replicate's fine-tuning).
        image_sd: standard deviation of the mean over image resamples of the val set (>= 0, same units).
        alpha: one-sided level.

    Returns:
        :class:`PredictionBound`.

    Raises:
        ValueError: fewer than 2 values (no spread to measure), non-finite values, a negative or non-finite
            ``image_sd``, ``alpha`` outside (0, 0.5).
    """
    x = _as_vector(replicate_values, "replicate_values")
    if x.size < 2:
        raise ValueError(f"a prediction bound needs at least 2 replicate values to measure their spread, got {x.size}")
    if not (math.isfinite(image_sd) and image_sd >= 0):
        raise ValueError(f"image_sd must be a finite number >= 0, got {image_sd!r}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
    r = x.size
    s_rep = float(x.std(ddof=1))
    rep_part = 2 * s_rep**2 / r
    var = rep_part + 2 * float(image_sd) ** 2
    df = math.inf if rep_part == 0 else var**2 / (rep_part**2 / (r - 1))
    se = math.sqrt(var)
    q = float(stats.norm.ppf(1 - alpha)) if math.isinf(df) else float(special.stdtrit(df, 1 - alpha))
    mean = float(x.mean())
    return PredictionBound(mean, s_rep, float(image_sd), se, float(df), q * se, mean - q * se, int(r), float(alpha))
