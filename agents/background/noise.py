"""`noise`: zero-intelligence limit and market order flow (and ABIDES RMSC04's noise agents).

On each wake-up a noise trader picks one of its assets and a side at random (``buy_prob``),
draws a size (:class:`SizeModel`) and sends

* with probability ``market_prob`` an aggressive order: a market order, or (``aggressive_style``)
  a limit / IOC order at the opposite best quote, ABIDES's "limit at the touch";
* otherwise a passive limit order: with probability ``inside_spread_prob`` (when the spread is
  wider than one tick) at a uniform price strictly inside the spread, else ``k`` ticks behind
  its own side's best quote (``k = 0`` joins the queue), ``k`` drawn from a discretised Lomax
  (Pareto II) law with mean ``depth_mean_ticks`` and tail exponent ``depth_tail_alpha``, capped
  at ``max_depth_ticks``. Empirical limit-order placement is heavy-tailed (Bouchaud, Mézard and
  Potters 2002); a large ``depth_tail_alpha`` gives a geometric (exponential) law instead.

With an empty side the reference is the agent's (delayed) mid, or the last trade, or the
fundamental (see :meth:`Trader.mid`), so noise traders also seed an empty book.

With ``vol_feedback = e > 0`` the market-order probability is ``market_prob * (fast / slow)^e``
(capped at ``max_market_prob``): ``fast`` and ``slow`` are time-aware EMAs of
``|Δmid| / sqrt(Δt)`` between its wake-ups with half-lives ``vol_fast_halflife_s`` and
``vol_slow_halflife_s`` - traders pay more attention, and trade more aggressively, when the
market has been more volatile than usual, a feedback that clusters volatility (the
self-excitation of order flow, cf. Hawkes models of trading activity).

With ``activity_sigma > 0`` an exogenous, market-wide activity multiplier ``A(t)`` (lognormal,
mean 1, a sum of Ornstein-Uhlenbeck components in its log: :mod:`agents.background.activity`)
multiplies the market-order probability (``activity_on = "market_prob"``, capped at
``max_market_prob``), the wake-up rate (``"rate"``: more orders of every kind) or both: news and
attention come in bursts. In the stylized_facts market the rate alone does not raise the
volatility (the bursts bring as much new liquidity as they take) while the market-order share
does.
Every group with the same ``activity_stream`` name shares one path, drawn from a stream of its
own, so the activity never responds to the market: a meta-order does not draw the crowd.

With ``inventory_scale_lots = s > 0`` the trader is inventory averse: the odds of a buy are
multiplied by ``exp(-2 x)``, ``x`` its position beyond its endowment over ``s``, so what it
absorbs from a one-sided flow it gives back over the following orders (fast liquidity that does
not keep inventory).

Orders older than ``order_lifetime_s`` are cancelled at the agent's next wake-up (if still live).
``single_wake_per_day = true`` reproduces ABIDES RMSC04: one wake-up per day at a uniform random
time of the session and one order.

:class:`SizeModel` is the order-size law shared by several traders: a lognormal with mean
``size_mean_lots`` and log-std ``size_sigma``, mixed (``round_lot_prob``) with round lots of
``round_lot_lots * k`` where ``k`` is geometric with ``P(k = 1) = 0.875``, close to ABIDES's
``OrderSizeModel`` (20 % lognormal, 80 % multiples of 100 shares, 87.5 % of them single lots).

Cost per wake: the same handful of draws from its own stream (``drng``) on every wake, whatever
the book looks like - the side, the size and four uniforms - so a counterfactual run (the same
market without a meta-order) draws the same numbers for this trader even where the books
differ; O(1) besides stale-order cancels.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from agents.background.activity import ActivityPath
from agents.background.base import BUY, NO_PRICE, SELL, Trader, TraderParams, register_trader
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    import numpy as np

    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["NoiseParams", "NoiseTrader", "ROUND_LOT_SINGLE_PROB", "SizeModel"]

#: Probability that a round-lot order is a single round lot (``k`` is geometric with this p).
ROUND_LOT_SINGLE_PROB = 0.875


class SizeModel:
    """Order sizes in lots: lognormal with a given mean, optionally mixed with round lots.

    Args:
        mean_lots: Mean of the lognormal part (> 0).
        sigma: Standard deviation of its log (>= 0; 0 gives ``round(mean_lots)`` always).
        round_lot_prob: Probability of a round-lot order instead (0..1).
        round_lot_lots: Lots in one round lot (>= 1).

    :meth:`draw` costs one or two scalar draws (~1 µs) and returns an int >= 1.
    """

    __slots__ = ("_fixed", "_mu", "_sigma", "_p_round", "_round")

    def __init__(
        self, mean_lots: float, sigma: float, round_lot_prob: float = 0.0, round_lot_lots: int = 100
    ) -> None:
        self._sigma = float(sigma)
        self._mu = math.log(mean_lots) - 0.5 * self._sigma**2
        self._fixed = max(1, round(mean_lots))
        self._p_round = float(round_lot_prob)
        self._round = int(round_lot_lots)

    def draw(self, rng: np.random.Generator) -> int:
        """One order size in lots (>= 1). O(1)."""
        if self._p_round > 0.0 and rng.random() < self._p_round:
            return self._round * int(rng.geometric(ROUND_LOT_SINGLE_PROB))
        if self._sigma <= 0.0:
            return self._fixed
        x = int(rng.lognormal(self._mu, self._sigma) + 0.5)
        return x if x > 0 else 1


def size_model_from(agent: Trader, prefix: str = "") -> SizeModel:
    """Build the :class:`SizeModel` of ``agent`` from its ``size_*`` / ``round_lot_*`` params,
    checking the drawn values (ConfigError naming the parameter otherwise)."""
    p = agent.p
    mean = float(p["size_mean_lots"])
    sigma = float(p["size_sigma"])
    prob = float(p["round_lot_prob"])
    lots = int(p["round_lot_lots"])
    if not mean > 0:
        raise agent.param_error("size_mean_lots", mean, "must be > 0")
    if sigma < 0:
        raise agent.param_error("size_sigma", sigma, "must be >= 0")
    if not 0.0 <= prob <= 1.0:
        raise agent.param_error("round_lot_prob", prob, "must lie in [0, 1]")
    if lots < 1:
        raise agent.param_error("round_lot_lots", lots, "must be >= 1")
    return SizeModel(mean, sigma, prob, lots)


def check_prob(agent: Trader, name: str) -> float:
    """``agent.p[name]`` as a probability in [0, 1] (ConfigError naming it otherwise)."""
    v = float(agent.p[name])
    if not 0.0 <= v <= 1.0:
        raise agent.param_error(name, v, "must be a probability in [0, 1]")
    return v


class SizeParams(TraderParams):
    """Order-size fields shared by the traders that use :class:`SizeModel`."""

    size_mean_lots: Num = Field(10.0, description="Mean order size in lots (lognormal part).")
    size_sigma: Num = Field(
        0.8, description="Std of log order size (dimensionless); 0 = always size_mean_lots."
    )
    round_lot_prob: Num = Field(
        0.0, description="Probability an order is a multiple of round_lot_lots instead."
    )
    round_lot_lots: IntNum = Field(100, description="Lots per round lot (ABIDES: 100 shares).")


class NoiseParams(SizeParams):
    """Parameters of the ``noise`` trader (see the module docs)."""

    wake_rate_per_hour: Num = Field(
        30.0, description="Mean Poisson wake-ups per trading hour (used when wake_interval_s=0)."
    )
    single_wake_per_day: bool = Field(
        False, description="ABIDES RMSC04: exactly one wake-up per day at a uniform random time."
    )
    buy_prob: Num = Field(0.5, description="Probability that an order is a buy.")
    inventory_scale_lots: Num = Field(
        0.0,
        description="Inventory aversion: the buy odds are multiplied by exp(-2 d / scale), d "
        "its position minus its endowment, lots (0 = off, else > 0).",
    )
    market_prob: Num = Field(0.1, description="Probability of an aggressive order per wake-up.")
    aggressive_style: Literal["market", "touch_limit", "touch_ioc"] = Field(
        "market",
        description="Aggressive orders: market order, limit at the opposite best (rests if "
        "not filled; ABIDES noise agents), or IOC at the opposite best.",
    )
    inside_spread_prob: Num = Field(
        0.15, description="Probability a passive order goes strictly inside a >1-tick spread."
    )
    depth_mean_ticks: Num = Field(
        3.0, description="Mean distance in ticks behind the own-side best of passive orders."
    )
    depth_tail_alpha: Num = Field(
        3.0, description="Tail exponent (> 1) of the Lomax depth law; large = geometric."
    )
    max_depth_ticks: IntNum = Field(100, description="Cap on the passive depth in ticks.")
    order_lifetime_s: Num = Field(
        0.0,
        description="Cancel own orders older than this many seconds at the next wake; 0 = never.",
    )
    vol_feedback: Num = Field(
        0.0,
        description="Elasticity of the market-order probability to recent / usual volatility "
        "(0 = off).",
    )
    vol_fast_halflife_s: Num = Field(
        300.0, description="Half-life of its recent-volatility average, s (> 0)."
    )
    vol_slow_halflife_s: Num = Field(
        23400.0, description="Half-life of its usual-volatility average, s (> 0)."
    )
    max_market_prob: Num = Field(
        0.9,
        description="Cap on the market-order probability under vol_feedback or activity (0..1).",
    )
    activity_sigma: Num = Field(
        0.0,
        description="Std of log activity, the exogenous market-wide activity multiplier "
        "(0 = off; see agents.background.activity).",
    )
    activity_halflives_s: list[float] = Field(
        [600.0, 3600.0, 23400.0],
        description="Half-lives (s) of the activity's Ornstein-Uhlenbeck components.",
    )
    activity_grid_s: Num = Field(10.0, description="Seconds per cell of the activity path.")
    activity_on: Literal["market_prob", "rate", "both"] = Field(
        "market_prob",
        description="What the activity multiplies: the wake-up rate (more orders of every "
        "kind), the market-order probability, or both.",
    )
    activity_stream: str = Field(
        "market",
        description="Name of the activity path: groups with the same name share its random "
        "path (one market-wide news flow).",
    )


@register_trader("noise")
class NoiseTrader(Trader):
    """Zero-intelligence trader: random market and limit orders around the (delayed) quotes."""

    Params = NoiseParams
    state_attrs = ("_expiry", "_vol")

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
        self.size_model = size_model_from(self)
        self.buy_prob = check_prob(self, "buy_prob")
        self.inv_scale = float(p["inventory_scale_lots"])
        self.check_params([(
            "inventory_scale_lots", self.inv_scale, 0.0 <= self.inv_scale < math.inf,
            ">= 0, finite (0 = off)",
        )])  # fmt: skip
        #: Per symbol: its endowment in lots, the position its inventory aversion returns to.
        self._endow = {str(k): int(v) for k, v in (config.shares or {}).items()}
        self.market_prob = check_prob(self, "market_prob")
        self.inside_prob = check_prob(self, "inside_spread_prob")
        self.style = str(p["aggressive_style"])
        self.single_wake = bool(p["single_wake_per_day"])
        mean = float(p["depth_mean_ticks"])
        alpha = float(p["depth_tail_alpha"])
        if mean < 0:
            raise self.param_error("depth_mean_ticks", mean, "must be >= 0")
        if not alpha > 1.0:
            raise self.param_error("depth_tail_alpha", alpha, "must be > 1 (finite mean depth)")
        self.max_depth = int(p["max_depth_ticks"])
        if self.max_depth < 0:
            raise self.param_error("max_depth_ticks", self.max_depth, "must be >= 0")
        # Lomax(alpha, lam) has mean lam / (alpha - 1); draws are rounded to whole ticks.
        self._lam = mean * (alpha - 1.0)
        self._inv_alpha = 1.0 / alpha
        life = float(p["order_lifetime_s"])
        if life < 0:
            raise self.param_error("order_lifetime_s", life, "must be >= 0 (0 = never cancel)")
        self._life_steps = max(1, round(life / model.session.step_seconds)) if life > 0 else 0
        #: (expiry step, slot, order id) of own orders that may still rest, oldest first.
        self._expiry: deque[tuple[int, int, int]] = deque()
        self.vol_feedback = float(p["vol_feedback"])
        self.vol_fast = float(p["vol_fast_halflife_s"])
        self.vol_slow = float(p["vol_slow_halflife_s"])
        self.max_market_prob = float(p["max_market_prob"])
        self.check_params((
            ("vol_feedback", self.vol_feedback, 0.0 <= self.vol_feedback < math.inf, ">= 0"),
            ("vol_fast_halflife_s", self.vol_fast, 0.0 < self.vol_fast < math.inf, "> 0"),
            ("vol_slow_halflife_s", self.vol_slow, 0.0 < self.vol_slow < math.inf, "> 0"),
            ("max_market_prob", self.max_market_prob, 0.0 <= self.max_market_prob <= 1.0,
             "in [0, 1]"),
        ))  # fmt: skip
        #: vol_feedback: per slot (last mid, step, fast |dm|/sqrt(dt) EMA, slow EMA).
        self._vol: dict[int, tuple[float, int, float, float]] = {}
        self.activity = self._activity_path()
        on = str(p["activity_on"])
        self._act_rate = self.activity is not None and on in ("rate", "both")
        self._act_mkt = self.activity is not None and on in ("market_prob", "both")
        if self._act_rate and (self.single_wake or self._interval_steps):
            raise self.param_error(
                "activity_on",
                on,
                "a rate needs Poisson wake-ups (wake_interval_s = 0 and "
                "single_wake_per_day = false); use market_prob",
            )

    def _activity_path(self) -> ActivityPath | None:
        """The shared activity path of this agent's ``activity_stream`` (None when
        ``activity_sigma`` is 0). Agents with the same stream name and parameters share one
        object; it is a function of the seed and the name only, never saved. O(run / grid)
        for the first agent, O(1) after."""
        p = self.p
        sigma = float(p["activity_sigma"])
        halflives = tuple(float(h) for h in p["activity_halflives_s"])
        grid = float(p["activity_grid_s"])
        name = str(p["activity_stream"])
        self.check_params((
            ("activity_sigma", sigma, 0.0 <= sigma <= 5.0, "in [0, 5]"),
            ("activity_grid_s", grid, 0.0 < grid < math.inf, "> 0"),
        ))  # fmt: skip
        if sigma == 0.0:
            return None
        ok = bool(halflives) and all(0.0 < h < math.inf for h in halflives)
        self.check_params(
            [("activity_halflives_s", list(halflives), ok, "a non-empty list of half-lives > 0")]
        )
        cache = self.model.__dict__.setdefault("_activity_paths", {})
        key = (name, sigma, halflives, grid)
        path = cache.get(key)
        if path is None:
            ses = self.model.session
            path = cache[key] = ActivityPath(
                self.model.shared_stream("activity/" + name), ses.total_steps,
                ses.step_seconds, sigma, halflives, grid,
            )  # fmt: skip
        return path

    # ------------------------------------------------------------------ scheduling
    def first_wake(self, day_start: int) -> int | None:
        """One uniform wake-up in the session with ``single_wake_per_day``, else as the base."""
        if self.single_wake:
            spd = self.model.session.steps_per_day
            return day_start + int(self.schedule_rng.random() * spd)
        if self._act_rate and self._rate_per_step > 0:
            return int(self._activity_arrival(day_start))
        return super().first_wake(day_start)

    def next_wake(self, step: int) -> int | None:
        """None after the single daily wake-up, else as the base."""
        if self.single_wake:
            return None
        if self._act_rate and self._rate_per_step > 0:
            return max(step + 1, math.ceil(self._activity_arrival(step)))
        return super().next_wake(step)

    def _activity_arrival(self, t: int) -> float:
        """The next Poisson arrival after ``t`` at ``rate * A``: a gap drawn at the base rate
        (same stream and draw as the base schedule) run through the activity's time change."""
        gap = self.schedule_rng.exponential(1.0 / self._rate_per_step)
        return self.activity.after(t, gap)

    def on_day_end(self, day: int, step: int) -> None:
        """The exchange cancelled every resting order: forget them."""
        self._expiry.clear()

    # ------------------------------------------------------------------ acting
    def depth_ticks(self, u: float) -> int:
        """Distance behind the own-side best of a passive order, in ticks, from a uniform
        ``u`` in [0, 1) (Lomax by inversion). O(1)."""
        if self._lam <= 0.0:
            return 0
        k = int(self._lam * ((1.0 - u) ** -self._inv_alpha - 1.0) + 0.5)
        return k if k < self.max_depth else self.max_depth

    def act(self, step: int) -> None:
        """Cancel stale orders, then send one random order. O(1) (+ stale cancels)."""
        if self._expiry:
            self._cancel_stale(step)
        slots = self.tradable_slots()
        if not slots:
            return
        rng = self.drng
        slot = slots[0] if len(slots) == 1 else slots[int(rng.random() * len(slots))]
        # The same draws on every wake, whatever the market looks like, so that a run with a
        # meta-order and its counterfactual keep this trader's stream aligned: side, size,
        # aggressive or not, inside the spread or not, where inside, how deep.
        u_side = rng.random()
        qty = self.size_model.draw(rng)
        u_mkt, u_in, u_pos, u_depth = rng.random(4).tolist()
        side = BUY if u_side < self._buy_prob(slot) else SELL
        bb, _, ba, _ = self.quote(slot)
        p_mkt = self.market_prob if self.vol_feedback == 0.0 else self._market_prob(slot, step)
        if self._act_mkt:
            p_mkt = min(self.max_market_prob, p_mkt * self.activity.level(step))
        if u_mkt < p_mkt:
            if self.style == "market":
                self.market(slot, side, qty)
                return
            opp = ba if side == BUY else bb
            if opp != NO_PRICE:
                if self.style == "touch_ioc":
                    self.ioc(slot, side, opp, qty)
                else:
                    self._rest(step, slot, side, opp, qty)
                return
            # nothing to hit on the other side: place a passive order instead
        price = self._passive_price(slot, side, bb, ba, u_in, u_pos, u_depth)
        self._rest(step, slot, side, price, qty)

    def _buy_prob(self, slot: int) -> float:
        """``buy_prob``, or with inventory aversion ``b e^-x / (b e^-x + (1 - b) e^x)`` with
        ``x = (position - endowment) / inventory_scale_lots`` (``(1 - tanh x) / 2`` for ``b =
        1/2``): a trader long sells more and short buys more, so it holds what it absorbs only
        for a while. O(1)."""
        b = self.buy_prob
        if self.inv_scale == 0.0 or b in (0.0, 1.0):
            return b
        sym = self.model.exchange.assets[slot].symbol
        x = (self.position(slot) - self._endow.get(sym, 0)) / self.inv_scale
        x = max(-30.0, min(30.0, x))
        up, down = b * math.exp(-x), (1.0 - b) * math.exp(x)
        return up / (up + down)

    def _market_prob(self, slot: int, step: int) -> float:
        """``market_prob * (fast / slow)^vol_feedback`` capped at ``max_market_prob``: fast and
        slow are time-aware EMAs of ``|Δmid| / sqrt(Δt)`` between its wake-ups (half-lives
        ``vol_fast_halflife_s`` and ``vol_slow_halflife_s``), so it trades more aggressively
        when the market has been more volatile than usual. O(1)."""
        m = self.mid(slot)
        if m != m:
            return self.market_prob
        prev = self._vol.get(slot)
        if prev is None:
            self._vol[slot] = (m, step, -1.0, -1.0)  # no move measured yet
            return self.market_prob
        last, t0, fast, slow = prev
        if step <= t0:
            return self.market_prob
        dt = (step - t0) * self.model.session.step_seconds
        r = abs(m - last) / math.sqrt(dt)
        if fast < 0.0:  # the first move measured starts both averages
            fast = slow = r
        else:
            fast += (1.0 - 2.0 ** (-dt / self.vol_fast)) * (r - fast)
            slow += (1.0 - 2.0 ** (-dt / self.vol_slow)) * (r - slow)
        self._vol[slot] = (m, step, fast, slow)
        if slow <= 0.0:
            return self.market_prob
        return min(self.max_market_prob, self.market_prob * (fast / slow) ** self.vol_feedback)

    def _passive_price(
        self, slot: int, side: int, bb: int, ba: int, u_in: float, u_pos: float, u_depth: float
    ) -> int:
        """A passive order's price from three uniforms: inside a >1-tick spread when ``u_in <
        inside_spread_prob`` (at a uniform level picked by ``u_pos``), else ``depth_ticks``
        (from ``u_depth``) behind its own side's best or reference. O(1)."""
        if bb != NO_PRICE and ba != NO_PRICE:
            spread = ba - bb
            if spread > 1 and u_in < self.inside_prob:
                return bb + 1 + int(u_pos * (spread - 1))
            ref = bb if side == BUY else ba
        else:
            own = bb if side == BUY else ba
            if own != NO_PRICE:
                ref = own
            else:
                m = self.mid(slot)
                if m != m:  # NaN: nothing known about the price at all
                    return 0
                ref = math.floor(m) if side == BUY else math.ceil(m)
                ref -= side
                # a passive order must not cross a quote it can see
                if side == BUY and ba != NO_PRICE and ref >= ba:
                    ref = ba - 1
                elif side == SELL and bb != NO_PRICE and ref <= bb:
                    ref = bb + 1
        return ref - side * self.depth_ticks(u_depth)

    def _rest(self, step: int, slot: int, side: int, price: int, qty: int) -> None:
        if price <= 0:
            return
        oid = self.limit(slot, side, self.clamp_price(slot, price), qty)
        if self._life_steps:
            self._expiry.append((step + self._life_steps, slot, oid))

    def _cancel_stale(self, step: int) -> None:
        books = self.model.exchange.books
        exp = self._expiry
        while exp and exp[0][0] <= step:
            _, slot, oid = exp.popleft()
            book = books[slot]
            if book is not None and book.order(oid) is not None:
                self.cancel(slot, oid)
