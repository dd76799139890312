"""Ingestion rate of the WebSocket adapter on localhost (messages/s), and shadow-mode step cost.

Usage: python benchmarks/bench_live.py [--ticks 200000] [--batch 1 64] [--policy drop_oldest]

A :class:`~marketsim.live.replay_server.ReplayServer` replays synthetic trade ticks as fast as
it can (``speed = 0``) to a :class:`~marketsim.live.adapters.WebSocketAdapter` on 127.0.0.1;
the main thread polls as the simulation would. The rate counts validated, sequenced ticks
delivered to ``poll()`` per wall second, from the first connection to the last tick. Server
and client share the machine (and the GIL of one process), so the figure is a lower bound of
what the client alone ingests. A second measurement times ``ShadowRunner.step()`` on a small
market while ticks stream in, against a plain ``model.run(1)``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from marketsim.live import QueueAdapter, ReplayServer, ShadowRunner, Tick, WebSocketAdapter

T0 = 1_704_205_800_000_000_000


def synthetic_ticks(n: int) -> list[dict]:
    syms = ("AAA", "BBB", "CCC", "DDD")
    return [
        {
            "seq": i,
            "time_ns": T0 + i * 1000,
            "ticker": syms[i % 4],
            "kind": "trade",
            "price": 100.0 + (i % 100) * 0.01,
            "size": 1.0 + i % 9,
        }
        for i in range(n)
    ]


def ingest(ticks: list[dict], batch: int, policy: str) -> tuple[float, dict]:
    with ReplayServer(ticks, batch=batch) as srv:
        src = WebSocketAdapter(srv.url, policy=policy, maxsize=1 << 16, start=False)
        got = 0
        src.start()
        if not src.wait_until(lambda s: s["connects"] >= 1, 30):
            raise SystemExit(f"could not connect to {srv.url}: {src.last_error}")
        t0 = time.perf_counter()
        deadline = t0 + 300
        while got < len(ticks) and time.perf_counter() < deadline:
            batch_ = src.poll(10_000)
            if batch_:
                got += len(batch_)
            else:
                src.wait_until(lambda s: s["queued"] > 0 or s["controls"] > 0, 1.0)
                if src.stream_ended.is_set() and src.qsize() == 0:
                    break
        wall = time.perf_counter() - t0
        stats = src.stats()
        src.close()
    return got / wall, stats


def shadow_step_cost(steps: int) -> tuple[float, float, float]:
    from marketsim.model import MarketModel

    sc = {
        "simulation": {"name": "bench-live", "open": "09:30", "close": "10:30"},
        "assets": [
            {"symbol": "AAA", "initial_price": 100.0, "sector": "tech"},
            {"symbol": "BBB", "initial_price": 50.0, "sector": "bank"},
        ],
        "agents": [
            {"type": "noise", "count": 30, "cash": 1e6, "shares": {"AAA": 200, "BBB": 200},
             "params": {"wake_rate_per_hour": 240.0}},
            {"type": "market_maker", "count": 1, "cash": 1e7,
             "shares": {"AAA": 2000, "BBB": 2000}, "params": {"wake_interval_s": 2.0}},
            {"type": "value", "count": 5, "cash": 1e6, "shares": {"AAA": 200, "BBB": 200},
             "params": {"wake_rate_per_hour": 240.0}},
        ],
    }  # fmt: skip
    plain = MarketModel(sc, record=False)
    plain.run(100)  # warm-up (numba caches)
    t0 = time.perf_counter()
    plain.run(steps)
    base = (time.perf_counter() - t0) / steps
    m = MarketModel(sc, record=False)
    q = QueueAdapter()
    r = ShadowRunner(m, q)
    r.run(100)
    t_put = t_step = 0.0
    for i in range(steps):
        t0 = time.perf_counter()
        for k in range(10):  # ten live ticks per step, at the assets' own price levels
            sym, px = ("AAA", 100.0) if k % 2 else ("BBB", 50.0)
            q.put(Tick(i * 10 + k, T0, sym, "trade", px + (k % 3 - 1) * 0.01, 1.0))
        t1 = time.perf_counter()
        r.step()
        t_put += t1 - t0
        t_step += time.perf_counter() - t1
    return base, t_step / steps, t_put / (10 * steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--policy", default="drop_oldest")
    ap.add_argument("--steps", type=int, default=2000, help="steps of the shadow-mode timing")
    args = ap.parse_args()
    ticks = synthetic_ticks(args.ticks)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"{'ticks/frame':>12s}{'ticks':>10s}{'msgs/s':>12s}{'dropped':>9s}{'malformed':>11s}")
    for b in args.batch:
        rate, st = ingest(ticks, b, args.policy)
        print(
            f"{b:12d}{st['delivered']:10,d}{rate:12,.0f}{st['dropped']:9,d}{st['malformed']:11,d}"
        )
    base, shadow, put = shadow_step_cost(args.steps)
    print(
        f"step cost: plain model.run(1) {base * 1e6:,.0f} us; ShadowRunner.step() applying 10 "
        f"ticks {shadow * 1e6:,.0f} us; QueueAdapter.put {put * 1e6:,.1f} us per tick"
    )


if __name__ == "__main__":
    main()
