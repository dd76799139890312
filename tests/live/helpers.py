"""Tiny scenarios and tick streams for the streaming-mode and monitor tests."""

from __future__ import annotations

import copy
from typing import Any

T0 = 1_704_205_800_000_000_000  # 2024-01-02 09:30 UTC-naive, in ns


def tiny_scenario(
    extra_assets: bool = True, rl: bool = False, minutes: int = 10, noise_latency: int = 1
) -> dict[str, Any]:
    """Two listed assets (AAA tech, BBB bank) and, with ``extra_assets``, CCC declared for a
    late listing (the stream announces it); a 10-minute session of 1-s steps."""
    assets = [
        {"symbol": "AAA", "initial_price": 100.0, "sector": "tech"},
        {"symbol": "BBB", "initial_price": 50.0, "sector": "bank"},
    ]
    if extra_assets:
        assets.append(
            {"symbol": "CCC", "initial_price": 20.0, "sector": "tech", "add_at_step": 500}
        )
    syms = ["AAA", "BBB"]
    close = 30 + minutes
    sc: dict[str, Any] = {
        "simulation": {
            "name": "live-test",
            "seed": 3,
            "open": "09:30",
            "close": f"{9 + close // 60:02d}:{close % 60:02d}",
            "max_assets": 4,
            "record_every": 60,
        },
        "assets": assets,
        "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-3, "sigma": 0.01}},
        "agents": [
            {
                "type": "noise",
                "count": 30,
                "cash": 1e6,
                "shares": {s: 200 for s in syms},
                "latency_steps": noise_latency,
                "params": {"wake_rate_per_hour": 240.0},
            },
            {
                "type": "market_maker",
                "count": 1,
                "cash": 1e7,
                "shares": {s: 2000 for s in syms},
                "params": {"wake_interval_s": 2.0},
            },
            {
                "type": "value",
                "count": 5,
                "cash": 1e6,
                "shares": {s: 200 for s in syms},
                "params": {"wake_rate_per_hour": 240.0, "obs_noise_sigma": 0.01},
            },
        ],
    }
    if rl:
        sc["rl_agents"] = [
            {"name": "pm", "cash": 1e5, "action_mode": "weights", "window": 4, "reward": "pnl"}
        ]
    return copy.deepcopy(sc)


def trade_ticks(n: int, ticker: str = "AAA", price: float = 100.0, step: float = 0.01):
    """``n`` trade tick dicts, seq 0..n-1, 1 ms apart, price rising by ``step``."""
    return [
        {
            "seq": i,
            "time_ns": T0 + i * 1_000_000,
            "ticker": ticker,
            "kind": "trade",
            "price": round(price + i * step, 2),
            "size": 1.0 + i % 7,
        }
        for i in range(n)
    ]
