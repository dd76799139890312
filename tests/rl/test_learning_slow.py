"""End-to-end evidence of learning (slow): PPO on rl_signal beats the baselines.

Runs ``benchmarks/bench_rl_signal.py``'s experiment: PPO trained for at most ~9 minutes of wall
time on one torch thread, then 5 paired evaluation seeds; the policy's 95% CI of the episode
return must lie strictly above those of random, buy_and_hold and equal_weight. Run with
``python -m pytest -m slow tests/rl/test_learning_slow.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from agents.rl.sb3 import SB3Config, train_sb3
from tests.env.scenarios import single

torch.set_num_threads(1)
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_rl_signal.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_rl_signal", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_time_budget_stops_training_early():
    cfg = SB3Config(algo="ppo", n_steps=32, batch_size=16, n_epochs=1, features_dim=8,
                    gae_lambda=0.9, env_kwargs={"max_steps": 20}, device="cpu")  # fmt: skip
    pol, _ = train_sb3(single("weights"), cfg, seed=0, total_steps=10_000, time_budget_s=0.0)
    assert 1 <= pol.meta["trained_steps"] < 10_000
    assert pol.model.gae_lambda == 0.9


@pytest.mark.slow
def test_ppo_beats_baselines_on_rl_signal():
    bench = _bench()
    res = bench.run_experiment(budget_s=540.0, episodes=5, seed=0)
    s = res["summary"].set_index("controller")
    # the scripted oracle shows the market makes the signal worth trading
    assert s.loc["oracle_sign", "return_ci_low"] > s.loc["equal_weight", "return_ci_high"]
    for b in bench.MUST_BEAT:
        assert s.loc["policy", "return_ci_low"] > s.loc[b, "return_ci_high"], (b, s)
    assert res["trained_steps"] > 0
