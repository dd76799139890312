"""Reactive replay: prepared historical bars drive the fundamental of a running market."""

from __future__ import annotations

import numpy as np
import pandas as pd

from marketsim.data.prepare import prepare
from marketsim.model import MarketModel


def test_scenario_with_historical_fundamental(tmp_path):
    t = pd.date_range("2024-01-02 09:30", periods=120, freq="1min")
    px = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.003, 120)))
    df = pd.DataFrame(
        {"time": t, "ticker": "ABC", "open": px, "high": px, "low": px, "close": px, "volume": 100}
    )
    df.to_csv(tmp_path / "bars.csv", index=False)
    prepare([tmp_path / "bars.csv"], tmp_path / "prep", window=8)
    sc = {
        "simulation": {"days": 1, "close": "10:00"},
        "assets": [{"symbol": "ABC", "initial_price": 100.0}],
        "fundamental": {
            "kind": "historical",
            "params": {"path": str(tmp_path / "prep"), "bar_steps": 60},
        },
        "agents": [
            {"type": "noise", "count": 30, "cash": 1e6, "shares": {"ABC": 100}},
            {
                "type": "value",
                "count": 10,
                "cash": 1e6,
                "shares": {"ABC": 100},
                "params": {"r_bar_price": 100.0},
            },
            {"type": "market_maker", "count": 1, "cash": 1e7, "shares": {"ABC": 1000}},
        ],
    }
    m = MarketModel(sc)
    seen = []
    m.step_hooks.append(lambda mm: seen.append(float(mm.feed.values()[0])))
    m.run()
    # the fundamental steps through the bars' closes, one bar per 60 model steps
    assert seen[0] == px[0] and seen[60] == px[1] and seen[-1] == px[29]
    assert len(m.trades()) > 0
    m.ledger._check()
