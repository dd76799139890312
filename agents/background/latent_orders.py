"""`latent_orders`: a latent order book in the LLOB spirit - intentions consumed by the price.

One agent stands for many slow investors, each with one latent order: a side, a reservation
price ``r`` (ticks) and a size. On each wake-up, per asset:

* latent orders are cancelled at rate ``1 / lifetime_s`` - ``k ~ Binomial(n, 1 - exp(-dt /
  lifetime_s))`` of them, drawn at random - and, like the orders fills used up, replaced by
  fresh ones: side buy or sell with equal odds, ``r = m - u`` (buy) or ``r = m + u`` (sell),
  ``m`` the mid it sees and ``u ~ U(0.5, band_ticks)``: deposits are uniform in the price's
  own frame, so far from the price the latent density is flat;
* a buy's price level is ``floor(r)``, a sell's ``ceil(r)``; buys at or above the ask (the price
  fell through them) take the ask with an IOC order, sells at or below the bid hit the bid, and
  what is not filled stays latent for the next wake;
* the others within ``reveal_ticks`` of the touch rest in the book at their level (the diff
  requote of :class:`agents.background.market_maker.LadderQuoter` keeps the queue priority of
  levels that did not change); the rest stays hidden.

Deposits may also follow a ramp (``deposit_ramp_ticks = w > 0``): density ``min(u / w, 1)`` at
distance ``u`` from the mid, the LLOB's stationary profile imposed on fresh intentions, so that
renewals do not refill the tip of the V.

Its random numbers: the cancellations draw from its own stream (a fixed number of draws per
wake), the deposits are counter-based - each fresh order's side and distance hash the agent's
key, the order's index and how many times it was deposited (SplitMix64) - so a run with a
meta-order and its counterfactual deposit the same orders at the same distances even though
their fills, and so the orders renewed, differ.

Filled lots consume the latent orders they came from; a consumed order is replaced by a fresh
one (as a cancelled one). Consumption is what shapes the book: whenever the price moves it eats
the latent orders it crosses, so near the price the surviving density vanishes linearly (an
absorbing boundary), ``rho(x) = (lambda / nu) (1 - exp(-x / xi))`` with ``xi = sqrt(D / nu)``,
``D`` the price's diffusion and ``nu`` the cancellation rate: the V-shaped latent book of the
LLOB, centred on the current price whatever the price did before, without a restoring force
toward an anchor. A meta-order faster than the book's renewal meets liquidity growing with the
distance, so its impact grows like ``sqrt(Q)`` (Donier et al. 2015; Tóth et al. 2011).

Fills are attributed to the level they came from (FIFO among its latent orders); lots of a level
whose cancel raced a fill come off the nearest level of that side, IOC fills off the crossing
levels deepest in the money first. ``consumed_lots`` counts them: it equals the lots the agent
traded. The latent book outlives the session (only its shown part is cancelled at the close).

Cost per wake: O(renewed orders + reveal_ticks + crossed levels) with a per-price histogram of
latent lots and per-level FIFO lists (the latent orders themselves are not scanned); the first
wake deposits ``n_orders``.

References: J. Donier, J. Bonart, I. Mastromatteo, J.-P. Bouchaud (2015), Quant. Finance
15(7); B. Tóth et al. (2011), Phys. Rev. X 1, 021006; I. Mastromatteo, B. Tóth,
J.-P. Bouchaud (2014), Phys. Rev. E 89, 042805.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from agents.background.base import BUY, NO_PRICE, SELL, TraderParams, register_trader
from agents.background.market_maker import LadderQuoter
from marketsim.params import IntNum, Num

if TYPE_CHECKING:
    from marketsim.model import MarketModel
    from marketsim.scenario import AgentConfig

__all__ = ["LatentOrders", "LatentOrdersParams"]


class LatentOrdersParams(TraderParams):
    """Parameters of ``latent_orders`` (see the module docs)."""

    n_orders: IntNum = Field(5000, description="Latent orders it holds per asset (>= 1).")
    order_lots: IntNum = Field(10, description="Size of each latent order in lots (>= 1).")
    band_ticks: Num = Field(
        100.0, description="Deposits are uniform up to this distance from the mid, ticks (>= 1)."
    )
    lifetime_s: Num = Field(
        23400.0, description="Mean life of a latent order before it is replaced, s (> 0)."
    )
    reveal_ticks: IntNum = Field(
        3, description="Latent orders this close to the touch rest in the book, ticks (>= 0)."
    )
    deposit_ramp_ticks: Num = Field(
        0.0,
        description="Deposit density grows linearly from the mid up to this distance, then "
        "stays flat (0: uniform from half a tick), ticks (0 <= ramp <= band_ticks).",
    )


_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's output function on uint64 arrays (wrapping arithmetic). O(len(x))."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


class _LatentBook:
    """One asset's latent orders: per order side, price level and lots left; per side a
    histogram of lots by price and the FIFO of order indices at each level."""

    __slots__ = ("side", "px", "q", "gen", "hist", "levels", "bmax", "smin")

    def __init__(self, n: int, max_price: int) -> None:
        self.side = np.zeros(n, np.int8)
        self.gen = np.zeros(n, np.uint64)  # deposits so far of each order (its draws' counter)
        self.px = np.zeros(n, np.int64)
        self.q = np.zeros(n, np.int64)
        self.hist = {BUY: np.zeros(max_price, np.int64), SELL: np.zeros(max_price, np.int64)}
        self.levels: dict[tuple[int, int], list[int]] = {}
        self.bmax = 0  # highest buy level ever deposited (a bound for the crossing scan)
        self.smin = max_price  # lowest sell level ever deposited

    def to_state(self) -> dict[str, Any]:
        """Plain data for a checkpoint (the histograms are rebuilt from the orders)."""
        return {
            "side": self.side.copy(), "px": self.px.copy(), "q": self.q.copy(),
            "gen": self.gen.copy(), "levels": [[sd, p, list(lst)] for (sd, p), lst in self.levels.items()],
            "bmax": self.bmax, "smin": self.smin, "max_price": int(self.hist[BUY].size),
        }  # fmt: skip

    def __repr__(self) -> str:
        """Content, not identity: orders, lots and a digest of the level queues."""
        h = hashlib.sha1(
            self.side.tobytes() + self.px.tobytes() + self.q.tobytes() + self.gen.tobytes()
        )
        h.update(repr(sorted(self.levels.items())).encode())
        return f"_LatentBook(n={self.q.size}, lots={int(self.q.sum())}, sha1={h.hexdigest()})"

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> _LatentBook:
        b = cls(len(st["q"]), int(st["max_price"]))
        b.side[:], b.px[:], b.q[:] = st["side"], st["px"], st["q"]
        b.gen[:] = st.get("gen", 0)  # checkpoints written before the counter: start at 0
        b.levels = {(int(sd), int(p)): [int(i) for i in lst] for sd, p, lst in st["levels"]}
        for sd in (BUY, SELL):
            on = (b.side == sd) & (b.q > 0)
            b.hist[sd][:] = np.bincount(b.px[on], weights=b.q[on], minlength=b.hist[sd].size)
        b.bmax, b.smin = int(st["bmax"]), int(st["smin"])
        return b

    def remove(self, i: int) -> None:
        """Take order ``i``'s lots off its level. O(orders at the level)."""
        q = int(self.q[i])
        if q > 0:
            sd, p = int(self.side[i]), int(self.px[i])
            self.hist[sd][p] -= q
            self.levels[(sd, p)].remove(i)
            self.q[i] = 0

    def add(self, i: int, sd: int, p: int, lots: int) -> None:
        self.side[i], self.px[i], self.q[i] = sd, p, lots
        self.hist[sd][p] += lots
        self.levels.setdefault((sd, p), []).append(i)
        if sd == BUY:
            self.bmax = max(self.bmax, p)
        else:
            self.smin = min(self.smin, p)

    def take(self, sd: int, p: int, lots: int, emptied: list[int]) -> int:
        """Take up to ``lots`` from level ``p`` of side ``sd``, oldest first; return the rest."""
        lst = self.levels.get((sd, p))
        while lots > 0 and lst:
            i = lst[0]
            t = min(lots, int(self.q[i]))
            self.q[i] -= t
            self.hist[sd][p] -= t
            lots -= t
            if self.q[i] == 0:
                lst.pop(0)
                emptied.append(i)
        return lots


@register_trader("latent_orders")
class LatentOrders(LadderQuoter):
    """Holds a latent order book consumed by the price (see the module docs)."""

    Params = LatentOrdersParams
    state_attrs = (
        "_orders", "_fills", "_sent", "_last_wake", "consumed_lots",
    )  # fmt: skip

    def __init__(
        self,
        model: MarketModel,
        account: int,
        config: AgentConfig,
        params: dict[str, Any],
        slots: list[int],
    ) -> None:
        super().__init__(model, account, config, params, slots)
        p = self.p
        self.n = int(p["n_orders"])
        self.lots = int(p["order_lots"])
        self.band = float(p["band_ticks"])
        self.life = float(p["lifetime_s"])
        self.reveal = int(p["reveal_ticks"])
        self.ramp = float(p["deposit_ramp_ticks"])
        self.check_params(
            (
                ("n_orders", self.n, self.n >= 1, ">= 1"),
                ("order_lots", self.lots, self.lots >= 1, ">= 1"),
                ("band_ticks", self.band, 1.0 <= self.band < math.inf, ">= 1, finite"),
                ("lifetime_s", self.life, 0.0 < self.life < math.inf, "> 0, finite"),
                ("reveal_ticks", self.reveal, self.reveal >= 0, ">= 0"),
                ("deposit_ramp_ticks", self.ramp, 0.0 <= self.ramp <= self.band,
                 f"in [0, band_ticks = {self.band}]"),
            )
        )
        self._step_s = float(model.session.step_seconds)
        #: Key of its counter-based deposit draws (a pure function of the seed and its account).
        self._key = np.uint64(
            model.shared_stream(f"latent_orders:{self.account}").integers(0, 2**63)
        )
        #: Per slot: its latent book.
        self._latent: dict[int, _LatentBook] = {}
        #: Per slot: lots filled since the last wake, (side, price) -> lots; price -1 = IOC.
        self._fills: dict[int, dict[tuple[int, int], int]] = {}
        #: Its orders sent this session: id -> (side, price ticks; -1 for an IOC order), so
        #: that a fill is attributed even when it raced the order's cancel.
        self._sent: dict[int, tuple[int, int]] = {}
        self._last_wake: dict[int, int] = {}
        #: Lots of latent orders consumed by its fills so far (equals the lots it traded).
        self.consumed_lots = 0

    def get_state(self) -> dict[str, Any]:
        """The base state plus its latent books as plain data."""
        out = super().get_state()
        out["latent"] = {slot: b.to_state() for slot, b in self._latent.items()}
        return out

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._latent = {int(k): _LatentBook.from_state(v) for k, v in state["latent"].items()}

    # ------------------------------------------------------------------ latent book
    def latent_book(self, slot: int) -> _LatentBook | None:
        """Its latent book in ``slot`` (None before its first wake there)."""
        return self._latent.get(slot)

    def load_latent(self, slot: int, orders: list[tuple[int, int, int]]) -> None:
        """Replace its latent book in ``slot`` by ``(side, price level, lots)`` orders."""
        hi = self.model.exchange.books[slot].max_price_ticks
        book = _LatentBook(len(orders), hi)
        for i, (sd, p, lots) in enumerate(orders):
            book.add(i, int(sd), int(p), int(lots))
        self._latent[slot] = book

    def deposit_distances(self, v: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Distances from the mid (ticks) of fresh deposits, from uniforms ``v`` and ``c``.

        Without a ramp: ``u = 1/2 + (band - 1/2) v``, uniform on ``[1/2, band]``. With a ramp
        ``w > 0``: density ``f(u) = min(u / w, 1) / (band - w / 2)`` on ``[0, band]`` - the
        ramp ``[0, w]`` (mass ``w / 2``; ``c`` below it picks the ramp) by inversion
        ``u = w sqrt(v)``, the flat part uniform on ``[w, band]``. O(len(v)).
        """
        if self.ramp <= 0.0:
            return 0.5 + (self.band - 0.5) * v
        w, band = self.ramp, self.band
        on_ramp = c < (0.5 * w) / (band - 0.5 * w)
        return np.where(on_ramp, w * np.sqrt(v), w + (band - w) * v)

    def deposit_uniforms(self, slot: int, idx: np.ndarray, gen: np.ndarray) -> np.ndarray:
        """Three uniforms in [0, 1) per deposit (side, distance, ramp part), a hash of its key,
        the slot, the order's index and its deposit count (SplitMix64): counter-based draws, so
        that an order's next position does not depend on how many other orders were renewed
        before it - a run with a meta-order and its counterfactual deposit the same orders at
        the same distances. Shape ``(len(idx), 3)``. O(len(idx))."""
        base = _splitmix64(self._key ^ np.uint64(slot))
        x = _splitmix64(base + idx.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        x = x ^ (gen.astype(np.uint64) * np.uint64(3))
        out = np.empty((idx.size, 3))
        for j in range(3):
            out[:, j] = (_splitmix64(x + np.uint64(j)) >> np.uint64(11)) * 2.0**-53
        return out

    def _deposit(self, slot: int, book: _LatentBook, idx: list[int], m: float) -> None:
        """Replace the orders ``idx`` by fresh ones around the mid ``m``. O(len(idx))."""
        k = len(idx)
        if not k:
            return
        ix = np.asarray(idx, np.int64)
        d = self.deposit_uniforms(slot, ix, book.gen[ix])
        book.gen[ix] += np.uint64(1)
        buy = d[:, 0] < 0.5
        u = self.deposit_distances(d[:, 1], d[:, 2])
        hi = book.hist[BUY].size - 1
        for i, b, x in zip(idx, buy.tolist(), u.tolist(), strict=True):
            book.remove(i)
            if b:
                book.add(i, BUY, min(max(1, math.floor(m - x)), hi), self.lots)
            else:
                book.add(i, SELL, min(max(1, math.ceil(m + x)), hi), self.lots)

    def _consume(self, slot: int, book: _LatentBook, emptied: list[int]) -> None:
        """Take the lots filled since the last wake off the latent orders they came from."""
        fills = self._fills.pop(slot, None)
        if not fills:
            return
        for (sd, px), lots in fills.items():
            self.consumed_lots += lots
            if px >= 0:
                lots = book.take(sd, px, lots, emptied)
                d = 1
                while lots > 0 and d < book.hist[sd].size:  # a level whose cancel raced a fill
                    for p in (px - d, px + d):
                        if 0 < p < book.hist[sd].size and lots > 0:
                            lots = book.take(sd, p, lots, emptied)
                    d += 1
            else:  # IOC: the crossing levels, deepest in the money first
                p = book.bmax if sd == BUY else book.smin
                step = -1 if sd == BUY else 1
                while lots > 0 and 0 < p < book.hist[sd].size:
                    lots = book.take(sd, p, lots, emptied)
                    p += step
            if lots > 0:  # cannot happen: every filled lot was shown or sent from the book
                raise RuntimeError(f"latent_orders: {lots} filled lots matched no latent order")

    def on_fills(self, slot: int, fills: np.ndarray, rejects: list[tuple[int, int]]) -> None:
        """Track its resting orders (as the ladder) and count the lots each level gave."""
        acc = self._fills.setdefault(slot, {})
        sent = self._sent
        for mk, tk, qty in zip(
            fills["maker_id"].tolist(), fills["taker_id"].tolist(), fills["qty"].tolist(),
            strict=True,
        ):  # fmt: skip
            for oid in (mk, tk):
                key = sent.get(oid)
                if key is not None:
                    acc[key] = acc.get(key, 0) + qty
        super().on_fills(slot, fills, rejects)

    def act(self, step: int) -> None:
        """Consume, renew, then show the latent book in every listed asset."""
        for slot in self.tradable_slots():
            m = self.mid(slot)
            if m != m:
                continue
            book = self._latent.get(slot)
            if book is None:
                book = self._latent[slot] = _LatentBook(
                    self.n, self.model.exchange.books[slot].max_price_ticks
                )
                self._deposit(slot, book, list(range(self.n)), m)
                self._last_wake[slot] = step
            emptied: list[int] = []
            self._consume(slot, book, emptied)
            dt_s = (step - self._last_wake.get(slot, step)) * self._step_s
            self._last_wake[slot] = step
            renew = set(emptied)
            if dt_s > 0:
                n = book.q.size
                k = int(self.drng.binomial(n, -math.expm1(-dt_s / self.life)))
                if k:
                    renew.update(self.drng.integers(0, n, k).tolist())
            self._deposit(slot, book, sorted(renew), m)
            self.requote(slot)

    def _touch(self, slot: int) -> tuple[int, int]:
        """The bid and ask it sees (the mid's floor and ceiling on an empty side)."""
        bb, _, ba, _ = self.quote(slot)
        m = self.mid(slot)
        bid = bb if bb != NO_PRICE else math.floor(m)
        ask = ba if ba != NO_PRICE else math.ceil(m)
        return bid, (ask if ask > bid else bid + 1)

    def target_quotes(self, slot: int) -> dict[tuple[int, int], int]:
        """The latent lots within ``reveal_ticks`` of the touch, by level."""
        book = self._latent[slot]
        bid, ask = self._touch(slot)
        hb, hs = book.hist[BUY], book.hist[SELL]
        want: dict[tuple[int, int], int] = {}
        lo = max(1, bid - self.reveal)
        for off in np.flatnonzero(hb[lo:ask]).tolist():
            want[(BUY, lo + off)] = int(hb[lo + off])
        top = min(ask + self.reveal + 1, hs.size)
        for off in np.flatnonzero(hs[bid + 1 : top]).tolist():
            want[(SELL, bid + 1 + off)] = int(hs[bid + 1 + off])
        return want

    def requote(self, slot: int) -> None:
        """The ladder diff of :class:`LadderQuoter`, then an IOC order at the touch for the
        latent lots the price has crossed (buys at or above the ask, sells at or below the bid)."""
        super().requote(slot)
        book = self._latent[slot]
        bid, ask = self._touch(slot)
        hb, hs = book.hist[BUY], book.hist[SELL]
        cross_b = int(hb[ask : book.bmax + 1].sum()) if book.bmax >= ask else 0
        cross_s = int(hs[book.smin : bid + 1].sum()) if book.smin <= bid else 0
        if cross_b > 0:
            self._sent[self.ioc(slot, BUY, ask, cross_b)] = (BUY, -1)
        if cross_s > 0 and bid > 0:
            self._sent[self.ioc(slot, SELL, bid, cross_s)] = (SELL, -1)

    def limit(self, slot: int, side: int, price: int, qty: int) -> int:
        """Send a limit order (the ladder's) and remember its level for fill attribution."""
        oid = super().limit(slot, side, price, qty)
        self._sent[oid] = (side, price)
        return oid

    def on_day_end(self, day: int, step: int) -> None:
        """The exchange cancelled its shown orders; the latent book stays."""
        super().on_day_end(day, step)
        self._sent.clear()
