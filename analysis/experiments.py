"""Market-impact experiments: meta-orders of many sizes, each against its own counterfactual.

For every seed the scenario runs once up to the step ``t_0`` at which the meta-order starts and
its whole state is captured in memory (:meth:`marketsim.model.MarketModel.get_state`). From that
checkpoint the market is continued to the close of the day

* once without the meta-order - the counterfactual: the ``execution`` agent keeps its account
  and its wake-ups but its parent size is 0, so it never sends an order;
* once per meta-order (size ``Q``, side ``ε``), the execution agent working ``Q`` lots with its
  algorithm (TWAP, VWAP or POV) from ``t_0`` to ``t_1``.

All continuations share the prefix, the agents' random stream at ``t_0`` and the fundamental
path (the feed has its own random stream), so they differ only through the meta-order. The
impact path is ``I(t) = ε [ln m_with(t) - ln m_without(t)]`` (:func:`analysis.impact.impact_path`).

Per meta-order (one row of ``impact.parquet``):

* ``daily_volume`` ``V``: lots traded per day in the counterfactual (prefix + continuation, days
  ``0..day``); ``sigma``: its daily volatility from 5-minute returns
  (:func:`analysis.returns.daily_volatility`);
* ``peak_impact`` ``I* = I(t_e)``, the impact when the meta-order is complete: ``t_e`` is the
  step of its last fill (a POV order can finish long before its window ends), or ``t_1 + ℓ``
  when it is still open then (``ℓ`` the agent's order-entry latency); ``end_step`` is ``t_e``
  and ``duration_s`` the time it ran; ``impact_over_sigma = I*/σ``; ``q_over_v = Q/V``;
* ``max_impact``: ``max I(t)`` over the execution; ``impact_at_end``: ``I`` at the end of the
  continuation (the close), the part that did not decay;
* ``decay_<m>``: ``I(t_e + m T) / I*`` for multiples ``m`` of the duration ``T``
  (:func:`analysis.impact.impact_decay`; NaN past the close);
* the execution itself: ``filled_lots``, ``participation`` (its share of the volume traded while
  it ran), ``shortfall_bps`` (implementation shortfall against the arrival mid).

The impact law ``I*/σ = Y (Q/V)^δ`` is fitted by :func:`analysis.impact.fit_impact_law`
(:func:`fit_study`); a square-root law has ``δ ≈ 0.5``.

The default protocol is the one the empirical square-root law is measured on: meta-orders worked
at a steady participation rate (POV, 20 % of the volume by default), so that a larger meta-order
also lasts longer, from 30 minutes after the open until it is done (at the latest 30 minutes
before the close). The protocol matters. In a latent order book (LLOB; Donier et al. 2015,
Benzaquen & Bouchaud 2018) a meta-order traded at rate ``m`` much slower than the market's volume
rate ``J`` has impact ``I ~ (m / J) σ sqrt(T)``: linear in ``Q`` at a fixed duration ``T`` (a
fixed-window TWAP), but ``∝ sqrt(Q)`` at a fixed participation ``φ = m / J`` (``T ∝ Q``), with
``Y ~ sqrt(π φ)``. ``algo="twap"`` (window ``duration_s``, 1 hour by default) measures the
fixed-duration law.

Cost per seed: one run to ``t_0`` plus ``len(sizes) * len(sides) + 1`` continuations to the
close; seeds can run in parallel processes (``workers``).

Example:
    >>> study = run_impact_study("scenarios/stylized_facts.toml", "runs/impact",
    ...                          seeds=[0, 1], sizes=[1000, 4000, 16000])   # doctest: +SKIP
    >>> study.fit["delta"]                                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.impact import fit_impact_law, impact_decay, metaorder_impact
from analysis.io import Run
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "DECAY_MULTIPLES",
    "EXECUTION_GROUP",
    "IMPACT_COLUMNS",
    "ImpactStudy",
    "default_day",
    "default_duration",
    "fit_study",
    "prepare_scenario",
    "run_impact_study",
    "run_seed",
]

#: Default start of the meta-orders, s after the open of their day.
DEFAULT_START_S = 1800.0
#: POV target share of the volume of the default protocol.
DEFAULT_PARTICIPATION = 0.2
#: Window of a TWAP or VWAP meta-order when ``duration_s`` is not given, s.
DEFAULT_TWAP_S = 3600.0
#: A POV meta-order's window ends this long before the close when ``duration_s`` is not given.
POV_CLOSE_MARGIN_S = 1800.0

#: Name of the execution group added to scenarios that have none.
EXECUTION_GROUP = "metaorder"
#: Multiples ``m`` of the execution duration at which the decay ``I(t_1 + m T) / I*`` is kept.
DECAY_MULTIPLES = (0.5, 1.0, 2.0)
#: Columns of ``impact.parquet`` (plus one ``decay_<m>`` column per multiple).
IMPACT_COLUMNS = (
    "seed", "side", "size", "algo", "start_step", "end_step", "duration_s", "daily_volume",
    "sigma", "q_over_v", "peak_impact", "impact_over_sigma", "max_impact", "impact_at_end",
    "filled_lots", "participation", "shortfall_bps", "arrival_price",
)  # fmt: skip
_SIDES = {"buy": 1, "sell": -1}


@dataclass
class ImpactStudy:
    """Result of :func:`run_impact_study`.

    Attributes:
        rows: One row per meta-order (see the module docstring).
        fit: The impact-law fit (the content of ``impact_fit.json``).
        paths: Impact paths (seed, side, size, step, rel_step, phase, mid_with, mid_without,
            impact, fundamental_with, fundamental_without), every ``path_every`` steps.
        out_dir: Where the files were written (``None``: not written).
    """

    rows: pd.DataFrame
    fit: dict[str, Any]
    paths: pd.DataFrame
    out_dir: Path | None = None


# ---------------------------------------------------------------------------- scenario
def default_day(days: int) -> int:
    """The day a study runs its meta-orders on when none is given: the second trading day of a
    scenario with more than one, else the first.

    Day 0 starts from an artificial state - an empty book, every slow average (anchors, latent
    order books) at the initial price - and an hour after the open that state has not relaxed
    yet; from the second day on the market is in its running regime.
    """
    return 1 if days > 1 else 0


def default_duration(algo: str, start_s: float, day_s: float) -> float:
    """The meta-order's window when none is given, s: :data:`DEFAULT_TWAP_S` for TWAP and VWAP;
    for POV (which stops when it is done) up to :data:`POV_CLOSE_MARGIN_S` before the close of a
    ``day_s``-second session, or the TWAP window if that leaves less. O(1)."""
    if algo == "pov":
        rest = day_s - POV_CLOSE_MARGIN_S - start_s
        if rest >= DEFAULT_TWAP_S:
            return float(rest)
    return DEFAULT_TWAP_S


def _parse_sides(side: str | Sequence[str]) -> list[str]:
    sides = ["buy", "sell"] if side == "both" else [side] if isinstance(side, str) else list(side)
    bad = [s for s in sides if s not in _SIDES]
    if bad or not sides:
        raise ConfigError(f"side = {side!r}: must be 'buy', 'sell' or 'both'")
    return sides


def _check_sizes(sizes: Iterable[Any]) -> list[int]:
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1:
            raise ConfigError(f"sizes: {s!r} is not a whole number of lots >= 1")
        out.append(int(s))
    if not out:
        raise ConfigError("sizes is empty: give at least one meta-order size in lots")
    return out


def prepare_scenario(
    scenario: Any,
    overrides: Sequence[str] = (),
    *,
    max_size: int = 1,
    side: str | Sequence[str] = "buy",
    algo: str = "pov",
    start_s: float = DEFAULT_START_S,
    duration_s: float | None = None,
    day: int | None = None,
    wake_interval_s: float = 30.0,
    aggression: str = "market",
    participation: float = DEFAULT_PARTICIPATION,
) -> dict[str, Any]:
    """The scenario as a dict with exactly one execution agent set up for the study.

    The first ``execution`` group of the scenario is used (its count set to 1; others are
    disabled); a scenario without one gets a group named :data:`EXECUTION_GROUP`. Its params are
    set to the study's (``day`` None: :func:`default_day`; ``total_lots = max_size``; the
    experiment changes the size and side of each continuation), its cash to twice the largest
    meta-order's notional. Quotes are recorded every step if the scenario records none.
    ``duration_s`` None: :func:`default_duration`.

    Raises:
        ConfigError: bad arguments (the message names them), a window outside the session.

    Complexity: O(scenario size).
    """
    from marketsim.scenario import load_scenario

    sc = load_scenario(scenario, list(overrides))
    d = sc.to_dict()
    sides = _parse_sides(side)
    if algo not in ("twap", "vwap", "pov"):
        raise ConfigError(f"algo = {algo!r}: must be 'twap', 'vwap' or 'pov'")
    if aggression not in ("market", "limit_at_touch"):
        raise ConfigError(f"aggression = {aggression!r}: must be 'market' or 'limit_at_touch'")
    session = sc.session
    day_s = session.steps_per_day * session.step_seconds
    if day is None:
        day = default_day(session.days)
    if duration_s is None:
        duration_s = default_duration(algo, start_s, day_s)
    if not 0 <= int(day) < session.days:
        raise ConfigError(f"day = {day!r}: must lie in 0..{session.days - 1} (scenario days)")
    if not (start_s >= 0 and duration_s > 0 and start_s + duration_s < day_s):
        raise ConfigError(
            f"start_s = {start_s!r}, duration_s = {duration_s!r}: the meta-order must start at "
            f">= 0 s and end before the close ({day_s:g} s after the open)"
        )
    if not 0 < wake_interval_s <= duration_s:
        raise ConfigError(
            f"wake_interval_s = {wake_interval_s!r}: must be > 0 and <= duration_s ({duration_s})"
        )
    if not d.get("assets"):
        raise ConfigError("the scenario has no [[assets]]; the meta-order needs one")
    sym = d["assets"][0]["symbol"]
    price = float(d["assets"][0]["initial_price"])
    params = {
        "wake_interval_s": float(wake_interval_s),
        "side": sides[0],
        "total_lots": int(max_size),
        "day": int(day),
        "start_s": float(start_s),
        "end_s": float(start_s + duration_s),
        "algo": algo,
        "participation": float(participation),
        "aggression": aggression,
        "complete_at_end": True,
    }
    groups = d.get("agents") or []
    ex = [g for g in groups if g.get("type") == "execution"]
    for g in ex[1:]:
        g["count"] = 0
    cash = 2.0 * max_size * price * max(1, int(d["assets"][0].get("lot_size") or 1))
    if ex:
        g = ex[0]
        g["count"] = 1
        g["params"] = {**(g.get("params") or {}), **params}
        g["cash"] = max(float(g.get("cash") or 0.0), cash)
        g["assets"] = [sym]
    else:
        groups.append(
            {
                "type": "execution",
                "name": EXECUTION_GROUP,
                "count": 1,
                "cash": cash,
                "latency_steps": 1,
                "md_latency_steps": 1,
                "assets": [sym],
                "params": params,
            }
        )
    if "sell" in sides and not d.get("exchange", {}).get("short_selling", True):
        g = ex[0] if ex else groups[-1]
        g["shares"] = {sym: int(max_size)}
    d["agents"] = groups
    if not d["simulation"].get("quotes_every"):
        d["simulation"]["quotes_every"] = 1
    return load_scenario(d).to_dict()


# ---------------------------------------------------------------------------- one seed
def _plain(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(str)
    return df


def _execution_agent(model: Any) -> Any:
    ags = [a for a in model.account_agent.values() if a.type_name == "execution"]
    if len(ags) != 1:
        raise ConfigError(
            f"the study needs exactly one execution agent, the scenario has {len(ags)}; "
            f"build it with prepare_scenario()"
        )
    return ags[0]


def _fundamental_hook(buf: np.ndarray, slot: int):
    def hook(m: Any) -> None:
        buf[m.t] = m.feed.values()[slot]

    return hook


def run_seed(
    scenario: dict[str, Any],
    seed: int,
    sizes: Sequence[int],
    sides: Sequence[str] = ("buy",),
    decay_multiples: Sequence[float] = DECAY_MULTIPLES,
    vol_horizon: str = "5min",
    path_every: int = 10,
    progress: Any = None,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """All meta-orders of one seed against their shared counterfactual (module docstring).

    Args:
        scenario: A dict from :func:`prepare_scenario`.
        seed: The seed of every run.
        sizes: Meta-order sizes in lots.
        sides: "buy" and/or "sell"; every size runs on every side.
        decay_multiples: Multiples of the duration for the ``decay_<m>`` columns.
        vol_horizon: Return horizon of the daily volatility.
        path_every: Keep every ``path_every``-th step of the impact paths (1: all).
        progress: Optional callable ``progress(n)`` called after each continuation.

    Returns:
        ``(rows, paths)``: one dict per meta-order and the paths DataFrame.

    Complexity: O((1 + len(sizes) * len(sides)) * steps of a day).
    """
    from marketsim.model import MarketModel

    sizes = _check_sizes(sizes)
    sides = _parse_sides(list(sides))
    if isinstance(path_every, bool) or not isinstance(path_every, int) or path_every < 1:
        raise ConfigError(f"path_every = {path_every!r}: must be an integer >= 1")
    base = MarketModel(scenario, seed=seed, record=True)
    ex = _execution_agent(base)
    sess = base.session
    spd = sess.steps_per_day
    day_start = ex.day * spd
    t0 = day_start + ex.start_step
    lat = ex.latency_steps + ex.latency_jitter_steps
    t1 = day_start + ex.end_step
    t_meas = min(t1 + lat, day_start + spd - 1)
    close = day_start + spd
    slot = ex.slots[0]
    asset = base.exchange.assets[slot].symbol
    fund_pre = np.full(close, np.nan)
    base.step_hooks.append(_fundamental_hook(fund_pre, slot))
    base.run(t0)
    state = base.get_state()
    pre_trades, pre_quotes = _plain(base.trades()), _plain(base.quotes())
    base.release()
    if progress:
        progress(1)

    def continuation(size: int, side: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, Any]:
        m = MarketModel(scenario, seed=seed, record=True)
        m.set_state(state)
        agent = _execution_agent(m)
        agent.total = int(size)
        agent.side = int(side)
        fund = fund_pre.copy()
        m.step_hooks.append(_fundamental_hook(fund, slot))
        m.run(close - t0)
        trades = pd.concat([pre_trades, _plain(m.trades())], ignore_index=True)
        quotes = pd.concat([pre_quotes, _plain(m.quotes())], ignore_index=True)
        info = {
            "filled": int(agent.filled_lots),
            "shortfall_bps": float(agent.shortfall_bps) if agent.filled_lots else float("nan"),
            "arrival": float(agent.arrival_price_ticks),
            "tick": float(m.exchange.assets[slot].tick_size),
            "account": int(agent.account),
            "children": int(agent.n_children),
            "done_step": int(agent.done_step),
        }
        m.release()
        if progress:
            progress(1)
        return trades, quotes, fund, info

    cf_trades, cf_quotes, cf_fund, cf_info = continuation(0, 1)
    if cf_info["children"]:
        raise ConfigError("the counterfactual execution agent sent orders; this is a bug")
    run_without = Run(trades=cf_trades, quotes=cf_quotes)
    rows: list[dict[str, Any]] = []
    paths = []
    keep_from = max(day_start, t0 - (t1 - t0))
    for side_name in sides:
        side = _SIDES[side_name]
        for size in sizes:
            tr, qu, fund, info = continuation(size, side)
            # the impact is read when the meta-order is complete: its last fill (a POV order
            # can finish well before the window ends), else the end of the window
            t_end = info["done_step"] if 0 <= info["done_step"] < t_meas else t_meas
            r = metaorder_impact(
                Run(trades=tr, quotes=qu), run_without, t0, t_end, side, size, asset, vol_horizon
            )
            path = r["path"]
            dec = impact_decay(path, decay_multiples)
            after = path[path["step"] >= t0]
            win = tr[(tr["step"] >= t0) & (tr["step"] <= t_end)]
            vol_win = float(win["qty"].sum())
            row = {
                "seed": int(seed),
                "side": side,
                "size": int(size),
                "algo": ex.algo,
                "start_step": int(t0),
                "end_step": int(t_end),
                "duration_s": float((min(t_end, t1) - t0) * sess.step_seconds),
                "daily_volume": r["V"],
                "sigma": r["sigma"],
                "q_over_v": size / r["V"] if r["V"] > 0 else float("nan"),
                "peak_impact": r["I"],
                "impact_over_sigma": r["I"] / r["sigma"] if r["sigma"] > 0 else float("nan"),
                "max_impact": r["I_max"],
                "impact_at_end": float(after["impact"].iloc[-1]) if len(after) else float("nan"),
                "filled_lots": info["filled"],
                "participation": info["filled"] / vol_win if vol_win > 0 else float("nan"),
                "shortfall_bps": info["shortfall_bps"],
                "arrival_price": info["arrival"] * info["tick"],
            }
            for m_, f_ in zip(dec["multiple"], dec["fraction"], strict=True):
                row[f"decay_{m_:g}"] = float(f_)
            rows.append(row)
            p = path[path["step"] >= keep_from]
            p = p[((p["step"] - t0) % path_every == 0) | (p["step"] == t_end)]
            st = p["step"].to_numpy(np.int64)
            paths.append(
                pd.DataFrame(
                    {
                        "seed": int(seed),
                        "side": side,
                        "size": int(size),
                        "step": st,
                        "rel_step": p["rel_step"].to_numpy(),
                        "phase": p["phase"].to_numpy(),
                        "mid_with": p["mid_with"].to_numpy(),
                        "mid_without": p["mid_without"].to_numpy(),
                        "impact": p["impact"].to_numpy(),
                        "fundamental_with": fund[st],
                        "fundamental_without": cf_fund[st],
                    }
                )
            )
    return rows, pd.concat(paths, ignore_index=True)


def _seed_task(args: tuple) -> tuple[int, list[dict[str, Any]], pd.DataFrame]:
    scenario, seed, sizes, sides, decay, vol_h, every = args
    rows, paths = run_seed(scenario, seed, sizes, sides, decay, vol_h, every)
    return seed, rows, paths


# ---------------------------------------------------------------------------- fit
def fit_study(
    rows: pd.DataFrame,
    method: str = "auto",
    n_boot: int = 1000,
    level: float = 0.95,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:
    """Fit ``I*/σ = Y (Q/V)^δ`` to the study's rows; always returns a JSON-able dict.

    ``method``: "rows", "binned" (see :func:`analysis.impact.fit_impact_law`) or "auto" -
    "binned" (means over log-spaced bins of ``Q/V``, one per distinct size up to 10, which keeps
    the meta-orders with ``I* <= 0`` in the means) when at least 3 bins have a positive mean,
    else "rows". With fewer than 3 usable points the fit is the line through the (one or two)
    points without a CI (or NaN), and ``note`` says so.

    Returns:
        Dict with delta, Y, delta_ci, Y_ci, n, n_dropped, r2, resid_std, method, ci_method,
        level, n_metaorders, note.

    Raises:
        ConfigError: bad ``method`` or missing columns.

    Complexity: O(n_boot * rows).
    """
    if method not in ("auto", "rows", "binned"):
        raise ConfigError(f"method = {method!r}: must be 'auto', 'rows' or 'binned'")
    need = {"size", "daily_volume", "sigma", "peak_impact"}
    if not need <= set(rows.columns):
        raise ConfigError(f"rows lacks columns {sorted(need - set(rows.columns))}")
    df = pd.DataFrame(
        {
            "Q": rows["size"].to_numpy(float),
            "V": rows["daily_volume"].to_numpy(float),
            "sigma": rows["sigma"].to_numpy(float),
            "I": rows["peak_impact"].to_numpy(float),
        }
    )
    rng = np.random.default_rng(0) if rng is None else rng
    nan = float("nan")
    out: dict[str, Any] = {"n_metaorders": len(df), "level": level, "note": ""}
    bins = int(min(10, max(1, rows["size"].nunique())))
    tries = ["binned", "rows"] if method == "auto" else [method]
    for m in tries:
        try:
            f = fit_impact_law(df, method=m, n_boot=n_boot, level=level, bins=bins, rng=rng)
        except ConfigError as e:
            out["note"] = f"{m} fit failed: {e}"
            continue
        out.update(
            delta=f.delta, Y=f.Y, delta_ci=list(f.delta_ci), Y_ci=list(f.Y_ci), n=f.n,
            n_dropped=f.n_dropped, r2=f.r2, resid_std=f.resid_std, method=f.method,
            ci_method=f.ci_method, note="",
        )  # fmt: skip
        return _finite(out)
    # fewer than 3 usable points: the line through them, no CI
    ok = (df["I"] > 0) & (df["V"] > 0) & (df["sigma"] > 0) & np.isfinite(df["I"])
    x = np.log((df["Q"] / df["V"])[ok].to_numpy())
    y = np.log((df["I"] / df["sigma"])[ok].to_numpy())
    delta, logy = nan, nan
    if x.size >= 2 and np.ptp(x) > 0:
        delta, logy = (float(v) for v in np.polyfit(x, y, 1))
    elif x.size >= 1:
        logy = float(np.mean(y - 0.5 * x))  # Y of a square-root law through the point(s)
    out.update(
        delta=delta, Y=math.exp(logy) if math.isfinite(logy) else nan, delta_ci=[nan, nan],
        Y_ci=[nan, nan], n=int(x.size), n_dropped=int((~ok).sum()), r2=nan, resid_std=nan,
        method="points", ci_method="none",
    )  # fmt: skip
    note = f"only {int(x.size)} usable point(s) (I* > 0): exact line through them, no CI"
    out["note"] = note + ("" if x.size >= 2 else "; delta undefined, Y assumes delta = 0.5")
    return _finite(out)


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities as None (strict JSON)."""

    def fix(v: Any) -> Any:
        if isinstance(v, float | np.floating):
            return float(v) if math.isfinite(v) else None
        if isinstance(v, list | tuple):
            return [fix(x) for x in v]
        if isinstance(v, np.integer):
            return int(v)
        return v

    return {k: fix(v) for k, v in d.items()}


# ---------------------------------------------------------------------------- study
def run_impact_study(
    scenario: Any,
    out_dir: str | os.PathLike[str] | None = None,
    seeds: Iterable[int] = (0,),
    sizes: Iterable[int] = (1000, 2000, 5000, 10000, 20000),
    *,
    algo: str = "pov",
    side: str | Sequence[str] = "buy",
    start_s: float = DEFAULT_START_S,
    duration_s: float | None = None,
    day: int | None = None,
    wake_interval_s: float = 30.0,
    aggression: str = "market",
    participation: float = DEFAULT_PARTICIPATION,
    overrides: Sequence[str] = (),
    decay_multiples: Sequence[float] = DECAY_MULTIPLES,
    vol_horizon: str = "5min",
    path_every: int = 10,
    fit_method: str = "auto",
    n_boot: int = 1000,
    workers: int = 1,
    progress: bool = False,
) -> ImpactStudy:
    """Run meta-orders of every size on every seed against their counterfactuals; fit the law.

    Args:
        scenario: Scenario path, dict or object (an execution agent is added if it has none).
        out_dir: Folder for ``impact.parquet``, ``impact_fit.json`` and
            ``impact_paths.parquet`` (created); ``None`` writes nothing.
        seeds: Seeds; each has its own counterfactual.
        sizes: Meta-order sizes in lots.
        algo: "twap", "vwap" or "pov" (``participation`` is the POV target).
        side: "buy", "sell" or "both".
        start_s, duration_s: Window of the meta-order in seconds after the open of ``day``
            (``duration_s`` None: :func:`default_duration`).
        day: Trading day (0-based) of the meta-order; None: :func:`default_day`.
        wake_interval_s: Seconds between child orders.
        aggression: "market" or "limit_at_touch" child orders.
        overrides: ``key=value`` scenario overrides.
        decay_multiples: Multiples of the duration for the decay columns.
        vol_horizon: Return horizon of the daily volatility.
        path_every: Step stride of the saved impact paths.
        fit_method: See :func:`fit_study`.
        n_boot: Bootstrap replications of the fit's CI.
        workers: Seeds run in parallel in this many processes (1: in this process).
        progress: Show a tqdm progress bar.

    Returns:
        :class:`ImpactStudy`.

    Raises:
        ConfigError: bad arguments.

    Complexity: O(seeds * (1 + sizes * sides) * steps of a day / workers).
    """
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"seeds = {seeds!r}: give one or more seeds >= 0")
    sizes = _check_sizes(sizes)
    sides = _parse_sides(side)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers = {workers!r}: must be an integer >= 1")
    sc = prepare_scenario(
        scenario, overrides, max_size=max(sizes), side=sides, algo=algo, start_s=start_s,
        duration_s=duration_s, day=day, wake_interval_s=wake_interval_s, aggression=aggression,
        participation=participation,
    )  # fmt: skip
    ex = next(g for g in sc["agents"] if g["type"] == "execution" and g["count"])
    day = int(ex["params"]["day"])
    duration_s = float(ex["params"]["end_s"]) - float(ex["params"]["start_s"])
    per_seed = 1 + 1 + len(sizes) * len(sides)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(seeds) * per_seed, unit="run", desc="impact", disable=not progress)
    results: dict[int, tuple[list, pd.DataFrame]] = {}
    try:
        if workers == 1 or len(seeds) == 1:
            for s in seeds:
                results[s] = run_seed(
                    sc, s, sizes, sides, decay_multiples, vol_horizon, path_every, bar.update
                )
        else:
            ctx = multiprocessing.get_context("spawn")
            args = [
                (sc, s, sizes, sides, tuple(decay_multiples), vol_horizon, path_every)
                for s in seeds
            ]
            with ProcessPoolExecutor(min(workers, len(seeds)), mp_context=ctx) as pool:
                futs = [pool.submit(_seed_task, a) for a in args]
                for fut in as_completed(futs):
                    s, rows, paths = fut.result()
                    results[s] = (rows, paths)
                    bar.update(per_seed)
    finally:
        bar.close()
    rows = pd.DataFrame([r for s in seeds for r in results[s][0]])
    paths = pd.concat([results[s][1] for s in seeds], ignore_index=True)
    fit = fit_study(rows, fit_method, n_boot)
    fit.update(seeds=seeds, sizes=sizes, sides=sides, algo=algo, start_s=float(start_s),
               duration_s=duration_s, day=int(day), participation=float(participation))  # fmt: skip
    if algo == "pov":
        step_s = float(sc["simulation"].get("step_seconds") or 1.0)
        late = rows[rows["duration_s"] >= duration_s - step_s]
        if len(late):
            logger.warning(
                "%d of %d POV meta-orders were still open at the end of their window and sent "
                "the rest as one market order; raise participation or duration_s",
                len(late), len(rows),
            )  # fmt: skip
    out = None
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(out / "impact.parquet", index=False)
        paths.to_parquet(out / "impact_paths.parquet", index=False)
        (out / "impact_fit.json").write_text(json.dumps(fit, indent=2) + "\n", encoding="utf-8")
        logger.info("impact study written to %s", out)
    return ImpactStudy(rows=rows, fit=fit, paths=paths, out_dir=out)
