"""`market_maker`: a multi-level quoting market maker with adaptive spread and inventory skew.

On each wake-up (every ``wake_interval_s``) the market maker requotes every asset it trades:

* reference mid ``m``: the (delayed) mid, or the last trade / one side / fundamental;
* volatility: ``vol`` is an EWMA (weight ``vol_ewma_alpha``) of ``|m - m_prev|`` between its
  wake-ups, in ticks; the half-spread is ``h = max(min_half_spread_ticks, half_spread_ticks +
  vol_spread_mult * vol)``: quotes widen when the mid moves a lot. Because quotes are placed
  around the mid, a market spread wider than ``2 h`` is narrowed by them;
* inventory skew: the quote centre is ``c = m - inventory_skew_ticks_per_lot * inventory``,
  where ``inventory`` is its position minus its initial endowment of the asset (a market maker
  endowed with shares is flat when it holds them);
* ladder: bids at ``floor(c - h) - k * level_spacing_ticks`` and asks at ``ceil(c + h) + k *
  level_spacing_ticks`` for ``k = 0 .. levels - 1``, never crossing the opposite quote it sees
  (post-only); ``size_lots`` per level, or with ``pov > 0`` (ABIDES's adaptive POV market maker)
  ``max(size_lots, round(pov * volume traded since its last wake-up))``;
* inventory limit: with ``max_inventory_lots > 0``, bid levels are added only while
  ``inventory + bid lots <= max_inventory_lots`` (and symmetrically for asks), so the side that
  would grow inventory beyond the limit stops being quoted.

Requoting is a diff against its live orders (tracked through :meth:`on_fills`): a live order
whose price and remaining size are still wanted keeps its queue priority; the others are
cancelled and the missing levels sent. Cost per wake: O(levels) Python per asset.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from agents.background.base import BUY, NO_PRICE, SELL, Trader, TraderParams, register_trader
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["LadderQuoter", "MarketMaker", "MarketMakerParams"]


class MarketMakerParams(TraderParams):
    """Parameters of the ``market_maker`` (see the module docs)."""

    wake_interval_s: Num = Field(
        5.0, description="Seconds between requotes; 0 = Poisson wake-ups instead."
    )
    levels: IntNum = Field(5, description="Price levels quoted on each side.")
    level_spacing_ticks: IntNum = Field(1, description="Ticks between consecutive levels.")
    size_lots: IntNum = Field(10, description="Lots per level (the minimum when pov > 0).")
    pov: Num = Field(
        0.0, description="Level size as a fraction of the volume since the last wake; 0 = off."
    )
    half_spread_ticks: Num = Field(1.0, description="Base half-spread around the centre, ticks.")
    min_half_spread_ticks: Num = Field(0.5, description="Floor of the half-spread, ticks.")
    vol_spread_mult: Num = Field(
        1.0, description="Half-spread added per tick of EWMA |mid change| between wake-ups."
    )
    vol_ewma_alpha: Num = Field(
        0.1, description="Weight of the newest |mid change| in the volatility EWMA (0..1]."
    )
    inventory_skew_ticks_per_lot: Num = Field(
        0.0, description="Quote centre shift against the inventory, ticks per lot."
    )
    max_inventory_lots: IntNum = Field(
        0, description="Stop quoting the side that would push |inventory| beyond this; 0 = none."
    )


#: Fill batches longer than this are applied with numpy grouping (see ``on_fills``).
_GROUP_FILLS = 24


def _apply_fills_loop(orders: dict[int, list[int]], fills: np.ndarray) -> None:
    """Update tracked orders ``id -> [slot, side, price, remaining]`` fill by fill. O(fills)."""
    for mk, rem, tk, q in zip(
        fills["maker_id"].tolist(),
        fills["maker_remaining"].tolist(),
        fills["taker_id"].tolist(),
        fills["qty"].tolist(),
        strict=True,
    ):
        o = orders.get(mk)
        if o is not None:
            if rem == 0:
                del orders[mk]
            else:
                o[3] = rem
        o = orders.get(tk)
        if o is not None:
            o[3] -= q
            if o[3] <= 0:
                del orders[tk]


def _apply_fills_grouped(orders: dict[int, list[int]], fills: np.ndarray) -> None:
    """:func:`_apply_fills_loop` with one update per distinct order: taker lots summed per
    taker id, then each maker id's last remaining size. O(fills log fills)."""
    tids, inv = np.unique(fills["taker_id"], return_inverse=True)
    taken = np.bincount(inv, weights=fills["qty"]).astype(np.int64)
    for tk, q in zip(tids.tolist(), taken.tolist(), strict=True):
        o = orders.get(tk)
        if o is not None:
            o[3] -= q
            if o[3] <= 0:
                del orders[tk]
    rev = fills["maker_id"][::-1]
    mids, last = np.unique(rev, return_index=True)
    rems = fills["maker_remaining"][::-1][last]
    for mk, rem in zip(mids.tolist(), rems.tolist(), strict=True):
        o = orders.get(mk)
        if o is not None:
            if rem == 0:
                del orders[mk]
            else:
                o[3] = rem


class LadderQuoter(Trader):
    """A trader that keeps a ladder of resting limit orders and requotes it as a diff.

    Subclasses implement :meth:`target_quotes` (the ladder wanted now, ``(side, price) ->
    lots``) and call :meth:`requote`; live orders are tracked through :meth:`on_fills`, so a
    level still wanted as it is keeps its queue priority. Used by the market maker and the
    latent-liquidity trader.
    """

    tracks_orders = True

    def __init__(
        self,
        model: MarketModel,
        account: int,
        config: AgentConfig,
        params: dict[str, Any],
        slots: list[int],
    ) -> None:
        super().__init__(model, account, config, params, slots)
        #: Live orders: order id -> [slot, side, price ticks, remaining lots].
        self._orders: dict[int, list[int]] = {}

    def on_fills(self, slot: int, fills: np.ndarray, rejects: list[tuple[int, int]]) -> None:
        """Keep the remaining size of its live orders; drop filled and rejected ones.

        O(fills): a loop for short batches, numpy grouping for long ones (a large order
        sweeping its ladder): the same result, since an order that rests after taking is a
        maker only later and the last maker fill of an order holds its remaining size.
        """
        orders = self._orders
        n = fills.shape[0]
        if n > _GROUP_FILLS:
            _apply_fills_grouped(orders, fills)
        elif n:
            _apply_fills_loop(orders, fills)
        for oid, _ in rejects:
            orders.pop(oid, None)

    def on_day_end(self, day: int, step: int) -> None:
        """The exchange cancelled every resting order."""
        self._orders.clear()

    @property
    def live_orders(self) -> dict[int, tuple[int, int, int, int]]:
        """Its live orders as it tracks them: id -> (slot, side, price ticks, remaining lots)."""
        return {k: tuple(v) for k, v in self._orders.items()}

    def target_quotes(self, slot: int) -> dict[tuple[int, int], int]:
        """The ladder it wants now in ``slot``: ``(side, price ticks) -> lots``."""
        raise NotImplementedError

    def requote(self, slot: int) -> None:
        """Cancel the live orders it no longer wants in ``slot`` and send the missing ones."""
        want = self.target_quotes(slot)
        orders = self._orders
        for oid, o in list(orders.items()):
            if o[0] != slot:
                continue
            key = (o[1], o[2])
            if want.get(key) == o[3]:
                del want[key]  # still wanted as is: keep its queue priority
            else:
                self.cancel(slot, oid)
                del orders[oid]
        for (side, price), q in want.items():
            oid = self.limit(slot, side, price, q)
            orders[oid] = [slot, side, price, q]


@register_trader("market_maker")
class MarketMaker(LadderQuoter):
    """Quotes a ladder on both sides of every asset it trades and requotes on each wake-up."""

    Params = MarketMakerParams
    state_attrs = ("_orders", "_last_mid", "_vol", "_last_volume")

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
        self.levels = int(p["levels"])
        self.spacing = int(p["level_spacing_ticks"])
        self.size = int(p["size_lots"])
        self.pov = float(p["pov"])
        self.half_spread = float(p["half_spread_ticks"])
        self.min_half = float(p["min_half_spread_ticks"])
        self.vol_mult = float(p["vol_spread_mult"])
        self.alpha = float(p["vol_ewma_alpha"])
        self.skew = float(p["inventory_skew_ticks_per_lot"])
        self.max_inv = int(p["max_inventory_lots"])
        for name, v, lo in (
            ("levels", self.levels, 1),
            ("level_spacing_ticks", self.spacing, 1),
            ("size_lots", self.size, 1),
            ("pov", self.pov, 0),
            ("half_spread_ticks", self.half_spread, 0),
            ("min_half_spread_ticks", self.min_half, 0),
            ("vol_spread_mult", self.vol_mult, 0),
            ("max_inventory_lots", self.max_inv, 0),
        ):
            if v < lo:
                raise self.param_error(name, v, f"must be >= {lo}")
        if not 0.0 < self.alpha <= 1.0:
            raise self.param_error("vol_ewma_alpha", self.alpha, "must lie in (0, 1]")
        #: Position (lots) at which its inventory is zero: its endowment, per slot.
        pos = model.ledger.positions
        self.base_position = {s: int(pos[account, s]) for s in self.slots}
        #: Mid (ticks) seen at the previous wake-up, per slot.
        self._last_mid: dict[int, float] = {}
        #: EWMA of |mid change| between wake-ups in ticks, per slot.
        self._vol: dict[int, float] = {}
        #: The exchange's cumulative volume at the previous wake-up, per slot (for pov).
        self._last_volume: dict[int, int] = {}

    # ------------------------------------------------------------------ quoting
    def act(self, step: int) -> None:
        """Requote every listed asset. O(levels + live orders) per asset."""
        for slot in self.tradable_slots():
            self.requote(slot)

    def inventory(self, slot: int) -> int:
        """Position in ``slot`` minus its initial endowment, in lots."""
        return self.position(slot) - self.base_position.get(slot, 0)

    def half_spread_ticks(self, slot: int) -> float:
        """Current half-spread of its quotes in ``slot`` (ticks). O(1)."""
        h = self.half_spread + self.vol_mult * self._vol.get(slot, 0.0)
        return h if h > self.min_half else self.min_half

    def target_quotes(self, slot: int) -> dict[tuple[int, int], int]:
        """The ladder it wants now: ``(side, price) -> lots``; updates vol and pov state."""
        bb, _, ba, _ = self.quote(slot)
        m = 0.5 * (bb + ba) if bb != NO_PRICE and ba != NO_PRICE else self.mid(slot)
        if m != m:
            return {}
        last = self._last_mid.get(slot)
        if last is not None:
            v = self._vol.get(slot, 0.0)
            self._vol[slot] = v + self.alpha * (abs(m - last) - v)
        self._last_mid[slot] = m
        size = self.size
        if self.pov > 0.0:
            vol_now = int(self.model.exchange.volume[slot])
            prev = self._last_volume.get(slot, vol_now)
            self._last_volume[slot] = vol_now
            q = round(self.pov * (vol_now - prev))
            if q > size:
                size = q
        h = self.half_spread_ticks(slot)
        inv = self.inventory(slot)
        c = m - self.skew * inv
        top_bid = math.floor(c - h)
        top_ask = math.ceil(c + h)
        if top_ask <= top_bid:
            top_ask = top_bid + 1
        if ba != NO_PRICE and top_bid >= ba:  # post-only: never cross what it sees
            top_bid = ba - 1
        if bb != NO_PRICE and top_ask <= bb:
            top_ask = bb + 1
        hi = self.model.exchange.books[slot].max_price_ticks
        want: dict[tuple[int, int], int] = {}
        cum = 0
        max_inv = self.max_inv
        for k in range(self.levels):
            if max_inv and inv + cum + size > max_inv:
                break
            price = top_bid - k * self.spacing
            if price < 1:
                break
            want[(BUY, price)] = size
            cum += size
        cum = 0
        for k in range(self.levels):
            if max_inv and inv - cum - size < -max_inv:
                break
            price = top_ask + k * self.spacing
            if price >= hi:
                break
            want[(SELL, price)] = size
            cum += size
        return want
