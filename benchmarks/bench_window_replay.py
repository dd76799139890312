"""Window-replay env throughput: env steps/s with observations served from prepared .npy windows
versus live features, on the same historical-fundamental market (measured in the same run).

Usage: python benchmarks/bench_window_replay.py [--steps 2000] [--window 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from marketsim.data.prepare import prepare
from marketsim.env.parallel import parallel_env


def scenario(prep: Path, source: str, window: int) -> dict:
    return {
        "simulation": {"close": "12:30", "max_assets": 1},
        "assets": [{"symbol": "ABC", "initial_price": 100.0}],
        "fundamental": {"kind": "historical", "params": {"path": str(prep), "bar_steps": 10}},
        "agents": [
            {"type": "noise", "count": 50, "cash": 1e6, "shares": {"ABC": 100}},
            {"type": "market_maker", "count": 1, "cash": 1e7, "shares": {"ABC": 1000}},
        ],
        "rl_agents": [
            {"name": "rl", "action_mode": "discrete", "cash": 1e6, "window": window,
             "params": {"observation_source": source}}
        ],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--window", type=int, default=32)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp())
    n = 1200
    t = pd.date_range("2024-01-02 09:30", periods=n, freq="1min")
    px = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.002, n)))
    pd.DataFrame(
        {"time": t, "ticker": "ABC", "open": px, "high": px, "low": px, "close": px,
         "volume": 100.0}
    ).to_csv(d / "bars.csv", index=False)  # fmt: skip
    prepare([d / "bars.csv"], d / "prep", window=args.window)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    rng = np.random.default_rng(0)
    for source in ("live", "window_replay"):
        env = parallel_env(scenario(d / "prep", source, args.window), max_steps=args.steps)
        env.reset(seed=0)
        k = 0
        t0 = time.perf_counter()
        while env.agents and k < args.steps:
            env.step({"rl": rng.integers(0, 3, size=1)})
            k += 1
        dt = time.perf_counter() - t0
        print(
            f"{source:14s} {k / dt:10,.0f} env steps/s  (market obs {env.observation_space('rl')['market'].shape})"
        )


if __name__ == "__main__":
    main()
