"""Shadow mode: run the simulated market (and optionally an RL policy) on live ticks.

:class:`ShadowRunner` drives a :class:`~marketsim.model.MarketModel` (or a
:class:`~marketsim.env.parallel.MarketParallelEnv` / :class:`~marketsim.env.gym_env.MarketEnv`
with a policy) one step at a time. Before each step it polls its
:class:`~marketsim.live.adapters.LiveSource` (non-blocking: it takes what has arrived and never
waits for the network) and applies the ticks:

* ``trade`` / ``quote`` / ``bar``: the ticker's reference value becomes the tick's price
  (trade or bar price, quote mid) through :class:`LiveFeed`, which replaces the model's
  fundamental feed, so value traders, market makers and the RL observations follow the live
  market while the simulated book produces its own prices, impact and fills;
* ``add_ticker`` / ``remove_ticker``: the asset is listed (``model.add_asset``) or delisted
  (``model.remove_asset``) at run time. Only assets declared in the scenario's ``[[assets]]``
  can be listed (their slots are fixed by ``max_assets``); ticks of undeclared tickers are
  counted per ticker and ignored, with one warning per ticker.

The runner steps as fast as possible (``cadence_s = 0``) or at a fixed wall-clock cadence,
sleeping only for the rest of a period; a step that overruns its period is counted and the
next one starts at once (no catch-up burst).

Example:
    >>> src = QueueAdapter()
    >>> runner = ShadowRunner(MarketModel(scenario), src, cadence_s=1.0)  # doctest: +SKIP
    >>> runner.run(duration_s=3600)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from marketsim.errors import ConfigError, DataError, StateError
from marketsim.feeds.base import Feed, register_feed
from marketsim.live.adapters import PRICE_KINDS as _PRICE_KINDS
from marketsim.live.adapters import LiveSource, Tick

logger = logging.getLogger(__name__)

__all__ = ["LiveFeed", "ShadowRunner"]


@register_feed("live")
class LiveFeed(Feed):
    """A feed whose value per slot is the latest live price pushed with :meth:`update`.

    :meth:`advance` moves nothing (live data has no model of its own) and only ages the
    values; it draws no random numbers. Feature ``live_age_steps``: steps since each slot's
    last live update (NaN for empty slots). Values are currency units.

    Args:
        max_assets: Number of asset slots.
        name: Instance name (default ``"live"``).
    """

    def __init__(self, max_assets: int = 1, *, name: str | None = None) -> None:
        super().__init__(max_assets, name=name)
        self._values = np.full(self.max_assets, np.nan)
        self._age = np.full(self.max_assets, np.nan)
        self._updates = np.zeros(self.max_assets, np.int64)
        self._values_ro = self._values.view()
        self._values_ro.flags.writeable = False
        self._age_ro = self._age.view()
        self._age_ro.flags.writeable = False

    def advance(self, step: int, dt_seconds: float, rng: np.random.Generator) -> None:
        """Age every slot by one step. O(max_assets)."""
        self._age += 1.0

    def values(self) -> np.ndarray:
        """Latest value per slot (read-only view; NaN for empty slots). O(1)."""
        return self._values_ro

    def features(self) -> dict[str, np.ndarray]:
        """``{"live_age_steps": steps since each slot's last update}`` (read-only view)."""
        return {"live_age_steps": self._age_ro}

    def add_asset(self, slot: int, initial_value: float, **params: Any) -> None:
        """Start slot ``slot`` at ``initial_value`` until the first live update. O(1)."""
        slot = self.check_slot(slot)
        if params:
            raise ConfigError(f"LiveFeed takes no per-asset params; got {sorted(params)}")
        v = float(initial_value)
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"initial_value={initial_value!r}: must be a finite number > 0")
        self._values[slot] = v
        self._age[slot] = 0.0
        self._updates[slot] = 0

    def remove_asset(self, slot: int) -> None:
        """Free slot ``slot`` (its value becomes NaN). O(1)."""
        slot = self.check_slot(slot)
        self._values[slot] = np.nan
        self._age[slot] = np.nan
        self._updates[slot] = 0

    def _set(self, slot: int, value: float) -> None:
        """:meth:`update` without the checks, for callers that validated both. O(1)."""
        self._values[slot] = value
        self._age[slot] = 0.0
        self._updates[slot] += 1

    def update(self, slot: int, value: float) -> None:
        """Set the live value of an active slot. O(1).

        Raises:
            ConfigError: the slot holds no asset.
            DataError: ``value`` is not a finite number > 0.
        """
        slot = self.check_slot(slot)
        if self._values[slot] != self._values[slot]:
            raise ConfigError(f"slot {slot} holds no asset; add_asset({slot}, ...) first")
        v = float(value)
        if not (math.isfinite(v) and v > 0):
            raise DataError(f"live value {value!r} for slot {slot}: must be a finite number > 0")
        self._values[slot] = v
        self._age[slot] = 0.0
        self._updates[slot] += 1

    @property
    def updates(self) -> np.ndarray:
        """Live updates received per slot since it was added (read-only copy)."""
        return self._updates.copy()

    def get_state(self) -> dict[str, Any]:
        return {
            "kind": "live",
            "values": self._values.copy(),
            "age": self._age.copy(),
            "updates": self._updates.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("kind") != "live":
            raise StateError(f"state is of feed kind {state.get('kind')!r}, not 'live'")
        for key, arr in (("values", self._values), ("age", self._age), ("updates", self._updates)):
            v = np.asarray(state[key])
            if v.shape != arr.shape:
                raise StateError(
                    f"LiveFeed state {key!r} has shape {v.shape}, this feed needs {arr.shape}"
                )
            arr[:] = v


def _resolve(target: Any) -> tuple[Any, Any, str | None]:
    """(model or None, parallel env or None, single agent name for a Gymnasium env)."""
    from marketsim.model import MarketModel

    if isinstance(target, MarketModel):
        return target, None, None
    penv = getattr(target, "penv", None)
    if penv is not None and hasattr(target, "agent"):
        return None, penv, target.agent
    if hasattr(target, "possible_agents") and hasattr(target, "step") and hasattr(target, "reset"):
        return None, target, None
    raise ConfigError(
        f"ShadowRunner target must be a MarketModel, a MarketParallelEnv or a MarketEnv, "
        f"got {type(target).__name__}"
    )


class ShadowRunner:
    """Steps a model (or an env with a policy) on live ticks, never waiting on the network.

    Args:
        target: A :class:`~marketsim.model.MarketModel`, a
            :class:`~marketsim.env.parallel.MarketParallelEnv` or a
            :class:`~marketsim.env.gym_env.MarketEnv` (reset here if not yet reset).
        source: Where ticks come from (polled once per step).
        policy: For an env: ``policy(obs) -> actions`` (a dict by agent for the parallel env,
            one action for the Gymnasium env). ``None``: RL agents hold. Ignored for a model.
        cadence_s: Wall-clock period of a step; 0 = as fast as possible.
        max_ticks_per_step: Most ticks applied per step (the rest wait for the next step).
        auto_list: A price tick of a declared but unlisted ticker lists it (else it is counted
            in ``not_listed`` and ignored until an ``add_ticker`` arrives).
        monitor: A :class:`~marketsim.monitor.Monitor` of this runner's model, or a dict of
            Monitor keyword arguments to build one (with this source attached).
        seed: Seed of the env reset when the runner resets it.
        obs: The env's current observation, when the env was already reset by the caller
            (the policy's first input).
        clock, sleep: Wall clock and sleep functions (tests pass fakes).

    Attributes:
        counts: Counter of ticks by outcome (``prices``, ``listed``, ``delisted``, ``unknown``,
            ``not_listed``, ``already_listed``, ``out_of_range``) and ``steps``/``overruns``.
        unknown: Ticks per undeclared ticker.
    """

    def __init__(
        self,
        target: Any,
        source: LiveSource,
        *,
        policy: Callable[[Any], Any] | None = None,
        cadence_s: float = 0.0,
        max_ticks_per_step: int = 10_000,
        auto_list: bool = False,
        monitor: Any = None,
        seed: int | None = None,
        obs: Any = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(source, LiveSource):
            raise ConfigError(f"source must be a LiveSource, got {type(source).__name__}")
        if not (isinstance(cadence_s, int | float) and math.isfinite(cadence_s) and cadence_s >= 0):
            raise ConfigError(f"cadence_s={cadence_s!r}: must be a finite number >= 0 (0 = max)")
        if isinstance(max_ticks_per_step, bool) or not isinstance(max_ticks_per_step, int):
            raise ConfigError(f"max_ticks_per_step={max_ticks_per_step!r}: must be an integer")
        if max_ticks_per_step < 1:
            raise ConfigError(f"max_ticks_per_step={max_ticks_per_step}: must be >= 1")
        model, env, single = _resolve(target)
        self.source = source
        self.policy = policy
        self.cadence_s = float(cadence_s)
        self.max_ticks_per_step = max_ticks_per_step
        self.auto_list = bool(auto_list)
        self.env = env
        self._single = single
        self._clock = clock
        self._sleep = sleep
        self.obs: Any = obs
        if env is not None:
            if env.model is None or not env.agents:
                self.obs, _ = env.reset(seed=seed)
                if single is not None:
                    self.obs = self.obs[single]
            elif obs is None and policy is not None:
                raise ConfigError(
                    "the env was already reset: pass its last observation as obs=..., or pass "
                    "an env that was not reset yet (the runner resets it)"
                )
            model = env.model
        self.model = model
        self.counts: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self._warned: set[tuple[str, str]] = set()
        self._deadline: float | None = None
        self.last_lag_s = 0.0
        self._declared = {a.symbol for a in model.scenario.assets}
        self._grid = {a.symbol: (a.tick_size, a.max_price_ticks) for a in model.scenario.assets}
        self._n_prices = 0
        self.feed = self._install(model)
        self._own_monitor = False
        if isinstance(monitor, Mapping):
            from marketsim.monitor import Monitor

            kwargs = dict(monitor)
            kwargs.setdefault("source", source)
            monitor = Monitor(model, **kwargs)
            self._own_monitor = True
        self.monitor = monitor
        self.done = self._is_done()

    def __repr__(self) -> str:
        return f"ShadowRunner(model t={self.model.t}, source={self.source!r})"

    # ---------------------------------------------------------------- setup
    def _install(self, model: Any) -> LiveFeed:
        old = model.feed
        if isinstance(old, LiveFeed):
            return old
        feed = LiveFeed(model.max_assets)
        vals = np.asarray(old.values(), dtype=float)
        for s in model.exchange.live_slots():
            v = float(vals[s])
            if not (math.isfinite(v) and v > 0):
                v = model.scenario_asset(model.exchange.assets[s].symbol).initial_price
            feed.add_asset(s, v)
        model.feed = feed
        model.__dict__.pop("_future_cache", None)
        logger.info(
            "shadow mode: live feed installed over %d listed assets",
            len(model.exchange.live_slots()),
        )
        return feed

    def _is_done(self) -> bool:
        if self.env is not None:
            return not self.env.agents
        return self.model.done

    def _warn_once(self, what: str, sym: str, msg: str, *args: Any) -> None:
        if (what, sym) not in self._warned:
            self._warned.add((what, sym))
            logger.warning(msg, *args)

    # ---------------------------------------------------------------- ticks
    def ingest(self) -> int:
        """Poll the source (never waits) and apply what arrived; return the tick count."""
        ticks = self.source.poll(self.max_ticks_per_step)
        if not ticks:
            return 0
        ex = self.model.exchange
        slots = {a.symbol: s for s, a in enumerate(ex.assets) if a is not None}
        for t in ticks:
            self._apply(t, slots)
        self._sync_counts()
        self.last_lag_s = max(0.0, (time.time_ns() - ticks[-1].recv_ns) / 1e9)
        if self.monitor is not None:
            self.monitor.note_ingest(len(ticks), self.last_lag_s)
        return len(ticks)

    def _apply(self, t: Tick, slots: dict[str, int]) -> None:
        sym, kind = t.ticker, t.kind
        if kind in _PRICE_KINDS:  # fast path: a price of a listed asset
            slot = slots.get(sym)
            if slot is not None:
                tick, hi = self._grid[sym]
                px = t.ref_price()
                if 1 <= round(px / tick) < hi:
                    self.feed._set(slot, px)
                    self._n_prices += 1
                    return
        if sym not in self._declared:
            self.unknown[sym] += 1
            self.counts["unknown"] += 1
            self._warn_once(
                "unknown",
                sym,
                "live ticker %r is not declared in the scenario (declared: %s): its ticks are "
                "counted and ignored; add it to [[assets]] to trade it",
                sym,
                ", ".join(sorted(self._declared)),
            )
            return
        if kind == "add_ticker":
            if sym in slots:
                self.counts["already_listed"] += 1
            else:
                slots[sym] = self._list(sym)
            if t.price == t.price:
                self._set_price(slots[sym], sym, t.price)
            return
        if kind == "remove_ticker":
            if sym in slots:
                self._delist(sym)
                del slots[sym]
            else:
                self.counts["not_listed"] += 1
            return
        slot = slots.get(sym)
        if slot is None:
            if not self.auto_list:
                self.counts["not_listed"] += 1
                self._warn_once(
                    "not_listed",
                    sym,
                    "live ticks of %r are ignored: it is declared but not listed (send an "
                    "add_ticker message or use auto_list=True)",
                    sym,
                )
                return
            slot = slots[sym] = self._list(sym)
        self._set_price(slot, sym, t.ref_price())

    def _sync_counts(self) -> None:
        if self._n_prices:
            self.counts["prices"] += self._n_prices
            self._n_prices = 0

    def _set_price(self, slot: int, sym: str, price: float) -> None:
        a = self.model.scenario_asset(sym)
        ticks = price / a.tick_size
        if not 1 <= round(ticks) < a.max_price_ticks:
            self.counts["out_of_range"] += 1
            self._warn_once(
                "range",
                sym,
                "live price %g of %r is outside its book's range (tick_size %g, max_price_ticks "
                "%d): ignored",
                price,
                sym,
                a.tick_size,
                a.max_price_ticks,
            )
            return
        self.feed.update(slot, price)
        self.counts["prices"] += 1

    def _list(self, sym: str) -> int:
        m = self.model
        # the stream now decides when this asset trades: drop the scenario's own schedule
        m._pending_adds = [x for x in m._pending_adds if x[2] != sym]
        slot = m.add_asset(sym)
        self.counts["listed"] += 1
        logger.info("shadow mode: listed %r in slot %d at step %d", sym, slot, m.t)
        return slot

    def _delist(self, sym: str) -> None:
        m = self.model
        m._pending_removals = [x for x in m._pending_removals if x[1] != sym]
        m.remove_asset(sym)
        self.counts["delisted"] += 1
        logger.info("shadow mode: delisted %r at step %d", sym, m.t)

    # ---------------------------------------------------------------- stepping
    def step(self) -> int:
        """Ingest what has arrived, run one model step (or env step); return ticks applied.

        With ``cadence_s > 0`` it then sleeps for the rest of the period.

        Raises:
            StateError: the run is over (``done``).
        """
        if self.done:
            raise StateError("the shadow run is over (the scenario or episode has ended)")
        t0 = self._clock()
        n = self.ingest()
        if self.env is None:
            self.model.run(1)
        else:
            self._env_step()
        self.counts["steps"] += 1
        self.done = self._is_done()
        if self.cadence_s > 0:
            self._pace(t0)
        return n

    def _env_step(self) -> None:
        env = self.env
        if self._single is not None:
            if self.policy is None:
                raise ConfigError("a Gymnasium MarketEnv needs a policy(obs) -> action")
            actions = {self._single: self.policy(self.obs)}
            obs, *_ = env.step(actions)
            self.obs = obs.get(self._single)
        else:
            actions = {} if self.policy is None else self.policy(self.obs)
            self.obs, *_ = env.step(actions)
        if env.model is not self.model:  # the env was reset behind our back
            raise StateError("the env built a new model (reset?): build a new ShadowRunner")

    def _pace(self, t0: float) -> None:
        if self._deadline is None:
            self._deadline = t0
        self._deadline += self.cadence_s
        wait = self._deadline - self._clock()
        if wait > 0:
            self._sleep(wait)
            if self.monitor is not None:
                self.monitor.idle(wait)
        else:
            self.counts["overruns"] += 1
            self._deadline = self._clock()

    def run(self, steps: int | None = None, duration_s: float | None = None) -> ShadowRunner:
        """Step until ``steps`` steps, ``duration_s`` wall seconds or the end of the run.

        At least one bound should be given for a long scenario. Returns self.
        """
        if steps is not None and (not isinstance(steps, int) or steps < 0):
            raise ConfigError(f"steps={steps!r}: must be None or an integer >= 0")
        end = None if duration_s is None else self._clock() + float(duration_s)
        k = 0
        while not self.done and (steps is None or k < steps):
            if end is not None and self._clock() >= end:
                break
            self.step()
            k += 1
        return self

    def stats(self) -> dict[str, Any]:
        """Runner counters, unknown tickers and the source's counters."""
        self._sync_counts()
        out: dict[str, Any] = dict(self.counts)
        out["unknown_tickers"] = dict(self.unknown)
        out["source"] = self.source.stats()
        out["t"] = self.model.t
        return out

    def close(self) -> None:
        """Close the monitor this runner built (the source belongs to the caller)."""
        if self._own_monitor and self.monitor is not None:
            self.monitor.close()

    def __enter__(self) -> ShadowRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
