"""Run reports: the stylized-facts table, calibration targets, S&P 500 reference and plots.

:func:`write_report` turns one run directory (or several, pooled) into ``report.md`` or
``report.html`` plus PNG figures:

* the stylized facts of :func:`analysis.stylized.stylized_facts` at ``horizon`` (value, CI,
  literature range with its source, pass/fail) with the S&P 500 daily facts of
  :func:`analysis.realdata.sp500_facts` beside them (when the ``arch`` package is installed);
* the calibration targets of :func:`calibration_targets` (the checks that
  ``scenarios/stylized_facts.toml`` was tuned for);
* figures: the return distribution against a Gaussian of the same variance (density on a log
  scale and the complementary CDF of ``|r|`` with the Hill tail), the ACF of returns and of
  ``|r|`` (log-log, with the fitted power law), the trade-sign ACF (log-log, with the
  Lillo-Farmer fit), the spread distribution in ticks, and the impact law when an impact study
  (``impact.parquet`` + ``impact_fit.json`` of :mod:`analysis.experiments`) is in the run
  directory or given as ``impact_dir``; a run with an ``execution`` agent but no study gets its
  meta-order's price path instead.

Calibration targets (1-minute returns, pooled over the runs; ``L = max_lag``, ``N_k`` pairs at
lag ``k``, ``z_B`` the Bonferroni normal quantile ``Φ^{-1}(1 - (1 - level) / (2 L))``):

* ``excess_kurtosis``: ``κ >= 3``;
* ``no_autocorrelation_beyond_lag_1``: ``|ρ(k)| <= max(0.05, z_B se_k)`` for ``k = 2..L``
  (value: the largest ``|ρ(k)|``; ``ρ(1)`` is in the detail), with the heteroskedasticity-
  robust standard error of ``ρ(k)`` (Taylor 1984; Lo & MacKinlay 1989)
  ``se_k = sqrt(Σ_{P_k} d_t² d_{t+k}²) / (N_k c_0)`` (``d = r - r̄``, ``c_0 = mean(d²)``). It is
  ``1 / sqrt(N_k)`` for i.i.d. returns; with volatility clustering the sample autocorrelations
  of uncorrelated returns scatter more than that, and the i.i.d. band of
  :func:`analysis.stylized.facts_from_returns` would flag them. The null allows a lag-1
  correlation (the bid-ask bounce), which makes ``ρ(k)`` scatter by a factor
  ``sqrt(1 + 2 ρ(1)²)`` more (Bartlett 1946): ``se_k`` includes the lag-1 cross products of
  ``d_t d_{t+k}`` (:func:`robust_acf_se` with ``null_lags = 1``);
* ``abs_return_acf_lag1``: ``0.1 <= ρ_|r|(1) <= 0.6``;
* ``abs_return_acf_slow_decay``: ``ρ_|r|(k) > 0`` for ``k = 1..10`` and the power-law exponent
  ``β`` of ``ρ_|r|(k) ≈ A k^{-β}`` (lags ``1..L``) below 1 (value: ``β``);
* ``tail_index``: Hill ``α̂`` in ``[2, 5]``;
* ``volume_volatility``: the lower CI bound of ``corr(V, |r|)`` above 0;
* ``trade_sign_memory``: long memory of trade signs (``analysis.orderflow.sign_memory``);
* ``impact_exponent`` (only with an impact fit): ``0.4 <= δ <= 0.7`` (concave impact law).

Example:
    >>> write_report("runs/sf", fmt="md")                          # doctest: +SKIP
    PosixPath('runs/sf/report/report.md')
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from scipy import stats

from analysis.io import Run, as_runs, select_asset
from analysis.orderflow import sign_memory, spreads, trade_signs
from analysis.stylized import (
    ACF_NEGLIGIBLE,
    acf_test,
    hill_tail_index,
    lagged_products,
    pooled_returns,
    power_law_fit,
    segment_codes,
    stylized_facts,
)
from marketsim.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "IMPACT_FILE",
    "IMPACT_FIT_FILE",
    "TARGETS",
    "calibration_targets",
    "plot_abs_acf",
    "plot_impact_law",
    "plot_metaorder",
    "plot_return_distribution",
    "plot_sign_acf",
    "plot_spread_distribution",
    "reference_table",
    "robust_acf_se",
    "write_report",
]

#: Report formats of :func:`write_report`.
FORMATS = ("md", "html")
#: File names of an impact study (written by :func:`analysis.experiments.run_impact_study`).
IMPACT_FILE = "impact.parquet"
IMPACT_FIT_FILE = "impact_fit.json"

#: name -> (low, high, statement) of each calibration target (see the module docstring).
TARGETS: dict[str, tuple[float, float, str]] = {
    "excess_kurtosis": (3.0, math.inf, "excess kurtosis >= 3"),
    "no_autocorrelation_beyond_lag_1": (
        0.0,
        ACF_NEGLIGIBLE,
        "no significant return autocorrelation at lags 2..L",
    ),
    "abs_return_acf_lag1": (0.1, 0.6, "|r| autocorrelation at lag 1 in [0.1, 0.6]"),
    "abs_return_acf_slow_decay": (
        0.0,
        1.0,
        "|r| ACF positive at lags 1..10, power-law decay exponent < 1",
    ),
    "tail_index": (2.0, 5.0, "Hill tail index in [2, 5]"),
    "volume_volatility": (0.0, math.inf, "positive volume-volatility correlation"),
    "trade_sign_memory": (0.0, 1.0, "long memory of trade signs (0 < gamma < 1)"),
    "impact_exponent": (0.4, 0.7, "concave impact law, delta in [0.4, 0.7]"),
}

_WIDTH, _DPI = 7.5, 110
_SIM, _REF, _FIT = "#264653", "#e76f51", "#2a9d8f"


# ---------------------------------------------------------------------------- targets
def robust_acf_se(r: Any, max_lag: int, segments: Any = None, null_lags: int = 0) -> np.ndarray:
    """Heteroskedasticity-robust standard errors of ``ρ(1..max_lag)`` (module docstring).

    ``se_k = sqrt(V_k) / (N_k c_0)`` with ``V_k = Σ_{P_k} x_t²`` for ``x_t = d_t d_{t+k}``,
    pairs within one segment; NaN for lags without pairs.

    ``null_lags = q > 0``: the null is a series correlated up to lag ``q`` (an MA(q), e.g. the
    bid-ask bounce at lag 1), under which the products ``x_t`` are themselves correlated up to
    lag ``q``: ``V_k = Σ x_t² + 2 max(0, Σ_{j=1..q} Σ x_t x_{t+j})`` (a truncated
    Newey-West sum; Bartlett's formula ``var ρ(k) = (1 + 2 Σ_{j<=q} ρ(j)²) / N`` for
    ``k > q`` in the homoskedastic case). Only the lags ``k > q`` are tested under that null;
    the cross terms are clipped at 0 so the s.e. is never below the ``q = 0`` one. O(q m log m)
    (:func:`analysis.stylized.lagged_products`).
    """
    x = np.asarray(r, dtype=float)
    d = x - x.mean() if x.size else x
    c0 = float(np.mean(d * d)) if x.size else float("nan")
    s2, cnt = lagged_products(d * d, d * d, max_lag, segments)
    if null_lags > 0 and x.size:
        codes = segment_codes(segments, x.size)
        cross = np.zeros_like(s2)
        for j in range(1, int(null_lags) + 1):
            u = np.zeros_like(d)  # u_t = d_t d_{t+j} within a segment, else 0
            same = codes[j:] == codes[:-j]
            u[:-j] = np.where(same, d[:-j] * d[j:], 0.0)
            cross += lagged_products(u, u, max_lag, segments)[0]
        s2 = s2 + 2.0 * np.maximum(cross, 0.0)
    s2, cnt = s2[1:], cnt[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, np.sqrt(np.maximum(s2, 0.0)) / (cnt * c0), np.nan)


def _num(v: Any) -> float:
    """A JSON number as float (``None`` and non-numbers: NaN)."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _target(name: str, value: float, passed: bool, detail: str = "") -> dict[str, Any]:
    lo, hi, text = TARGETS[name]
    ok = bool(passed) and math.isfinite(value)
    return {
        "target": name,
        "value": float(value),
        "low": lo,
        "high": hi,
        "statement": text,
        "passed": ok,
        "detail": detail,
    }


def calibration_targets(
    runs: Run | str | os.PathLike[str] | Iterable[Any],
    facts: pd.DataFrame | None = None,
    *,
    asset: str | None = None,
    horizon: Any = "1min",
    max_lag: int = 50,
    level: float = 0.95,
    impact_fit: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """The calibration targets of the module docstring, measured on one or several runs.

    Args:
        runs: A :class:`~analysis.io.Run`, a run directory or a list of them (pooled as in
            :func:`analysis.stylized.stylized_facts`).
        facts: Their :func:`~analysis.stylized.stylized_facts` table at ``horizon`` with
            ``max_lag`` and ``level`` (computed when ``None``).
        asset: One asset (default: all, pooled).
        horizon: Return horizon (the targets are meant for ``"1min"``).
        max_lag: ``L``, the largest lag of the return autocorrelations.
        level: Confidence level of the tests.
        impact_fit: An impact fit (``delta`` key, e.g. the content of ``impact_fit.json``);
            adds the ``impact_exponent`` row.

    Returns:
        DataFrame with one row per target: target, value, low, high, statement, passed, detail.

    Raises:
        ConfigError: bad arguments; DataError: unreadable runs.

    Complexity: O(n max_lag + rows log rows) for n returns.
    """
    if isinstance(max_lag, bool) or not isinstance(max_lag, int) or max_lag < 10:
        raise ConfigError(f"max_lag = {max_lag!r}: must be an integer >= 10")
    rs = as_runs(runs)
    if facts is None:
        facts = stylized_facts(rs, asset, horizon, max_lag=max_lag, level=level)
    f = facts.set_index("name")
    pr = pooled_returns(rs, asset, horizon)
    r = pr["r"].to_numpy(float)
    seg = pr["segment"].to_numpy()
    rows = []
    kurt = float(f.loc["excess_kurtosis", "value"])
    rows.append(_target("excess_kurtosis", kurt, kurt >= 3.0, f"n = {r.size} returns"))

    zb = float(stats.norm.ppf(1.0 - (1.0 - level) / (2.0 * max_lag)))
    a = acf_test(r, max_lag, seg, level)
    se = robust_acf_se(r, max_lag, seg, null_lags=1)
    tol = np.maximum(ACF_NEGLIGIBLE, zb * np.where(np.isfinite(se), se, np.inf))
    beyond = a.acf[1:]
    fin = np.isfinite(beyond)
    worst = float(np.max(np.abs(beyond[fin]))) if fin.any() else float("nan")
    # the lag closest to (or furthest beyond) its tolerance
    k_worst = int(np.argmax(np.where(fin, np.abs(beyond) / tol[1:], -1.0))) + 2 if fin.any() else 0
    rows.append(
        _target(
            "no_autocorrelation_beyond_lag_1",
            worst,
            bool(fin.any() and np.all(np.abs(beyond[fin]) <= tol[1:][fin])),
            f"max |rho(k)|, k = 2..{max_lag}; closest to its tolerance at k = {k_worst}: "
            f"rho = {a.acf[k_worst - 1] if k_worst else float('nan'):.3g}, tolerance "
            f"{float(tol[k_worst - 1]) if k_worst else float('nan'):.3g} (robust s.e. x "
            f"{zb:.2f}); rho(1) = {a.acf[0]:.3g}",
        )
    )

    ab = acf_test(np.abs(r), max_lag, seg, level)
    a1 = float(ab.acf[0])
    rows.append(_target("abs_return_acf_lag1", a1, 0.1 <= a1 <= 0.6, f"band ±{ab.band[0]:.3g}"))
    first = ab.acf[:10]
    pl = power_law_fit(ab.lags, ab.acf)
    positive = bool(np.all(np.isfinite(first) & (first > 0)))
    rows.append(
        _target(
            "abs_return_acf_slow_decay",
            pl.exponent,
            positive and 0.0 < pl.exponent < 1.0,
            f"rho_|r|(k) at k = 1, 10, {max_lag}: {ab.acf[0]:.3g}, {ab.acf[9]:.3g}, "
            f"{ab.acf[-1]:.3g}; positive at 1..10: {positive}",
        )
    )

    h = hill_tail_index(r, level=level)
    rows.append(_target("tail_index", h.alpha, 2.0 <= h.alpha <= 5.0, f"top 5% (k = {h.k})"))
    for name in ("volume_volatility", "trade_sign_memory"):
        if name in f.index:
            rows.append(
                _target(
                    name,
                    float(f.loc[name, "value"]),
                    bool(f.loc[name, "passed"]),
                    str(f.loc[name, "detail"]),
                )
            )
    if impact_fit is not None:
        d = _num(impact_fit.get("delta"))
        ci = [_num(c) for c in (impact_fit.get("delta_ci") or [None, None])]
        rows.append(
            _target(
                "impact_exponent",
                d,
                0.4 <= d <= 0.7,
                f"I/sigma = Y (Q/V)^delta, Y = {_num(impact_fit.get('Y')):.3g}; "
                f"delta CI [{ci[0]:.3g}, {ci[1]:.3g}]; "
                f"n = {impact_fit.get('n', '?')}",
            )
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- S&P 500
def reference_table(facts: pd.DataFrame, sp500: pd.DataFrame | None) -> pd.DataFrame:
    """Simulated facts beside the S&P 500 daily ones (NaN columns without ``sp500``). O(facts).

    Returns:
        DataFrame with columns name, value, ci_low, ci_high, literature, source, passed,
        sp500, sp500_passed.
    """
    out = facts[["name", "value", "ci_low", "ci_high", "literature", "source", "passed"]].copy()
    if sp500 is None:
        out["sp500"] = np.nan
        out["sp500_passed"] = None
        return out
    ref = sp500.set_index("name")
    out["sp500"] = ref["value"].reindex(out["name"]).to_numpy(float)
    out["sp500_passed"] = ref["passed"].reindex(out["name"]).to_numpy(object)
    return out


def _sp500_facts() -> tuple[pd.DataFrame | None, str]:
    try:
        from analysis.realdata import sp500_facts

        return sp500_facts(), ""
    except (DataError, ImportError) as e:
        logger.info("S&P 500 reference unavailable: %s", e)
        return None, str(e)


# ---------------------------------------------------------------------------- plots
def _fig(h: float = 3.6, ncols: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(_WIDTH if ncols == 1 else 2 * _WIDTH * 0.75, h), layout="constrained")
    axes = fig.subplots(1, ncols)
    for ax in np.atleast_1d(axes):
        ax.grid(True, alpha=0.3, lw=0.6)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
    return fig, axes


def _save(fig: Figure, path: str | Path) -> Path:
    for ax in fig.axes:  # log axes: label the decades only (minor labels overlap)
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())
        if ax.get_yscale() == "log":
            ax.yaxis.set_minor_formatter(NullFormatter())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI)
    return path


def _no_data(path: str | Path, title: str, text: str) -> Path:
    fig, ax = _fig(2.0)
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", color="0.4", transform=ax.transAxes)
    return _save(fig, path)


def plot_return_distribution(r: Any, path: str | Path, horizon: str = "1min") -> Path:
    """Standardised returns vs a Gaussian: log-density histogram and CCDF of ``|r|``.

    The right panel draws ``P(|z| > x)`` on log-log axes with the Gaussian's and the Hill
    power law ``P(|z| > x) ∝ x^{-α̂}`` through the top 5 %. O(n log n).
    """
    x = np.asarray(r, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 10 or x.std() == 0:
        return _no_data(path, f"{horizon} returns", "too few returns")
    z = (x - x.mean()) / x.std()
    fig, (a1, a2) = _fig(3.6, 2)
    lim = max(5.0, float(np.quantile(np.abs(z), 0.999)))
    bins = np.linspace(-lim, lim, 81)
    dens, edges = np.histogram(z, bins=bins, density=True)
    mid = 0.5 * (edges[1:] + edges[:-1])
    a1.semilogy(mid[dens > 0], dens[dens > 0], "o", ms=3, color=_SIM, label="simulated")
    g = np.linspace(-lim, lim, 400)
    a1.semilogy(g, stats.norm.pdf(g), color=_REF, label="Gaussian")
    a1.set_ylim(max(0.5 / z.size, 1e-6), 1.0)
    a1.set_xlabel(f"standardised {horizon} return")
    a1.set_ylabel("density")
    a1.set_title(f"returns (excess kurtosis {stats.kurtosis(z):.2f})")
    a1.legend(frameon=False)
    az = np.sort(np.abs(z))[::-1]
    ccdf = np.arange(1, az.size + 1) / az.size
    keep = az > 0
    a2.loglog(az[keep], ccdf[keep], color=_SIM, label="simulated |r|")
    xs = np.logspace(np.log10(max(az[keep].min(), 1e-3)), np.log10(az.max()), 200)
    a2.loglog(xs, 2 * stats.norm.sf(xs), color=_REF, label="Gaussian")
    h = hill_tail_index(x)
    if math.isfinite(h.alpha) and h.k > 0:
        x0 = az[h.k]
        xt = np.logspace(np.log10(x0), np.log10(az.max()), 50)
        a2.loglog(
            xt,
            (h.k / az.size) * (xt / x0) ** (-h.alpha),
            "--",
            color=_FIT,
            label=f"Hill tail, alpha = {h.alpha:.2f}",
        )
    a2.set_ylim(0.5 / az.size, 1.2)
    a2.set_xlabel("|standardised return|")
    a2.set_ylabel("P(|r| > x)")
    a2.set_title("tail (complementary CDF)")
    a2.legend(frameon=False)
    return _save(fig, path)


def plot_abs_acf(r: Any, segments: Any, path: str | Path, max_lag: int = 50) -> Path:
    """ACF of returns (linear axes) and of ``|r|`` (log-log, with the power-law fit). O(n L)."""
    x = np.asarray(r, dtype=float)
    if x.size < 3 * max_lag:
        return _no_data(path, "autocorrelations", "too few returns")
    a = acf_test(x, max_lag, segments)
    ab = acf_test(np.abs(x), max_lag, segments)
    fig, (a1, a2) = _fig(3.6, 2)
    a1.bar(a.lags, a.acf, color=_SIM, width=0.8)
    a1.plot(a.lags, a.band, ":", color="0.4", label="95% white-noise band")
    a1.plot(a.lags, -a.band, ":", color="0.4")
    a1.axhline(0, color="0.2", lw=0.6)
    a1.set_xlabel("lag (returns)")
    a1.set_ylabel("rho(k)")
    a1.set_title("return autocorrelation")
    a1.legend(frameon=False)
    pos = ab.acf > 0
    a2.loglog(ab.lags[pos], ab.acf[pos], "o", ms=3, color=_SIM, label="|r| ACF")
    a2.loglog(ab.lags, ab.band, ":", color="0.4", label="95% white-noise band")
    pl = power_law_fit(ab.lags, ab.acf)
    if math.isfinite(pl.exponent):
        a2.loglog(
            ab.lags,
            pl.prefactor * ab.lags ** (-pl.exponent),
            "--",
            color=_FIT,
            label=f"fit k^-{pl.exponent:.2f} (R2 {pl.r2:.2f})",
        )
    a2.set_xlabel("lag (returns)")
    a2.set_ylabel("rho_|r|(k)")
    a2.set_title("volatility clustering: ACF of |r|")
    a2.legend(frameon=False)
    return _save(fig, path)


def plot_sign_acf(signs: Any, segments: Any, path: str | Path, max_lag: int = 100) -> Path:
    """Trade-sign ACF on log-log axes with the fit ``C(l) ≈ A l^{-γ}``. O(n + L segments)."""
    s = np.asarray(signs, dtype=float)
    if s.size < 3 * max_lag:
        return _no_data(path, "trade-sign autocorrelation", "too few trades")
    sm = sign_memory(s, max_lag, segments)
    fig, ax = _fig(3.6)
    pos = sm.acf > 0
    ax.loglog(sm.lags[pos], sm.acf[pos], "o", ms=3, color=_SIM, label="C(l)")
    ax.loglog(sm.lags, sm.band, ":", color="0.4", label="95% white-noise band")
    if math.isfinite(sm.gamma):
        ax.loglog(
            sm.lags,
            sm.prefactor * sm.lags ** (-sm.gamma),
            "--",
            color=_FIT,
            label=f"fit l^-{sm.gamma:.2f}",
        )
    ax.set_xlabel("lag (trades)")
    ax.set_ylabel("C(l)")
    ax.set_title(f"trade-sign autocorrelation (long memory: {sm.long_memory})")
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_spread_distribution(spread_rows: pd.DataFrame, path: str | Path) -> Path:
    """Share of time at each spread in ticks (log scale). O(n log n)."""
    t = spread_rows["ticks"].to_numpy(float) if len(spread_rows) else np.empty(0)
    t = np.rint(t[np.isfinite(t)]).astype(np.int64)
    if t.size == 0:
        return _no_data(path, "spread distribution", "no two-sided quotes (or no tick size)")
    u, c = np.unique(t, return_counts=True)
    fig, ax = _fig(3.2)
    ax.bar(u, c / c.sum(), color=_SIM, width=0.8)
    ax.set_yscale("log")
    ax.set_xlim(0, max(float(np.quantile(t, 0.999)), 2) + 1)
    ax.set_xlabel("spread (ticks)")
    ax.set_ylabel("share of quotes")
    ax.set_title(f"spread distribution (mean {t.mean():.2f}, median {np.median(t):.0f} ticks)")
    return _save(fig, path)


def plot_impact_law(rows: pd.DataFrame, fit: Mapping[str, Any] | None, path: str | Path) -> Path:
    """``I/σ`` against ``Q/V`` on log-log axes with the fitted ``Y (Q/V)^δ``. O(rows).

    Non-positive impacts cannot sit on log axes: they are drawn at the bottom edge. Bin means
    (log-spaced bins of ``Q/V``) are drawn over the single meta-orders.
    """
    need = {"q_over_v", "impact_over_sigma"}
    if not need <= set(rows.columns) or not len(rows):
        return _no_data(path, "impact law", "no meta-orders")
    qv = rows["q_over_v"].to_numpy(float)
    iz = rows["impact_over_sigma"].to_numpy(float)
    ok = np.isfinite(qv) & np.isfinite(iz) & (qv > 0)
    qv, iz = qv[ok], iz[ok]
    if not qv.size:
        return _no_data(path, "impact law", "no finite meta-order rows")
    fig, ax = _fig(3.8)
    pos = iz > 0
    floor = float(np.min(iz[pos])) / 3 if pos.any() else 1e-3
    ax.loglog(qv[pos], iz[pos], "o", ms=3, alpha=0.5, color=_SIM, label="meta-orders")
    if (~pos).any():
        ax.loglog(
            qv[~pos], np.full((~pos).sum(), floor), "v", ms=3, alpha=0.5, color="0.5",
            label="impact <= 0",
        )  # fmt: skip
    key = rows["size"].to_numpy()[ok] if "size" in rows.columns else qv
    groups = np.unique(key)
    if groups.size >= 2:
        means = [(float(np.mean(qv[key == g])), float(np.mean(iz[key == g]))) for g in groups]
        mq = np.array([m for m in means if m[1] > 0])
        if mq.size:
            ax.loglog(mq[:, 0], mq[:, 1], "s", ms=6, color=_REF, label="mean per size")
    d, y = (_num(fit.get(k)) for k in ("delta", "Y")) if fit else (float("nan"),) * 2
    if math.isfinite(d) and math.isfinite(y):
        xs = np.logspace(np.log10(qv.min()), np.log10(qv.max()), 50)
        ci = [_num(c) for c in (fit.get("delta_ci") or [None, None])]
        ax.loglog(
            xs, y * xs**d, "--", color=_FIT,
            label=f"fit {y:.2f} (Q/V)^{d:.2f}, delta CI [{ci[0]:.2f}, {ci[1]:.2f}]",
        )  # fmt: skip
    ax.set_xlabel("Q / V (meta-order size / daily volume)")
    ax.set_ylabel("I / sigma (peak impact / daily volatility)")
    ax.set_title("market impact of meta-orders")
    ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def plot_metaorder(run: Run, path: str | Path, asset: str | None = None) -> Path | None:
    """Mid price around the execution agent's meta-order, with its fills; ``None`` if the run
    has no ``execution`` trades. O(rows)."""
    acc = run.accounts
    if not len(acc) or "agent_type" not in acc:
        return None
    ex = set(acc.loc[acc["agent_type"].astype(str) == "execution", "account"].tolist())
    t = run.trades
    if not ex or not len(t):
        return None
    mine = t[t["buyer"].isin(ex) | t["seller"].isin(ex)]
    if asset is not None:
        mine = select_asset(mine, asset, "trades", must_exist=False)
    if not len(mine):
        return None
    a = str(mine["asset"].iloc[0])
    q = select_asset(run.quotes, a, "quotes")
    s0, s1 = int(mine["step"].min()), int(mine["step"].max())
    pad = max(600, s1 - s0)
    q = q[(q["step"] >= s0 - pad) & (q["step"] <= s1 + 2 * pad)]
    fig, ax = _fig(3.6)
    ax.plot(q["step"], q["mid"], color=_SIM, lw=0.8, label="mid")
    buy = mine["buyer"].isin(ex).to_numpy()
    ax.plot(mine["step"][buy], mine["price"][buy], ".", ms=3, color=_FIT, label="meta-order buys")
    ax.plot(
        mine["step"][~buy], mine["price"][~buy], ".", ms=3, color=_REF, label="meta-order sells"
    )
    ax.axvspan(s0, s1, color="0.85", alpha=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{a} price")
    ax.set_title(
        f"meta-order of {int(mine['qty'].sum())} lots "
        "(run `marketsim impact` for counterfactual impact)"
    )
    ax.legend(frameon=False)
    return _save(fig, path)


# ---------------------------------------------------------------------------- tables
def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return "pass" if v else "FAIL"
    if isinstance(v, float | np.floating):
        if not math.isfinite(v):
            return "inf" if v == math.inf else "-inf" if v == -math.inf else ""
        return f"{v:.{digits}g}"
    return str(v)


def _range(lo: float, hi: float) -> str:
    if math.isinf(lo) and math.isinf(hi):
        return "(trend)"
    if math.isinf(hi):
        return f">= {lo:g}" if lo else "> 0"
    if math.isinf(lo):
        return f"< {hi:g}" if hi == 0 else f"<= {hi:g}"
    return f"[{lo:g}, {hi:g}]"


def _facts_rows(ref: pd.DataFrame, facts: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    f = facts.set_index("name")
    head = [
        "fact", "simulated", "95% CI", "literature range", "literature", "source",
        "result", "S&P 500 daily", "S&P result",
    ]  # fmt: skip
    body = []
    for _, row in ref.iterrows():
        lo, hi = f.loc[row["name"], "lit_low"], f.loc[row["name"], "lit_high"]
        ci = (
            f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
            if math.isfinite(row["ci_low"])
            else ""
        )
        sp = row["sp500_passed"]
        body.append(
            [
                row["name"], _fmt(row["value"]), ci, _range(lo, hi), row["literature"],
                row["source"], _fmt(bool(row["passed"])), _fmt(row["sp500"]),
                "" if sp is None or (isinstance(sp, float) and math.isnan(sp)) else _fmt(bool(sp)),
            ]
        )  # fmt: skip
    return head, body


def _target_rows(targets: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    head = ["target", "value", "required", "result", "detail"]
    body = [
        [r["target"], _fmt(r["value"]), r["statement"], _fmt(bool(r["passed"])), r["detail"]]
        for _, r in targets.iterrows()
    ]
    return head, body


def _md_table(head: list[str], body: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in body]
    return "\n".join(lines)


def _html_table(head: list[str], body: list[list[str]]) -> str:
    e = html.escape
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    rows = []
    for r in body:
        cells = []
        for c in r:
            cls = ' class="pass"' if c == "pass" else ' class="fail"' if c == "FAIL" else ""
            cells.append(f"<td{cls}>{e(str(c))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# ---------------------------------------------------------------------------- report
def _load_impact(impact_dir: Path | None) -> tuple[pd.DataFrame | None, dict | None]:
    if impact_dir is None:
        return None, None
    p, fp = impact_dir / IMPACT_FILE, impact_dir / IMPACT_FIT_FILE
    rows = pd.read_parquet(p) if p.is_file() else None
    fit = None
    if fp.is_file():
        try:
            fit = json.loads(fp.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DataError(f"{fp}: cannot parse JSON: {e}") from e
    return rows, fit


def write_report(
    runs: Run | str | os.PathLike[str] | Iterable[Any],
    out_dir: str | os.PathLike[str] | None = None,
    fmt: str = "md",
    *,
    horizon: str = "1min",
    asset: str | None = None,
    impact_dir: str | os.PathLike[str] | None = None,
    max_lag: int = 50,
    sp500: bool = True,
) -> Path:
    """Write the report of one or several runs (pooled) and its figures; return its path.

    Args:
        runs: A run directory, a :class:`~analysis.io.Run`, or a list of them (pooled).
        out_dir: Folder of the report and PNGs (default ``<first run dir>/report``; required
            for hand-built runs).
        fmt: ``"md"`` (Markdown) or ``"html"`` (one self-contained page linking the PNGs).
        horizon: Return horizon of the facts and targets.
        asset: One asset (default: every asset, pooled).
        impact_dir: Folder of an impact study (``impact.parquet``, ``impact_fit.json``);
            default: the first run directory, when it holds one.
        max_lag: Largest lag of the return autocorrelations.
        sp500: Add the S&P 500 daily reference facts (needs the ``arch`` package; left out
            with a note when it is missing).

    Returns:
        Path of ``report.md`` / ``report.html``.

    Raises:
        ConfigError: bad ``fmt`` or no ``out_dir`` for hand-built runs; DataError: unreadable
            run directories.

    Complexity: O(rows log rows + n max_lag), plus drawing.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"fmt = {fmt!r}: must be one of {', '.join(FORMATS)}")
    rs = as_runs(runs)
    first = rs[0].path
    if out_dir is None:
        if first is None:
            raise ConfigError("out_dir is required for runs that were not read from a directory")
        out_dir = first / "report"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    idir = Path(impact_dir) if impact_dir is not None else first
    if impact_dir is not None and not (idir / IMPACT_FILE).is_file():
        raise DataError(f"impact_dir {str(idir)!r} holds no {IMPACT_FILE}; run `marketsim impact`")
    imp_rows, imp_fit = _load_impact(idir)

    facts = stylized_facts(rs, asset, horizon, max_lag=max_lag)
    targets = calibration_targets(
        rs, facts, asset=asset, horizon=horizon, max_lag=max_lag, impact_fit=imp_fit
    )
    ref, sp_note = (None, "left out (sp500=False)")
    if sp500:
        ref, sp_note = _sp500_facts()
    table = reference_table(facts, ref)

    pr = pooled_returns(rs, asset, horizon)
    r, seg = pr["r"].to_numpy(float), pr["segment"].to_numpy()
    figs: list[tuple[str, Path]] = [
        ("Return distribution", plot_return_distribution(r, out / "returns.png", horizon)),
        ("Autocorrelations", plot_abs_acf(r, seg, out / "acf.png", max_lag)),
    ]
    sgn, sseg = [], []
    for i, run in enumerate(rs):
        ts = trade_signs(run.trades, asset)
        if len(ts):
            sgn.append(ts["sign"].to_numpy(float))
            sseg.append(ts.groupby(["asset", "day"], sort=False).ngroup().to_numpy() + (i << 40))
    figs.append(
        (
            "Trade signs",
            plot_sign_acf(
                np.concatenate(sgn) if sgn else np.empty(0),
                np.concatenate(sseg) if sseg else None,
                out / "signs.png",
            ),
        )
    )
    sp_rows = []
    for run in rs:
        ticks = {a: run.tick_size(a) for a in run.assets}
        sp_rows.append(spreads(run.quotes, ticks, asset))
    figs.append(("Spread", plot_spread_distribution(pd.concat(sp_rows), out / "spread.png")))
    if imp_rows is not None:
        figs.append(("Market impact", plot_impact_law(imp_rows, imp_fit, out / "impact.png")))
    else:
        p = plot_metaorder(rs[0], out / "metaorder.png", asset)
        if p is not None:
            figs.append(("Meta-order", p))

    names = ", ".join(run.name for run in rs)
    n_days = int(pr[["run", "day"]].drop_duplicates().shape[0]) if len(pr) else 0
    n_ok = int(targets["passed"].sum())
    intro = (
        f"Runs: {names} ({len(rs)} run(s), {n_days} run-days, {len(r)} {horizon} returns; "
        f"returns never span two days; each run's returns are standardised before pooling)."
    )
    sp_text = (
        "S&P 500 columns: the same statistics on S&P 500 daily close-to-close returns "
        "1999-2018 (`arch.data.sp500`) - a different horizon, shown for reference."
        if ref is not None
        else f"S&P 500 reference not available: {sp_note}"
    )
    fh, fb = _facts_rows(table, facts)
    th, tb = _target_rows(targets)
    if fmt == "md":
        parts = [
            f"# marketsim report: {names}",
            "",
            intro,
            "",
            f"## Stylized facts ({horizon} returns)",
            "",
            _md_table(fh, fb),
            "",
            sp_text,
            "",
            f"## Calibration targets ({n_ok}/{len(targets)} met)",
            "",
            _md_table(th, tb),
            "",
            "## Figures",
            "",
        ]
        for title, p in figs:
            parts += [f"### {title}", "", f"![{title}]({p.name})", ""]
        path = out / "report.md"
        path.write_text("\n".join(parts), encoding="utf-8")
    else:
        e = html.escape
        body = [
            f"<h1>marketsim report: {e(names)}</h1>",
            f"<p>{e(intro)}</p>",
            f"<h2>Stylized facts ({e(horizon)} returns)</h2>",
            _html_table(fh, fb),
            f"<p>{e(sp_text)}</p>",
            f"<h2>Calibration targets ({n_ok}/{len(targets)} met)</h2>",
            _html_table(th, tb),
            "<h2>Figures</h2>",
        ]
        for title, p in figs:
            body += [f"<h3>{e(title)}</h3>", f'<img src="{e(p.name)}" alt="{e(title)}">']
        style = (
            "body{font-family:sans-serif;max-width:1200px;margin:auto}"
            "table{border-collapse:collapse;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 6px}"
            ".pass{color:#2a7d2a}.fail{color:#c0392b;font-weight:bold}img{max-width:100%}"
        )
        page = (
            f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>marketsim report</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
        )
        path = out / "report.html"
        path.write_text(page, encoding="utf-8")
    facts.to_csv(out / "facts.csv", index=False)
    targets.to_csv(out / "targets.csv", index=False)
    logger.info("report written to %s", path)
    return path
