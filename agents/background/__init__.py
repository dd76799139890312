"""Scripted background traders (Mesa agents). Importing this package registers every type.

Types (scenario ``[[agents]] type = ...``): ``noise`` (:class:`NoiseTrader`), ``value``
(:class:`ValueTrader`), ``market_maker`` (:class:`MarketMaker`), ``momentum``
(:class:`MomentumTrader`), ``execution`` (:class:`ExecutionAgent`), ``switching``
(:class:`SwitchingTrader`) and ``institutional`` (:class:`InstitutionalTrader`: Pareto-sized
meta-orders split into child orders, the source of long memory in trade signs) and
``latent_liquidity`` (:class:`LatentLiquidity`: a demand curve around a slow anchor kept as
resting orders, the latent order book behind the square-root impact law) and ``latent_orders``
(:class:`LatentOrders`: latent orders deposited around the price and consumed when the price
crosses them, the LLOB's V-shaped book centred on the current price).
"""

from agents.background.base import TRADER_TYPES, Trader, TraderParams, register_trader
from agents.background.execution import ExecutionAgent, ExecutionParams
from agents.background.institutional import InstitutionalParams, InstitutionalTrader
from agents.background.latent import LatentLiquidity, LatentLiquidityParams
from agents.background.latent_orders import LatentOrders, LatentOrdersParams
from agents.background.market_maker import MarketMaker, MarketMakerParams
from agents.background.momentum import MomentumParams, MomentumTrader
from agents.background.noise import NoiseParams, NoiseTrader, SizeModel
from agents.background.switching import SwitchingParams, SwitchingTrader
from agents.background.value import ValueParams, ValueTrader

__all__ = [
    "TRADER_TYPES",
    "ExecutionAgent",
    "ExecutionParams",
    "InstitutionalParams",
    "InstitutionalTrader",
    "LatentLiquidity",
    "LatentLiquidityParams",
    "LatentOrders",
    "LatentOrdersParams",
    "MarketMaker",
    "MarketMakerParams",
    "MomentumParams",
    "MomentumTrader",
    "NoiseParams",
    "NoiseTrader",
    "SizeModel",
    "SwitchingParams",
    "SwitchingTrader",
    "Trader",
    "TraderParams",
    "ValueParams",
    "ValueTrader",
    "register_trader",
]
