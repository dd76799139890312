"""LOBSTER files: read, convert to marketsim orders, replay into an :class:`OrderBook`, write.

LOBSTER (https://lobsterdata.com) ships two header-less CSV files per ticker and day:

* **message file**, one row per event: ``Time`` (seconds after midnight, decimals down to
  nanoseconds), ``Type``, ``Order ID``, ``Size`` (shares), ``Price`` (dollars x 10,000),
  ``Direction`` (+1 buy / -1 sell order; for executions the side of the *resting* order).
  Types: 1 new limit order, 2 partial cancellation (``Size`` = shares cancelled), 3 deletion,
  4 execution of a visible order, 5 execution of a hidden order, 6 cross trade (auction),
  7 trading halt (``Price`` -1: halt, 0: quoting resumes, 1: trading resumes).
* **orderbook file**, one row per message: the book *after* that message, ``L`` levels of
  ``AskPrice_l, AskSize_l, BidPrice_l, BidSize_l``; empty levels have price 9999999999 (ask)
  or -9999999999 (bid) and size 0.

Conversion to ``ORDER_DTYPE`` (:func:`to_orders`), prices in ticks of ``tick_size`` dollars,
sizes in lots of ``lot_size`` shares:

* 1 -> LIMIT (owner ``owner``, the LOBSTER order id, side = Direction);
* 2 -> MODIFY of the order to its remaining size (CANCEL if nothing remains);
* 3 -> CANCEL;
* 4 -> with ``executions="marketable"`` (default) an IOC from the synthetic counterparty
  account ``counterparty`` on the opposite side, limited at the execution price, with a
  negative order id (-1, -2, ...); under price-time priority it trades with exactly the order
  LOBSTER executed, so the book and the fills are reproduced. With ``executions="reduce"``
  the executed order is reduced (MODIFY/CANCEL) instead: the book is always reproduced, but
  no fills happen;
* 5 and 6 (hidden executions, cross trades) change no visible order: skipped and counted;
* 7 -> no order; the steps during which trading was halted are flagged in
  :attr:`LobsterOrders.halted`.

Orders the messages never introduced (LOBSTER files start with the book already holding
orders from before the sample) cannot be cancelled or executed by id: such messages are
skipped and counted in ``skipped["unknown_id"]``, and the replayed book differs from the
orderbook file around those orders. Replays of self-consistent message files, like the ones
:func:`synthetic_lobster` writes with our own book, reproduce the orderbook file exactly
(:func:`replay_lobster`).

Speed: conversion is a Python loop over messages (~1 us each); :func:`replay_lobster` calls
the book once per message to compare snapshots (~5-10 us per message).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from marketsim.book import (
    BUY,
    CANCEL,
    DEFAULT_MAX_PRICE_TICKS,
    IOC,
    LIMIT,
    MODIFY,
    ORDER_DTYPE,
    REJECT_REASONS,
    SELL,
    OrderBook,
    as_raw,
)
from marketsim.data.prepare import RawTable
from marketsim.errors import ConfigError, DataError

__all__ = [
    "EMPTY_ASK_PRICE",
    "EMPTY_BID_PRICE",
    "LOBSTER_CANCEL",
    "LOBSTER_CROSS",
    "LOBSTER_DELETE",
    "LOBSTER_EXECUTE",
    "LOBSTER_EXECUTE_HIDDEN",
    "LOBSTER_HALT",
    "LOBSTER_SUBMIT",
    "MESSAGE_COLUMNS",
    "PRICE_SCALE",
    "LobsterMessages",
    "LobsterOrders",
    "LobsterReplay",
    "book_row",
    "read_lobster_messages",
    "read_lobster_orderbook",
    "replay_lobster",
    "synthetic_lobster",
    "to_orders",
    "write_lobster",
]

logger = logging.getLogger(__name__)

#: Type 1: submission of a new limit order.
LOBSTER_SUBMIT = 1
#: Type 2: partial cancellation (``Size`` shares removed).
LOBSTER_CANCEL = 2
#: Type 3: total deletion of a limit order.
LOBSTER_DELETE = 3
#: Type 4: execution of a visible limit order.
LOBSTER_EXECUTE = 4
#: Type 5: execution of a hidden limit order.
LOBSTER_EXECUTE_HIDDEN = 5
#: Type 6: cross trade (auction).
LOBSTER_CROSS = 6
#: Type 7: trading halt indicator.
LOBSTER_HALT = 7
#: LOBSTER prices are dollars times this.
PRICE_SCALE = 10_000
#: Price of an empty ask level in the orderbook file.
EMPTY_ASK_PRICE = 9_999_999_999
#: Price of an empty bid level in the orderbook file.
EMPTY_BID_PRICE = -9_999_999_999
#: Names of the message file's columns (header-less in the file).
MESSAGE_COLUMNS = ("Time", "Type", "Order ID", "Size", "Price", "Direction")
_EXECUTIONS = ("marketable", "reduce")


# ---------------------------------------------------------------------------------- files
@dataclass(frozen=True)
class LobsterMessages:
    """A message file as arrays (``time`` float64 seconds after midnight, the rest int64).

    Attributes:
        time, type, order_id, size, price, direction: The six columns.
        source: File name for error messages ("" if built in memory).
    """

    time: np.ndarray
    type: np.ndarray
    order_id: np.ndarray
    size: np.ndarray
    price: np.ndarray
    direction: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def where(self, i: int) -> str:
        """``"<file>: line i+1"`` (the files have no header)."""
        return f"{self.source or '<messages>'}: line {i + 1}"


def _read_headerless(path: Path, names: Sequence[str], types: dict[str, Any]) -> RawTable:
    """Read a header-less CSV with pyarrow; fall back to text columns on a bad value."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    parse = pacsv.ParseOptions(ignore_empty_lines=False)
    read = pacsv.ReadOptions(column_names=list(names))
    try:
        table = pacsv.read_csv(path, read, parse, pacsv.ConvertOptions(column_types=types))
    except pa.ArrowInvalid as exc:
        if "CSV parse error" in str(exc):
            try:
                pd.read_csv(path, header=None, dtype=str, skip_blank_lines=False)
            except (pd.errors.ParserError, ValueError) as pexc:
                raise DataError(f"{path}: malformed CSV: {pexc}") from None
            raise DataError(f"{path}: malformed CSV: {exc}") from None
        text = {n: pa.string() for n in names}
        table = pacsv.read_csv(path, read, parse, pacsv.ConvertOptions(column_types=text))
    frame = table.to_pandas()
    blank = frame.isna().all(axis=1).to_numpy()
    pos = np.arange(len(frame), dtype=np.int64)
    if blank.any():
        frame = frame.loc[~blank].reset_index(drop=True)
        pos = pos[~blank]
    return RawTable(path, "csv", frame, pos, first_line=1)


def _n_columns(path: Path) -> int:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.strip():
                return line.count(",") + 1
    raise DataError(f"{path}: empty file")


def _integers(raw: RawTable, column: str, lo: float | None = None) -> np.ndarray:
    x = raw.numbers(column, rule="", required=True)
    bad = x != np.floor(x)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise raw.fail(i, column, f"non-integer value {float(x[i])!r}")
    if lo is not None and (x < lo).any():
        i = int(np.flatnonzero(x < lo)[0])
        raise raw.fail(i, column, f"value {float(x[i])!r} is below {lo:g}")
    return x.astype(np.int64)


def read_lobster_messages(path: str | os.PathLike) -> LobsterMessages:
    """Read a LOBSTER message file (extra trailing columns are ignored).

    Raises:
        DataError: naming file, line and column: non-numeric or non-integer values, unknown
            types, a direction other than +-1, a negative size or id, a non-positive price
            for types 1-6, or times going backwards.

    O(messages).
    """
    p = Path(path)
    n_cols = _n_columns(p)
    if n_cols < len(MESSAGE_COLUMNS):
        raise DataError(
            f"{p}: a LOBSTER message file has 6 columns ({', '.join(MESSAGE_COLUMNS)}), the "
            f"first line has {n_cols}"
        )
    names = list(MESSAGE_COLUMNS) + [f"extra{i}" for i in range(n_cols - len(MESSAGE_COLUMNS))]
    types = {"Time": pa.float64(), **{c: pa.int64() for c in MESSAGE_COLUMNS[1:]}}
    raw = _read_headerless(p, names, types)
    time = raw.numbers("Time", rule="", required=True)
    typ = _integers(raw, "Type")
    oid = _integers(raw, "Order ID", lo=0)
    size = _integers(raw, "Size", lo=0)
    price = _integers(raw, "Price")
    direction = _integers(raw, "Direction")
    bad = (typ < 1) | (typ > 7)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise raw.fail(i, "Type", f"unknown event type {typ[i]} (LOBSTER types are 1-7)")
    bad = (direction != 1) & (direction != -1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise raw.fail(i, "Direction", f"direction {direction[i]} (must be 1 or -1)")
    bad = (typ <= 6) & (price <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise raw.fail(i, "Price", f"non-positive price {price[i]} for event type {typ[i]}")
    if time.size > 1:
        back = np.diff(time) < 0
        if back.any():
            i = int(np.flatnonzero(back)[0]) + 1
            raise raw.fail(
                i,
                "Time",
                f"time {float(time[i])!r} is before the previous message's {float(time[i - 1])!r} "
                "(messages must be in time order)",
            )
    return LobsterMessages(time, typ, oid, size, price, direction, str(p))


def read_lobster_orderbook(path: str | os.PathLike) -> np.ndarray:
    """Read a LOBSTER orderbook file as int64 ``(rows, 4 * levels)``.

    Raises:
        DataError: column count not a multiple of 4, or a non-integer value (file, line,
            column ``AskPrice1`` etc.).
    """
    p = Path(path)
    n_cols = _n_columns(p)
    if n_cols % 4:
        raise DataError(
            f"{p}: a LOBSTER orderbook file has 4 columns per level (AskPrice, AskSize, "
            f"BidPrice, BidSize), the first line has {n_cols}"
        )
    names = [f"{k}{lvl}" for lvl in range(1, n_cols // 4 + 1) for k in _BOOK_KEYS]
    raw = _read_headerless(p, names, {n: pa.int64() for n in names})
    out = np.empty((len(raw.frame), n_cols), dtype=np.int64)
    for j, n in enumerate(names):
        out[:, j] = _integers(raw, n)
    return out


_BOOK_KEYS = ("AskPrice", "AskSize", "BidPrice", "BidSize")


def write_lobster(
    messages: LobsterMessages,
    orderbook: np.ndarray | None,
    messages_path: str | os.PathLike,
    orderbook_path: str | os.PathLike | None = None,
) -> None:
    """Write LOBSTER message (and orderbook) files, header-less, times with 9 decimals.

    Raises:
        ConfigError: the orderbook's row count differs from the message count.
    """
    n = len(messages)
    frame = pd.DataFrame(
        {
            "t": [f"{t:.9f}" for t in messages.time.tolist()],
            "type": messages.type,
            "id": messages.order_id,
            "size": messages.size,
            "price": messages.price,
            "dir": messages.direction,
        }
    )
    frame.to_csv(messages_path, header=False, index=False)
    if orderbook is not None:
        ob = np.asarray(orderbook, dtype=np.int64)
        if ob.ndim != 2 or ob.shape[0] != n or ob.shape[1] % 4:
            raise ConfigError(
                f"orderbook must have shape ({n}, 4 * levels), one row per message, got {ob.shape}"
            )
        if orderbook_path is None:
            raise ConfigError("orderbook_path is required when orderbook is given")
        np.savetxt(orderbook_path, ob, fmt="%d", delimiter=",")


# ---------------------------------------------------------------------------------- convert
@dataclass
class LobsterOrders:
    """Messages converted to marketsim orders, grouped into model steps.

    Attributes:
        orders: ``ORDER_DTYPE`` array in message order.
        message_index: 0-based message row that produced each order.
        step_offsets: int64 ``(n_steps + 1,)``: step ``k``'s orders are
            ``orders[step_offsets[k]:step_offsets[k + 1]]``.
        step_start_s: Start of each step, seconds after midnight.
        halted: bool per step: trading was halted at some time during the step.
        skipped: Messages that produced no order, by reason (``unknown_id``,
            ``duplicate_id``, ``hidden_execution``, ``cross_trade``, ``halt``).
    """

    orders: np.ndarray
    message_index: np.ndarray
    step_offsets: np.ndarray
    step_start_s: np.ndarray
    halted: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        """Number of steps from the first message's step to the last one's."""
        return int(self.step_start_s.shape[0])

    def step(self, k: int) -> np.ndarray:
        """Orders of step ``k`` (a view). O(1)."""
        return self.orders[self.step_offsets[k] : self.step_offsets[k + 1]]


def _tick_raw(tick_size: float) -> int:
    raw = tick_size * PRICE_SCALE
    if not (math.isfinite(raw) and raw >= 1 and abs(raw - round(raw)) < 1e-9):
        raise ConfigError(
            f"tick_size must be a positive multiple of 0.0001 dollars (the LOBSTER price "
            f"unit), got tick_size={tick_size!r}"
        )
    return int(round(raw))


def _check_multiples(msgs: LobsterMessages, tick_raw: int, lot_size: int, tick_size: float) -> None:
    book_types = msgs.type <= LOBSTER_EXECUTE
    bad = book_types & (msgs.price % tick_raw != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{msgs.where(i)}, column 'Price': price {msgs.price[i]} is not a multiple of "
            f"tick_size={tick_size} ({tick_raw} in LOBSTER units)"
        )
    bad = book_types & (msgs.size % lot_size != 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{msgs.where(i)}, column 'Size': size {msgs.size[i]} is not a multiple of "
            f"lot_size={lot_size}"
        )
    bad = book_types & (msgs.size <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{msgs.where(i)}, column 'Size': size must be > 0 for type {msgs.type[i]}")


def to_orders(
    messages: LobsterMessages,
    *,
    step_seconds: float = 1.0,
    tick_size: float = 0.01,
    lot_size: int = 1,
    executions: str = "marketable",
    owner: int = 0,
    counterparty: int = 1,
    start_s: float | None = None,
) -> LobsterOrders:
    """Convert LOBSTER messages into ``ORDER_DTYPE`` orders grouped per model step.

    Args:
        messages: From :func:`read_lobster_messages`.
        step_seconds: Model step length; message ``i`` goes to step
            ``floor((time[i] - start_s) / step_seconds)``.
        tick_size: Dollars per tick (a multiple of 0.0001).
        lot_size: Shares per lot.
        executions: ``"marketable"`` or ``"reduce"`` (see the module docstring).
        owner: Account id of the LOBSTER orders.
        counterparty: Account id of the synthetic takers of type-4 executions.
        start_s: Start of step 0 (default: the first message's time rounded down to a
            multiple of ``step_seconds``).

    Returns:
        The orders. O(messages).

    Raises:
        ConfigError: bad arguments. DataError: a price not on the tick grid, a size not a
            whole number of lots, or a zero size for types 1-4 (file and line named).
    """
    if executions not in _EXECUTIONS:
        raise ConfigError(f"executions must be one of {_EXECUTIONS}, got {executions!r}")
    if not (isinstance(step_seconds, int | float) and step_seconds > 0):
        raise ConfigError(f"step_seconds must be > 0, got step_seconds={step_seconds!r}")
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size < 1:
        raise ConfigError(f"lot_size must be an integer >= 1, got lot_size={lot_size!r}")
    tick_raw = _tick_raw(tick_size)
    _check_multiples(messages, tick_raw, lot_size, tick_size)
    n = len(messages)
    if start_s is None:
        start_s = math.floor(messages.time[0] / step_seconds) * step_seconds if n else 0.0
    steps = np.floor((messages.time - start_s) / step_seconds).astype(np.int64)
    if n and steps[0] < 0:
        raise ConfigError(f"start_s={start_s} is after the first message time {messages.time[0]}")
    n_steps = int(steps[-1]) + 1 if n else 0

    skipped = dict.fromkeys(
        ("unknown_id", "duplicate_id", "hidden_execution", "cross_trade", "halt"), 0
    )
    live: dict[int, list[int]] = {}  # id -> [side, price ticks, remaining lots]
    rows: list[tuple[int, int, int, int, int, int]] = []
    midx: list[int] = []
    halted = np.zeros(n_steps, dtype=bool)
    halt_from = -1
    synth = 0
    reduce = executions == "reduce"
    for i, (typ, oid, size, price, side) in enumerate(
        zip(
            messages.type.tolist(),
            messages.order_id.tolist(),
            messages.size.tolist(),
            messages.price.tolist(),
            messages.direction.tolist(),
            strict=True,
        )
    ):
        if typ == LOBSTER_SUBMIT:
            if oid in live:
                skipped["duplicate_id"] += 1
                continue
            p, q = price // tick_raw, size // lot_size
            live[oid] = [side, p, q]
            rows.append((oid, owner, p, q, LIMIT, side))
            midx.append(i)
        elif typ <= LOBSTER_EXECUTE:
            rec = live.get(oid)
            if rec is None:
                skipped["unknown_id"] += 1
                continue
            q = size // lot_size
            if typ == LOBSTER_EXECUTE and not reduce:
                synth -= 1
                rows.append((synth, counterparty, price // tick_raw, q, IOC, -rec[0]))
                midx.append(i)
                rec[2] -= q
                if rec[2] <= 0:
                    del live[oid]
                continue
            rem = 0 if typ == LOBSTER_DELETE else rec[2] - q
            if rem > 0:
                rec[2] = rem
                rows.append((oid, owner, rec[1], rem, MODIFY, rec[0]))
            else:
                del live[oid]
                rows.append((oid, owner, rec[1], 0, CANCEL, rec[0]))
            midx.append(i)
        elif typ == LOBSTER_EXECUTE_HIDDEN:
            skipped["hidden_execution"] += 1
        elif typ == LOBSTER_CROSS:
            skipped["cross_trade"] += 1
        else:  # halt indicator: -1 halt, 0 quoting resumes, 1 trading resumes
            skipped["halt"] += 1
            k = int(steps[i])
            if price == -1 and halt_from < 0:
                halt_from = k
            elif price == 1 and halt_from >= 0:
                halted[halt_from : k + 1] = True
                halt_from = -1
    if halt_from >= 0:
        halted[halt_from:] = True
    orders = np.array(rows, dtype=np.int64).reshape(-1, 6).view(ORDER_DTYPE).reshape(-1)
    message_index = np.array(midx, dtype=np.int64)
    offsets = np.searchsorted(steps[message_index], np.arange(n_steps + 1)).astype(np.int64)
    step_start = start_s + step_seconds * np.arange(n_steps, dtype=np.float64)
    if any(skipped.values()):
        logger.info("LOBSTER conversion of %s skipped %s", messages.source, skipped)
    return LobsterOrders(orders, message_index, offsets, step_start, halted, skipped)


# ---------------------------------------------------------------------------------- replay
def book_row(book: OrderBook, levels: int, tick_raw: int = 100, lot_size: int = 1) -> np.ndarray:
    """The book's top ``levels`` as one LOBSTER orderbook row (int64 ``(4 * levels,)``). O(L)."""
    bp, bq, ap, aq = book.depth(levels)
    row = np.empty(4 * levels, dtype=np.int64)
    row[0::4] = EMPTY_ASK_PRICE
    row[1::4] = 0
    row[2::4] = EMPTY_BID_PRICE
    row[3::4] = 0
    row[0 : 4 * ap.size : 4] = ap * tick_raw
    row[1 : 4 * aq.size : 4] = aq * lot_size
    row[2 : 4 * bp.size : 4] = bp * tick_raw
    row[3 : 4 * bq.size : 4] = bq * lot_size
    return row


@dataclass
class LobsterReplay:
    """Outcome of :func:`replay_lobster`.

    Attributes:
        book: The book after the last message.
        n_messages: Messages read.
        n_orders: Orders sent to the book.
        n_fills: Fills the book produced.
        rejects: ``(message line, reason name)`` of every rejected order.
        n_checked: Orderbook rows compared (0 without an orderbook file).
        n_mismatches: Rows whose top levels differ.
        first_mismatch: ``line``, ``expected`` and ``got`` rows of the first mismatch, or None.
        skipped: Messages that produced no order, by reason (see :class:`LobsterOrders`).
    """

    book: OrderBook
    n_messages: int
    n_orders: int
    n_fills: int
    rejects: list[tuple[int, str]]
    n_checked: int
    n_mismatches: int
    first_mismatch: dict[str, Any] | None
    skipped: dict[str, int]

    @property
    def ok(self) -> bool:
        """No rejects and no mismatching snapshot."""
        return not self.rejects and self.n_mismatches == 0


def replay_lobster(
    messages_path: str | os.PathLike,
    book: OrderBook | None = None,
    orderbook_path: str | os.PathLike | None = None,
    *,
    levels: int | None = None,
    tick_size: float = 0.01,
    lot_size: int = 1,
    executions: str = "marketable",
    owner: int = 0,
    counterparty: int = 1,
) -> LobsterReplay:
    """Replay a LOBSTER message file into a book, checking it against the orderbook file.

    After every message the book's top ``levels`` (default: all the file has) are compared
    with that message's orderbook row.

    Args:
        messages_path: The message file.
        book: Book to replay into (default: a new one large enough for the prices).
        orderbook_path: The orderbook file to validate against (optional).
        levels: Levels to compare (<= the file's).
        tick_size, lot_size, executions, owner, counterparty: As in :func:`to_orders`.

    Returns:
        The report; ``report.ok`` is True when every snapshot matched and nothing was
        rejected. O(messages * levels).

    Raises:
        DataError: unreadable files, or an orderbook with another row count.
    """
    msgs = read_lobster_messages(messages_path)
    conv = to_orders(
        msgs,
        tick_size=tick_size,
        lot_size=lot_size,
        executions=executions,
        owner=owner,
        counterparty=counterparty,
    )
    tick_raw = _tick_raw(tick_size)
    ob = None
    if orderbook_path is not None:
        ob = read_lobster_orderbook(orderbook_path)
        if ob.shape[0] != len(msgs):
            raise DataError(
                f"{orderbook_path}: {ob.shape[0]} rows, but {messages_path} has {len(msgs)} "
                "messages (one orderbook row per message)"
            )
        file_levels = ob.shape[1] // 4
        levels = file_levels if levels is None else int(levels)
        if not 1 <= levels <= file_levels:
            raise ConfigError(f"levels must be in [1, {file_levels}], got levels={levels}")
        ob = ob[:, : 4 * levels]
    if book is None:
        top = int(conv.orders["price"].max()) if len(conv.orders) else 0
        size = DEFAULT_MAX_PRICE_TICKS
        while size <= 2 * top:
            size *= 2
        book = OrderBook(max_price_ticks=size)
    raw = as_raw(conv.orders)
    ends = np.searchsorted(conv.message_index, np.arange(len(msgs)), side="right")
    j = 0
    n_fills = 0
    rejects: list[tuple[int, str]] = []
    n_checked = n_mismatch = 0
    first = None
    for i in range(len(msgs)):
        e = int(ends[i])
        if e > j:
            fills, rej = book.process_raw(raw[j:e])
            n_fills += fills.shape[0]
            for k in range(rej.shape[0]):
                rejects.append((i + 1, REJECT_REASONS.get(int(rej[k, 1]), str(rej[k, 1]))))
            j = e
        if ob is not None:
            got = book_row(book, levels, tick_raw, lot_size)
            n_checked += 1
            if not np.array_equal(got, ob[i]):
                n_mismatch += 1
                if first is None:
                    first = {"line": i + 1, "expected": ob[i].tolist(), "got": got.tolist()}
    return LobsterReplay(
        book, len(msgs), len(conv.orders), n_fills, rejects, n_checked, n_mismatch, first,
        conv.skipped,
    )  # fmt: skip


# ---------------------------------------------------------------------------------- synthetic
def synthetic_lobster(
    rng: np.random.Generator,
    n_messages: int = 1000,
    *,
    levels: int = 5,
    tick_size: float = 0.01,
    mid_price: float = 100.0,
    start_s: float = 34_200.0,
    mean_gap_s: float = 0.02,
    halt: bool = False,
) -> tuple[LobsterMessages, np.ndarray]:
    """A self-consistent LOBSTER sample generated with our own :class:`OrderBook`.

    Events: passive limit orders a few ticks from the touch (~50 %), partial cancellations,
    deletions, executions of the first order in the queue at the best price (a buyer or seller
    initiated trade, sent to the book as an IOC), and a few hidden executions (type 5, no
    book change). With ``halt`` the middle of the sample holds a halt (type 7: -1, 0, 1).

    Args:
        rng: The only source of randomness.
        n_messages: Number of messages (>= 1).
        levels: Levels per orderbook row.
        tick_size: Dollars per tick.
        mid_price: Initial mid price in dollars.
        start_s: Time of the first message, seconds after midnight.
        mean_gap_s: Mean exponential gap between messages.
        halt: Insert a trading halt.

    Returns:
        ``(messages, orderbook)`` with one orderbook row (after the message) per message.
        O(n_messages * live orders).
    """
    tick_raw = _tick_raw(tick_size)
    mid = int(round(mid_price / tick_size))
    book = OrderBook(max_price_ticks=max(DEFAULT_MAX_PRICE_TICKS, 4 * mid))
    live: dict[int, int] = {}  # id -> side
    msgs: list[tuple[float, int, int, int, int, int]] = []
    snaps: list[np.ndarray] = []
    next_id = 1
    synth = 0
    t = float(start_s)
    halt_at = n_messages // 2 if halt else -1
    while len(msgs) < n_messages:
        t += float(rng.exponential(mean_gap_s))
        if len(msgs) == halt_at:
            for code in (-1, 0, 1):
                if len(msgs) < n_messages:
                    msgs.append((t, LOBSTER_HALT, 0, 0, code, -1))
                    snaps.append(book_row(book, levels, tick_raw))
                    t += 1.0
            continue
        u = float(rng.random())
        ids = list(live)
        if len(ids) < 10 or u < 0.5:
            side = BUY if rng.random() < 0.5 else SELL
            bb, ba = book.best_bid(), book.best_ask()
            off = int(rng.integers(1, 8))
            if side == BUY:
                price = (ba if ba is not None else mid + 1) - off
            else:
                price = (bb if bb is not None else mid - 1) + off
            qty = int(rng.integers(1, 50))
            book.limit(side, price, qty, next_id)
            live[next_id] = side
            msgs.append((t, LOBSTER_SUBMIT, next_id, qty, price * tick_raw, side))
            next_id += 1
        elif u < 0.8:
            oid = ids[int(rng.integers(len(ids)))]
            info = book.order(oid)
            if u < 0.65 and info.remaining >= 2:
                c = int(rng.integers(1, info.remaining))
                book.modify(oid, info.remaining - c)
                msgs.append((t, LOBSTER_CANCEL, oid, c, info.price * tick_raw, info.side))
            else:
                book.cancel(oid)
                del live[oid]
                msgs.append(
                    (t, LOBSTER_DELETE, oid, info.remaining, info.price * tick_raw, info.side)
                )
        elif u < 0.97:
            side = BUY if rng.random() < 0.5 else SELL  # side of the resting order executed
            best = book.best_bid() if side == BUY else book.best_ask()
            if best is None:
                continue
            head = next(
                o
                for o in ids
                if live[o] == side and (info := book.order(o)).price == best and info.ahead == 0
            )
            info = book.order(head)
            q = int(rng.integers(1, info.remaining + 1))
            synth -= 1
            fills = book.ioc(-side, best, q, synth)
            if fills.shape[0] != 1 or int(fills["maker_id"][0]) != head:  # pragma: no cover
                raise RuntimeError("synthetic_lobster: execution did not hit the queue head")
            if q == info.remaining:
                del live[head]
            msgs.append((t, LOBSTER_EXECUTE, head, q, best * tick_raw, side))
        else:
            q = int(rng.integers(1, 20))
            side = BUY if rng.random() < 0.5 else SELL
            msgs.append((t, LOBSTER_EXECUTE_HIDDEN, 0, q, mid * tick_raw, side))
        snaps.append(book_row(book, levels, tick_raw))
    arr = np.array([m[1:] for m in msgs], dtype=np.int64).reshape(-1, 5)
    times = np.round(np.array([m[0] for m in msgs], dtype=np.float64), 9)
    messages = LobsterMessages(
        times, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(),
        arr[:, 4].copy(),
    )  # fmt: skip
    return messages, np.array(snaps, dtype=np.int64).reshape(len(msgs), 4 * levels)
