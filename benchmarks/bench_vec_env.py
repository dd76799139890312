"""Throughput of the batched RL env ``MarketVecEnv``: agent-steps per second.

Steps N = 1, 8, 64 markets (one RL agent each unless ``--agents``) with uniform random actions
(drawn up front, outside the timing), after a warm-up that triggers (or loads) the numba
compilation, in both modes: ``serial`` (markets on the calling thread) and ``parallel``
(numba ``prange`` over markets on ``--threads`` threads). Agent-steps/s = N * n_agents * env
steps / wall seconds, including everything ``VecEnv.step`` does (validation, draws, the numba
call, observation copies, infos).

Reference in the same run: the full model ``marketsim.env.parallel_env`` on an equivalent
small scenario (one asset, 1-s steps, 60 noise traders, one market maker, one RL agent in
weights mode), stepped with random actions.

Usage: python benchmarks/bench_vec_env.py [--steps 3000] [--markets 1 8 64] [--threads 2]
       [--threading-layer workqueue]

Target: >= 50,000 agent-steps/s. The machine's load average is printed: these 2-core boxes are
shared, and a busy machine slows the parallel mode most (a thread that is descheduled holds up
the whole parallel region).
"""

from __future__ import annotations

import os

# libgomp (numba's "omp" threading layer here: tbb is not installed) spins after each parallel
# region by default; on a busy 2-core machine the spinning worker steals the core from the
# main thread and a parallel step takes milliseconds. Passive waiting must be chosen before
# the OpenMP runtime loads; run with OMP_WAIT_POLICY=active to see the default behaviour.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

from marketsim.vector import MarketVecEnv  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"{platform.platform()} | {cpu} | {os.cpu_count()} CPUs | load {load} | Python "
        f"{platform.python_version()} | numpy {np.__version__} | numba {numba.__version__} | "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )


def bench_vec(
    n_markets: int, n_agents: int, parallel: bool, steps: int, seed: int, max_s: float = 3.0
) -> tuple[float, float]:
    """(agent-steps per wall second, per CPU second of this process): best of 3 runs of
    ``steps / 3`` env steps, each cut short after ``max_s`` seconds."""
    env = MarketVecEnv(n_markets, n_agents, seed=seed, parallel=parallel, episode_steps=1000)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (256, env.num_envs, 1)).astype(np.float32)
    env.reset()
    for k in range(20):  # warm-up: compile or load the kernels
        env.step(actions[k])
    step = env.step
    chunk = max(1, steps // 3)
    wall_rate = cpu_rate = 0.0
    for _ in range(3):
        t, c = time.perf_counter(), time.process_time()
        k = 0
        while k < chunk:
            step(actions[k & 255])
            k += 1
            if k % 64 == 0 and time.perf_counter() - t > max_s:
                break
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        wall_rate = max(wall_rate, env.num_envs * k / wall)
        cpu_rate = max(cpu_rate, env.num_envs * k / max(cpu, 1e-9))
    env.check()
    return wall_rate, cpu_rate


def reference_scenario() -> dict:
    """One asset, 1-s steps: 60 noise traders, a market maker and one RL agent (weights)."""
    return {
        "simulation": {
            "name": "bench-vec-reference",
            "seed": 5,
            "days": 1,
            "open": "09:30",
            "close": "10:00",
            "max_assets": 1,
            "record_every": 600,
        },
        "assets": [{"symbol": "AAA", "initial_price": 100.0, "sector": "x"}],
        "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-3, "sigma": 0.01}},
        "agents": [
            {
                "type": "noise",
                "count": 60,
                "cash": 1e6,
                "shares": {"AAA": 200},
                "params": {"wake_rate_per_hour": 120.0},
            },
            {
                "type": "market_maker",
                "count": 1,
                "cash": 1e7,
                "shares": {"AAA": 2000},
                "params": {"wake_interval_s": 2.0},
            },
        ],
        "rl_agents": [
            {
                "name": "solo",
                "cash": 1e5,
                "action_mode": "weights",
                "reward": "log_return",
                "window": 8,
            }
        ],
    }


def bench_full_env(steps: int, seed: int) -> float:
    """Env steps/s of the full Mesa-model ParallelEnv (one agent: = agent-steps/s)."""
    from marketsim.env import parallel_env

    env = parallel_env(reference_scenario(), flat_obs=True)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    for _ in range(20):  # warm-up: numba kernels of the model compile or load
        env.step({a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents})
    done, n, wall = False, 0, 0.0
    while n < steps:
        if done or not env.agents:
            env.reset(seed=seed + n)
        acts = {
            a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32) for a in env.agents
        }
        t = time.perf_counter()
        _, _, terms, truncs, _ = env.step(acts)
        wall += time.perf_counter() - t
        n += 1
        done = any(terms.values()) or any(truncs.values())
    env.close()
    return n / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="timed env steps per setting")
    ap.add_argument("--markets", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--agents", type=int, default=1, help="RL agents per market")
    ap.add_argument("--threads", type=int, default=2, help="numba threads (parallel mode)")
    ap.add_argument("--reference-steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threading-layer",
        default=None,
        choices=["omp", "tbb", "workqueue"],
        help="numba threading layer (default: numba's choice)",
    )
    args = ap.parse_args()
    if args.threading_layer:
        numba.config.THREADING_LAYER = args.threading_layer
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"machine: {machine()}")
    print(f"random actions, {args.agents} RL agent(s) per market, default MarketParams")
    print(f"{'markets':>8s} {'agents':>7s} {'serial /wall s':>15s} {'serial /CPU s':>14s} "
          f"{'parallel /wall s':>17s}")  # fmt: skip
    best = 0.0
    for n in args.markets:
        s_wall, s_cpu = bench_vec(n, args.agents, False, args.steps, args.seed)
        p_wall, _ = bench_vec(n, args.agents, True, args.steps, args.seed)
        best = max(best, s_wall, p_wall)
        print(f"{n:8d} {n * args.agents:7d} {s_wall:15,.0f} {s_cpu:14,.0f} {p_wall:17,.0f}",
              flush=True)  # fmt: skip
    print(
        f"(agent-steps/s; threading layer {numba.threading_layer()}, "
        f"{numba.get_num_threads()} threads in parallel mode; '/CPU s' divides by this "
        "process's CPU time: what an idle core gives)"
    )
    ref = bench_full_env(args.reference_steps, args.seed)
    print(f"reference: marketsim.env.parallel_env (full Mesa model, 1 asset, 61 background "
          f"agents, 1 RL agent): {ref:,.0f} agent-steps/s")  # fmt: skip
    print(
        f"best MarketVecEnv / reference: {best / ref:,.0f}x; target >= 50,000 agent-steps/s: "
        f"{'met' if best >= 50_000 else 'NOT met'} (best {best:,.0f})"
    )
    print(f"load average after the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
