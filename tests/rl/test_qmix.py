"""QMIX: mixer monotonicity, smoke, learning on a tiny task, market spaces, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.rl import qmix
from agents.rl.common import NetConfig
from agents.rl.rollout import RandomPolicy, evaluate
from marketsim.errors import ConfigError
from tests.rl.conftest import same_state
from tests.rl.fakes import FakeMarketEnv, TinyCoopEnv

SMALL = dict(
    batch_size=8,
    learning_starts=50,
    train_frequency=10,
    seq_len=8,
    buffer_chunks=200,
    log_interval=100,
    target_update_interval=5,
    net=NetConfig(hidden_sizes=(16, 16), activation="relu"),
)


def test_mixer_is_monotonic_in_every_agent_utility():
    torch.manual_seed(0)
    mixer = qmix.QMixer(3, 6, 8, 16)
    qs = torch.randn(64, 3, requires_grad=True)
    mixer(qs, torch.randn(64, 6)).sum().backward()
    assert (qs.grad >= 0).all()


def test_smoke_on_simple_spread(spread_disc):
    policy, history = qmix.train(spread_disc, qmix.QMIXConfig(**SMALL), seed=0, total_steps=300)
    assert history[-1]["global_step"] == 300
    assert np.isfinite(history[-1]["losses/td_loss"])
    assert history[-1]["charts/epsilon"] < 1.0
    env = spread_disc()
    obs, _ = env.reset(seed=0)
    act = policy.act(obs)
    assert all(env.action_space(a).contains(act[a]) for a in env.agents)


@pytest.mark.parametrize("recurrent", [False, True])
def test_learns_tiny_task_beyond_random(recurrent):
    env_fn = lambda: TinyCoopEnv(action="multidiscrete", die_at=3)  # noqa: E731
    cfg = qmix.QMIXConfig(
        batch_size=16,
        learning_starts=100,
        train_frequency=6,
        seq_len=6,
        epsilon_anneal_steps=800,
        learning_rate=3e-3,
        recurrent=recurrent,
        rnn_hidden=32,
        target_update_interval=20,
        net=NetConfig(hidden_sizes=(32, 32), activation="relu"),
    )
    policy, _ = qmix.train(env_fn, cfg, seed=0, total_steps=1500)
    env = env_fn()
    rand = RandomPolicy(
        {a: env.action_space(a) for a in env.possible_agents}, np.random.default_rng(0)
    )
    trained = evaluate(env_fn, policy, 20, seed=100).mean()
    baseline = evaluate(env_fn, rand, 20, seed=100).mean()
    assert trained > baseline + 2.5, (trained, baseline)


def test_market_discrete_dead_slots_hold_and_checkpoint_round_trip(tmp_path):
    env_fn = lambda: FakeMarketEnv({"a": "discrete", "b": "discrete"})  # noqa: E731
    cfg = qmix.QMIXConfig(**{**SMALL, "recurrent": True})
    policy, history = qmix.train(env_fn, cfg, seed=0, total_steps=120)
    assert np.isfinite(history[-1]["losses/td_loss"])
    loaded = qmix.QMIXPolicy.load(policy.save(tmp_path / "q"))
    assert same_state(policy, loaded)
    env = env_fn()
    obs, _ = env.reset(seed=0)
    policy.reset()
    loaded.reset()
    for _ in range(4):  # recurrent state carried the same way in both
        a1, a2 = policy.act(obs), loaded.act(obs)
        for k in a1:
            np.testing.assert_array_equal(a1[k], a2[k])
        obs, *_ = env.step(a1)
    assert (obs["a"]["mask"][3] == 0) and all(policy.act(obs)[k][3] == 1 for k in obs)


def test_same_seed_same_parameters():
    env_fn = lambda: TinyCoopEnv(action="discrete", with_state=False)  # noqa: E731
    cfg = qmix.QMIXConfig(**SMALL)
    p1, _ = qmix.train(env_fn, cfg, seed=2, total_steps=150)
    p2, _ = qmix.train(env_fn, cfg, seed=2, total_steps=150)
    p3, _ = qmix.train(env_fn, cfg, seed=3, total_steps=150)
    assert same_state(p1, p2)
    assert not same_state(p1, p3)


def test_rejects_box_actions():
    with pytest.raises(ConfigError, match="QMIX supports action spaces"):
        qmix.train(lambda: TinyCoopEnv(action="box"), qmix.QMIXConfig(**SMALL), total_steps=10)
