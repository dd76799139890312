"""`execution`: a meta-order executor (TWAP, VWAP or POV) for market-impact studies.

The agent trades ``total_lots`` on ``side`` of its first asset between ``start_s`` and ``end_s``
seconds after the open of day ``day``, waking every ``wake_interval_s`` in that window (first
wake at ``start_s``, last one exactly at ``end_s``). At each wake it sends one child order:

* ``twap``: enough to bring sent lots to ``total * f`` where ``f`` is the fraction of the window
  elapsed at the end of the current interval, so the meta-order is spread evenly over the wakes;
* ``vwap``: the same with ``f`` the fraction of a U-shaped intraday volume profile
  ``w(x) = 1 + vwap_u_shape * (2x - 1)^2`` (``x`` = fraction of the session) integrated over the
  window: more is traded near the open and the close;
* ``pov``: ``participation / (1 - participation)`` times the volume the rest of the market traded
  since its previous wake (``model.exchange.volume`` minus its own fills), so its fills are
  ``participation`` of all volume (fractions carry over between wakes).

Child orders are market orders (``aggression = "market"``) or IOC orders limited at the
opposite best it sees (``"limit_at_touch"``: never walks the book; unfilled lots roll into later
children). With ``complete_at_end`` the wake at ``end_s`` sends the whole rest as a market order.

After the run: ``arrival_price_ticks`` (the mid at its first wake), ``filled_lots``, ``done_step``
(the step of the fill that completed it, -1 if it did not complete),
``avg_price_ticks``, ``shortfall_ticks`` = ``side * (avg - arrival)`` (implementation shortfall
per lot, positive = cost) and ``shortfall_bps``. Cost per wake: O(children in flight).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from agents.background.base import (
    BUY,
    NO_PRICE,
    SELL,
    Trader,
    TraderParams,
    register_trader,
)
from marketsim.book import IOC, MARKET
from marketsim.config_paths import Issues
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    import numpy as np

    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["ExecutionAgent", "ExecutionParams", "u_shape_cumulative"]


def u_shape_cumulative(x: float, curvature: float) -> float:
    """Integral over [0, x] of the volume profile ``1 + curvature * (2u - 1)^2``. O(1)."""
    return x + curvature * ((2.0 * x - 1.0) ** 3 + 1.0) / 6.0


class ExecutionParams(TraderParams):
    """Parameters of the ``execution`` agent (see the module docs)."""

    wake_interval_s: Num = Field(10.0, description="Seconds between child orders (> 0).")
    side: Literal["buy", "sell"] = Field("buy", description="Direction of the meta-order.")
    total_lots: IntNum = Field(1000, description="Size of the meta-order in lots.")
    day: IntNum = Field(0, description="Trading day (0-based) on which it executes.")
    start_s: Num = Field(0.0, description="Start, seconds after the open of that day.")
    end_s: Num = Field(3600.0, description="End, seconds after the open of that day.")
    algo: Literal["twap", "vwap", "pov"] = Field("twap", description="Scheduling algorithm.")
    participation: Num = Field(
        0.1, description="pov: target share of total traded volume, in (0, 1)."
    )
    vwap_u_shape: Num = Field(
        2.0, description="vwap: curvature of the U-shaped volume profile (0 = flat, like TWAP)."
    )
    aggression: Literal["market", "limit_at_touch"] = Field(
        "market", description="Child orders: market orders, or IOC at the opposite best."
    )
    complete_at_end: bool = Field(
        True, description="Send whatever is left as a market order at end_s."
    )

    @model_validator(mode="after")
    def _window(self) -> ExecutionParams:
        # plain numbers are checked here; per-agent draws when the agent is built
        if isinstance(self.start_s, float) and isinstance(self.end_s, float):
            if not self.end_s > self.start_s:
                issues = Issues("ExecutionParams")
                issues.add(("end_s",), self.end_s, f"must be > start_s ({self.start_s:g})")
                issues.raise_any()
        return self


@register_trader("execution")
class ExecutionAgent(Trader):
    """Works one meta-order through child orders and records its implementation shortfall."""

    Params = ExecutionParams
    tracks_orders = True
    state_attrs = (
        "arrival_price_ticks",
        "filled_lots",
        "sent_lots",
        "notional_ticks",
        "n_children",
        "done_step",
        "_inflight",
        "_last_volume",
        "_filled_at_wake",
        "_carry",
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
        session = model.session
        self.side = BUY if p["side"] == "buy" else SELL
        self.total = int(p["total_lots"])
        self.day = int(p["day"])
        self.algo = str(p["algo"])
        self.aggression = str(p["aggression"])
        self.complete_at_end = bool(p["complete_at_end"])
        self.participation = float(p["participation"])
        self.u_shape = float(p["vwap_u_shape"])
        start_s, end_s = float(p["start_s"]), float(p["end_s"])
        spd = session.steps_per_day
        if self.total < 1:
            raise self.param_error("total_lots", self.total, "must be >= 1")
        if not 0 <= self.day < session.days:
            raise self.param_error("day", self.day, f"must lie in 0 .. {session.days - 1}")
        if not self._interval_steps:
            raise self.param_error(
                "wake_interval_s", p["wake_interval_s"], "must be > 0 (seconds between children)"
            )
        if not 0.0 < self.participation < 1.0:
            raise self.param_error("participation", self.participation, "must lie in (0, 1)")
        if self.u_shape < 0:
            raise self.param_error("vwap_u_shape", self.u_shape, "must be >= 0")
        self.start_step = round(start_s / session.step_seconds)
        self.end_step = min(round(end_s / session.step_seconds), spd - 1)
        if not 0 <= self.start_step < self.end_step:
            raise self.param_error(
                "start_s",
                start_s,
                f"must be >= 0 and before end_s = {end_s} and the close "
                f"({spd * session.step_seconds:g} s after the open)",
            )
        #: Mid (ticks) when it started; NaN before its first wake-up.
        self.arrival_price_ticks = float("nan")
        #: Lots filled so far (its own fills, tracked through on_fills).
        self.filled_lots = 0
        #: Lots sent in child orders so far.
        self.sent_lots = 0
        #: Sum of fill price * lots, in ticks * lots.
        self.notional_ticks = 0
        #: Child orders sent.
        self.n_children = 0
        #: Step of the fill that completed the meta-order (-1 while lots remain).
        self.done_step = -1
        self._inflight: list[tuple[int, int]] = []  # (arrival step, lots) of unmatched children
        self._last_volume = -1
        self._filled_at_wake = 0
        self._carry = 0.0

    # ------------------------------------------------------------------ results
    @property
    def avg_price_ticks(self) -> float:
        """Average fill price in ticks (NaN before any fill)."""
        return self.notional_ticks / self.filled_lots if self.filled_lots else float("nan")

    @property
    def shortfall_ticks(self) -> float:
        """Implementation shortfall per lot: ``side * (avg price - arrival price)`` in ticks."""
        return self.side * (self.avg_price_ticks - self.arrival_price_ticks)

    @property
    def shortfall_bps(self) -> float:
        """Implementation shortfall in basis points of the arrival price."""
        return 1e4 * self.shortfall_ticks / self.arrival_price_ticks

    @property
    def remaining_lots(self) -> int:
        """Lots of the meta-order not filled yet."""
        return self.total - self.filled_lots

    # ------------------------------------------------------------------ scheduling
    def first_wake(self, day_start: int) -> int | None:
        """``start_s`` on day ``day``; no wake-ups on other days."""
        if day_start // self.model.session.steps_per_day != self.day:
            return None
        return day_start + self.start_step

    def next_wake(self, step: int) -> int | None:
        """Every ``wake_interval_s`` until ``end_s`` (the last wake-up exactly at ``end_s``)."""
        day_start = step - step % self.model.session.steps_per_day
        end = day_start + self.end_step
        if step >= end:
            return None
        return min(step + self._interval_steps, end)

    # ------------------------------------------------------------------ fills
    def on_fills(self, slot: int, fills: np.ndarray, rejects: list[tuple[int, int]]) -> None:
        """Count its own fills (it is taker of its children, maker if a child ever rested)."""
        q = fills["qty"]
        self.filled_lots += int(q.sum())
        self.notional_ticks += int((fills["price"] * q).sum())
        if self.done_step < 0 and self.filled_lots >= self.total:
            self.done_step = int(self.model.t)

    # ------------------------------------------------------------------ acting
    def _fraction(self, rel: int) -> float:
        """Share of the meta-order due by the end of the interval starting at ``rel`` steps."""
        s, e = self.start_step, self.end_step
        x = min(1.0, (rel + self._interval_steps - s) / (e - s))
        if self.algo == "twap":
            return x
        spd = self.model.session.steps_per_day
        xs, xe = s / spd, e / spd
        w0 = u_shape_cumulative(xs, self.u_shape)
        w1 = u_shape_cumulative(xs + x * (xe - xs), self.u_shape)
        return (w1 - w0) / (u_shape_cumulative(xe, self.u_shape) - w0)

    def act(self, step: int) -> None:
        """Send the child order due now. O(children in flight)."""
        if not self.slots or self.model.exchange.books[self.slots[0]] is None:
            return
        slot = self.slots[0]
        ex = self.model.exchange
        rel = step % self.model.session.steps_per_day
        # children that arrived before this step have been matched (their fills are counted)
        self._inflight = [c for c in self._inflight if c[0] >= step]
        outstanding = sum(q for _, q in self._inflight)
        bb, _, ba, _ = self.quote(slot)
        if self.arrival_price_ticks != self.arrival_price_ticks:
            self.arrival_price_ticks = (
                0.5 * (bb + ba) if bb != NO_PRICE and ba != NO_PRICE else self.mid(slot)
            )
        left = self.total - self.filled_lots - outstanding
        if left <= 0:
            return
        final = rel >= self.end_step
        if final and self.complete_at_end:
            self._send(slot, left, MARKET, 0)
            return
        if self.algo == "pov":
            vol_now = int(ex.volume[slot])
            if self._last_volume >= 0:
                others = vol_now - self._last_volume - (self.filled_lots - self._filled_at_wake)
                if others > 0:
                    p = self.participation
                    self._carry += p / (1.0 - p) * others
            self._last_volume = vol_now
            self._filled_at_wake = self.filled_lots
            child = int(self._carry)
            if child > left:
                child = left
            self._carry -= child
        else:
            child = round(self.total * self._fraction(rel)) - self.filled_lots - outstanding
            if child > left:
                child = left
        if child <= 0:
            return
        if self.aggression == "market":
            self._send(slot, child, MARKET, 0)
        else:
            opp = ba if self.side == BUY else bb
            if opp != NO_PRICE:
                self._send(slot, child, IOC, opp)
            elif self.algo == "pov":
                self._carry += child  # nothing to hit: keep the allowance

    def _send(self, slot: int, qty: int, kind: int, price: int) -> None:
        arrival = self._arrival()
        self.model.exchange.submit(arrival, slot, kind, self.side, price, qty, self.account)
        self._inflight.append((arrival, qty))
        self.sent_lots += qty
        self.n_children += 1
