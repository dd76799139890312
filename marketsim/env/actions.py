"""Actions -> orders for the market env: validation and the four action modes.

* ``weights``: target weights over the assets plus cash, projected onto the feasible set
  (:mod:`marketsim.env.projection`) and traded to the target positions at market, as IOC orders
  limited a few ticks through the touch, or sliced over the decision interval;
* ``orders``: per asset a signed size, a limit offset from the mid and a cancel-all flag;
* ``quotes``: per asset a bid and an ask (offsets from the mid, sizes) replacing the agent's
  resting orders in that asset at every decision;
* ``discrete``: per asset sell / hold / buy ``trade_lots`` at market.

Orders go through the agent's own latency like any trader's. :class:`ActionsMixin` is mixed into
:class:`~marketsim.env.parallel.MarketParallelEnv` (it uses the env's specs, model, projectors
and RL agents).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from marketsim.book import BUY, NO_PRICE, SELL
from marketsim.env.accounting import in_box
from marketsim.env.projection import rebalance_lots, target_lots
from marketsim.ledger import CASH_SCALE


class ActionsMixin:
    """Action validation and application for :class:`MarketParallelEnv` (see module docs)."""

    def _validate(self, n: str, a: Any) -> np.ndarray:
        sp = self._act_spaces[n]
        arr = np.asarray(a)
        if arr.shape != sp.shape:
            raise ValueError(
                f"action of agent {n!r} has shape {arr.shape}; its space is {sp} (shape {sp.shape})"
            )
        bounds = self._box_bounds.get(n)
        if bounds is not None:
            arr = arr.astype(np.float64)
            lo, hi = bounds
            if in_box(arr.reshape(-1), lo, hi):  # fast path (NaN compares False)
                return arr
            if not np.all(np.isfinite(arr)):
                raise ValueError(
                    f"action of agent {n!r} contains NaN or inf: {arr.tolist()}; space {sp}"
                )
            raise ValueError(
                f"action of agent {n!r} = {np.round(arr, 4).tolist()} is outside its space "
                f"{sp} (values must lie in [{lo}, {hi}])"
            )
        if not np.issubdtype(arr.dtype, np.integer) and not np.all(arr == np.round(arr)):
            raise ValueError(f"action of agent {n!r} = {arr.tolist()} must be integers; space {sp}")
        arr = arr.astype(np.int64)
        if np.any(arr < 0) or np.any(arr >= sp.nvec):
            raise ValueError(
                f"action of agent {n!r} = {arr.tolist()} is outside its space {sp} "
                f"(each entry in 0 .. 2: sell, hold, buy)"
            )
        return arr

    # ------------------------------------------------------------------ action -> orders
    def _apply(self, n: str, a: np.ndarray, marks: np.ndarray) -> None:
        s = self.specs[n]
        agent = self.rl[n]
        books = self.model.exchange.books
        live = [slot for slot in agent.slots if books[slot] is not None]
        for slot in live:
            mk = float(marks[slot])
            agent.arrival_mid[slot] = mk if math.isfinite(mk) else 0.0
        if s.mode == "weights":
            self._apply_weights(n, a, marks, live)
        elif s.mode == "orders":
            self._apply_orders(n, a, marks, live)
        elif s.mode == "quotes":
            self._apply_quotes(n, a, marks, live)
        else:
            lots = s.params.trade_lots
            for slot in live:
                if a[slot] == 0:
                    agent.market(slot, SELL, lots)
                elif a[slot] == 2:
                    agent.market(slot, BUY, lots)

    def _apply_weights(self, n: str, a: np.ndarray, marks: np.ndarray, live: list[int]) -> None:
        s = self.specs[n]
        agent = self.rl[n]
        m = self.model
        led = m.ledger
        acc = agent.account
        pos = led._positions[acc]
        mask = np.zeros(self.A)
        mask[live] = 1.0
        mask[~np.isfinite(marks)] = 0.0
        proj = self._projectors[n]
        p = s.params
        uv, cash, min_lots = led._unit_value, led._cash[acc], p.min_trade_lots
        if proj.caps.shape[0] == 0:  # one compiled call: projection + targets
            deltas = rebalance_lots(
                np.asarray(a, np.float64), mask, proj.max_weight, proj.allow_short,
                proj.leverage, marks, uv, CASH_SCALE, pos, cash, min_lots,
            )  # fmt: skip
        else:  # sector caps: Dykstra projection, then the same targets
            deltas = target_lots(proj(a, mask), mask, marks, uv, CASH_SCALE, pos, cash, min_lots)
        for slot in live:
            delta = int(deltas[slot])
            if delta == 0:
                continue
            side = BUY if delta > 0 else SELL
            qty = abs(delta)
            if p.execution == "market":
                agent.market(slot, side, qty)
            elif p.execution == "ioc":
                bb, _, ba, _ = m.exchange.books[slot].top()
                ref = ba if side == BUY else bb
                if ref == NO_PRICE:
                    ref = int(round(marks[slot]))
                agent.ioc(slot, side, max(1, ref + side * p.ioc_offset_ticks), qty)
            else:
                agent.start_slices(slot, side, qty, s.interval)

    def _apply_orders(self, n: str, a: np.ndarray, marks: np.ndarray, live: list[int]) -> None:
        p = self.specs[n].params
        agent = self.rl[n]
        m = self.model
        for slot in live:
            size_f, offset_f, cancel_f = a[slot]
            if cancel_f > 0:
                agent.cancel_slot(slot)
            qty = int(round(abs(size_f) * p.max_order_lots))
            if qty < 1 or not math.isfinite(marks[slot]):
                continue
            side = BUY if size_f > 0 else SELL
            price = int(round(marks[slot] + side * offset_f * p.max_offset_ticks))
            price = max(1, min(price, m.exchange.books[slot].max_price_ticks - 1))
            oid = agent.limit(slot, side, price, qty)
            agent.live_orders[oid] = slot

    def _apply_quotes(self, n: str, a: np.ndarray, marks: np.ndarray, live: list[int]) -> None:
        """Replace the agent's quotes in each live slot: cancel its resting orders there, then
        post a bid and an ask. Per slot ``[bid offset, ask offset, bid size, ask size]`` in
        [-1, 1]: offset ``d = (x + 1) / 2 * max_offset_ticks`` ticks from the mid (bid
        ``floor(mid - d)``, ask ``ceil(mid + d)``, the ask kept above the bid), size
        ``round((x + 1) / 2 * max_order_lots)`` lots (0: no quote on that side)."""
        p = self.specs[n].params
        agent = self.rl[n]
        m = self.model
        for slot in live:
            agent.cancel_slot(slot)
            mid = float(marks[slot])
            if not math.isfinite(mid) or mid <= 0:
                continue
            ob, oa, qb, qa = (float(x) for x in a[slot])
            top = m.exchange.books[slot].max_price_ticks - 1
            bid = max(1, math.floor(mid - (ob + 1.0) * 0.5 * p.max_offset_ticks))
            ask = min(top, max(bid + 1, math.ceil(mid + (oa + 1.0) * 0.5 * p.max_offset_ticks)))
            for side, price, x in ((BUY, bid, qb), (SELL, ask, qa)):
                qty = int(round((x + 1.0) * 0.5 * p.max_order_lots))
                if qty >= 1 and 1 <= price <= top:
                    agent.live_orders[agent.limit(slot, side, price, qty)] = slot


__all__ = ["ActionsMixin"]
