"""Window replay: RL observations served from the prepared .npy windows, execution via a book."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from marketsim.data.prepare import prepare
from marketsim.data.windows import load_prepared
from marketsim.env.parallel import parallel_env
from marketsim.errors import ConfigError

W = 8
BAR_STEPS = 10


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    d = tmp_path_factory.mktemp("wr")
    t = pd.date_range("2024-01-02 09:30", periods=60, freq="1min")
    px = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.003, 60)))
    df = pd.DataFrame(
        {"time": t, "ticker": "ABC", "open": px, "high": px * 1.001, "low": px * 0.999,
         "close": px, "volume": np.arange(60) + 100.0}
    )  # fmt: skip
    df.to_csv(d / "bars.csv", index=False)
    prepare([d / "bars.csv"], d / "prep", window=W)
    return d / "prep"


def _scenario(prep, source="window_replay", window=W, **params):
    return {
        "simulation": {"close": "09:40", "max_assets": 2},
        "assets": [{"symbol": "ABC", "initial_price": 100.0}],
        "fundamental": {"kind": "historical", "params": {"path": str(prep), "bar_steps": BAR_STEPS}},
        "agents": [
            {"type": "noise", "count": 20, "cash": 1e6, "shares": {"ABC": 100}},
            {"type": "market_maker", "count": 1, "cash": 1e7, "shares": {"ABC": 1000}},
        ],
        "rl_agents": [
            {"name": "rl", "action_mode": "discrete", "cash": 1e6, "shares": {"ABC": 100},
             "window": window, "params": {"observation_source": source, **params}}
        ],
    }  # fmt: skip


def test_observations_are_the_npy_windows_at_the_feeds_bar(prep):
    windows = np.load(prep / "windows.npy")  # (T, N, W, F)
    data = load_prepared(prep)
    env = parallel_env(_scenario(prep), warmup_steps=5, max_steps=40)
    sp = env.observation_space("rl")["market"]
    assert sp.shape == (W, 2, len(data.fields))
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    seen = set()
    fills = 0
    while True:
        m = env.model
        b = m.feed.bar_index
        # aligned with the model clock: the feed has advanced t - 1 times (none at the open)
        assert b == (m.t - 1) // BAR_STEPS
        x = obs["rl"]["market"]
        assert sp.contains(x) and x.dtype == np.float32
        expect = np.nan_to_num(windows[b, 0].astype(np.float32), nan=0.0)
        np.testing.assert_array_equal(x[:, 0, :], expect)
        np.testing.assert_array_equal(x[:, 1, :], 0.0)  # empty slot
        # no look-ahead: the window's last row is the bar the fundamental currently shows
        close = data.fields.index("close")
        assert x[-1, 0, close] == np.float32(m.feed.values()[0])
        seen.add(b)
        obs, _, _, trunc, info = env.step({"rl": rng.integers(0, 3, size=2)})
        fills += info["rl"]["traded_lots"] if "rl" in info else 0
        if not env.agents:
            break
    assert len(seen) >= 4  # the bar index moved during the episode
    assert fills > 0  # execution went through the book


def test_window_replay_is_faster_than_live_features(prep):
    """Measured, not asserted (no wall-clock asserts): printed with -s."""
    out = {}
    for src in ("live", "window_replay"):
        env = parallel_env(_scenario(prep, source=src), warmup_steps=5, max_steps=80)
        env.reset(seed=2)
        t0 = time.perf_counter()
        n = 0
        while env.agents:
            env.step({"rl": np.ones(2, np.int64)})
            n += 1
        out[src] = n / (time.perf_counter() - t0)
    print(f"env steps/s: {out}")
    assert set(out) == {"live", "window_replay"}


def test_window_replay_needs_the_historical_fundamental(prep, tmp_path):
    sc = _scenario(prep)
    sc["fundamental"] = {"kind": "mean_reverting"}
    with pytest.raises(ConfigError, match="historical"):
        parallel_env(sc)
    with pytest.raises(ConfigError, match="window = 9"):
        parallel_env(_scenario(prep, window=W + 1))
    with pytest.raises(ConfigError, match="window_replay_dir"):
        parallel_env(_scenario(prep, window_replay_dir=str(tmp_path)))


def test_field_selection_sets_f(prep):
    env = parallel_env(_scenario(prep, window=4, window_replay_fields=["close", "volume"]))
    assert env.observation_space("rl")["market"].shape == (4, 2, 2)
    obs, _ = env.reset(seed=0)
    windows = np.load(prep / "windows.npy")
    data = load_prepared(prep)
    b = env.model.feed.bar_index
    cols = [data.fields.index("close"), data.fields.index("volume")]
    np.testing.assert_array_equal(obs["rl"]["market"][:, 0, :], windows[b, 0, -4:][:, cols])


def test_pettingzoo_api_under_window_replay(prep):
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env(_scenario(prep), warmup_steps=5, max_steps=20), num_cycles=20)
