"""The WebSocket adapter against the real replay server on 127.0.0.1 (random free ports).

Every wait is bounded (``wait_until`` with a timeout, loops with a count) and waits on a
condition, never a fixed sleep.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pandas as pd
import pytest

from marketsim.errors import ConfigError, DataError
from marketsim.live import Faults, ReplayServer, WebSocketAdapter, load_ticks
from marketsim.live.replay_server import MALFORMED_FRAMES, build_plan
from tests.live.helpers import T0, trade_ticks

TIMEOUT = 20.0


def ended(s):
    return s["controls"] >= 1


@pytest.fixture
def client_factory():
    made = []

    def make(url, **kw):
        kw.setdefault("reconnect_initial_s", 0.02)
        kw.setdefault("reconnect_max_s", 0.2)
        c = WebSocketAdapter(url, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def drain(src, n, rounds=10_000):
    got = []
    for _ in range(rounds):
        if len(got) >= n:
            break
        src.wait_until(lambda s: s["queued"] > 0 or s["delivered"] + s["queued"] >= n, TIMEOUT)
        got += src.poll(1000)
    return got


# ------------------------------------------------------------------------------ clean stream
def test_clean_stream_arrives_complete_and_in_order(client_factory):
    ticks = trade_ticks(500)
    with ReplayServer(ticks) as srv:
        src = client_factory(srv.url)
        assert src.wait_until(ended, TIMEOUT)
        got = src.poll()
    assert [t.seq for t in got] == list(range(500))
    assert got[-1].price == ticks[-1]["price"] and got[-1].recv_ns > 0
    s = src.stats()
    assert (s["received"], s["parsed"], s["delivered"], s["connects"]) == (501, 500, 500, 1)
    assert s["malformed"] == s["duplicate"] == s["late"] == s["dropped"] == 0


def test_batched_frames(client_factory):
    with ReplayServer(trade_ticks(1000), batch=64) as srv:
        src = client_factory(srv.url)
        assert src.wait_until(ended, TIMEOUT)
    assert [t.seq for t in src.poll()] == list(range(1000))


# ------------------------------------------------------------------------------ faults
def test_malformed_duplicates_and_reordering_are_counted_not_delivered(client_factory):
    n, window = 600, 8
    faults = Faults(malformed_every=50, duplicate_every=40, delay_every=60, delay_by=5)
    with ReplayServer(trade_ticks(n), faults=faults) as srv:
        src = client_factory(srv.url, reorder_window=window, reorder_window_ms=60_000)
        assert src.wait_until(ended, TIMEOUT)
        got = src.poll()
    assert [t.seq for t in got] == list(range(n))  # every tick once, in order
    s = src.stats()
    plan = build_plan(n, faults)
    assert s["malformed"] == sum(1 for e in plan if e < 0) == n // 50
    assert s["duplicate"] == len(plan) - n - n // 50 == n // 40
    # each held-back tick was overtaken and put back in place, except the last tick (599),
    # which nothing comes after
    assert s["out_of_order"] == n // 60 - 1
    assert s["late"] == 0 and s["gaps"] == 0


def test_held_back_beyond_the_window_is_late_and_dropped(client_factory):
    n, window = 300, 4
    faults = Faults(delay_every=100, delay_by=10)  # seqs 99, 199, 299 held behind 10 later ones
    with ReplayServer(trade_ticks(n), faults=faults) as srv:
        src = client_factory(srv.url, reorder_window=window, reorder_window_ms=60_000)
        assert src.wait_until(ended, TIMEOUT)
        got = [t.seq for t in src.poll()]
    # 99 and 199 come after more than `window` later seqs: given up (gap), then late;
    # 299 is last: nothing later can overtake it, it only waits at the end of the stream
    assert got == [i for i in range(n) if i not in (99, 199)]
    s = src.stats()
    assert (s["late"], s["gaps"], s["malformed"], s["duplicate"]) == (2, 2, 0, 0)


def test_every_malformed_sample_is_counted_once(client_factory):
    n = len(MALFORMED_FRAMES)
    with ReplayServer(trade_ticks(n), faults=Faults(malformed_every=1)) as srv:
        src = client_factory(srv.url)
        assert src.wait_until(ended, TIMEOUT)
    s = src.stats()
    assert (s["malformed"], s["parsed"], s["delivered"] + s["queued"]) == (n, n, n)


# ------------------------------------------------------------------------------ reconnection
def test_server_restart_mid_stream_reconnects_without_duplicate_ticks(client_factory):
    n, resend = 400, 30
    faults = Faults(restart_after=200, restart_down_s=0.1, resend_on_reconnect=resend)
    with ReplayServer(trade_ticks(n), faults=faults) as srv:
        src = client_factory(srv.url)
        assert src.wait_until(ended, TIMEOUT)
        got = src.poll()
        assert srv.restarts == 1 and srv.connections == 2
    assert [t.seq for t in got] == list(range(n))
    s = src.stats()
    assert s["connects"] == 2 and s["reconnects"] >= 1
    assert s["duplicate"] == resend  # the history the server resent after the restart
    assert s["late"] == s["gaps"] == 0


def test_backoff_while_the_server_is_down_then_connects(client_factory):
    srv = ReplayServer(trade_ticks(50)).start()
    port = srv.port
    srv.stop()  # the port is known and nothing listens on it now
    src = client_factory(srv.url, reconnect_initial_s=0.01, reconnect_max_s=0.04)
    assert src.wait_until(lambda s: s["reconnects"] >= 4, TIMEOUT)
    assert src.stats()["connects"] == 0 and src.poll() == []
    log = list(src.backoff_log)[:4]
    assert log == pytest.approx([0.01, 0.02, 0.04, 0.04])  # doubling, capped
    srv.start()
    try:
        assert srv.port == port
        assert src.wait_until(ended, TIMEOUT)
        assert [t.seq for t in src.poll()] == list(range(50))
        assert src.stats()["connects"] == 1
    finally:
        srv.stop()


def test_max_reconnects_gives_up(client_factory):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = client_factory(f"ws://127.0.0.1:{port}", max_reconnects=2, reconnect_initial_s=0.0)
    src._thread.join(TIMEOUT)
    assert src.state == "failed" and src.stats()["reconnects"] == 2


# ------------------------------------------------------------------------------ backpressure
def test_drop_oldest_with_a_stalled_consumer_keeps_the_newest(client_factory):
    n, cap = 2000, 50
    with ReplayServer(trade_ticks(n)) as srv:
        src = client_factory(srv.url, maxsize=cap, policy="drop_oldest")
        assert src.wait_until(ended, TIMEOUT)
        got = src.poll()
    assert [t.seq for t in got] == list(range(n - cap, n))
    assert src.stats()["dropped"] == n - cap


def test_block_producer_with_a_slow_consumer_loses_nothing(client_factory):
    n, cap = 500, 20
    with ReplayServer(trade_ticks(n)) as srv:
        src = client_factory(srv.url, maxsize=cap, policy="block_producer")
        assert src.wait_until(lambda s: s["queued"] >= cap, TIMEOUT)
        # the reader is parked: it stopped reading, so the end of the stream has not been read
        assert not src.stream_ended.is_set()
        got = []
        for _ in range(20 * n):
            if len(got) == n:
                break
            src.wait_until(lambda s: s["queued"] > 0, TIMEOUT)
            got += src.poll(3)  # slow consumer
        assert src.wait_until(ended, TIMEOUT)
    assert [t.seq for t in got] == list(range(n))
    assert src.stats()["dropped"] == 0


def test_bad_url():
    with pytest.raises(ConfigError, match="url='http://x'"):
        WebSocketAdapter("http://x", start=False)


# ------------------------------------------------------------------------------ files and CLI
def test_load_ticks_layouts(tmp_path):
    simple = pd.DataFrame(
        {"time": [2.0, 1.0], "ticker": ["AAA", "BBB"], "price": [10.0, 20.0], "size": [1, 2]}
    )
    simple.to_parquet(tmp_path / "simple.parquet")
    t = load_ticks(tmp_path / "simple.parquet")
    assert [(d["seq"], d["ticker"], d["time_ns"], d["kind"]) for d in t] == [
        (0, "BBB", 1_000_000_000, "trade"),
        (1, "AAA", 2_000_000_000, "trade"),
    ]
    quotes = pd.DataFrame(
        {
            "step": [0, 1, 2],
            "time": pd.to_datetime([T0, T0 + 1, T0 + 2]),
            "asset": ["AAA"] * 3,
            "bid": [float("nan"), 9.9, 9.8],
            "ask": [float("nan"), 10.1, float("nan")],
            "bid_qty": [0, 5, 6],
            "ask_qty": [0, 7, 0],
        }
    )
    quotes.to_parquet(tmp_path / "quotes.parquet")
    q = load_ticks(tmp_path / "quotes.parquet")
    assert len(q) == 2  # the empty book row is skipped
    assert q[0] == {
        "seq": 0,
        "time_ns": T0 + 1,
        "ticker": "AAA",
        "kind": "quote",
        "bid": 9.9,
        "ask": 10.1,
        "bid_size": 5.0,
        "ask_size": 7.0,
    }
    assert "ask" not in q[1]
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="needs a time column"):
        load_ticks(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="file not found"):
        load_ticks(tmp_path / "missing.parquet")


def test_recorder_trades_file_replays(tmp_path, client_factory):
    from marketsim.model import MarketModel
    from tests.live.helpers import tiny_scenario

    m = MarketModel(tiny_scenario(extra_assets=False), out_dir=tmp_path / "run")
    m.run(300)
    m.close()
    trades = pd.read_parquet(tmp_path / "run" / "trades.parquet")
    with ReplayServer(tmp_path / "run" / "trades.parquet") as srv:
        src = client_factory(srv.url)
        assert src.wait_until(ended, TIMEOUT)
        got = src.poll()
    assert len(got) == len(trades) > 0
    assert [t.price for t in got] == trades["price"].tolist()
    assert {t.ticker for t in got} == set(trades["asset"].astype(str))


def test_command_line_server(tmp_path):
    pd.DataFrame(
        {"time": [1.0, 2.0, 3.0], "ticker": ["AAA"] * 3, "price": [1.0, 2.0, 3.0], "size": 1}
    ).to_parquet(tmp_path / "t.parquet")
    proc = subprocess.Popen(
        [sys.executable, "-m", "marketsim.live.replay_server", str(tmp_path / "t.parquet"),
         "--port", "0", "--speed", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()  # "replaying 3 ticks from ... on ws://127.0.0.1:PORT"
        assert line.startswith("replaying 3 ticks"), line
        url = line.split(" on ")[-1].strip()
        src = WebSocketAdapter(url, reconnect_initial_s=0.02)
        try:
            assert src.wait_until(ended, TIMEOUT)
            assert [t.price for t in src.poll()] == [1.0, 2.0, 3.0]
        finally:
            src.close()
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
    bad = subprocess.run(
        [sys.executable, "-m", "marketsim.live.replay_server", str(tmp_path / "nope.parquet")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "file not found" in bad.stderr
