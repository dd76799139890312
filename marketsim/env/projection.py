"""Projection of raw portfolio actions onto the feasible set of weights.

The feasible set for ``A`` asset slots plus cash (vector ``w`` of length ``A + 1``, cash last):

* budget: ``sum(w) == 1``;
* per asset: ``0 <= w_i <= u_i`` (long-only) or ``|w_i| <= u_i`` (shorting allowed), with
  ``u_i = 0`` for dead slots; cash ``w_c >= max(0, 1 - L)`` when long-only (no borrowing;
  with ``L < 1`` this is the leverage limit, since the assets then sum to ``1 - w_c``);
* gross leverage: ``sum_i |w_i| <= L`` over assets;
* sector caps: ``sum_{i in s} |w_i| <= c_s`` for each sector ``s``.

With shorting allowed the action's cash entry is ignored: the asset weights are projected onto
the box, leverage and sector sets and cash is ``1 - sum(w_i)`` (so any long/short target with
``sum |w_i| <= L`` is reachable from the action box). Long-only, all ``A + 1`` entries are
projected, budget included.

Each set is convex, so Dykstra's alternating projection algorithm converges to the Euclidean
projection onto their intersection (Boyle & Dykstra 1986). Every single-set projection is
closed-form (box clip, hyperplane shift, L1-ball projection of Duchi et al. 2008). Runtime:
O(iterations * (A log A) * n_sets); typically < 20 µs for A <= 16 (numba).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _l1_ball(v, radius):
    """Euclidean projection of ``v`` onto {x : sum |x| <= radius} (Duchi et al. 2008)."""
    a = np.abs(v)
    if a.sum() <= radius:
        return v.copy()
    if radius <= 0:
        return np.zeros_like(v)
    u = np.sort(a)[::-1]
    css = np.cumsum(u)
    rho = 0
    for j in range(u.shape[0]):
        if u[j] - (css[j] - radius) / (j + 1) > 0:
            rho = j
    theta = (css[rho] - radius) / (rho + 1)
    out = np.maximum(a - theta, 0.0)
    return np.sign(v) * out


@njit(cache=True)
def _project_set(k, x, lo, hi, lev, sector_of, caps, n_sectors):
    n = x.shape[0]
    A = n - 1
    if k == 0:  # budget hyperplane
        return x + (1.0 - x.sum()) / n
    if k == 1:  # box (per-asset caps, cash bounds)
        return np.minimum(np.maximum(x, lo), hi)
    if k == 2:  # gross leverage
        y = x.copy()
        y[:A] = _l1_ball(x[:A], lev)
        return y
    # sector k - 3
    s = k - 3
    idx = np.empty(A, np.int64)
    m = 0
    for i in range(A):
        if sector_of[i] == s:
            idx[m] = i
            m += 1
    y = x.copy()
    if m > 0:
        sub = np.empty(m)
        for j in range(m):
            sub[j] = x[idx[j]]
        sub = _l1_ball(sub, caps[s])
        for j in range(m):
            y[idx[j]] = sub[j]
    return y


@njit(cache=True)
def _capped_simplex(v, lo, hi):
    """Exact projection onto {sum x = 1, lo <= x <= hi}: x = clip(v - tau, lo, hi), with tau
    found by bisection (sum is monotone in tau). O(n * 100)."""
    a = (v - hi).min() - 1.0
    b = (v - lo).max() + 1.0
    for _ in range(100):
        tau = 0.5 * (a + b)
        if np.minimum(np.maximum(v - tau, lo), hi).sum() > 1.0:
            a = tau
        else:
            b = tau
    return np.minimum(np.maximum(v - 0.5 * (a + b), lo), hi)


@njit(cache=True)
def _capped_l1(v, u, radius):
    """Exact projection onto {|x_i| <= u_i, sum |x_i| <= radius}:
    x = sign(v) clip(|v| - theta, 0, u) with the smallest theta >= 0 that fits. O(n * 100)."""
    a_v = np.abs(v)
    x = np.minimum(a_v, u)
    if x.sum() <= radius:
        return np.sign(v) * x
    lo_t, hi_t = 0.0, a_v.max()
    for _ in range(100):
        th = 0.5 * (lo_t + hi_t)
        if np.minimum(np.maximum(a_v - th, 0.0), u).sum() > radius:
            lo_t = th
        else:
            hi_t = th
    return np.sign(v) * np.minimum(np.maximum(a_v - hi_t, 0.0), u)


@njit(cache=True)
def _project_closed(raw, mask, max_weight, allow_short, leverage):
    """:meth:`WeightProjector.__call__` without sector caps, in one compiled call: dead slots
    are fixed at 0 and the live entries projected exactly (capped simplex when long-only,
    capped L1 ball plus cash remainder when shorting is allowed). O(A * 100)."""
    A = raw.shape[0] - 1
    k = 0
    for i in range(A):
        if mask[i] > 0:
            k += 1
    idx = np.empty(k, np.int64)
    j = 0
    for i in range(A):
        if mask[i] > 0:
            idx[j] = i
            j += 1
    out = np.zeros(A + 1)
    if allow_short:
        v = np.empty(k)
        u = np.full(k, max_weight)
        for j in range(k):
            v[j] = raw[idx[j]]
        w = _capped_l1(v, u, leverage)
        for j in range(k):
            out[idx[j]] = w[j]
        out[A] = 1.0 - w.sum()
    else:
        v = np.empty(k + 1)
        lo = np.zeros(k + 1)
        hi = np.full(k + 1, max_weight)
        for j in range(k):
            v[j] = raw[idx[j]]
        v[k] = raw[A]
        lo[k] = max(0.0, 1.0 - leverage)  # sum of assets <= leverage  <=>  cash >= 1 - lev
        hi[k] = 1.0
        w = _capped_simplex(v, lo, hi)
        for j in range(k):
            out[idx[j]] = w[j]
        out[A] = w[k]
    return out


@njit(cache=True)
def target_lots(w, mask, marks, unit_value, cash_scale, pos, cash, min_lots):
    """Signed lot trades that bring positions to the weights ``w`` (length A + 1). O(A).

    The target position in slot ``a`` is ``round(w[a] * equity / lot value)`` with ``equity`` =
    cash + positions at ``marks`` (NaN marks value at 0); trades smaller than ``min_lots`` in
    absolute value are dropped (0), as are slots with ``mask == 0`` and all trades when the
    equity is not positive.
    """
    A = marks.shape[0]
    out = np.zeros(A, np.int64)
    s = 0.0
    for a in range(A):
        m = marks[a]
        s += pos[a] * ((m if np.isfinite(m) else 0.0) * (unit_value[a] / cash_scale))
    eq = cash / cash_scale + s
    if eq <= 0:
        return out
    for a in range(A):
        if mask[a] == 0:
            continue
        lot_value = marks[a] * unit_value[a] / cash_scale
        delta = np.int64(np.rint(w[a] * eq / lot_value)) - pos[a]
        if abs(delta) >= min_lots:
            out[a] = delta
    return out


@njit(cache=True)
def rebalance_lots(
    raw, mask, max_weight, allow_short, leverage, marks, unit_value, cash_scale, pos, cash, min_lots
):
    """Project ``raw`` weights (no sector caps) and turn them into signed lot trades
    (:func:`target_lots`) in one compiled call. O(A * 100)."""
    w = _project_closed(raw, mask, max_weight, allow_short, leverage)
    return target_lots(w, mask, marks, unit_value, cash_scale, pos, cash, min_lots)


@njit(cache=True)
def _violation(x, lo, hi, lev, sector_of, caps, n_sectors, budget):
    """Largest constraint violation of ``x`` (0 when feasible)."""
    n = x.shape[0]
    A = n - 1
    v = 0.0
    if budget:
        v = abs(x.sum() - 1.0)
    for i in range(n):
        if budget or i < A:
            v = max(v, lo[i] - x[i], x[i] - hi[i])
    v = max(v, np.abs(x[:A]).sum() - lev)
    for s in range(n_sectors):
        tot = 0.0
        for i in range(A):
            if sector_of[i] == s:
                tot += abs(x[i])
        v = max(v, tot - caps[s])
    return v


@njit(cache=True)
def project(raw, lo, hi, lev, sector_of, caps, n_sectors, iters, tol, budget):
    """Dykstra projection of ``raw`` (length A + 1) onto the feasible set (module docstring).

    With ``budget`` False (shorting allowed) only the asset weights are projected (box,
    leverage, sectors) and cash takes the remainder ``1 - sum(w)``.
    """
    n = raw.shape[0]
    n_sets = 3 + n_sectors
    x = raw.astype(np.float64).copy()
    incr = np.zeros((n_sets, n))
    first = 0 if budget else 1
    for _ in range(iters):
        prev = x.copy()
        prev_incr = incr.copy()
        for k in range(first, n_sets):
            y = x + incr[k]
            p = _project_set(k, y, lo, hi, lev, sector_of, caps, n_sectors)
            incr[k] = y - p
            x = p
        # converged only when neither x nor the correction terms move (x alone can stand
        # still for a sweep while the corrections are still changing)
        if np.abs(x - prev).max() < tol and np.abs(incr - prev_incr).max() < tol:
            break
    # Dykstra can stop on a slow sweep before every set holds: finish with plain alternating
    # projections (they converge into the intersection; from here they move x very little).
    for _ in range(10 * iters):
        if _violation(x, lo, hi, lev, sector_of, caps, n_sectors, budget) <= 1e-9:
            break
        for k in range(first, n_sets):
            x = _project_set(k, x, lo, hi, lev, sector_of, caps, n_sectors)
    if budget:
        # exact finish: the last set applied may leave a tiny budget error; fix it on cash
        x[n - 1] += 1.0 - x.sum()
    else:
        x[n - 1] = 1.0 - x[: n - 1].sum()
    return x


class WeightProjector:
    """Feasible-set projection for one agent's portfolio weights.

    Args:
        max_assets: Number of slots A.
        allow_short: Whether asset weights may be negative.
        leverage_limit: Max gross exposure / equity (L).
        max_weight: Cap on |w_i|.
        sector_of: Sector id per slot (-1: none), length A.
        sector_caps: Cap per sector id.
    """

    def __init__(
        self,
        max_assets: int,
        allow_short: bool,
        leverage_limit: float,
        max_weight: float = 1.0,
        sector_of: np.ndarray | None = None,
        sector_caps: np.ndarray | None = None,
    ):
        self.A = int(max_assets)
        self.allow_short = bool(allow_short)
        self.leverage = float(leverage_limit) if np.isfinite(leverage_limit) else 1e9
        if not self.allow_short:
            self.leverage = min(self.leverage, 1.0)
        self.max_weight = float(max_weight)
        self.sector_of = (
            np.full(self.A, -1, np.int64) if sector_of is None else np.asarray(sector_of, np.int64)
        )
        self.caps = np.zeros(0) if sector_caps is None else np.asarray(sector_caps, np.float64)
        self._bounds_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def bounds(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower/upper bounds per entry for a live-slot mask (cached per mask)."""
        key = mask.tobytes()
        hit = self._bounds_cache.get(key)
        if hit is not None:
            return hit
        out = self._bounds(mask)
        self._bounds_cache[key] = out
        return out

    def _bounds(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.where(mask > 0, self.max_weight, 0.0)
        lo = np.empty(self.A + 1)
        hi = np.empty(self.A + 1)
        hi[: self.A] = u
        lo[: self.A] = -u if self.allow_short else 0.0
        if self.allow_short:
            lo[self.A] = -self.leverage - 1.0
            hi[self.A] = self.leverage + 1.0
        else:  # assets sum to 1 - cash: gross leverage <= lev  <=>  cash >= 1 - lev
            lo[self.A] = max(0.0, 1.0 - self.leverage)
            hi[self.A] = 1.0
        return lo, hi

    def __call__(self, raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Project a raw action (A + 1,) onto the feasible set for the live ``mask``.

        Dead slots are fixed at 0 and left out of the iteration (they only slow it down).
        """
        raw = np.asarray(raw, np.float64)
        if self.caps.shape[0] == 0:  # exact closed forms (no sector caps)
            # long-only: the leverage limit is the cash lower bound 1 - L on the simplex
            return _project_closed(
                raw, np.asarray(mask, np.float64), self.max_weight, self.allow_short, self.leverage
            )
        lo, hi = self.bounds(mask)
        keep = np.flatnonzero(np.append(mask > 0, True))
        sub = project(
            raw[keep], lo[keep], hi[keep], self.leverage, self.sector_of[keep[:-1]], self.caps,
            self.caps.shape[0], 1000, 1e-10, not self.allow_short,
        )  # fmt: skip
        out = np.zeros(self.A + 1)
        out[keep] = sub
        return out

    def feasible(self, w: np.ndarray, mask: np.ndarray, tol: float = 1e-6) -> bool:
        """Whether ``w`` satisfies every constraint within ``tol``."""
        lo, hi = self.bounds(mask)
        A = self.A
        ok = abs(w.sum() - 1.0) <= tol and bool(np.all(w >= lo - tol) and np.all(w <= hi + tol))
        ok = ok and np.abs(w[:A]).sum() <= self.leverage + tol
        for s in range(self.caps.shape[0]):
            ok = ok and np.abs(w[:A][self.sector_of == s]).sum() <= self.caps[s] + tol
        return bool(ok)
