"""Tests of marketsim.feeds.historical.HistoricalPriceFeed on small prepared directories."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from marketsim.data import prepare
from marketsim.errors import ConfigError, DataError, StateError
from marketsim.feeds.base import make_feed
from marketsim.feeds.historical import HistoricalPriceFeed, WindowReplay

T0 = pd.Timestamp("2024-01-02 09:30", tz="UTC")
N_BARS = 10


def closes(seed: int = 0) -> np.ndarray:
    """(N_BARS, 2) closes; ticker BBB has a NaN close at bar 3 and no row at bar 5."""
    c = np.round(100 + np.cumsum(np.random.default_rng(seed).normal(0, 1, (N_BARS, 2)), 0), 2)
    c[3, 1] = np.nan
    c[5, 1] = np.nan
    return c


def make_data(path, c: np.ndarray, times=None) -> str:
    times = times if times is not None else [T0 + pd.Timedelta(minutes=i) for i in range(len(c))]
    rows = []
    for i, t in enumerate(times):
        for k, name in enumerate(("AAA", "BBB")):
            if name == "BBB" and i == 5:
                continue  # a missing bar
            close = "" if math.isnan(c[i, k]) else repr(float(c[i, k]))
            rows.append(f"{t.isoformat()},{name},{close},100")
    path.mkdir(parents=True, exist_ok=True)
    (path / "raw.csv").write_text("time,ticker,close,volume\n" + "\n".join(rows) + "\n")
    prepare(path / "raw.csv", path / "prep", window=3, fields=("close", "volume"))
    return str(path / "prep")


@pytest.fixture
def data(tmp_path):
    c = closes()
    return make_data(tmp_path / "a", c), c


def held(c: np.ndarray) -> np.ndarray:
    """Slow reference: last finite value at or before each bar (NaN before the first)."""
    out = np.full_like(c, np.nan)
    for k in range(c.shape[1]):
        last = np.nan
        for i in range(c.shape[0]):
            if not math.isnan(c[i, k]):
                last = c[i, k]
            out[i, k] = last
    return out


def run(feed, steps: int, dt: float = 1.0, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    out = []
    for s in range(steps):
        feed.advance(s, dt, rng)
        f = feed.features()
        out.append((feed.values().copy(), f["log_return"].copy(), f["valid"].copy()))
    return out


def test_values_follow_closes_and_hold_missing_bars(data):
    path, c = data
    feed = HistoricalPriceFeed(3, path=path)
    assert feed.slot_tickers == ["AAA", "BBB", None]
    h = held(c)
    np.testing.assert_array_equal(feed.values()[:2], c[0])
    assert math.isnan(feed.values()[2])
    prev = c[0]
    for n, (v, r, valid) in enumerate(run(feed, N_BARS - 1), start=1):
        np.testing.assert_array_equal(v[:2], h[n])
        np.testing.assert_array_equal(valid[:2], np.isfinite(c[n]).astype(float))
        np.testing.assert_allclose(r[:2], np.log(h[n] / prev), rtol=1e-12, atol=0)
        assert np.isnan(v[2]) and np.isnan(r[2]) and np.isnan(valid[2])
        prev = h[n]


def test_bar_steps_and_exhaustion(data):
    path, c = data
    feed = HistoricalPriceFeed(2, path=path, bar_steps=3)
    vals = run(feed, 3 * (N_BARS - 1) + 2)
    for n, (v, _, _) in enumerate(vals, start=1):
        np.testing.assert_array_equal(v, held(c)[min(n // 3, N_BARS - 1)])
    assert not feed.exhausted
    feed.advance(99, 1.0, np.random.default_rng(0))  # bar 10 would be due: data ran out
    assert feed.exhausted and feed.features()["valid"].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(feed.values(), held(c)[-1])
    strict = HistoricalPriceFeed(2, path=path, on_end="raise")
    run(strict, N_BARS - 1)
    with pytest.raises(DataError, match=r"ran past its last bar \(10 bars, starting at bar 0\)"):
        strict.advance(N_BARS, 1.0, np.random.default_rng(0))


def test_no_look_ahead(tmp_path):
    c = closes()
    future = c.copy()
    k = 4
    future[k + 1 :] += 7.0  # the two datasets agree up to bar k only
    a = HistoricalPriceFeed(2, path=make_data(tmp_path / "a", c), bar_steps=2)
    b = HistoricalPriceFeed(2, path=make_data(tmp_path / "b", future), bar_steps=2)
    ra, rb = run(a, 2 * N_BARS - 3), run(b, 2 * N_BARS - 3)
    for n in range(len(ra)):
        same = all(np.array_equal(x, y, equal_nan=True) for x, y in zip(ra[n], rb[n], strict=True))
        assert same == ((n + 1) // 2 <= k), n  # identical exactly while bar <= k


def test_time_mode_follows_timestamps(tmp_path):
    c = closes(1)
    times = [T0 + pd.Timedelta(minutes=i) for i in range(5)]
    times += [T0 + pd.Timedelta(days=1, minutes=i) for i in range(5)]  # overnight gap
    feed = HistoricalPriceFeed(2, path=make_data(tmp_path / "t", c, times), bar_steps=None)
    rng = np.random.default_rng(0)
    bars = []
    for s in range(7):
        feed.advance(s, 30.0, rng)
        bars.append(feed.bar_index)
    assert bars == [0, 1, 1, 2, 2, 3, 3]  # one bar per 60 s of model time
    feed.advance(7, 86_400.0 - 211.0, rng)  # 1 s before the next day's first bar ends
    assert feed.bar_index == 4
    feed.advance(8, 1.0, rng)
    assert feed.bar_index == 5 and feed.timestamp == (T0 + pd.Timedelta(days=1)).value
    np.testing.assert_array_equal(feed.values(), held(c)[5])
    feed.advance(9, 3600.0, rng)
    assert feed.bar_index == N_BARS - 1 and feed.exhausted


def test_start_lookback_add_remove_rescale(data):
    path, c = data
    feed = HistoricalPriceFeed(2, path=path, tickers=["BBB"], start=5)  # BBB missing at bar 5
    assert feed.values()[0] == c[4, 1] and feed.features()["valid"][0] == 0.0
    feed.add_asset(1, 50.0, ticker="AAA", rescale=True)
    assert feed.values()[1] == pytest.approx(50.0)
    run(feed, 1)
    assert feed.values()[1] == pytest.approx(50.0 * c[6, 0] / c[5, 0])
    feed.remove_asset(0)
    assert math.isnan(feed.values()[0]) and feed.slot_tickers == [None, "AAA"]
    with pytest.raises(ConfigError, match="slot 1 is already active"):
        feed.add_asset(1, 1.0, ticker="BBB")
    with pytest.raises(ConfigError, match=r"parameters must be ticker \(required\) and rescale"):
        feed.add_asset(0, 1.0, ticker="BBB", drift=1.0)
    with pytest.raises(ConfigError, match="ticker 'ZZZ' is not in the prepared data"):
        feed.add_asset(0, 1.0, ticker="ZZZ")
    by_time = HistoricalPriceFeed(2, path=path, start="2024-01-02T09:32:30Z")
    assert by_time.bar_index == 3
    with pytest.raises(ConfigError, match="the prepared data has 2 tickers but max_assets=1"):
        HistoricalPriceFeed(1, path=path)
    with pytest.raises(ConfigError, match="field 'open' is not in the prepared data"):
        HistoricalPriceFeed(2, path=path, field="open")


def test_determinism_state_round_trip_and_registry(data):
    path, _ = data
    a = make_feed("historical", max_assets=3, path=path, bar_steps=2)
    b = make_feed("historical", max_assets=3, path=path, bar_steps=2)
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    for x, y in zip(run(a, 7, rng=rng), run(b, 7, rng=rng), strict=True):
        for u, w in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, w)
    assert rng.bit_generator.state == before  # the replay draws nothing
    state = a.get_state()
    plain = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    json.dumps(plain)  # everything but arrays is JSON-able
    c = HistoricalPriceFeed(3, path=path, bar_steps=2)
    c.set_state(state)
    ra, rc = run(a, 9), run(c, 9)
    for x, y in zip(ra, rc, strict=True):
        for u, w in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, w)
    d = HistoricalPriceFeed(3, path=path, bar_steps=3)
    with pytest.raises(StateError, match="state has bar_steps=2, this feed has bar_steps=3"):
        d.set_state(state)


def test_window_replay_is_reexported(data):
    path, c = data
    x, m = WindowReplay(path, fields=["close"]).window(2)
    np.testing.assert_array_equal(x[:, :, 0], c[:3].T.astype(np.float32))
    np.testing.assert_array_equal(m, np.isfinite(c[:3]).T)
