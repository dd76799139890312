"""Meta-order market impact: the square-root law fit, impact paths and their decay.

Notation for one meta-order (parent order) of ``Q`` lots executed on side ``ε`` (+1 buy, -1
sell) from step ``t_0`` to step ``t_1`` (``T = t_1 - t_0`` steps):

* counterfactual impact path (same seed, run with and without the meta-order):
  ``I(t) = ε [ln m_with(t) - ln m_without(t)]``, ``m`` the last valid mid at or before step
  ``t`` (forward-filled over empty-book steps);
* peak impact ``I* = I(t_1)`` (impact when execution ends; :func:`impact_path` also gives the
  maximum);
* impact law (Tóth et al. 2011; Bouchaud et al. 2018, ch. 12): ``I*/σ = Y (Q/V)^δ`` with
  ``V`` daily volume and ``σ`` daily volatility, ``δ ≈ 0.5`` ("square-root law") and
  ``Y`` of order 1. Fitted by least squares in log space,
  ``ln(I*/σ) = ln Y + δ ln(Q/V) + e``, over rows with ``I* > 0`` (``method="rows"``) or over
  the means of ``I*/σ`` in log-spaced bins of ``Q/V`` (``method="binned"``, which keeps rows
  with ``I* <= 0`` inside the bin means, as is usual for noisy single-order impacts);
  95% CIs by pairs bootstrap (rows resampled with replacement, the fit repeated, percentile
  intervals) or analytically (OLS standard errors and Student-t quantiles);
* decay after the end: ``D(m) = I(t_1 + m T) / I*`` for multiples ``m`` of the execution
  duration (``D(0) = 1``); over several meta-orders the ratio of means
  ``D̄(m) = Σ_j I_j(t_1 + m T_j) / Σ_j I*_j``.

References: B. Tóth, Y. Lempérière, C. Deremble, J. de Lataillade, J. Kockelkoren,
J.-P. Bouchaud (2011), Anomalous price impact and the critical nature of liquidity in financial
markets, Phys. Rev. X 1, 021006; J.-P. Bouchaud, J. Bonart, J. Donier, M. Gould (2018), Trades,
Quotes and Prices, Cambridge University Press.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.io import Run, as_run, select_asset
from analysis.returns import daily_volatility
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "ImpactFit",
    "fit_impact_law",
    "impact_decay",
    "impact_path",
    "mean_decay",
    "metaorder_impact",
]


@dataclass(frozen=True)
class ImpactFit:
    """Result of :func:`fit_impact_law`.

    Attributes:
        Y, delta: prefactor and exponent of ``I/σ = Y (Q/V)^δ``.
        Y_ci, delta_ci: (low, high) confidence intervals at ``level``.
        n: rows (or bins) used; n_dropped: rows left out (non-positive or non-finite values).
        r2: R² of the log-log fit; resid_std: standard deviation of the log residuals.
        method, ci_method, level: how it was fitted.
    """

    Y: float
    delta: float
    Y_ci: tuple[float, float]
    delta_ci: tuple[float, float]
    n: int
    n_dropped: int
    r2: float
    resid_std: float
    method: str
    ci_method: str
    level: float


def _ols(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float]:
    """(intercept, slope) of weighted least squares ``y = a + b x``."""
    if w is None:
        w = np.ones_like(x)
    sw = w.sum()
    mx, my = (w * x).sum() / sw, (w * y).sum() / sw
    sxx = (w * (x - mx) ** 2).sum()
    b = (w * (x - mx) * (y - my)).sum() / sxx if sxx > 0 else np.nan
    return float(my - b * mx), float(b)


def _binned(qv: np.ndarray, iz: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ln mean Q/V, ln mean I/σ, count) of log-spaced bins with a positive mean impact."""
    lq = np.log(qv)
    edges = np.linspace(lq.min(), lq.max(), bins + 1)
    b = np.clip(np.searchsorted(edges, lq, side="right") - 1, 0, bins - 1)
    cnt = np.bincount(b, minlength=bins).astype(float)
    ok = cnt > 0
    mq = np.bincount(b, weights=qv, minlength=bins)[ok] / cnt[ok]
    mi = np.bincount(b, weights=iz, minlength=bins)[ok] / cnt[ok]
    pos = mi > 0
    return np.log(mq[pos]), np.log(mi[pos]), cnt[ok][pos]


def fit_impact_law(
    rows: pd.DataFrame | None = None,
    *,
    Q: Any = None,
    V: Any = None,
    sigma: Any = None,
    I: Any = None,  # noqa: E741 - the literature's name
    method: str = "rows",
    ci: str = "bootstrap",
    n_boot: int = 1000,
    level: float = 0.95,
    bins: int = 10,
    rng: np.random.Generator | None = None,
) -> ImpactFit:
    """Fit ``I/σ = Y (Q/V)^δ`` by least squares in log space (see the module docstring).

    Args:
        rows: DataFrame with columns ``Q``, ``V``, ``sigma``, ``I`` (one meta-order per row);
            or give the arrays as keywords instead.
        Q, V, sigma, I: Parent size, daily volume (same units as Q), daily volatility, peak
            impact (log-price units, same as sigma).
        method: "rows" (OLS on each row with ``I > 0``) or "binned" (count-weighted OLS on the
            means of ``I/σ`` in ``bins`` log-spaced bins of ``Q/V``).
        ci: "bootstrap" (pairs bootstrap, percentile CI) or "analytic" (OLS + t quantiles).
        n_boot: Bootstrap replications.
        level: Confidence level.
        bins: Number of bins for ``method="binned"``.
        rng: Generator for the bootstrap (default ``np.random.default_rng(0)``).

    Returns:
        :class:`ImpactFit`.

    Raises:
        ConfigError: missing columns, bad option, or fewer than 3 usable rows/bins.

    Complexity: O(n_boot * n) with the bootstrap, O(n) otherwise.
    """
    if rows is not None:
        missing = [c for c in ("Q", "V", "sigma", "I") if c not in rows.columns]
        if missing:
            raise ConfigError(
                f"rows lacks column(s) {missing}; need Q, V, sigma, I (got {list(rows.columns)})"
            )
        Q, V, sigma, I = (rows[c].to_numpy(float) for c in ("Q", "V", "sigma", "I"))  # noqa: E741
    if any(v is None for v in (Q, V, sigma, I)):
        raise ConfigError("fit_impact_law needs rows= or all of Q=, V=, sigma=, I=")
    q, v, s, imp = (np.asarray(a, dtype=float).ravel() for a in (Q, V, sigma, I))
    if not q.size == v.size == s.size == imp.size:
        raise ConfigError(
            f"Q, V, sigma, I must have one length, got {q.size}, {v.size}, {s.size}, {imp.size}"
        )
    if method not in ("rows", "binned"):
        raise ConfigError(f"method = {method!r}: must be 'rows' or 'binned'")
    if ci not in ("bootstrap", "analytic"):
        raise ConfigError(f"ci = {ci!r}: must be 'bootstrap' or 'analytic'")
    if not 0 < level < 1:
        raise ConfigError(f"level = {level!r}: must be in (0, 1)")
    rng = np.random.default_rng(0) if rng is None else rng
    base = np.isfinite(q) & np.isfinite(v) & np.isfinite(s) & np.isfinite(imp)
    base &= (q > 0) & (v > 0) & (s > 0)
    qv, iz = q[base] / v[base], imp[base] / s[base]
    n_total = q.size

    def fit(
        qv_: np.ndarray, iz_: np.ndarray
    ) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
        if method == "rows":
            p = iz_ > 0
            x, y, w = np.log(qv_[p]), np.log(iz_[p]), np.ones(int(p.sum()))
        else:
            x, y, w = _binned(qv_, iz_, bins)
        a, b = _ols(x, y, w) if x.size >= 3 else (np.nan, np.nan)
        return a, b, x, y, w

    a, b, x, y, w = fit(qv, iz)
    used = int(x.size)
    if used < 3 or not math.isfinite(b):
        raise ConfigError(
            f"fit_impact_law: only {used} usable {'rows' if method == 'rows' else 'bins'} "
            f"(positive I/sigma and finite positive Q, V, sigma); need >= 3"
        )
    res = y - (a + b * x)
    sw = w.sum()
    ybar = (w * y).sum() / sw
    sst = float((w * (y - ybar) ** 2).sum())
    r2 = 1.0 - float((w * res**2).sum()) / sst if sst > 0 else float("nan")
    resid_std = float(np.sqrt((w * res**2).sum() / sw))
    lo_q, hi_q = 0.5 - level / 2, 0.5 + level / 2
    if ci == "analytic":
        xbar = (w * x).sum() / sw
        sxx = float((w * (x - xbar) ** 2).sum())
        dof = used - 2
        s2 = float((w * res**2).sum()) / dof / (sw / used)  # weights as frequencies
        se_b = math.sqrt(s2 / sxx)
        se_a = math.sqrt(s2 * (1.0 / sw + xbar**2 / sxx))
        t = float(stats.t.ppf(hi_q, dof))
        delta_ci = (b - t * se_b, b + t * se_b)
        logy_ci = (a - t * se_a, a + t * se_a)
    else:
        if n_boot < 10:
            raise ConfigError(f"n_boot = {n_boot!r}: use at least 10 (e.g. 1000)")
        m = qv.size
        bs_a, bs_b = [], []
        for _ in range(n_boot):
            idx = rng.integers(0, m, m)
            ab = fit(qv[idx], iz[idx])
            if math.isfinite(ab[1]):
                bs_a.append(ab[0])
                bs_b.append(ab[1])
        if len(bs_b) < 10:
            raise ConfigError("fit_impact_law: the bootstrap failed (too few usable rows)")
        delta_ci = tuple(np.quantile(bs_b, [lo_q, hi_q]).tolist())
        logy_ci = tuple(np.quantile(bs_a, [lo_q, hi_q]).tolist())
    return ImpactFit(
        Y=math.exp(a),
        delta=b,
        Y_ci=(math.exp(logy_ci[0]), math.exp(logy_ci[1])),
        delta_ci=(float(delta_ci[0]), float(delta_ci[1])),
        n=used,
        n_dropped=n_total - (int((iz > 0).sum()) if method == "rows" else int(base.sum())),
        r2=r2,
        resid_std=resid_std,
        method=method,
        ci_method=ci,
        level=level,
    )


# ---------------------------------------------------------------------------- paths
def _mid_by_step(quotes: pd.DataFrame, asset: str | None, which: str) -> pd.Series:
    q = select_asset(quotes, asset, which)
    if asset is None and len(q) and q["asset"].astype(str).nunique() > 1:
        raise ConfigError(
            f"{which} holds several assets {sorted(q['asset'].astype(str).unique())}; pass asset="
        )
    s = pd.Series(q["mid"].to_numpy(float), index=q["step"].to_numpy(np.int64))
    s = s[~s.index.duplicated(keep="last")].sort_index()
    s[~(s > 0)] = np.nan
    return s.ffill()


def impact_path(
    quotes_with: pd.DataFrame,
    quotes_without: pd.DataFrame,
    start_step: int,
    end_step: int,
    side: int,
    asset: str | None = None,
) -> pd.DataFrame:
    """Counterfactual impact path ``I(t) = side (ln m_with(t) - ln m_without(t))``.

    Args:
        quotes_with: ``quotes`` of the run with the meta-order.
        quotes_without: ``quotes`` of the same run (same seed) without it.
        start_step, end_step: First and last step of the execution (``t_0 < t_1``).
        side: +1 for a buy meta-order, -1 for a sell.
        asset: The asset (needed when the tables hold several).

    Returns:
        DataFrame over the steps present in both tables with columns step, rel_step
        (``t - t_0``), tau (``(t - t_0) / (t_1 - t_0)``), phase ("before", "during",
        "after"), mid_with, mid_without, impact. ``attrs`` holds start_step, end_step, side.

    Raises:
        ConfigError: bad side or steps, or no common steps.

    Complexity: O(n log n).
    """
    if side not in (1, -1):
        raise ConfigError(f"side = {side!r}: must be +1 (buy meta-order) or -1 (sell)")
    for nm, v in (("start_step", start_step), ("end_step", end_step)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ConfigError(f"{nm} = {v!r}: must be an integer step")
    if not start_step < end_step:
        raise ConfigError(f"start_step = {start_step} must be < end_step = {end_step}")
    mw = _mid_by_step(quotes_with, asset, "quotes_with")
    mo = _mid_by_step(quotes_without, asset, "quotes_without")
    steps = mw.index.intersection(mo.index)
    if not len(steps):
        raise ConfigError("quotes_with and quotes_without have no step in common")
    a, b = mw.reindex(steps).to_numpy(), mo.reindex(steps).to_numpy()
    st = steps.to_numpy(np.int64)
    phase = np.where(st < start_step, "before", np.where(st <= end_step, "during", "after"))
    out = pd.DataFrame(
        {
            "step": st,
            "rel_step": st - start_step,
            "tau": (st - start_step) / (end_step - start_step),
            "phase": phase,
            "mid_with": a,
            "mid_without": b,
            "impact": side * (np.log(a) - np.log(b)),
        }
    )
    out.attrs.update(start_step=int(start_step), end_step=int(end_step), side=int(side))
    return out


def _at(path: pd.DataFrame, step: float) -> float:
    """Impact at the last recorded step <= ``step`` (NaN before the path or past its end)."""
    st = path["step"].to_numpy()
    if not len(st) or step > st[-1] or step < st[0]:
        return float("nan")
    i = int(np.searchsorted(st, step, side="right")) - 1
    return float(path["impact"].to_numpy()[i])


def impact_decay(
    path: pd.DataFrame,
    multiples: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0),
    start_step: int | None = None,
    end_step: int | None = None,
) -> pd.DataFrame:
    """Fraction of the peak impact left at multiples of the execution duration after the end.

    ``D(m) = I(t_1 + m T) / I(t_1)``, ``T = t_1 - t_0``; ``I`` at a step is the last recorded
    value at or before it; NaN past the end of the path.

    Args:
        path: Output of :func:`impact_path` (or columns step, impact).
        multiples: Values of ``m`` (>= 0).
        start_step, end_step: Default: ``path.attrs``.

    Returns:
        DataFrame with columns multiple, step, impact, fraction.

    Complexity: O(len(multiples) log n).
    """
    t0 = path.attrs.get("start_step") if start_step is None else start_step
    t1 = path.attrs.get("end_step") if end_step is None else end_step
    if t0 is None or t1 is None:
        raise ConfigError("impact_decay needs start_step and end_step (or a path from impact_path)")
    if any(m < 0 for m in multiples):
        raise ConfigError(f"multiples must be >= 0, got {list(multiples)}")
    p = path.sort_values("step")
    peak = _at(p, t1)
    rows = []
    for m in multiples:
        s = t1 + m * (t1 - t0)
        i = _at(p, s)
        rows.append((float(m), s, i, i / peak if peak != 0 else float("nan")))
    return pd.DataFrame(rows, columns=["multiple", "step", "impact", "fraction"])


def mean_decay(
    paths: Iterable[pd.DataFrame], multiples: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 4.0)
) -> pd.DataFrame:
    """Ratio-of-means decay over meta-orders: ``D̄(m) = Σ_j I_j(t_1 + m T_j) / Σ_j I*_j``.

    Paths lacking the point ``t_1 + m T_j`` are left out of that multiple's sums.

    Returns:
        DataFrame with columns multiple, fraction, n (paths used).

    Complexity: O(paths * len(multiples) log n).
    """
    num = np.zeros(len(multiples))
    den = np.zeros(len(multiples))
    cnt = np.zeros(len(multiples), dtype=np.int64)
    for p in paths:
        if "end_step" not in p.attrs:
            raise ConfigError("mean_decay needs paths from impact_path (attrs end_step)")
        d = impact_decay(p, multiples)
        peak = _at(p.sort_values("step"), p.attrs["end_step"])
        ok = np.isfinite(d["impact"].to_numpy()) & np.isfinite(peak)
        num[ok] += d["impact"].to_numpy()[ok]
        den[ok] += peak
        cnt[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(den != 0, num / den, np.nan)
    return pd.DataFrame({"multiple": np.asarray(multiples, float), "fraction": frac, "n": cnt})


def metaorder_impact(
    run_with: Run | str,
    run_without: Run | str,
    start_step: int,
    end_step: int,
    side: int,
    Q: float,
    asset: str | None = None,
    vol_horizon: Any = "5min",
) -> dict[str, Any]:
    """One meta-order's fit row from a run with it and its counterfactual run without it.

    ``V`` is the mean daily volume (lots traded / trading days quoted) and ``σ`` the daily open-to-close volatility
    (:func:`analysis.returns.daily_volatility` at ``vol_horizon``), both from the run without
    the meta-order; ``I = I(t_1)`` and ``I_max = max_{t_0 <= t <= t_1} I(t)`` from
    :func:`impact_path`.

    Returns:
        Dict with Q, V, sigma, I, I_max, duration_steps, side and path (the DataFrame); the
        first keys form a row for :func:`fit_impact_law`.

    Raises:
        ConfigError / DataError: see :func:`impact_path` and :func:`analysis.io.load_run`.

    Complexity: O(rows log rows).
    """
    rw, ro = as_run(run_with), as_run(run_without)
    if asset is None:
        names = ro.assets
        if len(names) != 1:
            raise ConfigError(f"the runs hold assets {names}; pass asset=")
        asset = names[0]
    path = impact_path(rw.quotes, ro.quotes, start_step, end_step, side, asset)
    during = path[(path["step"] >= start_step) & (path["step"] <= end_step)]
    t = select_asset(ro.trades, asset, "trades", must_exist=False)
    q = select_asset(ro.quotes, asset, "quotes")
    n_days = np.unique(q["time"].to_numpy().astype("datetime64[D]")).size
    V = float(t["qty"].to_numpy(float).sum() / n_days) if n_days else float("nan")
    return {
        "Q": float(Q),
        "V": V,
        "sigma": daily_volatility(ro.quotes, asset, vol_horizon),
        "I": _at(path, end_step),
        "I_max": float(during["impact"].max()) if len(during) else float("nan"),
        "duration_steps": int(end_step - start_step),
        "side": int(side),
        "path": path,
    }
