"""Tests of marketsim.data.lobster on synthetic LOBSTER samples generated with our own book."""

from __future__ import annotations

import re

import numpy as np
import pytest

from marketsim.book import BUY, CANCEL, IOC, LIMIT, MODIFY, SELL, OrderBook
from marketsim.data.lobster import (
    EMPTY_ASK_PRICE,
    EMPTY_BID_PRICE,
    LobsterMessages,
    book_row,
    read_lobster_messages,
    read_lobster_orderbook,
    replay_lobster,
    synthetic_lobster,
    to_orders,
    write_lobster,
)
from marketsim.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("lobster")
    msgs, ob = synthetic_lobster(np.random.default_rng(11), 1500, levels=5, halt=True)
    write_lobster(msgs, ob, root / "msg.csv", root / "ob.csv")
    return root, msgs, ob


def test_write_read_round_trip(sample):
    root, msgs, ob = sample
    back = read_lobster_messages(root / "msg.csv")
    for k in ("type", "order_id", "size", "price", "direction"):
        np.testing.assert_array_equal(getattr(back, k), getattr(msgs, k))
    np.testing.assert_allclose(back.time, msgs.time, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(read_lobster_orderbook(root / "ob.csv"), ob)
    assert set(np.unique(msgs.type)) == {1, 2, 3, 4, 5, 7}  # every event kind is exercised


@pytest.mark.parametrize("executions", ["marketable", "reduce"])
def test_replay_reproduces_the_orderbook_file(sample, executions):
    root, msgs, ob = sample
    rep = replay_lobster(root / "msg.csv", orderbook_path=root / "ob.csv", executions=executions)
    assert rep.ok, rep.first_mismatch
    assert rep.n_checked == len(msgs) and rep.n_mismatches == 0 and rep.rejects == []
    n_exec = int((msgs.type == 4).sum())
    assert rep.n_fills == (n_exec if executions == "marketable" else 0)
    assert rep.skipped["hidden_execution"] == int((msgs.type == 5).sum())
    assert rep.skipped["halt"] == 3 and rep.skipped["unknown_id"] == 0
    rep.book._check()
    # fewer levels compared: still exact
    assert replay_lobster(root / "msg.csv", orderbook_path=root / "ob.csv", levels=2).ok


def test_replay_detects_a_wrong_snapshot(sample, tmp_path):
    root, msgs, ob = sample
    bad = ob.copy()
    bad[100, 1] += 1  # ask size at level 1 after message 101
    np.savetxt(tmp_path / "ob.csv", bad, fmt="%d", delimiter=",")
    rep = replay_lobster(root / "msg.csv", orderbook_path=tmp_path / "ob.csv")
    assert not rep.ok and rep.n_mismatches >= 1
    assert rep.first_mismatch["line"] == 101
    assert rep.first_mismatch["expected"][1] == rep.first_mismatch["got"][1] + 1


def test_file_starting_mid_day_skips_unknown_orders(sample, tmp_path):
    root, msgs, ob = sample
    cut = 400
    tail = LobsterMessages(*(getattr(msgs, k)[cut:] for k in
                             ("time", "type", "order_id", "size", "price", "direction")))  # fmt: skip
    write_lobster(tail, ob[cut:], tmp_path / "m.csv", tmp_path / "o.csv")
    rep = replay_lobster(tmp_path / "m.csv", orderbook_path=tmp_path / "o.csv")
    assert rep.skipped["unknown_id"] > 0 and rep.rejects == []
    assert rep.n_mismatches > 0  # orders from before the sample are missing from our book


def test_mapping_of_each_event_type():
    # time, type, id, size, price (x 1e4), direction
    rows = [
        (34200.10, 1, 7, 300, 1_000_100, SELL),  # new ask 100.01 x 300
        (34200.20, 1, 8, 200, 999_900, BUY),  # new bid 99.99 x 200
        (34200.30, 2, 7, 100, 1_000_100, SELL),  # partial cancel 100 -> MODIFY to 200
        (34201.40, 4, 7, 50, 1_000_100, SELL),  # execution of the ask -> IOC buy 50 @ 100.01
        (34201.50, 5, 0, 10, 1_000_000, BUY),  # hidden execution: skipped
        (34202.60, 7, 0, 0, -1, -1),  # halt
        (34203.70, 7, 0, 0, 1, -1),  # resume trading
        (34203.80, 3, 8, 200, 999_900, BUY),  # delete the bid
        (34203.90, 2, 99, 5, 999_900, BUY),  # unknown id: skipped
    ]
    a = np.array(rows)
    msgs = LobsterMessages(a[:, 0], *(a[:, j].astype(np.int64) for j in range(1, 6)))
    conv = to_orders(msgs, step_seconds=1.0, owner=3, counterparty=9)
    o = conv.orders
    assert o["kind"].tolist() == [LIMIT, LIMIT, MODIFY, IOC, CANCEL]
    assert o["order_id"].tolist() == [7, 8, 7, -1, 8]
    assert o["owner"].tolist() == [3, 3, 3, 9, 3]
    assert o["price"].tolist() == [10001, 9999, 10001, 10001, 9999]
    assert o["qty"].tolist() == [300, 200, 200, 50, 0]
    assert o["side"].tolist() == [SELL, BUY, SELL, BUY, BUY]
    assert conv.message_index.tolist() == [0, 1, 2, 3, 7]
    assert conv.n_steps == 4 and conv.step_start_s.tolist() == [34200, 34201, 34202, 34203]
    assert conv.step_offsets.tolist() == [0, 3, 4, 4, 5]
    assert conv.step(0)["order_id"].tolist() == [7, 8, 7]
    assert conv.halted.tolist() == [False, False, True, True]
    assert conv.skipped == {
        "unknown_id": 1, "duplicate_id": 0, "hidden_execution": 1, "cross_trade": 0, "halt": 2
    }  # fmt: skip
    reduce = to_orders(msgs, executions="reduce")
    assert reduce.orders["kind"].tolist()[3] == MODIFY and reduce.orders["qty"].tolist()[3] == 150
    # applying the batch to a book gives the expected state
    book = OrderBook()
    fills, rejects = book.process(o)
    assert len(rejects) == 0 and fills["qty"].tolist() == [50] and fills["maker_id"].tolist() == [7]
    _, _, ap, aq = book.depth(1)
    assert ap.tolist() == [10001] and aq.tolist() == [150] and book.best_bid() is None


def test_book_row_encodes_empty_levels():
    book = OrderBook()
    book.limit(BUY, 9999, 5, 1)
    row = book_row(book, 2, tick_raw=100)
    assert row.tolist() == [EMPTY_ASK_PRICE, 0, 999_900, 5, EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("34200.1,1,5,100,abc,1", "line 2, column 'Price': non-numeric value 'abc'"),
        ("34200.1,9,5,100,1000000,1", "line 2, column 'Type': unknown event type 9"),
        ("34200.1,1,5,100,1000000,0", "line 2, column 'Direction': direction 0 (must be 1 or -1)"),
        ("34200.1,1,5,100.5,1000000,1", "line 2, column 'Size': non-integer value 100.5"),
        ("34200.1,1,5,-3,1000000,1", "line 2, column 'Size': value -3.0 is below 0"),
        ("34199.0,1,5,100,1000000,1", "line 2, column 'Time': time 34199.0 is before the previous"),
        ("34200.1,1,5,100,0,1", "line 2, column 'Price': non-positive price 0 for event type 1"),
    ],
)
def test_message_file_errors(tmp_path, line, message):
    path = tmp_path / "m.csv"
    path.write_text("34200.0,1,4,100,1000000,1\n" + line + "\n")
    with pytest.raises(DataError, match="^" + re.escape(f"{path}: {message}")):
        read_lobster_messages(path)


def test_conversion_errors(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("34200.0,1,4,100,1000050,1\n")
    msgs = read_lobster_messages(path)
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}: line 1, column 'Price': price 1000050 is not a multiple of"),
    ):
        to_orders(msgs, tick_size=0.01)
    assert to_orders(msgs, tick_size=0.0001).orders["price"].tolist() == [1000050]
    with pytest.raises(ConfigError, match="tick_size must be a positive multiple of 0.0001"):
        to_orders(msgs, tick_size=0.00005)
    with pytest.raises(ConfigError, match="executions must be one of"):
        to_orders(msgs, executions="skip")
    with pytest.raises(DataError, match="lot_size=3"):
        to_orders(msgs, tick_size=0.0001, lot_size=3)
    (tmp_path / "ob.csv").write_text("1,2,3\n")
    with pytest.raises(DataError, match="4 columns per level"):
        read_lobster_orderbook(tmp_path / "ob.csv")
    (tmp_path / "ob.csv").write_text("1,2,3,4\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"2 rows, but .* has 1 messages"):
        replay_lobster(path, orderbook_path=tmp_path / "ob.csv", tick_size=0.0001)
