"""Market policy networks: shapes, mask invariance, permutation equivariance, NaN safety."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.rl.networks import (
    ENV_FLAT_ORDER,
    DiscreteAssetHead,
    MarketEncoder,
    MarketFeaturesExtractor,
    MarketObsLayout,
    OrderParamsHead,
    PortfolioWeightsHead,
    ValueHead,
    unflatten_market_obs,
)
from marketsim.errors import ConfigError
from tests.rl.fakes import market_dict_space

torch.set_num_threads(1)

W, A, F, E = 4, 5, 8, 2
LAYOUT = MarketObsLayout(W, A, F, E)
ENCODERS = ["mlp", "conv1d", "gru"]
AGGREGATORS = ["attention", "sector", "none"]
SECTORS = [0, 1, 0, 2, 1]


def make_obs(b: int = 6, seed: int = 0, dead: tuple[int, ...] = (1, 3)) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, A)
    mask[:, list(dead)] = 0.0
    mask[0] = 1.0  # one fully live row
    return {
        "market": torch.randn(b, W, A, F, generator=g),
        "portfolio": torch.randn(b, A + 4, generator=g),
        "mask": mask,
        "exogenous": torch.randn(b, A, E, generator=g),
    }


def make_encoder(encoder: str, aggregator: str, seed: int = 0) -> MarketEncoder:
    torch.manual_seed(seed)
    return MarketEncoder(
        LAYOUT,
        embed_dim=16,
        global_dim=24,
        encoder=encoder,
        aggregator=aggregator,
        n_heads=2,
        n_layers=2,
        sector_ids=SECTORS,
    )


def heads(enc: MarketEncoder):
    torch.manual_seed(1)
    return (
        PortfolioWeightsHead(16, 24, "dirichlet"),
        PortfolioWeightsHead(16, 24, "gaussian_logits"),
        OrderParamsHead(16, 24),
        DiscreteAssetHead(16, 24),
        ValueHead(24),
    )


def all_outputs(enc: MarketEncoder, hs, obs) -> list[torch.Tensor]:
    """Every output whose value must not depend on dead slots."""
    out = enc(obs)
    live = out.live.unsqueeze(-1)
    res = [out.tokens * live, out.global_features]
    w_dir, w_gauss, orders, disc, value = hs
    for h in (w_dir, w_gauss):
        d = h(out)
        res += [d.to_env(d.mode()), d.entropy()]
    d = orders(out)
    res += [d.to_env(d.mode()), d.entropy()]
    d = disc(out)
    res += [d.mode().float(), d.entropy(), disc.q_values(out)]
    res.append(value(out.global_features))
    return res


@pytest.mark.parametrize("encoder,aggregator", list(itertools.product(ENCODERS, AGGREGATORS)))
def test_shapes_and_head_contracts(encoder, aggregator):
    enc = make_encoder(encoder, aggregator)
    obs = make_obs()
    out = enc(obs)
    assert out.tokens.shape == (6, A, 16)
    assert out.global_features.shape == (6, 24)
    w_dir, w_gauss, orders, disc, value = heads(enc)
    live = obs["mask"] > 0.5
    for h in (w_dir, w_gauss):
        d = h(out)
        for raw in (d.sample(), d.mode()):
            w = d.to_env(raw)
            assert w.shape == (6, A + 1)
            assert torch.allclose(w.sum(-1), torch.ones(6), atol=1e-5)
            assert (w >= 0).all()
            assert (w[:, :A][~live] == 0).all()
            assert d.log_prob(raw).shape == (6,)
    d = orders(out)
    a = d.to_env(d.sample())
    assert a.shape == (6, A, 3) and (a.abs() <= 1).all()
    assert (a[~live] == 0).all()
    d = disc(out)
    idx = d.sample()
    assert idx.shape == (6, A)
    assert set(idx.unique().tolist()) <= {0, 1, 2}
    assert (idx[~live] == 1).all()  # dead slots hold
    assert value(out.global_features).shape == (6,)


@pytest.mark.parametrize("encoder,aggregator", list(itertools.product(ENCODERS, AGGREGATORS)))
def test_dead_slots_do_not_change_outputs(encoder, aggregator):
    enc = make_encoder(encoder, aggregator)
    hs = heads(enc)
    obs = make_obs()
    before = all_outputs(enc, hs, obs)
    garbage = {k: v.clone() for k, v in obs.items()}
    dead = torch.tensor([1, 3])
    garbage["market"][1:, :, dead] = 1e3 * torch.randn(5, W, 2, F)
    garbage["market"][2:, 0, 3, 0] = float("nan")
    garbage["exogenous"][1:, dead] = -77.0
    garbage["portfolio"][1:, dead] = 5.0
    after = all_outputs(enc, hs, garbage)
    for x, y in zip(before, after, strict=True):
        assert torch.isfinite(y).all()
        assert torch.allclose(x, y, atol=1e-5), (x - y).abs().max()
    # a live slot's features do change the outputs (the test can fail)
    moved = {k: v.clone() for k, v in obs.items()}
    moved["market"][:, :, 0] += 1.0
    assert not torch.allclose(enc(moved).global_features, enc(obs).global_features)


@pytest.mark.parametrize("encoder,aggregator", list(itertools.product(ENCODERS, AGGREGATORS)))
def test_permutation_equivariance_over_slots(encoder, aggregator):
    enc = make_encoder(encoder, aggregator)
    w_dir, _, orders, disc, _ = heads(enc)
    obs = make_obs(dead=(2,))
    perm = torch.tensor([3, 0, 4, 2, 1])
    p_obs = {
        "market": obs["market"][:, :, perm],
        "portfolio": torch.cat([obs["portfolio"][:, :A][:, perm], obs["portfolio"][:, A:]], -1),
        "mask": obs["mask"][:, perm],
        "exogenous": obs["exogenous"][:, perm],
    }
    sectors = torch.tensor(SECTORS)
    out = enc(obs, sectors)
    p_out = enc(p_obs, sectors[perm])
    assert torch.allclose(out.tokens[:, perm], p_out.tokens, atol=1e-5)
    assert torch.allclose(out.global_features, p_out.global_features, atol=1e-5)
    d, pd = orders(out), orders(p_out)
    assert torch.allclose(d.mode()[:, perm], pd.mode(), atol=1e-5)
    q, pq = disc.q_values(out), disc.q_values(p_out)
    assert torch.allclose(q[:, perm], pq, atol=1e-5)
    w, pw = w_dir(out).mode(), w_dir(p_out).mode()
    assert torch.allclose(w[:, :A][:, perm], pw[:, :A], atol=1e-5)
    assert torch.allclose(w[:, A], pw[:, A], atol=1e-5)


@pytest.mark.parametrize("encoder,aggregator", list(itertools.product(ENCODERS, AGGREGATORS)))
def test_all_dead_rows_are_finite_and_differentiable(encoder, aggregator):
    enc = make_encoder(encoder, aggregator)
    w_dir, w_gauss, orders, disc, value = heads(enc)
    obs = make_obs()
    obs["mask"][:] = 0.0
    obs["market"][:, 0, 0, 0] = float("nan")
    out = enc(obs)
    assert torch.isfinite(out.tokens).all() and torch.isfinite(out.global_features).all()
    loss = value(out.global_features).sum()
    for h in (w_dir, w_gauss, orders, disc):
        d = h(out)
        raw = d.sample()
        w = d.to_env(raw)
        assert torch.isfinite(w).all()
        lp, ent = d.log_prob(raw), d.entropy()
        assert torch.isfinite(lp).all() and torch.isfinite(ent).all()
        loss = loss + lp.sum() + ent.sum()
    w = w_dir(out).mode()
    assert torch.allclose(w[:, A], torch.ones(6))  # all in cash
    loss.backward()
    for p in enc.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("encoder,aggregator", list(itertools.product(ENCODERS, AGGREGATORS)))
def test_gradients_reach_every_encoder_parameter(encoder, aggregator):
    enc = make_encoder(encoder, aggregator)
    w_dir, _, orders, disc, value = heads(enc)
    out = enc(make_obs())
    d = w_dir(out)
    loss = d.log_prob(d.sample()).sum() + value(out.global_features).sum()
    loss = loss + orders(out).mode().sum() + disc.q_values(out).sum()
    loss.backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_flat_box_matches_dict_via_unflatten():
    torch.manual_seed(0)
    obs = make_obs()
    flat_env = torch.cat([obs[k].reshape(6, -1) for k in ENV_FLAT_ORDER], -1)
    parts = unflatten_market_obs(flat_env, W, A, F, E)
    for k in ENV_FLAT_ORDER:
        assert torch.equal(parts[k], obs[k])
    space = market_dict_space(W, A, F, E)
    box = gym.spaces.Box(-np.inf, np.inf, (LAYOUT.flat_dim,), np.float32)
    ex_dict = MarketFeaturesExtractor(space, features_dim=32, encoder="conv1d")
    ex_box = MarketFeaturesExtractor(box, features_dim=32, layout=LAYOUT, encoder="conv1d")
    ex_box.load_state_dict(ex_dict.state_dict())
    assert torch.allclose(ex_dict(obs), ex_box(flat_env), atol=1e-6)
    # gymnasium.spaces.flatten sorts Dict keys; the layout read from the space follows it
    np_obs = {k: v[0].numpy() for k, v in obs.items()}
    flat_gym = torch.as_tensor(gym.spaces.flatten(space, np_obs))[None]
    enc = ex_dict.encoder
    gym_layout = MarketObsLayout.from_space(space)
    assert gym_layout.key_order == tuple(space.spaces)
    via = MarketEncoder(gym_layout, global_dim=32, encoder="conv1d")
    via.load_state_dict(enc.state_dict())
    assert torch.allclose(
        via(flat_gym).global_features,
        enc({k: v[:1] for k, v in obs.items()}).global_features,
        atol=1e-6,
    )


def test_errors_name_the_bad_value():
    with pytest.raises(
        ConfigError, match=r"encoder='lstm' is unknown; known: \['conv1d', 'gru', 'mlp'\]"
    ):
        MarketEncoder(LAYOUT, encoder="lstm")
    with pytest.raises(ConfigError, match="aggregator='gnn' is unknown"):
        MarketEncoder(LAYOUT, aggregator="gnn")
    with pytest.raises(ConfigError, match="flat observation has 7 entries"):
        LAYOUT.unflatten(torch.zeros(2, 7))
    with pytest.raises(ConfigError, match="layout=MarketObsLayout"):
        MarketFeaturesExtractor(gym.spaces.Box(-1, 1, (10,)))
    with pytest.raises(ConfigError, match="divisible by n_heads"):
        MarketEncoder(LAYOUT, embed_dim=10, n_heads=4)


def test_sb3_ppo_trains_with_the_extractor():
    from stable_baselines3 import PPO

    space = market_dict_space(3, 4, 8, 1)

    class OneAgentMarket(gym.Env):
        observation_space = space
        action_space = gym.spaces.Box(-1.0, 1.0, (5,), np.float32)

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def _obs(self):
            o = space.sample()
            o["mask"] = np.array([1, 1, 0, 1], np.float32)
            return o

        def step(self, action):
            self.t += 1
            return self._obs(), float(action[0]), False, self.t >= 8, {}

    model = PPO(
        "MultiInputPolicy",
        OneAgentMarket(),
        n_steps=32,
        batch_size=16,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=dict(
            features_extractor_class=MarketFeaturesExtractor,
            features_extractor_kwargs=dict(features_dim=32, embed_dim=16, n_heads=2, encoder="gru"),
        ),
    )
    model.learn(64)
    action, _ = model.predict(space.sample(), deterministic=True)
    assert action.shape == (5,)
