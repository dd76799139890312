"""`momentum`: a moving-average trend follower (ABIDES MomentumAgent-like).

On each wake-up (RMSC04: Poisson, every 37 s on average) the trader appends the (delayed) mid of
every asset it trades to a window of its last ``long_window`` observations. Once the window is
full it compares the short moving average (last ``short_window`` mids) with the long one: when
``short - long > threshold_ticks`` it buys ``size_lots``, when ``short - long <
-threshold_ticks`` it sells (ABIDES: threshold 0, windows 20 and 50). Orders are market orders or
(``aggression = "limit_at_touch"``, ABIDES) limit orders at the opposite best quote that rest if
not filled. ``max_position_lots`` caps its position.

Cost per wake: O(long_window) float additions per asset (a few µs for 50).
"""

from __future__ import annotations

from collections import deque
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from agents.background.base import BUY, NO_PRICE, SELL, Trader, TraderParams, register_trader
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["MomentumParams", "MomentumTrader", "send_aggressive"]

#: Values of the ``aggression`` parameter of trend and switching traders.
Aggression = Literal["market", "limit_at_touch"]


def send_aggressive(
    agent: Trader, slot: int, side: int, qty: int, aggression: str, max_position_lots: int = 0
) -> int:
    """Send a liquidity-taking order for ``agent``; return its id (0 if nothing was sent).

    ``aggression``: ``"market"`` sends a market order; ``"limit_at_touch"`` a limit order at the
    opposite best quote the agent sees (none: nothing is sent). With ``max_position_lots > 0``
    the size is cut so that ``|position|`` stays within it. O(1).
    """
    if max_position_lots:
        pos = agent.position(slot)
        room = max_position_lots - pos if side == BUY else max_position_lots + pos
        if room <= 0:
            return 0
        if qty > room:
            qty = room
    if qty <= 0:
        return 0
    if aggression == "market":
        return agent.market(slot, side, qty)
    bb, _, ba, _ = agent.quote(slot)
    opp = ba if side == BUY else bb
    if opp == NO_PRICE:
        return 0
    return agent.limit(slot, side, opp, qty)


class MomentumParams(TraderParams):
    """Parameters of the ``momentum`` trader (see the module docs)."""

    wake_rate_per_hour: Num = Field(
        3600.0 / 37.0, description="Mean Poisson wake-ups per trading hour (RMSC04: 1 / 37 s)."
    )
    short_window: IntNum = Field(20, description="Wake-ups in the short moving average.")
    long_window: IntNum = Field(50, description="Wake-ups in the long moving average.")
    threshold_ticks: Num = Field(
        0.0, description="Trade only when |short MA - long MA| exceeds this many ticks."
    )
    size_lots: IntNum = Field(5, description="Lots per order.")
    aggression: Aggression = Field(
        "limit_at_touch",
        description="market order, or limit order at the opposite best (ABIDES).",
    )
    max_position_lots: IntNum = Field(
        0, description="Cap on |position| in lots (orders are cut to respect it); 0 = none."
    )


@register_trader("momentum")
class MomentumTrader(Trader):
    """Buys when the short moving average of the mid is above the long one, sells below."""

    Params = MomentumParams
    state_attrs = ("_hist",)

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
        self.short = int(p["short_window"])
        self.long = int(p["long_window"])
        self.threshold = float(p["threshold_ticks"])
        self.size = int(p["size_lots"])
        self.aggression = str(p["aggression"])
        self.max_pos = int(p["max_position_lots"])
        if self.short < 1:
            raise self.param_error("short_window", self.short, "must be >= 1")
        if self.long <= self.short:
            raise self.param_error(
                "long_window", self.long, f"must be > short_window ({self.short})"
            )
        if self.size < 1:
            raise self.param_error("size_lots", self.size, "must be >= 1")
        if self.max_pos < 0:
            raise self.param_error("max_position_lots", self.max_pos, "must be >= 0")
        #: Mids (ticks) of the last ``long_window`` wake-ups, per slot.
        self._hist: dict[int, deque[float]] = {}

    def signal(self, slot: int) -> float:
        """Short MA minus long MA of its mid window in ticks (NaN until the window is full)."""
        h = self._hist.get(slot)
        if h is None or len(h) < self.long:
            return float("nan")
        return sum(islice(h, self.long - self.short, None)) / self.short - sum(h) / self.long

    def act(self, step: int) -> None:
        """Record the mids, trade the assets whose averages diverge. O(long_window) per asset."""
        for slot in self.tradable_slots():
            m = self.mid(slot)
            if m != m:
                continue
            h = self._hist.get(slot)
            if h is None:
                h = self._hist[slot] = deque(maxlen=self.long)
            h.append(m)
            if len(h) < self.long:
                continue
            d = self.signal(slot)
            if d > self.threshold:
                send_aggressive(self, slot, BUY, self.size, self.aggression, self.max_pos)
            elif d < -self.threshold:
                send_aggressive(self, slot, SELL, self.size, self.aggression, self.max_pos)
