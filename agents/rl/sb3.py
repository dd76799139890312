"""Single-agent training with Stable-Baselines3 (PPO, A2C, SAC, TD3, DDPG) on the market env.

The policy reads the market Dict observation through :class:`MarketFeaturesExtractor` (a
per-asset encoder shared across assets + masked cross-asset attention). Checkpoints are a
``state_dict`` (``policy.pt``, loaded with ``torch.load(weights_only=True)``) plus a JSON config
(``config.json``) — never SB3's pickled zip — so a saved policy cannot run code when loaded.

Example:
    >>> from agents.rl.sb3 import SB3Config, train_sb3
    >>> policy, metrics = train_sb3("scenarios/rl_single.toml", SB3Config(algo="ppo"), seed=0,
    ...                             total_steps=20_000, out_dir="runs/ppo")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.rl.networks import MarketFeaturesExtractor
from marketsim.env import MarketEnv
from marketsim.errors import ConfigError

#: Algorithms by CLI name.
SB3_ALGOS = ("ppo", "a2c", "sac", "td3", "ddpg")
_CONTINUOUS_ONLY = ("sac", "td3", "ddpg")


@dataclass
class SB3Config:
    """Hyper-parameters of a single-agent SB3 run (defaults sized for 2-core machines)."""

    algo: str = "ppo"  #: one of SB3_ALGOS
    learning_rate: float = 3e-4  #: optimiser step size
    gamma: float = 0.99  #: discount
    gae_lambda: float = 0.95  #: PPO/A2C GAE lambda
    n_steps: int = 512  #: PPO/A2C rollout length per update
    batch_size: int = 128  #: minibatch (PPO, off-policy algos)
    n_epochs: int = 5  #: PPO epochs per rollout
    ent_coef: float = 0.0  #: PPO/A2C entropy bonus
    buffer_size: int = 50_000  #: replay size (SAC/TD3/DDPG)
    learning_starts: int = 500  #: off-policy warm-up steps
    features_dim: int = 64  #: extractor output size
    encoder: str = "mlp"  #: per-asset encoder: mlp | conv1d | gru
    aggregator: str = "attention"  #: cross-asset aggregator: attention | sector | none
    net_arch: list[int] = field(default_factory=lambda: [64, 64])  #: head MLP sizes
    log_std_init: float = -1.0  #: PPO/A2C initial log std (std 0.37: actions rarely clip)
    device: str = "auto"  #: "auto" (CUDA when present), "cpu" or "cuda"
    env_kwargs: dict[str, Any] = field(default_factory=dict)  #: MarketEnv options
    overrides: list[str] = field(default_factory=list)  #: scenario key=value overrides


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but CUDA is not available; use --device cpu")
    return name


def make_env(scenario: Any, cfg: SB3Config) -> MarketEnv:
    """The single-agent env of a scenario with the config's options."""
    return MarketEnv(scenario, overrides=tuple(cfg.overrides), **cfg.env_kwargs)


def build_model(env: MarketEnv, cfg: SB3Config, seed: int, tensorboard_log: str | None = None):
    """Instantiate the SB3 algorithm with our features extractor."""
    import stable_baselines3 as sb3
    from gymnasium import spaces

    if cfg.algo not in SB3_ALGOS:
        raise ConfigError(f"algo={cfg.algo!r}: single-agent algorithms are {list(SB3_ALGOS)}")
    if cfg.algo in _CONTINUOUS_ONLY and not isinstance(env.action_space, spaces.Box):
        raise ConfigError(
            f"algo={cfg.algo!r} needs continuous actions (action_mode 'weights' or 'orders'); "
            f"this agent's space is {env.action_space}: use ppo or a2c"
        )
    policy_kwargs = {
        "features_extractor_class": MarketFeaturesExtractor,
        "features_extractor_kwargs": {
            "features_dim": cfg.features_dim,
            "encoder": cfg.encoder,
            "aggregator": cfg.aggregator,
        },
        "net_arch": list(cfg.net_arch),
    }
    common = {
        "policy": "MultiInputPolicy",
        "env": env,
        "learning_rate": cfg.learning_rate,
        "gamma": cfg.gamma,
        "seed": seed,
        "device": _device(cfg.device),
        "policy_kwargs": policy_kwargs,
        "tensorboard_log": tensorboard_log,
        "verbose": 0,
    }
    if cfg.algo in ("ppo", "a2c") and isinstance(env.action_space, spaces.Box):
        policy_kwargs["log_std_init"] = cfg.log_std_init
    if cfg.algo == "ppo":
        return sb3.PPO(
            n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
            ent_coef=cfg.ent_coef, gae_lambda=cfg.gae_lambda, **common,
        )  # fmt: skip
    if cfg.algo == "a2c":
        return sb3.A2C(
            n_steps=min(cfg.n_steps, 32), ent_coef=cfg.ent_coef, gae_lambda=cfg.gae_lambda, **common
        )
    off = {
        "buffer_size": cfg.buffer_size,
        "learning_starts": cfg.learning_starts,
        "batch_size": cfg.batch_size,
    }
    cls = {"sac": sb3.SAC, "td3": sb3.TD3, "ddpg": sb3.DDPG}[cfg.algo]
    return cls(**off, **common)


class SB3Policy:
    """A trained SB3 policy: ``act(obs, deterministic=True) -> action``; save/load safely."""

    def __init__(self, model, cfg: SB3Config, scenario: Any, meta: dict | None = None):
        self.model = model
        self.cfg = cfg
        self.scenario = scenario
        self.meta = meta or {}

    def reset(self) -> None:
        """Stateless between episodes."""

    def act(self, obs, deterministic: bool = True) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return action

    def save(self, out_dir: str | Path) -> Path:
        """Write ``policy.pt`` (state_dict) and ``config.json`` into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.policy.state_dict(), out / "policy.pt")
        doc = {
            "kind": "sb3",
            "config": asdict(self.cfg),
            "scenario": self.scenario if isinstance(self.scenario, dict) else str(self.scenario),
            **self.meta,
        }
        (out / "config.json").write_text(json.dumps(doc, indent=2, default=str))
        return out

    @classmethod
    def load(cls, out_dir: str | Path, device: str = "cpu") -> SB3Policy:
        """Rebuild the policy from ``config.json`` and ``policy.pt`` (weights only)."""
        out = Path(out_dir)
        doc = json.loads((out / "config.json").read_text())
        cfg = SB3Config(**{**doc["config"], "device": device})
        env = make_env(doc["scenario"], cfg)
        model = build_model(env, cfg, seed=int(doc.get("seed", 0)))
        state = torch.load(out / "policy.pt", weights_only=True, map_location=device)
        model.policy.load_state_dict(state)
        return cls(model, cfg, doc["scenario"], {k: v for k, v in doc.items() if k != "config"})


def train_sb3(
    scenario: Any,
    cfg: SB3Config,
    seed: int,
    total_steps: int,
    out_dir: str | Path | None = None,
    log_fn: Callable[[dict], None] | None = None,
    progress: bool = False,
    time_budget_s: float | None = None,
) -> tuple[SB3Policy, list[dict]]:
    """Train one SB3 algorithm; return the policy and the metrics history.

    Metrics (``rollout/ep_rew_mean``, ``losses/*``, ``time/fps``) are written as CSV (and
    TensorBoard when ``out_dir`` is given and tensorboard is installed). Deterministic for a
    fixed seed with one torch thread. With ``time_budget_s`` training stops at the first env
    step after that many wall-clock seconds (then the run is no longer reproducible step for
    step); ``meta["trained_steps"]`` and ``meta["train_seconds"]`` say what was done.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure

    env = make_env(scenario, cfg)
    formats = ["csv"]
    if out_dir is not None:
        try:
            import tensorboard  # noqa: F401

            formats.append("tensorboard")
        except ImportError:
            pass
    model = build_model(env, cfg, seed)
    history: list[dict] = []
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        model.set_logger(configure(str(Path(out_dir)), formats))

    class _Cb(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.bar = None
            self.ep_return = 0.0
            self.t0 = time.perf_counter()

        def _on_training_start(self) -> None:
            if progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total_steps, unit="step", desc=cfg.algo)

        def _on_step(self) -> bool:
            if self.bar is not None:
                self.bar.update(1)
            self.ep_return += float(self.locals["rewards"][0])
            if self.locals["dones"][0]:
                row = {
                    "step": self.num_timesteps,
                    "charts/episode_return": self.ep_return,
                    "time/seconds": time.perf_counter() - self.t0,
                }
                history.append(row)
                self.logger.record("charts/episode_return", self.ep_return)
                if log_fn is not None:
                    log_fn(row)
                self.ep_return = 0.0
            if time_budget_s is not None and time.perf_counter() - self.t0 >= time_budget_s:
                return False
            return True

        def _on_training_end(self) -> None:
            if self.bar is not None:
                self.bar.close()

    t0 = time.perf_counter()
    model.learn(total_timesteps=int(total_steps), callback=_Cb())
    meta = {
        "seed": seed,
        "total_steps": int(total_steps),
        "trained_steps": int(model.num_timesteps),
        "train_seconds": round(time.perf_counter() - t0, 3),
    }
    policy = SB3Policy(model, cfg, scenario, meta)
    if out_dir is not None:
        policy.save(out_dir)
        with open(Path(out_dir) / "episodes.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, ["step", "charts/episode_return", "time/seconds"])
            w.writeheader()
            w.writerows(history)
    return policy, history
