"""RLlib bridge: config checks, policy mapping and a short multi-agent PPO run on a local Ray."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from agents.rl.rllib import (
    SHARED_POLICY,
    RLlibPPOConfig,
    load_policy_weights,
    policy_map,
    restore_algorithm,
    train_rllib,
)
from marketsim.errors import ConfigError, StateError
from marketsim.scenario import load_scenario


def tiny_scenario() -> dict:
    """One asset, a 10-minute session, 30 noise traders + 1 market maker, two RL groups."""
    rl = {"cash": 1e5, "action_mode": "weights", "reward": "log_return", "window": 4}
    return {
        "simulation": {
            "name": "rllib-test",
            "seed": 3,
            "open": "09:30",
            "close": "09:40",
            "max_assets": 1,
            "record_every": 600,
        },
        "assets": [{"symbol": "AAA", "initial_price": 100.0}],
        "fundamental": {"kind": "mean_reverting", "params": {"kappa": 1e-3, "sigma": 0.01}},
        "agents": [
            {
                "type": "noise",
                "count": 30,
                "cash": 1e6,
                "shares": {"AAA": 200},
                "params": {"wake_rate_per_hour": 120.0},
            },
            {
                "type": "market_maker",
                "count": 1,
                "cash": 1e7,
                "shares": {"AAA": 2000},
                "params": {"wake_interval_s": 2.0},
            },
        ],
        "rl_agents": [{"name": "pm_a", **rl}, {"name": "pm_b", **rl}],
    }


TINY_PPO = dict(
    max_steps=16, train_batch_size=64, minibatch_size=32, num_epochs=1, hidden_sizes=(16,)
)


# ---------------------------------------------------------------------------- no Ray needed
def test_policy_map_per_group_or_shared():
    sc = tiny_scenario()
    sc["rl_agents"][1]["count"] = 2
    s = load_scenario(sc)
    assert policy_map(s) == {"pm_a": "pm_a", "pm_b_0": "pm_b", "pm_b_1": "pm_b"}
    assert set(policy_map(s, shared=True).values()) == {SHARED_POLICY}
    sc["rl_agents"] = []
    with pytest.raises(ConfigError, match=r"declares no RL agents"):
        policy_map(load_scenario(sc))


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"minibatch_size": 128, "train_batch_size": 64}, r"minibatch_size = 128: must be <="),
        ({"num_epochs": 0}, r"num_epochs = 0: must be an integer >= 1"),
        ({"num_env_runners": -1}, r"num_env_runners = -1: must be an integer >= 0"),
        ({"max_steps": 0}, r"max_steps = 0: must be >= 1 or None"),
        ({"hidden_sizes": ()}, r"hidden_sizes = \(\): must be non-empty"),
    ],
)
def test_config_validation_names_the_field(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        RLlibPPOConfig(**kw).validate()


def test_load_policy_weights_errors_and_round_trip(tmp_path):
    with pytest.raises(StateError, match=r"cannot be read"):
        load_policy_weights(tmp_path / "missing.npz")
    with pytest.raises(StateError, match=r"not an RLlib checkpoint"):
        restore_algorithm(tmp_path)
    np.savez(tmp_path / "p.npz", w=np.arange(3.0))
    assert load_policy_weights(tmp_path / "p.npz")["w"].tolist() == [0.0, 1.0, 2.0]


# ---------------------------------------------------------------------------- with Ray
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip(
        "ray", reason="Ray RLlib is an optional extra: pip install marketsim[distributed]"
    )
    pytest.importorskip("ray.rllib", reason="RLlib missing: pip install 'ray[rllib]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _obs_dim(sc: dict, agent: str) -> int:
    from marketsim.env.parallel import parallel_env

    env = parallel_env(sc, flat_obs=True, max_steps=16)
    dim = int(env.observation_space(agent).shape[0])
    env.close()
    return dim


def test_train_rllib_two_groups_smoke(ray_local, tmp_path):
    sc = tiny_scenario()
    seen: list[dict] = []
    out = train_rllib(
        sc, 2, seed=1, config=RLlibPPOConfig(**TINY_PPO), out_dir=tmp_path, log_fn=seen.append
    )
    assert ray_local.is_initialized()  # the module's instance is left running
    assert out["iterations"] == 2 and len(out["history"]) == 2 and seen == out["history"]
    assert out["policies"] == {"pm_a": ["pm_a"], "pm_b": ["pm_b"]}
    steps = [m["env/steps_sampled"] for m in out["history"]]
    assert steps[0] >= 64 and steps[1] >= steps[0] + 64
    last = out["metrics"]
    assert math.isfinite(last["env/episode_return_mean"])  # 16-step episodes finished
    assert last["env/episode_len_mean"] == pytest.approx(16)
    for pid in ("pm_a", "pm_b"):
        for key in ("policy_loss", "vf_loss", "entropy"):
            assert math.isfinite(last[f"policy/{pid}/{key}"]), (pid, key)
    # checkpoint and plain-array weights: one 16-unit layer on the flat observation
    assert (Path(out["checkpoint"]) / "rllib_checkpoint.json").exists()
    obs_dim = _obs_dim(sc, "pm_a")
    for pid in ("pm_a", "pm_b"):
        w = load_policy_weights(out["weights"][pid])
        shapes = {a.shape for a in w.values()}
        assert (16, obs_dim) in shapes  # first hidden layer (torch: out x in)
        assert (2 * 2, 16) in shapes  # Gaussian head: mean and log-std of 2 weights
    a, b = load_policy_weights(out["weights"]["pm_a"]), load_policy_weights(out["weights"]["pm_b"])
    assert any(not np.array_equal(a[k], b[k]) for k in a)  # two policies, not one
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["iteration"] for x in lines] == [1.0, 2.0]
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["agent_policy"] == {"pm_a": "pm_a", "pm_b": "pm_b"}


def test_train_rllib_rejects_bad_input_before_starting(ray_local, tmp_path):
    with pytest.raises(ConfigError, match=r"iterations = 0"):
        train_rllib(tiny_scenario(), 0, out_dir=tmp_path)
    sc = tiny_scenario()
    sc["rl_agents"] = []
    with pytest.raises(ConfigError, match=r"declares no RL agents"):
        train_rllib(sc, 1, out_dir=tmp_path)


@pytest.mark.filterwarnings("ignore:.*Overriding environment:UserWarning")
def test_shared_policy_and_restore(ray_local, tmp_path):
    cfg = RLlibPPOConfig(shared_policy=True, **TINY_PPO)
    out = train_rllib(tiny_scenario(), 1, seed=2, config=cfg, out_dir=tmp_path)
    assert out["policies"] == {SHARED_POLICY: ["pm_a", "pm_b"]}
    algo = restore_algorithm(out["checkpoint"])
    try:
        before = algo.learner_group.get_weights()[SHARED_POLICY]
        saved = load_policy_weights(out["weights"][SHARED_POLICY])
        assert all(np.allclose(np.asarray(before[k]), saved[k]) for k in saved)
        algo.train()
    finally:
        algo.stop()
