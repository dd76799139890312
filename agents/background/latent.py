"""`latent_liquidity`: slow liquidity providers whose resting orders form a demand curve.

Each agent stands for slow investors (funds that buy when the price is low against their own
view and sell when it is high) whose interest is a *demand curve* around an anchor price. It
keeps that curve in the book as resting limit orders, so a large order meets liquidity that
grows with the distance the price has travelled - the latent order book of Tóth et al. (2011)
and Donier et al. (2015), the mechanism behind the square-root impact law.

On each wake-up, per asset (prices in ticks):

* anchor ``A = w F + (1 - w) E``, ``E`` a time-aware EMA of the mid with half-life
  ``anchor_halflife_s`` (``E <- E + (1 - 2^(-dt/H)) (m - E)``, see
  :func:`agents.background.switching.mid_ema`) and ``w = anchor_fundamental_weight`` (``F``
  the fundamental; ``w = 0``: the anchor follows the price slowly, the condition of a
  square-root law);
* edges ``s = ceil(A + θ)`` and ``b = floor(A - θ)``, ``θ = threshold_ticks`` (usually drawn
  per agent, so that the population's curve starts at 0 and thickens away from the anchor);
* demand curve (target position in lots at price ``p``), ``ρ = lots_per_tick``,
  ``M = max_position_lots``:

      target(p) = -min(M, ρ (p - s + 1))   for p >= s
                = +min(M, ρ (b - p + 1))   for p <= b
                = 0                        otherwise;

* ladder, given its inventory ``P`` (position minus endowment) and the touch it sees (``bid``, ``ask``): cumulative sells
  up to price ``p`` ``S(p) = max(0, P - target(p))`` for ``p >= bid + 1`` and cumulative buys
  down to ``p`` ``B(p) = max(0, target(p) - P)`` for ``p <= ask - 1``; the order at a price is
  the step of ``S`` (or ``B``) there. Post-only: what the curve would trade at or through the
  touch rests one tick inside it (an agent whose anchor has moved while it holds a position
  unwinds passively at the touch). Only the ``levels`` nearest non-empty prices of each side
  are shown; the rest of the curve stays latent until the price comes closer.

Over a population whose thresholds are spread over ``[0, θ_max]`` the resting volume at
distance ``x`` from the anchor grows like ``ρ n(θ < x)``, linearly: a V-shaped book, so
moving the price by ``x`` costs ``~ x^2`` lots and the impact of ``Q`` lots grows like
``sqrt(Q)`` while the meta-order is faster than the anchor's half-life.

Requoting is the market maker's diff (:class:`agents.background.market_maker.LadderQuoter`):
levels still wanted keep their queue priority, so the ladder churns only when the edges move
a tick or a fill changes the position. Cost per wake: O(levels + max_position_lots /
lots_per_tick).

References: B. Tóth, Y. Lempérière, C. Deremble, J. de Lataillade, J. Kockelkoren,
J.-P. Bouchaud (2011), Phys. Rev. X 1, 021006; J. Donier, J. Bonart, I. Mastromatteo,
J.-P. Bouchaud (2015), Quant. Finance 15(7); I. Mastromatteo, B. Tóth, J.-P. Bouchaud (2014),
Phys. Rev. E 89, 042805.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from agents.background.base import BUY, NO_PRICE, SELL, TraderParams, register_trader
from agents.background.market_maker import LadderQuoter
from agents.background.switching import mid_ema
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["LatentLiquidity", "LatentLiquidityParams", "demand_target", "demand_ladder"]


class LatentLiquidityParams(TraderParams):
    """Parameters of ``latent_liquidity`` (see the module docs)."""

    threshold_ticks: Num = Field(
        5.0, description="Distance theta from the anchor where its demand starts, ticks (>= 0)."
    )
    lots_per_tick: IntNum = Field(
        50, description="Slope rho of its demand curve: lots per tick beyond the threshold (>= 1)."
    )
    max_position_lots: IntNum = Field(
        1000, description="Saturation M of its demand curve, lots (>= 1)."
    )
    levels: IntNum = Field(10, description="Non-empty price levels shown per side (>= 1).")
    anchor_halflife_s: Num = Field(
        14400.0, description="Half-life of the mid's EMA in the anchor, trading seconds (> 0)."
    )
    anchor_fundamental_weight: Num = Field(
        0.0, description="Weight w of the fundamental in the anchor, in [0, 1]."
    )


def demand_target(p: int, s: int, b: int, rho: int, cap: int) -> int:
    """Target position at price ``p`` (ticks) of the demand curve with edges ``s > b``. O(1)."""
    if p >= s:
        return -min(cap, rho * (p - s + 1))
    if p <= b:
        return min(cap, rho * (b - p + 1))
    return 0


def demand_ladder(
    pos: int, s: int, b: int, rho: int, cap: int, bid: int, ask: int, levels: int, hi: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Resting orders that keep a position ``pos`` on the demand curve (module docs).

    Args:
        pos: Current position, lots.
        s, b: Sell and buy edges (ticks), ``s > b``.
        rho, cap: Slope (lots per tick) and saturation (lots) of the curve.
        bid, ask: The touch (ticks); sells start at ``bid + 1``, buys at ``ask - 1``.
        levels: Non-empty levels per side, at most.
        hi: First invalid price (the book's ``max_price_ticks``); prices stay in ``[1, hi)``.

    Returns:
        ``(sells, buys)``: lists of ``(price, lots)``, nearest the touch first.

    Complexity: O(levels + cap / rho): the flat region between the edges and the saturated
    part of the curve are skipped; prices already traded through (up to cap / rho) are not.
    """
    sells: list[tuple[int, int]] = []
    done = 0
    p = max(bid + 1, 1)
    full = pos + cap  # all sold: target = -cap
    sat_b = b - (cap + rho - 1) // rho + 1  # at or below: target = +cap
    while len(sells) < levels and p < hi and done < full:
        cum = pos - demand_target(p, s, b, rho, cap)
        if cum > done:
            sells.append((p, cum - done))
            done = cum
        if b < p < s - 1:
            p = s - 1  # target is 0 (and cum constant) until s
        elif p < sat_b - 1:
            p = sat_b - 1  # target saturated at +cap until sat_b
        p += 1
    buys: list[tuple[int, int]] = []
    done = 0
    p = min(ask - 1, hi - 1)
    full = cap - pos  # all bought: target = +cap
    sat_s = s + (cap + rho - 1) // rho - 1  # at or above: target = -cap
    while len(buys) < levels and p >= 1 and done < full:
        cum = demand_target(p, s, b, rho, cap) - pos
        if cum > done:
            buys.append((p, cum - done))
            done = cum
        if b + 1 < p < s:
            p = b + 1
        elif p > sat_s + 1:
            p = sat_s + 1
        p -= 1
    return sells, buys


@register_trader("latent_liquidity")
class LatentLiquidity(LadderQuoter):
    """Keeps its demand curve around a slow anchor in the book (see the module docs)."""

    Params = LatentLiquidityParams
    state_attrs = ("_orders", "_anchor_ema")

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
        self.threshold = float(p["threshold_ticks"])
        self.rho = int(p["lots_per_tick"])
        self.cap = int(p["max_position_lots"])
        self.levels = int(p["levels"])
        self.halflife = float(p["anchor_halflife_s"])
        self.w = float(p["anchor_fundamental_weight"])
        self.check_params(
            (
                ("threshold_ticks", self.threshold, 0.0 <= self.threshold < math.inf, ">= 0"),
                ("lots_per_tick", self.rho, self.rho >= 1, ">= 1"),
                ("max_position_lots", self.cap, self.cap >= 1, ">= 1"),
                ("levels", self.levels, self.levels >= 1, ">= 1"),
                ("anchor_halflife_s", self.halflife, 0.0 < self.halflife < math.inf, "> 0, finite"),
                ("anchor_fundamental_weight", self.w, 0.0 <= self.w <= 1.0, "in [0, 1]"),
            )
        )
        self._step_s = float(model.session.step_seconds)
        #: Position (lots) it holds when flat on its curve: its endowment, per slot.
        pos = model.ledger.positions
        self.base_position = {s: int(pos[account, s]) for s in self.slots}
        #: Per slot: (EMA of the mid in ticks, step of its last update).
        self._anchor_ema: dict[int, tuple[float, int]] = {}

    def act(self, step: int) -> None:
        """Requote the curve in every listed asset. O(levels) per asset."""
        for slot in self.tradable_slots():
            self.requote(slot)

    def inventory(self, slot: int) -> int:
        """Position in ``slot`` minus its endowment, in lots: where it sits on its curve."""
        return self.position(slot) - self.base_position.get(slot, 0)

    def anchor(self, slot: int, m: float, step: int) -> float:
        """Update the EMA with the mid ``m`` seen at ``step``; return the anchor (ticks). O(1)."""
        e = mid_ema(self._anchor_ema.get(slot), m, step, self._step_s, self.halflife)
        self._anchor_ema[slot] = (e, step)
        if self.w == 0.0:
            return e
        f = self.fundamental(slot)
        return e if f != f else self.w * f + (1.0 - self.w) * e

    def target_quotes(self, slot: int) -> dict[tuple[int, int], int]:
        """The resting orders of its curve now: ``(side, price) -> lots``."""
        bb, _, ba, _ = self.quote(slot)
        m = self.mid(slot)
        if m != m:
            return {}
        a = self.anchor(slot, m, self.model.t)
        s = math.ceil(a + self.threshold)
        b = math.floor(a - self.threshold)
        if s <= b:  # threshold 0 on an exact tick: keep the edges apart
            s = b + 1
        bid = bb if bb != NO_PRICE else math.floor(m)
        ask = ba if ba != NO_PRICE else math.ceil(m)
        if ask <= bid:
            ask = bid + 1
        hi = self.model.exchange.books[slot].max_price_ticks
        sells, buys = demand_ladder(
            self.inventory(slot), s, b, self.rho, self.cap, bid, ask, self.levels, hi
        )
        want = {(SELL, p): q for p, q in sells}
        want.update({(BUY, p): q for p, q in buys})
        return want
