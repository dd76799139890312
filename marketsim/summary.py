"""Run summary: headline statistics of a run, as a JSON-able dict and as a plain-text table.

:func:`summarize` reads a model's recorder tables (quotes, trades, accounts, positions) and a
few counters (orders, rejects, fees) and returns the content of ``summary.json``;
:func:`summarize_frames` does the same from DataFrames alone (e.g. the Parquet files of a run
directory). :func:`format_summary_table` renders a summary as an aligned text table, and
:func:`to_json` writes strict JSON (``NaN`` and infinities become ``null``).

Statistics (per asset ``a``; rows of ``quotes`` with both sides present are "valid"):

* return: ``m_last / m_first - 1`` with ``m`` the first and last valid mid.
* per-step volatility (realised, robust to gaps in the quote series):
  ``sigma_step = sqrt(sum_i r_i^2 / sum_i dstep_i)`` where ``r_i = ln(m_i / m_{i-1})`` over
  consecutive valid mids of the same trading day and ``dstep_i`` the steps between them
  (overnight returns are left out). Annualised: ``sigma_step * sqrt(steps_per_day * 252)``.
* spread: ``ask - bid`` over valid rows, in ticks (``/ tick_size``) and in basis points
  (``/ mid * 1e4``); mean and median over the quote rows (sampled every ``quotes_every`` steps,
  so the mean is a time average).
* volume: ``sum(qty)`` of the asset's trades in lots; trades: their count;
  VWAP: ``sum(price * qty) / sum(qty)``.

Per agent type (the ``agent_type`` label of each account, i.e. the scenario group name; the
exchange's fee account 0 is left out and its income reported as ``fees_collected``):
``pnl_j = equity_j(last snapshot) - equity_j(first snapshot)`` for every account ``j`` of the
type (its first and last rows of the ``accounts`` table); count, total, mean, std (sample,
``ddof=1``; ``null`` for one account), min and max of ``pnl_j``; the mean of
``pnl_j / equity_j(first)`` (accounts with positive initial equity); total fees paid; and the
mean position per asset in lots at the last snapshot.

Example:
    >>> s = summarize(model)                       # doctest: +SKIP
    >>> print(format_summary_table(s))             # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from marketsim import __version__

if TYPE_CHECKING:
    from marketsim.model import MarketModel

__all__ = [
    "TRADING_DAYS_PER_YEAR",
    "asset_stats",
    "agent_type_stats",
    "format_summary_table",
    "summarize",
    "summarize_frames",
    "to_json",
    "write_summary",
]

#: Trading days per year used to annualise volatility.
TRADING_DAYS_PER_YEAR = 252
#: Agent type of the exchange's fee account (left out of the per-type P&L).
EXCHANGE_TYPE = "exchange"


# ---------------------------------------------------------------------------- helpers
def _f(x: Any) -> float | None:
    """A finite float, or None (NaN, inf, None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _strict(obj: Any) -> Any:
    """Copy of ``obj`` with numpy scalars made plain and non-finite floats made None."""
    if isinstance(obj, Mapping):
        return {str(k): _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _f(obj)
    return obj


def _price(x: float) -> float:
    """``x`` rounded to 12 significant digits (drops float noise of ``(bid + ask) / 2``)."""
    return float(f"{x:.12g}") if math.isfinite(x) else x


def _asset_codes(col: pd.Series) -> pd.Series:
    """Asset column as plain strings (recorder columns are categoricals)."""
    return col.astype(str)


# ---------------------------------------------------------------------------- per asset
def asset_stats(
    quotes: pd.DataFrame,
    trades: pd.DataFrame,
    tick_sizes: Mapping[str, float],
    steps_per_day: int,
    symbols: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Price, volatility, spread and volume statistics per asset (see the module docstring).

    Args:
        quotes: ``quotes`` table (step, asset, bid, ask, mid, ...).
        trades: ``trades`` table (step, asset, price, qty, ...).
        tick_sizes: Tick size per symbol (spreads in ticks are None for unknown symbols).
        steps_per_day: Steps of one trading day (to drop overnight returns and annualise).
        symbols: Assets to report, in order; default: those in ``tick_sizes``, then any other
            symbol that appears in the tables.

    Returns:
        ``{symbol: {...}}`` with keys symbol, tick_size, first_mid, last_mid, return,
        volatility_per_step, volatility_annualised, n_returns, spread_mean_ticks,
        spread_median_ticks, spread_mean_bps, spread_median_bps, volume, trades, vwap,
        notional. Floats may be NaN where there is no data.

    Complexity: O(rows) (one sort of the quote rows).
    """
    q_asset = _asset_codes(quotes["asset"]) if len(quotes) else pd.Series([], dtype=str)
    t_asset = _asset_codes(trades["asset"]) if len(trades) else pd.Series([], dtype=str)
    if symbols is None:
        seen = list(tick_sizes)
        for s in pd.unique(pd.concat([q_asset, t_asset], ignore_index=True)):
            if s and s not in seen:
                seen.append(s)
        symbols = seen
    ann = math.sqrt(steps_per_day * TRADING_DAYS_PER_YEAR)
    out: dict[str, dict[str, Any]] = {}
    for sym in symbols:
        tick = tick_sizes.get(sym)
        q = quotes[(q_asset == sym).to_numpy()] if len(quotes) else quotes
        q = q.sort_values("step", kind="stable")
        bid = q["bid"].to_numpy(float)
        ask = q["ask"].to_numpy(float)
        valid = np.isfinite(bid) & np.isfinite(ask)
        mid = (bid[valid] + ask[valid]) * 0.5
        steps = q["step"].to_numpy(np.int64)[valid]
        spread = ask[valid] - bid[valid]
        first_mid = mid[0] if mid.size else np.nan
        last_mid = mid[-1] if mid.size else np.nan
        if mid.size >= 2:
            same_day = (steps[1:] // steps_per_day) == (steps[:-1] // steps_per_day)
            dstep = (steps[1:] - steps[:-1])[same_day]
            r = np.diff(np.log(mid))[same_day]
            keep = dstep > 0
            r, dstep = r[keep], dstep[keep]
            vol = math.sqrt(float(np.sum(r * r)) / float(np.sum(dstep))) if r.size else np.nan
            n_ret = int(r.size)
        else:
            vol, n_ret = np.nan, 0
        t = trades[(t_asset == sym).to_numpy()] if len(trades) else trades
        qty = t["qty"].to_numpy(np.int64)
        px = t["price"].to_numpy(float)
        volume = int(qty.sum())
        notional = float(np.dot(px, qty)) if qty.size else 0.0

        def _stat(fn, x):
            return float(fn(x)) if x.size else np.nan

        # spreads are whole ticks: round off the float noise of (ask - bid) / tick
        ticks = np.round(spread / tick, 6) if tick else np.full(spread.shape, np.nan)
        bps = spread / mid * 1e4 if mid.size else spread
        out[sym] = {
            "symbol": sym,
            "tick_size": tick,
            "first_mid": _price(first_mid),
            "last_mid": _price(last_mid),
            "return": last_mid / first_mid - 1.0 if mid.size else np.nan,
            "volatility_per_step": vol,
            "volatility_annualised": vol * ann,
            "n_returns": n_ret,
            "spread_mean_ticks": _stat(np.mean, ticks),
            "spread_median_ticks": _stat(np.median, ticks),
            "spread_mean_bps": _stat(np.mean, bps),
            "spread_median_bps": _stat(np.median, bps),
            "volume": volume,
            "trades": int(qty.size),
            "vwap": _price(notional / volume) if volume else np.nan,
            "notional": _price(notional),
        }
    return out


# ---------------------------------------------------------------------------- per agent type
def agent_type_stats(
    accounts: pd.DataFrame,
    positions: pd.DataFrame | None = None,
    fees_by_account: np.ndarray | None = None,
    symbols: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:
    """P&L, fees and final positions per agent type (see the module docstring).

    Args:
        accounts: ``accounts`` table (step, account, agent_type, cash, equity).
        positions: ``positions`` table (step, account, asset, qty), for mean final positions.
        fees_by_account: Fees paid per account id in currency (e.g. the ledger's), optional.
        symbols: Assets whose mean final position is reported (plus any found in
            ``positions``).

    Returns:
        ``{agent_type: {...}}`` with keys agent_type, count, initial_equity, final_equity,
        pnl_total, pnl_mean, pnl_std, pnl_min, pnl_max, return_mean, fees_total,
        final_position_mean (``{symbol: lots}``); types in order of first appearance.

    Complexity: O(rows log rows).
    """
    if accounts.empty:
        return {}
    a = accounts[["step", "account", "agent_type", "equity"]].copy()
    a["agent_type"] = a["agent_type"].astype(str)
    a = a[a["agent_type"] != EXCHANGE_TYPE].sort_values(["account", "step"], kind="stable")
    if a.empty:
        return {}
    g = a.groupby("account", sort=True)
    per = pd.DataFrame(
        {
            "agent_type": g["agent_type"].last(),
            "first_step": g["step"].first(),
            "initial": g["equity"].first(),
            "final": g["equity"].last(),
        }
    )
    per["pnl"] = per["final"] - per["initial"]
    pos_init = per["initial"] > 0
    per["ret"] = np.where(pos_init, per["pnl"] / per["initial"].where(pos_init, 1.0), np.nan)
    last_step = int(a["step"].max())
    final_pos: dict[int, dict[str, int]] = {}
    syms = list(symbols)
    if positions is not None and not positions.empty:
        p = positions[positions["step"].to_numpy() == last_step]
        p_asset = _asset_codes(p["asset"])
        for s in pd.unique(p_asset):
            if s not in syms:
                syms.append(s)
        for acc, sym, qty in zip(
            p["account"].to_numpy(), p_asset.to_numpy(), p["qty"].to_numpy(), strict=True
        ):
            final_pos.setdefault(int(acc), {})[sym] = int(qty)
    order = list(dict.fromkeys(a.sort_values("account")["agent_type"]))
    out: dict[str, dict[str, Any]] = {}
    for typ in order:
        sub = per[per["agent_type"] == typ]
        pnl = sub["pnl"].to_numpy(float)
        accs = sub.index.to_numpy()
        n = int(pnl.size)
        ret = sub["ret"].to_numpy(float)
        ret = ret[np.isfinite(ret)]
        fees = None
        if fees_by_account is not None:
            ok = accs[accs < len(fees_by_account)]
            fees = float(np.sum(np.asarray(fees_by_account)[ok]))
        pos_mean = {s: sum(final_pos.get(int(acc), {}).get(s, 0) for acc in accs) / n for s in syms}
        out[typ] = {
            "agent_type": typ,
            "count": n,
            "initial_equity": float(sub["initial"].sum()),
            "final_equity": float(sub["final"].sum()),
            "pnl_total": float(pnl.sum()),
            "pnl_mean": float(pnl.mean()),
            "pnl_std": float(pnl.std(ddof=1)) if n > 1 else np.nan,
            "pnl_min": float(pnl.min()),
            "pnl_max": float(pnl.max()),
            "return_mean": float(ret.mean()) if ret.size else np.nan,
            "fees_total": fees,
            "final_position_mean": pos_mean,
        }
    return out


# ---------------------------------------------------------------------------- whole run
def summarize_frames(
    quotes: pd.DataFrame,
    trades: pd.DataFrame,
    accounts: pd.DataFrame,
    positions: pd.DataFrame | None,
    *,
    tick_sizes: Mapping[str, float],
    steps_per_day: int,
    step_seconds: float,
    header: Mapping[str, Any] | None = None,
    fees_by_account: np.ndarray | None = None,
) -> dict[str, Any]:
    """Summary of a run from its tables (what :func:`summarize` does after reading them).

    Args:
        quotes, trades, accounts, positions: The recorder tables.
        tick_sizes: Tick size per symbol, in asset order.
        steps_per_day, step_seconds: The session clock.
        header: Run-level entries placed first (scenario, seed, counters, ...).
        fees_by_account: Fees paid per account id in currency, optional.

    Returns:
        A JSON-able dict with plain Python scalars; non-finite floats are None.

    Complexity: O(rows log rows).
    """
    assets = asset_stats(quotes, trades, tick_sizes, steps_per_day)
    types = agent_type_stats(accounts, positions, fees_by_account, list(assets))
    out: dict[str, Any] = dict(header or {})
    out.setdefault("steps_per_day", int(steps_per_day))
    out.setdefault("step_seconds", float(step_seconds))
    out["trades"] = int(len(trades))
    out["volume"] = int(trades["qty"].sum()) if len(trades) else 0
    out["assets"] = assets
    out["agent_types"] = types
    return _strict(out)


def summarize(model: MarketModel) -> dict[str, Any]:
    """The ``summary.json`` content of a model's run so far (see the module docstring).

    Reads the recorder's tables (finishing open Parquet writers; call after
    :meth:`MarketModel.close` for a finished run) and the exchange's and ledger's counters.

    Returns:
        Dict with keys marketsim_version, scenario, scenario_hash, seed, steps, steps_per_day,
        step_seconds, days, wall_seconds, steps_per_second, orders, rejects (reason -> count),
        liquidations, fees_collected, trades, volume, assets ({symbol: stats}) and
        agent_types ({type: stats}). Strict-JSON-able (no NaN: None).

    Raises:
        ConfigError: the model was built with ``record=False``.

    Complexity: O(rows recorded).
    """
    from marketsim.ledger import CASH_SCALE

    sc = model.scenario
    session = model.session
    quotes = model.quotes()
    trades = model.trades()
    rec = model.recorder
    accounts = rec.frame("accounts")
    positions = rec.frame("positions")
    wall = float(model.wall_seconds)
    steps = int(model.t)
    header = {
        "marketsim_version": __version__,
        "scenario": sc.simulation.name,
        "scenario_hash": model.scenario_hash,
        "seed": int(model.seed),
        "steps": steps,
        "steps_per_day": int(session.steps_per_day),
        "step_seconds": float(session.step_seconds),
        "days": math.ceil(steps / session.steps_per_day) if steps else 0,
        "wall_seconds": wall,
        "steps_per_second": steps / wall if wall > 0 else None,
        "orders": int(model.exchange.n_orders),
        "rejects": {k: int(v) for k, v in sorted(model.exchange.rejects.items())},
        "liquidations": int(getattr(model, "liquidations", 0)),
        "fees_collected": model.ledger.fees_collected / CASH_SCALE,
    }
    fees = model.ledger.fees_paid_units / CASH_SCALE
    ticks = {a.symbol: a.tick_size for a in sc.assets}
    return summarize_frames(
        quotes,
        trades,
        accounts,
        positions,
        tick_sizes=ticks,
        steps_per_day=session.steps_per_day,
        step_seconds=session.step_seconds,
        header=header,
        fees_by_account=fees,
    )


def to_json(summary: Mapping[str, Any]) -> str:
    """Strict JSON text of a summary (non-finite floats as ``null``), indented. O(size)."""
    return json.dumps(_strict(summary), indent=2, allow_nan=False) + "\n"


def write_summary(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Write :func:`to_json` of ``summary`` to ``path``; return the path. O(size)."""
    path = Path(path)
    path.write_text(to_json(summary), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- text table
def _num(x: Any, fmt: str, missing: str = "-") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return missing
    return format(x, fmt)


def _pct(x: Any, digits: int = 2) -> str:
    return _num(None if x is None else 100.0 * x, f"+.{digits}f") + ("%" if x is not None else "")


def _money(x: Any) -> str:
    """Currency with thousands separators; 2 decimals below 1,000 in magnitude."""
    if x is None or not math.isfinite(x):
        return "-"
    return format(x, "+,.2f") if abs(x) < 1000 else format(x, "+,.0f")


def _price_decimals(tick: Any) -> int:
    """Decimals that show a multiple of ``tick`` exactly, at least 2 and at most 8."""
    if not isinstance(tick, int | float) or not math.isfinite(tick) or tick <= 0:
        return 2
    for d in range(2, 9):
        x = tick * 10**d
        if abs(x - round(x)) < 1e-6 * max(1.0, x):
            return d
    return 8


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned text table: the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(headers), rule, *(line(r) for r in rows)]


def format_summary_table(summary: Mapping[str, Any]) -> str:
    """Render a summary (from :func:`summarize`) as aligned plain text. O(assets + types).

    Sections: a run header (scenario, seed, steps, speed, order counts and rejects), one row
    per asset and one row per agent type.
    """
    s = summary
    lines: list[str] = []
    title = f"Run {s.get('scenario', '?')}  seed {s.get('seed', '?')}"
    if s.get("scenario_hash"):
        title += f"  scenario {s['scenario_hash']}"
    lines.append(title)
    steps = s.get("steps")
    sps = s.get("steps_per_second")
    head = f"steps {steps:,}" if isinstance(steps, int) else "steps ?"
    if s.get("step_seconds") is not None:
        head += f" x {s['step_seconds']:g} s"
    if s.get("days"):
        head += f" ({s['days']} day{'s' if s['days'] != 1 else ''})"
    if s.get("wall_seconds") is not None:
        head += f"   wall {s['wall_seconds']:.1f} s"
    if sps:
        head += f" ({sps:,.0f} steps/s)"
    lines.append(head)
    counts = f"orders {s.get('orders', 0):,}   trades {s.get('trades', 0):,}"
    counts += f"   volume {s.get('volume', 0):,} lots"
    if s.get("liquidations"):
        counts += f"   liquidations {s['liquidations']:,}"
    if s.get("fees_collected") is not None:
        counts += f"   exchange fees {_money(s['fees_collected']).lstrip('+')}"
    lines.append(counts)
    rejects = s.get("rejects") or {}
    n_rej = sum(rejects.values())
    rej_text = ", ".join(f"{k} {v:,}" for k, v in sorted(rejects.items(), key=lambda kv: -kv[1]))
    lines.append(f"rejects {n_rej:,}" + (f" ({rej_text})" if rej_text else ""))

    assets = s.get("assets") or {}
    if assets:
        lines.append("")
        lines.append("Assets")
        headers = [
            "asset",
            "first mid",
            "last mid",
            "return",
            "vol/step bp",
            "vol ann.",
            "spread ticks",
            "spread bps",
            "volume",
            "trades",
            "VWAP",
        ]
        rows = []
        for sym, a in assets.items():
            vs = a.get("volatility_per_step")
            px = f",.{_price_decimals(a.get('tick_size'))}f"
            rows.append(
                [
                    sym,
                    _num(a.get("first_mid"), px),
                    _num(a.get("last_mid"), px),
                    _pct(a.get("return")),
                    _num(None if vs is None else vs * 1e4, ".3f"),
                    _pct(a.get("volatility_annualised"), 1).lstrip("+"),
                    _num(a.get("spread_mean_ticks"), ".2f"),
                    _num(a.get("spread_mean_bps"), ".2f"),
                    f"{a.get('volume', 0):,}",
                    f"{a.get('trades', 0):,}",
                    _num(a.get("vwap"), px),
                ]
            )
        lines.extend(_table(headers, rows))

    types = s.get("agent_types") or {}
    if types:
        syms = list(assets) or sorted(
            {k for t in types.values() for k in (t.get("final_position_mean") or {})}
        )
        lines.append("")
        lines.append("Agents (P&L = equity at last - first account snapshot)")
        headers = ["type", "count", "total P&L", "mean P&L", "std P&L", "mean return"]
        headers += [f"pos {x}" for x in syms] + ["fees"]
        rows = []
        for name, t in types.items():
            pos = t.get("final_position_mean") or {}
            rows.append(
                [
                    name,
                    f"{t.get('count', 0):,}",
                    _money(t.get("pnl_total")),
                    _money(t.get("pnl_mean")),
                    _money(t.get("pnl_std")).lstrip("+"),
                    _pct(t.get("return_mean"), 3),
                    *(_num(pos.get(x), "+,.1f") for x in syms),
                    _money(t.get("fees_total")).lstrip("+"),
                ]
            )
        lines.extend(_table(headers, rows))
    return "\n".join(lines)
