"""``marketsim monitor RUN_DIR``: summarise a run's ``monitor.parquet``.

Prints step-latency percentiles, order-to-fill latency, fills and the inbound queue, rejects
by reason, and per entity (agent type or account) the final equity and P&L, peak exposure and
leverage, maximum drawdown and the last and worst VaR; live-source counters when the run was
in streaming mode. ``--json`` prints the same as JSON.

Step latency percentiles are over the rows' mean step time (exact per step when the monitor
sampled every step, ``every = 1``); the maximum is the largest single step.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from marketsim.monitor import read_monitor

__all__ = ["add_parser", "cmd_monitor", "format_monitor_summary", "summarize_monitor"]


def _f(x: Any) -> float | None:
    """A finite float or None (for JSON)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[name].to_numpy(dtype=float) if name in df.columns else np.full(len(df), np.nan)


def _fin(a: np.ndarray) -> np.ndarray:
    return a[np.isfinite(a)]


def summarize_monitor(df: pd.DataFrame, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of a monitor frame as a JSON-able dict. O(rows * columns)."""
    out: dict[str, Any] = {
        "rows": len(df),
        "every": meta.get("every"),
        "scenario": meta.get("scenario"),
        "seed": meta.get("seed"),
        "first_step": int(df["step"].iloc[0]) if len(df) else None,
        "last_step": int(df["step"].iloc[-1]) if len(df) else None,
    }
    wall = _fin(_col(df, "step_wall_mean_s"))
    wmax = _fin(_col(df, "step_wall_max_s"))
    wn = _col(df, "step_wall_n")
    wm = _col(df, "step_wall_mean_s")
    ok = np.isfinite(wm) & (wn > 0)
    out["step_wall_s"] = {
        "steps": int(wn[ok].sum()),
        "mean": _f((wm[ok] * wn[ok]).sum() / wn[ok].sum()) if ok.any() else None,
        "p50": _f(np.percentile(wall, 50)) if wall.size else None,
        "p90": _f(np.percentile(wall, 90)) if wall.size else None,
        "p99": _f(np.percentile(wall, 99)) if wall.size else None,
        "max": _f(wmax.max()) if wmax.size else None,
    }
    ln = np.nan_to_num(_col(df, "order_latency_n"))
    lm = _col(df, "order_latency_mean_steps")
    okl = ln > 0
    lmax = _fin(_col(df, "order_latency_max_steps"))
    out["order_latency_steps"] = {
        "orders": int(ln.sum()),
        "mean": _f((lm[okl] * ln[okl]).sum() / ln[okl].sum()) if okl.any() else None,
        "max": _f(lmax.max()) if lmax.size else None,
    }
    out["fills"] = int(np.nan_to_num(_col(df, "fills")).sum())
    out["fill_qty"] = int(np.nan_to_num(_col(df, "fill_qty")).sum())
    inbound = _fin(_col(df, "inbound_orders"))
    out["inbound_orders"] = {
        "mean": _f(inbound.mean()) if inbound.size else None,
        "max": _f(inbound.max()) if inbound.size else None,
    }
    rej = {}
    for c in df.columns:
        if c.startswith("rejects/"):
            total = int(np.nan_to_num(df[c].to_numpy(dtype=float)).sum())
            if total:
                rej[c.split("/", 1)[1]] = total
    out["rejects"] = dict(sorted(rej.items(), key=lambda kv: -kv[1]))
    ents = {}
    for e in meta.get("entities", []):
        eq = _col(df, f"{e}/equity")
        d: dict[str, Any] = {
            "equity": _f(eq[-1]) if eq.size else None,
            "pnl": _f(_col(df, f"{e}/pnl")[-1]) if eq.size else None,
            "net": _f(_col(df, f"{e}/net")[-1]) if eq.size else None,
        }
        for key, col in (("max_gross", "gross"), ("max_leverage", "leverage")):
            v = _fin(_col(df, f"{e}/{col}"))
            d[key] = _f(v.max()) if v.size else None
        dd = _fin(_col(df, f"{e}/drawdown"))
        d["max_drawdown"] = _f(dd.max()) if dd.size else None
        for c in df.columns:
            if c.startswith(f"{e}/var_"):
                v = _col(df, c)
                name = c.split("/", 1)[1]
                f = _fin(v)
                d[name] = _f(v[-1])
                d[f"max_{name}"] = _f(f.max()) if f.size else None
            elif c.startswith(f"{e}/sector:"):
                sector = c[len(f"{e}/sector:") :]
                d.setdefault("sector_net", {})[sector] = _f(_col(df, c)[-1])
        label = e
        if e.startswith("acct:"):
            name = meta.get("account_names", {}).get(e[5:])
            if name:
                label = f"{e} ({name})"
        ents[label] = d
    out["entities"] = ents
    live = {}
    for c in df.columns:
        if c.startswith("live/") and len(df):
            v = _col(df, c)
            if c == "live/ticks":
                live["ticks"] = int(np.nansum(v))
            elif c == "live/lag_max_s":
                f = _fin(v)
                live["lag_max_s"] = _f(f.max()) if f.size else None
            else:
                live[c[5:]] = _f(v[-1])
    if live:
        out["live"] = live
    return out


def _num(x: Any, fmt: str) -> str:
    return "-" if x is None else format(x + 0.0, fmt)  # + 0.0 turns -0.0 into 0.0


def _money(x: Any, sign: str = "") -> str:
    """Currency: 2 decimals below 1,000 in magnitude, whole units above."""
    if x is None:
        return "-"
    x = round(x, 2) + 0.0
    return format(x, f"{sign},.2f") if abs(x) < 1000 else format(x, f"{sign},.0f")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def format_monitor_summary(s: Mapping[str, Any]) -> str:
    """Plain-text rendering of :func:`summarize_monitor`. O(entities)."""
    ms = 1e3
    w = s["step_wall_s"]
    lat = s["order_latency_steps"]
    lines = [
        f"monitor: {s['rows']} rows, steps {s['first_step']}..{s['last_step']} "
        f"(every {s['every']}), scenario {s['scenario']!r}, seed {s['seed']}",
        "",
        "step wall time (ms): "
        + ", ".join(
            f"{k} {_num(None if w[k] is None else w[k] * ms, '.3f')}"
            for k in ("mean", "p50", "p90", "p99", "max")
        )
        + f"  over {w['steps']} steps",
        f"order-to-fill latency (steps): {lat['orders']} orders, mean {_num(lat['mean'], '.2f')}, "
        f"max {_num(lat['max'], '.0f')}",
        f"fills: {s['fills']} ({s['fill_qty']} lots); inbound orders: mean "
        f"{_num(s['inbound_orders']['mean'], '.1f')}, max {_num(s['inbound_orders']['max'], '.0f')}",
        "rejects: "
        + (", ".join(f"{k} {v}" for k, v in s["rejects"].items()) if s["rejects"] else "none"),
    ]
    if s["entities"]:
        var_keys = sorted(
            {k for d in s["entities"].values() for k in d if k.startswith("var_")},
            key=lambda k: float(k[4:]),
        )
        headers = ["entity", "equity", "P&L", "net", "max gross", "max lev", "max DD"]
        headers += [f"{k.replace('var_', 'VaR')} last/max" for k in var_keys]
        rows = []
        for name, d in s["entities"].items():
            r = [
                name,
                _money(d["equity"]),
                _money(d["pnl"], "+"),
                _money(d["net"], "+"),
                _money(d["max_gross"]),
                _num(d["max_leverage"], ".2f"),
                _num(None if d["max_drawdown"] is None else 100 * d["max_drawdown"], ".2f") + "%",
            ]
            r += [f"{_money(d.get(k))}/{_money(d.get('max_' + k))}" for k in var_keys]
            rows.append(r)
        lines += ["", *_table(headers, rows)]
        sect = {n: d.get("sector_net") for n, d in s["entities"].items() if d.get("sector_net")}
        if sect:
            names = sorted({k for d in sect.values() for k in d})
            rows = [[n] + [_money(d.get(k), "+") for k in names] for n, d in sect.items()]
            lines += ["", "net exposure by sector (last row):"]
            lines += _table(["entity", *names], rows)
    if s.get("live"):
        lines += ["", "live source: " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else
                                                   f"{k} {v}" for k, v in s["live"].items()
                                                   if v is not None)]  # fmt: skip
    return "\n".join(lines)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``marketsim monitor`` to the CLI's subparsers."""
    p = sub.add_parser(
        "monitor",
        help="summarise a run's monitor.parquet (latency, rejects, P&L, exposure, VaR)",
        description="Summarise the monitor log of a run directory: step latency percentiles, "
        "order-to-fill latency, rejects by reason, and per agent type or account the P&L, "
        "exposure, leverage, drawdown and VaR.",
    )
    p.add_argument("run_dir", help="run directory holding monitor.parquet (or the file itself)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_monitor)
    return p


def cmd_monitor(args: argparse.Namespace) -> int:
    """``marketsim monitor``: print the summary; return the exit status."""
    df, meta = read_monitor(Path(args.run_dir))
    s = summarize_monitor(df, meta)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(format_monitor_summary(s))
    return 0
