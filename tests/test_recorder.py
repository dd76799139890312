"""Tests of marketsim.recorder: schemas, round trips through Parquet, chunking, renames, errors.

Expected tables are built row by row in plain Python (the obvious reference) and compared with
what the recorder writes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketsim.book.constants import (
    BUY,
    CANCEL,
    FILL_DTYPE,
    IOC,
    KIND_NAMES,
    LIMIT,
    MARKET,
    REJECT_DTYPE,
    REJECT_REASONS,
    SELL,
    make_orders,
)
from marketsim.errors import ConfigError, MarketSimError
from marketsim.recorder import METADATA_KEY, TABLES, Recorder

D = pa.dictionary(pa.int32(), pa.string())
TS = pa.timestamp("ns")
# The schemas other tools rely on, written out independently of the module.
EXPECTED_SCHEMAS = {
    "trades": [
        ("step", pa.int64()),
        ("time", TS),
        ("asset", D),
        ("price", pa.float64()),
        ("qty", pa.int64()),
        ("aggressor", pa.int8()),
        ("buyer", pa.int64()),
        ("seller", pa.int64()),
    ],
    "quotes": [
        ("step", pa.int64()),
        ("time", TS),
        ("asset", D),
        ("bid", pa.float64()),
        ("ask", pa.float64()),
        ("bid_qty", pa.int64()),
        ("ask_qty", pa.int64()),
        ("mid", pa.float64()),
        ("last", pa.float64()),
    ],
    "accounts": [
        ("step", pa.int64()),
        ("account", pa.int64()),
        ("agent_type", D),
        ("cash", pa.float64()),
        ("equity", pa.float64()),
    ],
    "positions": [
        ("step", pa.int64()),
        ("account", pa.int64()),
        ("asset", D),
        ("qty", pa.int64()),
    ],
    "events": [
        ("step", pa.int64()),
        ("time", TS),
        ("kind", D),
        ("asset", D),
        ("account", pa.int64()),
        ("detail", pa.string()),
    ],
    "orders": [
        ("step", pa.int64()),
        ("time", TS),
        ("asset", D),
        ("account", pa.int64()),
        ("kind", D),
        ("side", pa.int8()),
        ("price", pa.float64()),
        ("qty", pa.int64()),
        ("order_id", pa.int64()),
        ("status", D),
    ],
    "l2": [
        ("step", pa.int64()),
        ("time", TS),
        ("asset", D),
        ("side", pa.int8()),
        ("level", pa.int32()),
        ("price", pa.float64()),
        ("qty", pa.int64()),
    ],
}
T0 = 1_700_000_000 * 10**9  # a market time in ns
META = {"scenario_hash": "abc123", "seed": 7, "version": "0.1.0"}


def columns(df: pd.DataFrame) -> dict[str, list]:
    """DataFrame -> plain lists (categoricals as str, timestamps as int ns)."""
    out = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            out[c] = s.astype("int64").tolist()
        elif isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s):
            out[c] = [str(v) for v in s.tolist()]
        else:
            out[c] = s.tolist()
    return out


def assert_rows(df: pd.DataFrame, expected: list[dict]) -> None:
    """Compare a table with a list of row dicts (NaN equals NaN)."""
    got = columns(df)
    assert len(df) == len(expected)
    for c, vals in got.items():
        want = [r[c] for r in expected]
        for i, (g, w) in enumerate(zip(vals, want, strict=True)):
            if isinstance(w, float) and math.isnan(w):
                assert isinstance(g, float) and math.isnan(g), (c, i, g, w)
            else:
                assert g == w, (c, i, g, w)


class Reference:
    """Records the same calls as plain row dicts: the obvious implementation."""

    def __init__(self, names):
        self.names = list(names)
        self.rows = {t: [] for t in TABLES}

    def trades(self, step, t, slot, price, qty, aggr, buyer, seller):
        for p, q, a, b, s in zip(price, qty, aggr, buyer, seller, strict=True):
            self.rows["trades"].append(
                dict(
                    step=step,
                    time=t,
                    asset=self.names[slot],
                    price=float(p),
                    qty=int(q),
                    aggressor=int(a),
                    buyer=int(b),
                    seller=int(s),
                )
            )

    def quotes(self, step, t, slots, bid, ask, bq, aq, last):
        for sl, b, a, x, y, la in zip(slots, bid, ask, bq, aq, last, strict=True):
            b = float("nan") if x == 0 or math.isnan(b) else float(b)
            a = float("nan") if y == 0 or math.isnan(a) else float(a)
            self.rows["quotes"].append(
                dict(
                    step=step,
                    time=t,
                    asset=self.names[sl],
                    bid=b,
                    ask=a,
                    bid_qty=0 if math.isnan(b) else int(x),
                    ask_qty=0 if math.isnan(a) else int(y),
                    mid=(b + a) / 2,
                    last=float(la),
                )
            )

    def accounts(self, step, account, types, cash, equity):
        for ac, ty, c, e in zip(account, types, cash, equity, strict=True):
            self.rows["accounts"].append(
                dict(step=step, account=int(ac), agent_type=ty, cash=float(c), equity=float(e))
            )

    def positions(self, step, account, slot, qty):
        for ac, sl, q in zip(account, slot, qty, strict=True):
            if q != 0:
                self.rows["positions"].append(
                    dict(step=step, account=int(ac), asset=self.names[sl], qty=int(q))
                )

    def event(self, step, t, kind, asset, account, detail):
        self.rows["events"].append(
            dict(step=step, time=t, kind=kind, asset=asset, account=account, detail=detail)
        )


def random_run(rec: Recorder, ref: Reference, rng: np.random.Generator, steps: int) -> None:
    """Drive recorder and reference with the same seeded random calls (all core tables)."""
    n_slots = len(ref.names)
    types = ["noise", "value", "mm"]
    for step in range(steps):
        t = T0 + step * 10**9
        for slot in range(n_slots):
            k = int(rng.integers(0, 6))
            args = (
                np.round(rng.uniform(90, 110, k), 2),
                rng.integers(1, 50, k),
                rng.choice(np.array([1, -1], dtype=np.int8), k),
                rng.integers(0, 10, k),
                rng.integers(0, 10, k),
            )
            rec.trades(step, t, slot, *args)
            ref.trades(step, t, slot, *args)
        slots = np.arange(n_slots)
        bid = np.where(rng.random(n_slots) < 0.2, np.nan, rng.uniform(90, 100, n_slots))
        ask = rng.uniform(100, 110, n_slots)
        bq = rng.integers(0, 20, n_slots)
        aq = rng.integers(0, 20, n_slots)
        last = np.where(rng.random(n_slots) < 0.3, np.nan, rng.uniform(90, 110, n_slots))
        rec.quotes(step, t, slots, bid.copy(), ask.copy(), bq.copy(), aq.copy(), last)
        ref.quotes(step, t, slots, bid, ask, bq, aq, last)
        acc = np.arange(5)
        codes = rng.integers(0, 3, 5)
        cash, eq = rng.normal(size=5), rng.normal(size=5)
        rec.accounts(step, acc, codes, cash, eq)
        ref.accounts(step, acc, [types[c] for c in codes], cash, eq)
        a_ids, a_slots = np.repeat(acc, n_slots), np.tile(slots, 5)
        qty = rng.integers(-3, 4, len(a_ids))
        rec.positions(step, a_ids, a_slots, qty)
        ref.positions(step, a_ids, a_slots, qty)
        if step % 3 == 0:
            detail = {"step": step, "why": "test"}
            rec.event(step, t, "liquidation", ref.names[0], 3, detail)
            ref.event(
                step, t, "liquidation", ref.names[0], 3, json.dumps(detail, separators=(",", ":"))
            )
            rec.event(step, t, "reject")
            ref.event(step, t, "reject", "", -1, "{}")


def test_file_round_trip_every_core_table_across_chunks(tmp_path):
    rng = np.random.default_rng(1)
    names = ["AAA", "BBB"]
    types = ["noise", "value", "mm"]
    rec = Recorder(tmp_path, names, chunk_rows=7, metadata=META, agent_types=types)
    ref = Reference(names)
    random_run(rec, ref, rng, steps=20)
    counts = rec.counts
    rec.close()
    for table in ("trades", "quotes", "accounts", "positions", "events"):
        path = tmp_path / f"{table}.parquet"
        f = pq.ParquetFile(path)
        assert f.schema_arrow.remove_metadata() == pa.schema(EXPECTED_SCHEMAS[table])
        n = len(ref.rows[table])
        assert counts[table] == n and f.metadata.num_rows == n
        sizes = [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)]
        assert sizes == [7] * (n // 7) + ([n % 7] if n % 7 else [])  # one row group per chunk
        assert_rows(pd.read_parquet(path), ref.rows[table])
        assert_rows(rec.frame(table), ref.rows[table])  # frame() after close reads the file


def test_memory_mode_matches_reference_and_buffers_are_not_aliased():
    rng = np.random.default_rng(2)
    names = ["X", "Y", "Z"]
    rec = Recorder(None, names, chunk_rows=5, agent_types=["noise", "value", "mm"])
    ref = Reference(names)
    random_run(rec, ref, rng, steps=15)
    for table in ("trades", "quotes", "accounts", "positions", "events"):
        assert_rows(rec.frame(table), ref.rows[table])  # flushed chunks + partial buffer
    rec.close()
    for table in ("trades", "quotes", "accounts", "positions", "events"):
        assert_rows(rec.frame(table), ref.rows[table])
    assert rec.arrow("trades").schema.remove_metadata() == pa.schema(EXPECTED_SCHEMAS["trades"])


def test_metadata_on_every_file_including_empty_and_optional_tables(tmp_path):
    with Recorder(tmp_path, ["A"], metadata=META, record_orders=True, l2_every=5) as rec:
        rec.trades(0, T0, 0, np.array([1.0]), np.array([1]), np.array([1]), [0], [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{t}.parquet" for t in TABLES)
    for table in TABLES:
        path = tmp_path / f"{table}.parquet"
        assert json.loads(pq.read_metadata(path).metadata[METADATA_KEY]) == META
        assert pq.read_schema(path).remove_metadata() == pa.schema(EXPECTED_SCHEMAS[table])
    assert pq.read_table(tmp_path / "quotes.parquet").num_rows == 0
    assert pq.read_table(tmp_path / "trades.parquet").num_rows == 1
    assert json.loads(rec.arrow("trades").schema.metadata[METADATA_KEY]) == META


def test_optional_tables_absent_unless_enabled(tmp_path):
    Recorder(tmp_path, ["A"]).close()
    assert sorted(p.stem for p in tmp_path.iterdir()) == sorted(
        ["trades", "quotes", "accounts", "positions", "events"]
    )


def test_quotes_nan_semantics_for_empty_sides():
    rec = Recorder(None, ["A", "B", "C", "D"])
    nan = np.nan
    rec.quotes(
        3,
        T0,
        np.array([0, 1, 2, 3]),
        np.array([99.0, nan, 99.0, 99.5]),  # B: no bid price; C: bid price but qty 0
        np.array([101.0, 101.0, nan, 100.5]),
        np.array([5, 5, 0, 2]),
        np.array([7, 7, 3, 0]),  # C: ask NaN with qty 3; D: ask qty 0
        np.array([nan, 100.0, 100.0, 100.0]),
    )
    df = rec.frame("quotes")
    np.testing.assert_array_equal(df["bid"], [99.0, nan, nan, 99.5])
    np.testing.assert_array_equal(df["ask"], [101.0, 101.0, nan, nan])
    assert df["bid_qty"].tolist() == [5, 0, 0, 2]
    assert df["ask_qty"].tolist() == [7, 7, 0, 0]
    np.testing.assert_array_equal(df["mid"], [100.0, nan, nan, nan])
    np.testing.assert_array_equal(df["last"], [nan, 100.0, 100.0, 100.0])
    assert columns(df)["asset"] == ["A", "B", "C", "D"]


def test_quotes_accepts_one_int_slot_with_scalars():
    rec = Recorder(None, ["A", "B"])
    rec.quotes(1, T0, 1, 99.0, 101.0, 2, 3, np.nan)
    assert_rows(
        rec.frame("quotes"),
        [
            dict(step=1, time=T0, asset="B", bid=99.0, ask=101.0, bid_qty=2, ask_qty=3)
            | dict(mid=100.0, last=float("nan"))
        ],
    )


def test_asset_renamed_mid_run_keeps_old_names_on_earlier_rows(tmp_path):
    rec = Recorder(tmp_path, ["OLD", "KEEP", ""], chunk_rows=4)
    one = (np.array([1.0]), np.array([1]), np.array([1]), np.array([0]), np.array([1]))
    for step in range(3):  # buffered, some flushed: slots resolved with the old names
        rec.trades(step, T0, 0, *one)
        rec.quotes(step, T0, np.array([0, 1]), np.ones(2), np.ones(2), [1, 1], [1, 1], [1.0, 1])
        rec.positions(step, [5], [0], [2])
    rec.set_asset_name(0, "")  # asset removed
    with pytest.raises(ConfigError, match=r"slot 0 is free"):
        rec.trades(3, T0, 0, *one)
    rec.set_asset_name(2, "OLD")  # the name may come back in another slot
    rec.set_asset_name(0, "NEW")
    for step in range(3, 5):
        rec.trades(step, T0, 0, *one)
        rec.quotes(step, T0, np.array([0, 2]), np.ones(2), np.ones(2), [1, 1], [1, 1], [1.0, 1])
        rec.positions(step, [5], [2], [2])
    assert rec.asset_names == ["NEW", "KEEP", "OLD"]
    rec.close()
    assert columns(rec.frame("trades"))["asset"] == ["OLD"] * 3 + ["NEW"] * 2
    assert columns(rec.frame("quotes"))["asset"] == ["OLD", "KEEP"] * 3 + ["NEW", "OLD"] * 2
    assert columns(rec.frame("positions"))["asset"] == ["OLD"] * 5


def test_rename_errors():
    rec = Recorder(None, ["A", "B"])
    with pytest.raises(ConfigError, match=r"name 'B' is already used by slot 1"):
        rec.set_asset_name(0, "B")
    with pytest.raises(ConfigError, match=r"slot must be an int in \[0, 2\)"):
        rec.set_asset_name(2, "C")
    rec.quotes(0, T0, np.array([0, 1]), np.ones(2), np.ones(2), [1, 1], [1, 1], [1.0, 1])
    rec.set_asset_name(1, "")  # pending quotes of slot 1 resolve to "B" first
    rec.quotes(1, T0, np.array([1]), np.ones(1), np.ones(1), [1], [1], [1.0])  # slot 1 is free
    with pytest.raises(ConfigError, match=r"quotes\(\): slot 1 was free"):
        rec.frame("quotes")
    with pytest.raises(ConfigError, match=r"repeated: \['A'\]"):
        Recorder(None, ["A", "A"])


def test_close_is_idempotent_and_appends_after_close_raise(tmp_path):
    rec = Recorder(tmp_path, ["A"], chunk_rows=2)
    rec.trades(0, T0, 0, np.array([1.0]), np.array([1]), np.array([1]), [0], [1])
    rec.close()
    mtime = (tmp_path / "trades.parquet").stat().st_mtime_ns
    rec.close()
    rec.flush()
    assert rec.closed and (tmp_path / "trades.parquet").stat().st_mtime_ns == mtime
    with pytest.raises(MarketSimError, match="recorder is closed"):
        rec.trades(1, T0, 0, np.array([1.0]), np.array([1]), np.array([1]), [0], [1])
    assert rec.counts["trades"] == 1


def test_context_manager_closes_on_error(tmp_path):
    with pytest.raises(RuntimeError), Recorder(tmp_path, ["A"]) as rec:
        rec.event(0, T0, "asset_added", "A")
        raise RuntimeError("boom")
    assert rec.closed
    assert pq.read_table(tmp_path / "events.parquet").num_rows == 1


def test_frame_mid_run_in_file_mode_then_continue(tmp_path):
    rec = Recorder(tmp_path, ["A"], chunk_rows=3)
    ref = Reference(["A"])
    for step in range(10):
        args = (np.array([float(step)]), np.array([step + 1]), np.array([1]), [1], [2])
        rec.trades(step, T0 + step, 0, *args)
        ref.trades(step, T0 + step, 0, *args)
        if step in (4, 7):
            assert_rows(rec.frame("trades"), ref.rows["trades"])
    rec.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "trades" in p.name) == ["trades.parquet"]
    assert_rows(pd.read_parquet(tmp_path / "trades.parquet"), ref.rows["trades"])


def test_large_append_spans_several_chunks(tmp_path):
    n = 25
    acc = np.arange(n)
    rec = Recorder(tmp_path, ["A"], chunk_rows=4)
    assert rec.agent_type_code("noise") == 0
    rec.accounts(9, acc, 0, acc * 1.5, acc * 2.0)  # scalar int code broadcast
    rec.close()
    df = pd.read_parquet(tmp_path / "accounts.parquet")
    assert df["account"].tolist() == acc.tolist() and df["equity"].tolist() == (acc * 2.0).tolist()
    assert (df["step"] == 9).all() and set(df["agent_type"].astype(str)) == {"noise"}
    assert pq.ParquetFile(tmp_path / "accounts.parquet").num_row_groups == 7


def test_accounts_agent_type_names_and_codes():
    rec = Recorder(None, ["A"], agent_types=["noise"])
    rec.accounts(0, [1, 2], ["mm", "noise"], [1.0, 2.0], [3.0, 4.0])
    mm = rec.agent_type_code("mm")
    rec.accounts(1, np.array([1, 2]), np.array([mm, 0]), np.zeros(2), np.zeros(2))
    rec.accounts(2, np.array([3]), "value", np.zeros(1), np.zeros(1))
    assert columns(rec.frame("accounts"))["agent_type"] == ["mm", "noise", "mm", "noise", "value"]
    rec.accounts(3, np.array([1]), np.array([9]), np.zeros(1), np.zeros(1))
    with pytest.raises(ConfigError, match=r"column 'agent_type' has value 9 at step 3"):
        rec.flush()


def test_positions_drop_zero_rows_and_empty_calls_record_nothing():
    rec = Recorder(None, ["A", "B"])
    rec.positions(0, np.array([1, 2, 3]), np.array([0, 1, 1]), np.array([0, 0, 0]))
    rec.trades(0, T0, 0, np.array([]), np.array([], np.int64), 1, np.array([], int), [])
    rec.quotes(0, T0, np.array([], np.int64), [], [], [], [], [])
    assert rec.counts == dict(trades=0, quotes=0, accounts=0, positions=0, events=0)
    rec.positions(1, np.array([1, 2]), np.array([0, 1]), np.array([4, -4]))
    assert columns(rec.frame("positions")) == dict(
        step=[1, 1], account=[1, 2], asset=["A", "B"], qty=[4, -4]
    )


def test_event_asset_by_slot_detail_and_errors():
    rec = Recorder(None, ["A", "B"])
    rec.event(5, T0, "asset_added", 1, detail={"tick": 0.01, "name": "B"})
    rec.event(6, T0 + 1, "liquidation", account=4)
    assert_rows(
        rec.frame("events"),
        [
            dict(step=5, time=T0, kind="asset_added", asset="B", account=-1)
            | dict(detail='{"name":"B","tick":0.01}'),
            dict(step=6, time=T0 + 1, kind="liquidation", asset="", account=4, detail="{}"),
        ],
    )
    with pytest.raises(ConfigError, match="detail must be JSON-able"):
        rec.event(7, T0, "reject", detail={"x": object()})
    with pytest.raises(ConfigError, match="kind must be a non-empty str"):
        rec.event(7, T0, "")
    with pytest.raises(ConfigError, match="step must be an int"):
        rec.event(7.5, T0, "x")


def test_orders_and_trades_from_book_arrays():
    rec = Recorder(None, ["A"], record_orders=True)
    batch = make_orders(4)
    batch["order_id"] = [10, 11, 12, 13]
    batch["owner"] = [1, 2, 3, 4]
    batch["price"] = [100, 0, 250, 101]
    batch["qty"] = [5, 6, 0, 8]
    batch["kind"] = [LIMIT, MARKET, LIMIT, IOC]
    batch["side"] = [BUY, SELL, BUY, SELL]
    rejects = np.zeros(1, dtype=REJECT_DTYPE)
    rejects[0] = (2, 2)  # BAD_QTY
    assert rec.orders_from_batch(3, T0, 0, batch, 0.5, rejects)
    nan = float("nan")
    assert columns(rec.frame("orders")) | {"price": None} == dict(
        step=[3] * 4,
        time=[T0] * 4,
        asset=["A"] * 4,
        account=[1, 2, 3, 4],
        kind=[KIND_NAMES[k] for k in (LIMIT, MARKET, LIMIT, IOC)],
        side=[1, -1, 1, -1],
        price=None,
        qty=[5, 6, 0, 8],
        order_id=[10, 11, 12, 13],
        status=["ACCEPTED", "ACCEPTED", REJECT_REASONS[2], "ACCEPTED"],
    )
    np.testing.assert_array_equal(rec.frame("orders")["price"], [50.0, nan, 125.0, 50.5])

    fills = np.zeros(2, dtype=FILL_DTYPE)
    fills["price"] = [100, 102]
    fills["qty"] = [3, 4]
    fills["taker_side"] = [BUY, SELL]
    fills["taker_owner"] = [7, 8]
    fills["maker_owner"] = [1, 2]
    rec.trades_from_fills(4, T0, 0, fills, 0.01)
    got = columns(rec.frame("trades"))
    assert got["buyer"] == [7, 2] and got["seller"] == [1, 8] and got["aggressor"] == [1, -1]
    assert got["price"] == [1.0, 1.02] and got["qty"] == [3, 4]
    with pytest.raises(ConfigError, match="FILL_DTYPE"):
        rec.trades_from_fills(4, T0, 0, batch, 0.01)
    rec.orders(5, T0, 0, [1], [CANCEL], [0], [nan], [0], [10], [999])  # book codes 1-8 and risk codes 101-106 are valid
    with pytest.raises(ConfigError, match=r"column 'status' has value 999 at step 5"):
        rec.frame("orders")


def test_orders_and_l2_are_noops_when_disabled_or_not_due():
    rec = Recorder(None, ["A"], l2_every=3)
    assert not rec.orders(0, T0, 0, [1], [0], [1], [1.0], [1], [1])
    assert [rec.l2_due(s) for s in range(7)] == [True, False, False, True, False, False, True]
    assert not rec.l2(1, T0, 0, [1.0], [1], [2.0], [1])
    assert rec.l2(3, T0, 0, np.array([99.0, 98.0, 0.0]), np.array([4, 2, 0]), [101.0], [6])
    assert columns(rec.frame("l2")) == dict(
        step=[3, 3, 3],
        time=[T0] * 3,
        asset=["A"] * 3,
        side=[1, 1, -1],
        level=[0, 1, 0],
        price=[99.0, 98.0, 101.0],
        qty=[4, 2, 6],
    )
    with pytest.raises(ConfigError, match=r"table 'orders' is disabled; .*record_orders=True"):
        rec.frame("orders")
    assert not Recorder(None, ["A"]).l2_due(0)


def test_mismatched_lengths_name_the_argument_and_lengths():
    rec = Recorder(None, ["A", "B"])
    p3 = np.array([1.0, 2.0, 3.0])
    i3 = np.array([1, 2, 3])
    with pytest.raises(ConfigError, match=r"trades\(\): argument 'buyer' has shape \(2,\) but "):
        rec.trades(0, T0, 0, p3, i3, i3, np.array([1, 2]), i3)
    with pytest.raises(ConfigError, match=r"argument 'qty' has shape \(1,\) but 'price' has "):
        rec.trades(0, T0, 0, p3, np.array([1]), i3, i3, i3)  # no silent broadcast of length 1
    with pytest.raises(ConfigError, match=r"'seller' has length 2 but 'price' has length 3"):
        rec.trades(0, T0, 0, p3, i3, 1, i3, [4, 5])
    with pytest.raises(ConfigError, match=r"quotes\(\): argument 'last' has shape \(1,\) but "):
        rec.quotes(0, T0, np.array([0, 1]), np.ones(2), np.ones(2), [1, 1], [1, 1], np.ones(1))
    with pytest.raises(ConfigError, match=r"accounts\(\): argument 'equity' has length 1 but"):
        rec.accounts(0, [1, 2], [0, 0], [1.0, 2.0], [1.0])
    with pytest.raises(ConfigError, match=r"positions\(\): argument 'qty' has shape \(3,\)"):
        rec.positions(0, np.array([1, 2]), np.array([0, 0]), np.array([1, 2, 3]))
    with pytest.raises(ConfigError, match=r"argument 'price' must be 1-D, got shape \(3, 1\)"):
        rec.trades(0, T0, 0, p3[:, None], i3, i3, i3, i3)
    assert rec.counts["trades"] == 0 and rec.counts["quotes"] == 0  # nothing half-written


def test_bad_values_raise_with_the_fix():
    rec = Recorder(None, ["A"])
    i1 = np.array([1])
    with pytest.raises(ConfigError, match=r"argument 'qty' must hold integers, got float64"):
        rec.trades(0, T0, 0, np.array([1.0]), np.array([1.5]), i1, i1, i1)
    with pytest.raises(ConfigError, match=r"slot must be an int in \[0, 1\) .* got 1"):
        rec.trades(0, T0, 1, np.array([1.0]), i1, i1, i1, i1)
    with pytest.raises(ConfigError, match=r"slot must be an int in \[0, 1\) .* got -1"):
        rec.trades(0, T0, -1, np.array([1.0]), i1, i1, i1, i1)
    rec.trades(4, T0, 0, np.array([1.0, 2.0]), np.array([1, 1]), np.array([1, 0]), [1, 1], [2, 2])
    with pytest.raises(ConfigError, match=r"column 'aggressor' has value 0 at step 4.*-1 \(sell"):
        rec.flush()
    rec = Recorder(None, ["A"])
    rec.quotes(2, T0, np.array([5]), np.ones(1), np.ones(1), i1, i1, np.ones(1))
    with pytest.raises(ConfigError, match=r"quotes\(\): slot 5 is out of range \[0, 1\)"):
        rec.frame("quotes")
    rec = Recorder(None, ["A"])
    rec.trades(1.5, T0, 0, np.array([1.0]), i1, i1, i1, i1)
    with pytest.raises(ConfigError, match=r"argument 'step' must be an int .* got 1.5"):
        rec.flush()


def test_unknown_table_and_bad_constructor_args():
    rec = Recorder(None, ["A"])
    with pytest.raises(ConfigError, match=r"unknown recorder table 'trade'; enabled tables: "):
        rec.frame("trade")
    with pytest.raises(ConfigError, match="trades, quotes, accounts, positions, events"):
        rec.frame("nope")
    with pytest.raises(ConfigError, match="metadata must be a JSON-able dict"):
        Recorder(None, ["A"], metadata={"x": object()})
    with pytest.raises(ConfigError, match=r"chunk_rows must be an int >= 1, got 0"):
        Recorder(None, ["A"], chunk_rows=0)
    with pytest.raises(ConfigError, match=r"l2_every must be an int >= 0"):
        Recorder(None, ["A"], l2_every=-1)
    with pytest.raises(ConfigError, match="asset_names must be a sequence of str"):
        Recorder(None, "AB")
    with pytest.raises(ConfigError, match="keeps its tables in memory"):
        rec.path("trades")


@settings(max_examples=40, deadline=None)
@given(
    chunk_rows=st.integers(1, 9),
    sizes=st.lists(st.integers(0, 12), max_size=12),
    flush_at=st.sets(st.integers(0, 11)),
    memory=st.booleans(),
)
def test_chunking_property(tmp_path_factory, chunk_rows, sizes, flush_at, memory):
    """Any call sizes, chunk size and explicit flushes give the concatenation of the calls."""
    out = None if memory else tmp_path_factory.mktemp("rec")
    rec = Recorder(out, ["A", "B"], chunk_rows=chunk_rows)
    ref = Reference(["A", "B"])
    row = 0
    for i, k in enumerate(sizes):
        ids = np.arange(row, row + k)
        args = (ids * 0.5, ids + 1, np.where(ids % 2 == 0, 1, -1), ids, ids + 100)
        rec.trades(i, T0 + i, i % 2, *args)
        ref.trades(i, T0 + i, i % 2, *args)
        row += k
        if i in flush_at:
            rec.flush()
    rec.close()
    assert rec.counts["trades"] == row
    assert_rows(rec.frame("trades"), ref.rows["trades"])
    if out is not None:
        f = pq.ParquetFile(out / "trades.parquet")
        assert all(f.metadata.row_group(i).num_rows <= chunk_rows for i in range(f.num_row_groups))
