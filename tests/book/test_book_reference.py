"""The fast book against the reference book on seeded random message streams.

Set ``MARKETSIM_TEST_SCALE`` to shrink or grow the stream sizes (default 1.0, or 0.2 under
``NUMBA_DISABLE_JIT=1``).
"""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest

from marketsim.book import (
    BUY,
    CANCEL,
    IOC,
    LIMIT,
    MARKET,
    MODIFY,
    ORDER_DTYPE,
    REJECT_BAD_MODIFY_QTY,
    REJECT_BAD_PRICE,
    REJECT_BAD_QTY,
    REJECT_BAD_SIDE,
    REJECT_DUPLICATE_ID,
    REJECT_PRICE_OUT_OF_RANGE,
    REJECT_UNKNOWN_ID,
    REJECT_UNKNOWN_KIND,
    SELL,
    OrderBook,
)
from marketsim.errors import OrderError
from tests.reference.book import (
    ReferenceBook,
    assert_same_book,
    assert_same_records,
    submit_single,
)
from tests.reference.streams import random_stream, split_points

#: True under NUMBA_DISABLE_JIT=1 (coverage runs): kernels then run as slow Python.
NO_JIT = bool(numba.config.DISABLE_JIT)
SCALE = float(os.environ.get("MARKETSIM_TEST_SCALE", "0.2" if NO_JIT else "1"))
#: ``OrderBook._check()`` is O(ladder); without the JIT run it on every 20th batch only.
CHECK_EVERY = 20 if NO_JIT else 1
INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)

#: Per seed: (ladder size, target book size, initial capacity, messages).
CONFIGS = [
    (65536, None, 1024, 4000),
    (65536, 20, 4, 4000),
    (16, 30, 2, 3000),
    (64, 200, 16, 4000),
    (65536, 2000, 64, 6000),
    (1 << 20, 50, 1, 3000),
]


def _n(n: int) -> int:
    return max(50, int(n * SCALE))


def _run_split(stream, fast, ref, rng, mean_batch=40.0):
    """Feed ``stream`` to both books in random batches, comparing after every batch.

    Returns the reference fills of every batch.
    """
    bounds = split_points(rng, len(stream), mean_batch)
    all_fills = []
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        batch = stream[a:b]
        f_fills, f_rej = fast.process(batch)
        r_fills, r_rej = ref.process(batch)
        where = f"batch [{a}:{b}]"
        assert_same_records(f_fills, r_fills, f"fills of {where}")
        assert_same_records(f_rej, r_rej, f"rejects of {where}")
        if k % CHECK_EVERY == 0:
            fast._check()
        assert_same_book(fast, ref, ids=np.unique(batch["order_id"]))
        all_fills.append(r_fills)
    fast._check()
    return all_fills


@pytest.mark.parametrize("seed", range(24))
def test_random_stream_matches_reference(seed):
    max_price, target, cap, n = CONFIGS[seed % len(CONFIGS)]
    rng = np.random.default_rng(1000 + seed)
    stream = random_stream(
        rng,
        _n(n),
        max_price_ticks=max_price,
        target_live=target,
        bad_rate=(0.0, 0.02, 0.1)[seed % 3],
        n_owners=(1, 4, 50)[seed % 3],
        taker_qty_mean=(5.0, 15.0)[seed % 2],
        first_id=(1, -(10**6), INT64_MAX - 10**6)[seed % 3],
    )
    fast, ref = OrderBook(max_price, initial_capacity=cap), ReferenceBook(max_price)
    fills = _run_split(stream, fast, ref, rng, mean_batch=(3.0, 40.0, 300.0)[seed % 3])
    # the stream must exercise the book: trades (some partial) and, if asked for, rejects
    n_fills = sum(len(f) for f in fills)
    assert n_fills > len(stream) // 20
    assert any((f["maker_remaining"] > 0).any() for f in fills)
    if seed % 3:
        _, rejects = ReferenceBook(max_price).process(stream)
        assert len(np.unique(rejects["reason"])) >= 5


def test_whole_stream_in_one_batch_matches_split_batches():
    """One big batch (fill and reject buffers must grow inside it) equals the reference."""
    rng = np.random.default_rng(7)
    stream = random_stream(rng, _n(20_000), target_live=500, bad_rate=0.05, taker_qty_mean=30.0)
    fast, ref = OrderBook(initial_capacity=1), ReferenceBook()
    f_fills, f_rej = fast.process(stream)
    r_fills, r_rej = ref.process(stream)
    assert len(r_fills) > len(stream) // 5 and len(r_rej) > 0
    assert_same_records(f_fills, r_fills, "fills")
    assert_same_records(f_rej, r_rej, "rejects")
    fast._check()
    assert_same_book(fast, ref, ids=ref.live_ids()[:500])


def test_big_market_orders_sweep_many_levels():
    rng = np.random.default_rng(11)
    stream = random_stream(
        rng,
        _n(5000),
        mix={LIMIT: 0.85, CANCEL: 0.05, MARKET: 0.05, IOC: 0.05},
        taker_qty_mean=400.0,
        distance_p=0.02,
    )
    fast, ref = OrderBook(), ReferenceBook()
    batches = _run_split(stream, fast, ref, rng, mean_batch=25.0)
    swept = max(
        len(np.unique(f["price"][f["taker_index"] == t]))
        for f in batches
        for t in np.unique(f["taker_index"])
    )
    assert swept >= 5, f"no order swept several levels (max {swept})"


@pytest.mark.parametrize("seed", range(3))
def test_single_order_calls_match_reference(seed):
    """The single-order conveniences (a separate code path) agree with the reference."""
    rng = np.random.default_rng(500 + seed)
    max_price = (65536, 16, 4096)[seed]
    stream = random_stream(
        rng, _n(2500), max_price_ticks=max_price, target_live=(None, 30, 300)[seed], bad_rate=0.08
    )
    fast, ref = OrderBook(max_price, initial_capacity=2), ReferenceBook(max_price)
    for i, msg in enumerate(stream):
        r_fills, r_rej = ref.process(stream[i : i + 1])
        oid, kind = int(msg["order_id"]), int(msg["kind"])
        try:
            if kind in (LIMIT, MARKET, IOC, CANCEL, MODIFY):
                got = submit_single(fast, msg.tolist())
            else:
                got, f_rej = fast.process(stream[i : i + 1])
                assert_same_records(f_rej, r_rej, f"rejects of message {i}")
        except OrderError as e:
            assert len(r_rej) == 1, f"message {i} {msg}: fast rejected {e.reason}, ref accepted"
            assert e.reason == r_rej["reason"][0], f"message {i} {msg}: {e.reason} vs {r_rej}"
            got = None
        else:
            if kind in (LIMIT, MARKET, CANCEL, MODIFY, IOC):
                assert len(r_rej) == 0, f"message {i} {msg}: ref rejected {r_rej}, fast accepted"
        if kind in (CANCEL, MODIFY):
            assert got is None, f"message {i}: {kind=} returned {got!r}, expected None"
        elif got is not None:
            assert_same_records(got, r_fills, f"fills of message {i}")
        else:
            assert len(r_fills) == 0
        if i % (16 * CHECK_EVERY) == 0 or i == len(stream) - 1:
            fast._check()
            assert_same_book(fast, ref, ids=[oid])


def _bad_messages(live_id: int, remaining: int, top: int, crossing_price: int):
    """(message, expected reason) pairs, including ones where two checks fail at once."""
    x = live_id
    return [
        ((10**9, 0, 100, 5, LIMIT, 0), REJECT_BAD_SIDE),
        ((10**9, 0, 100, 5, MARKET, 2), REJECT_BAD_SIDE),
        ((10**9, 0, 100, 5, IOC, -128), REJECT_BAD_SIDE),
        ((x, 0, 0, 0, LIMIT, 3), REJECT_BAD_SIDE),  # side before qty, price and duplicate
        ((10**9, 0, 100, 0, LIMIT, BUY), REJECT_BAD_QTY),
        ((10**9, 0, -5, -1, MARKET, SELL), REJECT_BAD_QTY),  # MARKET price is never checked
        ((10**9, 0, 100, INT64_MIN, IOC, BUY), REJECT_BAD_QTY),
        ((x, 0, 0, 0, LIMIT, BUY), REJECT_BAD_QTY),  # qty before price and duplicate
        ((10**9, 0, 0, 5, LIMIT, SELL), REJECT_BAD_PRICE),
        ((10**9, 0, INT64_MIN, 5, IOC, BUY), REJECT_BAD_PRICE),
        ((x, 0, -1, 5, LIMIT, SELL), REJECT_BAD_PRICE),  # price before duplicate
        ((10**9, 0, top + 1, 5, LIMIT, SELL), REJECT_PRICE_OUT_OF_RANGE),
        ((10**9, 0, INT64_MAX, 5, LIMIT, BUY), REJECT_PRICE_OUT_OF_RANGE),
        ((x, 0, top + 1, 5, LIMIT, BUY), REJECT_PRICE_OUT_OF_RANGE),  # range before duplicate
        ((x, 0, crossing_price, 5, LIMIT, BUY), REJECT_DUPLICATE_ID),
        ((x, 0, crossing_price, 5, LIMIT, SELL), REJECT_DUPLICATE_ID),
        ((10**9 + 1, 0, 0, 0, CANCEL, 0), REJECT_UNKNOWN_ID),
        ((10**9 + 1, 0, 0, 0, MODIFY, 0), REJECT_UNKNOWN_ID),  # id before qty
        ((x, 0, 0, 0, MODIFY, 0), REJECT_BAD_MODIFY_QTY),
        ((x, 0, 0, -1, MODIFY, 0), REJECT_BAD_MODIFY_QTY),
        ((x, 0, 0, remaining, MODIFY, 0), REJECT_BAD_MODIFY_QTY),
        ((x, 0, 0, INT64_MAX, MODIFY, 0), REJECT_BAD_MODIFY_QTY),
        ((10**9, 0, 100, 5, 5, BUY), REJECT_UNKNOWN_KIND),
        ((x, 0, -1, -1, -1, 0), REJECT_UNKNOWN_KIND),  # kind before everything
        ((10**9, 0, 100, 5, 127, SELL), REJECT_UNKNOWN_KIND),
    ]


def _snapshot(book, ids):
    depth = [a.tolist() for a in book.depth(len(book) + 1)]
    return depth, book.best_bid(), book.best_ask(), len(book), [book.order(i) for i in ids]


def test_rejected_order_leaves_book_unchanged():
    rng = np.random.default_rng(3)
    top = 65535
    stream = random_stream(rng, _n(3000), target_live=300, bad_rate=0.0)
    fast, ref = OrderBook(), ReferenceBook()
    fast.process(stream)
    ref.process(stream)
    ids = ref.live_ids()
    # a live order with remaining >= 2, so that the modify cases test the range
    x = next(i for i in ids if ref.order(i).remaining >= 2)
    info = ref.order(x)
    crossing = ref.best_ask() if info.side == SELL else ref.best_bid()
    assert crossing is not None
    before = _snapshot(fast, ids)
    for msg, reason in _bad_messages(x, info.remaining, top, crossing):
        batch = np.array([msg], dtype=ORDER_DTYPE)
        fills, rejects = fast.process(batch)
        assert len(fills) == 0, (msg, fills)
        assert rejects.tolist() == [(0, reason)], (msg, rejects, reason)
        assert _snapshot(fast, ids) == before, f"book changed after rejected {msg}"
        fast._check()
        r_fills, r_rej = ref.process(batch)
        assert len(r_fills) == 0 and r_rej.tolist() == [(0, reason)], (msg, r_rej)
    # all the bad messages in one batch, between good no-op-ish messages, give the same rejects
    bad = _bad_messages(x, info.remaining, top, crossing)
    batch = np.array([m for m, _ in bad], dtype=ORDER_DTYPE)
    _, rejects = fast.process(batch)
    assert rejects["index"].tolist() == list(range(len(bad)))
    assert rejects["reason"].tolist() == [r for _, r in bad]
    assert _snapshot(fast, ids) == before
