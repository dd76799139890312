"""Tests of marketsim.summary: statistics against slow obvious references, strict JSON, table.

The references loop over rows in plain Python; hypothesis draws quote series with gaps,
one-sided books and day boundaries.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.background.base import BUY, SELL, Trader, TraderParams, register_trader
from marketsim.model import MarketModel
from marketsim.params import Num
from marketsim.summary import (
    TRADING_DAYS_PER_YEAR,
    agent_type_stats,
    asset_stats,
    format_summary_table,
    summarize,
    summarize_frames,
    to_json,
    write_summary,
)


class _SumZIParams(TraderParams):
    size: Num = 2


@register_trader("summary_test_zi")
class _SumZI(Trader):
    """Limit orders around the fundamental with a random offset (test-only)."""

    Params = _SumZIParams

    def act(self, step: int) -> None:
        s = self.slots[0]
        side = BUY if self.model.rng.random() < 0.5 else SELL
        off = int(self.model.rng.integers(-4, 12))
        self.limit(s, side, int(self.fundamental(s)) - side * off, int(self.p["size"]))


# ---------------------------------------------------------------------------- references
def ref_asset(rows, trades, tick, spd):
    """rows: (step, bid, ask) in any order; trades: (price, qty)."""
    rows = sorted(rows, key=lambda r: r[0])
    mids, spreads = [], []
    for step, b, a in rows:
        if not (math.isnan(b) or math.isnan(a)):
            mids.append((step, (a + b) / 2))
            spreads.append((a - b, (a + b) / 2))
    num = den = 0.0
    n = 0
    for (s0, m0), (s1, m1) in zip(mids, mids[1:], strict=False):
        if s0 // spd == s1 // spd and s1 > s0:
            num += math.log(m1 / m0) ** 2
            den += s1 - s0
            n += 1
    vol = math.sqrt(num / den) if n else math.nan
    vol_q = sum(q for _, q in trades)
    return {
        "first_mid": mids[0][1] if mids else math.nan,
        "last_mid": mids[-1][1] if mids else math.nan,
        "return": mids[-1][1] / mids[0][1] - 1 if mids else math.nan,
        "volatility_per_step": vol,
        "volatility_annualised": vol * math.sqrt(spd * TRADING_DAYS_PER_YEAR),
        "n_returns": n,
        "spread_mean_ticks": sum(s / tick for s, _ in spreads) / len(spreads)
        if spreads
        else math.nan,
        "spread_mean_bps": sum(s / m * 1e4 for s, m in spreads) / len(spreads)
        if spreads
        else math.nan,
        "volume": vol_q,
        "trades": len(trades),
        "vwap": sum(p * q for p, q in trades) / vol_q if vol_q else math.nan,
    }


def _quotes(rows, sym="AAA"):
    return pd.DataFrame(
        {
            "step": np.array([r[0] for r in rows], np.int64),
            "asset": pd.Categorical([sym] * len(rows)),
            "bid": np.array([r[1] for r in rows], float),
            "ask": np.array([r[2] for r in rows], float),
        }
    )


def _trades(tr, sym="AAA"):
    return pd.DataFrame(
        {
            "step": np.arange(len(tr), dtype=np.int64),
            "asset": pd.Categorical([sym] * len(tr)),
            "price": np.array([p for p, _ in tr], float),
            "qty": np.array([q for _, q in tr], np.int64),
        }
    )


def _close(a, b):
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None or (isinstance(a, float) and math.isnan(a))
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


@st.composite
def quote_series(draw):
    n = draw(st.integers(0, 40))
    steps = np.cumsum(draw(st.lists(st.integers(1, 7), min_size=n, max_size=n))).tolist()
    rows = []
    for s in steps:
        bid = draw(st.integers(900, 1100))
        spread = draw(st.integers(1, 9))
        side = draw(st.sampled_from(["both", "both", "both", "bid", "ask", "none"]))
        b = bid * 0.05 if side in ("both", "bid") else math.nan
        a = (bid + spread) * 0.05 if side in ("both", "ask") else math.nan
        rows.append((int(s), b, a))
    trades = draw(st.lists(st.tuples(st.integers(1, 400), st.integers(1, 50)), max_size=10))
    trades = [(p * 0.25, q) for p, q in trades]
    spd = draw(st.integers(5, 60))
    return rows, trades, spd


@settings(max_examples=120, deadline=None)
@given(quote_series(), st.randoms(use_true_random=False))
def test_asset_stats_matches_reference(data, rnd):
    rows, trades, spd = data
    shuffled = list(rows)
    rnd.shuffle(shuffled)  # the function must sort by step itself
    got = asset_stats(_quotes(shuffled), _trades(trades), {"AAA": 0.05}, spd)["AAA"]
    want = ref_asset(rows, trades, 0.05, spd)
    for k, v in want.items():
        assert _close(got[k], v), (k, got[k], v)


def test_asset_stats_known_values():
    # two days of 10 steps; mids 100 -> 101 -> (overnight) 99 -> 99.99
    rows = [(0, 99.99, 100.01), (4, 100.99, 101.01), (10, 98.99, 99.01), (12, 99.98, 100.0)]
    got = asset_stats(_quotes(rows), _trades([(100.0, 2), (101.0, 1)]), {"AAA": 0.01}, 10)
    a = got["AAA"]
    r1, r2 = math.log(101 / 100), math.log(99.99 / 99)
    assert a["n_returns"] == 2  # the overnight 101 -> 99 is left out
    assert a["volatility_per_step"] == pytest.approx(math.sqrt((r1**2 + r2**2) / (4 + 2)))
    assert a["return"] == pytest.approx(99.99 / 100 - 1)
    assert a["spread_mean_ticks"] == 2.0 and a["spread_median_ticks"] == 2.0
    assert a["vwap"] == pytest.approx(301 / 3)
    assert a["volume"] == 3 and a["trades"] == 2


def test_asset_stats_multi_asset_and_empty():
    q = pd.concat([_quotes([(0, 1.0, 1.1), (1, 1.0, 1.2)], "A"), _quotes([(0, 5.0, 5.5)], "B")])
    got = asset_stats(q, _trades([(1.05, 4)], "A"), {"A": 0.1, "B": 0.5, "C": 0.01}, 100)
    assert list(got) == ["A", "B", "C"]
    assert got["A"]["spread_mean_ticks"] == pytest.approx(1.5)
    assert got["B"]["trades"] == 0 and math.isnan(got["B"]["vwap"])
    assert math.isnan(got["B"]["volatility_per_step"])  # one mid: no return
    assert math.isnan(got["C"]["first_mid"]) and got["C"]["volume"] == 0


# ---------------------------------------------------------------------------- agent types
def _accounts():
    rows = []
    # account 0 is the exchange; 1, 2 "mm"; 3 "noise"; 4 "noise" opened at step 60
    eq = {0: [0, 1, 2], 1: [100, 110, 130], 2: [100, 90, 80], 3: [50, 55, 40], 4: [None, 20, 26]}
    typ = {0: "exchange", 1: "mm", 2: "mm", 3: "noise", 4: "noise"}
    for k, step in enumerate((0, 60, 119)):
        for acc, e in eq.items():
            if e[k] is not None:
                rows.append((step, acc, typ[acc], 0.0, float(e[k])))
    return pd.DataFrame(rows, columns=["step", "account", "agent_type", "cash", "equity"]).astype(
        {"agent_type": "category"}
    )


def test_agent_type_stats_reference():
    pos = pd.DataFrame(
        {
            "step": [60, 119, 119, 119],
            "account": [1, 1, 3, 4],
            "asset": pd.Categorical(["X", "X", "X", "Y"]),
            "qty": [5, 6, -2, 7],
        }
    )
    fees = np.array([0.0, 1.0, 2.0, 0.5, 0.25])
    got = agent_type_stats(_accounts(), pos, fees, ["X", "Y"])
    assert list(got) == ["mm", "noise"]  # exchange left out
    mm, noise = got["mm"], got["noise"]
    assert mm["count"] == 2 and noise["count"] == 2
    assert mm["pnl_total"] == 10 and mm["pnl_mean"] == 5
    assert mm["pnl_std"] == pytest.approx(np.std([30, -20], ddof=1))
    assert (mm["pnl_min"], mm["pnl_max"]) == (-20, 30)
    assert mm["return_mean"] == pytest.approx((0.3 - 0.2) / 2)
    # account 4 starts at its first snapshot (step 60): pnl 6
    assert noise["pnl_total"] == -10 + 6 and noise["initial_equity"] == 70
    assert mm["fees_total"] == 3.0 and noise["fees_total"] == 0.75
    assert mm["final_position_mean"] == {"X": 3.0, "Y": 0.0}
    assert noise["final_position_mean"] == {"X": -1.0, "Y": 3.5}


def test_agent_type_stats_single_account_std_is_nan():
    acc = _accounts()
    acc = acc[acc["account"].isin([0, 3])]
    got = agent_type_stats(acc)
    assert got["noise"]["count"] == 1 and math.isnan(got["noise"]["pnl_std"])
    assert got["noise"]["fees_total"] is None
    assert agent_type_stats(acc.iloc[:0]) == {}


# ---------------------------------------------------------------------------- JSON and table
def _synthetic_summary():
    rows = [(0, 99.99, 100.01), (1, 99.98, 100.02), (2, math.nan, 100.0)]
    return summarize_frames(
        _quotes(rows, "AAA"),
        _trades([(100.0, 3)], "AAA"),
        _accounts(),
        None,
        tick_sizes={"AAA": 0.01, "EMPTY": 0.05},
        steps_per_day=100,
        step_seconds=1.0,
        header={"scenario": "syn", "seed": 3, "orders": 9, "rejects": {"BAD_QTY": 2}},
    )


def test_strict_json_has_null_not_nan(tmp_path):
    s = _synthetic_summary()
    assert s["assets"]["EMPTY"]["first_mid"] is None  # NaN -> None
    text = to_json(s)
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    p = write_summary(
        {"x": float("nan"), "y": [np.float64("inf"), np.int64(3)]}, tmp_path / "s.json"
    )
    assert json.loads(p.read_text()) == {"x": None, "y": [None, 3]}


def test_format_summary_table_aligned():
    s = _synthetic_summary()
    text = format_summary_table(s)
    lines = text.splitlines()
    assert lines[0].startswith("Run syn  seed 3")
    assert "rejects 2 (BAD_QTY 2)" in text
    for title in ("Assets", "Agents"):
        i = next(k for k, x in enumerate(lines) if x.startswith(title))
        block = []
        for x in lines[i + 1 :]:
            if not x:
                break
            block.append(x)
        assert set(block[1].replace(" ", "")) == {"-"}
        assert len({len(x) for x in block}) == 1, block  # every row as wide as the rule
    empty_row = next(x for x in lines if x.startswith("EMPTY"))
    assert " - " in empty_row  # missing values shown as '-'
    assert "+100.01" not in text and "100.00" in text  # prices to the tick


# ---------------------------------------------------------------------------- on a model
def test_summarize_model_consistent_with_counters():
    sc = {
        "simulation": {"name": "sum", "open": "09:30", "close": "09:45", "record_every": 50},
        "assets": [{"symbol": "ABC"}],
        "exchange": {"maker_fee_bps": -0.1, "taker_fee_bps": 0.3},
        "agents": [
            {
                "type": "summary_test_zi",
                "name": "zi",
                "count": 15,
                "cash": 1e5,
                "shares": {"ABC": 20},
                "params": {"wake_rate_per_hour": 200},
            }
        ],
    }
    m = MarketModel(sc, seed=2).run()
    s = summarize(m)
    trades = m.trades()
    assert s["trades"] == len(trades) == int(m.exchange.n_trades.sum()) > 0
    assert s["volume"] == int(trades["qty"].sum()) == int(m.exchange.volume.sum())
    assert s["orders"] == m.exchange.n_orders
    assert s["rejects"] == dict(sorted(m.exchange.rejects.items()))
    assert s["steps"] == 900 and s["days"] == 1 and s["seed"] == 2
    assert s["scenario_hash"] == m.scenario_hash
    zi = s["agent_types"]["zi"]
    assert zi["count"] == 15
    # every fee paid by the agents went to the exchange (rebates included)
    assert zi["fees_total"] == pytest.approx(s["fees_collected"], abs=1e-9)
    assert zi["fees_total"] > 0
    # positions are conserved: the agents hold all the shares issued
    assert zi["final_position_mean"]["ABC"] == pytest.approx(20.0)
    json.loads(to_json(s))
    assert "zi" in format_summary_table(s)
