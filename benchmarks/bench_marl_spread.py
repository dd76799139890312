"""Validate the multi-agent algorithms on MPE ``simple_spread_v3`` (mpe2): N=3, max_cycles=25.

MAPPO, IPPO and QMIX use the discrete actions (the env's default and the MAPPO paper's
setting); MADDPG the continuous ones. Each algorithm trains
for a fixed budget of joint env steps per seed (sized for ~2-4 minutes on one core of the
2-core dev machine), then its deterministic policy is evaluated for ``--eval-episodes``
episodes against the uniform random policy. Prints a table, writes learning curves to
``<out>/marl_spread_curves.csv``, final evaluations to ``<out>/marl_spread_eval.csv`` and a
plot to ``<out>/marl_spread.png``.

Metric: *per-agent return* = an agent's summed reward over the episode, averaged over the 3
agents (mpe2/PettingZoo reward: ``r_i = 0.5 * G + 0.5 * c_i`` with ``G = -sum_landmarks
min_agent dist`` and ``c_i = -(collisions of agent i with other agents)``, local_ratio=0.5).
``team`` = sum over agents. The CI is ``1.96 * sd / sqrt(n)`` over all evaluation episodes of
all seeds (episode-level; with 3 seeds the between-seed spread is shown separately).

Published reference points, and how to compare (the reward definitions differ):

* MAPPO paper (Yu et al. 2022, "The Surprising Effectiveness of PPO in Cooperative
  Multi-Agent Games", NeurIPS Datasets & Benchmarks; code github.com/marlbenchmark/on-policy):
  MAPPO on Spread (3 agents, 25 steps) is quoted at about -120 average episode reward (issue
  #112 of that repo: "-120 which is current benchmark"; the maintainers answer that it needs
  >= 50-128 parallel envs and millions of steps). That repo's scenario gives every agent the
  *shared* reward ``sum_i rew_i`` with ``rew_i = G - #collisions(i)`` where the count includes
  the agent with itself (its ``is_collision(a, agent)`` loop has no ``a != agent`` check): a
  constant -3 per step, -75 per episode. So ``on_policy = 3 G_ep + C_ep - 75`` while our
  ``team = 1.5 G_ep + 0.5 C_ep``, i.e. ``team = (on_policy + 75) / 2``: -120 there is about
  -22.5 team / -7.5 per agent here, and our random policy (about -77 team) is about -229 there.
* Papoudakis et al. 2021 (EPyMARL, "Benchmarking Multi-Agent Deep Reinforcement Learning
  Algorithms in Cooperative Tasks") also report MPE Spread returns for IPPO, MAPPO, MADDPG
  and QMIX among others, on their own MPE fork and reward scale; we do not convert those.

Our budgets are ~1 % of those, on one CPU core per run: expect clear gains over random, not
published final returns. ``scripted`` is a hand-written reference (each agent heads for its
landmark of the minimum-total-distance assignment, computed once at reset from the true
positions): about -9.6 per agent, a rough "good policy" level.

Results and the discussion are in ``docs/marl.md``.

Usage::

    python benchmarks/bench_marl_spread.py                 # full: 3 seeds, default budgets
    python benchmarks/bench_marl_spread.py --scale 0.25    # quicker
    python benchmarks/bench_marl_spread.py --algos mappo qmix --seeds 1 --jobs 2
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Joint env steps per seed at --scale 1 (sized for ~2-4 min each on one core).
BUDGETS = {"mappo": 150_000, "ippo": 150_000, "maddpg": 30_000, "qmix": 40_000}
EVAL_SEED = 10_000
#: Algorithms trained on the discrete-action env (the others on the continuous one).
DISCRETE = {"mappo", "ippo", "qmix"}


def ppo_mpe_config(module: Any) -> Any:
    """PPO settings for MPE: the MAPPO paper's (lr 7e-4, 10 epochs, 1 minibatch, clip 0.2,
    GAE 0.95, entropy 0.01, ValueNorm, ReLU, hidden 64) with one 25-step episode per env per
    rollout (16 envs: 400 joint steps an update) and gamma 0.95.

    The time limit is *not* terminal (``bootstrap_truncation=True``, the default): the
    observation has no clock, so finite-horizon targets (return-to-go of the remaining
    ``25 - t`` steps) are not a function of the critic's input and swamp the advantages with
    noise. With the time limit treated as terminal MAPPO/IPPO stayed near random (-23..-24 per
    agent at 60-150k steps); bootstrapped they reach about -19.5. gamma 0.95 rather than 0.99
    keeps the bootstrapped values (~ r / (1 - gamma)) on the scale of an episode's rewards;
    with 0.99 one IPPO seed in two collapsed to ~-30 (see docs/marl.md).
    """
    from agents.rl.common import NetConfig

    return module.MAPPOConfig(
        gamma=0.95, num_envs=16, num_steps=25, net=NetConfig(activation="relu")
    )


def make_env(continuous: bool):
    """simple_spread_v3 with the settings of the benchmark."""
    from mpe2 import simple_spread_v3

    return simple_spread_v3.parallel_env(
        N=3, local_ratio=0.5, max_cycles=25, continuous_actions=continuous
    )


def _env_fn_cont():
    return make_env(True)


def _env_fn_disc():
    return make_env(False)


class ScriptedSpread:
    """Reference policy: each agent moves to its landmark of the assignment that minimises the
    summed distance (chosen at the first step of an episode from the relative positions in the
    observations), braking with its velocity. Discrete actions; not a learned policy."""

    def __init__(self) -> None:
        self.target: dict[str, int] | None = None

    def reset(self) -> None:
        self.target = None

    def act(self, obs: dict[str, Any], deterministic: bool = True) -> dict[str, Any]:
        import itertools

        agents = sorted(obs)
        if self.target is None:  # obs[4:10] = landmark positions relative to the agent
            rel = {a: np.asarray(obs[a][4:10]).reshape(3, 2) for a in agents}
            best = min(
                itertools.permutations(range(3)),
                key=lambda p: sum(np.linalg.norm(rel[a][p[i]]) for i, a in enumerate(agents)),
            )
            self.target = {a: best[i] for i, a in enumerate(agents)}
        out = {}
        for a in agents:
            o = np.asarray(obs[a])
            k = self.target[a]
            d = o[4 + 2 * k : 6 + 2 * k] - 0.5 * o[0:2]  # where to go, minus current drift
            if np.abs(d).max() < 0.05:
                out[a] = 0  # no-op
            elif abs(d[0]) > abs(d[1]):
                out[a] = 2 if d[0] > 0 else 1  # right / left
            else:
                out[a] = 4 if d[1] > 0 else 3  # up / down
        return out


def run_one(job: tuple[str, int, int, int]) -> dict[str, Any]:
    """Train one (algorithm, seed) and evaluate it; runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    from agents.rl import ippo, maddpg, mappo, qmix, rollout

    algo, seed, steps, n_eval = job
    curves: list[dict[str, float]] = []
    t0 = time.perf_counter()
    if algo in ("random", "random_disc"):
        env_fn = _env_fn_disc if algo == "random_disc" else _env_fn_cont
        env = env_fn()
        act_spaces = {a: env.action_space(a) for a in env.possible_agents}
        policy: Any = rollout.RandomPolicy(act_spaces, np.random.default_rng(seed))
    elif algo == "scripted":
        env_fn = _env_fn_disc
        policy = ScriptedSpread()
    else:
        env_fn = _env_fn_disc if algo in DISCRETE else _env_fn_cont
        module, cfg = {
            "mappo": (mappo, ppo_mpe_config(mappo)),
            "ippo": (ippo, ppo_mpe_config(ippo)),
            "maddpg": (maddpg, maddpg.MADDPGConfig()),
            "qmix": (qmix, qmix.QMIXConfig()),
        }[algo]
        policy, history = module.train(env_fn, cfg, seed=seed, total_steps=steps)
        curves = [
            {"step": h["global_step"], "return": h["charts/episode_return"]}
            for h in history
            if "charts/episode_return" in h
        ]
    train_s = time.perf_counter() - t0
    returns = rollout.evaluate(env_fn, policy, n_eval, EVAL_SEED + 1000 * seed)
    return {
        "algo": algo,
        "seed": seed,
        "steps": steps,
        "train_s": train_s,
        "returns": returns,
        "curves": curves,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algos", nargs="+", default=["mappo", "ippo", "maddpg", "qmix"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the step budgets")
    ap.add_argument("--eval-episodes", type=int, default=50)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()

    refs = ["random", "random_disc", "scripted"]
    jobs = [(r, s, 0, args.eval_episodes) for r in refs for s in range(args.seeds)]
    jobs += [
        (a, s, int(BUDGETS[a] * args.scale), args.eval_episodes)
        for a in args.algos
        for s in range(args.seeds)
    ]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.map(run_one, jobs, chunksize=1)
    wall = time.perf_counter() - t0

    from agents.rl.common import mean_ci95

    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"simple_spread_v3 N=3 max_cycles=25, {args.seeds} seeds, {args.eval_episodes} eval episodes/seed, "
        f"wall {wall:.0f} s with {args.jobs} jobs"
    )
    header = f"{'algo':11s} {'steps':>8s} {'train s':>8s} {'per-agent return':>20s} {'team return':>18s}  seed means"
    print(header)
    print("-" * len(header))
    rows = []
    for algo in [*refs, *args.algos]:
        rs = [r for r in results if r["algo"] == algo]
        per_agent = np.concatenate([r["returns"].mean(1) for r in rs])
        team = np.concatenate([r["returns"].sum(1) for r in rs])
        m, ci = mean_ci95(per_agent)
        tm, tci = mean_ci95(team)
        seed_means = " ".join(f"{r['returns'].mean():.2f}" for r in rs)
        train_s = np.mean([r["train_s"] for r in rs])
        print(
            f"{algo:11s} {rs[0]['steps']:8d} {train_s:8.0f} {m:11.2f} ± {ci:5.2f} {tm:10.2f} ± {tci:5.2f}  {seed_means}"
        )
        rows.append(
            {
                "algo": algo,
                "steps": rs[0]["steps"],
                "train_s": round(train_s, 1),
                "per_agent_mean": m,
                "per_agent_ci95": ci,
                "team_mean": tm,
                "team_ci95": tci,
                "seed_means": seed_means,
            }
        )
    with open(args.out / "marl_spread_eval.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(args.out / "marl_spread_curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["algo", "seed", "global_step", "episode_return_per_agent"])
        for r in results:
            for c in r["curves"]:
                w.writerow([r["algo"], r["seed"], int(c["step"]), f"{c['return']:.4f}"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rand = np.concatenate([r["returns"].mean(1) for r in results if r["algo"] == "random"])
    ax.axhline(rand.mean(), color="grey", ls="--", label="random (eval)")
    for algo in args.algos:
        rs = [r for r in results if r["algo"] == algo and r["curves"]]
        if not rs:
            continue
        n = min(len(r["curves"]) for r in rs)
        steps = np.array([c["step"] for c in rs[0]["curves"][:n]])
        vals = np.array([[c["return"] for c in r["curves"][:n]] for r in rs])
        k = max(1, n // 40)  # smooth over ~1/40 of training
        kernel = np.ones(k) / k
        sm = np.array([np.convolve(v, kernel, mode="valid") for v in vals])
        x = steps[k - 1 :]
        line = ax.plot(x, sm.mean(0), label=f"{algo} (train, exploring)")
        ax.fill_between(x, sm.min(0), sm.max(0), alpha=0.2, color=line[0].get_color())
    ax.set_xlabel("joint env steps")
    ax.set_ylabel("episode return per agent")
    ax.set_title("simple_spread_v3 (N=3): training curves, min-max over seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "marl_spread.png", dpi=120)
    print(
        f"wrote {args.out / 'marl_spread_eval.csv'}, {args.out / 'marl_spread_curves.csv'}, "
        f"{args.out / 'marl_spread.png'}"
    )


if __name__ == "__main__":
    main()
