"""QMIX: monotonic value factorisation for cooperative teams (Rashid et al. 2018, "QMIX:
Monotonic Value Function Factorisation for Deep Multi-Agent Reinforcement Learning").

Reads top to bottom: config, agent Q networks, mixing hypernetwork, sequence replay, update,
training loop.

* Discrete or MultiDiscrete actions. The team reward is the sum of the agents' rewards.
* Each agent has a utility network ``Q_i(o_i, a_i)`` (shared among agents with equal spaces,
  with a one-hot id; GRU when ``recurrent``). A MultiDiscrete action is factorised inside the
  agent: ``Q_i(o, a) = sum_d Q_{i,d}(o, a_d)`` (so the greedy action is an argmax per
  sub-action and the market's ``MultiDiscrete([3] * A)`` stays tractable; dead market slots
  always "hold" and contribute 0).
* The mixer combines the chosen utilities with state-conditioned non-negative weights
  (hypernetworks of the global state: ``env.state()`` when implemented, else all
  observations concatenated), so ``argmax`` of the team value is the per-agent argmax.
* Double-Q targets from a hard-updated target network; epsilon-greedy exploration annealed
  linearly; truncation bootstraps, termination does not.
* Replay stores chunks of at most ``seq_len`` consecutive steps of one episode; recurrent
  states start at zero at each chunk start (a common simplification of stored states).

Example:
    >>> env_fn = lambda: simple_spread_v3.parallel_env(N=3, continuous_actions=False)
    >>> policy, history = train(env_fn, QMIXConfig(), seed=0, total_steps=50_000)  # doctest: +SKIP
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
    resolve_device,
)
from agents.rl.networks import DiscreteAssetHead
from agents.rl.rollout import EnvFn, EnvPool, episode_metrics
from marketsim.errors import ConfigError

logger = logging.getLogger(__name__)

ALGORITHM = "qmix"


# --------------------------------------------------------------------------- config


@dataclass
class QMIXConfig:
    """Hyper-parameters of QMIX (defaults close to PyMARL's, scaled down for small CPUs)."""

    share_parameters: bool = True
    """Agents with equal obs and action spaces share one utility network."""
    agent_id_in_obs: bool = True
    """Append a one-hot agent id to the features of agents that share parameters."""
    recurrent: bool = False
    """GRU agent networks (hidden state carried within an episode, reset per replay chunk)."""
    rnn_hidden: int = 64
    """GRU hidden size when ``recurrent``."""
    num_envs: int = 1
    """Env copies stepped in lockstep."""
    buffer_chunks: int = 5_000
    """Replay capacity in chunks of at most ``seq_len`` steps."""
    seq_len: int = 25
    """Maximum steps per replay chunk (episodes longer than this are split)."""
    batch_size: int = 32
    """Chunks per gradient step."""
    learning_starts: int = 1_000
    """Joint env steps before learning."""
    train_frequency: int = 25
    """Joint env steps between update rounds."""
    gradient_steps: int = 1
    """Gradient steps per update round."""
    learning_rate: float = 5e-4
    """Adam learning rate (agent networks and mixer)."""
    gamma: float = 0.99
    """Discount factor."""
    epsilon_start: float = 1.0
    """Initial exploration probability (per sub-action)."""
    epsilon_end: float = 0.05
    """Final exploration probability."""
    epsilon_anneal_steps: int = 50_000
    """Joint env steps over which epsilon falls linearly."""
    target_update_interval: int = 200
    """Gradient steps between hard target-network updates."""
    double_q: bool = True
    """Pick target actions with the online network (Double Q-learning)."""
    mixing_embed_dim: int = 32
    """Width of the mixing network."""
    hypernet_hidden: int = 64
    """Hidden size of the hypernetworks that produce the mixing weights."""
    max_grad_norm: float = 10.0
    """Gradient-norm clip."""
    log_interval: int = 1_000
    """Joint env steps between metrics records."""
    net: NetConfig = field(default_factory=lambda: NetConfig(activation="relu"))
    """Network sizes and market-encoder options."""
    device: str = "cpu"
    """Torch device for training: "cpu", "cuda", "cuda:N" or "auto" (CUDA when present). The
    returned policy is moved to the CPU (rollouts and saved weights are CPU-side)."""


# --------------------------------------------------------------------------- networks


def _nvec(space: gym.Space) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return np.array([space.n])
    return np.asarray(space.nvec).reshape(-1)


class AgentQNet(nn.Module):
    """Observation (+ id, + hidden) -> per-sub-action utilities (B, D, K).

    Invalid choices (MultiDiscrete padding) get ``-inf``-like values; dead market slots get 0
    for every choice and are forced to ``hold`` by :meth:`greedy`.
    """

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, n_ids: int, cfg: QMIXConfig):
        super().__init__()
        self.encoder = ObsEncoder(obs_space, n_ids, cfg.net)
        d = self.encoder.out_dim
        self.rnn = nn.GRUCell(d, cfg.rnn_hidden) if cfg.recurrent else None
        h = cfg.rnn_hidden if cfg.recurrent else d
        self.hidden_dim = h
        nvec = _nvec(act_space)
        k = int(nvec.max())
        self.register_buffer("valid", torch.arange(k)[None, :] < torch.as_tensor(nvec)[:, None])
        self.market_head: DiscreteAssetHead | None = None
        if (
            self.encoder.market is not None
            and cfg.net.market_heads
            and isinstance(act_space, gym.spaces.MultiDiscrete)
            and act_space.shape == (self.encoder.market.layout.n_assets,)
        ):
            self.market_head = DiscreteAssetHead(self.encoder.market.token_dim, h, k)
        else:
            self.q = nn.Linear(h, len(nvec) * k)

    def forward(
        self, obs: Tensor, ids: Tensor | None, hidden: Tensor | None
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Return (q (B, D, K), new hidden or None, live (B, D) bool or None)."""
        feats, enc = self.encoder(obs, ids)
        if self.rnn is not None:
            hidden = self.rnn(
                feats,
                hidden if hidden is not None else feats.new_zeros(len(feats), self.hidden_dim),
            )
            feats = hidden
        if self.market_head is not None:
            enc = enc._replace(global_features=feats)
            return self.market_head.q_values(enc), hidden, enc.live
        q = self.q(feats).reshape(len(feats), *self.valid.shape)
        return q.masked_fill(~self.valid, -1e9), hidden, None

    def greedy(self, q: Tensor, live: Tensor | None) -> Tensor:
        """Argmax per sub-action (B, D); dead market slots take ``hold`` (1)."""
        idx = q.argmax(-1)
        if live is not None and self.market_head is not None:
            idx = torch.where(live, idx, torch.full_like(idx, self.market_head.dead_action))
        return idx

    @staticmethod
    def chosen(q: Tensor, actions: Tensor) -> Tensor:
        """Agent utility ``sum_d q[d, a_d]`` (B,)."""
        return q.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1).sum(-1)


class QMixer(nn.Module):
    """Monotonic mixer: ``Q_tot = elu(q W1(s) + b1(s)) W2(s) + b2(s)`` with ``W >= 0``."""

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int, hypernet_hidden: int):
        super().__init__()
        self.n, self.e = n_agents, embed_dim
        self.hyper_w1 = nn.Sequential(
            nn.Linear(state_dim, hypernet_hidden),
            nn.ReLU(),
            nn.Linear(hypernet_hidden, n_agents * embed_dim),
        )
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_w2 = nn.Sequential(
            nn.Linear(state_dim, hypernet_hidden), nn.ReLU(), nn.Linear(hypernet_hidden, embed_dim)
        )
        self.hyper_b2 = nn.Sequential(
            nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1)
        )

    def forward(self, qs: Tensor, state: Tensor) -> Tensor:
        """qs (B, n_agents), state (B, state_dim) -> Q_tot (B,). O(B * n * embed)."""
        b = qs.shape[0]
        w1 = self.hyper_w1(state).abs().reshape(b, self.n, self.e)
        hidden = torch.nn.functional.elu(
            torch.bmm(qs.unsqueeze(1), w1) + self.hyper_b1(state).unsqueeze(1)
        )
        w2 = self.hyper_w2(state).abs().reshape(b, self.e, 1)
        return (torch.bmm(hidden, w2).squeeze(-1) + self.hyper_b2(state)).squeeze(-1)


class QMIXPolicy(GroupPolicyIO, nn.Module):
    """The agents' utility networks; ``act`` is greedy (or epsilon-greedy) per agent."""

    ALGORITHM = ALGORITHM
    CONFIG_CLS = QMIXConfig

    def __init__(
        self,
        agents: list[str],
        obs_spaces: dict[str, gym.Space],
        act_spaces: dict[str, gym.Space],
        groups: list[list[str]],
        config: QMIXConfig,
    ):
        super().__init__()
        self.agents, self.groups, self.config = agents, groups, config
        self.obs_spaces, self.act_spaces = obs_spaces, act_spaces
        self.n_ids = [len(agents) if config.agent_id_in_obs and len(g) > 1 else 0 for g in groups]
        self.nets = nn.ModuleList(
            [
                AgentQNet(obs_spaces[g[0]], act_spaces[g[0]], n, config)
                for g, n in zip(groups, self.n_ids, strict=True)
            ]
        )
        self._hidden: dict[str, Tensor] = {}

    def ids(self, gi: int, members: list[str], batch: int) -> Tensor | None:
        return one_hot_ids(members, self.agents, batch) if self.n_ids[gi] else None

    @torch.no_grad()
    def greedy_batch(
        self, gi: int, obs: np.ndarray, members: list[str], hidden: Tensor | None
    ) -> tuple[np.ndarray, Tensor | None]:
        """Greedy sub-actions for obs (B, n, d) of ``members`` -> ((B, n, D), new hidden)."""
        b, n, _ = obs.shape
        net = self.nets[gi]
        q, h, live = net(torch.as_tensor(obs.reshape(b * n, -1)), self.ids(gi, members, b), hidden)
        return net.greedy(q, live).reshape(b, n, -1).cpu().numpy(), h

    def act(self, obs: dict[str, Any], deterministic: bool = True) -> dict[str, Any]:
        """Greedy actions (the flag is ignored: QMIX is greedy at evaluation)."""
        out: dict[str, Any] = {}
        for gi, g in enumerate(self.groups):
            present = [a for a in g if a in obs]
            if not present:
                continue
            x = np.stack([flatten_obs(self.obs_spaces[a], obs[a]) for a in present])[None]
            hidden = None
            if self.config.recurrent:
                hidden = torch.stack(
                    [self._hidden.get(a, torch.zeros(self.nets[gi].hidden_dim)) for a in present]
                )
            acts, h = self.greedy_batch(gi, x, present, hidden)
            for k, a in enumerate(present):
                out[a] = env_action(self.act_spaces[a], acts[0, k])
                if h is not None:
                    self._hidden[a] = h[k]
        return out

    def reset(self) -> None:
        """Forget recurrent states (call at each episode start)."""
        self._hidden = {}


# --------------------------------------------------------------------------- replay


class ChunkReplay:
    """Chunks of consecutive steps, padded to ``seq_len`` (obs/state/alive have L + 1 rows).

    Arrays: ``obs[a]`` (C, L+1, d), ``state`` (C, L+1, S), ``actions[a]`` (C, L, D) int64,
    ``alive[a]`` (C, L+1), ``reward`` (C, L), ``terminal`` (C, L), ``valid`` (C, L).
    """

    def __init__(
        self,
        capacity: int,
        seq_len: int,
        agents: list[str],
        obs_dims: dict,
        act_dims: dict,
        state_dim: int,
    ):
        self.capacity, self.seq_len, self.agents = capacity, seq_len, agents
        c, ll = capacity, seq_len
        self.obs = {a: np.zeros((c, ll + 1, obs_dims[a]), np.float32) for a in agents}
        self.state = np.zeros((c, ll + 1, state_dim), np.float32)
        self.actions = {a: np.zeros((c, ll, act_dims[a]), np.int64) for a in agents}
        self.alive = {a: np.zeros((c, ll + 1), np.float32) for a in agents}
        self.reward = np.zeros((c, ll), np.float32)
        self.terminal = np.zeros((c, ll), np.float32)
        self.valid = np.zeros((c, ll), np.float32)
        self.pos, self.full = 0, False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, steps: list[dict[str, Any]], last: dict[str, Any]) -> None:
        """Store one chunk: ``steps`` (each with obs, state, alive, actions, reward, terminal)
        and ``last`` (obs, state, alive after the final step)."""
        i, n = self.pos, len(steps)
        for key in ("reward", "terminal", "valid"):
            getattr(self, key)[i] = 0.0
        for a in self.agents:
            self.obs[a][i] = 0.0
            self.alive[a][i] = 0.0
            self.actions[a][i] = 0
        rows = [*steps, last]
        for t, row in enumerate(rows):
            self.state[i, t] = row["state"]
            for a in self.agents:
                self.obs[a][i, t] = row["obs"][a]
                self.alive[a][i, t] = row["alive"][a]
        for t, row in enumerate(steps):
            for a in self.agents:
                self.actions[a][i, t] = row["actions"][a]
            self.reward[i, t] = row["reward"]
            self.terminal[i, t] = row["terminal"]
        self.valid[i, :n] = 1.0
        self.state[i, n + 1 :] = 0.0
        self.pos = (i + 1) % self.capacity
        self.full = self.full or self.pos == 0

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, Any]:
        idx = rng.integers(0, len(self), batch)
        t = torch.as_tensor
        return {
            "obs": {a: t(self.obs[a][idx]) for a in self.agents},
            "state": t(self.state[idx]),
            "actions": {a: t(self.actions[a][idx]) for a in self.agents},
            "alive": {a: t(self.alive[a][idx]) for a in self.agents},
            "reward": t(self.reward[idx]),
            "terminal": t(self.terminal[idx]),
            "valid": t(self.valid[idx]),
        }


# --------------------------------------------------------------------------- training


class _Trainer:
    def __init__(self, env_fn: EnvFn, cfg: QMIXConfig, seed: int):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.pool = EnvPool(env_fn, cfg.num_envs, seed)
        pool = self.pool
        for a in pool.agents:
            check_action_space(
                pool.act_spaces[a], (gym.spaces.Discrete, gym.spaces.MultiDiscrete), "QMIX"
            )
        self.agents = pool.agents
        self.groups = group_agents(
            self.agents, pool.obs_spaces, pool.act_spaces, cfg.share_parameters
        )
        self.policy = QMIXPolicy(self.agents, pool.obs_spaces, pool.act_spaces, self.groups, cfg)
        self.target_policy = copy.deepcopy(self.policy)
        pool.reset()
        self.mixer = QMixer(
            len(self.agents), pool.state_dim, cfg.mixing_embed_dim, cfg.hypernet_hidden
        )
        self.target_mixer = copy.deepcopy(self.mixer)
        self.params = list(self.policy.parameters()) + list(self.mixer.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.learning_rate)
        self.nvec = {a: _nvec(pool.act_spaces[a]) for a in self.agents}
        act_dims = {a: len(self.nvec[a]) for a in self.agents}
        self.replay = ChunkReplay(
            cfg.buffer_chunks, cfg.seq_len, self.agents, pool.obs_dims, act_dims, pool.state_dim
        )
        self.hidden: list[Tensor | None] = [None for _ in self.groups]
        self.chunks: list[list[dict[str, Any]]] = [[] for _ in range(cfg.num_envs)]
        self.n_updates = 0

    def epsilon(self, step: int) -> float:
        c = self.cfg
        frac = min(1.0, step / max(1, c.epsilon_anneal_steps))
        return c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)

    def explore(self, step: int) -> dict[str, np.ndarray]:
        """Epsilon-greedy sub-actions (E, D) per agent; updates recurrent states."""
        e, eps = self.cfg.num_envs, self.epsilon(step)
        out: dict[str, np.ndarray] = {}
        for gi, g in enumerate(self.groups):
            obs = np.stack([self.pool.obs[a] for a in g], 1)
            greedy, self.hidden[gi] = self.policy.greedy_batch(gi, obs, g, self.hidden[gi])
            for k, a in enumerate(g):
                nv = self.nvec[a]
                rand = (self.rng.random((e, len(nv))) * nv).astype(np.int64)
                pick = self.rng.random((e, len(nv))) < eps
                out[a] = np.where(pick, rand, greedy[:, k])
        return out

    def reset_hidden(self, env_done: np.ndarray) -> None:
        for gi, h in enumerate(self.hidden):
            if h is not None:
                n = len(self.groups[gi])
                mask = torch.as_tensor(np.repeat(~env_done, n), dtype=h.dtype).unsqueeze(-1)
                self.hidden[gi] = h * mask

    def unroll(
        self, policy: QMIXPolicy, gi: int, obs: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor | None]:
        """Utilities (B, L+1, n_g, D, K) of group gi over a chunk (live mask or None)."""
        g = self.groups[gi]
        x = torch.stack([obs[a] for a in g], 2)  # (B, L+1, n, d)
        b, t1, n, d = x.shape
        net = policy.nets[gi]
        ids = policy.ids(gi, g, b)
        if not self.cfg.recurrent:
            ids_t = (
                None
                if ids is None
                else ids.reshape(b, n, -1).unsqueeze(1).expand(b, t1, n, -1).reshape(b * t1 * n, -1)
            )
            q, _, live = net(x.reshape(b * t1 * n, d), ids_t, None)
            q = q.reshape(b, t1, n, *q.shape[1:])
            return q, None if live is None else live.reshape(b, t1, n, -1)
        qs, lives, h = [], [], None
        for t in range(t1):
            q, h, live = net(x[:, t].reshape(b * n, d), ids, h)
            qs.append(q.reshape(b, n, *q.shape[1:]))
            lives.append(None if live is None else live.reshape(b, n, -1))
        return torch.stack(qs, 1), None if lives[0] is None else torch.stack(lives, 1)  # type: ignore[arg-type]

    def update(self) -> dict[str, float]:
        cfg = self.cfg
        batch = self.replay.sample(cfg.batch_size, self.rng)
        ll = cfg.seq_len
        chosen, target = [], []
        for gi, g in enumerate(self.groups):
            net = self.policy.nets[gi]
            q, live = self.unroll(self.policy, gi, batch["obs"])
            acts = torch.stack([batch["actions"][a] for a in g], 2)  # (B, L, n, D)
            chosen.append(AgentQNet.chosen(q[:, :ll], acts))  # (B, L, n)
            with torch.no_grad():
                tq, _ = self.unroll(self.target_policy, gi, batch["obs"])
                if cfg.double_q:
                    a_star = net.greedy(q[:, 1:].detach(), None if live is None else live[:, 1:])
                else:
                    a_star = net.greedy(tq[:, 1:], None if live is None else live[:, 1:])
                target.append(AgentQNet.chosen(tq[:, 1:], a_star))
        alive = torch.stack([batch["alive"][a] for gr in self.groups for a in gr], 2)  # (B, L+1, N)
        q_sel = torch.cat(chosen, 2) * alive[:, :ll]
        q_next = torch.cat(target, 2) * alive[:, 1:]
        # mixer inputs ordered like the groups' concatenation; map to agent order
        order = [a for gr in self.groups for a in gr]
        perm = torch.as_tensor([order.index(a) for a in self.agents])
        q_sel, q_next = q_sel[..., perm], q_next[..., perm]
        b = q_sel.shape[0]
        s = batch["state"]
        q_tot = self.mixer(q_sel.reshape(b * ll, -1), s[:, :ll].reshape(b * ll, -1)).reshape(b, ll)
        with torch.no_grad():
            t_tot = self.target_mixer(
                q_next.reshape(b * ll, -1), s[:, 1:].reshape(b * ll, -1)
            ).reshape(b, ll)
            y = batch["reward"] + cfg.gamma * (1.0 - batch["terminal"]) * t_tot
        valid = batch["valid"]
        loss = (((q_tot - y) ** 2) * valid).sum() / valid.sum().clamp_min(1.0)
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        self.optimizer.step()
        self.n_updates += 1
        if self.n_updates % cfg.target_update_interval == 0:
            self.target_policy.load_state_dict(self.policy.state_dict())
            self.target_mixer.load_state_dict(self.mixer.state_dict())
        return {
            "losses/td_loss": float(loss.detach()),
            "losses/q_taken_mean": float(
                (q_tot.detach() * valid).sum() / valid.sum().clamp_min(1.0)
            ),
        }


def train(
    env_fn: EnvFn,
    config: QMIXConfig | None = None,
    seed: int = 0,
    total_steps: int = 100_000,
    log_fn: LogFn | None = None,
) -> tuple[QMIXPolicy, list[dict[str, float]]]:
    """Train QMIX on a cooperative ParallelEnv with Discrete/MultiDiscrete actions.

    Args:
        env_fn: Returns a fresh PettingZoo ParallelEnv.
        config: Hyper-parameters (default :class:`QMIXConfig`).
        seed: Seeds torch (inside ``fork_rng``), the numpy Generator (exploration, replay) and
            env resets.
        total_steps: Joint env steps (summed over env copies).
        log_fn: Called with each metrics record (every ``log_interval`` steps).

    Returns:
        (policy, history) with ``global_step``, ``charts/*`` (``charts/epsilon`` included) and
        ``losses/*`` entries.
    """
    cfg = config if config is not None else QMIXConfig()
    if cfg.seq_len < 1 or cfg.batch_size < 1 or cfg.target_update_interval < 1:
        raise ConfigError(
            f"seq_len={cfg.seq_len}, batch_size={cfg.batch_size}, "
            f"target_update_interval={cfg.target_update_interval}: all must be >= 1"
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
            before = {
                "obs": {a: v.copy() for a, v in pool.obs.items()},
                "alive": {a: v.astype(np.float32) for a, v in pool.alive.items()},
                "state": pool.state.copy(),
            }
            acts = tr.explore(step)
            out = pool.step(
                {
                    a: [env_action(pool.act_spaces[a], acts[a][i]) for i in range(cfg.num_envs)]
                    for a in tr.agents
                }
            )
            for i in range(cfg.num_envs):
                any_trunc = any(out.truncated[a][i] for a in tr.agents)
                row = {
                    "obs": {a: before["obs"][a][i] for a in tr.agents},
                    "alive": {a: before["alive"][a][i] for a in tr.agents},
                    "state": before["state"][i],
                    "actions": {a: acts[a][i] for a in tr.agents},
                    "reward": float(sum(out.rewards[a][i] for a in tr.agents)),
                    "terminal": float(out.env_done[i] and not any_trunc),
                }
                tr.chunks[i].append(row)
                if out.env_done[i] or len(tr.chunks[i]) == cfg.seq_len:
                    last = {
                        "obs": {a: out.final_obs[a][i] for a in tr.agents},
                        "alive": {
                            a: float(out.was_alive[a][i] and not out.terminated[a][i])
                            for a in tr.agents
                        },
                        "state": out.final_state[i],
                    }
                    tr.replay.add(tr.chunks[i], last)
                    tr.chunks[i] = []
            tr.reset_hidden(out.env_done)
            episodes.extend(out.episodes)
            step += cfg.num_envs
            if step >= next_train and len(tr.replay) >= cfg.batch_size:
                for _ in range(cfg.gradient_steps):
                    losses = tr.update()
                next_train = step + cfg.train_frequency
            if step >= next_log or step >= total_steps:
                metrics = {
                    "global_step": float(step),
                    **episode_metrics(episodes, tr.agents),
                    **losses,
                }
                metrics["charts/epsilon"] = tr.epsilon(step)
                metrics["charts/sps"] = step / (time.perf_counter() - start)
                history.append(metrics)
                if log_fn is not None:
                    log_fn(metrics)
                episodes = []
                next_log = step + cfg.log_interval
        pool.close()
        return tr.policy.to("cpu"), history
