"""Columnar run logs: preallocated numpy buffers per table, flushed to Parquet in chunks.

The model calls the recorder once per simulated step, so an append must cost a few
microseconds: each call copies whole arrays into preallocated numpy column buffers by slicing
(no per-row Python, no pandas, no pyarrow). Per-call scalars (``step``, ``time``, the asset of a
one-asset call) are kept run-length encoded as one small tuple per call and expanded at flush.
Strings live in the buffers as integer codes and become Arrow dictionary arrays at flush; a
slot's asset name is looked up when the row is appended, so renaming a slot mid-run
(:meth:`Recorder.set_asset_name`) leaves earlier rows with the earlier name.

When a table's buffer holds ``chunk_rows`` rows it is converted to Arrow once and written as one
row group of ``<out_dir>/<table>.parquet`` through :class:`pyarrow.parquet.ParquetWriter`
(``out_dir=None`` keeps the chunks in memory instead). Every file carries the constructor's
``metadata`` dict as JSON under the key-value metadata key ``b"marketsim"``.

Tables (column: Arrow type):

* ``trades``: step int64, time timestamp[ns], asset dictionary<string>, price float64,
  qty int64, aggressor int8 (+1 buy, -1 sell), buyer int64, seller int64.
* ``quotes``: step, time, asset, bid float64, ask float64 (NaN: side empty), bid_qty int64,
  ask_qty int64 (0: side empty), mid float64 (NaN if a side is empty), last float64 (NaN before
  the first trade).
* ``accounts``: step, account int64, agent_type dictionary<string>, cash float64, equity float64.
* ``positions``: step, account int64, asset, qty int64 (nonzero positions only).
* ``events``: step, time, kind dictionary<string>, asset ("" if none), account int64 (-1 if
  none), detail string (JSON object).
* ``orders`` (``record_orders=True``): step, time, asset, account int64, kind dictionary<string>
  (:data:`marketsim.book.constants.KIND_NAMES`), side int8, price float64 (NaN where the kind
  has no price), qty int64, order_id int64, status dictionary<string> ("ACCEPTED" or a
  :data:`marketsim.book.constants.REJECT_REASONS` name).
* ``l2`` (``l2_every > 0``): step, time, asset, side int8, level int32 (0 = best), price float64,
  qty int64.

Values that are cheap to check per call (lengths, slots of one-asset calls, names) are checked
at the call. Per-row values (aggressor, sides, codes, slots of many-asset calls) are checked
vectorised when the chunk is converted, and a bad value raises :class:`ConfigError` there,
naming the table, column, value and step.

Example:
    >>> import numpy as np
    >>> rec = Recorder(None, ["AAA"])
    >>> rec.trades(1, 34_200 * 10**9, 0, np.array([100.0]), np.array([5]), 1, 7, 9)
    >>> rec.frame("trades")["qty"].tolist()
    [5]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from marketsim.book.constants import (
    BUY,
    FILL_DTYPE,
    IOC,
    KIND_NAMES,
    LIMIT,
    ORDER_DTYPE,
    REJECT_DTYPE,
    REJECT_REASONS,
)
from marketsim.errors import ConfigError, MarketSimError

logger = logging.getLogger(__name__)

#: Key of the run metadata (JSON) in every Parquet file's key-value metadata.
METADATA_KEY = b"marketsim"
#: Default rows per buffer chunk (one Parquet row group per chunk).
DEFAULT_CHUNK_ROWS = 65_536
#: Status name of an order that was not rejected (code 0 in ``orders(status=...)``).
ACCEPTED = "ACCEPTED"

_DICT = pa.dictionary(pa.int32(), pa.string())
# Arrow type and numpy buffer dtype for each column kind. "slot" columns hold asset slots until
# they are resolved to asset-name codes; "asset"/"pool" columns hold string-pool codes.
_ARROW = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "int8": pa.int8(),
    "float64": pa.float64(),
    "time": pa.timestamp("ns"),
    "slot": _DICT,
    "asset": _DICT,
    "pool": _DICT,
    "string": pa.string(),
}
_NUMPY = {
    "int64": np.int64,
    "int32": np.int32,
    "int8": np.int8,
    "float64": np.float64,
    "time": np.int64,
    "slot": np.int32,
    "asset": np.int32,
    "pool": np.int32,
    "string": object,
}


@dataclass(frozen=True)
class _Col:
    name: str
    kind: str  # a key of _ARROW
    store: str  # "call": one value per append call; "row": one per row; "derived": at flush
    pool: str = ""  # string pool of "pool" columns


def _c(name: str, kind: str, pool: str = "") -> _Col:
    return _Col(name, kind, "call", pool)


def _r(name: str, kind: str, pool: str = "") -> _Col:
    return _Col(name, kind, "row", pool)


_STEP, _TIME = _c("step", "int64"), _c("time", "time")
_SPECS: dict[str, tuple[_Col, ...]] = {
    "trades": (
        *(_STEP, _TIME, _c("asset", "asset")),
        *(_r("price", "float64"), _r("qty", "int64"), _r("aggressor", "int8")),
        *(_r("buyer", "int64"), _r("seller", "int64")),
    ),
    "quotes": (
        *(_STEP, _TIME, _r("asset", "slot"), _r("bid", "float64"), _r("ask", "float64")),
        *(_r("bid_qty", "int64"), _r("ask_qty", "int64")),
        *(_Col("mid", "float64", "derived"), _r("last", "float64")),
    ),
    "accounts": (
        *(_STEP, _r("account", "int64"), _r("agent_type", "pool", "agent_type")),
        *(_r("cash", "float64"), _r("equity", "float64")),
    ),
    "positions": (_STEP, _r("account", "int64"), _r("asset", "slot"), _r("qty", "int64")),
    "events": (
        *(_r("step", "int64"), _r("time", "time"), _r("kind", "pool", "event_kind")),
        *(_r("asset", "asset"), _r("account", "int64"), _r("detail", "string")),
    ),
    "orders": (
        *(_STEP, _TIME, _c("asset", "asset"), _r("account", "int64")),
        *(_r("kind", "pool", "order_kind"), _r("side", "int8"), _r("price", "float64")),
        *(_r("qty", "int64"), _r("order_id", "int64"), _r("status", "pool", "order_status")),
    ),
    "l2": (
        *(_STEP, _TIME, _c("asset", "asset"), _r("side", "int8"), _r("level", "int32")),
        *(_r("price", "float64"), _r("qty", "int64")),
    ),
}
#: Every table name, in the order files are listed.
TABLES = tuple(_SPECS)
#: Tables written by every recorder (the others are enabled by constructor flags).
CORE_TABLES = ("trades", "quotes", "accounts", "positions", "events")

from marketsim.ledger import RISK_REASONS as _RISK_REASONS  # noqa: E402

_ORDER_KINDS = [KIND_NAMES.get(i, "") for i in range(max(KIND_NAMES) + 1)]
_STATUS_NAMES = {**REJECT_REASONS, **_RISK_REASONS}
_ORDER_STATUS = [ACCEPTED] + [
    _STATUS_NAMES.get(i, f"CODE_{i}") for i in range(1, max(_STATUS_NAMES) + 1)
]


def schema(table: str) -> pa.Schema:
    """Return the Arrow schema of ``table`` (without file metadata).

    Raises:
        ConfigError: ``table`` is not one of :data:`TABLES`.
    """
    if table not in _SPECS:
        raise ConfigError(f"unknown recorder table {table!r}; known tables: {', '.join(TABLES)}")
    return pa.schema([(c.name, _ARROW[c.kind]) for c in _SPECS[table]])


class _Pool:
    """Append-only string table: code -> name and name -> code."""

    __slots__ = ("names", "codes", "fixed")

    def __init__(self, names: Sequence[str] = (), fixed: bool = False):
        self.names: list[str] = list(names)
        self.codes = {s: i for i, s in enumerate(self.names)}
        self.fixed = fixed

    def code(self, name: str) -> int:
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c


class _Table:
    """Buffers of one table: numpy arrays for row columns, a list of tuples for call columns."""

    __slots__ = ("name", "spec", "bufs", "calls", "n", "cap", "total", "slot_cols", "resolved")

    def __init__(self, name: str, cap: int):
        self.name = name
        self.spec = _SPECS[name]
        rows = [c for c in self.spec if c.store == "row"]
        self.bufs = [np.empty(cap, dtype=_NUMPY[c.kind]) for c in rows]
        self.slot_cols = [i for i, c in enumerate(rows) if c.kind == "slot"]
        self.calls: list[tuple] = []  # (call values..., row count) per append call
        self.n = 0  # rows in the buffers
        self.cap = cap  # set to -1 once closed, so the fast path falls to the checked one
        self.total = 0  # rows flushed
        self.resolved = 0  # rows whose slot columns already hold asset codes


def _len_error(table: str, arg: str, got: Any, k: int, ref: str) -> ConfigError:
    shape = getattr(got, "shape", None)
    what = f"shape {shape}" if shape is not None else f"length {len(got)}"
    return ConfigError(
        f"{table}(): argument {arg!r} has {what} but {ref!r} has length {k}; pass one value "
        f"per row (a 1-D array or sequence of length {k}) or a scalar"
    )


def _check_rows(
    table: str, ref: str, k: int, args: tuple[tuple[str, bool], ...], *values: Any
) -> None:
    """Raise ConfigError unless every value is a scalar or a 1-D array/sequence of length k.

    ``args`` holds (name, integer column) pairs; floats given for an integer column raise
    instead of being truncated.
    """
    for (name, integer), v in zip(args, values, strict=True):
        t = type(v)
        if t is np.ndarray:
            if v.shape != (k,) and v.ndim != 0:
                raise _len_error(table, name, v, k, ref)
            if integer and v.dtype.kind not in "iu":
                raise _dtype_error(table, name, v.dtype)
        elif t is int:
            pass
        elif t is list or t is tuple:
            if len(v) != k:
                raise _len_error(table, name, v, k, ref)
            if integer and k and np.asarray(v).dtype.kind not in "iu":
                raise _dtype_error(table, name, np.asarray(v).dtype)
        elif t is float:
            if integer:
                raise _dtype_error(table, name, "float")
        else:  # numpy scalars, other array-likes (pandas, ...), strings
            if isinstance(v, str | bytes):
                raise ConfigError(f"{table}(): argument {name!r} must be numeric, got {v!r}")
            a = np.asarray(v)
            if a.ndim != 0 and a.shape != (k,):
                raise _len_error(table, name, a, k, ref)
            if integer and a.dtype.kind not in "iu":
                raise _dtype_error(table, name, a.dtype)


def _dtype_error(table: str, name: str, dtype: Any) -> ConfigError:
    return ConfigError(
        f"{table}(): argument {name!r} must hold integers, got {dtype}; round explicitly "
        f"(e.g. np.rint(x).astype(np.int64)) instead of relying on truncation"
    )


def _nrows(table: str, name: str, v: Any, integer: bool = False) -> int:
    """Number of rows of the reference argument ``v`` (a 1-D array or sequence)."""
    if type(v) is np.ndarray:
        if v.ndim != 1:
            raise ConfigError(f"{table}(): argument {name!r} must be 1-D, got shape {v.shape}")
        if integer and v.dtype.kind not in "iu" and v.shape[0]:
            raise _dtype_error(table, name, v.dtype)
        return v.shape[0]
    if isinstance(v, str | bytes):
        raise ConfigError(f"{table}(): argument {name!r} must be an array, got {v!r}")
    try:
        n = len(v)
    except TypeError:
        raise ConfigError(
            f"{table}(): argument {name!r} must be a 1-D array or sequence, got "
            f"{type(v).__name__} {v!r}"
        ) from None
    if integer and n and np.asarray(v).dtype.kind not in "iu":
        raise _dtype_error(table, name, np.asarray(v).dtype)
    return n


class Recorder:
    """Columnar run recorder writing one Parquet file per table.

    Args:
        out_dir: Folder for ``<table>.parquet`` files (created if missing; existing files of
            the enabled tables are overwritten). ``None`` keeps every chunk in memory.
        asset_names: The name of the asset in each slot (``""`` for a free slot). The number of
            slots is fixed; rename a slot with :meth:`set_asset_name`.
        chunk_rows: Rows buffered per table before a flush; one Parquet row group per chunk.
        record_orders: Enable the ``orders`` table (otherwise :meth:`orders` is a no-op).
        l2_every: Record ``l2`` depth every this many steps (0: disabled; see :meth:`l2_due`).
        metadata: JSON-able dict stored in every file under key ``b"marketsim"`` (e.g.
            ``{"scenario_hash": ..., "seed": ..., "version": ...}``).
        agent_types: Initial agent-type names, so that integer code ``i`` in
            :meth:`accounts` means ``agent_types[i]``; more via :meth:`agent_type_code`.
        compression: Parquet compression codec.

    Raises:
        ConfigError: An argument is invalid (the message names it and the allowed values).

    Memory: about ``chunk_rows * 60`` bytes per enabled table (e.g. 4 MB at 65,536 rows).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str] | None,
        asset_names: Sequence[str],
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        record_orders: bool = False,
        l2_every: int = 0,
        metadata: Mapping[str, Any] | None = None,
        agent_types: Sequence[str] = (),
        compression: str = "zstd",
    ):
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int | np.integer):
            raise ConfigError(f"chunk_rows must be an int >= 1, got {chunk_rows!r}")
        if chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be an int >= 1, got {chunk_rows}")
        if isinstance(l2_every, bool) or not isinstance(l2_every, int | np.integer):
            raise ConfigError(f"l2_every must be an int >= 0 (0 disables l2), got {l2_every!r}")
        if l2_every < 0:
            raise ConfigError(f"l2_every must be an int >= 0 (0 disables l2), got {l2_every}")
        if isinstance(asset_names, str) or not all(isinstance(s, str) for s in asset_names):
            raise ConfigError(
                f"asset_names must be a sequence of str, one per slot ('' for a free slot), "
                f"got {asset_names!r}"
            )
        live = [s for s in asset_names if s]
        if len(set(live)) != len(live):
            dup = sorted({s for s in live if live.count(s) > 1})
            raise ConfigError(f"asset_names must be unique among live slots; repeated: {dup}")
        if isinstance(agent_types, str) or not all(isinstance(s, str) for s in agent_types):
            raise ConfigError(f"agent_types must be a sequence of str, got {agent_types!r}")
        if len(set(agent_types)) != len(agent_types):
            raise ConfigError(f"agent_types must be unique, got {list(agent_types)}")
        self.metadata = dict(metadata or {})
        try:
            meta_json = json.dumps(self.metadata, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"metadata must be a JSON-able dict: {e}") from None
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.chunk_rows = int(chunk_rows)
        self.record_orders = bool(record_orders)
        self.l2_every = int(l2_every)
        self.compression = compression
        self.closed = False

        self._pools = {
            "asset": _Pool([""]),
            "agent_type": _Pool(agent_types),
            "event_kind": _Pool(),
            "order_kind": _Pool(_ORDER_KINDS, fixed=True),
            "order_status": _Pool(_ORDER_STATUS, fixed=True),
        }
        self._slot_names = list(asset_names)
        self._slot_code = [self._pools["asset"].code(s) if s else -1 for s in asset_names]
        self._slot_code_np = np.array(self._slot_code, dtype=np.int32)

        names = list(CORE_TABLES)
        if self.record_orders:
            names.append("orders")
        if self.l2_every:
            names.append("l2")
        #: Names of the enabled tables.
        self.tables: tuple[str, ...] = tuple(names)
        self._t = {n: _Table(n, self.chunk_rows) for n in names}
        self._trades, self._quotes = self._t["trades"], self._t["quotes"]
        self._schemas = {
            n: schema(n).with_metadata({METADATA_KEY: meta_json.encode()}) for n in names
        }
        self._chunks: dict[str, list[pa.Table]] = {n: [] for n in names}  # in-memory mode
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._parts: dict[str, list[Path]] = {n: [] for n in names}  # finished files per table
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ names and codes
    @property
    def asset_names(self) -> list[str]:
        """Current asset name of each slot (``""`` for a free slot)."""
        return list(self._slot_names)

    def set_asset_name(self, slot: int, name: str) -> None:
        """Name (or, with ``""``, free) a slot; rows appended before keep the previous name.

        Raises:
            ConfigError: ``slot`` out of range, ``name`` not a str or used by another slot.

        Complexity: O(rows buffered since the last rename) to resolve their slots.
        """
        self._check_slot("set_asset_name", slot)
        if not isinstance(name, str):
            raise ConfigError(f"set_asset_name(): name must be a str, got {name!r}")
        if name and name in self._slot_names and self._slot_names.index(name) != slot:
            raise ConfigError(
                f"set_asset_name(): name {name!r} is already used by slot "
                f"{self._slot_names.index(name)}; free that slot first (name '')"
            )
        for t in self._t.values():
            self._resolve(t)
        self._slot_names[slot] = name
        code = self._pools["asset"].code(name) if name else -1
        self._slot_code[slot] = code
        self._slot_code_np[slot] = code

    def agent_type_code(self, name: str) -> int:
        """Return the integer code of agent type ``name`` for :meth:`accounts` (added if new)."""
        if not isinstance(name, str):
            raise ConfigError(f"agent_type_code(): name must be a str, got {name!r}")
        return self._pools["agent_type"].code(name)

    def l2_due(self, step: int) -> bool:
        """True when :meth:`l2` records at ``step`` (``l2_every > 0`` and it divides step)."""
        return self.l2_every > 0 and step % self.l2_every == 0

    @property
    def counts(self) -> dict[str, int]:
        """Rows recorded so far per enabled table (flushed plus buffered)."""
        return {n: t.total + t.n for n, t in self._t.items()}

    def path(self, table: str) -> Path:
        """Return ``<out_dir>/<table>.parquet`` (ConfigError in memory mode)."""
        self._table(table)
        if self.out_dir is None:
            raise ConfigError("path(): this recorder keeps its tables in memory (out_dir=None)")
        return self.out_dir / f"{table}.parquet"

    # ------------------------------------------------------------------ appends
    def trades(
        self,
        step: int,
        time_ns: int,
        slot: int,
        price: Any,
        qty: Any,
        aggressor: Any,
        buyer: Any,
        seller: Any,
    ) -> None:
        """Append one asset's fills of one step (arrays of equal length; scalars broadcast).

        Args:
            step: Simulation step.
            time_ns: Simulated market time, ns since the epoch.
            slot: Asset slot of every fill.
            price: Fill prices in currency (float).
            qty: Fill quantities in lots (> 0).
            aggressor: +1 if the taker bought, -1 if it sold.
            buyer: Buying account ids.
            seller: Selling account ids.

        Complexity: O(len(price)); about 2-3 µs for a few fills.
        """
        nd = np.ndarray
        if (  # fast check of the common case: 1-D arrays of one length, integer ids/qty
            type(price) is nd
            and type(qty) is nd
            and type(aggressor) is nd
            and type(buyer) is nd
            and type(seller) is nd
            and price.ndim == 1
            and qty.shape == aggressor.shape == buyer.shape == seller.shape == price.shape
            and qty.dtype.kind in "iu"
            and aggressor.dtype.kind in "iu"
            and buyer.dtype.kind in "iu"
            and seller.dtype.kind in "iu"
        ):
            k = price.shape[0]
        else:  # scalars, sequences, or an error naming the argument
            k = _nrows("trades", "price", price)
            _check_rows("trades", "price", k, _TRADE_ARGS, qty, aggressor, buyer, seller)
        if type(slot) is not int or not 0 <= slot < len(self._slot_code):
            self._check_slot("trades", slot)
        code = self._slot_code[slot]
        if code < 0:
            self._free_slot("trades", slot)
        if k == 0:
            return
        t = self._trades
        n = t.n
        m = n + k
        if m <= t.cap:
            b = t.bufs
            b[0][n:m] = price
            b[1][n:m] = qty
            b[2][n:m] = aggressor
            b[3][n:m] = buyer
            b[4][n:m] = seller
            t.calls.append((step, time_ns, code, k))
            t.n = m
            if m == t.cap:
                self._flush_table(t)
        else:
            self._append_slow(t, k, (step, time_ns, code), (price, qty, aggressor, buyer, seller))

    def trades_from_fills(
        self, step: int, time_ns: int, slot: int, fills: np.ndarray, tick_size: float
    ) -> None:
        """Append a book's ``FILL_DTYPE`` array (prices in ticks) as trades.

        The taker is the aggressor: ``buyer`` is the taker's owner when ``taker_side`` is BUY,
        else the maker's. Complexity: O(len(fills)).
        """
        if not isinstance(fills, np.ndarray) or fills.dtype != FILL_DTYPE:
            raise ConfigError(
                f"trades_from_fills(): fills must be a numpy array of FILL_DTYPE, got "
                f"{getattr(fills, 'dtype', type(fills).__name__)}"
            )
        side = fills["taker_side"]
        taker_buys = side == BUY
        self.trades(
            step,
            time_ns,
            slot,
            fills["price"] * float(tick_size),
            fills["qty"],
            side,
            np.where(taker_buys, fills["taker_owner"], fills["maker_owner"]),
            np.where(taker_buys, fills["maker_owner"], fills["taker_owner"]),
        )

    def quotes(
        self,
        step: int,
        time_ns: int,
        slots: Any,
        bid: Any,
        ask: Any,
        bid_qty: Any,
        ask_qty: Any,
        last: Any,
    ) -> None:
        """Append top of book for the live slots (arrays over slots; ``mid`` is derived).

        A side is empty when its price is NaN or its quantity is 0; the recorder writes both
        as NaN / 0 and ``mid = (bid + ask) / 2`` (NaN when a side is empty). ``slots`` may be a
        single int for one asset, with scalar prices.

        Args:
            step: Simulation step.
            time_ns: Simulated market time, ns since the epoch.
            slots: Asset slots, one per row.
            bid, ask: Best prices in currency (NaN: empty side).
            bid_qty, ask_qty: Quantity at the best price in lots (0: empty side).
            last: Last trade price (NaN before the first trade).

        Complexity: O(len(slots)); about 2-3 µs for one asset.
        """
        nd = np.ndarray
        if (  # fast check of the common case: 1-D arrays of one length, integer slots/qty
            type(slots) is nd
            and type(bid) is nd
            and type(ask) is nd
            and type(bid_qty) is nd
            and type(ask_qty) is nd
            and type(last) is nd
            and slots.ndim == 1
            and bid.shape == ask.shape == bid_qty.shape == ask_qty.shape == last.shape
            and bid.shape == slots.shape
            and slots.dtype.kind in "iu"
            and bid_qty.dtype.kind in "iu"
            and ask_qty.dtype.kind in "iu"
        ):
            k = slots.shape[0]
        else:  # one int slot with scalars, sequences, or an error naming the argument
            if type(slots) is int or isinstance(slots, np.integer):
                k = 1
            else:
                k = _nrows("quotes", "slots", slots, integer=True)
            _check_rows("quotes", "slots", k, _QUOTE_ARGS, bid, ask, bid_qty, ask_qty, last)
        if k == 0:
            return
        t = self._quotes
        n = t.n
        m = n + k
        if m <= t.cap:
            b = t.bufs
            b[0][n:m] = slots
            b[1][n:m] = bid
            b[2][n:m] = ask
            b[3][n:m] = bid_qty
            b[4][n:m] = ask_qty
            b[5][n:m] = last
            t.calls.append((step, time_ns, k))
            t.n = m
            if m == t.cap:
                self._flush_table(t)
        else:
            self._append_slow(t, k, (step, time_ns), (slots, bid, ask, bid_qty, ask_qty, last))

    def quotes_block(
        self,
        steps: np.ndarray,
        time_ns: np.ndarray,
        slots: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        bid_qty: np.ndarray,
        ask_qty: np.ndarray,
        last: np.ndarray,
    ) -> None:
        """Append top of book for ``K`` steps of the same ``S`` live slots in one call.

        The engine buffers quotes and flushes them here in blocks, so the per-step cost is a
        row copy instead of a Python call. Trusted input (no checks beyond shapes).

        Args:
            steps, time_ns: ``(K,)`` int steps and their market times.
            slots: ``(S,)`` int slots.
            bid, ask, last: ``(K, S)`` float prices (NaN: none); bid_qty, ask_qty: ``(K, S)``.

        Complexity: O(K * S) numpy plus O(K) list appends.
        """
        k_steps, n_slots = len(steps), len(slots)
        if k_steps == 0 or n_slots == 0:
            return
        if bid.shape != (k_steps, n_slots):
            raise ConfigError(
                f"quotes_block(): bid has shape {bid.shape}, expected ({k_steps}, {n_slots})"
            )
        rows = (
            np.tile(np.asarray(slots, np.int64), k_steps),
            bid.ravel(),
            ask.ravel(),
            bid_qty.ravel(),
            ask_qty.ravel(),
            last.ravel(),
        )
        self._block(self._quotes, rows, steps, time_ns, None, n_slots)

    def trades_block(
        self,
        steps: np.ndarray,
        time_ns: np.ndarray,
        slots: np.ndarray,
        price: np.ndarray,
        qty: np.ndarray,
        aggressor: np.ndarray,
        buyer: np.ndarray,
        seller: np.ndarray,
    ) -> None:
        """Append many steps' fills at once; every argument is ``(n,)`` and rows are grouped
        by (step, slot) in order (as the engine produces them). Trusted input."""
        n = len(price)
        if n == 0:
            return
        steps = np.asarray(steps, np.int64)
        slots = np.asarray(slots, np.int64)
        cut = np.flatnonzero((np.diff(steps) != 0) | (np.diff(slots) != 0)) + 1
        starts = np.concatenate(([0], cut))
        ends = np.concatenate((cut, [n]))
        t = self._trades
        rows = (price, qty, aggressor, buyer, seller)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            code = self._slot_asset("trades", int(slots[a]))
            self._append(
                t, b - a, (int(steps[a]), int(time_ns[a]), code), tuple(v[a:b] for v in rows)
            )

    def _block(
        self,
        t: _Table,
        rows: tuple,
        steps: np.ndarray,
        time_ns: np.ndarray,
        extra: tuple | None,
        per_step: int,
    ) -> None:
        """Write ``len(steps) * per_step`` rows with one (step, time) call per step."""
        if self.closed:
            raise MarketSimError(f"{t.name}(): the recorder is closed; create a new Recorder")
        total = len(steps) * per_step
        st = np.asarray(steps).tolist()
        tn = np.asarray(time_ns).tolist()
        done = 0
        while done < total:
            take = min(t.cap - t.n, total - done)
            n, m = t.n, t.n + take
            for b, v in zip(t.bufs, rows, strict=True):
                b[n:m] = v[done : done + take]
            for k in range(done // per_step, (done + take - 1) // per_step + 1):
                lo = max(done, k * per_step)
                hi = min(done + take, (k + 1) * per_step)
                t.calls.append((st[k], tn[k], hi - lo))
            t.n = m
            done += take
            if m == t.cap:
                self._flush_table(t)

    def accounts(self, step: int, account: Any, agent_type: Any, cash: Any, equity: Any) -> None:
        """Append account marks.

        Args:
            step: Simulation step.
            account: Account ids.
            agent_type: Integer codes (see ``agent_types`` and :meth:`agent_type_code`, the
                fast way), or str names (a sequence or one str for all rows).
            cash: Cash in currency.
            equity: Cash plus positions marked to market, in currency.

        Complexity: O(len(account)); plus a dict lookup per row when names are given.
        """
        k = _nrows("accounts", "account", account, integer=True)
        if isinstance(agent_type, str):
            agent_type = self.agent_type_code(agent_type)
        elif isinstance(agent_type, int | np.integer):
            pass
        elif not (isinstance(agent_type, np.ndarray) and agent_type.dtype.kind in "iu"):
            if _nrows("accounts", "agent_type", agent_type) != k:
                raise _len_error("accounts", "agent_type", agent_type, k, "account")
            agent_type = np.asarray(agent_type)
            if agent_type.dtype.kind in "UOS":
                pool = self._pools["agent_type"]
                try:
                    agent_type = np.fromiter((pool.code(s) for s in agent_type), np.int32, k)
                except (TypeError, AttributeError):
                    raise ConfigError(
                        "accounts(): agent_type must hold int codes or str names, got "
                        f"{agent_type!r}"
                    ) from None
            elif agent_type.dtype.kind not in "iu" and k:
                raise ConfigError(
                    f"accounts(): agent_type must hold int codes or str names, got dtype "
                    f"{agent_type.dtype}"
                )
        _check_rows("accounts", "account", k, _ACCOUNT_ARGS, agent_type, cash, equity)
        self._append(self._t["accounts"], k, (step,), (account, agent_type, cash, equity))

    def positions(self, step: int, account: Any, slot: Any, qty: Any) -> None:
        """Append positions; rows with ``qty == 0`` are dropped (the table lists nonzero ones).

        Complexity: O(len(account)).
        """
        k = _nrows("positions", "account", account, integer=True)
        _check_rows("positions", "account", k, _POSITION_ARGS, slot, qty)
        qty_a = np.asarray(qty)
        nz = qty_a != 0
        if qty_a.ndim == 0:
            if not nz:
                return
        elif not nz.all():
            account = np.broadcast_to(np.asarray(account), (k,))[nz]
            slot = np.broadcast_to(np.asarray(slot), (k,))[nz]
            qty = qty_a[nz]
            k = len(qty)
        self._append(self._t["positions"], k, (step,), (account, slot, qty))

    def event(
        self,
        step: int,
        time_ns: int,
        kind: str,
        asset: str | int = "",
        account: int = -1,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event (e.g. "asset_added", "asset_removed", "liquidation", "reject").

        Args:
            step: Simulation step.
            time_ns: Simulated market time, ns since the epoch.
            kind: Event kind.
            asset: Asset name, or a slot (its current name); ``""`` if none.
            account: Account id, -1 if none.
            detail: JSON-able dict, stored as a JSON string (``"{}"`` when None).

        Complexity: O(size of detail) for the JSON encoding.
        """
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"event(): kind must be a non-empty str, got {kind!r}")
        for name, v in (("step", step), ("time_ns", time_ns)):
            if not isinstance(v, int | np.integer) or isinstance(v, bool):
                raise ConfigError(f"event(): {name} must be an int, got {v!r}")
        if isinstance(asset, str):
            code = self._pools["asset"].code(asset)
        elif isinstance(asset, int | np.integer) and not isinstance(asset, bool):
            self._check_slot("event", asset)
            code = self._slot_code[asset]
            if code < 0:
                self._free_slot("event", asset)
        else:
            raise ConfigError(f"event(): asset must be a name (str) or a slot (int), got {asset!r}")
        if detail is None:
            text = "{}"
        elif not isinstance(detail, Mapping):
            raise ConfigError(f"event(): detail must be a dict or None, got {detail!r}")
        else:
            try:
                text = json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))
            except (TypeError, ValueError) as e:
                raise ConfigError(f"event(): detail must be JSON-able: {e}") from None
        if not isinstance(account, int | np.integer) or isinstance(account, bool):
            raise ConfigError(f"event(): account must be an int (-1 if none), got {account!r}")
        row = (step, time_ns, self._pools["event_kind"].code(kind), code, account, text)
        self._append(self._t["events"], 1, None, row)

    def orders(
        self,
        step: int,
        time_ns: int,
        slot: int,
        account: Any,
        kind: Any,
        side: Any,
        price: Any,
        qty: Any,
        order_id: Any,
        status: Any = 0,
    ) -> bool:
        """Append one asset's inbound orders of one step, if ``record_orders`` is on.

        Args:
            step, time_ns, slot: As in :meth:`trades`.
            account: Sending account ids.
            kind: Order kind codes (``LIMIT``, ``MARKET``, ...; written as their names).
            side: +1 buy, -1 sell (0 allowed for kinds that ignore the side).
            price: Limit prices in currency (NaN where the kind has none).
            qty: Quantities in lots.
            order_id: Order ids.
            status: 0 for accepted, else a reject reason code (written as its name).

        Returns:
            Whether the rows were recorded (False when ``record_orders`` is off).

        Complexity: O(len(account)).
        """
        if not self.record_orders:
            return False
        k = _nrows("orders", "account", account, integer=True)
        _check_rows("orders", "account", k, _ORDER_ARGS, kind, side, price, qty, order_id, status)
        code = self._slot_asset("orders", slot)
        rows = (account, kind, side, price, qty, order_id, status)
        self._append(self._t["orders"], k, (step, time_ns, code), rows)
        return True

    def orders_from_batch(
        self,
        step: int,
        time_ns: int,
        slot: int,
        batch: np.ndarray,
        tick_size: float,
        rejects: np.ndarray | None = None,
    ) -> bool:
        """Append a book batch (``ORDER_DTYPE``) with its ``REJECT_DTYPE`` rejects as orders.

        Prices are converted with ``tick_size``; kinds other than LIMIT and IOC get NaN.
        Returns whether rows were recorded. Complexity: O(len(batch)).
        """
        if not self.record_orders:
            return False
        if not isinstance(batch, np.ndarray) or batch.dtype != ORDER_DTYPE:
            raise ConfigError(
                f"orders_from_batch(): batch must be a numpy array of ORDER_DTYPE, got "
                f"{getattr(batch, 'dtype', type(batch).__name__)}"
            )
        status = np.zeros(len(batch), dtype=np.int64)
        if rejects is not None and len(rejects):
            if not isinstance(rejects, np.ndarray) or rejects.dtype != REJECT_DTYPE:
                raise ConfigError(
                    "orders_from_batch(): rejects must be a numpy array of REJECT_DTYPE, got "
                    f"{getattr(rejects, 'dtype', type(rejects).__name__)}"
                )
            status[rejects["index"]] = rejects["reason"]
        kind = batch["kind"]
        priced = (kind == LIMIT) | (kind == IOC)
        price = np.where(priced, batch["price"] * float(tick_size), np.nan)
        args = (batch["owner"], kind, batch["side"], price, batch["qty"], batch["order_id"])
        return self.orders(step, time_ns, slot, *args, status)

    def l2(
        self,
        step: int,
        time_ns: int,
        slot: int,
        bid_price: Any,
        bid_qty: Any,
        ask_price: Any,
        ask_qty: Any,
    ) -> bool:
        """Append one asset's depth, best level first, if :meth:`l2_due` is true for ``step``.

        Levels with quantity 0 (padding of a fixed-depth snapshot) are not written.
        Check :meth:`l2_due` before building the arrays to skip that work on other steps.

        Returns:
            Whether rows were recorded. Complexity: O(levels).
        """
        if not self.l2_due(step):
            return False
        code = self._slot_asset("l2", slot)
        nb = _nrows("l2", "bid_price", bid_price)
        na = _nrows("l2", "ask_price", ask_price)
        _check_rows("l2", "bid_price", nb, _L2_BID, bid_qty)
        _check_rows("l2", "ask_price", na, _L2_ASK, ask_qty)
        bq = np.broadcast_to(np.asarray(bid_qty, dtype=np.int64), (nb,))
        aq = np.broadcast_to(np.asarray(ask_qty, dtype=np.int64), (na,))
        qty = np.concatenate([bq, aq])
        price = np.concatenate([np.asarray(bid_price, np.float64), np.asarray(ask_price, float)])
        side = np.repeat(np.array([1, -1], dtype=np.int8), [nb, na])
        level = np.concatenate([np.arange(nb, dtype=np.int32), np.arange(na, dtype=np.int32)])
        if (qty < 0).any():
            raise ConfigError(f"l2(): quantities must be >= 0, got {qty[qty < 0][:5].tolist()}")
        keep = qty > 0
        rows = (side[keep], level[keep], price[keep], qty[keep])
        self._append(self._t["l2"], int(keep.sum()), (step, time_ns, code), rows)
        return True

    # ------------------------------------------------------------------ flush, close, read
    def flush(self) -> None:
        """Write every table's buffered rows (one row group each). Complexity: O(rows)."""
        if self.closed:
            return
        for t in self._t.values():
            if t.n:
                self._flush_table(t)

    def close(self) -> None:
        """Flush and finish every file (tables without rows get an empty file). Idempotent.

        The files are closed even when the final flush raises; that error is re-raised.
        """
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            for t in self._t.values():
                t.cap = -1  # appends now take the checked path, which raises
            if self.out_dir is not None:
                for name in self._t:
                    self._finish_file(name)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def arrow(self, table: str) -> pa.Table:
        """Return everything recorded in ``table`` so far as an Arrow table (with metadata).

        In file mode a file still being written is finished first (later chunks go to a part
        file that :meth:`close` merges back), so this is meant for occasional inspection.

        Raises:
            ConfigError: unknown or disabled table.

        Complexity: O(rows recorded).
        """
        t = self._table(table)
        if self.out_dir is None:
            parts = list(self._chunks[table])
        else:
            if table in self._writers:
                self._writers.pop(table).close()
            parts = [pq.read_table(p) for p in self._parts[table]]
            if self.closed and not parts:
                parts = [pq.read_table(self.path(table))]
        if t.n:
            parts.append(self._to_arrow(t, copy=True))
        if not parts:
            return self._schemas[table].empty_table()
        return pa.concat_tables(parts).replace_schema_metadata(self._schemas[table].metadata)

    def frame(self, table: str) -> pd.DataFrame:
        """Return ``table`` as a pandas DataFrame (string columns as categoricals).

        See :meth:`arrow`. Complexity: O(rows recorded).
        """
        return self.arrow(table).to_pandas()

    # ------------------------------------------------------------------ internals
    def _table(self, table: str) -> _Table:
        t = self._t.get(table) if isinstance(table, str) else None
        if t is None:
            if table == "orders":
                raise ConfigError("table 'orders' is disabled; create Recorder(record_orders=True)")
            if table == "l2":
                raise ConfigError("table 'l2' is disabled; create Recorder(l2_every=N) with N > 0")
            raise ConfigError(
                f"unknown recorder table {table!r}; enabled tables: {', '.join(self.tables)}"
            )
        return t

    def _check_slot(self, where: str, slot: Any) -> None:
        ok = isinstance(slot, int | np.integer) and not isinstance(slot, bool)
        if not ok or not 0 <= slot < len(self._slot_code):
            raise ConfigError(
                f"{where}(): slot must be an int in [0, {len(self._slot_code)}) (one per "
                f"asset_names entry), got {slot!r}"
            )

    def _free_slot(self, where: str, slot: int) -> None:
        raise ConfigError(
            f"{where}(): slot {slot} is free (no asset name); name it first with "
            f"set_asset_name({slot}, name)"
        )

    def _slot_asset(self, where: str, slot: Any) -> int:
        self._check_slot(where, slot)
        code = self._slot_code[slot]
        if code < 0:
            self._free_slot(where, slot)
        return code

    def _append(self, t: _Table, k: int, call: tuple | None, rows: tuple) -> None:
        """Generic append of k rows (per-call values in ``call``, row values in ``rows``)."""
        if k == 0:
            return
        n = t.n
        m = n + k
        if m <= t.cap:
            for b, v in zip(t.bufs, rows, strict=True):
                b[n:m] = v
            if call is not None:
                t.calls.append((*call, k))
            t.n = m
            if m == t.cap:
                self._flush_table(t)
        else:
            self._append_slow(t, k, call, rows)

    def _append_slow(self, t: _Table, k: int, call: tuple | None, rows: tuple) -> None:
        """Append rows that cross a chunk boundary (or raise when closed)."""
        if self.closed:
            raise MarketSimError(f"{t.name}(): the recorder is closed; create a new Recorder")
        rows = tuple(np.broadcast_to(np.asarray(v), (k,)) for v in rows)
        done = 0
        while done < k:
            take = min(t.cap - t.n, k - done)
            n, m = t.n, t.n + take
            for b, v in zip(t.bufs, rows, strict=True):
                b[n:m] = v[done : done + take]
            if call is not None:
                t.calls.append((*call, take))
            t.n = m
            done += take
            if m == t.cap:
                self._flush_table(t)

    def _resolve(self, t: _Table) -> None:
        """Replace buffered slots by asset-name codes (at flush and before a rename)."""
        if not t.slot_cols or t.resolved == t.n:
            return
        lo, hi = t.resolved, t.n
        for i in t.slot_cols:
            seg = t.bufs[i][lo:hi]
            bad = (seg < 0) | (seg >= len(self._slot_code))
            if bad.any():
                raise ConfigError(
                    f"{t.name}(): slot {int(seg[bad][0])} is out of range [0, "
                    f"{len(self._slot_code)}) (recorded since the last flush)"
                )
            codes = self._slot_code_np[seg]
            if (codes < 0).any():
                slot = int(seg[codes < 0][0])
                raise ConfigError(
                    f"{t.name}(): slot {slot} was free (no asset name) when recorded since the "
                    f"last flush; name it first with set_asset_name({slot}, name)"
                )
            seg[:] = codes
        t.resolved = hi

    def _columns(self, t: _Table) -> dict[str, np.ndarray]:
        """The buffered rows as numpy columns (views of the buffers, call columns expanded)."""
        n = t.n
        self._resolve(t)
        cols: dict[str, np.ndarray] = {}
        call_cols = [c for c in t.spec if c.store == "call"]
        if call_cols:
            calls = np.array(t.calls).reshape(-1, len(call_cols) + 1)
            if calls.dtype.kind not in "iu":
                _bad_call(t, call_cols)
            calls = calls.astype(np.int64, copy=False)
            counts = calls[:, -1]
            if int(counts.sum()) != n:  # internal invariant
                raise MarketSimError(f"recorder table {t.name!r}: call counts != buffered rows")
            for j, c in enumerate(call_cols):
                cols[c.name] = np.repeat(calls[:, j], counts)
        rows = [c for c in t.spec if c.store == "row"]
        for c, b in zip(rows, t.bufs, strict=True):
            cols[c.name] = b[:n]
        _check_table(t.name, cols, self._pools)
        return cols

    def _to_arrow(self, t: _Table, copy: bool) -> pa.Table:
        cols = self._columns(t)
        arrays = []
        for c in t.spec:
            v = cols[c.name]
            if copy and c.store == "row" and c.kind != "string":
                v = v.copy()  # the buffers are reused; Arrow may wrap numpy memory
            if c.kind in ("slot", "asset", "pool"):
                pool = self._pools["asset" if c.kind != "pool" else c.pool]
                arrays.append(
                    pa.DictionaryArray.from_arrays(
                        pa.array(v, pa.int32()), pa.array(pool.names, pa.string()), safe=False
                    )
                )
            elif c.kind == "string":
                arrays.append(pa.array(v, pa.string()))
            else:
                arrays.append(pa.array(v, _ARROW[c.kind]))
        return pa.Table.from_arrays(arrays, schema=self._schemas[t.name])

    def _flush_table(self, t: _Table) -> None:
        table = self._to_arrow(t, copy=self.out_dir is None)
        if self.out_dir is None:
            self._chunks[t.name].append(table)
        else:
            w = self._writers.get(t.name)
            if w is None:
                w = self._open_writer(t.name)
            w.write_table(table, row_group_size=max(t.n, 1))
        logger.debug("recorder: flushed %d rows of %s", t.n, t.name)
        t.total += t.n
        for i, c in enumerate(c for c in t.spec if c.store == "row"):
            if c.kind == "string":
                t.bufs[i][: t.n] = None  # drop references
        t.n = 0
        t.resolved = 0
        t.calls.clear()

    def _open_writer(self, name: str) -> pq.ParquetWriter:
        parts = self._parts[name]
        final = self.path(name)
        p = final if not parts else final.with_name(f".{name}.part{len(parts)}.parquet")
        parts.append(p)
        w = pq.ParquetWriter(p, self._schemas[name], compression=self.compression)
        self._writers[name] = w
        return w

    def _finish_file(self, name: str) -> None:
        """Close the writer; write an empty file if none; merge part files into one."""
        w = self._writers.pop(name, None)
        if w is not None:
            w.close()
        parts = self._parts[name]
        final = self.path(name)
        if not parts:
            pq.write_table(self._schemas[name].empty_table(), final, compression=self.compression)
            return
        if len(parts) == 1:
            return
        tmp = final.with_name(f".{name}.merge.parquet")
        with pq.ParquetWriter(tmp, self._schemas[name], compression=self.compression) as out:
            for p in parts:
                f = pq.ParquetFile(p)
                for i in range(f.num_row_groups):
                    rg = f.read_row_group(i)
                    out.write_table(rg.cast(self._schemas[name]), row_group_size=rg.num_rows)
                f.close()
        os.replace(tmp, final)
        for p in parts[1:]:
            p.unlink()
        self._parts[name] = [final]


_TRADE_ARGS = (("qty", True), ("aggressor", True), ("buyer", True), ("seller", True))
_QUOTE_ARGS = (("bid", False), ("ask", False), ("bid_qty", True), ("ask_qty", True))
_QUOTE_ARGS += (("last", False),)
_ACCOUNT_ARGS = (("agent_type", True), ("cash", False), ("equity", False))
_ORDER_ARGS = (("kind", True), ("side", True), ("price", False), ("qty", True))
_ORDER_ARGS += (("order_id", True), ("status", True))
_POSITION_ARGS = (("slot", True), ("qty", True))
_L2_BID, _L2_ASK = (("bid_qty", True),), (("ask_qty", True),)


def _bad_call(t: _Table, call_cols: list[_Col]) -> None:
    """Raise ConfigError for the first append call whose scalars are not integers."""
    names = [c.name if c.kind != "asset" else "slot" for c in call_cols]
    for call in t.calls:
        for name, v in zip(names, call, strict=False):
            if not isinstance(v, int | np.integer) or isinstance(v, bool):
                raise ConfigError(
                    f"{t.name}(): argument {name!r} must be an int (recorded since the last "
                    f"flush), got {v!r}"
                )
    raise MarketSimError(f"recorder table {t.name!r}: non-integer call values")  # unreachable


def _bad_value(table: str, col: str, cols: dict, bad: np.ndarray, allowed: str) -> ConfigError:
    i = int(np.flatnonzero(bad)[0])
    return ConfigError(
        f"{table}(): column {col!r} has value {cols[col][i].item()!r} at step {int(cols['step'][i])} "
        f"(recorded since the last flush, {int(bad.sum())} bad rows); allowed: {allowed}"
    )


def _check_table(name: str, cols: dict[str, np.ndarray], pools: dict[str, _Pool]) -> None:
    """Vectorised per-row checks and derived columns of one chunk (mutates the buffers)."""
    if name == "trades":
        a = cols["aggressor"]
        bad = (a != 1) & (a != -1)
        if bad.any():
            raise _bad_value(name, "aggressor", cols, bad, "+1 (buy) or -1 (sell)")
        bad = cols["qty"] <= 0
        if bad.any():
            raise _bad_value(name, "qty", cols, bad, "qty > 0")
    elif name == "quotes":
        for side in ("bid", "ask"):
            px, q = cols[side], cols[side + "_qty"]
            bad = q < 0
            if bad.any():
                raise _bad_value(name, side + "_qty", cols, bad, ">= 0 (0: empty side)")
            px[q == 0] = np.nan
            q[np.isnan(px)] = 0
        cols["mid"] = (cols["bid"] + cols["ask"]) * 0.5
    elif name == "orders":
        s = cols["side"]
        bad = (s < -1) | (s > 1)
        if bad.any():
            raise _bad_value(name, "side", cols, bad, "+1, -1 (or 0 for kinds without a side)")
    for col in ("agent_type", "kind", "status"):
        if col in cols and name != "events":
            pool = pools[{"accounts": "agent_type", "orders": "order_" + col}[name]]
            v = cols[col]
            bad = (v < 0) | (v >= len(pool.names))
            if pool.fixed and not bad.any():
                names = np.array(pool.names, dtype=object)
                bad = names[v] == ""
            if bad.any():
                codes = {i: s for i, s in enumerate(pool.names) if s}
                raise _bad_value(name, col, cols, bad, f"codes {codes}")
