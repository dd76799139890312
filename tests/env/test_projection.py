"""Feasible-set projection of portfolio weights: feasibility, idempotence, optimality."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.env.projection import WeightProjector

vec = st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=5, max_size=5)
masks = st.lists(st.sampled_from([0.0, 1.0]), min_size=4, max_size=4)


@settings(max_examples=60, deadline=None)
@given(raw=vec, mask=masks, short=st.booleans(), lev=st.floats(0.5, 3), cap=st.floats(0.2, 1))
def test_projection_is_feasible_and_idempotent(raw, mask, short, lev, cap):
    p = WeightProjector(4, short, lev, cap, np.array([0, 0, 1, 1]), np.array([0.7, 1.5]))
    m = np.array(mask)
    w = p(np.array(raw), m)
    assert p.feasible(w, m, tol=1e-6), (raw, mask, w)
    assert np.all(w[:4][m == 0] == 0)
    w2 = p(w, m)
    np.testing.assert_allclose(w2, w, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(raw=vec, mask=masks)
def test_long_only_projection_is_the_nearest_feasible_point(raw, mask):
    """No random feasible point is closer to the raw action than the projection."""
    p = WeightProjector(4, False, 1.0, 0.6)
    m = np.array(mask)
    raw = np.array(raw)
    w = p(raw, m)
    d = np.linalg.norm(w - raw)
    rng = np.random.default_rng(0)
    for _ in range(200):
        cand = p(rng.uniform(-1, 1, 5), m)  # a feasible point
        assert np.linalg.norm(cand - raw) >= d - 1e-6


def test_shorting_reaches_any_target_within_leverage():
    p = WeightProjector(2, True, 1.0, 1.0)
    w = p(np.array([-0.4, 0.3, 0.0]), np.ones(2))
    np.testing.assert_allclose(w, [-0.4, 0.3, 1.1])
    w = p(np.array([-0.9, 0.9, 0.0]), np.ones(2))
    assert abs(np.abs(w[:2]).sum() - 1.0) < 1e-9 and abs(w.sum() - 1) < 1e-9
