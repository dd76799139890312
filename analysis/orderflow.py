"""Order-flow statistics: trade-sign long memory, spreads, depth profile, trade inter-arrivals.

Statistics:

* trade sign ``ε_i = aggressor`` (+1 buyer-initiated, -1 seller-initiated) of trade ``i``; with
  ``merge_fills`` the fills of one aggressive order (same asset, step, aggressor side and taker
  account, consecutive in the log) count as one trade, as in Lillo & Farmer (2004), who use
  one sign per market order.
* sign autocorrelation ``C(l) = ρ_ε(l)`` (:func:`analysis.stylized.acf_test`: pairs within one
  segment, e.g. one trading day) and its Lillo–Farmer exponent, ``C(l) ≈ A l^{-γ}`` fitted by
  :func:`analysis.stylized.power_law_fit`; ``0 < γ < 1`` means ``Σ_l C(l)`` diverges: long
  memory (Hurst exponent ``H = 1 - γ/2``).
* spread ``s = ask - bid`` (rows with both sides), in ticks ``s / tick_size`` and in basis
  points ``10^4 s / mid``; quotes are sampled every step, so row averages are time averages.
* depth profile: mean quantity per snapshot at each level (or each distance in ticks from the
  same side's best price), a missing level counting as 0 lots.
* inter-arrival times ``Δ_i = t_i - t_{i-1}`` (seconds) of consecutive trades of one asset in one
  trading day; ``CV = std(Δ) / mean(Δ)`` is 1 for a Poisson process (``CV > 1``: clustered
  arrivals); ``z_CV = (CV - 1) sqrt(n)`` is asymptotically N(0, 1) for exponential ``Δ`` (delta
  method: ``Var(CV) ≈ 1/n``), and the Kolmogorov–Smirnov distance to the exponential law with
  the sample mean is reported too (its p-value is conservative since the mean is estimated).
  Simulated times are step times, so many ``Δ`` are 0 (trades of one step); ``zero_fraction``
  reports them.

References: F. Lillo, J. D. Farmer (2004), The long memory of the efficient market; J.-P.
Bouchaud, Y. Gefen, M. Potters, M. Wyart (2004), Fluctuations and response in financial markets,
Quant. Finance 4, 176; F. Lillo, S. Mike, J. D. Farmer (2005), Theory for long memory in supply
and demand, Phys. Rev. E 71, 066122.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.io import select_asset
from analysis.returns import NS_PER_DAY, _time_ns
from analysis.stylized import _vec, _z, acf_test, power_law_fit
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "InterArrivalStats",
    "SignMemory",
    "depth_profile",
    "inter_arrival_stats",
    "inter_arrival_times",
    "sign_memory",
    "spread_histogram",
    "spread_summary",
    "spreads",
    "trade_signs",
]


# ---------------------------------------------------------------------------- trade signs
def trade_signs(
    trades: pd.DataFrame, asset: str | None = None, merge_fills: bool = True
) -> pd.DataFrame:
    """Trade signs in time order per asset, optionally one per aggressive order.

    Args:
        trades: The ``trades`` table (step, time, asset, qty, aggressor, buyer, seller).
        asset: One asset; ``None``: every asset (rows grouped by asset).
        merge_fills: Merge consecutive fills with the same asset, step, aggressor and taker
            account (``buyer`` if aggressor is +1, else ``seller``) into one trade (qty summed).

    Returns:
        DataFrame with columns asset, day (midnight of the trading day), time, step, sign
        (+1/-1, int8), qty; sorted by asset (first appearance) then step, keeping log order.

    Complexity: O(n log n).
    """
    cols = ["asset", "day", "time", "step", "sign", "qty"]
    t = select_asset(trades, asset, "trades", must_exist=False)
    if not len(t):
        return pd.DataFrame({c: pd.Series([], dtype=float) for c in cols})
    a = t["asset"].astype(str).to_numpy()
    codes, names = pd.factorize(a)
    step = t["step"].to_numpy(np.int64)
    order = np.lexsort((np.arange(len(t)), step, codes))
    a, codes, step = a[order], codes[order], step[order]
    tm = _time_ns(t["time"])[order]
    sign = t["aggressor"].to_numpy(np.int64)[order]
    qty = t["qty"].to_numpy(np.int64)[order]
    bad = (sign != 1) & (sign != -1)
    if bad.any():
        raise ConfigError(
            f"trades: column 'aggressor' must be +1 or -1, got {sign[bad][0]!r} at step "
            f"{step[bad][0]}"
        )
    if merge_fills:
        taker = np.where(
            sign > 0, t["buyer"].to_numpy(np.int64)[order], t["seller"].to_numpy(np.int64)[order]
        )
        new = np.r_[
            True,
            (codes[1:] != codes[:-1])
            | (step[1:] != step[:-1])
            | (sign[1:] != sign[:-1])
            | (taker[1:] != taker[:-1]),
        ]
        grp = np.cumsum(new) - 1
        first = np.flatnonzero(new)
        qty = np.bincount(grp, weights=qty).astype(np.int64)
        a, step, tm, sign = a[first], step[first], tm[first], sign[first]
    return pd.DataFrame(
        {
            "asset": a,
            "day": (tm // NS_PER_DAY * NS_PER_DAY).view("datetime64[ns]"),
            "time": tm.view("datetime64[ns]"),
            "step": step,
            "sign": sign.astype(np.int8),
            "qty": qty,
        }
    )


@dataclass(frozen=True)
class SignMemory:
    """Trade-sign autocorrelation and its power-law fit (see the module docstring).

    Attributes:
        lags: ``1..L``; acf: ``C(l)``; band: white-noise band ``z / sqrt(N_l)``; n: signs.
        gamma, gamma_ci_low, gamma_ci_high, prefactor, r2: fit of ``C(l) ≈ A l^{-γ}``.
        significant_fraction: share of lags with ``C(l)`` above the band.
        long_memory: ``C(1)`` above the band, at least half the lags above it, and
            ``0 < γ < 1``.
    """

    lags: np.ndarray
    acf: np.ndarray
    band: np.ndarray
    n: int
    gamma: float
    gamma_ci_low: float
    gamma_ci_high: float
    prefactor: float
    r2: float
    significant_fraction: float
    long_memory: bool


def sign_memory(
    signs: Any,
    max_lag: int = 100,
    segments: Any = None,
    min_lag: int = 1,
    level: float = 0.95,
) -> SignMemory:
    """Autocorrelation of trade signs and the Lillo–Farmer exponent ``γ`` of ``C(l) ~ l^{-γ}``.

    Args:
        signs: Signs (+1/-1), or the output of :func:`trade_signs` (its ``sign`` column, with
            one segment per asset and day unless ``segments`` is given).
        max_lag: Largest lag ``L``.
        segments: Contiguous segment labels (e.g. trading days) or None.
        min_lag: Smallest lag used in the fit.
        level: Confidence level of the band and the CI of ``γ``.

    Returns:
        :class:`SignMemory`.

    Complexity: O(m log m), ``m = n + L * segments``.
    """
    if isinstance(signs, pd.DataFrame):
        if segments is None and len(signs):
            segments = signs.groupby(["asset", "day"], sort=False).ngroup().to_numpy()
        signs = signs["sign"].to_numpy(float)
    x = _vec(signs, "signs")
    _z(level)
    a = acf_test(x, max_lag, segments, level)
    fit = power_law_fit(a.lags, a.acf, min_lag=min_lag, level=level)
    fin = np.isfinite(a.acf)
    sig = (a.acf > a.band) & fin
    frac = float(sig.sum() / max(int(fin.sum()), 1))
    long_mem = bool(sig[0] and frac >= 0.5 and 0.0 < fit.exponent < 1.0)
    return SignMemory(
        a.lags,
        a.acf,
        a.band,
        a.n,
        fit.exponent,
        fit.ci_low,
        fit.ci_high,
        fit.prefactor,
        fit.r2,
        frac,
        long_mem,
    )


# ---------------------------------------------------------------------------- spreads
def _tick_of(tick_size: float | Mapping[str, float] | None, asset: str) -> float:
    if tick_size is None:
        return float("nan")
    if isinstance(tick_size, Mapping):
        v = tick_size.get(asset)
        return float(v) if v else float("nan")
    if not tick_size > 0:
        raise ConfigError(f"tick_size = {tick_size!r}: must be > 0 (or a mapping asset -> tick)")
    return float(tick_size)


def spreads(
    quotes: pd.DataFrame,
    tick_size: float | Mapping[str, float] | None = None,
    asset: str | None = None,
) -> pd.DataFrame:
    """Quoted spread of every quote row with both sides present.

    ``s = ask - bid``; ``ticks = s / tick_size`` (NaN without a tick size);
    ``bps = 10^4 s / mid``.

    Args:
        quotes: The ``quotes`` table.
        tick_size: One tick size, or a mapping asset -> tick size (e.g. from
            :meth:`analysis.io.Run.tick_size`).
        asset: One asset; ``None``: every asset.

    Returns:
        DataFrame with columns asset, step, time, spread, ticks, bps.

    Complexity: O(n).
    """
    q = select_asset(quotes, asset, "quotes")
    bid = q["bid"].to_numpy(float)
    ask = q["ask"].to_numpy(float)
    ok = np.isfinite(bid) & np.isfinite(ask)
    q = q[ok]
    s = ask[ok] - bid[ok]
    mid = (ask[ok] + bid[ok]) * 0.5
    a = q["asset"].astype(str).to_numpy()
    ticks = np.full(s.shape, np.nan)
    for name in pd.unique(a):
        m = a == name
        ticks[m] = s[m] / _tick_of(tick_size, name)
    return pd.DataFrame(
        {
            "asset": a,
            "step": q["step"].to_numpy(),
            "time": q["time"].to_numpy(),
            "spread": s,
            "ticks": ticks,
            "bps": 1e4 * s / mid,
        }
    )


def spread_summary(spread_rows: pd.DataFrame) -> pd.DataFrame:
    """Distribution summary of :func:`spreads` per asset.

    Columns: asset, n, then for ``ticks`` and ``bps``: mean, median, p05, p95, std (``ddof=0``),
    and ``one_tick_share`` (share of rows with a one-tick spread, ``|ticks - 1| < 1e-6``).

    Complexity: O(n log n).
    """
    rows = []
    for a, g in spread_rows.groupby("asset", sort=False):
        row: dict[str, Any] = {"asset": a, "n": len(g)}
        for unit in ("ticks", "bps"):
            v = g[unit].to_numpy(float)
            v = v[np.isfinite(v)]
            f = lambda fn, v=v: float(fn(v)) if v.size else float("nan")  # noqa: E731
            row[f"mean_{unit}"] = f(np.mean)
            row[f"median_{unit}"] = f(np.median)
            row[f"p05_{unit}"] = f(lambda x: np.quantile(x, 0.05))
            row[f"p95_{unit}"] = f(lambda x: np.quantile(x, 0.95))
            row[f"std_{unit}"] = f(np.std)
        t = g["ticks"].to_numpy(float)
        row["one_tick_share"] = (
            float(np.mean(np.abs(t - 1) < 1e-6)) if np.isfinite(t).any() else float("nan")
        )
        rows.append(row)
    return pd.DataFrame(rows)


def spread_histogram(spread_rows: pd.DataFrame, asset: str | None = None) -> pd.DataFrame:
    """Frequency of each spread in whole ticks (rounded) of :func:`spreads` rows.

    Returns:
        DataFrame with columns ticks (int), count, fraction; ascending ticks. Rows without a
        tick size are ignored.

    Complexity: O(n log n).
    """
    s = select_asset(spread_rows, asset, "spreads") if asset is not None else spread_rows
    t = s["ticks"].to_numpy(float)
    t = np.rint(t[np.isfinite(t)]).astype(np.int64)
    u, c = np.unique(t, return_counts=True)
    return pd.DataFrame({"ticks": u, "count": c, "fraction": c / max(int(c.sum()), 1)})


# ---------------------------------------------------------------------------- depth
def depth_profile(
    l2: pd.DataFrame | None,
    asset: str | None = None,
    max_levels: int = 10,
    by: str = "level",
    tick_size: float | Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Average order-book depth by level (``by="level"``) or by ticks from the best price.

    ``D_side(j) = (1/S) Σ_snapshots qty_side(j)`` with ``S`` the number of snapshots (distinct
    (asset, step) pairs in ``l2``) and ``j`` the level index (0 = best) or the distance
    ``round(|price - best_side| / tick_size)`` in ticks; absent levels count as 0.

    Args:
        l2: The ``l2`` table (``None`` raises: record it with ``simulation.l2_every > 0``).
        asset: One asset; ``None``: every asset (one profile each).
        max_levels: Keep ``j < max_levels``.
        by: "level" or "ticks".
        tick_size: Needed for ``by="ticks"`` (float or mapping asset -> tick).

    Returns:
        DataFrame with columns asset, distance, bid, ask (mean lots per snapshot).

    Raises:
        ConfigError: no l2 table, bad ``by``, or ``by="ticks"`` without a tick size.

    Complexity: O(n log n).
    """
    if l2 is None:
        raise ConfigError(
            "depth_profile needs the l2 table; enable it with simulation.l2_every > 0 in the "
            "scenario"
        )
    if by not in ("level", "ticks"):
        raise ConfigError(f"by = {by!r}: must be 'level' or 'ticks'")
    if max_levels < 1:
        raise ConfigError(f"max_levels = {max_levels!r}: must be >= 1")
    d = select_asset(l2, asset, "l2")
    out = []
    for a, g in d.groupby(d["asset"].astype(str), sort=False):
        n_snap = g["step"].nunique()
        side = g["side"].to_numpy(np.int64)
        if by == "level":
            dist = g["level"].to_numpy(np.int64)
        else:
            tick = _tick_of(tick_size, a)
            if not math.isfinite(tick):
                raise ConfigError(f"depth_profile(by='ticks') needs tick_size for asset {a!r}")
            px = g["price"].to_numpy(float)
            # best bid = max price, best ask = min price of each (step, side)
            signed = pd.Series(side * px)
            best = signed.groupby([g["step"].to_numpy(), side]).transform("max").to_numpy()
            dist = np.rint(np.abs(side * px - best) / tick).astype(np.int64)
        qty = g["qty"].to_numpy(float)
        j = np.arange(max_levels)
        row = {"asset": a, "distance": j}
        for name, sd in (("bid", 1), ("ask", -1)):
            m = (side == sd) & (dist < max_levels)
            row[name] = np.bincount(dist[m], weights=qty[m], minlength=max_levels) / n_snap
        out.append(pd.DataFrame(row))
    if not out:
        return pd.DataFrame(columns=["asset", "distance", "bid", "ask"])
    return pd.concat(out, ignore_index=True)


# ---------------------------------------------------------------------------- inter-arrivals
def inter_arrival_times(
    trades: pd.DataFrame, asset: str | None = None, merge_fills: bool = True
) -> np.ndarray:
    """Seconds between consecutive trades of one asset within one trading day.

    ``Δ_i = t_i - t_{i-1}`` over :func:`trade_signs` rows (one per aggressive order with
    ``merge_fills``); pairs across assets or days are skipped.

    Complexity: O(n log n).
    """
    ts = trade_signs(trades, asset, merge_fills)
    if len(ts) < 2:
        return np.empty(0)
    t = _time_ns(ts["time"])
    a = ts["asset"].to_numpy()
    d = t // NS_PER_DAY
    ok = (a[1:] == a[:-1]) & (d[1:] == d[:-1])
    return (np.diff(t)[ok]) / 1e9


@dataclass(frozen=True)
class InterArrivalStats:
    """Inter-arrival summary (see the module docstring).

    Attributes:
        n, mean, std, cv, zero_fraction; cv_z, cv_pvalue: dispersion test of ``CV = 1``;
        ks_stat, ks_pvalue: KS test against Exp(mean) (conservative p-value).
    """

    n: int
    mean: float
    std: float
    cv: float
    zero_fraction: float
    cv_z: float
    cv_pvalue: float
    ks_stat: float
    ks_pvalue: float


def inter_arrival_stats(dt: Any) -> InterArrivalStats:
    """Mean, CV and exponential-law tests of inter-arrival times ``dt`` (seconds, >= 0).

    ``CV = std / mean`` (``ddof=0``); ``z_CV = (CV - 1) sqrt(n)``, two-sided normal p-value;
    KS statistic ``sup |F_n(x) - (1 - e^{-x/mean})|``.

    Complexity: O(n log n).
    """
    x = _vec(dt, "dt")
    x = x[np.isfinite(x)]
    if (x < 0).any():
        raise ConfigError("dt must be >= 0 (sort trades by time first)")
    n = x.size
    nan = float("nan")
    if n < 2 or x.mean() <= 0:
        return InterArrivalStats(n, nan, nan, nan, nan, nan, nan, nan, nan)
    mean, std = float(x.mean()), float(x.std())
    cv = std / mean
    zc = (cv - 1.0) * math.sqrt(n)
    ks = stats.kstest(x, "expon", args=(0.0, mean))
    return InterArrivalStats(
        n,
        mean,
        std,
        cv,
        float(np.mean(x == 0)),
        zc,
        float(2 * stats.norm.sf(abs(zc))),
        float(ks.statistic),
        float(ks.pvalue),
    )
