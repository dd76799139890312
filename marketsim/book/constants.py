"""Order-book dtypes, order kinds, sides and reject reasons.

Prices inside the engine are integer ticks and quantities integer lots; floats only appear at
the API edge. Every constant here is a plain int so that numba treats it as a compile-time
constant.
"""

from __future__ import annotations

import numpy as np

#: Side of a buy order.
BUY = 1
#: Side of a sell order.
SELL = -1

#: Limit order: matches what it can at its price or better, rests the remainder.
LIMIT = 0
#: Market order: matches at any price, never rests; ``price`` is ignored.
MARKET = 1
#: Cancel the live order ``order_id`` (other fields ignored).
CANCEL = 2
#: Reduce the live order ``order_id`` to ``qty`` lots, keeping its queue priority.
MODIFY = 3
#: Immediate-or-cancel: matches up to its limit ``price``, never rests.
IOC = 4

#: Names of the order kinds, by code.
KIND_NAMES = {LIMIT: "LIMIT", MARKET: "MARKET", CANCEL: "CANCEL", MODIFY: "MODIFY", IOC: "IOC"}

#: Sentinel for "no price" inside kernels (an empty side has no best price).
NO_PRICE = np.iinfo(np.int64).min
#: Sentinel for "no slot" in the kernels' linked lists and hash table.
NO_SLOT = -1

# Reject reasons. A rejected order leaves the book exactly as it was.
#: ``side`` is not +1 or -1 (LIMIT, MARKET, IOC).
REJECT_BAD_SIDE = 1
#: ``qty <= 0`` (LIMIT, MARKET, IOC).
REJECT_BAD_QTY = 2
#: ``price <= 0`` (LIMIT, IOC).
REJECT_BAD_PRICE = 3
#: A LIMIT order's ``price`` is at or above the book's ``max_price_ticks`` (the ladder size).
REJECT_PRICE_OUT_OF_RANGE = 4
#: A LIMIT order's ``order_id`` is already live in this book.
REJECT_DUPLICATE_ID = 5
#: CANCEL or MODIFY of an ``order_id`` that is not live.
REJECT_UNKNOWN_ID = 6
#: MODIFY whose ``qty`` is not between 1 and the order's remaining quantity - 1.
REJECT_BAD_MODIFY_QTY = 7
#: ``kind`` is not one of LIMIT, MARKET, CANCEL, MODIFY, IOC.
REJECT_UNKNOWN_KIND = 8

#: Names of the reject reasons, by code.
REJECT_REASONS = {
    REJECT_BAD_SIDE: "BAD_SIDE",
    REJECT_BAD_QTY: "BAD_QTY",
    REJECT_BAD_PRICE: "BAD_PRICE",
    REJECT_PRICE_OUT_OF_RANGE: "PRICE_OUT_OF_RANGE",
    REJECT_DUPLICATE_ID: "DUPLICATE_ID",
    REJECT_UNKNOWN_ID: "UNKNOWN_ID",
    REJECT_BAD_MODIFY_QTY: "BAD_MODIFY_QTY",
    REJECT_UNKNOWN_KIND: "UNKNOWN_KIND",
}

#: One inbound message. ``price`` in ticks, ``qty`` in lots; ``owner`` is the account id.
#: Every field is int64, so an ``(n,)`` ORDER_DTYPE array and an ``(n, 6)`` int64 array are
#: views of each other (column ``O_*``): the engine's hot path passes plain int64 arrays to numba,
#: whose dispatch is ~10x slower for structured dtypes.
ORDER_DTYPE = np.dtype(
    [
        ("order_id", np.int64),
        ("owner", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("kind", np.int64),
        ("side", np.int64),
    ]
)
#: Columns of an order in its int64 view.
O_ID, O_OWNER, O_PRICE, O_QTY, O_KIND, O_SIDE = range(6)
N_ORDER_FIELDS = 6

#: One execution. ``price`` is the maker's (resting) price; ``taker_side`` is the aggressor's
#: side; ``taker_index`` the taker's position in the batch passed to ``process``;
#: ``maker_remaining`` the maker's quantity left after this fill (0: fully filled, removed).
FILL_DTYPE = np.dtype(
    [
        ("taker_id", np.int64),
        ("maker_id", np.int64),
        ("taker_owner", np.int64),
        ("maker_owner", np.int64),
        ("price", np.int64),
        ("qty", np.int64),
        ("maker_remaining", np.int64),
        ("taker_index", np.int64),
        ("taker_side", np.int64),
    ]
)
#: Columns of a fill in its int64 view.
(
    FL_TAKER_ID,
    FL_MAKER_ID,
    FL_TAKER_OWNER,
    FL_MAKER_OWNER,
    FL_PRICE,
    FL_QTY,
    FL_MAKER_REMAINING,
    FL_TAKER_INDEX,
    FL_TAKER_SIDE,
) = range(9)
N_FILL_FIELDS = 9

#: One rejected message: its position in the batch and the reason code.
REJECT_DTYPE = np.dtype([("index", np.int64), ("reason", np.int64)])

#: Default ladder size: prices 1 .. DEFAULT_MAX_PRICE_TICKS - 1 ticks are accepted for LIMIT.
DEFAULT_MAX_PRICE_TICKS = 1 << 16


def make_orders(n: int) -> np.ndarray:
    """Return a zeroed ``ORDER_DTYPE`` array of length ``n`` (a convenience for callers)."""
    return np.zeros(n, dtype=ORDER_DTYPE)


def as_records(raw: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """View a C-contiguous ``(n, fields)`` int64 array as a ``(n,)`` record array. O(1)."""
    return raw.view(dtype).reshape(raw.shape[0])


def as_raw(records: np.ndarray) -> np.ndarray:
    """View a record array of an all-int64 dtype as ``(n, fields)`` int64 (copies if strided)."""
    rec = np.ascontiguousarray(records)
    return rec.view(np.int64).reshape(rec.shape[0], len(rec.dtype.names))
