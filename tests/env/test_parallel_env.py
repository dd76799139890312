"""The ParallelEnv: PettingZoo's own checks plus multi-step determinism, space containment,
invariants after every step, checkpoints, bad input and termination semantics."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test

from marketsim.env import env as aec_env
from marketsim.env import parallel_env
from tests.env.scenarios import competition, single


def _random_actions(env, rng):
    out = {}
    for a in env.agents:
        sp = env.action_space(a)
        if hasattr(sp, "nvec"):
            out[a] = rng.integers(0, sp.nvec)
        else:
            out[a] = rng.uniform(sp.low, sp.high).astype(np.float32)
    return out


def _rollout(env, seed, steps, check=False):
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    rewards = []
    for _ in range(steps):
        if not env.agents:
            break
        obs, rew, term, trunc, _ = env.step(_random_actions(env, rng))
        trace.append(obs)
        rewards.append(rew)
        if check:
            m = env.model
            m.ledger._check()
            for b in m.exchange.books:
                if b is not None:
                    b._check()
            for a, o in obs.items():
                assert env.observation_space(a).contains(o), a
    return trace, rewards


def test_pettingzoo_parallel_api():
    parallel_api_test(parallel_env(competition(), max_steps=30), num_cycles=30)


def test_pettingzoo_seed_test():
    parallel_seed_test(lambda: parallel_env(competition(), max_steps=20), num_cycles=10)


def test_pettingzoo_aec_api():
    api_test(aec_env(competition(), max_steps=10), num_cycles=10)


def test_multi_step_determinism_and_space_containment():
    e1 = parallel_env(competition(), max_steps=150)
    e2 = parallel_env(competition(), max_steps=150)
    t1, r1 = _rollout(e1, 11, 150, check=True)
    t2, r2 = _rollout(e2, 11, 150)
    assert len(t1) == len(t2) > 100
    for a, b in zip(t1, t2, strict=True):
        for agent in a:
            for k in a[agent]:
                np.testing.assert_array_equal(a[agent][k], b[agent][k])
    assert r1 == r2
    t3, _ = _rollout(e1, 12, 150)
    assert any(
        not np.array_equal(x[a]["market"], y[a]["market"])
        for x, y in zip(t1, t3, strict=False)
        for a in x
        if a in y
    ), "another seed must give another episode"


def test_spaces_are_the_same_objects_and_fixed():
    env = parallel_env(competition())
    assert env.observation_space("pm_0") is env.observation_space("pm_0")
    assert env.action_space("mm") is env.action_space("mm")
    assert env.observation_space("pm_0")["market"].shape == (8, 4, 8)
    assert env.observation_space("pm_0")["exogenous"].shape == (4, 1)
    assert env.action_space("pm_0").shape == (5,)
    assert env.action_space("mm").shape == (4, 3)
    assert list(env.action_space("dq").nvec) == [3, 3, 3, 3]


def test_mask_marks_live_slots_and_no_lookahead():
    env = parallel_env(competition(), max_steps=5)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs["pm_0"]["mask"], [1, 1, 0, 0])
    # the newest window row is the features at this decision: recomputing them from the
    # model's current books gives the same numbers (no data from later steps)
    env.step({a: env.action_space(a).sample() * 0 for a in env.agents})
    mid = env.features.mid.copy()
    bb, _, ba, _ = env.model.exchange.books[0].top()
    assert mid[0] == pytest.approx((bb + ba) / 2)


def test_bad_actions_raise_with_agent_value_and_space():
    env = parallel_env(competition(), max_steps=5)
    env.reset(seed=1)
    good = {a: env.action_space(a).sample() for a in env.agents}
    bad = dict(good, pm_0=np.full(5, 2.0, np.float32))
    with pytest.raises(ValueError, match=r"pm_0.*outside its space"):
        env.step(bad)
    bad = dict(good, pm_1=np.array([np.nan, 0, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match=r"pm_1.*NaN"):
        env.step(bad)
    bad = dict(good, dq=np.array([0, 3, 1, 1]))
    with pytest.raises(ValueError, match=r"dq.*outside its space"):
        env.step(bad)
    with pytest.raises(ValueError, match="unknown agent"):
        env.step(dict(good, nobody=0))
    # nothing was applied: the env still steps normally with missing agents holding
    t = env.model.t
    env.step({"pm_0": good["pm_0"]})
    assert env.model.t == t + env.step_interval


def _own_quotes(env, agent, slot=0):
    """This agent's resting (side, price, qty) in ``slot``, from the book itself."""
    acc = env.rl[agent].account
    raw = env.model.exchange.books[slot].orders_raw()
    return sorted((int(r[5]), int(r[2]), int(r[3])) for r in raw if r[1] == acc)


def test_quotes_mode_replaces_both_sides_at_the_asked_prices():
    """Each decision cancels the agent's quotes and posts one bid and one ask at
    floor(mid - d_bid) / ceil(mid + d_ask) with the asked sizes; zero sizes quote nothing."""
    env = parallel_env(competition(), max_steps=40)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    p = env.specs["qm"].params
    two_sided = 0
    for k in range(30):
        if "qm" not in env.agents:
            break
        acts = _random_actions(env, rng)
        acts.pop("mm", None)  # only the quotes agent makes markets here
        a = rng.uniform(-1, 1, (4, 4)).astype(np.float32)
        if k % 5 == 4:
            a[:, 2:] = -1.0  # no quotes at all
        acts["qm"] = a
        mid = float(env.features.mid[0])
        env.step(acts)
        mine = _own_quotes(env, "qm")
        ob, oa, qb, qa = (float(x) for x in a[0])
        bid = max(1, int(np.floor(mid - (ob + 1) / 2 * p.max_offset_ticks)))
        ask = max(bid + 1, int(np.ceil(mid + (oa + 1) / 2 * p.max_offset_ticks)))
        sizes = [int(round((x + 1) / 2 * p.max_order_lots)) for x in (qb, qa)]
        # resting now: what was posted minus what traded (never more, never another price)
        assert len(mine) <= 2
        for side, price, qty in mine:
            assert (price, True) == (
                (bid, qty <= sizes[0]) if side == 1 else (ask, qty <= sizes[1])
            )
        if k % 5 == 4:
            assert mine == []
        bids = [pr for sd, pr, _ in mine if sd == 1]
        asks = [pr for sd, pr, _ in mine if sd == -1]
        if bids and asks:
            assert bids[0] < asks[0]
            two_sided += 1
        env.model.ledger._check()
    assert two_sided >= 5  # the checks above saw real two-sided quotes


def test_weights_action_reaches_target_through_the_book():
    env = parallel_env(single("weights"), max_steps=50)
    obs, _ = env.reset(seed=2)
    target = np.array([0.5, 0, 0, 0, 0.5], np.float32)
    for _ in range(5):
        obs, rew, *_ = env.step({"solo": target})
    w = obs["solo"]["portfolio"][0]
    assert 0.4 < w < 0.6
    assert env.model.ledger.position(env.rl["solo"].account, 0) > 0


def test_checkpoint_mid_episode_continues_identically(tmp_path):
    env = parallel_env(competition(), max_steps=80)
    rng = np.random.default_rng(4)
    env.reset(seed=9)
    for _ in range(20):
        env.step(_random_actions(env, rng))
    path = env.save(tmp_path / "env.npz")
    state = rng.bit_generator.state
    a_trace = [env.step(_random_actions(env, rng)) for _ in range(30)]
    env2 = type(env).load(path)
    rng.bit_generator.state = state
    b_trace = [env2.step(_random_actions(env2, rng)) for _ in range(30)]
    for (oa, ra, *_), (ob, rb, *_) in zip(a_trace, b_trace, strict=True):
        assert ra == rb
        for agent in oa:
            for k in oa[agent]:
                np.testing.assert_array_equal(oa[agent][k], ob[agent][k])


def test_agent_terminates_alone_when_margin_called():
    sc = competition()
    sc["rl_agents"][0]["leverage_limit"] = 10.0
    env = parallel_env(sc, max_steps=40)
    env.reset(seed=1)
    acc = env.rl["pm_0"].account
    env.model.ledger.close_account(acc)  # as a margin call would
    obs, rew, term, trunc, _ = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert term["pm_0"] and not trunc["pm_0"]
    assert "pm_0" not in env.agents and "pm_1" in env.agents
    assert all(not term[a] for a in env.agents)
    assert env.model.exchange.books[0].orders()["owner"].tolist().count(acc) == 0


def test_everyone_truncates_at_the_end():
    env = parallel_env(competition(), max_steps=3)
    env.reset(seed=1)
    for _ in range(3):
        obs, rew, term, trunc, _ = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert all(trunc.values()) and not env.agents


def test_resets_release_models():
    import gc
    import weakref

    import mesa

    env = parallel_env(competition(), max_steps=3)
    env.reset(seed=1)
    ref = weakref.ref(env.model)
    env.reset(seed=2)
    gc.collect()
    assert ref() is None, "the previous episode's model must be collectable"
    assert env.model in mesa.Agent._ids  # the live one is registered as usual


def test_scenario_without_rl_agents_is_a_clear_error():
    sc = competition()
    sc["rl_agents"] = []
    from marketsim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"rl_agents"):
        parallel_env(sc)
