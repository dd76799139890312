"""PNG plots of a run: prices and spread, volume, book depth and P&L by agent type.

Every function takes the recorder's tables as DataFrames (see :mod:`marketsim.recorder`) and
writes one PNG; :func:`plot_run` reads a run directory and makes every plot that applies.
Figures are built with :class:`matplotlib.figure.Figure` and saved through the Agg renderer
(no pyplot, no global backend switch, nothing is shown), so plotting works headless, in
threads, and leaves a notebook's backend alone.

Time axis: the x axis is the simulation step, labelled with the market time of that step
(``HH:MM``; ``MM-DD HH:MM`` for multi-day runs), so overnight gaps take no room; dotted
vertical lines mark each new trading day. Long series are averaged into at most
:data:`MAX_POINTS` buckets before plotting.

Example:
    >>> from analysis.plots import plot_run
    >>> plot_run("runs/quickstart-1-20240102-093000")          # doctest: +SKIP
    [PosixPath('.../price_spread.png'), PosixPath('.../volume.png'), ...]
"""

from __future__ import annotations

import json
import logging
import math
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_POINTS",
    "plot_depth",
    "plot_pnl",
    "plot_price_spread",
    "plot_run",
    "plot_volume",
]

#: Most points drawn per line; longer series are averaged into this many step buckets.
MAX_POINTS = 2000
#: Most trades drawn per asset in the price panel (an even subsample beyond that).
MAX_TRADE_DOTS = 15_000
#: Figure width in inches and resolution of the PNGs.
WIDTH_IN, DPI = 11.0, 110

_BUY, _SELL, _MID = "#2a9d8f", "#e76f51", "#264653"
_BID, _ASK = "#457b9d", "#e63946"


# ---------------------------------------------------------------------------- helpers
def _assets(*frames: pd.DataFrame | None) -> list[str]:
    """Asset names present in the frames' ``asset`` columns.

    Recorder tables hold categoricals whose categories are in slot order, so assets keep the
    scenario's order; plain string columns give the order of first appearance.
    """
    seen: list[str] = []
    for f in frames:
        if f is None or f.empty or "asset" not in f:
            continue
        col = f["asset"]
        if isinstance(col.dtype, pd.CategoricalDtype):
            present = set(col.unique().astype(str))
            names = [str(c) for c in col.cat.categories if str(c) in present]
        else:
            names = list(pd.unique(col.astype(str)))
        for a in names:
            if a and a not in seen:
                seen.append(a)
    return seen


def _of(df: pd.DataFrame, asset: str) -> pd.DataFrame:
    return df[(df["asset"].astype(str) == asset).to_numpy()].sort_values("step", kind="stable")


class _Clock:
    """Maps steps to market time from observed ``(step, time)`` pairs (for axis labels).

    ``step_ns`` is the smallest positive ``dtime / dstep`` between observations (overnight
    pairs give larger ratios), or ``step_seconds`` when given.
    """

    def __init__(
        self, steps: np.ndarray, times: np.ndarray, step_seconds: float | None = None
    ) -> None:
        order = np.argsort(steps, kind="stable")
        s = np.asarray(steps, np.int64)[order]
        t = np.asarray(times).astype("datetime64[ns]").astype(np.int64)[order]
        keep = np.r_[True, s[1:] != s[:-1]] if s.size else np.zeros(0, bool)
        self.steps, self.times = s[keep], t[keep]
        if step_seconds:
            self.step_ns = int(round(step_seconds * 1e9))
        else:
            ds, dt = np.diff(self.steps), np.diff(self.times)
            ratio = dt[ds > 0] / ds[ds > 0]
            self.step_ns = int(ratio.min()) if ratio.size else 1_000_000_000
        days = self.times // 86_400_000_000_000
        self.day_starts = self.steps[1:][days[1:] != days[:-1]] if days.size else days
        self.multi_day = bool(days.size and days[-1] != days[0])

    def time_ns(self, x: float) -> int:
        if not self.steps.size:
            return 0
        i = int(np.clip(np.searchsorted(self.steps, x, side="right") - 1, 0, self.steps.size - 1))
        return int(self.times[i] + (x - self.steps[i]) * self.step_ns)

    def label(self, x: float, _pos: Any = None) -> str:
        ts = pd.Timestamp(self.time_ns(x))
        return ts.strftime("%m-%d %H:%M" if self.multi_day else "%H:%M")

    def apply(self, ax: Any, xlabel: bool = True) -> None:
        """Time labels, day separators and the x label on ``ax``."""
        ax.xaxis.set_major_locator(_TimeLocator(self))
        ax.xaxis.set_major_formatter(FuncFormatter(self.label))
        for d in self.day_starts:
            ax.axvline(d, color="0.5", lw=0.8, ls=":", zorder=0)
        if xlabel:
            ax.set_xlabel("market time" + (" (trading days joined)" if self.multi_day else ""))


#: Candidate spacings of time ticks, in minutes.
_TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 390, 1440)


class _TimeLocator(Locator):
    """Ticks at round market times (every 1, 2, 5, 10, 15, 30, 60, ... minutes), per day."""

    def __init__(self, clock: _Clock, max_ticks: int = 9) -> None:
        self.clock = clock
        self.max_ticks = max_ticks

    def __call__(self) -> list[float]:
        lo, hi = sorted(self.axis.get_view_interval())
        return self.tick_values(lo, hi)

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        c = self.clock
        if not c.steps.size or vmax <= vmin:
            return MaxNLocator(nbins=8, integer=True).tick_values(vmin, vmax)
        span_min = (vmax - vmin) * c.step_ns / 60e9
        minutes = next((m for m in _TICK_MINUTES if span_min / m <= self.max_ticks), None)
        if minutes is None:  # many days: one tick per day start
            return [float(s) for s in c.day_starts if vmin <= s <= vmax] or [float(vmin)]
        every_ns = int(minutes * 60e9)
        starts = np.r_[c.steps[0], c.day_starts]
        ends = np.r_[c.day_starts, max(c.steps[-1], vmax) + 1]
        ticks: list[float] = []
        for a, b in zip(starts, ends, strict=True):
            lo, hi = max(a, vmin), min(b, vmax + 1)
            if lo >= hi:
                continue
            t0 = c.time_ns(a)
            off_steps = math.ceil(((-t0) % every_ns) / c.step_ns)
            stride = every_ns / c.step_ns
            k0 = max(0, math.ceil((lo - a - off_steps) / stride))
            x = a + off_steps + k0 * stride
            while x < hi:
                ticks.append(float(x))
                x += stride
        return ticks


def _clock_of(*frames: pd.DataFrame | None, step_seconds: float | None = None) -> _Clock:
    parts = [f[["step", "time"]] for f in frames if f is not None and not f.empty and "time" in f]
    if not parts:
        return _Clock(np.zeros(0, np.int64), np.zeros(0, "datetime64[ns]"), step_seconds)
    both = pd.concat(parts, ignore_index=True)
    return _Clock(both["step"].to_numpy(), both["time"].to_numpy(), step_seconds)


def _bucket(x: np.ndarray, ys: Sequence[np.ndarray], max_points: int = MAX_POINTS):
    """Average ``ys`` over equal step buckets when ``x`` has more than ``max_points`` points.

    Returns (bucket x (mean step), list of bucket means, NaNs ignored). O(n).
    """
    if x.size <= max_points:
        return x, list(ys)
    edges = np.linspace(x[0], x[-1] + 1, max_points + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max_points - 1)
    counts = np.bincount(idx, minlength=max_points)
    ok = counts > 0
    bx = (np.bincount(idx, weights=x, minlength=max_points)[ok] / counts[ok]).astype(float)
    out = []
    for y in ys:
        y = np.asarray(y, float)
        fin = np.isfinite(y)
        s = np.bincount(idx[fin], weights=y[fin], minlength=max_points)
        c = np.bincount(idx[fin], minlength=max_points)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(c > 0, s / np.maximum(c, 1), np.nan)[ok])
    return bx, out


def _style(ax: Any) -> None:
    ax.grid(True, alpha=0.3, lw=0.6)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _empty(path: str | Path, title: str, text: str) -> Path:
    fig = Figure(figsize=(WIDTH_IN, 3), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", color="0.4", transform=ax.transAxes)
    return _save(fig, path)


# ---------------------------------------------------------------------------- price & spread
def plot_price_spread(
    quotes: pd.DataFrame,
    trades: pd.DataFrame | None,
    path: str | Path,
    tick_sizes: Mapping[str, float] | None = None,
    step_seconds: float | None = None,
) -> Path:
    """Mid price with the bid-ask band and trades, and the spread below it; one panel per asset.

    Trades are dots coloured by aggressor (buyer- or seller-initiated). The spread is shown in
    ticks when the asset's tick size is known (``tick_sizes``), else in currency, with its
    mean as a dashed line. Series longer than :data:`MAX_POINTS` are bucket-averaged.

    Args:
        quotes: ``quotes`` table (step, time, asset, bid, ask, mid).
        trades: ``trades`` table (step, time, asset, price, qty, aggressor), or None.
        path: PNG file to write.
        tick_sizes: Tick size per symbol.
        step_seconds: Step length (for the time labels; inferred from the data if None).

    Returns:
        ``path``. Complexity: O(rows).
    """
    trades = trades if trades is not None else pd.DataFrame()
    assets = _assets(quotes, trades)
    title = "Price and spread"
    if not assets:
        return _empty(path, title, "no quotes recorded")
    clock = _clock_of(quotes, trades, step_seconds=step_seconds)
    n = len(assets)
    fig = Figure(figsize=(WIDTH_IN, 3.6 * n + 0.4), layout="constrained")
    gs = fig.add_gridspec(2 * n, 1, height_ratios=[3, 1.2] * n)
    ax0 = None
    for i, sym in enumerate(assets):
        ax = fig.add_subplot(gs[2 * i], sharex=ax0)
        ax0 = ax0 or ax
        axs = fig.add_subplot(gs[2 * i + 1], sharex=ax0)
        q = _of(quotes, sym) if not quotes.empty else quotes
        x = q["step"].to_numpy(float) if len(q) else np.zeros(0)
        bid = q["bid"].to_numpy(float) if len(q) else x
        ask = q["ask"].to_numpy(float) if len(q) else x
        two_sided = np.isfinite(bid) & np.isfinite(ask)
        bid, ask = np.where(two_sided, bid, np.nan), np.where(two_sided, ask, np.nan)
        mid = (bid + ask) * 0.5
        tick = (tick_sizes or {}).get(sym)
        spread = (ask - bid) / tick if tick else ask - bid
        bx, (bb, ba, bm, bs) = _bucket(x, [bid, ask, mid, spread])
        ax.fill_between(bx, bb, ba, step="mid", color=_MID, alpha=0.18, lw=0, label="bid-ask")
        ax.plot(bx, bm, color=_MID, lw=0.9, label="mid")
        t = _of(trades, sym) if not trades.empty else trades
        if len(t):
            stride = max(1, math.ceil(len(t) / MAX_TRADE_DOTS))
            t = t.iloc[::stride]
            buy = t["aggressor"].to_numpy() > 0
            tx, tp = t["step"].to_numpy(float), t["price"].to_numpy(float)
            kw = {"s": 5, "alpha": 0.55, "linewidths": 0, "rasterized": True}
            ax.scatter(tx[buy], tp[buy], color=_BUY, label="trade, buyer-initiated", **kw)
            ax.scatter(tx[~buy], tp[~buy], color=_SELL, label="trade, seller-initiated", **kw)
        ax.set_ylabel("price")
        ax.set_title(f"{sym}: mid, bid-ask band and trades", loc="left", fontsize=11)
        if i == 0:  # the same entries for every asset
            ax.legend(
                loc="lower right",
                bbox_to_anchor=(1.0, 1.0),
                fontsize=8,
                ncols=4,
                frameon=False,
                markerscale=2,
                borderaxespad=0.1,
            )
        _style(ax)
        axs.plot(bx, bs, color=_ASK, lw=0.8, drawstyle="steps-mid")
        fin = spread[np.isfinite(spread)]
        if fin.size:
            m = float(fin.mean())
            axs.axhline(m, color="0.3", lw=0.8, ls="--", label=f"mean {m:.2f}")
            axs.legend(loc="upper right", fontsize=8, frameon=False)
            axs.set_ylim(bottom=0)
        axs.set_ylabel("spread\n(ticks)" if tick else "spread")
        _style(axs)
        ax.tick_params(labelbottom=False)
        clock.apply(ax, xlabel=False)
        clock.apply(axs, xlabel=i == n - 1)
        if i < n - 1:
            axs.tick_params(labelbottom=False)
    fig.suptitle(title, fontsize=13)
    return _save(fig, path)


# ---------------------------------------------------------------------------- volume
def plot_volume(
    trades: pd.DataFrame,
    path: str | Path,
    bar_minutes: int | None = None,
    step_seconds: float | None = None,
    times: pd.DataFrame | None = None,
) -> Path:
    """Traded volume per time bar, buyer- and seller-initiated stacked; one panel per asset.

    Args:
        trades: ``trades`` table (step, time, asset, qty, aggressor).
        path: PNG file to write.
        bar_minutes: Bar length in minutes; default 1, or coarser (5, 15, 30, 60) so that
            there are at most ~1,500 bars.
        step_seconds: Step length (time labels and bar placement; inferred if None).
        times: A table with ``step`` and ``time`` on every step or a regular grid (e.g.
            quotes) for the time axis; default the trades themselves, whose first trade of a
            day may come some steps after the open.

    Returns:
        ``path``. Complexity: O(rows).
    """
    assets = _assets(trades)
    title = "Traded volume"
    if not assets:
        return _empty(path, title, "no trades")
    clock = _clock_of(trades, times, step_seconds=step_seconds)
    tm = trades["time"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    span_min = (clock.steps[-1] - clock.steps[0] + 1) * clock.step_ns / 60e9
    if bar_minutes is None:
        bar_minutes = next((b for b in (1, 5, 15, 30, 60) if span_min / b <= 1500), 120)
    bar_ns = int(bar_minutes * 60e9)
    step = trades["step"].to_numpy(np.int64)
    # bars start at round times, cut at the open and close of each trading day
    first = min(int(clock.steps[0]), int(step.min()))
    starts = np.r_[first, clock.day_starts].astype(np.int64)
    day = np.clip(np.searchsorted(starts, step, side="right") - 1, 0, starts.size - 1)
    nxt = np.r_[starts[1:], np.iinfo(np.int64).max][day]
    bar0 = np.maximum(step - (tm % bar_ns) // clock.step_ns, starts[day])
    bar1 = np.minimum(step - (tm % bar_ns) // clock.step_ns + bar_ns // clock.step_ns, nxt)
    n = len(assets)
    fig = Figure(figsize=(WIDTH_IN, 2.6 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    names = trades["asset"].astype(str).to_numpy()
    qty = trades["qty"].to_numpy(np.int64)
    buy_qty = np.where(trades["aggressor"].to_numpy() > 0, qty, 0)
    for i, (ax, sym) in enumerate(zip(axes, assets, strict=True)):
        sel = names == sym
        df = pd.DataFrame({"b0": bar0[sel], "b1": bar1[sel], "buy": buy_qty[sel], "qty": qty[sel]})
        g = df.groupby(["b0", "b1"]).sum().reset_index().sort_values("b0")
        # one stairs per side (fast for thousands of bars): bins [b0, b1] with zero-height
        # gaps [b1, next b0] between them
        edges = np.empty(2 * len(g))
        edges[0::2], edges[1::2] = g["b0"].to_numpy(float), g["b1"].to_numpy(float)
        buy = np.zeros(edges.size - 1)
        tot = np.zeros(edges.size - 1)
        buy[0::2], tot[0::2] = g["buy"].to_numpy(float), g["qty"].to_numpy(float)
        ax.stairs(buy, edges, fill=True, color=_BUY, label="buyer-initiated")
        ax.stairs(tot, edges, baseline=buy, fill=True, color=_SELL, label="seller-initiated")
        ax.set_ylim(bottom=0)
        ax.set_title(
            f"{sym}: {int(df['qty'].sum()):,} lots in {int(sel.sum()):,} trades",
            loc="left",
            fontsize=11,
        )
        ax.set_ylabel(f"lots per {bar_minutes} min")
        ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
        _style(ax)
        clock.apply(ax, xlabel=i == n - 1)
    fig.suptitle(title, fontsize=13)
    return _save(fig, path)


# ---------------------------------------------------------------------------- depth
def plot_depth(
    quotes: pd.DataFrame,
    path: str | Path,
    l2: pd.DataFrame | None = None,
    tick_sizes: Mapping[str, float] | None = None,
    step_seconds: float | None = None,
    max_rows: int = 300,
) -> Path:
    """Order-book depth over time; one panel per asset.

    With an ``l2`` table: a heatmap of resting quantity by price level and snapshot (bids
    blue, asks red, colour scale clipped at the 99th percentile) with the mid on top. Without
    one: the quantities at the best bid and ask over time (from ``quotes``).

    Args:
        quotes: ``quotes`` table (for the mid line or the top-of-book quantities).
        path: PNG file to write.
        l2: ``l2`` table (step, time, asset, side, level, price, qty), or None.
        tick_sizes: Tick size per symbol (price grid of the heatmap; inferred if missing).
        step_seconds: Step length (time labels; inferred if None).
        max_rows: Most price rows of a heatmap; wider price ranges are binned.

    Returns:
        ``path``. Complexity: O(rows + snapshots * max_rows).
    """
    use_l2 = l2 is not None and not l2.empty
    assets = _assets(l2 if use_l2 else None, quotes)
    title = "Order-book depth" if use_l2 else "Top-of-book depth"
    if not assets:
        return _empty(path, title, "no quotes recorded")
    clock = _clock_of(quotes, l2 if use_l2 else None, step_seconds=step_seconds)
    n = len(assets)
    fig = Figure(figsize=(WIDTH_IN, 3.0 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    for i, (ax, sym) in enumerate(zip(axes, assets, strict=True)):
        q = _of(quotes, sym) if not quotes.empty else quotes
        d = _of(l2, sym) if use_l2 else None
        if d is not None and len(d):
            _depth_heatmap(fig, ax, d, q, (tick_sizes or {}).get(sym), max_rows)
            ax.set_title(f"{sym}: resting quantity by price", loc="left", fontsize=11)
        else:
            x = q["step"].to_numpy(float)
            bx, (bq, aq) = _bucket(x, [q["bid_qty"].to_numpy(float), q["ask_qty"].to_numpy(float)])
            ax.plot(bx, bq, color=_BID, lw=0.8, label="best bid qty")
            ax.plot(bx, aq, color=_ASK, lw=0.8, label="best ask qty")
            ax.set_ylim(bottom=0)
            ax.set_ylabel("lots at best price")
            ax.set_title(f"{sym}: quantity at the best bid and ask", loc="left", fontsize=11)
            ax.legend(loc="upper right", fontsize=8, frameon=False, ncols=2)
            _style(ax)
        clock.apply(ax, xlabel=i == n - 1)
    if use_l2 and clock.steps.size:
        axes[0].set_xlim(clock.steps[0], clock.steps[-1] + 1)
    fig.suptitle(title, fontsize=13)
    return _save(fig, path)


def _depth_heatmap(
    fig: Figure, ax: Any, d: pd.DataFrame, q: pd.DataFrame, tick: float | None, max_rows: int
) -> None:
    price = d["price"].to_numpy(float)
    if not tick:
        diffs = np.diff(np.unique(np.round(price, 10)))
        tick = float(diffs.min()) if diffs.size else 1.0
    ticks = np.rint(price / tick).astype(np.int64)
    lo, hi = int(ticks.min()), int(ticks.max())
    rows = hi - lo + 1
    per_row = max(1, math.ceil(rows / max_rows))
    r = (ticks - lo) // per_row
    n_rows = int(r.max()) + 1
    snaps = np.unique(d["step"].to_numpy(np.int64))
    c = np.searchsorted(snaps, d["step"].to_numpy(np.int64))
    qty = d["qty"].to_numpy(float) * np.where(d["side"].to_numpy() > 0, 1.0, -1.0)
    grid = np.zeros((n_rows, snaps.size))
    np.add.at(grid, (r, c), qty)
    grid[grid == 0] = np.nan
    # x edges: each snapshot holds until the next one
    gap = np.diff(snaps)
    last = gap[-1] if gap.size else 1
    xe = np.r_[snaps, snaps[-1] + last].astype(float)
    ye = (lo + np.arange(n_rows + 1) * per_row - 0.5) * tick
    fin = np.abs(grid[np.isfinite(grid)])
    vmax = float(np.percentile(fin, 99)) if fin.size else 1.0
    norm = mcolors.TwoSlopeNorm(vmin=-max(vmax, 1), vcenter=0.0, vmax=max(vmax, 1))
    mesh = ax.pcolormesh(xe, ye, grid, cmap="RdBu", norm=norm, shading="flat", rasterized=True)
    cb = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.04)
    cb.set_label("lots (+ bid, - ask)", fontsize=8)
    if len(q):
        x = q["step"].to_numpy(float)
        bx, (bm,) = _bucket(x, [q["mid"].to_numpy(float)])
        ax.plot(bx, bm, color="k", lw=0.7, alpha=0.8, label="mid")
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.set_ylabel("price" + (f" ({per_row} ticks per row)" if per_row > 1 else ""))


# ---------------------------------------------------------------------------- P&L
def plot_pnl(
    accounts: pd.DataFrame,
    path: str | Path,
    times: pd.DataFrame | None = None,
    exclude: Sequence[str] = ("exchange",),
    step_seconds: float | None = None,
) -> Path:
    """P&L by agent type over time: mean per agent with its interquartile band, and total.

    P&L of an account at a snapshot is its equity minus its equity at its first snapshot.

    Args:
        accounts: ``accounts`` table (step, account, agent_type, equity).
        path: PNG file to write.
        times: Any table with ``step`` and ``time`` columns (e.g. quotes) to label the x axis
            with market time; without it the axis shows steps.
        exclude: Agent types left out (the exchange's fee account by default).
        step_seconds: Step length (time labels; inferred if None).

    Returns:
        ``path``. Complexity: O(snapshots * accounts).
    """
    title = "P&L by agent type"
    a = accounts if not accounts.empty else None
    if a is not None:
        a = a[~a["agent_type"].astype(str).isin(list(exclude))]
    if a is None or a.empty:
        return _empty(path, title, "no account snapshots")
    wide = a.pivot_table(index="step", columns="account", values="equity", aggfunc="last")
    base = wide.bfill().iloc[0]
    pnl = wide - base
    types = a.groupby("account")["agent_type"].last().astype(str)
    order = list(dict.fromkeys(a.sort_values("account")["agent_type"].astype(str)))
    x = wide.index.to_numpy(float)
    fig = Figure(figsize=(WIDTH_IN, 6.4), layout="constrained")
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    colors = matplotlib.colormaps["tab10"]
    for k, typ in enumerate(order):
        cols = types.index[types == typ]
        sub = pnl[cols].to_numpy(float)
        col = colors(k % 10)
        with warnings.catch_warnings():  # all-NaN rows: accounts opened later
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(sub, axis=1)
            q25, q75 = np.nanpercentile(sub, [25, 75], axis=1)
            total = np.nansum(sub, axis=1)
        ax1.plot(x, mean, color=col, lw=1.2, label=f"{typ} (n={len(cols)})")
        if len(cols) > 1:
            ax1.fill_between(x, q25, q75, color=col, alpha=0.15, lw=0)
        ax2.plot(x, total, color=col, lw=1.2, label=typ)
    for ax in (ax1, ax2):
        ax.axhline(0, color="0.3", lw=0.7)
        _style(ax)
    ax1.set_ylabel("P&L per agent (currency)")
    ax1.set_title("mean per agent, interquartile band shaded", loc="left", fontsize=11)
    ax1.legend(loc="upper left", fontsize=8, frameon=False, ncols=min(4, len(order)))
    ax2.set_ylabel("total P&L (currency)")
    ax2.set_title("total of each type", loc="left", fontsize=11)
    if times is not None and not times.empty:
        _clock_of(times, step_seconds=step_seconds).apply(ax2)
        _clock_of(times, step_seconds=step_seconds).apply(ax1, xlabel=False)
    else:
        ax2.set_xlabel("step")
    fig.suptitle(title, fontsize=13)
    return _save(fig, path)


# ---------------------------------------------------------------------------- run dir
def _read(run_dir: Path, table: str) -> pd.DataFrame | None:
    p = run_dir / f"{table}.parquet"
    return pd.read_parquet(p) if p.is_file() else None


def _run_info(run_dir: Path) -> tuple[dict[str, float], float | None]:
    """Tick size per symbol and step seconds, from scenario.toml or summary.json."""
    ticks: dict[str, float] = {}
    step_seconds = None
    sc = run_dir / "scenario.toml"
    if sc.is_file():
        try:
            data = tomllib.loads(sc.read_text(encoding="utf-8"))
            for a in data.get("assets", []):
                ticks[str(a["symbol"])] = float(a.get("tick_size", 0.01))
            step_seconds = float(data.get("simulation", {}).get("step_seconds", 1.0))
        except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("plot_run: cannot read %s: %s", sc, exc)
    sm = run_dir / "summary.json"
    if sm.is_file() and (not ticks or step_seconds is None):
        try:
            s = json.loads(sm.read_text(encoding="utf-8"))
            for sym, a in (s.get("assets") or {}).items():
                if a.get("tick_size"):
                    ticks.setdefault(sym, float(a["tick_size"]))
            step_seconds = step_seconds or s.get("step_seconds")
        except (json.JSONDecodeError, AttributeError) as exc:
            logger.warning("plot_run: cannot read %s: %s", sm, exc)
    return ticks, step_seconds


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Make every plot that applies to a run directory; return the PNG paths written.

    Reads ``quotes``, ``trades``, ``accounts`` and ``l2`` Parquet files (those present) and
    tick sizes from ``scenario.toml`` (or ``summary.json``), and writes ``price_spread.png``,
    ``volume.png`` (if there are trades), ``depth.png`` and ``pnl.png`` (if there are account
    snapshots) into ``out_dir`` (default: the run directory).

    Complexity: O(rows of the tables).
    """
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    ticks, step_seconds = _run_info(run_dir)
    quotes, trades = _read(run_dir, "quotes"), _read(run_dir, "trades")
    accounts, l2 = _read(run_dir, "accounts"), _read(run_dir, "l2")
    written: list[Path] = []
    kw = {"step_seconds": step_seconds}
    if quotes is not None and not quotes.empty:
        written.append(plot_price_spread(quotes, trades, out / "price_spread.png", ticks, **kw))
        written.append(plot_depth(quotes, out / "depth.png", l2, ticks, **kw))
    else:
        logger.info("plot_run: no quotes in %s; price and depth plots skipped", run_dir)
    if trades is not None and not trades.empty:
        written.append(plot_volume(trades, out / "volume.png", times=quotes, **kw))
    else:
        logger.info("plot_run: no trades in %s; volume plot skipped", run_dir)
    if accounts is not None and not accounts.empty:
        times = quotes if quotes is not None and not quotes.empty else trades
        written.append(plot_pnl(accounts, out / "pnl.png", times, **kw))
    else:
        logger.info("plot_run: no account snapshots in %s; P&L plot skipped", run_dir)
    return written
