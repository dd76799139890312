"""Turn raw CSV/Parquet market data into a prepared directory of Parquet bars and ``.npy`` arrays.

:func:`prepare` reads any mix of these layouts (detected from the header; column names are
case-insensitive; ``timestamp``, ``datetime`` or ``date`` may stand for ``time`` and
``symbol`` for ``ticker``):

* **long bars**: ``time, ticker, <fields>`` (one row per bar and ticker);
* **wide bars**: ``time, <ticker>.<field>, ...`` (for example ``AAPL.close``, ``BRK.B.volume``)
  or ``time, <ticker>, ...`` where a bare ticker column holds close prices;
* **trades**: ``time, ticker, price, size``, aggregated to bars of ``bar_freq``: ``open``,
  ``high``, ``low``, ``close`` of the price, ``volume`` (sum of sizes), ``vwap`` (the close if
  the volume is 0) and ``n_trades``;
* **quotes**: ``time, ticker, bid, ask[, bid_size, ask_size]``, aggregated to bars of
  ``bar_freq``: ``open``, ``high``, ``low``, ``close`` and ``mid`` of the mid price, and the
  bar's last ``bid``, ``ask``, ``bid_size``, ``ask_size`` and ``spread``. Quotes carry no
  traded volume, so asking a quotes file for ``volume`` is an error.

Times are ISO-8601 text (``2024-01-02T09:30:00Z``, ``2024-01-02 09:30``, ``2024-01-02``) or
Parquet timestamps. Times with an offset are converted to UTC; times without one are taken as
UTC. A bar's timestamp is its *start*. Within a file, rows may come in any order; trades with
equal timestamps keep their file order (the files' order given, then their rows).

The result is written as described in :mod:`marketsim.data.windows` and read back with
:func:`~marketsim.data.windows.load_prepared`. Missing data (a ticker without a bar at a
calendar time, an empty cell, a halt, a holiday on a regular calendar) becomes NaN with
``mask`` False, never a zero or a forward-filled value.

Bad input raises :class:`~marketsim.errors.DataError` naming the file, the 1-based line (CSV,
the header being line 1) or row (Parquet), and the column, for example::

    raw/aapl.csv: line 7, column 'close': non-numeric value 'abc'

Speed (2-core dev machine, 1M-row long bars, 100 tickers, ``benchmarks/bench_ingest.py``):
0.35-0.5 M rows/s from CSV and 0.6-0.8 M rows/s from Parquet without ``windows.npy``; writing
``windows.npy`` (64 x the values, 1.2 GB here) brings a 1M-row CSV to 9-14 s.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from marketsim.data.windows import (
    MANIFEST_NAME,
    Manifest,
    PreparedData,
    iso_utc,
    load_prepared,
    sha256_file,
    write_prepared,
)
from marketsim.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_FIELDS",
    "QUOTE_FIELDS",
    "TRADE_FIELDS",
    "Manifest",
    "PreparedData",
    "load_prepared",
    "prepare",
    "read_table",
]

logger = logging.getLogger(__name__)

#: Fields prepared by default.
DEFAULT_FIELDS = ("open", "high", "low", "close", "volume")
#: Fields a trades file can be aggregated into.
TRADE_FIELDS = ("open", "high", "low", "close", "volume", "vwap", "n_trades")
#: Fields a quotes file can be aggregated into.
QUOTE_FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "mid",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "spread",
)
#: Header names accepted for the time column, in order of preference.
TIME_ALIASES = ("time", "timestamp", "datetime", "date")
#: Header names accepted for the ticker column.
TICKER_ALIASES = ("ticker", "symbol")
#: Columns whose values must be > 0.
POSITIVE_COLUMNS = frozenset({"open", "high", "low", "close", "price", "bid", "ask", "vwap", "mid"})
#: Columns whose values must be >= 0.
NONNEGATIVE_COLUMNS = frozenset({"volume", "size", "bid_size", "ask_size", "n_trades"})
_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_RESERVED = frozenset({"time", "ticker", "valid"})


# ---------------------------------------------------------------------------------- reading
@dataclass
class RawTable:
    """One input file read into memory, with its rows' positions for error messages.

    Attributes:
        path: The file.
        fmt: ``"csv"`` or ``"parquet"``.
        frame: The columns read (original header names), blank CSV lines dropped.
        pos: 0-based data-row position of each row of ``frame`` in the file.
        first_line: CSV line number of data row 0 (2 after a header line, 1 without).
    """

    path: Path
    fmt: str
    frame: pd.DataFrame
    pos: np.ndarray
    first_line: int = 2

    def where(self, i: int) -> str:
        """``"<path>: line N"`` (CSV, header = line 1) or ``"<path>: row N"`` for row ``i``."""
        p = int(self.pos[i])
        if self.fmt == "csv":
            return f"{self.path}: line {p + self.first_line}"
        return f"{self.path}: row {p + 1}"

    def fail(self, i: int, column: str, what: str) -> DataError:
        """A DataError naming file, line/row and column."""
        return DataError(f"{self.where(i)}, column {column!r}: {what}")

    def times(self, column: str) -> np.ndarray:
        """Column ``column`` as int64 ns since the epoch (UTC). O(n).

        Raises:
            DataError: a missing or unparsable time, or numbers instead of times.
        """
        s = self.frame[column]
        if ptypes.is_datetime64_any_dtype(s.dtype):
            if getattr(s.dtype, "tz", None) is not None:
                s = s.dt.tz_convert("UTC").dt.tz_localize(None)
            parsed = s
        elif ptypes.is_numeric_dtype(s.dtype) or ptypes.is_bool_dtype(s.dtype):
            i = int(np.flatnonzero(s.notna().to_numpy())[0]) if s.notna().any() else 0
            raise self.fail(
                i,
                column,
                f"times are numbers (first: {s.iloc[i]!r}); write ISO-8601 text such as "
                "2024-01-02T09:30:00Z or a Parquet timestamp column",
            )
        else:
            text = s.astype("string")
            try:
                parsed = pd.to_datetime(text, format="ISO8601", utc=True)
            except (ValueError, TypeError, OverflowError):
                parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
                bad = (parsed.isna() & text.notna()).to_numpy()
                if not bad.any():  # pragma: no cover - pandas rejected the column as a whole
                    raise DataError(f"{self.path}, column {column!r}: cannot parse times") from None
                i = int(np.flatnonzero(bad)[0])
                raise self.fail(
                    i,
                    column,
                    f"cannot parse time {text.iloc[i]!r}; use ISO-8601 such as "
                    "2024-01-02T09:30:00Z or 2024-01-02 09:30:00",
                ) from None
            parsed = parsed.dt.tz_localize(None)
        missing = parsed.isna().to_numpy()
        if missing.any():
            raise self.fail(int(np.flatnonzero(missing)[0]), column, "missing time")
        try:
            ns = parsed.astype("datetime64[ns]").to_numpy().view(np.int64)
        except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError):
            raise DataError(
                f"{self.path}, column {column!r}: a time lies outside the years 1677-2262 "
                "(nanosecond timestamps)"
            ) from None
        return np.ascontiguousarray(ns)

    def tickers(self, column: str) -> np.ndarray:
        """Column ``column`` as stripped str (object array). O(n).

        Raises:
            DataError: a missing or empty ticker.
        """
        s = self.frame[column]
        text = s.astype("string").str.strip()
        bad = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
        if bad.any():
            raise self.fail(int(np.flatnonzero(bad)[0]), column, "missing ticker")
        return text.to_numpy(dtype=object)

    def numbers(self, column: str, rule: str | None = None, required: bool = False) -> np.ndarray:
        """Column ``column`` as float64, NaN where empty. O(n).

        Args:
            column: Header name.
            rule: Field name deciding the range check (default: the column name lower-cased;
                "" for none): members of :data:`POSITIVE_COLUMNS` must be > 0, of
                :data:`NONNEGATIVE_COLUMNS` >= 0.
            required: Empty cells are an error (trades and quotes rows must be complete).

        Raises:
            DataError: non-numeric, infinite, missing (if required) or out-of-range value.
        """
        s = self.frame[column]
        if ptypes.is_bool_dtype(s.dtype):
            raise self.fail(0, column, f"booleans where numbers are expected ({s.iloc[0]!r})")
        if ptypes.is_numeric_dtype(s.dtype):
            x = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            text = s.astype("string").str.strip()
            conv = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
            bad = (conv.isna() & text.notna() & (text != "")).to_numpy(dtype=bool, na_value=False)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise self.fail(i, column, f"non-numeric value {s.iloc[i]!r}")
            x = conv.to_numpy(dtype=np.float64, na_value=np.nan)
        x = np.ascontiguousarray(x, dtype=np.float64)
        inf = np.isinf(x)
        if inf.any():
            i = int(np.flatnonzero(inf)[0])
            raise self.fail(i, column, f"infinite value {float(x[i])!r}")
        nan = np.isnan(x)
        if required and nan.any():
            raise self.fail(int(np.flatnonzero(nan)[0]), column, "missing value")
        key = column.lower() if rule is None else rule
        with np.errstate(invalid="ignore"):
            if key in POSITIVE_COLUMNS:
                bad = x <= 0.0
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise self.fail(i, column, f"non-positive price {float(x[i])!r} (must be > 0)")
            elif key in NONNEGATIVE_COLUMNS:
                bad = x < 0.0
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise self.fail(i, column, f"negative value {float(x[i])!r} (must be >= 0)")
        return x


def _suffix_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise DataError(
        f"{path}: unsupported file type; expected one of "
        f"{', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}"
    )


def read_header(path: str | os.PathLike) -> list[str]:
    """Column names of a CSV or Parquet file.

    Raises:
        DataError: missing, empty or unreadable file, or an unsupported suffix.
    """
    p = Path(path)
    fmt = _suffix_kind(p)
    if not p.is_file():
        raise DataError(f"{p}: file not found")
    try:
        if fmt == "parquet":
            return list(pq.read_schema(p).names)
        return [str(c) for c in pd.read_csv(p, nrows=0).columns]
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: empty file (no header line)") from None
    except (pa.ArrowInvalid, OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{p}: cannot read the header: {exc}") from None


def _csv_arrow(path: Path, columns: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False, newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns, column_types=types, strings_can_be_null=True
        ),
    )


def read_table(
    path: str | os.PathLike,
    columns: Sequence[str],
    *,
    time_column: str | None = None,
    string_columns: Sequence[str] = (),
    numeric_columns: Sequence[str] = (),
) -> RawTable:
    """Read ``columns`` of a CSV or Parquet file, keeping every row's line/row number.

    CSV goes through pyarrow's multi-threaded parser with typed columns (timestamps parsed in
    C); if a value does not convert, the file is read again as text so the bad cell can be
    reported with its line. Blank CSV lines are dropped (they still count as lines).

    Args:
        path: A ``.csv`` (optionally compressed) or ``.parquet`` file.
        columns: Header names to read (must exist).
        time_column: Column to parse as a timestamp on the fast path.
        string_columns: Columns to read as text.
        numeric_columns: Columns expected numeric (float64 on the fast path).

    Returns:
        The table. O(rows).

    Raises:
        DataError: unreadable file or malformed CSV (the message gives the line).
    """
    p = Path(path)
    fmt = _suffix_kind(p)
    cols = list(dict.fromkeys(columns))
    if fmt == "parquet":
        try:
            table = pq.read_table(p, columns=cols)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{p}: cannot read Parquet: {exc}") from None
        frame = table.to_pandas()
        return RawTable(p, fmt, frame, np.arange(len(frame), dtype=np.int64))
    base = {c: pa.string() for c in string_columns}
    base.update({c: pa.float64() for c in numeric_columns})
    attempts = []
    if time_column is not None:
        naive, aware = {time_column: pa.timestamp("ns")}, {time_column: pa.timestamp("ns", "UTC")}
        attempts += [aware, naive] if _zone_hint(p, time_column) else [naive, aware]
    attempts.append({time_column: pa.string()} if time_column else {})
    table = None
    for extra in attempts:
        try:
            table = _csv_arrow(p, cols, {**base, **extra})
            break
        except pa.ArrowInvalid as exc:
            if "CSV parse error" in str(exc):
                _raise_csv_structure(p, exc)
    if table is None:  # a value did not convert: read every column as text
        try:
            table = _csv_arrow(p, cols, {c: pa.string() for c in cols})
        except pa.ArrowInvalid as exc:
            _raise_csv_structure(p, exc)
    frame = table.to_pandas()
    blank = frame.isna().all(axis=1).to_numpy()
    pos = np.arange(len(frame), dtype=np.int64)
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        pos = pos[~blank]
    return RawTable(p, fmt, frame, pos)


_ZONE = re.compile(r"(Z|[+-]\d\d:?\d\d)$")


def _zone_hint(path: Path, column: str) -> bool:
    """Whether the first data row's ``column`` carries a UTC offset (tries that parse first)."""
    try:
        with pa.input_stream(str(path), compression="detect") as fh:
            head = fh.read(1 << 16).decode("utf-8", errors="replace").splitlines()
        rows = list(csv.reader(head[:2]))
        value = rows[1][rows[0].index(column)].strip()
    except (OSError, IndexError, ValueError, pa.ArrowException):
        return False
    return bool(_ZONE.search(value))


def _raise_csv_structure(path: Path, exc: Exception) -> None:
    """Re-read a structurally broken CSV with pandas to get the line number into the message."""
    try:
        pd.read_csv(path, dtype=str, skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as pexc:
        raise DataError(f"{path}: malformed CSV: {pexc}") from None
    raise DataError(f"{path}: malformed CSV: {exc}") from None


# ---------------------------------------------------------------------------------- layouts
@dataclass
class _Source:
    """One input file turned into a normalised long frame."""

    table: RawTable
    index: int
    layout: str  # "bars", "wide", "trades", "quotes"
    frame: pd.DataFrame  # time (int64 ns), ticker, value columns (float64), _src, _row
    rows: int


def _find(lower: dict[str, str], aliases: Iterable[str]) -> str | None:
    for a in aliases:
        if a in lower:
            return lower[a]
    return None


def _missing_columns(path: Path, missing: Sequence[str], header: Sequence[str]) -> DataError:
    return DataError(
        f"{path}: missing column(s) {', '.join(repr(m) for m in missing)}; found columns: "
        f"{', '.join(header)}. Expected long bars (time, ticker, <fields>), wide bars (time, "
        "<ticker>.<field>...), trades (time, ticker, price, size) or quotes (time, ticker, bid, "
        "ask, bid_size, ask_size)"
    )


def _read_source(path: Path, index: int, fields: tuple[str, ...]) -> _Source:
    header = read_header(path)
    lower: dict[str, str] = {}
    for h in header:
        lower.setdefault(str(h).strip().lower(), h)
    tcol = _find(lower, TIME_ALIASES)
    if tcol is None:
        raise _missing_columns(path, ["time"], header)
    kcol = _find(lower, TICKER_ALIASES)
    if kcol is None:
        return _read_wide(path, index, fields, header, tcol)
    if all(f in lower for f in fields):
        layout, need = "bars", list(fields)
    elif "price" in lower and "size" in lower:
        layout, need = "trades", ["price", "size"]
        _check_provides(path, "trades", fields, TRADE_FIELDS)
    elif "bid" in lower and "ask" in lower:
        layout = "quotes"
        need = ["bid", "ask"] + [c for c in ("bid_size", "ask_size") if c in lower or c in fields]
        _check_provides(path, "quotes", fields, QUOTE_FIELDS)
    else:
        raise _missing_columns(path, [f for f in fields if f not in lower], header)
    missing = [c for c in need if c not in lower]
    if missing:
        raise _missing_columns(path, missing, header)
    cols = [lower[c] for c in need]
    raw = read_table(
        path, [tcol, kcol, *cols], time_column=tcol, string_columns=[kcol], numeric_columns=cols
    )
    data: dict[str, Any] = {"time": raw.times(tcol), "ticker": raw.tickers(kcol)}
    complete = layout != "bars"
    for c, name in zip(need, cols, strict=True):
        data[c] = raw.numbers(name, rule=c, required=complete)
    if layout == "bars":
        _check_high_low(raw, data, lower)
    return _Source(raw, index, layout, _frame(data, raw, index), len(raw.frame))


def _check_provides(path: Path, layout: str, fields: Sequence[str], can: Sequence[str]) -> None:
    bad = [f for f in fields if f not in can]
    if bad:
        raise DataError(
            f"{path}: a {layout} file cannot provide field(s) {', '.join(map(repr, bad))}; "
            f"{layout} provide: {', '.join(can)}"
        )


def _check_high_low(raw: RawTable, data: dict[str, Any], lower: dict[str, str]) -> None:
    if "high" in data and "low" in data:
        with np.errstate(invalid="ignore"):
            bad = data["high"] < data["low"]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise raw.fail(
                i,
                lower["high"],
                f"high {float(data['high'][i])!r} is below low {float(data['low'][i])!r}",
            )


def _frame(data: dict[str, Any], raw: RawTable, index: int) -> pd.DataFrame:
    n = len(data["time"])
    data["_src"] = np.full(n, index, dtype=np.int32)
    data["_row"] = np.arange(n, dtype=np.int64)  # row of raw.frame (raw.pos maps it to a line)
    return pd.DataFrame(data)


def _read_wide(
    path: Path, index: int, fields: tuple[str, ...], header: list[str], tcol: str
) -> _Source:
    per_ticker: dict[str, dict[str, str]] = {}
    for h in header:
        if h == tcol:
            continue
        name = str(h).strip()
        tk, _, fld = name.rpartition(".")
        if tk and fld.lower() in fields:
            per_ticker.setdefault(tk, {})[fld.lower()] = h
        else:
            per_ticker.setdefault(name, {})["close"] = h
    if not per_ticker:
        raise _missing_columns(path, ["ticker"], header)
    for tk, have in per_ticker.items():
        lack = [f for f in fields if f not in have]
        if lack:
            raise DataError(
                f"{path}: wide layout: ticker {tk!r} has no column for field(s) "
                f"{', '.join(map(repr, lack))}; found columns: {', '.join(header)}. Name wide "
                "columns <ticker>.<field> (a bare <ticker> column holds close prices), or use "
                "the long layout time, ticker, <fields>"
            )
    value_cols = [have[f] for have in per_ticker.values() for f in fields]
    raw = read_table(path, [tcol, *value_cols], time_column=tcol, numeric_columns=value_cols)
    times = raw.times(tcol)
    n = len(times)
    parts = []
    for tk, have in per_ticker.items():
        data: dict[str, Any] = {"time": times, "ticker": np.full(n, tk, dtype=object)}
        for f in fields:
            data[f] = raw.numbers(have[f], rule=f)
        _check_high_low(raw, data, {"high": have.get("high", "high")})
        parts.append(_frame(data, raw, index))
    return _Source(raw, index, "wide", pd.concat(parts, ignore_index=True), n)


# ---------------------------------------------------------------------------------- combining
def _locate(sources: list[_Source], frame: pd.DataFrame, i: int) -> str:
    src = sources[int(frame["_src"].iat[i])]
    return src.table.where(int(frame["_row"].iat[i]))


def _check_duplicates(sources: list[_Source], frame: pd.DataFrame, what: str = "row ") -> None:
    """Raise on the first repeated (time, ticker) row, naming both occurrences. O(n)."""
    if len(frame) < 2:
        return
    dup = frame.duplicated(subset=["time", "ticker"], keep="first").to_numpy()
    if not dup.any():
        return
    i = int(np.flatnonzero(dup)[0])
    t, k = frame["time"].iat[i], frame["ticker"].iat[i]
    same = (frame["time"].to_numpy() == t) & (frame["ticker"].to_numpy() == k)
    j = int(np.flatnonzero(same)[0])
    raise DataError(
        f"{_locate(sources, frame, i)}: duplicate {what}for (time, ticker) = "
        f"({iso_utc(t)}, {k}); first seen at {_locate(sources, frame, j)}"
    )


def _bucket(ns: np.ndarray, step: int) -> np.ndarray:
    return ns - np.mod(ns, step)


def _sorted_for_agg(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    """Stable sort by (ticker, raw time, input order); add the bucket column."""
    frame = frame.assign(_t=frame["time"], time=_bucket(frame["time"].to_numpy(), step))
    order = np.lexsort((np.arange(len(frame)), frame["_t"].to_numpy(), frame["ticker"].to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


def _agg_first_rows(g: Any) -> dict[str, Any]:
    return {"_src": g["_src"].first().to_numpy(), "_row": g["_row"].first().to_numpy()}


def _aggregate_bars(frame: pd.DataFrame, step: int, fields: tuple[str, ...]) -> pd.DataFrame:
    """Coarsen bars to ``step`` ns buckets: open first, high max, low min, volume sum, else last."""
    f = _sorted_for_agg(frame, step)
    g = f.groupby(["ticker", "time"], sort=False)
    out = g.size().reset_index()[["ticker", "time"]]
    rules = {"open": "first", "high": "max", "low": "min", "volume": "sum", "n_trades": "sum"}
    for name in fields:
        how = rules.get(name, "last")
        col = g[name].sum(min_count=1) if how == "sum" else g[name].agg(how)
        out[name] = col.to_numpy()
    for k, v in _agg_first_rows(g).items():
        out[k] = v
    return out


def _aggregate_trades(frame: pd.DataFrame, step: int, fields: tuple[str, ...]) -> pd.DataFrame:
    f = _sorted_for_agg(frame, step)
    f["_pv"] = f["price"] * f["size"]
    g = f.groupby(["ticker", "time"], sort=False)
    out = g.size().reset_index()[["ticker", "time"]]
    price = g["price"]
    close = price.last().to_numpy()
    volume = g["size"].sum().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        vwap = np.where(volume > 0, g["_pv"].sum().to_numpy() / volume, close)
    cols = {
        "open": lambda: price.first().to_numpy(),
        "high": lambda: price.max().to_numpy(),
        "low": lambda: price.min().to_numpy(),
        "close": lambda: close,
        "volume": lambda: volume,
        "vwap": lambda: vwap,
        "n_trades": lambda: g.size().to_numpy().astype(np.float64),
    }
    for name in fields:
        out[name] = cols[name]()
    for k, v in _agg_first_rows(g).items():
        out[k] = v
    return out


def _aggregate_quotes(frame: pd.DataFrame, step: int, fields: tuple[str, ...]) -> pd.DataFrame:
    f = _sorted_for_agg(frame, step)
    f["_mid"] = 0.5 * (f["bid"] + f["ask"])
    g = f.groupby(["ticker", "time"], sort=False)
    out = g.size().reset_index()[["ticker", "time"]]
    mid = g["_mid"]

    def last(c: str) -> np.ndarray:
        return g[c].last().to_numpy()

    cols = {
        "open": lambda: mid.first().to_numpy(),
        "high": lambda: mid.max().to_numpy(),
        "low": lambda: mid.min().to_numpy(),
        "close": lambda: mid.last().to_numpy(),
        "mid": lambda: mid.last().to_numpy(),
        "bid": lambda: last("bid"),
        "ask": lambda: last("ask"),
        "bid_size": lambda: last("bid_size"),
        "ask_size": lambda: last("ask_size"),
        "spread": lambda: last("ask") - last("bid"),
    }
    for name in fields:
        out[name] = cols[name]()
    for k, v in _agg_first_rows(g).items():
        out[k] = v
    return out


# ---------------------------------------------------------------------------------- arguments
def _check_fields(fields: Any) -> tuple[str, ...]:
    if isinstance(fields, str) or not isinstance(fields, Iterable):
        raise ConfigError(f"fields must be a sequence of column names, got fields={fields!r}")
    out = tuple(str(f).strip().lower() for f in fields)
    if not out or any(not f for f in out):
        raise ConfigError(f"fields must be non-empty names, got fields={fields!r}")
    if len(set(out)) != len(out):
        raise ConfigError(f"fields must be unique, got fields={fields!r}")
    bad = [f for f in out if f in _RESERVED]
    if bad:
        raise ConfigError(f"fields must not include {', '.join(bad)} (reserved column names)")
    return out


def _check_window(window: Any) -> int:
    if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 1:
        raise ConfigError(f"window must be an integer >= 1, got window={window!r}")
    return int(window)


def _fixed_step(freq: str, name: str) -> int | None:
    """Nanoseconds of a fixed frequency, None for calendar frequencies like 'B' or 'ME'."""
    try:
        off = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{name} must be a pandas frequency such as '1min', '5s', '1h', '1D' or 'B', got "
            f"{name}={freq!r}"
        ) from None
    try:
        step = int(off.nanos)
    except ValueError:
        return None
    if step <= 0:
        raise ConfigError(f"{name} must be a positive frequency, got {name}={freq!r}")
    return step


def _as_paths(raw_paths: Any) -> list[Path]:
    items = [raw_paths] if isinstance(raw_paths, str | os.PathLike) else list(raw_paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                q for q in p.iterdir() if q.name.lower().endswith(_CSV_SUFFIXES + _PARQUET_SUFFIXES)
            )
            if not found:
                raise DataError(f"{p}: directory holds no .csv or .parquet files")
            out.extend(found)
        else:
            out.append(p)
    if not out:
        raise ConfigError("raw_paths must name at least one file")
    return out


def _calendar(calendar: Any, times: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """The calendar description and its int64 ns timestamps."""
    if calendar is None:
        return {"kind": "union", "frequency": None}, np.unique(times)
    if isinstance(calendar, str):
        step = _fixed_step(calendar, "calendar")
        lo, hi = int(times.min()), int(times.max())
        if step is not None:
            grid = np.arange(lo - lo % step, hi + 1, step, dtype=np.int64)
        else:
            idx = pd.date_range(pd.Timestamp(lo), pd.Timestamp(hi), freq=calendar)
            grid = idx.as_unit("ns").asi8.astype(np.int64)
        return {"kind": "grid", "frequency": calendar}, grid
    try:
        idx = pd.to_datetime(list(calendar), utc=True, format="ISO8601")
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"calendar must be None, a pandas frequency string or a sequence of timestamps; "
            f"got {calendar!r} ({exc})"
        ) from None
    grid = np.unique(idx.tz_localize(None).as_unit("ns").asi8.astype(np.int64))
    if grid.size == 0:
        raise ConfigError("calendar must not be an empty sequence")
    return {"kind": "explicit", "frequency": None}, grid


# ---------------------------------------------------------------------------------- prepare
def prepare(
    raw_paths: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    window: int = 64,
    fields: Sequence[str] = DEFAULT_FIELDS,
    calendar: str | Sequence[Any] | None = None,
    *,
    bar_freq: str | None = None,
    materialize_windows: bool = True,
    overwrite: bool = False,
) -> Manifest:
    """Normalise raw bars, trades or quotes onto one calendar and write a prepared directory.

    Example::

        manifest = prepare(["raw/2024-01.csv", "raw/2024-02.csv"], "prepared/", window=32)
        data = load_prepared("prepared/")
        x, m = data.window(100)        # (N, 32, 5) float32, (N, 32) bool

    Args:
        raw_paths: Files (``.csv``, ``.csv.gz``, ``.parquet``) or directories of them; any mix
            of the layouts in the module docstring. A ticker's bars may be split over files.
        out_dir: Output directory (created if needed).
        window: Window length ``W`` (>= 1).
        fields: Fields to keep, in order (lower-case column names).
        calendar: ``None``: the union of all bar times; a pandas frequency (``"1min"``,
            ``"1D"``, ``"B"``): a regular grid from the first to the last bar, so gaps and
            holidays appear as masked bars; or a sequence of timestamps. A bar that is not on
            the calendar is an error.
        bar_freq: Fixed frequency (``"1min"``, ``"5s"``) to aggregate into: required for
            trades and quotes; bars are coarsened to it (open first, high max, low min,
            volume sum, other fields last). Defaults to ``calendar`` when that is a fixed
            frequency.
        materialize_windows: Also write ``windows.npy`` (``W`` times the size of
            ``values.npy``); without it windows are served from ``values.npy``.
        overwrite: Replace an existing prepared directory.

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        DataError: Bad input (the message names file, line or row, and column): missing file
            or column, non-numeric / infinite / negative / non-positive value, high below
            low, unparsable or missing time, missing ticker, duplicate (time, ticker) rows,
            a bar off the calendar, a field the layout cannot provide, no data.
        ConfigError: Bad arguments, or ``out_dir`` already holds prepared data and
            ``overwrite`` is False.

    Runtime: O(R log R) for R input rows plus O(T*N*F) (O(T*N*F*W) with windows) to write.
    """
    fields = _check_fields(fields)
    window = _check_window(window)
    paths = _as_paths(raw_paths)
    if bar_freq is None and isinstance(calendar, str) and _fixed_step(calendar, "calendar"):
        bar_freq = calendar
    step = None if bar_freq is None else _fixed_step(bar_freq, "bar_freq")
    if bar_freq is not None and step is None:
        raise ConfigError(
            f"bar_freq must be a fixed frequency such as '1min', '5s' or '1D', got "
            f"bar_freq={bar_freq!r}"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir={str(out)!r} exists and is not a directory")
    if (out / MANIFEST_NAME).exists() and not overwrite:
        raise ConfigError(
            f"out_dir={str(out)!r} already holds prepared data; pass overwrite=True "
            "(--overwrite) to replace it"
        )

    sources = [_read_source(p, i, fields) for i, p in enumerate(paths)]
    by_layout: dict[str, list[pd.DataFrame]] = {}
    for s in sources:
        by_layout.setdefault("bars" if s.layout == "wide" else s.layout, []).append(s.frame)
    parts = []
    if "bars" in by_layout:
        bars = pd.concat(by_layout["bars"], ignore_index=True)
        _check_duplicates(sources, bars)
        if step is not None:
            bars = _aggregate_bars(bars, step, fields)
        parts.append(bars[["time", "ticker", *fields, "_src", "_row"]])
    for layout, agg in (("trades", _aggregate_trades), ("quotes", _aggregate_quotes)):
        if layout in by_layout:
            if step is None:
                raise ConfigError(
                    f"{layout} must be aggregated to bars: pass bar_freq='1min' (--freq 1min) "
                    "or a fixed-frequency calendar"
                )
            frame = pd.concat(by_layout[layout], ignore_index=True)
            parts.append(agg(frame, step, fields)[["time", "ticker", *fields, "_src", "_row"]])
    allbars = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        _check_duplicates(sources, allbars, "bar from another kind of source (bars/trades/quotes) ")
    if len(allbars) == 0:
        raise DataError(f"no data rows in {', '.join(str(p) for p in paths)}")

    times_all = allbars["time"].to_numpy(dtype=np.int64)
    codes, uniq = pd.factorize(allbars["ticker"].to_numpy(dtype=object), sort=True)
    tickers = [str(t) for t in uniq]
    cal_info, cal = _calendar(calendar, times_all)
    tpos = np.searchsorted(cal, times_all)
    off = (tpos >= cal.size) | (cal[np.minimum(tpos, cal.size - 1)] != times_all)
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise DataError(
            f"{_locate(sources, allbars, i)}: time {iso_utc(times_all[i])} is not on the "
            f"calendar ({cal_info['kind']}, frequency={cal_info['frequency']}); use a finer "
            "calendar or aggregate with bar_freq"
        )
    dense = np.full((cal.size, len(tickers), len(fields)), np.nan, dtype=np.float64)
    dense[tpos, codes] = allbars[list(fields)].to_numpy(dtype=np.float64)

    out.mkdir(parents=True, exist_ok=True)
    src_info = [
        {
            "path": str(s.table.path),
            "layout": s.layout,
            "rows": s.rows,
            "sha256": sha256_file(s.table.path),
        }
        for s in sources
    ]
    return write_prepared(
        out,
        times=cal,
        tickers=tickers,
        fields=fields,
        dense=dense,
        window=window,
        materialize_windows=materialize_windows,
        calendar=cal_info,
        sources=src_info,
        source_rows=sum(s.rows for s in sources),
        bar_freq=bar_freq,
    )
