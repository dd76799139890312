"""Numba kernels of the limit order book.

The book's state is five preallocated arrays (see :class:`BookState`), mutated in place by the
``@njit(cache=True)`` functions below; :class:`marketsim.book.OrderBook` is the validating
wrapper around them.

Layout
------
``pool``   int64 ``(capacity, N_FIELDS)``: one row per order slot (record-major, one cache line
           per order): id, owner, remaining qty, price, side, prev and next slot in its level's
           FIFO queue. Free slots are chained through ``F_NEXT`` from ``meta[M_FREE]``.
``htab``   int64 ``(2 * capacity,)``: open-addressing hash table (linear probing, backward-shift
           deletion, Fibonacci hashing) from order id to slot; stores slots, the key is read back
           from ``pool``. Load factor <= 1/2.
``ladder`` int64 ``(max_price_ticks, N_LEVEL_FIELDS)``: head slot, tail slot and total quantity
           of the price level. The book is never crossed, so one ladder holds both sides: levels
           at or below the best bid are bids, levels at or above the best ask are asks.
``bitmap`` uint64 ``(max_price_ticks / 64,)``: bit ``p`` set iff level ``p`` is non-empty; the
           next best price after a level empties is found 64 levels per word with ctz/clz.
``meta``   int64 scalars (best bid/ask, live counts, free-list head, fill/reject counters).

A batch call costs one dispatch (~0.5 µs) plus ~30-60 ns per message. Memory: 72 bytes per order
slot (56 in the pool, 16 in the hash table) plus 32 bytes per price tick of the ladder.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import config as _numba_config
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

if _numba_config.DISABLE_JIT:  # pure-Python stand-ins so tests can run without the JIT

    def trailing_zeros(m):  # noqa: F811
        m = int(m)
        return (m & -m).bit_length() - 1

    def leading_zeros(m):  # noqa: F811
        return 64 - int(m).bit_length()


from marketsim.book.constants import (
    BUY,
    CANCEL,
    FL_MAKER_ID,
    FL_MAKER_OWNER,
    FL_MAKER_REMAINING,
    FL_PRICE,
    FL_QTY,
    FL_TAKER_ID,
    FL_TAKER_INDEX,
    FL_TAKER_OWNER,
    FL_TAKER_SIDE,
    IOC,
    LIMIT,
    MARKET,
    MODIFY,
    NO_PRICE,
    NO_SLOT,
    O_ID,
    O_KIND,
    O_OWNER,
    O_PRICE,
    O_QTY,
    O_SIDE,
    REJECT_BAD_MODIFY_QTY,
    REJECT_BAD_PRICE,
    REJECT_BAD_QTY,
    REJECT_BAD_SIDE,
    REJECT_DUPLICATE_ID,
    REJECT_PRICE_OUT_OF_RANGE,
    REJECT_UNKNOWN_ID,
    REJECT_UNKNOWN_KIND,
    SELL,
)

# Order-pool fields (columns of ``pool``).
F_ID = 0  #: order id
F_OWNER = 1  #: owner (account id)
F_QTY = 2  #: remaining quantity in lots
F_PRICE = 3  #: price in ticks
F_SIDE = 4  #: BUY or SELL
F_PREV = 5  #: previous slot in the level queue (NO_SLOT at the head)
F_NEXT = 6  #: next slot in the level queue, or the next free slot
N_FIELDS = 7

# Price-level fields (columns of ``ladder``).
L_HEAD = 0  #: first slot in the level's FIFO queue
L_TAIL = 1  #: last slot
L_QTY = 2  #: total remaining quantity at the level
N_LEVEL_FIELDS = 3

# Scalars in ``meta``.
M_BEST_BID = 0  #: best bid price in ticks, NO_PRICE if none
M_BEST_ASK = 1  #: best ask price in ticks, NO_PRICE if none
M_LIVE = 2  #: number of live orders
M_LIVE_BID = 3  #: live buy orders
M_LIVE_ASK = 4  #: live sell orders
M_FREE = 5  #: head of the free-slot list
M_NFILLS = 6  #: fills written to the output buffer in the current call
M_NREJ = 7  #: rejects written in the current call
M_HASH_BITS = 8  #: log2 of the hash-table size
N_META = 9

#: Status returned by ``process_one`` when the pool or the fill buffer must grow first.
NEED_GROW = -1

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_FIB = np.uint64(0x9E3779B97F4A7C15)
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


class BookState(NamedTuple):
    """The arrays that are the whole state of one book (see the module docstring)."""

    pool: np.ndarray
    htab: np.ndarray
    ladder: np.ndarray
    bitmap: np.ndarray
    meta: np.ndarray


def new_state(capacity: int, max_price_ticks: int) -> BookState:
    """Allocate an empty book for ``capacity`` live orders and prices below ``max_price_ticks``."""
    pool = np.zeros((capacity, N_FIELDS), dtype=np.int64)
    pool[:, F_NEXT] = np.arange(1, capacity + 1)
    pool[capacity - 1, F_NEXT] = NO_SLOT
    bits = int(2 * capacity - 1).bit_length()
    htab = np.full(1 << bits, NO_SLOT, dtype=np.int64)
    ladder = np.full((max_price_ticks, N_LEVEL_FIELDS), NO_SLOT, dtype=np.int64)
    ladder[:, L_QTY] = 0
    bitmap = np.zeros((max_price_ticks + 63) // 64, dtype=np.uint64)
    meta = np.zeros(N_META, dtype=np.int64)
    meta[M_BEST_BID] = NO_PRICE
    meta[M_BEST_ASK] = NO_PRICE
    meta[M_FREE] = 0
    meta[M_HASH_BITS] = bits
    return BookState(pool, htab, ladder, bitmap, meta)


# --------------------------------------------------------------------------- hash table


@njit(cache=True, inline="always")
def _hash(key, bits):
    return np.int64((np.uint64(np.int64(key)) * _FIB) >> np.uint64(64 - bits))


@njit(cache=True, inline="always")
def _find(pool, htab, meta, key):
    """Slot of live order ``key`` or NO_SLOT. Expected O(1)."""
    mask = htab.shape[0] - 1
    i = _hash(key, meta[M_HASH_BITS])
    while True:
        s = htab[i]
        if s == NO_SLOT:
            return NO_SLOT
        if pool[s, F_ID] == key:
            return s
        i = (i + 1) & mask


@njit(cache=True, inline="always")
def _hash_insert(pool, htab, meta, key, slot):
    mask = htab.shape[0] - 1
    i = _hash(key, meta[M_HASH_BITS])
    while htab[i] != NO_SLOT:
        i = (i + 1) & mask
    htab[i] = slot


@njit(cache=True, inline="always")
def _hash_delete(pool, htab, meta, key):
    """Remove ``key`` (which must be present) with backward-shift deletion (no tombstones)."""
    mask = htab.shape[0] - 1
    bits = meta[M_HASH_BITS]
    i = _hash(key, bits)
    while pool[htab[i], F_ID] != key:
        i = (i + 1) & mask
    # Shift later members of the cluster back into the hole when their home allows it.
    j = i
    while True:
        j = (j + 1) & mask
        s = htab[j]
        if s == NO_SLOT:
            break
        home = _hash(pool[s, F_ID], bits)
        # Move s into hole i unless its home lies cyclically in (i, j].
        if (j > i and (home <= i or home > j)) or (j < i and (home <= i and home > j)):
            htab[i] = s
            i = j
    htab[i] = NO_SLOT


@njit(cache=True)
def rebuild_hash(pool, htab, meta):
    """Re-insert every live order of ``pool`` into an empty ``htab`` (after growth)."""
    htab[:] = NO_SLOT
    bits = 0
    n = htab.shape[0]
    while (1 << bits) < n:
        bits += 1
    meta[M_HASH_BITS] = bits
    for s in range(pool.shape[0]):
        if pool[s, F_QTY] > 0:
            _hash_insert(pool, htab, meta, pool[s, F_ID], s)


# --------------------------------------------------------------------------- price bitmap


@njit(cache=True, inline="always")
def _set_bit(bitmap, p):
    bitmap[p >> 6] |= _ONE << np.uint64(p & 63)


@njit(cache=True, inline="always")
def _clear_bit(bitmap, p):
    bitmap[p >> 6] &= ~(_ONE << np.uint64(p & 63))


@njit(cache=True, inline="always")
def _next_up(bitmap, p):
    """Lowest non-empty level >= p, or NO_PRICE."""
    nw = bitmap.shape[0]
    w = p >> 6
    if w >= nw:
        return NO_PRICE
    m = bitmap[w] & (_ALL << np.uint64(p & 63))
    while m == 0:
        w += 1
        if w >= nw:
            return NO_PRICE
        m = bitmap[w]
    return (w << 6) + np.int64(trailing_zeros(m))


@njit(cache=True, inline="always")
def _next_down(bitmap, p):
    """Highest non-empty level <= p, or NO_PRICE."""
    if p < 0:
        return NO_PRICE
    w = p >> 6
    b = p & 63
    if b == 63:
        m = bitmap[w]
    else:
        m = bitmap[w] & ((_ONE << np.uint64(b + 1)) - _ONE)
    while m == 0:
        w -= 1
        if w < 0:
            return NO_PRICE
        m = bitmap[w]
    return (w << 6) + 63 - np.int64(leading_zeros(m))


# --------------------------------------------------------------------------- queue operations


@njit(cache=True, inline="always")
def _unlink(pool, ladder, bitmap, meta, s):
    """Remove slot ``s`` from its level queue; update level total, bitmap and best prices."""
    p = pool[s, F_PRICE]
    prv = pool[s, F_PREV]
    nxt = pool[s, F_NEXT]
    if prv == NO_SLOT:
        ladder[p, L_HEAD] = nxt
    else:
        pool[prv, F_NEXT] = nxt
    if nxt == NO_SLOT:
        ladder[p, L_TAIL] = prv
    else:
        pool[nxt, F_PREV] = prv
    ladder[p, L_QTY] -= pool[s, F_QTY]
    if ladder[p, L_HEAD] == NO_SLOT:
        _clear_bit(bitmap, p)
        if pool[s, F_SIDE] == BUY:
            if meta[M_BEST_BID] == p:
                meta[M_BEST_BID] = _next_down(bitmap, p - 1) if meta[M_LIVE_BID] > 1 else NO_PRICE
        else:
            if meta[M_BEST_ASK] == p:
                meta[M_BEST_ASK] = _next_up(bitmap, p + 1) if meta[M_LIVE_ASK] > 1 else NO_PRICE


@njit(cache=True, inline="always")
def _free(pool, htab, meta, s):
    """Return slot ``s`` to the free list and forget its id."""
    _hash_delete(pool, htab, meta, pool[s, F_ID])
    if pool[s, F_SIDE] == BUY:
        meta[M_LIVE_BID] -= 1
    else:
        meta[M_LIVE_ASK] -= 1
    meta[M_LIVE] -= 1
    pool[s, F_QTY] = 0
    pool[s, F_NEXT] = meta[M_FREE]
    meta[M_FREE] = s


@njit(cache=True, inline="always")
def _rest(pool, htab, ladder, bitmap, meta, side, price, qty, oid, owner):
    """Append a new order to the back of its level. The caller checked capacity."""
    s = meta[M_FREE]
    meta[M_FREE] = pool[s, F_NEXT]
    pool[s, F_ID] = oid
    pool[s, F_OWNER] = owner
    pool[s, F_QTY] = qty
    pool[s, F_PRICE] = price
    pool[s, F_SIDE] = side
    pool[s, F_NEXT] = NO_SLOT
    tail = ladder[price, L_TAIL]
    pool[s, F_PREV] = tail
    if tail == NO_SLOT:
        ladder[price, L_HEAD] = s
        _set_bit(bitmap, price)
    else:
        pool[tail, F_NEXT] = s
    ladder[price, L_TAIL] = s
    ladder[price, L_QTY] += qty
    _hash_insert(pool, htab, meta, oid, s)
    meta[M_LIVE] += 1
    if side == BUY:
        meta[M_LIVE_BID] += 1
        if meta[M_BEST_BID] == NO_PRICE or price > meta[M_BEST_BID]:
            meta[M_BEST_BID] = price
    else:
        meta[M_LIVE_ASK] += 1
        if meta[M_BEST_ASK] == NO_PRICE or price < meta[M_BEST_ASK]:
            meta[M_BEST_ASK] = price


@njit(cache=True, inline="always")
def _match(pool, htab, ladder, bitmap, meta, side, limit, qty, oid, owner, idx, fills):
    """Match an incoming order against the opposite side up to ``limit``; return what is left.

    Fills are appended to ``fills`` at ``meta[M_NFILLS]``; the caller guaranteed room for one
    fill per opposite live order plus one.
    """
    nf = meta[M_NFILLS]
    if side == BUY:
        best_i = M_BEST_ASK
        live_i = M_LIVE_ASK
    else:
        best_i = M_BEST_BID
        live_i = M_LIVE_BID
    while qty > 0:
        p = meta[best_i]
        if p == NO_PRICE:
            break
        if side == BUY:
            if p > limit:
                break
        elif p < limit:
            break
        s = ladder[p, L_HEAD]
        while qty > 0 and s != NO_SLOT:
            mq = pool[s, F_QTY]
            q = qty if qty < mq else mq
            fills[nf, FL_TAKER_ID] = oid
            fills[nf, FL_MAKER_ID] = pool[s, F_ID]
            fills[nf, FL_TAKER_OWNER] = owner
            fills[nf, FL_MAKER_OWNER] = pool[s, F_OWNER]
            fills[nf, FL_PRICE] = p
            fills[nf, FL_QTY] = q
            fills[nf, FL_MAKER_REMAINING] = mq - q
            fills[nf, FL_TAKER_INDEX] = idx
            fills[nf, FL_TAKER_SIDE] = side
            nf += 1
            qty -= q
            ladder[p, L_QTY] -= q
            if q == mq:
                nxt = pool[s, F_NEXT]
                _hash_delete(pool, htab, meta, pool[s, F_ID])
                pool[s, F_QTY] = 0
                pool[s, F_NEXT] = meta[M_FREE]
                meta[M_FREE] = s
                meta[M_LIVE] -= 1
                meta[live_i] -= 1
                ladder[p, L_HEAD] = nxt
                if nxt != NO_SLOT:
                    pool[nxt, F_PREV] = NO_SLOT
                s = nxt
            else:
                pool[s, F_QTY] = mq - q
        if s == NO_SLOT:
            # Level exhausted.
            ladder[p, L_TAIL] = NO_SLOT
            _clear_bit(bitmap, p)
            if meta[live_i] == 0:
                meta[best_i] = NO_PRICE
            elif side == BUY:
                meta[best_i] = _next_up(bitmap, p + 1)
            else:
                meta[best_i] = _next_down(bitmap, p - 1)
    meta[M_NFILLS] = nf
    return qty


@njit(cache=True, inline="always")
def _apply(pool, htab, ladder, bitmap, meta, kind, side, price, qty, oid, owner, idx, fills):
    """Validate and apply one message. Returns 0 or a reject reason; NEED_GROW if no room.

    The room check comes after validation and before any change, so a NEED_GROW message can
    simply be retried after the wrapper grows the arrays.
    """
    max_price = ladder.shape[0]
    if kind == LIMIT or kind == MARKET or kind == IOC:
        if side != BUY and side != SELL:
            return REJECT_BAD_SIDE
        if qty <= 0:
            return REJECT_BAD_QTY
        if kind != MARKET and price <= 0:
            return REJECT_BAD_PRICE
        if kind == LIMIT:
            if price >= max_price:
                return REJECT_PRICE_OUT_OF_RANGE
            if _find(pool, htab, meta, oid) != NO_SLOT:
                return REJECT_DUPLICATE_ID
            if meta[M_FREE] == NO_SLOT:
                return NEED_GROW
        opp = meta[M_LIVE_ASK] if side == BUY else meta[M_LIVE_BID]
        if fills.shape[0] - meta[M_NFILLS] < opp + 1:
            return NEED_GROW
        if kind == MARKET:
            limit = _INT64_MAX if side == BUY else _INT64_MIN
        else:
            limit = price
        left = _match(pool, htab, ladder, bitmap, meta, side, limit, qty, oid, owner, idx, fills)
        if kind == LIMIT and left > 0:
            _rest(pool, htab, ladder, bitmap, meta, side, price, left, oid, owner)
        return 0
    if kind == CANCEL or kind == MODIFY:
        s = _find(pool, htab, meta, oid)
        if s == NO_SLOT:
            return REJECT_UNKNOWN_ID
        if kind == CANCEL:
            _unlink(pool, ladder, bitmap, meta, s)
            _free(pool, htab, meta, s)
            return 0
        rem = pool[s, F_QTY]
        if qty < 1 or qty > rem - 1:
            return REJECT_BAD_MODIFY_QTY
        ladder[pool[s, F_PRICE], L_QTY] -= rem - qty
        pool[s, F_QTY] = qty
        return 0
    return REJECT_UNKNOWN_KIND


@njit(cache=True, _nrt=False)  # no refcounting: ~3x faster, never allocates
def process_batch(pool, htab, ladder, bitmap, meta, orders, start, fills, rejects):
    """Apply ``orders[start:]`` in order; return the index reached.

    Stops early (returning the index of the message that did not fit) when the order pool or
    the fill buffer must grow; the wrapper grows them and calls again from there. Fill and
    reject counts accumulate in ``meta[M_NFILLS]`` and ``meta[M_NREJ]``.
    """
    nr = meta[M_NREJ]
    n = orders.shape[0]
    for i in range(start, n):
        r = _apply(
            pool, htab, ladder, bitmap, meta,
            orders[i, O_KIND], orders[i, O_SIDE], orders[i, O_PRICE], orders[i, O_QTY],
            orders[i, O_ID], orders[i, O_OWNER], i, fills,
        )  # fmt: skip
        if r == NEED_GROW:
            meta[M_NREJ] = nr
            return i
        if r != 0:
            rejects[nr, 0] = i
            rejects[nr, 1] = r
            nr += 1
    meta[M_NREJ] = nr
    return n


@njit(cache=True, _nrt=False)  # no refcounting: ~3x faster, never allocates
def process_one(pool, htab, ladder, bitmap, meta, kind, side, price, qty, oid, owner, fills):
    """Apply one message given as scalars; return 0, a reject reason or NEED_GROW."""
    meta[M_NFILLS] = 0
    return _apply(pool, htab, ladder, bitmap, meta, kind, side, price, qty, oid, owner, 0, fills)


@njit(cache=True)
def depth(pool, ladder, bitmap, meta, levels, out):
    """Write up to ``levels`` non-empty levels per side into ``out`` (4, levels); return counts.

    ``out`` rows: bid prices, bid quantities, ask prices, ask quantities, best level first.
    O(levels + empty ticks skipped / 64).
    """
    nb = 0
    p = meta[M_BEST_BID]
    while p != NO_PRICE and nb < levels:
        out[0, nb] = p
        out[1, nb] = ladder[p, L_QTY]
        nb += 1
        p = _next_down(bitmap, p - 1)
    na = 0
    p = meta[M_BEST_ASK]
    while p != NO_PRICE and na < levels:
        out[2, na] = p
        out[3, na] = ladder[p, L_QTY]
        na += 1
        p = _next_up(bitmap, p + 1)
    return nb, na


@njit(cache=True)
def lookup(pool, htab, ladder, meta, oid, out):
    """Fill ``out`` with (side, price, remaining, qty ahead) of live order ``oid``; False if none.

    O(1) to find the order plus O(orders ahead of it) for the queue position.
    """
    s = _find(pool, htab, meta, oid)
    if s == NO_SLOT:
        return False
    out[0] = pool[s, F_SIDE]
    out[1] = pool[s, F_PRICE]
    out[2] = pool[s, F_QTY]
    ahead = 0
    t = pool[s, F_PREV]
    while t != NO_SLOT:
        ahead += pool[t, F_QTY]
        t = pool[t, F_PREV]
    out[3] = ahead
    return True


@njit(cache=True)
def live_orders(pool, ladder, bitmap, meta, out):
    """Write all live orders into ``out`` (int64 view of ORDER_DTYPE) in book priority order.

    Bids from best to worst, then asks from best to worst, FIFO within each level. Returns the
    count. Used for snapshots and for cancelling an account's orders.
    """
    n = 0
    p = meta[M_BEST_BID]
    while p != NO_PRICE:
        s = ladder[p, L_HEAD]
        while s != NO_SLOT:
            out[n, O_ID] = pool[s, F_ID]
            out[n, O_OWNER] = pool[s, F_OWNER]
            out[n, O_PRICE] = p
            out[n, O_QTY] = pool[s, F_QTY]
            out[n, O_KIND] = LIMIT
            out[n, O_SIDE] = BUY
            n += 1
            s = pool[s, F_NEXT]
        p = _next_down(bitmap, p - 1)
    p = meta[M_BEST_ASK]
    while p != NO_PRICE:
        s = ladder[p, L_HEAD]
        while s != NO_SLOT:
            out[n, O_ID] = pool[s, F_ID]
            out[n, O_OWNER] = pool[s, F_OWNER]
            out[n, O_PRICE] = p
            out[n, O_QTY] = pool[s, F_QTY]
            out[n, O_KIND] = LIMIT
            out[n, O_SIDE] = SELL
            n += 1
            s = pool[s, F_NEXT]
        p = _next_up(bitmap, p + 1)
    return n


@njit(cache=True)
def check(pool, htab, ladder, bitmap, meta):
    """Return 0 if every invariant holds, else a code naming the first one broken.

    Codes: 1 crossed book, 2 level total != sum of its orders, 3 bitmap bit != level non-empty,
    4 best bid/ask not the extreme non-empty level, 5 live counts wrong, 6 queue links broken,
    7 hash table does not map every live id to its slot, 8 free list wrong, 9 order on the
    wrong side of the book.
    """
    bb = meta[M_BEST_BID]
    ba = meta[M_BEST_ASK]
    if bb != NO_PRICE and ba != NO_PRICE and bb >= ba:
        return 1
    nbid = 0
    nask = 0
    hi_bid = NO_PRICE
    lo_ask = NO_PRICE
    for p in range(ladder.shape[0]):
        bit = (bitmap[p >> 6] >> np.uint64(p & 63)) & _ONE
        head = ladder[p, L_HEAD]
        if (head != NO_SLOT) != (bit == _ONE):
            return 3
        if head == NO_SLOT:
            if ladder[p, L_QTY] != 0 or ladder[p, L_TAIL] != NO_SLOT:
                return 2
            continue
        total = 0
        prev = NO_SLOT
        s = head
        side0 = pool[s, F_SIDE]
        while s != NO_SLOT:
            if pool[s, F_PREV] != prev or pool[s, F_PRICE] != p or pool[s, F_QTY] <= 0:
                return 6
            if pool[s, F_SIDE] != side0:
                return 9
            if _find(pool, htab, meta, pool[s, F_ID]) != s:
                return 7
            total += pool[s, F_QTY]
            if side0 == BUY:
                nbid += 1
            else:
                nask += 1
            prev = s
            s = pool[s, F_NEXT]
        if ladder[p, L_TAIL] != prev:
            return 6
        if total != ladder[p, L_QTY]:
            return 2
        if side0 == BUY:
            if lo_ask != NO_PRICE:
                return 9
            hi_bid = p
        elif lo_ask == NO_PRICE:
            lo_ask = p
    if hi_bid != bb or lo_ask != ba:
        return 4
    if nbid != meta[M_LIVE_BID] or nask != meta[M_LIVE_ASK] or nbid + nask != meta[M_LIVE]:
        return 5
    nfree = 0
    s = meta[M_FREE]
    while s != NO_SLOT:
        if pool[s, F_QTY] != 0:
            return 8
        nfree += 1
        if nfree > pool.shape[0]:
            return 8
        s = pool[s, F_NEXT]
    if nfree + meta[M_LIVE] != pool.shape[0]:
        return 8
    nh = 0
    for i in range(htab.shape[0]):
        if htab[i] != NO_SLOT:
            nh += 1
    if nh != meta[M_LIVE]:
        return 7
    return 0
