"""OrderBook's public API: single-order calls, lookups, depth, growth and every reject reason."""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest

from marketsim.book import (
    BUY,
    CANCEL,
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
    REJECT_REASONS,
    REJECT_UNKNOWN_ID,
    REJECT_UNKNOWN_KIND,
    SELL,
    OrderBook,
)
from marketsim.errors import MarketSimError, OrderError
from tests.reference.book import ReferenceBook, assert_same_book, assert_same_records

SCALE = float(os.environ.get("MARKETSIM_TEST_SCALE", "0.2" if numba.config.DISABLE_JIT else "1"))
INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)


def fill_tuples(fills):
    """Fills as (taker_id, maker_id, price, qty, maker_remaining) tuples."""
    return [
        (int(f["taker_id"]), int(f["maker_id"]), int(f["price"]), int(f["qty"]),
         int(f["maker_remaining"]))
        for f in fills
    ]  # fmt: skip


def info(book, order_id):
    """``order()`` as a plain (side, price, remaining, ahead) tuple, or None."""
    o = book.order(order_id)
    return None if o is None else (o.side, o.price, o.remaining, o.ahead)


def msgs(*rows):
    return np.array(list(rows), dtype=ORDER_DTYPE)


# ---------------------------------------------------------------------- single-order calls
def test_limit_rests_then_crossing_limit_fills_at_maker_price():
    book = OrderBook()
    assert len(book.limit(SELL, 101, 5, order_id=1, owner=10)) == 0
    assert len(book.limit(SELL, 100, 2, order_id=2, owner=11)) == 0
    fills = book.limit(BUY, 105, 4, order_id=3, owner=12)
    assert fills.dtype == FILL_DTYPE
    # best price first (100), then 101; both at the maker's price, not the taker's 105
    assert fill_tuples(fills) == [(3, 2, 100, 2, 0), (3, 1, 101, 2, 3)]
    assert fills["taker_owner"].tolist() == [12, 12]
    assert fills["maker_owner"].tolist() == [11, 10]
    assert fills["taker_side"].tolist() == [BUY, BUY]
    assert fills["taker_index"].tolist() == [0, 0]
    assert book.best_ask() == 101 and book.best_bid() is None  # taker fully filled: not resting
    assert info(book, 1) == (SELL, 101, 3, 0)
    assert book.order(2) is None and book.order(3) is None
    book._check()


def test_limit_remainder_rests_at_its_price():
    book = OrderBook()
    book.limit(SELL, 100, 2, order_id=1)
    fills = book.limit(BUY, 102, 5, order_id=2)
    assert fill_tuples(fills) == [(2, 1, 100, 2, 0)]
    assert book.best_bid() == 102 and book.best_ask() is None
    assert info(book, 2) == (BUY, 102, 3, 0)


def test_fifo_within_level_and_self_trade_allowed():
    book = OrderBook()
    for oid, qty in ((1, 3), (2, 4), (3, 5)):
        book.limit(BUY, 50, qty, order_id=oid, owner=7)
    fills = book.market(SELL, 6, order_id=4, owner=7)  # same owner: self-trade is allowed
    assert fill_tuples(fills) == [(4, 1, 50, 3, 0), (4, 2, 50, 3, 1)]
    assert fills["taker_side"].tolist() == [SELL, SELL]
    assert info(book, 2) == (BUY, 50, 1, 0)
    assert info(book, 3) == (BUY, 50, 5, 1)


def test_market_never_rests_and_drops_remainder():
    book = OrderBook()
    book.limit(SELL, 100, 2, order_id=1)
    book.limit(SELL, 300, 1, order_id=2)
    fills = book.market(BUY, 10, order_id=3)
    assert fill_tuples(fills) == [(3, 1, 100, 2, 0), (3, 2, 300, 1, 0)]
    assert len(book) == 0 and book.best_bid() is None and book.best_ask() is None
    assert len(book.market(SELL, 5, order_id=4)) == 0  # into an empty book: no fills, no error
    assert len(book) == 0


def test_ioc_matches_up_to_its_limit_and_never_rests():
    book = OrderBook()
    book.limit(SELL, 100, 2, order_id=1)
    book.limit(SELL, 101, 2, order_id=2)
    fills = book.ioc(BUY, 100, 5, order_id=3)
    assert fill_tuples(fills) == [(3, 1, 100, 2, 0)]
    assert book.order(3) is None and book.best_bid() is None and book.best_ask() == 101
    # a price above the ladder is allowed for IOC
    fills = book.ioc(BUY, INT64_MAX, 5, order_id=4)
    assert fill_tuples(fills) == [(4, 2, 101, 2, 0)]
    assert len(book) == 0


def test_market_and_ioc_ids_are_not_checked_for_duplicates():
    book = OrderBook()
    book.limit(BUY, 50, 5, order_id=1)
    book.limit(SELL, 60, 5, order_id=2)
    assert fill_tuples(book.market(BUY, 2, order_id=1)) == [(1, 2, 60, 2, 3)]
    assert fill_tuples(book.ioc(SELL, 50, 1, order_id=2)) == [(2, 1, 50, 1, 4)]
    # the live orders with those ids are untouched apart from their fills
    assert info(book, 1) == (BUY, 50, 4, 0)
    assert info(book, 2) == (SELL, 60, 3, 0)
    # a market order with the same id as the maker it hits (self-trade on one id)
    assert fill_tuples(book.market(SELL, 4, order_id=1)) == [(1, 1, 50, 4, 0)]
    assert book.order(1) is None
    book._check()


def test_market_price_and_cancel_fields_are_ignored():
    book = OrderBook()
    book.limit(SELL, 100, 3, order_id=1)
    fills, rejects = book.process(msgs((2, 0, -7, 1, MARKET, BUY), (1, 0, -1, -1, CANCEL, 9)))
    assert len(rejects) == 0
    assert fill_tuples(fills) == [(2, 1, 100, 1, 2)]
    assert len(book) == 0


def test_modify_keeps_priority_and_cancel_removes():
    book = OrderBook()
    book.limit(SELL, 100, 5, order_id=1)
    book.limit(SELL, 100, 5, order_id=2)
    assert book.modify(1, 1) is None
    assert info(book, 1) == (SELL, 100, 1, 0)
    assert info(book, 2) == (SELL, 100, 5, 1)
    fills = book.market(BUY, 2, order_id=9)
    assert fill_tuples(fills) == [(9, 1, 100, 1, 0), (9, 2, 100, 1, 4)]
    assert book.cancel(2) is None
    assert book.order(2) is None and len(book) == 0 and book.best_ask() is None
    with pytest.raises(OrderError, match="order_id") as e:
        book.cancel(2)  # cancel twice
    assert e.value.reason == REJECT_UNKNOWN_ID


def test_returned_fills_are_not_overwritten_by_later_calls():
    book = OrderBook()
    book.limit(SELL, 100, 5, order_id=1)
    first = book.market(BUY, 2, order_id=2)
    kept = first.copy()
    book.limit(SELL, 99, 5, order_id=3)
    book.market(BUY, 4, order_id=4)
    fills_a, rej_a = book.process(msgs((5, 0, 0, 1, MARKET, BUY), (5, 0, 0, 0, CANCEL, 0)))
    keep_a = (fills_a.copy(), rej_a.copy())
    book.process(msgs((6, 0, 0, 1, MARKET, BUY), (77, 0, 0, 0, CANCEL, 0)))
    assert np.array_equal(first, kept)
    assert np.array_equal(fills_a, keep_a[0]) and np.array_equal(rej_a, keep_a[1])


def test_int64_extreme_ids_owners_and_quantities():
    book = OrderBook()
    ids = [INT64_MIN, -1, 0, INT64_MAX]
    for k, oid in enumerate(ids):
        book.limit(BUY, 10 + k, 1 + k, order_id=oid, owner=INT64_MIN + k)
    for k, oid in enumerate(ids):
        assert info(book, oid) == (BUY, 10 + k, 1 + k, 0)
    book.cancel(-1)
    assert book.order(-1) is None and book.order(INT64_MIN) is not None and len(book) == 3
    fills = book.market(SELL, INT64_MAX, order_id=INT64_MIN, owner=INT64_MAX)
    assert fills["maker_id"].tolist() == [INT64_MAX, 0, INT64_MIN]
    assert fills["maker_owner"].tolist() == [INT64_MIN + 3, INT64_MIN + 2, INT64_MIN]
    assert fills["taker_owner"].tolist() == [INT64_MAX] * 3
    assert len(book) == 0
    # one order of the largest quantity rests and is filled exactly
    book.limit(SELL, 1, INT64_MAX, order_id=INT64_MAX)
    assert book.depth(1)[3].tolist() == [INT64_MAX]
    fills = book.ioc(BUY, 1, INT64_MAX - 1, order_id=5)
    assert fill_tuples(fills) == [(5, INT64_MAX, 1, INT64_MAX - 1, 1)]
    book.market(BUY, INT64_MAX, order_id=6)
    assert len(book) == 0
    book._check()


# ---------------------------------------------------------------------- lookups and depth
def test_order_lookup_ahead_tracks_fills_modifies_and_cancels():
    book = OrderBook()
    for oid, qty in ((1, 3), (2, 4), (3, 5), (4, 6)):
        book.limit(SELL, 200, qty, order_id=oid)
    book.limit(SELL, 201, 7, order_id=5)
    assert [book.order(i).ahead for i in (1, 2, 3, 4, 5)] == [0, 3, 7, 12, 0]
    book.market(BUY, 2, order_id=10)  # partial fill of order 1
    assert [book.order(i).ahead for i in (1, 2, 3, 4)] == [0, 1, 5, 10]
    book.modify(3, 2)
    assert [book.order(i).ahead for i in (2, 3, 4)] == [1, 5, 7]
    book.cancel(2)
    assert [book.order(i).ahead for i in (1, 3, 4)] == [0, 1, 3]
    o4 = book.order(4)
    assert (o4.side, o4.price, o4.remaining, o4.ahead) == (SELL, 200, 6, 3)
    assert book.order(12345) is None


def test_depth_ordering_and_levels_cap():
    book = OrderBook()
    for k, p in enumerate([95, 99, 97, 99, 90]):
        book.limit(BUY, p, 1 + k, order_id=k)
    for k, p in enumerate([105, 101, 103, 101]):
        book.limit(SELL, p, 10 + k, order_id=100 + k)
    bp, bq, ap, aq = book.depth(10)
    assert bp.tolist() == [99, 97, 95, 90] and bq.tolist() == [2 + 4, 3, 1, 5]
    assert ap.tolist() == [101, 103, 105] and aq.tolist() == [11 + 13, 12, 10]
    for a in (bp, bq, ap, aq):
        assert a.dtype == np.int64
    bp, bq, ap, aq = book.depth(2)
    assert bp.tolist() == [99, 97] and ap.tolist() == [101, 103] and aq.tolist() == [24, 12]
    assert all(len(a) == 0 for a in book.depth(0))
    # emptied levels disappear from the depth
    book.cancel(101)
    book.cancel(103)
    assert book.depth(10)[2].tolist() == [103, 105]


def test_empty_sides_have_no_best_price():
    book = OrderBook()
    assert book.best_bid() is None and book.best_ask() is None
    assert all(len(a) == 0 for a in book.depth(5))
    assert len(book) == 0 and book.n_orders == 0
    book.limit(BUY, 10, 1, order_id=1)
    assert book.best_bid() == 10 and book.best_ask() is None
    book.cancel(1)
    book.limit(SELL, 10, 1, order_id=1)  # an id may be reused once it is dead
    assert book.best_bid() is None and book.best_ask() == 10


def test_prices_at_both_ends_of_the_ladder():
    book = OrderBook(max_price_ticks=16)
    book.limit(SELL, 15, 2, order_id=1)
    book.limit(BUY, 1, 2, order_id=2)
    assert (book.best_bid(), book.best_ask()) == (1, 15)
    fills = book.limit(BUY, 15, 3, order_id=3)  # equal price crosses
    assert fill_tuples(fills) == [(3, 1, 15, 2, 0)]
    assert book.best_bid() == 15 and book.best_ask() is None
    fills = book.market(SELL, 10, order_id=4)
    assert fill_tuples(fills) == [(4, 3, 15, 1, 0), (4, 2, 1, 2, 0)]
    assert len(book) == 0
    book._check()


def test_empty_batch():
    book = OrderBook()
    fills, rejects = book.process(np.zeros(0, dtype=ORDER_DTYPE))
    assert fills.dtype == FILL_DTYPE and rejects.dtype == REJECT_DTYPE
    assert len(fills) == 0 and len(rejects) == 0


def test_wrong_dtype_raises():
    book = OrderBook()
    with pytest.raises(MarketSimError, match="ORDER_DTYPE"):
        book.process(np.zeros(3, dtype=np.int64))


# ---------------------------------------------------------------------- growth
def test_growth_beyond_initial_capacity():
    n = max(2000, int(40_000 * SCALE))
    rng = np.random.default_rng(5)
    orders = np.zeros(n, dtype=ORDER_DTYPE)
    orders["order_id"] = rng.permutation(n) * 3 - n  # negative and positive ids
    orders["owner"] = np.arange(n) % 13
    orders["side"] = np.where(np.arange(n) % 2 == 0, BUY, SELL)
    # bids at 1..999, asks at 1000..1999: nothing crosses, so every order rests
    orders["price"] = np.where(orders["side"] == BUY, 1 + rng.integers(0, 999, n), 1000)
    orders["price"] += np.where(orders["side"] == SELL, rng.integers(0, 1000, n), 0)
    orders["qty"] = 1 + rng.integers(0, 9, n)
    orders["kind"] = LIMIT
    fast, ref = OrderBook(initial_capacity=8), ReferenceBook()
    for a in range(0, n, n // 7 + 1):
        f, r = fast.process(orders[a : a + n // 7 + 1])
        ref.process(orders[a : a + n // 7 + 1])
        assert len(f) == 0 and len(r) == 0
    assert len(fast) == n and fast.capacity >= n
    fast._check()
    sample = orders["order_id"][rng.integers(0, n, 300)]
    assert_same_book(fast, ref, ids=sample)
    # cancel every third order, then sweep the asks with one market order
    cancels = orders[::3].copy()
    cancels["kind"] = CANCEL
    f, r = fast.process(cancels)
    ref.process(cancels)
    assert len(r) == 0
    sweep = msgs((10**12, 0, 0, INT64_MAX, MARKET, BUY))
    f_fills, _ = fast.process(sweep)
    r_fills, _ = ref.process(sweep)
    assert len(r_fills) > n // 4
    assert_same_records(f_fills, r_fills, "sweep fills")
    fast._check()
    assert_same_book(fast, ref, ids=sample)


def test_growth_through_single_order_calls():
    n = max(500, int(5000 * SCALE))
    book = OrderBook(initial_capacity=1)
    for i in range(n):
        book.limit(BUY if i % 2 else SELL, 100 + (i % 50) if i % 2 else 200 + (i % 50), 1, i)
    assert len(book) == n and book.capacity >= n

    def where(i):
        return (BUY, 100 + i % 50) if i % 2 else (SELL, 200 + i % 50)

    for i in (0, 1, n // 2, n - 1):
        ahead = sum(1 for j in range(i) if where(j) == where(i))
        assert info(book, i) == (*where(i), 1, ahead)
    fills = book.market(BUY, n, order_id=-5)  # more fills than any buffer held so far
    assert len(fills) == (n + 1) // 2 and fills["price"].tolist() == sorted(fills["price"].tolist())
    book._check()


# ---------------------------------------------------------------------- rejects
def test_reject_reasons_have_names():
    codes = {
        REJECT_BAD_SIDE: "BAD_SIDE",
        REJECT_BAD_QTY: "BAD_QTY",
        REJECT_BAD_PRICE: "BAD_PRICE",
        REJECT_PRICE_OUT_OF_RANGE: "PRICE_OUT_OF_RANGE",
        REJECT_DUPLICATE_ID: "DUPLICATE_ID",
        REJECT_UNKNOWN_ID: "UNKNOWN_ID",
        REJECT_BAD_MODIFY_QTY: "BAD_MODIFY_QTY",
        REJECT_UNKNOWN_KIND: "UNKNOWN_KIND",
    }
    assert REJECT_REASONS == codes
    assert 0 not in REJECT_REASONS  # 0 means "accepted" in kernels


def _book_with_one_order():
    book = OrderBook(max_price_ticks=1000)
    book.limit(SELL, 500, 5, order_id=42)
    return book


SINGLE_REJECTS = [
    ("limit", dict(side=0, price=10, qty=1, order_id=1), REJECT_BAD_SIDE, "side"),
    ("market", dict(side=2, qty=1, order_id=1), REJECT_BAD_SIDE, "side"),
    ("ioc", dict(side=-2, price=10, qty=1, order_id=1), REJECT_BAD_SIDE, "side"),
    ("limit", dict(side=BUY, price=10, qty=0, order_id=1), REJECT_BAD_QTY, "qty"),
    ("market", dict(side=BUY, qty=-3, order_id=1), REJECT_BAD_QTY, "qty"),
    ("ioc", dict(side=SELL, price=10, qty=INT64_MIN, order_id=1), REJECT_BAD_QTY, "qty"),
    ("limit", dict(side=BUY, price=0, qty=1, order_id=1), REJECT_BAD_PRICE, "price"),
    ("ioc", dict(side=BUY, price=-1, qty=1, order_id=1), REJECT_BAD_PRICE, "price"),
    ("limit", dict(side=BUY, price=1000, qty=1, order_id=1), REJECT_PRICE_OUT_OF_RANGE, "price"),
    ("limit", dict(side=BUY, price=INT64_MAX, qty=1, order_id=42), REJECT_PRICE_OUT_OF_RANGE, "price"),
    ("limit", dict(side=BUY, price=600, qty=1, order_id=42), REJECT_DUPLICATE_ID, "order_id"),
    ("cancel", dict(order_id=43), REJECT_UNKNOWN_ID, "order_id"),
    ("modify", dict(order_id=43, qty=1), REJECT_UNKNOWN_ID, "order_id"),
    ("modify", dict(order_id=42, qty=5), REJECT_BAD_MODIFY_QTY, "qty"),
    ("modify", dict(order_id=42, qty=0), REJECT_BAD_MODIFY_QTY, "qty"),
    ("modify", dict(order_id=42, qty=6), REJECT_BAD_MODIFY_QTY, "qty"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "kwargs", "reason", "word"), SINGLE_REJECTS)
def test_single_order_rejects_raise_order_error(method, kwargs, reason, word):
    book = _book_with_one_order()
    before = (book.depth(10)[3].tolist(), info(book, 42), len(book))
    with pytest.raises(OrderError, match=word) as e:
        getattr(book, method)(**kwargs)
    assert e.value.reason == reason
    assert REJECT_REASONS[reason] in str(e.value)
    assert isinstance(e.value, MarketSimError)
    assert (book.depth(10)[3].tolist(), info(book, 42), len(book)) == before
    book._check()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((1, 0, 10, 1, LIMIT, 0), REJECT_BAD_SIDE),
        ((1, 0, 10, 0, IOC, BUY), REJECT_BAD_QTY),
        ((1, 0, 0, 1, IOC, BUY), REJECT_BAD_PRICE),
        ((1, 0, 1000, 1, LIMIT, SELL), REJECT_PRICE_OUT_OF_RANGE),
        ((42, 0, 10, 1, LIMIT, BUY), REJECT_DUPLICATE_ID),
        ((43, 0, 0, 0, CANCEL, 0), REJECT_UNKNOWN_ID),
        ((42, 0, 0, 9, MODIFY, 0), REJECT_BAD_MODIFY_QTY),
        ((1, 0, 10, 1, 5, BUY), REJECT_UNKNOWN_KIND),
        ((1, 0, 10, 1, -1, BUY), REJECT_UNKNOWN_KIND),
    ],
)
def test_batch_rejects_report_index_and_reason(row, reason):
    book = _book_with_one_order()
    good = (7, 0, 400, 1, LIMIT, BUY)
    other = (8, 0, 300, 3, LIMIT, BUY)
    fills, rejects = book.process(msgs(good, row, other, row))
    assert rejects.tolist() == [(1, reason), (3, reason)]
    assert len(fills) == 0 and len(book) == 3
    assert info(book, 42) == (SELL, 500, 5, 0)
    assert info(book, 7) == (BUY, 400, 1, 0)
    assert info(book, 8) == (BUY, 300, 3, 0)
