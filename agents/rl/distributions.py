"""Action distributions with slot masks, shared by the policy heads and the algorithms.

Every distribution works on a *raw* action (what the policy samples and what the buffers
store, so that ``log_prob`` is exact) and maps it to the *env* action with :meth:`to_env`:

========================  =========================  ===================================
class                     raw action                 env action
========================  =========================  ===================================
SquashedDiagGaussian      pre-tanh ``u`` (B, *S)     ``low + (tanh(u) + 1) / 2 * (high - low)``
MultiCategorical          int64 indices (B, D)       the same indices
MaskedDirichlet           simplex point (B, K)       the same weights (dead slots 0)
SoftmaxGaussian           logits ``u`` (B, K)        masked softmax of ``u`` (dead slots 0)
========================  =========================  ===================================

Dead entries (``mask`` False) are excluded from ``log_prob`` and ``entropy``; they are sampled
as a fixed value (0 for Gaussians, ``dead_action`` for categoricals, weight 0 for simplex
distributions) so that a dead slot neither explores nor carries gradient.

All methods are O(B * event size). Sampling uses torch's global generator; the algorithms seed
it inside ``torch.random.fork_rng`` so that a training run leaves the caller's state untouched.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "ActionDist",
    "MaskedDirichlet",
    "MultiCategorical",
    "SoftmaxGaussian",
    "SquashedDiagGaussian",
    "masked_softmax",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _flat(x: Tensor) -> Tensor:
    """Flatten all but the batch dimension."""
    return x.reshape(x.shape[0], -1)


def masked_softmax(logits: Tensor, mask: Tensor | None, dim: int = -1) -> Tensor:
    """Softmax over ``dim`` where masked-out entries get exactly zero probability.

    A row whose entries are all masked returns all zeros (never NaN).

    Args:
        logits: Any shape.
        mask: Bool tensor broadcastable to ``logits``; True = keep. None keeps all.
        dim: Dimension to normalise over.

    Returns:
        Tensor of the shape of ``logits``. O(numel).
    """
    if mask is None:
        return torch.softmax(logits, dim=dim)
    filled = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    return torch.softmax(filled, dim=dim) * mask.to(logits.dtype)


class ActionDist:
    """Interface of the action distributions (duck-typed, documented here)."""

    def sample(self) -> Tensor:
        """Draw a raw action (no gradient)."""
        raise NotImplementedError

    def mode(self) -> Tensor:
        """The deterministic raw action (mean or argmax)."""
        raise NotImplementedError

    def log_prob(self, raw: Tensor) -> Tensor:
        """Log-density of raw actions, summed over the live entries: shape (B,)."""
        raise NotImplementedError

    def entropy(self) -> Tensor:
        """Entropy (or its pre-squash approximation), summed over live entries: shape (B,)."""
        raise NotImplementedError

    def to_env(self, raw: Tensor) -> Tensor:
        """Map a raw action to the action the env receives."""
        raise NotImplementedError


class SquashedDiagGaussian(ActionDist):
    """Diagonal Gaussian on ``u``, squashed by tanh into ``[low, high]`` for the env.

    ``log_prob`` includes the tanh Jacobian (it does not depend on the parameters, so PPO ratios
    are unaffected); ``entropy`` is the Gaussian entropy of ``u`` (the squashed entropy has no
    closed form), the usual PPO approximation.

    Args:
        mean: (B, *S) means of ``u``.
        log_std: log standard deviations broadcastable to ``mean``.
        low, high: bounds broadcastable to ``mean`` (finite).
        mask: optional bool (B, *S); False entries are dead (sampled as ``u = 0``).
    """

    def __init__(
        self,
        mean: Tensor,
        log_std: Tensor,
        low: Tensor | float = -1.0,
        high: Tensor | float = 1.0,
        mask: Tensor | None = None,
    ):
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()
        self.low = low
        self.high = high
        self.mask = mask

    def _live(self, x: Tensor) -> Tensor:
        return x if self.mask is None else torch.where(self.mask, x, torch.zeros_like(x))

    def sample(self) -> Tensor:
        with torch.no_grad():
            return self._live(self.mean + self.std * torch.randn_like(self.mean))

    def rsample(self) -> Tensor:
        """Reparameterised sample (gradient flows into mean and log_std)."""
        return self._live(self.mean + self.std * torch.randn_like(self.mean))

    def mode(self) -> Tensor:
        return self._live(self.mean)

    def log_prob(self, raw: Tensor) -> Tensor:
        z = (raw - self.mean) / self.std
        lp = -0.5 * z * z - self.log_std - 0.5 * _LOG_2PI
        # tanh Jacobian: log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), numerically stable
        lp = lp - 2.0 * (math.log(2.0) - raw - torch.nn.functional.softplus(-2.0 * raw))
        return _flat(self._live(lp)).sum(-1)

    def entropy(self) -> Tensor:
        ent = 0.5 + 0.5 * _LOG_2PI + self.log_std
        return _flat(self._live(ent)).sum(-1)

    def to_env(self, raw: Tensor) -> Tensor:
        return self._live(self.low + (torch.tanh(raw) + 1.0) * 0.5 * (self.high - self.low))


class MultiCategorical(ActionDist):
    """Independent categoricals over D sub-actions (Discrete is D = 1).

    Args:
        logits: (B, D, K) unnormalised log-probabilities.
        valid: optional bool (D, K): which choices exist per sub-action (MultiDiscrete with
            unequal ``nvec`` pads to K = max(nvec)).
        mask: optional bool (B, D); dead sub-actions always take ``dead_action``.
        dead_action: index a dead sub-action takes (e.g. 1 = "hold" for the market).
    """

    def __init__(
        self,
        logits: Tensor,
        valid: Tensor | None = None,
        mask: Tensor | None = None,
        dead_action: int = 0,
    ):
        if valid is not None:
            logits = logits.masked_fill(~valid, torch.finfo(logits.dtype).min)
        self.logits = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
        self.probs = self.logits.exp()
        self.mask = mask
        self.dead_action = dead_action

    def _live(self, idx: Tensor) -> Tensor:
        if self.mask is None:
            return idx
        return torch.where(self.mask, idx, torch.full_like(idx, self.dead_action))

    def sample(self) -> Tensor:
        with torch.no_grad():
            b, d, k = self.probs.shape
            idx = torch.multinomial(self.probs.reshape(b * d, k), 1).reshape(b, d)
            return self._live(idx)

    def mode(self) -> Tensor:
        return self._live(self.logits.argmax(-1))

    def log_prob(self, raw: Tensor) -> Tensor:
        lp = self.logits.gather(-1, raw.long().unsqueeze(-1)).squeeze(-1)
        if self.mask is not None:
            lp = torch.where(self.mask, lp, torch.zeros_like(lp))
        return lp.sum(-1)

    def entropy(self) -> Tensor:
        ent = -(self.probs * self.logits).sum(-1)
        if self.mask is not None:
            ent = torch.where(self.mask, ent, torch.zeros_like(ent))
        return ent.sum(-1)

    def to_env(self, raw: Tensor) -> Tensor:
        return raw


class MaskedDirichlet(ActionDist):
    """Dirichlet over the live components of a K-simplex; dead components are fixed at 0.

    The density is the Dirichlet of the live sub-vector (so changing the number of live
    assets changes the support dimension, as it should). Samples use the Gamma construction
    ``g_k ~ Gamma(alpha_k)``, ``w = g / sum(g)`` and are reparameterised.

    Args:
        concentration: (B, K) positive concentrations.
        mask: optional bool (B, K); at least one entry per row should be live (the cash slot).
    """

    _EPS = 1e-8

    def __init__(self, concentration: Tensor, mask: Tensor | None = None):
        self.mask = torch.ones_like(concentration, dtype=torch.bool) if mask is None else mask
        self.alpha = torch.where(self.mask, concentration, torch.ones_like(concentration))
        self.live_f = self.mask.to(concentration.dtype)

    def _normalise(self, g: Tensor) -> Tensor:
        g = g * self.live_f
        return g / g.sum(-1, keepdim=True).clamp_min(self._EPS)

    def sample(self) -> Tensor:
        with torch.no_grad():
            return self.rsample()

    def rsample(self) -> Tensor:
        """Reparameterised sample through ``torch.distributions.Gamma``."""
        g = torch.distributions.Gamma(self.alpha, torch.ones_like(self.alpha)).rsample()
        return self._normalise(g.clamp_min(self._EPS))

    def mode(self) -> Tensor:
        """The mean ``alpha / alpha_0`` (the mode is undefined when some ``alpha < 1``)."""
        return self._normalise(self.alpha)

    def log_prob(self, raw: Tensor) -> Tensor:
        a = self.alpha * self.live_f
        a0 = a.sum(-1)
        lgamma_live = (torch.lgamma(self.alpha) * self.live_f).sum(-1)
        log_w = torch.log(raw.clamp_min(self._EPS))
        return torch.lgamma(a0) - lgamma_live + ((self.alpha - 1.0) * log_w * self.live_f).sum(-1)

    def entropy(self) -> Tensor:
        a = self.alpha * self.live_f
        a0 = a.sum(-1)
        k = self.live_f.sum(-1)
        log_beta = (torch.lgamma(self.alpha) * self.live_f).sum(-1) - torch.lgamma(a0)
        dig = ((self.alpha - 1.0) * torch.digamma(self.alpha) * self.live_f).sum(-1)
        return log_beta + (a0 - k) * torch.digamma(a0) - dig

    def to_env(self, raw: Tensor) -> Tensor:
        return raw


class SoftmaxGaussian(ActionDist):
    """Gaussian over K logits; the env gets their masked softmax (weights summing to 1).

    Args:
        mean: (B, K) logit means.
        log_std: log standard deviations broadcastable to ``mean``.
        mask: optional bool (B, K); dead logits are fixed at 0 and get weight 0.
    """

    def __init__(self, mean: Tensor, log_std: Tensor, mask: Tensor | None = None):
        self.mask = mask
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.std = self.log_std.exp()

    def _live(self, x: Tensor) -> Tensor:
        return x if self.mask is None else torch.where(self.mask, x, torch.zeros_like(x))

    def sample(self) -> Tensor:
        with torch.no_grad():
            return self._live(self.mean + self.std * torch.randn_like(self.mean))

    def rsample(self) -> Tensor:
        """Reparameterised sample."""
        return self._live(self.mean + self.std * torch.randn_like(self.mean))

    def mode(self) -> Tensor:
        return self._live(self.mean)

    def log_prob(self, raw: Tensor) -> Tensor:
        z = (raw - self.mean) / self.std
        return self._live(-0.5 * z * z - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def entropy(self) -> Tensor:
        return self._live(0.5 + 0.5 * _LOG_2PI + self.log_std).sum(-1)

    def to_env(self, raw: Tensor) -> Tensor:
        return masked_softmax(raw, self.mask, dim=-1)
