"""MarketVecEnv: reference equivalence, invariants, determinism, VecEnv API, SB3 smoke."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketsim.book.kernels import new_state
from marketsim.errors import ConfigError, StateError
from marketsim.vector import MarketParams, MarketVecEnv, VecConfig
from marketsim.vector import kernels as VK
from marketsim.vector.vec_env import STATE_ARRAYS
from tests.vector.reference import ReferenceMarket


def random_actions(env: MarketVecEnv, steps: int, seed: int, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-scale, scale, (steps, env.num_envs, env.action_dim)).astype(np.float32)
    a[rng.random((steps, env.num_envs)) < 0.2] = 0.0  # some holds and exact zeros
    return a


def rollout(env: MarketVecEnv, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Reset, step through ``actions``; stack observations, rewards, dones and positions."""
    out = {"obs": [env.reset()], "rew": [], "done": [], "pos": [], "cash": []}
    for a in actions:
        obs, rew, done, _ = env.step(a)
        out["obs"].append(obs)
        out["rew"].append(rew)
        out["done"].append(done)
        out["pos"].append(env.positions)
        out["cash"].append(env.cash)
    return {k: np.array(v) for k, v in out.items()}


# --------------------------------------------------------------------------- reference


@pytest.mark.parametrize(
    "mode, n_agents, kw",
    [
        ("target", 1, {}),
        ("target", 2, {"fundamental_obs": False, "max_position_lots": 30}),
        ("weights", 2, {"allow_short": False}),
        ("weights", 1, {"max_weight": 2.0, "max_position_lots": 40}),
    ],
)
def test_matches_plain_python_reference(mode, n_agents, kw):
    """Every observation, reward, episode end and account equals the reference market's."""
    params = [MarketParams(), MarketParams(zi_market_rate=1.0, mm_levels=1, zi_anchor=0.0)]
    env = MarketVecEnv(2, n_agents, params=params, seed=3, episode_steps=45, window=4,
                       action_mode=mode, **kw)  # fmt: skip
    cfg = env.config
    refs = [
        ReferenceMarket(env._par[m], n_agents, cfg.window, cfg.ladder_ticks, cfg.capacity)
        for m in range(env.n_markets)
    ]
    obs = env.reset()
    want = np.concatenate([r.reset(env._z[m, VK.Z_RESET]) for m, r in enumerate(refs)])
    np.testing.assert_array_equal(obs, want)
    episodes_done = 0
    for t, a in enumerate(random_actions(env, 120, seed=11)):
        obs, rew, dones, infos = env.step(a)
        for m, ref in enumerate(refs):
            rows = slice(m * n_agents, (m + 1) * n_agents)
            r_obs, r_rew, code, r_term = ref.step(a[rows].astype(np.float64), env._u[m], env._z[m])
            where = f"step {t}, market {m}"
            np.testing.assert_array_equal(obs[rows], r_obs, err_msg=where)
            np.testing.assert_array_equal(rew[rows], r_rew, err_msg=where)
            assert env._done[m] == code, where
            assert list(dones[rows]) == [code != VK.RUNNING] * n_agents, where
            if r_term is not None:
                episodes_done += 1
                for j in range(n_agents):
                    info = infos[m * n_agents + j]
                    np.testing.assert_array_equal(info["terminal_observation"], r_term[j])
                    assert info["TimeLimit.truncated"] == (code == VK.TRUNCATED)
            assert [int(env._cash[m, a_]) for a_ in range(env._cash.shape[1])] == [
                ref.cash[a_] for a_ in range(env._cash.shape[1])
            ], where
            assert [int(v) for v in env._pos[m]] == [ref.pos[a_] for a_ in range(len(env._pos[m]))]
            bb, ba = env.best_quotes()
            rbb, rba = ref.book.best_bid(), ref.book.best_ask()
            assert (np.isnan(bb[m]) and rbb is None) or bb[m] == rbb + ref.off, where
            assert (np.isnan(ba[m]) and rba is None) or ba[m] == rba + ref.off, where
            assert env._meta[m, 2] == len(ref.book), where
    assert episodes_done == 2 * env.n_markets  # steps 45 and 90 ended episodes
    assert env.stats()["trades"].min() > 50


def test_full_pool_rejects_limit_orders_like_the_reference():
    """With a tiny capacity LIMIT orders find the pool full: rejected, counted, books sound."""
    env = MarketVecEnv(2, params=MarketParams(zi_cancel_prob=0.0, zi_limit_rate=4.0),
                       seed=5, capacity=64, episode_steps=500, window=2)  # fmt: skip
    refs = [ReferenceMarket(env._par[m], 1, 2, env.config.ladder_ticks, 64) for m in range(2)]
    env.reset()
    for m, r in enumerate(refs):
        r.reset(env._z[m, VK.Z_RESET])
    for a in random_actions(env, 150, seed=2, scale=0.3):
        obs, rew, _, _ = env.step(a)
        for m, r in enumerate(refs):
            r_obs, r_rew, _, _ = r.step(a[m : m + 1].astype(np.float64), env._u[m], env._z[m])
            np.testing.assert_array_equal(obs[m : m + 1], r_obs)
        env.check()
    full = env.stats()["rejected_full"]
    assert full.min() > 0
    assert full.tolist() == [r.rejected_full for r in refs]
    assert env.stats()["live_orders"].max() == 64


# --------------------------------------------------------------------------- invariants


def test_invariants_hold_after_every_step():
    env = MarketVecEnv(4, 2, seed=1, episode_steps=70)
    env.reset()
    env.check()
    init_cash = env.cash.sum(axis=1)
    for a in random_actions(env, 200, seed=4):
        env.step(a)
        env.check()
        # conservation seen from outside: cash and lots over all accounts
        assert (env._cash.sum(axis=1) == env.n_agents * env._par[:, VK.P_INIT_CASH]).all()
        assert (env._pos.sum(axis=1) == 0).all()
        assert (np.abs(env.positions) <= env.config.max_position_lots).all()
    assert env.stats()["episodes"].tolist() == [2] * 4
    np.testing.assert_allclose(init_cash, 2 * 10 * 100.0)


def test_check_detects_broken_conservation_and_book():
    env = MarketVecEnv(3, seed=1)
    env.reset()
    env._cash[1, VK.ACC_ZI] += 1
    with pytest.raises(AssertionError, match="market 1 .*cash is not conserved"):
        env.check()
    env._cash[1, VK.ACC_ZI] -= 1
    env._pos[2, VK.ACC_RL] = 11
    env._pos[2, VK.ACC_MM] -= 11
    with pytest.raises(AssertionError, match="market 2 .*max_position_lots"):
        env.check()
    env._pos[2, VK.ACC_RL] = 0
    env._pos[2, VK.ACC_MM] += 11
    env.check()
    bb = env._meta[0, 0]
    env._ladder[0, bb, 2] += 1  # level total no longer the sum of its orders
    with pytest.raises(AssertionError, match="market 0 .*level's total quantity"):
        env.check()


def test_clear_book_restores_an_empty_book_exactly():
    env = MarketVecEnv(1, seed=0, capacity=128, ladder_ticks=512)
    env.reset()
    for a in random_actions(env, 30, seed=0):
        env.step(a)
    assert env._meta[0, 2] > 0
    # The kernel's Python source (no extra compile); the compiled one runs at every reset.
    VK._clear_book.py_func(env._pool[0], env._htab[0], env._ladder[0], env._bitmap[0], env._meta[0])
    fresh = new_state(128, 512)
    for name, arr in zip(fresh._fields, fresh, strict=True):
        np.testing.assert_array_equal(getattr(env, "_" + name)[0], arr, err_msg=name)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    acts=st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=40),
    seed=st.integers(0, 2**31 - 1),
    mode=st.sampled_from(["target", "weights"]),
)
def test_any_action_sequence_keeps_invariants(acts, seed, mode):
    env = MarketVecEnv(2, seed=seed, action_mode=mode, episode_steps=7, window=3,
                       params=MarketParams(zi_limit_rate=0.5, init_levels=2))  # fmt: skip
    env.reset()
    for x in acts:
        a = np.full((2, env.action_dim), x, np.float32)
        a[1] = -a[1]
        obs, rew, _, _ = env.step(a)
        env.check()
        assert env.observation_space.contains(obs[0]) and np.isfinite(rew).all()


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_trajectory_and_other_seed_differs():
    a = random_actions(MarketVecEnv(3, 2), 150, seed=9)
    r1 = rollout(MarketVecEnv(3, 2, seed=21, episode_steps=60), a)
    r2 = rollout(MarketVecEnv(3, 2, seed=21, episode_steps=60), a)
    r3 = rollout(MarketVecEnv(3, 2, seed=22, episode_steps=60), a)
    for k in r1:
        np.testing.assert_array_equal(r1[k], r2[k], err_msg=k)
    assert not np.array_equal(r1["obs"], r3["obs"])


def test_thread_count_and_parallel_mode_do_not_change_results():
    a = random_actions(MarketVecEnv(6), 120, seed=3)
    old = numba.get_num_threads()
    results = []
    try:
        for parallel, threads in (
            (False, 1),
            (True, 1),
            (True, min(2, numba.config.NUMBA_NUM_THREADS)),
        ):
            numba.set_num_threads(threads)
            env = MarketVecEnv(6, seed=4, episode_steps=50, parallel=parallel)
            results.append(rollout(env, a))
    finally:
        numba.set_num_threads(old)
    for other in results[1:]:
        for k in results[0]:
            np.testing.assert_array_equal(results[0][k], other[k], err_msg=k)


def test_state_round_trip_continues_identically():
    a = random_actions(MarketVecEnv(2), 80, seed=1)
    env = MarketVecEnv(2, seed=8, episode_steps=30)
    env.reset()
    for x in a[:40]:
        env.step(x)
    state = env.get_state()
    tail = [env.step(x) for x in a[40:]]
    env2 = MarketVecEnv(2, seed=0, episode_steps=30)
    env2.set_state(state)
    for x, (obs, rew, done, _) in zip(a[40:], tail, strict=True):
        o2, r2, d2, _ = env2.step(x)
        np.testing.assert_array_equal(obs, o2)
        np.testing.assert_array_equal(rew, r2)
        np.testing.assert_array_equal(done, d2)
    with pytest.raises(StateError, match="'pool' has shape"):
        MarketVecEnv(3).set_state(state)


# --------------------------------------------------------------------------- episodes


def test_auto_reset_gives_terminal_observation_and_fresh_episode():
    env = MarketVecEnv(2, 2, seed=0, episode_steps=5, window=3)
    env.reset()
    for t in range(1, 11):
        obs, rew, dones, infos = env.step(np.full((4, 1), 0.5, np.float32))
        if t % 5:
            assert not dones.any() and all(not i for i in infos)
            assert (env.positions == 5).all()
        else:
            assert dones.all()
            for i in range(4):
                term = infos[i]["terminal_observation"]
                assert infos[i]["TimeLimit.truncated"] is True
                assert term.shape == (env.obs_dim,) and term[3 + 2] == 0.5  # position 5/10
                assert (obs[i, :3] == 0).all() and obs[i, 3 + 2] == 0.0  # new episode: flat
            assert (env.positions == 0).all() and (env.cash == 1000.0).all()
    assert env.stats()["episodes"].tolist() == [2, 2]


def test_ruin_terminates_the_market_episode():
    """An agent with almost no cash that flips between max long and max short pays the spread
    until its equity is gone: its market's episode terminates (not truncated) and resets."""
    env = MarketVecEnv(2, seed=0, initial_cash=1.0, episode_steps=1000)
    env.reset()
    for t in range(200):
        side = 1.0 if t % 2 == 0 else -1.0
        obs, rew, dones, infos = env.step(np.array([[side], [0.0]], np.float32))
        assert not dones[1]
        if dones[0]:
            break
    else:
        pytest.fail("equity never reached 0")
    assert rew[0] == pytest.approx(VK.RUIN_REWARD)
    assert infos[0]["TimeLimit.truncated"] is False
    assert "terminal_observation" in infos[0] and not infos[1]
    assert env.positions[0, 0] == 0 and env.cash[0, 0] == 1.0  # the market was reset
    assert env.stats()["episodes"].tolist() == [1, 0]


def test_buying_moves_the_price_up_against_a_twin_that_holds():
    """Same seed, same draws: the only difference is a max buy, which must lift the mid."""
    buy, hold = MarketVecEnv(8, seed=2), MarketVecEnv(8, seed=2)
    buy.reset(), hold.reset()
    buy.step(np.ones((8, 1), np.float32))
    hold.step(np.zeros((8, 1), np.float32))
    assert (buy.positions[:, 0] == 10).all()
    assert (buy.mid_price >= hold.mid_price).all() and (buy.mid_price > hold.mid_price).any()
    assert (buy.equity[:, 0] < 1000.0).all()  # paid the spread / impact


def test_background_market_looks_like_a_market():
    """With no RL trading: a tight, two-sided book tracking the fundamental, bid-ask bounce."""
    env = MarketVecEnv(4, seed=7, episode_steps=10_000)
    env.reset()
    mids, funds, spreads, two_sided = [], [], [], 0
    zero = np.zeros((4, 1), np.float32)
    for _ in range(1500):
        env.step(zero)
        bb, ba = env.best_quotes()
        two_sided += int(np.isfinite(bb).all() and np.isfinite(ba).all())
        mids.append(env.mid_price)
        funds.append(env.fundamental)
        spreads.append(env.spread_ticks)
    mids, funds = np.array(mids), np.array(funds)
    assert two_sided >= 1450
    assert 1.0 <= np.mean(spreads) <= 4.0
    gap = np.log(mids / funds)
    assert np.abs(gap).mean() < np.log(funds).std()  # mid follows the fundamental
    r = np.diff(np.log(mids), axis=0)
    assert r.std() > 0
    ac1 = np.mean([np.corrcoef(r[:-1, i], r[1:, i])[0, 1] for i in range(4)])
    assert ac1 < 0.05
    st_ = env.stats()
    assert (st_["trades"] > 300).all() and (st_["live_orders"] > 30).all()


# --------------------------------------------------------------------------- API


def test_spaces_and_shapes():
    env = MarketVecEnv(3, 2, window=5)
    assert env.num_envs == 6
    assert env.observation_space.shape == (5 + 5,) and env.observation_space.dtype == np.float32
    assert env.action_space.shape == (1,)
    assert MarketVecEnv(1, action_mode="weights", fundamental_obs=False).action_space.shape == (2,)
    obs = env.reset()
    assert obs.shape == (6, 10) and obs.dtype == np.float32
    obs, rew, done, infos = env.step(np.zeros(6, np.float32))  # (num_envs,) accepted
    assert rew.dtype == np.float32 and done.dtype == bool and len(infos) == 6
    for name in STATE_ARRAYS:  # market-major: a market's rows are contiguous
        arr = getattr(env, "_" + name)
        assert arr.flags.c_contiguous and arr.shape[0] == (6 if name == "obs" else 3), name
    assert env.market_index.tolist() == [0, 0, 1, 1, 2, 2]
    assert env.agent_index.tolist() == [0, 1, 0, 1, 0, 1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_markets": 0}, r"n_markets=0: must be an integer >= 1"),
        ({"episode_steps": 0}, r"episode_steps=0: must be an integer >= 1"),
        ({"action_mode": "orders"}, r"action_mode='orders': must be one of 'target', 'weights'"),
        ({"ladder_ticks": 1000}, r"ladder_ticks=1000: must be a multiple of 64"),
        ({"tick_size": 2.0}, r"initial_price=100.0 is only 50.0 ticks of tick_size=2.0"),
        ({"bogus": 1}, r"unknown MarketVecEnv option\(s\) \['bogus'\]"),
        ({"params": MarketParams(zi_anchor=2.0)}, r"params\[0\]\.zi_anchor=2\.0: must be in"),
        ({"params": [MarketParams()]}, r"sequence of n_markets=2 MarketParams"),
        ({"params": MarketParams(mm_levels=9)}, r"mm_levels=9: at most 8"),
        ({"initial_cash": -5.0}, r"initial_cash=-5.0: must be None or a finite number > 0"),
    ],
)
def test_config_errors_name_the_argument(kwargs, match):
    kw = {"n_markets": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        MarketVecEnv(**kw)


def test_bad_actions_raise_and_change_nothing():
    env, twin = MarketVecEnv(2, seed=1), MarketVecEnv(2, seed=1)
    env.reset(), twin.reset()
    with pytest.raises(ConfigError, match="call reset"):
        MarketVecEnv(1).step(np.zeros((1, 1)))
    with pytest.raises(ConfigError, match=r"actions have shape \(3, 1\); expected \(2, 1\)"):
        env.step(np.zeros((3, 1)))
    with pytest.raises(ConfigError, match=r"finite and in \[-1, 1\].*env\(s\) \[1\]"):
        env.step(np.array([[0.0], [np.nan]]))
    with pytest.raises(ConfigError, match=r"env\(s\) \[0\] got \[\[1.5\]\]"):
        env.step(np.array([[1.5], [0.0]]))
    a = np.array([[0.3], [-1.0]], np.float32)
    o1, r1, _, _ = env.step(a)
    o2, r2, _, _ = twin.step(a)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(r1, r2)


def test_vecenv_attribute_methods_and_seed():
    env = MarketVecEnv(3, 2, seed=0)
    assert env.get_attr("render_mode") == [None] * 6
    assert env.get_attr("n_markets", indices=[1]) == [3]
    assert env.env_is_wrapped(object) == [False] * 6
    assert env.env_method("get_images", indices=[0, 1]) == [[None] * 6, [None] * 6]
    env.set_attr("zi_limit_rate", 0.25, indices=[2, 3])  # envs 2 and 3 are market 1
    assert env.get_attr("zi_limit_rate") == [2.0, 2.0, 0.25, 0.25, 2.0, 2.0]
    assert env.get_attr("zi_depth_mean_ticks", indices=0) == [5.0]
    with pytest.raises(ConfigError, match=r"zi_cancel_prob=2: must be in \[0.0, 1.0\]"):
        env.set_attr("zi_cancel_prob", 2)
    with pytest.raises(ConfigError, match="mm_levels cannot be changed"):
        env.set_attr("mm_levels", 1)
    with pytest.raises(ConfigError, match="shared by all markets"):
        env.set_attr("parallel", True, indices=[0])
    with pytest.raises(ConfigError, match="env index 6 out of range"):
        env.get_attr("render_mode", indices=[6])
    env.set_attr("parallel", False)
    a = random_actions(env, 20, seed=0)
    assert env.seed(77) == [77] * 6
    r1 = rollout(env, a)
    r2 = rollout(MarketVecEnv(3, 2, seed=77), a)
    assert not np.array_equal(r1["obs"], r2["obs"])  # set_attr changed market 1's flow
    np.testing.assert_array_equal(r1["obs"][:, :2], r2["obs"][:, :2])  # market 0 unchanged
    env.close()
    with pytest.raises(ConfigError, match="closed"):
        env.reset()


def test_config_object_and_overrides_combine():
    cfg = VecConfig(window=4, episode_steps=9)
    env = MarketVecEnv(1, config=cfg, episode_steps=3)
    assert env.config.window == 4 and env.config.episode_steps == 3
    assert cfg.episode_steps == 9


def test_sb3_ppo_learns_a_few_hundred_steps():
    pytest.importorskip("stable_baselines3")
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    torch.set_num_threads(1)
    env = VecMonitor(MarketVecEnv(4, seed=0, episode_steps=40))
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=384)
    assert model.num_timesteps >= 384
    assert len(model.ep_info_buffer) >= 4  # episodes finished through auto-reset
    obs = env.reset()
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (4, 1) and np.all(np.abs(action) <= 1.0)
