"""Seeded generators of realistic order-book message streams (for tests and benchmarks).

A stream is an ``ORDER_DTYPE`` array. Limit orders are placed around a random-walking mid at a
geometric distance (a few are aggressive and cross), cancels and modifies target orders that
are live at that point of the stream, and market and IOC orders take liquidity. Optionally bad
messages are mixed in: bad side, ``qty <= 0``, ``price <= 0``, price out of range, duplicate
id, unknown kind, bad modify quantity, cancel/modify of unknown or already-dead ids.

To know which ids are live, the generator replays its own messages through a
:class:`~tests.reference.book.ReferenceBook` as it goes (about 3-5 s per million messages).
With ``target_live`` set, the book size is held near it by a soft restoring force that turns surplus limit
draws into cancels (and vice versa), so the realised mix stays close to ``mix``.

Example:
    >>> import numpy as np
    >>> stream = random_stream(np.random.default_rng(0), 1000)
    >>> stream.dtype == ORDER_DTYPE, len(stream)
    (True, 1000)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from marketsim.book.constants import (
    BUY,
    CANCEL,
    DEFAULT_MAX_PRICE_TICKS,
    IOC,
    LIMIT,
    MARKET,
    MODIFY,
    ORDER_DTYPE,
    SELL,
)
from tests.reference.book import ReferenceBook

#: Default message mix (fractions of good messages), close to what exchanges see.
DEFAULT_MIX: Mapping[int, float] = {
    LIMIT: 0.55,
    CANCEL: 0.35,
    MODIFY: 0.03,
    MARKET: 0.05,
    IOC: 0.02,
}

INT64_MAX = int(np.iinfo(np.int64).max)
INT64_MIN = int(np.iinfo(np.int64).min)

# Kinds of bad message (the generator picks one uniformly).
_BAD_SIDE, _BAD_QTY, _BAD_PRICE, _OUT_OF_RANGE, _DUP_ID, _UNKNOWN_KIND = range(6)
_BAD_MODIFY_QTY, _UNKNOWN_ID, _DEAD_ID = 6, 7, 8
_N_BAD = 9


class _Pool:
    """Set of ids with O(1) add, remove and uniform random pick."""

    def __init__(self) -> None:
        self.items: list[int] = []
        self.pos: dict[int, int] = {}

    def add(self, x: int) -> None:
        self.pos[x] = len(self.items)
        self.items.append(x)

    def discard(self, x: int) -> None:
        i = self.pos.pop(x, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last] = i

    def pick(self, u: float) -> int:
        return self.items[int(u * len(self.items))]

    def __len__(self) -> int:
        return len(self.items)


def random_stream(
    rng: np.random.Generator,
    n: int,
    *,
    max_price_ticks: int = DEFAULT_MAX_PRICE_TICKS,
    mid: int | None = None,
    mix: Mapping[int, float] | None = None,
    target_live: int | None = None,
    bad_rate: float = 0.02,
    weird_rate: float = 0.01,
    n_owners: int = 16,
    limit_qty_mean: float = 5.0,
    taker_qty_mean: float = 5.0,
    distance_p: float = 0.15,
    aggressive_p: float = 0.05,
    first_id: int = 1,
) -> np.ndarray:
    """Generate ``n`` messages (an ``ORDER_DTYPE`` array).

    Runtime: O(n) Python steps plus the reference book's work (~3-5 s per million messages).

    Args:
        rng: Source of all randomness.
        n: Number of messages.
        max_price_ticks: The ladder size of the books the stream is meant for.
        mid: Starting mid price in ticks (default: ``min(10_000, max_price_ticks // 2)``).
        mix: Fractions of LIMIT, CANCEL, MODIFY, MARKET, IOC among good messages.
        target_live: Book size (live orders) the restoring force steers towards: a LIMIT draw
            becomes a CANCEL with probability ``live / target_live - 1`` and a CANCEL draw a
            LIMIT with probability ``1 - live / target_live``. None: no restoring force.
        bad_rate: Fraction of messages that the book must reject.
        weird_rate: Fraction of valid-but-unusual messages: MARKET/IOC reusing a live id,
            CANCEL with garbage side/qty/price, IOC priced above the ladder.
        n_owners: Owners (account ids) are drawn from ``0 .. n_owners - 1``.
        limit_qty_mean: Mean quantity of limit orders (geometric).
        taker_qty_mean: Mean quantity of market and IOC orders (geometric).
        distance_p: Parameter of the geometric distance of limit prices from the mid.
        aggressive_p: Probability that a limit order crosses the mid.
        first_id: First order id issued.

    Returns:
        The stream; ids are issued in increasing order from ``first_id``.
    """
    mix = dict(DEFAULT_MIX if mix is None else mix)
    kinds_order = [LIMIT, CANCEL, MODIFY, MARKET, IOC]
    probs = np.array([mix.get(k, 0.0) for k in kinds_order], dtype=float)
    probs /= probs.sum()
    top = max_price_ticks - 1
    if mid is None:
        mid = min(10_000, max_price_ticks // 2)
    margin = min(50, max(1, top // 4))
    lo, hi = 1 + margin, max(1 + margin, top - margin)
    mid = min(max(int(mid), lo), hi)

    # Bulk draws, converted to Python scalars once (per-element numpy draws are slow).
    kinds = rng.choice(np.array(kinds_order), size=n, p=probs).tolist()
    u = rng.random((n, 4)).tolist()
    dist = (rng.geometric(distance_p, size=n) - 1).tolist()
    cross = (rng.geometric(0.5, size=n) - 1).tolist()
    lqty = rng.geometric(1.0 / max(1.0, limit_qty_mean), size=n).tolist()
    tqty = rng.geometric(1.0 / max(1.0, taker_qty_mean), size=n).tolist()
    sides = np.where(rng.random(n) < 0.5, BUY, SELL).tolist()
    owners = rng.integers(0, n_owners, size=n).tolist()
    steps = rng.choice(np.array([-1, 0, 1]), size=n, p=[0.04, 0.92, 0.04]).tolist()
    special = rng.random(n).tolist()
    bad_kind = rng.integers(0, _N_BAD, size=n).tolist()

    ref = ReferenceBook(max_price_ticks)
    live = _Pool()
    dead: list[int] = []  # recently cancelled or filled ids (bounded)
    fills: list[tuple] = []
    out: list[tuple] = []
    next_id = first_id

    def limit_price(side: int, i: int) -> int:
        if u[i][1] < aggressive_p:
            p = mid + cross[i] if side == BUY else mid - cross[i]
        else:
            p = mid - 1 - dist[i] if side == BUY else mid + 1 + dist[i]
        return min(max(p, 1), top)

    for i in range(n):
        mid = min(max(mid + steps[i], lo), hi)
        side, owner, kind = sides[i], owners[i], kinds[i]
        r = special[i]
        if r < bad_rate:
            msg = _bad_message(bad_kind[i], u[i], i, side, owner, mid, top, live, dead, ref)
            if msg is None:  # e.g. no live order to duplicate: emit a bad side instead
                msg = (next_id, owner, mid, 1, LIMIT, 0)
        else:
            # Restoring force on the book size.
            n_live = len(live)
            if target_live:
                excess = n_live / target_live - 1.0
                if kind == LIMIT and u[i][2] < excess:
                    kind = CANCEL
                elif kind == CANCEL and u[i][2] < -excess:
                    kind = LIMIT
            if kind in (CANCEL, MODIFY) and n_live == 0:
                kind = LIMIT
            weird = r < bad_rate + weird_rate
            if kind == LIMIT:
                msg = (next_id, owner, limit_price(side, i), lqty[i], LIMIT, side)
                next_id += 1
            elif kind == CANCEL:
                oid = live.pick(u[i][0])
                if weird:
                    msg = (oid, owner, -1, -5, CANCEL, 0)
                else:
                    msg = (oid, 0, 0, 0, CANCEL, 0)
            elif kind == MODIFY:
                oid = live.pick(u[i][0])
                rem = ref._orders[oid].remaining
                if rem < 2:  # cannot reduce below 1 lot: the trader cancels instead
                    msg = (oid, 0, 0, 0, CANCEL, 0)
                else:
                    msg = (oid, 0, 0, 1 + int(u[i][3] * (rem - 1)), MODIFY, 0)
            elif kind == MARKET:
                oid = live.pick(u[i][0]) if (weird and len(live)) else next_id
                next_id += oid == next_id
                msg = (oid, owner, int(u[i][3] * 100), tqty[i], MARKET, side)
            else:  # IOC
                oid = live.pick(u[i][0]) if (weird and len(live)) else next_id
                next_id += oid == next_id
                if weird and u[i][3] < 0.5:
                    price = INT64_MAX if side == BUY else max_price_ticks + 3
                else:
                    price = min(max(mid + cross[i] if side == BUY else mid - cross[i], 1), top)
                msg = (oid, owner, price, tqty[i], IOC, side)
        out.append(msg)
        # Replay through the reference to learn which ids are live.
        oid, own, price, qty, k, s = msg
        reason = ref._apply(i, oid, own, price, qty, k, s, fills)
        if not reason:
            if k == LIMIT and oid in ref._orders:
                live.add(oid)
            elif k == CANCEL:
                live.discard(oid)
                dead.append(oid)
        for f in fills:
            if f[6] == 0:
                live.discard(f[1])
                dead.append(f[1])
        fills.clear()
        if len(dead) > 256:
            del dead[:128]
    return np.array(out, dtype=ORDER_DTYPE)


def _bad_message(which, uu, i, side, owner, mid, top, live, dead, ref) -> tuple | None:
    """One message the book must reject (or None if this kind is impossible right now)."""
    if which == _BAD_SIDE:
        bad_side = (0, 2, -2, 127, -128)[i % 5]
        kind = (LIMIT, MARKET, IOC)[int(uu[0] * 3)]
        return (10**15 + i, owner, mid, 3, kind, bad_side)
    if which == _BAD_QTY:
        qty = (0, -1, -7, INT64_MIN)[i % 4]
        kind = (LIMIT, MARKET, IOC)[int(uu[0] * 3)]
        return (10**15 + i, owner, mid, qty, kind, side)
    if which == _BAD_PRICE:
        price = (0, -1, INT64_MIN)[i % 3]
        kind = (LIMIT, IOC)[int(uu[0] * 2)]
        return (10**15 + i, owner, price, 4, kind, side)
    if which == _OUT_OF_RANGE:
        price = (top + 1, top + 2, INT64_MAX)[i % 3]
        return (10**15 + i, owner, price, 4, LIMIT, side)
    if which == _DUP_ID:
        if not len(live):
            return None
        return (live.pick(uu[0]), owner, mid, 2, LIMIT, side)
    if which == _UNKNOWN_KIND:
        kind = (5, 6, -1, 127, -128)[i % 5]
        return (10**15 + i, owner, mid, 3, kind, side)
    if which == _BAD_MODIFY_QTY:
        if not len(live):
            return None
        oid = live.pick(uu[0])
        rem = ref._orders[oid].remaining
        qty = (0, -1, rem, rem + 5, INT64_MAX, INT64_MIN)[i % 6]
        return (oid, 0, 0, qty, MODIFY, 0)
    if which == _UNKNOWN_ID:
        oid = (-(10**12) - i, 10**16 + i)[i % 2]  # never issued
        return (oid, 0, 0, 1, (CANCEL, MODIFY)[int(uu[0] * 2)], 0)
    # _DEAD_ID: cancel or modify of an order already cancelled or filled (cancel twice)
    if not dead:
        return None
    oid = dead[int(uu[0] * len(dead))]
    if oid in ref._orders:  # re-used id (MARKET/IOC may reuse) - treat as a cancel race
        return None
    return (oid, 0, 0, 1, (CANCEL, MODIFY)[int(uu[1] * 2)], 0)


def split_points(rng: np.random.Generator, n: int, mean_batch: float = 40.0) -> list[int]:
    """Random batch boundaries ``[0, ..., n]`` (empty and single-message batches included)."""
    sizes = rng.geometric(1.0 / mean_batch, size=max(1, int(2 * n / mean_batch) + 2)) - 1
    bounds = np.concatenate(([0], np.cumsum(sizes)))
    bounds = bounds[bounds < n].tolist()
    return bounds + [n]
