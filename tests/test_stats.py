"""The verdict rule (detpretrain.analysis.stats): error rates and power by simulation, hand-worked cases, bad input.

The simulations use fixed seeds, so each rate below is one deterministic number; the tolerances are about three Monte
Carlo standard errors (sqrt(p (1 - p) / n_sim)) around the nominal value, so a correct rule passes and a rule that is
off by a few percentage points fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from detpretrain.analysis import stats as S
from detpretrain.analysis import claims as C

ALPHA = 0.05
N_SIM = 4000


def _mc_tol(p: float, n_sim: int = N_SIM) -> float:
    return 3 * math.sqrt(p * (1 - p) / n_sim)


def _rates(verdicts) -> dict[str, float]:
    labels = [v.label for v in verdicts]
    return {lab: labels.count(lab) / len(labels) for lab in S.LABELS}


# ---------------------------------------------------------------------------------------------------------------
# (1) flat design under the null
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 5, 10])
def test_flat_null_false_holds_rate_is_at_most_alpha(n):
    rng = np.random.default_rng(100 + n)
    data = rng.normal(0.0, 2.0, size=(N_SIM, n))
    rates = _rates(S.verdict(row, unit="fine-tuning seed") for row in data)
    # one-sided: a false "holds" has probability alpha / 2; any verdict (holds or reversed) alpha
    assert rates["holds"] <= ALPHA / 2 + _mc_tol(ALPHA / 2)
    assert abs(rates["holds"] + rates["reversed"] - ALPHA) <= _mc_tol(ALPHA)


def test_flat_null_with_expected_negative_direction():
    rng = np.random.default_rng(7)
    rates = _rates(S.verdict(row, expected=-1) for row in rng.normal(0.0, 1.0, size=(N_SIM, 4)))
    assert rates["holds"] <= ALPHA / 2 + _mc_tol(ALPHA / 2)


# ---------------------------------------------------------------------------------------------------------------
# (2) nested design under the null: 3 pre-training runs x 3 fine-tuning seeds, large between-run variance
# ---------------------------------------------------------------------------------------------------------------
def _nested(rng, n_sim, n_groups=3, n_seeds=3, sd_between=2.0, sd_within=0.5, effect=0.0):
    between = rng.normal(0.0, sd_between, size=(n_sim, n_groups, 1))
    within = rng.normal(0.0, sd_within, size=(n_sim, n_groups, n_seeds))
    return (effect + between + within).reshape(n_sim, -1), np.repeat(np.arange(n_groups), n_seeds)


def test_nested_null_keeps_alpha_where_naive_analyses_do_not():
    rng = np.random.default_rng(2019)
    data, groups = _nested(rng, N_SIM)
    nested = _rates(S.verdict(row, groups=groups, unit="fine-tuning") for row in data)
    naive_flat = _rates(S.verdict(row, unit="fine-tuning") for row in data)  # ignores the runs: 9 "replicates"
    n_boot_sims = 1000
    naive_boot = _rates(S.paired_bootstrap(row, np.zeros_like(row), groups=groups, n_boot=200, seed=i)
                        for i, row in enumerate(data[:n_boot_sims]))
    # the t-interval on the 3 run means: exact
    assert nested["holds"] <= ALPHA / 2 + _mc_tol(ALPHA / 2)
    assert abs(nested["holds"] + nested["reversed"] - ALPHA) <= _mc_tol(ALPHA)
    # the contrast, which is the point: both naive analyses claim "holds" several times too often
    assert naive_flat["holds"] > 4 * ALPHA / 2, naive_flat
    assert naive_boot["holds"] > 3 * ALPHA / 2, naive_boot
    print(f"false holds (nominal {ALPHA / 2}): nested t {nested['holds']:.3f}, naive flat t {naive_flat['holds']:.3f},"
          f" cluster bootstrap over 3 runs {naive_boot['holds']:.3f}")


def test_nested_null_with_unbalanced_groups():
    rng = np.random.default_rng(5)
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    data = rng.normal(0, 1.5, size=(N_SIM, 4))[:, groups] + rng.normal(0, 0.3, size=(N_SIM, groups.size))
    rates = _rates(S.verdict(row, groups=groups) for row in data)
    assert rates["holds"] <= ALPHA / 2 + _mc_tol(ALPHA / 2)


# ---------------------------------------------------------------------------------------------------------------
# (3) power at the minimum detectable effect
# ---------------------------------------------------------------------------------------------------------------
def test_flat_power_at_mde_is_nominal():
    n, sd = 5, 2.0
    effect = S.min_detectable_effect(sd / math.sqrt(n), n - 1, ALPHA)
    rng = np.random.default_rng(11)
    rates = _rates(S.verdict(row) for row in rng.normal(effect, sd, size=(N_SIM, n)))
    assert abs(rates["holds"] - S.POWER) <= _mc_tol(S.POWER), rates


def test_nested_power_at_mde_is_nominal():
    g, k, sb, sw = 3, 3, 1.0, 0.6
    se_true = math.sqrt((sb**2 + sw**2 / k) / g)  # standard error of the mean of the 3 run means
    effect = S.min_detectable_effect(se_true, g - 1, ALPHA)
    data, groups = _nested(np.random.default_rng(12), N_SIM, g, k, sb, sw, effect)
    verdicts = [S.verdict(row, groups=groups) for row in data]
    assert abs(_rates(verdicts)["holds"] - S.POWER) <= _mc_tol(S.POWER)
    # the reported mde is the same formula at the observed SE: its median is near the true one
    assert 0.6 < np.median([v.mde for v in verdicts]) / effect < 1.1


def test_mde_matches_noncentral_t_and_exceeds_the_shortcut_at_small_df():
    for df in (2, 4, 20):
        crit = sps.t.ppf(1 - ALPHA / 2, df)
        ncp = S.min_detectable_effect(1.0, df, ALPHA)
        assert sps.nct.sf(crit, df, ncp) == pytest.approx(S.POWER, abs=1e-6)
        shortcut = crit + sps.t.ppf(S.POWER, df)  # (t_{1-alpha/2} + t_{power}) SE: too small at small df
        assert ncp > shortcut + 0.01 if df <= 4 else ncp == pytest.approx(shortcut, abs=0.01)
    assert math.isnan(S.min_detectable_effect(0.0, 2)) and math.isnan(S.min_detectable_effect(1.0, 0))


# ---------------------------------------------------------------------------------------------------------------
# (4) non-inferiority at the margin
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("expected", [1, -1])
def test_noninferiority_false_holds_at_the_margin(expected):
    margin, n = 1.0, 5
    rng = np.random.default_rng(13 + expected)
    data = rng.normal(-margin * expected, 1.5, size=(N_SIM, n))
    rates = _rates(S.verdict(row, kind="noninferiority", margin=margin, expected=expected) for row in data)
    assert rates["holds"] <= ALPHA / 2 + _mc_tol(ALPHA / 2)
    # and it has the power to show it when the true difference is 0 and the spread small
    ok = S.verdict(np.random.default_rng(1).normal(0, 0.2, 5), kind="noninferiority", margin=margin,
                   expected=expected)
    assert ok.label == "holds" and "non-inferior" in ok.sentence("top-1 points")
    bad = S.verdict([-3.0, -3.1, -2.9, -3.2], kind="noninferiority", margin=1.0)
    assert bad.label == "reversed" and "inferior by more than the margin" in bad.sentence("top-1")


# ---------------------------------------------------------------------------------------------------------------
# (5) hand-computed intervals
# ---------------------------------------------------------------------------------------------------------------
def test_flat_interval_by_hand():
    d = np.array([2.0, 2.5, 3.0])  # mean 2.5, sd 0.5
    v = S.verdict(d, unit="fine-tuning seed")
    half = sps.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((2.5, 2.5 - half, 2.5 + half))
    assert v.p_value == pytest.approx(sps.ttest_1samp(d, 0.0).pvalue)
    assert (v.label, v.n, v.df, v.unit, v.replicated) == ("holds", 3, 2.0, "fine-tuning seed", True)
    wide = S.verdict([1.0, 2.0, 4.0])  # mean 7/3, variance 7/3
    assert wide.ci_low == pytest.approx(7 / 3 - sps.t.ppf(0.975, 2) * math.sqrt(7 / 9))
    assert wide.label == "not resolved"
    assert S.verdict(-d, expected=-1).label == "holds" and S.verdict(-d).label == "reversed"


def test_nested_interval_by_hand_uses_run_means():
    d = [1.0, 2.0, 3.0, 2.0, 3.0, 4.0, 3.0, 4.0, 5.0]
    runs = ["r1"] * 3 + ["r2"] * 3 + ["r3"] * 3  # run means 2, 3, 4
    v = S.verdict(d, groups=runs, unit="fine-tuning")
    half = sps.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (v.estimate, v.ci_low, v.ci_high) == pytest.approx((3.0, 3.0 - half, 3.0 + half))
    assert (v.n, v.n_units, v.n_groups, v.df, v.unit, v.subunit) == (3, 9, 3, 2.0, "pre-training run", "fine-tuning")
    s = v.sentence("mAP@0.7")
    assert s.startswith("+3.0 mAP@0.7 (95 % CI +0.5 to +5.5; t-interval over 3 pre-training runs, 3 fine-tunings each")
    assert s.endswith("— holds")
    # unbalanced: each run counts once (means 1.5 and 4)
    u = S.verdict([1.0, 2.0, 4.0], groups=["a", "a", "b"])
    assert u.estimate == pytest.approx(2.75) and u.df == 1.0
    assert "t-interval over 2 pre-training runs, 3 units in all (df 1)" in u.method


def test_one_pretraining_run_is_unreplicated():
    d, one_run = [2.0, 2.5, 3.0], ["run0"] * 3
    v = S.verdict(d, groups=one_run)
    assert (v.label, v.n, v.unit, v.replicated) == ("not resolved", 1, "pre-training run", False)
    assert math.isnan(v.ci_low) and "n = 1" in v.method
    c = S.verdict(d, groups=one_run, unit="fine-tuning seed")  # asked for explicitly: conditional on this network
    assert (c.label, c.n, c.unit, c.replicated, c.df) == ("holds", 3, "fine-tuning seed", False, 2.0)
    assert c.ci_low == pytest.approx(S.verdict(d).ci_low)
    # as a claim about pre-training it is not resolved: the interval leaves out the spread between pre-training runs
    assert (c.claim_label, c.shown_label) == (
        "not resolved", "not resolved (not replicated over pre-training runs; these networks alone: holds)")
    assert c.sentence("mAP").endswith(
        "— not resolved (not replicated over pre-training runs); for these particular networks alone: holds")
    r = S.verdict(d, groups=["r0", "r1", "r2"])
    assert r.replicated and r.label == r.claim_label == r.shown_label == "holds"


def test_degenerate_inputs_never_hold():
    for d in ([], [5.0], [1.0, 1.0, 1.0], [0.0, 0.0]):
        v = S.verdict(d, unit="fine-tuning seed")
        assert v.label == "not resolved" and math.isnan(v.p_value) and math.isnan(v.mde)
        assert isinstance(v.sentence("mAP"), str)
    zero = S.verdict([1.0, 1.0, 1.0])
    assert (zero.ci_low, zero.ci_high) == (1.0, 1.0) and "zero spread" in zero.method
    # one number computed three times with float32 rounding is not three replicates: no p of 1e-24, no "holds"
    copies = S.verdict([50.0, float(np.float32(50.0) + np.float32(3e-6)), 50.0 - 2e-6])
    assert copies.label == "not resolved" and "zero spread" in copies.method and math.isnan(copies.p_value)
    assert S.verdict([50.0, 50.1, 49.95]).label == "holds"  # a real, small spread still gives an interval
    assert math.isnan(S.verdict([]).estimate)


# ---------------------------------------------------------------------------------------------------------------
# (6) McNemar and the paired bootstrap
# ---------------------------------------------------------------------------------------------------------------
def _pairs(both, a_only, b_only, neither):
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return np.array(a, bool), np.array(b, bool)


def test_mcnemar_against_hand_computed_binomial():
    a, b = _pairs(10, 8, 2, 5)  # 25 images, 10 discordant: 8 for A, 2 for B
    v = S.mcnemar(a, b)
    assert v.p_value == pytest.approx(2 * (1 + 10 + 45) / 2**10)  # 2 P(X <= 2), X ~ Bin(10, 1/2)
    assert v.estimate == pytest.approx(100 * 6 / 25) and v.label == "not resolved" and v.n == 25
    ci = sps.binomtest(8, 10).proportion_ci(0.95, method="exact")
    assert (v.ci_low, v.ci_high) == pytest.approx((100 * 10 / 25 * (2 * ci.low - 1), 100 * 10 / 25 * (2 * ci.high - 1)))
    w = S.mcnemar(*_pairs(10, 9, 1, 5))
    assert w.p_value == pytest.approx(2 * (1 + 10) / 2**10) and w.label == "holds" and w.ci_low > 0
    assert S.mcnemar(*_pairs(10, 1, 9, 5)).label == "reversed"
    assert S.mcnemar(*_pairs(10, 1, 9, 5), expected=-1).label == "holds"
    same = S.mcnemar(*_pairs(5, 0, 0, 5))
    assert same.label == "not resolved" and same.estimate == 0.0


def test_paired_bootstrap_mean_and_custom_statistic():
    rng = np.random.default_rng(3)
    a = rng.normal(1.0, 1.0, 300)
    b = a - 0.5 + rng.normal(0, 0.5, 300)
    v = S.paired_bootstrap(a, b, n_boot=2000, seed=1)
    t = S.verdict(a - b)
    assert v.estimate == pytest.approx(t.estimate) and v.label == "holds" == t.label
    assert v.ci_low == pytest.approx(t.ci_low, abs=0.03) and v.ci_high == pytest.approx(t.ci_high, abs=0.03)
    again = S.paired_bootstrap(a, b, n_boot=2000, seed=1)
    assert again == v  # seeded
    med = S.paired_bootstrap(a, b, statistic=lambda x: float(np.median(x)), n_boot=200)
    assert med.estimate == pytest.approx(np.median(a) - np.median(b))
    grouped = S.paired_bootstrap(a, b, groups=np.repeat([0, 1, 2, 3], [60, 70, 80, 90]), n_boot=200)
    assert (grouped.unit, grouped.n, grouped.n_units) == ("pre-training run", 4, 300)


# ---------------------------------------------------------------------------------------------------------------
# (7) Holm and the claims table
# ---------------------------------------------------------------------------------------------------------------
def test_holm_on_a_hand_worked_example():
    # Wikipedia's example: p = 0.01, 0.04, 0.03, 0.005. Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1:
    # 0.02, 0.03, 0.06, 0.04 -> running maximum 0.02, 0.03, 0.06, 0.06; at 0.05 H4 and H1 are rejected, not H3, H2.
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    adj = S.holm([0.04, float("nan"), 0.001])  # a claim without a test still counts in m
    assert adj[0] == pytest.approx(0.08) and adj[2] == pytest.approx(0.003) and math.isnan(adj[1])
    p = np.random.default_rng(0).random(12)
    adj = S.holm(p)
    assert np.all(adj >= p) and np.all(np.diff(adj[np.argsort(p)]) >= 0)


def test_claims_table_primary_unadjusted_secondaries_holm():
    primary = S.verdict([2.0, 2.5, 3.0])  # p 0.013
    claims = {"secondary A": S.verdict([2.0, 2.8, 3.6]), "primary": primary,  # p 0.026
              "secondary B": S.verdict([1.0, 1.6, 2.2]), "unresolved": S.verdict([0.5, -0.5, 0.2])}
    table = S.claims_table(claims, primary="primary")
    assert list(table["claim"]) == ["primary", "secondary A", "secondary B", "unresolved"]
    row = table.set_index("claim")
    assert row.loc["primary", "p_holm"] == pytest.approx(primary.p_value) and row.loc["primary", "label"] == "holds"
    raw = [claims[k].p_value for k in ("secondary A", "secondary B", "unresolved")]
    assert list(row.loc[["secondary A", "secondary B", "unresolved"], "p_holm"]) == pytest.approx(list(S.holm(raw)))
    # secondary A alone would hold (p 0.026), but 3 x 0.026 > 0.05 after adjustment
    assert row.loc["secondary A", "label before adjustment"] == "holds"
    assert row.loc["secondary A", "label"] == "not resolved"
    adjusted = S.adjust_claims(claims, "primary")
    assert "Holm-adjusted p" in adjusted["secondary A"].sentence("mAP")
    assert "primary claim" in adjusted["primary"].sentence("mAP")
    with pytest.raises(ValueError, match="primary claim 'nope'"):
        S.claims_table(claims, primary="nope")


def test_an_unreplicated_claim_is_not_resolved_in_the_claims_table_whatever_its_interval_shows():
    """One pre-training run per arm (published weights): the interval over its fine-tuning seeds excludes 0, but
    the claim about pre-training is not resolved; the table says what the interval shows about these networks."""
    one_run = S.conditional_verdict([2.0, 2.5, 3.0], unit="fine-tuning seed")  # p 0.013: holds for these networks
    replicated = S.verdict([2.0, 2.5, 3.0], groups=["r0", "r1", "r2"])
    table = S.claims_table({"primary": one_run, "other": replicated, "one run too": one_run}, primary="primary")
    row = table.set_index("claim")
    assert one_run.label == "holds" and not one_run.replicated
    assert row.loc["primary", "label"] == "not resolved"
    assert row.loc["primary", "shown label"] == (
        "not resolved (not replicated over pre-training runs; these networks alone: holds)")
    assert row.loc["other", "label"] == row.loc["other", "shown label"] == "holds"  # p 0.013 x 2 < 0.05
    assert row.loc["one run too", "label"] == "not resolved"
    frame = C.claims_frame({"primary": one_run, "other": replicated}, "primary").set_index("claim")
    assert frame.loc["primary", "label"].startswith("not resolved (") and frame.loc["other", "label"] == "holds"
    assert {"95% CI low (unadjusted)", "95% CI high (unadjusted)"} <= set(frame.columns)  # Holm adjusts p only
    overview = C.claim_row("detection", one_run)
    assert overview["label"].startswith("not resolved (") and "these networks alone: holds" in overview["label"]
    answer = C.answer("detection", one_run)
    assert "**not resolved (not replicated over pre-training runs); for these particular networks alone: holds**" in (
        answer)


# ---------------------------------------------------------------------------------------------------------------
# (8) bad input
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: S.verdict([1.0, float("nan"), 2.0]), "NaN/inf value.*position 1"),
    (lambda: S.verdict([1.0, 2.0], groups=[0]), "one entry per difference"),
    (lambda: S.verdict([1.0, 2.0], groups=[0, None]), "missing value at position 1"),
    (lambda: S.verdict([1.0, 2.0], groups=[[0, 1]]), "groups must be 1-D"),
    (lambda: S.verdict([[1.0, 2.0]]), "must be 1-D"),
    (lambda: S.verdict(["a", "b"]), "must be numbers"),
    (lambda: S.verdict([1.0, 2.0], kind="equivalence"), "kind must be one of"),
    (lambda: S.verdict([1.0, 2.0], expected=0), "expected must be"),
    (lambda: S.verdict([1.0, 2.0], alpha=1.5), "alpha must lie"),
    (lambda: S.verdict([1.0, 2.0], kind="noninferiority"), "needs a finite margin"),
    (lambda: S.verdict([1.0, 2.0], margin=1.0), "is for kind='noninferiority'"),
    (lambda: S.mcnemar([1, 0], [1]), "same images"),
    (lambda: S.mcnemar([1, 2], [1, 0]), "per-image correctness"),
    (lambda: S.paired_bootstrap([1.0, 2.0], [1.0]), "same images"),
    (lambda: S.paired_bootstrap([1.0, 2.0], [1.0, 2.0], n_boot=10), "n_boot"),
    (lambda: S.holm([0.5, 1.2]), r"\[0, 1\]"),
    (lambda: S.percentile_p_value([1.0]), "at least 2 resampled values"),
    (lambda: S.percentile_p_value([1.0, float("nan")]), "NaN/inf"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_verdict_row_and_sentence_carry_estimate_interval_unit_and_n():
    v = S.verdict([2.0, 2.5, 3.0], unit="fine-tuning seed")
    s = v.sentence("mAP@0.7", unit_label="seed")
    assert s.startswith("+2.5 mAP@0.7 (95 % CI +1.3 to +3.7; t-interval over 3 seeds") and "80 % power" in s
    row = v.as_row()
    assert {"estimate", "ci_low", "ci_high", "n", "unit", "p", "mde", "label"} <= set(row)


def test_adjust_claims_without_a_measured_primary_promotes_nothing():
    verdict, adjust_claims = S.verdict, S.adjust_claims
    from detpretrain.analysis.claims import declared_primary

    claims = {"a": verdict(np.array([5.0, 5.1, 4.9, 5.2])), "b": verdict(np.array([0.1, -0.2, 0.3, 0.0]))}
    out = adjust_claims(claims, None)
    assert [v.role for v in out.values()] == ["secondary", "secondary"] and list(out) == ["a", "b"]
    assert out["a"].p_adjusted == pytest.approx(min(1.0, 2 * claims["a"].p_value))  # Holm over both
    assert declared_primary("visualisations", claims) is None
    name = "part enrichment, IMAGENET-CLS minus COCO (channel mean)"
    assert declared_primary("visualisations", {name: claims["a"]}) == name
    with pytest.raises(ValueError, match="not among the claims"):
        adjust_claims(claims, "c")


# ---------------------------------------------------------------------------------------------------------------
# difference of two independent verdicts (one claim under two corpus cues)
# ---------------------------------------------------------------------------------------------------------------
def test_difference_verdict_is_welchs_test_on_the_replicates():
    rng = np.random.default_rng(47)
    a, b = rng.normal(2.0, 1.0, 3), rng.normal(0.0, 2.5, 4)
    d = S.difference_verdict(S.verdict(a), S.verdict(b))
    ref = sps.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval()
    assert d.estimate == pytest.approx(a.mean() - b.mean())
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert d.df == pytest.approx(ref.df, rel=1e-9)
    assert (d.n, d.unit, d.replicated) == (7, "unit", True)


@pytest.mark.parametrize("sd_b", [1.0, 3.0])
def test_difference_verdict_null_rate_with_three_runs_per_side(sd_b):
    rng = np.random.default_rng(int(10 * sd_b))
    a, b = rng.normal(1.0, 1.0, (N_SIM, 3)), rng.normal(1.0, sd_b, (N_SIM, 3))
    rates = _rates(S.difference_verdict(S.verdict(x), S.verdict(y)) for x, y in zip(a, b))
    assert rates["holds"] <= ALPHA / 2 + _mc_tol(ALPHA / 2)
    assert rates["holds"] + rates["reversed"] <= ALPHA + _mc_tol(ALPHA)


def test_difference_verdict_detects_a_large_difference_and_its_direction():
    rng = np.random.default_rng(5)
    big, small = S.verdict(rng.normal(10.0, 1.0, 5)), S.verdict(rng.normal(0.0, 1.0, 5))
    assert S.difference_verdict(big, small).label == "holds"
    assert S.difference_verdict(big, small, expected=-1).label == "reversed"
    assert S.difference_verdict(small, big).label == "reversed"


def test_difference_verdict_from_bootstrap_intervals_uses_the_normal_approximation():
    # two percentile-style intervals with known half-widths: se = half / z, combined as sqrt(se_a^2 + se_b^2)
    z = sps.norm.ppf(0.975)
    a = S.replicates_verdict(3.0, np.random.default_rng(0).normal(3.0, 1.0, 20000), n=50, unit="image", method="m")
    b = S.replicates_verdict(1.0, np.random.default_rng(1).normal(1.0, 2.0, 20000), n=60, unit="image", method="m",
                             replicated=False)
    d = S.difference_verdict(a, b)
    se = math.hypot((a.ci_high - a.ci_low) / (2 * z), (b.ci_high - b.ci_low) / (2 * z))
    assert math.isinf(d.df)
    assert (d.ci_low, d.ci_high) == pytest.approx((2.0 - z * se, 2.0 + z * se))
    assert se == pytest.approx(math.sqrt(5), rel=0.03)
    assert d.replicated is False and d.unit == "image" and d.n == 110


def test_difference_verdict_without_an_interval_is_not_resolved_and_bad_kinds_are_named():
    one = S.verdict([1.0])
    d = S.difference_verdict(one, S.verdict([0.0, 1.0, 2.0]))
    assert d.label == "not resolved" and math.isnan(d.ci_low) and "without an interval" in d.method
    kept = S.verdict([0.1, 0.2, 0.3], kind="noninferiority", margin=1.0)
    with pytest.raises(ValueError, match="noninferiority"):
        S.difference_verdict(kept, one)


def test_nested_verdict_equals_verdict_with_group_labels():
    per = [np.array([1.0, 2.0, 3.0]), np.array([0.5]), np.array([2.0, 2.5])]
    flat = np.concatenate(per)
    assert S.nested_verdict(per, unit="image") == S.verdict(flat, groups=[0, 0, 0, 1, 2, 2], unit="image")
    with pytest.raises(ValueError):
        S.nested_verdict([np.array([1.0, np.nan]), np.array([1.0])], unit="image")


# ----------------------------------------------------------------------------------------------------------------
# prediction_lower_bound: the val -> test rule of the schedule selection
# ----------------------------------------------------------------------------------------------------------------
def test_prediction_bound_known_values():
    # no image noise: the classical t_{R-1} prediction bound of a future mean of R runs
    x = [60.5, 64.9, 63.4]
    b = S.prediction_lower_bound(x, 0.0)
    s = np.std(x, ddof=1)
    assert b.mean == pytest.approx(np.mean(x)) and b.replicate_sd == pytest.approx(s)
    assert b.df == pytest.approx(2.0)
    assert b.se == pytest.approx(s * math.sqrt(2 / 3))
    assert b.bound == pytest.approx(np.mean(x) - sps.t.ppf(0.95, 2) * s * math.sqrt(2 / 3))
    # image noise adds a known-variance part: more df, a wider se
    c = S.prediction_lower_bound(x, 2.0)
    rep = 2 * s**2 / 3
    assert c.se == pytest.approx(math.sqrt(rep + 8.0))
    assert c.df == pytest.approx((rep + 8.0) ** 2 / (rep**2 / 2))
    assert c.margin == pytest.approx(sps.t.ppf(0.95, c.df) * c.se)
    # identical runs: only the image part, normal quantile
    d = S.prediction_lower_bound([61.0, 61.0, 61.0], 1.5)
    assert math.isinf(d.df) and d.bound == pytest.approx(61.0 - sps.norm.ppf(0.95) * 1.5 * math.sqrt(2))


def test_prediction_bound_rejects_what_it_cannot_use():
    with pytest.raises(ValueError, match="at least 2 replicate values"):
        S.prediction_lower_bound([60.0], 1.0)
    with pytest.raises(ValueError, match="image_sd"):
        S.prediction_lower_bound([60.0, 61.0], -1.0)
    with pytest.raises(ValueError, match="NaN"):
        S.prediction_lower_bound([60.0, math.nan], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        S.prediction_lower_bound([60.0, 61.0], 1.0, alpha=0.7)


@pytest.mark.parametrize("sd_pre, sd_ft, sd_img", [(0.0, 2.0, 0.0), (0.0, 2.0, 2.0), (0.0, 1.0, 2.5),
                                                   (1.5, 2.0, 1.5)])
def test_prediction_bound_coverage_by_simulation(sd_pre, sd_ft, sd_img):
    """R = 3 pre-training runs, each fine-tuned once on val and once more on test; each split is its own draw of
    images (a shift shared by the runs evaluated on it). The bound must fall below the test mean in >= 95 % of
    worlds (about 95 % when the pre-training spread is 0, more when val and test share it), while the old rule
    (the val mean itself) misses half the time."""
    rng = np.random.default_rng(17)
    sims, r = 4000, 3
    pre = rng.normal(0, sd_pre, (sims, r))
    val = 60 + pre + rng.normal(0, sd_ft, (sims, r)) + rng.normal(0, sd_img, (sims, 1))
    test_mean = (60 + pre + rng.normal(0, sd_ft, (sims, r)) + rng.normal(0, sd_img, (sims, 1))).mean(axis=1)
    below = np.array([S.prediction_lower_bound(v, sd_img).bound <= t for v, t in zip(val, test_mean)])
    coverage = below.mean()
    assert coverage >= 0.94
    if sd_pre == 0:
        assert coverage <= 0.965  # not vacuous: close to the nominal level
    assert 0.45 <= (val.mean(axis=1) <= test_mean).mean() <= 0.55


# ---------------------------------------------------------------------------------------------------------------
# the bootstrap p-value is the dual of its percentile interval; secondary claims' mde at Holm's level
# ---------------------------------------------------------------------------------------------------------------
def test_bootstrap_p_value_is_the_exact_dual_of_the_percentile_interval():
    rng = np.random.default_rng(1)
    for trial in range(400):
        theta = rng.normal(rng.normal(0, 1.5), 1.0, int(rng.integers(100, 2500)))
        if trial % 4 == 0:
            theta = np.round(theta, 1)  # ties, and resamples exactly at the null
        p = S.percentile_p_value(theta, 0.0)
        for alpha in (0.05, 0.1, 0.02, p * (1 - 1e-9), p * (1 + 1e-9)):
            if not 2 / (theta.size + 1) < alpha < 1:
                continue
            lo, hi = np.quantile(theta, [alpha / 2, 1 - alpha / 2])  # the interval, computed independently
            assert (lo > 0 or hi < 0) == (p < alpha), (trial, alpha, p, lo, hi)
            v = S.replicates_verdict(float(theta.mean()), theta, n=10, unit="image", method="m", alpha=alpha)
            assert (v.label != "not resolved") == (v.p_value < alpha)
    # the case that disagreed before: 50 of 2000 resamples at or below 0 put the lower limit above 0 ("holds")
    # while the counting p-value 2 (50 + 1) / 2001 = 0.051 said otherwise
    theta = np.concatenate([-np.linspace(0.01, 1.0, 50), np.linspace(0.001, 2.0, 1950)])
    v = S.replicates_verdict(1.0, theta, n=10, unit="image", method="m")
    assert v.label == "holds" and v.ci_low > 0 and v.p_value < 0.05
    # a level finer than the resamples resolve is not claimed: all 100 resamples above 0, alpha 0.01 < 2 / 101
    v = S.replicates_verdict(1.0, np.linspace(0.5, 1.5, 100), n=10, unit="image", method="m", alpha=0.01)
    assert v.ci_low > 0 and v.p_value == pytest.approx(2 / 101) and v.label == "not resolved"
    assert "cannot resolve a level below 0.02" in v.method


def test_secondary_claims_report_the_mde_at_holms_strictest_level():
    t3 = S.verdict([2.0, 2.8, 3.6])  # df 2
    boot = S.replicates_verdict(1.0, np.random.default_rng(0).normal(1.0, 0.5, 2000), n=50, unit="image",
                                method="bootstrap")
    claims = {"primary": S.verdict([2.0, 2.5, 3.0]), "t": t3, "boot": boot, "other": S.verdict([0.5, -0.5, 0.2]),
              "fourth": S.verdict([1.0, 1.6, 2.2])}
    out = S.adjust_claims(claims, "primary")
    assert out["primary"].mde == claims["primary"].mde and math.isnan(out["primary"].mde_alpha)
    se = (t3.ci_high - t3.ci_low) / (2 * sps.t.ppf(0.975, 2))
    # independently: the noncentrality at which a two-sided t-test at alpha / 4 has 80 % power, with df 2
    crit = sps.t.ppf(1 - 0.05 / 8, 2)
    from scipy.optimize import brentq

    ncp = brentq(lambda d: sps.nct.sf(crit, 2, d) - 0.8, 0.1, 100)
    assert out["t"].mde == pytest.approx(ncp * se, rel=1e-6) and out["t"].mde_alpha == pytest.approx(0.0125)
    assert out["t"].mde / t3.mde == pytest.approx(ncp / 5.65, rel=2e-3)  # about 2x the unadjusted 5.65 SE
    z = sps.norm.ppf
    assert out["boot"].mde == pytest.approx(boot.mde * (z(1 - 0.05 / 8) + z(0.8)) / (z(0.975) + z(0.8)))
    assert "smallest detectable effect" in out["t"].sentence("mAP") and "Holm's level 0.0125" in out["t"].sentence("mAP")
    again = S.adjust_claims(out, "primary")  # adjusting adjusted claims changes nothing
    assert again["t"].mde == pytest.approx(out["t"].mde) and again["boot"].mde == pytest.approx(out["boot"].mde)
    alone = S.adjust_claims({"primary": claims["primary"], "t": t3}, "primary")  # one secondary: nothing to adjust
    assert alone["t"].mde == t3.mde and math.isnan(alone["t"].mde_alpha)


def test_an_arm_with_one_pretraining_run_against_a_replicated_one_is_not_called_replicated():
    import pandas as pd

    from detpretrain.analysis.claims import growth, paired_units, unit_verdict

    rows = [{"pretrain": "det", "replicate": r, "seed": 0, "iou": iou, "value": 60 + r + 5 * iou}
            for r in range(3) for iou in (0.5, 0.7)]
    rows += [{"pretrain": "cls", "replicate": 0, "seed": 0, "iou": iou, "value": 50.0} for iou in (0.5, 0.7)]
    frame = pd.DataFrame(rows)
    units = paired_units(frame[frame.iou == 0.5], "det", "cls")
    assert len(units) == 3 and units.attrs["single_replicate_arm"] == "cls"  # cls paired with each det replicate
    v = unit_verdict(units)
    assert v.n == 3 and not v.replicated and "arm cls has 1 pre-training run" in v.method
    assert v.label == "holds" and v.claim_label == "not resolved"  # 10+ points, but cls is one network
    assert "— not resolved (not replicated over pre-training runs); for these particular networks alone: holds" in (
        v.sentence("mAP"))
    grown = growth(paired_units(frame, "det", "cls", keys=("iou",)), 0.5, 0.7)  # a derived frame keeps the mark
    assert not unit_verdict(grown).replicated
    both = frame.assign(replicate=lambda f: np.where(f.pretrain == "cls", 0, f.replicate))
    both = pd.concat([both, both[both.pretrain == "cls"].assign(replicate=1, value=51.0),
                      both[both.pretrain == "cls"].assign(replicate=2, value=49.0)])
    units = paired_units(both[both.iou == 0.5], "det", "cls")
    assert "single_replicate_arm" not in units.attrs and unit_verdict(units).replicated


def test_sentences_print_limits_with_their_sign_and_no_zero_width_interval():
    v = S.Verdict("holds", 0.05, 0.026, 0.074, 0.01, 3, 3, 3, 2.0, 0.1)
    assert "95 % CI +0.03 to +0.07" in v.sentence("x")  # not "+0.0 to +0.1" beside "holds"
    w = S.Verdict("not resolved", 0.2, -0.004, 0.404, 0.06, 3, 3, 3, 2.0, 0.5)
    assert "95 % CI -0.004 to +0.404" in w.sentence("x")
    assert S.Verdict("holds", 2.5, 1.3, 3.7, 0.01, 3, 3, 3, 2.0, 3.0).digits_for(1) == 1
    flat = S.verdict([1.0, 1.0, 1.0])  # zero spread: no interval shown, the method says why
    assert " CI " not in flat.sentence("x") and "zero spread" in flat.sentence("x")
    ni = S.Verdict("holds", -2.0, -3.0, -0.96, 0.01, 3, 3, 3, 2.0, 0.5, kind="noninferiority", margin=1.0,
                   expected=1)  # the null value is -1: "-1.0" beside "holds" would contradict it
    assert "to -0.96" in ni.sentence("x") or "CI -3.00 to -0.96" in ni.sentence("x")
    second = S.adjust_claims({"p": S.verdict([2.0, 2.5, 3.0]), "s": S.verdict([2.0, 2.8, 3.6])}, "p")["s"]
    assert "unadjusted 95 % CI" in second.sentence("x")
    from detpretrain.analysis.claims import claim_row

    assert "95 % CI +0.03 to +0.07" in claim_row("detection", v)["here"]
    assert "no interval" in claim_row("detection", flat)["here"]
