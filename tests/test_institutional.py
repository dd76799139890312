"""The ``institutional`` trader: Pareto meta-order sizes, order splitting, sign persistence,
determinism, parameter validation, and the power-law trade-sign memory it creates.

Markets here are one asset with a constant fundamental (10,000 ticks) and a "liquidity
provider" account resting a deep bid at 9,999 and a deep ask at 10,001, so every child order of
the institutional agents fills at once at a known price; with no other traders the trade signs
are the children's signs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from agents.background import InstitutionalTrader
from agents.background.institutional import truncated_pareto
from analysis.orderflow import sign_memory, trade_signs
from analysis.stylized import power_law_fit
from marketsim.book import BUY, IOC, LIMIT, MARKET, ORDER_DTYPE, SELL
from marketsim.errors import ConfigError
from marketsim.model import MarketModel

FUND = 10_000  # constant fundamental in ticks ($100 at 1 cent)
DEEP = 200_000  # lots resting on each side


def build(count: int = 1, close: str = "10:30", seed: int = 3, **params) -> MarketModel:
    """``count`` institutional agents (plus whatever ``params`` say) in the market above."""
    sc = {
        "simulation": {"name": "t", "seed": seed, "open": "09:30", "close": close},
        "assets": [{"symbol": "ABC", "tick_size": 0.01, "initial_price": 100.0}],
        "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-4, "sigma": 0.0}},
        "agents": [
            {
                "type": "institutional",
                "count": count,
                "cash": 10_000_000.0,
                "latency_steps": 1,
                "params": params,
            }
        ],
    }
    m = MarketModel(sc)
    lp = m.open_account(1e9, {"ABC": 10 * DEEP}, "lp")
    o = np.zeros(2, dtype=ORDER_DTYPE)
    o[0] = (m.exchange.new_order_id(), lp, FUND - 1, DEEP, LIMIT, BUY)
    o[1] = (m.exchange.new_order_id(), lp, FUND + 1, DEEP, LIMIT, SELL)
    m.exchange.execute_now(m.t, 0, o)
    return m


def insts(m: MarketModel) -> list[InstitutionalTrader]:
    return [a for a in m.account_agent.values() if isinstance(a, InstitutionalTrader)]


def taker_trades(m: MarketModel, account: int):
    t = m.trades()
    taker = np.where(t["aggressor"] > 0, t["buyer"], t["seller"])
    return t[taker == account]


def record_metas(agent: InstitutionalTrader) -> list[list[int]]:
    """Wrap the agent's draws: the list gets [start step, side, size] per meta-order."""
    out: list[list[int]] = []
    draw_side, draw_size = agent.draw_side, agent.draw_meta_size

    def side(slot: int) -> int:
        s = draw_side(slot)
        out.append([agent.model.t, s])
        return s

    def size() -> int:
        q = draw_size()
        out[-1].append(q)
        return q

    agent.draw_side, agent.draw_meta_size = side, size
    return out


# ---------------------------------------------------------------------------- sizes
def pareto_cdf(x, alpha, lo, hi):
    x = np.clip(np.asarray(x, float), lo, hi)
    return (1.0 - (lo / x) ** alpha) / (1.0 - (lo / hi) ** alpha)


@pytest.mark.parametrize(("alpha", "lo", "hi"), [(1.5, 10.0, 5000.0), (0.8, 1.0, math.inf)])
def test_truncated_pareto_draws_pass_a_ks_test(alpha, lo, hi):
    rng = np.random.default_rng(11)
    x = truncated_pareto(rng.random(20_000), alpha, lo, hi)
    assert x.min() >= lo and x.max() <= hi
    cdf = (lambda v: 1.0 - (lo / v) ** alpha) if math.isinf(hi) else (
        lambda v: pareto_cdf(v, alpha, lo, hi)
    )  # fmt: skip
    assert stats.kstest(x, cdf).pvalue > 0.01
    # the wrong tail is rejected: the test has power
    assert stats.kstest(x, lambda v: pareto_cdf(v, alpha * 1.15, lo, hi)).pvalue < 1e-6
    assert truncated_pareto(0.75, 2.0, 10.0) == pytest.approx(20.0)  # P(X > 20) = 1/4


def test_agent_meta_sizes_follow_the_discrete_truncated_pareto_law():
    m = build(meta_tail_alpha=1.5, meta_min_lots=20.0, meta_max_lots=2000.0)
    (a,) = insts(m)
    n = 40_000
    q = np.array([a.draw_meta_size() for _ in range(n)])
    assert q.dtype.kind == "i" and q.min() == 20 and q.max() <= 2000
    # P(floor(X) >= k) = P(X >= k) for whole k: the exact survival function at several sizes
    for k in (21, 30, 50, 100, 300, 1000):
        p = 1.0 - pareto_cdf(k, 1.5, 20.0, 2000.0)
        emp = float(np.mean(q >= k))
        assert abs(emp - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4, (k, emp, p)
    # maximum-likelihood tail exponent of the untruncated part (sizes < 2000 hardly truncated)
    x = q[q < 1000] + 0.5  # continuity correction of the floor
    assert 1.35 < 1.0 / np.mean(np.log(x / 20.0)) < 1.75


# ---------------------------------------------------------------------------- splitting
@pytest.mark.parametrize("aggression", ["market", "limit_at_touch"])
def test_children_add_up_to_meta_orders_and_keep_their_side(aggression):
    m = build(
        idle_mean_s=20.0,
        wake_rate_per_hour=1800.0,
        meta_min_lots=10.0,
        meta_max_lots=300.0,
        child_lots=7,
        aggression=aggression,
    )
    (a,) = insts(m)
    metas = record_metas(a)
    m.run(3000)
    assert a.n_meta == len(metas) >= 10 and a.n_done >= a.n_meta - 1
    tr = taker_trades(m, a.account)
    assert len(tr) > 0 and (tr["qty"] <= 7).all()
    assert np.isin(np.round(tr["price"].to_numpy(), 2), [99.99, 100.01]).all()
    steps = tr["step"].to_numpy()
    sign = tr["aggressor"].to_numpy()
    qty = tr["qty"].to_numpy()
    bounds = [s for s, *_ in metas] + [m.t + 10]
    for k, (start, side, size) in enumerate(metas):
        inside = (steps > start) & (steps <= bounds[k + 1])
        assert (sign[inside] == side).all()  # every child of a meta-order has its side
        done = k < a.n_done  # completed: the children add up to the size exactly
        assert qty[inside].sum() == size if done else qty[inside].sum() <= size
    assert a.filled_lots == sum(size for *_, size in metas[: a.n_done])


def test_limit_at_touch_children_are_ioc_at_the_opposite_best():
    m = build(aggression="limit_at_touch", idle_mean_s=1.0, child_lots=3)
    (a,) = insts(m)
    while a.n_meta == 0:
        m.run(1)
    sent = [o for q in m.exchange._queue.values() for per in q for o in per if o[1] == a.account]
    ((_, _, price, qty, kind, side),) = sent
    assert kind == IOC and qty == 3 and price == (FUND + 1 if side == BUY else FUND - 1)
    m2 = build(idle_mean_s=1.0, child_lots=3)
    (b,) = insts(m2)
    while b.n_meta == 0:
        m2.run(1)
    sent = [o for q in m2.exchange._queue.values() for per in q for o in per if o[1] == b.account]
    assert [o[4] for o in sent] == [MARKET]


def test_informed_meta_orders_trade_toward_the_fundamental():
    m = build(count=3, informed_prob=1.0, idle_mean_s=5.0, meta_max_lots=200.0)
    for a in insts(m):
        a.model.fundamental_ticks = lambda s: FUND + 50.0  # value above the mid (10,000)
    metas = [record_metas(a) for a in insts(m)]
    m.run(1500)
    sides = [side for ms in metas for _, side, _ in ms]
    assert len(sides) >= 10 and set(sides) == {BUY}


def test_position_cap_cuts_meta_orders_short():
    m = build(
        idle_mean_s=2.0, wake_rate_per_hour=3600.0, meta_min_lots=200.0, max_position_lots=300
    )
    (a,) = insts(m)
    pos = []
    m.step_hooks.append(lambda mm: pos.append(a.position(0)))
    m.run(3000)
    assert a.n_truncated > 0 and a.n_meta > a.n_truncated
    assert max(abs(p) for p in pos) == 300  # reached, never crossed


def test_meta_order_running_at_the_close_is_abandoned():
    m = build(
        close="09:40", idle_mean_s=5.0, meta_min_lots=5000.0, meta_max_lots=6000.0, child_lots=1
    )
    (a,) = insts(m)
    m.run()
    assert a.n_meta == 1 and a.n_abandoned == 1 and not a.active and a.n_done == 0


# ---------------------------------------------------------------------------- determinism
def _run(seed: int) -> tuple:
    m = build(count=3, seed=seed, idle_mean_s=30.0, informed_prob=0.3, meta_max_lots=500.0)
    m.run(1200)
    return m.trades(), [a.get_state() for a in insts(m)]


def test_same_seed_same_meta_orders_and_trades():
    t1, s1 = _run(5)
    t2, s2 = _run(5)
    assert len(t1) > 100 and t1.equals(t2) and s1 == s2
    t3, _ = _run(6)
    assert not t1.equals(t3)


def test_state_round_trip_continues_identically():
    m = build(count=2, idle_mean_s=30.0, meta_max_lots=500.0)
    m.run(500)
    st = m.get_state()
    n = len(m.trades())
    m.run(700)
    first = m.trades().iloc[n:].reset_index(drop=True), [a.get_state() for a in insts(m)]
    m.set_state(st)
    n = len(m.trades())  # the trade log is not rewound
    m.run(700)
    again = m.trades().iloc[n:].reset_index(drop=True), [a.get_state() for a in insts(m)]
    assert len(first[0]) > 50 and again[0].equals(first[0]) and again[1] == first[1]


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("params", "needle", "rule"),
    [
        ({"meta_tail_alpha": 0.0}, "meta_tail_alpha = 0.0", "must be a finite number > 0"),
        ({"meta_min_lots": 0.5}, "meta_min_lots = 0.5", "must be >= 1"),
        (
            {"meta_min_lots": 50.0, "meta_max_lots": 10.0},
            "meta_max_lots = 10.0",
            "must be >= meta_min_lots (50)",
        ),
        ({"child_lots": 0}, "child_lots = 0", "must be >= 1"),
        ({"idle_mean_s": 0.0}, "idle_mean_s = 0.0", "must be > 0"),
        ({"informed_prob": 1.5}, "informed_prob = 1.5", "must be a probability in [0, 1]"),
        ({"max_position_lots": -1}, "max_position_lots = -1", "must be >= 0"),
        ({"wake_rate_per_hour": 0.0}, "wake_rate_per_hour = 0.0", "must be > 0"),
    ],
)
def test_bad_params_raise_config_error_naming_the_key(params, needle, rule):
    with pytest.raises(ConfigError, match=r"agents group 'institutional' \(institutional\)") as e:
        build(**params)
    msg = str(e.value)
    assert f"params.{needle} " in msg and f": {rule}" in msg


def test_unknown_param_and_bad_aggression_are_rejected_at_load():
    with pytest.raises(ConfigError, match="meta_tail"):
        build(meta_tail=1.5)
    with pytest.raises(ConfigError, match="aggression"):
        build(aggression="passive")


# ---------------------------------------------------------------------------- sign memory
def _sign_acf(alpha: float):
    """Trade signs of five institutional agents, each sending a 1-lot child every second while
    executing and idling about a second between meta-orders."""
    m = build(
        count=5,
        close="12:30",
        seed=1,
        wake_interval_s=1.0,
        idle_mean_s=1.0,
        meta_tail_alpha=alpha,
        meta_min_lots=1.0,
        meta_max_lots=20_000.0,
        child_lots=1,
    )
    m.run()
    return sign_memory(trade_signs(m.trades()), max_lag=200)


def test_sign_acf_decays_as_the_power_law_of_the_meta_order_tail():
    """Lillo-Mike-Farmer: C(l) ~ l^-(alpha - 1); alpha = 1.5 gives gamma ~ 0.5 (long memory),
    alpha = 3 a summable ACF (gamma > 1: short memory)."""
    long = _sign_acf(1.5)
    assert long.n > 20_000
    assert long.long_memory and long.significant_fraction > 0.8
    fit = power_law_fit(long.lags, long.acf, min_lag=5)  # past the agents' interleaving
    assert 0.35 < fit.exponent < 0.8 and fit.r2 > 0.9
    short = _sign_acf(3.0)
    assert not short.long_memory
    assert short.acf[49:].mean() < long.acf[49:].mean() / 3
