"""Order-book throughput: the numba ``OrderBook`` against the plain-Python reference book.

Builds a seeded stream of realistic messages (limits around a moving mid, cancels, modifies,
market and IOC orders; ~55/35/3/5/2 %) and prints a table: messages/s of the fast batch path
(batches of 100 and the whole stream in one call, JIT warmed up first), messages/s of the
reference book on a prefix, the speed ratio, the cost of one single-order call, and bytes of
array memory per live order.

Usage::

    python benchmarks/bench_book.py                 # 1M messages, seed 0
    python benchmarks/bench_book.py --messages 200000 --seed 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

# The benchmark reuses the test suite's stream generator and reference book.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from marketsim.book import (  # noqa: E402
    BUY,
    CANCEL,
    IOC,
    LIMIT,
    MARKET,
    MODIFY,
    ORDER_DTYPE,
    SELL,
    OrderBook,
)
from tests.reference.book import ReferenceBook  # noqa: E402
from tests.reference.streams import DEFAULT_MIX, random_stream  # noqa: E402

TARGET_BATCH_MSG_S = 15e6
TARGET_RATIO = 30.0
TARGET_CALL_US = 2.0
TARGET_BYTES_PER_ORDER = 100.0


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
    import numba

    load = "n/a"
    if hasattr(os, "getloadavg"):
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.platform()} | {cpu} | {os.cpu_count()} CPUs | load {load} | Python "
        f"{platform.python_version()} | numpy {np.__version__} | numba {numba.__version__}"
    )


class Timer:
    """Wall-clock (``perf_counter``) and this process's CPU time (``process_time``)."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def best_time(fn, repeat: int) -> tuple[float, float]:
    """Best (wall, cpu) seconds of ``repeat`` calls of ``fn`` (each builds fresh state)."""
    runs = [fn() for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def run_batches(stream: np.ndarray, batch: int) -> tuple[float, float]:
    book = OrderBook()
    process = book.process
    n = len(stream)
    with Timer() as t:
        for a in range(0, n, batch):
            process(stream[a : a + batch])
    return t.wall, t.cpu


def single_call_us(n_pairs: int, resting: int) -> tuple[float, float]:
    """Mean (wall, cpu) µs per call over ``n_pairs`` limit + cancel pairs on a book of
    ``resting`` orders."""
    book = OrderBook()
    rng = np.random.default_rng(1)
    for i in range(resting):
        side = BUY if i % 2 else SELL
        off = 1 + int(rng.geometric(0.1))
        book.limit(side, 10_000 - off if side == BUY else 10_000 + off, 1 + i % 7, i)
    limit, cancel = book.limit, book.cancel
    base = 10**9
    with Timer() as t:
        for k in range(n_pairs):
            limit(BUY, 9_990 - (k & 7), 3, base + k, 1)
            cancel(base + k)
    assert len(book) == resting
    return t.wall / (2 * n_pairs) * 1e6, t.cpu / (2 * n_pairs) * 1e6


def memory_per_order(live: int) -> tuple[str, str, str, str]:
    """Array bytes per live order with ``live`` non-crossing orders resting."""
    book = OrderBook()
    rng = np.random.default_rng(2)
    orders = np.zeros(live, dtype=ORDER_DTYPE)
    orders["order_id"] = np.arange(live)
    orders["side"] = np.where(np.arange(live) % 2 == 0, BUY, SELL)
    off = 1 + rng.geometric(0.02, size=live)
    orders["price"] = np.clip(np.where(orders["side"] == BUY, 10_000 - off, 10_000 + off), 1, None)
    orders["qty"] = 1 + rng.integers(0, 9, live)
    orders["kind"] = LIMIT
    book.process(orders)
    assert len(book) == live
    if not hasattr(book, "memory_bytes"):
        return "memory_bytes() missing", "-", "-", "-"
    order_bytes, ladder_bytes = book.memory_bytes()
    cap = getattr(book, "capacity", None)
    per_slot = f"{order_bytes / cap:.1f} B" if cap else "capacity missing"
    return (
        f"{order_bytes / live:.1f} B",
        per_slot,
        f"capacity {cap:,}",
        f"{ladder_bytes / 2**20:.2f} MiB",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="stream length")
    parser.add_argument("--seed", type=int, default=0, help="stream seed")
    parser.add_argument("--reference-messages", type=int, default=200_000,
                        help="prefix of the stream timed on the reference book")  # fmt: skip
    parser.add_argument("--target-live", type=int, default=None,
                        help="book size the stream generator steers towards (default: none; "
                        "the book then holds a few hundred orders)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="best of N for the fast book")
    parser.add_argument("--calls", type=int, default=100_000, help="single-order calls timed")
    parser.add_argument("--live", type=int, default=100_000, help="live orders for memory")
    args = parser.parse_args(argv)

    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    stream = random_stream(
        np.random.default_rng(args.seed),
        args.messages,
        mix=DEFAULT_MIX,
        target_live=args.target_live,
        bad_rate=0.0,
        weird_rate=0.0,
    )
    gen_s = time.perf_counter() - t0
    n = len(stream)
    kinds = stream["kind"]
    mix = ", ".join(
        f"{name} {np.mean(kinds == k):.1%}"
        for name, k in (("limit", LIMIT), ("cancel", CANCEL), ("modify", MODIFY),
                        ("market", MARKET), ("ioc", IOC))
    )  # fmt: skip
    print(f"stream: {n:,} messages (seed {args.seed}, generated in {gen_s:.1f} s): {mix}")

    # Warm up the JIT (or load its cache) on every path that is timed.
    warm = OrderBook()
    warm.process(stream[:20_000])
    for a in range(0, 2_000, 100):
        warm.process(stream[a : a + 100])
    single_call_us(1000, 100)

    t100 = best_time(lambda: run_batches(stream, 100), args.repeat)
    tall = best_time(lambda: run_batches(stream, n), args.repeat)
    fast_book = OrderBook()
    fast_fills, fast_rej = fast_book.process(stream)

    m = min(args.reference_messages, n)
    ref = ReferenceBook()
    with Timer() as t:
        ref_fills, ref_rej = ref.process(stream[:m])
    tref, tref_cpu = t.wall, t.cpu
    check = OrderBook()
    cf, cr = check.process(stream[:m])
    same = len(cf) == len(ref_fills) and len(cr) == len(ref_rej) and len(check) == len(ref)

    call_us, call_cpu_us = single_call_us(args.calls // 2, 1000)
    per_live, per_slot, capacity, ladder = memory_per_order(args.live)

    (t100, c100), (tall, call) = t100, tall
    r100, rall, rref = n / t100, n / tall, m / tref
    k100, kall, kref = n / c100, n / call, m / tref_cpu
    rows = [
        ("fast, batches of 100", f"{r100 / 1e6:.2f} M msg/s", f"{k100 / 1e6:.2f} M msg/s",
         f">= {TARGET_BATCH_MSG_S / 1e6:.0f} M", r100 >= TARGET_BATCH_MSG_S),
        ("fast, whole stream in one call", f"{rall / 1e6:.2f} M msg/s",
         f"{kall / 1e6:.2f} M msg/s", f">= {TARGET_BATCH_MSG_S / 1e6:.0f} M",
         rall >= TARGET_BATCH_MSG_S),
        (f"reference (first {m:,} msgs)", f"{rref / 1e6:.3f} M msg/s",
         f"{kref / 1e6:.3f} M msg/s", "", None),
        ("speed ratio, batches of 100", f"{r100 / rref:.1f}x", f"{k100 / kref:.1f}x",
         f">= {TARGET_RATIO:.0f}x", r100 / rref >= TARGET_RATIO),
        ("speed ratio, whole stream", f"{rall / rref:.1f}x", f"{kall / kref:.1f}x",
         f">= {TARGET_RATIO:.0f}x", rall / rref >= TARGET_RATIO),
        ("single call (limit+cancel, 1000 live)", f"{call_us:.2f} us/call",
         f"{call_cpu_us:.2f} us/call", f"<= {TARGET_CALL_US:.0f} us", call_us <= TARGET_CALL_US),
        (f"order memory per live order ({args.live:,} live)", per_live, "",
         f"<= {TARGET_BYTES_PER_ORDER:.0f} B + ladder",
         None if not per_live[0].isdigit() else float(per_live[:-2]) <= TARGET_BYTES_PER_ORDER),
        ("order memory per allocated slot", per_slot, "", capacity, None),
        ("ladder memory (65,536 ticks)", ladder, "", "", None),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'metric':<{width}}  {'value (wall)':>16}  {'by CPU time':>16}  {'target':<18}  ok")
    print("-" * (width + 60))
    for name, value, cpu, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<{width}}  {value:>16}  {cpu:>16}  {target:<18}  {mark}")
    print(
        "(ok judges the wall-clock value; 'by CPU time' counts only this process's CPU time, "
        "a steadier figure on a loaded machine)"
    )
    print()
    print(
        f"fills {len(fast_fills):,}, rejects {len(fast_rej):,}, live at end {len(fast_book):,}; "
        f"fast and reference agree on the prefix (fill/reject/live counts): {same}"
    )


if __name__ == "__main__":
    main()
