"""Tests of analysis.impact: square-root law fit on synthetic meta-orders, counterfactual paths,
decay after the end of execution.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.impact import (
    fit_impact_law,
    impact_decay,
    impact_path,
    mean_decay,
    metaorder_impact,
)
from analysis.io import Run
from marketsim.errors import ConfigError

T0 = pd.Timestamp("2024-01-02 09:30")


def synthetic_rows(n, rng, Y=1.0, delta=0.5, noise=0.3):
    """Meta-orders with I/sigma = Y (Q/V)^delta times log-normal noise (median-unbiased)."""
    V = rng.uniform(1e5, 1e6, n)
    Q = V * 10 ** rng.uniform(-4, -1, n)
    sigma = rng.uniform(0.005, 0.03, n)
    I = sigma * Y * (Q / V) ** delta * np.exp(rng.normal(0, noise, n))  # noqa: E741
    return pd.DataFrame({"Q": Q, "V": V, "sigma": sigma, "I": I})


@pytest.mark.parametrize("ci", ["bootstrap", "analytic"])
def test_fit_recovers_square_root_law(ci):
    rng = np.random.default_rng(0)
    rows = synthetic_rows(400, rng)
    f = fit_impact_law(rows, ci=ci, n_boot=300, rng=np.random.default_rng(1))
    assert f.delta_ci[0] < 0.5 < f.delta_ci[1] and f.Y_ci[0] < 1.0 < f.Y_ci[1]
    assert f.delta == pytest.approx(0.5, abs=0.05) and f.Y == pytest.approx(1.0, rel=0.3)
    assert f.n == 400 and f.n_dropped == 0 and f.r2 > 0.8
    assert f.resid_std == pytest.approx(0.3, rel=0.15)
    # a different law is recovered too, and the CI excludes the square root
    g = fit_impact_law(synthetic_rows(400, rng, Y=0.5, delta=0.7), ci=ci, n_boot=300)
    assert g.delta_ci[0] < 0.7 < g.delta_ci[1] and not g.delta_ci[0] < 0.5 < g.delta_ci[1]


def test_bootstrap_and_analytic_agree_and_arrays():
    rng = np.random.default_rng(2)
    rows = synthetic_rows(300, rng)
    a = fit_impact_law(rows, ci="analytic")
    b = fit_impact_law(rows, ci="bootstrap", n_boot=400, rng=np.random.default_rng(3))
    assert a.delta == b.delta and a.Y == b.Y  # same point estimate
    wa, wb = np.diff(a.delta_ci)[0], np.diff(b.delta_ci)[0]
    assert wb == pytest.approx(wa, rel=0.3)
    c = fit_impact_law(Q=rows["Q"], V=rows["V"], sigma=rows["sigma"], I=rows["I"], ci="analytic")
    assert c.delta == a.delta


def test_binned_fit_keeps_negative_impacts():
    rng = np.random.default_rng(4)
    rows = synthetic_rows(2000, rng, noise=0.0)
    # additive noise: single impacts can be negative; bin means stay on the law
    rows["I"] = rows["I"] + rng.normal(0, 0.2, len(rows)) * rows["I"].mean()
    assert (rows["I"] <= 0).any()
    r = fit_impact_law(rows, method="rows", ci="analytic")
    assert r.n_dropped == int((rows["I"] <= 0).sum())
    b = fit_impact_law(rows, method="binned", bins=8, n_boot=200)
    assert b.delta_ci[0] < 0.5 < b.delta_ci[1] and b.n_dropped == 0


def test_fit_errors():
    with pytest.raises(ConfigError, match="lacks column"):
        fit_impact_law(pd.DataFrame({"Q": [1.0]}))
    with pytest.raises(ConfigError, match="rows= or all of"):
        fit_impact_law(Q=[1.0])
    rows = pd.DataFrame({"Q": [1.0, 2.0], "V": [10.0, 10.0], "sigma": [1.0, 1.0], "I": [0.1, 0.2]})
    with pytest.raises(ConfigError, match="need >= 3"):
        fit_impact_law(rows)
    with pytest.raises(ConfigError, match="method"):
        fit_impact_law(rows, method="x")
    with pytest.raises(ConfigError, match="ci"):
        fit_impact_law(rows, ci="x")


# ---------------------------------------------------------------------------- paths
def _quotes(mid, asset="A"):
    n = len(mid)
    return pd.DataFrame(
        {
            "step": np.arange(n),
            "time": T0 + pd.to_timedelta(np.arange(n), unit="min"),
            "asset": asset,
            "mid": mid,
        }
    )


def _impact_shape(n, t0, t1, peak=0.01, decay_steps=20.0):
    """Linear build-up during [t0, t1], exponential decay after."""
    s = np.arange(n, dtype=float)
    i = np.where(s < t0, 0.0, np.where(s <= t1, peak * (s - t0) / (t1 - t0), 0.0))
    after = s > t1
    i[after] = peak * np.exp(-(s[after] - t1) / decay_steps)
    return i


@pytest.mark.parametrize("side", [1, -1])
def test_impact_path_recovers_known_impact(side):
    rng = np.random.default_rng(5)
    n, t0, t1 = 200, 50, 70
    base = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    imp = _impact_shape(n, t0, t1)
    with_mo = base * np.exp(side * imp)
    base_q = _quotes(base)
    base_q.loc[10, "mid"] = np.nan  # empty book: forward-filled in both
    p = impact_path(_quotes(with_mo), base_q, t0, t1, side)
    assert p["impact"].to_numpy()[np.r_[0:10, 11:n]] == pytest.approx(imp[np.r_[0:10, 11:n]])
    assert p["phase"].iloc[[0, 60, 100]].tolist() == ["before", "during", "after"]
    assert p["tau"].iloc[t1] == 1.0 and p.attrs["end_step"] == t1
    d = impact_decay(p, (0, 0.5, 1, 2, 100))
    T = t1 - t0
    exp = [1.0, math.exp(-0.5 * T / 20), math.exp(-T / 20), math.exp(-2 * T / 20)]
    assert d["fraction"].iloc[:4].to_numpy() == pytest.approx(exp)
    assert math.isnan(d["fraction"].iloc[4])  # past the end of the path


def test_mean_decay_ratio_of_means():
    paths = []
    for peak, tau in ((0.01, 10.0), (0.03, 40.0)):
        q = _quotes(np.full(300, 100.0))
        w = _quotes(100.0 * np.exp(_impact_shape(300, 10, 30, peak, tau)))
        paths.append(impact_path(w, q, 10, 30, 1))
    m = mean_decay(paths, (0, 1))
    exp = (0.01 * math.exp(-2) + 0.03 * math.exp(-0.5)) / 0.04
    assert m["fraction"].tolist() == pytest.approx([1.0, exp]) and m["n"].tolist() == [2, 2]


def test_path_errors():
    q = _quotes(np.full(10, 100.0))
    with pytest.raises(ConfigError, match="side"):
        impact_path(q, q, 1, 5, 0)
    with pytest.raises(ConfigError, match="< end_step"):
        impact_path(q, q, 5, 5, 1)
    two = pd.concat([q, _quotes(np.full(10, 50.0), "B")])
    with pytest.raises(ConfigError, match="several assets"):
        impact_path(two, two, 1, 5, 1)
    assert impact_path(two, two, 1, 5, 1, asset="B")["impact"].abs().max() == 0


def test_metaorder_impact_row():
    n = 2 * 390
    day = np.repeat([0, 1], 390)
    k = np.tile(np.arange(390), 2)
    time = T0 + pd.to_timedelta(day, unit="D") + pd.to_timedelta(k, unit="min")
    rng = np.random.default_rng(6)
    base = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    imp = _impact_shape(n, 100, 160, peak=0.004)
    mk = lambda m: pd.DataFrame(  # noqa: E731
        {"step": np.arange(n), "time": time, "asset": "A", "mid": m, "bid": m, "ask": m}
    )
    trades = pd.DataFrame(
        {"step": np.arange(n), "time": time, "asset": "A", "qty": 5, "price": 1.0, "aggressor": 1}
    )
    without = Run(trades=trades, quotes=mk(base))
    with_mo = Run(trades=trades, quotes=mk(base * np.exp(imp)))
    row = metaorder_impact(with_mo, without, 100, 160, 1, Q=500)
    assert row["I"] == pytest.approx(0.004) and row["I_max"] == pytest.approx(0.004)
    assert row["V"] == pytest.approx(5 * 390) and row["Q"] == 500.0
    assert 0 < row["sigma"] < 0.1 and row["duration_steps"] == 60
    assert len(row["path"]) == n
