"""Numba kernels of the batched single-asset markets behind :class:`MarketVecEnv`.

``N`` independent markets are stepped in ONE call: ``run_markets`` runs a ``prange`` over
markets and each iteration mutates only its own market's rows of the stacked state, so the
result does not depend on the number of threads. Matching is the book's own message kernel
(:func:`marketsim.book.kernels._apply`, looped as its ``process_batch`` does) on per-market
slices; nothing here matches orders.

State (leading dimension: market ``m``)
---------------------------------------
Book (as :class:`marketsim.book.kernels.BookState`, stacked): ``pool (N, cap, 7)``,
``htab (N, H)``, ``ladder (N, L, 3)``, ``bitmap (N, L/64)``, ``meta (N, 9)``; plus scratch:
``fills (N, cap + 1, 9)`` (one fill per opposite live order plus one: matching never runs out
of room), the message batch ``orders (N, B, 6)`` and its ``rejects (N, B, 2)``. Book prices
are *relative* ticks: actual price = book price + ``offset`` (``par[:, P_OFFSET]``), so a small
ladder (``L`` ticks) covers a band around the initial price.

Accounts: ``cash (N, 2 + n_agents)`` in ticks x lots and ``pos (N, 2 + n_agents)`` in lots,
int64. Account 0 is the market maker, 1 the zero-intelligence crowd (both start flat with no
cash and may go negative: they stand for the rest of the market), ``2 + j`` RL agent ``j``.
Every fill moves ``price * qty`` of cash and ``qty`` lots between two accounts, so per market
``sum(cash) == n_agents * initial_cash`` and ``sum(pos) == 0`` hold exactly.

Per-market scalars: ``ist`` (int64, ``I_*`` columns), ``fst`` (float64, ``F_*``), parameters
``par`` (float64, ``P_*``), ``eq_prev (N, n_agents)``, the return window ``win (N, W)``, the
market maker's live quote ids ``mm_ids (N, 2 * MAX_MM_LEVELS)`` and the crowd's order ids
``zi_ids (N, cap)`` (may hold ids of orders filled since; they are dropped when met).

Randomness: no generator lives in a kernel. Each step the caller passes ``u (N, 2 + 4 *
max_events)`` uniforms in [0, 1) and ``z (N, 2)`` standard normals drawn from its numpy
Generator; column use is fixed (see :data:`U_ROTATE` ...), so a market's step is a pure
function of its state and its row of draws.

One market step (:func:`_step_market`), in this order; each trader's messages are built from
the state at the start of its phase and matched as one batch (as the full model's exchange
matches each step's inbound orders):

1. RL agents (in a random cyclic order) trade towards their target position with MARKET orders
   against the book they observed.
2. The fundamental takes an exact Ornstein-Uhlenbeck step (clipped to a band inside the ladder).
3. The market maker cancels its quotes, then quotes ``mm_levels`` levels a side around
   ``anchor * fundamental + (1 - anchor) * mid - skew * inventory``, never crossing the book
   (post-only), and stops quoting the side that would grow an inventory beyond its limit.
4. The crowd: ``K ~ Poisson(limit_rate + market_rate + cancel_prob * live_crowd_orders)``
   events (capped at ``max_events``), each a LIMIT order at a geometric distance from
   ``anchor * fundamental + (1 - anchor) * mid``, a MARKET order, or a cancel of a random
   live crowd order, with geometric sizes.
5. Observation, reward (log equity change at the mid), episode end and auto-reset.

A LIMIT order that finds the pool full (``capacity`` live orders) is rejected (reason
``REJECT_POOL_FULL``) and counted in ``ist[:, I_REJ_FULL]``: the arrays never grow.

Cost: ~2 µs per market step on one core of the 2-core dev machines (default parameters,
~20 messages); a cold compile of this module takes ~15-40 s (cached afterwards).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from marketsim.book.constants import (
    BUY,
    CANCEL,
    FL_MAKER_OWNER,
    FL_PRICE,
    FL_QTY,
    FL_TAKER_OWNER,
    FL_TAKER_SIDE,
    LIMIT,
    MARKET,
    NO_PRICE,
    NO_SLOT,
    O_ID,
    O_KIND,
    O_OWNER,
    O_PRICE,
    O_QTY,
    O_SIDE,
    SELL,
)
from marketsim.book.kernels import (
    F_NEXT,
    L_HEAD,
    L_QTY,
    L_TAIL,
    M_BEST_ASK,
    M_BEST_BID,
    M_FREE,
    M_HASH_BITS,
    M_LIVE,
    M_NFILLS,
    NEED_GROW,
    _apply,
    _find,
    check,
)

#: Account of the market maker.
ACC_MM = 0
#: Account of the zero-intelligence crowd.
ACC_ZI = 1
#: Account of RL agent 0 (agent ``j`` is ``ACC_RL + j``).
ACC_RL = 2

#: Reject reason (ours, beyond the book's) of a LIMIT order that found the pool full.
REJECT_POOL_FULL = 100

#: Most levels a side the market maker may quote.
MAX_MM_LEVELS = 8

#: Reward of a step that ends with equity <= 0 (``log(1e-4)``); the market's episode ends.
RUIN_REWARD = math.log(1e-4)

#: Action mode: ``a[0]`` in [-1, 1] is the target position as a fraction of the max position.
MODE_TARGET = 0
#: Action mode: ``(asset, cash)`` weights projected onto ``w_asset + w_cash = 1``.
MODE_WEIGHTS = 1

#: ``done`` codes per market: still running, episode truncated (time limit), terminated (ruin).
RUNNING, TRUNCATED, TERMINATED = 0, 1, 2

# Columns of the uniform draws ``u``.
U_ROTATE = 0  #: first RL agent to trade this step
U_COUNT = 1  #: number of crowd events (inverse Poisson CDF)
U_EVENTS = 2  #: event ``e`` uses columns U_EVENTS + 4 e .. + 3: type, side, distance, size
N_U_PER_EVENT = 4
# Columns of the normal draws ``z``.
Z_FUND = 0  #: the fundamental's shock this step
Z_RESET = 1  #: initial fundamental when the market resets at the end of this step
N_Z = 2

# Parameter columns (``par``: float64, one row per market; integers stored exactly).
P_OFFSET = 0  #: actual price in ticks of book price 0
P_MU = 1  #: fundamental's long-run mean, ticks
P_FUND_A = 2  #: exp(-kappa): the fundamental's mean-reversion factor per step
P_FUND_S = 3  #: sd of the fundamental's exact one-step shock, ticks
P_FUND_INIT_SD = 4  #: sd of the initial fundamental around the mean at reset, ticks
P_FUND_LO = 5  #: lowest fundamental, ticks (keeps the market inside the ladder)
P_FUND_HI = 6  #: highest fundamental, ticks
P_ZI_LIMIT = 7  #: crowd limit orders per step (Poisson rate)
P_ZI_MARKET = 8  #: crowd market orders per step
P_ZI_CANCEL = 9  #: cancel probability per live crowd order per step
P_ZI_DEPTH_P = 10  #: geometric parameter of the distance (mean distance = 1 / p ticks)
P_ZI_MAX_DEPTH = 11  #: largest distance, ticks
P_ZI_SIZE_P = 12  #: geometric parameter of sizes (mean size = 1 / p lots)
P_ZI_MAX_SIZE = 13  #: largest size, lots
P_ZI_ANCHOR = 14  #: weight of the fundamental in the crowd's reference price
P_MM_LEVELS = 15  #: market-maker levels a side (0: no market maker)
P_MM_HALF_SPREAD = 16  #: market maker's half spread, ticks
P_MM_SIZE = 17  #: lots per market-maker quote
P_MM_SKEW = 18  #: ticks the market maker shifts its quotes per lot of inventory
P_MM_MAX_INV = 19  #: the market maker stops quoting the side that grows |inventory| past this
P_MM_ANCHOR = 20  #: weight of the fundamental in the market maker's reference price
P_INIT_LEVELS = 21  #: crowd levels a side seeded at reset
P_INIT_QTY = 22  #: lots per seeded level
P_MAX_POS = 23  #: RL max position, lots
P_INIT_CASH = 24  #: RL initial cash, ticks x lots
P_EPISODE_STEPS = 25  #: steps per episode
P_MODE = 26  #: MODE_TARGET or MODE_WEIGHTS
P_W_LO = 27  #: lowest asset weight (weights mode)
P_W_HI = 28  #: highest asset weight (weights mode)
P_FUND_OBS = 29  #: 1.0 to observe log(fundamental / mid)
P_MAX_EVENTS = 30  #: most crowd events per step
N_PAR = 31

# Integer state columns (``ist``).
I_STEP = 0  #: steps into the current episode
I_NEXT_ID = 1  #: next order id
I_ZI_N = 2  #: entries in zi_ids
I_MM_N = 3  #: entries in mm_ids
I_EPISODES = 4  #: episodes finished
I_REJ_FULL = 5  #: LIMIT orders rejected because the pool was full (cumulative)
I_TRADES = 6  #: fills (cumulative)
I_VOLUME = 7  #: lots traded (cumulative)
I_RL_VOLUME = 8  #: lots traded by RL agents (cumulative)
N_IST = 9

# Float state columns (``fst``).
F_FUND = 0  #: fundamental, ticks
F_MID = 1  #: last two-sided mid, ticks
F_SPREAD = 2  #: last two-sided spread, ticks
N_FST = 3

#: Observation features after the W returns: spread, imbalance, position, cash, [fundamental].
N_BASE_FEATURES = 4
#: Returns, spread and fundamental gap are observed in basis points (O(1) numbers).
BPS = 1e4


# --------------------------------------------------------------------------- small helpers
# Every kernel here is compiled with ``_nrt=False``: without numba's reference-counted runtime
# (none of them allocates). With it, each binding of an array to a variable costs an atomic
# increment and decrement of its reference count; in the book's message loop (``_apply`` and
# its inlined helpers) that was 65-70 % of the time, and threads stepping different markets
# still hammered the one shared counter of each stacked array.


@njit(cache=True, _nrt=False, inline="always")
def _round(x):
    """Round half up to int64 (the same rule everywhere, including the Python reference)."""
    return np.int64(math.floor(x + 0.5))


@njit(cache=True, _nrt=False, inline="always")
def _poisson(u, lam, kmax):
    """Inverse-CDF Poisson draw from uniform ``u``, capped at ``kmax``. O(result)."""
    k = 0
    if lam > 0.0:
        p = math.exp(-lam)
        cdf = p
        while u >= cdf and k < kmax:
            k += 1
            p *= lam / k
            cdf += p
    return k


@njit(cache=True, _nrt=False, inline="always")
def _geometric(u, p, cap):
    """Geometric draw on 1, 2, ... with success probability ``p`` (mean 1/p), capped. O(1)."""
    k = 1.0
    if p < 1.0:
        k = 1.0 + math.floor(math.log(1.0 - u) / math.log(1.0 - p))
    if k > cap:
        k = cap
    return np.int64(k)


@njit(cache=True, _nrt=False, inline="always")
def _put(orders, n, oid, owner, price, qty, kind, side):
    """Write message ``n`` of a batch (``O_*`` columns); return ``n + 1``."""
    orders[n, O_ID] = oid
    orders[n, O_OWNER] = owner
    orders[n, O_PRICE] = price
    orders[n, O_QTY] = qty
    orders[n, O_KIND] = kind
    orders[n, O_SIDE] = side
    return n + 1


@njit(cache=True, _nrt=False, inline="always")
def _settle(fills, meta, cash, pos, ist, off):
    """Book the fills in ``fills[:meta[M_NFILLS]]`` to the accounts and clear them. O(fills).

    Each fill moves ``(book price + off) * qty`` of cash from buyer to seller and ``qty`` lots
    from seller to buyer; RL agents' lots are also counted in ``I_RL_VOLUME``.
    """
    nf = meta[M_NFILLS]
    for i in range(nf):
        q = fills[i, FL_QTY]
        value = (fills[i, FL_PRICE] + off) * q
        taker = fills[i, FL_TAKER_OWNER]
        maker = fills[i, FL_MAKER_OWNER]
        if fills[i, FL_TAKER_SIDE] == BUY:
            buyer = taker
            seller = maker
        else:
            buyer = maker
            seller = taker
        pos[buyer] += q
        pos[seller] -= q
        cash[buyer] -= value
        cash[seller] += value
        ist[I_VOLUME] += q
        if taker >= ACC_RL:
            ist[I_RL_VOLUME] += q
        if maker >= ACC_RL:
            ist[I_RL_VOLUME] += q
    ist[I_TRADES] += nf
    meta[M_NFILLS] = 0


@njit(cache=True, _nrt=False)
def _run_batch(pool, htab, ladder, bitmap, meta, fills, rejects, orders, n, cash, pos, ist, off):
    """Match ``orders[:n]`` in order through the book's ``_apply`` (as its ``process_batch``
    does) and settle each message's fills; return the number of rejects (``rejects[:k]``: batch
    index, reason).

    A LIMIT order that finds the pool full is rejected (reason ``REJECT_POOL_FULL``, counted in
    ``I_REJ_FULL``): the arrays never grow. Fills are settled after every message, so the fill
    buffer (one row per live order plus one) always has room. O(messages + fills).
    """
    nr = np.int64(0)
    meta[M_NFILLS] = 0
    for i in range(n):
        kind = orders[i, O_KIND]
        r = _apply(
            pool, htab, ladder, bitmap, meta, kind, orders[i, O_SIDE], orders[i, O_PRICE],
            orders[i, O_QTY], orders[i, O_ID], orders[i, O_OWNER], i, fills,
        )  # fmt: skip
        if r == NEED_GROW:  # only a LIMIT order into a full pool: fills were settled
            r = REJECT_POOL_FULL
            ist[I_REJ_FULL] += 1
        if r != 0:
            rejects[nr, 0] = i
            rejects[nr, 1] = r
            nr += 1
        _settle(fills, meta, cash, pos, ist, off)
    return nr


@njit(cache=True, _nrt=False, inline="always")
def _clear_book(pool, htab, ladder, bitmap, meta):
    """Reset one market's book arrays to the empty book of ``new_state``. O(cap + L)."""
    cap = pool.shape[0]
    for s in range(cap):
        for f in range(pool.shape[1]):
            pool[s, f] = 0
        pool[s, F_NEXT] = s + 1
    pool[cap - 1, F_NEXT] = NO_SLOT
    for i in range(htab.shape[0]):
        htab[i] = NO_SLOT
    for p in range(ladder.shape[0]):
        ladder[p, L_HEAD] = NO_SLOT
        ladder[p, L_TAIL] = NO_SLOT
        ladder[p, L_QTY] = 0
    for i in range(bitmap.shape[0]):
        bitmap[i] = 0
    bits = 0
    while (1 << bits) < htab.shape[0]:
        bits += 1
    for i in range(meta.shape[0]):
        meta[i] = 0
    meta[M_BEST_BID] = NO_PRICE
    meta[M_BEST_ASK] = NO_PRICE
    meta[M_FREE] = 0
    meta[M_HASH_BITS] = bits


@njit(cache=True, _nrt=False, inline="always")
def _zi_push(zi, ist, pool, htab, meta, oid):
    """Remember a resting crowd order; when the list is full, drop ids no longer live."""
    n = ist[I_ZI_N]
    if n == zi.shape[0]:
        k = 0
        for i in range(n):
            if _find(pool, htab, meta, zi[i]) != NO_SLOT:
                zi[k] = zi[i]
                k += 1
        n = k
    if n < zi.shape[0]:
        zi[n] = oid
        n += 1
    ist[I_ZI_N] = n


@njit(cache=True, _nrt=False, inline="always")
def _remember_resting(zi, ist, pool, htab, meta, orders, n):
    """After a crowd batch: remember the LIMIT orders of ``orders[:n]`` still resting."""
    for i in range(n):
        if orders[i, O_KIND] == LIMIT:
            oid = orders[i, O_ID]
            if _find(pool, htab, meta, oid) != NO_SLOT:
                _zi_push(zi, ist, pool, htab, meta, oid)


@njit(cache=True, _nrt=False, inline="always")
def _new_id(ist):
    oid = ist[I_NEXT_ID]
    ist[I_NEXT_ID] = oid + 1
    return oid


# --------------------------------------------------------------------------- traders


@njit(cache=True, _nrt=False)
def _mm_requote(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, par,
                mm, fund_b, off):  # fmt: skip
    """Market maker: cancel the previous quotes (one batch), then post fresh ones (one batch,
    post-only). O(levels)."""
    n = np.int64(0)
    for k in range(ist[I_MM_N]):
        n = _put(orders, n, mm[k], ACC_MM, 0, 0, CANCEL, 0)
    _run_batch(pool, htab, ladder, bitmap, meta, fills, rejects, orders, n, cash, pos, ist, off)
    ist[I_MM_N] = 0
    levels = np.int64(par[P_MM_LEVELS])
    if levels <= 0:
        return
    bb = meta[M_BEST_BID]
    ba = meta[M_BEST_ASK]
    mid_b = 0.5 * (bb + ba) if bb != NO_PRICE and ba != NO_PRICE else fund_b
    inv = pos[ACC_MM]
    anchor = par[P_MM_ANCHOR]
    ref = anchor * fund_b + (1.0 - anchor) * mid_b - par[P_MM_SKEW] * inv
    hs = par[P_MM_HALF_SPREAD]
    bid0 = np.int64(math.floor(ref - hs))
    ask0 = np.int64(math.ceil(ref + hs))
    if ask0 <= bid0:
        ask0 = bid0 + 1
    if ba != NO_PRICE and bid0 >= ba:
        bid0 = ba - 1
    if bb != NO_PRICE and ask0 <= bb:
        ask0 = bb + 1
    size = np.int64(par[P_MM_SIZE])
    max_inv = par[P_MM_MAX_INV]
    top = ladder.shape[0] - 1
    n = np.int64(0)
    for k in range(levels):
        if inv < max_inv and bid0 - k >= 1:
            n = _put(orders, n, _new_id(ist), ACC_MM, bid0 - k, size, LIMIT, BUY)
        if inv > -max_inv and ask0 + k <= top:
            n = _put(orders, n, _new_id(ist), ACC_MM, ask0 + k, size, LIMIT, SELL)
    nrej = _run_batch(pool, htab, ladder, bitmap, meta, fills, rejects, orders, n, cash, pos,
                      ist, off)  # fmt: skip
    # Remember the accepted quotes (post-only: every accepted quote rests).
    m = 0
    r = 0
    for i in range(n):
        if r < nrej and rejects[r, 0] == i:
            r += 1
            continue
        mm[m] = orders[i, O_ID]
        m += 1
    ist[I_MM_N] = m


@njit(cache=True, _nrt=False)
def _zi_flow(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, par, zi,
             u, fund_b, off):  # fmt: skip
    """Zero-intelligence crowd: this step's Poisson events, drawn from the state at the start
    of the phase and matched as one batch (module docstring). O(events + fills)."""
    lam_l = par[P_ZI_LIMIT]
    lam_m = par[P_ZI_MARKET]
    n_crowd = meta[M_LIVE] - ist[I_MM_N]
    if n_crowd < 0:
        n_crowd = 0
    lam = lam_l + lam_m + par[P_ZI_CANCEL] * n_crowd
    n_events = _poisson(u[U_COUNT], lam, np.int64(par[P_MAX_EVENTS]))
    bb = meta[M_BEST_BID]
    ba = meta[M_BEST_ASK]
    anchor = par[P_ZI_ANCHOR]
    if bb != NO_PRICE and ba != NO_PRICE:
        ref = anchor * fund_b + (1.0 - anchor) * 0.5 * (bb + ba)
    else:
        ref = fund_b
    center = _round(ref)
    top = ladder.shape[0] - 1
    n = np.int64(0)
    for e in range(n_events):
        c = U_EVENTS + N_U_PER_EVENT * e
        ut = u[c] * lam
        side = BUY if u[c + 1] < 0.5 else SELL
        if ut < lam_l + lam_m:
            size = _geometric(u[c + 3], par[P_ZI_SIZE_P], par[P_ZI_MAX_SIZE])
            oid = _new_id(ist)
            if ut < lam_l:
                d = _geometric(u[c + 2], par[P_ZI_DEPTH_P], par[P_ZI_MAX_DEPTH])
                price = min(max(center - side * d, 1), top)
                n = _put(orders, n, oid, ACC_ZI, price, size, LIMIT, side)
            else:
                n = _put(orders, n, oid, ACC_ZI, 0, size, MARKET, side)
        else:
            # Cancel a random remembered order that is live now; ids of orders filled since
            # are dropped on the way (swap-remove, then try the entry moved into the hole).
            nz = ist[I_ZI_N]
            if nz > 0:
                j = np.int64(u[c + 2] * nz)
                if j >= nz:
                    j = nz - 1
                while nz > 0:
                    oid = zi[j]
                    nz -= 1
                    zi[j] = zi[nz]
                    if _find(pool, htab, meta, oid) != NO_SLOT:
                        n = _put(orders, n, oid, ACC_ZI, 0, 0, CANCEL, 0)
                        break
                    if j >= nz:
                        j = 0
                ist[I_ZI_N] = nz
    _run_batch(pool, htab, ladder, bitmap, meta, fills, rejects, orders, n, cash, pos, ist, off)
    _remember_resting(zi, ist, pool, htab, meta, orders, n)


@njit(cache=True, _nrt=False)
def _rl_trade(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, fst, par,
              act, row0, u, off):  # fmt: skip
    """RL agents trade towards their targets: one MARKET order each, in a random cyclic order,
    matched as one batch against the book they observed. O(agents + fills)."""
    n_ag = pos.shape[0] - ACC_RL
    start = np.int64(u[U_ROTATE] * n_ag)
    if start >= n_ag:
        start = n_ag - 1
    mid = fst[F_MID]
    max_pos = par[P_MAX_POS]
    mode = np.int64(par[P_MODE])
    n = np.int64(0)
    for k in range(n_ag):
        j = (start + k) % n_ag
        acc = ACC_RL + j
        a0 = min(max(act[row0 + j, 0], -1.0), 1.0)
        if mode == MODE_TARGET:
            target = _round(a0 * max_pos)
        else:
            a1 = min(max(act[row0 + j, 1], -1.0), 1.0)
            w = 0.5 * (1.0 + a0 - a1)  # Euclidean projection onto w_asset + w_cash = 1
            w = min(max(w, par[P_W_LO]), par[P_W_HI])
            eq = cash[acc] + pos[acc] * mid
            target = _round(w * eq / mid) if eq > 0.0 else np.int64(0)
            target = min(max(target, -np.int64(max_pos)), np.int64(max_pos))
        delta = target - pos[acc]
        if delta != 0:
            side = BUY if delta > 0 else SELL
            n = _put(orders, n, _new_id(ist), acc, 0, abs(delta), MARKET, side)
    _run_batch(pool, htab, ladder, bitmap, meta, fills, rejects, orders, n, cash, pos, ist, off)


# --------------------------------------------------------------------------- observation


@njit(cache=True, _nrt=False, inline="always")
def _write_obs(ladder, meta, cash, pos, fst, par, win, obs, row0):
    """Write each agent's observation row (see ``MarketVecEnv`` for the layout). O(W)."""
    mid = fst[F_MID]
    bb = meta[M_BEST_BID]
    ba = meta[M_BEST_ASK]
    bq = ladder[bb, L_QTY] if bb != NO_PRICE else 0
    aq = ladder[ba, L_QTY] if ba != NO_PRICE else 0
    imb = (bq - aq) / (bq + aq) if bq + aq > 0 else 0.0
    spread = fst[F_SPREAD] / mid * BPS
    fund_gap = math.log(fst[F_FUND] / mid) * BPS
    w = win.shape[0]
    n_ag = pos.shape[0] - ACC_RL
    max_pos = par[P_MAX_POS]
    with_fund = par[P_FUND_OBS] > 0.5
    for j in range(n_ag):
        acc = ACC_RL + j
        r = row0 + j
        for i in range(w):
            obs[r, i] = win[i]
        eq = cash[acc] + pos[acc] * mid
        obs[r, w] = spread
        obs[r, w + 1] = imb
        obs[r, w + 2] = pos[acc] / max_pos
        obs[r, w + 3] = cash[acc] / eq if eq > 0.0 else 0.0
        if with_fund:
            obs[r, w + 4] = fund_gap


@njit(cache=True, _nrt=False, inline="always")
def _mark(meta, fst, off):
    """Update the last two-sided mid and spread from the book (kept when a side is empty)."""
    bb = meta[M_BEST_BID]
    ba = meta[M_BEST_ASK]
    if bb != NO_PRICE and ba != NO_PRICE:
        fst[F_MID] = 0.5 * (bb + ba) + off
        fst[F_SPREAD] = np.float64(ba - bb)


# --------------------------------------------------------------------------- reset and step


@njit(cache=True, _nrt=False)
def _reset_market(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, fst,
                  par, eq_prev, win, mm, zi, obs, row0, z_reset):  # fmt: skip
    """Start a new episode in one market: empty book, fresh accounts, seeded book, obs rows.

    The fundamental starts at ``mu + init_sd * z_reset`` (clipped to its band); the crowd
    seeds ``init_levels`` levels a side at 1, 2, ... ticks from it (one batch) and the market
    maker quotes. Cumulative counters (episodes, rejects, trades, volume) are kept.
    O(cap + L).
    """
    _clear_book(pool, htab, ladder, bitmap, meta)
    off = np.int64(par[P_OFFSET])
    n_ag = pos.shape[0] - ACC_RL
    cash[:] = 0
    pos[:] = 0
    init_cash = np.int64(par[P_INIT_CASH])
    for j in range(n_ag):
        cash[ACC_RL + j] = init_cash
        eq_prev[j] = np.float64(init_cash)
    win[:] = 0.0
    ist[I_STEP] = 0
    ist[I_NEXT_ID] = 1
    ist[I_ZI_N] = 0
    ist[I_MM_N] = 0
    f = par[P_MU] + par[P_FUND_INIT_SD] * z_reset
    f = min(max(f, par[P_FUND_LO]), par[P_FUND_HI])
    fst[F_FUND] = f
    fund_b = f - off
    c = _round(fund_b)
    qty = np.int64(par[P_INIT_QTY])
    top = ladder.shape[0] - 1
    n = np.int64(0)
    for k in range(1, np.int64(par[P_INIT_LEVELS]) + 1):
        if c - k >= 1:
            n = _put(orders, n, _new_id(ist), ACC_ZI, c - k, qty, LIMIT, BUY)
        if c + k <= top:
            n = _put(orders, n, _new_id(ist), ACC_ZI, c + k, qty, LIMIT, SELL)
    _run_batch(pool, htab, ladder, bitmap, meta, fills, rejects, orders, n, cash, pos, ist, off)
    _remember_resting(zi, ist, pool, htab, meta, orders, n)
    _mm_requote(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, par, mm,
                fund_b, off)  # fmt: skip
    fst[F_MID] = f
    fst[F_SPREAD] = 1.0
    _mark(meta, fst, off)
    _write_obs(ladder, meta, cash, pos, fst, par, win, obs, row0)


@njit(cache=True, _nrt=False)
def _step_market(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, fst,
                 par, eq_prev, win, mm, zi, act, u, z, obs, rew, term_obs, row0):  # fmt: skip
    """One step of one market (module docstring); returns its ``done`` code."""
    off = np.int64(par[P_OFFSET])
    _rl_trade(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, fst, par,
              act, row0, u, off)  # fmt: skip
    f = par[P_MU] + (fst[F_FUND] - par[P_MU]) * par[P_FUND_A] + par[P_FUND_S] * z[Z_FUND]
    f = min(max(f, par[P_FUND_LO]), par[P_FUND_HI])
    fst[F_FUND] = f
    fund_b = f - off
    _mm_requote(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, par, mm,
                fund_b, off)  # fmt: skip
    _zi_flow(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist, par, zi, u,
             fund_b, off)  # fmt: skip
    prev_mid = fst[F_MID]
    _mark(meta, fst, off)
    mid = fst[F_MID]
    w = win.shape[0]
    for i in range(w - 1):
        win[i] = win[i + 1]
    win[w - 1] = math.log(mid / prev_mid) * BPS
    n_ag = pos.shape[0] - ACC_RL
    ruined = False
    for j in range(n_ag):
        acc = ACC_RL + j
        eq = cash[acc] + pos[acc] * mid
        if eq > 0.0:
            rew[row0 + j] = math.log(eq / eq_prev[j])
        else:
            rew[row0 + j] = RUIN_REWARD
            ruined = True
        eq_prev[j] = eq
    _write_obs(ladder, meta, cash, pos, fst, par, win, obs, row0)
    ist[I_STEP] += 1
    code = RUNNING
    if ruined:
        code = TERMINATED
    elif ist[I_STEP] >= np.int64(par[P_EPISODE_STEPS]):
        code = TRUNCATED
    if code != RUNNING:
        for j in range(n_ag):
            for i in range(obs.shape[1]):
                term_obs[row0 + j, i] = obs[row0 + j, i]
        ist[I_EPISODES] += 1
        _reset_market(pool, htab, ladder, bitmap, meta, fills, rejects, orders, cash, pos, ist,
                      fst, par, eq_prev, win, mm, zi, obs, row0, z[Z_RESET])  # fmt: skip
    return code


#: ``run_markets`` operation: step every market once.
OP_STEP = 0
#: ``run_markets`` operation: reset every market (new episode).
OP_RESET = 1


@njit(cache=True, _nrt=False)
def _one(op, m, pool, htab, ladder, bitmap, meta, fills, rejects, orders, par, ist, fst, cash,
         pos, eq_prev, win, mm_ids, zi_ids, act, u, z, obs, rew, done, term_obs):  # fmt: skip
    row0 = m * (pos.shape[1] - ACC_RL)
    if op == OP_STEP:
        done[m] = _step_market(
            pool[m], htab[m], ladder[m], bitmap[m], meta[m], fills[m], rejects[m], orders[m],
            cash[m], pos[m], ist[m], fst[m], par[m], eq_prev[m], win[m], mm_ids[m], zi_ids[m],
            act, u[m], z[m], obs, rew, term_obs, row0,
        )  # fmt: skip
    else:
        _reset_market(
            pool[m], htab[m], ladder[m], bitmap[m], meta[m], fills[m], rejects[m], orders[m],
            cash[m], pos[m], ist[m], fst[m], par[m], eq_prev[m], win[m], mm_ids[m], zi_ids[m],
            obs, row0, z[m, Z_RESET],
        )  # fmt: skip
        done[m] = RUNNING


@njit(cache=True, _nrt=False)
def _actions_ok(act):
    """True if every action is finite and within [-1, 1] (1e-6 tolerance). O(actions)."""
    for i in range(act.shape[0]):
        for k in range(act.shape[1]):
            a = act[i, k]
            if not (a >= -1.0 - 1e-6 and a <= 1.0 + 1e-6):
                return False
    return True


@njit(cache=True, _nrt=False, parallel=True)
def run_markets(op, pool, htab, ladder, bitmap, meta, fills, rejects, orders, par, ist, fst, cash,
                pos, eq_prev, win, mm_ids, zi_ids, act, u, z, obs, rew, done,
                term_obs):  # fmt: skip
    """Step (``op=OP_STEP``) or reset (``OP_RESET``) every market; return how many finished.

    Markets run in a ``prange`` (results do not depend on the number of threads). Step:
    ``act`` is ``(N * n_agents, action_dim)`` float64 (row ``m * n_agents + j``; values are
    clipped to [-1, 1], see ``_actions_ok`` for validation). ``obs``, ``rew`` and
    ``term_obs`` are written per row, ``done[m]`` per market (RUNNING, TRUNCATED, TERMINATED).
    A finished market is reset in the same call: ``obs`` holds the new episode's first
    observation and ``term_obs`` the old one's last. Reset uses ``z[:, Z_RESET]`` only.
    O(N * (events + fills) / threads) per step, O(N * (cap + L) / threads) per reset.
    """
    n = pool.shape[0]
    for m in prange(n):
        _one(op, m, pool, htab, ladder, bitmap, meta, fills, rejects, orders, par, ist, fst, cash,
             pos, eq_prev, win, mm_ids, zi_ids, act, u, z, obs, rew, done, term_obs)  # fmt: skip
    k = 0
    for m in range(n):
        if done[m] != RUNNING:
            k += 1
    return k


@njit(cache=True, _nrt=False)
def run_markets_serial(op, pool, htab, ladder, bitmap, meta, fills, rejects, orders, par, ist, fst,
                       cash, pos, eq_prev, win, mm_ids, zi_ids, act, u, z, obs, rew, done,
                       term_obs):  # fmt: skip
    """:func:`run_markets` on the calling thread only (no thread-pool hand-off: cheaper for a
    few markets); bit-identical results."""
    n = pool.shape[0]
    for m in range(n):
        _one(op, m, pool, htab, ladder, bitmap, meta, fills, rejects, orders, par, ist, fst, cash,
             pos, eq_prev, win, mm_ids, zi_ids, act, u, z, obs, rew, done, term_obs)  # fmt: skip
    k = 0
    for m in range(n):
        if done[m] != RUNNING:
            k += 1
    return k


# Codes of check_markets beyond the book's own 1..9.
#: Cash is not conserved in the market.
CHECK_CASH = 10
#: Shares are not conserved in the market.
CHECK_SHARES = 11
#: An RL agent holds more than its max position.
CHECK_POSITION = 12
#: A bookkeeping counter is out of range (id lists, mid, fundamental).
CHECK_COUNTERS = 13


@njit(cache=True, _nrt=False)
def check_markets(pool, htab, ladder, bitmap, meta, par, ist, fst, cash, pos, out):
    """Write into ``out[m]`` 0 if market ``m`` is sound, else the first broken invariant.

    Codes 1-9 are the book's :func:`marketsim.book.kernels.check`; then CHECK_CASH,
    CHECK_SHARES, CHECK_POSITION, CHECK_COUNTERS. O(N * (cap + L)); serial (a test tool).
    """
    n = pool.shape[0]
    for m in range(n):
        code = check(pool[m], htab[m], ladder[m], bitmap[m], meta[m])
        if code == 0:
            n_ag = pos.shape[1] - ACC_RL
            total_cash = np.int64(0)
            total_pos = np.int64(0)
            for a in range(pos.shape[1]):
                total_cash += cash[m, a]
                total_pos += pos[m, a]
            if total_cash != n_ag * np.int64(par[m, P_INIT_CASH]):
                code = CHECK_CASH
            elif total_pos != 0:
                code = CHECK_SHARES
            else:
                for j in range(n_ag):
                    if abs(pos[m, ACC_RL + j]) > par[m, P_MAX_POS]:
                        code = CHECK_POSITION
                if code == 0 and (
                    ist[m, I_ZI_N] < 0
                    or ist[m, I_ZI_N] > pool.shape[1]
                    or ist[m, I_MM_N] < 0
                    or ist[m, I_MM_N] > 2 * MAX_MM_LEVELS
                    or not (fst[m, F_MID] > 0.0)
                    or not (fst[m, F_FUND] > 0.0)
                ):
                    code = CHECK_COUNTERS
        out[m] = code
