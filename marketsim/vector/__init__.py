"""Batched single-asset markets for RL throughput: many books stepped in one numba call.

``MarketVecEnv(n_markets, n_agents=1, ...)`` is a Stable-Baselines3 ``VecEnv`` whose markets
(numba limit order book, mean-reverting fundamental, market maker, zero-intelligence crowd)
all advance in ONE parallel numba call per step. See :mod:`marketsim.vector.vec_env`.
"""

from marketsim.vector.parallel import MarketVecParallelEnv
from marketsim.vector.vec_env import MarketParams, MarketVecEnv, VecConfig

__all__ = ["MarketParams", "MarketVecEnv", "MarketVecParallelEnv", "VecConfig"]
