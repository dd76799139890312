"""Liquidity competition between market makers: per-maker metrics and run comparisons.

Per market-maker account ``j`` (accounts whose ``agent_type`` contains "market_maker", or a
given list of agent types / account ids) and asset:

* P&L: ``pnl_j = equity_j(last snapshot) - equity_j(first snapshot)`` (``accounts`` table).
* inventory: ``x_j(t)`` = position in lots at each account snapshot (missing rows of the
  ``positions`` table are 0); reported relative to the first snapshot (a maker endowed with
  shares is flat when it holds them): ``mean |x_j - x_j(0)|``, its std, max and final value.
* maker volume: lots of the trades where ``j`` was the passive side (the seller of a
  buyer-initiated trade, the buyer of a seller-initiated one); maker share
  ``s_j = maker_volume_j / total volume``; taker volume likewise.
* quoting (only when the ``orders`` table was recorded): the maker's live limit orders are
  rebuilt from its accepted LIMIT / CANCEL / MODIFY messages and its fills (maker fills reduce
  its orders at the fill price, oldest first; taker fills reduce orders sent in the same step;
  every order is dropped at a new trading day, when the exchange cancels resting orders, and
  at a liquidation event of the account). Over the quote rows with both market sides present:
  ``two_sided_share`` (time share with its own bid and ask live), ``quoted_spread_ticks``
  (mean of own best ask - own best bid, in ticks, while two-sided), ``at_best_bid_share`` /
  ``at_best_ask_share`` (time share with its best price equal to the market's) and
  ``top_depth_share``, the time average of ``(q_j^bid + q_j^ask) / (Q^bid + Q^ask)`` where
  ``q_j`` is its quantity at the market's best prices and ``Q`` the market's: the maker's
  contribution to the inside quote.

:func:`compare_runs` puts runs side by side (e.g. 1, 2 and 4 makers): market spread, top
depth, volume, volatility, and the makers' total P&L, volume share, Herfindahl index
``HHI = Σ_j (m_j / Σ_k m_k)^2`` of maker volume among them, and mean absolute inventory.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis.io import Run, as_run, select_asset
from analysis.orderflow import spreads
from analysis.returns import NS_PER_DAY, _time_ns, daily_volatility
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "MARKET_MAKER_PATTERN",
    "compare_runs",
    "competition_metrics",
    "inventory",
    "maker_quotes",
    "maker_taker_volume",
    "market_maker_accounts",
    "quoting_stats",
]

#: Substring (case-insensitive) of ``agent_type`` that marks a market maker by default.
MARKET_MAKER_PATTERN = "market_maker"


def market_maker_accounts(
    accounts: pd.DataFrame, agent_types: Sequence[str | int] | None = None
) -> pd.DataFrame:
    """Market-maker accounts of a run.

    Args:
        accounts: The ``accounts`` table.
        agent_types: ``None``: types containing :data:`MARKET_MAKER_PATTERN`; otherwise agent
            type names (exact) and/or account ids (ints).

    Returns:
        DataFrame with columns account, agent_type (one row per account, ascending).

    Complexity: O(n log n).
    """
    if accounts.empty:
        return pd.DataFrame({"account": pd.Series([], dtype=np.int64), "agent_type": []})
    a = accounts[["account", "agent_type"]].drop_duplicates("account", keep="last")
    typ = a["agent_type"].astype(str)
    if agent_types is None:
        m = typ.str.lower().str.contains(MARKET_MAKER_PATTERN, regex=False)
    else:
        names = {x for x in agent_types if isinstance(x, str)}
        ids = {int(x) for x in agent_types if isinstance(x, int | np.integer)}
        m = typ.isin(names) | a["account"].isin(ids)
    out = a[m.to_numpy()].sort_values("account")
    return pd.DataFrame(
        {
            "account": out["account"].to_numpy(np.int64),
            "agent_type": typ[m].loc[out.index].to_numpy(),
        }
    )


def inventory(
    positions: pd.DataFrame,
    account_ids: Sequence[int],
    asset: str,
    steps: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Positions (lots) of the accounts at each snapshot step; absent rows mean 0.

    Args:
        positions: The ``positions`` table (nonzero positions only).
        account_ids: Accounts (columns of the result).
        asset: The asset.
        steps: Snapshot steps (e.g. the ``accounts`` table's); default: the steps in
            ``positions``.

    Returns:
        DataFrame indexed by step with one int64 column per account.

    Complexity: O(n log n).
    """
    p = select_asset(positions, asset, "positions", must_exist=False)
    p = p[p["account"].isin(list(account_ids))]
    idx = np.unique(np.asarray(steps if steps is not None else p["step"].to_numpy(), np.int64))
    if steps is not None:
        idx = np.union1d(idx, p["step"].to_numpy(np.int64))
    wide = p.pivot_table(index="step", columns="account", values="qty", aggfunc="last")
    wide = wide.reindex(index=idx, columns=list(account_ids)).fillna(0).astype(np.int64)
    wide.index.name = "step"
    return wide


def maker_taker_volume(trades: pd.DataFrame, asset: str | None = None) -> pd.DataFrame:
    """Lots and trades per account as maker (passive side) and as taker.

    Maker of a trade: the seller if ``aggressor = +1``, else the buyer.

    Returns:
        DataFrame indexed by account with columns maker_volume, taker_volume, maker_trades,
        taker_trades.

    Complexity: O(n log n).
    """
    t = select_asset(trades, asset, "trades", must_exist=False)
    agg = t["aggressor"].to_numpy(np.int64)
    buyer, seller = t["buyer"].to_numpy(np.int64), t["seller"].to_numpy(np.int64)
    maker = np.where(agg > 0, seller, buyer)
    taker = np.where(agg > 0, buyer, seller)
    q = t["qty"].to_numpy(np.int64)
    mk = pd.DataFrame({"a": maker, "q": q}).groupby("a")["q"].agg(["sum", "size"])
    tk = pd.DataFrame({"a": taker, "q": q}).groupby("a")["q"].agg(["sum", "size"])
    out = pd.DataFrame(
        {
            "maker_volume": mk["sum"],
            "taker_volume": tk["sum"],
            "maker_trades": mk["size"],
            "taker_trades": tk["size"],
        }
    )
    out = out.fillna(0).astype(np.int64)
    out.index.name = "account"
    return out


# ---------------------------------------------------------------------------- quoting
def maker_quotes(
    orders: pd.DataFrame,
    trades: pd.DataFrame,
    account_ids: Sequence[int],
    asset: str,
    events: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each account's own best bid and ask (price, lots at it) after every step that changed.

    Rebuilds live limit orders as described in the module docstring.

    Args:
        orders: The ``orders`` table (step, time, asset, account, kind, side, price, qty,
            order_id, status).
        trades: The ``trades`` table.
        account_ids: Accounts to follow.
        asset: The asset.
        events: The ``events`` table (liquidations clear the account's orders), optional.

    Returns:
        DataFrame with columns step, day (int, days since epoch), account, bid, bid_qty, ask,
        ask_qty (NaN / 0 for an empty side), one row per (step, account) that changed.

    Complexity: O((orders + fills) * live orders per account) Python.
    """
    accs = {int(a) for a in account_ids}
    o = select_asset(orders, asset, "orders", must_exist=False)
    o = o[o["account"].isin(list(accs))]
    if "status" in o:
        o = o[o["status"].astype(str) == "ACCEPTED"]
    t = select_asset(trades, asset, "trades", must_exist=False)
    agg = t["aggressor"].to_numpy(np.int64)
    maker = np.where(agg > 0, t["seller"].to_numpy(np.int64), t["buyer"].to_numpy(np.int64))
    taker = np.where(agg > 0, t["buyer"].to_numpy(np.int64), t["seller"].to_numpy(np.int64))
    keep = np.isin(maker, list(accs)) | np.isin(taker, list(accs))
    # one stream of messages: (step, order in step, kind, fields...)
    msgs: list[tuple] = []
    o_step, o_time = o["step"].to_numpy(np.int64), _time_ns(o["time"]) if len(o) else []
    for i, (acc, kind, side, px, q, oid) in enumerate(
        zip(
            o["account"].to_numpy(np.int64),
            o["kind"].astype(str).to_numpy(),
            o["side"].to_numpy(np.int64),
            o["price"].to_numpy(float),
            o["qty"].to_numpy(np.int64),
            o["order_id"].to_numpy(np.int64) if "order_id" in o else np.zeros(len(o), np.int64),
            strict=True,
        )
    ):
        msgs.append(
            (int(o_step[i]), 0, i, int(o_time[i]), kind, int(acc), int(side), px, int(q), int(oid))
        )
    if keep.any():
        ts = t["step"].to_numpy(np.int64)[keep]
        tt = _time_ns(t["time"])[keep]
        for i, (st, tm, px, q, a, mk, tk) in enumerate(
            zip(
                ts,
                tt,
                t["price"].to_numpy(float)[keep],
                t["qty"].to_numpy(np.int64)[keep],
                agg[keep],
                maker[keep],
                taker[keep],
                strict=True,
            )
        ):
            msgs.append((int(st), 1, i, int(tm), "FILL", int(mk), int(a), px, int(q), int(tk)))
    if events is not None and len(events) and "account" in events:
        ev = events[events["kind"].astype(str).str.contains("liquidat", case=False)]
        ev = ev[ev["account"].isin(list(accs))]
        for i, (st, tm, acc) in enumerate(
            zip(ev["step"].to_numpy(np.int64), _time_ns(ev["time"]), ev["account"], strict=True)
        ):
            msgs.append((int(st), 2, i, int(tm), "LIQUIDATE", int(acc), 0, 0.0, 0, 0))
    msgs.sort(key=lambda m: (m[0], m[1], m[2]))

    live: dict[int, dict[int, list]] = {a: {} for a in accs}  # acc -> oid -> [side, px, qty, step]
    rows: list[tuple] = []
    changed: set[int] = set()

    def emit(step: int, day: int) -> None:
        for a in sorted(changed):
            bb = ba = float("nan")
            bq = aq = 0
            for side, px, q, _ in live[a].values():
                if side > 0:
                    if not bb >= px:  # also true while bb is NaN
                        bb, bq = px, 0
                    if px == bb:
                        bq += q
                else:
                    if not ba <= px:
                        ba, aq = px, 0
                    if px == ba:
                        aq += q
            rows.append((step, day, a, bb, bq, ba, aq))
        changed.clear()

    def reduce(acc: int, side: int, q: int, pred: Any) -> None:
        book = live[acc]
        for oid in list(book):
            if q <= 0:
                break
            rec = book[oid]
            if rec[0] == side and pred(rec):
                d = min(q, rec[2])
                rec[2] -= d
                q -= d
                if rec[2] <= 0:
                    del book[oid]
        changed.add(acc)
        if q > 0:
            logger.debug("maker_quotes: %d lots of account %d unmatched to live orders", q, acc)

    prev_step = prev_day = None
    for step, _, _, tm, kind, acc, side, px, q, oid in msgs:
        day = tm // NS_PER_DAY
        if prev_step is not None and step != prev_step:
            emit(prev_step, prev_day)
            if day != prev_day:  # the exchange cancelled every resting order at the close
                for a in accs:
                    if live[a]:
                        live[a].clear()
                        changed.add(a)
        prev_step, prev_day = step, day
        if kind == "LIMIT":
            live[acc][oid] = [side, px, q, step]
            changed.add(acc)
        elif kind == "CANCEL":
            if live[acc].pop(oid, None) is not None:
                changed.add(acc)
        elif kind == "MODIFY":
            if oid in live[acc]:
                live[acc][oid][2] = q
                changed.add(acc)
        elif kind == "FILL":
            mk, tk, a = acc, oid, side
            if mk in accs:
                reduce(mk, -a, q, lambda r, px=px: abs(r[1] - px) <= 1e-9 * max(1.0, abs(px)))
            if tk in accs:
                reduce(tk, a, q, lambda r, step=step: r[3] == step)
        elif kind == "LIQUIDATE":
            live[acc].clear()
            changed.add(acc)
    if prev_step is not None:
        emit(prev_step, prev_day)
    return pd.DataFrame(
        rows, columns=["step", "day", "account", "bid", "bid_qty", "ask", "ask_qty"]
    )


def quoting_stats(
    own: pd.DataFrame, quotes: pd.DataFrame, asset: str, tick_size: float | None
) -> pd.DataFrame:
    """Time-share statistics of :func:`maker_quotes` against the market quotes.

    See the module docstring (two_sided_share, quoted_spread_ticks, at_best_bid_share,
    at_best_ask_share, top_depth_share); averages over quote rows with both market sides.

    Returns:
        DataFrame indexed by account.

    Complexity: O(quote rows * accounts).
    """
    q = select_asset(quotes, asset, "quotes")
    q = q[np.isfinite(q["bid"].to_numpy(float)) & np.isfinite(q["ask"].to_numpy(float))]
    q = q.sort_values("step")
    qs = q["step"].to_numpy(np.int64)
    qday = _time_ns(q["time"]) // NS_PER_DAY
    mb, ma = q["bid"].to_numpy(float), q["ask"].to_numpy(float)
    mbq, maq = q["bid_qty"].to_numpy(float), q["ask_qty"].to_numpy(float)
    tick = tick_size if tick_size and tick_size > 0 else float("nan")
    out = {}
    for acc, g in own.groupby("account", sort=True):
        g = g.sort_values("step", kind="stable").drop_duplicates("step", keep="last")
        j = np.searchsorted(g["step"].to_numpy(np.int64), qs, side="right") - 1
        ok = (j >= 0) & (g["day"].to_numpy()[np.maximum(j, 0)] == qday)
        jj = np.maximum(j, 0)

        def col(c: str, fill: float, ok=ok, jj=jj, g=g) -> np.ndarray:
            return np.where(ok, g[c].to_numpy(float)[jj], fill)

        b, bq, a, aq = col("bid", np.nan), col("bid_qty", 0), col("ask", np.nan), col("ask_qty", 0)
        two = np.isfinite(b) & np.isfinite(a)
        eq_b = np.isfinite(b) & np.isclose(b, mb, rtol=0, atol=1e-9 * np.maximum(1, np.abs(mb)))
        eq_a = np.isfinite(a) & np.isclose(a, ma, rtol=0, atol=1e-9 * np.maximum(1, np.abs(ma)))
        share = (np.where(eq_b, bq, 0) + np.where(eq_a, aq, 0)) / (mbq + maq)
        n = qs.size
        out[int(acc)] = {
            "two_sided_share": float(two.mean()) if n else math.nan,
            "quoted_spread_ticks": float(np.mean((a - b)[two]) / tick) if two.any() else math.nan,
            "at_best_bid_share": float(eq_b.mean()) if n else math.nan,
            "at_best_ask_share": float(eq_a.mean()) if n else math.nan,
            "top_depth_share": float(np.mean(share)) if n else math.nan,
        }
    df = pd.DataFrame.from_dict(out, orient="index")
    df.index.name = "account"
    return df


# ---------------------------------------------------------------------------- per run
def _one_asset(run: Run, asset: str | None) -> list[str]:
    if asset is not None:
        return [asset]
    names = run.assets
    if not names:
        raise ConfigError(f"run {run.name!r} has no asset in its quotes or trades")
    return names


def competition_metrics(
    run: Run | str | os.PathLike[str],
    agent_types: Sequence[str | int] | None = None,
    asset: str | None = None,
) -> pd.DataFrame:
    """Per market-maker metrics of one run (see the module docstring).

    Args:
        run: A :class:`~analysis.io.Run` or run directory.
        agent_types: Which accounts are makers (see :func:`market_maker_accounts`).
        asset: One asset; ``None``: one row per (maker, asset) for every asset.

    Returns:
        DataFrame with columns account, agent_type, asset, pnl, initial_equity, final_equity,
        maker_volume, maker_share, taker_volume, inv_mean_abs, inv_std, inv_max_abs,
        inv_final, and (with an ``orders`` table) two_sided_share, quoted_spread_ticks,
        at_best_bid_share, at_best_ask_share, top_depth_share.

    Raises:
        ConfigError: no market-maker account (the message lists the agent types present).

    Complexity: O(rows log rows) plus :func:`maker_quotes` with orders.
    """
    r = as_run(run)
    mm = market_maker_accounts(r.accounts, agent_types)
    if mm.empty:
        types = sorted(r.accounts["agent_type"].astype(str).unique()) if len(r.accounts) else []
        raise ConfigError(
            f"no market-maker account in run {r.name!r} (agent_types={agent_types!r}); "
            f"agent types present: {types}; pass agent_types=[...]"
        )
    ids = mm["account"].tolist()
    acc = r.accounts[r.accounts["account"].isin(ids)].sort_values(
        ["account", "step"], kind="stable"
    )
    g = acc.groupby("account")["equity"]
    eq0, eq1 = g.first(), g.last()
    snap_steps = np.unique(r.accounts["step"].to_numpy(np.int64))
    rows = []
    for a in _one_asset(r, asset):
        vol = maker_taker_volume(r.trades, a)
        total = float(select_asset(r.trades, a, "trades", must_exist=False)["qty"].sum())
        inv = inventory(r.positions, ids, a, snap_steps)
        qstats = None
        if r.orders is not None and len(r.orders):
            own = maker_quotes(r.orders, r.trades, ids, a, r.events)
            qstats = quoting_stats(own, r.quotes, a, r.tick_size(a))
        for acc_id, typ in zip(mm["account"], mm["agent_type"], strict=True):
            x = inv[acc_id].to_numpy(float) if acc_id in inv else np.zeros(1)
            dx = x - x[0] if x.size else x
            mv = int(vol["maker_volume"].get(acc_id, 0))
            row = {
                "account": int(acc_id),
                "agent_type": typ,
                "asset": a,
                "pnl": float(eq1.get(acc_id, np.nan) - eq0.get(acc_id, np.nan)),
                "initial_equity": float(eq0.get(acc_id, np.nan)),
                "final_equity": float(eq1.get(acc_id, np.nan)),
                "maker_volume": mv,
                "maker_share": mv / total if total else math.nan,
                "taker_volume": int(vol["taker_volume"].get(acc_id, 0)),
                "inv_mean_abs": float(np.mean(np.abs(dx))) if dx.size else math.nan,
                "inv_std": float(np.std(dx)) if dx.size else math.nan,
                "inv_max_abs": float(np.max(np.abs(dx))) if dx.size else math.nan,
                "inv_final": float(dx[-1]) if dx.size else math.nan,
            }
            if qstats is not None:
                for c in qstats.columns:
                    row[c] = float(qstats[c].get(acc_id, math.nan))
            rows.append(row)
    return pd.DataFrame(rows)


def compare_runs(
    runs: Mapping[str, Run | str] | Sequence[Run | str],
    agent_types: Sequence[str | int] | None = None,
    asset: str | None = None,
) -> pd.DataFrame:
    """Side-by-side market quality and maker outcomes of several runs (e.g. 1, 2, 4 makers).

    Per run (and asset): n_makers, spread_mean_ticks, spread_mean_bps (time averages of
    :func:`analysis.orderflow.spreads`), top_depth_mean (mean ``bid_qty + ask_qty``), volume,
    daily_volatility (:func:`analysis.returns.daily_volatility` over every quote), and over the
    makers: mm_pnl_total, mm_pnl_mean, mm_maker_share (their maker volume / volume),
    mm_maker_hhi (Herfindahl index of maker volume among them; 1/n_makers when equal),
    mm_inv_mean_abs (mean over makers of ``mean |x - x(0)|``) and, with orders,
    mm_top_depth_share (sum over makers).

    Args:
        runs: ``{label: run}`` or a list of runs (labelled by directory name).
        agent_types: Which accounts are makers (see :func:`market_maker_accounts`).
        asset: One asset; ``None``: every asset of each run.

    Returns:
        DataFrame, one row per (run, asset), in the given order.

    Complexity: O(total rows of the runs) plus :func:`competition_metrics` per run.
    """
    items = list(runs.items()) if isinstance(runs, Mapping) else [(None, x) for x in runs]
    if not items:
        raise ConfigError("runs is empty; pass at least one run")
    out = []
    for label, x in items:
        r = as_run(x)
        try:
            cm = competition_metrics(r, agent_types, asset)
        except ConfigError:
            if len(market_maker_accounts(r.accounts, agent_types)):
                raise
            cm = pd.DataFrame(columns=["account", "asset", "pnl", "maker_volume", "inv_mean_abs"])
        for a in _one_asset(r, asset):
            sp = spreads(r.quotes, r.tick_size(a), a)
            q = select_asset(r.quotes, a, "quotes")
            t = select_asset(r.trades, a, "trades", must_exist=False)
            vol = float(t["qty"].sum())
            m = cm[cm["asset"] == a] if len(cm) else cm
            mv = m["maker_volume"].to_numpy(float) if len(m) else np.zeros(0)
            row = {
                "run": label if label is not None else r.name,
                "asset": a,
                "n_makers": int(len(m)),
                "spread_mean_ticks": float(sp["ticks"].mean()) if len(sp) else math.nan,
                "spread_mean_bps": float(sp["bps"].mean()) if len(sp) else math.nan,
                "top_depth_mean": float((q["bid_qty"] + q["ask_qty"]).mean())
                if len(q)
                else math.nan,
                "volume": vol,
                "daily_volatility": daily_volatility(r.quotes, a, None),
                "mm_pnl_total": float(m["pnl"].sum()) if len(m) else math.nan,
                "mm_pnl_mean": float(m["pnl"].mean()) if len(m) else math.nan,
                "mm_maker_share": float(mv.sum() / vol) if vol and len(m) else math.nan,
                "mm_maker_hhi": float(np.sum((mv / mv.sum()) ** 2)) if mv.sum() > 0 else math.nan,
                "mm_inv_mean_abs": float(m["inv_mean_abs"].mean()) if len(m) else math.nan,
            }
            if "top_depth_share" in m:
                row["mm_top_depth_share"] = float(m["top_depth_share"].sum())
            out.append(row)
    return pd.DataFrame(out)
