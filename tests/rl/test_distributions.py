"""Masked action distributions against torch.distributions references."""

from __future__ import annotations

import math

import torch

from agents.rl.distributions import (
    MaskedDirichlet,
    MultiCategorical,
    SoftmaxGaussian,
    SquashedDiagGaussian,
    masked_softmax,
)

torch.set_num_threads(1)


def test_dirichlet_all_live_matches_torch():
    torch.manual_seed(0)
    conc = torch.rand(5, 4) * 3 + 0.2
    d = MaskedDirichlet(conc)
    ref = torch.distributions.Dirichlet(conc)
    x = ref.sample()
    assert torch.allclose(d.log_prob(x), ref.log_prob(x), atol=1e-4)
    assert torch.allclose(d.entropy(), ref.entropy(), atol=1e-5)
    assert torch.allclose(d.mode(), ref.mean, atol=1e-6)


def test_dirichlet_with_dead_slots_is_the_dirichlet_of_the_live_part():
    torch.manual_seed(1)
    conc = torch.rand(3, 5) * 2 + 0.5
    mask = torch.tensor([[1, 0, 1, 1, 1], [0, 0, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    d = MaskedDirichlet(conc, mask)
    x = d.sample()
    assert (x[~mask] == 0).all()
    assert torch.allclose(x.sum(-1), torch.ones(3), atol=1e-6)
    for i in range(3):
        live = mask[i]
        ref = torch.distributions.Dirichlet(conc[i, live])
        assert torch.allclose(d.log_prob(x)[i], ref.log_prob(x[i, live]), atol=1e-4)
        assert torch.allclose(d.entropy()[i], ref.entropy(), atol=1e-5)


def test_squashed_gaussian_log_prob_includes_the_tanh_jacobian():
    torch.manual_seed(2)
    mean, log_std = torch.randn(4, 3), torch.randn(3) * 0.3
    d = SquashedDiagGaussian(mean, log_std, torch.tensor(0.0), torch.tensor(2.0))
    u = d.sample()
    ref = torch.distributions.Normal(mean, log_std.exp())
    expected = (ref.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2)).sum(-1)
    assert torch.allclose(d.log_prob(u), expected, atol=1e-4)
    assert torch.allclose(d.entropy(), ref.entropy().sum(-1), atol=1e-5)
    a = d.to_env(u)
    assert ((a >= 0) & (a <= 2)).all()
    assert torch.allclose(d.to_env(torch.zeros(4, 3)), torch.ones(4, 3))


def test_multicategorical_matches_torch_and_respects_masks():
    torch.manual_seed(3)
    logits = torch.randn(6, 2, 3)
    valid = torch.tensor([[True, True, True], [True, True, False]])  # MultiDiscrete([3, 2])
    d = MultiCategorical(logits, valid)
    x = d.sample()
    assert (x[:, 1] < 2).all()
    ref0 = torch.distributions.Categorical(logits=logits[:, 0])
    ref1 = torch.distributions.Categorical(logits=logits[:, 1, :2])
    assert torch.allclose(d.log_prob(x), ref0.log_prob(x[:, 0]) + ref1.log_prob(x[:, 1]), atol=1e-5)
    assert torch.allclose(d.entropy(), ref0.entropy() + ref1.entropy(), atol=1e-5)
    mask = torch.tensor([[True, False]] * 6)
    dm = MultiCategorical(logits, valid, mask, dead_action=1)
    xm = dm.sample()
    assert (xm[:, 1] == 1).all()
    assert torch.allclose(dm.log_prob(xm), ref0.log_prob(xm[:, 0]), atol=1e-5)


def test_softmax_gaussian_and_masked_softmax():
    mean = torch.zeros(2, 4)
    mask = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    d = SoftmaxGaussian(mean, torch.zeros(1), mask)
    w = d.to_env(d.mode())
    assert torch.allclose(w[0], torch.tensor([1 / 3, 1 / 3, 0, 1 / 3]))
    assert (w[1] == 0).all()  # no live entry: zeros, not NaN
    assert torch.allclose(d.entropy()[0], torch.tensor(3 * (0.5 + 0.5 * math.log(2 * math.pi))))
    assert torch.isfinite(masked_softmax(torch.randn(2, 4), mask)).all()
