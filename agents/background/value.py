"""`value`: an ABIDES ValueAgent-like fundamental trader with a Kalman-filtered value estimate.

On each wake-up (Poisson; RMSC04: about every 175 s) a value trader

1. observes the fundamental with Gaussian noise of ``obs_noise_sigma`` (currency);
2. updates its estimate with the exact Kalman filter of an Ornstein-Uhlenbeck value that reverts
   at ``kappa_per_s`` toward ``r_bar_price`` with diffusion ``fund_sigma_per_sqrt_s``::

       a  = exp(-kappa dt)                     (dt: seconds since its previous observation)
       m' = r_bar + (m - r_bar) a              v' = v a^2 + sigma^2 (1 - a^2) / (2 kappa)
       K  = v' / (v' + obs_sigma^2)            m  = m' + K (obs - m'),   v = (1 - K) v'

   (``sigma^2 dt`` for ``kappa = 0``), and, with ``project_to_close``, projects it to the
   close: ``r_T = r_bar + (m - r_bar) exp(-kappa * seconds_to_close)`` (as ABIDES does);
3. cancels its previous order if still live and compares ``r_T`` with the mid: above the mid it
   buys, below it sells (not at all within ``min_edge_ticks``). With probability
   ``percent_aggr`` the order crosses the spread (limit at the opposite best); otherwise it is
   a passive limit ``1 + U{0 .. depth_spread * spread - 1}`` ticks inside the opposite best,
   i.e. inside the spread, at the own-side touch, or a little behind it.

``r_bar_price = 0`` starts the estimate at the first observation (no prior). With a one-sided
or empty book it bids/offers at ``round(r_T)`` on the side given by the (fallback) mid.

ABIDES ValueAgent parameters map as: ``sigma_n`` (a variance in cents^2) -> ``obs_noise_sigma =
sqrt(sigma_n) * tick``; ``kappa`` per ns -> ``kappa_per_s = kappa * 1e9``; ``lambda_a`` per ns ->
``wake_rate_per_hour = lambda_a * 3.6e12``; ``sigma_s`` (huge in ABIDES: the estimate follows the
latest observation) -> a large ``fund_sigma_per_sqrt_s``.

Cost per wake: ~10 scalar float operations and 2-4 scalar draws.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import Field

from agents.background.base import BUY, NO_PRICE, SELL, Trader, register_trader
from agents.background.noise import SizeParams, check_prob, size_model_from
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["ValueParams", "ValueTrader"]


class ValueParams(SizeParams):
    """Parameters of the ``value`` trader (see the module docs)."""

    wake_rate_per_hour: Num = Field(
        3600.0 / 175.0, description="Mean Poisson wake-ups per trading hour (RMSC04: 1 / 175 s)."
    )
    r_bar_price: Num = Field(
        0.0, description="Prior long-run mean of the value in currency; 0 = first observation."
    )
    kappa_per_s: Num = Field(
        1.67e-6, description="Believed mean-reversion speed of the value, per second."
    )
    fund_sigma_per_sqrt_s: Num = Field(
        1.0, description="Believed diffusion of the value in currency per sqrt(second)."
    )
    obs_noise_sigma: Num = Field(
        0.05, description="Standard deviation of each observation of the value, in currency."
    )
    project_to_close: bool = Field(
        True, description="Project the estimate to the session close with kappa (ABIDES)."
    )
    percent_aggr: Num = Field(0.1, description="Probability an order crosses the spread.")
    depth_spread: Num = Field(
        2.0, description="Passive orders sit up to depth_spread * spread ticks inside the far side."
    )
    min_edge_ticks: Num = Field(
        0.0, description="Trade only when |estimate - mid| exceeds this many ticks."
    )
    max_position_lots: IntNum = Field(
        0, description="Cap on |position| in lots (orders are cut to respect it); 0 = none."
    )


@register_trader("value")
class ValueTrader(Trader):
    """Trades toward its noisy, filtered estimate of the fundamental value."""

    Params = ValueParams
    state_attrs = ("_est", "_var", "_obs_step", "_rbar", "_live")

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
        self.percent_aggr = check_prob(self, "percent_aggr")
        self.r_bar_price = float(p["r_bar_price"])
        self.kappa = float(p["kappa_per_s"])
        self.fund_sigma = float(p["fund_sigma_per_sqrt_s"])
        self.obs_sigma = float(p["obs_noise_sigma"])
        self.depth_spread = float(p["depth_spread"])
        self.min_edge = float(p["min_edge_ticks"])
        self.max_pos = int(p["max_position_lots"])
        self.project = bool(p["project_to_close"])
        for name, v in (
            ("r_bar_price", self.r_bar_price),
            ("kappa_per_s", self.kappa),
            ("fund_sigma_per_sqrt_s", self.fund_sigma),
            ("obs_noise_sigma", self.obs_sigma),
            ("depth_spread", self.depth_spread),
            ("max_position_lots", self.max_pos),
        ):
            if v < 0:
                raise self.param_error(name, v, "must be >= 0")
        #: Posterior mean (ticks) and variance (ticks^2) of the value, per slot.
        self._est: dict[int, float] = {}
        self._var: dict[int, float] = {}
        #: Long-run mean (ticks) the estimate reverts to, per slot.
        self._rbar: dict[int, float] = {}
        #: Step of the previous observation, per slot.
        self._obs_step: dict[int, int] = {}
        #: Id of the last order sent, per slot (cancelled at the next wake if still live).
        self._live: dict[int, int] = {}

    def on_day_end(self, day: int, step: int) -> None:
        """The exchange cancelled every resting order."""
        self._live.clear()

    # ------------------------------------------------------------------ estimate
    def estimate(self, slot: int, step: int, tick: float) -> float:
        """Observe the value, update the filter; return the (projected) estimate in ticks. O(1)."""
        obs_sd = self.obs_sigma / tick
        obs = self.fundamental(slot)
        if obs_sd > 0.0:
            obs += obs_sd * self.drng.standard_normal()
        obs_var = obs_sd * obs_sd
        session = self.model.session
        m = self._est.get(slot)
        if m is None:
            if self.r_bar_price > 0:
                # ABIDES: the prior is r_bar with zero variance at the open of the day
                r_bar = self.r_bar_price / tick
                m, v, last = r_bar, 0.0, step - step % session.steps_per_day
            else:
                r_bar = obs
                m, v, last = obs, obs_var, step
            self._rbar[slot] = r_bar
        else:
            v = self._var[slot]
            last = self._obs_step[slot]
            r_bar = self._rbar[slot]
        dt = (step - last) * session.step_seconds
        if dt > 0:
            k = self.kappa
            sig2 = (self.fund_sigma / tick) ** 2
            if k > 0:
                a = math.exp(-k * dt)
                m = r_bar + (m - r_bar) * a
                v = v * a * a + sig2 * (1.0 - a * a) / (2.0 * k)
            else:
                v += sig2 * dt
            den = v + obs_var
            gain = v / den if den > 0 else 1.0
            m += gain * (obs - m)
            v *= 1.0 - gain
        self._est[slot] = m
        self._var[slot] = v
        self._obs_step[slot] = step
        if self.project and self.kappa > 0:
            h = (session.steps_per_day - step % session.steps_per_day) * session.step_seconds
            return r_bar + (m - r_bar) * math.exp(-self.kappa * h)
        return m

    # ------------------------------------------------------------------ acting
    def act(self, step: int) -> None:
        """Observe, cancel the previous order, send one limit order. O(1)."""
        slots = self.tradable_slots()
        if not slots:
            return
        rng = self.drng
        slot = slots[0] if len(slots) == 1 else slots[int(rng.random() * len(slots))]
        r_t = self.estimate(slot, step, self.model.exchange.assets[slot].tick_size)
        # the same draws on every wake (aggressive or not, depth, size), whether it trades or
        # not, so that counterfactual runs keep its stream aligned
        u_aggr, u_depth = rng.random(2).tolist()
        qty = self.size_model.draw(rng)
        oid = self._live.pop(slot, 0)
        if oid:
            book = self.model.exchange.books[slot]
            if book.order(oid) is not None:
                self.cancel(slot, oid)
        bb, _, ba, _ = self.quote(slot)
        if bb != NO_PRICE and ba != NO_PRICE:
            mid = 0.5 * (bb + ba)
            if abs(r_t - mid) <= self.min_edge:
                return
            side = BUY if r_t > mid else SELL
            if u_aggr < self.percent_aggr:
                price = ba if side == BUY else bb
            else:
                span = int(self.depth_spread * (ba - bb))
                depth = int(u_depth * span) if span > 0 else 0
                price = ba - 1 - depth if side == BUY else bb + 1 + depth
        else:
            mid = self.mid(slot)
            if r_t != r_t or abs(r_t - mid) <= self.min_edge:
                return
            side = BUY if r_t > mid else SELL
            price = round(r_t)
        if self.max_pos:
            pos = self.position(slot)
            room = self.max_pos - pos if side == BUY else self.max_pos + pos
            if room <= 0:
                return
            qty = min(qty, room)
        if price <= 0:
            return
        self._live[slot] = self.limit(slot, side, self.clamp_price(slot, price), qty)
