"""Data-pipeline throughput: ``prepare`` on a synthetic long CSV and Parquet, and window serving.

Writes a seeded synthetic long-bars file (``time, ticker, open, high, low, close, volume``;
default 1M rows = 100 tickers x 10,000 one-minute bars, ~2 % of the bars missing) as CSV and
as Parquet into a temporary directory, then prints:

* ``prepare`` rows/s for each (read, validate, calendar, write Parquet + ``.npy``), without
  materialising ``windows.npy`` and, for CSV, with it (``W`` times the values on disk);
* ``WindowReplay`` windows/s for random single windows (``window(t)``, views) from
  ``values.npy`` and from ``windows.npy``, and for batches of 256 (``batch``, copies).

Usage::

    python benchmarks/bench_ingest.py                       # 1M rows, window 64
    python benchmarks/bench_ingest.py --rows 200000 --window 32 --tickers 50
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
import pyarrow as pa
import pyarrow.parquet as pq

from marketsim.data import WindowReplay, load_prepared, prepare


def machine() -> str:
    """One line describing the machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, pyarrow {pa.__version__}"


def synthetic(rows: int, tickers: int, seed: int) -> pd.DataFrame:
    """Long bars: random-walk closes, ~2 % of (time, ticker) rows dropped."""
    rng = np.random.default_rng(seed)
    n_times = max(1, rows // tickers)
    times = pd.date_range("2024-01-02 09:30", periods=n_times, freq="1min", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n_times, tickers)), axis=0))
    keep = rng.random((n_times, tickers)) > 0.02
    ti, ki = np.nonzero(keep)
    c = np.round(close[ti, ki], 2)
    spread = np.round(rng.uniform(0, 0.2, c.size), 2)
    names = np.array([f"T{k:04d}" for k in range(tickers)], dtype=object)
    return pd.DataFrame(
        {
            "time": times[ti],
            "ticker": names[ki],
            "open": c,
            "high": np.round(c + spread, 2),
            "low": np.round(c - spread, 2),
            "close": c,
            "volume": rng.integers(0, 10_000, c.size),
        }
    )


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tickers", type=int, default=100)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    frame = synthetic(args.rows, args.tickers, args.seed)
    n = len(frame)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        csv = root / "bars.csv"
        frame.assign(time=frame["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(csv, index=False)
        parquet = root / "bars.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), parquet)
        mb = csv.stat().st_size / 2**20
        print(f"input: {n:,} rows, {args.tickers} tickers, CSV {mb:.0f} MiB, window {args.window}")
        rows = []
        for label, src, mat in (
            ("CSV", csv, False),
            ("Parquet", parquet, False),
            ("CSV + windows.npy", csv, True),
        ):
            out = root / f"out-{label.replace(' ', '')}"
            dt = timed(
                lambda src=src, out=out, mat=mat: prepare(
                    src, out, window=args.window, materialize_windows=mat, overwrite=True
                ),
                repeat=1 if mat else 2,  # best of 2: the first call also warms up pandas/pyarrow
            )
            size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
            rows.append((label, dt, n / dt, size))
        print(f"\n{'prepare':<22}{'seconds':>10}{'rows/s':>14}{'output MiB':>12}")
        for label, dt, rate, size in rows:
            print(f"{label:<22}{dt:>10.2f}{rate:>14,.0f}{size:>12.0f}")

        t0 = time.perf_counter()
        load_prepared(root / "out-CSV+windows.npy", verify=True)
        verify_s = time.perf_counter() - t0
        print(f"\nload_prepared(verify=True) with windows.npy: {verify_s:.2f} s")
        rng = np.random.default_rng(1)
        print(f"\n{'WindowReplay':<34}{'windows/s':>14}")
        for label, d in (("values.npy", "out-CSV"), ("windows.npy", "out-CSV+windows.npy")):
            replay = WindowReplay(root / d, verify=False)
            ts = rng.integers(0, len(replay), 200_000).tolist()
            dt = timed(lambda replay=replay, ts=ts: [replay.window(t) for t in ts], repeat=3)
            print(f"{'window(t), ' + label:<34}{len(ts) / dt:>14,.0f}")
            batches = rng.integers(0, len(replay), (50, 256))
            dt = timed(lambda replay=replay, b=batches: [replay.batch(x) for x in b], repeat=3)
            print(f"{'batch(256), ' + label:<34}{batches.size / dt:>14,.0f}")


if __name__ == "__main__":
    main()
