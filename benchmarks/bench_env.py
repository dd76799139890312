"""RL environment benchmark: env steps/s with random actions and reset time.

Usage: python benchmarks/bench_env.py [--steps 2000] [--agents 4]

Setup (issue spec): the rmsc04_like population (1,000 noise, 102 value, 12 momentum,
2 market makers) plus ``--agents`` RL agents in "weights" mode, decision interval 1 s.
Same-run reference: the market model stepped alone (no RL layer) on the same population, which
bounds what the env can reach. Reference: ABIDES-Gym manages ~10-16 env steps/s and a 0.6 s reset on these machines
(shared/design.md); not installable here, so quoted, not re-measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tomllib
from pathlib import Path

import numpy as np

from marketsim.env import parallel_env

ROOT = Path(__file__).resolve().parent.parent
ABIDES_GYM_STEPS_PER_S = 16.0
ABIDES_GYM_RESET_S = 0.6


def scenario(n_agents: int) -> dict:
    with open(ROOT / "scenarios" / "rmsc04_like.toml", "rb") as fh:
        sc = tomllib.load(fh)
    sc["rl_agents"] = [
        {
            "name": "rl",
            "count": n_agents,
            "cash": 1_000_000.0,
            "action_mode": "weights",
            "reward": "log_return",
            "decision_interval_steps": 1,
            "window": 16,
        }
    ]
    return sc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--agents", type=int, default=4)
    args = ap.parse_args()
    env = parallel_env(scenario(args.agents))
    env.reset(seed=0)  # JIT warm-up
    resets = []
    for s in range(5):
        t0 = time.perf_counter()
        env.reset(seed=s + 1)
        resets.append(time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    acts = [
        {a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32) for a in env.agents}
        for _ in range(64)
    ]
    n = 0
    t0 = time.perf_counter()
    while n < args.steps and env.agents:
        env.step({a: acts[n % 64][a] for a in env.agents})
        n += 1
    dt = time.perf_counter() - t0
    # same-run reference: the market model alone (same population, no RL layer), 1-s steps
    env.reset(seed=0)
    model = env.model
    k = min(args.steps, model.session.total_steps - model.t - 1)
    t1 = time.perf_counter()
    for _ in range(k):
        model.run(1)
    dt_model = time.perf_counter() - t1
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"agents: {args.agents} RL + {len(env.model.account_agent) - args.agents} background")
    print(f"{'':24s}{'env steps/s':>12s}{'agent steps/s':>15s}{'reset s':>9s}")
    print(f"{'marketsim':24s}{n / dt:12,.0f}{n * args.agents / dt:15,.0f}{np.median(resets):9.3f}")
    print(f"{'model alone (same run)':24s}{k / dt_model:12,.0f}{'':>15s}{'':>9s}")
    print(
        f"{'ABIDES-Gym (reference)':24s}{ABIDES_GYM_STEPS_PER_S:12,.0f}{'':>15s}"
        f"{ABIDES_GYM_RESET_S:9.3f}"
    )
    print("targets: >= 5,000 env steps/s, reset <= 50 ms")


if __name__ == "__main__":
    main()
