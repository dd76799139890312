"""The exchange: one book per asset slot, an inbound latency queue, risk checks, fees, settlement.

Orders reach the exchange as plain tuples appended to the inbound queue, stamped with their
arrival step (``now + latency``). Once per step :meth:`Exchange.match` takes every order that
has arrived for an asset as ONE ``ORDER_DTYPE`` array, risk-checks it in one numba call
(:meth:`marketsim.ledger.Ledger.check_orders`), hands the survivors to the book's batch kernel,
settles the fills in one call (:meth:`marketsim.ledger.Ledger.settle`) and notifies the owners
that asked to track their orders. Only that notification loop is per-fill Python, and only for
subscribed owners.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from marketsim.book import (
    BUY,
    CANCEL,
    FILL_DTYPE,
    FL_MAKER_OWNER,
    FL_PRICE,
    FL_QTY,
    FL_TAKER_OWNER,
    FL_TAKER_SIDE,
    IOC,
    LIMIT,
    MARKET,
    NO_PRICE,
    O_ID,
    O_KIND,
    O_OWNER,
    REJECT_REASONS,
    SELL,
    OrderBook,
    as_raw,
    as_records,
)
from marketsim.errors import ConfigError
from marketsim.ledger import RISK_REASONS, Ledger

logger = logging.getLogger(__name__)

_EMPTY_FILLS = np.zeros(0, dtype=FILL_DTYPE)
_EMPTY_FILLS.setflags(write=False)

#: Every reject code the exchange may report, by name (book and risk codes).
REJECT_NAMES: dict[int, str] = {**REJECT_REASONS, **RISK_REASONS}


@dataclass
class AssetInfo:
    """Static description of the asset living in a slot."""

    symbol: str
    tick_size: float
    lot_size: int
    sector: str = ""


class Exchange:
    """Books per asset slot behind an inbound queue; settles fills into a :class:`Ledger`.

    Args:
        ledger: The accounts.
        max_assets: Number of asset slots.
        maker_fee_bps: Fee charged to the resting side, in basis points (negative: rebate).
        taker_fee_bps: Fee charged to the aggressor, in basis points.
        risk_checks: Run pre-trade risk checks (leverage, short sales, position limits).
    """

    def __init__(
        self,
        ledger: Ledger,
        max_assets: int,
        maker_fee_bps: float = 0.0,
        taker_fee_bps: float = 0.0,
        risk_checks: bool = True,
    ) -> None:
        self.ledger = ledger
        self.max_assets = int(max_assets)
        self.maker_fee_bps = float(maker_fee_bps)
        self.taker_fee_bps = float(taker_fee_bps)
        self.risk_checks = bool(risk_checks)
        #: Book per slot (None for a free slot).
        self.books: list[OrderBook | None] = [None] * self.max_assets
        #: Asset description per slot (None for a free slot).
        self.assets: list[AssetInfo | None] = [None] * self.max_assets
        self._symbol_slot: dict[str, int] = {}
        #: Last trade price per slot, in ticks (NO_PRICE before the first trade).
        self.last_price = np.full(self.max_assets, NO_PRICE, dtype=np.int64)
        #: Shares traded and trade count per slot since the start.
        self.volume = np.zeros(self.max_assets, dtype=np.int64)
        self.n_trades = np.zeros(self.max_assets, dtype=np.int64)
        #: Aggressor-signed shares traded per slot (+ buyer-initiated) since the start.
        self.signed_volume = np.zeros(self.max_assets, dtype=np.int64)
        #: Orders received (all kinds) and rejects by reason name.
        self.n_orders = 0
        self.rejects: Counter[str] = Counter()
        self._next_id = 1
        self._maker_rate = ledger.fee_rate(maker_fee_bps, "maker_fee_bps")
        self._taker_rate = ledger.fee_rate(taker_fee_bps, "taker_fee_bps")
        # arrival step -> per-slot lists of order tuples (ORDER_DTYPE field order).
        self._queue: dict[int, list[list[tuple]]] = {}
        # account -> callback(slot, fills_of_that_account_as_maker_or_taker, rejects)
        self._subscribers: dict[int, Callable] = {}
        #: Callbacks f(step, slot, orders, status) with every batch sent to a book: the raw
        #: ``(n, 6)`` orders and an int64 status per order (0 accepted, else the reject code).
        self.order_listeners: list[Callable[[int, int, np.ndarray, np.ndarray], None]] = []
        #: Callbacks run after each slot's batch: f(step, slot, fills) with the raw ``(n, 9)``
        #: int64 fills (``FL_*`` columns; view as records with ``as_records``).
        self.fill_listeners: list[Callable[[int, int, np.ndarray], None]] = []

    # ------------------------------------------------------------------ assets
    def add_asset(
        self,
        slot: int,
        symbol: str,
        tick_size: float,
        lot_size: int = 1,
        max_price_ticks: int = 1 << 16,
        sector: str = "",
    ) -> None:
        """Open a book in a free slot and configure the ledger for it."""
        slot = self._slot(slot)
        if self.books[slot] is not None:
            raise ConfigError(f"slot {slot} already holds asset {self.assets[slot].symbol!r}")
        self.ledger.configure_asset(slot, tick_size=tick_size, lot_size=lot_size)
        self.books[slot] = OrderBook(max_price_ticks=max_price_ticks)
        self.assets[slot] = AssetInfo(symbol, float(tick_size), int(lot_size), sector)
        self._symbol_slot[symbol] = slot
        self.last_price[slot] = NO_PRICE

    def remove_asset(self, slot: int, settle_price_ticks: int) -> dict[int, int]:
        """Close a slot: drop its resting orders and settle every position at the given price.

        Returns the cash (in ledger cash units) credited to each account that held a position.
        """
        slot = self._live_slot(slot)
        self._symbol_slot.pop(self.assets[slot].symbol, None)
        self.books[slot] = None
        self.assets[slot] = None
        for per_slot in self._queue.values():
            per_slot[slot].clear()
        return self.ledger.remove_asset(slot, int(settle_price_ticks))

    def live_slots(self) -> list[int]:
        """Slots that hold an asset, ascending."""
        return [s for s, b in enumerate(self.books) if b is not None]

    def slot_of(self, symbol: str) -> int:
        """Slot of the asset named ``symbol``. O(1)."""
        s = self._symbol_slot.get(symbol)
        if s is not None:
            return s
        known = [a.symbol for a in self.assets if a is not None]
        raise ConfigError(f"unknown asset {symbol!r}; live assets: {known}")

    # ------------------------------------------------------------------ order entry
    def new_order_id(self) -> int:
        """A fresh order id, unique across all books of this exchange."""
        oid = self._next_id
        self._next_id += 1
        return oid

    def submit(
        self,
        arrival_step: int,
        slot: int,
        kind: int,
        side: int,
        price: int,
        qty: int,
        owner: int,
        order_id: int = 0,
    ) -> int:
        """Queue an order to reach the book at ``arrival_step``; return its order id.

        ``order_id = 0`` assigns a fresh id (CANCEL and MODIFY must name the target's id).
        Validation happens at the book and the risk check, which reject with a reason.
        O(1).
        """
        if order_id == 0:
            order_id = self._next_id
            self._next_id += 1
        q = self._queue.get(arrival_step)
        if q is None:
            q = [[] for _ in range(self.max_assets)]
            self._queue[arrival_step] = q
        q[slot].append((order_id, owner, price, qty, kind, side))
        self.n_orders += 1
        return order_id

    def subscribe(self, account: int, callback: Callable) -> None:
        """Call ``callback(slot, fills, rejected_ids)`` whenever the account trades or is
        rejected; ``fills`` are the ``FILL_DTYPE`` records where it is maker or taker."""
        self._subscribers[int(account)] = callback

    def pending(self) -> int:
        """Orders waiting in the inbound queue."""
        return sum(len(x) for q in self._queue.values() for x in q)

    # ------------------------------------------------------------------ matching
    def match(self, step: int) -> int:
        """Process every order that has arrived by ``step``; return the number of fills.

        Per slot: one array, one risk-check call, one book call, one settlement call.
        """
        q = self._queue.pop(step, None)
        if q is None:
            return 0
        nfills = 0
        for slot in range(self.max_assets):
            msgs = q[slot]
            if msgs:
                if self.books[slot] is None:
                    self.rejects["ASSET_REMOVED"] += len(msgs)
                    continue
                nfills += self._run_batch(step, slot, np.array(msgs, dtype=np.int64)).shape[0]
        return nfills

    def execute_now(self, step: int, slot: int, orders: np.ndarray) -> np.ndarray:
        """Send ``orders`` (``ORDER_DTYPE`` or its ``(n, 6)`` int64 view) to the book now,
        bypassing latency; return the fills as ``FILL_DTYPE``.

        Used for liquidations and RL actions with zero latency.
        """
        raw = orders if orders.dtype == np.int64 else as_raw(orders)
        if raw.shape[0] == 0 or self.books[slot] is None:
            return _EMPTY_FILLS
        self.n_orders += raw.shape[0]
        return as_records(self._run_batch(step, slot, raw), FILL_DTYPE)

    def _run_batch(self, step: int, slot: int, orders: np.ndarray) -> np.ndarray:
        """Risk-check, match and settle one slot's ``(n, 6)`` int64 batch; return raw fills."""
        book = self.books[slot]
        rejected: list[tuple[int, int, int]] = []  # (owner, order_id, code)
        all_orders = orders
        keep = None
        codes = None
        if self.risk_checks:
            bb, _, ba, _ = book.top()
            codes = self.ledger.check_orders_raw(
                slot, orders, 0 if ba == NO_PRICE else ba, 0 if bb == NO_PRICE else bb
            )
            if codes.any():
                bad = codes != 0
                for i in np.flatnonzero(bad).tolist():
                    code = int(codes[i])
                    self.rejects[REJECT_NAMES.get(code, str(code))] += 1
                    rejected.append((int(orders[i, O_OWNER]), int(orders[i, O_ID]), code))
                keep = np.flatnonzero(~bad)
                orders = orders[keep]
        fills, rej = book.process_raw(orders)
        if rej.shape[0]:
            for i, code in rej.tolist():
                self.rejects[REJECT_NAMES.get(code, str(code))] += 1
                rejected.append((int(orders[i, O_OWNER]), int(orders[i, O_ID]), code))
        if self.order_listeners:
            status = np.zeros(all_orders.shape[0], np.int64) if codes is None else codes.copy()
            if rej.shape[0]:
                idx = rej[:, 0] if keep is None else keep[rej[:, 0]]
                status[idx] = rej[:, 1]
            for f in self.order_listeners:
                f(step, slot, all_orders, status)
        if fills.shape[0]:
            self.ledger.settle_raw(slot, fills, self._maker_rate, self._taker_rate)
            self.last_price[slot] = fills[-1, FL_PRICE]
            qty = fills[:, FL_QTY]
            self.volume[slot] += int(qty.sum())
            self.signed_volume[slot] += int(qty @ fills[:, FL_TAKER_SIDE])
            self.n_trades[slot] += fills.shape[0]
            for f in self.fill_listeners:
                f(step, slot, fills)
        if self._subscribers and (fills.shape[0] or rejected):
            self._notify(slot, fills, rejected)
        return fills

    def _notify(self, slot: int, fills: np.ndarray, rejected: list[tuple[int, int, int]]) -> None:
        """Call each subscribed owner with its own fills (maker or taker) and rejects.

        O(fills + subscribers + involved subscribers x fills): only the owners that appear in the
        batch get a numpy mask (few accounts subscribe: market makers, RL agents).
        """
        nf = fills.shape[0]
        involved: set[int] = set()
        if nf:
            makers = fills[:, FL_MAKER_OWNER]
            takers = fills[:, FL_TAKER_OWNER]
            involved.update(makers.tolist())
            involved.update(takers.tolist())
        rej_by: dict[int, list[tuple[int, int]]] = {}
        for owner, oid, code in rejected:
            rej_by.setdefault(owner, []).append((oid, code))
        for acc, cb in self._subscribers.items():
            if acc in involved:
                mask = (makers == acc) | (takers == acc)
                cb(slot, as_records(fills[mask], FILL_DTYPE), rej_by.get(acc, []))
            elif acc in rej_by:
                cb(slot, _EMPTY_FILLS, rej_by[acc])

    # ------------------------------------------------------------------ bulk cancels
    def cancel_all(self, step: int, slot: int | None = None, owner: int | None = None) -> int:
        """Cancel every resting order (of ``owner`` if given) in one slot or all; return count.

        Also drops that owner's orders still in the inbound queue. Order listeners (the orders
        log) receive the cancels as CANCEL messages carrying the remaining size.
        """
        slots = self.live_slots() if slot is None else [slot]
        n = 0
        for s in slots:
            live = self.books[s].orders_raw()
            if owner is not None:
                live = live[live[:, O_OWNER] == owner]
            if live.shape[0] == 0:
                continue
            live[:, O_KIND] = CANCEL
            self.books[s].process_raw(live)
            n += live.shape[0]
            for f in self.order_listeners:  # the orders log sees bulk cancels too
                f(step, s, live, np.zeros(live.shape[0], np.int64))
        if owner is not None:
            for q in self._queue.values():
                for s in slots:
                    q[s][:] = [m for m in q[s] if m[1] != owner]
        return n

    # ------------------------------------------------------------------ market data
    def top(self, slot: int) -> tuple[int, int, int, int]:
        """(best bid, bid qty, best ask, ask qty) in ticks/lots; NO_PRICE and 0 when empty."""
        return self.books[slot].top()

    def mid_ticks(self, slot: int) -> float:
        """Mid price in ticks (float); falls back to the one-sided quote or last trade; NaN."""
        bb, _, ba, _ = self.books[slot].top()
        if bb != NO_PRICE and ba != NO_PRICE:
            return (bb + ba) / 2.0
        if bb != NO_PRICE:
            return float(bb)
        if ba != NO_PRICE:
            return float(ba)
        lp = self.last_price[slot]
        return float(lp) if lp != NO_PRICE else float("nan")

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """Arrays and plain data for checkpoints (books, queue, counters)."""
        arrays: dict[str, np.ndarray] = {
            "last_price": self.last_price.copy(),
            "volume": self.volume.copy(),
            "n_trades": self.n_trades.copy(),
            "signed_volume": self.signed_volume.copy(),
        }
        for s, b in enumerate(self.books):
            if b is not None:
                for k, v in b.get_state().items():
                    arrays[f"book{s}_{k}"] = v
        queue = {
            str(step): [[list(m) for m in per] for per in q] for step, q in self._queue.items()
        }
        plain = {
            "assets": [None if a is None else vars(a) for a in self.assets],
            "next_id": self._next_id,
            "n_orders": self.n_orders,
            "rejects": dict(self.rejects),
            "queue": queue,
            "maker_fee_bps": self.maker_fee_bps,
            "taker_fee_bps": self.taker_fee_bps,
        }
        return {"arrays": arrays, "plain": plain}

    def set_state(self, state: dict) -> None:
        """Restore what :meth:`get_state` captured (the ledger is restored separately)."""
        arrays, plain = state["arrays"], state["plain"]
        self.last_price[:] = arrays["last_price"]
        self.volume[:] = arrays["volume"]
        self.n_trades[:] = arrays["n_trades"]
        self.signed_volume[:] = arrays["signed_volume"]
        self._symbol_slot = {}
        for s, a in enumerate(plain["assets"]):
            if a is None:
                self.books[s] = None
                self.assets[s] = None
            else:
                self.assets[s] = AssetInfo(**a)
                self._symbol_slot[self.assets[s].symbol] = s
                self.books[s] = OrderBook.from_state(
                    {
                        k: arrays[f"book{s}_{k}"]
                        for k in ("pool", "htab", "ladder", "bitmap", "meta")
                    }
                )
        self._next_id = int(plain["next_id"])
        self.n_orders = int(plain["n_orders"])
        self.rejects = Counter(plain["rejects"])
        self._queue = {
            int(step): [[tuple(m) for m in per] for per in q] for step, q in plain["queue"].items()
        }

    # ------------------------------------------------------------------ helpers
    def _slot(self, slot: int) -> int:
        if not 0 <= int(slot) < self.max_assets:
            raise ConfigError(f"slot={slot} is out of range: 0 .. {self.max_assets - 1}")
        return int(slot)

    def _live_slot(self, slot: int) -> int:
        slot = self._slot(slot)
        if self.books[slot] is None:
            raise ConfigError(f"slot {slot} holds no asset; live slots: {self.live_slots()}")
        return slot


__all__ = ["AssetInfo", "Exchange", "REJECT_NAMES", "BUY", "SELL", "LIMIT", "MARKET", "IOC"]
