"""Stylized facts of asset returns (Cont 2001) measured on simulated or real return series.

Every statistic takes a 1-D array of returns ``r`` and optional ``segments``: one label per
return, rows of one segment contiguous and in time order (e.g. one segment per trading day, or
per run and asset). Lagged statistics only pair returns of the same segment, so a lag never
spans a day boundary, two runs or two assets; means and variances are pooled over all rows.

Statistics (``n`` returns, ``x̄`` pooled mean, ``P_k`` the pairs ``(t, t+k)`` of one segment,
``N_k = |P_k|``):

* excess kurtosis: ``κ = m_4 / m_2^2 - 3`` with ``m_j = (1/n) Σ (r_t - r̄)^j``; Gaussian-null
  standard error ``sqrt(24 / n)``.
* Hill tail index (Hill 1975) of ``|r|`` sorted descending ``X_(1) >= X_(2) >= ...`` with the
  ``k = floor(q n)`` largest values (``q`` = ``tail_fraction``, default the top 5%):
  ``α̂ = k / Σ_{i=1}^k ln(X_(i) / X_(k+1))``. For a Pareto tail ``k α / α̂ ~ Gamma(k, 1)``,
  which gives the exact CI ``[α̂ G_{(1-c)/2} / k, α̂ G_{(1+c)/2} / k]`` (``G_p``: Gamma(k, 1)
  quantile). 5% is a common compromise between bias (large ``k``) and variance (small ``k``).
* autocorrelation: ``ρ(k) = [(1/N_k) Σ_{P_k} (x_t - x̄)(x_{t+k} - x̄)] / [(1/n) Σ_t (x_t - x̄)^2]``;
  white-noise band ``± z / sqrt(N_k)`` (Bartlett); Ljung–Box
  ``Q(m) = (n + 2)/n Σ_{k=1}^m N_k ρ(k)^2 ~ χ²_m`` (the textbook ``n(n+2) Σ ρ̂_k² / (n-k)`` for
  one segment, where ``ρ̂_k = ρ(k) (n-k)/n``).
* power-law decay fit ``f(k) ≈ A k^{-β}``: lags ``k`` are grouped in log-spaced bins (10 per
  decade); ``β`` and ``ln A`` are the OLS fit of ``ln f̄_b = ln A - β ln k̄_b`` over bins with
  ``f̄_b > 0`` (``k̄_b``: geometric mean lag of bin ``b``), with a t-based CI (approximate: bin
  means are correlated).
* aggregation: ``r^{(m)}_j = Σ_{i=0}^{m-1} r_{jm+i}`` over non-overlapping blocks of ``m``
  consecutive returns of one segment (incomplete trailing blocks dropped).
* leverage: ``L(k) = (1/N_k) Σ_{P_k} z_t w_{t+k}`` with ``z = (r - r̄)/s_r`` and
  ``w = (r² - mean(r²))/s_{r²}`` (a correlation of ``r_t`` with ``r_{t+k}^2``);
  ``L̄ = (1/K) Σ_{k=1}^K L(k)``; under the null that the sign of ``r_t`` is independent of
  everything else, ``L̄ = Σ_t z_t v_t`` with ``v_t = (1/K) Σ_k w_{t+k} / N_k`` and standard error
  ``sqrt(Σ_t z_t^2 v_t^2)`` (heteroskedasticity-robust).
* volume–volatility: Pearson ``corr(V_k, |r_k|)`` over intervals, Fisher CI
  ``tanh(atanh(ρ) ± z / sqrt(n - 3))``.

:func:`stylized_facts` runs them all on one or several run directories (pooled) and returns one
row per fact with its literature range and a pass/fail flag; :func:`facts_from_returns` does the
same for any return series (e.g. :mod:`analysis.realdata`).

References: R. Cont (2001), Empirical properties of asset returns: stylized facts and statistical
issues, Quantitative Finance 1, 223–236. P. Gopikrishnan, V. Plerou, L. A. N. Amaral, M. Meyer,
H. E. Stanley (1999), Scaling of the distribution of fluctuations of financial market indices,
Phys. Rev. E 60, 5305. J.-P. Bouchaud, A. Matacz, M. Potters (2001), Leverage effect in
financial markets, Phys. Rev. Lett. 87, 228701. F. Lillo, J. D. Farmer (2004), The long memory of
the efficient market, Stud. Nonlinear Dyn. Econom. 8(3). B. M. Hill (1975), Ann. Statist. 3.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import fft as sfft
from scipy import stats

from analysis.io import Run, as_runs
from analysis.returns import NS_PER_DAY, interval_volume, log_returns, parse_horizon
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "ACF_NEGLIGIBLE",
    "FACTS",
    "MIN_SAMPLE",
    "AcfResult",
    "CorrResult",
    "HillEstimate",
    "LeverageResult",
    "PowerLawFit",
    "acf_test",
    "aggregate_returns",
    "autocorrelation",
    "excess_kurtosis",
    "facts_from_returns",
    "hill_tail_index",
    "kurtosis_by_aggregation",
    "lagged_products",
    "leverage_effect",
    "pooled_returns",
    "power_law_fit",
    "segment_codes",
    "stylized_facts",
    "volume_volatility_correlation",
]

#: |ρ(k)| below this counts as "no linear autocorrelation" however large the sample is.
ACF_NEGLIGIBLE = 0.05
#: Fewest returns (or trade signs) for a fact to be able to pass; fewer: passed = False.
MIN_SAMPLE = 50

#: name -> (lit_low, lit_high, literature statement, source) of each fact in the table.
FACTS: dict[str, tuple[float, float, str, str]] = {
    "excess_kurtosis": (
        0.0,
        math.inf,
        "> 0 (heavy tails), large at intraday horizons",
        "Cont 2001 (fact 2)",
    ),
    "tail_index": (
        2.0,
        5.0,
        "2 < alpha < 5; alpha ~ 3 ('inverse cubic law')",
        "Cont 2001 (fact 2); Gopikrishnan et al. 1999",
    ),
    "linear_autocorrelation": (
        -ACF_NEGLIGIBLE,
        ACF_NEGLIGIBLE,
        "rho(k) ~ 0 for returns beyond ~20 min",
        "Cont 2001 (fact 1)",
    ),
    "volatility_clustering": (
        0.0,
        math.inf,
        "ACF of |r| positive over many lags",
        "Cont 2001 (fact 6)",
    ),
    "abs_acf_decay_exponent": (
        0.2,
        0.4,
        "ACF of |r| ~ k^-beta, beta in [0.2, 0.4]",
        "Cont 2001 (fact 8)",
    ),
    "aggregational_gaussianity": (
        -math.inf,
        math.inf,
        "kurtosis falls toward 0 as the horizon grows",
        "Cont 2001 (fact 4)",
    ),
    "leverage_effect": (
        -math.inf,
        0.0,
        "corr(r_t, r_{t+k}^2) < 0 for k > 0",
        "Bouchaud, Matacz & Potters 2001; Cont 2001 (fact 9)",
    ),
    "volume_volatility": (
        0.0,
        math.inf,
        "corr(volume, |r|) > 0",
        "Cont 2001 (fact 10)",
    ),
    "trade_sign_memory": (
        0.0,
        1.0,
        "C(l) ~ l^-gamma, 0 < gamma < 1 (long memory), gamma ~ 0.5",
        "Lillo & Farmer 2004; Bouchaud et al. 2004",
    ),
}

_COLUMNS = [
    "name",
    "value",
    "ci_low",
    "ci_high",
    "lit_low",
    "lit_high",
    "literature",
    "source",
    "passed",
    "n",
    "detail",
]


# ---------------------------------------------------------------------------- helpers
def _vec(x: Any, name: str = "r") -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level = {level!r}: must be in (0, 1), e.g. 0.95")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _check_lag(max_lag: Any, name: str = "max_lag") -> int:
    if isinstance(max_lag, bool) or not isinstance(max_lag, int | np.integer) or max_lag < 1:
        raise ConfigError(f"{name} = {max_lag!r}: must be an integer >= 1")
    return int(max_lag)


def segment_codes(segments: Any, n: int) -> np.ndarray:
    """Integer codes ``0, 1, ...`` of contiguous segment labels (one label per row).

    Args:
        segments: ``None`` (one segment) or ``n`` labels; equal labels must be contiguous.
        n: Number of rows.

    Raises:
        ConfigError: wrong length, or a label that reappears after another one.

    Complexity: O(n).
    """
    if segments is None:
        return np.zeros(n, dtype=np.int64)
    s = np.asarray(segments)
    if s.ndim != 1 or s.shape[0] != n:
        raise ConfigError(f"segments must hold one label per return ({n}), got shape {s.shape}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.r_[True, s[1:] != s[:-1]]
    codes = np.cumsum(change) - 1
    if pd.unique(s).size != int(change.sum()):
        raise ConfigError(
            "segments must be contiguous (all rows of one segment together, in time order); "
            "sort the returns by segment first"
        )
    return codes.astype(np.int64)


def lagged_products(
    x: np.ndarray, y: np.ndarray, max_lag: int, segments: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """``S_k = Σ_{P_k} x_t y_{t+k}`` and pair counts ``N_k`` for ``k = 0..max_lag``.

    Pairs never cross segments: each segment is followed by ``max_lag`` zeros and the sums are
    one FFT cross-correlation of the padded arrays.

    Complexity: O(m log m) with ``m = n + max_lag * segments``.
    """
    x, y = _vec(x, "x"), _vec(y, "y")
    if x.shape != y.shape:
        raise ConfigError(f"x and y must have the same length, got {x.size} and {y.size}")
    L = _check_lag(max_lag)
    n = x.size
    codes = segment_codes(segments, n)
    pos = np.arange(n) + codes * L  # index in the padded array
    m = n + (int(codes[-1]) + 1) * L if n else L
    xp, yp, ip = np.zeros(m), np.zeros(m), np.zeros(m)
    xp[pos], yp[pos], ip[pos] = x, y, 1.0
    nfft = sfft.next_fast_len(m + L + 1, real=True)

    def corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        fa, fb = sfft.rfft(a, nfft), sfft.rfft(b, nfft)
        return sfft.irfft(np.conj(fa) * fb, nfft)[: L + 1]

    s = corr(xp, yp)
    cnt = np.rint(corr(ip, ip)).astype(np.int64)
    return s, cnt


# ---------------------------------------------------------------------------- distribution
def excess_kurtosis(r: Any) -> float:
    """Excess kurtosis ``κ = m_4 / m_2^2 - 3`` (``m_j`` central moments, ``1/n``). O(n).

    NaN for fewer than 4 values or zero variance. Gaussian data: κ ≈ 0 ± sqrt(24/n).
    """
    x = _vec(r)
    x = x[np.isfinite(x)]
    if x.size < 4:
        return float("nan")
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if m2 <= 0:
        return float("nan")
    return float(np.mean(d**4) / (m2 * m2) - 3.0)


@dataclass(frozen=True)
class HillEstimate:
    """Hill tail-index estimate (see the module docstring).

    Attributes:
        alpha: ``α̂``; ci_low, ci_high: exact Gamma CI; k: tail observations used;
        threshold: ``X_(k+1)``; n: observations.
    """

    alpha: float
    ci_low: float
    ci_high: float
    k: int
    threshold: float
    n: int


def hill_tail_index(
    r: Any, tail_fraction: float = 0.05, tail: str = "both", level: float = 0.95
) -> HillEstimate:
    """Hill estimator of the tail index of ``|r|`` (or of one tail).

    ``α̂ = k / Σ_{i=1}^k ln(X_(i) / X_(k+1))`` on the ``k = floor(tail_fraction * n)`` largest
    values ``X`` of ``|r|`` (``tail="both"``), ``r`` (``"right"``) or ``-r`` (``"left"``);
    CI from ``k α / α̂ ~ Gamma(k, 1)``. A Student-t with ν degrees of freedom has ``α = ν``.

    Args:
        r: Returns.
        tail_fraction: Share of observations in the tail, in (0, 0.5].
        tail: "both", "right" or "left".
        level: Confidence level of the CI.

    Returns:
        A :class:`HillEstimate` (NaN fields when fewer than 2 positive tail values).

    Complexity: O(n log n).
    """
    if not 0.0 < tail_fraction <= 0.5:
        raise ConfigError(f"tail_fraction = {tail_fraction!r}: must be in (0, 0.5]; e.g. 0.05")
    x = _vec(r)
    x = x[np.isfinite(x)]
    if tail == "both":
        x = np.abs(x)
    elif tail == "left":
        x = -x
    elif tail != "right":
        raise ConfigError(f"tail = {tail!r}: must be 'both', 'right' or 'left'")
    _z(level)
    n = x.size
    k = int(math.floor(tail_fraction * n))
    nan = float("nan")
    if k < 2 or k >= n:
        return HillEstimate(nan, nan, nan, k, nan, n)
    top = -np.partition(-x, k)[: k + 1]
    top.sort()
    top = top[::-1]
    thr = float(top[k])
    if thr <= 0:
        return HillEstimate(nan, nan, nan, k, thr, n)
    s = float(np.sum(np.log(top[:k] / thr)))
    if s <= 0:
        return HillEstimate(nan, nan, nan, k, thr, n)
    alpha = k / s
    lo, hi = stats.gamma.ppf([0.5 - level / 2.0, 0.5 + level / 2.0], k)
    return HillEstimate(alpha, float(alpha * lo / k), float(alpha * hi / k), k, thr, n)


# ---------------------------------------------------------------------------- autocorrelation
def autocorrelation(x: Any, max_lag: int, segments: Any = None) -> np.ndarray:
    """``ρ(k)`` for ``k = 1..max_lag`` (module docstring); NaN where a lag has no pairs.

    Complexity: O(m log m), ``m = n + max_lag * segments``.
    """
    return acf_test(x, max_lag, segments).acf


@dataclass(frozen=True)
class AcfResult:
    """Autocorrelation with white-noise tests.

    Attributes:
        lags: ``1..L``; acf: ``ρ(k)``; n_pairs: ``N_k``; band: ``z / sqrt(N_k)`` (white-noise
        band at ``level``); q_stat, p_value: Ljung–Box ``Q(m)`` and its χ²_m p-value for each
        ``m = 1..L``; n: observations.
    """

    lags: np.ndarray
    acf: np.ndarray
    n_pairs: np.ndarray
    band: np.ndarray
    q_stat: np.ndarray
    p_value: np.ndarray
    n: int


def acf_test(x: Any, max_lag: int, segments: Any = None, level: float = 0.95) -> AcfResult:
    """Autocorrelation ``ρ(1..L)`` with Bartlett band and Ljung–Box tests (module docstring).

    Args:
        x: Series (NaN not allowed).
        max_lag: ``L``.
        segments: Contiguous segment labels (see the module docstring) or None.
        level: Level of the band.

    Returns:
        :class:`AcfResult`.

    Raises:
        ConfigError: bad ``max_lag``, ``level`` or ``segments``; NaN in ``x``.

    Complexity: O(m log m).
    """
    v = _vec(x, "x")
    if not np.isfinite(v).all():
        raise ConfigError("x holds NaN or inf; drop them (per segment) before computing the ACF")
    L = _check_lag(max_lag)
    z = _z(level)
    n = v.size
    lags = np.arange(1, L + 1)
    if n < 2:
        nan = np.full(L, np.nan)
        return AcfResult(lags, nan, np.zeros(L, np.int64), nan, nan, nan, n)
    d = v - v.mean()
    c0 = float(np.mean(d * d))
    s, cnt = lagged_products(d, d, L, segments)
    s, cnt = s[1:], cnt[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        acf = (
            np.where(cnt > 0, s / np.maximum(cnt, 1) / c0, np.nan) if c0 > 0 else np.full(L, np.nan)
        )
        band = np.where(cnt > 0, z / np.sqrt(np.maximum(cnt, 1)), np.nan)
    terms = np.where(np.isfinite(acf), cnt * acf**2, 0.0)
    q = (n + 2.0) / n * np.cumsum(terms)
    p = stats.chi2.sf(q, lags)
    return AcfResult(lags, acf, cnt, band, q, p, n)


@dataclass(frozen=True)
class PowerLawFit:
    """Fit of ``f(k) ≈ A k^{-exponent}`` (see :func:`power_law_fit`).

    Attributes:
        exponent, prefactor: ``β`` and ``A``; ci_low, ci_high: t-based CI of ``β``;
        r2: R² of the log-log fit; n_points: bins used.
    """

    exponent: float
    prefactor: float
    ci_low: float
    ci_high: float
    r2: float
    n_points: int


def power_law_fit(
    lags: Any,
    values: Any,
    min_lag: float = 1,
    max_lag: float | None = None,
    bins_per_decade: int = 10,
    level: float = 0.95,
) -> PowerLawFit:
    """Least-squares fit of ``ln f̄_b = ln A - β ln k̄_b`` over log-spaced lag bins.

    Lags in ``[min_lag, max_lag]`` with finite values are grouped into bins with edges
    ``10^{j / bins_per_decade}``; ``k̄_b`` is the geometric mean lag and ``f̄_b`` the mean value
    of bin ``b``; bins with ``f̄_b <= 0`` are dropped (a power law is positive). Binning gives
    each decade of lags equal weight. CI: ``β ± t_{n-2} se(β)``.

    Returns:
        :class:`PowerLawFit`; NaN fields when fewer than 3 bins remain.

    Complexity: O(len(lags)).
    """
    k = np.asarray(lags, dtype=float)
    f = np.asarray(values, dtype=float)
    if k.shape != f.shape or k.ndim != 1:
        raise ConfigError(f"lags and values must be 1-D of one length, got {k.shape}, {f.shape}")
    if bins_per_decade < 1:
        raise ConfigError(f"bins_per_decade = {bins_per_decade!r}: must be >= 1")
    hi = np.inf if max_lag is None else max_lag
    ok = np.isfinite(f) & (k >= max(min_lag, 1e-300)) & (k <= hi)
    k, f = k[ok], f[ok]
    nan = float("nan")
    if k.size < 3:
        return PowerLawFit(nan, nan, nan, nan, nan, 0)
    b = np.floor(np.log10(k) * bins_per_decade + 1e-9).astype(np.int64)
    ub, inv = np.unique(b, return_inverse=True)
    cnt = np.bincount(inv)
    kb = np.exp(np.bincount(inv, np.log(k)) / cnt)
    fb = np.bincount(inv, f) / cnt
    pos = fb > 0
    X, Y = np.log(kb[pos]), np.log(fb[pos])
    m = X.size
    if m < 3 or np.ptp(X) == 0:
        return PowerLawFit(nan, nan, nan, nan, nan, int(m))
    slope, icpt = np.polyfit(X, Y, 1)
    res = Y - (icpt + slope * X)
    sxx = float(np.sum((X - X.mean()) ** 2))
    s2 = float(np.sum(res**2)) / (m - 2)
    se = math.sqrt(s2 / sxx)
    t = float(stats.t.ppf(0.5 + level / 2.0, m - 2))
    sst = float(np.sum((Y - Y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(res**2)) / sst if sst > 0 else nan
    beta = -float(slope)
    return PowerLawFit(beta, math.exp(icpt), beta - t * se, beta + t * se, r2, int(m))


# ---------------------------------------------------------------------------- aggregation
def aggregate_returns(r: Any, m: int, segments: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Sums of non-overlapping blocks of ``m`` consecutive returns within each segment.

    ``r^{(m)}_j = Σ_{i=0}^{m-1} r_{jm+i}`` (log returns add up, so this is the return at ``m``
    times the base horizon); incomplete trailing blocks of a segment are dropped.

    Returns:
        ``(aggregated returns, their segment codes)``.

    Complexity: O(n).
    """
    x = _vec(r)
    m = _check_lag(m, "m")
    codes = segment_codes(segments, x.size)
    if x.size == 0:
        return x.copy(), codes.copy()
    nseg = int(codes[-1]) + 1
    seg_len = np.bincount(codes, minlength=nseg)
    seg_start = np.cumsum(seg_len) - seg_len
    pos = np.arange(x.size) - seg_start[codes]
    blk = pos // m
    nblk = seg_len // m
    keep = blk < nblk[codes]
    off = np.cumsum(nblk) - nblk
    key = off[codes[keep]] + blk[keep]
    total = int(nblk.sum())
    agg = np.bincount(key, weights=x[keep], minlength=total)
    return agg, np.repeat(np.arange(nseg), nblk)


def kurtosis_by_aggregation(
    r: Any, scales: Sequence[int] = (1, 2, 4, 8, 16, 32), segments: Any = None
) -> pd.DataFrame:
    """Excess kurtosis of :func:`aggregate_returns` at each aggregation scale ``m``.

    Aggregational Gaussianity: ``κ(m)`` decreases toward 0 as ``m`` grows (for i.i.d. returns
    ``κ(m) = κ(1) / m``).

    Returns:
        DataFrame with columns scale, n, kurtosis.

    Complexity: O(n * len(scales)).
    """
    rows = []
    for m in scales:
        a, _ = aggregate_returns(r, int(m), segments)
        rows.append((int(m), int(a.size), excess_kurtosis(a)))
    return pd.DataFrame(rows, columns=["scale", "n", "kurtosis"])


# ---------------------------------------------------------------------------- leverage, volume
@dataclass(frozen=True)
class LeverageResult:
    """Leverage correlations (see the module docstring).

    Attributes:
        lags: ``1..K``; corr: ``L(k)``; mean: ``L̄``; se: its robust standard error;
        ci_low, ci_high: ``L̄ ∓ z se``; n: observations.
    """

    lags: np.ndarray
    corr: np.ndarray
    mean: float
    se: float
    ci_low: float
    ci_high: float
    n: int


def leverage_effect(
    r: Any, max_lag: int = 10, segments: Any = None, level: float = 0.95
) -> LeverageResult:
    """``L(k) = corr(r_t, r_{t+k}^2)`` for ``k = 1..max_lag`` and their mean with a robust CI.

    See the module docstring for the estimator and its standard error.

    Complexity: O(n * max_lag).
    """
    x = _vec(r)
    K = _check_lag(max_lag)
    z = _z(level)
    n = x.size
    codes = segment_codes(segments, n)
    lags = np.arange(1, K + 1)
    nan = float("nan")
    if n < 3:
        return LeverageResult(lags, np.full(K, np.nan), nan, nan, nan, nan, n)
    sr = x.std()
    x2 = x * x
    s2 = x2.std()
    if sr <= 0 or s2 <= 0:
        return LeverageResult(lags, np.full(K, np.nan), nan, nan, nan, nan, n)
    zt = (x - x.mean()) / sr
    w = (x2 - x2.mean()) / s2
    corr = np.full(K, np.nan)
    v = np.zeros(n)
    used = 0
    for k in lags:
        if k >= n:
            break
        same = codes[:-k] == codes[k:]
        nk = int(same.sum())
        if nk == 0:
            continue
        prod = zt[:-k] * w[k:]
        corr[k - 1] = float(prod[same].sum()) / nk
        v[:-k] += np.where(same, w[k:], 0.0) / nk
        used += 1
    if used == 0:
        return LeverageResult(lags, corr, nan, nan, nan, nan, n)
    v /= used
    mean = float(np.nanmean(corr))
    se = float(np.sqrt(np.sum(zt * zt * v * v)))
    return LeverageResult(lags, corr, mean, se, mean - z * se, mean + z * se, n)


@dataclass(frozen=True)
class CorrResult:
    """A Pearson correlation with its Fisher CI. Attributes: corr, ci_low, ci_high, n."""

    corr: float
    ci_low: float
    ci_high: float
    n: int


def volume_volatility_correlation(volume: Any, r: Any, level: float = 0.95) -> CorrResult:
    """Pearson ``corr(V_k, |r_k|)`` over intervals with the Fisher CI (module docstring). O(n)."""
    v = _vec(volume, "volume")
    a = np.abs(_vec(r))
    if v.shape != a.shape:
        raise ConfigError(f"volume and r must have one length, got {v.size} and {a.size}")
    z = _z(level)
    ok = np.isfinite(v) & np.isfinite(a)
    v, a = v[ok], a[ok]
    n = v.size
    nan = float("nan")
    if n < 4 or v.std() == 0 or a.std() == 0:
        return CorrResult(nan, nan, nan, n)
    c = float(np.corrcoef(v, a)[0, 1])
    zz = math.atanh(min(max(c, -0.999999999), 0.999999999))
    h = z / math.sqrt(n - 3)
    return CorrResult(c, math.tanh(zz - h), math.tanh(zz + h), n)


# ---------------------------------------------------------------------------- fact table
def _row(name: str, value: float, ci=(np.nan, np.nan), passed=False, n=0, detail="") -> dict:
    lo, hi, lit, src = FACTS[name]
    value = float(value) if value is not None else float("nan")
    if not math.isfinite(value):
        passed = False
        detail = "insufficient data (value undefined); " + detail
    elif n < MIN_SAMPLE:
        passed = False
        detail = f"too few observations to pass (n = {n} < {MIN_SAMPLE}); " + detail
    return {
        "name": name,
        "value": value,
        "ci_low": float(ci[0]),
        "ci_high": float(ci[1]),
        "lit_low": lo,
        "lit_high": hi,
        "literature": lit,
        "source": src,
        "passed": bool(passed),
        "n": int(n),
        "detail": detail,
    }


def facts_from_returns(
    r: Any,
    segments: Any = None,
    volume: Any = None,
    trade_signs: Any = None,
    sign_segments: Any = None,
    max_lag: int = 50,
    tail_fraction: float = 0.05,
    scales: Sequence[int] = (1, 2, 4, 8, 16),
    leverage_lags: int = 10,
    sign_max_lag: int = 100,
    level: float = 0.95,
) -> pd.DataFrame:
    """Table of stylized facts of one (pooled) return series.

    Pass rules (a fact measured on fewer than :data:`MIN_SAMPLE` values never passes; ``z`` the
    two-sided normal quantile at ``level``; ``z_B`` the Bonferroni one
    for ``max_lag`` lags, ``Φ^{-1}(1 - (1 - level) / (2 L))``):

    * excess_kurtosis: ``κ > z sqrt(24 / n)`` (significantly heavier tails than Gaussian).
    * tail_index: Hill ``α̂`` in ``[2, 5]``.
    * linear_autocorrelation (value ``ρ(1)``): ``|ρ(k)| <= max(0.05, z_B / sqrt(N_k))`` for all
      ``k = 1..L``.
    * volatility_clustering (value ``ρ_|r|(1)``): ``ρ_|r|(1) > z_B / sqrt(N_1)`` and
      ``ρ_|r|(k) > 0`` for ``k = 1..min(10, L)``.
    * abs_acf_decay_exponent: power-law ``β`` of ``ρ_|r|(1..L)`` in ``[0.2, 0.4]``.
    * aggregational_gaussianity (value ``κ`` at the largest scale): ``κ(1) > 0`` and
      ``κ(max scale) < κ(1)``.
    * leverage_effect (value ``L̄``): upper CI bound ``< 0``.
    * volume_volatility (value Pearson ρ): lower CI bound ``> 0``; only with ``volume``.
    * trade_sign_memory (value ``γ``): :func:`analysis.orderflow.sign_memory` finds long
      memory; only with ``trade_signs``.

    Args:
        r: Returns (finite).
        segments: Contiguous segment labels of ``r`` (e.g. day codes) or None.
        volume: Traded volume of each return interval, optional.
        trade_signs: Trade signs (+1/-1), optional; ``sign_segments`` their segment labels.
        max_lag: Lags of the return and ``|r|`` autocorrelations.
        tail_fraction: Tail share of the Hill estimator.
        scales: Aggregation scales (multiples of the base horizon).
        leverage_lags: ``K`` of the leverage mean.
        sign_max_lag: Lags of the trade-sign autocorrelation.
        level: Confidence level of CIs and tests.

    Returns:
        DataFrame with one row per fact and columns name, value, ci_low, ci_high (a CI of the
        value at ``level``; for linear_autocorrelation and volatility_clustering the white-noise
        band of ``ρ(1)`` instead; NaN for the kurtosis rows), lit_low, lit_high (the literature
        range; ±inf for one-sided facts), literature, source, passed, n, detail.

    Complexity: O(n (max_lag + len(scales)) + m log m) with m the padded length.
    """
    x = _vec(r)
    if not np.isfinite(x).all():
        raise ConfigError("r holds NaN or inf; drop them before computing stylized facts")
    z = _z(level)
    L = _check_lag(max_lag)
    zb = float(stats.norm.ppf(1.0 - (1.0 - level) / (2.0 * L)))
    n = x.size
    rows = []

    k = excess_kurtosis(x)
    se = math.sqrt(24.0 / n) if n else float("nan")
    rows.append(
        _row(
            "excess_kurtosis",
            k,
            passed=k > z * se,
            n=n,
            detail=f"Gaussian-null s.e. sqrt(24/n) = {se:.3g}" if n else "",
        )
    )

    h = hill_tail_index(x, tail_fraction, level=level)
    rows.append(
        _row(
            "tail_index",
            h.alpha,
            (h.ci_low, h.ci_high),
            passed=2.0 <= h.alpha <= 5.0,
            n=n,
            detail=f"Hill on |r|, top {tail_fraction:.1%} (k = {h.k})",
        )
    )

    a = acf_test(x, L, segments, level)
    tol = np.maximum(ACF_NEGLIGIBLE, zb / np.sqrt(np.maximum(a.n_pairs, 1)))
    fin = np.isfinite(a.acf)
    nsig = int(np.sum(np.abs(a.acf[fin]) > a.band[fin]))
    rows.append(
        _row(
            "linear_autocorrelation",
            a.acf[0],
            (-a.band[0], a.band[0]),
            passed=bool(fin.any() and np.all(np.abs(a.acf[fin]) <= tol[fin])),
            n=n,
            detail=(
                f"max |rho(1..{L})| = {np.nanmax(np.abs(a.acf)) if fin.any() else np.nan:.3g}; "
                f"{nsig}/{int(fin.sum())} lags outside the {level:.0%} band; Ljung-Box "
                f"Q({L}) = {a.q_stat[-1]:.4g}, p = {a.p_value[-1]:.3g}"
            ),
        )
    )

    ab = acf_test(np.abs(x), L, segments, level)
    first = ab.acf[: min(10, L)]
    clus = bool(
        np.isfinite(ab.acf[0])
        and ab.acf[0] > zb / math.sqrt(max(int(ab.n_pairs[0]), 1))
        and np.all(np.isfinite(first) & (first > 0))
    )
    rows.append(
        _row(
            "volatility_clustering",
            ab.acf[0],
            (-ab.band[0], ab.band[0]),
            passed=clus,
            n=n,
            detail=(
                f"rho_|r|(k) at k = 1, 5, {L}: "
                + ", ".join(f"{ab.acf[i - 1]:.3g}" for i in sorted({1, min(5, L), L}))
                + f"; ci = white-noise band; Ljung-Box p = {ab.p_value[-1]:.3g}"
            ),
        )
    )

    pl = power_law_fit(ab.lags, ab.acf, level=level)
    rows.append(
        _row(
            "abs_acf_decay_exponent",
            pl.exponent,
            (pl.ci_low, pl.ci_high),
            passed=0.2 <= pl.exponent <= 0.4,
            n=n,
            detail=f"log-binned OLS over lags 1..{L} ({pl.n_points} bins), R^2 = {pl.r2:.3g}",
        )
    )

    kt = kurtosis_by_aggregation(x, scales, segments)
    k1 = float(kt["kurtosis"].iloc[0]) if len(kt) else float("nan")
    km = float(kt["kurtosis"].iloc[-1]) if len(kt) else float("nan")
    rows.append(
        _row(
            "aggregational_gaussianity",
            km,
            passed=k1 > 0 and km < k1,
            n=n,
            detail="kurtosis by scale: "
            + ", ".join(f"{s}x: {v:.3g}" for s, v in zip(kt["scale"], kt["kurtosis"], strict=True)),
        )
    )

    lev = leverage_effect(x, leverage_lags, segments, level)
    rows.append(
        _row(
            "leverage_effect",
            lev.mean,
            (lev.ci_low, lev.ci_high),
            passed=lev.ci_high < 0,
            n=n,
            detail=f"mean of corr(r_t, r_(t+k)^2), k = 1..{leverage_lags}",
        )
    )

    if volume is not None:
        vv = volume_volatility_correlation(volume, x, level)
        rows.append(
            _row(
                "volume_volatility",
                vv.corr,
                (vv.ci_low, vv.ci_high),
                passed=vv.ci_low > 0,
                n=vv.n,
                detail="Pearson corr(interval volume, |r|), Fisher CI",
            )
        )

    if trade_signs is not None:
        from analysis.orderflow import sign_memory  # orderflow imports this module

        sm = sign_memory(trade_signs, sign_max_lag, sign_segments, level=level)
        rows.append(
            _row(
                "trade_sign_memory",
                sm.gamma,
                (sm.gamma_ci_low, sm.gamma_ci_high),
                passed=sm.long_memory,
                n=sm.n,
                detail=(
                    f"C(1) = {sm.acf[0]:.3g}; {sm.significant_fraction:.0%} of lags 1..{sign_max_lag} "
                    f"significantly > 0"
                ),
            )
        )
    return pd.DataFrame(rows, columns=_COLUMNS)


def _is_daily(horizon: Any) -> bool:
    return parse_horizon(horizon) == NS_PER_DAY


def pooled_returns(
    runs: Run | str | Iterable[Any],
    asset: str | None = None,
    horizon: Any = "1min",
    include_overnight: bool = False,
    standardize: bool = True,
) -> pd.DataFrame:
    """Returns of several runs stacked, with interval volume and segment labels.

    Each (run, asset) series is computed separately by :func:`analysis.returns.log_returns`;
    with ``standardize`` its returns are divided by their standard deviation and its volumes
    are z-scored, so runs with different volatility or activity levels pool without creating
    spurious kurtosis. Segments are (run, asset, day) for intraday horizons and (run, asset)
    for ``"1D"`` or ``include_overnight``.

    Returns:
        DataFrame with columns run, asset, day, start, end, r, volume, segment (int codes,
        contiguous).

    Complexity: O(total quote and trade rows, log-linear).
    """
    rs = as_runs(runs)
    by_day = not (_is_daily(horizon) or include_overnight)
    parts = []
    for i, run in enumerate(rs):
        ret = log_returns(run.quotes, horizon, asset, include_overnight)
        ret["volume"] = interval_volume(run.trades, ret)
        ret.insert(0, "run", i)
        if standardize and len(ret):
            for a in pd.unique(ret["asset"]):
                m = (ret["asset"] == a).to_numpy()
                for col in ("r", "volume"):
                    v = ret.loc[m, col].to_numpy(float)
                    s = v.std()
                    if s > 0:
                        ret.loc[m, col] = v / s if col == "r" else (v - v.mean()) / s
        parts.append(ret)
    out = pd.concat(parts, ignore_index=True)
    keys = ["run", "asset", "day"] if by_day else ["run", "asset"]
    out = out.sort_values([*keys, "end"], kind="stable").reset_index(drop=True)
    out["segment"] = out.groupby(keys, sort=False).ngroup().to_numpy(np.int64)
    return out


def stylized_facts(
    run_or_dirs: Run | str | Iterable[Any],
    asset: str | None = None,
    horizon: Any = "1min",
    *,
    include_overnight: bool = False,
    standardize: bool = True,
    merge_fills: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """Stylized facts of one or several runs (pooled), one row per fact.

    Returns at ``horizon`` never span two trading days (unless ``include_overnight``), two runs
    or two assets; see :func:`pooled_returns`. Trade signs come from the ``trades`` tables
    (:func:`analysis.orderflow.trade_signs`, one segment per run, asset and day).

    Args:
        run_or_dirs: A :class:`~analysis.io.Run`, a run directory, or a list of them (several
            seeds or days, pooled).
        asset: One asset; ``None``: every asset (pooled).
        horizon: Return horizon, e.g. "1min", "5min", "1D".
        include_overnight: Keep returns across the overnight gap (close-to-close at "1D").
        standardize: Scale each (run, asset) series to unit variance before pooling.
        merge_fills: Count the fills of one aggressive order as one trade sign.
        **kwargs: Passed to :func:`facts_from_returns` (max_lag, tail_fraction, scales,
            leverage_lags, sign_max_lag, level).

    Returns:
        See :func:`facts_from_returns`.

    Raises:
        ConfigError: bad arguments; DataError: unreadable run directory.

    Complexity: O(rows log rows + n max_lag).
    """
    from analysis.orderflow import trade_signs

    rs = as_runs(run_or_dirs)
    pr = pooled_returns(rs, asset, horizon, include_overnight, standardize)
    sgn, sseg = [], []
    for i, run in enumerate(rs):
        ts = trade_signs(run.trades, asset, merge_fills=merge_fills)
        if len(ts):
            sgn.append(ts["sign"].to_numpy(float))
            seg = ts.groupby(["asset", "day"], sort=False).ngroup().to_numpy(np.int64)
            sseg.append(seg + (i << 40))
    signs = np.concatenate(sgn) if sgn else None
    sign_seg = np.concatenate(sseg) if sseg else None
    logger.info(
        "stylized facts: %d returns, %d trade signs", len(pr), 0 if signs is None else signs.size
    )
    return facts_from_returns(
        pr["r"].to_numpy(float),
        pr["segment"].to_numpy(),
        volume=pr["volume"].to_numpy(float),
        trade_signs=signs,
        sign_segments=sign_seg,
        **kwargs,
    )
