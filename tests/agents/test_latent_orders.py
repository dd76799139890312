"""`latent_orders`: what it shows, what it takes, that fills consume exactly the latent orders
they came from, that the price's motion carves a V-shaped latent book around the price, and bad
parameters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from agents.background import LatentOrders
from marketsim.book import BUY, IOC, SELL
from marketsim.errors import ConfigError
from tests.agents.test_scenarios import check_invariants
from tests.agents.test_traders import (
    agents_of,
    build,
    group,
    lp_account,
    place,
    queued,
    set_book,
)


def _latent(**params) -> tuple:
    base = {"wake_interval_s": 1.0, "n_orders": 400, "order_lots": 5, "band_ticks": 40.0,
            "lifetime_s": 1e9, "reveal_ticks": 2}  # fmt: skip
    g = group("latent_orders", **{**base, **params})
    g["shares"] = {"ABC": 100_000}
    m = build(g)
    (a,) = agents_of(m, LatentOrders)
    return m, a, lp_account(m)


def test_shows_what_is_near_the_touch_and_takes_what_the_price_crossed():
    m, a, lp = _latent()
    set_book(m, lp, 9999, 10001, qty=50)
    a.act(m.t)  # first wake: deposits its book around the mid
    a.load_latent(
        0,
        [
            (BUY, 9998, 5),  # 1 tick behind the bid: shown
            (BUY, 9996, 7),  # 3 ticks behind: hidden (reveal 2)
            (SELL, 10003, 4),  # shown
            (SELL, 10010, 9),  # hidden
            (BUY, 10003, 6),  # at or above the ask: takes the ask (IOC at 10001)
            (SELL, 9990, 2),  # at or below the bid: hits the bid (IOC at 9999)
        ],
    )
    a.act(m.t)
    theirs = {(o[1], o[2]): o[3] for o in a.live_orders.values()}
    assert theirs == {(BUY, 9998): 5, (SELL, 10003): 4}
    iocs = [(o[5], o[2], o[3]) for o in queued(m, a.account) if o[4] == IOC]
    assert iocs == [(BUY, 10001, 6), (SELL, 9999, 2)]


def test_fills_consume_exactly_the_latent_orders_they_came_from():
    m, a, lp = _latent(lifetime_s=1e12)
    set_book(m, lp, 9999, 10001, qty=1)
    a.act(m.t)
    a.load_latent(0, [(SELL, 10002, 10), (SELL, 10002, 10), (SELL, 10003, 10), (BUY, 9997, 10)])
    a.act(m.t)
    m.exchange.match(m.t)
    assert {(o[1], o[2]): o[3] for o in a.live_orders.values()} == {
        (SELL, 10002): 20, (SELL, 10003): 10, (BUY, 9997): 10,
    }  # fmt: skip
    pos0 = a.position(0)
    place(m, lp, BUY, 10002, 1 + 15)  # takes the provider's lot at 10001, then 15 of its 20
    assert a.position(0) == pos0 - 15
    m.t += 1
    a.act(m.t)  # consumes 15 lots at 10002 (one order emptied and renewed, 5 left on the other)
    b = a.latent_book(0)
    assert a.consumed_lots == 15
    # the older order at 10002 was emptied and renewed elsewhere; 5 lots left on the other
    assert b.q[1] == 5 and b.px[1] == 10002 and b.hist[SELL][10002] == 5
    assert b.levels[(SELL, 10002)] == [1]
    assert (b.px[0], b.q[0]) != (10002, 0) and b.q[0] == 5  # fresh order (order_lots = 5)
    assert b.q[2] == 10 and b.hist[SELL][10003] == 10
    theirs = {(o[1], o[2]): o[3] for o in a.live_orders.values()}
    assert theirs[(SELL, 10002)] == 5  # the remaining resting order kept as it was


def test_in_a_market_the_consumed_lots_equal_the_traded_lots_and_invariants_hold():
    noise = group("noise", 30, wake_rate_per_hour=600.0, market_prob=0.4, order_lifetime_s=60.0)
    mm = group("market_maker", 1, wake_interval_s=2.0, levels=5, size_lots=10)
    lo = group("latent_orders", 1, wake_interval_s=3.0, n_orders=2000, order_lots=5,
               band_ticks=60.0, lifetime_s=1800.0, reveal_ticks=3)  # fmt: skip
    lo["shares"] = {"ABC": 1_000_000}
    lo["cash"] = 1e9
    m = build(noise, mm, lo, close="11:30")
    (a,) = agents_of(m, LatentOrders)
    m.step_hooks.append(check_invariants)
    m.run(7200)
    check_invariants(m)
    tr = m.trades()
    bought = int(tr.qty[tr.buyer == a.account].sum())
    sold = int(tr.qty[tr.seller == a.account].sum())
    assert bought > 100 and sold > 100
    a.act(m.t)  # consume the fills since its last wake
    # every lot it traded came off one latent order (a crossing buyer that meets its own
    # resting seller uses up both: the LLOB's annihilation)
    assert a.consumed_lots == bought + sold
    _check_latent_book(a.latent_book(0))


def _check_latent_book(b) -> None:
    """The histograms and level lists say what the per-order arrays say."""
    for sd in (BUY, SELL):
        on = (b.side == sd) & (b.q > 0)
        want = np.bincount(b.px[on], weights=b.q[on], minlength=b.hist[sd].size)
        assert np.array_equal(b.hist[sd], want.astype(np.int64))
    listed = sorted(i for lst in b.levels.values() for i in lst)
    assert listed == np.flatnonzero(b.q > 0).tolist()
    for (sd, p), lst in b.levels.items():
        assert all(b.side[i] == sd and b.px[i] == p for i in lst)


def test_the_price_carves_a_v_shaped_latent_book_around_itself():
    """Deposits are flat in the price's frame; consumption by the moving price leaves the
    density near the price far below the density far from it (an absorbing boundary)."""
    noise = group("noise", 40, wake_rate_per_hour=900.0, market_prob=0.5, order_lifetime_s=60.0)
    lo = group("latent_orders", 1, wake_interval_s=2.0, n_orders=4000, order_lots=2,
               band_ticks=60.0, lifetime_s=3600.0, reveal_ticks=2)  # fmt: skip
    lo["shares"] = {"ABC": 1_000_000}
    lo["cash"] = 1e9
    m = build(noise, lo, close="12:30", seed=11)
    (a,) = agents_of(m, LatentOrders)
    near, far = 0.0, 0.0
    for _ in range(10):
        m.run(900)
        b = a.latent_book(0)
        mid = a.mid(0)
        x = np.where(b.side == SELL, b.px - mid, mid - b.px)  # distance on its own side
        lots = b.q.astype(float)
        near += lots[(x >= 0) & (x < 4)].sum() / 4
        far += lots[(x >= 30) & (x < 50)].sum() / 20
    assert far > 0 and near < 0.5 * far


@pytest.mark.parametrize("ramp", [0.0, 10.0, 40.0])
def test_deposit_distances_follow_the_ramp_profile(ramp):
    """Fresh deposits' distances from the mid against the profile's CDF (KS test):
    uniform on [1/2, band] without a ramp; density min(u / w, 1) / (band - w / 2) with one."""
    _, a, _ = _latent(deposit_ramp_ticks=ramp)
    rng = np.random.default_rng(5)
    u = a.deposit_distances(rng.random(40_000), rng.random(40_000))
    band, w = 40.0, ramp

    def cdf(x):
        x = np.asarray(x, float)
        if w == 0:
            return np.clip((x - 0.5) / (band - 0.5), 0.0, 1.0)
        mass = np.where(x <= w, x * x / (2 * w), w / 2 + (x - w))
        return np.clip(mass / (band - w / 2), 0.0, 1.0)

    assert u.min() >= (0.5 if w == 0 else 0.0) and u.max() <= band
    assert stats.kstest(u, cdf).pvalue > 1e-3
    # the ramp empties the first ticks: share deposited within 2 ticks of the mid
    near = np.mean(u < 2.0)
    assert near == pytest.approx(float(cdf(2.0)), abs=0.01)
    if w > 0:
        assert near < 0.5 * (1.5 / 39.5)  # under half the uniform profile's share


def test_deposit_draws_are_counter_based_uniform_and_independent():
    """An order's draws depend on its index and deposit count only (not on the batch it was
    renewed with); they are uniform (KS) and uncorrelated across the three columns and across
    consecutive deposits of one order."""
    _, a, _ = _latent()
    idx = np.arange(50_000)
    gen = np.zeros(50_000, np.uint64)
    d = a.deposit_uniforms(0, idx, gen)
    assert d.shape == (50_000, 3) and d.min() >= 0.0 and d.max() < 1.0
    for j in range(3):
        assert stats.kstest(d[:, j], "uniform").pvalue > 1e-3
    assert np.abs(np.corrcoef(d.T) - np.eye(3)).max() < 0.03
    again = a.deposit_uniforms(0, idx[[7, 3, 40_000]], gen[[7, 3, 40_000]])
    assert np.array_equal(again, d[[7, 3, 40_000]])  # batch and order do not matter
    nxt = a.deposit_uniforms(0, idx, gen + np.uint64(1))
    assert abs(np.corrcoef(d[:, 1], nxt[:, 1])[0, 1]) < 0.03  # the next deposit is fresh
    other = a.deposit_uniforms(1, idx, gen)  # another asset: other draws
    assert abs(np.corrcoef(d[:, 1], other[:, 1])[0, 1]) < 0.03


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"n_orders": 0}, "n_orders"),
        ({"order_lots": 0}, "order_lots"),
        ({"band_ticks": 0.5}, "band_ticks"),
        ({"lifetime_s": 0.0}, "lifetime_s"),
        ({"reveal_ticks": -1}, "reveal_ticks"),
        ({"deposit_ramp_ticks": -1.0}, "deposit_ramp_ticks"),
        ({"deposit_ramp_ticks": 41.0}, "deposit_ramp_ticks"),
    ],
)
def test_bad_params_raise_naming_the_key(params, needle):
    with pytest.raises(ConfigError, match=needle):
        _latent(**params)
