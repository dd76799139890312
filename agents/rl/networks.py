"""Policy networks for market observations: per-asset encoders, cross-asset aggregators, heads.

The market observation (``notes/env_spec.md``) is a Dict of float32 Boxes with A asset slots,
a window of W decisions, F market features and E exogenous features per asset::

    market (W, A, F)   portfolio (A + 4,)   mask (A,)   exogenous (A, E)

Data flow of :class:`MarketEncoder` (B = batch)::

    market[b, :, a, :] --(per-asset encoder, shared over assets: mlp | conv1d | gru)--> e[b, a]
    token[b, a] = Linear([e[b, a], exogenous[b, a], portfolio[b, a]])          (B, A, D)
    tokens --(aggregator: attention | sector | none, mask-respecting)--> tokens (B, A, D)
    global[b] = MLP([masked mean(tokens), masked max(tokens), portfolio[b, A:],
                     masked mean(exogenous), live fraction])                 (B, G)

Per-asset quantities (the weight held in asset a, its exogenous features) enter the asset's
token rather than a slot-ordered global vector, so per-asset outputs are permutation
equivariant over live slots and the global embedding is permutation invariant. Dead slots are
zeroed with ``torch.where`` before anything else (so even NaN in a dead slot cannot leak),
never attend nor are attended, and are excluded from pooling; an all-dead row gives finite
outputs.

Heads (:class:`PortfolioWeightsHead`, :class:`OrderParamsHead`, :class:`DiscreteAssetHead`,
:class:`ValueHead`) turn an encoding into an action distribution (see
:mod:`agents.rl.distributions`) or a value. :class:`MarketFeaturesExtractor` wraps the encoder
for Stable-Baselines3 (``policy_kwargs=dict(features_extractor_class=MarketFeaturesExtractor)``).

Cost of one forward: O(B * A * W * F * D) for the per-asset encoder plus O(B * A^2 * D) for
attention (O(B * A * D) for the sector and none aggregators).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

from agents.rl.distributions import (
    MaskedDirichlet,
    MultiCategorical,
    SoftmaxGaussian,
    SquashedDiagGaussian,
)
from marketsim.errors import ConfigError

__all__ = [
    "AGGREGATORS",
    "ASSET_ENCODERS",
    "ENV_FLAT_ORDER",
    "Conv1dAssetEncoder",
    "DiscreteAssetHead",
    "GRUAssetEncoder",
    "IdentityAggregator",
    "MLPAssetEncoder",
    "MarketEncoder",
    "MarketEncoding",
    "MarketFeaturesExtractor",
    "MarketObsLayout",
    "MaskedSelfAttention",
    "OrderParamsHead",
    "PortfolioWeightsHead",
    "SectorAggregator",
    "ValueHead",
    "is_market_obs_space",
    "mlp",
    "unflatten_market_obs",
]

#: Keys of the market Dict observation, in the order the env's ``flat_obs=True`` concatenates.
ENV_FLAT_ORDER: tuple[str, ...] = ("market", "portfolio", "mask", "exogenous")
#: Number of scalar portfolio entries after the A per-asset weights.
N_PORTFOLIO_SCALARS = 4


def mlp(sizes: list[int] | tuple[int, ...], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _choose(registry: dict[str, Any], name: str, arg: str) -> Any:
    if name not in registry:
        raise ConfigError(f"{arg}={name!r} is unknown; known: {sorted(registry)}")
    return registry[name]


# --------------------------------------------------------------------------- observation layout


def is_market_obs_space(space: gym.Space) -> bool:
    """True if ``space`` is a Dict with exactly the market keys (any order)."""
    return isinstance(space, gym.spaces.Dict) and set(space.spaces) == set(ENV_FLAT_ORDER)


@dataclass(frozen=True)
class MarketObsLayout:
    """Sizes and flat key order of a market observation.

    Attributes:
        window: W, decisions per window.
        n_assets: A, asset slots.
        n_features: F, market features per asset and decision.
        n_exogenous: E, exogenous features per asset (may be 0).
        key_order: Order of the Dict entries in the flat vector. ``ENV_FLAT_ORDER`` for the
            env's ``flat_obs=True``; ``tuple(space.keys())`` for ``gymnasium.spaces.flatten``
            (gymnasium sorts Dict keys alphabetically).
    """

    window: int
    n_assets: int
    n_features: int
    n_exogenous: int = 0
    key_order: tuple[str, ...] = ENV_FLAT_ORDER

    def __post_init__(self) -> None:
        for name in ("window", "n_assets", "n_features"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.n_exogenous < 0:
            raise ConfigError(f"n_exogenous={self.n_exogenous} must be >= 0")
        if sorted(self.key_order) != sorted(ENV_FLAT_ORDER):
            raise ConfigError(
                f"key_order={self.key_order} must be a permutation of {ENV_FLAT_ORDER}"
            )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each Dict entry."""
        a = self.n_assets
        return {
            "market": (self.window, a, self.n_features),
            "portfolio": (a + N_PORTFOLIO_SCALARS,),
            "mask": (a,),
            "exogenous": (a, self.n_exogenous),
        }

    @property
    def flat_dim(self) -> int:
        """Length of the flat observation."""
        return int(sum(np.prod(s) for s in self.shapes.values()))

    @classmethod
    def from_space(cls, space: gym.spaces.Dict) -> MarketObsLayout:
        """Read the sizes from a market Dict space; ``key_order`` follows the space's keys."""
        if not is_market_obs_space(space):
            raise ConfigError(
                f"observation space {space} is not a market Dict with keys {ENV_FLAT_ORDER}"
            )
        w, a, f = space["market"].shape
        e = space["exogenous"].shape[1] if len(space["exogenous"].shape) == 2 else 0
        layout = cls(int(w), int(a), int(f), int(e), tuple(space.spaces))
        for key, shape in layout.shapes.items():
            if tuple(space[key].shape) != shape:
                raise ConfigError(
                    f"observation space[{key!r}].shape={space[key].shape}, expected {shape}"
                )
        return layout

    def unflatten(self, x: Tensor) -> dict[str, Tensor]:
        """Split a flat (B, flat_dim) tensor into the Dict entries (views, no copy). O(1)."""
        if x.shape[-1] != self.flat_dim:
            raise ConfigError(
                f"flat observation has {x.shape[-1]} entries, layout {self} expects {self.flat_dim}"
            )
        out: dict[str, Tensor] = {}
        start = 0
        shapes = self.shapes
        for key in self.key_order:
            n = int(np.prod(shapes[key]))
            out[key] = x[..., start : start + n].reshape(*x.shape[:-1], *shapes[key])
            start += n
        return out


def unflatten_market_obs(
    x: Tensor,
    window: int,
    n_assets: int,
    n_features: int,
    n_exogenous: int = 0,
    key_order: tuple[str, ...] = ENV_FLAT_ORDER,
) -> dict[str, Tensor]:
    """Split a flat market observation (the env's ``flat_obs=True``) into its Dict entries.

    Example:
        >>> obs = unflatten_market_obs(torch.zeros(2, 4 * 3 * 8 + 7 + 3), 4, 3, 8)
        >>> obs["market"].shape
        torch.Size([2, 4, 3, 8])
    """
    return MarketObsLayout(window, n_assets, n_features, n_exogenous, key_order).unflatten(x)


# --------------------------------------------------------------------------- per-asset encoders


class MLPAssetEncoder(nn.Module):
    """Flattened window -> MLP. Input (N, W, C), output (N, dim). O(N * W * C * dim)."""

    def __init__(self, window: int, in_features: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(mlp([window * in_features, dim, dim]), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.flatten(1))


class Conv1dAssetEncoder(nn.Module):
    """Two temporal convolutions (kernel 3), then [mean over time, last step] -> Linear."""

    def __init__(self, window: int, in_features: int, dim: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(in_features, dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(dim, dim, 3, padding=1),
            nn.ReLU(),
        )
        self.out = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv(x.transpose(1, 2))  # (N, dim, W)
        return self.out(torch.cat([h.mean(-1), h[..., -1]], dim=-1))


class GRUAssetEncoder(nn.Module):
    """A GRU over the window (oldest first); output is the last hidden state."""

    def __init__(self, window: int, in_features: int, dim: int):
        super().__init__()
        self.gru = nn.GRU(in_features, dim, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.gru(x)
        return h[-1]


#: Per-asset encoder registry (name -> class(window, in_features, dim)).
ASSET_ENCODERS: dict[str, type[nn.Module]] = {
    "mlp": MLPAssetEncoder,
    "conv1d": Conv1dAssetEncoder,
    "gru": GRUAssetEncoder,
}


# --------------------------------------------------------------------------- aggregators


class MaskedSelfAttention(nn.Module):
    """Pre-LayerNorm transformer blocks over asset tokens; dead slots are invisible.

    Attention weights are a softmax over live keys only (dead keys get exactly zero weight);
    a query row with no live key gets zero weights instead of NaN. No positional encoding,
    so the block is permutation equivariant. O(B * A^2 * dim) per layer.
    """

    def __init__(self, dim: int, n_heads: int = 4, n_layers: int = 1):
        super().__init__()
        if dim % n_heads:
            raise ConfigError(f"embed_dim={dim} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.layers = nn.ModuleList()
        for _ in range(n_layers):
            self.layers.append(
                nn.ModuleDict(
                    {
                        "ln1": nn.LayerNorm(dim),
                        "qkv": nn.Linear(dim, 3 * dim),
                        "proj": nn.Linear(dim, dim),
                        "ln2": nn.LayerNorm(dim),
                        "ff": mlp([dim, 2 * dim, dim]),
                    }
                )
            )

    def forward(self, h: Tensor, live: Tensor, sector_ids: Tensor | None = None) -> Tensor:
        b, a, d = h.shape
        hd = d // self.n_heads
        key_live = live[:, None, None, :]  # (B, 1, 1, A) over keys
        live_f = live.unsqueeze(-1).to(h.dtype)
        for layer in self.layers:
            q, k, v = layer["qkv"](layer["ln1"](h)).split(d, dim=-1)
            q, k, v = (t.reshape(b, a, self.n_heads, hd).transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-1, -2)) / hd**0.5  # (B, H, A, A)
            scores = scores.masked_fill(~key_live, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1) * key_live.to(scores.dtype)
            ctx = (attn @ v).transpose(1, 2).reshape(b, a, d)
            h = (h + layer["proj"](ctx)) * live_f
            h = (h + layer["ff"](layer["ln2"](h))) * live_f
        return h


class SectorAggregator(nn.Module):
    """Message passing on the sector graph: each asset mixes in its sector mean and the market mean.

    ``h_a <- h_a + MLP([h_a, mean_{b live, sector(b) = sector(a)} h_b, mean_{b live} h_b])``,
    ``n_layers`` times. With one sector it reduces to DeepSets. O(B * A * S * dim) per layer.

    Args:
        dim: token size.
        sector_ids: (A,) int slot -> sector index in [0, n_sectors); None = all in sector 0.
            Can be overridden per call (assets move between slots at run time).
        n_sectors: number of sectors (default: max(sector_ids) + 1).
        n_layers: rounds of message passing.
    """

    def __init__(
        self,
        dim: int,
        sector_ids: Tensor | np.ndarray | list[int] | None = None,
        n_sectors: int | None = None,
        n_layers: int = 1,
    ):
        super().__init__()
        ids = torch.as_tensor(sector_ids if sector_ids is not None else [], dtype=torch.long)
        if ids.numel() and int(ids.min()) < 0:
            raise ConfigError(f"sector_ids must be >= 0, got min {int(ids.min())}")
        self.n_sectors = int(
            n_sectors if n_sectors is not None else (int(ids.max()) + 1 if ids.numel() else 1)
        )
        if ids.numel() and int(ids.max()) >= self.n_sectors:
            raise ConfigError(
                f"sector_ids max {int(ids.max())} must be < n_sectors={self.n_sectors}"
            )
        self.register_buffer("sector_ids", ids, persistent=False)
        self.layers = nn.ModuleList(
            [
                nn.Sequential(nn.LayerNorm(3 * dim), mlp([3 * dim, dim, dim]))
                for _ in range(n_layers)
            ]
        )

    def forward(self, h: Tensor, live: Tensor, sector_ids: Tensor | None = None) -> Tensor:
        b, a, _ = h.shape
        ids = sector_ids if sector_ids is not None else self.sector_ids
        if ids.numel() == 0:
            ids = torch.zeros(a, dtype=torch.long, device=h.device)
        ids = ids.to(h.device).expand(b, a) if ids.dim() == 1 else ids
        onehot = torch.nn.functional.one_hot(ids, self.n_sectors).to(h.dtype)  # (B, A, S)
        live_f = live.unsqueeze(-1).to(h.dtype)
        member = onehot * live_f  # live members of each sector
        count = member.sum(1).clamp_min(1.0)  # (B, S)
        n_live = live_f.sum(1).clamp_min(1.0)  # (B, 1)
        for layer in self.layers:
            sector_mean = torch.einsum("bas,bad->bsd", member, h) / count.unsqueeze(-1)
            own_sector = torch.einsum("bas,bsd->bad", onehot, sector_mean)
            market_mean = (h * live_f).sum(1, keepdim=True) / n_live.unsqueeze(-1)
            msg = torch.cat([h, own_sector, market_mean.expand_as(h)], dim=-1)
            h = (h + layer(msg)) * live_f
        return h


class IdentityAggregator(nn.Module):
    """No cross-asset mixing before pooling (DeepSets)."""

    def forward(self, h: Tensor, live: Tensor, sector_ids: Tensor | None = None) -> Tensor:
        return h * live.unsqueeze(-1).to(h.dtype)


#: Cross-asset aggregator registry.
AGGREGATORS: dict[str, type[nn.Module]] = {
    "attention": MaskedSelfAttention,
    "sector": SectorAggregator,
    "none": IdentityAggregator,
}


# --------------------------------------------------------------------------- encoder


class MarketEncoding(NamedTuple):
    """Output of :class:`MarketEncoder`.

    Attributes:
        tokens: (B, A, token_dim) per-asset embeddings, zero at dead slots.
        global_features: (B, global_dim) pooled embedding + portfolio scalars + exogenous.
        live: (B, A) bool slot mask.
    """

    tokens: Tensor
    global_features: Tensor
    live: Tensor


class MarketEncoder(nn.Module):
    """Per-asset encoder + cross-asset aggregator + pooled global embedding.

    Args:
        layout: Observation sizes (see :meth:`MarketObsLayout.from_space`).
        embed_dim: Token size D.
        global_dim: Size G of the global embedding.
        encoder: "mlp" | "conv1d" | "gru" (per-asset window encoder, shared over assets).
        aggregator: "attention" | "sector" | "none".
        n_heads: Attention heads (attention only).
        n_layers: Attention blocks or message-passing rounds.
        sector_ids: Slot -> sector index (sector aggregator only).
        n_sectors: Number of sectors (default max(sector_ids) + 1).

    Example:
        >>> enc = MarketEncoder(MarketObsLayout(8, 5, 8, 1), embed_dim=16, global_dim=32)
        >>> out = enc(torch.zeros(4, enc.layout.flat_dim))
        >>> out.tokens.shape, out.global_features.shape
        (torch.Size([4, 5, 16]), torch.Size([4, 32]))
    """

    def __init__(
        self,
        layout: MarketObsLayout,
        embed_dim: int = 64,
        global_dim: int = 128,
        encoder: str = "gru",
        aggregator: str = "attention",
        n_heads: int = 4,
        n_layers: int = 1,
        sector_ids: Tensor | np.ndarray | list[int] | None = None,
        n_sectors: int | None = None,
    ):
        super().__init__()
        self.layout = layout
        self.token_dim = embed_dim
        self.global_dim = global_dim
        f, e = layout.n_features, layout.n_exogenous
        self.asset_encoder = _choose(ASSET_ENCODERS, encoder, "encoder")(
            layout.window, f, embed_dim
        )
        self.token_in = nn.Sequential(nn.Linear(embed_dim + e + 1, embed_dim), nn.ReLU())
        agg_cls = _choose(AGGREGATORS, aggregator, "aggregator")
        if agg_cls is MaskedSelfAttention:
            self.aggregator: nn.Module = agg_cls(embed_dim, n_heads, n_layers)
        elif agg_cls is SectorAggregator:
            self.aggregator = agg_cls(embed_dim, sector_ids, n_sectors, n_layers)
        else:
            self.aggregator = agg_cls()
        pooled = 2 * embed_dim + N_PORTFOLIO_SCALARS + e + 1
        self.global_net = nn.Sequential(mlp([pooled, global_dim, global_dim]), nn.ReLU())

    def forward(
        self, obs: dict[str, Tensor] | Tensor, sector_ids: Tensor | None = None
    ) -> MarketEncoding:
        """Encode a batch of market observations (a Dict of tensors or flat (B, flat_dim))."""
        if not isinstance(obs, dict):
            obs = self.layout.unflatten(obs)
        lay = self.layout
        a = lay.n_assets
        mask = obs["mask"].reshape(-1, a)
        b = mask.shape[0]
        live = mask > 0.5
        market = obs["market"].reshape(b, lay.window, a, lay.n_features)
        exo = obs["exogenous"].reshape(b, a, lay.n_exogenous)
        port = obs["portfolio"].reshape(b, a + N_PORTFOLIO_SCALARS)
        zero = market.new_zeros(())
        market = torch.where(live[:, None, :, None], market, zero)
        exo = torch.where(live[..., None], exo, zero)
        weights = torch.where(live, port[:, :a], zero)

        x = market.permute(0, 2, 1, 3).reshape(b * a, lay.window, lay.n_features)
        e = self.asset_encoder(x).reshape(b, a, self.token_dim)
        live_f = live.unsqueeze(-1).to(e.dtype)
        tokens = self.token_in(torch.cat([e, exo, weights.unsqueeze(-1)], dim=-1)) * live_f
        tokens = self.aggregator(tokens, live, sector_ids)

        n_live = live_f.sum(1)  # (B, 1)
        mean = tokens.sum(1) / n_live.clamp_min(1.0)
        mx = tokens.masked_fill(~live.unsqueeze(-1), torch.finfo(tokens.dtype).min).amax(1)
        mx = torch.where(n_live > 0, mx, zero)
        exo_mean = exo.sum(1) / n_live.clamp_min(1.0)
        glob = torch.cat([mean, mx, port[:, a:], exo_mean, n_live / a], dim=-1)
        return MarketEncoding(tokens, self.global_net(glob), live)


class MarketFeaturesExtractor(BaseFeaturesExtractor):
    """Stable-Baselines3 features extractor over the market observation.

    Works with the Dict space (``MultiInputPolicy``) or the env's flat Box (``flat_obs=True``,
    ``MlpPolicy``; then pass ``layout=MarketObsLayout(W, A, F, E)``).

    Example:
        >>> from stable_baselines3 import PPO
        >>> model = PPO("MultiInputPolicy", env, policy_kwargs=dict(  # doctest: +SKIP
        ...     features_extractor_class=MarketFeaturesExtractor,
        ...     features_extractor_kwargs=dict(features_dim=128, encoder="gru")))

    Args:
        observation_space: market Dict space, or flat Box with ``layout`` given.
        features_dim: output size.
        layout: required for a Box space (ignored for a Dict space).
        **encoder_kwargs: forwarded to :class:`MarketEncoder` (encoder, aggregator, embed_dim,
            n_heads, n_layers, sector_ids, n_sectors).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 128,
        layout: MarketObsLayout | None = None,
        **encoder_kwargs: Any,
    ):
        super().__init__(observation_space, features_dim)
        if is_market_obs_space(observation_space):
            layout = MarketObsLayout.from_space(observation_space)  # type: ignore[arg-type]
        elif isinstance(observation_space, gym.spaces.Box) and layout is not None:
            if int(np.prod(observation_space.shape)) != layout.flat_dim:
                raise ConfigError(
                    f"observation_space.shape={observation_space.shape} does not match "
                    f"layout={layout} (flat_dim {layout.flat_dim})"
                )
        else:
            raise ConfigError(
                f"MarketFeaturesExtractor needs a market Dict space with keys {ENV_FLAT_ORDER} "
                f"or a flat Box plus layout=MarketObsLayout(...); got {observation_space}"
            )
        self.encoder = MarketEncoder(layout, global_dim=features_dim, **encoder_kwargs)

    def forward(self, observations: dict[str, Tensor] | Tensor) -> Tensor:
        if isinstance(observations, Tensor):
            observations = observations.reshape(observations.shape[0], -1)
        return self.encoder(observations).global_features


# --------------------------------------------------------------------------- heads


class _AssetHeadBase(nn.Module):
    """Per-asset MLP over [token, global] (shared across assets, so equivariant)."""

    def __init__(self, token_dim: int, global_dim: int, out: int, hidden: int = 64):
        super().__init__()
        self.per_asset = mlp([token_dim + global_dim, hidden, out])

    def asset_out(self, enc: MarketEncoding) -> Tensor:
        g = enc.global_features.unsqueeze(1).expand(-1, enc.tokens.shape[1], -1)
        return self.per_asset(torch.cat([enc.tokens, g], dim=-1))


class PortfolioWeightsHead(_AssetHeadBase):
    """Target weights over the A assets plus cash (last entry); dead slots get weight 0.

    Args:
        token_dim, global_dim: sizes of the encoding.
        distribution: "dirichlet" (long-only simplex, concentrations ``softplus + min``) or
            "gaussian_logits" (Gaussian logits -> masked softmax).
        min_concentration: floor added to Dirichlet concentrations.
    """

    def __init__(
        self,
        token_dim: int,
        global_dim: int,
        distribution: str = "dirichlet",
        hidden: int = 64,
        min_concentration: float = 1e-3,
    ):
        super().__init__(token_dim, global_dim, 1, hidden)
        if distribution not in ("dirichlet", "gaussian_logits"):
            raise ConfigError(
                f"distribution={distribution!r} is unknown; known: ['dirichlet', 'gaussian_logits']"
            )
        self.distribution = distribution
        self.cash = mlp([global_dim, hidden, 1])
        self.min_concentration = min_concentration
        self.log_std = nn.Parameter(torch.full((1,), -0.5))

    def forward(self, enc: MarketEncoding) -> MaskedDirichlet | SoftmaxGaussian:
        logits = torch.cat([self.asset_out(enc).squeeze(-1), self.cash(enc.global_features)], -1)
        mask = torch.cat([enc.live, torch.ones_like(enc.live[:, :1])], dim=-1)
        if self.distribution == "dirichlet":
            conc = torch.nn.functional.softplus(logits) + self.min_concentration
            return MaskedDirichlet(conc, mask)
        return SoftmaxGaussian(logits, self.log_std, mask)


class OrderParamsHead(_AssetHeadBase):
    """Per-asset order parameters (A, n_params) from a tanh-squashed Gaussian in [-1, 1]."""

    def __init__(self, token_dim: int, global_dim: int, n_params: int = 3, hidden: int = 64):
        super().__init__(token_dim, global_dim, n_params, hidden)
        self.log_std = nn.Parameter(torch.full((n_params,), -0.5))

    def forward(self, enc: MarketEncoding) -> SquashedDiagGaussian:
        mean = self.asset_out(enc)
        mask = enc.live.unsqueeze(-1).expand_as(mean)
        return SquashedDiagGaussian(mean, self.log_std, -1.0, 1.0, mask)


class DiscreteAssetHead(_AssetHeadBase):
    """Per-asset categorical over ``n_actions`` (0 sell, 1 hold, 2 buy); dead slots hold.

    ``forward`` gives the distribution; :meth:`q_values` gives the raw per-asset outputs
    (used as utilities by QMIX).
    """

    def __init__(
        self,
        token_dim: int,
        global_dim: int,
        n_actions: int = 3,
        hidden: int = 64,
        dead_action: int = 1,
    ):
        super().__init__(token_dim, global_dim, n_actions, hidden)
        self.dead_action = dead_action

    def q_values(self, enc: MarketEncoding) -> Tensor:
        """(B, A, n_actions) per-asset outputs; zero at dead slots."""
        return self.asset_out(enc) * enc.live.unsqueeze(-1).to(enc.tokens.dtype)

    def forward(self, enc: MarketEncoding) -> MultiCategorical:
        return MultiCategorical(self.asset_out(enc), mask=enc.live, dead_action=self.dead_action)


class ValueHead(nn.Module):
    """State value from the global embedding: (B, global_dim) -> (B,)."""

    def __init__(self, global_dim: int, hidden: int = 64):
        super().__init__()
        self.net = mlp([global_dim, hidden, 1])

    def forward(self, global_features: Tensor) -> Tensor:
        return self.net(global_features).squeeze(-1)
