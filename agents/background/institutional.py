"""`institutional`: meta-orders with power-law sizes split into small child orders.

The mechanism behind the long memory of trade signs (Lillo, Mike and Farmer 2005; Tóth et al.
2015): large traders hide big orders by splitting them into many small market orders executed
over a long time, so the signs of consecutive trades of the whole market stay correlated for as
long as meta-orders last. If meta-order sizes ``N`` (in child orders) have a Pareto tail
``P(N > n) ~ n^-alpha`` with ``1 < alpha < 2``, the trade-sign autocorrelation decays as

    ``C(l) ~ l^-gamma``,  ``gamma = alpha - 1``

(the probability that trades ``l`` apart belong to one meta-order is the tail of the length of
the meta-order covering a random trade, ``sum_{n > l} n P(n) ~ l^{1-alpha}``). Real markets
show ``gamma ~ 0.5``, i.e. ``alpha ~ 1.5``; ``0 < gamma < 1`` is long memory (``sum_l C(l)``
diverges).

An agent alternates between two phases:

* **idle**: it sleeps for an exponential time with mean ``idle_mean_s``; then it starts a
  meta-order: the side is ``sign(F - m)`` (fundamental minus its delayed mid) with probability
  ``informed_prob`` and a fair coin otherwise; the size in lots is ``floor(X)`` with ``X`` drawn
  from a Pareto law with tail ``meta_tail_alpha`` and scale ``meta_min_lots``, truncated at
  ``meta_max_lots`` (:func:`truncated_pareto`, inverse CDF of one uniform draw), so
  ``P(size >= n) = ((x_m / n)^alpha - (x_m / x_M)^alpha) / (1 - (x_m / x_M)^alpha)`` for whole
  ``x_m <= n <= x_M``;
* **executing**: at each wake-up (Poisson at ``wake_rate_per_hour``, or every
  ``wake_interval_s``) it sends one child order of ``min(child_lots, left)`` lots on the
  meta-order's side, a market order or (``aggression = "limit_at_touch"``) an IOC order limited
  at the opposite best it sees. Its children only take liquidity (it never rests an order), so
  its fills are its position change since the meta-order started: ``filled = side * (position
  - position at the start)`` and ``left = size - filled - in flight``; lots a child did not
  fill are sent again later, and the meta-order is done when its fills add up to its size; it
  then goes idle again. (Reading fills off the position keeps it off the exchange's per-fill
  notification path: O(1) per wake instead of O(fills) per matching batch.) ``max_position_lots`` caps ``|position|``: a
  meta-order that would cross it is cut short (``n_truncated``).

A meta-order still running at the close is abandoned (``n_abandoned``): every day starts idle.
All draws (schedule included: ``own_schedule_stream``) come from its own stream ``drng``, so a
run is deterministic for a seed; the
state (phase, meta-order, children in flight, counters) is saved in checkpoints.

Cost per wake: O(children in flight) (one or two) plus 1-3 scalar draws.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from agents.background.base import BUY, NO_PRICE, SELL, Trader, TraderParams, register_trader
from agents.background.momentum import Aggression
from agents.background.noise import check_prob
from marketsim.book import IOC, MARKET
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["InstitutionalParams", "InstitutionalTrader", "truncated_pareto"]


def truncated_pareto(u: Any, alpha: float, x_min: float, x_max: float = math.inf) -> Any:
    """Inverse CDF of the Pareto law truncated to ``[x_min, x_max]`` at ``u`` in [0, 1).

    ``F(x) = (1 - (x_min / x)^alpha) / (1 - (x_min / x_max)^alpha)``, so
    ``x = x_min (1 - u (1 - (x_min / x_max)^alpha))^(-1 / alpha)``; ``x_max = inf`` is the plain
    Pareto law. Works on floats and numpy arrays (vectorised). O(len(u)).

    Example:
        >>> round(truncated_pareto(0.75, 2.0, 10.0), 6)  # P(X > 20) = (10 / 20)^2 = 0.25
        20.0
    """
    tail = (x_min / x_max) ** alpha if math.isfinite(x_max) else 0.0
    return x_min * (1.0 - u * (1.0 - tail)) ** (-1.0 / alpha)


class InstitutionalParams(TraderParams):
    """Parameters of the ``institutional`` trader (see the module docs)."""

    wake_rate_per_hour: Num = Field(
        360.0,
        description="Child orders per trading hour while executing (Poisson; used when "
        "wake_interval_s = 0).",
    )
    idle_mean_s: Num = Field(
        1800.0, description="Mean of the exponential idle time between meta-orders, seconds."
    )
    meta_tail_alpha: Num = Field(
        1.5,
        description="Pareto tail exponent alpha of meta-order sizes (> 0); the trade-sign ACF "
        "decays as l^-(alpha - 1) for 1 < alpha < 2.",
    )
    meta_min_lots: Num = Field(100.0, description="Pareto scale: smallest meta-order, lots (>= 1).")
    meta_max_lots: Num = Field(
        10_000.0, description="Largest meta-order, lots (the Pareto law is truncated there)."
    )
    child_lots: IntNum = Field(5, description="Lots per child order (the last one: the rest).")
    informed_prob: Num = Field(
        0.0,
        description="Probability that a meta-order's side is toward the fundamental "
        "(sign(F - mid)); otherwise a fair coin.",
    )
    aggression: Aggression = Field(
        "market", description="Child orders: market orders, or IOC orders at the opposite best."
    )
    max_position_lots: IntNum = Field(
        0, description="Cap on |position| in lots (meta-orders are cut short there); 0 = none."
    )


@register_trader("institutional")
class InstitutionalTrader(Trader):
    """Executes Pareto-sized meta-orders as streams of small child orders (module docs)."""

    Params = InstitutionalParams
    own_schedule_stream = True  # when the next meta-order starts depends on the market
    state_attrs = (
        "active",
        "meta_side",
        "meta_size",
        "meta_start_pos",
        "n_meta",
        "n_done",
        "n_abandoned",
        "n_truncated",
        "n_children",
        "filled_lots",
        "_inflight",
    )

    def __init__(
        self,
        model: MarketModel,
        account: int,
        config: AgentConfig,
        params: dict[str, Any],
        slots: list[int],
    ) -> None:
        super().__init__(model, account, config, params, slots)
        p = self.p
        self.alpha = float(p["meta_tail_alpha"])
        self.min_lots = float(p["meta_min_lots"])
        self.max_lots = float(p["meta_max_lots"])
        self.child_lots = int(p["child_lots"])
        self.informed_prob = check_prob(self, "informed_prob")
        self.aggression = str(p["aggression"])
        self.max_pos = int(p["max_position_lots"])
        idle_s = float(p["idle_mean_s"])
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise self.param_error("meta_tail_alpha", self.alpha, "must be a finite number > 0")
        if not self.min_lots >= 1:
            raise self.param_error("meta_min_lots", self.min_lots, "must be >= 1")
        if not self.max_lots >= self.min_lots:
            raise self.param_error(
                "meta_max_lots", self.max_lots, f"must be >= meta_min_lots ({self.min_lots:g})"
            )
        if self.child_lots < 1:
            raise self.param_error("child_lots", self.child_lots, "must be >= 1")
        if not idle_s > 0:
            raise self.param_error("idle_mean_s", idle_s, "must be > 0 (seconds)")
        if self.max_pos < 0:
            raise self.param_error("max_position_lots", self.max_pos, "must be >= 0")
        if not self._interval_steps and not self._rate_per_step > 0:
            raise self.param_error(
                "wake_rate_per_hour",
                p["wake_rate_per_hour"],
                "must be > 0 (child orders per hour), or set wake_interval_s > 0",
            )
        self._idle_steps = idle_s / model.session.step_seconds
        #: True while a meta-order is being executed.
        self.active = False
        #: Side (BUY/SELL) and size (lots) of the current (or last) meta-order; the position
        #: when it started (its fills are the position change since).
        self.meta_side = 0
        self.meta_size = 0
        self.meta_start_pos = 0
        #: Meta-orders started, completed, abandoned at the close, cut by the position cap.
        self.n_meta = 0
        self.n_done = 0
        self.n_abandoned = 0
        self.n_truncated = 0
        #: Child orders sent; lots filled in finished (done, cut or abandoned) meta-orders.
        self.n_children = 0
        self.filled_lots = 0
        #: Children not matched yet: [arrival step, lots].
        self._inflight: list[list[int]] = []

    # ------------------------------------------------------------------ draws
    def draw_meta_size(self) -> int:
        """One meta-order size in lots: ``floor`` of a truncated Pareto draw. One draw, O(1)."""
        x = truncated_pareto(self.drng.random(), self.alpha, self.min_lots, self.max_lots)
        return max(1, min(int(x), int(self.max_lots)))

    def draw_side(self, slot: int) -> int:
        """BUY or SELL: toward the fundamental with ``informed_prob``, else a fair coin. O(1)."""
        rng = self.drng
        if self.informed_prob > 0.0 and rng.random() < self.informed_prob:
            gap = self.fundamental(slot) - self.mid(slot)
            if gap == gap and gap != 0.0:
                return BUY if gap > 0 else SELL
        return BUY if rng.random() < 0.5 else SELL

    # ------------------------------------------------------------------ scheduling
    def _idle_gap(self, step: int) -> int:
        return step + max(1, math.ceil(self.drng.exponential(self._idle_steps)))

    def first_wake(self, day_start: int) -> int | None:
        """Every day starts idle: the first meta-order after an exponential idle time."""
        return day_start + int(self.drng.exponential(self._idle_steps))

    def next_wake(self, step: int) -> int | None:
        """The next child while executing (the base schedule), else the end of an idle gap."""
        if self.active:
            return super().next_wake(step)
        return self._idle_gap(step)

    def on_day_end(self, day: int, step: int) -> None:
        """Abandon a meta-order still running at the close."""
        if self.active:
            self.n_abandoned += 1
            self._finish()
        self._inflight = []

    # ------------------------------------------------------------------ meta-order
    @property
    def meta_filled(self) -> int:
        """Lots of the current (or last) meta-order filled: its side times the position change."""
        slots = self.slots
        if not slots or self.meta_side == 0 or self.model.exchange.books[slots[0]] is None:
            return 0
        return self.meta_side * (self.position(slots[0]) - self.meta_start_pos)

    @property
    def meta_left(self) -> int:
        """Lots of the current meta-order neither filled nor in flight."""
        return self.meta_size - self.meta_filled - sum(c[1] for c in self._inflight)

    def _finish(self) -> None:
        self.active = False
        self.filled_lots += self.meta_filled

    def act(self, step: int) -> None:
        """Start a meta-order (idle) or send its next child (executing). O(children in flight)."""
        slots = self.tradable_slots()
        if not slots:
            return
        slot = slots[0]
        # children that arrived before this step have been matched (their fills are counted)
        self._inflight = [c for c in self._inflight if c[0] >= step]
        if self.active and self.meta_filled >= self.meta_size:
            self.n_done += 1
            self._finish()
            return
        if not self.active:
            self.active = True
            self.meta_side = self.draw_side(slot)
            self.meta_size = self.draw_meta_size()
            self.meta_start_pos = self.position(slot)
            self.n_meta += 1
        qty = min(self.child_lots, self.meta_left)
        if qty <= 0:
            return  # the rest is in flight
        if self.max_pos:
            pos = self.position(slot) + self.meta_side * sum(c[1] for c in self._inflight)
            room = self.max_pos - self.meta_side * pos
            if room < qty:
                qty = room
                if qty <= 0:
                    self.n_truncated += 1
                    self._finish()
                    return
        self._send(slot, qty)

    def _send(self, slot: int, qty: int) -> None:
        if self.aggression == "market":
            kind, price = MARKET, 0
        else:
            bb, _, ba, _ = self.quote(slot)
            price = ba if self.meta_side == BUY else bb
            if price == NO_PRICE:
                return  # nothing to hit: try again at the next wake
            kind = IOC
        arrival = self._arrival()
        self.model.exchange.submit(arrival, slot, kind, self.meta_side, price, qty, self.account)
        self._inflight.append([arrival, qty])
        self.n_children += 1
