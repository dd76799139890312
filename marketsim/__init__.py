"""marketsim: an agent-based market simulator with numba limit order books.

A Mesa model hosts one order book per asset; scripted background traders and RL agents send
orders; prices, spreads, impact and liquidity emerge from their interaction.
"""

import logging

from marketsim.errors import ConfigError, DataError, MarketSimError, OrderError, StateError

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def _register_gym() -> None:
    try:
        import gymnasium
    except ImportError:  # pragma: no cover - gymnasium is a core dependency
        return
    if "marketsim/Market-v0" not in gymnasium.registry:
        gymnasium.register("marketsim/Market-v0", entry_point="marketsim.env.gym_env:MarketEnv")


_register_gym()

__all__ = ["ConfigError", "DataError", "MarketSimError", "OrderError", "StateError", "__version__"]
