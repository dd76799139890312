"""Streaming mode: live market-data adapters, a replay server and the shadow runner.

* :mod:`marketsim.live.adapters`: :class:`LiveSource` (non-blocking ``poll``),
  :class:`QueueAdapter` (in-process) and :class:`WebSocketAdapter` (asyncio client in a
  background thread, reconnecting), with validation, de-duplication, reordering and
  backpressure.
* :mod:`marketsim.live.replay_server`: :class:`ReplayServer`, a WebSocket server replaying a
  Parquet file of ticks with injectable faults
  (``python -m marketsim.live.replay_server FILE --port P``).
* :mod:`marketsim.live.shadow`: :class:`LiveFeed` (feed kind ``"live"``) and
  :class:`ShadowRunner`, which steps a model or env on live ticks.

``websockets`` is imported only when a WebSocket client or server starts.
"""

from marketsim.live.adapters import (
    KINDS,
    POLICIES,
    LiveSource,
    QueueAdapter,
    SequenceGuard,
    Tick,
    WebSocketAdapter,
    parse_tick,
    tick_to_json,
)
from marketsim.live.replay_server import Faults, ReplayServer, load_ticks
from marketsim.live.shadow import LiveFeed, ShadowRunner

__all__ = [
    "KINDS",
    "POLICIES",
    "Faults",
    "LiveFeed",
    "LiveSource",
    "QueueAdapter",
    "ReplayServer",
    "SequenceGuard",
    "ShadowRunner",
    "Tick",
    "WebSocketAdapter",
    "load_ticks",
    "parse_tick",
    "tick_to_json",
]
