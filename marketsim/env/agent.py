"""`RLAgent`: the Mesa agent standing for a learning agent inside the market model.

It owns an exchange account like any trader, but never wakes on its own schedule: the RL
environment sends its orders at decision steps (and, for ``execution = "sliced"``, one child
order per model step through :meth:`wake`). It tracks its own fills for rewards and latency.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.background.base import Trader
from marketsim.book import BUY, MARKET
from marketsim.ledger import CASH_SCALE


class RLAgent(Trader):
    """A learning agent's presence in the market (account, latency, fills, sliced orders)."""

    type_name = "rl"
    tracks_orders = True
    state_attrs = ("traded_lots", "shortfall", "slices", "n_fills", "live_orders", "arrival_mid")

    def __init__(self, model, account, config, params, slots) -> None:
        super().__init__(model, account, config, {}, slots)
        self.name = params.get("name", config.name)
        self.traded_lots = 0  # lots traded since the env last read it
        self.shortfall = 0.0  # currency paid vs the mid at the decision, since last read
        self.n_fills = 0
        self.slices: list[list[int]] = []  # [slot, side, lots_per_step, steps_left]
        self.live_orders: dict[int, int] = {}  # order id -> slot (resting limit orders)
        self.arrival_mid: dict[int, float] = {}  # slot -> mid (ticks) at the last decision

    def first_wake(self, day_start: int) -> int | None:
        return None

    def next_wake(self, step: int) -> int | None:
        return step + 1 if self.slices else None

    def act(self, step: int) -> None:
        """Send the next child order of each sliced parent order."""
        keep = []
        for sl in self.slices:
            slot, side, lots, left = sl
            if slot in self.slots and lots > 0:
                self.market(slot, side, lots)
            if left > 1:
                keep.append([slot, side, lots, left - 1])
        self.slices = keep

    def start_slices(self, slot: int, side: int, total_lots: int, steps: int) -> None:
        """Split ``total_lots`` into market orders over ``steps`` model steps (first now)."""
        steps = max(1, int(steps))
        per = total_lots // steps
        rem = total_lots - per * steps
        if rem:
            self.market(slot, side, rem)
        if per > 0:
            self.market(slot, side, per)
            if steps > 1:
                had = bool(self.slices)
                self.slices.append([slot, side, per, steps - 1])
                if not had:
                    self.model.schedule(self, self.model.t + 1)

    def cancel_slot(self, slot: int) -> None:
        """Cancel this agent's resting orders in ``slot`` now (and those still in flight) and
        forget them. O(live orders)."""
        self.model.exchange.cancel_all(self.model.t, slot=slot, owner=self.account)
        for oid in [o for o, sl in self.live_orders.items() if sl == slot]:
            del self.live_orders[oid]

    def on_fills(self, slot: int, fills: np.ndarray, rejects: list[tuple[int, int]]) -> None:
        """Count own fills (lots, shortfall vs the decision mid); forget filled/rejected resting
        orders. O(fills) in numpy."""
        n = fills.shape[0]
        if n:
            taker = fills["taker_owner"] == self.account
            q = fills["qty"]
            self.traded_lots += int(q.sum())
            self.n_fills += n
            ref = self.arrival_mid.get(slot)
            if ref is not None:
                unit = self.model.ledger.unit_value(slot) / CASH_SCALE  # currency / tick x lot
                ts = fills["taker_side"]
                side = np.where(taker, ts, -ts)
                for c in (side * q * (fills["price"] - ref) * unit).tolist():
                    self.shortfall += c  # in fill order (the same sum on every replay)
            if self.live_orders:
                done = np.flatnonzero(~taker & (fills["maker_remaining"] == 0))
                for oid in fills["maker_id"][done].tolist():
                    self.live_orders.pop(oid, None)
        for oid, _code in rejects:
            self.live_orders.pop(int(oid), None)

    def read_trading(self) -> tuple[int, float]:
        """(lots traded, shortfall in currency vs the decision mids) since the last call."""
        out = (self.traded_lots, self.shortfall)
        self.traded_lots = 0
        self.shortfall = 0.0
        return out

    def get_state(self) -> dict[str, Any]:
        st = super().get_state()
        st["live_orders"] = dict(self.live_orders)
        st["arrival_mid"] = dict(self.arrival_mid)
        return st


__all__ = ["BUY", "MARKET", "RLAgent"]
