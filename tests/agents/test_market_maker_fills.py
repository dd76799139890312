"""The market maker's order tracking: grouped (numpy) fill handling equals the fill-by-fill loop.

Fills come from the real book on seeded random streams (limits, cancels, market and IOC orders;
no modifies, which the maker does not send); the remaining size tracked for each of the owner's
orders that the book still holds must equal the book's after every batch.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.background.market_maker import _apply_fills_grouped, _apply_fills_loop
from marketsim.book import CANCEL, IOC, LIMIT, MARKET, OrderBook
from marketsim.book.constants import O_ID, O_OWNER, O_QTY
from tests.reference.streams import random_stream, split_points


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), owner=st.integers(0, 1))
def test_grouped_fill_tracking_equals_the_loop_and_the_book(seed, owner):
    rng = np.random.default_rng(seed)
    stream = random_stream(
        rng, 1500, n_owners=2, bad_rate=0.0, weird_rate=0.0, taker_qty_mean=150.0,
        limit_qty_mean=2.0, aggressive_p=0.2, mix={LIMIT: 0.6, CANCEL: 0.25, MARKET: 0.1, IOC: 0.05},
    )  # fmt: skip
    book = OrderBook()
    loop: dict[int, list[int]] = {}
    grouped: dict[int, list[int]] = {}
    cuts = [0, *split_points(rng, len(stream), mean_batch=80.0), len(stream)]
    long_batches = 0
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        batch = stream[a:b]
        for o in batch[(batch["owner"] == owner) & (batch["kind"] == LIMIT)]:
            for d in (loop, grouped):
                d[int(o["order_id"])] = [0, int(o["side"]), int(o["price"]), int(o["qty"])]
        fills, rejects = book.process(batch)
        mine = fills[(fills["maker_owner"] == owner) | (fills["taker_owner"] == owner)]
        long_batches += len(mine) > 24
        _apply_fills_loop(loop, mine)
        _apply_fills_grouped(grouped, mine)
        assert loop == grouped
        # orders that the book no longer holds are only those filled, cancelled or rejected
        live = {int(r[O_ID]): int(r[O_QTY]) for r in book.orders_raw() if r[O_OWNER] == owner}
        for oid, qty in live.items():
            assert grouped[oid][3] == qty
    assert long_batches > 0  # the numpy path was exercised
