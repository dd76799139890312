"""Tests of analysis.orderflow: trade signs (fill merging, long memory), spreads, depth, arrivals.

Long memory is checked on the Lillo–Mike–Farmer splitting model (meta-orders with Pareto sizes
of tail exponent alpha split into unit trades, so C(l) ~ l^-(alpha - 1)); i.i.d. signs must show
none.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.orderflow import (
    depth_profile,
    inter_arrival_stats,
    inter_arrival_times,
    sign_memory,
    spread_histogram,
    spread_summary,
    spreads,
    trade_signs,
)
from marketsim.errors import ConfigError

T0 = pd.Timestamp("2024-01-02 09:30")


def lmf_signs(n, rng, n_agents=5, alpha=1.5):
    """Lillo–Mike–Farmer model: each step a random agent trades one unit of its meta-order."""
    rem = np.ceil(rng.pareto(alpha, n_agents) + 1).astype(np.int64)
    sg = rng.choice([-1, 1], n_agents)
    lens = np.ceil(rng.pareto(alpha, n) + 1).astype(np.int64)
    coins = rng.random(n) < 0.5
    pick = rng.integers(0, n_agents, n)
    out = np.empty(n, np.int8)
    j = 0
    for t in range(n):
        i = pick[t]
        out[t] = sg[i]
        rem[i] -= 1
        if rem[i] == 0:
            rem[i] = lens[j]
            sg[i] = 1 if coins[j] else -1
            j += 1
    return out


def test_long_memory_lmf_vs_iid():
    rng = np.random.default_rng(0)
    s = lmf_signs(150_000, rng)  # alpha = 1.5 -> gamma = 0.5 asymptotically
    m = sign_memory(s, 300)
    assert m.long_memory
    assert 0.3 < m.gamma < 0.8 and m.gamma_ci_low < m.gamma < m.gamma_ci_high
    assert m.acf[0] > 0.1 and m.significant_fraction > 0.9
    iid = sign_memory(rng.choice([-1, 1], 150_000), 300)
    assert not iid.long_memory and iid.significant_fraction < 0.1
    assert abs(iid.acf[0]) < 4 / math.sqrt(150_000)


def _trades(rows):
    df = pd.DataFrame(
        rows, columns=["step", "asset", "price", "qty", "aggressor", "buyer", "seller"]
    )
    df["time"] = T0 + pd.to_timedelta(df["step"], unit="min")
    return df


def test_trade_signs_merge_fills():
    t = _trades(
        [
            (0, "A", 10.0, 1, 1, 7, 1),  # one buy order by 7 sweeping two makers
            (0, "A", 10.1, 2, 1, 7, 2),
            (0, "A", 9.9, 1, -1, 3, 8),  # a sell by 8 in the same step
            (0, "A", 10.0, 1, 1, 9, 1),  # another buyer
            (1, "A", 10.0, 4, 1, 7, 1),
            (0, "B", 5.0, 1, -1, 1, 7),
        ]
    )
    m = trade_signs(t)
    assert m["asset"].tolist() == ["A", "A", "A", "A", "B"]
    assert m["sign"].tolist() == [1, -1, 1, 1, -1]
    assert m["qty"].tolist() == [3, 1, 1, 4, 1]
    raw = trade_signs(t, merge_fills=False)
    assert len(raw) == 6 and raw["qty"].sum() == 10
    assert trade_signs(t, "B")["sign"].tolist() == [-1]
    assert len(trade_signs(t.iloc[:0])) == 0
    bad = t.copy()
    bad.loc[0, "aggressor"] = 0
    with pytest.raises(ConfigError, match="aggressor"):
        trade_signs(bad)
    # a DataFrame of signs: one segment per asset and day
    sm = sign_memory(trade_signs(t), 1)
    assert sm.n == 5


def test_spreads_summary_histogram():
    q = pd.DataFrame(
        {
            "step": [0, 1, 2, 3, 0],
            "time": [T0] * 5,
            "asset": ["A", "A", "A", "A", "B"],
            "bid": [100.0, 100.0, np.nan, 99.98, 10.0],
            "ask": [100.01, 100.02, 100.0, 100.01, 10.5],
        }
    )
    s = spreads(q, {"A": 0.01, "B": 0.5})
    assert len(s) == 4  # the one-sided row is skipped
    a = s[s["asset"] == "A"]
    assert a["ticks"].to_numpy() == pytest.approx([1, 2, 3])
    assert a["bps"].iloc[0] == pytest.approx(1e4 * 0.01 / 100.005)
    assert s.loc[s["asset"] == "B", "ticks"].iloc[0] == pytest.approx(1.0)
    summ = spread_summary(s).set_index("asset")
    assert summ.loc["A", "mean_ticks"] == pytest.approx(2.0)
    assert summ.loc["A", "one_tick_share"] == pytest.approx(1 / 3)
    h = spread_histogram(s, "A")
    assert h["ticks"].tolist() == [1, 2, 3] and h["fraction"].sum() == pytest.approx(1.0)
    assert spreads(q)["ticks"].isna().all()  # no tick size: ticks unknown
    with pytest.raises(ConfigError, match="tick_size"):
        spreads(q, -1.0)


def test_depth_profile_levels_and_ticks():
    rows = [
        # step, side, level, price, qty
        (0, 1, 0, 100.00, 5),
        (0, 1, 1, 99.98, 7),  # 2 ticks behind the best bid
        (0, -1, 0, 100.01, 3),
        (1, 1, 0, 100.00, 1),
        (1, -1, 0, 100.02, 2),
        (1, -1, 1, 100.03, 4),
    ]
    l2 = pd.DataFrame(rows, columns=["step", "side", "level", "price", "qty"])
    l2["asset"], l2["time"] = "A", T0
    d = depth_profile(l2, max_levels=3)
    assert d["distance"].tolist() == [0, 1, 2]
    assert d["bid"].tolist() == pytest.approx([3.0, 3.5, 0.0])  # missing levels count as 0
    assert d["ask"].tolist() == pytest.approx([2.5, 2.0, 0.0])
    dt = depth_profile(l2, max_levels=3, by="ticks", tick_size=0.01)
    assert dt["bid"].tolist() == pytest.approx([3.0, 0.0, 3.5])
    assert dt["ask"].tolist() == pytest.approx([2.5, 2.0, 0.0])
    with pytest.raises(ConfigError, match="l2_every"):
        depth_profile(None)
    with pytest.raises(ConfigError, match="tick_size"):
        depth_profile(l2, by="ticks")
    with pytest.raises(ConfigError, match="'level' or 'ticks'"):
        depth_profile(l2, by="price")


def test_inter_arrivals_poisson_vs_bursty():
    rng = np.random.default_rng(1)
    e = rng.exponential(2.0, 20_000)
    s = inter_arrival_stats(e)
    assert s.cv == pytest.approx(1.0, abs=0.03) and s.ks_pvalue > 0.01 and s.cv_pvalue > 0.001
    assert s.mean == pytest.approx(2.0, rel=0.03)
    g = rng.gamma(0.3, 1.0, 20_000)  # clustered arrivals: CV = 1/sqrt(0.3)
    b = inter_arrival_stats(g)
    assert b.cv == pytest.approx(1 / math.sqrt(0.3), rel=0.05)
    assert b.cv_pvalue < 1e-6 and b.ks_pvalue < 1e-6
    with pytest.raises(ConfigError, match=">= 0"):
        inter_arrival_stats([-1.0, 1.0])


def test_inter_arrival_times_within_day():
    t = pd.DataFrame(
        {
            "step": [0, 1, 2, 3],
            "time": pd.to_datetime(
                ["2024-01-02 09:30", "2024-01-02 09:31", "2024-01-02 15:59", "2024-01-03 09:30"]
            ),
            "asset": "A",
            "price": 1.0,
            "qty": 1,
            "aggressor": [1, -1, 1, -1],
            "buyer": 1,
            "seller": 2,
        }
    )
    dt = inter_arrival_times(t)
    assert dt.tolist() == [60.0, (6 * 60 + 28) * 60.0]  # the overnight gap is skipped
