"""Sweep scaling: runs per second with 1 and 2 workers, local process pool vs Ray.

Usage: python benchmarks/bench_sweep.py [--scenario quickstart] [--runs 8] [--steps 3600]
       [--workers 1,2] [--backends local,ray]

Each configuration runs ``--runs`` seeds of the scenario for ``--steps`` steps into a fresh
folder (stylized facts off, so the numbers are the simulation plus the summary) and reports
wall time, runs/s and the speed-up over one worker of the same backend. Ray's local instance is
started once before timing (its startup is printed separately); ``workers`` caps its tasks in
flight. "startup" is the wall time of a sweep of ``workers`` one-step runs just before: for the
local pool that is what every sweep pays to spawn its processes and import marketsim (the timed
sweep pays it again); Ray keeps its worker processes, so there it is paid once per instance.
"runs/s" is end to end; "steady" leaves the startup out. On a machine shared with other jobs the
speed-up understates what idle cores give.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from marketsim.cli import resolve_scenario
from marketsim.sweep import run_sweep


def machine() -> str:
    """Host name, CPU model, core count, Python and Ray versions, current load."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import ray

        rv = f"Ray {ray.__version__}"
    except ImportError:
        rv = "Ray not installed"
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {rv}{load}"
    )


def time_sweep(scenario: Path, backend: str, workers: int, runs: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        df = run_sweep(
            scenario, None, list(range(runs)), backend,
            out_dir=d, workers=workers, steps=steps, facts=False,
        )  # fmt: skip
        wall = time.perf_counter() - t0
    bad = int((df["status"] != "ok").sum())
    if bad:
        raise RuntimeError(f"{bad} runs failed: {df['error'].dropna().iloc[0]}")
    return {"wall": wall, "rate": runs / wall, "per_run": float(df["wall_seconds"].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="quickstart")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3600)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--backends", default="local,ray", help="comma-separated: local, ray")
    args = ap.parse_args()
    path = resolve_scenario(args.scenario)
    workers = [int(w) for w in args.workers.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    print(f"machine: {machine()}")
    print(f"scenario {path.name}: {args.runs} runs x {args.steps} steps per configuration")
    # warm the numba cache so the first configuration does not pay for compilation
    time_sweep(path, "serial", 1, 1, min(args.steps, 120))
    results: dict[tuple[str, int], dict] = {}
    for backend in backends:
        ray = None
        if backend == "ray":
            try:
                import ray
            except ImportError:
                print("ray: not installed (pip install 'marketsim[distributed]'); skipped")
                continue
            t0 = time.perf_counter()
            ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False)
            print(f"ray: local instance started in {time.perf_counter() - t0:.1f} s (not timed)")
        try:
            for w in workers:
                startup = time_sweep(path, backend, w, w, 1)["wall"]
                r = time_sweep(path, backend, w, args.runs, args.steps)
                paid = startup if backend == "local" else 0.0
                r["startup"] = startup
                r["steady"] = args.runs / max(r["wall"] - paid, 1e-9)
                results[(backend, w)] = r
        finally:
            if ray is not None:
                ray.shutdown()
    print()
    head = [f"{b + ' runs/s':>12} {'speed-up':>8} {'steady':>7} {'startup':>8}" for b in backends]
    print(f"{'workers':>7}  " + "  ".join(head))
    for w in workers:
        cells = []
        for b in backends:
            r = results.get((b, w))
            base = results.get((b, workers[0]))
            if r is None or base is None:
                cells.append(f"{'-':>12} {'-':>8} {'-':>7} {'-':>8}")
            else:
                cells.append(
                    f"{r['rate']:>12.2f} {r['rate'] / base['rate']:>7.2f}x "
                    f"{r['steady']:>7.2f} {r['startup']:>7.1f}s"
                )
        print(f"{w:>7}  " + "  ".join(cells))
    print()
    for (b, w), r in results.items():
        print(
            f"{b:>5} x{w}: wall {r['wall']:.1f} s, mean time in a run {r['per_run']:.2f} s "
            "(build + run + summary)"
        )


if __name__ == "__main__":
    main()
