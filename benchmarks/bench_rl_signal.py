"""Evidence that RL learns in our market: PPO on ``scenarios/rl_signal.toml`` vs baselines.

The RL agent sees a noisy early signal of the fundamental (``exogenous``) that the background
traders follow with a lag. PPO is trained within a wall-clock budget (one torch thread), then the
policy and the baselines (random, cash, buy_and_hold, equal_weight) and a scripted oracle
``w = sign(signal)`` play the same evaluation seeds. The table gives mean episode return (sum of
rewards = 100 x log return) with 95% t-intervals; the policy "beats" a baseline when its CI lies
entirely above the baseline's.

Usage: python benchmarks/bench_rl_signal.py [--budget-s 540] [--episodes 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from agents.rl.evaluate import evaluate, format_table, run_episodes, summarize
from agents.rl.sb3 import SB3Config, train_sb3

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "rl_signal.toml"
BASELINES = ["random", "cash", "buy_and_hold", "equal_weight"]
MUST_BEAT = ["random", "buy_and_hold", "equal_weight"]


def ppo_config(**kw: Any) -> SB3Config:
    """PPO settings for the signal task: myopic (low gamma), small MLP, CPU."""
    base = dict(
        algo="ppo",
        learning_rate=1e-3,
        gamma=0.5,
        gae_lambda=0.9,
        n_steps=1024,
        batch_size=256,
        n_epochs=10,
        features_dim=32,
        encoder="mlp",
        aggregator="none",
        net_arch=[64, 64],
        log_std_init=-0.5,
        device="cpu",
    )
    base.update(kw)
    return SB3Config(**base)


def oracle_controller(env, seed: int):
    """Scripted ``w = sign(signal)`` (the exogenous feature) for every RL agent."""

    def act(obs: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for a, o in obs.items():
            w = np.zeros(env.action_space(a).shape, np.float32)
            w[:-1] = np.sign(o["exogenous"][:, 0]) * o["mask"]
            out[a] = w
        return out

    return act, (lambda: None)


def run_experiment(
    scenario: Any = SCENARIO,
    budget_s: float = 540.0,
    max_steps: int = 200_000,
    episodes: int = 5,
    seed: int = 0,
    seed0: int = 10_000,
    cfg: SB3Config | None = None,
    oracle: bool = True,
) -> dict[str, Any]:
    """Train PPO within ``budget_s`` seconds, evaluate vs baselines; return the results.

    Returns a dict with ``summary`` (DataFrame from :func:`agents.rl.evaluate.summarize`),
    ``beats`` (baseline -> policy CI strictly above the baseline's), ``train_seconds``,
    ``trained_steps``, ``eval_seconds``.
    """
    torch.set_num_threads(1)
    cfg = cfg or ppo_config()
    t0 = time.perf_counter()
    policy, history = train_sb3(
        str(scenario), cfg, seed=seed, total_steps=max_steps, time_budget_s=budget_s
    )
    train_s = time.perf_counter() - t0

    def make(env, s):
        agent = env.possible_agents[0]
        return (lambda obs: {agent: policy.act(obs[agent])} if agent in obs else {}), policy.reset

    t1 = time.perf_counter()
    rows, _ = evaluate(str(scenario), make, episodes=episodes, seed0=seed0, baselines=BASELINES)
    if oracle:
        seeds = list(range(seed0, seed0 + episodes))
        o = run_episodes(str(scenario), oracle_controller, seeds)
        o["controller"] = "oracle_sign"
        rows = pd.concat([rows, o], ignore_index=True)
    summary = summarize(rows)
    eval_s = time.perf_counter() - t1
    s = summary.set_index("controller")
    beats = {
        b: bool(s.loc["policy", "return_ci_low"] > s.loc[b, "return_ci_high"]) for b in BASELINES
    }
    return {
        "summary": summary,
        "rows": rows,
        "beats": beats,
        "history": history,
        "train_seconds": train_s,
        "trained_steps": int(policy.meta["trained_steps"]),
        "eval_seconds": eval_s,
        "policy": policy,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(SCENARIO))
    ap.add_argument("--budget-s", type=float, default=540.0, help="training wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=200_000)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seed0", type=int, default=10_000)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--gamma", type=float, default=None)
    ap.add_argument("--log-std-init", type=float, default=None)
    args = ap.parse_args()
    kw = {
        k: v
        for k, v in {
            "learning_rate": args.lr,
            "gamma": args.gamma,
            "log_std_init": args.log_std_init,
        }.items()
        if v is not None
    }
    res = run_experiment(
        args.scenario, args.budget_s, args.max_steps, args.episodes, args.seed, args.seed0,
        ppo_config(**kw),
    )  # fmt: skip
    hist = res["history"]
    print(
        f"machine: {platform.node()} {platform.machine()} cpus={os.cpu_count()} "
        f"load={os.getloadavg()[0]:.2f} torch threads={torch.get_num_threads()}"
    )
    print(
        f"trained {res['trained_steps']} steps in {res['train_seconds']:.0f} s "
        f"({res['trained_steps'] / res['train_seconds']:.0f} steps/s, {len(hist)} episodes); "
        f"evaluation {res['eval_seconds']:.0f} s on seeds {args.seed0}..{args.seed0 + args.episodes - 1}"
    )
    if hist:
        k = max(1, len(hist) // 10)
        curve = [
            np.mean([h["charts/episode_return"] for h in hist[i : i + k]])
            for i in range(0, len(hist), k)
        ]
        print("training episode return (blocks of", k, "):", " ".join(f"{c:+.2f}" for c in curve))
    print(format_table(res["summary"]))
    for b, ok in res["beats"].items():
        print(f"policy CI above {b:14s}: {'YES' if ok else 'no'}")


if __name__ == "__main__":
    main()
