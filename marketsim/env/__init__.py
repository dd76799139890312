"""RL interfaces: PettingZoo ParallelEnv / AEC env and a Gymnasium env over the market.

``parallel_env(scenario=...)`` for several agents, ``env(scenario=...)`` for the AEC form,
``gymnasium.make("marketsim/Market-v0", scenario=...)`` for one agent.
"""

from pettingzoo.utils.conversions import parallel_to_aec

from marketsim.env.features import MARKET_FEATURES, N_MARKET_FEATURES
from marketsim.env.gym_env import MarketEnv
from marketsim.env.parallel import MarketParallelEnv, parallel_env
from marketsim.env.projection import WeightProjector
from marketsim.env.rewards import REWARDS, RewardContext, make_reward


def env(scenario, **kwargs):
    """The AEC (turn-based) form of :func:`parallel_env` (PettingZoo's standard conversion)."""
    return parallel_to_aec(parallel_env(scenario, **kwargs))


__all__ = [
    "MARKET_FEATURES",
    "N_MARKET_FEATURES",
    "REWARDS",
    "MarketEnv",
    "MarketParallelEnv",
    "RewardContext",
    "WeightProjector",
    "env",
    "make_reward",
    "parallel_env",
]
