"""Tests of analysis.stylized on synthetic series with known answers.

Student-t (heavy tails, Hill index = nu), Gaussian (kurtosis 0), GARCH(1,1) (volatility
clustering), GJR-GARCH (leverage), i.i.d. sums (aggregational Gaussianity); lagged statistics
are compared with slow loop references, segments included.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.io import Run
from analysis.stylized import (
    FACTS,
    acf_test,
    aggregate_returns,
    autocorrelation,
    excess_kurtosis,
    facts_from_returns,
    hill_tail_index,
    kurtosis_by_aggregation,
    lagged_products,
    leverage_effect,
    pooled_returns,
    power_law_fit,
    segment_codes,
    stylized_facts,
    volume_volatility_correlation,
)
from marketsim.errors import ConfigError


def garch(n, rng, omega=1e-6, a=0.1, b=0.85, gamma=0.0):
    """GARCH(1,1) (GJR with ``gamma`` > 0: negative returns raise future variance more)."""
    z = rng.standard_normal(n)
    r = np.empty(n)
    s2 = omega / (1 - a - b - gamma / 2)
    for i in range(n):
        r[i] = math.sqrt(s2) * z[i]
        s2 = omega + (a + gamma * (r[i] < 0)) * r[i] ** 2 + b * s2
    return r


# ---------------------------------------------------------------------------- references
def ref_acf(x, L, seg):
    """Pair-normalised ACF by explicit loops."""
    x = np.asarray(x, float)
    d = x - x.mean()
    c0 = np.mean(d * d)
    out = []
    for k in range(1, L + 1):
        s, n = 0.0, 0
        for t in range(len(x) - k):
            if seg[t] == seg[t + k]:
                s += d[t] * d[t + k]
                n += 1
        out.append(s / n / c0 if n else np.nan)
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    L=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_acf_matches_loop_reference(sizes, L, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(sum(sizes))
    seg = np.repeat(np.arange(len(sizes)) * 7 + 3, sizes)  # arbitrary contiguous labels
    got = autocorrelation(x, L, seg)
    ref = ref_acf(x, L, seg)
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert got[~np.isnan(ref)] == pytest.approx(ref[~np.isnan(ref)], abs=1e-9)
    s, n = lagged_products(x, x[::-1].copy(), L, seg)
    for k in range(L + 1):
        pairs = [(t, t + k) for t in range(len(x) - k) if seg[t] == seg[t + k]]
        assert n[k] == len(pairs)
        assert s[k] == pytest.approx(sum(x[i] * x[::-1][j] for i, j in pairs), abs=1e-9)


def test_ljung_box_single_segment_is_textbook():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(500)
    a = acf_test(x, 10)
    d = x - x.mean()
    n = x.size
    rho_hat = np.array([np.sum(d[:-k] * d[k:]) for k in range(1, 11)]) / np.sum(d * d)
    q = n * (n + 2) * np.cumsum(rho_hat**2 / (n - np.arange(1, 11)))
    assert a.q_stat == pytest.approx(q, rel=1e-9)
    assert a.p_value == pytest.approx(stats.chi2.sf(q, np.arange(1, 11)))
    assert a.band[0] == pytest.approx(1.959964 / math.sqrt(n - 1), rel=1e-5)


def test_acf_white_noise_and_ar1():
    rng = np.random.default_rng(2)
    e = rng.standard_normal(20_000)
    a = acf_test(e, 20)
    assert np.all(np.abs(a.acf) < 4 / math.sqrt(e.size)) and a.p_value[-1] > 0.001
    x = np.empty_like(e)
    x[0] = e[0]
    for t in range(1, e.size):
        x[t] = 0.5 * x[t - 1] + e[t]
    r = autocorrelation(x, 3)
    assert r == pytest.approx([0.5, 0.25, 0.125], abs=0.03)
    assert acf_test(x, 3).p_value[-1] < 1e-10


def test_segments_validation():
    assert segment_codes(None, 3).tolist() == [0, 0, 0]
    assert segment_codes(["b", "b", "a"], 3).tolist() == [0, 0, 1]
    with pytest.raises(ConfigError, match="contiguous"):
        segment_codes([1, 2, 1], 3)
    with pytest.raises(ConfigError, match="one label per return"):
        segment_codes([1, 2], 3)
    with pytest.raises(ConfigError, match="NaN"):
        acf_test([1.0, np.nan, 2.0], 1)
    with pytest.raises(ConfigError, match="max_lag"):
        autocorrelation([1.0, 2.0], 0)


# ---------------------------------------------------------------------------- distribution
def test_kurtosis_gaussian_and_student():
    rng = np.random.default_rng(3)
    g = rng.standard_normal(100_000)
    assert abs(excess_kurtosis(g)) < 4 * math.sqrt(24 / g.size)
    assert excess_kurtosis(g) == pytest.approx(stats.kurtosis(g, fisher=True, bias=True))
    t = rng.standard_t(5, 100_000)  # theoretical excess kurtosis 6
    assert excess_kurtosis(t) > 2
    assert math.isnan(excess_kurtosis([1.0, 2.0]))


def test_hill_student_t3_and_pareto():
    rng = np.random.default_rng(4)
    t3 = rng.standard_t(3, 100_000)
    h = hill_tail_index(t3)  # top 5%: the t's second-order term biases alpha down ~10%
    assert h.k == 5000 and 2.5 < h.alpha < 3.3 and h.ci_low < h.alpha < h.ci_high
    h1 = hill_tail_index(t3, 0.01)
    assert h1.ci_low < 3.0 < h1.ci_high
    par = rng.pareto(2.0, 50_000) + 1.0  # exact Pareto tail, alpha = 2
    hp = hill_tail_index(par, 0.1, tail="right")
    assert hp.ci_low < 2.0 < hp.ci_high
    assert hill_tail_index(-par, 0.1, tail="left").alpha == pytest.approx(hp.alpha)
    g = hill_tail_index(rng.standard_normal(100_000))
    assert g.alpha > 4  # thin tails: large index
    with pytest.raises(ConfigError, match="tail_fraction"):
        hill_tail_index(t3, 0.0)
    with pytest.raises(ConfigError, match="tail"):
        hill_tail_index(t3, tail="up")
    assert math.isnan(hill_tail_index([1.0, 2.0]).alpha)


# ---------------------------------------------------------------------------- power law
def test_power_law_fit_exact_and_noisy():
    k = np.arange(1, 201)
    f = 0.3 * k**-0.4
    p = power_law_fit(k, f)
    # bins average f, not ln f: a pure power law comes back to within ~1e-4
    assert p.exponent == pytest.approx(0.4, abs=1e-3) and p.prefactor == pytest.approx(
        0.3, rel=1e-3
    )
    assert p.r2 == pytest.approx(1.0)
    rng = np.random.default_rng(5)
    noisy = f * np.exp(rng.normal(0, 0.1, k.size))
    pn = power_law_fit(k, noisy)
    assert abs(pn.exponent - 0.4) < 0.05  # sd over seeds ~0.011
    assert pn.ci_low < pn.exponent < pn.ci_high and pn.ci_high - pn.ci_low < 0.1
    assert math.isnan(power_law_fit([1, 2], [1.0, 0.5]).exponent)


# ---------------------------------------------------------------------------- clustering
def test_garch_volatility_clustering():
    rng = np.random.default_rng(6)
    r = garch(40_000, rng)
    a = acf_test(np.abs(r), 30)
    assert np.all(a.acf[:20] > a.band[:20])  # positive and slowly decaying
    assert a.acf[0] > a.acf[29] > 0
    assert abs(autocorrelation(r, 1)[0]) < 0.03  # returns themselves uncorrelated
    f = facts_from_returns(r, max_lag=30).set_index("name")
    assert f.loc["volatility_clustering", "passed"]
    assert f.loc["linear_autocorrelation", "passed"]
    assert f.loc["excess_kurtosis", "passed"]
    iid = facts_from_returns(rng.standard_normal(40_000), max_lag=30).set_index("name")
    assert not iid.loc["volatility_clustering", "passed"]
    assert not iid.loc["excess_kurtosis", "passed"]


def test_aggregation_reference_and_gaussianity():
    x = np.arange(10.0)
    seg = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    agg, s = aggregate_returns(x, 2, seg)
    assert agg.tolist() == [1.0, 5.0, 11.0, 15.0] and s.tolist() == [0, 0, 1, 1]
    rng = np.random.default_rng(7)
    t6 = rng.standard_t(6, 200_000)  # excess kurtosis 3; sum of m iid: 3 / m
    kt = kurtosis_by_aggregation(t6, (1, 4, 16))
    assert kt["n"].tolist() == [200_000, 50_000, 12_500]
    k = kt["kurtosis"].to_numpy()
    assert k[0] > k[1] > k[2] and k[2] < 0.6
    f = facts_from_returns(t6, scales=(1, 4, 16)).set_index("name")
    assert f.loc["aggregational_gaussianity", "passed"]
    assert f.loc["aggregational_gaussianity", "value"] == pytest.approx(k[2])


# ---------------------------------------------------------------------------- leverage, volume
def test_leverage_effect_sign():
    rng = np.random.default_rng(8)
    gjr = garch(60_000, rng, a=0.02, b=0.85, gamma=0.2)
    lev = leverage_effect(gjr, 10)
    assert lev.ci_high < 0 and np.all(lev.corr[:5] < 0)
    sym = leverage_effect(rng.standard_normal(60_000), 10)
    assert sym.ci_low < 0 < sym.ci_high
    # reference: one lag by hand
    x = gjr[:2000]
    z = (x - x.mean()) / x.std()
    w = (x**2 - np.mean(x**2)) / np.std(x**2)
    assert leverage_effect(x, 3).corr[2] == pytest.approx(np.mean(z[:-3] * w[3:]))


def test_volume_volatility():
    rng = np.random.default_rng(9)
    r = rng.standard_normal(5000)
    v = 10 * np.abs(r) + rng.exponential(5, r.size)
    c = volume_volatility_correlation(v, r)
    assert c.ci_low > 0.3 and c.n == 5000
    ind = volume_volatility_correlation(rng.exponential(5, r.size), r)
    assert ind.ci_low < 0 < ind.ci_high
    with pytest.raises(ConfigError, match="one length"):
        volume_volatility_correlation([1.0], r)


# ---------------------------------------------------------------------------- fact table
def test_fact_table_shape_and_literature():
    rng = np.random.default_rng(10)
    r = rng.standard_t(3, 20_000) * 1e-3
    f = facts_from_returns(r, volume=np.abs(r) + 1e-3 * rng.random(r.size))
    assert list(f.columns) == [
        *("name", "value", "ci_low", "ci_high", "lit_low", "lit_high", "literature"),
        *("source", "passed", "n", "detail"),
    ]
    assert set(f["name"]) == set(FACTS) - {"trade_sign_memory"}
    assert f.set_index("name").loc["tail_index", "passed"]
    assert f["source"].str.len().min() > 0
    short = facts_from_returns(r[:40], max_lag=5)
    assert not short["passed"].any()
    assert short["detail"].str.contains("too few|insufficient").all()


def _synthetic_run(seed, days=2, spd=390):
    """A hand-built Run: GARCH mid path per day, one trade per step with random sign."""
    rng = np.random.default_rng(seed)
    q, t = [], []
    step = 0
    for d in range(days):
        t0 = pd.Timestamp("2024-01-02 09:30") + pd.Timedelta(days=d)
        r = garch(spd, rng, omega=1e-8)
        mid = 100 * np.exp(np.cumsum(r)) * (1 + d)  # day d opens at a different level
        for k in range(spd):
            tm = t0 + pd.Timedelta(minutes=k)
            q.append((step, tm, "AAA", mid[k] - 0.01, mid[k] + 0.01, mid[k]))
            t.append((step, tm, "AAA", mid[k], int(rng.integers(1, 5)), int(rng.choice([-1, 1]))))
            step += 1
    quotes = pd.DataFrame(q, columns=["step", "time", "asset", "bid", "ask", "mid"])
    trades = pd.DataFrame(t, columns=["step", "time", "asset", "price", "qty", "aggressor"])
    trades["buyer"], trades["seller"] = 1, 2
    return Run(trades=trades, quotes=quotes)


def test_stylized_facts_on_runs_pooled():
    r1, r2 = _synthetic_run(11), _synthetic_run(12)
    f1 = stylized_facts(r1, horizon="1min", max_lag=20, sign_max_lag=20).set_index("name")
    assert f1.loc["excess_kurtosis", "n"] == 2 * 389  # intraday only: no overnight return
    assert "trade_sign_memory" in f1.index and not f1.loc["trade_sign_memory", "passed"]
    f2 = stylized_facts([r1, r2], horizon="5min", max_lag=10, sign_max_lag=10).set_index("name")
    assert f2.loc["excess_kurtosis", "n"] == 2 * 2 * 78
    assert "volume_volatility" in f2.index
    fd = stylized_facts([r1, r2], horizon="1D", max_lag=1, scales=(1,), sign_max_lag=5)
    assert fd.set_index("name").loc["excess_kurtosis", "n"] == 4


def _gauss_run(seed, sigma, days=3, spd=390):
    rng = np.random.default_rng(seed)
    n = days * spd
    day = np.repeat(np.arange(days), spd)
    time = (
        pd.Timestamp("2024-01-02 09:30")
        + pd.to_timedelta(day, unit="D")
        + pd.to_timedelta(np.tile(np.arange(spd), days), unit="min")
    )
    mid = 100 * np.exp(np.cumsum(rng.normal(0, sigma, n)))
    q = pd.DataFrame({"step": np.arange(n), "time": time, "asset": "AAA", "bid": mid, "ask": mid})
    t = pd.DataFrame(
        {"step": [0], "time": time[:1], "asset": "AAA", "price": [100.0], "qty": [1]}
    ).assign(aggressor=1, buyer=1, seller=2)
    return Run(trades=t, quotes=q)  # no 'mid' column: (bid + ask) / 2 is used


def test_pooling_standardizes_each_run():
    runs = [_gauss_run(1, 1e-4), _gauss_run(2, 1e-3)]
    raw = pooled_returns(runs, standardize=False)
    std = pooled_returns(runs, standardize=True)
    assert len(raw) == len(std) == 2 * 3 * 389
    assert raw["segment"].nunique() == 6 and (np.diff(raw["segment"]) >= 0).all()
    assert excess_kurtosis(raw["r"]) > 2  # a 50:50 scale mixture: theory 2.88
    assert abs(excess_kurtosis(std["r"])) < 0.5
    f = stylized_facts(runs, max_lag=10, sign_max_lag=5).set_index("name")
    assert not f.loc["excess_kurtosis", "passed"]
