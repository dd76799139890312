"""`MarketEnv`: the single-agent Gymnasium view of the market (``marketsim/Market-v0``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium

from marketsim.env.parallel import MarketParallelEnv
from marketsim.errors import ConfigError
from marketsim.scenario import Scenario


class MarketEnv(gymnasium.Env):
    """Gymnasium env for a scenario with exactly one RL agent.

    Built with ``gymnasium.make("marketsim/Market-v0", scenario=...)`` (after
    ``import marketsim``) or directly; keyword arguments go to :class:`MarketParallelEnv`.
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario: Scenario | dict | str | Path, **kwargs: Any) -> None:
        self.penv = MarketParallelEnv(scenario, **kwargs)
        if len(self.penv.possible_agents) != 1:
            raise ConfigError(
                f"marketsim/Market-v0 needs exactly one RL agent; the scenario declares "
                f"{self.penv.possible_agents}: use marketsim.env.parallel_env for several"
            )
        self.agent = self.penv.possible_agents[0]
        self.observation_space = self.penv.observation_space(self.agent)
        self.action_space = self.penv.action_space(self.agent)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, infos = self.penv.reset(seed=seed, options=options)
        return obs[self.agent], infos[self.agent]

    def step(self, action):
        obs, rew, term, trunc, info = self.penv.step({self.agent: action})
        a = self.agent
        return obs[a], rew[a], term[a], trunc[a], info[a]

    def save(self, path: str | Path) -> Path:
        """Checkpoint mid-episode (see :meth:`MarketParallelEnv.save`)."""
        return self.penv.save(path)

    def close(self) -> None:
        self.penv.close()
