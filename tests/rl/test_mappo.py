"""MAPPO / IPPO: smoke, learning on a tiny task, market spaces, checkpoints, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.rl import ippo, mappo
from agents.rl.common import NetConfig
from agents.rl.rollout import RandomPolicy, evaluate
from marketsim.errors import StateError
from tests.rl.conftest import same_state
from tests.rl.fakes import FakeMarketEnv, TinyCoopEnv

SMALL = dict(num_envs=2, num_steps=16, update_epochs=2, net=NetConfig(hidden_sizes=(16, 16)))


def test_smoke_on_simple_spread(spread_cont, tmp_path):
    policy, history = mappo.train(spread_cont, mappo.MAPPOConfig(**SMALL), seed=0, total_steps=300)
    assert len(history) == 10 and history[-1]["global_step"] == 320
    last = history[-1]
    for key in ("losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/approx_kl"):
        assert np.isfinite(last[key])
    assert "charts/episode_return" in history[-1]  # episodes of 25 steps finished
    env = spread_cont()
    obs, _ = env.reset(seed=3)
    act = policy.act(obs)
    assert set(act) == set(env.agents)
    assert all(env.action_space(a).contains(act[a]) for a in act)


@pytest.mark.parametrize("action", ["box", "discrete", "multidiscrete"])
def test_learns_tiny_task_beyond_random(action):
    env_fn = lambda: TinyCoopEnv(action=action, die_at=3)  # noqa: E731
    cfg = mappo.MAPPOConfig(
        num_envs=4,
        num_steps=16,
        update_epochs=4,
        learning_rate=3e-3,
        net=NetConfig(hidden_sizes=(32, 32)),
    )
    policy, _ = mappo.train(env_fn, cfg, seed=1, total_steps=3000)
    env = env_fn()
    rand = RandomPolicy(
        {a: env.action_space(a) for a in env.possible_agents}, np.random.default_rng(0)
    )
    trained = evaluate(env_fn, policy, 20, seed=100).mean()
    baseline = evaluate(env_fn, rand, 20, seed=100).mean()
    assert trained > baseline + 1.5, (trained, baseline)


def test_ippo_uses_decentralised_critics_and_mixed_market_groups():
    env_fn = lambda: FakeMarketEnv()  # noqa: E731
    cfg = ippo.IPPOConfig(**SMALL)
    policy, history = ippo.train(env_fn, cfg, seed=0, total_steps=64)
    assert policy.config.centralised_critic is False
    assert policy.groups == [["pf_0", "pf_1"], ["mm_0"]]
    assert np.isfinite(history[-1]["losses/value_loss"])
    env = env_fn()
    obs, _ = env.reset(seed=0)
    act = policy.act(obs)
    w = act["pf_0"]
    assert w.shape == (5,) and np.isclose(w.sum(), 1.0, atol=1e-5) and (w >= 0).all()
    assert act["mm_0"].shape == (4, 3)
    # a MAPPO config handed to ippo.train is switched to decentralised critics
    policy2, _ = ippo.train(env_fn, mappo.MAPPOConfig(**SMALL), seed=0, total_steps=32)
    assert policy2.config.centralised_critic is False


def test_save_load_round_trip(tmp_path):
    env_fn = lambda: FakeMarketEnv({"a": "weights", "b": "discrete", "c": "orders"})  # noqa: E731
    policy, _ = mappo.train(env_fn, mappo.MAPPOConfig(**SMALL), seed=0, total_steps=32)
    path = policy.save(tmp_path / "ckpt")
    assert (path / "weights.pt").exists() and (path / "config.json").exists()
    loaded = mappo.MAPPOPolicy.load(path)
    assert same_state(policy, loaded)
    env = env_fn()
    obs, _ = env.reset(seed=4)
    a1, a2 = policy.act(obs), loaded.act(obs)
    for k in a1:
        np.testing.assert_array_equal(a1[k], a2[k])
    torch.manual_seed(7)
    s1 = policy.act(obs, deterministic=False)
    torch.manual_seed(7)
    s2 = loaded.act(obs, deterministic=False)
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k])
    with pytest.raises(StateError, match="expected 'maddpg'"):
        from agents.rl.maddpg import MADDPGPolicy

        MADDPGPolicy.load(path)


def test_same_seed_same_parameters_and_rng_untouched():
    env_fn = lambda: TinyCoopEnv(action="box")  # noqa: E731
    cfg = mappo.MAPPOConfig(**SMALL)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    p1, h1 = mappo.train(env_fn, cfg, seed=3, total_steps=96)
    assert torch.equal(torch.rand(1), before)  # the caller's torch RNG stream is unchanged
    p2, h2 = mappo.train(env_fn, cfg, seed=3, total_steps=96)
    p3, _ = mappo.train(env_fn, cfg, seed=4, total_steps=96)
    assert same_state(p1, p2)
    assert not same_state(p1, p3)
    strip = lambda h: [{k: v for k, v in m.items() if k != "charts/sps"} for m in h]  # noqa: E731
    assert strip(h1) == strip(h2)


def test_flat_market_obs_uses_market_heads_with_layout():
    from agents.rl.networks import PortfolioWeightsHead

    env_fn = lambda: FakeMarketEnv({"a": "weights", "b": "weights"}, flat_obs=True)  # noqa: E731
    net = NetConfig(hidden_sizes=(16, 16), market_layout=(3, 4, 8, 1))
    cfg = mappo.MAPPOConfig(**{**SMALL, "net": net})
    policy, history = mappo.train(env_fn, cfg, seed=0, total_steps=32)
    assert isinstance(policy.actors[0].market_head, PortfolioWeightsHead)
    assert np.isfinite(history[-1]["losses/value_loss"])
    env = env_fn()
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, *_ = env.step(policy.act(obs))
    w = policy.act(obs)["a"]
    assert np.isclose(w.sum(), 1.0, atol=1e-5) and w[3] == 0.0  # slot 3 died at step 2


def naive_gae(rewards, values, dones, next_value, gamma, lam):
    """Obvious reference: A_t = sum_k (gamma * lam)^k delta_{t+k}, stopping at episode ends."""
    t_len = len(rewards)
    vals = list(values) + [next_value]
    adv = np.zeros(t_len)
    for t in range(t_len):
        total, scale = 0.0, 1.0
        for k in range(t, t_len):
            nonterm = 1.0 - dones[k]
            delta = rewards[k] + gamma * vals[k + 1] * nonterm - vals[k]
            total += scale * delta
            if dones[k]:
                break
            scale *= gamma * lam
        adv[t] = total
    return adv


def test_compute_gae_matches_the_naive_sum():
    rng = np.random.default_rng(0)
    r, v = rng.normal(size=(12, 3)), rng.normal(size=(12, 3))
    d = (rng.random((12, 3)) < 0.2).astype(np.float64)
    nv = rng.normal(size=3)
    fast = mappo.compute_gae(r, v, d, nv, 0.97, 0.9)
    for j in range(3):
        np.testing.assert_allclose(
            fast[:, j], naive_gae(r[:, j], v[:, j], d[:, j], nv[j], 0.97, 0.9)
        )


def test_value_norm_tracks_mean_and_variance_of_all_batches():
    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, size=n) for n in (10, 50, 7)]
    vn = mappo.ValueNorm()
    for b in batches:
        vn.update(torch.as_tensor(b, dtype=torch.float64))
    allv = np.concatenate(batches)
    assert np.isclose(float(vn.mean), allv.mean(), atol=1e-4)
    assert np.isclose(float(vn.var), allv.var(), rtol=1e-3)
    x = torch.tensor([1.0, 5.0], dtype=torch.float64)
    assert torch.allclose(vn.denormalize(vn.normalize(x)).double(), x, atol=1e-5)


def test_mean_penalty_and_terminal_time_limit_options_run():
    cfg = mappo.MAPPOConfig(**SMALL, squash_mean_reg=0.1, bootstrap_truncation=False)
    _, history = mappo.train(lambda: TinyCoopEnv(action="box"), cfg, seed=0, total_steps=64)
    assert all(np.isfinite(history[-1][k]) for k in ("losses/policy_loss", "losses/value_loss"))
