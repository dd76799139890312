"""MADDPG: smoke, learning on a tiny task, market spaces, checkpoints, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.rl import maddpg
from agents.rl.common import NetConfig
from agents.rl.rollout import RandomPolicy, evaluate
from marketsim.errors import ConfigError
from tests.rl.conftest import same_state
from tests.rl.fakes import FakeMarketEnv, TinyCoopEnv

SMALL = dict(
    batch_size=32,
    learning_starts=64,
    train_frequency=8,
    gradient_steps=1,
    log_interval=100,
    net=NetConfig(hidden_sizes=(16, 16), activation="relu"),
)


def test_smoke_on_simple_spread(spread_cont):
    policy, history = maddpg.train(
        spread_cont, maddpg.MADDPGConfig(**SMALL), seed=0, total_steps=300
    )
    assert history[-1]["global_step"] == 300
    for key in ("losses/qf_loss", "losses/actor_loss", "losses/qf_values"):
        assert np.isfinite(history[-1][key])
    env = spread_cont()
    obs, _ = env.reset(seed=1)
    act = policy.act(obs)
    assert all(env.action_space(a).contains(act[a]) for a in env.agents)


def test_learns_tiny_task_beyond_random():
    env_fn = lambda: TinyCoopEnv(action="box", die_at=3)  # noqa: E731
    cfg = maddpg.MADDPGConfig(
        batch_size=64,
        learning_starts=200,
        train_frequency=4,
        gradient_steps=1,
        actor_lr=3e-3,
        critic_lr=3e-3,
        net=NetConfig(hidden_sizes=(32, 32), activation="relu"),
    )
    policy, _ = maddpg.train(env_fn, cfg, seed=0, total_steps=1500)
    env = env_fn()
    rand = RandomPolicy(
        {a: env.action_space(a) for a in env.possible_agents}, np.random.default_rng(0)
    )
    trained = evaluate(env_fn, policy, 20, seed=100).mean()
    baseline = evaluate(env_fn, rand, 20, seed=100).mean()
    assert trained > baseline + 3.0, (trained, baseline)


def test_market_spaces_and_checkpoint_round_trip(tmp_path):
    env_fn = lambda: FakeMarketEnv()  # noqa: E731
    policy, history = maddpg.train(env_fn, maddpg.MADDPGConfig(**SMALL), seed=0, total_steps=120)
    assert np.isfinite(history[-1]["losses/qf_loss"])
    loaded = maddpg.MADDPGPolicy.load(policy.save(tmp_path / "m"))
    assert same_state(policy, loaded)
    env = env_fn()
    obs, _ = env.reset(seed=2)
    a1, a2 = policy.act(obs), loaded.act(obs)
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k])
        assert env.action_space(k).contains(a1[k])


def test_same_seed_same_parameters():
    env_fn = lambda: TinyCoopEnv(action="box", with_state=False)  # noqa: E731
    cfg = maddpg.MADDPGConfig(**SMALL)
    p1, _ = maddpg.train(env_fn, cfg, seed=5, total_steps=150)
    p2, _ = maddpg.train(env_fn, cfg, seed=5, total_steps=150)
    p3, _ = maddpg.train(env_fn, cfg, seed=6, total_steps=150)
    assert same_state(p1, p2)
    assert not same_state(p1, p3)


def test_rejects_discrete_actions():
    with pytest.raises(
        ConfigError, match=r"MADDPG supports action spaces \['Box'\]; got Discrete\(3\)"
    ):
        maddpg.train(
            lambda: TinyCoopEnv(action="discrete"), maddpg.MADDPGConfig(**SMALL), total_steps=10
        )


def test_separate_parameters_per_agent():
    cfg = maddpg.MADDPGConfig(**{**SMALL, "share_parameters": False})
    policy, _ = maddpg.train(lambda: TinyCoopEnv(action="box"), cfg, seed=0, total_steps=100)
    assert len(policy.actors) == 3
    w = [next(iter(a.parameters())) for a in policy.actors]
    assert not torch.equal(w[0], w[1])
