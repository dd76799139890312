"""Cash and positions per account, held in arrays: settlement, fees, marks, risk and margin.

Money inside the ledger is exact: cash is int64 in *cash units* (``CASH_SCALE`` units per
currency unit), positions are int64 lots per (account, asset slot), fees are whole cash units
(rounded half-to-even). Every cash flow is either between accounts (trades, fees) or recorded
as an external flow (endowments, deposits, withdrawals, buy-backs on asset removal), so
:meth:`Ledger._check` can prove that nothing was created or lost. Valuations (marks, equity,
exposure, leverage) are floats: they are estimates, never settled.

Assets live in fixed slots ``0 .. max_assets - 1``. Slot ``s`` has a tick size and a lot size;
one tick on one lot is worth ``unit_value[s] = tick_size * lot_size * CASH_SCALE`` cash units,
which must be an integer, so a fill of ``qty`` lots at ``price`` ticks moves exactly
``price * qty * unit_value[s]`` cash units.

Account 0 is the exchange: it collects fees, pays maker rebates and never trades.

Hot paths (:meth:`Ledger.settle`, :meth:`Ledger.check_orders`) are ``@njit(cache=True)``
kernels over the arrays; the :class:`Ledger` class validates input and offers the friendly API.

Example:
    >>> led = Ledger(max_assets=2)
    >>> led.configure_asset(0, tick_size=0.01, lot_size=100)
    >>> a = led.add_account(10_000.0)
    >>> b = led.add_account(0.0, positions={0: 50})
    >>> fills = np.zeros(1, FILL_DTYPE)
    >>> fills[0] = (1, 2, a, b, 1000, 10, 40, 0, BUY)  # a buys 10 lots at 10.00 from b
    >>> led.settle(0, fills, maker_fee_bps=-0.2, taker_fee_bps=0.5)
    >>> led.position(a, 0), led.cash(b), led.cash(0)
    (10, 10000.2, 0.3)
"""

from __future__ import annotations

import logging
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from marketsim.book.constants import (
    BUY,
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
    O_KIND,
    O_OWNER,
    O_PRICE,
    O_QTY,
    O_SIDE,
    ORDER_DTYPE,
    SELL,
)
from marketsim.errors import ConfigError, StateError

logger = logging.getLogger(__name__)

_EMPTY_I64 = np.zeros(0, np.int64)

#: Cash units per currency unit (cash is held as int64 micro-currency).
CASH_SCALE = 1_000_000
#: Fee rates are held as integers per ``FEE_RATE_SCALE`` of notional (1e-4 bps resolution).
FEE_RATE_SCALE = 100_000_000
#: Largest notional (cash units) a single fill or order may have; keeps int64 math exact.
MAX_NOTIONAL = 1 << 62
#: Hard cap on ``|position|`` and order size in lots; the default per-slot position limit.
MAX_POSITION_LOTS = 1 << 48
#: The exchange's fee account.
FEE_ACCOUNT = 0
#: Schema tag of :meth:`Ledger.get_state` dicts.
STATE_SCHEMA = "marketsim.ledger/1"

# Pre-trade risk reject codes, numbered from 101 so they never collide with book reject codes.
#: The order passed every check.
RISK_OK = 0
#: A sell would take an account that may not short below a zero position.
RISK_SHORT_SALE = 101
#: Post-trade gross exposure / equity would exceed the account's leverage limit (or equity <= 0).
RISK_LEVERAGE = 102
#: A cash-only account (``leverage_limit == 1``) would buy more than its cash.
RISK_INSUFFICIENT_CASH = 103
#: ``|post-trade position|`` would exceed the slot's market-wide position limit.
RISK_POSITION_LIMIT = 104
#: The account is closed (liquidated); only orders that reduce its position are accepted.
RISK_ACCOUNT_CLOSED = 105
#: A MARKET order with no reference price (none given and the slot was never marked).
RISK_NO_REFERENCE_PRICE = 106

#: Names of the risk reject codes, by code.
RISK_REASONS = {
    RISK_SHORT_SALE: "SHORT_SALE",
    RISK_LEVERAGE: "LEVERAGE",
    RISK_INSUFFICIENT_CASH: "INSUFFICIENT_CASH",
    RISK_POSITION_LIMIT: "POSITION_LIMIT",
    RISK_ACCOUNT_CLOSED: "ACCOUNT_CLOSED",
    RISK_NO_REFERENCE_PRICE: "NO_REFERENCE_PRICE",
}

# Bad-fill codes returned by the settle kernel (the wrapper turns them into ConfigError).
_FILL_BAD_TAKER = 1
_FILL_BAD_MAKER = 2
_FILL_BAD_QTY = 3
_FILL_BAD_PRICE = 4
_FILL_BAD_SIDE = 5
_FILL_OVERFLOW = 6
_FILL_ERRORS = {
    _FILL_BAD_TAKER: ("taker_owner", "an account id in 1 .. n_accounts - 1"),
    _FILL_BAD_MAKER: ("maker_owner", "an account id in 1 .. n_accounts - 1"),
    _FILL_BAD_QTY: ("qty", "> 0 lots"),
    _FILL_BAD_PRICE: ("price", "> 0 ticks"),
    _FILL_BAD_SIDE: ("taker_side", "BUY (+1) or SELL (-1)"),
    _FILL_OVERFLOW: ("price*qty", f"a notional below {MAX_NOTIONAL} cash units"),
}

_ACCOUNT_ARRAYS = (
    "cash", "positions", "allow_short", "leverage_limit", "closed",
    "volume_lots", "volume_cash", "fees_paid",
)  # fmt: skip
_SLOT_ARRAYS = (
    "in_use", "tick_size", "lot_size", "unit_value", "last_mark", "position_limit",
    "issued_shares",
)  # fmt: skip
_COUNTERS = ("issued_cash", "withdrawn_cash", "buyback_cash", "fees_collected")


# --------------------------------------------------------------------------------- kernels
@njit(cache=True)
def _fee(notional, rate):
    """Return round-half-even(notional * rate / FEE_RATE_SCALE) exactly, without overflow."""
    q = notional // FEE_RATE_SCALE
    r = notional - q * FEE_RATE_SCALE
    a = r * rate
    f = a // FEE_RATE_SCALE
    rem = a - f * FEE_RATE_SCALE  # 0 <= rem < FEE_RATE_SCALE (floor division)
    f += q * rate
    if 2 * rem > FEE_RATE_SCALE or (2 * rem == FEE_RATE_SCALE and (f & 1) == 1):
        f += 1
    return f


@njit(cache=True)
def _settle_kernel(
    cash, positions, volume_lots, volume_cash, fees_paid, n_accounts, slot, unit_value,
    taker, maker, price, qty, side, maker_rate, taker_rate,
):  # fmt: skip
    """Validate every fill, then apply them all. Returns (bad_index, bad_code, fees_total).

    Nothing is mutated when a fill is bad (bad_index >= 0). O(n_fills).
    """
    n = taker.shape[0]
    for i in range(n):
        if taker[i] < 1 or taker[i] >= n_accounts:
            return i, _FILL_BAD_TAKER, 0
        if maker[i] < 1 or maker[i] >= n_accounts:
            return i, _FILL_BAD_MAKER, 0
        if qty[i] <= 0:
            return i, _FILL_BAD_QTY, 0
        if price[i] <= 0:
            return i, _FILL_BAD_PRICE, 0
        if side[i] != BUY and side[i] != SELL:
            return i, _FILL_BAD_SIDE, 0
        if price[i] > MAX_NOTIONAL // unit_value or qty[i] > MAX_NOTIONAL // (
            price[i] * unit_value
        ):
            return i, _FILL_OVERFLOW, 0
    total = 0
    for i in range(n):
        t = taker[i]
        m = maker[i]
        q = qty[i]
        notional = price[i] * q * unit_value
        if side[i] == BUY:
            buyer, seller = t, m
        else:
            buyer, seller = m, t
        cash[buyer] -= notional
        cash[seller] += notional
        positions[buyer, slot] += q
        positions[seller, slot] -= q
        tf = _fee(notional, taker_rate)
        mf = _fee(notional, maker_rate)
        cash[t] -= tf
        cash[m] -= mf
        cash[FEE_ACCOUNT] += tf + mf
        fees_paid[t] += tf
        fees_paid[m] += mf
        volume_lots[t] += q
        volume_lots[m] += q
        volume_cash[t] += notional
        volume_cash[m] += notional
        total += tf + mf
    return -1, 0, total


@njit(cache=True)
def _check_one(
    acc, slot, side, qty, price, p_buy_lots, p_sell_lots, p_buy_cash,
    cash, positions, allow_short, leverage_limit, closed, last_mark, unit_value, in_use,
    position_limit,
):  # fmt: skip
    """Risk-check one well-formed order (side +-1, qty > 0, price > 0). O(max_assets)."""
    pos = positions[acc, slot]
    if closed[acc]:  # reduce-only: the order and the pending ones must not cross zero
        if pos > 0 and side == SELL and qty <= pos - p_sell_lots:
            return RISK_OK
        if pos < 0 and side == BUY and qty <= -pos - p_buy_lots:
            return RISK_OK
        return RISK_ACCOUNT_CLOSED
    if qty > MAX_POSITION_LOTS or p_buy_lots > MAX_POSITION_LOTS or p_sell_lots > MAX_POSITION_LOTS:
        return RISK_POSITION_LIMIT
    post = pos + p_buy_lots + qty if side == BUY else pos - p_sell_lots - qty
    increasing = abs(post) > abs(pos)
    if side == SELL and post < 0 and not allow_short[acc]:
        return RISK_SHORT_SALE
    if increasing and abs(post) > position_limit[slot]:
        return RISK_POSITION_LIMIT
    lev = leverage_limit[acc]
    if side == BUY and lev == 1.0 and increasing:
        if float(price) * float(qty) * float(unit_value[slot]) + float(p_buy_cash) >= MAX_NOTIONAL:
            return RISK_INSUFFICIENT_CASH
        if price * qty * unit_value[slot] + p_buy_cash > cash[acc]:
            return RISK_INSUFFICIENT_CASH
    if increasing and lev < np.inf:
        other_value = 0.0
        other_gross = 0.0
        for s in range(positions.shape[1]):
            if s != slot and in_use[s] and positions[acc, s] != 0 and not np.isnan(last_mark[s]):
                v = positions[acc, s] * last_mark[s] * unit_value[s]
                other_value += v
                other_gross += abs(v)
        this = float(price) * unit_value[slot]
        equity = cash[acc] + other_value + pos * this
        gross = other_gross + abs(post) * this
        if equity <= 0.0 or gross > lev * equity:
            return RISK_LEVERAGE
    return RISK_OK


@njit(cache=True)
def _check_batch_kernel(
    slot, kind, side, qty, price, owner, buy_ref, sell_ref,
    pend_buy_lots, pend_sell_lots, pend_buy_cash, use_pending,
    scr_buy_lots, scr_sell_lots, scr_buy_cash,
    cash, positions, allow_short, leverage_limit, closed, last_mark, unit_value, in_use,
    position_limit, out,
):  # fmt: skip
    """Risk-check a batch in order; accepted orders count as pending for later ones. O(n*A)."""
    n = kind.shape[0]
    for i in range(n):
        out[i] = RISK_OK
        k = kind[i]
        s = side[i]
        q = qty[i]
        # Orders the book itself rejects (bad side/qty/price, cancels, modifies) pass through.
        if (k != LIMIT and k != MARKET and k != IOC) or (s != BUY and s != SELL) or q <= 0:
            continue
        if k == MARKET:
            p = buy_ref if s == BUY else sell_ref
            if p <= 0:
                out[i] = RISK_NO_REFERENCE_PRICE
                continue
        else:
            p = price[i]
            if p <= 0:
                continue
        a = owner[i]
        pb = scr_buy_lots[a]
        ps = scr_sell_lots[a]
        pc = scr_buy_cash[a]
        if use_pending:
            pb += pend_buy_lots[a]
            ps += pend_sell_lots[a]
            pc += pend_buy_cash[a]
        code = _check_one(
            a, slot, s, q, p, pb, ps, pc, cash, positions, allow_short, leverage_limit, closed,
            last_mark, unit_value, in_use, position_limit,
        )  # fmt: skip
        out[i] = code
        if code == RISK_OK:
            if s == BUY:
                scr_buy_lots[a] += q
                scr_buy_cash[a] += p * q * unit_value[slot]
            else:
                scr_sell_lots[a] += q
    for i in range(n):  # leave the scratch arrays zeroed for the next call
        scr_buy_lots[owner[i]] = 0
        scr_sell_lots[owner[i]] = 0
        scr_buy_cash[owner[i]] = 0


# --------------------------------------------------------------------------------- helpers
def _fee_rate(bps: float, name: str) -> int:
    """Convert a fee in basis points to an integer rate per FEE_RATE_SCALE (1e-4 bps steps)."""
    x = float(bps)
    if not math.isfinite(x) or abs(x) > 10_000:
        raise ConfigError(
            f"{name} must be a finite number of basis points in [-10000, 10000], got {bps!r}"
        )
    rate = round(x * 10_000)
    if abs(x * 10_000 - rate) > 1e-6 * max(1.0, abs(rate)):
        raise ConfigError(f"{name} must be a multiple of 0.0001 bps, got {bps!r}")
    return int(rate)


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _int_arg(name: str, v: Any, lo: int, hi: int, what: str = "") -> int:
    """Return ``int(v)`` if it is an integer in ``lo .. hi``, else raise ConfigError naming it."""
    if not _is_int(v) or not lo <= v <= hi:
        raise ConfigError(f"{name} must be an integer in {lo} .. {hi}{what}, got {v!r}")
    return int(v)


def _to_cash_units(amount: float, name: str) -> int:
    """Convert a finite currency amount to whole cash units (nearest unit)."""
    x = float(amount)
    if not math.isfinite(x) or abs(x) * CASH_SCALE >= MAX_NOTIONAL:
        raise ConfigError(
            f"{name} must be a finite currency amount below "
            f"{MAX_NOTIONAL / CASH_SCALE:g}, got {amount!r}"
        )
    return round(x * CASH_SCALE)


class Ledger:
    """Cash, positions, fees and risk state of every account, in struct-of-arrays form.

    Args:
        max_assets: Number of asset slots (fixed for the life of the ledger).
        initial_accounts_capacity: Rows preallocated; arrays double when full.

    Account 0 (agent_type ``"exchange"``) is created here: it receives fees and pays rebates.

    Invariants (proved by :meth:`_check`): ``sum(cash) == issued_cash - withdrawn_cash +
    buyback_cash``; ``sum(positions[:, s]) == issued_shares[s]`` for every slot (zero for slots
    not in use); ``cash[0] == fees_collected == sum(fees_paid)``.
    """

    def __init__(self, max_assets: int, initial_accounts_capacity: int = 1024):
        max_assets = _int_arg("max_assets", max_assets, 1, 1 << 20)
        capacity = _int_arg("initial_accounts_capacity", initial_accounts_capacity, 1, 1 << 40)
        self._max_assets = int(max_assets)
        self._alloc_accounts(capacity)
        a = self._max_assets
        self._in_use = np.zeros(a, np.bool_)
        self._tick_size = np.zeros(a, np.float64)
        self._lot_size = np.zeros(a, np.float64)
        self._unit_value = np.zeros(a, np.int64)
        self._last_mark = np.full(a, np.nan)
        self._position_limit = np.full(a, MAX_POSITION_LOTS, np.int64)
        self._issued_shares = np.zeros(a, np.int64)
        self._issued_cash = 0
        self._withdrawn_cash = 0
        self._buyback_cash = 0
        self._fees_collected = 0
        self._n = 0
        self._agent_types: list[str] = []
        self._new_account("exchange", allow_short=False, leverage_limit=np.inf)

    # ------------------------------------------------------------------ storage
    def _alloc_accounts(self, capacity: int) -> None:
        self._cash = np.zeros(capacity, np.int64)
        self._positions = np.zeros((capacity, self._max_assets), np.int64)
        self._allow_short = np.zeros(capacity, np.bool_)
        self._leverage_limit = np.full(capacity, np.inf)
        self._closed = np.zeros(capacity, np.bool_)
        self._volume_lots = np.zeros(capacity, np.int64)
        self._volume_cash = np.zeros(capacity, np.int64)
        self._fees_paid = np.zeros(capacity, np.int64)
        self._scratch = np.zeros((3, capacity), np.int64)  # check_orders' batch accumulators

    def _grow(self) -> None:
        old = {name: getattr(self, "_" + name) for name in _ACCOUNT_ARRAYS}
        n = self._n
        self._alloc_accounts(2 * self._cash.shape[0])
        for name, arr in old.items():
            getattr(self, "_" + name)[:n] = arr[:n]

    def _new_account(self, agent_type: str, allow_short: bool, leverage_limit: float) -> int:
        if self._n == self._cash.shape[0]:
            self._grow()
        acc = self._n
        self._allow_short[acc] = allow_short
        self._leverage_limit[acc] = leverage_limit
        self._agent_types.append(agent_type)
        self._n += 1
        return acc

    # ------------------------------------------------------------------ validation
    def _slot(self, slot: Any, need_in_use: bool = True) -> int:
        slot = _int_arg("slot", slot, 0, self._max_assets - 1)
        if need_in_use and not self._in_use[slot]:
            raise ConfigError(f"slot {slot} has no asset; call configure_asset({slot}, ...) first")
        return slot

    def _account(self, acc: Any) -> int:
        return _int_arg("account", acc, 0, self._n - 1)

    def _marks(self, marks: Any) -> np.ndarray:
        """Effective marks in ticks (float): given marks where valid, else the last marks."""
        if marks is None:
            return self._last_mark.copy()
        m = self._mark_array(marks)
        return np.where(np.isnan(m), self._last_mark, m)

    def _mark_array(self, marks: Any) -> np.ndarray:
        arr = np.asarray(marks)
        if arr.shape != (self._max_assets,):
            raise ConfigError(
                f"marks must have shape ({self._max_assets},) (one per slot), got {arr.shape}"
            )
        if arr.dtype.kind in "iu":
            m = arr.astype(np.float64)
            m[arr == NO_PRICE] = np.nan
        elif arr.dtype.kind == "f":
            m = arr.astype(np.float64)
        else:
            raise ConfigError(
                f"marks must be an int (NO_PRICE = missing) or "
                f"float (NaN = missing) array, got dtype {arr.dtype}"
            )
        m[~np.isfinite(m) | (m <= 0)] = np.nan
        return m

    def _value_per_lot(self, marks: Any) -> np.ndarray:
        """Cash units per lot for each slot (0 where not in use or never marked)."""
        m = self._marks(marks)
        v = m * self._unit_value
        v[~self._in_use | np.isnan(v)] = 0.0
        return v

    # ------------------------------------------------------------------ assets
    def configure_asset(
        self, slot: int, tick_size: float, lot_size: float, mark_ticks: float | None = None
    ) -> None:
        """Put an asset in an empty slot.

        Args:
            slot: Slot index in ``0 .. max_assets - 1``; must be empty.
            tick_size: Price increment in currency, > 0.
            lot_size: Units per lot, > 0. ``tick_size * lot_size * CASH_SCALE`` must be a whole
                number of cash units (as written in decimal, e.g. 0.01 * 100 * 1e6 = 1e6).
            mark_ticks: Optional initial mark (valuation price) in ticks.

        O(1).
        """
        slot = self._slot(slot, need_in_use=False)
        if self._in_use[slot]:
            raise ConfigError(
                f"slot {slot} already holds an asset; call remove_asset({slot}, ...) first"
            )
        for name, v in (("tick_size", tick_size), ("lot_size", lot_size)):
            ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            if not ok or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name} must be a finite number > 0, got {v!r}")
        if mark_ticks is not None and not (
            isinstance(mark_ticks, int | float | np.integer | np.floating)
            and math.isfinite(mark_ticks)
            and mark_ticks > 0
        ):
            raise ConfigError(f"mark_ticks must be None or a finite number > 0, got {mark_ticks!r}")
        try:
            exact = Decimal(repr(float(tick_size))) * Decimal(repr(float(lot_size))) * CASH_SCALE
        except InvalidOperation as e:  # pragma: no cover - finite floats always convert
            raise ConfigError(
                f"tick_size={tick_size!r}, lot_size={lot_size!r} are not decimal numbers"
            ) from e
        if exact != exact.to_integral_value() or exact >= MAX_NOTIONAL:
            raise ConfigError(
                f"tick_size * lot_size must be a whole number of cash units (a multiple of "
                f"1/CASH_SCALE = {1 / CASH_SCALE:g} currency), got tick_size={tick_size!r}, "
                f"lot_size={lot_size!r} (product {float(exact) / CASH_SCALE!r})"
            )
        self._in_use[slot] = True
        self._tick_size[slot] = float(tick_size)
        self._lot_size[slot] = float(lot_size)
        self._unit_value[slot] = int(exact)
        self._last_mark[slot] = np.nan
        self._position_limit[slot] = MAX_POSITION_LOTS
        if mark_ticks is not None:
            m = np.full(self._max_assets, np.nan)
            m[slot] = mark_ticks
            self.mark(m)

    def remove_asset(self, slot: int, settle_price_ticks: int) -> dict[int, int]:
        """Retire an asset: the issuer buys back every position at ``settle_price_ticks``.

        Long holders receive ``pos * price * unit_value`` cash units, short holders pay it;
        the net is recorded in ``buyback_cash`` (an external flow) so conservation still holds.
        The slot is then empty and can be configured again.

        Returns:
            ``{account: cash units received (negative = paid)}`` for every account that held
            a non-zero position.

        O(n_accounts).
        """
        slot = self._slot(slot)
        price = _int_arg("settle_price_ticks", settle_price_ticks, 0, MAX_NOTIONAL - 1)
        n = self._n
        pos = self._positions[:n, slot]
        uv = int(self._unit_value[slot])
        if float(np.abs(pos).max(initial=1)) * price * uv >= MAX_NOTIONAL:
            raise ConfigError(
                f"settle_price_ticks={price} makes a settlement overflow int64 cash units"
            )
        amounts = pos * (price * uv)
        self._cash[:n] += amounts
        total = int(amounts.sum())
        self._buyback_cash += total
        self._issued_shares[slot] -= int(pos.sum())
        holders = np.flatnonzero(pos)
        settled = {int(a): int(amounts[a]) for a in holders}
        self._positions[:, slot] = 0
        self._in_use[slot] = False
        self._tick_size[slot] = 0.0
        self._lot_size[slot] = 0.0
        self._unit_value[slot] = 0
        self._last_mark[slot] = np.nan
        self._position_limit[slot] = MAX_POSITION_LOTS
        logger.info(
            "removed asset in slot %d at %d ticks: %d holders, net %d cash units paid",
            slot,
            price,
            len(settled),
            total,
        )
        return settled

    def set_position_limit(self, slot: int, lots: int | None) -> None:
        """Set the market-wide ``|position|`` limit of a slot in lots (None: no limit). O(1)."""
        slot = self._slot(slot)
        if lots is None:
            self._position_limit[slot] = MAX_POSITION_LOTS
            return
        self._position_limit[slot] = _int_arg("lots", lots, 0, MAX_POSITION_LOTS, " (or None)")

    def mark(self, prices: Any) -> None:
        """Update the last marks (ticks, one per slot); NaN, NO_PRICE or <= 0 keep the old. O(A)."""
        m = self._mark_array(prices)
        ok = ~np.isnan(m) & self._in_use
        self._last_mark[ok] = m[ok]

    # ------------------------------------------------------------------ accounts
    def add_account(
        self,
        cash: float,
        positions: dict[int, int] | None = None,
        agent_type: str = "",
        allow_short: bool = True,
        leverage_limit: float | None = None,
    ) -> int:
        """Open an account with an endowment (an external inflow of cash and shares).

        Args:
            cash: Starting cash in currency, >= 0 (debt can only arise from trading).
            positions: ``{slot: lots}`` starting holdings, lots >= 0, slots in use.
            agent_type: Free label used in reports.
            allow_short: Whether sells may take the position below zero.
            leverage_limit: Max gross exposure / equity (None: unlimited). 1 means cash-only:
                buys are also limited to the cash on hand.

        Returns:
            The new account id (ids are 0 .. n_accounts - 1). Amortised O(1).
        """
        units = _to_cash_units(cash, "cash")
        if units < 0:
            raise ConfigError(f"cash must be >= 0 (endowments cannot be debts), got {cash!r}")
        endow: dict[int, int] = {}
        for slot, lots in (positions or {}).items():
            s = self._slot(slot)
            endow[s] = _int_arg(f"positions[{slot}]", lots, 0, MAX_POSITION_LOTS, " lots")
        if leverage_limit is None:
            lev = np.inf
        else:
            lev = float(leverage_limit)
            if not lev > 0 or math.isnan(lev):
                raise ConfigError(
                    f"leverage_limit must be None or a number > 0, got {leverage_limit!r}"
                )
        if not isinstance(agent_type, str):
            raise ConfigError(f"agent_type must be a str, got {agent_type!r}")
        acc = self._new_account(agent_type, bool(allow_short), lev)
        self._cash[acc] = units
        self._issued_cash += units
        for s, lots in endow.items():
            self._positions[acc, s] = lots
            self._issued_shares[s] += lots
        return acc

    def endow_shares(self, acc: int, slot: int, lots: int) -> None:
        """Give an account ``lots`` (>= 0) of the asset in ``slot`` from outside the market (an
        endowment in an asset listed after the account opened). O(1)."""
        acc = self._account(acc)
        s = self._slot(slot)
        q = _int_arg("lots", lots, 0, MAX_POSITION_LOTS, " lots")
        if acc == FEE_ACCOUNT:
            raise ConfigError(f"endow_shares needs a trading account (>= 1), got acc={acc}")
        if int(self._positions[acc, s]) + q > MAX_POSITION_LOTS:
            raise ConfigError(
                f"endow_shares: account {acc} would hold {int(self._positions[acc, s]) + q} lots "
                f"of slot {s}; at most {MAX_POSITION_LOTS}"
            )
        self._positions[acc, s] += q
        self._issued_shares[s] += q

    def deposit(self, acc: int, amount: float) -> None:
        """Add ``amount`` currency (> 0) to an account's cash from outside the market. O(1)."""
        acc = self._account(acc)
        units = _to_cash_units(amount, "amount")
        if acc == FEE_ACCOUNT or units <= 0:
            raise ConfigError(
                f"deposit needs a trading account (>= 1) and "
                f"amount > 0, got acc={acc}, amount={amount!r}"
            )
        self._cash[acc] += units
        self._issued_cash += units

    def withdraw(self, acc: int, amount: float) -> None:
        """Take ``amount`` currency (0 < amount <= cash) out of an account's cash. O(1)."""
        acc = self._account(acc)
        units = _to_cash_units(amount, "amount")
        if acc == FEE_ACCOUNT or units <= 0 or units > self._cash[acc]:
            raise ConfigError(
                f"withdraw needs a trading account (>= 1) and 0 < amount <= cash "
                f"({self._cash[acc] / CASH_SCALE}), got acc={acc}, amount={amount!r}"
            )
        self._cash[acc] -= units
        self._withdrawn_cash += units

    def close_account(self, acc: int) -> None:
        """Mark an account closed (liquidated): risk checks then pass only reducing orders. O(1)."""
        acc = self._account(acc)
        if acc == FEE_ACCOUNT:
            raise ConfigError("account 0 is the exchange's fee account and cannot be closed")
        self._closed[acc] = True
        logger.info("account %d closed", acc)

    def set_leverage_limit(self, acc: int, leverage_limit: float | None) -> None:
        """Change an account's leverage limit (None: unlimited; 1: cash-only). O(1)."""
        acc = self._account(acc)
        lev = np.inf if leverage_limit is None else float(leverage_limit)
        if not lev > 0:
            raise ConfigError(
                f"leverage_limit must be None or a number > 0, got {leverage_limit!r}"
            )
        self._leverage_limit[acc] = lev

    # ------------------------------------------------------------------ settlement
    def settle(
        self, slot: int, fills: np.ndarray, maker_fee_bps: float, taker_fee_bps: float
    ) -> None:
        """Settle a batch of fills of one asset: cash, positions, fees, volume.

        For each fill the buyer (the taker if ``taker_side == BUY``, else the maker) pays
        ``price * qty * unit_value`` cash units to the seller and receives ``qty`` lots. The
        taker pays ``round_half_even(notional * taker_fee_bps / 1e4)`` to account 0, the maker
        likewise (a negative maker fee is a rebate paid by account 0). All fills are validated
        before any is applied, so a bad batch leaves the ledger unchanged.

        Args:
            slot: Asset slot of every fill.
            fills: ``FILL_DTYPE`` array (as returned by the book).
            maker_fee_bps: Maker fee in basis points (multiple of 0.0001; may be negative).
            taker_fee_bps: Taker fee in basis points (multiple of 0.0001).

        One numba call, O(n_fills).
        """
        slot = self._slot(slot)
        if not isinstance(fills, np.ndarray) or fills.dtype != FILL_DTYPE or fills.ndim != 1:
            raise ConfigError(
                f"fills must be a 1-d array of FILL_DTYPE, "
                f"got {getattr(fills, 'dtype', type(fills))}"
            )
        maker_rate = _fee_rate(maker_fee_bps, "maker_fee_bps")
        taker_rate = _fee_rate(taker_fee_bps, "taker_fee_bps")
        if fills.shape[0] == 0:
            return
        bad, code, total = _settle_kernel(
            self._cash, self._positions, self._volume_lots, self._volume_cash, self._fees_paid,
            self._n, slot, self._unit_value[slot], fills["taker_owner"], fills["maker_owner"],
            fills["price"], fills["qty"], fills["taker_side"], maker_rate, taker_rate,
        )  # fmt: skip
        if bad >= 0:
            field, allowed = _FILL_ERRORS[code]
            f = fills[bad]
            value = int(f["price"]) * int(f["qty"]) if code == _FILL_OVERFLOW else int(f[field])
            raise ConfigError(
                f"fills[{bad}].{field} must be {allowed}, got {value} (no fill was settled)"
            )
        self._fees_collected += int(total)

    def fee_rate(self, bps: float, name: str = "fee_bps") -> int:
        """A fee in bps as the integer rate :meth:`settle_raw` takes (validated). O(1)."""
        return _fee_rate(bps, name)

    def settle_raw(self, slot: int, fills: np.ndarray, maker_rate: int, taker_rate: int) -> None:
        """:meth:`settle` for the engine's hot path: ``fills`` is the book's ``(n, 9)`` int64
        view (``FL_*`` columns) and the rates come from :meth:`fee_rate`. The slot is trusted;
        fills are still checked in the kernel before any is applied. ~2 µs + 30 ns per fill.
        """
        if fills.shape[0] == 0:
            return
        bad, code, total = _settle_kernel(
            self._cash, self._positions, self._volume_lots, self._volume_cash, self._fees_paid,
            self._n, slot, self._unit_value[slot], fills[:, FL_TAKER_OWNER],
            fills[:, FL_MAKER_OWNER], fills[:, FL_PRICE], fills[:, FL_QTY],
            fills[:, FL_TAKER_SIDE], maker_rate, taker_rate,
        )  # fmt: skip
        if bad >= 0:
            field, allowed = _FILL_ERRORS[code]
            raise ConfigError(f"fills[{bad}].{field} must be {allowed} (no fill was settled)")
        self._fees_collected += int(total)

    def check_orders_raw(
        self, slot: int, orders: np.ndarray, buy_reference_ticks: int, sell_reference_ticks: int
    ) -> np.ndarray:
        """:meth:`check_orders` for the engine's hot path: ``orders`` is an ``(n, 6)`` int64
        view (``O_*`` columns) whose owners are valid trading accounts; references are ticks
        (0: none, fall back to the last mark). No pending orders. ~2 µs per call.
        """
        out = np.zeros(orders.shape[0], np.int64)
        if buy_reference_ticks <= 0:
            buy_reference_ticks = self._reference(slot, "buy_reference_ticks", None)
        if sell_reference_ticks <= 0:
            sell_reference_ticks = self._reference(slot, "sell_reference_ticks", None)
        e = _EMPTY_I64
        sc = self._scratch
        _check_batch_kernel(
            slot, orders[:, O_KIND], orders[:, O_SIDE], orders[:, O_QTY], orders[:, O_PRICE],
            orders[:, O_OWNER], buy_reference_ticks, sell_reference_ticks, e, e, e, False,
            sc[0], sc[1], sc[2], self._cash, self._positions, self._allow_short,
            self._leverage_limit, self._closed, self._last_mark, self._unit_value, self._in_use,
            self._position_limit, out,
        )  # fmt: skip
        return out

    # ------------------------------------------------------------------ risk
    def notional(self, slot: int, price_ticks: int, qty: int) -> int:
        """Cash units of ``qty`` lots at ``price_ticks`` in ``slot`` (exact). O(1)."""
        slot = self._slot(slot)
        return int(price_ticks) * int(qty) * int(self._unit_value[slot])

    def check_order(
        self,
        account: int,
        slot: int,
        side: int,
        qty: int,
        price_ticks: int,
        pending_buy_notional: int = 0,
        pending_buy_lots: int = 0,
        pending_sell_lots: int = 0,
    ) -> int:
        """Pre-trade risk check of one order against current positions (+ optional pending).

        The ledger does not know resting orders; the exchange may pass the account's working
        orders: ``pending_buy_lots`` / ``pending_sell_lots`` in this slot and
        ``pending_buy_notional`` (cash units, all slots). Checks, first failure wins:
        account closed (only orders shrinking the position toward zero pass), short sale,
        position limit, insufficient cash (cash-only accounts, buys; fees are not reserved),
        leverage (post-trade gross exposure / equity <= limit, marking this slot at
        ``price_ticks`` and the others at the last marks; unmarked slots count 0). Orders that
        do not grow ``|position|`` (de-risking, liquidation) are never rejected for position
        limit, cash or leverage.

        Args:
            account: Trading account id (>= 1).
            slot: Asset slot.
            side: ``BUY`` or ``SELL``.
            qty: Lots, > 0.
            price_ticks: Limit price, or the expected fill price of a market order, > 0.

        Returns:
            ``RISK_OK`` (0) or a code of :data:`RISK_REASONS`. O(max_assets).
        """
        acc = _int_arg("account", account, 1, self._n - 1, " (a trading account)")
        slot = self._slot(slot)
        if side != BUY and side != SELL:
            raise ConfigError(f"side must be BUY (+1) or SELL (-1), got {side!r}")
        qty = _int_arg("qty", qty, 1, MAX_NOTIONAL - 1)  # oversized: RISK_POSITION_LIMIT
        price = _int_arg("price_ticks", price_ticks, 1, MAX_NOTIONAL - 1)
        p_cash = _int_arg("pending_buy_notional", pending_buy_notional, 0, MAX_NOTIONAL - 1)
        p_buy = _int_arg("pending_buy_lots", pending_buy_lots, 0, MAX_POSITION_LOTS)
        p_sell = _int_arg("pending_sell_lots", pending_sell_lots, 0, MAX_POSITION_LOTS)
        code = _check_one(
            acc, slot, int(side), qty, price, p_buy, p_sell, p_cash, self._cash, self._positions,
            self._allow_short, self._leverage_limit, self._closed, self._last_mark,
            self._unit_value, self._in_use, self._position_limit,
        )  # fmt: skip
        return int(code)

    def check_orders(
        self,
        slot: int,
        orders: np.ndarray,
        buy_reference_ticks: int | None = None,
        sell_reference_ticks: int | None = None,
        pending_buy_lots: np.ndarray | None = None,
        pending_sell_lots: np.ndarray | None = None,
        pending_buy_notional: np.ndarray | None = None,
    ) -> np.ndarray:
        """Risk-check a batch of ``ORDER_DTYPE`` orders for one slot, in batch order.

        Each LIMIT/MARKET/IOC order is checked as :meth:`check_order` would, and orders accepted
        earlier in the batch count as pending for later ones of the same account. CANCEL,
        MODIFY and malformed orders (which the book rejects itself) get 0. MARKET orders are
        valued at ``buy_reference_ticks`` / ``sell_reference_ticks`` (default: the slot's last
        mark, rounded); with none, they get ``RISK_NO_REFERENCE_PRICE``.

        Args:
            slot: Asset slot of the batch.
            orders: ``ORDER_DTYPE`` array; ``owner`` must be a trading account (>= 1).
            buy_reference_ticks: Expected fill price of market buys (e.g. the best ask).
            sell_reference_ticks: Expected fill price of market sells (e.g. the best bid).
            pending_buy_lots: Optional int64 per account: working buy lots in this slot.
            pending_sell_lots: Optional int64 per account: working sell lots in this slot.
            pending_buy_notional: Optional int64 per account: cash units of working buys.

        Returns:
            int64 array of codes, one per order (0 = ok). One numba call, O(n * max_assets).
        """
        slot = self._slot(slot)
        if not isinstance(orders, np.ndarray) or orders.dtype != ORDER_DTYPE or orders.ndim != 1:
            raise ConfigError(
                f"orders must be a 1-d array of ORDER_DTYPE, "
                f"got {getattr(orders, 'dtype', type(orders))}"
            )
        out = np.zeros(orders.shape[0], np.int64)
        if orders.shape[0] == 0:
            return out
        owner = orders["owner"]
        lo, hi = int(owner.min()), int(owner.max())
        if lo < 1 or hi >= self._n:
            bad = int(np.flatnonzero((owner < 1) | (owner >= self._n))[0])
            raise ConfigError(
                f"orders[{bad}].owner must be a trading account "
                f"in 1 .. {self._n - 1}, got {int(owner[bad])}"
            )
        refs = [
            self._reference(slot, "buy_reference_ticks", buy_reference_ticks),
            self._reference(slot, "sell_reference_ticks", sell_reference_ticks),
        ]
        given = {
            "pending_buy_lots": (pending_buy_lots, MAX_POSITION_LOTS),
            "pending_sell_lots": (pending_sell_lots, MAX_POSITION_LOTS),
            "pending_buy_notional": (pending_buy_notional, MAX_NOTIONAL - 1),
        }
        use_pending = any(p is not None for p, _ in given.values())
        pend = []
        for name, (p, bound) in given.items():
            if p is None:
                pend.append(np.zeros(self._n if use_pending else 0, np.int64))
                continue
            arr = np.asarray(p)
            if arr.ndim != 1 or arr.shape[0] < self._n or arr.dtype.kind not in "iu":
                raise ConfigError(
                    f"{name} must be a 1-d integer array with one entry per account "
                    f"(length >= {self._n}), got shape {arr.shape} dtype {arr.dtype}"
                )
            arr = np.ascontiguousarray(arr, dtype=np.int64)
            if arr.min() < 0 or arr.max() > bound:
                raise ConfigError(
                    f"{name} must lie in 0 .. {bound}, got min {arr.min()} max {arr.max()}"
                )
            pend.append(arr)
        sc = self._scratch
        _check_batch_kernel(
            slot, orders["kind"], orders["side"], orders["qty"], orders["price"], owner,
            refs[0], refs[1], pend[0], pend[1], pend[2], use_pending, sc[0], sc[1], sc[2],
            self._cash, self._positions, self._allow_short, self._leverage_limit, self._closed,
            self._last_mark, self._unit_value, self._in_use, self._position_limit, out,
        )  # fmt: skip
        return out

    def _reference(self, slot: int, name: str, ref: Any) -> int:
        """Reference price of market orders in ticks; 0 means none."""
        if ref is None:
            m = self._last_mark[slot]
            return 0 if np.isnan(m) else max(1, round(float(m)))
        if _is_int(ref) and ref == NO_PRICE:
            return 0
        return _int_arg(name, ref, 0, MAX_NOTIONAL - 1, " ticks (0 or NO_PRICE: none)")

    # ------------------------------------------------------------------ marks, exposure, margin
    def equity(self, mark_prices_ticks: Any = None) -> np.ndarray:
        """Equity per account in currency: cash + sum over slots of position * mark * unit value.

        Args:
            mark_prices_ticks: Marks per slot (float ticks, NaN = missing; or int ticks,
                ``NO_PRICE`` = missing). Missing marks fall back to the last marks (see
                :meth:`mark`); slots never marked count 0. None: last marks only.

        Returns:
            float64 array of shape (n_accounts,). O(n_accounts * max_assets).
        """
        return self._equity_gross(mark_prices_ticks)[0]

    def _equity_gross(self, marks: Any) -> tuple[np.ndarray, np.ndarray]:
        """Equity and gross exposure per account in currency, valuing the slots once."""
        n, vpl = self._n, self._value_per_lot(marks)
        pos = self._positions[:n]
        eq = (self._cash[:n] + pos @ vpl) / CASH_SCALE
        return eq, (np.abs(pos) @ vpl) / CASH_SCALE

    def gross_exposure(self, mark_prices_ticks: Any = None) -> np.ndarray:
        """Sum over slots of ``|position| * mark * unit value`` per account, in currency. O(n*A)."""
        return self._equity_gross(mark_prices_ticks)[1]

    def net_exposure(self, mark_prices_ticks: Any = None) -> np.ndarray:
        """Sum over slots of ``position * mark * unit value`` per account, in currency. O(n*A)."""
        n = self._n
        return (self._positions[:n] @ self._value_per_lot(mark_prices_ticks)) / CASH_SCALE

    def leverage(self, mark_prices_ticks: Any = None) -> np.ndarray:
        """Gross exposure / equity per account: 0 when flat, inf when equity <= 0. O(n*A)."""
        eq, gross = self._equity_gross(mark_prices_ticks)
        with np.errstate(divide="ignore", invalid="ignore"):
            lev = np.where(eq > 0, gross / eq, np.inf)
        lev[gross == 0] = 0.0
        return lev

    def sector_exposure(
        self, slot_sector: Any, mark_prices_ticks: Any = None, gross: bool = False
    ) -> np.ndarray:
        """Net (or gross) exposure per account and sector, in currency.

        Args:
            slot_sector: int array (max_assets,): sector id (>= 0) of each slot.
            mark_prices_ticks: As in :meth:`equity`.
            gross: Sum ``|position|`` values instead of signed ones.

        Returns:
            float64 array (n_accounts, max(slot_sector) + 1). O(n * A).
        """
        sec = np.asarray(slot_sector)
        if (
            sec.shape != (self._max_assets,)
            or sec.dtype.kind not in "iu"
            or (sec.size and sec.min() < 0)
        ):
            raise ConfigError(
                f"slot_sector must be an int array of shape ({self._max_assets},) "
                f"with ids >= 0, got shape {sec.shape} dtype {sec.dtype}"
            )
        onehot = np.zeros((self._max_assets, int(sec.max()) + 1))
        onehot[np.arange(self._max_assets), sec] = self._value_per_lot(mark_prices_ticks)
        pos = self._positions[: self._n]
        return ((np.abs(pos) if gross else pos) @ onehot) / CASH_SCALE

    def margin_calls(self, maintenance_margin: float, mark_prices_ticks: Any = None) -> np.ndarray:
        """Accounts (not 0, not closed) with equity < maintenance_margin * gross exposure, or
        with equity <= 0 while holding positions or owing cash.

        Returns:
            int64 array of account ids, ascending. O(n * A).
        """
        mm = float(maintenance_margin)
        if not math.isfinite(mm) or mm < 0:
            raise ConfigError(
                f"maintenance_margin must be a finite number >= 0, got {maintenance_margin!r}"
            )
        eq, gross = self._equity_gross(mark_prices_ticks)
        bad = (eq < mm * gross) | (eq < 0) | ((eq == 0) & (gross > 0))
        bad &= ~self._closed[: self._n]
        bad[FEE_ACCOUNT] = False
        return np.flatnonzero(bad).astype(np.int64)

    # ------------------------------------------------------------------ accessors
    @property
    def n_accounts(self) -> int:
        """Number of accounts, the fee account included."""
        return self._n

    @property
    def max_assets(self) -> int:
        """Number of asset slots."""
        return self._max_assets

    @property
    def slots_in_use(self) -> np.ndarray:
        """Read-only bool mask (max_assets,) of slots holding an asset."""
        return _ro(self._in_use)

    @property
    def last_mark(self) -> np.ndarray:
        """Read-only float64 last marks in ticks per slot (NaN: never marked)."""
        return _ro(self._last_mark)

    @property
    def cash_units(self) -> np.ndarray:
        """Read-only int64 cash per account in cash units."""
        return _ro(self._cash[: self._n])

    @property
    def positions(self) -> np.ndarray:
        """Read-only int64 lots, shape (n_accounts, max_assets)."""
        return _ro(self._positions[: self._n])

    @property
    def fees_paid_units(self) -> np.ndarray:
        """Read-only int64 fees paid per account in cash units (negative: net rebates)."""
        return _ro(self._fees_paid[: self._n])

    @property
    def volume_lots(self) -> np.ndarray:
        """Read-only int64 lots traded per account (both sides of self-trades count)."""
        return _ro(self._volume_lots[: self._n])

    @property
    def volume_cash_units(self) -> np.ndarray:
        """Read-only int64 notional traded per account in cash units."""
        return _ro(self._volume_cash[: self._n])

    @property
    def closed(self) -> np.ndarray:
        """Read-only bool mask of closed accounts."""
        return _ro(self._closed[: self._n])

    @property
    def fees_collected(self) -> int:
        """Net fees collected by account 0, cash units."""
        return self._fees_collected

    @property
    def issued_cash(self) -> int:
        """Cash endowed or deposited from outside, cash units."""
        return self._issued_cash

    def issued_shares(self, slot: int) -> int:
        """Lots of ``slot`` endowed and not yet bought back."""
        return int(self._issued_shares[self._slot(slot)])

    def unit_value(self, slot: int) -> int:
        """Cash units of one tick on one lot of ``slot``."""
        return int(self._unit_value[self._slot(slot)])

    def tick_size(self, slot: int) -> float:
        """Tick size of ``slot`` in currency."""
        return float(self._tick_size[self._slot(slot)])

    def lot_size(self, slot: int) -> float:
        """Lot size of ``slot`` in asset units."""
        return float(self._lot_size[self._slot(slot)])

    def cash(self, acc: int) -> float:
        """Cash of an account in currency."""
        return int(self._cash[self._account(acc)]) / CASH_SCALE

    def position(self, acc: int, slot: int) -> int:
        """Position of an account in ``slot`` in lots."""
        return int(self._positions[self._account(acc), self._slot(slot, need_in_use=False)])

    def agent_type(self, acc: int) -> str:
        """Label given at :meth:`add_account`."""
        return self._agent_types[self._account(acc)]

    def accounts_frame(self, marks: Any = None) -> pd.DataFrame:
        """One row per account: account, agent_type, cash, equity, gross_exposure, leverage,
        closed, volume_lots, fees_paid (currency amounts as floats). O(n * A)."""
        n = self._n
        eq, gross = self._equity_gross(marks)
        return pd.DataFrame(
            {
                "account": np.arange(n),
                "agent_type": self._agent_types,
                "cash": self._cash[:n] / CASH_SCALE,
                "equity": eq,
                "gross_exposure": gross,
                "leverage": self.leverage(marks),
                "closed": self._closed[:n].copy(),
                "volume_lots": self._volume_lots[:n].copy(),
                "fees_paid": self._fees_paid[:n] / CASH_SCALE,
            }
        )

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict[str, Any]:
        """Return the whole ledger as numpy arrays and plain data (no pickle needed). O(n * A)."""
        n = self._n
        state: dict[str, Any] = {
            "schema": STATE_SCHEMA,
            "max_assets": self._max_assets,
            "capacity": int(self._cash.shape[0]),
            "n_accounts": n,
            "agent_types": list(self._agent_types),
        }
        for name in _COUNTERS:
            state[name] = int(getattr(self, "_" + name))
        for name in _ACCOUNT_ARRAYS:
            state[name] = getattr(self, "_" + name)[:n].copy()
        for name in _SLOT_ARRAYS:
            state[name] = getattr(self, "_" + name).copy()
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Ledger:
        """Rebuild a ledger from :meth:`get_state` output; raises StateError if inconsistent."""
        try:
            if state.get("schema") != STATE_SCHEMA:
                raise StateError(
                    f"ledger state schema must be {STATE_SCHEMA!r}, got {state.get('schema')!r}"
                )
            a, cap, n = int(state["max_assets"]), int(state["capacity"]), int(state["n_accounts"])
            if not 1 <= n <= cap or a < 1:
                raise StateError(f"ledger state has n_accounts={n}, capacity={cap}, max_assets={a}")
            led = cls(a, cap)
            led._n = n
            led._agent_types = [str(t) for t in state["agent_types"]]
            if len(led._agent_types) != n:
                raise StateError(
                    f"ledger state agent_types has {len(led._agent_types)} entries, expected {n}"
                )
            for name in _COUNTERS:
                setattr(led, "_" + name, int(state[name]))
            for names, rows in ((_ACCOUNT_ARRAYS, n), (_SLOT_ARRAYS, None)):
                for name in names:
                    dst = getattr(led, "_" + name)
                    src = np.asarray(state[name])
                    want = dst[:rows].shape if rows is not None else dst.shape
                    if src.shape != want or src.dtype != dst.dtype:
                        raise StateError(
                            f"ledger state array {name!r} must be {dst.dtype} "
                            f"of shape {want}, got {src.dtype} {src.shape}"
                        )
                    dst[: src.shape[0]] = src
        except KeyError as e:
            raise StateError(f"ledger state is missing key {e.args[0]!r}") from e
        try:
            led._check()
        except AssertionError as e:
            raise StateError(f"ledger state breaks an invariant: {e}") from e
        return led

    def _check(self) -> None:
        """Assert the conservation invariants; the message names the broken quantity. O(n * A)."""
        n = self._n
        assert 1 <= n <= self._cash.shape[0] and len(self._agent_types) == n, (
            "n_accounts / capacity"
        )
        total = int(self._cash[:n].sum())
        expected = self._issued_cash - self._withdrawn_cash + self._buyback_cash
        assert total == expected, (
            f"cash: sum(cash)={total} != issued - withdrawn + buyback = {expected}"
        )
        assert not self._cash[n:].any() and not self._positions[n:].any(), (
            "rows beyond n_accounts not zero"
        )
        sums = self._positions[:n].sum(axis=0)
        for s in range(self._max_assets):
            if self._in_use[s]:
                assert sums[s] == self._issued_shares[s], (
                    f"shares: slot {s} sum(positions)={sums[s]} "
                    f"!= issued_shares={self._issued_shares[s]}"
                )
                assert self._unit_value[s] > 0, f"unit_value: slot {s} in use with unit_value 0"
            else:
                assert not self._positions[:n, s].any() and self._issued_shares[s] == 0, (
                    f"shares: slot {s} not in use but holds positions or issued_shares"
                )
        assert not self._positions[FEE_ACCOUNT].any(), "positions: fee account 0 holds positions"
        assert int(self._cash[FEE_ACCOUNT]) == self._fees_collected, (
            f"fees: cash[0]={int(self._cash[FEE_ACCOUNT])} != fees_collected={self._fees_collected}"
        )
        paid = int(self._fees_paid[:n].sum())
        assert paid == self._fees_collected, (
            f"fees: sum(fees_paid)={paid} != fees_collected={self._fees_collected}"
        )


def _ro(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view
