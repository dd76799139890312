"""Competitive RL study on ``scenarios/rl_competition.toml``: who wins, and why.

Two RL market makers (``rl_mm_0``, ``rl_mm_1``; "quotes" mode: per asset a bid and an ask as
offsets from the mid and sizes, replacing their quotes at every decision) and one RL portfolio
manager (``rl_pm``; "weights" mode) trade
among scripted noise, value, momentum traders and two scripted market makers.

Steps:

1. Train MAPPO (parameter sharing between the two makers, a separate network for the PM,
   centralised critic) for ``--steps`` joint env steps on episodes of ``--max-episode-steps``
   decisions (5 model seconds each). PPO settings as for short episodes:
   ``bootstrap_truncation=False``, ``squash_mean_reg=0.1``.
2. Play ``--episodes`` evaluation episodes (fresh seeds ``--seed0 ..``, the same seeds for
   every controller, so comparisons are paired) with recording on (trades, quotes, accounts,
   positions, orders) for these controllers:

   * ``mappo``: the trained policy for all three RL agents (deterministic actions);
   * ``random``: uniform random actions for all three;
   * ``passive+cash``: the makers quote both sides at the touch with a fixed size
     (``passive_maker``), the PM stays in cash;
   * ``skewed+cash``: inventory-skewed makers (``skewed_maker``, Avellaneda-Stoikov-like:
     quotes shifted against the position change), the PM in cash;
   * ``skewed+eqw``: skewed makers, the PM holds equal weights (all in ABC): a large buyer;
   * ``idle``: every RL agent does nothing (cash policy) — the market *without* RL agents
     (their accounts exist but send no orders), the reference for spread and volatility.

3. Per controller and agent: P&L as ``log(equity_end / equity_start)`` (mean and 95% CI over
   episodes, t-interval), the same with the end positions valued at the fundamental instead of
   the mid (``log_equity_fund``: without the agent's own temporary impact in its marks), maker metrics from :func:`analysis.competition.competition_metrics`
   (maker/taker volume and maker share of all volume, mean |inventory| and end inventory in
   lots relative to the start, quoted spread in ticks while two-sided, time share at the best
   bid/ask, share of top-of-book depth), and the market's time-averaged quoted spread (ticks)
   and the volatility of 60-s mid log returns (bps) over the evaluated part of the episode.

Writes ``<out>/rl_competition_eval.csv`` (one row per episode x controller x agent),
``<out>/rl_competition_summary.csv``, ``<out>/rl_competition_market.csv``,
``<out>/rl_competition_training.csv`` (learning curve), ``<out>/rl_competition.png`` and the
trained policy ``<out>/rl_competition_policy/policy.pt``; prints the tables, the machine and
the timings.

Usage::

    python benchmarks/bench_rl_competition.py                      # train ~8 min, then evaluate
    python benchmarks/bench_rl_competition.py --steps 20000 --episodes 5   # quicker
    python benchmarks/bench_rl_competition.py --policy DIR         # evaluate a saved policy
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from marketsim.book.constants import NO_PRICE

logger = logging.getLogger(__name__)

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "rl_competition.toml"
#: MAPPO settings that keep PPO stable on short episodes (see agents/rl/mappo.py).
PPO_SHORT = {"bootstrap_truncation": False, "squash_mean_reg": 0.1}
CONTROLLERS = ("mappo", "random", "passive+cash", "skewed+cash", "skewed+eqw", "idle")
#: Baseline per (controller, agent kind).
MIXES = {
    "random": {"mm": "random", "pm": "random"},
    "passive+cash": {"mm": "passive_maker", "pm": "cash"},
    "skewed+cash": {"mm": "skewed_maker", "pm": "cash"},
    "skewed+eqw": {"mm": "skewed_maker", "pm": "equal_weight"},
    "idle": {"mm": "cash", "pm": "cash"},
}


def _t975(df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, df)) if df > 0 else float("nan")


def mean_ci(x: pd.Series) -> tuple[float, float]:
    """Mean and 95% t-interval half-width of ``x`` (NaN half-width for one value). O(n)."""
    x = x.dropna()
    k = len(x)
    if k == 0:
        return float("nan"), float("nan")
    half = _t975(k - 1) * float(x.std(ddof=1)) / math.sqrt(k) if k > 1 else float("nan")
    return float(x.mean()), half


def baseline_mix(mix: dict[str, str]):
    """Controller factory playing baseline ``mix['mm']`` for makers and ``mix['pm']`` for the PM."""
    from agents.rl.baselines import BASELINES

    def make(env, seed):
        pols = {
            a: BASELINES[mix["mm" if a.startswith("rl_mm") else "pm"]](
                env.action_space(a), seed=seed + 7919 * i
            )
            for i, a in enumerate(env.possible_agents)
        }

        def act(obs):
            return {a: pols[a].act(o) for a, o in obs.items()}

        def reset():
            for p in pols.values():
                p.reset()

        return act, reset

    return make


def policy_controller(policy):
    """Controller factory of a trained multi-agent policy (deterministic actions)."""

    def make(env, seed):
        return (lambda obs: policy.act(obs, deterministic=True)), (lambda: None)

    return make


def market_stats(quotes: pd.DataFrame, tick: float, first_step: int) -> dict[str, float]:
    """Time-averaged quoted spread (ticks), share of two-sided time, 60-s mid volatility (bps).

    Complexity: O(rows).
    """
    q = quotes[quotes["step"] >= first_step]
    two = q["bid"].notna() & q["ask"].notna()
    spr = ((q["ask"] - q["bid"]) / tick)[two]
    mid = q["mid"].ffill().to_numpy(float)
    m60 = mid[::60]
    r = np.diff(np.log(m60[np.isfinite(m60)]))
    return {
        "spread_ticks": float(spr.mean()) if len(spr) else float("nan"),
        "two_sided_share": float(two.mean()) if len(q) else float("nan"),
        "vol60_bps": float(r.std(ddof=1) * 1e4) if len(r) > 1 else float("nan"),
    }


def sample_quotes(book, acc: dict[str, int], samples: dict[str, list[tuple]]) -> None:
    """Append each maker's (own bid, own ask, market bid, market ask, own lots at the touch,
    market lots at the touch) read from the live book; ``NaN`` for an empty side.

    Complexity: O(live orders).
    """
    o = book.orders()
    bb, bq, ba, aq = book.top()
    mb = float(bb) if bb != NO_PRICE else math.nan
    ma = float(ba) if ba != NO_PRICE else math.nan
    for a, smp in samples.items():
        mine = o[o["owner"] == acc[a]]
        bids, asks = mine[mine["side"] > 0], mine[mine["side"] < 0]
        ob = float(bids["price"].max()) if len(bids) else math.nan
        oa = float(asks["price"].min()) if len(asks) else math.nan
        q_touch = float(
            bids["qty"][bids["price"] == bb].sum() + asks["qty"][asks["price"] == ba].sum()
        )
        smp.append((ob, oa, mb, ma, q_touch, float(bq + aq)))


def quote_stats(smp: list[tuple]) -> dict[str, float]:
    """Quoting metrics of one maker from its decision-time samples (see :func:`sample_quotes`).

    ``quoting_share``: share of samples with any own order live; ``two_sided_share``: with
    both sides; ``quoted_spread_ticks``: mean own ask - own bid while two-sided;
    ``at_touch_share``: own best bid or ask equal to the market's; ``top_depth_share``: mean
    own share of the lots at the market's best bid + ask. Complexity: O(samples).
    """
    if not smp:
        keys = ("quoting_share", "two_sided_share", "quoted_spread_ticks", "at_touch_share")
        return dict.fromkeys((*keys, "top_depth_share"), math.nan)
    x = np.asarray(smp, float)
    ob, oa, mb, ma, qt, qm = x.T
    has_b, has_a = np.isfinite(ob), np.isfinite(oa)
    two = has_b & has_a
    touch = (has_b & (ob == mb)) | (has_a & (oa == ma))
    return {
        "quoting_share": float(np.mean(has_b | has_a)),
        "two_sided_share": float(np.mean(two)),
        "quoted_spread_ticks": float(np.mean((oa - ob)[two])) if two.any() else math.nan,
        "at_touch_share": float(np.mean(touch)),
        "top_depth_share": float(np.mean(np.where(qm > 0, qt / np.maximum(qm, 1), 0.0))),
    }


def play(make, name: str, seeds: list[int], env_kwargs: dict) -> tuple[list[dict], list[dict]]:
    """Play one recorded episode per seed; return (agent rows, market rows)."""
    from analysis.competition import competition_metrics
    from analysis.io import Run
    from marketsim.env import parallel_env

    env = parallel_env(SCENARIO, record=True, **env_kwargs)
    tick = float(env.scenario.assets[0].tick_size)
    rows, mrows = [], []
    for seed in seeds:
        act, reset = make(env, seed)
        obs, infos = env.reset(seed=seed)
        reset()
        slot = env.model.exchange.slot_of("ABC")
        acc = {a: env.rl[a].account for a in env.possible_agents}
        makers = [a for a in env.possible_agents if a.startswith("rl_mm")]
        samples: dict[str, list[tuple]] = {a: [] for a in makers}
        eq0 = {a: infos[a]["equity"] for a in env.possible_agents}
        eq1 = dict(eq0)
        # the endowment's value at the start, to split P&L into holding and trading parts
        marks0 = env._marks().copy()
        vals0 = {a: env._equity_parts(a, marks0)[1].copy() for a in env.possible_agents}
        ret = dict.fromkeys(env.possible_agents, 0.0)
        while env.agents:
            obs, rew, _, _, info = env.step(act(obs))
            for a, r in rew.items():
                ret[a] += r
                eq1[a] = info[a]["equity"]
            sample_quotes(env.model.exchange.books[slot], acc, samples)
        m = env.model
        rec = m.recorder
        run = Run(
            trades=m.trades(),
            quotes=m.quotes(),
            accounts=rec.frame("accounts"),
            positions=rec.frame("positions"),
            events=rec.frame("events"),
            summary={"assets": {"ABC": {"tick_size": tick}}},
        )
        mm_types = run.accounts.drop_duplicates("account")
        scripted = mm_types.loc[mm_types["agent_type"] == "market_maker", "account"].tolist()
        cm = competition_metrics(run, agent_types=[*acc.values(), *scripted], asset="ABC")
        cm = cm.set_index("account")
        total_vol = float(run.trades["qty"].sum())
        marks1 = env._marks()
        # the same portfolios valued at the fundamental instead of the mid: strips the part
        # of mark-to-market P&L that is the agent's own (temporary) price impact
        fund = np.full_like(marks1, np.nan)
        for sl in m.exchange.live_slots():
            fund[sl] = m.fundamental_ticks(sl)
        ok = np.isfinite(marks0) & np.isfinite(marks1) & (marks0 > 0)
        growth = np.where(ok, marks1 / np.where(ok, marks0, 1.0) - 1.0, 0.0)
        for a in env.possible_agents:
            c = cm.loc[acc[a]]
            rows.append(
                {
                    "controller": name,
                    "seed": seed,
                    "agent": a,
                    "return": ret[a],
                    "log_equity": math.log(max(eq1[a], 1e-9) / eq0[a]),
                    "pnl": eq1[a] - eq0[a],
                    "log_equity_fund": math.log(max(env._equity(a, fund), 1e-9) / eq0[a]),
                    # P&L over simply holding the initial endowment (shares + cash)
                    "excess_log_equity": math.log(
                        max(eq1[a], 1e-9) / (eq0[a] + float((vals0[a] * growth).sum()))
                    ),
                    "maker_volume": float(c["maker_volume"]),
                    "taker_volume": float(c["taker_volume"]),
                    "maker_share": float(c["maker_share"]),
                    "inv_mean_abs": float(c["inv_mean_abs"]),
                    "inv_final": float(c["inv_final"]),
                    **quote_stats(samples.get(a, [])),
                }
            )
        sm = cm.loc[scripted]
        mrows.append(
            {
                "controller": name,
                "seed": seed,
                **market_stats(run.quotes, tick, env.warmup_steps),
                "volume_lots": total_vol,
                "scripted_mm_pnl": float(sm["pnl"].sum()),
                "scripted_mm_maker_share": float(sm["maker_share"].sum()),
            }
        )
    env.close()
    return rows, mrows


def summarize(df: pd.DataFrame, keys: list[str], cols: list[str]) -> pd.DataFrame:
    """Mean and 95% CI half-width of ``cols`` per group of ``keys``. O(n)."""
    out = []
    for k, g in df.groupby(keys, sort=False):
        row = dict(zip(keys, k if isinstance(k, tuple) else (k,), strict=True))
        row["episodes"] = len(g)
        for c in cols:
            row[c], row[f"{c}_ci"] = mean_ci(g[c])
        out.append(row)
    return pd.DataFrame(out)


def plot(summary: pd.DataFrame, market: pd.DataFrame, path: Path) -> None:
    """Bars: P&L per agent and controller marked at the mid and at the fundamental (95% CI);
    market spread and volatility."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 4))
    FigureCanvasAgg(fig)
    ctrls = list(dict.fromkeys(summary["controller"]))
    agents = list(dict.fromkeys(summary["agent"]))
    x = np.arange(len(ctrls))
    w = 0.8 / len(agents)
    for j, (col, lab) in enumerate(
        (
            ("log_equity", "P&L, marked at the mid (bps)"),
            ("log_equity_fund", "P&L, marked at the fundamental (bps)"),
        )
    ):
        ax = fig.add_subplot(1, 4, 1 + j)
        for i, a in enumerate(agents):
            s = summary[summary.agent == a].set_index("controller").reindex(ctrls)
            ax.bar(
                x + i * w,
                s[col] * 1e4,
                w,
                yerr=np.nan_to_num(s[f"{col}_ci"] * 1e4),
                capsize=3,
                label=a,
            )
        ax.set_xticks(x + w * (len(agents) - 1) / 2, ctrls, rotation=20, fontsize=8)
        ax.set_ylabel(lab)
        ax.axhline(0, color="grey", lw=0.8)
        ax.legend(fontsize=8)
    m = market.set_index("controller").reindex(ctrls)
    for j, (col, lab) in enumerate(
        (("spread_ticks", "market quoted spread (ticks)"), ("vol60_bps", "60-s mid vol (bps)"))
    ):
        ax = fig.add_subplot(1, 4, 3 + j)
        ax.bar(x, m[col], yerr=np.nan_to_num(m[f"{col}_ci"]), capsize=3, color=f"C{3 + j}")
        ax.set_xticks(x, ctrls, rotation=20, fontsize=8)
        ax.set_ylabel(lab)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=80_000, help="MAPPO joint env steps")
    ap.add_argument("--max-episode-steps", type=int, default=240, help="decisions per episode")
    ap.add_argument("--episodes", type=int, default=8, help="evaluation episodes (K >= 5)")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--seed0", type=int, default=10_000, help="first evaluation seed")
    ap.add_argument("--policy", type=Path, default=None, help="skip training; load DIR/policy.pt")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    torch.set_num_threads(1)
    from agents.rl import mappo
    from marketsim.env import parallel_env

    args.out.mkdir(parents=True, exist_ok=True)
    env_kwargs = {"max_steps": args.max_episode_steps}
    t0 = time.perf_counter()
    if args.policy is None:
        cfg = mappo.MAPPOConfig(**PPO_SHORT)
        hist: list[dict[str, float]] = []

        def log(row: dict[str, float]) -> None:
            hist.append(dict(row))
            if len(hist) % 10 == 0:
                print(
                    f"  step {row['global_step']:>8.0f}  return "
                    f"{row.get('charts/episode_return', float('nan')):+.4f}  "
                    f"sps {row['charts/sps']:.0f}",
                    flush=True,
                )

        policy, _ = mappo.train(
            lambda: parallel_env(SCENARIO, **env_kwargs),
            cfg,
            seed=args.seed,
            total_steps=args.steps,
            log_fn=log,
        )
        pdir = args.out / "rl_competition_policy"
        pdir.mkdir(exist_ok=True)
        policy.save(pdir / "policy.pt")
        pd.DataFrame(hist).to_csv(args.out / "rl_competition_training.csv", index=False)
    else:
        policy = mappo.MAPPOPolicy.load(args.policy / "policy.pt")
    train_s = time.perf_counter() - t0

    seeds = list(range(args.seed0, args.seed0 + args.episodes))
    rows, mrows, eval_s = [], [], {}
    for name in CONTROLLERS:
        t1 = time.perf_counter()
        make = policy_controller(policy) if name == "mappo" else baseline_mix(MIXES[name])
        r, m = play(make, name, seeds, env_kwargs)
        rows += r
        mrows += m
        eval_s[name] = time.perf_counter() - t1
    per_ep = pd.DataFrame(rows)
    mk = pd.DataFrame(mrows)
    per_ep.to_csv(args.out / "rl_competition_eval.csv", index=False)
    cols = [
        "log_equity",
        "log_equity_fund",
        "excess_log_equity",
        "pnl",
        "return",
        "maker_volume",
        "taker_volume",
        "maker_share",
        "inv_mean_abs",
        "inv_final",
        "quoting_share",
        "quoted_spread_ticks",
        "two_sided_share",
        "at_touch_share",
        "top_depth_share",
    ]
    summ = summarize(per_ep, ["controller", "agent"], cols)
    msum = summarize(
        mk,
        ["controller"],
        [
            "spread_ticks",
            "two_sided_share",
            "vol60_bps",
            "volume_lots",
            "scripted_mm_pnl",
            "scripted_mm_maker_share",
        ],
    )
    summ.to_csv(args.out / "rl_competition_summary.csv", index=False)
    msum.to_csv(args.out / "rl_competition_market.csv", index=False)
    plot(summ, msum, args.out / "rl_competition.png")

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    print(f"\nmachine: {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch threads 1")  # fmt: skip
    print(
        f"training: MAPPO {args.steps} steps x episodes of {args.max_episode_steps} decisions "
        f"in {train_s:.0f} s"
        if args.policy is None
        else f"policy loaded from {args.policy}"
    )
    print("evaluation (s): " + ", ".join(f"{k} {v:.1f}" for k, v in eval_s.items()))
    print(f"\nper agent, {args.episodes} episodes (seeds {seeds[0]}..{seeds[-1]}), mean ± 95% CI:")
    for _, r in summ.iterrows():
        line = (
            f"{r['controller']:13s} {r['agent']:8s} logeq {r['log_equity'] * 1e4:+8.2f} "
            f"± {r['log_equity_ci'] * 1e4:6.2f} bps  vs hold {r['excess_log_equity'] * 1e4:+8.2f} "
            f"± {r['excess_log_equity_ci'] * 1e4:6.2f} bps  at fundamental "
            f"{r['log_equity_fund'] * 1e4:+8.2f} ± {r['log_equity_fund_ci'] * 1e4:6.2f} bps  "
            f"pnl {r['pnl']:+9.0f}  "
            f"|inv| {r['inv_mean_abs']:7.1f} end {r['inv_final']:+7.1f}  "
            f"maker vol {r['maker_volume']:7.0f} share {r['maker_share']:.3f}  "
            f"taker vol {r['taker_volume']:7.0f}"
        )
        if r["agent"].startswith("rl_mm"):
            line += (
                f"  qspread {r['quoted_spread_ticks']:5.2f} ticks 2-sided {r['two_sided_share']:.2f}"
                f" at-touch {r['at_touch_share']:.2f} quoting {r['quoting_share']:.2f} top-depth {r['top_depth_share']:.3f}"
            )
        print(line)
    print("\nmarket (mean ± 95% CI):")
    for _, r in msum.iterrows():
        print(
            f"{r['controller']:13s} spread {r['spread_ticks']:5.2f} ± {r['spread_ticks_ci']:.2f} "
            f"ticks  vol60 {r['vol60_bps']:5.2f} ± {r['vol60_bps_ci']:.2f} bps  "
            f"volume {r['volume_lots']:7.0f}  scripted MMs pnl {r['scripted_mm_pnl']:+8.0f} "
            f"maker share {r['scripted_mm_maker_share']:.3f}"
        )
    print(f"\nwritten to {args.out}/rl_competition_*.csv and rl_competition.png")


if __name__ == "__main__":
    main()
