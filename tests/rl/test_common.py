"""Env pool, agent grouping, space (de)serialisation, evaluation helpers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.rl.common import group_agents, mean_ci95, space_from_json, space_to_json
from agents.rl.rollout import EnvPool, RandomPolicy, evaluate
from tests.rl.fakes import FakeMarketEnv, TinyCoopEnv, market_dict_space


def test_pool_tracks_dying_agents_returns_and_resets():
    pool = EnvPool(lambda: TinyCoopEnv(action="discrete", length=4, die_at=2), 2, seed=5)
    pool.reset()
    assert pool.state.shape == (2, 12)  # env.state() is used
    totals = {a: np.zeros(2) for a in pool.agents}
    episodes = []
    for t in range(8):
        acts = {a: [1, 1] for a in pool.agents}
        out = pool.step(acts)
        for a in pool.agents:
            totals[a] += out.rewards[a]
            assert not (out.rewards[a] != 0)[~out.was_alive[a]].any()
        if t == 1:  # agent_1 terminated at its 2nd step; the others go on
            assert out.terminated["agent_1"].all() and not pool.alive["agent_1"].any()
            assert pool.alive["agent_0"].all()
        if t == 2:
            assert not out.was_alive["agent_1"].any()
        if t == 3:
            assert out.truncated["agent_0"].all() and out.env_done.all()
            assert pool.alive["agent_1"].all()  # reset brought it back
        episodes += out.episodes
    assert len(episodes) == 4
    assert [e["_length"] for e in episodes] == [4.0] * 4
    for a in pool.agents:
        assert np.isclose(sum(e[a] for e in episodes), totals[a].sum())


def test_pool_concatenates_observations_without_env_state():
    pool = EnvPool(lambda: TinyCoopEnv(with_state=False), 1, seed=0)
    pool.reset()
    assert pool.state_dim == 12
    np.testing.assert_array_equal(
        pool.state[0], np.concatenate([pool.obs[a][0] for a in pool.agents])
    )


def test_pool_is_deterministic_given_the_seed():
    def run(seed):
        pool = EnvPool(lambda: FakeMarketEnv(), 2, seed)
        pool.reset()
        rng = np.random.default_rng(0)
        out = []
        for _ in range(7):
            acts = {
                a: [
                    pool.act_spaces[a].sample() * 0
                    + rng.uniform(-1, 1, pool.act_spaces[a].shape).astype(np.float32)
                    for _ in range(2)
                ]
                for a in pool.agents
            }
            step = pool.step(acts)
            out.append(np.concatenate([step.rewards[a] for a in pool.agents]))
        return np.array(out)

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_group_agents_shares_only_equal_spaces():
    env = FakeMarketEnv({"pf_0": "weights", "mm_0": "orders", "pf_1": "weights"})
    obs = {a: env.observation_space(a) for a in env.possible_agents}
    act = {a: env.action_space(a) for a in env.possible_agents}
    assert group_agents(env.possible_agents, obs, act, True) == [["pf_0", "pf_1"], ["mm_0"]]
    assert group_agents(env.possible_agents, obs, act, False) == [["pf_0"], ["mm_0"], ["pf_1"]]


@pytest.mark.parametrize(
    "space",
    [
        market_dict_space(),
        gym.spaces.Box(np.array([0.0, -1.0], np.float32), np.array([1.0, np.inf], np.float32)),
        gym.spaces.Discrete(5, start=1),
        gym.spaces.MultiDiscrete([3, 3, 2]),
    ],
)
def test_space_json_round_trip(space):
    import json

    back = space_from_json(json.loads(json.dumps(space_to_json(space))))
    assert back == space


def test_evaluate_random_and_ci():
    env_fn = lambda: TinyCoopEnv(action="box", die_at=None)  # noqa: E731
    env = env_fn()
    pol = RandomPolicy(
        {a: env.action_space(a) for a in env.possible_agents}, np.random.default_rng(0)
    )
    r = evaluate(env_fn, pol, 4, seed=0)
    assert r.shape == (4, 3) and (r < 0).all()
    m, ci = mean_ci95(np.array([1.0, 2.0, 3.0]))
    assert m == 2.0 and np.isclose(ci, 1.96 / np.sqrt(3))


def test_resolve_device_names_and_errors():
    import torch

    from agents.rl.common import resolve_device
    from marketsim.errors import ConfigError

    assert resolve_device("cpu") == torch.device("cpu")
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == want
    for bad in ("tpu", "gpu0", ""):
        with pytest.raises(ConfigError, match="use 'auto', 'cpu', 'cuda'"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize("algo", ["mappo", "maddpg", "qmix"])
def test_multi_agent_training_honours_the_device_and_returns_a_cpu_policy(algo):
    """Training runs on the configured device (every parameter there while training) and hands
    back a CPU policy; an unavailable device is a clear error before any work."""
    import importlib

    import torch

    from marketsim.errors import ConfigError

    mod = importlib.import_module(f"agents.rl.{algo}")
    cfg_cls = next(getattr(mod, n) for n in dir(mod) if n.lower() == f"{algo}config")
    seen = []

    def log(_row):
        seen.append(1)

    env_fn = (lambda: TinyCoopEnv(action="discrete")) if algo == "qmix" else (lambda: TinyCoopEnv())
    cfg = cfg_cls(device="cpu", num_envs=2)
    policy, _ = mod.train(env_fn, cfg, seed=0, total_steps=200, log_fn=log)
    assert all(p.device.type == "cpu" for p in policy.parameters())
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            mod.train(env_fn, cfg_cls(device="cuda", num_envs=2), seed=0, total_steps=50)
