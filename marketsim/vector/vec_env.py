"""`MarketVecEnv`: N independent single-asset markets as one Stable-Baselines3 VecEnv.

Every market has its own numba limit order book, a mean-reverting fundamental, a market maker,
a zero-intelligence crowd and ``n_agents`` RL agents; all books are stepped in ONE numba call
per ``step`` (parallel over markets, see :mod:`marketsim.vector.kernels`). This trades the full
model's richness (Mesa agents, latency, fees, margin, multi-asset) for RL throughput: hundreds
of thousands of agent-steps per second instead of ~1,000.

Env index ``i = m * n_agents + j`` is agent ``j`` of market ``m`` (``num_envs = n_markets *
n_agents``); agents of one market share its book and see each other's impact.

Observation (``Box(-inf, inf, (W + 4 [+ 1],), float32)``), per agent:

* ``[0:W]``   last W log returns of the mid, in basis points, oldest first (zeros before the
  episode start);
* ``[W]``     spread / mid, in basis points;
* ``[W + 1]`` top-of-book imbalance ``(bq - aq) / (bq + aq)``;
* ``[W + 2]`` position / ``max_position_lots``;
* ``[W + 3]`` cash / equity (1 when flat);
* ``[W + 4]`` ``log(fundamental / mid)`` in basis points (only with ``fundamental_obs=True``).

Basis points keep every feature O(1) with the default market (returns ~0.3-1, spread ~2, gap
~2), so policies train without a normalising wrapper; ``env_spec.md``'s full env uses raw log
returns and spread in bps / 100 instead.

Actions: ``action_mode="target"``: ``Box(-1, 1, (1,))``, the target position as a fraction of
``max_position_lots``; ``"weights"``: ``Box(-1, 1, (2,))`` (asset, cash) weights as the weights
mode of ``env_spec.md`` for one asset, projected onto ``w_asset + w_cash = 1`` and the weight
bounds, then turned into a target position at the mid (capped at ``max_position_lots``). The
difference to the current position is sent as one MARKET order.

Reward: ``log(equity_t / equity_{t-1})``, equity = cash + position * mid. Episodes last
``episode_steps`` steps (truncation) or end when an agent's equity reaches 0 (termination of
that market, reward ``log(1e-4)``); the market resets in the same call (SB3 semantics:
``infos[i]["terminal_observation"]`` and ``infos[i]["TimeLimit.truncated"]``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from marketsim.book.constants import N_FILL_FIELDS, N_ORDER_FIELDS, NO_PRICE
from marketsim.book.kernels import M_LIVE, new_state
from marketsim.errors import ConfigError, StateError
from marketsim.vector import kernels as VK

logger = logging.getLogger(__name__)

_CHECK_MESSAGES = {
    1: "book is crossed (best bid >= best ask)",
    2: "a level's total quantity differs from the sum of its orders",
    3: "price bitmap disagrees with the non-empty levels",
    4: "best bid/ask is not the extreme non-empty level",
    5: "live order counts are wrong",
    6: "a level's FIFO queue links are broken",
    7: "the id hash table does not map every live order to its slot",
    8: "the free-slot list is wrong",
    9: "an order rests on the wrong side of the book",
    VK.CHECK_CASH: "cash is not conserved",
    VK.CHECK_SHARES: "shares are not conserved",
    VK.CHECK_POSITION: "an RL agent holds more than max_position_lots",
    VK.CHECK_COUNTERS: "a bookkeeping counter is out of range",
}

#: ``parallel=None`` uses numba's thread pool only with this many markets and at least
#: PARALLEL_MIN_THREADS threads. A parallel region hands work to the other threads and waits
#: for the slowest: on the shared 2-core dev machines (load ~8, no idle core) that cost
#: 0.05-15 ms per step against ~2 µs of work per market, and serial was faster at every N.
PARALLEL_MIN_MARKETS = 128
#: See PARALLEL_MIN_MARKETS.
PARALLEL_MIN_THREADS = 4

#: Names of the arrays of :meth:`MarketVecEnv.get_state` (besides ``rng`` and ``meta_info``).
STATE_ARRAYS = (
    "pool", "htab", "ladder", "bitmap", "meta", "par", "ist", "fst", "cash", "pos", "eq_prev",
    "win", "mm_ids", "zi_ids", "obs",
)  # fmt: skip


@dataclass(frozen=True)
class MarketParams:
    """Background market of one market (may differ per market: pass a list to the env).

    Units are in the names; "per step" rates are Poisson intensities per env step.
    """

    #: Mean reversion of the fundamental per step (half-life ln 2 / kappa steps).
    fund_kappa_per_step: float = 0.002
    #: Diffusion of the fundamental, ticks per sqrt(step).
    fund_sigma_ticks: float = 0.5
    #: Sd of the fundamental around the initial price at each reset; None: the OU stationary
    #: sd ``sigma / sqrt(2 kappa)``.
    fund_init_sd_ticks: float | None = None
    #: Crowd limit orders per step.
    zi_limit_rate: float = 2.0
    #: Crowd market orders per step.
    zi_market_rate: float = 0.3
    #: Probability per step that a live crowd order is cancelled.
    zi_cancel_prob: float = 0.02
    #: Mean distance of crowd limit orders from their reference price, ticks (geometric >= 1).
    zi_depth_mean_ticks: float = 5.0
    #: Largest distance of a crowd limit order, ticks.
    zi_max_depth_ticks: int = 100
    #: Mean crowd order size, lots (geometric >= 1).
    zi_size_mean_lots: float = 5.0
    #: Largest crowd order size, lots.
    zi_max_size_lots: int = 100
    #: Weight of the fundamental in the crowd's reference price (the rest: the mid).
    zi_anchor: float = 0.5
    #: Market-maker quote levels per side (0: no market maker).
    mm_levels: int = 3
    #: Market maker's half spread, ticks.
    mm_half_spread_ticks: float = 1.0
    #: Lots per market-maker quote.
    mm_size_lots: int = 5
    #: Ticks the market maker shifts its quotes down per lot of inventory.
    mm_skew_ticks_per_lot: float = 0.02
    #: The market maker stops quoting the side that would take |inventory| beyond this.
    mm_max_inventory_lots: int = 500
    #: Weight of the fundamental in the market maker's reference price (the rest: the mid).
    mm_anchor: float = 0.2
    #: Crowd levels per side seeded at each reset (1, 2, ... ticks from the fundamental).
    init_levels: int = 10
    #: Lots per seeded level.
    init_qty_lots: int = 5

    def validate(self, where: str = "params") -> None:
        """Raise ConfigError naming the first invalid field, its value and what is allowed."""
        nonneg = (
            "fund_kappa_per_step", "fund_sigma_ticks", "zi_limit_rate", "zi_market_rate",
            "mm_half_spread_ticks", "mm_skew_ticks_per_lot",
        )  # fmt: skip
        for name in nonneg:
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{where}.{name}={v!r}: must be a finite number >= 0")
        if self.fund_init_sd_ticks is not None and not (
            math.isfinite(self.fund_init_sd_ticks) and self.fund_init_sd_ticks >= 0
        ):
            raise ConfigError(
                f"{where}.fund_init_sd_ticks={self.fund_init_sd_ticks!r}: must be None "
                "(stationary sd) or a finite number >= 0"
            )
        if self.fund_init_sd_ticks is None and self.fund_kappa_per_step == 0:
            raise ConfigError(
                f"{where}.fund_init_sd_ticks=None needs fund_kappa_per_step > 0 (no stationary "
                "distribution without mean reversion); give fund_init_sd_ticks a number"
            )
        for name in ("zi_cancel_prob", "zi_anchor", "mm_anchor"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{where}.{name}={v!r}: must be in [0, 1]")
        for name in ("zi_depth_mean_ticks", "zi_size_mean_lots"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 1.0):
                raise ConfigError(f"{where}.{name}={v!r}: must be a finite number >= 1")
        ints = {
            "zi_max_depth_ticks": 1, "zi_max_size_lots": 1, "mm_levels": 0, "mm_size_lots": 1,
            "mm_max_inventory_lots": 1, "init_levels": 0, "init_qty_lots": 1,
        }  # fmt: skip
        for name, lo in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or v < lo:
                raise ConfigError(f"{where}.{name}={v!r}: must be an integer >= {lo}")
        if self.mm_levels > VK.MAX_MM_LEVELS:
            raise ConfigError(
                f"{where}.mm_levels={self.mm_levels}: at most {VK.MAX_MM_LEVELS} levels a side"
            )


@dataclass(frozen=True)
class VecConfig:
    """Settings shared by all markets of a :class:`MarketVecEnv`."""

    #: Steps per episode (then the market is truncated and reset).
    episode_steps: int = 1000
    #: Number W of past mid log returns in the observation.
    window: int = 16
    #: "target" (Box(-1, 1, (1,)) target position fraction) or "weights" (Box(-1, 1, (2,))).
    action_mode: str = "target"
    #: Observe log(fundamental / mid) (an informative signal) as the last feature.
    fundamental_obs: bool = True
    #: Largest |position| of an RL agent, lots; a target of +-1 means this many lots.
    max_position_lots: int = 10
    #: RL agents' initial cash in currency; None: max_position_lots * initial_price.
    initial_cash: float | None = None
    #: Weights mode: allow negative asset weights (short positions).
    allow_short: bool = True
    #: Weights mode: largest |asset weight| (gross leverage of one asset).
    max_weight: float = 1.0
    #: Currency per tick.
    tick_size: float = 0.01
    #: Initial price (the fundamental's long-run mean), currency.
    initial_price: float = 100.0
    #: Price ladder size per market, ticks, centred on the initial price (32 bytes per tick).
    ladder_ticks: int = 4096
    #: Live orders per market; a LIMIT order beyond it is rejected (72 bytes per slot).
    capacity: int = 4096
    #: Most crowd events per market and step (the Poisson count is capped there).
    max_events: int = 16
    #: Run markets in parallel (numba prange); None: when n_markets >= PARALLEL_MIN_MARKETS
    #: and numba has >= PARALLEL_MIN_THREADS threads (never on the 2-core dev machines).
    parallel: bool | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field, its value and what is allowed."""
        ints = {
            "episode_steps": 1, "window": 1, "max_position_lots": 1, "ladder_ticks": 256,
            "capacity": 64, "max_events": 1,
        }  # fmt: skip
        for name, lo in ints.items():
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"{name}={v!r}: must be an integer >= {lo}")
        if self.ladder_ticks % 64:
            raise ConfigError(f"ladder_ticks={self.ladder_ticks}: must be a multiple of 64")
        if self.action_mode not in ("target", "weights"):
            raise ConfigError(
                f"action_mode={self.action_mode!r}: must be one of 'target', 'weights'"
            )
        for name in ("tick_size", "initial_price", "max_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}={v!r}: must be a finite number > 0")
        if self.initial_price / self.tick_size < 100:
            raise ConfigError(
                f"initial_price={self.initial_price} is only "
                f"{self.initial_price / self.tick_size:.1f} ticks of tick_size={self.tick_size}: "
                "use at least 100 ticks (a smaller tick_size)"
            )
        if self.initial_cash is not None and not (
            math.isfinite(self.initial_cash) and self.initial_cash > 0
        ):
            raise ConfigError(
                f"initial_cash={self.initial_cash!r}: must be None or a finite number > 0"
            )
        if self.parallel is not None and not isinstance(self.parallel, bool):
            raise ConfigError(f"parallel={self.parallel!r}: must be None, True or False")


def _stack(a: np.ndarray, n: int) -> np.ndarray:
    """``n`` copies of ``a`` stacked along a new leading axis, C-contiguous."""
    out = np.empty((n, *a.shape), a.dtype)
    out[...] = a
    return out


def _param_rows(params, n_markets: int, cfg: VecConfig) -> np.ndarray:
    """Build the kernels' ``par`` table (N, N_PAR) from per-market params and the config."""
    if params is None:
        plist = [MarketParams()] * n_markets
    elif isinstance(params, MarketParams):
        plist = [params] * n_markets
    else:
        plist = list(params)
        if len(plist) != n_markets or not all(isinstance(p, MarketParams) for p in plist):
            raise ConfigError(
                f"params must be one MarketParams or a sequence of n_markets={n_markets} "
                f"MarketParams, got {type(params).__name__} of length {len(plist)}"
            )
    L = cfg.ladder_ticks
    mu = float(round(cfg.initial_price / cfg.tick_size))
    offset = max(0, int(mu) - L // 2)
    lo = offset + L // 8 if offset > 0 else mu / 4
    hi = offset + L - L // 8
    cash_ccy = (
        cfg.max_position_lots * cfg.initial_price if cfg.initial_cash is None else cfg.initial_cash
    )
    init_cash = float(round(cash_ccy / cfg.tick_size))
    if init_cash < 1 or init_cash > 2.0**52:
        raise ConfigError(
            f"initial_cash={cash_ccy} is {init_cash:.0f} ticks: must be between 1 and 2**52"
        )
    if cfg.allow_short:
        w_lo, w_hi = -cfg.max_weight, cfg.max_weight
    else:
        w_lo, w_hi = 0.0, min(cfg.max_weight, 1.0)
    par = np.zeros((n_markets, VK.N_PAR), np.float64)
    for m, p in enumerate(plist):
        p.validate(f"params[{m}]")
        k = p.fund_kappa_per_step
        a = math.exp(-k)
        s = p.fund_sigma_ticks * (math.sqrt((1 - a * a) / (2 * k)) if k > 0 else 1.0)
        init_sd = (
            p.fund_sigma_ticks / math.sqrt(2 * k)
            if p.fund_init_sd_ticks is None
            else p.fund_init_sd_ticks
        )
        row = par[m]
        row[VK.P_OFFSET] = offset
        row[VK.P_MU] = mu
        row[VK.P_FUND_A] = a
        row[VK.P_FUND_S] = s
        row[VK.P_FUND_INIT_SD] = init_sd
        row[VK.P_FUND_LO] = lo
        row[VK.P_FUND_HI] = hi
        row[VK.P_ZI_LIMIT] = p.zi_limit_rate
        row[VK.P_ZI_MARKET] = p.zi_market_rate
        row[VK.P_ZI_CANCEL] = p.zi_cancel_prob
        row[VK.P_ZI_DEPTH_P] = 1.0 / p.zi_depth_mean_ticks
        row[VK.P_ZI_MAX_DEPTH] = p.zi_max_depth_ticks
        row[VK.P_ZI_SIZE_P] = 1.0 / p.zi_size_mean_lots
        row[VK.P_ZI_MAX_SIZE] = p.zi_max_size_lots
        row[VK.P_ZI_ANCHOR] = p.zi_anchor
        row[VK.P_MM_LEVELS] = p.mm_levels
        row[VK.P_MM_HALF_SPREAD] = p.mm_half_spread_ticks
        row[VK.P_MM_SIZE] = p.mm_size_lots
        row[VK.P_MM_SKEW] = p.mm_skew_ticks_per_lot
        row[VK.P_MM_MAX_INV] = p.mm_max_inventory_lots
        row[VK.P_MM_ANCHOR] = p.mm_anchor
        row[VK.P_INIT_LEVELS] = p.init_levels
        row[VK.P_INIT_QTY] = p.init_qty_lots
        row[VK.P_MAX_POS] = cfg.max_position_lots
        row[VK.P_INIT_CASH] = init_cash
        row[VK.P_EPISODE_STEPS] = cfg.episode_steps
        row[VK.P_MODE] = VK.MODE_TARGET if cfg.action_mode == "target" else VK.MODE_WEIGHTS
        row[VK.P_W_LO] = w_lo
        row[VK.P_W_HI] = w_hi
        row[VK.P_FUND_OBS] = 1.0 if cfg.fundamental_obs else 0.0
        row[VK.P_MAX_EVENTS] = cfg.max_events
    return par


class MarketVecEnv(VecEnv):
    """``n_markets`` independent single-asset markets with ``n_agents`` RL agents each.

    A Stable-Baselines3 ``VecEnv`` (``num_envs = n_markets * n_agents``); see the module
    docstring for observations, actions, rewards and episodes. Randomness comes from one numpy
    Generator seeded by ``seed`` (or :meth:`seed`): each step draws a fixed block of uniforms
    and normals per market and passes them to the kernel, so the same seed and actions give
    bit-identical trajectories whatever the number of numba threads.

    Args:
        n_markets: Number of independent markets (books).
        n_agents: RL agents per market (they trade in a random order each step).
        config: Shared settings (:class:`VecConfig`); keyword ``overrides`` replace fields.
        params: One :class:`MarketParams` for all markets, or one per market.
        seed: Seed of the first :meth:`reset`.
        **overrides: ``VecConfig`` fields, e.g. ``episode_steps=200``.

    Runtime: one ``step`` is one numba call, O(N * (events + fills) / threads): ~2 µs per
    market on one core of the 2-core dev machines (default parameters), plus ~10-15 µs of
    Python. Memory per market: ~150 bytes per order slot (pool, id table, fill scratch, id
    list) and 24 per ladder tick: ~0.7 MB with the defaults.

    Example:
        >>> env = MarketVecEnv(8, episode_steps=100, seed=0)
        >>> obs = env.reset()
        >>> obs, rewards, dones, infos = env.step(np.zeros((8, 1), np.float32))
        >>> obs.shape, rewards.shape
        ((8, 21), (8,))
    """

    render_mode = None

    def __init__(
        self,
        n_markets: int,
        n_agents: int = 1,
        config: VecConfig | None = None,
        params: MarketParams | Sequence[MarketParams] | None = None,
        seed: int = 0,
        **overrides: Any,
    ) -> None:
        for name, v in (("n_markets", n_markets), ("n_agents", n_agents)):
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name}={v!r}: must be an integer >= 1")
        cfg = config if config is not None else VecConfig()
        if not isinstance(cfg, VecConfig):
            raise ConfigError(f"config must be a VecConfig, got {type(cfg).__name__}")
        fields = {f.name for f in dataclasses.fields(VecConfig)}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ConfigError(f"unknown MarketVecEnv option(s) {unknown}; known: {sorted(fields)}")
        cfg = dataclasses.replace(cfg, **overrides)
        cfg.validate()
        self.config = cfg
        self.n_markets = int(n_markets)
        self.n_agents = int(n_agents)
        self._par = _param_rows(params, self.n_markets, cfg)
        N, n_ag = self.n_markets, self.n_agents
        self.obs_dim = cfg.window + VK.N_BASE_FEATURES + (1 if cfg.fundamental_obs else 0)
        self.action_dim = 1 if cfg.action_mode == "target" else 2
        obs_space = spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        act_space = spaces.Box(-1.0, 1.0, (self.action_dim,), np.float32)
        self._alloc()
        self._rng: np.random.Generator | None = None
        self._seed = int(seed)
        self._pending_seed: int | None = int(seed)
        self._actions: np.ndarray | None = None
        self._started = False
        self._closed = False
        auto = N >= PARALLEL_MIN_MARKETS and numba.get_num_threads() >= PARALLEL_MIN_THREADS
        #: Step markets on numba's thread pool (else on the calling thread only).
        self.parallel = cfg.parallel if cfg.parallel is not None else auto
        #: Market of each env index.
        self.market_index = np.repeat(np.arange(N), n_ag)
        #: Agent (within its market) of each env index.
        self.agent_index = np.tile(np.arange(n_ag), N)
        super().__init__(N * n_ag, obs_space, act_space)

    # ------------------------------------------------------------------ state arrays
    def _alloc(self) -> None:
        cfg = self.config
        N, n_ag = self.n_markets, self.n_agents
        one = new_state(cfg.capacity, cfg.ladder_ticks)
        # One empty book per market, market-major (each market's rows contiguous: C order).
        self._pool = _stack(one.pool, N)
        self._htab = _stack(one.htab, N)
        self._ladder = _stack(one.ladder, N)
        self._bitmap = _stack(one.bitmap, N)
        self._meta = _stack(one.meta, N)
        self._fills = np.zeros((N, cfg.capacity + 1, N_FILL_FIELDS), np.int64)
        # Per-market message batch and its rejects: the largest batch is the crowd's events,
        # the market maker's quotes, the RL agents' orders or the seeded book at reset.
        init_levels = int(self._par[:, VK.P_INIT_LEVELS].max())
        batch = max(cfg.max_events, 2 * VK.MAX_MM_LEVELS, n_ag, 2 * init_levels)
        self._orders = np.zeros((N, batch, N_ORDER_FIELDS), np.int64)
        self._rejects = np.zeros((N, batch, 2), np.int64)
        self._ist = np.zeros((N, VK.N_IST), np.int64)
        self._fst = np.zeros((N, VK.N_FST), np.float64)
        self._cash = np.zeros((N, VK.ACC_RL + n_ag), np.int64)
        self._pos = np.zeros((N, VK.ACC_RL + n_ag), np.int64)
        self._eq_prev = np.zeros((N, n_ag), np.float64)
        self._win = np.zeros((N, cfg.window), np.float64)
        self._mm_ids = np.zeros((N, 2 * VK.MAX_MM_LEVELS), np.int64)
        self._zi_ids = np.zeros((N, cfg.capacity), np.int64)
        self._obs = np.zeros((N * n_ag, self.obs_dim), np.float32)
        self._term_obs = np.zeros_like(self._obs)
        self._rew = np.zeros(N * n_ag, np.float32)
        self._done = np.zeros(N, np.int8)
        self._u = np.zeros((N, VK.U_EVENTS + VK.N_U_PER_EVENT * cfg.max_events), np.float64)
        self._z = np.zeros((N, VK.N_Z), np.float64)
        self._act = np.zeros((N * n_ag, self.action_dim), np.float64)
        self._check_out = np.zeros(N, np.int64)

    def _state_args(self) -> tuple:
        return (
            self._pool, self._htab, self._ladder, self._bitmap, self._meta, self._fills,
            self._rejects, self._orders, self._par, self._ist, self._fst, self._cash, self._pos,
            self._eq_prev, self._win, self._mm_ids, self._zi_ids,
        )  # fmt: skip

    def _run(self, op: int) -> int:
        kern = VK.run_markets if self.parallel else VK.run_markets_serial
        return kern(
            op, *self._state_args(), self._act, self._u, self._z, self._obs, self._rew,
            self._done, self._term_obs,
        )  # fmt: skip

    # ------------------------------------------------------------------ VecEnv API
    def seed(self, seed: int | None = None) -> list[int | None]:
        """Seed the next :meth:`reset` (all markets share one Generator; returns the seed per
        env index)."""
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**31))
        self._pending_seed = int(seed)
        return [self._pending_seed] * self.num_envs

    def reset(self) -> np.ndarray:
        """Start a new episode in every market; return the first observations ``(num_envs, D)``.

        Uses the seed given to the constructor (first reset) or to :meth:`seed`; otherwise
        continues the env's random stream. O(N * (capacity + ladder_ticks)).
        """
        self._check_open()
        if self._pending_seed is not None:
            self._seed = self._pending_seed
            self._rng = np.random.default_rng(self._seed)
            self._pending_seed = None
            logger.debug("MarketVecEnv: %d markets seeded with %d", self.n_markets, self._seed)
        self._rng.standard_normal(out=self._z)
        self._run(VK.OP_RESET)
        self._started = True
        self._actions = None
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._reset_options()
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Validate and store the actions ``(num_envs, action_dim)`` (or ``(num_envs,)`` in
        target mode) for :meth:`step_wait`. Values must lie in [-1, 1]."""
        self._check_open()
        if not self._started:
            raise ConfigError("call reset() before step()")
        a = np.asarray(actions)
        if a.size != self._act.size or a.shape[:1] != (self.num_envs,):
            raise ConfigError(
                f"actions have shape {a.shape}; expected ({self.num_envs}, {self.action_dim}) "
                f"(num_envs = n_markets * n_agents, action space {self.action_space})"
            )
        act = self._act
        act[:] = a.reshape(act.shape)
        if not VK._actions_ok(act):
            ok = (act >= -1.0 - 1e-6) & (act <= 1.0 + 1e-6)
            bad = np.flatnonzero(~ok.all(axis=1))
            raise ConfigError(
                f"actions must be finite and in [-1, 1] (the action space {self.action_space}); "
                f"env(s) {bad[:10].tolist()} got {act[bad[:3]].tolist()}"
            )
        self._actions = act

    def step_wait(self):
        """Step every market once; return ``(obs, rewards, dones, infos)`` (SB3 VecEnv)."""
        if self._actions is None:
            raise ConfigError("step_wait() called without step_async(actions)")
        self._actions = None
        self._rng.random(out=self._u)
        self._rng.standard_normal(out=self._z)
        n_done = self._run(VK.OP_STEP)
        n_ag = self.n_agents
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if n_ag == 1:
            dones = self._done != VK.RUNNING
        else:
            dones = np.repeat(self._done != VK.RUNNING, n_ag)
        if n_done:
            for m in np.flatnonzero(self._done):
                trunc = bool(self._done[m] == VK.TRUNCATED)
                for i in range(m * n_ag, (m + 1) * n_ag):
                    infos[i]["terminal_observation"] = self._term_obs[i].copy()
                    infos[i]["TimeLimit.truncated"] = trunc
        return self._obs.copy(), self._rew.copy(), dones, infos

    def close(self) -> None:
        """Free the state arrays; the env cannot be used afterwards."""
        self._closed = True
        self._pool = self._htab = self._ladder = self._fills = self._zi_ids = None

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("this MarketVecEnv was closed; build a new one")

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        idx = list(self._get_indices(indices))
        for i in idx:
            if not 0 <= int(i) < self.num_envs:
                raise ConfigError(f"env index {i} out of range 0 .. {self.num_envs - 1}")
        return [int(i) for i in idx]

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute of this (shared) env, once per requested env index; MarketParams
        fields give each env's market value."""
        idx = self._indices(indices)
        if attr_name in _MARKET_PARAM_COLUMNS:
            col, scale = _MARKET_PARAM_COLUMNS[attr_name]
            return [float(scale(self._par[i // self.n_agents, col])) for i in idx]
        value = getattr(self, attr_name)
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a per-market background parameter (``zi_limit_rate``, ``zi_market_rate``,
        ``zi_cancel_prob``, ``zi_anchor``, ``mm_anchor``, ``mm_half_spread_ticks``,
        ``mm_skew_ticks_per_lot``) for the markets of the given env indices (takes effect at the
        next step), or any other attribute of the env itself (``indices`` must then be None)."""
        idx = self._indices(indices)
        if attr_name in _SETTABLE:
            col, lo, hi = _SETTABLE[attr_name]
            v = float(value)
            if not lo <= v <= hi:
                raise ConfigError(f"{attr_name}={value!r}: must be in [{lo}, {hi}]")
            for i in idx:
                self._par[i // self.n_agents, col] = v
            return
        if attr_name in _MARKET_PARAM_COLUMNS:
            raise ConfigError(
                f"{attr_name} cannot be changed on a running env; settable per market: "
                f"{sorted(_SETTABLE)} (others: build the env with new MarketParams)"
            )
        if indices is not None and len(idx) != self.num_envs:
            raise ConfigError(
                f"{attr_name} is shared by all markets of MarketVecEnv: set it with "
                f"indices=None; per-market parameters: {sorted(_SETTABLE)}"
            )
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs
    ) -> list[Any]:
        """Call a method of the (shared) env once and return its result per env index."""
        idx = self._indices(indices)
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """No gymnasium wrappers inside: False for every env index."""
        return [False for _ in self._indices(indices)]

    def get_images(self) -> list[None]:
        """No rendering."""
        return [None] * self.num_envs

    # ------------------------------------------------------------------ diagnostics
    def check(self) -> None:
        """Assert every market's invariants: the book's own check, cash and shares conserved,
        RL positions within ``max_position_lots``, counters in range. O(N * (cap + L))."""
        self._check_open()
        VK.check_markets(
            self._pool, self._htab, self._ladder, self._bitmap, self._meta, self._par,
            self._ist, self._fst, self._cash, self._pos, self._check_out,
        )  # fmt: skip
        bad = np.flatnonzero(self._check_out)
        if len(bad):
            m = int(bad[0])
            raise AssertionError(
                f"market {m} (of {len(bad)} broken): "
                f"{_CHECK_MESSAGES.get(int(self._check_out[m]), self._check_out[m])}"
            )

    @property
    def mid_price(self) -> np.ndarray:
        """Last two-sided mid per market, currency ``(N,)``."""
        return self._fst[:, VK.F_MID] * self.config.tick_size

    @property
    def fundamental(self) -> np.ndarray:
        """Fundamental value per market, currency ``(N,)``."""
        return self._fst[:, VK.F_FUND] * self.config.tick_size

    @property
    def spread_ticks(self) -> np.ndarray:
        """Last two-sided spread per market, ticks ``(N,)``."""
        return self._fst[:, VK.F_SPREAD].copy()

    @property
    def positions(self) -> np.ndarray:
        """RL positions, lots ``(N, n_agents)``."""
        return self._pos[:, VK.ACC_RL :].copy()

    @property
    def cash(self) -> np.ndarray:
        """RL cash, currency ``(N, n_agents)``."""
        return self._cash[:, VK.ACC_RL :] * self.config.tick_size

    @property
    def equity(self) -> np.ndarray:
        """RL equity at the last mid, currency ``(N, n_agents)``."""
        mid = self._fst[:, VK.F_MID][:, None]
        return (self._cash[:, VK.ACC_RL :] + self._pos[:, VK.ACC_RL :] * mid) * (
            self.config.tick_size
        )

    def best_quotes(self) -> tuple[np.ndarray, np.ndarray]:
        """Best bid and ask per market in ticks (actual prices), NaN where a side is empty."""
        off = self._par[:, VK.P_OFFSET]
        bb = self._meta[:, 0].astype(np.float64)
        ba = self._meta[:, 1].astype(np.float64)
        bb = np.where(self._meta[:, 0] == NO_PRICE, np.nan, bb + off)
        ba = np.where(self._meta[:, 1] == NO_PRICE, np.nan, ba + off)
        return bb, ba

    def stats(self) -> dict[str, np.ndarray]:
        """Per-market counters: episodes, trades, volume, rl_volume (lots), rejected_full
        (LIMIT orders rejected because the pool was full), live_orders, step (in episode)."""
        ist = self._ist
        return {
            "episodes": ist[:, VK.I_EPISODES].copy(),
            "trades": ist[:, VK.I_TRADES].copy(),
            "volume": ist[:, VK.I_VOLUME].copy(),
            "rl_volume": ist[:, VK.I_RL_VOLUME].copy(),
            "rejected_full": ist[:, VK.I_REJ_FULL].copy(),
            "live_orders": self._meta[:, M_LIVE].copy(),
            "step": ist[:, VK.I_STEP].copy(),
        }

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """The whole env state: arrays (copies) plus the Generator state (JSON-able dict).

        Restoring it with :meth:`set_state` into an env built with the same arguments continues
        bit-identically. No pickle needed: save the arrays with ``np.savez``.
        """
        self._check_open()
        st: dict[str, Any] = {k: getattr(self, "_" + k).copy() for k in STATE_ARRAYS}
        st["rng"] = None if self._rng is None else self._rng.bit_generator.state
        st["started"] = self._started
        return st

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state` output (shapes must match this env's)."""
        self._check_open()
        for k in STATE_ARRAYS:
            if k not in state:
                raise StateError(f"MarketVecEnv state lacks array {k!r}")
            cur = getattr(self, "_" + k)
            arr = np.asarray(state[k])
            if arr.shape != cur.shape or arr.dtype != cur.dtype:
                raise StateError(
                    f"MarketVecEnv state array {k!r} has shape {arr.shape} {arr.dtype}; this env "
                    f"needs {cur.shape} {cur.dtype} (build it with the same n_markets, n_agents "
                    "and config)"
                )
        for k in STATE_ARRAYS:
            getattr(self, "_" + k)[...] = state[k]
        if state.get("rng") is not None:
            self._rng = np.random.default_rng()
            self._rng.bit_generator.state = state["rng"]
        self._pending_seed = None
        self._started = bool(state.get("started", True))
        self._actions = None


def _ident(x: float) -> float:
    return x


#: MarketParams fields readable through get_attr: column of ``par`` and conversion.
_MARKET_PARAM_COLUMNS = {
    "zi_limit_rate": (VK.P_ZI_LIMIT, _ident),
    "zi_market_rate": (VK.P_ZI_MARKET, _ident),
    "zi_cancel_prob": (VK.P_ZI_CANCEL, _ident),
    "zi_anchor": (VK.P_ZI_ANCHOR, _ident),
    "zi_depth_mean_ticks": (VK.P_ZI_DEPTH_P, lambda p: 1.0 / p),
    "zi_size_mean_lots": (VK.P_ZI_SIZE_P, lambda p: 1.0 / p),
    "mm_levels": (VK.P_MM_LEVELS, _ident),
    "mm_half_spread_ticks": (VK.P_MM_HALF_SPREAD, _ident),
    "mm_size_lots": (VK.P_MM_SIZE, _ident),
    "mm_skew_ticks_per_lot": (VK.P_MM_SKEW, _ident),
    "mm_anchor": (VK.P_MM_ANCHOR, _ident),
}
#: Per-market parameters set_attr may change on a running env: column and allowed range.
_SETTABLE = {
    "zi_limit_rate": (VK.P_ZI_LIMIT, 0.0, 1e6),
    "zi_market_rate": (VK.P_ZI_MARKET, 0.0, 1e6),
    "zi_cancel_prob": (VK.P_ZI_CANCEL, 0.0, 1.0),
    "zi_anchor": (VK.P_ZI_ANCHOR, 0.0, 1.0),
    "mm_anchor": (VK.P_MM_ANCHOR, 0.0, 1.0),
    "mm_half_spread_ticks": (VK.P_MM_HALF_SPREAD, 0.0, 1e6),
    "mm_skew_ticks_per_lot": (VK.P_MM_SKEW, 0.0, 1e6),
}
