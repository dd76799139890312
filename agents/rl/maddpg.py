"""MADDPG: deterministic actors with centralised critics (Lowe et al. 2017, "Multi-Agent
Actor-Critic for Mixed Cooperative-Competitive Environments").

Reads top to bottom: config, networks, replay buffer, update, training loop.

* Continuous (Box) actions only. Each actor maps its own observation to a tanh action in
  [-1, 1] (stored normalised; the env gets it rescaled to the Box bounds).
* Each agent's critic ``Q_i(s, a_1, ..., a_N)`` sees the global state -- ``env.state()`` when the
  env implements it, else every observation concatenated -- and every agent's action, so it
  works for cooperative and competitive rewards alike (each agent has its own reward).
* Target actors and critics follow by Polyak averaging; exploration is Gaussian noise on the
  normalised action; truncation bootstraps, termination does not.
* Agents with equal spaces share actor and critic parameters when ``share_parameters`` (a
  one-hot id tells them apart), which batches their updates.

Example:
    >>> policy, history = train(env_fn, MADDPGConfig(), seed=0, total_steps=50_000)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
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
    check_action_space,
    env_action,
    flatten_obs,
    group_agents,
    one_hot_ids,
    polyak,
    resolve_device,
)
from agents.rl.rollout import EnvFn, EnvPool, episode_metrics
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

ALGORITHM = "maddpg"


# --------------------------------------------------------------------------- config


@dataclass
class MADDPGConfig:
    """Hyper-parameters of MADDPG."""

    share_parameters: bool = True
    """Agents with equal obs and action spaces share one actor and one critic."""
    agent_id_in_obs: bool = True
    """Append a one-hot agent id to the features of agents that share parameters."""
    num_envs: int = 1
    """Env copies stepped in lockstep."""
    buffer_size: int = 200_000
    """Replay capacity in joint transitions."""
    batch_size: int = 512
    """Minibatch size (joint transitions) per gradient step."""
    learning_starts: int = 2_000
    """Joint env steps of uniform random actions before learning."""
    train_frequency: int = 25
    """Joint env steps between update rounds."""
    gradient_steps: int = 2
    """Gradient steps per update round."""
    actor_lr: float = 1e-3
    """Adam learning rate of the actors."""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""
    gamma: float = 0.95
    """Discount factor."""
    tau: float = 0.01
    """Polyak coefficient of the target networks."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to normalised actions in [-1, 1]."""
    action_reg: float = 1e-3
    """Penalty on squared pre-tanh actor outputs (keeps tanh out of saturation)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip of actors and critics."""
    log_interval: int = 1_000
    """Joint env steps between metrics records."""
    net: NetConfig = field(default_factory=lambda: NetConfig(activation="relu"))
    """Network sizes and market-encoder options."""
    device: str = "cpu"
    """Torch device for training: "cpu", "cuda", "cuda:N" or "auto" (CUDA when present). The
    returned policy is moved to the CPU (rollouts and saved weights are CPU-side)."""


# --------------------------------------------------------------------------- networks


class Actor(nn.Module):
    """Observation (+ id) -> pre-tanh action (B, act_dim); the action is ``tanh`` of it."""

    def __init__(self, obs_space: gym.Space, act_dim: int, n_ids: int, cfg: NetConfig):
        super().__init__()
        self.encoder = ObsEncoder(obs_space, n_ids, cfg)
        self.out = nn.Linear(self.encoder.out_dim, act_dim)
        nn.init.uniform_(self.out.weight, -3e-3, 3e-3)
        nn.init.zeros_(self.out.bias)

    def forward(self, obs: Tensor, ids: Tensor | None = None) -> Tensor:
        return self.out(self.encoder(obs, ids)[0])


class Critic(nn.Module):
    """(global state, joint normalised action, id) -> Q."""

    def __init__(self, in_dim: int, n_ids: int, cfg: NetConfig):
        super().__init__()
        act = nn.ReLU if cfg.activation == "relu" else nn.Tanh
        layers: list[nn.Module] = []
        d = in_dim + n_ids
        for h in cfg.hidden_sizes:
            layers += [nn.Linear(d, h), act()]
            d = h
        layers.append(nn.Linear(d, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


class MADDPGPolicy(GroupPolicyIO, nn.Module):
    """The decentralised deterministic actors."""

    ALGORITHM = ALGORITHM
    CONFIG_CLS = MADDPGConfig

    def __init__(
        self,
        agents: list[str],
        obs_spaces: dict[str, gym.Space],
        act_spaces: dict[str, gym.Space],
        groups: list[list[str]],
        config: MADDPGConfig,
    ):
        super().__init__()
        self.agents, self.groups, self.config = agents, groups, config
        self.obs_spaces, self.act_spaces = obs_spaces, act_spaces
        self.n_ids = [len(agents) if config.agent_id_in_obs and len(g) > 1 else 0 for g in groups]
        self.act_dims = {a: int(np.prod(act_spaces[a].shape)) for a in agents}
        self.actors = nn.ModuleList(
            [
                Actor(obs_spaces[g[0]], self.act_dims[g[0]], n, config.net)
                for g, n in zip(groups, self.n_ids, strict=True)
            ]
        )

    def ids(self, gi: int, members: list[str], batch: int) -> Tensor | None:
        return one_hot_ids(members, self.agents, batch) if self.n_ids[gi] else None

    def to_env(self, agent: str, a_norm: np.ndarray) -> Any:
        """Rescale a normalised action in [-1, 1] to the agent's Box."""
        s = self.act_spaces[agent]
        return env_action(
            s, s.low.reshape(-1) + (a_norm + 1.0) * 0.5 * (s.high - s.low).reshape(-1)
        )

    @torch.no_grad()
    def normalised_actions(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Batched deterministic actions in [-1, 1]: obs {agent: (B, obs_dim)} -> (B, act_dim)."""
        out = {}
        for gi, g in enumerate(self.groups):
            present = [a for a in g if a in obs]
            if not present:
                continue
            b = len(obs[present[0]])
            x = torch.as_tensor(
                np.stack([obs[a] for a in present], 1).reshape(b * len(present), -1)
            )
            a = torch.tanh(self.actors[gi](x, self.ids(gi, present, b))).reshape(
                b, len(present), -1
            )
            for k, ag in enumerate(present):
                out[ag] = a[:, k].cpu().numpy()
        return out

    def act(self, obs: dict[str, Any], deterministic: bool = True) -> dict[str, Any]:
        """Deterministic actions (MADDPG actors are deterministic; the flag is ignored)."""
        flat = {a: flatten_obs(self.obs_spaces[a], o)[None] for a, o in obs.items()}
        acts = self.normalised_actions(flat)
        return {a: self.to_env(a, acts[a][0]) for a in obs}

    def reset(self) -> None:
        """No recurrent state."""


# --------------------------------------------------------------------------- replay buffer


class ReplayBuffer:
    """Ring buffer of joint transitions (numpy arrays; sampling with a numpy Generator)."""

    def __init__(
        self, capacity: int, agents: list[str], obs_dims: dict, act_dims: dict, state_dim: int
    ):
        self.capacity, self.agents = capacity, agents
        z = np.zeros
        self.state = z((capacity, state_dim), np.float32)
        self.next_state = z((capacity, state_dim), np.float32)
        self.obs = {a: z((capacity, obs_dims[a]), np.float32) for a in agents}
        self.next_obs = {a: z((capacity, obs_dims[a]), np.float32) for a in agents}
        self.actions = {a: z((capacity, act_dims[a]), np.float32) for a in agents}
        self.rewards = {a: z(capacity, np.float32) for a in agents}
        self.terminated = {a: z(capacity, np.float32) for a in agents}
        self.alive = {a: z(capacity, np.float32) for a in agents}
        self.next_alive = {a: z(capacity, np.float32) for a in agents}
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, **rows: Any) -> None:
        """Append E rows; keyword arrays are (E, ...) or {agent: (E, ...)}."""
        e = len(rows["state"])
        idx = (self.pos + np.arange(e)) % self.capacity
        for key, val in rows.items():
            store = getattr(self, key)
            if isinstance(store, dict):
                for a in self.agents:
                    store[a][idx] = val[a]
            else:
                store[idx] = val
        self.full = self.full or self.pos + e >= self.capacity
        self.pos = (self.pos + e) % self.capacity

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, Any]:
        """A batch of tensors (uniform with replacement). O(batch * row size)."""
        idx = rng.integers(0, len(self), batch)
        out: dict[str, Any] = {}
        for key in (
            "state",
            "next_state",
            "obs",
            "next_obs",
            "actions",
            "rewards",
            "terminated",
            "alive",
            "next_alive",
        ):
            store = getattr(self, key)
            if isinstance(store, dict):
                out[key] = {a: torch.as_tensor(store[a][idx]) for a in self.agents}
            else:
                out[key] = torch.as_tensor(store[idx])
        return out


# --------------------------------------------------------------------------- training


class _Trainer:
    def __init__(self, env_fn: EnvFn, cfg: MADDPGConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.pool = EnvPool(env_fn, cfg.num_envs, seed)
        pool = self.pool
        for a in pool.agents:
            check_action_space(pool.act_spaces[a], (gym.spaces.Box,), "MADDPG")
        self.agents = pool.agents
        self.groups = group_agents(
            self.agents, pool.obs_spaces, pool.act_spaces, cfg.share_parameters
        )
        self.policy = MADDPGPolicy(self.agents, pool.obs_spaces, pool.act_spaces, self.groups, cfg)
        self.target_policy = copy.deepcopy(self.policy)
        pool.reset()
        self.act_dims = self.policy.act_dims
        joint = sum(self.act_dims.values())
        self.critic_ids = [
            len(self.agents) if cfg.agent_id_in_obs and len(g) > 1 else 0 for g in self.groups
        ]
        self.critics = nn.ModuleList(
            [Critic(pool.state_dim + joint, n, cfg.net) for n in self.critic_ids]
        )
        self.target_critics = copy.deepcopy(self.critics)
        self.actor_opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.buffer = ReplayBuffer(
            cfg.buffer_size, self.agents, pool.obs_dims, self.act_dims, pool.state_dim
        )

    def explore(self, global_step: int) -> dict[str, np.ndarray]:
        """Normalised exploratory actions (E, act_dim) per agent."""
        e = self.cfg.num_envs
        if global_step < self.cfg.learning_starts:
            return {
                a: self.rng.uniform(-1, 1, (e, self.act_dims[a])).astype(np.float32)
                for a in self.agents
            }
        acts = self.policy.normalised_actions(self.pool.obs)
        noise = {
            a: self.rng.normal(0.0, self.cfg.exploration_noise, acts[a].shape) for a in self.agents
        }
        return {a: np.clip(acts[a] + noise[a], -1.0, 1.0).astype(np.float32) for a in self.agents}

    def critic_in(self, gi: int, state: Tensor, joint: list[Tensor]) -> Tensor:
        """Rows (B * n_g, d): state and joint action, repeated per member, plus ids."""
        g = self.groups[gi]
        b = state.shape[0]
        x = torch.cat([state, *joint], dim=-1)
        x = x.unsqueeze(1).expand(b, len(g), x.shape[-1]).reshape(b * len(g), -1)
        if self.critic_ids[gi]:
            x = torch.cat([x, one_hot_ids(g, self.agents, b)], dim=-1)
        return x

    def actor_out(self, policy: MADDPGPolicy, gi: int, obs: dict[str, Tensor]) -> Tensor:
        """Pre-tanh outputs (B, n_g, act_dim) of group gi."""
        g = self.groups[gi]
        b = obs[g[0]].shape[0]
        x = torch.stack([obs[a] for a in g], 1).reshape(b * len(g), -1)
        return policy.actors[gi](x, policy.ids(gi, g, b)).reshape(b, len(g), -1)

    def update(self) -> dict[str, float]:
        cfg = self.cfg
        batch = self.buffer.sample(cfg.batch_size, self.rng)
        b = cfg.batch_size
        with torch.no_grad():
            next_act: dict[str, Tensor] = {}
            for gi, g in enumerate(self.groups):
                out = torch.tanh(self.actor_out(self.target_policy, gi, batch["next_obs"]))
                for k, a in enumerate(g):
                    next_act[a] = out[:, k] * batch["next_alive"][a].unsqueeze(-1)
        qf_losses, actor_losses, q_vals = [], [], []
        # critics
        critic_loss = torch.zeros(())
        for gi, g in enumerate(self.groups):
            with torch.no_grad():
                x_next = self.critic_in(gi, batch["next_state"], [next_act[a] for a in self.agents])
                q_next = self.target_critics[gi](x_next).reshape(b, len(g))
                r = torch.stack([batch["rewards"][a] for a in g], 1)
                term = torch.stack([batch["terminated"][a] for a in g], 1)
                y = r + cfg.gamma * (1.0 - term) * q_next
            x = self.critic_in(gi, batch["state"], [batch["actions"][a] for a in self.agents])
            q = self.critics[gi](x).reshape(b, len(g))
            alive = torch.stack([batch["alive"][a] for a in g], 1)
            loss = (((q - y) ** 2) * alive).sum() / alive.sum().clamp_min(1.0)
            critic_loss = critic_loss + loss
            qf_losses.append(float(loss.detach()))
            q_vals.append(float((q.detach() * alive).sum() / alive.sum().clamp_min(1.0)))
        self.critic_opt.zero_grad()
        critic_loss.backward()
        nn.utils.clip_grad_norm_(self.critics.parameters(), cfg.max_grad_norm)
        self.critic_opt.step()
        # actors: replace each member's action by its current policy action
        actor_loss = torch.zeros(())
        for gi, g in enumerate(self.groups):
            pre = self.actor_out(self.policy, gi, batch["obs"])  # (B, n_g, act)
            new = torch.tanh(pre)
            rows = []
            for k, a in enumerate(g):
                joint = [
                    new[:, k] if other == a else batch["actions"][other] for other in self.agents
                ]
                rows.append(torch.cat([batch["state"], *joint], dim=-1))
            x = torch.stack(rows, 1).reshape(b * len(g), -1)
            if self.critic_ids[gi]:
                x = torch.cat([x, one_hot_ids(g, self.agents, b)], dim=-1)
            q = self.critics[gi](x).reshape(b, len(g))
            alive = torch.stack([batch["alive"][a] for a in g], 1)
            denom = alive.sum().clamp_min(1.0)
            loss = (
                -(q * alive).sum() / denom
                + cfg.action_reg * ((pre**2).mean(-1) * alive).sum() / denom
            )
            actor_loss = actor_loss + loss
            actor_losses.append(float(loss.detach()))
        self.actor_opt.zero_grad()
        actor_loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm)
        self.actor_opt.step()
        polyak(self.target_policy, self.policy, cfg.tau)
        polyak(self.target_critics, self.critics, cfg.tau)
        return {
            "losses/qf_loss": float(np.mean(qf_losses)),
            "losses/actor_loss": float(np.mean(actor_losses)),
            "losses/qf_values": float(np.mean(q_vals)),
        }


def train(
    env_fn: EnvFn,
    config: MADDPGConfig | None = None,
    seed: int = 0,
    total_steps: int = 100_000,
    log_fn: LogFn | None = None,
) -> tuple[MADDPGPolicy, list[dict[str, float]]]:
    """Train MADDPG.

    Args:
        env_fn: Returns a fresh PettingZoo ParallelEnv with Box action spaces.
        config: Hyper-parameters (default :class:`MADDPGConfig`).
        seed: Seeds torch (inside ``fork_rng``), the numpy Generator (exploration, replay
            sampling) and env resets.
        total_steps: Joint env steps (summed over env copies).
        log_fn: Called with each metrics record (every ``log_interval`` steps).

    Returns:
        (policy, history) with ``global_step``, ``charts/*`` and ``losses/*`` entries.
    """
    cfg = config if config is not None else MADDPGConfig()
    if cfg.batch_size < 1 or cfg.train_frequency < 1 or not 0.0 < cfg.tau <= 1.0:
        raise ConfigError(
            f"batch_size={cfg.batch_size}, train_frequency={cfg.train_frequency} must be >= 1 "
            f"and tau={cfg.tau} in (0, 1]"
        )
    dev = resolve_device(cfg.device)
    with torch.random.fork_rng(devices=[]), torch.device(dev):
        torch.manual_seed(seed)
        tr = _Trainer(env_fn, cfg, seed)
        pool = tr.pool
        history: list[dict[str, float]] = []
        episodes: list[dict[str, float]] = []
        losses: dict[str, float] = {}
        start = time.perf_counter()
        step, next_train, next_log = 0, cfg.learning_starts, cfg.log_interval
        while step < total_steps:
            acts = tr.explore(step)
            obs, alive, state = (
                {a: v.copy() for a, v in pool.obs.items()},
                {a: v.astype(np.float32) for a, v in pool.alive.items()},
                pool.state.copy(),
            )
            env_acts = {
                a: [tr.policy.to_env(a, acts[a][i]) for i in range(cfg.num_envs)] for a in tr.agents
            }
            out = pool.step(env_acts)
            next_alive = {
                a: (alive[a] * (1.0 - out.terminated[a])).astype(np.float32) for a in tr.agents
            }
            tr.buffer.add(
                state=state,
                next_state=out.final_state,
                obs=obs,
                next_obs=out.final_obs,
                actions=acts,
                rewards=out.rewards,
                terminated={a: out.terminated[a].astype(np.float32) for a in tr.agents},
                alive=alive,
                next_alive=next_alive,
            )
            episodes.extend(out.episodes)
            step += cfg.num_envs
            if step >= next_train and len(tr.buffer) >= cfg.batch_size:
                for _ in range(cfg.gradient_steps):
                    losses = tr.update()
                next_train = step + cfg.train_frequency
            if step >= next_log or step >= total_steps:
                metrics = {
                    "global_step": float(step),
                    **episode_metrics(episodes, tr.agents),
                    **losses,
                }
                metrics["charts/sps"] = step / (time.perf_counter() - start)
                history.append(metrics)
                if log_fn is not None:
                    log_fn(metrics)
                episodes = []
                next_log = step + cfg.log_interval
        pool.close()
        return tr.policy.to("cpu"), history
