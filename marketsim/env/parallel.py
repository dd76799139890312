"""`MarketParallelEnv`: the market as a PettingZoo ParallelEnv (one entry per RL agent).

RL agents are declared in the scenario's ``[[rl_agents]]``; each has its own account, action
mode, reward, window, latency and decision interval. Background traders keep trading between
decisions. See ``/work/notes/env_spec.md`` or the README for the observation/action contract.

One ``step(actions)``:

1. validate the actions (a bad value raises ``ValueError`` naming the agent, value and space);
2. turn each due agent's action into orders (in a seeded random order of agents), which reach
   the book after the agent's latency;
3. run the model for ``step_interval`` steps (the smallest decision interval; agents with a
   longer interval act only every k-th env step and their other actions are ignored);
4. compute observations from data up to now (no look-ahead), rewards, terminations (equity
   exhausted or margin-called: that agent alone, its orders cancelled) and truncations (all, at
   the episode end).

Missing agents in the action dict: they hold (no orders). Unknown names: ``ValueError``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from marketsim import __version__
from marketsim.book import IOC, LIMIT, MARKET
from marketsim.checkpoint import load_state, save_state
from marketsim.env.accounting import portfolio_rows, value_agents
from marketsim.env.actions import ActionsMixin
from marketsim.env.config import RLParams, parse_rl_params
from marketsim.env.features import N_MARKET_FEATURES, POSITION_COLUMN, MarketFeatures, Window
from marketsim.env.projection import WeightProjector
from marketsim.env.rewards import RewardContext, make_reward
from marketsim.errors import ConfigError, StateError
from marketsim.ledger import CASH_SCALE
from marketsim.model import MarketModel
from marketsim.replay import attach_replays
from marketsim.scenario import Scenario, load_scenario

CHECKPOINT_KIND = "marketsim.MarketParallelEnv"


class _AgentSpec:
    """Static description of one RL agent (from its scenario group)."""

    def __init__(self, name: str, group, params: RLParams, max_assets: int):
        self.name = name
        self.group = group
        self.mode = group.action_mode
        self.window = group.window
        self.interval = group.decision_interval_steps
        self.params = params
        self.reward_name = group.reward
        # at least one column: zero-size Boxes break common RL libraries (SB3's predict)
        self.n_exo = max(1, len(params.exogenous))
        self.A = max_assets


class MarketParallelEnv(ActionsMixin, ParallelEnv):
    """PettingZoo ParallelEnv over a :class:`~marketsim.model.MarketModel`.

    Args:
        scenario: Scenario object, dict or TOML path with at least one ``[[rl_agents]]`` group.
        seed: Default seed of the first reset (else ``simulation.seed``).
        flat_obs: Observe one flat Box instead of the Dict.
        max_steps: Env steps per episode (default: until the scenario's last model step).
        warmup_steps: Model steps run at reset before the first observation, so background
            traders have built a book.
        overrides: ``key=value`` scenario overrides.
        record: Keep the model's recorder (trades/quotes in memory) — slower; for analysis.
        volume_scale: Lots that map signed volume features to ~1.
    """

    metadata = {"name": "marketsim_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        scenario: Scenario | dict | str | Path,
        seed: int | None = None,
        flat_obs: bool = False,
        max_steps: int | None = None,
        warmup_steps: int = 60,
        overrides: tuple[str, ...] | list[str] = (),
        record: bool = False,
        volume_scale: float = 100.0,
        render_mode: str | None = None,
    ) -> None:
        self.scenario = load_scenario(scenario, overrides)
        sc = self.scenario
        if not sc.rl_agents or not any(g.count for g in sc.rl_agents):
            raise ConfigError(
                "the scenario declares no RL agents: add an [[rl_agents]] group "
                "(name, action_mode, reward, ...) to use it as an environment"
            )
        self.A = sc.simulation.max_assets
        self.flat_obs = bool(flat_obs)
        self.warmup_steps = int(warmup_steps)
        self.record = bool(record)
        self.volume_scale = float(volume_scale)
        self.render_mode = render_mode
        self._seed = sc.simulation.seed if seed is None else int(seed)
        self._seed_rng = np.random.default_rng(self._seed)
        self.specs: dict[str, _AgentSpec] = {}
        for g in sc.rl_agents:
            params = parse_rl_params(g.name, g.params)
            for name in g.agent_names() if g.count else []:
                self.specs[name] = _AgentSpec(name, g, params, self.A)
        self.possible_agents = list(self.specs)
        self._ix = {n: i for i, n in enumerate(self.possible_agents)}
        self.step_interval = min(s.interval for s in self.specs.values())
        for s in self.specs.values():
            if s.interval % self.step_interval:
                raise ConfigError(
                    f"rl_agents[{s.group.name}].decision_interval_steps = {s.interval}: must be "
                    f"a multiple of the smallest interval ({self.step_interval})"
                )
        total = sc.session.total_steps - self.warmup_steps
        if total < self.step_interval:
            raise ConfigError(
                f"warmup_steps = {self.warmup_steps} leaves no decision in a "
                f"{sc.session.total_steps}-step scenario"
            )
        limit = total // self.step_interval
        self.max_steps = limit if max_steps is None else min(int(max_steps), limit)
        if self.max_steps < 1:
            raise ConfigError(f"max_steps = {max_steps}: must be >= 1")
        self._wreplay = {
            n: self._make_window_replay(s) for n, s in self.specs.items()
            if s.params.observation_source == "window_replay"
        }  # fmt: skip
        self._wcache: dict[str, tuple[int, np.ndarray]] = {}  # agent -> (bar, market window)
        sectors = sorted({a.sector for a in sc.assets})
        self._sector_ids = {s: i for i, s in enumerate(sectors)}
        self._dict_spaces = {n: self._make_obs_space(s) for n, s in self.specs.items()}
        self._obs_spaces = {
            n: spaces.flatten_space(sp) if self.flat_obs else sp
            for n, sp in self._dict_spaces.items()
        }
        self._act_spaces = {n: self._make_action_space(s) for n, s in self.specs.items()}
        self._box_bounds = {
            n: (float(sp.low.min()), float(sp.high.max()))
            for n, sp in self._act_spaces.items()
            if isinstance(sp, spaces.Box)
        }
        self.model: MarketModel | None = None
        self.agents: list[str] = []
        self.n_steps = 0

    # ------------------------------------------------------------------ spaces
    def _make_window_replay(self, s: _AgentSpec):
        """WindowReplay of a ``window_replay`` agent (slot i = scenario asset i), validated."""
        from marketsim.data.windows import WindowReplay

        fc = self.scenario.fundamental
        key = f"rl_agents[{s.group.name}].params"
        if fc.kind != "historical" or "path" not in fc.params:
            raise ConfigError(
                f"{key}.observation_source = 'window_replay' needs fundamental.kind = "
                f"'historical' with params.path (got kind {fc.kind!r}), so that execution "
                "follows the same data"
            )
        fpath = str(fc.params["path"])
        wdir = s.params.window_replay_dir or fpath
        if Path(wdir).resolve() != Path(fpath).resolve():
            raise ConfigError(
                f"{key}.window_replay_dir = {wdir!r}: must be the historical fundamental's "
                f"path {fpath!r} (observations and prices must come from the same data)"
            )
        wr = WindowReplay(
            wdir,
            tickers=[a.symbol for a in self.scenario.assets],
            fields=s.params.window_replay_fields or None,
            max_assets=self.A,
            fill_value=0.0,
        )
        if s.window > wr.window_length:
            raise ConfigError(
                f"rl_agents[{s.group.name}].window = {s.window}: must be <= the prepared window "
                f"length {wr.window_length} of {wdir!r} under window_replay"
            )
        return wr

    def _make_obs_space(self, s: _AgentSpec) -> spaces.Dict:
        A = self.A
        inf = np.float32(np.inf)
        wr = self._wreplay.get(s.name)
        nf = N_MARKET_FEATURES if wr is None else len(wr.fields)
        return spaces.Dict(
            {
                "market": spaces.Box(-inf, inf, (s.window, A, nf), np.float32),
                "portfolio": spaces.Box(-inf, inf, (A + 4,), np.float32),
                "mask": spaces.Box(0.0, 1.0, (A,), np.float32),
                "exogenous": spaces.Box(-inf, inf, (A, s.n_exo), np.float32),
            }
        )

    def _make_action_space(self, s: _AgentSpec) -> spaces.Space:
        A = self.A
        if s.mode == "weights":
            return spaces.Box(-1.0, 1.0, (A + 1,), np.float32)
        if s.mode == "orders":
            return spaces.Box(-1.0, 1.0, (A, 3), np.float32)
        if s.mode == "quotes":
            return spaces.Box(-1.0, 1.0, (A, 4), np.float32)
        return spaces.MultiDiscrete(np.full(A, 3, dtype=np.int64))

    def observation_space(self, agent: str) -> spaces.Space:
        """The (same, cached) observation space of ``agent``."""
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        """The (same, cached) action space of ``agent``."""
        return self._act_spaces[agent]

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` reproduces it exactly. Returns ``(obs, infos)``."""
        if seed is None:
            seed = (
                self._seed
                if self.model is None and self.n_steps == 0
                else int(self._seed_rng.integers(2**31 - 1))
            )
        seed = int(seed)
        self._seed_rng = np.random.default_rng(seed + 1)
        if self.model is not None:
            self.model.release()
        self.model = MarketModel(self.scenario, seed=seed, record=self.record)
        m = self.model
        attach_replays(m)  # the scenario's optional [replay] order flow
        self.rl = {n: m.rl_agents[n] for n in self.possible_agents}
        self._acc = {n: self.rl[n].account for n in self.possible_agents}
        self._accs_key: tuple = ()
        self._accs = np.zeros(0, np.int64)
        self.rng = np.random.default_rng([seed, 7])  # the env's own draws (observation noise)
        sc = self.scenario
        self._projectors = {}
        for n, s in self.specs.items():
            acc = self.rl[n].account
            lev = float(m.ledger._leverage_limit[acc])
            sector_of = np.full(self.A, -1, np.int64)
            caps = np.zeros(len(self._sector_ids))
            caps[:] = np.inf
            for i, a in enumerate(sc.assets):
                sector_of[i] = self._sector_ids[a.sector]
            for sec, cap in s.params.sector_caps.items():
                if sec not in self._sector_ids:
                    raise ConfigError(
                        f"rl_agents[{s.group.name}].params.sector_caps: unknown sector {sec!r}; "
                        f"sectors: {sorted(self._sector_ids)}"
                    )
                caps[self._sector_ids[sec]] = cap
            caps = np.where(np.isinf(caps), 1e9, caps)
            self._projectors[n] = WeightProjector(
                self.A,
                bool(m.ledger._allow_short[acc]),
                lev,
                s.params.max_weight,
                sector_of,
                caps if s.params.sector_caps else None,
            )
        m.run(self.warmup_steps)
        self.features = MarketFeatures(self.A, self.volume_scale)
        self.features.reset(m)
        self.windows = {
            n: Window(s.window, self.A, N_MARKET_FEATURES) for n, s in self.specs.items()
        }
        self.rewards = {
            n: make_reward(s.reward_name, s.params.reward_params) for n, s in self.specs.items()
        }
        for r in self.rewards.values():
            r.reset()
        self.agents = list(self.possible_agents)
        self.n_steps = 0
        marks = self._marks()
        P = len(self.possible_agents)
        #: Equity at the episode start / previous decision / peak, by ``possible_agents`` index.
        self._eq0 = np.zeros(P)
        self._eq_prev = np.zeros(P)
        self._eq_peak = np.zeros(P)
        #: Positions at the episode start: inventory rewards count changes from them.
        self._pos0 = np.array(
            [m.ledger._positions[self._acc[n]] for n in self.possible_agents], np.int64
        ).reshape(P, -1)
        for i, n in enumerate(self.agents):
            eq = self._equity(n, marks)
            if eq <= 0:
                raise ConfigError(
                    f"RL agent {n!r} starts with equity {eq}: give its group cash or shares"
                )
            self._eq0[i] = self._eq_prev[i] = self._eq_peak[i] = eq
            self.rl[n].read_trading()
        row = self.features.row
        obs = {n: self._observe(n, row, marks) for n in self.agents}
        infos = {n: {"equity": float(self._eq0[i])} for i, n in enumerate(self.agents)}
        return obs, infos

    # ------------------------------------------------------------------ trackers
    def _tracker(self, arr: np.ndarray) -> dict[str, float]:
        return {n: float(arr[i]) for i, n in enumerate(self.possible_agents)}

    @property
    def initial_equity(self) -> dict[str, float]:
        """Each agent's equity at the episode start (a copy)."""
        return self._tracker(self._eq0)

    @property
    def prev_equity(self) -> dict[str, float]:
        """Each agent's equity at its previous decision (a copy)."""
        return self._tracker(self._eq_prev)

    @property
    def peak_equity(self) -> dict[str, float]:
        """Each agent's highest equity this episode (a copy)."""
        return self._tracker(self._eq_peak)

    @property
    def initial_positions(self) -> dict[str, np.ndarray]:
        """Each agent's positions (lots per slot) at the episode start (copies)."""
        return {n: self._pos0[i].copy() for i, n in enumerate(self.possible_agents)}

    def _indices(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(account ids, ``possible_agents`` indices) of ``names`` as int64 arrays (cached
        while the list of live agents does not change)."""
        key = tuple(names)
        if key != self._accs_key:
            self._accs = np.array([self._acc[n] for n in names], np.int64)
            self._idx = np.array([self._ix[n] for n in names], np.int64)
            self._accs_key = key
        return self._accs, self._idx

    # ------------------------------------------------------------------ valuation
    def _marks(self) -> np.ndarray:
        return self.features.mid.copy()

    def _equity_parts(self, n: str, marks: np.ndarray) -> tuple[float, np.ndarray]:
        """(cash, position values per slot) in currency; NaN marks value a position at 0."""
        _, _, _, cash, vals, *_ = self._value_all([n], marks)
        return float(cash[0]), vals[0]

    def _equity(self, n: str, marks: np.ndarray) -> float:
        cash, vals = self._equity_parts(n, marks)
        return cash + float(vals.sum())

    def _value_all(self, names: list[str], marks: np.ndarray):
        """Value every listed agent at once (see :func:`~marketsim.env.accounting.value_agents`):
        (accounts, indices, vpl, cash, vals, equity, gross, inventory value, number below the
        maintenance margin). O(n * A)."""
        led = self.model.ledger
        accs, idx = self._indices(names)
        return (accs, idx) + value_agents(
            marks, led._unit_value, CASH_SCALE, led._cash, led._positions, accs, idx, self._pos0,
            self.scenario.exchange.maintenance_margin,
        )  # fmt: skip

    # ------------------------------------------------------------------ observation
    def _observe(self, n: str, row: np.ndarray, marks: np.ndarray):
        """One agent's observation now (reset and direct calls; :meth:`step` batches it)."""
        _, idx, _, cash, vals, eq, gross, _, _ = self._value_all([n], marks)
        port = portfolio_rows(cash, vals, eq, gross, idx, self._eq0, self._eq_peak)
        return self._build_obs(n, row, port[0], self._live_mask(), marks)

    def _live_mask(self) -> np.ndarray:
        mask = np.zeros(self.A, np.float32)
        mask[self.model.exchange.live_slots()] = 1.0
        return mask

    def _build_obs(self, n, row, port, mask, marks):
        """Assemble ``n``'s observation from the shared feature row, its portfolio row and the
        live mask (pushes the row, with its own position weights, into its window)."""
        s = self.specs[n]
        wr = self._wreplay.get(n)
        if wr is None:
            w = self.windows[n]
            w.push(row, port[: self.A], POSITION_COLUMN)
            market = w.view()
        else:  # window ending at the fundamental's current (last completed) bar: no look-ahead
            bar = min(self.model.feed.bar_index, len(wr) - 1)
            hit = self._wcache.get(n)
            if hit is None or hit[0] != bar:  # a new bar: gather it once (O(W*A*F))
                x, _ = wr.window(bar)
                hit = (bar, np.ascontiguousarray(x[:, x.shape[1] - s.window :].transpose(1, 0, 2)))
                self._wcache[n] = hit
            market = hit[1].copy()
        exo = np.zeros((self.A, s.n_exo), np.float32)
        for j, kind in enumerate(s.params.exogenous):
            if kind == "fundamental":
                exo[:, j] = self._fundamental_feature(s, marks, mask)
        if self.flat_obs:  # the order of spaces.flatten(Dict): keys sorted
            return np.concatenate((exo.ravel(), market.ravel(), mask, np.asarray(port, np.float32)))
        return {"market": market, "portfolio": port.copy(), "mask": mask.copy(), "exogenous": exo}

    def _fundamental_feature(self, s: _AgentSpec, marks: np.ndarray, mask: np.ndarray):
        m = self.model
        out = np.zeros(self.A, np.float32)
        values = m.future_fundamental(s.params.signal_lead_steps)
        for slot in np.flatnonzero(mask):
            f = values[slot] / m._tick[slot]
            if f > 0 and marks[slot] > 0:
                noise = s.params.fundamental_noise
                # percent units: 100 * (log(f / mid) + noise)
                out[slot] = 100.0 * (
                    math.log(f / marks[slot]) + (self.rng.normal(0.0, noise) if noise > 0 else 0.0)
                )
        return out

    # ------------------------------------------------------------------ step
    def step(self, actions: dict[str, Any]):
        """Apply actions, run the market for ``step_interval`` steps; return the 5-tuple.

        Valuation, margin checks and portfolio features are computed for all agents at once
        (O(n * A) numpy work per step); rewards and windows are per agent.
        """
        if self.model is None:
            raise ConfigError("call reset() before step()")
        if not self.agents:
            raise ConfigError("the episode is over (no live agents): call reset()")
        for n in actions:
            if n not in self.specs:
                unknown = sorted(set(actions) - set(self.possible_agents))
                raise ValueError(
                    f"actions for unknown agent(s) {unknown}; agents: {self.possible_agents}"
                )
        parsed = {}
        for n in self.agents:
            if n in actions:
                parsed[n] = self._validate(n, actions[n])
        m = self.model
        if parsed:
            marks = self.features.mid
            due = [n for n in self.agents if n in parsed and self._due(n)]
            if len(due) > 1:
                due = [due[i] for i in m.rng.permutation(len(due))]
            for n in due:
                self._apply(n, parsed[n], marks)
        m.run(self.step_interval)
        self.n_steps += 1
        row = self.features.update(m)
        marks = self.features.mid
        names = self.agents
        accs, idx, vpl, cash, vals, eq, gross, inv_value, below = self._value_all(names, marks)
        if below and self._check_margins(accs, eq, gross):
            accs, idx, vpl, cash, vals, eq, gross, inv_value, _ = self._value_all(names, marks)
        closed = m.ledger._closed[accs]
        port = portfolio_rows(cash, vals, eq, gross, idx, self._eq0, self._eq_peak)
        mask = self._live_mask()
        valid = None
        obs, rewards, terms, truncs, infos = {}, {}, {}, {}, {}
        trunc_all = self.n_steps >= self.max_steps or m.done
        eq0, eq_prev, eq_peak = self._eq0, self._eq_prev, self._eq_peak
        for i, n in enumerate(names):
            e = float(eq[i])
            j = idx[i]
            lots, shortfall = self.rl[n].read_trading()
            ctx = RewardContext(
                equity=e,
                prev_equity=float(eq_prev[j]),
                initial_equity=float(eq0[j]),
                peak_equity=float(eq_peak[j]),
                gross_exposure=float(gross[i]),
                inventory_value=float(inv_value[i]),
                traded_lots=lots,
                shortfall=shortfall,
            )
            p = self.specs[n].params
            r = float(self.rewards[n](ctx)) * p.reward_scale
            flt = p.reward_filter
            if flt == "trading_only" and lots == 0:
                r = 0.0
            elif flt == "valid_only":
                if valid is None:
                    valid = bool(np.all(np.isfinite(marks[m.exchange.live_slots()])))
                if not valid:
                    r = 0.0
            term = e <= 0 or bool(closed[i])
            obs[n] = self._build_obs(n, row, port[i], mask, marks)
            rewards[n] = r
            terms[n] = term
            truncs[n] = bool(trunc_all and not term)
            infos[n] = {"equity": e, "traded_lots": lots, "shortfall": shortfall}
            if term:
                m.exchange.cancel_all(m.t, owner=int(accs[i]))
                self.rl[n].slices = []
        eq_prev[idx] = eq
        if trunc_all or any(terms.values()):
            self.agents = [n for n in names if not (terms[n] or truncs[n])]
        return obs, rewards, terms, truncs, infos

    def _check_margins(self, accs: np.ndarray, eq: np.ndarray, gross: np.ndarray) -> bool:
        """Liquidate RL accounts below maintenance margin (background accounts are checked by
        the model on its own cadence); return whether any was liquidated. O(n)."""
        mm = self.scenario.exchange.maintenance_margin
        bad = (eq < mm * gross) | ((eq <= 0) & (gross > 0))
        if not bad.any():
            return False
        m = self.model
        hit = False
        for i in np.flatnonzero(bad).tolist():
            acc = int(accs[i])
            if not m.ledger._closed[acc]:
                m.liquidate(acc, reason="margin_call")
                hit = True
        return hit

    def _due(self, n: str) -> bool:
        k = self.specs[n].interval // self.step_interval
        return k == 1 or self.n_steps % k == 0

    # ------------------------------------------------------------------ misc API
    def state(self) -> np.ndarray:
        """Global state for centralised critics: the market feature row and every agent's
        portfolio vector, flattened (fixed size)."""
        if self.model is None:
            raise ConfigError("state() is defined after reset(): call reset() first")
        names = self.possible_agents
        _, idx, _, cash, vals, eq, *_ = self._value_all(names, self._marks())
        parts = [self.features.row.ravel()]
        for i in range(len(names)):
            v = np.zeros(self.A + 1, np.float32)
            if eq[i] > 0:
                v[: self.A] = vals[i] / eq[i]
                v[self.A] = math.log(max(eq[i], 1e-9) / self._eq0[idx[i]])
            parts.append(v)
        return np.concatenate(parts).astype(np.float32)

    @property
    def state_space(self) -> spaces.Box:
        """Space of :meth:`state`."""
        size = self.A * N_MARKET_FEATURES + len(self.possible_agents) * (self.A + 1)
        return spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def render(self) -> None:
        """No rendering (use analysis plots on a recorded run)."""

    def close(self) -> None:
        """Release the model (Mesa keeps models alive through Agent._ids otherwise)."""
        if self.model is not None:
            self.model.release()
            self.model = None

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        """The model checkpoint plus the env's windows, trackers and counters."""
        return {
            "model": self.model.get_state(),
            "agents": list(self.agents),
            "n_steps": self.n_steps,
            "seed_rng": self._seed_rng.bit_generator.state,
            "rng": self.rng.bit_generator.state,
            "features": self.features.get_state(),
            "windows": {n: [w.buf.copy(), w.head] for n, w in self.windows.items()},
            "rewards": {n: r.get_state() for n, r in self.rewards.items()},
            "initial_equity": self.initial_equity,
            "prev_equity": self.prev_equity,
            "peak_equity": self.peak_equity,
            "initial_positions": self.initial_positions,
        }

    def save(self, path: str | Path) -> Path:
        """Write the env mid-episode (``.npz`` + JSON, no pickle); :meth:`load` continues it."""
        if self.model is None:
            raise ConfigError("nothing to save: call reset() first")
        st = self.get_state()
        st["env_args"] = {
            "scenario": self.scenario.to_dict(),
            "flat_obs": self.flat_obs,
            "max_steps": self.max_steps,
            "warmup_steps": self.warmup_steps,
            "record": self.record,
            "volume_scale": self.volume_scale,
        }
        return save_state(path, CHECKPOINT_KIND, st, __version__)

    @classmethod
    def load(cls, path: str | Path) -> MarketParallelEnv:
        """Rebuild an env saved with :meth:`save`; stepping it continues identically."""
        st = load_state(path, CHECKPOINT_KIND)
        try:
            env = cls(**st["env_args"])
            env.reset(seed=st["model"]["seed"])
            env.set_state(st)
        except KeyError as e:
            raise StateError(f"env checkpoint {str(path)!r} lacks field {e.args[0]!r}") from None
        return env

    def set_state(self, st: dict) -> None:
        """Restore :meth:`get_state` output into an env reset with the same seed."""
        self.model.set_state(st["model"])
        self.agents = list(st["agents"])
        self.n_steps = int(st["n_steps"])
        self._seed_rng.bit_generator.state = st["seed_rng"]
        self.rng.bit_generator.state = st["rng"]
        self.features.set_state(st["features"])
        for n, (buf, head) in st["windows"].items():
            self.windows[n].buf[:] = buf
            self.windows[n].head = int(head)
        for n, rs in st["rewards"].items():
            self.rewards[n].set_state(rs)
        for n, i in self._ix.items():
            self._eq0[i] = st["initial_equity"][n]
            self._eq_prev[i] = st["prev_equity"][n]
            self._eq_peak[i] = st["peak_equity"][n]
            self._pos0[i] = np.asarray(st["initial_positions"][n])


def parallel_env(scenario: Scenario | dict | str | Path, **kwargs: Any) -> MarketParallelEnv:
    """Build the market as a PettingZoo ParallelEnv (see :class:`MarketParallelEnv`)."""
    return MarketParallelEnv(scenario, **kwargs)


__all__ = ["MarketParallelEnv", "parallel_env", "LIMIT", "MARKET", "IOC", "gymnasium"]
