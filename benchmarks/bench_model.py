"""Full-day model benchmark: wall time, orders/s and peak memory of a scenario run.

Usage: python benchmarks/bench_model.py [--scenario scenarios/rmsc04_like.toml] [--profile]

Reference figures (ABIDES RMSC04, same population, one day 09:30-16:00, measured on these
2-core machines; see shared/design.md): 30-35 s wall, ~16 env steps/s for ABIDES-Gym. ABIDES
itself is not installable here, so the script also runs the same day with recording off, and
the book-only share, to show where time goes.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

from marketsim.model import MarketModel

ROOT = Path(__file__).resolve().parent.parent
ABIDES_RMSC04_SECONDS = 34.8


def run(path: str, record: bool, seed: int | None) -> tuple[MarketModel, float]:
    m = MarketModel.from_scenario(path, seed=seed, record=record)
    t0 = time.perf_counter()
    m.run()
    if record:
        m.flush_records()
    return m, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "rmsc04_like.toml"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="print a cProfile top-25")
    args = ap.parse_args()
    # warm the numba caches (compiled on first use, then loaded from __pycache__)
    MarketModel.from_scenario(args.scenario, seed=args.seed, record=True).run(100)
    m, wall = run(args.scenario, True, args.seed)
    _, wall_norec = run(args.scenario, False, args.seed)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps = m.t
    orders = m.exchange.n_orders
    trades = int(m.exchange.n_trades.sum())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"scenario: {args.scenario}  agents: {len(m.account_agent)}  steps: {steps:,}")
    print(f"{'':28s}{'wall s':>9s}{'steps/s':>11s}{'orders/s':>11s}")
    print(f"{'marketsim (recording)':28s}{wall:9.2f}{steps / wall:11,.0f}{orders / wall:11,.0f}")
    print(f"{'marketsim (no recording)':28s}{wall_norec:9.2f}{steps / wall_norec:11,.0f}"
          f"{orders / wall_norec:11,.0f}")
    print(f"{'ABIDES RMSC04 (reference)':28s}{ABIDES_RMSC04_SECONDS:9.2f}{'':>11s}{'':>11s}")
    print(f"orders {orders:,}  trades {trades:,}  rejects {sum(m.exchange.rejects.values()):,}")
    print(f"peak RSS {rss_mb:.0f} MB (targets: < 3 s wall, aim < 1 s; < 500 MB)")
    print(f"speed-up vs ABIDES: {ABIDES_RMSC04_SECONDS / wall:.1f}x")
    if args.profile:
        import cProfile
        import pstats

        m2 = MarketModel.from_scenario(args.scenario, seed=args.seed, record=True)
        cProfile.runctx("m2.run()", globals(), {"m2": m2}, "/tmp/bench_model.prof")
        pstats.Stats("/tmp/bench_model.prof").sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
