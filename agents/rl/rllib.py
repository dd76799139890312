"""Multi-agent PPO on the market through RLlib (Ray), for training that outgrows one process.

Our own algorithms (:mod:`agents.rl.mappo`, :mod:`agents.rl.ippo`, ...) are the default; this
module is the bridge to RLlib for runs on a Ray cluster: many env runners sampling in parallel,
one or more learners. It uses RLlib's new API stack (RLModule / Learner / EnvRunner, the
default of Ray >= 2.40) with the default PPO torch module.

* The env is :func:`marketsim.env.parallel.parallel_env` with ``flat_obs=True`` (RLlib's default
  module takes a flat Box), wrapped by ``ray.rllib.env.wrappers.pettingzoo_env.
  ParallelPettingZooEnv`` and registered under :data:`ENV_NAME`.
* Policies: one per ``[[rl_agents]]`` group (agents of a group share it), or one shared by all
  agents (``shared_policy=True``; their spaces must be identical).
* Ray: an instance already initialised in this process is used as it is; else
  :func:`train_rllib` joins ``address`` (a cluster started with ``ray start --head``) or starts a
  local instance, and shuts down what it started.

Outputs in ``out_dir``: ``checkpoint/`` (RLlib's own format, restorable with
:func:`restore_algorithm`; it holds pickles, so load only checkpoints you wrote),
``policies/<policy>.npz`` (each policy's weights as plain arrays, read with
:func:`load_policy_weights`, no pickle), ``config.json`` and ``metrics.jsonl`` (one line per
iteration).

Metrics (namespaced like cleanrl): ``env/steps_sampled``, ``env/episodes``,
``env/episode_return_mean``, ``env/episode_len_mean``, ``agent/<name>/return_mean``,
``policy/<id>/{policy_loss,vf_loss,entropy,mean_kl_loss,total_loss}``, ``time/iteration_s``.

Example:
    >>> out = train_rllib("scenarios/rl_pair.toml", iterations=20, seed=0)   # doctest: +SKIP
    >>> out["metrics"]["env/episode_return_mean"], out["checkpoint"]         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.errors import ConfigError, StateError
from marketsim.scenario import Scenario, load_scenario

logger = logging.getLogger(__name__)

__all__ = [
    "ENV_NAME",
    "RLlibPPOConfig",
    "build_ppo_config",
    "env_creator",
    "load_policy_weights",
    "policy_map",
    "restore_algorithm",
    "train_rllib",
]

#: Name the wrapped env is registered under in Ray's registry.
ENV_NAME = "marketsim_parallel"
#: Policy id of the policy all agents share (``shared_policy=True``).
SHARED_POLICY = "shared"
_LEARNER_KEYS = ("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "total_loss")


@dataclass
class RLlibPPOConfig:
    """PPO settings for :func:`train_rllib` (RLlib names in brackets)."""

    #: One policy for every agent instead of one per ``[[rl_agents]]`` group.
    shared_policy: bool = False
    #: Env steps per episode (None: to the scenario's end).
    max_steps: int | None = 64
    #: Model steps run at reset before the first observation.
    warmup_steps: int = 60
    #: Env steps per training iteration, summed over agents' timesteps [train_batch_size_per_learner].
    train_batch_size: int = 1024
    #: SGD minibatch size [minibatch_size].
    minibatch_size: int = 256
    #: Passes over each batch [num_epochs].
    num_epochs: int = 4
    #: Adam learning rate [lr].
    lr: float = 3e-4
    #: Discount factor [gamma].
    gamma: float = 0.99
    #: GAE lambda [lambda_].
    gae_lambda: float = 0.95
    #: PPO clip range [clip_param].
    clip_param: float = 0.2
    #: Entropy bonus [entropy_coeff].
    entropy_coeff: float = 0.0
    #: Value-loss weight [vf_loss_coeff].
    vf_loss_coeff: float = 1.0
    #: Hidden layer sizes of the policy and value MLPs [fcnet_hiddens].
    hidden_sizes: tuple[int, ...] = (64, 64)
    #: Remote sampling processes; 0 samples in the driver [num_env_runners].
    num_env_runners: int = 0
    #: Envs stepped by each env runner [num_envs_per_env_runner].
    num_envs_per_env_runner: int = 1
    #: Steps per sampled fragment; "auto" splits the batch over runners [rollout_fragment_length].
    rollout_fragment_length: int | str = "auto"
    #: Remote learner processes; 0 learns in the driver [num_learners].
    num_learners: int = 0
    #: Extra keyword arguments of ``parallel_env`` (``volume_scale``, ...).
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        positive = ("train_batch_size", "minibatch_size", "num_epochs", "num_envs_per_env_runner")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"RLlibPPOConfig.{name} = {v!r}: must be an integer >= 1")
        for name in ("num_env_runners", "num_learners", "warmup_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ConfigError(f"RLlibPPOConfig.{name} = {v!r}: must be an integer >= 0")
        if self.minibatch_size > self.train_batch_size:
            raise ConfigError(
                f"RLlibPPOConfig.minibatch_size = {self.minibatch_size}: must be <= "
                f"train_batch_size ({self.train_batch_size})"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"RLlibPPOConfig.max_steps = {self.max_steps}: must be >= 1 or None")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"RLlibPPOConfig.lr = {self.lr}: must be a finite number > 0")
        if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
            raise ConfigError(
                f"RLlibPPOConfig.hidden_sizes = {self.hidden_sizes!r}: must be non-empty, each >= 1"
            )


# ---------------------------------------------------------------------------- env and policies
def env_creator(env_config: Mapping[str, Any]) -> Any:
    """RLlib env factory: ``ParallelPettingZooEnv(parallel_env(scenario, flat_obs=True, ...))``.

    Args:
        env_config: ``scenario`` (a scenario dict), ``max_steps``, ``warmup_steps`` and
            ``env_kwargs`` (more ``parallel_env`` keywords).
    """
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from marketsim.env.parallel import parallel_env

    env = parallel_env(
        env_config["scenario"],
        flat_obs=True,
        max_steps=env_config.get("max_steps"),
        warmup_steps=env_config.get("warmup_steps", 60),
        **dict(env_config.get("env_kwargs") or {}),
    )
    return ParallelPettingZooEnv(env)


def policy_map(scenario: Scenario, shared: bool = False) -> dict[str, str]:
    """Agent name -> policy id: the agent's ``[[rl_agents]]`` group name, or ``"shared"``."""
    out = {}
    for g in scenario.rl_agents:
        for name in g.agent_names() if g.count else []:
            out[name] = SHARED_POLICY if shared else g.name
    if not out:
        raise ConfigError(
            "the scenario declares no RL agents: add an [[rl_agents]] group to train with RLlib"
        )
    return out


class _PolicyMapping:
    """Picklable ``policy_mapping_fn(agent_id, episode, **kw) -> policy id``."""

    def __init__(self, mapping: Mapping[str, str]):
        self.mapping = dict(mapping)

    def __call__(self, agent_id: str, episode: Any = None, **kwargs: Any) -> str:
        return self.mapping[agent_id]


def _check_shared_spaces(env_config: Mapping[str, Any]) -> None:
    """Shared policy: every agent must have the same observation and action space."""
    from marketsim.env.parallel import parallel_env

    env = parallel_env(
        env_config["scenario"], flat_obs=True, max_steps=env_config.get("max_steps"),
        warmup_steps=env_config.get("warmup_steps", 60), **dict(env_config.get("env_kwargs") or {}),
    )  # fmt: skip
    spaces = {n: (env.observation_space(n), env.action_space(n)) for n in env.possible_agents}
    env.close()
    first = next(iter(spaces.values()))
    for n, sp in spaces.items():
        if sp != first:
            raise ConfigError(
                f"shared_policy=True needs identical spaces, but agent {n!r} has observation "
                f"{sp[0]} / action {sp[1]} and {next(iter(spaces))!r} has {first[0]} / "
                f"{first[1]}; use shared_policy=False (a policy per group)"
            )


def _register_env() -> None:
    from ray.tune.registry import register_env

    register_env(ENV_NAME, env_creator)


def build_ppo_config(
    scenario: Scenario | Mapping[str, Any] | str | os.PathLike[str],
    seed: int = 0,
    config: RLlibPPOConfig | None = None,
    overrides: Sequence[str] = (),
) -> Any:
    """The ``ray.rllib.algorithms.ppo.PPOConfig`` :func:`train_rllib` builds (to tune it more).

    Raises:
        ConfigError: bad settings, no RL agents, or unequal spaces with a shared policy.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    cfg = config or RLlibPPOConfig()
    cfg.validate()
    sc = load_scenario(scenario, list(overrides))
    mapping = policy_map(sc, cfg.shared_policy)
    env_config = {
        "scenario": sc.to_dict(),
        "max_steps": cfg.max_steps,
        "warmup_steps": cfg.warmup_steps,
        "env_kwargs": dict(cfg.env_kwargs),
    }
    if cfg.shared_policy:
        _check_shared_spaces(env_config)
    _register_env()
    return (
        PPOConfig()
        .environment(ENV_NAME, env_config=env_config)
        .multi_agent(
            policies=set(mapping.values()),
            policy_mapping_fn=_PolicyMapping(mapping),
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=[int(h) for h in cfg.hidden_sizes], vf_share_layers=False
            )
        )
        .env_runners(
            num_env_runners=cfg.num_env_runners,
            num_envs_per_env_runner=cfg.num_envs_per_env_runner,
            rollout_fragment_length=cfg.rollout_fragment_length,
        )
        .learners(num_learners=cfg.num_learners)
        .training(
            train_batch_size_per_learner=cfg.train_batch_size,
            minibatch_size=cfg.minibatch_size,
            num_epochs=cfg.num_epochs,
            lr=cfg.lr,
            gamma=cfg.gamma,
            lambda_=cfg.gae_lambda,
            clip_param=cfg.clip_param,
            entropy_coeff=cfg.entropy_coeff,
            vf_loss_coeff=cfg.vf_loss_coeff,
        )
        .debugging(seed=int(seed))
    )


# ---------------------------------------------------------------------------- metrics
def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _metrics(result: Mapping[str, Any], policies: Sequence[str]) -> dict[str, float | None]:
    """Namespaced scalars of one ``algo.train()`` result (missing ones are None)."""
    env = result.get("env_runners") or {}
    out: dict[str, float | None] = {
        "iteration": _num(result.get("training_iteration")),
        "env/steps_sampled": _num(
            env.get("num_env_steps_sampled_lifetime", result.get("num_env_steps_sampled_lifetime"))
        ),
        "env/episodes": _num(env.get("num_episodes_lifetime")),
        "env/episode_return_mean": _num(env.get("episode_return_mean")),
        "env/episode_len_mean": _num(env.get("episode_len_mean")),
        "time/iteration_s": _num(result.get("time_this_iter_s")),
    }
    for agent, ret in (env.get("agent_episode_returns_mean") or {}).items():
        out[f"agent/{agent}/return_mean"] = _num(ret)
    learners = result.get("learners") or {}
    for pid in policies:
        stats = learners.get(pid) or {}
        for key in _LEARNER_KEYS:
            out[f"policy/{pid}/{key}"] = _num(stats.get(key))
    return out


# ---------------------------------------------------------------------------- weights
def _export_weights(algo: Any, policies: Sequence[str], folder: Path) -> dict[str, str]:
    """Each policy's weights as ``<folder>/<policy>.npz`` (plain arrays); return the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = algo.learner_group.get_weights(module_ids=list(policies))
    out = {}
    for pid in policies:
        arrays = {k: np.asarray(v) for k, v in weights[pid].items()}
        path = folder / f"{pid}.npz"
        np.savez(path, **arrays)
        out[pid] = str(path)
    return out


def load_policy_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Weights written by :func:`train_rllib` (``policies/<policy>.npz``): name -> array.

    Loaded with ``allow_pickle=False``: the file cannot run code. Names are those of the torch
    module's ``state_dict`` (``encoder...``, ``pi...``, ``vf...``).

    Raises:
        StateError: the file is missing or not such an archive.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise StateError(f"policy weights {str(p)!r} cannot be read: {exc}") from None


# ---------------------------------------------------------------------------- training
def _ray_started(address: str | None, num_cpus: int | None) -> bool:
    """Initialise Ray unless it is; return True when this call started (or joined) it."""
    import ray

    if ray.is_initialized():
        if address:
            logger.warning("Ray is already initialised; address=%r is ignored", address)
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
    return True


def train_rllib(
    scenario: Scenario | Mapping[str, Any] | str | os.PathLike[str],
    iterations: int,
    seed: int = 0,
    config: RLlibPPOConfig | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    address: str | None = None,
    num_cpus: int | None = None,
    log_fn: Callable[[dict[str, float | None]], None] | None = None,
) -> dict[str, Any]:
    """Train the scenario's RL agents with multi-agent PPO in RLlib.

    Args:
        scenario: Scenario object, dict or TOML path with ``[[rl_agents]]``.
        iterations: ``algo.train()`` calls (each samples ``train_batch_size`` env steps).
        seed: Seed of RLlib (networks, sampling) and of the env resets.
        config: PPO settings (default :class:`RLlibPPOConfig`).
        out_dir: Output folder; default ``runs/rllib-<scenario>-<seed>-<timestamp>``.
        overrides: ``key=value`` scenario overrides.
        address: Ray cluster to join (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
            default a local instance with ``num_cpus`` CPUs (all). Ignored if Ray is already
            initialised in this process.
        num_cpus: CPUs of a local instance.
        log_fn: Called with each iteration's metrics.

    Returns:
        ``{"iterations", "seed", "checkpoint" (folder), "weights" ({policy: .npz path}),
        "policies" ({policy: [agents]}), "metrics" (last iteration), "history" (every
        iteration), "out_dir", "ray_version"}``.

    Raises:
        ConfigError: bad arguments, no RL agents; ``ImportError`` without Ray.

    Complexity: O(iterations x (train_batch_size env steps + num_epochs x batch updates)).
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ConfigError(f"iterations = {iterations!r}: must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed = {seed!r}: must be an integer >= 0")
    try:
        import ray
    except ImportError:
        raise ImportError(
            "train_rllib needs Ray RLlib: pip install 'marketsim[distributed]'"
        ) from None
    cfg = config or RLlibPPOConfig()
    sc = load_scenario(scenario, list(overrides))
    mapping = policy_map(sc, cfg.shared_policy)
    policies = sorted(set(mapping.values()))
    if out_dir is None:
        from marketsim.cli import default_run_dir

        out_dir = default_run_dir(f"rllib-{sc.simulation.name}", seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ppo = build_ppo_config(sc, seed, cfg)  # validates before Ray starts
    (out / "config.json").write_text(
        json.dumps(
            {
                "seed": seed,
                "iterations": iterations,
                "ppo": dataclasses.asdict(cfg),
                "agent_policy": mapping,
                "scenario_hash": sc.hash(),
                "scenario": sc.to_dict(),
                "ray_version": ray.__version__,
            },
            indent=2,
            default=str,
        )
        + "\n",
        encoding="utf-8",
    )
    started = _ray_started(address, num_cpus)
    algo = None
    history: list[dict[str, float | None]] = []
    try:
        algo = ppo.build_algo()
        with open(out / "metrics.jsonl", "w", encoding="utf-8") as fh:
            for _ in range(iterations):
                t0 = time.perf_counter()
                m = _metrics(algo.train(), policies)
                if m["time/iteration_s"] is None:
                    m["time/iteration_s"] = time.perf_counter() - t0
                history.append(m)
                fh.write(json.dumps(m) + "\n")
                fh.flush()
                logger.info(
                    "rllib iteration %d: %d env steps, episode return %s",
                    len(history), m["env/steps_sampled"] or 0, m["env/episode_return_mean"],
                )  # fmt: skip
                if log_fn is not None:
                    log_fn(m)
        ckpt = out / "checkpoint"
        algo.save_to_path(str(ckpt.resolve()))
        weights = _export_weights(algo, policies, out / "policies")
    finally:
        if algo is not None:
            algo.stop()
        if started:
            ray.shutdown()
    groups = {pid: [a for a, p in mapping.items() if p == pid] for pid in policies}
    return {
        "iterations": iterations,
        "seed": seed,
        "checkpoint": str(ckpt),
        "weights": weights,
        "policies": groups,
        "metrics": history[-1],
        "history": history,
        "out_dir": str(out),
        "ray_version": ray.__version__,
    }


def restore_algorithm(checkpoint: str | os.PathLike[str]) -> Any:
    """Rebuild the RLlib ``Algorithm`` of a :func:`train_rllib` checkpoint (Ray must be up).

    RLlib checkpoints contain pickles: restore only checkpoints you wrote yourself.

    Raises:
        StateError: no checkpoint there.
    """
    p = Path(checkpoint)
    if not (p / "rllib_checkpoint.json").exists():
        raise StateError(f"{str(p)!r} is not an RLlib checkpoint (no rllib_checkpoint.json)")
    from ray.rllib.algorithms.algorithm import Algorithm

    _register_env()
    return Algorithm.from_checkpoint(str(p.resolve()))
