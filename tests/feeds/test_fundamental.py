"""Tests of marketsim.feeds: the Feed registry and the fundamental-value processes.

Statistical checks use seeded generators and tolerances of several standard errors, so they
are deterministic and still fail on a wrong formula (a wrong variance factor, a missing drift
correction, a jump rate off by a day length, ...).
"""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.errors import ConfigError, MarketSimError, StateError
from marketsim.feeds import (
    FEED_TYPES,
    SECONDS_PER_DAY,
    SECONDS_PER_YEAR,
    Feed,
    GBMFundamental,
    MeanRevertingFundamental,
    RegimeSwitchingFundamental,
    make_feed,
    register_feed,
    sector_correlation,
)


def run(feed: Feed, rng: np.random.Generator, steps: int, dt: float = 1.0, start: int = 0):
    """Advance ``steps`` times; return the values after each step, shape (steps, max_assets)."""
    out = np.empty((steps, feed.max_assets))
    for i in range(steps):
        feed.advance(start + i, dt, rng)
        out[i] = feed.values()
    return out


def make_all(max_assets: int = 3, **extra) -> list[Feed]:
    """One feed of each kind with jumps, correlation and active assets."""
    corr = sector_correlation(["a", "a", "b"][:max_assets], 0.6, 0.2)
    init = [100.0, 50.0, 20.0][:max_assets]
    return [
        MeanRevertingFundamental(
            max_assets,
            kappa=1e-3,
            sigma=0.05,
            jump_rate_per_day=500.0,
            jump_mean=0.5,
            jump_sigma=0.2,
            correlation=corr,
            initial_values=init,
            **extra,
        ),
        GBMFundamental(
            max_assets, mu=0.05, sigma=0.3, correlation=corr, initial_values=init, **extra
        ),
        RegimeSwitchingFundamental(
            max_assets,
            transition_rates_per_day=[[0, 200.0], [300.0, 0]],
            correlation=corr,
            initial_values=init,
            **extra,
        ),
    ]


# ----- Ornstein-Uhlenbeck --------------------------------------------------------------------


def test_ou_stationary_mean_variance_and_autocorrelation():
    kappa, sigma, mean, dt = 0.01, 0.5, 100.0, 50.0
    n = 2000
    sd = sigma / math.sqrt(2 * kappa)
    start = mean + sd * np.random.default_rng(1).standard_normal(n)  # stationary start
    feed = MeanRevertingFundamental(n, mean=mean, kappa=kappa, sigma=sigma, initial_values=start)
    path = run(feed, np.random.default_rng(2), 300, dt)
    assert abs(path.mean() - mean) < 5 * sd / math.sqrt(n * 300 / 4)
    assert path.var() == pytest.approx(sd**2, rel=0.02)
    x = path - mean
    rho = (x[1:] * x[:-1]).mean() / (x * x).mean()
    assert rho == pytest.approx(math.exp(-kappa * dt), abs=0.01)
    lag5 = (x[5:] * x[:-5]).mean() / (x * x).mean()
    assert lag5 == pytest.approx(math.exp(-5 * kappa * dt), abs=0.01)


def test_ou_matches_reference_recursion_on_the_same_normals():
    """Slow obvious reference: the OU recursion fed with the same block-drawn normals."""
    kappa, sigma, mean, x0, dt, block = 2e-3, 0.3, 80.0, 85.0, 3.0, 64
    feed = MeanRevertingFundamental(
        1, mean=mean, kappa=kappa, sigma=sigma, initial_values=[x0], block_size=block
    )
    got = run(feed, np.random.default_rng(5), 500, dt)[:, 0]
    ref_rng = np.random.default_rng(5)
    a = math.exp(-kappa * dt)
    s = sigma * math.sqrt((1 - a * a) / (2 * kappa))
    x, z, ref = x0, [], []
    for _ in range(500):
        if not z:
            z = list(ref_rng.standard_normal(block))
        x = mean + (x - mean) * a + s * z.pop(0)
        ref.append(x)
    np.testing.assert_allclose(got, ref, rtol=1e-13)


def test_ou_deterministic_decay_and_per_asset_parameters():
    feed = MeanRevertingFundamental(3, kappa=0.0, sigma=0.0)
    feed.add_asset(0, 60.0, mean=50.0, kappa=0.01)
    feed.add_asset(2, 70.0)  # mean defaults to the initial value, kappa=0: stays put
    rng = np.random.default_rng(0)
    feed.advance(0, 100.0, rng)
    v = feed.values()
    assert v[0] == pytest.approx(50.0 + 10.0 * math.exp(-1.0), rel=1e-14)
    assert math.isnan(v[1])
    assert v[2] == 70.0


def test_exact_discretisation_one_long_step_equals_two_short_steps():
    """One step of 2T and two steps of T agree with each other and with the exact moments."""
    kappa, sigma, mean, x0, big = 0.05, 0.4, 100.0, 103.0, 20.0
    rate_day, jm, js = 0.1 * SECONDS_PER_DAY, 1.0, 0.5  # 0.1 jumps per second
    n = 20000
    kw = dict(
        mean=mean, kappa=kappa, sigma=sigma, jump_rate_per_day=rate_day, jump_mean=jm,
        jump_sigma=js, initial_values=[x0] * n,
    )  # fmt: skip
    one = MeanRevertingFundamental(n, **kw)
    one.advance(0, big, np.random.default_rng(11))
    two = MeanRevertingFundamental(n, **kw)
    rng = np.random.default_rng(12)
    two.advance(0, big / 2, rng)
    two.advance(1, big / 2, rng)
    lam = rate_day / SECONDS_PER_DAY
    decay = math.exp(-kappa * big)
    exp_mean = mean + (x0 - mean) * decay
    exp_var = (sigma**2 + lam * (jm**2 + js**2)) * (1 - decay**2) / (2 * kappa)
    for feed in (one, two):
        v = feed.values()
        assert abs(v.mean() - exp_mean) < 5 * math.sqrt(exp_var / n)
        assert v.var() == pytest.approx(exp_var, rel=0.05)
    a, b = one.values(), two.values()
    assert abs(a.mean() - b.mean()) < 5 * math.sqrt(2 * exp_var / n)
    assert a.var() == pytest.approx(b.var(), rel=0.06)
    # fourth moment (jumps make the law non-Gaussian): same in both
    ka = ((a - a.mean()) ** 4).mean() / a.var() ** 2
    kb = ((b - b.mean()) ** 4).mean() / b.var() ** 2
    assert ka == pytest.approx(kb, abs=0.15)
    assert one.jump_counts.mean() == pytest.approx(lam * big, rel=0.03)
    assert two.jump_counts.mean() == pytest.approx(lam * big, rel=0.03)


def test_jump_frequency_and_size():
    """kappa = sigma = 0: the value is the initial one plus the sum of the jumps."""
    rate, jm, js, days, n = 3.0, 2.0, 0.5, 10, 2000
    feed = MeanRevertingFundamental(
        n, kappa=0.0, sigma=0.0, jump_rate_per_day=rate, jump_mean=jm, jump_sigma=js,
        initial_values=[1e6] * n,
    )  # fmt: skip
    run(feed, np.random.default_rng(3), days, dt=SECONDS_PER_DAY)
    counts = feed.jump_counts
    expected = rate * days
    assert abs(counts.mean() - expected) < 5 * math.sqrt(expected / n)
    assert counts.var() == pytest.approx(expected, rel=0.15)  # Poisson: variance = mean
    moves = feed.values() - 1e6
    assert abs(moves.mean()) < 5 * math.sqrt(expected * (jm**2 + js**2) / n)  # random sign
    assert moves.var() == pytest.approx(expected * (jm**2 + js**2), rel=0.15)


def test_no_jumps_without_rate_and_floor_keeps_values_positive():
    feed = MeanRevertingFundamental(1, initial_values=[100.0])
    run(feed, np.random.default_rng(0), 1000)
    assert feed.jump_counts[0] == 0
    crash = MeanRevertingFundamental(
        50, kappa=0.0, sigma=0.0, jump_rate_per_day=SECONDS_PER_DAY, jump_mean=500.0,
        floor_fraction=0.01, initial_values=[100.0] * 50,
    )  # fmt: skip
    path = run(crash, np.random.default_rng(0), 20)
    assert (path >= 1.0).all()
    assert (path == 1.0).any()


# ----- GBM -----------------------------------------------------------------------------------


def test_gbm_log_return_mean_and_variance():
    mu, sigma, n, steps = 0.1, 0.3, 2000, 200
    feed = GBMFundamental(n, mu=mu, sigma=sigma, initial_values=[100.0] * n)
    path = run(feed, np.random.default_rng(4), steps, dt=SECONDS_PER_DAY)
    r = np.diff(np.log(np.vstack([np.full(n, 100.0), path])), axis=0)
    tau = SECONDS_PER_DAY / SECONDS_PER_YEAR
    assert abs(r.mean() - (mu - sigma**2 / 2) * tau) < 5 * sigma * math.sqrt(tau / r.size)
    assert r.var() == pytest.approx(sigma**2 * tau, rel=0.015)
    # one step of 2 days has the law of two steps of 1 day
    n = 20000
    two = GBMFundamental(n, mu=mu, sigma=sigma, seconds_per_year=252.0, initial_values=[1.0] * n)
    two.advance(0, 2.0, np.random.default_rng(6))
    lr = np.log(two.values())
    assert abs(lr.mean() - (mu - sigma**2 / 2) * 2 / 252) < 5 * sigma * math.sqrt(2 / 252 / n)
    assert lr.var() == pytest.approx(sigma**2 * 2 / 252, rel=0.05)


# ----- regime switching ----------------------------------------------------------------------


def test_regime_occupancy_matches_stationary_distribution():
    rates = [[0.0, 1.0, 0.5], [2.0, 0.0, 1.0], [0.5, 3.0, 0.0]]
    sig = [0.1, 0.3, 0.6]
    feed = RegimeSwitchingFundamental(
        4, mu=[0.0, 0.0, 0.0], sigma=sig, transition_rates_per_day=rates, initial_values=[100.0] * 4
    )
    q = np.array(rates) - np.diag(np.sum(rates, axis=1))
    pi = feed.stationary_distribution()
    np.testing.assert_allclose(pi @ q, 0.0, atol=1e-12)
    assert (pi > 0).all()
    assert pi.sum() == pytest.approx(1.0)
    days = 6000
    rng = np.random.default_rng(7)
    seen = np.zeros(3)
    prev = np.log(feed.values().copy())
    sq = 0.0
    for d in range(days):
        feed.advance(d, SECONDS_PER_DAY, rng)
        seen[int(feed.features()["regime"][0])] += 1
        cur = np.log(feed.values())
        sq += ((cur - prev) ** 2).mean()
        prev = cur.copy()
    occ = feed.occupancy_s / (days * SECONDS_PER_DAY)
    np.testing.assert_allclose(occ.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(occ, pi, atol=0.02)
    np.testing.assert_allclose(seen / days, pi, atol=0.03)  # regime seen at step ends
    expected_switches = days * float(pi @ np.sum(rates, axis=1))
    assert feed.switch_count == pytest.approx(expected_switches, rel=0.05)
    tau = SECONDS_PER_DAY / SECONDS_PER_YEAR
    expected_var = float(pi @ np.square(sig)) * tau  # (drift^2 terms are ~1e-4 of this)
    assert sq / days == pytest.approx(expected_var, rel=0.06)


def test_regime_feature_shape_and_constant_regime():
    feed = RegimeSwitchingFundamental(
        5, mu=[0.0, 0.0], sigma=[0.2, 0.2], transition_rates_per_day=[[0, 0], [0, 0]],
        initial_regime=1, initial_values=[10.0, 20.0],
    )  # fmt: skip
    run(feed, np.random.default_rng(0), 10)
    f = feed.features()
    assert set(f) == {"fundamental", "regime"}
    assert f["regime"].shape == (1,) and f["regime"][0] == 1.0
    assert f["fundamental"].shape == (5,) and np.isnan(f["fundamental"][2:]).all()
    assert feed.switch_count == 0


# ----- correlation ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_assets", [3, 8])  # scalar path and numpy path
def test_empirical_correlation_matches_matrix(n_assets):
    sectors = ["a", "a", "b", "b", "c", "c", "d", "d"][:n_assets]
    corr = sector_correlation(sectors, intra=0.7, inter=0.2)
    feed = GBMFundamental(n_assets, sigma=0.3, correlation=corr, initial_values=[50.0] * n_assets)
    path = run(feed, np.random.default_rng(8), 15000)
    r = np.diff(np.log(path), axis=0)
    np.testing.assert_allclose(np.corrcoef(r.T), corr, atol=0.03)
    ou = MeanRevertingFundamental(n_assets, kappa=0.0, sigma=1.0, correlation=corr,
                                  initial_values=[1e4] * n_assets)  # fmt: skip
    inc = np.diff(run(ou, np.random.default_rng(9), 15000), axis=0)
    np.testing.assert_allclose(np.corrcoef(inc.T), corr, atol=0.03)


def test_correlation_over_active_slots_and_singular_matrix():
    corr = [[1.0, 1.0], [1.0, 1.0]]  # singular: the two assets move together
    feed = MeanRevertingFundamental(4, kappa=0.0, sigma=1.0, correlation=corr)
    feed.add_asset(0, 100.0)
    feed.add_asset(1, 100.0)
    feed.add_asset(3, 100.0)  # beyond the matrix: independent
    path = run(feed, np.random.default_rng(0), 200)
    np.testing.assert_allclose(path[:, 0], path[:, 1], rtol=1e-12)
    assert not np.allclose(path[:, 0], path[:, 3])
    feed.remove_asset(1)
    run(feed, np.random.default_rng(1), 10)  # factor recomputed over slots {0, 3}


def test_scalar_and_numpy_paths_agree():
    for kind in range(3):
        small = make_all(3)[kind]
        big = make_all(3)[kind]
        big._small_n = 0
        a = run(small, np.random.default_rng(10), 2000)
        b = run(big, np.random.default_rng(10), 2000)
        np.testing.assert_allclose(a, b, rtol=1e-11)
    small = MeanRevertingFundamental(3, initial_values=[1.0, 2.0, 3.0])
    big = MeanRevertingFundamental(3, initial_values=[1.0, 2.0, 3.0])
    big._small_n = 0
    np.testing.assert_array_equal(  # same arithmetic order: bit-identical without correlation
        run(small, np.random.default_rng(1), 500), run(big, np.random.default_rng(1), 500)
    )


def test_sector_correlation_values_and_errors():
    c = sector_correlation(["tech", "energy", "tech"], intra=0.5, inter=0.1)
    np.testing.assert_array_equal(c, [[1, 0.1, 0.5], [0.1, 1, 0.1], [0.5, 0.1, 1]])
    with pytest.raises(
        ConfigError, match=r"sector_correlation: intra must be <= 1.0, got intra=1.5"
    ):
        sector_correlation(["a"], 1.5, 0.0)
    with pytest.raises(ConfigError, match="not positive semi-definite"):
        sector_correlation(["a", "a", "a"], -0.9, 0.0)


@pytest.mark.parametrize(
    ("corr", "message"),
    [
        ([[1.0, 0.5], [0.4, 1.0]], r"correlation must be symmetric, got correlation\[0, 1\]=0.5"),
        ([[1.0, 0.0], [0.0, 0.9]], r"ones on the diagonal, got correlation\[1, 1\]=0.9"),
        ([[1.0, 1.2], [1.2, 1.0]], r"entries must lie in \[-1, 1\]"),
        (
            [[1, 0.9, -0.9], [0.9, 1, 0.9], [-0.9, 0.9, 1]],
            "correlation must be positive semi-definite, got smallest eigenvalue",
        ),
        (np.eye(5), r"1 <= k <= max_assets=3, got shape \(5, 5\)"),
        ([[1.0, np.nan], [np.nan, 1.0]], "correlation must be finite"),
    ],
)
def test_bad_correlation_errors(corr, message):
    with pytest.raises(ConfigError, match=message) as info:
        GBMFundamental(3, correlation=corr)
    assert str(info.value).startswith("GBMFundamental: correlation ")


# ----- determinism and state -----------------------------------------------------------------


def test_same_seed_same_path_different_seed_different_path():
    for a, b, c in zip(make_all(), make_all(), make_all(), strict=True):
        pa = run(a, np.random.default_rng(42), 3000)
        pb = run(b, np.random.default_rng(42), 3000)
        pc = run(c, np.random.default_rng(43), 3000)
        np.testing.assert_array_equal(pa, pb)
        assert not np.array_equal(pa, pc)


def _split_state(state):
    """Arrays to an npz, the rest to JSON: the no-pickle round trip the model performs."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    plain = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    text = json.dumps(plain)  # fails on anything that is not plain data
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    loaded.update(json.loads(text))
    return loaded


@pytest.mark.parametrize("kind", [0, 1, 2])
@pytest.mark.parametrize("block_size", [None, 7])
def test_state_round_trip_continues_bit_identically(kind, block_size):
    feed = make_all(3, block_size=block_size)[kind]
    rng = np.random.default_rng(99)
    run(feed, rng, 1234)
    feed.advance(1234, 63_000.0, rng)  # an overnight gap
    state = _split_state(feed.get_state())
    rng_state = rng.bit_generator.state
    if kind == 0:
        assert 0 < state["cursor"] < state["block"].size or block_size == 7
    expected = run(feed, rng, 3000, start=1235)
    fresh = type(feed)(3)  # default parameters: set_state restores everything
    fresh.set_state(state)
    rng2 = np.random.default_rng(0)
    rng2.bit_generator.state = rng_state
    np.testing.assert_array_equal(run(fresh, rng2, 3000, start=1235), expected)
    assert fresh.get_state()["time_s"] == feed.get_state()["time_s"]


@settings(max_examples=25, deadline=None)
@given(
    kind=st.integers(0, 2),
    dts=st.lists(st.sampled_from([0.5, 1.0, 1.0, 1.0, 30.0, 63_000.0]), min_size=2, max_size=60),
    split=st.integers(0, 59),
    seed=st.integers(0, 2**32 - 1),
)
def test_state_round_trip_any_split_point(kind, dts, split, seed):
    split = min(split, len(dts) - 1)
    feed = make_all(3, block_size=5)[kind]
    rng = np.random.default_rng(seed)
    for i, dt in enumerate(dts[:split]):
        feed.advance(i, dt, rng)
    state, rng_state = feed.get_state(), rng.bit_generator.state
    tail = []
    for i, dt in enumerate(dts[split:]):
        feed.advance(split + i, dt, rng)
        tail.append(feed.values().copy())
    again = type(feed)(3)
    again.set_state(state)
    rng.bit_generator.state = rng_state
    for i, dt in enumerate(dts[split:]):
        again.advance(split + i, dt, rng)
        np.testing.assert_array_equal(again.values(), tail[i])
        assert np.all(again.values() > 0)


def test_set_state_rejects_mismatched_state():
    state = GBMFundamental(3, initial_values=[1.0]).get_state()
    with pytest.raises(StateError, match="kind='gbm' version=1, expected kind='mean_reverting'"):
        MeanRevertingFundamental(3).set_state(state)
    with pytest.raises(StateError, match="state has max_assets=3, this feed has max_assets=4"):
        GBMFundamental(4).set_state(state)
    del state["block"]
    with pytest.raises(StateError, match="lacks entry 'block'"):
        GBMFundamental(3).set_state(state)


# ----- slots at run time ---------------------------------------------------------------------


def test_add_and_remove_assets_at_run_time():
    feed = MeanRevertingFundamental(4, jump_rate_per_day=100.0, jump_sigma=1.0)
    rng = np.random.default_rng(0)
    feed.advance(0, 1.0, rng)  # no assets: nothing happens, nothing drawn
    assert np.isnan(feed.values()).all()
    feed.add_asset(2, 100.0)
    run(feed, rng, 100, start=1)
    v = feed.values()
    assert np.isnan(v[[0, 1, 3]]).all() and v[2] > 0
    feed.add_asset(0, 10.0, sigma=0.0, kappa=0.0, jump_rate_per_day=0.0)
    run(feed, rng, 100, start=101)
    assert feed.values()[0] == 10.0
    assert feed.active.tolist() == [True, False, True, False]
    feed.remove_asset(2)
    assert math.isnan(feed.values()[2])
    run(feed, rng, 10, start=201)
    feed.add_asset(2, 5.0)  # slot reuse
    assert feed.values()[2] == 5.0 and feed.jump_counts[2] == 0
    run(feed, rng, 10, start=211)
    with pytest.raises(
        ConfigError, match=r"slot 2 is already active; call remove_asset\(2\) first"
    ):
        feed.add_asset(2, 1.0)
    with pytest.raises(ConfigError, match="remove_asset: slot 1 is not active"):
        feed.remove_asset(1)
    with pytest.raises(ConfigError, match=r"slot must be in \[0, 4\) \(max_assets=4\), got slot=4"):
        feed.add_asset(4, 1.0)


def test_values_is_a_live_read_only_view():
    feed = GBMFundamental(2, initial_values=[1.0, 2.0])
    v = feed.values()
    assert v.dtype == np.float64 and v.shape == (2,)
    feed.advance(0, 1.0, np.random.default_rng(0))
    assert feed.values() is v and v[0] != 1.0
    with pytest.raises(ValueError):
        v[0] = 3.0


# ----- parameter errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (MeanRevertingFundamental, {"sigma": -1.0}, "sigma must be >= 0.0, got sigma=-1.0"),
        (MeanRevertingFundamental, {"kappa": -0.5}, "kappa must be >= 0.0, got kappa=-0.5"),
        (MeanRevertingFundamental, {"mean": 0.0}, "mean must be > 0.0, got mean=0.0"),
        (
            MeanRevertingFundamental,
            {"jump_rate_per_day": -1},
            "jump_rate_per_day must be >= 0.0, got jump_rate_per_day=-1",
        ),
        (
            MeanRevertingFundamental,
            {"floor_fraction": 1.5},
            "floor_fraction must be < 1, got floor_fraction=1.5",
        ),
        (GBMFundamental, {"sigma": float("nan")}, "sigma must be finite, got sigma=nan"),
        (GBMFundamental, {"mu": "x"}, "mu must be a number, got mu='x'"),
        (GBMFundamental, {"seconds_per_year": 0}, "seconds_per_year must be > 0.0"),
        (GBMFundamental, {"max_assets": 0}, "max_assets must be >= 1, got max_assets=0"),
        (GBMFundamental, {"block_size": 2, "max_assets": 3}, "block_size must be >= max_assets=3"),
        (RegimeSwitchingFundamental, {"sigma": [0.1]}, "len\\(mu\\)=2, len\\(sigma\\)=1"),
        (RegimeSwitchingFundamental, {"sigma": [0.1, -0.2]}, r"sigma\[1\] must be >= 0.0"),
        (
            RegimeSwitchingFundamental,
            {"transition_rates_per_day": [[0, -1], [1, 0]]},
            r"transition_rates_per_day\[0\]\[1\] must be >= 0, got -1.0",
        ),
        (
            RegimeSwitchingFundamental,
            {"transition_rates_per_day": [[0, 1, 0], [1, 0, 0], [0, 0, 0]]},
            r"must have shape \(2, 2\) \(one row per regime\), got shape \(3, 3\)",
        ),
        (
            RegimeSwitchingFundamental,
            {"transition_rates_per_day": [[5, 1], [1, 0]]},
            r"\[0\]\[0\] must be 0 or minus the row's off-diagonal sum \(-1.0\), got 5.0",
        ),
        (
            RegimeSwitchingFundamental,
            {"initial_regime": 2},
            r"initial_regime must be an integer in \[0, 2\)",
        ),
    ],
)
def test_bad_parameters_raise_clear_errors(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        cls(**kwargs)
    assert isinstance(info.value, MarketSimError)


def test_bad_add_asset_and_dt_errors():
    feed = GBMFundamental(2)
    with pytest.raises(ConfigError, match="unknown parameter\\(s\\) kappa; allowed: mu, sigma"):
        feed.add_asset(0, 1.0, kappa=1.0)
    with pytest.raises(ConfigError, match="add_asset: sigma must be >= 0.0, got sigma=-2"):
        feed.add_asset(0, 1.0, sigma=-2)
    with pytest.raises(ConfigError, match="initial_value must be > 0.0, got initial_value=-5.0"):
        feed.add_asset(0, -5.0)
    assert not feed.active.any()  # failed adds leave no trace
    with pytest.raises(ConfigError, match="RegimeSwitchingFundamental.add_asset: unknown"):
        RegimeSwitchingFundamental(1).add_asset(0, 1.0, mu=0.1)
    feed.add_asset(0, 1.0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="dt_seconds must be a finite number > 0"):
            feed.advance(0, bad, np.random.default_rng(0))


# ----- registry and interface ----------------------------------------------------------------


def test_registry_and_make_feed():
    assert {"mean_reverting", "gbm", "regime_switching"} <= set(FEED_TYPES)
    feed = make_feed("gbm", max_assets=2, sigma=0.1, initial_values=[3.0])
    assert isinstance(feed, GBMFundamental) and feed.name == "gbm" and feed.max_assets == 2
    assert make_feed("mean_reverting", name="fv").name == "fv"
    with pytest.raises(
        ConfigError,
        match=r"unknown feed kind 'nope'; known kinds: .*gbm, .*mean_reverting, .*regime_switching",
    ):
        make_feed("nope")
    with pytest.raises(ConfigError, match="feed kind 'gbm': .*unexpected keyword argument 'kappa'"):
        make_feed("gbm", kappa=1.0)


def test_plugin_feed_can_be_registered_and_built():
    try:

        @register_feed("test_constant")
        class ConstantFeed(Feed):
            def __init__(self, max_assets: int = 1, name: str | None = None):
                super().__init__(max_assets, name=name)
                self._v = np.full(self.max_assets, np.nan)

            def advance(self, step, dt_seconds, rng):
                pass

            def values(self):
                return self._v

            def add_asset(self, slot, initial_value, **params):
                self._v[self.check_slot(slot)] = initial_value

            def remove_asset(self, slot):
                self._v[self.check_slot(slot)] = np.nan

            def get_state(self):
                return {"v": self._v.copy()}

            def set_state(self, state):
                self._v[:] = state["v"]

        feed = make_feed("test_constant", max_assets=2)
        assert feed.name == "test_constant" and feed.features() == {}
        feed.add_asset(1, 7.0)
        np.testing.assert_array_equal(feed.values(), [np.nan, 7.0])
        with pytest.raises(ConfigError, match="'test_constant' is already registered"):

            @register_feed("test_constant")
            class Other(ConstantFeed):
                pass

        with pytest.raises(TypeError):
            Feed()  # abstract
    finally:
        FEED_TYPES.pop("test_constant", None)
