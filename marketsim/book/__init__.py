"""The numba limit order book: dtypes and constants, kernels, and the `OrderBook` wrapper."""

from marketsim.book.book import OrderBook, OrderInfo
from marketsim.book.constants import (
    BUY,
    CANCEL,
    DEFAULT_MAX_PRICE_TICKS,
    FILL_DTYPE,
    IOC,
    KIND_NAMES,
    LIMIT,
    MARKET,
    MODIFY,
    NO_PRICE,
    ORDER_DTYPE,
    REJECT_BAD_MODIFY_QTY,
    REJECT_BAD_PRICE,
    REJECT_BAD_QTY,
    REJECT_BAD_SIDE,
    REJECT_DTYPE,
    REJECT_DUPLICATE_ID,
    REJECT_PRICE_OUT_OF_RANGE,
    REJECT_REASONS,
    REJECT_UNKNOWN_ID,
    REJECT_UNKNOWN_KIND,
    SELL,
    make_orders,
)

__all__ = [
    "BUY", "CANCEL", "DEFAULT_MAX_PRICE_TICKS", "FILL_DTYPE", "IOC", "KIND_NAMES", "LIMIT",
    "MARKET", "MODIFY", "NO_PRICE", "ORDER_DTYPE", "OrderBook", "OrderInfo",
    "REJECT_BAD_MODIFY_QTY", "REJECT_BAD_PRICE", "REJECT_BAD_QTY", "REJECT_BAD_SIDE",
    "REJECT_DTYPE", "REJECT_DUPLICATE_ID", "REJECT_PRICE_OUT_OF_RANGE", "REJECT_REASONS",
    "REJECT_UNKNOWN_ID", "REJECT_UNKNOWN_KIND", "SELL", "make_orders",
]  # fmt: skip
