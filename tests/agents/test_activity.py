"""The exogenous activity path and the noise traders it drives.

The path is checked against its definition (lognormal with mean 1, the OU autocorrelation of its
log), its time change against the integral it inverts, and the noise traders against what the
activity multiplies: their market-order probability, or their wake-up rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.background import NoiseTrader
from agents.background.activity import ActivityPath
from marketsim.book import MARKET
from marketsim.errors import ConfigError
from marketsim.model import MarketModel
from tests.agents.test_traders import agents_of, build, group, lp_account, queued, set_book


def _path(seed: int = 0, sigma: float = 0.7, halflives=(100.0,), grid_s: float = 10.0,
          steps: int = 2_000_000) -> ActivityPath:  # fmt: skip
    return ActivityPath(np.random.default_rng(seed), steps, 1.0, sigma, halflives, grid_s)


def test_path_is_lognormal_with_mean_one_and_the_ou_autocorrelation():
    sigma, h, g = 0.7, 100.0, 10.0
    p = _path(sigma=sigma, halflives=(h,), grid_s=g)
    a = p.level_
    assert len(a) == 2_000_000 // 10 + 2
    x = (np.log(a) + 0.5 * sigma**2) / sigma  # the unit-variance OU samples
    rho = 2.0 ** (-g / h)
    # n cells, each correlated with its neighbours: the effective sample is n (1-rho)/(1+rho)
    n_eff = len(x) * (1 - rho) / (1 + rho)
    assert abs(x.mean()) < 4 / math.sqrt(n_eff)
    assert abs(x.std() - 1.0) < 4 * math.sqrt(2 / n_eff)
    for lag in (1, 5, 20):
        r = np.corrcoef(x[:-lag], x[lag:])[0, 1]
        assert r == pytest.approx(rho**lag, abs=4 / math.sqrt(n_eff))
    # E[A] = 1: the std of the mean of a lognormal with these correlations is below this
    assert a.mean() == pytest.approx(1.0, abs=4 * math.sqrt((math.exp(sigma**2) - 1) / n_eff))


def test_several_half_lives_add_up_to_unit_variance_with_mixed_decay():
    hs = (50.0, 2000.0)
    p = _path(sigma=1.0, halflives=hs, grid_s=10.0)
    x = np.log(p.level_) + 0.5
    assert x.std() == pytest.approx(1.0, abs=0.05)
    lag = 20  # 200 s: the fast part has decayed, the slow one barely
    expect = np.mean([2.0 ** (-lag * 10.0 / h) for h in hs])
    assert np.corrcoef(x[:-lag], x[lag:])[0, 1] == pytest.approx(expect, abs=0.05)


def test_zero_sigma_is_the_identity_time_change():
    p = _path(sigma=0.0, steps=10_000)
    assert (p.level_ == 1.0).all()
    for t, gap in [(0, 0.5), (17.3, 40.0), (9999, 3.0)]:
        assert p.after(t, gap) == pytest.approx(t + gap)


_SMALL = _path(seed=5, sigma=1.2, halflives=(30.0, 300.0), grid_s=7.0, steps=50_000)


@settings(max_examples=200, deadline=None)
@given(t=st.floats(0, 49_000), gap=st.floats(0, 500), more=st.floats(0, 100))
def test_after_inverts_the_business_time_and_is_monotone(t, gap, more):
    p = _SMALL
    u = p.after(t, gap)
    assert u >= t - 1e-9
    assert p.business_time(u) - p.business_time(t) == pytest.approx(gap, abs=1e-6 * (1 + gap))
    assert p.after(t, gap + more) >= u - 1e-9


def test_business_time_is_the_integral_of_the_level():
    p = _SMALL
    steps = np.arange(0, 3000)
    levels = np.array([p.level(int(s)) for s in steps])
    assert p.business_time(3000) == pytest.approx(levels.sum())
    assert p.business_time(0) == 0.0


def test_time_changed_poisson_arrivals_follow_the_level():
    """Unit-rate gaps run through ``after`` arrive at rate A(t): the counts per cell, pooled by
    level, match the level times the cell length."""
    p = _path(seed=2, sigma=0.8, halflives=(200.0,), grid_s=10.0, steps=400_000)
    rng = np.random.default_rng(9)
    rate = 0.5  # arrivals per base-rate step
    t, arrivals = 0.0, []
    while True:
        t = p.after(t, rng.exponential(1.0 / rate))
        if t >= 400_000:
            break
        arrivals.append(t)
    counts = np.bincount((np.array(arrivals) // 10).astype(int), minlength=40_000)[:40_000]
    lv = p.level_[:40_000]
    for lo, hi in [(0.0, 0.5), (0.5, 1.0), (1.0, 2.0), (2.0, np.inf)]:
        sel = (lv >= lo) & (lv < hi)
        expected = rate * 10.0 * lv[sel].sum()
        assert counts[sel].sum() == pytest.approx(expected, abs=5 * math.sqrt(expected))


# ---------------------------------------------------------------------------------- in the model
def test_groups_with_one_stream_name_share_one_path_that_depends_on_the_seed_only():
    act = {"activity_sigma": 0.6, "activity_on": "market_prob"}
    m = build(group("noise", 3, **act), {**group("noise", 2, **act), "name": "more"})
    paths = {id(a.activity) for a in agents_of(m, NoiseTrader)}
    assert len(paths) == 1
    (path,) = {a.activity for a in agents_of(m, NoiseTrader)}
    # same seed, another population: the same activity
    m2 = build(group("noise", 1, **act), group("value", 4))
    assert np.array_equal(agents_of(m2, NoiseTrader)[0].activity.level_, path.level_)
    # another name, or another seed: another path
    m3 = build(group("noise", 1, **act, activity_stream="other"))
    m4 = build(group("noise", 1, **act), seed=4)
    for other in (m3, m4):
        assert not np.array_equal(agents_of(other, NoiseTrader)[0].activity.level_, path.level_)


def test_activity_multiplies_the_market_order_probability_up_to_its_cap():
    m = build(group("noise", market_prob=0.3, max_market_prob=0.6, activity_sigma=1.0,
                    activity_on="market_prob", activity_grid_s=1.0,
                    activity_halflives_s=[60.0]), close="16:00")  # fmt: skip
    (a,) = agents_of(m, NoiseTrader)
    lp = lp_account(m)
    set_book(m, lp, 9990, 10010)
    lv = a.activity.level_
    low = int(np.argmax(lv < 0.3))  # a step with A < 0.3: p = 0.3 A < 0.09
    high = int(np.argmax(lv > 2.5))  # A > 2.5: capped at 0.6
    assert lv[low] < 0.3 and lv[high] > 2.5
    for step, p in [(low, 0.3 * lv[low]), (high, 0.6)]:
        m.exchange._queue.clear()
        n = 4000
        for _ in range(n):
            a.act(step)
        k = sum(o[4] == MARKET for o in queued(m, a.account))
        assert k == pytest.approx(n * p, abs=5 * math.sqrt(n * p * (1 - p)))


def test_activity_modulates_the_wake_up_rate():
    """Wake-ups per minute follow 200 agents x 2 per minute x A. Steps of 0.1 s keep the
    rounding of gaps up to whole steps negligible."""
    m = build(group("noise", 200, wake_rate_per_hour=120.0, market_prob=0.0, activity_sigma=0.9,
                    activity_on="rate", activity_grid_s=60.0, activity_halflives_s=[300.0]),
              step_seconds=0.1)  # fmt: skip
    noise = agents_of(m, NoiseTrader)
    path = noise[0].activity
    assert path.grid_steps == 600
    woke: list[int] = []
    for a in noise:  # record every wake-up's step
        orig = a.act

        def act(step, _orig=orig):
            woke.append(step)
            _orig(step)

        a.act = act
    m.run()
    cells = np.bincount(np.array(woke) // 600, minlength=60)[:60]
    lv = path.level_[:60]
    expected = 200 * 2 * lv
    hi = lv > np.median(lv)
    for sel in (hi, ~hi):
        e = expected[sel].sum()
        assert cells[sel].sum() == pytest.approx(e, abs=5 * math.sqrt(e))
    assert np.corrcoef(cells, lv)[0, 1] > 0.8


def test_activity_off_by_default():
    m = build(group("noise"))
    (a,) = agents_of(m, NoiseTrader)
    assert a.activity is None and "_activity_paths" not in vars(m)


@pytest.mark.parametrize(
    "params, needle",
    [({"activity_sigma": -0.1}, "activity_sigma"), ({"activity_sigma": 9.0}, "activity_sigma"),
     ({"activity_sigma": 0.5, "activity_grid_s": 0.0}, "activity_grid_s"),
     ({"activity_sigma": 0.5, "activity_halflives_s": []}, "activity_halflives_s"),
     ({"activity_sigma": 0.5, "activity_halflives_s": [60.0, -1.0]}, "activity_halflives_s"),
     ({"activity_sigma": 0.5, "activity_on": "rate", "single_wake_per_day": True}, "activity_on"),
     ({"activity_sigma": 0.5, "activity_on": "both", "wake_interval_s": 5.0}, "activity_on")],
)  # fmt: skip
def test_bad_activity_params_name_the_key(params, needle):
    with pytest.raises(ConfigError, match=needle):
        build(group("noise", **params))


def test_activity_is_rebuilt_identically_after_a_checkpoint(tmp_path):
    act = {"activity_sigma": 0.8, "activity_on": "both", "activity_grid_s": 5.0}
    m = MarketModel({**_scenario_dict(), "agents": [group("noise", 30, market_prob=0.3, **act)]})
    m.run(600)
    ck = m.save(tmp_path / "ck.npz")
    m.run(1200)
    m2 = MarketModel.load(ck)
    m2.run(1200)
    assert (
        m.trades()[lambda d: d.step >= 600]
        .reset_index(drop=True)
        .equals(m2.trades().reset_index(drop=True))
    )


def _scenario_dict() -> dict:
    from tests.agents.test_traders import scenario

    return scenario([], close="10:30")
