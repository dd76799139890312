"""Tiny PettingZoo ParallelEnvs for the RL tests (fast, seeded, with agents that die early)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv


class TinyCoopEnv(ParallelEnv):
    """Agents see a random target in [-1, 1]^2 and are rewarded for matching it.

    Reward of agent i: ``-|a_i - target_i|`` summed (Box), or ``+1`` for the "right" discrete
    choice (argmax sign pattern of the target) else 0. ``agent_1`` terminates after
    ``die_at`` steps when ``die_at`` is set, the others are truncated at ``length``.
    """

    metadata = {"name": "tiny_coop_v0", "render_modes": []}

    def __init__(
        self,
        n_agents: int = 3,
        action: str = "box",
        length: int = 6,
        die_at: int | None = 3,
        with_state: bool = True,
    ):
        self.possible_agents = [f"agent_{i}" for i in range(n_agents)]
        self.length, self.die_at, self.with_state = length, die_at, with_state
        self._obs_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        if action == "box":
            self._act_space: gym.Space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        elif action == "discrete":
            self._act_space = gym.spaces.Discrete(3)
        elif action == "multidiscrete":
            self._act_space = gym.spaces.MultiDiscrete([3, 2])
        else:
            raise ValueError(action)
        self.action_kind = action
        self.state_space = gym.spaces.Box(-1.0, 1.0, (4 * n_agents,), np.float32)
        self._rng = np.random.default_rng(0)
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> gym.Space:
        return self._obs_space

    def action_space(self, agent: str) -> gym.Space:
        return self._act_space

    def _obs(self) -> dict[str, np.ndarray]:
        out = {}
        for i, a in enumerate(self.possible_agents):
            if a in self.agents:
                out[a] = np.array([*self.target[i], self.t / self.length, i / 3], np.float32)
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.target = self._rng.uniform(-1, 1, (len(self.possible_agents), 2)).astype(np.float32)
        return self._obs(), {a: {} for a in self.agents}

    def state(self) -> np.ndarray:
        if not self.with_state:
            raise NotImplementedError
        obs = self._obs()
        return np.concatenate(
            [obs.get(a, np.zeros(4, np.float32)) for a in self.possible_agents]
        ).astype(np.float32)

    def _reward(self, i: int, act: Any) -> float:
        tgt = self.target[i]
        if self.action_kind == "box":
            return -float(np.abs(np.asarray(act) - tgt).sum())
        if self.action_kind == "discrete":
            return float(int(act) == (0 if tgt[0] < -0.33 else 1 if tgt[0] < 0.33 else 2))
        a = np.asarray(act)
        return float(a[0] == (0 if tgt[0] < -0.33 else 1 if tgt[0] < 0.33 else 2)) + float(
            a[1] == int(tgt[1] > 0)
        )

    def step(self, actions: dict[str, Any]):
        assert set(actions) == set(self.agents), (actions, self.agents)
        rew = {a: self._reward(self.possible_agents.index(a), act) for a, act in actions.items()}
        self.t += 1
        self.target = np.clip(
            self.target + self._rng.normal(0, 0.1, self.target.shape), -1, 1
        ).astype(np.float32)
        term = {a: False for a in self.agents}
        trunc = {a: self.t >= self.length for a in self.agents}
        if self.die_at is not None and "agent_1" in self.agents and self.t >= self.die_at:
            term["agent_1"] = True
        obs = self._obs()
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rew, term, trunc, infos


def market_dict_space(window: int = 3, n_assets: int = 4, n_features: int = 8, n_exo: int = 1):
    """A fake market observation space with the spec's shapes (keys in the spec's order)."""
    inf = np.inf
    return gym.spaces.Dict(
        {
            "market": gym.spaces.Box(-inf, inf, (window, n_assets, n_features), np.float32),
            "portfolio": gym.spaces.Box(-inf, inf, (n_assets + 4,), np.float32),
            "mask": gym.spaces.Box(0.0, 1.0, (n_assets,), np.float32),
            "exogenous": gym.spaces.Box(-inf, inf, (n_assets, n_exo), np.float32),
        }
    )


class FakeMarketEnv(ParallelEnv):
    """Random-walk 'market' with the env_spec observation and per-agent action modes.

    ``modes`` maps agent name -> "weights" | "orders" | "discrete". Slot 3 dies at step 2
    (the mask changes mid-episode, as when an asset is delisted). Reward: the agent's
    long exposure times the next live-asset returns, so the policies have something to learn.
    """

    metadata = {"name": "fake_market_v0", "render_modes": []}

    def __init__(
        self,
        modes: dict[str, str] | None = None,
        length: int = 5,
        window: int = 3,
        n_assets: int = 4,
        flat_obs: bool = False,
    ):
        self.modes = modes or {"pf_0": "weights", "pf_1": "weights", "mm_0": "orders"}
        self.possible_agents = list(self.modes)
        self.length, self.w, self.a = length, window, n_assets
        self.flat_obs = flat_obs
        self._obs_space = market_dict_space(window, n_assets)
        if flat_obs:  # the env's flat_obs=True: market, portfolio, mask, exogenous (C order)
            n = int(sum(np.prod(s.shape) for s in self._obs_space.spaces.values()))
            self._obs_space = gym.spaces.Box(-np.inf, np.inf, (n,), np.float32)
        self._act = {
            "weights": gym.spaces.Box(-1.0, 1.0, (n_assets + 1,), np.float32),
            "orders": gym.spaces.Box(-1.0, 1.0, (n_assets, 3), np.float32),
            "discrete": gym.spaces.MultiDiscrete([3] * n_assets),
        }
        self._rng = np.random.default_rng(0)
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> gym.Space:
        return self._obs_space

    def action_space(self, agent: str) -> gym.Space:
        return self._act[self.modes[agent]]

    def _obs(self) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for a in self.agents:
            market = self.hist.copy()
            market[:, self.mask == 0, :] = 0.0
            out[a] = {
                "market": market,
                "portfolio": np.concatenate(
                    [self.weights[a], [1.0 - self.weights[a].sum(), 1.0, 0.0, 0.0]]
                ).astype(np.float32),
                "mask": self.mask.copy(),
                "exogenous": (self._rng.normal(size=(self.a, 1)) * self.mask[:, None]).astype(
                    np.float32
                ),
            }
            if self.flat_obs:
                order = ("market", "portfolio", "mask", "exogenous")
                out[a] = np.concatenate([out[a][k].ravel() for k in order]).astype(np.float32)
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.mask = np.ones(self.a, np.float32)
        self.hist = self._rng.normal(0, 0.01, (self.w, self.a, 8)).astype(np.float32)
        self.weights = {a: np.zeros(self.a, np.float32) for a in self.agents}
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        ret = self._rng.normal(0.001, 0.01, self.a).astype(np.float32) * self.mask
        rew = {}
        for a, act in actions.items():
            act = np.asarray(act)
            mode = self.modes[a]
            if mode == "weights":
                w = np.clip(act[: self.a], 0, None) * self.mask
            elif mode == "orders":
                w = np.clip(act[:, 0], -1, 1) * self.mask
            else:
                w = (act.astype(np.float32) - 1.0) * self.mask
            self.weights[a] = w.astype(np.float32)
            rew[a] = float(100 * (w * ret).sum())
        self.t += 1
        if self.t == 2:
            self.mask[3] = 0.0
        self.hist = np.roll(self.hist, -1, axis=0)
        self.hist[-1] = self._rng.normal(0, 0.01, (self.a, 8))
        self.hist[-1, :, 0] = ret
        term = {a: False for a in self.agents}
        trunc = {a: self.t >= self.length for a in self.agents}
        obs = self._obs()
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not trunc[a]]
        return obs, rew, term, trunc, infos
