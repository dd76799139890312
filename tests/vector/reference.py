"""Slow, plain-Python reference of one market of :class:`marketsim.vector.MarketVecEnv`.

The specification the numba kernels (:mod:`marketsim.vector.kernels`) are tested against: the
same step, written the obvious way over the reference order book (``tests/reference/book.py``,
SortedDict levels, one message at a time), Python lists for the id lists and dicts for the
accounts. Given the same parameter row and the same per-step draws it must produce the same
observations, rewards, episode ends and account balances.
"""

from __future__ import annotations

import math

import numpy as np

from marketsim.book.constants import BUY, CANCEL, LIMIT, MARKET, ORDER_DTYPE, SELL
from marketsim.vector import kernels as VK
from tests.reference.book import ReferenceBook

MM, ZI, RL = VK.ACC_MM, VK.ACC_ZI, VK.ACC_RL


def rnd(x: float) -> int:
    """Round half up (the env's rule)."""
    return int(math.floor(x + 0.5))


def poisson(u: float, lam: float, kmax: int) -> int:
    """Smallest k with P(X <= k) > u for X ~ Poisson(lam), at most kmax."""
    if lam <= 0:
        return 0
    k, p = 0, math.exp(-lam)
    cdf = p
    while u >= cdf and k < kmax:
        k += 1
        p *= lam / k
        cdf += p
    return k


def geometric(u: float, p: float, cap: float) -> int:
    """Geometric on 1, 2, ... (mean 1/p) by inversion, capped at ``cap``."""
    if p >= 1.0:
        return 1
    return int(min(1.0 + math.floor(math.log(1.0 - u) / math.log(1.0 - p)), cap))


class ReferenceMarket:
    """One market: book, fundamental, market maker, crowd and ``n_agents`` RL accounts.

    Args:
        par: The market's row of the env's parameter table (``env._par[m]``).
        n_agents: RL agents in the market.
        window: Returns in the observation.
        ladder_ticks: Book price range (book prices 1 .. ladder_ticks - 1).
        capacity: Live orders the book holds; a LIMIT order beyond it is rejected.
    """

    def __init__(self, par: np.ndarray, n_agents: int, window: int, ladder_ticks: int,
                 capacity: int):  # fmt: skip
        self.p = {name[2:]: float(par[getattr(VK, name)]) for name in dir(VK)
                  if name.startswith("P_") and name != "P_"}  # fmt: skip
        self.n_agents = n_agents
        self.window = window
        self.top = ladder_ticks - 1
        self.capacity = capacity
        self.off = int(self.p["OFFSET"])
        self.rejected_full = 0

    # ------------------------------------------------------------------ order routing
    def send(self, kind: int, side: int, price: int, qty: int, oid: int, owner: int):
        """Apply one message and settle its fills; return lots filled or None if rejected."""
        if kind == LIMIT and len(self.book) >= self.capacity:
            self.rejected_full += 1
            return None
        msg = np.zeros(1, dtype=ORDER_DTYPE)
        msg[0] = (oid, owner, price, qty, kind, side)
        fills, rejects = self.book.process(msg)
        if len(rejects):
            return None
        filled = 0
        for f in fills:
            q = int(f["qty"])
            value = (int(f["price"]) + self.off) * q
            taker, maker = int(f["taker_owner"]), int(f["maker_owner"])
            buyer, seller = (taker, maker) if f["taker_side"] == BUY else (maker, taker)
            self.pos[buyer] += q
            self.pos[seller] -= q
            self.cash[buyer] -= value
            self.cash[seller] += value
            filled += q
        return filled

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def remember_crowd_order(self, oid: int) -> None:
        if len(self.zi) == self.capacity:
            self.zi = [i for i in self.zi if self.book.order(i) is not None]
        if len(self.zi) < self.capacity:
            self.zi.append(oid)

    def mid_or(self, default: float) -> float:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        return 0.5 * (bb + ba) if bb is not None and ba is not None else default

    # ------------------------------------------------------------------ traders
    def market_maker(self, fund_b: float) -> None:
        p = self.p
        for oid in self.mm:
            self.send(CANCEL, 0, 0, 0, oid, MM)
        self.mm = []
        levels = int(p["MM_LEVELS"])
        if levels <= 0:
            return
        bb, ba = self.book.best_bid(), self.book.best_ask()
        inv = self.pos[MM]
        ref = p["MM_ANCHOR"] * fund_b + (1 - p["MM_ANCHOR"]) * self.mid_or(fund_b)
        ref -= p["MM_SKEW"] * inv
        bid = math.floor(ref - p["MM_HALF_SPREAD"])
        ask = math.ceil(ref + p["MM_HALF_SPREAD"])
        ask = max(ask, bid + 1)
        if ba is not None:
            bid = min(bid, ba - 1)  # post-only: never cross the book
        if bb is not None:
            ask = max(ask, bb + 1)
        size = int(p["MM_SIZE"])
        for k in range(levels):
            if inv < p["MM_MAX_INV"] and bid - k >= 1:
                oid = self.new_id()
                if self.send(LIMIT, BUY, bid - k, size, oid, MM) is not None:
                    self.mm.append(oid)
            if inv > -p["MM_MAX_INV"] and ask + k <= self.top:
                oid = self.new_id()
                if self.send(LIMIT, SELL, ask + k, size, oid, MM) is not None:
                    self.mm.append(oid)

    def crowd(self, u: np.ndarray, fund_b: float) -> None:
        """This step's events, drawn from the book as it is now, then sent one by one."""
        p = self.p
        n_crowd = max(0, len(self.book) - len(self.mm))
        lam_l, lam_m = p["ZI_LIMIT"], p["ZI_MARKET"]
        lam = lam_l + lam_m + p["ZI_CANCEL"] * n_crowd
        a = p["ZI_ANCHOR"]
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is not None and ba is not None:
            ref = a * fund_b + (1 - a) * 0.5 * (bb + ba)
        else:
            ref = fund_b
        msgs = []
        for e in range(poisson(u[VK.U_COUNT], lam, int(p["MAX_EVENTS"]))):
            ut, us, ud, uq = u[VK.U_EVENTS + 4 * e : VK.U_EVENTS + 4 * e + 4]
            ut *= lam
            side = BUY if us < 0.5 else SELL
            if ut < lam_l:
                size = geometric(uq, p["ZI_SIZE_P"], p["ZI_MAX_SIZE"])
                oid = self.new_id()
                d = geometric(ud, p["ZI_DEPTH_P"], p["ZI_MAX_DEPTH"])
                price = min(max(rnd(ref) - side * d, 1), self.top)
                msgs.append((LIMIT, side, price, size, oid))
            elif ut < lam_l + lam_m:
                size = geometric(uq, p["ZI_SIZE_P"], p["ZI_MAX_SIZE"])
                msgs.append((MARKET, side, 0, size, self.new_id()))
            elif self.zi:
                # A random remembered order live now; ids already filled are dropped on the way.
                j = min(int(ud * len(self.zi)), len(self.zi) - 1)
                while self.zi:
                    oid = self.zi[j]
                    last = self.zi.pop()
                    if j < len(self.zi):
                        self.zi[j] = last
                    if self.book.order(oid) is not None:
                        msgs.append((CANCEL, 0, 0, 0, oid))
                        break
                    if j >= len(self.zi):
                        j = 0
        for kind, side, price, qty, oid in msgs:
            self.send(kind, side, price, qty, oid, ZI)
        for kind, _, _, _, oid in msgs:
            if kind == LIMIT and self.book.order(oid) is not None:
                self.remember_crowd_order(oid)

    def rl_agents(self, actions: np.ndarray, u_rotate: float) -> None:
        p = self.p
        n = self.n_agents
        start = min(int(u_rotate * n), n - 1)
        for k in range(n):
            j = (start + k) % n
            acc = RL + j
            a0 = min(max(float(actions[j, 0]), -1.0), 1.0)
            if p["MODE"] == VK.MODE_TARGET:
                target = rnd(a0 * p["MAX_POS"])
            else:
                a1 = min(max(float(actions[j, 1]), -1.0), 1.0)
                w = min(max(0.5 * (1 + a0 - a1), p["W_LO"]), p["W_HI"])
                eq = self.cash[acc] + self.pos[acc] * self.mid
                target = rnd(w * eq / self.mid) if eq > 0 else 0
                target = int(min(max(target, -p["MAX_POS"]), p["MAX_POS"]))
            delta = target - self.pos[acc]
            if delta:
                self.send(MARKET, BUY if delta > 0 else SELL, 0, abs(delta), self.new_id(), acc)

    # ------------------------------------------------------------------ episode
    def mark(self) -> None:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        if bb is not None and ba is not None:
            self.mid = 0.5 * (bb + ba) + self.off
            self.spread = float(ba - bb)

    def observe(self) -> np.ndarray:
        bb, ba = self.book.best_bid(), self.book.best_ask()
        bq = self.book.depth(1)[1].sum() if bb is not None else 0
        aq = self.book.depth(1)[3].sum() if ba is not None else 0
        imb = (bq - aq) / (bq + aq) if bq + aq > 0 else 0.0
        rows = []
        for j in range(self.n_agents):
            acc = RL + j
            eq = self.cash[acc] + self.pos[acc] * self.mid
            row = list(self.win) + [
                self.spread / self.mid * VK.BPS,
                imb,
                self.pos[acc] / self.p["MAX_POS"],
                self.cash[acc] / eq if eq > 0 else 0.0,
            ]
            if self.p["FUND_OBS"] > 0.5:
                row.append(math.log(self.fund / self.mid) * VK.BPS)
            rows.append(row)
        return np.array(rows, dtype=np.float32)

    def reset(self, z_reset: float) -> np.ndarray:
        p = self.p
        self.book = ReferenceBook(self.top + 1)
        self.cash = {a: 0 for a in range(RL + self.n_agents)}
        self.pos = {a: 0 for a in range(RL + self.n_agents)}
        for j in range(self.n_agents):
            self.cash[RL + j] = int(p["INIT_CASH"])
        self.eq_prev = [float(p["INIT_CASH"])] * self.n_agents
        self.win = [0.0] * self.window
        self.step_no = 0
        self.next_id = 1
        self.zi: list[int] = []
        self.mm: list[int] = []
        self.fund = min(max(p["MU"] + p["FUND_INIT_SD"] * z_reset, p["FUND_LO"]), p["FUND_HI"])
        c = rnd(self.fund - self.off)
        qty = int(p["INIT_QTY"])
        for k in range(1, int(p["INIT_LEVELS"]) + 1):
            for side in (BUY, SELL):
                price = c - side * k
                if 1 <= price <= self.top:
                    oid = self.new_id()
                    if self.send(LIMIT, side, price, qty, oid, ZI) == 0:
                        self.remember_crowd_order(oid)
        self.market_maker(self.fund - self.off)
        self.mid, self.spread = self.fund, 1.0
        self.mark()
        return self.observe()

    def step(self, actions: np.ndarray, u: np.ndarray, z: np.ndarray):
        """Return ``(obs, rewards, done_code, terminal_obs or None)``."""
        p = self.p
        self.rl_agents(actions, u[VK.U_ROTATE])
        f = p["MU"] + (self.fund - p["MU"]) * p["FUND_A"] + p["FUND_S"] * z[VK.Z_FUND]
        self.fund = min(max(f, p["FUND_LO"]), p["FUND_HI"])
        fund_b = self.fund - self.off
        self.market_maker(fund_b)
        self.crowd(u, fund_b)
        prev = self.mid
        self.mark()
        self.win = self.win[1:] + [math.log(self.mid / prev) * VK.BPS]
        rewards = np.zeros(self.n_agents, np.float32)
        ruined = False
        for j in range(self.n_agents):
            eq = self.cash[RL + j] + self.pos[RL + j] * self.mid
            if eq > 0:
                rewards[j] = math.log(eq / self.eq_prev[j])
            else:
                rewards[j] = VK.RUIN_REWARD
                ruined = True
            self.eq_prev[j] = eq
        obs = self.observe()
        self.step_no += 1
        code = VK.RUNNING
        if ruined:
            code = VK.TERMINATED
        elif self.step_no >= p["EPISODE_STEPS"]:
            code = VK.TRUNCATED
        if code == VK.RUNNING:
            return obs, rewards, code, None
        return self.reset(z[VK.Z_RESET]), rewards, code, obs
