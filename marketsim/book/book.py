"""`OrderBook`: the validating Python wrapper around the numba book kernels."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from marketsim.book import kernels as K
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
    N_FILL_FIELDS,
    N_ORDER_FIELDS,
    NO_PRICE,
    O_KIND,
    ORDER_DTYPE,
    REJECT_DTYPE,
    REJECT_REASONS,
    SELL,
    as_raw,
    as_records,
)
from marketsim.errors import ConfigError, OrderError

_CHECK_MESSAGES = {
    1: "book is crossed (best bid >= best ask)",
    2: "a level's total quantity differs from the sum of its orders",
    3: "price bitmap disagrees with the non-empty levels",
    4: "best bid/ask is not the extreme non-empty level",
    5: "live order counts are wrong",
    6: "a level's FIFO queue links are broken",
    7: "the id hash table does not map every live order to its slot",
    8: "the free-slot list is wrong",
    9: "an order rests on the wrong side of the book",
}

# Shared read-only empty results (nothing in them can be mutated; saves an allocation per call).
_NO_FILLS = np.zeros(0, dtype=FILL_DTYPE)
_NO_REJECTS = np.zeros(0, dtype=REJECT_DTYPE)
_NO_RAW_FILLS = np.zeros((0, N_FILL_FIELDS), dtype=np.int64)
_NO_RAW_REJECTS = np.zeros((0, 2), dtype=np.int64)
for _a in (_NO_FILLS, _NO_REJECTS, _NO_RAW_FILLS, _NO_RAW_REJECTS):
    _a.setflags(write=False)

#: Largest ladder the wrapper accepts (2**26 ticks = 2 GiB of ladder would be absurd already).
MAX_LADDER_TICKS = 1 << 26


class OrderInfo(NamedTuple):
    """A live order as seen by :meth:`OrderBook.order`."""

    side: int
    price: int
    remaining: int
    ahead: int  #: quantity queued ahead of it at its price level


class OrderBook:
    """Price-time priority limit order book over integer ticks and lots, backed by numba.

    Messages are ``ORDER_DTYPE`` records: LIMIT, MARKET, IOC, CANCEL and MODIFY (see
    :mod:`marketsim.book.constants`). Fills trade at the resting order's price, best price
    first, FIFO within a level. Invalid messages are rejected with a reason code and leave the
    book unchanged.

    Prices: LIMIT prices must lie in ``1 .. max_price_ticks - 1`` (else
    ``REJECT_PRICE_OUT_OF_RANGE``); the ladder costs 32 bytes per tick (2 MiB for the default
    65,536 ticks). MARKET and IOC orders may carry any positive limit (they never rest). Each
    order slot costs 72 bytes; the pool doubles when full.

    Speed: :meth:`process` handles ~15-30 M messages/s in batches; single-order calls cost
    ~1-2 µs (mostly the call into numba).

    Example:
        >>> book = OrderBook()
        >>> book.limit(SELL, price=10_001, qty=5, order_id=1)
        array([], dtype=...)
        >>> fills = book.limit(BUY, price=10_002, qty=3, order_id=2)
        >>> int(fills["price"][0]), int(fills["qty"][0]), book.best_ask()
        (10001, 3, 10001)
    """

    def __init__(
        self, max_price_ticks: int = DEFAULT_MAX_PRICE_TICKS, initial_capacity: int = 1024
    ) -> None:
        if not (16 <= int(max_price_ticks) <= MAX_LADDER_TICKS):
            raise ConfigError(
                f"max_price_ticks={max_price_ticks!r} is out of range: it must be between 16 "
                f"and {MAX_LADDER_TICKS} (the price ladder costs 32 bytes per tick)"
            )
        if int(initial_capacity) < 1:
            raise ConfigError(f"initial_capacity={initial_capacity!r} must be >= 1")
        self.max_price_ticks = int(max_price_ticks)
        self._s = K.new_state(int(initial_capacity), self.max_price_ticks)
        self._fills = np.zeros((max(64, int(initial_capacity)), N_FILL_FIELDS), dtype=np.int64)
        self._rejects = np.zeros((64, 2), dtype=np.int64)
        self._depth_out = np.zeros((4, 16), dtype=np.int64)
        self._lookup_out = np.zeros(4, dtype=np.int64)

    # ------------------------------------------------------------------ growth
    def _grow_pool(self) -> None:
        s = self._s
        old = s.pool.shape[0]
        new = old * 2
        pool = np.zeros((new, K.N_FIELDS), dtype=np.int64)
        pool[:old] = s.pool
        # Chain the new slots in front of whatever free list exists (normally empty).
        pool[old:, K.F_NEXT] = np.arange(old + 1, new + 1)
        pool[new - 1, K.F_NEXT] = s.meta[K.M_FREE]
        s.meta[K.M_FREE] = old
        htab = np.empty(s.htab.shape[0] * 2, dtype=np.int64)
        K.rebuild_hash(pool, htab, s.meta)
        self._s = K.BookState(pool, htab, s.ladder, s.bitmap, s.meta)

    def _grow_fills(self, need: int) -> None:
        new = max(2 * self._fills.shape[0], need)
        fills = np.zeros((new, N_FILL_FIELDS), dtype=np.int64)
        fills[: self._fills.shape[0]] = self._fills
        self._fills = fills

    def _make_room(self, kind: int) -> None:
        s = self._s
        if kind == LIMIT and s.meta[K.M_FREE] == K.NO_SLOT:
            self._grow_pool()
        opp = max(s.meta[K.M_LIVE_ASK], s.meta[K.M_LIVE_BID])
        need = int(s.meta[K.M_NFILLS] + opp + 1)
        if self._fills.shape[0] < need:
            self._grow_fills(need)

    # ------------------------------------------------------------------ batch path
    def process(self, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply a batch of messages in order; return ``(fills, rejects)``.

        Args:
            orders: an ``ORDER_DTYPE`` array (any other dtype raises ``ConfigError``).

        Returns:
            ``fills`` (``FILL_DTYPE``, execution order; ``taker_index`` is the position in
            ``orders``) and ``rejects`` (``REJECT_DTYPE``: ``index``, ``reason``).

        Runtime: O(messages + fills) plus O(empty ticks / 64) when a best level empties; about
        5 µs of fixed cost per call (see :meth:`process_raw` for the engine's cheaper path).
        """
        if not isinstance(orders, np.ndarray) or orders.dtype != ORDER_DTYPE:
            got = getattr(orders, "dtype", type(orders).__name__)
            raise ConfigError(
                f"orders must be a numpy array of marketsim.book.ORDER_DTYPE, got {got}; "
                "build one with np.zeros(n, dtype=ORDER_DTYPE)"
            )
        if orders.ndim != 1:
            raise ConfigError(f"orders must be 1-D, got shape {orders.shape}")
        n = orders.shape[0]
        raw = orders.view(np.int64).reshape(n, 6) if orders.flags.c_contiguous else as_raw(orders)
        fills, rejects = self.process_raw(raw)
        return (
            as_records(fills, FILL_DTYPE) if fills.shape[0] else _NO_FILLS,
            as_records(rejects, REJECT_DTYPE) if rejects.shape[0] else _NO_REJECTS,
        )

    def process_raw(self, orders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`process` on int64 views: ``orders`` is ``(n, 6)`` int64 (``O_*`` columns).

        Returns ``(fills, rejects)`` as fresh ``(k, 9)`` and ``(r, 2)`` int64 arrays (``FL_*``
        columns; rejects are ``index, reason``). No validation of the array's shape or dtype:
        this is the engine's hot path (~1.5 µs fixed cost per call).
        """
        n = orders.shape[0]
        if self._rejects.shape[0] < n:
            self._rejects = np.zeros((max(n, 2 * self._rejects.shape[0]), 2), dtype=np.int64)
        s = self._s
        s.meta[K.M_NFILLS] = 0
        s.meta[K.M_NREJ] = 0
        i = 0
        while True:
            s = self._s
            i = K.process_batch(
                s.pool, s.htab, s.ladder, s.bitmap, s.meta, orders, i, self._fills, self._rejects
            )
            if i >= n:
                break
            self._make_room(int(orders[i, O_KIND]))
        nf = s.meta[K.M_NFILLS]
        nr = s.meta[K.M_NREJ]
        return (
            self._fills[:nf].copy() if nf else _NO_RAW_FILLS,
            self._rejects[:nr].copy() if nr else _NO_RAW_REJECTS,
        )

    # ------------------------------------------------------------------ single orders
    def _one(self, kind: int, side: int, price: int, qty: int, order_id: int, owner: int) -> int:
        """Apply one message through the scalar kernel; return the number of fills."""
        s = self._s
        r = K.process_one(
            s.pool, s.htab, s.ladder, s.bitmap, s.meta,
            kind, side, price, qty, order_id, owner, self._fills,
        )  # fmt: skip
        while r == K.NEED_GROW:
            s.meta[K.M_NFILLS] = 0
            self._make_room(kind)
            s = self._s
            r = K.process_one(
                s.pool, s.htab, s.ladder, s.bitmap, s.meta,
                kind, side, price, qty, order_id, owner, self._fills,
            )  # fmt: skip
        if r:
            raise OrderError(
                f"order rejected: {REJECT_REASONS[r]} (kind={KIND_NAMES.get(kind, kind)}, "
                f"side={side}, price={price}, qty={qty}, order_id={order_id}); "
                f"{_REJECT_HINTS[r]}",
                r,
            )
        return int(s.meta[K.M_NFILLS])

    def _fill_records(self, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=FILL_DTYPE)
        return as_records(self._fills[:n].copy(), FILL_DTYPE)

    def limit(self, side: int, price: int, qty: int, order_id: int, owner: int = 0) -> np.ndarray:
        """Submit a LIMIT order; return its fills (``FILL_DTYPE``). Raises OrderError if rejected.

        Runtime: ~1-2 µs plus O(fills).
        """
        return self._fill_records(self._one(LIMIT, side, price, qty, order_id, owner))

    def market(self, side: int, qty: int, order_id: int, owner: int = 0) -> np.ndarray:
        """Submit a MARKET order (never rests; any remainder is dropped); return its fills."""
        return self._fill_records(self._one(MARKET, side, 0, qty, order_id, owner))

    def ioc(self, side: int, price: int, qty: int, order_id: int, owner: int = 0) -> np.ndarray:
        """Submit an immediate-or-cancel order limited at ``price``; return its fills."""
        return self._fill_records(self._one(IOC, side, price, qty, order_id, owner))

    def cancel(self, order_id: int) -> None:
        """Cancel live order ``order_id``. Raises OrderError (UNKNOWN_ID) if it is not live."""
        self._one(CANCEL, 0, 0, 0, order_id, 0)

    def modify(self, order_id: int, qty: int) -> None:
        """Reduce live order ``order_id`` to ``qty`` lots, keeping its queue priority."""
        self._one(MODIFY, 0, 0, qty, order_id, 0)

    # ------------------------------------------------------------------ market data
    def best_bid(self) -> int | None:
        """Best bid price in ticks, or None when there are no bids. O(1)."""
        p = int(self._s.meta[K.M_BEST_BID])
        return None if p == NO_PRICE else p

    def best_ask(self) -> int | None:
        """Best ask price in ticks, or None when there are no asks. O(1)."""
        p = int(self._s.meta[K.M_BEST_ASK])
        return None if p == NO_PRICE else p

    def top(self) -> tuple[int, int, int, int]:
        """(best bid, bid qty, best ask, ask qty); prices are NO_PRICE and qty 0 when empty."""
        s = self._s
        bb = int(s.meta[K.M_BEST_BID])
        ba = int(s.meta[K.M_BEST_ASK])
        bq = int(s.ladder[bb, K.L_QTY]) if bb != NO_PRICE else 0
        aq = int(s.ladder[ba, K.L_QTY]) if ba != NO_PRICE else 0
        return bb, bq, ba, aq

    def depth(self, levels: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Aggregated depth: ``(bid_prices, bid_qtys, ask_prices, ask_qtys)``, best first.

        Only non-empty levels, at most ``levels`` per side. O(levels).
        """
        levels = int(levels)
        if levels < 0:
            raise ConfigError(f"levels={levels} must be >= 0")
        if self._depth_out.shape[1] < levels:
            self._depth_out = np.zeros((4, levels), dtype=np.int64)
        s = self._s
        nb, na = K.depth(s.pool, s.ladder, s.bitmap, s.meta, levels, self._depth_out)
        o = self._depth_out
        return o[0, :nb].copy(), o[1, :nb].copy(), o[2, :na].copy(), o[3, :na].copy()

    def volume_at(self, price: int) -> int:
        """Total resting quantity at ``price`` (0 outside the ladder)."""
        price = int(price)
        if 0 <= price < self.max_price_ticks:
            return int(self._s.ladder[price, K.L_QTY])
        return 0

    def order(self, order_id: int) -> OrderInfo | None:
        """Look up a live order: side, price, remaining and quantity queued ahead; or None."""
        s = self._s
        if not K.lookup(s.pool, s.htab, s.ladder, s.meta, int(order_id), self._lookup_out):
            return None
        o = self._lookup_out
        return OrderInfo(int(o[0]), int(o[1]), int(o[2]), int(o[3]))

    def orders(self) -> np.ndarray:
        """All live orders as an ``ORDER_DTYPE`` array (kind LIMIT), bids then asks, in
        priority order. O(live orders)."""
        return as_records(self.orders_raw(), ORDER_DTYPE)

    def orders_raw(self) -> np.ndarray:
        """:meth:`orders` as an ``(n, 6)`` int64 array (``O_*`` columns)."""
        s = self._s
        out = np.zeros((int(s.meta[K.M_LIVE]), N_ORDER_FIELDS), dtype=np.int64)
        K.live_orders(s.pool, s.ladder, s.bitmap, s.meta, out)
        return out

    @property
    def n_orders(self) -> int:
        """Number of live (resting) orders."""
        return int(self._s.meta[K.M_LIVE])

    def __len__(self) -> int:
        return self.n_orders

    @property
    def capacity(self) -> int:
        """Order slots currently allocated (grows by doubling)."""
        return int(self._s.pool.shape[0])

    def memory_bytes(self) -> tuple[int, int]:
        """``(bytes for order slots and id table, bytes for the price ladder and bitmap)``."""
        s = self._s
        return int(s.pool.nbytes + s.htab.nbytes), int(s.ladder.nbytes + s.bitmap.nbytes)

    # ------------------------------------------------------------------ invariants and state
    def _check(self) -> None:
        """Assert every invariant: not crossed, level totals, links, best prices, id table."""
        s = self._s
        code = K.check(s.pool, s.htab, s.ladder, s.bitmap, s.meta)
        if code:
            raise AssertionError(f"order book invariant broken: {_CHECK_MESSAGES[code]}")

    def get_state(self) -> dict[str, np.ndarray]:
        """The book's whole state as arrays (for checkpoints; no pickle)."""
        s = self._s
        return {
            "pool": s.pool.copy(),
            "htab": s.htab.copy(),
            "ladder": s.ladder.copy(),
            "bitmap": s.bitmap.copy(),
            "meta": s.meta.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> OrderBook:
        """Rebuild a book from :meth:`get_state` output; the continued run is identical."""
        from marketsim.errors import StateError

        try:
            # copies: the restored book must never write into the caller's state arrays
            pool = np.array(state["pool"], dtype=np.int64, order="C", copy=True)
            htab = np.array(state["htab"], dtype=np.int64, order="C", copy=True)
            ladder = np.array(state["ladder"], dtype=np.int64, order="C", copy=True)
            bitmap = np.array(state["bitmap"], dtype=np.uint64, order="C", copy=True)
            meta = np.array(state["meta"], dtype=np.int64, order="C", copy=True)
        except KeyError as e:
            raise StateError(f"order-book state is missing array {e.args[0]!r}") from None
        if (
            pool.ndim != 2
            or pool.shape[1] != K.N_FIELDS
            or ladder.ndim != 2
            or ladder.shape[1] != K.N_LEVEL_FIELDS
            or meta.shape != (K.N_META,)
            or bitmap.shape[0] != (ladder.shape[0] + 63) // 64
            or htab.shape[0] < 2 * pool.shape[0]
        ):
            raise StateError("order-book state arrays have inconsistent shapes")
        book = cls.__new__(cls)
        book.max_price_ticks = int(ladder.shape[0])
        book._s = K.BookState(pool, htab, ladder, bitmap, meta)
        book._fills = np.zeros((max(64, pool.shape[0]), N_FILL_FIELDS), dtype=np.int64)
        book._rejects = np.zeros((64, 2), dtype=np.int64)
        book._depth_out = np.zeros((4, 16), dtype=np.int64)
        book._lookup_out = np.zeros(4, dtype=np.int64)
        try:
            book._check()
        except AssertionError as e:
            raise StateError(f"order-book state is corrupted: {e}") from None
        return book


_REJECT_HINTS = {
    1: f"side must be BUY ({BUY}) or SELL ({SELL})",
    2: "qty must be a positive number of lots",
    3: "price must be a positive number of ticks",
    4: "a LIMIT price must be below the book's max_price_ticks",
    5: "order_id is already live in this book; ids must be unique among live orders",
    6: "order_id is not a live order of this book",
    7: "a MODIFY qty must be between 1 and the order's remaining quantity - 1",
    8: f"kind must be one of LIMIT={LIMIT}, MARKET={MARKET}, CANCEL={CANCEL}, "
    f"MODIFY={MODIFY}, IOC={IOC}",
}
