"""The single-agent Gymnasium env and Stable-Baselines3 smoke training."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import marketsim  # noqa: F401  (registers marketsim/Market-v0)
from marketsim.env import MarketEnv, parallel_env
from marketsim.errors import ConfigError
from tests.env.scenarios import competition, single


@pytest.mark.parametrize("mode", ["weights", "orders", "discrete"])
def test_gymnasium_check_env(mode):
    env = gymnasium.make("marketsim/Market-v0", scenario=single(mode), max_steps=30)
    check_env(env.unwrapped, skip_render_check=True)


def test_flat_observation_option():
    env = MarketEnv(single("weights"), flat_obs=True, max_steps=10)
    obs, _ = env.reset(seed=0)
    assert isinstance(env.observation_space, gymnasium.spaces.Box)
    assert obs.shape == env.observation_space.shape
    assert env.observation_space.contains(obs)


def test_gym_env_needs_exactly_one_agent():
    with pytest.raises(ConfigError, match="exactly one RL agent"):
        MarketEnv(competition())


def test_reset_seed_reproduces_episode():
    env = MarketEnv(single("discrete"), max_steps=40)
    rng = np.random.default_rng(0)
    acts = [rng.integers(0, 3, 4) for _ in range(40)]

    def roll():
        obs, _ = env.reset(seed=7)
        out = [obs["market"].copy()]
        for a in acts:
            obs, r, term, trunc, _ = env.step(a)
            out.append(obs["market"].copy())
            if term or trunc:
                break
        return out

    a, b = roll(), roll()
    assert len(a) == len(b) > 10
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_sb3_ppo_smoke_through_supersuit():
    """PPO from Stable-Baselines3 trains on the multi-agent env via SuperSuit's vector env."""
    pytest.importorskip("stable_baselines3")
    ss = pytest.importorskip("supersuit")
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    sc = competition()
    # parameter sharing needs identical spaces: keep only the weights agents
    sc["rl_agents"] = sc["rl_agents"][:1]
    penv = parallel_env(sc, flat_obs=True, max_steps=64)
    venv = ss.pettingzoo_env_to_vec_env_v1(penv)
    venv = ss.concat_vec_envs_v1(venv, 1, num_cpus=0, base_class="stable_baselines3")
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(0)  # SuperSuit's ConcatVecEnv has no seed(): seed torch/numpy directly
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, device="cpu")
    model.learn(total_timesteps=128)
    obs = venv.reset()
    act, _ = model.predict(obs, deterministic=True)
    assert act.shape == (2, 5)
    assert np.all(np.abs(act) <= 1.0 + 1e-6)
