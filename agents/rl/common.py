"""Shared plumbing of the multi-agent algorithms: spaces, networks from spaces, checkpoints.

Everything an algorithm file needs but that is not the algorithm itself:

* :func:`flatten_obs` / :func:`group_agents` -- flat float32 observations per agent; agents with
  identical spaces share parameters when asked (a one-hot agent id tells them apart).
* :class:`NetConfig`, :class:`ObsEncoder`, :class:`PolicyNet` -- observation encoder (MLP for
  Box/other obs, :class:`~agents.rl.networks.MarketEncoder` for the market Dict) and an action
  head chosen from the action space (per-asset market heads where they fit).
* :func:`save_checkpoint` / :func:`load_checkpoint` -- ``weights.pt`` (a ``state_dict`` read back
  with ``torch.load(weights_only=True)``) plus ``config.json`` (plain JSON, spaces included).
* :func:`polyak` target-network averaging, :func:`mean_ci95`. Env rollouts live in :mod:`agents.rl.rollout`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from agents.rl.distributions import ActionDist, MultiCategorical, SquashedDiagGaussian
from agents.rl.networks import (
    DiscreteAssetHead,
    MarketEncoder,
    MarketObsLayout,
    OrderParamsHead,
    PortfolioWeightsHead,
    is_market_obs_space,
    mlp,
)
from marketsim.errors import ConfigError, StateError

logger = logging.getLogger(__name__)

LogFn = Callable[[dict[str, float]], None]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        ConfigError: an unknown name, or CUDA asked for on a machine without it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device = {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device = {name!r}: CUDA is not available here (use 'auto' or 'cpu')")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device = {name!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return dev


"""Called with each metrics dict as training goes."""


# --------------------------------------------------------------------------- spaces


def flatten_obs(space: gym.Space, obs: Any) -> np.ndarray:
    """Flatten one observation to float32 (``gymnasium.spaces.flatten`` order). O(size)."""
    if isinstance(space, gym.spaces.Box):
        return np.asarray(obs, dtype=np.float32).reshape(-1)
    return np.asarray(gym.spaces.flatten(space, obs), dtype=np.float32)


def flat_dim(space: gym.Space) -> int:
    """Length of the flattened observation."""
    return int(gym.spaces.flatdim(space))


def check_action_space(space: gym.Space, allowed: tuple[type, ...], algo: str) -> None:
    """Raise ConfigError unless ``space`` is an instance of one of ``allowed``."""
    if not isinstance(space, allowed):
        names = [c.__name__ for c in allowed]
        raise ConfigError(f"{algo} supports action spaces {names}; got {space}")
    if isinstance(space, gym.spaces.Box) and not (
        np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))
    ):
        raise ConfigError(f"{algo} needs a bounded Box action space; got {space}")


def group_agents(
    agents: list[str],
    obs_spaces: dict[str, gym.Space],
    act_spaces: dict[str, gym.Space],
    share_parameters: bool,
) -> list[list[str]]:
    """Partition agents into parameter-sharing groups.

    With ``share_parameters`` agents with equal observation and action spaces share one
    network (in first-seen order); otherwise every agent is its own group. O(n_agents^2).
    """
    if not share_parameters:
        return [[a] for a in agents]
    groups: list[list[str]] = []
    for a in agents:
        for g in groups:
            if obs_spaces[g[0]] == obs_spaces[a] and act_spaces[g[0]] == act_spaces[a]:
                g.append(a)
                break
        else:
            groups.append([a])
    return groups


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """Plain-JSON description of a Box/Discrete/MultiDiscrete/Dict space (inf as strings)."""

    def arr(x: np.ndarray) -> Any:
        flat = np.asarray(x, dtype=np.float64).reshape(-1)
        vals = [v if math.isfinite(v) else ("inf" if v > 0 else "-inf") for v in flat.tolist()]
        return vals[0] if len(set(map(str, vals))) == 1 else vals

    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "low": arr(space.low),
            "high": arr(space.high),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": [[k, space_to_json(s)] for k, s in space.spaces.items()]}
    raise ConfigError(
        f"cannot save space {space}: supported are Box, Discrete, MultiDiscrete, Dict"
    )


def space_from_json(d: dict[str, Any]) -> gym.Space:
    """Inverse of :func:`space_to_json`."""
    kind = d.get("type")
    if kind == "Box":
        shape = tuple(d["shape"])

        def arr(v: Any) -> np.ndarray:
            vals = np.asarray(v if isinstance(v, list) else [v], dtype=object)
            out = np.array([float(x) for x in vals.reshape(-1)], dtype=np.float64)
            return np.broadcast_to(out, shape) if out.size == 1 else out.reshape(shape)

        dtype = np.dtype(d["dtype"])
        low, high = arr(d["low"]).astype(dtype), arr(d["high"]).astype(dtype)
        return gym.spaces.Box(low, high, shape, dtype=dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(int(d["n"]), start=int(d["start"]))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(d["nvec"])
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_json(s) for k, s in d["spaces"]})
    raise StateError(f"unknown space type {kind!r} in checkpoint config")


# --------------------------------------------------------------------------- networks


@dataclass
class NetConfig:
    """Network sizes and market-encoder options shared by the algorithms."""

    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLPs (encoder for flat obs, heads, critics)."""
    activation: str = "tanh"
    """Activation of the MLPs: "tanh" or "relu"."""
    market_encoder: str = "gru"
    """Per-asset window encoder for market Dict observations: "mlp", "conv1d" or "gru"."""
    market_aggregator: str = "attention"
    """Cross-asset aggregator for market observations: "attention", "sector" or "none"."""
    market_embed_dim: int = 32
    """Token size of the market encoder."""
    market_global_dim: int = 64
    """Size of the market encoder's pooled global embedding."""
    market_n_heads: int = 2
    """Attention heads of the market encoder."""
    sector_ids: list[int] | None = None
    """Slot -> sector index for the "sector" aggregator."""
    market_heads: bool = True
    """Use the per-asset market heads (weights/orders/discrete) when the spaces fit."""
    weights_distribution: str = "dirichlet"
    """Distribution of the portfolio-weights head: "dirichlet" or "gaussian_logits"."""
    init_log_std: float = -0.5
    """Initial log standard deviation of Gaussian policies."""
    market_layout: tuple[int, int, int, int] | None = None
    """(W, A, F, E) of a market env run with ``flat_obs=True``: a flat Box observation of that
    size is split in the env's order (market, portfolio, mask, exogenous) and goes through the
    market encoder and heads instead of an MLP. Not needed for the Dict observation."""


def activation_cls(name: str) -> type[nn.Module]:
    """ "tanh" -> nn.Tanh, "relu" -> nn.ReLU."""
    table = {"tanh": nn.Tanh, "relu": nn.ReLU}
    if name not in table:
        raise ConfigError(f"activation={name!r} is unknown; known: {sorted(table)}")
    return table[name]


class ObsEncoder(nn.Module):
    """Flat observation (+ optional one-hot agent id) -> features.

    For a market Dict space (or a flat Box matching ``cfg.market_layout`` when
    ``use_market_layout``), a :class:`MarketEncoder` whose encoding ``forward`` also returns so
    that per-asset heads can use the tokens; otherwise an MLP. ``out_dim`` is the feature size.
    """

    def __init__(
        self, obs_space: gym.Space, n_ids: int, cfg: NetConfig, use_market_layout: bool = True
    ):
        super().__init__()
        self.n_ids = n_ids
        self.market: MarketEncoder | None = None
        layout = None
        if is_market_obs_space(obs_space):
            layout = MarketObsLayout.from_space(obs_space)  # type: ignore[arg-type]
        elif (
            use_market_layout
            and cfg.market_layout is not None
            and isinstance(obs_space, gym.spaces.Box)
        ):
            layout = MarketObsLayout(*cfg.market_layout)
            if flat_dim(obs_space) != layout.flat_dim:
                raise ConfigError(
                    f"market_layout={tuple(cfg.market_layout)} needs a flat observation of "
                    f"{layout.flat_dim} entries; got {obs_space}"
                )
        if layout is not None:
            self.market = MarketEncoder(
                layout,
                embed_dim=cfg.market_embed_dim,
                global_dim=cfg.market_global_dim,
                encoder=cfg.market_encoder,
                aggregator=cfg.market_aggregator,
                n_heads=cfg.market_n_heads,
                sector_ids=cfg.sector_ids,
            )
            self.out_dim = cfg.market_global_dim + n_ids
        else:
            act = activation_cls(cfg.activation)
            self.net = nn.Sequential(mlp([flat_dim(obs_space), *cfg.hidden_sizes], act), act())
            self.out_dim = cfg.hidden_sizes[-1] + n_ids

    def forward(self, obs: Tensor, ids: Tensor | None = None) -> tuple[Tensor, Any]:
        """Return (features (B, out_dim), market encoding or None)."""
        if self.market is not None:
            enc = self.market(obs)
            feats = enc.global_features
        else:
            enc = None
            feats = self.net(obs)
        if self.n_ids:
            feats = torch.cat([feats, ids], dim=-1)  # type: ignore[list-item]
        if enc is not None:
            enc = enc._replace(global_features=feats)
        return feats, enc


def _market_head(obs_space: gym.Space, act_space: gym.Space, enc: ObsEncoder, cfg: NetConfig):
    """The per-asset market head that fits the action space, or None."""
    if enc.market is None or not cfg.market_heads:
        return None
    a = enc.market.layout.n_assets
    td, gd = enc.market.token_dim, enc.out_dim
    if isinstance(act_space, gym.spaces.Box) and act_space.shape == (a + 1,):
        return PortfolioWeightsHead(td, gd, cfg.weights_distribution)
    if isinstance(act_space, gym.spaces.Box) and act_space.shape in ((a, 3), (a, 4)):
        return OrderParamsHead(td, gd, act_space.shape[1])  # orders / quotes
    if isinstance(act_space, gym.spaces.MultiDiscrete) and act_space.shape == (a,):
        return DiscreteAssetHead(td, gd, int(act_space.nvec.max()))
    return None


class PolicyNet(nn.Module):
    """Observation -> action distribution, for Box / Discrete / MultiDiscrete action spaces.

    Generic heads: a state-independent-std tanh-squashed Gaussian rescaled to the Box bounds,
    or independent categoricals (MultiDiscrete with unequal ``nvec`` pads and masks). With a
    market observation and a fitting action space the per-asset market heads are used.
    """

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, n_ids: int, cfg: NetConfig):
        super().__init__()
        self.act_space = act_space
        self.encoder = ObsEncoder(obs_space, n_ids, cfg)
        self.market_head = _market_head(obs_space, act_space, self.encoder, cfg)
        d = self.encoder.out_dim
        if self.market_head is not None:
            pass
        elif isinstance(act_space, gym.spaces.Box):
            n = int(np.prod(act_space.shape))
            self.mean = nn.Linear(d, n)
            nn.init.orthogonal_(self.mean.weight, 0.01)
            nn.init.zeros_(self.mean.bias)
            self.log_std = nn.Parameter(torch.full((n,), cfg.init_log_std))
            self.register_buffer(
                "low", torch.as_tensor(act_space.low, dtype=torch.float32).reshape(-1)
            )
            self.register_buffer(
                "high", torch.as_tensor(act_space.high, dtype=torch.float32).reshape(-1)
            )
        elif isinstance(act_space, gym.spaces.Discrete | gym.spaces.MultiDiscrete):
            nvec = np.atleast_1d(
                act_space.n if isinstance(act_space, gym.spaces.Discrete) else act_space.nvec
            ).reshape(-1)
            self.nvec = nvec
            k = int(nvec.max())
            self.logits = nn.Linear(d, len(nvec) * k)
            nn.init.orthogonal_(self.logits.weight, 0.01)
            nn.init.zeros_(self.logits.bias)
            valid = torch.arange(k)[None, :] < torch.as_tensor(nvec)[:, None]
            self.register_buffer("valid", valid)
        else:
            raise ConfigError(f"unsupported action space {act_space}")

    def forward(self, obs: Tensor, ids: Tensor | None = None) -> ActionDist:
        feats, enc = self.encoder(obs, ids)
        if self.market_head is not None:
            return self.market_head(enc)
        if isinstance(self.act_space, gym.spaces.Box):
            return SquashedDiagGaussian(self.mean(feats), self.log_std, self.low, self.high)
        logits = self.logits(feats).reshape(feats.shape[0], *self.valid.shape)
        return MultiCategorical(logits, self.valid)


def env_action(space: gym.Space, raw_env_action: np.ndarray) -> Any:
    """Convert one agent's action row (from ``dist.to_env``) to what ``env.step`` expects."""
    if isinstance(space, gym.spaces.Discrete):
        return int(raw_env_action.reshape(-1)[0]) + int(space.start)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return raw_env_action.reshape(space.shape).astype(space.dtype)
    return np.asarray(raw_env_action, dtype=space.dtype).reshape(space.shape)


def raw_action_shape(space: gym.Space) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype in which buffers store one raw action for ``space``."""
    if isinstance(space, gym.spaces.Discrete):
        return (1,), np.dtype(np.int64)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return (int(np.prod(space.shape)),), np.dtype(np.int64)
    return tuple(space.shape), np.dtype(np.float32)


def one_hot_ids(group: list[str], agents: list[str], batch: int) -> Tensor:
    """(batch * len(group), n_agents) one-hot ids of ``group`` repeated over ``batch`` rows."""
    idx = torch.tensor([agents.index(a) for a in group]).repeat(batch)
    return torch.nn.functional.one_hot(idx, len(agents)).float()


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, module: nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``path/weights.pt`` (state_dict) and ``path/config.json`` (``meta``). Returns path."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), p / "weights.pt")
    (p / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    return p


class GroupPolicyIO:
    """Mixin: ``save``/``load`` for the multi-agent policies (``weights.pt`` + ``config.json``).

    The class sets ``ALGORITHM`` (checked on load) and ``CONFIG_CLS`` (its config dataclass,
    with a ``net: NetConfig`` field); instances have ``agents``, ``obs_spaces``, ``act_spaces``,
    ``groups`` and ``config``, and ``__init__(agents, obs_spaces, act_spaces, groups, config)``.
    """

    ALGORITHM: str = ""
    CONFIG_CLS: type = object

    def save(self, path: str | Path) -> Path:
        """Write ``weights.pt`` + ``config.json`` under the directory ``path``."""
        from dataclasses import asdict

        meta = {
            "algorithm": self.ALGORITHM,
            "config": asdict(self.config),
            "groups": self.groups,
            **spaces_meta(self.agents, self.obs_spaces, self.act_spaces),
        }
        return save_checkpoint(path, self, meta)

    @classmethod
    def load(cls, path: str | Path):
        """Rebuild a policy saved with :meth:`save` (``torch.load(weights_only=True)``)."""
        state, meta = load_checkpoint(path, cls.ALGORITHM)
        cfg = meta["config"]
        cfg["net"] = NetConfig(**{**cfg["net"], "hidden_sizes": tuple(cfg["net"]["hidden_sizes"])})
        agents, obs_spaces, act_spaces = spaces_from_meta(meta)
        policy = cls(agents, obs_spaces, act_spaces, meta["groups"], cls.CONFIG_CLS(**cfg))
        policy.load_state_dict(state)
        return policy


def load_checkpoint(path: str | Path, algorithm: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; checks the algorithm name."""
    p = Path(path)
    try:
        meta = json.loads((p / "config.json").read_text())
        state = torch.load(p / "weights.pt", weights_only=True, map_location="cpu")
    except (OSError, json.JSONDecodeError, RuntimeError) as exc:
        raise StateError(f"cannot read checkpoint at {p}: {exc}") from exc
    if meta.get("algorithm") != algorithm:
        raise StateError(f"checkpoint at {p} is {meta.get('algorithm')!r}, expected {algorithm!r}")
    return state, meta


def spaces_meta(agents: list[str], obs_spaces: dict, act_spaces: dict) -> dict[str, Any]:
    """JSON-able description of the agents and their spaces."""
    return {
        "agents": agents,
        "obs_spaces": {a: space_to_json(obs_spaces[a]) for a in agents},
        "act_spaces": {a: space_to_json(act_spaces[a]) for a in agents},
    }


def spaces_from_meta(meta: dict[str, Any]) -> tuple[list[str], dict, dict]:
    """Inverse of :func:`spaces_meta`."""
    agents = list(meta["agents"])
    obs = {a: space_from_json(meta["obs_spaces"][a]) for a in agents}
    act = {a: space_from_json(meta["act_spaces"][a]) for a in agents}
    return agents, obs, act


def mean_ci95(x: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of a normal-approximation 95% CI: ``1.96 * std(ddof=1) / sqrt(n)``."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(1.96 * x.std(ddof=1) / math.sqrt(x.size))


def polyak(target: nn.Module, source: nn.Module, tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source``, in place. O(parameters)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters(), strict=True):
            t.mul_(1.0 - tau).add_(s, alpha=tau)
