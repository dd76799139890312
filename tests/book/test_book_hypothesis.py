"""Hypothesis: short edge-case message lists, fast book against the reference book.

Edge cases the strategies aim at: empty book, crossing at equal prices, full sweeps across the
whole ladder, modify to 1, cancel twice, prices 1 and max-1, huge quantities, int64 extremes in
ids, owners, prices and (for orders that never rest) quantities.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketsim.book import (
    BUY,
    CANCEL,
    IOC,
    LIMIT,
    MARKET,
    MODIFY,
    ORDER_DTYPE,
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

INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)
#: Largest quantity of an order that may rest: 40 of them cannot overflow an int64 level total.
HUGE = 1 << 57
MAX_MESSAGES = 40

#: A small id pool so duplicates, cancel-twice and self-trades happen often.
IDS = [1, 2, 3, 0, -1, 4, INT64_MAX, INT64_MIN, 5, 6]
LADDERS = [16, 65536]

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def messages(draw, max_price: int):
    """One message tuple ``(order_id, owner, price, qty, kind, side)``."""
    top = max_price - 1
    kind = draw(
        st.sampled_from(
            [LIMIT, LIMIT, LIMIT, LIMIT, MARKET, IOC, CANCEL, CANCEL, MODIFY, MODIFY, 5, -1, 127]
        )
    )
    side = draw(st.sampled_from([BUY, SELL, BUY, SELL, BUY, SELL, 0, 2, -128]))
    # prices cluster at both ends of the ladder so crossing orders sweep all of it
    price_kind = draw(st.integers(0, 9))
    if price_kind < 5:
        price = draw(st.integers(1, 4))
    elif price_kind < 8:
        price = draw(st.integers(top - 3, top))
    else:
        price = draw(st.sampled_from([0, -1, top + 1, INT64_MAX, INT64_MIN]))
    qty_kind = draw(st.integers(0, 9))
    if qty_kind < 6:
        qty = draw(st.integers(1, 5))
    elif qty_kind < 8:
        qty = HUGE if kind == LIMIT or draw(st.booleans()) else INT64_MAX
    else:
        qty = draw(st.sampled_from([0, -1, INT64_MIN]))
    order_id = draw(st.sampled_from(IDS))
    owner = draw(st.sampled_from([0, 1, INT64_MAX, INT64_MIN]))
    return (order_id, owner, price, qty, kind, side)


@st.composite
def scenarios(draw):
    """A ladder size, a message list and batch split points."""
    max_price = draw(st.sampled_from(LADDERS))
    msgs = draw(st.lists(messages(max_price), max_size=MAX_MESSAGES))
    cuts = draw(st.lists(st.integers(0, len(msgs)), max_size=6))
    bounds = [0, *sorted(cuts), len(msgs)]
    return max_price, msgs, bounds


@SETTINGS
@given(scenarios(), st.sampled_from([1, 3, 1024]))
def test_batches_match_reference(scenario, capacity):
    max_price, msgs, bounds = scenario
    stream = np.array(msgs, dtype=ORDER_DTYPE)
    fast, ref = OrderBook(max_price, initial_capacity=capacity), ReferenceBook(max_price)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        f_fills, f_rej = fast.process(stream[a:b])
        r_fills, r_rej = ref.process(stream[a:b])
        assert_same_records(f_fills, r_fills, f"fills of batch [{a}:{b}]")
        assert_same_records(f_rej, r_rej, f"rejects of batch [{a}:{b}]")
        if max_price < 1024:  # _check() is O(ladder): ~3 ms on a 65536-tick ladder
            fast._check()
        ref._check()
        assert_same_book(fast, ref, ids=IDS)
    fast._check()


@SETTINGS
@given(scenarios())
def test_single_order_calls_match_reference(scenario):
    max_price, msgs, _ = scenario
    fast, ref = OrderBook(max_price, initial_capacity=1), ReferenceBook(max_price)
    for i, msg in enumerate(msgs):
        r_fills, r_rej = ref.process(np.array([msg], dtype=ORDER_DTYPE))
        kind = msg[4]
        if kind not in (LIMIT, MARKET, IOC, CANCEL, MODIFY):
            continue  # unknown kinds only exist on the batch path
        try:
            got = submit_single(fast, msg)
        except OrderError as e:
            assert r_rej["reason"].tolist() == [e.reason], (i, msg, e.reason, r_rej)
            continue
        assert len(r_rej) == 0, (i, msg, r_rej)
        if kind in (CANCEL, MODIFY):
            assert got is None
        else:
            assert_same_records(got, r_fills, f"fills of message {i} {msg}")
        if max_price < 1024:
            fast._check()
    fast._check()
    assert_same_book(fast, ref, ids=IDS)


@SETTINGS
@given(
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
    st.sampled_from([BUY, SELL]),
    st.sampled_from([LIMIT, IOC, MARKET]),
    st.sampled_from([1, 15]),
)
def test_taker_at_equal_price_and_full_sweep(maker_qtys, taker_qtys, side, kind, price_gap):
    """Resting orders at one or two prices; takers priced exactly at the touch or far past it."""
    max_price = 16
    fast, ref = OrderBook(max_price), ReferenceBook(max_price)
    rest_side = -side
    rest = []
    for j, q in enumerate(maker_qtys):
        # two price levels 1 tick apart, mixed in arrival order
        p = 8 + (j % 2) * (1 if rest_side == SELL else -1)
        rest.append((100 + j, j % 3, p, q, LIMIT, rest_side))
    touch = 8
    takers = []
    for j, q in enumerate(taker_qtys):
        if price_gap == 1:
            p = touch  # equal to the best opposite price: crosses
        else:
            p = max_price - 1 if side == BUY else 1  # past the whole ladder
        takers.append((200 + j, 7, p, q, kind, side))
    stream = np.array(rest + takers, dtype=ORDER_DTYPE)
    for part in (stream[: len(rest)], stream[len(rest) :]):
        f_fills, f_rej = fast.process(part)
        r_fills, r_rej = ref.process(part)
        assert_same_records(f_fills, r_fills, "fills")
        assert_same_records(f_rej, r_rej, "rejects")
        fast._check()
        assert_same_book(fast, ref, ids=[r[0] for r in rest] + [t[0] for t in takers])
    # crossing at the equal price trades at least one lot whenever takers exist
    assert len(r_fills) > 0
