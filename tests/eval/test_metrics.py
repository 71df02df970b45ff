"""ROC / AUC / eps_s metrics against scikit-learn, and the conventions the evaluator promises (no flipping,
interpolation, resolution flag)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sklearn.metrics as sklearn_metrics  # noqa: E402

from lgae.eval.metrics import (
    MIN_BKG_PASS,
    InvertedScoreWarning,
    ad_metrics,
    auc,
    binary_metrics,
    eps_key,
    eps_s_at_eps_b,
    interp_eps_s,
    median_iqr,
    roc_curve,
)


def _sk(b, s):
    y = np.r_[np.zeros(len(b)), np.ones(len(s))]
    x = np.r_[b, s]
    return y, x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_and_auc_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 15, 700).astype(float)  # heavy ties within and across classes
    s = rng.integers(2, 18, 300).astype(float)
    y, x = _sk(b, s)
    fpr, tpr, thr = sklearn_metrics.roc_curve(y, x, drop_intermediate=False)
    eb, es, th = roc_curve(b, s)
    np.testing.assert_allclose(eb, fpr)
    np.testing.assert_allclose(es, tpr)
    np.testing.assert_allclose(th[1:], thr[1:])
    assert auc(b, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, x), abs=1e-12)
    # the AUC is the trapezoidal area of our ROC
    assert np.trapezoid(es, eb) == pytest.approx(auc(b, s), abs=1e-12)


def test_continuous_unbalanced_classes_match_sklearn():
    rng = np.random.default_rng(3)
    b = rng.normal(0, 1, 20000)
    s = rng.normal(0.7, 1.3, 137)
    y, x = _sk(b, s)
    assert auc(b, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, x), abs=1e-12)
    fpr, tpr, _ = sklearn_metrics.roc_curve(y, x, drop_intermediate=False)
    eb, es, _ = roc_curve(b, s)
    np.testing.assert_allclose(eb, fpr)
    np.testing.assert_allclose(es, tpr)


def test_perfect_score():
    b = np.linspace(0, 1, 500)
    s = np.linspace(2, 3, 50)
    assert auc(b, s) == 1.0
    effs = eps_s_at_eps_b(b, s)
    for v in effs.values():
        assert v["eps_s"] == 1.0


def test_all_tied_scores_give_half():
    b = np.ones(100)
    s = np.ones(40)
    assert auc(b, s) == 0.5
    # the single ROC segment is the diagonal: eps_s = eps_b
    assert eps_s_at_eps_b(b, s, targets=(0.1,))["0.1"]["eps_s"] == pytest.approx(0.1)


def test_inverted_score_is_reported_as_is_with_a_warning():
    rng = np.random.default_rng(4)
    b = rng.normal(2, 0.5, 2000)
    s = rng.normal(-2, 0.5, 500)  # signal scores LOWER than background: the AE "reconstructs signal better"
    with pytest.warns(InvertedScoreWarning, match="not flipped"):
        a = auc(b, s)
    assert a < 0.01  # not max(AUC, 1 - AUC)
    y, x = _sk(b, s)
    assert a == pytest.approx(sklearn_metrics.roc_auc_score(y, x))
    with pytest.warns(InvertedScoreWarning):
        m = binary_metrics(b, s)
    assert m["auc"] == pytest.approx(a) and m["below_chance"] is True
    assert m["eps_s"]["0.01"]["eps_s"] == pytest.approx(0.0, abs=1e-12)  # from the un-flipped score
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auc(b, s, warn=False)  # silent when asked


def test_eps_s_interpolates_linearly_between_roc_vertices():
    # background 0..9 (one jet each), signal: 5 jets at 20 and 5 at 8.5
    b = np.arange(10, dtype=float)
    s = np.r_[np.full(5, 8.5), np.full(5, 20.0)]
    eb, es, _ = roc_curve(b, s)
    # vertices (0,0) -> (0,.5) [cut 20] -> (.1,.5) [9] -> (.1,1) [8.5] -> ... -> (1,1)
    assert interp_eps_s(eb, es, 0.0) == 0.5
    assert interp_eps_s(eb, es, 0.05) == 0.5
    assert interp_eps_s(eb, es, 0.1) == 1.0  # the top of a vertical segment
    # a sloped segment from ties across the classes: 10 background and 10 signal jets at 100
    b = np.r_[np.arange(90, dtype=float), np.full(10, 100.0)]
    s = np.r_[np.full(10, 200.0), np.full(10, 100.0)]
    eb, es, _ = roc_curve(b, s)
    np.testing.assert_allclose(eb[:3], [0, 0, 0.1])
    np.testing.assert_allclose(es[:3], [0, 0.5, 1.0])
    assert interp_eps_s(eb, es, 0.05) == pytest.approx(0.75)  # linear in eps_b (randomised cut at 100)
    assert interp_eps_s(eb, es, 0.02) == pytest.approx(0.6)
    # monotone, within [0, 1] everywhere
    grid = np.linspace(0, 1, 201)
    vals = np.array([interp_eps_s(eb, es, t) for t in grid])
    assert np.all(np.diff(vals) >= -1e-15)
    assert vals[0] >= 0 and vals[-1] == 1.0
    with pytest.raises(ValueError):
        interp_eps_s(eb, es, 1.5)


def test_eps_s_close_to_analytic_for_gaussians():
    from scipy.stats import norm

    rng = np.random.default_rng(5)
    b = rng.normal(0, 1, 200_000)
    s = rng.normal(1.5, 1, 50_000)
    effs = eps_s_at_eps_b(b, s)
    for t in (0.1, 0.01, 0.001):
        cut = norm.isf(t)
        expected = norm.sf(cut - 1.5)
        v = effs[eps_key(t)]
        assert v["eps_s"] == pytest.approx(expected, abs=4 * v["err_binomial"] + 0.01)


def test_resolved_flag_rule():
    rng = np.random.default_rng(6)
    s = rng.normal(1, 1, 100)
    for n_bkg in (99, 100, 999, 1000, 10000):
        b = rng.normal(0, 1, n_bkg)
        effs = eps_s_at_eps_b(b, s)
        for t in (0.1, 0.01, 0.001):
            assert effs[eps_key(t)]["resolved"] == (n_bkg * t >= MIN_BKG_PASS)
            assert effs[eps_key(t)]["n_bkg_pass"] == pytest.approx(n_bkg * t)
    assert eps_s_at_eps_b(rng.normal(size=1000), s)["0.01"]["resolved"]  # 10 jets pass: resolved
    assert not eps_s_at_eps_b(rng.normal(size=999), s)["0.01"]["resolved"]


def test_uncertainties_binomial_and_bootstrap():
    rng = np.random.default_rng(7)
    b = rng.normal(0, 1, 5000)
    s = rng.normal(1, 1, 1000)
    m = binary_metrics(b, s, n_boot=60, seed=1)
    e = m["eps_s"]["0.1"]
    assert e["err_binomial"] == pytest.approx(np.sqrt(e["eps_s"] * (1 - e["eps_s"]) / 1000))
    assert e["err"] == e["err_bootstrap"] > 0
    # bootstrap error of eps_s includes the cut's fluctuation: same order as the binomial one
    assert 0.5 * e["err_binomial"] < e["err_bootstrap"] < 3 * e["err_binomial"]
    assert 0.5 * m["auc_err_analytic"] < m["auc_err_bootstrap"] < 2 * m["auc_err_analytic"]
    m0 = binary_metrics(b, s, n_boot=0)
    assert m0["auc_err"] == m0["auc_err_analytic"] and m0["eps_s"]["0.1"]["err_bootstrap"] is None
    # deterministic given the seed
    assert (
        binary_metrics(b, s, n_boot=20, seed=3)["auc_err"]
        == binary_metrics(b, s, n_boot=20, seed=3)["auc_err"]
    )


def test_ad_metrics_per_signal_and_combined():
    rng = np.random.default_rng(8)
    b = rng.normal(0, 1, 3000)
    sig = {"top": rng.normal(2, 1, 500), "w": rng.normal(0.5, 1, 1500)}
    m = ad_metrics(b, sig)
    assert set(m["per_signal"]) == {"top", "w"}
    y, x = _sk(b, np.r_[sig["top"], sig["w"]])
    assert m["combined"]["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(y, x))
    assert m["combined"]["n_sig"] == 2000 and m["combined"]["n_bkg"] == 3000
    # the combined AUC is the n_sig-weighted mean of the per-signal AUCs (same background)
    w = (500 * m["per_signal"]["top"]["auc"] + 1500 * m["per_signal"]["w"]["auc"]) / 2000
    assert m["combined"]["auc"] == pytest.approx(w)
    single = ad_metrics(b, {"top": sig["top"]})
    assert single["combined"]["auc"] == single["per_signal"]["top"]["auc"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="NaN"):
        auc([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="no jets"):
        auc([], [1.0])
    # infinities are fine (an overflowing reconstruction error is the most anomalous)
    assert auc([0.0, 1.0], [np.inf]) == 1.0
    b, s = np.array([0.0, np.inf, np.inf]), np.array([np.inf, 1.0])
    eb, es, _ = roc_curve(b, s)  # the three jets at +inf are one tie group: one vertex
    np.testing.assert_allclose(eb, [0, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(es, [0, 0.5, 1, 1])
    y, x = _sk(np.r_[0.0, 1e308, 1e308], np.r_[1e308, 1.0])
    assert auc(b, s) == pytest.approx(sklearn_metrics.roc_auc_score(y, x))


def test_median_iqr():
    r = median_iqr([1, 2, 3, 4, np.nan, np.inf])
    assert r["median"] == 2.5 and r["n"] == 4 and r["iqr"] == pytest.approx(1.5)
    assert median_iqr([])["n"] == 0
