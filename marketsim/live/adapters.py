"""Streaming market-data adapters that never block the simulation step.

Every adapter is a :class:`LiveSource`: a producer (another thread, or an asyncio network
client running in a background thread) validates incoming messages and appends :class:`Tick`
records to a bounded buffer; the simulation thread calls :meth:`LiveSource.poll`, which only
takes a lock, pops what is there and returns at once (O(returned ticks)), whatever the network
is doing.

Message format (JSON, one object per WebSocket frame, or a JSON array of objects)::

    {"seq": 17, "time_ns": 1704205800000000000, "ticker": "ABC", "kind": "trade",
     "price": 100.01, "size": 5}
    {"seq": 18, "time_ns": ..., "ticker": "ABC", "kind": "quote", "bid": 100.0, "ask": 100.02,
     "bid_size": 300, "ask_size": 200}
    {"seq": 19, "time_ns": ..., "ticker": "XYZ", "kind": "add_ticker", "price": 42.0}
    {"control": "end", "last_seq": 19}            # end of a replay (not a tick)

Validation (:func:`parse_tick`): a frame that is not JSON, a missing or mistyped field, an
unknown kind, a non-finite, zero or negative price, a negative size or a crossed quote
(bid > ask) is counted as *malformed* and dropped, never raised into the simulation and never
passed on half-checked. Sequencing (:class:`SequenceGuard`): a repeated ``seq`` is a
*duplicate*; a message arriving after a higher ``seq`` is *out of order* and is put back in
place if it arrives within the reorder window (``reorder_window`` messages or
``reorder_window_ms`` milliseconds, whichever runs out first); later than that it is *late*
and dropped. Ticks leave the guard in strictly increasing ``seq`` order.

Backpressure when the consumer falls behind (``policy``): ``"drop_oldest"`` (default; the
buffer keeps the freshest data), ``"drop_newest"`` (keep what is buffered, drop arrivals) or
``"block_producer"`` (nothing is dropped: the producer waits; for the WebSocket client that
means it stops reading the socket and TCP pushes back on the server).

Example:
    >>> src = QueueAdapter(maxsize=1000)
    >>> src.put(Tick(0, 1, "ABC", "trade", 100.0, 5.0))
    True
    >>> [t.price for t in src.poll(10)]
    [100.0]
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import math
import re
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

from marketsim.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "POLICIES",
    "PRICE_KINDS",
    "LiveSource",
    "QueueAdapter",
    "SequenceGuard",
    "Tick",
    "WebSocketAdapter",
    "parse_tick",
    "tick_to_json",
]

#: Message kinds a tick may have.
KINDS = ("trade", "quote", "bar", "add_ticker", "remove_ticker")
#: Kinds that carry a price for the reference value (see :meth:`Tick.ref_price`).
PRICE_KINDS = ("trade", "quote", "bar")
#: Backpressure policies of the bounded buffer.
POLICIES = ("drop_oldest", "drop_newest", "block_producer")
#: Counter names every adapter reports in :meth:`LiveSource.stats`.
COUNTERS = (
    "received",  # messages seen (a JSON array counts one per element; an unparsable frame one)
    "parsed",  # messages that passed validation
    "malformed",  # dropped by validation
    "duplicate",  # seq already seen
    "out_of_order",  # arrived after a higher seq and were put back in order
    "late",  # arrived after the reorder window gave up on them
    "gaps",  # seqs never received, skipped when the window ran out
    "dropped",  # dropped by the backpressure policy
    "delivered",  # returned by poll()
    "connects",  # successful (re)connections (network adapters)
    "reconnects",  # reconnection attempts after a failure or a disconnect
    "controls",  # control messages (end of stream, ...)
)

_TICKER = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_NAN = float("nan")


class Tick(NamedTuple):
    """One market-data message after validation. Floats are currency units and shares/lots.

    Attributes:
        seq: Sequence number of the stream (>= 0), strictly increasing after the guard.
        time_ns: Exchange (event) time in ns since the epoch.
        ticker: Symbol.
        kind: One of :data:`KINDS`.
        price: Trade or bar-close price; optional initial price of ``add_ticker``; NaN if none.
        size: Trade or bar volume (>= 0); 0 if none.
        bid, ask: Quote prices; NaN for a missing side.
        bid_size, ask_size: Quote sizes (>= 0).
        recv_ns: Local wall-clock time (``time.time_ns()``) the message was received; 0 if
            not stamped.
    """

    seq: int
    time_ns: int
    ticker: str
    kind: str
    price: float = _NAN
    size: float = 0.0
    bid: float = _NAN
    ask: float = _NAN
    bid_size: float = 0.0
    ask_size: float = 0.0
    recv_ns: int = 0

    def ref_price(self) -> float:
        """The price this tick says the asset is worth: trade/bar price, quote mid (or its one
        side), the initial price of ``add_ticker``; NaN when it carries none. O(1)."""
        if self.kind == "quote":
            b, a = self.bid, self.ask
            if b == b and a == a:
                return 0.5 * (b + a)
            return b if b == b else a
        return self.price


def _num(obj: Mapping[str, Any], key: str, default: float) -> float:
    v = obj.get(key)
    if v is None:
        return default
    tv = type(v)
    if tv is float and v - v == 0.0:  # the common case: a finite float
        return v
    if tv is int:
        return float(v)
    if tv is bool or not isinstance(v, int | float):
        raise DataError(f"{key}={v!r}: must be a number")
    x = float(v)
    if x != x:  # NaN: an absent value, as null
        return default
    if not math.isfinite(x):
        raise DataError(f"{key}={v!r}: must be finite")
    return x


def parse_tick(obj: Any, recv_ns: int = 0) -> Tick:
    """Validate one decoded JSON message and return it as a :class:`Tick`. O(fields).

    Required: ``seq`` (int >= 0), ``time_ns`` (int >= 0), ``ticker`` (1-32 of ``A-Za-z0-9_.-``),
    ``kind`` (one of :data:`KINDS`). Per kind: ``trade``/``bar`` need ``price > 0``; ``quote``
    needs ``bid`` and/or ``ask`` > 0 with ``bid <= ask``; ``add_ticker`` may carry ``price > 0``.
    Sizes default to 0 and must be >= 0. ``null`` or NaN means absent; infinities are errors.
    Unknown extra fields are ignored.

    Raises:
        DataError: naming the field, the bad value and what is allowed.
    """
    if not isinstance(obj, dict):
        raise DataError(f"a tick must be a JSON object, got {type(obj).__name__}: {obj!r:.80}")
    try:
        seq = obj["seq"]
        t = obj["time_ns"]
        ticker = obj["ticker"]
        kind = obj["kind"]
    except KeyError as e:
        raise DataError(
            f"tick is missing field {e.args[0]!r} (required: seq, time_ns, ticker, kind): "
            f"{obj!r:.120}"
        ) from None
    if type(seq) is not int or seq < 0:
        raise DataError(f"seq={seq!r}: must be an integer >= 0")
    if type(t) is not int or t < 0:
        raise DataError(f"time_ns={t!r}: must be an integer >= 0 (ns since the epoch)")
    if not isinstance(ticker, str) or not _TICKER.match(ticker):
        raise DataError(f"ticker={ticker!r}: must be 1-32 characters of A-Z a-z 0-9 _ . -")
    if kind not in KINDS:
        raise DataError(f"kind={kind!r}: must be one of {', '.join(KINDS)}")
    price = _num(obj, "price", _NAN)
    size = _num(obj, "size", 0.0)
    bid = _num(obj, "bid", _NAN)
    ask = _num(obj, "ask", _NAN)
    bid_size = _num(obj, "bid_size", 0.0)
    ask_size = _num(obj, "ask_size", 0.0)
    if size < 0 or bid_size < 0 or ask_size < 0:
        raise DataError(
            f"sizes must be >= 0, got size={size}, bid_size={bid_size}, ask_size={ask_size}"
        )
    if kind == "trade" or kind == "bar":
        if not price > 0:
            raise DataError(f"{kind} price={obj.get('price')!r}: must be a number > 0")
    elif kind == "quote":
        if bid != bid and ask != ask:
            raise DataError("quote has neither bid nor ask: give at least one side")
        if not (bid != bid or bid > 0) or not (ask != ask or ask > 0):
            raise DataError(f"quote bid={bid}, ask={ask}: prices must be > 0")
        if bid > ask:
            raise DataError(f"crossed quote bid={bid} > ask={ask}")
    elif kind == "add_ticker" and price == price and not price > 0:
        raise DataError(f"add_ticker price={price}: must be > 0 when given")
    return Tick(seq, t, ticker, kind, price, size, bid, ask, bid_size, ask_size, int(recv_ns))


def tick_to_json(t: Tick | Mapping[str, Any]) -> str:
    """The JSON text of a tick (NaN fields and ``recv_ns`` left out). O(fields)."""
    d = t._asdict() if isinstance(t, Tick) else dict(t)
    out = {}
    for k, v in d.items():
        if k == "recv_ns" or v is None:
            continue
        if isinstance(v, float) and (v != v or (v == 0.0 and k.endswith("size"))):
            continue
        out[k] = v
    return json.dumps(out, separators=(",", ":"))


# ------------------------------------------------------------------------------ sequencing
class SequenceGuard:
    """Drops duplicates, puts out-of-order messages back in order, gives up on gaps.

    Single-threaded (adapters call it under their lock). Ticks are released in strictly
    increasing ``seq`` order. A gap (missing ``seq``) is waited for while fewer than ``window``
    messages are pending behind it and the oldest pending one has waited less than
    ``window_ms``; then the guard skips it (counted in ``gaps``) and a message filling it later
    is *late*. The first message of a stream is also held for the window, so a stream whose
    first two messages are swapped is still delivered in order.

    Released seqs are remembered as runs (``[lo, hi]`` intervals; one per skipped gap), so a
    repeat of any released seq is told apart from a late message exactly. At most ``history``
    runs are kept; older ones are forgotten and repeats of them count as late.

    Args:
        window: Messages that may wait behind a gap (0: no reordering).
        window_ms: Longest wait of a message behind a gap, in milliseconds.
        history: Released runs remembered for duplicate detection.

    Complexity: O(log window) per message.
    """

    def __init__(self, window: int = 64, window_ms: float = 50.0, history: int = 65_536):
        if isinstance(window, bool) or not isinstance(window, int | np.integer) or window < 0:
            raise ConfigError(f"reorder_window={window!r}: must be an integer >= 0 (messages)")
        if not (isinstance(window_ms, int | float) and math.isfinite(window_ms) and window_ms >= 0):
            raise ConfigError(f"reorder_window_ms={window_ms!r}: must be a finite number >= 0")
        if isinstance(history, bool) or not isinstance(history, int) or history < 1:
            raise ConfigError(f"history={history!r}: must be an integer >= 1")
        self.window = int(window)
        self.window_ns = int(window_ms * 1e6)
        self.history = history
        #: Next seq to release; -1 before the first release.
        self.next_seq = -1
        self.max_seen = -1
        self._heap: list[tuple[int, Tick]] = []
        self._pending: set[int] = set()
        self._arrivals: deque[tuple[int, int]] = deque()  # (arrival ns, seq), arrival order
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._floor = -1  # seqs <= floor are no longer classifiable
        self.duplicate = 0
        self.out_of_order = 0
        self.late = 0
        self.gaps = 0

    @property
    def n_pending(self) -> int:
        """Messages waiting behind a gap."""
        return len(self._heap)

    def _was_released(self, s: int) -> bool:
        i = bisect_right(self._starts, s) - 1
        return i >= 0 and s <= self._ends[i]

    def _mark(self, s: int) -> None:
        if self._ends and self._ends[-1] == s - 1:
            self._ends[-1] = s
        else:
            self._starts.append(s)
            self._ends.append(s)
            if len(self._starts) > self.history:
                k = len(self._starts) // 2
                self._floor = self._ends[k - 1]
                del self._starts[:k], self._ends[:k]

    def push(self, tick: Tick, now_ns: int, out: list[Tick]) -> None:
        """Take one tick (arrived at monotonic ``now_ns``); append released ticks to ``out``."""
        s = tick.seq
        if s < self.next_seq:
            if s > self._floor and self._was_released(s):
                self.duplicate += 1
            else:
                self.late += 1
            return
        if s in self._pending:
            self.duplicate += 1
            return
        if s < self.max_seen:
            self.out_of_order += 1
        else:
            self.max_seen = s
        if s == self.next_seq:
            out.append(tick)
            self._mark(s)
            self.next_seq = s + 1
            self._drain(out)
            return
        heapq.heappush(self._heap, (s, tick))
        self._pending.add(s)
        self._arrivals.append((now_ns, s))
        self.expire(now_ns, out)

    def _drain(self, out: list[Tick]) -> None:
        heap = self._heap
        while heap and heap[0][0] == self.next_seq:
            s, t = heapq.heappop(heap)
            self._pending.discard(s)
            out.append(t)
            self._mark(s)
            self.next_seq = s + 1

    def _skip(self, out: list[Tick]) -> None:
        s, t = heapq.heappop(self._heap)
        self._pending.discard(s)
        if self.next_seq >= 0:
            self.gaps += s - self.next_seq
        out.append(t)
        self._mark(s)
        self.next_seq = s + 1
        self._drain(out)

    def expire(self, now_ns: int, out: list[Tick]) -> None:
        """Give up on gaps whose window has run out at monotonic ``now_ns``. O(k log window)."""
        arr = self._arrivals
        while self._heap:
            while arr and arr[0][1] not in self._pending:
                arr.popleft()
            too_many = len(self._heap) > self.window
            too_old = bool(arr) and now_ns - arr[0][0] > self.window_ns
            if not (too_many or too_old):
                break
            self._skip(out)
        if not self._heap:
            arr.clear()

    def flush(self, out: list[Tick]) -> None:
        """Release everything pending (end of stream), skipping the gaps. O(pending log)."""
        while self._heap:
            self._skip(out)
        self._arrivals.clear()


# ------------------------------------------------------------------------------ base source
class LiveSource:
    """A non-blocking source of :class:`Tick` records.

    Subclasses feed :meth:`_offer` from their producer side. The consumer side is
    :meth:`poll`, which never waits. All counters are in :meth:`stats`.

    Args:
        maxsize: Capacity of the buffer (ticks waiting for :meth:`poll`).
        policy: One of :data:`POLICIES`.
        reorder_window: Messages a gap may hold back (see :class:`SequenceGuard`); ``None``
            turns sequencing off (ticks pass in arrival order, duplicates included).
        reorder_window_ms: Longest wait behind a gap, in ms.
    """

    def __init__(
        self,
        maxsize: int = 65_536,
        policy: str = "drop_oldest",
        reorder_window: int | None = 64,
        reorder_window_ms: float = 50.0,
    ) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int | np.integer) or maxsize < 1:
            raise ConfigError(f"maxsize={maxsize!r}: must be an integer >= 1")
        if policy not in POLICIES:
            raise ConfigError(f"policy={policy!r}: must be one of {', '.join(POLICIES)}")
        self.maxsize = int(maxsize)
        self.policy = policy
        self._guard = (
            None if reorder_window is None else SequenceGuard(reorder_window, reorder_window_ms)
        )
        self._buf: deque[Tick] = deque()
        self._spill: deque[Tick] = deque()  # block_producer: released but not yet buffered
        self._cond = threading.Condition(threading.Lock())
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._released: list[Tick] = []
        self._malformed_logged = 0
        self.closed = False

    # ---------------------------------------------------------------- consumer side
    def poll(self, max_items: int = 1 << 30) -> list[Tick]:
        """Return up to ``max_items`` buffered ticks, oldest first; never waits.

        Also gives up on gaps whose reorder time window has run out, so data keeps flowing
        when the stream pauses. O(returned ticks).
        """
        with self._cond:
            if self._guard is not None and self._guard.n_pending:
                self._released.clear()
                self._guard.expire(time.monotonic_ns(), self._released)
                self._offer_locked(self._released)
            buf = self._buf
            n = min(max_items, len(buf))
            if n <= 0:
                return []
            out = [buf.popleft() for _ in range(n)]
            spill = self._spill
            while spill and len(buf) < self.maxsize:
                buf.append(spill.popleft())
            self._counts["delivered"] += n
            self._cond.notify_all()
        self._on_space()
        return out

    def qsize(self) -> int:
        """Ticks waiting to be polled (including ones held back by ``block_producer``)."""
        with self._cond:
            return len(self._buf) + len(self._spill)

    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (:data:`COUNTERS`) plus ``queued`` and ``pending``."""
        with self._cond:
            out = dict(self._counts)
            g = self._guard
            if g is not None:
                out["duplicate"] += g.duplicate
                out["out_of_order"] = g.out_of_order
                out["late"] = g.late
                out["gaps"] = g.gaps
            out["queued"] = len(self._buf) + len(self._spill)
            out["pending"] = 0 if g is None else g.n_pending
            return out

    def wait_until(self, predicate: Callable[[dict[str, int]], bool], timeout: float) -> bool:
        """Block the *caller* until ``predicate(stats())`` holds or ``timeout`` s pass.

        For tests and tools (the simulation uses :meth:`poll`). Returns the last verdict.
        """
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if predicate(st):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._cond:
                self._cond.wait(min(left, 0.05))

    # ---------------------------------------------------------------- producer side
    def _count_malformed(self, err: Exception, raw: Any) -> None:
        self._counts["malformed"] += 1
        self._malformed_logged += 1
        n = self._malformed_logged
        if n <= 5 or n & (n - 1) == 0:  # the first few, then at powers of two
            logger.warning("%s: dropped malformed message #%d (%s): %.120r", self, n, err, raw)

    def _accept_locked(self, ticks: Iterable[Tick]) -> None:
        """Pass validated ticks through the guard into the buffer (lock held)."""
        g = self._guard
        if g is None:
            self._offer_locked(ticks)
            return
        rel = self._released
        rel.clear()
        now = time.monotonic_ns()
        for t in ticks:
            g.push(t, now, rel)
        self._offer_locked(rel)

    def _offer_locked(self, ticks: Iterable[Tick]) -> None:
        buf, cap = self._buf, self.maxsize
        pol = self.policy
        c = self._counts
        for t in ticks:
            if self._spill or len(buf) >= cap:
                if pol == "drop_oldest":
                    buf.popleft()
                    c["dropped"] += 1
                elif pol == "drop_newest":
                    c["dropped"] += 1
                    continue
                else:
                    self._spill.append(t)
                    continue
            buf.append(t)

    def _on_space(self) -> None:
        """Hook: the consumer freed buffer space (network adapters wake their reader)."""

    def _full_locked(self) -> bool:
        return len(self._buf) + len(self._spill) >= self.maxsize

    # ---------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Stop the producer side (idempotent). Buffered ticks can still be polled."""
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------ in-process queue
class QueueAdapter(LiveSource):
    """A thread-safe, bounded in-process queue of ticks (any number of producer threads).

    Args:
        maxsize, policy, reorder_window, reorder_window_ms: As :class:`LiveSource`;
            sequencing is off by default (``reorder_window=None``) because independent
            producer threads rarely share one sequence.
    """

    def __init__(
        self,
        maxsize: int = 65_536,
        policy: str = "drop_oldest",
        reorder_window: int | None = None,
        reorder_window_ms: float = 50.0,
    ) -> None:
        super().__init__(maxsize, policy, reorder_window, reorder_window_ms)

    def __repr__(self) -> str:
        return f"QueueAdapter(maxsize={self.maxsize}, policy={self.policy!r})"

    def put(self, item: Tick | Mapping[str, Any], timeout: float | None = None) -> bool:
        """Validate and enqueue one tick (a :class:`Tick` or a message dict).

        With ``policy="block_producer"`` a full queue makes the caller wait (up to ``timeout``
        seconds; ``None``: until there is room or the adapter is closed). Returns False when
        the tick was dropped (malformed, full under ``drop_newest``, timed out, closed).
        O(1) amortised.
        """
        try:
            if isinstance(item, Tick):
                t = parse_tick(item._asdict(), item.recv_ns or time.time_ns())
            else:
                t = parse_tick(item, time.time_ns())
        except DataError as e:
            with self._cond:
                self._counts["received"] += 1
                self._count_malformed(e, item)
            return False
        with self._cond:
            self._counts["received"] += 1
            if self.closed:
                self._counts["dropped"] += 1
                return False
            if self.policy == "block_producer" and self._full_locked():
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._full_locked() and not self.closed:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        self._counts["dropped"] += 1
                        return False
                    self._cond.wait(0.1 if left is None else min(left, 0.1))
                if self.closed:
                    self._counts["dropped"] += 1
                    return False
            self._counts["parsed"] += 1
            before = self._counts["dropped"]
            self._accept_locked((t,))
            self._cond.notify_all()
            return self.policy != "drop_newest" or self._counts["dropped"] == before

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


# ------------------------------------------------------------------------------ websocket client
class WebSocketAdapter(LiveSource):
    """A WebSocket client in a background thread (asyncio + ``websockets``), reconnecting.

    Frames are JSON ticks (one object or an array of objects, see the module docs). The
    client reconnects after any failure or disconnect with exponential backoff
    (``reconnect_initial_s * reconnect_factor**k``, capped at ``reconnect_max_s``; reset by a
    successful connection); the sequence guard survives reconnections, so a server that
    resends recent messages on reconnect produces counted duplicates, not repeated ticks.

    Args:
        url: ``ws://`` or ``wss://`` address.
        maxsize, policy, reorder_window, reorder_window_ms: As :class:`LiveSource`.
        reconnect_initial_s, reconnect_max_s, reconnect_factor: Backoff schedule.
        max_reconnects: Give up after this many attempts in a row (``None``: never).
        open_timeout_s: Handshake timeout of one connection attempt.
        subscribe: A JSON-able message sent after each connection (e.g. a subscription).
        rng: Generator for +-25 % backoff jitter (``None``: no jitter).
        start: Start the background thread now (else call :meth:`start`).

    Example:
        >>> src = WebSocketAdapter("ws://127.0.0.1:8765", start=False)  # doctest: +SKIP
        >>> src.start(); ticks = src.poll(100); src.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        url: str,
        *,
        maxsize: int = 65_536,
        policy: str = "drop_oldest",
        reorder_window: int | None = 64,
        reorder_window_ms: float = 50.0,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 5.0,
        reconnect_factor: float = 2.0,
        max_reconnects: int | None = None,
        open_timeout_s: float = 5.0,
        subscribe: Any = None,
        rng: np.random.Generator | None = None,
        start: bool = True,
    ) -> None:
        super().__init__(maxsize, policy, reorder_window, reorder_window_ms)
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"url={url!r}: must start with ws:// or wss://")
        for name, v, lo in (
            ("reconnect_initial_s", reconnect_initial_s, 0.0),
            ("reconnect_max_s", reconnect_max_s, 0.0),
            ("reconnect_factor", reconnect_factor, 1.0),
            ("open_timeout_s", open_timeout_s, 0.0),
        ):
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= lo):
                raise ConfigError(f"{name}={v!r}: must be a finite number >= {lo:g}")
        if max_reconnects is not None and (
            not isinstance(max_reconnects, int) or max_reconnects < 0
        ):
            raise ConfigError(f"max_reconnects={max_reconnects!r}: must be None or an integer >= 0")
        self.url = url
        self.reconnect_initial_s = float(reconnect_initial_s)
        self.reconnect_max_s = float(max(reconnect_max_s, reconnect_initial_s))
        self.reconnect_factor = float(reconnect_factor)
        self.max_reconnects = max_reconnects
        self.open_timeout_s = float(open_timeout_s)
        self.subscribe = subscribe
        self._rng = rng
        #: ``"idle"``, ``"connecting"``, ``"connected"``, ``"backoff"``, ``"failed"``, ``"closed"``.
        self.state = "idle"
        #: Set while a connection is open.
        self.connected = threading.Event()
        #: Set when an end-of-stream control message arrived (cleared on the next connection).
        self.stream_ended = threading.Event()
        self.last_error: str = ""
        #: The most recent backoff waits in seconds (newest last; at most 32).
        self.backoff_log: deque[float] = deque(maxlen=32)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._space: asyncio.Event | None = None
        self._waiting_space = False
        if start:
            self.start()

    def __repr__(self) -> str:
        return f"WebSocketAdapter({self.url!r}, policy={self.policy!r})"

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> WebSocketAdapter:
        """Start the background thread (idempotent). Returns self.

        Raises:
            ConfigError: the ``websockets`` package is missing (``pip install websockets``).
        """
        if self._thread is not None:
            return self
        try:
            import websockets  # noqa: F401
        except ImportError:
            raise ConfigError(
                "WebSocketAdapter needs the 'websockets' package: pip install websockets"
            ) from None
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name=f"marketsim-ws {self.url}", daemon=True
        )
        self._thread.start()
        ready.wait(5.0)
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the client and join its thread (idempotent). Buffered ticks stay pollable."""
        self.closed = True
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop has just stopped
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        self.state = "closed"
        self.connected.clear()
        with self._cond:
            self._cond.notify_all()

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._main())
            self._space = asyncio.Event()
            ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:  # never let the thread die silently
            logger.exception("%s: client thread crashed", self)
            self.state = "failed"
        finally:
            ready.set()
            loop.close()

    def _on_space(self) -> None:
        if self._waiting_space and self._loop is not None and self._space is not None:
            try:
                self._loop.call_soon_threadsafe(self._space.set)
            except RuntimeError:
                pass

    # ---------------------------------------------------------------- network loop
    async def _main(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        delay = self.reconnect_initial_s
        attempts = 0
        while not self.closed:
            self.state = "connecting"
            try:
                async with connect(
                    self.url,
                    open_timeout=self.open_timeout_s,
                    close_timeout=1.0,
                    compression=None,
                    proxy=None,
                    max_size=16 * 1024 * 1024,
                ) as ws:
                    self.state = "connected"
                    self.stream_ended.clear()
                    with self._cond:
                        self._counts["connects"] += 1
                        self._cond.notify_all()
                    self.connected.set()
                    delay = self.reconnect_initial_s
                    attempts = 0
                    if self.subscribe is not None:
                        await ws.send(json.dumps(self.subscribe))
                    async for frame in ws:
                        self._on_frame(frame)
                        if self.policy == "block_producer":
                            await self._wait_for_space()
                    self.last_error = "closed by server"
            except asyncio.CancelledError:
                raise
            except InvalidURI as e:
                self.last_error = str(e)
                logger.error("%s: invalid url, giving up: %s", self, e)
                self.state = "failed"
                return
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake) as e:
                self.last_error = f"{type(e).__name__}: {e}"
                logger.info("%s: connection lost or refused (%s)", self, self.last_error)
            finally:
                self.connected.clear()
            if self.closed:
                break
            if self.max_reconnects is not None and attempts >= self.max_reconnects:
                logger.error("%s: giving up after %d reconnection attempts", self, attempts)
                self.state = "failed"
                return
            attempts += 1
            with self._cond:
                self._counts["reconnects"] += 1
                self._cond.notify_all()
            self.state = "backoff"
            wait = delay
            if self._rng is not None:
                wait *= 1.0 + 0.25 * (2.0 * float(self._rng.random()) - 1.0)
            self.backoff_log.append(wait)
            await asyncio.sleep(wait)
            delay = min(delay * self.reconnect_factor, self.reconnect_max_s)

    async def _wait_for_space(self) -> None:
        while not self.closed:
            with self._cond:
                if not self._full_locked():
                    self._waiting_space = False
                    return
                self._waiting_space = True
                self._space.clear()
            try:
                await asyncio.wait_for(self._space.wait(), 0.05)
            except TimeoutError:
                pass

    def _on_frame(self, frame: str | bytes) -> None:
        recv = time.time_ns()
        try:
            if isinstance(frame, bytes):
                frame = frame.decode("utf-8")
            obj = json.loads(frame)
        except (UnicodeDecodeError, ValueError) as e:
            with self._cond:
                self._counts["received"] += 1
                self._count_malformed(DataError(f"not JSON: {e}"), frame)
                self._cond.notify_all()
            return
        items = obj if isinstance(obj, list) else (obj,)
        ticks: list[Tick] = []
        end = False
        with self._cond:
            c = self._counts
            for it in items:
                c["received"] += 1
                if isinstance(it, dict) and "control" in it and "seq" not in it:
                    c["controls"] += 1
                    end = end or it.get("control") == "end"
                    continue
                try:
                    ticks.append(parse_tick(it, recv))
                except DataError as e:
                    self._count_malformed(e, it)
            c["parsed"] += len(ticks)
            self._accept_locked(ticks)
            if end and self._guard is not None:
                self._released.clear()
                self._guard.flush(self._released)
                self._offer_locked(self._released)
            self._cond.notify_all()
        if end:
            self.stream_ended.set()
