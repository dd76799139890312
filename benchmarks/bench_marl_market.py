"""Validate the multi-agent algorithms on our market: a team of three signal traders.

``scenarios/rl_team.toml``: three RL agents (10 k$ each) see the same noisy 60-s-early view of a
fast mean-reverting fundamental that the background value traders follow with a lag, and trade
one book through market orders every 10 s (174 decisions per half-hour episode). Reward: 100 x
the log return of the agent's equity per decision. IPPO, MAPPO and MADDPG use the "weights"
mode (target weight in [-1, 1], shorting allowed); QMIX, which needs discrete actions, uses
``action_mode = "discrete"`` (sell / hold / buy 50 shares per decision) and maximises the team
reward (the sum of the three agents' rewards).

Each (algorithm, seed) trains for a fixed budget of joint env steps (sized for ~2-4 min on one
core of the 2-core dev VM; ``--scale`` multiplies it), then its deterministic policy plays
``--eval-episodes`` fresh evaluation seeds (the same seeds for every policy and baseline, so the
comparison is paired). Baselines on the same seeds: ``random`` (uniform actions), ``cash``,
``buy_and_hold``, ``equal_weight`` (weights mode only) and the scripted ``oracle`` that holds the
sign of the signal (weights: ``w = sign(signal)``; discrete: buy below +50 % / sell above -50 %
of equity) -- a reference for what the signal is worth, not a bound.

Metric: *per-agent return* = an agent's summed reward over the episode (100 x log return),
averaged over the 3 agents of the episode. Mean +- 95% CI (``1.96 * sd / sqrt(n)``) over all
evaluation episodes of all training seeds; seed means listed separately.

Writes ``<out>/marl_market_curves.csv`` (training curves: per-agent return of the episodes that
finished, exploring policy), ``<out>/marl_market_eval.csv`` (one row per policy/baseline) and
``<out>/marl_market.png``. Results and discussion: ``docs/marl.md``.

Usage::

    python benchmarks/bench_marl_market.py                      # 4 algos x 3 seeds, 2 jobs
    python benchmarks/bench_marl_market.py --algos mappo --seeds 1 --scale 0.2   # quick look
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = ROOT / "scenarios" / "rl_team.toml"
#: Scenario overrides per action mode.
OVERRIDES = {"weights": [], "discrete": ["rl_agents.team.action_mode=discrete"]}
#: Action mode each algorithm trains in.
MODE = {"ippo": "weights", "mappo": "weights", "maddpg": "weights", "qmix": "discrete"}
#: Joint env steps per seed at --scale 1 (sized for ~2-4 min each on one core).
BUDGETS = {"ippo": 20_000, "mappo": 20_000, "maddpg": 10_000, "qmix": 20_000}
#: Baselines per action mode (``agents.rl.baselines``) plus the scripted oracle.
BASELINES = {
    "weights": ["random", "cash", "buy_and_hold", "equal_weight", "oracle"],
    "discrete": ["random", "cash", "buy_and_hold", "oracle"],
}
EVAL_SEED = 20_000
#: Discount of every algorithm. The signal looks 6 decisions ahead and the reward of a
#: decision is the next 10 s of P&L, so a short horizon suffices (bench_rl_signal's tuned PPO
#: for the single-agent version of this task uses 0.5 too).
GAMMA = 0.5


def net_config() -> Any:
    """A small market encoder (MLP over the 4-decision window, no cross-asset mixing: one
    asset) and the generic Box head (a tanh-squashed Gaussian target weight in [-1, 1], so
    the policy can go short; the Dirichlet portfolio head is long-only)."""
    from agents.rl.common import NetConfig

    return NetConfig(
        hidden_sizes=(64, 64),
        activation="relu",
        market_encoder="mlp",
        market_aggregator="none",
        market_embed_dim=16,
        market_global_dim=32,
        market_heads=False,
    )


def algo_config(algo: str, steps: int) -> tuple[Any, Any]:
    """(module, config) of ``algo`` for the market task with a budget of ``steps``."""
    from agents.rl import ippo, maddpg, mappo, qmix

    net = net_config()
    if algo in ("ippo", "mappo"):
        module = ippo if algo == "ippo" else mappo
        cfg = module.MAPPOConfig(
            centralised_critic=algo == "mappo",
            gamma=GAMMA,
            gae_lambda=0.9,
            num_envs=8,
            num_steps=64,
            update_epochs=10,
            num_minibatches=4,
            learning_rate=1e-3,
            net=net,
        )
        return module, cfg
    if algo == "maddpg":
        return maddpg, maddpg.MADDPGConfig(gamma=GAMMA, net=net)
    cfg = qmix.QMIXConfig(
        gamma=GAMMA,
        learning_starts=2_000,
        epsilon_anneal_steps=steps // 2,
        # one gradient step per 5 joint steps: with PyMARL's one per 25 (the default, about one
        # per episode on MPE) QMIX reached +1.6 here (seed means 1.73 1.74 1.39), with this
        # +2.7 (seeds 0, 1), for ~25 % more training time
        train_frequency=5,
        net=dataclasses.replace(net, market_heads=True),  # per-asset sell/hold/buy utilities
    )
    return qmix, cfg


def make_env(mode: str):
    """The team scenario in ``mode`` ("weights" or "discrete")."""
    from marketsim.env import parallel_env

    return parallel_env(SCENARIO, overrides=OVERRIDES[mode])


def _env_weights():
    return make_env("weights")


def _env_discrete():
    return make_env("discrete")


def oracle_controller(env, seed: int):
    """Scripted: hold the sign of the signal (the exogenous feature) with every agent."""
    import gymnasium as gym

    def act(obs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a, o in obs.items():
            sig = np.sign(o["exogenous"][:, 0]) * o["mask"]
            space = env.action_space(a)
            if isinstance(space, gym.spaces.MultiDiscrete):
                w = o["portfolio"][: len(sig)]  # current weights
                buy = (sig > 0) & (w < 0.5)
                sell = (sig < 0) & (w > -0.5)
                out[a] = np.where(buy, 2, np.where(sell, 0, 1)).astype(np.int64)
            else:
                out[a] = np.append(sig, 0.0).astype(np.float32)
        return out

    return act, (lambda: None)


def eval_rows(mode: str, make_controller, n_episodes: int) -> np.ndarray:
    """(n_episodes, n_agents) returns of a controller on the evaluation seeds."""
    from agents.rl.evaluate import run_episodes

    seeds = list(range(EVAL_SEED, EVAL_SEED + n_episodes))
    df = run_episodes(SCENARIO, make_controller, seeds, {"overrides": OVERRIDES[mode]})
    return df.pivot(index="seed", columns="agent", values="return").to_numpy()


def run_one(job: tuple[str, int, int, int]) -> dict[str, Any]:
    """Train and evaluate one (algorithm, seed), or evaluate one baseline; in a worker."""
    import torch

    torch.set_num_threads(1)
    from agents.rl.evaluate import baseline_controller

    name, seed, steps, n_eval = job
    t0 = time.perf_counter()
    curves: list[tuple[float, float]] = []
    if name.startswith("base:"):
        _, mode, base = name.split(":")
        if base == "oracle":
            make = oracle_controller
        else:
            make = lambda env, s: baseline_controller(env, base, s)  # noqa: E731
        returns = eval_rows(mode, make, n_eval)
        return {"name": name, "seed": seed, "steps": 0, "train_s": 0.0, "returns": returns,
                "curves": curves}  # fmt: skip
    mode = MODE[name]
    module, cfg = algo_config(name, steps)
    env_fn = _env_discrete if mode == "discrete" else _env_weights
    policy, history = module.train(env_fn, cfg, seed=seed, total_steps=steps)
    train_s = time.perf_counter() - t0
    curves = [
        (h["global_step"], h["charts/episode_return"])
        for h in history
        if "charts/episode_return" in h
    ]
    make = lambda env, s: (lambda obs: policy.act(obs, True), lambda: None)  # noqa: E731
    returns = eval_rows(mode, make, n_eval)
    return {"name": name, "seed": seed, "steps": steps, "train_s": train_s, "returns": returns,
            "curves": curves}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algos", nargs="+", default=["ippo", "mappo", "maddpg", "qmix"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the step budgets")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from the CSVs")
    ap.add_argument(
        "--merge", action="store_true",
        help="update only this run's policies in existing CSVs (e.g. rerun --algos qmix)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.plot_only:
        plot(args.out)
        return

    modes = list(dict.fromkeys(MODE[a] for a in args.algos))
    jobs = [(f"base:{m}:{b}", 0, 0, args.eval_episodes) for m in modes for b in BASELINES[m]]
    train_jobs = [
        (a, s, int(BUDGETS[a] * args.scale), args.eval_episodes)
        for s in range(args.seeds)
        for a in args.algos
    ]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.map(run_one, train_jobs + jobs, chunksize=1)
    wall = time.perf_counter() - t0

    from agents.rl.common import mean_ci95

    print(
        f"rl_team (3 signal traders), {args.seeds} seeds, {args.eval_episodes} eval episodes "
        f"(seeds {EVAL_SEED}..), wall {wall:.0f} s with {args.jobs} jobs"
    )
    header = (
        f"{'policy':22s} {'steps':>7s} {'train s':>8s} {'per-agent return':>18s} "
        f"{'vs random':>8s}  seed means"
    )
    print(header)
    print("-" * len(header))
    rows = []
    names = [j[0] for j in jobs] + list(args.algos)
    for name in names:
        rs = [r for r in results if r["name"] == name]
        per_ep = np.concatenate([r["returns"].mean(1) for r in rs])
        m, ci = mean_ci95(per_ep)
        mode = name.split(":")[1] if name.startswith("base:") else MODE[name]
        label = name.replace("base:", "") if name.startswith("base:") else f"{name}:{mode}"
        rand = [r for r in results if r["name"] == f"base:{mode}:random"]
        diff = m - float(rand[0]["returns"].mean(1).mean()) if rand else float("nan")
        seed_means = " ".join(f"{r['returns'].mean():+.3f}" for r in rs)
        train_s = float(np.mean([r["train_s"] for r in rs]))
        print(
            f"{label:22s} {rs[0]['steps']:7d} {train_s:8.0f} {m:+9.3f} ± {ci:6.3f} "
            f"{diff:+8.3f}  {seed_means}"
        )
        rows.append(
            {
                "policy": label,
                "action_mode": mode,
                "steps": rs[0]["steps"],
                "train_s": round(train_s, 1),
                "episodes": len(per_ep),
                "per_agent_mean": m,
                "per_agent_ci95": ci,
                "minus_random": diff,
                "seed_means": seed_means,
            }
        )
    curve_rows = [
        {"algo": r["name"], "seed": r["seed"], "global_step": int(step),
         "episode_return_per_agent": f"{ret:.4f}"}
        for r in results
        for step, ret in r["curves"]
    ]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    eval_path, curves_path = args.out / "marl_market_eval.csv", args.out / "marl_market_curves.csv"
    if args.merge:  # keep the other policies' rows of an earlier run
        rows = _merge(eval_path, rows, "policy")
        curve_rows = _merge(curves_path, curve_rows, "algo")
    for path, table in ((eval_path, rows), (curves_path, curve_rows)):
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    plot(args.out)
    print(
        f"wrote {args.out / 'marl_market_eval.csv'}, {args.out / 'marl_market_curves.csv'}, "
        f"{args.out / 'marl_market.png'}"
    )


def _merge(path: Path, new: list[dict], key: str) -> list[dict]:
    """Rows of the CSV at ``path`` whose ``key`` is not among ``new``'s (updated in place where
    they were, new keys appended). O(rows)."""
    if not path.is_file():
        return new
    with open(path, newline="") as f:
        old = list(csv.DictReader(f))
    fresh: dict[str, list[dict]] = {}
    for row in new:
        fresh.setdefault(str(row[key]), []).append(row)
    out: list[dict] = []
    for row in old:
        k = row[key]
        if k not in fresh:
            out.append(row)
        elif fresh[k]:
            out.extend(fresh.pop(k))
            fresh[k] = []
    out.extend(row for rows in fresh.values() for row in rows)
    return out


def plot(out: Path) -> None:
    """Training curves (mean over seeds, min-max band) from ``marl_market_curves.csv``, with
    the weights-mode baselines of ``marl_market_eval.csv`` as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    curves = pd.read_csv(out / "marl_market_curves.csv")
    evals = pd.read_csv(out / "marl_market_eval.csv")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = {"weights:random": ":", "weights:equal_weight": "--", "weights:oracle": "-."}
    for _, row in evals.iterrows():
        if row["policy"] in styles:
            ax.axhline(
                row["per_agent_mean"], color="grey", ls=styles[row["policy"]],
                label=f"{row['policy']} (eval)",
            )  # fmt: skip
    for algo, g in curves.groupby("algo", sort=False):
        runs = [r["episode_return_per_agent"].to_numpy() for _, r in g.groupby("seed")]
        n = min(len(r) for r in runs)
        steps = g[g.seed == g.seed.iloc[0]]["global_step"].to_numpy()[:n]
        k = max(1, n // 20)
        kernel = np.ones(k) / k
        sm = np.array([np.convolve(r[:n], kernel, mode="valid") for r in runs])
        x = steps[k - 1 :]
        line = ax.plot(x, sm.mean(0), label=f"{algo} ({MODE.get(algo, '?')}, train)")
        ax.fill_between(x, sm.min(0), sm.max(0), alpha=0.2, color=line[0].get_color())
    ax.set_xlabel("joint env steps")
    ax.set_ylabel("episode return per agent (100 x log return)")
    ax.set_title("rl_team market: training curves (exploring), min-max over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "marl_market.png", dpi=120)


if __name__ == "__main__":
    main()
