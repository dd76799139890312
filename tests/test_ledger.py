"""Tests of marketsim.ledger: settlement against a slow per-fill reference, fees, risk, margin,
asset removal and state round trips."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.book.constants import (
    BUY,
    CANCEL,
    FILL_DTYPE,
    LIMIT,
    MARKET,
    NO_PRICE,
    ORDER_DTYPE,
    SELL,
)
from marketsim.errors import ConfigError, StateError
from marketsim.ledger import (
    CASH_SCALE,
    FEE_RATE_SCALE,
    MAX_NOTIONAL,
    RISK_ACCOUNT_CLOSED,
    RISK_INSUFFICIENT_CASH,
    RISK_LEVERAGE,
    RISK_NO_REFERENCE_PRICE,
    RISK_OK,
    RISK_POSITION_LIMIT,
    RISK_REASONS,
    RISK_SHORT_SALE,
    Ledger,
    _fee,
)


# ----------------------------------------------------------------------------- reference
def ref_fee(notional: int, bps: float) -> int:
    """round-half-even(notional * bps / 1e4), exact, bps read as the decimal it prints as."""
    return round(Fraction(notional) * Fraction(repr(float(bps))) / 10_000)


class RefLedger:
    """Slow, obvious per-fill settlement in Python ints."""

    def __init__(self, n_accounts: int, max_assets: int, cash: list[int], unit_value: list[int]):
        self.cash = list(cash)
        self.pos = [[0] * max_assets for _ in range(n_accounts)]
        self.fees = [0] * n_accounts
        self.vol_lots = [0] * n_accounts
        self.vol_cash = [0] * n_accounts
        self.uv = unit_value

    def settle(self, slot, fills, maker_bps, taker_bps):
        for f in fills:
            t, m = int(f["taker_owner"]), int(f["maker_owner"])
            q, p = int(f["qty"]), int(f["price"])
            notional = p * q * self.uv[slot]
            buyer, seller = (t, m) if f["taker_side"] == BUY else (m, t)
            self.cash[buyer] -= notional
            self.cash[seller] += notional
            self.pos[buyer][slot] += q
            self.pos[seller][slot] -= q
            tf, mf = ref_fee(notional, taker_bps), ref_fee(notional, maker_bps)
            self.cash[t] -= tf
            self.cash[m] -= mf
            self.cash[0] += tf + mf
            self.fees[t] += tf
            self.fees[m] += mf
            for a in (t, m):
                self.vol_lots[a] += q
                self.vol_cash[a] += notional

    def assert_matches(self, led: Ledger):
        assert led.cash_units.tolist() == self.cash
        assert led.positions.tolist() == self.pos
        assert led.fees_paid_units.tolist() == self.fees
        assert led.volume_lots.tolist() == self.vol_lots
        assert led.volume_cash_units.tolist() == self.vol_cash


def make_fills(rows) -> np.ndarray:
    """rows: (taker, maker, price, qty, taker_side)."""
    fills = np.zeros(len(rows), FILL_DTYPE)
    for i, (t, m, p, q, s) in enumerate(rows):
        fills[i] = (i, 1000 + i, t, m, p, q, 0, i, s)
    return fills


def random_fills(rng, n, n_accounts, max_price=5000, max_qty=300):
    fills = np.zeros(n, FILL_DTYPE)
    fills["taker_owner"] = rng.integers(1, n_accounts, n)
    fills["maker_owner"] = rng.integers(1, n_accounts, n)
    fills["price"] = rng.integers(1, max_price, n)
    fills["qty"] = rng.integers(1, max_qty, n)
    fills["taker_side"] = rng.choice(np.array([BUY, SELL], np.int8), n)
    return fills


def three_asset_ledger(n_traders=6, cash=1_000_000.0, lots=500):
    led = Ledger(max_assets=4, initial_accounts_capacity=2)
    led.configure_asset(0, tick_size=0.01, lot_size=100)  # unit value 1_000_000
    led.configure_asset(1, tick_size=0.05, lot_size=1)  # 50_000
    led.configure_asset(3, tick_size=0.001, lot_size=0.5)  # 500
    for i in range(n_traders):
        led.add_account(cash, positions={0: lots, 1: lots, 3: lots}, agent_type=f"t{i % 2}")
    return led


def reference_for(led: Ledger) -> RefLedger:
    uv = [led.unit_value(s) if led.slots_in_use[s] else 0 for s in range(led.max_assets)]
    ref = RefLedger(led.n_accounts, led.max_assets, led.cash_units.tolist(), uv)
    ref.pos = led.positions.tolist()
    return ref


# ----------------------------------------------------------------------------- settlement
def test_settle_random_batches_match_reference_and_conserve():
    rng = np.random.default_rng(12345)
    led = three_asset_ledger()
    ref = reference_for(led)
    fee_choices = [(-0.2, 0.5), (0.0, 0.0), (1.0, 3.0), (-0.25, 0.3), (0.1234, 7.5)]
    for _ in range(60):
        slot = int(rng.choice([0, 1, 3]))
        maker_bps, taker_bps = fee_choices[int(rng.integers(len(fee_choices)))]
        fills = random_fills(rng, int(rng.integers(0, 80)), led.n_accounts)
        led.settle(slot, fills, maker_fee_bps=maker_bps, taker_fee_bps=taker_bps)
        ref.settle(slot, fills, maker_bps, taker_bps)
        led._check()
        ref.assert_matches(led)
    assert led.fees_collected == led.cash_units[0] == sum(ref.fees)
    assert led.fees_collected != 0


def test_settle_single_fill_by_hand_and_self_trade():
    led = Ledger(max_assets=1)
    led.configure_asset(0, tick_size=0.01, lot_size=100)
    a = led.add_account(10_000.0)
    b = led.add_account(0.0, positions={0: 50})
    led.settle(0, make_fills([(b, a, 1000, 10, SELL)]), maker_fee_bps=-0.2, taker_fee_bps=0.5)
    # b (taker) sells 10 lots at 10.00 to a: notional 10 * 1000 ticks * 0.01 * 100 = 10_000.
    assert led.position(a, 0) == 10 and led.position(b, 0) == 40
    assert led.cash(a) == pytest.approx(0.2)  # paid 10_000, got a 0.2 maker rebate
    assert led.cash(b) == pytest.approx(10_000 - 0.5)
    assert led.cash_units[0] == 300_000 and led.fees_collected == 300_000
    # A self-trade moves no cash or shares, only fees.
    led.settle(0, make_fills([(a, a, 1000, 5, BUY)]), maker_fee_bps=0, taker_fee_bps=1)
    assert led.position(a, 0) == 10
    assert led.cash_units[a] == 200_000 - 500_000
    led._check()


def test_bad_fills_raise_and_leave_ledger_unchanged():
    led = three_asset_ledger(n_traders=3)
    led.settle(0, make_fills([(1, 2, 100, 5, BUY)]), 0, 1)
    before = led.get_state()
    good = (1, 2, 100, 5, BUY)
    cases = [
        ((0, 2, 100, 5, BUY), "taker_owner"),
        ((1, 4, 100, 5, BUY), "maker_owner"),
        ((1, 2, 100, 0, BUY), "qty"),
        ((1, 2, -3, 5, BUY), "price"),
        ((1, 2, 100, 5, 0), "taker_side"),
        ((1, 2, 1 << 40, 1 << 20, BUY), "price\\*qty"),
    ]
    for row, field in cases:
        with pytest.raises(ConfigError, match=rf"fills\[1\]\.{field} must be"):
            led.settle(0, make_fills([good, row]), 0, 1)
        assert_states_equal(led.get_state(), before)
    with pytest.raises(ConfigError, match="FILL_DTYPE"):
        led.settle(0, np.zeros(3, np.int64), 0, 1)
    with pytest.raises(ConfigError, match="slot 2 has no asset"):
        led.settle(2, make_fills([good]), 0, 1)
    with pytest.raises(ConfigError, match="taker_fee_bps must be a multiple of 0.0001"):
        led.settle(0, make_fills([good]), 0, 0.00001)
    with pytest.raises(ConfigError, match="maker_fee_bps must be a finite"):
        led.settle(0, make_fills([good]), math.nan, 0)


@pytest.mark.parametrize(
    ("notional", "bps", "fee"),
    [
        (5_000, 1, 0),  # 0.5 -> 0 (even)
        (15_000, 1, 2),  # 1.5 -> 2 (even)
        (25_000, 1, 2),  # 2.5 -> 2
        (5_000, -1, 0),  # -0.5 -> 0
        (15_000, -1, -2),  # -1.5 -> -2
        (25_001, 1, 3),  # 2.5001 -> 3
        (
            FEE_RATE_SCALE * 7 + 5_000,
            1,
            70_000,
        ),  # 70000.5 -> 70000 (the whole, not just the remainder, decides)
        (FEE_RATE_SCALE * 7 + 15_000, 1, 70_002),  # 70001.5 -> 70002
        (MAX_NOTIONAL - 1, 10_000, MAX_NOTIONAL - 1),  # 100% fee, no overflow
    ],
)
def test_fee_rounding_half_even_cases(notional, bps, fee):
    rate = round(bps * 10_000)
    assert _fee(np.int64(notional), np.int64(rate)) == fee == ref_fee(notional, bps)


@settings(max_examples=300, deadline=None)
@given(
    notional=st.integers(1, MAX_NOTIONAL - 1),
    rate=st.integers(-100_000_000, 100_000_000),
)
def test_fee_matches_exact_rational_rounding(notional, rate):
    exact = round(Fraction(notional * rate, FEE_RATE_SCALE))
    assert _fee(np.int64(notional), np.int64(rate)) == exact


fill_rows = st.lists(
    st.tuples(
        st.integers(1, 4),  # taker
        st.integers(1, 4),  # maker
        st.integers(1, 10**6),  # price ticks
        st.integers(1, 10**5),  # qty lots
        st.sampled_from([BUY, SELL]),
    ),
    max_size=30,
)
fee_bps = st.integers(-50_000, 300_000).map(lambda k: k / 10_000)  # -5 .. 30 bps, 1e-4 steps


@settings(max_examples=60, deadline=None)
@given(
    batches=st.lists(st.tuples(st.sampled_from([0, 1, 3]), fill_rows, fee_bps, fee_bps), max_size=5)
)
def test_settle_conserves_and_matches_reference_hypothesis(batches):
    led = three_asset_ledger(n_traders=4)
    ref = reference_for(led)
    for slot, rows, maker_bps, taker_bps in batches:
        fills = make_fills(rows)
        led.settle(slot, fills, maker_bps, taker_bps)
        ref.settle(slot, fills, maker_bps, taker_bps)
        led._check()
    ref.assert_matches(led)


# ----------------------------------------------------------------------------- configuration
def test_configure_asset_errors():
    led = Ledger(max_assets=3)
    with pytest.raises(
        ConfigError,
        match=r"tick_size \* lot_size must be a whole number.*tick_size=1e-07, lot_size=1",
    ):
        led.configure_asset(0, tick_size=1e-7, lot_size=1)
    with pytest.raises(ConfigError, match=r"tick_size=0.3333333333333333, lot_size=1"):
        led.configure_asset(0, tick_size=1 / 3, lot_size=1)
    with pytest.raises(ConfigError, match="lot_size must be a finite number > 0, got 0"):
        led.configure_asset(0, tick_size=0.01, lot_size=0)
    with pytest.raises(ConfigError, match=r"slot must be an integer in 0 \.\. 2, got 3"):
        led.configure_asset(3, tick_size=0.01, lot_size=1)
    with pytest.raises(ConfigError, match=r"slot must be an integer in 0 \.\. 2, got -1"):
        led.position(1 if led.n_accounts > 1 else 0, -1)
    led.configure_asset(0, tick_size=0.1, lot_size=0.001)  # 100 cash units, float-inexact product
    assert led.unit_value(0) == 100
    with pytest.raises(ConfigError, match="slot 0 already holds an asset"):
        led.configure_asset(0, tick_size=0.01, lot_size=1)
    with pytest.raises(ConfigError, match=r"slot 1 has no asset; call configure_asset\(1"):
        led.add_account(1.0, positions={1: 5})
    with pytest.raises(
        ConfigError, match=r"max_assets must be an integer in 1 \.\. 1048576, got 0"
    ):
        Ledger(max_assets=0)


def test_add_account_validation_and_endowments():
    led = Ledger(max_assets=2, initial_accounts_capacity=1)
    led.configure_asset(0, tick_size=0.01, lot_size=1)
    # Negative endowments are refused: debt can only come from trading.
    with pytest.raises(ConfigError, match="cash must be >= 0"):
        led.add_account(-1.0)
    with pytest.raises(ConfigError, match="cash must be a finite"):
        led.add_account(math.inf)
    with pytest.raises(ConfigError, match=r"positions\[0\] must be an integer in 0"):
        led.add_account(1.0, positions={0: -5})
    with pytest.raises(ConfigError, match="leverage_limit must be None or a number > 0"):
        led.add_account(1.0, leverage_limit=0)
    assert led.n_accounts == 1 and led.agent_type(0) == "exchange"
    ids = [led.add_account(1.5 + i, positions={0: i}, agent_type="noise") for i in range(40)]
    assert ids == list(range(1, 41))  # grew from capacity 1 by doubling
    assert led.cash(40) == 40.5 and led.position(40, 0) == 39 and led.agent_type(3) == "noise"
    assert led.issued_cash == sum(round((1.5 + i) * CASH_SCALE) for i in range(40))
    assert led.issued_shares(0) == sum(range(40))
    led._check()
    with pytest.raises(ConfigError, match=r"account must be an integer in 0 \.\. 40, got 41"):
        led.cash(41)


def test_deposit_withdraw_conserve():
    led = three_asset_ledger(n_traders=2)
    led.deposit(1, 10.0)
    led.withdraw(2, 100.0)
    assert led.cash(1) == 1_000_010.0 and led.cash(2) == 999_900.0
    led._check()
    with pytest.raises(ConfigError, match="0 < amount <= cash"):
        led.withdraw(1, 2_000_000.0)
    with pytest.raises(ConfigError, match="trading account"):
        led.deposit(0, 1.0)


# ----------------------------------------------------------------------------- remove_asset
def test_remove_asset_settles_positions_and_keeps_invariants():
    led = three_asset_ledger(n_traders=3, lots=100)
    # Account 1 sells 150 lots of slot 1 to account 2: 1 is short 50, 2 long 250.
    led.settle(1, make_fills([(1, 2, 40, 150, SELL)]), 0, 0)
    cash_before = led.cash_units.copy()
    settled = led.remove_asset(1, settle_price_ticks=30)
    uv = 50_000
    assert settled == {1: -50 * 30 * uv, 2: 250 * 30 * uv, 3: 100 * 30 * uv}
    assert led.cash_units[1] == cash_before[1] - 50 * 30 * uv
    assert not led.slots_in_use[1] and led.positions[:, 1].sum() == 0
    led._check()
    with pytest.raises(ConfigError, match="slot 1 has no asset"):
        led.check_order(1, 1, BUY, 1, 10)
    # The slot can hold a new asset; trading it keeps the invariants.
    led.configure_asset(1, tick_size=0.5, lot_size=2)
    led.settle(1, make_fills([(2, 3, 7, 0 + 1, BUY)]), 0, 0)
    assert led.position(2, 1) == 1 and led.position(3, 1) == -1
    led._check()
    with pytest.raises(
        ConfigError, match=r"settle_price_ticks must be an integer in 0 \.\. \d+, got -1"
    ):
        led.remove_asset(0, -1)


# ----------------------------------------------------------------------------- marks, exposure
def test_equity_exposure_leverage_and_mark_fallback():
    led = Ledger(max_assets=3)
    led.configure_asset(0, tick_size=0.01, lot_size=100)  # 1.00 per tick-lot
    led.configure_asset(1, tick_size=0.5, lot_size=1)  # 0.50 per tick-lot
    a = led.add_account(1_000.0, positions={0: 10})
    b = led.add_account(0.0)
    led.settle(1, make_fills([(b, a, 20, 4, SELL)]), 0, 0)  # b short 4 of slot 1 at 20 ticks
    # Nothing marked yet: positions count 0.
    np.testing.assert_allclose(led.equity(), [0, 1_000 - 40, 40])
    led.mark(np.array([500.0, 30.0, np.nan]))
    # a: cash 960 + 10 lots * 500 ticks * 1.00 + 4 * 30 * 0.5 = 6020
    np.testing.assert_allclose(led.equity(), [0, 6_020, 40 - 60])
    np.testing.assert_allclose(led.gross_exposure(), [0, 5_060, 60])
    np.testing.assert_allclose(led.net_exposure(), [0, 5_060, -60])
    lev = led.leverage()
    assert lev[0] == 0 and lev[1] == pytest.approx(5_060 / 6_020) and lev[2] == np.inf
    # Missing entries (NaN or NO_PRICE) fall back to the last marks, without updating them.
    np.testing.assert_allclose(
        led.equity(np.array([NO_PRICE, 10, NO_PRICE])), [0, 960 + 5_000 + 20, 40 - 20]
    )
    np.testing.assert_allclose(led.equity(np.array([np.nan, 10.0, np.nan])), [0, 5_980, 20])
    assert led.last_mark[1] == 30.0
    np.testing.assert_allclose(
        led.sector_exposure(np.array([0, 1, 1])), [[0, 0], [5_000, 60], [0, -60]]
    )
    np.testing.assert_allclose(
        led.sector_exposure(np.array([1, 1, 0]), gross=True), [[0, 0], [0, 5_060], [0, 60]]
    )
    frame = led.accounts_frame()
    assert list(frame.columns[:4]) == ["account", "agent_type", "cash", "equity"]
    assert frame["equity"].tolist() == pytest.approx([0, 6_020, -20])
    with pytest.raises(ConfigError, match=r"marks must have shape \(3,\)"):
        led.equity(np.zeros(2))


def test_margin_calls():
    led = Ledger(max_assets=1)
    led.configure_asset(0, tick_size=1, lot_size=1)  # 1.00 per tick-lot
    a = led.add_account(100.0)  # will be long 10 @ 10 funded with 0 cash left
    b = led.add_account(1_000.0, positions={0: 10})  # flat after selling, plenty of cash
    c = led.add_account(0.0)  # empty account: never called
    d = led.add_account(50.0)  # will owe cash with no positions
    led.settle(0, make_fills([(a, b, 10, 10, BUY)]), 0, 0)
    led.settle(0, make_fills([(d, b, 10, 6, BUY), (d, b, 10, 6, SELL)]), 0, 30)  # d pays fees
    led.withdraw(d, led.cash(d))
    led.settle(0, make_fills([(d, b, 10, 1, BUY), (d, b, 10, 1, SELL)]), 0, 10)  # d now owes
    assert led.cash_units[d] < 0
    led.mark(np.array([10.0]))
    # a: equity 100, gross 100 -> fine at 50% maintenance; d owes cash with no positions.
    assert led.margin_calls(0.5).tolist() == [d]
    led.mark(np.array([6.0]))  # a: equity 60 vs 0.5 * 60
    assert led.margin_calls(0.5).tolist() == [d]
    assert led.margin_calls(1.5).tolist() == [a, d]  # 60 < 1.5 * 60
    assert led.margin_calls(0.0, np.array([0.5])).tolist() == [d]  # marks <= 0 are ignored
    led.close_account(d)
    assert led.margin_calls(1.5).tolist() == [a]
    assert c not in led.margin_calls(10.0)
    with pytest.raises(ConfigError, match="maintenance_margin must be"):
        led.margin_calls(-0.1)
    with pytest.raises(ConfigError, match="cannot be closed"):
        led.close_account(0)


# ----------------------------------------------------------------------------- risk
@pytest.fixture
def risk_ledger():
    led = Ledger(max_assets=2)
    led.configure_asset(0, tick_size=1, lot_size=1, mark_ticks=10)  # 1 currency per tick-lot
    led.configure_asset(1, tick_size=1, lot_size=1, mark_ticks=20)
    led.add_account(1_000.0, positions={0: 10}, allow_short=False, leverage_limit=1)  # 1: cash-only
    led.add_account(1_000.0, leverage_limit=2)  # 2: margin account
    led.add_account(1_000.0)  # 3: unlimited
    return led


def test_risk_codes_each(risk_ledger):
    led = risk_ledger
    assert set(RISK_REASONS) == {101, 102, 103, 104, 105, 106}
    assert led.check_order(1, 0, SELL, 10, 10) == RISK_OK
    assert led.check_order(1, 0, SELL, 11, 10) == RISK_SHORT_SALE
    assert led.check_order(1, 0, SELL, 5, 10, pending_sell_lots=6) == RISK_SHORT_SALE
    assert led.check_order(1, 0, BUY, 100, 10) == RISK_OK  # exactly the cash
    assert led.check_order(1, 0, BUY, 101, 10) == RISK_INSUFFICIENT_CASH
    assert (
        led.check_order(1, 1, BUY, 40, 20, pending_buy_notional=led.notional(1, 10, 21))
        == RISK_INSUFFICIENT_CASH
    )
    # Margin account, leverage 2, equity 1000: gross up to 2000.
    assert led.check_order(2, 0, BUY, 200, 10) == RISK_OK
    assert led.check_order(2, 0, BUY, 201, 10) == RISK_LEVERAGE
    assert led.check_order(2, 0, SELL, 200, 10) == RISK_OK  # shorting counts as gross too
    assert led.check_order(2, 0, SELL, 150, 10, pending_sell_lots=51) == RISK_LEVERAGE
    assert led.check_order(3, 0, BUY, 10**9, 10) == RISK_OK  # no limits
    led.set_position_limit(0, 100)
    assert led.check_order(3, 0, BUY, 100, 10) == RISK_OK
    assert led.check_order(3, 0, BUY, 101, 10) == RISK_POSITION_LIMIT
    assert led.check_order(3, 0, SELL, 60, 10, pending_sell_lots=41) == RISK_POSITION_LIMIT
    led.close_account(3)
    assert led.check_order(3, 1, BUY, 1, 10) == RISK_ACCOUNT_CLOSED
    for code in (
        RISK_SHORT_SALE,
        RISK_INSUFFICIENT_CASH,
        RISK_LEVERAGE,
        RISK_POSITION_LIMIT,
        RISK_ACCOUNT_CLOSED,
    ):
        assert code in RISK_REASONS


def test_risk_reducing_orders_pass_and_closed_is_reduce_only(risk_ledger):
    led = risk_ledger
    # Account 2 goes long 300 at 10 (leverage 3 > 2, e.g. after a price drop).
    led.settle(0, make_fills([(2, 3, 10, 300, BUY)]), 0, 0)
    assert led.check_order(2, 0, BUY, 1, 10) == RISK_LEVERAGE
    assert led.check_order(2, 0, SELL, 300, 10) == RISK_OK  # de-risking always allowed
    assert led.check_order(2, 0, SELL, 301, 10) == RISK_OK  # flips to -1, |pos| shrinks
    led.set_position_limit(0, 100)  # already above the new limit: reducing still passes
    assert led.check_order(2, 0, SELL, 50, 10) == RISK_OK
    assert led.check_order(3, 0, SELL, 1, 10) == RISK_POSITION_LIMIT  # -301 -> -302
    led.close_account(2)
    assert led.check_order(2, 0, SELL, 300, 10) == RISK_OK
    assert led.check_order(2, 0, SELL, 301, 10) == RISK_ACCOUNT_CLOSED
    assert led.check_order(2, 0, SELL, 200, 10, pending_sell_lots=101) == RISK_ACCOUNT_CLOSED
    assert led.check_order(2, 0, BUY, 1, 10) == RISK_ACCOUNT_CLOSED
    assert led.check_order(2, 1, SELL, 1, 10) == RISK_ACCOUNT_CLOSED  # flat in slot 1
    # A cash-only account short (shorting allowed) may always buy back, even without cash.
    c = led.add_account(0.0, leverage_limit=1)
    led.settle(0, make_fills([(c, 3, 10, 5, SELL)]), 0, 0)
    led.withdraw(c, led.cash(c))
    assert led.check_order(c, 0, BUY, 5, 10) == RISK_OK
    assert led.check_order(c, 0, BUY, 10, 10) == RISK_OK  # +5: |position| still not above 5
    assert led.check_order(c, 0, BUY, 11, 10) == RISK_INSUFFICIENT_CASH


def test_risk_leverage_uses_other_slots_marks(risk_ledger):
    led = risk_ledger
    led.settle(1, make_fills([(2, 3, 20, 50, BUY)]), 0, 0)  # 2 holds 50 of slot 1 marked at 20
    # equity 1000, gross 1000 -> only 1000 more of slot 0 at leverage 2.
    assert led.check_order(2, 0, BUY, 100, 10) == RISK_OK
    assert led.check_order(2, 0, BUY, 101, 10) == RISK_LEVERAGE
    led.mark(np.array([np.nan, 10.0]))  # slot 1 halves: equity 500, gross 500 -> 500 more
    assert led.check_order(2, 0, BUY, 50, 10) == RISK_OK
    assert led.check_order(2, 0, BUY, 51, 10) == RISK_LEVERAGE


def test_check_order_bad_input(risk_ledger):
    led = risk_ledger
    with pytest.raises(ConfigError, match="side must be BUY"):
        led.check_order(1, 0, 0, 1, 10)
    with pytest.raises(ConfigError, match=r"qty must be an integer in 1 \.\. \d+, got 0"):
        led.check_order(1, 0, BUY, 0, 10)
    with pytest.raises(
        ConfigError, match=r"price_ticks must be an integer in 1 \.\. \d+, got 10.5"
    ):
        led.check_order(1, 0, BUY, 1, 10.5)
    with pytest.raises(
        ConfigError, match=r"account must be an integer in 1 \.\. 3 \(a trading account\), got 9"
    ):
        led.check_order(9, 0, BUY, 1, 10)
    with pytest.raises(
        ConfigError, match=r"account must be an integer in 1 \.\. 3 \(a trading account\), got 0"
    ):
        led.check_order(0, 0, BUY, 1, 10)
    assert led.check_order(3, 0, BUY, 1 << 50, 10) == RISK_POSITION_LIMIT  # oversized order
    with pytest.raises(ConfigError, match="mark_ticks must be None or a finite number > 0, got -5"):
        Ledger(max_assets=1).configure_asset(0, 1, 1, mark_ticks=-5)


def make_orders(rows) -> np.ndarray:
    """rows: (owner, kind, side, qty, price)."""
    orders = np.zeros(len(rows), ORDER_DTYPE)
    for i, (o, k, s, q, p) in enumerate(rows):
        orders[i] = (i + 1, o, p, q, k, s)
    return orders


def test_check_orders_batch_matches_scalar_and_accumulates(risk_ledger):
    led = risk_ledger
    led.set_position_limit(0, 250)
    orders = make_orders(
        [
            (1, LIMIT, BUY, 60, 10),  # ok: 600 of 1000 cash
            (1, LIMIT, BUY, 50, 10),  # 1100 > 1000 with the previous one pending
            (1, LIMIT, BUY, 40, 10),  # ok: 1000
            (1, LIMIT, SELL, 8, 10),  # ok
            (1, LIMIT, SELL, 3, 10),  # short: 10 - 8 - 3 < 0
            (2, MARKET, BUY, 150, 0),  # ok at reference 10 (mark): gross 1500
            (2, MARKET, BUY, 60, 0),  # 2100 > 2000
            (3, CANCEL, 0, 0, 0),  # passes through
            (3, LIMIT, BUY, 0, 10),  # malformed: the book rejects it, not the ledger
            (3, LIMIT, SELL, 251, 10),  # position limit
        ]
    )
    codes = led.check_orders(0, orders)
    assert codes.tolist() == [0, 103, 0, 0, 101, 0, 102, 0, 0, 104]
    # Each order alone gives the scalar code.
    for o, k, s, q, p in [
        (1, LIMIT, BUY, 50, 10),
        (2, LIMIT, BUY, 60, 10),
        (3, LIMIT, SELL, 251, 10),
    ]:
        assert led.check_orders(0, make_orders([(o, k, s, q, p)]))[0] == led.check_order(
            o, 0, s, q, p
        )
    # The scratch accumulators were cleared: a repeat gives the same answer.
    assert led.check_orders(0, orders).tolist() == codes.tolist()
    # Pending arrays per account shift the limits.
    pend = np.zeros(led.n_accounts, np.int64)
    pend[1] = 401 * CASH_SCALE
    codes2 = led.check_orders(0, make_orders([(1, LIMIT, BUY, 60, 10)]), pending_buy_notional=pend)
    assert codes2.tolist() == [RISK_INSUFFICIENT_CASH]


def test_check_orders_reference_prices_and_errors():
    led = Ledger(max_assets=1)
    led.configure_asset(0, tick_size=1, lot_size=1)
    a = led.add_account(100.0, leverage_limit=1)
    buy = make_orders([(a, MARKET, BUY, 10, 0)])
    assert led.check_orders(0, buy).tolist() == [RISK_NO_REFERENCE_PRICE]
    assert led.check_orders(0, buy, buy_reference_ticks=NO_PRICE).tolist() == [
        RISK_NO_REFERENCE_PRICE
    ]
    assert led.check_orders(0, buy, buy_reference_ticks=10).tolist() == [0]
    assert led.check_orders(0, buy, buy_reference_ticks=11).tolist() == [RISK_INSUFFICIENT_CASH]
    led.mark(np.array([9.6]))
    assert led.check_orders(0, buy).tolist() == [0]  # mark rounds to 10
    assert led.check_orders(0, make_orders([])).tolist() == []
    with pytest.raises(
        ConfigError, match=r"orders\[0\]\.owner must be a trading account in 1 \.\. 1, got 0"
    ):
        led.check_orders(0, make_orders([(0, LIMIT, BUY, 1, 1)]))
    with pytest.raises(ConfigError, match="ORDER_DTYPE"):
        led.check_orders(0, np.zeros(2))
    with pytest.raises(ConfigError, match="pending_buy_lots must be a 1-d integer array"):
        led.check_orders(0, buy, pending_buy_lots=np.zeros(1, np.int64))


# ----------------------------------------------------------------------------- state
def assert_states_equal(s1: dict, s2: dict):
    assert s1.keys() == s2.keys()
    for k in s1:
        if isinstance(s1[k], np.ndarray):
            assert s1[k].dtype == s2[k].dtype and s1[k].shape == s2[k].shape, k
            np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)
        else:
            assert s1[k] == s2[k], k


def test_state_round_trip_and_continuation():
    rng = np.random.default_rng(7)
    led = three_asset_ledger(n_traders=5)
    led.settle(0, random_fills(rng, 50, led.n_accounts), -0.2, 0.5)
    led.mark(np.array([100.0, np.nan, 20.0, 3.0]))
    led.set_position_limit(1, 10_000)
    led.close_account(2)
    led.remove_asset(3, 4)
    state = led.get_state()
    plain = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    json.dumps(plain)  # everything that is not an array is plain JSON data
    copy = Ledger.from_state(state)
    assert_states_equal(copy.get_state(), state)
    fills = random_fills(rng, 40, led.n_accounts)
    for x in (led, copy):
        x.settle(1, fills, 0.1, 0.3)
        x.add_account(5.0, agent_type="late")
    assert_states_equal(copy.get_state(), led.get_state())
    assert copy.check_order(2, 0, BUY, 1, 10) == RISK_ACCOUNT_CLOSED


def test_from_state_rejects_broken_state():
    led = three_asset_ledger(n_traders=2)
    state = led.get_state()
    bad = dict(state, cash=state["cash"] + 1)
    with pytest.raises(StateError, match="breaks an invariant: cash"):
        Ledger.from_state(bad)
    bad = {k: v for k, v in state.items() if k != "positions"}
    with pytest.raises(StateError, match="missing key 'positions'"):
        Ledger.from_state(bad)
    bad = dict(state, schema="other/9")
    with pytest.raises(StateError, match="schema"):
        Ledger.from_state(bad)
    bad = dict(state, positions=state["positions"].astype(np.float64))
    with pytest.raises(StateError, match="'positions' must be int64"):
        Ledger.from_state(bad)


def test_check_names_broken_quantity():
    led = three_asset_ledger(n_traders=2)
    led._positions[1, 0] += 1
    with pytest.raises(AssertionError, match="shares: slot 0"):
        led._check()
    led._positions[1, 0] -= 1
    led._cash[0] += 1
    led._cash[1] -= 1
    with pytest.raises(AssertionError, match="fees: cash"):
        led._check()


def test_endow_shares_is_an_external_inflow_and_bad_input_changes_nothing():
    led = Ledger(max_assets=2)
    led.configure_asset(0, tick_size=1, lot_size=1, mark_ticks=10)
    acc = led.add_account(1_000.0)
    led.endow_shares(acc, 0, 25)
    assert led.position(acc, 0) == 25 and led.issued_shares(0) == 25
    led._check()
    before = (led.positions.copy(), led.issued_shares(0))
    for args, pattern in (
        ((acc, 0, -1), "lots"),
        ((acc, 1, 5), "slot 1 has no asset"),
        ((0, 0, 5), "trading account"),
        ((acc + 5, 0, 5), "account"),
    ):
        with pytest.raises(ConfigError, match=pattern):
            led.endow_shares(*args)
    assert np.array_equal(led.positions, before[0]) and led.issued_shares(0) == before[1]
    led._check()
