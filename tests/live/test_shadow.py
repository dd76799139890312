"""Shadow mode: live prices drive the model's reference value, the stream lists and delists
assets, the step never waits on the network, and an RL policy can run on live ticks."""

from __future__ import annotations

import logging
import socket
import time

import numpy as np
import pandas as pd
import pytest

from marketsim.errors import ConfigError, DataError, StateError
from marketsim.feeds import make_feed
from marketsim.live import LiveFeed, QueueAdapter, ReplayServer, ShadowRunner, Tick
from marketsim.live.adapters import WebSocketAdapter
from marketsim.model import MarketModel
from tests.live.helpers import T0, tiny_scenario, trade_ticks

TIMEOUT = 20.0


def tick(seq, ticker, kind="trade", price=float("nan"), **kw):
    return Tick(seq, T0 + seq, ticker, kind, price, 1.0, **kw)


def value_position(model, symbol):
    slot = model.exchange.slot_of(symbol)
    accs = [a for a, t in enumerate(model.account_type) if t == "value"]
    return int(model.ledger.positions[accs, slot].sum())


# ------------------------------------------------------------------------------ LiveFeed
def test_live_feed_contract():
    f = make_feed("live", max_assets=3)
    assert isinstance(f, LiveFeed)
    f.add_asset(1, 50.0)
    assert np.isnan(f.values()[0]) and f.values()[1] == 50.0
    f.update(1, 51.5)
    f.advance(1, 1.0, np.random.default_rng(0))
    f.advance(2, 1.0, np.random.default_rng(0))
    assert f.values()[1] == 51.5 and f.features()["live_age_steps"][1] == 2.0
    with pytest.raises(ValueError):
        f.values()[1] = 3.0  # read-only view
    with pytest.raises(DataError, match="must be a finite number > 0"):
        f.update(1, -2.0)
    with pytest.raises(ConfigError, match="slot 0 holds no asset"):
        f.update(0, 10.0)
    g = LiveFeed(3)
    g.set_state(f.get_state())
    assert g.values()[1] == 51.5 and g.updates[1] == 1
    with pytest.raises(StateError, match="shape"):
        LiveFeed(2).set_state(f.get_state())
    f.remove_asset(1)
    assert np.isnan(f.values()[1])


# ------------------------------------------------------------------------------ queue source
def test_live_prices_become_the_reference_value_and_traders_follow_them():
    runs = {}
    for live_price in (96.0, 100.0, 104.0):
        sc = tiny_scenario(extra_assets=False)
        # half their orders take the touch, so that what they want shows in their positions
        # within the five minutes (passive orders alone fill a few lots: a coin flip)
        (vg,) = [g for g in sc["agents"] if g["type"] == "value"]
        vg["params"]["percent_aggr"] = 0.5
        m = MarketModel(sc, record=False)
        q = QueueAdapter()
        r = ShadowRunner(m, q)
        assert isinstance(m.feed, LiveFeed)
        r.run(60)
        q.put(tick(0, "AAA", price=live_price))
        q.put(tick(1, "BBB", "quote", bid=49.0, ask=49.5))
        r.step()
        a, b = m.exchange.slot_of("AAA"), m.exchange.slot_of("BBB")
        assert m.feed.values()[a] == live_price
        assert m.feed.values()[b] == 49.25  # quote mid
        assert m.fundamental_ticks(a) == pytest.approx(live_price / 0.01)
        r.run(300)
        assert m.feed.values()[a] == live_price  # no model of its own: it holds the live value
        runs[live_price] = value_position(m, "AAA")
    # value traders (holding 5 x 200 AAA at the start) buy an asset whose live value is above
    # the simulated market (~100), sell one whose live value is below it, and the higher the
    # live value the more they hold (at 100, about the market's own level, either can happen)
    assert runs[96.0] < 1000 < runs[104.0]
    assert runs[96.0] <= runs[100.0] <= runs[104.0]


def test_stream_lists_and_delists_declared_assets_and_ignores_unknown(caplog):
    m = MarketModel(tiny_scenario(), record=False)
    q = QueueAdapter()
    r = ShadowRunner(m, q)
    r.run(10)
    assert m.exchange.live_slots() == [0, 1]
    caplog.set_level(logging.WARNING, logger="marketsim.live.shadow")
    for i, t in enumerate(
        [
            tick(0, "CCC", price=21.0),  # declared, not listed yet: ignored
            tick(0, "ZZZ", price=5.0),  # not declared
            tick(0, "ZZZ", price=6.0),
            tick(0, "CCC", "add_ticker", price=21.5),
            tick(0, "CCC", price=22.0),
            tick(0, "BBB", "remove_ticker"),
            tick(0, "BBB", price=48.0),  # delisted now: ignored
        ]
    ):
        q.put(t._replace(seq=i))
    r.step()
    assert m.exchange.live_slots() == [0, 2]
    c = m.exchange.slot_of("CCC")
    assert m.feed.values()[c] == 22.0
    assert np.isnan(m.feed.values()[1])
    st = r.stats()
    assert st["unknown_tickers"] == {"ZZZ": 2}
    assert (st["listed"], st["delisted"], st["not_listed"], st["prices"]) == (1, 1, 2, 2)
    unknown_logs = [rec for rec in caplog.records if "'ZZZ' is not declared" in rec.message]
    assert len(unknown_logs) == 1  # one clear line per ticker, not one per tick
    # CCC's own add_at_step (500) has been taken over by the stream: no double listing
    r.run(500)
    assert m.t == 511 and m.exchange.live_slots() == [0, 2]
    q.put(tick(10, "CCC", "add_ticker"))
    r.step()
    assert r.counts["already_listed"] == 1


def test_out_of_range_price_is_counted_not_applied():
    m = MarketModel(tiny_scenario(extra_assets=False), record=False)
    q = QueueAdapter()
    r = ShadowRunner(m, q)
    q.put(tick(0, "AAA", price=1e9))  # above the book's ladder
    r.step()
    assert r.counts["out_of_range"] == 1 and m.feed.values()[0] == 100.0


def test_auto_list():
    m = MarketModel(tiny_scenario(), record=False)
    q = QueueAdapter()
    r = ShadowRunner(m, q, auto_list=True)
    q.put(tick(0, "CCC", price=19.0))
    r.step()
    assert m.exchange.slot_of("CCC") == 2 and m.feed.values()[2] == 19.0


# ------------------------------------------------------------------------------ websocket source
def test_shadow_on_a_websocket_stream_adds_an_announced_ticker():
    ticks = trade_ticks(50, "AAA", 101.0)
    ticks.append({"seq": 50, "time_ns": T0 + 50_000_000, "ticker": "CCC", "kind": "add_ticker",
                  "price": 20.5})  # fmt: skip
    for i, p in enumerate((20.6, 20.7, 20.8)):
        ticks.append({"seq": 51 + i, "time_ns": T0 + (51 + i) * 1_000_000, "ticker": "CCC",
                      "kind": "trade", "price": p, "size": 3.0})  # fmt: skip
    ticks.append({"seq": 54, "time_ns": T0 + 54_000_000, "ticker": "ZZZ", "kind": "trade",
                  "price": 1.0})  # fmt: skip
    m = MarketModel(tiny_scenario(), record=False)
    with ReplayServer(ticks) as srv:
        src = WebSocketAdapter(srv.url, reconnect_initial_s=0.02)
        try:
            r = ShadowRunner(m, src)
            assert src.wait_until(lambda s: s["controls"] >= 1, TIMEOUT)
            r.run(5)
        finally:
            src.close()
    c = m.exchange.slot_of("CCC")
    assert m.feed.values()[c] == 20.8
    assert m.feed.values()[0] == ticks[49]["price"]
    assert r.unknown == {"ZZZ": 1} and r.counts["listed"] == 1
    r.run(120)  # the new book fills up: traders quote CCC around its live value
    bb, _, ba, _ = m.exchange.top(c)
    assert bb > 0 and ba > 0


def test_step_never_waits_for_a_hanging_handshake():
    # A TCP listener that never answers the WebSocket handshake: the client's connection
    # attempt hangs (up to open_timeout_s) in its own thread while the model keeps stepping.
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(8)
        port = lst.getsockname()[1]
        src = WebSocketAdapter(f"ws://127.0.0.1:{port}", open_timeout_s=30.0)
        try:
            m = MarketModel(tiny_scenario(extra_assets=False), record=False)
            r = ShadowRunner(m, src)
            assert src.wait_until(lambda s: src.state == "connecting", TIMEOUT)
            t0 = time.perf_counter()
            worst = 0.0
            for _ in range(200):
                s0 = time.perf_counter()
                r.step()
                worst = max(worst, time.perf_counter() - s0)
            elapsed = time.perf_counter() - t0
            # all 200 steps ran while the one handshake is still pending
            assert src.state == "connecting" and src.stats()["connects"] == 0
            assert m.t == 200 and r.counts["steps"] == 200
            # a step that waited on the handshake would take open_timeout_s = 30 s
            assert elapsed < 30.0 and worst < 30.0
        finally:
            src.close()


def test_step_never_waits_while_the_server_is_down():
    srv = ReplayServer(trade_ticks(10)).start()
    srv.stop()
    src = WebSocketAdapter(srv.url, reconnect_initial_s=0.01, reconnect_max_s=0.05)
    try:
        m = MarketModel(tiny_scenario(extra_assets=False), record=False)
        r = ShadowRunner(m, src)
        assert src.wait_until(lambda s: s["reconnects"] >= 2, TIMEOUT)
        r.run(100)
        assert m.t == 100 and src.stats()["connects"] == 0
        srv.start()  # back up: the next steps see its ticks
        assert src.wait_until(lambda s: s["controls"] >= 1, TIMEOUT)
        r.step()
        assert m.feed.values()[0] == trade_ticks(10)[-1]["price"]
    finally:
        src.close()
        srv.stop()


# ------------------------------------------------------------------------------ cadence
class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, d):
        self.sleeps.append(d)
        self.now += d


@pytest.mark.parametrize("work, overruns", [(0.3, 0), (1.5, 5)])
def test_fixed_cadence_sleeps_the_rest_of_the_period(work, overruns):
    clock = FakeClock()
    m = MarketModel(tiny_scenario(extra_assets=False), record=False)
    m.step_hooks.append(lambda _m: setattr(clock, "now", clock.now + work))  # a step's cost
    r = ShadowRunner(m, QueueAdapter(), cadence_s=1.0, clock=clock, sleep=clock.sleep)
    r.run(5)
    assert r.counts["overruns"] == overruns
    if overruns:
        assert clock.sleeps == [] and clock.now == pytest.approx(5 * work)
    else:
        assert clock.sleeps == pytest.approx([0.7] * 5) and clock.now == pytest.approx(5.0)


def test_run_stops_at_the_end_and_step_then_raises():
    m = MarketModel(tiny_scenario(extra_assets=False, minutes=1), record=False)
    r = ShadowRunner(m, QueueAdapter())
    r.run()
    assert r.done and m.t == 60
    with pytest.raises(StateError, match="over"):
        r.step()


def test_bad_arguments():
    m = MarketModel(tiny_scenario(extra_assets=False, minutes=1), record=False)
    with pytest.raises(ConfigError, match="cadence_s=-1"):
        ShadowRunner(m, QueueAdapter(), cadence_s=-1)
    with pytest.raises(ConfigError, match="source must be a LiveSource"):
        ShadowRunner(m, [1, 2])
    with pytest.raises(ConfigError, match="target must be"):
        ShadowRunner(object(), QueueAdapter())


# ------------------------------------------------------------------------------ RL policy
def test_rl_policy_in_shadow_mode_on_the_parallel_env():
    from marketsim.env.parallel import MarketParallelEnv

    env = MarketParallelEnv(tiny_scenario(extra_assets=False, rl=True), warmup_steps=30)
    q = QueueAdapter()
    seen = []

    def policy(obs):
        seen.append(obs["pm"]["mask"].copy())
        w = np.zeros(5, np.float32)
        w[0] = 0.5  # half the equity in AAA
        return {"pm": w}

    r = ShadowRunner(env, q, policy=policy)
    assert isinstance(env.model.feed, LiveFeed)
    q.put(tick(0, "AAA", price=101.0))
    r.run(40)
    assert len(seen) == 40 and env.model.feed.values()[0] == 101.0
    acc = env.model.rl_agents["pm"].account
    assert env.model.ledger.positions[acc, 0] > 0


def test_gym_env_needs_a_policy_and_runs_with_one():
    from marketsim.env.gym_env import MarketEnv

    env = MarketEnv(tiny_scenario(extra_assets=False, rl=True), warmup_steps=10)
    with pytest.raises(ConfigError, match="needs a policy"):
        ShadowRunner(env, QueueAdapter()).step()
    env2 = MarketEnv(tiny_scenario(extra_assets=False, rl=True), warmup_steps=10)
    seen = []

    def policy(obs):
        assert env2.observation_space.contains(obs)  # one agent's observation, not a dict
        seen.append(obs)
        return np.zeros(env2.action_space.shape, np.float32)

    r = ShadowRunner(env2, QueueAdapter(), policy=policy)
    r.run(5)
    assert r.counts["steps"] == 5 and len(seen) == 5


def test_an_env_reset_by_the_caller_needs_its_observation():
    from marketsim.env.parallel import MarketParallelEnv

    env = MarketParallelEnv(tiny_scenario(extra_assets=False, rl=True), warmup_steps=10)
    obs, _ = env.reset(seed=1)
    with pytest.raises(ConfigError, match="pass its last observation as obs"):
        ShadowRunner(env, QueueAdapter(), policy=lambda o: {})
    r = ShadowRunner(env, QueueAdapter(), policy=lambda o: {}, obs=obs)
    r.run(2)
    assert r.counts["steps"] == 2


# ------------------------------------------------------------------------------ monitor
def test_runner_builds_a_monitor_with_live_columns(tmp_path):
    m = MarketModel(tiny_scenario(extra_assets=False), out_dir=tmp_path, record=True)
    q = QueueAdapter()
    with ShadowRunner(m, q, monitor={"every": 5}) as r:
        for i in range(20):
            q.put(tick(i, "AAA", price=100.0 + i / 100))
            r.step()
    m.close()
    df = pd.read_parquet(tmp_path / "monitor.parquet")
    assert len(df) == 4 and df["live/ticks"].sum() == 20
    assert df["live/delivered"].iloc[-1] == 20 and (df["live/queue"] == 0).all()
