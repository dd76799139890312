"""MAPPO and IPPO: PPO for PettingZoo ParallelEnvs, with a centralised or decentralised critic.

Reads top to bottom (cleanrl style): config, networks, rollout buffer, GAE, update loop.

* MAPPO (``centralised_critic=True``, Yu et al. 2022, "The Surprising Effectiveness of PPO in
  Cooperative Multi-Agent Games"): each agent's critic sees the global state -- ``env.state()``
  when the env implements it, else every agent's observation concatenated -- plus its one-hot
  id. IPPO (``centralised_critic=False``, de Witt et al. 2020): each critic sees only its own
  observation. :mod:`agents.rl.ippo` is this file with the flag off.
* Agents with equal spaces share actor and critic parameters when ``share_parameters``; a
  one-hot agent id is appended to their features. Agents with different spaces (say a
  market maker and a portfolio trader) get separate networks.
* Observations are flattened per agent; market Dict observations go through
  :class:`~agents.rl.networks.MarketEncoder` and per-asset action heads.
* Truncated episodes bootstrap ``r + gamma * V(final state)``; terminated ones do not (see
  ``bootstrap_truncation``: with a clock-less observation a time limit must not be treated as
  terminal). Value targets are normalised with running statistics (MAPPO's ValueNorm) when
  ``value_norm``.

Example:
    >>> from mpe2 import simple_spread_v3
    >>> env_fn = lambda: simple_spread_v3.parallel_env(N=3, max_cycles=25)
    >>> cfg = MAPPOConfig(gamma=0.95, num_envs=16, num_steps=25)  # benchmarks/bench_marl_spread.py
    >>> policy, history = train(env_fn, cfg, seed=0, total_steps=150_000)  # doctest: +SKIP
    >>> obs, _ = env.reset(seed=1); actions = policy.act(obs)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from agents.rl.common import (
    GroupPolicyIO,
    LogFn,
    NetConfig,
    ObsEncoder,
    PolicyNet,
    check_action_space,
    env_action,
    flatten_obs,
    group_agents,
    one_hot_ids,
    raw_action_shape,
    resolve_device,
)
from agents.rl.distributions import SquashedDiagGaussian
from agents.rl.rollout import EnvFn, EnvPool, episode_metrics
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

ALGORITHM = "mappo"


# --------------------------------------------------------------------------- config


@dataclass
class MAPPOConfig:
    """Hyper-parameters of MAPPO / IPPO (defaults follow the MAPPO paper's MPE settings)."""

    centralised_critic: bool = True
    """True: critic on the global state (MAPPO). False: critic on the agent's own obs (IPPO)."""
    share_parameters: bool = True
    """Agents with equal obs and action spaces share one actor and one critic."""
    agent_id_in_obs: bool = True
    """Append a one-hot agent id to the features of agents that share parameters."""
    num_envs: int = 8
    """Env copies stepped in lockstep (inference is batched over them)."""
    num_steps: int = 50
    """Steps per env per rollout; one update uses num_envs * num_steps joint steps."""
    learning_rate: float = 7e-4
    """Adam learning rate (actors and critics)."""
    anneal_lr: bool = False
    """Linearly anneal the learning rate to 0 over training."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    update_epochs: int = 10
    """PPO epochs per rollout."""
    num_minibatches: int = 1
    """Minibatches per epoch (per parameter group)."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    clip_vloss: bool = True
    """Clip the value update around the old value (in normalised units)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    squash_mean_reg: float = 0.0
    """Penalty on the squared pre-tanh mean of squashed-Gaussian policies. Where tanh saturates,
    the env action no longer depends on the mean, so PPO noise can walk it off unchecked (and
    exploration dies); this gives it a pull back toward the unsaturated range."""
    vf_coef: float = 1.0
    """Value loss coefficient."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip."""
    value_norm: bool = True
    """Normalise value targets with running mean/std (critic predicts normalised values)."""
    norm_adv: bool = True
    """Normalise advantages per minibatch."""
    bootstrap_truncation: bool = True
    """At a time-limit truncation add ``gamma * V(final obs)`` to the reward (the correct
    infinite-horizon target). False treats the time limit as terminal, as the MAPPO reference
    code does for MPE; that is only consistent when the observation carries the time left.
    Without a clock (MPE, the market env) the finite-horizon return-to-go is not a function of
    the critic's input, value errors swamp the advantages, and MAPPO/IPPO stayed at random
    level on simple_spread (docs/marl.md). Keep True unless the agents observe the clock."""
    net: NetConfig = field(default_factory=NetConfig)
    """Network sizes and market-encoder options."""
    device: str = "cpu"
    """Torch device for training: "cpu", "cuda", "cuda:N" or "auto" (CUDA when present). The
    returned policy is moved to the CPU (rollouts and saved weights are CPU-side)."""


# --------------------------------------------------------------------------- networks


class ValueNorm(nn.Module):
    """Running mean/variance of value targets (parallel-merge update). O(batch)."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("var", torch.ones(()))
        self.register_buffer("count", torch.tensor(eps))

    def update(self, x: Tensor) -> None:
        b_mean, b_var, n = x.mean(), x.var(unbiased=False), float(x.numel())
        delta = b_mean - self.mean
        tot = self.count + n
        m2 = self.var * self.count + b_var * n + delta**2 * self.count * n / tot
        self.mean.copy_(self.mean + delta * n / tot)
        self.var.copy_(m2 / tot)
        self.count.copy_(tot)

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.var.clamp_min(1e-8).sqrt()

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.var.clamp_min(1e-8).sqrt() + self.mean


class ValueNet(nn.Module):
    """Critic: input space (own obs, or the global state as a Box) + optional id -> V."""

    def __init__(self, in_space: gym.Space, n_ids: int, cfg: NetConfig, own_obs: bool = True):
        super().__init__()
        self.encoder = ObsEncoder(in_space, n_ids, cfg, use_market_layout=own_obs)
        self.head = nn.Linear(self.encoder.out_dim, 1)

    def forward(self, x: Tensor, ids: Tensor | None = None) -> Tensor:
        return self.head(self.encoder(x, ids)[0]).squeeze(-1)


class MAPPOPolicy(GroupPolicyIO, nn.Module):
    """The decentralised actors: ``act`` maps one env's observations to its actions."""

    ALGORITHM = ALGORITHM
    CONFIG_CLS = MAPPOConfig

    def __init__(
        self,
        agents: list[str],
        obs_spaces: dict[str, gym.Space],
        act_spaces: dict[str, gym.Space],
        groups: list[list[str]],
        config: MAPPOConfig,
    ):
        super().__init__()
        self.agents, self.groups, self.config = agents, groups, config
        self.obs_spaces, self.act_spaces = obs_spaces, act_spaces
        self.n_ids = [len(agents) if config.agent_id_in_obs and len(g) > 1 else 0 for g in groups]
        self.actors = nn.ModuleList(
            [
                PolicyNet(obs_spaces[g[0]], act_spaces[g[0]], n, config.net)
                for g, n in zip(groups, self.n_ids, strict=True)
            ]
        )

    def ids(self, gi: int, batch: int) -> Tensor | None:
        """One-hot ids for group ``gi`` (rows: batch-major, agents-minor) or None."""
        return one_hot_ids(self.groups[gi], self.agents, batch) if self.n_ids[gi] else None

    @torch.no_grad()
    def act(self, obs: dict[str, Any], deterministic: bool = True) -> dict[str, Any]:
        """Actions for the agents present in ``obs`` (one env, unbatched)."""
        out: dict[str, Any] = {}
        for gi, group in enumerate(self.groups):
            present = [a for a in group if a in obs]
            if not present:
                continue
            x = torch.as_tensor(
                np.stack([flatten_obs(self.obs_spaces[a], obs[a]) for a in present])
            )
            ids = None
            if self.n_ids[gi]:
                ids = one_hot_ids(present, self.agents, 1)
            dist = self.actors[gi](x, ids)
            raw = dist.mode() if deterministic else dist.sample()
            env_act = dist.to_env(raw).cpu().numpy()
            for k, a in enumerate(present):
                out[a] = env_action(self.act_spaces[a], env_act[k])
        return out

    def reset(self) -> None:
        """No recurrent state."""


# --------------------------------------------------------------------------- rollout buffer


@dataclass
class GroupBuffer:
    """Rollout storage of one parameter group: arrays shaped (T, E, n_agents_in_group, ...)."""

    obs: np.ndarray
    critic_in: np.ndarray
    actions: np.ndarray
    logprobs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    alive: np.ndarray

    @classmethod
    def empty(cls, t: int, e: int, n: int, obs_dim: int, critic_dim: int, act_space: gym.Space):
        shape, dtype = raw_action_shape(act_space)
        z = np.zeros
        return cls(
            obs=z((t, e, n, obs_dim), np.float32),
            critic_in=z((t, e, n, critic_dim), np.float32),
            actions=z((t, e, n, *shape), dtype),
            logprobs=z((t, e, n), np.float32),
            values=z((t, e, n), np.float32),
            rewards=z((t, e, n), np.float32),
            dones=z((t, e, n), np.float32),
            alive=z((t, e, n), np.float32),
        )


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    next_values: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """Generalised advantage estimates over axis 0.

    ``dones[t]`` = the episode ended at step t (no bootstrap from t + 1);
    ``next_values`` = V of the observation after the last step. O(T * rest).
    """
    adv = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        nv = next_values if t == rewards.shape[0] - 1 else values[t + 1]
        nonterm = 1.0 - dones[t]
        delta = rewards[t] + gamma * nv * nonterm - values[t]
        last = delta + gamma * lam * nonterm * last
        adv[t] = last
    return adv


# --------------------------------------------------------------------------- training


class _Trainer:
    """Holds the pool, networks, optimiser and buffers of one training run."""

    def __init__(self, env_fn: EnvFn, cfg: MAPPOConfig, seed: int):
        self.cfg = cfg
        self.pool = EnvPool(env_fn, cfg.num_envs, seed)
        pool = self.pool
        for a in pool.agents:
            check_action_space(
                pool.act_spaces[a],
                (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete),
                "MAPPO",
            )
        self.agents = pool.agents
        self.groups = group_agents(
            self.agents, pool.obs_spaces, pool.act_spaces, cfg.share_parameters
        )
        self.policy = MAPPOPolicy(self.agents, pool.obs_spaces, pool.act_spaces, self.groups, cfg)
        pool.reset()
        self.state_dim = pool.state_dim
        # centralised: every critic sees the global state (+ id); IPPO: the agent's own obs
        central_ids = len(self.agents) if cfg.agent_id_in_obs else 0
        self.critic_ids = [central_ids if cfg.centralised_critic else n for n in self.policy.n_ids]
        state_space = gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32)
        self.critics = nn.ModuleList(
            [
                ValueNet(
                    state_space if cfg.centralised_critic else pool.obs_spaces[g[0]],
                    self.critic_ids[gi],
                    cfg.net,
                    own_obs=not cfg.centralised_critic,
                )
                for gi, g in enumerate(self.groups)
            ]
        )
        self.value_norms = nn.ModuleList([ValueNorm() for _ in self.groups])
        params = list(self.policy.parameters()) + list(self.critics.parameters())
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)

    # ----- helpers
    def critic_input(self, gi: int, obs: dict[str, np.ndarray], state: np.ndarray) -> np.ndarray:
        """(E, n_g, d) critic inputs of group gi."""
        g = self.groups[gi]
        if self.cfg.centralised_critic:
            return np.repeat(state[:, None, :], len(g), axis=1)
        return np.stack([obs[a] for a in g], axis=1)

    def values(self, gi: int, critic_in: np.ndarray) -> np.ndarray:
        """Denormalised values (E, n_g) for critic inputs (E, n_g, d)."""
        e, n, d = critic_in.shape
        ids = one_hot_ids(self.groups[gi], self.agents, e) if self.critic_ids[gi] else None
        v = self.critics[gi](torch.as_tensor(critic_in.reshape(e * n, d)), ids)
        if self.cfg.value_norm:
            v = self.value_norms[gi].denormalize(v)
        return v.reshape(e, n).cpu().numpy()

    # ----- rollout
    @torch.no_grad()
    def rollout(self) -> tuple[list[GroupBuffer], list[np.ndarray], list[dict[str, float]]]:
        cfg, pool = self.cfg, self.pool
        t_len, e = cfg.num_steps, cfg.num_envs
        bufs = [
            GroupBuffer.empty(
                t_len,
                e,
                len(g),
                pool.obs_dims[g[0]],
                self.state_dim if cfg.centralised_critic else pool.obs_dims[g[0]],
                pool.act_spaces[g[0]],
            )
            for g in self.groups
        ]
        episodes: list[dict[str, float]] = []
        for t in range(t_len):
            actions: dict[str, list[Any]] = {}
            for gi, g in enumerate(self.groups):
                b = bufs[gi]
                obs = np.stack([pool.obs[a] for a in g], axis=1)  # (E, n, d)
                b.obs[t] = obs
                b.alive[t] = np.stack([pool.alive[a] for a in g], axis=1)
                b.critic_in[t] = self.critic_input(gi, pool.obs, pool.state)
                b.values[t] = self.values(gi, b.critic_in[t])
                dist = self.policy.actors[gi](
                    torch.as_tensor(obs.reshape(e * len(g), -1)), self.policy.ids(gi, e)
                )
                raw = dist.sample()
                b.logprobs[t] = dist.log_prob(raw).reshape(e, len(g)).cpu().numpy()
                b.actions[t] = raw.reshape(e, len(g), *b.actions.shape[3:]).cpu().numpy()
                env_act = dist.to_env(raw).cpu().numpy().reshape(e, len(g), -1)
                for k, a in enumerate(g):
                    actions[a] = [env_action(pool.act_spaces[a], env_act[i, k]) for i in range(e)]
            step = pool.step(actions)
            episodes.extend(step.episodes)
            for gi, g in enumerate(self.groups):
                b = bufs[gi]
                rew = np.stack([step.rewards[a] for a in g], axis=1)
                trunc = np.stack([step.truncated[a] for a in g], axis=1)
                term = np.stack([step.terminated[a] for a in g], axis=1)
                if cfg.bootstrap_truncation and trunc.any():  # bootstrap a cut episode
                    v_final = self.values(
                        gi, self.critic_input(gi, step.final_obs, step.final_state)
                    )
                    rew = rew + cfg.gamma * v_final * trunc
                b.rewards[t] = rew
                b.dones[t] = (trunc | term | (b.alive[t] == 0)).astype(np.float32)
        next_values = [
            self.values(gi, self.critic_input(gi, pool.obs, pool.state))
            for gi in range(len(self.groups))
        ]
        return bufs, next_values, episodes

    # ----- update
    def update(self, bufs: list[GroupBuffer], next_values: list[np.ndarray]) -> dict[str, float]:
        cfg = self.cfg
        stats: dict[str, list[float]] = {
            k: [] for k in ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")
        }
        batches = []
        for gi, b in enumerate(bufs):
            adv = compute_gae(
                b.rewards, b.values, b.dones, next_values[gi], cfg.gamma, cfg.gae_lambda
            )
            ret = adv + b.values
            sel = b.alive.reshape(-1) > 0
            t, e, n = b.alive.shape
            ids = (
                one_hot_ids(self.groups[gi], self.agents, t * e)
                if self.policy.n_ids[gi] or self.critic_ids[gi]
                else None
            )
            ret_t = torch.as_tensor(ret.reshape(-1)[sel])
            if cfg.value_norm:
                self.value_norms[gi].update(ret_t)
            old_v = torch.as_tensor(b.values.reshape(-1)[sel])
            batches.append(
                dict(
                    obs=torch.as_tensor(b.obs.reshape(t * e * n, -1)[sel]),
                    critic_in=torch.as_tensor(b.critic_in.reshape(t * e * n, -1)[sel]),
                    ids=ids[torch.as_tensor(sel)] if ids is not None else None,
                    actions=torch.as_tensor(
                        b.actions.reshape(t * e * n, *b.actions.shape[3:])[sel]
                    ),
                    logprobs=torch.as_tensor(b.logprobs.reshape(-1)[sel]),
                    adv=torch.as_tensor(adv.reshape(-1)[sel]),
                    ret=self.value_norms[gi].normalize(ret_t) if cfg.value_norm else ret_t,
                    old_v=self.value_norms[gi].normalize(old_v) if cfg.value_norm else old_v,
                )
            )
        for _ in range(cfg.update_epochs):
            perms = [torch.randperm(len(bt["adv"])) for bt in batches]
            for mb in range(cfg.num_minibatches):
                loss = torch.zeros(())
                for gi, bt in enumerate(batches):
                    n = len(bt["adv"])
                    if n == 0:
                        continue
                    size = (n + cfg.num_minibatches - 1) // cfg.num_minibatches
                    idx = perms[gi][mb * size : (mb + 1) * size]
                    if len(idx) == 0:
                        continue
                    ids = bt["ids"][idx] if bt["ids"] is not None else None
                    actor_ids = ids if self.policy.n_ids[gi] else None
                    critic_ids = ids if self.critic_ids[gi] else None
                    dist = self.policy.actors[gi](bt["obs"][idx], actor_ids)
                    logp = dist.log_prob(bt["actions"][idx])
                    log_ratio = logp - bt["logprobs"][idx]
                    ratio = log_ratio.exp()
                    adv = bt["adv"][idx]
                    if cfg.norm_adv and len(idx) > 1:
                        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    pg = torch.max(
                        -adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
                    ).mean()
                    v = self.critics[gi](bt["critic_in"][idx], critic_ids)
                    ret = bt["ret"][idx]
                    v_loss = (v - ret) ** 2
                    if cfg.clip_vloss:
                        old = bt["old_v"][idx]
                        v_clip = old + (v - old).clamp(-cfg.clip_coef, cfg.clip_coef)
                        v_loss = torch.max(v_loss, (v_clip - ret) ** 2)
                    v_loss = 0.5 * v_loss.mean()
                    ent = dist.entropy().mean()
                    loss = loss + pg + cfg.vf_coef * v_loss - cfg.ent_coef * ent
                    if cfg.squash_mean_reg and isinstance(dist, SquashedDiagGaussian):
                        loss = loss + cfg.squash_mean_reg * dist.mode().pow(2).mean()
                    with torch.no_grad():
                        stats["policy_loss"].append(float(pg.detach()))
                        stats["value_loss"].append(float(v_loss.detach()))
                        stats["entropy"].append(float(ent.detach()))
                        stats["approx_kl"].append(float(((ratio - 1) - log_ratio).mean().detach()))
                        stats["clipfrac"].append(
                            float(((ratio.detach() - 1.0).abs() > cfg.clip_coef).float().mean())
                        )
                if loss.requires_grad:
                    self.optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(
                        [p for grp in self.optimizer.param_groups for p in grp["params"]],
                        cfg.max_grad_norm,
                    )
                    self.optimizer.step()
        return {f"losses/{k}": float(np.mean(v)) for k, v in stats.items() if v}


def train(
    env_fn: EnvFn,
    config: MAPPOConfig | None = None,
    seed: int = 0,
    total_steps: int = 100_000,
    log_fn: LogFn | None = None,
) -> tuple[MAPPOPolicy, list[dict[str, float]]]:
    """Train MAPPO (or IPPO, with ``config.centralised_critic=False``).

    Args:
        env_fn: Returns a fresh PettingZoo ParallelEnv (called ``config.num_envs`` times).
        config: Hyper-parameters (default :class:`MAPPOConfig`).
        seed: Seeds torch (inside ``fork_rng``: the caller's RNG state is untouched) and env
            resets. Same seed, same thread count -> identical parameters.
        total_steps: Joint env steps (summed over env copies); rounded up to whole rollouts.
        log_fn: Called with each iteration's metrics dict.

    Returns:
        (policy, history): the trained actors and one metrics dict per iteration
        (``global_step``, ``charts/*``, ``losses/*``).
    """
    cfg = config if config is not None else MAPPOConfig()
    if cfg.num_steps < 1 or cfg.update_epochs < 1 or cfg.num_minibatches < 1:
        raise ConfigError(
            f"num_steps={cfg.num_steps}, update_epochs={cfg.update_epochs}, "
            f"num_minibatches={cfg.num_minibatches}: all must be >= 1"
        )
    dev = resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[]), torch.device(dev):
        torch.manual_seed(seed)
        tr = _Trainer(env_fn, cfg, seed)
        per_iter = cfg.num_envs * cfg.num_steps
        n_iters = max(1, -(-total_steps // per_iter))
        history: list[dict[str, float]] = []
        start = time.perf_counter()
        for it in range(n_iters):
            if cfg.anneal_lr:
                for grp in tr.optimizer.param_groups:
                    grp["lr"] = cfg.learning_rate * (1.0 - it / n_iters)
            bufs, next_values, episodes = tr.rollout()
            metrics: dict[str, float] = {"global_step": float((it + 1) * per_iter)}
            metrics.update(episode_metrics(episodes, tr.agents))
            metrics.update(tr.update(bufs, next_values))
            metrics["charts/learning_rate"] = tr.optimizer.param_groups[0]["lr"]
            metrics["charts/sps"] = (it + 1) * per_iter / (time.perf_counter() - start)
            history.append(metrics)
            if log_fn is not None:
                log_fn(metrics)
        tr.pool.close()
        logger.info("MAPPO finished %d iterations", n_iters)
        return tr.policy.to("cpu"), history
