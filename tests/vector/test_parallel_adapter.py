"""The batched-market engine as a PettingZoo env, trained by our own IPPO/MAPPO."""

from __future__ import annotations

import numpy as np
import torch
from pettingzoo.test import parallel_api_test

from marketsim.vector import MarketVecParallelEnv


def test_pettingzoo_parallel_api():
    parallel_api_test(MarketVecParallelEnv(n_agents=2, episode_steps=40), num_cycles=60)


def test_same_seed_same_episode_and_agents_compete_in_one_book():
    def roll(seed):
        env = MarketVecParallelEnv(n_agents=2, episode_steps=30)
        obs, _ = env.reset(seed=seed)
        out = []
        rng = np.random.default_rng(0)
        while env.agents:
            acts = {a: rng.uniform(-1, 1, 1).astype(np.float32) for a in env.agents}
            obs, rew, term, trunc, _ = env.step(acts)
            out.append((obs["agent_0"].copy(), rew["agent_1"]))
            env.vec.check()
        return out

    a, b = roll(3), roll(3)
    assert len(a) == 30 and all(
        np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b, strict=True)
    )


def test_ippo_and_mappo_train_on_the_vector_engine():
    from agents.rl import ippo, mappo

    torch.set_num_threads(1)
    for mod, cfg in ((ippo, ippo.IPPOConfig()), (mappo, mappo.MAPPOConfig())):
        policy, hist = mod.train(
            lambda: MarketVecParallelEnv(n_agents=2, episode_steps=32), cfg, seed=0,
            total_steps=256,
        )  # fmt: skip
        env = MarketVecParallelEnv(n_agents=2, episode_steps=32)
        obs, _ = env.reset(seed=1)
        acts = policy.act(obs)
        assert set(acts) == {"agent_0", "agent_1"}
        assert all(env.action_space(a).contains(np.asarray(v, np.float32)) for a, v in acts.items())
        assert hist
