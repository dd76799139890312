"""`MarketVecParallelEnv`: one fast numba market as a PettingZoo ParallelEnv.

Wraps a :class:`~marketsim.vector.vec_env.MarketVecEnv` with one market and ``n_agents`` RL agents
competing in its book, so the multi-agent trainers of ``agents/rl`` (IPPO, MAPPO, MADDPG), which
take a PettingZoo ``env_fn``, can train on the batched-market engine; their ``num_envs`` copies
each step a numba market. Episodes end for every agent at once (the engine's episode end).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marketsim.errors import ConfigError
from marketsim.vector.vec_env import MarketVecEnv


class MarketVecParallelEnv(ParallelEnv):
    """PettingZoo view of one :class:`MarketVecEnv` market with ``n_agents`` agents.

    Args:
        n_agents: RL agents trading in the market.
        seed: Default seed of the first reset.
        **vec_kwargs: :class:`~marketsim.vector.vec_env.VecConfig` options (``episode_steps``,
            ``window``, ``action_mode``, ...).
    """

    metadata = {"name": "marketsim_vec_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, n_agents: int = 2, seed: int = 0, **vec_kwargs: Any) -> None:
        self.vec = MarketVecEnv(1, n_agents=n_agents, seed=seed, **vec_kwargs)
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self._obs_space = self.vec.observation_space
        self._act_space = self.vec.action_space
        self.agents: list[str] = []
        self._seed = int(seed)
        self._obs: np.ndarray | None = None
        self.render_mode = None

    def observation_space(self, agent: str) -> spaces.Space:
        """The (shared, cached) observation space."""
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        """The (shared, cached) action space."""
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode (``seed`` reproduces it); return ``(obs, infos)``."""
        self.vec.seed(self._seed if seed is None else int(seed))
        self._seed += 1
        self._obs = self.vec.reset()
        self.agents = list(self.possible_agents)
        return self._as_dict(self._obs), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        """Step the market once with every agent's action (missing agents hold their target)."""
        if not self.agents:
            raise ConfigError("the episode is over: call reset()")
        unknown = sorted(set(actions) - set(self.possible_agents))
        if unknown:
            raise ValueError(f"actions for unknown agent(s) {unknown}; agents: {self.agents}")
        a = np.zeros((len(self.possible_agents), self.vec.action_dim), np.float32)
        for i, name in enumerate(self.possible_agents):
            if name in actions:
                a[i] = np.asarray(actions[name], np.float32).reshape(-1)
            elif self._obs is not None:  # hold: ask for the current position fraction
                a[i, 0] = self._obs[i, self.vec.config.window + 2]
        obs, rew, dones, infos = self.vec.step(a)
        done = bool(dones[0])
        if done:
            obs = np.stack([infos[i]["terminal_observation"] for i in range(len(obs))])
        trunc = done and bool(infos[0].get("TimeLimit.truncated", False))
        term = done and not trunc
        self._obs = obs
        out = self._as_dict(obs)
        rewards = {n: float(rew[i]) for i, n in enumerate(self.possible_agents)}
        terms = {n: term for n in self.possible_agents}
        truncs = {n: trunc for n in self.possible_agents}
        info = {n: {} for n in self.possible_agents}
        if done:
            self.agents = []
        return out, rewards, terms, truncs, info

    def state(self) -> np.ndarray:
        """Global state: every agent's observation, concatenated."""
        if self._obs is None:
            raise ConfigError("state() is defined after reset(): call reset() first")
        return self._obs.reshape(-1).astype(np.float32)

    def _as_dict(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {n: obs[i].astype(np.float32) for i, n in enumerate(self.possible_agents)}

    def close(self) -> None:
        """Release the engine's arrays."""
        self.vec.close()
