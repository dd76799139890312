"""IPPO: independent PPO learners (de Witt et al. 2020, "Is Independent Learning All You Need
in the StarCraft Multi-Agent Challenge?").

IPPO is MAPPO with decentralised critics: each agent's critic sees only its own observation.
The algorithm lives in :mod:`agents.rl.mappo`; this module fixes ``centralised_critic=False``.
Parameter sharing among agents with equal spaces is still on by default
(``share_parameters=False`` gives fully independent learners).
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.rl.common import LogFn
from agents.rl.mappo import MAPPOConfig, MAPPOPolicy
from agents.rl.mappo import train as _train_mappo
from agents.rl.rollout import EnvFn

__all__ = ["IPPOConfig", "IPPOPolicy", "train"]

IPPOPolicy = MAPPOPolicy


@dataclass
class IPPOConfig(MAPPOConfig):
    """MAPPOConfig with ``centralised_critic=False`` (see its fields)."""

    centralised_critic: bool = False
    """Always False for IPPO: each critic sees its agent's own observation."""


def train(
    env_fn: EnvFn,
    config: MAPPOConfig | None = None,
    seed: int = 0,
    total_steps: int = 100_000,
    log_fn: LogFn | None = None,
) -> tuple[MAPPOPolicy, list[dict[str, float]]]:
    """Train IPPO; same arguments and results as :func:`agents.rl.mappo.train`.

    A given config's ``centralised_critic`` is overridden to False.
    """
    cfg = config if config is not None else IPPOConfig()
    if cfg.centralised_critic:
        cfg = IPPOConfig(**{**cfg.__dict__, "centralised_critic": False})
    return _train_mappo(env_fn, cfg, seed, total_steps, log_fn)
