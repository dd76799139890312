"""Validation, sequencing and backpressure of the live adapters (no network here)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.errors import ConfigError, DataError
from marketsim.live.adapters import QueueAdapter, SequenceGuard, Tick, parse_tick, tick_to_json
from tests.live.helpers import T0


def msg(**kw):
    d = {"seq": 1, "time_ns": T0, "ticker": "AAA", "kind": "trade", "price": 10.0, "size": 2}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not ...}


# ------------------------------------------------------------------------------ validation
def test_parse_valid_kinds_and_ref_price():
    t = parse_tick(msg(), recv_ns=5)
    assert t == Tick(1, T0, "AAA", "trade", 10.0, 2.0, recv_ns=5)
    assert t.ref_price() == 10.0
    q = parse_tick(msg(kind="quote", price=..., bid=9.0, ask=11.0))
    assert q.ref_price() == 10.0
    assert parse_tick(msg(kind="quote", price=..., bid=9.0)).ref_price() == 9.0
    a = parse_tick(msg(kind="add_ticker", price=..., size=...))
    assert a.ref_price() != a.ref_price()  # NaN: no price
    assert parse_tick(msg(kind="remove_ticker", price=...)).kind == "remove_ticker"
    assert parse_tick(msg(extra="ignored")).seq == 1


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ([1, 2], "must be a JSON object"),
        (msg(seq=...), "missing field 'seq'"),
        (msg(time_ns=...), "missing field 'time_ns'"),
        (msg(seq=-1), "seq=-1"),
        (msg(seq=True), "seq=True"),
        (msg(seq=1.0), "seq=1.0"),
        (msg(time_ns="now"), "time_ns='now'"),
        (msg(ticker=""), "ticker=''"),
        (msg(ticker="A B"), "ticker='A B'"),
        (msg(kind="teleport"), "kind='teleport'"),
        (msg(price=-1.0), "price=-1.0"),
        (msg(price=0), "price=0"),
        (msg(price=...), "price=None"),
        (msg(price=float("nan")), "price=nan"),
        (msg(price=float("inf")), "must be finite"),
        (msg(price="10"), "price='10'"),
        (msg(price=True), "price=True"),
        (msg(size=-3), "sizes must be >= 0"),
        (msg(kind="quote", price=..., bid=11.0, ask=10.0), "crossed quote"),
        (msg(kind="quote", price=...), "neither bid nor ask"),
        (msg(kind="quote", price=..., bid=-1.0, ask=10.0), "must be > 0"),
        (msg(kind="add_ticker", price=-5.0), "add_ticker price"),
    ],
)
def test_parse_rejects_bad_messages_with_a_precise_message(bad, fragment):
    with pytest.raises(DataError, match=None) as e:
        parse_tick(bad)
    assert fragment in str(e.value)


def test_tick_json_round_trip():
    t = Tick(3, T0, "AAA", "quote", bid=9.5, ask=9.75, bid_size=100.0)
    import json

    assert parse_tick(json.loads(tick_to_json(t))) == t


# ------------------------------------------------------------------------------ sequencing
def reference_guard(seqs: list[int], window: int) -> tuple[list[int], dict[str, int]]:
    """Obvious re-statement of SequenceGuard's rules (count window only), then a flush."""
    released: set[int] = set()
    pending: list[int] = []
    nxt = None
    out: list[int] = []
    c = {"duplicate": 0, "late": 0, "out_of_order": 0, "gaps": 0}
    max_seen = -1

    def release(s):
        nonlocal nxt
        pending.remove(s)
        out.append(s)
        released.add(s)
        nxt = s + 1

    for s in seqs:
        if nxt is not None and s < nxt:
            c["duplicate" if s in released else "late"] += 1
            continue
        if s in pending:
            c["duplicate"] += 1
            continue
        if s < max_seen:
            c["out_of_order"] += 1
        max_seen = max(max_seen, s)
        pending.append(s)
        while True:
            if nxt is not None and nxt in pending:
                release(nxt)
            elif len(pending) > window:
                m = min(pending)
                if nxt is not None:
                    c["gaps"] += m - nxt
                release(m)
            else:
                break
    while pending:
        m = min(pending)
        if nxt is not None:
            c["gaps"] += m - nxt
        release(m)
    return out, c


def run_guard(seqs: list[int], window: int) -> tuple[list[int], dict[str, int]]:
    g = SequenceGuard(window, window_ms=1e9)
    out: list[Tick] = []
    for s in seqs:
        g.push(Tick(s, T0, "AAA", "trade", 1.0), 0, out)
    g.flush(out)
    c = {"duplicate": g.duplicate, "late": g.late, "out_of_order": g.out_of_order, "gaps": g.gaps}
    return [t.seq for t in out], c


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 60), max_size=150), st.integers(0, 8))
def test_guard_matches_reference_on_arbitrary_streams(seqs, window):
    got, counts = run_guard(seqs, window)
    ref, ref_counts = reference_guard(seqs, window)
    assert got == ref
    assert counts == ref_counts
    assert got == sorted(set(got))  # strictly increasing, no repeats
    assert len(got) + counts["duplicate"] + counts["late"] == len(seqs)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(1, 12))
def test_guard_restores_order_within_the_window(data, window):
    n = data.draw(st.integers(1, 120))
    # jittered arrival order: seq i arrives at i + u_i, u_i in [0, window), so fewer than
    # `window` higher seqs can overtake any message
    jitter = data.draw(st.lists(st.floats(0, window - 1e-6), min_size=n, max_size=n))
    seqs = sorted(range(n), key=lambda i: i + jitter[i])
    dups = data.draw(st.lists(st.integers(0, n - 1), max_size=10))
    stream = list(seqs)
    for d in dups:  # repeat an already-sent seq right away
        k = stream.index(d)
        stream.insert(k + 1, d)
    got, counts = run_guard(stream, window)
    assert got == list(range(n))
    assert counts["late"] == 0 and counts["gaps"] == 0
    assert counts["duplicate"] == len(dups)


def test_guard_time_window_gives_up_on_a_gap():
    ms = 1_000_000
    g = SequenceGuard(window=100, window_ms=5.0)
    out: list[Tick] = []
    g.push(Tick(0, T0, "A", "trade", 1.0), 0, out)
    assert out == [] and g.n_pending == 1  # the first message waits in case an earlier one comes
    g.expire(5 * ms, out)
    assert out == []
    g.expire(5 * ms + 1, out)
    assert [t.seq for t in out] == [0]
    g.push(Tick(2, T0, "A", "trade", 1.0), 6 * ms, out)  # 1 is missing
    g.expire(11 * ms, out)  # 5 ms waited: still within the window
    assert [t.seq for t in out] == [0] and g.n_pending == 1
    g.expire(11 * ms + 1, out)
    assert [t.seq for t in out] == [0, 2] and g.gaps == 1
    g.push(Tick(1, T0, "A", "trade", 1.0), 12 * ms, out)
    assert g.late == 1 and g.duplicate == 0
    g.push(Tick(2, T0, "A", "trade", 1.0), 12 * ms, out)
    assert g.duplicate == 1 and len(out) == 2


def test_guard_bad_arguments():
    with pytest.raises(ConfigError, match="reorder_window=-1"):
        SequenceGuard(-1)
    with pytest.raises(ConfigError, match="reorder_window_ms"):
        SequenceGuard(3, float("nan"))


# ------------------------------------------------------------------------------ queue adapter
def trade(seq, price=10.0, ticker="AAA"):
    return Tick(seq, T0 + seq, ticker, "trade", price, 1.0)


def test_queue_adapter_counts_malformed_and_never_raises():
    q = QueueAdapter()
    assert q.put(trade(0))
    assert not q.put(trade(1, price=-3.0))
    assert not q.put({"seq": 2, "ticker": "AAA"})
    assert q.put(msg(seq=3))
    s = q.stats()
    assert (s["received"], s["parsed"], s["malformed"], s["queued"]) == (4, 2, 2, 2)
    got = q.poll(10)
    assert [t.seq for t in got] == [0, 3]
    assert all(t.recv_ns > 0 for t in got)
    assert q.poll(10) == [] and q.stats()["delivered"] == 2


def test_queue_adapter_bad_arguments():
    with pytest.raises(ConfigError, match="policy='lifo'"):
        QueueAdapter(policy="lifo")
    with pytest.raises(ConfigError, match="maxsize=0"):
        QueueAdapter(maxsize=0)


def test_drop_oldest_keeps_the_newest():
    q = QueueAdapter(maxsize=10, policy="drop_oldest")
    assert all(q.put(trade(i)) for i in range(100))
    assert [t.seq for t in q.poll()] == list(range(90, 100))
    assert q.stats()["dropped"] == 90


def test_drop_newest_keeps_the_oldest():
    q = QueueAdapter(maxsize=10, policy="drop_newest")
    accepted = [q.put(trade(i)) for i in range(100)]
    assert accepted == [True] * 10 + [False] * 90
    assert [t.seq for t in q.poll()] == list(range(10))
    assert q.stats()["dropped"] == 90


def test_block_producer_waits_for_a_slow_consumer_and_drops_nothing():
    q = QueueAdapter(maxsize=5, policy="block_producer")
    n = 60
    done = threading.Event()

    def produce():
        for i in range(n):
            q.put(trade(i))
        done.set()

    th = threading.Thread(target=produce, daemon=True)
    th.start()
    # the producer fills the queue and then waits inside put() for room
    assert q.wait_until(lambda s: s["queued"] == 5 and s["received"] == 6, timeout=10)
    assert not done.is_set()
    got = []
    for _ in range(10 * n):  # slow consumer: one tick per poll
        if len(got) == n:
            break
        q.wait_until(lambda s: s["queued"] > 0, timeout=10)
        got += q.poll(1)
    th.join(10)
    assert done.is_set()
    assert [t.seq for t in got] == list(range(n))
    assert q.stats()["dropped"] == 0


def test_block_producer_timeout_drops_and_close_releases_the_producer():
    q = QueueAdapter(maxsize=1, policy="block_producer")
    assert q.put(trade(0))
    assert not q.put(trade(1), timeout=0.01)
    assert q.stats()["dropped"] == 1
    result = []
    th = threading.Thread(target=lambda: result.append(q.put(trade(2))), daemon=True)
    th.start()
    assert q.wait_until(lambda s: s["received"] == 3, timeout=10)
    q.close()
    th.join(10)
    assert result == [False]


def test_queue_adapter_across_threads():
    producers, per = 4, 2000
    q = QueueAdapter(maxsize=64, policy="block_producer")
    barrier = threading.Barrier(producers)

    def produce(k):
        barrier.wait()
        for i in range(per):
            q.put(Tick(i, T0 + i, f"T{k}", "trade", 1.0 + i, 1.0))

    threads = [threading.Thread(target=produce, args=(k,), daemon=True) for k in range(producers)]
    for th in threads:
        th.start()
    got: list[Tick] = []
    total = producers * per
    for _ in range(total):  # bounded: at least one tick per round
        if len(got) == total:
            break
        q.wait_until(lambda s: s["queued"] > 0, timeout=10)
        got += q.poll(100)
    for th in threads:
        th.join(10)
    assert len(got) == total and q.stats()["dropped"] == 0
    for k in range(producers):  # each producer's ticks arrive in the order it put them
        assert [t.seq for t in got if t.ticker == f"T{k}"] == list(range(per))


def test_queue_adapter_with_sequencing_drops_duplicates():
    q = QueueAdapter(reorder_window=2, reorder_window_ms=1e6)
    for s in [0, 2, 1, 1, 3, 0]:
        q.put(trade(s))
    assert [t.seq for t in q.poll()] == [0, 1, 2, 3]
    s = q.stats()
    assert s["duplicate"] == 2 and s["out_of_order"] == 1
