"""marketsim: an agent-based market simulator with numba limit order books.

A Mesa model hosts one order book per asset; scripted background traders and RL agents send
orders; prices, spreads, impact and liquidity emerge from their interaction.
"""

import logging

from marketsim.errors import ConfigError, DataError, MarketSimError, OrderError, StateError

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["ConfigError", "DataError", "MarketSimError", "OrderError", "StateError", "__version__"]
