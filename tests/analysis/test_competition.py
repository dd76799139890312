"""Tests of analysis.competition on a small hand-made market with two makers and one taker.

The expected live orders, time shares and volumes are worked out by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.competition import (
    compare_runs,
    competition_metrics,
    inventory,
    maker_quotes,
    maker_taker_volume,
    market_maker_accounts,
    quoting_stats,
)
from analysis.io import Run
from marketsim.errors import ConfigError

D1 = pd.Timestamp("2024-01-02 09:30")
D2 = pd.Timestamp("2024-01-03 09:30")


def _time(step):
    return D1 + pd.Timedelta(minutes=step) if step < 4 else D2 + pd.Timedelta(minutes=step - 4)


def market() -> Run:
    """Makers 1 and 2 (market_maker), taker 3 (noise); steps 0-3 on day 1, step 4 on day 2."""
    orders = [
        # step, account, kind, side, price, qty, order_id, status
        (0, 1, "LIMIT", 1, 99.99, 5, 1, "ACCEPTED"),
        (0, 1, "LIMIT", -1, 100.01, 5, 2, "ACCEPTED"),
        (0, 1, "LIMIT", 1, 99.98, 3, 3, "ACCEPTED"),
        (0, 1, "LIMIT", 1, 50.00, 3, 99, "PRICE_OUT_OF_RANGE"),  # rejected: ignored
        (0, 2, "LIMIT", -1, 100.01, 5, 10, "ACCEPTED"),
        (0, 2, "LIMIT", 1, 99.97, 2, 11, "ACCEPTED"),
        (2, 1, "CANCEL", 0, np.nan, 0, 1, "ACCEPTED"),
        (2, 1, "MODIFY", 0, np.nan, 1, 3, "ACCEPTED"),
        (2, 1, "LIMIT", -1, 100.02, 4, 4, "ACCEPTED"),
        (3, 2, "LIMIT", 1, 100.00, 2, 12, "ACCEPTED"),
        (3, 1, "LIMIT", 1, 100.01, 3, 5, "ACCEPTED"),  # marketable: fills fully against 2
        (4, 2, "LIMIT", -1, 100.05, 1, 13, "ACCEPTED"),  # new day: all earlier orders gone
    ]
    o = pd.DataFrame(
        orders, columns=["step", "account", "kind", "side", "price", "qty", "order_id", "status"]
    )
    o["time"] = [_time(s) for s in o["step"]]
    o["asset"] = "A"
    trades = [
        # step, price, qty, aggressor, buyer, seller
        (1, 100.01, 5, 1, 3, 1),  # noise buys 7: 5 from maker 1 (id 2 filled) ...
        (1, 100.01, 2, 1, 3, 2),  # ... and 2 from maker 2 (id 10 -> 3 left)
        (3, 100.01, 3, 1, 1, 2),  # maker 1 takes maker 2's last 3 lots of id 10
    ]
    t = pd.DataFrame(trades, columns=["step", "price", "qty", "aggressor", "buyer", "seller"])
    t["time"] = [_time(s) for s in t["step"]]
    t["asset"] = "A"
    quotes = [
        # step, bid, bid_qty, ask, ask_qty
        (0, 99.99, 5, 100.01, 10),
        (1, 99.99, 5, 100.01, 3),
        (2, 99.98, 1, 100.01, 3),
        (3, 100.00, 2, 100.02, 4),
        (4, 100.00, 9, 100.05, 1),
    ]
    q = pd.DataFrame(quotes, columns=["step", "bid", "bid_qty", "ask", "ask_qty"])
    q["time"] = [_time(s) for s in q["step"]]
    q["asset"] = "A"
    q["mid"] = (q["bid"] + q["ask"]) / 2
    acc = []
    for s in range(5):
        for a, typ, eq in (
            (1, "market_maker", 1000 + s),
            (2, "market_maker", 1000 - s),
            (3, "noise", 500),
        ):
            acc.append((s, a, typ, 0.0, float(eq)))
    accounts = pd.DataFrame(acc, columns=["step", "account", "agent_type", "cash", "equity"])
    pos = [(1, 1, -5), (2, 1, -5), (3, 1, -2), (4, 1, -2), (1, 2, -2), (2, 2, -2), (3, 2, -5)]
    pos += [(4, 2, -5), (1, 3, 7), (2, 3, 7), (3, 3, 7), (4, 3, 7)]
    positions = pd.DataFrame(pos, columns=["step", "account", "qty"]).assign(asset="A")
    events = pd.DataFrame({"step": [], "time": [], "kind": [], "account": []})
    return Run(
        trades=t,
        quotes=q,
        accounts=accounts,
        positions=positions,
        events=events,
        orders=o,
        summary={"assets": {"A": {"tick_size": 0.01}}},
    )


def test_market_maker_accounts():
    r = market()
    assert market_maker_accounts(r.accounts)["account"].tolist() == [1, 2]
    assert market_maker_accounts(r.accounts, ["noise"])["account"].tolist() == [3]
    assert market_maker_accounts(r.accounts, [2])["agent_type"].tolist() == ["market_maker"]


def test_inventory_and_volume():
    r = market()
    inv = inventory(r.positions, [1, 2], "A", steps=range(5))
    assert inv[1].tolist() == [0, -5, -5, -2, -2] and inv[2].tolist() == [0, -2, -2, -5, -5]
    v = maker_taker_volume(r.trades)
    assert v.loc[1, "maker_volume"] == 5 and v.loc[1, "taker_volume"] == 3
    assert v.loc[2, "maker_volume"] == 5 and v.loc[2, "taker_volume"] == 0
    assert v.loc[3, "taker_volume"] == 7 and v["maker_volume"].sum() == r.trades["qty"].sum()


def _state(own, step, acc):
    row = own[(own["step"] == step) & (own["account"] == acc)].iloc[0]
    return row["bid"], row["bid_qty"], row["ask"], row["ask_qty"]


def test_maker_quotes_rebuilds_live_orders():
    r = market()
    own = maker_quotes(r.orders, r.trades, [1, 2], "A", r.events)
    assert _state(own, 0, 1) == (99.99, 5, 100.01, 5)
    assert _state(own, 0, 2) == (99.97, 2, 100.01, 5)
    b, bq, a, aq = _state(own, 1, 1)  # ask id 2 filled
    assert (b, bq, aq) == (99.99, 5, 0) and np.isnan(a)
    assert _state(own, 1, 2)[2:] == (100.01, 3)
    assert _state(own, 2, 1) == (99.98, 1, 100.02, 4)  # cancel id 1, modify id 3 to 1 lot
    assert _state(own, 3, 1) == (99.98, 1, 100.02, 4)  # its marketable buy filled at once
    b, bq, a, aq = _state(own, 3, 2)
    assert (b, bq) == (100.00, 2) and np.isnan(a)
    b1 = _state(own, 4, 1)
    assert np.isnan(b1[0]) and np.isnan(b1[2])  # cleared at the new day
    assert np.isnan(_state(own, 4, 2)[0]) and _state(own, 4, 2)[2:] == (100.05, 1)


def test_quoting_stats_by_hand():
    r = market()
    own = maker_quotes(r.orders, r.trades, [1, 2], "A", r.events)
    s = quoting_stats(own, r.quotes, "A", 0.01)
    assert s.loc[1, "two_sided_share"] == pytest.approx(3 / 5)
    assert s.loc[1, "quoted_spread_ticks"] == pytest.approx((2 + 4 + 4) / 3)
    assert s.loc[1, "at_best_bid_share"] == pytest.approx(3 / 5)
    assert s.loc[1, "at_best_ask_share"] == pytest.approx(2 / 5)
    assert s.loc[1, "top_depth_share"] == pytest.approx((10 / 15 + 5 / 8 + 1 / 4 + 4 / 6 + 0) / 5)
    assert s.loc[2, "two_sided_share"] == pytest.approx(3 / 5)
    assert s.loc[2, "at_best_bid_share"] == pytest.approx(1 / 5)
    assert s.loc[2, "at_best_ask_share"] == pytest.approx(4 / 5)
    assert s.loc[2, "top_depth_share"] == pytest.approx(
        (5 / 15 + 3 / 8 + 3 / 4 + 2 / 6 + 1 / 10) / 5
    )


def test_competition_metrics_and_compare():
    r = market()
    m = competition_metrics(r).set_index("account")
    assert m.loc[1, "pnl"] == 4.0 and m.loc[2, "pnl"] == -4.0
    assert m.loc[1, "maker_share"] == pytest.approx(0.5)
    assert m.loc[1, "inv_mean_abs"] == pytest.approx((0 + 5 + 5 + 2 + 2) / 5)
    assert m.loc[2, "inv_max_abs"] == 5 and m.loc[2, "inv_final"] == -5
    assert "top_depth_share" in m.columns
    no_orders = Run(**{**r.__dict__, "orders": None})
    assert "top_depth_share" not in competition_metrics(no_orders).columns
    c = compare_runs({"two": r, "one": no_orders}, agent_types=None)
    assert c["run"].tolist() == ["two", "one"] and c["n_makers"].tolist() == [2, 2]
    assert c.loc[0, "mm_maker_hhi"] == pytest.approx(0.5) and c.loc[0, "mm_pnl_total"] == 0.0
    assert c.loc[0, "mm_maker_share"] == pytest.approx(1.0)
    assert c.loc[0, "spread_mean_ticks"] == pytest.approx((2 + 2 + 3 + 2 + 5) / 5)
    one = compare_runs([r], agent_types=[1])
    assert one.loc[0, "n_makers"] == 1 and one.loc[0, "mm_maker_hhi"] == 1.0
    with pytest.raises(ConfigError, match="agent types present"):
        competition_metrics(r, agent_types=["nobody"])
