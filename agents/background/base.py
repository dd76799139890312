"""`Trader`: the base of scripted background traders (Mesa agents with an exchange account).

A trader wakes on its own schedule (Poisson arrivals or a fixed interval), reads market data
(delayed by its market-data latency), and sends orders that reach the book after its
order-entry latency. Subclasses implement :meth:`Trader.act` and declare a pydantic ``Params``
model registered under a type name with :func:`register_trader`; every numeric parameter may be
drawn per agent from a distribution (see :mod:`marketsim.params`).

Randomness: decisions draw from :attr:`Trader.drng`, the agent's own stream (seeded from the
model's seed and the agent's account id, created on first use); the wake-up schedule draws from
``self.model.rng`` (the model's stream, in wake order), unless ``own_schedule_stream``. Own
streams keep counterfactual runs aligned: a run with one more meta-order changes the market
other agents see, but not the random numbers each of them draws - provided a trader draws the
same numbers on every wake whatever the book looks like (the noise and value traders draw a
fixed block per wake; tests/agents/test_stream_alignment.py checks it).

State: a subclass lists the attributes that change during a run in ``state_attrs`` (ints,
floats, strings, lists, dicts with str keys, numpy arrays); checkpoints save and restore
exactly those, plus the base fields.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, ClassVar

import mesa
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketsim.book import BUY, CANCEL, IOC, LIMIT, MARKET, MODIFY, NO_PRICE, SELL
from marketsim.errors import ConfigError
from marketsim.params import Num
from marketsim.scenario import register_agent_params

if TYPE_CHECKING:
    from collections.abc import Iterable

    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

#: Trader classes by scenario type name.
TRADER_TYPES: dict[str, type[Trader]] = {}


def register_trader(name: str):
    """Class decorator: register a Trader subclass (and its Params) under ``name``."""

    def deco(cls: type[Trader]) -> type[Trader]:
        cls.type_name = name
        register_agent_params(name, cls.Params)
        TRADER_TYPES[name] = cls
        return cls

    return deco


class TraderParams(BaseModel):
    """Parameters every trader type accepts (subclass Params extend this)."""

    # validate_default: defaults go through the same coercion as file values, so a scenario
    # dumped and loaded again hashes the same.
    model_config = ConfigDict(extra="forbid", validate_default=True)

    wake_rate_per_hour: Num = Field(
        60.0, description="Mean Poisson wake-ups per trading hour (used when wake_interval_s=0)."
    )
    wake_interval_s: Num = Field(
        0.0, description="Fixed seconds between wake-ups; 0 = Poisson arrivals instead."
    )


def _group_params(model: Any, params: Any) -> dict[str, Any]:
    """A group's params model as a dict. While the model builds its agents (thousands from a
    few groups) it keeps ``_params_cache`` so each group converts once. O(fields)."""
    if isinstance(params, dict):
        return params
    cache = getattr(model, "_params_cache", None)
    if cache is None:
        return dict(params or {})
    hit = cache.get(id(params))
    if hit is None:
        hit = cache[id(params)] = dict(params or {})
    return hit


class Trader(mesa.Agent):
    """Base class of background traders.

    Args:
        model: The market model.
        account: Ledger account id of this agent.
        config: Its ``[[agents]]`` group from the scenario.
        params: This agent's parameter values (per-agent draws already made).
        slots: Asset slots it trades.
    """

    type_name: ClassVar[str] = "trader"
    Params: ClassVar[type[BaseModel]] = TraderParams
    #: Attributes saved in checkpoints besides the base fields.
    state_attrs: ClassVar[tuple[str, ...]] = ()
    #: Whether the exchange should call :meth:`on_fills` for this agent's trades and rejects.
    tracks_orders: ClassVar[bool] = False
    #: Draw the wake-up schedule from :attr:`drng` too (agents whose schedule depends on the
    #: market, so that their draws do not shift the model's stream).
    own_schedule_stream: ClassVar[bool] = False
    _drng: np.random.Generator | None = None

    def __init__(
        self,
        model: MarketModel,
        account: int,
        config: AgentConfig,
        params: dict[str, Any],
        slots: list[int],
    ) -> None:
        super().__init__(model)
        self.account = int(account)
        self.group = config.name
        # ``params`` holds the per-agent draws of the numeric fields; the group's other fields
        # (strings, booleans, lists: left out by ``sample_params``) are the same for every agent.
        fixed = _group_params(model, config.params)
        self.p = {**{k: v for k, v in fixed.items() if k not in params}, **params}
        self.slots = list(slots)
        self.latency_steps = int(config.latency_steps)
        self.latency_jitter_steps = int(config.latency_jitter_steps)
        self.md_latency_steps = int(config.md_latency_steps)
        self.n_wakes = 0
        wi = float(params.get("wake_interval_s", 0.0))
        self._interval_steps = max(1, round(wi / model.session.step_seconds)) if wi > 0 else 0
        rate = float(params.get("wake_rate_per_hour", 60.0))
        self._rate_per_step = rate / 3600.0 * model.session.step_seconds
        if self.tracks_orders:
            model.exchange.subscribe(self.account, self.on_fills)

    # ------------------------------------------------------------------ randomness
    @property
    def drng(self) -> np.random.Generator:
        """This agent's own random stream for its decisions (PCG64 seeded by the model's seed
        and the account id; created on first use, saved in checkpoints)."""
        g = self._drng
        if g is None:
            g = self._drng = self.model.agent_stream(self.account)
        return g

    @property
    def schedule_rng(self) -> np.random.Generator:
        """The stream of wake-up draws: the model's, or :attr:`drng` (own_schedule_stream)."""
        return self.drng if self.own_schedule_stream else self.model.rng

    # ------------------------------------------------------------------ scheduling
    def next_wake(self, step: int) -> int | None:
        """The step of the next wake-up after ``step`` (None: not again today)."""
        if self._interval_steps:
            return step + self._interval_steps
        if self._rate_per_step <= 0:
            return None
        gap = self.schedule_rng.exponential(1.0 / self._rate_per_step)
        return step + max(1, math.ceil(gap))

    def first_wake(self, day_start: int) -> int | None:
        """The first wake-up step of a day starting at ``day_start``."""
        if self._interval_steps:
            return day_start + int(self.schedule_rng.integers(0, self._interval_steps))
        if self._rate_per_step <= 0:
            return None
        return day_start + int(self.schedule_rng.exponential(1.0 / self._rate_per_step))

    def wake(self, step: int) -> None:
        """Called by the model when this agent's wake-up step comes: act, then reschedule."""
        self.n_wakes += 1
        self.act(step)
        nxt = self.next_wake(step)
        if nxt is not None:
            self.model.schedule(self, nxt)

    def act(self, step: int) -> None:
        """Read the market and send orders. Subclasses override."""

    def on_day_start(self, day: int, step: int) -> None:
        """Hook at the open of each trading day (after the overnight gap)."""

    def on_day_end(self, day: int, step: int) -> None:
        """Hook at the close: the exchange has cancelled every resting order."""

    def on_fills(self, slot: int, fills: np.ndarray, rejects: list[tuple[int, int]]) -> None:
        """Own fills (``FILL_DTYPE``, as maker or taker) and rejects ``(order_id, code)``.

        Called only when ``tracks_orders`` is True.
        """

    # ------------------------------------------------------------------ market data
    def quote(self, slot: int) -> tuple[int, int, int, int]:
        """(best bid, bid qty, best ask, ask qty) in ticks/lots as this agent sees it (delayed
        by ``md_latency_steps``); prices are NO_PRICE when a side is empty."""
        return self.model.quote(slot, self.md_latency_steps)

    def mid(self, slot: int) -> float:
        """Mid in ticks as seen by this agent; one-sided or last trade as fallback; NaN."""
        bb, _, ba, _ = self.quote(slot)
        if bb != NO_PRICE and ba != NO_PRICE:
            return (bb + ba) / 2.0
        last = self.model.last_price(slot, self.md_latency_steps)
        if last != NO_PRICE:
            return float(last)
        if bb != NO_PRICE:
            return float(bb)
        if ba != NO_PRICE:
            return float(ba)
        return self.model.fundamental_ticks(slot)

    def fundamental(self, slot: int) -> float:
        """The exogenous fundamental value of the asset, in ticks (exact; add your own noise)."""
        return self.model.fundamental_ticks(slot)

    def position(self, slot: int) -> int:
        """This agent's position in lots."""
        return self.model.ledger.position(self.account, slot)

    @property
    def cash(self) -> float:
        """This agent's cash in currency."""
        return self.model.ledger.cash(self.account)

    def tradable_slots(self) -> list[int]:
        """This agent's slots whose asset is listed now (not yet added / removed ones skipped)."""
        books = self.model.exchange.books
        return [s for s in self.slots if books[s] is not None]

    def clamp_price(self, slot: int, price: int) -> int:
        """``price`` moved into the book's accepted limit range ``1 .. max_price_ticks - 1``."""
        hi = self.model.exchange.books[slot].max_price_ticks - 1
        return 1 if price < 1 else (hi if price > hi else int(price))

    def param_error(self, name: str, value: Any, allowed: str) -> ConfigError:
        """A ConfigError naming this agent's group, the parameter, its drawn value and the rule."""
        return ConfigError(
            f"agents group {self.group!r} ({self.type_name}): params.{name} = {value!r} "
            f"(this agent's draw): {allowed}"
        )

    def check_params(self, checks: Iterable[tuple[str, Any, bool, str]]) -> None:
        """Raise :meth:`param_error` for the first ``(name, value, ok, rule)`` with ``ok`` false;
        the message says "must be <rule>"."""
        for name, v, ok, allowed in checks:
            if not ok:
                raise self.param_error(name, v, f"must be {allowed}")

    # ------------------------------------------------------------------ orders
    def _arrival(self) -> int:
        d = self.latency_steps
        if self.latency_jitter_steps:
            d += int(self.drng.integers(0, self.latency_jitter_steps + 1))
        return self.model.t + d

    def limit(self, slot: int, side: int, price: int, qty: int) -> int:
        """Send a limit order; return its order id."""
        return self.model.exchange.submit(
            self._arrival(), slot, LIMIT, side, int(price), int(qty), self.account
        )

    def market(self, slot: int, side: int, qty: int) -> int:
        """Send a market order; return its order id."""
        return self.model.exchange.submit(
            self._arrival(), slot, MARKET, side, 0, int(qty), self.account
        )

    def ioc(self, slot: int, side: int, price: int, qty: int) -> int:
        """Send an immediate-or-cancel order limited at ``price``; return its order id."""
        return self.model.exchange.submit(
            self._arrival(), slot, IOC, side, int(price), int(qty), self.account
        )

    def cancel(self, slot: int, order_id: int) -> None:
        """Cancel one of this agent's orders (rejected with UNKNOWN_ID if no longer live)."""
        self.model.exchange.submit(self._arrival(), slot, CANCEL, 0, 0, 0, self.account, order_id)

    def modify(self, slot: int, order_id: int, qty: int) -> None:
        """Reduce one of this agent's resting orders to ``qty`` lots."""
        self.model.exchange.submit(
            self._arrival(), slot, MODIFY, 0, 0, int(qty), self.account, order_id
        )

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Plain data and arrays for checkpoints (copies: the agent keeps mutating its own)."""
        out: dict[str, Any] = {"n_wakes": self.n_wakes}
        for name in self.state_attrs:
            out[name] = copy.deepcopy(getattr(self, name))
        out["drng"] = None if self._drng is None else self._drng.bit_generator.state
        return out

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (copied: ``state`` can be restored again)."""
        self.n_wakes = int(state["n_wakes"])
        for name in self.state_attrs:
            setattr(self, name, copy.deepcopy(state[name]))
        st = state.get("drng")
        if st is None:
            self.__dict__.pop("_drng", None)  # not created yet (the class default is None)
        else:
            self._drng = self.model.agent_stream(self.account)
            self._drng.bit_generator.state = copy.deepcopy(st)


__all__ = [
    "BUY",
    "NO_PRICE",
    "SELL",
    "TRADER_TYPES",
    "Trader",
    "TraderParams",
    "register_trader",
]
