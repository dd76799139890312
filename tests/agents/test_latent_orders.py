"""`latent_orders`: what it shows, what it takes, that fills consume exactly the latent orders
they came from, that the price's motion carves a V-shaped latent book around the price, and bad
parameters."""

from __future__ import annotations

import numpy as np
import pytest

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


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"n_orders": 0}, "n_orders"),
        ({"order_lots": 0}, "order_lots"),
        ({"band_ticks": 0.5}, "band_ticks"),
        ({"lifetime_s": 0.0}, "lifetime_s"),
        ({"reveal_ticks": -1}, "reveal_ticks"),
    ],
)
def test_bad_params_raise_naming_the_key(params, needle):
    with pytest.raises(ConfigError, match=needle):
        _latent(**params)
