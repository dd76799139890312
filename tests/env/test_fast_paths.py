"""The env's compiled fast paths against slow, obvious numpy references.

* :func:`marketsim.env.accounting.value_agents` / ``portfolio_rows`` vs per-agent numpy code;
* :func:`marketsim.env.projection.rebalance_lots` (projection + lot targets in one call) vs the
  general Dykstra projection and Python rounding;
* the batched ``step`` vs a per-agent re-computation of each observation's portfolio entries
  from the ledger, on seeded random action streams.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.env import parallel_env
from marketsim.env.accounting import in_box, portfolio_rows, value_agents
from marketsim.env.projection import WeightProjector, project, rebalance_lots
from marketsim.ledger import CASH_SCALE
from tests.env.scenarios import competition

A = 4


def _value_ref(marks, unit, cash_all, pos_all, accs, idx, pos0, mm):
    clean = np.where(np.isfinite(marks), marks, 0.0)
    vpl = clean * (unit / CASH_SCALE)
    out = []
    for acc, j in zip(accs, idx, strict=True):
        cash = int(cash_all[acc]) / CASH_SCALE
        vals = pos_all[acc] * vpl
        eq = cash + float(vals.sum())
        gross = float(np.abs(vals).sum())
        inv = float((pos_all[acc] - pos0[j]) @ vpl)
        below = eq < mm * gross or (eq <= 0 and gross > 0)
        out.append((cash, vals, eq, gross, inv, below))
    return vpl, out


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5),
    nan_slot=st.integers(-1, A - 1),
    mm=st.floats(0.0, 0.5),
)
def test_value_agents_matches_numpy_reference(seed, n, nan_slot, mm):
    rng = np.random.default_rng(seed)
    marks = rng.uniform(50, 20_000, A)
    if nan_slot >= 0:
        marks[nan_slot] = np.nan
    unit = rng.integers(1, 10_000, A).astype(np.int64)
    cash_all = rng.integers(-(10**12), 10**13, 8).astype(np.int64)
    pos_all = rng.integers(-5_000, 5_000, (8, A)).astype(np.int64)
    accs = rng.choice(8, n, replace=False).astype(np.int64)
    idx = rng.permutation(n).astype(np.int64)
    pos0 = rng.integers(-5_000, 5_000, (n, A)).astype(np.int64)
    vpl, cash, vals, eq, gross, inv, below = value_agents(
        marks, unit, CASH_SCALE, cash_all, pos_all, accs, idx, pos0, mm
    )
    vpl_r, ref = _value_ref(marks, unit, cash_all, pos_all, accs, idx, pos0, mm)
    np.testing.assert_array_equal(vpl, vpl_r)
    for i, (c, v, e, g, iv, _) in enumerate(ref):
        assert cash[i] == c
        np.testing.assert_array_equal(vals[i], v)
        assert math.isclose(eq[i], e, rel_tol=1e-12, abs_tol=1e-6)
        assert math.isclose(gross[i], g, rel_tol=1e-12, abs_tol=1e-6)
        assert math.isclose(inv[i], iv, rel_tol=1e-9, abs_tol=1e-6)
    assert below == sum(r[5] for r in ref)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5))
def test_portfolio_rows_matches_reference_and_raises_peaks(seed, n):
    rng = np.random.default_rng(seed)
    cash = rng.uniform(-1e5, 1e6, n)
    vals = rng.uniform(-1e5, 1e6, (n, A))
    eq = cash + vals.sum(axis=1)
    eq[rng.random(n) < 0.2] = -5.0  # some agents without equity
    gross = np.abs(vals).sum(axis=1)
    idx = rng.permutation(n).astype(np.int64)
    eq0 = rng.uniform(1e5, 2e6, n)
    peak = rng.uniform(1e5, 2e6, n)
    peak_before = peak.copy()
    port = portfolio_rows(cash, vals, eq, gross, idx, eq0, peak)
    for i in range(n):
        j = idx[i]
        assert peak[j] == max(peak_before[j], eq[i])
        want = np.zeros(A + 4, np.float32)
        if eq[i] > 0:
            want[:A] = vals[i] / eq[i]
            want[A] = cash[i] / eq[i]
            want[A + 1] = gross[i] / eq[i]
            want[A + 2] = math.log(eq[i] / eq0[j])
            want[A + 3] = max(0.0, 1.0 - eq[i] / peak[j])
        np.testing.assert_allclose(port[i], want, rtol=2e-7, atol=1e-7)


@settings(max_examples=150, deadline=None)
@given(
    raw=st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=A + 1, max_size=A + 1),
    mask=st.lists(st.sampled_from([0.0, 1.0]), min_size=A, max_size=A),
    short=st.booleans(),
    lev=st.floats(0.5, 3),
    cap=st.floats(0.2, 1),
    seed=st.integers(0, 2**31 - 1),
)
def test_rebalance_lots_matches_projection_and_python_rounding(raw, mask, short, lev, cap, seed):
    rng = np.random.default_rng(seed)
    raw = np.array(raw, np.float64)
    mask = np.array(mask)
    proj = WeightProjector(A, short, lev, cap)
    # the closed form agrees with the general Dykstra projection
    lo, hi = proj.bounds(mask)
    keep = np.flatnonzero(np.append(mask > 0, True))
    general = np.zeros(A + 1)
    general[keep] = project(
        raw[keep], lo[keep], hi[keep], proj.leverage, np.full(len(keep) - 1, -1), np.zeros(0),
        0, 5000, 1e-13, not short,
    )  # fmt: skip
    w = proj(raw, mask)
    np.testing.assert_allclose(w, general, atol=1e-6)
    marks = rng.uniform(100, 10_000, A)
    unit = rng.integers(1, 1000, A).astype(np.int64)
    pos = rng.integers(-300, 300, A).astype(np.int64)
    cash = np.int64(rng.integers(10**11, 10**12))
    min_lots = int(rng.integers(1, 5))
    got = rebalance_lots(
        raw, mask, proj.max_weight, proj.allow_short, proj.leverage, marks, unit, CASH_SCALE, pos,
        cash, min_lots,
    )  # fmt: skip
    vpl = marks * (unit / CASH_SCALE)
    eq = int(cash) / CASH_SCALE + float((pos * vpl).sum())
    want = np.zeros(A, np.int64)
    if eq > 0:
        for a in range(A):
            if mask[a] == 0:
                continue
            d = int(round(w[a] * eq / (marks[a] * unit[a] / CASH_SCALE))) - int(pos[a])
            if abs(d) >= min_lots:
                want[a] = d
    np.testing.assert_array_equal(got, want)


def test_in_box_rejects_nan_and_out_of_range():
    x = np.array([0.0, 0.5, -1.0, 1.0])
    assert in_box(x, -1.0, 1.0)
    assert not in_box(np.append(x, np.nan), -1.0, 1.0)
    assert not in_box(np.append(x, 1.0001), -1.0, 1.0)
    assert not in_box(np.append(x, -np.inf), -1.0, 1.0)


def test_batched_step_observations_match_the_ledger_every_step():
    """Each agent's portfolio entries equal a per-agent recomputation from the ledger, and the
    market window's position column is the agent's own weights, on a seeded action stream."""
    env = parallel_env(competition(), max_steps=60)
    obs, _ = env.reset(seed=11)
    rng = np.random.default_rng(3)
    peaks = {n: env.initial_equity[n] for n in env.agents}
    while env.agents:
        acts = {}
        for a in env.agents:
            sp = env.action_space(a)
            if hasattr(sp, "nvec"):
                acts[a] = rng.integers(0, sp.nvec)
            else:
                acts[a] = rng.uniform(sp.low, sp.high).astype(np.float32)
        obs, _, _, _, infos = env.step(acts)
        led = env.model.ledger
        marks = env.features.mid
        vpl = np.where(np.isfinite(marks), marks, 0.0) * (led._unit_value / CASH_SCALE)
        for n, o in obs.items():
            acc = env.rl[n].account
            cash = int(led._cash[acc]) / CASH_SCALE
            vals = led._positions[acc] * vpl
            eq = cash + float(vals.sum())
            peaks[n] = max(peaks[n], eq)
            assert infos[n]["equity"] == eq
            port = o["portfolio"]
            if eq > 0:
                np.testing.assert_allclose(port[:A], vals / eq, rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose(port[A], cash / eq, rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose(port[A + 2], math.log(eq / env.initial_equity[n]),
                                           rtol=1e-5, atol=1e-6)  # fmt: skip
                np.testing.assert_allclose(port[A + 3], max(0.0, 1 - eq / peaks[n]), atol=1e-6)
                np.testing.assert_array_equal(o["market"][-1, :, -1], port[:A])
            assert env.peak_equity[n] == peaks[n]
        led._check()


def test_flat_observation_is_gymnasium_flatten_of_the_dict():
    """The hand-rolled flat observation equals ``spaces.flatten`` of the Dict one, step by step."""
    from gymnasium import spaces

    envs = [parallel_env(competition(), max_steps=15, flat_obs=f) for f in (False, True)]
    (od, _), (of, _) = (e.reset(seed=5) for e in envs)
    rng = np.random.default_rng(0)
    for _ in range(15):
        for n in od:
            want = spaces.flatten(envs[0]._dict_spaces[n], od[n])
            np.testing.assert_array_equal(of[n], want)
            assert of[n].dtype == np.float32 and envs[1].observation_space(n).contains(of[n])
        if not envs[0].agents:
            break
        acts = {}
        for a in envs[0].agents:
            sp = envs[0].action_space(a)
            acts[a] = (
                rng.integers(0, sp.nvec)
                if hasattr(sp, "nvec")
                else rng.uniform(sp.low, sp.high).astype(np.float32)
            )
        od = envs[0].step(acts)[0]
        of = envs[1].step(acts)[0]
