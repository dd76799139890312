"""`switching`: chartist-fundamentalist switching traders (Lux-Marchesi / Brock-Hommes flavour).

Every agent is either a *chartist* or a *fundamentalist*. On each wake-up it picks one of its
assets, observes the (delayed) mid ``m`` and the fundamental ``F`` (ticks), and:

1. scores both strategies on the mid move since its previous wake-up: each strategy earns
   ``signal * (m - m_prev)`` ticks, where ``signal`` (-1, 0, +1) is what the strategy said at
   that previous wake-up; the scores are EWMAs with weight ``performance_alpha``;
2. may switch, with probability ``min(1, switch_rate * exp(+-U))`` (``+U`` from fundamentalist
   to chartist, ``-U`` back), where ``U = herding_weight * x + performance_weight * (perf_c -
   perf_f) - mispricing_weight * |F - m|`` and ``x = 2 n_c / n - 1`` is the opinion index of its
   group (``n_c`` chartists among ``n`` agents): the more agents are chartists and the better
   chartism did lately, the more fundamentalists turn chartist, and vice versa (Lux and Marchesi
   1999). Herding lets the population swing between calm, fundamentalist-dominated phases and
   volatile chartist ones, which gives volatility clustering. The last term is Lux and Marchesi's
   expected profit of fundamentalists, which grows with the mispricing ``|F - m|`` (ticks): it
   makes a bubble burst once the price strays far from the value (without it, herding and the
   chartists' own profits can carry the price away for good). It is off by default (0);
   ``scenarios/stylized_facts.toml`` uses it;
3. trades ``size_lots`` (market or at the touch): a chartist in the direction of the trend ``m -
   EWMA(m)`` (EWMA weight ``trend_alpha`` over its wake-ups) when it exceeds
   ``chartist_threshold_ticks``; a fundamentalist toward ``F`` when ``|F - m|`` exceeds
   ``fundamentalist_threshold_ticks``. With ``position_per_tick > 0`` a fundamentalist trades
   only up to a position target that grows linearly with the mispricing beyond its threshold,
   ``|target| = position_per_tick * (|F - m| - threshold)`` lots (a linear demand curve, like
   the value investors of Farmer and Joshi 2002): its order is cut to the room left. Over a
   population with spread-out thresholds the liquidity waiting to sell into a rising price
   then grows linearly with the distance from the value, the latent order book behind the
   square-root impact law (Toth et al. 2011; Donier et al. 2015); it is off by default (0:
   trade ``size_lots`` whenever beyond the threshold). Such a fundamentalist keeps its position
   while the mispricing shrinks back inside its threshold; with ``unwind = true`` it trades
   toward its target at every wake-up instead, back to 0 inside the threshold: its position is
   a demand curve of the mispricing alone, ``-sign(gap) position_per_tick (|gap| -
   threshold)+``, so the latent book it forms is whole again whenever the price comes back.

What a fundamentalist calls the value is its *anchor* ``A`` (``F`` above stands for it): with
``anchor = "fundamental"`` (the default) ``A = F``; with ``anchor = "ema"``

    ``A = w F + (1 - w) E``,  ``E <- E + alpha (m - E)``,  ``alpha = 1 - 2^(-dt / H)``,

where ``E`` is an exponential moving average of the mid the agent sees, updated at each of its
wake-ups (``dt`` the trading seconds since its previous update of that slot, overnight gaps not
counted; ``E`` starts at the first mid it sees), ``H = anchor_halflife_s`` and ``w =
anchor_fundamental_weight``. The mispricing ``A - m`` then drives the signal, the position
target and the switching term alike. Why: with position targets the anchor is the centre of
the agents' latent order book. Centred on ``F`` it sits wherever the value is, and when the
price has drifted away from it the marginal liquidity a meta-order meets is the (linear) slope
of a book already half used up: the impact answers linearly. Centred on a slow average of the
price, the book moves with the price and a meta-order much faster than ``H`` eats into a book
whose depth grows linearly with the distance from the current price - the condition of the
square-root impact law (Toth et al. 2011; Donier, Bonart, Mastromatteo & Bouchaud 2015); the
weight ``w`` keeps some pull toward the value.

The group's counts live on the model (``model._switching_counts[group] = [n_c, n]``, created on
first use) and always equal the sum of its agents' states: every switch updates them and
:meth:`SwitchingTrader.set_state` (checkpoint restore) moves the agent's contribution, so they
need no state of their own. Cost per wake: a few scalar float operations (one ``exp2`` more with
the ema anchor) and 2-3 draws.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from agents.background.base import BUY, SELL, Trader, TraderParams, register_trader
from agents.background.momentum import Aggression, send_aggressive
from agents.background.noise import check_prob
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["SwitchingParams", "SwitchingTrader", "switching_counts"]

_U_MAX = 30.0  # |U| is clipped so that exp() stays finite


def mid_ema(
    prev: tuple[float, int] | None, m: float, step: int, step_s: float, halflife_s: float
) -> float:
    """One update of a time-aware EMA of the mid: ``E + (1 - 2^(-dt / H)) (m - E)``.

    ``prev`` is ``(E, step of its last update)`` or ``None`` (then ``E = m``); ``dt`` is the
    seconds since that update, so the weight does not depend on how often it is called. O(1).
    """
    if prev is None:
        return m
    dt = (step - prev[1]) * step_s
    return prev[0] + (1.0 - 2.0 ** (-dt / halflife_s)) * (m - prev[0])


def switching_counts(model: MarketModel) -> dict[str, list[int]]:
    """The model's ``group -> [chartists, agents]`` counts of switching traders (live object)."""
    return vars(model).setdefault("_switching_counts", {})


class SwitchingParams(TraderParams):
    """Parameters of the ``switching`` trader (see the module docs)."""

    wake_rate_per_hour: Num = Field(
        60.0, description="Mean Poisson wake-ups per trading hour (used when wake_interval_s=0)."
    )
    chartist_prob_init: Num = Field(0.3, description="Probability of starting as a chartist.")
    switch_rate: Num = Field(
        0.05, description="Base switching probability per wake-up (before the exp factor)."
    )
    herding_weight: Num = Field(
        1.0, description="Weight of the opinion index x = 2 n_chartists / n - 1 in U."
    )
    performance_weight: Num = Field(
        0.5, description="Weight of the strategies' score difference in U, per tick."
    )
    mispricing_weight: Num = Field(
        0.0,
        description="Weight of |fundamental - mid| (per tick) pulling agents to fundamentalism "
        "in U (Lux-Marchesi's expected fundamentalist profit); 0 = off.",
    )
    performance_alpha: Num = Field(
        0.1, description="Weight of the newest move in the strategy scores' EWMA (0..1]."
    )
    trend_alpha: Num = Field(
        0.2, description="Weight of the newest mid in the chartists' trend EWMA (0..1]."
    )
    chartist_threshold_ticks: Num = Field(
        0.5, description="Chartists trade when |mid - EWMA(mid)| exceeds this many ticks."
    )
    fundamentalist_threshold_ticks: Num = Field(
        2.0, description="Fundamentalists trade when |fundamental - mid| exceeds this (ticks)."
    )
    size_lots: IntNum = Field(5, description="Lots per order.")
    aggression: Aggression = Field(
        "market", description="market order, or limit order at the opposite best."
    )
    position_per_tick: Num = Field(
        0.0,
        description="Fundamentalists: target |position| in lots per tick of mispricing beyond "
        "their threshold (orders are cut to reach it); 0 = off.",
    )
    max_position_lots: IntNum = Field(
        0, description="Cap on |position| in lots (orders are cut to respect it); 0 = none."
    )
    unwind: bool = Field(
        False,
        description="With position_per_tick > 0: fundamentalists also trade back toward "
        "position 0 as the mispricing shrinks (a demand curve); False = hold until beyond "
        "the threshold on the other side.",
    )
    anchor: Literal["fundamental", "ema"] = Field(
        "fundamental",
        description="Fundamentalists' value: the fundamental, or w * fundamental + (1 - w) * an "
        "EMA of the mid they see (w = anchor_fundamental_weight).",
    )
    anchor_halflife_s: Num = Field(
        3600.0, description="anchor = 'ema': half-life of the mid's EMA in trading seconds (> 0)."
    )
    anchor_fundamental_weight: Num = Field(
        0.0, description="anchor = 'ema': weight w of the fundamental in the anchor, in [0, 1]."
    )


@register_trader("switching")
class SwitchingTrader(Trader):
    """A trader that switches between chartism and fundamentalism (see the module docs)."""

    Params = SwitchingParams
    state_attrs = (
        "chartist",
        "n_switches",
        "perf_chartist",
        "perf_fund",
        "_ewma",
        "_prev",
        "_anchor_ema",
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
        init = check_prob(self, "chartist_prob_init")
        self.switch_rate = check_prob(self, "switch_rate")
        self.herding = float(p["herding_weight"])
        self.perf_weight = float(p["performance_weight"])
        self.mispricing_weight = float(p["mispricing_weight"])
        self.perf_alpha = float(p["performance_alpha"])
        self.trend_alpha = float(p["trend_alpha"])
        self.c_thr = float(p["chartist_threshold_ticks"])
        self.f_thr = float(p["fundamentalist_threshold_ticks"])
        self.size = int(p["size_lots"])
        self.aggression = str(p["aggression"])
        self.max_pos = int(p["max_position_lots"])
        self.pos_per_tick = float(p["position_per_tick"])
        if self.pos_per_tick < 0:
            raise self.param_error("position_per_tick", self.pos_per_tick, "must be >= 0")
        if self.mispricing_weight < 0:
            raise self.param_error("mispricing_weight", self.mispricing_weight, "must be >= 0")
        for name, v in (("performance_alpha", self.perf_alpha), ("trend_alpha", self.trend_alpha)):
            if not 0.0 < v <= 1.0:
                raise self.param_error(name, v, "must lie in (0, 1]")
        if self.size < 1:
            raise self.param_error("size_lots", self.size, "must be >= 1")
        if self.max_pos < 0:
            raise self.param_error("max_position_lots", self.max_pos, "must be >= 0")
        self.anchor = str(p["anchor"])
        if self.anchor not in ("fundamental", "ema"):
            raise self.param_error("anchor", self.anchor, "must be 'fundamental' or 'ema'")
        self.anchor_halflife_s = float(p["anchor_halflife_s"])
        if not 0.0 < self.anchor_halflife_s < math.inf:
            raise self.param_error(
                "anchor_halflife_s", self.anchor_halflife_s, "must be > 0 and finite (seconds)"
            )
        self.anchor_w = float(p["anchor_fundamental_weight"])
        if not 0.0 <= self.anchor_w <= 1.0:
            raise self.param_error("anchor_fundamental_weight", self.anchor_w, "must lie in [0, 1]")
        self._use_ema = self.anchor == "ema"
        self.unwind = bool(p["unwind"])
        if self.unwind and self.pos_per_tick <= 0.0:
            raise self.param_error(
                "unwind", self.unwind, "needs position_per_tick > 0 (the target to unwind to)"
            )
        self._step_s = float(model.session.step_seconds)
        #: True while a chartist.
        self.chartist = bool(model.rng.random() < init)
        #: Strategy switches so far.
        self.n_switches = 0
        #: EWMA scores of the two strategies in ticks per wake-up.
        self.perf_chartist = 0.0
        self.perf_fund = 0.0
        #: EWMA of the mid per slot (ticks).
        self._ewma: dict[int, float] = {}
        #: Per slot: (mid, chartist signal, fundamentalist signal) at the previous wake-up.
        self._prev: dict[int, tuple[float, int, int]] = {}
        #: anchor = "ema": per slot (EMA of the mid in ticks, step of its last update).
        self._anchor_ema: dict[int, tuple[float, int]] = {}
        counts = switching_counts(model).setdefault(self.group, [0, 0])
        counts[0] += int(self.chartist)
        counts[1] += 1

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore; moves this agent's contribution to the group's counts."""
        was = self.chartist
        super().set_state(state)
        self.chartist = bool(self.chartist)
        switching_counts(self.model)[self.group][0] += int(self.chartist) - int(was)

    def opinion_index(self) -> float:
        """``2 n_c / n - 1`` of its group: -1 all fundamentalists, +1 all chartists."""
        n_c, n = switching_counts(self.model)[self.group]
        return 2.0 * n_c / n - 1.0

    def anchor_value(self, slot: int, m: float, step: int) -> float:
        """Update the mid's EMA with ``m`` seen at ``step`` and return the anchor (ticks). O(1).

        ``E <- E + (1 - 2^(-dt / H)) (m - E)`` with ``dt`` the seconds since the last update
        (``E = m`` at the first); the anchor is ``w F + (1 - w) E``.
        """
        e = mid_ema(self._anchor_ema.get(slot), m, step, self._step_s, self.anchor_halflife_s)
        self._anchor_ema[slot] = (e, step)
        w = self.anchor_w
        return e if w == 0.0 else w * self.fundamental(slot) + (1.0 - w) * e

    def act(self, step: int) -> None:
        """Score, maybe switch, trade. O(1)."""
        slots = self.tradable_slots()
        if not slots:
            return
        rng = self.drng
        slot = slots[0] if len(slots) == 1 else slots[int(rng.random() * len(slots))]
        m = self.mid(slot)
        if m != m:
            return
        f = self.anchor_value(slot, m, step) if self._use_ema else self.fundamental(slot)
        prev = self._prev.get(slot)
        if prev is not None:
            dm = m - prev[0]
            a = self.perf_alpha
            self.perf_chartist += a * (prev[1] * dm - self.perf_chartist)
            self.perf_fund += a * (prev[2] * dm - self.perf_fund)
        gap = f - m
        u = self.herding * self.opinion_index() + self.perf_weight * (
            self.perf_chartist - self.perf_fund
        )
        if self.mispricing_weight and gap == gap:
            u -= self.mispricing_weight * abs(gap)
        u = -_U_MAX if u < -_U_MAX else (_U_MAX if u > _U_MAX else u)
        if rng.random() < self.switch_rate * math.exp(-u if self.chartist else u):
            self.chartist = not self.chartist
            self.n_switches += 1
            switching_counts(self.model)[self.group][0] += 1 if self.chartist else -1
        ew = self._ewma.get(slot, m)
        trend = m - ew
        self._ewma[slot] = ew + self.trend_alpha * trend
        sig_c = (1 if trend > 0 else -1) if abs(trend) > self.c_thr else 0
        sig_f = (1 if gap > 0 else -1) if abs(gap) > self.f_thr and gap == gap else 0
        self._prev[slot] = (m, sig_c, sig_f)
        if self.unwind and not self.chartist:
            # a demand curve: trade toward the signed target, flat inside the threshold
            tgt = sig_f * self.pos_per_tick * (abs(gap) - self.f_thr) if sig_f else 0.0
            room = tgt - self.position(slot)
            if abs(room) >= 1.0:
                side = BUY if room > 0 else SELL
                send_aggressive(
                    self, slot, side, min(self.size, int(abs(room))), self.aggression, self.max_pos
                )
            return
        sig = sig_c if self.chartist else sig_f
        if sig:
            size = self.size
            if self.pos_per_tick > 0.0 and not self.chartist:
                room = self.pos_per_tick * (abs(gap) - self.f_thr) - sig * self.position(slot)
                if room < 1.0:
                    return
                size = min(size, int(room))
            send_aggressive(
                self, slot, BUY if sig > 0 else SELL, size, self.aggression, self.max_pos
            )
