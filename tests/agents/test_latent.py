"""`latent_liquidity`: the demand-curve ladder against a brute-force reference, and the agent in a
market (orders in the book, position on its curve after fills, requotes as a diff, bad params)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.background import LatentLiquidity
from agents.background.latent import demand_ladder, demand_target
from marketsim.book import BUY, SELL
from marketsim.errors import ConfigError
from tests.agents.test_traders import agents_of, build, group, lp_account, place, set_book


def ladder_reference(pos, s, b, rho, cap, bid, ask, levels, hi):
    """Every price visited, no skipping: the steps of S(p) = max(0, pos - target(p)) upward
    from bid + 1 and of B(p) = max(0, target(p) - pos) downward from ask - 1."""
    sells, done = [], 0
    for p in range(max(bid + 1, 1), hi):
        cum = max(0, pos - demand_target(p, s, b, rho, cap))
        if cum > done:
            sells.append((p, cum - done))
            done = cum
    buys, done = [], 0
    for p in range(min(ask - 1, hi - 1), 0, -1):
        cum = max(0, demand_target(p, s, b, rho, cap) - pos)
        if cum > done:
            buys.append((p, cum - done))
            done = cum
    return sells[:levels], buys[:levels]


@settings(max_examples=300, deadline=None)
@given(
    centre=st.integers(40, 260),
    half_gap=st.integers(0, 30),
    extra=st.integers(1, 2),
    rho=st.integers(1, 40),
    cap=st.integers(1, 300),
    pos_frac=st.floats(-1.0, 1.0),
    touch=st.integers(-60, 60),
    spread=st.integers(1, 5),
    levels=st.integers(1, 12),
)
def test_ladder_matches_brute_force_reference(
    centre, half_gap, extra, rho, cap, pos_frac, touch, spread, levels
):
    b = centre - half_gap
    s = b + half_gap * 2 + extra
    pos = int(round(pos_frac * cap))
    bid = centre + touch
    ask = bid + spread
    hi = 400
    got = demand_ladder(pos, s, b, rho, cap, bid, ask, levels, hi)
    assert got == ladder_reference(pos, s, b, rho, cap, bid, ask, levels, hi)
    sells, buys = got
    # post-only and never beyond its saturation
    assert all(p > bid for p, _ in sells) and all(p < ask for p, _ in buys)
    assert sum(q for _, q in sells) <= pos + cap and sum(q for _, q in buys) <= cap - pos


def test_demand_curve_shape():
    # edges 105 / 95, 10 lots per tick, saturation 35
    assert [demand_target(p, 105, 95, 10, 35) for p in (96, 100, 104)] == [0, 0, 0]
    assert [demand_target(p, 105, 95, 10, 35) for p in (105, 106, 108, 200)] == [-10, -20, -35, -35]
    assert [demand_target(p, 105, 95, 10, 35) for p in (95, 94, 92, 1)] == [10, 20, 35, 35]


def _latent(**params) -> tuple:
    base = {
        "threshold_ticks": 5.0, "lots_per_tick": 10, "max_position_lots": 35, "levels": 10,
        "anchor_halflife_s": 1e9,
    }  # fmt: skip
    m = build(group("latent_liquidity", **{**base, **params}))
    (a,) = agents_of(m, LatentLiquidity)
    return m, a, lp_account(m)


def _book(m) -> tuple[list, list]:
    bp, bq, ap, aq = m.exchange.books[0].depth(20)
    return list(zip(bp.tolist(), bq.tolist(), strict=True)), list(
        zip(ap.tolist(), aq.tolist(), strict=True)
    )


def test_agent_rests_its_curve_around_the_anchor_and_stays_on_it_after_fills():
    m, a, lp = _latent()
    base = a.position(0)
    set_book(m, lp, 9999, 10001, qty=5)  # mid 10000: anchor 10000, edges 10005 / 9995
    a.act(m.t)
    m.exchange.match(m.t)
    bids, asks = _book(m)
    assert (10005, 10) in asks and (10008, 5) in asks and (10001, 5) in asks
    assert (9995, 10) in bids and (9992, 5) in bids
    theirs = {(o[1], o[2]): o[3] for o in a.live_orders.values()}
    assert theirs == {
        (SELL, 10005): 10, (SELL, 10006): 10, (SELL, 10007): 10, (SELL, 10008): 5,
        (BUY, 9995): 10, (BUY, 9994): 10, (BUY, 9993): 10, (BUY, 9992): 5,
    }  # fmt: skip
    n = m.exchange.n_orders
    a.act(m.t)  # nothing changed: every level kept (queue priority)
    assert m.exchange.n_orders == n
    # a buyer sweeps up to 10006: the agent sold 20 lots, its curve's target at 10006
    m.exchange.cancel_all(m.t, owner=lp)
    place(m, lp, BUY, 10006, 25)
    assert (
        a.inventory(0) == a.position(0) - base == demand_target(10006, 10005, 9995, 10, 35) == -20
    )
    assert not math.isnan(a.mid(0))  # the book still has both sides
    # the price comes back: it buys back along the curve, down to flat inside the edges
    set_book(m, lp, 10001, 10003, qty=5)
    a.act(m.t)
    m.exchange.match(m.t)
    theirs = {(o[1], o[2]): o[3] for o in a.live_orders.values()}
    assert theirs[(BUY, 10002)] == 20  # target 0 at 10002: the whole short rests one tick in
    assert theirs[(SELL, 10007)] == 10 and theirs[(SELL, 10008)] == 5


def test_anchor_moves_with_the_mid_at_its_half_life_and_is_checkpointed():
    m, a, lp = _latent(anchor_halflife_s=100.0)
    set_book(m, lp, 9999, 10001)
    assert a.anchor(0, 10000.0, 0) == 10000.0
    assert a.anchor(0, 10100.0, 100) == pytest.approx(10050.0)  # one half-life: half way
    st = a.get_state()
    x = a.anchor(0, 10100.0, 200)
    a.set_state(st)
    assert a.anchor(0, 10100.0, 200) == x


def test_market_orders_against_a_population_meet_growing_depth():
    """Thresholds spread over 0..20 ticks: resting depth grows with the distance (V shape)."""
    g = group(
        "latent_liquidity", 20, threshold_ticks={"dist": "uniform", "low": 0.0, "high": 20.0},
        lots_per_tick=5, max_position_lots=1000, levels=40, anchor_halflife_s=1e9,
    )  # fmt: skip
    m = build(g)
    lp = lp_account(m)
    set_book(m, lp, 9999, 10001, qty=1)
    for a in agents_of(m, LatentLiquidity):
        a.act(m.t)
    m.exchange.match(m.t)
    _, asks = _book(m)
    depth = dict(asks)

    def cum(x: int) -> int:  # resting asks within x ticks of the mid
        return sum(depth.get(p, 0) for p in range(10001, 10000 + x + 1))

    near = sum(depth.get(p, 0) for p in range(10002, 10007))
    far = sum(depth.get(p, 0) for p in range(10015, 10020))
    assert far > 2 * near > 0
    # the book's asks are the sum of the agents' curves: sum_i min(M, rho (x - s_i + 1)+)
    edges = [math.ceil(10000.0 + a.threshold) for a in agents_of(m, LatentLiquidity)]
    for x in (4, 8, 12, 16):
        want = sum(min(1000, 5 * max(0, 10000 + x - e + 1)) for e in edges)
        assert cum(x) == want + 1  # + the provider's 1 lot at 10001


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"lots_per_tick": 0}, "lots_per_tick"),
        ({"max_position_lots": 0}, "max_position_lots"),
        ({"levels": 0}, "levels"),
        ({"threshold_ticks": -1.0}, "threshold_ticks"),
        ({"anchor_halflife_s": 0.0}, "anchor_halflife_s"),
        ({"anchor_fundamental_weight": 1.5}, "anchor_fundamental_weight"),
    ],
)
def test_bad_params_raise_naming_the_key(params, needle):
    with pytest.raises(ConfigError, match=needle):
        _latent(**params)
