"""Behaviour of the background traders on small deterministic setups.

Each test builds a one-asset market whose fundamental is constant (sigma = 0: 10,000 ticks),
places liquidity by hand through a "liquidity provider" account, calls an agent's ``act`` (or
its pure helpers) and inspects what it sent: the exchange's inbound queue or the book after
matching. The Kalman filter of the value trader is compared with a batch Gaussian-process
posterior; the VWAP schedule with numerical integration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic_core import PydanticUndefined

from agents.background import (
    TRADER_TYPES,
    ExecutionAgent,
    MarketMaker,
    MomentumTrader,
    NoiseTrader,
    SizeModel,
    SwitchingTrader,
    ValueTrader,
)
from agents.background.execution import u_shape_cumulative
from agents.background.switching import switching_counts
from marketsim.book import BUY, CANCEL, IOC, LIMIT, MARKET, ORDER_DTYPE, SELL
from marketsim.errors import ConfigError
from marketsim.model import MarketModel
from marketsim.params import Distribution

FUND = 10_000  # constant fundamental in ticks ($100 at 1 cent)


# ---------------------------------------------------------------------------------- helpers
def scenario(agents: list[dict], close: str = "10:30", seed: int = 3, **sim) -> dict:
    """One asset ABC at $100, tick 1 cent, constant fundamental; the given agent groups."""
    return {
        "simulation": {"name": "t", "seed": seed, "open": "09:30", "close": close, **sim},
        "assets": [{"symbol": "ABC", "tick_size": 0.01, "initial_price": 100.0}],
        "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-4, "sigma": 0.0}},
        "agents": agents,
    }


def group(type_name: str, count: int = 1, **params) -> dict:
    return {
        "type": type_name,
        "count": count,
        "cash": 1_000_000.0,
        "shares": {"ABC": 1000},
        "params": params,
    }


def build(*groups: dict, **kw) -> MarketModel:
    return MarketModel(scenario(list(groups), **kw))


def agents_of(model: MarketModel, cls: type) -> list:
    return [a for a in model.account_agent.values() if isinstance(a, cls)]


def lp_account(model: MarketModel) -> int:
    return model.open_account(10_000_000.0, {"ABC": 100_000}, "lp")


def place(model: MarketModel, acc: int, side: int, price: int, qty: int, kind: int = LIMIT):
    """Send one order straight to the book (no latency); return its fills."""
    ex = model.exchange
    o = np.zeros(1, dtype=ORDER_DTYPE)
    o[0] = (ex.new_order_id(), acc, price, qty, kind, side)
    return ex.execute_now(model.t, 0, o)


def set_book(model: MarketModel, acc: int, bid: int, ask: int, qty: int = 50) -> None:
    """Replace the provider's quotes by one bid and one ask."""
    model.exchange.cancel_all(model.t, owner=acc)
    place(model, acc, BUY, bid, qty)
    place(model, acc, SELL, ask, qty)


def queued(model: MarketModel, account: int | None = None) -> list[tuple]:
    """Orders waiting in the exchange's inbound queue: (order_id, owner, price, qty, kind, side)."""
    out = [m for q in model.exchange._queue.values() for per in q for m in per]
    return [m for m in out if account is None or m[1] == account]


def clear_queue(model: MarketModel) -> None:
    model.exchange._queue.clear()


# ---------------------------------------------------------------------------------- registry
def test_every_type_is_registered_with_documented_params():
    assert {"noise", "value", "market_maker", "momentum", "execution", "switching"} <= set(
        TRADER_TYPES
    )
    for name, cls in TRADER_TYPES.items():
        if cls.__module__.startswith("tests"):
            continue
        assert cls.type_name == name
        for fname, field in cls.Params.model_fields.items():
            assert field.description, f"{name}.{fname} has no description"
            d = field.default
            if d is not PydanticUndefined and isinstance(d, float):
                assert isinstance(cls.Params().model_dump()[fname], float), (name, fname)


def test_num_params_accept_per_agent_distributions():
    m = build(
        group("noise", 5, size_mean_lots={"dist": "uniform", "low": 2.0, "high": 50.0}),
        group("market_maker", 3, levels={"dist": "choice", "values": [1, 2, 3]}),
    )
    sizes = {round(math.exp(a.size_model._mu), 6) for a in agents_of(m, NoiseTrader)}
    assert len(sizes) == 5
    assert all(
        a.levels in (1, 2, 3) and isinstance(a.levels, int) for a in agents_of(m, MarketMaker)
    )
    assert not any(
        isinstance(v, Distribution) for a in m.account_agent.values() for v in a.p.values()
    )


def test_non_numeric_params_reach_the_agent():
    m = build(group("execution", side="sell", algo="vwap", aggression="limit_at_touch"))
    (ex,) = agents_of(m, ExecutionAgent)
    assert (ex.side, ex.algo, ex.aggression) == (SELL, "vwap", "limit_at_touch")


@pytest.mark.parametrize(
    ("grp", "needle"),
    [
        (group("momentum", short_window=10, long_window=10), "params.long_window = 10"),
        (group("noise", depth_tail_alpha=1.0), "params.depth_tail_alpha = 1.0"),
        (group("noise", market_prob=1.5), "params.market_prob = 1.5"),
        (group("market_maker", vol_ewma_alpha=0.0), "params.vol_ewma_alpha = 0.0"),
        (group("execution", wake_interval_s=0.0), "params.wake_interval_s = 0.0"),
        (group("execution", participation=1.0), "params.participation = 1.0"),
    ],
)
def test_bad_drawn_params_raise_config_error_naming_them(grp, needle):
    with pytest.raises(ConfigError, match="agents group") as e:
        build(grp)
    assert needle in str(e.value)


def test_execution_window_is_validated_at_load():
    with pytest.raises(ConfigError, match=r"params.end_s = 50(.0)?: must be > start_s \(100\)"):
        build(group("execution", start_s=100.0, end_s=50.0))


# ---------------------------------------------------------------------------------- noise
def test_size_model_mean_and_round_lots():
    rng = np.random.default_rng(0)
    sm = SizeModel(12.0, 0.7)
    x = np.array([sm.draw(rng) for _ in range(40_000)])
    assert x.min() >= 1 and abs(x.mean() - 12.0) < 0.3
    rl = SizeModel(12.0, 0.7, round_lot_prob=1.0, round_lot_lots=100)
    y = np.array([rl.draw(rng) for _ in range(5000)])
    assert (y % 100 == 0).all() and 0.85 < (y == 100).mean() < 0.90
    assert SizeModel(7.4, 0.0).draw(rng) == 7


def test_noise_passive_orders_sit_at_or_behind_own_best_with_configured_depth():
    m = build(
        group(
            "noise",
            market_prob=0.0,
            inside_spread_prob=0.0,
            depth_mean_ticks=3.0,
            depth_tail_alpha=50.0,
            max_depth_ticks=1000,
        )
    )
    lp = lp_account(m)
    set_book(m, lp, 9990, 10010)
    (a,) = agents_of(m, NoiseTrader)
    for _ in range(4000):
        a.act(m.t)
    orders = queued(m, a.account)
    assert len(orders) == 4000 and all(o[4] == LIMIT for o in orders)
    depth = np.array([9990 - o[2] if o[5] == BUY else o[2] - 10010 for o in orders])
    assert depth.min() >= 0
    assert abs(depth.mean() - 3.0) < 0.2
    buys = np.mean([o[5] == BUY for o in orders])
    assert 0.45 < buys < 0.55


def test_noise_inside_spread_and_market_orders():
    m = build(group("noise", market_prob=0.0, inside_spread_prob=1.0))
    lp = lp_account(m)
    set_book(m, lp, 9990, 10000)
    (a,) = agents_of(m, NoiseTrader)
    for _ in range(500):
        a.act(m.t)
    prices = [o[2] for o in queued(m, a.account)]
    assert min(prices) == 9991 and max(prices) == 9999
    m2 = build(group("noise", market_prob=1.0, aggressive_style="market"))
    (b,) = agents_of(m2, NoiseTrader)
    set_book(m2, lp_account(m2), 9990, 10000)
    for _ in range(50):
        b.act(m2.t)
    assert {o[4] for o in queued(m2, b.account)} == {MARKET}
    m3 = build(group("noise", market_prob=1.0, aggressive_style="touch_limit"))
    (c,) = agents_of(m3, NoiseTrader)
    set_book(m3, lp_account(m3), 9990, 10000)
    for _ in range(50):
        c.act(m3.t)
    assert {(o[4], o[2]) for o in queued(m3, c.account)} == {(LIMIT, 10000), (LIMIT, 9990)}


def test_noise_vol_feedback_scales_the_market_order_probability():
    m = build(group("noise", market_prob=0.2, vol_feedback=0.5, vol_fast_halflife_s=10.0,
                    vol_slow_halflife_s=1000.0, max_market_prob=0.5))  # fmt: skip
    lp = lp_account(m)
    (a,) = agents_of(m, NoiseTrader)
    set_book(m, lp, 9999, 10001)  # mid 10000
    assert a._market_prob(0, 0) == 0.2  # first look: nothing to compare yet
    set_book(m, lp, 10003, 10005)  # +4 ticks in 4 s: r = 2 ticks / sqrt(s)
    assert a._market_prob(0, 4) == pytest.approx(0.2)  # fast == slow after one move
    fast, slow = 2.0, 2.0
    set_book(m, lp, 10003, 10005)  # quiet for 100 s: r = 0
    fast *= 2.0 ** (-100 / 10.0)
    slow *= 2.0 ** (-100 / 1000.0)
    assert a._market_prob(0, 104) == pytest.approx(0.2 * (fast / slow) ** 0.5)
    assert a._vol[0][2:] == pytest.approx((fast, slow))
    set_book(m, lp, 10403, 10405)  # 400 ticks in 10 s: 0.2 * (fast / slow)^0.5 > 0.5, capped
    assert a._market_prob(0, 114) == 0.5
    # off by default: the plain probability, no state kept
    m2 = build(group("noise", market_prob=0.2))
    (b,) = agents_of(m2, NoiseTrader)
    b.act(0)
    assert b.vol_feedback == 0.0 and b._vol == {}


@pytest.mark.parametrize("buy_prob, extra", [(0.5, 0), (0.5, 20), (0.5, -40), (0.7, 20)])
def test_noise_inventory_aversion_tilts_the_side_toward_its_endowment(buy_prob, extra):
    """With ``inventory_scale_lots = s`` the buy odds are ``b e^-x / (b e^-x + (1 - b) e^x)``,
    ``x`` the position beyond the endowment over ``s``: binomial check of 4000 wake-ups."""
    m = build(group("noise", market_prob=0.0, buy_prob=buy_prob, inventory_scale_lots=20.0))
    lp = lp_account(m)
    set_book(m, lp, 9990, 10000)
    (a,) = agents_of(m, NoiseTrader)
    if extra:  # trade ``extra`` lots against the provider, then restore its quotes
        place(m, a.account, BUY if extra > 0 else SELL, 10000 if extra > 0 else 9990, abs(extra))
        set_book(m, lp, 9990, 10000)
    assert a.position(0) == 1000 + extra  # endowment 1000 (``group``)
    n = 4000
    for _ in range(n):
        a.act(m.t)
    buys = sum(o[5] == BUY for o in queued(m, a.account))
    x = extra / 20.0
    up, down = buy_prob * np.exp(-x), (1 - buy_prob) * np.exp(x)
    p = up / (up + down)
    assert abs(buys - n * p) <= 4.5 * np.sqrt(n * p * (1 - p)) + 1
    if extra == 20 and buy_prob == 0.5:
        assert buys < 0.2 * n  # long 20 lots over the endowment: mostly sells
    # off (the default): the plain buy probability, whatever the position
    m2 = build(group("noise", buy_prob=buy_prob))
    (b,) = agents_of(m2, NoiseTrader)
    set_book(m2, lp_account(m2), 9990, 10000)
    place(m2, b.account, BUY, 10000, 30)
    assert b.position(0) == 1030 and b._buy_prob(0) == buy_prob


@pytest.mark.parametrize(
    "params, needle",
    [({"vol_feedback": -1.0}, "vol_feedback"), ({"vol_fast_halflife_s": 0.0}, "vol_fast"),
     ({"vol_slow_halflife_s": 0.0}, "vol_slow"), ({"max_market_prob": 1.5}, "max_market_prob"),
     ({"inventory_scale_lots": -1.0}, "inventory_scale_lots")],
)  # fmt: skip
def test_noise_vol_feedback_bad_params_name_the_key(params, needle):
    with pytest.raises(ConfigError, match=needle):
        build(group("noise", **params))


def test_noise_seeds_an_empty_book_around_the_fundamental():
    m = build(group("noise", market_prob=0.0, depth_tail_alpha=50.0, depth_mean_ticks=1.0))
    (a,) = agents_of(m, NoiseTrader)
    for _ in range(200):
        a.act(m.t)
    for o in queued(m, a.account):
        assert (o[2] < FUND) if o[5] == BUY else (o[2] > FUND)
        assert abs(o[2] - FUND) < 30


def test_noise_cancels_stale_orders_after_lifetime():
    m = build(group("noise", market_prob=0.0, order_lifetime_s=10.0))
    (a,) = agents_of(m, NoiseTrader)
    a.act(0)
    m.exchange.match(m.t)
    ((first, *_),) = queued(m, a.account) or [(a._expiry[0][2],)]
    assert m.exchange.books[0].order(first) is not None
    a.act(9)  # 9 s later: not stale yet
    assert all(o[4] != CANCEL for o in queued(m, a.account))
    m.exchange.match(m.t)
    a.act(10)  # the first order has lived 10 s: cancelled; the second (placed at 9) stays
    cancels = [o[0] for o in queued(m, a.account) if o[4] == CANCEL]
    assert cancels == [first]
    assert [e[0] for e in a._expiry] == [19, 20]


def test_single_wake_per_day_noise_wakes_once_a_day():
    m = build(group("noise", 30, single_wake_per_day=True), close="10:00", days=2)
    m.run()
    assert [a.n_wakes for a in agents_of(m, NoiseTrader)] == [2] * 30


# ---------------------------------------------------------------------------------- value
def _ou_cov(t: np.ndarray, kappa: float, sigma: float) -> np.ndarray:
    s, u = np.meshgrid(t, t, indexing="ij")
    if kappa == 0:
        return sigma**2 * np.minimum(s, u)
    return sigma**2 / (2 * kappa) * (np.exp(-kappa * abs(s - u)) - np.exp(-kappa * (s + u)))


@pytest.mark.parametrize("kappa", [0.0, 2e-3])
def test_value_filter_matches_batch_gaussian_posterior(kappa):
    """Kalman estimate == posterior mean/var of an OU started at r_bar (variance 0) at the open."""
    r_bar, fsig, obs_sig = 100.0, 0.02, 0.05
    m = build(
        group(
            "value",
            r_bar_price=r_bar,
            kappa_per_s=kappa,
            fund_sigma_per_sqrt_s=fsig,
            obs_noise_sigma=obs_sig,
            project_to_close=False,
        )
    )
    (a,) = agents_of(m, ValueTrader)
    steps = [5, 40, 41, 300, 1000]
    obs = []
    for k, st in enumerate(steps):
        a.model.fundamental_ticks = lambda s, k=k: FUND + 7.0 * k  # any path: only obs matter
        twin = np.random.default_rng()
        twin.bit_generator.state = a.drng.bit_generator.state  # its own stream
        obs.append(FUND + 7.0 * k + obs_sig / 0.01 * twin.standard_normal())
        a.estimate(0, st, 0.01)
    t = np.asarray(steps, dtype=float)
    cov = _ou_cov(t, kappa, fsig / 0.01)
    noise = (obs_sig / 0.01) ** 2 * np.eye(len(t))
    w = np.linalg.solve(cov + noise, cov[-1])
    mean = r_bar / 0.01 + w @ (np.asarray(obs) - r_bar / 0.01)
    var = cov[-1, -1] - w @ cov[-1]
    assert a._est[0] == pytest.approx(mean, rel=1e-9, abs=1e-6)
    assert a._var[0] == pytest.approx(var, rel=1e-7, abs=1e-9)


def _value_model(**params) -> tuple[MarketModel, ValueTrader, int]:
    base = {"obs_noise_sigma": 0.0, "r_bar_price": 100.0, "project_to_close": False}
    m = build(group("value", **{**base, **params}))
    (a,) = agents_of(m, ValueTrader)
    return m, a, lp_account(m)


def test_value_buys_below_and_sells_above_the_fundamental():
    m, a, lp = _value_model(percent_aggr=1.0)
    set_book(m, lp, 9900, 9902)  # mid 9901 < 10000
    a.act(m.t)
    ((_, _, price, qty, kind, side),) = queued(m, a.account)
    assert (kind, side, price) == (LIMIT, BUY, 9902) and qty >= 1
    clear_queue(m)
    set_book(m, lp, 10100, 10102)
    a.act(m.t)
    orders = [o for o in queued(m, a.account) if o[4] == LIMIT]
    assert [(o[5], o[2]) for o in orders] == [(SELL, 10100)]


def test_value_passive_orders_stay_inside_or_at_the_touch_and_cancel_previous():
    m, a, lp = _value_model(percent_aggr=0.0, depth_spread=2.0)
    set_book(m, lp, 9900, 9904)  # spread 4: passive buys at 9903 .. 9896
    prices = set()
    for k in range(300):
        a.act(m.t)
        if k and k % 2 == 0:  # the agent cancels its previous order itself ...
            assert [o[4] for o in queued(m, a.account)][0] == CANCEL
        m.exchange.match(m.t)
        oid = a._live[0]
        prices.add(m.exchange.books[0].order(oid).price)
        if k % 2 == 0:  # ... unless it is gone already (here: we cancel every other one)
            o = np.zeros(1, dtype=ORDER_DTYPE)
            o[0] = (oid, a.account, 0, 0, CANCEL, 0)
            m.exchange.execute_now(m.t, 0, o)
    # passive buys 1 .. depth_spread * spread ticks below the ask (its own bid shows in the
    # quote it reads when it was not cancelled: then the spread it sees is narrower)
    assert prices == set(range(9896, 9904))
    assert m.exchange.books[0].n_orders == 2 + 1  # lp bid + ask, one live order of the agent
    assert m.exchange.rejects.get("UNKNOWN_ID", 0) == 0


def test_value_respects_min_edge_and_max_position():
    m, a, lp = _value_model(percent_aggr=1.0, min_edge_ticks=150.0)
    set_book(m, lp, 9900, 9902)
    a.act(m.t)
    assert queued(m, a.account) == []
    m, a, lp = _value_model(percent_aggr=1.0, max_position_lots=1003, size_mean_lots=50.0)
    set_book(m, lp, 9900, 9902)
    a.act(m.t)  # holds 1000: at most 3 more
    ((_, _, _, qty, _, side),) = queued(m, a.account)
    assert (side, qty) == (BUY, 3)


# ---------------------------------------------------------------------------------- market maker
def _mm(**params) -> tuple[MarketModel, MarketMaker, int]:
    base = {"levels": 3, "level_spacing_ticks": 2, "size_lots": 7, "half_spread_ticks": 1.5}
    m = build(group("market_maker", **{**base, "vol_spread_mult": 0.0, **params}))
    (a,) = agents_of(m, MarketMaker)
    return m, a, lp_account(m)


def test_market_maker_quotes_both_sides_with_the_configured_levels():
    m, mm, lp = _mm()
    set_book(m, lp, 9990, 10010)
    mm.act(m.t)
    m.exchange.match(m.t)
    bp, bq, ap, aq = m.exchange.books[0].depth(10)
    assert bp.tolist()[:3] == [9998, 9996, 9994] and bq.tolist()[:3] == [7, 7, 7]
    assert ap.tolist()[:3] == [10002, 10004, 10006] and aq.tolist()[:3] == [7, 7, 7]
    assert len(mm.live_orders) == 6
    n = m.exchange.n_orders
    mm.act(m.t)  # nothing changed: keeps its orders (and their queue priority)
    assert m.exchange.n_orders == n


def test_market_maker_tracks_fills_and_requotes_only_what_changed():
    m, mm, lp = _mm()
    set_book(m, lp, 9990, 10010)
    mm.act(m.t)
    m.exchange.match(m.t)
    place(m, lp, SELL, 0, 10, kind=MARKET)  # takes 7 at 9998 and 3 at 9996
    live = sorted(v[1:] for v in mm.live_orders.values())
    assert (BUY, 9996, 4) in live and all(p != 9998 for _, p, _ in live)
    assert mm.inventory(0) == 10


def test_market_maker_skews_with_inventory_and_stops_at_the_limit():
    m, mm, lp = _mm(inventory_skew_ticks_per_lot=0.5, max_inventory_lots=100)
    set_book(m, lp, 9990, 10010)
    base = mm.target_quotes(0)
    mm.position = lambda slot: 1000 + 10  # 10 lots of inventory above its endowment
    skewed = mm.target_quotes(0)
    assert max(p for s, p in skewed if s == BUY) == max(p for s, p in base if s == BUY) - 5
    assert min(p for s, p in skewed if s == SELL) == min(p for s, p in base if s == SELL) - 5
    mm.position = lambda slot: 1000 + 90  # room for one 7-lot bid level only
    q = mm.target_quotes(0)
    assert sum(1 for s, _ in q if s == BUY) == 1 and sum(1 for s, _ in q if s == SELL) == 3
    mm.position = lambda slot: 1000 + 95
    q = mm.target_quotes(0)
    assert sum(1 for s, _ in q if s == BUY) == 0 and sum(1 for s, _ in q if s == SELL) == 3
    mm.position = lambda slot: 1000 - 98
    q = mm.target_quotes(0)
    assert sum(1 for s, _ in q if s == SELL) == 0 and sum(1 for s, _ in q if s == BUY) == 3


def test_market_maker_widens_with_volatility_and_never_crosses():
    m, mm, lp = _mm(vol_spread_mult=2.0, vol_ewma_alpha=1.0)
    set_book(m, lp, 9999, 10001)
    q0 = mm.target_quotes(0)
    set_book(m, lp, 10009, 10011)  # the mid jumped 10 ticks: half-spread 1.5 + 2 * 10
    q1 = mm.target_quotes(0)
    assert mm.half_spread_ticks(0) == pytest.approx(21.5)
    spread0 = min(p for s, p in q0 if s == SELL) - max(p for s, p in q0 if s == BUY)
    spread1 = min(p for s, p in q1 if s == SELL) - max(p for s, p in q1 if s == BUY)
    assert spread1 > spread0 + 30
    m2, mm2, lp2 = _mm(inventory_skew_ticks_per_lot=5.0)
    set_book(m2, lp2, 9999, 10001)
    mm2.position = lambda slot: 1000 + 10  # centre 50 ticks below the bid: stays post-only
    q = mm2.target_quotes(0)
    assert min(p for s, p in q if s == SELL) >= 10000


# ---------------------------------------------------------------------------------- momentum
def test_momentum_buys_in_an_uptrend_and_sells_in_a_downtrend():
    m = build(group("momentum", short_window=3, long_window=6, size_lots=5, aggression="market"))
    (a,) = agents_of(m, MomentumTrader)
    lp = lp_account(m)
    for i in range(6):
        set_book(m, lp, 9990 + 3 * i, 9992 + 3 * i)
        a.act(m.t)
    assert a.signal(0) > 0
    assert [(o[4], o[5], o[3]) for o in queued(m, a.account)] == [(MARKET, BUY, 5)]
    clear_queue(m)
    for i in range(6):
        set_book(m, lp, 10100 - 5 * i, 10102 - 5 * i)
        a.act(m.t)
    assert a.signal(0) < 0
    assert [(o[4], o[5]) for o in queued(m, a.account)][-1] == (MARKET, SELL)


def test_momentum_limit_at_touch_threshold_and_position_cap():
    m = build(
        group(
            "momentum",
            short_window=2,
            long_window=4,
            size_lots=8,
            threshold_ticks=100.0,
            max_position_lots=1004,
        )
    )
    (a,) = agents_of(m, MomentumTrader)
    lp = lp_account(m)
    for i in range(4):
        set_book(m, lp, 9990 + i, 9992 + i)
        a.act(m.t)
    assert queued(m, a.account) == []  # trend far below the threshold
    a.threshold = 0.0
    set_book(m, lp, 10000, 10002)
    a.act(m.t)
    assert [(o[4], o[5], o[2], o[3]) for o in queued(m, a.account)] == [(LIMIT, BUY, 10002, 4)]


# ---------------------------------------------------------------------------------- execution
def _exec_market(algo: str, **params) -> MarketModel:
    liquidity = [
        group("noise", 40, wake_rate_per_hour=240.0, market_prob=0.2, order_lifetime_s=60.0),
        group("market_maker", 1, wake_interval_s=2.0, levels=5, size_lots=30),
    ]
    base = {"wake_interval_s": 30.0, "start_s": 60.0, "end_s": 660.0, "total_lots": 600}
    ex = group("execution", algo=algo, **{**base, **params})
    ex["latency_steps"] = 1
    return MarketModel(scenario([*liquidity, ex], close="09:45", seed=5))


@pytest.mark.parametrize("aggression", ["market", "limit_at_touch"])
def test_execution_twap_fills_its_total_within_the_window(aggression):
    m = _exec_market("twap", aggression=aggression)
    (ex,) = agents_of(m, ExecutionAgent)
    m.run(700)
    assert ex.filled_lots == 600
    tr = m.trades()
    mine = tr[(tr.buyer == ex.account) | (tr.seller == ex.account)]
    assert mine.step.min() >= 60 and mine.step.max() <= 661
    assert int(mine.qty.sum()) == 600
    assert ex.done_step == int(mine.step.max())  # the step of the fill that completed it
    vwap = (mine.price * mine.qty).sum() / mine.qty.sum()
    assert ex.avg_price_ticks * 0.01 == pytest.approx(vwap)
    assert ex.shortfall_ticks == pytest.approx(ex.avg_price_ticks - ex.arrival_price_ticks)
    if aggression == "market":
        # 21 wakes (60, 90, ..., 660): 20 even slices of 30 lots, nothing left at the end
        per_wake = mine.groupby("step").qty.sum()
        assert ex.n_children == 20 and set(per_wake.tolist()) == {30}


def test_execution_pov_tracks_participation():
    m = _exec_market("pov", participation=0.2, complete_at_end=False, total_lots=100_000)
    (ex,) = agents_of(m, ExecutionAgent)
    vol = {}
    m.step_hooks.append(lambda mm: vol.setdefault(mm.t, int(mm.exchange.volume[0])))
    m.run(700)
    window = vol[662] - vol[60]
    assert ex.filled_lots > 0
    assert ex.filled_lots / window == pytest.approx(0.2, abs=0.03)
    assert ex.done_step == -1  # 100000 lots: never completed


def test_execution_pov_done_step_marks_an_early_finish():
    m = _exec_market("pov", participation=0.2, complete_at_end=False, total_lots=50)
    (ex,) = agents_of(m, ExecutionAgent)
    m.run(700)
    tr = m.trades()
    mine = tr[(tr.buyer == ex.account) | (tr.seller == ex.account)]
    assert ex.filled_lots == 50 and int(mine.qty.sum()) == 50
    assert ex.done_step == int(mine.step.max()) < 600  # done well before the window's end


def test_execution_sells_and_vwap_front_and_back_loads():
    m = _exec_market("vwap", side="sell", vwap_u_shape=4.0)
    (ex,) = agents_of(m, ExecutionAgent)
    m.run(700)
    assert ex.filled_lots == 600 and ex.side == SELL
    # over a whole-session window, a U-shaped profile trades more at both ends than mid-day
    ex.start_step, ex.end_step = 0, m.session.steps_per_day - 1
    f = np.array([ex._fraction(r) for r in range(0, ex.end_step, ex._interval_steps)])
    d = np.diff(f)
    assert np.all(d >= 0) and f[-1] == pytest.approx(1.0)
    assert d[0] > d[len(d) // 2] < d[-2]


def test_u_shape_cumulative_is_the_integral_of_the_profile():
    for c in (0.0, 1.5, 4.0):
        for x in (0.0, 0.2, 0.5, 0.93, 1.0):
            u = np.linspace(0.0, x, 20_001)
            ref = np.trapezoid(1 + c * (2 * u - 1) ** 2, u) if x > 0 else 0.0
            assert u_shape_cumulative(x, c) == pytest.approx(ref, abs=1e-8)


def test_execution_only_trades_on_its_day():
    sc = scenario([group("execution", day=1, start_s=10.0, end_s=100.0, wake_interval_s=10.0)])
    sc["simulation"].update(days=2, close="09:45")
    m = MarketModel(sc)
    (ex,) = agents_of(m, ExecutionAgent)
    m.run(m.session.steps_per_day)
    assert ex.n_wakes == 0
    m.run()
    assert ex.n_wakes == 10  # 910 s after day 1's open: wakes at 10, 20, ..., 100 s


# ---------------------------------------------------------------------------------- switching
def _switching(n: int = 4, **params) -> tuple[MarketModel, list[SwitchingTrader], int]:
    m = build(group("switching", n, **params))
    return m, agents_of(m, SwitchingTrader), lp_account(m)


def test_switching_counts_follow_the_agents():
    m, ags, _ = _switching(50, chartist_prob_init=0.5, switch_rate=0.3, wake_rate_per_hour=600.0)
    m.run(600)
    n_c, n = switching_counts(m)["switching"]
    assert n == 50 and n_c == sum(a.chartist for a in ags)
    assert sum(a.n_switches for a in ags) > 0


def test_fundamentalist_trades_toward_value_and_chartist_with_the_trend():
    m, (a, b), lp = _switching(2, switch_rate=0.0, size_lots=3, fundamentalist_threshold_ticks=5.0)
    a.chartist, b.chartist = False, True
    set_book(m, lp, 9900, 9902)  # fundamental 10000 above the mid
    a.act(m.t)
    assert [(o[4], o[5], o[3]) for o in queued(m, a.account)] == [(MARKET, BUY, 3)]
    b.act(m.t)  # first look: no trend yet
    set_book(m, lp, 9880, 9882)
    b.act(m.t)  # mid fell 20 ticks: sells with the trend
    assert [(o[4], o[5]) for o in queued(m, b.account)] == [(MARKET, SELL)]


def test_herding_pulls_agents_to_the_majority():
    m, ags, lp = _switching(10, chartist_prob_init=1.0, switch_rate=1.0, herding_weight=50.0)
    set_book(m, lp, 9999, 10001)
    lone = ags[0]
    lone.set_state({**lone.get_state(), "chartist": False})
    assert switching_counts(m)["switching"] == [9, 10]
    lone.act(m.t)  # U = 50 * 0.8: switching probability min(1, exp(40)) = 1
    assert lone.chartist and switching_counts(m)["switching"] == [10, 10]
    chart = ags[1]
    chart.act(m.t)  # exp(-40): stays
    assert chart.chartist


def _ema_reference(times_s: list[float], mids: list[float], halflife_s: float) -> float:
    """The EMA as an explicit weighted sum: weight 2^-(t_n - t_k)/H (1 - 2^-(t_k - t_k-1)/H)
    on the mid seen at t_k, and 2^-(t_n - t_0)/H on the first."""
    tn = times_s[-1]
    out = 2.0 ** (-(tn - times_s[0]) / halflife_s) * mids[0]
    for k in range(1, len(mids)):
        gain = 1.0 - 2.0 ** (-(times_s[k] - times_s[k - 1]) / halflife_s)
        out += 2.0 ** (-(tn - times_s[k]) / halflife_s) * gain * mids[k]
    return out


@pytest.mark.parametrize("weight", [0.0, 0.25])
def test_ema_anchor_follows_the_mid_with_its_half_life(weight):
    m, (a,), lp = _switching(
        1, switch_rate=0.0, chartist_prob_init=0.0, anchor="ema", anchor_halflife_s=300.0,
        anchor_fundamental_weight=weight,
    )  # fmt: skip
    rng = np.random.default_rng(11)
    steps = np.cumsum(rng.integers(1, 120, size=40))
    mids = 9950 + np.cumsum(rng.integers(-5, 6, size=40))
    seen_t, seen_m = [], []
    for st, mid in zip(steps.tolist(), mids.tolist(), strict=True):
        set_book(m, lp, mid - 1, mid + 1)
        got = a.anchor_value(0, a.mid(0), st)
        seen_t.append(float(st))  # step_seconds = 1
        seen_m.append(float(mid))
        ref = _ema_reference(seen_t, seen_m, 300.0)
        assert got == pytest.approx(weight * FUND + (1.0 - weight) * ref, abs=1e-9)
    # one half-life after a jump, the EMA has covered half of it
    e0 = a._anchor_ema[0][0]
    set_book(m, lp, 10199, 10201)
    e1 = (a.anchor_value(0, 10200.0, int(steps[-1]) + 300) - weight * FUND) / (1.0 - weight)
    assert e1 == pytest.approx(e0 + 0.5 * (10200.0 - e0))
    # the EMA is saved in the agent's state: restored, it continues identically
    t = int(steps[-1]) + 300
    st = a.get_state()
    assert st["_anchor_ema"] == {0: (a._anchor_ema[0][0], t)}
    x = a.anchor_value(0, 10300.0, t + 100)
    a.set_state(st)
    assert a.anchor_value(0, 10300.0, t + 100) == x


def test_ema_anchored_fundamentalist_trades_toward_the_average_not_the_value():
    m, (a,), lp = _switching(
        1, switch_rate=0.0, chartist_prob_init=0.0, size_lots=3, anchor="ema",
        fundamentalist_threshold_ticks=5.0, anchor_halflife_s=60.0,
    )  # fmt: skip
    set_book(m, lp, 9899, 9901)  # 100 ticks below the value, but that is where it has been
    a.act(0)
    a.act(600)
    assert queued(m, a.account) == []
    set_book(m, lp, 9919, 9921)  # 20 ticks above the average: sells, though below the value
    a.act(601)
    assert [(o[4], o[5], o[3]) for o in queued(m, a.account)] == [(MARKET, SELL, 3)]


@pytest.mark.parametrize("unwind", [False, True])
def test_unwinding_fundamentalist_follows_its_demand_curve(unwind):
    m, (a,), lp = _switching(
        1, switch_rate=0.0, chartist_prob_init=0.0, size_lots=500, position_per_tick=10.0,
        fundamentalist_threshold_ticks=5.0, unwind=unwind,
    )  # fmt: skip
    a.position = lambda slot: 0  # flat (the group starts with 1000 shares)
    set_book(m, lp, 9979, 9981)  # 20 ticks below the value: target +10 * (20 - 5) = 150 lots
    a.act(m.t)
    assert [(o[4], o[5], o[3]) for o in queued(m, a.account)] == [(MARKET, BUY, 150)]
    clear_queue(m)
    a.position = lambda slot: 150  # as if filled
    set_book(m, lp, 9989, 9991)  # 10 ticks below: target 50
    a.act(m.t)
    set_book(m, lp, 9999, 10001)  # at the value: target 0
    a.act(m.t)
    got = [(o[5], o[3]) for o in queued(m, a.account)]
    assert got == ([(SELL, 100), (SELL, 150)] if unwind else [])


def test_fundamental_anchor_is_the_default_and_full_weight_ema_matches_it():
    common = dict(
        wake_rate_per_hour=1200.0, chartist_prob_init=0.5, switch_rate=0.05,
        mispricing_weight=0.1, fundamentalist_threshold_ticks=1.0, position_per_tick=5.0,
    )  # fmt: skip
    noise = group("noise", 20, wake_rate_per_hour=600.0)
    sc_sigma = {"kappa": 1e-4, "sigma": 0.01}
    runs = []
    for extra in (
        {},
        {"anchor": "fundamental"},
        {"anchor": "ema", "anchor_fundamental_weight": 1.0},
    ):
        sc = scenario([noise, group("switching", 10, **common, **extra)])
        sc["fundamental"]["params"] = sc_sigma
        mm = MarketModel(sc)
        mm.run(1200)
        ags = agents_of(mm, SwitchingTrader)
        assert ags[0].anchor == extra.get("anchor", "fundamental")
        if "anchor" not in extra or extra["anchor"] == "fundamental":
            assert all(ag._anchor_ema == {} for ag in ags)
        runs.append(mm.trades())
    assert len(runs[0]) > 50
    assert runs[0].equals(runs[1]) and runs[0].equals(runs[2])


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"anchor_halflife_s": 0.0}, "params.anchor_halflife_s = 0.0"),
        ({"anchor_halflife_s": -5.0}, "params.anchor_halflife_s = -5.0"),
        ({"anchor_fundamental_weight": 1.5}, "params.anchor_fundamental_weight = 1.5"),
        ({"anchor_fundamental_weight": -0.1}, "params.anchor_fundamental_weight = -0.1"),
        ({"unwind": True}, "params.unwind = True"),
    ],
)
def test_bad_anchor_params_raise_naming_the_key(params, needle):
    with pytest.raises(ConfigError, match="agents group") as e:
        build(group("switching", anchor="ema", **params))
    assert needle in str(e.value)


def test_unknown_anchor_is_rejected_at_load():
    with pytest.raises(ConfigError, match="anchor"):
        build(group("switching", anchor="last_trade"))


def test_execution_limit_at_touch_uses_ioc_at_the_opposite_best():
    m = build(group("execution", aggression="limit_at_touch", start_s=0.0, end_s=100.0))
    (ex,) = agents_of(m, ExecutionAgent)
    set_book(m, lp_account(m), 9990, 10010)
    ex.act(m.t)
    ((_, _, price, qty, kind, side),) = queued(m, ex.account)
    assert (kind, side, price) == (IOC, BUY, 10010) and qty == 100  # 1000 lots over 10 wakes
