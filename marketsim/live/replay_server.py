"""A WebSocket server on localhost that replays a Parquet file of ticks, with fault injection.

Input files (:func:`load_ticks`), recognised by their columns:

* a recorder ``trades.parquet`` (``time``, ``asset``, ``price``, ``qty``) or a simple
  ``time, ticker, price, size`` file: ``trade`` ticks;
* a recorder ``quotes.parquet`` (``time``, ``asset``, ``bid``, ``ask``, ``bid_qty``,
  ``ask_qty``): ``quote`` ticks (rows with both sides empty are skipped);
* a generic tick file with a ``kind`` column (and any of ``seq``, ``price``, ``size``, ``bid``,
  ``ask``, ``bid_size``, ``ask_size``), which may announce tickers (``add_ticker``,
  ``remove_ticker``).

``time`` may be a timestamp column, integer ns or float seconds (``time_ns`` is read as ns).
Rows are sorted by time (stable) and numbered ``seq = 0, 1, ...`` unless the file has ``seq``.

Each connection receives the ticks as JSON frames (see :mod:`marketsim.live.adapters`) paced by
their timestamps divided by ``speed`` (``speed = 0``: as fast as possible), then an
end-of-stream control message ``{"control": "end", "last_seq": N}``; the connection then stays
open until the client leaves. A new connection resumes where the previous ones got to, minus
``Faults.resend_on_reconnect`` messages (a server that replays a little history on reconnect,
so clients must drop duplicates).

Faults (:class:`Faults`, all deterministic by message index): malformed frames, duplicated
ticks, ticks held back behind later ones (out of order; late when held back beyond the
client's reorder window) and one server restart mid-stream.

Command line::

    python -m marketsim.live.replay_server FILE --port 8765 [--speed 1.0] [--batch 1]
        [--malformed-every K] [--duplicate-every K] [--delay-every K --delay-by D]
        [--restart-after N --restart-down-s S] [--resend-on-reconnect R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketsim.errors import ConfigError, DataError, MarketSimError

logger = logging.getLogger(__name__)

__all__ = ["MALFORMED_FRAMES", "Faults", "ReplayServer", "build_plan", "load_ticks", "main"]

#: Frames sent by ``Faults.malformed_every``, in turn; each counts as exactly one malformed
#: message at a client.
MALFORMED_FRAMES = (
    '{"seq": 1, "time_ns": ',
    '{"seq": 3, "ticker": "ABC"}',
    '{"seq": 5, "time_ns": 1, "ticker": "ABC", "kind": "trade", "price": -1.0, "size": 1}',
    '{"seq": 7, "time_ns": 1, "ticker": "ABC", "kind": "teleport", "price": 1.0}',
    "not json at all",
    '"a string"',
    '{"seq": 9, "time_ns": 1, "ticker": "ABC", "kind": "quote", "bid": 101.0, "ask": 100.0}',
    '{"seq": "x", "time_ns": 1, "ticker": "ABC", "kind": "trade", "price": 1.0}',
)

_FIELDS = ("price", "size", "bid", "ask", "bid_size", "ask_size")


@dataclass(frozen=True)
class Faults:
    """Deterministic faults injected by :class:`ReplayServer` (0 disables each).

    Attributes:
        malformed_every: After every k-th tick, send one malformed frame.
        duplicate_every: Send every k-th tick twice in a row.
        delay_every: Hold every k-th tick back...
        delay_by: ...and send it after the next ``delay_by`` ticks.
        restart_after: Restart the server once, after this many frames were sent in all.
        restart_down_s: Seconds the server stays down during the restart.
        resend_on_reconnect: A new connection starts this many messages before the furthest
            point any earlier connection reached.
    """

    malformed_every: int = 0
    duplicate_every: int = 0
    delay_every: int = 0
    delay_by: int = 1
    restart_after: int = 0
    restart_down_s: float = 0.2
    resend_on_reconnect: int = 0

    def __post_init__(self) -> None:
        for name in (
            "malformed_every",
            "duplicate_every",
            "delay_every",
            "restart_after",
            "resend_on_reconnect",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"Faults.{name}={v!r}: must be an integer >= 0 (0 = off)")
        if (
            isinstance(self.delay_by, bool)
            or not isinstance(self.delay_by, int)
            or self.delay_by < 1
        ):
            raise ConfigError(f"Faults.delay_by={self.delay_by!r}: must be an integer >= 1")
        if not (math.isfinite(self.restart_down_s) and self.restart_down_s >= 0):
            raise ConfigError(f"Faults.restart_down_s={self.restart_down_s!r}: must be >= 0")


def build_plan(n: int, faults: Faults) -> list[int]:
    """The send order of ``n`` ticks with faults: tick indices, ``-(k + 1)`` for malformed
    frame ``k`` of :data:`MALFORMED_FRAMES`. O(n * pending delays)."""
    order: list[int] = []
    held: list[list[int]] = []  # [ticks still to pass, index]
    k = faults.delay_every
    for i in range(n):
        if k and (i + 1) % k == 0:
            held.append([faults.delay_by, i])
            continue
        order.append(i)
        if held:
            for h in held:
                h[0] -= 1
            order.extend(h[1] for h in held if h[0] <= 0)
            held = [h for h in held if h[0] > 0]
    order.extend(h[1] for h in held)
    plan: list[int] = []
    m = 0
    for j, i in enumerate(order, 1):
        plan.append(i)
        if faults.duplicate_every and j % faults.duplicate_every == 0:
            plan.append(i)
        if faults.malformed_every and j % faults.malformed_every == 0:
            plan.append(-(m % len(MALFORMED_FRAMES)) - 1)
            m += 1
    return plan


# ------------------------------------------------------------------------------ loading
def _time_ns(col: Any, path: Path, name: str) -> np.ndarray:
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col):
        if getattr(col.dt, "tz", None) is not None:
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        return col.astype("datetime64[ns]").to_numpy().astype(np.int64)
    arr = col.to_numpy()
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: column {name!r} has missing or non-finite times")
        return np.round(arr * 1e9).astype(np.int64)
    raise DataError(
        f"{path}: column {name!r} has dtype {arr.dtype}; need a timestamp, integer ns or "
        "float seconds"
    )


def load_ticks(path: str | Path) -> list[dict[str, Any]]:
    """Read a Parquet file of ticks into JSON-able dicts in replay order. O(rows log rows).

    Raises:
        DataError: unreadable file or columns that fit none of the known layouts (the
            message names the file and the columns it needs).
    """
    import pandas as pd

    p = Path(path)
    try:
        df = pd.read_parquet(p)
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DataError(f"{p}: cannot read as Parquet ({type(e).__name__}: {e})") from None
    cols = set(df.columns)
    tcol = "time_ns" if "time_ns" in cols else "time" if "time" in cols else None
    scol = next((c for c in ("ticker", "asset", "symbol") if c in cols), None)
    if tcol is None or scol is None:
        raise DataError(
            f"{p}: needs a time column ('time' or 'time_ns') and a ticker column ('ticker', "
            f"'asset' or 'symbol'); found {sorted(cols)}"
        )
    if "kind" in cols:
        kinds = df["kind"].astype(str).to_numpy()
        layout = "generic"
    elif {"bid", "ask"} <= cols:
        kinds = np.full(len(df), "quote", dtype=object)
        layout = "quotes"
    elif "price" in cols:
        kinds = np.full(len(df), "trade", dtype=object)
        layout = "trades"
    else:
        raise DataError(
            f"{p}: unknown layout; need 'price' (trades), 'bid' and 'ask' (quotes) or 'kind' "
            f"(generic ticks); found {sorted(cols)}"
        )
    times = _time_ns(df[tcol], p, tcol)
    tickers = df[scol].astype(str).to_numpy()
    rename = {"qty": "size", "bid_qty": "bid_size", "ask_qty": "ask_size"}
    values = {}
    for c in df.columns:
        f = rename.get(c, c)
        if f in _FIELDS and f not in values:
            values[f] = df[c].to_numpy(dtype=np.float64, na_value=np.nan)
    if layout == "quotes":
        keep = ~(np.isnan(values["bid"]) & np.isnan(values["ask"]))
    else:
        keep = np.ones(len(df), bool)
    seqs = df["seq"].to_numpy().astype(np.int64) if "seq" in cols else None
    order = np.argsort(times, kind="stable")
    order = order[keep[order]]
    out: list[dict[str, Any]] = []
    for j, i in enumerate(order.tolist()):
        d: dict[str, Any] = {
            "seq": int(seqs[i]) if seqs is not None else j,
            "time_ns": int(times[i]),
            "ticker": str(tickers[i]),
            "kind": str(kinds[i]),
        }
        for f, arr in values.items():
            v = float(arr[i])
            if v == v:
                d[f] = v
        out.append(d)
    return out


# ------------------------------------------------------------------------------ server
class ReplayServer:
    """Replays ticks to every WebSocket client that connects (see the module docs).

    Runs its own asyncio loop in a background thread; :meth:`start` returns once the server
    listens (the chosen port is in :attr:`port`), :meth:`stop` closes every connection.
    Starting again after a stop reuses the same port, which is how tests take the server down
    and bring it back.

    Args:
        ticks: Tick dicts (as :func:`load_ticks` returns) or a Parquet path.
        host: Address to bind (default localhost only).
        port: TCP port; 0 picks a free one.
        speed: Replay speed factor over the ticks' timestamps; 0 = as fast as possible.
        batch: Ticks per frame (a JSON array when > 1).
        faults: Faults to inject.
    """

    def __init__(
        self,
        ticks: Sequence[Mapping[str, Any]] | str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 0.0,
        batch: int = 1,
        faults: Faults | None = None,
    ) -> None:
        if isinstance(ticks, str | Path):
            ticks = load_ticks(ticks)
        if not (isinstance(speed, int | float) and math.isfinite(speed) and speed >= 0):
            raise ConfigError(f"speed={speed!r}: must be a finite number >= 0 (0 = no pacing)")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ConfigError(f"batch={batch!r}: must be an integer >= 1")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError(f"port={port!r}: must be an integer in [0, 65536)")
        self.host = host
        self.port = port
        self.speed = float(speed)
        self.batch = batch
        self.faults = faults or Faults()
        self._frames = [json.dumps(dict(t), separators=(",", ":")) for t in ticks]
        self._times = np.array([int(t["time_ns"]) for t in ticks], dtype=np.int64)
        self._last_seq = max((int(t["seq"]) for t in ticks), default=-1)
        self._plan = build_plan(len(self._frames), self.faults)
        #: Furthest plan position any connection reached (frames sent, faults included).
        self.position = 0
        #: Connections accepted so far, and restarts done.
        self.connections = 0
        self.restarts = 0
        #: Set when the injected restart has brought the server back up.
        self.restarted = threading.Event()
        self._restart_done = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        """``ws://host:port``."""
        return f"ws://{self.host}:{self.port}"

    @property
    def n_ticks(self) -> int:
        """Number of distinct ticks replayed."""
        return len(self._frames)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 10.0) -> ReplayServer:
        """Listen in a background thread; return once the port is bound.

        Raises:
            ConfigError: ``websockets`` is missing, or the port cannot be bound.
        """
        if self._thread is not None:
            return self
        try:
            import websockets  # noqa: F401
        except ImportError:
            raise ConfigError("ReplayServer needs the 'websockets' package") from None
        ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready,), name="marketsim-replay", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout) or self._error is not None:
            self._thread.join(1.0)
            self._thread = None
            raise ConfigError(
                f"replay server could not listen on {self.host}:{self.port}: {self._error}"
            )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and stop listening (idempotent)."""
        loop, ev, th = self._loop, self._stop, self._thread
        if th is None:
            return
        if loop is not None and ev is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:
                pass
        th.join(timeout)
        self._thread = None

    def _thread_main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as e:  # report bind errors to start()
            self._error = e
            ready.set()
        finally:
            loop.close()

    async def _listen(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(
            self._handler, self.host, self.port, compression=None, max_size=1 << 20
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        await self._listen()
        logger.info("replaying %d ticks on %s", self.n_ticks, self.url)
        ready.set()
        await self._stop.wait()
        srv = self._server
        if srv is not None:
            srv.close(close_connections=True)
            await srv.wait_closed()

    async def _restart(self) -> None:
        srv = self._server
        self._server = None
        if srv is not None:
            srv.close(close_connections=True, code=1012, reason="service restart")
            await srv.wait_closed()
        await asyncio.sleep(self.faults.restart_down_s)
        if self._stop is not None and not self._stop.is_set():
            await self._listen()
            self.restarts += 1
            self.restarted.set()
            logger.info("replay server restarted on %s", self.url)

    # ---------------------------------------------------------------- one connection
    async def _handler(self, ws: Any) -> None:
        self.connections += 1
        f = self.faults
        pos = 0 if self.connections == 1 else max(0, self.position - f.resend_on_reconnect)
        plan, frames, times = self._plan, self._frames, self._times
        t0_wall = time.monotonic()
        t0_data: int | None = None
        group: list[str] = []
        while pos < len(plan):
            if f.restart_after and not self._restart_done and self.position >= f.restart_after:
                self._restart_done = True
                if group:
                    await ws.send("[" + ",".join(group) + "]")
                    group.clear()
                await ws.close(1012, "service restart")
                asyncio.get_running_loop().create_task(self._restart())
                return
            e = plan[pos]
            if e < 0:
                await ws.send(MALFORMED_FRAMES[-e - 1])
            else:
                if self.speed > 0:
                    if t0_data is None:
                        t0_data = int(times[e])
                    wait = t0_wall + (int(times[e]) - t0_data) / 1e9 / self.speed
                    wait -= time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                if self.batch == 1:
                    await ws.send(frames[e])
                else:
                    group.append(frames[e])
                    nxt = plan[pos + 1] if pos + 1 < len(plan) else -1
                    if len(group) >= self.batch or nxt < 0 or self.speed > 0:
                        await ws.send("[" + ",".join(group) + "]")
                        group.clear()
            pos += 1
            if pos > self.position:
                self.position = pos
        await ws.send(json.dumps({"control": "end", "last_seq": self._last_seq}))
        await ws.wait_closed()


# ------------------------------------------------------------------------------ command line
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m marketsim.live.replay_server FILE --port P ...``; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m marketsim.live.replay_server",
        description="Replay a Parquet file of ticks over WebSocket on localhost.",
    )
    p.add_argument("file", help="Parquet file: recorder trades/quotes, time,ticker,price,size, "
                   "or generic ticks with a 'kind' column")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="TCP port (0: any free port)")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor; 0 = max")
    p.add_argument("--batch", type=int, default=1, help="ticks per frame")
    p.add_argument("--malformed-every", type=int, default=0, metavar="K")
    p.add_argument("--duplicate-every", type=int, default=0, metavar="K")
    p.add_argument("--delay-every", type=int, default=0, metavar="K")
    p.add_argument("--delay-by", type=int, default=1, metavar="D")
    p.add_argument("--restart-after", type=int, default=0, metavar="N")
    p.add_argument("--restart-down-s", type=float, default=0.2, metavar="S")
    p.add_argument("--resend-on-reconnect", type=int, default=0, metavar="R")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        faults = Faults(
            malformed_every=args.malformed_every,
            duplicate_every=args.duplicate_every,
            delay_every=args.delay_every,
            delay_by=args.delay_by,
            restart_after=args.restart_after,
            restart_down_s=args.restart_down_s,
            resend_on_reconnect=args.resend_on_reconnect,
        )
        server = ReplayServer(
            args.file, args.host, args.port, speed=args.speed, batch=args.batch, faults=faults
        )
        server.start()
    except MarketSimError as e:
        print(f"replay_server: error: {e}", file=sys.stderr)
        return 2
    print(f"replaying {server.n_ticks} ticks from {args.file} on {server.url}", flush=True)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
