"""Order-flow replay: LOBSTER messages replayed into a model's book, RL orders interleaved."""

from __future__ import annotations

import numpy as np
import pytest

from marketsim.data.lobster import book_row, synthetic_lobster, write_lobster
from marketsim.env.parallel import parallel_env
from marketsim.errors import ConfigError
from marketsim.replay import REPLAY_ID_BASE, attach_replays, build_model
from marketsim.scenario import load_scenario

LEVELS = 5


@pytest.fixture(scope="module")
def lobster(tmp_path_factory):
    d = tmp_path_factory.mktemp("lobster")
    msgs, ob = synthetic_lobster(
        np.random.default_rng(3), 800, levels=LEVELS, start_s=34_200.0, mean_gap_s=0.05
    )
    write_lobster(msgs, ob, d / "msg.csv", d / "ob.csv")
    return d / "msg.csv", msgs, ob


def _scenario(path, rl=False, **of):
    sc = {
        "simulation": {"close": "09:31", "step_seconds": 1.0},
        "assets": [{"symbol": "ABC", "initial_price": 100.0}],
        "replay": {"orderflow": {"path": str(path), "asset": "ABC", **of}},
    }
    if rl:
        sc["rl_agents"] = [
            {"name": "rl", "action_mode": "discrete", "cash": 1e6, "shares": {"ABC": 1000},
             "params": {"trade_lots": 3}}
        ]  # fmt: skip
    return sc


def test_scenario_without_replay_table_keeps_its_hash():
    plain = load_scenario({"assets": [{"symbol": "ABC"}]})
    assert plain.replay is None and "replay" not in plain.to_dict()
    with pytest.raises(ConfigError, match="executions"):
        load_scenario(
            {"assets": [{"symbol": "ABC"}],
             "replay": {"orderflow": {"path": "x", "asset": "ABC", "executions": "bad"}}}
        )  # fmt: skip


def test_replayed_book_matches_orderbook_file(lobster):
    path, msgs, ob = lobster
    m = build_model(_scenario(path), record=True)
    (rep,) = m.replays
    assert attach_replays(m) == []  # idempotent
    steps = np.floor(msgs.time - 34_200.0).astype(np.int64)
    last_of_step = np.searchsorted(steps, np.arange(60), side="right") - 1
    book = m.exchange.books[rep.slot]
    checked = 0
    for t in range(59):  # the last step ends the day, which cancels every resting order
        m.step()
        i = int(last_of_step[t])
        if i >= 0:
            np.testing.assert_array_equal(book_row(book, LEVELS, 100, 1), ob[i])
            checked += 1
        book._check()
        m.ledger._check()
    assert checked > 20 and rep.n_sent > 0 and rep.n_fills > 0
    tr = m.trades()
    assert len(tr) == rep.n_fills
    # every trade is between the two replay accounts (no other agent trades)
    accs = {rep.account, rep.taker_account}
    assert set(tr["buyer"]) <= accs and set(tr["seller"]) <= accs
    assert (np.abs(rep.replayed_ids) > REPLAY_ID_BASE).all()


def test_reduce_mode_reproduces_book_without_fills(lobster):
    path, msgs, ob = lobster
    m = build_model(_scenario(path, executions="reduce"), record=False)
    m.run(59)
    i = int(np.searchsorted(np.floor(msgs.time - 34_200.0), 58, side="right") - 1)
    np.testing.assert_array_equal(book_row(m.exchange.books[0], LEVELS, 100, 1), ob[i])
    assert m.replays[0].n_fills == 0 and m.exchange.n_trades[0] == 0


def test_unknown_asset_and_missing_file_are_config_errors(lobster, tmp_path):
    path = lobster[0]
    with pytest.raises(ConfigError, match="not a scenario asset"):
        build_model(_scenario(path, asset="XYZ"))
    with pytest.raises(ConfigError, match="no such file"):
        build_model(_scenario(tmp_path / "missing.csv"))


def _run_env(path, seed):
    env = parallel_env(_scenario(path, rl=True), warmup_steps=5, max_steps=40)  # < day end
    obs, _ = env.reset(seed=seed)
    m = env.model
    rep = m.replays[0]
    acc = env.rl["rl"].account
    rng = np.random.default_rng(seed)
    tops = []
    while env.agents:
        a = {"rl": rng.integers(0, 3, size=env.A)}
        env.step(a)
        m.ledger._check()
        m.exchange.books[0]._check()
        tops.append(m.exchange.books[0].top())
    return env, rep, acc, tops


def test_rl_orders_interleave_with_replayed_flow(lobster):
    path = lobster[0]
    env, rep, acc, tops = _run_env(path, seed=11)
    m = env.model
    assert rep.n_fills > 0  # replayed executions traded
    assert m.ledger.position(acc, 0) != 1000  # the RL agent's market orders filled
    # the RL agent traded against replayed liquidity (it is the only other account)
    assert m.ledger.position(rep.account, 0) + m.ledger.position(rep.taker_account, 0) != 20_000_000
    # deterministic: same seed, same books and accounts
    env2, rep2, acc2, tops2 = _run_env(path, seed=11)
    assert tops == tops2
    np.testing.assert_array_equal(m.ledger.positions, env2.model.ledger.positions)
    np.testing.assert_array_equal(m.ledger.cash_units, env2.model.ledger.cash_units)
