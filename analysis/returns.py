"""Mid-price sampling, log returns that never span two trading days, and realized volatility.

Notation (per asset): a quote row at time ``t`` carries the mid ``m(t) = (bid + ask) / 2``
(NaN when a side of the book is empty; such rows are skipped). The trading day of a time is its
calendar date (sessions never cross midnight). ``o_d`` is the time of the first quote row of
day ``d`` (its session open).

Previous-tick sampling at horizon ``h`` (shorter than a day): the grid of day ``d`` is
``g_k = o_d + k h`` for ``k = k_0 .. K_d`` and the sampled price is

    P(g_k) = m(last valid quote of day d at time <= g_k),

where ``k_0 = ceil((t_first_valid - o_d) / h)`` (the first grid point with a valid mid at or
before it) and ``K_d = ceil((t_last - o_d) / h)`` (the first grid point at or after the day's last
quote, so the closing price is sampled; if ``h`` does not divide the session the last interval
is shorter than ``h``). The log return of interval ``k`` is

    r_k = ln P(g_k) - ln P(g_{k-1}),   both grid points in the same trading day,

so a return never spans the overnight gap. At the daily horizon (``h = 1 day``) the return of
day ``d`` is open-to-close, ``r_d = ln m(last valid of d) - ln m(first valid of d)``; with
``include_overnight=True`` it is close-to-close, ``r_d = ln C_d - ln C_{d-1}`` (``C_d``: last
valid mid of day ``d``), and intraday returns also link the last grid point of a day to the
first of the next.

Example:
    >>> r = log_returns(run.quotes, "5min")                           # doctest: +SKIP
    >>> realized_volatility(r).head()                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.io import select_asset
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "NS_PER_DAY",
    "daily_volatility",
    "interval_volume",
    "log_returns",
    "mid_prices",
    "parse_horizon",
    "realized_volatility",
    "returns_at_horizons",
]

#: Nanoseconds in a calendar day (times are naive market-local ``datetime64[ns]``).
NS_PER_DAY = 86_400 * 10**9

_RET_COLS = ["asset", "day", "start", "end", "r"]


def parse_horizon(horizon: Any) -> int | None:
    """A sampling horizon in nanoseconds, or ``None`` for every quote.

    Args:
        horizon: ``None``, a pandas offset string (``"1min"``, ``"5min"``, ``"1h"``, ``"1D"``), a
            :class:`pandas.Timedelta`, :class:`datetime.timedelta` or ``numpy.timedelta64``.

    Raises:
        ConfigError: not one of those, or not positive.

    Complexity: O(1).
    """
    if horizon is None:
        return None
    if isinstance(horizon, bool | int | float | np.integer | np.floating):
        raise ConfigError(
            f"horizon = {horizon!r}: give a duration such as '1min', '5min' or '1D' "
            f"(a number is ambiguous: steps or seconds?)"
        )
    try:
        ns = int(pd.Timedelta(horizon).value)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"horizon = {horizon!r}: not a duration ({e}); use e.g. '1min', '5min', '1h', '1D'"
        ) from None
    if ns <= 0:
        raise ConfigError(f"horizon = {horizon!r}: must be a positive duration")
    if ns > NS_PER_DAY:
        raise ConfigError(
            f"horizon = {horizon!r}: longer than one day; use '1D' and aggregate daily returns "
            f"(analysis.stylized.aggregate_returns) for multi-day horizons"
        )
    return ns


def _time_ns(col: pd.Series) -> np.ndarray:
    """A datetime64 (or int64 ns) column as int64 nanoseconds."""
    v = col.to_numpy()
    if np.issubdtype(v.dtype, np.datetime64):
        return v.astype("datetime64[ns]").astype(np.int64)
    if np.issubdtype(v.dtype, np.integer):
        return v.astype(np.int64)
    return pd.to_datetime(col).to_numpy().astype("datetime64[ns]").astype(np.int64)


def _mid(q: pd.DataFrame) -> np.ndarray:
    """The ``mid`` column, or ``(bid + ask) / 2`` for frames without one."""
    if "mid" in q.columns:
        return q["mid"].to_numpy(float)
    if "bid" in q.columns and "ask" in q.columns:
        return (q["bid"].to_numpy(float) + q["ask"].to_numpy(float)) * 0.5
    raise ConfigError(f"quotes needs a 'mid' column (or 'bid' and 'ask'); got {list(q.columns)}")


def _as_dt(ns: np.ndarray) -> np.ndarray:
    return np.asarray(ns, dtype=np.int64).view("datetime64[ns]")


def _sample_one(
    t: np.ndarray, mid: np.ndarray, h: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled (day_ns, time_ns, mid) of one asset (see the module docstring). O(n log n)."""
    order = np.argsort(t, kind="stable")
    t, mid = t[order], mid[order]
    day = t // NS_PER_DAY
    valid = np.isfinite(mid) & (mid > 0)
    vt, vm, vday = t[valid], mid[valid], day[valid]
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, float))
    if vt.size == 0:
        return empty
    if h is None:
        return vday * NS_PER_DAY, vt, vm
    if h == NS_PER_DAY:  # first and last valid mid of each day
        _, fi = np.unique(vday, return_index=True)
        li = np.r_[fi[1:] - 1, vt.size - 1]
        idx = np.sort(np.unique(np.r_[fi, li]))
        return vday[idx] * NS_PER_DAY, vt[idx], vm[idx]
    udays, first, inv = np.unique(day, return_index=True, return_inverse=True)
    last = np.r_[first[1:] - 1, t.size - 1]
    open_t = t[first]
    k_all = -((open_t[inv] - t) // h)  # ceil((t - o_d) / h)
    kmax = k_all[last]
    vinv = inv[valid]
    vdays, vfirst = np.unique(vinv, return_index=True)  # day indices with a valid mid
    kfirst = k_all[valid][vfirst]
    counts = kmax[vdays] - kfirst + 1
    gd = np.repeat(vdays, counts)
    starts = np.cumsum(counts) - counts
    gk = np.repeat(kfirst, counts) + (np.arange(gd.size) - np.repeat(starts, counts))
    gt = open_t[gd] + gk * h
    j = np.searchsorted(vt, np.minimum(gt, t[last][gd]), side="right") - 1
    return udays[gd] * NS_PER_DAY, gt, vm[j]


def _assets_of(df: pd.DataFrame, asset: str | None, table: str) -> list[str]:
    if asset is not None:
        select_asset(df, asset, table)  # raises for an unknown asset
        return [asset]
    if not len(df):
        return []
    return [a for a in pd.unique(df["asset"].astype(str)) if a]


def mid_prices(quotes: pd.DataFrame, horizon: Any = None, asset: str | None = None) -> pd.DataFrame:
    """Valid mids, optionally previous-tick sampled on a per-day grid of step ``horizon``.

    ``P(g_k) = m(last valid quote of the day at time <= g_k)`` on ``g_k = o_d + k h`` (module
    docstring); with ``horizon=None`` every valid quote; with ``"1D"`` the first and last valid
    mid of each day.

    Args:
        quotes: The ``quotes`` table (time, asset, mid; ``mid`` NaN rows are skipped).
        horizon: Sampling step (see :func:`parse_horizon`).
        asset: One asset; ``None``: every asset.

    Returns:
        DataFrame with columns asset, day (midnight of the trading day), time (grid time), mid.

    Complexity: O(n log n) for n quote rows.
    """
    h = parse_horizon(horizon)
    parts = []
    for a in _assets_of(quotes, asset, "quotes"):
        q = select_asset(quotes, a, "quotes")
        d, t, m = _sample_one(_time_ns(q["time"]), _mid(q), h)
        parts.append(pd.DataFrame({"asset": a, "day": _as_dt(d), "time": _as_dt(t), "mid": m}))
    if not parts:
        return pd.DataFrame(
            {
                "asset": pd.Series([], dtype=object),
                "day": _as_dt(np.empty(0, np.int64)),
                "time": _as_dt(np.empty(0, np.int64)),
                "mid": np.empty(0),
            }
        )
    return pd.concat(parts, ignore_index=True)


def log_returns(
    quotes: pd.DataFrame,
    horizon: Any = "1min",
    asset: str | None = None,
    include_overnight: bool = False,
) -> pd.DataFrame:
    """Log mid-price returns at ``horizon``; by default none spans two trading days.

    ``r_k = ln P(g_k) - ln P(g_{k-1})`` over consecutive sampled prices of the same trading day
    (module docstring); ``"1D"``: open-to-close ``ln(m_close,d / m_open,d)``, or close-to-close
    ``ln(C_d / C_{d-1})`` with ``include_overnight=True``.

    Args:
        quotes: The ``quotes`` table.
        horizon: Sampling step (``None``: between consecutive valid quotes).
        asset: One asset; ``None``: every asset (returns never span two assets).
        include_overnight: Also return the interval from a day's last sample to the next day's
            first (close-to-close at ``"1D"``).

    Returns:
        DataFrame with columns asset, day (trading day of the interval's end), start, end
        (interval bounds as times), r; in asset then time order.

    Complexity: O(n log n) for n quote rows.
    """
    h = parse_horizon(horizon)
    parts = []
    for a in _assets_of(quotes, asset, "quotes"):
        q = select_asset(quotes, a, "quotes")
        d, t, m = _sample_one(_time_ns(q["time"]), _mid(q), h)
        if h == NS_PER_DAY and include_overnight:  # keep the close of each day
            keep = np.r_[d[1:] != d[:-1], True] if d.size else d.astype(bool)
            d, t, m = d[keep], t[keep], m[keep]
        lm = np.log(m)
        ok = np.ones(max(d.size - 1, 0), dtype=bool) if include_overnight else d[1:] == d[:-1]
        parts.append(
            pd.DataFrame(
                {
                    "asset": a,
                    "day": _as_dt(d[1:][ok]),
                    "start": _as_dt(t[:-1][ok]),
                    "end": _as_dt(t[1:][ok]),
                    "r": np.diff(lm)[ok],
                }
            )
        )
    if not parts:
        e = _as_dt(np.empty(0, np.int64))
        return pd.DataFrame(
            {"asset": pd.Series([], dtype=object), "day": e, "start": e, "end": e, "r": []}
        )
    return pd.concat(parts, ignore_index=True)[_RET_COLS]


def returns_at_horizons(
    quotes: pd.DataFrame,
    horizons: Sequence[Any] = ("1min", "5min", "30min", "1D"),
    asset: str | None = None,
    include_overnight: bool = False,
) -> dict[str, pd.DataFrame]:
    """:func:`log_returns` at each horizon, keyed by ``str(horizon)``. O(len(horizons) n log n)."""
    return {str(h): log_returns(quotes, h, asset, include_overnight) for h in horizons}


def interval_volume(trades: pd.DataFrame, returns: pd.DataFrame) -> np.ndarray:
    """Traded volume in each return interval: ``V_k = sum qty of trades with start < time <= end``.

    Trades stamped at an interval's start already moved ``P(start)`` (quotes are recorded
    after matching), hence the half-open interval. For intraday intervals only trades of the
    same calendar day count.

    Args:
        trades: The ``trades`` table (time, asset, qty).
        returns: Output of :func:`log_returns` (asset, day, start, end).

    Returns:
        float64 array of volumes (lots), one per row of ``returns``.

    Complexity: O((n + m) log n) for n trades and m intervals.
    """
    out = np.zeros(len(returns))
    if not len(returns) or not len(trades):
        return out
    r_asset = returns["asset"].astype(str).to_numpy()
    start = _time_ns(returns["start"])
    end = _time_ns(returns["end"])
    day = _time_ns(returns["day"])
    cap = np.where(
        start // NS_PER_DAY * NS_PER_DAY == day, day + NS_PER_DAY, np.iinfo(np.int64).max
    )
    t_asset = trades["asset"].astype(str).to_numpy()
    t_all = _time_ns(trades["time"])
    q_all = trades["qty"].to_numpy(float)
    for a in pd.unique(r_asset):
        rows = np.flatnonzero(r_asset == a)
        sel = t_asset == a
        tt, qq = t_all[sel], q_all[sel]
        o = np.argsort(tt, kind="stable")
        tt = tt[o]
        cum = np.r_[0.0, np.cumsum(qq[o])]
        hi = np.searchsorted(tt, end[rows], side="right")
        hi = np.minimum(hi, np.searchsorted(tt, cap[rows], side="left"))
        lo = np.searchsorted(tt, start[rows], side="right")
        out[rows] = cum[hi] - cum[np.minimum(lo, hi)]
    return out


def realized_volatility(
    returns: pd.DataFrame, by: Sequence[str] = ("asset", "day")
) -> pd.DataFrame:
    """Realized volatility per group (by default per asset and trading day).

    ``RV_g = sqrt(sum_{k in g} r_k^2)``; with intraday returns and the default grouping it is
    the day's open-to-close volatility (the overnight move is left out).

    Args:
        returns: Output of :func:`log_returns` (or any frame with an ``r`` column).
        by: Grouping columns.

    Returns:
        DataFrame with the ``by`` columns, ``rv`` and ``n`` (returns in the group).

    Complexity: O(n log n).
    """
    by = list(by)
    missing = [c for c in [*by, "r"] if c not in returns.columns]
    if missing:
        raise ConfigError(
            f"returns lacks column(s) {missing}; pass the output of log_returns() "
            f"(columns {list(returns.columns)})"
        )
    g = returns.assign(r2=returns["r"].to_numpy(float) ** 2).groupby(by, sort=True)
    out = g.agg(rv=("r2", "sum"), n=("r2", "size")).reset_index()
    out["rv"] = np.sqrt(out["rv"].to_numpy(float))
    return out


def daily_volatility(
    quotes: pd.DataFrame, asset: str | None = None, horizon: Any = "5min"
) -> float:
    """Typical daily (open-to-close) volatility of one asset from intraday returns.

    ``sigma = sqrt(mean_d RV_d^2)``, ``RV_d^2 = sum_k r_{d,k}^2`` over the ``horizon`` returns
    of day ``d`` (:func:`realized_volatility`). NaN when there are no returns.

    Raises:
        ConfigError: ``asset`` is None but ``quotes`` holds several assets.

    Complexity: O(n log n).
    """
    if asset is None:
        names = _assets_of(quotes, None, "quotes")
        if len(names) > 1:
            raise ConfigError(f"quotes holds several assets {names}; pass asset=")
    rv = realized_volatility(log_returns(quotes, horizon, asset))
    if not len(rv):
        return float("nan")
    return float(np.sqrt(np.mean(rv["rv"].to_numpy(float) ** 2)))
