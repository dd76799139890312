"""Evaluate trained policies against baselines on fresh seeds, with 95% confidence intervals.

A "controller" maps the env's observation dict (one entry per live agent) to an action dict.
Trained single-agent policies, multi-agent policies (``act(obs_dict) -> action_dict``) and the
baselines of :mod:`agents.rl.baselines` are all wrapped as controllers; every controller plays
the same seeds, so differences are paired.

Statistics: per controller the mean episode return over K seeds and the 95% CI
``mean ± t_{0.975, K-1} * s / sqrt(K)``; also the final ``log(equity / initial equity)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from agents.rl.baselines import BASELINES, baselines_for
from marketsim.env import parallel_env

Controller = Callable[[dict[str, Any]], dict[str, Any]]


def _t975(df: int) -> float:
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, df))
    except ImportError:  # pragma: no cover - scipy is installed with mesa
        return 1.96


def baseline_controller(env, name: str, seed: int) -> tuple[Controller, Callable[[], None]]:
    """A controller playing baseline ``name`` for every RL agent of ``env``."""
    pols = {
        a: BASELINES[name](env.action_space(a), seed=seed + i)
        for i, a in enumerate(env.possible_agents)
    }

    def act(obs: dict[str, Any]) -> dict[str, Any]:
        return {a: pols[a].act(o) for a, o in obs.items()}

    def reset() -> None:
        for p in pols.values():
            p.reset()

    return act, reset


def run_episodes(
    scenario: Any,
    make_controller: Callable[[Any, int], tuple[Controller, Callable[[], None]]],
    seeds: list[int],
    env_kwargs: dict | None = None,
) -> pd.DataFrame:
    """Play one episode per seed; return rows (seed, agent, return, log_equity, steps)."""
    env = parallel_env(scenario, **(env_kwargs or {}))
    rows = []
    for seed in seeds:
        act, reset = make_controller(env, seed)
        obs, infos = env.reset(seed=seed)
        reset()
        ret = {a: 0.0 for a in env.possible_agents}
        eq0 = {a: infos[a]["equity"] for a in env.possible_agents}
        last_eq = dict(eq0)
        steps = 0
        while env.agents:
            obs, rew, term, trunc, info = env.step(act(obs))
            steps += 1
            for a, r in rew.items():
                ret[a] += r
                last_eq[a] = info[a]["equity"]
        for a in env.possible_agents:
            rows.append(
                {
                    "seed": seed,
                    "agent": a,
                    "return": ret[a],
                    "log_equity": math.log(max(last_eq[a], 1e-9) / eq0[a]),
                    "steps": steps,
                }
            )
    env.close()
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI of return and log equity per controller and agent."""
    out = []
    for (ctrl, agent), g in results.groupby(["controller", "agent"], sort=False):
        k = len(g)
        row = {"controller": ctrl, "agent": agent, "episodes": k}
        for col in ("return", "log_equity"):
            m = float(g[col].mean())
            s = float(g[col].std(ddof=1)) if k > 1 else 0.0
            half = _t975(k - 1) * s / math.sqrt(k) if k > 1 else float("nan")
            row[f"{col}_mean"] = m
            row[f"{col}_ci_low"] = m - half
            row[f"{col}_ci_high"] = m + half
        out.append(row)
    return pd.DataFrame(out)


def evaluate(
    scenario: Any,
    policy_controller: Callable[[Any, int], tuple[Controller, Callable[[], None]]] | None,
    episodes: int = 5,
    seed0: int = 10_000,
    baselines: list[str] | None = None,
    env_kwargs: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate a policy (if given) and baselines on seeds ``seed0 .. seed0 + episodes - 1``.

    Returns ``(per-episode rows, summary)``.
    """
    seeds = list(range(seed0, seed0 + episodes))
    probe = parallel_env(scenario, **(env_kwargs or {}))
    if baselines is None:
        names: list[str] = []
        for a in probe.possible_agents:
            for b in baselines_for(probe.action_space(a)):
                if b not in names:
                    names.append(b)
        baselines = [
            b
            for b in names
            if all(b in baselines_for(probe.action_space(a)) for a in probe.possible_agents)
        ]
    probe.close()
    frames = []
    if policy_controller is not None:
        df = run_episodes(scenario, policy_controller, seeds, env_kwargs)
        df["controller"] = "policy"
        frames.append(df)
    for b in baselines:
        df = run_episodes(
            scenario, lambda env, s, b=b: baseline_controller(env, b, s), seeds, env_kwargs
        )
        df["controller"] = b
        frames.append(df)
    res = pd.concat(frames, ignore_index=True)
    return res, summarize(res)


def format_table(summary: pd.DataFrame) -> str:
    """Plain-text table: controller, agent, mean return [95% CI], mean log equity [95% CI]."""
    lines = [
        f"{'controller':14s} {'agent':10s} {'return mean [95% CI]':>34s} "
        f"{'log equity mean [95% CI]':>36s}"
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"{r['controller']:14s} {r['agent']:10s} "
            f"{r['return_mean']:>+10.5f} [{r['return_ci_low']:+.5f}, {r['return_ci_high']:+.5f}] "
            f"{r['log_equity_mean']:>+10.5f} [{r['log_equity_ci_low']:+.5f}, "
            f"{r['log_equity_ci_high']:+.5f}]"
        )
    return "\n".join(lines)


def plot_comparison(summary: pd.DataFrame, path) -> None:
    """Bar chart of mean return with 95% CI error bars per controller (first agent)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    agents = list(dict.fromkeys(summary["agent"]))
    width = 0.8 / max(1, len(agents))
    ctrls = list(dict.fromkeys(summary["controller"]))
    x = np.arange(len(ctrls))
    for i, a in enumerate(agents):
        s = summary[summary.agent == a].set_index("controller").reindex(ctrls)
        err = np.vstack([s.return_mean - s.return_ci_low, s.return_ci_high - s.return_mean])
        ax.bar(x + i * width, s.return_mean, width, yerr=np.nan_to_num(err), capsize=3, label=a)
    ax.set_xticks(x + width * (len(agents) - 1) / 2, ctrls)
    ax.set_ylabel("episode return (sum of rewards)")
    ax.set_title("Policy vs baselines (mean, 95% CI)")
    ax.axhline(0, color="grey", lw=0.8)
    if len(agents) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
