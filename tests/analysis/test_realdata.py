"""Tests of analysis.realdata: S&P 500 daily returns from the ``arch`` package and their facts.

Skipped when ``arch`` (an optional dependency) is not installed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("arch")

from analysis.realdata import compare_with_sp500, load_sp500, sp500_facts, sp500_returns  # noqa: E402
from marketsim.errors import ConfigError, DataError  # noqa: E402


@pytest.fixture(scope="module")
def facts():
    return sp500_facts(max_lag=30)


def test_returns_are_close_to_close_logs():
    p = load_sp500()
    r = sp500_returns(p)
    assert len(r) == len(p) - 1
    c = p["Adj Close"].to_numpy()
    assert r["r"].iloc[0] == pytest.approx(math.log(c[1] / c[0]))
    assert r["volume"].iloc[-1] == p["Volume"].iloc[-1]
    with pytest.raises(DataError, match="positive"):
        sp500_returns(pd.DataFrame({"Adj Close": [1.0], "Volume": [1.0]}))


def test_sp500_shows_the_classic_facts(facts):
    f = facts.set_index("name")
    assert f.loc["excess_kurtosis", "value"] > 3 and f.loc["excess_kurtosis", "passed"]
    assert 2 <= f.loc["tail_index", "value"] <= 5
    assert f.loc["volatility_clustering", "passed"]
    assert f.loc["leverage_effect", "passed"]  # equity indices: strong leverage effect
    assert f.loc["volume_volatility", "passed"]
    assert "trade_sign_memory" not in f.index


def test_compare_with_sp500(facts):
    sim = facts.copy()
    sim["value"] = np.arange(len(sim), dtype=float)
    sim = pd.concat([sim, facts.iloc[:1].assign(name="trade_sign_memory")], ignore_index=True)
    c = compare_with_sp500(sim, reference=facts)
    assert list(c.columns) == [
        *("name", "simulated", "simulated_passed", "sp500", "sp500_passed"),
        *("literature", "source"),
    ]
    assert c["simulated"].iloc[:-1].tolist() == list(range(len(facts)))
    assert c["sp500"].iloc[:-1].to_numpy() == pytest.approx(facts["value"].to_numpy())
    assert math.isnan(c["sp500"].iloc[-1])  # no trades in index data
    with pytest.raises(ConfigError, match="stylized_facts"):
        compare_with_sp500(pd.DataFrame({"x": [1]}), reference=facts)
