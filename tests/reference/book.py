"""Reference price-time-priority limit order book: slow, plain Python, obviously right.

This is the specification the fast numba book (:class:`marketsim.book.OrderBook`) is tested
against. It favours clarity over speed everywhere: each price level is a ``deque`` of order
records in arrival order, each side a ``SortedDict`` from price to level, and a ``dict`` maps
live order ids to their records. Level totals are recomputed on demand rather than cached.

Semantics (shared with the fast book):

* Price-time priority, integer tick prices, integer lot quantities. A fill trades at the
  resting (maker) order's price; best price first, FIFO within a level; partial fills;
  self-trades are allowed.
* LIMIT matches against the opposite side while it crosses (buy: best ask <= price; sell:
  best bid >= price) and rests the remainder at its price, at the back of the level queue.
* MARKET matches at any price and never rests (the remainder is dropped, not rejected); its
  ``price`` is ignored and its ``order_id`` is not checked for duplicates.
* IOC matches up to its limit price and never rests; its ``order_id`` is not checked for
  duplicates and a price above the ladder is allowed (only ``price <= 0`` is rejected).
* CANCEL removes the live order ``order_id`` (other fields ignored). MODIFY reduces the live
  order ``order_id`` to remaining = ``qty``, keeping its queue priority.
* Validation, in this order, first failure wins; a rejected order leaves the book unchanged:
  unknown kind; (LIMIT/MARKET/IOC) bad side, then ``qty <= 0``; (LIMIT/IOC) ``price <= 0``;
  (LIMIT) ``price >= max_price_ticks``, then duplicate live id; (CANCEL/MODIFY) id not live;
  (MODIFY) ``qty`` not in ``[1, remaining - 1]``.

Example:
    >>> import numpy as np
    >>> from marketsim.book.constants import BUY, SELL, LIMIT, ORDER_DTYPE
    >>> book = ReferenceBook()
    >>> msgs = np.zeros(2, dtype=ORDER_DTYPE)
    >>> msgs[0] = (1, 7, 100, 5, LIMIT, SELL)
    >>> msgs[1] = (2, 8, 101, 3, LIMIT, BUY)
    >>> fills, rejects = book.process(msgs)
    >>> int(fills["qty"][0]), int(fills["price"][0]), book.best_ask()
    (3, 100, 100)
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np
from sortedcontainers import SortedDict

from marketsim.book.constants import (
    BUY,
    CANCEL,
    DEFAULT_MAX_PRICE_TICKS,
    FILL_DTYPE,
    IOC,
    LIMIT,
    MARKET,
    MODIFY,
    ORDER_DTYPE,
    REJECT_BAD_MODIFY_QTY,
    REJECT_BAD_PRICE,
    REJECT_BAD_QTY,
    REJECT_BAD_SIDE,
    REJECT_DTYPE,
    REJECT_DUPLICATE_ID,
    REJECT_PRICE_OUT_OF_RANGE,
    REJECT_UNKNOWN_ID,
    REJECT_UNKNOWN_KIND,
    SELL,
)

_KINDS = (LIMIT, MARKET, CANCEL, MODIFY, IOC)


class RefOrderInfo(NamedTuple):
    """A live order as seen by :meth:`ReferenceBook.order`."""

    #: BUY (+1) or SELL (-1).
    side: int
    #: Resting price in ticks.
    price: int
    #: Quantity left, in lots.
    remaining: int
    #: Quantity queued ahead of this order at its price level.
    ahead: int
    #: Account id of the sender.
    owner: int


class _Order:
    """One resting order (mutable: ``remaining`` shrinks with fills and modifies)."""

    __slots__ = ("order_id", "owner", "side", "price", "remaining")

    def __init__(self, order_id: int, owner: int, side: int, price: int, remaining: int):
        self.order_id = order_id
        self.owner = owner
        self.side = side
        self.price = price
        self.remaining = remaining


class ReferenceBook:
    """Plain-Python limit order book with the same semantics and outputs as the fast book.

    Runtime: matching is O(number of fills) plus O(log L) per level touched (L = number of
    levels); CANCEL and MODIFY are O(orders at the level); :meth:`depth` is O(orders in the
    reported levels). Roughly 0.3-0.7 M messages/s.

    Args:
        max_price_ticks: Ladder size; LIMIT prices must be in ``1 .. max_price_ticks - 1``.
    """

    def __init__(self, max_price_ticks: int = DEFAULT_MAX_PRICE_TICKS):
        self.max_price_ticks = int(max_price_ticks)
        self._bids: SortedDict = SortedDict()  # price -> deque[_Order], best = highest
        self._asks: SortedDict = SortedDict()  # price -> deque[_Order], best = lowest
        self._orders: dict[int, _Order] = {}  # live order id -> record

    # ------------------------------------------------------------------ queries
    def best_bid(self) -> int | None:
        """Highest bid price, or None if there are no bids. O(1)."""
        return self._bids.peekitem(-1)[0] if self._bids else None

    def best_ask(self) -> int | None:
        """Lowest ask price, or None if there are no asks. O(1)."""
        return self._asks.peekitem(0)[0] if self._asks else None

    def depth(self, levels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Aggregated top ``levels`` non-empty levels per side, best first.

        Returns:
            ``(bid_prices, bid_qtys, ask_prices, ask_qtys)`` as int64 arrays.
        """
        bid_levels = list(reversed(self._bids.items()))[:levels]
        ask_levels = list(self._asks.items())[:levels]

        def arrays(items):
            prices = np.array([p for p, _ in items], dtype=np.int64)
            qtys = np.array([sum(o.remaining for o in q) for _, q in items], dtype=np.int64)
            return prices, qtys

        bp, bq = arrays(bid_levels)
        ap, aq = arrays(ask_levels)
        return bp, bq, ap, aq

    def order(self, order_id: int) -> RefOrderInfo | None:
        """The live order ``order_id`` (with the quantity queued ahead of it), or None."""
        o = self._orders.get(int(order_id))
        if o is None:
            return None
        level = (self._bids if o.side == BUY else self._asks)[o.price]
        ahead = 0
        for other in level:
            if other is o:
                break
            ahead += other.remaining
        return RefOrderInfo(o.side, o.price, o.remaining, ahead, o.owner)

    def live_ids(self) -> list[int]:
        """Ids of all live orders (any order)."""
        return list(self._orders)

    @property
    def n_orders(self) -> int:
        """Number of live (resting) orders."""
        return len(self._orders)

    def __len__(self) -> int:
        return len(self._orders)

    # ------------------------------------------------------------------ processing
    def process(self, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``orders`` (an ``ORDER_DTYPE`` array) in order.

        Returns:
            ``(fills, rejects)``: a ``FILL_DTYPE`` array in execution order and a
            ``REJECT_DTYPE`` array in batch-index order.
        """
        if orders.dtype != ORDER_DTYPE:
            raise TypeError(f"orders must have dtype ORDER_DTYPE, got {orders.dtype}")
        fills: list[tuple] = []
        rejects: list[tuple[int, int]] = []
        for index, msg in enumerate(orders.tolist()):
            order_id, owner, price, qty, kind, side = msg
            reason = self._apply(index, order_id, owner, price, qty, kind, side, fills)
            if reason:
                rejects.append((index, reason))
        return (
            np.array(fills, dtype=FILL_DTYPE),
            np.array(rejects, dtype=REJECT_DTYPE),
        )

    def _apply(self, index, order_id, owner, price, qty, kind, side, fills) -> int:
        """Validate and apply one message; return 0 or the reject reason."""
        if kind not in _KINDS:
            return REJECT_UNKNOWN_KIND
        if kind in (LIMIT, MARKET, IOC):
            if side not in (BUY, SELL):
                return REJECT_BAD_SIDE
            if qty <= 0:
                return REJECT_BAD_QTY
            if kind == MARKET:
                self._match(order_id, owner, side, None, qty, index, fills)
                return 0
            if price <= 0:
                return REJECT_BAD_PRICE
            if kind == IOC:
                self._match(order_id, owner, side, price, qty, index, fills)
                return 0
            if price >= self.max_price_ticks:
                return REJECT_PRICE_OUT_OF_RANGE
            if order_id in self._orders:
                return REJECT_DUPLICATE_ID
            left = self._match(order_id, owner, side, price, qty, index, fills)
            if left > 0:
                o = _Order(order_id, owner, side, price, left)
                book_side = self._bids if side == BUY else self._asks
                book_side.setdefault(price, deque()).append(o)
                self._orders[order_id] = o
            return 0
        # CANCEL / MODIFY
        o = self._orders.get(order_id)
        if o is None:
            return REJECT_UNKNOWN_ID
        if kind == CANCEL:
            self._remove(o)
            return 0
        if not 1 <= qty <= o.remaining - 1:
            return REJECT_BAD_MODIFY_QTY
        o.remaining = qty
        return 0

    def _match(self, taker_id, owner, side, limit_price, qty, index, fills) -> int:
        """Match a taker against the opposite side; return the unfilled quantity.

        ``limit_price`` None means a market order (any price).
        """
        opposite = self._asks if side == BUY else self._bids
        while qty > 0 and opposite:
            price, queue = opposite.peekitem(0 if side == BUY else -1)
            if limit_price is not None:
                if side == BUY and price > limit_price:
                    break
                if side == SELL and price < limit_price:
                    break
            maker = queue[0]
            q = min(qty, maker.remaining)
            maker.remaining -= q
            qty -= q
            fills.append(
                (
                    taker_id,
                    maker.order_id,
                    owner,
                    maker.owner,
                    price,
                    q,
                    maker.remaining,
                    index,
                    side,
                )
            )
            if maker.remaining == 0:
                queue.popleft()
                del self._orders[maker.order_id]
                if not queue:
                    del opposite[price]
        return qty

    def _remove(self, o: _Order) -> None:
        book_side = self._bids if o.side == BUY else self._asks
        queue = book_side[o.price]
        queue.remove(o)
        if not queue:
            del book_side[o.price]
        del self._orders[o.order_id]

    # ------------------------------------------------------------------ invariants
    def _check(self) -> None:
        """Raise AssertionError if the book's internal structures disagree."""
        seen = 0
        for book_side, side in ((self._bids, BUY), (self._asks, SELL)):
            for price, queue in book_side.items():
                assert queue, f"empty level kept at price {price}"
                assert 0 < price < self.max_price_ticks, f"price {price} outside the ladder"
                for o in queue:
                    assert o.side == side and o.price == price
                    assert o.remaining > 0
                    assert self._orders.get(o.order_id) is o
                    seen += 1
        assert seen == len(self._orders), "order index and levels disagree"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"crossed book: bid {bid} >= ask {ask}"


# ---------------------------------------------------------------------- comparison helpers
def assert_same_records(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """Assert two structured arrays (fills or rejects) are equal, naming the first mismatch."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    n = min(len(got), len(want))
    for name in want.dtype.names:
        diff = np.flatnonzero(got[name][:n] != want[name][:n])
        if len(diff):
            i = int(diff[0])
            raise AssertionError(
                f"{what}[{i}].{name}: fast {got[i]} != reference {want[i]} "
                f"({len(got)} vs {len(want)} records)"
            )
    assert len(got) == len(want), (
        f"{what}: fast has {len(got)} records, reference {len(want)}; "
        f"first extra: {(got[n:] if len(got) > n else want[n:])[:3]}"
    )


def assert_same_book(fast, ref: ReferenceBook, ids=()) -> None:
    """Assert ``fast`` (an OrderBook) and ``ref`` show the same state.

    Compares full depth, best prices, live count and ``order()`` for every id in ``ids``.
    """
    levels = len(ref) + 1  # never more non-empty levels than live orders
    for name, g, w in zip(
        ("bid_prices", "bid_qtys", "ask_prices", "ask_qtys"),
        fast.depth(levels),
        ref.depth(levels),
        strict=True,
    ):
        assert g.dtype == np.int64, f"depth {name} dtype {g.dtype}"
        if not np.array_equal(g, w):
            raise AssertionError(f"depth {name}: fast {g[:10]}... != reference {w[:10]}...")
    assert fast.best_bid() == ref.best_bid(), (fast.best_bid(), ref.best_bid())
    assert fast.best_ask() == ref.best_ask(), (fast.best_ask(), ref.best_ask())
    assert fast.n_orders == ref.n_orders == len(fast), (fast.n_orders, len(fast), ref.n_orders)
    for oid in ids:
        g, w = fast.order(int(oid)), ref.order(int(oid))
        if w is None:
            assert g is None, f"order({oid}): fast {g}, reference None (not live)"
        else:
            assert g is not None, f"order({oid}): fast None, reference {w}"
            got = (g.side, g.price, g.remaining, g.ahead)
            assert got == w[:4], f"order({oid}): fast {got} != reference {w[:4]}"


def submit_single(book, msg) -> np.ndarray | None:
    """Send one message tuple ``(order_id, owner, price, qty, kind, side)`` through the
    single-order conveniences of ``book`` (limit/market/ioc/cancel/modify).

    Returns what the call returns (fills, or None for cancel/modify); rejected orders raise
    ``OrderError``. Raises ``ValueError`` for a kind that has no convenience method.
    """
    oid, owner, price, qty, kind, side = (int(v) for v in msg)
    if kind == LIMIT:
        return book.limit(side, price, qty, oid, owner)
    if kind == MARKET:
        return book.market(side, qty, oid, owner)
    if kind == IOC:
        return book.ioc(side, price, qty, oid, owner)
    if kind == CANCEL:
        return book.cancel(oid)
    if kind == MODIFY:
        return book.modify(oid, qty)
    raise ValueError(f"kind={kind} has no single-order call")
