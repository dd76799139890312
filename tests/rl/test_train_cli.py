"""Single-agent SB3 training, checkpoints, determinism, evaluation and the train CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agents.rl.baselines import BASELINES, baselines_for
from agents.rl.evaluate import evaluate
from agents.rl.sb3 import SB3Config, SB3Policy, train_sb3
from marketsim.cli import main
from marketsim.env import parallel_env
from tests.env.scenarios import single

torch.set_num_threads(1)
SMALL = {"max_steps": 40}


def cfg(algo: str, **kw) -> SB3Config:
    return SB3Config(
        algo=algo, n_steps=64, batch_size=32, n_epochs=1, learning_starts=32,
        buffer_size=1000, features_dim=16, env_kwargs=dict(SMALL), **kw,
    )  # fmt: skip


@pytest.mark.parametrize("algo", ["ppo", "a2c", "sac", "td3", "ddpg"])
def test_each_algorithm_trains_and_acts_feasibly(algo):
    policy, _ = train_sb3(single("weights"), cfg(algo), seed=0, total_steps=96)
    env = parallel_env(single("weights"), **SMALL)
    obs, _ = env.reset(seed=5)
    for _ in range(5):
        a = policy.act(obs["solo"])
        assert env.action_space("solo").contains(np.asarray(a, np.float32))
        w = env._projectors["solo"](a, obs["solo"]["mask"])
        assert env._projectors["solo"].feasible(w, obs["solo"]["mask"])
        obs, *_ = env.step({"solo": a})


def test_continuous_algorithms_refuse_discrete_actions():
    from marketsim.errors import ConfigError

    with pytest.raises(ConfigError, match="continuous actions"):
        train_sb3(single("discrete"), cfg("sac"), seed=0, total_steps=10)


def test_checkpoint_round_trip_gives_same_actions(tmp_path):
    policy, _ = train_sb3(single("weights"), cfg("ppo"), seed=1, total_steps=64, out_dir=tmp_path)
    assert (tmp_path / "policy.pt").is_file() and (tmp_path / "config.json").is_file()
    torch.load(tmp_path / "policy.pt", weights_only=True)  # plain tensors only
    again = SB3Policy.load(tmp_path)
    env = parallel_env(single("weights"), **SMALL)
    obs, _ = env.reset(seed=3)
    for _ in range(3):
        np.testing.assert_array_equal(policy.act(obs["solo"]), again.act(obs["solo"]))
        obs, *_ = env.step({"solo": policy.act(obs["solo"])})


def test_training_is_deterministic_for_a_seed():
    a, _ = train_sb3(single("weights"), cfg("ppo"), seed=7, total_steps=128)
    b, _ = train_sb3(single("weights"), cfg("ppo"), seed=7, total_steps=128)
    c, _ = train_sb3(single("weights"), cfg("ppo"), seed=8, total_steps=128)
    sa, sb, sc = (p.model.policy.state_dict() for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_lead_signal_does_not_change_the_market_path():
    """The early signal is computed on a cloned feed: the market itself is unaffected."""

    def path(lead):
        env = parallel_env(
            single("weights", exogenous=["fundamental"], signal_lead_steps=lead), **SMALL
        )
        obs, _ = env.reset(seed=2)
        out = []
        for _ in range(20):
            obs, *_ = env.step({"solo": np.array([0.3, 0, 0, 0, 0.7], np.float32)})
            out.append(
                (env.model.feed.values()[0], env.features.mid[0], obs["solo"]["exogenous"][0, 0])
            )
        return np.array(out)

    p0, p10 = path(0), path(10)
    np.testing.assert_array_equal(p0[:, :2], p10[:, :2])
    assert not np.array_equal(p0[:, 2], p10[:, 2])


@pytest.mark.parametrize("mode", ["weights", "orders", "quotes", "discrete"])
def test_baselines_play_every_mode(mode):
    env = parallel_env(single(mode), **SMALL)
    for name in baselines_for(env.action_space("solo")):
        pol = BASELINES[name](env.action_space("solo"), seed=0)
        pol.reset()
        obs, _ = env.reset(seed=1)
        while env.agents:
            a = pol.act(obs["solo"])
            assert env.action_space("solo").contains(np.asarray(a, env.action_space("solo").dtype))
            obs, *_ = env.step({"solo": a})


def test_skewed_maker_quotes_against_its_inventory():
    """Longer than at the start -> both quotes lower (cheaper ask, lower bid); shorter -> higher;
    passive maker: symmetric quotes at the touch."""
    from gymnasium import spaces

    sp = spaces.Box(-1.0, 1.0, (2, 4), np.float32)
    pol = BASELINES["skewed_maker"](sp, half_spread=1.0, skew=20.0)
    pol.reset()
    port = np.zeros(6, np.float32)
    obs = {"mask": np.array([1.0, 0.0], np.float32), "portfolio": port}
    flat = pol.act(obs)
    long = pol.act(dict(obs, portfolio=np.array([0.05, 0, 0, 0, 0, 0], np.float32)))
    short = pol.act(dict(obs, portfolio=np.array([-0.05, 0, 0, 0, 0, 0], np.float32)))
    # offsets in ticks: (x + 1) / 2 * 10
    ticks = lambda a: (a[0, :2] + 1) / 2 * 10  # noqa: E731
    np.testing.assert_allclose(ticks(flat), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(ticks(long), [2.0, 0.0], atol=1e-6)  # bid further, ask at mid
    np.testing.assert_allclose(ticks(short), [0.0, 2.0], atol=1e-6)
    assert np.all(flat[1] == -1.0)  # dead slot: no quotes
    pm = BASELINES["passive_maker"](sp).act(obs)
    np.testing.assert_allclose((pm[0, :2] + 1) / 2 * 10, [0.5, 0.5], atol=1e-6)
    assert pm[0, 2] == pm[0, 3] > -1


def test_evaluation_summary_has_confidence_intervals():
    rows, summary = evaluate(single("weights"), None, episodes=3, env_kwargs=SMALL)
    assert set(summary.controller) == {"random", "cash", "buy_and_hold", "equal_weight"}
    cash = summary[summary.controller == "cash"].iloc[0]
    assert cash.return_mean == 0 and cash.return_ci_low == 0
    assert (summary.return_ci_low <= summary.return_mean).all()


def test_train_and_evaluate_cli(tmp_path, capsys):
    import tomllib  # noqa: F401

    from marketsim.cli import scenario_to_toml

    sc = tmp_path / "s.toml"
    sc.write_text(scenario_to_toml(single("weights")))
    out = tmp_path / "run"
    rc = main(["train", str(sc), "--algo", "ppo", "--steps", "64", "--out", str(out),
               "--max-episode-steps", "30", "--quiet"])  # fmt: skip
    assert rc == 0 and (out / "policy.pt").is_file()
    rc = main(["evaluate", str(out), "--episodes", "2", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["controller"] for r in data} >= {"policy", "random", "equal_weight"}
    assert (out / "evaluation.png").is_file()
