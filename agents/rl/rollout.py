"""Rolling out PettingZoo ParallelEnvs: the env pool of the trainers, evaluation, baselines.

* :class:`EnvPool` -- ``num_envs`` copies of a ParallelEnv stepped in lockstep with auto-reset,
  per-agent alive masks, final observations for bootstrapping at truncation and the global
  state (``env.state()`` when implemented, else all observations concatenated).
* :func:`evaluate`, :class:`RandomPolicy`, :func:`episode_metrics`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from agents.rl.common import flat_dim, flatten_obs
from marketsim.errors import ConfigError

EnvFn = Callable[[], Any]
"""A zero-argument callable returning a fresh PettingZoo ParallelEnv."""


# --------------------------------------------------------------------------- env pool


@dataclass
class PoolStep:
    """What :meth:`EnvPool.step` returns (E = num_envs; per-agent dicts keyed by agent)."""

    rewards: dict[str, np.ndarray]
    """(E,) float32 reward of each agent (0 where it was not alive)."""
    terminated: dict[str, np.ndarray]
    """(E,) bool: the agent's episode ended by termination this step."""
    truncated: dict[str, np.ndarray]
    """(E,) bool: the agent's episode was cut (time limit) this step."""
    was_alive: dict[str, np.ndarray]
    """(E,) bool: the agent acted this step."""
    final_obs: dict[str, np.ndarray]
    """(E, obs_dim) observation after the step, before any auto-reset."""
    final_state: np.ndarray
    """(E, state_dim) global state after the step, before any auto-reset."""
    env_done: np.ndarray
    """(E,) bool: every agent of that env is done (it was reset)."""
    episodes: list[dict[str, float]] = field(default_factory=list)
    """One ``{agent: return, "_length": steps}`` per finished episode."""


class EnvPool:
    """``num_envs`` ParallelEnv copies stepped in lockstep, with auto-reset.

    Env ``i`` is reset once with the ``i``-th child seed of ``SeedSequence(seed)``, then with
    ``seed=None`` (its own RNG goes on), so a pool is deterministic given ``seed``, and pools of
    different seeds share no env streams (with ``seed + i`` the pools of seeds 0 and 1 would
    replay the same episodes in all but one env, making "independent" training seeds alike).
    Observations are flattened per agent; an agent not in ``env.agents`` has alive False and a
    zero observation. Cost per step: one ``env.step`` per env plus O(E * sum of obs sizes)
    copying.

    Attributes:
        obs: {agent: (E, obs_dim)} current observations.
        alive: {agent: (E,)} bool.
        state: (E, state_dim) current global state.
        env_seeds: the first-reset seed of each env.
    """

    def __init__(self, env_fn: EnvFn, num_envs: int, seed: int):
        if num_envs < 1:
            raise ConfigError(f"num_envs={num_envs} must be >= 1")
        if seed < 0:
            raise ConfigError(f"seed={seed} must be >= 0 (it seeds a numpy SeedSequence)")
        self.envs = [env_fn() for _ in range(num_envs)]
        env0 = self.envs[0]
        self.agents: list[str] = list(env0.possible_agents)
        self.obs_spaces = {a: env0.observation_space(a) for a in self.agents}
        self.act_spaces = {a: env0.action_space(a) for a in self.agents}
        self.obs_dims = {a: flat_dim(self.obs_spaces[a]) for a in self.agents}
        self.num_envs = num_envs
        self.seed = seed
        self.env_seeds = [
            int(child.generate_state(1)[0])
            for child in np.random.SeedSequence(seed).spawn(num_envs)
        ]
        self._use_env_state: bool | None = None
        self.state_dim = 0
        e = num_envs
        self.obs = {a: np.zeros((e, self.obs_dims[a]), np.float32) for a in self.agents}
        self.alive = {a: np.zeros(e, bool) for a in self.agents}
        self.state = np.zeros((e, 0), np.float32)
        self._ep_return = {a: np.zeros(e) for a in self.agents}
        self._ep_len = np.zeros(e, np.int64)

    def _state_of(self, i: int) -> np.ndarray:
        env = self.envs[i]
        if self._use_env_state is None:
            try:
                s = np.asarray(env.state(), dtype=np.float32).reshape(-1)
                self._use_env_state = s.size > 0
            except (NotImplementedError, AttributeError):
                self._use_env_state = False
        if self._use_env_state:
            return np.asarray(env.state(), dtype=np.float32).reshape(-1)
        return np.concatenate([self.obs[a][i] for a in self.agents])

    def _set_obs(self, i: int, obs: dict[str, Any]) -> None:
        for a in self.agents:
            if a in obs:
                self.obs[a][i] = flatten_obs(self.obs_spaces[a], obs[a])
                self.alive[a][i] = True
            else:
                self.obs[a][i] = 0.0
                self.alive[a][i] = False

    def _reset_env(self, i: int, first: bool) -> None:
        obs, _ = self.envs[i].reset(seed=self.env_seeds[i] if first else None)
        self._set_obs(i, obs)
        for a in self.agents:
            self._ep_return[a][i] = 0.0
        self._ep_len[i] = 0

    def _refresh_state(self) -> None:
        rows = [self._state_of(i) for i in range(self.num_envs)]
        self.state = np.stack(rows).astype(np.float32)
        self.state_dim = self.state.shape[1]

    def reset(self) -> None:
        """Reset every env (first time with its child seed)."""
        for i in range(self.num_envs):
            self._reset_env(i, first=True)
        self._refresh_state()

    def step(self, actions: dict[str, list[Any]]) -> PoolStep:
        """Step every env with ``actions[agent][i]`` for its alive agents; auto-reset."""
        e = self.num_envs
        out = PoolStep(
            rewards={a: np.zeros(e, np.float32) for a in self.agents},
            terminated={a: np.zeros(e, bool) for a in self.agents},
            truncated={a: np.zeros(e, bool) for a in self.agents},
            was_alive={a: self.alive[a].copy() for a in self.agents},
            final_obs={},
            final_state=np.zeros_like(self.state),
            env_done=np.zeros(e, bool),
        )
        for i, env in enumerate(self.envs):
            act = {a: actions[a][i] for a in env.agents}
            obs, rew, term, trunc, _ = env.step(act)
            for a in act:
                out.rewards[a][i] = float(rew.get(a, 0.0))
                out.terminated[a][i] = bool(term.get(a, False))
                out.truncated[a][i] = bool(trunc.get(a, False)) and not out.terminated[a][i]
                self._ep_return[a][i] += out.rewards[a][i]
            self._ep_len[i] += 1
            self._set_obs(i, obs)
            for a in act:  # an agent that finished this step still shows its last obs
                if out.terminated[a][i] or out.truncated[a][i]:
                    self.alive[a][i] = False
        out.final_obs = {a: self.obs[a].copy() for a in self.agents}
        self._refresh_state()
        out.final_state = self.state.copy()
        for i, env in enumerate(self.envs):
            if not env.agents or not any(self.alive[a][i] for a in self.agents):
                ep = {a: float(self._ep_return[a][i]) for a in self.agents}
                ep["_length"] = float(self._ep_len[i])
                out.episodes.append(ep)
                out.env_done[i] = True
                self._reset_env(i, first=False)
        if out.env_done.any():
            self._refresh_state()
        return out

    def close(self) -> None:
        """Close every env."""
        for env in self.envs:
            env.close()


def episode_metrics(episodes: list[dict[str, float]], agents: list[str]) -> dict[str, float]:
    """Mean per-agent return, team return (sum over agents) and length of finished episodes."""
    if not episodes:
        return {}
    per_agent = np.array([[ep[a] for a in agents] for ep in episodes])
    return {
        "charts/episode_return": float(per_agent.mean()),
        "charts/team_return": float(per_agent.sum(1).mean()),
        "charts/episode_length": float(np.mean([ep["_length"] for ep in episodes])),
    }


# --------------------------------------------------------------------------- policies


class MultiAgentPolicy(Protocol):
    """What every trained policy offers."""

    def act(self, obs: dict[str, Any], deterministic: bool = True) -> dict[str, Any]:
        """Actions for the agents present in ``obs`` (one env)."""
        ...

    def reset(self) -> None:
        """Clear any recurrent state (call at each episode start)."""
        ...


class RandomPolicy:
    """Uniform random actions from each agent's action space, drawn with a numpy Generator."""

    def __init__(self, act_spaces: dict[str, gym.Space], rng: np.random.Generator):
        self.act_spaces = act_spaces
        self.rng = rng

    def act(self, obs: dict[str, Any], deterministic: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a in obs:
            s = self.act_spaces[a]
            if isinstance(s, gym.spaces.Discrete):
                out[a] = int(s.start + self.rng.integers(s.n))
            elif isinstance(s, gym.spaces.MultiDiscrete):
                out[a] = (self.rng.random(s.shape) * s.nvec).astype(s.dtype)
            else:
                out[a] = self.rng.uniform(s.low, s.high).astype(s.dtype)
        return out

    def reset(self) -> None:
        pass


def evaluate(
    env_fn: EnvFn, policy: MultiAgentPolicy, n_episodes: int, seed: int, deterministic: bool = True
) -> np.ndarray:
    """Run ``n_episodes`` and return (n_episodes, n_agents) per-agent episode returns.

    Episode ``k`` is reset with ``seed + k``. O(n_episodes * episode length).
    """
    env = env_fn()
    agents = list(env.possible_agents)
    out = np.zeros((n_episodes, len(agents)))
    for k in range(n_episodes):
        obs, _ = env.reset(seed=seed + k)
        policy.reset()
        while env.agents:
            live = {a: obs[a] for a in env.agents}  # obs also holds agents that just ended
            obs, rew, _, _, _ = env.step(policy.act(live, deterministic))
            for a, r in rew.items():
                out[k, agents.index(a)] += r
    env.close()
    return out
