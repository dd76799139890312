"""Tests of analysis.returns (sampling, overnight exclusion, volume, realized vol) and analysis.io.

Sampling is compared with a slow, obvious per-grid-point reference on random quote streams.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.io import Run, as_run, as_runs, load_run, select_asset
from analysis.returns import (
    daily_volatility,
    interval_volume,
    log_returns,
    mid_prices,
    parse_horizon,
    realized_volatility,
    returns_at_horizons,
)
from marketsim.errors import ConfigError, DataError
from marketsim.recorder import Recorder

MIN = pd.Timedelta(minutes=1)


def _day_quotes(dates, mids_per_day, asset="AAA", step_min=1):
    """Quotes every ``step_min`` minutes from 09:30, one list of mids per date."""
    rows = []
    step = 0
    for d, mids in zip(dates, mids_per_day, strict=True):
        t0 = pd.Timestamp(f"{d} 09:30")
        for k, m in enumerate(mids):
            rows.append((step, t0 + k * step_min * MIN, asset, m))
            step += 1
    q = pd.DataFrame(rows, columns=["step", "time", "asset", "mid"])
    q["bid"] = q["mid"] - 0.005
    q["ask"] = q["mid"] + 0.005
    return q


# ---------------------------------------------------------------------------- horizons
def test_parse_horizon():
    assert parse_horizon(None) is None
    assert parse_horizon("1min") == 60 * 10**9
    assert parse_horizon(pd.Timedelta("5min")) == 300 * 10**9
    assert parse_horizon("1D") == 86_400 * 10**9


@pytest.mark.parametrize(
    "bad, msg", [(5, "ambiguous"), ("abc", "not a duration"), ("-1min", "positive"), ("2D", "1D")]
)
def test_parse_horizon_errors(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        parse_horizon(bad)


# ---------------------------------------------------------------------------- overnight gaps
def test_overnight_jump_never_in_a_return():
    rng = np.random.default_rng(0)
    d1 = 100 * np.exp(np.cumsum(rng.normal(0, 1e-4, 390)))
    d2 = 150 * np.exp(np.cumsum(rng.normal(0, 1e-4, 390)))  # +40% overnight jump
    q = _day_quotes(["2024-01-05", "2024-01-08"], [d1, d2])  # Friday -> Monday
    for h in (None, "1min", "5min", "7min", "30min", "1h", "1D"):
        r = log_returns(q, h)
        assert len(r) > 0
        assert np.abs(r["r"]).max() < 0.1, h
        assert (r["start"].dt.normalize() == r["end"].dt.normalize()).all(), h
        # intraday returns telescope to the day's open-to-close move
        for day, m in (("2024-01-05", d1), ("2024-01-08", d2)):
            s = r.loc[r["day"] == pd.Timestamp(day), "r"].sum()
            assert s == pytest.approx(math.log(m[-1] / m[0]), abs=1e-12), h
    ro = log_returns(q, "5min", include_overnight=True)
    big = ro[np.abs(ro["r"]) > 0.1]
    assert len(big) == 1 and big["r"].iloc[0] == pytest.approx(math.log(d2[0] / d1[-1]))
    cc = log_returns(q, "1D", include_overnight=True)
    assert len(cc) == 1 and cc["r"].iloc[0] == pytest.approx(math.log(d2[-1] / d1[-1]))


def test_daily_open_to_close_values():
    q = _day_quotes(["2024-01-02", "2024-01-03"], [[100, 101, 102], [200, 190, 210]])
    r = log_returns(q, "1D")
    assert r["r"].tolist() == pytest.approx([math.log(1.02), math.log(1.05)])
    assert r["start"].dt.strftime("%H:%M").tolist() == ["09:30", "09:30"]
    assert r["end"].dt.strftime("%H:%M").tolist() == ["09:32", "09:32"]


def test_grid_values_and_empty_sides():
    mids = [100.0, np.nan, 101.0, 102.0, np.nan, np.nan, 104.0, 105.0]
    q = _day_quotes(["2024-01-02"], [mids])
    q.loc[q["mid"].isna(), ["bid", "ask"]] = np.nan
    p = mid_prices(q, "2min")
    # grid 09:30, :32, :34, :36, :38 (first grid point at or after the last quote 09:37)
    assert p["time"].dt.strftime("%H:%M").tolist() == ["09:30", "09:32", "09:34", "09:36", "09:38"]
    assert p["mid"].tolist() == [100.0, 101.0, 102.0, 104.0, 105.0]
    r = log_returns(q, "2min")
    assert r["r"].to_numpy() == pytest.approx(np.diff(np.log([100, 101, 102, 104, 105])))
    # an empty book at the open: the grid starts at the first point with a valid mid
    q2 = q.copy()
    q2.loc[0, ["mid", "bid", "ask"]] = np.nan
    assert mid_prices(q2, "2min")["time"].dt.strftime("%H:%M").iloc[0] == "09:32"


def _ref_sample(times, mids, h):
    """Slow reference: for each day and k = 0, 1, ... the last valid mid at or before g_k."""
    out = []
    for d in sorted({t.normalize() for t in times}):
        idx = [i for i, t in enumerate(times) if t.normalize() == d]
        o, last = times[idx[0]], times[idx[-1]]
        valid = [i for i in idx if np.isfinite(mids[i]) and mids[i] > 0]
        if not valid:
            continue
        k = 0
        while True:
            g = o + k * h
            cand = [i for i in valid if times[i] <= min(g, last)]
            if cand:
                out.append((d, g, mids[cand[-1]]))
            if g >= last:
                break
            k += 1
    return out


@settings(max_examples=40, deadline=None)
@given(
    days=st.lists(
        st.lists(
            st.tuples(st.integers(0, 23_400), st.one_of(st.floats(50, 150), st.just(np.nan))),
            min_size=1,
            max_size=25,
        ),
        min_size=1,
        max_size=3,
    ),
    h_s=st.sampled_from([60, 300, 420, 3600]),
)
def test_sampling_matches_reference(days, h_s):
    rows = []
    for j, obs in enumerate(days):
        t0 = pd.Timestamp("2024-01-02 09:30") + pd.Timedelta(days=j)
        for off, m in sorted({o: m for o, m in obs}.items()):
            rows.append((t0 + pd.Timedelta(seconds=off), m))
    q = pd.DataFrame(rows, columns=["time", "mid"]).assign(asset="X")
    h = pd.Timedelta(seconds=h_s)
    got = mid_prices(q, h)
    ref = _ref_sample(list(q["time"]), q["mid"].to_numpy(), h)
    assert len(got) == len(ref)
    if ref:
        assert list(got["time"]) == [g for _, g, _ in ref]
        assert list(got["day"]) == [d for d, _, _ in ref]
        assert got["mid"].to_numpy() == pytest.approx([m for _, _, m in ref])
    r = log_returns(q, h)
    exp = [math.log(b[2] / a[2]) for a, b in zip(ref[:-1], ref[1:], strict=True) if a[0] == b[0]]
    assert r["r"].to_numpy() == pytest.approx(exp)


def test_assets_never_mix_and_selection():
    a = _day_quotes(["2024-01-02"], [[100, 101, 102]], "AAA")
    b = _day_quotes(["2024-01-02"], [[10, 20, 40]], "BBB")
    q = pd.concat([a, b], ignore_index=True).sample(frac=1, random_state=1)
    r = log_returns(q, "1min")
    assert len(r) == 4
    assert r.loc[r["asset"] == "BBB", "r"].tolist() == pytest.approx([math.log(2)] * 2)
    assert len(log_returns(q, "1min", asset="AAA")) == 2
    with pytest.raises(ConfigError, match="assets present"):
        log_returns(q, "1min", asset="ZZZ")
    res = returns_at_horizons(q, ["1min", "2min"])
    assert set(res) == {"1min", "2min"} and len(res["2min"]) == 2


# ---------------------------------------------------------------------------- volume, vol
def test_interval_volume_matches_brute_force():
    rng = np.random.default_rng(3)
    q = _day_quotes(["2024-01-02", "2024-01-03"], [100 + rng.random(60), 100 + rng.random(60)])
    n = 300
    day = rng.integers(0, 2, n)
    t = pd.to_datetime(["2024-01-02 09:30", "2024-01-03 09:30"])[day] + pd.to_timedelta(
        rng.integers(0, 3700, n), unit="s"
    )
    tr = pd.DataFrame({"time": t, "asset": "AAA", "qty": rng.integers(1, 10, n)})
    for h in ("1min", "5min", "1D"):
        r = log_returns(q, h)
        v = interval_volume(tr, r)
        for i in range(len(r)):
            s, e = r["start"].iloc[i], r["end"].iloc[i]
            m = (tr["time"] > s) & (tr["time"] <= e) & (tr["time"].dt.normalize() == s.normalize())
            assert v[i] == tr.loc[m, "qty"].sum()


def test_realized_and_daily_volatility():
    q = _day_quotes(["2024-01-02", "2024-01-03"], [[100, 101, 100], [100, 102, 104]])
    r = log_returns(q, "1min")
    rv = realized_volatility(r)
    e1 = math.sqrt(math.log(1.01) ** 2 + math.log(100 / 101) ** 2)
    e2 = math.sqrt(math.log(1.02) ** 2 + math.log(104 / 102) ** 2)
    assert rv["rv"].tolist() == pytest.approx([e1, e2])
    assert rv["n"].tolist() == [2, 2]
    assert daily_volatility(q, horizon="1min") == pytest.approx(math.sqrt((e1**2 + e2**2) / 2))
    with pytest.raises(ConfigError, match="lacks column"):
        realized_volatility(pd.DataFrame({"x": [1.0]}))


# ---------------------------------------------------------------------------- io
def _write_run(path, with_summary=True):
    with Recorder(path, ["AAA"], agent_types=["exchange", "noise"], l2_every=1) as rec:
        t0 = pd.Timestamp("2024-01-02 09:30").value
        for s in range(5):
            rec.quotes(s, t0 + s * 60 * 10**9, np.array([0]), [100.0], [100.02], [5], [7], [np.nan])
            rec.trades(s, t0 + s * 60 * 10**9, 0, np.array([100.01]), np.array([3]), 1, 1, 2)
            rec.accounts(s, np.array([1, 2]), np.array([1, 1]), [1e4, 1e4], [1e4, 1e4])
            rec.l2(s, t0 + s * 60 * 10**9, 0, [100.0], [5], [100.02], [7])
    if with_summary:
        (path / "summary.json").write_text(
            json.dumps({"steps_per_day": 390, "assets": {"AAA": {"tick_size": 0.01}}})
        )


def test_load_run_round_trip(tmp_path):
    _write_run(tmp_path)
    run = load_run(tmp_path)
    assert isinstance(run, Run) and run.path == tmp_path and run.name == tmp_path.name
    assert len(run.quotes) == 5 and len(run.trades) == 5 and run.l2 is not None
    assert run.orders is None
    assert run.quotes["asset"].tolist() == ["AAA"] * 5  # plain strings, not categories
    assert not isinstance(run.quotes["asset"].dtype, pd.CategoricalDtype)
    assert run.assets == ["AAA"] and run.steps_per_day == 390 and run.tick_size("AAA") == 0.01
    assert run.tick_size("ZZZ") is None
    assert as_run(tmp_path).summary == run.summary
    assert len(as_runs([tmp_path, run])) == 2
    assert len(select_asset(run.quotes, "AAA")) == 5


def test_load_run_errors(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        load_run(tmp_path / "nope")
    _write_run(tmp_path, with_summary=False)
    with pytest.raises(DataError, match="summary.json"):
        load_run(tmp_path)
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "positions.parquet").unlink()
    with pytest.raises(DataError, match="'positions.parquet'"):
        load_run(tmp_path)
    with pytest.raises(ConfigError, match="Run or a run directory"):
        as_run(42)
    with pytest.raises(ConfigError, match="empty"):
        as_runs([])
