"""Tests of marketsim.feeds.plugins: macro, sentiment and news-shock feeds, entry points."""

from __future__ import annotations

import importlib.metadata
import math
import re
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from marketsim.errors import ConfigError, DataError, StateError
from marketsim.feeds import base as feeds_base
from marketsim.feeds.base import FEED_TYPES, make_feed
from marketsim.feeds.fundamental import MeanRevertingFundamental
from marketsim.feeds.historical import HistoricalPriceFeed
from marketsim.feeds.plugins import (
    ENTRY_POINT_GROUP,
    MacroFeed,
    NewsShockFeed,
    SentimentFeed,
    load_entry_point_feeds,
)

DAY = 86_400.0
START = pd.Timestamp("2024-02-01", tz="UTC")


def day_features(feed, days: int, key: str) -> list[float]:
    rng = np.random.default_rng(0)
    out = []
    for d in range(days):
        feed.advance(d, DAY, rng)
        out.append(float(feed.features()[key][0]))
    return out


# ------------------------------------------------------------------------------ macro
MACRO = [  # indicator, period, release_time, value
    ("cpi", "2023-12-01", "2024-01-11T13:30:00Z", 3.4),
    ("cpi", "2024-01-01", "2024-02-13T13:30:00Z", 3.1),
    ("cpi", "2024-02-01", "2024-03-12T12:30:00Z", 3.2),
    ("unrate", "2024-01-01", "2024-02-02T13:30:00Z", 3.7),
    ("unrate", "2024-02-01", "2024-03-08T13:30:00Z", 3.9),
]


def test_macro_values_appear_only_after_publication(tmp_path):
    path = tmp_path / "macro.csv"
    lines = ["indicator,period,release_time,value"] + [",".join(map(str, r)) for r in MACRO]
    path.write_text("\n".join(lines) + "\n")
    feed = MacroFeed(2, path=path, start_time=START.isoformat())
    assert feed.indicators == ("cpi", "unrate")
    assert feed.features()["cpi"].tolist() == [3.4]  # released before the start: known
    assert math.isnan(feed.features()["unrate"][0]) and np.isnan(feed.values()).all()
    got = day_features(feed, 45, "cpi")
    for d, v in enumerate(got):
        clock = START + pd.Timedelta(days=d + 1)
        known = [r[3] for r in MACRO if r[0] == "cpi" and pd.Timestamp(r[2]) <= clock]
        assert v == known[-1], (d, clock)  # the latest *published* value, never the period's
    assert got[11] == 3.4 and got[12] == 3.1  # Feb 13 13:30 is released on the 14th's clock


def test_macro_wide_layout_with_release_lag(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("period,gdp,pmi\n2024-01-01,1.0,50\n2024-01-15,,51\n")
    feed = MacroFeed(1, path=path, start_time="2024-01-01", release_lag="10D")
    assert math.isnan(feed.features()["gdp"][0])
    gdp = day_features(feed, 30, "gdp")
    pmi = [float(x) for x in day_features(MacroFeed(1, path=path, start_time="2024-01-01",
                                                     release_lag="10D"), 30, "pmi")]  # fmt: skip
    assert [math.isnan(x) for x in gdp[:9]] == [True] * 9 and gdp[9:] == [1.0] * 21
    assert pmi[9:23] == [50.0] * 14 and pmi[23:] == [51.0] * 7  # the empty gdp cell: no release
    with pytest.raises(DataError, match=r"no release_time column .* release_lag='30D'"):
        MacroFeed(1, path=path, start_time="2024-01-01")


def test_macro_rejects_look_ahead_and_bad_arguments(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("indicator,period,release_time,value\ncpi,2024-02-01,2024-01-31,3.0\n")
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{path}: line 2, column 'release_time': released before its period starts"
        ),
    ):
        MacroFeed(1, path=path, start_time="2024-01-01")
    path.write_text("indicator,release_time,value\ncpi,2024-01-31,abc\n")
    with pytest.raises(DataError, match=r"line 2, column 'value': non-numeric value 'abc'"):
        MacroFeed(1, path=path, start_time="2024-01-01")
    path.write_text("indicator,release_time,value\ncpi,2024-01-31,1\n")
    with pytest.raises(ConfigError, match=r"indicators \['gdp'\] not in .*; available: cpi"):
        MacroFeed(1, path=path, start_time="2024-01-01", indicators=["gdp"])
    with pytest.raises(ConfigError, match="start_time .* is required"):
        MacroFeed(1, path=path, start_time=None)
    feed = MacroFeed(2, path=path, start_time="2024-01-01")
    with pytest.raises(ConfigError, match="unknown parameter"):
        feed.add_asset(0, 1.0, ticker="x")


def test_macro_state_round_trip(tmp_path):
    path = tmp_path / "macro.csv"
    lines = ["indicator,period,release_time,value"] + [",".join(map(str, r)) for r in MACRO]
    path.write_text("\n".join(lines) + "\n")
    a = MacroFeed(1, path=path, start_time="2024-01-20")
    day_features(a, 20, "cpi")
    b = MacroFeed(1, path=path, start_time="2024-01-20")
    b.set_state(a.get_state())
    assert day_features(a, 30, "unrate") == day_features(b, 30, "unrate")
    other = MacroFeed(1, path=path, start_time="2024-01-20", indicators=["cpi"])
    with pytest.raises(StateError, match="MacroFeed.set_state: state has data_id="):
        other.set_state(a.get_state())


# ------------------------------------------------------------------------------ sentiment
def test_sentiment_ar1_is_deterministic_and_has_the_right_law():
    def series(dt, n, seed=3):
        feed = SentimentFeed(2, phi=0.9, period_s=1.0, sigma=2.0)
        feed.add_asset(0, 0.0)
        feed.add_asset(1, 1.0)
        rng = np.random.default_rng(seed)
        out = np.empty((n, 2))
        for i in range(n):
            feed.advance(i, dt, rng)
            out[i] = feed.values()
        return out

    x = series(1.0, 40_000)
    np.testing.assert_array_equal(x, series(1.0, 40_000))
    for k in range(2):
        s = x[1000:, k]
        assert abs(s.std() / 2.0 - 1) < 0.04  # stationary sd = sigma
        r1 = np.corrcoef(s[:-1], s[1:])[0, 1]
        assert abs(r1 - 0.9) < 0.01
    y = series(2.0, 20_000)[500:, 0]  # one step of 2 s: coefficient phi ** 2
    assert abs(np.corrcoef(y[:-1], y[1:])[0, 1] - 0.81) < 0.02
    assert abs(np.corrcoef(x[1000:, 0], x[1000:, 1])[0, 1]) < 0.03  # independent slots


def test_sentiment_state_round_trip():
    a = SentimentFeed(3, phi=0.5, period_s=10.0)
    a.add_asset(0, 0.2)
    a.add_asset(2, -0.1)
    rng = np.random.default_rng(1)
    for i in range(5):
        a.advance(i, 1.0, rng)
    b = SentimentFeed(3, phi=0.5, period_s=10.0)
    b.set_state(a.get_state())
    ra, rb = np.random.default_rng(9), np.random.default_rng(9)
    for i in range(20):
        a.advance(i, 1.0, ra)
        b.advance(i, 1.0, rb)
        np.testing.assert_array_equal(a.values(), b.values())
    assert math.isnan(a.values()[1]) and a.features()["sentiment"] is a.values()


def test_sentiment_file_mode_releases_at_timestamps(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(
        "time,ticker,sentiment\n2024-01-01T00:00:30Z,AAA,0.5\n2024-01-01T00:01:00Z,BBB,-1\n"
        "2024-01-01T00:02:00Z,AAA,0.25\n"
    )
    feed = SentimentFeed(2, path=path, start_time="2024-01-01T00:00:00Z", tickers=["AAA"])
    feed.add_asset(1, 0.0, ticker="BBB")
    rng = np.random.default_rng(0)
    seen = []
    for s in range(5):
        feed.advance(s, 30.0, rng)
        seen.append(feed.values().tolist())
    assert seen == [[0.5, 0.0], [0.5, -1.0], [0.5, -1.0], [0.25, -1.0], [0.25, -1.0]]
    with pytest.raises(ConfigError, match="ticker 'ZZZ' has no sentiment data"):
        SentimentFeed(1, path=path, start_time="2024-01-01", tickers=["ZZZ"])
    with pytest.raises(ConfigError, match="phi must be in"):
        SentimentFeed(1, phi=1.0)


# ------------------------------------------------------------------------------ news shocks
def flat_inner(m=2):
    return MeanRevertingFundamental(m, kappa=0.0, sigma=0.0, initial_values=[100.0, 50.0][:m])


def test_news_shocks_hit_at_their_step_and_time():
    events = [
        {"step": 3, "slot": 0, "size": 0.10},
        {"time_s": 5.5, "slot": "all", "size": -0.05},
    ]
    feed = NewsShockFeed(2, inner=flat_inner(), events=events)
    rng = np.random.default_rng(0)
    vals, shocks = [], []
    for s in range(8):
        feed.advance(s, 1.0, rng)
        vals.append(feed.values().copy())
        shocks.append(feed.features()["news_shock"].tolist())
    np.testing.assert_allclose(vals[2], [100, 50])
    np.testing.assert_allclose(vals[3], [110, 50])
    np.testing.assert_allclose(vals[4], [110, 50])  # clock 5.0 < 5.5
    np.testing.assert_allclose(vals[5], [110 * 0.95, 50 * 0.95])
    assert shocks[3] == [0.1, 0.0] and shocks[5] == [-0.05, -0.05] and shocks[6] == [0.0, 0.0]
    f = feed.features()
    assert f["fundamental"] is feed.values()  # agents see the shocked fundamental
    np.testing.assert_allclose(feed.inner.values(), [100, 50])


def test_news_shock_decay_absolute_mode_and_state():
    feed = NewsShockFeed(
        1, inner=flat_inner(1), events=[{"step": 0, "slot": 0, "size": 8.0}],
        mode="absolute", half_life_s=10.0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    feed.advance(0, 1.0, rng)
    assert feed.values()[0] == pytest.approx(108.0)
    for s in range(1, 11):
        feed.advance(s, 1.0, rng)
    assert feed.values()[0] == pytest.approx(104.0)  # half gone after 10 s
    # state round trip with a random inner feed: continuation is bit-identical
    spec = {"kind": "mean_reverting", "sigma": 0.5, "initial_values": [100.0, 80.0]}
    ev = [{"step": 4, "slot": 1, "size": 0.2}, {"time_s": 9.0, "size": -0.1}]
    a = NewsShockFeed(2, inner=spec, events=ev, half_life_s=30.0)
    b = NewsShockFeed(2, inner=spec, events=ev, half_life_s=30.0)
    ra = np.random.default_rng(4)
    for s in range(6):
        a.advance(s, 1.0, ra)
    b.set_state(a.get_state())
    rb = np.random.default_rng(4)
    rb.bit_generator.state = ra.bit_generator.state
    for s in range(6, 20):
        a.advance(s, 1.0, ra)
        b.advance(s, 1.0, rb)
        np.testing.assert_array_equal(a.values(), b.values())
        np.testing.assert_array_equal(a.features()["news_shock"], b.features()["news_shock"])
    c = NewsShockFeed(2, inner=spec, events=ev[:1])
    with pytest.raises(StateError, match="state has events_id="):
        c.set_state(a.get_state())


def test_news_events_from_file_and_validation(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("step,slot,size\n2,all,0.5\n1,0,-0.5\n")
    feed = NewsShockFeed(2, inner=flat_inner(), events=path)
    rng = np.random.default_rng(0)
    for s in range(3):
        feed.advance(s, 1.0, rng)
    np.testing.assert_allclose(feed.values(), [100 * 0.5 * 1.5, 50 * 1.5])
    bad = [
        ({"slot": 0, "size": 0.1}, "must have exactly one of step or time_s"),
        ({"step": 1, "slot": 5, "size": 0.1}, r"slot must be 'all' or an integer in \[0, 2\)"),
        ({"step": 1, "size": -1.0}, "a relative size must be > -1"),
        ({"step": 1, "size": 0.1, "when": 3}, "unknown key"),
    ]
    for ev, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            NewsShockFeed(2, inner=flat_inner(), events=[ev])
    with pytest.raises(ConfigError, match="inner must be a Feed with max_assets=3"):
        NewsShockFeed(3, inner=flat_inner())


# ------------------------------------------------------------------------------ entry points
PLUGIN = '''
import numpy as np
from marketsim.feeds import Feed


class ConstFeed(Feed):
    """Every active slot keeps the value it was added with."""

    def __init__(self, max_assets=1, name=None, level=1.0):
        super().__init__(max_assets, name=name)
        self._values = np.full(self.max_assets, np.nan)
        self.level = level

    def advance(self, step, dt_seconds, rng):
        pass

    def values(self):
        return self._values

    def add_asset(self, slot, initial_value, **params):
        self._values[self.check_slot(slot)] = initial_value

    def remove_asset(self, slot):
        self._values[self.check_slot(slot)] = np.nan

    def get_state(self):
        return {"values": self._values.copy()}

    def set_state(self, state):
        self._values[:] = state["values"]
'''


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    """A plug-in module on sys.path and a fake entry-point table; the registry is restored.

    (This module imports the built-in feed modules first, so the saved registry has them.)
    """
    (tmp_path / "ms_test_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "ms_broken_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [
        importlib.metadata.EntryPoint(
            "const_plugin", "ms_test_plugin:ConstFeed", ENTRY_POINT_GROUP
        ),
        importlib.metadata.EntryPoint("broken", "ms_broken_plugin:Thing", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("as_module", "ms_test_plugin", ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("other_group", "ms_test_plugin:ConstFeed", "elsewhere"),
    ]

    def fake_entry_points(**kw):
        return importlib.metadata.EntryPoints(e for e in eps if e.group == kw.get("group"))

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    saved = dict(FEED_TYPES)
    from marketsim.feeds import plugins

    loaded = set(plugins._loaded)
    yield
    FEED_TYPES.clear()
    FEED_TYPES.update(saved)
    plugins._loaded.clear()
    plugins._loaded.update(loaded)
    sys.modules.pop("ms_test_plugin", None)
    sys.modules.pop("ms_broken_plugin", None)


def test_make_feed_discovers_entry_point_feeds(plugin_env, caplog):
    assert "const_plugin" not in FEED_TYPES
    feed = make_feed("const_plugin", max_assets=2, level=3.0)  # lazy discovery in make_feed
    assert type(feed).__name__ == "ConstFeed" and feed.kind == "const_plugin"
    assert feed.name == "const_plugin" and feed.level == 3.0
    assert "broken plug-in" not in caplog.text
    assert "skipping feed plug-in 'broken'" in caplog.text  # logged, did not block the others
    assert "other_group" not in FEED_TYPES
    assert load_entry_point_feeds() == {"const_plugin": type(feed)}  # idempotent
    with pytest.raises(
        ConfigError,
        match=r"feed plug-in entry point 'broken' = 'ms_broken_plugin:Thing' failed to load: "
        r"RuntimeError: boom",
    ):
        make_feed("broken")
    with pytest.raises(ConfigError, match="unknown feed kind 'nope'; known kinds: .*const_plugin"):
        make_feed("nope")


def test_builtin_plugins_are_registered():
    for kind, cls in (("macro", MacroFeed), ("sentiment", SentimentFeed),
                      ("news_shock", NewsShockFeed)):  # fmt: skip
        assert FEED_TYPES[kind] is cls and cls.kind == kind
    feed = make_feed("sentiment", max_assets=2, phi=0.5)
    assert isinstance(feed, SentimentFeed)
    assert feeds_base.FEED_TYPES is FEED_TYPES
    load_entry_point_feeds()  # also imports the built-in optional feed modules
    assert FEED_TYPES["historical"] is HistoricalPriceFeed
