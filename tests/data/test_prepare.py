"""Tests of marketsim.data.prepare: layouts, calendars, masks, errors, hashes and the CLI.

Expected values come from slow obvious Python loops over the raw rows (dicts keyed by
(time, ticker)), never from the code under test.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from marketsim.data import add_data_parser, load_prepared, prepare, run_prepare
from marketsim.data.windows import sha256_file
from marketsim.errors import ConfigError, DataError

FIELDS = ("open", "high", "low", "close", "volume")
HEADER = "time,ticker,open,high,low,close,volume"
T0 = pd.Timestamp("2024-01-02 09:30", tz="UTC")


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def random_bars(rng: np.random.Generator, n_times=30, tickers=("BBB", "AAA", "CCC"), p_drop=0.15):
    """Long bars with dropped rows and a few empty volume cells; dict (iso, ticker) -> values."""
    rows = {}
    for i in range(n_times):
        t = (T0 + pd.Timedelta(minutes=i)).isoformat()
        for k in tickers:
            if rng.random() < p_drop:
                continue
            o, c = (round(float(x), 2) for x in rng.uniform(90, 110, 2))
            h = round(max(o, c) + float(rng.uniform(0, 1)), 2)
            lo = round(min(o, c) - float(rng.uniform(0, 1)), 2)
            v = float(rng.integers(0, 1000)) if rng.random() > 0.05 else math.nan
            rows[(t, k)] = (o, h, lo, c, v)
    return rows


def bars_csv(path: Path, rows: dict, rng: np.random.Generator | None = None) -> Path:
    items = list(rows.items())
    if rng is not None:
        items = [items[i] for i in rng.permutation(len(items))]
    lines = [HEADER]
    for (t, k), vals in items:
        cells = ["" if math.isnan(v) else repr(v) for v in vals]
        lines.append(",".join([t, k, *cells]))
    return write(path, lines)


def reference_dense(rows: dict):
    times = sorted({pd.Timestamp(t).value for t, _ in rows})
    tickers = sorted({k for _, k in rows})
    dense = np.full((len(times), len(tickers), 5), np.nan)
    for (t, k), vals in rows.items():
        dense[times.index(pd.Timestamp(t).value), tickers.index(k)] = vals
    return np.array(times, dtype=np.int64), tickers, dense


def reference_windows(values: np.ndarray, w: int) -> np.ndarray:
    t_len, n, f = values.shape
    out = np.full((t_len, n, w, f), np.nan, dtype=np.float32)
    for t in range(t_len):
        for j in range(w):
            src = t - w + 1 + j
            if src >= 0:
                out[t, :, j] = values[src]
    return out


# ------------------------------------------------------------------------------ round trips
def test_round_trip_long_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = random_bars(rng)
    src = bars_csv(tmp_path / "bars.csv", rows, rng)
    m = prepare([src], tmp_path / "out", window=4)
    times, tickers, dense = reference_dense(rows)
    assert m.tickers == tuple(tickers) == ("AAA", "BBB", "CCC")
    assert m.fields == FIELDS and m.window == 4 and m.n_times == len(times)
    assert m.calendar["kind"] == "union" and m.calendar["start"] == T0.isoformat()
    assert m.rows == {
        "source_rows": len(rows),
        "bars": len(times) * 3,
        "valid_bars": int(np.isfinite(dense).all(axis=2).sum()),
    }
    assert m.sources[0]["layout"] == "bars" and m.sources[0]["sha256"] == sha256_file(src)

    d = load_prepared(tmp_path / "out")
    assert isinstance(d.values, np.memmap) and isinstance(d.windows, np.memmap)
    np.testing.assert_array_equal(d.times, times)
    np.testing.assert_array_equal(d.values, dense.astype(np.float32))
    np.testing.assert_array_equal(d.mask, np.isfinite(dense).all(axis=2))
    np.testing.assert_array_equal(d.windows, reference_windows(dense.astype(np.float32), 4))
    # bars.parquet keeps the exact float64 input, on the full time x ticker grid
    bars = d.bars()
    assert len(bars) == len(times) * 3
    assert list(bars.columns) == ["time", "ticker", *FIELDS, "valid"]
    got = bars[list(FIELDS)].to_numpy().reshape(dense.shape)
    np.testing.assert_array_equal(got, dense)
    np.testing.assert_array_equal(d.field("close"), dense[:, :, 3])
    assert bars["ticker"].astype(str).tolist()[:3] == ["AAA", "BBB", "CCC"]


def test_csv_parquet_and_wide_layouts_agree(tmp_path):
    rng = np.random.default_rng(1)
    rows = random_bars(rng, n_times=12, tickers=("AAA", "BRK.B"), p_drop=0.2)
    a = prepare(bars_csv(tmp_path / "a.csv", rows), tmp_path / "a", window=3)
    # Parquet with a real timestamp column (tz-aware) and numeric columns
    recs = [(pd.Timestamp(t), k, *v) for (t, k), v in rows.items()]
    frame = pd.DataFrame(recs, columns=["time", "ticker", *FIELDS])
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "b.parquet")
    b = prepare(tmp_path / "b.parquet", tmp_path / "b", window=3)
    # wide: time, <ticker>.<field>; missing bars are empty cells
    times = sorted({t for t, _ in rows})
    cols = [f"{k}.{f}" for k in ("AAA", "BRK.B") for f in FIELDS]
    lines = ["time," + ",".join(cols)]
    for t in times:
        cells = []
        for k in ("AAA", "BRK.B"):
            vals = rows.get((t, k), (math.nan,) * 5)
            cells += ["" if math.isnan(v) else repr(v) for v in vals]
        lines.append(",".join([t, *cells]))
    c = prepare(write(tmp_path / "c.csv", lines), tmp_path / "c", window=3)
    for m in (b, c):
        for name in ("values.npy", "mask.npy", "times.npy", "windows.npy"):
            assert m.files[name]["sha256"] == a.files[name]["sha256"], name
    assert a.tickers == b.tickers == c.tickers == ("AAA", "BRK.B")


def test_bare_ticker_wide_columns_are_close_prices(tmp_path):
    src = write(tmp_path / "w.csv", ["date,AAA,BBB", "2024-01-02,10,20", "2024-01-03,,21"])
    prepare(src, tmp_path / "o", window=2, fields=["close"])
    d = load_prepared(tmp_path / "o")
    np.testing.assert_array_equal(d.values[:, :, 0], [[10, 20], [np.nan, 21]])
    np.testing.assert_array_equal(d.mask, [[True, True], [False, True]])
    with pytest.raises(DataError, match=r"wide layout: ticker 'AAA' has no column for field"):
        prepare(src, tmp_path / "o2", fields=["close", "volume"])


def test_times_with_offsets_and_split_files(tmp_path):
    a = write(tmp_path / "a.csv", [HEADER, "2024-01-02T10:30:00+01:00,AAA,1,1,1,1,1"])
    b = write(tmp_path / "b.csv", [HEADER, "2024-01-02T09:31:00Z,AAA,2,2,2,2,2"])
    prepare([a, b], tmp_path / "o", window=1)
    d = load_prepared(tmp_path / "o")
    assert list(d.timestamps) == [T0, T0 + pd.Timedelta(minutes=1)]
    np.testing.assert_array_equal(d.values[:, 0, 3], [1, 2])


def test_directory_input_and_deterministic_output(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = random_bars(np.random.default_rng(2), n_times=8)
    bars_csv(raw / "x.csv", rows)
    m1 = prepare(raw, tmp_path / "o1", window=2)
    m2 = prepare([raw / "x.csv"], tmp_path / "o2", window=2)
    assert {k: v["sha256"] for k, v in m1.files.items()} == {
        k: v["sha256"] for k, v in m2.files.items()
    }


# ------------------------------------------------------------------------------ masks
def test_gaps_halts_and_holidays_are_masked_never_filled(tmp_path):
    days = ["2024-01-10", "2024-01-11", "2024-01-12", "2024-01-16", "2024-01-17"]  # 15th: holiday
    lines = ["date,ticker,close,volume"]
    for i, day in enumerate(days):
        for k in ("AAA", "BBB"):
            if k == "BBB" and day == "2024-01-12":
                continue  # a halt: BBB has no bar that day
            lines.append(f"{day},{k},{100 + i},{10 * (i + 1)}")
    src = write(tmp_path / "d.csv", lines)
    fields = ("close", "volume")
    union = prepare(src, tmp_path / "u", window=3, fields=fields)
    assert union.n_times == 5  # the union calendar has no row for the holiday
    grid = prepare(src, tmp_path / "g", window=3, fields=fields, calendar="B")
    assert grid.n_times == 6 and grid.calendar["frequency"] == "B"
    d = load_prepared(tmp_path / "g")
    ts = [t.strftime("%Y-%m-%d") for t in d.timestamps]
    assert ts == [
        "2024-01-10",
        "2024-01-11",
        "2024-01-12",
        "2024-01-15",
        "2024-01-16",
        "2024-01-17",
    ]
    expect_mask = np.array([[1, 1], [1, 1], [1, 0], [0, 0], [1, 1], [1, 1]], dtype=bool)
    np.testing.assert_array_equal(d.mask, expect_mask)
    assert np.isnan(d.values[~expect_mask]).all()  # not zero, not forward-filled
    assert d.values[3, 0, 0] != d.values[2, 0, 0] or np.isnan(d.values[3, 0, 0])
    x, m = d.window(4)
    np.testing.assert_array_equal(m, expect_mask[2:5].T)
    assert np.isnan(x[1, 0]).all() and np.isnan(x[:, 1]).all()
    bars = d.bars()
    assert bars["valid"].tolist() == expect_mask.reshape(-1).tolist()


def test_explicit_calendar_and_off_calendar_bar(tmp_path):
    src = write(tmp_path / "a.csv", [HEADER, "2024-01-02 09:30,AAA,1,1,1,1,1"])
    cal = ["2024-01-02 09:29", "2024-01-02 09:30", "2024-01-02 09:31"]
    m = prepare(src, tmp_path / "o", window=1, calendar=cal)
    assert m.calendar["kind"] == "explicit" and m.n_times == 3
    np.testing.assert_array_equal(load_prepared(tmp_path / "o").mask[:, 0], [False, True, False])
    with pytest.raises(
        DataError,
        match=re.escape(
            f"{src}: line 2: time 2024-01-02T09:30:00+00:00 is not on the calendar (explicit"
        ),
    ):
        prepare(src, tmp_path / "o2", calendar=["2024-01-02 09:31"])


# ------------------------------------------------------------------------------ aggregation
def random_trades(rng, n=400):
    out = []
    for _ in range(n):
        t = T0 + pd.Timedelta(seconds=int(rng.integers(0, 300)))
        k = ["AAA", "BBB"][int(rng.integers(2))]
        out.append((t, k, round(float(rng.uniform(99, 101)), 2), int(rng.integers(0, 100))))
    return out


def test_trades_aggregate_to_bars_like_the_reference(tmp_path):
    trades = random_trades(np.random.default_rng(3))
    half = len(trades) // 2
    files = []
    for j, part in enumerate((trades[:half], trades[half:])):
        lines = ["time,ticker,price,size"] + [f"{t.isoformat()},{k},{p},{s}" for t, k, p, s in part]
        files.append(write(tmp_path / f"t{j}.csv", lines))
    fields = ("open", "high", "low", "close", "volume", "vwap", "n_trades")
    prepare(files, tmp_path / "o", window=2, fields=fields, bar_freq="1min")
    d = load_prepared(tmp_path / "o")
    ref: dict = {}
    order = sorted(range(len(trades)), key=lambda i: (trades[i][0], i))  # time, then file order
    for i in order:
        t, k, p, s = trades[i]
        key = (t.floor("1min").value, k)
        ref.setdefault(key, []).append((p, s))
    for (tb, k), ps in ref.items():
        ti = int(np.searchsorted(d.times, tb))
        ki = d.tickers.index(k)
        vol = sum(s for _, s in ps)
        vwap = sum(p * s for p, s in ps) / vol if vol else ps[-1][0]
        expect = [ps[0][0], max(p for p, _ in ps), min(p for p, _ in ps), ps[-1][0], vol, vwap]
        got = d.field("vwap")[ti, ki]
        np.testing.assert_allclose(got, vwap, rtol=1e-12)
        for f, e in zip(fields[:5], expect[:5], strict=True):
            assert d.field(f)[ti, ki] == e, (f, tb, k)
        assert d.field("n_trades")[ti, ki] == len(ps)
    assert int(d.mask.sum()) == len(ref)


def test_quotes_aggregate_to_mid_bars(tmp_path):
    lines = ["time,ticker,bid,ask,bid_size,ask_size"]
    quotes = [("09:30:05", 99.0, 101.0, 5, 6), ("09:30:40", 100.0, 102.0, 7, 8)]
    quotes += [("09:31:10", 98.0, 99.0, 1, 2)]
    lines += [f"2024-01-02T{t}Z,AAA,{b},{a},{bs},{as_}" for t, b, a, bs, as_ in quotes]
    src = write(tmp_path / "q.csv", lines)
    fields = ("open", "high", "low", "close", "spread", "bid_size")
    prepare(src, tmp_path / "o", window=1, fields=fields, bar_freq="1min")
    d = load_prepared(tmp_path / "o")
    np.testing.assert_array_equal(
        d.values[:, 0], [[100, 101, 100, 101, 2, 7], [98.5, 98.5, 98.5, 98.5, 1, 1]]
    )
    with pytest.raises(DataError, match=r"a quotes file cannot provide field\(s\) 'volume'"):
        prepare(src, tmp_path / "o2", bar_freq="1min")
    with pytest.raises(ConfigError, match=r"quotes must be aggregated to bars: pass bar_freq"):
        prepare(src, tmp_path / "o3", fields=("close",))


def test_bars_are_coarsened_to_bar_freq(tmp_path):
    rng = np.random.default_rng(4)
    rows = random_bars(rng, n_times=17, tickers=("AAA",), p_drop=0.0)
    src = bars_csv(tmp_path / "b.csv", rows, rng)
    prepare(src, tmp_path / "o", window=1, bar_freq="5min")
    d = load_prepared(tmp_path / "o")
    assert d.manifest.bar_freq == "5min" and d.n_times == 4
    items = sorted(rows.items(), key=lambda kv: kv[0][0])
    for b in range(4):
        chunk = [v for (t, _), v in items if (pd.Timestamp(t) - T0).seconds // 300 == b]
        vols = [v[4] for v in chunk if not math.isnan(v[4])]
        expect = [
            chunk[0][0],
            max(v[1] for v in chunk),
            min(v[2] for v in chunk),
            chunk[-1][3],
            sum(vols) if vols else math.nan,
        ]
        np.testing.assert_array_equal(d.field("open")[b, 0], expect[0])
        for j, f in enumerate(FIELDS):
            np.testing.assert_array_equal(d.field(f)[b, 0], expect[j], err_msg=f)


# ------------------------------------------------------------------------------ errors
GOOD = "2024-01-02 09:30,AAA,10,11,9,10.5,100"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            [HEADER, GOOD, "2024-01-02 09:31,AAA,10,11,9,abc,100"],
            "{f}: line 3, column 'close': non-numeric value 'abc'",
        ),
        (
            [HEADER, GOOD, "", "2024-01-02 09:31,AAA,10,11,9,x,100"],
            "{f}: line 4, column 'close': non-numeric value 'x'",  # a blank line still counts
        ),
        (
            ["time,ticker,open,high,low,close", "2024-01-02 09:30,AAA,1,1,1,1"],
            "{f}: missing column(s) 'volume'; found columns: time, ticker, open, high, low, close.",
        ),
        (
            [
                HEADER,
                GOOD,
                "2024-01-02 09:31,AAA,10,11,9,10,100",
                "2024-01-02 09:32,AAA,1,1,1,1,-5",
            ],
            "{f}: line 4, column 'volume': negative value -5.0 (must be >= 0)",
        ),
        (
            [HEADER, GOOD, "2024-01-02 09:31,AAA,10,11,9,10,100", GOOD],
            "{f}: line 4: duplicate row for (time, ticker) = (2024-01-02T09:30:00+00:00, AAA); "
            "first seen at {f}: line 2",
        ),
        (
            [HEADER, GOOD, "yesterday,AAA,10,11,9,10,100"],
            "{f}: line 3, column 'time': cannot parse time 'yesterday'; use ISO-8601",
        ),
        (
            [HEADER, GOOD, "2024-01-02 09:31,,10,11,9,10,100"],
            "{f}: line 3, column 'ticker': missing ticker",
        ),
        (
            [HEADER, GOOD, ",AAA,10,11,9,10,100"],
            "{f}: line 3, column 'time': missing time",
        ),
        (
            [HEADER, "2024-01-02 09:31,AAA,10,11,9,0,100"],
            "{f}: line 2, column 'close': non-positive price 0.0 (must be > 0)",
        ),
        (
            [HEADER, "2024-01-02 09:31,AAA,10,9,11,10,100"],
            "{f}: line 2, column 'high': high 9.0 is below low 11.0",
        ),
        (
            [HEADER, "2024-01-02 09:31,AAA,10,11,9,inf,100"],
            "{f}: line 2, column 'close': infinite value inf",
        ),
        (
            ["time,ticker,close,volume", "1704187800,AAA,1,1"],
            "{f}: line 2, column 'time': cannot parse time '1704187800'",
        ),
        (
            [HEADER, GOOD, "2024-01-02 09:31,AAA,10,11,9,10,100,7"],
            "{f}: malformed CSV: Error tokenizing data. C error: Expected 7 fields in line 3, saw 8",
        ),
    ],
)
def test_data_errors_name_file_line_and_column(tmp_path, lines, message):
    src = write(tmp_path / "bad.csv", lines)
    fields = ("close", "volume") if lines[0].count(",") == 3 else FIELDS
    with pytest.raises(DataError, match="^" + re.escape(message.format(f=src))):
        prepare(src, tmp_path / "out", fields=fields)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_parquet_errors_name_the_row(tmp_path):
    frame = pd.DataFrame(
        {
            "time": ["2024-01-02 09:30", "2024-01-02 09:31"],
            "ticker": ["A", "A"],
            "close": ["1", "x"],
        }
    )
    src = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(frame), src)
    with pytest.raises(
        DataError, match="^" + re.escape(f"{src}: row 2, column 'close': non-numeric value 'x'")
    ):
        prepare(src, tmp_path / "o", fields=["close"])


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.csv'}: file not found")):
        prepare(tmp_path / "nope.csv", tmp_path / "o")
    txt = write(tmp_path / "a.txt", ["x"])
    with pytest.raises(DataError, match=re.escape(f"{txt}: unsupported file type; expected")):
        prepare(txt, tmp_path / "o")
    a = write(tmp_path / "a.csv", [HEADER, GOOD])
    b = write(tmp_path / "b.csv", [HEADER, "2024-01-02 09:31,AAA,1,1,1,1,1", GOOD])
    with pytest.raises(
        DataError, match=re.escape(f"{b}: line 3: duplicate row") + ".*" + re.escape(f"{a}: line 2")
    ):
        prepare([a, b], tmp_path / "o")
    trades = write(tmp_path / "t.csv", ["time,ticker,price,size", "2024-01-02 09:30:01,AAA,10,5"])
    with pytest.raises(
        DataError,
        match="^"
        + re.escape(
            f"{trades}: line 2: duplicate bar from another kind of source (bars/trades/quotes) "
            f"for (time, ticker) = (2024-01-02T09:30:00+00:00, AAA); first seen at {a}: line 2"
        ),
    ):
        prepare([a, trades], tmp_path / "o", bar_freq="1min")
    with pytest.raises(DataError, match="a trades file cannot provide field"):
        prepare(trades, tmp_path / "o", fields=["close", "spread"], bar_freq="1min")


def test_argument_errors(tmp_path):
    a = write(tmp_path / "a.csv", [HEADER, GOOD])
    with pytest.raises(ConfigError, match="window must be an integer >= 1, got window=0"):
        prepare(a, tmp_path / "o", window=0)
    with pytest.raises(ConfigError, match="fields must not include time"):
        prepare(a, tmp_path / "o", fields=["time"])
    with pytest.raises(ConfigError, match="bar_freq must be a pandas frequency"):
        prepare(a, tmp_path / "o", bar_freq="fortnightly-ish")
    with pytest.raises(ConfigError, match="bar_freq must be a fixed frequency"):
        prepare(a, tmp_path / "o", bar_freq="B")
    prepare(a, tmp_path / "o")
    with pytest.raises(ConfigError, match="already holds prepared data; pass overwrite=True"):
        prepare(a, tmp_path / "o")
    prepare(a, tmp_path / "o", overwrite=True, materialize_windows=False)
    assert not (tmp_path / "o" / "windows.npy").exists()
    assert load_prepared(tmp_path / "o").windows is None


# ------------------------------------------------------------------------------ hashes
def test_hash_mismatch_and_missing_files_are_detected(tmp_path):
    rows = random_bars(np.random.default_rng(5), n_times=6)
    prepare(bars_csv(tmp_path / "a.csv", rows), tmp_path / "o", window=2)
    load_prepared(tmp_path / "o")  # intact: fine
    path = tmp_path / "o" / "values.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=re.escape(f"{path}: sha256 mismatch: manifest.json says")):
        load_prepared(tmp_path / "o")
    load_prepared(tmp_path / "o", verify=False)  # the caller may opt out
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    load_prepared(tmp_path / "o")  # restored
    (tmp_path / "o" / "mask.npy").unlink()
    with pytest.raises(DataError, match=r"mask.npy: file listed in manifest.json is missing"):
        load_prepared(tmp_path / "o")
    with pytest.raises(DataError, match=r"no manifest; is .* a directory written by"):
        load_prepared(tmp_path)


def test_shape_mismatch_is_detected_without_verify(tmp_path):
    prepare(write(tmp_path / "a.csv", [HEADER, GOOD]), tmp_path / "o", window=1)
    np.save(tmp_path / "o" / "mask.npy", np.zeros((2, 1), dtype=bool))
    with pytest.raises(DataError, match=r"mask.npy: expected dtype bool shape \(1, 1\)"):
        load_prepared(tmp_path / "o", verify=False)


# ------------------------------------------------------------------------------ CLI
def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="marketsim")
    add_data_parser(parser.add_subparsers(dest="command"))
    return parser


def test_cli_prepare(tmp_path, capsys):
    rows = random_bars(np.random.default_rng(6), n_times=5)
    src = bars_csv(tmp_path / "a.csv", rows)
    args = make_parser().parse_args(
        ["data", "prepare", str(src), "--out", str(tmp_path / "o"), "--window", "3"]
    )
    assert args.func is run_prepare
    assert args.func(args) == 0
    assert "prepared 3 tickers x 5 bars" in capsys.readouterr().out
    assert load_prepared(tmp_path / "o").window_length == 3
    bad = write(tmp_path / "bad.csv", [HEADER, "2024-01-02 09:31,AAA,10,11,9,abc,100"])
    args = make_parser().parse_args(["data", "prepare", str(bad), "--out", str(tmp_path / "x")])
    assert run_prepare(args) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 2, column 'close': non-numeric value 'abc'" in err


def test_cli_freq_and_grid(tmp_path, capsys):
    trades = write(
        tmp_path / "t.csv",
        [
            "time,ticker,price,size",
            "2024-01-02T09:30:10Z,AAA,10,5",
            "2024-01-02T09:32:10Z,AAA,11,5",
        ],
    )
    argv = ["data", "prepare", str(trades), "--out", str(tmp_path / "o"), "--freq", "1min"]
    assert run_prepare(make_parser().parse_args([*argv, "--grid", "--no-windows"])) == 0
    d = load_prepared(tmp_path / "o")
    assert d.n_times == 3 and d.mask[:, 0].tolist() == [True, False, True] and d.windows is None
    argv = ["data", "prepare", str(trades), "--out", str(tmp_path / "o2")]
    assert run_prepare(make_parser().parse_args(argv)) == 2
    assert "trades must be aggregated to bars" in capsys.readouterr().err
