"""Counterfactual alignment: a perturbation of the market (one extra order) changes the books
the traders see but not the random numbers they draw - every trader's own stream ends in the
same state with and without it. Impact studies compare such pairs of runs; a trader whose number
of draws depended on the book would decorrelate the pair and bury small meta-orders in noise."""

from __future__ import annotations

import pytest

from marketsim.book import BUY
from marketsim.model import MarketModel
from tests.agents.test_traders import build, group, lp_account, place


def _market(seed: int) -> MarketModel:
    noise = group("noise", 30, wake_rate_per_hour=600.0, market_prob=0.3,
                  inside_spread_prob=0.3, order_lifetime_s=60.0, size_sigma=0.8,
                  activity_sigma=0.5, inventory_scale_lots=40.0)  # fmt: skip
    value = group("value", 5, wake_rate_per_hour=300.0, r_bar_price=100.0, kappa_per_s=1e-4,
                  fund_sigma_per_sqrt_s=0.0, obs_noise_sigma=0.05, min_edge_ticks=1.0,
                  percent_aggr=0.3, max_position_lots=200)  # fmt: skip
    latent = group("latent_orders", 1, wake_interval_s=2.0, n_orders=2000, order_lots=2,
                   band_ticks=40.0, lifetime_s=900.0, reveal_ticks=2,
                   deposit_ramp_ticks=10.0)  # fmt: skip
    latent["shares"] = {"ABC": 1_000_000}
    latent["cash"] = 1e9
    mm = group("market_maker", 1, wake_interval_s=2.0, levels=3, size_lots=10)
    switching = group("switching", 5, wake_rate_per_hour=600.0, chartist_prob_init=0.3,
                      switch_rate=0.01, size_lots=5, max_position_lots=100)  # fmt: skip
    return build(noise, value, latent, mm, switching, close="11:30", seed=seed)


def _streams(m: MarketModel) -> dict[int, object]:
    return {acc: (a._drng.bit_generator.state["state"] if a._drng is not None else None)
            for acc, a in m.account_agent.items()}  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_one_extra_order_leaves_every_traders_stream_aligned(seed):
    base = _market(seed)
    base.run(1800)
    state = base.get_state()
    runs = []
    for extra in (0, 300):
        m = _market(seed)
        m.set_state(state)
        lp = lp_account(m)
        if extra:
            place(m, lp, BUY, 10_300, extra)  # sweeps the asks: the books diverge
        m.run(3600)
        runs.append(m)
    plain, pushed = runs
    # the perturbation did change what the traders hold
    assert plain.ledger.positions.tolist() != pushed.ledger.positions.tolist()
    a, b = _streams(plain), _streams(pushed)
    assert a.keys() <= b.keys()
    diverged = [plain.account_agent[k].group for k in a if a[k] != b[k]]
    assert diverged == []
