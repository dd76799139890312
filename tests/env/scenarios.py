"""Small scenarios for the RL-environment tests (dicts, so tests need no files)."""

from __future__ import annotations

import copy


def base_scenario(rl_agents: list[dict], minutes: int = 20, assets: int = 2) -> dict:
    syms = ["AAA", "BBB", "CCC"][:assets]
    close_min = 30 + minutes
    return copy.deepcopy(
        {
            "simulation": {
                "name": "env-test",
                "seed": 5,
                "days": 1,
                "open": "09:30",
                "close": f"{9 + close_min // 60:02d}:{close_min % 60:02d}",
                "max_assets": 4,
                "record_every": 600,
            },
            "assets": [
                {"symbol": s, "initial_price": 100.0 - 20 * i, "sector": "x" if i else "y"}
                for i, s in enumerate(syms)
            ],
            "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-3, "sigma": 0.01}},
            "agents": [
                {
                    "type": "noise",
                    "count": 60,
                    "cash": 1e6,
                    "shares": {s: 200 for s in syms},
                    "params": {"wake_rate_per_hour": 120.0},
                },
                {
                    "type": "market_maker",
                    "count": 1,
                    "cash": 1e7,
                    "shares": {s: 2000 for s in syms},
                    "params": {"wake_interval_s": 2.0},
                },
            ],
            "rl_agents": rl_agents,
        }
    )


def competition() -> dict:
    """Two weights agents, an orders and a quotes (market-making) agent and a discrete agent."""
    return base_scenario(
        [
            {
                "name": "pm",
                "count": 2,
                "cash": 1e5,
                "action_mode": "weights",
                "reward": "log_return",
                "window": 8,
                "params": {"exogenous": ["fundamental"], "fundamental_noise": 0.01},
            },
            {
                "name": "mm",
                "cash": 1e5,
                "shares": {"AAA": 50},
                "action_mode": "orders",
                "reward": "inventory_penalised",
                "window": 8,
            },
            {
                "name": "qm",
                "cash": 1e5,
                "shares": {"AAA": 50},
                "action_mode": "quotes",
                "reward": "inventory_penalised",
                "window": 8,
                "params": {"max_order_lots": 20, "max_offset_ticks": 6},
            },
            {
                "name": "dq",
                "cash": 1e5,
                "action_mode": "discrete",
                "reward": "pnl",
                "window": 8,
                "decision_interval_steps": 2,
            },
        ]
    )


def single(mode: str = "weights", **params) -> dict:
    """One RL agent."""
    return base_scenario(
        [
            {
                "name": "solo",
                "cash": 1e5,
                "action_mode": mode,
                "reward": "log_return",
                "window": 8,
                "params": params,
            }
        ],
        minutes=10,
        assets=1,
    )
